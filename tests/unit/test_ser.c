/* Unit tests for state serialisation (core/ser.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ser.h"

static void test_round_trip_and_byte_order(void **state)
{
	struct ser_writer w;
	struct ser_reader r;
	uint8_t blob[3] = { 9, 8, 7 }, back[3];

	ser_writer_init(&w);
	ser_put_u8(&w, 0xab);
	ser_put_u16(&w, 0x1234);
	ser_put_u32(&w, 0xdeadbeef);
	ser_put_u64(&w, 0x0102030405060708ULL);
	ser_put_bytes(&w, blob, 3);
	assert_false(w.err);
	assert_int_equal(w.len, 1 + 2 + 4 + 8 + 3);
	/* Little endian on the wire. */
	assert_int_equal(w.buf[1], 0x34);
	assert_int_equal(w.buf[2], 0x12);
	assert_int_equal(w.buf[3], 0xef);
	assert_int_equal(w.buf[7], 0x08);
	assert_int_equal(w.buf[14], 0x01);

	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(ser_get_u8(&r), 0xab);
	assert_int_equal(ser_get_u16(&r), 0x1234);
	assert_int_equal(ser_get_u32(&r), 0xdeadbeef);
	assert_int_equal(ser_get_u64(&r), 0x0102030405060708ULL);
	assert_false(ser_reader_done(&r));
	ser_get_bytes(&r, back, 3);
	assert_memory_equal(back, blob, 3);
	assert_true(ser_reader_done(&r));
	ser_writer_free(&w);
	assert_null(w.buf);
}

static void test_growth(void **state)
{
	struct ser_writer w;
	struct ser_reader r;

	ser_writer_init(&w);
	for (uint32_t i = 0; i < 10000; i++)
		ser_put_u32(&w, i * 2654435761u);
	assert_false(w.err);
	assert_int_equal(w.len, 40000);
	ser_reader_init(&r, w.buf, w.len);
	for (uint32_t i = 0; i < 10000; i++)
		assert_int_equal(ser_get_u32(&r), i * 2654435761u);
	assert_true(ser_reader_done(&r));
	ser_writer_free(&w);
}

static void test_short_input(void **state)
{
	const uint8_t in[5] = { 1, 2, 3, 4, 5 };
	struct ser_reader r;
	uint8_t buf[4] = { 0xee, 0xee, 0xee, 0xee };

	ser_reader_init(&r, in, 5);
	assert_int_equal(ser_get_u32(&r), 0x04030201);
	assert_int_equal(ser_get_u16(&r), 0); /* only one byte left */
	assert_true(r.err);
	assert_false(ser_reader_done(&r));
	/* The error latches: later reads fail even if they would fit. */
	assert_int_equal(ser_get_u8(&r), 0);
	ser_get_bytes(&r, buf, 4);
	assert_int_equal(buf[0], 0); /* zero-filled */

	ser_reader_init(&r, in, 5);
	ser_get_u64(&r); /* value unspecified on error */
	assert_true(r.err);
	assert_int_equal(ser_get_u8(&r), 0);
	ser_reader_init(&r, NULL, 0);
	assert_true(ser_reader_done(&r));
	ser_get_u8(&r);
	assert_false(ser_reader_done(&r));
}

static void test_trailing_data_not_done(void **state)
{
	const uint8_t in[3] = { 1, 2, 3 };
	struct ser_reader r;

	ser_reader_init(&r, in, 3);
	assert_int_equal(ser_get_u16(&r), 0x0201);
	assert_false(r.err);
	assert_false(ser_reader_done(&r)); /* one byte unread */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_byte_order),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_short_input),
		cmocka_unit_test(test_trailing_data_not_done),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
