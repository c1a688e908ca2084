/* io_util.h - little helpers shared by the device models.
 *
 * Register accesses arrive as little-endian byte arrays: decode them with
 * get_le/put_le from core/util.h (included here for every device model). */
#ifndef KVMBOX_DEVICES_IO_UTIL_H
#define KVMBOX_DEVICES_IO_UTIL_H

#include <stdio.h>
#include <string.h>

#include "../core/device.h"
#include "../core/util.h"

/* Fill a read the device does not decode: all ones, like an idle bus. */
static inline void io_fill_ones(struct bus_access *a)
{
	if (!a->is_write)
		memset(a->data, 0xff, a->len);
}

/* Copy a device name into dev->name, truncating safely. */
static inline void io_set_name(struct device *dev, const char *name)
{
	snprintf(dev->name, sizeof(dev->name), "%s", name ? name : "");
}

#endif
