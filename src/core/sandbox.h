/* sandbox.h - the walls around a running VM (docs/SECURITY.md).
 *
 *   seccomp   one allow-list per kind of thread, compiled once at start-up, installed by each
 *             thread as it starts (threads created later inherit their creator's list and add
 *             their own on top); a forbidden call ends kvmbox with one line naming the thread
 *             and the call (SIGSYS handler), or is only logged (--seccomp log)
 *   ids       --user: supplementary groups, gid and uid dropped for good
 *   caps      the bounding, inheritable and ambient sets emptied at start-up; the effective and
 *             permitted sets emptied by --user, else cut to what a running VM may still need
 *   jail      --jail DIR: new mount, PID, IPC, UTS (and, without a tap, network) namespaces,
 *             DIR becomes /
 *   cgroup    --cgroup PATH: the process joins an existing cgroup v2
 *
 * The order (cli/run.c, core/machine.c): parse -> sandbox_setup (single-threaded: ids looked
 * up, cgroup joined, namespaces made, filters compiled) -> machine, devices, every host
 * resource opened -> sandbox_lockdown (root changed, ids and capabilities dropped) -> vCPU
 * threads start and install their filter -> the main thread installs its own -> the guest's
 * first instruction. The state here is the process's (filters, the SIGSYS handler, the ids
 * it runs as), like the terminal in backends/console.c. */
#ifndef KVMBOX_SANDBOX_H
#define KVMBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* Each kind of thread has its own allow-list. */
enum sandbox_kind {
	SB_MAIN,        /* event loop, control socket, snapshots; builds the VM again on a reboot */
	SB_VCPU,        /* KVM_RUN and the exit dispatch (device registers, activation) */
	SB_SIGNALS,     /* core/sigwatch.c */
	SB_MIGRATE,     /* an outgoing live migration */
	SB_SNAPSHOT,    /* the forked child writing a live snapshot */
	SB_BLK,         /* virtio-blk worker: io_uring */
	SB_NET,         /* virtio-net worker: the tap */
	SB_CONSOLE,     /* virtio-console worker */
	SB_RNG,         /* virtio-rng worker: getrandom */
	SB_BALLOON,     /* virtio-balloon worker: madvise, stats timer */
	SB_VSOCK,       /* virtio-vsock worker: vhost-vsock's interrupts, the event queue */
	SB_JAIL_PARENT, /* --jail: the process outside that waits for the VM */
	SB_NR_KINDS
};

/* Exit status after a forbidden system call (as if killed by SIGSYS). */
#define SANDBOX_EXIT_SECCOMP (128 + 31)

/* on; log in sanitizer builds, whose run-times make calls kvmbox's own code does not. */
enum seccomp_mode sandbox_default_mode(void);
/* "on", "log", "off" -> mode. 0 or -1. */
int sandbox_parse_seccomp(const char *s, enum seccomp_mode *mode);
/* USER[:GROUP], names looked up in the passwd and group files given (/etc/passwd, /etc/group;
 * no NSS: the static binary has none), or numeric ids. Without GROUP, the user's primary group.
 * 0, or -1 after printing one line. */
int sandbox_parse_user(const char *spec, const char *passwd, const char *group, uid_t *uid, gid_t *gid);

/* Process start, while kvmbox has one thread: check and resolve cfg->sandbox, join the cgroup,
 * empty the bounding/inheritable/ambient capability sets, compile the filters, install the
 * SIGSYS handler and, for --jail, make the namespaces (the process forks: the parent waits for
 * the VM and exits with its status, only the child returns). 0, or -1 after printing. */
int sandbox_setup(const struct vm_config *cfg);
/* Every host resource is open: enter the jail, drop ids and capabilities. Main thread, before
 * the vCPU threads start. 0, or -1 after printing. */
int sandbox_lockdown(void);
/* The calling thread installs the filter of its kind (a no-op before sandbox_setup or with
 * --seccomp off, apart from PR_SET_NO_NEW_PRIVS). A failure ends the process with one line. */
void sandbox_thread_enter(enum sandbox_kind kind);
/* Whether sandbox_setup ran with --user: the ids the control socket should belong to. */
bool sandbox_owner(uid_t *uid, gid_t *gid);

/* What `kvmbox ctl SOCK info` shows. */
struct sandbox_info {
	const char *seccomp; /* "on", "log", "off" */
	uid_t uid;
	gid_t gid;
	const char *jail;   /* NULL: none */
	const char *cgroup; /* NULL: none */
	long host_pid;      /* the pid outside the jail's PID namespace */
	bool no_new_privs;
};
void sandbox_get_info(struct sandbox_info *out);

/* ---- for tests and the documentation ------------------------------------------------------ */

const char *sandbox_kind_name(enum sandbox_kind kind);
/* Rules in kind's allow-list for this configuration (system calls plus ioctl requests and
 * other argument checks), as compiled; 0 before sandbox_setup. */
unsigned sandbox_rule_count(enum sandbox_kind kind);
/* Compile the filters for cfg without any other effect (no cgroup, no jail, no capability
 * change): what a unit test needs before sandbox_thread_enter in a forked child. 0 or -1. */
int sandbox_setup_filters_only(const struct vm_config *cfg);

#endif
