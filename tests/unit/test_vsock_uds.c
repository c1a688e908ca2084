/* Unit tests for virtio-vsock's unix-socket mode (virtio/vsock_uds.c): the device on a fake
 * guest ring (vq_driver), real unix sockets on the host side, the device's worker loop driven
 * by hand. Guest connections to PATH_<port> (REQUEST -> RESPONSE, RST when nothing listens),
 * host connections through PATH ("CONNECT <port>\n" -> REQUEST, RESPONSE -> "OK <port>\n"),
 * data both ways with the guest's credit respected and ours enforced, CREDIT_REQUEST answered,
 * SHUTDOWN both ways, the connection limit, hostile headers (dropped or RST, the device never
 * broken), a device reset dropping the connections, the handshake timeouts (no CONNECT line, a
 * guest that never answers) and the path errors. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "virtio/vsock.h"
#include "virtio/vsock_uds.h"
#include "vq_driver.h"

#define RAM_SIZE (32ULL << 20)
#define QSZ      256
#define BUF_GPA  0x100000ULL
#define CID      7
#define RXBUF    (VSOCK_HDR_LEN + 4096)

struct fx {
	struct vq_fixture x; /* first */
	char dir[64];
	char path[96];
	uint64_t gpa[3][QSZ]; /* each queue's buffers by chain head */
	uint32_t guest_fwd;   /* what the fake guest's headers say it consumed */
};

struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
	uint8_t data[8192];
};

static int setup(void **state)
{
	struct fx *f = vq_fixture_new(state, sizeof(struct fx), RAM_SIZE, false, BUF_GPA, RAM_SIZE);

	snprintf(f->dir, sizeof(f->dir), "/tmp/kvmbox-vsu-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	vq_fixture_attach(&f->x, virtio_vsock_create_uds(&f->x.ram.mem, CID, f->path, 0), QSZ);
	vqd_activate(&f->x.d, f->x.vd, 0);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	f->x.vd->ops->destroy(f->x.vd);
	f->x.vd = NULL;
	fake_ram_free(&f->x.ram);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- the fake guest ---- */

static void run(struct fx *f, int ms)
{
	loop_run_once(f->x.vd->loop, ms);
}

static void add_rx(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct vq_seg s = { vqd_alloc(&f->x.d, RXBUF), RXBUF, true };
		uint16_t head = vqd_add_chain(&f->x.d, VIRTIO_VSOCK_RXQ, &s, 1);

		f->gpa[VIRTIO_VSOCK_RXQ][head] = s.gpa;
	}
	vqd_kick(f->x.vd, VIRTIO_VSOCK_RXQ);
}

/* Send a packet on tx whose chain is hdr_len bytes of header plus p->len of payload (chain
 * bytes: out_len; 0 means exactly that). */
static void send_raw(struct fx *f, const struct pkt *p, uint32_t out_len)
{
	uint32_t len = out_len ? out_len : VSOCK_HDR_LEN + p->len;
	struct vq_seg s = { vqd_alloc(&f->x.d, len > 64 ? len : 64), len, false };
	uint8_t *b = vqd_host(&f->x.d, s.gpa, len > 64 ? len : 64);

	if (len >= VSOCK_HDR_LEN) {
		put_le64(b, p->src_cid);
		put_le64(b + 8, p->dst_cid);
		put_le32(b + 16, p->src_port);
		put_le32(b + 20, p->dst_port);
		put_le32(b + 24, p->len);
		put_le16(b + 28, p->type);
		put_le16(b + 30, p->op);
		put_le32(b + 32, p->flags);
		put_le32(b + 36, p->buf_alloc);
		put_le32(b + 40, p->fwd_cnt);
		if (len > VSOCK_HDR_LEN)
			memcpy(b + VSOCK_HDR_LEN, p->data,
			       len - VSOCK_HDR_LEN < p->len ? len - VSOCK_HDR_LEN : p->len);
	} else {
		memset(b, 0x5a, len);
	}
	vqd_add_chain(&f->x.d, VIRTIO_VSOCK_TXQ, &s, 1);
	vqd_kick(f->x.vd, VIRTIO_VSOCK_TXQ);
}

/* A packet from the guest (CID) to the host (2) port hport from gport. */
static void send_op(struct fx *f, uint32_t gport, uint32_t hport, uint16_t op, uint32_t flags,
		    const void *data, uint32_t len, uint32_t buf_alloc)
{
	struct pkt *p = calloc(1, sizeof(*p));

	p->src_cid = CID;
	p->dst_cid = VSOCK_HOST_CID;
	p->src_port = gport;
	p->dst_port = hport;
	p->type = VSOCK_TYPE_STREAM;
	p->op = op;
	p->flags = flags;
	p->len = len;
	p->buf_alloc = buf_alloc;
	p->fwd_cnt = f->guest_fwd;
	if (len)
		memcpy(p->data, data, len);
	send_raw(f, p, 0);
	free(p);
}

/* The next packet the device put in an rx buffer, waiting up to ms for it. */
static bool recv_pkt(struct fx *f, struct pkt *p, int ms)
{
	struct timespec t0, t;
	uint32_t id, len;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (vqd_next_used(&f->x.d, VIRTIO_VSOCK_RXQ, &id, &len)) {
			const uint8_t *b = vqd_host(&f->x.d, f->gpa[VIRTIO_VSOCK_RXQ][id], RXBUF);

			assert_true(len >= VSOCK_HDR_LEN && len <= RXBUF);
			p->src_cid = get_le64(b);
			p->dst_cid = get_le64(b + 8);
			p->src_port = get_le32(b + 16);
			p->dst_port = get_le32(b + 20);
			p->len = get_le32(b + 24);
			p->type = get_le16(b + 28);
			p->op = get_le16(b + 30);
			p->flags = get_le32(b + 32);
			p->buf_alloc = get_le32(b + 36);
			p->fwd_cnt = get_le32(b + 40);
			assert_int_equal(len, VSOCK_HDR_LEN + p->len);
			memcpy(p->data, b + VSOCK_HDR_LEN, p->len);
			assert_int_equal(p->src_cid, VSOCK_HOST_CID);
			assert_int_equal(p->dst_cid, CID);
			assert_int_equal(p->type, VSOCK_TYPE_STREAM);
			return true;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			return false;
		run(f, 10);
	}
}

static void expect_pkt(struct fx *f, struct pkt *p, uint16_t op)
{
	assert_true(recv_pkt(f, p, 2000));
	assert_int_equal(p->op, op);
}

static void expect_none(struct fx *f)
{
	struct pkt p;

	assert_false(recv_pkt(f, &p, 100));
}

/* ---- the host side ---- */

static int host_listen(struct fx *f, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->path, port);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 128), 0);
	return fd;
}

