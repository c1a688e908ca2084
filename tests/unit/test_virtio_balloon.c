/* Unit tests for virtio-balloon (virtio/balloon.c): inflated pages really
 * leave the process (mincore) and read back zero, bad PFNs and odd buffers
 * are harmless, deflate is counted, the target reaches config space with a
 * config interrupt, the stats buffer is held and handed back on request,
 * reset forgets the driver's state, and snapshots round-trip. RAM is a real
 * anonymous mapping (fake_ram_map) so madvise works; queues are driven
 * through the fake driver in vq_driver.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio/balloon.h"
#include "vq_driver.h"

#define RAM_SIZE  (64ULL << 20)
#define QSZ       64
#define BUF_GPA   0x100000ULL   /* PFN arrays, stats from 1 MiB, above the rings */
#define PAGES_GPA (32ULL << 20) /* pages to balloon from 32 MiB */
#define PG        4096ULL

#define F_STATS (1ULL << VIRTIO_BALLOON_F_STATS_VQ)

static uint32_t cfg32(struct vq_fixture *x, unsigned off)
{
	return get_le32(x->vd->config + off);
}

/* Post an array of PFNs (and `extra` odd trailing bytes) as one buffer on q. */
static uint16_t add_pfns(struct vq_fixture *x, unsigned q, const uint32_t *pfn, unsigned n, unsigned extra)
{
	struct vq_seg s = { vqd_alloc(&x->d, 4 * n + extra), 4 * n + extra, false };

	for (unsigned i = 0; i < n; i++)
		vqd_put32(&x->d, s.gpa + 4ULL * i, pfn[i]);
	for (unsigned i = 0; i < extra; i++)
		*vqd_host(&x->d, s.gpa + 4ULL * n + i, 1) = 0xff;
	return vqd_add_chain(&x->d, q, &s, 1);
}

/* What the transport does on a device reset. */
static void transport_reset(struct vq_fixture *x)
{
	struct virtio_dev *vd = x->vd;

	pthread_mutex_lock(&vd->lock);
	vd->ops->reset(vd);
	vd->activated = false;
	vd->broken = false;
	vd->features = 0;
	for (unsigned q = 0; q < vd->num_queues; q++)
		virtq_reset(&vd->vqs[q]);
	pthread_mutex_unlock(&vd->lock);
}

/* A driver config write, as the transport delivers it. */
static void config_write(struct vq_fixture *x, unsigned off, uint32_t v, unsigned len)
{
	struct virtio_dev *vd = x->vd;

	pthread_mutex_lock(&vd->lock);
	for (unsigned i = 0; i < len; i++)
		vd->config[off + i] = (uint8_t)(v >> (8 * i));
	vd->ops->config_write(vd, off, len);
	pthread_mutex_unlock(&vd->lock);
}

static struct balloon_info info(struct vq_fixture *x)
{
	struct balloon_info bi;

	virtio_balloon_info(x->vd, &bi);
	return bi;
}

static bool resident(struct vq_fixture *x, uint64_t gpa)
{
	unsigned char v = 0;

	assert_int_equal(mincore(vqd_host(&x->d, gpa, PG), PG, &v), 0);
	return v & 1;
}

