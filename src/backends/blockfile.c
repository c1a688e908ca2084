#include "blockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"

#ifndef __GLIBC__
/* musl (before 1.2.5) has no preadv2/pwritev2: the system calls (64-bit: the offset's high
 * half is 0). */
static ssize_t kb_preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	return syscall(SYS_preadv2, fd, iov, n, (long)off, 0L, flags);
}
static ssize_t kb_pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	return syscall(SYS_pwritev2, fd, iov, n, (long)off, 0L, flags);
}
#define preadv2  kb_preadv2
#define pwritev2 kb_pwritev2
#endif

/* Zeroes are written in chunks of this size when the file system can neither
 * zero a range nor punch a hole. */
#define ZERO_CHUNK (1u << 20)

#define MODE_PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define MODE_ZERO  (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)

/* The ways WRITE_ZEROES can be done, tried in turn (r->phase indexes the
 * order for the request's unmap flag) until one is supported. */
enum zero_method { ZM_ZERO_RANGE, ZM_PUNCH, ZM_WRITE };
static const enum zero_method zero_order[2][3] = {
	{ ZM_ZERO_RANGE, ZM_PUNCH, ZM_WRITE }, /* keep allocated if we can */
	{ ZM_PUNCH, ZM_ZERO_RANGE, ZM_WRITE }, /* unmap allowed: punch first */
};

struct blockfile {
	char *path;
	int fd; /* -1 while released (closed block device) */
	int efd;
	int open_flags; /* to reopen by path after a release */
	bool locked;    /* holds the flock */
	bool released;  /* handed to another process: no I/O */
	struct blockfile_info info;
	blockfile_done_fn done;
	void *opaque;
	bool async;
	bool have_fallocate_op; /* IORING_OP_FALLOCATE (5.6+) */
	bool sq_dirty;          /* SQEs prepared and not yet submitted */
	struct io_uring ring;
	bool no_punch;      /* the file system refused PUNCH_HOLE */
	bool no_zero_range; /* ... ZERO_RANGE */
	void *zero_buf;
	unsigned in_flight;
	unsigned finished; /* running count, for blockfile_reap's result */
	uint64_t write_seq;
	struct blockfile_req *whead, *wtail; /* write-like in flight, oldest first */
	struct blockfile_req *fhead, *ftail; /* flushes waiting for writes */
	struct blockfile_req *dhead, *dtail; /* done synchronously, callback pending */
	/* Dirty tracking (blockfile_dirty_*): dirty_on is read without the lock on every
	 * write-like completion, so an image nobody copies pays one atomic load. */
	_Atomic bool dirty_on;
	pthread_mutex_t dirty_lock;
	unsigned long *dirty; /* blockfile_dirty_blocks() bits, under dirty_lock */
};

#define LBITS (8 * sizeof(unsigned long))

static bool write_like(const struct blockfile_req *r)
{
	return r->op == BLOCKFILE_WRITE || r->op == BLOCKFILE_DISCARD || r->op == BLOCKFILE_WRITE_ZEROES;
}

