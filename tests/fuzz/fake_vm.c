/* fake_vm.c - see fake_vm.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/config.h"
#include "core/vcpu.h"
#include "fake_kvm.h"
#include "fake_vm.h"
#include "fuzz_util.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/rng.h"

#define RUN_SIZE 4096

struct fake_vm {
	struct vm vm; /* first: the harness only sees this */
	struct vm_config cfg;
	void *devcfg[3];
};

static void add_dev(struct fake_vm *f, const struct device_type *t, const char *arg)
{
	void *c = calloc(1, t->config_size ? t->config_size : 1);

	if (!c || (arg && t->parse(c, arg) < 0))
		abort();
	f->devcfg[f->cfg.nr_devs] = c;
	f->cfg.devs[f->cfg.nr_devs++] = (struct dev_config){ .type = t, .cfg = c };
}

struct vm *fake_vm_create(void)
{
	struct fake_vm *f = calloc(1, sizeof(*f));
	struct mem_region layout[GUEST_MEM_MAX_REGIONS];
	struct vm *vm;
	int nr;

	if (!f)
		abort();
	vm = &f->vm;
	f->cfg.kernel = "vmlinuz";
	f->cfg.cpus = 1;
	f->cfg.memory = FAKE_VM_MEMORY;
	f->cfg.console = CONSOLE_SERIAL;
	add_dev(f, &virtio_blk_type, fuzz_disk_image());
	add_dev(f, &virtio_rng_type, NULL);
	add_dev(f, &virtio_balloon_type, NULL);
	vm_init(vm, &f->cfg);
	nr = arch_mem_layout(f->cfg.memory, layout, GUEST_MEM_MAX_REGIONS);
	if (nr < 0 || vm_alloc_ram(vm, layout, nr, NULL) < 0)
		abort();
	vm->kvm_fd = fake_kvm_fd();
	vm->vm_fd = fake_kvm_fd();
	vm->vcpu_mmap_size = RUN_SIZE;
	vm->vcpus = calloc(1, sizeof(*vm->vcpus));
	vm->vcpus[0] = calloc(1, sizeof(struct vcpu));
	vm->vcpus[0]->vm = vm;
	vm->vcpus[0]->fd = fake_kvm_fd();
	vm->vcpus[0]->run = mmap(NULL, RUN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->vcpus[0]->run == MAP_FAILED)
		abort();
	vm->nr_vcpus = 1;
	if (arch_create_devices(vm) < 0 || vm_create_devices(vm) < 0)
		abort();
	return vm;
}

void fake_vm_destroy(struct vm *vm)
{
	struct fake_vm *f = (struct fake_vm *)vm;

	vm_destroy(vm);
	for (unsigned i = 0; i < f->cfg.nr_devs; i++) {
		if (f->cfg.devs[i].type->free)
			f->cfg.devs[i].type->free(f->devcfg[i]);
		free(f->devcfg[i]);
	}
	free(f);
}
