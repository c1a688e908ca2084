/* Link cards (backends/dgram.c, --net socket=/link= in virtio/net.c): the learning table, frame
 * validation, option parsing and records, and the switch itself: ports of one process meeting
 * at a socket in a temporary directory, each on its own loop, driven by loop_run_once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/dgram.h"
#include "cli/options.h"
#include "core/config.h"
#include "core/sandbox.h"
#include "core/loop.h"
#include "core/ser.h"
#include "fakes.h"
#include "virtio/net.h"

#define SEC 1000000000ULL

static const uint8_t mac_a[6] = { 0x52, 0x54, 0x00, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0x00, 0, 0, 0xb };
static const uint8_t mac_c[6] = { 0x52, 0x54, 0x00, 0, 0, 0xc };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* ---- the learning table ----------------------------------------------------------------- */

static void test_fdb_learn_lookup(void **state)
{
	static struct fdb f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(fdb_lookup(&f, mac_a, 0), -1);
	fdb_learn(&f, mac_a, 1, 10);
	fdb_learn(&f, mac_b, 2, 10);
	assert_int_equal(fdb_lookup(&f, mac_a, 20), 1);
	assert_int_equal(fdb_lookup(&f, mac_b, 20), 2);
	assert_int_equal(fdb_lookup(&f, mac_c, 20), -1);
	/* A MAC that moves is followed. */
	fdb_learn(&f, mac_a, 3, 30);
	assert_int_equal(fdb_lookup(&f, mac_a, 40), 3);
	assert_int_equal(f.n, 2);
	/* Multicast/broadcast sources are never learned, never looked up. */
	fdb_learn(&f, bcast, 1, 50);
	assert_int_equal(f.n, 2);
	assert_int_equal(fdb_lookup(&f, bcast, 50), -1);
}

static void test_fdb_age_and_forget(void **state)
{
	static struct fdb f;

	memset(&f, 0, sizeof(f));
	fdb_learn(&f, mac_a, 1, SEC);
	fdb_learn(&f, mac_b, 2, SEC);
	fdb_learn(&f, mac_c, 1, SEC);
	assert_int_equal(fdb_lookup(&f, mac_a, SEC + DGRAM_FDB_AGE), 1);
	assert_int_equal(fdb_lookup(&f, mac_a, SEC + DGRAM_FDB_AGE + 1), -1);
	fdb_forget_port(&f, 1);
	assert_int_equal(f.n, 1);
	assert_int_equal(fdb_lookup(&f, mac_a, SEC), -1);
	assert_int_equal(fdb_lookup(&f, mac_c, SEC), -1);
	assert_int_equal(fdb_lookup(&f, mac_b, SEC), 2);
}

static void test_fdb_full_evicts_oldest(void **state)
{
	static struct fdb f;
	uint8_t m[6] = { 0x52, 0x54, 0, 0, 0, 0 };
	static const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 1 };

	memset(&f, 0, sizeof(f));
	for (unsigned i = 0; i < DGRAM_FDB_SIZE; i++) {
		m[4] = (uint8_t)(i >> 8);
		m[5] = (uint8_t)i;
		fdb_learn(&f, m, 1, 100 + i);
	}
	assert_int_equal(f.n, DGRAM_FDB_SIZE);
	/* Refresh the first: the second is now the oldest. */
	m[4] = 0;
	m[5] = 0;
	fdb_learn(&f, m, 2, 1000);
	fdb_learn(&f, other, 3, 1001);
	assert_int_equal(f.n, DGRAM_FDB_SIZE);
	assert_int_equal(fdb_lookup(&f, m, 1002), 2);
	assert_int_equal(fdb_lookup(&f, other, 1002), 3);
	m[5] = 1;
	assert_int_equal(fdb_lookup(&f, m, 1002), -1);
	m[5] = 2;
	assert_int_equal(fdb_lookup(&f, m, 1002), 1);
}

/* ---- frame validation ------------------------------------------------------------------- */

