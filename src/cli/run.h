/* run.h - `kvmbox run` and `kvmbox restore`: parse and check, then run the machine
 * (core/machine.h) and serve its control socket. */
#ifndef KVMBOX_RUN_H
#define KVMBOX_RUN_H

#include <stdbool.h>

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
