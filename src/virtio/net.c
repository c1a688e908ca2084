#include "net.h"

#include <ctype.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../backends/dgram.h"
#include "../backends/tap.h"
#include "../core/log.h"
#include "../core/util.h"
#include "../core/vm.h"
#include "setup.h"
#include "vhost.h"

#define NET_QUEUE_SIZE 256
#define NET_BUF_LEN    (VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME)
/* Frames per wake-up in each direction before going back to the loop, so a
 * busy transmitter cannot starve receive (and the reverse). */
#define NET_BATCH 64
/* Consecutive failed reads before the backend is given up on: a fd that
 * stays readable but only returns errors must not spin the worker. */
#define NET_MAX_ERR_RUN  1024
#define NET_SAVE_VERSION 1

/* Offsets in virtio_net_hdr_v1. */
#define HDR_FLAGS       0
#define HDR_GSO_TYPE    1
#define HDR_NUM_BUFFERS 10

enum { RX_STOP = -1, RX_IDLE = 0, RX_DONE = 1, RX_STALL = 2 };

struct virtio_net {
	struct virtio_dev vd; /* first: container of the ops' argument */
	int fd;
	bool is_tap;           /* offloads are set with TUNSETOFFLOAD */
	bool is_socket;        /* use send/recvmsg (no SIGPIPE, MSG_TRUNC) */
	bool fd_dead;          /* backend failed: unwatched, link down */
	bool released;         /* fd closed for another process (migration) */
	bool made_persistent;  /* release set TUNSETPERSIST; reacquire undoes it */
	char ifname[IFNAMSIZ]; /* tap to reopen on reacquire ("" for a passed-in fd) */
	struct dgram *dg;      /* a link card's switch port (socket=, link=), or NULL */
	uint8_t mac[6];
	uint32_t watch;    /* events currently asked of vd->loop */
	bool rx_stalled;   /* no rx buffers: wait for the rx kick */
	bool tx_resume;    /* tx paused (backend full, batch used): resume on EPOLLOUT */
	unsigned err_run;  /* consecutive failed reads */
	size_t pending;    /* bytes of a received frame waiting in bounce (mergeable) */
	size_t rx_off;     /* of it, bytes already in held rx chains */
	unsigned rx_nbufs; /* rx chains popped and filled, not yet pushed */
	uint64_t rx_dropped, tx_dropped;
	uint8_t rx_hdr[VIRTIO_NET_HDR_LEN];
	uint8_t *bounce; /* NET_BUF_LEN */
	uint16_t rx_heads[VIRTQ_MAX_SIZE];
	uint32_t rx_lens[VIRTQ_MAX_SIZE];
	struct iovec iov[IOV_MAX];
	struct iovec tx_iov[IOV_MAX]; /* a tx frame: the checked header copy, then the guest's rest */
	struct virtq_chain first;     /* first rx chain of a frame (holds the header) */
	struct virtq_chain chain;     /* scratch */
	/* vhost-net: the kernel moves the frames between the rings and the tap; kicks go to it
	 * straight from the ioeventfds, its "used" notifications come to the worker (vh_call),
	 * which raises the interrupt through the transport (masking, routing). */
	int vh_fd;            /* /dev/vhost-net, or -1: the user-space path */
	bool vh_running;      /* the rings are the kernel's */
	uint64_t vh_features; /* what vhost-net offers */
	int vh_call[2];       /* eventfds vhost signals, per queue */
	int vh_kick[2];       /* the transport's kick eventfds while vhost has them */
	uint8_t *vh_log;      /* vhost's dirty log: a bit per 4 KiB of guest physical address */
	size_t vh_log_len;
};

static struct virtio_net *to_net(struct virtio_dev *vd)
{
	return (struct virtio_net *)vd;
}

static bool net_running(const struct virtio_net *n)
{
	return n->vd.activated && !n->vd.broken && !n->released;
}

static void net_fill_config(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;
	uint16_t status = n->fd_dead ? 0 : VIRTIO_NET_S_LINK_UP;

	memset(vd->config, 0, sizeof(vd->config));
	memcpy(vd->config, n->mac, 6);
	vd->config[6] = (uint8_t)status;
	vd->config[7] = (uint8_t)(status >> 8);
	vd->config_size = 8; /* mac, status: no MQ/MTU fields */
}

static void net_set_watch(struct virtio_net *n, uint32_t want)
{
	if (n->fd_dead || n->released || want == n->watch)
		return;
	if (loop_mod(n->vd.loop, n->fd, want) < 0) {
		log_debug("%s: loop_mod: %s", n->vd.name, strerror(errno));
		return;
	}
	n->watch = want;
}

/* Watch the backend for what we can act on now: input while the guest has
 * rx buffers, output while transmit is waiting to resume. */
static void net_update_watch(struct virtio_net *n)
{
	uint32_t want = 0;

	if (net_running(n)) {
		if (!n->rx_stalled)
			want |= EPOLLIN;
		if (n->tx_resume)
			want |= EPOLLOUT;
	}
	net_set_watch(n, want);
}

static void net_backend_failed(struct virtio_net *n, const char *why)
{
	struct virtio_dev *vd = &n->vd;

	if (n->fd_dead)
		return;
	log_error("%s: network backend %s; the guest's link is down (restart the VM to reconnect)", vd->name,
		  why);
	loop_del(vd->loop, n->fd);
	n->fd_dead = true;
	n->watch = 0;
	net_fill_config(n);
	if (vd->activated)
		virtio_notify_config(vd);
}

/* ---- transmit ----------------------------------------------------------- */

