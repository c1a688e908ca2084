/* run.h - `kvmbox run` and `kvmbox restore`: build a VM, supervise it until
 * it stops, and serve its control socket. */
#ifndef KVMBOX_RUN_H
#define KVMBOX_RUN_H

#include <stdbool.h>

#include "../core/config.h"
#include "../core/snapshot.h"

struct vm;
struct loop;
struct console;
struct api_server;
struct virtio_dev;
struct migration;
struct sigwatch;

/* Everything the main thread keeps while a VM runs (across guest reboots). */
struct run_state {
	struct vm *vm;              /* the current VM (NULL between boots) */
	const struct vm_config *cfg;
	struct loop *loop;
	struct console *console;
	struct api_server *api;
	struct virtio_dev *balloon; /* current VM's balloon, if any */
	struct sigwatch *sig;       /* termination signals */
	int last_signal;            /* what stopped the VM, for VM_SIGNAL */
	bool user_paused;           /* paused by the control socket */
	int shutdown_tfd;           /* graceful shutdown deadline (timerfd) */
	bool hibernated;            /* stopped after a hibernate: exit 0 */
	bool migrated;              /* stopped after a migration: exit 0 */
	struct snapshot *restore;   /* first boot resumes this snapshot */
	bool restore_copy;          /* read RAM instead of mapping the file */
	int incoming_fd;            /* migration stream for the first boot */
	struct migration *mig;      /* outgoing migration in progress */
	_Atomic bool migrating;
};

/* Parse, check, boot and supervise a VM until it stops; returns the process
 * exit status (see cli/options.h). */
int cmd_run(int argc, char **argv);
/* `kvmbox restore FILE [--api PATH] [--copy] [--no-verify]`. */
int cmd_restore(int argc, char **argv);

/* Control socket commands (control.c), called on the main thread. */
struct api_req;
struct json_object;
void control_handle(void *ctx, struct api_req *req, const char *command, struct json_object *args);

#endif
