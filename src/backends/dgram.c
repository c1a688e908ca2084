#include "dgram.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/unixsock.h"
#include "../core/util.h"

/* Socket buffers of each port: about 140 full-size frames in flight. */
#define DGRAM_SOCKBUF (4 << 20)
/* How long a unicast to a member whose socket is full may wait for room (ms): the member's
 * own worker drains it. The device's end never waits (this thread is its reader). */
#define DGRAM_SEND_WAIT_MS 20

/* ---- the learning table ------------------------------------------------------------------ */

static bool mac_unicast(const uint8_t *mac)
{
	static const uint8_t zero[6];

	return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

static int fdb_find(const struct fdb *f, const uint8_t mac[6])
{
	for (unsigned i = 0; i < f->n; i++)
		if (!memcmp(f->e[i].mac, mac, 6))
			return (int)i;
	return -1;
}

void fdb_learn(struct fdb *f, const uint8_t mac[6], int port, uint64_t now)
{
	int i;

	if (!mac_unicast(mac) || port < 0)
		return;
	i = fdb_find(f, mac);
	if (i < 0) {
		if (f->n < DGRAM_FDB_SIZE) {
			i = (int)f->n++;
		} else {
			i = 0; /* full: the least recently seen goes */
			for (unsigned j = 1; j < f->n; j++)
				if (f->e[j].seen < f->e[i].seen)
					i = (int)j;
		}
		memcpy(f->e[i].mac, mac, 6);
	}
	f->e[i].port = (int16_t)port;
	f->e[i].seen = now;
}

int fdb_lookup(const struct fdb *f, const uint8_t mac[6], uint64_t now)
{
	int i;

	if (!mac_unicast(mac))
		return -1;
	i = fdb_find(f, mac);
	if (i < 0 || now - f->e[i].seen > DGRAM_FDB_AGE)
		return -1;
	return f->e[i].port;
}

void fdb_forget_port(struct fdb *f, int port)
{
	for (unsigned i = 0; i < f->n;) {
		if (f->e[i].port == port)
			f->e[i] = f->e[--f->n];
		else
			i++;
	}
}

const char *dgram_frame_bad(const uint8_t *frame, size_t len)
{
	if (len < DGRAM_ETH_HLEN)
		return "shorter than an Ethernet header";
	if (len > DGRAM_MAX_FRAME)
		return "longer than the largest frame";
	if (!mac_unicast(frame + 6))
		return "source MAC not unicast";
	return NULL;
}

/* ---- options ----------------------------------------------------------------------------- */

void dgram_default_dir(char *buf, size_t len)
{
	const char *e = getenv("KVMBOX_LINK_DIR");

	if (e && *e)
		snprintf(buf, len, "%s", e);
	else if ((e = getenv("XDG_RUNTIME_DIR")) && *e)
		snprintf(buf, len, "%s/kvmbox/links", e);
	else if (geteuid() == 0)
		snprintf(buf, len, "/run/kvmbox/links");
	else
		snprintf(buf, len, "/tmp/kvmbox-%u/links", (unsigned)geteuid());
}

bool dgram_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int dgram_link_path(const char *dir, const char *name, char *path, size_t len)
{
	struct sockaddr_un sa;
	int n;

	if (!dgram_name_ok(name)) {
		log_error("--net link=%s: a link name is 1 to 64 of A-Z a-z 0-9 . _ - (not starting with .)",
			  name);
		return -1;
	}
	if (!dir[0] || dir[0] != '/') {
		log_error("--net link=%s: link directory '%s' is not an absolute path; give linkdir=/PATH",
			  name, dir);
		return -1;
	}
	n = snprintf(path, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len || (size_t)n + 5 >= sizeof(sa.sun_path)) {
		log_error("--net link=%s: %s/%s is longer than a unix socket path may be (%zu bytes with "
			  "\".lock\"); give a shorter linkdir=",
			  name, dir, name, sizeof(sa.sun_path) - 1);
		return -1;
	}
	return 0;
}

/* ---- the backend ------------------------------------------------------------------------- */

struct dgram {
	char path[108];
	char lockpath[114];
	char who[40]; /* "virtio-net0" */
	struct loop *loop;
	loop_fn cb;
	void *opaque;
	int local;                 /* port 0: the switch's end of the device's socketpair */
	int lfd;                   /* listening: we are the link's switch; else -1 */
	struct stat lst;           /* the socket file we bound (removed when we leave) */
	int port[DGRAM_MAX_PORTS]; /* 1..: members (listener) or the listener (member); -1 free */
	bool joined;
	uint64_t met_at;       /* when meet() last connected or listened (ns) */
	unsigned quick_losses; /* connections the switch closed within a second, in a row */
	bool mkdir_dir;
	struct fdb fdb;
	uint8_t buf[DGRAM_HDR_LEN + DGRAM_MAX_FRAME + 1];
	uint64_t forwarded, dropped;
	unsigned bad_logged;
};

static void set_bufs(int fd)
{
	int v = DGRAM_SOCKBUF;

	/* Capped by net.core.wmem_max/rmem_max: best effort. */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

/* mkdir -p for our own directories: each component made 0700; an existing one must be a
 * directory (a symlink is followed only for components that existed before). */
static int mkdir_p(const char *dir, const char *who)
{
	char p[108];
	size_t n = strlen(dir);

	if (n >= sizeof(p))
		return -1;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		p[i] = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			log_error("%s: link directory %s: mkdir %s: %s", who, dir, p, strerror(errno));
			return -1;
		}
		p[i] = i < n ? '/' : 0;
	}
	return 0;
}

