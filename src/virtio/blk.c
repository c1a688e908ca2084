/* blk.c - virtio-blk: parse requests from the queue, hand them to the
 * blockfile backend, complete them from its eventfd on the worker's loop.
 *
 * Request layout (5.2.6): the header is the first 16 device-readable bytes
 * (it may span descriptors), the status is the last device-writable byte,
 * and the data is everything between. Each popped chain takes a request slot
 * until it completes; the slot holds the data iovecs the backend uses. */
#include "blk.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/epoll.h>

#include "../backends/blockfile.h"
#include "../core/log.h"
#include "../core/util.h"
#include "../core/vm.h"
#include "setup.h"

#define BLK_SAVE_VERSION 1

struct blk_dz_seg {
	uint64_t sector;
	uint32_t num;
	uint32_t flags;
};

struct blk_req {
	struct blockfile_req io; /* first: the backend hands this back */
	struct blk_req *next_free;
	uint16_t head;
	uint8_t *status; /* host address of the status byte */
	uint32_t ok_len; /* used length on success */
	uint32_t type;
	uint64_t sector;
	unsigned nseg, cur; /* discard / write-zeroes segments */
	struct blk_dz_seg seg[VIRTIO_BLK_MAX_DZ_SEG];
	struct iovec iov[VIRTIO_BLK_SEG_MAX];  /* the data; the backend advances them in place */
	struct iovec read[VIRTIO_BLK_SEG_MAX]; /* a read's data as popped: marked dirty at the end */
	unsigned nread;
};

struct virtio_blk {
	struct virtio_dev vd; /* first: ops get &vd */
	struct blockfile *bf;
	struct blockfile_info info;
	uint64_t capacity; /* sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	bool readonly;
	bool writethrough; /* FLUSH not negotiated */
	bool quiet;        /* reset/destroy: finish I/O, touch no ring */
	bool stalled;      /* out of slots with chains left */
	bool pushed;       /* used entries not yet notified */
	bool warned_io;
	struct blk_req *reqs;
	struct blk_req *free;
	struct virtq_chain chain; /* scratch for virtq_pop (too big for a stack) */
};

static struct virtio_blk *to_blk(struct virtio_dev *vd)
{
	return (struct virtio_blk *)vd;
}

/* Give the chain back to the driver (unless the ring is off limits) and free
 * the slot. */
static void blk_complete(struct virtio_blk *b, struct blk_req *r, uint8_t status, uint32_t len)
{
	if (!b->quiet && !b->vd.broken) {
		struct virtq *q = &b->vd.vqs[0];

		if (r->status) {
			struct iovec st = { .iov_base = r->status, .iov_len = 1 };

			*r->status = status;
			virtq_mark_written(q, &st, 1);
		}
		/* A read wrote its data segments, as recorded when the chain was popped. */
		virtq_mark_written(q, r->read, r->nread);
		virtq_push(q, r->head, r->status ? len : 0);
		b->pushed = true;
	}
	r->next_free = b->free;
	b->free = r;
}

static void blk_flush_notify(struct virtio_blk *b)
{
	if (b->pushed) {
		b->pushed = false;
		virtio_notify_used(&b->vd, 0);
	}
}

/* Is [sector, sector + nsec) inside the disk? Overflow-safe. */
static bool in_range(const struct virtio_blk *b, uint64_t sector, uint64_t nsec)
{
	return sector <= b->capacity && nsec <= b->capacity - sector;
}

/* dst = bytes [off, off + len) of iov[0..n). The number of pieces, or -1
 * when there are more than max. */
