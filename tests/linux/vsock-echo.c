/* vsock-echo - the AF_VSOCK helper of the Linux tier's vsock tests (linux-vsock-*), the same
 * program in the emulated host and in the guest (tests/linux/lib.sh builds it static).
 *
 *   vsock-echo serve PORT [COPY] [once]  listen on PORT (any CID); print "listening" once ready;
 *                                        echo every connection's bytes back, writing what it
 *                                        received to COPY too; with once, exit after the first
 *   vsock-echo connect CID PORT          stdin to the connection, then shut its sending side; the
 *                                        connection's bytes to stdout until it ends; on stderr
 *                                        "sent=N received=N secs=S MiBps=R"; status 0 when both
 *                                        sides ended cleanly
 *   vsock-echo hold CID PORT             connect and read until the connection ends: prints
 *                                        "connected", then "closed eof" or "closed <error>"
 *                                        (a connection the transport reset ends with an error)
 *   vsock-echo claim CID                 hold guest CID CID on /dev/vhost-vsock (as a VM would)
 *                                        until killed: prints "claimed", or the error
 *   vsock-echo ping CID PORT COUNT SIZE  round trips to an echo server: COUNT times SIZE bytes
 *                                        out and the same SIZE bytes back (checked), one at a
 *                                        time; prints "rtts=N size=S min_us=.. median_us=..
 *                                        mean_us=.. p99_us=.. max_us=.." (status 0), or the
 *                                        error on stderr (status 1)
 * The unix-socket mode of kvmbox's vsock (--vsock cid=N,uds=PATH), from the host's side:
 *   vsock-echo userve PATH_PORT [COPY|-] [once]  serve as above on the unix socket PATH_PORT
 *                                        (what a guest's connection to CID 2 port PORT reaches)
 *   vsock-echo uconnect PATH PORT        connect as above through the unix socket PATH: sends
 *                                        "CONNECT PORT\n", needs "OK <n>\n" back first (else
 *                                        "no OK line" on stderr, status 1)
 *   vsock-echo uhold PATH PORT           hold as above, through PATH
 *   vsock-echo uping PATH PORT COUNT SIZE  ping as above, through PATH (the "OK" line is not
 *                                        timed) */
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <linux/vm_sockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF (64 * 1024)

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int vsock_connect(const char *cid, const char *port)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK };
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	a.svm_cid = (unsigned)strtoul(cid, NULL, 10);
	a.svm_port = (unsigned)strtoul(port, NULL, 10);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "vsock-echo: connect %s:%s: %s\n", cid, port, strerror(errno));
		exit(1);
	}
	return fd;
}

static int unix_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path)) {
		fprintf(stderr, "vsock-echo: %s: path too long\n", path);
		exit(1);
	}
	strcpy(a->sun_path, path);
	return socket(AF_UNIX, SOCK_STREAM, 0);
}

/* Through kvmbox's unix socket: "CONNECT PORT\n", then "OK <host port>\n" (read a byte at a
 * time: what follows is the stream's). */
static int unix_connect(const char *path, const char *port)
{
	struct sockaddr_un a;
	char line[64], c;
	size_t n = 0;
	int fd = unix_addr(path, &a);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "vsock-echo: connect %s: %s\n", path, strerror(errno));
		exit(1);
	}
	snprintf(line, sizeof(line), "CONNECT %s\n", port);
	if (write_all(fd, line, strlen(line)) < 0) {
		fprintf(stderr, "vsock-echo: %s: write: %s\n", path, strerror(errno));
		exit(1);
	}
	while (n < sizeof(line) - 1 && read(fd, &c, 1) == 1 && c != '\n')
		line[n++] = c;
	line[n] = 0;
	if (strncmp(line, "OK ", 3)) {
		fprintf(stderr, "vsock-echo: %s port %s: no OK line (got '%s')\n", path, port, line);
		exit(1);
	}
	return fd;
}

static void serve_fd(int ls, const char *copy, int once);

