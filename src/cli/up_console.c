/* up_console.c - the console relay of kvmbox up (up_console.h). */
#include "up_console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "up.h"

struct up_console {
	struct loop *loop;
	char name[UP_NAME_MAX + 1];
	up_console_gone_fn gone;
	void *ctx;
	int fd;         /* the client: -1 until the hand-over */
	int log_fd;     /* the console log, read only */
	int ino_fd;     /* inotify: IN_MODIFY of the log */
	int in_fd;      /* our duplicate of the VM's input pipe (write end) */
	uint64_t off;   /* the next log byte the client gets */
	uint32_t armed; /* the client's events in the loop */
	bool out_wait;  /* log bytes left to send: wait for EPOLLOUT */
	bool in_watch;  /* in_fd is in the loop (EPOLLOUT: the pipe was full) */
	bool in_dead;   /* the pipe has no reader (the VM's process ended): input is dropped */
	bool stopped;   /* up_console_stop before the hand-over */
	char *line;     /* its line */
	uint8_t *buf;   /* client input not yet in the pipe */
	size_t cap, head, len;
};

size_t up_console_tail_start(const char *win, size_t len)
{
	const char *nl = len ? memchr(win, '\n', len) : NULL;

	return nl && (size_t)(nl - win) + 1 < len ? (size_t)(nl - win) + 1 : 0;
}

struct up_console *up_console_new(struct loop *l, const char *name, const char *log_path, int in_fd,
				  up_console_gone_fn gone, void *ctx, char *err, size_t errlen)
{
	struct up_console *c = calloc(1, sizeof(*c));

	if (!c || !(c->buf = malloc(UP_CONSOLE_IN))) {
		free(c);
		snprintf(err, errlen, "vm %s: console: out of memory", name);
		return NULL;
	}
	c->loop = l;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->gone = gone;
	c->ctx = ctx;
	c->cap = UP_CONSOLE_IN;
	c->fd = -1;
	c->ino_fd = -1;
	c->in_fd = -1;
	c->log_fd = open(log_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (c->log_fd < 0) {
		snprintf(err, errlen, "vm %s: console log %s: %s; is console-log readable?", name, log_path,
			 strerror(errno));
		goto fail;
	}
	c->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ino_fd < 0 || inotify_add_watch(c->ino_fd, log_path, IN_MODIFY) < 0) {
		snprintf(err, errlen,
			 "vm %s: console: inotify on %s: %s; raise fs.inotify.max_user_instances or "
			 "max_user_watches",
			 name, log_path, strerror(errno));
		goto fail;
	}
	c->in_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
	if (c->in_fd < 0) {
		snprintf(err, errlen, "vm %s: console: %s; raise the open file limit", name, strerror(errno));
		goto fail;
	}
	return c;
fail:
	if (c->log_fd >= 0)
		close(c->log_fd);
	if (c->ino_fd >= 0)
		close(c->ino_fd);
	free(c->buf);
	free(c);
	return NULL;
}

static void console_free(struct up_console *c)
{
	if (c->fd >= 0) {
		loop_del(c->loop, c->fd);
		close(c->fd);
	}
	if (c->ino_fd >= 0) {
		loop_del(c->loop, c->ino_fd);
		close(c->ino_fd);
	}
	if (c->in_watch)
		loop_del(c->loop, c->in_fd);
	if (c->in_fd >= 0)
		close(c->in_fd);
	close(c->log_fd);
	free(c->line);
	free(c->buf);
	free(c);
}

/* The client is gone: tell up, free. */
static void detach(struct up_console *c)
{
	up_console_gone_fn gone = c->gone;
	void *ctx = c->ctx;

	console_free(c);
	gone(ctx);
}

/* Send the log from c->off on, as far as the client takes it, at most UP_CONSOLE_MAX bytes (more
 * left: out_wait, and EPOLLOUT brings the next round). 0, or -1: the client is gone. */
static int pump_output(struct up_console *c)
{
	uint8_t buf[16384];
	size_t sent = 0;

	c->out_wait = false;
	while (sent < UP_CONSOLE_MAX) {
		struct stat st;
		ssize_t r, w;
		size_t want;

		if (fstat(c->log_fd, &st) < 0)
			return 0;
		if ((uint64_t)st.st_size < c->off)
			c->off = 0; /* truncated (logrotate's copytruncate): from its new start */
		if ((uint64_t)st.st_size == c->off)
			return 0;
		want = (uint64_t)st.st_size - c->off < sizeof(buf) ? (size_t)((uint64_t)st.st_size - c->off)
								   : sizeof(buf);
		r = pread(c->log_fd, buf, want, (off_t)c->off);
		if (r <= 0)
			return 0; /* read again at the next change */
		w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->out_wait = true;
				return 0;
			}
			return -1;
		}
		c->off += (uint64_t)w;
		sent += (size_t)w;
		if (w < r) {
			c->out_wait = true;
			return 0;
		}
	}
	c->out_wait = true;
	return 0;
}

static void on_in(struct loop *l, int fd, uint32_t events, void *opaque);
static void arm(struct up_console *c);

