/* Unit tests for virtio-net (virtio/net.c).
 *
 * The backend is one end of an AF_UNIX SOCK_DGRAM socketpair standing in for
 * a tap with IFF_VNET_HDR: each datagram is a 12-byte virtio_net_hdr_v1 plus
 * a frame. Queues are set up by hand in a fake guest RAM and driven the way a
 * driver would; a fake transport records interrupts and NEEDS_RESET. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/tap.h"
#include "core/loop.h"
#include "virtio/net.h"

#define RAM_SIZE (4ULL << 20)
#define QSZ      256
#define Q_GPA(q) (0x10000ULL + 0x10000ULL * (q))  /* desc; avail +0x1000; used +0x2000 */
#define BUF_GPA  0x100000ULL                      /* data buffers from 1 MiB */
#define HDR      VIRTIO_NET_HDR_LEN

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* The driver's view of one queue. */
struct drvq {
	uint16_t next_desc;
	uint16_t avail_idx;
	uint16_t used_seen;
};

struct fake {
	unsigned notified[2];
	unsigned config_changes;
	unsigned needs_reset;
};

struct ctx {
	uint8_t *ram;
	struct guest_mem m;
	struct virtio_dev *vd;
	int peer;                       /* the "network" side of the backend */
	int devfd;                      /* the device's side (owned by the device) */
	char tap[IFNAMSIZ];             /* a test tap teardown removes, if any */
	struct fake f;
	struct drvq dq[2];
	uint64_t next_buf;              /* bump allocator for buffers */
};

/* ---- fake transport ---- */

static void fake_notify_queue(struct virtio_dev *vd, unsigned q)
{
	struct fake *f = vd->transport;

	if (q < 2)
		f->notified[q]++;
}

static void fake_notify_config(struct virtio_dev *vd)
{
	((struct fake *)vd->transport)->config_changes++;
}

static void fake_needs_reset(struct virtio_dev *vd)
{
	((struct fake *)vd->transport)->needs_reset++;
}

static const struct virtio_transport_ops fake_tops = {
	.notify_queue = fake_notify_queue,
	.notify_config = fake_notify_config,
	.needs_reset = fake_needs_reset,
};

/* ---- driver-side helpers ---- */

static uint8_t *host(struct ctx *x, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gpa_ptr(&x->m, gpa, len);

	assert_non_null(p);
	return p;
}

