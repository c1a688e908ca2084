/* run.c - `kvmbox run` and `kvmbox restore`: parse, check the user's inputs against the
 * host, then hand over to the machine (core/machine.c) with its control socket. */
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
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
#include "../core/notify.h"
#include "../core/sandbox.h"
#include "../core/sigwatch.h"
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
 * incoming (taken over) give the first boot's state. */
static int run_machine(const struct vm_config *cfg, struct snapshot *restore, bool copy, bool paused,
		       struct migrate_in *incoming)
{
	struct machine *m = NULL;
	struct api_server *api = NULL;
	int status = EXIT_START_FAIL, notify_fd;

	/* systemd's socket (Type=notify units), connected before a jail hides its path. */
	notify_fd = notify_open();
	/* Still one thread: the cgroup, the namespaces (--jail forks here) and the filters. */
	if (sandbox_setup(cfg) == 0)
		m = machine_create(cfg);
	if (m)
		machine_set_notify(m, notify_fd);
	else if (notify_fd >= 0)
		close(notify_fd);
	if (!m) {
		migrate_in_close(incoming);
		if (restore)
			snapshot_close(restore); /* its config is the caller's */
		return status;
	}
	if (restore)
		machine_set_restore(m, restore, copy, paused);
	if (incoming)
		machine_set_incoming(m, incoming);
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

/* Wait for a migration and run what it brings. cfg, from this command line, names every host
 * resource; the source's configuration is only checked against it. */
static int run_incoming(struct vm_config *cfg)
{
	struct snap_config sc;
	char msg[512];
	sigset_t set;
	struct migrate_in *in;
	int sfd, ret;

	if (check_host_limits(cfg) < 0)
		return EXIT_START_FAIL;
	/* The destination answers a disks=copy source before the machine exists (which ignores
	 * SIGPIPE from then on): a source gone meanwhile is an EPIPE error, not a kill. */
	signal(SIGPIPE, SIG_IGN);
	/* A termination signal while waiting ends kvmbox before anything was received (the
	 * machine's signal thread takes over later; what is blocked here stays blocked). */
	sigwatch_termination_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s; raise the open file limit", strerror(errno));
		return EXIT_START_FAIL;
	}
	in = migrate_accept(cfg->incoming, sfd, &cfg->keys, &sc);
	if (!in) {
		struct signalfd_siginfo si;

		ret = EXIT_START_FAIL;
		if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			log_error("--incoming %s: SIG%s came before the migration was received; the "
				  "source keeps its VM",
				  cfg->incoming,
				  si.ssi_signo == SIGTERM  ? "TERM"
				  : si.ssi_signo == SIGINT ? "INT"
							   : "HUP");
			ret = 128 + (int)si.ssi_signo;
		}
		close(sfd);
		return ret;
	}
	close(sfd);
	if (vm_config_match(&sc.cfg, cfg, "the source VM", msg, sizeof(msg)) < 0 ||
	    migrate_accept_disks(in, cfg, msg, sizeof(msg)) < 0) {
		/* The source resumes its VM: a disks=copy source reads msg as its error, any other
		 * fails its next write on the closed stream. */
		log_error("migration from %s refused: %s", cfg->incoming, msg);
		migrate_refuse(in, msg);
		migrate_in_close(in);
		snap_config_free(&sc);
		return EXIT_START_FAIL;
	}
	if (!cfg->append)
		cfg->append = sc.cfg.append; /* not a host resource */
	ret = run_machine(cfg, NULL, false, false, in);
	snap_config_free(&sc);
	return ret;
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
	if (cfg.incoming)
		ret = run_incoming(&cfg);
	else if (check_host_limits(&cfg) < 0)
		ret = EXIT_START_FAIL;
	else
		ret = run_machine(&cfg, NULL, false, false, NULL);
	vm_config_free_devices(&cfg);
	return ret;
}

int cmd_restore(int argc, char **argv)
{
	struct snapshot *snap;
	struct restore_args ra;
	struct vm_config cfg;
	char msg[512];
	int ret;

	ret = restore_parse_args(argc, argv, &cfg, &ra);
	if (ret < 0)
		return 0; /* help */
	if (ret)
		return ret;
	snap = calloc(1, sizeof(*snap));
	if (!snap) {
		log_error("out of memory");
		vm_config_free_devices(&cfg);
		return EXIT_START_FAIL;
	}
	ret = EXIT_START_FAIL;
	if (cfg.keys.snapshot_key_file && ra.no_verify) {
		log_error("restore: --no-verify with --snapshot-key: the key's check reads the whole file; "
			  "drop --no-verify");
		ret = EXIT_USAGE;
		goto out;
	}
	/* Only this command line names host resources: the file's configuration, which a forged
	 * file can set at will, is checked against it and never opened. */
	if (vm_keys_load(&cfg.keys) < 0 || check_host_limits(&cfg) < 0 ||
	    snapshot_open(ra.file, !ra.no_verify, cfg.keys.have_snapshot_key ? cfg.keys.snapshot_key : NULL,
			  snap) < 0)
		goto out;
	if (vm_config_match(&snap->config.cfg, &cfg, "the snapshot's VM", msg, sizeof(msg)) < 0) {
		log_error("restore %s refused: %s", ra.file, msg);
		snapshot_close(snap);
		snap_config_free(&snap->config);
		goto out;
	}
	if (!cfg.append)
		cfg.append = snap->config.cfg.append; /* not a host resource */
	/* The machine closes the snapshot once the VM is built; cfg.append may live in it, so
	 * it is freed only after the machine is gone. */
	ret = run_machine(&cfg, snap, ra.copy, ra.paused, NULL);
	snap_config_free(&snap->config);
out:
	free(snap);
	vm_config_free_devices(&cfg);
	return ret;
}
