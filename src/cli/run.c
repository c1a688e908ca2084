/* run.c - `kvmbox run` and `kvmbox restore`: parse, check the user's inputs against the
 * host, then hand over to the machine (core/machine.c) with its control socket. */
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "../api/api.h"
#include "../arch/arch.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "../core/machine.h"
#include "../core/devtype.h"
#include "../core/migrate.h"
#include "../core/sandbox.h"
#include "../core/util.h"
#include "options.h"

static int check_host_limits(const struct vm_config *cfg)
{
	struct sysinfo si;
	char a[32], b[32];

	if (cfg->cpus == 0) {
		log_error("--cpus 0: a VM needs at least one vCPU; give --cpus 1 or more");
		return -1;
	}
	if (cfg->memory < MIN_MEMORY) {
		log_error("--memory %s: too small, kvmbox needs at least %s; give more --memory",
			  format_size(cfg->memory, a, sizeof(a)), format_size(MIN_MEMORY, b, sizeof(b)));
		return -1;
	}
	if (cfg->memory > arch_max_ram()) {
		log_error("--memory %s: above the %s this machine model can address; give less",
			  format_size(cfg->memory, a, sizeof(a)), format_size(arch_max_ram(), b, sizeof(b)));
		return -1;
	}
	/* Devices open their host resources after /dev/kvm: check what their paths name now, so
	 * that a mistyped path is not hidden behind a /dev/kvm error. */
	for (unsigned i = 0; i < cfg->nr_devs; i++)
		if (cfg->devs[i].type->check && cfg->devs[i].type->check(cfg->devs[i].cfg) < 0)
			return -1;
	if (sysinfo(&si) == 0) {
		uint64_t host = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;

		if (cfg->memory > host) {
			log_error("--memory %s: more than this host's %llu MiB of RAM and swap; give less",
				  format_size(cfg->memory, a, sizeof(a)), (unsigned long long)(host >> 20));
			return -1;
		}
	}
	return vm_tuning_check(cfg);
}

/* Create the machine, its control socket, and run it; returns the exit status. restore or
 * incoming_fd (>= 0) give the first boot's state. */
static int run_machine(const struct vm_config *cfg, struct snapshot *restore, bool copy, bool paused,
		       int incoming_fd)
{
	struct machine *m = NULL;
	struct api_server *api = NULL;
	int status = EXIT_START_FAIL;

	/* Still one thread: the cgroup, the namespaces (--jail forks here) and the filters. */
	if (sandbox_setup(cfg) == 0)
		m = machine_create(cfg);
	if (!m) {
		if (incoming_fd >= 0)
			close(incoming_fd);
		if (restore)
			snapshot_close(restore); /* its config is the caller's */
		return status;
	}
	if (restore)
		machine_set_restore(m, restore, copy, paused);
	if (incoming_fd >= 0)
		machine_set_incoming(m, incoming_fd);
	if (cfg->api) {
		api = api_server_create(cfg->api, machine_loop(m), control_handle, m);
		if (!api)
			goto out;
	}
	status = machine_run(m);
	/* Let replies answered from other threads (a migration's) go out. */
	for (int i = 0; api && i < 10 && loop_run_once(machine_loop(m), 20) > 0; i++)
		;
out:
	api_server_destroy(api);
	machine_destroy(m);
	return status;
}

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	int ret;

	ret = run_parse_args(argc, argv, &cfg);
	if (ret < 0)
		return 0; /* help */
	if (ret)
		return ret;
	if (vm_keys_load(&cfg.keys) < 0) {
		vm_config_free_devices(&cfg);
		return EXIT_START_FAIL;
	}
	if (cfg.incoming) {
		/* The source says what VM this is; only the control socket and the console choice
		 * are ours. */
		struct snap_config sc;
		const char *api = cfg.api, *uri = cfg.incoming;
		/* What this command line gives overrides the source's. */
		struct vm_tuning tuning = cfg.tuning;
		struct vm_keys keys = cfg.keys;
		int fd = migrate_accept(uri, &keys, &sc);

		vm_config_free_devices(&cfg); /* the source's devices replace any given here */
		if (fd < 0)
			return EXIT_START_FAIL;
		struct sandbox_config sandbox = cfg.sandbox;
		bool no_reboot = cfg.no_reboot;

		cfg = sc.cfg;
		cfg.api = api;
		cfg.incoming = uri;
		vm_tuning_merge(&cfg.tuning, &tuning);
		cfg.sandbox = sandbox; /* the walls are this host's */
		cfg.keys = keys;
		cfg.no_reboot |= no_reboot;
		if (check_host_limits(&cfg) < 0) {
			close(fd);
			snap_config_free(&sc);
			return EXIT_START_FAIL;
		}
		ret = run_machine(&cfg, NULL, false, false, fd);
		snap_config_free(&sc);
		return ret;
	}
	if (check_host_limits(&cfg) < 0)
		ret = EXIT_START_FAIL;
	else
		ret = run_machine(&cfg, NULL, false, false, -1);
	vm_config_free_devices(&cfg);
	return ret;
}

