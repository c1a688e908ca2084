/* sigdisp.c - run a program with chosen signal dispositions, like GNU env's
 * --default-signal / --ignore-signal (busybox env has neither).
 *
 *   sigdisp [-d SIG[,SIG...]] [-i SIG[,SIG...]] PROG [ARGS...]
 *
 * -d resets the signals to their default action, -i makes them ignored (the
 * later option wins for a signal named twice). SIG: HUP INT QUIT TERM USR1 USR2
 * PIPE ALRM CHLD, with or without SIG. The listed signals are also unblocked.
 * PROG replaces us (same pid). 125: bad usage; 127: PROG could not be started. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	int sig;
} names[] = {
	{ "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT },
	{ "TERM", SIGTERM }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "CHLD", SIGCHLD },
};

static int lookup(const char *s, size_t len)
{
	if (len > 3 && !strncmp(s, "SIG", 3)) {
		s += 3;
		len -= 3;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && !strncmp(names[i].name, s, len))
			return names[i].sig;
	return -1;
}

/* Apply handler to every signal of the comma-separated list. */
static int apply(const char *list, void (*handler)(int))
{
	const char *p = list;
	sigset_t set;

	sigemptyset(&set);
	for (;;) {
		size_t len = strcspn(p, ",");
		int sig = lookup(p, len);
		struct sigaction sa;

		if (sig < 0) {
			fprintf(stderr, "sigdisp: unknown signal '%.*s' in '%s'\n", (int)len, p, list);
			return -1;
		}
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = handler;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, NULL) < 0) {
			fprintf(stderr, "sigdisp: sigaction %.*s: %s\n", (int)len, p, strerror(errno));
			return -1;
		}
		sigaddset(&set, sig);
		if (!p[len])
			break;
		p += len + 1;
	}
	return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i + 1 < argc && (!strcmp(argv[i], "-d") || !strcmp(argv[i], "-i"))) {
		if (apply(argv[i + 1], argv[i][1] == 'd' ? SIG_DFL : SIG_IGN) < 0)
			return 125;
		i += 2;
	}
	if (i >= argc || argv[i][0] == '-') {
		fprintf(stderr, "usage: sigdisp [-d SIG,...] [-i SIG,...] PROG [ARGS...]\n");
		return 125;
	}
	execvp(argv[i], &argv[i]);
	fprintf(stderr, "sigdisp: cannot run %s: %s\n", argv[i], strerror(errno));
	return 127;
}
