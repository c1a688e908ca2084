/* disks=copy (core/migrate.c): the block backend's dirty map (backends/blockfile.c), fed by every
 * write-like request through io_uring and through the synchronous path, and the destination's
 * check of each disk record the source sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/arch.h"
#include "backends/blockfile.h"
#include "core/config.h"
#include "core/keys.h"
#include "core/migrate.h"
#include "core/snapshot.h"
#include "core/util.h"
#include "virtio/blk.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define BLK   BLOCKFILE_DIRTY_BLOCK
#define SIZE  (16 * (uint64_t)BLK + 100) /* 17 blocks, the last one 100 bytes */
#define WORDS 1

static unsigned done_count;
static int last_result;

static void on_done(struct blockfile_req *r, void *opaque)
{
	(void)opaque;
	done_count++;
	last_result = r->result;
}

struct fixture {
	char path[64];
	struct blockfile *bf;
};

/* The image alone, not opened by a backend (a destination's disk before its VM runs). */
static int setup_file(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	snprintf(f->path, sizeof(f->path), "/tmp/kvmbox-test-diskcopy-XXXXXX");
	fd = mkstemp(f->path);
	if (fd < 0 || ftruncate(fd, (off_t)SIZE) < 0)
		return -1;
	close(fd);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	struct fixture *f;

	if (setup_file(state) < 0)
		return -1;
	f = *state;
	f->bf = blockfile_open(f->path, false, 8, on_done, NULL);
	return f->bf ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->bf)
		blockfile_close(f->bf);
	unlink(f->path);
	free(f);
	return 0;
}

/* Submit one request and wait for it. */
static void run(struct blockfile *bf, enum blockfile_op op, uint64_t off, uint64_t len)
{
	static uint8_t buf[3 * BLK];
	struct blockfile_req r = { .op = op, .offset = off, .len = len };
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	unsigned before = done_count;

	memset(buf, 0xa5, sizeof(buf));
	assert_true(len <= sizeof(buf) || op == BLOCKFILE_DISCARD || op == BLOCKFILE_WRITE_ZEROES);
	if (op == BLOCKFILE_READ || op == BLOCKFILE_WRITE) {
		r.iov = &iov;
		r.niov = 1;
	}
	blockfile_submit(bf, &r);
	blockfile_kick(bf);
	assert_int_equal(blockfile_drain(bf), 0);
	assert_int_equal(done_count, before + 1);
	assert_int_equal(last_result, 0);
}

/* The map taken now: one bit per block, as a mask (17 blocks fit one word). */
static unsigned long take(struct blockfile *bf, uint64_t *n)
{
	unsigned long map[WORDS + 1] = { 0 };

	*n = blockfile_dirty_take(bf, map);
	assert_int_equal(map[1], 0); /* nothing past the map's words */
	return map[0];
}

static void test_blocks(void **state)
{
	struct fixture *f = *state;

	(void)f;
	assert_int_equal(blockfile_dirty_blocks(f->bf), 17);
	assert_int_equal(BLK, 64 * 1024);
}

static void test_off_by_default(void **state)
{
	struct fixture *f = *state;
	uint64_t n;

	run(f->bf, BLOCKFILE_WRITE, 0, 4096);
	assert_int_equal(take(f->bf, &n), 0);
	assert_int_equal(n, 0);
}

static void test_writes_mark_their_blocks(void **state)
{
	struct fixture *f = *state;
	uint64_t n;

	assert_int_equal(blockfile_dirty_start(f->bf), 0);
	assert_int_equal(take(f->bf, &n), 0);             /* starts clean */
	run(f->bf, BLOCKFILE_WRITE, BLK + 4096, 8192);    /* inside block 1 */
	run(f->bf, BLOCKFILE_WRITE, 3 * BLK - 512, 1024); /* across blocks 2 and 3 */
	run(f->bf, BLOCKFILE_READ, 10 * BLK, 4096);       /* a read marks nothing */
	run(f->bf, BLOCKFILE_WRITE, 16 * BLK, 100);       /* the short last block */
	assert_int_equal(take(f->bf, &n), (1UL << 1) | (1UL << 2) | (1UL << 3) | (1UL << 16));
	assert_int_equal(n, 4);
	/* Taken means cleared. */
	assert_int_equal(take(f->bf, &n), 0);
	assert_int_equal(n, 0);
	/* A read-modify of the same block between two takes is one bit. */
	run(f->bf, BLOCKFILE_WRITE, 0, 512);
	run(f->bf, BLOCKFILE_WRITE, 512, 512);
	assert_int_equal(take(f->bf, &n), 1UL << 0);
	assert_int_equal(n, 1);
	blockfile_dirty_stop(f->bf);
}

