/* pl061.h - ARM PrimeCell PL061 GPIO controller, here the arm64 guest's power button.
 *
 * Eight pins with the PL061's registers (ARM DDI 0190): a data register masked by the address
 * bits [9:2], direction, interrupt sense (edge or level), both-edges, event (rising/high or
 * falling/low), mask, raw and masked status, clear, and the PrimeCell ID. The interrupt line
 * follows the masked status. Inputs are driven from the host side (pl061_set_input), and
 * pl061_pulse raises an input for a while: the device tree's gpio-keys node makes pin
 * PL061_POWER_PIN the KEY_POWER key, which is how `kvmbox ctl ... shutdown`, SIGTERM and
 * `kvmbox up` ask an arm64 guest to power off (x86 has the ACPI power button). The registers,
 * the input levels and a pulse in progress are the saved state. Accesses of 1, 2 or 4 bytes at
 * a register's word; others read as all ones and are ignored when written. */
#ifndef KVMBOX_DEVICES_PL061_H
#define KVMBOX_DEVICES_PL061_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

struct loop;

#define PL061_MMIO_SIZE 0x1000
#define PL061_PINS      8
#define PL061_POWER_PIN 3   /* the gpio-keys node's KEY_POWER (as on QEMU's virt machine) */
#define PL061_PULSE_MS  100 /* how long a button press holds its pin high */

/* Register offsets. */
#define PL061_DATA  0x000 /* 0x000-0x3fc: address bits [9:2] select the pins accessed */
#define PL061_DIR   0x400 /* 1: output */
#define PL061_IS    0x404 /* interrupt sense, 1: level */
#define PL061_IBE   0x408 /* 1: both edges (edge sense only) */
#define PL061_IEV   0x40c /* 1: rising edge or high level */
#define PL061_IE    0x410 /* interrupt mask, 1: enabled */
#define PL061_RIS   0x414 /* raw interrupt status, read-only */
#define PL061_MIS   0x418 /* masked interrupt status, read-only */
#define PL061_IC    0x41c /* interrupt clear (edges), write-only */
#define PL061_AFSEL 0x420 /* mode control (kept, no effect) */
#define PL061_ID    0xfe0 /* PeriphID0..3 then PCellID0..3, one byte per word */

/* Create the controller decoding [base, base + PL061_MMIO_SIZE) on mmio, its pulses timed on
 * loop (NULL: pl061_pulse refuses). NULL with an error logged if the range is taken or memory
 * runs out. The device's type is "gpio". */
struct device *pl061_create(const char *name, struct bus *mmio, uint64_t base, struct irq_line irq,
			    struct loop *loop);

/* Drive input pin `pin` to `level` (a pin the guest made an output ignores it). */
void pl061_set_input(struct device *dev, unsigned pin, bool level);

/* Raise input `pin` now and lower it PL061_PULSE_MS later (a key press and release). 0, or -1
 * when the release cannot be timed (no loop, or its timer failed). */
int pl061_pulse(struct device *dev, unsigned pin);

#endif