/* The header may only ask for offloads the driver negotiated (5.1.6.2). */
static bool net_tx_hdr_ok(const struct virtio_dev *vd, const uint8_t *h)
{
	if ((h[HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !virtio_has_feature(vd, VIRTIO_NET_F_CSUM))
		return false;
	if ((h[HDR_GSO_TYPE] & VIRTIO_NET_HDR_GSO_ECN) && !virtio_has_feature(vd, VIRTIO_NET_F_HOST_ECN))
		return false;
	switch (h[HDR_GSO_TYPE] & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return virtio_has_feature(vd, VIRTIO_NET_F_HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return virtio_has_feature(vd, VIRTIO_NET_F_HOST_TSO6);
	default:
		return false;
	}
}

static ssize_t net_send(struct virtio_net *n, struct iovec *iov, unsigned cnt)
{
	ssize_t r;

	do {
		if (n->is_socket) {
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = cnt };

			r = sendmsg(n->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			r = writev(n->fd, iov, (int)cnt);
		}
	} while (r < 0 && errno == EINTR);
	return r;
}

/* n->tx_iov = hdr (the checked copy), then the chain's readable bytes after the header. The
 * number of entries, or 0 when they would be more than IOV_MAX. */
static unsigned net_tx_iov(struct virtio_net *n, const struct virtq_chain *c, uint8_t *hdr)
{
	size_t skip = VIRTIO_NET_HDR_LEN;
	unsigned cnt = 0;

	n->tx_iov[cnt++] = (struct iovec){ .iov_base = hdr, .iov_len = VIRTIO_NET_HDR_LEN };
	for (unsigned i = 0; i < c->n_out; i++) {
		size_t l = c->iov[i].iov_len;

		if (l <= skip) {
			skip -= l;
			continue;
		}
		if (cnt == IOV_MAX)
			return 0;
		n->tx_iov[cnt++] = (struct iovec){ .iov_base = (uint8_t *)c->iov[i].iov_base + skip,
						   .iov_len = l - skip };
		skip = 0;
	}
	return cnt;
}

/* Send one tx chain. 0: done (sent or dropped), 1: backend full, retry later. The header that
 * goes out is the copy that was checked: a vCPU rewriting the guest's one meanwhile changes
 * nothing. */
static int net_tx_one(struct virtio_net *n, struct virtq_chain *c)
{
	struct virtio_dev *vd = &n->vd;
	uint8_t hdr[VIRTIO_NET_HDR_LEN];
	const char *why = NULL;
	unsigned cnt = 0;

	/* Writable segments in a tx chain are meaningless: ignored. */
	if (c->out_len < VIRTIO_NET_HDR_LEN)
		why = "no header";
	else if (c->out_len > NET_BUF_LEN)
		why = "frame too long";
	else if (virtq_chain_read(c, 0, hdr, sizeof(hdr)) != sizeof(hdr) || !net_tx_hdr_ok(vd, hdr))
		why = "header asks for offloads not negotiated";
	else if (!(cnt = net_tx_iov(n, c, hdr)))
		why = "too many segments";
	if (!why && net_send(n, n->tx_iov, cnt) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 1;
		why = strerror(errno);
	}
	if (why) {
		n->tx_dropped++;
		log_debug("%s: tx frame dropped (%s), %llu so far", vd->name, why,
			  (unsigned long long)n->tx_dropped);
	}
	return 0;
}

static void net_tx(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;
	struct virtq *q = &vd->vqs[VIRTIO_NET_TXQ];
	unsigned done = 0, unsignalled = 0;
	int r;

	if (!net_running(n) || !q->enabled)
		return;
	n->tx_resume = false;
	for (;;) {
		virtq_set_notification(q, false);
		while ((r = virtq_pop(q, &n->chain)) == VIRTQ_OK) {
			if (net_tx_one(n, &n->chain)) {
				/* Backend full: keep the chain and wait for EPOLLOUT
				 * with kicks off (they would only wake us early). */
				virtq_unpop(q);
				n->tx_resume = true;
				goto out;
			}
			virtq_push(q, n->chain.head, 0);
			done++;
			if (++unsignalled == NET_BATCH) {
				virtio_notify_used(vd, VIRTIO_NET_TXQ);
				unsignalled = 0;
			}
			if (done >= 4 * NET_BATCH) {
				/* Let rx run; the backend being writable brings us back. */
				n->tx_resume = true;
				goto out;
			}
		}
		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, "malformed transmit chain");
			goto out;
		}
		if (!virtq_set_notification(q, true))
			break;
	}
out:
	if (unsignalled)
		virtio_notify_used(vd, VIRTIO_NET_TXQ);
}

/* ---- receive ------------------------------------------------------------ */

/* Make the backend's header fit what the driver negotiated: a frame that
 * needs an offload the guest did not take is dropped. Sets num_buffers 1. */
static bool net_rx_fix_hdr(const struct virtio_dev *vd, uint8_t *h)
{
	uint8_t gso = h[HDR_GSO_TYPE];

	if (!virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM)) {
		if (h[HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return false;
		h[HDR_FLAGS] = 0; /* 5.1.6.3.1: flags zero without GUEST_CSUM */
	}
	if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !virtio_has_feature(vd, VIRTIO_NET_F_GUEST_ECN))
		return false;
	switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		break;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO4))
			return false;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO6))
			return false;
		break;
	default:
		return false;
	}
	h[HDR_NUM_BUFFERS] = 1;
	h[HDR_NUM_BUFFERS + 1] = 0;
	return true;
}

/* One frame from the backend into iov. Returns the frame's full length
 * (*trunc when it did not fit), or -1 with errno. */
static ssize_t net_recv(struct virtio_net *n, struct iovec *iov, unsigned cnt, size_t cap, bool *trunc)
{
	ssize_t r;

	*trunc = false;
	do {
		if (n->is_socket) {
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = cnt };

			r = recvmsg(n->fd, &m, MSG_DONTWAIT | MSG_TRUNC);
		} else {
			/* tun reports the whole frame length even when it had to
			 * cut it short. */
			r = readv(n->fd, iov, (int)cnt);
		}
	} while (r < 0 && errno == EINTR);
	if (r > 0 && (size_t)r > cap)
		*trunc = true;
	return r;
}

static void net_rx_drop(struct virtio_net *n, const char *why)
{
	n->rx_dropped++;
	log_debug("%s: rx frame dropped (%s), %llu so far", n->vd.name, why,
		  (unsigned long long)n->rx_dropped);
}

/* A read failed (r < 0, errno) or returned nothing (r == 0). */
static int net_recv_failed(struct virtio_net *n, ssize_t r)
{
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return RX_IDLE;
	if (r < 0 && (errno == EBADF || errno == EBADFD || errno == ENXIO || errno == ENODEV)) {
		net_backend_failed(n, "went away");
		return RX_STOP;
	}
	if (++n->err_run >= NET_MAX_ERR_RUN) {
		net_backend_failed(n, "keeps failing");
		return RX_STOP;
	}
	net_rx_drop(n, r < 0 ? strerror(errno) : "empty read");
	return RX_DONE;
}

/* Read the next frame into bounce (n->pending; 0 when it was dropped). */
static int net_read_frame(struct virtio_net *n)
{
	struct iovec iov = { .iov_base = n->bounce, .iov_len = NET_BUF_LEN };
	bool trunc;
	ssize_t r = net_recv(n, &iov, 1, NET_BUF_LEN, &trunc);

	if (r <= 0)
		return net_recv_failed(n, r);
	n->err_run = 0;
	if (trunc || r < VIRTIO_NET_HDR_LEN)
		net_rx_drop(n, "bad frame length");
	else if (!net_rx_fix_hdr(&n->vd, n->bounce))
		net_rx_drop(n, "offload not negotiated by the guest");
	else
		n->pending = (size_t)r;
	return RX_DONE;
}

