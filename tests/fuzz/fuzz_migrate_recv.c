/* fuzz_migrate_recv - the migration receiver (core/migrate.c: migrate_accept's hello and
 * configuration, migrate_receive_ram's records, then vm_state_load of the final state into a VM
 * built as the destination builds it, on fake KVM: fake_vm.h), fed by a hostile source.
 *
 * Input: the stream as the source sends it. migrate_accept listens on a unix socket of its own
 * ($TMPDIR/kvmbox-fuzz-mig-PID.sock); a thread connects and writes the input. Before that the
 * harness walks the stream as the receiver will and recomputes the XXH3 of every section of the
 * final state, as a source can.
 *
 * A stream of version 3 (disks=copy) goes on, after its list of disks, into
 * migrate_accept_disks with this harness's own copy target ($TMPDIR/kvmbox-fuzz-copy-PID.img,
 * COPY_SIZE bytes: a last block shorter than the others), so the disk records are written there;
 * the image must keep its size whatever the input (nothing written past it).
 *
 * With KVMBOX_FUZZ_SEED=PATH in the environment it writes a seed instead (its own VM's
 * configuration, a page, a zero run, a round mark and its state), and PATH-disks (the same with
 * one disk: a zero block and the short last block), and exits. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/migrate.h"
#include "core/ser.h"
#include "core/snapshot.h"
#include "core/util.h"
#include "core/vm.h"
#include "fake_vm.h"
#include "virtio/blk.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The stream, as migrate.c has it. */
#define MIG_MAGIC         "KVMBOXMG"
#define MIG_VERSION       2
#define MIG_VERSION_DISKS 3
#define MIG_BATCH_PAGES   64
enum { REC_PAGES = 1, REC_ZERO, REC_ROUND, REC_FINAL, REC_DISK, REC_DISK_ZERO };
#define PAGE      4096u
#define DISK_BLK  65536u
#define COPY_SIZE (DISK_BLK + 512u)

static char sock_path[108];
static char uri[128];
static char copy_path[256];

static void rec_pages(struct ser_writer *w, uint32_t type, uint64_t first, uint32_t count, uint8_t fill)
{
	uint8_t page[PAGE];

	ser_put_u32(w, type);
	ser_put_u64(w, first);
	ser_put_u32(w, count);
	memset(page, fill, sizeof(page));
	for (uint32_t i = 0; type == REC_PAGES && i < count; i++)
		ser_put_bytes(w, page, sizeof(page));
}

static void write_one_seed(struct vm *vm, const char *path, bool disks)
{
	struct ser_writer w, cfg, st;
	FILE *f;

	ser_writer_init(&w);
	ser_writer_init(&cfg);
	ser_writer_init(&st);
	snap_config_save(vm->cfg, &cfg);
	if (vm_state_save(vm, &st) < 0)
		abort();
	ser_put_bytes(&w, MIG_MAGIC, 8);
	ser_put_u32(&w, disks ? MIG_VERSION_DISKS : MIG_VERSION);
	ser_put_u32(&w, arch_this);
	ser_put_u64(&w, cfg.len);
	ser_put_bytes(&w, cfg.buf, cfg.len);
	if (disks) {
		uint8_t tail[512];

		/* One disk of COPY_SIZE bytes (st_dev, st_ino 0), a block of zeroes, the last one. */
		ser_put_u32(&w, 1);
		ser_put_u64(&w, COPY_SIZE);
		ser_put_u64(&w, 0);
		ser_put_u64(&w, 0);
		ser_put_u32(&w, REC_DISK_ZERO);
		ser_put_u32(&w, 0);
		ser_put_u64(&w, 0);
		ser_put_u32(&w, DISK_BLK);
		ser_put_u32(&w, REC_DISK);
		ser_put_u32(&w, 0);
		ser_put_u64(&w, DISK_BLK);
		ser_put_u32(&w, sizeof(tail));
		memset(tail, 0xd5, sizeof(tail));
		ser_put_bytes(&w, tail, sizeof(tail));
	}
	rec_pages(&w, REC_PAGES, 0x100, 1, 0x5a);
	rec_pages(&w, REC_ZERO, 0x200, 8, 0);
	ser_put_u32(&w, REC_ROUND);
	ser_put_u32(&w, REC_FINAL);
	ser_put_u64(&w, st.len);
	ser_put_bytes(&w, st.buf, st.len);
	f = fopen(path, "wb");
	if (!f || fwrite(w.buf, 1, w.len, f) != w.len || fclose(f))
		abort();
	ser_writer_free(&w);
	ser_writer_free(&cfg);
	ser_writer_free(&st);
}

static void write_seed(const char *path)
{
	struct vm *vm = fake_vm_create();
	char disks[4096];

	write_one_seed(vm, path, false);
	snprintf(disks, sizeof(disks), "%s-disks", path);
	write_one_seed(vm, disks, true);
	fake_vm_destroy(vm);
	exit(0);
}

