/* uart_mmio.h - the 16550A of uart.c at an MMIO address (arm64's console UART).
 *
 * uart_create() takes a 16-bit port base, so the UART itself sits at offset 0 of a private bus,
 * and this window device, registered on the VM's MMIO bus at `base` for one 4 KiB page, passes
 * each access on with its offset. Registers are byte-wide and one byte apart (device tree
 * reg-shift 0, reg-io-width 1); other widths read as all ones. The window forwards reset,
 * save and load, so it stands for the UART in the VM's device list and in snapshots (type "uart").
 * When uart_create() takes any bus and a 64-bit base, this file can go. */
#ifndef KVMBOX_DEVICES_UART_MMIO_H
#define KVMBOX_DEVICES_UART_MMIO_H

#include <stdint.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

#define UART_MMIO_SIZE 0x1000

/* Create the UART and its window on mmio. Returns the window (add it to the VM) and sets *uart
 * to the UART itself (for uart_receive()). NULL with an error logged on failure. */
struct device *uart_mmio_create(const char *name, struct bus *mmio, uint64_t base, struct irq_line irq,
				struct char_port port, struct device **uart);

#endif