static void net_rx_forget(struct virtio_net *n)
{
	n->pending = 0;
	n->rx_off = 0;
	n->rx_nbufs = 0;
}

/* Scatter the frame in bounce over as many rx chains as it needs (one
 * without MRG_RXBUF). RX_STALL: not enough buffers yet; the frame and the
 * chains filled so far are held, and delivery resumes with the next ones. */
static int net_rx_deliver(struct virtio_net *n, unsigned *pushed)
{
	struct virtio_dev *vd = &n->vd;
	struct virtq *q = &vd->vqs[VIRTIO_NET_RXQ];
	bool mrg = virtio_has_feature(vd, VIRTIO_NET_F_MRG_RXBUF);
	size_t len = n->pending, off = n->rx_off;
	unsigned nbufs = n->rx_nbufs;
	uint8_t nb[2];

	while (off < len) {
		struct virtq_chain *c = nbufs ? &n->chain : &n->first;
		int r = virtq_pop(q, c);

		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, "malformed receive chain");
			return RX_STOP;
		}
		if (r == VIRTQ_EMPTY) {
			/* Every chain of the ring already in our hands and still
			 * short: the frame can never fit. Give the chains back. */
			if ((uint16_t)(q->last_avail - q->used_idx) >= q->size) {
				for (unsigned i = 0; i < nbufs; i++)
					virtq_unpop(q);
				net_rx_forget(n);
				net_rx_drop(n, "larger than the whole receive ring");
				return RX_DONE;
			}
			n->rx_off = off;
			n->rx_nbufs = nbufs;
			return RX_STALL;
		}
		if (c->in_len < (nbufs ? 1 : VIRTIO_NET_HDR_LEN)) {
			virtio_set_broken(vd, "receive buffer smaller than the header");
			return RX_STOP;
		}
		if (!mrg && c->in_len < len) {
			virtq_unpop(q);
			net_rx_forget(n);
			net_rx_drop(n, "frame larger than the receive buffer");
			return RX_DONE;
		}
		n->rx_heads[nbufs] = c->head;
		n->rx_lens[nbufs] = (uint32_t)virtq_chain_write(c, 0, n->bounce + off, len - off);
		if (nbufs)
			virtq_chain_mark_written(q, c); /* the first one once its count is in */
		off += n->rx_lens[nbufs];
		nbufs++;
	}
	nb[0] = (uint8_t)nbufs;
	nb[1] = (uint8_t)(nbufs >> 8);
	virtq_chain_write(&n->first, HDR_NUM_BUFFERS, nb, sizeof(nb));
	virtq_chain_mark_written(q, &n->first);
	for (unsigned i = 0; i < nbufs; i++)
		virtq_push(q, n->rx_heads[i], n->rx_lens[i]);
	*pushed += nbufs;
	net_rx_forget(n);
	return RX_DONE;
}

static int net_rx_bounce(struct virtio_net *n, unsigned *pushed)
{
	if (!n->pending) {
		int r = net_read_frame(n);

		if (r != RX_DONE || !n->pending)
			return r;
	}
	return net_rx_deliver(n, pushed);
}

/* Without MRG_RXBUF: read the frame straight into one rx chain. The header
 * goes to a host buffer first (to be checked), and an overflow segment
 * catches a frame too big for the chain so it can be told apart. */
static int net_rx_direct(struct virtio_net *n, unsigned *pushed)
{
	struct virtio_dev *vd = &n->vd;
	struct virtq *q = &vd->vqs[VIRTIO_NET_RXQ];
	struct virtq_chain *c = &n->first;
	size_t skip = VIRTIO_NET_HDR_LEN;
	unsigned cnt = 0;
	bool trunc;
	ssize_t r;
	int rc;

	rc = virtq_pop(q, c);
	if (rc == VIRTQ_ERR) {
		virtio_set_broken(vd, "malformed receive chain");
		return RX_STOP;
	}
	if (rc == VIRTQ_EMPTY)
		return RX_STALL;
	if (c->in_len < VIRTIO_NET_HDR_LEN) {
		virtio_set_broken(vd, "receive buffer smaller than the header");
		return RX_STOP;
	}
	if (c->n_in + 2 > IOV_MAX) {
		virtq_unpop(q);
		return net_rx_bounce(n, pushed);
	}
	n->iov[cnt++] = (struct iovec){ .iov_base = n->rx_hdr, .iov_len = VIRTIO_NET_HDR_LEN };
	for (unsigned i = c->n_out; i < c->n_out + c->n_in; i++) {
		size_t l = c->iov[i].iov_len;

		if (l <= skip) {
			skip -= l;
			continue;
		}
		n->iov[cnt++] = (struct iovec){ .iov_base = (uint8_t *)c->iov[i].iov_base + skip,
						.iov_len = l - skip };
		skip = 0;
	}
	n->iov[cnt++] = (struct iovec){ .iov_base = n->bounce, .iov_len = NET_BUF_LEN };
	r = net_recv(n, n->iov, cnt, c->in_len, &trunc);
	if (r <= 0) {
		virtq_unpop(q);
		return net_recv_failed(n, r);
	}
	n->err_run = 0;
	if (trunc || r < VIRTIO_NET_HDR_LEN) {
		virtq_unpop(q);
		net_rx_drop(n, "frame larger than the receive buffer");
		return RX_DONE;
	}
	if (!net_rx_fix_hdr(vd, n->rx_hdr)) {
		virtq_unpop(q);
		net_rx_drop(n, "offload not negotiated by the guest");
		return RX_DONE;
	}
	virtq_chain_write(c, 0, n->rx_hdr, VIRTIO_NET_HDR_LEN);
	virtq_chain_mark_written(q, c);
	virtq_push(q, c->head, (uint32_t)r);
	(*pushed)++;
	return RX_DONE;
}

/* No rx buffers: ask for the driver's kick, stop reading. False when
 * buffers arrived meanwhile (go on). */
static bool net_rx_stall(struct virtio_net *n)
{
	if (virtq_set_notification(&n->vd.vqs[VIRTIO_NET_RXQ], true))
		return false;
	n->rx_stalled = true;
	return true;
}

/* Move frames from the backend to the guest until the backend is empty, the
 * guest is out of buffers, or a batch is done. */