static int host_connect(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Read exactly n bytes from fd while the device's loop runs; how many came within 2 s. */
static size_t host_read(struct fx *f, int fd, void *buf, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < 400 && got < n; i++) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;

		run(f, 5);
		if (poll(&p, 1, 0) <= 0)
			continue;
		r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* Is fd at its end within 2 s (EOF, or ECONNRESET: closed with our bytes unread)? */
static bool host_eof(struct fx *f, int fd)
{
	char c;

	for (int i = 0; i < 400; i++) {
		struct pollfd p = { fd, POLLIN, 0 };

		run(f, 5);
		if (poll(&p, 1, 0) > 0)
			return read(fd, &c, 1) <= 0;
	}
	return false;
}

static int64_t ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Run the device's loop until fd is at its end (EOF or ECONNRESET), for at most ms: the ms it
 * took from t0, or -1 (still open, or data came instead). */
static int64_t host_eof_after(struct fx *f, int fd, const struct timespec *t0, int64_t ms)
{
	while (ms_since(t0) < ms) {
		struct pollfd p = { fd, POLLIN, 0 };
		char c;

		run(f, 5);
		if (poll(&p, 1, 0) > 0)
			return read(fd, &c, 1) <= 0 ? ms_since(t0) : -1;
	}
	return -1;
}

/* A guest connection from gport to the host's listener at port: the accepted socket. */
static int guest_conn(struct fx *f, int lfd, uint32_t gport, uint32_t port, uint32_t buf_alloc)
{
	struct pkt p;
	int c;

	send_op(f, gport, port, VSOCK_OP_REQUEST, 0, NULL, 0, buf_alloc);
	expect_pkt(f, &p, VSOCK_OP_RESPONSE);
	assert_int_equal(p.src_port, port);
	assert_int_equal(p.dst_port, gport);
	assert_int_equal(p.buf_alloc, VSOCK_UDS_BUF_ALLOC);
	assert_int_equal(p.fwd_cnt, 0);
	c = accept(lfd, NULL, NULL);
	assert_true(c >= 0);
	return c;
}

/* ---- tests ---- */

static void test_guest_connect_refused(void **state)
{
	struct fx *f = *state;
	struct pkt p;

	add_rx(f, 8);
	send_op(f, 1000, 5000, VSOCK_OP_REQUEST, 0, NULL, 0, 65536);
	expect_pkt(f, &p, VSOCK_OP_RST);
	assert_int_equal(p.src_port, 5000);
	assert_int_equal(p.dst_port, 1000);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	assert_int_equal(f->x.f.needs_reset, 0);
}

static void test_guest_connect_rw(void **state)
{
	struct fx *f = *state;
	char buf[64];
	struct pkt p;
	int lfd, c;

	add_rx(f, 16);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 1);
	/* guest -> host */
	send_op(f, 1000, 5000, VSOCK_OP_RW, 0, "hello", 5, 65536);
	assert_int_equal(host_read(f, c, buf, 5), 5);
	assert_memory_equal(buf, "hello", 5);
	/* host -> guest */
	assert_int_equal(write(c, "world!", 6), 6);
	expect_pkt(f, &p, VSOCK_OP_RW);
	assert_int_equal(p.len, 6);
	assert_memory_equal(p.data, "world!", 6);
	assert_int_equal(p.src_port, 5000);
	assert_int_equal(p.dst_port, 1000);
	assert_int_equal(p.fwd_cnt, 5); /* the socket took the guest's 5 bytes */
	/* An RST from the guest ends it: the host sees the end. */
	send_op(f, 1000, 5000, VSOCK_OP_RST, 0, NULL, 0, 65536);
	assert_true(host_eof(f, c));
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	close(c);
	close(lfd);
}

