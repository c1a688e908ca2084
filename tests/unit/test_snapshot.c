/* Snapshot configuration encoding and refusal of files that are not
 * snapshots (full snapshots of real VMs are tested in tests/guests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/snapshot.h"

static void fill_config(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->kernel = "/boot/vmlinuz";
	c->initrd = NULL;
	c->append = "console=ttyS0 quiet";
	c->cpus = 3;
	c->memory = 512ULL << 20;
	c->console = CONSOLE_VIRTIO;
	c->no_reboot = true;
	c->rng = true;
	c->balloon = true;
	c->nr_disks = 2;
	c->disks[0].path = "/var/a.img";
	c->disks[1].path = "/var/b.img";
	c->disks[1].readonly = true;
	strcpy(c->disks[1].serial, "SER123");
	c->nr_nets = 1;
	strcpy(c->nets[0].tap, "tap7");
	memcpy(c->nets[0].mac, "\x52\x54\x00\x01\x02\x03", 6);
	c->nets[0].mac_set = true;
}

static void test_config_roundtrip(void **state)
{
	struct vm_config c;
	struct ser_writer w;
	struct ser_reader r;
	struct snap_config sc;

	fill_config(&c);
	ser_writer_init(&w);
	snap_config_save(&c, &w);
	assert_false(w.err);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_load(&sc, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_string_equal(sc.cfg.kernel, "/boot/vmlinuz");
	assert_null(sc.cfg.initrd);
	assert_string_equal(sc.cfg.append, "console=ttyS0 quiet");
	assert_int_equal(sc.cfg.cpus, 3);
	assert_true(sc.cfg.memory == 512ULL << 20);
	assert_int_equal(sc.cfg.console, CONSOLE_VIRTIO);
	assert_true(sc.cfg.no_reboot && sc.cfg.rng && sc.cfg.balloon);
	assert_int_equal(sc.cfg.nr_disks, 2);
	assert_string_equal(sc.cfg.disks[1].path, "/var/b.img");
	assert_true(sc.cfg.disks[1].readonly);
	assert_string_equal(sc.cfg.disks[1].serial, "SER123");
	assert_int_equal(sc.cfg.nr_nets, 1);
	assert_string_equal(sc.cfg.nets[0].tap, "tap7");
	assert_memory_equal(sc.cfg.nets[0].mac, "\x52\x54\x00\x01\x02\x03", 6);
	assert_true(sc.cfg.nets[0].mac_set);
	snap_config_free(&sc);
	/* Every truncation is refused. */
	for (size_t cut = 0; cut < w.len; cut++) {
		ser_reader_init(&r, w.buf, cut);
		assert_int_equal(snap_config_load(&sc, &r), -1);
	}
	ser_writer_free(&w);
}

static void test_config_malformed(void **state)
{
	struct vm_config c;
	struct ser_writer w;
	struct ser_reader r;
	struct snap_config sc;

	/* Too many disks: patch the count in a valid encoding. */
	fill_config(&c);
	ser_writer_init(&w);
	snap_config_save(&c, &w);
	{
		/* kernel (4+13) initrd (4) append (4+19) cpus (4) memory (8) 4 flags */
		size_t at = 17 + 4 + 23 + 4 + 8 + 4;

		assert_int_equal(w.buf[at], 2);
		w.buf[at] = MAX_DISKS + 1;
	}
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_load(&sc, &r), -1);
	ser_writer_free(&w);
	/* Zero vCPUs. */
	fill_config(&c);
	c.cpus = 0;
	ser_writer_init(&w);
	snap_config_save(&c, &w);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_load(&sc, &r), -1);
	ser_writer_free(&w);
	/* A string length running past the end. */
	{
		uint8_t bad[] = { 0xff, 0xff, 0xff, 0x0f, 'a' };

		ser_reader_init(&r, bad, sizeof(bad));
		assert_int_equal(snap_config_load(&sc, &r), -1);
	}
}

static char *write_temp(const void *data, size_t len)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/kvmbox-snap-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_open_refuses_non_snapshots(void **state)
{
	struct snapshot s;
	uint8_t buf[8192];
	char *p;

	memset(buf, 0, sizeof(buf));
	p = write_temp("hello", 5);
	assert_int_equal(snapshot_open(p, true, &s), -1);
	unlink(p);
	/* Right magic, wrong version. */
	memcpy(buf, SNAP_MAGIC, 8);
	buf[8] = 99;
	p = write_temp(buf, sizeof(buf));
	assert_int_equal(snapshot_open(p, true, &s), -1);
	unlink(p);
	/* Right magic and version, header checksum wrong. */
	buf[8] = SNAP_VERSION;
	buf[12] = 1;
	p = write_temp(buf, sizeof(buf));
	assert_int_equal(snapshot_open(p, true, &s), -1);
	unlink(p);
	assert_int_equal(snapshot_open("/nonexistent/snap", true, &s), -1);
	assert_int_equal(snapshot_open("/tmp", true, &s), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_config_malformed),
		cmocka_unit_test(test_open_refuses_non_snapshots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
