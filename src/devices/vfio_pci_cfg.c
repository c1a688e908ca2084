/* vfio_pci_cfg.c - the virtual config space of a passed-through PCI function (see the header). */
#include "vfio_pci_cfg.h"

#include <stdio.h>
#include <string.h>

#include "../core/log.h"
#include "../core/util.h"

#define HEADER_END       0x40
#define CMD_FORWARD      (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE)
#define PM_CTRL          4      /* PMCSR, in the power management capability */
#define PM_CTRL_WMASK    0x0103 /* PowerState, PME_En */
#define EXP_DEVCTL       8      /* Device Control, in the PCI Express capability */
#define EXP_DEVCTL_WMASK 0x7fff /* all but Initiate FLR */
#define MSIX_CAP_LEN     12

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* The BARs: type and prefetch bits from the device, sizes from VFIO's regions. */
static int parse_bars(struct vfio_pci_cfg *c, const uint64_t size[PCI_NUM_BARS], char *err, size_t errlen)
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t raw = (uint32_t)get_le(c->phys + PCI_BASE_ADDRESS_0 + 4 * (uint32_t)i, 4);
		struct vfio_pci_bar *b = &c->bar[i];

		if (b->type == PCI_BAR_MEM64_HI) {
			if (size[i])
				return log_fmt(
					err, errlen,
					"BAR %d is the upper half of BAR %d but has a region of its own", i,
					i - 1);
			continue;
		}
		if (!size[i])
			continue;
		if (!pow2(size[i]))
			return log_fmt(err, errlen, "BAR %d: size %#llx is not a power of two", i,
				       (unsigned long long)size[i]);
		if (raw & 1) {
			if (size[i] < 4 || size[i] > 256)
				return log_fmt(err, errlen, "I/O BAR %d: size %llu outside 4..256 bytes", i,
					       (unsigned long long)size[i]);
			b->type = PCI_BAR_IO;
		} else {
			if (size[i] < 16)
				return log_fmt(err, errlen, "memory BAR %d: size %llu below 16 bytes", i,
					       (unsigned long long)size[i]);
			switch ((raw >> 1) & 3) {
			case 0:
				if (size[i] > 0x80000000ULL)
					return log_fmt(err, errlen, "32-bit BAR %d: size %#llx above 2 GiB",
						       i, (unsigned long long)size[i]);
				b->type = PCI_BAR_MEM32;
				break;
			case 2:
				if (i == PCI_NUM_BARS - 1)
					return log_fmt(err, errlen,
						       "BAR 5 claims 64 bits: there is no BAR 6");
				b->type = PCI_BAR_MEM64;
				c->bar[i + 1].type = PCI_BAR_MEM64_HI;
				break;
			default:
				return log_fmt(err, errlen, "memory BAR %d: reserved type %u", i,
					       (raw >> 1) & 3);
			}
			b->prefetch = raw & 0x8;
		}
		b->size = size[i];
	}
	return 0;
}

static bool mem_bar(const struct vfio_pci_cfg *c, int bar)
{
	return c->bar[bar].type == PCI_BAR_MEM32 || c->bar[bar].type == PCI_BAR_MEM64;
}

static int parse_msix(struct vfio_pci_cfg *c, int off, char *err, size_t errlen)
{
	struct vfio_pci_msix *m = &c->msix;
	uint32_t table, pba;

	if (off + MSIX_CAP_LEN > PCI_CONFIG_SIZE)
		return log_fmt(err, errlen, "MSI-X capability at %#x runs past config space", off);
	table = (uint32_t)get_le(c->phys + (uint32_t)off + 4, 4);
	pba = (uint32_t)get_le(c->phys + (uint32_t)off + 8, 4);
	m->cap = off;
	m->nvec = ((uint32_t)get_le(c->phys + (uint32_t)off + 2, 2) & PCI_MSIX_CTRL_QSIZE) + 1;
	m->table_bar = (int)(table & 7);
	m->table_off = table & ~7u;
	m->pba_bar = (int)(pba & 7);
	m->pba_off = pba & ~7u;
	if (m->table_bar >= PCI_NUM_BARS || !mem_bar(c, m->table_bar))
		return log_fmt(err, errlen, "MSI-X table in BAR %d, which is no memory BAR", m->table_bar);
	if (m->pba_bar >= PCI_NUM_BARS || !mem_bar(c, m->pba_bar))
		return log_fmt(err, errlen, "MSI-X PBA in BAR %d, which is no memory BAR", m->pba_bar);
	if ((uint64_t)m->table_off + (uint64_t)m->nvec * PCI_MSIX_ENTRY_SIZE > c->bar[m->table_bar].size)
		return log_fmt(err, errlen, "MSI-X table of %u vectors at %#x leaves BAR %d", m->nvec,
			       m->table_off, m->table_bar);
	if ((uint64_t)m->pba_off + (m->nvec + 63) / 64 * 8 > c->bar[m->pba_bar].size)
		return log_fmt(err, errlen, "MSI-X PBA at %#x leaves BAR %d", m->pba_off, m->pba_bar);
	return 0;
}

