/* Unit tests for virtio-console (virtio/console.c): guest output reaches the
 * char_port, host input lands in receiveq buffers, refusal and the rx_space
 * wake-up, malformed chains. Queues are driven by the fake driver and
 * transport of vq_driver.h in a fake guest RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/console.h"
#include "vq_driver.h"

#define RAM_SIZE (4ULL << 20)
#define QSZ      64
#define BUF_GPA  0x100000ULL /* data buffers from 1 MiB, above the rings */

struct ctx {
	struct vq_fixture fx; /* first: the state is vq_fixture_new's */
	uint8_t out[8192];    /* what reached the char_port */
	size_t nout;
	unsigned rx_space_calls;
};

static void port_write(void *ctx, const uint8_t *buf, size_t n)
{
	struct ctx *x = ctx;

	assert_true(x->nout + n <= sizeof(x->out));
	memcpy(x->out + x->nout, buf, n);
	x->nout += n;
}

static void port_rx_space(void *ctx)
{
	((struct ctx *)ctx)->rx_space_calls++;
}

static int setup(void **state)
{
	struct ctx *x = vq_fixture_new(state, sizeof(*x), RAM_SIZE, false, BUF_GPA, RAM_SIZE);
	struct char_port port = { .write = port_write, .rx_space = port_rx_space, .ctx = x };

	vq_fixture_attach(&x->fx, virtio_console_create(&x->fx.ram.mem, port, 0), QSZ);
	return 0;
}

#define RXQ VIRTIO_CONSOLE_RXQ
#define TXQ VIRTIO_CONSOLE_TXQ

static void test_identity(void **state)
{
	struct ctx *x = *state;

	assert_int_equal(x->fx.vd->ops->device_id, VIRTIO_ID_CONSOLE);
	assert_int_equal(x->fx.vd->num_queues, 2);
	assert_int_equal(x->fx.vd->host_features, 0); /* no MULTIPORT, no SIZE */
	assert_int_equal(x->fx.vd->config_size, 12);
	for (unsigned i = 0; i < x->fx.vd->config_size; i++)
		assert_int_equal(x->fx.vd->config[i], 0);
}

static void test_output(void **state)
{
	struct ctx *x = *state;
	uint64_t a = vqd_alloc(&x->fx.d, 16), b = vqd_alloc(&x->fx.d, 16);
	struct vq_seg two[2] = { { a, 6, false }, { b, 6, false } };
	uint32_t id, len;

	vqd_activate(&x->fx.d, x->fx.vd, 0);
	memcpy(vqd_host(&x->fx.d, a, 6), "hello ", 6);
	memcpy(vqd_host(&x->fx.d, b, 6), "world\n", 6);
	vqd_add_chain(&x->fx.d, TXQ, two, 2);
	memcpy(vqd_host(&x->fx.d, vqd_add_buf(&x->fx.d, TXQ, 3, false), 3), "abc", 3);
	vqd_kick(x->fx.vd, TXQ);
	assert_int_equal(x->nout, 15);
	assert_memory_equal(x->out, "hello world\nabc", 15);
	assert_true(vqd_next_used(&x->fx.d, TXQ, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vqd_next_used(&x->fx.d, TXQ, &id, &len));
	assert_false(vqd_next_used(&x->fx.d, TXQ, &id, &len));
	assert_int_equal(x->fx.f.notified[TXQ], 1); /* one interrupt per batch */
}

static void test_input(void **state)
{
	struct ctx *x = *state;
	uint64_t a, b;
	uint32_t id, len;

	vqd_activate(&x->fx.d, x->fx.vd, 0);
	a = vqd_add_buf(&x->fx.d, RXQ, 4, true);
	b = vqd_add_buf(&x->fx.d, RXQ, 16, true);
	vqd_kick(x->fx.vd, RXQ);
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"0123456789", 10), 10);
	assert_true(vqd_next_used(&x->fx.d, RXQ, &id, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(vqd_host(&x->fx.d, a, 4), "0123", 4);
	assert_true(vqd_next_used(&x->fx.d, RXQ, &id, &len));
	assert_int_equal(len, 6);
	assert_memory_equal(vqd_host(&x->fx.d, b, 6), "456789", 6);
	assert_true(x->fx.f.notified[RXQ] >= 1);
	assert_int_equal(x->rx_space_calls, 0);
}

static void test_refusal_and_rx_space(void **state)
{
	struct ctx *x = *state;
	uint64_t a;
	uint32_t id, len;

	/* Before activation everything is refused. */
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"x", 1), 0);
	vqd_activate(&x->fx.d, x->fx.vd, 0);
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"x", 1), 0);
	/* A partial take: 3 of 5 bytes. */
	a = vqd_add_buf(&x->fx.d, RXQ, 3, true);
	vqd_kick(x->fx.vd, RXQ);
	assert_int_equal(x->rx_space_calls, 1); /* the earlier refusal is answered */
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"abcde", 5), 3);
	assert_memory_equal(vqd_host(&x->fx.d, a, 3), "abc", 3);
	assert_true(vqd_next_used(&x->fx.d, RXQ, &id, &len));
	assert_int_equal(len, 3);
	/* A kick with nothing refused since: no call. */
	vqd_add_buf(&x->fx.d, RXQ, 8, true);
	vqd_kick(x->fx.vd, RXQ);
	assert_int_equal(x->rx_space_calls, 2);
	vqd_kick(x->fx.vd, RXQ);
	assert_int_equal(x->rx_space_calls, 2);
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"de", 2), 2);
	vqd_kick(x->fx.vd, RXQ);
	assert_int_equal(x->rx_space_calls, 2);
}

