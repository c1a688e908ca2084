/* config_file.c - `kvmbox run --config FILE`: run options from an INI file.
 *
 * Debian's libinih parses the file; each key is a run option's long name and goes through
 * run_option_set, the command line's own path, so the values are checked the same way. The file
 * is hostile input: it is read whole (a regular file, at most CONFIG_MAX_SIZE bytes) and handed
 * to libinih line by line by our reader, which counts the lines (the library's handler gets no
 * line number), refuses NUL bytes and lines libinih would split, and drops each line's leading
 * blanks, so indentation is allowed and libinih's continuation lines never happen: a value is one
 * line. The first problem in the file, in line order, is the one reported. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#ifndef KVMBOX_NO_INIH
#include <ini.h>
#endif
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "options.h"

#ifdef KVMBOX_NO_INIH
/* make static-musl without libinih (Debian's archive here did not offer its source to build for
 * musl: scripts/musl-deps.sh): --config is refused, in one line, never ignored. */
int run_config_file(struct vm_config *cfg, const char *path, bool restore)
{
	(void)cfg;
	(void)restore;
	log_error("--config %s: this kvmbox was built without libinih (make static-musl could not build it); "
		  "give the options on the command line, or use a build with it (make, make static)",
		  path);
	return EXIT_USAGE;
}
#else
#define CONFIG_MAX_SIZE (1 << 20)
#define CONFIG_MAX_KEYS 128

struct config_file {
	const char *path;
	struct vm_config *cfg;
	bool restore;
	char *text;
	size_t size, pos;
	unsigned line; /* the lines handed to libinih so far: the number of the line it is on */
	unsigned stop; /* the first line with a problem: the reader stops there (0: none known) */
	bool loud;     /* print problems (the second pass) */
	bool failed;   /* a problem was found (and printed when loud) */
	unsigned nr_seen;
	struct {
		const char *name;
		unsigned line;
	} seen[CONFIG_MAX_KEYS]; /* the single-valued keys given, for duplicates */
};

/* The sections whose keys are the VM's: the top of the file (no section) and [vm]. `kvmbox up`
 * will add [vm NAME] (one VM each) and [defaults] here. */
static bool vm_section(const char *name)
{
	return !*name || !strcmp(name, "vm");
}

static void problem(struct config_file *cf, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct config_file *cf, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	cf->failed = true;
	if (!cf->stop || line < cf->stop)
		cf->stop = line;
	if (!cf->loud)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%u: %s", cf->path, line, msg);
}

/* A section line's name, as libinih reads it (the text between '[' and the first ']'), must be
 * one of ours. 0, or -1 after a problem. A '[' line without ']' is libinih's to refuse. */
static int check_section(struct config_file *cf, const char *p, size_t len)
{
	const char *end = memchr(p, ']', len);
	char name[64];

	if (!end)
		return 0;
	if ((size_t)(end - p - 1) < sizeof(name)) {
		memcpy(name, p + 1, (size_t)(end - p - 1));
		name[end - p - 1] = '\0';
		if (vm_section(name))
			return 0;
	}
	problem(cf, cf->line,
		"unknown section [%.*s]; put the VM's keys at the top of the file or under [vm]",
		(int)(end - p - 1 < 64 ? end - p - 1 : 64), p + 1);
	return -1;
}

/* libinih's reader: the next line into str (num bytes), without its newline and leading blanks,
 * or NULL at the end or at the first problem. */
static char *next_line(char *str, int num, void *stream)
{
	struct config_file *cf = stream;
	const char *p, *nl;
	size_t len;

	if (cf->failed && cf->loud)
		return NULL;
	if (cf->pos >= cf->size || num < 2)
		return NULL;
	p = cf->text + cf->pos;
	nl = memchr(p, '\n', cf->size - cf->pos);
	len = nl ? (size_t)(nl - p) : cf->size - cf->pos;
	cf->pos += len + (nl != NULL);
	cf->line++;
	if (memchr(p, '\0', len)) {
		problem(cf, cf->line, "a NUL byte; a configuration file is text, remove it");
		return NULL;
	}
	if (cf->line == 1 && len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3)) {
		p += 3; /* a UTF-8 byte order mark, which libinih would skip */
		len -= 3;
	}
	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	if (len > (size_t)num - 1) {
		problem(cf, cf->line, "the line is longer than %d characters (libinih's limit); shorten it",
			num - 1);
		return NULL;
	}
	if (len && *p == '[' && check_section(cf, p, len) < 0)
		return NULL;
	if (cf->stop && cf->line >= cf->stop)
		return NULL; /* libinih's own problem is here: reported by run_config_file */
	memcpy(str, p, len);
	str[len] = '\0';
	return str;
}

/* The boolean values of a flag: true, yes, on, 1 and false, no, off, 0. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off",
										       "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*out = !strcasecmp(s, yes[i]);
			return 0;
		}
	}
	return -1;
}

/* The single-valued key name on this line: a duplicate is a problem. 0 or -1. */
static int check_once(struct config_file *cf, const char *name)
{
	for (unsigned i = 0; i < cf->nr_seen; i++) {
		if (!strcmp(cf->seen[i].name, name)) {
			problem(cf, cf->line,
				"%s given again (first on line %u); give it once (only repeatable options "
				"such as disk and net may repeat)",
				name, cf->seen[i].line);
			return -1;
		}
	}
	if (cf->nr_seen >= CONFIG_MAX_KEYS) {
		problem(cf, cf->line, "too many keys; give each option once");
		return -1;
	}
	cf->seen[cf->nr_seen].name = vm_config_strdup(cf->cfg, name);
	if (!cf->seen[cf->nr_seen].name) {
		problem(cf, cf->line, "out of memory");
		return -1;
	}
	cf->seen[cf->nr_seen++].line = cf->line;
	return 0;
}

