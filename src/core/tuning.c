/* tuning.c - CPU placement, real-time vCPUs, locked and huge-page RAM (see tuning.h). */
#include "tuning.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define HUGETLBFS_MAGIC_ 0x958458f6
#define HUGE_2M          (2ULL << 20)

/* Thread stacks: every thread kvmbox makes gets this much, so that --mlock locks a known,
 * small amount (glibc's default is RLIMIT_STACK, 8 MiB, all of it locked and resident under
 * mlockall). No kvmbox function needs more than a few KiB; the sanitizers need more. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define THREAD_STACK (8u << 20)
#else
#define THREAD_STACK (256u << 10)
#endif
/* What kvmbox itself may lock besides guest RAM, for the RLIMIT_MEMLOCK estimate: the
 * program and its heap as mapped when the check runs, one stack per thread (vCPUs, virtio
 * workers, signals, migration), kvm_run pages, io_uring rings, buffers. */
#define OWN_LOCK_MARGIN (16ULL << 20)

/* A byte count for a message: "64 KiB", "8 MiB", "2 GiB" (rounded up to the unit). */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	v = (v + 1023) >> 10;
	while (u < 3 && v >= 1024) {
		v = (v + 1023) >> 10;
		u++;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)v, unit[u]);
	return buf;
}

/* ---- CPU lists ---------------------------------------------------------------------------- */

/* One "N" or "N-M" at *p (advanced past it) into set. */
static int cpu_range(const char **p, cpu_set_t *set)
{
	unsigned long a, b;
	char *end;

	if (!isdigit((unsigned char)**p))
		return -1;
	a = strtoul(*p, &end, 10);
	b = a;
	if (*end == '-') {
		if (!isdigit((unsigned char)end[1]))
			return -1;
		b = strtoul(end + 1, &end, 10);
	}
	if (a > b || b >= CPU_SETSIZE)
		return -1;
	for (unsigned long c = a; c <= b; c++)
		CPU_SET(c, set);
	*p = end;
	return 0;
}

int cpulist_parse(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	if (!s || !*s)
		return -1;
	for (;;) {
		if (cpu_range(&s, set) < 0)
			return -1;
		if (!*s)
			return 0;
		if (*s++ != ',')
			return -1;
	}
}