/* The MSI capability at off: its layout from the device's Message Control. */
static int parse_msi(struct vfio_pci_cfg *c, int off, char *err, size_t errlen)
{
	struct vfio_pci_msi *m = &c->msi;
	uint32_t flags = (uint32_t)get_le(c->phys + (uint32_t)off + 2, 2);
	unsigned mmc = (flags & PCI_MSI_FLAGS_QMASK) >> 1;

	if (m->cap)
		return log_fmt(err, errlen, "two MSI capabilities (%#x, %#x)", m->cap, off);
	if (mmc > 5)
		return log_fmt(err, errlen, "MSI capability at %#x claims 2^%u vectors (at most 32)", off,
			       mmc);
	m->cap = off;
	m->nvec = 1u << mmc;
	m->is64 = flags & PCI_MSI_FLAGS_64BIT;
	m->maskable = flags & PCI_MSI_FLAGS_MASKBIT;
	m->data_off = m->is64 ? 12 : 8;
	m->mask_off = m->is64 ? 16 : 12;
	m->len = (int)m->data_off + 2;
	if (m->maskable)
		m->len = (int)m->mask_off + 8;
	if (off + m->len > PCI_CONFIG_SIZE)
		return log_fmt(err, errlen, "MSI capability at %#x runs past config space", off);
	return 0;
}

/* Walk the capability list: at most one visit per dword of the device-specific space, each in
 * [0x40, 0xff], dword aligned. */
