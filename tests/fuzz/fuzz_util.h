/* fuzz_util.h - what the libFuzzer harnesses (tests/fuzz/fuzz_*.c) share: a reader that takes
 * little-endian values off the fuzzer's input (zeros once it is used up), and a check that
 * aborts, so the fuzzer records a crash, where the unit tests would fail an assertion. */
#ifndef KVMBOX_TESTS_FUZZ_UTIL_H
#define KVMBOX_TESTS_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fuzz_in {
	const uint8_t *p;
	size_t len, pos;
};

static inline void fuzz_in_init(struct fuzz_in *in, const uint8_t *p, size_t len)
{
	in->p = p;
	in->len = len;
	in->pos = 0;
}

static inline bool fuzz_done(const struct fuzz_in *in)
{
	return in->pos >= in->len;
}

static inline size_t fuzz_left(const struct fuzz_in *in)
{
	return in->len - in->pos;
}

uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
uint64_t fuzz_u64(struct fuzz_in *in);
/* Up to n bytes into buf (the rest zeroed); returns how many came from the input. */
size_t fuzz_bytes(struct fuzz_in *in, void *buf, size_t n);
/* Pointer to the next n bytes (fewer when the input ends: *got says how many). */
const uint8_t *fuzz_take(struct fuzz_in *in, size_t n, size_t *got);

/* Recompute the XXH3 of every state section in p[0, len) (snapshot.c's framing: le32 type, le32
 * 0, le64 length, le64 hash of the payload), as whoever writes a snapshot or a migration stream
 * can; stops at the first section whose length overruns. */
void fuzz_fix_sections(uint8_t *p, size_t len);

/* A 1 MiB scratch disk image at a fixed path, $TMPDIR/kvmbox-fuzz-disk.img (default /tmp),
 * created once, for the harnesses' virtio-blk devices: a saved virtio-blk names its disk, so a
 * seed must load in any process. Also sets KVMBOX_BLK_SYNC: every request completes inside the
 * kick, so an input replays the same way. */
const char *fuzz_disk_image(void);

/* Save dev's state and load it back into dev (when its type has both): the device's own state
 * must always load (FUZZ_CHECK). */
struct device;
void fuzz_save_load(struct device *dev);

/* Abort with a message when cond is false: an invariant the harness checks after the code ran. */
#define FUZZ_CHECK(cond)                                      \
	do {                                                  \
		if (!(cond))                                  \
			fuzz_fail(__FILE__, __LINE__, #cond); \
	} while (0)
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
