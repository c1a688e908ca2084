#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/devtype.h"
#include "../core/log.h"
#include "../core/sandbox.h"
#include "../core/util.h"

int parse_uint(const char *s, unsigned *out)
{
	unsigned long long v = 0;

	if (!s || !*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > 0xffffffffULL)
			return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (toupper((unsigned char)*p)) {
	case '\0':
		mult = 1ULL << 20;
		break;
	case 'K':
		mult = 1ULL << 10;
		p++;
		break;
	case 'M':
		mult = 1ULL << 20;
		p++;
		break;
	case 'G':
		mult = 1ULL << 30;
		p++;
		break;
	case 'T':
		mult = 1ULL << 40;
		p++;
		break;
	default:
		return -1;
	}
	/* Accept an optional "iB" or "B" after the unit letter. */
	if (*p == 'i' || *p == 'I')
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

const char *format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	/* The largest unit that divides it exactly, as a user would write it. */
	while (u < 3 && bytes && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)bytes, units[u]);
	return buf;
}

void print_main_help(void)
{
	printf("kvmbox %s - a small KVM virtual machine monitor\n"
	       "\n"
	       "usage: kvmbox run --kernel PATH [options]   boot a VM (kvmbox run --help)\n"
	       "       kvmbox restore FILE [options]       resume a snapshot (kvmbox restore --help)\n"
	       "       kvmbox up [--api SOCKET] FILE       run and supervise a set of VMs (kvmbox up --help)\n"
	       "       kvmbox ctl SOCKET COMMAND [ARG]     control a running VM (kvmbox ctl --help)\n"
	       "       kvmbox --version\n"
	       "       kvmbox --help\n",
	       KVMBOX_VERSION);
}

/* ---- the run options ---------------------------------------------------------------------- */

static int set_cpus(struct vm_config *c, const char *a)
{
	if (parse_uint(a, &c->cpus) < 0) {
		log_error("--cpus '%s': not a number; give a vCPU count like --cpus 2", a);
		return EXIT_USAGE;
	}
	return 0;
}

static int set_memory(struct vm_config *c, const char *a)
{
	if (parse_size(a, &c->memory) < 0) {
		log_error("--memory '%s': not a size; give a size like 512M or 2G", a);
		return EXIT_USAGE;
	}
	return 0;
}

static int set_console(struct vm_config *c, const char *a)
{
	if (!strcmp(a, "serial"))
		c->console = CONSOLE_SERIAL;
	else if (!strcmp(a, "none"))
		c->console = CONSOLE_NONE;
	else if (!strcmp(a, "virtio"))
		c->console = CONSOLE_VIRTIO;
	else {
		log_error("--console '%s': unknown console; give serial, virtio or none", a);
		return EXIT_USAGE;
	}
	return 0;
}

/* The host tuning options (core/tuning.c parses them). */
static int set_tuning(struct vm_config *c, const char *name, const char *a)
{
	return vm_tuning_set(&c->tuning, name, a) < 0 ? EXIT_USAGE : 0;
}
static int set_vcpu_affinity(struct vm_config *c, const char *a)
{
	return set_tuning(c, "vcpu-affinity", a);
}
static int set_io_affinity(struct vm_config *c, const char *a)
{
	return set_tuning(c, "io-affinity", a);
}
static int set_rt_priority(struct vm_config *c, const char *a)
{
	return set_tuning(c, "rt-priority", a);
}
static int set_mlock(struct vm_config *c, const char *a)
{
	return set_tuning(c, "mlock", a);
}
static int set_hugepages(struct vm_config *c, const char *a)
{
	return set_tuning(c, "hugepages", a);
}
static int set_prealloc(struct vm_config *c, const char *a)
{
	return set_tuning(c, "prealloc", a);
}

static int set_seccomp(struct vm_config *c, const char *a)
{
	if (sandbox_parse_seccomp(a, &c->sandbox.seccomp) < 0) {
		log_error("--seccomp '%s': unknown mode; give on, log or off", a);
		return EXIT_USAGE;
	}
	return 0;
}

