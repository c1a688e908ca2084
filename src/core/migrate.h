/* migrate.h - live migration: pre-copy of guest RAM over TCP or a unix
 * socket, then stop-and-copy of the rest and of all state.
 *
 * Source (migrate_start, from machine_migrate): dirty-page logging on;
 * round 0 sends every non-zero page; each later round sends what KVM's dirty
 * log and the devices' writes marked since the round before; when the dirty
 * set is small (or after a round limit) the VM is paused, the last pages and
 * the state are sent, the backends (disk locks, taps) are handed over and the
 * destination's acknowledgement ends the source (exit 0). Any failure
 * resumes the source, which keeps running; the destination exits non-zero.
 *
 * Stream (little endian): "KVMBOXMG" u32 version u32 arch, u64 len + config;
 * then records: u32 type, ...; the destination answers one u32 status after
 * the final record.
 *
 * disks=copy (version 3): after the config, u32 count and per disk u64 size, st_dev, st_ino;
 * the destination answers u32 0 (go on) or 1, u32 len and its one-line refusal. The disks'
 * blocks then come as records of their own beside the pages (u32 disk, u64 offset, u32 len and
 * the data, or nothing for zeroes): all of them in round 0, those the guest wrote since in each
 * later round, the rest in the final one with the VM paused (backends/blockfile.h's dirty map). With a --migration-key both directions go through an
 * authenticated, encrypted channel (core/chan.h); without one, TCP is refused
 * unless --insecure-migration is given.
 */
#ifndef KVMBOX_MIGRATE_H
#define KVMBOX_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "machine.h"
#include "snapshot.h"

struct vm;
struct vm_config;
struct migration;

/* disks=copy: at most this many disks (virtio-blk's --disk limit), and a destination's refusal
 * of at most this many bytes. */
#define MIG_MAX_DISKS   16
#define MIG_MAX_REFUSAL 512

/* Parse "tcp:IP:PORT" (IPv4, [IPv6] or localhost; names are not resolved) or "unix:PATH"
 * into a socket address. 0 or -1. */
int migrate_parse_uri(const char *uri, struct sockaddr_storage *ss, socklen_t *len, int *family);

/* Source: migrate the running vm to uri on a thread of its own. done is called once from
 * that thread: on success after the destination acknowledged (the caller's VM must then
 * stop: migrate_start's thread asks it to, with VM_HANDOFF), on failure after the VM was
 * resumed, with *migrating cleared. NULL with the reason in err when it cannot start. */
struct migration *migrate_start(struct vm *vm, const char *uri, bool copy_disks, _Atomic bool *migrating,
				migration_done_fn done, void *ctx, char *err, size_t errlen);
/* Source: stop a migration in progress (the VM is going away), wait, free; *m = NULL. */
void migrate_cancel(struct migration **m);

/* Destination: one incoming migration, from migrate_accept to migrate_in_close. */
struct migrate_in;

/* Destination: listen on uri (tcp:IP:PORT or unix:PATH), accept one
 * source (over a unix socket: only one of our uid or root), set up the stream's channel
 * (encrypted with keys' migration key; plain TCP only with keys' insecure_migration), read its
 * hello and configuration into *sc. Returns the incoming migration, or NULL (printed, except
 * when stop_fd became readable: a termination signal). From the accept on, the receive has an
 * overall deadline (10 min). */
struct migrate_in *migrate_accept(const char *uri, int stop_fd, const struct vm_keys *keys,
				  struct snap_config *sc);
/* Destination, after migrate_accept and the configuration's check, when the source asked for
 * disks=copy (else a no-op, 0): open the images local (this command line) names for the copy,
 * check each against the source's disk of the same index (size, writable, not the source's own
 * file when the source is on this host) and tell the source to go on. 0, or -1 with one line
 * in msg (then call migrate_refuse). */
int migrate_accept_disks(struct migrate_in *in, const struct vm_config *local, char *msg, size_t len);
/* Destination: refuse the migration with msg (one line): a disks=copy source, which waits for
 * an answer, gets msg as its error; any other finds the stream closed (migrate_in_close). */
void migrate_refuse(struct migrate_in *in, const char *msg);
/* Destination: does a disk record (disk index, byte offset, length) fit: a known disk, a whole
 * 64 KiB block at a block boundary (or the disk's shorter last one), inside the disk. */
bool migrate_disk_record_ok(const uint64_t *sizes, unsigned n, uint32_t disk, uint64_t offset, uint32_t len);
/* Destination: receive RAM until the source stops its VM; returns the final
 * state blob (malloc'ed, *len) for vm_state_load, or NULL (printed), also when
 * stop_fd becomes readable (a termination signal) or the deadline passes. The
 * VM has RAM and vCPUs; its devices are created after this returns. */
uint8_t *migrate_receive_ram(struct migrate_in *in, struct vm *vm, int stop_fd, uint64_t *len);
/* Destination: tell the source whether the state loaded (ok) and print the
 * migration figures. 0 or -1. */
int migrate_finish(struct migrate_in *in, bool ok);
/* Destination: close the stream and whatever the migration still holds, free in (NULL: a
 * no-op). */
void migrate_in_close(struct migrate_in *in);

#endif
