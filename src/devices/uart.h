/* uart.h - 16550A serial port (the console).
 *
 * Eight byte-wide registers at `base`, one per address, on the bus the
 * architecture puts it on (I/O ports on x86; MMIO works the same). Transmitted bytes go straight to
 * port.write (there is no baud rate); host input is queued in a 16-byte RX
 * FIFO with uart_receive(). The interrupt line is driven at the level of
 * "an interrupt is pending" and only touched when that level changes. */
#ifndef KVMBOX_DEVICES_UART_H
#define KVMBOX_DEVICES_UART_H

#include <stddef.h>
#include <stdint.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

#define UART_FIFO_SIZE 16

/* Create a UART decoding [base, base+8) on bus. NULL with an error logged
 * when the range is taken or memory runs out. */
struct device *uart_create(const char *name, struct bus *bus, uint64_t base, struct irq_line irq,
			   struct char_port port);

/* Queue host input for the guest. Returns how many bytes were accepted: fewer
 * than n (maybe 0) when the RX FIFO is full or the UART is in loopback; the
 * UART then calls port.rx_space() once the guest has made room. */
size_t uart_receive(struct device *dev, const uint8_t *buf, size_t n);

#endif