static int set_user(struct vm_config *c, const char *a)
{
	if (!*a || a[0] == ':' || a[strlen(a) - 1] == ':') {
		log_error("--user '%s': give USER[:GROUP] or UID:GID", a);
		return EXIT_USAGE;
	}
	c->sandbox.user = a;
	return 0;
}

static int set_jail(struct vm_config *c, const char *a)
{
	if (a[0] != '/' || !strcmp(a, "/")) {
		log_error("--jail '%s': give the absolute path of a directory other than /", a);
		return EXIT_USAGE;
	}
	c->sandbox.jail = a;
	return 0;
}

static int set_migration_key(struct vm_config *c, const char *a)
{
	c->keys.migration_key_file = a;
	return 0;
}

static int set_insecure_migration(struct vm_config *c, const char *a)
{
	c->keys.insecure_migration = true;
	return 0;
}

static int set_snapshot_key(struct vm_config *c, const char *a)
{
	c->keys.snapshot_key_file = a;
	return 0;
}

static int set_cgroup(struct vm_config *c, const char *a)
{
	if (a[0] != '/') {
		log_error("--cgroup '%s': give the absolute path of a cgroup v2 directory", a);
		return EXIT_USAGE;
	}
	c->sandbox.cgroup = a;
	return 0;
}

/* The run options that are not devices; the device types (core/devtype.h) add theirs, and
 * --help lists both in this order. An option either stores its value as a string (str), sets
 * a flag (flag), both at their offset in struct vm_config, or parses it (set). */
#define STR(field)  .str = offsetof(struct vm_config, field) + 1
#define FLAG(field) .flag = offsetof(struct vm_config, field) + 1
static const struct run_option {
	const char *name;
	char short_opt;
	const char *arg; /* NULL: a flag; "[=...]": an optional value (--name=VALUE) */
	const char *help;
	size_t str, flag; /* 1 + the offset of a const char * / bool field, or 0 */
	int (*set)(struct vm_config *c, const char *arg); /* 0, or EXIT_USAGE after printing */
} run_options[] = {
	{ "kernel", 'k', "PATH", "Linux bzImage, or ELF vmlinux with a PVH entry note", STR(kernel) },
	{ "initrd", 'i', "PATH", "initial ramdisk", STR(initrd) },
	{ "append", 'a', "STRING", "kernel command line", STR(append) },
	{ "cpus", 'c', "N", "number of vCPUs (default 1)", .set = set_cpus },
	{ "memory", 'm', "SIZE", "guest RAM, K/M/G/T suffix (default 256M; no suffix = MiB)",
	  .set = set_memory },
	{ "console", 0, "KIND", "serial (default: ttyS0 on stdin/stdout), virtio (hvc0) or none",
	  .set = set_console },
	{ "api", 0, "PATH", "control socket (kvmbox ctl PATH ...; see docs/API.md)", STR(api) },
	{ "incoming", 0, "URI", "wait for a live migration on tcp:IP:PORT or unix:PATH", STR(incoming) },
	{ "no-reboot", 0, NULL, "a guest reboot ends kvmbox instead of restarting the guest",
	  FLAG(no_reboot) },
	{ "stats", 0, NULL, "print exit counters on stderr when the VM stops", FLAG(stats) },
	{ "vcpu-affinity", 0, "MAP", "host CPUs per vCPU: 0=2,1=3 (a list: 0=2-3,5); none",
	  .set = set_vcpu_affinity },
	{ "io-affinity", 0, "CPUS", "host CPUs of the device workers, main loop and control socket",
	  .set = set_io_affinity },
	{ "rt-priority", 0, "N", "vCPU threads SCHED_FIFO at N (1-99; 0: off); see kvmbox(1)",
	  .set = set_rt_priority },
	{ "mlock", 0, "[=on|off]", "lock guest RAM and kvmbox's memory (RLIMIT_MEMLOCK)", .set = set_mlock },
	{ "hugepages", 0, "[=PATH|off]", "guest RAM in 2 MiB huge pages, or from a hugetlbfs directory",
	  .set = set_hugepages },
	{ "prealloc", 0, "[=on|off]", "populate all guest RAM before the guest starts", .set = set_prealloc },
	{ "seccomp", 0, "MODE", "on (default): per-thread system call filters; log: only log violations; off",
	  .set = set_seccomp },
	{ "user", 0, "USER[:GROUP]", "drop to these ids (or UID:GID) once every host resource is open",
	  .set = set_user },
	{ "jail", 0, "DIR", "run inside DIR in new namespaces (needs root; see docs/SECURITY.md)",
	  .set = set_jail },
	{ "cgroup", 0, "PATH", "join this existing cgroup v2 first", .set = set_cgroup },
	{ "migration-key", 0, "FILE", "encrypt and authenticate migrations with this 32-byte key",
	  .set = set_migration_key },
	{ "insecure-migration", 0, NULL, "allow migrations over TCP without a key",
	  .set = set_insecure_migration },
	{ "snapshot-key", 0, "FILE", "sign snapshots written with this 32-byte key (restore checks it)",
	  .set = set_snapshot_key },
};
#undef STR
#undef FLAG

