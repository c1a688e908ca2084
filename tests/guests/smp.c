/* smp.c - bring up every AP the MADT lists with INIT/SIPI through a real-mode
 * trampoline; each CPU prints "cpu N up" (N = its APIC id) under a spinlock.
 * cpus=N on the command line is the count the runner asked kvmbox for. */
#include "guest.h"

extern char tramp_start[], tramp_end[];

extern volatile u64 ap_stack_top; /* read by ap_entry64 in start.S */
static u8 ap_stacks[MAX_CPUS][8192] __attribute__((aligned(16)));
static volatile int print_lock;
static volatile int cpus_up;
static volatile int ap_started;

static void announce(void)
{
	u32 id = apic_id_cpuid();

	spin_lock(&print_lock);
	gprintf("cpu %u up\n", id);
	cpus_up++;
	spin_unlock(&print_lock);
}

void ap_main(void)
{
	idt_load();
	lapic_enable();
	ap_started = 1; /* the BSP may now reuse the temporary stack for the next AP */
	announce();
	halt_forever();
}

static bool wait_started(u64 us)
{
	u64 t0 = clock_us();

	while (clock_us() - t0 < us) {
		if (ap_started)
			return true;
		cpu_relax();
	}
	return ap_started;
}

void guest_main(struct hvm_start_info *si)
{
	struct madt_info mi;

	guest_init(si);
	pic_mask_all();
	lapic_enable();
	watchdog_start();

	long want = cmdline_int("cpus", -1);
	u32 bsp = apic_id_cpuid();

	if (!acpi_read_madt(&mi))
		fail("cannot read the MADT");
	gprintf("smp: madt lists %d cpus, bsp apic %u\n", mi.ncpus, bsp);
	if (want > 0 && mi.ncpus != want)
		fail("MADT lists %d CPUs, cpus=%ld", mi.ncpus, want);
	if ((lapic_read(LAPIC_ID) >> 24) != bsp)
		fail("LAPIC ID register %x disagrees with CPUID apic id %u", lapic_read(LAPIC_ID), bsp);

	announce();
	memcpy((void *)TRAMP_BASE, tramp_start, (size_t)(tramp_end - tramp_start));

	int ap = 0;

	for (int i = 0; i < mi.ncpus; i++) {
		u32 id = mi.apic_ids[i];

		if (id == bsp)
			continue;
		ap_started = 0;
		ap_stack_top = (u64)&ap_stacks[ap++][sizeof(ap_stacks[0])];
		barrier();
		if (!lapic_send_ipi(id, 0x4500)) /* INIT, level assert */
			fail("INIT to apic %u not delivered", id);
		/* SIPI, and once more if the AP has not shown up (as the MP spec says). */
		bool ok = false;

		for (int tries = 0; tries < 2 && !ok; tries++) {
			if (!lapic_send_ipi(id, 0x4600 | (TRAMP_BASE >> 12)))
				fail("SIPI to apic %u not delivered", id);
			ok = wait_started(tries ? 5000000 : 500000);
		}
		if (!ok)
			fail("apic %u did not start after INIT+SIPI+SIPI", id);
	}

	u64 t0 = clock_us();

	while (cpus_up < mi.ncpus) {
		if (clock_us() - t0 > 10000000)
			fail("only %d of %d CPUs announced themselves", cpus_up, mi.ncpus);
		cpu_relax();
	}
	spin_lock(&print_lock);
	gprintf("smp: all %d cpus up\n", cpus_up);
	spin_unlock(&print_lock);
	poweroff();
}
