#include "vsock_uds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/loop.h"
#include "../core/unixsock.h"
#include "../core/util.h"
#include "vsock.h"

#define RST_MAX       64 /* RSTs owed for packets of no connection; more are dropped */
#define CONN_LINE_MAX 32 /* "CONNECT 4294967295\n" with room to spare */
#define TX_BATCH      512
#define BUF_CAP       (VSOCK_UDS_BUF_ALLOC + CONN_LINE_MAX)

/* A packet header, host byte order. */
struct vhdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

enum cstate {
	C_FREE,
	C_LINE,        /* host-initiated: reading "CONNECT <port>\n" */
	C_REQUEST,     /* host-initiated: REQUEST owed or sent, waiting for RESPONSE */
	C_ESTABLISHED, /* both ways */
};

struct uconn {
	struct vsock_uds *u;
	enum cstate state;
	int fd;
	bool watched;    /* on the loop (not after a hang-up) */
	uint32_t events; /* what the loop watches for */
	uint32_t host_port, guest_port;
	/* Packets owed to the guest, sent before data. */
	bool send_request, send_response, send_credit;
	uint32_t send_shut; /* SHUTDOWN flags owed (0: none) */
	/* The guest's credit. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	/* Ours: bytes of the guest the socket took, and the count the guest last saw. */
	uint32_t fwd_cnt, fwd_sent;
	uint8_t *buf; /* what the socket did not take yet (BUF_CAP bytes) */
	uint32_t boff, blen;
	uint32_t uncounted; /* leading bytes of buf that are ours ("OK <port>\n"), not the guest's */
	bool guest_shut_send, guest_shut_rcv; /* the guest's SHUTDOWN flags */
	bool readable;                        /* epoll said so; cleared on EAGAIN */
	bool host_eof;                        /* the socket's read side ended (SHUTDOWN SEND owed or sent) */
	bool host_hup;     /* the host side closed both ways (or failed): no longer on the loop */
	bool wr_shut;      /* shutdown(SHUT_WR) done */
	uint64_t deadline; /* C_LINE, C_REQUEST: now_ns() by which the state must end (0: none) */
	char line[CONN_LINE_MAX];
	unsigned linelen;
};

struct vsock_uds {
	struct virtio_dev *vd;
	uint32_t cid;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd; /* the listener, -1 when released */
	struct stat lst;
	int wake;                 /* eventfd: the worker has connections to drop or a batch to finish */
	struct loop_timer *timer; /* the earliest deadline of a connection in C_LINE or C_REQUEST */
	uint64_t timer_at;        /* what it is armed for (0: disarmed) */
	bool drop_pending;
	bool listen_paused; /* accept failed (out of fds): listen again when a connection ends */
	bool rx_starved;    /* the driver gave no rx buffer: wait for its kick */
	uint32_t next_port;
	unsigned rr; /* where the next rx round starts */
	struct {
		uint32_t host_port, guest_port;
	} rst[RST_MAX];
	unsigned nrst;
	struct uconn conns[VSOCK_UDS_MAX_CONNS];
	struct virtq_chain chain;
	struct iovec sl[VIRTQ_MAX_SEGS];
};

static void on_conn(struct loop *l, int fd, uint32_t events, void *opaque);

static bool running(const struct vsock_uds *u)
{
	const struct virtio_dev *vd = u->vd;

	return vd->activated && !vd->broken && u->lfd >= 0;
}

/* ---- headers and iovecs ------------------------------------------------------------------- */

static void hdr_get(const uint8_t *b, struct vhdr *h)
{
	h->src_cid = get_le64(b);
	h->dst_cid = get_le64(b + 8);
	h->src_port = get_le32(b + 16);
	h->dst_port = get_le32(b + 20);
	h->len = get_le32(b + 24);
	h->type = get_le16(b + 28);
	h->op = get_le16(b + 30);
	h->flags = get_le32(b + 32);
	h->buf_alloc = get_le32(b + 36);
	h->fwd_cnt = get_le32(b + 40);
}

