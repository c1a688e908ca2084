/* Unit tests for virtio-net (virtio/net.c).
 *
 * The backend is one end of an AF_UNIX SOCK_DGRAM socketpair standing in for
 * a tap with IFF_VNET_HDR: each datagram is a 12-byte virtio_net_hdr_v1 plus
 * a frame. Queues are set up in a fake guest RAM and driven the way a driver
 * would, and a fake transport records interrupts and NEEDS_RESET (both from
 * vq_driver.h). */
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
#include <sys/syscall.h>
#include <unistd.h>

#include "backends/tap.h"
#include "core/loop.h"
#include "virtio/net.h"
#include "vq_driver.h"

#define RAM_SIZE (4ULL << 20)
#define QSZ      256
#define BUF_GPA  0x100000ULL /* data buffers from 1 MiB, above the rings */
#define HDR      VIRTIO_NET_HDR_LEN

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

struct ctx {
	struct fake_ram ram;
	struct vq_driver d;
	struct vq_transport f;
	struct virtio_dev *vd;
	int peer;           /* the "network" side of the backend */
	int devfd;          /* the device's side (owned by the device) */
	char tap[IFNAMSIZ]; /* a test tap teardown removes, if any */
};

/* One writable rx buffer of len bytes; returns its gpa. */
static uint64_t add_rx_buf(struct ctx *x, uint32_t len)
{
	return vqd_add_buf(&x->d, VIRTIO_NET_RXQ, len, true);
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
	struct ctx *x = calloc(1, sizeof(*x));
	int sv[2];
	int big = 1 << 20;

	fake_ram_init_flat(&x->ram, RAM_SIZE);
	vqd_init(&x->d, &x->ram.mem, BUF_GPA, RAM_SIZE);
	vqd_layout(&x->d, 2, QSZ);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	x->vd = virtio_net_create_fd(&x->ram.mem, sv[0], test_mac, 0);
	assert_non_null(x->vd);
	x->peer = sv[1];
	x->devfd = sv[0];
	vq_transport_attach(&x->f, x->vd);
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
	fake_ram_free(&x->ram);
	free(x);
	return 0;
}

#define MRG_FEATURES                                                                                    \
	(1ULL << VIRTIO_NET_F_MRG_RXBUF | 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM | \
	 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS)

/* ---- tests ---- */

/* The device's sendmsg (the socket backend) comes here: with race_hdr set, it first rewrites
 * those guest bytes, as a vCPU racing with the device could after the header was checked. */
static uint8_t *race_hdr;
static unsigned race_sends;

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	if (race_hdr) {
		race_hdr[0] = 0xff;                            /* every flag */
		race_hdr[1] = VIRTIO_NET_HDR_GSO_TCPV4 | 0x40; /* not negotiated, and unknown */
		race_sends++;
	}
	return syscall(SYS_sendmsg, fd, m, flags);
}

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
	uint64_t h = vqd_alloc(&x->d, HDR), p1 = vqd_alloc(&x->d, 400), p2 = vqd_alloc(&x->d, 600);
	struct vq_seg s[3] = { { h, HDR, false }, { p1, 400, false }, { p2, 600, false } };
	uint32_t id, len;
	uint16_t head;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	pattern(frame, sizeof(frame), 3);
	hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM; /* CSUM negotiated: allowed */
	memcpy(vqd_host(&x->d, h, HDR), hdr, HDR);
	memcpy(vqd_host(&x->d, p1, 400), frame, 400);
	memcpy(vqd_host(&x->d, p2, 600), frame + 400, 600);
	head = vqd_add_chain(&x->d, VIRTIO_NET_TXQ, s, 3);
	vqd_kick(x->vd, VIRTIO_NET_TXQ);

	assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), HDR + 1000);
	assert_memory_equal(got, hdr, HDR);
	assert_memory_equal(got + HDR, frame, 1000);
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_TXQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_true(x->f.notified[VIRTIO_NET_TXQ] >= 1);
	assert_false(virtio_is_broken(x->vd));
}

/* The header sent is the copy that was checked, not the guest's bytes read again after the
 * check (issue 9). */
