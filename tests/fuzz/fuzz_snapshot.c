/* fuzz_snapshot - the snapshot loader (core/snapshot.c: snapshot_open, then vm_state_load into a
 * VM built as a restore builds it, on fake KVM: fake_vm.h). The harness recomputes every
 * checksum (header, state, each section, RAM) the way an attacker who writes the file can, so
 * the fuzzer gets past them to the parsers behind.
 *
 * Input: a flags byte, the header's first 88 bytes (magic, version, arch, RAM offset, length and
 * hash, state offset, length and hash, reserved), (flags >> 1 & 3) RAM pages as le16 page index
 * and a fill byte, then the state sections. Flags bit 0 keeps the input's state offset and length
 * instead of the ones that fit the file. The file the harness writes (a memfd, opened by its
 * /proc path): the header with its checksum, the RAM image (holes but the given pages), the state.
 *
 * With KVMBOX_FUZZ_SEED=PATH in the environment it writes a seed instead, the state of its own
 * VM (vm_state_save) in this format, and exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "arch/arch.h"
#include "core/ser.h"
#include "core/snapshot.h"
#include "core/util.h"
#include "fake_vm.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR_LEN   88 /* the input's part of the header; its checksum follows */
#define PAGE      4096u
#define RAM_OFF   4096u
#define RAM_LIMIT (256ULL << 20)

static void write_seed(const char *path)
{
	struct vm *vm = fake_vm_create();
	struct ser_writer w;
	uint8_t hdr[HDR_LEN] = { 0 };
	FILE *f;

	ser_writer_init(&w);
	if (vm_state_save(vm, &w) < 0)
		abort();
	memcpy(hdr, SNAP_MAGIC, 8);
	put_le32(hdr + 8, SNAP_VERSION);
	put_le32(hdr + 12, arch_this);
	put_le64(hdr + 16, RAM_OFF);
	put_le64(hdr + 24, FAKE_VM_MEMORY);
	f = fopen(path, "wb");
	/* flags: two RAM pages */
	if (!f || fputc(2 << 1, f) < 0 || fwrite(hdr, 1, sizeof(hdr), f) != sizeof(hdr) ||
	    fwrite("\x00\x00\x5a\x10\x00\xa5", 1, 6, f) != 6 || fwrite(w.buf, 1, w.len, f) != w.len ||
	    fclose(f))
		abort();
	ser_writer_free(&w);
	fake_vm_destroy(vm);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seed = getenv("KVMBOX_FUZZ_SEED");

	if (seed)
		write_seed(seed);
	return 0;
}

static void restore(const char *path)
{
	struct snapshot s;
	struct ser_reader r;
	struct vm *vm;

	if (snapshot_open(path, true, NULL, &s) < 0)
		return;
	vm = fake_vm_create();
	ser_reader_init(&r, s.meta, s.meta_len);
	vm_state_load(vm, &r);
	fake_vm_destroy(vm);
	snapshot_close(&s);
	snap_config_free(&s.config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[96] = { 0 }, flags, page[PAGE];
	struct fuzz_in in;
	uint64_t ram_len, meta_off, meta_len;
	XXH3_state_t st;
	struct {
		uint16_t idx;
		uint8_t fill;
	} pages[3];
	unsigned npages;
	const uint8_t *meta;
	uint8_t *m;
	char path[64];
	int fd;

	fuzz_in_init(&in, data, size);
	flags = fuzz_u8(&in);
	fuzz_bytes(&in, hdr, HDR_LEN);
	npages = (flags >> 1) & 3;
	for (unsigned i = 0; i < npages; i++) {
		pages[i].idx = fuzz_u16(&in);
		pages[i].fill = fuzz_u8(&in);
	}
	meta = fuzz_take(&in, fuzz_left(&in), &meta_len);
	m = malloc(meta_len + 1);
	memcpy(m, meta, meta_len);
	fuzz_fix_sections(m, meta_len);

	ram_len = get_le64(hdr + 24);
	if (!(flags & 1)) {
		put_le64(hdr + 40, RAM_OFF + ram_len);
		put_le64(hdr + 48, meta_len);
	}
	meta_off = get_le64(hdr + 40);
	/* The RAM hash: (page index, page) of each non-zero page, in order (later pages win). */
	XXH3_64bits_reset(&st);
	for (uint64_t idx = 0; idx < 0x10000 && idx * PAGE < ram_len && ram_len <= RAM_LIMIT; idx++) {
		int last = -1;

		for (unsigned i = 0; i < npages; i++)
			if (pages[i].idx == idx && pages[i].fill)
				last = (int)i;
		if (last < 0)
			continue;
		memset(page, pages[last].fill, PAGE);
		XXH3_64bits_update(&st, &idx, sizeof(idx));
		XXH3_64bits_update(&st, page, PAGE);
	}
	put_le64(hdr + 32, XXH3_64bits_digest(&st));
	put_le64(hdr + 56, XXH3_64bits(m, meta_len));
	put_le64(hdr + 88, XXH3_64bits(hdr, 88));

	fd = memfd_create("fuzz-snapshot", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(pwrite(fd, hdr, sizeof(hdr), 0) == sizeof(hdr));
	if (ram_len <= RAM_LIMIT && ram_len % PAGE == 0) {
		for (unsigned i = 0; i < npages; i++) {
			if ((uint64_t)pages[i].idx * PAGE >= ram_len || !pages[i].fill)
				continue;
			memset(page, pages[i].fill, PAGE);
			FUZZ_CHECK(pwrite(fd, page, PAGE, RAM_OFF + (off_t)pages[i].idx * PAGE) == PAGE);
		}
		if (meta_off <= RAM_OFF + RAM_LIMIT && meta_len)
			FUZZ_CHECK(pwrite(fd, m, meta_len, (off_t)meta_off) == (ssize_t)meta_len);
		if (meta_off <= RAM_OFF + RAM_LIMIT && meta_off + meta_len >= meta_off &&
		    meta_off + meta_len <= RAM_OFF + RAM_LIMIT + (64u << 20))
			FUZZ_CHECK(ftruncate(fd, (off_t)(meta_off + meta_len)) == 0);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	restore(path);
	close(fd);
	free(m);
	return 0;
}
