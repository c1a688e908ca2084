/* vm.h - one virtual machine: KVM handles, RAM, buses, devices, vCPUs.
 *
 * Life cycle, in this order (see cli/run.c):
 *   vm_init -> vm_alloc_ram -> (kernel) -> vm_open_kvm -> arch set-up (irqchip, devices, kernel) -> vm_start_vcpus
 *   -> vm_wait (main thread event loop) -> vm_destroy.
 * All state hangs off struct vm: there are no globals. */
#ifndef KVMBOX_VM_H
#define KVMBOX_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "device.h"
#include "memory.h"

struct vcpu;
struct loop;

/* Where guest RAM starts from (restore): NULL means zeroed memory. */
struct ram_file {
	int fd;
	uint64_t off;
	bool copy;
};

/* Why the VM stopped. Ordered by precedence: the first non-RUNNING reason
 * set wins. */
enum vm_exit_reason {
	VM_RUNNING = 0,
	VM_POWEROFF,   /* guest powered off: exit 0 */
	VM_REBOOT,     /* guest asked for a reset */
	VM_SIGNAL,     /* SIGTERM/SIGINT or console escape */
	VM_CRASH,      /* triple fault, internal error, unhandled exit */
	VM_HOST_ERROR, /* a host-side failure while running */
	VM_HANDOFF,    /* its state lives on elsewhere (hibernate file, migration destination) */
};

/* Who takes the user's console input: registered by the device that is the console. */
struct vm_console_in {
	size_t (*receive)(void *ctx, const uint8_t *buf, size_t n); /* bytes taken */
	void *ctx;
};

/* The power button (ACPI on x86), registered by the device that has one. */
struct vm_power_button {
	void (*press)(void *ctx);
	void *ctx;
};

#define VM_KVM_DEVS 4

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	int max_vcpus;

	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;

	struct device *devices; /* creation order */
	struct device **devices_tail;

	struct vcpu **vcpus;
	unsigned nr_vcpus;

	/* Stop request: set once, read by every vCPU thread. */
	_Atomic int exit_reason;
	int stop_efd; /* eventfd the main loop waits on */

	/* Pause protocol (pause/resume, snapshots, migration). pause_op_lock serialises
	 * vm_pause/vm_resume callers (any thread) and guards pause_depth; pause_lock and
	 * pause_cond are how vCPU threads park. */
	pthread_mutex_t pause_op_lock;
	unsigned pause_depth; /* vm_pause calls not yet matched by vm_resume */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	bool pause_requested;
	bool paused;           /* vCPUs parked and devices paused (pause_depth > 0) */
	uint64_t paused_clock; /* kvmclock at vm_pause */
	bool dirty_logging;    /* KVM dirty logging on for the RAM slots */
	bool msi_devid;        /* MSI routes carry the requester ID (set by the arch) */
	unsigned nr_paused;    /* vCPU threads parked */
	unsigned nr_active;    /* vCPU threads running their loop */
	bool vcpus_held;       /* under pause_lock: started vCPU threads wait before KVM_RUN */
	bool kvm_fd_kept;      /* kvm_fd is the owner's, kept across VMs: not closed here */

	/* GSI routing table: KVM_SET_GSI_ROUTING replaces the whole table, so
	 * the VM keeps it (default irqchip routes + MSI routes). */
	pthread_mutex_t route_lock;
	struct kvm_irq_routing_entry *routes;
	unsigned nr_routes;
	unsigned cap_routes;
	uint32_t next_gsi;

	/* KVM memory slots of device memory (vm_mem_slot_add), above the RAM's: bit i is slot
	 * VM_DEV_SLOT_BASE + i. Any thread (a guest's BAR write moves them on its vCPU). */
	_Atomic uint32_t dev_slots;

	/* Coalesced I/O (vm_coalesce_io): KVM queues guest writes to the registered ranges in
	 * this ring (a page of every vCPU's kvm_run mapping) instead of exiting; they are
	 * dispatched, in order, before any exit is handled and when the VM pauses. */
	struct kvm_coalesced_mmio_ring *coalesced_ring;
	pthread_mutex_t coalesced_lock;

	/* KVM devices the VM's devices share (vm_kvm_device). */
	struct vm_kvm_dev {
		uint32_t type;
		int fd;
	} kvm_devs[VM_KVM_DEVS];
	unsigned nr_kvm_devs;

	/* Architecture private data (boot info, cpuid template ...). */
	void *arch;
	/* The console backend: the device that is the console (cfg->console) writes to it and
	 * registers console_in for the user's input. Set by the owner before devices exist. */
	struct char_port console_out;
	struct vm_console_in console_in;
	/* The main thread's event loop, for devices' timers (loop_timer_new); NULL where there is
	 * none (the fuzz harnesses' VM): such a device works without timed events. Set by the owner
	 * before devices exist. */
	struct loop *loop;
	struct vm_power_button power_button;
	struct device *pci_host; /* the PCI host bridge virtio devices plug into */
	/* The user's devices, by type (core/devtype.h), as their types' create returned them. */
	struct vm_instance {
		const struct device_type *type;
		void *model;
	} instances[MAX_DEVICES];
	unsigned nr_instances;
};

