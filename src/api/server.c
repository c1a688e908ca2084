/* server.c - the control socket server (see api.h and docs/API.md).
 *
 * Everything except api_reply()/api_error() runs on the loop's thread. A
 * request lives in its client's FIFO queue from the moment its line is read
 * until its reply has been copied to the client's output buffer, so replies
 * leave in request order however late a handler answers. Answers from other
 * threads are handed over through a small shared "hub" (mutex + eventfd)
 * that outlives the server for as long as any request is unanswered: a
 * request whose client (or server) went away is "orphaned" and freed by the
 * thread that finally answers it. */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/unixsock.h"

#define API_BACKLOG     16
#define API_MAX_CLIENTS 32
/* Requests queued per client before we stop reading from it (backpressure). */
#define API_MAX_PENDING 32
/* Unsent reply bytes beyond which a client that does not read is dropped. */
#define API_MAX_OUTPUT (1024 * 1024)

/* Shared between the server (loop thread) and answering threads. */
struct api_hub {
	pthread_mutex_t lock;
	int refs; /* the server + every live request */
	int efd;  /* wakes the loop; -1 once the server is gone */
};

struct api_client;

struct api_req {
	struct api_hub *hub;
	struct json_object *request; /* the parsed line: owns id, command and args */
	struct json_object *id;      /* borrowed from request; NULL if none */
	char *reply;                 /* the reply line with '\n', once answered */
	size_t reply_len;
	bool answered;        /* under hub->lock */
	bool orphaned;        /* under hub->lock: nobody will send the reply */
	struct api_req *next; /* client queue: loop thread only */
	api_hijack_fn hijack; /* api_hijack: the connection goes to hijack(hijack_ctx, ...) */
	void *hijack_ctx;
};

struct api_client {
	struct api_server *s;
	int fd;
	uint32_t events; /* currently armed in the loop */
	char *in;        /* API_MAX_LINE + 2: a full line, '\n' and a NUL */
	size_t in_len;
	bool discarding; /* inside an oversized line: drop up to '\n' */
	bool eof;        /* the client will send nothing more */
	char *out;
	size_t out_len, out_off;
	struct api_req *head, *tail;
	unsigned queued;
	api_hijack_fn hijack; /* set: no more requests; the connection goes to hijack() once the
			       * replies queued before it are out (client_handover) */
	void *hijack_ctx;
	struct api_client *next;
};

struct api_server {
	struct loop *loop;
	api_handler_fn handler;
	void *ctx;
	char *path;
	struct stat st; /* the socket file we created */
	int lfd;
	int spare_fd; /* given up to shed a connection at the fd limit */
	struct api_hub *hub;
	struct api_client *clients;
	unsigned nclients;
};

static void hub_unref(struct api_hub *h)
{
	bool last;

	pthread_mutex_lock(&h->lock);
	last = --h->refs == 0;
	pthread_mutex_unlock(&h->lock);
	if (last) {
		pthread_mutex_destroy(&h->lock);
		free(h);
	}
}

static void req_free(struct api_req *r)
{
	if (!r)
		return;
	json_object_put(r->request);
	free(r->reply);
	hub_unref(r->hub);
	free(r);
}

static struct api_req *req_new(struct api_server *s)
{
	struct api_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->hub = s->hub;
	pthread_mutex_lock(&s->hub->lock);
	s->hub->refs++;
	pthread_mutex_unlock(&s->hub->lock);
	return r;
}

/* Serialise {"id": ID, key: value} into a line; takes ownership of value. */
static char *reply_line(struct json_object *id, const char *key, struct json_object *value, size_t *len)
{
	struct json_object *o = json_object_new_object();
	const char *txt;
	char *line = NULL;

	if (!o) {
		json_object_put(value);
		return NULL;
	}
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(o, key, value);
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (txt) {
		*len = strlen(txt) + 1;
		line = malloc(*len + 1);
		if (line) {
			memcpy(line, txt, *len - 1);
			line[*len - 1] = '\n';
			line[*len] = '\0';
		}
	}
	json_object_put(o);
	return line;
}

static struct json_object *error_obj(const char *class, const char *desc)
{
	struct json_object *e = json_object_new_object();

	if (e) {
		json_object_object_add(e, "class", json_object_new_string(class));
		json_object_object_add(e, "desc", json_object_new_string(desc));
	}
	return e;
}