static int add_port(struct dgram *d, int fd)
{
	for (int i = 1; i < DGRAM_MAX_PORTS; i++) {
		if (d->port[i] >= 0)
			continue;
		if (loop_add(d->loop, fd, EPOLLIN, d->cb, d->opaque) < 0) {
			log_error("%s: link %s: cannot poll a member: %s", d->who, d->path, strerror(errno));
			return -1;
		}
		d->port[i] = fd;
		return i;
	}
	return -1;
}

static void drop_port(struct dgram *d, int i)
{
	if (d->port[i] < 0)
		return;
	loop_del(d->loop, d->port[i]);
	close(d->port[i]);
	d->port[i] = -1;
	fdb_forget_port(&d->fdb, i);
}

/* Connect to the listener at path, or become it. 0, or -1 after printing. */
static int meet(struct dgram *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tmo = { .tv_sec = 2 };
	int lock, fd = -1, ret = -1;
	struct stat st;
	mode_t old;

	if (d->mkdir_dir) {
		char dir[108];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", d->path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			if (mkdir_p(dir, d->who) < 0)
				return -1;
		}
	}
	memcpy(sa.sun_path, d->path, strlen(d->path) + 1);
	old = umask(0177);
	lock = open(d->lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	umask(old);
	if (lock < 0) {
		log_error("%s: link %s: cannot open %s: %s", d->who, d->path, d->lockpath, strerror(errno));
		return -1;
	}
	if (flock(lock, LOCK_EX) < 0) {
		log_error("%s: link %s: flock %s: %s", d->who, d->path, d->lockpath, strerror(errno));
		goto out;
	}
	/* Blocking while connecting: a listener whose backlog is full takes us as soon as its
	 * worker accepts (bounded by the send timeout). */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("%s: link %s: socket: %s", d->who, d->path, strerror(errno));
		goto out;
	}
	set_bufs(fd);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		/* A member: its port is the connection to the listener. */
		if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 || add_port(d, fd) < 0) {
			log_error("%s: link %s: cannot use the connection: %s", d->who, d->path,
				  strerror(errno));
			goto out;
		}
		fd = -1;
		log_debug("%s: link %s: joined as a member", d->who, d->path);
		d->met_at = now_ns();
		ret = 0;
		goto out;
	}
	if (errno == ECONNREFUSED) {
		/* A socket file nobody listens on: remove it only if it is a socket of our own. */
		if (lstat(d->path, &st) < 0) {
			log_error("%s: link %s: %s", d->who, d->path, strerror(errno));
			goto out;
		}
		if (!S_ISSOCK(st.st_mode)) {
			log_error("%s: link %s: exists and is not a socket; not touched, give another path",
				  d->who, d->path);
			goto out;
		}
		if (st.st_uid != geteuid()) {
			log_error("%s: link %s: a stale socket of uid %u; not removed (remove it, or give "
				  "another path)",
				  d->who, d->path, (unsigned)st.st_uid);
			goto out;
		}
		if (unlink(d->path) < 0) {
			log_error("%s: link %s: cannot remove the stale socket: %s", d->who, d->path,
				  strerror(errno));
			goto out;
		}
	} else if (errno != ENOENT) {
		log_error("%s: link %s: connect: %s", d->who, d->path, strerror(errno));
		goto out;
	}
	/* Nobody there: listen, 0600 from the first instant. */
	close(fd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_error("%s: link %s: socket: %s", d->who, d->path, strerror(errno));
		goto out;
	}
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0 || lstat(d->path, &d->lst) < 0 || listen(fd, DGRAM_MAX_PORTS) < 0 ||
	    loop_add(d->loop, fd, EPOLLIN, d->cb, d->opaque) < 0) {
		log_error("%s: link %s: cannot listen: %s", d->who, d->path, strerror(errno));
		if (ret == 0)
			unixsock_unlink(d->path, &d->lst);
		ret = -1;
		goto out;
	}
	d->lfd = fd;
	fd = -1;
	log_debug("%s: link %s: listening (the link's switch)", d->who, d->path);
	d->met_at = now_ns();
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	close(lock); /* unlocks */
	return ret;
}

