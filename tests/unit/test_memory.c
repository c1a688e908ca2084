/* Unit tests for guest memory lookups (core/memory.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/memory.h"

#define LOW_SIZE  0x10000ULL
#define HIGH_GPA  0x100000000ULL
#define HIGH_SIZE 0x8000ULL

struct ctx {
	uint8_t *buf;
	struct guest_mem m;
};

static int setup(void **state)
{
	static const struct mem_region layout[2] = {
		{ .gpa = 0, .size = LOW_SIZE },
		{ .gpa = HIGH_GPA, .size = HIGH_SIZE },
	};
	struct ctx *c = calloc(1, sizeof(*c));

	c->buf = calloc(1, LOW_SIZE + HIGH_SIZE);
	guest_mem_init_static(&c->m, c->buf, layout, 2);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	free(c->buf);
	free(c);
	return 0;
}

static void test_layout(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(c->m.nr_regions, 2);
	assert_int_equal(c->m.total, LOW_SIZE + HIGH_SIZE);
	assert_ptr_equal(c->m.regions[1].host, c->buf + LOW_SIZE);
}

static void test_edges(void **state)
{
	struct ctx *c = *state;

	assert_ptr_equal(gpa_ptr(&c->m, 0, 1), c->buf);
	assert_ptr_equal(gpa_ptr(&c->m, 0, LOW_SIZE), c->buf); /* whole region */
	assert_null(gpa_ptr(&c->m, 0, LOW_SIZE + 1));
	assert_ptr_equal(gpa_ptr(&c->m, LOW_SIZE - 1, 1), c->buf + LOW_SIZE - 1); /* last byte */
	assert_null(gpa_ptr(&c->m, LOW_SIZE - 1, 2));
	assert_null(gpa_ptr(&c->m, LOW_SIZE, 1)); /* hole */
	assert_null(gpa_ptr(&c->m, HIGH_GPA - 1, 1));
	assert_ptr_equal(gpa_ptr(&c->m, HIGH_GPA, 1), c->buf + LOW_SIZE);
	assert_ptr_equal(gpa_ptr(&c->m, HIGH_GPA + HIGH_SIZE - 4, 4), c->buf + LOW_SIZE + HIGH_SIZE - 4);
	assert_null(gpa_ptr(&c->m, HIGH_GPA + HIGH_SIZE - 4, 5));
	assert_null(gpa_ptr(&c->m, HIGH_GPA + HIGH_SIZE, 1));
	/* len 0 is treated as 1: valid inside, invalid one past the end. */
	assert_ptr_equal(gpa_ptr(&c->m, LOW_SIZE - 1, 0), c->buf + LOW_SIZE - 1);
	assert_null(gpa_ptr(&c->m, LOW_SIZE, 0));
}

static void test_overflow(void **state)
{
	struct ctx *c = *state;

	assert_null(gpa_ptr(&c->m, 0x10, UINT64_MAX));
	assert_null(gpa_ptr(&c->m, UINT64_MAX, 1));
	assert_null(gpa_ptr(&c->m, UINT64_MAX, 2));           /* gpa + len wraps to 1 */
	assert_null(gpa_ptr(&c->m, UINT64_MAX - 0x10, 0x20)); /* wraps into region 0 */
	assert_null(gpa_ptr(&c->m, HIGH_GPA, UINT64_MAX - HIGH_GPA + 2));
}

static void test_cross_region_refused(void **state)
{
	static const struct mem_region adj[2] = {
		{ .gpa = 0, .size = 0x1000 },
		{ .gpa = 0x1000, .size = 0x1000 },
	};
	struct ctx *c = *state;
	struct guest_mem m;
	uint8_t big[16] = { 0 };

	/* Adjacent in guest physical space, contiguous in the host buffer:
	 * still one region at a time. */
	guest_mem_init_static(&m, c->buf, adj, 2);
	assert_non_null(gpa_ptr(&m, 0xff8, 8));
	assert_non_null(gpa_ptr(&m, 0x1000, 8));
	assert_null(gpa_ptr(&m, 0xff8, 16));
	assert_int_equal(gpa_write(&m, 0xff8, big, 16), -1);
	assert_int_equal(gpa_read(&m, 0xff8, big, 16), -1);
	assert_null(gpa_ptr(&c->m, LOW_SIZE - 8, HIGH_GPA));
}

static void test_read_write(void **state)
{
	struct ctx *c = *state;
	const char msg[] = "kvmbox";
	char back[sizeof(msg)] = { 0 };

	assert_int_equal(gpa_write(&c->m, HIGH_GPA + 0x100, msg, sizeof(msg)), 0);
	assert_memory_equal(c->buf + LOW_SIZE + 0x100, msg, sizeof(msg));
	assert_int_equal(gpa_read(&c->m, HIGH_GPA + 0x100, back, sizeof(back)), 0);
	assert_string_equal(back, msg);
	assert_int_equal(gpa_write(&c->m, LOW_SIZE, msg, 1), -1);
	assert_int_equal(gpa_read(&c->m, HIGH_GPA + HIGH_SIZE - 2, back, 3), -1);
	assert_int_equal(gpa_write(&c->m, 0, msg, 0), 0); /* empty copy in RAM */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_region_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
