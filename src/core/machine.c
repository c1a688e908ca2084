/* machine.c - the owner of a VM's life: build, run, rebuild on a guest reset, stop. */
#include "machine.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "../backends/console.h"
#include "../virtio/setup.h"
#include "log.h"
#include "loop.h"
#include "migrate.h"
#include "notify.h"
#include "sandbox.h"
#include "sigwatch.h"
#include "util.h"
#include "vcpu.h"

/* How long a stop requested by a signal may take before kvmbox exits anyway. */
#define SIGNAL_GRACE_S 10

struct machine {
	const struct vm_config *cfg;
	struct loop *loop;
	struct console *console;
	struct sigwatch *sig;
	int last_signal; /* what stopped the VM, for VM_SIGNAL */

	/* The current VM: set and cleared by the main thread; other threads (a migration) get
	 * it handed over at their start and are joined before it goes away. */
	struct vm *vm;
	bool user_paused; /* one vm_pause held for the user */
	int shutdown_tfd; /* graceful shutdown deadline (timerfd) */

	/* The first boot's source of state. */
	struct snapshot *restore;
	bool restore_copy;
	struct migrate_in *incoming;
	/* State a guest reset keeps (device keep_save records), from one boot to the next. */
	struct ser_writer keep;

	struct migration *mig; /* outgoing migration thread, if one was started */
	_Atomic bool migrating;

	/* The sandbox (core/sandbox.h): /dev/kvm stays open from one boot to the next, so a reboot
	 * does not open it again; the lock-down happens once, before the first boot's guest runs. */
	int kvm_fd;
	bool locked_down;   /* jail entered, ids and capabilities dropped */
	bool main_filtered; /* the main thread's seccomp filter is installed */
	int notify_fd;      /* systemd's NOTIFY_SOCKET, -1: none */
	bool notified;      /* READY=1 sent */
};

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
	struct machine *m = opaque;
	int sig = sigwatch_take(m->sig);

	if (!sig)
		return;
	/* Kept even when the VM is already stopping (e.g. rebooting): the reboot loop must not
	 * start the guest again after a SIGTERM. */
	if (!m->last_signal)
		m->last_signal = sig;
	if (m->vm)
		vm_request_stop(m->vm, VM_SIGNAL);
}

static void console_quit(void *ctx)
{
	struct machine *m = ctx;

	if (!m->last_signal)
		m->last_signal = SIGINT;
	if (m->vm)
		vm_request_stop(m->vm, VM_SIGNAL);
}