static void test_tx_sends_checked_header(void **state)
{
	struct ctx *x = *state;
	uint8_t frame[300], got[400], hdr[HDR] = { 0 };
	uint64_t h = vqd_alloc(&x->d, HDR + 100), p = vqd_alloc(&x->d, 200);
	/* The header shares its buffer with the first 100 bytes of the frame. */
	struct vq_seg s[2] = { { h, HDR + 100, false }, { p, 200, false } };
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	pattern(frame, sizeof(frame), 9);
	hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	hdr[2] = 14; /* hdr_len */
	memcpy(vqd_host(&x->d, h, HDR), hdr, HDR);
	memcpy(vqd_host(&x->d, h + HDR, 100), frame, 100);
	memcpy(vqd_host(&x->d, p, 200), frame + 100, 200);
	vqd_add_chain(&x->d, VIRTIO_NET_TXQ, s, 2);
	race_hdr = vqd_host(&x->d, h, HDR);
	race_sends = 0;
	vqd_kick(x->vd, VIRTIO_NET_TXQ);
	race_hdr = NULL;

	assert_int_equal(race_sends, 1);
	assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), HDR + 300);
	assert_memory_equal(got, hdr, HDR);
	assert_memory_equal(got + HDR, frame, 300);
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_TXQ, &id, &len));
	assert_false(virtio_is_broken(x->vd));
}

static void test_tx_batch(void **state)
{
	struct ctx *x = *state;
	uint8_t got[200];
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	for (int i = 0; i < 10; i++) {
		uint64_t b = vqd_alloc(&x->d, HDR + 60);
		struct vq_seg s = { b, HDR + 60, false };

		memset(vqd_host(&x->d, b, HDR + 60), 0, HDR + 60);
		vqd_host(&x->d, b, HDR + 60)[HDR] = (uint8_t)i;
		vqd_add_chain(&x->d, VIRTIO_NET_TXQ, &s, 1);
	}
	vqd_kick(x->vd, VIRTIO_NET_TXQ);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), HDR + 60);
		assert_int_equal(got[HDR], i);
		assert_true(vqd_next_used(&x->d, VIRTIO_NET_TXQ, &id, &len));
	}
	/* One interrupt for the batch. */
	assert_int_equal(x->f.notified[VIRTIO_NET_TXQ], 1);
}

static void test_tx_bad_requests_dropped(void **state)
{
	struct ctx *x = *state;
	uint8_t got[100];
	uint64_t b = vqd_alloc(&x->d, 200);
	struct vq_seg shorthdr = { b, 4, false };
	struct vq_seg tso[2] = { { b, HDR, false }, { b + 16, 60, false } };
	struct vq_seg onlyw = { b, 100, true };
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, MRG_FEATURES); /* no HOST_TSO4 */
	memset(vqd_host(&x->d, b, 200), 0, 200);
	vqd_host(&x->d, b, 2)[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	vqd_add_chain(&x->d, VIRTIO_NET_TXQ, &shorthdr, 1);
	vqd_add_chain(&x->d, VIRTIO_NET_TXQ, tso, 2);
	vqd_add_chain(&x->d, VIRTIO_NET_TXQ, &onlyw, 1);
	vqd_kick(x->vd, VIRTIO_NET_TXQ);

	/* Nothing sent, every chain returned, device still usable. */
	assert_int_equal(recv(x->peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	for (int i = 0; i < 3; i++)
		assert_true(vqd_next_used(&x->d, VIRTIO_NET_TXQ, &id, &len));
	assert_false(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 0);
}

static void test_tx_malformed_chain_breaks(void **state)
{
	struct ctx *x = *state;
	struct vq_seg s = { RAM_SIZE - 8, 64, false }; /* runs off the end of RAM */
	uint8_t got[100];

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	vqd_add_chain(&x->d, VIRTIO_NET_TXQ, &s, 1);
	vqd_kick(x->vd, VIRTIO_NET_TXQ);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_TXQ), 0);
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
	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	setsockopt(x->peer, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
	for (int i = 0; i < 200; i++) {
		uint64_t b = vqd_alloc(&x->d, HDR + 4000);
		struct vq_seg s = { b, HDR + 4000, false };

		memset(vqd_host(&x->d, b, HDR + 4000), 0, HDR + 4000);
		vqd_add_chain(&x->d, VIRTIO_NET_TXQ, &s, 1);
		queued++;
	}
	vqd_kick(x->vd, VIRTIO_NET_TXQ);
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
		assert_true(vqd_next_used(&x->d, VIRTIO_NET_TXQ, &id, &len));
	assert_false(virtio_is_broken(x->vd));
}

static void test_rx_mergeable_small(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[100];
	uint64_t b[4];
	uint32_t id, len;
	uint8_t *p;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	for (int i = 0; i < 4; i++)
		b[i] = add_rx_buf(x, 2048);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 9);
	hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 1000);

	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, HDR + 100);
	p = vqd_host(&x->d, b[0], 2048);
	assert_int_equal(p[0], VIRTIO_NET_HDR_F_DATA_VALID); /* GUEST_CSUM: kept */
	assert_int_equal(p[10] | p[11] << 8, 1);             /* num_buffers */
	assert_memory_equal(p + HDR, frame, 100);
	assert_false(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_true(x->f.notified[VIRTIO_NET_RXQ] >= 1);
}

