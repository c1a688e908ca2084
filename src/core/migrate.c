#include "migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "../backends/blockfile.h"
#include "../cli/options.h"
#include "config.h"
#include "devtype.h"
#include "chan.h"
#include "log.h"
#include "machine.h"
#include "sandbox.h"
#include "unixsock.h"
#include "util.h"
#include "vm.h"

#define MIG_MAGIC         "KVMBOXMG"
#define MIG_VERSION       2
#define MIG_VERSION_DISKS 3 /* version 2 plus the disks' list and records (disks=copy) */
#define MIG_MAX_ROUNDS    30
#define MIG_SMALL_DIRTY   256 /* pages left that make the final copy short */
#define MIG_BATCH_PAGES   64  /* pages per PAGES record */
#define MIG_IO_TIMEOUT_S  30
#define MIG_ACK_TIMEOUT_S 20
#define MIG_MAX_STATE     (64u << 20)

/* A whole receive, from the accept to the final state (in_why names MIG_IO_TIMEOUT_S too). */
#define MIG_RECV_DEADLINE_S 600

enum { REC_PAGES = 1, REC_ZERO, REC_ROUND, REC_FINAL, REC_DISK, REC_DISK_ZERO };

/* A disk record carries one block of the source's dirty map (backends/blockfile.h): 64 KiB.
 * Why that size: a write the guest makes costs at most one such block again (a 4 KiB page
 * would mean 16 times the bits to scan and 16 times the record headers on a first full copy;
 * 1 MiB would resend up to 1 MiB for every 4 KiB write a busy guest makes during the copy),
 * it is the largest message the encrypted channel seals at once (CHAN_MSG), and it is the
 * destination's one receive buffer, so a record can never make it allocate. A 1 TiB disk's
 * map is 2 MiB. */
#define MIG_DISK_BLOCK BLOCKFILE_DIRTY_BLOCK
/* Disk blocks count as this many pages in the pre-copy's "small enough to stop" figure. */
#define MIG_DISK_PAGES (MIG_DISK_BLOCK / PAGE_SIZE)

/* A source disk being copied (disks=copy). */
struct mig_disk {
	struct blockfile *bf;
	struct blockfile_info info;
	uint64_t nblocks;
	unsigned long *pend; /* blocks still to send: taken from the backend's dirty map */
	bool tracking;
};

struct migration {
	struct vm *vm;
	_Atomic bool *migrating; /* the owner's "in progress" flag, cleared when this ends */
	migration_done_fn done;
	void *done_ctx;
	char uri[512];
	pthread_t thread;
	_Atomic bool cancel;
	bool copy_disks; /* disks=copy */
	struct mig_disk disks[MIG_MAX_DISKS];
	unsigned ndisks;
	uint8_t *dbuf;                  /* MIG_DISK_BLOCK bytes, the disk reader's */
	char why[MIG_MAX_REFUSAL + 64]; /* a failure's reason, when it is made up here */
	/* figures */
	unsigned rounds;
	uint64_t bytes;
	uint64_t pages;
	uint64_t disk_bytes;
	double t_start, t_pause, t_end;
};

/* ---- stream I/O ------------------------------------------------------------ */

/* The stream: little-endian integers, whole buffers, through the channel (core/chan.h: plain or
 * encrypted). SIGPIPE is ignored: a peer that went away is an EPIPE error. */
static int send_u32(struct chan *c, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	return chan_write(c, b, 4);
}

static int send_u64(struct chan *c, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	return chan_write(c, b, 8);
}

static int recv_u32(struct chan *c, uint32_t *v)
{
	uint8_t b[4];

	if (chan_read(c, b, 4) < 0)
		return -1;
	*v = get_le32(b);
	return 0;
}

static int recv_u64(struct chan *c, uint64_t *v)
{
	uint8_t b[8];

	if (chan_read(c, b, 8) < 0)
		return -1;
	*v = get_le64(b);
	return 0;
}

/* Refuse plain TCP unless the user said so: anyone on the path could read the guest's memory
 * and change what runs. A unix socket stays on this host (and checks its peer). */
static bool tcp_refused(int family, const struct vm_keys *keys)
{
	return family != AF_UNIX && !keys->have_migration_key && !keys->insecure_migration;
}

static void set_timeouts(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Parse "tcp:IP:PORT" (IPv4, [IPv6] or localhost) or "unix:PATH" into a socket address. */
int migrate_parse_uri(const char *uri, struct sockaddr_storage *ss, socklen_t *len, int *family)
{
	if (!strncmp(uri, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		if (!uri[5] || strlen(uri + 5) >= sizeof(un->sun_path))
			return -1;
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, uri + 5);
		*len = sizeof(*un);
		*family = AF_UNIX;
		return 0;
	}
	if (!strncmp(uri, "tcp:", 4)) {
		/* Numeric addresses only: resolving names would need glibc's NSS modules at run
		 * time, which the static binary (built for hosts without a libc) cannot load. */
		char host[64];
		const char *colon = strrchr(uri + 4, ':');
		size_t hl;
		unsigned port;

		if (!colon || colon == uri + 4 || parse_uint(colon + 1, &port) < 0 || port == 0 ||
		    port > 65535)
			return -1;
		hl = (size_t)(colon - (uri + 4));
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, uri + 4, hl);
		host[hl] = '\0';
		memset(ss, 0, sizeof(*ss));
		if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

			host[hl - 1] = '\0';
			if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
				return -1;
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			*len = sizeof(*in6);
			*family = AF_INET6;
			return 0;
		}
		{
			struct sockaddr_in *in = (struct sockaddr_in *)ss;

			if (!strcmp(host, "localhost"))
				strcpy(host, "127.0.0.1");
			if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
				return -1;
			in->sin_family = AF_INET;
			in->sin_port = htons((uint16_t)port);
			*len = sizeof(*in);
			*family = AF_INET;
			return 0;
		}
	}
	return -1;
}

