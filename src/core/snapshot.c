#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation in the child */
#include <xxhash.h>
#include <sodium.h>

#include "../arch/arch.h"
#include "devtype.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "vcpu.h"
#include "vm.h"

#define SNAP_HEADER_SIZE 96
/* Header flags (u32 at 64; files of kvmbox before the flags have 0 there). */
#define SNAP_FLAG_MAC   1u /* a keyed MAC (--snapshot-key) at SNAP_MAC_OFFSET */
#define SNAP_MAC_OFFSET SNAP_HEADER_SIZE
#define SNAP_MAC_BYTES  crypto_generichash_BYTES

/* The keyed MAC of --snapshot-key: BLAKE2b (crypto_generichash) under the key, over a fixed
 * string, then every non-zero RAM page as (u64 index, content) in index order (the pages a
 * restore maps: zero pages are holes), then the metadata, then the 96-byte header (which holds
 * the lengths and the flags). It sits at SNAP_MAC_OFFSET, in the header page. */
static const char mac_context[] = "kvmbox snapshot MAC 1";

static void mac_begin(crypto_generichash_state *st, const uint8_t *key)
{
	crypto_generichash_init(st, key, KEY_BYTES, SNAP_MAC_BYTES);
	crypto_generichash_update(st, (const uint8_t *)mac_context, sizeof(mac_context));
}

static void mac_page(crypto_generichash_state *st, uint64_t idx, const uint8_t *page)
{
	uint8_t le[8];

	put_le64(le, idx);
	crypto_generichash_update(st, le, sizeof(le));
	crypto_generichash_update(st, page, PAGE_SIZE);
}

enum snap_section {
	SEC_CONFIG = 1,
	SEC_CPUFEAT,
	SEC_VM,
	SEC_VCPU,
	SEC_DEVICE,
	SEC_RAM,
	SEC_END,
};

/* ---- config ---------------------------------------------------------- */

/* Configuration added after format version 2, as tagged records after the devices: u32 tag,
 * u32 length, the record. A file without them (older) loads with their defaults; a tag this
 * kvmbox does not know is skipped. */
enum config_ext { CFG_EXT_TUNING = 1 };

static void config_ext_save(const struct vm_config *cfg, struct ser_writer *w)
{
	struct ser_writer one;

	ser_writer_init(&one);
	vm_tuning_save(&cfg->tuning, &one);
	ser_put_u32(w, CFG_EXT_TUNING);
	ser_put_u32(w, (uint32_t)one.len);
	ser_put_bytes(w, one.buf, one.len);
	if (one.err)
		w->err = true;
	ser_writer_free(&one);
}

static int config_ext_load(struct vm_config *c, struct ser_reader *r)
{
	while (!r->err && r->off < r->len) {
		uint32_t tag = ser_get_u32(r), len = ser_get_u32(r);
		struct ser_reader one;

		if (r->err || len > r->len - r->off)
			return -1;
		ser_reader_init(&one, r->buf + r->off, len);
		r->off += len;
		if (tag == CFG_EXT_TUNING && (vm_tuning_load(&c->tuning, &one) < 0 || !ser_reader_done(&one)))
			return -1;
	}
	return r->err ? -1 : 0;
}

void snap_config_save(const struct vm_config *cfg, struct ser_writer *w)
{
	ser_put_str(w, cfg->kernel);
	ser_put_str(w, cfg->initrd);
	ser_put_str(w, cfg->append);
	ser_put_u32(w, cfg->cpus);
	ser_put_u64(w, cfg->memory);
	ser_put_u8(w, (uint8_t)cfg->console);
	ser_put_u8(w, cfg->no_reboot);
	/* Each device: its type's name, then its type's own record, length-prefixed. */
	ser_put_u32(w, cfg->nr_devs);
	for (unsigned i = 0; i < cfg->nr_devs; i++) {
		const struct device_type *t = cfg->devs[i].type;
		struct ser_writer one;

		ser_writer_init(&one);
		if (t->save)
			t->save(cfg->devs[i].cfg, &one);
		ser_put_str(w, t->name);
		ser_put_u32(w, (uint32_t)one.len);
		ser_put_bytes(w, one.buf, one.len);
		if (one.err)
			w->err = true;
		ser_writer_free(&one);
	}
	config_ext_save(cfg, w);
}

