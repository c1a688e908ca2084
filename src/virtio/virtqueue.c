/* virtqueue.c - the split virtqueue (virtio 1.x section 2.7) for a hostile
 * driver.
 *
 * Ring layout in guest memory (all little endian):
 *   desc:  size * { le64 addr; le32 len; le16 flags; le16 next; }
 *   avail: le16 flags; le16 idx; le16 ring[size]; le16 used_event;
 *   used:  le16 flags; le16 idx; { le32 id; le32 len; } ring[size]; le16 avail_event;
 *
 * The driver may rewrite any of it at any moment, so every value that is
 * checked is first copied to a local and only the copy is used. */
#include "virtqueue.h"

#include <stdatomic.h>
#include <string.h>

#include "../core/util.h"

#define DESC_SIZE 16u

/* Offsets inside the rings. */
#define RING_FLAGS 0
#define RING_IDX   2
#define RING_ENTS  4
#define USED_ELEM  8u

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Ring index fields are 2-byte aligned (checked at enable), so they can be
 * accessed atomically; the atomics give the ordering the protocol needs. */
static inline uint16_t ring_load16(const void *ring, size_t off, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)((const uint8_t *)ring + off), order));
}

static inline void ring_store16(void *ring, size_t off, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)((uint8_t *)ring + off), htole16(v), order);
}

/*
 * Notification suppression is the store-buffering pattern: we store (used->idx,
 * or the re-enabled avail_event / used->flags), then load what the driver
 * stored (used_event / avail->flags, or avail->idx); the driver does the
 * mirror image with a full barrier between its store and its load. Unless our
 * store is visible before our load, each side can read the other's stale value
 * and both wait: a lost interrupt or a lost kick. So the store and the load
 * need a full (store-load) barrier between them.
 *
 * It is written as a seq_cst read-modify-write of the ring field followed by
 * seq_cst loads, rather than as atomic_thread_fence(seq_cst): a seq_cst RMW and
 * a later seq_cst load are ordered in the single total order, so the compiler
 * must emit a store-load barrier (x86: LOCK OR or XCHG, each a full barrier like
 * MFENCE; arm64: an acquire-release RMW, then LDAR). The same guarantee,
 * but on a real variable, which ThreadSanitizer models (GCC refuses stand-alone
 * fences under -fsanitize=thread). Only the device writes the fields we RMW
 * (a driver that writes them anyway only confuses itself).
 */
static inline void ring_store16_full(void *ring, size_t off, uint16_t v)
{
	(void)__atomic_exchange_n((uint16_t *)((uint8_t *)ring + off), htole16(v), __ATOMIC_SEQ_CST);
}

static inline void ring_barrier16(void *ring, size_t off)
{
	(void)__atomic_fetch_or((uint16_t *)((uint8_t *)ring + off), 0, __ATOMIC_SEQ_CST);
}

static inline size_t avail_event_off(const struct virtq *q)
{
	return RING_ENTS + (size_t)USED_ELEM * q->size;
}

static inline size_t used_event_off(const struct virtq *q)
{
	return RING_ENTS + (size_t)2 * q->size;
}

/* Copy one descriptor out of guest memory; after this the guest can change
 * the table without affecting what we validate and use. */
static void desc_fetch(const uint8_t *table, unsigned i, struct desc *d)
{
	uint8_t raw[DESC_SIZE];

	memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
	d->addr = get_le64(raw);
	d->len = get_le32(raw + 8);
	d->flags = get_le16(raw + 12);
	d->next = get_le16(raw + 14);
}

static void *ring_map(const struct guest_mem *mem, uint64_t gpa, uint64_t len, uint64_t align)
{
	if (gpa & (align - 1))
		return NULL;
	return gpa_ptr(mem, gpa, len);
}

/* Check size and ring placement and cache host pointers; indexes untouched. */
static int virtq_map(struct virtq *q, const struct guest_mem *mem)
{
	void *desc, *avail, *used;
	uint64_t n = q->size;

	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -1;
	desc = ring_map(mem, q->desc_gpa, DESC_SIZE * n, 16);
	avail = ring_map(mem, q->avail_gpa, 6 + 2 * n, 2);
	used = ring_map(mem, q->used_gpa, 6 + USED_ELEM * n, 4);
	if (!desc || !avail || !used)
		return -1;
	q->mem = mem;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	return 0;
}

static void virtq_clear_state(struct virtq *q)
{
	q->enabled = false;
	q->broken = false;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_used = 0;
	q->signalled_used_valid = false;
	q->desc = NULL;
	q->avail = NULL;
	q->used = NULL;
}

void virtq_reset(struct virtq *q)
{
	virtq_clear_state(q);
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem)
{
	virtq_clear_state(q);
	if (virtq_map(q, mem) < 0) {
		virtq_clear_state(q);
		return -1;
	}
	q->enabled = true;
	return 0;
}

/* Append one buffer descriptor to the chain. Zero-length buffers are legal
 * but carry nothing: they get no iovec (their address is never used). */
