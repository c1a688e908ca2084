/* up_console.h - `kvmbox ctl UP_SOCKET console NAME`: one client attached to a VM's console,
 * relayed by kvmbox up's own loop (up.c keeps at most one per VM).
 *
 * Once up has replied to `console` (api_hijack), the control connection carries raw bytes
 * (docs/API.md, "console"): what the client sends goes to the VM's console input, the write end
 * of the pipe that is the VM process's stdin; what the VM's process writes to its console log
 * goes to the client: first the log's last UP_CONSOLE_TAIL bytes (from the start of a line when
 * one starts in them), then what is appended to it (inotify). The log stays the one complete
 * record: the relay only reads it, and it is the relay's output buffer too (a client that reads
 * slowly falls behind in the file; nothing piles up in memory). Every descriptor is
 * non-blocking and each event does a bounded amount of work: the loop never waits on a client
 * or on a guest that does not read its input. */
#ifndef KVMBOX_UP_CONSOLE_H
#define KVMBOX_UP_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/loop.h"

#define UP_CONSOLE_TAIL 4096        /* bytes of the log a new client sees first */
#define UP_CONSOLE_IN   4096        /* client bytes read at a time (held while the guest is slow) */
#define UP_CONSOLE_MAX  (256 << 10) /* log bytes sent per event before the loop moves on */

struct up_console;
/* The client detached (closed its end, or its connection failed): c is freed right after. */
typedef void (*up_console_gone_fn)(void *ctx);

/* A relay for VM name on loop l: the console log at log_path (opened for reading now), the VM's
 * input pipe in_fd (duplicated; the caller keeps its own). It waits for its client:
 * up_console_hijacked. NULL with one line in err (what failed, the fix). */
struct up_console *up_console_new(struct loop *l, const char *name, const char *log_path, int in_fd,
				  up_console_gone_fn gone, void *ctx, char *err, size_t errlen);
/* The api_hijack_fn of the `console` reply (con: the relay): fd is the client. fd -1: the
 * client went away before; gone is called (unless up_console_stop came first) and con freed. */
void up_console_hijacked(void *con, int fd, const uint8_t *pending, size_t n);
/* The VM's process ended: what the client has not been sent of the log yet and then line (one
 * line, "\r\n" around it added here) go out as far as the client's socket takes them without
 * waiting, and the connection is closed; c is freed (gone is not called). Before the client
 * was handed over, that happens at the hand-over. */
void up_console_stop(struct up_console *c, const char *line);

/* Where a new client's output starts in win, the last len bytes of the log when the log is
 * longer than them (whole: 0): after the first '\n' when a line starts in win past it, else 0. */
size_t up_console_tail_start(const char *win, size_t len);

#endif
