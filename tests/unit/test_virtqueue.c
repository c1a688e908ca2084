/* Unit tests for the split virtqueue (virtio/virtqueue.c).
 *
 * A fake guest RAM (two regions with a hole between them); vq_driver.h lays
 * out rings and descriptor chains the way a driver would. Malformed
 * chains must come back as VIRTQ_ERR; the tests finishing at all shows that
 * no malformed input makes virtq_pop() loop forever. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/virtqueue.h"
#include "vq_driver.h"

#define LOW_SIZE  0x40000ULL  /* region 0: [0, 256 KiB) */
#define HIGH_GPA  0x100000ULL /* region 1: [1 MiB, 1 MiB + 64 KiB) */
#define HIGH_SIZE 0x10000ULL

#define QSZ       256
#define DESC_GPA  0x1000ULL /* 16 * 256 = 0x1000 bytes */
#define AVAIL_GPA 0x2000ULL
#define USED_GPA  0x3000ULL
#define IND_GPA   0x6000ULL  /* indirect tables */
#define BUF_GPA   0x10000ULL /* data buffers */

struct ctx {
	struct fake_ram ram;
	struct vq_driver d; /* the driver's side of queue 0, kept in step with q */
	struct virtq q;
	struct virtq_chain c;
};

/* A single readable descriptor at head 0, made available. */
static void simple_chain(struct ctx *x)
{
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 64, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
}

static int pop(struct ctx *x)
{
	return virtq_pop(&x->q, &x->c);
}

/* ---- fixtures ---- */

/* (Re-)enable with new ring parameters, the driver starting over on them;
 * returns virtq_enable's result. */
static int reenable(struct ctx *x, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	vqd_queue_at(&x->d, 0, size, desc, avail, used);
	x->q.size = size;
	x->q.desc_gpa = desc;
	x->q.avail_gpa = avail;
	x->q.used_gpa = used;
	return virtq_enable(&x->q, &x->ram.mem);
}

static int setup(void **state)
{
	static const struct mem_region layout[2] = {
		{ .gpa = 0, .size = LOW_SIZE },
		{ .gpa = HIGH_GPA, .size = HIGH_SIZE },
	};
	struct ctx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	fake_ram_init(&x->ram, layout, 2);
	vqd_init(&x->d, &x->ram.mem, BUF_GPA, LOW_SIZE);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	*state = x;
	return 0;
}

static int setup_indirect(void **state)
{
	setup(state);
	((struct ctx *)*state)->q.indirect = true;
	return 0;
}

static int setup_event_idx(void **state)
{
	setup(state);
	((struct ctx *)*state)->q.event_idx = true;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	fake_ram_free(&x->ram);
	free(x);
	return 0;
}

/* ---- enable ---- */

