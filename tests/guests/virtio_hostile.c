/* virtio_hostile.c - a hostile virtio-blk driver: finds the device through
 * PCI configuration mechanism #1 and its virtio vendor capabilities, drives
 * it by polling (no interrupts), and feeds it malformed rings and requests.
 * Each case must end in the documented reaction (NEEDS_RESET for a broken
 * ring, an error status for a bad request, a refused register write) within
 * a bounded time; after each, the device is reset and must serve a valid read
 * again. The runner checks that kvmbox survived and the image file changed
 * only where the final valid write says.
 *
 * Command line: cap=N (expected capacity in sectors), ro (the disk is
 * read-only: writes must fail, the image must stay unchanged).
 * Output: one "case NAME: EXPECT ok" (or "... FAIL: why") line per case. */
#include "guest.h"

#define VENDOR_VIRTIO     0x1af4
#define DEVICE_VIRTIO_BLK 0x1042

/* virtio_pci_cap cfg_type */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR    3
#define CAP_DEVICE 4

/* Common configuration registers. */
#define C_DFSEL   0x00
#define C_DF      0x04
#define C_GFSEL   0x08
#define C_GF      0x0c
#define C_STATUS  0x14
#define C_QSEL    0x16
#define C_QSIZE   0x18
#define C_QENABLE 0x1c
#define C_QNOFF   0x1e
#define C_QDESC   0x20
#define C_QAVAIL  0x28
#define C_QUSED   0x30

#define S_ACK         1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40

#define F_BLK_RO    5
#define F_INDIRECT  28
#define F_VERSION_1 32

#define D_NEXT     1
#define D_WRITE    2
#define D_INDIRECT 4

#define T_IN  0
#define T_OUT 1

#define QSZ            16
#define CANARY_SECTOR  100 /* malformed writes aim here; the runner sees any change */
#define PATTERN_SECTOR 8

struct vdesc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

/* ---- PCI configuration mechanism #1 ---- */

static u32 pci_bdf; /* bus 0, slot << 11 | fn << 8 */

static void pci_sel(u32 reg)
{
	outl(0xcf8, 0x80000000u | pci_bdf | (reg & 0xfc));
}

static u32 cfg32(u32 reg)
{
	pci_sel(reg);
	return inl(0xcfc);
}

static u8 cfg8(u32 reg)
{
	pci_sel(reg);
	return inb(0xcfc + (reg & 3));
}

static void cfg_w32(u32 reg, u32 v)
{
	pci_sel(reg);
	outl(0xcfc, v);
}

static void cfg_w16(u32 reg, u16 v)
{
	pci_sel(reg);
	outw(0xcfc + (reg & 2), v);
}

/* ---- MMIO ---- */

static inline u16 mmio_read16(u64 a)
{
	return *(volatile u16 *)a;
}
static inline void mmio_write16(u64 a, u16 v)
{
	*(volatile u16 *)a = v;
}

struct vdev {
	u64 common, notify_base, isr, device;
	u32 notify_mult;
	u64 notify;  /* queue 0's notify address */
	u64 ram_end; /* end of the RAM region our rings live in */
	u64 capacity;
	bool ro;
};

static struct vdev dev;

static u8 status_get(void)
{
	return mmio_read8(dev.common + C_STATUS);
}
static void status_set(u8 s)
{
	mmio_write8(dev.common + C_STATUS, s);
}

static void w64(u32 off, u64 v)
{
	mmio_write32(dev.common + off, (u32)v);
	mmio_write32(dev.common + off + 4, (u32)(v >> 32));
}

static u64 r64(u32 off)
{
	return mmio_read32(dev.common + off) | (u64)mmio_read32(dev.common + off + 4) << 32;
}

/* ---- rings and buffers in guest RAM (identity mapped) ---- */

static u8 ringmem[4096] __attribute__((aligned(4096)));
#define RING_DESC   ((volatile struct vdesc *)(ringmem + 0x000))
#define RING_AVAIL  ((u64)ringmem + 0x400)
#define RING_USED   ((u64)ringmem + 0x800)
#define AVAIL_IDX   (*(volatile u16 *)(RING_AVAIL + 2))
#define AVAIL_RING  ((volatile u16 *)(RING_AVAIL + 4))
#define USED_IDX    (*(volatile u16 *)(RING_USED + 2))
#define USED_ID(i)  (*(volatile u32 *)(RING_USED + 4 + 8 * ((i) % QSZ)))
#define USED_LEN(i) (*(volatile u32 *)(RING_USED + 8 + 8 * ((i) % QSZ)))

