/* Size parsing, run option parsing and the console escape filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <getopt.h>
#include <string.h>

#include "backends/console.h"
#include "core/migrate.h"
#include "cli/options.h"
#include "core/devtype.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"

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
		{ 8ULL << 20, "8M" },    { 1500ULL << 10, "1500K" }, { 3ULL << 30, "3G" },
		{ 2ULL << 40, "2T" },    { 1025ULL << 20, "1025M" }, { 100, "100 bytes" },
		{ 1ULL << 50, "1024T" }, { 0, "0 bytes" },
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
		"tcp:host.example:80",
		"tcp:127.0.0.1:0",
		"tcp:127.0.0.1:65536",
		"tcp:127.0.0.1:",
		"tcp::80",
		"tcp:1.2.3:5",
		"tcp:[::1]:80x",
		"tcp:[::1:80",
		"unix:",
		"udp:1.2.3.4:5",
		"",
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
	const char *bad[] = { "",
			      "M",
			      "12Q",
			      "-1G",
			      " 1G",
			      "1G ",
			      "1.5G",
			      "1GG",
			      "0x10M",
			      "99999999999999999999",
			      "20000000000T",
			      "1iB",
			      NULL };

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
	char *argv[] = { "run",     "-k", "bz", "--initrd", "ird",       "-a",   "console=ttyS0 quiet",
			 "--cpus",  "4",  "-m", "1G",       "--console", "none", "--no-reboot",
			 "--stats", NULL };

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

/* The key options: paths kept (read later, by vm_keys_load), never on by default; restore and
 * run --incoming take them too. */
static void test_run_args_keys(void **state)
{
	struct vm_config cfg;
	char *argv[] = {
		"run",  "-k", "bz", "--migration-key", "/k/m", "--insecure-migration", "--snapshot-key",
		"/k/s", NULL
	};
	char *none[] = { "run", "-k", "bz", NULL };
	char *restore[] = { "restore",
			    "snap",
			    "-k",
			    "bz",
			    "--migration-key",
			    "/k/m",
			    "--snapshot-key",
			    "/k/s",
			    "--insecure-migration",
			    NULL };
	struct restore_args ra;

	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), 0);
	assert_string_equal(cfg.keys.migration_key_file, "/k/m");
	assert_string_equal(cfg.keys.snapshot_key_file, "/k/s");
	assert_true(cfg.keys.insecure_migration);
	assert_false(cfg.keys.have_migration_key);
	assert_int_equal(run_parse_args(ARGC(none), none, &cfg), 0);
	assert_null(cfg.keys.migration_key_file);
	assert_null(cfg.keys.snapshot_key_file);
	assert_false(cfg.keys.insecure_migration);
	assert_int_equal(restore_parse_args(ARGC(restore), restore, &cfg, &ra), 0);
	assert_string_equal(cfg.keys.migration_key_file, "/k/m");
	assert_string_equal(cfg.keys.snapshot_key_file, "/k/s");
	assert_true(cfg.keys.insecure_migration);
	vm_config_free_devices(&cfg);
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

/* restore and run --incoming take the VM's host resources from their own command line: the
 * kernel is required, and restore takes every run option but --incoming. */
static void test_restore_and_incoming_args(void **state)
{
	struct vm_config cfg;
	struct restore_args ra;
	char *incoming_no_kernel[] = { "run", "--incoming", "unix:/tmp/m", "-m", "512M", NULL };
	char *restore_no_kernel[] = { "restore", "snap", "-m", "512M", NULL };
	char *restore_incoming[] = { "restore", "snap", "-k", "k", "--incoming", "unix:/x", NULL };
	char *restore_two_files[] = { "restore", "a", "b", "-k", "k", NULL };
	char *restore_full[] = { "restore",  "--copy",      "-k",        "bz", "snap", "-m",
				 "512M",     "--disk",      "/d.img,ro", "-c", "2",    "--console=none",
				 "--paused", "--no-verify", "--mlock",   NULL };

	(void)state;
	assert_int_equal(run_parse_args(ARGC(incoming_no_kernel), incoming_no_kernel, &cfg), EXIT_USAGE);
	assert_int_equal(restore_parse_args(ARGC(restore_no_kernel), restore_no_kernel, &cfg, &ra),
			 EXIT_USAGE);
	assert_int_equal(restore_parse_args(ARGC(restore_incoming), restore_incoming, &cfg, &ra), EXIT_USAGE);
	assert_int_equal(restore_parse_args(ARGC(restore_two_files), restore_two_files, &cfg, &ra),
			 EXIT_USAGE);
	assert_int_equal(restore_parse_args(ARGC(restore_full), restore_full, &cfg, &ra), 0);
	assert_string_equal(ra.file, "snap");
	assert_true(ra.copy && ra.paused && ra.no_verify);
	assert_string_equal(cfg.kernel, "bz");
	assert_int_equal(cfg.memory, 512ULL << 20);
	assert_int_equal(cfg.cpus, 2);
	assert_int_equal(cfg.console, CONSOLE_NONE);
	assert_int_equal(cfg.nr_devs, 1);
	assert_true(cfg.tuning.mlock);
	vm_config_free_devices(&cfg);
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
	n = console_filter(&esc,
			   (const uint8_t *)"\x01"
					    "c",
			   2, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out,
			    "\x01"
			    "c",
			    2);
	assert_false(quit);
}