/* ---- destination ------------------------------------------------------------- */

struct incoming_stats {
	unsigned rounds;
	uint64_t bytes;
	double t_start;
	double t_final;
};

/* One incoming migration, migrate_accept to migrate_in_close. */
struct migrate_in {
	int fd;           /* the stream's socket */
	struct chan chan; /* on fd */
	struct incoming_stats stats;
	/* What ends a receive early: its deadline, and stop_fd (readable: a termination signal
	 * came). */
	struct {
		int stop_fd;
		double deadline; /* now_ms() time */
		bool stopped;    /* stop_fd ended it */
		unsigned reads;
	} guard;
	/* disks=copy: what the source said of its disks, and the images this command line names,
	 * opened for the copy by migrate_accept_disks and written back and closed at the final
	 * record, before the devices open (and lock) them. */
	struct {
		bool copy;      /* the source's hello asked for disks=copy */
		bool same_host; /* the source is on this host: a unix socket, or TCP from a loopback
				 * address */
		unsigned n;
		uint64_t size[MIG_MAX_DISKS], dev[MIG_MAX_DISKS], ino[MIG_MAX_DISKS]; /* the source's */
		int fd[MIG_MAX_DISKS];
		bool open; /* fd[0..n) are open */
		uint64_t bytes;
		uint8_t *buf; /* one block (MIG_DISK_BLOCK), from migrate_accept_disks on */
	} disks;
};

/* read_all for the destination (the channel's reader): a hostile or stalled source cannot hold
 * it past the deadline, and a termination signal ends it. Data already there is taken without
 * waiting; stop_fd is looked at whenever the stream has to be waited for, and every 64 reads. */
static int in_read(void *ctx, int fd, void *p, size_t n)
{
	struct migrate_in *in = ctx;
	uint8_t *b = p;

	while (n) {
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = in->guard.stop_fd, .events = POLLIN } };
		double left = in->guard.deadline - now_ms();
		ssize_t got = -1;
		int r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (++in->guard.reads % 64) {
			got = recv(fd, b, n, MSG_DONTWAIT);
			if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
		}
		if (got < 0) {
			r = poll(pfd, 2,
				 left > MIG_IO_TIMEOUT_S * 1000.0 ? MIG_IO_TIMEOUT_S * 1000 : (int)left + 1);
			if (r < 0 && errno != EINTR)
				return -1;
			if (r > 0 && pfd[1].revents) {
				in->guard.stopped = true;
				errno = EINTR;
				return -1;
			}
			if (r == 0) {
				errno = left > MIG_IO_TIMEOUT_S * 1000.0 ? EAGAIN : ETIMEDOUT;
				return -1;
			}
			if (r < 0 || !pfd[0].revents)
				continue;
			got = recv(fd, b, n, MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				continue;
		}
		if (got <= 0) {
			if (got == 0)
				errno = ECONNRESET;
			return -1;
		}
		b += got;
		n -= (size_t)got;
	}
	return 0;
}

/* Why a receive read failed, for its one line. */
static const char *in_why(const struct migrate_in *in)
{
	if (in->guard.stopped)
		return "a termination signal came";
	if (in->chan.auth_failed)
		return "a message did not authenticate: changed on the way, or not the source's";
	if (errno == ETIMEDOUT)
		return "the receive's deadline passed";
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return "the source sent nothing for 30 s";
	return strerror(errno);
}

/* The first 8 bytes decide: a plain stream starts with its hello, an encrypted one with the
 * channel's magic (core/chan.h). Both sides must agree on having a key. Every read goes
 * through in_read. A stop (in->guard.stopped) is not printed: the caller says why. */
static int incoming_channel(struct migrate_in *in, int fd, const char *uri, const struct vm_keys *keys,
			    uint8_t hello[16])
{
	uint8_t magic[8];

	if (in_read(in, fd, magic, 8) < 0) {
		if (!in->guard.stopped)
			log_error("migration from %s: no hello from the source (%s); the VM was not started",
				  uri, in_why(in));
		return -1;
	}
	if (!memcmp(magic, CHAN_MAGIC, 8)) {
		if (!keys->have_migration_key) {
			log_error(
				"migration from %s: the source encrypts its stream; give this destination the "
				"source's key with --migration-key FILE",
				uri);
			return -1;
		}
		if (chan_accept(&in->chan, fd, keys->migration_key, in_read, in) < 0) {
			if (in->chan.auth_failed)
				log_error(
					"migration from %s: the source did not authenticate: its --migration-key "
					"is not this one; the VM was not started",
					uri);
			else if (!in->guard.stopped)
				log_error(
					"migration from %s: the key exchange broke (%s); the VM was not started",
					uri, in_why(in));
			return -1;
		}
		if (chan_read(&in->chan, hello, 16) < 0) {
			if (!in->guard.stopped)
				log_error("migration from %s: no hello from the source (%s)", uri,
					  in_why(in));
			return -1;
		}
		return 0;
	}
	if (keys->have_migration_key && !memcmp(magic, MIG_MAGIC, 8)) {
		log_error("migration from %s: the source sent an unencrypted stream; start the source VM "
			  "with the same --migration-key FILE",
			  uri);
		return -1;
	}
	chan_init_plain(&in->chan, fd);
	in->chan.read_fn = in_read;
	in->chan.read_ctx = in;
	memcpy(hello, magic, 8);
	if (chan_read(&in->chan, hello + 8, 8) < 0) {
		if (!in->guard.stopped)
			log_error("migration from %s: no hello from the source (%s)", uri, in_why(in));
		return -1;
	}
	return 0;
}

/* A TCP source on a loopback address runs on this host (its disks' st_dev/st_ino mean
 * something here). */
static bool peer_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return true; /* unknown: compare, a false "same file" is only a refusal */
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return true;
}