/* Never more than the guest's buf_alloc in flight; a CREDIT_UPDATE lets more through. */
static void test_credit_to_guest(void **state)
{
	struct fx *f = *state;
	char data[100];
	uint32_t got = 0;
	struct pkt p;
	int lfd, c;

	add_rx(f, 32);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 10);
	memset(data, 'x', sizeof(data));
	assert_int_equal(write(c, data, sizeof(data)), (ssize_t)sizeof(data));
	while (recv_pkt(f, &p, 200)) {
		assert_int_equal(p.op, VSOCK_OP_RW);
		got += p.len;
	}
	assert_int_equal(got, 10);
	/* The guest read them: 10 more. */
	f->guest_fwd = 10;
	send_op(f, 1000, 5000, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0, 10);
	got = 0;
	while (recv_pkt(f, &p, 200)) {
		assert_int_equal(p.op, VSOCK_OP_RW);
		got += p.len;
	}
	assert_int_equal(got, 10);
	/* A bigger buffer: the rest. */
	f->guest_fwd = 20;
	send_op(f, 1000, 5000, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0, 4096);
	got = 0;
	while (recv_pkt(f, &p, 200))
		got += p.len;
	assert_int_equal(got, 80);
	close(c);
	close(lfd);
}

static void test_credit_request(void **state)
{
	struct fx *f = *state;
	char buf[64];
	struct pkt p;
	int lfd, c;

	add_rx(f, 8);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	send_op(f, 1000, 5000, VSOCK_OP_RW, 0, "0123456789", 10, 65536);
	assert_int_equal(host_read(f, c, buf, 10), 10);
	send_op(f, 1000, 5000, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0, 65536);
	expect_pkt(f, &p, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(p.fwd_cnt, 10);
	assert_int_equal(p.buf_alloc, VSOCK_UDS_BUF_ALLOC);
	close(c);
	close(lfd);
}

/* The guest sends beyond the credit we gave while the host reads nothing: RST, not a buffer
 * that grows. */
static void test_credit_overrun(void **state)
{
	struct fx *f = *state;
	static char chunk[8192];
	bool rst = false;
	struct pkt p;
	int lfd, c;

	add_rx(f, 16);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	memset(chunk, 'y', sizeof(chunk));
	/* The socket's own buffer takes some; ours at most VSOCK_UDS_BUF_ALLOC more. */
	for (int i = 0; i < 400 && !rst; i++) {
		send_op(f, 1000, 5000, VSOCK_OP_RW, 0, chunk, sizeof(chunk), 65536);
		while (recv_pkt(f, &p, 0)) {
			if (p.op == VSOCK_OP_RST)
				rst = true;
		}
		if (i % 16 == 15)
			add_rx(f, 4);
	}
	assert_true(rst);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	assert_int_equal(f->x.f.needs_reset, 0);
	close(c);
	close(lfd);
}

static void test_host_connect(void **state)
{
	struct fx *f = *state;
	char buf[64];
	struct pkt p;
	uint32_t hport;
	int c, c2;

	add_rx(f, 16);
	c = host_connect(f);
	assert_int_equal(write(c, "CONNECT 1234\nabc", 16), 16);
	expect_pkt(f, &p, VSOCK_OP_REQUEST);
	assert_int_equal(p.dst_port, 1234);
	assert_true(p.src_port >= VSOCK_UDS_PORT_BASE);
	assert_int_equal(p.buf_alloc, VSOCK_UDS_BUF_ALLOC);
	hport = p.src_port;
	expect_none(f); /* nothing of "abc" before the guest accepted */
	send_op(f, 1234, hport, VSOCK_OP_RESPONSE, 0, NULL, 0, 65536);
	snprintf(buf, sizeof(buf), "OK %u\n", hport);
	{
		char got[64] = { 0 };

		assert_int_equal(host_read(f, c, got, strlen(buf)), strlen(buf));
		assert_string_equal(got, buf);
	}
	expect_pkt(f, &p, VSOCK_OP_RW);
	assert_int_equal(p.len, 3);
	assert_memory_equal(p.data, "abc", 3);
	/* The guest's data: the "OK" line takes none of its credit. */
	send_op(f, 1234, hport, VSOCK_OP_RW, 0, "12345", 5, 65536);
	assert_int_equal(host_read(f, c, buf, 5), 5);
	send_op(f, 1234, hport, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0, 65536);
	expect_pkt(f, &p, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(p.fwd_cnt, 5);

	/* A second connection: another local port; the guest refuses it, the host sees the end. */
	c2 = host_connect(f);
	assert_int_equal(write(c2, "CONNECT 99\n", 11), 11);
	expect_pkt(f, &p, VSOCK_OP_REQUEST);
	assert_int_equal(p.dst_port, 99);
	assert_true(p.src_port != hport);
	send_op(f, 99, p.src_port, VSOCK_OP_RST, 0, NULL, 0, 0);
	assert_true(host_eof(f, c2));
	close(c2);
	/* A line that is not CONNECT: closed, nothing for the guest. */
	c2 = host_connect(f);
	assert_int_equal(write(c2, "HELLO 5\n", 8), 8);
	assert_true(host_eof(f, c2));
	expect_none(f);
	close(c2);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 1);
	close(c);
}

/* Host clients whose CONNECT line never completes (nothing sent, half a line) are closed after
 * VSOCK_UDS_HANDSHAKE_MS, not before and not much after; the guest never hears of them; an
 * established connection is left alone. */
static void test_line_timeout(void **state)
{
	struct fx *f = *state;
	struct timespec t0;
	struct pkt p;
	char line[32], buf[32] = { 0 };
	uint32_t okport;
	int silent, half, ok, lfd, g;
	int64_t t;

	add_rx(f, 16);
	lfd = host_listen(f, 5000);
	g = guest_conn(f, lfd, 1000, 5000, 65536);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	silent = host_connect(f);
	half = host_connect(f);
	assert_int_equal(write(half, "CONNECT 12", 10), 10);
	ok = host_connect(f);
	assert_int_equal(write(ok, "CONNECT 77\n", 11), 11);
	expect_pkt(f, &p, VSOCK_OP_REQUEST);
	okport = p.src_port;
	send_op(f, 77, okport, VSOCK_OP_RESPONSE, 0, NULL, 0, 65536);
	snprintf(line, sizeof(line), "OK %u\n", okport);
	assert_int_equal(host_read(f, ok, buf, strlen(line)), strlen(line));
	assert_string_equal(buf, line);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 4);
	t = host_eof_after(f, silent, &t0, VSOCK_UDS_HANDSHAKE_MS + 1500);
	assert_true(t >= (int64_t)VSOCK_UDS_HANDSHAKE_MS - 50);
	assert_true(host_eof_after(f, half, &t0, VSOCK_UDS_HANDSHAKE_MS + 1500) >= 0);
	expect_none(f); /* no REQUEST, no RST: the guest never knew */
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 2);
	/* Both established connections still carry data. */
	assert_int_equal(write(g, "g", 1), 1);
	expect_pkt(f, &p, VSOCK_OP_RW);
	assert_int_equal(p.dst_port, 1000);
	send_op(f, 77, okport, VSOCK_OP_RW, 0, "x", 1, 65536);
	assert_int_equal(host_read(f, ok, buf, 1), 1);
	assert_int_equal(buf[0], 'x');
	close(silent);
	close(half);
	close(ok);
	close(g);
	close(lfd);
}

