/* log.h - one-line user-facing errors and debug output. */
#ifndef KVMBOX_LOG_H
#define KVMBOX_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Print "kvmbox: <message>\n" to stderr. Messages name the thing, the problem
 * and the fix, on one line. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Put context ("vm.conf:3: ") after "kvmbox: " in this thread's messages until it is set to
 * NULL again: a configuration file's line before an option's own message. */
void log_set_context(const char *context);
/* Same, prefixed with "warning: ". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only when KVMBOX_DEBUG is set in the environment. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The one line for a caller that prints it itself (or passes it on): formatted into err (len
 * bytes, truncated), nothing printed. Returns -1, a failure's usual return value. */
int log_fmt(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
