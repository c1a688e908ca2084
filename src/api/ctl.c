/* ctl.c - `kvmbox ctl`: send one request to a VM's control socket and print
 * the reply (see docs/API.md). */
#include "api.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../cli/options.h"
#include "../core/log.h"
#include "../core/util.h"

/* A reply larger than this is not from kvmbox. */
#define CTL_MAX_REPLY (64 * 1024 * 1024)

static void ctl_help(void)
{
	printf("usage: kvmbox ctl [--timeout SECONDS] SOCKET COMMAND [ARG...]\n"
	       "       kvmbox ctl [--timeout SECONDS] SOCKET --json REQUEST\n"
	       "\n"
	       "Send one command to a VM started with `kvmbox run --api SOCKET`, print the\n"
	       "reply (JSON) on stdout.\n"
	       "\n"
	       "commands:\n"
	       "  info                  state of the VM\n"
	       "  pause | resume        stop / restart the vCPUs\n"
	       "  shutdown [timeout=S]  power the guest off (optionally forced after S seconds)\n"
	       "  snapshot PATH         save the VM state to PATH (relative to this directory)\n"
	       "  hibernate PATH        save the VM state to PATH and stop the VM\n"
	       "  migrate URI [disks=copy]  send the VM to URI (disks=copy: its disk images too)\n"
	       "  balloon SIZE          set the balloon target, e.g. 512M (a plain number is MiB)\n"
	       "  NAME [KEY=VALUE...]   any other command, with string arguments\n"
	       "\n"
	       "commands of `kvmbox up --api SOCKET` (the whole set of VMs):\n"
	       "  list                  each VM: name, state, pid, restarts, uptime, last snapshot\n"
	       "  start|stop|restart VM start, shut down (ACPI), or both, the VM called VM\n"
	       "  snapshot VM           a snapshot of VM now, into its SNAPSHOT_DIR/VM.snap\n"
	       "  vm VM COMMAND [ARG...] any command above, sent to that VM's own socket\n"
	       "  console VM            this terminal on VM's console: the last lines of its log,\n"
	       "                        then live; what you type goes to the guest. Ctrl-A x\n"
	       "                        detaches (Ctrl-A Ctrl-A sends Ctrl-A); one client per VM.\n"
	       "                        Ends with a line when the VM's process exits (status 1)\n"
	       "\n"
	       "options:\n"
	       "  --json REQUEST        send REQUEST, a JSON object, as is (\"id\": 1 is added if absent)\n"
	       "  --timeout SECONDS     give up if no reply comes in time (default: wait forever)\n"
	       "  -h, --help            this text\n"
	       "\n"
	       "exit status: 0 the VM answered with a result, 1 the VM answered with an error or\n"
	       "could not be reached, 2 usage error; console: 0 detached (Ctrl-A x, or the end of\n"
	       "stdin), 1 not attached or ended by up (the VM stopped), 128+N signal N.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("ctl: %s; see kvmbox ctl --help", msg);
	fprintf(stderr, "usage: kvmbox ctl [--timeout SECONDS] SOCKET COMMAND [ARG...]\n");
	return EXIT_USAGE;
}

/* PATH made absolute against our cwd: the VM's cwd may differ. NULL on error. */
static char *absolute_path(const char *path)
{
	char *cwd, *abs = NULL;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

/* Build the arguments object for COMMAND from its words. Returns 0, or
 * EXIT_USAGE after printing, or 1 after printing a host error. */
static int build_args(const char *cmd, int nwords, char **words, struct json_object *args)
{
	/* The commands of `kvmbox up --api` (cli/up.c): a VM's NAME first. */
	if ((!strcmp(cmd, "start") || !strcmp(cmd, "stop") || !strcmp(cmd, "restart")) && nwords == 1 &&
	    !strchr(words[0], '=')) {
		json_object_object_add(args, "name", json_object_new_string(words[0]));
		return 0;
	}
	if (!strcmp(cmd, "vm")) {
		struct json_object *inner;
		int ret;

		if (nwords < 2 || !*words[1] || words[1][0] == '-')
			return usage_error("vm needs a VM NAME and a COMMAND: vm NAME info");
		inner = json_object_new_object();
		if (!inner) {
			log_error("ctl: out of memory");
			return 1;
		}
		ret = build_args(words[1], nwords - 2, words + 2, inner);
		if (ret) {
			json_object_put(inner);
			return ret;
		}
		json_object_object_add(args, "name", json_object_new_string(words[0]));
		json_object_object_add(args, "command", json_object_new_string(words[1]));
		json_object_object_add(args, "arguments", inner);
		return 0;
	}
	if (!strcmp(cmd, "info") || !strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		if (nwords)
			return usage_error("%s takes no arguments", cmd);
		return 0;
	}
	if (!strcmp(cmd, "shutdown")) {
		unsigned t;

		if (nwords > 1 || (nwords == 1 && strncmp(words[0], "timeout=", 8)))
			return usage_error("shutdown takes no arguments but an optional timeout=SECONDS");
		if (nwords == 1) {
			if (parse_uint(words[0] + 8, &t) < 0)
				return usage_error("shutdown %s: not a number of seconds", words[0]);
			json_object_object_add(args, "timeout", json_object_new_int64(t));
		}
		return 0;
	}
	if (!strcmp(cmd, "snapshot") || !strcmp(cmd, "hibernate")) {
		char *abs;

		if (nwords != 1 || !*words[0])
			return usage_error("%s needs one argument, the state file PATH", cmd);
		abs = absolute_path(words[0]);
		if (!abs) {
			log_error("ctl: %s: cannot make it absolute: %s", words[0], strerror(errno));
			return 1;
		}
		json_object_object_add(args, "path", json_object_new_string(abs));
		free(abs);
		return 0;
	}
	if (!strcmp(cmd, "migrate")) {
		if (nwords < 1 || nwords > 2 || !*words[0])
			return usage_error("migrate needs the destination URI, then optionally disks=copy");
		if (nwords == 2 && strcmp(words[1], "disks=copy"))
			return usage_error("migrate %s: '%s' is not disks=copy", words[0], words[1]);
		json_object_object_add(args, "uri", json_object_new_string(words[0]));
		if (nwords == 2)
			json_object_object_add(args, "disks", json_object_new_string("copy"));
		return 0;
	}
	if (!strcmp(cmd, "balloon")) {
		uint64_t size;

		if (nwords != 1)
			return usage_error("balloon needs one argument, the SIZE (e.g. 512M)");
		if (parse_size(words[0], &size) < 0 || size > INT64_MAX)
			return usage_error("balloon '%s': not a size; give a size like 512M or 2G", words[0]);
		json_object_object_add(args, "size", json_object_new_int64((int64_t)size));
		return 0;
	}
	for (int i = 0; i < nwords; i++) {
		const char *eq = strchr(words[i], '=');
		char *key;

		if (!eq || eq == words[i])
			return usage_error("%s: '%s' is not KEY=VALUE", cmd, words[i]);
		key = strndup(words[i], (size_t)(eq - words[i]));
		if (!key) {
			log_error("ctl: out of memory");
			return 1;
		}
		json_object_object_add(args, key, json_object_new_string(eq + 1));
		free(key);
	}
	return 0;
}

/* Parse `--json` text into a request object. NULL after printing. */
static struct json_object *parse_raw(const char *text)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	enum json_tokener_error err;

	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
	err = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || err != json_tokener_success) {
		json_object_put(o);
		usage_error("--json: not valid JSON (%s)", json_tokener_error_desc(err));
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		usage_error("--json: the request must be a JSON object");
		return NULL;
	}
	return o;
}

