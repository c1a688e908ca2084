#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/mman.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

void *gpa_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (int i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];

		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off >= r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int gpa_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gpa_ptr(m, gpa, len);

	if (!p)
		return -1;
	if (len)
		memcpy(p, src, len);
	return 0;
}

int gpa_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gpa_ptr(m, gpa, len);

	if (!p)
		return -1;
	if (len)
		memcpy(dst, p, len);
	return 0;
}

void guest_mem_init_static(struct guest_mem *m, uint8_t *base, const struct mem_region *layout, int nr)
{
	uint64_t off = 0;

	memset(m, 0, sizeof(*m));
	m->base = base;
	for (int i = 0; i < nr && i < GUEST_MEM_MAX_REGIONS; i++) {
		m->regions[i].gpa = layout[i].gpa;
		m->regions[i].size = layout[i].size;
		m->regions[i].host = base + off;
		off += layout[i].size;
		m->nr_regions++;
	}
	m->total = off;
}

int guest_mem_alloc(struct guest_mem *m, const struct mem_region *layout, int nr)
{
	return guest_mem_alloc_backed(m, layout, nr, NULL);
}

/* Huge pages: anonymous MAP_HUGETLB, or a shared mapping of an unlinked file in a hugetlbfs
 * directory. Both reserve every huge page when mapped, so a short host fails here. */
static void *map_huge(uint64_t len, const struct ram_backing *b)
{
	void *p;
	int fd, e;

	if (!b->huge_dir) {
		int log2 = __builtin_ctzll(b->huge_page);

		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (log2 << MAP_HUGE_SHIFT), -1, 0);
		if (p == MAP_FAILED)
			log_error(
				"--hugepages: cannot map %llu MiB of %llu KiB huge pages: %s; reserve more (/sys/kernel/"
				"mm/hugepages/hugepages-%llukB/nr_hugepages) or give less --memory",
				(unsigned long long)(len >> 20), (unsigned long long)(b->huge_page >> 10),
				strerror(errno), (unsigned long long)(b->huge_page >> 10));
		return p;
	}
	fd = open(b->huge_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* A hugetlbfs without O_TMPFILE: a named file, unlinked at once. */
		char path[4096];

		snprintf(path, sizeof(path), "%s/kvmbox-ram-XXXXXX", b->huge_dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0) {
		log_error(
			"--hugepages=%s: cannot create guest RAM there: %s; give a writable hugetlbfs directory",
			b->huge_dir, strerror(errno));
		return MAP_FAILED;
	}
	p = ftruncate(fd, (off_t)len) < 0 ? MAP_FAILED
					  : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	e = errno;
	close(fd); /* the mapping keeps the unlinked file */
	if (p == MAP_FAILED)
		log_error(
			"--hugepages=%s: cannot map %llu MiB of huge pages there: %s; reserve more huge pages or "
			"raise the mount's size= limit",
			b->huge_dir, (unsigned long long)(len >> 20), strerror(e));
	return p;
}

/* Fault in every page of [p, p+len) for writing, keeping what is there. */
static int populate(uint8_t *p, uint64_t len, uint64_t step)
{
#ifdef MADV_POPULATE_WRITE
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL) {
		log_error("--prealloc: cannot populate guest RAM: %s; free host memory or give less --memory",
			  strerror(errno));
		return -1;
	}
#endif
	/* A kernel before 5.14: touch each page (the guest does not run yet). */
	for (uint64_t off = 0; off < len; off += step)
		((volatile uint8_t *)p)[off] = ((volatile uint8_t *)p)[off];
	return 0;
}

int guest_mem_alloc_backed(struct guest_mem *m, const struct mem_region *layout, int nr,
			   const struct ram_backing *b)
{
	uint64_t total = 0, len;
	void *p;

	if (nr < 1 || nr > GUEST_MEM_MAX_REGIONS)
		return -1;
	for (int i = 0; i < nr; i++)
		total += layout[i].size;
	len = total;
	if (b && b->huge_page) {
		len = (total + b->huge_page - 1) & ~(b->huge_page - 1);
		p = map_huge(len, b);
		if (p == MAP_FAILED)
			return -1;
	} else {
		p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			 0);
		if (p == MAP_FAILED) {
			log_error("guest memory: cannot map %llu MiB: %s; give a smaller --memory",
				  (unsigned long long)(total >> 20), strerror(errno));
			return -1;
		}
		/* THP helps the EPT/NPT. */
		madvise(p, total, MADV_HUGEPAGE);
	}
	/* Guest RAM is not worth dumping with a kvmbox crash. */
	madvise(p, len, MADV_DONTDUMP);
	if (b && b->prealloc && populate(p, len, b->huge_page ? b->huge_page : 4096) < 0) {
		munmap(p, len);
		return -1;
	}
	guest_mem_init_static(m, p, layout, nr);
	m->map_len = len;
	m->huge_page = b ? b->huge_page : 0;
	return 0;
}

bool guest_mem_huge(const struct guest_mem *m)
{
	return m->huge_page != 0;
}

void guest_mem_free(struct guest_mem *m)
{
	free(m->dirty);
	if (m->base && m->total)
		munmap(m->base, m->map_len > m->total ? m->map_len : m->total);
	memset(m, 0, sizeof(*m));
}

