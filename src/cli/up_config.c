/* up_config.c - the checks of a `kvmbox up` file across its VMs, its start order and the
 * restart back-off (up.h). Pure: unit-tested in tests/unit/test_up.c. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/devtype.h"
#include "../core/log.h"
#include "../virtio/blk.h"
#include "../virtio/net.h"
#include "up.h"

unsigned up_backoff_ms(unsigned n)
{
	unsigned ms = UP_BACKOFF_MIN;

	for (unsigned i = 1; i < n && ms < UP_BACKOFF_MAX; i++)
		ms *= 2;
	return ms < UP_BACKOFF_MAX ? ms : UP_BACKOFF_MAX;
}

/* Kahn's algorithm, taking the first ready VM in file order each time. */
bool up_name_valid(const char *name, size_t len)
{
	if (!name || !len || len > UP_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", name[i]) ||
		    !name[i])
			return false;
	return true;
}

int up_order(struct up_config *uc)
{
	bool placed[UP_MAX_VMS] = { false };
	unsigned n = 0;

	while (n < uc->nr_vms) {
		unsigned v, a;

		for (v = 0; v < uc->nr_vms; v++) {
			if (placed[v])
				continue;
			for (a = 0; a < uc->vms[v].nr_after && placed[uc->vms[v].after[a]]; a++)
				;
			if (a == uc->vms[v].nr_after)
				break;
		}
		if (v == uc->nr_vms)
			break;
		placed[v] = true;
		uc->order[n++] = v;
	}
	if (n < uc->nr_vms) {
		/* Every VM left waits for another one left: walk the first one's waits until a VM
		 * comes back, and name that loop. */
		unsigned seen[UP_MAX_VMS + 1], len = 0, v = 0, first;
		char chain[UP_MAX_VMS * (UP_NAME_MAX + 4)] = "";

		while (placed[v])
			v++;
		for (;;) {
			unsigned a = 0, k;

			for (k = 0; k < len && seen[k] != v; k++)
				;
			if (k < len) {
				first = k;
				break;
			}
			seen[len++] = v;
			while (placed[uc->vms[v].after[a]])
				a++;
			v = uc->vms[v].after[a];
		}
		for (unsigned k = first; k < len; k++) {
			strcat(chain, uc->vms[seen[k]].name);
			strcat(chain, " -> ");
		}
		strcat(chain, uc->vms[seen[first]].name);
		v = seen[first];
		for (unsigned a = 0; a < uc->vms[v].nr_after; a++) {
			if (uc->vms[v].after[a] != seen[first + 1 < len ? first + 1 : first])
				continue;
			log_error("%s:%u: after = %s: a cycle (%s, each after the next); remove one of "
				  "these after keys",
				  uc->path, uc->vms[v].after_line[a], uc->vms[uc->vms[v].after[a]].name,
				  chain);
			return -1;
		}
		log_error("%s:%u: a cycle of after keys (%s); remove one of them", uc->path, uc->vms[v].line,
			  chain);
		return -1;
	}
	return 0;
}

/* Do two disk paths name one file? The same inode when both exist, else the same string. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	return !strcmp(a, b);
}

/* The host CPUs a vcpu-affinity value dedicates to the VM's vCPUs. */
static void dedicated_cpus(const struct up_vm *vm, cpu_set_t *set)
{
	int max = vm->cfg.tuning.vcpu_affinity[0] ? vcpu_affinity_max_vcpu(vm->cfg.tuning.vcpu_affinity) : -1;

	CPU_ZERO(set);
	for (int id = 0; id <= max; id++) {
		cpu_set_t one;

		if (vcpu_affinity_get(vm->cfg.tuning.vcpu_affinity, (unsigned)id, &one) == 1)
			CPU_OR(set, set, &one);
	}
}

