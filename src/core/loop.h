/* loop.h - the main thread's epoll event loop.
 *
 * Handlers run on the main thread only. The loop ends when a handler calls
 * loop_quit(). Used for console input, signals, VM stop events and, later,
 * the control socket. */
#ifndef KVMBOX_LOOP_H
#define KVMBOX_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

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

/* A one-shot timer whose expiry runs fn on the loop's thread: how a device schedules timed work
 * (a timerfd watched by the loop; no thread of its own). Create and free it on the loop's
 * thread; loop_timer_set may be called from any thread (a vCPU's register write). */
struct loop_timer;
typedef void (*loop_timer_fn)(void *opaque);
/* A disarmed timer on `clock` (CLOCK_REALTIME, CLOCK_MONOTONIC). NULL, with errno set (nothing
 * printed), when the timerfd or the watch cannot be had. */
struct loop_timer *loop_timer_new(struct loop *l, int clock, loop_timer_fn fn, void *opaque);
/* Arm it to fire once at the absolute time `when` on its clock (a past time fires at once), or
 * disarm it (when == NULL). A later set replaces the earlier one. 0, or -1 with errno set. */
int loop_timer_set(struct loop_timer *t, const struct timespec *when);
void loop_timer_free(struct loop_timer *t);

#endif