static void hdr_put(uint8_t *b, const struct vhdr *h)
{
	put_le64(b, h->src_cid);
	put_le64(b + 8, h->dst_cid);
	put_le32(b + 16, h->src_port);
	put_le32(b + 20, h->dst_port);
	put_le32(b + 24, h->len);
	put_le16(b + 28, h->type);
	put_le16(b + 30, h->op);
	put_le32(b + 32, h->flags);
	put_le32(b + 36, h->buf_alloc);
	put_le32(b + 40, h->fwd_cnt);
}

/* [off, off+len) of the n segments as at most VIRTQ_MAX_SEGS iovecs in out; how many. */
static unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len, struct iovec *out)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len && k < VIRTQ_MAX_SEGS; i++) {
		size_t seg = iov[i].iov_len, take;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		take = seg - off;
		if (take > len)
			take = len;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k++].iov_len = take;
		len -= take;
		off = 0;
	}
	return k;
}

/* ---- connections -------------------------------------------------------------------------- */

static unsigned conn_count(const struct vsock_uds *u)
{
	unsigned n = 0;

	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++)
		n += u->conns[i].state != C_FREE;
	return n;
}

unsigned vsock_uds_conns(const struct vsock_uds *u)
{
	return conn_count(u);
}

static struct uconn *conn_find(struct vsock_uds *u, uint32_t host_port, uint32_t guest_port)
{
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++) {
		struct uconn *c = &u->conns[i];

		if (c->state >= C_REQUEST && c->host_port == host_port && c->guest_port == guest_port)
			return c;
	}
	return NULL;
}

static struct uconn *conn_new(struct vsock_uds *u, int fd)
{
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++) {
		struct uconn *c = &u->conns[i];

		if (c->state != C_FREE)
			continue;
		memset(c, 0, sizeof(*c));
		c->u = u;
		c->fd = fd;
		if (loop_add(u->vd->loop, fd, 0, on_conn, c) < 0) {
			log_debug("%s: loop_add: %s", u->vd->name, strerror(errno));
			return NULL;
		}
		c->watched = true;
		return c;
	}
	return NULL;
}