/* Creating a VM takes three steps, so that everything the user gave (RAM size, kernel,
 * initrd) is checked before /dev/kvm is opened:
 *   vm_init       the empty VM: buses, locks, no fds (cannot fail)
 *   vm_alloc_ram  guest RAM from `layout`, zeroed or (rf) from a snapshot file
 *   vm_open_kvm   open /dev/kvm, check the API version, every capability kvmbox uses and the
 *                 vCPU limit, create the VM and register the RAM
 * vm_destroy undoes any prefix of them. The int ones return 0 or -1 (printed). */
void vm_init(struct vm *vm, const struct vm_config *cfg);
int vm_alloc_ram(struct vm *vm, const struct mem_region *layout, int nr_regions, const struct ram_file *rf);
int vm_open_kvm(struct vm *vm);
/* Add a device to the VM's list (the VM owns it from now on). */
void vm_add_device(struct vm *vm, struct device *dev);
/* Create the devices of vm->cfg->devs, type by type in the order of device_types[] (so
 * their PCI slots and guest names follow it) and in the order given within a type. 0 or -1
 * (printed). */
int vm_create_devices(struct vm *vm);
/* The model of the first device of type t, or NULL. */
void *vm_find_model(struct vm *vm, const struct device_type *t);
/* A device whose state cannot leave the host (device_type.pinned): 0, or -1 with one line in
 * msg naming it, why, and what to do; `what` names the refused operation ("snapshot"). */
int vm_pinned(const struct vm *vm, const char *what, char *msg, size_t len);
/* Create the vCPU objects (not yet running). */
int vm_create_vcpus(struct vm *vm, unsigned n);
/* Start one thread per vCPU. With hold, each installs its seccomp filter and waits before its
 * first KVM_RUN until vm_release_vcpus (or a stop request). */
int vm_start_vcpus(struct vm *vm, bool hold);
void vm_release_vcpus(struct vm *vm);
/* Ask every vCPU to stop with `reason` and wake the main loop. Safe from any
 * thread. The first reason wins: returns true only for the call that set it. */
bool vm_request_stop(struct vm *vm, enum vm_exit_reason reason);
/* Park all vCPUs outside KVM_RUN and pause every device (no guest memory
 * is touched until the matching vm_resume), keeping the guest clock from
 * jumping. Any thread; pauses nest: the VM runs again when every vm_pause
 * has had its vm_resume (a snapshot of a VM the user paused leaves it
 * paused). vm_resume_all drops every pause (teardown). */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
void vm_resume_all(struct vm *vm);
bool vm_is_paused(struct vm *vm);
/* Turn KVM dirty-page logging on or off for every RAM slot (no-op when it
 * already is). 0 or -1. */
int vm_dirty_log_enable(struct vm *vm, bool on);
/* Fetch and clear the dirty bitmap of RAM region `slot` into bitmap (one
 * bit per 4 KiB page, unsigned long words, zeroed by KVM). 0 or -1. */
int vm_dirty_log_get(struct vm *vm, int slot, unsigned long *bitmap);

/* Join vCPU threads, destroy devices, free RAM, close fds. */
void vm_destroy(struct vm *vm);

/* Set an interrupt line (KVM_IRQ_LINE); usable as irq_line.set. */
void vm_irq_set(void *vm, uint32_t gsi, int level);

