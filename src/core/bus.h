/* bus.h - range table for port I/O and MMIO dispatch.
 *
 * Ranges are kept sorted and never overlap; lookup is a binary search under a
 * read lock so vCPU threads dispatch in parallel, while (rare) register and
 * unregister calls, e.g. a PCI BAR being moved, take the write lock. */
#ifndef KVMBOX_BUS_H
#define KVMBOX_BUS_H

#include <pthread.h>
#include <stdbool.h>
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
	pthread_rwlock_t lock;
};

void bus_init(struct bus *b, enum bus_space space);
void bus_destroy(struct bus *b);
/* Claim [base, base+len) for dev. Returns 0, or -1 if len is 0, the range
 * wraps, or it overlaps a registered range. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, struct device *dev);
/* Release the range that starts at base and belongs to dev. 0 or -1. */
int bus_unregister(struct bus *b, uint64_t base, struct device *dev);
/* Deliver an access. Returns true when a device handled it; on false (no
 * device) a read's data is filled with 0xff, as on real buses. An access that
 * straddles the end of a range is not delivered. */
bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
