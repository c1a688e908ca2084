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
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <xxhash.h>

#include "arch/arch.h"
#include "core/snapshot.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "fakes.h"

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
	assert_int_equal(vm_config_add(c, &virtio_blk_type, "/var/a.img"), 0);
	assert_int_equal(vm_config_add(c, &virtio_net_type, "tap=tap7,mac=52:54:00:01:02:03"), 0);
	assert_int_equal(vm_config_add(c, &virtio_blk_type, "/var/b.img,ro,serial=SER123"), 0);
	assert_int_equal(vm_config_add(c, &virtio_rng_type, NULL), 0);
	assert_int_equal(vm_config_add(c, &virtio_balloon_type, NULL), 0);
}

static void test_config_roundtrip(void **state)
{
	struct vm_config c;
	struct ser_writer w;
	struct ser_reader r;
	struct snap_config sc;
	const struct disk_config *d;
	const struct net_config *n;

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
	assert_true(sc.cfg.no_reboot);
	/* The devices come back in the order given, with their configurations. */
	assert_int_equal(sc.cfg.nr_devs, 5);
	assert_ptr_equal(sc.cfg.devs[0].type, &virtio_blk_type);
	assert_ptr_equal(sc.cfg.devs[1].type, &virtio_net_type);
	assert_ptr_equal(sc.cfg.devs[2].type, &virtio_blk_type);
	assert_ptr_equal(sc.cfg.devs[3].type, &virtio_rng_type);
	assert_ptr_equal(sc.cfg.devs[4].type, &virtio_balloon_type);
	d = sc.cfg.devs[0].cfg;
	assert_string_equal(d->path, "/var/a.img");
	assert_false(d->readonly);
	d = sc.cfg.devs[2].cfg;
	assert_string_equal(d->path, "/var/b.img");
	assert_true(d->readonly);
	assert_string_equal(d->serial, "SER123");
	n = sc.cfg.devs[1].cfg;
	assert_string_equal(n->tap, "tap7");
	assert_memory_equal(n->mac, "\x52\x54\x00\x01\x02\x03", 6);
	assert_true(n->mac_set);
	snap_config_free(&sc);
	/* Every truncation is refused, but the one that drops the tagged records after the devices
	 * whole: that is a configuration of an older kvmbox (core/tuning.c's record, u32 tag and
	 * u32 length before it). */
	{
		struct ser_writer t;
		size_t older;

		ser_writer_init(&t);
		vm_tuning_save(&c.tuning, &t);
		older = w.len - 8 - t.len;
		ser_writer_free(&t);
		for (size_t cut = 0; cut < w.len; cut++) {
			ser_reader_init(&r, w.buf, cut);
			if (cut == older) {
				assert_int_equal(snap_config_load(&sc, &r), 0);
				snap_config_free(&sc);
			} else {
				assert_int_equal(snap_config_load(&sc, &r), -1);
			}
		}
	}
	ser_writer_free(&w);
	vm_config_free_devices(&c);
}

/* snap_config_load on n bytes; what it loaded is freed again. */
static int load_config(const uint8_t *b, size_t n)
{
	struct ser_reader r;
	struct snap_config sc;
	int ret;

	ser_reader_init(&r, b, n);
	ret = snap_config_load(&sc, &r);
	if (ret == 0)
		snap_config_free(&sc);
	return ret;
}

/* The encoding of a small config up to its device count: kernel "/k" (4+2), initrd and append
 * (NULL markers, 4 each), cpus (4), memory (8), console, no_reboot (1 each); then the count. */
#define CFG_CONSOLE_AT 26

static void small_head(struct ser_writer *w, uint32_t cpus, uint8_t console, uint32_t nr_devs)
{
	ser_put_str(w, "/k");
	ser_put_str(w, NULL);
	ser_put_str(w, NULL);
	ser_put_u32(w, cpus);
	ser_put_u64(w, 16u << 20);
	ser_put_u8(w, console);
	ser_put_u8(w, 0);
	ser_put_u32(w, nr_devs);
}

/* One device record: the type's name, then its record of len bytes. */
static void put_dev(struct ser_writer *w, const char *type, const void *rec, uint32_t len)
{
	ser_put_str(w, type);
	ser_put_u32(w, len);
	ser_put_bytes(w, rec, len);
}

