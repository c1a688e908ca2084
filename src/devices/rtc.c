/* rtc.c - MC146818 RTC model.
 *
 * The time registers are not a running counter: each read recomputes them
 * from host time + offset. While updates are stopped (register B's SET, or a
 * divider other than 010 in register A) the registers are frozen and hold
 * whatever the guest writes; when updates start again (or a time register is
 * written while they run) they become a new offset.
 *
 * Interrupt flags are not counted tick by tick either. `synced` is the host
 * time, in the chip's 32768 Hz ticks, up to which register C is accounted:
 * catch_up() sets UF if a second boundary, PF if a periodic tick, AF if a
 * matching second lies between synced and now, then moves synced to now. It
 * runs before every data-port access and when the timer fires; the timer is
 * armed only for the earliest event that is enabled and whose flag is still
 * clear, so a guest that leaves its interrupts unread costs nothing, and
 * missed ticks collapse into one flag. */
#include "rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "io_util.h"

#define REG_SEC        0x00
#define REG_SEC_ALARM  0x01
#define REG_MIN        0x02
#define REG_MIN_ALARM  0x03
#define REG_HOUR       0x04
#define REG_HOUR_ALARM 0x05
#define REG_WDAY       0x06
#define REG_MDAY       0x07
#define REG_MON        0x08
#define REG_YEAR       0x09
#define REG_A          0x0a
#define REG_B          0x0b
#define REG_C          0x0c
#define REG_D          0x0d
#define CMOS_SIZE      128

#define A_UIP     0x80
#define A_DV      0x70
#define A_DV_ON   0x20 /* 32.768 kHz time base, running */
#define B_SET     0x80
#define B_PIE     0x40
#define B_AIE     0x20
#define B_UIE     0x10
#define B_SQWE    0x08
#define B_DM      0x04 /* 1: binary, 0: BCD */
#define B_24H     0x02
#define A_RS      0x0f
#define C_IRQF    0x80
#define C_PF      0x40
#define C_AF      0x20
#define C_UF      0x10
#define C_FLAGS   (C_PF | C_AF | C_UF) /* each at its enable's bit in B */
#define D_VRT     0x80
#define HOUR_PM   0x80
#define ALARM_ANY 0xc0 /* both top bits: the field matches anything */

/* The time base: 32768 Hz ticks; every periodic rate is a power-of-two divisor of it. */
#define HZ 32768LL
/* alarm_at when unknown (below every time) and when the alarm can never match. */
#define ALARM_UNKNOWN INT64_MIN
#define ALARM_NEVER   INT64_MAX

/* UIP is set for this long before each update (datasheet: 244 us). */
#define UIP_NS 244000L
/* Guest time stays within years 0..9999; this bounds a loaded offset. */
#define MAX_OFFSET (400LL * 366 * 86400 * 25)

/* 1: index, offset, CMOS (register C always 0). 2: + synced, register C's flags. */
#define RTC_STATE_VERSION 2

struct rtc {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *bus;
	struct bus_claim claim; /* index and data ports */
	struct irq_line irq;
	struct loop_timer *timer; /* NULL: no loop */
	void (*now)(void *ctx, struct timespec *ts);
	void *now_ctx;
	uint8_t index;
	uint8_t cmos[CMOS_SIZE]; /* cmos[REG_C] holds the flags and IRQF */
	int64_t offset;          /* guest seconds - host seconds */
	int64_t synced;          /* host ticks up to which register C is accounted */
	int64_t alarm_at;        /* first host second after synced's whose time matches the alarm */
	int64_t armed;           /* host tick the timer is set for, 0 when disarmed */
	int line;                /* level driven on irq */
};

static struct rtc *to_rtc(struct device *dev)
{
	return container_of(dev, struct rtc, dev);
}

static void host_now(const struct rtc *c, struct timespec *ts)
{
	if (c->now)
		c->now(c->now_ctx, ts);
	else
		clock_gettime(CLOCK_REALTIME, ts);
}