const char *cpulist_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE && n < len; c++) {
		int e = c;

		if (!CPU_ISSET(c, set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		n += (size_t)snprintf(buf + n, len - n, e > c ? "%s%d-%d" : "%s%d", n ? "," : "", c, e);
		c = e;
	}
	if (n >= len && len > 4)
		strcpy(buf + len - 4, "...");
	return buf;
}

/* Walk a --vcpu-affinity value: calls fn for each (vCPU, CPU range) piece. -1 when it is
 * malformed. */
static int vcpu_affinity_walk(const char *s, void (*fn)(void *ctx, unsigned vcpu, const cpu_set_t *cpus),
			      void *ctx)
{
	long vcpu = -1;

	if (!s || !*s)
		return -1;
	while (*s) {
		cpu_set_t one;
		const char *eq = s;

		while (isdigit((unsigned char)*eq))
			eq++;
		if (*eq == '=') { /* "VCPU=" starts a new vCPU's list */
			char *end;
			unsigned long v;

			if (eq == s)
				return -1;
			v = strtoul(s, &end, 10);
			if (end != eq || v > 4095)
				return -1;
			vcpu = (long)v;
			s = eq + 1;
		} else if (vcpu < 0) {
			return -1; /* a CPU before any "VCPU=" */
		}
		CPU_ZERO(&one);
		if (cpu_range(&s, &one) < 0)
			return -1;
		if (fn)
			fn(ctx, (unsigned)vcpu, &one);
		if (*s == ',' && s[1])
			s++;
		else if (*s)
			return -1;
	}
	return 0;
}

struct affinity_get {
	unsigned id;
	cpu_set_t *set;
	bool found;
	int max;
};

static void affinity_collect(void *ctx, unsigned vcpu, const cpu_set_t *cpus)
{
	struct affinity_get *g = ctx;

	if ((int)vcpu > g->max)
		g->max = (int)vcpu;
	if (vcpu == g->id) {
		CPU_OR(g->set, g->set, cpus);
		g->found = true;
	}
}

int vcpu_affinity_get(const char *spec, unsigned id, cpu_set_t *set)
{
	struct affinity_get g = { .id = id, .set = set, .max = -1 };

	CPU_ZERO(set);
	if (vcpu_affinity_walk(spec, affinity_collect, &g) < 0)
		return -1;
	return g.found ? 1 : 0;
}

int vcpu_affinity_max_vcpu(const char *spec)
{
	cpu_set_t unused;
	struct affinity_get g = { .id = UINT_MAX, .set = &unused, .max = -1 };

	if (vcpu_affinity_walk(spec, affinity_collect, &g) < 0)
		return -1;
	return g.max;
}

/* ---- options ------------------------------------------------------------------------------ */

/* "on", "off" or nothing (on) for a flag that may be turned off again. */
static int on_off(const char *name, const char *value, bool *out)
{
	if (!value || !strcmp(value, "on") || !*value)
		*out = true;
	else if (!strcmp(value, "off"))
		*out = false;
	else {
		log_error("--%s=%s: give --%s (or --%s=on) or --%s=off", name, value, name, name, name);
		return -1;
	}
	return 0;
}

static int set_string(char *dst, size_t cap, const char *name, const char *value)
{
	if (strlen(value) >= cap) {
		log_error("--%s: the value is longer than %zu characters; give a shorter one", name, cap - 1);
		return -1;
	}
	strcpy(dst, value);
	return 0;
}

int vm_tuning_set(struct vm_tuning *t, const char *name, const char *value)
{
	cpu_set_t set;

	if (!strcmp(name, "vcpu-affinity")) {
		if (!value || (strcmp(value, "none") && vcpu_affinity_walk(value, NULL, NULL) < 0)) {
			log_error(
				"--vcpu-affinity '%s': not VCPU=CPUS[,VCPU=CPUS...]; give e.g. 0=2,1=3 or 0=2-3,1=4,6 "
				"(or none)",
				value ? value : "");
			return -1;
		}
		if (set_string(t->vcpu_affinity, sizeof(t->vcpu_affinity), name,
			       strcmp(value, "none") ? value : "") < 0)
			return -1;
		t->given |= TUNE_VCPU_AFFINITY;
	} else if (!strcmp(name, "io-affinity")) {
		if (!value || (strcmp(value, "none") && cpulist_parse(value, &set) < 0)) {
			log_error("--io-affinity '%s': not a host CPU list; give e.g. 0 or 0-1,4 (or none)",
				  value ? value : "");
			return -1;
		}
		if (set_string(t->io_affinity, sizeof(t->io_affinity), name,
			       strcmp(value, "none") ? value : "") < 0)
			return -1;
		t->given |= TUNE_IO_AFFINITY;
	} else if (!strcmp(name, "rt-priority")) {
		char *end;
		unsigned long v = value && isdigit((unsigned char)*value) ? strtoul(value, &end, 10) : 100;

		if (v > 99 || (value && *end)) {
			log_error(
				"--rt-priority '%s': not a SCHED_FIFO priority; give 1 to 99 (0: no real-time vCPUs)",
				value ? value : "");
			return -1;
		}
		t->rt_priority = (unsigned)v;
		t->given |= TUNE_RT_PRIORITY;
	} else if (!strcmp(name, "mlock")) {
		if (on_off(name, value, &t->mlock) < 0)
			return -1;
		t->given |= TUNE_MLOCK;
	} else if (!strcmp(name, "prealloc")) {
		if (on_off(name, value, &t->prealloc) < 0)
			return -1;
		t->given |= TUNE_PREALLOC;
	} else if (!strcmp(name, "hugepages")) {
		t->hugepage_dir[0] = '\0';
		if (!value || !*value || !strcmp(value, "on")) {
			t->hugepages = true;
		} else if (!strcmp(value, "off")) {
			t->hugepages = false;
		} else if (value[0] == '/') {
			if (set_string(t->hugepage_dir, sizeof(t->hugepage_dir), name, value) < 0)
				return -1;
			t->hugepages = true;
		} else {
			log_error(
				"--hugepages=%s: give --hugepages (MAP_HUGETLB), --hugepages=/PATH (a hugetlbfs "
				"directory) or --hugepages=off",
				value);
			return -1;
		}
		t->given |= TUNE_HUGEPAGES;
	} else {
		log_error("run: unknown option --%s; see kvmbox run --help", name);
		return -1;
	}
	return 0;
}

/* ---- snapshot and migration record ---------------------------------------------------------- */

#define TUNING_RECORD_VERSION 1

void vm_tuning_save(const struct vm_tuning *t, struct ser_writer *w)
{
	ser_put_u8(w, TUNING_RECORD_VERSION);
	ser_put_str(w, t->vcpu_affinity);
	ser_put_str(w, t->io_affinity);
	ser_put_u8(w, (uint8_t)t->rt_priority);
	ser_put_u8(w, (uint8_t)(t->mlock | t->hugepages << 1 | t->prealloc << 2));
	ser_put_str(w, t->hugepage_dir);
}

/* A saved string into dst ("" for none); the same checks as the command line's. */
static int load_string(struct ser_reader *r, char *dst, size_t cap)
{
	char *s = ser_get_str(r, cap - 1);

	if (r->err)
		return -1;
	strcpy(dst, s ? s : "");
	free(s);
	return 0;
}

int vm_tuning_load(struct vm_tuning *t, struct ser_reader *r)
{
	cpu_set_t set;
	uint8_t flags;

	memset(t, 0, sizeof(*t));
	if (ser_get_u8(r) != TUNING_RECORD_VERSION)
		return -1;
	if (load_string(r, t->vcpu_affinity, sizeof(t->vcpu_affinity)) < 0 ||
	    load_string(r, t->io_affinity, sizeof(t->io_affinity)) < 0)
		return -1;
	t->rt_priority = ser_get_u8(r);
	flags = ser_get_u8(r);
	if (load_string(r, t->hugepage_dir, sizeof(t->hugepage_dir)) < 0 || r->err)
		return -1;
	t->mlock = flags & 1;
	t->hugepages = flags & 2;
	t->prealloc = flags & 4;
	if (t->rt_priority > 99 || flags > 7 || (t->hugepage_dir[0] && t->hugepage_dir[0] != '/') ||
	    (t->vcpu_affinity[0] && vcpu_affinity_walk(t->vcpu_affinity, NULL, NULL) < 0) ||
	    (t->io_affinity[0] && cpulist_parse(t->io_affinity, &set) < 0))
		return -1;
	return 0;
}

/* ---- host checks -------------------------------------------------------------------------- */

/* Is CAP_IPC_LOCK in our effective set (mlock beyond RLIMIT_MEMLOCK)? */
static bool have_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[cap / 32].effective & (1u << (cap % 32));
}

