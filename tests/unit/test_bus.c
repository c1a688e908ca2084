/* Unit tests for the PIO/MMIO range table (core/bus.c). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/bus.h"
#include "fakes.h"

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

static void test_register_all_rolls_back(void **state)
{
	const struct bus_claim claims[] = { { 0x60, 1 }, { 0x64, 1 }, { 0x70, 2 } };
	struct stderr_capture cap;
	struct bus b;
	struct rec a, c;
	const char *msg;
	uint8_t d = 0;
	int ret;

	rec_init(&a, 0x11);
	rec_init(&c, 0x22);
	snprintf(a.dev.name, sizeof(a.dev.name), "kbd");
	snprintf(c.dev.name, sizeof(c.dev.name), "clock");
	bus_init(&b, BUS_PIO);
	assert_int_equal(bus_register(&b, 0x71, 1, &c.dev), 0);
	stderr_capture_begin(&cap);
	ret = bus_register_all(&b, claims, ARRAY_SIZE(claims), &a.dev);
	msg = stderr_capture_end(&cap);
	assert_int_equal(ret, -1);
	/* One line naming the device, the range and who holds it. */
	assert_non_null(strstr(msg, "rec kbd: I/O ports 0x70-0x71 are already in use by clock"));
	assert_int_equal(strchr(msg, '\n') - msg, (long)strlen(msg) - 1);
	/* Nothing of the device stayed registered. */
	assert_int_equal(b.nr, 1);
	assert_false(bus_dispatch(&b, 0x60, &d, 1, false));
	assert_false(bus_dispatch(&b, 0x64, &d, 1, false));
	assert_int_equal(a.calls, 0);

	assert_int_equal(bus_unregister(&b, 0x71, &c.dev), 0);
	assert_int_equal(bus_register_all(&b, claims, ARRAY_SIZE(claims), &a.dev), 0);
	assert_int_equal(b.nr, 3);
	assert_true(bus_dispatch(&b, 0x71, &d, 1, false));
	assert_int_equal(a.calls, 1);
	bus_unregister_all(&b, claims, ARRAY_SIZE(claims), &a.dev);
	assert_int_equal(b.nr, 0);

	/* An empty claim is refused too, with the same kind of line. */
	stderr_capture_begin(&cap);
	ret = bus_register_all(&b, (const struct bus_claim[]){ { 0x10, 4 }, { 0x20, 0 } }, 2, &a.dev);
	msg = stderr_capture_end(&cap);
	assert_int_equal(ret, -1);
	assert_non_null(strstr(msg, "rec kbd: I/O ports range of 0x0 bytes at 0x20 is empty or wraps"));
	assert_int_equal(b.nr, 0);
	bus_destroy(&b);
}

/* ---- devices that change the bus from inside their own access ----
 *
 * These run their bodies on a helper thread so that a deadlock (the bus lock
 * still held while the device runs) fails the test instead of hanging the
 * tier. cmocka's assertions must not fail off the main thread, so the helper
 * threads CHECK() and the main thread asserts that no CHECK failed. */

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static int check_failures;
static char check_first[160];

#define CHECK(cond) check((cond), #cond, __LINE__)

static void check(bool ok, const char *what, int line)
{
	if (ok)
		return;
	pthread_mutex_lock(&check_lock);
	if (check_failures++ == 0)
		snprintf(check_first, sizeof(check_first), "line %d: %s", line, what);
	pthread_mutex_unlock(&check_lock);
}

static void assert_checks_passed(void)
{
	pthread_mutex_lock(&check_lock);
	int n = check_failures;

	check_failures = 0;
	pthread_mutex_unlock(&check_lock);
	if (n)
		fail_msg("%d check(s) failed off the main thread, the first at %s", n, check_first);
}

struct timed {
	void (*fn)(void *);
	void *arg;
};

static void *timed_main(void *p)
{
	struct timed *t = p;

	t->fn(t->arg);
	return NULL;
}