/* A host client whose guest never answers its REQUEST is closed after VSOCK_UDS_HANDSHAKE_MS and
 * the guest gets an RST for it; the guest's late RESPONSE then meets no connection (RST). */
static void test_guest_silent_timeout(void **state)
{
	struct fx *f = *state;
	struct timespec t0;
	struct pkt p;
	uint32_t hport;
	int c;
	int64_t t;

	add_rx(f, 16);
	c = host_connect(f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(write(c, "CONNECT 4321\n", 13), 13);
	expect_pkt(f, &p, VSOCK_OP_REQUEST);
	hport = p.src_port;
	assert_int_equal(p.dst_port, 4321);
	t = host_eof_after(f, c, &t0, VSOCK_UDS_HANDSHAKE_MS + 1500);
	assert_true(t >= (int64_t)VSOCK_UDS_HANDSHAKE_MS - 50);
	expect_pkt(f, &p, VSOCK_OP_RST);
	assert_int_equal(p.src_port, hport);
	assert_int_equal(p.dst_port, 4321);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	send_op(f, 4321, hport, VSOCK_OP_RESPONSE, 0, NULL, 0, 65536);
	expect_pkt(f, &p, VSOCK_OP_RST);
	assert_int_equal(p.dst_port, 4321);
	assert_int_equal(f->x.f.needs_reset, 0);
	close(c);
}

static void test_bad_packets(void **state)
{
	struct fx *f = *state;
	struct pkt *p = calloc(1, sizeof(*p)), r;

	add_rx(f, 16);
	p->src_cid = CID;
	p->dst_cid = VSOCK_HOST_CID;
	p->src_port = 1000;
	p->dst_port = 5000;
	p->type = VSOCK_TYPE_STREAM;
	p->op = VSOCK_OP_REQUEST;
	/* Dropped: short headers, a len beyond the chain, another source or destination CID. */
	send_raw(f, p, 20);
	send_raw(f, p, VSOCK_HDR_LEN - 1);
	p->len = 100;
	send_raw(f, p, VSOCK_HDR_LEN + 50);
	p->len = 0;
	p->src_cid = CID + 1;
	send_raw(f, p, 0);
	p->src_cid = CID;
	p->dst_cid = 3;
	send_raw(f, p, 0);
	p->dst_cid = VSOCK_HOST_CID;
	p->src_port = UINT32_MAX;
	send_raw(f, p, 0);
	p->src_port = 1000;
	expect_none(f);
	/* RST: a datagram-type socket, an unknown op, data for no connection. */
	p->type = 2;
	send_raw(f, p, 0);
	expect_pkt(f, &r, VSOCK_OP_RST);
	p->type = VSOCK_TYPE_STREAM;
	p->op = 99;
	send_raw(f, p, 0);
	expect_pkt(f, &r, VSOCK_OP_RST);
	p->op = VSOCK_OP_RW;
	p->len = 3;
	send_raw(f, p, 0);
	expect_pkt(f, &r, VSOCK_OP_RST);
	assert_int_equal(r.dst_port, 1000);
	/* An RST for no connection gets no answer. */
	p->op = VSOCK_OP_RST;
	p->len = 0;
	send_raw(f, p, 0);
	expect_none(f);
	assert_int_equal(f->x.f.needs_reset, 0);
	assert_false(f->x.vd->broken);
	free(p);
}

/* An rx buffer too short for a header breaks the device; nothing is written past it. */
static void test_short_rx_buffer(void **state)
{
	struct fx *f = *state;
	struct vq_seg s = { vqd_alloc(&f->x.d, 64), 20, true };

	vqd_add_chain(&f->x.d, VIRTIO_VSOCK_RXQ, &s, 1);
	vqd_kick(f->x.vd, VIRTIO_VSOCK_RXQ);
	send_op(f, 1000, 5000, VSOCK_OP_REQUEST, 0, NULL, 0, 65536); /* refused: an RST to send */
	assert_int_equal(f->x.f.needs_reset, 1);
	assert_true(f->x.vd->broken);
}

static void test_conn_limit(void **state)
{
	struct fx *f = *state;
	int lfd, c[VSOCK_UDS_MAX_CONNS], h;
	struct pkt p;

	add_rx(f, VSOCK_UDS_MAX_CONNS + 8);
	lfd = host_listen(f, 5000);
	for (int i = 0; i < VSOCK_UDS_MAX_CONNS; i++)
		c[i] = guest_conn(f, lfd, 2000 + (uint32_t)i, 5000, 65536);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), VSOCK_UDS_MAX_CONNS);
	/* One more from the guest: RST; from the host: closed. */
	send_op(f, 3000, 5000, VSOCK_OP_REQUEST, 0, NULL, 0, 65536);
	expect_pkt(f, &p, VSOCK_OP_RST);
	assert_int_equal(p.dst_port, 3000);
	h = host_connect(f);
	assert_int_equal(write(h, "CONNECT 1\n", 10), 10);
	assert_true(host_eof(f, h));
	close(h);
	expect_none(f);
	/* One ends: room for one more. */
	send_op(f, 2000, 5000, VSOCK_OP_RST, 0, NULL, 0, 0);
	run(f, 10);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), VSOCK_UDS_MAX_CONNS - 1);
	close(guest_conn(f, lfd, 3000, 5000, 65536));
	for (int i = 0; i < VSOCK_UDS_MAX_CONNS; i++)
		close(c[i]);
	close(lfd);
}