static void test_rx_mergeable_big(void **state)
{
	struct ctx *x = *state;
	size_t n = 60000, off = 0;
	uint8_t hdr[HDR] = { 0 }, *frame = malloc(n), *all = malloc(HDR + n);
	unsigned bufs = 0, first_nb = 0;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	for (int i = 0; i < 40; i++)
		add_rx_buf(x, 2048);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	pattern(frame, n, 1);
	send_frame(x, hdr, frame, n);
	run_loop(x, 1000);

	while (vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len)) {
		uint8_t *p = vqd_host(&x->d, vqd_desc_addr(&x->d, VIRTIO_NET_RXQ, id), len);

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

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	vqd_kick(x->vd, VIRTIO_NET_RXQ); /* the transport's post-activation kick */
	pattern(f1, sizeof(f1), 1);
	pattern(f2, sizeof(f2), 2);
	send_frame(x, hdr, f1, sizeof(f1));
	/* No buffers: the device stops watching the backend ... */
	assert_int_equal(loop_run_once(x->vd->loop, 100), 0);
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_RXQ), 0);
	send_frame(x, hdr, f2, sizeof(f2));
	/* ... so the loop stays quiet (no busy loop) with data pending. */
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);
	/* It asked for a kick on the rx queue. */
	assert_int_equal(vqd_used_flags(&x->d, VIRTIO_NET_RXQ) & VIRTQ_USED_F_NO_NOTIFY, 0);

	b1 = add_rx_buf(x, 2048);
	b2 = add_rx_buf(x, 2048);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	run_loop(x, 100);
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(f1));
	assert_memory_equal(vqd_host(&x->d, b1, 2048) + HDR, f1, sizeof(f1));
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(f2));
	assert_memory_equal(vqd_host(&x->d, b2, 2048) + HDR, f2, sizeof(f2));
	assert_false(virtio_is_broken(x->vd));
}

static void test_rx_mergeable_stall_mid_frame(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[3000], all[HDR + 3000];
	unsigned bufs = 0;
	size_t off = 0;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	add_rx_buf(x, 1024);
	add_rx_buf(x, 1024);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 5);
	send_frame(x, hdr, frame, sizeof(frame));
	assert_int_equal(loop_run_once(x->vd->loop, 1000), 1); /* it saw the frame */
	/* Two buffers cannot hold it: nothing used, the frame is held. */
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_RXQ), 0);
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);

	add_rx_buf(x, 1024);
	add_rx_buf(x, 1024);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	while (vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len)) {
		uint8_t *p = vqd_host(&x->d, vqd_desc_addr(&x->d, VIRTIO_NET_RXQ, id), len);

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
	struct vq_seg two[2];

	vqd_activate(&x->d, x->vd, 1ULL << VIRTIO_NET_F_MAC);
	b = add_rx_buf(x, 1600);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	pattern(small, sizeof(small), 7);
	pattern(big, sizeof(big), 8);
	hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID; /* no GUEST_CSUM: must be cleared */
	send_frame(x, hdr, big, sizeof(big)); /* does not fit: dropped */
	send_frame(x, hdr, small, sizeof(small));
	run_loop(x, 100);

	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(small));
	assert_int_equal(vqd_host(&x->d, b, 1)[0], 0);
	assert_int_equal(vqd_get16(&x->d, b + 10), 1);
	assert_memory_equal(vqd_host(&x->d, b, 1600) + HDR, small, sizeof(small));
	assert_false(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));

	/* A frame spread over a two-segment chain. */
	b2 = vqd_alloc(&x->d, 2000);
	two[0] = (struct vq_seg){ b2, 10, true }; /* header split across segments */
	two[1] = (struct vq_seg){ b2 + 16, 1990, true };
	vqd_add_chain(&x->d, VIRTIO_NET_RXQ, two, 2);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	send_frame(x, hdr, big, 1500);
	run_loop(x, 100);
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + 1500);
	assert_int_equal(vqd_get16(&x->d, b2 + 16), 1); /* num_buffers in the 2nd segment */
	assert_memory_equal(vqd_host(&x->d, b2 + 18, 1500), big, 1500);
	assert_false(virtio_is_broken(x->vd));
}