static void test_enable_ok(void **state)
{
	struct ctx *x = *state;

	assert_true(x->q.enabled);
	assert_ptr_equal(x->q.desc, x->ram.buf + DESC_GPA);
	assert_ptr_equal(x->q.avail, x->ram.buf + AVAIL_GPA);
	assert_ptr_equal(x->q.used, x->ram.buf + USED_GPA);
	assert_int_equal(pop(x), VIRTQ_EMPTY);
	assert_false(virtq_has_work(&x->q));
	/* Smallest queue, and the largest one; rings in the high region. */
	assert_int_equal(reenable(x, 1, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	assert_int_equal(reenable(x, VIRTQ_MAX_SIZE, 0x8000, 0x10000, 0x11000), 0);
	assert_int_equal(reenable(x, 2, HIGH_GPA, HIGH_GPA + 0x20, HIGH_GPA + 0x40), 0);
	assert_ptr_equal(x->q.desc, x->ram.buf + LOW_SIZE);
	/* A ring ending exactly at the end of RAM (avail of 2: 10 bytes). */
	assert_int_equal(reenable(x, 2, DESC_GPA, HIGH_GPA + HIGH_SIZE - 10, USED_GPA), 0);
}

static void test_enable_bad_size(void **state)
{
	struct ctx *x = *state;

	assert_int_equal(reenable(x, 0, DESC_GPA, AVAIL_GPA, USED_GPA), -1);
	assert_false(x->q.enabled);
	assert_null(x->q.desc);
	assert_int_equal(reenable(x, 3, DESC_GPA, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, 255, DESC_GPA, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, 2 * VIRTQ_MAX_SIZE, DESC_GPA, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, 0x8000, DESC_GPA, AVAIL_GPA, USED_GPA), -1);
	/* A disabled queue has no work and pops nothing. */
	assert_int_equal(pop(x), VIRTQ_EMPTY);
	assert_false(virtq_has_work(&x->q));
}

static void test_enable_misaligned(void **state)
{
	struct ctx *x = *state;

	assert_int_equal(reenable(x, QSZ, DESC_GPA + 8, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA + 1, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA + 1, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA + 2), -1);
	/* The minimum alignments themselves are fine. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4), 0);
}

static void test_enable_outside_ram(void **state)
{
	struct ctx *x = *state;
	const uint64_t used_len = 6 + 8 * QSZ;

	/* In the hole, beyond RAM, at the top of the address space. */
	assert_int_equal(reenable(x, QSZ, LOW_SIZE, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, HIGH_GPA + HIGH_SIZE, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, 0xfffffffffffff000ULL), -1);
	assert_int_equal(reenable(x, QSZ, 0xfffffffffffffff0ULL, AVAIL_GPA, USED_GPA), -1);
	/* Running off the end of a region by one byte (used_event/avail_event
	 * included in the lengths). */
	assert_int_equal(reenable(x, QSZ, LOW_SIZE - 16 * QSZ + 16, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, LOW_SIZE - (6 + 2 * QSZ) + 2, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, HIGH_GPA + HIGH_SIZE - used_len + 2), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, HIGH_GPA + HIGH_SIZE - used_len - 2), 0);
}

static void test_enable_straddle(void **state)
{
	static const struct mem_region adjacent[2] = {
		{ .gpa = 0, .size = 0x8000 },
		{ .gpa = 0x8000, .size = 0x8000 }, /* contiguous gpa, separate region */
	};
	struct ctx *x = *state;

	guest_mem_init_static(&x->ram.mem, x->ram.buf, adjacent, 2);
	assert_int_equal(reenable(x, QSZ, 0x7800, AVAIL_GPA, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, 0x7f00, USED_GPA), -1);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, 0x7800), -1);
	assert_int_equal(reenable(x, QSZ, 0x7000, 0x8000, 0x9000), 0);
}

/* ---- well-formed chains ---- */

static void test_single(void **state)
{
	struct ctx *x = *state;

	memset(vqd_host(&x->d, BUF_GPA, 64), 0xab, 64);
	simple_chain(x);
	assert_true(virtq_has_work(&x->q));
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 0);
	assert_int_equal(x->c.n_out, 1);
	assert_int_equal(x->c.n_in, 0);
	assert_int_equal(x->c.out_len, 64);
	assert_int_equal(x->c.in_len, 0);
	assert_ptr_equal(x->c.iov[0].iov_base, x->ram.buf + BUF_GPA);
	assert_int_equal(x->c.iov[0].iov_len, 64);
	assert_int_equal(x->q.last_avail, 1);
	assert_false(virtq_has_work(&x->q));
	assert_int_equal(pop(x), VIRTQ_EMPTY);
}

static void test_multi(void **state)
{
	struct ctx *x = *state;
	uint32_t id, len;

	/* head 5: readable 16 @BUF -> readable 100 in the high region ->
	 * writable 512 -> writable 1; unaligned addresses on purpose. */
	vqd_set_desc(&x->d, 0, 5, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 9);
	vqd_set_desc(&x->d, 0, 9, HIGH_GPA + 3, 100, VIRTQ_DESC_F_NEXT, 200);
	vqd_set_desc(&x->d, 0, 200, BUF_GPA + 0x1001, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 255);
	vqd_set_desc(&x->d, 0, 255, BUF_GPA + 0x2000, 1, VIRTQ_DESC_F_WRITE, 7); /* no NEXT: 7 ignored */
	vqd_set_desc(&x->d, 0, 7, 0, 0, 0, 300);                                 /* garbage never read */
	vqd_avail_add(&x->d, 0, 5);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 5);
	assert_int_equal(x->c.n_out, 2);
	assert_int_equal(x->c.n_in, 2);
	assert_int_equal(x->c.out_len, 116);
	assert_int_equal(x->c.in_len, 513);
	assert_ptr_equal(x->c.iov[0].iov_base, x->ram.buf + BUF_GPA);
	assert_ptr_equal(x->c.iov[1].iov_base, x->ram.buf + LOW_SIZE + 3);
	assert_int_equal(x->c.iov[1].iov_len, 100);
	assert_ptr_equal(x->c.iov[2].iov_base, x->ram.buf + BUF_GPA + 0x1001);
	assert_int_equal(x->c.iov[2].iov_len, 512);
	assert_ptr_equal(x->c.iov[3].iov_base, x->ram.buf + BUF_GPA + 0x2000);

	virtq_push(&x->q, x->c.head, 513);
	assert_int_equal(vqd_used_idx(&x->d, 0), 1);
	vqd_used_elem(&x->d, 0, 0, &id, &len);
	assert_int_equal(id, 5);
	assert_int_equal(len, 513);
}

