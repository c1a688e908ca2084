/* config.h - what the user asked for: the parsed `kvmbox run` options. */
#ifndef KVMBOX_CONFIG_H
#define KVMBOX_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum console_kind { CONSOLE_SERIAL = 0, CONSOLE_NONE, CONSOLE_VIRTIO };

#define DEFAULT_MEMORY (256ULL << 20)
#define MIN_MEMORY (16ULL << 20)

struct vm_config {
	const char *kernel;   /* path, required */
	const char *initrd;   /* path or NULL */
	const char *append;   /* kernel command line or NULL */
	unsigned cpus;        /* >= 1 */
	uint64_t memory;      /* bytes */
	enum console_kind console;
	bool no_reboot;
	bool stats;           /* print exit statistics on stderr at the end */
};

#endif
