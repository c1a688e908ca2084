/* machine.h - the owner of a VM's life.
 *
 * One machine per kvmbox process. It builds the VM (fresh from a kernel, from a snapshot, or
 * from an incoming migration), runs it until it stops for good (a guest reboot builds it
 * again, keeping what a reset keeps: the CMOS), and carries out what is asked of a running VM
 * (pause, snapshot, hibernate, migrate, shutdown). The CLI only parses and calls these; the
 * control socket's commands (cli/control.c) call them too.
 *
 * Start-up, in this order (machine_run):
 *   RAM -> kernel, initrd, firmware tables (fresh boot) -> /dev/kvm, VM, irqchip -> vCPUs
 *   -> [incoming: guest RAM from the stream] -> platform devices -> user devices
 *   -> [restore/incoming: state] -> console -> vCPU threads -> event loop
 * Threads: the main thread runs the event loop (console, control socket, signals, VM stop);
 * machine_pause/resume, machine_stop and machine_vm_* may be called from any thread.
 */
#ifndef KVMBOX_MACHINE_H
#define KVMBOX_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "snapshot.h"
#include "vm.h"

struct machine;
struct loop;

/* How the process ends when machine_run returns (README, "Exit status"). */
enum machine_status {
	MACHINE_EXIT_OFF = 0,        /* the guest powered off (or rebooted with --no-reboot) */
	MACHINE_EXIT_START_FAIL = 1, /* the VM could not start */
	MACHINE_EXIT_CRASH = 3,      /* the guest crashed */
	MACHINE_EXIT_HOST_FAIL = 4,  /* a host-side failure while running */
				     /* 128 + N: stopped by signal N */
};

enum machine_state { MACHINE_RUNNING, MACHINE_PAUSED, MACHINE_RESTARTING };

/* Set up signals, the event loop and the console for cfg (which must outlive the machine).
 * NULL with an error printed. */
struct machine *machine_create(const struct vm_config *cfg);
/* The first boot resumes this snapshot (taken over: closed by the machine) instead of
 * loading the kernel; with start_paused it stays paused until resumed. */
void machine_set_restore(struct machine *m, struct snapshot *s, bool copy, bool start_paused);
/* The first boot receives the incoming migration in (taken over) instead. */
struct migrate_in;
void machine_set_incoming(struct machine *m, struct migrate_in *in);
/* Tell systemd through notify_fd (core/notify.h; taken over, -1: none) READY=1 once the first
 * boot's vCPUs run, STOPPING=1 when the VM stops for good. */
void machine_set_notify(struct machine *m, int notify_fd);
/* Boot and supervise until the VM is done; the process exit status (machine_status, or
 * 128 + signal). */
int machine_run(struct machine *m);
void machine_destroy(struct machine *m);

/* The main thread's event loop (the control socket serves on it). */
struct loop *machine_loop(struct machine *m);
const struct vm_config *machine_config(const struct machine *m);

/* ---- a running machine (main thread unless said otherwise) -------------------------------- */

enum machine_state machine_state(struct machine *m);
/* The current VM, NULL while it restarts. Only valid until control returns to the loop. */
struct vm *machine_vm(struct machine *m);
/* Pause and resume on the user's behalf (the control socket): idempotent. -1 while the VM
 * restarts. */
int machine_user_pause(struct machine *m);
int machine_user_resume(struct machine *m);
/* Snapshot to path, the VM running on (or, hibernate, stopping with status 0 once written).
 * -1 with the reason in err. */
int machine_snapshot(struct machine *m, const char *path, bool hibernate, struct snap_result *res, char *err,
		     size_t errlen);
/* Press the power button and stop the VM anyway after timeout_s. -1 with the reason in err. */
int machine_shutdown(struct machine *m, int timeout_s, char *err, size_t errlen);

/* Outgoing live migration (core/migrate.c), on a thread of its own. */
struct migration_result {
	bool ok;
	unsigned rounds;
	uint64_t bytes, pages;
	uint64_t disk_bytes; /* disks=copy: data of the disk blocks sent (zero blocks not counted) */
	double total_ms, downtime_ms;
	char error[768]; /* when !ok: the one-line reason */
};
typedef void (*migration_done_fn)(void *ctx, const struct migration_result *r);
/* Why machine_migrate refused (the control socket's error classes). */
enum machine_refusal { MACHINE_BAD_STATE = -1, MACHINE_BAD_ARGUMENT = -2, MACHINE_FAILED = -3 };
/* Start migrating to uri (copy_disks: disks=copy, the disk images go too); done is called once, from the migration thread, when it finished
 * (the VM then stops and the process exits 0) or failed (the VM runs on). A negative
 * machine_refusal with the reason in err when it cannot start. */
int machine_migrate(struct machine *m, const char *uri, bool copy_disks, migration_done_fn done, void *ctx,
		    char *err, size_t errlen);
bool machine_migrating(struct machine *m);

#endif