/* Allocate a GSI for an MSI route (above the irqchip pins). -1 if none left. */
int vm_gsi_alloc(struct vm *vm);
/* Route gsi to an MSI message from PCI requester devid (bus << 8 | devfn) and commit the
 * table. The requester ID is passed to KVM only when vm->msi_devid (an arm64 ITS needs it to
 * find the device's table). 0 or -1. */
int vm_gsi_route_msi(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data, uint32_t devid);
/* Drop gsi's route (if any) and commit. */
void vm_gsi_unroute(struct vm *vm, uint32_t gsi);
/* Attach/detach an eventfd that raises gsi when written (KVM_IRQFD). */
int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign);
/* The level-triggered kind, for a passed-through device's INTx: a write to efd asserts the
 * irqchip pin gsi until the guest's EOI, which deasserts it and writes resample_efd (the device
 * then unmasks its line); vm_irqfd(efd, gsi, false) detaches it. 0 or -1 (printed). */
int vm_irqfd_resample(struct vm *vm, int efd, int resample_efd, uint32_t gsi);

/* The VM's one KVM device of `type` (KVM_CREATE_DEVICE), created on the first call and closed
 * with the VM: KVM allows one VFIO device (KVM_DEV_TYPE_VFIO) per VM, which every passed-through
 * function's group joins. At device creation. Its fd, or -1 with errno set. */
int vm_kvm_device(struct vm *vm, uint32_t type);

/* Device memory the guest reaches without exits (a passed-through device's BAR, mmap'd): host
 * [host, host+size) appears at guest-physical gpa in a KVM memory slot of its own, until
 * vm_mem_slot_remove. gpa, size and host page-aligned; must not overlap RAM or another slot.
 * Any thread. The slot, or -1 (printed: out of slots, or KVM refused). */
#define VM_DEV_SLOT_BASE GUEST_MEM_MAX_REGIONS
#define VM_DEV_SLOTS     32
int vm_mem_slot_add(struct vm *vm, uint64_t gpa, void *host, uint64_t size);
/* Take slot (as vm_mem_slot_add gave it) out of the guest; a negative slot is a no-op. */
void vm_mem_slot_remove(struct vm *vm, int slot);
/* Attach/detach an eventfd that a guest write of `len` bytes to addr (port
 * I/O when pio) signals without an exit (KVM_IOEVENTFD). */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, bool pio, int efd, bool assign);

/* Let KVM queue guest writes to [addr, addr+len) (port I/O when pio) instead of exiting, for
 * registers whose writes only matter at a later access (PCI's CONFIG_ADDRESS): such an access
 * exits, and vm_coalesced_drain runs the queued writes first. The vCPUs must exist. 0, or -1
 * when KVM cannot (nothing printed: the writes then just exit). */
int vm_coalesce_io(struct vm *vm, uint64_t addr, uint32_t len, bool pio);
/* Dispatch the queued writes, oldest first (any thread). */
void vm_coalesced_drain(struct vm *vm);

/* Every KVM ioctl goes through kvm_ioctl(), which retries EINTR and, unless asked not to,
 * prints an error that names the ioctl:
 *   KVM_IOCTL(fd, req, arg)  a failure is an error (printed)
 *   KVM_PROBE(fd, req, arg)  a failure is an answer (KVM_CHECK_EXTENSION, probing an MSR,
 *                            E2BIG sizing): the caller decides, nothing is printed
 *   KVM_RUN_IOCTL(fd)        KVM_RUN: EINTR is how a kick ends it, so it is not retried, and
 *                            the vCPU loop reports failures itself
 * The return value and errno are the ioctl's. */
#define KVMIO_QUIET    1
#define KVMIO_NO_RETRY 2
int kvm_ioctl(int fd, unsigned long req, void *arg, const char *name, int flags);
#define KVM_IOCTL(fd, req, arg) kvm_ioctl((fd), (req), (void *)(arg), #req, 0)
#define KVM_PROBE(fd, req, arg) kvm_ioctl((fd), (req), (void *)(uintptr_t)(arg), #req, KVMIO_QUIET)
#define KVM_RUN_IOCTL(fd)       kvm_ioctl((fd), KVM_RUN, NULL, "KVM_RUN", KVMIO_QUIET | KVMIO_NO_RETRY)

#endif
