/* Unit tests for virtio-blk (virtio/blk.c) and its file backend
 * (backends/blockfile.c). The test plays driver and transport (vq_driver.h):
 * it lays out a split ring in fake guest RAM, writes requests into it, kicks
 * the device and runs the device's loop until the completions arrive. Every
 * test runs twice: with io_uring, and with the synchronous fallback
 * (KVMBOX_BLK_SYNC). Each device asserts which path it got, so the io_uring
 * group cannot quietly test the fallback; on a kernel without a usable
 * io_uring that group is skipped, and says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/loop.h"
#include "core/memory.h"
#include "core/ser.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "vq_driver.h"

#define RAM_SIZE    (8u << 20)
#define QSZ         VIRTIO_BLK_QUEUE_SIZE
#define DESC_GPA    0x0000u
#define AVAIL_GPA   0x1000u
#define USED_GPA    0x2000u
#define HDR_GPA     0x4000u  /* request headers, 32 bytes apart */
#define STATUS_GPA  0x6000u  /* status bytes, one per request slot */
#define DATA_GPA    0x10000u /* data buffers */
#define IMG_SIZE    (4u << 20)
#define IMG_SECTORS (IMG_SIZE / 512)

struct ctx {
	struct fake_ram ram;
	struct vq_driver d; /* queue 0 only */
	struct vq_transport f;
	char path[256];
	struct disk_config cfg;
	struct virtio_dev *vd;
};

/* The group being run wants io_uring (true) or the synchronous path. */
static bool want_async;

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + off / 512 + 1);
}

/* ---- image and device -------------------------------------------------- */

/* Images go to $TMPDIR (default /tmp): pointing it at a tmpfs exercises the
 * backend's fallbacks (no FALLOC_FL_ZERO_RANGE there). */
static void temp_path(char *path, size_t size)
{
	const char *dir = getenv("TMPDIR");

	snprintf(path, size, "%s/kvmbox-blk-XXXXXX", dir && *dir ? dir : "/tmp");
}

static void make_image(char *path, size_t size)
{
	uint8_t *buf = malloc(size);
	int fd;

	temp_path(path, 256);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (size_t i = 0; i < size; i++)
		buf[i] = pattern(i);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	free(buf);
}

static void file_read(const char *path, uint64_t off, void *buf, size_t len)
{
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, len, f), len);
	fclose(f);
}

/* Driver side of device start: queue 0 at fixed addresses, features, go. */
static void start_device(struct ctx *c, uint64_t drop_features)
{
	struct virtq *q = &c->vd->vqs[0];

	vqd_clear_rings(&c->d);
	vqd_forget(&c->d);
	vq_transport_attach(&c->f, c->vd);
	c->vd->features = (c->vd->host_features | (1ULL << VIRTIO_F_VERSION_1)) & ~drop_features;
	q->size = QSZ;
	q->desc_gpa = DESC_GPA;
	q->avail_gpa = AVAIL_GPA;
	q->used_gpa = USED_GPA;
	q->event_idx = false;
	q->indirect = false;
	assert_int_equal(virtq_enable(q, &c->ram.mem), 0);
	assert_int_equal(c->vd->ops->activate(c->vd), 0);
	c->vd->activated = true;
}

static struct ctx *ctx_new(bool readonly)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct blockfile_info info;

	fake_ram_init_flat(&c->ram, RAM_SIZE);
	vqd_init(&c->d, &c->ram.mem, DATA_GPA, RAM_SIZE);
	vqd_queue_at(&c->d, 0, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA);
	make_image(c->path, IMG_SIZE);
	c->cfg.path = c->path;
	c->cfg.readonly = readonly;
	snprintf(c->cfg.serial, sizeof(c->cfg.serial), "kvmbox-test-serial");
	c->vd = virtio_blk_create(&c->ram.mem, &c->cfg, 0);
	assert_non_null(c->vd);
	virtio_blk_get_info(c->vd, &info);
	if (info.async != want_async)
		fail_msg("virtio-blk uses %s I/O in the %s group", info.async ? "io_uring" : "synchronous",
			 want_async ? "io_uring" : "synchronous");
	start_device(c, 0);
	return c;
}

static void ctx_free(struct ctx *c)
{
	if (c->vd)
		c->vd->ops->destroy(c->vd);
	unlink(c->path);
	fake_ram_free(&c->ram);
	free(c);
}

static int setup_rw(void **state)
{
	*state = ctx_new(false);
	return 0;
}

static int setup_ro(void **state)
{
	*state = ctx_new(true);
	return 0;
}

static int teardown(void **state)
{
	ctx_free(*state);
	return 0;
}

/* ---- driver side of the ring ------------------------------------------- */

/* Unlike vqd_kick, notify unconditionally: the device itself must cope with
 * kicks while released or with a broken ring. */
static void kick(struct ctx *c)
{
	pthread_mutex_lock(&c->vd->lock);
	c->vd->ops->queue_notify(c->vd, 0);
	pthread_mutex_unlock(&c->vd->lock);
}

/* Run the device loop until `n` more used entries appeared (5 s at most). */
static void wait_used(struct ctx *c, unsigned n)
{
	uint16_t want = (uint16_t)(c->d.q[0].used_seen + n);

	for (int i = 0; i < 500 && vqd_used_idx(&c->d, 0) != want; i++)
		assert_true(loop_run_once(c->vd->loop, 10) >= 0);
	assert_int_equal(vqd_used_idx(&c->d, 0), want);
	c->d.q[0].used_seen = want;
}

