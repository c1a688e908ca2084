/* options.h - parsing of the command line (pure, unit-tested). */
#ifndef KVMBOX_OPTIONS_H
#define KVMBOX_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/config.h"

/* Exit statuses (documented in README.md). */
enum kvmbox_status {
	EXIT_GUEST_OFF = 0,   /* guest powered off (or rebooted with --no-reboot) */
	EXIT_START_FAIL = 1,  /* bad input or missing /dev/kvm: the VM could not start */
	EXIT_USAGE = 2,       /* malformed command line */
	EXIT_GUEST_CRASH = 3, /* triple fault, KVM internal error: register dump on stderr */
	EXIT_HOST_FAIL = 4,   /* a host-side failure while the guest was running */
			      /* 128 + N: stopped by signal N (SIGTERM, SIGINT, Ctrl-A x counts as SIGINT) */
};

/* Parse "512M", "2G", "1048576K", "64m", "3g"; a plain number means MiB (as
 * with QEMU's -m). Returns 0 or -1 for malformed input or overflow. */
int parse_size(const char *s, uint64_t *out);
/* Write bytes as the user would give it ("8M", "1536K", "3G", "100 bytes") into buf;
 * returns buf. */
const char *format_size(uint64_t bytes, char *buf, size_t len);
/* Parse a decimal unsigned int with no sign, spaces or trailing junk. */
int parse_uint(const char *s, unsigned *out);

/* Set run option `name` (long name, no dashes) to value (NULL for a flag) in cfg: the one
 * table behind the command line and configuration files. 0, or EXIT_USAGE after printing. */
int run_option_set(struct vm_config *cfg, const char *name, const char *value);
/* The run options that `kvmbox restore` and `run --incoming` take too (they override what the
 * snapshot or the source saved): their --help lines, and getopt entries for them (at most max,
 * each with val; getopt's longindex names the option for run_option_set). */
struct option;
void print_restore_run_options(void);
size_t restore_run_options(struct option *opts, size_t max, int val);
/* Device types the option table has room for. */
#define MAX_DEVICE_TYPES 32

/* Parse `kvmbox run` arguments (argv[0] is "run"). Returns 0 when cfg is
 * filled (free its devices with vm_config_free_devices), EXIT_USAGE after
 * printing a usage error, or -1 after printing help (the caller exits 0).
 * Range checks that need the host (memory, vCPU limit) are the caller's. */
int run_parse_args(int argc, char **argv, struct vm_config *cfg);
/* Help texts. */
void print_main_help(void);
void print_run_help(void);

#endif