static void test_write_only_and_zero_len(void **state)
{
	struct ctx *x = *state;

	/* Only writable segments; zero-length descriptors (with any address)
	 * produce no iovec entries. */
	vqd_set_desc(&x->d, 0, 0, 0xdead0000000ULL, 0, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	vqd_set_desc(&x->d, 0, 2, 0xffffffffffffffffULL, 0, VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.n_out, 0);
	assert_int_equal(x->c.n_in, 1);
	assert_int_equal(x->c.in_len, 8);
	assert_ptr_equal(x->c.iov[0].iov_base, x->ram.buf + BUF_GPA);
}

static void test_full_length_chain(void **state)
{
	struct ctx *x = *state;

	/* A chain using every descriptor in the table is legal. */
	for (unsigned i = 0; i < QSZ; i++)
		vqd_set_desc(&x->d, 0, i, BUF_GPA + i, 1, i + 1 < QSZ ? VIRTQ_DESC_F_NEXT : 0,
			     (uint16_t)(i + 1));
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.n_out, QSZ);
	assert_int_equal(x->c.out_len, QSZ);
}

static void test_several_and_wrap(void **state)
{
	struct ctx *x = *state;
	uint32_t id, len;

	/* Start the free-running 16-bit indexes just below the wrap. */
	x->q.last_avail = 65533;
	x->q.used_idx = 65533;
	vqd_put16(&x->d, USED_GPA + 2, 65533);
	x->d.q[0].avail_idx = 65533;
	for (unsigned i = 0; i < 6; i++) {
		vqd_set_desc(&x->d, 0, i, BUF_GPA + 0x100 * i, 10 + i, VIRTQ_DESC_F_WRITE, 0);
		vqd_avail_add(&x->d, 0, (uint16_t)i);
	}
	assert_int_equal(vqd_get16(&x->d, AVAIL_GPA + 2), 3);
	for (unsigned i = 0; i < 6; i++) {
		assert_true(virtq_has_work(&x->q));
		assert_int_equal(pop(x), VIRTQ_OK);
		assert_int_equal(x->c.head, i);
		assert_int_equal(x->c.in_len, 10 + i);
		assert_ptr_equal(x->c.iov[0].iov_base, x->ram.buf + BUF_GPA + 0x100 * i);
		virtq_push(&x->q, x->c.head, 10 + i);
	}
	assert_int_equal(pop(x), VIRTQ_EMPTY);
	assert_int_equal(x->q.last_avail, 3);
	assert_int_equal(vqd_used_idx(&x->d, 0), 3);
	for (unsigned i = 0; i < 6; i++) {
		vqd_used_elem(&x->d, 0, (uint16_t)(65533 + i), &id, &len);
		assert_int_equal(id, i);
		assert_int_equal(len, 10 + i);
	}
}

static void test_unpop(void **state)
{
	struct ctx *x = *state;

	simple_chain(x);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 1);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 0);
	virtq_unpop(&x->q);
	assert_int_equal(x->q.last_avail, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 1);
	virtq_unpop(&x->q);
	assert_true(virtq_has_work(&x->q));
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 1);
	assert_int_equal(pop(x), VIRTQ_EMPTY);
	/* Unpop across the 16-bit wrap. */
	x->q.last_avail = 0;
	virtq_unpop(&x->q);
	assert_int_equal(x->q.last_avail, 65535);
}

