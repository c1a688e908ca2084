#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "devtype.h"
#include "log.h"
#include "util.h"
#include "vcpu.h"

int kvm_ioctl(int fd, unsigned long req, void *arg, const char *name, int flags)
{
	int ret;

	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR && !(flags & KVMIO_NO_RETRY));
	if (ret < 0 && !(flags & KVMIO_QUIET)) {
		int e = errno;

		log_error("KVM: ioctl %s failed: %s", name, strerror(e));
		errno = e;
	}
	return ret;
}

struct kvm_cap_need {
	int cap;
	const char *name;
};

/* Capabilities the core relies on; the architecture checks its own. */
static const struct kvm_cap_need core_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
};

static int open_kvm(struct vm *vm)
{
	int ver;

	/* The machine keeps /dev/kvm open from one boot to the next. */
	if (vm->kvm_fd < 0)
		vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;

		if (e == ENOENT || e == ENODEV || e == ENXIO)
			log_error(
				"/dev/kvm: %s; load the kvm module (modprobe kvm_intel or kvm_amd); a host "
				"without hardware virtualisation (no vmx or svm in /proc/cpuinfo) cannot run "
				"kvmbox, but a VM with nested virtualisation on it can",
				strerror(e));
		else if (e == EACCES || e == EPERM)
			log_error("/dev/kvm: permission denied; add your user to the kvm group "
				  "or run kvmbox as root");
		else
			log_error("/dev/kvm: cannot open: %s; check that KVM is available", strerror(e));
		return -1;
	}
	ver = KVM_PROBE(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver < 0) {
		log_error("/dev/kvm: not a KVM device (KVM_GET_API_VERSION: %s); "
			  "make /dev/kvm the kernel's KVM device node",
			  strerror(errno));
		return -1;
	}
	if (ver != KVM_API_VERSION) {
		log_error("/dev/kvm: KVM API version %d, kvmbox needs %d; use a newer kernel", ver,
			  KVM_API_VERSION);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(core_caps); i++) {
		if (KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, core_caps[i].cap) <= 0) {
			log_error("/dev/kvm: the kernel lacks %s; use a kernel with full KVM support",
				  core_caps[i].name);
			return -1;
		}
	}
	vm->max_vcpus = KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (vm->max_vcpus <= 0)
		vm->max_vcpus = KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (vm->max_vcpus <= 0)
		vm->max_vcpus = 4; /* the API's documented minimum */
	vm->vcpu_mmap_size = KVM_PROBE(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		log_error("/dev/kvm: KVM_GET_VCPU_MMAP_SIZE failed; check the kernel's KVM");
		return -1;
	}
	return 0;
}

void vm_init(struct vm *vm, const struct vm_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = -1;
	vm->devices_tail = &vm->devices;
	bus_init(&vm->pio, BUS_PIO);
	bus_init(&vm->mmio, BUS_MMIO);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_mutex_init(&vm->pause_op_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	pthread_mutex_init(&vm->route_lock, NULL);
	pthread_mutex_init(&vm->coalesced_lock, NULL);
}

int vm_alloc_ram(struct vm *vm, const struct mem_region *layout, int nr_regions, const struct ram_file *rf)
{
	const struct vm_tuning *t = &vm->cfg->tuning;
	struct ram_backing b = { .huge_dir = t->hugepage_dir[0] ? t->hugepage_dir : NULL,
				 .prealloc = t->prealloc };

	if (t->hugepages && !(b.huge_page = vm_tuning_huge_page_size(t)))
		return -1;
	return rf ? guest_mem_alloc_file_backed(&vm->mem, layout, nr_regions, rf->fd, rf->off, rf->copy, &b)
		  : guest_mem_alloc_backed(&vm->mem, layout, nr_regions, &b);
}

int vm_open_kvm(struct vm *vm)
{
	if (open_kvm(vm) < 0)
		return -1;
	if (vm->cfg->cpus > (unsigned)vm->max_vcpus) {
		log_error("--cpus %u: this host's KVM allows at most %d vCPUs; give fewer --cpus",
			  vm->cfg->cpus, vm->max_vcpus);
		return -1;
	}
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0) {
		log_error("eventfd: %s; raise the open file limit", strerror(errno));
		return -1;
	}
	vm->vm_fd = KVM_PROBE(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		log_error("/dev/kvm: KVM_CREATE_VM failed: %s; check that virtualisation is enabled",
			  strerror(errno));
		return -1;
	}
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].host,
		};
		if (KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return -1;
	}
	return 0;
}

void vm_add_device(struct vm *vm, struct device *dev)
{
	dev->next = NULL;
	*vm->devices_tail = dev;
	vm->devices_tail = &dev->next;
}

