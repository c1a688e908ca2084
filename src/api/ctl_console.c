/* ctl_console.c - `kvmbox ctl UP_SOCKET console NAME`: this terminal on a VM's console, through
 * kvmbox up's control socket (docs/API.md, "console").
 *
 * The request is the protocol's one line; after its reply (`return`) the connection carries raw
 * bytes both ways: the guest's console from up (the log's tail, then live), what is typed to up.
 * On a terminal, stdin is put in raw mode, as `kvmbox run` does, with the same escape: Ctrl-A x
 * detaches, Ctrl-A Ctrl-A sends one Ctrl-A (backends/console.c, console_filter). The terminal is
 * restored on every way out: the escape, the end of stdin, up closing the connection (the VM
 * stopped: up's last line says so), SIGTERM, SIGHUP, SIGINT or SIGQUIT (status 128+N) and the
 * fatal signals (console.c's handlers). */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../backends/console.h"
#include "../core/log.h"
#include "../core/util.h"

#define CTL_CONSOLE_BUF 4096

bool ctl_console_ended_by_up(const char *tail, size_t len)
{
	size_t start;

	/* "...\r\nkvmbox: up: ...\r\n" (up_console.c, finish) */
	if (len < 2 || tail[len - 2] != '\r' || tail[len - 1] != '\n')
		return false;
	for (start = len - 2; start > 0 && tail[start - 1] != '\n'; start--)
		;
	return len - 2 - start >= 12 && !memcmp(tail + start, "kvmbox: up: ", 12);
}

