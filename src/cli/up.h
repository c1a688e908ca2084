/* up.h - `kvmbox up FILE`: a whole board's VMs from one configuration file, each its own
 * `kvmbox run` process, started in dependency order and supervised in the foreground.
 *
 * The file (README.md, "Consolidation: kvmbox up"): one [vm NAME] section per VM, whose keys
 * are the run options (config_file.c, the table of options.c) plus the supervisor's own
 * (UP_KEYS below), and a [defaults] section whose keys every VM takes unless it gives its own.
 * up_config_load parses and checks it (config_file.c); up_order, up_backoff_ms and the
 * conflict checks are pure and unit-tested; up.c runs it. */
#ifndef KVMBOX_UP_H
#define KVMBOX_UP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/config.h"

#define UP_MAX_VMS          32
#define UP_NAME_MAX         32  /* bytes of a VM name, [A-Za-z0-9_.-] */
#define UP_MAX_ARGS         160 /* run arguments of one VM */
#define UP_DEFAULT_DIR      "/run/kvmbox"
#define UP_BACKOFF_MIN      1000  /* ms before the first restart */
#define UP_BACKOFF_MAX      30000 /* ms: the back-off doubles up to this */
#define UP_STABLE_MS        60000 /* a VM that ran this long starts its back-off and count afresh */
#define UP_DEFAULT_LIMIT    5     /* restarts in a row (restart-limit) */
#define UP_SHUTDOWN_TIMEOUT 30    /* s an ACPI shutdown may take before kvmbox forces it */

#define UP_SNAPSHOT_MIN_MS 100ULL                     /* snapshot-every: at least (the tick) */
#define UP_SNAPSHOT_MAX_MS (30ULL * 24 * 3600 * 1000) /* and at most 30 days */
#define UP_SNAPSHOT_SUFFIX ".snap"                    /* SNAPSHOT_DIR/NAME.snap: the last good snapshot */
#define UP_SNAPSHOT_PART   ".snap.part"               /* SNAPSHOT_DIR/NAME.snap.part: one being written */

enum up_restart { UP_RESTART_NO = 0, UP_RESTART_ON_FAILURE, UP_RESTART_ALWAYS };
enum up_restart_from { UP_FROM_BOOT = 0, UP_FROM_SNAPSHOT };

/* One VM of the file. */
struct up_vm {
	char name[UP_NAME_MAX + 1];
	unsigned line;                     /* its [vm NAME] line */
	struct vm_config cfg;              /* its run options, defaults merged (checked; for the conflicts) */
	unsigned dev_line[MAX_DEVICES];    /* the line of the key that made cfg.devs[i] */
	unsigned affinity_line;            /* the vcpu-affinity key's line, 0: none */
	const char *argv[UP_MAX_ARGS + 1]; /* `--key=value` run arguments, NULL-terminated; the
					    * strings are cfg's */
	unsigned argc;
	unsigned after[UP_MAX_VMS]; /* indexes of the VMs this one starts after */
	unsigned after_line[UP_MAX_VMS];
	unsigned nr_after;
	enum up_restart restart;
	unsigned restart_limit;
	unsigned shutdown_timeout;  /* seconds */
	const char *console_log;    /* absolute path (cfg's) */
	uint64_t snapshot_every_ms; /* snapshot-every: 0, never */
	const char *snapshot_path;  /* SNAPSHOT_DIR/NAME.snap, absolute (cfg's) */
	const char *snapshot_part;  /* SNAPSHOT_DIR/NAME.snap.part, where up's snapshots go first */
	const char *snapshot_dir;   /* absolute (cfg's) */
	enum up_restart_from restart_from;
};

struct up_config {
	const char *path;
	const char *state_dir; /* absolute (vms[0].cfg's or static) */
	char state_dir_buf[256];
	struct up_vm vms[UP_MAX_VMS];
	unsigned nr_vms;
	unsigned order[UP_MAX_VMS]; /* the VMs in start order */
};

/* Read and check FILE into uc: every problem is one line "FILE:LINE: what; the fix" and the
 * first (in line order for a key's own problem, then the checks across VMs) is the one
 * reported. 0, or EXIT_USAGE after printing. Free with up_config_free, either way. */
int up_config_load(struct up_config *uc, const char *path);
void up_config_free(struct up_config *uc);

/* Is name[0..len) a VM name: 1 to UP_NAME_MAX letters, digits, '_', '.' or '-', not starting
 * with '.' or '-' (no NUL, no '/')? The file's [vm NAME] and every name a control client sends. */
bool up_name_valid(const char *name, size_t len);

/* Start order of uc's VMs into uc->order: each after the VMs it names, otherwise in file
 * order. 0, or -1 with one line (FILE:LINE) printed for a cycle. */
int up_order(struct up_config *uc);
/* The checks across VMs: one writable disk or one tap claimed twice, dedicated host CPUs
 * (vcpu-affinity) shared. 0, or -1 after printing one line at the second claim. */
int up_check_conflicts(const struct up_config *uc);
/* Milliseconds to wait before restart number n (1, 2, ...) of a row: UP_BACKOFF_MIN doubling,
 * at most UP_BACKOFF_MAX. */
unsigned up_backoff_ms(unsigned n);

/* A duration: "0", or digits and a unit (ms, s, m, h): "500ms", "30s", "5m", "1h". 0 with
 * *ms set, or -1 (no unit, no digits, an unknown unit, an overflow). */
int up_parse_duration(const char *s, uint64_t *ms);

/* The snapshot a start of vm restores: vm->snapshot_path when restart-from = snapshot, the start
 * is a restart the restart policy makes after the VM failed (policy: not a power-off under
 * restart = always, not the start or restart command), a snapshot of this up succeeded
 * (have_snapshot) and no restore from it failed since (restore_failed). NULL: boot. */
const char *up_restore_from(const struct up_vm *vm, bool policy, bool have_snapshot, bool restore_failed);
/* The command line of vm's process into argv (at least UP_MAX_ARGS + 6 entries, NULL-terminated):
 * argv0 run ARGS... api_arg, or argv0 restore SNAPSHOT ARGS... api_arg when snapshot is given.
 * The number of arguments. */
unsigned up_command(const struct up_vm *vm, const char *argv0, const char *api_arg, const char *snapshot,
		    const char **argv);

/* `kvmbox up [--api PATH] FILE`. The exit status. */
int cmd_up(int argc, char **argv);

#endif