static int iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len, struct iovec *dst,
		     unsigned max)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t seg = iov[i].iov_len, take;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		take = seg - off < len ? seg - off : len;
		if (k == max)
			return -1;
		dst[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		dst[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return (int)k;
}

/* Submit the next non-empty discard / write-zeroes segment; false when none
 * is left. */
static bool blk_next_seg(struct virtio_blk *b, struct blk_req *r)
{
	while (r->cur < r->nseg) {
		const struct blk_dz_seg *s = &r->seg[r->cur++];

		if (s->num == 0)
			continue;
		r->io.op = r->type == VIRTIO_BLK_T_DISCARD ? BLOCKFILE_DISCARD : BLOCKFILE_WRITE_ZEROES;
		r->io.offset = s->sector * VIRTIO_BLK_SECTOR;
		r->io.len = (uint64_t)s->num * VIRTIO_BLK_SECTOR;
		r->io.unmap = s->flags & VIRTIO_BLK_WZ_F_UNMAP;
		r->sector = s->sector;
		blockfile_submit(b->bf, &r->io);
		return true;
	}
	return false;
}

static const char *type_name(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return "read";
	case VIRTIO_BLK_T_OUT:
		return "write";
	case VIRTIO_BLK_T_FLUSH:
		return "flush";
	case VIRTIO_BLK_T_DISCARD:
		return "discard";
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return "write-zeroes";
	}
	return "request";
}

/* Backend completion (from blockfile_reap/drain, vd->lock held). */
static void blk_io_done(struct blockfile_req *io, void *opaque)
{
	struct virtio_blk *b = opaque;
	struct blk_req *r = (struct blk_req *)io;

	if (io->result == 0) {
		if ((r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES) &&
		    blk_next_seg(b, r))
			return;
		blk_complete(b, r, VIRTIO_BLK_S_OK, r->ok_len);
		return;
	}
	/* Host-side failures (ENOSPC, EIO) matter to the user: say so once. */
	if (!b->warned_io) {
		b->warned_io = true;
		log_warn("disk %s: %s at sector %" PRIu64 " failed: %s; the guest sees an I/O error",
			 blockfile_path(b->bf), type_name(r->type), r->sector, strerror(-io->result));
	} else {
		log_debug("disk %s: %s at sector %" PRIu64 " failed: %s", blockfile_path(b->bf),
			  type_name(r->type), r->sector, strerror(-io->result));
	}
	blk_complete(b, r, VIRTIO_BLK_S_IOERR, 1);
}

/* Bad request from the driver: an error status, never a broken device. */
static void blk_reject(struct virtio_blk *b, struct blk_req *r, uint8_t status, const char *why)
{
	log_debug("%s: request rejected: %s", b->vd.name, why);
	blk_complete(b, r, status, 1);
}

/* Read or write: data is dlen bytes at doff of the readable (write) or
 * writable (read) segments. */
static void blk_rw(struct virtio_blk *b, struct blk_req *r, const struct virtq_chain *c, bool write,
		   uint64_t doff, uint64_t dlen)
{
	const struct iovec *src = write ? c->iov : c->iov + c->n_out;
	unsigned nsrc = write ? c->n_out : c->n_in;
	int n;

	if (write && b->readonly) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "write to a read-only disk");
		return;
	}
	if (dlen == 0 || dlen % VIRTIO_BLK_SECTOR) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "data not a whole number of sectors");
		return;
	}
	if (!in_range(b, r->sector, dlen / VIRTIO_BLK_SECTOR)) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "sector out of range");
		return;
	}
	n = iov_slice(src, nsrc, doff, dlen, r->iov, VIRTIO_BLK_SEG_MAX);
	if (n < 0) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "more than seg_max data segments");
		return;
	}
	for (int i = 0; i < n; i++) {
		if (r->iov[i].iov_len > VIRTIO_BLK_SIZE_MAX) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "data segment larger than size_max");
			return;
		}
	}
	if (!write) {
		memcpy(r->read, r->iov, (size_t)n * sizeof(r->iov[0]));
		r->nread = (unsigned)n;
	}
	r->io.op = write ? BLOCKFILE_WRITE : BLOCKFILE_READ;
	r->io.offset = r->sector * VIRTIO_BLK_SECTOR;
	r->io.iov = r->iov;
	r->io.niov = (unsigned)n;
	r->io.fua = write && b->writethrough;
	/* dlen <= seg_max * size_max, far below 4 GiB. */
	r->ok_len = write ? 1 : (uint32_t)dlen + 1;
	blockfile_submit(b->bf, &r->io);
}

