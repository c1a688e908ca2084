#include "vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"

int vhost_ioctl(const struct vhost_io *io, unsigned long req, void *arg, const char *name)
{
	int e;

	if (ioctl(io->fd, req, arg) == 0)
		return 0;
	e = errno;
	log_error("%s: %s %s: %s; %s", io->dev, io->kind, name, strerror(e), io->fix);
	errno = e;
	return -1;
}

int vhost_open(const char *path, uint64_t *features, const char **what)
{
	int fd, e;

	*what = "open";
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	*what = "VHOST_SET_OWNER";
	if (ioctl(fd, VHOST_SET_OWNER, NULL) < 0)
		goto fail;
	*what = "VHOST_GET_FEATURES";
	if (ioctl(fd, VHOST_GET_FEATURES, features) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* The host address of guest range [gpa, gpa+len), as vhost wants it. */
static uint64_t hva(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return (uint64_t)(uintptr_t)gpa_ptr(m, gpa, len);
}

int vhost_set_mem(const struct vhost_io *io, const struct guest_mem *m, uint8_t **log, size_t *log_len)
{
	struct vhost_memory *mt;
	uint64_t top = 0, log_base;
	int ret = -1;

	mt = calloc(1, sizeof(*mt) + (size_t)m->nr_regions * sizeof(mt->regions[0]));
	if (!mt) {
		log_error("%s: out of memory", io->dev);
		return -1;
	}
	mt->nregions = (uint32_t)m->nr_regions;
	for (int i = 0; i < m->nr_regions; i++) {
		mt->regions[i] =
			(struct vhost_memory_region){ .guest_phys_addr = m->regions[i].gpa,
						      .memory_size = m->regions[i].size,
						      .userspace_addr =
							      (uint64_t)(uintptr_t)m->regions[i].host };
		if (m->regions[i].gpa + m->regions[i].size > top)
			top = m->regions[i].gpa + m->regions[i].size;
	}
	if (vhost_ioctl(io, VHOST_SET_MEM_TABLE, mt, "VHOST_SET_MEM_TABLE") < 0)
		goto out;
	if (log) {
		if (!*log) {
			*log_len = (size_t)((top / 4096 + 7) / 8);
			*log = calloc(1, *log_len);
			if (!*log) {
				log_error("%s: out of memory", io->dev);
				goto out;
			}
		}
		log_base = (uint64_t)(uintptr_t)*log;
		if (vhost_ioctl(io, VHOST_SET_LOG_BASE, &log_base, "VHOST_SET_LOG_BASE") < 0)
			goto out;
	}
	ret = 0;
out:
	free(mt);
	return ret;
}

int vhost_vring_setup(const struct vhost_io *io, unsigned index, const struct virtq *vq, int call_fd,
		      bool log)
{
	const struct guest_mem *m = vq->mem;
	struct vhost_vring_state num = { .index = index, .num = vq->size };
	struct vhost_vring_state base = { .index = index, .num = vq->last_avail };
	struct vhost_vring_addr addr = {
		.index = index,
		.flags = log ? 1u << VHOST_VRING_F_LOG : 0,
		.desc_user_addr = hva(m, vq->desc_gpa, 16ULL * vq->size),
		.avail_user_addr = hva(m, vq->avail_gpa, 6 + 2ULL * vq->size),
		.used_user_addr = hva(m, vq->used_gpa, 6 + 8ULL * vq->size),
		.log_guest_addr = vq->used_gpa,
	};
	struct vhost_vring_file call = { .index = index, .fd = call_fd };

	if (vhost_ioctl(io, VHOST_SET_VRING_NUM, &num, "VHOST_SET_VRING_NUM") < 0 ||
	    vhost_ioctl(io, VHOST_SET_VRING_BASE, &base, "VHOST_SET_VRING_BASE") < 0 ||
	    vhost_ioctl(io, VHOST_SET_VRING_ADDR, &addr, "VHOST_SET_VRING_ADDR") < 0 ||
	    vhost_ioctl(io, VHOST_SET_VRING_CALL, &call, "VHOST_SET_VRING_CALL") < 0)
		return -1;
	return 0;
}

int vhost_vring_stop(const struct vhost_io *io, unsigned index, struct virtq *vq)
{
	struct vhost_vring_state st = { .index = index };

	if (vhost_ioctl(io, VHOST_GET_VRING_BASE, &st, "VHOST_GET_VRING_BASE") < 0)
		return -1;
	if (vq->enabled) {
		vq->last_avail = (uint16_t)st.num;
		vq->used_idx = get_le16((uint8_t *)vq->used + 2);
		vq->signalled_used_valid = false;
	}
	return 0;
}

void vhost_log_collect(const struct guest_mem *m, uint8_t *log, size_t log_len)
{
	if (!log)
		return;
	for (size_t i = 0; i < log_len; i++) {
		uint8_t b = __atomic_exchange_n(&log[i], 0, __ATOMIC_ACQ_REL);

		for (unsigned bit = 0; b && bit < 8; bit++)
			if (b & (1u << bit))
				guest_mem_mark_dirty(m, ((uint64_t)i * 8 + bit) * 4096, 4096);
	}
}