static void net_rx(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;
	struct virtq *q = &vd->vqs[VIRTIO_NET_RXQ];
	bool mrg = virtio_has_feature(vd, VIRTIO_NET_F_MRG_RXBUF);
	unsigned frames = 0, pushed = 0;

	if (!net_running(n) || n->fd_dead)
		return;
	if (!q->enabled) {
		n->rx_stalled = true; /* no receive queue: never read */
		return;
	}
	while (frames < NET_BATCH) {
		int r;

		/* Only take a frame off the backend once there is a buffer for it. */
		if (!n->pending && !virtq_has_work(q))
			r = q->broken ? RX_STOP : RX_STALL;
		else if (mrg || n->pending)
			r = net_rx_bounce(n, &pushed);
		else
			r = net_rx_direct(n, &pushed);
		if (r == RX_STALL) {
			if (net_rx_stall(n))
				break;
			continue;
		}
		if (r != RX_DONE)
			break;
		frames++;
	}
	if (pushed)
		virtio_notify_used(vd, VIRTIO_NET_RXQ);
}

/* ---- loop and ops ------------------------------------------------------- */

static void net_on_fd(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->vd.lock);
	if (events & EPOLLERR) {
		int err = 0;
		socklen_t sl = sizeof(err);

		/* A socket's pending error is cleared by reading it; a tap only
		 * reports errors once its interface is gone. */
		if (!n->is_socket || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			net_backend_failed(n, "reported an error");
		else if (err)
			log_debug("%s: backend error: %s", n->vd.name, strerror(err));
	}
	if ((events & EPOLLHUP) && !n->fd_dead)
		net_backend_failed(n, "hung up");
	if ((events & EPOLLOUT) && !n->fd_dead)
		net_tx(n);
	if ((events & EPOLLIN) && !n->fd_dead)
		net_rx(n);
	net_update_watch(n);
	pthread_mutex_unlock(&n->vd.lock);
}

static unsigned net_tap_offloads(const struct virtio_dev *vd)
{
	unsigned f = 0;

	/* tun rejects TSO without CSUM and ECN without TSO. */
	if (!virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	f |= TUN_F_CSUM;
	if (virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO4))
		f |= TUN_F_TSO4;
	if (virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO6))
		f |= TUN_F_TSO6;
	if ((f & (TUN_F_TSO4 | TUN_F_TSO6)) && virtio_has_feature(vd, VIRTIO_NET_F_GUEST_ECN))
		f |= TUN_F_TSO_ECN;
	return f;
}

/* ---- vhost-net ---------------------------------------------------------- */

/* What vhost-net must know of the negotiated features: the ring layout and the header. */
#define VH_RING_FEATURES                                                                            \
	(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC | \
	 1ULL << VIRTIO_NET_F_MRG_RXBUF)

#define VH_FIX "give --net ...,vhost=off for the user-space path"

static int vh_ioctl(struct virtio_net *n, unsigned long req, void *arg, const char *name)
{
	return vhost_ioctl(&(struct vhost_io){ n->vh_fd, n->vd.name, "vhost-net", VH_FIX }, req, arg, name);
}

/* Take the rings back from the kernel: where it got to in each avail ring, and the used
 * index it wrote. The queues' state is the user-space path's again (saved as such). */
static void vh_stop(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;

	if (!n->vh_running)
		return;
	for (unsigned q = 0; q < 2; q++) {
		struct vhost_vring_file be = { .index = q, .fd = -1 };

		vh_ioctl(n, VHOST_NET_SET_BACKEND, &be, "VHOST_NET_SET_BACKEND");
		vhost_vring_stop(&(struct vhost_io){ n->vh_fd, vd->name, "vhost-net", VH_FIX }, q,
				 &vd->vqs[q]);
		if (n->vh_kick[q] >= 0) {
			virtio_queue_kick_fd(vd, q, false);
			n->vh_kick[q] = -1;
		}
	}
	n->vh_running = false;
	vhost_log_collect(vd->mem, n->vh_log, n->vh_log_len);
	/* A kick vhost had not seen yet is the user-space path's now. */
	n->tx_resume = true;
	n->rx_stalled = false;
}

/* Hand both rings and the tap to the kernel. */
static int vh_start(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;
	uint64_t features = (vd->features & VH_RING_FEATURES & n->vh_features) | 1ULL << VHOST_F_LOG_ALL;
	const struct vhost_io io = { n->vh_fd, vd->name, "vhost-net", VH_FIX };
	int ret = -1;

	if (vh_ioctl(n, VHOST_SET_FEATURES, &features, "VHOST_SET_FEATURES") < 0)
		return -1;
	if (vhost_set_mem(&io, vd->mem, &n->vh_log, &n->vh_log_len) < 0)
		goto out;
	for (unsigned q = 0; q < 2; q++) {
		struct virtq *vq = &vd->vqs[q];
		struct vhost_vring_file kick = { .index = q };
		struct vhost_vring_file be = { .index = q, .fd = n->fd };

		if (!vq->enabled) {
			log_error("%s: the driver did not enable queue %u; vhost-net needs both", vd->name,
				  q);
			goto out;
		}
		if (vhost_vring_setup(&io, q, vq, n->vh_call[q], true) < 0)
			goto out;
		kick.fd = virtio_queue_kick_fd(vd, q, true);
		if (kick.fd < 0) {
			log_error("%s: the transport has no kick eventfd for vhost-net", vd->name);
			goto out;
		}
		n->vh_kick[q] = kick.fd;
		n->vh_running = true; /* from here on, vh_stop undoes it */
		if (vh_ioctl(n, VHOST_SET_VRING_KICK, &kick, "VHOST_SET_VRING_KICK") < 0 ||
		    vh_ioctl(n, VHOST_NET_SET_BACKEND, &be, "VHOST_NET_SET_BACKEND") < 0)
			goto out;
	}
	ret = 0;
out:
	if (ret < 0)
		vh_stop(n);
	return ret;
}

/* vhost signalled used buffers on a queue: interrupt the driver (vhost applied the
 * driver's suppression already). */
static void vh_on_call(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_net *n = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&n->vd.lock);
	if (n->vh_running)
		virtio_notify_queue_now(&n->vd, fd == n->vh_call[0] ? 0 : 1);
	pthread_mutex_unlock(&n->vd.lock);
}

/* Open vhost-net for the device (vhost=auto: quietly not when the host has none). 0, or -1
 * after printing when it was asked for (on) or is there but unusable. */