static void touch(struct vq_fixture *x, uint64_t gpa, unsigned pages)
{
	for (unsigned i = 0; i < pages; i++)
		memset(vqd_host(&x->d, gpa + i * PG, PG), 0xa5, PG);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int setup(void **state)
{
	struct vq_fixture *x = vq_fixture_new(state, sizeof(*x), RAM_SIZE, true, BUF_GPA, PAGES_GPA);

	vq_fixture_attach(x, virtio_balloon_create(&x->ram.mem, 0), QSZ);
	return 0;
}

/* ---- tests ---- */

static void test_identity(void **state)
{
	struct vq_fixture *x = *state;

	assert_string_equal(x->vd->name, "virtio-balloon0");
	assert_int_equal(x->vd->ops->device_id, VIRTIO_ID_BALLOON);
	assert_int_equal(x->vd->num_queues, 3);
	assert_int_equal(x->vd->config_size, 8);
	assert_true(x->vd->host_features & F_STATS);
	assert_true(x->vd->host_features & (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	assert_false(x->vd->host_features & (1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST));
	assert_int_equal(cfg32(x, 0), 0);
	assert_int_equal(cfg32(x, 4), 0);
}

static void test_inflate_releases_pages(void **state)
{
	struct vq_fixture *x = *state;
	enum { N = 300 };
	uint32_t pfn[N], id, len;
	uint16_t head;
	struct balloon_info bi;
	uint64_t base = PAGES_GPA >> 12;

	touch(x, PAGES_GPA, 600);
	/* Two contiguous runs (256 + 40, split by a gap) and four scattered pages. */
	for (unsigned i = 0; i < 256; i++)
		pfn[i] = (uint32_t)(base + i);
	for (unsigned i = 0; i < 40; i++)
		pfn[256 + i] = (uint32_t)(base + 300 + i);
	pfn[296] = (uint32_t)(base + 500);
	pfn[297] = (uint32_t)(base + 450);
	pfn[298] = (uint32_t)(base + 451);
	pfn[299] = (uint32_t)(base + 599);
	for (unsigned i = 0; i < N; i++)
		assert_true(resident(x, (uint64_t)pfn[i] << 12));

	vqd_activate(&x->d, x->vd, 0);
	head = add_pfns(x, VIRTIO_BALLOON_INFLATEQ, pfn, N, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_INFLATEQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_int_equal(x->f.notified[VIRTIO_BALLOON_INFLATEQ], 1);

	for (unsigned i = 0; i < N; i++) {
		uint64_t g = (uint64_t)pfn[i] << 12;

		assert_false(resident(x, g));
		assert_true(all_zero(vqd_host(&x->d, g, PG), PG));
	}
	/* Pages not in the balloon keep their data. */
	assert_true(resident(x, PAGES_GPA + 256 * PG));
	assert_int_equal(*vqd_host(&x->d, PAGES_GPA + 256 * PG, 1), 0xa5);
	assert_int_equal(*vqd_host(&x->d, PAGES_GPA + 598 * PG, 1), 0xa5);

	bi = info(x);
	assert_int_equal(bi.inflated_pages, N);
	assert_int_equal(bi.invalid_pfns, 0);
	assert_false(virtio_is_broken(x->vd));
}

static void test_invalid_pfns(void **state)
{
	struct vq_fixture *x = *state;
	uint32_t last = (uint32_t)(RAM_SIZE / PG - 1);
	uint32_t pfn[] = { last + 1, 0xffffffffu, last, 0x80000000u, last + 100 };
	uint32_t id, len;
	struct balloon_info bi;

	touch(x, (uint64_t)last << 12, 1);
	vqd_activate(&x->d, x->vd, 0);
	add_pfns(x, VIRTIO_BALLOON_INFLATEQ, pfn, 5, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_INFLATEQ, &id, &len));
	assert_int_equal(len, 0);
	assert_false(resident(x, (uint64_t)last << 12));
	bi = info(x);
	assert_int_equal(bi.inflated_pages, 1);
	assert_int_equal(bi.invalid_pfns, 4);
	assert_false(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 0);
}

static void test_odd_buffers(void **state)
{
	struct vq_fixture *x = *state;
	uint64_t base = PAGES_GPA >> 12;
	uint32_t three[3] = { (uint32_t)base, (uint32_t)base + 1, (uint32_t)base + 2 };
	uint64_t g = vqd_alloc(&x->d, 12);
	struct vq_seg split[3] = { { g, 6, false }, { g + 6, 6, false }, { vqd_alloc(&x->d, 16), 16, true } };
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, 0);
	/* 3 PFNs and 3 stray bytes: the stray bytes are ignored. */
	touch(x, PAGES_GPA, 8);
	add_pfns(x, VIRTIO_BALLOON_INFLATEQ, three, 3, 3);
	/* 2 bytes: no whole PFN at all. */
	add_pfns(x, VIRTIO_BALLOON_INFLATEQ, NULL, 0, 2);
	/* A PFN array split mid-PFN across segments, plus a writable tail (ignored). */
	for (unsigned i = 0; i < 3; i++)
		vqd_put32(&x->d, g + 4 * i, (uint32_t)base + 4 + i);
	vqd_add_chain(&x->d, VIRTIO_BALLOON_INFLATEQ, split, 3);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_INFLATEQ, &id, &len));
		assert_int_equal(len, 0);
	}
	assert_int_equal(info(x).inflated_pages, 6);
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(resident(x, PAGES_GPA + i * PG), i == 3);
	assert_false(virtio_is_broken(x->vd));
}