static void put_hdr(struct ctx *c, unsigned slot, uint32_t type, uint64_t sector)
{
	uint8_t *h = c->ram.buf + HDR_GPA + 32 * slot;

	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	c->ram.buf[STATUS_GPA + slot] = 0xee;
}

/* One request: header, data segments, status; returns the status byte. */
static int request(struct ctx *c, uint32_t type, uint64_t sector, const struct vq_seg *data, unsigned n,
		   uint32_t *used_len)
{
	struct vq_seg s[QSZ];
	uint32_t head, len;

	assert_true(n + 2 <= QSZ);
	put_hdr(c, 0, type, sector);
	s[0] = (struct vq_seg){ HDR_GPA, 16, false };
	for (unsigned i = 0; i < n; i++)
		s[i + 1] = data[i];
	s[n + 1] = (struct vq_seg){ STATUS_GPA, 1, true };
	vqd_add_chain(&c->d, 0, s, n + 2);
	kick(c);
	wait_used(c, 1);
	vqd_used_elem(&c->d, 0, (uint16_t)(c->d.q[0].used_seen - 1), &head, &len);
	if (used_len)
		*used_len = len;
	return c->ram.buf[STATUS_GPA];
}

static int rw(struct ctx *c, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len)
{
	struct vq_seg d = { gpa, len, type == VIRTIO_BLK_T_IN };

	return request(c, type, sector, &d, 1, NULL);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- tests -------------------------------------------------------------- */

static void test_config(void **state)
{
	struct ctx *c = *state;
	const uint8_t *cfg = c->vd->config;
	uint64_t f = c->vd->host_features;

	assert_string_equal(c->vd->name, "virtio-blk0");
	assert_int_equal(c->vd->ops->device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(c->vd->config_size, VIRTIO_BLK_CFG_SIZE);
	assert_int_equal(get_le64(cfg + VIRTIO_BLK_CFG_CAPACITY), IMG_SECTORS);
	assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_SEG_MAX), QSZ - 2);
	assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_SIZE_MAX), VIRTIO_BLK_SIZE_MAX);
	assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_BLK_SIZE), 512);
	assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG), VIRTIO_BLK_MAX_DZ_SEG);
	assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SECTORS), VIRTIO_BLK_MAX_DZ_SECTORS);
	assert_int_equal(cfg[VIRTIO_BLK_CFG_WZ_MAY_UNMAP], 1);
	assert_true(f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	assert_true(f & (1ULL << VIRTIO_BLK_F_SIZE_MAX));
	assert_true(f & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(f & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	assert_true(f & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_true(f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(f & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(f & (1ULL << VIRTIO_BLK_F_MQ));
}

static void test_read(void **state)
{
	struct ctx *c = *state;
	struct vq_seg d[2] = { { DATA_GPA, 512, true }, { DATA_GPA + 0x10000, 1024, true } };
	uint8_t want[1536];
	uint32_t len;

	file_read(c->path, 3 * 512, want, sizeof(want));
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 3, d, 2, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1536 + 1);
	assert_memory_equal(c->ram.buf + DATA_GPA, want, 512);
	assert_memory_equal(c->ram.buf + DATA_GPA + 0x10000, want + 512, 1024);
	assert_true(c->f.notified[0] > 0);
	/* The last sector of the disk is readable. */
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, DATA_GPA, 512), VIRTIO_BLK_S_OK);
	file_read(c->path, IMG_SIZE - 512, want, 512);
	assert_memory_equal(c->ram.buf + DATA_GPA, want, 512);
}

static void test_write(void **state)
{
	struct ctx *c = *state;
	uint8_t got[2048];

	for (unsigned i = 0; i < 2048; i++)
		c->ram.buf[DATA_GPA + i] = (uint8_t)(0x5a ^ i);
	assert_int_equal(rw(c, VIRTIO_BLK_T_OUT, 10, DATA_GPA, 2048), VIRTIO_BLK_S_OK);
	file_read(c->path, 10 * 512, got, sizeof(got));
	assert_memory_equal(got, c->ram.buf + DATA_GPA, 2048);
	/* Neighbours untouched. */
	file_read(c->path, 9 * 512, got, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(got[i], pattern(9 * 512 + i));
}

/* Header split over two descriptors, the second also carrying the data. */
static void test_split_header(void **state)
{
	struct ctx *c = *state;
	uint64_t base = DATA_GPA + 0x40000;
	uint32_t type = VIRTIO_BLK_T_OUT;
	uint64_t sector = 20;
	struct vq_seg s[3] = { { base, 10, false }, { base + 10, 6 + 512, false }, { STATUS_GPA, 1, true } };
	uint8_t got[512];

	memset(c->ram.buf + base, 0, 16);
	memcpy(c->ram.buf + base, &type, 4);
	memcpy(c->ram.buf + base + 8, &sector, 8);
	memset(c->ram.buf + base + 16, 0xc3, 512);
	c->ram.buf[STATUS_GPA] = 0xee;
	vqd_add_chain(&c->d, 0, s, 3);
	kick(c);
	wait_used(c, 1);
	assert_int_equal(c->ram.buf[STATUS_GPA], VIRTIO_BLK_S_OK);
	file_read(c->path, 20 * 512, got, 512);
	assert_memory_equal(got, c->ram.buf + base + 16, 512);

	/* A read whose last data byte shares a descriptor with the status. */
	sector = 21;
	type = VIRTIO_BLK_T_IN;
	put_hdr(c, 0, type, sector);
	s[0] = (struct vq_seg){ HDR_GPA, 16, false };
	s[1] = (struct vq_seg){ base, 513, true };
	vqd_add_chain(&c->d, 0, s, 2);
	kick(c);
	wait_used(c, 1);
	assert_int_equal(c->ram.buf[base + 512], VIRTIO_BLK_S_OK);
	file_read(c->path, 21 * 512, got, 512);
	assert_memory_equal(got, c->ram.buf + base, 512);
}

/* Many requests in flight at once, completed in one or more batches. */
static void test_many_in_flight(void **state)
{
	struct ctx *c = *state;
	const unsigned n = 64;
	uint8_t want[4096];

	for (unsigned i = 0; i < n; i++) {
		struct vq_seg s[3] = {
			{ HDR_GPA + 32 * i, 16, false },
			{ DATA_GPA + 4096 * i, 4096, true },
			{ STATUS_GPA + i, 1, true },
		};

		put_hdr(c, i, VIRTIO_BLK_T_IN, 8 * i);
		vqd_add_chain(&c->d, 0, s, 3);
	}
	kick(c);
	wait_used(c, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(c->ram.buf[STATUS_GPA + i], VIRTIO_BLK_S_OK);
		file_read(c->path, 4096 * i, want, sizeof(want));
		assert_memory_equal(c->ram.buf + DATA_GPA + 4096 * i, want, sizeof(want));
	}
	assert_true(c->f.notified[0] >= 1 && c->f.notified[0] <= n);
}

/* A flush queued with writes completes after them. */
static void test_flush(void **state)
{
	struct ctx *c = *state;
	uint32_t head[4], h, len;
	uint8_t got[8192];
	unsigned flush_pos = 0, i;

	for (i = 0; i < 3; i++) {
		struct vq_seg s[3] = {
			{ HDR_GPA + 32 * i, 16, false },
			{ DATA_GPA + 8192 * i, 8192, false },
			{ STATUS_GPA + i, 1, true },
		};

		memset(c->ram.buf + DATA_GPA + 8192 * i, 0x30 + (int)i, 8192);
		put_hdr(c, i, VIRTIO_BLK_T_OUT, 100 + 16 * i);
		head[i] = vqd_add_chain(&c->d, 0, s, 3);
	}
	{
		struct vq_seg s[2] = { { HDR_GPA + 32 * 3, 16, false }, { STATUS_GPA + 3, 1, true } };

		put_hdr(c, 3, VIRTIO_BLK_T_FLUSH, 0);
		head[3] = vqd_add_chain(&c->d, 0, s, 2);
	}
	kick(c);
	wait_used(c, 4);
	for (i = 0; i < 4; i++) {
		vqd_used_elem(&c->d, 0, (uint16_t)(c->d.q[0].used_seen - 4 + i), &h, &len);
		if (h == head[3])
			flush_pos = i;
		assert_int_equal(len, 1);
	}
	assert_int_equal(flush_pos, 3); /* after every write */
	for (i = 0; i < 4; i++)
		assert_int_equal(c->ram.buf[STATUS_GPA + i], VIRTIO_BLK_S_OK);
	for (i = 0; i < 3; i++) {
		file_read(c->path, (100 + 16 * i) * 512, got, sizeof(got));
		assert_memory_equal(got, c->ram.buf + DATA_GPA + 8192 * i, sizeof(got));
	}
	/* A lone flush. */
	assert_int_equal(request(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL), VIRTIO_BLK_S_OK);
}

static void test_get_id(void **state)
{
	struct ctx *c = *state;
	struct vq_seg d = { DATA_GPA, 20, true };
	uint8_t want[20] = { 0 };
	uint32_t len;

	memcpy(want, "kvmbox-test-serial", 18);
	memset(c->ram.buf + DATA_GPA, 0xff, 20);
	assert_int_equal(request(c, VIRTIO_BLK_T_GET_ID, 0, &d, 1, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 21);
	assert_memory_equal(c->ram.buf + DATA_GPA, want, 20);
	/* Without a buffer: an error, not a crash. */
	assert_int_equal(request(c, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, NULL), VIRTIO_BLK_S_IOERR);
}

static void put_dz(struct ctx *c, uint64_t gpa, uint64_t sector, uint32_t num, uint32_t flags)
{
	memcpy(c->ram.buf + gpa, &sector, 8);
	memcpy(c->ram.buf + gpa + 8, &num, 4);
	memcpy(c->ram.buf + gpa + 12, &flags, 4);
}

static void test_discard(void **state)
{
	struct ctx *c = *state;
	struct vq_seg d = { DATA_GPA, 16, false };
	uint8_t got[8192];

	/* 64 KiB at sector 1024: whole file-system blocks, so a hole really
	 * reads back as zeroes. */
	put_dz(c, DATA_GPA, 1024, 128, 0);
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, &d, 1, NULL), VIRTIO_BLK_S_OK);
	file_read(c->path, 1024 * 512, got, sizeof(got));
	assert_true(all_zero(got, sizeof(got)));
	file_read(c->path, 1152 * 512, got, 512); /* just after: untouched */
	assert_int_equal(got[0], pattern(1152 * 512));
	/* unmap is not a discard flag: UNSUPP; unknown flags too. */
	put_dz(c, DATA_GPA, 2048, 8, VIRTIO_BLK_WZ_F_UNMAP);
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, &d, 1, NULL), VIRTIO_BLK_S_UNSUPP);
	put_dz(c, DATA_GPA, 2048, 8, 4);
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, &d, 1, NULL), VIRTIO_BLK_S_UNSUPP);
	/* Out of range; not a whole segment. */
	put_dz(c, DATA_GPA, IMG_SECTORS - 4, 8, 0);
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	d.len = 12;
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
}

