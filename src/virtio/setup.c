#include "setup.h"

#include <stdio.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "console.h"
#include "virtio_pci.h"

struct virtio_dev *virtio_plug(struct vm *vm, struct virtio_dev *vd)
{
	struct device *dev;

	if (!vd)
		return NULL;
	dev = virtio_pci_create(vm, vd);
	if (!dev) {
		vd->ops->destroy(vd); /* frees its fds, then its loop */
		return NULL;
	}
	vm_add_device(vm, dev);
	return vd;
}

static size_t console_to_virtio(void *vd, const uint8_t *buf, size_t n)
{
	return virtio_console_receive(vd, buf, n);
}

int virtio_create_console(struct vm *vm)
{
	struct virtio_dev *vd = virtio_plug(vm, virtio_console_create(&vm->mem, vm->console_out, 0));

	if (!vd)
		return -1;
	vm->console_in = (struct vm_console_in){ .receive = console_to_virtio, .ctx = vd };
	return 0;
}
