/* Exit dispatch fed with made-up kvm_run structures (no KVM needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/vcpu.h"
#include "core/vm.h"
#include "fakes.h"

struct probe {
	struct device dev;
	int calls;
	uint64_t last_off;
	uint32_t last_len;
	bool last_write;
	uint8_t last_byte;
};

static void probe_io(struct device *d, struct bus_access *a)
{
	struct probe *p = (struct probe *)d;

	p->calls++;
	p->last_off = a->offset;
	p->last_len = a->len;
	p->last_write = a->is_write;
	if (a->is_write)
		p->last_byte = a->data[0];
	else
		memset(a->data, 0x5a, a->len);
}

static const struct device_ops probe_ops = { .type = "probe", .io = probe_io };

struct fixture {
	struct vm vm;
	struct vcpu vcpu;
	struct probe pio, mmio;
	union {
		struct kvm_run run;
		uint8_t page[4096];
	} u;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	bus_init(&f->vm.pio, BUS_PIO);
	bus_init(&f->vm.mmio, BUS_MMIO);
	f->vm.vcpu_mmap_size = 4096;
	f->vm.stop_efd = -1;
	pthread_mutex_init(&f->vm.pause_lock, NULL);
	pthread_cond_init(&f->vm.pause_cond, NULL);
	f->vcpu.vm = &f->vm;
	f->vcpu.fd = -1;
	f->pio.dev.ops = &probe_ops;
	f->mmio.dev.ops = &probe_ops;
	assert_int_equal(bus_register(&f->vm.pio, 0x3f8, 8, &f->pio.dev), 0);
	assert_int_equal(bus_register(&f->vm.mmio, 0xd0000000, 0x1000, &f->mmio.dev), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	bus_destroy(&f->vm.pio);
	bus_destroy(&f->vm.mmio);
	free(f);
	return 0;
}

static void test_pio_out_and_string_io(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_IO;
	run->io.direction = KVM_EXIT_IO_OUT;
	run->io.port = 0x3f8;
	run->io.size = 1;
	run->io.count = 3;
	run->io.data_offset = 1024;
	memcpy(f->u.page + 1024, "abc", 3);
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_CONTINUE);
	assert_int_equal(f->pio.calls, 3); /* rep outsb: one access per element */
	assert_int_equal(f->pio.last_byte, 'c');
	assert_true(f->pio.last_write);
	assert_int_equal(f->vcpu.stats.io, 1);
}

static void test_pio_in_unassigned_reads_ones(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_IO;
	run->io.direction = KVM_EXIT_IO_IN;
	run->io.port = 0x1234;
	run->io.size = 2;
	run->io.count = 1;
	run->io.data_offset = 1024;
	memset(f->u.page + 1024, 0, 2);
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_CONTINUE);
	assert_int_equal(f->u.page[1024], 0xff);
	assert_int_equal(f->u.page[1025], 0xff);
	assert_int_equal(f->pio.calls, 0);
}

static void test_pio_bad_offset_stops(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_IO;
	run->io.direction = KVM_EXIT_IO_OUT;
	run->io.port = 0x3f8;
	run->io.size = 4;
	run->io.count = 2;
	run->io.data_offset = 4092; /* second element would be past the page */
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(f->pio.calls, 0);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_CRASH);
}

static void test_mmio_read(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = 0xd0000010;
	run->mmio.len = 4;
	run->mmio.is_write = 0;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_CONTINUE);
	assert_int_equal(f->mmio.calls, 1);
	assert_true(f->mmio.last_off == 0x10);
	assert_int_equal(run->mmio.data[0], 0x5a);
	assert_int_equal(run->mmio.data[3], 0x5a);
}

static void test_mmio_bad_len_stops(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = 0xd0000010;
	run->mmio.len = 9;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(f->mmio.calls, 0);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_CRASH);
}

/* Writes KVM coalesced (vm_coalesce_io) are dispatched before the exit that follows them,
 * oldest first, and only once. */
static void test_coalesced_writes_first(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;
	static union {
		struct kvm_coalesced_mmio_ring r;
		uint8_t page[4096];
	} ring;

	memset(&ring, 0, sizeof(ring));
	ring.r.coalesced_mmio[0] =
		(struct kvm_coalesced_mmio){ .phys_addr = 0x3f9, .len = 1, .pio = 1, .data = { 0x11 } };
	ring.r.coalesced_mmio[1] =
		(struct kvm_coalesced_mmio){ .phys_addr = 0x3fa, .len = 1, .pio = 1, .data = { 0x22 } };
	ring.r.last = 2;
	f->vm.coalesced_ring = &ring.r;
	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = 0xd0000010;
	run->mmio.len = 4;
	run->mmio.is_write = 0;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_CONTINUE);
	assert_int_equal(f->pio.calls, 2);
	assert_true(f->pio.last_write && f->pio.last_off == 2 && f->pio.last_byte == 0x22);
	assert_int_equal(ring.r.first, 2);
	assert_int_equal(f->mmio.calls, 1);
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_CONTINUE);
	assert_int_equal(f->pio.calls, 2);
	f->vm.coalesced_ring = NULL;
}