static void put16(struct ctx *x, uint64_t gpa, uint16_t v)
{
	uint8_t *p = host(x, gpa, 2);

	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(struct ctx *x, uint64_t gpa, uint32_t v)
{
	put16(x, gpa, (uint16_t)v);
	put16(x, gpa + 2, (uint16_t)(v >> 16));
}

static void put64(struct ctx *x, uint64_t gpa, uint64_t v)
{
	put32(x, gpa, (uint32_t)v);
	put32(x, gpa + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(struct ctx *x, uint64_t gpa)
{
	const uint8_t *p = host(x, gpa, 2);

	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(struct ctx *x, uint64_t gpa)
{
	return get16(x, gpa) | (uint32_t)get16(x, gpa + 2) << 16;
}

static uint64_t alloc_buf(struct ctx *x, uint32_t len)
{
	uint64_t g = x->next_buf;

	x->next_buf += (len + 15) & ~15u;
	assert_true(x->next_buf <= RAM_SIZE);
	return g;
}

/* Lay out a chain and make it available; returns the head. */
static uint16_t add_chain(struct ctx *x, unsigned q, const struct seg *s, unsigned n)
{
	struct drvq *d = &x->dq[q];
	uint16_t head = d->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QSZ);
		uint64_t dg = Q_GPA(q) + 16ULL * idx;
		uint16_t flags = (s[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);

		put64(x, dg, s[i].gpa);
		put32(x, dg + 8, s[i].len);
		put16(x, dg + 12, flags);
		put16(x, dg + 14, (uint16_t)((idx + 1) % QSZ));
	}
	d->next_desc = (uint16_t)((head + n) % QSZ);
	put16(x, Q_GPA(q) + 0x1000 + 4 + 2ULL * (d->avail_idx % QSZ), head);
	d->avail_idx++;
	put16(x, Q_GPA(q) + 0x1000 + 2, d->avail_idx);
	return head;
}

/* One writable rx buffer of len bytes; returns its gpa. */
static uint64_t add_rx_buf(struct ctx *x, uint32_t len)
{
	struct seg s = { alloc_buf(x, len), len, true };

	add_chain(x, VIRTIO_NET_RXQ, &s, 1);
	return s.gpa;
}

/* Next used element of queue q, if any. */
static bool next_used(struct ctx *x, unsigned q, uint32_t *id, uint32_t *len)
{
	struct drvq *d = &x->dq[q];
	uint64_t e;

	if (get16(x, Q_GPA(q) + 0x2000 + 2) == d->used_seen)
		return false;
	e = Q_GPA(q) + 0x2000 + 4 + 8ULL * (d->used_seen % QSZ);
	*id = get32(x, e);
	*len = get32(x, e + 4);
	d->used_seen++;
	return true;
}

static uint16_t used_count(struct ctx *x, unsigned q)
{
	return get16(x, Q_GPA(q) + 0x2000 + 2);
}

/* Gpa of descriptor `id` of queue q (one-descriptor rx chains). */
static uint64_t desc_addr(struct ctx *x, unsigned q, uint32_t id)
{
	uint64_t dg = Q_GPA(q) + 16ULL * id;

	return get32(x, dg) | (uint64_t)get32(x, dg + 4) << 32;
}

/* A kick, as the transport delivers it. */
static void kick(struct ctx *x, unsigned q)
{
	struct virtio_dev *vd = x->vd;

	pthread_mutex_lock(&vd->lock);
	if (vd->activated && !vd->broken && vd->vqs[q].enabled)
		vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

static void activate(struct ctx *x, uint64_t features)
{
	struct virtio_dev *vd = x->vd;

	pthread_mutex_lock(&vd->lock);
	vd->features = features | 1ULL << VIRTIO_F_VERSION_1;
	for (unsigned q = 0; q < 2; q++) {
		vd->vqs[q].size = QSZ;
		vd->vqs[q].desc_gpa = Q_GPA(q);
		vd->vqs[q].avail_gpa = Q_GPA(q) + 0x1000;
		vd->vqs[q].used_gpa = Q_GPA(q) + 0x2000;
		assert_int_equal(virtq_enable(&vd->vqs[q], &x->m), 0);
	}
	vd->activated = true;
	assert_int_equal(vd->ops->activate(vd), 0);
	pthread_mutex_unlock(&vd->lock);
}

/* Send a frame (header + payload) into the device's backend. */
static void send_frame(struct ctx *x, const uint8_t *hdr, const uint8_t *data, size_t len)
{
	struct iovec iov[2] = { { (void *)hdr, HDR }, { (void *)data, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	assert_int_equal(sendmsg(x->peer, &mh, 0), (ssize_t)(HDR + len));
}

static void run_loop(struct ctx *x, int timeout_ms)
{
	assert_true(loop_run_once(x->vd->loop, timeout_ms) >= 0);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

static int setup(void **state)
{
	static const struct mem_region layout[1] = { { .gpa = 0, .size = RAM_SIZE } };
	struct ctx *x = calloc(1, sizeof(*x));
	int sv[2];
	int big = 1 << 20;

	x->ram = calloc(1, RAM_SIZE);
	guest_mem_init_static(&x->m, x->ram, layout, 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	x->vd = virtio_net_create_fd(&x->m, sv[0], test_mac, 0);
	assert_non_null(x->vd);
	x->peer = sv[1];
	x->devfd = sv[0];
	x->vd->tops = &fake_tops;
	x->vd->transport = &x->f;
	x->next_buf = BUF_GPA;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->reset(x->vd);
	pthread_mutex_unlock(&x->vd->lock);
	x->vd->ops->destroy(x->vd);
	close(x->peer);
	if (x->tap[0]) {
		char cmd[64];

		/* Also after a failed assertion; a no-op when already gone. */
		snprintf(cmd, sizeof(cmd), "ip link del dev %s 2>/dev/null", x->tap);
		if (system(cmd) < 0)
			fprintf(stderr, "test: cannot run `%s`\n", cmd);
	}
	free(x->ram);
	free(x);
	return 0;
}

#define MRG_FEATURES (1ULL << VIRTIO_NET_F_MRG_RXBUF | 1ULL << VIRTIO_NET_F_CSUM | \
		      1ULL << VIRTIO_NET_F_GUEST_CSUM | 1ULL << VIRTIO_NET_F_MAC | \
		      1ULL << VIRTIO_NET_F_STATUS)

/* ---- tests ---- */

static void test_config(void **state)
{
	struct ctx *x = *state;
	uint8_t a[6], b[6], c[6];

	assert_int_equal(x->vd->ops->device_id, VIRTIO_ID_NET);
	assert_int_equal(x->vd->num_queues, 2);
	assert_true(x->vd->config_size >= 8);
	assert_memory_equal(x->vd->config, test_mac, 6);
	assert_int_equal(x->vd->config[6] | x->vd->config[7] << 8, VIRTIO_NET_S_LINK_UP);
	assert_true(x->vd->host_features & 1ULL << VIRTIO_NET_F_MAC);
	assert_true(x->vd->host_features & 1ULL << VIRTIO_NET_F_STATUS);
	assert_true(x->vd->host_features & 1ULL << VIRTIO_NET_F_MRG_RXBUF);
	assert_true(x->vd->host_features & 1ULL << VIRTIO_NET_F_GUEST_TSO4);
	assert_false(x->vd->host_features & 1ULL << 17); /* no CTRL_VQ */

	/* A driver write cannot change the config space. */
	x->vd->config[0] = 0xff;
	x->vd->config[6] = 0;
	x->vd->ops->config_write(x->vd, 0, 8);
	assert_memory_equal(x->vd->config, test_mac, 6);
	assert_int_equal(x->vd->config[6], VIRTIO_NET_S_LINK_UP);

	/* Stable, locally administered unicast MACs, distinct per name/index. */
	virtio_net_default_mac("tap0", 0, a);
	virtio_net_default_mac("tap0", 0, b);
	assert_memory_equal(a, b, 6);
	assert_int_equal(a[0], 0x52);
	assert_int_equal(a[1], 0x54);
	assert_int_equal(a[2], 0x00);
	virtio_net_default_mac("tap0", 1, b);
	virtio_net_default_mac("tap1", 0, c);
	assert_memory_not_equal(a, b, 6);
	assert_memory_not_equal(a, c, 6);
}

static void test_tx(void **state)
{
	struct ctx *x = *state;
	uint8_t frame[1000], got[2000], hdr[HDR] = { 0 };
	uint64_t h = alloc_buf(x, HDR), p1 = alloc_buf(x, 400), p2 = alloc_buf(x, 600);
	struct seg s[3] = { { h, HDR, false }, { p1, 400, false }, { p2, 600, false } };
	uint32_t id, len;
	uint16_t head;

	activate(x, MRG_FEATURES);
	pattern(frame, sizeof(frame), 3);
	hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM; /* CSUM negotiated: allowed */
	memcpy(host(x, h, HDR), hdr, HDR);
	memcpy(host(x, p1, 400), frame, 400);
	memcpy(host(x, p2, 600), frame + 400, 600);
	head = add_chain(x, VIRTIO_NET_TXQ, s, 3);
	kick(x, VIRTIO_NET_TXQ);

	assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), HDR + 1000);
	assert_memory_equal(got, hdr, HDR);
	assert_memory_equal(got + HDR, frame, 1000);
	assert_true(next_used(x, VIRTIO_NET_TXQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_true(x->f.notified[VIRTIO_NET_TXQ] >= 1);
	assert_false(virtio_is_broken(x->vd));
}

static void test_tx_batch(void **state)
{
	struct ctx *x = *state;
	uint8_t got[200];
	uint32_t id, len;

	activate(x, MRG_FEATURES);
	for (int i = 0; i < 10; i++) {
		uint64_t b = alloc_buf(x, HDR + 60);
		struct seg s = { b, HDR + 60, false };

		memset(host(x, b, HDR + 60), 0, HDR + 60);
		host(x, b, HDR + 60)[HDR] = (uint8_t)i;
		add_chain(x, VIRTIO_NET_TXQ, &s, 1);
	}
	kick(x, VIRTIO_NET_TXQ);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), HDR + 60);
		assert_int_equal(got[HDR], i);
		assert_true(next_used(x, VIRTIO_NET_TXQ, &id, &len));
	}
	/* One interrupt for the batch. */
	assert_int_equal(x->f.notified[VIRTIO_NET_TXQ], 1);
}

static void test_tx_bad_requests_dropped(void **state)
{
	struct ctx *x = *state;
	uint8_t got[100];
	uint64_t b = alloc_buf(x, 200);
	struct seg shorthdr = { b, 4, false };
	struct seg tso[2] = { { b, HDR, false }, { b + 16, 60, false } };
	struct seg onlyw = { b, 100, true };
	uint32_t id, len;

	activate(x, MRG_FEATURES); /* no HOST_TSO4 */
	memset(host(x, b, 200), 0, 200);
	host(x, b, 2)[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	add_chain(x, VIRTIO_NET_TXQ, &shorthdr, 1);
	add_chain(x, VIRTIO_NET_TXQ, tso, 2);
	add_chain(x, VIRTIO_NET_TXQ, &onlyw, 1);
	kick(x, VIRTIO_NET_TXQ);

	/* Nothing sent, every chain returned, device still usable. */
	assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	for (int i = 0; i < 3; i++)
		assert_true(next_used(x, VIRTIO_NET_TXQ, &id, &len));
	assert_false(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 0);
}

static void test_tx_malformed_chain_breaks(void **state)
{
	struct ctx *x = *state;
	struct seg s = { RAM_SIZE - 8, 64, false }; /* runs off the end of RAM */
	uint8_t got[100];

	activate(x, MRG_FEATURES);
	add_chain(x, VIRTIO_NET_TXQ, &s, 1);
	kick(x, VIRTIO_NET_TXQ);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	assert_int_equal(used_count(x, VIRTIO_NET_TXQ), 0);
	assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), -1);
}

static void test_tx_backpressure(void **state)
{
	struct ctx *x = *state;
	uint8_t got[HDR + 4096];
	unsigned sent = 0, queued = 0;
	int tiny = 4096;
	uint32_t id, len;

	/* The peer's datagram queue fills long before 200 frames: the
	 * device must wait for EPOLLOUT and lose nothing. */
	activate(x, MRG_FEATURES);
	setsockopt(x->peer, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
	for (int i = 0; i < 200; i++) {
		uint64_t b = alloc_buf(x, HDR + 4000);
		struct seg s = { b, HDR + 4000, false };

		memset(host(x, b, HDR + 4000), 0, HDR + 4000);
		add_chain(x, VIRTIO_NET_TXQ, &s, 1);
		queued++;
	}
	kick(x, VIRTIO_NET_TXQ);
	/* Drain the peer while running the loop: EPOLLOUT resumes tx. */
	for (int round = 0; round < 2000 && sent < queued; round++) {
		while (recv(x->peer, got, sizeof(got), MSG_DONTWAIT) > 0)
			sent++;
		run_loop(x, 10);
	}
	while (recv(x->peer, got, sizeof(got), MSG_DONTWAIT) > 0)
		sent++;
	assert_int_equal(sent, queued);
	for (unsigned i = 0; i < queued; i++)
		assert_true(next_used(x, VIRTIO_NET_TXQ, &id, &len));
	assert_false(virtio_is_broken(x->vd));
}

static void test_rx_mergeable_small(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[100];
	uint64_t b[4];
	uint32_t id, len;
	uint8_t *p;

	activate(x, MRG_FEATURES);
	for (int i = 0; i < 4; i++)
		b[i] = add_rx_buf(x, 2048);
	kick(x, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 9);
	hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 1000);

	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, HDR + 100);
	p = host(x, b[0], 2048);
	assert_int_equal(p[0], VIRTIO_NET_HDR_F_DATA_VALID); /* GUEST_CSUM: kept */
	assert_int_equal(p[10] | p[11] << 8, 1);             /* num_buffers */
	assert_memory_equal(p + HDR, frame, 100);
	assert_false(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_true(x->f.notified[VIRTIO_NET_RXQ] >= 1);
}

static void test_rx_mergeable_big(void **state)
{
	struct ctx *x = *state;
	size_t n = 60000, off = 0;
	uint8_t hdr[HDR] = { 0 }, *frame = malloc(n), *all = malloc(HDR + n);
	unsigned bufs = 0, first_nb = 0;
	uint32_t id, len;

	activate(x, MRG_FEATURES);
	for (int i = 0; i < 40; i++)
		add_rx_buf(x, 2048);
	kick(x, VIRTIO_NET_RXQ);
	pattern(frame, n, 1);
	send_frame(x, hdr, frame, n);
	run_loop(x, 1000);

	while (next_used(x, VIRTIO_NET_RXQ, &id, &len)) {
		uint8_t *p = host(x, desc_addr(x, VIRTIO_NET_RXQ, id), len);

		if (!bufs)
			first_nb = p[10] | p[11] << 8;
		assert_true(off + len <= HDR + n);
		memcpy(all + off, p, len);
		off += len;
		bufs++;
	}
	assert_int_equal(off, HDR + n);
	assert_int_equal(bufs, (HDR + n + 2047) / 2048);
	assert_int_equal(first_nb, bufs);
	assert_memory_equal(all + HDR, frame, n);
	free(frame);
	free(all);
}

static void test_rx_backpressure(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, f1[64], f2[80];
	uint32_t id, len;
	uint64_t b1, b2;

	activate(x, MRG_FEATURES);
	kick(x, VIRTIO_NET_RXQ); /* the transport's post-activation kick */
	pattern(f1, sizeof(f1), 1);
	pattern(f2, sizeof(f2), 2);
	send_frame(x, hdr, f1, sizeof(f1));
	/* No buffers: the device stops watching the backend ... */
	run_loop(x, 100);
	assert_int_equal(used_count(x, VIRTIO_NET_RXQ), 0);
	send_frame(x, hdr, f2, sizeof(f2));
	/* ... so the loop stays quiet (no busy loop) with data pending. */
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);
	/* It asked for a kick on the rx queue. */
	assert_int_equal(get16(x, Q_GPA(VIRTIO_NET_RXQ) + 0x2000) & VIRTQ_USED_F_NO_NOTIFY, 0);

	b1 = add_rx_buf(x, 2048);
	b2 = add_rx_buf(x, 2048);
	kick(x, VIRTIO_NET_RXQ);
	run_loop(x, 100);
	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(f1));
	assert_memory_equal(host(x, b1, 2048) + HDR, f1, sizeof(f1));
	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(f2));
	assert_memory_equal(host(x, b2, 2048) + HDR, f2, sizeof(f2));
	assert_false(virtio_is_broken(x->vd));
}