static void test_deflate(void **state)
{
	struct vq_fixture *x = *state;
	uint32_t pfn[10], bad = 0xfffffff0u, id, len;
	struct balloon_info bi;

	for (unsigned i = 0; i < 10; i++)
		pfn[i] = (uint32_t)(PAGES_GPA >> 12) + i;
	vqd_activate(&x->d, x->vd, 0);
	add_pfns(x, VIRTIO_BALLOON_INFLATEQ, pfn, 10, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	add_pfns(x, VIRTIO_BALLOON_DEFLATEQ, pfn, 4, 0);
	add_pfns(x, VIRTIO_BALLOON_DEFLATEQ, &bad, 1, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_DEFLATEQ);
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_DEFLATEQ, &id, &len));
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_DEFLATEQ, &id, &len));
	assert_false(vqd_next_used(&x->d, VIRTIO_BALLOON_DEFLATEQ, &id, &len));
	assert_int_equal(x->f.notified[VIRTIO_BALLOON_DEFLATEQ], 1);
	bi = info(x);
	assert_int_equal(bi.inflated_pages, 6);
	assert_int_equal(bi.invalid_pfns, 1);
	/* Deflated pages are usable again: touching them faults in zero pages. */
	assert_true(all_zero(vqd_host(&x->d, PAGES_GPA, PG), PG));
	memset(vqd_host(&x->d, PAGES_GPA, PG), 1, PG);
	assert_true(resident(x, PAGES_GPA));
	/* More deflated than inflated (a confused driver) does not wrap. */
	add_pfns(x, VIRTIO_BALLOON_DEFLATEQ, pfn, 10, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_DEFLATEQ);
	assert_int_equal(info(x).inflated_pages, 0);
}

static void test_set_target(void **state)
{
	struct vq_fixture *x = *state;

	/* Before the driver runs: config only, no interrupt. */
	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE - (16ULL << 20)), 0);
	assert_int_equal(cfg32(x, 0), (16 << 20) / 4096);
	assert_int_equal(x->f.config_changes, 0);
	assert_int_equal(info(x).target_pages, 4096);

	vqd_activate(&x->d, x->vd, F_STATS);
	assert_int_equal(virtio_balloon_set_target(x->vd, 4ULL << 20), 0);
	assert_int_equal(cfg32(x, 0), (60 << 20) / 4096);
	assert_int_equal(x->f.config_changes, 1);
	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE), 0);
	assert_int_equal(cfg32(x, 0), 0);
	assert_int_equal(x->f.config_changes, 2);
	/* Not a whole page short: rounds down. */
	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE - 4095), 0);
	assert_int_equal(cfg32(x, 0), 0);

	assert_int_equal(virtio_balloon_set_target(x->vd, 0), -1);
	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE + 1), -1);
	assert_int_equal(virtio_balloon_set_target(x->vd, UINT64_MAX), -1);
	assert_int_equal(x->f.config_changes, 3);
	assert_int_equal(cfg32(x, 0), 0);
}

static void test_config_write(void **state)
{
	struct vq_fixture *x = *state;

	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE / 2), 0);
	vqd_activate(&x->d, x->vd, 0);
	config_write(x, 4, 1234, 4);
	assert_int_equal(cfg32(x, 4), 1234);
	assert_int_equal(info(x).actual_pages, 1234);
	/* num_pages is the device's: writes are undone. */
	config_write(x, 0, 7, 4);
	assert_int_equal(cfg32(x, 0), (RAM_SIZE / 2) / 4096);
	config_write(x, 2, 0xffff, 2);
	assert_int_equal(cfg32(x, 0), (RAM_SIZE / 2) / 4096);
	/* A byte-wide write into 'actual'. */
	config_write(x, 5, 0x01, 1);
	assert_int_equal(info(x).actual_pages, 1234 % 256 + 256);
	/* A driver claiming more than RAM: reported as all of RAM (`info` said RAM minus it, wrapped),
	 * while the config keeps what it wrote. */
	config_write(x, 4, 0xffffffff, 4);
	assert_int_equal(cfg32(x, 4), 0xffffffff);
	assert_int_equal(info(x).actual_pages, RAM_SIZE / 4096);
	config_write(x, 4, RAM_SIZE / 4096 + 1, 4);
	assert_int_equal(info(x).actual_pages, RAM_SIZE / 4096);
	config_write(x, 4, RAM_SIZE / 4096, 4);
	assert_int_equal(info(x).actual_pages, RAM_SIZE / 4096);
}

