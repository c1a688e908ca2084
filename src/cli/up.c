/* up.c - `kvmbox up [--api PATH] FILE`: the supervisor (up.h).
 *
 * One thread and one event loop (core/loop.c): a signalfd (SIGCHLD, the termination signals),
 * a timerfd that ticks while something is under way (a VM starting, waiting out its back-off,
 * shutting down) and the set's control socket. Each VM is its own `kvmbox run` process, the
 * binary re-executed through /proc/self/exe with the VM's run options as arguments and
 * --api STATE_DIR/NAME.sock; a VM is "running" once that socket answers. Its stdout (the
 * serial or virtio console) goes to its console log, its stderr is ours. The child is in a
 * process group of its own (a terminal's Ctrl-C reaches only us: we shut the VMs down in
 * order) and gets SIGTERM should we die (PR_SET_PDEATHSIG).
 *
 * Requests to a VM's own socket (`vm NAME ...`, and up's own snapshots: snapshot-every, the
 * set's snapshot command) go out from a detached thread each (forward_start), one at a time per
 * VM, so that a VM that takes its time never holds the loop. An up snapshot is written by the VM
 * to SNAPSHOT_DIR/NAME.snap.part; that thread fsyncs it, renames it over NAME.snap and fsyncs the
 * directory, so NAME.snap is always the last complete one. What it learns (a good snapshot, when)
 * is the VM's snap_* fields, under snap_lock; the loop reads them for `list` and to decide how a
 * restart starts (restart-from = snapshot: `kvmbox restore NAME.snap ...`). */
#include "up.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../api/api.h"
#include "../core/devtype.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "../core/notify.h"
#include "../core/util.h"
#include "options.h"
#include "up_console.h"

#define UP_TICK_MS      100
#define UP_KILL_GRACE_S 10 /* after a shutdown's own timeout, before SIGKILL */

enum vm_state { VM_STOPPED, VM_STARTING, VM_RUNNING, VM_STOPPING, VM_BACKOFF, VM_FAILED };
static const char *const state_names[] = {
	"stopped", "starting", "running", "stopping", "backoff", "failed"
};

struct sup_vm {
	const struct up_vm *vm;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum vm_state state;
	pid_t pid;
	uint64_t started_ns;    /* the process's start */
	uint64_t due_ns;        /* VM_BACKOFF: restart then; VM_STOPPING: SIGKILL then */
	unsigned restarts;      /* by the supervisor, in all */
	unsigned streak;        /* restarts in a row (reset by a run of UP_STABLE_MS) */
	bool pending;           /* to be started once the VMs it is after ran */
	bool ran;               /* its socket answered at least once */
	bool again;             /* restart once stopped (the restart command) */
	int status;             /* the last exit status (-1: none yet) */
	atomic_bool forwarding; /* a request to its socket is on its way (one at a time) */
	uint64_t snap_due_ns;   /* snapshot-every: the next one then (0: not scheduled) */
	bool from_snapshot;     /* this process was started by `kvmbox restore` */
	bool failed_exit;       /* VM_BACKOFF: the process ended with an error (not a power-off) */
	int in_fd;              /* with --api: the write end of the process's stdin, a pipe (-1: none) */
	struct up_console *con; /* the client attached to its console (up_console.h), or NULL */
	/* Under snap_lock (the forwarding thread writes them, the loop reads them). */
	pthread_mutex_t snap_lock;
	bool have_snap;      /* a snapshot of this up's is at vm->snapshot_path */
	uint64_t snap_ns;    /* when it was asked for (now_ns) */
	bool restore_failed; /* a restore from it failed: restarts boot until the next good one */
};

struct up {
	struct up_config uc;
	struct sup_vm vms[UP_MAX_VMS];
	struct loop *loop;
	struct api_server *api;
	const char *argv0;
	int sfd, tfd, notify_fd, lock_fd;
	bool ticking, ready, stopping;
	int result;            /* the exit status */
	atomic_uint in_flight; /* forwarding threads still running (they use vms[]) */
};

/* ---- the VMs' processes --------------------------------------------------------------- */

static void arm_timer(struct up *u)
{
	struct itimerspec its = { { 0, UP_TICK_MS * 1000000L }, { 0, UP_TICK_MS * 1000000L } };

	if (u->ticking)
		return;
	timerfd_settime(u->tfd, 0, &its, NULL);
	u->ticking = true;
}

