/* test_config_file.c - kvmbox run --config FILE: the INI file's keys are the run options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/options.h"
#include "core/devtype.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"

static char dir[64];
static char path[128];
static char err[8192]; /* what the last parse printed on stderr */

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/kvmbox-config-XXXXXX", tmp && strlen(tmp) < 30 ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_file(const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/* Parse `kvmbox run --config FILE [extra...]` (restore FILE when restore) with FILE holding
 * text; stderr is caught in err. */
static int parse(const char *text, const char *const *extra, bool restore, struct vm_config *cfg)
{
	char *argv[32];
	int argc = 0, saved, saved_out, fd, null, ret;
	struct restore_args ra;
	ssize_t n;

	if (text)
		write_file(text, strlen(text));
	argv[argc++] = restore ? "restore" : "run";
	argv[argc++] = "--config";
	argv[argc++] = path;
	for (; extra && *extra; extra++)
		argv[argc++] = (char *)*extra;
	if (restore)
		argv[argc++] = "/snap";
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	saved = dup(2);
	saved_out = dup(1);
	fd = open(dir, O_TMPFILE | O_RDWR, 0600);
	null = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && saved_out >= 0 && fd >= 0 && null >= 0);
	dup2(fd, 2);
	dup2(null, 1); /* --help */
	ret = restore ? restore_parse_args(argc, argv, cfg, &ra) : run_parse_args(argc, argv, cfg);
	fflush(stdout);
	fflush(stderr);
	dup2(saved, 2);
	dup2(saved_out, 1);
	close(saved);
	close(saved_out);
	close(null);
	n = pread(fd, err, sizeof(err) - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	return ret;
}

/* The file fails to parse with one line on stderr: "kvmbox: <path>:<line>: ...<want>...". */
static void refused(const char *text, unsigned line, const char *want)
{
	struct vm_config cfg;
	char prefix[256];

	assert_int_equal(parse(text, NULL, false, &cfg), EXIT_USAGE);
	snprintf(prefix, sizeof(prefix), "kvmbox: %s:%u: ", path, line);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, want))
		fail_msg("want '%s...%s', got '%s'", prefix, want, err);
	assert_non_null(strchr(err, '\n'));
	assert_ptr_equal(strchr(err, '\n') + 1, err + strlen(err)); /* one line */
	assert_null(cfg.strings);
	assert_int_equal(cfg.nr_devs, 0);
}

static const void *nth(const struct vm_config *cfg, const struct device_type *t, unsigned i)
{
	for (unsigned k = 0; k < cfg->nr_devs; k++)
		if (cfg->devs[k].type == t && i-- == 0)
			return cfg->devs[k].cfg;
	return NULL;
}

