/* The host tuning options (core/tuning.c): parsing, merging a restore's command line over a
 * snapshot's, their record in snapshots and migration streams, and the RAM backing they ask
 * for (core/memory.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/options.h"
#include "core/memory.h"
#include "core/snapshot.h"
#include "core/tuning.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_cpulist(void **state)
{
	cpu_set_t s;
	char buf[64];

	(void)state;
	assert_int_equal(cpulist_parse("3", &s), 0);
	assert_int_equal(CPU_COUNT(&s), 1);
	assert_true(CPU_ISSET(3, &s));
	assert_int_equal(cpulist_parse("0-2,5,7-8", &s), 0);
	assert_int_equal(CPU_COUNT(&s), 6);
	assert_string_equal(cpulist_format(&s, buf, sizeof(buf)), "0-2,5,7-8");
	static const char *const bad[] = { "",   "a",    "1,",  ",1",    "3-1", "1-",
					   "-1", "1--2", "1 2", "99999", "1;2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cpulist_parse(bad[i], &s), -1);
}

static void test_vcpu_affinity(void **state)
{
	cpu_set_t s;
	char buf[64];

	(void)state;
	/* One CPU per vCPU, a range, and a list continued after a comma. */
	assert_int_equal(vcpu_affinity_get("0=2,1=3", 0, &s), 1);
	assert_string_equal(cpulist_format(&s, buf, sizeof(buf)), "2");
	assert_int_equal(vcpu_affinity_get("0=2,1=3", 1, &s), 1);
	assert_string_equal(cpulist_format(&s, buf, sizeof(buf)), "3");
	assert_int_equal(vcpu_affinity_get("0=2,1=3", 2, &s), 0);
	assert_int_equal(vcpu_affinity_get("0=2-3,5,1=4", 0, &s), 1);
	assert_string_equal(cpulist_format(&s, buf, sizeof(buf)), "2-3,5");
	assert_int_equal(vcpu_affinity_get("0=2-3,5,1=4", 1, &s), 1);
	assert_string_equal(cpulist_format(&s, buf, sizeof(buf)), "4");
	assert_int_equal(vcpu_affinity_max_vcpu("0=2-3,5,3=4"), 3);
	static const char *const bad[] = { "",         "2",   "=1",  "0=",    "0=1,",
					   "0=1,,1=2", "a=1", "0=x", "0=1=2", "0:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vcpu_affinity_get(bad[i], 0, &s), -1);
		assert_int_equal(vcpu_affinity_max_vcpu(bad[i]), -1);
	}
}

/* The options on the run command line, optional values included. */
static void test_run_options(void **state)
{
	char *argv[] = { "run",
			 "-k",
			 "bz",
			 "--vcpu-affinity",
			 "0=2,1=3",
			 "--io-affinity",
			 "0-1",
			 "--rt-priority",
			 "50",
			 "--mlock",
			 "--hugepages=/dev/hugepages",
			 "--prealloc" };
	char *argv2[] = { "run", "-k", "bz", "--hugepages", "--mlock=off", "--prealloc=on" };
	struct vm_config cfg;

	(void)state;
	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), 0);
	assert_string_equal(cfg.tuning.vcpu_affinity, "0=2,1=3");
	assert_string_equal(cfg.tuning.io_affinity, "0-1");
	assert_int_equal(cfg.tuning.rt_priority, 50);
	assert_true(cfg.tuning.mlock && cfg.tuning.prealloc && cfg.tuning.hugepages);
	assert_string_equal(cfg.tuning.hugepage_dir, "/dev/hugepages");
	assert_int_equal(cfg.tuning.given, TUNE_VCPU_AFFINITY | TUNE_IO_AFFINITY | TUNE_RT_PRIORITY |
						   TUNE_MLOCK | TUNE_HUGEPAGES | TUNE_PREALLOC);
	assert_int_equal(run_parse_args(ARGC(argv2), argv2, &cfg), 0);
	assert_true(cfg.tuning.hugepages && !cfg.tuning.mlock && cfg.tuning.prealloc);
	assert_string_equal(cfg.tuning.hugepage_dir, "");
	/* None given: all off, nothing marked given. */
	char *plain[] = { "run", "-k", "bz" };
	assert_int_equal(run_parse_args(ARGC(plain), plain, &cfg), 0);
	assert_int_equal(cfg.tuning.given, 0);
	assert_false(cfg.tuning.mlock || cfg.tuning.hugepages || cfg.tuning.prealloc ||
		     cfg.tuning.rt_priority);
}

