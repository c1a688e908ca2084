/* Snapshot configuration encoding and refusal of files that are not
 * snapshots (full snapshots of real VMs are tested in tests/guests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <xxhash.h>

#include "arch/arch.h"
#include "core/snapshot.h"
#include "core/vm.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "fakes.h"

/* Allocations counted while `counting`: the live snapshot's child must make none. glibc's own
 * allocator does the work; a sanitizer's run-time has its own, so there the count is off. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define CAN_COUNT_ALLOCS 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
static volatile int allocs;
static volatile bool counting;

void *malloc(size_t n)
{
	if (counting)
		allocs++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (counting)
		allocs++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	if (counting)
		allocs++;
	return __libc_realloc(p, n);
}
#else
#define CAN_COUNT_ALLOCS 0
static int allocs;
static bool counting;
#endif

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

/* One state section as snapshot.c writes it: le32 type, le32 0, le64 length, le64 XXH3, payload. */
static void put_section(struct ser_writer *w, uint32_t type, const void *payload, size_t len)
{
	ser_put_u32(w, type);
	ser_put_u32(w, 0);
	ser_put_u64(w, len);
	ser_put_u64(w, XXH3_64bits(payload, len));
	ser_put_bytes(w, payload, len);
}

enum { T_CONFIG = 1, T_CPUFEAT, T_VM, T_VCPU, T_DEVICE };

/* The writer of the live snapshot's child allocates nothing (another thread may have held
 * malloc's lock at the fork) and writes a file snapshot_open takes, RAM included. */
