/* lib.c - console, command line, interrupts, APIC, CMOS and ACPI helpers
 * shared by the test guests. */
#include "guest.h"

struct idt_entry {
	u16 off_lo;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off_mid;
	u32 off_hi;
	u32 zero;
} __attribute__((packed));

struct idt_ptr {
	u16 limit;
	u64 base;
} __attribute__((packed));

extern char isr_stubs[];

static struct idt_entry idt[256] __attribute__((aligned(16)));
static irq_handler_t handlers[256];
static const char *the_cmdline = "";
static volatile int console_lock;
static bool on_qemu; /* "qemu" on the command line: use QEMU's power-off/reset ports */
static u64 rsdp_addr;

/* ---- strings ---- */

void *memset(void *d, int c, size_t n)
{
	u8 *p = d;

	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	u8 *p = d;
	const u8 *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *p = a, *q = b;

	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (u8)*a - (u8)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

/* ---- console ---- */

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts */
	outb(COM1 + 3, 0x80); /* LCR: DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xc7); /* FIFO on, clear both, 14-byte trigger */
	outb(COM1 + 4, 0x03); /* DTR | RTS */
}

void serial_putc(char c)
{
	/* Bounded: a UART that never reports THRE must not hang the guest silently. */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		cpu_relax();
	outb(COM1, (u8)c);
}

static void put_str(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

static void put_num(u64 v, unsigned base, bool neg, int width, char pad)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	for (int i = n; i < width; i++)
		serial_putc(pad);
	while (n)
		serial_putc(buf[--n]);
}

void gvprintf(const char *fmt, va_list ap)
{
	spin_lock(&console_lock);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;

		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			put_str(s ? s : "(null)");
			break;
		}
		case 'c':
			serial_putc((char)va_arg(ap, int));
			break;
		case 'd': {
			long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			put_num(v < 0 ? -(u64)v : (u64)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			u64 v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			put_num(v, *fmt == 'u' ? 10 : 16, false, width, pad);
			break;
		}
		case 'p':
			put_str("0x");
			put_num((u64)va_arg(ap, void *), 16, false, width, pad);
			break;
		case '%':
			serial_putc('%');
			break;
		default:
			serial_putc('%');
			serial_putc(*fmt);
			if (!*fmt)
				fmt--;
			break;
		}
	}
	spin_unlock(&console_lock);
}

void gprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
}

/* ---- command line ---- */

