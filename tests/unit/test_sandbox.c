/* The sandbox: option parsing, the --user lookup without NSS, and the seccomp filters for real:
 * each case forks a child that compiles the filters, installs one kind's list and makes a call;
 * a forbidden call must end it with status 159 and one line on stderr naming the thread and the
 * call, an allowed one must go through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <linux/vhost.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/options.h"
#include "core/config.h"
#include "core/sandbox.h"
#include "core/tuning.h"
#include "devices/vfio_pci.h"
#include "virtio/net.h"
#include "virtio/vsock.h"

enum action {
	DO_KVM_RUN,
	DO_SET_MEMORY_REGION,
	DO_SOCKET,
	DO_OPENAT,
	DO_CLONE_NEWNS,
	DO_CLONE3,
	DO_GETRANDOM,
	DO_CREATE_VM,
	DO_GMTIME,
	DO_ROUTE_MSIX,
	DO_IOEVENTFD,
	DO_VHOST_RINGS,
	DO_VHOST_OWNER,
	DO_VSOCK_RINGS,
	DO_VSOCK_OPEN,
	DO_VSOCK_UDS,
	DO_UDS_LISTEN,
	DO_SETAFFINITY,
	DO_SETSCHEDULER,
	DO_FTRUNCATE,
	DO_COALESCED,
	DO_VFIO_IRQS,
	DO_VFIO_OPEN,
	DO_VFIO_REGION,
};

/* What the child does after installing `kind`'s list: 0 when the call returned (whatever its
 * result), 2 when clone3 did not say ENOSYS. */
