#include "vsock.h"

#include <errno.h>
#include <linux/vhost.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"
#include "../core/vm.h"
#include "setup.h"
#include "vhost.h"
#include "vsock_uds.h"

#define VSOCK_QUEUE_SIZE   128
#define VSOCK_SAVE_VERSION 1
#define VSOCK_DEV          "/dev/vhost-vsock"
#define VSOCK_FIX          "see README \"vsock\""

/* What vhost-vsock must know of the negotiated features: the ring layout. */
#define VH_RING_FEATURES \
	(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC)

struct virtio_vsock {
	struct virtio_dev vd; /* first: container of the ops' argument */
	uint32_t cid;
	bool no_backend;      /* unit tests: no /dev/vhost-vsock at all */
	bool released;        /* vh_fd closed for the migration's destination */
	bool reset_pending;   /* a TRANSPORT_RESET event waits for an event buffer */
	int vh_fd;            /* /dev/vhost-vsock, -1 when released or without a backend */
	bool vh_running;      /* the rx and tx rings are the kernel's */
	uint64_t vh_features; /* what vhost-vsock offers */
	int vh_call[2];       /* eventfds vhost signals, per queue */
	int vh_kick[2];       /* the transport's kick eventfds while vhost has them */
	uint8_t *vh_log;      /* vhost's dirty log */
	size_t vh_log_len;
	struct vsock_uds *uds; /* --vsock uds=: the user-space data path (vsock_uds.c) instead */
	struct virtq_chain chain;
};

static struct virtio_vsock *to_vsock(struct virtio_dev *vd)
{
	return (struct virtio_vsock *)vd;
}

static struct vhost_io vs_io(struct virtio_vsock *v)
{
	return (struct vhost_io){ v->vh_fd, v->vd.name, "vhost-vsock", VSOCK_FIX };
}

static void vs_fill_config(struct virtio_vsock *v)
{
	memset(v->vd.config, 0, sizeof(v->vd.config));
	put_le64(v->vd.config, v->cid);
	v->vd.config_size = 8;
}

/* ---- the event queue ------------------------------------------------------------------------ */

/* Put the pending event in the driver's next event buffer; it stays pending without one. */
static void vs_deliver_event(struct virtio_vsock *v)
{
	struct virtio_dev *vd = &v->vd;
	struct virtq *q = &vd->vqs[VIRTIO_VSOCK_EVTQ];
	uint8_t ev[4];
	int r;

	if (!v->reset_pending || !vd->activated || vd->broken || !q->enabled)
		return;
	r = virtq_pop(q, &v->chain);
	if (r == VIRTQ_ERR) {
		virtio_set_broken(vd, "malformed event chain");
		return;
	}
	if (r == VIRTQ_EMPTY) {
		virtq_set_notification(q, true); /* the driver's next buffer kicks us */
		return;
	}
	if (v->chain.in_len < sizeof(ev)) {
		virtio_set_broken(vd, "event buffer smaller than an event");
		return;
	}
	put_le32(ev, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	virtq_chain_write(&v->chain, 0, ev, sizeof(ev));
	virtq_chain_mark_written(q, &v->chain);
	virtq_push(q, v->chain.head, sizeof(ev));
	v->reset_pending = false;
	virtio_notify_used(vd, VIRTIO_VSOCK_EVTQ);
}

void virtio_vsock_transport_reset(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);

	v->reset_pending = true;
	vs_deliver_event(v);
}

/* ---- vhost-vsock ---------------------------------------------------------------------------- */

static void vh_stop(struct virtio_vsock *v)
{
	struct virtio_dev *vd = &v->vd;
	struct vhost_io io = vs_io(v);
	int off = 0;

	if (!v->vh_running)
		return;
	vhost_ioctl(&io, VHOST_VSOCK_SET_RUNNING, &off, "VHOST_VSOCK_SET_RUNNING 0");
	for (unsigned q = 0; q < 2; q++) {
		vhost_vring_stop(&io, q, &vd->vqs[q]);
		if (v->vh_kick[q] >= 0) {
			virtio_queue_kick_fd(vd, q, false);
			v->vh_kick[q] = -1;
		}
	}
	v->vh_running = false;
	vhost_log_collect(vd->mem, v->vh_log, v->vh_log_len);
}