int vm_create_devices(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;

	for (unsigned t = 0; t < nr_device_types; t++) {
		unsigned index = 0;

		for (unsigned i = 0; i < cfg->nr_devs; i++) {
			void *model;

			if (cfg->devs[i].type != device_types[t])
				continue;
			model = device_types[t]->create(vm, cfg->devs[i].cfg, index++);
			if (!model)
				return -1;
			vm->instances[vm->nr_instances++] =
				(struct vm_instance){ .type = device_types[t], .model = model };
		}
	}
	return 0;
}

void *vm_find_model(struct vm *vm, const struct device_type *t)
{
	for (unsigned i = 0; i < vm->nr_instances; i++)
		if (vm->instances[i].type == t)
			return vm->instances[i].model;
	return NULL;
}

int vm_pinned(const struct vm *vm, const char *what, char *msg, size_t len)
{
	for (unsigned i = 0; i < vm->nr_instances; i++) {
		const struct device_type *t = vm->instances[i].type;

		if (t->pinned) {
			snprintf(msg, len,
				 "%s refused: the VM has a %s device (--%s), which cannot be saved: %s; "
				 "run the VM without it to %s",
				 what, t->name, t->option, t->pinned, what);
			return -1;
		}
	}
	return 0;
}

int vm_create_vcpus(struct vm *vm, unsigned n)
{
	vm->vcpus = calloc(n, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		log_error("out of memory creating %u vCPUs", n);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		vm->vcpus[i] = vcpu_create(vm, i);
		if (!vm->vcpus[i])
			return -1;
		vm->nr_vcpus++;
		if (arch_vcpu_init(vm->vcpus[i]) < 0)
			return -1;
	}
	return 0;
}

int vm_start_vcpus(struct vm *vm, bool hold)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->vcpus_held = hold;
	pthread_mutex_unlock(&vm->pause_lock);
	vm->nr_active = 0;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vcpu_start(vm->vcpus[i]) < 0) {
			vm_request_stop(vm, VM_HOST_ERROR);
			return -1;
		}
	}
	return 0;
}

void vm_release_vcpus(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->vcpus_held = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

bool vm_request_stop(struct vm *vm, enum vm_exit_reason reason)
{
	int expected = VM_RUNNING;
	uint64_t one = 1;

	if (!atomic_compare_exchange_strong(&vm->exit_reason, &expected, (int)reason))
		return false; /* the first reason wins */
	if (write(vm->stop_efd, &one, sizeof(one)) < 0) {
		/* counter overflow is impossible with one write; nothing to do */
	}
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond); /* parked vCPUs must see the stop */
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(vm->vcpus[i]);
	return true;
}

static void set_slot(struct vm *vm, int i, uint32_t flags, int *ret)
{
	struct kvm_userspace_memory_region r = {
		.slot = (uint32_t)i,
		.flags = flags,
		.guest_phys_addr = vm->mem.regions[i].gpa,
		.memory_size = vm->mem.regions[i].size,
		.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].host,
	};

	if (KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		*ret = -1;
}

int vm_dirty_log_enable(struct vm *vm, bool on)
{
	int ret = 0;

	if (vm->dirty_logging == on)
		return 0;
	for (int i = 0; i < vm->mem.nr_regions; i++)
		set_slot(vm, i, on ? KVM_MEM_LOG_DIRTY_PAGES : 0, &ret);
	if (ret == 0)
		vm->dirty_logging = on;
	return ret;
}

int vm_dirty_log_get(struct vm *vm, int slot, unsigned long *bitmap)
{
	struct kvm_dirty_log d = { .slot = (uint32_t)slot, .dirty_bitmap = bitmap };

	return KVM_IOCTL(vm->vm_fd, KVM_GET_DIRTY_LOG, &d);
}

int vm_coalesce_io(struct vm *vm, uint64_t addr, uint32_t len, bool pio)
{
	struct kvm_coalesced_mmio_zone z = { .addr = addr, .size = len, .pio = pio };
	int page = KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);

	if (page <= 0 || !vm->nr_vcpus ||
	    (pio && KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0))
		return -1;
	if ((long)(page + 1) * sysconf(_SC_PAGESIZE) > vm->vcpu_mmap_size)
		return -1;
	if (KVM_PROBE(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z) < 0) {
		log_debug("KVM_REGISTER_COALESCED_MMIO %#llx+%u: %s", (unsigned long long)addr, len,
			  strerror(errno));
		return -1;
	}
	vm->coalesced_ring = (void *)((uint8_t *)vm->vcpus[0]->run + (long)page * sysconf(_SC_PAGESIZE));
	return 0;
}