static void conn_free(struct uconn *c)
{
	if (c->state == C_FREE)
		return;
	if (c->watched)
		loop_del(c->u->vd->loop, c->fd);
	close(c->fd);
	free(c->buf);
	if (c->u->listen_paused && c->u->lfd >= 0 && loop_mod(c->u->vd->loop, c->u->lfd, EPOLLIN) == 0)
		c->u->listen_paused = false;
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void queue_rst(struct vsock_uds *u, uint32_t host_port, uint32_t guest_port)
{
	if (u->nrst == RST_MAX)
		return; /* the guest's connect or close times out instead */
	u->rst[u->nrst].host_port = host_port;
	u->rst[u->nrst].guest_port = guest_port;
	u->nrst++;
}

/* Reset a connection: the guest is told, the unix socket closed. */
static void conn_rst(struct uconn *c)
{
	if (c->state >= C_REQUEST)
		queue_rst(c->u, c->host_port, c->guest_port);
	conn_free(c);
}

static uint32_t peer_credit(const struct uconn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

/* The socket took n more bytes of the guest's: credit goes back to it in a header soon. */
static void consumed(struct uconn *c, uint32_t n)
{
	c->fwd_cnt += n;
	if (c->fwd_cnt - c->fwd_sent >= VSOCK_UDS_BUF_ALLOC / 4)
		c->send_credit = true;
}

/* Both sides said they are done: the guest's SHUTDOWN with both flags, once its data is out. */
static bool conn_finish(struct uconn *c)
{
	if (c->guest_shut_send && c->guest_shut_rcv && !c->blen) {
		conn_rst(c);
		return true;
	}
	return false;
}

/* Write buffered bytes to the socket. -1 when the connection was reset. */
static int conn_flush(struct uconn *c)
{
	while (c->blen) {
		ssize_t w = write(c->fd, c->buf + c->boff, c->blen);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w <= 0) {
			conn_rst(c);
			return -1;
		}
		uint32_t n = (uint32_t)w, ours = n < c->uncounted ? n : c->uncounted;

		c->boff += n;
		c->blen -= n;
		c->uncounted -= ours;
		if (n > ours)
			consumed(c, n - ours);
	}
	c->boff = 0;
	if (conn_finish(c))
		return -1;
	if (c->guest_shut_send && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	return 0;
}

/* Append to the buffer (the credit we gave bounds it). -1 when it would overflow. */
static int conn_buffer(struct uconn *c, const struct iovec *iov, unsigned n, size_t len)
{
	if (len > BUF_CAP - c->blen)
		return -1;
	if (!c->buf && !(c->buf = malloc(BUF_CAP)))
		return -1;
	if (c->boff + c->blen + len > BUF_CAP) {
		memmove(c->buf, c->buf + c->boff, c->blen);
		c->boff = 0;
	}
	for (unsigned i = 0; i < n; i++) {
		memcpy(c->buf + c->boff + c->blen, iov[i].iov_base, iov[i].iov_len);
		c->blen += (uint32_t)iov[i].iov_len;
	}
	return 0;
}

/* ---- the guest's packets (tx) ------------------------------------------------------------- */

/* A guest REQUEST to the host's port: connect to PATH_<port>. */
static void guest_connect(struct vsock_uds *u, const struct vhdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct uconn *c;
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", u->path, h->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path) || conn_count(u) >= VSOCK_UDS_MAX_CONNS) {
		queue_rst(u, h->dst_port, h->src_port);
		return;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || !(c = conn_new(u, fd))) {
		if (fd >= 0)
			close(fd);
		queue_rst(u, h->dst_port, h->src_port); /* nobody listens there: refused */
		return;
	}
	c->state = C_ESTABLISHED;
	c->host_port = h->dst_port;
	c->guest_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->send_response = true;
}

static void guest_rw(struct uconn *c, const struct virtq_chain *ch, uint32_t len)
{
	struct vsock_uds *u = c->u;
	unsigned n;
	ssize_t w = 0;
	size_t done;

	if (c->state != C_ESTABLISHED || c->guest_shut_send ||
	    (uint64_t)(c->blen - c->uncounted) + len > VSOCK_UDS_BUF_ALLOC) {
		conn_rst(c); /* data before the connection, after its end, or beyond our credit */
		return;
	}
	if (!len)
		return;
	n = iov_slice(ch->iov, ch->n_out, VSOCK_HDR_LEN, len, u->sl);
	if (!c->blen && !c->host_hup) {
		do
			w = writev(c->fd, u->sl, (int)n);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN) {
			conn_rst(c); /* the host side is gone */
			return;
		}
		if (w < 0)
			w = 0;
		consumed(c, (uint32_t)w);
	} else if (c->host_hup) {
		conn_rst(c);
		return;
	}
	done = (size_t)w;
	if (done < len) {
		n = iov_slice(ch->iov, ch->n_out, VSOCK_HDR_LEN + done, len - done, u->sl);
		if (conn_buffer(c, u->sl, n, len - done) < 0)
			conn_rst(c);
	}
}

static void guest_shutdown(struct uconn *c, uint32_t flags)
{
	if (c->state != C_ESTABLISHED) {
		conn_rst(c);
		return;
	}
	c->guest_shut_send |= !!(flags & VSOCK_SHUTDOWN_SEND);
	c->guest_shut_rcv |= !!(flags & VSOCK_SHUTDOWN_RCV);
	conn_flush(c); /* shuts the socket's write side, or ends the connection, once drained */
}

static void guest_response(struct uconn *c)
{
	char ok[CONN_LINE_MAX];
	struct iovec iov;
	int n;

	if (c->state != C_REQUEST || c->send_request) {
		conn_rst(c);
		return;
	}
	c->state = C_ESTABLISHED;
	c->deadline = 0;
	n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
	iov.iov_base = ok;
	iov.iov_len = (size_t)n;
	/* The line is not the guest's data: it takes no credit (boff/blen only, no consumed()). */
	if (conn_buffer(c, &iov, 1, (size_t)n) < 0) {
		conn_rst(c);
		return;
	}
	c->uncounted = (uint32_t)n;
	conn_flush(c);
}

