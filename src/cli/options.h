/* options.h - parsing of the command line (pure, unit-tested). */
#ifndef KVMBOX_OPTIONS_H
#define KVMBOX_OPTIONS_H

#include <stdbool.h>
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

/* The run options' defaults, before any option is given: 1 vCPU, 256M, a serial console. */
void vm_config_init(struct vm_config *cfg);
/* Set run option `name` (long name, no dashes) to value (NULL for a flag) in cfg: the one
 * table behind the command line and configuration files. 0, or EXIT_USAGE after printing. */
int run_option_set(struct vm_config *cfg, const char *name, const char *value);
/* How run option `name` takes a value, as getopt's has_arg: no_argument (a flag),
 * required_argument or optional_argument (--name[=VALUE]); -1 when there is none such.
 * repeatable: it may be given several times, each adding one (--disk, --net). */
int run_option_arg(const char *name, bool *repeatable);
/* Read run options from the INI file `path` into cfg (README.md, "Configuration files"): each
 * key goes through run_option_set; the values are kept in cfg. restore: `incoming` is refused.
 * 0, or EXIT_USAGE after printing one line that names FILE:LINE. */
int run_config_file(struct vm_config *cfg, const char *path, bool restore);
/* Device types the option table has room for. */
#define MAX_DEVICE_TYPES 32

/* Parse `kvmbox run` arguments (argv[0] is "run"). Returns 0 when cfg is
 * filled (free its devices with vm_config_free_devices), EXIT_USAGE after
 * printing a usage error, or -1 after printing help (the caller exits 0).
 * Range checks that need the host (memory, vCPU limit) are the caller's. */
int run_parse_args(int argc, char **argv, struct vm_config *cfg);
/* What `kvmbox restore` takes besides the run options. */
struct restore_args {
	const char *file; /* the snapshot */
	bool copy, no_verify, paused;
};
/* Parse `kvmbox restore FILE [run options] [--copy] [--no-verify] [--paused]` (argv[0] is
 * "restore"): as run_parse_args, without --incoming, with ra filled. */
int restore_parse_args(int argc, char **argv, struct vm_config *cfg, struct restore_args *ra);
/* Help texts. */
void print_main_help(void);
void print_run_help(void);
void print_restore_help(void);

#endif
