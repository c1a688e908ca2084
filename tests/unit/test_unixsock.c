/* Unix listening sockets (core/unixsock.c): mode 0600 from the bind whatever the umask, a path
 * that is not a socket is never removed, a stale socket is replaced, a live one is not, and the
 * peer check admits our own uid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/migrate.h"
#include "core/snapshot.h"
#include "core/unixsock.h"

struct dir {
	char path[64];
	char sock[96];
};

static int setup(void **state)
{
	static struct dir d;

	snprintf(d.path, sizeof(d.path), "/tmp/kvmbox-usXXXXXX");
	assert_non_null(mkdtemp(d.path));
	snprintf(d.sock, sizeof(d.sock), "%s/s", d.path);
	*state = &d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;

	unlink(d->sock);
	rmdir(d->path);
	return 0;
}

static void test_mode_0600_under_umask_0(void **state)
{
	struct dir *d = *state;
	struct stat st, now;
	mode_t old = umask(0);
	int fd = unixsock_listen(d->sock, 4, false, "test socket", &st);

	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(lstat(d->sock, &now), 0);
	assert_true(S_ISSOCK(now.st_mode));
	assert_int_equal(now.st_mode & 07777, 0600);
	assert_int_equal(now.st_ino, st.st_ino);
	close(fd);
	unixsock_unlink(d->sock, &st);
	assert_int_equal(access(d->sock, F_OK), -1);
}

static void test_not_a_socket_is_kept(void **state)
{
	struct dir *d = *state;
	struct stat st;
	int fd = open(d->sock, O_CREAT | O_WRONLY, 0644);
	char target[128];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(unixsock_listen(d->sock, 4, false, "test socket", &st), -1);
	assert_int_equal(lstat(d->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 4);
	unlink(d->sock);
	/* A symlink (even to a socket) is not a socket either. */
	snprintf(target, sizeof(target), "%s/elsewhere", d->path);
	assert_int_equal(symlink(target, d->sock), 0);
	assert_int_equal(unixsock_listen(d->sock, 4, false, "test socket", &st), -1);
	assert_int_equal(lstat(d->sock, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	unlink(d->sock);
}

static void test_stale_replaced_live_refused(void **state)
{
	struct dir *d = *state;
	struct stat st1, st2;
	int a = unixsock_listen(d->sock, 4, false, "test socket", &st1), b;

	assert_true(a >= 0);
	/* Live: refused, and still the first socket. */
	assert_int_equal(unixsock_listen(d->sock, 4, false, "test socket", &st2), -1);
	assert_int_equal(lstat(d->sock, &st2), 0);
	assert_int_equal(st2.st_ino, st1.st_ino);
	close(a); /* now stale */
	b = unixsock_listen(d->sock, 4, true, "test socket", &st2);
	assert_true(b >= 0);
	/* tmpfs may reuse the inode number: the change time tells them apart. */
	assert_true(st2.st_ino != st1.st_ino || st2.st_ctim.tv_nsec != st1.st_ctim.tv_nsec ||
		    st2.st_ctim.tv_sec != st1.st_ctim.tv_sec);
	/* The first owner's cleanup must not remove its successor's socket. */
	unixsock_unlink(d->sock, &st1);
	assert_int_equal(access(d->sock, F_OK), 0);
	close(b);
}

static void test_peer_is_us(void **state)
{
	struct dir *d = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int l = unixsock_listen(d->sock, 4, false, "test socket", &st), c, a;
	long uid;

	assert_true(l >= 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->sock);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_true(unixsock_peer_allowed(a, &uid));
	assert_int_equal(uid, (long)geteuid());
	close(a);
	close(c);
	close(l);
}

/* ---- the unix migration listener (run --incoming unix:PATH) uses the same rules ---- */

struct accept_arg {
	char uri[128];
	int ret;
};

static void *accept_thread(void *p)
{
	struct accept_arg *a = p;
	struct snap_config sc;
	struct migrate_in *in = migrate_accept(a->uri, -1, &(struct vm_keys){ 0 }, &sc);

	a->ret = in ? 0 : -1;
	migrate_in_close(in);
	return NULL;
}

static void test_incoming_mode_0600_under_umask_0(void **state)
{
	struct dir *d = *state;
	struct accept_arg a;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char ev[sizeof(struct inotify_event) + 256];
	struct stat st;
	pthread_t t;
	mode_t old;
	int ino = inotify_init1(IN_CLOEXEC), c;

	assert_true(ino >= 0);
	assert_true(inotify_add_watch(ino, d->path, IN_CREATE) >= 0);
	snprintf(a.uri, sizeof(a.uri), "unix:%s", d->sock);
	alarm(20); /* a listener that never binds: a kill, not a hang */
	old = umask(0);
	assert_int_equal(pthread_create(&t, NULL, accept_thread, &a), 0);
	/* bind created the socket: the mode it has from its first instant */
	assert_true(read(ino, ev, sizeof(ev)) > 0);
	assert_int_equal(lstat(d->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* Not a kvmbox stream: refused, and the socket removed. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->sock);
	/* Bound before it listens: refused until then (the alarm bounds the wait). */
	for (;;) {
		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(c >= 0);
		if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		assert_int_equal(errno, ECONNREFUSED);
		close(c);
		sched_yield();
	}
	assert_int_equal(write(c, "not a kvmbox migration stream", 16), 16);
	pthread_join(t, NULL);
	umask(old);
	alarm(0);
	close(c);
	close(ino);
	assert_int_equal(a.ret, -1);
	assert_int_equal(access(d->sock, F_OK), -1);
}

static void test_incoming_file_and_symlink_kept(void **state)
{
	struct dir *d = *state;
	struct snap_config sc;
	char uri[128], target[128];
	struct stat st;
	int fd = open(d->sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	snprintf(uri, sizeof(uri), "unix:%s", d->sock);
	assert_null(migrate_accept(uri, -1, &(struct vm_keys){ 0 }, &sc));
	assert_int_equal(lstat(d->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 4);
	unlink(d->sock);
	/* A symlink is neither removed nor followed: nothing appears at its target. */
	snprintf(target, sizeof(target), "%s/elsewhere", d->path);
	assert_int_equal(symlink(target, d->sock), 0);
	assert_null(migrate_accept(uri, -1, &(struct vm_keys){ 0 }, &sc));
	assert_int_equal(lstat(d->sock, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(target, &st), -1);
	unlink(d->sock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mode_0600_under_umask_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_socket_is_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_replaced_live_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_is_us, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incoming_mode_0600_under_umask_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incoming_file_and_symlink_kept, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
