#include "sigwatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../backends/console.h"
#include "log.h"
#include "sandbox.h"

/* Sent by sigwatch_stop to end the thread's wait; never a termination signal. */
#define SIG_WATCH_STOP (SIGRTMIN + 2)

struct sigwatch {
	pthread_t thread;
	sigset_t set; /* the termination signals plus SIG_WATCH_STOP */
	int efd;
	int grace_s;
	_Atomic int signo; /* the first signal, for sigwatch_take */
	_Atomic bool stopping;
};

/* The signal's name without "SIG" (sigabbrev_np is glibc's only). */
static const char *sig_abbrev(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "TERM";
	case SIGINT:
		return "INT";
	case SIGHUP:
		return "HUP";
	default:
		return NULL;
	}
}

static _Noreturn void force_exit(struct sigwatch *w, int sig, bool second)
{
	const char *name = sig_abbrev(sig);

	console_restore_terminal();
	if (second)
		fprintf(stderr, "kvmbox: a second SIG%s; exiting without a clean shutdown\n",
			name ? name : "?");
	else
		fprintf(stderr,
			"kvmbox: the VM did not stop within %d s of SIG%s; exiting without a clean "
			"shutdown\n",
			w->grace_s, name ? name : "?");
	fflush(stderr);
	_exit(128 + sig);
}

static void *sigwatch_thread(void *arg)
{
	struct sigwatch *w = arg;
	siginfo_t si;
	struct timespec deadline, now, left;
	int first = 0, sig;
	uint64_t one = 1;

	pthread_setname_np(pthread_self(), "signals");
	sandbox_thread_enter(SB_SIGNALS);
	for (;;) {
		if (!first) {
			sig = sigwaitinfo(&w->set, &si);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left.tv_sec = deadline.tv_sec - now.tv_sec;
			left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
			if (left.tv_nsec < 0) {
				left.tv_nsec += 1000000000L;
				left.tv_sec--;
			}
			if (left.tv_sec < 0)
				force_exit(w, first, false);
			sig = sigtimedwait(&w->set, &si, &left);
		}
		if (atomic_load(&w->stopping))
			return NULL;
		if (sig < 0) {
			if (errno == EAGAIN && first)
				force_exit(w, first, false);
			continue; /* EINTR */
		}
		if (sig == SIG_WATCH_STOP)
			continue;
		if (first)
			force_exit(w, sig, true);
		first = sig;
		atomic_store(&w->signo, sig);
		if (write(w->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow with one write */
		}
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += w->grace_s;
	}
}

void sigwatch_termination_set(sigset_t *set)
{
	static const int optional[] = { SIGINT, SIGHUP };
	struct sigaction old;

	sigemptyset(set);
	sigaddset(set, SIGTERM);
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		if (sigaction(optional[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaddset(set, optional[i]);
}

struct sigwatch *sigwatch_start(const sigset_t *set, int grace_s)
{
	struct sigwatch *w = calloc(1, sizeof(*w));
	sigset_t block;
	int err;

	if (!w) {
		log_error("out of memory");
		return NULL;
	}
	w->set = *set;
	w->grace_s = grace_s;
	sigaddset(&w->set, SIG_WATCH_STOP);
	sigemptyset(&block);
	sigaddset(&block, SIG_WATCH_STOP);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		log_error("eventfd: %s; raise the open file limit", strerror(errno));
		free(w);
		return NULL;
	}
	err = pthread_create(&w->thread, NULL, sigwatch_thread, w);
	if (err) {
		log_error("cannot start the signal thread: %s", strerror(err));
		close(w->efd);
		free(w);
		return NULL;
	}
	return w;
}

int sigwatch_fd(const struct sigwatch *w)
{
	return w->efd;
}

int sigwatch_take(struct sigwatch *w)
{
	uint64_t v;

	if (read(w->efd, &v, sizeof(v)) < 0) {
		/* nothing pending */
	}
	return atomic_load(&w->signo);
}

void sigwatch_stop(struct sigwatch *w)
{
	if (!w)
		return;
	atomic_store(&w->stopping, true);
	pthread_kill(w->thread, SIG_WATCH_STOP);
	pthread_join(w->thread, NULL);
	close(w->efd);
	free(w);
}