int snap_config_load(struct snap_config *sc, struct ser_reader *r)
{
	struct vm_config *c = &sc->cfg;
	uint32_t nr;
	uint8_t console, no_reboot;

	memset(sc, 0, sizeof(*sc));
	c->kernel = sc->strings[0] = ser_get_str(r, 4096);
	c->initrd = sc->strings[1] = ser_get_str(r, 4096);
	c->append = sc->strings[2] = ser_get_str(r, 65536);
	c->cpus = ser_get_u32(r);
	c->memory = ser_get_u64(r);
	console = ser_get_u8(r);
	no_reboot = ser_get_u8(r);
	nr = ser_get_u32(r);
	if (r->err || console > CONSOLE_VIRTIO || no_reboot > 1 || c->cpus == 0 || nr > MAX_DEVICES)
		goto bad;
	c->console = (enum console_kind)console;
	c->no_reboot = no_reboot;
	for (uint32_t i = 0; i < nr; i++) {
		char *name = ser_get_str(r, 64);
		const struct device_type *t = name ? device_type_by_name(name) : NULL;
		uint32_t len = ser_get_u32(r);
		struct ser_reader one;
		void *cfg = NULL;

		if (name && !t)
			log_error("snapshot: a device of type '%s', which this kvmbox does not have", name);
		free(name);
		if (!t || r->err || len > r->len - r->off || vm_config_count(c, t) >= t->max)
			goto bad;
		ser_reader_init(&one, r->buf + r->off, len);
		r->off += len;
		if (t->config_size && !(cfg = calloc(1, t->config_size)))
			goto bad;
		c->devs[c->nr_devs++] = (struct dev_config){ .type = t, .cfg = cfg };
		if ((t->load && t->load(cfg, &one) < 0) || !ser_reader_done(&one))
			goto bad;
	}
	if (config_ext_load(c, r) < 0)
		goto bad;
	return 0;
bad:
	snap_config_free(sc);
	return -1;
}

void snap_config_free(struct snap_config *sc)
{
	vm_config_free_devices(&sc->cfg);
	for (size_t i = 0; i < ARRAY_SIZE(sc->strings); i++)
		free(sc->strings[i]);
	memset(sc, 0, sizeof(*sc));
}

/* ---- sections ---------------------------------------------------------- */

/* Section: u32 type, u32 reserved, u64 length, u64 XXH3 of the payload. */
static size_t section_begin(struct ser_writer *w, uint32_t type)
{
	size_t at = w->len;

	ser_put_u32(w, type);
	ser_put_u32(w, 0);
	ser_put_u64(w, 0);
	ser_put_u64(w, 0);
	return at;
}

static void section_end(struct ser_writer *w, size_t at)
{
	uint64_t len;

	if (w->err)
		return;
	len = w->len - at - 24;
	put_le64(w->buf + at + 8, len);
	put_le64(w->buf + at + 16, XXH3_64bits(w->buf + at + 24, len));
}

/* Next section: checks its hash; *sub reads its payload. */
static int section_next(struct ser_reader *r, uint32_t *type, struct ser_reader *sub)
{
	uint64_t len, hash;

	*type = ser_get_u32(r);
	ser_get_u32(r);
	len = ser_get_u64(r);
	hash = ser_get_u64(r);
	if (r->err || len > r->len - r->off)
		return -1;
	if (XXH3_64bits(r->buf + r->off, len) != hash)
		return -1;
	ser_reader_init(sub, r->buf + r->off, len);
	r->off += len;
	return 0;
}

int vm_state_save(struct vm *vm, struct ser_writer *w)
{
	size_t at;

	at = section_begin(w, SEC_CONFIG);
	snap_config_save(vm->cfg, w);
	section_end(w, at);
	at = section_begin(w, SEC_CPUFEAT);
	if (arch_cpu_features_save(vm, w) < 0)
		return -1;
	section_end(w, at);
	at = section_begin(w, SEC_VM);
	if (arch_vm_save(vm, w) < 0)
		return -1;
	section_end(w, at);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		at = section_begin(w, SEC_VCPU);
		ser_put_u32(w, i);
		if (arch_vcpu_save(vm->vcpus[i], w) < 0)
			return -1;
		section_end(w, at);
	}
	for (struct device *d = vm->devices; d; d = d->next) {
		at = section_begin(w, SEC_DEVICE);
		ser_put_str(w, d->ops->type);
		ser_put_str(w, d->name);
		if (d->ops->save)
			d->ops->save(d, w);
		section_end(w, at);
	}
	if (w->err) {
		log_error("snapshot: out of memory capturing the VM state");
		return -1;
	}
	return 0;
}