/* migrate_accept's work: the stream's fd, or -1 (printed unless stopped). */
static int accept_stream(struct migrate_in *in, const char *uri, int stop_fd, const struct vm_keys *keys,
			 struct snap_config *sc)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family, lfd, fd = -1, one = 1;
	uint8_t hello[16];
	uint64_t clen = 0;
	uint8_t *cbuf = NULL;
	struct ser_reader r;
	struct stat ust;

	if (migrate_parse_uri(uri, &ss, &len, &family) < 0) {
		log_error(
			"--incoming %s: not tcp:IP:PORT or unix:PATH; give a numeric address (host names are not resolved)",
			uri);
		return -1;
	}
	if (tcp_refused(family, keys)) {
		log_error(
			"--incoming %s: a migration over TCP without a key can be read and changed on the way; "
			"give --migration-key FILE (the same on the source), or --insecure-migration",
			uri);
		return -1;
	}
	if (family == AF_UNIX) {
		/* Mode 0600 from the bind on; only a stale socket is ever replaced (core/unixsock.c). */
		lfd = unixsock_listen(((struct sockaddr_un *)&ss)->sun_path, 1, false, "--incoming", &ust);
		if (lfd < 0)
			return -1;
	} else {
		lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0) {
			log_error("--incoming %s: socket: %s", uri, strerror(errno));
			return -1;
		}
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if ((family != AF_UNIX && bind(lfd, (struct sockaddr *)&ss, len) < 0) || listen(lfd, 1) < 0) {
		log_error("--incoming %s: cannot listen: %s; give a free address", uri, strerror(errno));
		close(lfd);
		return -1;
	}
	fprintf(stderr, "kvmbox: waiting for a migration on %s\n", uri);
	in->guard.stop_fd = stop_fd;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN },
					 { .fd = stop_fd, .events = POLLIN } };

		if (poll(pfd, 2, -1) > 0 && pfd[1].revents) {
			errno = EINTR;
			in->guard.stopped = true;
			break;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0 ||
		    (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED))
			break;
	}
	if (fd >= 0 && fcntl(fd, F_SETFL, 0) < 0) {
		close(fd);
		fd = -1;
	}
	close(lfd);
	if (family == AF_UNIX)
		unixsock_unlink(((struct sockaddr_un *)&ss)->sun_path, &ust);
	if (fd < 0) {
		if (!in->guard.stopped)
			log_error("--incoming %s: accept: %s", uri, strerror(errno));
		return -1;
	}
	if (family == AF_UNIX) {
		long peer;

		/* Whatever the socket file's mode became: only our uid and root may send a VM. */
		if (!unixsock_peer_allowed(fd, &peer)) {
			log_error("--incoming %s: refused a source run by uid %ld; migrate as the user this "
				  "kvmbox runs as, or root",
				  uri, peer);
			close(fd);
			return -1;
		}
	}
	in->stats.t_start = now_ms();
	in->guard.deadline = in->stats.t_start + MIG_RECV_DEADLINE_S * 1000.0;
	set_timeouts(fd, MIG_IO_TIMEOUT_S);
	if (incoming_channel(in, fd, uri, keys, hello) < 0)
		goto fail;
	if (memcmp(hello, MIG_MAGIC, 8) ||
	    (get_le32(hello + 8) != MIG_VERSION && get_le32(hello + 8) != MIG_VERSION_DISKS)) {
		log_error("migration from %s: not a kvmbox migration stream of this version", uri);
		goto fail;
	}
	if (get_le32(hello + 12) != arch_this) {
		log_error(
			"migration from %s: the source runs on %s, this host on %s; migrate between hosts of one "
			"architecture",
			uri, arch_id_name(get_le32(hello + 12)), arch_id_name(arch_this));
		goto fail;
	}
	if (recv_u64(&in->chan, &clen) < 0 || clen > (1u << 20) || !(cbuf = malloc(clen ? clen : 1)) ||
	    chan_read(&in->chan, cbuf, clen) < 0) {
		if (!in->guard.stopped)
			log_error("migration from %s: the configuration did not arrive: %s", uri,
				  clen > (1u << 20) ? "too long" : in_why(in));
		goto fail;
	}
	ser_reader_init(&r, cbuf, clen);
	if (snap_config_load(sc, &r) < 0) {
		log_error("migration from %s: malformed configuration", uri);
		goto fail;
	}
	free(cbuf);
	cbuf = NULL;
	in->disks.copy = get_le32(hello + 8) == MIG_VERSION_DISKS;
	if (in->disks.copy) {
		/* u32 count, then per disk u64 size, st_dev, st_ino. */
		uint32_t n = 0;

		if (recv_u32(&in->chan, &n) < 0)
			goto disks_broken;
		if (n > MIG_MAX_DISKS) {
			snap_config_free(sc);
			log_error("migration from %s: malformed list of disks", uri);
			goto fail;
		}
		in->disks.n = n;
		for (uint32_t i = 0; i < n; i++)
			if (recv_u64(&in->chan, &in->disks.size[i]) < 0 ||
			    recv_u64(&in->chan, &in->disks.dev[i]) < 0 ||
			    recv_u64(&in->chan, &in->disks.ino[i]) < 0)
				goto disks_broken;
		in->disks.same_host = family == AF_UNIX || peer_is_loopback(fd);
	}
	return fd;
disks_broken:
	snap_config_free(sc);
	if (!in->guard.stopped)
		log_error("migration from %s: the list of disks did not arrive: %s", uri, in_why(in));
fail:
	free(cbuf);
	chan_free(&in->chan);
	close(fd);
	return -1;
}

struct migrate_in *migrate_accept(const char *uri, int stop_fd, const struct vm_keys *keys,
				  struct snap_config *sc)
{
	struct migrate_in *in = calloc(1, sizeof(*in));

	if (!in) {
		log_error("--incoming %s: out of memory", uri);
		return NULL;
	}
	in->chan.fd = -1;
	in->guard.stop_fd = -1;
	in->fd = accept_stream(in, uri, stop_fd, keys, sc);
	if (in->fd < 0) {
		free(in);
		return NULL;
	}
	return in;
}

