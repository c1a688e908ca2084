/* control.c - what the VM does for each control socket command. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../api/api.h"
#include "../core/log.h"
#include "../core/machine.h"
#include "../core/sandbox.h"
#include "../core/util.h"
#include "../virtio/balloon.h"
#include "options.h"
#include "run.h"

#define SHUTDOWN_DEFAULT_TIMEOUT 30

static const char *state_name(struct machine *m)
{
	switch (machine_state(m)) {
	case MACHINE_RESTARTING:
		return "restarting";
	case MACHINE_PAUSED:
		return "paused";
	default:
		return "running";
	}
}

static void cmd_info(struct machine *m, struct api_req *req)
{
	struct json_object *o = json_object_new_object(), *devs = json_object_new_array();
	const struct vm_config *cfg = machine_config(m);
	struct vm *vm = machine_vm(m);
	struct virtio_dev *balloon = vm ? vm_find_model(vm, &virtio_balloon_type) : NULL;
	struct json_object *sbo = json_object_new_object();
	struct sandbox_info sb;

	json_object_object_add(o, "state", json_object_new_string(state_name(m)));
	json_object_object_add(o, "vcpus", json_object_new_int((int)cfg->cpus));
	json_object_object_add(o, "memory", json_object_new_int64((int64_t)cfg->memory));
	sandbox_get_info(&sb);
	/* The pid the host knows (inside --jail's PID namespace kvmbox is 1). */
	json_object_object_add(o, "pid", json_object_new_int64(sb.host_pid));
	json_object_object_add(sbo, "seccomp", json_object_new_string(sb.seccomp));
	json_object_object_add(sbo, "uid", json_object_new_int64((int64_t)sb.uid));
	json_object_object_add(sbo, "gid", json_object_new_int64((int64_t)sb.gid));
	json_object_object_add(sbo, "jail", sb.jail ? json_object_new_string(sb.jail) : NULL);
	json_object_object_add(sbo, "cgroup", sb.cgroup ? json_object_new_string(sb.cgroup) : NULL);
	json_object_object_add(sbo, "no_new_privs", json_object_new_boolean(sb.no_new_privs));
	json_object_object_add(o, "sandbox", sbo);
	for (struct device *d = vm ? vm->devices : NULL; d; d = d->next) {
		struct json_object *dj = json_object_new_object();

		json_object_object_add(dj, "name", json_object_new_string(d->name));
		json_object_object_add(dj, "type", json_object_new_string(d->ops->type));
		json_object_array_add(devs, dj);
	}
	json_object_object_add(o, "devices", devs);
	if (balloon) {
		struct balloon_info bi;
		struct json_object *b = json_object_new_object(), *st = json_object_new_object();
		static const char *const names[] = {
			"swap_in",          "swap_out",    "major_faults",
			"minor_faults",     "free_memory", "total_memory",
			"available_memory", "disk_caches", "hugetlb_allocations",
			"hugetlb_failures",
		};

		virtio_balloon_info(balloon, &bi);
		json_object_object_add(
			b, "target",
			json_object_new_int64((int64_t)(cfg->memory - bi.target_pages * PAGE_SIZE)));
		json_object_object_add(
			b, "actual",
			json_object_new_int64((int64_t)(cfg->memory - bi.actual_pages * PAGE_SIZE)));
		json_object_object_add(b, "balloon_pages", json_object_new_int64((int64_t)bi.actual_pages));
		if (bi.stats_valid) {
			for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
				json_object_object_add(st, names[i],
						       json_object_new_int64((int64_t)bi.stats[i]));
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

static void cmd_snapshot(struct machine *m, struct api_req *req, struct json_object *args, bool hibernate)
{
	const char *path = arg_string(args, "path");
	struct snap_result res;
	char err[512];
	struct json_object *o;

	if (!path || path[0] != '/') {
		api_error(req, "InvalidArgument",
			  "%s needs {\"path\": ABSOLUTE_FILE} (the VM's working "
			  "directory is not yours)",
			  hibernate ? "hibernate" : "snapshot");
		return;
	}
	if (machine_snapshot(m, path, hibernate, &res, err, sizeof(err)) < 0) {
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
}

static void cmd_shutdown(struct machine *m, struct api_req *req, struct json_object *args)
{
	struct json_object *v;
	int timeout = SHUTDOWN_DEFAULT_TIMEOUT;
	char err[256];

	if (json_object_object_get_ex(args, "timeout", &v)) {
		timeout = json_object_is_type(v, json_type_string) ? atoi(json_object_get_string(v))
								   : json_object_get_int(v);
		if (timeout <= 0 || timeout > 86400) {
			api_error(req, "InvalidArgument", "shutdown timeout must be 1..86400 seconds");
			return;
		}
	}
	if (machine_shutdown(m, timeout, err, sizeof(err)) < 0) {
		api_error(req, "GenericError", "%s", err);
		return;
	}
	v = json_object_new_object();
	json_object_object_add(v, "timeout", json_object_new_int(timeout));
	api_reply(req, v);
}

static void cmd_balloon(struct machine *m, struct api_req *req, struct json_object *args)
{
	struct vm *vm = machine_vm(m);
	struct virtio_dev *balloon = vm ? vm_find_model(vm, &virtio_balloon_type) : NULL;
	uint64_t size;

	if (!balloon) {
		api_error(req, "DeviceNotFound", "this VM has no balloon; start it with --balloon");
		return;
	}
	if (arg_size(args, "size", &size) < 0) {
		api_error(req, "InvalidArgument", "balloon needs {\"size\": BYTES or \"128M\"}");
		return;
	}
	if (virtio_balloon_set_target(balloon, size) < 0) {
		api_error(req, "InvalidArgument", "balloon size %llu is outside 1..%llu bytes",
			  (unsigned long long)size, (unsigned long long)machine_config(m)->memory);
		return;
	}
	api_reply(req, NULL);
}

/* The migration thread's end: the reply to the request that started it. */
static void migration_done(void *ctx, const struct migration_result *r)
{
	struct api_req *req = ctx;
	struct json_object *o;

	if (!r->ok) {
		api_error(req, "MigrationFailed", "%s", r->error);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "rounds", json_object_new_int((int)r->rounds));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)r->bytes));
	json_object_object_add(o, "pages", json_object_new_int64((int64_t)r->pages));
	json_object_object_add(o, "disk_bytes", json_object_new_int64((int64_t)r->disk_bytes));
	json_object_object_add(o, "total_ms", api_json_ms(r->total_ms));
	json_object_object_add(o, "downtime_ms", api_json_ms(r->downtime_ms));
	api_reply(req, o);
}

