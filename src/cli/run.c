/* run.c - start-up as one ordered sequence: parse -> check the host -> create
 * the VM -> devices -> vCPUs -> kernel -> run -> tear down (and again on a
 * guest reboot). */
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

#include "../arch/arch.h"
#include "../backends/console.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "../core/sigwatch.h"
#include "../core/vcpu.h"
#include "../core/vm.h"
#include "../devices/rtc.h"
#include "../devices/uart.h"
#include "../virtio/console.h"
#include "../virtio/setup.h"
#include "../api/api.h"
#include "migrate.h"
#include <sys/timerfd.h>
#include "options.h"


/* How long a stop requested by a signal may take before kvmbox exits anyway. */
#define SIGNAL_GRACE_S 10

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
	/* Disks are opened with the devices, after /dev/kvm: check what the paths are now, so
	 * that a mistyped path is not hidden behind a /dev/kvm error. */
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		struct stat st;

		if (stat(cfg->disks[i].path, &st) < 0) {
			log_error("--disk %s: %s; give the path of a disk image or block device",
				  cfg->disks[i].path, strerror(errno));
			return -1;
		}
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
			log_error("--disk %s: not a regular file or block device; give a disk image",
				  cfg->disks[i].path);
			return -1;
		}
	}
	if (sysinfo(&si) == 0) {
		uint64_t host = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;

		if (cfg->memory > host) {
			log_error("--memory %s: more than this host's %llu MiB of RAM and swap; give less",
				  format_size(cfg->memory, a, sizeof(a)), (unsigned long long)(host >> 20));
			return -1;
		}
	}
	return 0;
}

static void on_stop(struct loop *l, int fd, uint32_t events, void *opaque)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* already drained */
	}
	loop_quit(l);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct run_state *rs = opaque;
	int sig = sigwatch_take(rs->sig);

	if (!sig)
		return;
	/* Kept even when the VM is already stopping (e.g. rebooting): the
	 * reboot loop must not start the guest again after a SIGTERM. */
	if (!rs->last_signal)
		rs->last_signal = sig;
	if (rs->vm)
		vm_request_stop(rs->vm, VM_SIGNAL);
}

static void console_quit(void *ctx)
{
	struct run_state *rs = ctx;

	if (!rs->last_signal)
		rs->last_signal = SIGINT;
	if (rs->vm)
		vm_request_stop(rs->vm, VM_SIGNAL);
}

static size_t uart_rx(void *dev, const uint8_t *buf, size_t n)
{
	return uart_receive(dev, buf, n);
}

static size_t virtio_console_rx(void *vd, const uint8_t *buf, size_t n)
{
	return virtio_console_receive(vd, buf, n);
}

static void print_stats(const struct vm *vm)
{
	struct vcpu_stats t = { 0 };

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		const struct vcpu_stats *s = &vm->vcpus[i]->stats;

		t.exits += s->exits;
		t.io += s->io;
		t.mmio += s->mmio;
		t.hlt += s->hlt;
		t.intr += s->intr;
		t.other += s->other;
	}
	fprintf(stderr, "kvmbox: stats: exits=%llu io=%llu mmio=%llu hlt=%llu intr=%llu other=%llu\n",
		(unsigned long long)t.exits, (unsigned long long)t.io, (unsigned long long)t.mmio,
		(unsigned long long)t.hlt, (unsigned long long)t.intr, (unsigned long long)t.other);
}

/* Build the VM and run it until it stops. Returns the stop reason, or -1 when
 * it could not start. `carry` holds CMOS state kept across a guest reset.
 * The first boot may resume a snapshot (rs->restore) or an incoming
 * migration (rs->incoming_fd) instead of loading the kernel. */