static int option_apply(const struct run_option *o, struct vm_config *c, const char *value)
{
	if (o->str)
		*(const char **)(void *)((char *)c + o->str - 1) = value;
	else if (o->flag)
		*(bool *)((char *)c + o->flag - 1) = true;
	else
		return o->set(c, value);
	return 0;
}

static int option_has_arg(const char *arg)
{
	return !arg ? no_argument : arg[0] == '[' ? optional_argument : required_argument;
}

static void help_line(char short_opt, const char *name, const char *arg, const char *help)
{
	char left[96];

	snprintf(left, sizeof(left), "%c%c%c --%s%s%s", short_opt ? '-' : ' ', short_opt ? short_opt : ' ',
		 short_opt ? ',' : ' ', name, arg && arg[0] != '[' ? " " : "", arg ? arg : "");
	if (strlen(left) < 24)
		printf("  %-24s%s\n", left, help);
	else
		printf("  %s\n  %-24s%s\n", left, "", help);
}

/* The run options and the device types' (without --incoming for restore). */
static void print_run_options(bool restore)
{
	for (size_t i = 0; i < ARRAY_SIZE(run_options); i++)
		if (!restore || strcmp(run_options[i].name, "incoming"))
			help_line(run_options[i].short_opt, run_options[i].name, run_options[i].arg,
				  run_options[i].help);
	for (unsigned i = 0; i < nr_device_types; i++)
		help_line(device_types[i]->short_opt, device_types[i]->option, device_types[i]->arg,
			  device_types[i]->help);
	help_line(0, "config", "FILE",
		  "read run options from this INI file (kvmbox(1)); the command line's win");
	help_line('h', "help", NULL, "this text");
}

void print_run_help(void)
{
	printf("usage: kvmbox run --kernel PATH [options]\n\n");
	print_run_options(false);
	printf("\n"
	       "With --incoming, the VM's host resources come from this command line as for a boot;\n"
	       "the source's configuration is only checked against it (see kvmbox restore --help).\n"
	       "On a terminal, Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A.\n"
	       "Exit status: 0 guest powered off (or rebooted with --no-reboot), 1 the VM could not\n"
	       "start, 2 usage error, 3 guest crashed, 4 host failure while running, 128+N signal N.\n");
}

void print_restore_help(void)
{
	printf("usage: kvmbox restore FILE --kernel PATH [options]\n"
	       "\n"
	       "Resume a VM from a snapshot written by `kvmbox ctl SOCKET snapshot|hibernate FILE`.\n"
	       "Guest RAM is mapped from the file copy-on-write, so restoring does not take longer\n"
	       "for a bigger guest. The host resources come from this command line, never from the\n"
	       "file: give the kernel, initrd, disks, taps, console and tuning as for kvmbox run. The\n"
	       "file's configuration is only checked against them: the same --memory and --cpus, the\n"
	       "same devices in the same order (ro, serial, MAC) and a virtio console or not; its\n"
	       "kernel command line is used when no --append is given.\n"
	       "\n"
	       "      --copy        read guest RAM into memory instead of mapping the file\n"
	       "      --no-verify   skip the RAM checksum (state checksums are always checked;\n"
	       "                    not with --snapshot-key, whose check covers RAM too)\n"
	       "      --paused      stay paused after the restore (resume with kvmbox ctl)\n");
	print_run_options(true);
}