static int damaged(const char *what)
{
	log_error("snapshot: %s is malformed or does not match this VM; the file is damaged", what);
	return -1;
}

/* The sections a state must have once each, checked before any is applied. */
static int sections_check(const struct ser_reader *all)
{
	static const struct {
		uint32_t type;
		const char *name;
	} required[] = { { SEC_CPUFEAT, "CPU features" }, { SEC_VM, "VM" } };
	unsigned seen[ARRAY_SIZE(required)] = { 0 };
	struct ser_reader r = *all, sub;
	uint32_t type;
	bool vcpus = false;

	while (r.off < r.len) {
		if (section_next(&r, &type, &sub) < 0)
			return damaged("a state section");
		for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
			if (type != required[i].type)
				continue;
			/* The host's CPU is checked and the VM set up before a vCPU is loaded. */
			if (++seen[i] > 1 || vcpus) {
				log_error(
					"snapshot: the state's %s section is repeated or out of place; the file "
					"is damaged",
					required[i].name);
				return -1;
			}
		}
		vcpus = vcpus || type == SEC_VCPU;
	}
	for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
		if (!seen[i]) {
			log_error("snapshot: the state has no %s section; the file is damaged or not a "
				  "complete snapshot",
				  required[i].name);
			return -1;
		}
	}
	return 0;
}

struct device *snap_device_for(struct device *dev, const char *type, const char *name)
{
	for (; dev; dev = dev->next) {
		if (type && name && !strcmp(type, dev->ops->type) && !strcmp(name, dev->name))
			return dev;
		if (dev->ops->save || dev->ops->load)
			return type ? NULL : dev;
	}
	return NULL;
}

int vm_state_load(struct vm *vm, struct ser_reader *r)
{
	struct ser_reader sub;
	uint32_t type;
	unsigned vcpu = 0;
	struct device *dev = vm->devices;

	if (sections_check(r) < 0)
		return -1;
	while (r->off < r->len) {
		if (section_next(r, &type, &sub) < 0)
			return damaged("a state section");
		switch (type) {
		case SEC_CONFIG:
		case SEC_RAM:
		case SEC_END:
			break; /* read by snapshot_open / the caller */
		case SEC_CPUFEAT:
			if (arch_cpu_features_check(vm, &sub) < 0)
				return -1;
			break;
		case SEC_VM:
			if (arch_vm_load(vm, &sub) < 0)
				return -1;
			break;
		case SEC_VCPU:
			if (vcpu >= vm->nr_vcpus || ser_get_u32(&sub) != vcpu)
				return damaged("the vCPU list");
			if (arch_vcpu_load(vm->vcpus[vcpu], &sub) < 0)
				return -1;
			vcpu++;
			break;
		case SEC_DEVICE: {
			char *t = ser_get_str(&sub, 64), *n = ser_get_str(&sub, 64);

			dev = !sub.err && t && n ? snap_device_for(dev, t, n) : NULL;
			free(t);
			free(n);
			if (!dev)
				return damaged("the device list");
			if (dev->ops->load && dev->ops->load(dev, &sub) < 0) {
				log_error(
					"snapshot: device %s: saved state refused; the file is damaged or its "
					"disks changed",
					dev->name);
				return -1;
			}
			dev = dev->next;
			break;
		}
		default:
			return damaged("a section type");
		}
	}
	if (vcpu != vm->nr_vcpus || snap_device_for(dev, NULL, NULL))
		return damaged("the vCPU or device count");
	return 0;
}

/* ---- RAM --------------------------------------------------------------- */

/* Write non-zero pages of the RAM image at SNAP_RAM_OFFSET (holes for the
 * rest) and hash them as (page index, content). Runs in the forked child
 * for live snapshots: no allocation, no locks. */
