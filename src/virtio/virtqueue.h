/* virtqueue.h - the split virtqueue (virtio 1.x, section 2.7), shared by every
 * virtio device.
 *
 * The guest is hostile: ring addresses are checked when the queue is enabled,
 * every descriptor is copied out of guest memory once and then validated
 * (address and length through gpa_ptr, chain length capped at the queue size,
 * loops detected, indirect tables checked, readable-before-writable order),
 * and a malformed chain makes virtq_pop() return VIRTQ_ERR: the device then
 * marks itself NEEDS_RESET. Nothing here can crash or hang on guest data.
 *
 * A virtq is driven by one thread at a time (the device's worker); it has no
 * lock of its own. */
#ifndef KVMBOX_VIRTQUEUE_H
#define KVMBOX_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../core/memory.h"
#include "../core/ser.h"

#define VIRTQ_MAX_SIZE 1024 /* largest queue size we offer */
#define VIRTQ_MAX_SEGS 1024 /* segments in one chain (incl. indirect) */

/* Descriptor flags and ring flags (virtio 1.x). */
#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

/* Feature bits the queue implementation understands. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* One request: a descriptor chain as host iovecs. iov[0..n_out) are
 * device-readable (driver -> device), iov[n_out..n_out+n_in) device-writable. */
struct virtq_chain {
	uint16_t head; /* id to give back to virtq_push() */
	unsigned n_out;
	unsigned n_in;
	uint64_t out_len; /* bytes in readable segments */
	uint64_t in_len;  /* bytes in writable segments */
	struct iovec iov[VIRTQ_MAX_SEGS];
};

struct virtq {
	const struct guest_mem *mem;
	/* Set by the transport from the driver's writes. */
	uint16_t size; /* entries; 0 < size <= VIRTQ_MAX_SIZE, power of 2 */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;  /* VIRTIO_F_INDIRECT_DESC negotiated */
	/* Device-side state. */
	bool enabled;
	uint16_t last_avail; /* next avail ring entry to take */
	uint16_t used_idx;   /* our copy of used->idx */
	uint16_t signalled_used;
	bool signalled_used_valid;
	bool broken; /* virtq_pop() failed: VIRTQ_ERR until reset/enable */
	/* Host pointers, valid while enabled. */
	void *desc;
	void *avail;
	void *used;
};

enum { VIRTQ_ERR = -1, VIRTQ_EMPTY = 0, VIRTQ_OK = 1 };

/* Reset to the disabled state (size/addresses kept for the transport). */
void virtq_reset(struct virtq *q);
/* Validate size and ring addresses (alignment, wholly in RAM) and start the
 * queue at index 0. 0, or -1 when the driver gave bad values. */
int virtq_enable(struct virtq *q, const struct guest_mem *mem);
/* Take the next available chain. VIRTQ_OK with *c filled, VIRTQ_EMPTY, or
 * VIRTQ_ERR for a malformed chain or ring (the queue stays unusable). */
int virtq_pop(struct virtq *q, struct virtq_chain *c);
/* Put back a chain popped but not processed (e.g. no rx buffer space). */
void virtq_unpop(struct virtq *q);
/* Return a completed chain with `len` bytes written by the device. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* During a live migration, mark guest RAM the device has written dirty: host buffers of a
 * popped chain (iov), or all of a chain's writable segments. Called after the writes, before
 * the push; the buffers are those validated when the chain was popped, never the descriptors
 * read again (the driver may have rewritten them). No-op when not migrating. */
void virtq_mark_written(const struct virtq *q, const struct iovec *iov, unsigned n);
void virtq_chain_mark_written(const struct virtq *q, const struct virtq_chain *c);
/* After pushes: should the driver be interrupted (EVENT_IDX / NO_INTERRUPT)? */
bool virtq_should_notify(struct virtq *q);
/* Tell the driver whether we want kicks (used->flags or avail_event).
 * With enable=true returns whether more work arrived meanwhile (re-check). */
bool virtq_set_notification(struct virtq *q, bool enable);
/* Are there available chains not yet popped? */
bool virtq_has_work(struct virtq *q);
/* Copy helpers over a chain's readable / writable segments, starting at
 * byte `off`; return bytes copied (short at the end of the segments). */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len);
size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, size_t len);
/* State for snapshots: sizes, addresses, indexes. load re-enables an enabled
 * queue against mem (-1 if the restored addresses are bad). */
void virtq_save(const struct virtq *q, struct ser_writer *w);
int virtq_load(struct virtq *q, const struct guest_mem *mem, struct ser_reader *r);

#endif