int guest_mem_alloc_file(struct guest_mem *m, const struct mem_region *layout, int nr, int fd, uint64_t off,
			 bool copy)
{
	return guest_mem_alloc_file_backed(m, layout, nr, fd, off, copy, NULL);
}

int guest_mem_alloc_file_backed(struct guest_mem *m, const struct mem_region *layout, int nr, int fd,
				uint64_t off, bool copy, const struct ram_backing *b)
{
	struct ram_backing first = b ? *b : (struct ram_backing){ 0 };
	uint64_t done = 0;

	copy = copy || first.huge_page;
	/* The anonymous reservation a file mapping replaces needs no populating. */
	if (!copy)
		first.prealloc = false;
	if (guest_mem_alloc_backed(m, layout, nr, &first) < 0)
		return -1;
	if (copy) {
		/* Read only the data extents: holes are zero already. */
		while (done < m->total) {
			ssize_t n = pread(fd, m->base + done,
					  m->total - done > (1u << 30) ? (1u << 30) : m->total - done,
					  (off_t)(off + done));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				log_error(
					"snapshot: cannot read guest RAM: %s; the file is truncated or unreadable",
					n < 0 ? strerror(errno) : "end of file");
				guest_mem_free(m);
				return -1;
			}
			done += (uint64_t)n;
		}
		return 0;
	}
	/* Pre-allocation populated the anonymous reservation the file now replaces: populate the
	 * file mapping instead (a private copy of every page). */
	/* Map the file over the anonymous reservation, copy-on-write. */
	if (mmap(m->base, m->total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		 (off_t)off) == MAP_FAILED) {
		log_error("snapshot: cannot map guest RAM from the file: %s; try --copy", strerror(errno));
		guest_mem_free(m);
		return -1;
	}
	madvise(m->base, m->total, MADV_DONTDUMP);
	if (b && b->prealloc && populate(m->base, m->total, 4096) < 0) {
		guest_mem_free(m);
		return -1;
	}
	return 0;
}

#define BITS_PER_WORD (8 * sizeof(unsigned long))

static size_t dirty_words(const struct guest_mem *m)
{
	return (size_t)((m->total / 4096 + BITS_PER_WORD - 1) / BITS_PER_WORD);
}

int guest_mem_dirty_start(struct guest_mem *m)
{
	if (!m->dirty) {
		m->dirty = calloc(dirty_words(m), sizeof(unsigned long));
		if (!m->dirty)
			return -1;
	}
	for (size_t i = 0; i < dirty_words(m); i++)
		__atomic_store_n(&m->dirty[i], 0UL, __ATOMIC_RELAXED);
	atomic_store(&m->dirty_on, true);
	return 0;
}

int64_t guest_mem_page_index(const struct guest_mem *m, uint64_t gpa)
{
	uint64_t base = 0;

	for (int i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (int64_t)((base + gpa - r->gpa) / 4096);
		base += r->size;
	}
	return -1;
}

void guest_mem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (!atomic_load(&((struct guest_mem *)m)->dirty_on) || !len)
		return;
	for (uint64_t p = gpa & ~4095ULL; p < gpa + len && p >= (gpa & ~4095ULL); p += 4096) {
		int64_t idx = guest_mem_page_index(m, p);

		if (idx >= 0)
			__atomic_fetch_or(&m->dirty[(uint64_t)idx / BITS_PER_WORD],
					  1UL << ((uint64_t)idx % BITS_PER_WORD), __ATOMIC_RELAXED);
	}
}

void guest_mem_mark_dirty_host(const struct guest_mem *m, const void *p, uint64_t len)
{
	uintptr_t a = (uintptr_t)p;

	if (!atomic_load(&((struct guest_mem *)m)->dirty_on) || !len)
		return;
	for (int i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];
		uintptr_t h = (uintptr_t)r->host;

		if (a >= h && a - h < r->size) {
			uint64_t off = a - h;

			guest_mem_mark_dirty(m, r->gpa + off, len < r->size - off ? len : r->size - off);
			return;
		}
	}
}

void guest_mem_dirty_take(struct guest_mem *m, unsigned long *out)
{
	size_t n = dirty_words(m);

	for (size_t i = 0; i < n; i++)
		out[i] = m->dirty ? __atomic_exchange_n(&m->dirty[i], 0UL, __ATOMIC_ACQ_REL) : 0;
}

void guest_mem_dirty_stop(struct guest_mem *m)
{
	atomic_store(&m->dirty_on, false);
}

bool guest_mem_dirty_on(const struct guest_mem *m)
{
	return atomic_load(&((struct guest_mem *)m)->dirty_on);
}

uint8_t *guest_mem_page(const struct guest_mem *m, uint64_t idx)
{
	uint64_t base = 0;

	for (int k = 0; k < m->nr_regions; k++) {
		uint64_t n = m->regions[k].size / 4096;

		if (idx < base + n)
			return m->regions[k].host + (idx - base) * 4096;
		base += n;
	}
	return NULL;
}

bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;

	for (size_t i = 0; i < 4096 / 8; i += 4)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3])
			return false;
	return true;
}