static void test_run_option_errors(void **state)
{
	static const char *const bad[][2] = {
		{ "--rt-priority", "100" }, { "--rt-priority", "-1" },       { "--rt-priority", "x" },
		{ "--vcpu-affinity", "1" }, { "--vcpu-affinity", "0=" },     { "--io-affinity", "1-" },
		{ "--mlock=yes", NULL },    { "--hugepages=rel/dir", NULL }, { "--prealloc=1", NULL },
	};
	struct vm_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "run", "-k", "bz", (char *)bad[i][0], (char *)bad[i][1] };

		assert_int_equal(run_parse_args(bad[i][1] ? 5 : 4, argv, &cfg), EXIT_USAGE);
	}
}

/* The configuration record: a round trip, an older record without the tuning (kept off), and
 * hostile bytes refused. */
static void test_config_record(void **state)
{
	struct vm_config cfg = { .kernel = "k", .cpus = 2, .memory = 64ULL << 20 };
	struct snap_config sc;
	struct ser_writer w;
	struct ser_reader r;

	(void)state;
	assert_int_equal(vm_tuning_set(&cfg.tuning, "vcpu-affinity", "0=1,1=0"), 0);
	assert_int_equal(vm_tuning_set(&cfg.tuning, "rt-priority", "70"), 0);
	assert_int_equal(vm_tuning_set(&cfg.tuning, "hugepages", NULL), 0);
	assert_int_equal(vm_tuning_set(&cfg.tuning, "mlock", NULL), 0);
	ser_writer_init(&w);
	snap_config_save(&cfg, &w);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_load(&sc, &r), 0);
	assert_string_equal(sc.cfg.tuning.vcpu_affinity, "0=1,1=0");
	assert_int_equal(sc.cfg.tuning.rt_priority, 70);
	assert_true(sc.cfg.tuning.hugepages && sc.cfg.tuning.mlock && !sc.cfg.tuning.prealloc);
	assert_int_equal(sc.cfg.tuning.given, 0);
	snap_config_free(&sc);

	/* Cut before the tuning record (a file of an older kvmbox): loads, tuning off. Its
	 * record is the last 4 + 4 + len bytes. */
	{
		struct ser_writer t;
		size_t base;

		ser_writer_init(&t);
		vm_tuning_save(&cfg.tuning, &t);
		base = w.len - 8 - t.len;
		ser_writer_free(&t);
		ser_reader_init(&r, w.buf, base);
		assert_int_equal(snap_config_load(&sc, &r), 0);
		assert_false(sc.cfg.tuning.hugepages || sc.cfg.tuning.mlock);
		assert_string_equal(sc.cfg.tuning.vcpu_affinity, "");
		snap_config_free(&sc);
		/* A truncated record, and every single-byte change of it, never crash; the
		 * truncations are refused. */
		for (size_t cut = base + 1; cut < w.len; cut++) {
			ser_reader_init(&r, w.buf, cut);
			assert_int_equal(snap_config_load(&sc, &r), -1);
		}
		for (size_t i = base; i < w.len; i++) {
			uint8_t *copy = malloc(w.len);

			memcpy(copy, w.buf, w.len);
			copy[i] ^= 0xff;
			ser_reader_init(&r, copy, w.len);
			if (snap_config_load(&sc, &r) == 0)
				snap_config_free(&sc);
			free(copy);
		}
	}
	ser_writer_free(&w);
}

/* --prealloc populates every page; without it a fresh mapping has none resident. */
static void test_prealloc(void **state)
{
	static const struct mem_region layout[1] = { { .gpa = 0, .size = 4ULL << 20 } };
	struct ram_backing b = { .prealloc = true };
	unsigned char vec[1024];
	struct guest_mem m;
	size_t resident = 0;

	(void)state;
	assert_int_equal(guest_mem_alloc_backed(&m, layout, 1, &b), 0);
	assert_false(guest_mem_huge(&m));
	assert_int_equal(mincore(m.base, m.total, vec), 0);
	for (size_t i = 0; i < m.total / 4096; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, m.total / 4096);
	guest_mem_free(&m);

	assert_int_equal(guest_mem_alloc_backed(&m, layout, 1, NULL), 0);
	assert_int_equal(mincore(m.base, m.total, vec), 0);
	resident = 0;
	for (size_t i = 0; i < m.total / 4096; i++)
		resident += vec[i] & 1;
	assert_true(resident < m.total / 4096);
	guest_mem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpulist),       cmocka_unit_test(test_vcpu_affinity),
		cmocka_unit_test(test_run_options),   cmocka_unit_test(test_run_option_errors),
		cmocka_unit_test(test_config_record), cmocka_unit_test(test_prealloc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
