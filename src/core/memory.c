#include "memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
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
	uint64_t total = 0;
	void *p;

	if (nr < 1 || nr > GUEST_MEM_MAX_REGIONS)
		return -1;
	for (int i = 0; i < nr; i++)
		total += layout[i].size;
	p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		log_error("guest memory: cannot map %llu MiB: %s; give a smaller --memory",
			  (unsigned long long)(total >> 20), strerror(errno));
		return -1;
	}
	/* Guest RAM is not worth dumping with a kvmbox crash; THP helps the EPT/NPT. */
	madvise(p, total, MADV_DONTDUMP);
	madvise(p, total, MADV_HUGEPAGE);
	guest_mem_init_static(m, p, layout, nr);
	return 0;
}

void guest_mem_free(struct guest_mem *m)
{
	free(m->dirty);
	if (m->base && m->total)
		munmap(m->base, m->total);
	memset(m, 0, sizeof(*m));
}

int guest_mem_alloc_file(struct guest_mem *m, const struct mem_region *layout, int nr, int fd, uint64_t off,
			 bool copy)
{
	uint64_t done = 0;

	if (guest_mem_alloc(m, layout, nr) < 0)
		return -1;
	if (copy) {
		/* Read only the data extents: holes are zero already. */
		while (done < m->total) {
			ssize_t n = pread(fd, m->base + done, m->total - done > (1u << 30) ? (1u << 30) : m->total - done,
					  (off_t)(off + done));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				log_error("snapshot: cannot read guest RAM: %s; the file is truncated or unreadable",
					  n < 0 ? strerror(errno) : "end of file");
				guest_mem_free(m);
				return -1;
			}
			done += (uint64_t)n;
		}
		return 0;
	}
	/* Map the file over the anonymous reservation, copy-on-write. */
	if (mmap(m->base, m->total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		 (off_t)off) == MAP_FAILED) {
		log_error("snapshot: cannot map guest RAM from the file: %s; try --copy", strerror(errno));
		guest_mem_free(m);
		return -1;
	}
	madvise(m->base, m->total, MADV_DONTDUMP);
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
