/* The user's input files (issue 9): a kernel, an initrd or a disk that is not a regular file
 * (or, for a disk, a block device) is refused without being opened. An open would block on a
 * FIFO nobody writes and may act on a device (a watchdog starts on open); inotify's IN_OPEN
 * on a FIFO shows whether kvmbox opened it. An image file still opens, blocking (io_uring
 * would fail on an O_NONBLOCK file what it has to wait for). */
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
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/arch.h"
#include "backends/blockfile.h"
#include "core/config.h"
#include "core/vm.h"

struct dir {
	char path[64];
	char fifo[96];
	char file[96];
	int ino; /* inotify, watching fifo for IN_OPEN */
};

static int setup(void **state)
{
	static struct dir d;
	int fd;

	snprintf(d.path, sizeof(d.path), "/tmp/kvmbox-inXXXXXX");
	assert_non_null(mkdtemp(d.path));
	snprintf(d.fifo, sizeof(d.fifo), "%s/fifo", d.path);
	snprintf(d.file, sizeof(d.file), "%s/file", d.path);
	assert_int_equal(mkfifo(d.fifo, 0600), 0);
	fd = open(d.file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "kvmbox, a file of 32 bytes here\n", 32), 32);
	close(fd);
	d.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(d.ino >= 0);
	assert_true(inotify_add_watch(d.ino, d.fifo, IN_OPEN) >= 0);
	*state = &d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;

	close(d->ino);
	unlink(d->fifo);
	unlink(d->file);
	rmdir(d->path);
	return 0;
}

/* Was the FIFO opened since the watch was set up? */
static bool fifo_opened(const struct dir *d)
{
	char buf[sizeof(struct inotify_event) + 256];
	ssize_t n = read(d->ino, buf, sizeof(buf));

	if (n < 0)
		assert_int_equal(errno, EAGAIN);
	return n > 0;
}

/* arch_load_kernel with these paths; the arch data it creates is freed here. */
static int load_kernel(const char *kernel, const char *initrd)
{
	struct vm_config cfg = { .kernel = kernel, .initrd = initrd, .cpus = 1, .memory = 64 << 20 };
	struct vm vm;
	int r;

	memset(&vm, 0, sizeof(vm));
	vm.cfg = &cfg;
	vm.mem.total = cfg.memory;
	r = arch_load_kernel(&vm);
	free(vm.arch);
	return r;
}

static void test_kernel_fifo_not_opened(void **state)
{
	struct dir *d = *state;

	assert_int_equal(load_kernel(d->fifo, NULL), -1);
	assert_false(fifo_opened(d));
	/* The check itself: opening the FIFO is seen. */
	close(open(d->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
	assert_true(fifo_opened(d));
}

static void test_initrd_fifo_not_opened(void **state)
{
	struct dir *d = *state;

	/* The kernel file is read, then the initrd refused before it is opened. */
	assert_int_equal(load_kernel(d->file, d->fifo), -1);
	assert_false(fifo_opened(d));
}

static void test_kernel_char_device_refused(void **state)
{
	(void)state;
	assert_int_equal(load_kernel("/dev/null", NULL), -1);
	assert_int_equal(load_kernel("/dev/zero", NULL), -1);
}

static void test_disk_fifo_not_opened(void **state)
{
	struct dir *d = *state;

	alarm(20); /* an open of the FIFO for reading would block: a kill, not a hang */
	assert_null(blockfile_open(d->fifo, false, 8, NULL, NULL));
	assert_null(blockfile_open(d->fifo, true, 8, NULL, NULL));
	assert_false(fifo_opened(d));
	assert_null(blockfile_open("/dev/null", false, 8, NULL, NULL));
	assert_null(blockfile_open(d->path, false, 8, NULL, NULL)); /* a directory */
	alarm(0);
}

static void test_disk_file_opens_blocking(void **state)
{
	struct dir *d = *state;
	struct blockfile *bf = blockfile_open(d->file, false, 8, NULL, NULL);
	int fd;

	assert_non_null(bf);
	blockfile_close(bf);
	/* The same open the backend makes, checked through /proc: no O_NONBLOCK left. */
	bf = blockfile_open(d->file, true, 8, NULL, NULL);
	assert_non_null(bf);
	for (fd = 3; fd < 1024; fd++) {
		char link[64], target[128];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		if (!strcmp(target, d->file))
			break;
	}
	assert_true(fd < 1024);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	blockfile_close(bf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kernel_fifo_not_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_initrd_fifo_not_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_char_device_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_fifo_not_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_file_opens_blocking, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