static void rm_sock(void)
{
	unlink(sock_path);
	unlink(copy_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seed = getenv("KVMBOX_FUZZ_SEED"), *dir = getenv("TMPDIR");

	if (seed)
		write_seed(seed);
	snprintf(sock_path, sizeof(sock_path), "%s/kvmbox-fuzz-mig-%d.sock", dir && *dir ? dir : "/tmp",
		 (int)getpid());
	snprintf(uri, sizeof(uri), "unix:%s", sock_path);
	snprintf(copy_path, sizeof(copy_path), "%s/kvmbox-fuzz-copy-%d.img", dir && *dir ? dir : "/tmp",
		 (int)getpid());
	{
		int fd = open(copy_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || ftruncate(fd, COPY_SIZE) < 0)
			abort();
		close(fd);
	}
	atexit(rm_sock);
	signal(SIGPIPE, SIG_IGN); /* a receiver that gave up: the feeder gets EPIPE */
	return 0;
}

/* Walk the stream as the receiver does; fix the final state's section hashes. */
static void fix_stream(uint8_t *p, size_t len)
{
	size_t off = 16;
	uint64_t n;

	if (len < off + 8)
		return;
	n = get_le64(p + off);
	if (n > len - off - 8)
		return;
	off += 8 + n;
	if (get_le32(p + 8) == MIG_VERSION_DISKS) {
		/* The list of disks: u32 count, 24 bytes each. */
		if (len - off < 4)
			return;
		n = get_le32(p + off);
		off += 4;
		if (n > (len - off) / 24)
			return;
		off += (size_t)n * 24;
	}
	while (len - off >= 4) {
		uint32_t type = get_le32(p + off);

		off += 4;
		if (type == REC_PAGES || type == REC_ZERO) {
			uint32_t count;

			if (len - off < 12)
				return;
			count = get_le32(p + off + 8);
			off += 12;
			if (count > MIG_BATCH_PAGES)
				return;
			if (type == REC_PAGES) {
				if ((uint64_t)count * PAGE > len - off)
					return;
				off += (size_t)count * PAGE;
			}
		} else if (type == REC_DISK || type == REC_DISK_ZERO) {
			uint32_t dlen;

			if (len - off < 16)
				return;
			dlen = get_le32(p + off + 12);
			off += 16;
			if (type == REC_DISK) {
				if (dlen > DISK_BLK || dlen > len - off)
					return;
				off += dlen;
			}
		} else if (type == REC_FINAL) {
			if (len - off < 8)
				return;
			n = get_le64(p + off);
			off += 8;
			fuzz_fix_sections(p + off, n < len - off ? n : len - off);
			return;
		} else if (type != REC_ROUND) {
			return;
		}
	}
}

struct feed {
	const uint8_t *p;
	size_t len;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char buf[256];

	FUZZ_CHECK(fd >= 0);
	strcpy(sa.sun_path, sock_path);
	/* migrate_accept may not listen yet: try until it does. */
	for (int i = 0; i < 100000 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; i++)
		usleep(10);
	for (size_t off = 0; off < f->len;) {
		ssize_t n = write(fd, f->p + off, f->len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	/* Stay until the receiver closes, as a source does: it may answer (disks=copy's "go on"). */
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f;
	struct snap_config sc;
	pthread_t t;
	uint8_t *copy = malloc(size ? size : 1), *state;
	uint64_t slen;
	struct migrate_in *in;

	memcpy(copy, data, size);
	fix_stream(copy, size);
	f = (struct feed){ copy, size };
	FUZZ_CHECK(pthread_create(&t, NULL, feeder, &f) == 0);
	in = migrate_accept(uri, -1, &(struct vm_keys){ 0 }, &sc);
	if (in) {
		/* This destination's own command line: one disk, the copy target (only asked for by
		 * a version 3 stream). */
		static struct disk_config dc;
		static struct vm_config lc;
		char msg[512];

		dc.path = copy_path;
		lc.devs[0] = (struct dev_config){ .type = &virtio_blk_type, .cfg = &dc };
		lc.nr_devs = 1;
		if (migrate_accept_disks(in, &lc, msg, sizeof(msg)) < 0) {
			migrate_refuse(in, msg);
			snap_config_free(&sc);
			migrate_in_close(in);
			goto out;
		}
	}
	if (in) {
		struct vm *vm = fake_vm_create();

		state = migrate_receive_ram(in, vm, -1, &slen);
		if (state) {
			struct ser_reader r;

			ser_reader_init(&r, state, slen);
			migrate_finish(in, vm_state_load(vm, &r) == 0);
			free(state);
		}
		fake_vm_destroy(vm);
		snap_config_free(&sc);
		migrate_in_close(in);
	}
out:
	pthread_join(t, NULL);
	free(copy);
	{
		/* No record wrote past the disk. */
		struct stat st;

		FUZZ_CHECK(stat(copy_path, &st) == 0 && st.st_size == COPY_SIZE);
	}
	return 0;
}