static void test_write_zeroes(void **state)
{
	struct ctx *c = *state;
	struct vq_seg d = { DATA_GPA, 32, false };
	uint8_t got[4096];

	/* Two segments in one request: with and without unmap, unaligned. */
	put_dz(c, DATA_GPA, 3001, 5, 0);
	put_dz(c, DATA_GPA + 16, 4000, 16, VIRTIO_BLK_WZ_F_UNMAP);
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, &d, 1, NULL), VIRTIO_BLK_S_OK);
	file_read(c->path, 3001 * 512, got, 5 * 512);
	assert_true(all_zero(got, 5 * 512));
	file_read(c->path, 3000 * 512, got, 512);
	assert_int_equal(got[511], pattern(3000 * 512 + 511));
	file_read(c->path, 3006 * 512, got, 512);
	assert_int_equal(got[0], pattern(3006 * 512));
	file_read(c->path, 4000 * 512, got, sizeof(got));
	assert_true(all_zero(got, sizeof(got)));
	/* Too many sectors in one segment. */
	d.len = 16;
	put_dz(c, DATA_GPA, 0, VIRTIO_BLK_MAX_DZ_SECTORS + 1, 0);
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	/* More segments than max_write_zeroes_seg. */
	d.len = 16 * (VIRTIO_BLK_MAX_DZ_SEG + 1);
	memset(c->ram.buf + DATA_GPA, 0, d.len);
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
}

