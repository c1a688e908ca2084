/* sigwatch.h - termination signals with a deadline.
 *
 * A thread named "signals" takes the termination signals (SIGTERM, and SIGINT/SIGHUP unless
 * ignored at start) that every other thread blocks, and hands each to the main loop through
 * an eventfd. The first one also starts a deadline: if kvmbox has not stopped `grace_s`
 * seconds later (a thread stuck in the kernel, a peer that never answers), or a second
 * termination signal comes, the thread restores the terminal, prints one line and ends the
 * process with status 128+N. So a termination signal always ends kvmbox. */
#ifndef KVMBOX_SIGWATCH_H
#define KVMBOX_SIGWATCH_H

#include <signal.h>

struct sigwatch;

/* The termination signals: SIGTERM, and SIGINT and SIGHUP unless ignored by whoever started
 * kvmbox (nohup, a shell's background job: a blocked signal would be queued despite SIG_IGN). */
void sigwatch_termination_set(sigset_t *set);
/* Start the thread for the signals in `set` (blocked in the caller, hence in every thread
 * it starts later). NULL with an error printed. */
struct sigwatch *sigwatch_start(const sigset_t *set, int grace_s);
/* Readable (EPOLLIN) when a signal came; sigwatch_take reads it. */
int sigwatch_fd(const struct sigwatch *w);
/* The signal that came (0 if none), clearing the fd's readiness. */
int sigwatch_take(struct sigwatch *w);
/* Stop the thread (the process is ending on its own) and free. */
void sigwatch_stop(struct sigwatch *w);

#endif
