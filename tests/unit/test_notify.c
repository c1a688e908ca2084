/* test_notify.c - sd_notify without libsystemd (core/notify.c): the datagram reaches a socket
 * named by a path and an abstract one ('@'); no variable, no socket, a bad one a warning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/notify.h"

/* A datagram socket bound to name (a path, or '@' for an abstract one), as systemd's. */
static int listener(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'))),
			 0);
	return fd;
}

static void expect(int lfd, const char *name)
{
	char buf[64];
	ssize_t n;
	int fd;

	setenv("NOTIFY_SOCKET", name, 1);
	fd = notify_open();
	assert_true(fd >= 0);
	notify_send(fd, "READY=1");
	notify_send(fd, "STOPPING=1");
	n = recv(lfd, buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "READY=1", 7);
	n = recv(lfd, buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 10);
	assert_memory_equal(buf, "STOPPING=1", 10);
	close(fd);
}

static void test_notify_path(void **state)
{
	char path[108];
	int lfd;

	snprintf(path, sizeof(path), "%s/kvmbox-notify-%d",
		 getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 60 ? getenv("TMPDIR") : "/tmp",
		 (int)getpid());
	unlink(path);
	lfd = listener(path);
	expect(lfd, path);
	close(lfd);
	unlink(path);
}

static void test_notify_abstract(void **state)
{
	char name[64];
	int lfd;

	snprintf(name, sizeof(name), "@kvmbox-notify-test-%d", (int)getpid());
	lfd = listener(name);
	expect(lfd, name);
	close(lfd);
}

static void test_notify_none(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_open(), -1);
	notify_send(-1, "READY=1"); /* nothing, no crash */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(notify_open(), -1);
	setenv("NOTIFY_SOCKET", "@kvmbox-nobody-listens-here", 1);
	assert_int_equal(notify_open(), -1);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_path),
		cmocka_unit_test(test_notify_abstract),
		cmocka_unit_test(test_notify_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