/* Bytes of kvmbox's mappings now (VmSize), 0 when unknown. */
static uint64_t own_vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmSize:", 7)) {
			kb = strtoull(line + 7, NULL, 10);
			break;
		}
	fclose(f);
	return (uint64_t)kb << 10;
}

static int check_memlock(const struct vm_config *cfg)
{
	struct rlimit rl;
	uint64_t own, need, have;
	char a[32], b[32], c[32], d[32], e[32];

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || have_cap(CAP_IPC_LOCK))
		return 0;
	own = own_vm_size() + OWN_LOCK_MARGIN + (uint64_t)(cfg->cpus + 8) * THREAD_STACK;
	own = (own + (1 << 20) - 1) & ~((1ULL << 20) - 1);
	need = cfg->memory + own;
	have = rl.rlim_cur;
	if (have >= need)
		return 0;
	log_error(
		"--mlock: RLIMIT_MEMLOCK is %s, the VM needs about %s locked (%s of guest RAM, %s for kvmbox): raise "
		"it by %s (ulimit -l %llu; LimitMEMLOCK= in a systemd unit; memlock in /etc/security/limits.conf) "
		"or give kvmbox CAP_IPC_LOCK",
		human(have, a, sizeof(a)), human(need, b, sizeof(b)), human(cfg->memory, c, sizeof(c)),
		human(own, d, sizeof(d)), human(need - have, e, sizeof(e)), (unsigned long long)(need >> 10));
	return -1;
}

