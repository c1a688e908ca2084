/* rtc.c - the CMOS clock: read the time (UIP, BCD/binary and 12/24 h per
 * register B), print it as a unix timestamp, watch it tick, round-trip
 * NVRAM bytes; then its interrupts on IRQ 8 through the IOAPIC: update-ended
 * ones each second, periodic ones at 64 Hz counted between two of those, an
 * alarm 2 s ahead with don't-care hours and minutes, and none once disabled. */
#include "guest.h"

struct rtc_time {
	u8 sec, min, hour, mday, mon, year, regb;
};

static bool rtc_updating(void)
{
	return cmos_read(0x0a) & 0x80;
}

static void rtc_read_raw(struct rtc_time *t)
{
	t->sec = cmos_read(0x00);
	t->min = cmos_read(0x02);
	t->hour = cmos_read(0x04);
	t->mday = cmos_read(0x07);
	t->mon = cmos_read(0x08);
	t->year = cmos_read(0x09);
	t->regb = cmos_read(0x0b);
}

/* Wait for UIP clear, read, and repeat until two reads agree. */
static void rtc_read(struct rtc_time *t)
{
	struct rtc_time u;

	for (int tries = 0; tries < 1000; tries++) {
		for (int i = 0; i < 100000 && rtc_updating(); i++)
			cpu_relax();
		rtc_read_raw(t);
		rtc_read_raw(&u);
		if (!memcmp(t, &u, sizeof(u)))
			return;
	}
	fail("RTC never returned two identical reads");
}

static u8 from_bcd(u8 v, bool bcd)
{
	return bcd ? (v & 0x0f) + (v >> 4) * 10 : v;
}

static bool valid_bcd(u8 v)
{
	return (v & 0x0f) < 10 && (v >> 4) < 10;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (long)doe - 719468;
}

static long rtc_unix(const struct rtc_time *raw)
{
	bool bcd = !(raw->regb & 0x04);
	bool h24 = raw->regb & 0x02;
	u8 hr = raw->hour;
	bool pm = false;

	if (!h24) {
		pm = hr & 0x80;
		hr &= 0x7f;
	}
	if (bcd && !(valid_bcd(raw->sec) && valid_bcd(raw->min) && valid_bcd(hr) && valid_bcd(raw->mday) &&
		     valid_bcd(raw->mon) && valid_bcd(raw->year)))
		fail("invalid BCD in RTC registers (regB %x)", raw->regb);
	unsigned sec = from_bcd(raw->sec, bcd), min = from_bcd(raw->min, bcd);
	unsigned hour = from_bcd(hr, bcd), mday = from_bcd(raw->mday, bcd);
	unsigned mon = from_bcd(raw->mon, bcd), year = from_bcd(raw->year, bcd);

	if (!h24) {
		if (hour == 12)
			hour = 0;
		if (pm)
			hour += 12;
	}
	if (sec > 59 || min > 59 || hour > 23 || mday < 1 || mday > 31 || mon < 1 || mon > 12 || year > 99)
		fail("RTC time out of range: %u-%u-%u %u:%u:%u (regB %x)", year, mon, mday, hour, min, sec,
		     raw->regb);
	return days_from_civil(2000 + year, mon, mday) * 86400L + hour * 3600L + min * 60L + sec;
}

static void nvram_check(u8 idx)
{
	u8 orig = cmos_read(idx);
	static const u8 pat[] = { 0x5a, 0xa5, 0x00, 0xff, 0x3c };

	for (size_t i = 0; i < sizeof(pat); i++) {
		cmos_write(idx, pat[i]);
		u8 r = cmos_read(idx);

		if (r != pat[i])
			fail("NVRAM[%x] wrote %x read %x", idx, pat[i], r);
	}
	cmos_write(idx, orig);
}

#define VEC_RTC 0x32

static volatile u32 n_irq, n_uf, n_pf, n_af, n_noirqf;
static volatile u32 pf_at_uf[4]; /* n_pf at the first update interrupts */

static void rtc_irq(struct irq_frame *f)
{
	u8 c = cmos_read(0x0c); /* clears the flags and lowers the line */

	n_irq++;
	if (!(c & 0x80))
		n_noirqf++;
	if (c & 0x40)
		n_pf++;
	if (c & 0x20)
		n_af++;
	if (c & 0x10) {
		if (n_uf < 4)
			pf_at_uf[n_uf] = n_pf;
		n_uf++;
	}
	lapic_eoi();
}

/* Spin with interrupts on until *v reaches want or limit_us pass (the guest's own register
 * accesses happen with interrupts off, so the handler's never interleave with them). */
static bool wait_count(volatile u32 *v, u32 want, u64 limit_us)
{
	u64 t0 = clock_us();
	bool ok = true;

	sti();
	while (*v < want && ok)
		ok = clock_us() - t0 <= limit_us;
	cli();
	return ok;
}