int api_exchange(const char *path, const char *line, unsigned timeout_s, char **reply, size_t *extra,
		 char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(line), off = 0, cap = 0, used = 0;
	int64_t deadline = timeout_s ? (int64_t)(now_ns() / 1000000) + (int64_t)timeout_s * 1000 : 0;
	char *buf = NULL;
	int fd, send_errno = 0;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes; give a shorter path",
			 path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "control socket %s: %s; is the VM running with --api %s?", path,
			 strerror(errno), path);
		close(fd);
		return -1;
	}
	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* A server that refuses a client (SO_PEERCRED) sends why and closes at
			 * once: read that reply before reporting the failed send. */
			if (errno == EPIPE || errno == ECONNRESET) {
				send_errno = errno;
				break;
			}
			snprintf(err, errlen, "control socket %s: sending the request: %s", path,
				 strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	for (;;) {
		char *nl = used ? memchr(buf, '\n', used) : NULL;
		ssize_t n;

		if (nl) {
			*nl = '\0';
			*extra = used - (size_t)(nl + 1 - buf);
			break;
		}
		if (timeout_s) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int64_t left = deadline - (int64_t)(now_ns() / 1000000);
			int r = left > 0 ? poll(&p, 1, (int)(left > INT32_MAX ? INT32_MAX : left)) : 0;

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				snprintf(err, errlen,
					 "control socket %s: no reply within %u seconds; the command may "
					 "still be running in the VM",
					 path, timeout_s);
				goto fail;
			}
		}
		if (cap - used < 4096) {
			char *nb;

			if (cap >= CTL_MAX_REPLY) {
				snprintf(err, errlen,
					 "control socket %s: reply longer than %d bytes; is this a kvmbox "
					 "socket?",
					 path, CTL_MAX_REPLY);
				goto fail;
			}
			nb = realloc(buf, cap ? cap * 2 : 65536);
			if (!nb) {
				snprintf(err, errlen, "ctl: out of memory");
				goto fail;
			}
			buf = nb;
			cap = cap ? cap * 2 : 65536;
		}
		n = recv(fd, buf + used, cap - used - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 && send_errno) {
			snprintf(err, errlen, "control socket %s: sending the request: %s", path,
				 strerror(send_errno));
			goto fail;
		}
		if (n < 0) {
			snprintf(err, errlen, "control socket %s: reading the reply: %s", path,
				 strerror(errno));
			goto fail;
		}
		if (n == 0) {
			snprintf(err, errlen,
				 "control socket %s: the VM closed the connection without replying", path);
			goto fail;
		}
		used += (size_t)n;
	}
	*reply = buf;
	return fd;