/* Huge pages of size sz the host has free and not promised to a mapping yet (and in *total,
 * how many it has); -1 unknown. */
static long free_huge_pages(uint64_t sz, long *total)
{
	char path[96];
	long v[3] = { -1, -1, -1 };
	const char *names[3] = { "free_hugepages", "resv_hugepages", "nr_hugepages" };

	for (int i = 0; i < 3; i++) {
		FILE *f;
		char num[32], *end;

		snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/%s",
			 (unsigned long long)(sz >> 10), names[i]);
		f = fopen(path, "re");
		if (!f)
			return -1;
		if (fgets(num, sizeof(num), f)) {
			errno = 0;
			v[i] = strtol(num, &end, 10);
			if (end == num || errno || (*end && *end != '\n'))
				v[i] = -1;
		}
		fclose(f);
		if (v[i] < 0)
			return -1;
	}
	*total = v[2];
	return v[0] > v[1] ? v[0] - v[1] : 0;
}

uint64_t vm_tuning_huge_page_size(const struct vm_tuning *t)
{
	struct statfs fs;

	if (!t->hugepages)
		return 0;
	if (!t->hugepage_dir[0])
		return HUGE_2M;
	if (statfs(t->hugepage_dir, &fs) < 0) {
		log_error(
			"--hugepages=%s: %s; give the directory where hugetlbfs is mounted (mount -t hugetlbfs "
			"none %s)",
			t->hugepage_dir, strerror(errno), t->hugepage_dir);
		return 0;
	}
	if ((unsigned long)fs.f_type != HUGETLBFS_MAGIC_) {
		log_error(
			"--hugepages=%s: not a hugetlbfs mount; mount one there (mount -t hugetlbfs none %s) or "
			"give --hugepages alone for MAP_HUGETLB",
			t->hugepage_dir, t->hugepage_dir);
		return 0;
	}
	return (uint64_t)fs.f_bsize;
}

static int check_hugepages(const struct vm_config *cfg)
{
	const struct vm_tuning *t = &cfg->tuning;
	uint64_t sz = vm_tuning_huge_page_size(t), need;
	char a[32], b[32];
	long have, total = 0;

	if (!sz)
		return -1;
	if (cfg->memory % sz) {
		log_error(
			"--hugepages: --memory %s is not a multiple of the %s huge page; give a multiple of %s",
			human(cfg->memory, a, sizeof(a)), human(sz, b, sizeof(b)), b);
		return -1;
	}
	need = cfg->memory / sz;
	have = free_huge_pages(sz, &total);
	if (have < 0) {
		log_error(
			"--hugepages: this host has no %s huge pages (no /sys/kernel/mm/hugepages/hugepages-%llukB); "
			"use a kernel with CONFIG_HUGETLBFS and reserve some",
			human(sz, a, sizeof(a)), (unsigned long long)(sz >> 10));
		return -1;
	}
	if ((uint64_t)have < need) {
		log_error(
			"--hugepages: the guest needs %llu huge pages of %s, the host has %ld free; reserve %llu more "
			"(echo %llu > /sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages, or hugepages= on its "
			"kernel command line)",
			(unsigned long long)need, human(sz, a, sizeof(a)), have,
			(unsigned long long)(need - (uint64_t)have),
			(unsigned long long)((uint64_t)total + need - (uint64_t)have),
			(unsigned long long)(sz >> 10));
		return -1;
	}
	return 0;
}

/* The CPUs this process may run on, as kvmbox started (before --io-affinity moved the main
 * thread). Set once by vm_tuning_apply_process, or read on first use. */