/* Hand a finished reply line to the loop, or drop it if nobody wants it. */
static void req_finish(struct api_req *r, char *line, size_t len)
{
	struct api_hub *h = r->hub;
	bool orphaned;

	pthread_mutex_lock(&h->lock);
	orphaned = r->orphaned;
	if (r->answered) {
		/* A handler bug (answered twice): keep the first answer. */
		pthread_mutex_unlock(&h->lock);
		free(line);
		log_warn("control socket: a request was answered twice; the second answer is dropped");
		return;
	}
	r->answered = true;
	if (!orphaned) {
		uint64_t one = 1;

		r->reply = line;
		r->reply_len = len;
		/* Not failing: an eventfd counter only overflows after 2^64 writes. */
		if (h->efd >= 0 && write(h->efd, &one, sizeof(one)) < 0)
			log_debug("control socket: eventfd write: %s", strerror(errno));
	}
	pthread_mutex_unlock(&h->lock);
	if (orphaned) {
		/* The client or the server went away: only we still know r. */
		free(line);
		req_free(r);
	}
}

struct json_object *api_json_ms(double ms)
{
	char text[48];

	snprintf(text, sizeof(text), "%.3f", ms);
	/* The number is printed as text, parsed back as the value it shows. */
	return json_object_new_double_s(strtod(text, NULL), text);
}

void api_reply(struct api_req *req, struct json_object *result)
{
	size_t len = 0;
	char *line;

	if (!result)
		result = json_object_new_object();
	line = reply_line(req->id, "return", result, &len);
	/* The request tree (args, command) is not needed any more; freeing it
	 * here keeps json-c objects on one thread at a time. */
	json_object_put(req->request);
	req->request = NULL;
	req->id = NULL;
	if (!line)
		log_error("control socket: out of memory building a reply; the client gets none");
	req_finish(req, line, line ? len : 0);
}

void api_hijack(struct api_req *req, struct json_object *result, api_hijack_fn fn, void *ctx)
{
	req->hijack = fn;
	req->hijack_ctx = ctx;
	api_reply(req, result);
}

void api_error(struct api_req *req, const char *class, const char *fmt, ...)
{
	va_list ap;
	char *desc = NULL;
	size_t len = 0;
	char *line;

	va_start(ap, fmt);
	if (vasprintf(&desc, fmt, ap) < 0)
		desc = NULL;
	va_end(ap);
	line = reply_line(req->id, "error", error_obj(class, desc ? desc : "out of memory"), &len);
	free(desc);
	json_object_put(req->request);
	req->request = NULL;
	req->id = NULL;
	if (!line)
		log_error("control socket: out of memory building a reply; the client gets none");
	req_finish(req, line, line ? len : 0);
}

/* --- clients (loop thread) --- */

static void client_handler(struct loop *l, int fd, uint32_t events, void *opaque);

