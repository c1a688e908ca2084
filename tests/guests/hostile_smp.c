/* hostile_smp.c - every vCPU at once hammers what a hostile guest reaches: PCI config cycles
 * through 0xcf8/0xcfc (random functions, offsets and widths, so each CPU's address/data pairs
 * race with the others'; writes to BARs, COMMAND and the MSI-X control word), the virtio-pci
 * MSI-X table and PBA, unassigned MMIO and ports; a bounded number of accesses per CPU. Then
 * the BSP turns every function's decoding off and every CPU checks that unassigned MMIO and
 * ports read all-ones (writes dropped); the BSP checks absent PCI functions read all-ones and
 * the present ones still answer with their ids. Needs a virtio-pci device with MSI-X (--rng).
 * Command line: cpus=N (the count asked for), iters=N (accesses per CPU). */
#include "guest.h"

extern char tramp_start[], tramp_end[];
extern volatile u64 ap_stack_top; /* read by ap_entry64 in start.S */
static u8 ap_stacks[MAX_CPUS][8192] __attribute__((aligned(16)));
static volatile int print_lock, ap_started, go, hammered, check, checked;
static long iters;
static struct madt_info mi;
static u32 bsp;

/* A waiting AP halts (the BSP wakes it with this IPI) instead of spinning: the vCPUs still
 * hammering keep the host CPUs, which the emulated host has fewer of than this guest's vCPUs. */
#define VEC_WAKE 0x40

static void wake_irq(struct irq_frame *f)
{
	(void)f;
	lapic_eoi();
}

static void wait_woken(volatile int *flag)
{
	while (!*flag)
		wait_for_irq(); /* sti; hlt: no wake-up lost in between */
}

static void wake_aps(void)
{
	for (int i = 0; i < mi.ncpus; i++)
		if (mi.apic_ids[i] != bsp && !lapic_send_ipi(mi.apic_ids[i], VEC_WAKE))
			fail("wake-up IPI to apic %u not delivered", mi.apic_ids[i]);
}

/* The functions present on bus 0, found before the hammering. */
struct fn {
	u32 bdf;
	u32 id;
	u8 msix; /* config offset of the MSI-X capability, 0 if none */
};
static struct fn fns[32];
static int nfns;
static u64 msix_table, msix_pba;
static u32 msix_entries;

/* Unassigned while no BAR decodes there: the 32-bit PCI window (its last page is just below the
 * ECAM window at 0xfeb00000), above RAM (64M), around the IOAPIC; ports no device claims. BAR writes below stay in 0xc8000000..0xc8ffffff. */
static const u64 ummio[] = { 0xd0000000, 0xe0000000, 0xfeaff000, 0xfed00000, 0x3f000000 };
static const u16 uports[] = { 0x100, 0x2e8, 0x1234, 0x5658, 0x9000, 0xfff8 };

static u32 pci_addr(u32 bdf, u32 reg)
{
	return 0x80000000u | bdf | (reg & 0xfc);
}

static u32 cfg32(u32 bdf, u32 reg)
{
	outl(0xcf8, pci_addr(bdf, reg));
	return inl(0xcfc);
}

static u8 cfg8(u32 bdf, u32 reg)
{
	outl(0xcf8, pci_addr(bdf, reg));
	return inb((u16)(0xcfc + (reg & 3)));
}

static void cfg_w16(u32 bdf, u32 reg, u16 v)
{
	outl(0xcf8, pci_addr(bdf, reg));
	outw((u16)(0xcfc + (reg & 2)), v);
}