static size_t console_rx(void *vmp, const uint8_t *buf, size_t n)
{
	struct vm *vm = vmp;

	return vm->console_in.receive ? vm->console_in.receive(vm->console_in.ctx, buf, n) : 0;
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

/* State a guest reset keeps: each device's keep_save record, found again by device name. */
static void keep_save(struct machine *m, struct vm *vm)
{
	ser_writer_free(&m->keep);
	ser_writer_init(&m->keep);
	for (struct device *d = vm->devices; d; d = d->next) {
		struct ser_writer one;

		if (!d->ops->keep_save)
			continue;
		ser_writer_init(&one);
		d->ops->keep_save(d, &one);
		ser_put_u32(&m->keep, (uint32_t)strlen(d->name));
		ser_put_bytes(&m->keep, d->name, strlen(d->name));
		ser_put_u32(&m->keep, (uint32_t)one.len);
		ser_put_bytes(&m->keep, one.buf, one.len);
		ser_writer_free(&one);
	}
}

static void keep_load(struct machine *m, struct vm *vm)
{
	struct ser_reader r;

	ser_reader_init(&r, m->keep.buf, m->keep.len);
	while (!r.err && r.off < r.len) {
		char name[sizeof(((struct device *)0)->name)] = "";
		uint32_t nl = ser_get_u32(&r), len;
		struct ser_reader one;

		if (nl >= sizeof(name))
			break;
		ser_get_bytes(&r, name, nl);
		len = ser_get_u32(&r);
		if (r.err || len > r.len - r.off)
			break;
		ser_reader_init(&one, r.buf + r.off, len);
		r.off += len;
		for (struct device *d = vm->devices; d; d = d->next)
			if (d->ops->keep_load && !strcmp(d->name, name) && d->ops->keep_load(d, &one) < 0)
				log_warn("%s: the state kept across the reset was refused; starting afresh",
					 name);
	}
}

/* A termination signal came (taken here: the loop does not run during a receive). */
static bool incoming_signalled(struct machine *m)
{
	int sig = sigwatch_take(m->sig);

	if (sig && !m->last_signal)
		m->last_signal = sig;
	return sig != 0;
}

/* Build the VM and run it until it stops. Returns the stop reason, or -1 when it could not
 * start. The first boot may resume a snapshot (m->restore) or an incoming migration
 * (m->incoming) instead of loading the kernel. */
static int boot_once(struct machine *m)
{
	const struct vm_config *cfg = m->cfg;
	struct mem_region layout[GUEST_MEM_MAX_REGIONS];
	struct vm *vm = calloc(1, sizeof(*vm));
	struct ram_file rf = { .fd = -1 };
	uint8_t *state = NULL;
	uint64_t state_len = 0;
	int nr, reason = -1;
	bool hold, started;

	if (!vm) {
		log_error("out of memory");
		return -1;
	}
	if (m->restore)
		rf = (struct ram_file){ .fd = m->restore->fd,
					.off = SNAP_RAM_OFFSET,
					.copy = m->restore_copy };
	nr = arch_mem_layout(cfg->memory, layout, GUEST_MEM_MAX_REGIONS);
	vm_init(vm, cfg);
	if (m->kvm_fd >= 0) {
		vm->kvm_fd = m->kvm_fd;
		vm->kvm_fd_kept = true;
	}
	/* The user's inputs (RAM, kernel, initrd) are checked before /dev/kvm is opened, so their
	 * errors are not hidden behind a /dev/kvm one. */
	if (vm_alloc_ram(vm, layout, nr, m->restore ? &rf : NULL) < 0)
		goto out;
	if (!m->restore && !m->incoming && arch_load_kernel(vm) < 0)
		goto out;
	if (vm_open_kvm(vm) < 0)
		goto out;
	m->kvm_fd = vm->kvm_fd;
	vm->kvm_fd_kept = true;
	if (arch_vm_init(vm) < 0 || vm_create_vcpus(vm, cfg->cpus) < 0)
		goto out;
	if (m->incoming) {
		/* Guest RAM first; the devices take over the source's backends only once it has
		 * stopped. */
		state = migrate_receive_ram(m->incoming, vm, sigwatch_fd(m->sig), &state_len);
		if (!state) {
			incoming_signalled(m); /* then 128+N */
			goto out;
		}
	}
	/* The console backend goes to whichever device is the console; it registers
	 * vm->console_in for the user's input. */
	vm->console_out = console_port(m->console);
	vm->loop = m->loop;
	if (arch_create_devices(vm) < 0 || vm_create_devices(vm) < 0 ||
	    (cfg->console == CONSOLE_VIRTIO && virtio_create_console(vm) < 0))
		goto fail_incoming;
	keep_load(m, vm);
	if (m->restore || state) {
		struct ser_reader r;

		if (m->restore)
			ser_reader_init(&r, m->restore->meta, m->restore->meta_len);
		else
			ser_reader_init(&r, state, state_len);
		if (vm_state_load(vm, &r) < 0)
			goto fail_incoming;
		/* A termination signal before the acknowledgement ends the receive: the source,
		 * told so, resumes its VM. After it, it stops this VM like any other. */
		if (state && incoming_signalled(m)) {
			log_error("migration: a termination signal came before the hand-over; the VM was "
				  "not started here and the source keeps running it");
			goto fail_incoming;
		}
		if (state && migrate_finish(m->incoming, true) < 0) {
			log_error(
				"migration: the source went away before the hand-over; not starting the VM");
			goto out;
		}
	} else if (arch_vcpu_boot_regs(vm->vcpus[0]) < 0) {
		goto out;
	}
	if (!m->locked_down) {
		/* Every host resource is open (/dev/kvm, disks, taps, the control socket): the jail,
		 * the ids and the capabilities go before the guest runs. */
		if (sandbox_lockdown() < 0)
			goto out;
		m->locked_down = true;
	}
	if (cfg->console != CONSOLE_NONE)
		console_attach(m->console, m->loop, console_rx, vm, console_quit, m);
	if (loop_add(m->loop, vm->stop_efd, EPOLLIN, on_stop, m) < 0) {
		log_error("cannot watch the VM's stop event: %s", strerror(errno));
		goto out;
	}
	m->vm = vm;
	hold = !m->main_filtered;
	started = vm_start_vcpus(vm, hold) == 0;
	if (hold) {
		/* The vCPU threads install their own filter and wait; the main thread's goes on
		 * before the guest's first instruction. Threads created later (a rebooted VM's, a
		 * migration's, the snapshot writer) start under it and add theirs. */
		sandbox_thread_enter(SB_MAIN);
		m->main_filtered = true;
		vm_release_vcpus(vm);
	}
	if (started && !m->notified) {
		notify_send(m->notify_fd, "READY=1");
		m->notified = true;
	}
	if (started || atomic_load(&vm->exit_reason) != VM_RUNNING) {
		if (m->user_paused)
			vm_pause(vm); /* restore --paused */
		loop_run(m->loop);
	}
	migrate_cancel(&m->mig); /* a migration must not outlive its VM */
	reason = atomic_load(&vm->exit_reason);
	/* Join the vCPUs before reading their state or stats. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(vm->vcpus[i]);
	if (reason == VM_REBOOT)
		keep_save(m, vm);
	loop_del(m->loop, vm->stop_efd);
	console_detach(m->console);
	m->vm = NULL;
	m->user_paused = false;
	goto out;
fail_incoming:
	if (state)
		migrate_finish(m->incoming, false);
out:
	free(state);
	vm_resume_all(vm); /* release parked device workers before teardown */
	if (cfg->stats && vm->vcpus)
		print_stats(vm);
	vm_destroy(vm);
	free(vm);
	return reason;
}

struct machine *machine_create(const struct vm_config *cfg)
{
	struct machine *m = calloc(1, sizeof(*m));
	sigset_t mask;

	if (!m) {
		log_error("out of memory");
		return NULL;
	}
	m->cfg = cfg;
	m->notify_fd = -1;
	m->shutdown_tfd = -1;
	m->kvm_fd = -1;
	ser_writer_init(&m->keep);
	/* Before any thread exists: they inherit the I/O CPUs and stack size; memory locking. */
	if (vm_tuning_apply_process(cfg) < 0) {
		ser_writer_free(&m->keep);
		free(m);
		return NULL;
	}

	/* Termination signals are taken by the sigwatch thread and handed to the main loop, so
	 * block them everywhere (threads inherit the mask). */
	sigwatch_termination_set(&mask);
	sigaddset(&mask, SIG_VCPU_KICK); /* only vCPU threads take kicks */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIG_VCPU_KICK);
	signal(SIGPIPE, SIG_IGN);
	vcpu_signals_init();

	m->loop = loop_create();
	m->sig = sigwatch_start(&mask, SIGNAL_GRACE_S);
	if (!m->loop || !m->sig || loop_add(m->loop, sigwatch_fd(m->sig), EPOLLIN, on_signal, m) < 0) {
		if (m->sig)
			log_error("cannot set up the event loop: %s", strerror(errno));
		machine_destroy(m);
		return NULL;
	}
	m->console = cfg->console != CONSOLE_NONE ? console_open(STDIN_FILENO, STDOUT_FILENO)
						  : console_open(-1, -1);
	if (!m->console) {
		machine_destroy(m);
		return NULL;
	}
	return m;
}

