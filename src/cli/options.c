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

int parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		char *end;
		unsigned long v;

		if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))
			return -1;
		v = strtoul(s, &end, 16);
		if (end != s + 2 || v > 0xff)
			return -1;
		mac[i] = (uint8_t)v;
		s += 2;
		if (i < 5 && *s++ != ':')
			return -1;
	}
	if (*s || (mac[0] & 1))
		return -1; /* trailing junk, or a multicast address */
	return 0;
}

int parse_disk_opt(char *s, struct disk_config *d)
{
	char *save = NULL, *tok;

	memset(d, 0, sizeof(*d));
	tok = strtok_r(s, ",", &save);
	if (!tok || !*tok) {
		log_error("--disk: no image path; give --disk PATH[,ro][,serial=STR]");
		return -1;
	}
	d->path = tok;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strcmp(tok, "ro") || !strcmp(tok, "readonly")) {
			d->readonly = true;
		} else if (!strncmp(tok, "serial=", 7)) {
			if (strlen(tok + 7) >= sizeof(d->serial)) {
				log_error("--disk %s: serial '%s' is longer than %zu characters; give a shorter one",
					  d->path, tok + 7, sizeof(d->serial) - 1);
				return -1;
			}
			snprintf(d->serial, sizeof(d->serial), "%s", tok + 7);
		} else {
			log_error("--disk %s: unknown option '%s'; use ro or serial=STR", d->path, tok);
			return -1;
		}
	}
	return 0;
}

int parse_net_opt(char *s, struct net_config *n)
{
	char *save = NULL, *tok;

	memset(n, 0, sizeof(*n));
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "tap=", 4)) {
			if (!tok[4] || strlen(tok + 4) >= sizeof(n->tap)) {
				log_error("--net: tap name '%s' is empty or longer than %zu characters; give a valid "
					  "interface name", tok + 4, sizeof(n->tap) - 1);
				return -1;
			}
			snprintf(n->tap, sizeof(n->tap), "%s", tok + 4);
		} else if (!strncmp(tok, "mac=", 4)) {
			if (parse_mac(tok + 4, n->mac) < 0) {
				log_error("--net: mac '%s' is not a unicast MAC address; give one like "
					  "52:54:00:12:34:56", tok + 4);
				return -1;
			}
			n->mac_set = true;
		} else {
			log_error("--net: unknown option '%s'; use tap=NAME[,mac=MAC]", tok);
			return -1;
		}
	}
	if (!n->tap[0]) {
		log_error("--net: no tap device; give --net tap=NAME[,mac=MAC]");
		return -1;
	}
	return 0;
}

void print_main_help(void)
{
	printf("kvmbox %s - a small KVM virtual machine monitor\n"
	       "\n"
	       "usage: kvmbox run --kernel PATH [options]   boot a VM (kvmbox run --help)\n"
	       "       kvmbox restore FILE [options]       resume a snapshot (kvmbox restore --help)\n"
	       "       kvmbox ctl SOCKET COMMAND [ARG]     control a running VM (kvmbox ctl --help)\n"
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
	       "  -m, --memory SIZE     guest RAM, K/M/G/T suffix (default 256M; no suffix = MiB)\n"
	       "  -d, --disk PATH[,ro][,serial=STR]  virtio-blk disk (repeatable: vda, vdb, ...)\n"
	       "  -n, --net tap=NAME[,mac=MAC]       virtio-net card on a host tap device (repeatable)\n"
	       "      --rng             virtio-rng fed from the host's getrandom()\n"
	       "      --console KIND    serial (default: ttyS0 on stdin/stdout), virtio (hvc0) or none\n"
	       "      --balloon         virtio-balloon (kvmbox ctl SOCKET balloon SIZE)\n"
	       "      --api PATH        control socket (kvmbox ctl PATH ...; see docs/API.md)\n"
	       "      --incoming URI    wait for a live migration on tcp:IP:PORT or unix:PATH\n"
	       "      --no-reboot       a guest reboot ends kvmbox instead of restarting the guest\n"
	       "      --stats           print exit counters on stderr when the VM stops\n"
	       "  -h, --help            this text\n"
	       "\n"
	       "On a terminal, Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A.\n"
	       "Exit status: 0 guest powered off (or rebooted with --no-reboot), 1 the VM could not\n"
	       "start, 2 usage error, 3 guest crashed, 4 host failure while running, 128+N signal N.\n");
}

enum { OPT_CONSOLE = 256, OPT_NO_REBOOT, OPT_STATS, OPT_RNG, OPT_BALLOON, OPT_API, OPT_INCOMING };

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
		{ "disk", required_argument, NULL, 'd' },
		{ "net", required_argument, NULL, 'n' },
		{ "rng", no_argument, NULL, OPT_RNG },
		{ "balloon", no_argument, NULL, OPT_BALLOON },
		{ "api", required_argument, NULL, OPT_API },
		{ "incoming", required_argument, NULL, OPT_INCOMING },
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
	while ((c = getopt_long(argc, argv, ":k:i:a:c:m:d:n:h", opts, NULL)) != -1) {
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
			else if (!strcmp(optarg, "virtio"))
				cfg->console = CONSOLE_VIRTIO;
			else {
				log_error("--console '%s': unknown console; give serial, virtio or none", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_NO_REBOOT:
			cfg->no_reboot = true;
			break;
		case OPT_STATS:
			cfg->stats = true;
			break;
		case OPT_RNG:
			cfg->rng = true;
			break;
		case OPT_BALLOON:
			cfg->balloon = true;
			break;
		case OPT_API:
			cfg->api = optarg;
			break;
		case OPT_INCOMING:
			cfg->incoming = optarg;
			break;
		case 'd':
			if (cfg->nr_disks == MAX_DISKS) {
				log_error("--disk %s: at most %d disks; give fewer --disk options", optarg, MAX_DISKS);
				return EXIT_USAGE;
			}
			if (parse_disk_opt(optarg, &cfg->disks[cfg->nr_disks]) < 0)
				return EXIT_USAGE;
			cfg->nr_disks++;
			break;
		case 'n':
			if (cfg->nr_nets == MAX_NICS) {
				log_error("--net: at most %d network cards; give fewer --net options", MAX_NICS);
				return EXIT_USAGE;
			}
			if (parse_net_opt(optarg, &cfg->nets[cfg->nr_nets]) < 0)
				return EXIT_USAGE;
			cfg->nr_nets++;
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
	if (!cfg->kernel && !cfg->incoming) {
		log_error("run: no kernel given; add --kernel PATH (see kvmbox run --help)");
		return EXIT_USAGE;
	}
	return 0;
}
