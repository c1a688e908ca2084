/* ptyrun.c - run kvmbox (the idle guest) on a pseudo-terminal and check what
 * it does to the terminal, for the tty_* tests of tests/guests/run.sh.
 *
 *   ptyrun TEST HOW ERRFILE OUTFILE PROG [ARGS...]
 *
 * PROG runs as a session leader with the pty slave as its controlling
 * terminal, stdin and stdout; its stderr goes to ERRFILE, everything read from
 * the master to OUTFILE. Once "idle: ready" shows up on the master the pty must
 * be in raw mode (ICANON, ECHO and ISIG off). Then, by HOW:
 *   sigterm   SIGTERM                  -> status 143, termios as before the run
 *   ctrl-a-x  "\001x" into the master  -> status 130, termios as before the run
 *   hangup    close the master         -> status 129 (SIGHUP from the hang-up)
 * The console modes drive `kvmbox ctl UP_SOCKET console NAME` attached to an idle guest booted
 * with `echo` under kvmbox up, L being the last tick the caller saw in the console log:
 *   console=L       a tick above L on the master (then raw mode is checked), OUTFILE.attached
 *                   created and OUTFILE.go waited for (the caller tries a second attach
 *                   meanwhile), "hello console\r" typed and "idle: echo hello console" back,
 *                   "\001x" -> status 0, termios as before the run
 *   console-term=L  the same, then SIGTERM instead of the escape -> status 143, termios as before
 *   console-hup=L   the same, then the terminal hangs up (master and slave closed) -> status 129
 * Prints one line, "PASS: TEST" or "FAIL: TEST: why", and exits 0 (2 on bad
 * usage). Every wait is bounded. ERRFILE's contents are the caller's to judge. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define READY         "idle: ready"
#define TIMEOUT_READY 20.0
#define TIMEOUT_EXIT  5.0

static char *out; /* what the master gave, NUL-terminated */
static size_t out_len, out_cap;
static const char *test;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait up to ms for data on the master and append it to out. Returns 0 once
 * every slave is closed (EIO or EOF), else 1. */
static int read_some(int master, int ms)
{
	struct pollfd p = { .fd = master, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return 1;
	n = read(master, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0)
		return 0;
	if (out_len + (size_t)n + 1 > out_cap) {
		size_t cap = (out_len + (size_t)n + 1) * 2;
		char *p2 = realloc(out, cap);

		if (!p2) {
			fprintf(stderr, "ptyrun: out of memory\n");
			exit(2);
		}
		out = p2;
		out_cap = cap;
	}
	memcpy(out + out_len, buf, (size_t)n);
	out_len += (size_t)n;
	out[out_len] = 0;
	return 1;
}

/* Status (exit code or 128+signal) of pid within timeout, or -1. Drains the
 * master meanwhile (master < 0: none), so the child never blocks on a full pty. */
static int wait_exit(pid_t pid, int master, double timeout)
{
	double end = now() + timeout;
	int open_ = master >= 0, st;

	while (now() < end) {
		pid_t p = waitpid(pid, &st, WNOHANG);

		if (p == pid)
			return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		if (open_)
			open_ = read_some(master, 50);
		else
			usleep(50000);
	}
	return -1;
}

static void tio_diff(const struct termios *a, const struct termios *b, char *buf, size_t len)
{
	size_t o = 0;

#define FLAG(f)                                                                                       \
	if (a->f != b->f)                                                                             \
	o += (size_t)snprintf(buf + o, len - o, "%s%s %#x -> %#x", o ? "; " : "", #f, (unsigned)a->f, \
			      (unsigned)b->f)
	FLAG(c_iflag);
	FLAG(c_oflag);
	FLAG(c_cflag);
	FLAG(c_lflag);
#undef FLAG
	if (o < len && cfgetispeed(a) != cfgetispeed(b))
		o += (size_t)snprintf(buf + o, len - o, "%sispeed", o ? "; " : "");
	if (o < len && cfgetospeed(a) != cfgetospeed(b))
		o += (size_t)snprintf(buf + o, len - o, "%sospeed", o ? "; " : "");
	for (int i = 0; i < NCCS && o < len; i++)
		if (a->c_cc[i] != b->c_cc[i])
			o += (size_t)snprintf(buf + o, len - o, "%scc[%d]", o ? "; " : "", i);
}

static int tio_same(const struct termios *a, const struct termios *b)
{
	return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag &&
	       a->c_lflag == b->c_lflag && cfgetispeed(a) == cfgetispeed(b) &&
	       cfgetospeed(a) == cfgetospeed(b) && !memcmp(a->c_cc, b->c_cc, sizeof(a->c_cc));
}

/* The highest N of the "idle: tick N" lines in out (-1: none). */
static long max_tick(void)
{
	long best = -1;

	for (const char *p = out; p && (p = strstr(p, "idle: tick ")); p++) {
		char *end;
		long v = strtol(p + 11, &end, 10);

		if (end != p + 11 && v > best)
			best = v;
	}
	return best;
}

/* Read from the master until text shows up, up to timeout s. 0, or -1 (*pid reaped if it ended). */
static int wait_text(const char *text, double timeout, pid_t *pid, int master)
{
	double end = now() + timeout;
	int st;

	while (!out || !strstr(out, text)) {
		if (now() > end)
			return -1;
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			return -1;
		}
		read_some(master, 50);
	}
	return 0;
}

