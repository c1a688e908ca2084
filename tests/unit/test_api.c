/* The control socket: server (framing, validation, ordering, late and
 * orphaned answers, socket path handling) and the `kvmbox ctl` client,
 * driven through real unix sockets with the loop running in a thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/loop.h"

#define MAX_SLOW 8

struct fx {
	char dir[64];
	char path[128];
	struct loop *loop;
	struct api_server *s;
	int stopfd;
	pthread_t th;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct api_req *slow[MAX_SLOW];
	int nslow;
	int nhandled; /* handler calls so far (lock, cond) */
	/* api_hijack (lock, cond): the connections handed over */
	int nhijacked;
	bool ctl_stdin_open; /* run_ctl: stdin a pipe nobody writes to (never ends), not the test's */
	int hj_fd;
	char hj_pending[256];
	size_t hj_n;
};

/* The "hijack" command's: keep the connection for the test. */
static void hijack_keep(void *ctx, int fd, const uint8_t *pending, size_t n)
{
	struct fx *f = ctx;

	pthread_mutex_lock(&f->lock);
	f->hj_fd = fd;
	f->hj_n = n < sizeof(f->hj_pending) ? n : sizeof(f->hj_pending) - 1;
	if (n)
		memcpy(f->hj_pending, pending, f->hj_n);
	f->hj_pending[f->hj_n] = '\0';
	f->nhijacked++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* "console" (kvmbox ctl's console against a stand-in for up): output, up's last line, the end. */
static void hijack_up_line(void *ctx, int fd, const uint8_t *pending, size_t n)
{
	static const char text[] = "console!\r\n\r\nkvmbox: up: vm x: stopped\r\n";

	if (fd < 0)
		return;
	/* Not asserted (this is the loop's thread): a client whose stdin ended may be gone. */
	if (send(fd, text, sizeof(text) - 1, MSG_NOSIGNAL) < 0)
		fprintf(stderr, "test: console: %s\n", strerror(errno));
	close(fd);
}

/* "console" of VM "silent": output, then the end without up's line. */
static void hijack_silent(void *ctx, int fd, const uint8_t *pending, size_t n)
{
	if (fd < 0)
		return;
	if (send(fd, "x", 1, MSG_NOSIGNAL) < 0)
		fprintf(stderr, "test: console: %s\n", strerror(errno));
	close(fd);
}

/* slow: kept for the test to answer; err: an error; nosuch: unknown;
 * anything else: echo the command and arguments. */
static void handler(void *ctx, struct api_req *req, const char *command, struct json_object *args)
{
	struct fx *f = ctx;
	struct json_object *r;

	/* Counted before the answer: a test that waits for the count knows
	 * the answer exists when the handler returns to the server. */
	pthread_mutex_lock(&f->lock);
	f->nhandled++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (!strcmp(command, "slow")) {
		pthread_mutex_lock(&f->lock);
		assert_true(f->nslow < MAX_SLOW);
		f->slow[f->nslow++] = req;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (!strcmp(command, "hijack")) {
		r = json_object_new_object();
		json_object_object_add(r, "hijacked", json_object_new_boolean(1));
		api_hijack(req, r, hijack_keep, f);
		return;
	}
	if (!strcmp(command, "console")) {
		struct json_object *name;
		const char *vm;

		assert_true(json_object_object_get_ex(args, "name", &name));
		vm = json_object_get_string(name);
		if (!strcmp(vm, "busy"))
			api_error(req, "Busy", "vm busy: another client is attached to its console");
		else
			api_hijack(req, NULL, strcmp(vm, "silent") ? hijack_up_line : hijack_silent, f);
		return;
	}
	if (!strcmp(command, "err")) {
		api_error(req, "GenericError", "err was asked for %d", 42);
		return;
	}
	if (!strcmp(command, "nosuch")) {
		api_error(req, "CommandNotFound", "unknown command '%s'", command);
		return;
	}
	r = json_object_new_object();
	json_object_object_add(r, "command", json_object_new_string(command));
	json_object_object_add(r, "arguments", json_object_get(args));
	api_reply(req, r);
}

static void stop_handler(struct loop *l, int fd, uint32_t events, void *opaque)
{
	uint64_t v;

	assert_true(read(fd, &v, sizeof(v)) == sizeof(v));
	loop_quit(l);
}

static void *loop_thread(void *arg)
{
	struct fx *f = arg;

	loop_run(f->loop);
	return NULL;
}

static void fx_start(struct fx *f)
{
	f->loop = loop_create();
	assert_non_null(f->loop);
	f->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(f->stopfd >= 0);
	assert_int_equal(loop_add(f->loop, f->stopfd, EPOLLIN, stop_handler, f), 0);
	f->s = api_server_create(f->path, f->loop, handler, f);
	assert_non_null(f->s);
	/* From here on only the loop thread touches the loop and server. */
	assert_int_equal(pthread_create(&f->th, NULL, loop_thread, f), 0);
	f->running = true;
}

static void fx_stop(struct fx *f)
{
	uint64_t one = 1;

	if (!f->running)
		return;
	assert_true(write(f->stopfd, &one, sizeof(one)) == sizeof(one));
	pthread_join(f->th, NULL);
	f->running = false;
	api_server_destroy(f->s);
	loop_del(f->loop, f->stopfd);
	close(f->stopfd);
	loop_destroy(f->loop);
	f->s = NULL;
	f->loop = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/kvmbox-api-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/api.sock", f->dir);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	*state = f;
	return 0;
}

static int setup_running(void **state)
{
	if (setup(state))
		return -1;
	fx_start(*state);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	fx_stop(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
	return 0;
}

/* --- client side helpers --- */

static int cli_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void cli_send(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* Read one line (without '\n') within timeout_ms; returns its length, or
 * -1 on timeout, -2 on EOF. */
static int cli_readline_to(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t used = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		n = recv(fd, buf + used, 1, 0);
		if (n <= 0)
			return -2;
		if (buf[used] == '\n') {
			buf[used] = '\0';
			return (int)used;
		}
		used++;
		assert_true(used < size);
	}
}

/* Read and parse one reply. */
static struct json_object *cli_reply(int fd)
{
	size_t size = 2 * API_MAX_LINE;
	char *buf = malloc(size);
	struct json_object *o;

	assert_non_null(buf);
	assert_true(cli_readline_to(fd, buf, size, 5000) >= 0);
	o = json_tokener_parse(buf);
	free(buf);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

/* Assert an error reply of class `class` whose id is `id` (-1: no id). */
static void expect_error(int fd, const char *class, int id, const char *desc)
{
	struct json_object *r = cli_reply(fd), *e = jget(r, "error");

	assert_non_null(e);
	assert_string_equal(jstr(e, "class"), class);
	assert_non_null(jstr(e, "desc"));
	if (desc)
		assert_string_equal(jstr(e, "desc"), desc);
	if (id < 0)
		assert_null(jget(r, "id"));
	else
		assert_int_equal(json_object_get_int(jget(r, "id")), id);
	assert_null(jget(r, "return"));
	json_object_put(r);
}

/* Assert an echo reply for `command` with id `id`. */
static void expect_echo(int fd, int id, const char *command)
{
	struct json_object *r = cli_reply(fd), *ret = jget(r, "return");

	assert_non_null(ret);
	assert_int_equal(json_object_get_int(jget(r, "id")), id);
	assert_string_equal(jstr(ret, "command"), command);
	assert_true(json_object_is_type(jget(ret, "arguments"), json_type_object));
	json_object_put(r);
}

static void roundtrip(const char *path)
{
	int fd = cli_connect(path);

	cli_send(fd, "{\"id\":99,\"command\":\"ping\"}\n");
	expect_echo(fd, 99, "ping");
	close(fd);
}

/* Wait (5 s at most) until *count, under f->lock, reaches n. */
static void wait_count(struct fx *f, const int *count, int n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&f->lock);
	while (*count < n)
		assert_int_equal(pthread_cond_timedwait(&f->cond, &f->lock, &ts), 0);
	pthread_mutex_unlock(&f->lock);
}

static void wait_slow(struct fx *f, int n)
{
	wait_count(f, &f->nslow, n);
}

/* The handler has been called n times in all. */
static void wait_handled(struct fx *f, int n)
{
	wait_count(f, &f->nhandled, n);
}

/* Wait until the server has read every byte sent on fd. For a unix stream
 * socket SIOCOUTQ counts the bytes sent and not yet read by the peer; the
 * kernel has no event for it reaching 0, so it is polled (5 s at most). */
static void wait_consumed(int fd)
{
	struct timespec t0, now;
	int unread;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		assert_int_equal(ioctl(fd, SIOCOUTQ, &unread), 0);
		if (unread == 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 5)
			fail_msg("the server left %d bytes unread for 5 s", unread);
		sched_yield();
	}
}

/* Nothing has arrived on fd (not waiting: callers first make sure the server
 * has done what it would do). */
static void assert_nothing_to_read(int fd)
{
	char c;

	assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void *answer_thread(void *arg)
{
	struct api_req *req = arg;
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "slow", json_object_new_boolean(1));
	api_reply(req, r);
	return NULL;
}

/* Answer slow request i from another thread and wait for that thread. */
static void answer_slow(struct fx *f, int i)
{
	pthread_t t;

	pthread_mutex_lock(&f->lock);
	assert_true(i < f->nslow && f->slow[i]);
	assert_int_equal(pthread_create(&t, NULL, answer_thread, f->slow[i]), 0);
	f->slow[i] = NULL;
	pthread_mutex_unlock(&f->lock);
	pthread_join(t, NULL);
}

/* --- server tests --- */

static void test_good_request(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	struct json_object *r, *ret, *args;

	cli_send(fd, "{\"id\":7,\"command\":\"echo\",\"arguments\":{\"a\":\"b\",\"n\":3}}\n");
	r = cli_reply(fd);
	assert_int_equal(json_object_get_int(jget(r, "id")), 7);
	ret = jget(r, "return");
	assert_string_equal(jstr(ret, "command"), "echo");
	args = jget(ret, "arguments");
	assert_string_equal(jstr(args, "a"), "b");
	assert_int_equal(json_object_get_int(jget(args, "n")), 3);
	json_object_put(r);

	/* No id: none in the reply; no arguments: the handler sees {}. */
	cli_send(fd, "{\"command\":\"info\"}\r\n");
	r = cli_reply(fd);
	assert_null(jget(r, "id"));
	ret = jget(r, "return");
	assert_string_equal(jstr(ret, "command"), "info");
	assert_int_equal(json_object_object_length(jget(ret, "arguments")), 0);
	json_object_put(r);

	/* Any JSON value is an id, echoed as is. */
	cli_send(fd, "{\"id\":{\"k\":[1,\"x\"]},\"command\":\"info\"}\n");
	r = cli_reply(fd);
	assert_string_equal(json_object_to_json_string_ext(jget(r, "id"), JSON_C_TO_STRING_PLAIN),
			    "{\"k\":[1,\"x\"]}");
	json_object_put(r);

	/* Error replies from the handler. */
	cli_send(fd, "{\"id\":8,\"command\":\"err\"}\n");
	expect_error(fd, "GenericError", 8, "err was asked for 42");
	cli_send(fd, "{\"id\":9,\"command\":\"nosuch\"}\n");
	expect_error(fd, "CommandNotFound", 9, "unknown command 'nosuch'");
	close(fd);
}

static void test_invalid_requests(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);

	cli_send(fd, "{bad\n");
	expect_error(fd, "InvalidInput", -1, NULL);
	cli_send(fd, "[1,2]\n");
	expect_error(fd, "InvalidInput", -1, "request is not a JSON object");
	cli_send(fd, "42\n");
	expect_error(fd, "InvalidInput", -1, "request is not a JSON object");
	cli_send(fd, "{\"command\":\"info\"} trailing\n");
	expect_error(fd, "InvalidInput", -1, NULL);
	cli_send(fd, "{\"id\":3}\n");
	expect_error(fd, "InvalidInput", 3, "request has no \"command\" string");
	cli_send(fd, "{\"id\":4,\"command\":5}\n");
	expect_error(fd, "InvalidInput", 4, "request has no \"command\" string");
	cli_send(fd, "{\"id\":5,\"command\":\"echo\",\"arguments\":[1]}\n");
	expect_error(fd, "InvalidInput", 5, "\"arguments\" must be an object");
	cli_send(fd, "{\"id\":6,\"command\":\"echo\",\"arguments\":\"x\"}\n");
	expect_error(fd, "InvalidInput", 6, "\"arguments\" must be an object");
	cli_send(fd, "{\"id\":7,\"command\":\"\xff\"}\n"); /* not UTF-8 */
	expect_error(fd, "InvalidInput", -1, NULL);
	assert_int_equal(send(fd, "{\"a\"\0}\n", 7, MSG_NOSIGNAL), 7);
	expect_error(fd, "InvalidInput", -1, "request line contains a NUL byte");

	/* Empty lines are ignored: the next reply is the next request's, and
	 * the one after it is the request after. */
	cli_send(fd, "\n\n  \n\r\n{\"id\":10,\"command\":\"echo\"}\n\n");
	expect_echo(fd, 10, "echo");
	cli_send(fd, "{\"id\":11,\"command\":\"echo\"}\n");
	expect_echo(fd, 11, "echo");
	close(fd);
}

/* An echo request line (with '\n') of exactly `len` bytes before the '\n'. */
static char *echo_line(size_t len, int id, char fill)
{
	char head[64];
	size_t hl = (size_t)snprintf(head, sizeof(head),
				     "{\"id\":%d,\"command\":\"echo\",\"arguments\":{\"p\":\"", id);
	char *line = malloc(len + 2);

	assert_non_null(line);
	assert_true(len > hl + 3);
	memcpy(line, head, hl);
	memset(line + hl, fill, len - hl - 3);
	memcpy(line + len - 3, "\"}}\n", 5);
	return line;
}

static void test_oversized_line(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	size_t big = API_MAX_LINE + 5000;
	char *line = malloc(big + 2);

	assert_non_null(line);
	memset(line, 'x', big);
	line[big] = '\n';
	line[big + 1] = '\0';
	cli_send(fd, line);
	free(line);
	cli_send(fd, "{\"id\":12,\"command\":\"echo\"}\n");
	expect_error(fd, "InvalidInput", -1, "request line longer than 65536 bytes");
	expect_echo(fd, 12, "echo");

	/* Oversized JSON that would parse, sent in pieces the server reads one
	 * by one (each is read before the next is sent): one error only. */
	line = echo_line(big, 11, 'y');
	for (size_t off = 0, len = strlen(line); off < len; off += 10000) {
		char save;
		size_t n = len - off < 10000 ? len - off : 10000;

		save = line[off + n];
		line[off + n] = '\0';
		cli_send(fd, line + off);
		line[off + n] = save;
		wait_consumed(fd);
	}
	free(line);
	cli_send(fd, "{\"id\":13,\"command\":\"echo\"}\n");
	expect_error(fd, "InvalidInput", -1, "request line longer than 65536 bytes");
	expect_echo(fd, 13, "echo");

	/* A line of exactly API_MAX_LINE bytes is fine. */
	line = echo_line(API_MAX_LINE, 11, 'z');
	assert_int_equal(strlen(line), API_MAX_LINE + 1);
	cli_send(fd, line);
	expect_echo(fd, 11, "echo");
	free(line);
	close(fd);
}

static void test_two_clients_interleaved(void **state)
{
	struct fx *f = *state;
	int a = cli_connect(f->path), b = cli_connect(f->path);

	cli_send(a, "{\"id\":1,\"comm");
	/* The server read a's partial line; b's request is answered after
	 * that (one loop thread), and a has no answer. */
	wait_consumed(a);
	cli_send(b, "{\"id\":2,\"command\":\"bee\"}\n");
	expect_echo(b, 2, "bee");
	assert_nothing_to_read(a);
	cli_send(a, "and\":\"ay\"}\n{\"id\":3,\"command\":\"ay2\"}\n");
	cli_send(b, "{\"id\":4,\"command\":\"bee2\"}\n");
	expect_echo(a, 1, "ay");
	expect_echo(a, 3, "ay2");
	expect_echo(b, 4, "bee2");
	close(a);
	close(b);
}

static void test_reply_order(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	struct json_object *r;

	cli_send(fd, "{\"id\":1,\"command\":\"slow\"}\n{\"id\":2,\"command\":\"fast\"}\n");
	wait_slow(f, 1);
	/* The fast answer exists (both handler calls returned) but must wait
	 * for the slow one. A round trip on another connection is served after
	 * the server finished with this one, so a reply it sent is here. */
	wait_handled(f, 2);
	roundtrip(f->path);
	assert_nothing_to_read(fd);
	answer_slow(f, 0);
	r = cli_reply(fd);
	assert_int_equal(json_object_get_int(jget(r, "id")), 1);
	assert_true(json_object_get_boolean(jget(jget(r, "return"), "slow")));
	json_object_put(r);
	expect_echo(fd, 2, "fast");
	close(fd);
}

static void test_disconnect_before_slow_reply(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);

	cli_send(fd, "{\"id\":1,\"command\":\"slow\"}\n{\"id\":2,\"command\":\"fast\"}\n");
	wait_slow(f, 1);
	close(fd);
	roundtrip(f->path); /* the server has seen the close by now */
	answer_slow(f, 0);  /* dropped, freed */
	roundtrip(f->path);
}

static void test_destroy_with_pending(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	struct stat st;

	cli_send(fd, "{\"id\":1,\"command\":\"slow\"}\n");
	wait_slow(f, 1);
	fx_stop(f);
	assert_int_equal(stat(f->path, &st), -1); /* path removed */
	answer_slow(f, 0);                        /* after the server is gone: dropped safely */
	close(fd);
}

static void test_pipelined_and_half_closed(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	char *req = malloc(200 * 64);
	char buf[64];
	size_t off = 0;

	assert_non_null(req);
	/* More requests than the per-client queue holds, then EOF; the last
	 * line has no '\n'. */
	for (int i = 0; i < 200; i++)
		off += (size_t)sprintf(req + off, "{\"id\":%d,\"command\":\"c%d\"}%s", i, i,
				       i < 199 ? "\n" : "");
	cli_send(fd, req);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 200; i++) {
		char name[16];

		snprintf(name, sizeof(name), "c%d", i);
		expect_echo(fd, i, name);
	}
	assert_int_equal(cli_readline_to(fd, buf, sizeof(buf), 2000), -2); /* server closed */
	free(req);
	close(fd);
}