static void test_discard_and_zeroes_mark(void **state)
{
	struct fixture *f = *state;
	uint64_t n;

	assert_int_equal(blockfile_dirty_start(f->bf), 0);
	run(f->bf, BLOCKFILE_DISCARD, 5 * BLK, BLK);                 /* block 5 */
	run(f->bf, BLOCKFILE_WRITE_ZEROES, 7 * BLK + 4096, 2 * BLK); /* blocks 7, 8, 9 */
	assert_int_equal(take(f->bf, &n), (1UL << 5) | (1UL << 7) | (1UL << 8) | (1UL << 9));
	assert_int_equal(n, 4);
	blockfile_dirty_stop(f->bf);
}

static void test_take_merges_into_pending(void **state)
{
	struct fixture *f = *state;
	unsigned long map[WORDS] = { 1UL << 12 }; /* still pending from an earlier round */

	assert_int_equal(blockfile_dirty_start(f->bf), 0);
	run(f->bf, BLOCKFILE_WRITE, 2 * BLK, 4096);
	assert_int_equal(blockfile_dirty_take(f->bf, map), 1);
	assert_int_equal(map[0], (1UL << 12) | (1UL << 2));
	blockfile_dirty_stop(f->bf);
}

static void test_stop_frees_and_restart_is_clean(void **state)
{
	struct fixture *f = *state;
	uint64_t n;

	assert_int_equal(blockfile_dirty_start(f->bf), 0);
	run(f->bf, BLOCKFILE_WRITE, 4 * BLK, 4096);
	blockfile_dirty_stop(f->bf);
	blockfile_dirty_stop(f->bf); /* harmless twice */
	run(f->bf, BLOCKFILE_WRITE, 6 * BLK, 4096);
	assert_int_equal(take(f->bf, &n), 0);
	/* A new copy (a retry) starts from a clean map. */
	assert_int_equal(blockfile_dirty_start(f->bf), 0);
	assert_int_equal(take(f->bf, &n), 0);
	run(f->bf, BLOCKFILE_WRITE, 6 * BLK, 4096);
	assert_int_equal(take(f->bf, &n), 1UL << 6);
	blockfile_dirty_stop(f->bf);
}

/* The copy takes the map on its own thread while the owner's writes complete: no bit is lost. */
static _Atomic bool taker_stop;
static unsigned long taken[WORDS];

static void *taker(void *arg)
{
	struct blockfile *bf = arg;

	while (!atomic_load(&taker_stop))
		blockfile_dirty_take(bf, taken);
	return NULL;
}

static void test_take_while_writing(void **state)
{
	struct fixture *f = *state;
	pthread_t t;

	taken[0] = 0;
	atomic_store(&taker_stop, false);
	assert_int_equal(blockfile_dirty_start(f->bf), 0);
	assert_int_equal(pthread_create(&t, NULL, taker, f->bf), 0);
	for (unsigned i = 0; i < 64; i++)
		run(f->bf, BLOCKFILE_WRITE, (uint64_t)((i * 7) % 16) * BLK, 512);
	atomic_store(&taker_stop, true);
	pthread_join(t, NULL);
	blockfile_dirty_take(f->bf, taken);
	assert_int_equal(taken[0], 0xffffUL); /* blocks 0..15, each written */
	blockfile_dirty_stop(f->bf);
}

static void test_pread_sees_completed_writes(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[200];

	run(f->bf, BLOCKFILE_WRITE, 16 * BLK, 100);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(blockfile_pread(f->bf, buf, 100, 16 * BLK), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf[i], 0xa5);
	/* Past the end: a short read is an error, never a silent zero fill. */
	assert_int_equal(blockfile_pread(f->bf, buf, 200, 16 * BLK), -1);
}

/* ---- the destination's record check ---- */

