/* i8042.h - PS/2 controller (8042), enough for probing and the reset line.
 *
 * A data port and a command/status port (0x60 and 0x64 on x86). No
 * keyboard or mouse is attached: bytes sent to the devices get no answer.
 * The reset line (command 0xFE, or output port bit 0 cleared with 0xD1)
 * calls ctl.request(ctx, VM_REBOOT). kbd_irq is driven at the level of
 * "output buffer holds keyboard-side data and the command byte enables the
 * keyboard interrupt". */
#ifndef KVMBOX_DEVICES_I8042_H
#define KVMBOX_DEVICES_I8042_H

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

/* Create the controller decoding one byte at data_port and one at cmd_port
 * on bus. NULL with an error logged if the ports are taken or memory runs
 * out. */
struct device *i8042_create(const char *name, struct bus *bus, uint64_t data_port, uint64_t cmd_port,
			    struct irq_line kbd_irq, struct machine_ctl ctl);

#endif
