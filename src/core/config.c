#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cli/options.h"
#include "devtype.h"
#include "log.h"

unsigned vm_config_count(const struct vm_config *c, const struct device_type *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nr_devs; i++)
		n += c->devs[i].type == t;
	return n;
}

int vm_config_add(struct vm_config *c, const struct device_type *t, const char *arg)
{
	unsigned have = vm_config_count(c, t);
	void *cfg = NULL;

	if (!t->arg && have)
		return 0; /* a flag given twice */
	if (have >= t->max || c->nr_devs >= MAX_DEVICES) {
		log_error("--%s: at most %u; give fewer --%s options", t->option,
			  have >= t->max ? t->max : MAX_DEVICES, t->option);
		return -1;
	}
	if (t->config_size) {
		cfg = calloc(1, t->config_size);
		if (!cfg) {
			log_error("--%s: out of memory", t->option);
			return -1;
		}
	}
	if (t->parse && t->parse(cfg, arg ? arg : "") < 0) {
		if (t->free)
			t->free(cfg);
		free(cfg);
		return -1;
	}
	c->devs[c->nr_devs++] = (struct dev_config){ .type = t, .cfg = cfg };
	return 0;
}

static void dev_config_free(struct dev_config *d)
{
	if (d->type->free)
		d->type->free(d->cfg);
	free(d->cfg);
}

void vm_config_remove(struct vm_config *c, const struct device_type *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nr_devs; i++) {
		if (c->devs[i].type == t)
			dev_config_free(&c->devs[i]);
		else
			c->devs[n++] = c->devs[i];
	}
	c->nr_devs = n;
}

const char *vm_config_strdup(struct vm_config *c, const char *s)
{
	size_t len = strlen(s) + 1;
	struct config_string *cs = malloc(sizeof(*cs) + len);

	if (!cs)
		return NULL;
	memcpy(cs->s, s, len);
	cs->next = c->strings;
	c->strings = cs;
	return cs->s;
}

void vm_config_free_devices(struct vm_config *c)
{
	for (unsigned i = 0; i < c->nr_devs; i++)
		dev_config_free(&c->devs[i]);
	c->nr_devs = 0;
	while (c->strings) {
		struct config_string *next = c->strings->next;

		free(c->strings);
		c->strings = next;
	}
}

int vm_config_match(const struct vm_config *saved, const struct vm_config *local, const char *who, char *msg,
		    size_t len)
{
	char a[32], b[32];

	if (saved->memory != local->memory || saved->cpus != local->cpus) {
		snprintf(msg, len,
			 "%s has %s of RAM and %u vCPUs, this command line %s and %u; start with --memory %s "
			 "--cpus %u",
			 who, format_size(saved->memory, a, sizeof(a)), saved->cpus,
			 format_size(local->memory, b, sizeof(b)), local->cpus, a, saved->cpus);
		return -1;
	}
	/* serial and none differ only on this host; a virtio console is a device of the guest. */
	if ((saved->console == CONSOLE_VIRTIO) != (local->console == CONSOLE_VIRTIO)) {
		snprintf(msg, len, "%s has %s, this command line %s; start with %s", who,
			 saved->console == CONSOLE_VIRTIO ? "a virtio console" : "no virtio console",
			 local->console == CONSOLE_VIRTIO ? "one" : "none",
			 saved->console == CONSOLE_VIRTIO ? "--console virtio" : "--console serial or none");
		return -1;
	}
	for (unsigned i = 0; i < saved->nr_devs || i < local->nr_devs; i++) {
		const struct device_type *st = i < saved->nr_devs ? saved->devs[i].type : NULL;
		const struct device_type *lt = i < local->nr_devs ? local->devs[i].type : NULL;
		unsigned index = 0;

		if (!lt) {
			snprintf(msg, len,
				 "%s has %u devices, this command line %u: the next one is a --%s; give its "
				 "--%s option after the others",
				 who, saved->nr_devs, local->nr_devs, st->option, st->option);
			return -1;
		}
		if (!st) {
			snprintf(msg, len,
				 "%s has %u devices, this command line %u: it has no device like the --%s "
				 "here; remove that --%s",
				 who, saved->nr_devs, local->nr_devs, lt->option, lt->option);
			return -1;
		}
		if (st != lt) {
			snprintf(msg, len,
				 "%s has a --%s as device %u, this command line a --%s; give the device "
				 "options in the same order",
				 who, st->option, i, lt->option);
			return -1;
		}
		for (unsigned j = 0; j < i; j++)
			index += saved->devs[j].type == st;
		if (st->match && st->match(saved->devs[i].cfg, local->devs[i].cfg, index, who, msg, len) < 0)
			return -1;
	}
	return 0;
}