static struct vdesc itab[8] __attribute__((aligned(16)));
static struct vdesc itab2[4] __attribute__((aligned(16)));
static struct vdesc bigtab[512] __attribute__((aligned(16)));
static u8 hdr[16] __attribute__((aligned(16)));
static u8 hostile[1024] __attribute__((aligned(16)));
static u8 buf[512] __attribute__((aligned(16)));
static volatile u8 st;
static u16 avail_idx, used_seen;

static void set_hdr(u32 type, u64 sector)
{
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
}

static void set_desc(volatile struct vdesc *t, int i, u64 addr, u32 len, u16 flags, u16 next)
{
	t[i].addr = addr;
	t[i].len = len;
	t[i].flags = flags;
	t[i].next = next;
}

/* ---- driver ---- */

static bool reset_dev(void)
{
	status_set(0);
	for (int i = 0; i < 100000; i++)
		if (status_get() == 0)
			return true;
	return false;
}

/* Reset and ask for `features` (guest_main checked what is offered; the
 * register cases ask for more on purpose); false (*why) when refused. */
static bool negotiate(u64 features, const char **why)
{
	if (!reset_dev()) {
		*why = "status did not read 0 after reset";
		return false;
	}
	status_set(S_ACK);
	status_set(S_ACK | S_DRIVER);
	mmio_write32(dev.common + C_GFSEL, 0);
	mmio_write32(dev.common + C_GF, (u32)features);
	mmio_write32(dev.common + C_GFSEL, 1);
	mmio_write32(dev.common + C_GF, (u32)(features >> 32));
	status_set(S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(status_get() & S_FEATURES_OK)) {
		*why = "FEATURES_OK did not stick";
		return false;
	}
	return true;
}

/* Program queue 0 with the given rings (not enabled yet). */
static void queue_program(u16 size, u64 desc, u64 avail, u64 used)
{
	mmio_write16(dev.common + C_QSEL, 0);
	mmio_write16(dev.common + C_QSIZE, size);
	w64(C_QDESC, desc);
	w64(C_QAVAIL, avail);
	w64(C_QUSED, used);
	dev.notify = dev.notify_base + (u64)mmio_read16(dev.common + C_QNOFF) * dev.notify_mult;
}

static void rings_clear(void)
{
	memset(ringmem, 0, sizeof(ringmem));
	avail_idx = used_seen = 0;
}

