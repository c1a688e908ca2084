/* Size parsing, run option parsing and the console escape filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "backends/console.h"
#include "cli/options.h"

static void test_parse_size_units(void **state)
{
	uint64_t v;

	assert_int_equal(parse_size("512M", &v), 0);
	assert_true(v == 512ULL << 20);
	assert_int_equal(parse_size("2G", &v), 0);
	assert_true(v == 2ULL << 30);
	assert_int_equal(parse_size("64m", &v), 0);
	assert_true(v == 64ULL << 20);
	assert_int_equal(parse_size("1024K", &v), 0);
	assert_true(v == 1ULL << 20);
	assert_int_equal(parse_size("1T", &v), 0);
	assert_true(v == 1ULL << 40);
	assert_int_equal(parse_size("256", &v), 0); /* plain number: MiB */
	assert_true(v == 256ULL << 20);
	assert_int_equal(parse_size("3GiB", &v), 0);
	assert_true(v == 3ULL << 30);
	assert_int_equal(parse_size("8MB", &v), 0);
	assert_true(v == 8ULL << 20);
}

static void test_parse_size_malformed(void **state)
{
	uint64_t v = 77;
	const char *bad[] = { "", "M", "12Q", "-1G", " 1G", "1G ", "1.5G", "1GG", "0x10M",
			      "99999999999999999999", "20000000000T", "1iB", NULL };

	for (int i = 0; bad[i]; i++) {
		assert_int_equal(parse_size(bad[i], &v), -1);
	}
	assert_true(v == 77); /* untouched on error */
}

static void test_parse_uint(void **state)
{
	unsigned v;

	assert_int_equal(parse_uint("4", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(parse_uint("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_uint("4294967295", &v), 0);
	assert_int_equal(parse_uint("4294967296", &v), -1);
	assert_int_equal(parse_uint("-1", &v), -1);
	assert_int_equal(parse_uint("2x", &v), -1);
	assert_int_equal(parse_uint("", &v), -1);
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void test_run_args_full(void **state)
{
	struct vm_config cfg;
	char *argv[] = { "run", "-k", "bz", "--initrd", "ird", "-a", "console=ttyS0 quiet", "--cpus", "4",
			 "-m", "1G", "--console", "none", "--no-reboot", "--stats", NULL };

	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), 0);
	assert_string_equal(cfg.kernel, "bz");
	assert_string_equal(cfg.initrd, "ird");
	assert_string_equal(cfg.append, "console=ttyS0 quiet");
	assert_int_equal(cfg.cpus, 4);
	assert_true(cfg.memory == 1ULL << 30);
	assert_int_equal(cfg.console, CONSOLE_NONE);
	assert_true(cfg.no_reboot);
	assert_true(cfg.stats);
}

static void test_run_args_defaults(void **state)
{
	struct vm_config cfg;
	char *argv[] = { "run", "--kernel=/boot/vmlinuz", NULL };

	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), 0);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	assert_null(cfg.initrd);
	assert_null(cfg.append);
	assert_int_equal(cfg.cpus, 1);
	assert_true(cfg.memory == 256ULL << 20);
	assert_int_equal(cfg.console, CONSOLE_SERIAL);
	assert_false(cfg.no_reboot);
}

static void test_run_args_usage_errors(void **state)
{
	struct vm_config cfg;
	char *no_kernel[] = { "run", "-c", "2", NULL };
	char *unknown[] = { "run", "-k", "x", "--frobnicate", NULL };
	char *missing_val[] = { "run", "-k", NULL };
	char *bad_cpus[] = { "run", "-k", "x", "-c", "two", NULL };
	char *bad_mem[] = { "run", "-k", "x", "-m", "12Q", NULL };
	char *bad_console[] = { "run", "-k", "x", "--console", "vga", NULL };
	char *extra[] = { "run", "-k", "x", "stray", NULL };

	assert_int_equal(run_parse_args(ARGC(no_kernel), no_kernel, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(ARGC(unknown), unknown, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(ARGC(missing_val), missing_val, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(ARGC(bad_cpus), bad_cpus, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(ARGC(bad_mem), bad_mem, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(ARGC(bad_console), bad_console, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(ARGC(extra), extra, &cfg), EXIT_USAGE);
}

static void test_run_args_help(void **state)
{
	struct vm_config cfg;
	char *argv[] = { "run", "--help", NULL };

	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), -1);
}

static void test_console_filter(void **state)
{
	uint8_t out[16];
	bool esc = false, quit = false;
	size_t n;

	n = console_filter(&esc, (const uint8_t *)"ab", 2, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
	/* Ctrl-A Ctrl-A sends one Ctrl-A. */
	n = console_filter(&esc, (const uint8_t *)"\x01\x01z", 3, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\x01z", 2);
	assert_false(quit);
	/* Escape split across reads, then x quits. */
	n = console_filter(&esc, (const uint8_t *)"q\x01", 2, out, &quit);
	assert_int_equal(n, 1);
	assert_true(esc);
	n = console_filter(&esc, (const uint8_t *)"x", 1, out, &quit);
	assert_int_equal(n, 0);
	assert_true(quit);
	/* Unknown escape passes both bytes through. */
	quit = false;
	n = console_filter(&esc, (const uint8_t *)"\x01" "c", 2, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\x01" "c", 2);
	assert_false(quit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_units),
		cmocka_unit_test(test_parse_size_malformed),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_run_args_full),
		cmocka_unit_test(test_run_args_defaults),
		cmocka_unit_test(test_run_args_usage_errors),
		cmocka_unit_test(test_run_args_help),
		cmocka_unit_test(test_console_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
