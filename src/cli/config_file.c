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
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"
#include "options.h"
#include "up.h"

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

int up_config_load(struct up_config *uc, const char *path)
{
	memset(uc, 0, sizeof(*uc));
	log_error("up %s: this kvmbox was built without libinih (make static-musl could not build it); "
		  "use a build with it (make, make static)",
		  path);
	return EXIT_USAGE;
}

void up_config_free(struct up_config *uc)
{
	(void)uc;
}
#else
#define CONFIG_MAX_SIZE (1 << 20)
#define CONFIG_MAX_KEYS 128

/* A key of a `kvmbox up` file's section, kept for merging [defaults] into the VMs and for the
 * VM's run arguments. */
struct up_entry {
	const char *name, *value; /* value NULL: an up key (applied to the section's up_vm) */
	unsigned line;
};
#define UP_MAX_ENTRIES  CONFIG_MAX_KEYS

/* A section of a `kvmbox up` file: [defaults] or a [vm NAME]. */
struct up_section {
	struct up_vm *vm; /* where its keys go (the defaults' scratch VM for [defaults]) */
	struct up_entry entries[UP_MAX_ENTRIES];
	unsigned nr_entries;
	char after[UP_MAX_VMS][UP_NAME_MAX + 1]; /* the names of its after keys */
	unsigned after_line[UP_MAX_VMS], nr_after;
	unsigned state_dir_line;
	const char *console_log;  /* as given */
	const char *snapshot_dir; /* as given */
	unsigned snapshot_every_line, snapshot_dir_line, restart_from_line;
};

struct config_file {
	const char *path;
	struct vm_config *cfg;
	bool restore;
	/* kvmbox up: the file's VMs, the sections ([0] is [defaults]), the current one. */
	struct up_config *up;
	struct up_vm *defaults;
	struct up_section *sections; /* 1 + UP_MAX_VMS */
	struct up_section *cur;      /* NULL: before any section */
	unsigned defaults_line;
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

/* The sections whose keys are the VM's in a `kvmbox run --config` file: the top of the file (no
 * section) and [vm]. A `kvmbox up` file has [defaults] and [vm NAME] instead (up_section). */
static bool vm_section(const char *name)
{
	return !*name || !strcmp(name, "vm");
}

static void problem(struct config_file *cf, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int up_section_line(struct config_file *cf, const char *name);

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
		if (cf->up)
			return up_section_line(cf, name);
		if (vm_section(name))
			return 0;
	} else if (cf->up) {
		problem(cf, cf->line,
			"a section name longer than %zu characters; give [vm NAME] a shorter NAME",
			sizeof(name) - 1);
		return -1;
	}
	problem(cf, cf->line,
		"unknown section [%.*s]; put the VM's keys at the top of the file or under [vm]%s",
		(int)(end - p - 1 < 64 ? end - p - 1 : 64), p + 1,
		!strncmp(p + 1, "vm ", 3) || !strncmp(p + 1, "defaults]", 9)
			? " (a file of VMs is for kvmbox up)"
			: "");
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

/* Run option name = value (NULL for a flag or an optional value left out) into cfg, its own
 * message after FILE:LINE. 0 or -1. */
static int apply_option(struct config_file *cf, struct vm_config *cfg, unsigned line, const char *name,
			const char *value)
{
	char context[512];
	int ret;

	snprintf(context, sizeof(context), "%s:%u: ", cf->path, line);
	log_set_context(context);
	ret = run_option_set(cfg, name, value);
	log_set_context(NULL);
	if (ret) {
		cf->failed = true;
		return -1;
	}
	return 0;
}

/* One key: the run option called name, set to value through run_option_set. */
static int set_key(struct config_file *cf, const char *name, const char *value)
{
	bool repeatable, on;
	const char *v = NULL;
	int has_arg;

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
	return apply_option(cf, cf->cfg, cf->line, name, v);
}

static int up_handler(struct config_file *cf, const char *name, const char *value);
static void up_reset(struct config_file *cf);

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_file *cf = user;