static u64 rnd(u64 *s)
{
	u64 x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* A value for a BAR register: sizing, zero, or somewhere low in the PCI window. */
static u32 bar_value(u64 r)
{
	switch (r % 3) {
	case 0:
		return 0xffffffff;
	case 1:
		return 0;
	}
	/* Never where the functions' BARs were put (0xc0000000 on): the MSI-X table's address, found
	 * before the hammering, then decodes to that table or to nothing, never to another
	 * function's virtio registers. Random writes there could enable a queue at a random ring
	 * address, and the device's writes (virtio-rng: random bytes) land in this guest's page
	 * tables: a guest that shot itself (seen once under ASan: a triple fault), not a test of
	 * kvmbox. */
	return 0xc8000000u | ((u32)(r >> 8) & 0x00fff000u);
}

/* One config cycle: a random function (present or not), offset and width. */
static void hammer_config(u64 *s)
{
	u64 r = rnd(s);
	u32 bdf = (r & 3) ? fns[(r >> 2) % (u64)nfns].bdf : (u32)((r >> 8) & 0x1ff00);
	u32 reg = (u32)(r >> 24) & 0xff, w = 1u << ((r >> 32) % 3);
	u32 v = (u32)(r >> 34);
	u16 port;

	reg &= ~(w - 1);
	port = (u16)(0xcfc + (reg & 3));
	/* A BAR (or the ROM BAR) gets only whole values that keep it out of the checked ranges. */
	if (((reg >= 0x10 && reg < 0x28) || (reg >= 0x30 && reg < 0x34)) && w != 4)
		w = 0; /* read it whole instead */
	if ((reg >= 0x10 && reg < 0x28) || (reg >= 0x30 && reg < 0x34))
		v = bar_value(r >> 40);
	outl(0xcf8, pci_addr(bdf, reg));
	if (!(r & (1ULL << 63)) || w == 0) {
		(void)inl(0xcfc);
		(void)inb(port);
		return;
	}
	if (w == 1)
		outb(port, (u8)v);
	else if (w == 2)
		outw(port, (u16)v);
	else
		outl(0xcfc, v);
}

/* A write aimed at a register that matters: COMMAND, a BAR, the MSI-X control word. */
static void hammer_registers(u64 *s)
{
	u64 r = rnd(s);
	const struct fn *f = &fns[(r >> 8) % (u64)nfns];

	switch (r % 3) {
	case 0:
		cfg_w16(f->bdf, 0x04, (u16)(r >> 16));
		break;
	case 1:
		outl(0xcf8, pci_addr(f->bdf, 0x10 + 4 * (u32)((r >> 16) % 6)));
		outl(0xcfc, bar_value(r >> 24));
		break;
	default:
		if (f->msix)
			cfg_w16(f->bdf, f->msix + 2u, (u16)(r >> 16));
		break;
	}
}

/* The MSI-X table (address, data, vector control of a random entry) or the PBA. */
static void hammer_msix(u64 *s)
{
	u64 r = rnd(s);
	u64 a;

	if (!msix_table)
		return;
	if (r & 1)
		a = msix_table + ((r >> 8) % (msix_entries * 16u) & ~3ULL);
	else
		a = msix_pba + ((r >> 8) % 16 & ~3ULL);
	if (r & 2)
		mmio_write32(a, (u32)(r >> 32));
	else
		(void)mmio_read32(a);
}

/* Unassigned ports and MMIO, any width; no value checked here (a BAR may be moved there). */
static void hammer_unassigned(u64 *s)
{
	u64 r = rnd(s);
	u16 p = uports[(r >> 8) % (sizeof(uports) / sizeof(uports[0]))];
	u64 a = ummio[(r >> 16) % (sizeof(ummio) / sizeof(ummio[0]))] + ((r >> 24) & 0xff8);

	switch (r % 4) {
	case 0:
		outw(p, (u16)(r >> 32));
		(void)inl(p);
		break;
	case 1:
		outb(p, (u8)(r >> 32));
		(void)inb(p);
		break;
	case 2:
		mmio_write32(a, (u32)(r >> 32));
		(void)mmio_read8(a + 3);
		break;
	default:
		*(volatile u64 *)a = r;
		(void)*(volatile u64 *)a;
		break;
	}
}

static void hammer(u32 id)
{
	u64 s = 0x9e3779b97f4a7c15ULL * (id + 1);

	for (long i = 0; i < iters; i++) {
		switch (rnd(&s) % 8) {
		case 0:
		case 1:
		case 2:
			hammer_config(&s);
			break;
		case 3:
			hammer_registers(&s);
			break;
		case 4:
		case 5:
			hammer_msix(&s);
			break;
		default:
			hammer_unassigned(&s);
			break;
		}
	}
	spin_lock(&print_lock);
	gprintf("hostile_smp: cpu %u hammered %ld accesses\n", id, iters);
	hammered++;
	spin_unlock(&print_lock);
}

/* With no BAR decoding: unassigned ports and MMIO read all-ones, before and after writes. */
static void check_unassigned(u32 id)
{
	for (size_t i = 0; i < sizeof(uports) / sizeof(uports[0]); i++) {
		u16 p = uports[i];

		outl(p, 0xa5a5a5a5);
		if (inb(p) != 0xff || inw(p) != 0xffff || inl(p) != 0xffffffff)
			fail("cpu %u: unassigned port %x does not read all ones", id, p);
	}
	for (size_t i = 0; i < sizeof(ummio) / sizeof(ummio[0]); i++) {
		u64 a = ummio[i] + 0x40 * id;

		mmio_write32(a, 0xdeadbeef);
		*(volatile u64 *)(a + 8) = 0x0123456789abcdefULL;
		if (mmio_read32(a) != 0xffffffff || mmio_read8(a + 1) != 0xff ||
		    *(volatile u64 *)(a + 8) != ~0ULL)
			fail("cpu %u: unassigned MMIO %lx does not read all ones", id, a);
	}
	spin_lock(&print_lock);
	checked++;
	spin_unlock(&print_lock);
}

void ap_main(void)
{
	u32 id = apic_id_cpuid();

	idt_load();
	lapic_enable();
	ap_started = 1;
	wait_woken(&go);
	hammer(id);
	wait_woken(&check);
	check_unassigned(id);
	halt_forever();
}

static void find_functions(void)
{
	for (u32 slot = 0; slot < 32; slot++) {
		for (u32 fn = 0; fn < 8; fn++) {
			u32 bdf = slot << 11 | fn << 8, id = cfg32(bdf, 0), n = 0;
			struct fn *f;

			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if (nfns == (int)(sizeof(fns) / sizeof(fns[0])))
				fail("more than %d PCI functions on bus 0", nfns);
			f = &fns[nfns++];
			f->bdf = bdf;
			f->id = id;
			if (cfg32(bdf, 0x04) >> 16 & 0x10) {
				for (u32 p = cfg8(bdf, 0x34) & 0xfc; p >= 0x40 && n < 48;
				     p = cfg8(bdf, p + 1) & 0xfc, n++)
					if (cfg8(bdf, p) == 0x11)
						f->msix = (u8)p;
			}
			if (fn == 0 && !(cfg8(bdf, 0x0e) & 0x80))
				break;
		}
	}
}

/* The first MSI-X table and PBA, with memory decoding on. */
static void find_msix(void)
{
	for (int i = 0; i < nfns && !msix_table; i++) {
		const struct fn *f = &fns[i];
		u32 t, p, bar, lo, hi = 0;

		if (!f->msix)
			continue;
		t = cfg32(f->bdf, f->msix + 4u);
		p = cfg32(f->bdf, f->msix + 8u);
		bar = t & 7;
		if (bar > 5 || (p & 7) != bar)
			continue;
		lo = cfg32(f->bdf, 0x10 + 4 * bar);
		if (((lo >> 1) & 3) == 2 && bar < 5)
			hi = cfg32(f->bdf, 0x14 + 4 * bar);
		if ((lo & 1) || hi || !(lo & ~0xfu))
			continue;
		cfg_w16(f->bdf, 0x04, (u16)(cfg32(f->bdf, 0x04) | 0x2));
		msix_table = (lo & ~0xfu) + (t & ~7u);
		msix_pba = (lo & ~0xfu) + (p & ~7u);
		msix_entries = (cfg32(f->bdf, f->msix) >> 16 & 0x7ff) + 1;
		gprintf("hostile_smp: msix of %x at %lx (%u entries), pba %lx\n", f->bdf, msix_table,
			msix_entries, msix_pba);
	}
	if (!msix_table)
		fail("no virtio-pci function with an MSI-X table in a memory BAR (run with --rng)");
}

static bool wait_flag(volatile int *flag, u64 us)
{
	u64 t0 = clock_us();

	while (clock_us() - t0 < us) {
		if (*flag)
			return true;
		cpu_relax();
	}
	return *flag;
}

void guest_main(struct hvm_start_info *si)
{
	int ap = 0;

	guest_init(si);
	pic_mask_all();
	lapic_enable();
	watchdog_start();
	irq_set_handler(VEC_WAKE, wake_irq);
	iters = cmdline_int("iters", 4000);
	bsp = apic_id_cpuid();
	if (!acpi_read_madt(&mi))
		fail("cannot read the MADT");
	if (cmdline_int("cpus", mi.ncpus) != mi.ncpus)
		fail("MADT lists %d CPUs, cpus=%ld", mi.ncpus, cmdline_int("cpus", -1));
	find_functions();
	find_msix();
	gprintf("hostile_smp: %d cpus, %d PCI functions, %ld accesses each\n", mi.ncpus, nfns, iters);

	memcpy((void *)TRAMP_BASE, tramp_start, (size_t)(tramp_end - tramp_start));
	for (int i = 0; i < mi.ncpus; i++) {
		u32 id = mi.apic_ids[i];
		bool ok = false;

		if (id == bsp)
			continue;
		ap_started = 0;
		ap_stack_top = (u64)&ap_stacks[ap++][sizeof(ap_stacks[0])];
		barrier();
		if (!lapic_send_ipi(id, 0x4500))
			fail("INIT to apic %u not delivered", id);
		for (int tries = 0; tries < 2 && !ok; tries++) {
			if (!lapic_send_ipi(id, 0x4600 | (TRAMP_BASE >> 12)))
				fail("SIPI to apic %u not delivered", id);
			ok = wait_flag(&ap_started, tries ? 5000000 : 500000);
		}
		if (!ok)
			fail("apic %u did not start", id);
	}

	go = 1;
	wake_aps();
	hammer(bsp);
	u64 t0 = clock_us();

	while (hammered < mi.ncpus) {
		if (clock_us() - t0 > 30000000)
			fail("only %d of %d CPUs finished hammering", hammered, mi.ncpus);
		cpu_relax();
	}

	/* Alone on the bus now: decoding off everywhere, then every CPU checks. */
	for (int i = 0; i < nfns; i++) {
		cfg_w16(fns[i].bdf, 0x04, 0);
		if (cfg32(fns[i].bdf, 0) != fns[i].id)
			fail("PCI %x reads id %x after the hammering, was %x", fns[i].bdf,
			     cfg32(fns[i].bdf, 0), fns[i].id);
		if (cfg32(fns[i].bdf, 0x04) & 0x7)
			fail("PCI %x still decodes after COMMAND was cleared", fns[i].bdf);
	}
	static const u32 absent[] = { 0x1ff00, 0x10000, 0xf800 | 0x700, 0xff0000 };

	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		bool there = false;

		for (int j = 0; j < nfns; j++)
			there |= fns[j].bdf == absent[i];
		if (!there && cfg32(absent[i], 0) != 0xffffffff)
			fail("absent PCI function %x reads %x, expected ffffffff", absent[i],
			     cfg32(absent[i], 0));
	}
	check = 1;
	wake_aps();
	check_unassigned(bsp);
	t0 = clock_us();
	while (checked < mi.ncpus) {
		if (clock_us() - t0 > 10000000)
			fail("only %d of %d CPUs finished the checks", checked, mi.ncpus);
		cpu_relax();
	}
	spin_lock(&print_lock);
	gprintf("hostile_smp: all %d cpus read all-ones from unassigned MMIO and ports\n", checked);
	gprintf("hostile_smp: OK\n");
	spin_unlock(&print_lock);
	poweroff();
}