static void leave(struct dgram *d)
{
	for (int i = 1; i < DGRAM_MAX_PORTS; i++)
		drop_port(d, i);
	if (d->lfd >= 0) {
		int lock = open(d->lockpath, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

		/* Under the lock: a newcomer never connects to a socket that is going. */
		if (lock >= 0)
			flock(lock, LOCK_EX);
		loop_del(d->loop, d->lfd);
		close(d->lfd);
		d->lfd = -1;
		unixsock_unlink(d->path, &d->lst);
		if (lock >= 0)
			close(lock);
	}
	d->fdb.n = 0;
	d->joined = false;
}

struct dgram *dgram_open(const char *path, bool mkdir_dir, const char *who, int *dev_fd)
{
	struct dgram *d = calloc(1, sizeof(*d));
	int sp[2];

	if (!d) {
		log_error("%s: out of memory", who);
		return NULL;
	}
	snprintf(d->path, sizeof(d->path), "%s", path);
	snprintf(d->lockpath, sizeof(d->lockpath), "%s.lock", path);
	snprintf(d->who, sizeof(d->who), "%s", who);
	d->lfd = -1;
	d->mkdir_dir = mkdir_dir;
	for (int i = 0; i < DGRAM_MAX_PORTS; i++)
		d->port[i] = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0) {
		log_error("%s: socketpair: %s", who, strerror(errno));
		free(d);
		return NULL;
	}
	set_bufs(sp[0]);
	set_bufs(sp[1]);
	d->local = sp[1];
	*dev_fd = sp[0];
	return d;
}

int dgram_attach(struct dgram *d, struct loop *loop, loop_fn cb, void *opaque)
{
	d->loop = loop;
	d->cb = cb;
	d->opaque = opaque;
	if (loop_add(loop, d->local, EPOLLIN, cb, opaque) < 0) {
		log_error("%s: cannot poll the link: %s", d->who, strerror(errno));
		d->loop = NULL;
		return -1;
	}
	if (meet(d) < 0)
		return -1;
	d->joined = true;
	return 0;
}

void dgram_leave(struct dgram *d)
{
	leave(d);
}

int dgram_join(struct dgram *d)
{
	if (d->joined)
		return 0;
	if (meet(d) < 0)
		return -1;
	d->joined = true;
	return 0;
}

void dgram_close(struct dgram *d)
{
	if (!d)
		return;
	if (d->loop) {
		leave(d);
		loop_del(d->loop, d->local);
	}
	close(d->local);
	free(d);
}

void dgram_counters(const struct dgram *d, uint64_t *forwarded, uint64_t *dropped)
{
	*forwarded = d->forwarded;
	*dropped = d->dropped;
}

static void drop(struct dgram *d, const char *why)
{
	d->dropped++;
	if (d->bad_logged < 10) {
		d->bad_logged++;
		log_debug("%s: link %s: frame dropped (%s), %llu so far", d->who, d->path, why,
			  (unsigned long long)d->dropped);
	}
}

/* The frame in d->buf + DGRAM_HDR_LEN (len bytes) to port i. The device's end gets the zero
 * virtio header in front. A full member may hold us DGRAM_SEND_WAIT_MS when wait. */
static void send_to(struct dgram *d, int i, size_t len, bool wait)
{
	int fd = i == 0 ? d->local : d->port[i];
	const uint8_t *p = i == 0 ? d->buf : d->buf + DGRAM_HDR_LEN;
	size_t n = i == 0 ? len + DGRAM_HDR_LEN : len;
	ssize_t r;

	if (fd < 0)
		return;
	for (;;) {
		r = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r >= 0) {
			d->forwarded++;
			return;
		}
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == ENOBUFS) && wait && i != 0) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			wait = false;
			if (poll(&pf, 1, DGRAM_SEND_WAIT_MS) > 0 && (pf.revents & POLLOUT))
				continue;
		}
		drop(d, errno == EAGAIN ? "no room at the receiver" : strerror(errno));
		return;
	}
}

