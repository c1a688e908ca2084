#include "balloon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"
#include "../core/vm.h"
#include "setup.h"

#define BALLOON_QUEUE_SIZE   64
#define BALLOON_NUM_QUEUES   3
#define BALLOON_CONFIG_SIZE  8   /* num_pages, actual */
#define BALLOON_PFN_CHUNK    256 /* PFNs read from a buffer at a time (Linux sends 256) */
#define BALLOON_STAT_SIZE    10  /* le16 tag, le64 value, packed */
#define BALLOON_STATS_MAX    64  /* entries parsed per report at most */
#define BALLOON_SAVE_VERSION 1

struct virtio_balloon {
	struct virtio_dev vd; /* first: container of the ops' argument */
	int timer_fd;         /* periodic fresh-stats requests, on vd->loop */
	unsigned interval_ms;
	uint32_t target_pages; /* config num_pages */
	uint32_t actual_pages; /* config actual, as the driver wrote it */
	uint64_t inflated;     /* valid PFNs seen on inflateq */
	uint64_t deflated;     /* valid PFNs seen on deflateq */
	uint64_t invalid_pfns;
	bool stats_held; /* the driver's stats buffer is ours until we push it */
	uint16_t stats_head;
	bool stats_valid;
	uint64_t stats[VIRTIO_BALLOON_S_NR];
	uint64_t stats_time_ms;   /* CLOCK_MONOTONIC of the last report */
	struct virtq_chain chain; /* scratch; users hold vd->lock */
};

static struct virtio_balloon *to_balloon(struct virtio_dev *vd)
{
	return (struct virtio_balloon *)vd;
}

static void balloon_fill_config(struct virtio_balloon *b)
{
	put_le32(b->vd.config, b->target_pages);
	put_le32(b->vd.config + 4, b->actual_pages);
}

/* ---- stats ---------------------------------------------------------------- */

static bool stats_queue_live(struct virtio_dev *vd)
{
	return vd->activated && !vd->broken && virtio_has_feature(vd, VIRTIO_BALLOON_F_STATS_VQ) &&
	       vd->vqs[VIRTIO_BALLOON_STATSQ].enabled;
}

/* Hand the held stats buffer back (used len 0): the driver refills and re-posts
 * it with fresh numbers. With vd->lock held. */
static bool stats_give_back(struct virtio_balloon *b)
{
	struct virtio_dev *vd = &b->vd;

	if (!b->stats_held || !stats_queue_live(vd))
		return false;
	virtq_push(&vd->vqs[VIRTIO_BALLOON_STATSQ], b->stats_head, 0);
	b->stats_held = false;
	virtio_notify_used(vd, VIRTIO_BALLOON_STATSQ);
	return true;
}

static int stats_timer_set(struct virtio_balloon *b, bool on)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (on) {
		its.it_value.tv_sec = b->interval_ms / 1000;
		its.it_value.tv_nsec = (long)(b->interval_ms % 1000) * 1000000;
		its.it_interval = its.it_value;
	}
	if (timerfd_settime(b->timer_fd, 0, &its, NULL) < 0) {
		log_debug("%s: timerfd_settime: %s", b->vd.name, strerror(errno));
		return -1;
	}
	return 0;
}

/* Arm the timer only while a driver with a stats queue runs. With vd->lock held. */
static int stats_timer_update(struct virtio_balloon *b)
{
	return stats_timer_set(b, b->interval_ms && stats_queue_live(&b->vd));
}

static void stats_timer_fired(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_balloon *b = opaque;
	uint64_t ticks;

	if (read(fd, &ticks, sizeof(ticks)) < 0)
		return; /* EAGAIN: disarmed since it fired */
	pthread_mutex_lock(&b->vd.lock);
	stats_give_back(b);
	pthread_mutex_unlock(&b->vd.lock);
}

/* Record the (tag, value) entries in the chain's readable bytes. */
static void stats_parse(struct virtio_balloon *b, const struct virtq_chain *c)
{
	uint64_t n = c->out_len / BALLOON_STAT_SIZE;
	uint8_t e[BALLOON_STAT_SIZE];

	if (n == 0)
		return; /* nothing to record; the buffer is still held */
	if (n > BALLOON_STATS_MAX)
		n = BALLOON_STATS_MAX;
	/* Each report is a full snapshot: tags it leaves out are not carried over. */
	memset(b->stats, 0, sizeof(b->stats));
	for (uint64_t i = 0; i < n; i++) {
		uint16_t tag;

		if (virtq_chain_read(c, i * BALLOON_STAT_SIZE, e, sizeof(e)) != sizeof(e))
			break;
		tag = (uint16_t)(e[0] | e[1] << 8);
		if (tag < VIRTIO_BALLOON_S_NR)
			b->stats[tag] = get_le64(e + 2);
	}
	b->stats_valid = true;
	b->stats_time_ms = now_ns() / 1000000;
}