static void test_client_not_reading(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	char *line = echo_line(60000, 1, 'q');
	bool dropped = false;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	/* ~60 KB replies, never read: the server must cut us off, not block. */
	for (int i = 0; i < 400 && !dropped; i++) {
		size_t len = strlen(line), off = 0;

		while (off < len) {
			ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

			if (n < 0 && errno == EAGAIN) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				/* Waiting is no cut-off: a server that just stops
				 * reading from us must fail this test. */
				if (poll(&p, 1, 5000) <= 0)
					fail_msg("the server neither read nor disconnected us for 5 s");
				if (p.revents & (POLLERR | POLLHUP)) {
					dropped = true;
					break;
				}
				continue;
			}
			if (n < 0) {
				assert_true(errno == EPIPE || errno == ECONNRESET);
				dropped = true;
				break;
			}
			off += (size_t)n;
		}
	}
	assert_true(dropped);
	roundtrip(f->path); /* and everyone else is still served */
	free(line);
	close(fd);
}

static void test_stale_socket_replaced(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	/* A socket file nobody listens on: what a killed VM leaves. */
	strcpy(sa.sun_path, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	fx_start(f);
	roundtrip(f->path);
}

static void test_live_path_refused(void **state)
{
	struct fx *f = *state;
	struct loop *l = loop_create();
	char longpath[200], regular[160];
	int fd;

	assert_non_null(l);
	assert_null(api_server_create(f->path, l, handler, f));
	roundtrip(f->path); /* the first server is untouched */

	/* Not a socket: left alone. */
	snprintf(regular, sizeof(regular), "%s/file", f->dir);
	fd = open(regular, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(api_server_create(regular, l, handler, f));
	assert_int_equal(access(regular, F_OK), 0);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_null(api_server_create(longpath, l, handler, f));
	loop_destroy(l);
}

/* --- kvmbox ctl --- */

struct ctl_out {
	int status;
	char out[8192];
	char err[8192];
};

static void slurp(const char *path, char *buf, size_t size)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, size - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/* Run cmd_ctl(args...) in a child with stdout/stderr captured. */
static void run_ctl(struct fx *f, struct ctl_out *o, ...)
{
	char *argv[16], outp[160], errp[160];
	va_list ap;
	int argc = 0, st;
	pid_t pid;

	va_start(ap, o);
	argv[argc++] = "ctl";
	while ((argv[argc] = va_arg(ap, char *)))
		assert_true(++argc < 15);
	va_end(ap);
	snprintf(outp, sizeof(outp), "%s/out", f->dir);
	snprintf(errp, sizeof(errp), "%s/err", f->dir);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fo = open(outp, O_CREAT | O_TRUNC | O_WRONLY, 0600);
		int fe = open(errp, O_CREAT | O_TRUNC | O_WRONLY, 0600);

		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(99);
		if (f->ctl_stdin_open) {
			int p[2];

			if (pipe(p) < 0 || dup2(p[0], 0) < 0)
				_exit(99);
		}
		st = cmd_ctl(argc, argv);
		fflush(NULL);
		_exit(st);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	o->status = WEXITSTATUS(st);
	slurp(outp, o->out, sizeof(o->out));
	slurp(errp, o->err, sizeof(o->err));
}

/* The "arguments" the echo handler saw, from ctl's printed reply. */
static struct json_object *ctl_args(struct ctl_out *o, const char *command)
{
	struct json_object *r = json_tokener_parse(o->out), *ret, *args;

	assert_int_equal(o->status, 0);
	assert_non_null(r);
	assert_int_equal(json_object_get_int(jget(r, "id")), 1);
	ret = jget(r, "return");
	assert_string_equal(jstr(ret, "command"), command);
	args = json_object_get(jget(ret, "arguments"));
	json_object_put(r);
	return args;
}

static void test_ctl_commands(void **state)
{
	struct fx *f = *state;
	struct ctl_out *o = malloc(sizeof(*o));
	struct json_object *a;
	char *cwd = getcwd(NULL, 0), want[PATH_MAX + 32];

	assert_non_null(o);
	assert_non_null(cwd);
	run_ctl(f, o, f->path, "info", NULL);
	a = ctl_args(o, "info");
	assert_int_equal(json_object_object_length(a), 0);
	json_object_put(a);
	assert_non_null(strstr(o->out, "\n")); /* pretty-printed, several lines */
	assert_string_equal(o->err, "");

	run_ctl(f, o, f->path, "snapshot", "rel/vm.state", NULL);
	a = ctl_args(o, "snapshot");
	snprintf(want, sizeof(want), "%s/rel/vm.state", cwd);
	assert_string_equal(jstr(a, "path"), want);
	json_object_put(a);

	run_ctl(f, o, f->path, "hibernate", "/abs/vm.state", NULL);
	a = ctl_args(o, "hibernate");
	assert_string_equal(jstr(a, "path"), "/abs/vm.state");
	json_object_put(a);

	run_ctl(f, o, f->path, "migrate", "tcp:10.0.0.2:4444", NULL);
	a = ctl_args(o, "migrate");
	assert_string_equal(jstr(a, "uri"), "tcp:10.0.0.2:4444");
	assert_null(jget(a, "disks"));
	json_object_put(a);

	run_ctl(f, o, f->path, "migrate", "unix:/run/m.sock", "disks=copy", NULL);
	a = ctl_args(o, "migrate");
	assert_string_equal(jstr(a, "uri"), "unix:/run/m.sock");
	assert_string_equal(jstr(a, "disks"), "copy");
	json_object_put(a);

	run_ctl(f, o, f->path, "balloon", "512M", NULL);
	a = ctl_args(o, "balloon");
	assert_true(json_object_is_type(jget(a, "size"), json_type_int));
	assert_true(json_object_get_int64(jget(a, "size")) == 512LL << 20);
	json_object_put(a);

	run_ctl(f, o, f->path, "shutdown", "timeout=5", NULL);
	a = ctl_args(o, "shutdown");
	assert_int_equal(json_object_get_int(jget(a, "timeout")), 5);
	json_object_put(a);

	run_ctl(f, o, f->path, "custom", "k=v", "n=3", "e=", NULL);
	a = ctl_args(o, "custom");
	assert_string_equal(jstr(a, "k"), "v");
	assert_string_equal(jstr(a, "n"), "3");
	assert_string_equal(jstr(a, "e"), "");
	json_object_put(a);

	run_ctl(f, o, "--timeout", "5", f->path, "--json",
		"{\"id\":\"z\",\"command\":\"raw\",\"arguments\":{\"x\":[1]}}", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "\"z\""));
	assert_non_null(strstr(o->out, "\"raw\""));

	run_ctl(f, o, f->path, "--json", "{\"command\":\"raw2\"}", NULL);
	a = ctl_args(o, "raw2"); /* "id": 1 added */
	json_object_put(a);
	free(cwd);
	free(o);
}

static void test_ctl_errors(void **state)
{
	struct fx *f = *state;
	struct ctl_out *o = malloc(sizeof(*o));
	char missing[160], want[512];

	assert_non_null(o);
	/* An error reply: 1, printed, desc on stderr. */
	run_ctl(f, o, f->path, "err", NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->out, "\"GenericError\""));
	assert_string_equal(o->err, "kvmbox: err: err was asked for 42\n");

	run_ctl(f, o, f->path, "--json", "{\"command\":5}", NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->out, "InvalidInput"));

	/* No VM there. */
	snprintf(missing, sizeof(missing), "%s/none.sock", f->dir);
	run_ctl(f, o, missing, "info", NULL);
	assert_int_equal(o->status, 1);
	snprintf(want, sizeof(want),
		 "kvmbox: control socket %s: No such file or directory; is the VM running with --api %s?\n",
		 missing, missing);
	assert_string_equal(o->err, want);
	assert_string_equal(o->out, "");

	/* No reply in time. */
	run_ctl(f, o, "--timeout", "1", f->path, "slow", NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->err, "no reply within 1 seconds"));
	wait_slow(f, 1);
	answer_slow(f, 0);
	free(o);
}