/* Discard or write zeroes: dlen bytes of 16-byte segments after the header. */
static void blk_dz(struct virtio_blk *b, struct blk_req *r, const struct virtq_chain *c, uint64_t dlen)
{
	uint8_t raw[16];

	if (b->readonly) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "discard/write-zeroes on a read-only disk");
		return;
	}
	if (dlen == 0 || dlen % sizeof(raw) || dlen / sizeof(raw) > VIRTIO_BLK_MAX_DZ_SEG) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "bad discard/write-zeroes segment count");
		return;
	}
	r->nseg = (unsigned)(dlen / sizeof(raw));
	r->cur = 0;
	for (unsigned i = 0; i < r->nseg; i++) {
		struct blk_dz_seg *s = &r->seg[i];

		virtq_chain_read(c, VIRTIO_BLK_HDR_LEN + (uint64_t)i * sizeof(raw), raw, sizeof(raw));
		s->sector = get_le64(raw);
		s->num = get_le32(raw + 8);
		s->flags = get_le32(raw + 12);
		/* 5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP. */
		if ((s->flags & ~(uint32_t)VIRTIO_BLK_WZ_F_UNMAP) ||
		    (r->type == VIRTIO_BLK_T_DISCARD && (s->flags & VIRTIO_BLK_WZ_F_UNMAP))) {
			blk_reject(b, r, VIRTIO_BLK_S_UNSUPP, "bad discard/write-zeroes flags");
			return;
		}
		if (s->num > VIRTIO_BLK_MAX_DZ_SECTORS || !in_range(b, s->sector, s->num)) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "discard/write-zeroes out of range");
			return;
		}
	}
	r->ok_len = 1;
	if (!blk_next_seg(b, r))
		blk_complete(b, r, VIRTIO_BLK_S_OK, 1); /* all segments empty */
}

/* One popped chain: complete it now or start its I/O. */
static void blk_handle(struct virtio_blk *b, const struct virtq_chain *c)
{
	struct blk_req *r = b->free;
	uint8_t hdr[VIRTIO_BLK_HDR_LEN];
	uint64_t dout, din;

	b->free = r->next_free;
	r->head = c->head;
	r->status = NULL;
	r->ok_len = 1;
	r->type = UINT32_MAX;
	r->sector = 0;
	r->nseg = r->cur = 0;
	r->nread = 0;
	memset(&r->io, 0, sizeof(r->io));
	for (unsigned i = c->n_out + c->n_in; i > c->n_out; i--) {
		const struct iovec *v = &c->iov[i - 1];

		if (v->iov_len) {
			r->status = (uint8_t *)v->iov_base + v->iov_len - 1;
			break;
		}
	}
	if (!r->status) {
		blk_reject(b, r, 0, "no status byte");
		return;
	}
	if (c->out_len < VIRTIO_BLK_HDR_LEN) {
		blk_reject(b, r, VIRTIO_BLK_S_IOERR, "header shorter than 16 bytes");
		return;
	}
	virtq_chain_read(c, 0, hdr, sizeof(hdr));
	r->type = get_le32(hdr);
	r->sector = get_le64(hdr + 8);
	dout = c->out_len - VIRTIO_BLK_HDR_LEN; /* readable data after the header */
	din = c->in_len - 1;                    /* writable data before the status */

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		if (dout) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "read with device-readable data");
			return;
		}
		blk_rw(b, r, c, false, 0, din);
		return;
	case VIRTIO_BLK_T_OUT:
		if (din) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "write with device-writable data");
			return;
		}
		blk_rw(b, r, c, true, VIRTIO_BLK_HDR_LEN, dout);
		return;
	case VIRTIO_BLK_T_FLUSH:
		if (dout || din) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "flush with data");
			return;
		}
		if (b->readonly) {
			blk_complete(b, r, VIRTIO_BLK_S_OK, 1); /* nothing was written */
			return;
		}
		r->io.op = BLOCKFILE_FLUSH;
		blockfile_submit(b->bf, &r->io);
		return;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t n = din < VIRTIO_BLK_ID_BYTES ? din : VIRTIO_BLK_ID_BYTES;

		if (dout || din == 0) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "get-id without a writable buffer");
			return;
		}
		virtq_chain_write(c, 0, b->serial, n);
		virtq_chain_mark_written(&b->vd.vqs[0], c);
		blk_complete(b, r, VIRTIO_BLK_S_OK, (uint32_t)n + 1);
		return;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (din) {
			blk_reject(b, r, VIRTIO_BLK_S_IOERR, "discard/write-zeroes with writable data");
			return;
		}
		blk_dz(b, r, c, dout);
		return;
	default:
		blk_reject(b, r, VIRTIO_BLK_S_UNSUPP, "unknown request type");
		return;
	}
}