static void test_record_check(void **state)
{
	const uint64_t sizes[2] = { 16 * (uint64_t)BLK, SIZE };

	(void)state;
	/* Whole blocks inside each disk, and the short last block of the second. */
	assert_true(migrate_disk_record_ok(sizes, 2, 0, 0, BLK));
	assert_true(migrate_disk_record_ok(sizes, 2, 0, 15 * BLK, BLK));
	assert_true(migrate_disk_record_ok(sizes, 2, 1, 16 * BLK, 100));
	/* No such disk. */
	assert_false(migrate_disk_record_ok(sizes, 2, 2, 0, BLK));
	assert_false(migrate_disk_record_ok(sizes, 2, UINT32_MAX, 0, BLK));
	assert_false(migrate_disk_record_ok(sizes, 0, 0, 0, BLK));
	/* Empty, too long, or not at a block boundary. */
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 0, 0));
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 0, BLK + 1));
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 0, UINT32_MAX));
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 4096, BLK));
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 1, 100));
	/* Short where the disk goes on. */
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 0, 100));
	/* Past the end, at it, and across it. */
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 16 * BLK, BLK));
	assert_false(migrate_disk_record_ok(sizes, 2, 0, 16 * BLK, 1));
	assert_false(migrate_disk_record_ok(sizes, 2, 1, 16 * BLK, 101));
	assert_false(migrate_disk_record_ok(sizes, 2, 1, 16 * BLK, BLK));
	assert_false(migrate_disk_record_ok(sizes, 2, 1, 17 * BLK, 100));
	/* Offsets that would wrap. */
	assert_false(migrate_disk_record_ok(sizes, 2, 0, UINT64_MAX - BLK + 1, BLK));
	assert_false(migrate_disk_record_ok(sizes, 2, 0, (UINT64_MAX / BLK) * BLK, BLK));
}

/* ---- the destination's answer to a disks=copy source ---- */

struct source {
	char sock[108];
	uint32_t ndisks;
	uint64_t size, dev, ino;
	uint32_t status; /* what came back */
	char msg[600];
};

/* A disks=copy source: hello (version 3), a configuration with one disk, its list of disks;
 * then it reads the answer. */
static void *source_thread(void *arg)
{
	struct source *s = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct disk_config dc = { .path = (char *)"/src.img" };
	struct vm_config cfg = { .kernel = "k", .cpus = 1, .memory = 64 << 20 };
	struct ser_writer w, c;
	uint8_t b[8];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, s->sock);
	for (int i = 0; i < 100000 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; i++)
		usleep(100);
	cfg.devs[0] = (struct dev_config){ .type = &virtio_blk_type, .cfg = &dc };
	cfg.nr_devs = 1;
	ser_writer_init(&w);
	ser_writer_init(&c);
	snap_config_save(&cfg, &c);
	ser_put_bytes(&w, "KVMBOXMG", 8);
	ser_put_u32(&w, 3);
	ser_put_u32(&w, arch_this);
	ser_put_u64(&w, c.len);
	ser_put_bytes(&w, c.buf, c.len);
	ser_put_u32(&w, s->ndisks);
	for (uint32_t i = 0; i < s->ndisks; i++) {
		ser_put_u64(&w, s->size);
		ser_put_u64(&w, s->dev);
		ser_put_u64(&w, s->ino);
	}
	s->status = 99;
	if (write_all(fd, w.buf, w.len) == 0 && read_all(fd, b, 4) == 0) {
		s->status = get_le32(b);
		if (s->status && read_all(fd, b, 4) == 0 && get_le32(b) < sizeof(s->msg) &&
		    read_all(fd, s->msg, get_le32(b)) == 0)
			s->msg[get_le32(b)] = '\0';
	}
	ser_writer_free(&w);
	ser_writer_free(&c);
	close(fd);
	return NULL;
}

/* The destination (this thread) with one disk, the fixture's image: accept, check the disks,
 * answer. Returns migrate_accept_disks's result; the source's view is in *s. */