/* VM v's disks and taps against those of the VMs before it. */
static int check_devices(const struct up_config *uc, unsigned v)
{
	const struct up_vm *vm = &uc->vms[v];

	for (unsigned i = 0; i < vm->cfg.nr_devs; i++) {
		const struct dev_config *d = &vm->cfg.devs[i];

		for (unsigned w = 0; w < v; w++) {
			const struct up_vm *o = &uc->vms[w];

			for (unsigned j = 0; j < o->cfg.nr_devs; j++) {
				const struct dev_config *e = &o->cfg.devs[j];

				if (d->type != e->type)
					continue;
				if (d->type == &virtio_blk_type) {
					const struct disk_config *x = d->cfg, *y = e->cfg;

					if ((x->readonly && y->readonly) || !same_file(x->path, y->path))
						continue;
					log_error(
						"%s:%u: disk %s is also [vm %s]'s (line %u), writable in one of "
						"them; give each VM its own image, or ,ro in both",
						uc->path, vm->dev_line[i], x->path, o->name, o->dev_line[j]);
					return -1;
				}
				if (d->type == &virtio_net_type) {
					const struct net_config *x = d->cfg, *y = e->cfg;

					if (x->backend != NET_BACKEND_TAP || y->backend != NET_BACKEND_TAP) {
						/* Two cards on one link: one MAC each (a link is one layer-2
						 * segment; a switch cannot tell two equal ones apart). */
						if (!x->mac_set || !y->mac_set || strcmp(x->path, y->path) ||
						    memcmp(x->mac, y->mac, sizeof(x->mac)))
							continue;
						log_error(
							"%s:%u: mac %02x:%02x:%02x:%02x:%02x:%02x on %s is also "
							"[vm %s]'s (line %u); give each card on a link its own mac=",
							uc->path, vm->dev_line[i], x->mac[0], x->mac[1],
							x->mac[2], x->mac[3], x->mac[4], x->mac[5], x->path,
							o->name, o->dev_line[j]);
						return -1;
					}
					if (strcmp(x->tap, y->tap))
						continue;
					log_error(
						"%s:%u: tap %s is also [vm %s]'s (line %u); give each VM its own "
						"tap",
						uc->path, vm->dev_line[i], x->tap, o->name, o->dev_line[j]);
					return -1;
				}
			}
		}
	}
	return 0;
}

int up_check_conflicts(const struct up_config *uc)
{
	cpu_set_t cpus[UP_MAX_VMS];

	for (unsigned v = 0; v < uc->nr_vms; v++) {
		const struct up_vm *vm = &uc->vms[v];

		if (check_devices(uc, v) < 0)
			return -1;
		dedicated_cpus(vm, &cpus[v]);
		for (unsigned w = 0; w < v && CPU_COUNT(&cpus[v]); w++) {
			cpu_set_t both;
			char list[128];

			CPU_AND(&both, &cpus[v], &cpus[w]);
			if (!CPU_COUNT(&both))
				continue;
			log_error(
				"%s:%u: vcpu-affinity dedicates host CPUs %s that [vm %s] has too (line %u); "
				"give each VM its own CPUs",
				uc->path, vm->affinity_line, cpulist_format(&both, list, sizeof(list)),
				uc->vms[w].name, uc->vms[w].affinity_line);
			return -1;
		}
		for (unsigned w = 0; w < v; w++) {
			if (strcmp(vm->console_log, uc->vms[w].console_log))
				continue;
			log_error("%s:%u: console-log %s is also [vm %s]'s; give each VM its own file",
				  uc->path, vm->line, vm->console_log, uc->vms[w].name);
			return -1;
		}
	}
	return 0;
}

int up_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	uint64_t n = 0;
	const char *p = s;

	if (!strcmp(s, "0")) {
		*ms = 0;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit))
			continue;
		if (n > UINT64_MAX / units[i].ms)
			return -1;
		*ms = n * units[i].ms;
		return 0;
	}
	return -1;
}

const char *up_restore_from(const struct up_vm *vm, bool policy, bool have_snapshot, bool restore_failed)
{
	if (vm->restart_from != UP_FROM_SNAPSHOT || !policy || !have_snapshot || restore_failed)
		return NULL;
	return vm->snapshot_path;
}

unsigned up_command(const struct up_vm *vm, const char *argv0, const char *api_arg, const char *snapshot,
		    const char **argv)
{
	unsigned n = 0;

	argv[n++] = argv0;
	argv[n++] = snapshot ? "restore" : "run";
	if (snapshot)
		argv[n++] = snapshot;
	for (unsigned i = 0; i < vm->argc; i++)
		argv[n++] = vm->argv[i];
	argv[n++] = api_arg;
	argv[n] = NULL;
	return n;
}
