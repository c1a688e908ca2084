/* control.c - what the VM does for each control socket command. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../api/api.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "migrate.h"
#include "../core/snapshot.h"
#include "../core/vm.h"
#include "../devices/acpi_pm.h"
#include "../virtio/balloon.h"
#include "options.h"
#include "run.h"

#define SHUTDOWN_DEFAULT_TIMEOUT 30

static const char *state_name(const struct run_state *rs)
{
	if (!rs->vm)
		return "restarting";
	return rs->user_paused ? "paused" : "running";
}

static void cmd_info(struct run_state *rs, struct api_req *req)
{
	struct json_object *o = json_object_new_object(), *devs = json_object_new_array();
	struct vm *vm = rs->vm;

	json_object_object_add(o, "state", json_object_new_string(state_name(rs)));
	json_object_object_add(o, "vcpus", json_object_new_int((int)rs->cfg->cpus));
	json_object_object_add(o, "memory", json_object_new_int64((int64_t)rs->cfg->memory));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	for (struct device *d = vm ? vm->devices : NULL; d; d = d->next) {
		struct json_object *dj = json_object_new_object();

		json_object_object_add(dj, "name", json_object_new_string(d->name));
		json_object_object_add(dj, "type", json_object_new_string(d->ops->type));
		json_object_array_add(devs, dj);
	}
	json_object_object_add(o, "devices", devs);
	if (rs->balloon) {
		struct balloon_info bi;
		struct json_object *b = json_object_new_object(), *st = json_object_new_object();
		static const char *const names[] = {
			"swap_in", "swap_out", "major_faults", "minor_faults", "free_memory", "total_memory",
			"available_memory", "disk_caches", "hugetlb_allocations", "hugetlb_failures",
		};

		virtio_balloon_info(rs->balloon, &bi);
		json_object_object_add(b, "target", json_object_new_int64((int64_t)(rs->cfg->memory -
										  bi.target_pages * 4096)));
		json_object_object_add(b, "actual", json_object_new_int64((int64_t)(rs->cfg->memory -
										  bi.actual_pages * 4096)));
		json_object_object_add(b, "balloon_pages", json_object_new_int64((int64_t)bi.actual_pages));
		if (bi.stats_valid) {
			for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				json_object_object_add(st, names[i], json_object_new_int64((int64_t)bi.stats[i]));
			json_object_object_add(st, "age_ms", json_object_new_int64((int64_t)bi.stats_age_ms));
		}
		json_object_object_add(b, "stats", st);
		json_object_object_add(o, "balloon", b);
	}
	api_reply(req, o);
}

static const char *arg_string(struct json_object *args, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A size: a JSON integer (bytes) or a string like "128M". */
static int arg_size(struct json_object *args, const char *key, uint64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(args, key, &v))
		return -1;
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);

		if (n <= 0)
			return -1;
		*out = (uint64_t)n;
		return 0;
	}
	if (json_object_is_type(v, json_type_string))
		return parse_size(json_object_get_string(v), out);
	return -1;
}

static void cmd_snapshot(struct run_state *rs, struct api_req *req, struct json_object *args, bool hibernate)
{
	const char *path = arg_string(args, "path");
	struct snap_result res;
	char err[512];
	struct json_object *o;

	if (!path || path[0] != '/') {
		api_error(req, "InvalidArgument", "%s needs {\"path\": ABSOLUTE_FILE} (the VM's working "
			  "directory is not yours)", hibernate ? "hibernate" : "snapshot");
		return;
	}
	/* A VM paused by the user is written as it is and stays paused. */
	if (snapshot_write(rs->vm, path, !hibernate, &res, err, sizeof(err)) < 0) {
		api_error(req, "GenericError", "%s", err);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "ram_bytes", json_object_new_int64((int64_t)res.ram_bytes));
	json_object_object_add(o, "file_bytes", json_object_new_int64((int64_t)res.file_bytes));
	json_object_object_add(o, "pause_ms", api_json_ms(res.pause_ms));
	json_object_object_add(o, "total_ms", api_json_ms(res.total_ms));
	api_reply(req, o);
	if (hibernate) {
		rs->hibernated = true;
		vm_request_stop(rs->vm, VM_SIGNAL);
	}
}

static void on_shutdown_deadline(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct run_state *rs = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
	loop_del(l, fd);
	close(fd);
	rs->shutdown_tfd = -1;
	if (rs->vm) {
		log_warn("the guest did not power off within the shutdown timeout; stopping it");
		vm_request_stop(rs->vm, VM_POWEROFF);
	}
}