static void test_chain_read_write(void **state)
{
	struct ctx *x = *state;
	uint8_t out[32], in[32];
	uint8_t *a = vqd_host(&x->d, BUF_GPA, 3), *b = vqd_host(&x->d, BUF_GPA + 0x100, 5);
	uint8_t *w1 = vqd_host(&x->d, BUF_GPA + 0x200, 4), *w2 = vqd_host(&x->d, BUF_GPA + 0x300, 6);

	memcpy(a, "abc", 3);
	memcpy(b, "defgh", 5);
	memset(w1, 0, 4);
	memset(w2, 0, 6);
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 3, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA + 0x100, 5, VIRTQ_DESC_F_NEXT, 2);
	vqd_set_desc(&x->d, 0, 2, BUF_GPA + 0x200, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
	vqd_set_desc(&x->d, 0, 3, BUF_GPA + 0x300, 6, VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);

	memset(out, 0, sizeof(out));
	assert_int_equal(virtq_chain_read(&x->c, 0, out, sizeof(out)), 8);
	assert_memory_equal(out, "abcdefgh", 8);
	assert_int_equal(virtq_chain_read(&x->c, 2, out, 4), 4); /* across the boundary */
	assert_memory_equal(out, "cdef", 4);
	assert_int_equal(virtq_chain_read(&x->c, 3, out, 2), 2); /* starts at segment 2 */
	assert_memory_equal(out, "de", 2);
	assert_int_equal(virtq_chain_read(&x->c, 7, out, 10), 1);
	assert_int_equal(out[0], 'h');
	assert_int_equal(virtq_chain_read(&x->c, 8, out, 10), 0);
	assert_int_equal(virtq_chain_read(&x->c, UINT64_MAX, out, 10), 0);
	assert_int_equal(virtq_chain_read(&x->c, 0, out, 0), 0);

	memcpy(in, "0123456789", 10);
	assert_int_equal(virtq_chain_write(&x->c, 2, in, 5), 5);
	assert_memory_equal(w1,
			    "\0\0"
			    "01",
			    4);
	assert_memory_equal(w2, "234\0\0\0", 6);
	assert_int_equal(virtq_chain_write(&x->c, 0, in, 32), 10);
	assert_memory_equal(w1, "0123", 4);
	assert_memory_equal(w2, "456789", 6);
	assert_int_equal(virtq_chain_write(&x->c, 10, in, 1), 0);
	/* Readable segments are never written. */
	assert_memory_equal(a, "abc", 3);
	assert_memory_equal(b, "defgh", 5);
}

/* ---- indirect descriptors ---- */

static void test_indirect(void **state)
{
	struct ctx *x = *state;

	/* Table entries chained out of order: 0 -> 2 -> 1. */
	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 12, VIRTQ_DESC_F_NEXT, 2);
	vqd_set_desc_at(&x->d, IND_GPA, 2, BUF_GPA + 0x100, 20, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc_at(&x->d, IND_GPA, 1, BUF_GPA + 0x200, 30, VIRTQ_DESC_F_WRITE, 0);
	/* The WRITE flag on the indirect descriptor itself is ignored. */
	vqd_set_desc(&x->d, 0, 4, IND_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 4);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 4);
	assert_int_equal(x->c.n_out, 2);
	assert_int_equal(x->c.n_in, 1);
	assert_int_equal(x->c.out_len, 32);
	assert_int_equal(x->c.in_len, 30);
	assert_ptr_equal(x->c.iov[1].iov_base, x->ram.buf + BUF_GPA + 0x100);
	assert_ptr_equal(x->c.iov[2].iov_base, x->ram.buf + BUF_GPA + 0x200);
}

static void test_indirect_after_direct(void **state)
{
	struct ctx *x = *state;

	/* Direct descriptors followed by one indirect (2.7.5.3.2), with an
	 * unaligned table in the high region. */
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, HIGH_GPA + 0x101, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_set_desc_at(&x->d, HIGH_GPA + 0x101, 0, BUF_GPA + 8, 8, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc_at(&x->d, HIGH_GPA + 0x101, 1, BUF_GPA + 16, 8, VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.n_out, 2);
	assert_int_equal(x->c.n_in, 1);
	assert_ptr_equal(x->c.iov[2].iov_base, x->ram.buf + BUF_GPA + 16);
}

static void test_indirect_max(void **state)
{
	struct ctx *x = *state;

	/* A VIRTQ_MAX_SEGS-entry table is accepted (larger than the queue). */
	for (unsigned i = 0; i < VIRTQ_MAX_SEGS; i++)
		vqd_set_desc_at(&x->d, IND_GPA, i, BUF_GPA + i, 1,
				i + 1 < VIRTQ_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 16 * VIRTQ_MAX_SEGS, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.n_out, VIRTQ_MAX_SEGS);
	assert_int_equal(x->c.out_len, VIRTQ_MAX_SEGS);
}

static void test_indirect_not_negotiated(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 12, 0, 0);
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_ERR);
}

/* ---- notification suppression ---- */

static void test_no_interrupt(void **state)
{
	struct ctx *x = *state;

	simple_chain(x);
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 0);
	assert_true(virtq_should_notify(&x->q));
	vqd_set_avail_flags(&x->d, 0, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_should_notify(&x->q));
	vqd_set_avail_flags(&x->d, 0, 0);
	assert_true(virtq_should_notify(&x->q));
}

