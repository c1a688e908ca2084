/* Size parsing, run option parsing and the console escape filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "backends/console.h"
#include "core/migrate.h"
#include "cli/options.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

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

/* Sizes in messages read as the user wrote them, and parse back to the same value. */
static void test_format_size(void **state)
{
	static const struct {
		uint64_t bytes;
		const char *text;
	} cases[] = {
		{ 8ULL << 20, "8M" },     { 1500ULL << 10, "1500K" }, { 3ULL << 30, "3G" },
		{ 2ULL << 40, "2T" },     { 1025ULL << 20, "1025M" }, { 100, "100 bytes" },
		{ 1ULL << 50, "1024T" },  { 0, "0 bytes" },
	};
	char buf[32];
	uint64_t back;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_string_equal(format_size(cases[i].bytes, buf, sizeof(buf)), cases[i].text);
		if (strchr(buf, ' '))
			continue;
		assert_int_equal(parse_size(buf, &back), 0);
		assert_int_equal(back, cases[i].bytes);
	}
}

/* Migration addresses: numeric only, so the static binary never needs NSS. */
static void test_migrate_uri(void **state)
{
	static const char *const bad[] = {
		"tcp:host.example:80", "tcp:127.0.0.1:0", "tcp:127.0.0.1:65536", "tcp:127.0.0.1:", "tcp::80",
		"tcp:1.2.3:5", "tcp:[::1]:80x", "tcp:[::1:80", "unix:", "udp:1.2.3.4:5", "",
	};
	struct sockaddr_storage ss;
	socklen_t len;
	int family;

	(void)state;
	assert_int_equal(migrate_parse_uri("tcp:10.1.2.3:4444", &ss, &len, &family), 0);
	assert_int_equal(family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 4444);
	assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x0a010203);
	assert_int_equal(migrate_parse_uri("tcp:localhost:1", &ss, &len, &family), 0);
	assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(migrate_parse_uri("tcp:[::1]:65535", &ss, &len, &family), 0);
	assert_int_equal(family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
	assert_int_equal(migrate_parse_uri("unix:/run/x.sock", &ss, &len, &family), 0);
	assert_int_equal(family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/run/x.sock");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(migrate_parse_uri(bad[i], &ss, &len, &family), -1);
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

static void test_disk_and_net_options(void **state)
{
	struct vm_config cfg;
	char d1[] = "rootfs.ext4", d2[] = "data.img,ro,serial=DATA01", n1[] = "tap=tap0,mac=52:54:00:12:34:56",
	     n2[] = "tap=tap1";
	char *argv[] = { "run", "-k", "bz", "--disk", d1, "-d", d2, "--net", n1, "-n", n2, "--rng",
			 "--console", "virtio", NULL };

	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), 0);
	assert_int_equal(cfg.nr_disks, 2);
	assert_string_equal(cfg.disks[0].path, "rootfs.ext4");
	assert_false(cfg.disks[0].readonly);
	assert_string_equal(cfg.disks[0].serial, "");
	assert_string_equal(cfg.disks[1].path, "data.img");
	assert_true(cfg.disks[1].readonly);
	assert_string_equal(cfg.disks[1].serial, "DATA01");
	assert_int_equal(cfg.nr_nets, 2);
	assert_string_equal(cfg.nets[0].tap, "tap0");
	assert_true(cfg.nets[0].mac_set);
	assert_memory_equal(cfg.nets[0].mac, "\x52\x54\x00\x12\x34\x56", 6);
	assert_string_equal(cfg.nets[1].tap, "tap1");
	assert_false(cfg.nets[1].mac_set);
	assert_true(cfg.rng);
	assert_int_equal(cfg.console, CONSOLE_VIRTIO);
}

static void test_disk_and_net_errors(void **state)
{
	struct disk_config d;
	struct net_config n;
	uint8_t mac[6];
	char e1[] = "", e2[] = "x.img,rw", e3[] = "x.img,serial=123456789012345678901",
	     e4[] = "mac=52:54:00:12:34:56", e5[] = "tap=", e6[] = "tap=tap0,mac=01:00:5e:00:00:01",
	     e7[] = "tap=averyveryverylongname", e8[] = "tap=t,speed=10";

	assert_int_equal(parse_disk_opt(e1, &d), -1);
	assert_int_equal(parse_disk_opt(e2, &d), -1);
	assert_int_equal(parse_disk_opt(e3, &d), -1); /* 21 chars: over the 20-byte id */
	assert_int_equal(parse_net_opt(e4, &n), -1);   /* no tap */
	assert_int_equal(parse_net_opt(e5, &n), -1);
	assert_int_equal(parse_net_opt(e6, &n), -1);   /* multicast MAC */
	assert_int_equal(parse_net_opt(e7, &n), -1);
	assert_int_equal(parse_net_opt(e8, &n), -1);
	assert_int_equal(parse_mac("52:54:00:ab:CD:ef", mac), 0);
	assert_int_equal(mac[4], 0xcd);
	assert_int_equal(parse_mac("52:54:00:ab:cd", mac), -1);
	assert_int_equal(parse_mac("52:54:00:ab:cd:ef:00", mac), -1);
	assert_int_equal(parse_mac("52-54-00-ab-cd-ef", mac), -1);
	assert_int_equal(parse_mac("5:54:00:ab:cd:ef", mac), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_units),
		cmocka_unit_test(test_parse_size_malformed),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_migrate_uri),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_run_args_full),
		cmocka_unit_test(test_run_args_defaults),
		cmocka_unit_test(test_run_args_usage_errors),
		cmocka_unit_test(test_run_args_help),
		cmocka_unit_test(test_console_filter),
		cmocka_unit_test(test_disk_and_net_options),
		cmocka_unit_test(test_disk_and_net_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
