/* sandbox.c - seccomp filters per kind of thread, the privilege drop, the jail, the cgroup.
 * See sandbox.h for the order and docs/SECURITY.md for what each wall is for.
 *
 * The allow-lists come from reading the code each kind of thread runs (not from tracing a
 * test run): the groups below say which code needs what. Filters are compiled once, at
 * start-up, to BPF programs kept here; a thread installs its program with one seccomp(2) call,
 * so installing allocates nothing (the live-snapshot child installs its own right after
 * fork). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/magic.h>
#include <linux/vfio.h>
#include <linux/vhost.h>
#include <malloc.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "../backends/console.h"
#include "devtype.h"
#include "log.h"
#include "util.h"
#include "../devices/vfio_pci.h"
#include "../virtio/net.h"
#include "../virtio/vsock.h"

/* musl's <unistd.h> makes pread64 and pwrite64 macros for pread and pwrite (its LFS64 names),
 * which would turn SCMP_SYS(pread64) into an unknown __SNR_pread: the names here are the
 * kernel's. */
#undef pread64
#undef pwrite64

#define MAX_SYSCALL 512
#define MAX_IOCTLS  160
#define SYS_WORDS   (MAX_SYSCALL / 64)

/* Namespaces no thread may create (clone); fork and pthread_create pass none of them. */
#define CLONE_NS_FLAGS                                                                             \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
	 CLONE_NEWCGROUP | CLONE_NEWTIME)

/* Calls allowed only with checked arguments. */
enum special {
	SP_CLONE = 1,  /* threads and the snapshot fork: no new namespaces */
	SP_SOCKET = 2, /* unix, IPv4 and IPv6 sockets only */
	SP_SETID = 4,  /* setresuid/setresgid/setgroups to exactly the --user ids (glibc runs the
			 * drop on every thread; threads started before it must let it through) */
};

/* An allow-list being built: system calls without argument checks, ioctl requests, and the
 * calls with other checks. mmap/mprotect (never PROT_EXEC), prctl (name, no_new_privs) and
 * seccomp (adding filters) are in every list with their checks. */
struct sc_set {
	uint64_t sys[SYS_WORDS];
	unsigned long ioctls[MAX_IOCTLS];
	unsigned nioctls;
	unsigned special;
};

/* The same call under other numbers: which one a function makes is the C library's choice.
 * The lists name glibc's; musl (make static-musl) opens with open, signals a thread with tkill
 * (pthread_kill), removes a file with unlink, writes its stdio buffers with writev and makes
 * stat and lstat with their own calls where glibc uses openat, tgkill, unlinkat, write and
 * newfstatat. Writes nr's twins into twin[2]; returns how many (a name this architecture does
 * not have is a pseudo number below -1, passed over by the caller). */
static int libc_twins(int nr, int twin[2])
{
	int n = 0;

#ifndef __GLIBC__
	if (nr == SCMP_SYS(write))
		twin[n++] = SCMP_SYS(writev);
	if (nr == SCMP_SYS(openat))
		twin[n++] = SCMP_SYS(open);
	if (nr == SCMP_SYS(tgkill))
		twin[n++] = SCMP_SYS(tkill);
	if (nr == SCMP_SYS(unlinkat))
		twin[n++] = SCMP_SYS(unlink);
	if (nr == SCMP_SYS(newfstatat)) {
		twin[n++] = SCMP_SYS(stat);
		twin[n++] = SCMP_SYS(lstat);
	}
#endif
	(void)nr;
	(void)twin;
	return n;
}

/* Each list of system calls ends in -1. A name this architecture does not have (epoll_wait,
 * rename, open on arm64) is one of libseccomp's pseudo numbers, below -1: it is passed over, and
 * must not end the list (it did: on arm64 the loop list ended at epoll_wait). */
static void add_sys(struct sc_set *s, const int *list)
{
	for (; *list != -1; list++) {
		int twin[2], n;

		if (*list < 0)
			continue;
		n = libc_twins(*list, twin);
		if (*list < MAX_SYSCALL)
			s->sys[*list / 64] |= 1ULL << (*list % 64);
		for (int i = 0; i < n; i++)
			if (twin[i] >= 0 && twin[i] < MAX_SYSCALL)
				s->sys[twin[i] / 64] |= 1ULL << (twin[i] % 64);
	}
}

static void add_ioctls(struct sc_set *s, const unsigned long *list)
{
	for (; *list; list++) {
		bool have = false;

		for (unsigned i = 0; i < s->nioctls; i++)
			have |= s->ioctls[i] == *list;
		if (!have && s->nioctls < MAX_IOCTLS)
			s->ioctls[s->nioctls++] = *list;
	}
}

static void add_set(struct sc_set *dst, const struct sc_set *src)
{
	for (unsigned i = 0; i < SYS_WORDS; i++)
		dst->sys[i] |= src->sys[i];
	for (unsigned i = 0; i < src->nioctls; i++) {
		unsigned long one[2] = { src->ioctls[i], 0 };

		add_ioctls(dst, one);
	}
	dst->special |= src->special;
}

#define S(name) SCMP_SYS(name)

/* ---- the groups ------------------------------------------------------------------------------ */

/* clang-format off */

/* Every thread: glibc's malloc (brk, mmap, munmap, madvise, mremap), locks and condition
 * variables (futex), log lines (write), kicks (tgkill: pthread_kill), clocks, ending. */
static const int sys_base[] = {
	S(exit), S(exit_group), S(rt_sigreturn), S(restart_syscall), S(futex), S(write), S(close),
	S(brk), S(munmap), S(madvise), S(mremap), S(clock_gettime), S(gettimeofday), S(getpid), S(gettid),
	S(tgkill), S(rt_sigprocmask), S(sched_yield), S(getuid), S(geteuid), S(getgid), S(getegid),
	S(sched_getaffinity), -1,
};
/* The SIGSYS handler and a forced exit restore the terminal (tcsetattr); isatty is TCGETS.
 * musl's isatty asks TIOCGWINSZ instead. */
static const unsigned long ioctl_tty[] = {
	TCGETS, TCSETS, TCSETSW, TCSETSF,
#ifndef __GLIBC__
	TIOCGWINSZ,
#endif
	0,
};

/* A thread that runs a core/loop.c event loop over eventfds. */
static const int sys_loop[] = { S(epoll_wait), S(epoll_pwait), S(epoll_ctl), S(read), -1 };

