/* run.c - start-up as one ordered sequence: parse -> check the host -> create
 * the VM -> devices -> vCPUs -> kernel -> run -> tear down (and again on a
 * guest reboot). */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "../backends/console.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "../core/vcpu.h"
#include "../core/vm.h"
#include "../devices/rtc.h"
#include "../devices/uart.h"
#include "../virtio/console.h"
#include "../virtio/setup.h"
#include "options.h"

struct run_state {
	struct vm *vm;          /* the current VM (replaced on reboot) */
	struct loop *loop;
	struct console *console;
	int sfd;                /* signalfd */
	int last_signal;        /* what stopped the VM, for VM_SIGNAL */
};

static int check_host_limits(const struct vm_config *cfg)
{
	struct sysinfo si;

	if (cfg->cpus == 0) {
		log_error("--cpus 0: a VM needs at least one vCPU; give --cpus 1 or more");
		return -1;
	}
	if (cfg->memory < MIN_MEMORY) {
		log_error("--memory %llu KiB: too small, kvmbox needs at least %llu MiB; give more --memory",
			  (unsigned long long)(cfg->memory >> 10), (unsigned long long)(MIN_MEMORY >> 20));
		return -1;
	}
	if (cfg->memory > arch_max_ram()) {
		log_error("--memory %llu MiB: above the %llu GiB this machine model can address; give less",
			  (unsigned long long)(cfg->memory >> 20), (unsigned long long)(arch_max_ram() >> 30));
		return -1;
	}
	if (sysinfo(&si) == 0) {
		uint64_t host = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;

		if (cfg->memory > host) {
			log_error("--memory %llu MiB: more than this host's %llu MiB of RAM and swap; give less",
				  (unsigned long long)(cfg->memory >> 20), (unsigned long long)(host >> 20));
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
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	/* Kept even when the VM is already stopping (e.g. rebooting): the
	 * reboot loop must not start the guest again after a SIGTERM. */
	if (!rs->last_signal)
		rs->last_signal = (int)si.ssi_signo;
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
 * it could not start. `carry` holds CMOS state kept across a guest reset. */
static int boot_once(struct run_state *rs, const struct vm_config *cfg, struct ser_writer *carry)
{
	struct mem_region layout[GUEST_MEM_MAX_REGIONS];
	struct vm *vm = calloc(1, sizeof(*vm));
	struct virtio_dev *vcon = NULL;
	int nr, reason = -1;

	if (!vm) {
		log_error("out of memory");
		return -1;
	}
	nr = arch_mem_layout(cfg->memory, layout, GUEST_MEM_MAX_REGIONS);
	if (vm_create(vm, cfg, layout, nr, NULL) < 0 || arch_vm_init(vm) < 0)
		goto out;
	vm->console_port = cfg->console == CONSOLE_SERIAL ? console_port(rs->console) : (struct char_port){ 0 };
	if (arch_create_devices(vm) < 0)
		goto out;
	if (virtio_create_devices(vm, console_port(rs->console), &vcon) < 0)
		goto out;
	if (carry->len) {
		struct ser_reader r;

		for (struct device *d = vm->devices; d; d = d->next) {
			if (!strcmp(d->ops->type, "rtc") && d->ops->load) {
				ser_reader_init(&r, carry->buf, carry->len);
				d->ops->load(d, &r);
			}
		}
	}
	if (vm_create_vcpus(vm, cfg->cpus) < 0 || arch_load_kernel(vm) < 0 ||
	    arch_vcpu_boot_regs(vm->vcpus[0]) < 0)
		goto out;
	if (cfg->console == CONSOLE_SERIAL)
		console_attach(rs->console, rs->loop, uart_rx, vm->console_dev, console_quit, rs);
	else if (cfg->console == CONSOLE_VIRTIO)
		console_attach(rs->console, rs->loop, virtio_console_rx, vcon, console_quit, rs);
	if (loop_add(rs->loop, vm->stop_efd, EPOLLIN, on_stop, rs) < 0) {
		log_error("cannot watch the VM's stop event: %s", strerror(errno));
		goto out;
	}
	rs->vm = vm;
	if (vm_start_vcpus(vm) == 0 || atomic_load(&vm->exit_reason) != VM_RUNNING)
		loop_run(rs->loop);
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
out:
	if (cfg->stats && vm->vcpus)
		print_stats(vm);
	vm_destroy(vm);
	free(vm);
	return reason;
}

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	struct run_state rs = { .sfd = -1 };
	struct ser_writer carry;
	sigset_t mask;
	int ret, status = EXIT_START_FAIL;

	ret = run_parse_args(argc, argv, &cfg);
	if (ret < 0)
		return 0; /* help */
	if (ret)
		return ret;
	if (check_host_limits(&cfg) < 0)
		return EXIT_START_FAIL;

	/* Termination signals are read through a signalfd on the main loop, so
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

	ser_writer_init(&carry);
	rs.loop = loop_create();
	rs.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (!rs.loop || rs.sfd < 0 || loop_add(rs.loop, rs.sfd, EPOLLIN, on_signal, &rs) < 0) {
		log_error("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	rs.console = cfg.console != CONSOLE_NONE ? console_open(STDIN_FILENO, STDOUT_FILENO)
						 : console_open(-1, -1);
	if (!rs.console)
		goto out;

	for (;;) {
		int reason = boot_once(&rs, &cfg, &carry);

		if (rs.last_signal)
			reason = VM_SIGNAL; /* a signal during a reboot ends it too */
		switch (reason) {
		case VM_REBOOT:
			if (!cfg.no_reboot)
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
			status = 128 + rs.last_signal;
		break;
	}
out:
	console_close(rs.console);
	loop_destroy(rs.loop);
	if (rs.sfd >= 0)
		close(rs.sfd);
	ser_writer_free(&carry);
	return status;
}
