#include "config.h"

#include <stdlib.h>

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

void vm_config_free_devices(struct vm_config *c)
{
	for (unsigned i = 0; i < c->nr_devs; i++) {
		if (c->devs[i].type->free)
			c->devs[i].type->free(c->devs[i].cfg);
		free(c->devs[i].cfg);
	}
	c->nr_devs = 0;
}