static int write_ram(const struct guest_mem *m, int fd, uint64_t *hash_out, uint64_t *bytes,
		     crypto_generichash_state *mac)
{
	XXH3_state_t st;
	uint64_t page = 0;

	XXH3_64bits_reset(&st);
	*bytes = 0;
	for (int i = 0; i < m->nr_regions; i++) {
		const uint8_t *base = m->regions[i].host;
		uint64_t npages = m->regions[i].size / PAGE_SIZE;

		for (uint64_t j = 0; j < npages;) {
			uint64_t k = j;

			while (k < npages && !page_is_zero(base + k * PAGE_SIZE)) {
				uint64_t idx = page + k;

				XXH3_64bits_update(&st, &idx, sizeof(idx));
				XXH3_64bits_update(&st, base + k * PAGE_SIZE, PAGE_SIZE);
				if (mac)
					mac_page(mac, idx, base + k * PAGE_SIZE);
				k++;
			}
			if (k > j) {
				if (pwrite_all(fd, base + j * PAGE_SIZE, (k - j) * PAGE_SIZE,
					       SNAP_RAM_OFFSET + (page + j) * PAGE_SIZE) < 0)
					return -1;
				*bytes += (k - j) * PAGE_SIZE;
				j = k;
			} else {
				j++;
			}
		}
		page += npages;
	}
	*hash_out = XXH3_64bits_digest(&st);
	return 0;
}

/* Hash the RAM image of a snapshot file the same way, reading only its data
 * extents (holes are zero pages, which write_ram skipped). */
static int hash_ram_file(int fd, uint64_t ram_len, uint64_t *hash_out, crypto_generichash_state *mac)
{
	XXH3_state_t st;
	uint8_t *buf = malloc(1 << 20);
	off_t pos = (off_t)SNAP_RAM_OFFSET, end = (off_t)(SNAP_RAM_OFFSET + ram_len);
	int ret = -1;

	if (!buf)
		return -1;
	XXH3_64bits_reset(&st);
	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= end)
			break; /* ENXIO: no more data */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		data &= ~(off_t)(PAGE_SIZE - 1);
		for (off_t at = data; at < hole;) {
			size_t n = (size_t)(hole - at) > (1u << 20) ? (1u << 20) : (size_t)(hole - at);
			ssize_t got = pread(fd, buf, n, at);

			if (got <= 0 || got % (ssize_t)PAGE_SIZE)
				goto out;
			for (ssize_t o = 0; o < got; o += (ssize_t)PAGE_SIZE) {
				uint64_t idx = (uint64_t)(at + o - (off_t)SNAP_RAM_OFFSET) / PAGE_SIZE;

				if (page_is_zero(buf + o))
					continue;
				XXH3_64bits_update(&st, &idx, sizeof(idx));
				XXH3_64bits_update(&st, buf + o, PAGE_SIZE);
				if (mac)
					mac_page(mac, idx, buf + o);
			}
			at += got;
		}
		pos = hole;
	}
	*hash_out = XXH3_64bits_digest(&st);
	ret = 0;
out:
	free(buf);
	return ret;
}

/* ---- header -------------------------------------------------------------- */

struct snap_header {
	uint64_t ram_len;
	uint64_t ram_hash;
	uint64_t meta_off;
	uint64_t meta_len;
	uint64_t meta_hash;
	uint32_t flags;
};

/* Fixed offsets, no allocation: the live snapshot's child encodes the header after fork. */
static void header_encode(const struct snap_header *h, uint8_t out[SNAP_HEADER_SIZE])
{
	memset(out, 0, SNAP_HEADER_SIZE);
	memcpy(out, SNAP_MAGIC, 8);
	put_le32(out + 8, SNAP_VERSION);
	put_le32(out + 12, arch_this);
	put_le64(out + 16, SNAP_RAM_OFFSET);
	put_le64(out + 24, h->ram_len);
	put_le64(out + 32, h->ram_hash);
	put_le64(out + 40, h->meta_off);
	put_le64(out + 48, h->meta_len);
	put_le64(out + 56, h->meta_hash);
	put_le32(out + 64, h->flags);
	put_le64(out + SNAP_HEADER_SIZE - 8, XXH3_64bits(out, SNAP_HEADER_SIZE - 8));
}