static void test_file_write_allocates_nothing(void **state)
{
	struct vm_config c;
	struct fake_ram ram;
	struct ser_writer cfg, meta;
	struct snapshot s;
	uint64_t bytes = 0;
	char path[] = "/tmp/kvmbox-snapw-XXXXXX";
	int fd, err;
	uint8_t page[4096];

	fill_config(&c);
	c.memory = 16 * 4096;
	fake_ram_init_flat(&ram, c.memory);
	memset(ram.buf + 3 * 4096, 0xa5, 4096);
	memcpy(ram.buf + 9 * 4096 + 100, "kvmbox", 6);
	ser_writer_init(&cfg);
	snap_config_save(&c, &cfg);
	ser_writer_init(&meta);
	put_section(&meta, T_CONFIG, cfg.buf, cfg.len);
	assert_false(meta.err);
	fd = mkstemp(path);
	assert_true(fd >= 0);

	allocs = 0;
	counting = true;
	err = snapshot_file_write(&ram.mem, fd, meta.buf, meta.len, &bytes, NULL);
	counting = false;
	close(fd);
	assert_int_equal(err, 0);
	if (CAN_COUNT_ALLOCS)
		assert_int_equal(allocs, 0);
	else
		print_message("# allocations not counted in a sanitizer build\n");
	assert_true(bytes == 2 * 4096); /* the two non-zero pages */

	assert_int_equal(snapshot_open(path, true, NULL, &s), 0);
	assert_true(s.ram_len == c.memory);
	assert_int_equal(s.config.cfg.cpus, 3);
	assert_int_equal(pread(s.fd, page, sizeof(page), (off_t)(SNAP_RAM_OFFSET + 9 * 4096)),
			 (ssize_t)sizeof(page));
	assert_memory_equal(page + 100, "kvmbox", 6);
	assert_false(s.shared_writable); /* ours, 0600: RAM may be mapped from it */
	snapshot_close(&s);
	snap_config_free(&s.config);
	/* Writable by its group or by others: a restore must not map it. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(chmod(path, i ? 0602 : 0620), 0);
		assert_int_equal(snapshot_open(path, true, NULL, &s), 0);
		assert_true(s.shared_writable);
		snapshot_close(&s);
		snap_config_free(&s.config);
	}
	unlink(path);
	ser_writer_free(&meta);
	ser_writer_free(&cfg);
	fake_ram_free(&ram);
	vm_config_free_devices(&c);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void read_back(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

/* The temporary file is always a new file of ours: a link planted where it goes (the old fixed
 * name path.tmp) is not written through, and a failed snapshot leaves nothing behind. */
static void test_tmp_file_never_through_a_link(void **state)
{
	char dir[] = "/tmp/kvmbox-snapdir-XXXXXX", snap[128], link_[160], target[128], tmp[256], tmp2[256],
	     text[64];
	struct vm_config c;
	struct vm vm;
	struct snap_result res;
	struct stderr_capture cap;
	struct stat st;
	char err[256];
	int fd, fd2;

	assert_non_null(mkdtemp(dir));
	snprintf(snap, sizeof(snap), "%s/vm.snap", dir);
	snprintf(link_, sizeof(link_), "%s.tmp", snap);
	snprintf(target, sizeof(target), "%s/victim", dir);
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	assert_int_equal(symlink(target, link_), 0);

	/* A VM without KVM: capturing its state fails, after the file was created. */
	fill_config(&c);
	memset(&vm, 0, sizeof(vm));
	vm.cfg = &c;
	vm.kvm_fd = vm.vm_fd = -1;
	pthread_mutex_init(&vm.pause_lock, NULL);
	pthread_mutex_init(&vm.pause_op_lock, NULL);
	pthread_cond_init(&vm.pause_cond, NULL);
	stderr_capture_begin(&cap);
	snapshot_write(&vm, snap, false, &res, err, sizeof(err));
	stderr_capture_end(&cap);
	read_back(target, text, sizeof(text));
	assert_string_equal(text, "precious");
	assert_int_equal(lstat(link_, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* The victim and the link, and no temporary file left. */
	assert_int_equal(count_entries(dir), 2 + (access(snap, F_OK) == 0));

	/* Each name is new, mode 0600, a regular file beside the snapshot. */
	fd = snapshot_tmp_create(snap, tmp, sizeof(tmp));
	assert_true(fd >= 0);
	assert_int_equal(strncmp(tmp, snap, strlen(snap)), 0);
	assert_int_equal(strncmp(tmp + strlen(snap), ".tmp-", 5), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	fd2 = snapshot_tmp_create(snap, tmp2, sizeof(tmp2));
	assert_true(fd2 >= 0);
	assert_string_not_equal(tmp, tmp2);
	assert_int_equal(unlink(tmp), 0);
	assert_int_equal(unlink(tmp2), 0);
	close(fd2);
	close(fd);
	/* A name that does not fit is refused, nothing is created. */
	errno = 0;
	assert_int_equal(snapshot_tmp_create(snap, tmp, strlen(snap) + 6), -1);
	assert_int_equal(errno, ENAMETOOLONG);

	unlink(link_);
	unlink(target);
	unlink(snap);
	assert_int_equal(rmdir(dir), 0);
	pthread_mutex_destroy(&vm.pause_lock);
	pthread_mutex_destroy(&vm.pause_op_lock);
	pthread_cond_destroy(&vm.pause_cond);
	vm_config_free_devices(&c);
}

/* vm_state_load on a VM without vCPUs or devices: stderr must name `why`. */
static void expect_state_refused(const struct ser_writer *w, const char *why)
{
	struct stderr_capture cap;
	struct ser_reader r;
	struct vm vm;
	int ret;

	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;
	ser_reader_init(&r, w->buf, w->len);
	stderr_capture_begin(&cap);
	ret = vm_state_load(&vm, &r);
	stderr_capture_end(&cap);
	assert_int_equal(ret, -1);
	if (!strstr(cap.text, why))
		fail_msg("refused for another reason: \"%s\", expected \"%s\"", cap.text, why);
}

/* The CPU-feature and VM sections are required, once each, before the vCPUs; checked before
 * anything is applied (so these refusals need no KVM). */
static void test_state_requires_sections(void **state)
{
	static const uint8_t junk[4] = { 1, 2, 3, 4 };
	struct ser_writer w;

	ser_writer_init(&w);
	expect_state_refused(&w, "no CPU features section");
	put_section(&w, T_CONFIG, junk, sizeof(junk));
	expect_state_refused(&w, "no CPU features section");
	put_section(&w, T_CPUFEAT, junk, sizeof(junk));
	expect_state_refused(&w, "no VM section");
	ser_writer_free(&w);

	ser_writer_init(&w);
	put_section(&w, T_VM, junk, sizeof(junk));
	expect_state_refused(&w, "no CPU features section");
	ser_writer_free(&w);

	ser_writer_init(&w);
	put_section(&w, T_CPUFEAT, junk, sizeof(junk));
	put_section(&w, T_VM, junk, sizeof(junk));
	put_section(&w, T_VM, junk, sizeof(junk));
	expect_state_refused(&w, "VM section is repeated or out of place");
	ser_writer_free(&w);

	ser_writer_init(&w);
	put_section(&w, T_VCPU, junk, sizeof(junk));
	put_section(&w, T_CPUFEAT, junk, sizeof(junk));
	put_section(&w, T_VM, junk, sizeof(junk));
	expect_state_refused(&w, "CPU features section is repeated or out of place");
	ser_writer_free(&w);
}

/* A device section matches the VM's device list in order; a device that keeps no state (x86's
 * pci-ecam) may be missing from a state written before it existed, one that keeps state may
 * not, nor may a section name a device the VM does not have. */
static void fake_save(struct device *d, struct ser_writer *w)
{
	(void)d;
	(void)w;
}

static void test_state_device_list(void **state)
{
	static const struct device_ops stateful = { .type = "pci", .save = fake_save };
	static const struct device_ops cf8 = { .type = "pci-cf8", .save = fake_save };
	static const struct device_ops stateless = { .type = "pci-ecam" };
	static const struct device_ops blk = { .type = "virtio-blk", .save = fake_save };
	struct device d[4] = {
		{ .ops = &stateful, .name = "pci" },
		{ .ops = &cf8, .name = "pci-cf8" },
		{ .ops = &stateless, .name = "pci-ecam" },
		{ .ops = &blk, .name = "virtio-blk0" },
	};

	for (int i = 0; i < 3; i++)
		d[i].next = &d[i + 1];
	/* A state with every section: each finds its own device, in order. */
	assert_ptr_equal(snap_device_for(&d[0], "pci", "pci"), &d[0]);
	assert_ptr_equal(snap_device_for(&d[1], "pci-cf8", "pci-cf8"), &d[1]);
	assert_ptr_equal(snap_device_for(&d[2], "pci-ecam", "pci-ecam"), &d[2]);
	assert_ptr_equal(snap_device_for(&d[3], "virtio-blk", "virtio-blk0"), &d[3]);
	assert_null(snap_device_for(NULL, NULL, NULL)); /* nothing left over */
	/* A state written before pci-ecam existed: after pci-cf8 comes virtio-blk0's section. */
	assert_ptr_equal(snap_device_for(&d[2], "virtio-blk", "virtio-blk0"), &d[3]);
	/* A state that ends after pci-cf8 lacks virtio-blk0 (pci-ecam is passed over) ... */
	assert_ptr_equal(snap_device_for(&d[2], NULL, NULL), &d[3]);
	/* ... but is complete for a VM whose list ends with the stateless device. */
	d[2].next = NULL;
	assert_null(snap_device_for(&d[2], NULL, NULL));
	d[2].next = &d[3];
	/* A device with state is never passed over: its section missing is a damaged state. */
	assert_null(snap_device_for(&d[1], "virtio-blk", "virtio-blk0"));
	assert_ptr_equal(snap_device_for(&d[3], NULL, NULL), &d[3]);
	assert_ptr_equal(snap_device_for(&d[1], NULL, NULL), &d[1]);
	/* A section of a device the VM lacks, or under another name, matches nothing. */
	assert_null(snap_device_for(&d[2], "virtio-net", "virtio-net0"));
	assert_null(snap_device_for(&d[3], "virtio-blk", "virtio-blk1"));
	assert_null(snap_device_for(NULL, "pci", "pci"));
	/* Sections out of order are refused, stateless device in between or not. */
	assert_null(snap_device_for(&d[0], "pci-cf8", "pci-cf8"));
}

/* The local command line names the host resources; the saved configuration only has to
 * describe the same guest (vm_config_match, shared by restore and run --incoming). */
static void test_config_match(void **state)
{
	struct vm_config saved, local;
	struct snap_config sc;
	struct ser_writer w;
	struct ser_reader r;
	char msg[512];

	(void)state;
	fill_config(&saved);
	/* Through the snapshot encoding, as a restore or a destination gets it. */
	ser_writer_init(&w);
	snap_config_save(&saved, &w);
	vm_config_free_devices(&saved);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_load(&sc, &r), 0);
	ser_writer_free(&w);

	/* Other paths, tap names, kernel, tuning and a serial console: the same guest. */
	memset(&local, 0, sizeof(local));
	local.kernel = "/local/bzImage";
	local.cpus = 3;
	local.memory = 512ULL << 20;
	local.console = CONSOLE_VIRTIO;
	assert_int_equal(vm_config_add(&local, &virtio_blk_type, "/local/a.img"), 0);
	assert_int_equal(vm_config_add(&local, &virtio_net_type, "tap=other,mac=52:54:00:01:02:03"), 0);
	assert_int_equal(vm_config_add(&local, &virtio_blk_type, "/local/b.img,ro,serial=SER123"), 0);
	assert_int_equal(vm_config_add(&local, &virtio_rng_type, NULL), 0);
	assert_int_equal(vm_config_add(&local, &virtio_balloon_type, NULL), 0);
	assert_int_equal(vm_tuning_set(&local.tuning, "mlock", NULL), 0);
	assert_int_equal(vm_config_match(&sc.cfg, &local, "the source VM", msg, sizeof(msg)), 0);

	/* RAM or vCPUs: the line names both options with the saved values. */
	local.memory = 256ULL << 20;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "the source VM", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "the source VM has 512M of RAM and 3 vCPUs"));
	assert_non_null(strstr(msg, "start with --memory 512M --cpus 3"));
	assert_null(strchr(msg, '\n'));
	local.memory = 512ULL << 20;
	local.cpus = 1;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "--cpus 3"));
	local.cpus = 3;

	/* A virtio console is a guest device; serial and none are this host's business. */
	local.console = CONSOLE_SERIAL;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "--console virtio"));
	sc.cfg.console = CONSOLE_NONE;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), 0);
	sc.cfg.console = CONSOLE_VIRTIO;
	local.console = CONSOLE_VIRTIO;

	/* The ro flag and the serial are the guest's. */
	((struct disk_config *)local.devs[2].cfg)->readonly = false;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "the snapshot's VM", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "disk 1 (--disk) read-only"));
	assert_non_null(strstr(msg, "add ,ro"));
	((struct disk_config *)local.devs[2].cfg)->readonly = true;
	snprintf(((struct disk_config *)local.devs[2].cfg)->serial, 21, "OTHER");
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, ",serial=SER123"));
	snprintf(((struct disk_config *)local.devs[2].cfg)->serial, 21, "SER123");

	/* The MAC: given, or made from the tap name (so another tap without mac= differs). */
	((struct net_config *)local.devs[1].cfg)->mac_set = false;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "mac=52:54:00:01:02:03"));
	((struct net_config *)local.devs[1].cfg)->mac_set = true;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), 0);

	/* A device more, a device less, or another order. */
	assert_int_equal(vm_config_add(&local, &virtio_blk_type, "/local/c.img"), 0);
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "remove that --disk"));
	local.nr_devs--;
	vm_config_free_devices(&(struct vm_config){ .devs = { local.devs[5] }, .nr_devs = 1 });
	local.nr_devs--;
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "the next one is a --balloon"));
	local.nr_devs++;
	{
		struct dev_config t = local.devs[0];

		local.devs[0] = local.devs[1];
		local.devs[1] = t;
	}
	assert_int_equal(vm_config_match(&sc.cfg, &local, "x", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "has a --disk as device 0, this command line a --net"));
	vm_config_free_devices(&local);
	snap_config_free(&sc);
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
	assert_int_equal(snapshot_file_write(&ram.mem, fd, meta.buf, meta.len, &bytes, key), 0);
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
		cmocka_unit_test(test_config_match),
		cmocka_unit_test(test_open_refuses_non_snapshots),
		cmocka_unit_test(test_file_write_allocates_nothing),
		cmocka_unit_test(test_tmp_file_never_through_a_link),
		cmocka_unit_test(test_state_requires_sections),
		cmocka_unit_test(test_state_device_list),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_mac_stripped),
	};

	if (sodium_init() < 0)
		return 1;
	randombytes_buf(mac_key, sizeof(mac_key));
	randombytes_buf(other_key, sizeof(other_key));

	return cmocka_run_group_tests(tests, NULL, NULL);
}
