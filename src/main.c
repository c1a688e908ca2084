/* main.c - command dispatch. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli/options.h"
#include "api/api.h"
#include "cli/run.h"
#include "cli/up.h"
#include "core/log.h"

int main(int argc, char **argv)
{
	/* Before any thread or filter: libsodium picks its implementations and checks that
	 * getrandom works (core/keys.h, chan.h: the keys of migrations and snapshots). */
	if (sodium_init() < 0) {
		log_error("libsodium could not start (no random source?); kvmbox cannot run here");
		return EXIT_START_FAIL;
	}
	if (argc < 2) {
		print_main_help();
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("kvmbox %s\n", KVMBOX_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		print_main_help();
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "restore"))
		return cmd_restore(argc - 1, argv + 1);
	if (!strcmp(argv[1], "up"))
		return cmd_up(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	log_error("unknown command '%s'; see kvmbox --help", argv[1]);
	return EXIT_USAGE;
}
