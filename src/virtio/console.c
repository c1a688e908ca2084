#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"

#define CONSOLE_QUEUE_SIZE   64
#define CONSOLE_SAVE_VERSION 1

struct virtio_console {
	struct virtio_dev vd; /* first: container of the ops' argument */
	struct char_port port;
	bool rx_refused;          /* input was refused: call port.rx_space on the next rx kick */
	struct virtq_chain chain; /* scratch; users hold vd->lock */
};

static struct virtio_console *to_console(struct virtio_dev *vd)
{
	return (struct virtio_console *)vd;
}

static void console_fill_config(struct virtio_dev *vd)
{
	/* cols, rows (no F_SIZE), max_nr_ports (no MULTIPORT), emerg_wr (no
	 * EMERG_WRITE): all zero and read-only. */
	memset(vd->config, 0, sizeof(vd->config));
	vd->config_size = 12;
}

size_t virtio_console_receive(struct virtio_dev *vd, const uint8_t *buf, size_t n)
{
	struct virtio_console *c = to_console(vd);
	struct virtq *q = &vd->vqs[VIRTIO_CONSOLE_RXQ];
	size_t took = 0;
	unsigned pushed = 0;

	pthread_mutex_lock(&vd->lock);
	while (took < n && vd->activated && !vd->broken && q->enabled) {
		int r = virtq_pop(q, &c->chain);
		size_t w;

		if (r == VIRTQ_EMPTY)
			break;
		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, "malformed receive chain");
			break;
		}
		if (!c->chain.in_len) {
			virtio_set_broken(vd, "receive buffer with no writable bytes");
			break;
		}
		w = virtq_chain_write(&c->chain, 0, buf + took, n - took);
		virtq_chain_mark_written(q, &c->chain);
		virtq_push(q, c->chain.head, (uint32_t)w);
		pushed++;
		took += w;
	}
	if (pushed)
		virtio_notify_used(vd, VIRTIO_CONSOLE_RXQ);
	if (took < n)
		c->rx_refused = true;
	pthread_mutex_unlock(&vd->lock);
	return took;
}

static void console_tx(struct virtio_console *c)
{
	struct virtio_dev *vd = &c->vd;
	struct virtq *q = &vd->vqs[VIRTIO_CONSOLE_TXQ];
	unsigned pushed = 0;
	int r;

	for (;;) {
		virtq_set_notification(q, false);
		while ((r = virtq_pop(q, &c->chain)) == VIRTQ_OK) {
			/* Writable segments in an output chain are ignored. */
			for (unsigned i = 0; i < c->chain.n_out; i++) {
				const struct iovec *v = &c->chain.iov[i];

				if (c->port.write && v->iov_len)
					c->port.write(c->port.ctx, v->iov_base, v->iov_len);
			}
			virtq_push(q, c->chain.head, 0);
			pushed++;
		}
		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, "malformed transmit chain");
			break;
		}
		if (!virtq_set_notification(q, true))
			break;
	}
	if (pushed)
		virtio_notify_used(vd, VIRTIO_CONSOLE_TXQ);
}

static int console_activate(struct virtio_dev *vd)
{
	/* The transport kicks every queue after activation: a refused backend
	 * hears about rx space from that first receiveq kick. */
	return 0;
}

static void console_reset(struct virtio_dev *vd)
{
	/* Nothing in flight outside vd->lock. rx_refused stays: the driver's
	 * first buffers after re-initialisation wake the backend. */
	console_fill_config(vd);
}

static void console_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_console *c = to_console(vd);

	if (q == VIRTIO_CONSOLE_RXQ) {
		if (c->rx_refused) {
			c->rx_refused = false;
			if (c->port.rx_space)
				c->port.rx_space(c->port.ctx);
		}
	} else if (q == VIRTIO_CONSOLE_TXQ) {
		console_tx(c);
	}
}

static void console_config_write(struct virtio_dev *vd, uint32_t off, uint32_t len)
{
	console_fill_config(vd); /* nothing writable without EMERG_WRITE */
}

static void console_save(struct virtio_dev *vd, struct ser_writer *w)
{
	ser_put_u8(w, CONSOLE_SAVE_VERSION);
	ser_put_u8(w, to_console(vd)->rx_refused);
}

static int console_load(struct virtio_dev *vd, struct ser_reader *r)
{
	if (ser_get_u8(r) != CONSOLE_SAVE_VERSION)
		return -1;
	/* Whatever was saved, the new backend may be waiting for room. */
	(void)ser_get_u8(r);
	to_console(vd)->rx_refused = true;
	console_fill_config(vd);
	return r->err ? -1 : 0;
}

static void console_destroy(struct virtio_dev *vd)
{
	virtio_dev_fini(vd);
	free(to_console(vd));
}

static const struct virtio_dev_ops console_ops = {
	.type = "virtio-console",
	.sandbox = SB_CONSOLE,
	.device_id = VIRTIO_ID_CONSOLE,
	.activate = console_activate,
	.reset = console_reset,
	.queue_notify = console_queue_notify,
	.config_write = console_config_write,
	.save = console_save,
	.load = console_load,
	.destroy = console_destroy,
};

struct virtio_dev *virtio_console_create(const struct guest_mem *mem, struct char_port port, unsigned index)
{
	struct virtio_console *c = calloc(1, sizeof(*c));
	char name[32];

	snprintf(name, sizeof(name), "virtio-console%u", index);
	if (!c) {
		log_error("%s: out of memory", name);
		return NULL;
	}
	if (virtio_dev_init(&c->vd, &console_ops, name, mem, 2, CONSOLE_QUEUE_SIZE) < 0) {
		free(c);
		return NULL;
	}
	c->port = port;
	c->vd.host_features = 0;
	console_fill_config(&c->vd);
	return &c->vd;
}