/* Post a stats buffer with (tag, value) entries and `extra` stray bytes. */
static uint16_t add_stats(struct vq_fixture *x, const uint16_t *tag, const uint64_t *val, unsigned n,
			  unsigned extra)
{
	struct vq_seg s = { vqd_alloc(&x->d, 10 * n + extra), 10 * n + extra, false };

	for (unsigned i = 0; i < n; i++) {
		vqd_put16(&x->d, s.gpa + 10ULL * i, tag[i]);
		vqd_put64(&x->d, s.gpa + 10ULL * i + 2, val[i]);
	}
	for (unsigned i = 0; i < extra; i++)
		*vqd_host(&x->d, s.gpa + 10ULL * n + i, 1) = 0x5a;
	return vqd_add_chain(&x->d, VIRTIO_BALLOON_STATSQ, &s, 1);
}

static void test_stats(void **state)
{
	struct vq_fixture *x = *state;
	uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT, 100, 15, 0xffff,
			    VIRTIO_BALLOON_S_MAJFLT };
	uint64_t vals[] = { 111, 222, 333, 444, 555, 666 };
	uint16_t tags2[] = { VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_AVAIL };
	uint64_t vals2[] = { 1000, 2000 };
	uint32_t id, len;
	uint16_t head;
	struct balloon_info bi;

	assert_false(info(x).stats_valid);
	vqd_activate(&x->d, x->vd, F_STATS);
	head = add_stats(x, tags, vals, 6, 7);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	/* Held, not returned. */
	assert_false(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(x->f.notified[VIRTIO_BALLOON_STATSQ], 0);
	bi = info(x);
	assert_true(bi.stats_valid);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_MEMFREE], 111);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_MEMTOT], 222);
	assert_int_equal(bi.stats[15], 444);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_MAJFLT], 666);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_SWAP_IN], 0);
	assert_true(bi.stats_age_ms < 1000);

	/* Request fresh stats: the buffer goes back empty. */
	assert_true(virtio_balloon_request_stats(x->vd));
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_int_equal(x->f.notified[VIRTIO_BALLOON_STATSQ], 1);
	assert_false(virtio_balloon_request_stats(x->vd)); /* nothing held now */
	assert_false(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));

	/* The driver refills it: a full new snapshot. */
	head = add_stats(x, tags2, vals2, 2, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	bi = info(x);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_MEMFREE], 1000);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_AVAIL], 2000);
	assert_int_equal(bi.stats[VIRTIO_BALLOON_S_MEMTOT], 0);

	/* The periodic timer on the device loop hands it back too. */
	assert_int_equal(virtio_balloon_set_stats_interval(x->vd, 20), 0);
	assert_true(loop_run_once(x->vd->loop, 2000) >= 1);
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	/* Nothing held: the next tick is a no-op. */
	assert_true(loop_run_once(x->vd->loop, 2000) >= 1);
	assert_false(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(virtio_balloon_set_stats_interval(x->vd, 0), 0);
	assert_int_equal(loop_run_once(x->vd->loop, 60), 0);
	assert_false(virtio_is_broken(x->vd));
}

