/* table.c - the device types a user can ask for (core/devtype.h). */
#include "../core/devtype.h"

#include <string.h>

#include "../core/util.h"
#include "vfio_pci.h"
#include "../virtio/balloon.h"
#include "../virtio/blk.h"
#include "../virtio/net.h"
#include "../virtio/rng.h"
#include "../virtio/vsock.h"

const struct device_type *const device_types[] = {
	&virtio_blk_type,     &virtio_net_type,   &virtio_rng_type,
	&virtio_balloon_type, &virtio_vsock_type, &vfio_pci_type,
};
const unsigned nr_device_types = ARRAY_SIZE(device_types);

const struct device_type *device_type_by_name(const char *name)
{
	for (unsigned i = 0; i < nr_device_types; i++)
		if (!strcmp(device_types[i]->name, name))
			return device_types[i];
	return NULL;
}