bool migrate_disk_record_ok(const uint64_t *sizes, unsigned n, uint32_t disk, uint64_t offset, uint32_t len)
{
	return disk < n && len > 0 && len <= MIG_DISK_BLOCK && offset % MIG_DISK_BLOCK == 0 &&
	       offset < sizes[disk] && len <= sizes[disk] - offset &&
	       /* whole blocks, except the disk's last one */
	       (len == MIG_DISK_BLOCK || len == sizes[disk] - offset);
}

static void close_disks(struct migrate_in *in)
{
	if (!in->disks.open)
		return;
	for (unsigned i = 0; i < in->disks.n; i++)
		close(in->disks.fd[i]);
	in->disks.open = false;
}

/* Open image i (path, this command line's) for the copy and check it against the source's
 * disk i. 0, or -1 with one line in msg. */
static int open_copy_target(struct migrate_in *in, unsigned i, const char *path, char *msg, size_t len)
{
	struct stat st;
	uint64_t size = 0;
	int ro = 0, fd;

	/* O_NONBLOCK: a FIFO's open must not block (the type is checked below). */
	fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
		snprintf(msg, len,
			 "disk %u (%s) is read-only here (%s); disks=copy writes the source's disk into it: "
			 "give a writable image",
			 i, path, strerror(errno));
		return -1;
	}
	if (fd < 0) {
		snprintf(msg, len, "disk %u (%s): %s%s", i, path, strerror(errno),
			 errno == EBUSY ? " (a block device in use: mounted, or the source's own)" : "");
		return -1;
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		snprintf(msg, len, "disk %u (%s): not a regular file or block device", i, path);
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0 || ioctl(fd, BLKROGET, &ro) < 0) {
			snprintf(msg, len, "disk %u (%s): cannot read the device's size: %s", i, path,
				 strerror(errno));
			goto fail;
		}
		if (ro) {
			snprintf(msg, len, "disk %u (%s) is a read-only block device; disks=copy writes it",
				 i, path);
			goto fail;
		}
	} else {
		size = (uint64_t)st.st_size;
	}
	if (in->disks.same_host && (uint64_t)st.st_dev == in->disks.dev[i] &&
	    (uint64_t)st.st_ino == in->disks.ino[i]) {
		snprintf(msg, len,
			 "disk %u (%s) is the source's own image (same file on this host): copying it onto "
			 "itself would corrupt it; give another image, or migrate without disks=copy",
			 i, path);
		goto fail;
	}
	if (size != in->disks.size[i]) {
		snprintf(msg, len,
			 "disk %u (%s) is %llu bytes here, the source's is %llu; give an image of that size",
			 i, path, (unsigned long long)size, (unsigned long long)in->disks.size[i]);
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		snprintf(msg, len, "disk %u (%s) is locked: another VM has it open", i, path);
		goto fail;
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		snprintf(msg, len, "disk %u (%s): %s", i, path, strerror(errno));
		goto fail;
	}
	in->disks.fd[i] = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

int migrate_accept_disks(struct migrate_in *in, const struct vm_config *local, char *msg, size_t len)
{
	unsigned n = 0;

	if (!in->disks.copy)
		return 0;
	if (!in->disks.buf && !(in->disks.buf = malloc(MIG_DISK_BLOCK))) {
		snprintf(msg, len, "out of memory for the disk copy's buffer");
		return -1;
	}
	for (unsigned i = 0; i < local->nr_devs; i++)
		if (local->devs[i].type->disk_path)
			n++;
	if (n != in->disks.n) {
		snprintf(msg, len, "the source copies %u disks (disks=copy), this command line has %u",
			 in->disks.n, n);
		return -1;
	}
	n = 0;
	for (unsigned i = 0; i < local->nr_devs; i++) {
		const struct dev_config *d = &local->devs[i];

		if (!d->type->disk_path)
			continue;
		if (open_copy_target(in, n, d->type->disk_path(d->cfg), msg, len) < 0) {
			for (unsigned k = 0; k < n; k++)
				close(in->disks.fd[k]);
			return -1;
		}
		n++;
	}
	in->disks.open = true;
	/* The answer the source waits for: go on. */
	if (send_u32(&in->chan, 0) < 0 || chan_flush(&in->chan, false) < 0) {
		snprintf(msg, len, "the source went away (%s)", strerror(errno));
		close_disks(in);
		return -1;
	}
	return 0;
}

void migrate_refuse(struct migrate_in *in, const char *msg)
{
	size_t n = strlen(msg);

	if (in->disks.copy) {
		/* A disks=copy source waits for an answer: tell it why (its one-line error). */
		if (n > MIG_MAX_REFUSAL)
			n = MIG_MAX_REFUSAL;
		if (send_u32(&in->chan, 1) == 0 && send_u32(&in->chan, (uint32_t)n) == 0 &&
		    chan_write(&in->chan, msg, n) == 0)
			chan_flush(&in->chan, true);
	}
	close_disks(in);
	chan_free(&in->chan);
}

/* One disk record: u32 disk, u64 offset, u32 length, then the data (REC_DISK) or nothing
 * (REC_DISK_ZERO: zeroes). 0, -1 broken stream, -2 malformed. */
static int receive_disk(struct migrate_in *in, uint32_t type)
{
	struct chan *c = &in->chan;
	uint32_t disk, len;
	uint64_t off;

	if (recv_u32(c, &disk) < 0 || recv_u64(c, &off) < 0 || recv_u32(c, &len) < 0)
		return -1;
	if (!in->disks.open || !migrate_disk_record_ok(in->disks.size, in->disks.n, disk, off, len))
		return -2;
	if (type == REC_DISK) {
		if (chan_read(c, in->disks.buf, len) < 0)
			return -1;
		in->disks.bytes += len;
		in->stats.bytes += len;
	} else {
		/* A hole where the file system can punch one (a sparse image stays sparse), else
		 * written zeroes (a block device, or no hole punching). */
		if (fallocate(in->disks.fd[disk], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) == 0)
			return 0;
		memset(in->disks.buf, 0, len);
	}
	if (pwrite_all(in->disks.fd[disk], in->disks.buf, len, off) < 0) {
		log_error("migration: writing disk %u at %llu failed: %s; the VM was not started", disk,
			  (unsigned long long)off, strerror(errno));
		return -3;
	}
	return 0;
}