static void test_bad_requests(void **state)
{
	struct ctx *c = *state;
	struct vq_seg d;

	/* Out of range: past the end, straddling it, and an overflowing sector. */
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, IMG_SECTORS, DATA_GPA, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, DATA_GPA, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(c, VIRTIO_BLK_T_OUT, UINT64_MAX - 1, DATA_GPA, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, DATA_GPA, 512), VIRTIO_BLK_S_IOERR);
	/* Not a multiple of 512, and empty. */
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 0, DATA_GPA, 100), VIRTIO_BLK_S_IOERR);
	assert_int_equal(rw(c, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 513), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, NULL, 0, NULL), VIRTIO_BLK_S_IOERR);
	/* Wrong direction: a read with readable data, a write with writable data. */
	d = (struct vq_seg){ DATA_GPA, 512, false };
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	d.write = true;
	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	/* Flush with data. */
	assert_int_equal(request(c, VIRTIO_BLK_T_FLUSH, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	/* Unknown types. */
	assert_int_equal(request(c, 99, 0, NULL, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(c, 10 /* GET_LIFETIME */, 0, &d, 1, NULL), VIRTIO_BLK_S_UNSUPP);
	/* A segment over size_max (2 MiB, in range). */
	d = (struct vq_seg){ DATA_GPA, 2u << 20, true };
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	assert_false(c->vd->broken);
	assert_int_equal(c->f.needs_reset, 0);
}

static void test_header_status(void **state)
{
	struct ctx *c = *state;
	struct vq_seg s[2];
	uint32_t head, len;

	/* Header too short: 8 bytes, then the status. */
	put_hdr(c, 0, VIRTIO_BLK_T_IN, 0);
	s[0] = (struct vq_seg){ HDR_GPA, 8, false };
	s[1] = (struct vq_seg){ STATUS_GPA, 1, true };
	vqd_add_chain(&c->d, 0, s, 2);
	kick(c);
	wait_used(c, 1);
	assert_int_equal(c->ram.buf[STATUS_GPA], VIRTIO_BLK_S_IOERR);
	/* No status byte at all: returned with length 0. */
	put_hdr(c, 0, VIRTIO_BLK_T_OUT, 0);
	s[0] = (struct vq_seg){ HDR_GPA, 16, false };
	s[1] = (struct vq_seg){ DATA_GPA, 512, false };
	vqd_add_chain(&c->d, 0, s, 2);
	kick(c);
	wait_used(c, 1);
	vqd_used_elem(&c->d, 0, (uint16_t)(c->d.q[0].used_seen - 1), &head, &len);
	assert_int_equal(len, 0);
	assert_int_equal(c->ram.buf[STATUS_GPA], 0xee);
	assert_false(c->vd->broken);
	/* The device still works. */
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512), VIRTIO_BLK_S_OK);
}

static void test_seg_max(void **state)
{
	struct ctx *c = *state;
	static struct vq_seg d[QSZ];
	struct vq_seg s[QSZ];
	uint64_t base = DATA_GPA;
	uint32_t type = VIRTIO_BLK_T_IN, len;
	uint64_t sector = 0;

	/* Exactly seg_max data segments: fine. */
	for (unsigned i = 0; i < VIRTIO_BLK_SEG_MAX; i++)
		d[i] = (struct vq_seg){ DATA_GPA + 512 * i, 512, true };
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, d, VIRTIO_BLK_SEG_MAX, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 512 * VIRTIO_BLK_SEG_MAX + 1);
	/* seg_max + 1, in a chain of queue-size descriptors: the header shares
	 * the first descriptor with the first data segment. */
	type = VIRTIO_BLK_T_OUT;
	memset(c->ram.buf + base, 0, 16);
	memcpy(c->ram.buf + base, &type, 4);
	memcpy(c->ram.buf + base + 8, &sector, 8);
	s[0] = (struct vq_seg){ base, 16 + 512, false };
	for (unsigned i = 1; i < QSZ - 1; i++)
		s[i] = (struct vq_seg){ base + 0x20000 + 512 * i, 512, false };
	s[QSZ - 1] = (struct vq_seg){ STATUS_GPA, 1, true };
	vqd_add_chain(&c->d, 0, s, QSZ);
	kick(c);
	wait_used(c, 1);
	assert_int_equal(c->ram.buf[STATUS_GPA], VIRTIO_BLK_S_IOERR);
	assert_false(c->vd->broken);
}