static void serve(const char *port, const char *copy, int once)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY };
	int ls = socket(AF_VSOCK, SOCK_STREAM, 0);

	a.svm_port = (unsigned)strtoul(port, NULL, 10);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4) < 0) {
		fprintf(stderr, "vsock-echo: listen on port %s: %s\n", port, strerror(errno));
		exit(1);
	}
	serve_fd(ls, copy, once);
}

static void userve(const char *path, const char *copy, int once)
{
	struct sockaddr_un a;
	int ls = unix_addr(path, &a);

	unlink(path);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4) < 0) {
		fprintf(stderr, "vsock-echo: listen on %s: %s\n", path, strerror(errno));
		exit(1);
	}
	serve_fd(ls, copy, once);
}

static void serve_fd(int ls, const char *copy, int once)
{
	static char buf[BUF];

	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int c = accept(ls, NULL, NULL), cf = -1;
		ssize_t r;

		if (c < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "vsock-echo: accept: %s\n", strerror(errno));
			exit(1);
		}
		if (copy && (cf = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
			fprintf(stderr, "vsock-echo: %s: %s\n", copy, strerror(errno));
			exit(1);
		}
		while ((r = read(c, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
			if (r < 0)
				continue;
			if ((cf >= 0 && write_all(cf, buf, (size_t)r) < 0) || write_all(c, buf, (size_t)r) < 0)
				break;
		}
		if (r < 0)
			fprintf(stderr, "vsock-echo: read: %s\n", strerror(errno));
		if (cf >= 0)
			close(cf);
		close(c);
		if (once)
			exit(r < 0);
	}
}

struct sender {
	int fd;
	unsigned long long sent;
	int err;
};

static void *send_stdin(void *arg)
{
	struct sender *s = arg;
	static char buf[BUF];
	ssize_t r;

	while ((r = read(0, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
		if (r < 0)
			continue;
		if (write_all(s->fd, buf, (size_t)r) < 0) {
			s->err = errno;
			return NULL;
		}
		s->sent += (unsigned long long)r;
	}
	if (r < 0)
		s->err = errno;
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int client(int fd)
{
	static char buf[BUF];
	struct sender s = { 0 };
	unsigned long long got = 0;
	pthread_t t;
	double t0, secs;
	ssize_t r;
	int rerr = 0;

	s.fd = fd;
	t0 = now();
	if (pthread_create(&t, NULL, send_stdin, &s) != 0) {
		fprintf(stderr, "vsock-echo: pthread_create failed\n");
		return 1;
	}
	while ((r = read(s.fd, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
		if (r < 0)
			continue;
		if (write_all(1, buf, (size_t)r) < 0) {
			rerr = errno;
			break;
		}
		got += (unsigned long long)r;
	}
	if (r < 0)
		rerr = errno;
	pthread_join(t, NULL);
	secs = now() - t0;
	fprintf(stderr, "sent=%llu received=%llu secs=%.3f MiBps=%.1f%s%s%s%s\n", s.sent, got, secs,
		secs > 0 ? (double)(s.sent + got) / 2 / 1048576 / secs : 0.0, s.err ? " send_error=" : "",
		s.err ? strerror(s.err) : "", rerr ? " recv_error=" : "", rerr ? strerror(rerr) : "");
	return s.err || rerr;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int ping(int fd, const char *count, const char *size)
{
	long n = strtol(count, NULL, 10), sz = strtol(size, NULL, 10);
	char out[BUF], in[BUF];
	double *rtt, sum = 0;
	ssize_t r;

	if (n < 1 || n > 1000000 || sz < 1 || sz > BUF) {
		fprintf(stderr, "vsock-echo: ping: COUNT 1 to 1000000 and SIZE 1 to %d, not '%s' '%s'\n", BUF, count, size);
		return 1;
	}
	rtt = calloc((size_t)n, sizeof(*rtt));
	if (!rtt)
		return 1;
	for (long i = 0; i < n; i++) {
		double t0;
		long got = 0;

		for (long k = 0; k < sz; k++)
			out[k] = (char)(i + k);
		t0 = now();
		if (write_all(fd, out, (size_t)sz) < 0) {
			fprintf(stderr, "vsock-echo: ping %ld: write: %s\n", i, strerror(errno));
			return 1;
		}
		while (got < sz) {
			r = read(fd, in + got, (size_t)(sz - got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				fprintf(stderr, "vsock-echo: ping %ld: read: %s\n", i, r ? strerror(errno) : "end of stream");
				return 1;
			}
			got += r;
		}
		rtt[i] = (now() - t0) * 1e6;
		if (memcmp(in, out, (size_t)sz)) {
			fprintf(stderr, "vsock-echo: ping %ld: the echo differs from what was sent\n", i);
			return 1;
		}
		sum += rtt[i];
	}
	/* The server sees the end; what it still sends is drained. */
	shutdown(fd, SHUT_WR);
	while ((r = read(fd, in, sizeof(in))) > 0 || (r < 0 && errno == EINTR))
		;
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp_double);
	printf("rtts=%ld size=%ld min_us=%.1f median_us=%.1f mean_us=%.1f p99_us=%.1f max_us=%.1f\n", n, sz, rtt[0],
	       n % 2 ? rtt[n / 2] : (rtt[n / 2 - 1] + rtt[n / 2]) / 2, sum / (double)n, rtt[(n * 99 + 99) / 100 - 1],
	       rtt[n - 1]);
	free(rtt);
	return 0;
}

static int hold(int fd)
{
	char c;
	ssize_t r;

	printf("connected\n");
	fflush(stdout);
	while ((r = read(fd, &c, 1)) != 0) {
		if (r < 0 && errno != EINTR) {
			printf("closed %s\n", strerror(errno));
			return 0;
		}
	}
	printf("closed eof\n");
	return 0;
}

static int claim(const char *cid)
{
	unsigned long long c = strtoull(cid, NULL, 10);
	int fd = open("/dev/vhost-vsock", O_RDWR);

	if (fd < 0 || ioctl(fd, VHOST_SET_OWNER, NULL) < 0 || ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &c) < 0) {
		printf("claim %s: %s\n", cid, strerror(errno));
		return 1;
	}
	printf("claimed\n");
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 3 && !strcmp(argv[1], "serve"))
		serve(argv[2], argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL, argc > 4 && !strcmp(argv[4], "once"));
	else if (argc >= 3 && !strcmp(argv[1], "userve"))
		userve(argv[2], argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL, argc > 4 && !strcmp(argv[4], "once"));
	else if (argc == 4 && !strcmp(argv[1], "connect"))
		return client(vsock_connect(argv[2], argv[3]));
	else if (argc == 4 && !strcmp(argv[1], "uconnect"))
		return client(unix_connect(argv[2], argv[3]));
	else if (argc == 4 && !strcmp(argv[1], "hold"))
		return hold(vsock_connect(argv[2], argv[3]));
	else if (argc == 4 && !strcmp(argv[1], "uhold"))
		return hold(unix_connect(argv[2], argv[3]));
	else if (argc == 6 && !strcmp(argv[1], "ping"))
		return ping(vsock_connect(argv[2], argv[3]), argv[4], argv[5]);
	else if (argc == 6 && !strcmp(argv[1], "uping"))
		return ping(unix_connect(argv[2], argv[3]), argv[4], argv[5]);
	else if (argc == 3 && !strcmp(argv[1], "claim"))
		return claim(argv[2]);
	fprintf(stderr, "usage: vsock-echo serve PORT [COPY|-] [once] | connect CID PORT | hold CID PORT | claim CID"
			" | ping CID PORT COUNT SIZE | userve PATH_PORT [COPY|-] [once] | uconnect PATH PORT | uhold PATH PORT"
			" | uping PATH PORT COUNT SIZE\n");
	return 2;
}