static void client_close(struct api_client *c)
{
	struct api_server *s = c->s;
	struct api_client **pp;
	struct api_req *r, *next, *done = NULL;

	for (pp = &s->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	s->nclients--;
	loop_del(s->loop, c->fd);
	close(c->fd);
	/* Answered requests are ours to free; the others are freed by whoever
	 * answers them. Decided under the lock so no answer slips between. */
	pthread_mutex_lock(&s->hub->lock);
	for (r = c->head; r; r = next) {
		next = r->next;
		if (r->answered) {
			r->next = done;
			done = r;
		} else {
			r->orphaned = true;
		}
	}
	pthread_mutex_unlock(&s->hub->lock);
	for (r = done; r; r = next) {
		next = r->next;
		req_free(r);
	}
	free(c->in);
	free(c->out);
	/* A hijack that never happened: its owner learns the client is gone. */
	if (c->hijack)
		c->hijack(c->hijack_ctx, -1, NULL, 0);
	free(c);
}

/* The replies up to the hijacked request's have gone out: the connection is the hijacker's now,
 * with the bytes the client sent after that request. */
static void client_handover(struct api_client *c)
{
	struct api_server *s = c->s;
	struct api_client **pp;
	api_hijack_fn fn = c->hijack;

	for (pp = &s->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	s->nclients--;
	loop_del(s->loop, c->fd);
	c->hijack = NULL;
	fn(c->hijack_ctx, c->fd, (const uint8_t *)c->in, c->in_len);
	free(c->in);
	free(c->out);
	free(c);
}

static void client_arm(struct api_client *c)
{
	uint32_t ev = 0;

	if (!c->eof && c->queued < API_MAX_PENDING && !c->hijack)
		ev |= EPOLLIN;
	if (c->out_off < c->out_len)
		ev |= EPOLLOUT;
	if (ev != c->events) {
		c->events = ev;
		loop_mod(c->s->loop, c->fd, ev);
	}
}

/* Append the answered requests at the head of the queue to the output
 * buffer. Returns 0, or -1 when out of memory. */
static int client_collect(struct api_client *c)
{
	struct api_server *s = c->s;
	struct api_req *r, *done = NULL, **tail = &done;
	int ret = 0;

	pthread_mutex_lock(&s->hub->lock);
	while (c->head && c->head->answered) {
		r = c->head;
		c->head = r->next;
		if (!c->head)
			c->tail = NULL;
		c->queued--;
		r->next = NULL;
		*tail = r;
		tail = &r->next;
	}
	pthread_mutex_unlock(&s->hub->lock);
	for (r = done; r; r = done) {
		done = r->next;
		if (r->reply && ret == 0) {
			size_t need = c->out_len - c->out_off + r->reply_len;
			char *nb;

			if (c->out_off) {
				memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
				c->out_len -= c->out_off;
				c->out_off = 0;
			}
			nb = realloc(c->out, need);
			if (nb) {
				c->out = nb;
				memcpy(c->out + c->out_len, r->reply, r->reply_len);
				c->out_len += r->reply_len;
			} else {
				ret = -1;
			}
		}
		req_free(r);
	}
	return ret;
}

/* Send what we can without blocking. Returns 0, or -1 if the client must
 * go (gone, or not reading while its replies pile up). */
static int client_write(struct api_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	} else if (c->out_len - c->out_off > API_MAX_OUTPUT) {
		log_warn("control socket: a client does not read its replies (over %d bytes pending); "
			 "disconnected it",
			 API_MAX_OUTPUT);
		return -1;
	}
	return 0;
}

static void queue_req(struct api_client *c, struct api_req *r)
{
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->queued++;
}

/* Queue an already-answered error for a line that is not a valid request. */
static void queue_invalid(struct api_client *c, struct json_object *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void queue_invalid(struct api_client *c, struct json_object *id, const char *fmt, ...)
{
	struct api_req *r = req_new(c->s);
	char desc[256];
	va_list ap;

	if (!r)
		return;
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	r->reply = reply_line(id, "error", error_obj("InvalidInput", desc), &r->reply_len);
	r->answered = true; /* not yet visible to any other thread */
	queue_req(c, r);
}

/* One complete line (NUL-terminated in place, without its '\n'). */
static void handle_line(struct api_client *c, char *line, size_t len)
{
	struct api_server *s = c->s;
	struct json_tokener *tok;
	struct json_object *req, *id = NULL, *cmd = NULL, *args = NULL;
	enum json_tokener_error err;
	struct api_req *r;
	size_t i;

	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len)
		return; /* an empty line is not a request */
	if (memchr(line, '\0', len)) {
		queue_invalid(c, NULL, "request line contains a NUL byte");
		return;
	}
	tok = json_tokener_new();
	if (!tok) {
		queue_invalid(c, NULL, "out of memory parsing the request");
		return;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* len + 1 takes in the NUL, which ends a bare top-level number. */
	req = json_tokener_parse_ex(tok, line, (int)len + 1);
	err = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!req || err != json_tokener_success) {
		json_object_put(req);
		queue_invalid(c, NULL, "request is not valid JSON (%s)", json_tokener_error_desc(err));
		return;
	}
	if (!json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		queue_invalid(c, NULL, "request is not a JSON object");
		return;
	}
	json_object_object_get_ex(req, "id", &id);
	if (!json_object_object_get_ex(req, "command", &cmd) || !json_object_is_type(cmd, json_type_string)) {
		queue_invalid(c, id, "request has no \"command\" string");
		json_object_put(req);
		return;
	}
	if (json_object_object_get_ex(req, "arguments", &args)) {
		if (!json_object_is_type(args, json_type_object)) {
			queue_invalid(c, id, "\"arguments\" must be an object");
			json_object_put(req);
			return;
		}
	} else {
		args = json_object_new_object();
		if (!args || json_object_object_add(req, "arguments", args) < 0) {
			json_object_put(args);
			queue_invalid(c, id, "out of memory parsing the request");
			json_object_put(req);
			return;
		}
	}
	r = req_new(s);
	if (!r) {
		queue_invalid(c, id, "out of memory parsing the request");
		json_object_put(req);
		return;
	}
	r->request = req;
	r->id = id;
	queue_req(c, r);
	/* The handler may answer right here or later from any thread; the
	 * queue keeps r until then. */
	s->handler(s->ctx, r, json_object_get_string(cmd), args);
	/* api_hijack is called by the handler itself, on this thread: r is still queued. */
	if (r->hijack) {
		c->hijack = r->hijack;
		c->hijack_ctx = r->hijack_ctx;
	}
}

/* Parse the complete lines in the input buffer, as far as the queue allows. */
static void client_parse(struct api_client *c)
{
	size_t start = 0;
	char *nl = NULL;

	while (c->queued < API_MAX_PENDING && start < c->in_len && !c->hijack) {
		size_t len;

		nl = memchr(c->in + start, '\n', c->in_len - start);
		if (!nl)
			break;
		len = (size_t)(nl - (c->in + start));
		*nl = '\0';
		if (c->discarding)
			c->discarding = false; /* the end of the oversized line */
		else
			handle_line(c, c->in + start, len);
		start += len + 1;
	}
	if (start) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
	if (c->hijack)
		return; /* the rest is the hijacker's */
	if (nl || c->queued >= API_MAX_PENDING)
		return; /* stopped by the queue limit, not by a missing '\n' */
	if (c->discarding) {
		c->in_len = 0;
	} else if (c->in_len > API_MAX_LINE) {
		queue_invalid(c, NULL, "request line longer than %d bytes", API_MAX_LINE);
		c->discarding = true;
		c->in_len = 0;
	} else if (c->eof && c->in_len) {
		/* A last line without '\n' before the client closed its side. */
		c->in[c->in_len] = '\0';
		handle_line(c, c->in, c->in_len);
		c->in_len = 0;
	}
}

static bool client_done(struct api_client *c)
{
	return c->eof && !c->head && c->out_off == c->out_len;
}

/* Move answers out, send, re-arm; closes the client if it must go. */
static void client_flush(struct api_client *c)
{
	for (;;) {
		size_t in_len;
		unsigned queued;

		if (client_collect(c) < 0 || client_write(c) < 0) {
			client_close(c);
			return;
		}
		/* Room in the queue again: parse lines held back by the limit
		 * (the input buffer bounds the rounds). */
		if (c->queued >= API_MAX_PENDING || !c->in_len || c->hijack)
			break;
		in_len = c->in_len;
		queued = c->queued;
		client_parse(c);
		if (c->in_len == in_len && c->queued == queued)
			break; /* only a partial line left */
	}
	if (c->hijack && !c->head && c->out_off == c->out_len) {
		client_handover(c);
		return;
	}
	if (client_done(c)) {
		client_close(c);
		return;
	}
	client_arm(c);
}

static void client_read(struct api_client *c)
{
	/* A bounded number of rounds: one busy client cannot starve the loop. */
	for (int rounds = 0; rounds < 16 && !c->eof && c->queued < API_MAX_PENDING && !c->hijack; rounds++) {
		ssize_t n;

		if (c->in_len > API_MAX_LINE)
			break; /* full, held back by the queue limit */
		n = read(c->fd, c->in + c->in_len, API_MAX_LINE + 1 - c->in_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->eof = true; /* reset: nothing more will come */
			break;
		}
		if (n == 0)
			c->eof = true;
		c->in_len += (size_t)n;
		client_parse(c);
	}
}

static void client_handler(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct api_client *c = opaque;

	if (events & EPOLLIN)
		client_read(c);
	if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
		/* Gone without anything left to read: replies cannot be sent. */
		client_close(c);
		return;
	}
	client_flush(c);
}