/* Run fn(arg) on a thread; fail if it does not finish within `seconds`, or
 * if any CHECK failed. */
static void run_or_fail(void (*fn)(void *), void *arg, int seconds)
{
	static struct timed t; /* outlives a timed-out thread */
	struct timespec until;
	pthread_t th;

	t = (struct timed){ fn, arg };
	assert_int_equal(pthread_create(&th, NULL, timed_main, &t), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	if (pthread_timedjoin_np(th, NULL, &until) == ETIMEDOUT)
		fail_msg("still running after %d s: a device (un)registering ranges from its io() deadlocked",
			 seconds);
	assert_checks_passed();
}

/* A device that moves itself on every write, as a PCI function whose BAR is
 * reprogrammed through config space reached over the same bus (ECAM). */
struct mover {
	struct device dev;
	struct bus *bus;
	pthread_mutex_t lock;
	uint64_t base, other; /* where it decodes now; where the next write moves it */
	atomic_int moves, late, reads;
};

static void mover_io(struct device *dev, struct bus_access *a)
{
	struct mover *m = (struct mover *)dev;

	if (!a->is_write) {
		memset(a->data, 0x77, a->len);
		atomic_fetch_add(&m->reads, 1);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (a->base != m->base) {
		/* Looked up before another vCPU moved us: an access in flight. */
		atomic_fetch_add(&m->late, 1);
	} else {
		uint64_t to = m->other;

		CHECK(bus_unregister(m->bus, m->base, dev) == 0);
		CHECK(bus_register(m->bus, to, 0x10, dev) == 0);
		m->other = m->base;
		m->base = to;
		atomic_fetch_add(&m->moves, 1);
	}
	pthread_mutex_unlock(&m->lock);
}

static const struct device_ops mover_ops = { .type = "mover", .io = mover_io };

static void mover_init(struct mover *m, struct bus *b, uint64_t base, uint64_t other)
{
	memset(m, 0, sizeof(*m));
	m->dev.ops = &mover_ops;
	m->bus = b;
	m->base = base;
	m->other = other;
	pthread_mutex_init(&m->lock, NULL);
	assert_int_equal(bus_register(b, base, 0x10, &m->dev), 0);
}

struct remap_result {
	struct mover *m;
	bool hit[6];
	uint8_t data[6];
	int moves_after_first;
};

static void self_remap_body(void *p)
{
	struct remap_result *r = p;
	struct bus *b = r->m->bus;
	uint8_t d[4] = { 1, 2, 3, 4 };

	r->hit[0] = bus_dispatch(b, 0x4004, d, 4, true); /* moves to 0x5000 */
	r->moves_after_first = atomic_load(&r->m->moves);
	memset(d, 0, sizeof(d));
	r->hit[1] = bus_dispatch(b, 0x4004, d, 4, false);
	r->data[1] = d[0];
	r->hit[2] = bus_dispatch(b, 0x5004, d, 4, false);
	r->data[2] = d[0];
	r->hit[3] = bus_dispatch(b, 0x500f, d, 1, true); /* and back */
	r->hit[4] = bus_dispatch(b, 0x4000, d, 1, false);
	r->data[4] = d[0];
	r->hit[5] = bus_dispatch(b, 0x5000, d, 1, false);
	r->data[5] = d[0];
}

static void test_device_remaps_itself_from_io(void **state)
{
	struct bus b;
	struct mover m;
	struct remap_result r = { .m = &m };

	bus_init(&b, BUS_MMIO);
	mover_init(&m, &b, 0x4000, 0x5000);
	run_or_fail(self_remap_body, &r, 20);
	assert_true(r.hit[0]);
	assert_int_equal(r.moves_after_first, 1);
	assert_false(r.hit[1]); /* the old place is a hole now */
	assert_int_equal(r.data[1], 0xff);
	assert_true(r.hit[2]);
	assert_int_equal(r.data[2], 0x77);
	assert_true(r.hit[3]);
	assert_true(r.hit[4]);
	assert_int_equal(r.data[4], 0x77);
	assert_false(r.hit[5]);
	assert_int_equal(r.data[5], 0xff);
	assert_int_equal(atomic_load(&m.moves), 2);
	assert_int_equal(atomic_load(&m.late), 0);
	assert_int_equal(b.nr, 1);
	bus_destroy(&b);
	pthread_mutex_destroy(&m.lock);
}

/* A device that, on its first access, unregisters itself and registers
 * another device in its place (a front-end handing a range over). */
struct handover {
	struct device dev;
	struct bus *bus;
	struct device *next;
	bool hit[2];
	uint8_t data[2];
};

static void handover_io(struct device *dev, struct bus_access *a)
{
	struct handover *h = (struct handover *)dev;

	CHECK(bus_unregister(h->bus, a->base, dev) == 0);
	CHECK(bus_register(h->bus, a->base, 0x100, h->next) == 0);
	if (!a->is_write)
		memset(a->data, 0x33, a->len);
}

static const struct device_ops handover_ops = { .type = "handover", .io = handover_io };

static void handover_body(void *p)
{
	struct handover *h = p;

	h->hit[0] = bus_dispatch(h->bus, 0x100, &h->data[0], 1, false);
	h->hit[1] = bus_dispatch(h->bus, 0x180, &h->data[1], 1, false);
}

static void test_device_unregisters_itself_from_io(void **state)
{
	struct bus b;
	struct rec next;
	struct handover h = { .dev.ops = &handover_ops, .bus = &b, .next = &next.dev };

	rec_init(&next, 0x44);
	bus_init(&b, BUS_PIO);
	assert_int_equal(bus_register(&b, 0x100, 0x100, &h.dev), 0);
	run_or_fail(handover_body, &h, 20);
	assert_true(h.hit[0]);
	assert_int_equal(h.data[0], 0x33);
	assert_true(h.hit[1]);
	assert_int_equal(h.data[1], 0x44);
	assert_int_equal(next.calls, 1);
	assert_int_equal(next.last.offset, 0x80);
	assert_ptr_equal(b.ranges[0].dev, &next.dev);
	bus_destroy(&b);
}

/* ---- many vCPUs dispatching while the table changes under them ---- */

struct counter {
	struct device dev;
	uint8_t fill;
	atomic_long calls;
};

static void counter_io(struct device *dev, struct bus_access *a)
{
	struct counter *c = (struct counter *)dev;

	atomic_fetch_add(&c->calls, 1);
	if (!a->is_write)
		memset(a->data, c->fill, a->len);
}

static const struct device_ops counter_ops = { .type = "counter", .io = counter_io };

#define STRESS_READERS 4
#define STRESS_READS   20000 /* per reader */
#define STRESS_ROUNDS  2000  /* at least, and on until every reader is done */
#define STRESS_FILLERS 40

struct stress {
	struct bus bus;
	struct counter stable, flap, filler[STRESS_FILLERS];
	struct mover mover;
	atomic_int readers_done;
	atomic_long flap_hits, flap_misses;
};

static void *stress_reader(void *p)
{
	struct stress *s = p;
	uint8_t d[8];

	for (int n = 0; n < STRESS_READS; n++) {
		/* A range nobody touches is always there, whatever happens around it. */
		memset(d, 0, sizeof(d));
		CHECK(bus_dispatch(&s->bus, 0x1008, d, 8, false));
		CHECK(d[0] == 0x5a && d[7] == 0x5a);
		/* The flapping one is either there or reads as a hole, never half of each. */
		memset(d, 0, sizeof(d));
		if (bus_dispatch(&s->bus, 0x2000, d, 4, false)) {
			atomic_fetch_add(&s->flap_hits, 1);
			CHECK(d[0] == 0xa5 && d[3] == 0xa5);
		} else {
			atomic_fetch_add(&s->flap_misses, 1);
			CHECK(d[0] == 0xff && d[3] == 0xff);
		}
		/* The mover re-registers itself from inside these writes. */
		bus_dispatch(&s->bus, 0x4000, d, 1, true);
		bus_dispatch(&s->bus, 0x5000, d, 1, true);
	}
	atomic_fetch_add(&s->readers_done, 1);
	return NULL;
}

static void stress_body(void *p)
{
	struct stress *s = p;
	pthread_t readers[STRESS_READERS];

	for (int i = 0; i < STRESS_READERS; i++)
		CHECK(pthread_create(&readers[i], NULL, stress_reader, s) == 0);
	/* This thread is the one that reprograms the machine: the flapping range
	 * comes and goes, and enough others around it that the table grows,
	 * reallocates and shrinks while the readers look things up. */
	for (int round = 0; round < STRESS_ROUNDS || atomic_load(&s->readers_done) < STRESS_READERS;
	     round++) {
		int n = round % STRESS_FILLERS + 1;

		CHECK(bus_register(&s->bus, 0x2000, 0x10, &s->flap.dev) == 0);
		for (int i = 0; i < n; i++)
			CHECK(bus_register(&s->bus, 0x10000 + 0x100 * (uint64_t)i, 0x10, &s->filler[i].dev) ==
			      0);
		CHECK(bus_unregister(&s->bus, 0x2000, &s->flap.dev) == 0);
		for (int i = 0; i < n; i++)
			CHECK(bus_unregister(&s->bus, 0x10000 + 0x100 * (uint64_t)i, &s->filler[i].dev) == 0);
	}
	for (int i = 0; i < STRESS_READERS; i++)
		pthread_join(readers[i], NULL);
}

static void test_concurrent_dispatch_and_remap(void **state)
{
	struct stress *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	bus_init(&s->bus, BUS_MMIO);
	s->stable = (struct counter){ .dev.ops = &counter_ops, .fill = 0x5a };
	s->flap = (struct counter){ .dev.ops = &counter_ops, .fill = 0xa5 };
	for (int i = 0; i < STRESS_FILLERS; i++)
		s->filler[i] = (struct counter){ .dev.ops = &counter_ops, .fill = 0x01 };
	assert_int_equal(bus_register(&s->bus, 0x1000, 0x100, &s->stable.dev), 0);
	mover_init(&s->mover, &s->bus, 0x4000, 0x5000);
	run_or_fail(stress_body, s, 120);
	assert_int_equal(atomic_load(&s->stable.calls), STRESS_READERS * STRESS_READS);
	assert_int_equal(atomic_load(&s->stable.calls),
			 atomic_load(&s->flap_hits) + atomic_load(&s->flap_misses));
	assert_int_equal(atomic_load(&s->flap.calls), atomic_load(&s->flap_hits));
	assert_true(atomic_load(&s->mover.moves) > 0);
	printf("# %ld flapping hits, %ld misses, %d moves, %d accesses in flight to a moved range\n",
	       atomic_load(&s->flap_hits), atomic_load(&s->flap_misses), atomic_load(&s->mover.moves),
	       atomic_load(&s->mover.late));
	/* What is left: the stable range and the mover, wherever it ended. */
	assert_int_equal(s->bus.nr, 2);
	assert_int_equal(s->bus.ranges[0].base, 0x1000);
	assert_int_equal(s->bus.ranges[1].base, s->mover.base);
	bus_destroy(&s->bus);
	pthread_mutex_destroy(&s->mover.lock);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_overlap),
		cmocka_unit_test(test_wrap_refused),
		cmocka_unit_test(test_unregister),
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_register_all_rolls_back),
		cmocka_unit_test(test_device_remaps_itself_from_io),
		cmocka_unit_test(test_device_unregisters_itself_from_io),
		cmocka_unit_test(test_concurrent_dispatch_and_remap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