/* A disk's record: path, ro, serial. */
static size_t disk_rec(uint8_t *out, const char *path, uint8_t ro)
{
	struct ser_writer w;
	size_t n;

	ser_writer_init(&w);
	ser_put_str(&w, path);
	ser_put_u8(&w, ro);
	ser_put_str(&w, "");
	n = w.len;
	memcpy(out, w.buf, n);
	ser_writer_free(&w);
	return n;
}

/* Each case is a complete encoding with one fault, so only the check for that fault can
 * refuse it; the good twin of each case loads. */
static void test_config_malformed(void **state)
{
	uint8_t rec[64];
	size_t rl = disk_rec(rec, "/d", 0);
	struct ser_writer w;

	/* A good encoding: as many disks as a VM may have. */
	ser_writer_init(&w);
	small_head(&w, 1, CONSOLE_SERIAL, virtio_blk_type.max);
	for (unsigned i = 0; i < virtio_blk_type.max; i++)
		put_dev(&w, "virtio-blk", rec, (uint32_t)rl);
	assert_false(w.err);
	assert_int_equal(load_config(w.buf, w.len), 0);
	ser_writer_free(&w);

	/* One disk more than a VM may have. */
	ser_writer_init(&w);
	small_head(&w, 1, CONSOLE_SERIAL, virtio_blk_type.max + 1);
	for (unsigned i = 0; i <= virtio_blk_type.max; i++)
		put_dev(&w, "virtio-blk", rec, (uint32_t)rl);
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);

	/* More devices than MAX_DEVICES (the count alone is refused). */
	ser_writer_init(&w);
	small_head(&w, 1, CONSOLE_SERIAL, MAX_DEVICES + 1);
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);

	/* A device type this kvmbox does not have. */
	ser_writer_init(&w);
	small_head(&w, 1, CONSOLE_SERIAL, 1);
	put_dev(&w, "virtio-gpu", rec, (uint32_t)rl);
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);

	/* A device record with bytes its type does not read. */
	ser_writer_init(&w);
	small_head(&w, 1, CONSOLE_SERIAL, 1);
	rec[rl] = 0;
	put_dev(&w, "virtio-blk", rec, (uint32_t)rl + 1);
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);

	/* A disk with an empty path; a disk with ro = 2. */
	{
		uint8_t r2[64];
		size_t l2 = disk_rec(r2, "", 0);

		ser_writer_init(&w);
		small_head(&w, 1, CONSOLE_SERIAL, 1);
		put_dev(&w, "virtio-blk", r2, (uint32_t)l2);
		assert_int_equal(load_config(w.buf, w.len), -1);
		ser_writer_free(&w);
		l2 = disk_rec(r2, "/d", 2);
		ser_writer_init(&w);
		small_head(&w, 1, CONSOLE_SERIAL, 1);
		put_dev(&w, "virtio-blk", r2, (uint32_t)l2);
		assert_int_equal(load_config(w.buf, w.len), -1);
		ser_writer_free(&w);
	}

	/* An unknown console kind, and zero vCPUs, without devices. */
	ser_writer_init(&w);
	small_head(&w, 1, CONSOLE_SERIAL, 0);
	assert_int_equal(load_config(w.buf, w.len), 0);
	assert_int_equal(w.buf[CFG_CONSOLE_AT], CONSOLE_SERIAL);
	w.buf[CFG_CONSOLE_AT] = CONSOLE_VIRTIO + 1;
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);
	ser_writer_init(&w);
	small_head(&w, 0, CONSOLE_SERIAL, 0);
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);

	/* A string length running past the end. */
	{
		static const uint8_t bad[] = { 0xff, 0xff, 0xff, 0x0f, 'a' };

		assert_int_equal(load_config(bad, sizeof(bad)), -1);
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

/* The file header (snapshot.c): magic, le32 version, le32 arch, le64 RAM
 * offset, RAM length, RAM hash, state offset, state length, state hash,
 * then zeroes and an XXH3 of the first 88 bytes in the last 8. */
#define HDR_SIZE 96

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void make_header(uint8_t *h, uint32_t version, uint64_t ram_len, uint64_t meta_len, uint64_t meta_hash)
{
	memset(h, 0, HDR_SIZE);
	memcpy(h, SNAP_MAGIC, 8);
	memcpy(h + 8, &version, 4);
	h[12] = (uint8_t)arch_this;
	put64(h + 16, SNAP_RAM_OFFSET);
	put64(h + 24, ram_len);
	put64(h + 40, SNAP_RAM_OFFSET + ram_len);
	put64(h + 48, meta_len);
	put64(h + 56, meta_hash);
	put64(h + HDR_SIZE - 8, XXH3_64bits(h, HDR_SIZE - 8));
}

/* snapshot_open must refuse path with one line that contains `why`: each
 * case below fails exactly one check, so a check that is removed or moved
 * makes its case fail (a later check would still refuse the file, but with
 * another reason). */
static void expect_refused(const char *path, const char *why)
{
	struct stderr_capture cap;
	struct snapshot s;
	const char *nl;
	int ret;

	stderr_capture_begin(&cap);
	ret = snapshot_open(path, true, NULL, &s);
	stderr_capture_end(&cap);
	assert_int_equal(ret, -1);
	if (!strstr(cap.text, why))
		fail_msg("refused for another reason: \"%s\", expected \"%s\"", cap.text, why);
	nl = strchr(cap.text, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0'); /* one line */
}

static void expect_refused_data(const void *data, size_t len, const char *why)
{
	char *p = write_temp(data, len);

	expect_refused(p, why);
	unlink(p);
}

static void test_open_refuses_non_snapshots(void **state)
{
	static uint8_t buf[3 * 4096];
	uint8_t *meta = buf + 2 * 4096;

	memset(buf, 0, sizeof(buf));
	expect_refused_data("hello", 5, "truncated (no complete header)");
	expect_refused_data(buf, sizeof(buf), "bad magic");
	/* Right magic, wrong version (arch and checksum are wrong too: the
	 * version is checked first). */
	memcpy(buf, SNAP_MAGIC, 8);
	buf[8] = 99;
	expect_refused_data(buf, sizeof(buf), "incompatible kvmbox version");
	/* Right version, another architecture: named, with this one. */
	buf[8] = SNAP_VERSION;
	buf[12] = arch_this == ARCH_ID_ARM64 ? ARCH_ID_X86_64 : ARCH_ID_ARM64;
	expect_refused_data(buf, sizeof(buf),
			    arch_this == ARCH_ID_ARM64 ? "taken on x86_64, this is arm64"
						       : "taken on arm64, this is x86_64");
	/* Right magic, version and architecture, header checksum wrong. */
	make_header(buf, SNAP_VERSION, 4096, 16, XXH3_64bits(meta, 16));
	buf[30] ^= 1;
	expect_refused_data(buf, sizeof(buf), "header checksum mismatch");
	/* With a good checksum, the checks after it run: */
	make_header(buf, SNAP_VERSION, 4095, 16, XXH3_64bits(meta, 16));
	expect_refused_data(buf, sizeof(buf), "inconsistent header");
	make_header(buf, SNAP_VERSION, 4096, 16, XXH3_64bits(meta, 16));
	expect_refused_data(buf, 2 * 4096 + 8, ": truncated;");
	expect_refused_data(buf, sizeof(buf), "has data after its end");
	make_header(buf, SNAP_VERSION, 4096, 4096, XXH3_64bits(meta, 4096) ^ 1);
	expect_refused_data(buf, sizeof(buf), "state checksum mismatch");
	/* The state passes its checksum but holds no configuration. */
	make_header(buf, SNAP_VERSION, 4096, 0, XXH3_64bits(meta, 0));
	expect_refused_data(buf, 2 * 4096, "no configuration section");

	expect_refused("/nonexistent/snap", "No such file or directory");
	expect_refused("/tmp", "not a regular file");
}

/* ---- the keyed MAC of --snapshot-key ---- */

static uint8_t mac_key[KEY_BYTES], other_key[KEY_BYTES];

/* A whole snapshot file of fake RAM (1 MiB, a few non-zero pages) and a configuration section,
 * written by snapshot_write_file with key (or none). Returns its path (static). */
static const char *write_snapshot(const uint8_t *key, uint64_t *ram_page_off)
{
	static char path[64];
	struct fake_ram ram;
	struct vm_config c;
	struct ser_writer meta, cfgw;
	uint64_t bytes;
	uint8_t sec[24];
	int fd;

	fake_ram_init_flat(&ram, 1 << 20);
	for (int pg = 3; pg < 200; pg += 17)
		memset(ram.buf + pg * 4096 + 100, pg, 300);
	*ram_page_off = SNAP_RAM_OFFSET + 20 * 4096; /* page 20 holds data */
	fill_config(&c);
	c.memory = 1 << 20;
	ser_writer_init(&cfgw);
	snap_config_save(&c, &cfgw);
	assert_false(cfgw.err);
	/* The configuration section: u32 type 1, u32 0, u64 length, u64 XXH3, the payload. */
	memset(sec, 0, sizeof(sec));
	sec[0] = 1;
	put_le64(sec + 8, cfgw.len);
	put_le64(sec + 16, XXH3_64bits(cfgw.buf, cfgw.len));
	ser_writer_init(&meta);
	ser_put_bytes(&meta, sec, sizeof(sec));
	ser_put_bytes(&meta, cfgw.buf, cfgw.len);
	strcpy(path, "/tmp/kvmbox-snapmac-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(snapshot_write_file(&ram.mem, fd, &meta, &bytes, key), 0);
	close(fd);
	ser_writer_free(&meta);
	ser_writer_free(&cfgw);
	vm_config_free_devices(&c);
	fake_ram_free(&ram);
	return path;
}

static int open_with(const char *path, bool verify, const uint8_t *key, const char *why)
{
	struct stderr_capture cap;
	struct snapshot s;
	int ret;

	stderr_capture_begin(&cap);
	ret = snapshot_open(path, verify, key, &s);
	stderr_capture_end(&cap);
	if (ret == 0) {
		assert_true(s.config.cfg.memory == 1 << 20);
		snapshot_close(&s);
		snap_config_free(&s.config);
		return 0;
	}
	if (why && !strstr(cap.text, why))
		fail_msg("refused for another reason: \"%s\", expected \"%s\"", cap.text, why);
	assert_non_null(strchr(cap.text, '\n'));
	assert_int_equal(strchr(cap.text, '\n')[1], '\0');
	return ret;
}

static void flip(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_mac(void **state)
{
	uint64_t page;
	const char *p = write_snapshot(mac_key, &page);

	/* Good: with its key, checked or not (the MAC covers RAM either way). */
	assert_int_equal(open_with(p, true, mac_key, NULL), 0);
	assert_int_equal(open_with(p, false, mac_key, NULL), 0);
	/* Without the key: refused, saying which option to give. */
	assert_int_equal(open_with(p, true, NULL, "give the key with --snapshot-key FILE"), -1);
	/* Another key (a file an attacker signed, all checksums right): refused. */
	assert_int_equal(open_with(p, true, other_key, "MAC mismatch"), -1);
	/* A byte of RAM changed: the MAC finds it, even with verify off. */
	flip(p, page + 200);
	assert_int_equal(open_with(p, false, mac_key, "MAC mismatch"), -1);
	flip(p, page + 200);
	assert_int_equal(open_with(p, true, mac_key, NULL), 0);
	/* A zero page (a hole) made non-zero, a byte of the MAC itself. */
	flip(p, SNAP_RAM_OFFSET + 100 * 4096 + 5);
	assert_int_equal(open_with(p, true, mac_key, "MAC mismatch"), -1);
	flip(p, SNAP_RAM_OFFSET + 100 * 4096 + 5);
	flip(p, 96 + 7);
	assert_int_equal(open_with(p, true, mac_key, "MAC mismatch"), -1);
	unlink(p);
	/* A file written without a key (its checksums right) is refused when a key is given, and
	 * restores without one. */
	p = write_snapshot(NULL, &page);
	assert_int_equal(open_with(p, true, mac_key, "has no MAC"), -1);
	assert_int_equal(open_with(p, true, NULL, NULL), 0);
	unlink(p);
}

/* The MAC flag cannot be stripped: the header then has no MAC, refused with the key. */
static void test_mac_stripped(void **state)
{
	uint64_t page;
	const char *p = write_snapshot(mac_key, &page);
	uint8_t h[HDR_SIZE];
	int fd = open(p, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, h, HDR_SIZE, 0), HDR_SIZE);
	assert_int_equal(h[64], 1);
	h[64] = 0;
	put64(h + HDR_SIZE - 8, XXH3_64bits(h, HDR_SIZE - 8));
	assert_int_equal(pwrite(fd, h, HDR_SIZE, 0), HDR_SIZE);
	close(fd);
	assert_int_equal(open_with(p, true, mac_key, "has no MAC"), -1);
	unlink(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_config_malformed),
		cmocka_unit_test(test_open_refuses_non_snapshots),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_mac_stripped),
	};

	if (sodium_init() < 0)
		return 1;
	randombytes_buf(mac_key, sizeof(mac_key));
	randombytes_buf(other_key, sizeof(other_key));

	return cmocka_run_group_tests(tests, NULL, NULL);
}