static int parse_caps(struct vfio_pci_cfg *c, char *err, size_t errlen)
{
	bool seen[PCI_CONFIG_SIZE / 4] = { false };
	int off;

	if (!((uint32_t)get_le(c->phys + PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	off = c->phys[PCI_CAPABILITY_LIST] & ~3;
	while (off) {
		uint8_t id;

		if (off < HEADER_END || off > PCI_CONFIG_SIZE - 4)
			return log_fmt(err, errlen, "capability pointer %#x outside 0x40..0xfc", off);
		if (seen[off / 4])
			return log_fmt(err, errlen, "capability list loops at %#x", off);
		seen[off / 4] = true;
		id = c->phys[off];
		if (id == PCI_CAP_ID_MSIX) {
			if (c->msix.cap)
				return log_fmt(err, errlen, "two MSI-X capabilities (%#x, %#x)", c->msix.cap,
					       off);
			if (parse_msix(c, off, err, errlen) < 0)
				return -1;
		}
		if (id == PCI_CAP_ID_MSI && parse_msi(c, off, err, errlen) < 0)
			return -1;
		c->caps[c->ncaps++] = (uint8_t)off;
		off = c->phys[off + 1] & ~3;
	}
	return 0;
}

static void mark(struct vfio_pci_cfg *c, int off, int len, bool pt)
{
	for (int i = off; i < off + len && i < PCI_CONFIG_SIZE; i++)
		c->passthrough[i] = pt;
}

int vfio_pci_cfg_parse(struct vfio_pci_cfg *c, const uint8_t phys[PCI_CONFIG_SIZE],
		       const uint64_t region_size[PCI_NUM_BARS], char *err, size_t errlen)
{
	uint8_t htype = phys[PCI_HEADER_TYPE] & 0x7f;

	memset(c, 0, sizeof(*c));
	memcpy(c->phys, phys, PCI_CONFIG_SIZE);
	c->vendor = (uint16_t)get_le(phys + PCI_VENDOR_ID, 2);
	c->device = (uint16_t)get_le(phys + PCI_DEVICE_ID, 2);
	if (c->vendor == 0xffff || c->vendor == 0)
		return log_fmt(err, errlen, "vendor id %#06x: the function does not answer config reads",
			       c->vendor);
	if (htype != 0)
		return log_fmt(err, errlen,
			       "header type %u: only endpoints (type 0) can be passed through, not bridges",
			       htype);
	c->revision = phys[PCI_REVISION_ID];
	c->class_code = (uint32_t)get_le(phys + PCI_CLASS_PROG, 3);
	c->subsys_vendor = (uint16_t)get_le(phys + PCI_SUBSYSTEM_VENDOR_ID, 2);
	c->subsys_id = (uint16_t)get_le(phys + PCI_SUBSYSTEM_ID, 2);
	c->intx_pin = phys[PCI_INTERRUPT_PIN];
	if (c->intx_pin > 4)
		return log_fmt(err, errlen, "interrupt pin %u is not 0..4", c->intx_pin);
	if (parse_bars(c, region_size, err, errlen) < 0 || parse_caps(c, err, errlen) < 0)
		return -1;
	/* Everything past the header is the device's but what is emulated. */
	mark(c, HEADER_END, PCI_CONFIG_SIZE - HEADER_END, true);
	for (int i = 0; i < c->ncaps; i++) {
		int off = c->caps[i];

		mark(c, off, 2, false);
		if (c->phys[off] == PCI_CAP_ID_PM && off + PM_CTRL + 2 <= PCI_CONFIG_SIZE)
			put_le(c->pt_wmask + (uint32_t)off + PM_CTRL, 2, PM_CTRL_WMASK);
		else if (c->phys[off] == PCI_CAP_ID_EXP && off + EXP_DEVCTL + 2 <= PCI_CONFIG_SIZE)
			put_le(c->pt_wmask + (uint32_t)off + EXP_DEVCTL, 2, EXP_DEVCTL_WMASK);
	}
	if (c->msix.cap)
		mark(c, c->msix.cap, MSIX_CAP_LEN, false);
	if (c->msi.cap)
		mark(c, c->msi.cap, c->msi.len, false);
	/* A mask on an emulated byte (a capability overlapping another) would forward it: drop it. */
	for (int i = 0; i < PCI_CONFIG_SIZE; i++)
		if (!c->passthrough[i])
			c->pt_wmask[i] = 0;
	return 0;
}

int vfio_pci_cfg_setup(const struct vfio_pci_cfg *c, struct pci_dev *pdev, struct device *owner,
		       const struct pci_dev_ops *ops)
{
	pci_dev_init(pdev, owner, ops, c->vendor, c->device, c->class_code, c->revision);
	pci_config_write(pdev, PCI_SUBSYSTEM_VENDOR_ID, 2, c->subsys_vendor);
	pci_config_write(pdev, PCI_SUBSYSTEM_ID, 2, c->subsys_id);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		const struct vfio_pci_bar *b = &c->bar[i];

		if (b->type != PCI_BAR_UNUSED && b->type != PCI_BAR_MEM64_HI &&
		    pci_set_bar(pdev, i, b->type, b->size, b->prefetch) < 0)
			return -1;
	}
	pci_set_intx_pin(pdev, c->intx_pin);
	if (c->ncaps) {
		pci_config_write(pdev, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
		pci_config_write(pdev, PCI_CAPABILITY_LIST, 1, (uint32_t)c->caps[0]);
	}
	for (int i = 0; i < c->ncaps; i++) {
		uint32_t off = (uint32_t)c->caps[i];

		pci_config_write(pdev, off, 1, c->phys[off]);
		pci_config_write(pdev, off + 1, 1, i + 1 < c->ncaps ? (uint32_t)c->caps[i + 1] : 0);
	}
	if (c->msix.cap) {
		uint32_t off = (uint32_t)c->msix.cap;

		/* Table size from the device; Enable and Function Mask start clear (as after reset). */
		pci_config_write(pdev, off + 2, 2,
				 (uint32_t)get_le(c->phys + off + 2, 2) & PCI_MSIX_CTRL_QSIZE);
		pci_config_write(pdev, off + 4, 4, (uint32_t)get_le(c->phys + off + 4, 4));
		pci_config_write(pdev, off + 8, 4, (uint32_t)get_le(c->phys + off + 8, 4));
		pci_config_set_wmask(pdev, off + 2, 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	}
	if (c->msi.cap) {
		const struct vfio_pci_msi *m = &c->msi;
		uint32_t off = (uint32_t)m->cap;

		/* The device's flags; Enable and Multiple Message Enable start clear (after reset). */
		pci_config_write(pdev, off + 2, 2,
				 (uint32_t)get_le(c->phys + off + 2, 2) &
					 (PCI_MSI_FLAGS_QMASK | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT));
		pci_config_set_wmask(pdev, off + 2, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
		pci_config_set_wmask(pdev, off + 4, 4, 0xfffffffc);
		if (m->is64)
			pci_config_set_wmask(pdev, off + 8, 4, 0xffffffff);
		pci_config_set_wmask(pdev, off + m->data_off, 2, 0xffff);
		if (m->maskable)
			pci_config_set_wmask(pdev, off + m->mask_off, 4,
					     m->nvec == 32 ? 0xffffffff : (1u << m->nvec) - 1);
	}
	/* pci.c keeps the guest's bits of passed-through bytes, for vfio_pci_cfg_guest_write. */
	for (uint32_t i = HEADER_END; i < PCI_CONFIG_SIZE; i++)
		if (c->pt_wmask[i])
			pci_config_set_wmask(pdev, i, 1, c->pt_wmask[i]);
	return 0;
}

void vfio_pci_cfg_msi_state(const struct vfio_pci_cfg *c, struct pci_dev *pdev, struct vfio_pci_msi_state *st)
{
	const struct vfio_pci_msi *m = &c->msi;
	uint32_t off = (uint32_t)m->cap, flags = pci_config_read(pdev, off + 2, 2);
	unsigned mme = (flags & PCI_MSI_FLAGS_QSIZE) >> 4;

	st->enabled = flags & PCI_MSI_FLAGS_ENABLE;
	/* More than the function has (5..7 are reserved too) is undefined: give it what it has. */
	st->nvec = mme <= 5 && (1u << mme) <= m->nvec ? 1u << mme : m->nvec;
	st->addr = pci_config_read(pdev, off + 4, 4);
	if (m->is64)
		st->addr |= (uint64_t)pci_config_read(pdev, off + 8, 4) << 32;
	st->data = (uint16_t)pci_config_read(pdev, off + m->data_off, 2);
	st->mask = m->maskable ? pci_config_read(pdev, off + m->mask_off, 4) : 0;
}

void vfio_pci_msi_apply(const struct vfio_pci_msi_state *st, struct vfio_msix *m, bool en)
{
	for (unsigned v = 0; v < m->nvec; v++) {
		bool masked = v >= st->nvec || (st->mask >> v & 1);

		vfio_msix_set_entry(m, v, st->addr, masked ? st->data : vfio_pci_msi_data(st, v), masked);
	}
	vfio_msix_control(m, en, false);
}

/* A write of len bytes at off overlaps [cap + 2, cap + caplen): a capability's registers, past
 * its id and next bytes. cap 0: no such capability. */
static bool touched(int cap, int caplen, uint32_t off, uint32_t len)
{
	return cap && off < (uint32_t)(cap + caplen) && off + len > (uint32_t)cap + 2;
}

bool vfio_pci_cfg_msix_touched(const struct vfio_pci_cfg *c, uint32_t off, uint32_t len)
{
	return touched(c->msix.cap, 4, off, len); /* Message Control: the only writable register */
}

bool vfio_pci_cfg_msi_touched(const struct vfio_pci_cfg *c, uint32_t off, uint32_t len)
{
	return touched(c->msi.cap, c->msi.len, off, len);
}

void vfio_pci_cfg_guest_read(const struct vfio_pci_cfg *c, const struct vfio_pci_cfg_io *io, uint32_t off,
			     uint8_t *data, uint32_t len)
{
	uint8_t dev[4];
	bool any = false;

	if (len > sizeof(dev) || off >= PCI_CONFIG_SIZE || len > PCI_CONFIG_SIZE - off)
		return;
	for (uint32_t i = 0; i < len; i++)
		any |= c->passthrough[off + i];
	if (!any)
		return;
	if (io->read(io->ctx, off, dev, len) < 0)
		memset(dev, 0xff, sizeof(dev));
	for (uint32_t i = 0; i < len; i++)
		if (c->passthrough[off + i])
			data[i] = dev[i];
}

int vfio_pci_cfg_guest_write(const struct vfio_pci_cfg *c, const struct vfio_pci_cfg_io *io,
			     struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	uint8_t dev[4];

	if (len > sizeof(dev) || off >= PCI_CONFIG_SIZE || len > PCI_CONFIG_SIZE - off)
		return 0;
	/* COMMAND: the decode, bus master and INTx-disable bits, whatever part was written. */
	if (off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) {
		uint8_t cmd[2];
		uint32_t v = pci_config_read(pdev, PCI_COMMAND, 2);

		if (io->read(io->ctx, PCI_COMMAND, cmd, 2) < 0)
			return -1;
		v = ((uint32_t)get_le(cmd, 2) & ~(uint32_t)CMD_FORWARD) | (v & CMD_FORWARD);
		put_le(cmd, 2, v);
		if (io->write(io->ctx, PCI_COMMAND, cmd, 2) < 0)
			return -1;
	}
	for (uint32_t i = 0; i < len; i++) {
		uint8_t m = c->pt_wmask[off + i], v;

		if (!m || !c->passthrough[off + i])
			continue;
		if (io->read(io->ctx, off + i, &v, 1) < 0)
			return -1;
		v = (uint8_t)((v & ~m) | (pci_config_read(pdev, off + i, 1) & m));
		if (io->write(io->ctx, off + i, &v, 1) < 0)
			return -1;
	}
	return 0;
}