/* Disable every RTC interrupt and clear register C, then take the one interrupt the IOAPIC
 * may have latched into the LAPIC before the disable (a periodic one raised while the guest had
 * interrupts off). Its handler finds register C already cleared, so it is not counted as an
 * interrupt without IRQF; more than one would be a device fault. */
static void rtc_quiesce(u8 regb)
{
	u32 irq = n_irq, noirqf = n_noirqf;

	cmos_write(0x0b, regb);
	cmos_read(0x0c);
	irq_drain();
	if (n_irq - irq > 1)
		fail("%u interrupts after every RTC interrupt was disabled", n_irq - irq);
	n_noirqf = noirqf;
}

static void rtc_interrupts(u8 regb)
{
	struct madt_info mi;
	struct rtc_time t;
	bool level, low, bcd = !(regb & 0x04);
	u32 gsi, pf, before;
	u64 t0;

	if (!acpi_read_madt(&mi))
		fail("cannot read the MADT");
	gsi = isa_irq_gsi(&mi, 8, &level, &low);
	pic_mask_all();
	irq_set_handler(VEC_RTC, rtc_irq);
	ioapic_route(gsi, VEC_RTC, apic_id_cpuid(), level, low);
	cmos_read(0x0c);

	/* Update-ended and periodic (64 Hz: RS 10) interrupts together. */
	cmos_write(0x0a, 0x2a);
	cmos_write(0x0b, regb | 0x50);
	if (!wait_count(&n_uf, 3, 5000000))
		fail("%u update interrupts in 5 s (%u interrupts in all)", n_uf, n_irq);
	pf = pf_at_uf[2] - pf_at_uf[1];
	gprintf("rtc: %u update interrupts, %u periodic ones in one RTC second\n", n_uf, pf);
	if (pf < 48 || pf > 80)
		fail("periodic rate %u Hz, programmed 64 Hz", pf);
	rtc_quiesce(regb);
	cmos_write(0x0a, 0x26);

	/* The alarm: hh:mm:ss+2, hours and minutes "don't care". */
	rtc_read(&t);
	u8 sec = (u8)((from_bcd(t.sec, bcd) + 2) % 60);

	cmos_write(0x01, bcd ? (u8)((sec / 10) << 4 | sec % 10) : sec);
	cmos_write(0x03, 0xc0);
	cmos_write(0x05, 0xff);
	before = n_irq;
	t0 = clock_us();
	cmos_write(0x0b, regb | 0x20);
	if (!wait_count(&n_af, 1, 4000000))
		fail("no alarm interrupt 4 s after setting one 2 s ahead");
	if (clock_us() - t0 < 900000 || n_irq != before + 1)
		fail("the alarm came after %lu us, %u interrupts", clock_us() - t0, n_irq - before);
	gprintf("rtc: alarm after %lu ms\n", (clock_us() - t0) / 1000);

	/* Disabled: the flags still rise, no interrupt. */
	rtc_quiesce(regb);
	before = n_irq;
	wait_count(&n_irq, before + 1, 1200000);
	if (n_irq != before)
		fail("%u interrupts with every RTC interrupt disabled", n_irq - before);
	if (!(cmos_read(0x0c) & 0x50))
		fail("register C shows no UF or PF after 1.2 s");
	if (n_noirqf)
		fail("%u interrupts without IRQF in register C", n_noirqf);
	ioapic_mask(gsi);
	gprintf("rtc: interrupts ok\n");
}

void guest_main(struct hvm_start_info *si)
{
	struct rtc_time t;

	guest_init(si);
	rtc_read(&t);
	long now = rtc_unix(&t);

	gprintf("rtc: regB %x %s %s\n", t.regb, (t.regb & 0x04) ? "binary" : "bcd",
		(t.regb & 0x02) ? "24h" : "12h");
	gprintf("rtc: unix %ld\n", now);

	/* The clock must advance: wait (up to ~3 s of LAPIC time) for the seconds to change. */
	lapic_enable();
	watchdog_start();
	for (;;) {
		struct rtc_time u;

		rtc_read(&u);
		long later = rtc_unix(&u);

		if (later != now) {
			if (later < now || later > now + 2)
				fail("RTC went from %ld to %ld", now, later);
			gprintf("rtc: ticked to %ld\n", later);
			break;
		}
		if (clock_us() > 3000000)
			fail("RTC seconds did not advance in 3 s");
	}

	/* NVRAM: two bytes in the user area, and neighbours stay untouched. */
	u8 before = cmos_read(0x41);

	nvram_check(0x40);
	nvram_check(0x7f);
	cmos_write(0x40, 0x99);
	if (cmos_read(0x41) != before)
		fail("writing NVRAM[40] changed NVRAM[41]");
	if (cmos_read(0x40) != 0x99)
		fail("NVRAM[40] did not keep 99");
	gprintf("rtc: nvram ok\n");
	rtc_interrupts(t.regb);
	poweroff();
}