uint8_t *migrate_receive_ram(struct migrate_in *in, struct vm *vm, int stop_fd, uint64_t *len)
{
	uint64_t npages = vm->mem.total / PAGE_SIZE;
	uint8_t *state = NULL;
	struct chan *c = &in->chan;

	in->guard.stop_fd = stop_fd;
	for (;;) {
		uint32_t type, count;
		uint64_t first, slen;

		if (recv_u32(c, &type) < 0)
			goto broken;
		switch (type) {
		case REC_PAGES:
		case REC_ZERO:
			if (recv_u64(c, &first) < 0 || recv_u32(c, &count) < 0)
				goto broken;
			if (count > MIG_BATCH_PAGES || first > npages || count > npages - first)
				goto malformed;
			for (uint32_t i = 0; i < count; i++) {
				uint8_t *dst = guest_mem_page(&vm->mem, first + i);

				if (!dst)
					goto malformed;
				if (type == REC_ZERO)
					memset(dst, 0, PAGE_SIZE);
				else if (chan_read(c, dst, PAGE_SIZE) < 0)
					goto broken;
			}
			in->stats.bytes += (type == REC_PAGES ? count * PAGE_SIZE : 0) + 16;
			break;
		case REC_ROUND:
			in->stats.rounds++;
			break;
		case REC_DISK:
		case REC_DISK_ZERO: {
			int ret = receive_disk(in, type);

			if (ret == -1)
				goto broken;
			if (ret == -2)
				goto malformed;
			if (ret < 0)
				goto failed;
			in->stats.bytes += 20;
			break;
		}
		case REC_FINAL:
			in->stats.t_final = now_ms();
			/* The copied disks are on stable storage and unlocked before the devices open
			 * them; the source's last dirty blocks came before this record. */
			if (in->disks.open) {
				for (unsigned i = 0; i < in->disks.n; i++)
					if (fdatasync(in->disks.fd[i]) < 0 && errno != EINVAL) {
						log_error(
							"migration: writing the copied disk %u back failed: %s; "
							"the VM was not started",
							i, strerror(errno));
						goto failed;
					}
				close_disks(in);
			}
			if (recv_u64(c, &slen) < 0)
				goto broken;
			if (slen > MIG_MAX_STATE)
				goto malformed;
			state = malloc(slen ? slen : 1);
			if (!state || chan_read(c, state, slen) < 0)
				goto broken;
			/* Encrypted, the state ends the source's stream: its FINAL message. */
			if (!chan_at_end(c))
				goto malformed;
			in->stats.bytes += slen;
			*len = slen;
			return state;
		default:
			goto malformed;
		}
	}
malformed:
	log_error("migration: malformed stream from the source; the VM was not started");
failed:
	close_disks(in);
	free(state);
	return NULL;
broken:
	close_disks(in);
	if (in->guard.stopped)
		log_error("migration: a termination signal came before the hand-over; the VM was not "
			  "started here and the source keeps running it");
	else
		log_error("migration: the stream from the source broke (%s); the VM was not started",
			  in_why(in));
	free(state);
	return NULL;
}

int migrate_finish(struct migrate_in *in, bool ok)
{
	int ret;
	double t = now_ms();

	ret = send_u32(&in->chan, ok ? 0 : 1) < 0 || chan_flush(&in->chan, true) < 0 ? -1 : 0;
	chan_free(&in->chan);
	if (ok)
		fprintf(stderr,
			"kvmbox: migration received: %u rounds, %.1f MiB (disks %.1f MiB), total %.0f ms, "
			"downtime %.0f ms (final state to running)\n",
			in->stats.rounds, (double)in->stats.bytes / (1 << 20),
			(double)in->disks.bytes / (1 << 20), t - in->stats.t_start, t - in->stats.t_final);
	return ret;
}

void migrate_in_close(struct migrate_in *in)
{
	if (!in)
		return;
	close_disks(in);
	chan_free(&in->chan);
	close(in->fd);
	free(in->disks.buf);
	free(in);
}

/* ---- source -------------------------------------------------------------------- */

#define BITS (8 * sizeof(unsigned long))

/* Send the pages set in bitmap (or every page when bitmap is NULL, skipping
 * zero pages, for round 0): runs of data pages and of zero pages. */
static int send_pages(struct migration *m, struct chan *c, const unsigned long *bitmap)
{
	uint64_t npages = m->vm->mem.total / PAGE_SIZE;

	for (uint64_t pg = 0; pg < npages;) {
		uint32_t n = 0;
		bool zero;

		if (bitmap && !(bitmap[pg / BITS] & (1UL << (pg % BITS)))) {
			pg++;
			continue;
		}
		zero = page_is_zero(guest_mem_page(&m->vm->mem, pg));
		if (zero && !bitmap) {
			pg++;
			continue;
		}
		/* A run of same-kind pages. */
		while (n < MIG_BATCH_PAGES && pg + n < npages &&
		       (!bitmap || (bitmap[(pg + n) / BITS] & (1UL << ((pg + n) % BITS)))) &&
		       page_is_zero(guest_mem_page(&m->vm->mem, pg + n)) == zero)
			n++;
		if (send_u32(c, zero ? REC_ZERO : REC_PAGES) < 0 || send_u64(c, pg) < 0 || send_u32(c, n) < 0)
			return -1;
		if (!zero) {
			for (uint32_t i = 0; i < n; i++)
				if (chan_write(c, guest_mem_page(&m->vm->mem, pg + i), PAGE_SIZE) < 0)
					return -1;
			m->bytes += n * PAGE_SIZE;
		}
		m->bytes += 16;
		m->pages += n;
		pg += n;
		if (atomic_load(&m->cancel) || atomic_load(&m->vm->exit_reason) != VM_RUNNING)
			return -1;
	}
	return 0;
}

