/* Unit tests for virtio-console (virtio/console.c): guest output reaches the
 * char_port, host input lands in receiveq buffers, refusal and the rx_space
 * wake-up, malformed chains. Queues are driven by hand in a fake guest RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/console.h"

#define RAM_SIZE (4ULL << 20)
#define QSZ      64
#define Q_GPA(q) (0x10000ULL + 0x10000ULL * (q))  /* desc; avail +0x1000; used +0x2000 */
#define BUF_GPA  0x100000ULL                      /* data buffers from 1 MiB */

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* The driver's view of one queue. */
struct drvq {
	uint16_t next_desc;
	uint16_t avail_idx;
	uint16_t used_seen;
};

struct fake {
	unsigned notified[2];
	unsigned config_changes;
	unsigned needs_reset;
};

struct ctx {
	uint8_t *ram;
	struct guest_mem m;
	struct virtio_dev *vd;
	struct fake f;
	struct drvq dq[2];
	uint64_t next_buf;              /* bump allocator for buffers */
	uint8_t out[8192];              /* what reached the char_port */
	size_t nout;
	unsigned rx_space_calls;
};

/* ---- fake transport ---- */

static void fake_notify_queue(struct virtio_dev *vd, unsigned q)
{
	struct fake *f = vd->transport;

	if (q < 2)
		f->notified[q]++;
}

static void fake_notify_config(struct virtio_dev *vd)
{
	((struct fake *)vd->transport)->config_changes++;
}

static void fake_needs_reset(struct virtio_dev *vd)
{
	((struct fake *)vd->transport)->needs_reset++;
}

static const struct virtio_transport_ops fake_tops = {
	.notify_queue = fake_notify_queue,
	.notify_config = fake_notify_config,
	.needs_reset = fake_needs_reset,
};

/* ---- driver-side helpers ---- */

static uint8_t *host(struct ctx *x, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gpa_ptr(&x->m, gpa, len);

	assert_non_null(p);
	return p;
}