/* Hand the rx and tx rings to the kernel and start it. */
static int vh_start(struct virtio_vsock *v)
{
	struct virtio_dev *vd = &v->vd;
	struct vhost_io io = vs_io(v);
	uint64_t features = vd->features & VH_RING_FEATURES & v->vh_features;
	bool log = v->vh_features & (1ULL << VHOST_F_LOG_ALL);
	int on = 1;

	if (log)
		features |= 1ULL << VHOST_F_LOG_ALL;
	if (vhost_ioctl(&io, VHOST_SET_FEATURES, &features, "VHOST_SET_FEATURES") < 0 ||
	    vhost_set_mem(&io, vd->mem, log ? &v->vh_log : NULL, &v->vh_log_len) < 0)
		return -1;
	for (unsigned q = 0; q < 2; q++) {
		struct virtq *vq = &vd->vqs[q];
		struct vhost_vring_file kick = { .index = q };

		if (!vq->enabled) {
			log_error("%s: the driver did not enable queue %u; vhost-vsock needs rx and tx",
				  vd->name, q);
			goto fail;
		}
		if (vhost_vring_setup(&io, q, vq, v->vh_call[q], log) < 0)
			goto fail;
		kick.fd = virtio_queue_kick_fd(vd, q, true);
		if (kick.fd < 0) {
			log_error("%s: the transport has no kick eventfd for vhost-vsock", vd->name);
			goto fail;
		}
		v->vh_kick[q] = kick.fd;
		v->vh_running = true; /* from here on, vh_stop undoes it */
		if (vhost_ioctl(&io, VHOST_SET_VRING_KICK, &kick, "VHOST_SET_VRING_KICK") < 0)
			goto fail;
	}
	if (vhost_ioctl(&io, VHOST_VSOCK_SET_RUNNING, &on, "VHOST_VSOCK_SET_RUNNING") < 0)
		goto fail;
	return 0;
fail:
	vh_stop(v);
	return -1;
}

/* vhost signalled used buffers on rx or tx: interrupt the driver (vhost applied the driver's
 * suppression already). */
static void vh_on_call(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_vsock *v = opaque;
	uint64_t val;

	if (read(fd, &val, sizeof(val)) < 0)
		return;
	pthread_mutex_lock(&v->vd.lock);
	if (v->vh_running)
		virtio_notify_queue_now(&v->vd, fd == v->vh_call[0] ? 0 : 1);
	pthread_mutex_unlock(&v->vd.lock);
}

/* Open /dev/vhost-vsock and claim the CID. The fd, or -1 after printing what to do. */
static int vh_open_cid(const char *name, uint32_t cid, uint64_t *features)
{
	const char *what;
	uint64_t c = cid;
	int fd = vhost_open(VSOCK_DEV, features, &what), e;

	if (fd < 0) {
		e = errno;
		if (!strcmp(what, "open") && (e == ENOENT || e == ENODEV || e == ENXIO))
			log_error(
				"%s: no %s on this host; load the vhost_vsock module (modprobe vhost_vsock)",
				name, VSOCK_DEV);
		else if (!strcmp(what, "open") && (e == EACCES || e == EPERM))
			log_error("%s: %s: %s; give kvmbox read-write access to it (or run it as root)", name,
				  VSOCK_DEV, strerror(e));
		else
			log_error("%s: %s: %s failed: %s; load vhost_vsock (modprobe vhost_vsock)", name,
				  VSOCK_DEV, what, strerror(e));
		return -1;
	}
	if (ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &c) < 0) {
		e = errno;
		if (e == EADDRINUSE)
			log_error("%s: vsock CID %u is in use by another VM on this host; pick another cid=",
				  name, cid);
		else
			log_error("%s: %s: VHOST_VSOCK_SET_GUEST_CID %u: %s; pick another cid= (3 to %u)",
				  name, VSOCK_DEV, cid, strerror(e), VSOCK_CID_MAX);
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- ops -------------------------------------------------------------------------------- */

static bool vs_running(const struct virtio_vsock *v)
{
	return v->vd.activated && !v->vd.broken && !v->released;
}

static int vs_activate(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);

	if (!virtio_has_feature(vd, VIRTIO_F_VERSION_1)) {
		log_error("%s: driver did not accept VIRTIO_F_VERSION_1; use a virtio 1.0 driver", vd->name);
		return -1;
	}
	if (v->vh_fd >= 0 && !v->released && vh_start(v) < 0)
		return -1;
	vs_deliver_event(v);
	if (v->uds)
		vsock_uds_wake(v->uds); /* on a vCPU thread: the worker does the work */
	return 0;
}

