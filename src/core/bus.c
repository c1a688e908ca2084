#include "bus.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

void bus_init(struct bus *b, enum bus_space space)
{
	memset(b, 0, sizeof(*b));
	b->space = space;
	pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	free(b->ranges);
	pthread_rwlock_destroy(&b->lock);
	b->ranges = NULL;
	b->nr = b->cap = 0;
}

/* Index of the first range whose base is > addr. */
static int upper_bound(const struct bus *b, uint64_t addr)
{
	int lo = 0, hi = b->nr;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (b->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* bus_register; on an overlap *holder (if given) is the device in the way. */
static int do_register(struct bus *b, uint64_t base, uint64_t len, struct device *dev, struct device **holder)
{
	int i, ret = -1;

	if (len == 0 || base + len - 1 < base)
		return -1;
	pthread_rwlock_wrlock(&b->lock);
	i = upper_bound(b, base);
	/* The previous range must end before base, the next start after us. */
	if (i > 0 && b->ranges[i - 1].base + b->ranges[i - 1].len - 1 >= base) {
		if (holder)
			*holder = b->ranges[i - 1].dev;
		goto out;
	}
	if (i < b->nr && b->ranges[i].base <= base + len - 1) {
		if (holder)
			*holder = b->ranges[i].dev;
		goto out;
	}
	if (b->nr == b->cap) {
		int cap = b->cap ? b->cap * 2 : 16;
		struct bus_range *nr = realloc(b->ranges, (size_t)cap * sizeof(*nr));

		if (!nr)
			goto out;
		b->ranges = nr;
		b->cap = cap;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i], (size_t)(b->nr - i) * sizeof(*b->ranges));
	b->ranges[i] = (struct bus_range){ .base = base, .len = len, .dev = dev };
	b->nr++;
	ret = 0;
out:
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, struct device *dev)
{
	return do_register(b, base, len, dev, NULL);
}

int bus_unregister(struct bus *b, uint64_t base, struct device *dev)
{
	int ret = -1;

	pthread_rwlock_wrlock(&b->lock);
	for (int i = 0; i < b->nr; i++) {
		if (b->ranges[i].base == base && b->ranges[i].dev == dev) {
			memmove(&b->ranges[i], &b->ranges[i + 1],
				(size_t)(b->nr - i - 1) * sizeof(*b->ranges));
			b->nr--;
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_register_all(struct bus *b, const struct bus_claim *claims, size_t n, struct device *dev)
{
	const char *space = b->space == BUS_PIO ? "I/O ports" : "MMIO";

	for (size_t i = 0; i < n; i++) {
		const struct bus_claim *c = &claims[i];
		struct device *holder = NULL;

		if (do_register(b, c->base, c->len, dev, &holder) == 0)
			continue;
		if (c->len == 0 || c->base + c->len - 1 < c->base)
			log_error(
				"%s %s: %s range of 0x%llx bytes at 0x%llx is empty or wraps; this is a kvmbox bug",
				dev->ops->type, dev->name, space, (unsigned long long)c->len,
				(unsigned long long)c->base);
		else if (holder)
			log_error("%s %s: %s 0x%llx-0x%llx are already in use by %s; this is a kvmbox bug",
				  dev->ops->type, dev->name, space, (unsigned long long)c->base,
				  (unsigned long long)(c->base + c->len - 1), holder->name);
		else
			log_error("%s %s: out of memory claiming %s 0x%llx-0x%llx; free some host memory",
				  dev->ops->type, dev->name, space, (unsigned long long)c->base,
				  (unsigned long long)(c->base + c->len - 1));
		bus_unregister_all(b, claims, i, dev);
		return -1;
	}
	return 0;
}

void bus_unregister_all(struct bus *b, const struct bus_claim *claims, size_t n, struct device *dev)
{
	for (size_t i = 0; i < n; i++)
		bus_unregister(b, claims[i].base, dev);
}

bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct bus_access a;
	struct device *dev = NULL;
	int i;

	/* Only the lookup is under the lock: the device runs without it, so it
	 * may (un)register ranges itself (bus.h says why that is safe). */
	pthread_rwlock_rdlock(&b->lock);
	i = upper_bound(b, addr) - 1;
	if (i >= 0 && len > 0) {
		const struct bus_range *r = &b->ranges[i];
		uint64_t off = addr - r->base;

		if (off < r->len && len <= r->len - off) {
			dev = r->dev;
			a = (struct bus_access){ .space = b->space,
						 .base = r->base,
						 .offset = off,
						 .data = data,
						 .len = len,
						 .is_write = is_write };
		}
	}
	pthread_rwlock_unlock(&b->lock);
	if (dev)
		dev->ops->io(dev, &a);
	else if (!is_write)
		memset(data, 0xff, len);
	return dev != NULL;
}
