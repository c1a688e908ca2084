/* apiclient.c - talk to a kvmbox control socket (docs/API.md) below `kvmbox ctl`,
 * for tests/guests/lifecycle.sh.
 *
 *   apiclient protocol SOCKET    the socket layer: error classes, long lines,
 *                                pipelining, two clients at once
 *   apiclient arguments SOCKET   argument checking of the commands (extra
 *                                arguments, relative snapshot path)
 *   apiclient fake-dest PATH N   a migration destination on unix:PATH that reads
 *                                N bytes of the stream, then closes it
 *
 * Prints "OK" or "FAIL: why" (one line) and exits 0 / 1 (2: bad usage). Every
 * socket operation has a time limit. Replies are parsed with json-c in strict
 * mode: one JSON object per line, with exactly one of "return" and "error". */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define LIMIT_S        10
#define ACCEPT_LIMIT_S 30

static jmp_buf fail_jmp;
static char fail_msg[512];

/* Record why and unwind to main (the process ends right after). */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
	longjmp(fail_jmp, 1);
}

struct client {
	int fd;
	char *buf; /* received, not yet returned as a line */
	size_t len, cap;
};

static void set_timeouts(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		fail("setsockopt: %s", strerror(errno));
}

static void unix_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		fail("socket path too long: %s", path);
	strcpy(a->sun_path, path);
}