static void vs_reset(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);

	vh_stop(v);
	if (v->uds)
		vsock_uds_drop_all(v->uds);
	v->reset_pending = false; /* a new driver starts without connections anyway */
	vs_fill_config(v);
}

static void vs_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_vsock *v = to_vsock(vd);

	/* With vhost, rx and tx kicks are the kernel's while it runs; only the event queue is ours. */
	if (q == VIRTIO_VSOCK_EVTQ)
		vs_deliver_event(v);
	else if (v->uds)
		vsock_uds_kick(v->uds);
}

static void vs_config_write(struct virtio_dev *vd, uint32_t off, uint32_t len)
{
	vs_fill_config(to_vsock(vd)); /* guest_cid is read-only */
}

/* A pause: the kernel gives the rings back, so nothing touches guest memory and the saved
 * queue state is where vhost got to. */
static int vs_quiesce(struct virtio_dev *vd)
{
	vh_stop(to_vsock(vd));
	return 0;
}

static void vs_resume(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);

	if (!vs_running(v))
		return;
	if (v->vh_fd >= 0 && !v->vh_running && vh_start(v) < 0) {
		virtio_set_broken(vd, "vhost-vsock could not take the rings back");
		return;
	}
	vs_deliver_event(v);
	if (v->uds)
		vsock_uds_kick(v->uds);
}

static void vs_save(struct virtio_dev *vd, struct ser_writer *w)
{
	ser_put_u8(w, VSOCK_SAVE_VERSION);
	ser_put_u8(w, to_vsock(vd)->reset_pending);
}

static int vs_load(struct virtio_dev *vd, struct ser_reader *r)
{
	struct virtio_vsock *v = to_vsock(vd);
	uint8_t pending;

	if (ser_get_u8(r) != VSOCK_SAVE_VERSION)
		return -1;
	pending = ser_get_u8(r);
	if (r->err || pending > 1)
		return -1;
	/* The guest learns this VM's CID again with the reset event. */
	vs_fill_config(v);
	v->reset_pending = vd->activated && !vd->broken;
	if (v->uds)
		vsock_uds_drop_all(v->uds); /* a restore in place: the connections end with the reset */
	if (!vs_running(v))
		return 0;
	return v->vh_fd >= 0 ? vh_start(v) : 0;
}

/* The transport is whole again (MSI-X): the connections the guest had are gone, say so. */
static void vs_loaded(struct virtio_dev *vd)
{
	vs_deliver_event(to_vsock(vd));
}

/* Live migration: let go of the CID so the destination, on this host too, can claim it. The
 * kernel resets the host side of every connection. */
static int vs_release(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);

	if (v->released || v->no_backend)
		return 0;
	if (v->uds) {
		/* The destination listens at the same path: the socket file goes. */
		vsock_uds_release(v->uds);
		v->released = true;
		return 0;
	}
	vh_stop(v);
	close(v->vh_fd);
	v->vh_fd = -1;
	v->released = true;
	return 0;
}

/* The migration failed: claim the CID again (fails while the destination still holds it);
 * the resume restarts the rings and tells the driver its connections were reset. */