static int act(enum action a, int fd)
{
	char b[8];

	switch (a) {
	case DO_KVM_RUN:
		ioctl(fd, KVM_RUN, 0);
		break;
	case DO_SET_MEMORY_REGION:
		ioctl(fd, KVM_SET_USER_MEMORY_REGION, NULL);
		break;
	case DO_SOCKET:
		socket(AF_UNIX, SOCK_STREAM, 0);
		break;
	case DO_OPENAT:
		open("/dev/null", O_RDONLY);
		break;
	case DO_CLONE_NEWNS:
		syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, NULL);
		break;
	case DO_CLONE3:
		return syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS ? 0 : 2;
	case DO_GMTIME: {
		time_t t = time(NULL);
		struct tm tm;

		return gmtime_r(&t, &tm) ? 0 : 3;
	}
	case DO_CREATE_VM:
		ioctl(fd, KVM_CREATE_VM, 0);
		break;
	case DO_ROUTE_MSIX:
		ioctl(fd, KVM_IRQFD, NULL);
		ioctl(fd, KVM_SET_GSI_ROUTING, NULL);
		ioctl(fd, KVM_IRQ_LINE, NULL);
		break;
	case DO_IOEVENTFD:
		ioctl(fd, KVM_IOEVENTFD, NULL);
		break;
	case DO_VHOST_RINGS: {
		/* What vh_start and vh_stop issue; on /dev/null each fails with ENOTTY once allowed. */
		static const unsigned long req[] = { VHOST_SET_FEATURES,    VHOST_SET_MEM_TABLE,
						     VHOST_SET_LOG_BASE,    VHOST_SET_VRING_NUM,
						     VHOST_SET_VRING_BASE,  VHOST_SET_VRING_ADDR,
						     VHOST_SET_VRING_CALL,  VHOST_SET_VRING_KICK,
						     VHOST_NET_SET_BACKEND, VHOST_GET_VRING_BASE };

		for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
			ioctl(fd, req[i], NULL);
		break;
	}
	case DO_VHOST_OWNER:
		ioctl(fd, VHOST_SET_OWNER, NULL);
		ioctl(fd, VHOST_GET_FEATURES, NULL);
		break;
	case DO_VSOCK_RINGS: {
		/* What vsock.c's vh_start and vh_stop issue. */
		static const unsigned long req[] = { VHOST_SET_FEATURES,   VHOST_SET_MEM_TABLE,
						     VHOST_SET_LOG_BASE,   VHOST_SET_VRING_NUM,
						     VHOST_SET_VRING_BASE, VHOST_SET_VRING_ADDR,
						     VHOST_SET_VRING_CALL, VHOST_SET_VRING_KICK,
						     VHOST_GET_VRING_BASE, VHOST_VSOCK_SET_RUNNING };

		for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
			ioctl(fd, req[i], NULL);
		break;
	}
	case DO_VSOCK_OPEN:
		ioctl(fd, VHOST_SET_OWNER, NULL);
		ioctl(fd, VHOST_GET_FEATURES, NULL);
		ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, NULL);
		break;
	case DO_VSOCK_UDS: {
		/* What vsock_uds.c's worker does: accept a host program (its credentials), connect
		 * for the guest, move bytes, half-close, arm the handshake timer. On an unbound socket
		 * (and fd -1) each call fails. */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct itimerspec its = { 0 };
		struct ucred cr;
		socklen_t len = sizeof(cr);
		struct iovec iov = { b, 1 };
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

		timerfd_settime(-1, 0, &its, NULL);

		connect(s, (struct sockaddr *)&sa, sizeof(sa));
		accept4(s, NULL, NULL, SOCK_NONBLOCK);
		getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len);
		shutdown(s, SHUT_WR);
		readv(s, &iov, 1);
		writev(s, &iov, 1);
		close(s);
		break;
	}
	case DO_UDS_LISTEN: {
		/* Listening again (unixsock_listen) and removing the socket file; dropping the
		 * connections disarms the handshake timer. */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct itimerspec its = { 0 };
		struct stat st;
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		mode_t old = umask(0177);

		timerfd_settime(-1, 0, &its, NULL);

		umask(old);
		lstat("/nonexistent/kvmbox", &st);
		unlink("/nonexistent/kvmbox");
		bind(s, (struct sockaddr *)&sa, 0);
		listen(s, 1);
		close(s);
		break;
	}
	case DO_SETAFFINITY: {
		cpu_set_t set;

		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			sched_setaffinity(0, sizeof(set), &set); /* the same CPUs: no change */
		break;
	}
	case DO_SETSCHEDULER: {
		struct sched_param sp = { .sched_priority = 0 };

		sched_setscheduler(0, SCHED_OTHER, &sp); /* the policy it has */
		break;
	}
	case DO_FTRUNCATE:
		if (ftruncate(fd, 0) < 0) /* /dev/null: EINVAL */
			return 0;
		break;
	case DO_COALESCED:
		ioctl(fd, KVM_REGISTER_COALESCED_MMIO, NULL);
		break;
	case DO_GETRANDOM:
		syscall(SYS_getrandom, b, sizeof(b), 0);
		break;
	case DO_VFIO_IRQS:
		ioctl(fd, VFIO_DEVICE_SET_IRQS, NULL);
		break;
	case DO_VFIO_OPEN:
		ioctl(fd, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0");
		break;
	case DO_VFIO_REGION:
		if (pread(fd, b, sizeof(b), 0) < 0) /* /dev/null: 0 */
			return 0;
		break;
	}
	return 0;
}

#if defined(__SANITIZE_ADDRESS__)
#pragma GCC diagnostic ignored "-Wunused-function" /* the filter tests, left out below */
#endif

/* Run a child with `kind`'s list in mode; returns its wait status and its stderr in err. */
static int run_cfg(enum sandbox_kind kind, const struct vm_config *base, enum seccomp_mode mode,
		   enum action a, char *err, size_t errlen)
{
	int p[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vm_config cfg = *base;
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC); /* before the filter: workers open nothing */

		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		prctl(PR_SET_NAME, "tester", 0, 0, 0);
		cfg.sandbox.seccomp = mode;
		if (sandbox_setup_filters_only(&cfg) < 0)
			_exit(90);
		sandbox_thread_enter(kind);
		_exit(act(a, fd));
	}
	close(p[1]);
	while (got < (ssize_t)errlen - 1 && (n = read(p[0], err + got, errlen - 1 - (size_t)got)) > 0)
		got += n;
	err[got] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static int run(enum sandbox_kind kind, enum seccomp_mode mode, bool no_reboot, enum action a, char *err,
	       size_t errlen)
{
	struct vm_config cfg = { .no_reboot = no_reboot };

	return run_cfg(kind, &cfg, mode, a, err, errlen);
}