static void stats_notify(struct virtio_balloon *b)
{
	struct virtio_dev *vd = &b->vd;
	struct virtq *q = &vd->vqs[VIRTIO_BALLOON_STATSQ];
	bool pushed = false;
	int r;

	if (!virtio_has_feature(vd, VIRTIO_BALLOON_F_STATS_VQ))
		return;
	while ((r = virtq_pop(q, &b->chain)) == VIRTQ_OK) {
		if (b->stats_held) {
			/* The driver keeps one buffer in flight; a second one means it
			 * gave up on the first: return that one, keep the newer. */
			virtq_push(q, b->stats_head, 0);
			pushed = true;
		}
		stats_parse(b, &b->chain);
		b->stats_held = true;
		b->stats_head = b->chain.head;
	}
	if (r == VIRTQ_ERR)
		virtio_set_broken(vd, "malformed stats chain");
	if (pushed)
		virtio_notify_used(vd, VIRTIO_BALLOON_STATSQ);
}

/* ---- inflate / deflate ------------------------------------------------------ */

/* A run of host-contiguous pages being returned with one madvise. */
struct page_run {
	uint8_t *start;
	size_t len;
};

static void run_flush(struct virtio_dev *vd, struct page_run *run)
{
	if (!run->len)
		return;
	/* Only whole host pages can be dropped (always so for guest_mem_alloc RAM). */
	if (((uintptr_t)run->start & (VIRTIO_BALLOON_PAGE_SIZE - 1)) == 0 &&
	    madvise(run->start, run->len, MADV_DONTNEED) < 0)
		log_debug("%s: madvise(DONTNEED, %zu bytes): %s", vd->name, run->len, strerror(errno));
	run->len = 0;
}

static void run_add(struct virtio_dev *vd, struct page_run *run, uint8_t *page)
{
	if (run->len && run->start + run->len == page) {
		run->len += VIRTIO_BALLOON_PAGE_SIZE;
		return;
	}
	run_flush(vd, run);
	run->start = page;
	run->len = VIRTIO_BALLOON_PAGE_SIZE;
}

/* Walk the PFN array of one buffer; count valid pages, release them if
 * `release`. Trailing bytes short of a whole PFN are ignored. */
static void process_pfns(struct virtio_balloon *b, const struct virtq_chain *c, bool release)
{
	struct virtio_dev *vd = &b->vd;
	uint64_t total = c->out_len / 4, done = 0, valid = 0, invalid = 0;
	uint8_t buf[BALLOON_PFN_CHUNK * 4];
	struct page_run run = { NULL, 0 };

	while (done < total) {
		uint64_t n = total - done;

		if (n > BALLOON_PFN_CHUNK)
			n = BALLOON_PFN_CHUNK;
		if (virtq_chain_read(c, done * 4, buf, n * 4) != n * 4)
			break; /* cannot happen: out_len covers it */
		for (uint64_t i = 0; i < n; i++) {
			uint64_t gpa = (uint64_t)get_le32(buf + 4 * i) << VIRTIO_BALLOON_PFN_SHIFT;
			uint8_t *p = gpa_ptr(vd->mem, gpa, VIRTIO_BALLOON_PAGE_SIZE);

			if (!p) {
				invalid++;
				continue;
			}
			valid++;
			if (release)
				run_add(vd, &run, p);
		}
		done += n;
	}
	run_flush(vd, &run);
	if (release)
		b->inflated += valid;
	else
		b->deflated += valid;
	if (invalid) {
		b->invalid_pfns += invalid;
		log_debug("%s: %llu PFNs outside guest RAM skipped", vd->name, (unsigned long long)invalid);
	}
}

static void pages_notify(struct virtio_balloon *b, unsigned qi)
{
	struct virtio_dev *vd = &b->vd;
	struct virtq *q = &vd->vqs[qi];
	unsigned pushed = 0;
	int r;

	for (;;) {
		virtq_set_notification(q, false);
		while ((r = virtq_pop(q, &b->chain)) == VIRTQ_OK) {
			process_pfns(b, &b->chain, qi == VIRTIO_BALLOON_INFLATEQ);
			virtq_push(q, b->chain.head, 0);
			pushed++;
		}
		if (r == VIRTQ_ERR) {
			virtio_set_broken(vd, qi == VIRTIO_BALLOON_INFLATEQ ? "malformed inflate chain"
									    : "malformed deflate chain");
			break;
		}
		if (!virtq_set_notification(q, true))
			break;
	}
	if (pushed)
		virtio_notify_used(vd, qi);
}

