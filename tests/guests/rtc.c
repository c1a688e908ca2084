/* rtc.c - the CMOS clock: read the time (UIP, BCD/binary and 12/24 h per
 * register B), print it as a unix timestamp, watch it tick, and round-trip
 * NVRAM bytes. */
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
	poweroff();
}
