/* blk.h - virtio-blk (virtio 1.x section 5.2) on a raw disk image.
 *
 * One request queue of VIRTIO_BLK_QUEUE_SIZE entries, served asynchronously
 * by the blockfile backend (io_uring): many requests in flight, completions
 * pushed from the worker's loop. Offered: SIZE_MAX, SEG_MAX, BLK_SIZE (512),
 * FLUSH, and DISCARD + WRITE_ZEROES on writable disks, RO on read-only ones.
 *
 * Policy choices:
 * - An image whose size is not a multiple of 512 is accepted; the tail past
 *   the last whole sector is invisible to the guest (a warning says so).
 * - Every malformed request (short header, bad direction, out of range,
 *   too many or too large segments, partial sector) completes with
 *   VIRTIO_BLK_S_IOERR; unknown types and unknown discard/write-zeroes
 *   flags with VIRTIO_BLK_S_UNSUPP. A chain without a status byte is
 *   returned with length 0. Only a malformed ring marks the device broken.
 * - Zero-length reads and writes are errors (the spec has no such thing).
 * - FLUSH waits for every write-like request submitted before it, then
 *   fdatasync()s. If the driver does not negotiate FLUSH, writes are
 *   write-through (RWF_DSYNC), as the spec asks.
 * - release (live migration to another process) completes every request,
 *   fdatasync()s and unlocks the image; a writable block device is closed
 *   and reopened by path on reacquire. reacquire fails (one-line error)
 *   while another process holds the image. See blockfile.h. */
#ifndef KVMBOX_VIRTIO_BLK_H
#define KVMBOX_VIRTIO_BLK_H

#include <stdint.h>

#include "../backends/blockfile.h"
#include <stdbool.h>

#include "../core/devtype.h"
#include "virtio.h"

/* --disk PATH[,ro][,serial=STR] */
struct disk_config {
	char *path; /* owned */
	bool readonly;
	char serial[21]; /* VIRTIO_BLK_ID_BYTES (20) + NUL; empty: none */
};

/* The `--disk` device type (core/devtype.h). */
extern const struct device_type virtio_blk_type;

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* struct virtio_blk_config offsets (5.2.4), little endian. */
#define VIRTIO_BLK_CFG_CAPACITY            0  /* le64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX            8  /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX             12 /* le32 */
#define VIRTIO_BLK_CFG_BLK_SIZE            20 /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36 /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG     40 /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT   44 /* le32, sectors */
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS      48 /* le32 */
#define VIRTIO_BLK_CFG_MAX_WZ_SEG          52 /* le32 */
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP        56 /* u8 */
#define VIRTIO_BLK_CFG_SIZE                60

/* Request types (5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

/* Status byte values. */
#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flags. */
#define VIRTIO_BLK_WZ_F_UNMAP 1

#define VIRTIO_BLK_SECTOR         512
#define VIRTIO_BLK_HDR_LEN        16 /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_ID_BYTES       20
#define VIRTIO_BLK_QUEUE_SIZE     256
#define VIRTIO_BLK_SEG_MAX        (VIRTIO_BLK_QUEUE_SIZE - 2) /* data segments per request */
#define VIRTIO_BLK_SIZE_MAX       (1u << 20)                  /* bytes per data segment */
#define VIRTIO_BLK_MAX_DZ_SECTORS (1u << 22)                  /* per discard/zeroes segment */
#define VIRTIO_BLK_MAX_DZ_SEG     16                          /* segments per discard/zeroes */
#define VIRTIO_BLK_DISCARD_ALIGN  8                           /* sectors (4 KiB) */

/* Open and lock the image and build the device ("virtio-blk<index>"), its
 * completion eventfd already on vd->loop. NULL with a one-line error. */
struct virtio_dev *virtio_blk_create(const struct guest_mem *mem, const struct disk_config *cfg,
				     unsigned index);
/* With vd->lock held: wait for every request in flight and complete it to
 * the guest, so a snapshot sees no I/O in progress (nothing new starts while
 * the caller holds the lock). 0, or -1 if waiting failed (printed). */
int virtio_blk_quiesce(struct virtio_dev *vd);
/* What backs the disk: size, identity, read-only, and whether I/O goes
 * through io_uring (async) or the synchronous fallback. */
void virtio_blk_get_info(const struct virtio_dev *vd, struct blockfile_info *info);
/* With vd->lock held: requests handed to the backend and not finished. */
unsigned virtio_blk_in_flight(const struct virtio_dev *vd);
/* Whether writes are write-through (RWF_DSYNC): the driver did not negotiate FLUSH. */
bool virtio_blk_writethrough(const struct virtio_dev *vd);

#endif
