/* vq_driver.c - fake virtio driver and transport for unit tests; see vq_driver.h. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vq_driver.h"

void vqd_init(struct vq_driver *d, struct guest_mem *mem, uint64_t buf_gpa, uint64_t buf_end)
{
	memset(d, 0, sizeof(*d));
	d->mem = mem;
	d->next_buf = buf_gpa;
	d->buf_end = buf_end;
}

void vqd_queue_at(struct vq_driver *d, unsigned q, uint16_t size, uint64_t desc, uint64_t avail,
		  uint64_t used)
{
	assert_true(q < VQD_MAX_QUEUES);
	d->q[q] = (struct vqd_queue){ .size = size, .desc_gpa = desc, .avail_gpa = avail, .used_gpa = used };
}

void vqd_layout(struct vq_driver *d, unsigned nq, uint16_t size)
{
	for (unsigned q = 0; q < nq; q++)
		vqd_queue_at(d, q, size, VQD_RING_GPA(q), VQD_RING_GPA(q) + VQD_AVAIL_OFF,
			     VQD_RING_GPA(q) + VQD_USED_OFF);
}

void vqd_forget(struct vq_driver *d)
{
	for (unsigned q = 0; q < VQD_MAX_QUEUES; q++)
		d->q[q].next_desc = d->q[q].avail_idx = d->q[q].used_seen = 0;
}

void vqd_clear_rings(struct vq_driver *d)
{
	for (unsigned q = 0; q < VQD_MAX_QUEUES; q++) {
		const struct vqd_queue *v = &d->q[q];

		if (!v->size)
			continue;
		/* Sizes per the split ring layout, event words included. */
		memset(vqd_host(d, v->desc_gpa, 16ULL * v->size), 0, 16ULL * v->size);
		memset(vqd_host(d, v->avail_gpa, 6 + 2ULL * v->size), 0, 6 + 2ULL * v->size);
		memset(vqd_host(d, v->used_gpa, 6 + 8ULL * v->size), 0, 6 + 8ULL * v->size);
	}
}

/* ---- guest memory ---- */

uint8_t *vqd_host(const struct vq_driver *d, uint64_t gpa, uint64_t len)
{
	return fake_host(d->mem, gpa, len);
}

void vqd_put16(const struct vq_driver *d, uint64_t gpa, uint16_t v)
{
	put_le16(vqd_host(d, gpa, 2), v);
}

void vqd_put32(const struct vq_driver *d, uint64_t gpa, uint32_t v)
{
	put_le32(vqd_host(d, gpa, 4), v);
}

void vqd_put64(const struct vq_driver *d, uint64_t gpa, uint64_t v)
{
	put_le64(vqd_host(d, gpa, 8), v);
}

uint16_t vqd_get16(const struct vq_driver *d, uint64_t gpa)
{
	return get_le16(vqd_host(d, gpa, 2));
}

uint32_t vqd_get32(const struct vq_driver *d, uint64_t gpa)
{
	return get_le32(vqd_host(d, gpa, 4));
}

uint64_t vqd_get64(const struct vq_driver *d, uint64_t gpa)
{
	return get_le64(vqd_host(d, gpa, 8));
}

uint64_t vqd_alloc(struct vq_driver *d, uint32_t len)
{
	uint64_t g = d->next_buf;

	d->next_buf += (len + 15) & ~15u;
	assert_true(d->next_buf <= d->buf_end);
	return g;
}

/* ---- descriptors and the avail ring ---- */

void vqd_set_desc_at(const struct vq_driver *d, uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint64_t e = table_gpa + 16ULL * i;

	vqd_put64(d, e, addr);
	vqd_put32(d, e + 8, len);
	vqd_put16(d, e + 12, flags);
	vqd_put16(d, e + 14, next);
}

void vqd_set_desc(const struct vq_driver *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next)
{
	vqd_set_desc_at(d, d->q[q].desc_gpa, i, addr, len, flags, next);
}

void vqd_avail_add(struct vq_driver *d, unsigned q, uint16_t head)
{
	struct vqd_queue *v = &d->q[q];

	uint16_t *idx = (uint16_t *)vqd_host(d, v->avail_gpa + 2, 2);

	vqd_put16(d, v->avail_gpa + 4 + 2ULL * (v->avail_idx % v->size), head);
	v->avail_idx++;
	/* Release: the entry is visible before the index, also to device
	 * threads (the device's acquire load of avail->idx pairs with it). This
	 * driver kicks unconditionally, so it needs no store-load barrier. */
	__atomic_store_n(idx, htole16(v->avail_idx), __ATOMIC_RELEASE);
}

uint16_t vqd_add_chain(struct vq_driver *d, unsigned q, const struct vq_seg *s, unsigned n)
{
	struct vqd_queue *v = &d->q[q];
	uint16_t head = v->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % v->size);
		uint16_t flags = (uint16_t)((s[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));

		vqd_set_desc(d, q, idx, s[i].gpa, s[i].len, flags, (uint16_t)((idx + 1) % v->size));
	}
	v->next_desc = (uint16_t)((head + n) % v->size);
	vqd_avail_add(d, q, head);
	return head;
}

uint64_t vqd_add_buf(struct vq_driver *d, unsigned q, uint32_t len, bool write)
{
	struct vq_seg s = { vqd_alloc(d, len), len, write };

	vqd_add_chain(d, q, &s, 1);
	return s.gpa;
}