/* Interrupts raised by a device, on whichever thread raises them: INTx on KVM_IRQ_LINE; an
 * MSI-X vector is an irqfd write, but the first one after the guest wrote the vector's table
 * entry routes it again (virtio_pci.c msix_route: KVM_IRQFD the first time, then
 * KVM_SET_GSI_ROUTING), so a device worker does that too. And what a guest's register access
 * can make a device do on the vCPU thread: ioeventfds when a BAR moves. */
static const unsigned long ioctl_irq[] = { KVM_IRQ_LINE, KVM_IRQFD, KVM_SET_GSI_ROUTING, 0 };
static const unsigned long ioctl_dev_regs[] = { KVM_IRQ_LINE, KVM_IOEVENTFD, KVM_IRQFD, KVM_SET_GSI_ROUTING, 0 };

/* vCPU: KVM_RUN; a device's activation or reset on a guest register write (virtio-net sets
 * the tap's offloads, virtio-blk drains io_uring, virtio-balloon arms its stats timer, the RTC
 * its interrupt timer, a
 * device's worker is watched differently: epoll_ctl); the crash dump. Not
 * KVM_SET_USER_MEMORY_REGION, not KVM_CREATE_*. */
static const int sys_vcpu[] = { S(io_uring_enter), S(timerfd_settime), S(epoll_ctl), S(read), -1 };
static const unsigned long ioctl_vcpu[] = { KVM_RUN, TUNSETOFFLOAD, 0 };

/* virtio-blk's worker: io_uring, and the synchronous fallback (blockfile.c). */
static const int sys_blk[] = { S(io_uring_enter), S(preadv2), S(pwritev2), S(pread64), S(pwrite64),
			       S(fallocate), S(fdatasync), S(fsync), -1 };
/* virtio-net's worker: the tap (readv/writev) or a socket backend (sendmsg/recvmsg, SO_ERROR). */
static const int sys_net[] = { S(readv), S(writev), S(sendmsg), S(recvmsg), S(getsockopt), -1 };
static const unsigned long ioctl_net[] = { TUNSETOFFLOAD, 0 };
/* A link card (--net socket=/link=, backends/dgram.c): its worker forwards frames and meets at
 * the link's socket again when the link's switch went away (lock file, stale socket removed,
 * bind, listen, accept), the migration thread leaves and joins the link at a hand-over, main
 * leaves it when the VM ends. Only in the lists of a VM with such a card. */
static const int sys_link[] = { S(connect), S(bind), S(listen), S(accept4), S(setsockopt), S(getsockopt),
				S(sendto), S(recvfrom), S(openat), S(flock), S(newfstatat), S(fstat), S(unlink),
				S(unlinkat), S(umask), S(mkdir), S(mkdirat), S(poll), S(ppoll), S(socketpair), S(fcntl), -1 };
static const int sys_rng[] = { S(getrandom), -1 };
/* virtio-balloon: pages go back with madvise (in the base); the stats timer. */
static const int sys_balloon[] = { S(timerfd_settime), -1 };

/* sigwatch.c: waits for the termination signals, wakes the loop, may force the exit. */
static const int sys_signals[] = { S(rt_sigtimedwait), -1 };

/* The live-snapshot child: writes the file and exits. */
static const int sys_snapshot[] = { S(pwrite64), S(fsync), S(fdatasync), -1 };

/* Pausing the VM (any thread that pauses: main, migration): kvmclock kept. */
/* Saving the VM's state (snapshot on main, migration thread): the arch's GET ioctls. */
static const unsigned long ioctl_dirty[] = { KVM_SET_USER_MEMORY_REGION, KVM_GET_DIRTY_LOG, 0 };

/* Handing the disks and the tap over at the end of a migration, or taking them back when it
 * failed (blockfile_release/reacquire, net_release/reacquire). Taking a disk back serves the
 * requests the driver queued meanwhile (blk_reacquire: the disk's calls and its interrupt). */
static const int sys_handover[] = { S(openat), S(newfstatat), S(fstat), S(flock), S(fdatasync), S(fcntl),
				    S(io_uring_enter), S(epoll_ctl), -1 };
static const unsigned long ioctl_tap[] = { TUNSETIFF, TUNGETIFF, TUNSETPERSIST, TUNSETVNETHDRSZ, TUNSETOFFLOAD, 0 };

/* vhost-net (virtio/net.c): the rings go to the kernel when the driver activates the device
 * (vCPU thread), come back on a reset (vCPU) or a pause (main, migration: snapshots and
 * migration save where vhost got to; the device's own worker quiesces it, so the net worker
 * too) and go again on a resume (main, migration: a failed migration). Only in the lists of
 * a VM with a --net tap whose vhost is not off. */
static const unsigned long ioctl_vhost_rings[] = {
	VHOST_SET_FEATURES, VHOST_SET_MEM_TABLE, VHOST_SET_LOG_BASE, VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE,
	VHOST_SET_VRING_ADDR, VHOST_SET_VRING_CALL, VHOST_SET_VRING_KICK, VHOST_NET_SET_BACKEND,
	VHOST_GET_VRING_BASE, 0,
};
/* Opening it (/dev/vhost-net with openat, its call eventfds): a reboot builds the device again. */
static const unsigned long ioctl_vhost_open[] = { VHOST_SET_OWNER, VHOST_GET_FEATURES, 0 };
/* vhost-vsock (virtio/vsock.c), only with --vsock: the rings go to the kernel and come back as
 * for vhost-net (activation and reset on a vCPU, a pause on the device's worker, a restore or a
 * failed migration's resume on main or the worker). Opening it and claiming the CID: a reboot
 * (main) builds the device again, a failed migration (migrate) reopens it (reacquire). */
static const unsigned long ioctl_vsock_rings[] = {
	VHOST_SET_FEATURES, VHOST_SET_MEM_TABLE, VHOST_SET_LOG_BASE, VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE,
	VHOST_SET_VRING_ADDR, VHOST_SET_VRING_CALL, VHOST_SET_VRING_KICK, VHOST_GET_VRING_BASE,
	VHOST_VSOCK_SET_RUNNING, 0,
};
static const unsigned long ioctl_vsock_open[] = { VHOST_SET_OWNER, VHOST_GET_FEATURES, VHOST_VSOCK_SET_GUEST_CID, 0 };
/* vsock's unix-socket mode (--vsock uds=, virtio/vsock_uds.c): its worker accepts host
 * programs on the listener (SO_PEERCRED), connects to PATH_<port> for the guest (a unix
 * socket), moves bytes with readv/writev, half-closes with shutdown, wakes itself through
 * an eventfd and arms its handshake timer (timerfd_settime; dropping the connections disarms
 * it, on the migration thread and main too). A failed migration listens again (migrate: lstat, stale socket removed, bind
 * under umask 0177, listen); the hand-over and the end remove the socket file (main too). A
 * reboot (main) builds the device again. Only in the lists of a VM with --vsock uds=. */
