#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local const char *log_context;

void log_set_context(const char *context)
{
	log_context = context;
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* One write so lines from several threads do not interleave. */
	fprintf(stderr, "kvmbox: %s%s%s\n", log_context ? log_context : "", prefix, buf);
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
	/* Read once. Any thread may be first (vCPUs, device workers): the
	 * flag is atomic, so two first calls at once both store the same value
	 * instead of racing on a plain int. */
	static atomic_int enabled = -1;
	int on = atomic_load_explicit(&enabled, memory_order_relaxed);
	va_list ap;

	if (on < 0) {
		on = getenv("KVMBOX_DEBUG") != NULL;
		atomic_store_explicit(&enabled, on, memory_order_relaxed);
	}
	if (!on)
		return;
	va_start(ap, fmt);
	vlog("debug: ", fmt, ap);
	va_end(ap);
}

int log_fmt(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}
