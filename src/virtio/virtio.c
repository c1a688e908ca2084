#include "virtio.h"

#include <stdio.h>
#include <string.h>

#include "../core/log.h"

int virtio_dev_init(struct virtio_dev *vd, const struct virtio_dev_ops *ops, const char *name,
		    const struct guest_mem *mem, unsigned num_queues, uint16_t queue_max)
{
	if (num_queues == 0 || num_queues > VIRTIO_MAX_QUEUES || queue_max == 0 ||
	    queue_max > VIRTQ_MAX_SIZE || (queue_max & (queue_max - 1))) {
		log_error("%s: internal error: bad queue layout", name);
		return -1;
	}
	vd->ops = ops;
	snprintf(vd->name, sizeof(vd->name), "%s", name);
	vd->mem = mem;
	vd->num_queues = num_queues;
	vd->queue_max = queue_max;
	for (unsigned i = 0; i < num_queues; i++) {
		memset(&vd->vqs[i], 0, sizeof(vd->vqs[i]));
		vd->vqs[i].size = queue_max;
	}
	pthread_mutex_init(&vd->lock, NULL);
	vd->loop = loop_create();
	if (!vd->loop) {
		pthread_mutex_destroy(&vd->lock);
		return -1;
	}
	return 0;
}

void virtio_dev_fini(struct virtio_dev *vd)
{
	if (!vd->loop)
		return; /* already done: safe to call twice */
	loop_destroy(vd->loop);
	vd->loop = NULL;
	pthread_mutex_destroy(&vd->lock);
}

void virtio_notify_used(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->num_queues || !vd->tops)
		return;
	if (virtq_should_notify(&vd->vqs[q]))
		vd->tops->notify_queue(vd, q);
}

void virtio_notify_queue_now(struct virtio_dev *vd, unsigned q)
{
	if (q < vd->num_queues && vd->tops)
		vd->tops->notify_queue(vd, q);
}

int virtio_queue_kick_fd(struct virtio_dev *vd, unsigned q, bool take)
{
	if (q >= vd->num_queues || !vd->tops || !vd->tops->queue_kick_fd)
		return -1;
	return vd->tops->queue_kick_fd(vd, q, take);
}

void virtio_notify_config(struct virtio_dev *vd)
{
	if (vd->tops)
		vd->tops->notify_config(vd);
}

void virtio_set_broken(struct virtio_dev *vd, const char *why)
{
	if (vd->broken)
		return;
	vd->broken = true;
	log_debug("%s: driver error: %s; device needs reset", vd->name, why);
	if (vd->tops)
		vd->tops->needs_reset(vd);
}

bool virtio_is_broken(const struct virtio_dev *vd)
{
	return vd->broken;
}