static void test_shutdown(void **state)
{
	struct fx *f = *state;
	char buf[16];
	struct pkt p;
	int lfd, c;

	add_rx(f, 16);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	/* The host stops sending: SHUTDOWN SEND after its data; the guest can still send. */
	assert_int_equal(write(c, "back", 4), 4);
	shutdown(c, SHUT_WR);
	expect_pkt(f, &p, VSOCK_OP_RW);
	assert_memory_equal(p.data, "back", 4);
	expect_pkt(f, &p, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p.flags, VSOCK_SHUTDOWN_SEND);
	send_op(f, 1000, 5000, VSOCK_OP_RW, 0, "more", 4, 65536);
	assert_int_equal(host_read(f, c, buf, 4), 4);
	assert_memory_equal(buf, "more", 4);
	/* Then the guest stops sending: the host reads its end; both ways are done (SHUTDOWN
	 * with both flags); the guest's RST ends it. */
	send_op(f, 1000, 5000, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, NULL, 0, 65536);
	assert_true(host_eof(f, c));
	expect_pkt(f, &p, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p.flags, VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 1);
	send_op(f, 1000, 5000, VSOCK_OP_RST, 0, NULL, 0, 0);
	run(f, 10);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	close(c);

	/* The host closes: SHUTDOWN with both at once. */
	c = guest_conn(f, lfd, 1002, 5000, 65536);
	close(c);
	expect_pkt(f, &p, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p.flags, VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV);
	send_op(f, 1002, 5000, VSOCK_OP_RST, 0, NULL, 0, 0);
	run(f, 10);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);

	/* The guest closes both ways: the host sees the end, the guest gets the RST that ends it. */
	c = guest_conn(f, lfd, 1001, 5000, 65536);
	send_op(f, 1001, 5000, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV, NULL, 0, 65536);
	expect_pkt(f, &p, VSOCK_OP_RST);
	assert_int_equal(p.dst_port, 1001);
	assert_true(host_eof(f, c));
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	close(c);
	close(lfd);
}