static int vh_open(struct virtio_net *n, enum net_vhost mode)
{
	const char *what = "open";

	n->vh_fd = n->vh_call[0] = n->vh_call[1] = n->vh_kick[0] = n->vh_kick[1] = -1;
	if (mode == NET_VHOST_OFF)
		return 0;
	n->vh_fd = vhost_open("/dev/vhost-net", &n->vh_features, &what);
	if (n->vh_fd < 0) {
		if (mode == NET_VHOST_AUTO && !strcmp(what, "open") &&
		    (errno == ENOENT || errno == ENODEV || errno == ENXIO))
			return 0;
		goto fail;
	}
	what = "eventfd";
	for (unsigned q = 0; q < 2; q++) {
		n->vh_call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (n->vh_call[q] < 0 || loop_add(n->vd.loop, n->vh_call[q], EPOLLIN, vh_on_call, n) < 0)
			goto fail;
	}
	return 0;
fail:
	log_error(
		"%s: /dev/vhost-net: %s failed: %s; load vhost_net (modprobe vhost_net), give kvmbox access "
		"to /dev/vhost-net, or give --net ...,vhost=off",
		n->vd.name, what, strerror(errno));
	return -1;
}

static void vh_close(struct virtio_net *n)
{
	vh_stop(n);
	for (unsigned q = 0; q < 2; q++)
		if (n->vh_call[q] >= 0) {
			loop_del(n->vd.loop, n->vh_call[q]);
			close(n->vh_call[q]);
		}
	if (n->vh_fd >= 0)
		close(n->vh_fd);
	free(n->vh_log);
	n->vh_fd = -1;
	n->vh_log = NULL;
}

static int net_start(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;

	if (!virtio_has_feature(vd, VIRTIO_F_VERSION_1)) {
		log_error("%s: driver did not accept VIRTIO_F_VERSION_1; use a virtio 1.0 driver", vd->name);
		return -1;
	}
	if (n->is_tap && !n->fd_dead && !n->released && tap_set_offload(n->fd, net_tap_offloads(vd)) < 0) {
		log_error("%s: TUNSETOFFLOAD: %s; the tap refused the guest's offloads", vd->name,
			  strerror(errno));
		return -1;
	}
	n->rx_stalled = false; /* look at the backend; stalls again if no buffers */
	if (n->vh_fd >= 0 && !n->fd_dead && !n->released) {
		/* The kernel reads and writes the tap: the worker only raises interrupts. */
		net_set_watch(n, 0);
		return vh_start(n);
	}
	net_update_watch(n);
	return 0;
}

static int net_activate(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);

	n->tx_resume = false;
	net_rx_forget(n);
	return net_start(n);
}

static void net_reset(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);

	/* Nothing is in flight outside this lock: forget the held frame and
	 * stop reading until the next activation. */
	vh_stop(n);
	net_rx_forget(n);
	n->rx_stalled = false;
	n->tx_resume = false;
	n->err_run = 0;
	net_set_watch(n, 0);
	net_fill_config(n);
}

static void net_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_net *n = to_net(vd);

	if (q == VIRTIO_NET_RXQ) {
		/* New buffers: read again. Kicks stay off until we run dry. */
		n->rx_stalled = false;
		virtq_set_notification(&vd->vqs[VIRTIO_NET_RXQ], false);
		net_rx(n);
	} else if (q == VIRTIO_NET_TXQ) {
		net_tx(n);
	}
	net_update_watch(n);
}

/* A pause (snapshot, migration): the kernel gives the rings back, so nothing touches guest
 * memory and the saved queue state is where vhost got to. */
static int net_quiesce(struct virtio_dev *vd)
{
	vh_stop(to_net(vd));
	return 0;
}

static void net_resume(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);

	if (n->vh_fd >= 0 && net_running(n) && !n->fd_dead && !n->vh_running && vh_start(n) < 0)
		virtio_set_broken(vd, "vhost-net could not take the rings back");
	else if (!n->vh_running)
		net_update_watch(n);
}

static void net_config_write(struct virtio_dev *vd, uint32_t off, uint32_t len)
{
	/* Every field is read-only for a VERSION_1 driver. */
	net_fill_config(to_net(vd));
}

static void net_save(struct virtio_dev *vd, struct ser_writer *w)
{
	struct virtio_net *n = to_net(vd);

	ser_put_u8(w, NET_SAVE_VERSION);
	ser_put_bytes(w, n->mac, sizeof(n->mac));
	ser_put_u32(w, (uint32_t)n->pending);
	ser_put_bytes(w, n->bounce, n->pending);
	/* Held rx chains are given back on load (the saved queue counts them
	 * as popped) and the frame is delivered again from its start. */
	ser_put_u16(w, (uint16_t)n->rx_nbufs);
}

static int net_load(struct virtio_dev *vd, struct ser_reader *r)
{
	struct virtio_net *n = to_net(vd);
	struct virtq *q = &vd->vqs[VIRTIO_NET_RXQ];
	uint8_t mac[6];
	uint32_t pending;
	uint16_t held;

	if (ser_get_u8(r) != NET_SAVE_VERSION)
		return -1;
	ser_get_bytes(r, mac, sizeof(mac));
	pending = ser_get_u32(r);
	if (r->err || pending > NET_BUF_LEN || (pending && pending < VIRTIO_NET_HDR_LEN))
		return -1;
	ser_get_bytes(r, n->bounce, pending);
	held = ser_get_u16(r);
	if (r->err || (held && (!pending || !q->enabled || held > (uint16_t)(q->last_avail - q->used_idx))))
		return -1;
	/* The guest knows the saved MAC: it wins over the configured one. */
	memcpy(n->mac, mac, sizeof(mac));
	net_rx_forget(n);
	n->pending = pending;
	for (unsigned i = 0; i < held; i++)
		virtq_unpop(q);
	n->err_run = 0;
	net_fill_config(n);
	if (!vd->activated || vd->broken) {
		n->pending = 0;
		net_set_watch(n, 0);
		return 0;
	}
	/* Kicks may have been lost across the snapshot: look at both sides. */
	n->tx_resume = true;
	return net_start(n);
}

/* Live migration: close the backend so the destination process can attach
 * to the tap (TUNSETIFF fails with EBUSY while we hold it). A tap kvmbox
 * created itself would vanish with its last fd: it is made persistent first,
 * and stays so if the migration succeeds (remove it with `ip tuntap del`). */
