#include "vcpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "log.h"
#include "sandbox.h"
#include "vm.h"

static void kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return with EINTR */
}

void vcpu_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must return */
	sigaction(SIG_VCPU_KICK, &sa, NULL);
}

struct vcpu *vcpu_create(struct vm *vm, unsigned id)
{
	struct vcpu *v = calloc(1, sizeof(*v));

	if (!v) {
		log_error("out of memory creating vCPU %u", id);
		return NULL;
	}
	v->vm = vm;
	v->id = id;
	v->fd = KVM_PROBE(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		log_error("vCPU %u: KVM_CREATE_VCPU failed: %s; give fewer --cpus", id, strerror(errno));
		free(v);
		return NULL;
	}
	v->run = mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		log_error("vCPU %u: cannot map kvm_run: %s", id, strerror(errno));
		close(v->fd);
		free(v);
		return NULL;
	}
	return v;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (atomic_load_explicit(&v->thread_started, memory_order_acquire) &&
	    !pthread_equal(v->thread, pthread_self()))
		pthread_kill(v->thread, SIG_VCPU_KICK);
}

static void report_crash(struct vcpu *v, const char *what)
{
	/* Only the vCPU whose stop request wins prints; the others just stop. */
	if (!vm_request_stop(v->vm, VM_CRASH))
		return;
	fprintf(stderr, "kvmbox: guest crashed on vCPU %u: %s; register dump follows\n", v->id, what);
	arch_vcpu_dump(v, stderr);
	fflush(stderr);
}

enum vcpu_action vcpu_handle_exit(struct vcpu *v, struct kvm_run *run)
{
	struct vm *vm = v->vm;
	char what[96];

	v->stats.exits++;
	/* Writes KVM queued instead of exiting come first: they happened before this access. */
	vm_coalesced_drain(vm);
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint64_t size = run->io.size, count = run->io.count;
		uint64_t off = run->io.data_offset;
		uint8_t *data = (uint8_t *)run + off;

		v->stats.io++;
		/* The kernel fills these, but a bad value must not walk off the page. */
		if ((size != 1 && size != 2 && size != 4) || count == 0 ||
		    off >= (uint64_t)vm->vcpu_mmap_size ||
		    count > ((uint64_t)vm->vcpu_mmap_size - off) / size) {
			report_crash(v, "malformed I/O exit");
			return VCPU_STOP;
		}
		for (uint64_t i = 0; i < count; i++)
			bus_dispatch(&vm->pio, run->io.port, data + i * size, (uint32_t)size,
				     run->io.direction == KVM_EXIT_IO_OUT);
		return VCPU_CONTINUE;
	}
	case KVM_EXIT_MMIO:
		v->stats.mmio++;
		if (run->mmio.len == 0 || run->mmio.len > sizeof(run->mmio.data)) {
			report_crash(v, "malformed MMIO exit");
			return VCPU_STOP;
		}
		bus_dispatch(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			     run->mmio.is_write);
		return VCPU_CONTINUE;
	case KVM_EXIT_INTR:
		v->stats.intr++;
		return VCPU_CONTINUE;
	case KVM_EXIT_HLT:
		/* With the in-kernel LAPIC, HLT is handled by KVM; tolerate it anyway. */
		v->stats.hlt++;
		return VCPU_CONTINUE;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		v->stats.other++;
		return VCPU_CONTINUE;
	case KVM_EXIT_SYSTEM_EVENT:
		v->stats.other++;
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(vm, VM_POWEROFF);
			return VCPU_STOP;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(vm, VM_REBOOT);
			return VCPU_STOP;
		default:
			snprintf(what, sizeof(what), "system event %u", run->system_event.type);
			report_crash(v, what);
			return VCPU_STOP;
		}
	case KVM_EXIT_SHUTDOWN:
		v->stats.other++;
		report_crash(v, "triple fault (KVM_EXIT_SHUTDOWN)");
		return VCPU_STOP;
	case KVM_EXIT_INTERNAL_ERROR:
		v->stats.other++;
		snprintf(what, sizeof(what), "KVM internal error, suberror %u", run->internal.suberror);
		report_crash(v, what);
		return VCPU_STOP;
	case KVM_EXIT_FAIL_ENTRY:
		v->stats.other++;
		snprintf(what, sizeof(what), "VM entry failed, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		report_crash(v, what);
		return VCPU_STOP;
	default:
		v->stats.other++;
		snprintf(what, sizeof(what), "unhandled KVM exit %u", run->exit_reason);
		report_crash(v, what);
		return VCPU_STOP;
	}
}