/* Pop and start everything the driver queued (vd->lock held). */
static void blk_process(struct virtio_blk *b)
{
	struct virtq *q = &b->vd.vqs[0];

	b->stalled = false;
	if (!q->enabled || b->vd.broken || b->quiet)
		return;
	if (blockfile_released(b->bf)) {
		/* Another process owns the image: leave the chains in the ring
		 * and pick them up in blk_reacquire (the VM is paused, so this
		 * only happens for a stray kick). */
		b->stalled = true;
		return;
	}
	do {
		virtq_set_notification(q, false);
		for (;;) {
			int ret;

			if (!b->free) {
				/* Kicks stay off: the next completion resumes us. */
				b->stalled = true;
				return;
			}
			ret = virtq_pop(q, &b->chain);
			if (ret == VIRTQ_ERR) {
				virtio_set_broken(&b->vd, "malformed descriptor chain on the request queue");
				return;
			}
			if (ret == VIRTQ_EMPTY)
				break;
			blk_handle(b, &b->chain);
		}
	} while (virtq_set_notification(q, true));
}

static void blk_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_blk *b = to_blk(vd);

	if (q != 0)
		return;
	blk_process(b);
	blockfile_kick(b->bf);
	blk_flush_notify(b);
}

/* The backend's eventfd fired (worker thread). */
static void blk_io_event(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->vd.lock);
	blockfile_reap(b->bf);
	if (b->stalled) {
		blk_process(b);
		blockfile_kick(b->bf);
	}
	blk_flush_notify(b);
	pthread_mutex_unlock(&b->vd.lock);
}

static int blk_activate(struct virtio_dev *vd)
{
	struct virtio_blk *b = to_blk(vd);

	/* 5.2.6.3: without FLUSH the driver expects writes to be durable. */
	b->writethrough = !virtio_has_feature(vd, VIRTIO_BLK_F_FLUSH);
	return 0;
}

/* Finish every request in flight without touching the rings. */
static void blk_drain_quiet(struct virtio_blk *b)
{
	b->quiet = true;
	blockfile_drain(b->bf);
	b->quiet = false;
	b->stalled = false;
	b->pushed = false;
}

static void blk_reset(struct virtio_dev *vd)
{
	blk_drain_quiet(to_blk(vd));
}

int virtio_blk_quiesce(struct virtio_dev *vd)
{
	struct virtio_blk *b = to_blk(vd);
	int ret = blockfile_drain(b->bf);

	blk_flush_notify(b);
	return ret;
}

void virtio_blk_get_info(const struct virtio_dev *vd, struct blockfile_info *info)
{
	*info = ((const struct virtio_blk *)vd)->info;
}

bool virtio_blk_writethrough(const struct virtio_dev *vd)
{
	return ((const struct virtio_blk *)vd)->writethrough;
}

unsigned virtio_blk_in_flight(const struct virtio_dev *vd)
{
	return blockfile_in_flight(((const struct virtio_blk *)vd)->bf);
}

/* Live migration: hand the image to the destination process. The guest's
 * writes are completed and on disk before the lock goes. */
static int blk_release(struct virtio_dev *vd)
{
	struct virtio_blk *b = to_blk(vd);

	if (virtio_blk_quiesce(vd) < 0)
		return -1;
	return blockfile_release(b->bf);
}