static void test_rx_mergeable_stall_mid_frame(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[3000], all[HDR + 3000];
	unsigned bufs = 0;
	size_t off = 0;
	uint32_t id, len;

	activate(x, MRG_FEATURES);
	add_rx_buf(x, 1024);
	add_rx_buf(x, 1024);
	kick(x, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 5);
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 100);
	/* Two buffers cannot hold it: nothing used, the frame is held. */
	assert_int_equal(used_count(x, VIRTIO_NET_RXQ), 0);
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);

	add_rx_buf(x, 1024);
	add_rx_buf(x, 1024);
	kick(x, VIRTIO_NET_RXQ);
	while (next_used(x, VIRTIO_NET_RXQ, &id, &len)) {
		uint8_t *p = host(x, desc_addr(x, VIRTIO_NET_RXQ, id), len);

		if (!bufs)
			assert_int_equal(p[10] | p[11] << 8, 3);
		memcpy(all + off, p, len);
		off += len;
		bufs++;
	}
	assert_int_equal(bufs, 3);
	assert_int_equal(off, sizeof(all));
	assert_memory_equal(all + HDR, frame, sizeof(frame));
}

static void test_rx_not_mergeable(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, small[100], big[3000];
	uint32_t id, len;
	uint64_t b;
	uint64_t b2;
	struct seg two[2];

	activate(x, 1ULL << VIRTIO_NET_F_MAC);
	b = add_rx_buf(x, 1600);
	kick(x, VIRTIO_NET_RXQ);
	pattern(small, sizeof(small), 7);
	pattern(big, sizeof(big), 8);
	hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID; /* no GUEST_CSUM: must be cleared */
	send_frame(x, hdr, big, sizeof(big)); /* does not fit: dropped */
	send_frame(x, hdr, small, sizeof(small));
	run_loop(x, 100);

	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(small));
	assert_int_equal(host(x, b, 1)[0], 0);
	assert_int_equal(get16(x, b + 10), 1);
	assert_memory_equal(host(x, b, 1600) + HDR, small, sizeof(small));
	assert_false(next_used(x, VIRTIO_NET_RXQ, &id, &len));

	/* A frame spread over a two-segment chain. */
	b2 = alloc_buf(x, 2000);
	two[0] = (struct seg){ b2, 10, true }; /* header split across segments */
	two[1] = (struct seg){ b2 + 16, 1990, true };
	add_chain(x, VIRTIO_NET_RXQ, two, 2);
	kick(x, VIRTIO_NET_RXQ);
	send_frame(x, hdr, big, 1500);
	run_loop(x, 100);
	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + 1500);
	assert_int_equal(get16(x, b2 + 16), 1); /* num_buffers in the 2nd segment */
	assert_memory_equal(host(x, b2 + 18, 1500), big, 1500);
	assert_false(virtio_is_broken(x->vd));
}