static const int sys_vsock_uds[] = { S(accept4), S(connect), S(bind), S(listen), S(getsockopt), S(shutdown),
				     S(readv), S(writev), S(read), S(umask), S(newfstatat), S(unlink),
				     S(unlinkat), S(timerfd_settime), -1 };

/* A passed-through PCI function (--device vfio=, devices/vfio_pci.c). A guest's register access
 * on a vCPU: config space and trapped BAR parts are pread64/pwrite64 on the VFIO device fd;
 * enabling or disabling MSI-X hands VFIO the vectors' eventfds (VFIO_DEVICE_SET_IRQS, INTx off
 * or on again); moving a BAR moves its KVM memory slots (KVM_SET_USER_MEMORY_REGION, which
 * vCPU threads have only in a VM with such a device). Main takes the same at teardown, with the
 * DMA unmap. Only in the lists of a VM with --device vfio=. */
static const int sys_vfio_run[] = { S(pread64), S(pwrite64), -1 };
static const unsigned long ioctl_vfio_run[] = { VFIO_DEVICE_SET_IRQS, KVM_SET_USER_MEMORY_REGION,
						VFIO_IOMMU_UNMAP_DMA, 0 };
/* A reboot (main) opens the function again: sysfs checked (access, readlink, the IOMMU group's
 * directory listed), /dev/vfio's container, group and device set up, the function reset, guest
 * RAM DMA-mapped, the KVM VFIO device told the group, the BARs mmap'd (MAP_SHARED). */
static const int sys_vfio_open[] = { S(readlink), S(readlinkat), S(getdents64), S(access), S(faccessat),
				     S(faccessat2), -1 };
static const unsigned long ioctl_vfio_open[] = {
	VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
	VFIO_SET_IOMMU, VFIO_GROUP_GET_DEVICE_FD, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO,
	VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_RESET, VFIO_IOMMU_MAP_DMA, KVM_CREATE_DEVICE,
	KVM_SET_DEVICE_ATTR, 0,
};

/* The real-time and memory options (core/tuning.c) act before the filters: mlockall in
 * machine_create, each vCPU thread's affinity and SCHED_FIFO before it installs its list.
 * Only a reboot, which starts the vCPU threads again under main's list, needs the calls then,
 * and only for the options given. A hugetlbfs file (--hugepages=PATH) is sized with ftruncate;
 * locking (MCL_FUTURE), MAP_HUGETLB and --prealloc's madvise need nothing more. */
static const int sys_tune_affinity[] = { S(sched_setaffinity), -1 };
static const int sys_tune_rt[] = { S(sched_setscheduler), -1 };
static const int sys_tune_hugetlbfs[] = { S(ftruncate), -1 };

/* The migration thread: the stream; its reply is JSON (json-c seeds its hash with getrandom
 * the first time it hashes, whichever thread that is); with disks=copy it reads the images
 * (pread64 on the disks' own fds; the dirty maps take a futex, which every thread may). */
static const int sys_migrate[] = { S(connect), S(setsockopt), S(getsockopt), S(read), S(recvfrom), S(sendto),
				   S(getrandom), S(pread64), -1 };

/* The main thread's own work: the event loop, the console, the control socket (accept, SO_PEERCRED,
 * replies), snapshots (create the file, fork the writer, wait for it, rename), the shutdown
 * timer, starting threads (clone; set_robust_list and rseq run in the new thread before it
 * installs its own list), JSON (json-c seeds its hash tables with getrandom on first use). */
static const int sys_main[] = {
	S(accept4), S(sendto), S(recvfrom), S(getsockopt), S(openat), S(newfstatat), S(fstat), S(lseek),
	S(pread64), S(pwrite64), S(fsync), S(fdatasync), S(rename), S(renameat), S(renameat2), S(unlink),
	S(unlinkat), S(wait4), S(timerfd_create), S(timerfd_settime), S(eventfd2), S(epoll_create1),
	S(fcntl), S(set_robust_list), S(rseq), S(read), S(getrandom), -1,
};

/* A guest reboot builds the VM again on the main thread: kernel and initrd read again, RAM
 * mapped, disks and taps opened, io_uring set up, the VM and vCPUs created (/dev/kvm itself
 * stays open in the machine). This is the cost of rebooting in place: with --no-reboot the main
 * thread's list has none of it. */
static const int sys_build[] = { S(openat), S(read), S(pread64), S(newfstatat), S(fstat), S(lseek),
				 S(io_uring_setup), S(io_uring_register), S(io_uring_enter), S(flock),
				 S(eventfd2), S(timerfd_create), S(fcntl), S(epoll_create1), -1 };
static const unsigned long ioctl_build[] = {
	KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM, KVM_CREATE_VCPU,
	KVM_SET_USER_MEMORY_REGION, BLKGETSIZE64,
	/* vm_coalesce_io: PCI's CONFIG_ADDRESS writes queued in KVM's coalesced ring (read from
	 * memory, no call, by whichever thread drains it) */
	KVM_REGISTER_COALESCED_MMIO, 0,
};

/* The jail's outside process: waits, forwards termination signals. */
static const int sys_jail_parent[] = { S(rt_sigtimedwait), S(wait4), S(kill), -1 };
/* clang-format on */

/* ---- the filters ----------------------------------------------------------------------------- */

struct prog {
	struct sock_filter *insns;
	unsigned short len;
	unsigned rules;
};

/* The process's sandbox: set once by sandbox_setup on the single start-up thread, read-only
 * afterwards (each thread reads its program; the SIGSYS handler reads the names). */
