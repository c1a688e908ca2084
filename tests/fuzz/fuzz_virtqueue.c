/* fuzz_virtqueue - the split virtqueue (virtio/virtqueue.c) and each virtio device's request
 * handling (blk, net, console, rng, balloon, vsock's event queue), driven through the device ops as the transport
 * calls them, by a hostile driver that owns guest RAM.
 *
 * Input: a header, then operations.
 *   header: device (byte % 7: 0 the bare queue, 1 blk, 2 net, 3 console, 4 rng, 5 balloon,
 *           6 vsock without a kernel behind it: only its event queue is the device's), queue
 *           size (byte: 1 << (b & 15), capped at what the device offers; bit 7: VERSION_1 is
 *           not forced on), features (le64: ANDed
 *           with what the device offers plus VERSION_1, EVENT_IDX and INDIRECT_DESC)
 *   ops (one byte, % 10, then its operands):
 *     0 raw write: le32 offset into RAM (modulo its size), length byte, bytes
 *     1 descriptor: queue, index, addr (le32: bit 31 set means "as is", else DATA + low 20 bits),
 *       le32 len, flags byte, next byte
 *     2 avail: queue, head (le16): put on the avail ring and bump avail->idx
 *     3 kick: queue
 *     4 run the device's loop once without waiting (completions, net receive)
 *     5 host input: length byte and bytes (console receive; a frame from the net backend; vsock:
 *       a transport reset event)
 *     6 device reset, then activation again with the same features
 *     7 queue state saved and loaded back; the bare queue: virtq_load of fuzz bytes instead
 *     8 used_event / avail flags: queue, le16, byte
 *     9 config write (device config byte at an offset; balloon: a new target)
 * Queue q's rings are at VQD_RING_GPA(q) (tests/unit/vq_driver.h); data buffers above DATA. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/ser.h"
#include "fuzz_util.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "virtio/virtio.h"
#include "vq_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define RAM_SIZE (1u << 20)
#define DATA     0x80000u

enum { DEV_BARE, DEV_BLK, DEV_NET, DEV_CONSOLE, DEV_RNG, DEV_BALLOON, DEV_VSOCK, NDEV };

static struct guest_mem mem;
static struct virtq_chain chain;
static uint8_t scratch[1 << 16];

static void port_write(void *ctx, const uint8_t *buf, size_t n)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct mem_region r = { .gpa = 0, .size = RAM_SIZE };

	/* Real anonymous RAM: the balloon madvises it. */
	if (guest_mem_alloc(&mem, &r, 1) < 0)
		abort();
	return 0;
}

struct fx {
	int kind;
	struct virtio_dev *vd;
	struct virtq bare;
	struct vq_transport t;
	struct disk_config disk;
	int peer; /* the net backend's other end */
	uint16_t qsize;
	uint64_t features;
	uint16_t avail_idx[VIRTIO_MAX_QUEUES];
};

static unsigned nqueues(const struct fx *x)
{
	return x->vd ? x->vd->num_queues : 1;
}

static void layout(struct fx *x, struct virtq *vq, unsigned q)
{
	vq->size = x->qsize;
	vq->desc_gpa = VQD_RING_GPA(q);
	vq->avail_gpa = VQD_RING_GPA(q) + VQD_AVAIL_OFF;
	vq->used_gpa = VQD_RING_GPA(q) + VQD_USED_OFF;
	vq->event_idx = (x->features >> VIRTIO_F_EVENT_IDX) & 1;
	vq->indirect = (x->features >> VIRTIO_F_INDIRECT_DESC) & 1;
}

/* What the transport does on DRIVER_OK. */
static void activate(struct fx *x)
{
	if (!x->vd) {
		layout(x, &x->bare, 0);
		virtq_enable(&x->bare, &mem);
		return;
	}
	pthread_mutex_lock(&x->vd->lock);
	x->vd->features = x->features;
	for (unsigned q = 0; q < x->vd->num_queues; q++) {
		layout(x, &x->vd->vqs[q], q);
		FUZZ_CHECK(virtq_enable(&x->vd->vqs[q], &mem) == 0);
	}
	x->vd->activated = true;
	if (x->vd->ops->activate(x->vd) < 0)
		x->vd->broken = true;
	pthread_mutex_unlock(&x->vd->lock);
}

static void reset(struct fx *x)
{
	if (!x->vd) {
		virtq_reset(&x->bare);
		return;
	}
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->reset(x->vd);
	for (unsigned q = 0; q < x->vd->num_queues; q++)
		virtq_reset(&x->vd->vqs[q]);
	x->vd->activated = false;
	x->vd->broken = false;
	pthread_mutex_unlock(&x->vd->lock);
	memset(x->avail_idx, 0, sizeof(x->avail_idx));
}

