/* link_switch.c - what a link (backends/dgram.c) costs per frame, without KVM.
 *
 * Ports of one process, each on its own loop in its own thread (as each VM's card worker is),
 * meeting in a temporary directory. A sender thread writes N frames of SIZE bytes into one
 * card's device end as fast as the link takes them; a receiver thread reads them from another
 * card's device end. Two cards: the member's port -> the listener's port (the switch) -> its
 * device. Three cards: member -> switch -> the other member's port -> its device: one more hop
 * through the switch's thread. Prints frames/s, MiB/s, frames lost, and the process's CPU time
 * per frame.
 *
 *   build/bench/link_switch [FRAMES [SIZE]]      (default 200000 frames of 1514 bytes) */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "backends/dgram.h"
#include "core/loop.h"
#include "core/util.h"

struct port {
	struct loop *loop;
	struct dgram *d;
	int dev;
	pthread_t t;
};

static void on_fd(struct loop *l, int fd, uint32_t events, void *opaque)
{
	dgram_on_fd(opaque, fd, events);
}

static volatile int loops_stop;

static void *run(void *arg)
{
	while (!loops_stop)
		loop_run_once(arg, 50);
	return NULL;
}

static int open_port(struct port *p, const char *path)
{
	p->loop = loop_create();
	p->d = dgram_open(path, true, "bench", &p->dev);
	if (!p->loop || !p->d || dgram_attach(p->d, p->loop, on_fd, p->d) < 0)
		return -1;
	return 0;
}

static const uint8_t mac[3][6] = {
	{ 0x52, 0x54, 0, 0, 0, 1 },
	{ 0x52, 0x54, 0, 0, 0, 2 },
	{ 0x52, 0x54, 0, 0, 0, 3 },
};

struct job {
	int fd;
	long frames;
	size_t size;
	const uint8_t *dst, *src;
	long got;
	volatile int *stop;
};

static void send_one(int fd, const uint8_t *b, size_t n)
{
	while (send(fd, b, n, MSG_DONTWAIT) < 0) {
		struct pollfd pf = { .fd = fd, .events = POLLOUT };

		if (errno != EAGAIN && errno != EINTR)
			return;
		poll(&pf, 1, 100);
	}
}

static void *sender(void *arg)
{
	struct job *j = arg;
	uint8_t *b = calloc(1, DGRAM_HDR_LEN + j->size);

	memcpy(b + DGRAM_HDR_LEN, j->dst, 6);
	memcpy(b + DGRAM_HDR_LEN + 6, j->src, 6);
	for (long i = 0; i < j->frames; i++)
		send_one(j->fd, b, DGRAM_HDR_LEN + j->size);
	free(b);
	return NULL;
}

static void *receiver(void *arg)
{
	struct job *j = arg;
	uint8_t *b = malloc(DGRAM_HDR_LEN + 65536);

	while (!*j->stop) {
		struct pollfd pf = { .fd = j->fd, .events = POLLIN };

		if (poll(&pf, 1, 50) <= 0)
			continue;
		while (recv(j->fd, b, DGRAM_HDR_LEN + 65536, MSG_DONTWAIT) > 0)
			j->got++;
	}
	free(b);
	return NULL;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* n cards; card 1 sends to card n-1 (n = 2: to card 0, the switch). */
static void measure(int n, long frames, size_t size)
{
	char dir[] = "/tmp/kvmbox-linkbenchXXXXXX", path[96], cmd[128];
	struct port p[3];
	struct job tx, rx;
	volatile int stop = 0;
	pthread_t ts, tr;
	int to = n == 2 ? 0 : 2;
	double t0, c0, t, c;
	uint64_t fwd, dropped, f2, d2;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/lan", dir);
	memset(p, 0, sizeof(p));
	loops_stop = 0;
	for (int i = 0; i < n; i++) {
		if (open_port(&p[i], path) < 0)
			exit(1);
		pthread_create(&p[i].t, NULL, run, p[i].loop);
	}
	usleep(100000);
	/* The receiver's MAC is learned first (one frame from it), so the switch unicasts. */
	tx = (struct job){ .fd = p[to].dev, .frames = 1, .size = 60, .dst = mac[1], .src = mac[to] };
	sender(&tx);
	usleep(100000);
	rx = (struct job){ .fd = p[to].dev, .stop = &stop };
	tx = (struct job){ .fd = p[1].dev, .frames = frames, .size = size, .dst = mac[to], .src = mac[1] };
	{
		uint8_t b[128];

		while (recv(p[1].dev, b, sizeof(b), MSG_DONTWAIT) > 0)
			;
	}
	t0 = now_ns() / 1e9;
	c0 = cpu_s();
	pthread_create(&tr, NULL, receiver, &rx);
	pthread_create(&ts, NULL, sender, &tx);
	pthread_join(ts, NULL);
	/* Let the last frames arrive. */
	for (int k = 0; k < 100 && rx.got < frames; k++)
		usleep(10000);
	t = now_ns() / 1e9 - t0;
	c = cpu_s() - c0;
	stop = 1;
	pthread_join(tr, NULL);
	fwd = dropped = 0;
	for (int i = 0; i < n; i++) {
		dgram_counters(p[i].d, &f2, &d2);
		fwd += f2;
		dropped += d2;
	}
	printf("| %d cards (%s) | %zu | %ld | %.0f | %.1f | %ld | %.2f |\n", n,
	       n == 2 ? "member -> switch" : "member -> switch -> member", size, rx.got, rx.got / t,
	       rx.got * (double)size / t / 1048576.0, frames - rx.got,
	       c * 1e6 / (double)(rx.got ? rx.got : 1));
	loops_stop = 1;
	for (int i = 0; i < n; i++) {
		pthread_join(p[i].t, NULL);
		dgram_close(p[i].d);
		close(p[i].dev);
		loop_destroy(p[i].loop);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s failed\n", cmd);
}

int main(int argc, char **argv)
{
	long frames = argc > 1 ? atol(argv[1]) : 200000;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 1514;

	printf("| path | frame bytes | frames received | frames/s | MiB/s | lost | CPU us/frame (all threads) |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|\n");
	measure(2, frames, size);
	measure(3, frames, size);
	return 0;
}