static void handle_pkt(struct vsock_uds *u, const struct virtq_chain *ch)
{
	uint8_t raw[VSOCK_HDR_LEN];
	struct vhdr h;
	struct uconn *c;

	if (ch->out_len < VSOCK_HDR_LEN || virtq_chain_read(ch, 0, raw, sizeof(raw)) != sizeof(raw))
		return; /* no header: dropped */
	hdr_get(raw, &h);
	if (h.len > ch->out_len - VSOCK_HDR_LEN || h.src_cid != u->cid || h.dst_cid != VSOCK_HOST_CID ||
	    h.src_port == UINT32_MAX || h.dst_port == UINT32_MAX)
		return; /* a length beyond the chain, not this guest to the host, port "any": dropped */
	c = conn_find(u, h.dst_port, h.src_port);
	if (h.op == VSOCK_OP_RST) {
		if (c)
			conn_free(c); /* never answer an RST */
		return;
	}
	if (h.type != VSOCK_TYPE_STREAM || h.op < VSOCK_OP_REQUEST || h.op > VSOCK_OP_CREDIT_REQUEST ||
	    h.len > VSOCK_UDS_MAX_PKT || (h.len && h.op != VSOCK_OP_RW)) {
		if (c)
			conn_rst(c);
		else
			queue_rst(u, h.dst_port, h.src_port);
		return;
	}
	if (!c) {
		if (h.op == VSOCK_OP_REQUEST)
			guest_connect(u, &h);
		else
			queue_rst(u, h.dst_port, h.src_port);
		return;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VSOCK_OP_REQUEST:
		conn_rst(c); /* a second one for a connection that exists */
		break;
	case VSOCK_OP_RESPONSE:
		guest_response(c);
		break;
	case VSOCK_OP_RW:
		guest_rw(c, ch, h.len);
		break;
	case VSOCK_OP_SHUTDOWN:
		guest_shutdown(c, h.flags);
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->send_credit = true;
		break;
	default: /* CREDIT_UPDATE: the header said it all */
		break;
	}
}

/* Take the guest's packets. true when chains were used. */
static bool do_tx(struct vsock_uds *u)
{
	struct virtio_dev *vd = u->vd;
	struct virtq *q = &vd->vqs[VIRTIO_VSOCK_TXQ];
	bool used = false;
	int r;

	if (!q->enabled)
		return false;
	for (unsigned n = 0;; n++) {
		if (n == TX_BATCH) {
			vsock_uds_wake(u); /* a guest that refills as fast as we take: others' turn */
			break;
		}
		r = virtq_pop(q, &u->chain);
		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, "malformed tx chain");
			return used;
		}
		if (r == VIRTQ_EMPTY) {
			if (virtq_set_notification(q, true))
				continue;
			break;
		}
		handle_pkt(u, &u->chain);
		virtq_push(q, u->chain.head, 0);
		used = true;
	}
	return used;
}

/* ---- packets to the guest (rx) ------------------------------------------------------------ */

/* What goes into the next rx buffer. */
struct out {
	struct uconn *c; /* NULL: an RST owed for no connection */
	uint16_t op;
	uint32_t flags;
	bool data; /* read the socket into the payload */
};

static bool conn_may_read(const struct uconn *c)
{
	return c->state == C_ESTABLISHED && !c->host_eof && !c->guest_shut_rcv && peer_credit(c) > 0;
}

static bool conn_next(struct uconn *c, struct out *o)
{
	o->c = c;
	o->flags = 0;
	o->data = false;
	if (c->send_request) {
		o->op = VSOCK_OP_REQUEST;
		return true;
	}
	if (c->state != C_ESTABLISHED)
		return false;
	if (c->send_response) {
		o->op = VSOCK_OP_RESPONSE;
		return true;
	}
	if (c->readable && conn_may_read(c)) {
		o->op = VSOCK_OP_RW;
		o->data = true;
		return true;
	}
	if (c->send_shut) {
		o->op = VSOCK_OP_SHUTDOWN;
		o->flags = c->send_shut;
		return true;
	}
	if (c->send_credit) {
		o->op = VSOCK_OP_CREDIT_UPDATE;
		return true;
	}
	return false;
}

