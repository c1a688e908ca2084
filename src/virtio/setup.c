#include "setup.h"

#include <stdio.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "balloon.h"
#include "blk.h"
#include "console.h"
#include "net.h"
#include "rng.h"
#include "virtio_pci.h"

/* Put vd on the PCI bus; on failure the device model is freed here. */
static int plug(struct vm *vm, struct virtio_dev *vd)
{
	struct device *dev;

	if (!vd)
		return -1;
	dev = virtio_pci_create(vm, vd);
	if (!dev) {
		vd->ops->destroy(vd); /* frees its fds, then its loop */
		return -1;
	}
	vm_add_device(vm, dev);
	return 0;
}

static size_t console_to_virtio(void *vd, const uint8_t *buf, size_t n)
{
	return virtio_console_receive(vd, buf, n);
}

int virtio_create_devices(struct vm *vm, struct virtio_handles *h)
{
	const struct vm_config *cfg = vm->cfg;

	h->balloon = NULL;
	for (unsigned i = 0; i < cfg->nr_disks; i++)
		if (plug(vm, virtio_blk_create(&vm->mem, &cfg->disks[i], i)) < 0)
			return -1;
	for (unsigned i = 0; i < cfg->nr_nets; i++)
		if (plug(vm, virtio_net_create(&vm->mem, &cfg->nets[i], i)) < 0)
			return -1;
	if (cfg->rng && plug(vm, virtio_rng_create(&vm->mem, 0)) < 0)
		return -1;
	if (cfg->balloon) {
		struct virtio_dev *vd = virtio_balloon_create(&vm->mem, 0);

		if (plug(vm, vd) < 0)
			return -1;
		h->balloon = vd;
	}
	if (cfg->console == CONSOLE_VIRTIO) {
		struct virtio_dev *vd = virtio_console_create(&vm->mem, vm->console_out, 0);

		if (plug(vm, vd) < 0)
			return -1;
		vm->console_in = (struct vm_console_in){ .receive = console_to_virtio, .ctx = vd };
	}
	return 0;
}