static int net_release(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);
	bool persistent;

	if (n->released)
		return 0;
	if (n->dg) {
		/* Leave the link: the destination joins it from its own command line. The device's
		 * end of the socketpair stays. */
		dgram_leave(n->dg);
		n->released = true;
		return 0;
	}
	/* A backend that already failed is only closed: there is nothing to
	 * keep alive for the destination. */
	if (n->is_tap && !n->fd_dead && !n->made_persistent) {
		if (tap_get_persist(n->fd, &persistent) < 0) {
			log_error("%s: tap %s: TUNGETIFF: %s; cannot hand the tap over", vd->name, n->ifname,
				  strerror(errno));
			return -1;
		}
		if (!persistent) {
			if (tap_set_persist(n->fd, true) < 0) {
				log_error("%s: tap %s: TUNSETPERSIST: %s; create the tap with "
					  "`ip tuntap add` to migrate",
					  vd->name, n->ifname, strerror(errno));
				return -1;
			}
			n->made_persistent = true;
		}
	}
	if (!n->fd_dead)
		loop_del(vd->loop, n->fd);
	close(n->fd);
	n->fd = -1;
	n->watch = 0;
	n->released = true;
	return 0;
}

/* The migration failed: attach to the tap again (fails while the destination
 * still has it open), restore the guest's offloads and watch it. */
static int net_reacquire(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);
	bool vnet_ok;
	int fd;

	if (!n->released)
		return 0;
	if (n->fd_dead) {
		n->released = false; /* stays down, with no fd */
		return 0;
	}
	if (n->dg) {
		if (dgram_join(n->dg) < 0)
			return -1;
		n->released = false;
		if (net_running(n)) {
			n->tx_resume = true;
			net_update_watch(n);
		}
		return 0;
	}
	if (!n->is_tap) {
		log_error("%s: the network backend was passed in as an open fd and cannot be reopened; "
			  "restart the VM to reconnect",
			  vd->name);
		return -1;
	}
	fd = tap_open(n->ifname, NULL, &vnet_ok);
	if (fd < 0)
		return -1;
	if (!vnet_ok) {
		log_error("tap %s: the kernel refused the 12-byte vnet header (TUNSETVNETHDRSZ) on reopen",
			  n->ifname);
		goto fail;
	}
	if (vd->activated && tap_set_offload(fd, net_tap_offloads(vd)) < 0) {
		log_error("%s: TUNSETOFFLOAD: %s; the tap refused the guest's offloads", vd->name,
			  strerror(errno));
		goto fail;
	}
	if (loop_add(vd->loop, fd, 0, net_on_fd, n) < 0) {
		log_error("%s: cannot poll the backend fd: %s", vd->name, strerror(errno));
		goto fail;
	}
	/* Back to how it was before the release: a tap of our own again goes
	 * away when kvmbox exits. */
	if (n->made_persistent) {
		if (tap_set_persist(fd, false) < 0)
			log_warn("tap %s: TUNSETPERSIST 0: %s; it outlives the VM (ip tuntap del %s)",
				 n->ifname, strerror(errno), n->ifname);
		n->made_persistent = false;
	}
	n->fd = fd;
	n->watch = 0;
	n->released = false;
	if (net_running(n)) {
		/* A transmit kick during the release was ignored: look again.
		 * rx_stalled is kept: receive is watched if the guest has buffers. */
		n->tx_resume = true;
		net_update_watch(n);
	}
	return 0;
fail:
	close(fd);
	return -1;
}

static void net_destroy(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);

	vh_close(n);
	if (!n->fd_dead && !n->released)
		loop_del(vd->loop, n->fd);
	if (n->fd >= 0)
		close(n->fd);
	dgram_close(n->dg);
	virtio_dev_fini(vd);
	free(n->bounce);
	free(n);
}

static const struct virtio_dev_ops net_ops = {
	.type = "virtio-net",
	.sandbox = SB_NET,
	.device_id = VIRTIO_ID_NET,
	.activate = net_activate,
	.reset = net_reset,
	.queue_notify = net_queue_notify,
	.config_write = net_config_write,
	.quiesce = net_quiesce,
	.resume = net_resume,
	.save = net_save,
	.load = net_load,
	.release = net_release,
	.reacquire = net_reacquire,
	.destroy = net_destroy,
};

void virtio_net_default_mac(const char *tap, unsigned index, uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds */

	for (const char *p = tap; p && *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((index >> (8 * i)) & 0xff)) * 16777619u;
	mac[0] = 0x52; /* locally administered, unicast */
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static struct virtio_dev *net_create(const struct guest_mem *mem, int fd, const uint8_t mac[6],
				     unsigned index, bool is_tap, enum net_vhost vhost, bool offloads)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	char name[32];
	struct stat st;
	int fl;

	snprintf(name, sizeof(name), "virtio-net%u", index);
	if (!n || !(n->bounce = malloc(NET_BUF_LEN))) {
		log_error("%s: out of memory", name);
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fstat(fd, &st) < 0) {
		log_error("%s: backend fd: %s", name, strerror(errno));
		goto fail;
	}
	if (virtio_dev_init(&n->vd, &net_ops, name, mem, 2, NET_QUEUE_SIZE) < 0)
		goto fail;
	n->fd = fd;
	n->is_tap = is_tap;
	n->is_socket = S_ISSOCK(st.st_mode);
	memcpy(n->mac, mac, sizeof(n->mac));
	n->vd.host_features = 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS |
			      1ULL << VIRTIO_NET_F_MRG_RXBUF | 1ULL << VIRTIO_NET_F_CSUM |
			      1ULL << VIRTIO_NET_F_GUEST_CSUM | 1ULL << VIRTIO_NET_F_HOST_TSO4 |
			      1ULL << VIRTIO_NET_F_HOST_TSO6 | 1ULL << VIRTIO_NET_F_HOST_ECN |
			      1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |
			      1ULL << VIRTIO_NET_F_GUEST_ECN;
	if (!offloads) /* a link: whole, checksummed frames only */
		n->vd.host_features = 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS |
				      1ULL << VIRTIO_NET_F_MRG_RXBUF;
	net_fill_config(n);
	/* Watched with no events until activation. */
	if (loop_add(n->vd.loop, fd, 0, net_on_fd, n) < 0) {
		log_error("%s: cannot poll the backend fd: %s", name, strerror(errno));
		virtio_dev_fini(&n->vd);
		goto fail;
	}
	/* vhost-net only drives a tap. */
	if (vh_open(n, is_tap ? vhost : NET_VHOST_OFF) < 0) {
		vh_close(n);
		loop_del(n->vd.loop, fd);
		virtio_dev_fini(&n->vd);
		goto fail;
	}
	return &n->vd;
fail:
	if (n)
		free(n->bounce);
	free(n);
	return NULL;
}