static void cmd_migrate(struct machine *m, struct api_req *req, struct json_object *args)
{
	const char *uri = arg_string(args, "uri");
	const char *disks = arg_string(args, "disks");
	char err[768];

	if (!uri) {
		api_error(req, "InvalidArgument",
			  "migrate needs {\"uri\": \"tcp:IP:PORT\" or \"unix:PATH\"}");
		return;
	}
	if (json_object_object_get_ex(args, "disks", NULL) && (!disks || strcmp(disks, "copy"))) {
		api_error(req, "InvalidArgument",
			  "migrate: disks must be \"copy\" (stream the disk images too), or left out");
		return;
	}
	switch (machine_migrate(m, uri, disks != NULL, migration_done, req, err, sizeof(err))) {
	case 0:
		break;
	case MACHINE_BAD_ARGUMENT:
		api_error(req, "InvalidArgument", "%s", err);
		break;
	case MACHINE_BAD_STATE:
		api_error(req, "InvalidState", "%s", err);
		break;
	default:
		api_error(req, "GenericError", "%s", err);
		break;
	}
}

/* Arguments each command takes; anything else is refused. */
static const struct {
	const char *command;
	const char *required;
	const char *optional;
} commands[] = {
	{ "info", NULL, NULL },       { "pause", NULL, NULL },         { "resume", NULL, NULL },
	{ "snapshot", "path", NULL }, { "hibernate", "path", NULL },   { "migrate", "uri", "disks" },
	{ "balloon", "size", NULL },  { "shutdown", NULL, "timeout" },
};

/* 0 when args fit the command, else -1 after an error reply. */
static int check_args(struct api_req *req, const char *command, struct json_object *args)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].command, command))
			continue;
		json_object_object_foreach(args, key, val)
		{
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
	struct machine *m = ctx;

	if (check_args(req, command, args) < 0)
		return;

	if (!strcmp(command, "info")) {
		cmd_info(m, req);
		return;
	}
	if (machine_state(m) == MACHINE_RESTARTING) {
		api_error(req, "NotRunning", "the VM is restarting; try again");
		return;
	}
	if (machine_migrating(m) && strcmp(command, "balloon")) {
		api_error(req, "InvalidState", "a migration is in progress; wait for it to finish");
		return;
	}
	if (!strcmp(command, "pause")) {
		machine_user_pause(m);
		api_reply(req, NULL);
	} else if (!strcmp(command, "resume")) {
		machine_user_resume(m);
		api_reply(req, NULL);
	} else if (!strcmp(command, "snapshot")) {
		cmd_snapshot(m, req, args, false);
	} else if (!strcmp(command, "hibernate")) {
		cmd_snapshot(m, req, args, true);
	} else if (!strcmp(command, "shutdown")) {
		cmd_shutdown(m, req, args);
	} else if (!strcmp(command, "balloon")) {
		cmd_balloon(m, req, args);
	} else if (!strcmp(command, "migrate")) {
		cmd_migrate(m, req, args);
	} else {
		api_error(req, "CommandNotFound", "unknown command '%s'; see docs/API.md", command);
	}
}
