/* rtc.c - MC146818 RTC model.
 *
 * The time registers are not a running counter: each read recomputes them
 * from host time + offset, so no timer thread is needed. While register B's
 * SET bit is 1 the registers are frozen and hold whatever the guest writes;
 * clearing SET (or writing a time register with SET clear) turns them into
 * a new offset. */
#include "rtc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

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

#define A_UIP   0x80
#define A_DV    0x70
#define A_DV_ON 0x20 /* 32.768 kHz time base, running */
#define B_SET   0x80
#define B_PIE   0x40
#define B_AIE   0x20
#define B_UIE   0x10
#define B_SQWE  0x08
#define B_DM    0x04 /* 1: binary, 0: BCD */
#define B_24H   0x02
#define D_VRT   0x80
#define HOUR_PM 0x80

/* UIP is set for this long before each update (datasheet: 244 us). */
#define UIP_NS 244000L
/* Guest time stays within years 0..9999; this bounds a loaded offset. */
#define MAX_OFFSET (400LL * 366 * 86400 * 25)

#define RTC_STATE_VERSION 1

struct rtc {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *bus;
	struct bus_claim claim; /* index and data ports */
	struct irq_line irq;    /* kept for a future periodic interrupt */
	void (*now)(void *ctx, struct timespec *ts);
	void *now_ctx;
	uint8_t index;
	uint8_t cmos[CMOS_SIZE];
	int64_t offset; /* guest seconds - host seconds */
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

static bool uip(const struct rtc *c)
{
	struct timespec ts;

	if ((c->cmos[REG_B] & B_SET) || (c->cmos[REG_A] & A_DV) != A_DV_ON)
		return false;
	host_now(c, &ts);
	return ts.tv_nsec >= 1000000000L - UIP_NS;
}

static uint8_t data_read(struct rtc *c)
{
	unsigned int idx = c->index;
	uint8_t v;

	if (is_time_reg(idx) && !(c->cmos[REG_B] & B_SET))
		refresh_time(c);
	switch (idx) {
	case REG_A:
		return c->cmos[REG_A] | (uip(c) ? A_UIP : 0);
	case REG_C:
		v = c->cmos[REG_C];
		c->cmos[REG_C] = 0; /* reading clears the flags */
		return v;
	case REG_D:
		return D_VRT;
	}
	return c->cmos[idx];
}

static void data_write(struct rtc *c, uint8_t v)
{
	unsigned int idx = c->index;
	uint8_t old;

	switch (idx) {
	case REG_A:
		c->cmos[REG_A] = v & (uint8_t)~A_UIP;
		return;
	case REG_B:
		old = c->cmos[REG_B];
		if (v & B_SET)
			v &= (uint8_t)~B_UIE; /* SET clears UIE (datasheet) */
		/* Leaving SET: the frozen registers were written in the old
		 * format, so decode them before the new format takes effect. */
		if (!(v & B_SET) && (old & B_SET))
			commit_time(c);
		c->cmos[REG_B] = v;
		if ((v & B_SET) && !(old & B_SET))
			refresh_time(c); /* freeze at the current time, new format */
		return;
	case REG_C:
	case REG_D:
		return; /* read-only */
	}
	if (is_time_reg(idx) && !(c->cmos[REG_B] & B_SET)) {
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
	} else if (a->is_write) {
		data_write(c, a->data[0]);
	} else {
		a->data[0] = data_read(c);
	}
	pthread_mutex_unlock(&c->lock);
}

static void rtc_reset(struct device *dev)
{
	struct rtc *c = to_rtc(dev);

	/* The RESET pin clears the interrupt enables and flags; time, format
	 * and NVRAM are battery backed and survive a reboot. */
	pthread_mutex_lock(&c->lock);
	c->cmos[REG_B] &= (uint8_t) ~(B_PIE | B_AIE | B_UIE | B_SQWE);
	c->cmos[REG_C] = 0;
	pthread_mutex_unlock(&c->lock);
}

static void rtc_save(struct device *dev, struct ser_writer *w)
{
	struct rtc *c = to_rtc(dev);

	pthread_mutex_lock(&c->lock);
	ser_put_u8(w, RTC_STATE_VERSION);
	ser_put_u8(w, c->index);
	ser_put_u64(w, (uint64_t)c->offset);
	ser_put_bytes(w, c->cmos, CMOS_SIZE);
	pthread_mutex_unlock(&c->lock);
}

static int rtc_load(struct device *dev, struct ser_reader *r)
{
	struct rtc *c = to_rtc(dev);
	uint8_t cmos[CMOS_SIZE], index;
	int64_t offset;

	if (ser_get_u8(r) != RTC_STATE_VERSION)
		return -1;
	index = ser_get_u8(r);
	offset = (int64_t)ser_get_u64(r);
	ser_get_bytes(r, cmos, CMOS_SIZE);
	if (r->err || index >= CMOS_SIZE || offset > MAX_OFFSET || offset < -MAX_OFFSET ||
	    (cmos[REG_A] & A_UIP) || cmos[REG_C] || cmos[REG_D] != D_VRT)
		return -1;
	pthread_mutex_lock(&c->lock);
	c->index = index;
	c->offset = offset;
	memcpy(c->cmos, cmos, CMOS_SIZE);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void rtc_destroy(struct device *dev)
{
	struct rtc *c = to_rtc(dev);

	bus_unregister_all(c->bus, &c->claim, 1, dev);
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
	.keep_load = rtc_load,
	.destroy = rtc_destroy,
};

void rtc_set_clock(struct device *dev, void (*now)(void *ctx, struct timespec *ts), void *ctx)
{
	struct rtc *c = to_rtc(dev);

	pthread_mutex_lock(&c->lock);
	c->now = now;
	c->now_ctx = ctx;
	pthread_mutex_unlock(&c->lock);
}

struct device *rtc_create(const char *name, struct bus *bus, uint64_t base, struct irq_line irq)
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
	pthread_mutex_init(&c->lock, NULL);
	c->claim = (struct bus_claim){ base, 2 };
	if (bus_register_all(bus, &c->claim, 1, &c->dev) < 0) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return &c->dev;
}
