/* acpi_pm.h - ACPI PM1a fixed hardware: event block, control, reset register.
 *
 *   evt    PM1_STS (2 bytes, write 1 to clear), PM1_EN (2 bytes)
 *   cnt    PM1_CNT (2 bytes); SLP_EN with SLP_TYP == s5_slp_typ powers off
 *   reset  FADT RESET_REG (1 byte); writing reset_value reboots
 * Where the blocks are and the two values are the architecture's (its FADT
 * and DSDT say the same). The SCI line is held asserted while
 * PM1_STS & PM1_EN is non-zero. */
#ifndef KVMBOX_DEVICES_ACPI_PM_H
#define KVMBOX_DEVICES_ACPI_PM_H

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

struct acpi_pm_config {
	uint64_t evt;        /* PM1a_EVT_BLK, 4 bytes */
	uint64_t cnt;        /* PM1a_CNT_BLK, 2 bytes */
	uint64_t reset;      /* RESET_REG, 1 byte */
	uint8_t reset_value; /* RESET_VALUE */
	uint8_t s5_slp_typ;  /* SLP_TYP of \_S5 (soft off), 0..7 */
};

/* Create the PM block on bus (cfg is copied). NULL with an error logged if
 * the ports are taken or memory runs out. */
struct device *acpi_pm_create(const char *name, struct bus *bus, const struct acpi_pm_config *cfg,
			      struct irq_line sci, struct machine_ctl ctl);

/* Press the power button: set PWRBTN_STS; the SCI fires if the guest enabled
 * PWRBTN_EN. Safe from any thread. */
void acpi_pm_power_button(struct device *dev);

#endif
