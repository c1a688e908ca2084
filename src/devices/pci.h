/* pci.h - PCI core: the host bridge, its functions, BARs, capabilities, INTx.
 *
 * The core knows nothing of how the guest reaches config space: front-ends
 * decode that and call pci_host_config_access() with (bus, device, function,
 * register). Two exist: pci_cf8.h (configuration mechanism #1, ports
 * 0xCF8/0xCFC, x86) and pci_ecam.h (PCIe ECAM over MMIO). Nor does it know
 * where anything is: the architecture gives the BAR windows, the buses they
 * decode on and the INTx lines in a struct pci_host_config.
 *
 * One root bus, number 0. Device 0 is the bridge itself (00:00.0, vendor
 * 0x1b36 device 0x0008, the generic "PCIe host bridge" ID that has no
 * chipset quirks in Linux; class 0x060000). Other functions are single-
 * function devices on slots 1..31; absent devices read as all ones.
 *
 * How a device (e.g. the virtio-pci transport) uses it:
 *
 *	struct vdev { struct device dev; struct pci_dev pci; ... };
 *
 *	pci_dev_init(&v->pci, &v->dev, &vdev_pci_ops, 0x1af4, 0x1041, 0x020000, 1);
 *	pci_config_write(&v->pci, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1af4);
 *	pci_set_bar(&v->pci, 0, PCI_BAR_MEM64, 0x4000, true);
 *	pci_set_intx_pin(&v->pci, 1);                        // INTA
 *	off = pci_add_capability(&v->pci, PCI_CAP_ID_VNDR, 16); // then fill it
 *	slot = pci_add_device(host, &v->pci);                 // BARs get addresses
 *	...
 *	pci_set_irq(&v->pci, 1);                              // INTx level
 *
 * Config space: 256 bytes per function with a write mask (bits the guest may
 * change) and a write-1-to-clear mask (status error bits). Everything else is
 * read-only to the guest. PCIe's extended space (256..4095, reachable through
 * ECAM only) holds no extended capabilities: it reads as 0. BAR sizing works
 * as on hardware: writing all ones and reading back gives the size mask.
 * Whenever the guest changes COMMAND (IO/MEM enable) or a BAR, the BAR is
 * (un)mapped, from inside the config access: memory BARs are registered on
 * the config's mmio bus at their address, I/O BARs on its io_bus at
 * io_bus_base + (address - io.base), and only while they lie inside the I/O
 * window. A BAR that would overlap another range simply does not decode, as
 * on a real bus conflict. Accesses reach ops->bar_io with a->base = the BAR
 * address (in PCI terms) and a->offset relative to it.
 *
 * pci_add_device() assigns initial BAR addresses (natural alignment) from
 * the mem32 window (64-bit BARs that do not fit go to mem64) and from the I/O
 * window, so the guest finds them programmed; COMMAND starts at 0 (decoding
 * off) as after a PCI reset; the guest's driver enables decoding.
 *
 * INTx: pin p (1 = INTA) of the device on slot s raises GSI
 * intx_gsi_base + swizzle(s, p) through intx; the swizzle is the arch's, by
 * default the bridge swizzle (s + p - 1) % intx_lines. Whatever it is, the
 * firmware tables (ACPI _PRT, device tree interrupt-map) must say the same.
 * The interrupt line register (0x3C) is preset to the GSI. Lines shared by
 * several devices are wire-ORed by the host.
 *
 * Locking: one host mutex protects all config spaces; it is a leaf lock.
 * Callbacks (bar_io, config_read, config_write, bar_mapped) are called
 * without it, so they may use the pci_config_* and pci_set_irq functions.
 * Set-up functions (pci_dev_init, pci_set_bar, pci_set_intx_pin) must be
 * called before pci_add_device. */
#ifndef KVMBOX_DEVICES_PCI_H
#define KVMBOX_DEVICES_PCI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

#define PCI_SLOTS           32
#define PCI_NUM_BARS        6
#define PCI_CONFIG_SIZE     256  /* conventional config space */
#define PCI_EXT_CONFIG_SIZE 4096 /* PCIe: conventional + extended */
#define PCI_INTX_MAX_LINES  32

/* Type 0 header offsets. */
#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define PCI_STATUS              0x06
#define PCI_REVISION_ID         0x08
#define PCI_CLASS_PROG          0x09
#define PCI_CACHE_LINE_SIZE     0x0c
#define PCI_LATENCY_TIMER       0x0d
#define PCI_HEADER_TYPE         0x0e
#define PCI_BASE_ADDRESS_0      0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID        0x2e
#define PCI_ROM_ADDRESS         0x30
#define PCI_CAPABILITY_LIST     0x34
#define PCI_INTERRUPT_LINE      0x3c
#define PCI_INTERRUPT_PIN       0x3d