static void test_rx_offload_not_negotiated_dropped(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[100];
	uint32_t id, len;
	uint64_t b;

	activate(x, 1ULL << VIRTIO_NET_F_MRG_RXBUF); /* no GUEST_CSUM, no GUEST_TSO */
	b = add_rx_buf(x, 2048);
	kick(x, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 4);
	hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	send_frame(x, hdr, frame, sizeof(frame));
	hdr[0] = 0;
	hdr[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	send_frame(x, hdr, frame, sizeof(frame));
	hdr[1] = 0;
	frame[0] = 0xee;
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 100);
	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(frame));
	assert_int_equal(host(x, b, HDR + 1)[HDR], 0xee);
	assert_false(next_used(x, VIRTIO_NET_RXQ, &id, &len));
}

static void test_rx_malformed_buffer_breaks(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[100] = { 0 };
	struct seg ro = { alloc_buf(x, 2048), 2048, false }; /* rx buffer not writable */

	activate(x, MRG_FEATURES);
	add_chain(x, VIRTIO_NET_RXQ, &ro, 1);
	kick(x, VIRTIO_NET_RXQ);
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 100);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	assert_int_equal(used_count(x, VIRTIO_NET_RXQ), 0);
	/* Broken: the backend is no longer watched. */
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);
}