static struct {
	bool ready; /* filters compiled */
	enum seccomp_mode mode;
	struct prog progs[SB_NR_KINDS];
	const char *names[MAX_SYSCALL];
	bool drop_ids;
	uid_t uid;
	gid_t gid;
	const char *jail;
	const char *cgroup;
	long host_pid;
	bool has_tap;
	bool has_vhost;      /* a --net tap with vhost not off */
	bool has_vsock;      /* --vsock */
	bool has_vsock_uds;  /* --vsock uds= */
	bool has_link;       /* a --net socket= or link= card */
	bool has_vfio;       /* --device vfio= */
	bool tune_affinity;  /* --vcpu-affinity or --io-affinity */
	bool tune_rt;        /* --rt-priority */
	bool tune_hugetlbfs; /* --hugepages=PATH */
	uint32_t arch;       /* the native AUDIT_ARCH_*, for the SIGSYS line */
} sb;

/* The calling thread's kind, for the SIGSYS line. */
static __thread int thread_kind = -1;

static const char *const kind_names[SB_NR_KINDS] = {
	[SB_MAIN] = "main",          [SB_VCPU] = "vcpu",
	[SB_SIGNALS] = "signals",    [SB_MIGRATE] = "migrate",
	[SB_SNAPSHOT] = "snapshot",  [SB_BLK] = "virtio-blk",
	[SB_NET] = "virtio-net",     [SB_CONSOLE] = "virtio-console",
	[SB_RNG] = "virtio-rng",     [SB_BALLOON] = "virtio-balloon",
	[SB_VSOCK] = "virtio-vsock", [SB_JAIL_PARENT] = "jail-parent",
};

const char *sandbox_kind_name(enum sandbox_kind kind)
{
	return kind < SB_NR_KINDS ? kind_names[kind] : "?";
}

static void worker_set(struct sc_set *s)
{
	add_sys(s, sys_loop);
	add_ioctls(s, ioctl_irq);
}

/* The list of one kind; main includes what the threads it may still create need, since they
 * start under its filter. */
static void build_set(enum sandbox_kind kind, bool no_reboot, struct sc_set *s)
{
	struct sc_set t;

	memset(s, 0, sizeof(*s));
	add_sys(s, sys_base);
	add_ioctls(s, ioctl_tty);
	switch (kind) {
	case SB_VCPU:
		add_sys(s, sys_vcpu);
		add_ioctls(s, ioctl_vcpu);
		add_ioctls(s, ioctl_dev_regs);
		add_ioctls(s, arch_ioctls.crash_dump);
		if (sb.has_vhost)
			add_ioctls(s, ioctl_vhost_rings);
		if (sb.has_vsock)
			add_ioctls(s, ioctl_vsock_rings);
		if (sb.has_vfio) {
			add_sys(s, sys_vfio_run);
			add_ioctls(s, ioctl_vfio_run);
		}
		break;
	case SB_BLK:
		worker_set(s);
		add_sys(s, sys_blk);
		break;
	case SB_NET:
		worker_set(s);
		add_sys(s, sys_net);
		add_ioctls(s, ioctl_net);
		if (sb.has_vhost)
			add_ioctls(s, ioctl_vhost_rings);
		if (sb.has_link) {
			add_sys(s, sys_link);
			s->special |= SP_SOCKET;
		}
		break;
	case SB_CONSOLE:
		worker_set(s);
		break;
	case SB_RNG:
		worker_set(s);
		add_sys(s, sys_rng);
		break;
	case SB_BALLOON:
		worker_set(s);
		add_sys(s, sys_balloon);
		break;
	case SB_VSOCK:
		worker_set(s);
		if (sb.has_vsock)
			add_ioctls(s, ioctl_vsock_rings);
		if (sb.has_vsock_uds) {
			add_sys(s, sys_vsock_uds);
			s->special |= SP_SOCKET;
		}
		break;
	case SB_SIGNALS:
		add_sys(s, sys_signals);
		break;
	case SB_SNAPSHOT:
		add_sys(s, sys_snapshot);
		break;
	case SB_JAIL_PARENT:
		add_sys(s, sys_jail_parent);
		break;
	case SB_MIGRATE:
		add_sys(s, sys_migrate);
		add_sys(s, sys_handover);
		add_sys(s, sys_blk);
		add_ioctls(s, ioctl_irq);
		add_ioctls(s, ioctl_tap);
		add_ioctls(s, ioctl_dirty);
		add_ioctls(s, arch_ioctls.state_get);
		add_ioctls(s, arch_ioctls.clock);
		s->special |= SP_SOCKET;
		if (sb.has_vhost)
			add_ioctls(s, ioctl_vhost_rings);
		if (sb.has_vsock) {
			add_ioctls(s, ioctl_vsock_rings);
			add_ioctls(s, ioctl_vsock_open);
		}
		if (sb.has_link)
			add_sys(s, sys_link);
		if (sb.has_vsock_uds)
			add_sys(s, sys_vsock_uds);
		break;
	case SB_MAIN:
		add_sys(s, sys_main);
		add_sys(s, sys_loop);
		/* Devices' timers (loop_timer_new: the RTC's interrupts) fire on main's loop. */
		add_ioctls(s, ioctl_irq);
		if (sb.has_link) {
			add_sys(s, sys_link);
			s->special |= SP_SOCKET;
		}
		if (sb.has_vsock_uds)
			add_sys(s, sys_vsock_uds);
		if (sb.has_vfio) {
			add_sys(s, sys_vfio_run);
			add_ioctls(s, ioctl_vfio_run);
		}
		add_ioctls(s, arch_ioctls.state_get);
		add_ioctls(s, arch_ioctls.clock);
		s->special |= SP_CLONE;
		/* Threads it creates later: migration, the snapshot child. */
		build_set(SB_MIGRATE, no_reboot, &t);
		add_set(s, &t);
		build_set(SB_SNAPSHOT, no_reboot, &t);
		add_set(s, &t);
		if (!no_reboot) {
			/* A reboot builds everything again, and every thread kind starts under main's list. */
			add_sys(s, sys_build);
			add_ioctls(s, ioctl_build);
			add_ioctls(s, ioctl_tap);
			add_ioctls(s, arch_ioctls.build);
			add_ioctls(s, arch_ioctls.state_set);
			if (sb.has_vhost)
				add_ioctls(s, ioctl_vhost_open);
			if (sb.has_vsock)
				add_ioctls(s, ioctl_vsock_open);
			if (sb.has_vfio) {
				add_sys(s, sys_vfio_open);
				add_ioctls(s, ioctl_vfio_open);
			}
			if (sb.tune_affinity)
				add_sys(s, sys_tune_affinity);
			if (sb.tune_rt)
				add_sys(s, sys_tune_rt);
			if (sb.tune_hugetlbfs)
				add_sys(s, sys_tune_hugetlbfs);
			for (int k = SB_VCPU; k < SB_NR_KINDS; k++) {
				if (k == SB_MAIN || k == SB_JAIL_PARENT || k == SB_SIGNALS)
					continue;
				build_set((enum sandbox_kind)k, no_reboot, &t);
				add_set(s, &t);
			}
		} else {
			/* What devices do when main calls them: the power button and a balloon target
			 * raise interrupts (KVM_IRQ_LINE, irqfd writes), a pause or a teardown drains
			 * io_uring; that is the vCPU list's device part, so main takes it whole. */
			build_set(SB_VCPU, no_reboot, &t);
			add_set(s, &t);
		}
		s->special &= ~SP_SETID;
		break;
	default:
		break;
	}
	/* Threads that exist before the ids are dropped (glibc makes each one drop them). */
	if (sb.drop_ids && kind != SB_MAIN && kind != SB_VCPU && kind != SB_MIGRATE && kind != SB_SNAPSHOT &&
	    kind != SB_JAIL_PARENT)
		s->special |= SP_SETID;
}