int ctl_console_attach(const char *path, const char *name, unsigned timeout_s, uint8_t **pending, size_t *n)
{
	struct json_object *req, *args, *r = NULL, *e, *desc;
	char *line = NULL, *buf = NULL, err[512];
	size_t extra = 0, len;
	int fd = -1;

	*pending = NULL;
	*n = 0;
	req = json_object_new_object();
	args = json_object_new_object();
	if (!req || !args) {
		json_object_put(req);
		json_object_put(args);
		goto oom;
	}
	json_object_object_add(args, "name", json_object_new_string(name));
	json_object_object_add(req, "id", json_object_new_int(1));
	json_object_object_add(req, "command", json_object_new_string("console"));
	json_object_object_add(req, "arguments", args);
	if (asprintf(&line, "%s\n",
		     json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		line = NULL;
	json_object_put(req);
	if (!line)
		goto oom;
	/* The reply line; what follows it is the console's first output. */
	fd = api_exchange(path, line, timeout_s, &buf, &extra, err, sizeof(err));
	if (fd < 0) {
		log_error("%s", err);
		goto fail;
	}
	r = json_tokener_parse(buf);
	if (!r || !json_object_is_type(r, json_type_object)) {
		log_error("control socket %s: the reply is not a JSON object; is this kvmbox up's socket?",
			  path);
		goto fail;
	}
	if (json_object_object_get_ex(r, "error", &e)) {
		if (json_object_object_get_ex(e, "desc", &desc) &&
		    json_object_is_type(desc, json_type_string))
			log_error("console: %s", json_object_get_string(desc));
		else
			log_error("console: failed (no description)");
		goto fail;
	}
	if (!json_object_object_get_ex(r, "return", NULL)) {
		log_error("control socket %s: the reply has neither \"return\" nor \"error\"", path);
		goto fail;
	}
	len = strlen(buf);
	memmove(buf, buf + len + 1, extra);
	*n = extra;
	*pending = (uint8_t *)buf;
	json_object_put(r);
	free(line);
	return fd;
oom:
	log_error("ctl: out of memory");
fail:
	json_object_put(r);
	free(line);
	free(buf);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Keep the last bytes of the output in tail (for ctl_console_ended_by_up). */
static void keep_tail(char *tail, size_t *len, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap) {
		memcpy(tail, p + n - cap, cap);
		*len = cap;
		return;
	}
	if (*len + n > cap) {
		size_t drop = *len + n - cap;

		memmove(tail, tail + drop, *len - drop);
		*len -= drop;
	}
	memcpy(tail + *len, p, n);
	*len += n;
}

int ctl_console_relay(int sock, int in_fd, int out_fd, bool escape, int sig_fd, const uint8_t *first,
		      size_t nfirst, bool *ended_by_up)
{
	uint8_t raw[CTL_CONSOLE_BUF], out[CTL_CONSOLE_BUF], buf[CTL_CONSOLE_BUF];
	char tail[256];
	size_t head = 0, len = 0, tail_len = 0;
	bool esc = false, in_open = in_fd >= 0;

	*ended_by_up = false;
	if (fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK) < 0) {
		log_error("console: fcntl: %s", strerror(errno));
		return 1;
	}
	if (nfirst) {
		keep_tail(tail, &tail_len, sizeof(tail), first, nfirst);
		if (write_all(out_fd, first, nfirst) < 0) {
			log_error("console: writing the guest's output: %s; detached", strerror(errno));
			return 1;
		}
	}
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = sock, .events = POLLIN | (len ? POLLOUT : 0) },
			{ .fd = in_open && !len ? in_fd : -1, .events = POLLIN },
			{ .fd = sig_fd, .events = POLLIN },
		};
		ssize_t r;

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("console: poll: %s", strerror(errno));
			return 1;
		}
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				return 128 + (int)si.ssi_signo;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = recv(sock, buf, sizeof(buf), 0);
			if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
				continue;
			if (r <= 0) {
				/* up closed it (ECONNRESET: it had unread input from us) */
				*ended_by_up = ctl_console_ended_by_up(tail, tail_len);
				return 1;
			}
			keep_tail(tail, &tail_len, sizeof(tail), buf, (size_t)r);
			if (write_all(out_fd, buf, (size_t)r) < 0) {
				log_error("console: writing the guest's output: %s; detached",
					  strerror(errno));
				return 1;
			}
		}
		if (len && (p[0].revents & POLLOUT)) {
			r = send(sock, out + head, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
				*ended_by_up = ctl_console_ended_by_up(tail, tail_len);
				return 1;
			}
			if (r > 0) {
				head += (size_t)r;
				len -= (size_t)r;
			}
		}
		if (!len && in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			bool quit = false;

			r = read(in_fd, raw, sizeof(raw));
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0)
				return 0; /* the end of stdin (or a terminal gone): detach */
			head = 0;
			if (escape) {
				len = console_filter(&esc, raw, (size_t)r, out, &quit);
			} else {
				memcpy(out, raw, (size_t)r);
				len = (size_t)r;
			}
			if (quit) {
				/* What came before the escape, if the socket takes it now. */
				if (len && send(sock, out, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
					/* lost: the user detached */
				}
				return 0;
			}
		}
	}
}

int ctl_console(const char *path, const char *name, unsigned timeout_s)
{
	struct console *con = NULL;
	uint8_t *pending;
	size_t n;
	sigset_t set, old;
	bool tty = isatty(STDIN_FILENO), ended_by_up = false;
	int fd, sfd, ret;

	fd = ctl_console_attach(path, name, timeout_s, &pending, &n);
	if (fd < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, &old);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("console: signalfd: %s; raise the open file limit", strerror(errno));
		free(pending);
		close(fd);
		return 1;
	}
	if (tty) {
		fprintf(stderr, "kvmbox: console of vm %s (Ctrl-A x detaches)\n", name);
		con = console_open(STDIN_FILENO, -1); /* raw mode, restored by console_close */
		if (!con) {
			free(pending);
			close(sfd);
			close(fd);
			return 1;
		}
	}
	ret = ctl_console_relay(fd, STDIN_FILENO, STDOUT_FILENO, tty, sfd, pending, n, &ended_by_up);
	free(pending);
	close(fd);
	console_close(con);
	close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (ret == 1 && !ended_by_up)
		log_error("console: control socket %s closed the connection; is kvmbox up still running?",
			  path);
	else if (ret == 0 && tty)
		fprintf(stderr, "\nkvmbox: detached from the console of vm %s\n", name);
	return ret;
}