static void test_set_notification_flags(void **state)
{
	struct ctx *x = *state;

	vqd_put16(&x->d, USED_GPA, 0);
	assert_false(virtq_set_notification(&x->q, false));
	assert_int_equal(vqd_used_flags(&x->d, 0), VIRTQ_USED_F_NO_NOTIFY);
	assert_false(virtq_set_notification(&x->q, true)); /* nothing pending */
	assert_int_equal(vqd_used_flags(&x->d, 0), 0);
	virtq_set_notification(&x->q, false);
	simple_chain(x); /* arrives while off */
	assert_true(virtq_set_notification(&x->q, true));
	assert_int_equal(vqd_used_flags(&x->d, 0), 0);
}

static void test_event_idx_notify(void **state)
{
	struct ctx *x = *state;

	for (unsigned i = 0; i < 8; i++) {
		vqd_set_desc(&x->d, 0, i, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
		vqd_avail_add(&x->d, 0, (uint16_t)i);
	}
	/* The first notification after enable always goes, whatever used_event
	 * says. */
	vqd_set_used_event(&x->d, 0, 100);
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 1 */
	assert_true(virtq_should_notify(&x->q));
	/* used_event = 2: the driver wants an interrupt once used->idx passes 2. */
	vqd_set_used_event(&x->d, 0, 2);
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 2 */
	assert_false(virtq_should_notify(&x->q));
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 3: crosses event */
	assert_true(virtq_should_notify(&x->q));
	assert_false(virtq_should_notify(&x->q)); /* nothing new since */
	/* Several pushes between checks: notify iff used_event in (old, new]. */
	vqd_set_used_event(&x->d, 0, 4);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(pop(x), VIRTQ_OK);
		virtq_push(&x->q, x->c.head, 4); /* used 4, 5, 6 */
	}
	assert_true(virtq_should_notify(&x->q));
	vqd_set_used_event(&x->d, 0, 5); /* already behind */
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 7 */
	assert_false(virtq_should_notify(&x->q));
	/* The flag is ignored with EVENT_IDX. */
	vqd_set_used_event(&x->d, 0, 7);
	vqd_set_avail_flags(&x->d, 0, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 8 */
	assert_true(virtq_should_notify(&x->q));
}

static void test_event_idx_wrap(void **state)
{
	struct ctx *x = *state;

	x->q.last_avail = x->q.used_idx = 65534;
	x->d.q[0].avail_idx = 65534;
	x->q.signalled_used = 65534;
	x->q.signalled_used_valid = true;
	for (unsigned i = 0; i < 3; i++) {
		vqd_set_desc(&x->d, 0, i, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
		vqd_avail_add(&x->d, 0, (uint16_t)i);
	}
	vqd_set_used_event(&x->d, 0, 65535); /* interrupt when used->idx passes 65535 */
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 65535 */
	assert_false(virtq_should_notify(&x->q));
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, x->c.head, 4); /* used 0 */
	assert_true(virtq_should_notify(&x->q));
}

static void test_event_idx_avail_event(void **state)
{
	struct ctx *x = *state;

	vqd_put16(&x->d, USED_GPA, 0);
	simple_chain(x);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 4, 0, 0);
	vqd_avail_add(&x->d, 0, 1);
	assert_true(virtq_set_notification(&x->q, true));
	assert_int_equal(vqd_avail_event(&x->d, 0), 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_false(virtq_set_notification(&x->q, false));
	assert_int_equal(vqd_avail_event(&x->d, 0), 0); /* disabling leaves it */
	assert_false(virtq_set_notification(&x->q, true));
	assert_int_equal(vqd_avail_event(&x->d, 0), 2);
	assert_int_equal(vqd_used_flags(&x->d, 0), 0); /* flags untouched */
}

/* ---- malformed rings and chains: VIRTQ_ERR, promptly ---- */

static void expect_err(struct ctx *x)
{
	assert_int_equal(pop(x), VIRTQ_ERR);
	assert_int_equal(x->c.n_out + x->c.n_in, 0);
	/* The queue stays unusable until reset, even if the driver repairs it. */
	assert_int_equal(pop(x), VIRTQ_ERR);
	assert_false(virtq_has_work(&x->q));
}

static void test_bad_head(void **state)
{
	struct ctx *x = *state;

	vqd_avail_add(&x->d, 0, QSZ);
	expect_err(x);
	assert_int_equal(x->q.last_avail, 0);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_avail_add(&x->d, 0, 0xffff);
	expect_err(x);
}

static void test_bad_next(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, QSZ);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_desc_outside_ram(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 0, LOW_SIZE, 8, 0, 0); /* in the hole */
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, HIGH_GPA + HIGH_SIZE, 1, VIRTQ_DESC_F_WRITE, 0); /* past the end */
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_desc_wrap(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 0, 0xfffffffffffffff0ULL, 0x20, 0, 0); /* addr + len wraps to RAM */
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_desc_len_past_end(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 0, HIGH_GPA + HIGH_SIZE - 16, 17, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, LOW_SIZE - 16, 32, 0, 0); /* would straddle the hole */
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, HIGH_GPA + HIGH_SIZE - 16, 16, 0, 0); /* exactly to the end: fine */
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
}

