/* device.h - the one interface every emulated device implements.
 *
 * A device embeds `struct device` (usually first) and registers the I/O port
 * and MMIO ranges it decodes on the VM's buses with bus_register(). The bus
 * calls ops->io for each guest access. Devices serialise their whole state
 * through save/load so snapshots and migration need no device knowledge. */
#ifndef KVMBOX_DEVICE_H
#define KVMBOX_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ser.h"

enum bus_space { BUS_PIO = 0, BUS_MMIO = 1 };

/* One guest access as delivered to a device. */
struct bus_access {
	enum bus_space space;
	uint64_t base;   /* start of the range the device registered */
	uint64_t offset; /* address - base */
	uint8_t *data;   /* len bytes, little endian; fill it on reads */
	uint32_t len;    /* 1, 2, 4 or 8 */
	bool is_write;
};

struct device;
struct blockfile;

struct device_ops {
	const char *type; /* "uart", "rtc", ... : names the section in snapshots */
	/* Guest access to a registered range. Reads must always fill data. */
	void (*io)(struct device *dev, struct bus_access *a);
	/* Back to power-on state (guest reboot keeps the object). May be NULL. */
	void (*reset)(struct device *dev);
	/* Append the device's whole state; load it back. May be NULL when the
	 * device has no state. load returns 0, or -1 for malformed input. */
	void (*save)(struct device *dev, struct ser_writer *w);
	int (*load)(struct device *dev, struct ser_reader *r);
	/* Optional: stop touching guest memory (finish in-flight I/O, park
	 * worker threads) until resume. Called on the main thread with every
	 * vCPU parked; pause and resume come in pairs. */
	void (*pause)(struct device *dev);
	void (*resume)(struct device *dev);
	/* Optional: hand the host backend over to another process (migration)
	 * / take it back. Called while paused. 0 or -1 (printed). */
	int (*release)(struct device *dev);
	int (*reacquire)(struct device *dev);
	/* Optional: the disk image behind the device (backends/blockfile.h), which a migration
	 * with disks=copy streams; NULL when it has none. The pointer lives as long as the device. */
	struct blockfile *(*disk)(struct device *dev);
	/* Optional: the part of the state a guest reset keeps (the CMOS), saved when the guest
	 * resets and loaded into the device of the same name in the rebuilt VM. */
	void (*keep_save)(struct device *dev, struct ser_writer *w);
	int (*keep_load)(struct device *dev, struct ser_reader *r);
	/* Release resources and free the device. */
	void (*destroy)(struct device *dev);
};

struct device {
	const struct device_ops *ops;
	char name[32];       /* instance name, e.g. "com1" */
	struct device *next; /* VM's device list, in creation order */
};

#endif

#ifndef KVMBOX_MACHINE_CTL
#define KVMBOX_MACHINE_CTL
/* How a device asks for a machine-level event: power off or reset. `reason`
 * is an enum vm_exit_reason (VM_POWEROFF, VM_REBOOT). */
struct machine_ctl {
	void (*request)(void *ctx, int reason);
	void *ctx;
};

/* A byte stream the device talks to: the console backend. write() is called
 * from vCPU threads; rx_space() tells the backend that the device can take
 * input again after refusing some. Either may be NULL. */
struct char_port {
	void (*write)(void *ctx, const uint8_t *buf, size_t n);
	void (*rx_space)(void *ctx);
	void *ctx;
};
#endif
