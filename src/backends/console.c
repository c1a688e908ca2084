#include "console.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"

#define CONSOLE_BUF 4096
#define ESCAPE_CHAR 0x01 /* Ctrl-A */

struct console {
	int in_fd;
	int out_fd;
	int space_efd; /* device -> main loop: room for input again */
	bool is_tty;
	bool esc_pending;
	bool in_eof;
	struct loop *loop;
	console_receive_fn receive;
	void *dev;
	void (*quit)(void *ctx);
	void *quit_ctx;
	uint8_t buf[CONSOLE_BUF];
	size_t head, len; /* pending input */
};

/* The terminal is a process-wide resource, and a fatal signal handler can
 * only reach it through static storage: this is the one place kvmbox keeps
 * such state. */
static struct termios saved_tio;
static int saved_tio_fd = -1;

static void restore_tty(void)
{
	if (saved_tio_fd >= 0)
		tcsetattr(saved_tio_fd, TCSANOW, &saved_tio);
}

void console_restore_terminal(void)
{
	restore_tty();
}

static void fatal_signal(int sig)
{
	restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The guest's output; a terminal or pipe that went away (EPIPE) only loses it: the guest keeps
 * running. */
static void console_write(void *ctx, const uint8_t *p, size_t n)
{
	struct console *c = ctx;

	if (c->out_fd >= 0 && write_all(c->out_fd, p, n) < 0) {
		/* output gone */
	}
}

static void rx_space(void *ctx)
{
	struct console *c = ctx;
	uint64_t one = 1;

	if (write(c->space_efd, &one, sizeof(one)) < 0) {
		/* eventfd full is impossible in practice; the next byte retries */
	}
}

struct char_port console_port(struct console *c)
{
	return (struct char_port){ .write = console_write, .rx_space = rx_space, .ctx = c };
}

size_t console_filter(bool *state, const uint8_t *in, size_t n, uint8_t *out, bool *quit)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (*state) {
			*state = false;
			if (in[i] == 'x' || in[i] == 'X') {
				*quit = true;
				return o;
			}
			if (in[i] == ESCAPE_CHAR) {
				out[o++] = ESCAPE_CHAR;
				continue;
			}
			/* Unknown escape: pass both through. */
			out[o++] = ESCAPE_CHAR;
			out[o++] = in[i];
			continue;
		}
		if (in[i] == ESCAPE_CHAR) {
			*state = true;
			continue;
		}
		out[o++] = in[i];
	}
	return o;
}

/* Push pending input into the device; watch stdin only when the buffer is empty. */
static void flush_input(struct console *c)
{
	while (c->len && c->receive) {
		size_t took = c->receive(c->dev, c->buf + c->head, c->len);

		if (!took)
			break;
		c->head += took;
		c->len -= took;
	}
	if (!c->len)
		c->head = 0;
	if (c->loop && c->in_fd >= 0 && !c->in_eof)
		loop_mod(c->loop, c->in_fd, c->len ? 0 : EPOLLIN);
}

static void on_input(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct console *c = opaque;
	uint8_t raw[CONSOLE_BUF / 2];
	bool quit = false;
	ssize_t n;

	n = read(fd, raw, sizeof(raw));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EOF or error: no more input, the VM runs on. */
		c->in_eof = true;
		loop_del(l, fd);
		return;
	}
	/* stdin is only watched while the buffer is empty, so raw fits. */
	if (!c->len)
		c->head = 0;
	if (c->is_tty) {
		c->len += console_filter(&c->esc_pending, raw, (size_t)n, c->buf + c->head + c->len, &quit);
	} else {
		memcpy(c->buf + c->head + c->len, raw, (size_t)n);
		c->len += (size_t)n;
	}
	if (quit && c->quit)
		c->quit(c->quit_ctx);
	flush_input(c);
}

static void on_space(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct console *c = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* spurious wake-up */
	}
	flush_input(c);
}

struct console *console_open(int in_fd, int out_fd)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c) {
		log_error("out of memory");
		return NULL;
	}
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->space_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->space_efd < 0) {
		log_error("eventfd: %s; raise the open file limit", strerror(errno));
		free(c);
		return NULL;
	}
	if (in_fd >= 0 && isatty(in_fd) && tcgetattr(in_fd, &saved_tio) == 0) {
		struct termios raw = saved_tio;
		struct sigaction sa;
		static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };

		saved_tio_fd = in_fd;
		c->is_tty = true;
		atexit(restore_tty);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = fatal_signal;
		for (size_t i = 0; i < ARRAY_SIZE(fatal); i++)
			sigaction(fatal[i], &sa, NULL);
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST; /* keep \n -> \r\n for our own messages */
		tcsetattr(in_fd, TCSANOW, &raw);
	}
	return c;
}

int console_attach(struct console *c, struct loop *l, console_receive_fn receive, void *dev,
		   void (*quit)(void *ctx), void *quit_ctx)
{
	c->receive = receive;
	c->dev = dev;
	c->quit = quit;
	c->quit_ctx = quit_ctx;
	if (c->loop)
		return 0;
	c->loop = l;
	if (loop_add(l, c->space_efd, EPOLLIN, on_space, c) < 0)
		return -1;
	if (c->in_fd >= 0 && loop_add(l, c->in_fd, EPOLLIN, on_input, c) < 0) {
		/* A regular file or /dev/null cannot be polled: no input then. */
		c->in_eof = true;
	}
	return 0;
}

void console_detach(struct console *c)
{
	c->receive = NULL;
	c->dev = NULL;
}

void console_close(struct console *c)
{
	if (!c)
		return;
	if (c->is_tty) {
		restore_tty();
		saved_tio_fd = -1;
	}
	close(c->space_efd);
	free(c);
}
