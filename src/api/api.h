/* api.h - the control socket: one JSON object per line on a unix socket.
 *
 * Request:  {"id": ANY, "command": "pause", "arguments": {...}}   (id and
 *           arguments optional)
 * Reply:    {"id": ANY, "return": {...}}
 *        or {"id": ANY, "error": {"class": "...", "desc": "..."}}
 * Replies go out in request order per client. The server runs on the main
 * thread's event loop; several clients may be connected; a malformed or
 * oversized line gets an error reply and never stalls the VM. The protocol
 * is documented in docs/API.md. */
#ifndef KVMBOX_API_H
#define KVMBOX_API_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/loop.h"

#define API_MAX_LINE (64 * 1024)

struct api_server;
struct api_req;

/* Called on the main thread for each well-formed request. The handler must
 * eventually answer with api_reply() or api_error() exactly once, either
 * before returning or later (from any thread) for long operations. `args`
 * is an object (empty when the request had none); it stays valid until the
 * answer. */
typedef void (*api_handler_fn)(void *ctx, struct api_req *req, const char *command, struct json_object *args);

/* Listen on `path` (an existing socket file is replaced only if nothing
 * listens on it). NULL with an error printed. */
struct api_server *api_server_create(const char *path, struct loop *loop, api_handler_fn handler, void *ctx);
/* Close every client and the socket, unlink the path. */
void api_server_destroy(struct api_server *s);

/* Answer a request; takes ownership of result (NULL means {}). Thread-safe. */
void api_reply(struct api_req *req, struct json_object *result);
/* Answer with an error: class is e.g. "CommandNotFound", "InvalidArgument",
 * "GenericError". Thread-safe. */
void api_error(struct api_req *req, const char *class, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The connection of a hijacked request (api_hijack), on the loop thread, once the replies to
 * it and to every request before it have been sent: fd (non-blocking, close-on-exec) is the
 * callee's now, and pending holds the n bytes the client sent after the request's line (the
 * start of the raw stream). fd -1 (pending NULL): the client went away, or the server was
 * destroyed, before that. Called exactly once. */
typedef void (*api_hijack_fn)(void *ctx, int fd, const uint8_t *pending, size_t n);
/* Answer req with result (as api_reply) and take its connection out of the protocol: the
 * server reads no request after req's line and, once the reply has gone out, hands the
 * connection to fn. Only on the loop thread, from the handler of req, before it returns. */
void api_hijack(struct api_req *req, struct json_object *result, api_hijack_fn fn, void *ctx);

/* A duration in milliseconds for a reply, to the microsecond ("22.857", not
 * "22.856650000001537"). */
struct json_object *api_json_ms(double ms);

/* Connect to the control socket path, send line (a request and '\n'), read one reply line
 * into *reply (malloc'd, NUL-terminated, without '\n'); timeout_s 0: wait for ever. 0, or 1
 * with one line in err (what failed and what to check). */
int api_call(const char *path, const char *line, unsigned timeout_s, char **reply, char *err, size_t errlen);
/* api_call's exchange, keeping the connection: the connected socket (the caller closes it), or
 * -1 with one line in err. *reply as api_call's; the *extra bytes that came after the reply line
 * follow its NUL in the same buffer (a hijacked connection's first raw bytes). */
int api_exchange(const char *path, const char *line, unsigned timeout_s, char **reply, size_t *extra,
		 char *err, size_t errlen);

/* `kvmbox ctl UP_SOCKET console NAME` (ctl_console.c, docs/API.md "console"): connect to path,
 * ask for VM name's console and read the reply line. The connected socket, with the bytes that
 * came after the reply (the console's first output) in *pending (malloc'd, *n of them); or -1
 * after printing one line (the socket cannot be reached, the error reply's desc, no reply within
 * timeout_s when it is not 0). */
int ctl_console_attach(const char *path, const char *name, unsigned timeout_s, uint8_t **pending, size_t *n);
/* The attached console: first (nfirst bytes) and what comes from sock to out_fd; in_fd to sock,
 * through console_filter when escape (Ctrl-A x detaches, Ctrl-A Ctrl-A is one Ctrl-A). 0: detached
 * (the escape, or the end of in_fd); 1: sock ended (*ended_by_up: with up's own last line,
 * ctl_console_ended_by_up) or out_fd failed (said); 128+N: signal N came on sig_fd. */
int ctl_console_relay(int sock, int in_fd, int out_fd, bool escape, int sig_fd, const uint8_t *first,
		      size_t nfirst, bool *ended_by_up);
/* Do the last bytes of a console's output (tail, len) end with up's line "kvmbox: up: ...\r\n"? */
bool ctl_console_ended_by_up(const char *tail, size_t len);
/* The whole command: attach, this terminal in raw mode, relay, the terminal restored. Its exit
 * status (ctl_console_relay's; 1 when it could not attach). */
int ctl_console(const char *path, const char *name, unsigned timeout_s);

/* `kvmbox ctl SOCKET COMMAND [ARG...]`: build the request from the words,
 * print the reply, return 0 for a "return" reply, 1 for an "error" reply or
 * when the socket cannot be reached, 2 for a usage error. */
int cmd_ctl(int argc, char **argv);

#endif