static void put16(struct ctx *x, uint64_t gpa, uint16_t v)
{
	uint8_t *p = host(x, gpa, 2);

	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(struct ctx *x, uint64_t gpa, uint32_t v)
{
	put16(x, gpa, (uint16_t)v);
	put16(x, gpa + 2, (uint16_t)(v >> 16));
}

static void put64(struct ctx *x, uint64_t gpa, uint64_t v)
{
	put32(x, gpa, (uint32_t)v);
	put32(x, gpa + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(struct ctx *x, uint64_t gpa)
{
	const uint8_t *p = host(x, gpa, 2);

	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(struct ctx *x, uint64_t gpa)
{
	return get16(x, gpa) | (uint32_t)get16(x, gpa + 2) << 16;
}

static uint64_t alloc_buf(struct ctx *x, uint32_t len)
{
	uint64_t g = x->next_buf;

	x->next_buf += (len + 15) & ~15u;
	assert_true(x->next_buf <= RAM_SIZE);
	return g;
}

/* Lay out a chain and make it available; returns the head. */
static uint16_t add_chain(struct ctx *x, unsigned q, const struct seg *s, unsigned n)
{
	struct drvq *d = &x->dq[q];
	uint16_t head = d->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QSZ);
		uint64_t dg = Q_GPA(q) + 16ULL * idx;
		uint16_t flags = (s[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);

		put64(x, dg, s[i].gpa);
		put32(x, dg + 8, s[i].len);
		put16(x, dg + 12, flags);
		put16(x, dg + 14, (uint16_t)((idx + 1) % QSZ));
	}
	d->next_desc = (uint16_t)((head + n) % QSZ);
	put16(x, Q_GPA(q) + 0x1000 + 4 + 2ULL * (d->avail_idx % QSZ), head);
	d->avail_idx++;
	put16(x, Q_GPA(q) + 0x1000 + 2, d->avail_idx);
	return head;
}

/* One chain of a single buffer of len bytes on queue q; returns its gpa. */
static uint64_t add_buf(struct ctx *x, unsigned q, uint32_t len, bool write)
{
	struct seg s = { alloc_buf(x, len), len, write };

	add_chain(x, q, &s, 1);
	return s.gpa;
}

/* Next used element of queue q, if any. */
static bool next_used(struct ctx *x, unsigned q, uint32_t *id, uint32_t *len)
{
	struct drvq *d = &x->dq[q];
	uint64_t e;

	if (get16(x, Q_GPA(q) + 0x2000 + 2) == d->used_seen)
		return false;
	e = Q_GPA(q) + 0x2000 + 4 + 8ULL * (d->used_seen % QSZ);
	*id = get32(x, e);
	*len = get32(x, e + 4);
	d->used_seen++;
	return true;
}

/* A kick, as the transport delivers it. */
static void kick(struct ctx *x, unsigned q)
{
	struct virtio_dev *vd = x->vd;

	pthread_mutex_lock(&vd->lock);
	if (vd->activated && !vd->broken && vd->vqs[q].enabled)
		vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

static void activate(struct ctx *x, uint64_t features)
{
	struct virtio_dev *vd = x->vd;

	pthread_mutex_lock(&vd->lock);
	vd->features = features | 1ULL << VIRTIO_F_VERSION_1;
	for (unsigned q = 0; q < vd->num_queues; q++) {
		vd->vqs[q].size = QSZ;
		vd->vqs[q].desc_gpa = Q_GPA(q);
		vd->vqs[q].avail_gpa = Q_GPA(q) + 0x1000;
		vd->vqs[q].used_gpa = Q_GPA(q) + 0x2000;
		assert_int_equal(virtq_enable(&vd->vqs[q], &x->m), 0);
	}
	vd->activated = true;
	assert_int_equal(vd->ops->activate(vd), 0);
	pthread_mutex_unlock(&vd->lock);
}

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
	static const struct mem_region layout[1] = { { .gpa = 0, .size = RAM_SIZE } };
	struct ctx *x = calloc(1, sizeof(*x));
	struct char_port port = { .write = port_write, .rx_space = port_rx_space, .ctx = x };

	x->ram = calloc(1, RAM_SIZE);
	guest_mem_init_static(&x->m, x->ram, layout, 1);
	x->vd = virtio_console_create(&x->m, port, 0);
	assert_non_null(x->vd);
	x->vd->tops = &fake_tops;
	x->vd->transport = &x->f;
	x->next_buf = BUF_GPA;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	x->vd->ops->destroy(x->vd);
	free(x->ram);
	free(x);
	return 0;
}

#define RXQ VIRTIO_CONSOLE_RXQ
#define TXQ VIRTIO_CONSOLE_TXQ

static void test_identity(void **state)
{
	struct ctx *x = *state;

	assert_int_equal(x->vd->ops->device_id, VIRTIO_ID_CONSOLE);
	assert_int_equal(x->vd->num_queues, 2);
	assert_int_equal(x->vd->host_features, 0); /* no MULTIPORT, no SIZE */
	assert_int_equal(x->vd->config_size, 12);
	for (unsigned i = 0; i < x->vd->config_size; i++)
		assert_int_equal(x->vd->config[i], 0);
}

static void test_output(void **state)
{
	struct ctx *x = *state;
	uint64_t a = alloc_buf(x, 16), b = alloc_buf(x, 16);
	struct seg two[2] = { { a, 6, false }, { b, 6, false } };
	uint32_t id, len;

	activate(x, 0);
	memcpy(host(x, a, 6), "hello ", 6);
	memcpy(host(x, b, 6), "world\n", 6);
	add_chain(x, TXQ, two, 2);
	memcpy(host(x, add_buf(x, TXQ, 3, false), 3), "abc", 3);
	kick(x, TXQ);
	assert_int_equal(x->nout, 15);
	assert_memory_equal(x->out, "hello world\nabc", 15);
	assert_true(next_used(x, TXQ, &id, &len));
	assert_int_equal(len, 0);
	assert_true(next_used(x, TXQ, &id, &len));
	assert_false(next_used(x, TXQ, &id, &len));
	assert_int_equal(x->f.notified[TXQ], 1); /* one interrupt per batch */
}

static void test_input(void **state)
{
	struct ctx *x = *state;
	uint64_t a, b;
	uint32_t id, len;

	activate(x, 0);
	a = add_buf(x, RXQ, 4, true);
	b = add_buf(x, RXQ, 16, true);
	kick(x, RXQ);
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"0123456789", 10), 10);
	assert_true(next_used(x, RXQ, &id, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(host(x, a, 4), "0123", 4);
	assert_true(next_used(x, RXQ, &id, &len));
	assert_int_equal(len, 6);
	assert_memory_equal(host(x, b, 6), "456789", 6);
	assert_true(x->f.notified[RXQ] >= 1);
	assert_int_equal(x->rx_space_calls, 0);
}

static void test_refusal_and_rx_space(void **state)
{
	struct ctx *x = *state;
	uint64_t a;
	uint32_t id, len;

	/* Before activation everything is refused. */
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"x", 1), 0);
	activate(x, 0);
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"x", 1), 0);
	/* A partial take: 3 of 5 bytes. */
	a = add_buf(x, RXQ, 3, true);
	kick(x, RXQ);
	assert_int_equal(x->rx_space_calls, 1); /* the earlier refusal is answered */
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"abcde", 5), 3);
	assert_memory_equal(host(x, a, 3), "abc", 3);
	assert_true(next_used(x, RXQ, &id, &len));
	assert_int_equal(len, 3);
	/* A kick with nothing refused since: no call. */
	add_buf(x, RXQ, 8, true);
	kick(x, RXQ);
	assert_int_equal(x->rx_space_calls, 2);
	kick(x, RXQ);
	assert_int_equal(x->rx_space_calls, 2);
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"de", 2), 2);
	kick(x, RXQ);
	assert_int_equal(x->rx_space_calls, 2);
}

static void test_malformed(void **state)
{
	struct ctx *x = *state;
	struct seg bad = { RAM_SIZE - 4, 64, false };
	struct seg ro = { BUF_GPA, 16, false };

	activate(x, 0);
	/* A receive buffer the device cannot write into. */
	add_chain(x, RXQ, &ro, 1);
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"zz", 2), 0);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->f.needs_reset, 1);
	/* Once broken nothing is taken. */
	assert_int_equal(virtio_console_receive(x->vd, (const uint8_t *)"zz", 2), 0);

	/* After a reset, an out-of-RAM output chain breaks it again. */
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->reset(x->vd);
	x->vd->broken = false;
	pthread_mutex_unlock(&x->vd->lock);
	memset(x->dq, 0, sizeof(x->dq));
	memset(host(x, Q_GPA(0), 0x20000), 0, 0x20000);
	activate(x, 0);
	add_chain(x, TXQ, &bad, 1);
	kick(x, TXQ);
	assert_true(virtio_is_broken(x->vd));
	assert_int_equal(x->nout, 0);
}

static void test_save_load(void **state)
{
	struct ctx *x = *state;
	struct ser_writer w;
	struct ser_reader r;

	activate(x, 0);
	ser_writer_init(&w);
	x->vd->ops->save(x->vd, &w);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(x->vd->ops->load(x->vd, &r), 0);
	assert_true(ser_reader_done(&r));
	ser_writer_free(&w);
	/* After a restore the backend hears about the first buffers. */
	add_buf(x, RXQ, 8, true);
	kick(x, RXQ);
	assert_int_equal(x->rx_space_calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_and_rx_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