static int destination(struct fixture *f, struct source *s)
{
	struct disk_config dc = { .path = f->path };
	struct vm_config local = { .kernel = "k", .cpus = 1, .memory = 64 << 20 };
	struct snap_config sc;
	char uri[128], msg[512] = "";
	pthread_t t;
	struct migrate_in *in;
	int ret;

	snprintf(s->sock, sizeof(s->sock), "/tmp/kvmbox-test-diskcopy-%d.sock", (int)getpid());
	snprintf(uri, sizeof(uri), "unix:%s", s->sock);
	local.devs[0] = (struct dev_config){ .type = &virtio_blk_type, .cfg = &dc };
	local.nr_devs = 1;
	assert_int_equal(pthread_create(&t, NULL, source_thread, s), 0);
	in = migrate_accept(uri, -1, &(struct vm_keys){ 0 }, &sc);
	assert_non_null(in);
	ret = migrate_accept_disks(in, &local, msg, sizeof(msg));
	if (ret < 0)
		migrate_refuse(in, msg);
	else
		migrate_refuse(in, "test over"); /* the source has read its answer: close what is open */
	pthread_join(t, NULL);
	snap_config_free(&sc);
	migrate_in_close(in);
	return ret;
}

static void test_destination_takes_its_own_image(void **state)
{
	struct source s = { .ndisks = 1, .size = SIZE };

	assert_int_equal(destination(*state, &s), 0);
	assert_int_equal(s.status, 0);
}

static void test_destination_refuses_another_size(void **state)
{
	struct source s = { .ndisks = 1, .size = SIZE + 512 };

	assert_int_equal(destination(*state, &s), -1);
	assert_int_equal(s.status, 1);
	assert_non_null(strstr(s.msg, "is 1048676 bytes here, the source's is 1049188"));
	assert_null(strchr(s.msg, '\n'));
}

static void test_destination_refuses_the_sources_own_file(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	struct source s = { .ndisks = 1, .size = SIZE };

	assert_int_equal(stat(f->path, &st), 0);
	s.dev = (uint64_t)st.st_dev;
	s.ino = (uint64_t)st.st_ino;
	assert_int_equal(destination(f, &s), -1);
	assert_int_equal(s.status, 1);
	assert_non_null(strstr(s.msg, "the source's own image"));
}

static void test_destination_refuses_another_count(void **state)
{
	struct source s = { .ndisks = 2, .size = SIZE };

	assert_int_equal(destination(*state, &s), -1);
	assert_int_equal(s.status, 1);
	assert_non_null(strstr(s.msg, "the source copies 2 disks (disks=copy), this command line has 1"));
}

static void test_destination_refuses_a_locked_image(void **state)
{
	/* The fixture's backend holds the image's lock, as a VM using it would: the copy must not
	 * write under it. */
	struct source s = { .ndisks = 1, .size = SIZE };

	assert_int_equal(destination(*state, &s), -1);
	assert_non_null(strstr(s.msg, "is locked: another VM has it open"));
}

#define TESTS                                                                                           \
	cmocka_unit_test_setup_teardown(test_blocks, setup, teardown),                                  \
		cmocka_unit_test_setup_teardown(test_off_by_default, setup, teardown),                  \
		cmocka_unit_test_setup_teardown(test_writes_mark_their_blocks, setup, teardown),        \
		cmocka_unit_test_setup_teardown(test_discard_and_zeroes_mark, setup, teardown),         \
		cmocka_unit_test_setup_teardown(test_take_merges_into_pending, setup, teardown),        \
		cmocka_unit_test_setup_teardown(test_stop_frees_and_restart_is_clean, setup, teardown), \
		cmocka_unit_test_setup_teardown(test_take_while_writing, setup, teardown),              \
		cmocka_unit_test_setup_teardown(test_pread_sees_completed_writes, setup, teardown)

int main(void)
{
	const struct CMUnitTest backend_tests[] = { TESTS };
	const struct CMUnitTest record_tests[] = {
		cmocka_unit_test(test_record_check),
		cmocka_unit_test_setup_teardown(test_destination_takes_its_own_image, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_destination_refuses_another_size, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_destination_refuses_the_sources_own_file, setup_file,
						teardown),
		cmocka_unit_test_setup_teardown(test_destination_refuses_another_count, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_destination_refuses_a_locked_image, setup, teardown),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN); /* as in kvmbox: a peer that went away is an EPIPE error */
	/* The dirty map is fed from finish(), whichever path completed the request: io_uring's
	 * completions (where the kernel has it) and the synchronous fallback. */
	unsetenv("KVMBOX_BLK_SYNC");
	failed = cmocka_run_group_tests_name("diskcopy_dirty_map", backend_tests, NULL, NULL);
	setenv("KVMBOX_BLK_SYNC", "1", 1);
	failed += cmocka_run_group_tests_name("diskcopy_dirty_map_sync", backend_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("diskcopy_records", record_tests, NULL, NULL);
	return failed;
}
