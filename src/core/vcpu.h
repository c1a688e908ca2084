/* vcpu.h - one thread per vCPU and its exit dispatch.
 *
 * Control: a vCPU is stopped or paused by setting a request and kicking it:
 * kvm_run->immediate_exit makes a KVM_RUN that has not started return at
 * once, and a signal (SIG_VCPU_KICK, with an empty handler) interrupts one
 * that is in progress. Parking uses the VM's pause condition variable; no
 * signal handler ever takes a lock.
 *
 * An I/O or MMIO exit is finished by KVM only on the next KVM_RUN (the value
 * of a read goes into the register, RIP/PC moves past the instruction), and
 * that unfinished part is in no state user space can read. So a vCPU that is
 * to park after such an exit first re-enters KVM_RUN with immediate_exit set:
 * KVM completes the access and returns at once, and the state a snapshot or a
 * migration then reads is consistent (KVM's API documentation, KVM_RUN).
 * Without it a read with a side effect (a UART byte taken from its FIFO, a
 * read-to-clear status) would happen twice after a restore. */
#ifndef KVMBOX_VCPU_H
#define KVMBOX_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

#define SIG_VCPU_KICK (SIGRTMIN + 1)

/* Counts of exits to user space, by kind (for --stats and benchmarks). */
struct vcpu_stats {
	uint64_t exits;
	uint64_t io;
	uint64_t mmio;
	uint64_t hlt;
	uint64_t intr; /* KVM_EXIT_INTR (kicks, signals) */
	uint64_t other;
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	/* thread is valid: set (release) after pthread_create by the starting
	 * thread, read (acquire) by any thread that kicks this vCPU. */
	atomic_bool thread_started;
	/* The last KVM_RUN ended in an exit KVM finishes on the next one (vCPU
	 * thread only). */
	bool exit_unfinished;
	struct vcpu_stats stats;
};

/* What the dispatch loop should do after one exit. */
enum vcpu_action { VCPU_CONTINUE, VCPU_STOP };

/* Handle one KVM exit described by run (no KVM calls except for the crash
 * dump): I/O and MMIO go to the VM's buses, HLT/SHUTDOWN/SYSTEM_EVENT and
 * errors become stop requests. Separate from the thread so tests can feed it
 * made-up exits. */
enum vcpu_action vcpu_handle_exit(struct vcpu *vcpu, struct kvm_run *run);

/* Create the KVM vCPU and map its kvm_run. */
struct vcpu *vcpu_create(struct vm *vm, unsigned id);
/* Start its thread (named "vcpuN"). */
int vcpu_start(struct vcpu *vcpu);
/* Make a vCPU leave KVM_RUN soon. Safe from any thread. */
void vcpu_kick(struct vcpu *vcpu);
/* Wait for the thread to leave its loop (the VM must be stopping). */
void vcpu_join(struct vcpu *vcpu);
/* Join (if started), unmap, close, free. */
void vcpu_destroy(struct vcpu *vcpu);
/* Install the no-op kick handler (once per process). */
void vcpu_signals_init(void);

#endif