/* ---- source: disks=copy ---- */

/* The VM's disks in creation order (the destination lists its own --disk images in the same
 * order), each tracked from here on. 0, or -1 (out of memory). */
static int disks_start(struct migration *m)
{
	for (struct device *d = m->vm->devices; d; d = d->next) {
		struct blockfile *bf = d->ops->disk ? d->ops->disk(d) : NULL;
		struct mig_disk *k;

		if (!bf)
			continue;
		if (m->ndisks == MIG_MAX_DISKS)
			return -1;
		k = &m->disks[m->ndisks++];
		k->bf = bf;
		blockfile_get_info(bf, &k->info);
		k->nblocks = blockfile_dirty_blocks(bf);
		k->pend = calloc((size_t)((k->nblocks + BITS - 1) / BITS) + 1, sizeof(unsigned long));
		if (!k->pend || blockfile_dirty_start(bf) < 0)
			return -1;
		k->tracking = true;
	}
	return 0;
}

/* Tracking off, maps freed (success or failure alike: nothing is kept). */
static void disks_stop(struct migration *m)
{
	for (unsigned i = 0; i < m->ndisks; i++) {
		if (m->disks[i].tracking)
			blockfile_dirty_stop(m->disks[i].bf);
		free(m->disks[i].pend);
	}
	m->ndisks = 0;
}

/* Move what the guest wrote since the last call into the blocks to send. Returns the blocks
 * to send, all disks together. */
static uint64_t disks_take(struct migration *m)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < m->ndisks; i++) {
		struct mig_disk *k = &m->disks[i];

		blockfile_dirty_take(k->bf, k->pend);
		for (uint64_t w = 0; w < (k->nblocks + BITS - 1) / BITS; w++)
			n += (uint64_t)__builtin_popcountl(k->pend[w]);
	}
	return n;
}

/* Send every block (all: the first round), or the pending ones, as REC_DISK / REC_DISK_ZERO
 * records. 0, or -1: the stream broke or the migration was cancelled, or (why set) a disk
 * could not be read. */
static int send_disks(struct migration *m, struct chan *c, bool all, const char **why)
{
	for (unsigned i = 0; i < m->ndisks; i++) {
		struct mig_disk *k = &m->disks[i];

		for (uint64_t b = 0; b < k->nblocks; b++) {
			uint64_t off = b * MIG_DISK_BLOCK;
			uint32_t len = (uint32_t)(k->info.size - off < MIG_DISK_BLOCK ? k->info.size - off
										      : MIG_DISK_BLOCK);
			bool zero;

			if (!all && !(k->pend[b / BITS] & (1UL << (b % BITS))))
				continue;
			k->pend[b / BITS] &= ~(1UL << (b % BITS));
			if (blockfile_pread(k->bf, m->dbuf, len, off) < 0) {
				snprintf(m->why, sizeof(m->why), "reading disk %u (%s) at %llu failed: %s", i,
					 blockfile_path(k->bf), (unsigned long long)off, strerror(errno));
				*why = m->why;
				return -1;
			}
			/* All zero: the first byte is, and every byte equals the next. */
			zero = m->dbuf[0] == 0 && !memcmp(m->dbuf, m->dbuf + 1, len - 1);
			if (send_u32(c, zero ? REC_DISK_ZERO : REC_DISK) < 0 || send_u32(c, i) < 0 ||
			    send_u64(c, off) < 0 || send_u32(c, len) < 0 ||
			    (!zero && chan_write(c, m->dbuf, len) < 0))
				return -1;
			m->bytes += 20 + (zero ? 0 : len);
			m->disk_bytes += zero ? 0 : len;
			if (atomic_load(&m->cancel) || atomic_load(&m->vm->exit_reason) != VM_RUNNING)
				return -1;
		}
	}
	return 0;
}

/* Tell the destination which disks come and wait for its yes; -1 with why on a refusal (its
 * line) or a broken stream. */
static int disks_offer(struct migration *m, struct chan *c, const char **why)
{
	char text[MIG_MAX_REFUSAL + 1];
	uint32_t status = 1, n = 0;

	if (send_u32(c, m->ndisks) < 0)
		return -1;
	for (unsigned i = 0; i < m->ndisks; i++)
		if (send_u64(c, m->disks[i].info.size) < 0 || send_u64(c, m->disks[i].info.dev) < 0 ||
		    send_u64(c, m->disks[i].info.ino) < 0)
			return -1;
	if (chan_flush(c, false) < 0 || recv_u32(c, &status) < 0)
		return -1;
	if (status == 0)
		return 0;
	if (recv_u32(c, &n) < 0 || n > MIG_MAX_REFUSAL || chan_read(c, text, n) < 0) {
		*why = "the destination refused the disks (no reason came)";
		return -1;
	}
	text[n] = '\0';
	for (uint32_t i = 0; i < n; i++)
		if (text[i] < 0x20 || text[i] == 0x7f)
			text[i] = '?'; /* one line, whatever the peer sent */
	snprintf(m->why, sizeof(m->why), "the destination refused: %s", text);
	*why = m->why;
	return -1;
}

/* KVM's dirty log of every slot plus the devices' writes, merged into out.
 * Returns the number of dirty pages. */