static int boot_once(struct run_state *rs, const struct vm_config *cfg, struct ser_writer *carry)
{
	struct mem_region layout[GUEST_MEM_MAX_REGIONS];
	struct vm *vm = calloc(1, sizeof(*vm));
	struct virtio_handles vh = { 0 };
	struct ram_file rf = { .fd = -1 };
	uint8_t *state = NULL;
	uint64_t state_len = 0;
	int nr, reason = -1;

	if (!vm) {
		log_error("out of memory");
		return -1;
	}
	if (rs->restore)
		rf = (struct ram_file){ .fd = rs->restore->fd, .off = SNAP_RAM_OFFSET, .copy = rs->restore_copy };
	nr = arch_mem_layout(cfg->memory, layout, GUEST_MEM_MAX_REGIONS);
	vm_init(vm, cfg);
	/* The user's inputs (RAM, kernel, initrd) are checked before /dev/kvm is opened, so
	 * their errors are not hidden behind a /dev/kvm one. */
	if (vm_alloc_ram(vm, layout, nr, rs->restore ? &rf : NULL) < 0)
		goto out;
	if (!rs->restore && rs->incoming_fd < 0 && arch_load_kernel(vm) < 0)
		goto out;
	if (vm_open_kvm(vm) < 0 || arch_vm_init(vm) < 0 || vm_create_vcpus(vm, cfg->cpus) < 0)
		goto out;
	if (rs->incoming_fd >= 0) {
		/* Guest RAM first; the devices take over the source's backends
		 * only once it has stopped. */
		state = migrate_receive_ram(vm, rs->incoming_fd, &state_len);
		if (!state)
			goto out;
	}
	vm->console_port = cfg->console == CONSOLE_SERIAL ? console_port(rs->console) : (struct char_port){ 0 };
	if (arch_create_devices(vm) < 0 || virtio_create_devices(vm, console_port(rs->console), &vh) < 0)
		goto fail_incoming;
	if (carry->len) {
		struct ser_reader r;

		for (struct device *d = vm->devices; d; d = d->next) {
			if (!strcmp(d->ops->type, "rtc") && d->ops->load) {
				ser_reader_init(&r, carry->buf, carry->len);
				d->ops->load(d, &r);
			}
		}
	}
	if (rs->restore || state) {
		struct ser_reader r;

		if (rs->restore)
			ser_reader_init(&r, rs->restore->meta, rs->restore->meta_len);
		else
			ser_reader_init(&r, state, state_len);
		if (vm_state_load(vm, &r) < 0)
			goto fail_incoming;
		if (state && migrate_finish(rs->incoming_fd, true) < 0) {
			log_error("migration: the source went away before the hand-over; not starting the VM");
			goto out;
		}
	} else if (arch_vcpu_boot_regs(vm->vcpus[0]) < 0) {
		goto out;
	}
	if (cfg->console == CONSOLE_SERIAL)
		console_attach(rs->console, rs->loop, uart_rx, vm->console_dev, console_quit, rs);
	else if (cfg->console == CONSOLE_VIRTIO)
		console_attach(rs->console, rs->loop, virtio_console_rx, vh.console, console_quit, rs);
	if (loop_add(rs->loop, vm->stop_efd, EPOLLIN, on_stop, rs) < 0) {
		log_error("cannot watch the VM's stop event: %s", strerror(errno));
		goto out;
	}
	rs->vm = vm;
	rs->balloon = vh.balloon;
	if (vm_start_vcpus(vm) == 0 || atomic_load(&vm->exit_reason) != VM_RUNNING) {
		if (rs->user_paused)
			vm_pause(vm); /* restore --paused */
		loop_run(rs->loop);
	}
	migrate_cancel(rs); /* a migration must not outlive its VM */
	reason = atomic_load(&vm->exit_reason);
	/* Join the vCPUs before reading their state or stats. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(vm->vcpus[i]);
	if (reason == VM_REBOOT) {
		ser_writer_free(carry);
		for (struct device *d = vm->devices; d; d = d->next)
			if (!strcmp(d->ops->type, "rtc") && d->ops->save)
				d->ops->save(d, carry);
	}
	loop_del(rs->loop, vm->stop_efd);
	console_detach(rs->console);
	rs->vm = NULL;
	rs->balloon = NULL;
	rs->user_paused = false;
	goto out;
fail_incoming:
	if (state)
		migrate_finish(rs->incoming_fd, false);
out:
	free(state);
	if (vm->paused)
		vm_resume(vm); /* release parked device workers before teardown */
	if (cfg->stats && vm->vcpus)
		print_stats(vm);
	vm_destroy(vm);
	free(vm);
	return reason;
}

/* Signals, event loop, console, control socket; then boot until the VM is
 * done for good. */