static void fifo_push(struct blockfile_req **head, struct blockfile_req **tail, struct blockfile_req *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

static struct blockfile_req *fifo_pop(struct blockfile_req **head, struct blockfile_req **tail)
{
	struct blockfile_req *r = *head;

	if (r) {
		*head = r->next;
		if (!*head)
			*tail = NULL;
		r->next = NULL;
	}
	return r;
}

static uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Drop the first n transferred bytes from the request's buffers. */
static void req_advance(struct blockfile_req *r, uint64_t n)
{
	r->offset += n;
	r->left -= n;
	if (r->op == BLOCKFILE_WRITE_ZEROES)
		return; /* ziov is rebuilt for each chunk */
	while (n && r->niov) {
		if (n >= r->iov[0].iov_len) {
			n -= r->iov[0].iov_len;
			r->iov++;
			r->niov--;
		} else {
			r->iov[0].iov_base = (uint8_t *)r->iov[0].iov_base + n;
			r->iov[0].iov_len -= n;
			n = 0;
		}
	}
}

/* At most IOV_MAX buffers per system call; the rest follow as a partial
 * transfer would. */
static int niov_cap(unsigned n)
{
	return n > IOV_MAX ? IOV_MAX : (int)n;
}

/* The zero-write method to use now, skipping ones known not to work. */
static enum zero_method zero_method(const struct blockfile *bf, struct blockfile_req *r)
{
	for (;; r->phase++) {
		enum zero_method m = zero_order[r->unmap][r->phase];

		if ((m == ZM_PUNCH && bf->no_punch) || (m == ZM_ZERO_RANGE && bf->no_zero_range))
			continue;
		return m; /* ZM_WRITE is last and always possible */
	}
}

static int zero_method_mode(enum zero_method m)
{
	return m == ZM_PUNCH ? MODE_PUNCH : MODE_ZERO;
}

/* A fallocate mode the file (system) does not implement. */
static bool unsupported(int err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS;
}

static void mark_unsupported(struct blockfile *bf, enum zero_method m)
{
	if (m == ZM_PUNCH)
		bf->no_punch = true;
	else if (m == ZM_ZERO_RANGE)
		bf->no_zero_range = true;
}

static int prepare_zero_chunk(struct blockfile *bf, struct blockfile_req *r)
{
	if (!bf->zero_buf) {
		bf->zero_buf = calloc(1, ZERO_CHUNK);
		if (!bf->zero_buf)
			return -ENOMEM;
	}
	r->ziov.iov_base = bf->zero_buf;
	r->ziov.iov_len = r->left < ZERO_CHUNK ? r->left : ZERO_CHUNK;
	return 0;
}

/* Run what is left of r to the end in this thread. Returns 0 or -errno. */
static int run_sync(struct blockfile *bf, struct blockfile_req *r)
{
	ssize_t n;

	switch (r->op) {
	case BLOCKFILE_READ:
	case BLOCKFILE_WRITE:
		while (r->left) {
			if (r->op == BLOCKFILE_READ)
				n = preadv2(bf->fd, r->iov, niov_cap(r->niov), (off_t)r->offset, 0);
			else
				n = pwritev2(bf->fd, r->iov, niov_cap(r->niov), (off_t)r->offset,
					     r->fua ? RWF_DSYNC : 0);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO; /* end of file inside the disk: it shrank */
			req_advance(r, (uint64_t)n);
		}
		return 0;
	case BLOCKFILE_FLUSH:
		while (fdatasync(bf->fd) < 0)
			if (errno != EINTR)
				return -errno;
		return 0;
	case BLOCKFILE_DISCARD:
		if (r->len == 0 || bf->no_punch)
			return 0;
		if (fallocate(bf->fd, MODE_PUNCH, (off_t)r->offset, (off_t)r->len) == 0)
			return 0;
		if (unsupported(-errno)) {
			bf->no_punch = true;
			return 0; /* discard is a hint */
		}
		return -errno;
	case BLOCKFILE_WRITE_ZEROES:
		while (r->left) {
			enum zero_method m = zero_method(bf, r);
			off_t off = (off_t)r->offset, len = (off_t)r->left;
			int err;

			if (m != ZM_WRITE) {
				if (fallocate(bf->fd, zero_method_mode(m), off, len) == 0)
					return 0;
				if (!unsupported(-errno))
					return -errno;
				mark_unsupported(bf, m);
				continue;
			}
			err = prepare_zero_chunk(bf, r);
			if (err)
				return err;
			/* One buffer: pwrite. (GCC 12 with -fsanitize=address misreads
			 * pwritev(&r->ziov, 1) as a 16-byte read of the 8-byte iov_base
			 * and -Werror=stringop-overread stops the build.) */
			n = pwrite(bf->fd, r->ziov.iov_base, r->ziov.iov_len, (off_t)r->offset);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO;
			req_advance(r, (uint64_t)n);
		}
		return 0;
	}
	return -EINVAL;
}

/* Finish r synchronously; its callback runs from the next reap. */
static void complete_later(struct blockfile *bf, struct blockfile_req *r, int result)
{
	uint64_t one = 1;

	r->result = result;
	fifo_push(&bf->dhead, &bf->dtail, r);
	if (write(bf->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("disk %s: eventfd: %s", bf->path, strerror(errno));
}

static void flush_sq(struct blockfile *bf)
{
	int ret;

	if (!bf->sq_dirty)
		return;
	do
		ret = io_uring_submit(&bf->ring);
	while (ret == -EINTR);
	/* On -EAGAIN/-EBUSY the entries stay in the ring and go with the next
	 * submit (every reap and drain submits again). */
	if (ret < 0)
		log_debug("disk %s: io_uring_submit: %s", bf->path, strerror(-ret));
	else
		bf->sq_dirty = false;
}

static struct io_uring_sqe *get_sqe(struct blockfile *bf)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bf->ring);

	if (!sqe) {
		flush_sq(bf);
		sqe = io_uring_get_sqe(&bf->ring);
	}
	return sqe;
}

/* Start (or continue) r: one SQE, or a synchronous run when io_uring cannot
 * take it. */
static void issue(struct blockfile *bf, struct blockfile_req *r)
{
	struct io_uring_sqe *sqe;
	enum zero_method m = ZM_WRITE;

	if (!bf->async)
		goto sync;
	if (r->op == BLOCKFILE_DISCARD) {
		if (r->len == 0 || bf->no_punch) {
			complete_later(bf, r, 0);
			return;
		}
		if (!bf->have_fallocate_op)
			goto sync;
	}
	if (r->op == BLOCKFILE_WRITE_ZEROES) {
		m = zero_method(bf, r);
		if (m != ZM_WRITE && !bf->have_fallocate_op)
			goto sync;
		if (m == ZM_WRITE) {
			int err = prepare_zero_chunk(bf, r);

			if (err) {
				complete_later(bf, r, err);
				return;
			}
		}
	}
	sqe = get_sqe(bf);
	if (!sqe)
		goto sync; /* cannot happen with depth <= ring size; stay correct anyway */
	switch (r->op) {
	case BLOCKFILE_READ:
		io_uring_prep_readv(sqe, bf->fd, r->iov, (unsigned)niov_cap(r->niov), r->offset);
		break;
	case BLOCKFILE_WRITE:
		io_uring_prep_writev(sqe, bf->fd, r->iov, (unsigned)niov_cap(r->niov), r->offset);
		if (r->fua)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case BLOCKFILE_FLUSH:
		io_uring_prep_fsync(sqe, bf->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLOCKFILE_DISCARD:
		io_uring_prep_fallocate(sqe, bf->fd, MODE_PUNCH, r->offset, r->len);
		break;
	case BLOCKFILE_WRITE_ZEROES:
		if (m == ZM_WRITE)
			io_uring_prep_writev(sqe, bf->fd, &r->ziov, 1, r->offset);
		else
			io_uring_prep_fallocate(sqe, bf->fd, zero_method_mode(m), r->offset, r->left);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
	bf->sq_dirty = true;
	return;
sync:
	complete_later(bf, r, run_sync(bf, r));
}

/* Start every waiting flush whose earlier writes have all completed. */
static void release_flushes(struct blockfile *bf)
{
	while (bf->fhead && (!bf->whead || bf->whead->seq > bf->fhead->seq))
		issue(bf, fifo_pop(&bf->fhead, &bf->ftail));
}

/* Set the bits of the blocks [off, off + len) touches (clipped to the image). */
static void dirty_mark(struct blockfile *bf, uint64_t off, uint64_t len)
{
	uint64_t nblk = blockfile_dirty_blocks(bf), first, last;

	if (!len || off >= bf->info.size)
		return;
	if (len > bf->info.size - off)
		len = bf->info.size - off;
	first = off >> BLOCKFILE_DIRTY_SHIFT;
	last = (off + len - 1) >> BLOCKFILE_DIRTY_SHIFT;
	pthread_mutex_lock(&bf->dirty_lock);
	if (bf->dirty)
		for (uint64_t b = first; b <= last && b < nblk; b++)
			bf->dirty[b / LBITS] |= 1UL << (b % LBITS);
	pthread_mutex_unlock(&bf->dirty_lock);
}

static void finish(struct blockfile *bf, struct blockfile_req *r, int result)
{
	r->result = result;
	/* Whatever the result: a failed or partial write may have changed part of its range. */
	if (write_like(r) && atomic_load_explicit(&bf->dirty_on, memory_order_acquire))
		dirty_mark(bf, r->span_off, r->span_len);
	if (write_like(r)) {
		if (r->wprev)
			r->wprev->wnext = r->wnext;
		else
			bf->whead = r->wnext;
		if (r->wnext)
			r->wnext->wprev = r->wprev;
		else
			bf->wtail = r->wprev;
		r->wprev = r->wnext = NULL;
	}
	bf->in_flight--;
	bf->finished++;
	bf->done(r, bf->opaque);
	release_flushes(bf);
}

/* One io_uring completion for r with result res. */
static void on_cqe(struct blockfile *bf, struct blockfile_req *r, int res)
{
	if (res == -EINTR || res == -EAGAIN) {
		issue(bf, r);
		return;
	}
	switch (r->op) {
	case BLOCKFILE_READ:
	case BLOCKFILE_WRITE:
		break;
	case BLOCKFILE_FLUSH:
		finish(bf, r, res < 0 ? res : 0);
		return;
	case BLOCKFILE_DISCARD:
		if (unsupported(res)) {
			bf->no_punch = true;
			res = 0;
		}
		finish(bf, r, res < 0 ? res : 0);
		return;
	case BLOCKFILE_WRITE_ZEROES: {
		enum zero_method m = zero_order[r->unmap][r->phase]; /* the one issued */

		if (m == ZM_WRITE)
			break;
		if (unsupported(res)) {
			mark_unsupported(bf, m);
			issue(bf, r);
			return;
		}
		finish(bf, r, res < 0 ? res : 0);
		return;
	}
	}
	/* A transfer: continue it until everything moved. */
	if (res < 0) {
		finish(bf, r, res);
	} else if (res == 0) {
		finish(bf, r, -EIO);
	} else {
		req_advance(r, (uint64_t)res);
		if (r->left)
			issue(bf, r);
		else
			finish(bf, r, 0);
	}
}

void blockfile_submit(struct blockfile *bf, struct blockfile_req *r)
{
	r->result = 0;
	r->phase = 0;
	r->next = r->wprev = r->wnext = NULL;
	bf->in_flight++;
	if (bf->released) {
		/* The owner must not submit while another process has the image;
		 * fail the request rather than touch a file we no longer own. */
		log_debug("disk %s: request while released", bf->path);
		complete_later(bf, r, -EIO);
		return;
	}
	switch (r->op) {
	case BLOCKFILE_READ:
	case BLOCKFILE_WRITE:
		r->left = iov_total(r->iov, r->niov);
		break;
	case BLOCKFILE_DISCARD:
	case BLOCKFILE_WRITE_ZEROES:
		r->left = r->len;
		break;
	case BLOCKFILE_FLUSH:
		r->left = 0;
		r->seq = bf->write_seq; /* covers every write-like request so far */
		if (bf->whead)
			fifo_push(&bf->fhead, &bf->ftail, r);
		else
			issue(bf, r);
		return;
	default:
		complete_later(bf, r, -EINVAL);
		return;
	}
	/* Listed even when empty: finish() unlinks every write-like request. */
	if (write_like(r)) {
		r->span_off = r->offset; /* WRITE advances offset on partial transfers */
		r->span_len = r->left;
		r->seq = ++bf->write_seq;
		r->wprev = bf->wtail;
		if (bf->wtail)
			bf->wtail->wnext = r;
		else
			bf->whead = r;
		bf->wtail = r;
	}
	if (r->left == 0)
		complete_later(bf, r, 0);
	else
		issue(bf, r);
}

void blockfile_kick(struct blockfile *bf)
{
	if (bf->async)
		flush_sq(bf);
}

unsigned blockfile_reap(struct blockfile *bf)
{
	unsigned start = bf->finished;
	uint64_t v;
	bool progress;

	/* Clear the eventfd first: anything completing after this signals it
	 * again, so no completion is left unnoticed. */
	if (read(bf->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("disk %s: eventfd: %s", bf->path, strerror(errno));
	do {
		struct blockfile_req *r;

		progress = false;
		if (bf->async) {
			struct io_uring_cqe *cqe;

			while (io_uring_peek_cqe(&bf->ring, &cqe) == 0) {
				int res = cqe->res;

				r = io_uring_cqe_get_data(cqe);
				io_uring_cqe_seen(&bf->ring, cqe);
				progress = true;
				if (r)
					on_cqe(bf, r, res);
			}
		}
		while ((r = fifo_pop(&bf->dhead, &bf->dtail))) {
			progress = true;
			finish(bf, r, r->result);
		}
		blockfile_kick(bf);
	} while (progress);
	return bf->finished - start;
}

unsigned blockfile_in_flight(const struct blockfile *bf)
{
	return bf->in_flight;
}

int blockfile_drain(struct blockfile *bf)
{
	while (bf->in_flight) {
		struct io_uring_cqe *cqe;
		int ret;

		blockfile_reap(bf);
		if (!bf->in_flight)
			break;
		if (bf->dhead)
			continue; /* synchronous completions: reap again */
		if (!bf->async) {
			log_error("disk %s: internal error: %u requests lost", bf->path, bf->in_flight);
			return -1;
		}
		ret = io_uring_wait_cqe(&bf->ring, &cqe);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
			log_error("disk %s: waiting for I/O to finish: %s", bf->path, strerror(-ret));
			return -1;
		}
	}
	return 0;
}

static void open_error(const char *path, bool readonly, int err)
{
	const char *hint;

	switch (err) {
	case ENOENT:
	case ENOTDIR:
		hint = "give an existing image file";
		break;
	case EACCES:
	case EPERM:
		hint = readonly ? "check its permissions"
				: "check its permissions, or add ,ro to use it read-only";
		break;
	case EROFS:
		hint = "add ,ro to use it read-only";
		break;
	case EBUSY:
		hint = "the block device is in use (mounted?); unmount it or add ,ro";
		break;
	default:
		hint = "give a readable raw disk image";
		break;
	}
	log_error("disk %s: %s; %s", path, strerror(err), hint);
}

/* Take the flock: exclusive when writable, shared when read-only. -1 with a
 * one-line error when another process holds it (`again`: we are taking it
 * back after a release); a file system that cannot lock only warns. */
static int lock_image(struct blockfile *bf, bool again)
{
	bool ro = bf->info.readonly;

	if (flock(bf->fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0) {
		bf->locked = true;
		return 0;
	}
	if (errno == EWOULDBLOCK) {
		if (again)
			log_error("disk %s: cannot take the image back: another process locked it after "
				  "the release (the migration destination?); stop it and retry",
				  bf->path);
		else
			log_error("disk %s: image is locked: another VM has it open%s; stop that VM%s",
				  bf->path, ro ? " writable" : "", ro ? "" : " or give ,ro to every user");
		return -1;
	}
	/* Some network file systems cannot lock: go on, but say so. */
	log_warn("disk %s: cannot lock the image (%s); make sure no other VM writes it", bf->path,
		 strerror(errno));
	return 0;
}

/* Set up io_uring; false (and a warning) when it is not usable here. */
static bool setup_uring(struct blockfile *bf, unsigned depth)
{
	struct io_uring_probe *probe;
	unsigned entries = 8;
	int ret;

	if (getenv("KVMBOX_BLK_SYNC"))
		return false;
	while (entries < depth && entries < 4096)
		entries <<= 1;
	ret = io_uring_queue_init(entries, &bf->ring, 0);
	if (ret < 0) {
		log_warn("disk %s: io_uring unavailable (%s); using synchronous I/O, one request at a time",
			 bf->path, strerror(-ret));
		return false;
	}
	probe = io_uring_get_probe_ring(&bf->ring);
	if (probe) {
		if (!io_uring_opcode_supported(probe, IORING_OP_READV) ||
		    !io_uring_opcode_supported(probe, IORING_OP_WRITEV) ||
		    !io_uring_opcode_supported(probe, IORING_OP_FSYNC)) {
			io_uring_free_probe(probe);
			io_uring_queue_exit(&bf->ring);
			log_warn("disk %s: io_uring lacks readv/writev/fsync; using synchronous I/O",
				 bf->path);
			return false;
		}
		bf->have_fallocate_op = io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
		io_uring_free_probe(probe);
	}
	ret = io_uring_register_eventfd(&bf->ring, bf->efd);
	if (ret < 0) {
		io_uring_queue_exit(&bf->ring);
		log_warn("disk %s: io_uring eventfd (%s); using synchronous I/O", bf->path, strerror(-ret));
		return false;
	}
	return true;
}

struct blockfile *blockfile_open(const char *path, bool readonly, unsigned depth, blockfile_done_fn done,
				 void *opaque)
{
	struct blockfile *bf;
	struct stat st;
	int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;

	/* stat first: anything but an image file or a block device is refused without being
	 * opened (a FIFO's open blocks, a character device may act on an open for writing). */
	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
			log_error("disk %s: not a regular file or block device; give a raw disk image", path);
			return NULL;
		}
		/* A writable block device is opened O_EXCL: the kernel then refuses it
		 * while mounted or used by another exclusive opener. */
		if (!readonly && S_ISBLK(st.st_mode))
			flags |= O_EXCL;
	}
	bf = calloc(1, sizeof(*bf));
	if (bf)
		pthread_mutex_init(&bf->dirty_lock, NULL);
	if (!bf || !(bf->path = strdup(path))) {
		log_error("disk %s: out of memory", path);
		free(bf);
		return NULL;
	}
	bf->efd = -1;
	bf->done = done;
	bf->opaque = opaque;
	bf->open_flags = flags;
	/* O_NONBLOCK until fstat has checked the type again (the path may have changed since
	 * stat); then off, or io_uring would fail what it has to wait for with EAGAIN. */
	bf->fd = open(path, flags | O_NONBLOCK);
	if (bf->fd < 0) {
		open_error(path, readonly, errno);
		goto fail;
	}
	if (fstat(bf->fd, &st) < 0) {
		open_error(path, readonly, errno);
		goto fail;
	}
	if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && fcntl(bf->fd, F_SETFL, 0) < 0) {
		open_error(path, readonly, errno);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		bf->info.size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		bf->info.is_blockdev = true;
		if (ioctl(bf->fd, BLKGETSIZE64, &bf->info.size) < 0) {
			log_error("disk %s: cannot read the device size: %s; give a raw disk image", path,
				  strerror(errno));
			goto fail;
		}
	} else {
		log_error("disk %s: not a regular file or block device; give a raw disk image", path);
		goto fail;
	}
	bf->info.dev = (uint64_t)st.st_dev;
	bf->info.ino = (uint64_t)st.st_ino;
	bf->info.readonly = readonly;
	if (lock_image(bf, false) < 0)
		goto fail;
	bf->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bf->efd < 0) {
		log_error("disk %s: eventfd: %s; raise the open file limit", path, strerror(errno));
		goto fail;
	}
	bf->async = setup_uring(bf, depth);
	bf->info.async = bf->async;
	return bf;
fail:
	if (bf->fd >= 0)
		close(bf->fd);
	if (bf->efd >= 0)
		close(bf->efd);
	pthread_mutex_destroy(&bf->dirty_lock);
	free(bf->path);
	free(bf);
	return NULL;
}

void blockfile_close(struct blockfile *bf)
{
	if (!bf)
		return;
	blockfile_drain(bf);
	if (bf->async)
		io_uring_queue_exit(&bf->ring);
	close(bf->efd);
	if (bf->fd >= 0)
		close(bf->fd); /* drops the flock */
	blockfile_dirty_stop(bf);
	pthread_mutex_destroy(&bf->dirty_lock);
	free(bf->zero_buf);
	free(bf->path);
	free(bf);
}

uint64_t blockfile_dirty_blocks(const struct blockfile *bf)
{
	return (bf->info.size + BLOCKFILE_DIRTY_BLOCK - 1) >> BLOCKFILE_DIRTY_SHIFT;
}

int blockfile_dirty_start(struct blockfile *bf)
{
	size_t words = (size_t)((blockfile_dirty_blocks(bf) + LBITS - 1) / LBITS);
	unsigned long *map = calloc(words ? words : 1, sizeof(unsigned long));

	if (!map)
		return -1;
	pthread_mutex_lock(&bf->dirty_lock);
	free(bf->dirty);
	bf->dirty = map;
	atomic_store_explicit(&bf->dirty_on, true, memory_order_release);
	pthread_mutex_unlock(&bf->dirty_lock);
	return 0;
}

uint64_t blockfile_dirty_take(struct blockfile *bf, unsigned long *out)
{
	size_t words = (size_t)((blockfile_dirty_blocks(bf) + LBITS - 1) / LBITS);
	uint64_t n = 0;

	pthread_mutex_lock(&bf->dirty_lock);
	if (bf->dirty)
		for (size_t i = 0; i < words; i++) {
			n += (uint64_t)__builtin_popcountl(bf->dirty[i]);
			out[i] |= bf->dirty[i];
			bf->dirty[i] = 0;
		}
	pthread_mutex_unlock(&bf->dirty_lock);
	return n;
}

void blockfile_dirty_stop(struct blockfile *bf)
{
	pthread_mutex_lock(&bf->dirty_lock);
	atomic_store_explicit(&bf->dirty_on, false, memory_order_release);
	free(bf->dirty);
	bf->dirty = NULL;
	pthread_mutex_unlock(&bf->dirty_lock);
}

bool blockfile_dirty_tracking(const struct blockfile *bf)
{
	return atomic_load_explicit(&bf->dirty_on, memory_order_acquire);
}

int blockfile_pread(struct blockfile *bf, void *buf, size_t len, uint64_t offset)
{
	return pread_all(bf->fd, buf, len, offset);
}

const char *blockfile_path(const struct blockfile *bf)
{
	return bf->path;
}

void blockfile_get_info(const struct blockfile *bf, struct blockfile_info *info)
{
	*info = bf->info;
}

int blockfile_event_fd(const struct blockfile *bf)
{
	return bf->efd;
}

int blockfile_release(struct blockfile *bf)
{
	if (bf->released)
		return 0;
	if (blockfile_drain(bf) < 0)
		return -1;
	/* The other process reads the image through its own fd: what the guest
	 * wrote must be on disk (and out of the device cache) first. */
	if (!bf->info.readonly) {
		while (fdatasync(bf->fd) < 0) {
			if (errno != EINTR) {
				log_error("disk %s: cannot write back the image before handing it over: %s; "
					  "check the disk (space, I/O errors)",
					  bf->path, strerror(errno));
				return -1;
			}
		}
	}
	if (bf->open_flags & O_EXCL) {
		/* O_EXCL on a block device only ends with the last close. */
		close(bf->fd);
		bf->fd = -1;
	} else if (bf->locked && flock(bf->fd, LOCK_UN) < 0) {
		log_error("disk %s: cannot unlock the image: %s", bf->path, strerror(errno));
		return -1;
	}
	bf->locked = false;
	bf->released = true;
	return 0;
}

int blockfile_reacquire(struct blockfile *bf)
{
	struct stat st;

	if (!bf->released)
		return 0;
	if (bf->fd < 0) {
		int fd;

		/* Only the device it was: nothing else at the path is opened (a FIFO's open blocks, a
		 * character device's may act). */
		if (stat(bf->path, &st) < 0 || !S_ISBLK(st.st_mode) || (uint64_t)st.st_dev != bf->info.dev ||
		    (uint64_t)st.st_ino != bf->info.ino) {
			log_error("disk %s: the path now names another device; put the original back",
				  bf->path);
			return -1;
		}
		fd = open(bf->path, bf->open_flags);

		if (fd < 0) {
			if (errno == EBUSY)
				log_error("disk %s: cannot take the device back: another process "
					  "opened it exclusively after the release (the migration "
					  "destination?); stop it and retry",
					  bf->path);
			else
				log_error("disk %s: cannot reopen the device: %s", bf->path, strerror(errno));
			return -1;
		}
		/* The path must still name the device the guest was using. */
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != bf->info.dev ||
		    (uint64_t)st.st_ino != bf->info.ino) {
			log_error("disk %s: the path now names another device; put the original back",
				  bf->path);
			close(fd);
			return -1;
		}
		bf->fd = fd;
	}
	if (lock_image(bf, true) < 0) {
		if (bf->open_flags & O_EXCL) {
			close(bf->fd);
			bf->fd = -1;
		}
		return -1;
	}
	bf->released = false;
	return 0;
}

bool blockfile_released(const struct blockfile *bf)
{
	return bf->released;
}