/* ---- ops -------------------------------------------------------------------- */

static void balloon_queue_notify(struct virtio_dev *vd, unsigned qi)
{
	struct virtio_balloon *b = to_balloon(vd);

	if (qi == VIRTIO_BALLOON_INFLATEQ || qi == VIRTIO_BALLOON_DEFLATEQ)
		pages_notify(b, qi);
	else if (qi == VIRTIO_BALLOON_STATSQ)
		stats_notify(b);
}

static void balloon_config_write(struct virtio_dev *vd, uint32_t off, uint32_t len)
{
	struct virtio_balloon *b = to_balloon(vd);

	/* Only 'actual' is the driver's; num_pages is put back whatever it wrote. */
	b->actual_pages = get_le32(vd->config + 4);
	balloon_fill_config(b);
}

static int balloon_activate(struct virtio_dev *vd)
{
	stats_timer_update(to_balloon(vd));
	return 0;
}

static void balloon_reset(struct virtio_dev *vd)
{
	struct virtio_balloon *b = to_balloon(vd);

	/* The queues are going away: the held stats buffer is simply dropped,
	 * never pushed. A fresh driver starts with all its RAM and an empty
	 * balloon; the host's target stays so that driver inflates back to it. */
	b->stats_held = false;
	b->stats_valid = false;
	memset(b->stats, 0, sizeof(b->stats));
	b->actual_pages = 0;
	b->inflated = b->deflated = b->invalid_pfns = 0;
	balloon_fill_config(b);
	/* vd->activated is still set here: disarm explicitly (interval_ms is
	 * host policy and stays for the next driver). */
	stats_timer_set(b, false);
}

static void balloon_save(struct virtio_dev *vd, struct ser_writer *w)
{
	struct virtio_balloon *b = to_balloon(vd);

	ser_put_u32(w, BALLOON_SAVE_VERSION);
	ser_put_u32(w, b->target_pages);
	ser_put_u32(w, b->actual_pages);
	ser_put_u64(w, b->inflated);
	ser_put_u64(w, b->deflated);
	ser_put_u64(w, b->invalid_pfns);
	ser_put_u8(w, b->stats_held);
	ser_put_u16(w, b->stats_head);
	ser_put_u8(w, b->stats_valid);
	for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		ser_put_u64(w, b->stats[i]);
	/* Monotonic clocks differ between processes: store the age. */
	ser_put_u64(w, b->stats_valid ? now_ns() / 1000000 - b->stats_time_ms : 0);
}

static int balloon_load(struct virtio_dev *vd, struct ser_reader *r)
{
	struct virtio_balloon *b = to_balloon(vd);
	uint32_t target, actual;
	uint64_t age;
	bool held;
	uint16_t head;

	if (ser_get_u32(r) != BALLOON_SAVE_VERSION)
		return -1;
	target = ser_get_u32(r);
	actual = ser_get_u32(r);
	b->inflated = ser_get_u64(r);
	b->deflated = ser_get_u64(r);
	b->invalid_pfns = ser_get_u64(r);
	held = ser_get_u8(r);
	head = ser_get_u16(r);
	b->stats_valid = ser_get_u8(r);
	for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		b->stats[i] = ser_get_u64(r);
	age = ser_get_u64(r);
	if (r->err || target > vd->mem->total / VIRTIO_BALLOON_PAGE_SIZE)
		return -1;
	b->target_pages = target;
	b->actual_pages = actual;
	balloon_fill_config(b);
	b->stats_time_ms = now_ns() / 1000000;
	b->stats_time_ms = age < b->stats_time_ms ? b->stats_time_ms - age : 0;
	/* The held buffer's descriptors are still ours in guest memory: its head
	 * is all we need to hand it back later. */
	b->stats_held = held && stats_queue_live(vd) && head < vd->vqs[VIRTIO_BALLOON_STATSQ].size;
	b->stats_head = b->stats_held ? head : 0;
	stats_timer_update(b);
	return 0;
}

static void balloon_destroy(struct virtio_dev *vd)
{
	struct virtio_balloon *b = to_balloon(vd);

	virtio_dev_fini(vd); /* the loop goes first: the timer fd is on it */
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	free(b);
}

static const struct virtio_dev_ops balloon_ops = {
	.type = "virtio-balloon",
	.sandbox = SB_BALLOON,
	.device_id = VIRTIO_ID_BALLOON,
	.activate = balloon_activate,
	.reset = balloon_reset,
	.queue_notify = balloon_queue_notify,
	.config_write = balloon_config_write,
	.save = balloon_save,
	.load = balloon_load,
	.destroy = balloon_destroy,
};

/* ---- public ------------------------------------------------------------------ */