/* The bare queue's device: take every chain, read what the driver wrote, fill what it gave. */
static void bare_notify(struct fx *x, struct fuzz_in *in)
{
	struct virtq *q = &x->bare;
	int r;

	for (unsigned n = 0; n < 2u * x->qsize + 2 && (r = virtq_pop(q, &chain)) == VIRTQ_OK; n++) {
		size_t got, put;

		FUZZ_CHECK(chain.n_out + chain.n_in <= VIRTQ_MAX_SEGS);
		got = virtq_chain_read(&chain, fuzz_u8(in), scratch, sizeof(scratch));
		FUZZ_CHECK(got <= chain.out_len);
		put = virtq_chain_write(&chain, fuzz_u8(in), scratch, sizeof(scratch));
		FUZZ_CHECK(put <= chain.in_len);
		if (fuzz_u8(in) & 1) {
			virtq_unpop(q);
			break;
		}
		virtq_push(q, chain.head, (uint32_t)put);
	}
	virtq_should_notify(q);
	virtq_set_notification(q, fuzz_u8(in) & 1);
	virtq_has_work(q);
}

static void kick(struct fx *x, unsigned q, struct fuzz_in *in)
{
	if (!x->vd) {
		if (x->bare.enabled)
			bare_notify(x, in);
		return;
	}
	q %= x->vd->num_queues;
	pthread_mutex_lock(&x->vd->lock);
	if (x->vd->activated && !x->vd->broken && x->vd->vqs[q].enabled)
		x->vd->ops->queue_notify(x->vd, q);
	pthread_mutex_unlock(&x->vd->lock);
}

static void save_load(struct fx *x, struct fuzz_in *in)
{
	struct ser_writer w;
	struct ser_reader r;

	if (!x->vd) {
		size_t got;
		const uint8_t *p = fuzz_take(in, fuzz_u8(in), &got);

		ser_reader_init(&r, p, got);
		virtq_load(&x->bare, &mem, &r);
		return;
	}
	pthread_mutex_lock(&x->vd->lock);
	/* As before a snapshot: in-flight requests finish first. */
	if (x->vd->ops->quiesce)
		x->vd->ops->quiesce(x->vd);
	for (unsigned q = 0; q < x->vd->num_queues; q++) {
		ser_writer_init(&w);
		virtq_save(&x->vd->vqs[q], &w);
		ser_reader_init(&r, w.buf, w.len);
		/* A queue's own state must load back. */
		FUZZ_CHECK(virtq_load(&x->vd->vqs[q], &mem, &r) == 0);
		ser_writer_free(&w);
	}
	if (x->vd->ops->save && x->vd->ops->load) {
		ser_writer_init(&w);
		x->vd->ops->save(x->vd, &w);
		ser_reader_init(&r, w.buf, w.len);
		FUZZ_CHECK(x->vd->ops->load(x->vd, &r) == 0);
		ser_writer_free(&w);
	}
	pthread_mutex_unlock(&x->vd->lock);
}

static bool create(struct fx *x)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
	struct char_port port = { .write = port_write };
	int sv[2];

	x->peer = -1;
	switch (x->kind) {
	case DEV_BARE:
		return true;
	case DEV_BLK:
		x->disk.path = (char *)fuzz_disk_image();
		snprintf(x->disk.serial, sizeof(x->disk.serial), "fuzz");
		x->vd = virtio_blk_create(&mem, &x->disk, 0);
		break;
	case DEV_NET:
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
			abort();
		x->vd = virtio_net_create_fd(&mem, sv[0], mac, 0);
		x->peer = sv[1];
		break;
	case DEV_CONSOLE:
		x->vd = virtio_console_create(&mem, port, 0);
		break;
	case DEV_RNG:
		x->vd = virtio_rng_create(&mem, 0);
		break;
	case DEV_BALLOON:
		x->vd = virtio_balloon_create(&mem, 0);
		break;
	case DEV_VSOCK:
		x->vd = virtio_vsock_create_nobackend(&mem, 3, 0);
		break;
	}
	FUZZ_CHECK(x->vd != NULL);
	vq_transport_attach(&x->t, x->vd);
	return true;
}

static void destroy(struct fx *x)
{
	if (x->vd) {
		pthread_mutex_lock(&x->vd->lock);
		x->vd->ops->reset(x->vd);
		pthread_mutex_unlock(&x->vd->lock);
		x->vd->ops->destroy(x->vd);
	}
	if (x->peer >= 0)
		close(x->peer);
}