#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_PARITY       0x0040
#define PCI_COMMAND_SERR         0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT     0x0008
#define PCI_STATUS_CAP_LIST      0x0010

#define PCI_CAP_ID_PM   0x01
#define PCI_CAP_ID_MSI  0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_EXP  0x10
#define PCI_CAP_ID_MSIX 0x11

/* The MSI-X capability's Message Control bits, and its table (PCI 3.0, 6.8.2). */
#define PCI_MSIX_CTRL_ENABLE  0x8000
#define PCI_MSIX_CTRL_MASKALL 0x4000
#define PCI_MSIX_CTRL_QSIZE   0x07ff /* table size - 1 */
#define PCI_MSIX_ENTRY_SIZE   16
#define PCI_MSIX_MAX_VECTORS  2048

/* The MSI capability's Message Control bits (PCI 3.0, 6.8.1): Enable, Multiple Message Capable
 * (log2 of the vectors the function has), Multiple Message Enable (log2 of those the guest
 * enabled), 64-bit address, per-vector masking. */
#define PCI_MSI_FLAGS_ENABLE  0x0001
#define PCI_MSI_FLAGS_QMASK   0x000e
#define PCI_MSI_FLAGS_QSIZE   0x0070
#define PCI_MSI_FLAGS_64BIT   0x0080
#define PCI_MSI_FLAGS_MASKBIT 0x0100
#define PCI_MSI_MAX_VECTORS   32

/* First config offset handed out to capabilities. */
#define PCI_CAP_START 0x40

enum pci_bar_type {
	PCI_BAR_UNUSED = 0,
	PCI_BAR_IO,       /* I/O space, 4..256 bytes */
	PCI_BAR_MEM32,    /* 32-bit memory, >= 16 bytes */
	PCI_BAR_MEM64,    /* 64-bit memory; uses this BAR and the next */
	PCI_BAR_MEM64_HI, /* internal: upper half of the previous BAR */
};

struct pci_dev;
struct pci_host;

/* A range of PCI addresses: [base, base + size). */
struct pci_window {
	uint64_t base;
	uint64_t size;
};

/* What the architecture decides about its PCI host. */
struct pci_host_config {
	struct bus *mmio;        /* memory BARs decode here (CPU address = PCI address) */
	struct pci_window mem32; /* memory BARs, below 4 GiB */
	struct pci_window mem64; /* 64-bit BARs that do not fit in mem32; size 0: none */
	struct bus *io_bus;      /* I/O BARs decode here (x86: the port bus); NULL: never */
	struct pci_window io;    /* PCI I/O addresses of I/O BARs; a BAR at 0 is off, so start above */
	uint64_t io_bus_base;    /* address of PCI I/O address io.base on io_bus */
	struct irq_line intx;    /* raises the INTx lines (its gsi is ignored) */
	uint32_t intx_gsi_base;  /* GSI of line 0 */
	uint32_t intx_lines;     /* 1..PCI_INTX_MAX_LINES */
	/* Optional: the line (0..lines-1) of pin (1..4) on slot (1..31); NULL is
	 * the bridge swizzle (slot + pin - 1) % lines. */
	uint32_t (*intx_swizzle)(uint32_t slot, uint32_t pin, uint32_t lines);
};

/* A config-space address as a front-end decoded it. */
struct pci_cfg_addr {
	uint8_t bus;
	uint8_t dev;  /* 0..31 */
	uint8_t fn;   /* 0..7 */
	uint16_t reg; /* 0..PCI_EXT_CONFIG_SIZE-1 */
};

struct pci_dev_ops {
	/* Guest access to BAR `bar` (required if the device has BARs). Reads
	 * must fill a->data; odd sizes must be handled (fill with 0xff). May
	 * come once more just after the BAR stopped decoding (core/bus.h). */
	void (*bar_io)(struct pci_dev *pdev, int bar, struct bus_access *a);
	/* Optional: the guest wrote config bytes [off, off+len); the write
	 * masks were already applied. */
	void (*config_write)(struct pci_dev *pdev, uint32_t off, uint32_t len);
	/* Optional: adjust the bytes of a guest config read of [off, off+len);
	 * data holds the stored values on entry. */
	void (*config_read)(struct pci_dev *pdev, uint32_t off, uint8_t *data, uint32_t len);
	/* Optional: BAR `bar` now decodes at addr (mapped) or stopped decoding
	 * (e.g. to move KVM ioeventfds). Not called from bar_io context. */
	void (*bar_mapped)(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped);
};

/* Internal: the bus-facing stand-in for one BAR. */
struct pci_bar_shim {
	struct device dev;
	struct pci_dev *pdev;
	int bar;
	uint64_t to_pci; /* added to the bus address of an access: its PCI address (I/O BARs) */
};

struct pci_bar {
	enum pci_bar_type type;
	bool prefetch;
	uint64_t size;
	/* Owned by the host: where the BAR currently decodes (PCI address). */
	bool mapped;
	uint64_t mapped_addr;
	struct pci_bar_shim shim;
};