static void accept_handler(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct api_server *s = opaque;

	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct api_client *c;
		long peer;

		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
				/* Out of fds: shed the connection so the listening
				 * socket does not stay readable and spin the loop. */
				log_warn("control socket: out of file descriptors; refused a client");
				close(s->spare_fd);
				cfd = accept(fd, NULL, NULL);
				if (cfd >= 0)
					close(cfd);
				s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				continue;
			}
			return; /* EAGAIN, or a connection that died in the backlog */
		}
		if (!unixsock_peer_allowed(cfd, &peer)) {
			static const char denied[] =
				"{\"error\":{\"class\":\"GenericError\","
				"\"desc\":\"permission denied: only the VM's user and root may "
				"connect\"}}\n";

			log_warn(
				"control socket: refused a client of uid %ld (only uid %ld and root may connect)",
				peer, (long)geteuid());
			if (send(cfd, denied, sizeof(denied) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("control socket: refusing a client: %s", strerror(errno));
			close(cfd);
			continue;
		}
		if (s->nclients >= API_MAX_CLIENTS) {
			static const char busy[] = "{\"error\":{\"class\":\"GenericError\","
						   "\"desc\":\"too many control clients\"}}\n";

			if (send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("control socket: refusing a client: %s", strerror(errno));
			close(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c)
			c->in = malloc(API_MAX_LINE + 2);
		if (!c || !c->in || loop_add(s->loop, cfd, EPOLLIN, client_handler, c) < 0) {
			log_warn("control socket: cannot take a client: out of memory");
			if (c)
				free(c->in);
			free(c);
			close(cfd);
			continue;
		}
		c->s = s;
		c->fd = cfd;
		c->events = EPOLLIN;
		c->next = s->clients;
		s->clients = c;
		s->nclients++;
	}
}

static void wake_handler(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct api_server *s = opaque;
	struct api_client *c, *next;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("control socket: eventfd read: %s", strerror(errno));
	for (c = s->clients; c; c = next) {
		next = c->next; /* client_flush may free c */
		client_flush(c);
	}
}

/* --- setup --- */

struct api_server *api_server_create(const char *path, struct loop *loop, api_handler_fn handler, void *ctx)
{
	struct api_server *s;
	struct stat st;

	if (!path || !*path) {
		log_error("control socket: empty path; give a socket path to --api");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->hub = calloc(1, sizeof(*s->hub))) || !(s->path = strdup(path))) {
		log_error("control socket %s: out of memory", path);
		goto fail_mem;
	}
	pthread_mutex_init(&s->hub->lock, NULL);
	s->hub->refs = 1;
	s->hub->efd = -1;
	s->lfd = -1;
	s->loop = loop;
	s->handler = handler;
	s->ctx = ctx;
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* Whoever can connect controls the VM (and can make it write files): owner only, from the
	 * bind on (core/unixsock.c), and each client's uid is checked on accept. */
	s->lfd = unixsock_listen(path, API_BACKLOG, true, "control socket", &st);
	if (s->lfd < 0)
		goto fail;
	s->st = st;
	s->hub->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->hub->efd < 0 || loop_add(loop, s->hub->efd, EPOLLIN, wake_handler, s) < 0) {
		log_error("control socket %s: eventfd: %s; raise the open file limit", path, strerror(errno));
		unixsock_unlink(path, &s->st);
		goto fail;
	}
	if (loop_add(loop, s->lfd, EPOLLIN, accept_handler, s) < 0) {
		log_error("control socket %s: epoll: %s", path, strerror(errno));
		loop_del(loop, s->hub->efd);
		unixsock_unlink(path, &s->st);
		goto fail;
	}
	return s;

fail:
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->hub->efd >= 0)
		close(s->hub->efd);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	hub_unref(s->hub);
	free(s->path);
	free(s);
	return NULL;
fail_mem:
	if (s) {
		free(s->hub);
		free(s->path);
	}
	free(s);
	return NULL;
}

void api_server_destroy(struct api_server *s)
{
	if (!s)
		return;
	while (s->clients)
		client_close(s->clients);
	loop_del(s->loop, s->lfd);
	close(s->lfd);
	/* Remove the path only if it is still our socket, not a successor's. */
	unixsock_unlink(s->path, &s->st);
	loop_del(s->loop, s->hub->efd);
	pthread_mutex_lock(&s->hub->lock);
	close(s->hub->efd);
	s->hub->efd = -1; /* late answers must not write to a reused fd number */
	pthread_mutex_unlock(&s->hub->lock);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	hub_unref(s->hub);
	free(s->path);
	free(s);
}
