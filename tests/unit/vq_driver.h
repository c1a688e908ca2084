/* vq_driver.h - the guest side of virtio for device unit tests.
 *
 * A fake driver lays out split virtqueues in fake guest RAM (see fakes.h),
 * writes descriptor chains and the avail ring, and reads the used ring back,
 * the way a guest driver would. A fake transport records the interrupts and
 * NEEDS_RESET requests a device raises, and the two helpers at the end do
 * what the transport does on a queue notify and on DRIVER_OK.
 *
 * Typical use:
 *	fake_ram_init_flat(&x->ram, RAM_SIZE);
 *	vqd_init(&x->d, &x->ram.mem, BUF_GPA, RAM_SIZE);
 *	vqd_layout(&x->d, nq, QSZ);
 *	x->vd = virtio_foo_create(&x->ram.mem, 0);
 *	vq_transport_attach(&x->f, x->vd);
 *	vqd_activate(&x->d, x->vd, features);
 *	gpa = vqd_add_buf(&x->d, q, 64, true);
 *	vqd_kick(x->vd, q);
 *	while (vqd_next_used(&x->d, q, &id, &len)) ...
 *
 * The first five lines are a cmocka setup's; vq_fixture_new and
 * vq_fixture_attach at the end do them, and vq_fixture_free is the teardown.
 *
 * Failures (a gpa outside RAM, the buffer area exhausted, an activation the
 * device refuses) fail the test through cmocka assertions. */
#ifndef KVMBOX_TESTS_VQ_DRIVER_H
#define KVMBOX_TESTS_VQ_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"
#include "fakes.h"
#include "virtio/virtio.h"

#define VQD_MAX_QUEUES VIRTIO_MAX_QUEUES

/* vqd_layout() puts queue q's rings at VQD_RING_GPA(q): the descriptor table
 * there, the avail ring 4 KiB and the used ring 8 KiB above it (room for
 * queues of up to 256 entries). Keep test buffers clear of [64 KiB, 64 KiB *
 * (nq + 1)). */
#define VQD_RING_GPA(q) (0x10000ULL + 0x10000ULL * (q))
#define VQD_AVAIL_OFF   0x1000ULL
#define VQD_USED_OFF    0x2000ULL

/* One buffer of a chain; write means device-writable. */
struct vq_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* The driver's view of one queue. */
struct vqd_queue {
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t next_desc; /* where the next chain starts (chains are consecutive, wrapping) */
	uint16_t avail_idx; /* the driver's shadow of avail->idx */
	uint16_t used_seen; /* used entries consumed by vqd_next_used */
};

struct vq_driver {
	struct guest_mem *mem; /* not owned; may be re-laid-out under the driver */
	struct vqd_queue q[VQD_MAX_QUEUES];
	uint64_t next_buf, buf_end; /* bump allocator for vqd_alloc */
};

/* A driver on mem with no queues set up; buffers are handed out from [buf_gpa, buf_end). */
void vqd_init(struct vq_driver *d, struct guest_mem *mem, uint64_t buf_gpa, uint64_t buf_end);
/* Queues 0..nq-1 of `size` entries at VQD_RING_GPA(q), driver indexes zeroed. */
void vqd_layout(struct vq_driver *d, unsigned nq, uint16_t size);
/* Queue q of `size` entries at the given ring addresses, driver indexes zeroed. */
void vqd_queue_at(struct vq_driver *d, unsigned q, uint16_t size, uint64_t desc, uint64_t avail,
		  uint64_t used);
/* Forget the driver's indexes on every queue (a new driver after a reset);
 * ring memory and the buffer allocator are left alone. */
void vqd_forget(struct vq_driver *d);
/* Zero the descriptor table and both rings of every queue that has a size. */
void vqd_clear_rings(struct vq_driver *d);

/* ---- guest memory ---- */

/* Host pointer for [gpa, gpa+len); fails the test if that is not RAM. */
uint8_t *vqd_host(const struct vq_driver *d, uint64_t gpa, uint64_t len);
/* Little-endian loads and stores at a gpa. */
void vqd_put16(const struct vq_driver *d, uint64_t gpa, uint16_t v);
void vqd_put32(const struct vq_driver *d, uint64_t gpa, uint32_t v);
void vqd_put64(const struct vq_driver *d, uint64_t gpa, uint64_t v);
uint16_t vqd_get16(const struct vq_driver *d, uint64_t gpa);
uint32_t vqd_get32(const struct vq_driver *d, uint64_t gpa);
uint64_t vqd_get64(const struct vq_driver *d, uint64_t gpa);
/* len bytes (rounded up to 16) from the buffer area; fails the test when it runs out. */
uint64_t vqd_alloc(struct vq_driver *d, uint32_t len);