static void child(char **argv, const char *err_path, int master, int slave)
{
	int err;

	close(master);
	if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) {
		dprintf(2, "ptyrun: cannot make the pty the controlling terminal: %s\n", strerror(errno));
		_exit(127);
	}
	err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (err < 0 || dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(err, 2) < 0) {
		dprintf(2, "ptyrun: cannot set up the child's fds: %s\n", strerror(errno));
		_exit(127);
	}
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	execvp(argv[0], argv);
	dprintf(2, "ptyrun: cannot start %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: %s: ", test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 1;
}

/* The test itself; kills and reaps *pid on any early return (the caller does). */
static int run(const char *how, const char *err_path, const char *out_path, char **argv, pid_t *pid,
	       int *master, int *slave)
{
	bool console = !strncmp(how, "console=", 8) || !strncmp(how, "console-term=", 13) ||
		       !strncmp(how, "console-hup=", 12);
	long last = console ? strtol(strchr(how, '=') + 1, NULL, 10) : 0;

	struct termios before, during, after;
	double end;
	int want, status;
	char *pts;

	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) < 0 || unlockpt(*master) < 0 || !(pts = ptsname(*master)))
		return fail("cannot make a pseudo-terminal: %s (is devpts mounted?)", strerror(errno));
	/* The slave stays open here too: its termios outlive the child, and reads
	 * from the master do not fail with EIO when the child exits. */
	*slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave < 0)
		return fail("cannot open %s: %s", pts, strerror(errno));
	if (tcgetattr(*slave, &before) < 0)
		return fail("tcgetattr: %s", strerror(errno));
	*pid = fork();
	if (*pid < 0)
		return fail("fork: %s", strerror(errno));
	if (*pid == 0)
		child(argv, err_path, *master, *slave);

	if (console) {
		char path[4096];
		int fd;

		end = now() + TIMEOUT_READY;
		while (max_tick() <= last) {
			int st;

			if (now() > end)
				return fail("no tick above %ld on the pty within %.0fs (highest %ld)", last,
					    TIMEOUT_READY, max_tick());
			if (waitpid(*pid, &st, WNOHANG) == *pid) {
				*pid = 0;
				return fail(
					"the console client exited (wait status %#x) before a tick above %ld",
					(unsigned)st, last);
			}
			read_some(*master, 50);
		}
		if (tcgetattr(*slave, &during) < 0)
			return fail("tcgetattr: %s", strerror(errno));
		if (during.c_lflag & (ICANON | ECHO | ISIG))
			return fail("pty not in raw mode while attached (%s%s%s still on)",
				    during.c_lflag & ICANON ? "ICANON " : "",
				    during.c_lflag & ECHO ? "ECHO " : "",
				    during.c_lflag & ISIG ? "ISIG" : "");
		snprintf(path, sizeof(path), "%s.attached", out_path);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return fail("cannot create %s: %s", path, strerror(errno));
		close(fd);
		snprintf(path, sizeof(path), "%s.go", out_path);
		end = now() + TIMEOUT_READY;
		while (access(path, F_OK) < 0) {
			if (now() > end)
				return fail("no %s within %.0fs", path, TIMEOUT_READY);
			read_some(*master, 50);
		}
		if (write(*master, "hello console\r", 14) != 14)
			return fail("cannot write to the pty: %s", strerror(errno));
		if (wait_text("idle: echo hello console", 10.0, pid, *master) < 0)
			return fail("no 'idle: echo hello console' within 10s of typing it%s",
				    *pid ? "" : " (the client exited)");
		if (!strncmp(how, "console=", 8)) {
			if (write(*master, "\001x", 2) != 2)
				return fail("cannot write to the pty: %s", strerror(errno));
			want = 0;
		} else if (!strncmp(how, "console-hup=", 12)) {
			close(*slave);
			*slave = -1;
			close(*master);
			*master = -1;
			want = 129;
		} else {
			kill(*pid, SIGTERM);
			want = 143;
		}
		goto wait;
	}

	end = now() + TIMEOUT_READY;
	while (!out || !strstr(out, READY)) {
		int st;

		if (now() > end)
			return fail("no '%s' on the pty within %.0fs", READY, TIMEOUT_READY);
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			return fail("kvmbox exited (wait status %#x) before the guest was ready",
				    (unsigned)st);
		}
		read_some(*master, 50);
	}
	if (tcgetattr(*slave, &during) < 0)
		return fail("tcgetattr: %s", strerror(errno));
	if (during.c_lflag & (ICANON | ECHO | ISIG))
		return fail("pty not in raw mode while kvmbox runs (%s%s%s still on)",
			    during.c_lflag & ICANON ? "ICANON " : "", during.c_lflag & ECHO ? "ECHO " : "",
			    during.c_lflag & ISIG ? "ISIG" : "");

	if (!strcmp(how, "sigterm")) {
		kill(*pid, SIGTERM);
		want = 143;
	} else if (!strcmp(how, "ctrl-a-x")) {
		if (write(*master, "\001x", 2) != 2)
			return fail("cannot write to the pty: %s", strerror(errno));
		want = 130;
	} else { /* hangup */
		close(*slave);
		*slave = -1;
		close(*master);
		*master = -1;
		want = 129;
	}