static int vs_reacquire(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);
	int fd;

	if (!v->released)
		return 0;
	if (v->uds) {
		if (vsock_uds_reacquire(v->uds) < 0)
			return -1;
		v->released = false;
		v->reset_pending = vd->activated && !vd->broken;
		return 0;
	}
	fd = vh_open_cid(vd->name, v->cid, &v->vh_features);
	if (fd < 0)
		return -1;
	v->vh_fd = fd;
	v->released = false;
	v->reset_pending = vd->activated && !vd->broken;
	return 0;
}

static void vs_destroy(struct virtio_dev *vd)
{
	struct virtio_vsock *v = to_vsock(vd);

	vh_stop(v);
	vsock_uds_destroy(v->uds);
	for (unsigned q = 0; q < 2; q++)
		if (v->vh_call[q] >= 0) {
			loop_del(vd->loop, v->vh_call[q]);
			close(v->vh_call[q]);
		}
	if (v->vh_fd >= 0)
		close(v->vh_fd);
	free(v->vh_log);
	virtio_dev_fini(vd);
	free(v);
}

static const struct virtio_dev_ops vsock_ops = {
	.type = "virtio-vsock",
	.sandbox = SB_VSOCK,
	.device_id = VIRTIO_ID_VSOCK,
	.activate = vs_activate,
	.reset = vs_reset,
	.queue_notify = vs_queue_notify,
	.config_write = vs_config_write,
	.quiesce = vs_quiesce,
	.resume = vs_resume,
	.save = vs_save,
	.load = vs_load,
	.loaded = vs_loaded,
	.release = vs_release,
	.reacquire = vs_reacquire,
	.destroy = vs_destroy,
};

static struct virtio_dev *vs_create(const struct guest_mem *mem, uint32_t cid, unsigned index, bool backend,
				    const char *uds)
{
	struct virtio_vsock *v = calloc(1, sizeof(*v));
	char name[32];

	snprintf(name, sizeof(name), "virtio-vsock%u", index);
	if (!v) {
		log_error("%s: out of memory", name);
		return NULL;
	}
	v->vh_fd = v->vh_call[0] = v->vh_call[1] = v->vh_kick[0] = v->vh_kick[1] = -1;
	v->cid = cid;
	v->no_backend = !backend && !uds;
	if (uds)
		backend = false; /* no vhost-vsock: the rings are served here */
	if (backend && (v->vh_fd = vh_open_cid(name, cid, &v->vh_features)) < 0) {
		free(v);
		return NULL;
	}
	if (virtio_dev_init(&v->vd, &vsock_ops, name, mem, 3, VSOCK_QUEUE_SIZE) < 0) {
		if (v->vh_fd >= 0)
			close(v->vh_fd);
		free(v);
		return NULL;
	}
	vs_fill_config(v);
	if (uds && !(v->uds = vsock_uds_create(&v->vd, cid, uds))) {
		vs_destroy(&v->vd);
		return NULL;
	}
	for (unsigned q = 0; backend && q < 2; q++) {
		v->vh_call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->vh_call[q] < 0 || loop_add(v->vd.loop, v->vh_call[q], EPOLLIN, vh_on_call, v) < 0) {
			log_error("%s: eventfd for vhost-vsock: %s", name, strerror(errno));
			if (v->vh_call[q] >= 0)
				close(v->vh_call[q]);
			v->vh_call[q] = -1;
			vs_destroy(&v->vd);
			return NULL;
		}
	}
	return &v->vd;
}

struct virtio_dev *virtio_vsock_create(const struct guest_mem *mem, uint32_t cid, unsigned index)
{
	return vs_create(mem, cid, index, true, NULL);
}

struct virtio_dev *virtio_vsock_create_uds(const struct guest_mem *mem, uint32_t cid, const char *path,
					   unsigned index)
{
	return vs_create(mem, cid, index, false, path);
}

unsigned virtio_vsock_uds_conns(struct virtio_dev *vd)
{
	return to_vsock(vd)->uds ? vsock_uds_conns(to_vsock(vd)->uds) : 0;
}

