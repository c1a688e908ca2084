/* Unit tests for the PIO/MMIO range table (core/bus.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/bus.h"

struct rec {
	struct device dev;
	int calls;
	struct bus_access last;
	uint8_t fill;
};

static void rec_io(struct device *dev, struct bus_access *a)
{
	struct rec *r = (struct rec *)dev;

	r->calls++;
	r->last = *a;
	if (!a->is_write)
		memset(a->data, r->fill, a->len);
}

static const struct device_ops rec_ops = { .type = "rec", .io = rec_io };

static void rec_init(struct rec *r, uint8_t fill)
{
	memset(r, 0, sizeof(*r));
	r->dev.ops = &rec_ops;
	r->fill = fill;
}

static void test_register_and_overlap(void **state)
{
	struct bus b;
	struct rec a, c;

	rec_init(&a, 0x11);
	rec_init(&c, 0x22);
	bus_init(&b, BUS_PIO);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &a.dev), 0);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &c.dev), -1); /* same */
	assert_int_equal(bus_register(&b, 0x0f8, 0x09, &c.dev), -1); /* tail overlaps head */
	assert_int_equal(bus_register(&b, 0x10f, 0x01, &c.dev), -1); /* last byte */
	assert_int_equal(bus_register(&b, 0x0f0, 0x40, &c.dev), -1); /* covers */
	assert_int_equal(bus_register(&b, 0x104, 0x02, &c.dev), -1); /* inside */
	assert_int_equal(bus_register(&b, 0x0f8, 0x08, &c.dev), 0);  /* adjacent below */
	assert_int_equal(bus_register(&b, 0x110, 0x08, &c.dev), 0);  /* adjacent above */
	assert_int_equal(bus_register(&b, 0x200, 0, &c.dev), -1);    /* empty */
	assert_int_equal(b.nr, 3);
	for (int i = 1; i < b.nr; i++)
		assert_true(b.ranges[i - 1].base < b.ranges[i].base);
	bus_destroy(&b);
}

static void test_wrap_refused(void **state)
{
	struct bus b;
	struct rec a;

	rec_init(&a, 0);
	bus_init(&b, BUS_MMIO);
	assert_int_equal(bus_register(&b, UINT64_MAX - 1, 3, &a.dev), -1);
	assert_int_equal(bus_register(&b, 2, UINT64_MAX, &a.dev), -1);
	assert_int_equal(b.nr, 0);
	assert_int_equal(bus_register(&b, UINT64_MAX, 1, &a.dev), 0); /* ends exactly at the top */
	assert_int_equal(bus_register(&b, 0, UINT64_MAX, &a.dev), 0); /* [0, 2^64-1) */
	assert_int_equal(b.nr, 2);
	/* The top byte is reachable; a 2-byte access there would wrap. */
	uint8_t d[2];
	assert_true(bus_dispatch(&b, UINT64_MAX, d, 1, false));
	assert_false(bus_dispatch(&b, UINT64_MAX, d, 2, false));
	bus_destroy(&b);
}

static void test_unregister(void **state)
{
	struct bus b;
	struct rec a, c;
	uint8_t d = 0;

	rec_init(&a, 0x11);
	rec_init(&c, 0x22);
	bus_init(&b, BUS_PIO);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &a.dev), 0);
	assert_int_equal(bus_unregister(&b, 0x100, &c.dev), -1); /* not the owner */
	assert_int_equal(bus_unregister(&b, 0x104, &a.dev), -1); /* not the start */
	assert_int_equal(bus_unregister(&b, 0x100, &a.dev), 0);
	assert_int_equal(bus_unregister(&b, 0x100, &a.dev), -1);
	assert_false(bus_dispatch(&b, 0x100, &d, 1, false));
	assert_int_equal(a.calls, 0);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &c.dev), 0); /* reusable */
	bus_destroy(&b);
}

static void test_dispatch(void **state)
{
	struct bus b;
	struct rec a, c;
	uint8_t d[8];

	rec_init(&a, 0x11);
	rec_init(&c, 0x22);
	bus_init(&b, BUS_MMIO);
	for (int i = 0; i < 40; i++) { /* many ranges: exercises growth and search */
		struct rec *r = i == 20 ? &c : &a;

		assert_int_equal(bus_register(&b, 0x1000 * (uint64_t)(40 - i), 0x100, &r->dev), 0);
	}
	memset(d, 0, sizeof(d));
	assert_true(bus_dispatch(&b, 0x14008, d, 4, false));
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.last.base, 0x14000);
	assert_int_equal(c.last.offset, 8);
	assert_int_equal(c.last.len, 4);
	assert_int_equal(c.last.space, BUS_MMIO);
	assert_false(c.last.is_write);
	/* The device filled exactly the 4 bytes asked for. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(d[i], 0x22);
	for (int i = 4; i < 8; i++)
		assert_int_equal(d[i], 0);
	assert_true(bus_dispatch(&b, 0x140fc, d, 4, true)); /* last 4 bytes */
	assert_int_equal(c.calls, 2);
	assert_true(c.last.is_write);
	assert_int_equal(c.last.offset, 0xfc);

	/* Straddling the end of a range: not delivered, reads 0xff. */
	memset(d, 0, sizeof(d));
	assert_false(bus_dispatch(&b, 0x140fe, d, 4, false));
	assert_int_equal(c.calls, 2);
	for (int i = 0; i < 4; i++)
		assert_int_equal(d[i], 0xff);
	/* Straddling into a range from a hole. */
	assert_false(bus_dispatch(&b, 0x13ffe, d, 4, false));
	assert_int_equal(c.calls, 2);
	/* Holes read all ones for every width; writes are dropped. */
	memset(d, 0, sizeof(d));
	assert_false(bus_dispatch(&b, 0x500, d, 8, false));
	for (int i = 0; i < 8; i++)
		assert_int_equal(d[i], 0xff);
	memset(d, 0x5a, sizeof(d));
	assert_false(bus_dispatch(&b, 0x500, d, 8, true));
	assert_int_equal(d[0], 0x5a);                         /* a write is not clobbered */
	assert_false(bus_dispatch(&b, 0x14100, d, 1, false)); /* one past the end */
	assert_false(bus_dispatch(&b, 0x14000, d, 0, false)); /* zero length */
	bus_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_overlap),
		cmocka_unit_test(test_wrap_refused),
		cmocka_unit_test(test_unregister),
		cmocka_unit_test(test_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