static void test_malformed_ring(void **state)
{
	struct ctx *c = *state;

	/* A head past the table: the ring is broken, the device asks for reset. */
	vqd_avail_add(&c->d, 0, QSZ + 5);
	kick(c);
	assert_true(c->vd->broken);
	assert_int_equal(c->f.needs_reset, 1);
	/* Driver reset, then it works again. */
	pthread_mutex_lock(&c->vd->lock);
	c->vd->ops->reset(c->vd);
	pthread_mutex_unlock(&c->vd->lock);
	c->vd->broken = false;
	start_device(c, 0);
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512), VIRTIO_BLK_S_OK);
}

/* Reset with requests in flight: they finish before reset returns and none
 * is pushed to the (about to be forgotten) ring. */
static void test_reset_in_flight(void **state)
{
	struct ctx *c = *state;

	for (unsigned i = 0; i < 32; i++) {
		struct vq_seg s[3] = {
			{ HDR_GPA + 32 * i, 16, false },
			{ DATA_GPA + 65536 * i, 65536, true },
			{ STATUS_GPA + i, 1, true },
		};

		put_hdr(c, i, VIRTIO_BLK_T_IN, 128 * i);
		vqd_add_chain(&c->d, 0, s, 3);
	}
	pthread_mutex_lock(&c->vd->lock);
	c->vd->ops->queue_notify(c->vd, 0);
	assert_true(virtio_blk_in_flight(c->vd) > 0);
	c->vd->ops->reset(c->vd);
	assert_int_equal(virtio_blk_in_flight(c->vd), 0);
	pthread_mutex_unlock(&c->vd->lock);
	assert_int_equal(vqd_used_idx(&c->d, 0), 0);
	/* Nothing is left to complete later: the loop finds no completion.
	 * With io_uring it may wake once for an eventfd signal left from the
	 * drain (a completion posted after the drain's last eventfd read and
	 * reaped by it); that wake-up pushes nothing. */
	assert_in_range(loop_run_once(c->vd->loop, 50), 0, want_async ? 1 : 0);
	assert_int_equal(vqd_used_idx(&c->d, 0), 0);
	start_device(c, 0);
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512), VIRTIO_BLK_S_OK);
}

/* A migration marks the pages a read wrote from the buffers validated when the chain was
 * popped, not from descriptors read again at completion: the driver may have redirected them
 * meanwhile (issue 9). */