static void test_rx_offload_not_negotiated_dropped(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[100];
	uint32_t id, len;
	uint64_t b;

	vqd_activate(&x->d, x->vd, 1ULL << VIRTIO_NET_F_MRG_RXBUF); /* no GUEST_CSUM, no GUEST_TSO */
	b = add_rx_buf(x, 2048);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
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
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(frame));
	assert_int_equal(vqd_host(&x->d, b, HDR + 1)[HDR], 0xee);
	assert_false(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
}

static void test_rx_malformed_buffer_breaks(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[100] = { 0 };
	struct vq_seg ro = { vqd_alloc(&x->d, 2048), 2048, false }; /* rx buffer not writable */

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	vqd_add_chain(&x->d, VIRTIO_NET_RXQ, &ro, 1);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	send_frame(x, hdr, frame, sizeof(frame));
	run_loop(x, 100);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_RXQ), 0);
	/* Broken: the backend is no longer watched. */
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);
}

static void test_reset_and_reactivate(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[64] = { 1, 2, 3 };
	uint32_t id, len;
	uint64_t b;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->reset(x->vd);
	x->vd->activated = false;
	for (unsigned q = 0; q < 2; q++)
		virtq_reset(&x->vd->vqs[q]);
	pthread_mutex_unlock(&x->vd->lock);
	send_frame(x, hdr, frame, sizeof(frame));
	/* Reset: not reading. */
	assert_int_equal(loop_run_once(x->vd->loop, 50), 0);

	vqd_forget(&x->d);
	vqd_clear_rings(&x->d);
	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	b = add_rx_buf(x, 2048);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	run_loop(x, 100);
	assert_true(vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len));
	assert_int_equal(len, HDR + sizeof(frame));
	assert_memory_equal(vqd_host(&x->d, b, 2048) + HDR, frame, sizeof(frame));
}