static void test_ctl_usage(void **state)
{
	struct fx *f = *state;
	struct ctl_out *o = malloc(sizeof(*o));
	const char *bad[][4] = {
		{ NULL },
		{ "sock", NULL },
		{ "--bogus", "sock", "info", NULL },
		{ "--timeout", NULL },
		{ "--timeout", "0", "sock", "info" },
		{ "--timeout", "x", "sock", "info" },
		{ "sock", "info", "extra", NULL },
		{ "sock", "balloon", "12Q", NULL },
		{ "sock", "balloon", NULL },
		{ "sock", "snapshot", NULL },
		{ "sock", "snapshot", "a", "b" },
		{ "sock", "migrate", NULL },
		{ "sock", "migrate", "unix:/m", "disks=share" },
		{ "sock", "shutdown", "now", NULL },
		{ "sock", "custom", "noequals", NULL },
		{ "sock", "--json", "{nope", NULL },
		{ "sock", "--json", "[1]", NULL },
	};

	assert_non_null(o);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const *w = bad[i];
		size_t n = 0;

		while (n < 4 && w[n])
			n++;
		if (n == 0)
			run_ctl(f, o, NULL);
		else if (n == 1)
			run_ctl(f, o, w[0], NULL);
		else if (n == 2)
			run_ctl(f, o, w[0], w[1], NULL);
		else if (n == 3)
			run_ctl(f, o, w[0], w[1], w[2], NULL);
		else
			run_ctl(f, o, w[0], w[1], w[2], w[3], NULL);
		if (o->status != 2)
			fail_msg("case %zu (%s %s): status %d, stderr: %s", i, w[0] ? w[0] : "",
				 n > 1 ? w[1] : "", o->status, o->err);
		assert_non_null(strstr(o->err, "usage: kvmbox ctl"));
		assert_string_equal(o->out, "");
	}
	run_ctl(f, o, "--help", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "usage: kvmbox ctl"));
	free(o);
}

