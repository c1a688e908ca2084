/* hostile_io.c - accesses a VMM must survive: unassigned ports and MMIO,
 * odd widths on device ports, PCI config of absent devices (all-ones). */
#include "guest.h"

static u32 pci_addr(u32 bus, u32 dev, u32 fn, u32 reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static u32 pci_read32(u32 bus, u32 dev, u32 fn, u32 reg)
{
	outl(0xcf8, pci_addr(bus, dev, fn, reg));
	return inl(0xcfc);
}

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	gprintf("hostile_io: start\n");

	/* Unassigned ports, every width, reads and writes: the writes are dropped
	 * and every read returns all ones, as on an idle bus. */
	static const u16 ports[] = { 0x100, 0x2e8, 0x1234, 0x5658, 0x9000, 0xfff8, 0xfffc, 0xffff };
	u32 acc = 0;

	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		u16 p = ports[i];
		u8 b;
		u16 w;
		u32 l;

		outb(p, 0xa5);
		outw(p, 0xa5a5);
		outl(p, 0xa5a5a5a5);
		b = inb(p);
		w = inw(p);
		l = inl(p);
		if (b != 0xff || w != 0xffff || l != 0xffffffff)
			fail("unassigned port %x reads %x/%x/%x (byte/word/dword), expected all ones", p, b,
			     w, l);
	}
	gprintf("hostile_io: unassigned ports ok (all ones)\n");

	/* Unassigned MMIO: PCI hole, its last page below the ECAM window (0xfeb00000, which
	 * decodes), above RAM, near the IOAPIC/LAPIC, odd offsets. Writes are dropped; reads of
	 * every width, aligned or not, are all ones. */
	static const u64 mmio[] = { 0xd0000000, 0xc0000000, 0xfeaff000, 0xfed00000, 0x3f000000, 0xfec01001 };

	for (size_t i = 0; i < sizeof(mmio) / sizeof(mmio[0]); i++) {
		u64 a = mmio[i], q;
		u32 l;
		u16 w;
		u8 b;

		l = mmio_read32(a);
		b = mmio_read8(a + 3);
		if (l != 0xffffffff || b != 0xff)
			fail("unassigned MMIO %lx reads %x (dword), %x (byte at +3), expected all ones", a, l,
			     b);
		mmio_write32(a, 0xdeadbeef);
		mmio_write8(a + 1, 0x5a);
		l = mmio_read32(a);
		if (l != 0xffffffff)
			fail("unassigned MMIO %lx reads %x after writes, expected ffffffff", a, l);
		*(volatile u64 *)(a + 8) = 0x0123456789abcdefULL;
		q = *(volatile u64 *)(a + 8);
		if (q != ~0ULL)
			fail("unassigned MMIO %lx reads %lx (qword), expected all ones", a + 8, q);
		*(volatile u16 *)(a + 0x11) = 0xbeef; /* unaligned */
		w = *(volatile u16 *)(a + 0x11);
		if (w != 0xffff)
			fail("unassigned MMIO %lx reads %x (unaligned word), expected ffff", a + 0x11, w);
	}
	gprintf("hostile_io: unassigned mmio ok (all ones)\n");

	/* UART at odd widths: reads across registers, then a word write spanning
	 * SCR and the unassigned port after it. The UART is re-initialised after. */
	if (!cmdline_has("qemu")) { /* QEMU 7.2 asserts on these (hw/char/serial.c) */
		acc ^= inw(COM1) ^ inl(COM1) ^ inw(COM1 + 5) ^ inl(COM1 + 4) ^ inw(COM1 + 7);
		outw(COM1 + 7, 0x1234);
		serial_init();
	}
	gprintf("hostile_io: uart odd widths ok (%x)\n", acc);

	/* RTC: word and dword accesses at 0x70 (index+data), out-of-range index. */
	outw(0x70, 0x007f); /* index 0x7f (NVRAM) and data 0 in one access */
	acc ^= inw(0x70) ^ inl(0x70);
	outb(0x70, 0x80 | 0x7f); /* NMI-disable bit with the last NVRAM index */
	acc ^= inb(0x71);
	outb(0x70, 0x00);
	acc ^= inb(0x71);
	gprintf("hostile_io: rtc odd widths ok (%x)\n", acc);

	/* i8042 and PM ports: reads at odd widths only (writes could reset). */
	acc ^= inw(0x60) ^ inl(0x60) ^ inw(0x64) ^ inl(0x604) ^ inw(0x606) ^ inb(0x609);
	gprintf("hostile_io: i8042/pm reads ok (%x)\n", acc);

	/* PCI config mechanism #1 at odd widths and offsets. Data-port writes go to
	 * an absent device; 0xcf9 is only read (it is a reset register on PIIX). */
	outl(0xcf8, pci_addr(1, 0, 0, 0x10));
	outb(0xcfd, 0x12);
	outw(0xcfe, 0x3456);
	outl(0xcfd, 0x789abcde);
	acc ^= inb(0xcf8) ^ inw(0xcfa) ^ inb(0xcfd) ^ inw(0xcfe) ^ inb(0xcff) ^ inl(0xcf9) ^ inl(0xcfd);
	outb(0xcf8, 0x12);
	outw(0xcfa, 0x3456);
	acc ^= inl(0xcf8);
	outl(0xcf8, 0); /* disabled address: data reads are unspecified, must not crash */
	acc ^= inl(0xcfc);
	gprintf("hostile_io: pci port widths ok (%x)\n", acc);

	/* Absent devices read as all-ones, at every width. */
	static const u32 absent[][3] = {
		{ 0, 31, 7 }, { 1, 0, 0 }, { 255, 31, 7 }, { 0, 30, 3 }, { 128, 5, 0 }
	};
	int present = 0;

	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		u32 b = absent[i][0], d = absent[i][1], f = absent[i][2];
		u32 v = pci_read32(b, d, f, 0);

		if (v != 0xffffffff)
			fail("PCI %x:%x.%x vendor/device reads %x, expected ffffffff", b, d, f, v);
		outl(0xcf8, pci_addr(b, d, f, 0));
		u16 w = inw(0xcfe);
		u8 by = inb(0xcfd);

		if (w != 0xffff || by != 0xff)
			fail("PCI %x:%x.%x narrow reads %x/%x, expected ffff/ff", b, d, f, w, by);
		/* Writes to absent functions are dropped. */
		outl(0xcf8, pci_addr(b, d, f, 0x10));
		outl(0xcfc, 0x12345678);
		v = pci_read32(b, d, f, 0x10);
		if (v != 0xffffffff)
			fail("PCI %x:%x.%x BAR0 reads %x after a write, expected ffffffff", b, d, f, v);
	}
	/* Scan bus 0: every function is either a device or reads all-ones. */
	for (u32 d = 0; d < 32; d++) {
		u32 v = pci_read32(0, d, 0, 0);

		if (v != 0xffffffff) {
			present++;
			if ((v & 0xffff) == 0xffff || (v & 0xffff) == 0)
				fail("PCI 0:%x.0 has vendor %x", d, v & 0xffff);
		}
	}
	gprintf("hostile_io: pci absent devices read all-ones (%d present on bus 0)\n", present);

	/* The console still works after all that. */
	gprintf("hostile_io: OK\n");
	poweroff();
}
