/* run.h - `kvmbox run`. */
#ifndef KVMBOX_RUN_H
#define KVMBOX_RUN_H

/* Parse, check, boot and supervise a VM until it stops; returns the process
 * exit status (see cli/options.h). */
int cmd_run(int argc, char **argv);

#endif