static void test_dirty_from_popped_chain(void **state)
{
	struct ctx *c = *state;
	const uint64_t a = DATA_GPA, other = DATA_GPA + 0x40000;
	const size_t bpw = 8 * sizeof(unsigned long);
	struct vq_seg s[3] = { { HDR_GPA, 16, false }, { a, 4096, true }, { STATUS_GPA, 1, true } };
	unsigned long *bits = calloc(RAM_SIZE / 4096 / bpw + 1, sizeof(unsigned long));
	uint16_t head;
	uint8_t want[4096];

#define DIRTY(gpa) ((bits[(gpa) / 4096 / bpw] >> ((gpa) / 4096 % bpw)) & 1)
	assert_non_null(bits);
	file_read(c->path, 8 * 512, want, sizeof(want));
	put_hdr(c, 0, VIRTIO_BLK_T_IN, 8);
	assert_int_equal(guest_mem_dirty_start(&c->ram.mem), 0);
	head = vqd_add_chain(&c->d, 0, s, 3);
	kick(c);
	assert_int_equal(vqd_used_idx(&c->d, 0), 0); /* popped, not completed */
	/* The driver points the data descriptor elsewhere before the completion. */
	put_le64(c->ram.buf + DESC_GPA + 16 * ((head + 1u) % QSZ), other);
	wait_used(c, 1);
	assert_int_equal(c->ram.buf[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_memory_equal(c->ram.buf + a, want, sizeof(want));
	guest_mem_dirty_take(&c->ram.mem, bits);
	assert_true(DIRTY(a));
	assert_true(DIRTY(STATUS_GPA));
	assert_true(DIRTY(USED_GPA));
	assert_false(DIRTY(other));
#undef DIRTY
	guest_mem_dirty_stop(&c->ram.mem);
	free(c->ram.mem.dirty); /* fake RAM does not own it */
	c->ram.mem.dirty = NULL;
	free(bits);
}

static void test_quiesce_save_load(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;
	uint8_t *buf;

	for (unsigned i = 0; i < 16; i++) {
		struct vq_seg s[3] = {
			{ HDR_GPA + 32 * i, 16, false },
			{ DATA_GPA + 4096 * i, 4096, false },
			{ STATUS_GPA + i, 1, true },
		};

		put_hdr(c, i, VIRTIO_BLK_T_OUT, 8 * i);
		vqd_add_chain(&c->d, 0, s, 3);
	}
	pthread_mutex_lock(&c->vd->lock);
	c->vd->ops->queue_notify(c->vd, 0);
	assert_int_equal(virtio_blk_quiesce(c->vd), 0);
	assert_int_equal(vqd_used_idx(&c->d, 0), 16); /* all completed, none waiting */
	ser_writer_init(&w);
	c->vd->ops->save(c->vd, &w);
	pthread_mutex_unlock(&c->vd->lock);
	c->d.q[0].used_seen = 16;
	assert_false(w.err);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->vd->ops->load(c->vd, &r), 0);
	assert_true(ser_reader_done(&r));
	/* A different image (inode changed): refused. */
	buf = malloc(w.len);
	memcpy(buf, w.buf, w.len);
	buf[2 + 8 + 8] ^= 1; /* version, ro, size, dev, then ino */
	ser_reader_init(&r, buf, w.len);
	assert_int_equal(c->vd->ops->load(c->vd, &r), -1);
	/* Truncated: refused. */
	ser_reader_init(&r, w.buf, w.len - 3);
	assert_int_equal(c->vd->ops->load(c->vd, &r), -1);
	free(buf);
	ser_writer_free(&w);
}

/* Without FLUSH negotiated writes are write-through; they still land. */
static void test_writethrough(void **state)
{
	struct ctx *c = *state;
	uint8_t got[512];

	start_device(c, 1ULL << VIRTIO_BLK_F_FLUSH);
	memset(c->ram.buf + DATA_GPA, 0x77, 512);
	assert_int_equal(rw(c, VIRTIO_BLK_T_OUT, 7, DATA_GPA, 512), VIRTIO_BLK_S_OK);
	file_read(c->path, 7 * 512, got, 512);
	assert_memory_equal(got, c->ram.buf + DATA_GPA, 512);
}

/* Write-through follows the negotiated features into a restored or migrated VM: its device is
 * loaded, never activated. */
static void test_writethrough_after_load(void **state)
{
	struct ctx *c = *state;
	struct disk_config cfg2 = c->cfg;
	struct virtio_dev *vd2;
	struct ser_writer w;
	struct ser_reader r;

	start_device(c, 1ULL << VIRTIO_BLK_F_FLUSH);
	assert_true(virtio_blk_writethrough(c->vd));
	pthread_mutex_lock(&c->vd->lock);
	ser_writer_init(&w);
	c->vd->ops->save(c->vd, &w);
	pthread_mutex_unlock(&c->vd->lock);
	assert_false(w.err);
	/* The image changes hands, as in a migration; the transport loads features, then the device. */
	c->vd->ops->destroy(c->vd);
	c->vd = NULL;
	vd2 = virtio_blk_create(&c->ram.mem, &cfg2, 0);
	assert_non_null(vd2);
	c->vd = vd2;
	vd2->features = (vd2->host_features | (1ULL << VIRTIO_F_VERSION_1)) & ~(1ULL << VIRTIO_BLK_F_FLUSH);
	vd2->activated = true;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(vd2->ops->load(vd2, &r), 0);
	assert_true(virtio_blk_writethrough(vd2));
	/* With FLUSH negotiated it is not. */
	vd2->features |= 1ULL << VIRTIO_BLK_F_FLUSH;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(vd2->ops->load(vd2, &r), 0);
	assert_false(virtio_blk_writethrough(vd2));
	ser_writer_free(&w);
}

static void test_lock(void **state)
{
	struct ctx *c = *state;
	struct disk_config cfg = c->cfg;

	/* Writable elsewhere: neither writable nor read-only. */
	assert_null(virtio_blk_create(&c->ram.mem, &cfg, 1));
	cfg.readonly = true;
	assert_null(virtio_blk_create(&c->ram.mem, &cfg, 1));
	/* Free again once the first is gone. */
	c->vd->ops->destroy(c->vd);
	c->vd = virtio_blk_create(&c->ram.mem, &cfg, 1);
	assert_non_null(c->vd);
	assert_string_equal(c->vd->name, "virtio-blk1");
}

static void test_readonly(void **state)
{
	struct ctx *c = *state;
	struct vq_seg d = { DATA_GPA, 16, false };
	struct disk_config cfg = c->cfg;
	struct virtio_dev *other;
	uint8_t got[1024];

	assert_true(c->vd->host_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(c->vd->host_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	/* Reads work. */
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 2, DATA_GPA, 1024), VIRTIO_BLK_S_OK);
	file_read(c->path, 1024, got, sizeof(got));
	assert_memory_equal(got, c->ram.buf + DATA_GPA, sizeof(got));
	/* Writes, discard, write-zeroes are refused and change nothing. */
	memset(c->ram.buf + DATA_GPA, 0x11, 1024);
	assert_int_equal(rw(c, VIRTIO_BLK_T_OUT, 2, DATA_GPA, 1024), VIRTIO_BLK_S_IOERR);
	put_dz(c, DATA_GPA, 2, 2, 0);
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, &d, 1, NULL), VIRTIO_BLK_S_IOERR);
	file_read(c->path, 1024, got, sizeof(got));
	for (unsigned i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], pattern(1024 + i));
	assert_int_equal(request(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL), VIRTIO_BLK_S_OK);
	/* Read-only users share; a writer is kept out. */
	other = virtio_blk_create(&c->ram.mem, &cfg, 1);
	assert_non_null(other);
	other->ops->destroy(other);
	cfg.readonly = false;
	assert_null(virtio_blk_create(&c->ram.mem, &cfg, 1));
}