static void test_stats_odd(void **state)
{
	struct vq_fixture *x = *state;
	uint16_t tag[80];
	uint64_t val[80];
	uint16_t h1, h2;
	uint32_t id, len;
	struct vq_seg wr = { vqd_alloc(&x->d, 64), 64, true };
	struct balloon_info bi;

	for (unsigned i = 0; i < 80; i++) {
		tag[i] = (uint16_t)(i % 20);
		val[i] = i;
	}
	vqd_activate(&x->d, x->vd, F_STATS);
	/* 80 entries: only the first 64 are looked at (tag 3 last at entry 63). */
	h1 = add_stats(x, tag, val, 80, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	bi = info(x);
	assert_int_equal(bi.stats[3], 63);
	assert_int_equal(bi.stats[4], 44);
	/* A second buffer while one is held: the old one is returned, the new kept. */
	h2 = vqd_add_chain(&x->d, VIRTIO_BALLOON_STATSQ, &wr, 1);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(id, h1);
	/* That one had no readable entries: the last stats stay. */
	assert_int_equal(info(x).stats[3], 63);
	assert_true(virtio_balloon_request_stats(x->vd));
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(id, h2);
}

static void test_stats_not_negotiated(void **state)
{
	struct vq_fixture *x = *state;
	uint16_t tag = VIRTIO_BALLOON_S_MEMFREE;
	uint64_t val = 5;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, 0);
	add_stats(x, &tag, &val, 1, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	assert_false(info(x).stats_valid);
	assert_false(virtio_balloon_request_stats(x->vd));
	assert_false(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	/* The timer stays off without a stats queue. */
	assert_int_equal(virtio_balloon_set_stats_interval(x->vd, 10), 0);
	assert_int_equal(loop_run_once(x->vd->loop, 60), 0);
}

static void test_malformed(void **state)
{
	struct vq_fixture *x = *state;
	struct vq_seg bad = { RAM_SIZE - 4, 64, false };

	vqd_activate(&x->d, x->vd, 0);
	vqd_add_chain(&x->d, VIRTIO_BALLOON_INFLATEQ, &bad, 1);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	assert_int_equal(vqd_used_idx(&x->d, 0), 0);
}

static void test_reset(void **state)
{
	struct vq_fixture *x = *state;
	uint16_t tag = VIRTIO_BALLOON_S_MEMFREE;
	uint64_t val = 5;
	uint32_t pfn = (uint32_t)(PAGES_GPA >> 12), id, len;
	struct balloon_info bi;

	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE / 4), 0);
	vqd_activate(&x->d, x->vd, F_STATS);
	assert_int_equal(virtio_balloon_set_stats_interval(x->vd, 10), 0);
	add_stats(x, &tag, &val, 1, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	add_pfns(x, VIRTIO_BALLOON_INFLATEQ, &pfn, 1, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	config_write(x, 4, 1, 4);
	transport_reset(x);

	bi = info(x);
	assert_int_equal(bi.target_pages, (RAM_SIZE - RAM_SIZE / 4) / 4096);
	assert_int_equal(bi.actual_pages, 0);
	assert_int_equal(bi.inflated_pages, 0);
	assert_false(bi.stats_valid);
	assert_int_equal(cfg32(x, 0), bi.target_pages);
	assert_int_equal(cfg32(x, 4), 0);
	/* The held buffer is gone: never pushed, by request or by timer. */
	assert_false(virtio_balloon_request_stats(x->vd));
	assert_int_equal(loop_run_once(x->vd->loop, 60), 0);
	assert_false(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(x->f.notified[VIRTIO_BALLOON_STATSQ], 0);

	/* A new driver starts over; the timer comes back with it. */
	vqd_forget(&x->d);
	vqd_put16(&x->d, x->d.q[VIRTIO_BALLOON_STATSQ].used_gpa + 2, 0);
	vqd_put16(&x->d, x->d.q[VIRTIO_BALLOON_STATSQ].avail_gpa + 2, 0);
	vqd_activate(&x->d, x->vd, F_STATS);
	add_stats(x, &tag, &val, 1, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	assert_true(loop_run_once(x->vd->loop, 2000) >= 1);
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
}

/* Copy what the transport would save for the queues and config, then the device. */
static void save_all(struct virtio_dev *vd, struct ser_writer *w)
{
	pthread_mutex_lock(&vd->lock);
	for (unsigned q = 0; q < vd->num_queues; q++)
		virtq_save(&vd->vqs[q], w);
	ser_put_bytes(w, vd->config, vd->config_size);
	vd->ops->save(vd, w);
	pthread_mutex_unlock(&vd->lock);
}

static int load_all(struct vq_fixture *x, struct virtio_dev *vd, uint64_t features,
		    const struct ser_writer *w)
{
	struct ser_reader r;
	int ret = 0;

	ser_reader_init(&r, w->buf, w->len);
	pthread_mutex_lock(&vd->lock);
	vd->features = features | 1ULL << VIRTIO_F_VERSION_1;
	vd->activated = true;
	for (unsigned q = 0; q < vd->num_queues && ret == 0; q++)
		ret = virtq_load(&vd->vqs[q], &x->ram.mem, &r);
	ser_get_bytes(&r, vd->config, vd->config_size);
	if (ret == 0)
		ret = vd->ops->load(vd, &r);
	if (ret == 0 && !ser_reader_done(&r))
		ret = -1;
	pthread_mutex_unlock(&vd->lock);
	return ret;
}

static void test_save_load(void **state)
{
	struct vq_fixture *x = *state;
	uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_CACHES };
	uint64_t vals[] = { 77, 88 };
	uint32_t pfn[5], id, len;
	uint16_t head;
	struct ser_writer w, bad;
	struct virtio_dev *vd2;
	struct vq_transport f2;
	struct balloon_info a, b;

	for (unsigned i = 0; i < 5; i++)
		pfn[i] = (uint32_t)(PAGES_GPA >> 12) + i;
	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE / 2), 0);
	vqd_activate(&x->d, x->vd, F_STATS);
	head = add_stats(x, tags, vals, 2, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_STATSQ);
	add_pfns(x, VIRTIO_BALLOON_INFLATEQ, pfn, 5, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_INFLATEQ);
	add_pfns(x, VIRTIO_BALLOON_DEFLATEQ, pfn, 2, 0);
	vqd_kick(x->vd, VIRTIO_BALLOON_DEFLATEQ);
	config_write(x, 4, 3, 4);

	a = info(x); /* before the save: the saved age can only be older */
	ser_writer_init(&w);
	save_all(x->vd, &w);
	assert_false(w.err);

	/* Restore into a fresh device (the same RAM stands for the restored RAM). */
	vd2 = virtio_balloon_create(&x->ram.mem, 1);
	assert_non_null(vd2);
	memset(&f2, 0, sizeof(f2));
	vq_transport_attach(&f2, vd2);
	assert_int_equal(load_all(x, vd2, F_STATS, &w), 0);
	virtio_balloon_info(vd2, &b);
	assert_int_equal(b.target_pages, a.target_pages);
	assert_int_equal(b.target_pages, (RAM_SIZE / 2) / 4096);
	assert_int_equal(b.actual_pages, 3);
	assert_int_equal(b.inflated_pages, 3);
	assert_true(b.stats_valid);
	assert_int_equal(b.stats[VIRTIO_BALLOON_S_MEMFREE], 77);
	assert_int_equal(b.stats[VIRTIO_BALLOON_S_CACHES], 88);
	assert_true(b.stats_age_ms >= a.stats_age_ms && b.stats_age_ms < 1000);
	assert_memory_equal(vd2->config, x->vd->config, 8);

	/* The held stats buffer survives: the restored device hands it back. */
	assert_true(virtio_balloon_request_stats(vd2));
	assert_true(vqd_next_used(&x->d, VIRTIO_BALLOON_STATSQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_int_equal(f2.notified[VIRTIO_BALLOON_STATSQ], 1);

	/* Truncated or wrong-version state is refused. */
	ser_writer_init(&bad);
	ser_put_bytes(&bad, w.buf, w.len - 3);
	assert_int_equal(load_all(x, vd2, F_STATS, &bad), -1);
	bad.len = 0;
	bad.err = false;
	ser_put_bytes(&bad, w.buf, w.len);
	bad.buf[w.len - (4 + 4 + 4 + 8 * 3 + 1 + 2 + 1 + 8 * VIRTIO_BALLOON_S_NR + 8)] = 9; /* version */
	assert_int_equal(load_all(x, vd2, F_STATS, &bad), -1);
	ser_writer_free(&bad);
	vd2->ops->destroy(vd2);
	ser_writer_free(&w);
}

/* Without a stats queue, a snapshot holds no buffer and loads the same. */
static void test_save_load_no_stats(void **state)
{
	struct vq_fixture *x = *state;
	struct ser_writer w;
	struct virtio_dev *vd2;
	struct balloon_info b;

	assert_int_equal(virtio_balloon_set_target(x->vd, RAM_SIZE - 8 * PG), 0);
	vqd_activate(&x->d, x->vd, 0);
	ser_writer_init(&w);
	save_all(x->vd, &w);
	vd2 = virtio_balloon_create(&x->ram.mem, 1);
	assert_non_null(vd2);
	vq_transport_attach(&x->f, vd2);
	assert_int_equal(load_all(x, vd2, 0, &w), 0);
	virtio_balloon_info(vd2, &b);
	assert_int_equal(b.target_pages, 8);
	assert_false(b.stats_valid);
	assert_false(virtio_balloon_request_stats(vd2));
	vd2->ops->destroy(vd2);
	ser_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_inflate_releases_pages, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_invalid_pfns, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_odd_buffers, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_deflate, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_set_target, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_config_write, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_stats, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_stats_odd, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_stats_not_negotiated, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_malformed, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_reset, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load_no_stats, setup, vq_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
