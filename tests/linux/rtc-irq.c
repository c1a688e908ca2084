/* rtc-irq - the Linux tier's check of the RTC's interrupts (linux-rtc-irq), run in the guest
 * (tests/linux/lib.sh builds it static into the guest's initramfs; guest-init runs it when the
 * command line has kvmbox.rtc=1).
 *
 *   rtc-irq [DEVICE]     DEVICE defaults to /dev/rtc0
 *
 * Each check prints one line, "KVMBOX-V rtc NAME ok DETAIL" or "KVMBOX-V rtc NAME FAIL WHY",
 * each waits with a deadline (poll), and the status is 0 only when all passed:
 *   uie     RTC_UIE_ON: three update interrupts read(), spread over at least 1.5 s
 *   alarm   RTC_ALM_SET 2 s ahead + RTC_AIE_ON: an alarm interrupt after 1 to 4 s
 *   irqs    the rtc0 line of /proc/interrupts grew over the two
 * (Linux's rtc core drives update interrupts through the chip's alarm: both are the chip's
 * interrupts on IRQ 8. Its periodic ones come from an hrtimer of its own, whatever the chip
 * does, so they are not checked here: the tiny guest tests/guests/rtc.c and test_rtc check the
 * chip's periodic interrupt.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/rtc.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int failed;

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void report(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	printf("KVMBOX-V rtc %s %s ", name, ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failed = 1;
}

/* One interrupt report from fd within timeout_ms: its data word, or 0 on a timeout or error. */
static unsigned long next_irq(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned long data = 0;

	if (poll(&p, 1, timeout_ms) != 1 || read(fd, &data, sizeof(data)) != sizeof(data))
		return 0;
	return data;
}

/* The rtc0 count of /proc/interrupts (summed over CPUs), or -1. */
static long rtc_irqs(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	char line[512];
	long total = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (!strstr(line, "rtc0"))
			continue;
		p = strchr(line, ':');
		if (!p)
			break;
		total = 0;
		for (p++;; p = end) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			total += v;
		}
		break;
	}
	fclose(f);
	return total;
}

static void check_uie(int fd)
{
	double t0 = mono(), first = 0;
	int n = 0;

	if (ioctl(fd, RTC_UIE_ON, 0) < 0) {
		report("uie", 0, "RTC_UIE_ON: %s", strerror(errno));
		return;
	}
	while (n < 3) {
		unsigned long d = next_irq(fd, 3000);

		if (!d) {
			report("uie", 0, "%d update interrupts, then none for 3 s", n);
			break;
		}
		if (!(d & RTC_UF))
			continue;
		if (!n++)
			first = mono();
	}
	ioctl(fd, RTC_UIE_OFF, 0);
	if (n == 3) {
		double span = mono() - first;

		report("uie", span >= 1.5 && span <= 3.5, "3 update interrupts in %.2f s (first after %.2f s)",
		       span, first - t0);
	}
}

static void check_alarm(int fd)
{
	struct rtc_time tm;
	struct tm t = { 0 };
	time_t when;
	double t0, dt;
	unsigned long d;

	if (ioctl(fd, RTC_RD_TIME, &tm) < 0) {
		report("alarm", 0, "RTC_RD_TIME: %s", strerror(errno));
		return;
	}
	/* struct rtc_time is struct tm's first nine ints (linux/rtc.h). */
	_Static_assert(offsetof(struct tm, tm_isdst) == offsetof(struct rtc_time, tm_isdst), "rtc_time");
	memcpy(&t, &tm, sizeof(tm));
	when = timegm(&t) + 2;
	gmtime_r(&when, &t);
	memcpy(&tm, &t, sizeof(tm));
	if (ioctl(fd, RTC_ALM_SET, &tm) < 0 || ioctl(fd, RTC_AIE_ON, 0) < 0) {
		report("alarm", 0, "RTC_ALM_SET/RTC_AIE_ON: %s", strerror(errno));
		return;
	}
	t0 = mono();
	do
		d = next_irq(fd, 5000);
	while (d && !(d & RTC_AF) && mono() - t0 < 5);
	dt = mono() - t0;
	ioctl(fd, RTC_AIE_OFF, 0);
	if (!(d & RTC_AF))
		report("alarm", 0, "no alarm interrupt %.1f s after setting one 2 s ahead", dt);
	else
		report("alarm", dt >= 1 && dt <= 4, "alarm %02d:%02d:%02d after %.2f s", tm.tm_hour, tm.tm_min,
		       tm.tm_sec, dt);
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/rtc0";
	long before, after;
	int fd = open(dev, O_RDONLY);

	if (fd < 0) {
		report("open", 0, "%s: %s", dev, strerror(errno));
		return 1;
	}
	before = rtc_irqs();
	check_uie(fd);
	check_alarm(fd);
	after = rtc_irqs();
	report("irqs", before >= 0 && after > before, "rtc0 in /proc/interrupts from %ld to %ld", before, after);
	close(fd);
	return failed;
}
