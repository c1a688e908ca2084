/* console.h - the user's terminal (or pipes) as the guest console.
 *
 * Output from the guest is written to out_fd. Input from in_fd is buffered
 * and handed to the console device through a receive callback as fast as the
 * device accepts it. When in_fd is a terminal it is put in raw mode (and
 * restored on every exit path, including fatal signals), and Ctrl-A x quits
 * (Ctrl-A Ctrl-A sends a Ctrl-A). */
#ifndef KVMBOX_CONSOLE_H
#define KVMBOX_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/device.h"
#include "../core/loop.h"

struct console;
/* Bytes the console device took (0 when full). */
typedef size_t (*console_receive_fn)(void *dev, const uint8_t *buf, size_t n);

/* in_fd < 0: no input. out_fd < 0: output discarded. NULL on failure. */
struct console *console_open(int in_fd, int out_fd);
/* The stream the console device writes to and signals rx space on. */
struct char_port console_port(struct console *c);
/* Start feeding input on loop l to dev; quit() is called for Ctrl-A x. */
int console_attach(struct console *c, struct loop *l, console_receive_fn receive, void *dev,
		   void (*quit)(void *ctx), void *quit_ctx);
/* Stop feeding (the device is going away). */
void console_detach(struct console *c);
/* Restore the terminal and free. */
void console_close(struct console *c);
/* Put the terminal back as it was before console_open, from any thread (a forced exit). */
void console_restore_terminal(void);
/* Pure escape-sequence filter, exposed for tests: copies input to out
 * (removing escapes), sets *quit on Ctrl-A x. `state` carries a pending
 * Ctrl-A between calls. Returns bytes written to out (<= n). */
size_t console_filter(bool *state, const uint8_t *in, size_t n, uint8_t *out, bool *quit);

#endif