static void test_reset_and_reactivate(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[64] = { 1, 2, 3 };
	uint32_t id, len;
	uint64_t b;

	activate(x, MRG_FEATURES);
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->reset(x->vd);
	x->vd->activated = false;
	for (unsigned q = 0; q < 2; q++)
		virtq_reset(&x->vd->vqs[q]);
	pthread_mutex_unlock(&x->vd->lock);
	send_frame(x, hdr, frame, sizeof(frame));
	/* Reset: not reading. */
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);

	memset(x->dq, 0, sizeof(x->dq));
	memset(host(x, Q_GPA(0), 0x20000), 0, 0x20000);
	activate(x, MRG_FEATURES);
	b = add_rx_buf(x, 2048);
	kick(x, VIRTIO_NET_RXQ);
	run_loop(x, 100);
	assert_true(next_used(x, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(frame));
	assert_memory_equal(host(x, b, 2048) + HDR, frame, sizeof(frame));
}

static void test_save_load_pending_frame(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[3000], all[HDR + 3000];
	struct ser_writer w;
	struct ser_reader r;
	size_t off = 0;
	uint32_t id, len;

	activate(x, MRG_FEATURES);
	add_rx_buf(x, 1024);
	kick(x, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 11);
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 100);
	assert_int_equal(used_count(x, VIRTIO_NET_RXQ), 0);

	ser_writer_init(&w);
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->save(x->vd, &w);
	/* Forget everything, then restore (same queues, as the transport would:
	 * it saved the rx queue with the held chain popped). */
	x->vd->ops->reset(x->vd);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(x->vd->ops->load(x->vd, &r), 0);
	assert_true(ser_reader_done(&r));
	pthread_mutex_unlock(&x->vd->lock);
	ser_writer_free(&w);
	assert_memory_equal(x->vd->config, test_mac, 6);

	add_rx_buf(x, 1024);
	add_rx_buf(x, 1024);
	kick(x, VIRTIO_NET_RXQ);
	while (next_used(x, VIRTIO_NET_RXQ, &id, &len)) {
		memcpy(all + off, host(x, desc_addr(x, VIRTIO_NET_RXQ, id), len), len);
		off += len;
	}
	assert_int_equal(off, sizeof(all));
	assert_memory_equal(all + HDR, frame, sizeof(frame));

	/* Truncated or bogus state is refused. */
	{
		uint8_t bad[] = { 1, 0x52, 0x54, 0, 1, 2, 3, 0xff, 0xff, 0xff, 0x7f, 0, 0 };

		ser_reader_init(&r, bad, sizeof(bad));
		pthread_mutex_lock(&x->vd->lock);
		assert_int_equal(x->vd->ops->load(x->vd, &r), -1);
		pthread_mutex_unlock(&x->vd->lock);
	}
}