/* A device reset drops every connection; the listener stays. */
static void test_reset_drops(void **state)
{
	struct fx *f = *state;
	int lfd, c;

	add_rx(f, 8);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	pthread_mutex_lock(&f->x.vd->lock);
	f->x.vd->ops->reset(f->x.vd);
	f->x.vd->activated = false;
	pthread_mutex_unlock(&f->x.vd->lock);
	assert_true(host_eof(f, c));
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	close(c);
	close(lfd);
	/* Without a driver a host connection is closed at once. */
	c = host_connect(f);
	assert_true(host_eof(f, c));
	close(c);
}

/* A live migration's hand-over: the connections end and the socket file goes (the destination
 * listens there); a failed migration listens again. */
static void test_release_reacquire(void **state)
{
	struct fx *f = *state;
	struct pkt p;
	int lfd, c;

	add_rx(f, 8);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	assert_int_equal(vqd_release(f->x.vd), 0);
	assert_true(host_eof(f, c));
	close(c);
	assert_int_equal(virtio_vsock_uds_conns(f->x.vd), 0);
	assert_int_equal(access(f->path, F_OK), -1);
	/* Released: a guest packet is not served. */
	send_op(f, 1001, 5000, VSOCK_OP_REQUEST, 0, NULL, 0, 65536);
	expect_none(f);
	assert_int_equal(vqd_reacquire(f->x.vd), 0);
	assert_int_equal(access(f->path, F_OK), 0);
	c = host_connect(f);
	assert_int_equal(write(c, "CONNECT 7\n", 10), 10);
	vqd_kick(f->x.vd, VIRTIO_VSOCK_TXQ); /* the resume's kick */
	while (recv_pkt(f, &p, 200) && p.op != VSOCK_OP_REQUEST)
		;
	assert_int_equal(p.op, VSOCK_OP_REQUEST);
	assert_int_equal(p.dst_port, 7);
	close(c);
	close(lfd);
}