/* One key: the run option called name, set to value through run_option_set. */
static int set_key(struct config_file *cf, const char *name, const char *value)
{
	char context[512];
	bool repeatable, on;
	const char *v = NULL;
	int has_arg, ret;

	if (!strcmp(name, "config")) {
		problem(cf, cf->line,
			"config cannot be a key of a configuration file; give --config on "
			"the command line only");
		return -1;
	}
	has_arg = run_option_arg(name, &repeatable);
	if (has_arg < 0) {
		problem(cf, cf->line,
			"unknown key '%s'; the keys are the long options of kvmbox run --help "
			"(memory = 512M)",
			name);
		return -1;
	}
	if (cf->restore && !strcmp(name, "incoming")) {
		problem(cf, cf->line, "incoming is an option of kvmbox run, not of restore; remove it");
		return -1;
	}
	if (!repeatable && check_once(cf, name) < 0)
		return -1;
	if (has_arg == no_argument) {
		if (parse_bool(value, &on) < 0) {
			problem(cf, cf->line,
				"%s = %s: not a boolean; give %s = true or false (yes/no, on/off, 1/0)", name,
				value, name);
			return -1;
		}
		if (!on)
			return 0; /* as if not given */
	} else if (!*value && has_arg == required_argument) {
		problem(cf, cf->line, "%s has no value; give %s = VALUE as for --%s (kvmbox run --help)",
			name, name, name);
		return -1;
	} else if (*value) {
		/* Empty, an optional value is left out: mlock = is --mlock. */
		v = vm_config_strdup(cf->cfg, value);
		if (!v) {
			problem(cf, cf->line, "out of memory");
			return -1;
		}
	}
	/* The option's own message, after FILE:LINE. */
	snprintf(context, sizeof(context), "%s:%u: ", cf->path, cf->line);
	log_set_context(context);
	ret = run_option_set(cf->cfg, name, v);
	log_set_context(NULL);
	if (ret) {
		cf->failed = true;
		return -1;
	}
	return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_file *cf = user;

	if (!cf->loud)
		return 1; /* the first pass only finds libinih's first problem */
	if (cf->failed)
		return 0;
	if (!vm_section(section)) { /* next_line refuses the section line first */
		problem(cf, cf->line, "a key in unknown section [%s]; put it under [vm]", section);
		return 0;
	}
	return set_key(cf, name, value ? value : "") < 0 ? 0 : 1;
}

/* The whole file into cf->text. 0, or -1 after printing. */
static int read_file(struct config_file *cf)
{
	struct stat st;
	ssize_t r;
	int fd;

	fd = open(cf->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		log_error("--config %s: cannot open it: %s; give the path of a readable INI file", cf->path,
			  strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("--config %s: not a regular file; give the path of an INI file", cf->path);
		goto fail;
	}
	if (st.st_size > CONFIG_MAX_SIZE) {
		log_error("--config %s: %lld bytes, more than a configuration file's %d; give the right file",
			  cf->path, (long long)st.st_size, CONFIG_MAX_SIZE);
		goto fail;
	}
	cf->text = malloc((size_t)st.st_size + 1);
	if (!cf->text) {
		log_error("--config %s: out of memory", cf->path);
		goto fail;
	}
	/* Up to one byte more than it had: a file that grew meanwhile is refused, not cut. */
	while (cf->size <= (size_t)st.st_size) {
		r = read(fd, cf->text + cf->size, (size_t)st.st_size + 1 - cf->size);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_error("--config %s: cannot read it: %s; give a readable file", cf->path,
				  strerror(errno));
			goto fail;
		}
		if (!r)
			break;
		cf->size += (size_t)r;
	}
	if (cf->size > (size_t)st.st_size) {
		log_error("--config %s: it changed while being read; try again", cf->path);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

int run_config_file(struct vm_config *cfg, const char *path, bool restore)
{
	struct config_file cf = { .path = path, .cfg = cfg, .restore = restore };
	int first;

	if (read_file(&cf) < 0) {
		free(cf.text);
		return EXIT_USAGE;
	}
	/* First pass, quiet: where the first problem of libinih's or of the reader's is. Second
	 * pass: the keys before it are set (their own problems printed as they come), and the
	 * reader stops there. */
	first = ini_parse_stream(next_line, &cf, handler, &cf);
	if (first > 0 && (!cf.stop || (unsigned)first < cf.stop))
		cf.stop = (unsigned)first;
	cf.pos = 0;
	cf.line = 0;
	cf.failed = false;
	cf.loud = true;
	if (first < 0) {
		log_error("--config %s: out of memory", path);
		cf.failed = true;
	} else {
		ini_parse_stream(next_line, &cf, handler, &cf);
	}
	if (!cf.failed && cf.stop)
		problem(&cf, cf.stop, "not a `key = value` line, a [section] or a comment; fix the line");
	free(cf.text);
	return cf.failed ? EXIT_USAGE : 0;
}
#endif