static void vm_failed(struct sup_vm *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vm_failed(struct sup_vm *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("up: vm %s: %s", s->vm->name, msg);
	s->state = VM_FAILED;
	s->pending = false;
}

/* Start VM s's process: a boot, or a restore of its last good snapshot when policy (a restart
 * its restart policy makes after a failure) and restart-from = snapshot say so
 * (up_restore_from). */
static void spawn(struct up *u, struct sup_vm *s, bool policy)
{
	const char *argv[UP_MAX_ARGS + 6], *snap;
	char api[sizeof(s->sock) + 8];
	int log_fd, in_rd;
	pid_t parent = getpid(), pid;
	bool have, failed;

	s->pending = false;
	log_fd = open(s->vm->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
	if (log_fd < 0) {
		vm_failed(s, "console-log %s: %s; give a writable path", s->vm->console_log, strerror(errno));
		return;
	}
	/* Its stdin: with a set's socket, a pipe whose write end is ours (a `console` client's
	 * input goes there); else /dev/null. */
	if (u->api) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0) {
			close(log_fd);
			vm_failed(s, "cannot start its process: pipe: %s; raise the open file limit",
				  strerror(errno));
			return;
		}
		in_rd = p[0];
		s->in_fd = p[1];
		fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
	} else {
		in_rd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	snprintf(api, sizeof(api), "--api=%s", s->sock);
	pthread_mutex_lock(&s->snap_lock);
	have = s->have_snap;
	failed = s->restore_failed;
	pthread_mutex_unlock(&s->snap_lock);
	snap = up_restore_from(s->vm, policy, have, failed);
	up_command(s->vm, u->argv0, api, snap, argv);
	pid = in_rd < 0 ? -1 : fork();
	if (pid == 0) {
		sigset_t none;

		/* The child: only async-signal-safe calls until exec. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(128 + SIGTERM);
		dup2(in_rd, 0);
		dup2(log_fd, 1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	close(log_fd);
	if (in_rd >= 0)
		close(in_rd);
	if (pid < 0) {
		if (s->in_fd >= 0) {
			close(s->in_fd);
			s->in_fd = -1;
		}
		vm_failed(s, "cannot start its process: %s", strerror(errno));
		return;
	}
	s->pid = pid;
	s->state = VM_STARTING;
	s->started_ns = now_ns();
	s->from_snapshot = snap != NULL;
	s->snap_due_ns = 0;
	if (snap)
		fprintf(stderr, "kvmbox up: vm %s: started, pid %d, restoring %s\n", s->vm->name, (int)pid,
			snap);
	else
		fprintf(stderr, "kvmbox up: vm %s: started, pid %d\n", s->vm->name, (int)pid);
	arm_timer(u);
}

/* Does s's control socket take a connection? */
static bool answers(const struct sup_vm *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	memcpy(sa.sun_path, s->sock, strlen(s->sock) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Ask VM s to power off (ACPI, forced by kvmbox after its shutdown-timeout); SIGTERM when its
 * socket does not take the request; SIGKILL if it is still there UP_KILL_GRACE_S later. */
static void stop_vm(struct up *u, struct sup_vm *s)
{
	char line[128], err[512], *reply = NULL;

	if (s->state == VM_BACKOFF) {
		s->state = VM_STOPPED;
		return;
	}
	s->pending = false;
	if (s->state != VM_RUNNING && s->state != VM_STARTING)
		return;
	snprintf(line, sizeof(line), "{\"id\":1,\"command\":\"shutdown\",\"arguments\":{\"timeout\":%u}}\n",
		 s->vm->shutdown_timeout);
	if (s->state != VM_RUNNING || api_call(s->sock, line, 5, &reply, err, sizeof(err)) ||
	    !strstr(reply, "\"return\"")) {
		if (s->state == VM_RUNNING)
			log_warn("up: vm %s: no ACPI shutdown (%s); sending SIGTERM", s->vm->name,
				 reply ? reply : err);
		kill(s->pid, SIGTERM);
	}
	free(reply);
	s->state = VM_STOPPING;
	s->due_ns = now_ns() + (uint64_t)(s->vm->shutdown_timeout + UP_KILL_GRACE_S) * 1000000000ULL;
	arm_timer(u);
}

static bool alive(const struct sup_vm *s)
{
	return s->state == VM_STARTING || s->state == VM_RUNNING || s->state == VM_STOPPING;
}

/* VM s's process ended with wait status st. */
static void reaped(struct up *u, struct sup_vm *s, int st)
{
	uint64_t ran_ms = (now_ns() - s->started_ns) / 1000000;
	bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0, restart;
	enum vm_state was = s->state;

	s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	s->pid = 0;
	s->state = VM_STOPPED;
	fprintf(stderr, "kvmbox up: vm %s: exited with status %d after %llu ms\n", s->vm->name, s->status,
		(unsigned long long)ran_ms);
	/* Its console: the attached client gets the rest of the log and one line, and is
	 * detached (a restart is a new process: attach again). */
	if (s->in_fd >= 0) {
		close(s->in_fd);
		s->in_fd = -1;
	}
	if (s->con) {
		char line[200];

		snprintf(line, sizeof(line),
			 "kvmbox: up: vm %s: its process exited with status %d; console detached (attach "
			 "again once it runs)",
			 s->vm->name, s->status);
		up_console_stop(s->con, line);
		s->con = NULL;
	}
	/* A restore that ended before its socket answered, with an error: the snapshot does not
	 * restore (corrupt, refused). Restarts boot until a new snapshot is good; said once. */
	if (s->from_snapshot && was == VM_STARTING && !clean) {
		pthread_mutex_lock(&s->snap_lock);
		s->restore_failed = true;
		pthread_mutex_unlock(&s->snap_lock);
		log_error("up: vm %s: restoring %s failed (status %d); its next start boots", s->vm->name,
			  s->vm->snapshot_path, s->status);
	}
	s->from_snapshot = false;
	if (u->stopping) {
		if (!clean && !u->result)
			u->result = 1;
		return;
	}
	if (was == VM_STOPPING) { /* the stop or restart command */
		if (s->again) {
			s->again = false;
			s->streak = 0;
			spawn(u, s, false);
		}
		return;
	}
	restart = s->vm->restart == UP_RESTART_ALWAYS || (s->vm->restart == UP_RESTART_ON_FAILURE && !clean);
	if (!restart) {
		if (!clean)
			s->state = VM_FAILED;
		return;
	}
	if (ran_ms >= UP_STABLE_MS)
		s->streak = 0;
	if (s->streak >= s->vm->restart_limit) {
		vm_failed(s,
			  "%u restarts in a row (restart-limit); left stopped: kvmbox ctl UP_SOCKET start %s",
			  s->streak, s->vm->name);
		return;
	}
	s->streak++;
	s->state = VM_BACKOFF;
	s->failed_exit = !clean;
	s->due_ns = now_ns() + (uint64_t)up_backoff_ms(s->streak) * 1000000ULL;
	fprintf(stderr, "kvmbox up: vm %s: restart %u in %u ms\n", s->vm->name, s->streak,
		up_backoff_ms(s->streak));
	arm_timer(u);
}

static int snapshot_start(struct up *u, struct sup_vm *s, struct api_req *req);

/* Start what may start, notice what came up, restart and kill what is due; stop ticking when
 * nothing is under way; end the loop when nothing is left to do. */
static void tick(struct up *u)
{
	uint64_t now = now_ns();
	bool busy = false, any = false, all_up = true;

	for (unsigned k = 0; k < u->uc.nr_vms; k++) {
		struct sup_vm *s = &u->vms[u->uc.order[k]];
		unsigned a;

		if (s->pending && !u->stopping) {
			for (a = 0; a < s->vm->nr_after && u->vms[s->vm->after[a]].ran; a++)
				;
			if (a == s->vm->nr_after) {
				spawn(u, s, false);
			} else {
				const struct sup_vm *d = &u->vms[s->vm->after[a]];

				if (!alive(d) && !d->pending && d->state != VM_BACKOFF) {
					/* What it waits for ended before it started: it never will. */
					log_error(
						"up: vm %s: not started: vm %s, which it is after, stopped first "
						"(start it with kvmbox ctl UP_SOCKET start %s)",
						s->vm->name, d->vm->name, s->vm->name);
					s->pending = false;
				}
			}
		}
		if (s->state == VM_STARTING && answers(s)) {
			s->state = VM_RUNNING;
			s->ran = true;
		}
		if (s->state == VM_BACKOFF && now >= s->due_ns) {
			s->restarts++;
			/* A failure may resume from a snapshot; a power-off (restart = always) boots. */
			spawn(u, s, s->failed_exit);
		}
		if (s->state == VM_RUNNING && s->vm->snapshot_every_ms && !u->stopping) {
			if (!s->snap_due_ns)
				s->snap_due_ns = now + s->vm->snapshot_every_ms * 1000000ULL;
			/* Another request to the VM on its way (Busy): the next tick tries again;
			 * started, or failed otherwise (said): the next one a period later. */
			if (now >= s->snap_due_ns && snapshot_start(u, s, NULL) != -EBUSY)
				s->snap_due_ns = now + s->vm->snapshot_every_ms * 1000000ULL;
			busy = true;
		}
		if (s->state == VM_STOPPING && now >= s->due_ns) {
			log_warn("up: vm %s: still running %u s after its shutdown; killing it", s->vm->name,
				 s->vm->shutdown_timeout + UP_KILL_GRACE_S);
			kill(s->pid, SIGKILL);
			s->due_ns = UINT64_MAX;
		}
		busy |= s->pending || s->state == VM_STARTING || s->state == VM_BACKOFF ||
			s->state == VM_STOPPING;
		any |= alive(s) || s->pending || s->state == VM_BACKOFF;
		all_up &= s->ran;
	}
	if (all_up && !u->ready && !u->stopping) {
		u->ready = true;
		notify_send(u->notify_fd, "READY=1");
		fprintf(stderr, "kvmbox up: all %u VMs started\n", u->uc.nr_vms);
	}
	if (!busy && u->ticking) {
		struct itimerspec off = { { 0, 0 }, { 0, 0 } };

		timerfd_settime(u->tfd, 0, &off, NULL);
		u->ticking = false;
	}
	/* Nothing left: the end, unless the set's socket may start a VM again. */
	if (!any && (u->stopping || !u->api)) {
		/* After SIGTERM: 0 when every VM running then stopped cleanly (reaped). When they
		 * all ended on their own: 0 when every one powered off. */
		for (unsigned i = 0; i < u->uc.nr_vms && !u->stopping && !u->result; i++)
			if (u->vms[i].status != 0)
				u->result = 1;
		loop_quit(u->loop);
	}
}

static void begin_shutdown(struct up *u, int sig)
{
	fprintf(stderr, "kvmbox up: SIG%s: shutting every VM down\n",
		sig == SIGTERM  ? "TERM"
		: sig == SIGINT ? "INT"
				: "HUP");
	u->stopping = true;
	notify_send(u->notify_fd, "STOPPING=1");
	/* The requests in the reverse of the start order (a VM is asked before those it started
	 * after); the guests then shut down side by side. */
	for (unsigned k = u->uc.nr_vms; k-- > 0;)
		stop_vm(u, &u->vms[u->uc.order[k]]);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct up *u = opaque;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			int st;
			pid_t pid;

			while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
				for (unsigned i = 0; i < u->uc.nr_vms; i++)
					if (u->vms[i].pid == pid)
						reaped(u, &u->vms[i], st);
		} else if (!u->stopping) {
			begin_shutdown(u, (int)si.ssi_signo);
		} else {
			/* A second one: no more waiting. */
			log_warn("up: a second signal; killing the VMs still running");
			for (unsigned i = 0; i < u->uc.nr_vms; i++)
				if (alive(&u->vms[i]))
					kill(u->vms[i].pid, SIGKILL);
			u->result = 128 + (int)si.ssi_signo;
		}
	}
	tick(u);
}

static void on_timer(struct loop *l, int fd, uint32_t events, void *opaque)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	tick(opaque);
}

/* ---- the set's control socket (docs/API.md, "kvmbox up") ------------------------------ */

/* How long a `vm NAME ...` request may wait for the VM's reply: a stopped (SIGSTOP) or wedged
 * VM must not hold its forwarding thread for ever. Long enough for a snapshot or a migration of
 * a large guest. */
#define UP_FORWARD_TIMEOUT_S 900

struct forward {
	struct up *u;
	struct sup_vm *s;
	struct api_req *req; /* NULL: up's own periodic snapshot */
	bool snapshot;       /* up's snapshot: NAME.snap.part renamed over NAME.snap */
	uint64_t t0;         /* when it was sent (now_ns) */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char name[UP_NAME_MAX + 1];
	char *line;
};

/* fsync path (a file, or a directory) by name. 0 or -1 with errno. */
static int fsync_path(const char *path, int flags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | flags), ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	if (ret < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* An up snapshot's end (in its forwarding thread): the VM wrote NAME.snap.part (reply: its
 * return value, or NULL and why): make it NAME.snap, durably, or keep the last good one and
 * say why in one line. The reply to f->req, if any. */
static void snapshot_done(struct forward *f, struct json_object *ret, const char *class, const char *why)
{
	const struct up_vm *vm = f->s->vm;
	/* Two paths and an errno string, or forward_thread's why[]: never cut short. */
	char msg[2 * PATH_MAX + 700];

	if (ret && fsync_path(vm->snapshot_part, 0) < 0)
		snprintf(msg, sizeof(msg), "fsync %s: %s", vm->snapshot_part, strerror(errno));
	else if (ret && rename(vm->snapshot_part, vm->snapshot_path) < 0)
		snprintf(msg, sizeof(msg), "rename %s to %s: %s", vm->snapshot_part, vm->snapshot_path,
			 strerror(errno));
	else if (ret && fsync_path(vm->snapshot_dir, O_DIRECTORY) < 0)
		snprintf(msg, sizeof(msg), "fsync %s: %s", vm->snapshot_dir, strerror(errno));
	else if (ret)
		msg[0] = '\0';
	else
		snprintf(msg, sizeof(msg), "%s", why);
	if (msg[0]) {
		/* The directory's fsync failing leaves the new file in place, complete: keep it. */
		if (access(vm->snapshot_part, F_OK) == 0)
			unlink(vm->snapshot_part);
		log_error("up: vm %s: snapshot failed, %s kept as it was: %s", f->name, vm->snapshot_path,
			  msg);
		if (f->req)
			api_error(f->req, ret ? "GenericError" : class, "vm %s: snapshot failed: %s", f->name,
				  msg);
		return;
	}
	pthread_mutex_lock(&f->s->snap_lock);
	f->s->have_snap = true;
	f->s->snap_ns = f->t0;
	f->s->restore_failed = false;
	pthread_mutex_unlock(&f->s->snap_lock);
	if (f->req) {
		struct json_object *o = json_object_get(ret);

		json_object_object_add(o, "name", json_object_new_string(f->name));
		json_object_object_add(o, "path", json_object_new_string(vm->snapshot_path));
		api_reply(f->req, o);
	}
}

/* A request to a VM's own socket, from a thread of its own (a snapshot may take a while;
 * api_reply is thread-safe): the VM's reply to f->req (`vm NAME ...`), or an up snapshot's end. */
static void *forward_thread(void *opaque)
{
	struct forward *f = opaque;
	struct up *u = f->u;
	struct json_object *r = NULL, *v, *cls, *desc;
	char err[512], why[600], *reply = NULL;
	const char *class = "GenericError";

	why[0] = '\0';
	v = NULL;
	if (api_call(f->sock, f->line, UP_FORWARD_TIMEOUT_S, &reply, err, sizeof(err))) {
		class = "NotRunning";
		snprintf(why, sizeof(why), "vm %s: %s", f->name, err);
	} else if (!(r = json_tokener_parse(reply)) || !json_object_is_type(r, json_type_object)) {
		snprintf(why, sizeof(why), "vm %s: the reply is not a JSON object", f->name);
	} else if (json_object_object_get_ex(r, "return", &v)) {
		/* v is the reply */
	} else if (json_object_object_get_ex(r, "error", &v) && json_object_object_get_ex(v, "class", &cls) &&
		   json_object_object_get_ex(v, "desc", &desc)) {
		class = json_object_get_string(cls);
		snprintf(why, sizeof(why), "%s", json_object_get_string(desc));
		v = NULL;
	} else {
		snprintf(why, sizeof(why), "vm %s: a reply without \"return\" or \"error\"", f->name);
		v = NULL;
	}
	if (f->snapshot)
		snapshot_done(f, v, class, why);
	else if (v)
		api_reply(f->req, json_object_get(v));
	else
		api_error(f->req, class, "%s", why);
	json_object_put(r);
	free(reply);
	free(f->line);
	atomic_store(&f->s->forwarding, false);
	free(f);
	atomic_fetch_sub(&u->in_flight, 1);
	return NULL;
}

/* Send request (taken) to VM s's socket from a thread of its own: one at a time per VM, so a
 * client cannot pile up threads behind a VM that does not answer. snapshot: an up snapshot
 * (snapshot_done). 0, or after an error reply to req (if any) -EBUSY (another request is on its
 * way) or -ENOMEM (out of resources). */
static int forward_start(struct up *u, struct sup_vm *s, struct api_req *req, struct json_object *request,
			 bool snapshot)
{
	struct forward *f;
	pthread_attr_t attr;
	pthread_t t;

	if (atomic_exchange(&s->forwarding, true)) {
		json_object_put(request);
		if (req)
			api_error(req, "Busy",
				  "vm %s: a request to it is still waiting for its reply; try again later",
				  s->vm->name);
		return -EBUSY;
	}
	f = calloc(1, sizeof(*f));
	if (f && asprintf(&f->line, "%s\n",
			  json_object_to_json_string_ext(
				  request, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		f->line = NULL;
	json_object_put(request);
	if (f && f->line) {
		f->u = u;
		f->s = s;
		f->req = req;
		f->snapshot = snapshot;
		f->t0 = now_ns();
		memcpy(f->sock, s->sock, sizeof(f->sock));
		memcpy(f->name, s->vm->name, sizeof(f->name));
		atomic_fetch_add(&u->in_flight, 1);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (!pthread_create(&t, &attr, forward_thread, f)) {
			pthread_attr_destroy(&attr);
			return 0;
		}
		pthread_attr_destroy(&attr);
		atomic_fetch_sub(&u->in_flight, 1);
	}
	if (f)
		free(f->line);
	free(f);
	atomic_store(&s->forwarding, false);
	if (req)
		api_error(req, "GenericError", "vm %s: cannot send it the request (out of resources)",
			  s->vm->name);
	else
		log_error("up: vm %s: cannot ask it for a snapshot (out of resources)", s->vm->name);
	return -ENOMEM;
}

/* A request {"id":1,"command":command,"arguments":arguments (taken, may be NULL)}. */
static struct json_object *request_new(const char *command, struct json_object *arguments)
{
	struct json_object *request = json_object_new_object();

	if (!request) {
		json_object_put(arguments);
		return NULL;
	}
	json_object_object_add(request, "id", json_object_new_int(1));
	json_object_object_add(request, "command", json_object_new_string(command));
	if (arguments)
		json_object_object_add(request, "arguments", arguments);
	return request;
}

/* Ask VM s for an up snapshot (into NAME.snap.part, then NAME.snap): snapshot-every's, or the
 * set's snapshot command (req). 0, or forward_start's -EBUSY or -ENOMEM (an error reply to req
 * when there is one). */
static int snapshot_start(struct up *u, struct sup_vm *s, struct api_req *req)
{
	struct json_object *args = json_object_new_object(), *request;

	if (args)
		json_object_object_add(args, "path", json_object_new_string(s->vm->snapshot_part));
	request = args ? request_new("snapshot", args) : NULL;
	if (!request) {
		if (req)
			api_error(req, "GenericError", "out of memory");
		else
			log_error("up: vm %s: cannot ask it for a snapshot (out of memory)", s->vm->name);
		return -ENOMEM;
	}
	return forward_start(u, s, req, request, true);
}

static void forward(struct up *u, struct sup_vm *s, struct api_req *req, struct json_object *args)
{
	struct json_object *cmd, *inner, *request;

	if (!json_object_object_get_ex(args, "command", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		api_error(req, "InvalidArgument", "vm needs {\"name\": NAME, \"command\": COMMAND}");
		return;
	}
	if (s->state != VM_RUNNING) {
		api_error(req, "NotRunning", "vm %s is %s", s->vm->name, state_names[s->state]);
		return;
	}
	if (!json_object_object_get_ex(args, "arguments", &inner))
		inner = NULL;
	request = request_new(json_object_get_string(cmd), json_object_get(inner));
	if (!request) {
		api_error(req, "GenericError", "out of memory");
		return;
	}
	forward_start(u, s, req, request, false);
}

/* {"path": NAME.snap, "age_s": whole seconds since it was taken}, or NULL: no snapshot of this
 * up's yet. */
static struct json_object *snapshot_json(struct sup_vm *s)
{
	struct json_object *o = NULL;

	pthread_mutex_lock(&s->snap_lock);
	if (s->have_snap) {
		o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(s->vm->snapshot_path));
		json_object_object_add(
			o, "age_s",
			json_object_new_int64((int64_t)((now_ns() - s->snap_ns) / 1000000000ULL)));
	}
	pthread_mutex_unlock(&s->snap_lock);
	return o;
}

static struct json_object *vm_json(struct sup_vm *s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(s->vm->name));
	json_object_object_add(o, "state", json_object_new_string(state_names[s->state]));
	json_object_object_add(o, "pid", s->pid ? json_object_new_int(s->pid) : NULL);
	json_object_object_add(o, "restarts", json_object_new_int((int)s->restarts));
	json_object_object_add(
		o, "uptime_s",
		alive(s) ? json_object_new_int64((int64_t)((now_ns() - s->started_ns) / 1000000000ULL))
			 : NULL);
	json_object_object_add(o, "last_status", s->status >= 0 ? json_object_new_int(s->status) : NULL);
	json_object_object_add(o, "socket", json_object_new_string(s->sock));
	json_object_object_add(o, "console_log", json_object_new_string(s->vm->console_log));
	json_object_object_add(o, "last_snapshot", snapshot_json(s));
	return o;
}

/* ---- console (up_console.h) ---- */

static void console_gone(void *ctx)
{
	struct sup_vm *s = ctx;

	s->con = NULL;
}

/* `console {name}`: the connection becomes VM s's console (docs/API.md). */
static void console_start(struct up *u, struct sup_vm *s, struct api_req *req, struct json_object *args)
{
	struct json_object *o;
	char err[512];

	json_object_object_foreach(args, key, val)
	{
		(void)val;
		if (strcmp(key, "name")) {
			api_error(req, "InvalidArgument", "console takes {\"name\": NAME} only, not '%.64s'",
				  key);
			return;
		}
	}
	if (u->stopping) {
		api_error(req, "InvalidState", "kvmbox up is shutting every VM down");
		return;
	}
	if (s->vm->cfg.console == CONSOLE_NONE) {
		api_error(req, "DeviceNotFound",
			  "vm %s has no console (console = none); give it console = "
			  "serial or virtio",
			  s->vm->name);
		return;
	}
	if (s->state != VM_STARTING && s->state != VM_RUNNING) {
		api_error(req, "NotRunning", "vm %s is %s; start it first (start %s)", s->vm->name,
			  state_names[s->state], s->vm->name);
		return;
	}
	if (s->con) {
		api_error(req, "Busy",
			  "vm %s: another client is attached to its console; only one at a time: detach it "
			  "first (Ctrl-A x)",
			  s->vm->name);
		return;
	}
	if (s->in_fd < 0) {
		api_error(req, "GenericError", "vm %s: its process has no console input", s->vm->name);
		return;
	}
	s->con = up_console_new(u->loop, s->vm->name, s->vm->console_log, s->in_fd, console_gone, s, err,
				sizeof(err));
	if (!s->con) {
		api_error(req, "GenericError", "%s", err);
		return;
	}
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "name", json_object_new_string(s->vm->name));
		json_object_object_add(o, "console_log", json_object_new_string(s->vm->console_log));
	}
	api_hijack(req, o, up_console_hijacked, s->con);
}

static void up_handle(void *ctx, struct api_req *req, const char *command, struct json_object *args)
{
	struct up *u = ctx;
	struct json_object *name;
	struct sup_vm *s = NULL;
	const char *vm_name;
	size_t len;

	if (!strcmp(command, "list")) {
		struct json_object *list = json_object_new_array(), *o = json_object_new_object();

		for (unsigned k = 0; k < u->uc.nr_vms; k++)
			json_object_array_add(list, vm_json(&u->vms[u->uc.order[k]]));
		json_object_object_add(o, "vms", list);
		api_reply(req, o);
		return;
	}
	if (strcmp(command, "start") && strcmp(command, "stop") && strcmp(command, "restart") &&
	    strcmp(command, "vm") && strcmp(command, "snapshot") && strcmp(command, "console")) {
		api_error(req, "CommandNotFound",
			  "unknown command '%.64s'; kvmbox up takes list, start, stop, restart, snapshot, vm "
			  "and console (docs/API.md)",
			  command);
		return;
	}
	/* `kvmbox ctl UP_SOCKET snapshot NAME` sends NAME as a path made absolute (the single VM's
	 * snapshot PATH): its last component is the name. */
	if (!strcmp(command, "snapshot") && !json_object_object_get_ex(args, "name", NULL) &&
	    json_object_object_get_ex(args, "path", &name) && json_object_is_type(name, json_type_string) &&
	    strrchr(json_object_get_string(name), '/')) {
		vm_name = strrchr(json_object_get_string(name), '/') + 1;
		len = strlen(vm_name);
	} else if (json_object_object_get_ex(args, "name", &name) &&
		   json_object_is_type(name, json_type_string)) {
		vm_name = json_object_get_string(name);
		len = (size_t)json_object_get_string_len(name); /* a \u0000 inside is not a name */
	} else {
		api_error(req, "InvalidArgument", "%s needs {\"name\": NAME}", command);
		return;
	}
	if (!up_name_valid(vm_name, len)) {
		api_error(req, "InvalidArgument",
			  "'%.40s%s' is not a VM name (1 to %d letters, digits, '_', '.' or '-'); kvmbox ctl "
			  "SOCKET list names them",
			  vm_name, strlen(vm_name) > 40 ? "..." : "", UP_NAME_MAX);
		return;
	}
	for (unsigned i = 0; i < u->uc.nr_vms; i++)
		if (!strcmp(u->vms[i].vm->name, vm_name))
			s = &u->vms[i];
	if (!s) {
		api_error(req, "InvalidArgument", "no VM called '%s' (kvmbox ctl SOCKET list)", vm_name);
		return;
	}
	if (!strcmp(command, "vm")) {
		forward(u, s, req, args);
		return;
	}
	if (!strcmp(command, "console")) {
		console_start(u, s, req, args);
		return;
	}
	if (!strcmp(command, "snapshot")) {
		if (s->state != VM_RUNNING)
			api_error(req, "NotRunning", "vm %s is %s", s->vm->name, state_names[s->state]);
		else
			snapshot_start(u, s, req);
		return;
	}
	if (u->stopping) {
		api_error(req, "InvalidState", "kvmbox up is shutting every VM down");
		return;
	}
	if (!strcmp(command, "start")) {
		if (alive(s) || s->state == VM_BACKOFF) {
			api_error(req, "InvalidState", "vm %s is %s already", s->vm->name,
				  state_names[s->state]);
			return;
		}
		s->streak = 0;
		spawn(u, s, false);
	} else if (!strcmp(command, "stop")) {
		s->again = false;
		stop_vm(u, s);
	} else if (alive(s)) { /* restart */
		s->again = true;
		if (s->state != VM_STOPPING)
			stop_vm(u, s);
	} else {
		s->streak = 0;
		spawn(u, s, false);
	}
	api_reply(req, vm_json(s));
}

/* ---- start-up ------------------------------------------------------------------------ */

static void up_help(void)
{
	printf("usage: kvmbox up [--api SOCKET] FILE\n"
	       "\n"
	       "Run every VM of FILE ([vm NAME] sections, [defaults]; see kvmbox(1)) as its own\n"
	       "kvmbox run process, in the order their after keys give, restart them as their\n"
	       "restart keys say, and shut them all down (ACPI) on SIGTERM or SIGINT.\n"
	       "\n"
	       "      --api SOCKET  control socket for the set: kvmbox ctl SOCKET list|start|stop|\n"
	       "                    restart|snapshot NAME|vm NAME COMMAND|console NAME\n"
	       "  -h, --help        this text\n"
	       "\n"
	       "Exit status: 0 every VM stopped cleanly, 1 a VM did not (or the set could not\n"
	       "start), 2 usage or configuration error, 128+N a second signal N.\n");
}

/* What the VMs' devices name on this host (a disk image's path...), before any VM starts: a
 * problem is FILE:LINE and the device's own message, as kvmbox run would print it. 0 or -1. */
static int check_paths(const struct up_config *uc)
{
	char context[512];

	for (unsigned v = 0; v < uc->nr_vms; v++) {
		const struct up_vm *vm = &uc->vms[v];

		for (unsigned i = 0; i < vm->cfg.nr_devs; i++) {
			const struct dev_config *d = &vm->cfg.devs[i];
			int bad;

			if (!d->type->check)
				continue;
			snprintf(context, sizeof(context), "%s:%u: ", uc->path, vm->dev_line[i]);
			log_set_context(context);
			bad = d->type->check(d->cfg) < 0;
			log_set_context(NULL);
			if (bad)
				return -1;
		}
	}
	return 0;
}

/* The state directory: created 0700, ours, locked against a second `up` on it. 0 or -1. */
static int state_dir(struct up *u)
{
	const char *dir = u->uc.state_dir;
	char lock[sizeof(u->uc.state_dir_buf) + 16];
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("up: state-dir %s: %s; create its parent directory or give another state-dir", dir,
			  strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		log_error("up: state-dir %s: not a directory of ours; give another state-dir", dir);
		return -1;
	}
	if ((st.st_mode & 077) && chmod(dir, 0700) < 0) {
		log_error("up: state-dir %s: chmod 700: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(lock, sizeof(lock), "%s/up.lock", dir);
	u->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (u->lock_fd < 0 || flock(u->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("up: state-dir %s: %s; another kvmbox up uses it: give each set its own state-dir",
			  dir, u->lock_fd < 0 ? strerror(errno) : "locked");
		return -1;
	}
	return 0;
}

int cmd_up(int argc, char **argv)
{
	struct up *u;
	const char *api = NULL, *file = NULL;
	sigset_t set, pipe_set;
	int ret = EXIT_START_FAIL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			up_help();
			return 0;
		} else if (!strcmp(argv[i], "--api") && i + 1 < argc) {
			api = argv[++i];
		} else if (!strncmp(argv[i], "--api=", 6)) {
			api = argv[i] + 6;
		} else if (argv[i][0] == '-' || file) {
			log_error("up: unexpected argument '%s'; usage: kvmbox up [--api SOCKET] FILE",
				  argv[i]);
			return EXIT_USAGE;
		} else {
			file = argv[i];
		}
	}
	if (!file) {
		log_error("up: no FILE; usage: kvmbox up [--api SOCKET] FILE");
		return EXIT_USAGE;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		log_error("up: out of memory");
		return EXIT_START_FAIL;
	}
	u->sfd = u->tfd = u->lock_fd = -1;
	u->notify_fd = notify_open();
	unsetenv("NOTIFY_SOCKET"); /* ours alone: the VMs' processes do not speak to systemd */
	u->argv0 = program_invocation_name;
	if (up_config_load(&u->uc, file)) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (check_paths(&u->uc) < 0 || state_dir(u) < 0)
		goto out;
	for (unsigned i = 0; i < u->uc.nr_vms; i++) {
		struct sup_vm *s = &u->vms[i];
		char sock[sizeof(s->sock)]; /* not straight into s->sock: GCC's -Wrestrict sees *u twice */

		s->vm = &u->uc.vms[i];
		s->in_fd = -1;
		pthread_mutex_init(&s->snap_lock, NULL);
		s->pending = true;
		s->status = -1;
		snprintf(sock, sizeof(sock), "%s/%s.sock", u->uc.state_dir, s->vm->name);
		memcpy(s->sock, sock, sizeof(sock));
		if (api && !strcmp(api, sock)) {
			log_error("up: --api %s is vm %s's own control socket; give another path", api,
				  s->vm->name);
			ret = EXIT_USAGE;
			goto out;
		}
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* A console client's input written to the pipe of a VM that just ended is EPIPE, not the
	 * end of up (the VMs' processes get an empty mask before exec). */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	u->loop = loop_create();
	u->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	u->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (!u->loop || u->sfd < 0 || u->tfd < 0 || loop_add(u->loop, u->sfd, EPOLLIN, on_signal, u) < 0 ||
	    loop_add(u->loop, u->tfd, EPOLLIN, on_timer, u) < 0) {
		log_error("up: signalfd, timerfd or epoll: %s; raise the open file limit", strerror(errno));
		goto out;
	}
	if (api && !(u->api = api_server_create(api, u->loop, up_handle, u)))
		goto out;
	tick(u); /* the first VMs */
	if (loop_run(u->loop) < 0)
		u->result = EXIT_START_FAIL;
	ret = u->result;
out:
	/* The forwarding threads use u->vms: wait for them (every VM's process has ended by now,
	 * so their requests end at once). */
	while (atomic_load(&u->in_flight))
		usleep(10000);
	/* Consoles still attached (up ends with VMs it could not stop: a second signal): the
	 * clients get one line; a console not handed over yet ends in api_server_destroy. */
	for (unsigned i = 0; i < u->uc.nr_vms; i++) {
		struct sup_vm *s = &u->vms[i];

		if (!s->vm)
			continue; /* not set up: in_fd is not ours */
		if (s->con) {
			up_console_stop(s->con, "kvmbox: up: exiting; console detached");
			s->con = NULL;
		}
		if (s->in_fd >= 0)
			close(s->in_fd);
	}
	api_server_destroy(u->api);
	if (u->loop)
		loop_destroy(u->loop);
	if (u->sfd >= 0)
		close(u->sfd);
	if (u->tfd >= 0)
		close(u->tfd);
	if (u->lock_fd >= 0)
		close(u->lock_fd);
	if (u->notify_fd >= 0)
		close(u->notify_fd);
	for (unsigned i = 0; i < u->uc.nr_vms; i++)
		if (u->vms[i].vm)
			pthread_mutex_destroy(&u->vms[i].snap_lock);
	up_config_free(&u->uc);
	free(u);
	return ret;
}