static cpu_set_t start_cpus;
static bool have_start_cpus;

static int allowed_cpus(cpu_set_t *set)
{
	if (have_start_cpus) {
		*set = start_cpus;
		return 0;
	}
	if (sched_getaffinity(0, sizeof(*set), set) < 0) {
		log_error("sched_getaffinity: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Every CPU of want must be one kvmbox may use. */
static int check_cpus(const char *opt, const char *value, const cpu_set_t *want, const cpu_set_t *allowed)
{
	cpu_set_t bad;
	char b[64], ok[64];

	CPU_AND(&bad, want, allowed);
	CPU_XOR(&bad, &bad, want); /* in want, not allowed */
	if (CPU_COUNT(&bad) == 0)
		return 0;
	log_error("--%s %s: host CPU %s is not available to kvmbox (it may use %s); give CPUs among those",
		  opt, value, cpulist_format(&bad, b, sizeof(b)), cpulist_format(allowed, ok, sizeof(ok)));
	return -1;
}

static void *rt_probe(void *arg)
{
	struct sched_param sp = { .sched_priority = (int)(uintptr_t)arg };

	/* This thread only: the caller keeps its policy. */
	return (void *)(uintptr_t)(pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp));
}

static int check_rt(unsigned prio)
{
	pthread_t th;
	void *ret = NULL;
	int err;

	err = pthread_create(&th, NULL, rt_probe, (void *)(uintptr_t)prio);
	if (err == 0) {
		pthread_join(th, &ret);
		err = (int)(uintptr_t)ret;
	}
	if (err == 0)
		return 0;
	log_error(
		"--rt-priority %u: SCHED_FIFO is not permitted here (%s); run kvmbox as root or with CAP_SYS_NICE, "
		"or raise RLIMIT_RTPRIO (ulimit -r %u; LimitRTPRIO= in a systemd unit), and give its cgroup a real-time "
		"budget if RT group scheduling is on",
		prio, strerror(err), prio);
	return -1;
}

int vm_tuning_check(const struct vm_config *cfg)
{
	const struct vm_tuning *t = &cfg->tuning;
	cpu_set_t allowed, want;

	if (t->vcpu_affinity[0] || t->io_affinity[0]) {
		if (allowed_cpus(&allowed) < 0)
			return -1;
	}
	if (t->vcpu_affinity[0]) {
		int max = vcpu_affinity_max_vcpu(t->vcpu_affinity);

		if (max < 0) {
			log_error("--vcpu-affinity '%s': malformed; give e.g. 0=2,1=3", t->vcpu_affinity);
			return -1;
		}
		if ((unsigned)max >= cfg->cpus) {
			log_error(
				"--vcpu-affinity %s: names vCPU %d, but the VM's vCPUs are 0-%u (--cpus %u); name only "
				"those or give more --cpus",
				t->vcpu_affinity, max, cfg->cpus - 1, cfg->cpus);
			return -1;
		}
		for (unsigned i = 0; i <= (unsigned)max; i++)
			if (vcpu_affinity_get(t->vcpu_affinity, i, &want) > 0 &&
			    check_cpus("vcpu-affinity", t->vcpu_affinity, &want, &allowed) < 0)
				return -1;
	}
	if (t->io_affinity[0]) {
		if (cpulist_parse(t->io_affinity, &want) < 0) {
			log_error("--io-affinity '%s': malformed; give e.g. 0-1", t->io_affinity);
			return -1;
		}
		if (check_cpus("io-affinity", t->io_affinity, &want, &allowed) < 0)
			return -1;
	}
	if (t->rt_priority && check_rt(t->rt_priority) < 0)
		return -1;
	if (t->hugepages && check_hugepages(cfg) < 0)
		return -1;
	if (t->mlock && check_memlock(cfg) < 0)
		return -1;
	return 0;
}

/* ---- applying ------------------------------------------------------------------------------- */

int vm_tuning_apply_process(const struct vm_config *cfg)
{
	const struct vm_tuning *t = &cfg->tuning;
	pthread_attr_t attr;
	cpu_set_t set;

	if (!have_start_cpus && sched_getaffinity(0, sizeof(start_cpus), &start_cpus) == 0)
		have_start_cpus = true;
	/* Every thread made from here on (virtio workers, signals, migration) takes this stack
	 * size and, from this thread, the I/O CPUs and SCHED_OTHER; vCPU threads set their own. */
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setstacksize(&attr, THREAD_STACK);
		pthread_setattr_default_np(&attr);
		pthread_attr_destroy(&attr);
	}
	if (t->io_affinity[0]) {
		char b[64];

		if (cpulist_parse(t->io_affinity, &set) < 0 || sched_setaffinity(0, sizeof(set), &set) < 0) {
			log_error(
				"--io-affinity %s: cannot move kvmbox there: %s; give CPUs kvmbox may use (%s)",
				t->io_affinity, strerror(errno), cpulist_format(&start_cpus, b, sizeof(b)));
			return -1;
		}
	}
	if (t->rt_priority) {
		struct rlimit rl;

		/* The vCPU threads go SCHED_FIFO once every host resource is open, after the sandbox
		 * dropped CAP_SYS_NICE (core/sandbox.c keeps only what a running VM needs): what lets
		 * them then is RLIMIT_RTPRIO, raised here to the priority asked for while kvmbox may
		 * still raise it. When it cannot, a vCPU says so (check_rt passed with the
		 * privileges kvmbox had at start). */
		if (getrlimit(RLIMIT_RTPRIO, &rl) == 0 && rl.rlim_cur < t->rt_priority) {
			rl.rlim_cur = t->rt_priority;
			if (rl.rlim_max < rl.rlim_cur)
				rl.rlim_max = rl.rlim_cur;
			if (setrlimit(RLIMIT_RTPRIO, &rl) < 0)
				log_debug("--rt-priority: RLIMIT_RTPRIO stays below %u: %s", t->rt_priority,
					  strerror(errno));
		}
	}
	if (t->rt_priority) {
		struct sched_param sp = { .sched_priority = 0 };

		/* "The others stay SCHED_OTHER" even when kvmbox was started real-time (chrt). */
		pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	}
#ifdef __GLIBC__
	/* glibc gives threads malloc arenas that reserve 64 MiB each: under mlockall every
	 * reservation counts against RLIMIT_MEMLOCK. One arena is plenty for kvmbox. */
	if (t->mlock)
		mallopt(M_ARENA_MAX, 1);
#endif
	if (t->mlock && mlockall(MCL_CURRENT | MCL_FUTURE) < 0) {
		log_error(
			"--mlock: mlockall failed: %s; raise RLIMIT_MEMLOCK (ulimit -l) or give kvmbox CAP_IPC_LOCK",
			strerror(errno));
		return -1;
	}
	return 0;
}

int vm_tuning_apply_vcpu(const struct vm_config *cfg, unsigned id)
{
	const struct vm_tuning *t;
	cpu_set_t set;
	int err;

	if (!cfg)
		return 0;
	t = &cfg->tuning;
	if (t->vcpu_affinity[0] && vcpu_affinity_get(t->vcpu_affinity, id, &set) > 0) {
		/* pinned */
	} else if (t->io_affinity[0] && have_start_cpus) {
		set = start_cpus; /* not the I/O CPUs this thread inherited */
	} else {
		goto sched;
	}
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err) {
		log_error("vCPU %u: cannot set its CPU affinity: %s; check --vcpu-affinity", id,
			  strerror(err));
		return -1;
	}
sched:
	if (t->rt_priority) {
		struct sched_param sp = { .sched_priority = (int)t->rt_priority };

		err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
		if (err) {
			log_error(
				"vCPU %u: cannot run SCHED_FIFO %u: %s; run kvmbox with CAP_SYS_NICE or a higher "
				"RLIMIT_RTPRIO",
				id, t->rt_priority, strerror(err));
			return -1;
		}
	}
	return 0;
}
