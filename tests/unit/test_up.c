/* test_up.c - kvmbox up FILE: [defaults] merged into each [vm NAME], the run arguments of each
 * VM, the checks across VMs (a table of bad files and their one-line messages), the start
 * order and the restart back-off; the snapshot keys (snapshot-every, snapshot-dir,
 * restart-from), durations, and the command line a start gets (boot or restore). */
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
#include "cli/up.h"
#include "virtio/blk.h"

static char dir[64];
static char path[128];
static char err[8192]; /* what the last load printed on stderr */
static struct up_config uc;

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/kvmbox-up-XXXXXX", tmp && strlen(tmp) < 30 ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/system.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

/* up_config_load on a file holding text; stderr caught in err. */
static int load(const char *text)
{
	int saved, fd, ret;
	ssize_t n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	fflush(stderr);
	saved = dup(2);
	fd = open(dir, O_TMPFILE | O_RDWR, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	ret = up_config_load(&uc, path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, sizeof(err) - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	return ret;
}

/* The VM called name in uc. */
static const struct up_vm *vm(const char *name)
{
	for (unsigned i = 0; i < uc.nr_vms; i++)
		if (!strcmp(uc.vms[i].name, name))
			return &uc.vms[i];
	fail_msg("no VM %s", name);
	return NULL;
}

/* The VM's run arguments, space-separated. */
static const char *args(const char *name)
{
	static char buf[2048];
	const struct up_vm *v = vm(name);

	buf[0] = '\0';
	for (unsigned i = 0; i < v->argc; i++) {
		if (i)
			strcat(buf, " ");
		strcat(buf, v->argv[i]);
	}
	assert_null(v->argv[v->argc]);
	return buf;
}

static void test_up_merge(void **state)
{
	static const char text[] = "# a board\n"
				   "[defaults]\n"
				   "state-dir = /run/board\n"
				   "memory = 64M\n"
				   "append = quiet\n"
				   "disk = /srv/base.img,ro\n"
				   "no-reboot = yes\n"
				   "restart = on-failure\n"
				   "restart-limit = 3\n"
				   "\n"
				   "[vm web]\n"
				   "kernel = /k/web\n"
				   "cpus = 2\n"
				   "after = db\n"
				   "console-log = web.log\n"
				   "[vm db]\n"
				   "kernel = /k/db\n"
				   "memory = 128M\n"
				   "disk = /srv/db.img\n"
				   "disk = /srv/db2.img\n"
				   "no-reboot = no\n"
				   "restart = always\n"
				   "shutdown-timeout = 5\n"
				   "[vm log]\n"
				   "kernel = /k/log\n"
				   "console-log = /var/log/log.console\n";

	assert_int_equal(load(text), 0);
	assert_string_equal(err, "");
	assert_int_equal(uc.nr_vms, 3);
	assert_string_equal(uc.state_dir, "/run/board");
	/* [defaults] first, then the VM's own keys; a VM's key replaces the defaults' (a disk all
	 * of them), a flag set to false is left out. */
	assert_string_equal(args("web"), "--memory=64M --append=quiet --disk=/srv/base.img,ro --no-reboot "
					 "--kernel=/k/web --cpus=2");
	assert_string_equal(args("db"), "--append=quiet --kernel=/k/db --memory=128M --disk=/srv/db.img "
					"--disk=/srv/db2.img");
	assert_int_equal(vm("web")->cfg.memory, 64 << 20);
	assert_int_equal(vm("web")->cfg.cpus, 2);
	assert_true(vm("web")->cfg.no_reboot);
	assert_int_equal(vm("db")->cfg.memory, 128 << 20);
	assert_false(vm("db")->cfg.no_reboot);
	assert_int_equal(vm("db")->cfg.nr_devs, 2);
	assert_string_equal(((const struct disk_config *)vm("db")->cfg.devs[1].cfg)->path, "/srv/db2.img");
	assert_int_equal(vm("db")->dev_line[1], 20);
	assert_int_equal(vm("web")->dev_line[0], 6); /* the [defaults] line */
	/* The supervisor's keys. */
	assert_int_equal(vm("web")->restart, UP_RESTART_ON_FAILURE);
	assert_int_equal(vm("web")->restart_limit, 3);
	assert_int_equal(vm("web")->shutdown_timeout, UP_SHUTDOWN_TIMEOUT);
	assert_int_equal(vm("db")->restart, UP_RESTART_ALWAYS);
	assert_int_equal(vm("db")->shutdown_timeout, 5);
	assert_string_equal(vm("web")->console_log, "/run/board/web.log");
	assert_string_equal(vm("db")->console_log, "/run/board/db.console.log");
	assert_string_equal(vm("log")->console_log, "/var/log/log.console");
	/* web waits for db: db, web, then log (file order otherwise). */
	assert_int_equal(vm("web")->nr_after, 1);
	assert_int_equal(vm("web")->after_line[0], 14);
	assert_string_equal(uc.vms[uc.order[0]].name, "db");
	assert_string_equal(uc.vms[uc.order[1]].name, "web");
	assert_string_equal(uc.vms[uc.order[2]].name, "log");
	up_config_free(&uc);
}

/* Read-only sharing, separate taps and CPUs, cards on one link, names with every allowed character. */
static void test_up_no_conflict(void **state)
{
	static const char text[] = "[vm a_1.x-y]\n"
				   "kernel = /k\n"
				   "disk = /srv/shared.img,ro\n"
				   "net = tap=tap0\n"
				   "net = link=lan,mac=52:54:00:00:00:01\n"
				   "vcpu-affinity = 0=2,1=3\n"
				   "[vm b]\n"
				   "kernel = /k\n"
				   "disk = /srv/shared.img,ro\n"
				   "net = tap=tap1\n"
				   "net = link=lan,mac=52:54:00:00:00:02\n"
				   "net = link=lan\n"
				   "vcpu-affinity = 0=4-5\n";

	assert_int_equal(load(text), 0);
	assert_string_equal(err, "");
	assert_int_equal(uc.nr_vms, 2);
	up_config_free(&uc);
}

/* Each bad file: status 2 (EXIT_USAGE), one line "kvmbox: FILE:LINE: ...want...". */
static const struct {
	const char *text;
	unsigned line;
	const char *want;
} bad[] = {
	/* clang-format off */
	{ "[vm a]\nkernel = /k\nmemroy = 1G\n", 3, "unknown key 'memroy'; the keys are the long options of kvmbox run --help" },
	{ "[vm a]\nkernel = /k\ncpus = two\n", 3, "--cpus 'two': not a number" },
	{ "[defaults]\nmemory = 5x\n[vm a]\nkernel = /k\n", 2, "--memory '5x': not a size" },
	{ "[vm a]\nkernel = /k\n[vm b]\nkernel = /k\n[vm a]\nkernel = /k\n", 5, "[vm a] given again (first on line 1); give each VM its own name" },
	{ "[vm a]\nkernel = /k\ncpus = 1\ncpus = 2\n", 4, "cpus given again (first on line 3)" },
	{ "[defaults]\ncpus = 1\n[defaults]\n", 3, "[defaults] given again (first on line 1)" },
	{ "[vm a]\nkernel = /k\ndisk = /srv/x.img\n[vm b]\nkernel = /k\ndisk = /srv/x.img,ro\n", 6, "disk /srv/x.img is also [vm a]'s (line 3), writable in one of them" },
	{ "[defaults]\ndisk = /srv/x.img\n[vm a]\nkernel = /k\n[vm b]\nkernel = /k\n", 2, "disk /srv/x.img is also [vm a]'s (line 2)" },
	{ "[vm a]\nkernel = /k\nnet = tap=tap0\n[vm b]\nkernel = /k\nnet = tap=tap1\nnet = tap=tap0\n", 7, "tap tap0 is also [vm a]'s (line 3); give each VM its own tap" },
	{ "[vm a]\nkernel = /k\nnet = link=lan,linkdir=/run/l,mac=52:54:00:00:00:07\n[vm b]\nkernel = /k\nnet = link=lan,linkdir=/run/l,mac=52:54:00:00:00:07\n", 6, "mac 52:54:00:00:00:07 on /run/l/lan is also [vm a]'s (line 3); give each card on a link its own mac=" },
	{ "[vm a]\nkernel = /k\nvcpu-affinity = 0=2,1=3\n[vm b]\nkernel = /k\nvcpu-affinity = 0=1,1=3-4\n", 6, "vcpu-affinity dedicates host CPUs 3 that [vm a] has too (line 3)" },
	{ "[vm a]\nkernel = /k\nafter = z\n", 3, "after = z: no such VM in this file" },
	{ "[vm a]\nkernel = /k\nafter = a\n", 3, "after = a: a VM cannot start after itself" },
	{ "[vm a]\nkernel = /k\nafter = c\n[vm b]\nkernel = /k\n[vm c]\nkernel = /k\nafter = b, a\n", 3, "after = c: a cycle (a -> c -> a, each after the next)" },
	{ "[vm x]\nkernel = /k\n[vm a]\nkernel = /k\nafter = b\n[vm b]\nkernel = /k\nafter = c\n[vm c]\nkernel = /k\nafter = a\n", 5, "after = b: a cycle (a -> b -> c -> a" },
	{ "[defaults]\nafter = a\n[vm a]\nkernel = /k\n", 2, "after in [defaults] would make every VM wait for another" },
	{ "[vm a]\nkernel = /k\nstate-dir = /run/x\n", 3, "state-dir is a key of [defaults]" },
	{ "[defaults]\nstate-dir = run\n[vm a]\nkernel = /k\n", 2, "state-dir = run: give an absolute path" },
	{ "[defaults]\nconsole-log = a.log\n[vm a]\nkernel = /k\n", 2, "console-log in [defaults] would give every VM one file" },
	{ "[vm a]\nkernel = /k\nconsole-log = /l\n[vm b]\nkernel = /k\nconsole-log = /l\n", 4, "console-log /l is also [vm a]'s" },
	{ "[vm a]\nkernel = /k\nrestart = sometimes\n", 3, "restart = sometimes: give restart = no, on-failure or always" },
	{ "[vm a]\nkernel = /k\nrestart-limit = many\n", 3, "restart-limit = many: give a number" },
	{ "[vm a]\nkernel = /k\nshutdown-timeout = 0\n", 3, "shutdown-timeout = 0: give whole seconds, 1 to 86400" },
	{ "[vm a]\nkernel = /k\napi = /run/a.sock\n", 3, "api is kvmbox up's to give" },
	{ "[vm a]\nkernel = /k\nincoming = unix:/x\n", 3, "incoming is an option of kvmbox run, not of kvmbox up" },
	{ "[vm a]\nkernel = /k\nconfig = other.conf\n", 3, "config cannot be a key of a configuration file" },
	{ "[vm a]\nmemory = 64M\n", 1, "[vm a] has no kernel; give kernel = PATH under it or in [defaults]" },
	{ "kernel = /k\n[vm a]\n", 1, "kernel: a key before any section; put it under [defaults] or [vm NAME]" },
	{ "[vm]\nkernel = /k\n", 1, "unknown section [vm]" },
	{ "[vm a/b]\nkernel = /k\n", 1, "[vm a/b]: a VM name is 1 to 32 letters, digits" },
	{ "[vm -a]\nkernel = /k\n", 1, "a VM name is" },
	{ "[defaults]\n[vms a]\n", 2, "unknown section [vms a]; a file for kvmbox up has [defaults] and [vm NAME]" },
	{ "[vm a]\nkernel = /k\nnot ini\n", 3, "not a `key = value` line" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 5\n", 3, "snapshot-every = 5: give a duration like 500ms, 30s, 5m or 1h, from 100ms to 30 days (0: never)" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 10x\n", 3, "snapshot-every = 10x: give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 50ms\n", 3, "snapshot-every = 50ms: give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 31d\n", 3, "snapshot-every = 31d: give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 721h\n", 3, "snapshot-every = 721h: give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 99999999999999999999s\n", 3, "give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = -1s\n", 3, "give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every =\n", 3, "give a duration" },
	{ "[vm a]\nkernel = /k\nsnapshot-every = 1s\nsnapshot-every = 2s\n", 4, "snapshot-every given again (first on line 3)" },
	{ "[vm a]\nkernel = /k\nrestart-from = maybe\n", 3, "restart-from = maybe: give restart-from = snapshot or boot" },
	{ "[defaults]\nrestart-from = snapshot\n[vm a]\nkernel = /k\n", 2, "restart-from = snapshot for [vm a], which has no snapshot-every (nothing to restart from); give snapshot-every = DURATION, or restart-from = boot" },
	{ "[defaults]\nsnapshot-every = 1s\nrestart-from = snapshot\n[vm a]\nkernel = /k\n[vm b]\nkernel = /k\nsnapshot-every = 0\n", 3, "restart-from = snapshot for [vm b], which has no snapshot-every" },
	{ "[vm a]\nkernel = /k\nsnapshot-dir = /nonexistent-kvmbox-dir/x\n", 3, "snapshot-dir = /nonexistent-kvmbox-dir/x: /nonexistent-kvmbox-dir/x: No such file or directory; create that directory or give another" },
	{ "[defaults]\nstate-dir = /nonexistent-kvmbox-dir\nsnapshot-dir = snaps\n[vm a]\nkernel = /k\n", 3, "snapshot-dir = snaps: /nonexistent-kvmbox-dir/snaps: No such file" },
	{ "[vm a]\nkernel = /k\nsnapshot-dir = /dev/null\n", 3, "snapshot-dir = /dev/null: /dev/null: Not a directory" },
	{ "[vm a]\nkernel = /k\nsnapshot-dir =\n", 3, "snapshot-dir has no value" },
	{ "[defaults]\nsnapshot-every = 1m\n[vm a]\nkernel = /k\njail = /srv/jail\n", 2, "snapshot-every for [vm a], which has jail = /srv/jail: its snapshots would land inside the jail, out of up's reach; remove jail or snapshot-every" },
	/* The first problem in line order wins over the checks across VMs. */
	{ "[vm a]\nkernel = /k\nafter = z\n[vm b]\ncpus = x\n", 5, "--cpus 'x'" },
	/* clang-format on */
};

static void test_up_bad_files(void **state)
{
	char prefix[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = load(bad[i].text);

		up_config_free(&uc);
		snprintf(prefix, sizeof(prefix), "kvmbox: %s:%u: ", path, bad[i].line);
		if (ret != EXIT_USAGE || strncmp(err, prefix, strlen(prefix)) || !strstr(err, bad[i].want) ||
		    strchr(err, '\n') + 1 != err + strlen(err))
			fail_msg("file %zu: status %d, want one line '%s...%s', got '%s'", i, ret, prefix,
				 bad[i].want, err);
	}
	/* No VM: nothing to point at but the file. */
	assert_int_equal(load("[defaults]\nmemory = 64M\n"), EXIT_USAGE);
	up_config_free(&uc);
	assert_non_null(strstr(err, ": no [vm NAME] section; describe each VM in one"));
}

/* The socket path must fit a sockaddr_un. */
static void test_up_long_state_dir(void **state)
{
	char text[512], longdir[150];

	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	snprintf(text, sizeof(text), "[defaults]\nstate-dir = %s\n[vm a]\nkernel = /k\n", longdir);
	assert_int_equal(load(text), EXIT_USAGE);
	up_config_free(&uc);
	assert_non_null(strstr(err, ":2: the control socket /ddd"));
	assert_non_null(strstr(err, "give a shorter state-dir or VM name"));
}

static void test_up_backoff(void **state)
{
	static const unsigned want[] = { 1000, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };

	for (unsigned n = 0; n < sizeof(want) / sizeof(want[0]); n++)
		assert_int_equal(up_backoff_ms(n), want[n]);
	assert_int_equal(up_backoff_ms(1000000), UP_BACKOFF_MAX);
}

/* up_order alone: file order when nothing waits, a chain reversed, a diamond. */
static void test_up_order(void **state)
{
	struct up_config *o = calloc(1, sizeof(*o));
	static const char *const names[] = { "a", "b", "c", "d" };

	assert_non_null(o);
	o->path = "x.conf";
	o->nr_vms = 4;
	for (unsigned i = 0; i < 4; i++)
		strcpy(o->vms[i].name, names[i]);
	assert_int_equal(up_order(o), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(o->order[i], i);
	/* a after b after c after d. */
	for (unsigned i = 0; i < 3; i++) {
		o->vms[i].after[0] = i + 1;
		o->vms[i].nr_after = 1;
	}
	assert_int_equal(up_order(o), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(o->order[i], 3 - i);
	/* d after b and c, both after a. */
	memset(o->vms, 0, sizeof(o->vms));
	for (unsigned i = 0; i < 4; i++)
		strcpy(o->vms[i].name, names[i]);
	o->vms[3] = (struct up_vm){ .name = "d", .after = { 1, 2 }, .nr_after = 2 };
	o->vms[1].after[0] = 0;
	o->vms[1].nr_after = 1;
	o->vms[2].after[0] = 0;
	o->vms[2].nr_after = 1;
	assert_int_equal(up_order(o), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(o->order[i], i);
	free(o);
}

static void test_up_duration(void **state)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} good[] = { { "0", 0 },        { "500ms", 500 }, { "30s", 30000 }, { "5m", 300000 },
		     { "1h", 3600000 }, { "0s", 0 },      { "007s", 7000 }, { "720h", 2592000000ULL } };
	static const char *const bad_durations[] = { "",
						     "5",
						     "s",
						     "1.5s",
						     "1 s",
						     "1s ",
						     " 1s",
						     "-1s",
						     "1S",
						     "1sec",
						     "1d",
						     "0x10s",
						     "1hh",
						     "18446744073709551616ms",
						     "18446744073709551615h" };
	uint64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 12345;
		if (up_parse_duration(good[i].text, &ms) < 0 || ms != good[i].ms)
			fail_msg("'%s': got %llu, want %llu", good[i].text, (unsigned long long)ms,
				 (unsigned long long)good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++)
		if (up_parse_duration(bad_durations[i], &ms) == 0)
			fail_msg("'%s' taken as %llu ms", bad_durations[i], (unsigned long long)ms);
}

/* The snapshot keys: [defaults] and a VM's own, a relative snapshot-dir in the state directory,
 * the default (the state directory). */
static void test_up_snapshot_keys(void **state)
{
	char text[1024], want[256];

	snprintf(text, sizeof(text),
		 "[defaults]\n"
		 "state-dir = %s\n"
		 "kernel = /k\n"
		 "snapshot-every = 30s\n"
		 "restart-from = snapshot\n"
		 "[vm a]\n"
		 "[vm b]\n"
		 "snapshot-every = 500ms\n"
		 "restart-from = boot\n"
		 "snapshot-dir = .\n"
		 "[vm c]\n"
		 "snapshot-every = 0\n"
		 "restart-from = boot\n"
		 "[vm d]\n"
		 "snapshot-dir = %s\n",
		 dir, dir);
	assert_int_equal(load(text), 0);
	assert_string_equal(err, "");
	assert_int_equal(vm("a")->snapshot_every_ms, 30000);
	assert_int_equal(vm("a")->restart_from, UP_FROM_SNAPSHOT);
	snprintf(want, sizeof(want), "%s/a.snap", dir);
	assert_string_equal(vm("a")->snapshot_path, want);
	snprintf(want, sizeof(want), "%s/a.snap.part", dir);
	assert_string_equal(vm("a")->snapshot_part, want);
	assert_string_equal(vm("a")->snapshot_dir, dir);
	assert_int_equal(vm("b")->snapshot_every_ms, 500);
	assert_int_equal(vm("b")->restart_from, UP_FROM_BOOT);
	snprintf(want, sizeof(want), "%s/./b.snap", dir);
	assert_string_equal(vm("b")->snapshot_path, want);
	assert_int_equal(vm("c")->snapshot_every_ms, 0);
	assert_int_equal(vm("d")->snapshot_every_ms, 30000);
	assert_int_equal(vm("d")->restart_from, UP_FROM_SNAPSHOT);
	snprintf(want, sizeof(want), "%s/d.snap", dir);
	assert_string_equal(vm("d")->snapshot_path, want);
	/* The supervisor's keys are no run arguments. */
	assert_string_equal(args("a"), "--kernel=/k");
	assert_string_equal(args("d"), "--kernel=/k");
	up_config_free(&uc);
	/* Without the keys: never, boot, the state directory. */
	assert_int_equal(load("[defaults]\nstate-dir = /run/board\n[vm a]\nkernel = /k\n"), 0);
	assert_int_equal(vm("a")->snapshot_every_ms, 0);
	assert_int_equal(vm("a")->restart_from, UP_FROM_BOOT);
	assert_string_equal(vm("a")->snapshot_path, "/run/board/a.snap");
	up_config_free(&uc);
	/* A snapshot-dir that is a file. */
	snprintf(text, sizeof(text), "[vm a]\nkernel = /k\nsnapshot-dir = %s\n", path);
	assert_int_equal(load(text), EXIT_USAGE);
	up_config_free(&uc);
	assert_non_null(strstr(err, ":3: snapshot-dir = "));
	assert_non_null(strstr(err, "Not a directory; create that directory or give another"));
}

/* What a start's command line is: boot unless restart-from = snapshot, a restart the policy
 * makes, a good snapshot and no failed restore since, all four. */
static void test_up_restart_command(void **state)
{
	const char *argv[UP_MAX_ARGS + 6], *snap;
	char line[1024];
	unsigned n;

	assert_int_equal(load("[defaults]\nstate-dir = /run/board\nkernel = /k\nmemory = 64M\n"
			      "snapshot-every = 1s\nrestart-from = snapshot\nrestart = on-failure\n"
			      "[vm a]\n[vm b]\nrestart-from = boot\n"),
			 0);
	/* a: the only case that restores. */
	assert_string_equal(up_restore_from(vm("a"), true, true, false), "/run/board/a.snap");
	assert_null(up_restore_from(vm("a"), false, true, false)); /* the first start, start, restart */
	assert_null(up_restore_from(vm("a"), true, false, false)); /* no snapshot yet */
	assert_null(up_restore_from(vm("a"), true, true, true));   /* its restore failed */
	assert_null(up_restore_from(vm("b"), true, true, false));  /* restart-from = boot */
	for (unsigned i = 0; i < 2; i++) {
		snap = up_restore_from(vm("a"), true, true, i == 1);
		n = up_command(vm("a"), "/bin/kvmbox", "--api=/run/board/a.sock", snap, argv);
		line[0] = '\0';
		for (unsigned k = 0; k < n; k++) {
			strcat(line, argv[k]);
			strcat(line, k + 1 < n ? " " : "");
		}
		assert_null(argv[n]);
		assert_string_equal(
			line, i == 0 ? "/bin/kvmbox restore /run/board/a.snap --kernel=/k --memory=64M "
				       "--api=/run/board/a.sock"
				     : "/bin/kvmbox run --kernel=/k --memory=64M --api=/run/board/a.sock");
	}
	up_config_free(&uc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_up_merge),           cmocka_unit_test(test_up_no_conflict),
		cmocka_unit_test(test_up_bad_files),       cmocka_unit_test(test_up_long_state_dir),
		cmocka_unit_test(test_up_backoff),         cmocka_unit_test(test_up_order),
		cmocka_unit_test(test_up_duration),        cmocka_unit_test(test_up_snapshot_keys),
		cmocka_unit_test(test_up_restart_command),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