/* One PCI function. Embed it in the device; fields are private to pci.c
 * except owner (read-only) — use the functions below. */
struct pci_dev {
	struct device *owner;
	const struct pci_dev_ops *ops;
	uint8_t config[PCI_CONFIG_SIZE];
	uint8_t wmask[PCI_CONFIG_SIZE];
	uint8_t w1cmask[PCI_CONFIG_SIZE];
	uint8_t reset_config[PCI_CONFIG_SIZE]; /* config as assigned at add time */
	struct pci_bar bars[PCI_NUM_BARS];
	unsigned int next_cap;
	struct pci_host *host;
	int slot;
	atomic_int intx_level;    /* as set by the device */
	atomic_int intx_disabled; /* COMMAND.INTX_DISABLE */
	bool intx_asserted;       /* counted on the GSI (host irq lock) */
};

/* Create the host bridge as cfg says (cfg is copied). It claims no bus range
 * itself: add a config front-end (pci_cf8_create, pci_ecam_create). NULL
 * with an error logged on failure (a config that makes no sense, memory). */
struct device *pci_host_create(const char *name, const struct pci_host_config *cfg);

/* The host behind a device created by pci_host_create; NULL for any other. */
struct pci_host *pci_host_of(struct device *dev);

/* Whether the host has a PCI I/O window for I/O BARs (x86's ports; arm64's machine has none). */
bool pci_host_has_io(struct device *host);

/* A guest config access decoded by a front-end: read or write len (1, 2 or
 * 4) bytes at at.reg, all within one dword. Anything else, and absent
 * functions (other buses, functions 1..7, empty slots), reads as all ones
 * and ignores writes; a present function's extended space reads 0. Called
 * on vCPU threads with no bus lock held: a write may remap BARs. */
void pci_host_config_access(struct pci_host *h, struct pci_cfg_addr at, uint8_t *data, uint32_t len,
			    bool is_write);

/* Initialise a function: ids, class (24 bits: class/subclass/prog-if),
 * standard write masks. owner is the device embedding pdev. */
void pci_dev_init(struct pci_dev *pdev, struct device *owner, const struct pci_dev_ops *ops, uint16_t vendor,
		  uint16_t device, uint32_t class_code, uint8_t revision);

/* Declare BAR `bar`: size a power of two (I/O 4..256, memory >= 16; 4 KiB
 * or more recommended for memory). A 64-bit BAR also takes bar+1. Returns 0
 * or -1 (bad index, size or type, or slot taken). */
int pci_set_bar(struct pci_dev *pdev, int bar, enum pci_bar_type type, uint64_t size, bool prefetch);

/* Interrupt pin: 0 none, 1..4 = INTA..INTD. */
void pci_set_intx_pin(struct pci_dev *pdev, int pin);

/* Reserve len bytes (>= 2, including the id/next header) for a capability
 * with the given id, link it into the list and return its config offset,
 * or -1 when config space is full. The body reads as 0 and is read-only
 * until set with pci_config_write / pci_config_set_wmask. */
int pci_add_capability(struct pci_dev *pdev, uint8_t cap_id, uint8_t len);

/* Plug pdev into the next free slot (1..31) of the host created by
 * pci_host_create, assign its BARs and interrupt line. Returns the slot or
 * -1 with an error logged (no slot, BAR space exhausted). */
int pci_add_device(struct device *host, struct pci_dev *pdev);

/* Unplug pdev: unmap its BARs, drop its INTx. A no-op when not plugged in
 * (also after the host was destroyed), so device destroy order is free. */
void pci_remove_device(struct pci_dev *pdev);

/* Set the device's INTx level (1 asserted). Safe from any thread. */
void pci_set_irq(struct pci_dev *pdev, int level);

/* GSI of pin (1..4) on slot (1..31) of host; what the guest's routing table
 * must say. 0 for an invalid pin or slot. */
uint32_t pci_intx_gsi(struct device *host, int slot, int pin);

/* Device-side config access: read len (1, 2, 4) bytes at off; write them
 * raw (no masks, no remapping: not for COMMAND or BARs); set the mask of
 * guest-writable bits. Out-of-range accesses read 0 / are ignored. */
uint32_t pci_config_read(struct pci_dev *pdev, uint32_t off, uint32_t len);
void pci_config_write(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t val);
void pci_config_set_wmask(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t mask);
/* Apply a config space saved by a snapshot or a migration as a guest's writes would: only the
 * guest-writable bits are taken, then the BARs are mapped where the result says (and the
 * device's bar_mapped hook called) and INTx follows COMMAND. Takes the host's locks: call it
 * without any lock of the device's that its hooks take. */
void pci_dev_load_config(struct pci_dev *pdev, const uint8_t cfg[PCI_CONFIG_SIZE]);

#endif