/* --- api_hijack and kvmbox ctl's console --- */

/* The connection leaves the protocol after the hijacking request's reply: the bytes after its
 * line are the hijacker's (a request among them is not handled), the connection carries raw
 * bytes both ways, and the server goes on with other clients. */
static void test_hijack(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	struct json_object *r;
	char buf[64];

	cli_send(fd, "{\"id\":1,\"command\":\"hijack\"}\nraw bytes\n{\"id\":2,\"command\":\"info\"}\n");
	r = cli_reply(fd);
	assert_int_equal(json_object_get_int(jget(r, "id")), 1);
	assert_true(json_object_get_boolean(jget(jget(r, "return"), "hijacked")));
	json_object_put(r);
	wait_count(f, &f->nhijacked, 1);
	assert_true(f->hj_fd >= 0);
	assert_string_equal(f->hj_pending, "raw bytes\n{\"id\":2,\"command\":\"info\"}\n");
	assert_int_equal(f->nhandled, 1);
	assert_int_equal(send(f->hj_fd, "out", 3, MSG_NOSIGNAL), 3);
	assert_int_equal(cli_readline_to(fd, buf, sizeof(buf), 2000), -1); /* "out", no '\n' */
	cli_send(fd, "in\n");
	{
		struct pollfd p = { .fd = f->hj_fd, .events = POLLIN };

		assert_int_equal(poll(&p, 1, 2000), 1);
		assert_int_equal(recv(f->hj_fd, buf, sizeof(buf), 0), 3);
		assert_memory_equal(buf, "in\n", 3);
	}
	roundtrip(f->path);
	close(f->hj_fd);
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0); /* the hijacker closed it */
	close(fd);
}