static void test_backend_hangup_link_down(void **state)
{
	struct ctx *x = *state;
	int sv[2];
	struct virtio_dev *vd;
	struct fake f;

	/* A stream socket whose peer closes reports EPOLLHUP. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vd = virtio_net_create_fd(&x->m, sv[0], test_mac, 1);
	assert_non_null(vd);
	vd->tops = &fake_tops;
	vd->transport = &f;
	pthread_mutex_lock(&vd->lock);
	vd->features = MRG_FEATURES | 1ULL << VIRTIO_F_VERSION_1;
	vd->activated = true;
	assert_int_equal(vd->ops->activate(vd), 0);
	pthread_mutex_unlock(&vd->lock);
	close(sv[1]);
	assert_true(loop_run_once(vd->loop, 100) >= 1);
	assert_int_equal(vd->config[6], 0); /* link down */
	assert_int_equal(f.config_changes, 1);
	assert_int_equal(loop_run_once(vd->loop, 50), 0); /* no spinning on HUP */
	vd->ops->destroy(vd);
}

static int dev_release(struct virtio_dev *vd)
{
	int ret;

	pthread_mutex_lock(&vd->lock);
	ret = vd->ops->release(vd);
	pthread_mutex_unlock(&vd->lock);
	return ret;
}

static int dev_reacquire(struct virtio_dev *vd)
{
	int ret;

	pthread_mutex_lock(&vd->lock);
	ret = vd->ops->reacquire(vd);
	pthread_mutex_unlock(&vd->lock);
	return ret;
}