static void assert_exit(int status, int code)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), code);
}

static void test_vcpu_may_run(void **state)
{
	char err[512];

	assert_exit(run(SB_VCPU, SECCOMP_ON, false, DO_KVM_RUN, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void test_vcpu_may_not_set_memory(void **state)
{
	char err[512], want[128];

	assert_exit(run(SB_VCPU, SECCOMP_ON, false, DO_SET_MEMORY_REGION, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	print_message("# %s", err);
	snprintf(want, sizeof(want), "request %#lx", (unsigned long)KVM_SET_USER_MEMORY_REGION);
	/* One line, naming the thread, its list, the call and the request. */
	assert_non_null(strstr(err, "kvmbox: seccomp: thread tester (vcpu allow-list)"));
	assert_non_null(strstr(err, "ioctl (16)"));
	assert_non_null(strstr(err, want));
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
}

/* The RTC converts the host's time on a vCPU thread: glibc's first conversion would open
 * /etc/localtime, so the set-up loads it while opening is allowed. */
static void test_vcpu_time_conversion(void **state)
{
	char err[512];

	assert_exit(run(SB_VCPU, SECCOMP_ON, false, DO_GMTIME, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void test_log_mode_lets_it_through(void **state)
{
	char err[512];

	assert_exit(run(SB_VCPU, SECCOMP_LOG, false, DO_SET_MEMORY_REGION, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void test_off_installs_nothing(void **state)
{
	char err[512];

	assert_exit(run(SB_SNAPSHOT, SECCOMP_OFF, false, DO_SOCKET, err, sizeof(err)), 0);
}

static void test_workers_cannot_open_or_connect(void **state)
{
	static const enum sandbox_kind workers[] = { SB_BLK,     SB_NET,     SB_CONSOLE, SB_RNG,
						     SB_BALLOON, SB_SIGNALS, SB_VCPU,    SB_SNAPSHOT };
	char err[512];

	for (size_t i = 0; i < sizeof(workers) / sizeof(workers[0]); i++) {
		assert_exit(run(workers[i], SECCOMP_ON, false, DO_OPENAT, err, sizeof(err)),
			    SANDBOX_EXIT_SECCOMP);
		assert_non_null(strstr(err, "openat"));
		assert_exit(run(workers[i], SECCOMP_ON, false, DO_SOCKET, err, sizeof(err)),
			    SANDBOX_EXIT_SECCOMP);
		assert_non_null(strstr(err, "socket"));
	}
}

/* A worker's interrupt routes an MSI-X vector the guest has just rewritten (irqfd, GSI
 * routing): under the virtio-blk list that killed kvmbox in the first Linux boot with a disk.
 * A failed migration's thread takes the disks back and completes what was queued meanwhile.
 * Moving a BAR's ioeventfds stays the vCPU's. */
static void test_workers_may_route_msix(void **state)
{
	static const enum sandbox_kind workers[] = { SB_BLK,     SB_NET,  SB_CONSOLE, SB_RNG,
						     SB_BALLOON, SB_VCPU, SB_MIGRATE };
	char err[512];

	for (size_t i = 0; i < sizeof(workers) / sizeof(workers[0]); i++) {
		assert_exit(run(workers[i], SECCOMP_ON, true, DO_ROUTE_MSIX, err, sizeof(err)), 0);
		assert_string_equal(err, "");
	}
	assert_exit(run(SB_VCPU, SECCOMP_ON, true, DO_IOEVENTFD, err, sizeof(err)), 0);
	assert_exit(run(SB_BLK, SECCOMP_ON, true, DO_IOEVENTFD, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "thread tester (virtio-blk allow-list)"));
}

static void test_rng_may_getrandom_blk_may_not(void **state)
{
	char err[512];

	assert_exit(run(SB_RNG, SECCOMP_ON, false, DO_GETRANDOM, err, sizeof(err)), 0);
	assert_exit(run(SB_BLK, SECCOMP_ON, false, DO_GETRANDOM, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "getrandom"));
}

static void test_main_no_namespaces_clone3_enosys(void **state)
{
	char err[512];

	assert_exit(run(SB_MAIN, SECCOMP_ON, false, DO_CLONE_NEWNS, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "clone"));
	assert_exit(run(SB_MAIN, SECCOMP_ON, false, DO_CLONE3, err, sizeof(err)), 0);
	assert_exit(run(SB_MAIN, SECCOMP_ON, false, DO_OPENAT, err, sizeof(err)), 0);
}

static void test_main_without_reboot_cannot_build(void **state)
{
	char err[512];

	/* A reboot creates the VM again: only then may the main thread do it. */
	assert_exit(run(SB_MAIN, SECCOMP_ON, false, DO_CREATE_VM, err, sizeof(err)), 0);
	assert_exit(run(SB_MAIN, SECCOMP_ON, true, DO_CREATE_VM, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "thread tester (main allow-list)"));
}

/* A VM with a tap: vhost-net's ring ioctls on the threads that start and stop it (vCPU, migration,
 * main, and the net worker, which quiesces its device for a pause: a migration with vhost on was
 * stopped by seccomp there); none at all with vhost=off. */
static void test_vhost_rings_where_started(void **state)
{
	struct vm_config cfg = { .no_reboot = true };
	char err[512];

	assert_int_equal(vm_config_add(&cfg, &virtio_net_type, "tap=kb0"), 0);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VHOST_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MIGRATE, &cfg, SECCOMP_ON, DO_VHOST_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VHOST_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_NET, &cfg, SECCOMP_ON, DO_VHOST_RINGS, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	/* Opened once, before the filters: only a reboot opens it again. */
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VHOST_OWNER, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	cfg.no_reboot = false;
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VHOST_OWNER, err, sizeof(err)), 0);
	vm_config_free_devices(&cfg);

	cfg = (struct vm_config){ .no_reboot = true };
	assert_int_equal(vm_config_add(&cfg, &virtio_net_type, "tap=kb0,vhost=off"), 0);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VHOST_RINGS, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "(vcpu allow-list) made the forbidden system call ioctl"));
	vm_config_free_devices(&cfg);
	cfg = (struct vm_config){ .no_reboot = true };
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VHOST_RINGS, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
}

/* --vsock: vhost-vsock's ring ioctls where the rings are handed over or taken back (vCPU:
 * activation and reset; the vsock worker: a pause; migration and main: a failed migration's
 * resume, a restore), claiming the CID again only where a failed migration (the migration
 * thread, which starts under main's list) or a reboot does it; none of it without --vsock. */
static void test_vsock_where_used(void **state)
{
	struct vm_config cfg = { .no_reboot = true };
	char err[512];

	assert_int_equal(vm_config_add(&cfg, &virtio_vsock_type, "cid=3"), 0);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VSOCK_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_VSOCK, &cfg, SECCOMP_ON, DO_VSOCK_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MIGRATE, &cfg, SECCOMP_ON, DO_VSOCK_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VSOCK_RINGS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MIGRATE, &cfg, SECCOMP_ON, DO_VSOCK_OPEN, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VSOCK_OPEN, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_VSOCK, &cfg, SECCOMP_ON, DO_VSOCK_OPEN, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "(virtio-vsock allow-list) made the forbidden system call ioctl"));
	assert_exit(run_cfg(SB_VSOCK, &cfg, SECCOMP_ON, DO_OPENAT, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	vm_config_free_devices(&cfg);

	cfg = (struct vm_config){ .no_reboot = true };
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VSOCK_RINGS, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_MIGRATE, &cfg, SECCOMP_ON, DO_VSOCK_OPEN, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
}

/* --vsock uds=: the worker's socket calls, listening again on the migration thread and main
 * (a failed migration, a reboot); none of it with vhost-vsock or without --vsock. */
static void test_vsock_uds_where_used(void **state)
{
	struct vm_config cfg = { .no_reboot = true };
	char err[512];

	assert_int_equal(vm_config_add(&cfg, &virtio_vsock_type, "cid=3,uds=/tmp/v.sock"), 0);
	assert_exit(run_cfg(SB_VSOCK, &cfg, SECCOMP_ON, DO_VSOCK_UDS, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_exit(run_cfg(SB_MIGRATE, &cfg, SECCOMP_ON, DO_UDS_LISTEN, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_UDS_LISTEN, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VSOCK_UDS, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	vm_config_free_devices(&cfg);

	cfg = (struct vm_config){ .no_reboot = false };
	assert_int_equal(vm_config_add(&cfg, &virtio_vsock_type, "cid=3,uds=/tmp/v.sock"), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VSOCK_UDS, err, sizeof(err)), 0);
	vm_config_free_devices(&cfg);

	cfg = (struct vm_config){ .no_reboot = true };
	assert_int_equal(vm_config_add(&cfg, &virtio_vsock_type, "cid=3"), 0);
	assert_exit(run_cfg(SB_VSOCK, &cfg, SECCOMP_ON, DO_VSOCK_UDS, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "(virtio-vsock allow-list) made the forbidden system call"));
	vm_config_free_devices(&cfg);
}

/* A passed-through function (--device vfio=): a guest's register access on a vCPU reads and
 * writes the device fd, sets its interrupts and moves BARs' memory slots; only a reboot opens it
 * again (main). None of it without the device. */
static void test_vfio_where_used(void **state)
{
	struct vm_config cfg = { .no_reboot = true };
	char err[512];

	assert_int_equal(vm_config_add(&cfg, &vfio_pci_type, "vfio=0000:01:00.0"), 0);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VFIO_IRQS, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_SET_MEMORY_REGION, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VFIO_REGION, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VFIO_IRQS, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VFIO_OPEN, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VFIO_OPEN, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_BLK, &cfg, SECCOMP_ON, DO_VFIO_IRQS, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	cfg.no_reboot = false;
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VFIO_OPEN, err, sizeof(err)), 0);
	vm_config_free_devices(&cfg);

	cfg = (struct vm_config){ .no_reboot = true };
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VFIO_IRQS, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_SET_MEMORY_REGION, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_VFIO_REGION, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "(vcpu allow-list) made the forbidden system call pread64"));
	cfg.no_reboot = false;
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_VFIO_OPEN, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
}

/* The real-time options act before the filters (vcpu.c: a vCPU sets its CPUs and policy, then
 * installs its list): no list has the calls, except main's when a reboot starts the vCPU
 * threads again under it, and then only for the options given. */
static void test_tuning_calls_only_for_a_reboot(void **state)
{
	struct vm_config cfg = { .no_reboot = false };
	char err[512];

	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_SETAFFINITY, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_SETSCHEDULER, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_FTRUNCATE, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_int_equal(vm_tuning_set(&cfg.tuning, "vcpu-affinity", "0=0"), 0);
	assert_int_equal(vm_tuning_set(&cfg.tuning, "rt-priority", "10"), 0);
	assert_int_equal(vm_tuning_set(&cfg.tuning, "hugepages", "/dev/hugepages"), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_SETAFFINITY, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_SETSCHEDULER, err, sizeof(err)), 0);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_FTRUNCATE, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_SETSCHEDULER, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "(vcpu allow-list) made the forbidden system call sched_setscheduler"));
	assert_exit(run_cfg(SB_VCPU, &cfg, SECCOMP_ON, DO_SETAFFINITY, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	cfg.no_reboot = true;
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_SETSCHEDULER, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
	assert_exit(run_cfg(SB_MAIN, &cfg, SECCOMP_ON, DO_SETAFFINITY, err, sizeof(err)),
		    SANDBOX_EXIT_SECCOMP);
}

/* The coalesced ring for 0xcf8 is registered when the VM is built (again on a reboot: main);
 * draining it is reading memory, so no running thread registers anything. */
static void test_coalesced_registered_at_build_only(void **state)
{
	char err[512];

	assert_exit(run(SB_MAIN, SECCOMP_ON, false, DO_COALESCED, err, sizeof(err)), 0);
	assert_exit(run(SB_MAIN, SECCOMP_ON, true, DO_COALESCED, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_exit(run(SB_VCPU, SECCOMP_ON, false, DO_COALESCED, err, sizeof(err)), SANDBOX_EXIT_SECCOMP);
	assert_non_null(strstr(err, "(vcpu allow-list) made the forbidden system call ioctl"));
}

/* RLIMIT_RTPRIO's soft limit: at 7 or more, SCHED_FIFO 7 needs no capability. */
static rlim_t getrlimit_rtprio(void)
{
	struct rlimit rl;

	return getrlimit(RLIMIT_RTPRIO, &rl) == 0 ? rl.rlim_cur : 0;
}

/* --rt-priority: the vCPU threads go SCHED_FIFO as they start, after the lockdown (every host
 * resource is open by then): the lockdown keeps CAP_SYS_NICE for them, and only then. */
static void test_lockdown_keeps_sys_nice_for_rt(void **state)
{
	for (int rt = 0; rt < 2; rt++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct vm_config cfg = { .no_reboot = true };
			struct sched_param fifo = { .sched_priority = 7 }, other = { .sched_priority = 0 };

			/* Not allowed here at all (no CAP_SYS_NICE, RLIMIT_RTPRIO below 7): nothing to test. */
			if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) != 0)
				_exit(2);
			pthread_setschedparam(pthread_self(), SCHED_OTHER, &other);
			cfg.sandbox.seccomp = SECCOMP_OFF;
			if (rt && vm_tuning_set(&cfg.tuning, "rt-priority", "7") < 0)
				_exit(90);
			if (sandbox_setup_filters_only(&cfg) < 0 || sandbox_lockdown() < 0)
				_exit(91);
			_exit(pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) == 0 ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == 2 ||
		    (!rt && WEXITSTATUS(status) == 0 && getrlimit_rtprio() >= 7)) {
			skip();
			return;
		}
		assert_int_equal(WEXITSTATUS(status), rt ? 0 : 1);
	}
}

static void test_rule_counts(void **state)
{
	struct vm_config cfg = { .no_reboot = false };
	unsigned reboot_main, k;

	assert_int_equal(sandbox_setup_filters_only(&cfg), 0);
	reboot_main = sandbox_rule_count(SB_MAIN);
	for (k = 0; k < SB_NR_KINDS; k++) {
		print_message("# allow-list %-15s %3u rules\n", sandbox_kind_name(k), sandbox_rule_count(k));
		assert_true(sandbox_rule_count(k) > 10);
		assert_true(sandbox_rule_count(k) <= reboot_main);
	}
	cfg.no_reboot = true;
	assert_int_equal(sandbox_setup_filters_only(&cfg), 0);
	print_message("# allow-list main --no-reboot %u rules\n", sandbox_rule_count(SB_MAIN));
	assert_true(sandbox_rule_count(SB_MAIN) < reboot_main);
	assert_true(sandbox_rule_count(SB_VCPU) < sandbox_rule_count(SB_MAIN));
}

static void test_parse_seccomp(void **state)
{
	enum seccomp_mode m;

	assert_int_equal(sandbox_parse_seccomp("on", &m), 0);
	assert_int_equal(m, SECCOMP_ON);
	assert_int_equal(sandbox_parse_seccomp("log", &m), 0);
	assert_int_equal(m, SECCOMP_LOG);
	assert_int_equal(sandbox_parse_seccomp("off", &m), 0);
	assert_int_equal(m, SECCOMP_OFF);
	assert_int_equal(sandbox_parse_seccomp("yes", &m), -1);
}

static void test_run_options(void **state)
{
	char *ok[] = { "run",    "-k",     "vmlinuz",  "--seccomp",         "log", "--user", "vm:kvm",
		       "--jail", "/srv/j", "--cgroup", "/sys/fs/cgroup/vm", NULL };
	char *bad_mode[] = { "run", "-k", "vmlinuz", "--seccomp", "strict", NULL };
	char *bad_jail[] = { "run", "-k", "vmlinuz", "--jail", "relative", NULL };
	char *bad_user[] = { "run", "-k", "vmlinuz", "--user", "vm:", NULL };
	struct vm_config cfg;

	assert_int_equal(run_parse_args(11, ok, &cfg), 0);
	assert_int_equal(cfg.sandbox.seccomp, SECCOMP_LOG);
	assert_string_equal(cfg.sandbox.user, "vm:kvm");
	assert_string_equal(cfg.sandbox.jail, "/srv/j");
	assert_string_equal(cfg.sandbox.cgroup, "/sys/fs/cgroup/vm");
	vm_config_free_devices(&cfg);
	assert_int_equal(run_parse_args(3, ok, &cfg), 0);
	assert_int_equal(cfg.sandbox.seccomp, sandbox_default_mode());
	assert_null(cfg.sandbox.user);
	vm_config_free_devices(&cfg);
	assert_int_equal(run_parse_args(5, bad_mode, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(5, bad_jail, &cfg), EXIT_USAGE);
	assert_int_equal(run_parse_args(5, bad_user, &cfg), EXIT_USAGE);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_parse_user(void **state)
{
	char dir[] = "/tmp/kvmbox-sbXXXXXX", pw[64], gr[64];
	uid_t u;
	gid_t g;

	assert_non_null(mkdtemp(dir));
	snprintf(pw, sizeof(pw), "%s/passwd", dir);
	snprintf(gr, sizeof(gr), "%s/group", dir);
	write_file(pw, "root:x:0:0:root:/root:/bin/sh\nvm:x:1234:2345::/:/bin/false\n");
	write_file(gr, "root:x:0:\nkvm:x:108:\nvmg:x:2345:\n");
	assert_int_equal(sandbox_parse_user("vm", pw, gr, &u, &g), 0);
	assert_int_equal(u, 1234);
	assert_int_equal(g, 2345);
	assert_int_equal(sandbox_parse_user("vm:kvm", pw, gr, &u, &g), 0);
	assert_int_equal(g, 108);
	assert_int_equal(sandbox_parse_user("500:600", pw, gr, &u, &g), 0);
	assert_int_equal(u, 500);
	assert_int_equal(g, 600);
	assert_int_equal(sandbox_parse_user("vm:77", pw, gr, &u, &g), 0);
	assert_int_equal(g, 77);
	assert_int_equal(sandbox_parse_user("nobody", pw, gr, &u, &g), -1); /* not in the file */
	assert_int_equal(sandbox_parse_user("vm:nogroup", pw, gr, &u, &g), -1);
	assert_int_equal(sandbox_parse_user("500", pw, gr, &u, &g), -1);  /* a UID needs a GID */
	assert_int_equal(sandbox_parse_user("root", pw, gr, &u, &g), -1); /* not a drop */
	assert_int_equal(sandbox_parse_user("vm:root", pw, gr, &u, &g), -1);
	assert_int_equal(sandbox_parse_user("", pw, gr, &u, &g), -1);
	unlink(pw);
	unlink(gr);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_seccomp),
		cmocka_unit_test(test_run_options),
		cmocka_unit_test(test_parse_user),
		cmocka_unit_test(test_rule_counts),
		cmocka_unit_test(test_lockdown_keeps_sys_nice_for_rt),
#if !defined(__SANITIZE_ADDRESS__)
		/* Children under the real filters. ASan's run-time makes calls of its own
		 * (kvmbox's sanitizer builds default to --seccomp log for that reason), so the
		 * ASan tier leaves these out; the plain and TSan tiers run them. */
		cmocka_unit_test(test_vcpu_may_run),
		cmocka_unit_test(test_vcpu_may_not_set_memory),
		cmocka_unit_test(test_vcpu_time_conversion),
		cmocka_unit_test(test_log_mode_lets_it_through),
		cmocka_unit_test(test_off_installs_nothing),
		cmocka_unit_test(test_workers_cannot_open_or_connect),
		cmocka_unit_test(test_workers_may_route_msix),
		cmocka_unit_test(test_rng_may_getrandom_blk_may_not),
		cmocka_unit_test(test_main_no_namespaces_clone3_enosys),
		cmocka_unit_test(test_main_without_reboot_cannot_build),
		cmocka_unit_test(test_vhost_rings_where_started),
		cmocka_unit_test(test_vsock_where_used),
		cmocka_unit_test(test_vsock_uds_where_used),
		cmocka_unit_test(test_tuning_calls_only_for_a_reboot),
		cmocka_unit_test(test_vfio_where_used),
		cmocka_unit_test(test_coalesced_registered_at_build_only),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