/* Client input into the VM's pipe, as far as it takes it; a full pipe: wait for EPOLLOUT on it
 * (the client is not read meanwhile). A pipe without a reader (the VM ended): input dropped. */
static void flush_input(struct up_console *c)
{
	while (c->len && !c->in_dead) {
		ssize_t w = write(c->in_fd, c->buf + c->head, c->len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->in_watch && loop_add(c->loop, c->in_fd, EPOLLOUT, on_in, c) == 0)
					c->in_watch = true;
				if (c->in_watch)
					return;
			}
			c->in_dead = true; /* EPIPE (SIGPIPE is blocked in up), or no way to wait */
			break;
		}
		c->head += (size_t)w;
		c->len -= (size_t)w;
	}
	if (c->in_dead)
		c->len = 0;
	if (!c->len) {
		c->head = 0;
		if (c->in_watch) {
			loop_del(c->loop, c->in_fd);
			c->in_watch = false;
		}
	}
}

static void arm(struct up_console *c)
{
	uint32_t ev = (c->len ? 0 : EPOLLIN) | (c->out_wait ? EPOLLOUT : 0);

	if (ev != c->armed && loop_mod(c->loop, c->fd, ev) == 0)
		c->armed = ev;
}

static void on_in(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct up_console *c = opaque;

	if (events & EPOLLERR)
		c->in_dead = true;
	flush_input(c);
	arm(c);
}

static void on_client(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct up_console *c = opaque;

	if ((events & EPOLLIN) && !c->len) {
		ssize_t n = read(c->fd, c->buf, c->cap);

		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
			detach(c);
			return;
		}
		if (n > 0) {
			c->head = 0;
			c->len = (size_t)n;
			flush_input(c);
		}
	} else if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
		detach(c);
		return;
	}
	if ((events & EPOLLOUT) && pump_output(c) < 0) {
		detach(c);
		return;
	}
	arm(c);
}

static void on_log(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct up_console *c = opaque;
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, ev, sizeof(ev)) > 0)
		;
	if (!c->out_wait && pump_output(c) < 0) {
		detach(c);
		return;
	}
	arm(c);
}

/* Send what the client's socket takes now of the log and of line, then close. */
static void finish(struct up_console *c, const char *line)
{
	char text[600];
	int n;
	uint8_t drop[4096];

	if (pump_output(c) == 0 && !c->out_wait) {
		n = snprintf(text, sizeof(text), "\r\n%s\r\n", line ? line : "");
		if (n > 0 && send(c->fd, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1,
				  MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the client's buffer is full or it is gone: the line is lost to it */
		}
	}
	/* Unread input would turn the client's end of the stream into ECONNRESET: drop it (the
	 * client may go on sending: a bounded number of reads). */
	for (int i = 0; i < 16 && recv(c->fd, drop, sizeof(drop), MSG_DONTWAIT) > 0; i++)
		;
	console_free(c);
}

void up_console_hijacked(void *con, int fd, const uint8_t *pending, size_t n)
{
	struct up_console *c = con;
	struct stat st;

	if (fd < 0) {
		if (c->stopped)
			console_free(c);
		else
			detach(c);
		return;
	}
	c->fd = fd;
	if (fstat(c->log_fd, &st) == 0 && st.st_size > UP_CONSOLE_TAIL) {
		char win[UP_CONSOLE_TAIL];
		ssize_t r;

		c->off = (uint64_t)st.st_size - UP_CONSOLE_TAIL;
		r = pread(c->log_fd, win, sizeof(win), (off_t)c->off);
		if (r > 0)
			c->off += up_console_tail_start(win, (size_t)r);
	}
	if (c->stopped) {
		finish(c, c->line);
		return;
	}
	if (loop_add(c->loop, fd, EPOLLIN, on_client, c) < 0) {
		log_warn("up: vm %s: console: epoll: %s; the client is detached", c->name, strerror(errno));
		detach(c);
		return;
	}
	c->armed = EPOLLIN;
	if (loop_add(c->loop, c->ino_fd, EPOLLIN, on_log, c) < 0) {
		log_warn("up: vm %s: console: epoll: %s; the client is detached", c->name, strerror(errno));
		detach(c);
		return;
	}
	/* What the client sent after its request line: the first input. */
	if (n) {
		if (n > c->cap) {
			uint8_t *b = realloc(c->buf, n);

			if (!b) {
				log_warn("up: vm %s: console: out of memory; the client is detached",
					 c->name);
				detach(c);
				return;
			}
			c->buf = b;
			c->cap = n;
		}
		memcpy(c->buf, pending, n);
		c->len = n;
		flush_input(c);
	}
	if (pump_output(c) < 0) {
		detach(c);
		return;
	}
	arm(c);
}

void up_console_stop(struct up_console *c, const char *line)
{
	if (c->fd < 0) {
		/* The hand-over is still to come: then. */
		c->stopped = true;
		c->line = strdup(line);
		if (!c->line)
			c->line = strdup("");
		return;
	}
	finish(c, line);
}
