/* config.h - what the user asked for: the parsed `kvmbox run` options. */
#ifndef KVMBOX_CONFIG_H
#define KVMBOX_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum console_kind { CONSOLE_SERIAL = 0, CONSOLE_NONE, CONSOLE_VIRTIO };

#define DEFAULT_MEMORY (256ULL << 20)
#define MIN_MEMORY (16ULL << 20)

#define MAX_DISKS 16
#define MAX_NICS 8

/* --disk PATH[,ro][,serial=STR] */
struct disk_config {
	const char *path;
	bool readonly;
	char serial[21];      /* VIRTIO_BLK_ID_BYTES (20) + NUL; empty: none */
};

/* --net tap=NAME[,mac=MAC] */
struct net_config {
	char tap[16];         /* IFNAMSIZ */
	uint8_t mac[6];
	bool mac_set;         /* else a stable MAC is generated from the tap name */
};

struct vm_config {
	const char *kernel;   /* path, required */
	const char *initrd;   /* path or NULL */
	const char *append;   /* kernel command line or NULL */
	unsigned cpus;        /* >= 1 */
	uint64_t memory;      /* bytes */
	enum console_kind console;
	bool no_reboot;
	bool stats;           /* print exit statistics on stderr at the end */
	struct disk_config disks[MAX_DISKS];
	unsigned nr_disks;
	struct net_config nets[MAX_NICS];
	unsigned nr_nets;
	bool rng;             /* --rng: virtio-rng */
	bool balloon;         /* --balloon: virtio-balloon */
	const char *api;      /* --api PATH: control socket */
	const char *incoming; /* --incoming URI: wait for a migration */
};

#endif