static int rule(scmp_filter_ctx ctx, unsigned *n, int nr, unsigned argc, struct scmp_arg_cmp *args)
{
	int r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, argc, args);

	if (r == 0)
		(*n)++;
	return r;
}

#define ARG(i, cmp, a, b) ((struct scmp_arg_cmp){ .arg = (i), .op = (cmp), .datum_a = (a), .datum_b = (b) })

static int compile(const struct sc_set *s, enum seccomp_mode mode, struct prog *out)
{
	scmp_filter_ctx ctx = seccomp_init(mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
	unsigned n = 0;
	int r = 0, fd = -1;
	off_t size;
	struct scmp_arg_cmp a[3];

	if (!ctx)
		return -ENOMEM;
	/* A foreign ABI (int 0x80 on x86_64) is never kvmbox's own code. */
	seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); /* a binary tree: long lists stay fast */
	for (int nr = 0; nr < MAX_SYSCALL && r == 0; nr++)
		if (s->sys[nr / 64] & (1ULL << (nr % 64)))
			r = rule(ctx, &n, nr, 0, NULL);
	/* The kernel takes an ioctl's request as an unsigned int: only its low 32 bits count. musl's
	 * ioctl(int, int, ...) sign-extends the request (KVM's _IOR/_IOW numbers have bit 31 set),
	 * glibc's (int, unsigned long, ...) does not: compare the low 32 bits, as the kernel does. */
	for (unsigned i = 0; i < s->nioctls && r == 0; i++) {
		a[0] = ARG(1, SCMP_CMP_MASKED_EQ, 0xffffffffULL, s->ioctls[i] & 0xffffffffULL);
		r = rule(ctx, &n, S(ioctl), 1, a);
	}
	/* Never executable memory: kvmbox maps none after start-up. */
	a[0] = ARG(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	if (r == 0)
		r = rule(ctx, &n, S(mmap), 1, a);
	if (r == 0)
		r = rule(ctx, &n, S(mprotect), 1, a);
	/* pthread_setname_np, the SIGSYS handler's name lookup, installing a thread's own list. */
	static const int prctls[] = { PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS };
	for (size_t i = 0; i < ARRAY_SIZE(prctls) && r == 0; i++) {
		a[0] = ARG(0, SCMP_CMP_EQ, (uint64_t)prctls[i], 0);
		r = rule(ctx, &n, S(prctl), 1, a);
	}
	a[0] = ARG(0, SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER, 0);
	if (r == 0)
		r = rule(ctx, &n, S(seccomp), 1, a);
	/* glibc's pthread_create and fork try clone3 first, whose flags live in memory a filter
	 * cannot read: ENOSYS makes it use clone, whose flags are checked. */
	if (r == 0 && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), S(clone3), 0) == 0)
		n++;
	if (r == 0 && (s->special & SP_CLONE)) {
		a[0] = ARG(0, SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0);
		r = rule(ctx, &n, S(clone), 1, a);
#ifndef __GLIBC__
		/* musl's fork is the fork system call (no flags, so no namespaces either). */
		if (r == 0)
			r = rule(ctx, &n, S(fork), 0, NULL);
#endif
	}
	if (r == 0 && (s->special & SP_SOCKET)) {
		static const int fams[] = { AF_UNIX, AF_INET, AF_INET6 };

		for (size_t i = 0; i < ARRAY_SIZE(fams) && r == 0; i++) {
			a[0] = ARG(0, SCMP_CMP_EQ, (uint64_t)fams[i], 0);
			r = rule(ctx, &n, S(socket), 1, a);
		}
	}
	if (r == 0 && (s->special & SP_SETID)) {
		for (int i = 0; i < 3; i++)
			a[i] = ARG((unsigned)i, SCMP_CMP_EQ, sb.uid, 0);
		r = rule(ctx, &n, S(setresuid), 3, a);
		for (int i = 0; i < 3 && r == 0; i++)
			a[i] = ARG((unsigned)i, SCMP_CMP_EQ, sb.gid, 0);
		if (r == 0)
			r = rule(ctx, &n, S(setresgid), 3, a);
		a[0] = ARG(0, SCMP_CMP_EQ, 0, 0);
		if (r == 0)
			r = rule(ctx, &n, S(setgroups), 1, a);
	}
	if (r == 0) {
		fd = memfd_create("kvmbox-bpf", MFD_CLOEXEC);
		r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	}
	if (r == 0) {
		size = lseek(fd, 0, SEEK_END);
		out->insns = size > 0 ? malloc((size_t)size) : NULL;
		if (!out->insns || pread(fd, out->insns, (size_t)size, 0) != size) {
			free(out->insns);
			out->insns = NULL;
			r = -EIO;
		} else {
			out->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
			out->rules = n;
		}
	}
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return r;
}

/* ---- the SIGSYS report ----------------------------------------------------------------------- */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, unsigned long long v, unsigned base)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && n < (int)sizeof(tmp));
	if (base == 16)
		at = put_str(buf, at, cap, "0x");
	while (n && at + 1 < cap)
		buf[at++] = tmp[--n];
	return at;
}

