/* guest.h - shared helpers for the freestanding kvmbox test guests.
 *
 * The guests run in long mode on identity page tables set up by start.S, on
 * one or more vCPUs, with no libc. Everything here is deliberately simple and
 * uses general-purpose registers only (the emulated nested KVM on the test
 * host cannot run SSE).
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

/* Must match TRAMP_BASE in start.S: where the AP real-mode trampoline is copied. */
#define TRAMP_BASE 0x10000UL
#define MAX_CPUS   16

#define COM1        0x3f8
#define LAPIC_BASE  0xfee00000UL
#define IOAPIC_BASE 0xfec00000UL

#define LAPIC_ID        0x20
#define LAPIC_TPR       0x80
#define LAPIC_EOI       0xb0
#define LAPIC_SVR       0xf0
#define LAPIC_ESR       0x280
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TMICT     0x380
#define LAPIC_TMCCT     0x390
#define LAPIC_TDCR      0x3e0

#define VEC_PIT         0x30
#define VEC_LAPIC_TIMER 0x31
#define VEC_WATCHDOG    0xfe
#define VEC_SPURIOUS    0xff

/* PVH start info handed over in %ebx (Xen public/arch-x86/hvm/start_info.h). */
struct hvm_start_info {
	u32 magic;
	u32 version;
	u32 flags;
	u32 nr_modules;
	u64 modlist_paddr;
	u64 cmdline_paddr;
	u64 rsdp_paddr;
	u64 memmap_paddr;
	u32 memmap_entries;
	u32 reserved;
};
#define HVM_START_MAGIC 0x336ec578

/* What the interrupt stubs in start.S push, lowest address first. */
struct irq_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8;
	u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss;
};

typedef void (*irq_handler_t)(struct irq_frame *f);

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(u16 port, u16 v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(u16 port, u32 v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u16 inw(u16 port)
{
	u16 v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}
static inline void cli(void)
{
	__asm__ volatile("cli" ::: "memory");
}
static inline void sti(void)
{
	__asm__ volatile("sti" ::: "memory");
}
/* Take an interrupt the LAPIC latched while interrupts were off (a tick or an edge raised
 * before the guest disabled its source): it is delivered once sti's shadow ends, before cli.
 * A test that stops one interrupt source and counts the next calls this in between, so a
 * late delivery of the old source is not counted as the new one. */
static inline void irq_drain(void)
{
	__asm__ volatile("sti; nop; nop; cli" ::: "memory");
}
/* Enable interrupts and halt atomically (sti's shadow covers hlt), then mask again. */
static inline void wait_for_irq(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}
static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static inline u32 mmio_read32(u64 addr)
{
	return *(volatile u32 *)addr;
}
static inline void mmio_write32(u64 addr, u32 v)
{
	*(volatile u32 *)addr = v;
}
static inline u8 mmio_read8(u64 addr)
{
	return *(volatile u8 *)addr;
}
static inline void mmio_write8(u64 addr, u8 v)
{
	*(volatile u8 *)addr = v;
}

static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

/* Spinlock on a plain int: xchg with memory is implicitly locked. */
static inline void spin_lock(volatile int *l)
{
	int v;
	for (;;) {
		v = 1;
		__asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(*l) : : "memory");
		if (v == 0)
			return;
		while (*l)
			cpu_relax();
	}
}
static inline void spin_unlock(volatile int *l)
{
	barrier();
	*l = 0;
}
static inline int atomic_inc(volatile int *p)
{
	int v = 1;
	__asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v + 1;
}

/* Strings (the compiler may also emit calls to these). */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* Console (COM1). gprintf supports %s %c %d %u %x %p with l/ll, width and 0 flag. */
void serial_init(void);
void serial_putc(char c);
void gprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gvprintf(const char *fmt, va_list ap);

/* Common start-up: console, command line, IDT. Call first in guest_main. */
void guest_init(struct hvm_start_info *si);
/* The command line ("" when none). */
const char *cmdline(void);
/* Value of key=value on the command line; "" for a bare key; NULL if absent. */
const char *cmdline_get(const char *key);
long cmdline_int(const char *key, long def);
bool cmdline_has(const char *key);
long parse_long(const char *s);

/* Interrupts. */
void idt_load(void); /* load the shared IDT on this CPU */
void irq_set_handler(int vec, irq_handler_t h);

/* Machine control. Only returns when the VMM ignored the request (after an error line). */
void poweroff(void) __attribute__((noreturn));
void reset_i8042(void) __attribute__((noreturn));
void reset_acpi(void) __attribute__((noreturn));
/* Load an empty IDT and trap: the VMM sees a triple fault. */
void triple_fault(void) __attribute__((noreturn));
/* Print "ERROR: ..." and power off; the runner fails the test on the line. */
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void halt_forever(void) __attribute__((noreturn));

/* Legacy PIC: mask every line (its outputs would arrive via LINT0 ExtINT). */
void pic_mask_all(void);

/* Local APIC. */
static inline u32 lapic_read(u32 reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}
static inline void lapic_write(u32 reg, u32 v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}
void lapic_enable(void); /* software enable, TPR 0, LINT0 masked */
static inline void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}
u32 apic_id_cpuid(void); /* initial APIC id from CPUID.1:EBX[31:24] */
/* Send an IPI (ICR low word) to an APIC id and wait for delivery. Returns false on timeout. */
bool lapic_send_ipi(u32 apic_id, u32 icr_lo);

/* A watchdog and coarse clock from the LAPIC timer (one-shot, divide 8, ~34 s):
 * its interrupt (when interrupts are on) fails the test. Not for the LAPIC timer test. */
void watchdog_start(void);
u64 clock_us(void); /* microseconds since watchdog_start() */

/* IOAPIC. */
void ioapic_route(u32 pin, u8 vector, u32 dest_apic, bool level, bool active_low);
void ioapic_mask(u32 pin);

/* CMOS / RTC. */
u8 cmos_read(u8 idx);
void cmos_write(u8 idx, u8 v);
u8 rtc_seconds_raw(void); /* RTC seconds register after UIP clears (BCD or binary) */
/* Interrupt-driven *counter increments over one RTC second (edge to edge); the
 * counter must advance at least every second interrupt wake-up. Fails past limit. */
u32 count_per_rtc_second(volatile u32 *counter, u64 limit);

/* ACPI. */
struct madt_info {
	int ncpus; /* enabled Local APIC entries */
	u8 apic_ids[MAX_CPUS];
	bool have_iso[16]; /* interrupt source overrides by ISA IRQ */
	u32 iso_gsi[16];
	u16 iso_flags[16];
};
/* Find and parse the MADT; returns false (after printing why) when absent or corrupt. */
bool acpi_read_madt(struct madt_info *mi);
/* GSI for ISA IRQ irq (identity unless overridden), and its polarity/trigger. */
u32 isa_irq_gsi(const struct madt_info *mi, int irq, bool *level, bool *active_low);

/* Provided by each test. */
void guest_main(struct hvm_start_info *si);
/* Entry of an AP after start.S switched it to long mode (weak default: halt). */
void ap_main(void);

#endif