void machine_set_restore(struct machine *m, struct snapshot *s, bool copy, bool start_paused)
{
	m->restore = s;
	m->restore_copy = copy || s->shared_writable;
	if (!copy && s->shared_writable)
		log_warn("snapshot: another user may write the file; reading guest RAM into memory instead "
			 "of mapping it (as --copy)");
	m->user_paused = start_paused;
}

void machine_set_incoming(struct machine *m, struct migrate_in *in)
{
	m->incoming = in;
}

void machine_set_notify(struct machine *m, int notify_fd)
{
	m->notify_fd = notify_fd;
}

int machine_run(struct machine *m)
{
	int status = MACHINE_EXIT_START_FAIL;

	for (;;) {
		int reason = boot_once(m);

		/* Only the first boot resumes saved or migrated state. */
		if (m->restore) {
			snapshot_close(m->restore);
			m->restore = NULL;
		}
		migrate_in_close(m->incoming);
		m->incoming = NULL;
		if (m->last_signal && reason != VM_HANDOFF)
			reason = VM_SIGNAL; /* a signal during a reboot ends it too */
		switch (reason) {
		case VM_REBOOT:
			if (!m->cfg->no_reboot)
				continue;
			status = MACHINE_EXIT_OFF;
			break;
		case VM_POWEROFF:
		case VM_HANDOFF:
			status = MACHINE_EXIT_OFF;
			break;
		case VM_SIGNAL:
			status = 128 + m->last_signal;
			break;
		case VM_CRASH:
			status = MACHINE_EXIT_CRASH;
			break;
		case VM_HOST_ERROR:
			status = MACHINE_EXIT_HOST_FAIL;
			break;
		default:
			status = MACHINE_EXIT_START_FAIL;
			break;
		}
		notify_send(m->notify_fd, "STOPPING=1");
		return status;
	}
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	migrate_cancel(&m->mig);
	console_close(m->console);
	if (m->shutdown_tfd >= 0)
		close(m->shutdown_tfd);
	loop_destroy(m->loop);
	sigwatch_stop(m->sig);
	migrate_in_close(m->incoming);
	if (m->restore)
		snapshot_close(m->restore);
	ser_writer_free(&m->keep);
	if (m->kvm_fd >= 0)
		close(m->kvm_fd);
	if (m->notify_fd >= 0)
		close(m->notify_fd);
	free(m);
}