/* Async-signal-safe: no stdio, no allocation; the names were resolved at start-up. */
static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	char line[256], comm[17] = "";
	size_t at = 0;
	int nr = si->si_syscall;
	const char *kind = thread_kind >= 0 && thread_kind < SB_NR_KINDS ? kind_names[thread_kind] : "?";

	console_restore_terminal();
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	at = put_str(line, at, sizeof(line), "kvmbox: seccomp: thread ");
	at = put_str(line, at, sizeof(line), comm[0] ? comm : "?");
	at = put_str(line, at, sizeof(line), " (");
	at = put_str(line, at, sizeof(line), kind);
	at = put_str(line, at, sizeof(line), " allow-list) made the forbidden system call ");
	if (si->si_arch != sb.arch) {
		at = put_str(line, at, sizeof(line), "number ");
		at = put_num(line, at, sizeof(line), (unsigned)nr, 10);
		at = put_str(line, at, sizeof(line), " of a foreign ABI");
	} else {
		at = put_str(line, at, sizeof(line),
			     nr >= 0 && nr < MAX_SYSCALL && sb.names[nr] ? sb.names[nr] : "?");
		at = put_str(line, at, sizeof(line), " (");
		at = put_num(line, at, sizeof(line), (unsigned)nr, 10);
		at = put_str(line, at, sizeof(line), ")");
#if defined(__x86_64__)
		if (nr == S(ioctl) || nr == S(prctl) || nr == S(clone) || nr == S(socket)) {
			const ucontext_t *uc = ucv;
			unsigned long long a0 = (unsigned long long)uc->uc_mcontext.gregs[REG_RDI];
			unsigned long long a1 = (unsigned long long)uc->uc_mcontext.gregs[REG_RSI];

			at = put_str(line, at, sizeof(line), nr == S(ioctl) ? " request " : " argument ");
			at = put_num(line, at, sizeof(line), nr == S(ioctl) ? a1 : a0, 16);
		}
#endif
	}
	at = put_str(line, at, sizeof(line), "; kvmbox stops (report it: docs/SECURITY.md)\n");
	if (write(STDERR_FILENO, line, at) < 0) {
		/* nothing more to do */
	}
	_exit(SANDBOX_EXIT_SECCOMP);
}

/* ---- the user --------------------------------------------------------------------------------- */

static bool numeric(const char *s, unsigned long *out)
{
	char *end;

	if (!*s || !strchr("0123456789", *s))
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !*end && !errno && *out < 0xffffffffUL;
}

int sandbox_parse_user(const char *spec, const char *passwd, const char *group, uid_t *uid, gid_t *gid)
{
	char user[256], *grp;
	unsigned long n;
	bool have_gid = false;
	FILE *f;

	if (!spec || !*spec || strlen(spec) >= sizeof(user)) {
		log_error("--user '%s': empty or too long; give USER[:GROUP] or UID[:GID]", spec ? spec : "");
		return -1;
	}
	strcpy(user, spec);
	grp = strchr(user, ':');
	if (grp)
		*grp++ = '\0';
	if (!*user || (grp && !*grp)) {
		log_error(
			"--user '%s': a user and, after ':', a group are needed; give USER[:GROUP] or UID[:GID]",
			spec);
		return -1;
	}
	if (numeric(user, &n)) {
		*uid = (uid_t)n;
	} else {
		struct passwd *pw = NULL;

		f = fopen(passwd, "re");
		while (f && (pw = fgetpwent(f)) && strcmp(pw->pw_name, user))
			;
		if (pw) {
			*uid = pw->pw_uid;
			*gid = pw->pw_gid;
			have_gid = true;
		}
		if (f)
			fclose(f);
		if (!pw) {
			log_error("--user %s: no such user in %s; give an existing user or a numeric UID",
				  user, passwd);
			return -1;
		}
	}
	if (grp) {
		if (numeric(grp, &n)) {
			*gid = (gid_t)n;
		} else {
			struct group *gr = NULL;

			f = fopen(group, "re");
			while (f && (gr = fgetgrent(f)) && strcmp(gr->gr_name, grp))
				;
			if (gr)
				*gid = gr->gr_gid;
			if (f)
				fclose(f);
			if (!gr) {
				log_error(
					"--user %s: no such group '%s' in %s; give an existing group or a numeric GID",
					spec, grp, group);
				return -1;
			}
		}
		have_gid = true;
	}
	if (!have_gid) {
		log_error("--user %s: a numeric UID needs a group too; give UID:GID", spec);
		return -1;
	}
	if (*uid == 0 || *gid == 0) {
		log_error("--user %s: that is root; give an unprivileged user and group", spec);
		return -1;
	}
	return 0;
}

enum seccomp_mode sandbox_default_mode(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return SECCOMP_LOG;
#else
	return SECCOMP_ON;
#endif
}

int sandbox_parse_seccomp(const char *s, enum seccomp_mode *mode)
{
	if (!strcmp(s, "on"))
		*mode = SECCOMP_ON;
	else if (!strcmp(s, "log"))
		*mode = SECCOMP_LOG;
	else if (!strcmp(s, "off"))
		*mode = SECCOMP_OFF;
	else
		return -1;
	return 0;
}

/* ---- capabilities ---------------------------------------------------------------------------- */

static int caps_get(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };

	return (int)syscall(SYS_capget, &h, d);
}

static int caps_set(const struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };

	return (int)syscall(SYS_capset, &h, d);
}

