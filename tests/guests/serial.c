/* serial.c - the 16550A UART: THRE/TEMT handshake, scratch register, FIFO
 * bursts, modem-control loopback; the runner matches the exact output. */
#include "guest.h"

#define RBR 0
#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define LSR_DR   0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

static bool wait_lsr(u8 bits)
{
	for (int i = 0; i < 100000; i++) {
		if ((inb(COM1 + LSR) & bits) == bits)
			return true;
		cpu_relax();
	}
	return false;
}

/* Write s in bursts of up to 16 bytes, waiting for THRE (FIFO empty) before each. */
static void burst_write(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		size_t k = n < 16 ? n : 16;

		if (!wait_lsr(LSR_THRE))
			fail("THRE never set during a FIFO burst");
		for (size_t i = 0; i < k; i++)
			outb(COM1 + THR, (u8)s[i]);
		s += k;
		n -= k;
	}
}

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	gprintf("serial: hello from the serial guest\n");

	/* After reset of the FIFO the transmitter is idle: THRE and TEMT set. */
	if (!wait_lsr(LSR_THRE | LSR_TEMT))
		fail("LSR %x: THRE|TEMT not set when idle", inb(COM1 + LSR));
	gprintf("serial: lsr idle %x\n", inb(COM1 + LSR) & (LSR_THRE | LSR_TEMT));

	/* FCR bit 0 set: IIR reports the FIFOs as enabled (bits 7:6 = 11). */
	u8 iir = inb(COM1 + IIR);

	if ((iir & 0xc0) != 0xc0)
		fail("IIR %x: FIFOs not reported enabled", iir);
	gprintf("serial: fifo enabled\n");

	/* Scratch register keeps what is written. */
	static const u8 pat[] = { 0x00, 0x55, 0xaa, 0xff, 0x5a, 0xa5 };

	for (size_t i = 0; i < sizeof(pat); i++) {
		outb(COM1 + SCR, pat[i]);
		u8 r = inb(COM1 + SCR);

		if (r != pat[i])
			fail("SCR wrote %x read %x", pat[i], r);
	}
	gprintf("serial: scr ok\n");

	/* Divisor latch round trip (DLAB), then back to 115200 8N1. */
	outb(COM1 + LCR, 0x83);
	outb(COM1 + 0, 0x0c);
	outb(COM1 + 1, 0x00);
	u8 dll = inb(COM1 + 0), dlm = inb(COM1 + 1);

	outb(COM1 + 0, 0x01);
	outb(COM1 + 1, 0x00);
	outb(COM1 + LCR, 0x03);
	if (dll != 0x0c || dlm != 0)
		fail("divisor latch read back %x:%x, wrote 00:0c", dlm, dll);
	if (inb(COM1 + LCR) != 0x03)
		fail("LCR read back %x, wrote 03", inb(COM1 + LCR));
	gprintf("serial: dlab ok\n");

	/* Longer-than-FIFO lines written in 16-byte bursts. */
	burst_write("serial: burst 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n");
	burst_write(
		"serial: burst2 the quick brown fox jumps over the lazy dog 0123456789 !\"#$%&'()*+,-./\n");

	/* Byte-at-a-time with the THRE handshake. */
	static const char *line = "serial: handshake line of more than sixteen bytes\n";

	for (const char *p = line; *p; p++) {
		if (!wait_lsr(LSR_THRE))
			fail("THRE never set");
		outb(COM1 + THR, (u8)*p);
	}

	/* Loopback (MCR bit 4): modem outputs appear on the status inputs, and
	 * transmitted bytes are received instead of sent. Linux's 8250 probe
	 * relies on the MSR part. */
	if (!wait_lsr(LSR_THRE | LSR_TEMT))
		fail("transmitter not idle before loopback");
	while (inb(COM1 + LSR) & LSR_DR)
		(void)inb(COM1 + RBR);
	outb(COM1 + MCR, 0x10 | 0x0a); /* LOOP | OUT2 | RTS */
	u8 msr = inb(COM1 + MSR) & 0xf0;

	if (msr != 0x90) {
		outb(COM1 + MCR, 0x03);
		fail("loopback MSR %x, expected 90 (DCD|CTS)", msr);
	}
	outb(COM1 + THR, 'Z');
	bool got = wait_lsr(LSR_DR);
	u8 rx = inb(COM1 + RBR);

	outb(COM1 + MCR, 0x03);
	if (!got || rx != 'Z')
		fail("loopback data: DR %d, read %x, expected 5a", got, rx);
	gprintf("serial: loopback ok\n");

	/* IER round trip (no interrupts enabled afterwards). */
	outb(COM1 + IER, 0x05);
	u8 ier = inb(COM1 + IER);

	outb(COM1 + IER, 0x00);
	if ((ier & 0x0f) != 0x05)
		fail("IER read back %x, wrote 05", ier);
	gprintf("serial: ier ok\n");

	gprintf("serial: done\n");
	poweroff();
}