/* The migration failed: take the image back (fails while the destination
 * still holds it) and serve whatever the driver queued meanwhile. */
static int blk_reacquire(struct virtio_dev *vd)
{
	struct virtio_blk *b = to_blk(vd);

	if (blockfile_reacquire(b->bf) < 0)
		return -1;
	if (b->stalled) {
		blk_process(b);
		blockfile_kick(b->bf);
		blk_flush_notify(b);
	}
	return 0;
}

static struct blockfile *blk_disk(struct virtio_dev *vd)
{
	return to_blk(vd)->bf;
}

static void blk_save(struct virtio_dev *vd, struct ser_writer *w)
{
	struct virtio_blk *b = to_blk(vd);
	const char *path = blockfile_path(b->bf);
	size_t len = strlen(path);

	if (blockfile_in_flight(b->bf)) {
		/* The queues were saved already: completing now would not be in
		 * the snapshot. The snapshot code must quiesce first. */
		log_warn("%s: saved with %u requests in flight; call virtio_blk_quiesce before saving",
			 vd->name, blockfile_in_flight(b->bf));
		virtio_blk_quiesce(vd);
	}
	if (len > UINT16_MAX)
		len = UINT16_MAX;
	ser_put_u8(w, BLK_SAVE_VERSION);
	ser_put_u8(w, b->readonly);
	ser_put_u64(w, b->info.size);
	/* A migration that copies the disk (disks=copy) hands no image over: the destination's own
	 * is the copy, a file of its own of the same size. No identity then (0, 0). */
	ser_put_u64(w, blockfile_dirty_tracking(b->bf) ? 0 : b->info.dev);
	ser_put_u64(w, blockfile_dirty_tracking(b->bf) ? 0 : b->info.ino);
	ser_put_u16(w, (uint16_t)len);
	ser_put_bytes(w, path, len);
}

static int blk_load(struct virtio_dev *vd, struct ser_reader *r)
{
	struct virtio_blk *b = to_blk(vd);
	char *path;
	uint8_t version, ro;
	uint64_t size, dev, ino;
	uint16_t len;

	version = ser_get_u8(r);
	ro = ser_get_u8(r);
	size = ser_get_u64(r);
	dev = ser_get_u64(r);
	ino = ser_get_u64(r);
	len = ser_get_u16(r);
	path = calloc(1, (size_t)len + 1);
	if (!path)
		return -1;
	ser_get_bytes(r, path, len);
	if (r->err || version != BLK_SAVE_VERSION) {
		free(path);
		return -1;
	}
	if (size != b->info.size || ((dev || ino) && (dev != b->info.dev || ino != b->info.ino)) ||
	    ro != b->readonly) {
		log_error("disk %s: not the image the snapshot was taken with (%s, %" PRIu64
			  " bytes%s); restore with that disk",
			  blockfile_path(b->bf), path, size, ro ? ", read-only" : "");
		free(path);
		return -1;
	}
	free(path);
	/* The transport loaded the negotiated features first: a restored or migrated driver that
	 * did not negotiate FLUSH keeps its writes durable, as blk_activate set them. */
	b->writethrough = vd->activated && !virtio_has_feature(vd, VIRTIO_BLK_F_FLUSH);
	return 0;
}

static void blk_destroy(struct virtio_dev *vd)
{
	struct virtio_blk *b = to_blk(vd);

	b->quiet = true;
	/* Our fd leaves the loop before the loop goes (virtio.h contract);
	 * tolerate a loop that is already gone. */
	if (vd->loop) {
		loop_del(vd->loop, blockfile_event_fd(b->bf));
		virtio_dev_fini(vd);
	}
	blockfile_close(b->bf);
	free(b->reqs);
	free(b);
}

static const struct virtio_dev_ops blk_ops = {
	.type = "virtio-blk",
	.sandbox = SB_BLK,
	.device_id = VIRTIO_ID_BLOCK,
	.activate = blk_activate,
	.reset = blk_reset,
	.quiesce = virtio_blk_quiesce,
	.release = blk_release,
	.reacquire = blk_reacquire,
	.disk = blk_disk,
	.queue_notify = blk_queue_notify,
	.save = blk_save,
	.load = blk_load,
	.destroy = blk_destroy,
};