void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->memory = DEFAULT_MEMORY;
	cfg->console = CONSOLE_SERIAL;
	cfg->sandbox.seccomp = sandbox_default_mode();
}

int run_option_set(struct vm_config *cfg, const char *name, const char *value)
{
	for (size_t i = 0; i < ARRAY_SIZE(run_options); i++)
		if (!strcmp(run_options[i].name, name))
			return option_apply(&run_options[i], cfg, value);
	for (unsigned i = 0; i < nr_device_types; i++)
		if (!strcmp(device_types[i]->option, name))
			return vm_config_add(cfg, device_types[i], value) < 0 ? EXIT_USAGE : 0;
	log_error("run: unknown option --%s; see kvmbox run --help", name);
	return EXIT_USAGE;
}

int run_option_arg(const char *name, bool *repeatable)
{
	*repeatable = false;
	for (size_t i = 0; i < ARRAY_SIZE(run_options); i++)
		if (!strcmp(run_options[i].name, name))
			return option_has_arg(run_options[i].arg);
	for (unsigned i = 0; i < nr_device_types; i++)
		if (!strcmp(device_types[i]->option, name)) {
			*repeatable = device_types[i]->arg && device_types[i]->max > 1;
			return option_has_arg(device_types[i]->arg);
		}
	return -1;
}

/* The options restore takes besides the run options, and --config. */
enum { OPT_CONFIG = 900, OPT_COPY = 1000, OPT_NO_VERIFY, OPT_PAUSED };

/* A run option of the command line, applied after the configuration file. */
struct given_option {
	const char *name, *value;
};

/* The command line's options over the file's: a single value replaces the file's, the first
 * --disk (--net) replaces all the file's disks (taps). */
static int apply_given(struct vm_config *cfg, const struct given_option *given, size_t n)
{
	bool replaced[MAX_DEVICE_TYPES] = { false };
	int ret;

	for (size_t i = 0; i < n; i++) {
		for (unsigned t = 0; t < nr_device_types && t < MAX_DEVICE_TYPES; t++) {
			if (strcmp(device_types[t]->option, given[i].name) || !device_types[t]->arg ||
			    replaced[t])
				continue;
			vm_config_remove(cfg, device_types[t]);
			replaced[t] = true;
		}
		ret = run_option_set(cfg, given[i].name, given[i].value);
		if (ret)
			return ret;
	}
	return 0;
}