static bool next_out(struct vsock_uds *u, struct out *o)
{
	if (u->nrst) {
		o->c = NULL;
		o->op = VSOCK_OP_RST;
		o->flags = 0;
		o->data = false;
		return true;
	}
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++) {
		struct uconn *c = &u->conns[(u->rr + i) % VSOCK_UDS_MAX_CONNS];

		if (c->state != C_FREE && conn_next(c, o)) {
			u->rr = (u->rr + i + 1) % VSOCK_UDS_MAX_CONNS;
			return true;
		}
	}
	return false;
}

/* The host side reached the end of its data: tell the guest (both ways once it hung up). */
static void host_ended(struct uconn *c)
{
	c->host_eof = true;
	c->send_shut = VSOCK_SHUTDOWN_SEND | (c->host_hup ? VSOCK_SHUTDOWN_RCV : 0);
}

/* Fill one rx chain with o. 1 used it, 0 put it back (nothing to read after all), -1 broke. */
static int fill_one(struct vsock_uds *u, const struct out *o)
{
	struct virtq *q = &u->vd->vqs[VIRTIO_VSOCK_RXQ];
	struct virtq_chain *ch = &u->chain;
	uint8_t raw[VSOCK_HDR_LEN];
	struct uconn *c = o->c;
	struct vhdr h = {
		.src_cid = VSOCK_HOST_CID, .dst_cid = u->cid, .type = VSOCK_TYPE_STREAM, .op = o->op
	};
	uint32_t len = 0;

	if (ch->in_len < VSOCK_HDR_LEN) {
		virtio_set_broken(u->vd, "rx buffer smaller than a packet header");
		return -1;
	}
	if (!c) {
		h.src_port = u->rst[0].host_port;
		h.dst_port = u->rst[0].guest_port;
		memmove(&u->rst[0], &u->rst[1], sizeof(u->rst[0]) * (u->nrst - 1));
		u->nrst--;
	} else {
		h.src_port = c->host_port;
		h.dst_port = c->guest_port;
		h.flags = o->flags;
		h.buf_alloc = VSOCK_UDS_BUF_ALLOC;
		h.fwd_cnt = c->fwd_cnt;
	}
	if (o->data) {
		uint64_t room = ch->in_len - VSOCK_HDR_LEN, want = peer_credit(c);
		unsigned n;
		ssize_t r;

		if (want > room)
			want = room;
		if (want > VSOCK_UDS_MAX_PKT)
			want = VSOCK_UDS_MAX_PKT;
		n = iov_slice(&ch->iov[ch->n_out], ch->n_in, VSOCK_HDR_LEN, want, u->sl);
		do
			r = readv(c->fd, u->sl, (int)n);
		while (r < 0 && errno == EINTR);
		if (r < 0 && errno == EAGAIN) {
			c->readable = false;
			return 0;
		}
		if (r < 0) {
			conn_rst(c);
			return 0; /* the RST goes in this buffer next round */
		}
		if (r == 0) {
			host_ended(c);
			h.op = VSOCK_OP_SHUTDOWN;
			h.flags = c->send_shut;
			c->send_shut = 0;
		} else {
			len = (uint32_t)r;
			c->tx_cnt += len;
		}
	} else if (c) {
		if (o->op == VSOCK_OP_REQUEST)
			c->send_request = false;
		else if (o->op == VSOCK_OP_RESPONSE)
			c->send_response = false;
		else if (o->op == VSOCK_OP_SHUTDOWN)
			c->send_shut = 0;
	}
	if (c) {
		c->send_credit = false; /* every header carries fwd_cnt */
		c->fwd_sent = c->fwd_cnt;
	}
	h.len = len;
	hdr_put(raw, &h);
	virtq_chain_write(ch, 0, raw, sizeof(raw));
	virtq_chain_mark_written(q, ch);
	virtq_push(q, ch->head, VSOCK_HDR_LEN + len);
	return 1;
}

