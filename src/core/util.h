/* util.h - the small helpers every layer uses, defined once.
 *
 * Little-endian loads and stores (guest memory, virtio structures, register accesses, file
 * formats and streams are all little endian whatever the host is), the page size of kvmbox's
 * memory layout, ARRAY_SIZE and container_of, a monotonic clock, and whole-buffer I/O that
 * survives EINTR and short transfers. Header-only. */
#ifndef KVMBOX_UTIL_H
#define KVMBOX_UTIL_H

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifndef container_of
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#endif

/* The page of guest RAM as kvmbox lays it out, tracks it (dirty bitmaps) and stores it
 * (snapshots, migration streams): 4 KiB on every architecture. */
#include <limits.h> /* first: musl's defines the host's PAGE_SIZE, which ours replaces */
#undef PAGE_SIZE
#define PAGE_SIZE 4096ULL

/* ---- little endian ------------------------------------------------------------------------ */

/* Unaligned-safe: guest structures (indirect descriptor tables, say) may sit at any address,
 * so these never dereference a cast; the compiler makes each one load or store. */
static inline uint16_t get_le16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t get_le32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get_le64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void put_le16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

/* Value of an n-byte little-endian buffer (n <= 8), and the store of v's low n bytes: for
 * accesses whose width the guest chooses. */
static inline uint64_t get_le(const void *p, uint32_t n)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (uint32_t i = 0; i < n && i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline void put_le(void *p, uint32_t n, uint64_t v)
{
	uint8_t *b = p;

	for (uint32_t i = 0; i < n && i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* ---- time ------------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds and in (fractional) milliseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline double now_ms(void)
{
	return (double)now_ns() / 1e6;
}

/* ---- whole-buffer I/O --------------------------------------------------------------------- */

/* Write or read all n bytes, retrying on EINTR and short transfers. 0, or -1 with errno set
 * (ECONNRESET when read_all meets end of file first). */
static inline int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static inline int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = read(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* pread all n bytes at off. 0 or -1 (errno; EIO when the file ends first). */
static inline int pread_all(int fd, void *p, size_t n, uint64_t off)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = pread(fd, b, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		b += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* pwrite all n bytes at off. 0 or -1 (errno). */
static inline int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = pwrite(fd, b, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

#endif
