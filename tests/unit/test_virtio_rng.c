/* Unit tests for virtio-rng (virtio/rng.c): writable buffers are filled
 * with random bytes, lengths are right and capped, malformed chains break
 * the device. Queues are driven by the fake driver and transport of
 * vq_driver.h in a fake guest RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/rng.h"
#include "vq_driver.h"

#define RAM_SIZE (4ULL << 20)
#define QSZ      64
#define BUF_GPA  0x100000ULL /* data buffers from 1 MiB, above the rings */

static int setup(void **state)
{
	struct vq_fixture *x = vq_fixture_new(state, sizeof(*x), RAM_SIZE, false, BUF_GPA, RAM_SIZE);

	vq_fixture_attach(x, virtio_rng_create(&x->ram.mem, 0), QSZ);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_identity(void **state)
{
	struct vq_fixture *x = *state;

	assert_int_equal(x->vd->ops->device_id, VIRTIO_ID_RNG);
	assert_int_equal(x->vd->num_queues, 1);
	assert_int_equal(x->vd->config_size, 0);
}

static void test_fill(void **state)
{
	struct vq_fixture *x = *state;
	uint64_t a = vqd_alloc(&x->d, 100), b = vqd_alloc(&x->d, 200), c;
	struct vq_seg two[2] = { { a, 100, true }, { b, 200, true } };
	uint32_t id, len;
	uint16_t h1, h2;

	vqd_activate(&x->d, x->vd, 0);
	h1 = vqd_add_chain(&x->d, 0, two, 2);
	h2 = x->d.q[0].next_desc;
	c = vqd_add_buf(&x->d, 0, 4096, true);
	vqd_kick(x->vd, 0);
	assert_true(vqd_next_used(&x->d, 0, &id, &len));
	assert_int_equal(id, h1);
	assert_int_equal(len, 300);
	assert_false(all_zero(vqd_host(&x->d, a, 100), 100));
	assert_false(all_zero(vqd_host(&x->d, b, 200), 200));
	assert_true(vqd_next_used(&x->d, 0, &id, &len));
	assert_int_equal(id, h2);
	assert_int_equal(len, 4096);
	assert_false(all_zero(vqd_host(&x->d, c, 4096), 4096));
	assert_false(vqd_next_used(&x->d, 0, &id, &len));
	assert_int_equal(x->f.notified[0], 1);
	assert_false(virtio_is_broken(x->vd));
}

static void test_cap_and_edges(void **state)
{
	struct vq_fixture *x = *state;
	uint64_t big = vqd_alloc(&x->d, 100000);
	struct vq_seg mixed[2] = { { BUF_GPA, 16, false }, { BUF_GPA + 16, 32, true } };
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, 0);
	vqd_add_buf(&x->d, 0, 100000, true); /* capped per request */
	vqd_add_buf(&x->d, 0, 64, false);    /* nothing writable: 0 bytes */
	vqd_add_chain(&x->d, 0, mixed, 2);   /* readable part ignored */
	vqd_kick(x->vd, 0);
	assert_true(vqd_next_used(&x->d, 0, &id, &len));
	assert_int_equal(len, VIRTIO_RNG_MAX_REQUEST);
	assert_false(all_zero(vqd_host(&x->d, big, VIRTIO_RNG_MAX_REQUEST), VIRTIO_RNG_MAX_REQUEST));
	assert_true(all_zero(vqd_host(&x->d, big + VIRTIO_RNG_MAX_REQUEST, 100000 - VIRTIO_RNG_MAX_REQUEST),
			     100000 - VIRTIO_RNG_MAX_REQUEST));
	assert_true(vqd_next_used(&x->d, 0, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vqd_next_used(&x->d, 0, &id, &len));
	assert_int_equal(len, 32);
	assert_false(virtio_is_broken(x->vd));
}

static void test_malformed(void **state)
{
	struct vq_fixture *x = *state;
	struct vq_seg bad = { RAM_SIZE - 4, 64, true };

	vqd_activate(&x->d, x->vd, 0);
	vqd_add_chain(&x->d, 0, &bad, 1);
	vqd_kick(x->vd, 0);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	assert_int_equal(vqd_used_idx(&x->d, 0), 0); /* nothing used */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_fill, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_cap_and_edges, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_malformed, setup, vq_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