struct virtio_dev *virtio_net_create_fd(const struct guest_mem *mem, int fd, const uint8_t mac[6],
					unsigned index)
{
	return net_create(mem, fd, mac, index, false, NET_VHOST_OFF, true);
}

/* The link's fds are watched on the device's loop, under the device's lock. */
static void net_on_link(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->vd.lock);
	if (n->dg)
		dgram_on_fd(n->dg, fd, events);
	pthread_mutex_unlock(&n->vd.lock);
}

/* A link card: a socketpair to the switch port of backends/dgram.c. */
static struct virtio_dev *net_create_link(const struct guest_mem *mem, const struct net_config *cfg,
					  unsigned index)
{
	struct virtio_dev *vd;
	struct virtio_net *n;
	struct dgram *d;
	char who[32];
	int fd;

	snprintf(who, sizeof(who), "virtio-net%u", index);
	if (!memcmp(cfg->mac, "\0\0\0\0\0\0", 6)) {
		log_error("%s: MAC 00:00:00:00:00:00 is not a unicast address; use e.g. 52:54:00:12:34:56",
			  who);
		return NULL;
	}
	d = dgram_open(cfg->path, cfg->backend == NET_BACKEND_LINK, who, &fd);
	if (!d)
		return NULL;
	vd = net_create(mem, fd, cfg->mac, index, false, NET_VHOST_OFF, false);
	if (!vd) {
		close(fd);
		dgram_close(d);
		return NULL;
	}
	n = to_net(vd);
	n->dg = d;
	if (dgram_attach(n->dg, vd->loop, net_on_link, n) < 0) {
		net_destroy(vd);
		return NULL;
	}
	return vd;
}

struct virtio_dev *virtio_net_create(const struct guest_mem *mem, const struct net_config *cfg,
				     unsigned index)
{
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	struct virtio_dev *vd;
	bool vnet_ok;
	int fd;

	if (cfg->backend != NET_BACKEND_TAP)
		return net_create_link(mem, cfg, index);
	if (cfg->mac_set) {
		static const uint8_t zero[6];

		if ((cfg->mac[0] & 1) || !memcmp(cfg->mac, zero, 6)) {
			log_error("tap %s: MAC %02x:%02x:%02x:%02x:%02x:%02x is not a unicast address; "
				  "use e.g. 52:54:00:12:34:56",
				  cfg->tap, cfg->mac[0], cfg->mac[1], cfg->mac[2], cfg->mac[3], cfg->mac[4],
				  cfg->mac[5]);
			return NULL;
		}
		memcpy(mac, cfg->mac, 6);
	} else {
		virtio_net_default_mac(cfg->tap, index, mac);
	}
	fd = tap_open(cfg->tap, ifname, &vnet_ok);
	if (fd < 0)
		return NULL;
	if (!vnet_ok) {
		log_error("tap %s: the kernel refused the 12-byte vnet header (TUNSETVNETHDRSZ); "
			  "use Linux >= 2.6.35",
			  ifname);
		close(fd);
		return NULL;
	}
	vd = net_create(mem, fd, mac, index, true, (enum net_vhost)cfg->vhost, true);
	if (!vd) {
		close(fd);
		return NULL;
	}
	snprintf(to_net(vd)->ifname, sizeof(to_net(vd)->ifname), "%s", ifname);
	return vd;
}

/* ---- the device type -------------------------------------------------------------------- */

int parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		char *end;
		unsigned long v;

		if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))
			return -1;
		v = strtoul(s, &end, 16);
		if (end != s + 2 || v > 0xff)
			return -1;
		mac[i] = (uint8_t)v;
		s += 2;
		if (i < 5 && *s++ != ':')
			return -1;
	}
	if (*s || (mac[0] & 1))
		return -1; /* trailing junk, or a multicast address */
	return 0;
}

#define NET_USAGE "tap=NAME|socket=PATH|link=NAME[,linkdir=DIR][,mac=MAC][,vhost=on|off]"

/* A random locally administered unicast MAC (52:54:00 like the tap cards' stable ones). */
static void net_random_mac(uint8_t mac[6])
{
	uint8_t r[3] = { 0 };

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		uint64_t t = now_ns() ^ ((uint64_t)getpid() << 20);

		r[0] = (uint8_t)(t >> 8);
		r[1] = (uint8_t)(t >> 16);
		r[2] = (uint8_t)(t >> 24);
	}
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	memcpy(mac + 3, r, 3);
}

/* socket=PATH made absolute (the jail and a reboot may change the directory), with room for
 * ".lock" in a unix socket address. */
static int net_socket_path(const char *value, char *path, size_t len)
{
	char cwd[PATH_MAX];
	int n;

	if (!value || !value[0]) {
		log_error("--net: socket= needs a path; give socket=/PATH");
		return -1;
	}
	if (value[0] == '/')
		n = snprintf(path, len, "%s", value);
	else if (getcwd(cwd, sizeof(cwd)))
		n = snprintf(path, len, "%s/%s", cwd, value);
	else
		n = -1;
	if (n < 0 || (size_t)n + 5 >= len) {
		log_error(
			"--net socket=%s: the path is longer than a unix socket path may be (%zu bytes with "
			"\".lock\"); give a shorter one",
			value, len - 1);
		return -1;
	}
	return 0;
}