void vm_coalesced_drain(struct vm *vm)
{
	struct kvm_coalesced_mmio_ring *r = vm->coalesced_ring;
	uint32_t max;

	/* Nothing queued, the usual case: no lock (a drain on another thread is no harm). */
	if (!r || __atomic_load_n(&r->first, __ATOMIC_RELAXED) == __atomic_load_n(&r->last, __ATOMIC_ACQUIRE))
		return;
	max = (uint32_t)((sysconf(_SC_PAGESIZE) - sizeof(*r)) / sizeof(r->coalesced_mmio[0]));
	pthread_mutex_lock(&vm->coalesced_lock);
	/* KVM fills entries and then moves last; we read, then move first (KVM_COALESCED_MMIO). */
	while (r->first != __atomic_load_n(&r->last, __ATOMIC_ACQUIRE)) {
		struct kvm_coalesced_mmio *e = &r->coalesced_mmio[r->first % max];
		uint8_t data[8];
		uint32_t len = e->len > sizeof(data) ? sizeof(data) : e->len;

		memcpy(data, e->data, len);
		bus_dispatch(e->pio ? &vm->pio : &vm->mmio, e->phys_addr, data, len, true);
		__atomic_store_n(&r->first, (r->first + 1) % max, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->coalesced_lock);
}

/* Park the vCPUs and pause the devices; caller holds pause_op_lock and depth was 0. */
static void pause_now(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = true;
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(vm->vcpus[i]);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->nr_paused < vm->nr_active)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	/* A write KVM still queues is device state a snapshot must see. */
	vm_coalesced_drain(vm);
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->ops->pause)
			d->ops->pause(d);
	if (arch_clock_get(vm, &vm->paused_clock) < 0)
		vm->paused_clock = 0;
	vm->paused = true;
}

static void resume_now(struct vm *vm)
{
	/* The guest clock goes on from where it stopped. */
	if (vm->paused_clock)
		arch_clock_set(vm, vm->paused_clock);
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->ops->resume)
			d->ops->resume(d);
	vm->paused = false;
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_op_lock);
	if (vm->pause_depth++ == 0)
		pause_now(vm);
	pthread_mutex_unlock(&vm->pause_op_lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_op_lock);
	if (vm->pause_depth && --vm->pause_depth == 0)
		resume_now(vm);
	pthread_mutex_unlock(&vm->pause_op_lock);
}

bool vm_is_paused(struct vm *vm)
{
	bool p;

	pthread_mutex_lock(&vm->pause_op_lock);
	p = vm->pause_depth > 0;
	pthread_mutex_unlock(&vm->pause_op_lock);
	return p;
}

void vm_resume_all(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_op_lock);
	if (vm->pause_depth) {
		vm->pause_depth = 0;
		resume_now(vm);
	}
	pthread_mutex_unlock(&vm->pause_op_lock);
}

void vm_irq_set(void *opaque, uint32_t gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	if (KVM_PROBE(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_debug("KVM_IRQ_LINE gsi %u: %s", gsi, strerror(errno));
}

#define MAX_GSI_ROUTES 1024

/* Commit the table; caller holds route_lock. */
static int commit_routes(struct vm *vm)
{
	struct kvm_irq_routing *r;
	size_t sz = sizeof(*r) + vm->nr_routes * sizeof(r->entries[0]);
	int ret;

	r = calloc(1, sz);
	if (!r)
		return -1;
	r->nr = vm->nr_routes;
	memcpy(r->entries, vm->routes, vm->nr_routes * sizeof(r->entries[0]));
	ret = KVM_IOCTL(vm->vm_fd, KVM_SET_GSI_ROUTING, r);
	free(r);
	return ret;
}

/* Load the default irqchip routes once; caller holds route_lock. */
static int routes_init(struct vm *vm)
{
	if (vm->routes)
		return 0;
	vm->routes = calloc(MAX_GSI_ROUTES, sizeof(*vm->routes));
	if (!vm->routes)
		return -1;
	vm->cap_routes = MAX_GSI_ROUTES;
	vm->nr_routes = (unsigned)arch_default_routes(vm->routes, MAX_GSI_ROUTES, &vm->next_gsi);
	return 0;
}

int vm_gsi_alloc(struct vm *vm)
{
	int gsi = -1;

	pthread_mutex_lock(&vm->route_lock);
	if (routes_init(vm) == 0 && vm->next_gsi < MAX_GSI_ROUTES)
		gsi = (int)vm->next_gsi++;
	pthread_mutex_unlock(&vm->route_lock);
	if (gsi < 0)
		log_error("VM: out of interrupt routes (%d); use fewer devices", MAX_GSI_ROUTES);
	return gsi;
}

int vm_gsi_route_msi(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data, uint32_t devid)
{
	struct kvm_irq_routing_entry *e = NULL;
	int ret = -1;

	pthread_mutex_lock(&vm->route_lock);
	if (routes_init(vm) < 0)
		goto out;
	for (unsigned i = 0; i < vm->nr_routes; i++) {
		if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI) {
			e = &vm->routes[i];
			break;
		}
	}
	if (!e) {
		if (vm->nr_routes == vm->cap_routes)
			goto out;
		e = &vm->routes[vm->nr_routes++];
	}
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	if (vm->msi_devid) {
		e->flags = KVM_MSI_VALID_DEVID;
		e->u.msi.devid = devid;
	}
	ret = commit_routes(vm);
out:
	pthread_mutex_unlock(&vm->route_lock);
	return ret;
}

void vm_gsi_unroute(struct vm *vm, uint32_t gsi)
{
	pthread_mutex_lock(&vm->route_lock);
	for (unsigned i = 0; vm->routes && i < vm->nr_routes; i++) {
		if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI) {
			vm->routes[i] = vm->routes[--vm->nr_routes];
			commit_routes(vm);
			break;
		}
	}
	pthread_mutex_unlock(&vm->route_lock);
}

