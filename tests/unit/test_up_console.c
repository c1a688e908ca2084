/* test_up_console.c - kvmbox up's console relay (cli/up_console.c) without a VM: a log file, a
 * pipe standing for the VM's stdin and a socketpair for the client, driven by the loop in this
 * thread: the tail a new client sees, live output (inotify), input into the pipe and held while
 * the pipe is full, the client detaching, the VM stopping (before and after the hand-over), and
 * the VM names a control client may send (up_name_valid); and the client's side of the hand-over
 * (api/ctl_console.c, ctl_console_attach over api_exchange) against a one-shot server thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"

#include "cli/up.h"
#include "cli/up_console.h"
#include "core/loop.h"

struct fx {
	char dir[64];
	char log[128];
	struct loop *loop;
	int in[2];  /* the VM's stdin: [0] the VM reads, [1] up writes */
	int cli[2]; /* [0] the client (the test), [1] the relay's end */
	int gone;   /* gone() calls */
};

static void gone_cb(void *ctx)
{
	(*(int *)ctx)++;
}

static void append(struct fx *f, const char *text)
{
	int fd = open(f->log, O_WRONLY | O_APPEND | O_CREAT, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/kvmbox-upc-XXXXXX", tmp && strlen(tmp) < 30 ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->log, sizeof(f->log), "%s/a.console.log", f->dir);
	f->loop = loop_create();
	if (!f->loop || pipe2(f->in, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, f->cli) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->log);
	rmdir(f->dir);
	close(f->in[0]);
	close(f->in[1]);
	if (f->cli[0] >= 0)
		close(f->cli[0]);
	loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Drive the loop until nothing happens for 100 ms (at most 50 rounds). */
static void run(struct fx *f)
{
	for (int i = 0; i < 50 && loop_run_once(f->loop, 100) > 0; i++)
		;
}

/* What the client has received so far (NUL-terminated, into buf); -2 if its end was closed. */
static ssize_t client_read(struct fx *f, char *buf, size_t size)
{
	size_t used = 0;

	for (;;) {
		ssize_t n = recv(f->cli[0], buf + used, size - 1 - used, MSG_DONTWAIT);

		if (n == 0) {
			buf[used] = '\0';
			return used ? (ssize_t)used : -2;
		}
		if (n < 0) {
			assert_true(errno == EAGAIN);
			buf[used] = '\0';
			return (ssize_t)used;
		}
		used += (size_t)n;
		assert_true(used < size - 1);
	}
}

static struct up_console *attach(struct fx *f, const char *pending)
{
	char err[512] = "";
	struct up_console *c =
		up_console_new(f->loop, "a", f->log, f->in[1], gone_cb, &f->gone, err, sizeof(err));

	assert_non_null(c);
	assert_string_equal(err, "");
	up_console_hijacked(c, f->cli[1], (const uint8_t *)pending, strlen(pending));
	return c;
}

static void test_tail_start(void **state)
{
	assert_int_equal(up_console_tail_start("", 0), 0);
	assert_int_equal(up_console_tail_start("abc", 3), 0);      /* no line starts in it */
	assert_int_equal(up_console_tail_start("ab\ncd\n", 6), 3); /* from "cd" */
	assert_int_equal(up_console_tail_start("abcd\n", 5), 0);   /* only the end of a line: all */
	assert_int_equal(up_console_tail_start("\nxyz", 4), 1);
}

/* A log longer than the tail: the client gets its last lines, from the start of one, and the
 * bytes it sent after its request reach the VM's input. Then live output and input. */
static void test_tail_live_input(void **state)
{
	struct fx *f = *state;
	char line[32], *buf = malloc(65536), in[64];
	struct up_console *c;
	ssize_t n;
	size_t total = 0;

	assert_non_null(buf);
	for (int i = 0; total < 3 * UP_CONSOLE_TAIL; i++) {
		snprintf(line, sizeof(line), "tick %d\n", i);
		append(f, line);
		total += strlen(line);
	}
	c = attach(f, "typed");
	(void)c;
	run(f);
	n = client_read(f, buf, 65536);
	assert_true(n > UP_CONSOLE_TAIL - 16 && n <= UP_CONSOLE_TAIL);
	assert_memory_equal(buf, "tick ", 5); /* a whole line first */
	assert_non_null(strstr(buf, line));   /* up to the last one */
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(read(f->in[0], in, sizeof(in)), 5);
	assert_memory_equal(in, "typed", 5);

	append(f, "live 1\n");
	run(f);
	assert_int_equal(client_read(f, buf, 65536), 7);
	assert_string_equal(buf, "live 1\n");

	assert_int_equal(send(f->cli[0], "hello\r", 6, 0), 6);
	run(f);
	assert_int_equal(read(f->in[0], in, sizeof(in)), 6);
	assert_memory_equal(in, "hello\r", 6);
	assert_int_equal(f->gone, 0);

	/* The client leaves: gone. */
	close(f->cli[0]);
	f->cli[0] = -1;
	run(f);
	assert_int_equal(f->gone, 1);
	free(buf);
}

/* The VM's process ends: the rest of the log, then the line, then the end of the stream. */
static void test_stop(void **state)
{
	struct fx *f = *state;
	char buf[4096];
	struct up_console *c;

	append(f, "boot\n");
	c = attach(f, "");
	run(f);
	assert_int_equal(client_read(f, buf, sizeof(buf)), 5);
	append(f, "last words");
	up_console_stop(c, "kvmbox: up: vm a: stopped");
	assert_true(client_read(f, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "last words\r\nkvmbox: up: vm a: stopped\r\n");
	assert_int_equal(client_read(f, buf, sizeof(buf)), -2);
	assert_int_equal(f->gone, 0);
}

/* Stopped before the hand-over: the hand-over sends the tail and the line and closes. */
static void test_stop_before_handover(void **state)
{
	struct fx *f = *state;
	char err[256], buf[4096];
	struct up_console *c;

	append(f, "short log\n");
	c = up_console_new(f->loop, "a", f->log, f->in[1], gone_cb, &f->gone, err, sizeof(err));
	assert_non_null(c);
	up_console_stop(c, "kvmbox: up: vm a: gone");
	up_console_hijacked(c, f->cli[1], NULL, 0);
	assert_true(client_read(f, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "short log\n\r\nkvmbox: up: vm a: gone\r\n");
	assert_int_equal(client_read(f, buf, sizeof(buf)), -2);
	assert_int_equal(f->gone, 0);

	/* The client went away before its hand-over: gone, nothing else. */
	c = up_console_new(f->loop, "a", f->log, f->in[1], gone_cb, &f->gone, err, sizeof(err));
	assert_non_null(c);
	up_console_hijacked(c, -1, NULL, 0);
	assert_int_equal(f->gone, 1);
	/* ... after a stop: not gone (up already forgot it). */
	c = up_console_new(f->loop, "a", f->log, f->in[1], gone_cb, &f->gone, err, sizeof(err));
	assert_non_null(c);
	up_console_stop(c, "x");
	up_console_hijacked(c, -1, NULL, 0);
	assert_int_equal(f->gone, 1);
}

/* A guest that does not read: its pipe full, the client's input waits (not lost, the client is
 * not read meanwhile), and goes in once there is room. */
static void test_input_backpressure(void **state)
{
	struct fx *f = *state;
	char fill[4096], in[8];
	struct up_console *c;
	size_t filled = 0;
	ssize_t n;

	memset(fill, 'f', sizeof(fill));
	while ((n = write(f->in[1], fill, sizeof(fill))) > 0)
		filled += (size_t)n;
	assert_true(errno == EAGAIN);
	append(f, "");
	c = attach(f, "");
	run(f);
	assert_int_equal(send(f->cli[0], "abc", 3, 0), 3);
	run(f);
	/* Drain the pipe: the held input follows the old bytes. */
	while (filled) {
		n = read(f->in[0], fill, filled < sizeof(fill) ? filled : sizeof(fill));
		assert_true(n > 0);
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal(fill[i], 'f');
		filled -= (size_t)n;
		run(f);
	}
	run(f);
	n = read(f->in[0], in, sizeof(in));
	assert_int_equal(n, 3);
	assert_memory_equal(in, "abc", 3);
	/* The VM's process ended (no reader): input is dropped, the relay lives on. */
	close(f->in[0]);
	f->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(send(f->cli[0], "lost", 4, 0), 4);
	run(f);
	assert_int_equal(f->gone, 0);
	up_console_stop(c, "end");
}

static void test_log_missing(void **state)
{
	struct fx *f = *state;
	char err[512];

	assert_null(up_console_new(f->loop, "a", "/nonexistent/a.log", f->in[1], gone_cb, &f->gone, err,
				   sizeof(err)));
	assert_string_equal(err, "vm a: console log /nonexistent/a.log: No such file or directory; is "
				 "console-log readable?");
	close(f->cli[1]);
}

static void test_name_valid(void **state)
{
	const char *good[] = { "a", "web-1", "db_2.x", "A9", "abcdefghijklmnopqrstuvwxyz012345" };
	const char *bad[] = {
		"", ".a", "-a", "a/b", "../a", "a b", "a\n", "abcdefghijklmnopqrstuvwxyz0123456"
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(up_name_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(up_name_valid(bad[i], strlen(bad[i])));
	assert_false(up_name_valid("a\0b", 3)); /* a JSON "a\u0000b" */
	assert_false(up_name_valid(NULL, 0));
}

/* A one-shot control socket: accepts one client, reads its request line into req, sends reply
 * (the reply line and whatever follows it, in one write) and closes. */
struct one_shot {
	int lfd;
	const char *reply;
	char req[512];
};

static void *one_shot_serve(void *arg)
{
	struct one_shot *s = arg;
	size_t used = 0;
	int c = accept(s->lfd, NULL, NULL);

	if (c < 0)
		return NULL;
	while (used < sizeof(s->req) - 1 && !memchr(s->req, '\n', used)) {
		ssize_t n = read(c, s->req + used, sizeof(s->req) - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
	}
	s->req[used] = '\0';
	if (write(c, s->reply, strlen(s->reply)) < 0)
		s->req[0] = '\0';
	close(c);
	return NULL;
}

/* attach_to: ctl_console_attach against a one-shot server answering reply; the request it saw
 * in s->req. */
static int attach_to(struct one_shot *s, const char *reply, uint8_t **pending, size_t *n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/kvmbox-attach-XXXXXX";
	pthread_t t;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/up.sock", dir);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 1), 0);
	s->reply = reply;
	assert_int_equal(pthread_create(&t, NULL, one_shot_serve, s), 0);
	fd = ctl_console_attach(sa.sun_path, "web", 5, pending, n);
	pthread_join(t, NULL);
	close(s->lfd);
	unlink(sa.sun_path);
	rmdir(dir);
	return fd;
}

static void test_attach_handover(void **state)
{
	struct one_shot s = { 0 };
	uint8_t *pending;
	size_t n;
	char got[16] = "";
	int fd;

	(void)state;
	/* The reply and the console's first bytes in one segment: the bytes after the reply line are
	 * the console's, not part of the reply. */
	fd = attach_to(&s, "{\"id\":1,\"return\":{}}\nlogin: ", &pending, &n);
	assert_true(fd >= 0);
	assert_non_null(strstr(s.req, "\"command\":\"console\""));
	assert_non_null(strstr(s.req, "\"name\":\"web\""));
	assert_int_equal(n, 7);
	assert_memory_equal(pending, "login: ", 7);
	/* The connection stays open for the relay: what the server sent last was its close. */
	assert_int_equal(read(fd, got, sizeof(got)), 0);
	close(fd);
	free(pending);

	/* No bytes after the reply. */
	fd = attach_to(&s, "{\"id\":1,\"return\":{}}\n", &pending, &n);
	assert_true(fd >= 0);
	assert_int_equal(n, 0);
	close(fd);
	free(pending);

	/* An error reply: -1, nothing pending. */
	fd = attach_to(&s, "{\"id\":1,\"error\":{\"class\":\"GenericError\",\"desc\":\"no VM named web\"}}\n",
		       &pending, &n);
	assert_int_equal(fd, -1);
	assert_null(pending);
	assert_int_equal(n, 0);

	/* Not JSON. */
	fd = attach_to(&s, "SSH-2.0-OpenSSH\n", &pending, &n);
	assert_int_equal(fd, -1);
	assert_null(pending);
}

int main(void)
{
	/* As in up: input for a VM whose process ended is EPIPE, not the end of the program. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tail_start),
		cmocka_unit_test_setup_teardown(test_tail_live_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_before_handover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_missing, setup, teardown),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_attach_handover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
