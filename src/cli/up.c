/* up.c - `kvmbox up [--api PATH] FILE`: the supervisor (up.h).
 *
 * One thread and one event loop (core/loop.c): a signalfd (SIGCHLD, the termination signals),
 * a timerfd that ticks while something is under way (a VM starting, waiting out its back-off,
 * shutting down) and the set's control socket. Each VM is its own `kvmbox run` process, the
 * binary re-executed through /proc/self/exe with the VM's run options as arguments and
 * --api STATE_DIR/NAME.sock; a VM is "running" once that socket answers. Its stdout (the
 * serial or virtio console) goes to its console log, its stderr is ours. The child is in a
 * process group of its own (a terminal's Ctrl-C reaches only us: we shut the VMs down in
 * order) and gets SIGTERM should we die (PR_SET_PDEATHSIG). */
#include "up.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
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
	atomic_bool forwarding; /* a `vm NAME ...` request is on its way (one at a time) */
};

struct up {
	struct up_config uc;
	struct sup_vm vms[UP_MAX_VMS];
	struct loop *loop;
	struct api_server *api;
	const char *argv0;
	int sfd, tfd, notify_fd, lock_fd;
	bool ticking, ready, stopping;
	int result; /* the exit status */
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

/* Start VM s's process. */
static void spawn(struct up *u, struct sup_vm *s)
{
	const char *argv[UP_MAX_ARGS + 5];
	char api[sizeof(s->sock) + 8];
	unsigned n = 0;
	int log_fd, null_fd;
	pid_t parent = getpid(), pid;

	s->pending = false;
	log_fd = open(s->vm->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
	if (log_fd < 0) {
		vm_failed(s, "console-log %s: %s; give a writable path", s->vm->console_log, strerror(errno));
		return;
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	snprintf(api, sizeof(api), "--api=%s", s->sock);
	argv[n++] = u->argv0;
	argv[n++] = "run";
	for (unsigned i = 0; i < s->vm->argc; i++)
		argv[n++] = s->vm->argv[i];
	argv[n++] = api;
	argv[n] = NULL;
	pid = null_fd < 0 ? -1 : fork();
	if (pid == 0) {
		sigset_t none;

		/* The child: only async-signal-safe calls until exec. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(128 + SIGTERM);
		dup2(null_fd, 0);
		dup2(log_fd, 1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	if (pid < 0) {
		vm_failed(s, "cannot start its process: %s", strerror(errno));
		return;
	}
	s->pid = pid;
	s->state = VM_STARTING;
	s->started_ns = now_ns();
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
	if (u->stopping) {
		if (!clean && !u->result)
			u->result = 1;
		return;
	}
	if (was == VM_STOPPING) { /* the stop or restart command */
		if (s->again) {
			s->again = false;
			s->streak = 0;
			spawn(u, s);
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
	s->due_ns = now_ns() + (uint64_t)up_backoff_ms(s->streak) * 1000000ULL;
	fprintf(stderr, "kvmbox up: vm %s: restart %u in %u ms\n", s->vm->name, s->streak,
		up_backoff_ms(s->streak));
	arm_timer(u);
}

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
				spawn(u, s);
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
			spawn(u, s);
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
	struct sup_vm *s;
	struct api_req *req;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char name[UP_NAME_MAX + 1];
	char *line;
};

/* `vm NAME COMMAND`: the VM's own reply, from a thread of its own (a snapshot may take a while;
 * api_reply is thread-safe). */
static void *forward_thread(void *opaque)
{
	struct forward *f = opaque;
	struct json_object *r = NULL, *v, *cls, *desc;
	char err[512], *reply = NULL;

	if (api_call(f->sock, f->line, UP_FORWARD_TIMEOUT_S, &reply, err, sizeof(err))) {
		api_error(f->req, "NotRunning", "vm %s: %s", f->name, err);
	} else if (!(r = json_tokener_parse(reply)) || !json_object_is_type(r, json_type_object)) {
		api_error(f->req, "GenericError", "vm %s: the reply is not a JSON object", f->name);
	} else if (json_object_object_get_ex(r, "return", &v)) {
		api_reply(f->req, json_object_get(v));
	} else if (json_object_object_get_ex(r, "error", &v) && json_object_object_get_ex(v, "class", &cls) &&
		   json_object_object_get_ex(v, "desc", &desc)) {
		api_error(f->req, json_object_get_string(cls), "%s", json_object_get_string(desc));
	} else {
		api_error(f->req, "GenericError", "vm %s: a reply without \"return\" or \"error\"", f->name);
	}
	json_object_put(r);
	free(reply);
	free(f->line);
	atomic_store(&f->s->forwarding, false);
	free(f);
	return NULL;
}

static void forward(struct sup_vm *s, struct api_req *req, struct json_object *args)
{
	struct json_object *cmd, *inner, *request;
	struct forward *f;
	pthread_attr_t attr;
	pthread_t t;

	if (!json_object_object_get_ex(args, "command", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		api_error(req, "InvalidArgument", "vm needs {\"name\": NAME, \"command\": COMMAND}");
		return;
	}
	if (s->state != VM_RUNNING) {
		api_error(req, "NotRunning", "vm %s is %s", s->vm->name, state_names[s->state]);
		return;
	}
	/* One request at a time per VM: a client cannot pile up threads behind a VM that does
	 * not answer. */
	if (atomic_exchange(&s->forwarding, true)) {
		api_error(req, "Busy",
			  "vm %s: a request to it is still waiting for its reply; try again later",
			  s->vm->name);
		return;
	}
	f = calloc(1, sizeof(*f));
	request = json_object_new_object();
	if (!f || !request) {
		free(f);
		json_object_put(request);
		atomic_store(&s->forwarding, false);
		api_error(req, "GenericError", "out of memory");
		return;
	}
	f->s = s;
	json_object_object_add(request, "id", json_object_new_int(1));
	json_object_object_add(request, "command", json_object_get(cmd));
	if (json_object_object_get_ex(args, "arguments", &inner))
		json_object_object_add(request, "arguments", json_object_get(inner));
	f->req = req;
	memcpy(f->sock, s->sock, sizeof(f->sock));
	memcpy(f->name, s->vm->name, sizeof(f->name));
	if (asprintf(&f->line, "%s\n",
		     json_object_to_json_string_ext(request, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		f->line = NULL;
	json_object_put(request);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!f->line || pthread_create(&t, &attr, forward_thread, f)) {
		free(f->line);
		free(f);
		atomic_store(&s->forwarding, false);
		api_error(req, "GenericError", "vm %s: cannot forward the request (out of resources)",
			  s->vm->name);
	}
	pthread_attr_destroy(&attr);
}

static struct json_object *vm_json(const struct sup_vm *s)
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
	return o;
}

static void up_handle(void *ctx, struct api_req *req, const char *command, struct json_object *args)
{
	struct up *u = ctx;
	struct json_object *name;
	struct sup_vm *s = NULL;

	if (!strcmp(command, "list")) {
		struct json_object *list = json_object_new_array(), *o = json_object_new_object();

		for (unsigned k = 0; k < u->uc.nr_vms; k++)
			json_object_array_add(list, vm_json(&u->vms[u->uc.order[k]]));
		json_object_object_add(o, "vms", list);
		api_reply(req, o);
		return;
	}
	if (strcmp(command, "start") && strcmp(command, "stop") && strcmp(command, "restart") &&
	    strcmp(command, "vm")) {
		api_error(
			req, "CommandNotFound",
			"unknown command '%s'; kvmbox up takes list, start, stop, restart and vm (docs/API.md)",
			command);
		return;
	}
	if (!json_object_object_get_ex(args, "name", &name) || !json_object_is_type(name, json_type_string)) {
		api_error(req, "InvalidArgument", "%s needs {\"name\": NAME}", command);
		return;
	}
	for (unsigned i = 0; i < u->uc.nr_vms; i++)
		if (!strcmp(u->vms[i].vm->name, json_object_get_string(name)))
			s = &u->vms[i];
	if (!s) {
		api_error(req, "InvalidArgument", "no VM called '%s' (kvmbox ctl SOCKET list)",
			  json_object_get_string(name));
		return;
	}
	if (!strcmp(command, "vm")) {
		forward(s, req, args);
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
		spawn(u, s);
	} else if (!strcmp(command, "stop")) {
		s->again = false;
		stop_vm(u, s);
	} else if (alive(s)) { /* restart */
		s->again = true;
		if (s->state != VM_STOPPING)
			stop_vm(u, s);
	} else {
		s->streak = 0;
		spawn(u, s);
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
	       "                    restart NAME|vm NAME COMMAND\n"
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
	sigset_t set;
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
	up_config_free(&u->uc);
	free(u);
	return ret;
}