struct virtio_dev *virtio_vsock_create_nobackend(const struct guest_mem *mem, uint32_t cid, unsigned index)
{
	return vs_create(mem, cid, index, false, NULL);
}

/* ---- the device type -------------------------------------------------------------------- */

int vsock_parse_cid(const char *s, uint32_t *cid)
{
	unsigned long long v;
	char *end;

	if (!s || !(*s >= '0' && *s <= '9'))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < VSOCK_CID_MIN || v > VSOCK_CID_MAX)
		return -1;
	*cid = (uint32_t)v;
	return 0;
}

static int vsock_parse(void *cfgp, const char *arg)
{
	struct vsock_config *c = cfgp;
	char *opts = strdup(arg), *p, *value;
	char *const keys[] = { "cid", "uds", NULL };
	bool have = false;
	int ret = -1;

	if (!opts) {
		log_error("--vsock %s: out of memory", arg);
		return -1;
	}
	p = opts;
	while (*p) {
		switch (getsubopt(&p, keys, &value)) {
		case 0:
			if (vsock_parse_cid(value, &c->cid) < 0) {
				log_error("--vsock: cid '%s' is not a guest CID; give a number from %u to %u "
					  "(0, 1 and 2 are reserved, 2 is the host)",
					  value ? value : "", VSOCK_CID_MIN, VSOCK_CID_MAX);
				goto out;
			}
			have = true;
			break;
		case 1:
			if (!value || !*value) {
				log_error("--vsock: uds= needs a path; give --vsock cid=N,uds=PATH");
				goto out;
			}
			if (strlen(value) + sizeof("_4294967295") > sizeof(c->uds)) {
				log_error("--vsock uds=%s: path longer than %zu bytes (the guest's ports add "
					  "_<port>); give a shorter path",
					  value, sizeof(c->uds) - sizeof("_4294967295"));
				goto out;
			}
			memcpy(c->uds, value, strlen(value) + 1);
			break;
		default:
			log_error("--vsock: unknown option '%s'; use --vsock cid=N[,uds=PATH]",
				  value ? value : p);
			goto out;
		}
	}
	if (!have) {
		log_error("--vsock: no guest CID; give --vsock cid=N (N from %u to %u)", VSOCK_CID_MIN,
			  VSOCK_CID_MAX);
		goto out;
	}
	ret = 0;
out:
	free(opts);
	return ret;
}

static void vsock_cfg_save(const void *cfgp, struct ser_writer *w)
{
	ser_put_u32(w, ((const struct vsock_config *)cfgp)->cid);
}

static int vsock_cfg_load(void *cfgp, struct ser_reader *r)
{
	struct vsock_config *c = cfgp;

	c->cid = ser_get_u32(r);
	return r->err || c->cid < VSOCK_CID_MIN || c->cid > VSOCK_CID_MAX ? -1 : 0;
}

static void *vsock_type_create(struct vm *vm, const void *cfg, unsigned index)
{
	const struct vsock_config *c = cfg;

	if (c->uds[0])
		return virtio_plug(vm, virtio_vsock_create_uds(&vm->mem, c->cid, c->uds, index));
	return virtio_plug(vm, virtio_vsock_create(&vm->mem, c->cid, index));
}

/* No match: the CID is the host's to give (a restore may take another one; the guest reads it
 * again with the transport reset event). */
const struct device_type virtio_vsock_type = {
	.name = "virtio-vsock",
	.option = "vsock",
	.arg = "cid=N[,uds=PATH]",
	.help = "virtio-vsock: host programs reach the guest at CID N (AF_VSOCK on vhost-vsock), or with "
		"uds= through the unix socket PATH (\"CONNECT <port>\\n\"; the guest reaches PATH_<port>)",
	.max = 1,
	.config_size = sizeof(struct vsock_config),
	.parse = vsock_parse,
	.save = vsock_cfg_save,
	.load = vsock_cfg_load,
	.create = vsock_type_create,
};