static void blk_config(struct virtio_blk *b)
{
	struct virtio_dev *vd = &b->vd;
	uint8_t *c = vd->config;

	vd->config_size = VIRTIO_BLK_CFG_SIZE;
	vd->host_features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
	put_le64(c + VIRTIO_BLK_CFG_CAPACITY, b->capacity);
	put_le32(c + VIRTIO_BLK_CFG_SIZE_MAX, VIRTIO_BLK_SIZE_MAX);
	put_le32(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX);
	put_le32(c + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR);
	if (b->readonly) {
		vd->host_features |= 1ULL << VIRTIO_BLK_F_RO;
		return;
	}
	vd->host_features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	put_le32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DZ_SECTORS);
	put_le32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DZ_SEG);
	put_le32(c + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, VIRTIO_BLK_DISCARD_ALIGN);
	put_le32(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_DZ_SECTORS);
	put_le32(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DZ_SEG);
	c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
}

struct virtio_dev *virtio_blk_create(const struct guest_mem *mem, const struct disk_config *cfg,
				     unsigned index)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	char name[32];

	if (!b) {
		log_error("disk %s: out of memory", cfg->path);
		return NULL;
	}
	b->readonly = cfg->readonly;
	b->bf = blockfile_open(cfg->path, cfg->readonly, VIRTIO_BLK_QUEUE_SIZE, blk_io_done, b);
	if (!b->bf) {
		free(b);
		return NULL;
	}
	blockfile_get_info(b->bf, &b->info);
	b->capacity = b->info.size / VIRTIO_BLK_SECTOR;
	if (b->info.size % VIRTIO_BLK_SECTOR)
		log_warn("disk %s: size %" PRIu64 " is not a multiple of 512; the guest sees %" PRIu64
			 " sectors and not the last %" PRIu64 " bytes",
			 cfg->path, b->info.size, b->capacity, b->info.size % VIRTIO_BLK_SECTOR);
	/* The serial is zero padded, not NUL terminated, when it is 20 bytes. */
	memcpy(b->serial, cfg->serial, strnlen(cfg->serial, sizeof(b->serial)));
	b->reqs = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*b->reqs));
	if (!b->reqs) {
		log_error("disk %s: out of memory", cfg->path);
		goto fail_bf;
	}
	for (unsigned i = 0; i < VIRTIO_BLK_QUEUE_SIZE; i++) {
		b->reqs[i].next_free = b->free;
		b->free = &b->reqs[i];
	}
	snprintf(name, sizeof(name), "virtio-blk%u", index);
	if (virtio_dev_init(&b->vd, &blk_ops, name, mem, 1, VIRTIO_BLK_QUEUE_SIZE) < 0)
		goto fail_reqs;
	if (loop_add(b->vd.loop, blockfile_event_fd(b->bf), EPOLLIN, blk_io_event, b) < 0) {
		log_error("disk %s: epoll: %s; raise the open file limit", cfg->path, strerror(errno));
		virtio_dev_fini(&b->vd);
		goto fail_reqs;
	}
	blk_config(b);
	return &b->vd;
fail_reqs:
	free(b->reqs);
fail_bf:
	blockfile_close(b->bf);
	free(b);
	return NULL;
}

/* ---- the device type -------------------------------------------------------------------- */