static bool cap_has(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

/* Start-up, one thread: nothing kvmbox does execs, so the sets that only matter across execve
 * (bounding, inheritable, ambient) go empty now, for every thread to come. */
static int caps_drop_exec_sets(void)
{
	struct __user_cap_data_struct d[2];

	if (caps_get(d) < 0)
		return 0; /* no capability support: nothing to drop */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (cap_has(d, CAP_SETPCAP)) {
		for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
				log_error("cannot drop capability %d from the bounding set: %s", c,
					  strerror(errno));
				return -1;
			}
	}
	d[0].inheritable = d[1].inheritable = 0;
	if (caps_set(d) < 0) {
		log_error("cannot clear the inheritable capabilities: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Still root at the lockdown (no --user): keep only what a running VM may need. */
static int caps_keep_running(void)
{
	static const int keep[] = {
		CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, /* snapshots, disks and kernel reopened */
		CAP_NET_ADMIN,                      /* a tap reattached (reboot, failed migration) */
		CAP_IPC_LOCK,     CAP_SYS_RESOURCE, /* io_uring rings on older kernels */
		CAP_SYS_NICE, /* --rt-priority: vCPU threads go SCHED_FIFO as they start (reboots too) */
	};
	struct __user_cap_data_struct d[2], k[2];

	if (caps_get(d) < 0)
		return 0;
	memset(k, 0, sizeof(k));
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		int c = keep[i];

		if (c == CAP_NET_ADMIN && !sb.has_tap)
			continue;
		if (c == CAP_SYS_NICE && !sb.tune_rt)
			continue;
		k[c / 32].permitted |= d[c / 32].permitted & (1u << (c % 32));
	}
	k[0].effective = k[0].permitted;
	k[1].effective = k[1].permitted;
	if (caps_set(k) < 0) {
		log_error("cannot drop capabilities: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- cgroup ---------------------------------------------------------------------------------- */

static int join_cgroup(const char *path)
{
	char procs[4096], pid[24];
	struct statfs fs;
	int fd, n;

	if (statfs(path, &fs) < 0) {
		log_error(
			"--cgroup %s: %s; give the directory of an existing cgroup v2 (under /sys/fs/cgroup)",
			path, strerror(errno));
		return -1;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC) {
		log_error("--cgroup %s: not on a cgroup v2 file system; mount cgroup2 (mount -t cgroup2 none "
			  "/sys/fs/cgroup) and give a directory in it",
			  path);
		return -1;
	}
	if (snprintf(procs, sizeof(procs), "%s/cgroup.procs", path) >= (int)sizeof(procs)) {
		log_error("--cgroup %s: path too long; give a shorter one", path);
		return -1;
	}
	fd = open(procs, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		log_error("--cgroup %s: cannot open cgroup.procs: %s; create the cgroup (mkdir) and make it "
			  "writable for kvmbox's user",
			  path, strerror(errno));
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (write(fd, pid, (size_t)n) != n) {
		log_error(
			"--cgroup %s: the kernel refused to move kvmbox there: %s; a cgroup with controllers "
			"enabled for its children (a non-leaf) takes no processes: give a leaf cgroup",
			path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* ---- the jail -------------------------------------------------------------------------------- */

/* The process outside the namespaces: forwards the termination signals to the VM and ends
 * with its status. It holds no fd but the terminal's. */
static _Noreturn void jail_parent(pid_t child)
{
	sigset_t set;
	int status;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sandbox_thread_enter(SB_JAIL_PARENT);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		pid_t w;

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			/* What the terminal sends (Ctrl-C, a hang-up) reaches the VM's process group, the
			 * VM included, by itself: only what kill(2) sent us is passed on. */
			if (si.si_code <= 0)
				kill(child, sig);
			continue;
		}
		w = waitpid(child, &status, WNOHANG);
		if (w == child)
			break;
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	_exit(128 + WTERMSIG(status));
}

static int jail_prepare(const char *dir)
{
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
	int pfd[2];
	pid_t child;
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_error("--jail %s: %s; give an existing directory", dir,
			  errno ? strerror(errno) : "not a directory");
		return -1;
	}
	if (!sb.has_tap)
		flags |= CLONE_NEWNET; /* no network at all: a tap stays in the host's */
	if (unshare(flags) < 0) {
		log_error("--jail %s: cannot create namespaces: %s; run kvmbox as root (CAP_SYS_ADMIN)", dir,
			  strerror(errno));
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		log_error("--jail %s: pipe: %s", dir, strerror(errno));
		return -1;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		log_error("--jail %s: fork: %s", dir, strerror(errno));
		return -1;
	}
	if (child > 0) {
		long pid = child;

		if (write(pfd[1], &pid, sizeof(pid)) != sizeof(pid))
			kill(child, SIGKILL);
		close(pfd[1]);
		/* Everything but the terminal is the VM's: a migration socket or a snapshot the parent
		 * kept open would outlive the VM. */
		syscall(SYS_close_range, 3, ~0U, 0); /* musl has no close_range() */
		jail_parent(child);
	}
	close(pfd[1]);
	if (read(pfd[0], &sb.host_pid, sizeof(sb.host_pid)) != sizeof(sb.host_pid))
		sb.host_pid = -1;
	close(pfd[0]);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* the parent gone (SIGKILL): so is the VM */
	/* Our mounts stay ours, DIR becomes a mount point for pivot_root. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0) {
		log_error("--jail %s: cannot set up the mounts: %s", dir, strerror(errno));
		return -1;
	}
	if (sethostname("kvmbox", 6) < 0)
		log_warn("--jail: sethostname: %s", strerror(errno));
	return 0;
}

static int jail_enter(const char *dir)
{
	if (chdir(dir) < 0) {
		log_error("--jail %s: %s", dir, strerror(errno));
		return -1;
	}
	/* pivot_root(".", "."): the old root ends up on top of the new one, and is detached. */
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0) {
			log_error("--jail %s: cannot detach the old root: %s", dir, strerror(errno));
			return -1;
		}
	} else if (errno == EINVAL) {
		/* The root is the initial ramfs, which cannot be pivoted: move DIR over it and chroot,
		 * as switch_root does (the old root stays below, unreachable without chroot). */
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0) {
			log_error("--jail %s: cannot make it the root: %s", dir, strerror(errno));
			return -1;
		}
	} else {
		log_error("--jail %s: pivot_root: %s", dir, strerror(errno));
		return -1;
	}
	if (chdir("/") < 0) {
		log_error("--jail %s: chdir /: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static bool config_has_tap(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type == &virtio_net_type &&
		    ((const struct net_config *)cfg->devs[i].cfg)->backend == NET_BACKEND_TAP)
			return true;
	return false;
}

static bool config_has_link(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type == &virtio_net_type &&
		    ((const struct net_config *)cfg->devs[i].cfg)->backend != NET_BACKEND_TAP)
			return true;
	return false;
}

static bool config_has_vhost(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type == &virtio_net_type &&
		    ((const struct net_config *)cfg->devs[i].cfg)->vhost != NET_VHOST_OFF)
			return true;
	return false;
}

static bool config_has_vsock(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type == &virtio_vsock_type)
			return true;
	return false;
}

static bool config_has_vsock_uds(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type == &virtio_vsock_type &&
		    ((const struct vsock_config *)cfg->devs[i].cfg)->uds[0])
			return true;
	return false;
}

static bool config_has_vfio(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type == &vfio_pci_type)
			return true;
	return false;
}

