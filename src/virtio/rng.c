#include "rng.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "setup.h"

#define RNG_QUEUE_SIZE 64

struct virtio_rng {
	struct virtio_dev vd; /* first: container of the ops' argument */
	struct virtq_chain chain;
};

/* Fill up to `max` bytes of the chain's writable segments; bytes written. */
static size_t rng_fill(struct virtio_dev *vd, const struct virtq_chain *c, size_t max)
{
	size_t done = 0;

	for (unsigned i = c->n_out; i < c->n_out + c->n_in && done < max; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t want = c->iov[i].iov_len, got = 0;

		if (want > max - done)
			want = max - done;
		while (got < want) {
			ssize_t r = getrandom(p + got, want - got, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				log_debug("%s: getrandom: %s", vd->name,
					  r < 0 ? strerror(errno) : "no bytes");
				return done + got;
			}
			got += (size_t)r;
		}
		done += got;
	}
	return done;
}

static void rng_queue_notify(struct virtio_dev *vd, unsigned qi)
{
	struct virtio_rng *rng = (struct virtio_rng *)vd;
	struct virtq *q = &vd->vqs[0];
	unsigned pushed = 0;
	int r;

	if (qi != 0)
		return;
	for (;;) {
		virtq_set_notification(q, false);
		while ((r = virtq_pop(q, &rng->chain)) == VIRTQ_OK) {
			/* Readable segments carry nothing for us: ignored. */
			size_t n = rng_fill(vd, &rng->chain, VIRTIO_RNG_MAX_REQUEST);

			virtq_chain_mark_written(q, &rng->chain);
			virtq_push(q, rng->chain.head, (uint32_t)n);
			pushed++;
		}
		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, "malformed request chain");
			break;
		}
		if (!virtq_set_notification(q, true))
			break;
	}
	if (pushed)
		virtio_notify_used(vd, 0);
}

static int rng_activate(struct virtio_dev *vd)
{
	return 0;
}

static void rng_reset(struct virtio_dev *vd)
{
	/* Requests complete inside queue_notify: nothing to cancel. */
}

static void rng_destroy(struct virtio_dev *vd)
{
	virtio_dev_fini(vd);
	free(vd);
}

static const struct virtio_dev_ops rng_ops = {
	.type = "virtio-rng",
	.sandbox = SB_RNG,
	.device_id = VIRTIO_ID_RNG,
	.activate = rng_activate,
	.reset = rng_reset,
	.queue_notify = rng_queue_notify,
	.destroy = rng_destroy,
};

struct virtio_dev *virtio_rng_create(const struct guest_mem *mem, unsigned index)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	char name[32];

	snprintf(name, sizeof(name), "virtio-rng%u", index);
	if (!rng) {
		log_error("%s: out of memory", name);
		return NULL;
	}
	if (virtio_dev_init(&rng->vd, &rng_ops, name, mem, 1, RNG_QUEUE_SIZE) < 0) {
		free(rng);
		return NULL;
	}
	rng->vd.config_size = 0;
	return &rng->vd;
}

static void *type_create(struct vm *vm, const void *cfg, unsigned index)
{
	return virtio_plug(vm, virtio_rng_create(&vm->mem, index));
}

const struct device_type virtio_rng_type = {
	.name = "virtio-rng",
	.option = "rng",
	.help = "virtio-rng fed from the host's getrandom() (/dev/hwrng in the guest)",
	.max = 1,
	.create = type_create,
};
