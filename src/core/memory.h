/* memory.h - guest physical memory and the one checked accessor.
 *
 * Guest RAM is a single host mapping split into regions (below and above
 * the 32-bit PCI hole). Nothing else turns a guest physical address into a
 * host pointer: every device goes through gpa_ptr(), which checks overflow
 * and bounds and never lets a range cross a region. */
#ifndef KVMBOX_MEMORY_H
#define KVMBOX_MEMORY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct mem_region {
	uint64_t gpa;  /* guest physical start */
	uint64_t size; /* bytes */
	uint8_t *host; /* host address of gpa */
};

struct guest_mem {
	struct mem_region regions[GUEST_MEM_MAX_REGIONS];
	int nr_regions;
	/* Pages written by devices (not seen by KVM's dirty log), one bit per
	 * 4 KiB page over all regions in order. Allocated at the first
	 * migration and kept until guest_mem_free, so a device thread that
	 * saw dirty_on never writes into freed memory. */
	unsigned long *dirty;
	_Atomic bool dirty_on;
	uint8_t *base;      /* start of the single host mapping */
	uint64_t total;     /* total RAM bytes (sum of regions) */
	uint64_t map_len;   /* bytes mapped at base when more than total (huge-page rounding) */
	uint64_t huge_page; /* huge page size when RAM is in huge pages, else 0 */
};

/* Host pointer for [gpa, gpa+len) if it lies wholly inside one RAM region,
 * else NULL. len 0 is treated as 1. Overflow-safe. */
void *gpa_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy to/from guest memory; return 0 or -1 when the range is not RAM. */
int gpa_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);
int gpa_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);

/* Map `total` bytes of anonymous memory (MAP_NORESERVE) and lay it out into
 * the regions given by `layout` (gpa/size filled, host ignored). Returns 0 or
 * -1 with an error printed. */
int guest_mem_alloc(struct guest_mem *m, const struct mem_region *layout, int nr);

/* What backs guest RAM (--hugepages, --prealloc; core/tuning.h). */
struct ram_backing {
	uint64_t huge_page;   /* 0: ordinary pages (transparent huge pages where the host has them);
			       * else huge pages of this size, reserved when mapped */
	const char *huge_dir; /* with huge_page: a hugetlbfs directory (an unlinked file there),
			       * NULL: anonymous MAP_HUGETLB */
	bool prealloc;        /* populate every page before returning */
};
/* guest_mem_alloc with a backing (NULL: the default). Not enough free huge pages is an
 * error (printed), never a fallback to ordinary pages. */
int guest_mem_alloc_backed(struct guest_mem *m, const struct mem_region *layout, int nr,
			   const struct ram_backing *b);
/* Guest RAM in huge pages: snapshots pause the guest while they write it (a fork could not
 * copy-on-write it without a spare huge page per page written meanwhile). */
bool guest_mem_huge(const struct guest_mem *m);
/* Like guest_mem_alloc, but the RAM's initial content comes from file fd
 * at offset off (page aligned; regions back to back): mapped MAP_PRIVATE
 * (copy-on-write, so the time does not grow with RAM size), or read into
 * anonymous memory when copy is true. 0 or -1 (printed). */
int guest_mem_alloc_file(struct guest_mem *m, const struct mem_region *layout, int nr, int fd, uint64_t off,
			 bool copy);
/* guest_mem_alloc_file with a backing (NULL: the default). Huge-page RAM is always read from
 * the file (a file mapping cannot be in huge pages). */
int guest_mem_alloc_file_backed(struct guest_mem *m, const struct mem_region *layout, int nr, int fd,
				uint64_t off, bool copy, const struct ram_backing *b);
/* Device-write tracking for live migration: start (all clear), mark the
 * pages of [gpa, gpa+len) (no-op when not tracking; any thread), take and
 * clear the bitmap into out (nr_pages bits), stop. */
int guest_mem_dirty_start(struct guest_mem *m);
void guest_mem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* The same for [p, p+len) given as a host address inside guest RAM (a buffer gpa_ptr gave a
 * device earlier); the part outside every region is ignored. */
void guest_mem_mark_dirty_host(const struct guest_mem *m, const void *p, uint64_t len);
void guest_mem_dirty_take(struct guest_mem *m, unsigned long *out);
void guest_mem_dirty_stop(struct guest_mem *m);
bool guest_mem_dirty_on(const struct guest_mem *m);
/* Host address of page idx (4 KiB pages over all regions in order), or NULL. */
uint8_t *guest_mem_page(const struct guest_mem *m, uint64_t idx);
/* True when the 4 KiB page at p is all zero bytes (p 8-byte aligned). */
bool page_is_zero(const uint8_t *p);
/* Page index (over all regions in order) of gpa, or -1. */
int64_t guest_mem_page_index(const struct guest_mem *m, uint64_t gpa);
/* Describe caller-owned memory (unit tests: a malloc'ed buffer). */
void guest_mem_init_static(struct guest_mem *m, uint8_t *base, const struct mem_region *layout, int nr);
void guest_mem_free(struct guest_mem *m);

#endif