struct virtio_dev *virtio_balloon_create(const struct guest_mem *mem, unsigned index)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));
	char name[32];

	snprintf(name, sizeof(name), "virtio-balloon%u", index);
	if (!b) {
		log_error("%s: out of memory", name);
		return NULL;
	}
	b->timer_fd = -1;
	if (virtio_dev_init(&b->vd, &balloon_ops, name, mem, BALLOON_NUM_QUEUES, BALLOON_QUEUE_SIZE) < 0) {
		free(b);
		return NULL;
	}
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->timer_fd < 0 || loop_add(b->vd.loop, b->timer_fd, EPOLLIN, stats_timer_fired, b) < 0) {
		log_error("%s: cannot set up the stats timer: %s; raise the open file limit", name,
			  strerror(errno));
		balloon_destroy(&b->vd);
		return NULL;
	}
	b->vd.host_features = 1ULL << VIRTIO_BALLOON_F_STATS_VQ | 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	b->vd.config_size = BALLOON_CONFIG_SIZE;
	b->interval_ms = VIRTIO_BALLOON_STATS_INTERVAL_MS;
	balloon_fill_config(b);
	return &b->vd;
}

int virtio_balloon_set_target(struct virtio_dev *vd, uint64_t target_bytes)
{
	struct virtio_balloon *b = to_balloon(vd);
	uint64_t pages;

	if (target_bytes == 0 || target_bytes > vd->mem->total)
		return -1;
	pages = (vd->mem->total - target_bytes) / VIRTIO_BALLOON_PAGE_SIZE;
	if (pages > UINT32_MAX)
		pages = UINT32_MAX; /* le32 field: 16 TiB of balloon at most */
	pthread_mutex_lock(&vd->lock);
	b->target_pages = (uint32_t)pages;
	balloon_fill_config(b);
	/* A driver not yet running reads num_pages when it starts. */
	if (vd->activated)
		virtio_notify_config(vd);
	pthread_mutex_unlock(&vd->lock);
	return 0;
}

void virtio_balloon_info(struct virtio_dev *vd, struct balloon_info *out)
{
	struct virtio_balloon *b = to_balloon(vd);

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&vd->lock);
	out->target_pages = b->target_pages;
	/* 'actual' is the driver's word: a balloon larger than RAM is RAM (`info` reports RAM minus
	 * it). The config keeps what the driver wrote. */
	out->actual_pages = b->actual_pages;
	if (out->actual_pages > vd->mem->total / VIRTIO_BALLOON_PAGE_SIZE)
		out->actual_pages = vd->mem->total / VIRTIO_BALLOON_PAGE_SIZE;
	out->inflated_pages = b->inflated > b->deflated ? b->inflated - b->deflated : 0;
	out->stats_valid = b->stats_valid;
	if (b->stats_valid) {
		uint64_t now = now_ns() / 1000000;

		memcpy(out->stats, b->stats, sizeof(out->stats));
		out->stats_age_ms = now > b->stats_time_ms ? now - b->stats_time_ms : 0;
	}
	out->invalid_pfns = b->invalid_pfns;
	pthread_mutex_unlock(&vd->lock);
}

int virtio_balloon_set_stats_interval(struct virtio_dev *vd, unsigned ms)
{
	struct virtio_balloon *b = to_balloon(vd);
	int r;

	pthread_mutex_lock(&vd->lock);
	b->interval_ms = ms;
	r = stats_timer_update(b);
	pthread_mutex_unlock(&vd->lock);
	return r;
}

bool virtio_balloon_request_stats(struct virtio_dev *vd)
{
	bool r;

	pthread_mutex_lock(&vd->lock);
	r = stats_give_back(to_balloon(vd));
	pthread_mutex_unlock(&vd->lock);
	return r;
}

static void *type_create(struct vm *vm, const void *cfg, unsigned index)
{
	/* Locked RAM cannot be dropped, and huge pages only whole: the balloon's 4 KiB pages
	 * could never go back to the host. */
	if (vm->cfg && (vm->cfg->tuning.mlock || vm->cfg->tuning.hugepages)) {
		log_error(
			"--balloon: guest RAM under --%s cannot be given back to the host; drop --balloon or --%s",
			vm->cfg->tuning.mlock ? "mlock" : "hugepages",
			vm->cfg->tuning.mlock ? "mlock" : "hugepages");
		return NULL;
	}
	return virtio_plug(vm, virtio_balloon_create(&vm->mem, index));
}

const struct device_type virtio_balloon_type = {
	.name = "virtio-balloon",
	.option = "balloon",
	.help = "virtio-balloon (kvmbox ctl SOCKET balloon SIZE)",
	.max = 1,
	.create = type_create,
};
