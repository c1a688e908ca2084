/* tuning.h - how a VM uses its host: CPU placement, real-time vCPUs, locked and huge-page RAM.
 *
 * The run options --vcpu-affinity, --io-affinity, --rt-priority, --mlock, --hugepages and
 * --prealloc. They are part of the VM's configuration (struct vm_config) and saved in
 * snapshots and migration streams, but a restored or migrated VM takes them from the command
 * line of `kvmbox restore` or `kvmbox run --incoming` only: they name host resources.
 *
 * Order of use:
 *   vm_tuning_set       parse one option (cli); syntax errors only
 *   vm_tuning_check     what the host allows (CPUs, SCHED_FIFO, RLIMIT_MEMLOCK, huge pages),
 *                       before /dev/kvm is opened; one line per problem
 *   vm_tuning_apply_process   once, on the main thread before any other thread exists: the
 *                       I/O affinity (inherited by every thread made later), the thread stack
 *                       size, mlockall
 *   vm_tuning_apply_vcpu     on each vCPU thread before its first KVM_RUN
 * Guest RAM's backing (huge pages, pre-allocation) is core/memory.c's, from vm_tuning_backing.
 */
#ifndef KVMBOX_TUNING_H
#define KVMBOX_TUNING_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "ser.h"

/* Which options a command line gave (vm_tuning.given). */
enum {
	TUNE_VCPU_AFFINITY = 1u << 0,
	TUNE_IO_AFFINITY = 1u << 1,
	TUNE_RT_PRIORITY = 1u << 2,
	TUNE_MLOCK = 1u << 3,
	TUNE_HUGEPAGES = 1u << 4,
	TUNE_PREALLOC = 1u << 5,
};

#define TUNE_AFFINITY_MAX 256 /* bytes of an affinity option's value */
#define TUNE_PATH_MAX     256 /* bytes of a hugetlbfs directory */

/* The values are stored as given (validated), so the struct copies by value and serialises
 * as it is; an empty string means "not set". */
struct vm_tuning {
	unsigned given;                        /* TUNE_* bits set by this command line */
	char vcpu_affinity[TUNE_AFFINITY_MAX]; /* "0=2,1=3,4": vCPU=CPU list, ... */
	char io_affinity[TUNE_AFFINITY_MAX];   /* host CPU list, "0-1,3" */
	unsigned rt_priority;                  /* SCHED_FIFO priority of vCPU threads, 0: off */
	bool mlock;                            /* mlockall: guest RAM and kvmbox's own memory */
	bool hugepages;                        /* guest RAM in huge pages */
	char hugepage_dir[TUNE_PATH_MAX];      /* a hugetlbfs directory, "" for MAP_HUGETLB */
	bool prealloc;                         /* populate all guest RAM before the guest runs */
};

struct vm_config;

/* Set option name to value (NULL: given without a value) and mark it given. 0, or -1 after
 * printing one line naming the option and what to give instead. */
int vm_tuning_set(struct vm_tuning *t, const char *name, const char *value);

/* Parse a host CPU list ("3", "0-2,5", ...) into set. 0, or -1 when malformed or a CPU is
 * beyond CPU_SETSIZE. */
int cpulist_parse(const char *s, cpu_set_t *set);
/* The CPUs vCPU id is pinned to by a --vcpu-affinity value: 1 with *set filled, 0 when the
 * value does not name that vCPU, -1 when it is malformed. Syntax: entries "VCPU=CPU", a
 * following entry without '=' adds a CPU or range to the vCPU before it ("0=2,4,1=3-5"). */
int vcpu_affinity_get(const char *spec, unsigned id, cpu_set_t *set);
/* The highest vCPU a --vcpu-affinity value names, or -1 when malformed or empty. */
int vcpu_affinity_max_vcpu(const char *spec);
/* Write set as a CPU list ("0-2,5") into buf. */
const char *cpulist_format(const cpu_set_t *set, char *buf, size_t len);

/* Check cfg's tuning against this host and the rest of cfg (vCPU count, RAM size). 0, or -1
 * after printing one line. */
int vm_tuning_check(const struct vm_config *cfg);
/* Main thread, before other threads: record the CPUs kvmbox may use, move this thread (the
 * event loop, the control socket and every thread created later but the vCPUs) to the I/O
 * CPUs, keep it SCHED_OTHER, size thread stacks, lock memory. 0 or -1 (printed). */
int vm_tuning_apply_process(const struct vm_config *cfg);
/* vCPU thread id, before its first KVM_RUN: its CPUs (its --vcpu-affinity entry, else the
 * CPUs kvmbox started with) and SCHED_FIFO. 0 or -1 (printed). */
int vm_tuning_apply_vcpu(const struct vm_config *cfg, unsigned id);

/* The size of a huge page for cfg's --hugepages (the hugetlbfs mount's, or 2 MiB), or 0 when
 * the guest does not use huge pages or the directory is not hugetlbfs (printed). */
uint64_t vm_tuning_huge_page_size(const struct vm_tuning *t);

/* Snapshot and migration configuration record. load validates (the bytes are hostile). */
void vm_tuning_save(const struct vm_tuning *t, struct ser_writer *w);
int vm_tuning_load(struct vm_tuning *t, struct ser_reader *r);

#endif