/* Injected fd: release closes it; there is nothing to reopen. */
static void test_release_fd(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 };
	uint64_t h = alloc_buf(x, HDR + 64);
	struct seg s = { h, HDR + 64, false };

	assert_non_null(x->vd->ops->release);
	assert_non_null(x->vd->ops->reacquire);
	activate(x, MRG_FEATURES);
	add_rx_buf(x, 2048);
	assert_int_equal(dev_release(x->vd), 0);
	/* The fd is closed: gone from this process, and the peer is alone. */
	errno = 0;
	assert_int_equal(fcntl(x->devfd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(send(x->peer, hdr, sizeof(hdr), MSG_DONTWAIT | MSG_NOSIGNAL), -1);
	assert_int_equal(dev_release(x->vd), 0); /* idempotent */
	/* Kicks while released do nothing (and touch no fd). */
	host(x, h, HDR)[0] = 0;
	add_chain(x, VIRTIO_NET_TXQ, &s, 1);
	kick(x, VIRTIO_NET_TXQ);
	kick(x, VIRTIO_NET_RXQ);
	assert_int_equal(used_count(x, VIRTIO_NET_TXQ), 0);
	assert_int_equal(used_count(x, VIRTIO_NET_RXQ), 0);
	/* Not a tap: cannot reopen. The device stays released; destroy copes. */
	assert_int_equal(dev_reacquire(x->vd), -1);
	assert_int_equal(dev_reacquire(x->vd), -1);
	assert_int_equal(loop_run_once(x->vd->loop, 20), 0);
}

/* ---- real taps (root and /dev/net/tun, else skipped) ---- */

static bool can_tap(void)
{
	return geteuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0;
}

static void tap_name(char *name, size_t size, const char *tag)
{
	snprintf(name, size, "kvmbt%s%u", tag, (unsigned)getpid() % 100000);
}

static void sh(const char *fmt, const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), fmt, name);
	if (system(cmd) != 0)
		fprintf(stderr, "test: `%s` failed\n", cmd);
}

/* A packet socket on the tap's host side: what it sends the tap hands to
 * the device's fd, and what the device writes it receives. */
static int packet_socket(const char *name)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(0x88b5) };
	struct timeval tv = { .tv_sec = 2 };
	int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x88b5));

	assert_true(ps >= 0);
	sll.sll_ifindex = (int)if_nametoindex(name);
	assert_true(sll.sll_ifindex > 0);
	assert_int_equal(bind(ps, (struct sockaddr *)&sll, sizeof(sll)), 0);
	setsockopt(ps, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return ps;
}

static void eth_frame(uint8_t *f, size_t len, const uint8_t *dst, uint8_t marker)
{
	static const uint8_t src[6] = { 0x02, 0, 0, 0, 0, 0x42 };

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(marker + i);
}

/* Frames flow both ways on the reacquired tap fd. */
static void check_tap_traffic(struct ctx *t, const char *name)
{
	uint8_t f[64], got[128], hdr[HDR] = { 0 };
	uint64_t hg = alloc_buf(t, HDR), fg = alloc_buf(t, sizeof(f));
	struct seg s[2] = { { hg, HDR, false }, { fg, sizeof(f), false } };
	int ps = packet_socket(name);
	bool found = false;
	uint32_t id, len;
	ssize_t r;

	/* Host -> guest: receive is watched again (the guest has buffers). */
	eth_frame(f, sizeof(f), test_mac, 0x10);
	assert_int_equal(send(ps, f, sizeof(f), 0), (ssize_t)sizeof(f));
	for (int i = 0; i < 100 && !found; i++) {
		run_loop(t, 20);
		while (next_used(t, VIRTIO_NET_RXQ, &id, &len))
			if (len == HDR + sizeof(f) &&
			    !memcmp(host(t, desc_addr(t, VIRTIO_NET_RXQ, id) + HDR, sizeof(f)), f, sizeof(f)))
				found = true;
	}
	assert_true(found);
	/* Guest -> host. */
	eth_frame(f, sizeof(f), (const uint8_t[6]){ 0x02, 0, 0, 0, 0, 0x42 }, 0x20);
	memcpy(host(t, hg, HDR), hdr, HDR);
	memcpy(host(t, fg, sizeof(f)), f, sizeof(f));
	add_chain(t, VIRTIO_NET_TXQ, s, 2);
	kick(t, VIRTIO_NET_TXQ);
	found = false;
	for (int i = 0; i < 20 && !found; i++) {
		r = recv(ps, got, sizeof(got), 0);
		assert_true(r > 0);
		found = r == (ssize_t)sizeof(f) && !memcmp(got, f, sizeof(f));
	}
	assert_true(found);
	close(ps);
}

