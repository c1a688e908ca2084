/* acpi_pm.h - ACPI PM1a fixed hardware: event block, control, reset register.
 *
 *   X86_PM1A_EVT_PORT  PM1_STS (2 bytes, write 1 to clear), PM1_EN (2 bytes)
 *   X86_PM1A_CNT_PORT  PM1_CNT (2 bytes); SLP_EN with SLP_TYP == S5 powers off
 *   X86_PM_RESET_PORT  FADT RESET_REG (1 byte); X86_PM_RESET_VALUE reboots
 * The SCI line is held asserted while PM1_STS & PM1_EN is non-zero. */
#ifndef KVMBOX_DEVICES_ACPI_PM_H
#define KVMBOX_DEVICES_ACPI_PM_H

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

/* Create the PM block on pio. NULL with an error logged if the ports are
 * taken or memory runs out. */
struct device *acpi_pm_create(const char *name, struct bus *pio, struct irq_line sci, struct machine_ctl ctl);

/* Press the power button: set PWRBTN_STS; the SCI fires if the guest enabled
 * PWRBTN_EN. Safe from any thread. */
void acpi_pm_power_button(struct device *dev);

#endif