static void test_system_events(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	run->system_event.type = KVM_SYSTEM_EVENT_RESET;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_REBOOT);
	/* The first reason wins. */
	run->system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_REBOOT);
}

static void test_shutdown_is_crash(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_SHUTDOWN;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_CRASH);
}

/* A power-off register: the guest's write asks the VM to stop, as ACPI PM1a_CNT does. */
struct poweroff_reg {
	struct device dev;
	struct vm *vm;
};

static void poweroff_io(struct device *d, struct bus_access *a)
{
	struct vm *vm = ((struct poweroff_reg *)(void *)((char *)d - offsetof(struct poweroff_reg, dev)))->vm;

	if (a->is_write)
		vm_request_stop(vm, VM_POWEROFF);
	else
		memset(a->data, 0, a->len);
}

static const struct device_ops poweroff_ops = { .type = "poweroff", .io = poweroff_io };

/* A guest that has asked to power off is powered off, whatever its vCPUs do next: a vCPU
 * that triple-faults afterwards (on AMD, KVM has then reset it) is not a crash, and prints
 * no crash report. The same for a reset request. */
static void test_request_wins_over_later_fault(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;
	struct poweroff_reg pm = { .dev.ops = &poweroff_ops, .vm = &f->vm };
	struct vcpu other = { .vm = &f->vm, .id = 1, .fd = -1 };
	struct stderr_capture cap;
	const char *err;

	assert_int_equal(bus_register(&f->vm.pio, 0x604, 2, &pm.dev), 0);
	memset(run, 0, sizeof(f->u));
	run->exit_reason = KVM_EXIT_IO;
	run->io.direction = KVM_EXIT_IO_OUT;
	run->io.size = 2;
	run->io.port = 0x604;
	run->io.count = 1;
	run->io.data_offset = 512;
	vcpu_handle_exit(&f->vcpu, run);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_POWEROFF);

	stderr_capture_begin(&cap);
	run->exit_reason = KVM_EXIT_SHUTDOWN;
	assert_int_equal(vcpu_handle_exit(&other, run), VCPU_STOP);
	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	assert_int_equal(vcpu_handle_exit(&other, run), VCPU_STOP);
	err = stderr_capture_end(&cap);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_POWEROFF);
	assert_null(strstr(err, "crashed"));

	/* Reset: the same. */
	atomic_store(&f->vm.exit_reason, VM_RUNNING);
	run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	run->system_event.type = KVM_SYSTEM_EVENT_RESET;
	vcpu_handle_exit(&f->vcpu, run);
	run->exit_reason = KVM_EXIT_SHUTDOWN;
	vcpu_handle_exit(&other, run);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_REBOOT);
}

static void test_internal_error_and_unknown(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run->internal.suberror = 1;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_CRASH);
	atomic_store(&f->vm.exit_reason, VM_RUNNING);
	run->exit_reason = 0x7777;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_CRASH);
}

static void test_intr_continues(void **state)
{
	struct fixture *f = *state;
	struct kvm_run *run = &f->u.run;

	run->exit_reason = KVM_EXIT_INTR;
	assert_int_equal(vcpu_handle_exit(&f->vcpu, run), VCPU_CONTINUE);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_RUNNING);
	assert_int_equal(f->vcpu.stats.intr, 1);
}

/* The vCPU threads without KVM: KVM_RUN on fd -1 fails at once, so the first
 * thread to get there stops the VM as a host error and kicks the others,
 * possibly while the main thread is still starting them. Every thread must
 * leave its loop and be joined; under ThreadSanitizer this also checks the
 * start/kick/join hand-over (vcpu->thread, thread_started). */
static void test_threads_stop_on_host_error(void **state)
{
	enum { N = 4 };
	struct fixture *f = *state;
	struct vcpu *v[N];
	uint64_t stops;

	vcpu_signals_init();
	f->vm.stop_efd = eventfd(0, EFD_CLOEXEC);
	assert_true(f->vm.stop_efd >= 0);
	for (unsigned i = 0; i < N; i++) {
		v[i] = calloc(1, sizeof(*v[i]));
		assert_non_null(v[i]);
		v[i]->vm = &f->vm;
		v[i]->id = i;
		v[i]->fd = -1;
		v[i]->run = calloc(1, 4096);
		assert_non_null(v[i]->run);
	}
	f->vm.vcpus = v;
	f->vm.nr_vcpus = N;
	assert_int_equal(vm_start_vcpus(&f->vm, false), 0);
	/* Blocks until a thread asked for the stop. */
	assert_int_equal(read(f->vm.stop_efd, &stops, sizeof(stops)), sizeof(stops));
	assert_int_equal(stops, 1);
	for (unsigned i = 0; i < N; i++)
		vcpu_join(v[i]);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_HOST_ERROR);
	assert_int_equal(f->vm.nr_active, 0);
	for (unsigned i = 0; i < N; i++) {
		free(v[i]->run);
		free(v[i]);
	}
	f->vm.vcpus = NULL;
	f->vm.nr_vcpus = 0;
	close(f->vm.stop_efd);
	f->vm.stop_efd = -1;
}

