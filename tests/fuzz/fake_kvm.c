/* fake_kvm.c - see fake_kvm.h. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "fake_kvm.h"

#define FAKE_MAX_FD 1024

static bool fake[FAKE_MAX_FD];

int fake_kvm_fd(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0 || fd >= FAKE_MAX_FD)
		abort();
	fake[fd] = true;
	return fd;
}

/* Marked when handed out, and still /dev/null (a closed number may be reused for anything). */
bool fake_kvm_is(int fd)
{
	struct stat st;

	return fd >= 0 && fd < FAKE_MAX_FD && fake[fd] && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == makedev(1, 3);
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!fake_kvm_is(fd))
		return (int)syscall(SYS_ioctl, fd, req, arg);
	switch (req) {
	case KVM_CHECK_EXTENSION:
		return 0;
	case KVM_GET_SUPPORTED_CPUID:
		((struct kvm_cpuid2 *)arg)->nent = 0;
		return 0;
	case KVM_GET_MSR_INDEX_LIST:
		((struct kvm_msr_list *)arg)->nmsrs = 0;
		return 0;
	case KVM_GET_MSRS:
	case KVM_SET_MSRS:
		return (int)((struct kvm_msrs *)arg)->nmsrs;
	case KVM_CREATE_VCPU:
		return fake_kvm_fd();
	default:
		return 0;
	}
}