uint64_t vqd_desc_addr(const struct vq_driver *d, unsigned q, uint32_t id)
{
	return vqd_get64(d, d->q[q].desc_gpa + 16ULL * id);
}

void vqd_set_avail_flags(const struct vq_driver *d, unsigned q, uint16_t flags)
{
	vqd_put16(d, d->q[q].avail_gpa, flags);
}

void vqd_set_used_event(const struct vq_driver *d, unsigned q, uint16_t v)
{
	vqd_put16(d, d->q[q].avail_gpa + 4 + 2ULL * d->q[q].size, v);
}

/* ---- the used ring ---- */

uint16_t vqd_used_idx(const struct vq_driver *d, unsigned q)
{
	const uint16_t *p = (const uint16_t *)vqd_host(d, d->q[q].used_gpa + 2, 2);

	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

uint16_t vqd_used_flags(const struct vq_driver *d, unsigned q)
{
	return vqd_get16(d, d->q[q].used_gpa);
}

uint16_t vqd_avail_event(const struct vq_driver *d, unsigned q)
{
	return vqd_get16(d, d->q[q].used_gpa + 4 + 8ULL * d->q[q].size);
}

void vqd_used_elem(const struct vq_driver *d, unsigned q, uint16_t slot, uint32_t *id, uint32_t *len)
{
	uint64_t e = d->q[q].used_gpa + 4 + 8ULL * (slot % d->q[q].size);

	*id = vqd_get32(d, e);
	*len = vqd_get32(d, e + 4);
}

bool vqd_next_used(struct vq_driver *d, unsigned q, uint32_t *id, uint32_t *len)
{
	struct vqd_queue *v = &d->q[q];

	if (vqd_used_idx(d, q) == v->used_seen)
		return false;
	vqd_used_elem(d, q, v->used_seen, id, len);
	v->used_seen++;
	return true;
}

/* ---- fake transport ---- */

static void t_notify_queue(struct virtio_dev *vd, unsigned q)
{
	struct vq_transport *t = vd->transport;

	if (q < VQD_MAX_QUEUES)
		t->notified[q]++;
}

static void t_notify_config(struct virtio_dev *vd)
{
	((struct vq_transport *)vd->transport)->config_changes++;
}

static void t_needs_reset(struct virtio_dev *vd)
{
	((struct vq_transport *)vd->transport)->needs_reset++;
}

static const struct virtio_transport_ops t_ops = {
	.notify_queue = t_notify_queue,
	.notify_config = t_notify_config,
	.needs_reset = t_needs_reset,
};

void vq_transport_attach(struct vq_transport *t, struct virtio_dev *vd)
{
	vd->tops = &t_ops;
	vd->transport = t;
}

void vqd_kick(struct virtio_dev *vd, unsigned q)
{
	pthread_mutex_lock(&vd->lock);
	if (vd->activated && !vd->broken && vd->vqs[q].enabled)
		vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

void vqd_activate(const struct vq_driver *d, struct virtio_dev *vd, uint64_t features)
{
	pthread_mutex_lock(&vd->lock);
	vd->features = features | 1ULL << VIRTIO_F_VERSION_1;
	for (unsigned q = 0; q < vd->num_queues; q++) {
		struct virtq *vq = &vd->vqs[q];

		vq->size = d->q[q].size;
		vq->desc_gpa = d->q[q].desc_gpa;
		vq->avail_gpa = d->q[q].avail_gpa;
		vq->used_gpa = d->q[q].used_gpa;
		assert_int_equal(virtq_enable(vq, d->mem), 0);
	}
	vd->activated = true;
	assert_int_equal(vd->ops->activate(vd), 0);
	pthread_mutex_unlock(&vd->lock);
}

static int call_locked(struct virtio_dev *vd, int (*op)(struct virtio_dev *vd))
{
	int ret;

	pthread_mutex_lock(&vd->lock);
	ret = op(vd);
	pthread_mutex_unlock(&vd->lock);
	return ret;
}

int vqd_release(struct virtio_dev *vd)
{
	return call_locked(vd, vd->ops->release);
}

int vqd_reacquire(struct virtio_dev *vd)
{
	return call_locked(vd, vd->ops->reacquire);
}

void *vq_fixture_new(void **state, size_t size, uint64_t ram_size, bool mapped, uint64_t buf_gpa,
		     uint64_t buf_end)
{
	const struct mem_region layout = { .gpa = 0, .size = ram_size };
	struct vq_fixture *x;

	assert_true(size >= sizeof(*x));
	x = calloc(1, size);
	assert_non_null(x);
	if (mapped)
		fake_ram_map(&x->ram, &layout, 1);
	else
		fake_ram_init_flat(&x->ram, ram_size);
	vqd_init(&x->d, &x->ram.mem, buf_gpa, buf_end);
	*state = x;
	return x;
}

void vq_fixture_attach(struct vq_fixture *x, struct virtio_dev *vd, uint16_t qsize)
{
	assert_non_null(vd);
	x->vd = vd;
	vqd_layout(&x->d, vd->num_queues, qsize);
	vq_transport_attach(&x->f, vd);
}

int vq_fixture_free(void **state)
{
	struct vq_fixture *x = *state;

	x->vd->ops->destroy(x->vd);
	fake_ram_free(&x->ram);
	free(x);
	return 0;
}