static void read_image_at(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* Live migration hand-over: release writes back and unlocks, so a second
 * process can take the image; reacquire fails while it holds it. */
static void test_release_reacquire(void **state)
{
	struct ctx *c = *state;
	struct disk_config cfg = c->cfg;
	struct virtio_dev *other;
	uint8_t got[4096];

	assert_non_null(c->vd->ops->release);
	assert_non_null(c->vd->ops->reacquire);
	/* Writes still in flight when release is called are completed first. */
	for (unsigned i = 0; i < 8; i++) {
		struct vq_seg sg[3] = {
			{ HDR_GPA + 32 * i, 16, false },
			{ DATA_GPA + 4096 * i, 4096, false },
			{ STATUS_GPA + i, 1, true },
		};

		memset(c->ram.buf + DATA_GPA + 4096 * i, 0xa0 + i, 4096);
		put_hdr(c, i, VIRTIO_BLK_T_OUT, 100 + 8 * i);
		vqd_add_chain(&c->d, 0, sg, 3);
	}
	kick(c);
	assert_int_equal(vqd_release(c->vd), 0);
	assert_int_equal(vqd_used_idx(&c->d, 0), 8);
	c->d.q[0].used_seen = 8;
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(c->ram.buf[STATUS_GPA + i], VIRTIO_BLK_S_OK);
		read_image_at(c->path, (100 + 8 * i) * 512ULL, got, sizeof(got));
		assert_memory_equal(got, c->ram.buf + DATA_GPA + 4096 * i, sizeof(got));
	}
	assert_int_equal(vqd_release(c->vd), 0); /* idempotent */
	/* The destination opens it, writable. */
	other = virtio_blk_create(&c->ram.mem, &cfg, 1);
	assert_non_null(other);
	/* Taking it back fails while the destination holds it, and can be retried. */
	assert_int_equal(vqd_reacquire(c->vd), -1);
	assert_int_equal(vqd_reacquire(c->vd), -1);
	other->ops->destroy(other);
	assert_int_equal(vqd_reacquire(c->vd), 0);
	assert_int_equal(vqd_reacquire(c->vd), 0); /* not released: no-op */
	/* Locked again: nobody else gets it. */
	assert_null(virtio_blk_create(&c->ram.mem, &cfg, 1));
	cfg.readonly = true;
	assert_null(virtio_blk_create(&c->ram.mem, &cfg, 1));
	/* And the device works. */
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 100, DATA_GPA + 0x80000, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(c->ram.buf + DATA_GPA + 0x80000, c->ram.buf + DATA_GPA, 4096);
}

/* A kick that arrives while released is not served until reacquire. */
static void test_release_kick_deferred(void **state)
{
	struct ctx *c = *state;
	struct vq_seg sg[3] = { { HDR_GPA, 16, false }, { DATA_GPA, 512, false }, { STATUS_GPA, 1, true } };
	uint8_t got[512];

	assert_int_equal(vqd_release(c->vd), 0);
	memset(c->ram.buf + DATA_GPA, 0x3c, 512);
	put_hdr(c, 0, VIRTIO_BLK_T_OUT, 5);
	vqd_add_chain(&c->d, 0, sg, 3);
	kick(c);
	/* The request was not handed to the backend, so no completion can
	 * ever wake the loop. */
	assert_int_equal(virtio_blk_in_flight(c->vd), 0);
	assert_int_equal(loop_run_once(c->vd->loop, 50), 0);
	assert_int_equal(vqd_used_idx(&c->d, 0), 0);
	read_image_at(c->path, 5 * 512, got, sizeof(got));
	for (unsigned i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], pattern(5 * 512 + i));
	assert_int_equal(vqd_reacquire(c->vd), 0);
	wait_used(c, 1);
	assert_int_equal(c->ram.buf[STATUS_GPA], VIRTIO_BLK_S_OK);
	read_image_at(c->path, 5 * 512, got, sizeof(got));
	assert_memory_equal(got, c->ram.buf + DATA_GPA, sizeof(got));
}

/* Read-only: the shared lock goes too, so a writer can take the image. */
static void test_release_readonly(void **state)
{
	struct ctx *c = *state;
	struct disk_config cfg = c->cfg;
	struct virtio_dev *other;

	cfg.readonly = false;
	assert_null(virtio_blk_create(&c->ram.mem, &cfg, 1));
	assert_int_equal(vqd_release(c->vd), 0);
	other = virtio_blk_create(&c->ram.mem, &cfg, 1);
	assert_non_null(other);
	assert_int_equal(vqd_reacquire(c->vd), -1);
	other->ops->destroy(other);
	assert_int_equal(vqd_reacquire(c->vd), 0);
	assert_int_equal(rw(c, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512), VIRTIO_BLK_S_OK);
}

/* A writable block device is opened O_EXCL: release closes it, reacquire
 * reopens it by path. Needs root and a free loop device, else skipped. */
static void test_release_blockdev(void **state)
{
	static const struct mem_region layout[1] = { { .gpa = 0, .size = 4096 } };
	static uint8_t ram[4096];
	struct guest_mem mem;
	struct disk_config cfg = { 0 };
	struct virtio_dev *vd, *other;
	char img[256], cmd[600], dev[64] = "";
	FILE *p;
	int fd;

	if (geteuid() != 0 || access("/dev/loop-control", F_OK) != 0)
		skip();
	make_image(img, 1u << 20);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", img);
	p = popen(cmd, "r");
	if (!p || !fgets(dev, sizeof(dev), p) || strncmp(dev, "/dev/", 5)) {
		if (p)
			pclose(p);
		unlink(img);
		skip();
	}
	pclose(p);
	dev[strcspn(dev, "\n")] = 0;
	guest_mem_init_static(&mem, ram, layout, 1);
	cfg.path = dev;
	vd = virtio_blk_create(&mem, &cfg, 0);
	assert_non_null(vd);
	/* O_EXCL keeps other exclusive openers out ... */
	fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EBUSY);
	/* ... until release. */
	assert_int_equal(vqd_release(vd), 0);
	other = virtio_blk_create(&mem, &cfg, 1);
	assert_non_null(other);
	assert_int_equal(vqd_reacquire(vd), -1);
	other->ops->destroy(other);
	assert_int_equal(vqd_reacquire(vd), 0);
	fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
	assert_int_equal(fd, -1);
	vd->ops->destroy(vd);
	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	assert_int_equal(system(cmd), 0);
	unlink(img);
}

