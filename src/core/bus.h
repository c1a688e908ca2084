/* bus.h - range table for port I/O and MMIO dispatch.
 *
 * Ranges are kept sorted and never overlap. bus_dispatch looks the address up
 * under a read lock, copies out what it found (device, range base) and calls
 * the device after releasing the lock. So vCPU threads dispatch in parallel,
 * and a device may register or unregister ranges, on this bus or any other,
 * from inside its own io(): a PCI config write that moves a BAR runs inside
 * the config access (a port access for 0xCF8/0xCFC, an MMIO access for ECAM)
 * and (un)registers the BAR on the MMIO or port bus from there.
 *
 * The price, and the rule that makes it safe: an access looked up just before
 * its range was unregistered (on another vCPU) still reaches the device once
 * the range is gone, as an access in flight on a real bus reaches the old
 * decoder. So a device must stay valid for as long as any vCPU can dispatch,
 * and it does: devices are destroyed only after every vCPU thread has stopped
 * (vm_destroy), and bus_dispatch is called only from vCPU threads. A device
 * that is unregistered while the VM runs (a BAR that moves) must therefore
 * handle a late access as an ordinary one, and must not be freed before the
 * VM's vCPUs are gone. */
#ifndef KVMBOX_BUS_H
#define KVMBOX_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

struct bus_range {
	uint64_t base;
	uint64_t len;
	struct device *dev;
};

struct bus {
	enum bus_space space;
	struct bus_range *ranges; /* sorted by base */
	int nr;
	int cap;
	pthread_rwlock_t lock; /* writers: (un)register; readers: the lookup in dispatch */
};

/* One range a device claims: [base, base + len). */
struct bus_claim {
	uint64_t base;
	uint64_t len;
};

void bus_init(struct bus *b, enum bus_space space);
void bus_destroy(struct bus *b);
/* Claim [base, base+len) for dev. Returns 0, or -1 if len is 0, the range
 * wraps, or it overlaps a registered range. Safe from a device's io(). */
int bus_register(struct bus *b, uint64_t base, uint64_t len, struct device *dev);
/* Release the range that starts at base and belongs to dev. 0 or -1. Safe
 * from a device's io(); see above for accesses already in flight. */
int bus_unregister(struct bus *b, uint64_t base, struct device *dev);
/* Claim all n ranges for dev, or none: on a failure the ones already claimed
 * are released and one line names the device, the range and who holds it.
 * 0 or -1. */
int bus_register_all(struct bus *b, const struct bus_claim *claims, size_t n, struct device *dev);
/* Release what bus_register_all claimed (ranges not held by dev are skipped). */
void bus_unregister_all(struct bus *b, const struct bus_claim *claims, size_t n, struct device *dev);
/* Deliver an access. Returns true when a device handled it; on false (no
 * device) a read's data is filled with 0xff, as on real buses. An access that
 * straddles the end of a range is not delivered. No bus lock is held while
 * the device runs. */
bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
