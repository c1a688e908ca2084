#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"

struct loop_watch {
	int fd;
	loop_fn fn;
	void *opaque;
	struct loop_watch *next;
};

struct loop {
	int epfd;
	bool quit;
	struct loop_watch *watches;
};

struct loop *loop_create(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		log_error("epoll_create1: %s; raise the open file limit", strerror(errno));
		free(l);
		return NULL;
	}
	return l;
}

void loop_destroy(struct loop *l)
{
	struct loop_watch *w, *n;

	if (!l)
		return;
	for (w = l->watches; w; w = n) {
		n = w->next;
		free(w);
	}
	close(l->epfd);
	free(l);
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	struct loop_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events };

	if (!w)
		return -1;
	w->fd = fd;
	w->fn = fn;
	w->opaque = opaque;
	ev.data.ptr = w;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;

		free(w);
		errno = e; /* EPERM: a regular file; the caller decides */
		return -1;
	}
	w->next = l->watches;
	l->watches = w;
	return 0;
}

static struct loop_watch *find(struct loop *l, int fd, struct loop_watch ***link)
{
	struct loop_watch **pp;

	for (pp = &l->watches; *pp; pp = &(*pp)->next) {
		if ((*pp)->fd == fd) {
			if (link)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	struct loop_watch *w = find(l, fd, NULL);
	struct epoll_event ev = { .events = events };

	if (!w)
		return -1;
	ev.data.ptr = w;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

int loop_del(struct loop *l, int fd)
{
	struct loop_watch **link, *w = find(l, fd, &link);

	if (!w)
		return -1;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	*link = w->next;
	/* Events for w may still be in the current batch: loop_run checks. */
	free(w);
	return 0;
}

static bool still_watched(struct loop *l, struct loop_watch *w)
{
	for (struct loop_watch *p = l->watches; p; p = p->next)
		if (p == w)
			return true;
	return false;
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[16];

	l->quit = false;
	while (!l->quit) {
		int n = epoll_wait(l->epfd, evs, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n && !l->quit; i++) {
			struct loop_watch *w = evs[i].data.ptr;

			if (still_watched(l, w))
				w->fn(l, w->fd, evs[i].events, w->opaque);
		}
	}
	return 0;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(l->epfd, evs, 16, timeout_ms), ran = 0;

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;

		if (still_watched(l, w)) {
			w->fn(l, w->fd, evs[i].events, w->opaque);
			ran++;
		}
	}
	return ran;
}

void loop_quit(struct loop *l)
{
	l->quit = true;
}

struct loop_timer {
	struct loop *loop;
	int fd;
	loop_timer_fn fn;
	void *opaque;
};

static void timer_expired(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct loop_timer *t = opaque;
	uint64_t n;

	(void)l;
	(void)events;
	/* Empties the expiry count; EAGAIN when another thread re-armed it meanwhile. The owner
	 * looks at its own clock, so a spurious call is harmless. */
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("timerfd read: %s", strerror(errno));
	t->fn(t->opaque);
}

struct loop_timer *loop_timer_new(struct loop *l, int clock, loop_timer_fn fn, void *opaque)
{
	struct loop_timer *t = calloc(1, sizeof(*t));
	int e;

	if (!t)
		return NULL;
	t->loop = l;
	t->fn = fn;
	t->opaque = opaque;
	t->fd = timerfd_create(clock, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->fd >= 0 && loop_add(l, t->fd, EPOLLIN, timer_expired, t) == 0)
		return t;
	e = errno;
	if (t->fd >= 0)
		close(t->fd);
	free(t);
	errno = e;
	return NULL;
}

int loop_timer_set(struct loop_timer *t, const struct timespec *when)
{
	struct itimerspec its = { 0 };

	if (when) {
		its.it_value = *when;
		/* {0, 0} would disarm: the earliest time there is fires at once instead. */
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	return timerfd_settime(t->fd, when ? TFD_TIMER_ABSTIME : 0, &its, NULL);
}

void loop_timer_free(struct loop_timer *t)
{
	if (!t)
		return;
	loop_del(t->loop, t->fd);
	close(t->fd);
	free(t);
}
