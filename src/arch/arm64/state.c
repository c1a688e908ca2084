/* state.c - arm64 snapshot state. Not there yet: a snapshot or migration is refused with one
 * line, and pause/resume leave the guest's counter running. */
#include "../../core/log.h"
#include "../../core/vm.h"
#include "../arch.h"

static int not_yet(void)
{
	log_error("snapshots and migration are not supported on arm64 yet");
	return -1;
}

int arch_vcpu_save(struct vcpu *v, struct ser_writer *w)
{
	return not_yet();
}

int arch_vcpu_load(struct vcpu *v, struct ser_reader *r)
{
	return not_yet();
}

int arch_vm_save(struct vm *vm, struct ser_writer *w)
{
	return not_yet();
}

int arch_vm_load(struct vm *vm, struct ser_reader *r)
{
	return not_yet();
}

int arch_cpu_features_save(struct vm *vm, struct ser_writer *w)
{
	return not_yet();
}

int arch_cpu_features_check(struct vm *vm, struct ser_reader *r)
{
	return not_yet();
}

int arch_clock_get(struct vm *vm, uint64_t *ns)
{
	return -1; /* vm_pause then leaves the clock alone */
}

int arch_clock_set(struct vm *vm, uint64_t ns)
{
	return -1;
}