/* Let KVM finish the exit the last KVM_RUN returned (see vcpu.h): KVM_RUN with
 * immediate_exit completes it and returns EINTR. Finishing one may need another
 * exit (the next chunk of a string I/O instruction); that is handled and
 * finished in turn. */
static void vcpu_finish_exit(struct vcpu *v)
{
	for (int i = 0; i < 64 && v->exit_unfinished; i++) {
		v->exit_unfinished = false;
		if (atomic_load(&v->vm->exit_reason) != VM_RUNNING)
			return;
		/* Left set: the loop clears it before its next KVM_RUN, after the checks. */
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (KVM_RUN_IOCTL(v->fd) < 0) {
			if (errno != EINTR && errno != EAGAIN) {
				log_error("vCPU %u: KVM_RUN to finish an exit failed: %s", v->id,
					  strerror(errno));
				vm_request_stop(v->vm, VM_HOST_ERROR);
			}
			return;
		}
		v->exit_unfinished = true;
		if (vcpu_handle_exit(v, v->run) == VCPU_STOP)
			return;
	}
}

/* Park here while a pause is requested. Returns false when the VM stops. */
static bool vcpu_park_if_paused(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->pause_lock);
	while (vm->pause_requested && v->exit_unfinished && atomic_load(&vm->exit_reason) == VM_RUNNING) {
		pthread_mutex_unlock(&vm->pause_lock);
		vcpu_finish_exit(v);
		pthread_mutex_lock(&vm->pause_lock);
	}
	if (vm->pause_requested && atomic_load(&vm->exit_reason) == VM_RUNNING) {
		vm->nr_paused++;
		pthread_cond_broadcast(&vm->pause_cond);
		while (vm->pause_requested && atomic_load(&vm->exit_reason) == VM_RUNNING)
			pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
		vm->nr_paused--;
	}
	pthread_mutex_unlock(&vm->pause_lock);
	return atomic_load(&vm->exit_reason) == VM_RUNNING;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, SIG_VCPU_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Its host CPUs and scheduling policy before the guest runs on it. */
	if (vm_tuning_apply_vcpu(vm->cfg, v->id) < 0)
		vm_request_stop(vm, VM_HOST_ERROR);
	sandbox_thread_enter(SB_VCPU);
	/* The owner may hold the vCPUs until the rest of the process is locked down too. */
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->vcpus_held && atomic_load(&vm->exit_reason) == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);

	for (;;) {
		/* Clear the kick before looking at requests, so a kick that comes
		 * after the check still makes the next KVM_RUN return at once. */
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_load(&vm->exit_reason) != VM_RUNNING)
			break;
		if (!vcpu_park_if_paused(v))
			break;
		v->exit_unfinished = false;
		if (KVM_RUN_IOCTL(v->fd) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->stats.intr++;
				continue;
			}
			log_error("vCPU %u: KVM_RUN failed: %s", v->id, strerror(errno));
			vm_request_stop(vm, VM_HOST_ERROR);
			break;
		}
		/* Every exit to user space: KVM finishes I/O, MMIO and the like on the next
		 * KVM_RUN, and one more KVM_RUN is harmless for the others. */
		v->exit_unfinished = true;
		if (vcpu_handle_exit(v, v->run) == VCPU_STOP)
			break;
	}

	pthread_mutex_lock(&vm->pause_lock);
	vm->nr_active--;
	pthread_cond_broadcast(&vm->pause_cond); /* a pauser may wait for us */
	pthread_mutex_unlock(&vm->pause_lock);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int err;

	pthread_mutex_lock(&v->vm->pause_lock);
	v->vm->nr_active++;
	pthread_mutex_unlock(&v->vm->pause_lock);
	err = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (err) {
		pthread_mutex_lock(&v->vm->pause_lock);
		v->vm->nr_active--;
		pthread_mutex_unlock(&v->vm->pause_lock);
		log_error("vCPU %u: cannot start thread: %s", v->id, strerror(err));
		return -1;
	}
	/* Other vCPU threads may already kick this one (a stop request from
	 * a vCPU started before it): publish v->thread with the flag. */
	atomic_store_explicit(&v->thread_started, true, memory_order_release);
	return 0;
}

void vcpu_join(struct vcpu *v)
{
	if (v && atomic_load(&v->thread_started)) {
		vcpu_kick(v);
		/* Cleared before the join: a later kick only sets immediate_exit
		 * and does not signal a thread that is being joined. */
		atomic_store(&v->thread_started, false);
		pthread_join(v->thread, NULL);
	}
}

void vcpu_destroy(struct vcpu *v)
{
	if (!v)
		return;
	vcpu_join(v);
	if (v->run && v->run != MAP_FAILED)
		munmap(v->run, (size_t)v->vm->vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}