wait:
	status = wait_exit(*pid, *master, TIMEOUT_EXIT);
	if (status < 0)
		return fail("still running %.0fs after the %s", TIMEOUT_EXIT, how);
	*pid = 0;
	if (status != want)
		return fail("status %d, expected %d", status, want);
	if (*slave >= 0) {
		char d[512] = "";

		if (tcgetattr(*slave, &after) < 0)
			return fail("tcgetattr after the run: %s", strerror(errno));
		if (!tio_same(&before, &after)) {
			tio_diff(&before, &after, d, sizeof(d));
			return fail("terminal not restored: %s", d);
		}
	}
	printf("PASS: %s\n", test);
	return 0;
}

int main(int argc, char **argv)
{
	int master = -1, slave = -1;
	pid_t pid = 0;
	const char *how;
	FILE *f;

	if (argc < 6 || (strcmp(argv[2], "sigterm") && strcmp(argv[2], "ctrl-a-x") &&
			 strcmp(argv[2], "hangup") && strncmp(argv[2], "console=", 8) &&
			 strncmp(argv[2], "console-term=", 13) && strncmp(argv[2], "console-hup=", 12))) {
		fprintf(stderr,
			"usage: ptyrun TEST sigterm|ctrl-a-x|hangup|console=L|console-term=L|console-hup=L ERRFILE "
			"OUTFILE PROG [ARGS...]\n");
		return 2;
	}
	test = argv[1];
	how = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	run(how, argv[3], argv[4], &argv[5], &pid, &master, &slave);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	f = fopen(argv[4], "wb");
	if (!f || (out_len && fwrite(out, 1, out_len, f) != out_len) || fclose(f)) {
		fprintf(stderr, "ptyrun: cannot write %s\n", argv[4]);
		return 2;
	}
	return 0;
}