/* The i-th configuration of type t in cfg (NULL when there is none). */
static const void *nth(const struct vm_config *cfg, const struct device_type *t, unsigned i)
{
	for (unsigned k = 0; k < cfg->nr_devs; k++)
		if (cfg->devs[k].type == t && i-- == 0)
			return cfg->devs[k].cfg;
	return NULL;
}

static void test_disk_and_net_options(void **state)
{
	struct vm_config cfg;
	char d1[] = "rootfs.ext4", d2[] = "data.img,ro,serial=DATA01",
	     n1[] = "tap=tap0,mac=52:54:00:12:34:56", n2[] = "tap=tap1";
	char *argv[] = { "run", "-k", "bz", "--disk", d1,          "-d",     d2,      "--net",
			 n1,    "-n", n2,   "--rng",  "--console", "virtio", "--rng", NULL };
	const struct disk_config *a, *b;
	const struct net_config *x, *y;

	assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), 0);
	assert_int_equal(vm_config_count(&cfg, &virtio_blk_type), 2);
	a = nth(&cfg, &virtio_blk_type, 0);
	b = nth(&cfg, &virtio_blk_type, 1);
	assert_string_equal(a->path, "rootfs.ext4");
	assert_false(a->readonly);
	assert_string_equal(a->serial, "");
	assert_string_equal(b->path, "data.img");
	assert_true(b->readonly);
	assert_string_equal(b->serial, "DATA01");
	assert_int_equal(vm_config_count(&cfg, &virtio_net_type), 2);
	x = nth(&cfg, &virtio_net_type, 0);
	y = nth(&cfg, &virtio_net_type, 1);
	assert_string_equal(x->tap, "tap0");
	assert_true(x->mac_set);
	assert_memory_equal(x->mac, "\x52\x54\x00\x12\x34\x56", 6);
	assert_string_equal(y->tap, "tap1");
	assert_false(y->mac_set);
	/* A flag given twice is one device. */
	assert_int_equal(vm_config_count(&cfg, &virtio_rng_type), 1);
	assert_int_equal(vm_config_count(&cfg, &virtio_balloon_type), 0);
	assert_int_equal(cfg.console, CONSOLE_VIRTIO);
	vm_config_free_devices(&cfg);
}

static void test_disk_and_net_errors(void **state)
{
	static const char *const bad[] = {
		"--disk=",
		"--disk=x.img,rw",
		"--disk=x.img,serial=123456789012345678901",
		"--disk=x.img,ro=1",
		"--disk=,ro",
		"--net=mac=52:54:00:12:34:56",
		"--net=tap=",
		"--net=tap=tap0,mac=01:00:5e:00:00:01",
		"--net=tap=averyveryverylongname",
		"--net=tap=t,speed=10",
		"--net=tap=t,mac",
	};
	struct vm_config cfg;
	uint8_t mac[6];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "run", "-k", "bz", (char *)bad[i], NULL };

		assert_int_equal(run_parse_args(ARGC(argv), argv, &cfg), EXIT_USAGE);
	}
	/* More disks than a VM may have. */
	{
		char *argv[40] = { "run", "-k", "bz" };
		int n = 3;

		while (n < 3 + 17)
			argv[n++] = "--disk=x.img";
		argv[n] = NULL;
		assert_int_equal(run_parse_args(n, argv, &cfg), EXIT_USAGE);
	}
	assert_int_equal(parse_mac("52:54:00:ab:CD:ef", mac), 0);
	assert_int_equal(mac[4], 0xcd);
	assert_int_equal(parse_mac("52:54:00:ab:cd", mac), -1);
	assert_int_equal(parse_mac("52:54:00:ab:cd:ef:00", mac), -1);
	assert_int_equal(parse_mac("52-54-00-ab-cd-ef", mac), -1);
	assert_int_equal(parse_mac("5:54:00:ab:cd:ef", mac), -1);
}

/* The option table is the one source of `run --help` and of config-file keys. */
static void test_option_table(void **state)
{
	struct vm_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(run_option_set(&cfg, "memory", "1G"), 0);
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_int_equal(run_option_set(&cfg, "disk", "a.img,ro"), 0);
	assert_int_equal(run_option_set(&cfg, "balloon", NULL), 0);
	assert_int_equal(cfg.nr_devs, 2);
	assert_ptr_equal(cfg.devs[1].type, &virtio_balloon_type);
	assert_int_equal(run_option_set(&cfg, "no-such-option", "x"), EXIT_USAGE);
	assert_int_equal(run_option_set(&cfg, "cpus", "two"), EXIT_USAGE);
	vm_config_free_devices(&cfg);
	/* Every device type has a unique option and name. */
	for (unsigned i = 0; i < nr_device_types; i++)
		for (unsigned j = i + 1; j < nr_device_types; j++) {
			assert_string_not_equal(device_types[i]->option, device_types[j]->option);
			assert_string_not_equal(device_types[i]->name, device_types[j]->name);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_units),     cmocka_unit_test(test_parse_size_malformed),
		cmocka_unit_test(test_format_size),          cmocka_unit_test(test_migrate_uri),
		cmocka_unit_test(test_parse_uint),           cmocka_unit_test(test_run_args_full),
		cmocka_unit_test(test_run_args_defaults),    cmocka_unit_test(test_run_args_usage_errors),
		cmocka_unit_test(test_run_args_help),        cmocka_unit_test(test_console_filter),
		cmocka_unit_test(test_disk_and_net_options), cmocka_unit_test(test_disk_and_net_errors),
		cmocka_unit_test(test_option_table),         cmocka_unit_test(test_restore_and_incoming_args),
		cmocka_unit_test(test_run_args_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