/* ---- descriptors and the avail ring ---- */

/* Write descriptor i of the table at table_gpa (a queue's or an indirect one). */
void vqd_set_desc_at(const struct vq_driver *d, uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next);
/* Write descriptor i of queue q's table. */
void vqd_set_desc(const struct vq_driver *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next);
/* Make chain `head` available on q: ring entry, a full fence, then avail->idx. */
void vqd_avail_add(struct vq_driver *d, unsigned q, uint16_t head);
/* Lay n segments out as one chain from q's next free descriptor and make it
 * available; returns the head. */
uint16_t vqd_add_chain(struct vq_driver *d, unsigned q, const struct vq_seg *s, unsigned n);
/* A one-buffer chain of len fresh bytes on q; returns the buffer's gpa. */
uint64_t vqd_add_buf(struct vq_driver *d, unsigned q, uint32_t len, bool write);
/* Address of descriptor id of q's table (what a one-descriptor chain points at). */
uint64_t vqd_desc_addr(const struct vq_driver *d, unsigned q, uint32_t id);
/* avail->flags, and used_event (the word after the avail ring; EVENT_IDX). */
void vqd_set_avail_flags(const struct vq_driver *d, unsigned q, uint16_t flags);
void vqd_set_used_event(const struct vq_driver *d, unsigned q, uint16_t v);

/* ---- the used ring ---- */

/* used->idx (an acquire load: devices may complete from another thread). */
uint16_t vqd_used_idx(const struct vq_driver *d, unsigned q);
/* used->flags, and avail_event (the word after the used ring; EVENT_IDX). */
uint16_t vqd_used_flags(const struct vq_driver *d, unsigned q);
uint16_t vqd_avail_event(const struct vq_driver *d, unsigned q);
/* Used element `slot` (taken modulo the queue size): chain head and length. */
void vqd_used_elem(const struct vq_driver *d, unsigned q, uint16_t slot, uint32_t *id, uint32_t *len);
/* The next used element of q not yet consumed, if any. */
bool vqd_next_used(struct vq_driver *d, unsigned q, uint32_t *id, uint32_t *len);

/* ---- fake transport ---- */

/* Counts what a device asks of its transport. */
struct vq_transport {
	unsigned notified[VQD_MAX_QUEUES]; /* used-buffer interrupts per queue */
	unsigned config_changes;           /* configuration-change interrupts */
	unsigned needs_reset;              /* DEVICE_NEEDS_RESET requests */
};

/* Make t (not cleared) vd's transport. */
void vq_transport_attach(struct vq_transport *t, struct virtio_dev *vd);
/* A queue notify as the transport delivers it: only to an activated, unbroken
 * device, and only for an enabled queue. */
void vqd_kick(struct virtio_dev *vd, unsigned q);
/* DRIVER_OK: negotiate features | VERSION_1, enable each of vd's queues with
 * d's layout, and activate the device; fails the test if any step fails. */
void vqd_activate(const struct vq_driver *d, struct virtio_dev *vd, uint64_t features);
/* The device's release/reacquire (live-migration hand-over of its backend)
 * under the device lock, as the transport calls them; returns the op's result. */
int vqd_release(struct virtio_dev *vd);
int vqd_reacquire(struct virtio_dev *vd);

/* ---- a device under test ---- */

/* What a device test drives: the RAM, the driver on it, the transport and the
 * device. A test's state is one, or a struct that starts with one. */
struct vq_fixture {
	struct fake_ram ram;
	struct vq_driver d;
	struct vq_transport f;
	struct virtio_dev *vd;
};

/* A cmocka setup's first half: `size` zeroed bytes (a struct that starts with
 * a struct vq_fixture) into *state, with zeroed RAM of ram_size bytes at gpa 0
 * (a real anonymous mapping when mapped, as fake_ram_map) and a driver on it
 * that hands out buffers from [buf_gpa, buf_end). Returns *state. */
void *vq_fixture_new(void **state, size_t size, uint64_t ram_size, bool mapped, uint64_t buf_gpa,
		     uint64_t buf_end);
/* The second half: vd, created on x->ram.mem, becomes the device (fails the
 * test if it is NULL): its queues laid out with qsize entries (vqd_layout),
 * the fake transport attached. */
void vq_fixture_attach(struct vq_fixture *x, struct virtio_dev *vd, uint16_t qsize);
/* The cmocka teardown of that state: destroy the device, free the RAM and the state. */
int vq_fixture_free(void **state);

#endif
