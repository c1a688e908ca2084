/* io_util.h - little helpers shared by the device models.
 *
 * Guest accesses arrive as byte arrays in little-endian order; these turn
 * them into integers and back so each device decodes registers once. */
#ifndef KVMBOX_DEVICES_IO_UTIL_H
#define KVMBOX_DEVICES_IO_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../core/device.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

/* Value of an n-byte little-endian buffer (n <= 8). */
static inline uint64_t io_le_get(const uint8_t *p, uint32_t n)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < n && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Store the low n bytes of v little-endian (n <= 8). */
static inline void io_le_put(uint8_t *p, uint32_t n, uint64_t v)
{
	for (uint32_t i = 0; i < n && i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

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