fail:
	close(fd);
	free(buf);
	return -1;
}

int api_call(const char *path, const char *line, unsigned timeout_s, char **reply, char *err, size_t errlen)
{
	size_t extra;
	int fd = api_exchange(path, line, timeout_s, reply, &extra, err, errlen);

	if (fd < 0)
		return 1;
	close(fd);
	return 0;
}

/* Print the reply; 0 for "return", 1 for "error" or a malformed reply. */
static int show_reply(const char *path, const char *cmd, const char *text)
{
	struct json_object *r = json_tokener_parse(text), *e, *desc;
	int ret = 1;

	if (!r || !json_object_is_type(r, json_type_object)) {
		log_error("control socket %s: the reply is not a JSON object; is this a kvmbox socket?",
			  path);
		json_object_put(r);
		return 1;
	}
	printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	if (json_object_object_get_ex(r, "return", NULL)) {
		ret = 0;
	} else if (json_object_object_get_ex(r, "error", &e)) {
		if (json_object_object_get_ex(e, "desc", &desc) &&
		    json_object_is_type(desc, json_type_string))
			log_error("%s: %s", cmd, json_object_get_string(desc));
		else
			log_error("%s: failed (no description)", cmd);
	} else {
		log_error("control socket %s: the reply has neither \"return\" nor \"error\"", path);
	}
	json_object_put(r);
	return ret;
}

int cmd_ctl(int argc, char **argv)
{
	struct json_object *req = NULL, *args, *cmdobj;
	const char *path, *cmd;
	unsigned timeout_s = 0;
	char *reply = NULL;
	int i = 1, ret;

	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			ctl_help();
			return 0;
		} else if (!strcmp(a, "--timeout") || !strncmp(a, "--timeout=", 10)) {
			const char *v = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v)
				return usage_error("option --timeout needs a value");
			if (parse_uint(v, &timeout_s) < 0 || timeout_s == 0)
				return usage_error("--timeout '%s': give whole seconds, at least 1", v);
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else {
			return usage_error("unknown option %s", a);
		}
	}
	if (argc - i < 2)
		return usage_error(argc - i < 1 ? "missing SOCKET and COMMAND" : "missing COMMAND");
	path = argv[i++];
	cmd = argv[i++];
	if (!strcmp(cmd, "console")) {
		if (argc - i != 1 || !*argv[i] || argv[i][0] == '-')
			return usage_error("console needs one argument, the VM NAME (of kvmbox up's socket)");
		return ctl_console(path, argv[i], timeout_s);
	}

	if (!strcmp(cmd, "--json")) {
		if (argc - i != 1)
			return usage_error("--json needs exactly one argument, the request object");
		req = parse_raw(argv[i]);
		if (!req)
			return EXIT_USAGE;
		if (!json_object_object_get_ex(req, "id", NULL))
			json_object_object_add(req, "id", json_object_new_int(1));
		if (json_object_object_get_ex(req, "command", &cmdobj) &&
		    json_object_is_type(cmdobj, json_type_string))
			cmd = json_object_get_string(cmdobj);
		else
			cmd = "request";
	} else {
		if (!*cmd)
			return usage_error("empty COMMAND");
		if (cmd[0] == '-')
			return usage_error("unknown option %s (options go before SOCKET)", cmd);
		req = json_object_new_object();
		args = json_object_new_object();
		if (!req || !args) {
			json_object_put(req);
			json_object_put(args);
			log_error("ctl: out of memory");
			return 1;
		}
		ret = build_args(cmd, argc - i, argv + i, args);
		if (ret) {
			json_object_put(req);
			json_object_put(args);
			return ret;
		}
		json_object_object_add(req, "id", json_object_new_int(1));
		json_object_object_add(req, "command", json_object_new_string(cmd));
		json_object_object_add(req, "arguments", args);
	}

	{
		const char *txt = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
									      JSON_C_TO_STRING_NOSLASHESCAPE);
		char *line = NULL;

		if (asprintf(&line, "%s\n", txt) < 0) {
			json_object_put(req);
			log_error("ctl: out of memory");
			return 1;
		}
		char err[512];

		ret = api_call(path, line, timeout_s, &reply, err, sizeof(err));
		if (ret)
			log_error("%s", err);
		free(line);
	}
	if (ret == 0)
		ret = show_reply(path, cmd, reply);
	free(reply);
	json_object_put(req); /* cmd may point into req: freed last */
	return ret;
}