static void test_save_load_pending_frame(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 }, frame[3000], all[HDR + 3000];
	struct ser_writer w;
	struct ser_reader r;
	size_t off = 0;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	add_rx_buf(x, 1024);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	pattern(frame, sizeof(frame), 11);
	send_frame(x, hdr, frame, sizeof(frame));
	assert_int_equal(loop_run_once(x->vd->loop, 1000), 1); /* it saw the frame */
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_RXQ), 0);

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
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	while (vqd_next_used(&x->d, VIRTIO_NET_RXQ, &id, &len)) {
		memcpy(all + off, vqd_host(&x->d, vqd_desc_addr(&x->d, VIRTIO_NET_RXQ, id), len), len);
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
	struct vq_transport f;

	/* A stream socket whose peer closes reports EPOLLHUP. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vd = virtio_net_create_fd(&x->ram.mem, sv[0], test_mac, 1);
	assert_non_null(vd);
	vq_transport_attach(&f, vd);
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

/* Injected fd: release closes it; there is nothing to reopen. */
static void test_release_fd(void **state)
{
	struct ctx *x = *state;
	uint8_t hdr[HDR] = { 0 };
	uint64_t h = vqd_alloc(&x->d, HDR + 64);
	struct vq_seg s = { h, HDR + 64, false };

	assert_non_null(x->vd->ops->release);
	assert_non_null(x->vd->ops->reacquire);
	vqd_activate(&x->d, x->vd, MRG_FEATURES);
	add_rx_buf(x, 2048);
	assert_int_equal(vqd_release(x->vd), 0);
	/* The fd is closed: gone from this process, and the peer is alone. */
	errno = 0;
	assert_int_equal(fcntl(x->devfd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(send(x->peer, hdr, sizeof(hdr), MSG_DONTWAIT | MSG_NOSIGNAL), -1);
	assert_int_equal(vqd_release(x->vd), 0); /* idempotent */
	/* Kicks while released do nothing (and touch no fd). */
	vqd_host(&x->d, h, HDR)[0] = 0;
	vqd_add_chain(&x->d, VIRTIO_NET_TXQ, &s, 1);
	vqd_kick(x->vd, VIRTIO_NET_TXQ);
	vqd_kick(x->vd, VIRTIO_NET_RXQ);
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_TXQ), 0);
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_NET_RXQ), 0);
	/* Not a tap: cannot reopen. The device stays released; destroy copes. */
	assert_int_equal(vqd_reacquire(x->vd), -1);
	assert_int_equal(vqd_reacquire(x->vd), -1);
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
	uint64_t hg = vqd_alloc(&t->d, HDR), fg = vqd_alloc(&t->d, sizeof(f));
	struct vq_seg s[2] = { { hg, HDR, false }, { fg, sizeof(f), false } };
	int ps = packet_socket(name);
	bool found = false;
	uint32_t id, len;
	ssize_t r;

	/* Host -> guest: receive is watched again (the guest has buffers). The frame is sent
	 * again every 100 ms until it arrives: a tap whose fd was just attached reports its
	 * carrier through the kernel's linkwatch, which may take a moment, and until then the
	 * interface drops what is sent to it. */
	eth_frame(f, sizeof(f), test_mac, 0x10);
	for (int i = 0; i < 150 && !found; i++) {
		if (i % 5 == 0)
			assert_int_equal(send(ps, f, sizeof(f), 0), (ssize_t)sizeof(f));
		run_loop(t, 20);
		while (vqd_next_used(&t->d, VIRTIO_NET_RXQ, &id, &len)) {
			const uint8_t *p;

			if (len != HDR + sizeof(f))
				continue;
			p = vqd_host(&t->d, vqd_desc_addr(&t->d, VIRTIO_NET_RXQ, id) + HDR, sizeof(f));
			if (!memcmp(p, f, sizeof(f)))
				found = true;
		}
	}
	assert_true(found);
	/* Guest -> host. */
	eth_frame(f, sizeof(f), (const uint8_t[6]){ 0x02, 0, 0, 0, 0, 0x42 }, 0x20);
	memcpy(vqd_host(&t->d, hg, HDR), hdr, HDR);
	memcpy(vqd_host(&t->d, fg, sizeof(f)), f, sizeof(f));
	vqd_add_chain(&t->d, VIRTIO_NET_TXQ, s, 2);
	vqd_kick(t->vd, VIRTIO_NET_TXQ);
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
	vqd_init(&t->d, &t->ram.mem, BUF_GPA, RAM_SIZE);
	vqd_layout(&t->d, 2, QSZ);
	t->peer = -1;
	t->vd = virtio_net_create(&t->ram.mem, &cfg, 2);
	assert_non_null(t->vd);
	vq_transport_attach(&t->f, t->vd);
	vqd_activate(&t->d, t->vd,
		     MRG_FEATURES | 1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6);
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
	assert_int_equal(vqd_release(t.vd), 0);
	assert_int_equal(vqd_release(t.vd), 0);
	other = tap_open(name, NULL, &vnet_ok);
	assert_true(other >= 0);
	assert_int_equal(vqd_reacquire(t.vd), -1); /* EBUSY: the "destination" has it */
	close(other);
	assert_int_equal(vqd_reacquire(t.vd), 0);
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
	assert_int_equal(vqd_release(t.vd), 0);
	assert_true(if_nametoindex(name) > 0); /* survived the close */
	other = tap_open(name, NULL, &vnet_ok);
	assert_true(other >= 0);
	assert_int_equal(tap_get_persist(other, &persistent), 0);
	assert_true(persistent);
	close(other);
	assert_true(if_nametoindex(name) > 0);
	assert_int_equal(vqd_reacquire(t.vd), 0);
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
		cmocka_unit_test_setup_teardown(test_tx_sends_checked_header, setup, teardown),
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