/* A valid frame (len bytes at d->buf + DGRAM_HDR_LEN) came in on port `in`. */
static void forward(struct dgram *d, int in, size_t len)
{
	const uint8_t *f = d->buf + DGRAM_HDR_LEN;
	uint64_t now = now_ns();
	int out;

	fdb_learn(&d->fdb, f + 6, in, now);
	out = fdb_lookup(&d->fdb, f, now);
	if (out >= 0) {
		if (out != in)
			send_to(d, out, len, true);
		return;
	}
	for (int i = 0; i < DGRAM_MAX_PORTS; i++)
		if (i != in && (i == 0 || d->port[i] >= 0))
			send_to(d, i, len, false);
}

static void on_accept(struct dgram *d)
{
	for (;;) {
		int fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		long uid;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_debug("%s: link %s: accept: %s", d->who, d->path, strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (!unixsock_peer_allowed(fd, &uid)) {
			log_warn("%s: link %s: refused a member of uid %ld", d->who, d->path, uid);
			close(fd);
			continue;
		}
		set_bufs(fd);
		if (add_port(d, fd) < 0) {
			log_warn("%s: link %s: refused a member: %d already", d->who, d->path,
				 DGRAM_MAX_PORTS - 1);
			close(fd);
			continue;
		}
		log_debug("%s: link %s: a member joined", d->who, d->path);
	}
}

/* Port i hung up. A member's listener gone: meet again (one member becomes the switch). */
static void lost(struct dgram *d, int i)
{
	uint64_t now = now_ns();

	drop_port(d, i);
	if (d->lfd >= 0)
		return;
	/* A switch that closes us at once (full, or our user may not join) would have us meet
	 * it again and again: after a few such connections the card stays off the link. */
	if (now - d->met_at < 1000000000ULL) {
		if (++d->quick_losses >= 3) {
			log_error("%s: link %s: the link's switch keeps closing the connection (15 members "
				  "already, or this user may not join); the card stays off the link",
				  d->who, d->path);
			d->joined = false;
			return;
		}
	} else {
		d->quick_losses = 0;
	}
	log_debug("%s: link %s: the switch went away; meeting again", d->who, d->path);
	d->joined = false;
	if (meet(d) == 0)
		d->joined = true;
	else
		log_error("%s: link %s: could not rejoin; the card stays off the link", d->who, d->path);
}

/* Read what port i has (at most a batch). */
static void on_port(struct dgram *d, int i, uint32_t events)
{
	int fd = i == 0 ? d->local : d->port[i];

	for (int k = 0; k < 64; k++) {
		uint8_t *into = i == 0 ? d->buf : d->buf + DGRAM_HDR_LEN;
		size_t cap = i == 0 ? sizeof(d->buf) : sizeof(d->buf) - DGRAM_HDR_LEN;
		ssize_t r = recv(fd, into, cap, MSG_DONTWAIT | MSG_TRUNC);
		const char *why;
		size_t len;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && i != 0)
				lost(d, i);
			return;
		}
		if (r == 0) {
			/* A member's end-of-file (SOCK_SEQPACKET: a zero-length read) */
			if (i != 0)
				lost(d, i);
			return;
		}
		if ((size_t)r > cap) {
			drop(d, "longer than the largest frame");
			continue;
		}
		if (i == 0) {
			if ((size_t)r < DGRAM_HDR_LEN) {
				drop(d, "no header");
				continue;
			}
			len = (size_t)r - DGRAM_HDR_LEN;
		} else {
			len = (size_t)r;
		}
		why = dgram_frame_bad(d->buf + DGRAM_HDR_LEN, len);
		if (why) {
			drop(d, why);
			continue;
		}
		if (!d->joined) {
			d->dropped++;
			continue;
		}
		/* The device's header: offloads are never offered on a link, so all zero. */
		memset(d->buf, 0, DGRAM_HDR_LEN);
		d->buf[10] = 1; /* num_buffers */
		forward(d, i, len);
		if (i != 0 && d->port[i] != fd)
			return;
	}
	(void)events;
}

void dgram_on_fd(struct dgram *d, int fd, uint32_t events)
{
	if (d->lfd >= 0 && fd == d->lfd) {
		on_accept(d);
		return;
	}
	if (fd == d->local) {
		on_port(d, 0, events);
		return;
	}
	for (int i = 1; i < DGRAM_MAX_PORTS; i++) {
		if (d->port[i] == fd) {
			if (events & EPOLLIN)
				on_port(d, i, events);
			else if (events & (EPOLLHUP | EPOLLERR))
				lost(d, i);
			return;
		}
	}
}
