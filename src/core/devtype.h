/* devtype.h - the device types a user can ask for, in one table.
 *
 * Each device file defines one `const struct device_type` and src/devices/table.c lists it:
 * its `run` option (which is also its configuration-file key), how the option's value is
 * parsed and checked, how its configuration is saved in snapshots and migration streams, and
 * how an instance is created in a VM. Adding a device is that file plus one table entry;
 * nothing else in kvmbox names a device type. The platform devices an architecture always
 * has (UART, RTC, interrupt and PCI hosts) are created by the architecture, not from here. */
#ifndef KVMBOX_DEVTYPE_H
#define KVMBOX_DEVTYPE_H

#include <stdbool.h>
#include <stddef.h>

#include "ser.h"

struct vm;

struct device_type {
	const char *name;   /* "virtio-blk": names the type in snapshots and messages */
	const char *option; /* the run option and config key, "disk" */
	char short_opt;     /* 'd', or 0 */
	const char *arg;    /* the value's syntax for --help, "PATH[,ro]"; NULL: a flag without one */
	const char *help;   /* one line for --help */
	unsigned max;       /* instances a VM may have */
	size_t config_size; /* bytes of the type's configuration struct (0: none) */
	/* Parse the option's value into cfg (zeroed; flags get no call). 0, or -1 after printing
	 * one line that names the option. */
	int (*parse)(void *cfg, const char *arg);
	/* Optional: check what cfg names on this host (paths, their kind) before /dev/kvm is
	 * opened. 0 or -1 (printed). */
	int (*check)(const void *cfg);
	/* The configuration in snapshots and migration streams; load validates as it reads
	 * (the bytes are hostile) and returns 0 or -1. Both may be NULL without a config. */
	void (*save)(const void *cfg, struct ser_writer *w);
	int (*load)(void *cfg, struct ser_reader *r);
	/* Optional: compare what the guest sees of a saved configuration (a snapshot's, a
	 * migration source's) with the local one of the same type, instance `index` of it. The host
	 * resources (paths, tap names) are the local one's and never compared. 0, or -1 with one
	 * line in msg: what differs, as "<who> ...; give ...". Without it, any two match. */
	int (*match)(const void *saved, const void *local, unsigned index, const char *who, char *msg,
		     size_t len);
	/* Optional: the disk image an instance's configuration names (the host's path), for an
	 * incoming migration that copies disks (core/migrate.c). */
	const char *(*disk_path)(const void *cfg);
	/* Non-NULL: why an instance's state cannot be saved ("its state is in the host's
	 * hardware"); snapshots, hibernation and migrations of a VM with one are refused with it
	 * (vm_pinned) and the VM runs on. */
	const char *pinned;
	/* Optional: free what parse or load allocated inside cfg. */
	void (*free)(void *cfg);
	/* Create instance `index` (0, 1, ... within the type) in vm and add it to the VM's devices.
	 * Returns the device model (what vm_find_model gives back), or NULL (printed). */
	void *(*create)(struct vm *vm, const void *cfg, unsigned index);
};

/* Every type, in the order instances are created (so PCI slots, hence guest names like vda,
 * vdb, eth0, follow it). */
extern const struct device_type *const device_types[];
extern const unsigned nr_device_types;

/* The type called name, or NULL. */
const struct device_type *device_type_by_name(const char *name);

#endif
