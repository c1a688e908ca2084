/* vfio_msix.c - the emulated MSI-X table of a passed-through function (see the header). */
#include "vfio_msix.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "pci.h"

static void update(struct vfio_msix *m, unsigned vec)
{
	struct vfio_msix_entry *e = &m->e[vec];
	bool want = m->enabled && !m->maskall && !(e->ctrl & VFIO_MSIX_VECTOR_MASKED);
	uint64_t addr = (uint64_t)e->addr_hi << 32 | e->addr_lo;

	if (want && e->live && e->routed_addr == addr && e->routed_data == e->data)
		return;
	if (e->live) {
		m->ops->unroute(m->ctx, vec);
		e->live = false;
	}
	if (want && m->ops->route(m->ctx, vec, addr, e->data) == 0) {
		e->live = true;
		e->routed_addr = addr;
		e->routed_data = e->data;
	}
}

int vfio_msix_init(struct vfio_msix *m, unsigned nvec, const struct vfio_msix_ops *ops, void *ctx)
{
	memset(m, 0, sizeof(*m));
	if (nvec < 1 || nvec > PCI_MSIX_MAX_VECTORS)
		return -1;
	m->e = calloc(nvec, sizeof(*m->e));
	if (!m->e)
		return -1;
	m->nvec = nvec;
	m->ops = ops;
	m->ctx = ctx;
	for (unsigned i = 0; i < nvec; i++)
		m->e[i].ctrl = VFIO_MSIX_VECTOR_MASKED;
	return 0;
}

void vfio_msix_reset(struct vfio_msix *m)
{
	m->enabled = false;
	for (unsigned i = 0; i < m->nvec; i++) {
		update(m, i);
		memset(&m->e[i], 0, sizeof(m->e[i]));
		m->e[i].ctrl = VFIO_MSIX_VECTOR_MASKED;
	}
	m->maskall = false;
}

void vfio_msix_destroy(struct vfio_msix *m)
{
	if (!m->e)
		return;
	vfio_msix_reset(m);
	free(m->e);
	m->e = NULL;
	m->nvec = 0;
}

void vfio_msix_control(struct vfio_msix *m, bool enabled, bool maskall)
{
	if (m->enabled == enabled && m->maskall == maskall)
		return;
	m->enabled = enabled;
	m->maskall = maskall;
	for (unsigned i = 0; i < m->nvec; i++)
		update(m, i);
}

static uint32_t *dword(struct vfio_msix_entry *e, unsigned i)
{
	switch (i) {
	case 0:
		return &e->addr_lo;
	case 1:
		return &e->addr_hi;
	case 2:
		return &e->data;
	default:
		return &e->ctrl;
	}
}

void vfio_msix_table_access(struct vfio_msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	unsigned vec;

	if ((len != 4 && len != 8) || off % len || off >= (uint64_t)m->nvec * PCI_MSIX_ENTRY_SIZE) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	vec = (unsigned)(off / PCI_MSIX_ENTRY_SIZE);
	for (uint32_t k = 0; k < len / 4; k++) {
		unsigned i = (unsigned)(off % PCI_MSIX_ENTRY_SIZE) / 4 + k;
		uint32_t *p = dword(&m->e[vec], i);

		if (is_write) {
			uint32_t v = (uint32_t)get_le(data + 4 * k, 4);

			/* Only the Mask bit of vector control is defined; the rest is reserved. */
			*p = i == 3 ? (v & VFIO_MSIX_VECTOR_MASKED) : v;
		} else {
			put_le(data + 4 * k, 4, *p);
		}
	}
	if (is_write)
		update(m, vec);
}

void vfio_msix_set_entry(struct vfio_msix *m, unsigned vec, uint64_t addr, uint32_t data, bool masked)
{
	struct vfio_msix_entry *e = &m->e[vec];

	e->addr_lo = (uint32_t)addr;
	e->addr_hi = (uint32_t)(addr >> 32);
	e->data = data;
	e->ctrl = masked ? VFIO_MSIX_VECTOR_MASKED : 0;
	update(m, vec);
}

void vfio_msix_pba_read(struct vfio_msix *m, uint64_t off, uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint8_t byte = 0;

		for (unsigned b = 0; b < 8; b++) {
			uint64_t vec = (off + i) * 8 + b;

			if (vec < m->nvec && !m->e[vec].live && m->ops->pending &&
			    m->ops->pending(m->ctx, (unsigned)vec))
				byte |= (uint8_t)(1u << b);
		}
		data[i] = byte;
	}
}