/* Fill rx buffers while there is something to send. true when chains were used. */
static bool do_rx(struct vsock_uds *u)
{
	struct virtq *q = &u->vd->vqs[VIRTIO_VSOCK_RXQ];
	bool used = false;
	struct out o;
	int r;

	if (!q->enabled)
		return false;
	while (next_out(u, &o)) {
		r = virtq_pop(q, &u->chain);
		if (r == VIRTQ_ERR) {
			virtio_set_broken(u->vd, "malformed rx chain");
			return used;
		}
		if (r == VIRTQ_EMPTY) {
			if (virtq_set_notification(q, true))
				continue;
			u->rx_starved = true; /* the driver's kick brings us back */
			break;
		}
		r = fill_one(u, &o);
		if (r < 0)
			return used;
		if (r == 0)
			virtq_unpop(q);
		else
			used = true;
	}
	return used;
}

/* Watch each socket for what can move now. */
static void update_watches(struct vsock_uds *u)
{
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++) {
		struct uconn *c = &u->conns[i];
		uint32_t want = 0;

		if (c->state == C_FREE || !c->watched)
			continue;
		if (c->state == C_LINE)
			want = EPOLLIN;
		else if (c->state == C_ESTABLISHED) {
			if (!c->readable && conn_may_read(c) && !u->rx_starved)
				want |= EPOLLIN;
			if (c->blen)
				want |= EPOLLOUT;
		}
		if (want != c->events && loop_mod(u->vd->loop, c->fd, want) == 0)
			c->events = want;
	}
}

/* c's handshake deadline: while it is in C_LINE or C_REQUEST, else 0. */
static uint64_t handshake_deadline(const struct uconn *c)
{
	return c->state == C_LINE || c->state == C_REQUEST ? c->deadline : 0;
}

/* Arm the timer for the earliest deadline of a handshake, or disarm it when there is none. */
static void arm_timer(struct vsock_uds *u)
{
	uint64_t at = 0;

	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++) {
		uint64_t d = handshake_deadline(&u->conns[i]);

		if (d && (!at || d < at))
			at = d;
	}
	if (at == u->timer_at)
		return;
	if (at) {
		struct timespec ts = { .tv_sec = (time_t)(at / 1000000000u),
				       .tv_nsec = (long)(at % 1000000000u) };

		if (loop_timer_set(u->timer, &ts) < 0) {
			log_debug("%s: timer: %s", u->vd->name, strerror(errno));
			return; /* the next event tries again */
		}
	} else if (loop_timer_set(u->timer, NULL) < 0) {
		log_debug("%s: timer: %s", u->vd->name, strerror(errno));
	}
	u->timer_at = at;
}

static void drop_now(struct vsock_uds *u)
{
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++)
		conn_free(&u->conns[i]);
	u->nrst = 0;
	u->rx_starved = false;
	u->drop_pending = false;
	arm_timer(u);
}

/* Move everything that can move. */
static void pump(struct vsock_uds *u)
{
	bool tx, rx;

	if (u->drop_pending)
		drop_now(u);
	if (!running(u)) {
		arm_timer(u);
		return;
	}
	tx = do_tx(u);
	rx = do_rx(u);
	if (tx)
		virtio_notify_used(u->vd, VIRTIO_VSOCK_TXQ);
	if (rx)
		virtio_notify_used(u->vd, VIRTIO_VSOCK_RXQ);
	update_watches(u);
	arm_timer(u);
}

void vsock_uds_kick(struct vsock_uds *u)
{
	u->rx_starved = false;
	pump(u);
}

void vsock_uds_wake(struct vsock_uds *u)
{
	uint64_t one = 1;

	if (write(u->wake, &one, sizeof(one)) < 0)
		log_debug("%s: wake: %s", u->vd->name, strerror(errno));
}

void vsock_uds_drop_all(struct vsock_uds *u)
{
	u->drop_pending = true;
	vsock_uds_wake(u);
}

/* ---- the unix sockets --------------------------------------------------------------------- */

