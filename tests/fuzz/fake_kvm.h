/* fake_kvm.h - KVM faked for the harnesses that need a whole VM (fuzz_snapshot,
 * fuzz_migrate_recv): ioctl() is replaced for file descriptors handed out by fake_kvm_fd(), so
 * the state loaders reach their KVM_SET_* calls and go on as if KVM took the state. Every other
 * descriptor gets the real system call. */
#ifndef KVMBOX_TESTS_FAKE_KVM_H
#define KVMBOX_TESTS_FAKE_KVM_H

#include <stdbool.h>

/* A descriptor (of /dev/null) whose ioctls the fake answers: 0 for every request, but
 * KVM_CHECK_EXTENSION (0: no optional capability), KVM_GET_SUPPORTED_CPUID (no entries),
 * KVM_GET_MSR_INDEX_LIST (none), KVM_GET/SET_MSRS (all of them) and KVM_CREATE_VCPU (another
 * fake descriptor). Aborts when it cannot open one. */
int fake_kvm_fd(void);
bool fake_kvm_is(int fd);

#endif