static void print_restore_help(void)
{
	printf("usage: kvmbox restore FILE [options]\n"
	       "\n"
	       "Resume a VM from a snapshot written by `kvmbox ctl SOCKET snapshot|hibernate FILE`.\n"
	       "Guest RAM is mapped from the file copy-on-write, so restoring does not take longer\n"
	       "for a bigger guest. The disks, taps and console of the snapshot are used again.\n"
	       "\n"
	       "      --api PATH    control socket for the restored VM\n"
	       "      --copy        read guest RAM into memory instead of mapping the file\n"
	       "      --no-verify   skip the RAM checksum (state checksums are always checked;\n"
	       "                    not with --snapshot-key, whose check covers RAM too)\n"
	       "      --paused      stay paused after the restore (resume with kvmbox ctl)\n"
	       "      --no-reboot   a guest reboot ends kvmbox (needed with --user and --jail)\n"
	       "      --seccomp MODE, --user USER[:GROUP], --jail DIR, --cgroup PATH\n"
	       "                    the sandbox, as for kvmbox run (docs/SECURITY.md)\n"
	       "  -h, --help        this text\n"
	       "\nThe snapshot's CPU placement and memory options are kept; these replace them, and\n"
	       "give the keys (--snapshot-key checks this file and signs the VM's later snapshots):\n");
	print_restore_run_options();
}

int cmd_restore(int argc, char **argv)
{
	/* clang-format off */
	static const struct option fixed[] = {
		{ "api", required_argument, NULL, 'A' },
		{ "copy", no_argument, NULL, 'C' },
		{ "no-verify", no_argument, NULL, 'N' },
		{ "paused", no_argument, NULL, 'P' },
		{ "no-reboot", no_argument, NULL, 'R' },
		{ "seccomp", required_argument, NULL, 'S' },
		{ "user", required_argument, NULL, 'U' },
		{ "jail", required_argument, NULL, 'J' },
		{ "cgroup", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
	};
	/* clang-format on */
	struct option opts[ARRAY_SIZE(fixed) + 16 + 1];
	struct snapshot *snap = calloc(1, sizeof(*snap));
	struct vm_config cfg, over; /* over: run options given here, over the snapshot's */
	const char *api = NULL;
	bool verify = true, paused = false, copy = false;
	int c, idx = -1;
	size_t n;

	if (!snap) {
		log_error("out of memory");
		return EXIT_START_FAIL;
	}
	memcpy(opts, fixed, sizeof(fixed));
	n = ARRAY_SIZE(fixed) + restore_run_options(opts + ARRAY_SIZE(fixed), 16, 'T');
	opts[n] = (struct option){ NULL, 0, NULL, 0 };
	memset(&over, 0, sizeof(over));
	over.sandbox.seccomp = sandbox_default_mode();
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, &idx)) != -1) {
		switch (c) {
		case 'T': /* the tuning options */
		case 'S':
		case 'U':
		case 'J':
		case 'G':
			if (run_option_set(&over, opts[idx].name, optarg)) {
				free(snap);
				return EXIT_USAGE;
			}
			break;
		case 'A':
			api = optarg;
			break;
		case 'C':
			copy = true;
			break;
		case 'N':
			verify = false;
			break;
		case 'P':
			paused = true;
			break;
		case 'R':
			over.no_reboot = true;
			break;
		case 'h':
			free(snap);
			print_restore_help();
			return 0;
		default:
			free(snap);
			log_error("restore: unknown option or missing value %s; see kvmbox restore --help",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		free(snap);
		log_error("restore: give exactly one snapshot FILE; see kvmbox restore --help");
		return EXIT_USAGE;
	}
	if (over.keys.snapshot_key_file && !verify) {
		free(snap);
		log_error("restore: --no-verify with --snapshot-key: the key's check reads the whole file; "
			  "drop --no-verify");
		return EXIT_USAGE;
	}
	if (vm_keys_load(&over.keys) < 0 ||
	    snapshot_open(argv[optind], verify, over.keys.have_snapshot_key ? over.keys.snapshot_key : NULL,
			  snap) < 0) {
		free(snap);
		return EXIT_START_FAIL;
	}
	cfg = snap->config.cfg;
	cfg.api = api;
	cfg.incoming = NULL;
	vm_tuning_merge(&cfg.tuning, &over.tuning);
	cfg.sandbox = over.sandbox;
	cfg.keys = over.keys;
	cfg.no_reboot |= over.no_reboot;
	if (check_host_limits(&cfg) < 0) {
		snapshot_close(snap);
		snap_config_free(&snap->config);
		free(snap);
		return EXIT_START_FAIL;
	}
	/* The machine closes the snapshot once the VM is built; cfg's strings live in it, so
	 * it is freed only after the machine is gone. */
	c = run_machine(&cfg, snap, copy, paused, -1);
	snap_config_free(&snap->config);
	free(snap);
	return c;
}