static uint32_t alloc_port(struct vsock_uds *u)
{
	for (;;) {
		uint32_t p = u->next_port;
		bool used = false;

		u->next_port = p == UINT32_MAX - 1 ? VSOCK_UDS_PORT_BASE : p + 1;
		for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++)
			used |= u->conns[i].state >= C_REQUEST && u->conns[i].host_port == p;
		if (!used)
			return p; /* at most VSOCK_UDS_MAX_CONNS ports are taken */
	}
}

/* Read "CONNECT <port>\n" a byte at a time: what follows it is the stream's. */
static void read_line(struct uconn *c)
{
	struct vsock_uds *u = c->u;
	char *end;
	unsigned long port;

	for (;;) {
		char ch;
		ssize_t r = read(c->fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0 || c->linelen == CONN_LINE_MAX - 1) {
			conn_free(c); /* closed, failed, or no line */
			return;
		}
		if (ch == '\n')
			break;
		c->line[c->linelen++] = ch;
	}
	c->line[c->linelen] = 0;
	if (c->linelen > 2 && c->line[c->linelen - 1] == '\r')
		c->line[--c->linelen] = 0;
	errno = 0;
	if (strncmp(c->line, "CONNECT ", 8) || !(c->line[8] >= '0' && c->line[8] <= '9') ||
	    (port = strtoul(c->line + 8, &end, 10), errno || *end || port > UINT32_MAX)) {
		log_debug("%s: %s: not a CONNECT line: '%s'", u->vd->name, u->path, c->line);
		conn_free(c);
		return;
	}
	c->guest_port = (uint32_t)port;
	c->host_port = alloc_port(u);
	c->state = C_REQUEST;
	c->send_request = true;
	c->deadline = now_ns() + VSOCK_UDS_HANDSHAKE_MS * 1000000ull; /* the guest's turn */
}

static void on_conn(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct uconn *c = opaque;
	struct vsock_uds *u = c->u;

	pthread_mutex_lock(&u->vd->lock);
	if (u->drop_pending)
		drop_now(u);
	if (c->state == C_FREE || c->fd != fd || !c->watched)
		goto out;
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* Always reported, watched or not: off the loop; what is left to read is read without it. */
		loop_del(l, fd);
		c->watched = false;
		c->host_hup = true;
		c->readable = true;
		if (c->state != C_ESTABLISHED) {
			conn_rst(c);
			goto out;
		}
		if (c->host_eof)
			c->send_shut |= VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
	}
	if (c->state == C_LINE) {
		if (events & EPOLLIN)
			read_line(c);
	} else if (c->state == C_ESTABLISHED) {
		if (events & EPOLLIN)
			c->readable = true;
		if (events & EPOLLOUT)
			conn_flush(c);
	}
out:
	pump(u);
	pthread_mutex_unlock(&u->vd->lock);
}

static void on_listen(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vsock_uds *u = opaque;
	struct uconn *c;
	long uid;
	int cfd;

	pthread_mutex_lock(&u->vd->lock);
	if (u->drop_pending)
		drop_now(u);
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) {
		/* Out of fds: the pending connection would wake the loop again and again. */
		if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
		    loop_mod(l, fd, 0) == 0) {
			log_warn("%s: %s: accept: %s; new connections wait until one ends", u->vd->name,
				 u->path, strerror(errno));
			u->listen_paused = true;
		}
		goto out;
	}
	if (!unixsock_peer_allowed(cfd, &uid)) {
		log_warn("%s: %s: refused a connection from uid %ld (only uid %ld and root may connect)",
			 u->vd->name, u->path, uid, (long)geteuid());
		close(cfd);
		goto out;
	}
	if (!running(u) || conn_count(u) >= VSOCK_UDS_MAX_CONNS || !(c = conn_new(u, cfd))) {
		close(cfd); /* no driver, or too many connections: refused */
		goto out;
	}
	c->state = C_LINE;
	c->guest_port = 0;
	c->deadline = now_ns() + VSOCK_UDS_HANDSHAKE_MS * 1000000ull;
out:
	pump(u);
	pthread_mutex_unlock(&u->vd->lock);
}

/* A handshake ran out of time: a host client that sent no complete CONNECT line is closed; one
 * whose guest never answered the REQUEST is closed and the guest gets an RST (a RESPONSE of its
 * that is still coming then meets no connection and is answered with an RST too). */
