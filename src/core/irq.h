/* irq.h - how a device raises an interrupt line.
 *
 * Devices get a struct irq_line at creation and never talk to KVM directly,
 * so unit tests can pass a fake and see the line level. */
#ifndef KVMBOX_IRQ_H
#define KVMBOX_IRQ_H

#include <stdint.h>

struct irq_line {
	/* Set the level of `gsi` (1 asserted, 0 deasserted). */
	void (*set)(void *ctx, uint32_t gsi, int level);
	void *ctx;
	uint32_t gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l && l->set)
		l->set(l->ctx, l->gsi, level);
}

#endif