/* Every kind of key, at the top and under [vm], with comments, blanks, indentation and a BOM. */
static void test_config_every_kind(void **state)
{
	static const char text[] = "\xef\xbb\xbf# a VM\n"
				   "kernel = bzImage\n"
				   "\n"
				   "; the rest under [vm]\n"
				   "[vm]\n"
				   "  initrd=  initrd.img  \n"
				   "\tappend = console=ttyS0 root=/dev/vda quiet ; a comment\n"
				   "cpus = 2\n"
				   "memory = 512M\n"
				   "console = none\n"
				   "api = /run/vm.sock\n"
				   "disk = rootfs.ext4\n"
				   "disk = data.img,ro,serial=DATA01\n"
				   "net = tap=tap0\n"
				   "rng = on\n"
				   "balloon = false\n"
				   "no-reboot = yes\n"
				   "stats = TRUE\n"
				   "insecure-migration = 1\n"
				   "mlock = off\n"
				   "hugepages =\n"
				   "prealloc = on\n"
				   "vcpu-affinity = 0=1,1=2-3\n"
				   "seccomp = log\n"
				   "[vm]\n"
				   "rt-priority = 0\n";
	const struct disk_config *a, *b;
	struct vm_config cfg;

	assert_int_equal(parse(text, NULL, false, &cfg), 0);
	assert_string_equal(err, "");
	/* Relative paths stay as written: relative to the working directory, as on the command
	 * line. */
	assert_string_equal(cfg.kernel, "bzImage");
	assert_string_equal(cfg.initrd, "initrd.img");
	assert_string_equal(cfg.append, "console=ttyS0 root=/dev/vda quiet");
	assert_int_equal(cfg.cpus, 2);
	assert_true(cfg.memory == 512ULL << 20);
	assert_int_equal(cfg.console, CONSOLE_NONE);
	assert_string_equal(cfg.api, "/run/vm.sock");
	assert_int_equal(vm_config_count(&cfg, &virtio_blk_type), 2);
	a = nth(&cfg, &virtio_blk_type, 0);
	b = nth(&cfg, &virtio_blk_type, 1);
	assert_string_equal(a->path, "rootfs.ext4");
	assert_false(a->readonly);
	assert_string_equal(b->path, "data.img");
	assert_true(b->readonly);
	assert_string_equal(b->serial, "DATA01");
	assert_string_equal(((const struct net_config *)nth(&cfg, &virtio_net_type, 0))->tap, "tap0");
	assert_int_equal(vm_config_count(&cfg, &virtio_rng_type), 1);
	assert_int_equal(vm_config_count(&cfg, &virtio_balloon_type), 0);
	assert_true(cfg.no_reboot);
	assert_true(cfg.stats);
	assert_true(cfg.keys.insecure_migration);
	assert_false(cfg.tuning.mlock);
	assert_true(cfg.tuning.given & TUNE_MLOCK);
	assert_true(cfg.tuning.hugepages); /* empty: the option without a value, --hugepages */
	assert_string_equal(cfg.tuning.hugepage_dir, "");
	assert_true(cfg.tuning.prealloc);
	assert_string_equal(cfg.tuning.vcpu_affinity, "0=1,1=2-3");
	assert_int_equal(cfg.sandbox.seccomp, SECCOMP_LOG);
	assert_true(cfg.tuning.given & TUNE_RT_PRIORITY);
	vm_config_free_devices(&cfg);
	assert_null(cfg.strings);

	/* false leaves a flag as it was: not given. */
	assert_int_equal(parse("kernel = k\nno-reboot = off\nrng = no\nstats = 0\n", NULL, false, &cfg), 0);
	assert_false(cfg.no_reboot);
	assert_false(cfg.stats);
	assert_int_equal(cfg.nr_devs, 0);
	vm_config_free_devices(&cfg);
}

/* The command line wins: a single value replaces the file's, the first --disk replaces all the
 * file's disks (and the file's other devices stay). */
static void test_config_command_line_wins(void **state)
{
	static const char text[] = "kernel = /boot/vmlinuz\n"
				   "memory = 1G\n"
				   "cpus = 2\n"
				   "append = from the file\n"
				   "disk = a.img\n"
				   "disk = b.img\n"
				   "net = tap=tap0\n"
				   "rng = on\n";
	static const char *const cli[] = { "--memory", "2G",    "-a", "from the command line",
					   "--disk",   "c.img", "-d", "d.img",
					   "--rng",    NULL };
	static const char *const net[] = { "--net", "tap=tap9", "--kernel", "/k", NULL };
	struct vm_config cfg;

	assert_int_equal(parse(text, cli, false, &cfg), 0);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	assert_true(cfg.memory == 2ULL << 30);
	assert_int_equal(cfg.cpus, 2);
	assert_string_equal(cfg.append, "from the command line");
	assert_int_equal(vm_config_count(&cfg, &virtio_blk_type), 2);
	assert_string_equal(((const struct disk_config *)nth(&cfg, &virtio_blk_type, 0))->path, "c.img");
	assert_string_equal(((const struct disk_config *)nth(&cfg, &virtio_blk_type, 1))->path, "d.img");
	assert_int_equal(vm_config_count(&cfg, &virtio_net_type), 1);
	assert_int_equal(vm_config_count(&cfg, &virtio_rng_type), 1);
	vm_config_free_devices(&cfg);

	assert_int_equal(parse(NULL, net, false, &cfg), 0);
	assert_string_equal(cfg.kernel, "/k");
	assert_int_equal(vm_config_count(&cfg, &virtio_blk_type), 2); /* the file's */
	assert_int_equal(vm_config_count(&cfg, &virtio_net_type), 1);
	assert_string_equal(((const struct net_config *)nth(&cfg, &virtio_net_type, 0))->tap, "tap9");
	vm_config_free_devices(&cfg);

	/* The kernel may come from the command line alone; restore takes --config too. */
	assert_int_equal(parse("memory = 64M\n", (const char *const[]){ "-k", "bz", NULL }, false, &cfg), 0);
	assert_string_equal(cfg.kernel, "bz");
	assert_true(cfg.memory == 64ULL << 20);
	vm_config_free_devices(&cfg);
	assert_int_equal(
		parse("kernel = bz\ncpus = 3\n", (const char *const[]){ "--copy", NULL }, true, &cfg), 0);
	assert_int_equal(cfg.cpus, 3);
	vm_config_free_devices(&cfg);
}