static int chain_add(const struct virtq *q, struct virtq_chain *c, const struct desc *d, bool *seen_write)
{
	bool w = d->flags & VIRTQ_DESC_F_WRITE;
	unsigned n = c->n_out + c->n_in;
	void *p;

	if (w)
		*seen_write = true;
	else if (*seen_write)
		return -1; /* readable after writable */
	if (d->len == 0)
		return 0;
	/* A chain is at most 4 GiB - 1 bytes, so its used length fits in le32. */
	if ((uint64_t)d->len > UINT32_MAX - c->out_len - c->in_len)
		return -1;
	p = gpa_ptr(q->mem, d->addr, d->len);
	if (!p || n >= VIRTQ_MAX_SEGS)
		return -1;
	c->iov[n].iov_base = p;
	c->iov[n].iov_len = d->len;
	if (w) {
		c->n_in++;
		c->in_len += d->len;
	} else {
		c->n_out++;
		c->out_len += d->len;
	}
	return 0;
}

/* Walk the chain starting at head. Termination: every step consumes one unit
 * of the current table's budget (queue size for the ring's table, entry count
 * for an indirect one), and there is at most one indirect table per chain. */
static int virtq_walk(const struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = q->desc;
	unsigned tsize = q->size;
	unsigned budget = q->size;
	unsigned bufs = 0; /* buffer descriptors, direct + indirect */
	bool in_indirect = false;
	bool seen_write = false;
	unsigned i = head;
	struct desc d;

	for (;;) {
		if (i >= tsize || budget == 0)
			return -1;
		budget--;
		desc_fetch(table, i, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* One table per chain, never chained onward (2.7.5.3.1). */
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return -1;
			if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQ_MAX_SEGS)
				return -1;
			table = gpa_ptr(q->mem, d.addr, d.len);
			if (!table)
				return -1;
			tsize = d.len / DESC_SIZE;
			budget = tsize;
			in_indirect = true;
			i = 0;
			continue;
		}
		if (++bufs > VIRTQ_MAX_SEGS)
			return -1;
		if (chain_add(q, c, &d, &seen_write) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

bool virtq_has_work(struct virtq *q)
{
	if (!q->enabled || q->broken)
		return false;
	return ring_load16(q->avail, RING_IDX, __ATOMIC_ACQUIRE) != q->last_avail;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t avail_idx, pending, head;

	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	if (!q->enabled)
		return VIRTQ_EMPTY;
	if (q->broken)
		return VIRTQ_ERR;
	/* Acquire: the ring entry and descriptors are read after the index. */
	avail_idx = ring_load16(q->avail, RING_IDX, __ATOMIC_ACQUIRE);
	pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return VIRTQ_EMPTY;
	if (pending > q->size)
		goto bad;
	/* Every chain in flight owns at least one descriptor until it is used,
	 * so more than `size` of them means the driver reused descriptors. */
	if ((uint16_t)(q->last_avail - q->used_idx) >= q->size)
		goto bad;
	head = ring_load16(q->avail, RING_ENTS + 2 * (size_t)(q->last_avail & (q->size - 1)),
			   __ATOMIC_RELAXED);
	if (head >= q->size)
		goto bad;
	c->head = head;
	if (virtq_walk(q, head, c) < 0)
		goto bad;
	q->last_avail++;
	return VIRTQ_OK;
bad:
	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	q->broken = true;
	return VIRTQ_ERR;
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint8_t *e;

	if (!q->enabled)
		return;
	/* A live migration is copying RAM: the used ring must be sent again (what the device wrote
	 * into the chain, its caller marked with virtq_mark_written). */
	guest_mem_mark_dirty(q->mem, q->used_gpa, RING_ENTS + (size_t)USED_ELEM * q->size + 2);
	e = (uint8_t *)q->used + RING_ENTS + (size_t)USED_ELEM * (q->used_idx & (q->size - 1));
	put_le32(e, head);
	put_le32(e + 4, len);
	q->used_idx++;
	/* Release: the element is visible before the index that publishes it. */
	ring_store16(q->used, RING_IDX, q->used_idx, __ATOMIC_RELEASE);
}

void virtq_mark_written(const struct virtq *q, const struct iovec *iov, unsigned n)
{
	if (!q->mem || !guest_mem_dirty_on(q->mem))
		return;
	for (unsigned i = 0; i < n; i++)
		guest_mem_mark_dirty_host(q->mem, iov[i].iov_base, iov[i].iov_len);
}

void virtq_chain_mark_written(const struct virtq *q, const struct virtq_chain *c)
{
	virtq_mark_written(q, c->iov + c->n_out, c->n_in);
}

/* virtio 1.x 2.7.10: interrupt when used_event lies in (old, new]. */
static inline bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t old, event;
	bool valid;

	if (!q->enabled)
		return false;
	/* Our used->idx store must be visible before we read the driver's
	 * suppression state, or we and the driver can both decide to wait
	 * (see ring_store16_full). */
	ring_barrier16(q->used, RING_IDX);
	if (!q->event_idx)
		return !(ring_load16(q->avail, RING_FLAGS, __ATOMIC_SEQ_CST) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	old = q->signalled_used;
	valid = q->signalled_used_valid;
	q->signalled_used = q->used_idx;
	q->signalled_used_valid = true;
	if (!valid)
		return true;
	event = ring_load16(q->avail, used_event_off(q), __ATOMIC_SEQ_CST);
	return need_event(event, q->used_idx, old);
}

bool virtq_set_notification(struct virtq *q, bool enable)
{
	uint16_t flags;

	if (!q->enabled)
		return false;
	/* A re-enable is published with a full barrier before avail->idx is
	 * read again: a kick the driver skipped while notifications were off
	 * is caught here instead (see ring_store16_full). */
	if (q->event_idx) {
		/* With EVENT_IDX the driver ignores used->flags; when disabling we
		 * simply stop moving avail_event forward. */
		if (!enable)
			return false;
		ring_store16_full(q->used, avail_event_off(q), q->last_avail);
	} else {
		flags = ring_load16(q->used, RING_FLAGS, __ATOMIC_RELAXED);
		if (!enable) {
			ring_store16(q->used, RING_FLAGS, flags | VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
			return false;
		}
		ring_store16_full(q->used, RING_FLAGS, flags & (uint16_t)~VIRTQ_USED_F_NO_NOTIFY);
	}
	return !q->broken && ring_load16(q->avail, RING_IDX, __ATOMIC_SEQ_CST) != q->last_avail;
}

size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len)
{
	uint8_t *out = dst;
	size_t done = 0;

	for (unsigned i = 0; i < c->n_out && done < len; i++) {
		size_t seg = c->iov[i].iov_len;
		size_t n;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		n = seg - off;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, (const uint8_t *)c->iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, size_t len)
{
	const uint8_t *in = src;
	size_t done = 0;

	for (unsigned i = c->n_out; i < c->n_out + c->n_in && done < len; i++) {
		size_t seg = c->iov[i].iov_len;
		size_t n;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		n = seg - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)c->iov[i].iov_base + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}

#define VIRTQ_SAVE_VERSION 1

enum {
	SAVE_EVENT_IDX = 1,
	SAVE_INDIRECT = 2,
	SAVE_ENABLED = 4,
	SAVE_BROKEN = 8,
	SAVE_SIGNALLED_VALID = 16,
	SAVE_ALL = 31,
};

void virtq_save(const struct virtq *q, struct ser_writer *w)
{
	uint8_t flags = 0;

	flags |= q->event_idx ? SAVE_EVENT_IDX : 0;
	flags |= q->indirect ? SAVE_INDIRECT : 0;
	flags |= q->enabled ? SAVE_ENABLED : 0;
	flags |= q->broken ? SAVE_BROKEN : 0;
	flags |= q->signalled_used_valid ? SAVE_SIGNALLED_VALID : 0;
	ser_put_u8(w, VIRTQ_SAVE_VERSION);
	ser_put_u8(w, flags);
	ser_put_u16(w, q->size);
	ser_put_u64(w, q->desc_gpa);
	ser_put_u64(w, q->avail_gpa);
	ser_put_u64(w, q->used_gpa);
	ser_put_u16(w, q->last_avail);
	ser_put_u16(w, q->used_idx);
	ser_put_u16(w, q->signalled_used);
}

int virtq_load(struct virtq *q, const struct guest_mem *mem, struct ser_reader *r)
{
	struct virtq t;
	uint8_t version, flags;

	memset(&t, 0, sizeof(t));
	version = ser_get_u8(r);
	flags = ser_get_u8(r);
	t.size = ser_get_u16(r);
	t.desc_gpa = ser_get_u64(r);
	t.avail_gpa = ser_get_u64(r);
	t.used_gpa = ser_get_u64(r);
	t.last_avail = ser_get_u16(r);
	t.used_idx = ser_get_u16(r);
	t.signalled_used = ser_get_u16(r);
	if (r->err || version != VIRTQ_SAVE_VERSION || (flags & ~SAVE_ALL) || t.size > VIRTQ_MAX_SIZE)
		return -1;
	t.event_idx = flags & SAVE_EVENT_IDX;
	t.indirect = flags & SAVE_INDIRECT;
	t.enabled = flags & SAVE_ENABLED;
	t.broken = flags & SAVE_BROKEN;
	t.signalled_used_valid = flags & SAVE_SIGNALLED_VALID;
	t.mem = mem;
	if (t.enabled) {
		if (virtq_map(&t, mem) < 0)
			return -1;
		/* Same invariant virtq_pop() keeps: at most `size` chains in flight. */
		if ((uint16_t)(t.last_avail - t.used_idx) > t.size)
			return -1;
	}
	*q = t;
	return 0;
}
