/* Unit tests for the emulated MSI-X table of a passed-through function (devices/vfio_msix.c):
 * which vectors are routed when, with which message, the PBA, odd accesses and reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/vfio_msix.h"

#define NVEC 4

struct rec {
	bool live[NVEC];
	uint64_t addr[NVEC];
	uint32_t data[NVEC];
	int routes, unroutes;
	bool pending[NVEC];
	bool refuse;
};

static int rec_route(void *ctx, unsigned vec, uint64_t addr, uint32_t data)
{
	struct rec *r = ctx;

	assert_true(vec < NVEC);
	r->routes++;
	if (r->refuse)
		return -1;
	assert_false(r->live[vec]); /* unrouted before a new route */
	r->live[vec] = true;
	r->addr[vec] = addr;
	r->data[vec] = data;
	return 0;
}

static void rec_unroute(void *ctx, unsigned vec)
{
	struct rec *r = ctx;

	assert_true(vec < NVEC);
	assert_true(r->live[vec]);
	r->live[vec] = false;
	r->unroutes++;
}

static bool rec_pending(void *ctx, unsigned vec)
{
	struct rec *r = ctx;

	return r->pending[vec];
}

static const struct vfio_msix_ops ops = { .route = rec_route,
					  .unroute = rec_unroute,
					  .pending = rec_pending };

static void wr32(struct vfio_msix *m, uint64_t off, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	vfio_msix_table_access(m, off, b, 4, true);
}