static uint64_t collect_dirty(struct migration *m, unsigned long *out, unsigned long *tmp, size_t words)
{
	struct vm *vm = m->vm;
	uint64_t base = 0, count = 0;

	guest_mem_dirty_take(&vm->mem, out);
	for (int k = 0; k < vm->mem.nr_regions; k++) {
		uint64_t rp = vm->mem.regions[k].size / PAGE_SIZE;

		memset(tmp, 0, words * sizeof(unsigned long));
		if (vm_dirty_log_get(vm, k, tmp) < 0)
			return UINT64_MAX;
		for (uint64_t i = 0; i < rp; i++)
			if (tmp[i / BITS] & (1UL << (i % BITS)))
				out[(base + i) / BITS] |= 1UL << ((base + i) % BITS);
		base += rp;
	}
	for (size_t i = 0; i < words; i++)
		count += (uint64_t)__builtin_popcountl(out[i]);
	return count;
}

static void *migrate_thread(void *arg)
{
	struct migration *m = arg;
	struct vm *vm = m->vm;
	struct sockaddr_storage ss;
	socklen_t slen;
	size_t words = (size_t)((vm->mem.total / PAGE_SIZE + BITS - 1) / BITS);
	unsigned long *dirty = calloc(words, sizeof(unsigned long));
	unsigned long *tmp = calloc(words, sizeof(unsigned long));
	struct ser_writer cfgw, state;
	const char *why = NULL;
	bool paused = false, released = false, logging = false;
	uint8_t hello[16] = { 0 };
	int family, fd = -1;
	uint32_t ack = 1;
	const struct vm_keys *keys = &vm->cfg->keys;
	struct chan ch;

	chan_init_plain(&ch, -1);
	ser_writer_init(&cfgw);
	ser_writer_init(&state);
	pthread_setname_np(pthread_self(), "migrate");
	sandbox_thread_enter(SB_MIGRATE);
	m->t_start = now_ms();
	if (!dirty || !tmp) {
		why = "out of memory";
		goto fail;
	}
	if (migrate_parse_uri(m->uri, &ss, &slen, &family) < 0) {
		why = "not tcp:IP:PORT or unix:PATH";
		goto fail;
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, slen) < 0) {
		why = strerror(errno);
		goto fail;
	}
	set_timeouts(fd, MIG_IO_TIMEOUT_S);
	if (!keys->have_migration_key) {
		chan_init_plain(&ch, fd);
	} else if (chan_connect(&ch, fd, keys->migration_key) < 0) {
		why = ch.auth_failed
			      ? "the destination did not authenticate: its --migration-key is not this one"
		      : errno == ECONNRESET || errno == EPIPE
			      ? "the destination refused the key exchange (a different --migration-key there, or none)"
			      : strerror(errno);
		goto fail;
	}
	memcpy(hello, MIG_MAGIC, 8);
	put_le32(hello + 8, m->copy_disks ? MIG_VERSION_DISKS : MIG_VERSION);
	put_le32(hello + 12, arch_this);
	snap_config_save(vm->cfg, &cfgw);
	if (cfgw.err || chan_write(&ch, hello, sizeof(hello)) < 0 || send_u64(&ch, cfgw.len) < 0 ||
	    chan_write(&ch, cfgw.buf, cfgw.len) < 0)
		goto io;
	if (m->copy_disks) {
		/* Tracked from before the first copy on: whatever the guest writes later goes again. */
		m->dbuf = malloc(MIG_DISK_BLOCK);
		if (!m->dbuf || disks_start(m) < 0) {
			why = "out of memory for the disks' dirty maps";
			goto fail;
		}
		if (disks_offer(m, &ch, &why) < 0)
			goto io_or_why;
	}
	/* Start tracking before the first copy: what changes from here on is
	 * sent again. */
	if (guest_mem_dirty_start(&vm->mem) < 0 || vm_dirty_log_enable(vm, true) < 0) {
		why = "cannot start dirty-page logging";
		goto fail;
	}
	logging = true;
	collect_dirty(m, dirty, tmp, words); /* clear */
	if (send_pages(m, &ch, NULL) < 0)
		goto io;
	if (send_disks(m, &ch, true, &why) < 0)
		goto io_or_why;
	if (send_u32(&ch, REC_ROUND) < 0)
		goto io;
	m->rounds = 1;
	for (;;) {
		uint64_t n = collect_dirty(m, dirty, tmp, words);

		if (n == UINT64_MAX) {
			why = "reading the dirty log failed";
			goto fail;
		}
		/* The disks' pending blocks count in pages: a guest that writes its disk faster than it
		 * goes out meets the round limit, and the final round sends the rest. */
		n += disks_take(m) * MIG_DISK_PAGES;
		if (n <= MIG_SMALL_DIRTY || m->rounds >= MIG_MAX_ROUNDS)
			break;
		if (send_pages(m, &ch, dirty) < 0)
			goto io;
		if (send_disks(m, &ch, false, &why) < 0)
			goto io_or_why;
		if (send_u32(&ch, REC_ROUND) < 0)
			goto io;
		m->rounds++;
	}
	/* Stop and copy: the state, then what is still dirty (the bitmap taken above plus what
	 * changed since), then the backends change hands. The state is captured first because
	 * capturing it may write guest RAM (arm64: KVM stores the ITS tables there), and those
	 * pages must be sent too. */
	vm_pause(vm);
	paused = true;
	m->t_pause = now_ms();
	if (vm_state_save(vm, &state) < 0) {
		why = "could not capture the VM state";
		goto fail;
	}
	{
		unsigned long *more = calloc(words, sizeof(unsigned long));

		if (!more || collect_dirty(m, more, tmp, words) == UINT64_MAX) {
			free(more);
			why = "reading the dirty log failed";
			goto fail;
		}
		for (size_t i = 0; i < words; i++)
			dirty[i] |= more[i];
		free(more);
	}
	if (send_pages(m, &ch, dirty) < 0)
		goto io;
	/* The pause completed every disk request (virtio-blk's quiesce), so what they wrote is
	 * in the dirty maps now: the last blocks. */
	disks_take(m);
	if (send_disks(m, &ch, false, &why) < 0)
		goto io_or_why;
	for (struct device *d = vm->devices; d; d = d->next) {
		if (d->ops->release && d->ops->release(d) < 0) {
			why = "a device could not hand over its backend";
			released = true;
			goto fail;
		}
	}
	released = true;
	if (send_u32(&ch, REC_FINAL) < 0 || send_u64(&ch, state.len) < 0 ||
	    chan_write(&ch, state.buf, state.len) < 0 || chan_flush(&ch, true) < 0)
		goto io;
	m->bytes += state.len;
	/* The destination loads the state and answers; the guest is stopped
	 * meanwhile, so do not wait long. */
	set_timeouts(fd, MIG_ACK_TIMEOUT_S);
	if (recv_u32(&ch, &ack) < 0) {
		why = ch.auth_failed ? "the destination's answer did not authenticate (changed on the way?)"
		      : errno == EAGAIN || errno == EWOULDBLOCK
			      ? "the destination did not acknowledge in time"
			      : strerror(errno);
		goto fail;
	}
	if (!chan_at_end(&ch)) {
		why = "the destination's answer did not end its stream";
		goto fail;
	}
	if (ack != 0) {
		why = "the destination could not load the state";
		goto fail;
	}
	m->t_end = now_ms();
	fprintf(stderr,
		"kvmbox: migration sent: %u rounds, %.1f MiB (disks %.1f MiB), total %.0f ms, downtime %.0f ms\n",
		m->rounds, (double)m->bytes / (1 << 20), (double)m->disk_bytes / (1 << 20),
		m->t_end - m->t_start, m->t_end - m->t_pause);
	{
		struct migration_result r = { .ok = true,
					      .rounds = m->rounds,
					      .bytes = m->bytes,
					      .pages = m->pages,
					      .disk_bytes = m->disk_bytes,
					      .total_ms = m->t_end - m->t_start,
					      .downtime_ms = m->t_end - m->t_pause };

		m->done(m->done_ctx, &r);
	}
	/* The destination runs the VM now: it stops here, and kvmbox exits 0. */
	vm_request_stop(vm, VM_HANDOFF);
	/* The VM stays paused: the destination runs it now. */
	guest_mem_dirty_stop(&vm->mem);
	disks_stop(m);
	free(m->dbuf);
	chan_free(&ch);
	close(fd);
	free(dirty);
	free(tmp);
	ser_writer_free(&cfgw);
	ser_writer_free(&state);
	return NULL;