static void set_err(char *errmsg, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
	log_error("%s", errmsg);
}

int snapshot_file_write(const struct guest_mem *m, int fd, const void *meta, size_t meta_len,
			uint64_t *ram_bytes, const uint8_t *key)
{
	struct snap_header h = { .ram_len = m->total, .flags = key ? SNAP_FLAG_MAC : 0 };
	uint8_t hdr[SNAP_HEADER_SIZE], tag[SNAP_MAC_BYTES];
	crypto_generichash_state mac;

	if (key)
		mac_begin(&mac, key);
	if (write_ram(m, fd, &h.ram_hash, ram_bytes, key ? &mac : NULL) < 0)
		return errno ? errno : EIO;
	h.meta_off = SNAP_RAM_OFFSET + m->total;
	h.meta_len = meta_len;
	h.meta_hash = XXH3_64bits(meta, meta_len);
	if (pwrite_all(fd, meta, meta_len, h.meta_off) < 0)
		return errno ? errno : EIO;
	header_encode(&h, hdr);
	if (key) {
		crypto_generichash_update(&mac, meta, meta_len);
		crypto_generichash_update(&mac, hdr, sizeof(hdr));
		crypto_generichash_final(&mac, tag, sizeof(tag));
		if (pwrite_all(fd, tag, sizeof(tag), SNAP_MAC_OFFSET) < 0)
			return errno ? errno : EIO;
	}
	if (pwrite_all(fd, hdr, sizeof(hdr), 0) < 0 || fsync(fd) < 0)
		return errno ? errno : EIO;
	return 0;
}

