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

#include <xxhash.h>

#include "arch/arch.h"
#include "core/snapshot.h"
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

/* Offsets in the encoding of small_config(): kernel (4+2), initrd and
 * append (NULL markers, 4 each), cpus (4), memory (8), then the bytes
 * console, no_reboot, rng, balloon, and the disk count. */
#define CFG_CONSOLE_AT 26
#define CFG_DISKS_AT   30

static void small_config(struct vm_config *c, unsigned disks, unsigned nets)
{
	memset(c, 0, sizeof(*c));
	c->kernel = "/k";
	c->cpus = 1;
	c->memory = 16u << 20;
	c->nr_disks = disks;
	for (unsigned i = 0; i < disks; i++)
		c->disks[i].path = "/d";
	c->nr_nets = nets;
	for (unsigned i = 0; i < nets; i++)
		strcpy(c->nets[i].tap, "t");
}

static void put_u32_at(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Each case is a complete encoding with one fault, so only the check for
 * that fault can refuse it. For the counts that is one whole entry more than
 * the arrays hold: without the check the load writes past their end, which
 * the ASan/UBSan tier reports (a plain -O2 build may use that undefined
 * behaviour to end the loop early and refuse the encoding anyway). */
static void test_config_malformed(void **state)
{
	struct vm_config c;
	struct ser_writer w, x;

	/* MAX_DISKS disks load ... */
	small_config(&c, MAX_DISKS, 0);
	ser_writer_init(&w);
	snap_config_save(&c, &w);
	assert_false(w.err);
	assert_int_equal(load_config(w.buf, w.len), 0);
	/* ... one more does not: path, ro, serial, then the NIC count (0). */
	ser_writer_init(&x);
	ser_put_bytes(&x, w.buf, w.len - 4);
	ser_put_u32(&x, 2);
	ser_put_bytes(&x, "/e", 2);
	ser_put_u8(&x, 0);
	ser_put_u32(&x, UINT32_MAX);
	ser_put_u32(&x, 0);
	assert_false(x.err);
	assert_int_equal(x.buf[CFG_DISKS_AT], MAX_DISKS);
	put_u32_at(x.buf + CFG_DISKS_AT, MAX_DISKS + 1);
	assert_int_equal(load_config(x.buf, x.len), -1);
	ser_writer_free(&x);
	ser_writer_free(&w);

	/* MAX_NICS NICs load, one more (tap, MAC, mac_set) does not. */
	small_config(&c, 0, MAX_NICS);
	ser_writer_init(&w);
	snap_config_save(&c, &w);
	assert_false(w.err);
	assert_int_equal(load_config(w.buf, w.len), 0);
	ser_writer_init(&x);
	ser_put_bytes(&x, w.buf, w.len);
	ser_put_u32(&x, 1);
	ser_put_bytes(&x, "u", 1);
	ser_put_bytes(&x, "\x52\x54\x00\x00\x00\x01", 6);
	ser_put_u8(&x, 1);
	assert_false(x.err);
	assert_int_equal(x.buf[CFG_DISKS_AT + 4], MAX_NICS);
	put_u32_at(x.buf + CFG_DISKS_AT + 4, MAX_NICS + 1);
	assert_int_equal(load_config(x.buf, x.len), -1);
	ser_writer_free(&x);

	/* An unknown console kind. */
	assert_int_equal(w.buf[CFG_CONSOLE_AT], CONSOLE_SERIAL);
	w.buf[CFG_CONSOLE_AT] = CONSOLE_VIRTIO + 1;
	assert_int_equal(load_config(w.buf, w.len), -1);
	ser_writer_free(&w);

	/* Zero vCPUs. */
	small_config(&c, 1, 1);
	c.cpus = 0;
	ser_writer_init(&w);
	snap_config_save(&c, &w);
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
#define HDR_SIZE        96
#define HDR_ARCH_X86_64 1

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
	h[12] = HDR_ARCH_X86_64;
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
	ret = snapshot_open(path, true, &s);
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
	expect_refused_data(buf, sizeof(buf), arch_this == ARCH_ID_ARM64 ? "taken on x86_64, this is arm64"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_config_malformed),
		cmocka_unit_test(test_open_refuses_non_snapshots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