io_or_why: /* the stream broke, unless the step said why it failed */
	if (why)
		goto fail;
io:
	why = atomic_load(&m->cancel)                   ? "cancelled: the VM stopped"
	      : ch.auth_failed                          ? "a message did not authenticate"
	      : errno == EAGAIN || errno == EWOULDBLOCK ? "the destination stopped reading (timed out)"
	      : errno                                   ? strerror(errno)
							: "stream broke";
fail:
	if (released)
		for (struct device *d = vm->devices; d; d = d->next)
			if (d->ops->reacquire && d->ops->reacquire(d) < 0)
				log_error("migration: device %s could not take its backend back", d->name);
	if (logging) {
		/* KVM's dirty logging stays on: it costs nothing once no one
		 * fetches the log, and turning it off and on again while the
		 * guest runs (a retry) wedged the nested KVM of the emulated
		 * test host (soft lockups in the PIT thread and KVM_SET_USER_
		 * MEMORY_REGION). A retry just starts a fresh log. */
		guest_mem_dirty_stop(&vm->mem);
	}
	/* The disks' tracking ends with the attempt: nothing was lost (the source's images are
	 * whole), a retry copies them again. */
	disks_stop(m);
	free(m->dbuf);
	m->dbuf = NULL;
	if (paused)
		vm_resume(vm);
	chan_free(&ch);
	if (fd >= 0)
		close(fd);
	{
		const char *after = atomic_load(&vm->exit_reason) == VM_RUNNING
					    ? "the VM keeps running here"
					    : "the VM stopped here meanwhile";

		struct migration_result r = { .ok = false };

		snprintf(r.error, sizeof(r.error), "migration to %s failed: %s; %s", m->uri,
			 why ? why : "unknown error", after);
		log_error("%s", r.error);
		atomic_store(m->migrating, false);
		m->done(m->done_ctx, &r);
	}
	free(dirty);
	free(tmp);
	ser_writer_free(&cfgw);
	ser_writer_free(&state);
	return NULL;
}

struct migration *migrate_start(struct vm *vm, const char *uri, bool copy_disks, _Atomic bool *migrating,
				migration_done_fn done, void *ctx, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fam;
	struct migration *m;

	if (migrate_parse_uri(uri, &ss, &sl, &fam) < 0) {
		snprintf(err, errlen,
			 "migrate: '%s' is not tcp:IP:PORT or unix:PATH (host names are not resolved)", uri);
		return NULL;
	}
	if (tcp_refused(fam, &vm->cfg->keys)) {
		snprintf(err, errlen,
			 "migrate %s: a migration over TCP without a key can be read and changed on the way; "
			 "start the VM with --migration-key FILE (the same on the destination), or "
			 "--insecure-migration",
			 uri);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (strlen(uri) >= sizeof(m->uri)) {
		free(m);
		snprintf(err, errlen, "migration address too long");
		return NULL;
	}
	m->vm = vm;
	m->copy_disks = copy_disks;
	m->migrating = migrating;
	m->done = done;
	m->done_ctx = ctx;
	strcpy(m->uri, uri);
	if (pthread_create(&m->thread, NULL, migrate_thread, m) != 0) {
		free(m);
		snprintf(err, errlen, "cannot start the migration thread");
		return NULL;
	}
	return m;
}

void migrate_cancel(struct migration **mp)
{
	struct migration *m = *mp;

	if (!m)
		return;
	atomic_store(&m->cancel, true);
	pthread_join(m->thread, NULL);
	free(m);
	*mp = NULL;
}
