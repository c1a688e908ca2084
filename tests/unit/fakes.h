/* fakes.h - small stand-ins shared by the unit tests: fake guest RAM and
 * recorders for the interrupt line and the machine control a device is given
 * at creation. The little-endian helpers are core/util.h's, included here.
 *
 * Linked into every unit test (see the Makefile); failures are reported
 * with cmocka assertions, so call these only from inside a test. */
#ifndef KVMBOX_TESTS_FAKES_H
#define KVMBOX_TESTS_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/bus.h"
#include "core/device.h"
#include "core/irq.h"
#include "core/memory.h"
#include "core/util.h"

/* ---- fake guest RAM ---- */

/* Guest RAM for a test. buf is the calloc'ed backing when the regions are
 * laid out back to back in it (fake_ram_init), NULL for a real anonymous
 * mapping (fake_ram_map). */
struct fake_ram {
	uint8_t *buf;
	struct guest_mem mem;
};

/* Zeroed RAM with the given regions (gpa/size; host ignored) back to back in one buffer. */
void fake_ram_init(struct fake_ram *r, const struct mem_region *layout, int nr);
/* Zeroed RAM of `size` bytes at gpa 0. */
void fake_ram_init_flat(struct fake_ram *r, uint64_t size);
/* RAM from guest_mem_alloc (an anonymous mapping, so madvise/mincore work). */
void fake_ram_map(struct fake_ram *r, const struct mem_region *layout, int nr);
/* Release what fake_ram_init/_flat/_map took; r may be reused afterwards. */
void fake_ram_free(struct fake_ram *r);
/* Host pointer for [gpa, gpa+len) of m; fails the test if that is not RAM. */
uint8_t *fake_host(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* ---- interrupt line recorder ---- */

#define FAKE_IRQ_HISTORY 64

/* What a device drove on its line. Every call must be for `gsi`; with
 * edges_only, every call must also change the level (set it false around a
 * restore, which re-drives the current level). */
struct fake_irq {
	uint32_t gsi;
	bool edges_only;
	int level;                     /* last level driven, 0 before any */
	int nlevels;                   /* calls so far */
	int history[FAKE_IRQ_HISTORY]; /* the first FAKE_IRQ_HISTORY levels, in order */
};

/* Set up f (zeroed, then gsi/edges_only) and return the line that records into it. */
struct irq_line fake_irq_line(struct fake_irq *f, uint32_t gsi, bool edges_only);

/* ---- machine control recorder ---- */

#define FAKE_CTL_MAX 8

/* Requests (VM_POWEROFF, VM_REBOOT, ...) in order; the first FAKE_CTL_MAX are kept. */
struct fake_ctl {
	int requests[FAKE_CTL_MAX];
	int nreq;
};

/* The machine_ctl that records into f (f is not cleared). */
struct machine_ctl fake_machine_ctl(struct fake_ctl *f);

/* ---- a device on a bus of its own ---- */

/* A device test's state starts with this: the bus the device sits on (port
 * I/O or MMIO) and the device. */
struct bus_fixture {
	struct bus bus;
	struct device *dev;
};

/* A cmocka setup's start: `size` zeroed bytes (a struct that starts with a
 * struct bus_fixture) into *state, its bus initialised for `space`; the test
 * then creates its device on the bus. Returns *state. */
void *bus_fixture_new(void **state, size_t size, enum bus_space space);
/* The cmocka teardown of that state: destroy the device and the bus, free the state. */
int bus_fixture_free(void **state);
/* The x86 PCI host's windows and INTx lines (arch/x86/layout.h) on the given buses, its INTx
 * lines driven through intx: what the PCI device tests build their host from. */
struct pci_host_config;
void fake_x86_pci_host(struct pci_host_config *cfg, struct bus *mmio, struct bus *pio, struct irq_line intx);
/* A guest access of len (1, 2 or 4) bytes at addr on the fixture's bus, little-endian; it must
 * reach a device. */
uint32_t bus_fixture_read(struct bus_fixture *fx, uint64_t addr, unsigned len);
void bus_fixture_write(struct bus_fixture *fx, uint64_t addr, unsigned len, uint32_t v);
/* Destroy dev, check that it let go of all it claimed on bus (the only device
 * there), then destroy the bus. */
void device_and_bus_destroy(struct device *dev, struct bus *bus);

/* ---- what the code under test prints ---- */

/* kvmbox's messages (log_error, log_warn) go to stderr. A test that must know
 * which message it got (which check refused an input) captures them. Call
 * nothing that can fail a cmocka assertion between begin and end: a failure
 * would leave stderr redirected. Single-threaded use only. */
struct stderr_capture {
	int saved;       /* the real stderr, while capturing */
	FILE *file;      /* where stderr points meanwhile */
	char text[4096]; /* what end() returns */
};

void stderr_capture_begin(struct stderr_capture *c);
/* Restore stderr and return what was printed since begin (NUL terminated,
 * truncated to the buffer). It is also copied to the real stderr, so it
 * still shows in the test log. */
const char *stderr_capture_end(struct stderr_capture *c);

#endif