/* A tap device on the fixture's guest RAM, activated with offloads. */
static struct virtio_dev *tap_device(struct ctx *x, struct ctx *t, const char *name)
{
	struct net_config cfg = { .mac_set = true };

	memcpy(cfg.mac, test_mac, 6);
	snprintf(cfg.tap, sizeof(cfg.tap), "%s", name);
	memset(t, 0, sizeof(*t));
	t->ram = x->ram;
	t->m = x->m;
	t->next_buf = BUF_GPA;
	t->peer = -1;
	t->vd = virtio_net_create(&t->m, &cfg, 2);
	assert_non_null(t->vd);
	t->vd->tops = &fake_tops;
	t->vd->transport = &t->f;
	activate(t, MRG_FEATURES | 1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6);
	for (int i = 0; i < 16; i++)
		add_rx_buf(t, 2048);
	return t->vd;
}

/* The admin's persistent tap: released, another process attaches, gives it
 * back, and the device takes it again. */
static void test_release_tap_persistent(void **state)
{
	struct ctx *x = *state, t;
	char name[IFNAMSIZ];
	bool vnet_ok;
	int other;

	if (!can_tap())
		skip();
	tap_name(name, sizeof(name), "p");
	memcpy(x->tap, name, sizeof(name));
	sh("ip tuntap del dev %s mode tap 2>/dev/null", name);
	sh("ip tuntap add dev %s mode tap", name);
	if (!if_nametoindex(name))
		skip();
	sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null", name);
	sh("ip link set dev %s up", name);
	tap_device(x, &t, name);
	/* Held: nobody else can attach. */
	assert_int_equal(tap_open(name, NULL, &vnet_ok), -1);
	assert_int_equal(dev_release(t.vd), 0);
	assert_int_equal(dev_release(t.vd), 0);
	other = tap_open(name, NULL, &vnet_ok);
	assert_true(other >= 0);
	assert_int_equal(dev_reacquire(t.vd), -1); /* EBUSY: the "destination" has it */
	close(other);
	assert_int_equal(dev_reacquire(t.vd), 0);
	assert_int_equal(tap_open(name, NULL, &vnet_ok), -1);
	check_tap_traffic(&t, name);
	t.vd->ops->destroy(t.vd);
	assert_true(if_nametoindex(name) > 0); /* the admin's tap stays */
	sh("ip tuntap del dev %s mode tap", name);
}

/* A tap kvmbox created: made persistent for the hand-over, and back to
 * vanishing with the VM after reacquire. */
static void test_release_tap_own(void **state)
{
	struct ctx *x = *state, t;
	char name[IFNAMSIZ];
	bool vnet_ok, persistent;
	int other;

	if (!can_tap())
		skip();
	tap_name(name, sizeof(name), "o");
	memcpy(x->tap, name, sizeof(name));
	sh("ip tuntap del dev %s mode tap 2>/dev/null", name);
	tap_device(x, &t, name);
	assert_int_equal(dev_release(t.vd), 0);
	assert_true(if_nametoindex(name) > 0); /* survived the close */
	other = tap_open(name, NULL, &vnet_ok);
	assert_true(other >= 0);
	assert_int_equal(tap_get_persist(other, &persistent), 0);
	assert_true(persistent);
	close(other);
	assert_true(if_nametoindex(name) > 0);
	assert_int_equal(dev_reacquire(t.vd), 0);
	sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null", name);
	sh("ip link set dev %s up", name);
	check_tap_traffic(&t, name);
	t.vd->ops->destroy(t.vd);
	assert_int_equal(if_nametoindex(name), 0); /* gone with its last fd, as before */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_bad_requests_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_malformed_chain_breaks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_stall_mid_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_not_mergeable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_offload_not_negotiated_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_malformed_buffer_breaks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_and_reactivate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_pending_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_hangup_link_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_tap_persistent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_tap_own, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
