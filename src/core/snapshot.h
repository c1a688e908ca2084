/* snapshot.h - VM state capture, the snapshot file, and restore.
 *
 * File layout (all little endian):
 *   0      header page: magic "KVMBOXSN", version, architecture, offsets and
 *          lengths of the RAM image and of the metadata, their hashes, and a
 *          hash of the header itself
 *   4096   guest RAM, regions back to back, page aligned, written sparse:
 *          zero pages are holes, so the file holds only what the guest used
 *          and a restore can map it copy-on-write
 *   after  metadata: checksummed sections (config, CPU features, VM, one per
 *          vCPU, one per device, RAM index)
 * Every section carries an XXH3 hash; the RAM hash covers the non-zero pages
 * (index and content), so verifying costs what the guest used, not its size.
 * These find corruption, not forgery: a VM with --snapshot-key also writes a
 * keyed MAC (BLAKE2b) of the whole file into the header page (snapshot.c).
 */
#ifndef KVMBOX_SNAPSHOT_H
#define KVMBOX_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ser.h"

struct vm;
struct guest_mem;
struct device;

#define SNAP_MAGIC      "KVMBOXSN"
#define SNAP_VERSION    2
#define SNAP_RAM_OFFSET 4096ULL

/* A vm_config read back from a snapshot, owning its strings. */
struct snap_config {
	struct vm_config cfg;
	char *strings[3]; /* kernel, initrd, append: what cfg points to besides its devices */
};

/* Serialise / parse the run options needed to rebuild the VM. */
void snap_config_save(const struct vm_config *cfg, struct ser_writer *w);
int snap_config_load(struct snap_config *sc, struct ser_reader *r);
void snap_config_free(struct snap_config *sc);

/* Capture everything but RAM (config, CPU features, VM, vCPUs, devices)
 * into w as sections. The VM must be paused. 0 or -1 (printed). */
int vm_state_save(struct vm *vm, struct ser_writer *w);
/* The device of vm->devices, from dev on, that a saved device section of this type and name
 * belongs to; NULL when there is none. Devices that keep no state (neither save nor load in
 * their ops) may be missing from a state: one written before they existed lacks them (x86's
 * pci-ecam, added without a format change), so they are passed over. With type NULL (the end
 * of the state): NULL when every device from dev on keeps no state, else the first that does,
 * which the state lacks. Every device still writes its section, so the format is unchanged. */
struct device *snap_device_for(struct device *dev, const char *type, const char *name);
/* Apply state captured by vm_state_save to a VM built from the same config
 * (devices created, vCPUs created, not started). 0 or -1 (printed). */
int vm_state_load(struct vm *vm, struct ser_reader *r);

struct snap_result {
	uint64_t ram_bytes;  /* non-zero guest RAM written */
	uint64_t file_bytes; /* apparent file size */
	double pause_ms;     /* how long the guest was paused */
	double total_ms;
};

/* Write a snapshot of the running VM to path. With live, the guest is paused
 * only while its state is captured and a copy-on-write image of its RAM is
 * taken (fork); a child process writes RAM while the guest runs on. Without
 * live (hibernate), the guest stays paused throughout and is left paused. A
 * VM already paused (vm_pause) is written as it is and stays paused.
 * The file is complete and fsync'ed on return. 0 or -1 (printed; errmsg
 * gets the one-line reason). */
int snapshot_write(struct vm *vm, const char *path, bool live, struct snap_result *res, char *errmsg,
		   size_t errlen);

/* Create the temporary file a snapshot of path is written to before it is renamed into place:
 * path.tmp-PID-XXXXXXXX, a new file (O_EXCL, mode 0600) created without following a link, so a
 * name planted beforehand is never written through; a few names are tried. The fd, or -1 with
 * errno (ENAMETOOLONG when tmp, of len bytes, cannot hold the name). */
int snapshot_tmp_create(const char *path, char *tmp, size_t len);
/* Write the file: RAM of m (sparse), the state meta (vm_state_save's sections), the header (and
 * the MAC when key, KEY_BYTES, is not NULL), then fsync. Runs in the child a live snapshot
 * forks: no allocation, no lock, only system calls. 0 or an errno. */
int snapshot_file_write(const struct guest_mem *m, int fd, const void *meta, size_t meta_len,
			uint64_t *ram_bytes, const uint8_t *key);

/* An opened, verified snapshot. */
struct snapshot {
	int fd;
	struct snap_config config;
	uint8_t *meta; /* the state sections (for vm_state_load) */
	uint64_t meta_len;
	uint64_t ram_len;
	/* Someone besides the user kvmbox runs as (and root) may write the file: its group or others
	 * may, or another user owns it. Guest RAM mapped from it would see their later writes (and a
	 * truncation would be a SIGBUS), so a restore reads it into memory instead (as --copy). */
	bool shared_writable;
};

/* Open path, check header, sizes and every hash (RAM too, unless
 * verify_ram is false), and parse the config. With key (KEY_BYTES, --snapshot-key), the file
 * must carry a MAC under it, checked over the whole file (RAM included, whatever verify_ram
 * says) before anything in it is parsed; without key, a file that carries one is refused.
 * 0 or -1 (printed). */
int snapshot_open(const char *path, bool verify_ram, const uint8_t *key, struct snapshot *s);
/* Close the file and free the state (once the VM was built from them). s->config, which a
 * running VM's configuration points into, stays until snap_config_free(&s->config). */
void snapshot_close(struct snapshot *s);

#endif