/* A hijack behind a request not answered yet waits for it: both replies in order, then the
 * hand-over; the client leaving first, or the server going away, is a hand-over of -1. */
static void test_hijack_waits(void **state)
{
	struct fx *f = *state;
	int fd = cli_connect(f->path);
	struct json_object *r;

	cli_send(fd, "{\"id\":1,\"command\":\"slow\"}\n{\"id\":2,\"command\":\"hijack\"}\nX");
	wait_slow(f, 1);
	wait_handled(f, 2);
	assert_int_equal(f->nhijacked, 0);
	answer_slow(f, 0);
	r = cli_reply(fd);
	assert_int_equal(json_object_get_int(jget(r, "id")), 1);
	json_object_put(r);
	r = cli_reply(fd);
	assert_int_equal(json_object_get_int(jget(r, "id")), 2);
	json_object_put(r);
	wait_count(f, &f->nhijacked, 1);
	assert_true(f->hj_fd >= 0);
	assert_string_equal(f->hj_pending, "X");
	close(f->hj_fd);
	close(fd);

	/* The client leaves before its hand-over. */
	fd = cli_connect(f->path);
	cli_send(fd, "{\"id\":1,\"command\":\"slow\"}\n{\"id\":2,\"command\":\"hijack\"}\n");
	wait_slow(f, 2);
	wait_handled(f, 4);
	close(fd);
	wait_count(f, &f->nhijacked, 2);
	assert_int_equal(f->hj_fd, -1);
	answer_slow(f, 1);

	/* The server goes away before it. */
	fd = cli_connect(f->path);
	cli_send(fd, "{\"id\":1,\"command\":\"slow\"}\n{\"id\":2,\"command\":\"hijack\"}\n");
	wait_slow(f, 3);
	wait_handled(f, 6);
	f->hj_fd = 99;
	fx_stop(f);
	assert_int_equal(f->nhijacked, 3);
	assert_int_equal(f->hj_fd, -1);
	answer_slow(f, 2);
	close(fd);
}

