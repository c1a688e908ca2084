#include "log.h"

#include <stdio.h>
#include <stdlib.h>

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* One write so lines from several threads do not interleave. */
	fprintf(stderr, "kvmbox: %s%s\n", prefix, buf);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("warning: ", fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	static int enabled = -1; /* read once; a benign race at worst re-reads */
	va_list ap;

	if (enabled < 0)
		enabled = getenv("KVMBOX_DEBUG") != NULL;
	if (!enabled)
		return;
	va_start(ap, fmt);
	vlog("debug: ", fmt, ap);
	va_end(ap);
}