/* A stand-in KVM_RUN on one descriptor (fk.fd; every other ioctl is the real one): the first
 * call waits until the test lets it return an OUT exit to user space; each later call records
 * immediate_exit and whether the vCPU had parked, and ends as a kick does (EINTR). */
static struct {
	int fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool go;
	int calls;
	uint8_t immediate[4];
	unsigned parked[4];
	struct vm *vm;
	struct kvm_run *run;
} fk = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int n;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd < 0 || fd != fk.fd || req != KVM_RUN)
		return (int)syscall(SYS_ioctl, fd, req, arg);
	pthread_mutex_lock(&fk.lock);
	n = fk.calls++;
	pthread_cond_broadcast(&fk.cond);
	if (n < 4) {
		fk.immediate[n] = fk.run->immediate_exit;
		pthread_mutex_lock(&fk.vm->pause_lock);
		fk.parked[n] = fk.vm->nr_paused;
		pthread_mutex_unlock(&fk.vm->pause_lock);
	}
	if (n == 0) {
		while (!fk.go)
			pthread_cond_wait(&fk.cond, &fk.lock);
		pthread_mutex_unlock(&fk.lock);
		fk.run->exit_reason = KVM_EXIT_IO;
		fk.run->io.direction = KVM_EXIT_IO_OUT;
		fk.run->io.size = 1;
		fk.run->io.port = 0x3f8;
		fk.run->io.count = 1;
		fk.run->io.data_offset = 1024;
		((uint8_t *)fk.run)[1024] = 'k';
		return 0;
	}
	pthread_mutex_unlock(&fk.lock);
	errno = EINTR;
	return -1;
}

/* A pause asked for while a vCPU handles an I/O exit: before it parks, the vCPU lets KVM
 * finish that exit with one more KVM_RUN with immediate_exit set, so the state a snapshot or
 * a migration reads next has the access complete (a read's value in its register, RIP past
 * the instruction). Without that call, a destination would run the access again. */
static void test_pause_finishes_the_exit(void **state)
{
	struct fixture *f = *state;
	struct vcpu *list[1] = { &f->vcpu };

	vcpu_signals_init();
	fk.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fk.fd >= 0);
	fk.vm = &f->vm;
	fk.run = &f->u.run;
	f->vcpu.fd = fk.fd;
	f->vcpu.run = &f->u.run;
	f->vm.vcpus = list;
	f->vm.nr_vcpus = 1;
	assert_int_equal(vcpu_start(&f->vcpu), 0);
	/* The pause comes while the vCPU is in KVM_RUN; the exit comes after it. */
	pthread_mutex_lock(&fk.lock);
	while (fk.calls < 1)
		pthread_cond_wait(&fk.cond, &fk.lock);
	pthread_mutex_unlock(&fk.lock);
	pthread_mutex_lock(&f->vm.pause_lock);
	f->vm.pause_requested = true;
	pthread_mutex_unlock(&f->vm.pause_lock);
	pthread_mutex_lock(&fk.lock);
	fk.go = true;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
	pthread_mutex_lock(&f->vm.pause_lock);
	while (f->vm.nr_paused != 1)
		pthread_cond_wait(&f->vm.pause_cond, &f->vm.pause_lock);
	pthread_mutex_unlock(&f->vm.pause_lock);

	pthread_mutex_lock(&fk.lock);
	assert_int_equal(fk.calls, 2);
	assert_int_equal(fk.immediate[0], 0);
	assert_int_equal(fk.immediate[1], 1); /* finish only, never run the guest */
	assert_int_equal(fk.parked[1], 0);    /* before parking */
	pthread_mutex_unlock(&fk.lock);
	assert_int_equal(f->pio.calls, 1);
	assert_int_equal(f->pio.last_byte, 'k');
	assert_false(f->vcpu.exit_unfinished);

	assert_true(vm_request_stop(&f->vm, VM_POWEROFF));
	vcpu_join(&f->vcpu);
	assert_int_equal(f->vm.nr_active, 0);
	assert_int_equal(fk.calls, 2); /* stopping from the pause runs nothing more */
	f->vm.vcpus = NULL;
	f->vm.nr_vcpus = 0;
	close(fk.fd);
	fk.fd = -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pio_out_and_string_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalesced_writes_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pio_in_unassigned_reads_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pio_bad_offset_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_bad_len_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_system_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_is_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_wins_over_later_fault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_internal_error_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intr_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_stop_on_host_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_finishes_the_exit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