static int compile_all(const struct vm_config *cfg)
{
	const struct vm_tuning *t = &cfg->tuning;

	sb.mode = cfg->sandbox.seccomp;
	sb.has_vhost = config_has_vhost(cfg);
	sb.has_vsock = config_has_vsock(cfg);
	sb.has_vsock_uds = config_has_vsock_uds(cfg);
	sb.has_link = config_has_link(cfg);
	sb.has_vfio = config_has_vfio(cfg);
	sb.tune_affinity = t->vcpu_affinity[0] || t->io_affinity[0];
	sb.tune_rt = t->rt_priority != 0;
	sb.tune_hugetlbfs = t->hugepages && t->hugepage_dir[0];
	sb.arch = seccomp_arch_native();
	for (int nr = 0; nr < MAX_SYSCALL; nr++)
		if (!sb.names[nr])
			sb.names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	if (sb.mode == SECCOMP_OFF) {
		sb.ready = true;
		return 0;
	}
#ifdef __GLIBC__
	/* One malloc arena for every thread: glibc gives a thread arena's shrinking heap back by
	 * first reading /proc/sys/vm/overcommit_memory, an open no worker's list holds. Threads
	 * allocate little once running; the main arena trims with brk. */
	mallopt(M_ARENA_MAX, 1);
#endif
	/* glibc loads the time zone (/etc/localtime) the first time any time conversion runs, even
	 * gmtime_r (the RTC, on a vCPU thread): now, while opening is still allowed. */
	tzset();
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
		log_error(
			"--seccomp: this kernel has no seccomp filters (%s); build it with CONFIG_SECCOMP_FILTER "
			"or give --seccomp off",
			strerror(errno));
		return -1;
	}
	for (int k = 0; k < SB_NR_KINDS; k++) {
		struct sc_set s;
		int r;

		free(sb.progs[k].insns);
		sb.progs[k].insns = NULL;
		build_set((enum sandbox_kind)k, cfg->no_reboot, &s);
		r = compile(&s, sb.mode, &sb.progs[k]);
		if (r < 0) {
			log_error(
				"--seccomp: cannot build the %s allow-list: %s; give --seccomp off and report it",
				kind_names[k], strerror(-r));
			return -1;
		}
	}
	sb.ready = true;
	return 0;
}

static int install_sigsys(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		log_error("--seccomp: cannot catch SIGSYS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int sandbox_setup_filters_only(const struct vm_config *cfg)
{
	sb.drop_ids = false;
	if (compile_all(cfg) < 0)
		return -1;
	return install_sigsys();
}

int sandbox_setup(const struct vm_config *cfg)
{
	const struct sandbox_config *sc = &cfg->sandbox;

	sb.host_pid = getpid();
	sb.has_tap = config_has_tap(cfg);
	sb.jail = sc->jail;
	sb.cgroup = sc->cgroup;
	if ((sc->user || sc->jail) && !cfg->no_reboot) {
		log_error(
			"%s: a guest reboot builds the VM again from the kernel, initrd and disk paths, which %s "
			"cannot reach; add --no-reboot (a reboot then ends kvmbox with status 0)",
			sc->jail ? "--jail" : "--user", sc->jail ? "the jail" : "the dropped user");
		return -1;
	}
	if (sc->jail && config_has_link(cfg)) {
		/* A card meets its link again when the link's switch goes away, by path: inside the
		 * jail that path is another one, and the link would split without a word. */
		log_error("--jail: a link card (--net link= or socket=) meets its link again by path, which "
			  "the jail changes; run such a VM without --jail");
		return -1;
	}
	if (sc->user) {
		if (sandbox_parse_user(sc->user, "/etc/passwd", "/etc/group", &sb.uid, &sb.gid) < 0)
			return -1;
		sb.drop_ids = true;
	}
	if (sc->cgroup && join_cgroup(sc->cgroup) < 0)
		return -1;
	if (caps_drop_exec_sets() < 0)
		return -1;
	if (compile_all(cfg) < 0 || install_sigsys() < 0)
		return -1;
	if (sc->jail && jail_prepare(sc->jail) < 0)
		return -1;
	return 0;
}

int sandbox_lockdown(void)
{
	uid_t r, e, s;

	if (sb.jail && jail_enter(sb.jail) < 0)
		return -1;
	if (sb.drop_ids) {
		/* glibc makes every thread drop them (threads share nothing of their ids). */
		if (setgroups(0, NULL) < 0 || setresgid(sb.gid, sb.gid, sb.gid) < 0 ||
		    setresuid(sb.uid, sb.uid, sb.uid) < 0) {
			log_error(
				"--user: cannot change to uid %u gid %u: %s; run kvmbox as root to use --user",
				(unsigned)sb.uid, (unsigned)sb.gid, strerror(errno));
			return -1;
		}
		if (getresuid(&r, &e, &s) < 0 || r != sb.uid || e != sb.uid || s != sb.uid) {
			log_error("--user: the ids did not change for good; not starting the VM");
			return -1;
		}
	} else if (caps_keep_running() < 0) {
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_error("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void sandbox_thread_enter(enum sandbox_kind kind)
{
	struct sock_fprog fp;

	/* The snapshot writer is a child forked from a threaded process: it must not print (stdio's
	 * lock may be held by a thread that is not there); its parent reports status 4. */
	bool quiet = kind == SB_SNAPSHOT;

	thread_kind = (int)kind;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		if (!quiet)
			log_error("%s thread: PR_SET_NO_NEW_PRIVS: %s", kind_names[kind], strerror(errno));
		_exit(4);
	}
	if (!sb.ready || sb.mode == SECCOMP_OFF || !sb.progs[kind].insns)
		return;
	fp.len = sb.progs[kind].len;
	fp.filter = sb.progs[kind].insns;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0) {
		if (!quiet)
			log_error("%s thread: cannot install its seccomp filter: %s; give --seccomp off",
				  kind_names[kind], strerror(errno));
		_exit(4);
	}
}

bool sandbox_owner(uid_t *uid, gid_t *gid)
{
	if (!sb.drop_ids)
		return false;
	*uid = sb.uid;
	*gid = sb.gid;
	return true;
}

unsigned sandbox_rule_count(enum sandbox_kind kind)
{
	return kind < SB_NR_KINDS ? sb.progs[kind].rules : 0;
}

void sandbox_get_info(struct sandbox_info *out)
{
	static const char *const modes[] = { "on", "log", "off" };

	out->seccomp = sb.ready ? modes[sb.mode] : "off";
	out->uid = getuid();
	out->gid = getgid();
	out->jail = sb.jail;
	out->cgroup = sb.cgroup;
	out->host_pid = sb.host_pid > 0 ? sb.host_pid : getpid();
	out->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
}