/* Out of fds at accept: the listener pauses (no busy loop) and listens again once a connection
 * ends. */
static void test_accept_out_of_fds(void **state)
{
	struct fx *f = *state;
	struct rlimit old, low;
	struct pkt p;
	int lfd, c, h, next;

	add_rx(f, 16);
	lfd = host_listen(f, 5000);
	c = guest_conn(f, lfd, 1000, 5000, 65536);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	next = dup(0);
	assert_true(next >= 0);
	close(next);
	low = old;
	low.rlim_cur = (rlim_t)next + 1; /* room for the test's socket, none for the accept */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	h = host_connect(f);
	assert_int_equal(h, next);
	{
		int ran = 1, rounds = 0;

		/* One EMFILE, then quiet: a listener left readable would run on every round. */
		while (ran > 0 && rounds++ < 50)
			ran = loop_run_once(f->x.vd->loop, 20);
		assert_int_equal(ran, 0);
		assert_true(rounds < 10);
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(write(h, "CONNECT 8\n", 10), 10);
	expect_none(f);
	/* A connection ends: the waiting one is taken. */
	send_op(f, 1000, 5000, VSOCK_OP_RST, 0, NULL, 0, 0);
	expect_pkt(f, &p, VSOCK_OP_REQUEST);
	assert_int_equal(p.dst_port, 8);
	close(h);
	close(c);
	close(lfd);
}

static void test_path_errors(void **state)
{
	struct fake_ram ram;
	struct stderr_capture cap;
	char dir[] = "/tmp/kvmbox-vsu-XXXXXX", path[256], cmd[300];
	struct vsock_config cfg;
	const char *msg;
	struct virtio_dev *vd;
	int fd;

	fake_ram_init_flat(&ram, 1 << 20);
	assert_non_null(mkdtemp(dir));
	/* Too long for sun_path with _<port>: refused when parsed, one line. */
	memset(path, 'a', 100);
	path[100] = 0;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cmd, sizeof(cmd), "cid=3,uds=/%s", path);
	stderr_capture_begin(&cap);
	assert_int_equal(virtio_vsock_type.parse(&cfg, cmd), -1);
	msg = stderr_capture_end(&cap);
	assert_non_null(strstr(msg, "path longer than"));
	assert_null(strchr(msg, '\n') == msg + strlen(msg) - 1 ? NULL : "more than one line");
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(virtio_vsock_type.parse(&cfg, "cid=3,uds=/tmp/x.sock"), 0);
	assert_string_equal(cfg.uds, "/tmp/x.sock");
	/* A file that is not a socket is never replaced. */
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	stderr_capture_begin(&cap);
	vd = virtio_vsock_create_uds(&ram.mem, 3, path, 0);
	msg = stderr_capture_end(&cap);
	assert_null(vd);
	assert_non_null(strstr(msg, "exists and is not a socket"));
	assert_int_equal(access(path, F_OK), 0);
	/* The socket is ours alone: mode 0600. */
	snprintf(path, sizeof(path), "%s/s", dir);
	vd = virtio_vsock_create_uds(&ram.mem, 3, path, 0);
	assert_non_null(vd);
	{
		struct stat st;

		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISSOCK(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	vd->ops->destroy(vd);
	assert_int_equal(access(path, F_OK), -1); /* removed at the end */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	fake_ram_free(&ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_guest_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_rw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_to_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_overrun, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_silent_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_rx_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_reacquire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_out_of_fds, setup, teardown),
		cmocka_unit_test(test_path_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