static void test_config_errors(void **state)
{
	char *long_line = malloc(400);

	refused("kernel = k\nmemroy = 512M\n", 2,
		"unknown key 'memroy'; the keys are the long options of kvmbox run --help");
	refused("memory = 5x\n", 1, "--memory '5x': not a size; give a size like 512M or 2G");
	refused("kernel = k\ncpus = two\n", 2, "--cpus 'two': not a number");
	refused("kernel = k\n\nconsole = tty\n", 3, "--console 'tty': unknown console");
	refused("disk = a,bogus\n", 1, "--disk");
	refused("kernel = k\nthis is not ini\n", 2, "not a `key = value` line, a [section] or a comment");
	refused("kernel = k\n[vm\n", 2, "not a `key = value` line");
	refused("kernel = k\ncpus = 1\nmemory = 1G\n  cpus = 2\n", 4, "cpus given again (first on line 2)");
	refused("kernel = k\nconfig = other.conf\n", 2, "config cannot be a key of a configuration file");
	refused("kernel = k\n[defaults]\ncpus = 2\n", 2, "unknown section [defaults]");
	refused("[vm one]\n", 1, "unknown section [vm one]");
	refused("kernel = k\nno-reboot = maybe\n", 2,
		"no-reboot = maybe: not a boolean; give no-reboot = true or false");
	refused("kernel =\n", 1, "kernel has no value; give kernel = VALUE");
	refused("kernel = k\nmlock = sometimes\n", 2, "--mlock=sometimes");
	refused("kernel = k\n= 2\n", 2, "unknown key ''");
	/* The first problem, in line order, whoever finds it. */
	refused("cpus = x\nnot ini\n", 1, "--cpus 'x'");
	refused("not ini\ncpus = x\n", 1, "not a `key = value` line");
	refused("kernel = k\n[nope]\nnot ini\n", 2, "unknown section [nope]");
	/* A line libinih would split in two, a NUL byte. */
	memset(long_line, 'x', 399);
	memcpy(long_line, "kernel = k\nappend = ", 20);
	long_line[399] = '\0';
	refused(long_line, 2, "the line is longer than 199 characters (libinih's limit)");
	free(long_line);
	write_file("kernel = k\ncpus = 1\0\n", 21);
	refused(NULL, 2, "a NUL byte");
	/* Too many disks: the device's own message, at the line that is one too many. */
	long_line = calloc(1, 4096);
	for (int i = 0; i < 40; i++)
		strcat(long_line, "disk = a.img\n");
	refused(long_line, 17, "--disk: at most 16");
	free(long_line);
}

static void test_config_file_errors(void **state)
{
	struct vm_config cfg;
	char want[256];

	unlink(path);
	assert_int_equal(parse(NULL, NULL, false, &cfg), EXIT_USAGE);
	snprintf(want, sizeof(want), "kvmbox: --config %s: cannot open it: No such file or directory; ",
		 path);
	assert_memory_equal(err, want, strlen(want));
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(parse(NULL, NULL, false, &cfg), EXIT_USAGE);
	rmdir(path);
	assert_non_null(strstr(err, ": not a regular file; give the path of an INI file"));
	/* An unreadable one (root reads it anyway). */
	if (geteuid()) {
		write_file("kernel = k\n", 11);
		chmod(path, 0);
		assert_int_equal(parse(NULL, NULL, false, &cfg), EXIT_USAGE);
		assert_non_null(strstr(err, ": cannot open it: Permission denied"));
	}
	/* --config once; restore refuses incoming in the file as on its command line. */
	assert_int_equal(
		parse("kernel = k\n", (const char *const[]){ "--config", "b.conf", NULL }, false, &cfg),
		EXIT_USAGE);
	assert_non_null(strstr(err, "--config given twice"));
	assert_int_equal(parse("kernel = k\nincoming = unix:/s\n", NULL, true, &cfg), EXIT_USAGE);
	assert_non_null(strstr(err, ":2: incoming is an option of kvmbox run, not of restore"));
	/* An empty file is no error: the kernel is still missing. */
	assert_int_equal(parse("", NULL, false, &cfg), EXIT_USAGE);
	assert_non_null(strstr(err, "run: no kernel given"));
	/* Help wins over the file. */
	assert_int_equal(parse("kernel = k\n", (const char *const[]){ "--help", NULL }, false, &cfg), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_every_kind),
		cmocka_unit_test(test_config_command_line_wins),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_config_file_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