static void test_frame_bad(void **state)
{
	static uint8_t f[DGRAM_MAX_FRAME + 1];

	memcpy(f, mac_b, 6);
	memcpy(f + 6, mac_a, 6);
	assert_null(dgram_frame_bad(f, DGRAM_ETH_HLEN));
	assert_null(dgram_frame_bad(f, 1514));
	assert_null(dgram_frame_bad(f, DGRAM_MAX_FRAME));
	assert_non_null(dgram_frame_bad(f, 0));
	assert_non_null(dgram_frame_bad(f, DGRAM_ETH_HLEN - 1));
	assert_non_null(dgram_frame_bad(f, DGRAM_MAX_FRAME + 1));
	memcpy(f + 6, bcast, 6); /* a broadcast source */
	assert_non_null(dgram_frame_bad(f, 60));
	memset(f + 6, 0, 6); /* all-zero source */
	assert_non_null(dgram_frame_bad(f, 60));
	/* Any destination is fine. */
	memcpy(f, bcast, 6);
	memcpy(f + 6, mac_a, 6);
	assert_null(dgram_frame_bad(f, 60));
}

/* ---- options and records ---------------------------------------------------------------- */

static int parse(struct net_config *n, const char *arg)
{
	memset(n, 0, sizeof(*n));
	return virtio_net_type.parse(n, arg);
}