/* kvmbox ctl SOCKET console NAME (not a terminal): the output and up's last line, status 1 and
 * nothing more said; without up's line, one line saying the connection ended; an error reply
 * is one line; usage. */
static void test_ctl_console(void **state)
{
	struct fx *f = *state;
	struct ctl_out *o = malloc(sizeof(*o));
	char want[512];

	assert_non_null(o);
	f->ctl_stdin_open = true;
	run_ctl(f, o, f->path, "console", "x", NULL);
	assert_int_equal(o->status, 1);
	assert_string_equal(o->out, "console!\r\n\r\nkvmbox: up: vm x: stopped\r\n");
	assert_string_equal(o->err, "");

	run_ctl(f, o, f->path, "console", "silent", NULL);
	assert_int_equal(o->status, 1);
	assert_string_equal(o->out, "x");
	snprintf(want, sizeof(want),
		 "kvmbox: console: control socket %s closed the connection; is kvmbox up still running?\n",
		 f->path);
	assert_string_equal(o->err, want);

	run_ctl(f, o, f->path, "console", "busy", NULL);
	assert_int_equal(o->status, 1);
	assert_string_equal(o->out, "");
	assert_string_equal(o->err, "kvmbox: console: vm busy: another client is attached to its console\n");

	/* The end of stdin detaches: status 0. */
	f->ctl_stdin_open = false;
	{
		int saved = dup(0), null = open("/dev/null", O_RDONLY);

		assert_true(saved >= 0 && null >= 0);
		dup2(null, 0);
		run_ctl(f, o, f->path, "console", "x", NULL);
		dup2(saved, 0);
		close(saved);
		close(null);
	}
	assert_true(o->status == 0 || o->status == 1); /* stdin's end or up's line, whichever first */
	assert_string_equal(o->err, "");

	run_ctl(f, o, f->path, "console", NULL);
	assert_int_equal(o->status, 2);
	run_ctl(f, o, f->path, "console", "a", "b", NULL);
	assert_int_equal(o->status, 2);
	run_ctl(f, o, f->path, "console", "-x", NULL);
	assert_int_equal(o->status, 2);
	free(o);
}

