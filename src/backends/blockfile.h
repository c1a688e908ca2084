/* blockfile.h - a raw disk image (regular file or block device) with
 * asynchronous I/O, the backend of virtio-blk.
 *
 * I/O goes through io_uring (liburing): requests are queued with
 * blockfile_submit(), handed to the kernel in one go by blockfile_kick(), and
 * their completions are signalled on an eventfd (blockfile_event_fd()) that
 * the owner watches and answers with blockfile_reap(), which calls the done
 * callback once per finished request. Partial transfers are continued and
 * -EAGAIN/-EINTR retried here, so a request completes exactly once, whole or
 * with an error. Without io_uring (old kernel, seccomp, or KVMBOX_BLK_SYNC=1
 * in the environment, a test knob) the same interface runs each request
 * synchronously at submit time and still completes it through the eventfd.
 *
 * Ordering: requests run concurrently and complete in any order, except that
 * a FLUSH is started only after every write-like request (WRITE, DISCARD,
 * WRITE_ZEROES) submitted before it has completed, and completes after
 * fdatasync() of their data. Later requests do not wait for a flush.
 *
 * The image is locked with flock(): exclusive when writable, shared when
 * read-only, so two VMs cannot write one image. One thread at a time: the
 * owner serialises all calls (virtio-blk holds vd->lock).
 *
 * Live migration to another process on the same host: blockfile_release()
 * hands the image over (data written back, lock dropped) and
 * blockfile_reacquire() takes it back if the migration fails. A regular file
 * or read-only device keeps its fd open meanwhile; a writable block device
 * is closed (its O_EXCL claim ends only with the close) and reopened by the
 * saved path, which must still name the same device. */
#ifndef KVMBOX_BLOCKFILE_H
#define KVMBOX_BLOCKFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct blockfile;

enum blockfile_op {
	BLOCKFILE_READ,
	BLOCKFILE_WRITE,
	BLOCKFILE_FLUSH,
	BLOCKFILE_DISCARD,      /* deallocate; a hint, "unsupported" counts as done */
	BLOCKFILE_WRITE_ZEROES, /* reads back as zeroes afterwards */
};

struct blockfile_req {
	/* Set by the caller before blockfile_submit(). */
	enum blockfile_op op;
	uint64_t offset;   /* bytes into the image */
	uint64_t len;      /* DISCARD, WRITE_ZEROES: bytes */
	struct iovec *iov; /* READ, WRITE: buffers, advanced in place on partial transfers */
	unsigned niov;
	bool unmap; /* WRITE_ZEROES: may deallocate (punch a hole) */
	bool fua;   /* WRITE: durable when it completes (RWF_DSYNC) */
	/* Set when the done callback runs: 0, or -errno. */
	int result;
	/* Private to blockfile.c. */
	uint64_t left;               /* bytes still to transfer */
	uint64_t span_off, span_len; /* write-like: what it changes, for the dirty map */
	uint64_t seq;                /* write-like: submission order; FLUSH: barrier */
	int phase;
	struct iovec ziov;
	struct blockfile_req *wprev, *wnext; /* in-flight write-like list */
	struct blockfile_req *next;          /* pending-flush / done FIFO */
};

/* Called from blockfile_reap()/blockfile_drain() for each finished request. */
typedef void (*blockfile_done_fn)(struct blockfile_req *r, void *opaque);

/* What the image is; identity lets a snapshot restore check it is the same. */
struct blockfile_info {
	uint64_t size;     /* bytes (file size, or BLKGETSIZE64) */
	uint64_t dev, ino; /* st_dev / st_ino of the opened path */
	bool is_blockdev;
	bool readonly;
	bool async; /* io_uring in use */
};

/* Open and lock `path` (O_RDONLY when readonly) for up to `depth` requests in
 * flight. NULL with a one-line error naming the disk printed. */
struct blockfile *blockfile_open(const char *path, bool readonly, unsigned depth, blockfile_done_fn done,
				 void *opaque);
/* Wait for everything in flight (callbacks run), then close and free. */
void blockfile_close(struct blockfile *bf);
/* The path given to blockfile_open (owned by bf). */
const char *blockfile_path(const struct blockfile *bf);
void blockfile_get_info(const struct blockfile *bf, struct blockfile_info *info);
/* Readable (EPOLLIN) when completions are waiting for blockfile_reap(). */
int blockfile_event_fd(const struct blockfile *bf);
/* Queue r (its fields stay owned by the caller until the callback). Never
 * calls the callback itself; errors are reported through it. */
void blockfile_submit(struct blockfile *bf, struct blockfile_req *r);
/* Hand queued requests to the kernel (once per batch of submits). */
void blockfile_kick(struct blockfile *bf);
/* Collect completions, run callbacks, continue partial requests. Returns the
 * number of requests finished. Callbacks may submit new requests. */
unsigned blockfile_reap(struct blockfile *bf);
/* Requests submitted and not yet finished. */
unsigned blockfile_in_flight(const struct blockfile *bf);
/* Reap until nothing is in flight. 0, or -1 if waiting failed (printed). */
int blockfile_drain(struct blockfile *bf);
/* Hand the image to another process: drain, fdatasync (writable), drop the
 * lock (close a writable block device). Until blockfile_reacquire() the
 * owner must submit nothing (a request would fail with -EIO). 0, or -1
 * (printed; bf still owns the image). A no-op when already released. */
int blockfile_release(struct blockfile *bf);
/* Take the image back after blockfile_release(): re-lock (re-open a block
 * device). 0, or -1 with a one-line error when another process holds it
 * (bf stays released; retry later). A no-op when not released. */
int blockfile_reacquire(struct blockfile *bf);
/* Between blockfile_release() and a successful blockfile_reacquire(). */
bool blockfile_released(const struct blockfile *bf);

/* Dirty tracking for a migration that copies the disk (core/migrate.c, disks=copy): while it is
 * on, every write-like request (WRITE, DISCARD, WRITE_ZEROES; io_uring or synchronous, whole,
 * partial or failed) marks the blocks it touched when it completes, i.e. once its data is in
 * the file: a copy that reads a block after taking its bit either sees the new data or gets the
 * bit again. Blocks are BLOCKFILE_DIRTY_BLOCK bytes (the last one may be short). These calls
 * may come from any thread (a mutex of its own guards the map); the I/O calls above stay the
 * owner's. Off by default: nothing is allocated or locked then. */
#define BLOCKFILE_DIRTY_SHIFT 16
#define BLOCKFILE_DIRTY_BLOCK (1u << BLOCKFILE_DIRTY_SHIFT)
/* Blocks of the image (size rounded up to whole blocks). */
uint64_t blockfile_dirty_blocks(const struct blockfile *bf);
/* Start tracking with every block clean. 0, or -1 (out of memory). Restarting clears it. */
int blockfile_dirty_start(struct blockfile *bf);
/* Move the dirty bits into out (ORed in; blockfile_dirty_blocks() bits, in unsigned longs)
 * and clear them. Returns how many bits the map had set (0 when tracking is off). */
uint64_t blockfile_dirty_take(struct blockfile *bf, unsigned long *out);
/* Stop tracking and free the map. Harmless when off. */
void blockfile_dirty_stop(struct blockfile *bf);
/* Whether tracking is on (a copy of the image is under way). */
bool blockfile_dirty_tracking(const struct blockfile *bf);
/* Read len bytes at offset straight from the image (the copy's reader, on its own thread;
 * the owner may have requests in flight). 0, or -1 with errno (EIO for a short read). */
int blockfile_pread(struct blockfile *bf, void *buf, size_t len, uint64_t offset);

#endif