static int disk_parse(void *cfgp, const char *arg)
{
	struct disk_config *d = cfgp;
	char *opts = strdup(arg), *p, *value;
	char *const keys[] = { "ro", "readonly", "serial", NULL };
	const char *comma = strchr(arg, ',');
	int ret = -1;

	if (!opts) {
		log_error("--disk %s: out of memory", arg);
		return -1;
	}
	if (!comma)
		comma = arg + strlen(arg);
	if (comma == arg) {
		log_error("--disk: no image path; give --disk PATH[,ro][,serial=STR]");
		goto out;
	}
	d->path = strndup(arg, (size_t)(comma - arg));
	if (!d->path) {
		log_error("--disk %s: out of memory", arg);
		goto out;
	}
	p = opts + (comma - arg) + (*comma ? 1 : 0);
	while (*p) {
		switch (getsubopt(&p, keys, &value)) {
		case 0:
		case 1:
			if (value)
				goto unknown;
			d->readonly = true;
			break;
		case 2:
			if (!value || strlen(value) >= sizeof(d->serial)) {
				log_error(
					"--disk %s: serial '%s' is empty or longer than %zu characters; give a "
					"shorter one",
					d->path, value ? value : "", sizeof(d->serial) - 1);
				goto out;
			}
			snprintf(d->serial, sizeof(d->serial), "%s", value);
			break;
		default:
unknown:
			log_error("--disk %s: unknown option '%s'; use ro or serial=STR", d->path,
				  value ? value : p);
			goto out;
		}
	}
	ret = 0;
out:
	free(opts);
	return ret;
}

static void disk_free(void *cfgp)
{
	struct disk_config *d = cfgp;

	free(d->path);
	d->path = NULL;
}

/* Before /dev/kvm: the path must name an image file or a block device. stat does not open it,
 * so nothing acts on the open of a device given by mistake. */
static int disk_check(const void *cfgp)
{
	const struct disk_config *d = cfgp;
	struct stat st;

	if (stat(d->path, &st) < 0) {
		log_error("--disk %s: %s; give the path of a disk image or block device", d->path,
			  strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_error("--disk %s: not a regular file or block device; give a disk image", d->path);
		return -1;
	}
	return 0;
}

static void disk_save(const void *cfgp, struct ser_writer *w)
{
	const struct disk_config *d = cfgp;

	ser_put_str(w, d->path);
	ser_put_u8(w, d->readonly);
	ser_put_str(w, d->serial);
}

static int disk_load(void *cfgp, struct ser_reader *r)
{
	struct disk_config *d = cfgp;
	char *serial;
	uint8_t ro;

	d->path = ser_get_str(r, 4096);
	ro = ser_get_u8(r);
	serial = ser_get_str(r, sizeof(d->serial) - 1);
	if (serial)
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
	free(serial);
	if (r->err || !d->path || !d->path[0] || ro > 1)
		return -1;
	d->readonly = ro;
	return 0;
}

/* What the guest sees of the configuration: read-only and the serial; the path is the host's. */
static int disk_match(const void *savedp, const void *localp, unsigned index, const char *who, char *msg,
		      size_t len)
{
	const struct disk_config *s = savedp, *l = localp;

	if (s->readonly != l->readonly) {
		snprintf(msg, len, "%s has disk %u (--disk) %s, this command line %s; %s ,ro on that --disk",
			 who, index, s->readonly ? "read-only" : "read-write",
			 l->readonly ? "read-only" : "read-write", s->readonly ? "add" : "remove");
		return -1;
	}
	if (strcmp(s->serial, l->serial)) {
		snprintf(msg, len,
			 "%s has disk %u (--disk) with serial '%s', this command line '%s'; give %s%s", who,
			 index, s->serial, l->serial, s->serial[0] ? ",serial=" : "no serial=", s->serial);
		return -1;
	}
	return 0;
}

static const char *disk_path(const void *cfg)
{
	return ((const struct disk_config *)cfg)->path;
}

static void *disk_create(struct vm *vm, const void *cfg, unsigned index)
{
	return virtio_plug(vm, virtio_blk_create(&vm->mem, cfg, index));
}

const struct device_type virtio_blk_type = {
	.name = "virtio-blk",
	.option = "disk",
	.short_opt = 'd',
	.arg = "PATH[,ro][,serial=STR]",
	.help = "virtio-blk disk on a raw image or block device (repeatable: vda, vdb, ...)",
	.max = 16,
	.config_size = sizeof(struct disk_config),
	.parse = disk_parse,
	.check = disk_check,
	.save = disk_save,
	.load = disk_load,
	.match = disk_match,
	.disk_path = disk_path,
	.free = disk_free,
	.create = disk_create,
};