/* Full bring-up with our rings; false with *why on failure. */
static bool dev_up(bool indirect, const char **why)
{
	u64 f = 1ULL << F_VERSION_1;

	if (indirect)
		f |= 1ULL << F_INDIRECT;
	if (!negotiate(f, why))
		return false;
	rings_clear();
	queue_program(QSZ, (u64)RING_DESC, RING_AVAIL, RING_USED);
	mmio_write16(dev.common + C_QENABLE, 1);
	status_set(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (status_get() & S_NEEDS_RESET) {
		*why = "NEEDS_RESET right after DRIVER_OK";
		return false;
	}
	return true;
}

static void kick(void)
{
	mmio_write16(dev.notify, 0);
}

static void post(u16 head)
{
	AVAIL_RING[avail_idx % QSZ] = head;
	barrier();
	avail_idx++;
	AVAIL_IDX = avail_idx;
	barrier();
	kick();
}

enum outcome { O_DONE, O_NEEDS_RESET, O_TIMEOUT };

/* Bounded wait for a used entry or NEEDS_RESET: at most ~2 s, and a hard
 * iteration cap in case the clock stopped. */
static enum outcome wait_used(u64 limit_us)
{
	u64 t0 = clock_us();

	for (u32 n = 0; n < 20000000; n++) {
		if (USED_IDX != used_seen)
			return O_DONE;
		if (status_get() & S_NEEDS_RESET)
			return O_NEEDS_RESET;
		if (clock_us() - t0 > limit_us)
			break;
		cpu_relax();
	}
	return O_TIMEOUT;
}

/* Build and post a request: header, data (dlen bytes at daddr, device-
 * writable for reads), status. Returns the outcome; *len is the used length. */
static enum outcome rw_request(u32 type, u64 sector, u64 daddr, u32 dlen, u32 *len)
{
	enum outcome o;

	set_hdr(type, sector);
	st = 0xff;
	set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
	set_desc(RING_DESC, 1, daddr, dlen, D_NEXT | (type == T_IN ? D_WRITE : 0), 2);
	set_desc(RING_DESC, 2, (u64)&st, 1, D_WRITE, 0);
	post(0);
	o = wait_used(2000000);
	if (o == O_DONE) {
		*len = USED_LEN(used_seen);
		used_seen++;
	}
	return o;
}

/* Give the device time to (wrongly) act on something it must ignore. */
static void settle(u64 us)
{
	u64 t0 = clock_us();

	for (u32 n = 0; n < 20000000 && clock_us() - t0 < us; n++)
		cpu_relax();
}

static const char *outcome_name(enum outcome o)
{
	return o == O_DONE ? "completed" : o == O_NEEDS_RESET ? "needs_reset" : "timeout (hang)";
}

/* A valid read of sector 0 on a freshly brought-up device. */
static bool read_sector0(const char **why)
{
	u32 len = 0;
	enum outcome o;

	memset(buf, 0, sizeof(buf));
	o = rw_request(T_IN, 0, (u64)buf, 512, &len);
	if (o != O_DONE) {
		*why = outcome_name(o);
		return false;
	}
	if (st != 0 || len != 513) {
		*why = "bad status or used length";
		return false;
	}
	if (memcmp(buf, "KVMBOX-DISK", 11)) {
		*why = "sector 0 does not start with KVMBOX-DISK";
		return false;
	}
	return true;
}

/* ---- cases ---- */

static int failures;

static void report(const char *name, const char *expect, const char *err)
{
	const char *why;

	/* Whatever happened, the device must come back after a reset. */
	if (!err && !(dev_up(false, &why) && read_sector0(&why)))
		err = why;
	if (err) {
		failures++;
		gprintf("case %s: %s FAIL: %s\n", name, expect, err);
	} else {
		gprintf("case %s: %s ok\n", name, expect);
	}
}

/* After a kick of a malformed chain: NEEDS_RESET, nothing used, no status. */
static void expect_needs_reset(const char *name)
{
	enum outcome o = wait_used(2000000);

	if (o != O_NEEDS_RESET)
		report(name, "needs_reset", outcome_name(o));
	else if (USED_IDX != used_seen)
		report(name, "needs_reset", "a used entry appeared too");
	else if (st != 0xff)
		report(name, "needs_reset", "the status byte was written");
	else
		report(name, "needs_reset", NULL);
}

/* A well-formed ring carrying a bad request: completed with status `want`. */
static void expect_status(const char *name, const char *label, u8 want, enum outcome o, u32 len)
{
	if (o != O_DONE)
		report(name, label, outcome_name(o));
	else if (status_get() & S_NEEDS_RESET)
		report(name, label, "device marked itself NEEDS_RESET for a request error");
	else if (st != want || len != 1)
		report(name, label, st == 0 ? "request succeeded" : "wrong status byte or used length");
	else
		report(name, label, NULL);
}

/* The standard malformed-chain prologue: device up, status byte armed. */
static bool up_for(const char *name, bool indirect)
{
	const char *why;

	if (!dev_up(indirect, &why)) {
		failures++;
		gprintf("case %s: setup FAIL: %s\n", name, why);
		return false;
	}
	st = 0xff;
	set_hdr(T_OUT, CANARY_SECTOR);
	return true;
}

/* Write chain 0 -> 1 -> 2 to the canary sector with data at (daddr, dlen). */
static void canary_chain(u64 daddr, u32 dlen)
{
	set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
	set_desc(RING_DESC, 1, daddr, dlen, D_NEXT, 2);
	set_desc(RING_DESC, 2, (u64)&st, 1, D_WRITE, 0);
}

static void case_bad_data_addr(const char *name, u64 daddr, u32 dlen)
{
	if (!up_for(name, false))
		return;
	canary_chain(daddr, dlen);
	post(0);
	expect_needs_reset(name);
}

static void chain_cases(void)
{
	/* a -> b -> a */
	if (up_for("loop", false)) {
		set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(RING_DESC, 1, (u64)hostile, 512, D_NEXT, 0);
		post(0);
		expect_needs_reset("loop");
	}
	if (up_for("self_loop", false)) {
		set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 0);
		post(0);
		expect_needs_reset("self_loop");
	}
	/* A long loop through every descriptor of the table. */
	if (up_for("loop_full", false)) {
		for (int i = 0; i < QSZ; i++)
			set_desc(RING_DESC, i, (u64)hostile, 16, D_NEXT, (u16)((i + 1) % QSZ));
		post(0);
		expect_needs_reset("loop_full");
	}
	if (up_for("head_oob", false)) {
		canary_chain((u64)hostile, 512);
		post(QSZ);
		expect_needs_reset("head_oob");
	}
	if (up_for("next_oob", false)) {
		canary_chain((u64)hostile, 512);
		RING_DESC[1].next = QSZ;
		post(0);
		expect_needs_reset("next_oob");
	}
	case_bad_data_addr("addr_hole", 0xd0000000ULL, 512);
	case_bad_data_addr("addr_top", 0xfffffffffffff000ULL, 512);
	case_bad_data_addr("addr_wrap", 0xffffffffffffff00ULL, 0x200);
	case_bad_data_addr("addr_ram_end", dev.ram_end - 0x100, 0x200);
	case_bad_data_addr("len_huge", (u64)hostile, 0xffffffffu);
	if (up_for("avail_jump", false)) {
		canary_chain((u64)hostile, 512);
		/* Every ring entry is head 0; the index claims QSZ + 1 new chains. */
		avail_idx = QSZ + 1;
		AVAIL_IDX = avail_idx;
		kick();
		expect_needs_reset("avail_jump");
	}
	if (up_for("write_then_read", false)) {
		set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(RING_DESC, 1, (u64)&st, 1, D_WRITE | D_NEXT, 2);
		set_desc(RING_DESC, 2, (u64)hostile, 512, 0, 0);
		post(0);
		expect_needs_reset("write_then_read");
	}
}