struct loop *machine_loop(struct machine *m)
{
	return m->loop;
}

const struct vm_config *machine_config(const struct machine *m)
{
	return m->cfg;
}

/* ---- a running machine ------------------------------------------------------------------ */

enum machine_state machine_state(struct machine *m)
{
	if (!m->vm)
		return MACHINE_RESTARTING;
	return m->user_paused ? MACHINE_PAUSED : MACHINE_RUNNING;
}

struct vm *machine_vm(struct machine *m)
{
	return m->vm;
}

int machine_user_pause(struct machine *m)
{
	if (!m->vm)
		return -1;
	if (!m->user_paused) {
		vm_pause(m->vm);
		m->user_paused = true;
	}
	return 0;
}

int machine_user_resume(struct machine *m)
{
	if (!m->vm)
		return -1;
	if (m->user_paused) {
		vm_resume(m->vm);
		m->user_paused = false;
	}
	return 0;
}

int machine_snapshot(struct machine *m, const char *path, bool hibernate, struct snap_result *res, char *err,
		     size_t errlen)
{
	if (!m->vm) {
		snprintf(err, errlen, "the VM is restarting; try again");
		return -1;
	}
	/* Huge-page RAM cannot be forked copy-on-write without a spare huge page for each page
	 * the guest writes meanwhile: the guest stays paused while its RAM is written. */
	bool live = !hibernate && !guest_mem_huge(&m->vm->mem);

	if (vm_pinned(m->vm, hibernate ? "hibernate" : "snapshot", err, errlen) < 0)
		return -1;
	if (snapshot_write(m->vm, path, live, res, err, errlen) < 0)
		return -1;
	if (!live && !hibernate)
		vm_resume(m->vm);
	/* The state lives on in the file: the VM stops, and kvmbox exits 0. */
	if (hibernate)
		vm_request_stop(m->vm, VM_HANDOFF);
	return 0;
}

static void on_shutdown_deadline(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct machine *m = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
	loop_del(l, fd);
	close(fd);
	m->shutdown_tfd = -1;
	if (m->vm) {
		log_warn("the guest did not power off within the shutdown timeout; stopping it");
		vm_request_stop(m->vm, VM_POWEROFF);
	}
}

int machine_shutdown(struct machine *m, int timeout_s, char *err, size_t errlen)
{
	struct itimerspec its = { 0 };

	if (!m->vm) {
		snprintf(err, errlen, "the VM is restarting; try again");
		return -1;
	}
	machine_user_resume(m); /* a paused guest cannot answer the power button */
	if (m->vm->power_button.press)
		m->vm->power_button.press(m->vm->power_button.ctx);
	if (m->shutdown_tfd < 0) {
		m->shutdown_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (m->shutdown_tfd < 0 ||
		    loop_add(m->loop, m->shutdown_tfd, EPOLLIN, on_shutdown_deadline, m) < 0) {
			snprintf(err, errlen, "cannot arm the shutdown timer: %s", strerror(errno));
			if (m->shutdown_tfd >= 0)
				close(m->shutdown_tfd);
			m->shutdown_tfd = -1;
			return -1;
		}
	}
	its.it_value.tv_sec = timeout_s;
	timerfd_settime(m->shutdown_tfd, 0, &its, NULL);
	return 0;
}

int machine_migrate(struct machine *m, const char *uri, bool copy_disks, migration_done_fn done, void *ctx,
		    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int family;

	if (migrate_parse_uri(uri, &ss, &sl, &family) < 0) {
		snprintf(err, errlen,
			 "migrate: '%s' is not tcp:IP:PORT or unix:PATH (host names are not resolved)", uri);
		return MACHINE_BAD_ARGUMENT;
	}
	if (!m->vm) {
		snprintf(err, errlen, "the VM is restarting; try again");
		return MACHINE_BAD_STATE;
	}
	if (m->user_paused) {
		snprintf(err, errlen, "the VM is paused; resume it before migrating");
		return MACHINE_BAD_STATE;
	}
	if (vm_pinned(m->vm, "migrate", err, errlen) < 0)
		return MACHINE_BAD_STATE;
	if (atomic_exchange(&m->migrating, true)) {
		snprintf(err, errlen, "a migration is already in progress");
		return MACHINE_BAD_STATE;
	}
	migrate_cancel(&m->mig); /* reap a finished earlier attempt */
	m->mig = migrate_start(m->vm, uri, copy_disks, &m->migrating, done, ctx, err, errlen);
	if (!m->mig) {
		atomic_store(&m->migrating, false);
		return MACHINE_FAILED;
	}
	return 0;
}

bool machine_migrating(struct machine *m)
{
	return atomic_load(&m->migrating);
}
