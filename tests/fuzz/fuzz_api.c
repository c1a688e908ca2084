/* fuzz_api - the control socket: the server's framing and request parsing (api/server.c) and
 * the command dispatch behind it (cli/control.c: argument checks, sizes, timeouts, info), on a
 * machine created as `kvmbox run` creates it (machine_create: its event loop, signals) but
 * with no VM, so every command that would act on one is refused after its arguments were
 * parsed; nothing is written, paused or migrated.
 *
 * Input: the bytes a client sends (JSON lines), written to a fresh connection, which is then
 * shut for writing; the harness runs the machine's loop and reads the replies until the server
 * closes the connection. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/run.h"
#include "core/config.h"
#include "core/loop.h"
#include "core/machine.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct vm_config cfg = {
	.kernel = "vmlinuz",
	.cpus = 1,
	.memory = 16 << 20,
	.console = CONSOLE_NONE,
};
static struct machine *machine;
static struct api_server *server;
static struct sockaddr_un addr = { .sun_family = AF_UNIX };

static void cleanup(void)
{
	api_server_destroy(server); /* unlinks the socket */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("TMPDIR");
	sigset_t mask;

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/kvmbox-fuzz-api-%d.sock",
		 dir && *dir ? dir : "/tmp", (int)getpid());
	machine = machine_create(&cfg);
	if (!machine)
		abort();
	/* The machine hands termination signals to its sigwatch thread; the fuzzer's own
	 * handlers should get them on this one. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	server = api_server_create(addr.sun_path, machine_loop(machine), control_handle, machine);
	if (!server)
		abort();
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	size_t off = 0;
	bool eof = false;
	char buf[4096];

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	for (int i = 0; i < 256 && !eof; i++) {
		ssize_t n;

		if (off < size) {
			n = write(fd, data + off, size - off);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				off = size;
			if (off == size)
				shutdown(fd, SHUT_WR);
		} else if (i == 0) {
			shutdown(fd, SHUT_WR);
		}
		loop_run_once(machine_loop(machine), 0);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
		eof = n == 0 || (n < 0 && errno != EAGAIN);
	}
	close(fd);
	/* The server notices the hang-up (a client that never let it finish). */
	loop_run_once(machine_loop(machine), 0);
	return 0;
}