static void test_malformed(void **state)
{
	struct ctx *x = *state;
	struct vq_seg bad = { RAM_SIZE - 4, 64, false };
	struct vq_seg ro = { BUF_GPA, 16, false };

	vqd_activate(&x->fx.d, x->fx.vd, 0);
	/* A receive buffer the device cannot write into. */
	vqd_add_chain(&x->fx.d, RXQ, &ro, 1);
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"zz", 2), 0);
	assert_true(virtio_is_broken(x->fx.vd));
	assert_int_equal(x->fx.f.needs_reset, 1);
	/* Once broken nothing is taken. */
	assert_int_equal(virtio_console_receive(x->fx.vd, (const uint8_t *)"zz", 2), 0);

	/* After a reset, an out-of-RAM output chain breaks it again. */
	pthread_mutex_lock(&x->fx.vd->lock);
	x->fx.vd->ops->reset(x->fx.vd);
	x->fx.vd->broken = false;
	pthread_mutex_unlock(&x->fx.vd->lock);
	vqd_forget(&x->fx.d);
	vqd_clear_rings(&x->fx.d);
	vqd_activate(&x->fx.d, x->fx.vd, 0);
	vqd_add_chain(&x->fx.d, TXQ, &bad, 1);
	vqd_kick(x->fx.vd, TXQ);
	assert_true(virtio_is_broken(x->fx.vd));
	assert_int_equal(x->nout, 0);
}

static void test_save_load(void **state)
{
	struct ctx *x = *state;
	struct ser_writer w;
	struct ser_reader r;

	vqd_activate(&x->fx.d, x->fx.vd, 0);
	ser_writer_init(&w);
	x->fx.vd->ops->save(x->fx.vd, &w);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(x->fx.vd->ops->load(x->fx.vd, &r), 0);
	assert_true(ser_reader_done(&r));
	ser_writer_free(&w);
	/* After a restore the backend hears about the first buffers. */
	vqd_add_buf(&x->fx.d, RXQ, 8, true);
	vqd_kick(x->fx.vd, RXQ);
	assert_int_equal(x->rx_space_calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_output, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_input, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_refusal_and_rx_space, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_malformed, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load, setup, vq_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