static void test_parse_socket(void **state)
{
	struct net_config n;
	char cwd[4096], want[4200];

	assert_int_equal(parse(&n, "socket=/run/a.sock"), 0);
	assert_int_equal(n.backend, NET_BACKEND_SOCKET);
	assert_string_equal(n.path, "/run/a.sock");
	assert_int_equal(n.vhost, NET_VHOST_OFF);
	assert_false(n.mac_set);
	/* A random MAC: locally administered 52:54:00, unicast. */
	assert_int_equal(n.mac[0], 0x52);
	assert_int_equal(n.mac[1], 0x54);
	assert_int_equal(n.mac[2], 0x00);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(parse(&n, "socket=rel.sock,mac=52:54:00:01:02:03"), 0);
	snprintf(want, sizeof(want), "%s/rel.sock", cwd);
	if (strlen(want) < sizeof(n.path) - 5)
		assert_string_equal(n.path, want);
	assert_true(n.mac_set);
	assert_int_equal(n.mac[5], 3);
	assert_int_equal(parse(&n, "socket=/run/a.sock,vhost=off"), 0);
	assert_int_equal(parse(&n, "socket=/run/a.sock,vhost=on"), -1);
	assert_int_equal(parse(&n, "socket="), -1);
	assert_int_equal(
		parse(&n,
		      "socket=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      "aaaaaaaaaaaaaaaaaaaaaa"),
		-1); /* 104 characters: no room for ".lock" */
	assert_int_equal(parse(&n, "socket=/a,tap=tap0"), -1);
	assert_int_equal(parse(&n, "socket=/a,link=l"), -1);
	assert_int_equal(parse(&n, "socket=/a,linkdir=/b"), -1);
	assert_int_equal(parse(&n, "mac=52:54:00:01:02:03"), -1);
	/* tap= unchanged. */
	assert_int_equal(parse(&n, "tap=tap0"), 0);
	assert_int_equal(n.backend, NET_BACKEND_TAP);
	assert_string_equal(n.tap, "tap0");
}

static void test_parse_link(void **state)
{
	struct net_config n;
	char want[128];

	assert_int_equal(parse(&n, "link=lan0,linkdir=/srv/links"), 0);
	assert_int_equal(n.backend, NET_BACKEND_LINK);
	assert_string_equal(n.link, "lan0");
	assert_string_equal(n.path, "/srv/links/lan0");
	assert_int_equal(n.vhost, NET_VHOST_OFF);
	setenv("KVMBOX_LINK_DIR", "/x/y", 1);
	assert_int_equal(parse(&n, "link=a.b_c-d"), 0);
	assert_string_equal(n.path, "/x/y/a.b_c-d");
	unsetenv("KVMBOX_LINK_DIR");
	setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
	assert_int_equal(parse(&n, "link=l"), 0);
	assert_string_equal(n.path, "/run/user/7/kvmbox/links/l");
	unsetenv("XDG_RUNTIME_DIR");
	assert_int_equal(parse(&n, "link=l"), 0);
	if (geteuid() == 0)
		snprintf(want, sizeof(want), "/run/kvmbox/links/l");
	else
		snprintf(want, sizeof(want), "/tmp/kvmbox-%u/links/l", (unsigned)geteuid());
	assert_string_equal(n.path, want);
	assert_int_equal(parse(&n, "link="), -1);
	assert_int_equal(parse(&n, "link=.hidden"), -1);
	assert_int_equal(parse(&n, "link=a/b"), -1);
	assert_int_equal(parse(&n, "link=a b"), -1);
	assert_int_equal(parse(&n, "link=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
			 -1); /* 65 */
	assert_int_equal(parse(&n, "link=l,linkdir=relative"), -1);
	assert_int_equal(parse(&n, "link=l,vhost=on"), -1);
	assert_int_equal(parse(&n, "link=l,foo=1"), -1);
}

static void test_record_round_trip(void **state)
{
	struct net_config n, m, old;
	struct ser_writer w;
	struct ser_reader r;
	char msg[256];

	assert_int_equal(parse(&n, "link=lan0,linkdir=/srv/links"), 0);
	ser_writer_init(&w);
	virtio_net_type.save(&n, &w);
	ser_reader_init(&r, w.buf, w.len);
	memset(&m, 0, sizeof(m));
	assert_int_equal(virtio_net_type.load(&m, &r), 0);
	assert_int_equal(m.backend, NET_BACKEND_LINK);
	assert_string_equal(m.path, "/srv/links/lan0");
	assert_string_equal(m.link, "lan0");
	assert_memory_equal(m.mac, n.mac, 6);
	ser_writer_free(&w);
	/* A link card without mac= takes the guest's MAC from the state: any local random one matches. */
	assert_int_equal(parse(&old, "link=lan0"), 0);
	assert_int_equal(virtio_net_type.match(&m, &old, 0, "the snapshot", msg, sizeof(msg)), 0);
	/* Given MACs on both sides must agree. */
	assert_int_equal(parse(&n, "socket=/a,mac=52:54:00:01:02:03"), 0);
	assert_int_equal(parse(&old, "socket=/b,mac=52:54:00:01:02:04"), 0);
	assert_int_equal(virtio_net_type.match(&n, &old, 0, "the snapshot", msg, sizeof(msg)), -1);
	/* A record of an older kvmbox (no backend fields) is a tap card. */
	ser_writer_init(&w);
	ser_put_str(&w, "tap0");
	ser_put_bytes(&w, mac_a, 6);
	ser_put_u8(&w, 1);
	ser_put_u8(&w, NET_VHOST_AUTO);
	ser_reader_init(&r, w.buf, w.len);
	memset(&m, 0, sizeof(m));
	assert_int_equal(virtio_net_type.load(&m, &r), 0);
	assert_int_equal(m.backend, NET_BACKEND_TAP);
	assert_string_equal(m.tap, "tap0");
	ser_writer_free(&w);
	/* A link record without a path is refused. */
	ser_writer_init(&w);
	ser_put_str(&w, "");
	ser_put_bytes(&w, mac_a, 6);
	ser_put_u8(&w, 0);
	ser_put_u8(&w, NET_VHOST_OFF);
	ser_put_u8(&w, NET_BACKEND_LINK);
	ser_put_str(&w, "");
	ser_put_str(&w, "l");
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_net_type.load(&m, &r), -1);
	ser_writer_free(&w);
}

/* ---- the switch ------------------------------------------------------------------------- */

struct port {
	struct loop *loop;
	struct dgram *d;
	int dev; /* the device's end */
};

struct world {
	char dir[64];
	char path[96];
	struct port p[4];
};

static void on_fd(struct loop *l, int fd, uint32_t events, void *opaque)
{
	dgram_on_fd(opaque, fd, events);
}

static int open_port(struct world *w, int i)
{
	struct port *p = &w->p[i];

	p->loop = loop_create();
	assert_non_null(p->loop);
	p->d = dgram_open(w->path, true, "test", &p->dev);
	if (!p->d) {
		loop_destroy(p->loop);
		p->loop = NULL;
		return -1;
	}
	if (dgram_attach(p->d, p->loop, on_fd, p->d) < 0) {
		dgram_close(p->d);
		close(p->dev);
		loop_destroy(p->loop);
		p->d = NULL;
		p->loop = NULL;
		return -1;
	}
	return 0;
}

static void close_port(struct world *w, int i)
{
	struct port *p = &w->p[i];

	if (!p->d)
		return;
	dgram_close(p->d);
	close(p->dev);
	loop_destroy(p->loop);
	p->d = NULL;
	p->loop = NULL;
}

/* Run every port's loop until nothing happens for a while. */
static void settle(struct world *w)
{
	for (int round = 0; round < 50; round++) {
		int ran = 0;

		for (int i = 0; i < 4; i++)
			if (w->p[i].loop)
				ran += loop_run_once(w->p[i].loop, 2);
		if (!ran && round > 3)
			return;
	}
}

static int wsetup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	snprintf(w->dir, sizeof(w->dir), "/tmp/kvmbox-dgXXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->path, sizeof(w->path), "%s/links/lan", w->dir);
	*state = w;
	return 0;
}

static int wteardown(void **state)
{
	struct world *w = *state;
	char cmd[128];

	for (int i = 0; i < 4; i++)
		close_port(w, i);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test: %s failed\n", cmd);
	free(w);
	return 0;
}

/* The device side sends a frame dst <- src with a byte of payload. */
static void dev_send(struct port *p, const uint8_t *dst, const uint8_t *src, uint8_t tag, size_t len)
{
	uint8_t b[DGRAM_HDR_LEN + 1600] = { 0 };

	memcpy(b + DGRAM_HDR_LEN, dst, 6);
	memcpy(b + DGRAM_HDR_LEN + 6, src, 6);
	b[DGRAM_HDR_LEN + 14] = tag;
	assert_int_equal(send(p->dev, b, DGRAM_HDR_LEN + len, 0), (ssize_t)(DGRAM_HDR_LEN + len));
}

/* What the device side of p received: the tags, in order; -1 for anything malformed. */
static int dev_recv(struct port *p, int *tags, int max)
{
	uint8_t b[DGRAM_HDR_LEN + 2000];
	int n = 0;
	ssize_t r;

	while ((r = recv(p->dev, b, sizeof(b), MSG_DONTWAIT)) > 0 && n < max) {
		static const uint8_t zero[10];

		/* A zero header apart from num_buffers 1. */
		if (r < DGRAM_HDR_LEN + DGRAM_ETH_HLEN + 1 || memcmp(b, zero, 10) || b[10] != 1 || b[11])
			tags[n++] = -1;
		else
			tags[n++] = b[DGRAM_HDR_LEN + 14];
	}
	return n;
}

/* After the ports settle, `from` sends dst <- src tagged `tag` (60 bytes): once they settle
 * again, `to` has received that frame and no other. */
static void send_one(struct world *w, int from, int to, const uint8_t *dst, const uint8_t *src, uint8_t tag)
{
	int tags[8];

	settle(w);
	dev_send(&w->p[from], dst, src, tag, 60);
	settle(w);
	assert_int_equal(dev_recv(&w->p[to], tags, 8), 1);
	assert_int_equal(tags[0], tag);
}

/* A raw member of w's link, as a peer would be on the wire: a connected socket. */
static int raw_member(struct world *w)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int raw = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(raw >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", w->path);
	assert_int_equal(connect(raw, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return raw;
}

/* What p's switch counted: frames forwarded and dropped. */
static void assert_counters(struct port *p, uint64_t want_fwd, uint64_t want_dropped)
{
	uint64_t fwd, dropped;

	dgram_counters(p->d, &fwd, &dropped);
	assert_int_equal(fwd, want_fwd);
	assert_int_equal(dropped, want_dropped);
}

/* w->path becomes the directory's `name`, where a socket is bound and closed: stale. */
static void stale_socket(struct world *w, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s;

	snprintf(w->path, sizeof(w->path), "%s/%s", w->dir, name);
	s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", w->path);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
}

/* open_port(w, 0) refuses what stands at w->path, a file of the given type (S_IFREG...), and
 * leaves it there: *st is its lstat. */
static void assert_kept(struct world *w, mode_t type, struct stat *st)
{
	assert_int_equal(open_port(w, 0), -1);
	assert_int_equal(lstat(w->path, st), 0);
	assert_int_equal(st->st_mode & S_IFMT, type);
}

static void test_two_ports(void **state)
{
	struct world *w = *state;
	struct stat st;
	int tags[8];

	assert_int_equal(open_port(w, 0), 0);
	assert_int_equal(lstat(w->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(open_port(w, 1), 0);
	send_one(w, 0, 1, bcast, mac_a, 1);
	assert_int_equal(dev_recv(&w->p[0], tags, 8), 0); /* never back to the sender */
	dev_send(&w->p[1], mac_a, mac_b, 2, 1514);
	dev_send(&w->p[1], mac_a, mac_b, 3, 60);
	settle(w);
	assert_int_equal(dev_recv(&w->p[0], tags, 8), 2);
	assert_int_equal(tags[0], 2);
	assert_int_equal(tags[1], 3);
	/* The listener leaving removes its socket file. */
	close_port(w, 0);
	assert_int_equal(lstat(w->path, &st), -1);
	settle(w);
	/* ... and the member becomes the listener. */
	assert_int_equal(lstat(w->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(open_port(w, 2), 0);
	send_one(w, 2, 1, mac_b, mac_c, 4);
}

static void test_learning_three(void **state)
{
	struct world *w = *state;
	int tags[8];

	assert_int_equal(open_port(w, 0), 0); /* the switch */
	assert_int_equal(open_port(w, 1), 0);
	assert_int_equal(open_port(w, 2), 0);
	settle(w);
	/* Unknown destinations flood: everyone else gets each; every source is learned. */
	dev_send(&w->p[0], bcast, mac_a, 1, 60);
	dev_send(&w->p[1], bcast, mac_b, 2, 60);
	dev_send(&w->p[2], bcast, mac_c, 3, 60);
	settle(w);
	assert_int_equal(dev_recv(&w->p[0], tags, 8), 2);
	assert_int_equal(dev_recv(&w->p[1], tags, 8), 2);
	assert_int_equal(dev_recv(&w->p[2], tags, 8), 2);
	/* Known unicast goes to its port only: member to member through the switch, switch to
	 * member, member to switch. */
	dev_send(&w->p[1], mac_c, mac_b, 10, 60);
	dev_send(&w->p[0], mac_b, mac_a, 11, 60);
	dev_send(&w->p[2], mac_a, mac_c, 12, 60);
	settle(w);
	assert_int_equal(dev_recv(&w->p[2], tags, 8), 1);
	assert_int_equal(tags[0], 10);
	assert_int_equal(dev_recv(&w->p[1], tags, 8), 1);
	assert_int_equal(tags[0], 11);
	assert_int_equal(dev_recv(&w->p[0], tags, 8), 1);
	assert_int_equal(tags[0], 12);
	/* A member that goes away is forgotten: its MAC floods again. */
	close_port(w, 2);
	send_one(w, 1, 0, mac_c, mac_b, 13);
}

static void test_bad_frames_dropped(void **state)
{
	struct world *w = *state;
	uint8_t f[DGRAM_MAX_FRAME + 100];
	int raw, tags[8];

	assert_int_equal(open_port(w, 0), 0);
	raw = raw_member(w);
	settle(w);
	memset(f, 0, sizeof(f));
	memcpy(f, bcast, 6);
	memcpy(f + 6, mac_b, 6);
	f[14] = 7;
	assert_int_equal(send(raw, f, 13, 0), 13); /* too short */
	memcpy(f + 6, bcast, 6);
	assert_int_equal(send(raw, f, 60, 0), 60); /* multicast source */
	memcpy(f + 6, mac_b, 6);
	assert_int_equal(send(raw, f, 60, 0), 60); /* fine */
	settle(w);
	assert_int_equal(dev_recv(&w->p[0], tags, 8), 1);
	assert_int_equal(tags[0], 7);
	assert_counters(&w->p[0], 1, 2);
	close(raw);
}

static void test_large_frame_from_member(void **state)
{
	struct world *w = *state;
	static uint8_t f[DGRAM_MAX_FRAME + 2];
	int raw;
	ssize_t r;

	assert_int_equal(open_port(w, 0), 0);
	raw = raw_member(w);
	settle(w);
	memcpy(f, bcast, 6);
	memcpy(f + 6, mac_b, 6);
	r = send(raw, f, DGRAM_MAX_FRAME + 1, 0);
	if (r < 0) {
		/* The socket's buffer is below a frame this size: nothing to check. */
		close(raw);
		skip();
	}
	settle(w);
	assert_counters(&w->p[0], 0, 1);
	close(raw);
}

static void test_stale_socket_replaced(void **state)
{
	struct world *w = *state;
	struct stat st;

	assert_int_equal(mkdir(w->dir, 0700) == 0 || errno == EEXIST, 1);
	stale_socket(w, "stale");
	assert_int_equal(open_port(w, 0), 0);
	assert_int_equal(lstat(w->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(open_port(w, 1), 0); /* and it listens there */
}

static void test_not_a_socket_kept(void **state)
{
	struct world *w = *state;
	struct stat st;
	int fd;

	snprintf(w->path, sizeof(w->path), "%s/file", w->dir);
	fd = open(w->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_kept(w, S_IFREG, &st);
	assert_int_equal(st.st_size, 1);
}

static void test_stale_socket_of_another_uid_kept(void **state)
{
	struct world *w = *state;
	struct stat st;

	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	stale_socket(w, "other");
	assert_int_equal(lchown(w->path, 4321, 4321), 0);
	assert_kept(w, S_IFSOCK, &st);
	assert_int_equal(st.st_uid, 4321);
}

static void test_leave_join(void **state)
{
	struct world *w = *state;
	struct stat st;
	int tags[8];

	assert_int_equal(open_port(w, 0), 0);
	assert_int_equal(open_port(w, 1), 0);
	settle(w);
	/* A migration's hand-over: the listener leaves (its file goes), the member takes over. */
	dgram_leave(w->p[0].d);
	assert_int_equal(lstat(w->path, &st), -1);
	settle(w);
	assert_int_equal(lstat(w->path, &st), 0);
	dev_send(&w->p[0], bcast, mac_a, 1, 60); /* dropped: not on the link */
	settle(w);
	assert_int_equal(dev_recv(&w->p[1], tags, 8), 0);
	assert_int_equal(dgram_join(w->p[0].d), 0);
	send_one(w, 0, 1, bcast, mac_a, 2);
}

/* The card itself (virtio_net_create on a socket= config): no offload offered, the socket
 * listened on while it exists and removed with it. */
static void test_card_features(void **state)
{
	struct world *w = *state;
	struct fake_ram ram;
	struct net_config n;
	struct virtio_dev *vd;
	struct stat st;
	char arg[128];
	const uint64_t offloads = 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |
				  1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6 |
				  1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |
				  1ULL << VIRTIO_NET_F_HOST_ECN | 1ULL << VIRTIO_NET_F_GUEST_ECN;

	assert_int_equal(mkdir(w->dir, 0700) == 0 || errno == EEXIST, 1);
	snprintf(arg, sizeof(arg), "socket=%s/card.sock", w->dir);
	assert_int_equal(parse(&n, arg), 0);
	fake_ram_init_flat(&ram, 1 << 20);
	vd = virtio_net_create(&ram.mem, &n, 0);
	assert_non_null(vd);
	assert_int_equal(vd->host_features & offloads, 0);
	assert_true(vd->host_features & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	assert_true(vd->host_features & (1ULL << VIRTIO_NET_F_MAC));
	assert_memory_equal(vd->config, n.mac, 6); /* the random MAC drawn at parse */
	assert_int_equal(lstat(n.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	vd->ops->destroy(vd);
	assert_int_equal(lstat(n.path, &st), -1);
	fake_ram_free(&ram);
}

/* A full link: the switch closes a newcomer at once; after three such meetings the newcomer
 * stays off the link instead of meeting again forever. */
static void test_full_link_gives_up(void **state)
{
	struct world *w = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int raw[DGRAM_MAX_PORTS - 1];
	uint8_t b[64];

	assert_int_equal(open_port(w, 0), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", w->path);
	for (int i = 0; i < DGRAM_MAX_PORTS - 1; i++) {
		raw[i] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(raw[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	settle(w);
	assert_int_equal(open_port(w, 1), 0); /* connects: the kernel queues it */
	for (int k = 0; k < 20; k++)
		settle(w);
	dev_send(&w->p[1], bcast, mac_b, 1, 60);
	settle(w);
	assert_counters(&w->p[1], 0, 1);
	/* The members still get the switch's own frames. */
	dev_send(&w->p[0], bcast, mac_a, 2, 60);
	settle(w);
	assert_int_equal(recv(raw[0], b, sizeof(b), MSG_DONTWAIT), 60);
	for (int i = 0; i < DGRAM_MAX_PORTS - 1; i++)
		close(raw[i]);
}

/* --jail with a link card is refused (it would meet its link again at another path). */
static void test_jail_refused(void **state)
{
	char *args[] = { "run",    "-k",     "vmlinuz", "--no-reboot",
			 "--jail", "/srv/j", "--net",   "link=l,linkdir=/tmp/x",
			 NULL };
	struct vm_config cfg;

	assert_int_equal(run_parse_args(8, args, &cfg), 0);
	assert_int_equal(sandbox_setup(&cfg), -1);
	vm_config_free_devices(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fdb_learn_lookup),
		cmocka_unit_test(test_fdb_age_and_forget),
		cmocka_unit_test(test_fdb_full_evicts_oldest),
		cmocka_unit_test(test_frame_bad),
		cmocka_unit_test(test_parse_socket),
		cmocka_unit_test(test_parse_link),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test_setup_teardown(test_two_ports, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_learning_three, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_bad_frames_dropped, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_large_frame_from_member, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_replaced, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_not_a_socket_kept, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_of_another_uid_kept, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_leave_join, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_card_features, wsetup, wteardown),
		cmocka_unit_test_setup_teardown(test_full_link_gives_up, wsetup, wteardown),
		cmocka_unit_test(test_jail_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