static void on_timer(void *opaque)
{
	struct vsock_uds *u = opaque;
	uint64_t now = now_ns();

	pthread_mutex_lock(&u->vd->lock);
	if (u->drop_pending)
		drop_now(u);
	u->timer_at = 0; /* it fired (or was re-armed meanwhile: arm_timer sets it again) */
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++) {
		struct uconn *c = &u->conns[i];
		uint64_t d = handshake_deadline(c);

		if (!d || d > now)
			continue;
		log_debug("%s: %s: %s after %u ms; closed", u->vd->name, u->path,
			  c->state == C_LINE ? "no CONNECT line" : "the guest did not accept",
			  VSOCK_UDS_HANDSHAKE_MS);
		conn_rst(c);
	}
	pump(u);
	pthread_mutex_unlock(&u->vd->lock);
}

static void on_wake(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vsock_uds *u = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("%s: wake: %s", u->vd->name, strerror(errno));
	pthread_mutex_lock(&u->vd->lock);
	pump(u);
	pthread_mutex_unlock(&u->vd->lock);
}

static int uds_listen(struct vsock_uds *u)
{
	u->lfd = unixsock_listen(u->path, 16, true, "vsock socket", &u->lst);
	if (u->lfd < 0)
		return -1;
	if (loop_add(u->vd->loop, u->lfd, EPOLLIN, on_listen, u) < 0) {
		log_error("%s: %s: loop_add: %s", u->vd->name, u->path, strerror(errno));
		close(u->lfd);
		unixsock_unlink(u->path, &u->lst);
		u->lfd = -1;
		return -1;
	}
	return 0;
}

static void uds_unlisten(struct vsock_uds *u)
{
	if (u->lfd < 0)
		return;
	loop_del(u->vd->loop, u->lfd);
	close(u->lfd);
	unixsock_unlink(u->path, &u->lst);
	u->lfd = -1;
	u->listen_paused = false;
}

struct vsock_uds *vsock_uds_create(struct virtio_dev *vd, uint32_t cid, const char *path)
{
	struct vsock_uds *u;

	if (strlen(path) + sizeof("_4294967295") > sizeof(u->path)) {
		log_error("--vsock uds=%s: path longer than %zu bytes (the guest's ports add _<port>); give "
			  "a shorter path",
			  path, sizeof(u->path) - sizeof("_4294967295"));
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		log_error("%s: out of memory", vd->name);
		return NULL;
	}
	u->vd = vd;
	u->cid = cid;
	u->next_port = VSOCK_UDS_PORT_BASE;
	memcpy(u->path, path, strlen(path) + 1);
	for (unsigned i = 0; i < VSOCK_UDS_MAX_CONNS; i++)
		u->conns[i].fd = -1;
	u->lfd = -1;
	u->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->wake < 0 || loop_add(vd->loop, u->wake, EPOLLIN, on_wake, u) < 0) {
		log_error("%s: eventfd: %s", vd->name, strerror(errno));
		if (u->wake >= 0)
			close(u->wake);
		free(u);
		return NULL;
	}
	u->timer = loop_timer_new(vd->loop, CLOCK_MONOTONIC, on_timer, u);
	if (!u->timer)
		log_error("%s: timerfd: %s; raise the open file limit", vd->name, strerror(errno));
	if (!u->timer || uds_listen(u) < 0) {
		loop_timer_free(u->timer);
		loop_del(vd->loop, u->wake);
		close(u->wake);
		free(u);
		return NULL;
	}
	return u;
}

int vsock_uds_release(struct vsock_uds *u)
{
	drop_now(u);
	uds_unlisten(u);
	return 0;
}

int vsock_uds_reacquire(struct vsock_uds *u)
{
	if (u->lfd >= 0)
		return 0;
	drop_now(u);
	return uds_listen(u);
}

void vsock_uds_destroy(struct vsock_uds *u)
{
	if (!u)
		return;
	drop_now(u);
	uds_unlisten(u);
	loop_timer_free(u->timer);
	loop_del(u->vd->loop, u->wake);
	close(u->wake);
	free(u);
}
