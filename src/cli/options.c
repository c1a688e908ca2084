#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"

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

void print_main_help(void)
{
	printf("kvmbox %s - a small KVM virtual machine monitor\n"
	       "\n"
	       "usage: kvmbox run --kernel PATH [options]   boot a VM (kvmbox run --help)\n"
	       "       kvmbox --version\n"
	       "       kvmbox --help\n",
	       KVMBOX_VERSION);
}

void print_run_help(void)
{
	printf("usage: kvmbox run --kernel PATH [options]\n"
	       "\n"
	       "  -k, --kernel PATH     Linux bzImage, or ELF vmlinux with a PVH entry note\n"
	       "  -i, --initrd PATH     initial ramdisk\n"
	       "  -a, --append STRING   kernel command line\n"
	       "  -c, --cpus N          number of vCPUs (default 1)\n"
	       "  -m, --memory SIZE     guest RAM, with K/M/G suffix (default 256M; no suffix = MiB)\n"
	       "      --console KIND    serial (default: ttyS0 on stdin/stdout) or none\n"
	       "      --no-reboot       a guest reboot ends kvmbox instead of restarting the guest\n"
	       "      --stats           print exit counters on stderr when the VM stops\n"
	       "  -h, --help            this text\n"
	       "\n"
	       "On a terminal, Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A.\n"
	       "Exit status: 0 guest powered off (or rebooted with --no-reboot), 1 the VM could not\n"
	       "start, 2 usage error, 3 guest crashed, 4 host failure while running, 128+N signal N.\n");
}

enum { OPT_CONSOLE = 256, OPT_NO_REBOOT, OPT_STATS };

int run_parse_args(int argc, char **argv, struct vm_config *cfg)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->memory = DEFAULT_MEMORY;
	cfg->console = CONSOLE_SERIAL;
	optind = 0; /* full re-initialisation: tests parse several times */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:i:a:c:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg->kernel = optarg;
			break;
		case 'i':
			cfg->initrd = optarg;
			break;
		case 'a':
			cfg->append = optarg;
			break;
		case 'c':
			if (parse_uint(optarg, &cfg->cpus) < 0) {
				log_error("--cpus '%s': not a number; give a vCPU count like --cpus 2", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'm':
			if (parse_size(optarg, &cfg->memory) < 0) {
				log_error("--memory '%s': not a size; give a size like 512M or 2G", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_CONSOLE:
			if (!strcmp(optarg, "serial"))
				cfg->console = CONSOLE_SERIAL;
			else if (!strcmp(optarg, "none"))
				cfg->console = CONSOLE_NONE;
			else {
				log_error("--console '%s': unknown console; give serial or none", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_NO_REBOOT:
			cfg->no_reboot = true;
			break;
		case OPT_STATS:
			cfg->stats = true;
			break;
		case 'h':
			print_run_help();
			return -1;
		case ':':
			log_error("run: option %s needs a value; see kvmbox run --help", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			if (optopt)
				log_error("run: unknown option -%c; see kvmbox run --help", optopt);
			else
				log_error("run: unknown option %s; see kvmbox run --help", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_error("run: unexpected argument '%s'; see kvmbox run --help", argv[optind]);
		return EXIT_USAGE;
	}
	if (!cfg->kernel) {
		log_error("run: no kernel given; add --kernel PATH (see kvmbox run --help)");
		return EXIT_USAGE;
	}
	return 0;
}