/* run, or restore when ra is given. */
static int parse_args(int argc, char **argv, struct vm_config *cfg, struct restore_args *ra)
{
	const char *cmd = ra ? "restore" : "run", *config = NULL;
	struct option opts[ARRAY_SIZE(run_options) + MAX_DEVICE_TYPES + 6];
	char shorts[2 + 3 * (ARRAY_SIZE(run_options) + MAX_DEVICE_TYPES) + 2] = ":";
	struct given_option *given;
	size_t n = 0, sl = 1, nr_opts, nr_given = 0;
	int c, idx, ret = EXIT_USAGE;

	vm_config_init(cfg);
	given = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*given));
	if (!given) {
		log_error("%s: out of memory", cmd);
		return EXIT_USAGE;
	}
	/* getopt's tables from ours: val is the index into the combined list. */
	for (size_t i = 0; i < ARRAY_SIZE(run_options); i++) {
		opts[n] = (struct option){ run_options[i].name, option_has_arg(run_options[i].arg), NULL,
					   256 + (int)n };
		n++;
	}
	for (unsigned i = 0; i < nr_device_types && i < MAX_DEVICE_TYPES; i++) {
		opts[n] = (struct option){ device_types[i]->option,
					   device_types[i]->arg ? required_argument : no_argument, NULL,
					   256 + (int)n };
		n++;
	}
	nr_opts = n; /* the run options and the device types */
	opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	opts[n++] = (struct option){ "config", required_argument, NULL, OPT_CONFIG };
	if (ra) {
		memset(ra, 0, sizeof(*ra));
		opts[n++] = (struct option){ "copy", no_argument, NULL, OPT_COPY };
		opts[n++] = (struct option){ "no-verify", no_argument, NULL, OPT_NO_VERIFY };
		opts[n++] = (struct option){ "paused", no_argument, NULL, OPT_PAUSED };
	}
	opts[n] = (struct option){ NULL, 0, NULL, 0 };
	for (size_t i = 0; i < nr_opts; i++) {
		char s = i < ARRAY_SIZE(run_options) ? run_options[i].short_opt
						     : device_types[i - ARRAY_SIZE(run_options)]->short_opt;

		if (!s)
			continue;
		shorts[sl++] = s;
		if (opts[i].has_arg)
			shorts[sl++] = ':';
	}
	shorts[sl++] = 'h';
	shorts[sl] = '\0';

	/* The command line's run options are collected, and applied after the file's. */
	optind = 0; /* full re-initialisation: tests parse several times */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		if (c == 'h') {
			if (ra)
				print_restore_help();
			else
				print_run_help();
			ret = -1;
			goto fail;
		}
		if (c == ':') {
			log_error("%s: option %s needs a value; see kvmbox %s --help", cmd, argv[optind - 1],
				  cmd);
			goto fail;
		}
		if (c == '?') {
			if (optopt)
				log_error("%s: unknown option -%c; see kvmbox %s --help", cmd, optopt, cmd);
			else
				log_error("%s: unknown option %s; see kvmbox %s --help", cmd,
					  argv[optind - 1], cmd);
			goto fail;
		}
		if (c == OPT_CONFIG) {
			if (config) {
				log_error("%s: --config given twice ('%s', '%s'); give one file", cmd, config,
					  optarg);
				goto fail;
			}
			config = optarg;
			continue;
		}
		if (ra && c >= OPT_COPY) {
			ra->copy |= c == OPT_COPY;
			ra->no_verify |= c == OPT_NO_VERIFY;
			ra->paused |= c == OPT_PAUSED;
			continue;
		}
		idx = c >= 256 && c < OPT_CONFIG ? c - 256 : -1;
		for (size_t i = 0; idx < 0 && i < nr_opts; i++) {
			char s = i < ARRAY_SIZE(run_options)
					 ? run_options[i].short_opt
					 : device_types[i - ARRAY_SIZE(run_options)]->short_opt;

			if (s == c)
				idx = (int)i;
		}
		if (idx < 0 || (size_t)idx >= nr_opts || nr_given >= (size_t)argc)
			goto fail;
		if (ra && !strcmp(opts[idx].name, "incoming")) {
			log_error("restore: --incoming is an option of kvmbox run; give either a snapshot "
				  "FILE or run --incoming");
			goto fail;
		}
		given[nr_given++] = (struct given_option){ opts[idx].name, optarg };
	}
	if (ra && optind == argc - 1) {
		ra->file = argv[optind++];
	} else if (ra) {
		log_error("restore: give exactly one snapshot FILE; see kvmbox restore --help");
		goto fail;
	}
	if (optind < argc) {
		log_error("run: unexpected argument '%s'; see kvmbox run --help", argv[optind]);
		goto fail;
	}
	if (config && (ret = run_config_file(cfg, config, ra != NULL)))
		goto fail;
	if ((ret = apply_given(cfg, given, nr_given)))
		goto fail;
	ret = EXIT_USAGE;
	if (!cfg->kernel) {
		/* A restored or migrated VM boots this kernel when the guest reboots. */
		if (ra)
			log_error("restore: no kernel given; add --kernel PATH and the VM's other run "
				  "options (see kvmbox restore --help)");
		else if (cfg->incoming)
			log_error("run --incoming: no kernel given; add --kernel PATH and the VM's other "
				  "run options: a destination takes its host resources from its own "
				  "command line");
		else
			log_error("run: no kernel given; add --kernel PATH (see kvmbox run --help)");
		goto fail;
	}
	free(given);
	return 0;
fail:
	free(given);
	vm_config_free_devices(cfg);
	return ret;
}

int run_parse_args(int argc, char **argv, struct vm_config *cfg)
{
	return parse_args(argc, argv, cfg, NULL);
}

int restore_parse_args(int argc, char **argv, struct vm_config *cfg, struct restore_args *ra)
{
	return parse_args(argc, argv, cfg, ra);
}