	if (!cf->loud)
		return 1; /* the first pass only finds libinih's first problem */
	if (cf->failed)
		return 0;
	if (cf->up)
		return up_handler(cf, name, value ? value : "") < 0 ? 0 : 1;
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

/* Read and parse cf->path: 0, or -1 after printing. cf->text is the caller's to free. */
static int parse_file(struct config_file *cf)
{
	int first;

	if (read_file(cf) < 0)
		return -1;
	/* First pass, quiet: where the first problem of libinih's or of the reader's is. Second
	 * pass: the keys before it are set (their own problems printed as they come), and the
	 * reader stops there. */
	first = ini_parse_stream(next_line, cf, handler, cf);
	if (first > 0 && (!cf->stop || (unsigned)first < cf->stop))
		cf->stop = (unsigned)first;
	cf->pos = 0;
	cf->line = 0;
	cf->failed = false;
	cf->loud = true;
	if (cf->up)
		up_reset(cf);
	if (first < 0) {
		log_error("--config %s: out of memory", cf->path);
		cf->failed = true;
	} else {
		ini_parse_stream(next_line, cf, handler, cf);
	}
	if (!cf->failed && cf->stop)
		problem(cf, cf->stop, "not a `key = value` line, a [section] or a comment; fix the line");
	return cf->failed ? -1 : 0;
}

int run_config_file(struct vm_config *cfg, const char *path, bool restore)
{
	struct config_file cf = { .path = path, .cfg = cfg, .restore = restore };
	int ret = parse_file(&cf);

	free(cf.text);
	return ret < 0 ? EXIT_USAGE : 0;
}

/* ---- kvmbox up: [defaults] and [vm NAME] ------------------------------------------------- */

/* The supervisor's keys (not run options). */
static const char *const up_keys[] = { "after",          "restart",          "restart-limit",
				       "console-log",    "shutdown-timeout", "state-dir",
				       "snapshot-every", "snapshot-dir",     "restart-from" };

static bool is_up_key(const char *name)
{
	for (size_t i = 0; i < sizeof(up_keys) / sizeof(up_keys[0]); i++)
		if (!strcmp(up_keys[i], name))
			return true;
	return false;
}

static void up_vm_init(struct up_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm_config_init(&vm->cfg);
	vm->restart_limit = UP_DEFAULT_LIMIT;
	vm->shutdown_timeout = UP_SHUTDOWN_TIMEOUT;
}

/* Between the two passes, and at the end: no VM, no section. */
static void up_reset(struct config_file *cf)
{
	for (unsigned i = 0; i < cf->up->nr_vms; i++)
		vm_config_free_devices(&cf->up->vms[i].cfg);
	vm_config_free_devices(&cf->defaults->cfg);
	cf->up->nr_vms = 0;
	up_vm_init(cf->defaults);
	memset(cf->sections, 0, sizeof(*cf->sections) * (1 + UP_MAX_VMS));
	cf->sections[0].vm = cf->defaults;
	cf->cur = NULL;
	cf->cfg = NULL;
	cf->defaults_line = 0;
	cf->up->state_dir = NULL;
}

/* A section line of a `kvmbox up` file: [defaults] or [vm NAME] becomes the current section.
 * 0, or -1 after a problem. */
static int up_section_line(struct config_file *cf, const char *name)
{
	struct up_config *uc = cf->up;
	struct up_vm *vm;
	size_t len;

	cf->nr_seen = 0; /* each section has its own keys */
	if (!strcmp(name, "defaults")) {
		if (cf->defaults_line) {
			problem(cf, cf->line, "[defaults] given again (first on line %u); give it once",
				cf->defaults_line);
			return -1;
		}
		cf->defaults_line = cf->line;
		cf->cur = &cf->sections[0];
		cf->cfg = &cf->defaults->cfg;
		return 0;
	}
	if (strncmp(name, "vm ", 3)) {
		problem(cf, cf->line,
			"unknown section [%s]; a file for kvmbox up has [defaults] and [vm NAME]", name);
		return -1;
	}
	name += 3;
	while (*name == ' ')
		name++;
	len = strlen(name);
	while (len && name[len - 1] == ' ')
		len--;
	if (!up_name_valid(name, len)) {
		problem(cf, cf->line,
			"[vm %.*s]: a VM name is 1 to %d letters, digits, '_', '.' or '-' (not first); "
			"rename it",
			(int)len, name, UP_NAME_MAX);
		return -1;
	}
	for (unsigned i = 0; i < uc->nr_vms; i++) {
		if (strlen(uc->vms[i].name) == len && !memcmp(uc->vms[i].name, name, len)) {
			problem(cf, cf->line,
				"[vm %s] given again (first on line %u); give each VM its own name",
				uc->vms[i].name, uc->vms[i].line);
			return -1;
		}
	}
	if (uc->nr_vms >= UP_MAX_VMS) {
		problem(cf, cf->line, "more than %d VMs; kvmbox up runs at most %d from one file", UP_MAX_VMS,
			UP_MAX_VMS);
		return -1;
	}
	vm = &uc->vms[uc->nr_vms];
	up_vm_init(vm);
	memcpy(vm->name, name, len);
	vm->line = cf->line;
	cf->cur = &cf->sections[1 + uc->nr_vms++];
	cf->cur->vm = vm;
	cf->cfg = &vm->cfg;
	return 0;
}

static int up_entry_add(struct config_file *cf, const char *name, const char *value)
{
	struct up_section *sec = cf->cur;
	struct up_entry *e;

	if (sec->nr_entries >= UP_MAX_ENTRIES) {
		problem(cf, cf->line, "too many keys in one section; give each option once");
		return -1;
	}
	e = &sec->entries[sec->nr_entries];
	e->name = vm_config_strdup(&sec->vm->cfg, name);
	e->value = value ? vm_config_strdup(&sec->vm->cfg, value) : NULL;
	if (!e->name || (value && !e->value)) {
		problem(cf, cf->line, "out of memory");
		return -1;
	}
	e->line = cf->line;
	sec->nr_entries++;
	return 0;
}

/* The after key's names: "a, b" or "a b". */
static int up_after(struct config_file *cf, const char *value)
{
	struct up_section *sec = cf->cur;
	const char *p = value;

	if (!*value) {
		problem(cf, cf->line, "after has no value; give after = NAME of another [vm NAME]");
		return -1;
	}
	while (*p) {
		size_t len = strcspn(p, ", \t");

		if (len) {
			if (len > UP_NAME_MAX || sec->nr_after >= UP_MAX_VMS) {
				problem(cf, cf->line,
					"after = %s: no such VM; give the NAME of another [vm NAME]", value);
				return -1;
			}
			memcpy(sec->after[sec->nr_after], p, len);
			sec->after[sec->nr_after][len] = '\0';
			sec->after_line[sec->nr_after++] = cf->line;
		}
		p += len;
		p += strspn(p, ", \t");
	}
	return 0;
}

/* A supervisor key of the current section. 0 or -1. */
static int up_key(struct config_file *cf, const char *name, const char *value)
{
	struct up_section *sec = cf->cur;
	struct up_vm *vm = sec->vm;
	bool defaults = sec == &cf->sections[0];
	unsigned n;

	if (strcmp(name, "after") && check_once(cf, name) < 0)
		return -1;
	if (!strcmp(name, "state-dir")) {
		if (!defaults) {
			problem(cf, cf->line,
				"state-dir is a key of [defaults] (one state directory for all the VMs); move it "
				"there");
			return -1;
		}
		if (value[0] != '/' || strlen(value) >= sizeof(cf->up->state_dir_buf) - UP_NAME_MAX - 8) {
			problem(cf, cf->line,
				"state-dir = %s: give an absolute path shorter than %zu characters", value,
				sizeof(cf->up->state_dir_buf) - UP_NAME_MAX - 8);
			return -1;
		}
		snprintf(cf->up->state_dir_buf, sizeof(cf->up->state_dir_buf), "%s", value);
		cf->up->state_dir = cf->up->state_dir_buf;
		sec->state_dir_line = cf->line;
	} else if (!strcmp(name, "after")) {
		if (defaults) {
			problem(cf, cf->line,
				"after in [defaults] would make every VM wait for another; give it under the "
				"[vm NAME] that waits");
			return -1;
		}
		if (up_after(cf, value) < 0)
			return -1;
	} else if (!strcmp(name, "restart")) {
		if (!strcmp(value, "no"))
			vm->restart = UP_RESTART_NO;
		else if (!strcmp(value, "on-failure"))
			vm->restart = UP_RESTART_ON_FAILURE;
		else if (!strcmp(value, "always"))
			vm->restart = UP_RESTART_ALWAYS;
		else {
			problem(cf, cf->line, "restart = %s: give restart = no, on-failure or always", value);
			return -1;
		}
	} else if (!strcmp(name, "restart-limit")) {
		if (parse_uint(value, &n) < 0 || n > 1000) {
			problem(cf, cf->line,
				"restart-limit = %s: give a number of restarts in a row, 0 to 1000", value);
			return -1;
		}
		vm->restart_limit = n;
	} else if (!strcmp(name, "shutdown-timeout")) {
		if (parse_uint(value, &n) < 0 || n < 1 || n > 86400) {
			problem(cf, cf->line, "shutdown-timeout = %s: give whole seconds, 1 to 86400", value);
			return -1;
		}
		vm->shutdown_timeout = n;
	} else if (!strcmp(name, "snapshot-every")) {
		uint64_t ms;

		if (up_parse_duration(value, &ms) < 0 || (ms && ms < UP_SNAPSHOT_MIN_MS) ||
		    ms > UP_SNAPSHOT_MAX_MS) {
			problem(cf, cf->line,
				"snapshot-every = %s: give a duration like 500ms, 30s, 5m or 1h, from %llums "
				"to 30 days (0: never)",
				value, (unsigned long long)UP_SNAPSHOT_MIN_MS);
			return -1;
		}
		vm->snapshot_every_ms = ms;
		sec->snapshot_every_line = cf->line;
	} else if (!strcmp(name, "restart-from")) {
		if (!strcmp(value, "boot"))
			vm->restart_from = UP_FROM_BOOT;
		else if (!strcmp(value, "snapshot"))
			vm->restart_from = UP_FROM_SNAPSHOT;
		else {
			problem(cf, cf->line, "restart-from = %s: give restart-from = snapshot or boot",
				value);
			return -1;
		}
		sec->restart_from_line = cf->line;
	} else if (!strcmp(name, "snapshot-dir")) {
		if (!*value) {
			problem(cf, cf->line, "snapshot-dir has no value; give snapshot-dir = DIRECTORY");
			return -1;
		}
		sec->snapshot_dir = vm_config_strdup(&vm->cfg, value);
		if (!sec->snapshot_dir) {
			problem(cf, cf->line, "out of memory");
			return -1;
		}
		sec->snapshot_dir_line = cf->line;
	} else { /* console-log */
		if (defaults) {
			problem(cf, cf->line,
				"console-log in [defaults] would give every VM one file; give it under each "
				"[vm NAME] (the default is STATE_DIR/NAME.console.log)");
			return -1;
		}
		if (!*value) {
			problem(cf, cf->line, "console-log has no value; give console-log = PATH");
			return -1;
		}
		sec->console_log = vm_config_strdup(&vm->cfg, value);
		if (!sec->console_log) {
			problem(cf, cf->line, "out of memory");
			return -1;
		}
	}
	return up_entry_add(cf, name, NULL);
}

/* Key name on line set vm's option: the lines the checks across VMs name (up_config.c). devs:
 * the VM's device count before. */
static void note_lines(struct up_vm *vm, unsigned devs, const char *name, unsigned line)
{
	if (vm->cfg.nr_devs > devs)
		vm->dev_line[vm->cfg.nr_devs - 1] = line;
	if (!strcmp(name, "vcpu-affinity"))
		vm->affinity_line = line;
}

/* A key of a `kvmbox up` file. 0 or -1. */
static int up_handler(struct config_file *cf, const char *name, const char *value)
{
	unsigned devs;

	if (!cf->cur) {
		problem(cf, cf->line, "%s: a key before any section; put it under [defaults] or [vm NAME]",
			name);
		return -1;
	}
	if (is_up_key(name))
		return up_key(cf, name, value);
	if (!strcmp(name, "api")) {
		problem(cf, cf->line,
			"api is kvmbox up's to give: each VM's control socket is STATE_DIR/NAME.sock "
			"(or kvmbox ctl UP_SOCKET vm NAME ...); remove it");
		return -1;
	}
	if (!strcmp(name, "incoming")) {
		problem(cf, cf->line, "incoming is an option of kvmbox run, not of kvmbox up; remove it");
		return -1;
	}
	devs = cf->cur->vm->cfg.nr_devs;
	if (set_key(cf, name, value) < 0)
		return -1;
	note_lines(cf->cur->vm, devs, name, cf->line);
	return up_entry_add(cf, name, value);
}

static bool up_section_has(const struct up_section *sec, const char *name)
{
	for (unsigned i = 0; i < sec->nr_entries; i++)
		if (!strcmp(sec->entries[i].name, name))
			return true;
	return false;
}

/* The run argument of entry e into vm->argv (nothing for a flag set to false), and the option
 * itself into vm->cfg when apply (a [defaults] key). 0 or -1. */
static int up_arg(struct config_file *cf, struct up_vm *vm, const struct up_entry *e, bool apply)
{
	bool repeatable, on = true;
	const char *value = *e->value ? e->value : NULL, *arg;
	char *s = NULL;
	unsigned devs = vm->cfg.nr_devs;

	if (run_option_arg(e->name, &repeatable) == no_argument) {
		parse_bool(e->value, &on); /* checked when read */
		if (!on)
			return 0;
		value = NULL;
	}
	if (apply) {
		if (apply_option(cf, &vm->cfg, e->line, e->name, value) < 0)
			return -1;
		note_lines(vm, devs, e->name, e->line);
	}
	if (vm->argc >= UP_MAX_ARGS) {
		problem(cf, e->line, "[vm %s] has more than %d options; give fewer", vm->name, UP_MAX_ARGS);
		return -1;
	}
	if (asprintf(&s, value ? "--%s=%s" : "--%s", e->name, value) < 0 ||
	    !(arg = vm_config_strdup(&vm->cfg, s))) {
		free(s);
		problem(cf, e->line, "out of memory");
		return -1;
	}
	free(s);
	vm->argv[vm->argc++] = arg;
	vm->argv[vm->argc] = NULL;
	return 0;
}

/* VM v's snapshot keys, [defaults] merged: its snapshot paths, and the checks. 0 or -1. */
static int up_merge_snapshot(struct config_file *cf, unsigned v)
{
	const struct up_section *def = &cf->sections[0], *sec = &cf->sections[1 + v];
	struct up_vm *vm = sec->vm;
	const char *dir = sec->snapshot_dir ? sec->snapshot_dir : def->snapshot_dir;
	unsigned dir_line = sec->snapshot_dir ? sec->snapshot_dir_line : def->snapshot_dir_line;
	unsigned every_line = sec->snapshot_every_line ? sec->snapshot_every_line : def->snapshot_every_line;
	unsigned from_line = sec->restart_from_line ? sec->restart_from_line : def->restart_from_line;
	char *path = NULL, *snap = NULL, *part = NULL;
	struct stat st;

	/* A relative snapshot-dir is in the state directory, as a console log is. */
	if (!dir)
		path = strdup(cf->up->state_dir);
	else if (dir[0] == '/')
		path = strdup(dir);
	else if (asprintf(&path, "%s/%s", cf->up->state_dir, dir) < 0)
		path = NULL;
	if (path && (asprintf(&snap, "%s/%s" UP_SNAPSHOT_SUFFIX, path, vm->name) < 0 ||
		     asprintf(&part, "%s/%s" UP_SNAPSHOT_PART, path, vm->name) < 0)) {
		snap = part = NULL;
	}
	vm->snapshot_dir = path ? vm_config_strdup(&vm->cfg, path) : NULL;
	vm->snapshot_path = snap ? vm_config_strdup(&vm->cfg, snap) : NULL;
	vm->snapshot_part = part ? vm_config_strdup(&vm->cfg, part) : NULL;
	free(path);
	free(snap);
	free(part);
	if (!vm->snapshot_dir || !vm->snapshot_path || !vm->snapshot_part) {
		problem(cf, vm->line, "out of memory");
		return -1;
	}
	/* The state directory is made when up starts; a snapshot-dir given must be there. */
	if (dir && (stat(vm->snapshot_dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
		int err = errno;

		if (stat(vm->snapshot_dir, &st) == 0)
			err = ENOTDIR;
		problem(cf, dir_line, "snapshot-dir = %s: %s: %s; create that directory or give another", dir,
			vm->snapshot_dir, strerror(err));
		return -1;
	}
	if (vm->restart_from == UP_FROM_SNAPSHOT && !vm->snapshot_every_ms) {
		problem(cf, from_line,
			"restart-from = snapshot for [vm %s], which has no snapshot-every (nothing to "
			"restart from); give snapshot-every = DURATION, or restart-from = boot",
			vm->name);
		return -1;
	}
	/* Under --jail the VM writes its snapshot inside the jail, where up cannot rename it. */
	if (vm->snapshot_every_ms && vm->cfg.sandbox.jail) {
		problem(cf, every_line,
			"snapshot-every for [vm %s], which has jail = %s: its snapshots would land inside "
			"the jail, out of up's reach; remove jail or snapshot-every",
			vm->name, vm->cfg.sandbox.jail);
		return -1;
	}
	return 0;
}

/* [defaults] into VM v (each key the VM does not give itself), its run arguments, its console
 * log's path. 0 or -1. */
static int up_merge(struct config_file *cf, unsigned v)
{
	const struct up_section *def = &cf->sections[0], *sec = &cf->sections[1 + v];
	struct up_vm *vm = sec->vm;
	const char *log = sec->console_log;
	char *path = NULL;

	for (unsigned i = 0; i < def->nr_entries; i++) {
		const struct up_entry *e = &def->entries[i];

		if (up_section_has(sec, e->name))
			continue;
		if (e->value) {
			if (up_arg(cf, vm, e, true) < 0)
				return -1;
		} else if (!strcmp(e->name, "restart")) {
			vm->restart = cf->defaults->restart;
		} else if (!strcmp(e->name, "restart-limit")) {
			vm->restart_limit = cf->defaults->restart_limit;
		} else if (!strcmp(e->name, "shutdown-timeout")) {
			vm->shutdown_timeout = cf->defaults->shutdown_timeout;
		} else if (!strcmp(e->name, "snapshot-every")) {
			vm->snapshot_every_ms = cf->defaults->snapshot_every_ms;
		} else if (!strcmp(e->name, "restart-from")) {
			vm->restart_from = cf->defaults->restart_from;
		}
	}
	for (unsigned i = 0; i < sec->nr_entries; i++)
		if (sec->entries[i].value && up_arg(cf, vm, &sec->entries[i], false) < 0)
			return -1;
	if (!vm->cfg.kernel) {
		problem(cf, vm->line, "[vm %s] has no kernel; give kernel = PATH under it or in [defaults]",
			vm->name);
		return -1;
	}
	/* A relative console log is in the state directory. */
	if (log && log[0] == '/')
		path = strdup(log);
	else if (asprintf(&path, log ? "%s/%s" : "%s/%s.console.log", cf->up->state_dir,
			  log ? log : vm->name) < 0)
		path = NULL;
	vm->console_log = path ? vm_config_strdup(&vm->cfg, path) : NULL;
	free(path);
	if (!vm->console_log) {
		problem(cf, vm->line, "out of memory");
		return -1;
	}
	return up_merge_snapshot(cf, v);
}

/* The after keys' names as VM indexes. 0 or -1. */
static int up_resolve_after(struct config_file *cf, unsigned v)
{
	const struct up_section *sec = &cf->sections[1 + v];
	struct up_config *uc = cf->up;
	struct up_vm *vm = &uc->vms[v];

	for (unsigned a = 0; a < sec->nr_after; a++) {
		unsigned w = 0;

		while (w < uc->nr_vms && strcmp(uc->vms[w].name, sec->after[a]))
			w++;
		if (w == uc->nr_vms || w == v) {
			problem(cf, sec->after_line[a], "after = %s: %s; give the NAME of another [vm NAME]",
				sec->after[a],
				w == v ? "a VM cannot start after itself" : "no such VM in this file");
			return -1;
		}
		vm->after[vm->nr_after] = w;
		vm->after_line[vm->nr_after++] = sec->after_line[a];
	}
	return 0;
}

/* The default state directory: /run/kvmbox for root, else $XDG_RUNTIME_DIR/kvmbox, else
 * /tmp/kvmbox-UID. */
static void up_default_state_dir(struct up_config *uc)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (!geteuid())
		snprintf(uc->state_dir_buf, sizeof(uc->state_dir_buf), "%s", UP_DEFAULT_DIR);
	else if (xdg && xdg[0] == '/' && strlen(xdg) < sizeof(uc->state_dir_buf) - UP_NAME_MAX - 16)
		snprintf(uc->state_dir_buf, sizeof(uc->state_dir_buf), "%s/kvmbox", xdg);
	else
		snprintf(uc->state_dir_buf, sizeof(uc->state_dir_buf), "/tmp/kvmbox-%u", (unsigned)geteuid());
	uc->state_dir = uc->state_dir_buf;
}

int up_config_load(struct up_config *uc, const char *path)
{
	struct config_file cf = { .path = path, .up = uc };
	struct sockaddr_un sa;
	struct up_vm defaults;
	int ret = -1;

	memset(uc, 0, sizeof(*uc));
	uc->path = path;
	cf.defaults = &defaults;
	cf.sections = calloc(1 + UP_MAX_VMS, sizeof(*cf.sections));
	if (!cf.sections) {
		log_error("%s: out of memory", path);
		return EXIT_USAGE;
	}
	up_vm_init(&defaults);
	up_reset(&cf);
	if (parse_file(&cf) < 0)
		goto out;
	if (!uc->nr_vms) {
		log_error("%s: no [vm NAME] section; describe each VM in one (see kvmbox(1), kvmbox up)",
			  path);
		goto out;
	}
	if (!uc->state_dir)
		up_default_state_dir(uc);
	for (unsigned v = 0; v < uc->nr_vms; v++) {
		if (strlen(uc->state_dir) + strlen(uc->vms[v].name) + 7 > sizeof(sa.sun_path)) {
			problem(&cf,
				cf.sections[0].state_dir_line ? cf.sections[0].state_dir_line
							      : uc->vms[v].line,
				"the control socket %s/%s.sock would be longer than %zu characters; give a "
				"shorter state-dir or VM name",
				uc->state_dir, uc->vms[v].name, sizeof(sa.sun_path) - 1);
			goto out;
		}
		if (up_merge(&cf, v) < 0 || up_resolve_after(&cf, v) < 0)
			goto out;
	}
	if (up_order(uc) < 0 || up_check_conflicts(uc) < 0)
		goto out;
	ret = 0;
out:
	vm_config_free_devices(&defaults.cfg);
	free(cf.sections);
	free(cf.text);
	return ret < 0 ? EXIT_USAGE : 0;
}

void up_config_free(struct up_config *uc)
{
	for (unsigned i = 0; i < uc->nr_vms; i++)
		vm_config_free_devices(&uc->vms[i].cfg);
	uc->nr_vms = 0;
}
#endif