static int net_parse(void *cfgp, const char *arg)
{
	struct net_config *n = cfgp;
	char *opts = strdup(arg), *p, *value;
	char *const keys[] = { "tap", "mac", "vhost", "socket", "link", "linkdir", NULL };
	char linkdir[108] = "";
	unsigned backends = 0;
	int ret = -1;

	if (!opts) {
		log_error("--net %s: out of memory", arg);
		return -1;
	}
	p = opts;
	while (*p) {
		switch (getsubopt(&p, keys, &value)) {
		case 0:
			if (!value || !value[0] || strlen(value) >= sizeof(n->tap)) {
				log_error(
					"--net: tap name '%s' is empty or longer than %zu characters; give a valid "
					"interface name",
					value ? value : "", sizeof(n->tap) - 1);
				goto out;
			}
			snprintf(n->tap, sizeof(n->tap), "%s", value);
			n->backend = NET_BACKEND_TAP;
			backends++;
			break;
		case 1:
			if (!value || parse_mac(value, n->mac) < 0) {
				log_error("--net: mac '%s' is not a unicast MAC address; give one like "
					  "52:54:00:12:34:56",
					  value ? value : "");
				goto out;
			}
			n->mac_set = true;
			break;
		case 2:
			if (value && !strcmp(value, "on"))
				n->vhost = NET_VHOST_ON;
			else if (value && !strcmp(value, "off"))
				n->vhost = NET_VHOST_OFF;
			else {
				log_error("--net: vhost='%s'; give vhost=on or vhost=off (default: on when "
					  "/dev/vhost-net is usable)",
					  value ? value : "");
				goto out;
			}
			break;
		case 3:
			if (net_socket_path(value, n->path, sizeof(n->path)) < 0)
				goto out;
			n->backend = NET_BACKEND_SOCKET;
			backends++;
			break;
		case 4:
			if (!value || !dgram_name_ok(value)) {
				log_error(
					"--net: link name '%s'; a link name is 1 to 64 of A-Z a-z 0-9 . _ - "
					"(not starting with .)",
					value ? value : "");
				goto out;
			}
			snprintf(n->link, sizeof(n->link), "%s", value);
			n->backend = NET_BACKEND_LINK;
			backends++;
			break;
		case 5:
			if (!value || value[0] != '/' || strlen(value) >= sizeof(linkdir)) {
				log_error("--net: linkdir='%s'; give an absolute directory path",
					  value ? value : "");
				goto out;
			}
			snprintf(linkdir, sizeof(linkdir), "%s", value);
			break;
		default:
			log_error("--net: unknown option '%s'; use " NET_USAGE, value ? value : p);
			goto out;
		}
	}
	if (backends != 1) {
		log_error("--net: %s; give exactly one of tap=NAME, socket=PATH, link=NAME",
			  backends ? "more than one of tap=, socket=, link=" : "no tap, socket or link");
		goto out;
	}
	if (linkdir[0] && n->backend != NET_BACKEND_LINK) {
		log_error("--net: linkdir= goes with link=NAME only");
		goto out;
	}
	if (n->backend != NET_BACKEND_TAP) {
		if (n->vhost == NET_VHOST_ON) {
			log_error("--net: vhost=on needs a tap; a socket= or link= card moves its frames "
				  "in kvmbox");
			goto out;
		}
		n->vhost = NET_VHOST_OFF;
		if (n->backend == NET_BACKEND_LINK) {
			if (!linkdir[0])
				dgram_default_dir(linkdir, sizeof(linkdir));
			if (dgram_link_path(linkdir, n->link, n->path, sizeof(n->path)) < 0)
				goto out;
		}
		if (!n->mac_set)
			net_random_mac(n->mac);
	}
	ret = 0;
out:
	free(opts);
	return ret;
}

static void net_cfg_save(const void *cfgp, struct ser_writer *w)
{
	const struct net_config *n = cfgp;

	ser_put_str(w, n->tap);
	ser_put_bytes(w, n->mac, 6);
	ser_put_u8(w, n->mac_set);
	ser_put_u8(w, n->vhost);   /* absent in records of older kvmbox: auto */
	ser_put_u8(w, n->backend); /* absent in older records: a tap */
	ser_put_str(w, n->path);
	ser_put_str(w, n->link);
}

static int net_cfg_load(void *cfgp, struct ser_reader *r)
{
	struct net_config *n = cfgp;
	char *tap = ser_get_str(r, sizeof(n->tap) - 1);
	uint8_t set;

	if (tap)
		snprintf(n->tap, sizeof(n->tap), "%s", tap);
	free(tap);
	ser_get_bytes(r, n->mac, 6);
	set = ser_get_u8(r);
	n->vhost = r->off < r->len ? ser_get_u8(r) : NET_VHOST_AUTO;
	n->backend = NET_BACKEND_TAP;
	if (r->off < r->len) {
		char *path, *link;

		n->backend = ser_get_u8(r);
		path = ser_get_str(r, sizeof(n->path) - 1);
		link = ser_get_str(r, sizeof(n->link) - 1);
		if (path)
			snprintf(n->path, sizeof(n->path), "%s", path);
		if (link)
			snprintf(n->link, sizeof(n->link), "%s", link);
		free(path);
		free(link);
	}
	if (r->err || set > 1 || (set && (n->mac[0] & 1)) || n->vhost > NET_VHOST_OFF ||
	    n->backend > NET_BACKEND_LINK || (n->backend == NET_BACKEND_TAP ? !n->tap[0] : !n->path[0]))
		return -1;
	n->mac_set = set;
	return 0;
}

/* What the guest sees: the MAC (given, or made from the tap name); the tap is the host's. A
 * link card without mac= takes the MAC the guest had (the device state's). */
static int net_cfg_match(const void *savedp, const void *localp, unsigned index, const char *who, char *msg,
			 size_t len)
{
	const struct net_config *s = savedp, *l = localp;
	uint8_t sm[6], lm[6];

	if ((s->backend != NET_BACKEND_TAP && !s->mac_set) || (l->backend != NET_BACKEND_TAP && !l->mac_set))
		return 0;
	if (s->mac_set)
		memcpy(sm, s->mac, 6);
	else
		virtio_net_default_mac(s->tap, index, sm);
	if (l->mac_set)
		memcpy(lm, l->mac, 6);
	else
		virtio_net_default_mac(l->tap, index, lm);
	if (memcmp(sm, lm, 6)) {
		snprintf(msg, len,
			 "%s has card %u (--net) with MAC %02x:%02x:%02x:%02x:%02x:%02x, this command line "
			 "%02x:%02x:%02x:%02x:%02x:%02x; add mac=%02x:%02x:%02x:%02x:%02x:%02x to that --net",
			 who, index, sm[0], sm[1], sm[2], sm[3], sm[4], sm[5], lm[0], lm[1], lm[2], lm[3],
			 lm[4], lm[5], sm[0], sm[1], sm[2], sm[3], sm[4], sm[5]);
		return -1;
	}
	return 0;
}

static void *net_type_create(struct vm *vm, const void *cfg, unsigned index)
{
	return virtio_plug(vm, virtio_net_create(&vm->mem, cfg, index));
}

const struct device_type virtio_net_type = {
	.name = "virtio-net",
	.option = "net",
	.short_opt = 'n',
	.arg = NET_USAGE,
	.help = "virtio-net card on a host tap device (vhost-net when usable), or linked to other VMs "
		"at a unix socket (socket=) or a named link (link=); repeatable",
	.max = 8,
	.config_size = sizeof(struct net_config),
	.parse = net_parse,
	.save = net_cfg_save,
	.load = net_cfg_load,
	.match = net_cfg_match,
	.create = net_type_create,
};
