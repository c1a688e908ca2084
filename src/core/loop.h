/* loop.h - the main thread's epoll event loop.
 *
 * Handlers run on the main thread only. The loop ends when a handler calls
 * loop_quit(). Used for console input, signals, VM stop events and, later,
 * the control socket. */
#ifndef KVMBOX_LOOP_H
#define KVMBOX_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
typedef void (*loop_fn)(struct loop *l, int fd, uint32_t events, void *opaque);

struct loop *loop_create(void);
void loop_destroy(struct loop *l);
/* Watch fd for `events` (EPOLLIN ...). 0, or -1 with errno set (nothing printed). */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque);
/* Change the events of a watched fd (0 pauses it). */
int loop_mod(struct loop *l, int fd, uint32_t events);
int loop_del(struct loop *l, int fd);
/* Dispatch until loop_quit(). Returns 0, or -1 if epoll fails. */
int loop_run(struct loop *l);
/* Wait up to timeout_ms (-1: forever) for events and dispatch that one batch
 * (tests drive a device's loop this way). Returns the number of handlers run
 * (0 on timeout or EINTR), or -1 if epoll fails. */
int loop_run_once(struct loop *l, int timeout_ms);
void loop_quit(struct loop *l);

#endif