static void test_open_errors(void **state)
{
	static const struct mem_region layout[1] = { { .gpa = 0, .size = 4096 } };
	static uint8_t ram[4096];
	struct guest_mem mem;
	struct disk_config cfg = { .path = "/nonexistent/rootfs.ext4" };
	char path[256];
	struct virtio_dev *vd;
	int fd;

	guest_mem_init_static(&mem, ram, layout, 1);
	assert_null(virtio_blk_create(&mem, &cfg, 0));
	cfg.path = "/tmp";
	assert_null(virtio_blk_create(&mem, &cfg, 0));
	/* A size that is not a multiple of 512: rounded down. */
	temp_path(path, sizeof(path));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 10 * 512 + 100), 0);
	close(fd);
	cfg.path = path;
	vd = virtio_blk_create(&mem, &cfg, 3);
	assert_non_null(vd);
	assert_int_equal(get_le64(vd->config + VIRTIO_BLK_CFG_CAPACITY), 10);
	vd->ops->destroy(vd);
	unlink(path);
}

#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static const struct CMUnitTest tests[] = {
	T(test_config, setup_rw),
	T(test_read, setup_rw),
	T(test_write, setup_rw),
	T(test_split_header, setup_rw),
	T(test_many_in_flight, setup_rw),
	T(test_flush, setup_rw),
	T(test_get_id, setup_rw),
	T(test_discard, setup_rw),
	T(test_write_zeroes, setup_rw),
	T(test_bad_requests, setup_rw),
	T(test_header_status, setup_rw),
	T(test_seg_max, setup_rw),
	T(test_malformed_ring, setup_rw),
	T(test_reset_in_flight, setup_rw),
	T(test_dirty_from_popped_chain, setup_rw),
	T(test_quiesce_save_load, setup_rw),
	T(test_writethrough, setup_rw),
	T(test_writethrough_after_load, setup_rw),
	T(test_lock, setup_rw),
	T(test_readonly, setup_ro),
	T(test_release_reacquire, setup_rw),
	T(test_release_kick_deferred, setup_rw),
	T(test_release_readonly, setup_ro),
	cmocka_unit_test(test_release_blockdev),
	cmocka_unit_test(test_open_errors),
};

/* Why blockfile cannot use io_uring on this kernel, or NULL if it can: the
 * same requirements as its setup (ring, readv/writev/fsync, eventfd). Probed
 * here, independently, so a blockfile that falls back without cause fails
 * the io_uring group instead of passing it on the synchronous path. */
static const char *io_uring_missing(void)
{
	static char why[128];
	struct io_uring ring;
	struct io_uring_probe *probe;
	int ret, efd;

	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0) {
		snprintf(why, sizeof(why), "io_uring_queue_init: %s", strerror(-ret));
		return why;
	}
	probe = io_uring_get_probe_ring(&ring);
	if (probe && (!io_uring_opcode_supported(probe, IORING_OP_READV) ||
		      !io_uring_opcode_supported(probe, IORING_OP_WRITEV) ||
		      !io_uring_opcode_supported(probe, IORING_OP_FSYNC)))
		snprintf(why, sizeof(why), "io_uring lacks readv, writev or fsync");
	if (probe)
		io_uring_free_probe(probe);
	efd = eventfd(0, EFD_CLOEXEC);
	ret = efd < 0 ? -errno : io_uring_register_eventfd(&ring, efd);
	if (ret < 0 && !why[0])
		snprintf(why, sizeof(why), "io_uring eventfd: %s", strerror(-ret));
	if (efd >= 0)
		close(efd);
	io_uring_queue_exit(&ring);
	return why[0] ? why : NULL;
}

static void skipped_test(void **state)
{
	skip();
}

enum { NTESTS = sizeof(tests) / sizeof(tests[0]) };

/* The tests again, named "<group>/<test>": the result lines of the two groups
 * differ (tests/check.sh names a result by binary and test only). With
 * skip_all, every test only reports a skip. */
static void group_tests(struct CMUnitTest *out, char (*names)[64], const char *group, bool skip_all)
{
	for (int i = 0; i < NTESTS; i++) {
		snprintf(names[i], sizeof(names[i]), "%s/%s", group, tests[i].name);
		out[i] = tests[i];
		out[i].name = names[i];
		if (skip_all)
			out[i] = (struct CMUnitTest){ .name = names[i], .test_func = skipped_test };
	}
}

int main(void)
{
	static struct CMUnitTest uring_tests[NTESTS], sync_tests[NTESTS];
	static char uring_names[NTESTS][64], sync_names[NTESTS][64];
	const char *missing = io_uring_missing();
	int failed;

	if (missing)
		printf("# virtio_blk_io_uring: io_uring unavailable (%s): its %d tests are skipped\n",
		       missing, NTESTS);
	group_tests(uring_tests, uring_names, "io_uring", missing != NULL);
	group_tests(sync_tests, sync_names, "sync", false);
	unsetenv("KVMBOX_BLK_SYNC");
	want_async = true;
	failed = cmocka_run_group_tests_name("virtio_blk_io_uring", uring_tests, NULL, NULL);
	setenv("KVMBOX_BLK_SYNC", "1", 1);
	want_async = false;
	failed += cmocka_run_group_tests_name("virtio_blk_sync", sync_tests, NULL, NULL);
	return failed;
}