static int supervise(struct run_state *rs, const struct vm_config *cfg)
{
	struct ser_writer carry;
	sigset_t mask;
	int status = EXIT_START_FAIL;

	/* Termination signals are taken by the sigwatch thread and handed to the main loop, so
	 * block them everywhere (threads inherit the mask). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	/* A signal ignored by whoever started us (nohup, a shell's background
	 * job) stays ignored: a blocked signal would be queued despite SIG_IGN. */
	{
		static const int optional[] = { SIGINT, SIGHUP };
		struct sigaction old;

		for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
			if (sigaction(optional[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
				sigaddset(&mask, optional[i]);
	}
	sigaddset(&mask, SIG_VCPU_KICK); /* only vCPU threads take kicks */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIG_VCPU_KICK);
	signal(SIGPIPE, SIG_IGN);
	vcpu_signals_init();

	rs->cfg = cfg;
	rs->shutdown_tfd = -1;
	ser_writer_init(&carry);
	rs->loop = loop_create();
	rs->sig = sigwatch_start(&mask, SIGNAL_GRACE_S);
	if (!rs->sig)
		goto out;
	if (!rs->loop || loop_add(rs->loop, sigwatch_fd(rs->sig), EPOLLIN, on_signal, rs) < 0) {
		log_error("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	rs->console = cfg->console != CONSOLE_NONE ? console_open(STDIN_FILENO, STDOUT_FILENO)
						   : console_open(-1, -1);
	if (!rs->console)
		goto out;
	if (cfg->api) {
		rs->api = api_server_create(cfg->api, rs->loop, control_handle, rs);
		if (!rs->api)
			goto out;
	}

	for (;;) {
		int reason = boot_once(rs, cfg, &carry);

		/* Only the first boot resumes saved or migrated state. */
		if (rs->restore) {
			snapshot_close(rs->restore);
			rs->restore = NULL;
		}
		if (rs->incoming_fd >= 0) {
			close(rs->incoming_fd);
			rs->incoming_fd = -1;
		}
		if (rs->last_signal)
			reason = VM_SIGNAL; /* a signal during a reboot ends it too */
		switch (reason) {
		case VM_REBOOT:
			if (!cfg->no_reboot)
				continue;
			status = EXIT_GUEST_OFF;
			break;
		case VM_POWEROFF:
			status = EXIT_GUEST_OFF;
			break;
		case VM_CRASH:
			status = EXIT_GUEST_CRASH;
			break;
		case VM_HOST_ERROR:
			status = EXIT_HOST_FAIL;
			break;
		default:
			status = EXIT_START_FAIL;
			break;
		}
		if (reason == VM_SIGNAL)
			status = rs->hibernated || rs->migrated ? EXIT_GUEST_OFF : 128 + rs->last_signal;
		break;
	}
out:
	/* Let replies answered from other threads (a migration's) go out. */
	for (int i = 0; rs->api && i < 10 && loop_run_once(rs->loop, 20) > 0; i++)
		;
	api_server_destroy(rs->api);
	console_close(rs->console);
	if (rs->shutdown_tfd >= 0)
		close(rs->shutdown_tfd);
	loop_destroy(rs->loop);
	sigwatch_stop(rs->sig);
	if (rs->incoming_fd >= 0)
		close(rs->incoming_fd);
	ser_writer_free(&carry);
	return status;
}

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	struct run_state rs = { .incoming_fd = -1 };
	int ret;

	ret = run_parse_args(argc, argv, &cfg);
	if (ret < 0)
		return 0; /* help */
	if (ret)
		return ret;
	if (cfg.incoming) {
		/* The source says what VM this is; only the control socket and
		 * the console choice are ours. */
		struct snap_config sc;
		const char *api = cfg.api, *uri = cfg.incoming;

		rs.incoming_fd = migrate_accept(uri, &sc);
		if (rs.incoming_fd < 0)
			return EXIT_START_FAIL;
		cfg = sc.cfg;
		cfg.api = api;
		cfg.incoming = uri;
		if (check_host_limits(&cfg) < 0) {
			close(rs.incoming_fd);
			snap_config_free(&sc);
			return EXIT_START_FAIL;
		}
		ret = supervise(&rs, &cfg);
		snap_config_free(&sc);
		return ret;
	}
	if (check_host_limits(&cfg) < 0)
		return EXIT_START_FAIL;
	return supervise(&rs, &cfg);
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
	       "      --no-verify   skip the RAM checksum (state checksums are always checked)\n"
	       "      --paused      stay paused after the restore (resume with kvmbox ctl)\n"
	       "  -h, --help        this text\n");
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "api", required_argument, NULL, 'A' },
		{ "copy", no_argument, NULL, 'C' },
		{ "no-verify", no_argument, NULL, 'N' },
		{ "paused", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct run_state rs = { .incoming_fd = -1 };
	struct snapshot snap;
	struct vm_config cfg;
	const char *api = NULL;
	bool verify = true, paused = false;
	int c, status;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'A':
			api = optarg;
			break;
		case 'C':
			rs.restore_copy = true;
			break;
		case 'N':
			verify = false;
			break;
		case 'P':
			paused = true;
			break;
		case 'h':
			print_restore_help();
			return 0;
		default:
			log_error("restore: unknown option or missing value %s; see kvmbox restore --help",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		log_error("restore: give exactly one snapshot FILE; see kvmbox restore --help");
		return EXIT_USAGE;
	}
	if (snapshot_open(argv[optind], verify, &snap) < 0)
		return EXIT_START_FAIL;
	cfg = snap.config.cfg;
	cfg.api = api;
	cfg.incoming = NULL;
	rs.restore = &snap;
	rs.user_paused = paused;
	if (check_host_limits(&cfg) < 0) {
		snapshot_close(&snap);
		return EXIT_START_FAIL;
	}
	status = supervise(&rs, &cfg);
	if (rs.restore)
		snapshot_close(&snap); /* the VM never started */
	return status;
}