int snapshot_tmp_create(const char *path, char *tmp, size_t len)
{
	static unsigned seq;

	for (int tries = 0; tries < 16; tries++) {
		struct timespec ts;
		unsigned tag;
		int fd;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		tag = (unsigned)ts.tv_nsec ^ (++seq * 2654435761u);
		if (snprintf(tmp, len, "%s.tmp-%d-%08x", path, (int)getpid(), tag) >= (int)len) {
			errno = ENAMETOOLONG;
			return -1;
		}
		/* A new file of ours, never one that exists, never through a link. */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1; /* errno EEXIST: somebody keeps planting our names */
}

int snapshot_write(struct vm *vm, const char *path, bool live, struct snap_result *res, char *errmsg,
		   size_t errlen)
{
	struct ser_writer meta;
	const uint8_t *key = vm->cfg->keys.have_snapshot_key ? vm->cfg->keys.snapshot_key : NULL;
	double t0 = now_ms(), t_resume = 0;
	char tmp[4096];
	int fd, err = 0, ret = -1;
	bool no_filter = false;
	pid_t pid = -1;

	memset(res, 0, sizeof(*res));
	fd = snapshot_tmp_create(path, tmp, sizeof(tmp));
	if (fd < 0) {
		if (errno == ENAMETOOLONG)
			set_err(errmsg, errlen, "snapshot %s: path too long; give a shorter path", path);
		else
			set_err(errmsg, errlen, "snapshot %s: cannot create it: %s; give a writable path",
				path, strerror(errno));
		return -1;
	}
	ser_writer_init(&meta);
	/* Pauses nest: a VM the user paused stays paused after the snapshot. */
	vm_pause(vm);
	if (vm_state_save(vm, &meta) < 0) {
		set_err(errmsg, errlen, "snapshot %s: could not capture the VM state (see above)", path);
		goto resume;
	}
	if (live) {
		/* The child gets a copy-on-write image of guest RAM frozen at this
		 * instant; the guest runs on as soon as the fork returns. */
		pid = fork();
		if (pid < 0) {
			set_err(errmsg, errlen, "snapshot %s: fork failed: %s; use hibernate, or free memory",
				path, strerror(errno));
			goto resume;
		}
		if (pid == 0) {
			uint64_t bytes;

			/* Only system calls and arithmetic from here: another thread may have held a
			 * lock (malloc's, stdio's) at the fork. */
			sandbox_thread_enter(SB_SNAPSHOT);
			_exit(snapshot_file_write(&vm->mem, fd, meta.buf, meta.len, &bytes, key) == 0 ? 0
												      : 1);
		}
		vm_resume(vm);
		t_resume = now_ms();
		for (;;) {
			int status;
			pid_t w = waitpid(pid, &status, 0);

			if (w < 0 && errno == EINTR)
				continue;
			if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 4)
				no_filter = true;
			if (w < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				err = EIO;
			break;
		}
		if (!err) {
			struct stat st;

			/* What the child wrote: the file's allocated blocks. */
			if (fstat(fd, &st) == 0)
				res->ram_bytes = (uint64_t)st.st_blocks * 512;
		}
	} else {
		err = snapshot_file_write(&vm->mem, fd, meta.buf, meta.len, &res->ram_bytes, key);
	}
	if (no_filter) {
		set_err(errmsg, errlen,
			"snapshot %s: its writer could not install its seccomp filter; give --seccomp off",
			path);
		goto resume;
	}
	if (err) {
		set_err(errmsg, errlen, "snapshot %s: writing failed: %s; check the disk space", path,
			strerror(err));
		goto resume;
	}
	if (rename(tmp, path) < 0) {
		set_err(errmsg, errlen, "snapshot %s: cannot rename it into place: %s", path,
			strerror(errno));
		goto resume;
	}
	ret = 0;
resume:
	if (ret < 0)
		unlink(tmp);
	res->file_bytes = SNAP_RAM_OFFSET + vm->mem.total + meta.len;
	close(fd);
	ser_writer_free(&meta);
	/* A hibernate keeps its pause: the VM stops right after. */
	if (!t_resume && (live || ret < 0)) {
		vm_resume(vm);
		t_resume = now_ms();
	}
	if (!t_resume)
		t_resume = now_ms();
	res->pause_ms = t_resume - t0;
	res->total_ms = now_ms() - t0;
	return ret;
}

/* ---- open / verify ----------------------------------------------------------- */

static int refuse(const char *path, const char *why)
{
	log_error("snapshot %s: %s; it cannot be restored", path, why);
	return -1;
}

static void snapshot_discard(struct snapshot *s);

int snapshot_open(const char *path, bool verify_ram, const uint8_t *key, struct snapshot *s)
{
	uint8_t hdr[SNAP_HEADER_SIZE];
	struct ser_reader r, sub;
	struct snap_header h;
	struct stat st;
	uint32_t type;
	uint64_t ram_off;
	bool have_config = false;

	memset(s, 0, sizeof(*s));
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		log_error("snapshot %s: %s; give the path of a kvmbox snapshot", path, strerror(errno));
		return -1;
	}
	if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return snapshot_discard(s), refuse(path, "not a regular file");
	s->shared_writable = (st.st_mode & (S_IWGRP | S_IWOTH)) || st.st_uid != geteuid();
	if (st.st_size < (off_t)sizeof(hdr) || pread(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return snapshot_discard(s), refuse(path, "truncated (no complete header)");
	if (memcmp(hdr, SNAP_MAGIC, 8))
		return snapshot_discard(s), refuse(path, "not a kvmbox snapshot (bad magic)");
	ser_reader_init(&r, hdr, sizeof(hdr));
	ser_get_bytes(&r, (uint8_t[8]){ 0 }, 8);
	if (ser_get_u32(&r) != SNAP_VERSION)
		return snapshot_discard(s), refuse(path, "written by an incompatible kvmbox version");
	{
		uint32_t arch = ser_get_u32(&r);
		char why[96];

		if (arch != arch_this) {
			snprintf(why, sizeof(why), "taken on %s, this is %s", arch_id_name(arch),
				 arch_id_name(arch_this));
			return snapshot_discard(s), refuse(path, why);
		}
	}
	ram_off = ser_get_u64(&r);
	h.ram_len = ser_get_u64(&r);
	h.ram_hash = ser_get_u64(&r);
	h.meta_off = ser_get_u64(&r);
	h.meta_len = ser_get_u64(&r);
	h.meta_hash = ser_get_u64(&r);
	h.flags = ser_get_u32(&r);
	{
		if (XXH3_64bits(hdr, SNAP_HEADER_SIZE - 8) != get_le64(hdr + SNAP_HEADER_SIZE - 8))
			return snapshot_discard(s), refuse(path, "header checksum mismatch (corrupt)");
	}
	if (h.flags & ~SNAP_FLAG_MAC)
		return snapshot_discard(s), refuse(path, "has header flags this kvmbox does not know");
	if (key && !(h.flags & SNAP_FLAG_MAC))
		return snapshot_discard(s),
		       refuse(path, "has no MAC: it was written without --snapshot-key, or changed since");
	if (!key && (h.flags & SNAP_FLAG_MAC))
		return snapshot_discard(s),
		       refuse(path,
			      "is signed (written with --snapshot-key); give the key with --snapshot-key FILE");
	if (ram_off != SNAP_RAM_OFFSET || h.ram_len % PAGE_SIZE ||
	    h.meta_off != SNAP_RAM_OFFSET + h.ram_len || h.meta_len > (64u << 20) ||
	    h.meta_off + h.meta_len < h.meta_off)
		return snapshot_discard(s), refuse(path, "inconsistent header");
	if ((uint64_t)st.st_size < h.meta_off + h.meta_len)
		return snapshot_discard(s), refuse(path, "truncated");
	if ((uint64_t)st.st_size > h.meta_off + h.meta_len)
		return snapshot_discard(s), refuse(path, "has data after its end (corrupt)");
	s->meta = malloc(h.meta_len ? h.meta_len : 1);
	if (!s->meta)
		return snapshot_discard(s), refuse(path, "out of memory reading it");
	if (pread(s->fd, s->meta, h.meta_len, (off_t)h.meta_off) != (ssize_t)h.meta_len)
		return snapshot_discard(s), refuse(path, "truncated");
	if (XXH3_64bits(s->meta, h.meta_len) != h.meta_hash)
		return snapshot_discard(s), refuse(path, "state checksum mismatch (corrupt)");
	s->meta_len = h.meta_len;
	s->ram_len = h.ram_len;
	if (key) {
		/* Before anything in the file is parsed: RAM (its checksum too), state, header. */
		crypto_generichash_state mac;
		uint8_t want[SNAP_MAC_BYTES], got_mac[SNAP_MAC_BYTES];
		uint64_t got;

		mac_begin(&mac, key);
		if (hash_ram_file(s->fd, h.ram_len, &got, &mac) < 0)
			return snapshot_discard(s), refuse(path, "cannot read its RAM image");
		crypto_generichash_update(&mac, s->meta, s->meta_len);
		crypto_generichash_update(&mac, hdr, sizeof(hdr));
		crypto_generichash_final(&mac, got_mac, sizeof(got_mac));
		if (pread(s->fd, want, sizeof(want), SNAP_MAC_OFFSET) != (ssize_t)sizeof(want) ||
		    sodium_memcmp(want, got_mac, sizeof(want)) != 0)
			return snapshot_discard(s),
			       refuse(path,
				      "MAC mismatch: changed since it was written, or not written with this "
				      "--snapshot-key");
		if (got != h.ram_hash)
			return snapshot_discard(s), refuse(path, "RAM checksum mismatch (corrupt)");
		verify_ram = false; /* done */
	}
	ser_reader_init(&r, s->meta, s->meta_len);
	while (r.off < r.len) {
		if (section_next(&r, &type, &sub) < 0)
			return snapshot_discard(s), refuse(path, "section checksum mismatch (corrupt)");
		if (type == SEC_CONFIG && !have_config) {
			if (snap_config_load(&s->config, &sub) < 0)
				return snapshot_discard(s), refuse(path, "malformed configuration");
			have_config = true;
		}
	}
	if (!have_config)
		return snapshot_discard(s), refuse(path, "no configuration section");
	if (s->config.cfg.memory != h.ram_len)
		return snapshot_discard(s), refuse(path, "RAM size does not match its configuration");
	if (verify_ram) {
		uint64_t got;

		if (hash_ram_file(s->fd, h.ram_len, &got, NULL) < 0)
			return snapshot_discard(s), refuse(path, "cannot read its RAM image");
		if (got != h.ram_hash)
			return snapshot_discard(s), refuse(path, "RAM checksum mismatch (corrupt)");
	}
	return 0;
}

void snapshot_close(struct snapshot *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->meta);
	s->fd = -1;
	s->meta = NULL;
}

/* A snapshot that failed to open: nothing of it is kept. */
static void snapshot_discard(struct snapshot *s)
{
	snapshot_close(s);
	snap_config_free(&s->config);
}
