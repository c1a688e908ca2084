/* deadline.c - run a program with a time limit, the same everywhere (busybox's
 * timeout has no distinct status for "timed out").
 *
 *   deadline [-k KILL_SECONDS] SECONDS PROG [ARGS...]
 *
 * Runs PROG as a child. Its status is ours (128+N if a signal N killed it).
 * After SECONDS it gets SIGTERM, KILL_SECONDS (default 5) later SIGKILL, and we
 * exit 124 once it is gone (or KILL_SECONDS after the SIGKILL: a process stuck in
 * the kernel must not hang the caller). SIGTERM, SIGINT and SIGHUP sent to us are passed on.
 * 125: bad usage or no child; 127: PROG could not be started. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e6)
		return -1;
	*out = v;
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int status_of(int st)
{
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
	double limit, grace = 5, end;
	sigset_t set, old;
	int argi = 1, st = 0, timed_out = 0;
	pid_t pid;

	if (argc > 2 && !strcmp(argv[1], "-k")) {
		if (parse_seconds(argv[2], &grace) < 0) {
			fprintf(stderr, "deadline: bad kill delay '%s'\n", argv[2]);
			return 125;
		}
		argi = 3;
	}
	if (argc - argi < 2 || parse_seconds(argv[argi], &limit) < 0) {
		fprintf(stderr, "usage: deadline [-k KILL_SECONDS] SECONDS PROG [ARGS...]\n");
		return 125;
	}
	/* Block what we wait for before the child exists, so nothing is missed. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "deadline: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[argi + 1], &argv[argi + 1]);
		fprintf(stderr, "deadline: cannot run %s: %s\n", argv[argi + 1], strerror(errno));
		_exit(127);
	}
	end = now() + limit;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		double left;
		struct timespec ts;
		int sig;

		if (w == pid)
			break;
		if (w < 0) {
			fprintf(stderr, "deadline: waitpid: %s\n", strerror(errno));
			return 125;
		}
		left = end - now();
		if (left <= 0) {
			if (timed_out == 2) /* not even SIGKILL ended it: do not hang with it */
				break;
			kill(pid, timed_out ? SIGKILL : SIGTERM);
			timed_out++;
			end = now() + grace;
			continue;
		}
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			kill(pid, sig);
	}
	return timed_out ? 124 : status_of(st);
}
