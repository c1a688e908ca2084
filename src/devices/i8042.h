/* i8042.h - PS/2 controller (8042), enough for probing and the reset line.
 *
 * Data port X86_I8042_DATA (0x60), command/status X86_I8042_CMD (0x64). No
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

/* Create the controller on pio. NULL with an error logged if the ports are
 * taken or memory runs out. */
struct device *i8042_create(const char *name, struct bus *pio, struct irq_line kbd_irq,
			    struct machine_ctl ctl);

#endif