static void host_input(struct fx *x, struct fuzz_in *in)
{
	uint8_t buf[256];
	size_t n = fuzz_bytes(in, buf, fuzz_u8(in));

	if (x->kind == DEV_CONSOLE) {
		virtio_console_receive(x->vd, buf, n); /* takes the lock */
	} else if (x->kind == DEV_NET) {
		if (send(x->peer, buf, n, MSG_DONTWAIT) < 0 && errno != EAGAIN)
			abort();
	} else if (x->kind == DEV_VSOCK) {
		pthread_mutex_lock(&x->vd->lock);
		virtio_vsock_transport_reset(x->vd);
		pthread_mutex_unlock(&x->vd->lock);
	}
}

static void config_write(struct fx *x, struct fuzz_in *in)
{
	uint8_t off = fuzz_u8(in), v = fuzz_u8(in);

	if (!x->vd)
		return;
	if (x->kind == DEV_BALLOON) {
		virtio_balloon_set_target(x->vd, (uint64_t)v << 16);
		return;
	}
	if (!x->vd->config_size)
		return;
	pthread_mutex_lock(&x->vd->lock);
	off %= x->vd->config_size;
	x->vd->config[off] = v;
	if (x->vd->ops->config_write)
		x->vd->ops->config_write(x->vd, off, 1);
	pthread_mutex_unlock(&x->vd->lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fx x = { 0 };
	struct fuzz_in in;
	uint8_t *ram = gpa_ptr(&mem, 0, RAM_SIZE);
	uint16_t qmax;
	uint64_t offered;
	uint8_t sel;

	memset(ram, 0, RAM_SIZE);
	fuzz_in_init(&in, data, size);
	x.kind = fuzz_u8(&in) % NDEV;
	sel = fuzz_u8(&in);
	x.qsize = (uint16_t)(1u << (sel & 15));
	create(&x);
	qmax = x.vd ? x.vd->queue_max : 256;
	if (x.qsize > qmax)
		x.qsize = qmax;
	offered = (x.vd ? x.vd->host_features : 0) | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX |
		  1ULL << VIRTIO_F_INDIRECT_DESC;
	x.features = fuzz_u64(&in) & offered;
	if (!(sel & 0x80)) /* a driver that refuses VERSION_1 only now and then */
		x.features |= 1ULL << VIRTIO_F_VERSION_1;
	activate(&x);

	while (!fuzz_done(&in)) {
		unsigned q;

		switch (fuzz_u8(&in) % 10) {
		case 0: {
			uint32_t off = fuzz_u32(&in) % RAM_SIZE;
			size_t n = fuzz_u8(&in);

			fuzz_bytes(&in, ram + off, off + n > RAM_SIZE ? RAM_SIZE - off : n);
			break;
		}
		case 1: {
			uint64_t addr;
			uint32_t len;
			uint16_t flags;
			unsigned i;

			q = fuzz_u8(&in) % nqueues(&x);
			i = fuzz_u8(&in) % x.qsize;
			addr = fuzz_u32(&in);
			addr = (addr & 0x80000000u) ? (addr & 0x7fffffffu) << 1 : DATA + (addr & 0x7ffff);
			len = fuzz_u32(&in);
			flags = fuzz_u8(&in);
			put_le64(ram + VQD_RING_GPA(q) + 16 * i, addr);
			put_le32(ram + VQD_RING_GPA(q) + 16 * i + 8, len);
			put_le16(ram + VQD_RING_GPA(q) + 16 * i + 12, flags);
			put_le16(ram + VQD_RING_GPA(q) + 16 * i + 14, fuzz_u8(&in));
			break;
		}
		case 2: {
			uint64_t avail;
			uint16_t head;

			q = fuzz_u8(&in) % nqueues(&x);
			head = fuzz_u16(&in);
			avail = VQD_RING_GPA(q) + VQD_AVAIL_OFF;
			put_le16(ram + avail + 4 + 2 * (x.avail_idx[q] % x.qsize), head);
			x.avail_idx[q]++;
			put_le16(ram + avail + 2, x.avail_idx[q]);
			break;
		}
		case 3:
			kick(&x, fuzz_u8(&in), &in);
			break;
		case 4:
			if (x.vd)
				loop_run_once(x.vd->loop, 0);
			break;
		case 5:
			host_input(&x, &in);
			break;
		case 6:
			reset(&x);
			activate(&x);
			break;
		case 7:
			save_load(&x, &in);
			break;
		case 8: {
			uint64_t avail;
			uint16_t v;

			q = fuzz_u8(&in) % nqueues(&x);
			v = fuzz_u16(&in);
			avail = VQD_RING_GPA(q) + VQD_AVAIL_OFF;
			put_le16(ram + avail + 4 + 2 * x.qsize, v); /* used_event */
			put_le16(ram + avail, fuzz_u8(&in));        /* flags */
			break;
		}
		case 9:
			config_write(&x, &in);
			break;
		}
	}
	destroy(&x);
	return 0;
}