static bool is_time_reg(unsigned int idx)
{
	switch (idx) {
	case REG_SEC:
	case REG_MIN:
	case REG_HOUR:
	case REG_WDAY:
	case REG_MDAY:
	case REG_MON:
	case REG_YEAR:
	case RTC_CENTURY_INDEX:
		return true;
	}
	return false;
}

static uint8_t to_reg(const struct rtc *c, unsigned int v)
{
	if (c->cmos[REG_B] & B_DM)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

/* Decode one field; false when a BCD digit is not 0-9. */
static bool from_reg(const struct rtc *c, uint8_t raw, unsigned int *v)
{
	if (c->cmos[REG_B] & B_DM) {
		*v = raw;
		return true;
	}
	if ((raw & 0x0f) > 9 || (raw >> 4) > 9)
		return false;
	*v = (raw >> 4) * 10 + (raw & 0x0f);
	return true;
}

static uint8_t hour_to_reg(const struct rtc *c, unsigned int h)
{
	unsigned int h12;

	if (c->cmos[REG_B] & B_24H)
		return to_reg(c, h);
	h12 = h % 12 ? h % 12 : 12;
	return to_reg(c, h12) | (h >= 12 ? HOUR_PM : 0);
}

static bool hour_from_reg(const struct rtc *c, uint8_t raw, unsigned int *h)
{
	unsigned int v;

	if (c->cmos[REG_B] & B_24H) {
		if (!from_reg(c, raw, &v) || v > 23)
			return false;
		*h = v;
		return true;
	}
	if (!from_reg(c, raw & (uint8_t)~HOUR_PM, &v) || v < 1 || v > 12)
		return false;
	*h = v % 12 + ((raw & HOUR_PM) ? 12 : 0);
	return true;
}

static unsigned int days_in_month(unsigned int year, unsigned int mon)
{
	static const unsigned char days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : days[mon - 1];
}

/* Fill the time registers from host time + offset. */
static void refresh_time(struct rtc *c)
{
	struct timespec ts;
	struct tm tm;
	time_t t;
	long long year;

	host_now(c, &ts);
	t = (time_t)(ts.tv_sec + c->offset);
	if (!gmtime_r(&t, &tm))
		return;
	year = (long long)tm.tm_year + 1900;
	if (year < 0)
		year = 0;
	if (year > 9999)
		year = 9999;
	c->cmos[REG_SEC] = to_reg(c, (unsigned int)tm.tm_sec % 60); /* no leap second */
	c->cmos[REG_MIN] = to_reg(c, (unsigned int)tm.tm_min);
	c->cmos[REG_HOUR] = hour_to_reg(c, (unsigned int)tm.tm_hour);
	c->cmos[REG_WDAY] = to_reg(c, (unsigned int)tm.tm_wday + 1); /* Sunday = 1 */
	c->cmos[REG_MDAY] = to_reg(c, (unsigned int)tm.tm_mday);
	c->cmos[REG_MON] = to_reg(c, (unsigned int)tm.tm_mon + 1);
	c->cmos[REG_YEAR] = to_reg(c, (unsigned int)(year % 100));
	c->cmos[RTC_CENTURY_INDEX] = to_reg(c, (unsigned int)(year / 100));
}

/* Turn the time registers into a new offset. Invalid contents leave the
 * clock alone (the guest sees its running time again on the next read). */
static void commit_time(struct rtc *c)
{
	unsigned int sec, min, hour, mday, mon, year, century;
	struct timespec ts;
	struct tm tm = { 0 };
	time_t t;

	if (!from_reg(c, c->cmos[REG_SEC], &sec) || sec > 59 || !from_reg(c, c->cmos[REG_MIN], &min) ||
	    min > 59 || !hour_from_reg(c, c->cmos[REG_HOUR], &hour) || !from_reg(c, c->cmos[REG_MON], &mon) ||
	    mon < 1 || mon > 12 || !from_reg(c, c->cmos[REG_YEAR], &year) || year > 99 ||
	    !from_reg(c, c->cmos[RTC_CENTURY_INDEX], &century) || century > 99 ||
	    !from_reg(c, c->cmos[REG_MDAY], &mday) || mday < 1 ||
	    mday > days_in_month(century * 100 + year, mon)) {
		log_debug("rtc %s: guest wrote an invalid time; ignored", c->dev.name);
		return;
	}
	tm.tm_sec = (int)sec;
	tm.tm_min = (int)min;
	tm.tm_hour = (int)hour;
	tm.tm_mday = (int)mday;
	tm.tm_mon = (int)mon - 1;
	tm.tm_year = (int)(century * 100 + year) - 1900;
	t = timegm(&tm);
	host_now(c, &ts);
	c->offset = (int64_t)t - (int64_t)ts.tv_sec;
}

/* The divider runs (DV = 010, the 32.768 kHz time base). */
static bool divider_on(const struct rtc *c)
{
	return (c->cmos[REG_A] & A_DV) == A_DV_ON;
}

/* No update cycles: the time registers are frozen and UF/AF cannot be set. */
static bool stopped(const struct rtc *c)
{
	return (c->cmos[REG_B] & B_SET) || !divider_on(c);
}

/* The periodic interrupt's period in ticks, 0 for none. RS 1 and 2 give 256 and 128 Hz on a
 * 32.768 kHz base (the datasheet's table), as RS 8 and 9 do. */
static int64_t pf_period(const struct rtc *c)
{
	unsigned int rs = c->cmos[REG_A] & A_RS;

	if (!rs || !divider_on(c))
		return 0;
	if (rs < 3)
		rs += 7;
	return 1LL << (rs - 1);
}

static int64_t now_ticks(const struct rtc *c)
{
	struct timespec ts;

	host_now(c, &ts);
	return (int64_t)ts.tv_sec * HZ + (int64_t)ts.tv_nsec * HZ / 1000000000L;
}

static bool uip(const struct rtc *c)
{
	struct timespec ts;

	if (stopped(c))
		return false;
	host_now(c, &ts);
	return ts.tv_nsec >= 1000000000L - UIP_NS;
}

/* One alarm field decoded in the current format: the value it matches (0..n-1), -1 for any,
 * -2 for none (a value the clock never shows, e.g. 0x60 seconds or a bad BCD digit). */
static int alarm_field(const struct rtc *c, uint8_t raw, unsigned int n, bool hour)
{
	if ((raw & ALARM_ANY) == ALARM_ANY)
		return -1;
	for (unsigned int v = 0; v < n; v++)
		if ((hour ? hour_to_reg(c, v) : to_reg(c, v)) == raw)
			return (int)v;
	return -2;
}

/* The first host second after `after` at whose start the guest's time of day matches the
 * alarm, or ALARM_NEVER. Every time of day comes within two days' hours and minutes. */
static int64_t next_alarm(const struct rtc *c, int64_t after)
{
	int h = alarm_field(c, c->cmos[REG_HOUR_ALARM], 24, true);
	int m = alarm_field(c, c->cmos[REG_MIN_ALARM], 60, false);
	int s = alarm_field(c, c->cmos[REG_SEC_ALARM], 60, false);
	int64_t guest = after + 1 + c->offset;
	int64_t day = guest - ((guest % 86400) + 86400) % 86400 - c->offset; /* host second of 00:00:00 */

	if (h == -2 || m == -2 || s == -2)
		return ALARM_NEVER;
	for (int64_t d = day; d <= day + 86400; d += 86400) {
		for (int hh = 0; hh < 24; hh++) {
			if (h >= 0 && hh != h)
				continue;
			for (int mm = 0; mm < 60; mm++) {
				int64_t base = d + hh * 3600 + mm * 60, t;

				if (m >= 0 && mm != m)
					continue;
				if (base + 59 <= after)
					continue;
				if (s >= 0)
					t = base + s;
				else
					t = base > after ? base : after + 1;
				if (t > after)
					return t;
			}
		}
	}
	return ALARM_NEVER;
}

/* The next alarm second after `sec`, from the cache when it still applies (writes to the time,
 * alarm, A and B registers clear it). */
static int64_t alarm_after(struct rtc *c, int64_t sec)
{
	if (c->alarm_at <= sec)
		c->alarm_at = next_alarm(c, sec);
	return c->alarm_at;
}

/* Account the flags for the host ticks (synced, now]: see the comment at the top. */
static void catch_up(struct rtc *c, int64_t now)
{
	int64_t from = c->synced, p = pf_period(c);

	if (now < from) {
		/* The host clock went back: nothing happened; the alarm is searched again. */
		c->synced = now;
		c->alarm_at = ALARM_UNKNOWN;
		return;
	}
	if (!stopped(c) && now / HZ > from / HZ) {
		c->cmos[REG_C] |= C_UF;
		if (alarm_after(c, from / HZ) <= now / HZ)
			c->cmos[REG_C] |= C_AF;
	}
	if (p && now / p > from / p)
		c->cmos[REG_C] |= C_PF;
	c->synced = now;
}

/* IRQF and the line: any flag whose interrupt is enabled. */
static void update_irq(struct rtc *c)
{
	uint8_t f = c->cmos[REG_C] & C_FLAGS;
	int level = (f & c->cmos[REG_B]) != 0;

	c->cmos[REG_C] = f | (level ? C_IRQF : 0);
	if (level != c->line) {
		c->line = level;
		irq_line_set(&c->irq, level);
	}
}

/* Arm the timer for the earliest enabled event whose flag is clear, or disarm it. */
static void rearm(struct rtc *c)
{
	int64_t next = INT64_MAX, p = pf_period(c), sec = c->synced / HZ, alarm;
	uint8_t b = c->cmos[REG_B], f = c->cmos[REG_C];
	struct timespec ts;

	if (!c->timer)
		return;
	if (!stopped(c) && (b & B_UIE) && !(f & C_UF))
		next = (sec + 1) * HZ;
	if (!stopped(c) && (b & B_AIE) && !(f & C_AF)) {
		alarm = alarm_after(c, sec);
		if (alarm != ALARM_NEVER && alarm * HZ < next)
			next = alarm * HZ;
	}
	if (p && (b & B_PIE) && !(f & C_PF) && (c->synced / p + 1) * p < next)
		next = (c->synced / p + 1) * p;
	if (next == INT64_MAX)
		next = 0;
	if (next == c->armed)
		return;
	ts.tv_sec = (time_t)(next / HZ);
	ts.tv_nsec = (long)(((next % HZ) * 1000000000LL + HZ - 1) / HZ); /* never before the tick */
	if (loop_timer_set(c->timer, next ? &ts : NULL) < 0) {
		log_debug("rtc %s: timerfd_settime: %s", c->dev.name, strerror(errno));
		return;
	}
	c->armed = next;
}

/* After the flags or the settings changed: IRQF, the line and the timer. */
static void settle(struct rtc *c)
{
	update_irq(c);
	rearm(c);
}

static void rtc_timer(void *opaque)
{
	struct rtc *c = opaque;

	pthread_mutex_lock(&c->lock);
	c->armed = 0; /* a one-shot timer that fired */
	catch_up(c, now_ticks(c));
	settle(c);
	pthread_mutex_unlock(&c->lock);
}

static uint8_t data_read(struct rtc *c)
{
	unsigned int idx = c->index;
	uint8_t v;

	if (is_time_reg(idx) && !stopped(c))
		refresh_time(c);
	switch (idx) {
	case REG_A:
		return c->cmos[REG_A] | (uip(c) ? A_UIP : 0);
	case REG_C:
		v = c->cmos[REG_C];
		c->cmos[REG_C] = 0; /* reading clears the flags (the caller lowers the line) */
		return v;
	case REG_D:
		return D_VRT;
	}
	return c->cmos[idx];
}

static void data_write(struct rtc *c, uint8_t v)
{
	unsigned int idx = c->index;
	bool was = stopped(c);

	if (idx <= REG_B || is_time_reg(idx))
		c->alarm_at = ALARM_UNKNOWN; /* the time, the alarm or the format may change */
	switch (idx) {
	case REG_A:
		/* Starting the divider decodes the frozen registers; stopping it freezes them. */
		c->cmos[REG_A] = v & (uint8_t)~A_UIP;
		if (was && !stopped(c))
			commit_time(c);
		else if (!was && stopped(c))
			refresh_time(c);
		return;
	case REG_B:
		if (v & B_SET)
			v &= (uint8_t)~B_UIE; /* SET clears UIE (datasheet) */
		/* Leaving the frozen state: the registers were written in the old
		 * format, so decode them before the new format takes effect. */
		if (was && !(v & B_SET) && divider_on(c))
			commit_time(c);
		c->cmos[REG_B] = v;
		if (!was && stopped(c))
			refresh_time(c); /* freeze at the current time, new format */
		return;
	case REG_C:
	case REG_D:
		return; /* read-only */
	}
	if (is_time_reg(idx) && !was) {
		/* Change one field of the running clock. */
		refresh_time(c);
		c->cmos[idx] = v;
		commit_time(c);
		return;
	}
	c->cmos[idx] = v; /* alarms, frozen time registers, NVRAM */
}

static void rtc_io(struct device *dev, struct bus_access *a)
{
	struct rtc *c = to_rtc(dev);

	if (a->len != 1 || a->offset > 1) {
		io_fill_ones(a);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (a->offset == 0) {
		if (a->is_write)
			c->index = a->data[0] & 0x7f; /* bit 7 is the NMI mask: ignored */
		else
			a->data[0] = 0xff; /* the index port is write-only */
	} else {
		/* What happened up to now, under the settings it happened with. */
		catch_up(c, now_ticks(c));
		update_irq(c);
		if (a->is_write)
			data_write(c, a->data[0]);
		else
			a->data[0] = data_read(c);
		settle(c);
	}
	pthread_mutex_unlock(&c->lock);
}

/* The RESET pin clears the interrupt enables and flags; time, format and NVRAM are battery
 * backed and survive a reboot. Called with the lock held. */
static void reset_irqs(struct rtc *c)
{
	c->cmos[REG_B] &= (uint8_t) ~(B_PIE | B_AIE | B_UIE | B_SQWE);
	c->cmos[REG_C] = 0;
	settle(c);
}

static void rtc_reset(struct device *dev)
{
	struct rtc *c = to_rtc(dev);

	pthread_mutex_lock(&c->lock);
	reset_irqs(c);
	pthread_mutex_unlock(&c->lock);
}

static void rtc_save(struct device *dev, struct ser_writer *w)
{
	struct rtc *c = to_rtc(dev);

	pthread_mutex_lock(&c->lock);
	catch_up(c, now_ticks(c)); /* the flags as of now */
	update_irq(c);
	ser_put_u8(w, RTC_STATE_VERSION);
	ser_put_u8(w, c->index);
	ser_put_u64(w, (uint64_t)c->offset);
	ser_put_bytes(w, c->cmos, CMOS_SIZE);
	ser_put_u64(w, (uint64_t)c->synced);
	pthread_mutex_unlock(&c->lock);
}

static int rtc_load(struct device *dev, struct ser_reader *r)
{
	struct rtc *c = to_rtc(dev);
	uint8_t cmos[CMOS_SIZE], index, version = ser_get_u8(r), flags;
	int64_t offset, synced = 0, now = now_ticks(c);

	if (r->err || version < 1 || version > RTC_STATE_VERSION) {
		log_error("rtc %s: saved state version %u; this kvmbox reads versions 1 to %d: restore it "
			  "with the kvmbox that saved it",
			  dev->name, version, RTC_STATE_VERSION);
		return -1;
	}
	index = ser_get_u8(r);
	offset = (int64_t)ser_get_u64(r);
	ser_get_bytes(r, cmos, CMOS_SIZE);
	if (version >= 2)
		synced = (int64_t)ser_get_u64(r);
	flags = cmos[REG_C] & C_FLAGS;
	if (r->err || index >= CMOS_SIZE || offset > MAX_OFFSET || offset < -MAX_OFFSET ||
	    (cmos[REG_A] & A_UIP) || cmos[REG_D] != D_VRT || (cmos[REG_C] & ~(C_IRQF | C_FLAGS)) ||
	    (version < 2 && cmos[REG_C]) || ((cmos[REG_C] & C_IRQF) != 0) != ((flags & cmos[REG_B]) != 0) ||
	    synced < 0 || synced > (INT64_MAX / 2))
		return -1;
	/* A version 1 state has no events pending: accounting starts now. A synced time ahead
	 * of this host's clock (another host's) starts now too. */
	if (version < 2 || synced > now)
		synced = now;
	pthread_mutex_lock(&c->lock);
	c->index = index;
	c->offset = offset;
	memcpy(c->cmos, cmos, CMOS_SIZE);
	c->synced = synced;
	c->alarm_at = ALARM_UNKNOWN;
	/* Events due since the save are pending now; the line and the timer as the state says. */
	catch_up(c, now);
	c->armed = -1; /* whatever the timer held, set it */
	settle(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* After a guest reset: the kept CMOS with the RESET pin's effect. */
static int rtc_keep_load(struct device *dev, struct ser_reader *r)
{
	struct rtc *c = to_rtc(dev);

	if (rtc_load(dev, r) < 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	reset_irqs(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void rtc_destroy(struct device *dev)
{
	struct rtc *c = to_rtc(dev);

	bus_unregister_all(c->bus, &c->claim, 1, dev);
	loop_timer_free(c->timer);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct device_ops rtc_ops = {
	.type = "rtc",
	.io = rtc_io,
	.reset = rtc_reset,
	.save = rtc_save,
	.load = rtc_load,
	/* A guest reset keeps the whole CMOS: its NVRAM and the clock the guest set. */
	.keep_save = rtc_save,
	.keep_load = rtc_keep_load,
	.destroy = rtc_destroy,
};

void rtc_set_clock(struct device *dev, void (*now)(void *ctx, struct timespec *ts), void *ctx)
{
	struct rtc *c = to_rtc(dev);

	pthread_mutex_lock(&c->lock);
	c->now = now;
	c->now_ctx = ctx;
	c->synced = now_ticks(c);
	c->alarm_at = ALARM_UNKNOWN;
	c->cmos[REG_C] = 0;
	settle(c);
	pthread_mutex_unlock(&c->lock);
}

struct device *rtc_create(const char *name, struct bus *bus, uint64_t base, struct irq_line irq,
			  struct loop *loop)
{
	struct rtc *c;

	if (!bus) {
		log_error("rtc %s: no bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("rtc %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	c->dev.ops = &rtc_ops;
	io_set_name(&c->dev, name);
	c->bus = bus;
	c->irq = irq;
	c->cmos[REG_A] = A_DV_ON | 0x06; /* running, 1024 Hz rate */
	c->cmos[REG_B] = B_24H;          /* BCD, 24-hour */
	c->cmos[REG_D] = D_VRT;
	c->synced = now_ticks(c);
	c->alarm_at = ALARM_UNKNOWN;
	pthread_mutex_init(&c->lock, NULL);
	if (loop && !(c->timer = loop_timer_new(loop, CLOCK_REALTIME, rtc_timer, c))) {
		log_error("rtc %s: cannot create its timer: %s; raise the open file limit", c->dev.name,
			  strerror(errno));
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	c->claim = (struct bus_claim){ base, 2 };
	if (bus_register_all(bus, &c->claim, 1, &c->dev) < 0) {
		loop_timer_free(c->timer);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return &c->dev;
}
