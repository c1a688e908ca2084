/* vfio-check.c - run in the VFIO emulated host (tests/linux/vfio): kvmbox's own VFIO code
 * (src/devices/vfio.c, vfio_sysfs.c, vfio_pci_cfg.c, linked from build/libkvmbox.a) against the
 * real kernel, one step a line, stopping at the first that fails.
 *
 *   vfio-check BDF        set-up, config space, DMA map, MSI-X and INTx eventfds, reset, the
 *                         KVM VFIO device; then a second open of the same function (refused:
 *                         the group is in use)
 *   vfio-check -e BDF     only the set-up, printing its error line (for the refusal tests)
 *
 * Lines: "ok STEP detail" and finally "vfio-check PASS", or "vfio-check FAIL STEP: error" (with
 * -e: "vfio-check ERROR <kvmbox's message>" or "vfio-check OPENED"). Status 0 on PASS/OPENED. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/vfio.h"
#include "devices/vfio_pci_cfg.h"
#include "devices/vfio_sysfs.h"

static int fail(const char *step)
{
	printf("vfio-check FAIL %s: %s\n", step, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	static struct vfio_pci_cfg cfg;
	const size_t len = 64 << 20;
	char bdf[VFIO_BDF_LEN], err[512];
	uint8_t config[PCI_CONFIG_SIZE];
	uint64_t sizes[PCI_NUM_BARS];
	struct vfio_dev d, d2;
	int fds[PCI_MSIX_MAX_VECTORS], kvm, vm, kdev, efd, rfd;
	unsigned n;
	void *mem;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "-e")) {
		if (vfio_parse_bdf(argv[2], bdf, err, sizeof(err)) < 0 ||
		    vfio_dev_open(&d, NULL, bdf, err, sizeof(err)) < 0) {
			printf("vfio-check ERROR %s\n", err);
			return 1;
		}
		printf("vfio-check OPENED group %d\n", d.group_nr);
		vfio_dev_close(&d);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: vfio-check [-e] BDF\n");
		return 2;
	}
	if (vfio_parse_bdf(argv[1], bdf, err, sizeof(err)) < 0 ||
	    vfio_dev_open(&d, NULL, bdf, err, sizeof(err)) < 0) {
		printf("vfio-check FAIL open: %s\n", err);
		return 1;
	}
	printf("ok open %s group %d msix %u msi %u intx %u reset %d\n", bdf, d.group_nr, d.msix_count,
	       d.msi_count, d.intx_count, d.can_reset);
	for (int r = 0; r < VFIO_DEV_REGIONS; r++)
		if (d.region[r].size)
			printf("ok region %d size %#llx flags %#x%s\n", r,
			       (unsigned long long)d.region[r].size, d.region[r].flags,
			       (d.region[r].flags & VFIO_REGION_INFO_FLAG_MMAP) ? " mmap" : "");
	if (vfio_dev_region_read(&d, VFIO_DEV_CONFIG, 0, config, sizeof(config)) < 0)
		return fail("config read");
	printf("ok config vendor %#06x device %#06x class %06x\n", config[0] | config[1] << 8,
	       config[2] | config[3] << 8, config[9] | config[10] << 8 | config[11] << 16);
	for (int b = 0; b < PCI_NUM_BARS; b++)
		sizes[b] = d.region[b].size;
	if (vfio_pci_cfg_parse(&cfg, config, sizes, err, sizeof(err)) < 0) {
		printf("vfio-check FAIL config parse: %s\n", err);
		return 1;
	}
	for (int b = 0; b < PCI_NUM_BARS; b++)
		if (cfg.bar[b].type != PCI_BAR_UNUSED && cfg.bar[b].type != PCI_BAR_MEM64_HI)
			printf("ok bar %d type %d size %#llx prefetch %d\n", b, cfg.bar[b].type,
			       (unsigned long long)cfg.bar[b].size, cfg.bar[b].prefetch);
	printf("ok caps %d msix cap %#x vectors %u table bar %d +%#x pba bar %d +%#x msi cap %#x\n",
	       cfg.ncaps, cfg.msix.cap, cfg.msix.nvec, cfg.msix.table_bar, cfg.msix.table_off,
	       cfg.msix.pba_bar, cfg.msix.pba_off, cfg.msi.cap);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	if (vfio_dev_map_dma(&d, 0, mem, len) < 0)
		return fail("dma map 64 MiB at iova 0");
	printf("ok dma map 64 MiB at iova 0\n");
	n = cfg.msix.nvec < d.msix_count ? cfg.msix.nvec : d.msix_count;
	for (unsigned i = 0; i < n; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return fail("eventfd");
	if (vfio_dev_set_irqs(&d, VFIO_PCI_MSIX_IRQ_INDEX, fds, n) < 0)
		return fail("msix eventfds");
	if (vfio_dev_set_irqs(&d, VFIO_PCI_MSIX_IRQ_INDEX, NULL, 0) < 0)
		return fail("msix off");
	printf("ok msix %u eventfds set and cleared\n", n);
	efd = eventfd(0, EFD_CLOEXEC);
	rfd = eventfd(0, EFD_CLOEXEC);
	if (vfio_dev_set_intx(&d, efd, rfd) < 0)
		return fail("intx eventfd and unmask");
	if (vfio_dev_set_irqs(&d, VFIO_PCI_INTX_IRQ_INDEX, NULL, 0) < 0)
		return fail("intx off");
	printf("ok intx eventfd with unmask set and cleared\n");
	if (vfio_dev_reset(&d) < 0)
		return fail("reset");
	printf("ok reset\n");
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("open /dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	struct kvm_create_device cd = { .type = KVM_DEV_TYPE_VFIO };

	if (ioctl(vm, KVM_CREATE_DEVICE, &cd) < 0)
		return fail("kvm vfio device");
	kdev = (int)cd.fd;
	if (vfio_dev_kvm_add(&d, kdev) < 0)
		return fail("kvm vfio device: group add");
	printf("ok kvm vfio device, group added\n");
	if (vfio_dev_open(&d2, NULL, bdf, err, sizeof(err)) == 0) {
		printf("vfio-check FAIL second open: the group opened twice\n");
		return 1;
	}
	printf("ok second open refused: %s\n", err);
	if (vfio_dev_unmap_dma(&d, 0, len) < 0)
		return fail("dma unmap");
	vfio_dev_close(&d);
	printf("vfio-check PASS\n");
	return 0;
}