const char *cmdline(void)
{
	return the_cmdline;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

const char *cmdline_get(const char *key)
{
	size_t kl = strlen(key);
	const char *p = the_cmdline;

	while (*p) {
		while (is_space(*p))
			p++;
		if (!strncmp(p, key, kl)) {
			if (p[kl] == '=')
				return p + kl + 1;
			if (p[kl] == 0 || is_space(p[kl]))
				return p + kl;
		}
		while (*p && !is_space(*p))
			p++;
	}
	return NULL;
}

bool cmdline_has(const char *key)
{
	return cmdline_get(key) != NULL;
}

long parse_long(const char *s)
{
	long v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

long cmdline_int(const char *key, long def)
{
	const char *v = cmdline_get(key);

	return (v && *v >= '0' && *v <= '9') ? parse_long(v) : def;
}

/* ---- interrupts ---- */

void idt_load(void)
{
	struct idt_ptr p = { sizeof(idt) - 1, (u64)idt };

	__asm__ volatile("lidt %0" : : "m"(p));
}

static void idt_init(void)
{
	for (int i = 0; i < 256; i++) {
		u64 a = (u64)isr_stubs + 16 * i;

		idt[i].off_lo = a & 0xffff;
		idt[i].sel = 0x18;
		idt[i].ist = 0;
		idt[i].type = 0x8e; /* present, DPL 0, interrupt gate */
		idt[i].off_mid = (a >> 16) & 0xffff;
		idt[i].off_hi = a >> 32;
		idt[i].zero = 0;
	}
	idt_load();
}

void irq_set_handler(int vec, irq_handler_t h)
{
	handlers[vec] = h;
}

void isr_dispatch(struct irq_frame *f);
void isr_dispatch(struct irq_frame *f)
{
	if (handlers[f->vector]) {
		handlers[f->vector](f);
		return;
	}
	if (f->vector == VEC_SPURIOUS)
		return;
	if (f->vector < 32) {
		u64 cr2;

		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		gprintf("ERROR: exception %lu error %lx at rip %lx cr2 %lx (apic %u)\n", f->vector, f->error,
			f->rip, cr2, apic_id_cpuid());
		triple_fault();
	}
	gprintf("ERROR: unexpected interrupt vector %lu (apic %u)\n", f->vector, apic_id_cpuid());
	lapic_eoi();
}

void guest_init(struct hvm_start_info *si)
{
	serial_init();
	idt_init();
	if (si && si->magic == HVM_START_MAGIC && si->cmdline_paddr)
		the_cmdline = (const char *)si->cmdline_paddr;
	on_qemu = cmdline_has("qemu");
	if (si && si->magic == HVM_START_MAGIC)
		rsdp_addr = si->rsdp_paddr;
	if (!si || si->magic != HVM_START_MAGIC)
		fail("bad hvm_start_info at %p (magic %x)", si, si ? si->magic : 0);
}

/* ---- machine control ---- */

static void short_delay(void)
{
	/* A few million emulated instructions at most: long enough for the VMM to
	 * act on an exit it has already taken, short enough not to stall a test. */
	for (volatile int i = 0; i < 300000; i++)
		cpu_relax();
}

void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void triple_fault(void)
{
	struct idt_ptr p = { 0, 0 };

	__asm__ volatile("lidt %0; int3" : : "m"(p));
	halt_forever();
}

void poweroff(void)
{
	if (on_qemu)
		outl(0xf4, 0); /* isa-debug-exit, if the runner added it */
	else
		outw(0x604, (5 << 10) | (1 << 13)); /* PM1a_CNT: SLP_TYP=S5, SLP_EN */
	short_delay();
	gprintf("ERROR: still running after the ACPI power-off write\n");
	triple_fault();
}

void reset_i8042(void)
{
	for (int i = 0; i < 10000 && (inb(0x64) & 0x02); i++)
		cpu_relax();
	outb(0x64, 0xfe);
	short_delay();
	gprintf("ERROR: still running after the i8042 reset command\n");
	triple_fault();
}

void reset_acpi(void)
{
	if (on_qemu)
		outb(0xcf9, 0x06);
	else
		outb(0x608, 0x01);
	short_delay();
	gprintf("ERROR: still running after the ACPI reset register write\n");
	triple_fault();
}

void fail(const char *fmt, ...)
{
	va_list ap;

	gprintf("ERROR: ");
	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
	gprintf("\n");
	poweroff();
}

void pic_mask_all(void)
{
	/* Initialise both 8259s (vectors 0x20/0x28, cascade on IRQ2), then mask everything. */
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

/* ---- local APIC / IOAPIC ---- */

void lapic_enable(void)
{
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_LINT0, 0x10000 | 0x700); /* masked ExtINT */
	lapic_write(LAPIC_LVT_ERROR, 0x10000);
}

u32 apic_id_cpuid(void)
{
	u32 a, b, c, d;

	cpuid(1, 0, &a, &b, &c, &d);
	return b >> 24;
}

bool lapic_send_ipi(u32 apic_id, u32 icr_lo)
{
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr_lo);
	for (int i = 0; i < 100000; i++) {
		if (!(lapic_read(LAPIC_ICR_LO) & (1 << 12)))
			return true;
		cpu_relax();
	}
	return false;
}

static void watchdog_irq(struct irq_frame *f)
{
	fail("watchdog: the LAPIC timer expired (~34 s) before the test finished");
}

void watchdog_start(void)
{
	irq_set_handler(VEC_WATCHDOG, watchdog_irq);
	lapic_write(LAPIC_LVT_TIMER, VEC_WATCHDOG); /* one-shot, unmasked */
	lapic_write(LAPIC_TDCR, 0x2);               /* divide by 8 */
	lapic_write(LAPIC_TMICT, 0xffffffff);
}

u64 clock_us(void)
{
	/* KVM and QEMU both run the APIC timer from a 1 GHz bus clock: 125 ticks per us. */
	return (0xffffffffULL - lapic_read(LAPIC_TMCCT)) / 125;
}

static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void ioapic_route(u32 pin, u8 vector, u32 dest_apic, bool level, bool active_low)
{
	u32 lo = vector | (level ? 1u << 15 : 0) | (active_low ? 1u << 13 : 0);

	ioapic_write(0x11 + 2 * pin, dest_apic << 24);
	ioapic_write(0x10 + 2 * pin, lo);
}

void ioapic_mask(u32 pin)
{
	ioapic_write(0x10 + 2 * pin, 1u << 16);
}

/* ---- CMOS ---- */

u8 cmos_read(u8 idx)
{
	outb(0x70, idx);
	return inb(0x71);
}

void cmos_write(u8 idx, u8 v)
{
	outb(0x70, idx);
	outb(0x71, v);
}

/* ---- ACPI ---- */

struct sdt_header {
	char sig[4];
	u32 length;
	u8 revision;
	u8 checksum;
	char oem[6];
	char oem_table[8];
	u32 oem_rev;
	u32 creator;
	u32 creator_rev;
} __attribute__((packed));

static bool checksum_ok(const void *p, u32 len)
{
	const u8 *b = p;
	u8 sum = 0;

	for (u32 i = 0; i < len; i++)
		sum += b[i];
	return sum == 0;
}

static const u8 *find_rsdp(void)
{
	if (rsdp_addr)
		return (const u8 *)rsdp_addr;
	for (u64 a = 0xe0000; a < 0x100000; a += 16)
		if (!memcmp((const void *)a, "RSD PTR ", 8) && checksum_ok((const void *)a, 20))
			return (const u8 *)a;
	return NULL;
}

bool acpi_read_madt(struct madt_info *mi)
{
	const u8 *rsdp = find_rsdp();
	const struct sdt_header *root, *madt = NULL;
	u32 xsdt_lo, xsdt_hi, rsdt;
	bool x;

	memset(mi, 0, sizeof(*mi));
	if (!rsdp) {
		gprintf("ERROR: no RSDP\n");
		return false;
	}
	memcpy(&rsdt, rsdp + 16, 4);
	memcpy(&xsdt_lo, rsdp + 24, 4);
	memcpy(&xsdt_hi, rsdp + 28, 4);
	x = rsdp[15] >= 2 && (xsdt_lo || xsdt_hi);
	root = (const struct sdt_header *)(x ? ((u64)xsdt_hi << 32 | xsdt_lo) : rsdt);
	if (memcmp(root->sig, x ? "XSDT" : "RSDT", 4) || !checksum_ok(root, root->length)) {
		gprintf("ERROR: bad %s at %p\n", x ? "XSDT" : "RSDT", root);
		return false;
	}
	u32 esz = x ? 8 : 4;
	u32 n = (root->length - sizeof(*root)) / esz;

	for (u32 i = 0; i < n; i++) {
		u64 a = 0;

		memcpy(&a, (const u8 *)(root + 1) + i * esz, esz);
		const struct sdt_header *t = (const struct sdt_header *)a;

		if (!memcmp(t->sig, "APIC", 4)) {
			madt = t;
			break;
		}
	}
	if (!madt || !checksum_ok(madt, madt->length)) {
		gprintf("ERROR: %s MADT\n", madt ? "bad checksum in" : "no");
		return false;
	}
	const u8 *p = (const u8 *)madt + sizeof(*madt) + 8; /* skip LAPIC address + flags */
	const u8 *end = (const u8 *)madt + madt->length;

	while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
		if (p[0] == 0 && p[1] >= 8) { /* Processor Local APIC */
			u32 flags;

			memcpy(&flags, p + 4, 4);
			if ((flags & 1) && mi->ncpus < MAX_CPUS)
				mi->apic_ids[mi->ncpus++] = p[3];
		} else if (p[0] == 2 && p[1] >= 10 && p[3] < 16) { /* Interrupt Source Override */
			mi->have_iso[p[3]] = true;
			memcpy(&mi->iso_gsi[p[3]], p + 4, 4);
			memcpy(&mi->iso_flags[p[3]], p + 8, 2);
		}
		p += p[1];
	}
	return true;
}