/* itab = a valid write of the hostile data to the canary sector. */
static void itab_canary(void)
{
	set_desc(itab, 0, (u64)hdr, 16, D_NEXT, 1);
	set_desc(itab, 1, (u64)hostile, 512, D_NEXT, 2);
	set_desc(itab, 2, (u64)&st, 1, D_WRITE, 0);
}

static void indirect_cases(void)
{
	const char *why;
	enum outcome o;

	/* Positive control: a valid indirect read, so the failures below are
	 * not simply "indirect does not work". */
	if (dev_up(true, &why)) {
		set_hdr(T_IN, 0);
		st = 0xff;
		memset(buf, 0, sizeof(buf));
		set_desc(itab, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(itab, 1, (u64)buf, 512, D_WRITE | D_NEXT, 2);
		set_desc(itab, 2, (u64)&st, 1, D_WRITE, 0);
		set_desc(RING_DESC, 0, (u64)itab, 3 * 16, D_INDIRECT, 0);
		post(0);
		o = wait_used(2000000);
		if (o != O_DONE)
			report("indirect_valid", "completed", outcome_name(o));
		else if (st != 0 || USED_LEN(used_seen) != 513 || memcmp(buf, "KVMBOX-DISK", 11))
			report("indirect_valid", "completed", "wrong status, length or data");
		else
			report("indirect_valid", "completed", NULL);
	} else {
		report("indirect_valid", "completed", why);
	}
	if (up_for("indirect_not_negotiated", false)) {
		itab_canary();
		set_desc(RING_DESC, 0, (u64)itab, 3 * 16, D_INDIRECT, 0);
		post(0);
		expect_needs_reset("indirect_not_negotiated");
	}
	if (up_for("indirect_next", true)) {
		itab_canary();
		set_desc(RING_DESC, 0, (u64)itab, 3 * 16, D_INDIRECT | D_NEXT, 1);
		set_desc(RING_DESC, 1, (u64)&st, 1, D_WRITE, 0);
		post(0);
		expect_needs_reset("indirect_next");
	}
	if (up_for("indirect_nested", true)) {
		set_desc(itab2, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(itab2, 1, (u64)hostile, 512, D_NEXT, 2);
		set_desc(itab2, 2, (u64)&st, 1, D_WRITE, 0);
		set_desc(itab, 0, (u64)itab2, 3 * 16, D_INDIRECT, 0);
		set_desc(RING_DESC, 0, (u64)itab, 16, D_INDIRECT, 0);
		post(0);
		expect_needs_reset("indirect_nested");
	}
	if (up_for("indirect_len", true)) {
		itab_canary();
		set_desc(RING_DESC, 0, (u64)itab, 40, D_INDIRECT, 0);
		post(0);
		expect_needs_reset("indirect_len");
	}
	if (up_for("indirect_zero_len", true)) {
		itab_canary();
		set_desc(RING_DESC, 0, (u64)itab, 0, D_INDIRECT, 0);
		post(0);
		expect_needs_reset("indirect_zero_len");
	}
	if (up_for("indirect_loop", true)) {
		set_desc(itab, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(itab, 1, (u64)hostile, 512, D_NEXT, 0);
		set_desc(RING_DESC, 0, (u64)itab, 2 * 16, D_INDIRECT, 0);
		post(0);
		expect_needs_reset("indirect_loop");
	}
	if (up_for("indirect_table_hole", true)) {
		set_desc(RING_DESC, 0, 0xd0000000ULL, 3 * 16, D_INDIRECT, 0);
		post(0);
		expect_needs_reset("indirect_table_hole");
	}
}

static void request_cases(void)
{
	u32 len = 0;
	enum outcome o;

	if (up_for("beyond_capacity", false)) {
		o = rw_request(T_OUT, dev.capacity, (u64)hostile, 512, &len);
		expect_status("beyond_capacity", "ioerr", 1, o, len);
	}
	if (up_for("straddle_capacity", false)) {
		o = rw_request(T_OUT, dev.capacity - 1, (u64)hostile, 1024, &len);
		expect_status("straddle_capacity", "ioerr", 1, o, len);
	}
	/* sector * 512 wraps to 0: must not write sector 0. */
	if (up_for("sector_overflow", false)) {
		o = rw_request(T_OUT, 1ULL << 55, (u64)hostile, 512, &len);
		expect_status("sector_overflow", "ioerr", 1, o, len);
	}
	if (up_for("partial_sector", false)) {
		o = rw_request(T_OUT, CANARY_SECTOR, (u64)hostile, 100, &len);
		expect_status("partial_sector", "ioerr", 1, o, len);
	}
	if (up_for("unknown_type", false)) {
		o = rw_request(0x55, CANARY_SECTOR, (u64)hostile, 512, &len);
		expect_status("unknown_type", "unsupp", 2, o, len);
	}
	if (up_for("short_header", false)) {
		set_desc(RING_DESC, 0, (u64)hdr, 8, D_NEXT, 1);
		set_desc(RING_DESC, 1, (u64)&st, 1, D_WRITE, 0);
		post(0);
		o = wait_used(2000000);
		if (o == O_DONE)
			len = USED_LEN(used_seen++);
		expect_status("short_header", "ioerr", 1, o, len);
	}
	/* More data segments than seg_max (all the same 512-byte buffer). */
	if (up_for("seg_max_exceeded", true)) {
		u32 segs = mmio_read32(dev.device + 12), n = segs + 2;

		if (n + 2 > sizeof(bigtab) / sizeof(bigtab[0])) {
			report("seg_max_exceeded", "ioerr", "seg_max too large for this test");
		} else {
			set_desc(bigtab, 0, (u64)hdr, 16, D_NEXT, 1);
			for (u32 i = 1; i <= n; i++)
				set_desc(bigtab, (int)i, (u64)hostile, 512, D_NEXT, (u16)(i + 1));
			set_desc(bigtab, (int)n + 1, (u64)&st, 1, D_WRITE, 0);
			set_desc(RING_DESC, 0, (u64)bigtab, (n + 2) * 16, D_INDIRECT, 0);
			post(0);
			o = wait_used(2000000);
			if (o == O_DONE)
				len = USED_LEN(used_seen++);
			expect_status("seg_max_exceeded", "ioerr", 1, o, len);
		}
	}
	if (dev.ro && up_for("ro_write", false)) {
		o = rw_request(T_OUT, PATTERN_SECTOR, (u64)hostile, 512, &len);
		expect_status("ro_write", "ioerr", 1, o, len);
	}
	/* No device-writable descriptor: kvmbox documents "returned with length
	 * 0" (blk.h); the device must stay usable. */
	if (up_for("no_status", false)) {
		set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(RING_DESC, 1, (u64)hostile, 512, 0, 0);
		post(0);
		o = wait_used(2000000);
		if (o != O_DONE)
			report("no_status", "used_len0", outcome_name(o));
		else if (USED_ID(used_seen) != 0 || USED_LEN(used_seen) != 0)
			report("no_status", "used_len0", "wrong used id or length");
		else if (status_get() & S_NEEDS_RESET)
			report("no_status", "used_len0", "NEEDS_RESET set as well");
		else
			report("no_status", "used_len0", NULL);
	}
}

/* Rings placed badly: DRIVER_OK must give NEEDS_RESET, and a valid request
 * on what rings there are must not be served. */
static void case_bad_rings(const char *name, u64 desc, u64 avail, u64 used)
{
	const char *why;

	if (!negotiate(1ULL << F_VERSION_1, &why)) {
		report(name, "needs_reset", why);
		return;
	}
	rings_clear();
	/* A valid read in our own rings in case the device uses them anyway. */
	set_hdr(T_IN, 0);
	st = 0xff;
	memset(buf, 0, sizeof(buf));
	set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
	set_desc(RING_DESC, 1, (u64)buf, 512, D_WRITE | D_NEXT, 2);
	set_desc(RING_DESC, 2, (u64)&st, 1, D_WRITE, 0);
	AVAIL_RING[0] = 0;
	AVAIL_IDX = 1;
	queue_program(QSZ, desc, avail, used);
	mmio_write16(dev.common + C_QENABLE, 1);
	status_set(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (!(status_get() & S_NEEDS_RESET)) {
		report(name, "needs_reset", "DRIVER_OK accepted");
		return;
	}
	kick();
	settle(100000);
	if (st != 0xff || buf[0])
		report(name, "needs_reset", "the request was served anyway");
	else
		report(name, "needs_reset", NULL);
}

static void register_cases(void)
{
	const char *why;
	u16 max, got[3];

	case_bad_rings("rings_hole", 0xd0000000ULL, RING_AVAIL, RING_USED);
	case_bad_rings("rings_wrap", (u64)RING_DESC, 0xfffffffffffffffeULL, RING_USED);
	case_bad_rings("rings_ram_end", (u64)RING_DESC, RING_AVAIL, dev.ram_end - 8);
	case_bad_rings("ring_misaligned", (u64)RING_DESC, RING_AVAIL, RING_USED + 2);

	/* Queue size: not a power of two, zero and too big are ignored. */
	if (!negotiate(1ULL << F_VERSION_1, &why)) {
		report("qsize_not_pow2", "ignored", why);
	} else {
		mmio_write16(dev.common + C_QSEL, 0);
		max = mmio_read16(dev.common + C_QSIZE);
		mmio_write16(dev.common + C_QSIZE, 12);
		got[0] = mmio_read16(dev.common + C_QSIZE);
		mmio_write16(dev.common + C_QSIZE, 0);
		got[1] = mmio_read16(dev.common + C_QSIZE);
		mmio_write16(dev.common + C_QSIZE, (u16)(max * 2));
		got[2] = mmio_read16(dev.common + C_QSIZE);
		mmio_write16(dev.common + C_QSIZE, QSZ); /* positive control */
		if (got[0] != max || got[1] != max || got[2] != max)
			report("qsize_not_pow2", "ignored", "a bad queue size was accepted");
		else if (mmio_read16(dev.common + C_QSIZE) != QSZ)
			report("qsize_not_pow2", "ignored", "a valid queue size was refused");
		else
			report("qsize_not_pow2", "ignored", NULL);
	}

	/* Features not offered (bit 0: legacy BARRIER; bit 63), then no VERSION_1:
	 * FEATURES_OK must not stick, and DRIVER_OK must not start the queue. */
	static const u64 bad_features[2] = { 1ULL << F_VERSION_1 | 1 | 1ULL << 63, 0 };
	static const char *const names[2] = { "features_unoffered", "features_no_version1" };

	for (int k = 0; k < 2; k++) {
		if (negotiate(bad_features[k], &why)) {
			report(names[k], "refused", "FEATURES_OK stuck");
			continue;
		}
		rings_clear();
		set_hdr(T_IN, 0);
		st = 0xff;
		memset(buf, 0, sizeof(buf));
		set_desc(RING_DESC, 0, (u64)hdr, 16, D_NEXT, 1);
		set_desc(RING_DESC, 1, (u64)buf, 512, D_WRITE | D_NEXT, 2);
		set_desc(RING_DESC, 2, (u64)&st, 1, D_WRITE, 0);
		queue_program(QSZ, (u64)RING_DESC, RING_AVAIL, RING_USED);
		mmio_write16(dev.common + C_QENABLE, 1);
		status_set(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
		post(0);
		settle(100000);
		if (status_get() & S_FEATURES_OK)
			report(names[k], "refused", "FEATURES_OK set on a later status write");
		else if (st != 0xff || USED_IDX != 0)
			report(names[k], "refused", "the queue ran without FEATURES_OK");
		else
			report(names[k], "refused", NULL);
	}

	/* Requests in flight at a reset: nothing may reach the rings after it. */
	if (!dev_up(false, &why)) {
		report("reset_inflight", "quiet", why);
	} else {
		static u8 rbuf[QSZ / 3][512] __attribute__((aligned(16)));
		static u8 rst[QSZ / 3];
		u32 dirty = 0;

		/* QSZ / 3 valid reads (header, data, status) in flight, then reset. */
		set_hdr(T_IN, 0);
		for (int i = 0; i < QSZ / 3; i++) {
			rst[i] = 0xff;
			set_desc(RING_DESC, 3 * i, (u64)hdr, 16, D_NEXT, (u16)(3 * i + 1));
			set_desc(RING_DESC, 3 * i + 1, (u64)rbuf[i], 512, D_WRITE | D_NEXT, (u16)(3 * i + 2));
			set_desc(RING_DESC, 3 * i + 2, (u64)&rst[i], 1, D_WRITE, 0);
			AVAIL_RING[i] = (u16)(3 * i);
		}
		barrier();
		AVAIL_IDX = QSZ / 3;
		kick();
		if (!reset_dev())
			fail("status does not read 0 after a reset with requests in flight");
		rings_clear();
		settle(100000);
		for (u32 i = 0; i < sizeof(ringmem); i++)
			dirty |= ringmem[i];
		report("reset_inflight", "quiet", dirty ? "the rings were written after the reset" : NULL);
	}

	/* The device configuration of a block device is read-only. */
	if (!dev_up(false, &why)) {
		report("devcfg_readonly", "ignored", why);
	} else {
		mmio_write32(dev.device, 0xffffffff);
		mmio_write32(dev.device + 4, 0x7fffffff);
		u64 c1 = mmio_read32(dev.device) | (u64)mmio_read32(dev.device + 4) << 32;
		u32 len = 0;
		enum outcome o;

		/* Whatever it reports, the device must still check the real size. */
		o = rw_request(T_OUT, dev.capacity, (u64)hostile, 512, &len);
		if (o != O_DONE || st != 1) {
			report("devcfg_readonly", "ignored",
			       "a write past the real capacity was not refused");
			return;
		}
		reset_dev();
		u64 c2 = mmio_read32(dev.device) | (u64)mmio_read32(dev.device + 4) << 32;

		if (c1 != dev.capacity || c2 != dev.capacity) {
			gprintf("virtio_hostile: capacity after a guest write %lx, after a reset %lx\n", c1,
				c2);
			report("devcfg_readonly", "ignored",
			       "the guest changed the capacity the device reports");
		} else {
			report("devcfg_readonly", "ignored", NULL);
		}
	}

	/* Queue addresses are frozen once the queue is enabled. */
	if (!dev_up(false, &why)) {
		report("queue_frozen", "ignored", why);
	} else {
		w64(C_QDESC, 0xd0000000ULL);
		mmio_write16(dev.common + C_QSIZE, 2);
		if (r64(C_QDESC) != (u64)RING_DESC || mmio_read16(dev.common + C_QSIZE) != QSZ)
			report("queue_frozen", "ignored", "an enabled queue was reprogrammed");
		else if (!read_sector0(&why))
			report("queue_frozen", "ignored", why);
		else
			report("queue_frozen", "ignored", NULL);
	}
}

/* ---- discovery ---- */

static bool find_device(void)
{
	for (u32 slot = 0; slot < 32; slot++) {
		for (u32 fn = 0; fn < 8; fn++) {
			pci_bdf = slot << 11 | fn << 8;
			u32 id = cfg32(0);

			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if ((id & 0xffff) == VENDOR_VIRTIO && (id >> 16) == DEVICE_VIRTIO_BLK) {
				gprintf("virtio_hostile: virtio-blk at 00:%02x.%u\n", slot, fn);
				return true;
			}
			if (fn == 0 && !(cfg8(0x0e) & 0x80))
				break; /* single function */
		}
	}
	return false;
}

/* Address and size of memory BAR b (sized with decoding off). */
static bool bar_info(u32 b, u64 *addr, u64 *size)
{
	u32 reg = 0x10 + 4 * b, lo = cfg32(reg), hi = 0, mlo, mhi = 0xffffffff;
	bool is64 = ((lo >> 1) & 3) == 2;

	if (b > 5 || (lo & 1) || (is64 && b == 5))
		return false;
	cfg_w32(reg, 0xffffffff);
	mlo = cfg32(reg);
	cfg_w32(reg, lo);
	if (is64) {
		hi = cfg32(reg + 4);
		cfg_w32(reg + 4, 0xffffffff);
		mhi = cfg32(reg + 4);
		cfg_w32(reg + 4, hi);
	}
	*addr = (lo & ~0xfULL) | (u64)hi << 32;
	*size = ~(((u64)mhi << 32) | (mlo & ~0xfu)) + 1;
	return true;
}

static void find_caps(void)
{
	u64 *slot[5] = { NULL, &dev.common, &dev.notify_base, &dev.isr, &dev.device };
	u32 ptr, n = 0;

	if (!(cfg32(0x04) >> 16 & 0x10))
		fail("no capability list");
	for (ptr = cfg8(0x34) & 0xfc; ptr && n < 48; ptr = cfg8(ptr + 1) & 0xfc, n++) {
		u8 type, b;
		u32 off, len;
		u64 addr, size;

		if (ptr < 0x40 || cfg8(ptr) != 0x09)
			continue;
		type = cfg8(ptr + 3);
		if (type < CAP_COMMON || type > CAP_DEVICE || *slot[type])
			continue; /* first of each type only; PCI_CFG unused */
		b = cfg8(ptr + 4);
		off = cfg32(ptr + 8);
		len = cfg32(ptr + 12);
		if (!bar_info(b, &addr, &size))
			fail("virtio cap type %u points at unusable BAR %u", type, b);
		if ((u64)off + len > size)
			fail("virtio cap type %u: 0x%x+0x%x beyond BAR %u (size 0x%lx)", type, off, len, b,
			     size);
		if (addr == 0 || addr + size > 0x100000000ULL)
			fail("BAR %u at 0x%lx is not below 4 GiB (the guest maps only that)", b, addr);
		*slot[type] = addr + off;
		if (type == CAP_NOTIFY)
			dev.notify_mult = cfg32(ptr + 16);
		gprintf("virtio_hostile: cap %u bar %u off 0x%x len 0x%x\n", type, b, off, len);
	}
	if (!dev.common || !dev.notify_base || !dev.isr || !dev.device)
		fail("virtio caps missing (common %lx notify %lx isr %lx device %lx)", dev.common,
		     dev.notify_base, dev.isr, dev.device);
}

/* End of the RAM region that holds our image (rings live there). */
static u64 ram_end_of(struct hvm_start_info *si)
{
	struct mm {
		u64 addr, size;
		u32 type, reserved;
	};
	const struct mm *m = (const struct mm *)si->memmap_paddr;
	u64 me = (u64)ringmem;

	if (si->version < 1 || !si->memmap_paddr)
		fail("no PVH memory map");
	for (u32 i = 0; i < si->memmap_entries; i++)
		if (m[i].type == 1 && m[i].addr <= me && me < m[i].addr + m[i].size)
			return m[i].addr + m[i].size;
	fail("our image is not in a RAM entry of the memory map");
}

void guest_main(struct hvm_start_info *si)
{
	const char *why;
	u64 feat;
	u32 len = 0, sum = 0;
	enum outcome o;

	guest_init(si);
	lapic_enable();
	watchdog_start(); /* interrupts stay off: only its clock is used */
	dev.ro = cmdline_has("ro");
	dev.ram_end = ram_end_of(si);
	for (u32 i = 0; i < sizeof(hostile); i++)
		hostile[i] = "HOSTILE!"[i % 8];

	if (!find_device())
		fail("no virtio-blk (1af4:1042) on bus 0");
	find_caps();
	cfg_w16(0x04, (u16)(cfg32(0x04) | 0x6)); /* memory decoding, bus master */

	/* Offered features and capacity. */
	if (!reset_dev())
		fail("device status does not read 0 after a reset");
	mmio_write32(dev.common + C_DFSEL, 0);
	feat = mmio_read32(dev.common + C_DF);
	mmio_write32(dev.common + C_DFSEL, 1);
	feat |= (u64)mmio_read32(dev.common + C_DF) << 32;
	gprintf("virtio_hostile: features %lx ro %u\n", feat, (u32)(feat >> F_BLK_RO & 1));
	if (!(feat >> F_VERSION_1 & 1) || !(feat >> F_INDIRECT & 1))
		fail("VERSION_1 or INDIRECT_DESC not offered");
	if ((feat >> F_BLK_RO & 1) != dev.ro)
		fail("VIRTIO_BLK_F_RO is %u, expected %u", (u32)(feat >> F_BLK_RO & 1), dev.ro);
	dev.capacity = mmio_read32(dev.device) | (u64)mmio_read32(dev.device + 4) << 32;
	gprintf("virtio_hostile: capacity %lu sectors\n", dev.capacity);
	if (dev.capacity != (u64)cmdline_int("cap", 2048))
		fail("capacity %lu, expected %ld", dev.capacity, cmdline_int("cap", 2048));

	if (!dev_up(false, &why) || !read_sector0(&why))
		fail("valid read of sector 0: %s", why);
	for (int i = 0; i < 512; i++)
		sum = sum * 31 + buf[i];
	buf[11] = 0;
	gprintf("virtio_hostile: sector 0 \"%s\" checksum %08x\n", (const char *)buf, sum);

	chain_cases();
	indirect_cases();
	request_cases();
	register_cases();

	/* The one intended change: the pattern in sector 8, read back. */
	if (!dev.ro) {
		static u8 pattern[512] __attribute__((aligned(16)));

		for (int i = 0; i < 512; i++)
			pattern[i] = (u8)(i * 13 + 0x5a);
		if (!dev_up(false, &why))
			fail("final bring-up: %s", why);
		o = rw_request(T_OUT, PATTERN_SECTOR, (u64)pattern, 512, &len);
		if (o != O_DONE || st != 0 || len != 1)
			fail("write of sector 8: %s, status %u, len %u", outcome_name(o), st, len);
		memset(buf, 0, sizeof(buf));
		o = rw_request(T_IN, PATTERN_SECTOR, (u64)buf, 512, &len);
		if (o != O_DONE || st != 0 || len != 513 || memcmp(buf, pattern, 512))
			fail("read back of sector 8: %s, status %u, len %u", outcome_name(o), st, len);
		gprintf("virtio_hostile: sector 8 written and read back\n");
	}
	reset_dev();
	gprintf("virtio_hostile: %d case failures\n", failures);
	gprintf("virtio_hostile: done\n");
	poweroff();
}
