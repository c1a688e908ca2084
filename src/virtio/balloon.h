/* balloon.h - virtio-balloon (virtio 1.x section 5.5): the host asks the
 * guest to give back RAM; pages the guest puts in the balloon are returned
 * to the host kernel with madvise(MADV_DONTNEED), so kvmbox's RSS shrinks.
 *
 * Queues: inflateq 0, deflateq 1, statsq 2. Offered features: STATS_VQ and
 * DEFLATE_ON_OOM (never MUST_TELL_HOST: deflating needs no host action, a
 * deflated page faults in fresh and zeroed when the guest touches it).
 *
 * Reset keeps the host's target (num_pages) so a re-initialising driver
 * inflates back to it; everything the old driver told us (actual, counts,
 * stats, the held stats buffer) is forgotten. Snapshots keep the held stats
 * buffer's head id: the descriptors stay the device's until used, so after
 * a load the buffer is pushed back as if nothing happened. */
#ifndef KVMBOX_VIRTIO_BALLOON_H
#define KVMBOX_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/devtype.h"
#include "virtio.h"

/* Feature bits (virtio 1.x 5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ       1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2

#define VIRTIO_BALLOON_INFLATEQ 0
#define VIRTIO_BALLOON_DEFLATEQ 1
#define VIRTIO_BALLOON_STATSQ   2

/* Balloon pages are always 4 KiB, whatever the guest's page size. */
#define VIRTIO_BALLOON_PFN_SHIFT 12
#define VIRTIO_BALLOON_PAGE_SIZE (1u << VIRTIO_BALLOON_PFN_SHIFT)

/* Statistic tags (virtio 1.x 5.5.6.3, plus the later Linux additions). */
#define VIRTIO_BALLOON_S_SWAP_IN      0
#define VIRTIO_BALLOON_S_SWAP_OUT     1
#define VIRTIO_BALLOON_S_MAJFLT       2
#define VIRTIO_BALLOON_S_MINFLT       3
#define VIRTIO_BALLOON_S_MEMFREE      4
#define VIRTIO_BALLOON_S_MEMTOT       5
#define VIRTIO_BALLOON_S_AVAIL        6
#define VIRTIO_BALLOON_S_CACHES       7
#define VIRTIO_BALLOON_S_HTLB_PGALLOC 8
#define VIRTIO_BALLOON_S_HTLB_PGFAIL  9
#define VIRTIO_BALLOON_S_NR           16 /* tags we record; larger ones are ignored */

/* Default period of fresh-stats requests. */
#define VIRTIO_BALLOON_STATS_INTERVAL_MS 2000

struct balloon_info {
	uint64_t target_pages;   /* num_pages we asked for */
	uint64_t actual_pages;   /* pages the guest reports in the balloon (config 'actual'), at most RAM's */
	uint64_t inflated_pages; /* pages we saw on the inflate queue minus deflated */
	bool stats_valid;
	uint64_t stats[VIRTIO_BALLOON_S_NR]; /* indexed by VIRTIO_BALLOON_S_* tag, as last reported;
					      * tags absent from that report read 0 */
	uint64_t stats_age_ms;               /* since the last stats report */
	uint64_t invalid_pfns; /* PFNs outside guest RAM that were skipped (inflate + deflate) */
};

/* Create "virtio-balloon<index>" for the RAM `mem`. NULL with an error printed. */
struct virtio_dev *virtio_balloon_create(const struct guest_mem *mem, unsigned index);
/* Ask the guest to shrink to `target_bytes` of usable RAM (0 < target <= RAM): sets config
 * num_pages = (RAM - target) / 4096 and sends a config interrupt (if the driver is running).
 * Any thread (takes vd->lock). 0, or -1 when target is out of range. */
int virtio_balloon_set_target(struct virtio_dev *vd, uint64_t target_bytes);
/* Snapshot of the balloon's state. Any thread (takes vd->lock). */
void virtio_balloon_info(struct virtio_dev *vd, struct balloon_info *out);
/* Period of fresh-stats requests in ms (0: only on virtio_balloon_request_stats). Any thread.
 * 0, or -1 if the timer cannot be set. */
int virtio_balloon_set_stats_interval(struct virtio_dev *vd, unsigned ms);
/* Ask the guest for fresh stats now (hands back the held stats buffer, if any). Any thread.
 * Returns true when a request went out. */
bool virtio_balloon_request_stats(struct virtio_dev *vd);

/* The `--balloon` device type (core/devtype.h). */
extern const struct device_type virtio_balloon_type;

#endif