u32 isa_irq_gsi(const struct madt_info *mi, int irq, bool *level, bool *active_low)
{
	*level = false;
	*active_low = false;
	if (!mi->have_iso[irq])
		return irq;
	u16 f = mi->iso_flags[irq];

	*active_low = (f & 3) == 3;
	*level = ((f >> 2) & 3) == 3;
	return mi->iso_gsi[irq];
}

u8 rtc_seconds_raw(void)
{
	for (int i = 0; i < 100000 && (cmos_read(0x0a) & 0x80); i++)
		cpu_relax();
	return cmos_read(0x00);
}

u32 count_per_rtc_second(volatile u32 *counter, u64 limit)
{
	u8 s0 = rtc_seconds_raw(), s;
	u32 c0;

	/* Wake on each interrupt and look at the RTC: from one seconds edge to the next. */
	while ((s = rtc_seconds_raw()) == s0) {
		wait_for_irq();
		if (*counter > limit)
			fail("counter passed %lu before the RTC seconds changed", limit);
	}
	c0 = *counter;
	while (rtc_seconds_raw() == s) {
		wait_for_irq();
		if (*counter - c0 > limit)
			fail("counter passed %lu in one RTC second", limit);
	}
	return *counter - c0;
}

/* AP hand-off used by start.S; tests that start APs override ap_main. */
volatile u64 ap_stack_top;

__attribute__((weak)) void ap_main(void)
{
	halt_forever();
}