static void test_loop(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_self_loop(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 3, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
	vqd_avail_add(&x->d, 0, 3);
	expect_err(x);
	/* Also with zero-length descriptors, which add no iovecs. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 3, 0, 0, VIRTQ_DESC_F_NEXT, 3);
	vqd_avail_add(&x->d, 0, 3);
	expect_err(x);
}

static void test_too_long_small_queue(void **state)
{
	struct ctx *x = *state;

	/* Queue of 4: a 5-step chain must revisit a descriptor. */
	assert_int_equal(reenable(x, 4, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 2);
	vqd_set_desc(&x->d, 0, 2, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 3);
	vqd_set_desc(&x->d, 0, 3, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 1);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_too_many_segments(void **state)
{
	struct ctx *x = *state;

	/* Direct + indirect buffers together over VIRTQ_MAX_SEGS. */
	for (unsigned i = 0; i < VIRTQ_MAX_SEGS; i++)
		vqd_set_desc_at(&x->d, IND_GPA, i, BUF_GPA + i, 1,
				i + 1 < VIRTQ_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, IND_GPA, 16 * VIRTQ_MAX_SEGS, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	/* A table with more than VIRTQ_MAX_SEGS entries. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 16 * (VIRTQ_MAX_SEGS + 1), VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_write_then_read(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	vqd_set_desc(&x->d, 0, 2, BUF_GPA, 8, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	/* The same across the direct/indirect boundary. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	x->q.indirect = true;
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	vqd_set_desc(&x->d, 0, 1, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 8, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_indirect_with_next(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 8, 0, 0);
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, BUF_GPA, 8, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_indirect_nested(void **state)
{
	struct ctx *x = *state;

	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc_at(&x->d, IND_GPA, 1, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0); /* itself */
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_indirect_bad_table(void **state)
{
	struct ctx *x = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
		{ IND_GPA, 0 },  /* empty */
		{ IND_GPA, 24 }, /* not a multiple of 16 */
		{ IND_GPA, 15 },
		{ LOW_SIZE - 16, 32 },         /* runs into the hole */
		{ HIGH_GPA + HIGH_SIZE, 16 },  /* beyond RAM */
		{ 0xfffffffffffffff0ULL, 32 }, /* wraps */
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
		vqd_set_desc(&x->d, 0, 0, bad[i].addr, bad[i].len, VIRTQ_DESC_F_INDIRECT, 0);
		vqd_avail_add(&x->d, 0, 0);
		expect_err(x);
	}
}

static void test_indirect_bad_next(void **state)
{
	struct ctx *x = *state;

	/* next inside the queue size but outside the 2-entry table. */
	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	vqd_set_desc_at(&x->d, IND_GPA, 1, BUF_GPA, 8, 0, 0);
	vqd_set_desc_at(&x->d, IND_GPA, 2, BUF_GPA, 8, 0, 0);
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	/* A loop inside the table. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc_at(&x->d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc_at(&x->d, IND_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	/* Bad buffer address inside the table. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc_at(&x->d, IND_GPA, 0, LOW_SIZE + 4, 8, 0, 0);
	vqd_set_desc(&x->d, 0, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
}

static void test_avail_idx_jump(void **state)
{
	struct ctx *x = *state;

	simple_chain(x);
	vqd_put16(&x->d, AVAIL_GPA + 2, QSZ + 1); /* size + 1 ahead */
	expect_err(x);
	/* Exactly size ahead is fine. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_put16(&x->d, AVAIL_GPA + 2, QSZ);
	assert_int_equal(pop(x), VIRTQ_OK);
	/* "Behind" is a huge jump forward in 16-bit arithmetic. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	x->q.last_avail = x->q.used_idx = 10;
	vqd_put16(&x->d, AVAIL_GPA + 2, 9);
	expect_err(x);
}

static void test_too_many_in_flight(void **state)
{
	struct ctx *x = *state;

	/* Queue of 4; the driver offers head 0 over and over without waiting
	 * for it to be used. */
	assert_int_equal(reenable(x, 4, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, BUF_GPA, 8, 0, 0);
	for (unsigned i = 0; i < 4; i++) {
		vqd_avail_add(&x->d, 0, 0);
		assert_int_equal(pop(x), VIRTQ_OK);
	}
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	/* After a push there is room again. */
	assert_int_equal(reenable(x, 4, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	for (unsigned i = 0; i < 4; i++) {
		vqd_avail_add(&x->d, 0, 0);
		assert_int_equal(pop(x), VIRTQ_OK);
	}
	virtq_push(&x->q, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
}

static void test_reset_clears_broken(void **state)
{
	struct ctx *x = *state;

	vqd_avail_add(&x->d, 0, QSZ);
	expect_err(x);
	virtq_reset(&x->q);
	assert_false(x->q.enabled);
	assert_false(x->q.broken);
	assert_int_equal(x->q.size, QSZ); /* kept for the transport */
	assert_int_equal(x->q.desc_gpa, DESC_GPA);
	assert_int_equal(pop(x), VIRTQ_EMPTY);
	memset(vqd_host(&x->d, AVAIL_GPA, 6 + 2 * QSZ), 0, 6 + 2 * QSZ);
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	simple_chain(x);
	assert_int_equal(pop(x), VIRTQ_OK);
}

/* Chains over 4 GiB in total are malformed. Needs a large sparse RAM. */
static void test_chain_over_4g(void **state)
{
	static const struct mem_region big[1] = { { .gpa = 0, .size = 0x100100000ULL } };
	struct ctx *x = *state;
	struct guest_mem m;

	if (guest_mem_alloc(&m, big, 1) < 0) {
		skip();
		return;
	}
	x->ram.mem = m;
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	/* 0xffffffff + 1 overflows 32 bits... */
	vqd_set_desc(&x->d, 0, 0, 0x100000, 0xffffffffU, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, 0x100000, 1, VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	/* ...while exactly 0xffffffff in total is accepted. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, 0x100000, 0xfffffff0U, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, 0x100000, 0xf, VIRTQ_DESC_F_WRITE, 0);
	vqd_avail_add(&x->d, 0, 0);
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.out_len + x->c.in_len, 0xffffffffULL);
	/* Two large readable segments. */
	assert_int_equal(reenable(x, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vqd_set_desc(&x->d, 0, 0, 0x100000, 0x80000000U, VIRTQ_DESC_F_NEXT, 1);
	vqd_set_desc(&x->d, 0, 1, 0x100000, 0x80000000U, 0, 0);
	vqd_avail_add(&x->d, 0, 0);
	expect_err(x);
	guest_mem_free(&m);
}

/* ---- snapshot ---- */

static void test_save_load(void **state)
{
	struct ctx *x = *state;
	struct ser_writer w;
	struct ser_reader r;
	struct virtq q2;

	x->q.event_idx = true;
	x->q.indirect = true;
	for (unsigned i = 0; i < 3; i++) {
		vqd_set_desc(&x->d, 0, i, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
		vqd_avail_add(&x->d, 0, (uint16_t)i);
	}
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(pop(x), VIRTQ_OK);
	virtq_push(&x->q, 0, 4);
	assert_true(virtq_should_notify(&x->q));
	ser_writer_init(&w);
	virtq_save(&x->q, &w);
	assert_false(w.err);

	memset(&q2, 0x5a, sizeof(q2));
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtq_load(&q2, &x->ram.mem, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(q2.size, QSZ);
	assert_int_equal(q2.desc_gpa, DESC_GPA);
	assert_int_equal(q2.avail_gpa, AVAIL_GPA);
	assert_int_equal(q2.used_gpa, USED_GPA);
	assert_true(q2.event_idx);
	assert_true(q2.indirect);
	assert_true(q2.enabled);
	assert_false(q2.broken);
	assert_int_equal(q2.last_avail, 2);
	assert_int_equal(q2.used_idx, 1);
	assert_int_equal(q2.signalled_used, 1);
	assert_true(q2.signalled_used_valid);
	assert_ptr_equal(q2.mem, &x->ram.mem);
	assert_ptr_equal(q2.desc, x->q.desc);
	assert_ptr_equal(q2.avail, x->q.avail);
	assert_ptr_equal(q2.used, x->q.used);
	/* The restored queue carries on where the old one stopped. */
	x->q = q2;
	assert_int_equal(pop(x), VIRTQ_OK);
	assert_int_equal(x->c.head, 2);
	ser_writer_free(&w);

	/* A disabled queue round-trips without address checks. */
	virtq_reset(&x->q);
	x->q.desc_gpa = 0xdeadbeef;
	ser_writer_init(&w);
	virtq_save(&x->q, &w);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtq_load(&q2, &x->ram.mem, &r), 0);
	assert_false(q2.enabled);
	assert_null(q2.desc);
	assert_int_equal(q2.desc_gpa, 0xdeadbeef);
	ser_writer_free(&w);
}

/* Save q, overwrite n bytes of the image at off and drop `truncate` bytes
 * from its end; load must fail and leave the target untouched. */
static void load_fails(struct ctx *x, size_t off, const void *bytes, size_t n, size_t truncate)
{
	struct ser_writer w;
	struct ser_reader r;
	struct virtq q2, before;

	ser_writer_init(&w);
	virtq_save(&x->q, &w);
	assert_true(off + n <= w.len);
	memcpy(w.buf + off, bytes, n);
	memset(&q2, 0x11, sizeof(q2));
	memcpy(&before, &q2, sizeof(q2));
	ser_reader_init(&r, w.buf, w.len - truncate);
	assert_int_equal(virtq_load(&q2, &x->ram.mem, &r), -1);
	assert_memory_equal(&q2, &before, sizeof(q2));
	ser_writer_free(&w);
}

static void test_load_bad(void **state)
{
	struct ctx *x = *state;
	const uint8_t v2 = 2, badflags = 0x80;
	const uint8_t size3[2] = { 3, 0 }, size2k[2] = { 0, 8 }, size0[2] = { 0, 0 };
	const uint8_t odd[8] = { 0x01, 0x10 }, hole[8] = { 0, 0, 0x04 };
	const uint8_t idx_far[2] = { 0x20, 0x01 }; /* last_avail 0x120 */
	/* Image layout: ver u8, flags u8, size u16, desc u64, avail u64,
	 * used u64, last_avail u16, used_idx u16, signalled_used u16. */

	load_fails(x, 0, &v2, 1, 0);
	load_fails(x, 1, &badflags, 1, 0);
	load_fails(x, 2, size3, 2, 0);
	load_fails(x, 2, size2k, 2, 0);
	load_fails(x, 2, size0, 2, 0);
	load_fails(x, 4, odd, 8, 0);      /* desc misaligned */
	load_fails(x, 12, odd, 8, 0);     /* avail misaligned */
	load_fails(x, 20, hole, 8, 0);    /* used in the hole */
	load_fails(x, 28, idx_far, 2, 0); /* > size in flight */
	load_fails(x, 0, &v2, 0, 1);      /* truncated */
	load_fails(x, 0, &v2, 0, 33);
}

int main(void)
{
#define T(f)  cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TI(f) cmocka_unit_test_setup_teardown(f, setup_indirect, teardown)
#define TE(f) cmocka_unit_test_setup_teardown(f, setup_event_idx, teardown)
	const struct CMUnitTest tests[] = {
		T(test_enable_ok),
		T(test_enable_bad_size),
		T(test_enable_misaligned),
		T(test_enable_outside_ram),
		T(test_enable_straddle),
		T(test_single),
		T(test_multi),
		T(test_write_only_and_zero_len),
		T(test_full_length_chain),
		T(test_several_and_wrap),
		T(test_unpop),
		T(test_chain_read_write),
		TI(test_indirect),
		TI(test_indirect_after_direct),
		TI(test_indirect_max),
		T(test_indirect_not_negotiated),
		T(test_no_interrupt),
		T(test_set_notification_flags),
		TE(test_event_idx_notify),
		TE(test_event_idx_wrap),
		TE(test_event_idx_avail_event),
		T(test_bad_head),
		T(test_bad_next),
		T(test_desc_outside_ram),
		T(test_desc_wrap),
		T(test_desc_len_past_end),
		T(test_loop),
		T(test_self_loop),
		T(test_too_long_small_queue),
		TI(test_too_many_segments),
		T(test_write_then_read),
		TI(test_indirect_with_next),
		TI(test_indirect_nested),
		TI(test_indirect_bad_table),
		TI(test_indirect_bad_next),
		T(test_avail_idx_jump),
		T(test_too_many_in_flight),
		T(test_reset_clears_broken),
		T(test_chain_over_4g),
		T(test_save_load),
		T(test_load_bad),
	};
#undef T
#undef TI
#undef TE

	return cmocka_run_group_tests(tests, NULL, NULL);
}