static uint32_t rd32(struct vfio_msix *m, uint64_t off)
{
	uint8_t b[4];

	vfio_msix_table_access(m, off, b, 4, false);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Program vector v's message as a driver does (masked entries first). */
static void program(struct vfio_msix *m, unsigned v, uint64_t addr, uint32_t data)
{
	wr32(m, v * 16 + 0, (uint32_t)addr);
	wr32(m, v * 16 + 4, (uint32_t)(addr >> 32));
	wr32(m, v * 16 + 8, data);
}

static void test_route_when_live(void **state)
{
	struct vfio_msix m;
	struct rec r = { 0 };

	(void)state;
	assert_int_equal(vfio_msix_init(&m, NVEC, &ops, &r), 0);
	/* Reset state: every vector masked. */
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(rd32(&m, v * 16 + 12), VFIO_MSIX_VECTOR_MASKED);
	program(&m, 1, 0xfee01000, 0x4041);
	wr32(&m, 16 + 12, 0); /* unmasked, but MSI-X is off */
	assert_int_equal(r.routes, 0);
	vfio_msix_control(&m, true, true); /* on, function masked */
	assert_int_equal(r.routes, 0);
	vfio_msix_control(&m, true, false);
	assert_int_equal(r.routes, 1);
	assert_true(r.live[1]);
	assert_int_equal(r.addr[1], 0xfee01000);
	assert_int_equal(r.data[1], 0x4041);
	assert_false(r.live[0]);
	/* The table reads what the guest wrote. */
	assert_int_equal(rd32(&m, 16 + 0), 0xfee01000);
	assert_int_equal(rd32(&m, 16 + 8), 0x4041);
	/* Same message again: nothing to do. */
	wr32(&m, 16 + 8, 0x4041);
	assert_int_equal(r.routes, 1);
	/* A new message on a live vector: rerouted. */
	wr32(&m, 16 + 8, 0x4042);
	assert_int_equal(r.routes, 2);
	assert_int_equal(r.unroutes, 1);
	assert_int_equal(r.data[1], 0x4042);
	/* Vector mask, function mask, disable: each stops it. */
	wr32(&m, 16 + 12, 1);
	assert_false(r.live[1]);
	wr32(&m, 16 + 12, 0xfffffffe); /* reserved bits: read back 0 */
	assert_true(r.live[1]);
	assert_int_equal(rd32(&m, 16 + 12), 0);
	vfio_msix_control(&m, true, true);
	assert_false(r.live[1]);
	vfio_msix_control(&m, true, false);
	assert_true(r.live[1]);
	vfio_msix_control(&m, false, false);
	assert_false(r.live[1]);
	vfio_msix_destroy(&m);
}

/* MSI's vectors: message and mask set whole from config space, routed while enabled. */
static void test_set_entry(void **state)
{
	struct vfio_msix m;
	struct rec r = { 0 };

	(void)state;
	assert_int_equal(vfio_msix_init(&m, NVEC, &ops, &r), 0);
	vfio_msix_set_entry(&m, 0, 0xfee00000, 0x4020, false);
	vfio_msix_set_entry(&m, 1, 0xfee00000, 0x4021, true);
	assert_int_equal(r.routes, 0); /* not enabled yet */
	vfio_msix_control(&m, true, false);
	assert_true(r.live[0]);
	assert_false(r.live[1]);
	assert_int_equal(r.data[0], 0x4020);
	/* Same again: nothing; a new address: rerouted; unmasked: routed; masked: stopped. */
	vfio_msix_set_entry(&m, 0, 0xfee00000, 0x4020, false);
	assert_int_equal(r.routes, 1);
	vfio_msix_set_entry(&m, 0, 0x1fee01000ULL, 0x4020, false);
	assert_int_equal(r.routes, 2);
	assert_int_equal(r.unroutes, 1);
	assert_int_equal(r.addr[0], 0x1fee01000ULL);
	vfio_msix_set_entry(&m, 1, 0xfee00000, 0x4021, false);
	assert_true(r.live[1]);
	vfio_msix_set_entry(&m, 0, 0x1fee01000ULL, 0x4020, true);
	assert_false(r.live[0]);
	vfio_msix_control(&m, false, false);
	assert_false(r.live[1]);
	vfio_msix_destroy(&m);
}

static void test_pba_and_refusal(void **state)
{
	struct vfio_msix m;
	struct rec r = { 0 };
	uint8_t b[8];

	(void)state;
	assert_int_equal(vfio_msix_init(&m, NVEC, &ops, &r), 0);
	r.pending[2] = true;
	r.pending[3] = true;
	vfio_msix_pba_read(&m, 0, b, 8);
	assert_int_equal(b[0], 0x0c);
	assert_int_equal(b[1], 0);
	/* A live vector is never pending here (its interrupts go straight to the guest). */
	program(&m, 3, 0xfee00000, 0x30);
	wr32(&m, 3 * 16 + 12, 0);
	vfio_msix_control(&m, true, false);
	assert_true(r.live[3]);
	vfio_msix_pba_read(&m, 0, b, 4);
	assert_int_equal(b[0], 0x04);
	/* A route that fails leaves the vector not live; the next change retries. */
	r.refuse = true;
	wr32(&m, 0 * 16 + 12, 0);
	assert_false(r.live[0]);
	r.refuse = false;
	wr32(&m, 0 * 16 + 8, 1);
	assert_true(r.live[0]);
	/* Reset: all unrouted, masked, zero. */
	vfio_msix_reset(&m);
	for (unsigned v = 0; v < NVEC; v++) {
		assert_false(r.live[v]);
		assert_int_equal(rd32(&m, v * 16 + 12), VFIO_MSIX_VECTOR_MASKED);
		assert_int_equal(rd32(&m, v * 16 + 0), 0);
	}
	vfio_msix_destroy(&m);
	vfio_msix_destroy(&m); /* twice: a no-op */
}

static void test_odd_accesses(void **state)
{
	struct vfio_msix m;
	struct rec r = { 0 };
	uint8_t b[8];

	(void)state;
	assert_int_equal(vfio_msix_init(&m, NVEC, &ops, &r), 0);
	/* 8-byte access: address low and high at once. */
	memcpy(b, (uint8_t[8]){ 0x00, 0x20, 0xe0, 0xfe, 0x01, 0, 0, 0 }, 8);
	vfio_msix_table_access(&m, 2 * 16, b, 8, true);
	assert_int_equal(rd32(&m, 2 * 16), 0xfee02000);
	assert_int_equal(rd32(&m, 2 * 16 + 4), 1);
	memset(b, 0, 8);
	vfio_msix_table_access(&m, 2 * 16 + 8, b, 8, false); /* data and control */
	assert_int_equal(b[4], VFIO_MSIX_VECTOR_MASKED);
	/* Misaligned, odd sizes, past the table: all ones, no effect. */
	memset(b, 0, 8);
	vfio_msix_table_access(&m, 2, b, 4, false);
	assert_int_equal(b[0], 0xff);
	vfio_msix_table_access(&m, 4, b, 8, false);
	assert_int_equal(b[7], 0xff);
	vfio_msix_table_access(&m, 12, b, 2, true);
	vfio_msix_table_access(&m, NVEC * 16, b, 4, false);
	assert_int_equal(b[3], 0xff);
	wr32(&m, NVEC * 16 + 12, 0);
	wr32(&m, UINT64_MAX - 3, 0);
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(rd32(&m, v * 16 + 12), VFIO_MSIX_VECTOR_MASKED);
	vfio_msix_control(&m, true, false);
	assert_int_equal(r.routes, 0);
	/* Bad sizes at init. */
	vfio_msix_destroy(&m);
	assert_int_equal(vfio_msix_init(&m, 0, &ops, &r), -1);
	assert_int_equal(vfio_msix_init(&m, 2049, &ops, &r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_when_live),
		cmocka_unit_test(test_set_entry),
		cmocka_unit_test(test_pba_and_refusal),
		cmocka_unit_test(test_odd_accesses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
