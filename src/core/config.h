/* config.h - what the user asked for: the parsed `kvmbox run` options. */
#ifndef KVMBOX_CONFIG_H
#define KVMBOX_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "keys.h"
#include "tuning.h"

enum console_kind { CONSOLE_SERIAL = 0, CONSOLE_NONE, CONSOLE_VIRTIO };

#define DEFAULT_MEMORY (256ULL << 20)
#define MIN_MEMORY     (16ULL << 20)

#define MAX_DEVICES 32

struct device_type;

/* --seccomp: the per-thread system call filters (core/sandbox.h). */
enum seccomp_mode { SECCOMP_ON = 0, SECCOMP_LOG, SECCOMP_OFF };

/* The walls around the running VM (docs/SECURITY.md); strings as given on the command line. */
struct sandbox_config {
	enum seccomp_mode seccomp;
	const char *user;   /* --user USER[:GROUP] or numeric ids, NULL: keep the ids */
	const char *jail;   /* --jail DIR, NULL: none */
	const char *cgroup; /* --cgroup PATH (cgroup v2 directory), NULL: none */
};

/* One device the user asked for: its type (core/devtype.h) and its configuration, a
 * type->config_size struct the config owns. */
struct dev_config {
	const struct device_type *type;
	void *cfg;
};

struct vm_config {
	const char *kernel; /* path, required */
	const char *initrd; /* path or NULL */
	const char *append; /* kernel command line or NULL */
	unsigned cpus;      /* >= 1 */
	uint64_t memory;    /* bytes */
	enum console_kind console;
	bool no_reboot;
	bool stats;                          /* print exit statistics on stderr at the end */
	struct dev_config devs[MAX_DEVICES]; /* in the order given */
	unsigned nr_devs;
	const char *api;               /* --api PATH: control socket */
	const char *incoming;          /* --incoming URI: wait for a migration */
	struct vm_tuning tuning;       /* CPU placement, real-time vCPUs, locked and huge-page RAM */
	struct sandbox_config sandbox; /* not saved in snapshots: each run gives its own */
	struct vm_keys keys;           /* nor these: --migration-key, --snapshot-key (core/keys.h) */
	struct config_string *strings; /* the values read from a --config file, which the fields
					* above may point into (vm_config_free_devices frees them) */
};

/* A value kept for the lifetime of a vm_config. */
struct config_string {
	struct config_string *next;
	char s[];
};

/* A copy of s that c owns, or NULL when out of memory. */
const char *vm_config_strdup(struct vm_config *c, const char *s);
/* Remove every instance of t from c (the command line's --disk replacing a file's). */
void vm_config_remove(struct vm_config *c, const struct device_type *t);

/* Add an instance of type t configured from arg (NULL for a flag, which may be given again:
 * a no-op). 0, or -1 after printing one line (too many, or a bad value). */
int vm_config_add(struct vm_config *c, const struct device_type *t, const char *arg);
/* Instances of t in c. */
unsigned vm_config_count(const struct vm_config *c, const struct device_type *t);
/* Check a saved configuration (a snapshot's, a migration source's: hostile bytes, already
 * parsed) against local, the one this command line gives, which alone names the host's
 * resources: kernel, initrd, disk images, taps, console, tuning, sandbox. What the guest sees
 * must be the same: RAM size, vCPU count, a virtio console or not, the devices in the same
 * order with the same guest-visible settings (device_type.match). who names the saved side
 * ("the source VM"). 0, or -1 with one line in msg: what differs and the option to give. */
int vm_config_match(const struct vm_config *saved, const struct vm_config *local, const char *who, char *msg,
		    size_t len);
/* Free the device configurations and the kept strings (the rest of c is the caller's). */
void vm_config_free_devices(struct vm_config *c);

#endif
