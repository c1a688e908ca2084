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

/* A duration in milliseconds for a reply, to the microsecond ("22.857", not
 * "22.856650000001537"). */
struct json_object *api_json_ms(double ms);

/* Connect to the control socket path, send line (a request and '\n'), read one reply line
 * into *reply (malloc'd, NUL-terminated, without '\n'); timeout_s 0: wait for ever. 0, or 1
 * with one line in err (what failed and what to check). */
int api_call(const char *path, const char *line, unsigned timeout_s, char **reply, char *err, size_t errlen);

/* `kvmbox ctl SOCKET COMMAND [ARG...]`: build the request from the words,
 * print the reply, return 0 for a "return" reply, 1 for an "error" reply or
 * when the socket cannot be reached, 2 for a usage error. */
int cmd_ctl(int argc, char **argv);

#endif
