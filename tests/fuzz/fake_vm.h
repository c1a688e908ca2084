/* fake_vm.h - a whole x86 VM as kvmbox builds it (machine.c's boot_once, minus the kernel and
 * the vCPU threads), on fake KVM (fake_kvm.h): 16 MiB of RAM, one vCPU, the machine's own devices
 * (arch_create_devices: com1, rtc, i8042, acpi-pm, the PCI host and 0xcf8) and the user's
 * (vm_create_devices: a virtio-blk on a scratch image, virtio-rng, virtio-balloon). What a
 * snapshot or a migration stream is loaded into. */
#ifndef KVMBOX_TESTS_FAKE_VM_H
#define KVMBOX_TESTS_FAKE_VM_H

#include "core/vm.h"

#define FAKE_VM_MEMORY (16ULL << 20)

/* Aborts when it cannot build one (the harness is broken, not the input). */
struct vm *fake_vm_create(void);
void fake_vm_destroy(struct vm *vm);

#endif