/* The relay of an attached console: escapes (on a terminal), the end of input, up's end, a
 * signal. */
static void test_console_relay(void **state)
{
	int sv[2], in[2], out[2], sig[2];
	char buf[256];
	bool up;
	ssize_t n;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(sig), 0);
	/* Ctrl-A Ctrl-A is one Ctrl-A, Ctrl-A x detaches: what came before it is sent. The first
	 * bytes (after the reply) are output. */
	assert_int_equal(write(in[1],
			       "ab\x01\x01"
			       "c\x01x",
			       7),
			 7);
	assert_int_equal(ctl_console_relay(sv[0], in[0], out[1], true, sig[0], (const uint8_t *)"hi", 2, &up),
			 0);
	assert_false(up);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 4);
	assert_memory_equal(buf,
			    "ab\x01"
			    "c",
			    4);
	assert_int_equal(read(out[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);

	/* Not a terminal: no escape; the end of input detaches (0). */
	assert_int_equal(write(in[1], "\x01x", 2), 2);
	close(in[1]);
	assert_int_equal(ctl_console_relay(sv[0], in[0], out[1], false, sig[0], NULL, 0, &up), 0);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 2);
	assert_memory_equal(buf, "\x01x", 2);
	close(in[0]);

	/* A signal: 128+N. */
	{
		struct signalfd_siginfo si = { .ssi_signo = SIGTERM };

		assert_int_equal(write(sig[1], &si, sizeof(si)), (ssize_t)sizeof(si));
		assert_int_equal(ctl_console_relay(sv[0], -1, out[1], true, sig[0], NULL, 0, &up),
				 128 + SIGTERM);
	}

	/* up's line and the end: 1, ended by up; its output on out. */
	assert_int_equal(send(sv[1], "tick\r\n\r\nkvmbox: up: vm a: stopped\r\n", 35, 0), 35);
	shutdown(sv[1], SHUT_WR);
	assert_int_equal(ctl_console_relay(sv[0], -1, out[1], true, sig[0], NULL, 0, &up), 1);
	assert_true(up);
	n = read(out[0], buf, sizeof(buf));
	assert_int_equal(n, 35);
	close(sv[0]);
	close(sv[1]);

	/* The end without it: not ended by up. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(send(sv[1], "tick\r\n", 6, 0), 6);
	close(sv[1]);
	assert_int_equal(ctl_console_relay(sv[0], -1, out[1], true, sig[0], NULL, 0, &up), 1);
	assert_false(up);
	close(sv[0]);
	close(out[0]);
	close(out[1]);
	close(sig[0]);
	close(sig[1]);
}

static void test_console_ended_by_up(void **state)
{
	const char *yes = "x\r\nkvmbox: up: vm a: its process exited with status 0; console detached\r\n";
	const char *no[] = { "",
			     "\r\n",
			     "kvmbox: up: vm a",
			     "tick 3\r\n",
			     "\r\nkvmbox: up:\r\n",
			     "kvmbox: up: vm a: x\r\ntick\r\n" };

	(void)state;
	assert_true(ctl_console_ended_by_up(yes, strlen(yes)));
	assert_true(ctl_console_ended_by_up(yes + 3, strlen(yes) - 3)); /* the line alone */
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(ctl_console_ended_by_up(no[i], strlen(no[i])));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_request, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_requests, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_line, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_two_clients_interleaved, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_reply_order, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_before_slow_reply, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_with_pending, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_and_half_closed, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_client_not_reading, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_path_refused, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_commands, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_errors, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_usage, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_hijack, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_hijack_waits, setup_running, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_console, setup_running, teardown),
		cmocka_unit_test(test_console_relay),
		cmocka_unit_test(test_console_ended_by_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