static void client_open(struct client *c, const char *path)
{
	struct sockaddr_un a;

	memset(c, 0, sizeof(*c));
	unix_addr(&a, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		fail("socket: %s", strerror(errno));
	set_timeouts(c->fd, LIMIT_S);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fail("connect %s: %s", path, strerror(errno));
}

static void client_close(struct client *c)
{
	close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static void send_all(struct client *c, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			fail("send blocked for %ds", LIMIT_S);
		if (w <= 0)
			fail("send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static void send_str(struct client *c, const char *s)
{
	send_all(c, s, strlen(s));
}

/* The next reply line (without its newline), as a parsed JSON object that has
 * exactly one of "return" and "error". The caller frees it with json_object_put. */
static struct json_object *reply(struct client *c, const char *what)
{
	struct json_tokener *tok;
	struct json_object *r;
	char *nl;
	size_t len;

	while (!(nl = memchr(c->buf ? c->buf : "", '\n', c->len))) {
		ssize_t n;

		if (c->cap - c->len < 4096) {
			c->cap = c->cap ? c->cap * 2 : 65536;
			c->buf = realloc(c->buf, c->cap);
			if (!c->buf)
				fail("out of memory");
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			fail("no reply to %s within %ds", what, LIMIT_S);
		if (n < 0)
			fail("recv: %s", strerror(errno));
		if (n == 0) {
			if (c->len)
				fail("reply to %s does not end with a newline", what);
			fail("connection closed instead of a reply to %s", what);
		}
		c->len += (size_t)n;
	}
	len = (size_t)(nl - c->buf);
	tok = json_tokener_new();
	if (!tok)
		fail("out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	r = json_tokener_parse_ex(tok, c->buf, (int)len);
	if (!r || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		json_tokener_free(tok);
		fail("reply to %s is not JSON: %.120s", what, c->buf);
	}
	json_tokener_free(tok);
	memmove(c->buf, nl + 1, c->len - len - 1);
	c->len -= len + 1;
	if (!json_object_is_type(r, json_type_object) ||
	    json_object_object_get_ex(r, "return", NULL) == json_object_object_get_ex(r, "error", NULL))
		fail("reply to %s has not exactly one of return/error: %.120s", what,
		     json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	return r;
}

static struct json_object *call(struct client *c, const char *req, const char *what)
{
	send_str(c, req);
	return reply(c, what);
}

static const char *text(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/* The reply's id must be the integer rid (rid < 0: not checked). */
static void check_id(struct json_object *r, long rid, const char *what)
{
	struct json_object *id;

	if (rid < 0)
		return;
	if (!json_object_object_get_ex(r, "id", &id) || !json_object_is_type(id, json_type_int) ||
	    json_object_get_int64(id) != rid)
		fail("%s: reply id %s, expected %ld", what,
		     json_object_object_get_ex(r, "id", &id) ? text(id) : "missing", rid);
}

/* The error class of r, or NULL when r is no error reply. */
static const char *error_class(struct json_object *r)
{
	struct json_object *e, *cls;

	if (!json_object_object_get_ex(r, "error", &e))
		return NULL;
	if (!json_object_object_get_ex(e, "class", &cls) || !json_object_is_type(cls, json_type_string))
		return "(no class)";
	return json_object_get_string(cls);
}

static void want_error(struct json_object *r, const char *cls, const char *what, long rid)
{
	const char *got = error_class(r);

	if (!got)
		fail("%s: expected error %s, got %.150s", what, cls, text(r));
	if (strcmp(got, cls)) {
		struct json_object *e, *desc = NULL;

		json_object_object_get_ex(r, "error", &e);
		json_object_object_get_ex(e, "desc", &desc);
		fail("%s: error class %s, expected %s (%s)", what, got, cls,
		     desc ? json_object_get_string(desc) : "no desc");
	}
	check_id(r, rid, what);
	json_object_put(r);
}

static void want_return(struct json_object *r, const char *what, long rid)
{
	if (!json_object_object_get_ex(r, "return", NULL))
		fail("%s: expected success, got %.150s", what, text(r));
	check_id(r, rid, what);
	json_object_put(r);
}

static void info(struct client *c, long rid, const char *what)
{
	char req[64];
	struct json_object *r, *ret, *st;
	const char *s;

	snprintf(req, sizeof(req), "{\"id\":%ld,\"command\":\"info\"}\n", rid);
	r = call(c, req, what);
	if (!json_object_object_get_ex(r, "return", &ret))
		fail("%s: expected success, got %.150s", what, text(r));
	check_id(r, rid, what);
	s = json_object_object_get_ex(ret, "state", &st) && json_object_is_type(st, json_type_string)
		    ? json_object_get_string(st)
		    : NULL;
	if (!s || (strcmp(s, "running") && strcmp(s, "paused")))
		fail("%s: info state %s", what, st ? text(st) : "missing");
	json_object_put(r);
}

/* A request of exactly size bytes (without the newline): an info with padding. */
static char *padded(long id, size_t size)
{
	char head[64];
	const char *tail = "\"}\n";
	size_t hl, tl = 2;
	char *line;

	hl = (size_t)snprintf(head, sizeof(head), "{\"id\":%ld,\"command\":\"info\",\"pad\":\"", id);
	if (size < hl + tl)
		fail("internal: padded size %zu too small", size);
	line = malloc(size + 2);
	if (!line)
		fail("out of memory");
	memcpy(line, head, hl);
	memset(line + hl, 'a', size - hl - tl);
	memcpy(line + size - tl, tail, 4);
	return line;
}

static void protocol(const char *path)
{
	struct client c, d, e;
	struct json_object *r, *id, *want;
	static const size_t big[] = { 65537, 200000 };
	char req[64], what[64], *line;
	size_t n;

	client_open(&c, path);
	want_error(call(&c, "{\"id\":1,\"command\":\"no-such-command\"}\n", "an unknown command"),
		   "CommandNotFound", "unknown command", 1);
	want_error(call(&c, "{\"id\":2,\"command\":\"info\"\n", "malformed JSON"), "InvalidInput",
		   "malformed JSON", -1);
	want_error(call(&c, "{\"id\":3}\n", "a request without command"), "InvalidInput", "no command", 3);
	want_error(call(&c, "{\"id\":4,\"command\":\"info\",\"arguments\":[1]}\n", "array arguments"),
		   "InvalidInput", "arguments not an object", 4);
	want_error(call(&c, "[1,2]\n", "a JSON array"), "InvalidInput", "not an object", -1);
	static const char nul[] = "{\"id\":5,\"command\":\"in\0fo\"}\n";
	send_all(&c, nul, sizeof(nul) - 1);
	want_error(reply(&c, "a NUL byte"), "InvalidInput", "NUL byte", -1);
	/* Empty lines and CRLF are accepted. */
	send_str(&c, "\n\r\n");
	info(&c, 6, "info after empty lines");
	info(&c, 7, "info");
	want_return(call(&c, "{\"id\":8,\"command\":\"info\"}\r\n", "info with CRLF"), "info with CRLF", 8);
	/* The id is copied untouched, whatever JSON it is. */
	r = call(&c, "{\"id\":{\"a\":[1,\"x\"]},\"command\":\"info\"}\n", "info with an object id");
	want = json_tokener_parse("{\"a\":[1,\"x\"]}");
	if (!json_object_object_get_ex(r, "id", &id) || !json_object_equal(id, want))
		fail("object id came back as %s",
		     json_object_object_get_ex(r, "id", &id) ? text(id) : "missing");
	json_object_put(want);
	json_object_put(r);
	r = call(&c, "{\"command\":\"info\"}\n", "info without id");
	if (json_object_object_get_ex(r, "id", &id))
		fail("reply to a request without id has id %s", text(id));
	json_object_put(r);
	/* Exactly 65536 bytes is allowed; one more is one InvalidInput error, and
	 * the connection stays usable. */
	line = padded(9, 65536);
	send_all(&c, line, 65537);
	free(line);
	want_return(reply(&c, "a 65536-byte request"), "a 65536-byte request", 9);
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		snprintf(what, sizeof(what), "a %zu-byte request", big[i]);
		line = padded(9, big[i]);
		send_all(&c, line, big[i] + 1);
		free(line);
		want_error(reply(&c, what), "InvalidInput", what, -1);
		snprintf(what, sizeof(what), "info after a %zu-byte request", big[i]);
		info(&c, 10, what);
	}
	/* Pipelined requests are answered in order. */
	line = malloc(40 * 64);
	if (!line)
		fail("out of memory");
	n = 0;
	for (int i = 100; i < 140; i++)
		n += (size_t)sprintf(line + n, "{\"id\":%d,\"command\":\"info\"}\n", i);
	send_all(&c, line, n);
	free(line);
	for (int i = 100; i < 140; i++) {
		r = reply(&c, "pipelined info");
		if (!json_object_object_get_ex(r, "id", &id) || !json_object_is_type(id, json_type_int) ||
		    json_object_get_int64(id) != i)
			fail("pipelined replies out of order: reply %d has id %s", i - 100,
			     json_object_object_get_ex(r, "id", &id) ? text(id) : "missing");
		json_object_put(r);
	}
	/* Two clients at once: interleaved requests, each gets its own answers. */
	client_open(&d, path);
	send_str(&c, "{\"id\":20,\"command\":\"info\"}\n");
	send_str(&d, "{\"id\":30,\"command\":\"info\"}\n");
	send_str(&d, "{\"id\":31,\"command\":\"no-such-command\"}\n");
	send_str(&c, "{\"id\":21,\"command\":\"info\"}\n");
	want_return(reply(&d, "second client info"), "second client info", 30);
	want_error(reply(&d, "second client unknown command"), "CommandNotFound", "second client", 31);
	want_return(reply(&c, "first client info"), "first client info", 20);
	want_return(reply(&c, "first client info"), "first client info", 21);
	/* A client that goes away with a request unanswered does not disturb the others. */
	client_open(&e, path);
	snprintf(req, sizeof(req), "{\"id\":40,\"command\":\"info\"}\n");
	send_str(&e, req);
	client_close(&e);
	info(&d, 32, "info after a client left");
	client_close(&d);
	info(&c, 22, "info at the end");
	client_close(&c);
}

/* "accepted" or "error CLASS", for the arguments test's report. */
static void expect_invalid_argument(struct client *c, const char *req, const char *what, char *probs,
				    size_t len)
{
	struct json_object *r = call(c, req, what);
	const char *cls = error_class(r);
	size_t o = strlen(probs);

	if (!cls || strcmp(cls, "InvalidArgument"))
		snprintf(probs + o, len - o, "%s%s: %s%s", o ? "; " : "", what, cls ? "error " : "accepted",
			 cls ? cls : "");
	json_object_put(r);
}

static void arguments(const char *path)
{
	struct client c;
	char probs[1024] = "";

	client_open(&c, path);
	expect_invalid_argument(&c, "{\"id\":1,\"command\":\"info\",\"arguments\":{\"bogus\":1}}\n",
				"info with an extra argument", probs, sizeof(probs));
	expect_invalid_argument(&c, "{\"id\":2,\"command\":\"resume\",\"arguments\":{\"bogus\":1}}\n",
				"resume with an extra argument", probs, sizeof(probs));
	expect_invalid_argument(
		&c,
		"{\"id\":3,\"command\":\"snapshot\",\"arguments\":{\"path\":\"kvmbox-no-such-dir/relative.snap\"}}\n",
		"snapshot to a relative path", probs, sizeof(probs));
	expect_invalid_argument(&c, "{\"id\":4,\"command\":\"snapshot\",\"arguments\":{}}\n",
				"snapshot without path", probs, sizeof(probs));
	expect_invalid_argument(&c,
				"{\"id\":5,\"command\":\"shutdown\",\"arguments\":{\"timeout\":\"soon\"}}\n",
				"shutdown with timeout \"soon\"", probs, sizeof(probs));
	info(&c, 6, "info at the end");
	client_close(&c);
	if (probs[0])
		fail("accepted or misclassified: %s", probs);
}

static void fake_dest(const char *path, const char *count)
{
	struct sockaddr_un a;
	char buf[65536], *end;
	unsigned long long limit, n = 0;
	int s, c;

	errno = 0;
	limit = strtoull(count, &end, 10);
	if (errno || end == count || *end || count[0] == '-')
		fail("bad byte count '%s'", count);
	unix_addr(&a, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0)
		fail("listen on %s: %s", path, strerror(errno));
	set_timeouts(s, ACCEPT_LIMIT_S); /* SO_RCVTIMEO bounds accept() too */
	printf("listening\n");
	fflush(stdout);
	c = accept(s, NULL, NULL);
	if (c < 0)
		fail("no connection on %s within %ds: %s", path, ACCEPT_LIMIT_S, strerror(errno));
	set_timeouts(c, ACCEPT_LIMIT_S);
	while (n < limit) {
		size_t want = limit - n < sizeof(buf) ? (size_t)(limit - n) : sizeof(buf);
		ssize_t r = recv(c, buf, want, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (unsigned long long)r;
	}
	close(c);
	close(s);
	unlink(path);
	if (n < limit)
		fail("the source sent only %llu bytes", n);
}

int main(int argc, char **argv)
{
	if (!((argc == 3 && (!strcmp(argv[1], "protocol") || !strcmp(argv[1], "arguments"))) ||
	      (argc == 4 && !strcmp(argv[1], "fake-dest")))) {
		fprintf(stderr,
			"usage: apiclient protocol|arguments SOCKET | apiclient fake-dest PATH BYTES\n");
		return 2;
	}
	if (setjmp(fail_jmp)) {
		printf("FAIL: %s\n", fail_msg);
		return 1;
	}
	if (!strcmp(argv[1], "protocol"))
		protocol(argv[2]);
	else if (!strcmp(argv[1], "arguments"))
		arguments(argv[2]);
	else
		fake_dest(argv[2], argv[3]);
	printf("OK\n");
	return 0;
}