int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd f = { .fd = (uint32_t)efd,
			       .gsi = gsi,
			       .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };

	return KVM_IOCTL(vm->vm_fd, KVM_IRQFD, &f);
}

int vm_irqfd_resample(struct vm *vm, int efd, int resample_efd, uint32_t gsi)
{
	struct kvm_irqfd f = { .fd = (uint32_t)efd,
			       .gsi = gsi,
			       .flags = KVM_IRQFD_FLAG_RESAMPLE,
			       .resamplefd = (uint32_t)resample_efd };

	return KVM_IOCTL(vm->vm_fd, KVM_IRQFD, &f);
}

int vm_mem_slot_add(struct vm *vm, uint64_t gpa, void *host, uint64_t size)
{
	uint32_t used = atomic_load(&vm->dev_slots);
	int i;

	do {
		for (i = 0; i < VM_DEV_SLOTS && (used & (1u << i)); i++)
			;
		if (i == VM_DEV_SLOTS) {
			log_error("VM: out of device memory slots (%d); pass through fewer devices",
				  VM_DEV_SLOTS);
			return -1;
		}
	} while (!atomic_compare_exchange_weak(&vm->dev_slots, &used, used | (1u << i)));

	struct kvm_userspace_memory_region r = {
		.slot = (uint32_t)(VM_DEV_SLOT_BASE + i),
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	if (KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		atomic_fetch_and(&vm->dev_slots, ~(1u << i));
		return -1;
	}
	return VM_DEV_SLOT_BASE + i;
}

void vm_mem_slot_remove(struct vm *vm, int slot)
{
	int i = slot - VM_DEV_SLOT_BASE;
	struct kvm_userspace_memory_region r = { .slot = (uint32_t)slot };

	if (slot < 0 || i < 0 || i >= VM_DEV_SLOTS || !(atomic_load(&vm->dev_slots) & (1u << i)))
		return;
	KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r); /* size 0 deletes it */
	atomic_fetch_and(&vm->dev_slots, ~(1u << i));
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, bool pio, int efd, bool assign)
{
	struct kvm_ioeventfd e = { .addr = addr, .len = len, .fd = efd };

	if (pio)
		e.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (!assign)
		e.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return KVM_IOCTL(vm->vm_fd, KVM_IOEVENTFD, &e);
}

int vm_kvm_device(struct vm *vm, uint32_t type)
{
	struct kvm_create_device cd = { .type = type };

	for (unsigned i = 0; i < vm->nr_kvm_devs; i++)
		if (vm->kvm_devs[i].type == type)
			return vm->kvm_devs[i].fd;
	if (vm->nr_kvm_devs == VM_KVM_DEVS) {
		errno = ENOSPC;
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &cd) < 0)
		return -1;
	vm->kvm_devs[vm->nr_kvm_devs++] = (struct vm_kvm_dev){ type, (int)cd.fd };
	return (int)cd.fd;
}

void vm_destroy(struct vm *vm)
{
	struct device *d, *next;

	if (vm->vcpus) {
		if (atomic_load(&vm->exit_reason) == VM_RUNNING)
			vm_request_stop(vm, VM_HOST_ERROR);
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vcpu_destroy(vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	for (d = vm->devices; d; d = next) {
		next = d->next;
		if (d->ops->destroy)
			d->ops->destroy(d);
	}
	vm->devices = NULL;
	for (unsigned i = 0; i < vm->nr_kvm_devs; i++)
		close(vm->kvm_devs[i].fd);
	vm->nr_kvm_devs = 0;
	arch_vm_destroy(vm);
	guest_mem_free(&vm->mem);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0 && !vm->kvm_fd_kept)
		close(vm->kvm_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_mutex_destroy(&vm->pause_op_lock);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->route_lock);
	pthread_mutex_destroy(&vm->coalesced_lock);
	vm->coalesced_ring = NULL; /* it was a page of the vCPUs' mappings */
	free(vm->routes);
	vm->routes = NULL;
	vm->vm_fd = vm->kvm_fd = vm->stop_efd = -1;
}