static void cmd_shutdown(struct run_state *rs, struct api_req *req, struct json_object *args)
{
	struct json_object *v;
	int timeout = SHUTDOWN_DEFAULT_TIMEOUT;
	struct itimerspec its = { 0 };

	if (json_object_object_get_ex(args, "timeout", &v)) {
		timeout = json_object_is_type(v, json_type_string) ? atoi(json_object_get_string(v))
								    : json_object_get_int(v);
		if (timeout <= 0 || timeout > 86400) {
			api_error(req, "InvalidArgument", "shutdown timeout must be 1..86400 seconds");
			return;
		}
	}
	if (rs->user_paused) {
		vm_resume(rs->vm); /* a paused guest cannot answer the power button */
		rs->user_paused = false;
	}
	acpi_pm_power_button(rs->vm->power_dev);
	if (rs->shutdown_tfd < 0) {
		rs->shutdown_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (rs->shutdown_tfd < 0 ||
		    loop_add(rs->loop, rs->shutdown_tfd, EPOLLIN, on_shutdown_deadline, rs) < 0) {
			api_error(req, "GenericError", "cannot arm the shutdown timer: %s", strerror(errno));
			return;
		}
	}
	its.it_value.tv_sec = timeout;
	timerfd_settime(rs->shutdown_tfd, 0, &its, NULL);
	v = json_object_new_object();
	json_object_object_add(v, "timeout", json_object_new_int(timeout));
	api_reply(req, v);
}

static void cmd_balloon(struct run_state *rs, struct api_req *req, struct json_object *args)
{
	uint64_t size;

	if (!rs->balloon) {
		api_error(req, "DeviceNotFound", "this VM has no balloon; start it with --balloon");
		return;
	}
	if (arg_size(args, "size", &size) < 0) {
		api_error(req, "InvalidArgument", "balloon needs {\"size\": BYTES or \"128M\"}");
		return;
	}
	if (virtio_balloon_set_target(rs->balloon, size) < 0) {
		api_error(req, "InvalidArgument", "balloon size %llu is outside 1..%llu bytes",
			  (unsigned long long)size, (unsigned long long)rs->cfg->memory);
		return;
	}
	api_reply(req, NULL);
}

/* Arguments each command takes; anything else is refused. */
static const struct {
	const char *command;
	const char *required;
	const char *optional;
} commands[] = {
	{ "info", NULL, NULL },        { "pause", NULL, NULL },   { "resume", NULL, NULL },
	{ "snapshot", "path", NULL },  { "hibernate", "path", NULL },
	{ "migrate", "uri", NULL },    { "balloon", "size", NULL }, { "shutdown", NULL, "timeout" },
};

/* 0 when args fit the command, else -1 after an error reply. */
static int check_args(struct api_req *req, const char *command, struct json_object *args)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].command, command))
			continue;
		json_object_object_foreach(args, key, val) {
			(void)val;
			if ((!commands[i].required || strcmp(key, commands[i].required)) &&
			    (!commands[i].optional || strcmp(key, commands[i].optional))) {
				api_error(req, "InvalidArgument", "%s: unknown argument '%s'", command, key);
				return -1;
			}
		}
		if (commands[i].required && !json_object_object_get_ex(args, commands[i].required, NULL)) {
			api_error(req, "InvalidArgument", "%s: needs the argument '%s'", command,
				  commands[i].required);
			return -1;
		}
		return 0;
	}
	api_error(req, "CommandNotFound", "unknown command '%s'; see docs/API.md", command);
	return -1;
}

void control_handle(void *ctx, struct api_req *req, const char *command, struct json_object *args)
{
	struct run_state *rs = ctx;

	if (check_args(req, command, args) < 0)
		return;

	if (!strcmp(command, "info")) {
		cmd_info(rs, req);
		return;
	}
	if (!rs->vm) {
		api_error(req, "NotRunning", "the VM is restarting; try again");
		return;
	}
	if (atomic_load(&rs->migrating) && strcmp(command, "balloon")) {
		api_error(req, "InvalidState", "a migration is in progress; wait for it to finish");
		return;
	}
	if (!strcmp(command, "pause")) {
		if (!rs->user_paused) {
			vm_pause(rs->vm);
			rs->user_paused = true;
		}
		api_reply(req, NULL);
	} else if (!strcmp(command, "resume")) {
		if (rs->user_paused) {
			vm_resume(rs->vm);
			rs->user_paused = false;
		}
		api_reply(req, NULL);
	} else if (!strcmp(command, "snapshot")) {
		cmd_snapshot(rs, req, args, false);
	} else if (!strcmp(command, "hibernate")) {
		cmd_snapshot(rs, req, args, true);
	} else if (!strcmp(command, "shutdown")) {
		cmd_shutdown(rs, req, args);
	} else if (!strcmp(command, "balloon")) {
		cmd_balloon(rs, req, args);
	} else if (!strcmp(command, "migrate")) {
		migrate_start(rs, req, args);
	} else {
		api_error(req, "CommandNotFound", "unknown command '%s'; see docs/API.md", command);
	}
}
