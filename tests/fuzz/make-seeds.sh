#!/bin/bash
# tests/fuzz/make-seeds.sh - write the seed corpora of the libFuzzer harnesses into
# tests/fuzz/corpus/<target>/ (committed; `make fuzz-seeds` runs this after `make fuzz`).
# Each seed is a valid input in its harness's format (the comment at the top of
# tests/fuzz/fuzz_<target>.c): a kernel that loads, a device driven through its set-up, a
# snapshot and a migration stream of the harness's own VM (written by the harness itself,
# KVMBOX_FUZZ_SEED), control-socket requests. The fuzzer starts from them instead of from
# nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${FUZZ_B:-build/fuzz}
C=tests/fuzz/corpus

# hex digits (spaces allowed) to bytes on stdout
hex() {
	local h="$*"
	h=${h// /}
	((${#h} % 2 == 0)) || { echo "make-seeds.sh: odd hex: $h" >&2; exit 1; }
	printf '%b' "$(sed 's/../\\x&/g' <<<"$h")"
}
# bytes on stdin to hex digits
tohex() { od -An -v -tx1 | tr -d ' \n'; }
# little-endian hex of a number: le BYTES VALUE
le() { local n=$2 i out=; for ((i = 0; i < $1; i++)); do out+=$(printf '%02x' $((n & 255))); n=$((n >> 8)); done; echo "$out"; }
# a zero-filled file of SIZE bytes with hex bytes put at offsets: blob FILE SIZE OFF HEX [OFF HEX...]
blob() {
	local f=$1 size=$2
	shift 2
	head -c "$size" /dev/zero >"$f"
	while (($#)); do
		hex "$2" | dd of="$f" bs=1 seek=$(($1)) conv=notrunc status=none
		shift 2
	done
}

rm -rf "$C"
mkdir -p "$C"/{bzimage,elf_pvh,arm64_image,legacy,pci_cfg,virtqueue,virtio_pci,snapshot,migrate_recv,api,vfio_cfg}

# ---- kernels: the harnesses' selector byte, then the file ----
# bzImage, protocol 2.15, one setup sector, 64-bit, init_size 1 MiB; 8 MiB of RAM, with and
# without an initrd and a command line.
bz=$(mktemp)
blob "$bz" 2048 0x1f1 01 0x201 62 0x202 48647253 0x206 "$(le 2 0x020f)" \
	0x211 01 0x22c "$(le 4 0x7fffffff)" 0x236 "$(le 2 1)" 0x238 "$(le 4 2047)" \
	0x260 "$(le 4 0x100000)" 0x400 "$(printf 'kernel text %.0s' {1..8} | tohex)"
{ hex 1d; cat "$bz"; } >"$C/bzimage/initrd-cmdline"
{ hex 01; cat "$bz"; } >"$C/bzimage/plain"
rm -f "$bz"
# ELF64 x86_64 with a PT_LOAD at 1 MiB and the Xen PVH entry note.
elf=$(mktemp)
blob "$elf" 256 0 "7f454c46 02 01 01 00 0000000000000000" 16 "$(le 2 2)$(le 2 0x3e)$(le 4 1)" \
	24 "$(le 8 0x100000)$(le 8 64)$(le 8 0)$(le 4 0)$(le 2 64)$(le 2 56)$(le 2 2)" \
	64 "$(le 4 1)$(le 4 5)$(le 8 0xe0)$(le 8 0x100000)$(le 8 0x100000)$(le 8 0x20)$(le 8 0x1000)$(le 8 0x1000)" \
	120 "$(le 4 4)$(le 4 4)$(le 8 0xc0)$(le 8 0)$(le 8 0)$(le 8 20)$(le 8 20)$(le 8 4)" \
	0xc0 "$(le 4 4)$(le 4 4)$(le 4 18)58656e00$(le 4 0x100000)" 0xe0 "f4ebfd"
{ hex 1d; cat "$elf"; } >"$C/elf_pvh/pvh-initrd-cmdline"
{ hex 01; cat "$elf"; } >"$C/elf_pvh/pvh"
rm -f "$elf"
# arm64 Image: text_offset 0, image_size 64 KiB, flags LE/4K/anywhere; plain and gzipped.
img=$(mktemp)
blob "$img" 4096 0 "$(le 4 0x14000010)" 8 "$(le 8 0)$(le 8 0x10000)$(le 8 0xa)" 56 "$(le 4 0x644d5241)"
{ hex 2d; cat "$img"; } >"$C/arm64_image/image"
{ hex 0d; gzip -9n <"$img"; } >"$C/arm64_image/image-gz"
rm -f "$img"

# ---- legacy devices: op byte (device | size << 3 | write 0x20 | kind << 6), offset, data ----
w8() { echo "$(printf '%02x' $((0x20 | $1)))$(printf '%02x' "$2")$(le 8 "$3")"; } # write: dev off val
r8() { printf '%02x%02x' "$1" "$2"; }                                                # read: dev off
{
	# com1: DLAB, divisor, 8N1, FIFO, IER, a byte out, LSR, host input, RBR, IIR, MSR, save/load
	hex "$(w8 0 3 0x80)$(w8 0 0 1)$(w8 0 1 0)$(w8 0 3 3)$(w8 0 2 0xc7)$(w8 0 1 0x0f)$(w8 0 4 0x0b)"
	hex "$(w8 0 0 0x41)$(r8 0 5)06 05 68656c6c6f$(r8 0 0)$(r8 0 2)$(r8 0 6)c0"
} >"$C/legacy/uart"
{
	# rtc: status B (24h, binary), seconds, minutes, alarm, status C; NVRAM byte; save/load, reset
	hex "$(w8 1 0 0x0b)$(w8 1 1 0x06)$(w8 1 0 0)$(r8 1 1)$(w8 1 0 2)$(r8 1 1)$(w8 1 0 0x0c)$(r8 1 1)"
	hex "$(w8 1 0 0x5a)$(w8 1 1 0x42)$(r8 1 1)c1 81"
} >"$C/legacy/rtc"
{
	# i8042: read/write the command byte, self test, keyboard echo, pulse reset
	hex "$(w8 2 4 0x20)$(r8 2 0)$(w8 2 4 0x60)$(w8 2 0 0x45)$(w8 2 4 0xaa)$(r8 2 0)$(r8 2 4)"
	hex "$(w8 2 0 0xee)$(r8 2 0)$(w8 2 4 0xd1)$(w8 2 0 0xdf)$(w8 2 4 0xfe)c2"
	# acpi_pm: enable the power button event, SCI_EN, status; S5 through PM1_CNT (16-bit)
	hex "$(printf '%02x' $((0x20 | 3 | 1 << 3)))02$(le 8 0x100)$(r8 3 0)"
	hex "$(printf '%02x' $((0x20 | 3 | 1 << 3)))04$(le 8 $((5 << 10 | 1 << 13)))$(w8 3 8 1)c3"
} >"$C/legacy/i8042-pm"
{
	# pl031 (32-bit registers, offsets past 256 take a second byte): data, match, mask, clear
	p32() { echo "$(printf '%02x' $((0x20 | 4 | 2 << 3)))$(printf '%02x' "$1")00$(le 8 "$2")"; }
	hex "$(printf '%02x' $((4 | 2 << 3)))0000$(p32 4 1700000100)$(p32 0x10 1)$(p32 0x1c 1)"
	hex "$(printf '%02x' $((4 | 2 << 3)))e000$(printf '%02x' $((4 | 2 << 3)))fe0f c4"
	# the MMIO uart: a byte out, LSR, host input, RBR
	hex "$(printf '%02x' $((0x20 | 5)))0000$(le 8 0x41)$(r8 5 5)00 07 03 616263$(r8 5 0)"
} >"$C/legacy/pl031-uart-mmio"

# ---- PCI config: op byte (size | write 4 | kind << 3), operands, data ----
ca() { echo "$(printf '%02x' $((2 | 4)))00$(le 8 $((0x80000000 | $1 << 11 | $2)))"; } # CONFIG_ADDRESS
cdr() { printf '%02x%02x' $((2 | 1 << 3)) "$1"; }                                     # read CONFIG_DATA
cdw() { echo "$(printf '%02x' $((2 | 4 | 1 << 3)))00$(le 8 "$1")"; }                  # write CONFIG_DATA
{
	# slot 1: ids, BAR sizing and placement, memory and I/O decode on, capability list, INTx
	hex "$(ca 1 0)$(cdr 0)$(ca 1 0x10)$(cdw 0xffffffff)$(cdr 0)$(cdw 0xe0000000)$(ca 1 0x18)"
	hex "$(cdw 0xffffffff)$(cdr 0)$(ca 1 0x20)$(cdw 0xffffffff)$(cdr 0)$(ca 1 4)$(cdw 7)$(ca 1 0x34)"
	hex "$(cdr 0)$(ca 1 0x40)$(cdr 0)$(ca 1 0x50)$(cdw 0xc0000000)$(ca 1 0x3c)$(cdr 0)"
	hex "$(printf '%02x' $((2 | 3 << 3)))00 1000 $(printf '%02x' $((2 | 4 | 3 << 3)))00 2000 $(le 8 0x1234)"
	hex "$(printf '%02x' $((4 | 4 << 3))) $(printf '%02x' $((5 << 3)))"
} >"$C/pci_cfg/cf8"
{
	# ECAM: slot 1's ids, its BAR 0 sized, slot 2, bus 1, the extended space
	ec() { echo "$(printf '%02x' $((2 | 2 << 3)))$(le 4 "$1")"; }
	hex "$(ec $((1 << 15)))$(printf '%02x' $((2 | 4 | 2 << 3)))$(le 4 $((1 << 15 | 0x10)))$(le 8 0xffffffff)"
	hex "$(ec $((1 << 15 | 0x10)))$(ec $((2 << 15)))$(ec $((1 << 20)))$(ec $((1 << 15 | 0x100)))"
} >"$C/pci_cfg/ecam"

# ---- virtqueue: header (device, log2 queue size, features), then ops ----
feat=$(le 8 $((1 << 28 | 1 << 29 | 0xffffff)))
desc() { echo "01$(printf '%02x%02x' "$1" "$2")$(le 4 "$3")$(le 4 "$4")$(printf '%02x%02x' "$5" "$6")"; } # q i addr len flags next
avail() { echo "02$(printf '%02x' "$1")$(le 2 "$2")"; }
raw() { echo "00$(le 4 "$1")$(printf '%02x' $((${#2} / 2)))$2"; }
kick() { echo "03$(printf '%02x' "$1")"; }
{
	# blk: a read of sector 2, a write, a flush, GET_ID
	hex "01 04 $feat"
	hex "$(raw 0x80000 "$(le 4 0)$(le 4 0)$(le 8 2)")$(desc 0 0 0 16 1 1)$(desc 0 1 0x200 512 3 2)$(desc 0 2 0x1000 1 2 0)"
	hex "$(avail 0 0)$(kick 0)04"
	hex "$(raw 0x80020 "$(le 4 1)$(le 4 0)$(le 8 4)")$(desc 0 3 0x20 16 1 4)$(desc 0 4 0x200 512 1 5)$(desc 0 5 0x1001 1 2 0)"
	hex "$(avail 0 3)$(raw 0x80040 "$(le 4 4)$(le 4 0)$(le 8 0)")$(desc 0 6 0x40 16 1 7)$(desc 0 7 0x1002 1 2 0)$(avail 0 6)"
	hex "$(raw 0x80060 "$(le 4 8)$(le 4 0)$(le 8 0)")$(desc 0 8 0x60 16 1 9)$(desc 0 9 0x300 20 3 10)$(desc 0 10 0x1003 1 2 0)"
	hex "$(avail 0 8)$(kick 0)07 06"
} >"$C/virtqueue/blk"
{
	# net: a frame to send (header + 60 bytes), a receive buffer, a frame from the backend
	hex "02 04 $feat"
	hex "$(desc 1 0 0 12 1 1)$(desc 1 1 0x100 60 0 0)$(avail 1 0)$(kick 1)"
	hex "$(desc 0 0 0x1000 1526 2 0)$(avail 0 0)$(kick 0)05 40 $(printf 'ab%.0s' {1..64})04 04"
} >"$C/virtqueue/net"
{
	# console: output, an input buffer filled by host input, a config write
	hex "03 04 $feat $(raw 0x80000 68656c6c6f)$(desc 1 0 0 5 0 0)$(avail 1 0)$(kick 1)"
	hex "$(desc 0 0 0x100 16 2 0)$(avail 0 0)$(kick 0)05 03 616263 09 00 01"
} >"$C/virtqueue/console"
{
	# rng: a 64-byte buffer, an indirect one
	hex "04 04 $feat $(desc 0 0 0 64 2 0)$(avail 0 0)$(kick 0)04"
	hex "$(raw 0x81000 "$(le 8 0x80100)$(le 4 32)$(le 2 2)$(le 2 0)")$(desc 0 1 0x1000 16 4 0)$(avail 0 1)$(kick 0)04"
} >"$C/virtqueue/rng"
{
	# balloon: a new target, inflate two pages, deflate one, a stats buffer
	hex "05 04 $feat 09 00 10 $(raw 0x80000 "$(le 4 0x40)$(le 4 0x41)")$(desc 0 0 0 8 0 0)$(avail 0 0)$(kick 0)"
	hex "$(raw 0x80010 "$(le 4 0x40)")$(desc 1 0 0x10 4 0 0)$(avail 1 0)$(kick 1)"
	hex "$(raw 0x80020 "$(le 2 4)$(le 8 4096)")$(desc 2 0 0x20 10 0 0)$(avail 2 0)$(kick 2)04 07"
} >"$C/virtqueue/balloon"
{
	# vsock (no kernel behind it): an event buffer, a transport reset event (host input), another
	# buffer and a reset pending across a save and load
	hex "06 04 $feat $(desc 2 0 0 4 2 0)$(avail 2 0)$(kick 2)05 00"
	hex "$(desc 2 1 0x100 8 2 0)05 00 07 $(avail 2 1)$(kick 2)06"
} >"$C/virtqueue/vsock"
{
	# the bare queue: a two-part chain, an indirect chain, event index, state load
	hex "00 03 $feat $(desc 0 0 0 32 1 1)$(desc 0 1 0x100 64 2 0)$(avail 0 0)$(kick 0) 10 10 00 00"
	hex "$(raw 0x81000 "$(le 8 0x80200)$(le 4 16)$(le 2 1)$(le 2 1)$(le 8 0x80300)$(le 4 16)$(le 2 2)$(le 2 0)")"
	hex "$(desc 0 2 0x1000 32 4 0)$(avail 0 2)08 00 0100 00$(kick 0) 00 00 01 01"
} >"$C/virtqueue/bare"

# ---- virtio-pci: op byte (size | write 4 | kind << 3) ----
bw() { echo "$(printf '%02x' $(($1 | 4)))$(printf '%02x%02x' "$2" "$3")$(le 8 "$4")"; } # size-log2 region off val
br() { printf '%02x%02x%02x' "$1" "$2" "$3"; }
{
	# the driver's set-up: status, features, queue 0 at 0x1000/0x2000/0x3000, MSI-X vectors,
	# DRIVER_OK, a kick, ISR, device config, the MSI-X table and PBA
	hex "$(bw 0 0 0x14 1)$(bw 0 0 0x14 3)$(bw 2 0 0 1)$(br 2 0 4)$(bw 2 0 8 0)$(bw 2 0 0x0c 8)"
	hex "$(bw 2 0 8 1)$(bw 2 0 0x0c 1)$(bw 0 0 0x14 0x0b)$(br 0 0 0x14)$(bw 1 0 0x16 0)$(br 1 0 0x18)"
	hex "$(bw 2 0 0x20 0x1000)$(bw 2 0 0x28 0x2000)$(bw 2 0 0x30 0x3000)$(bw 1 0 0x1a 0)$(bw 1 0 0x10 1)"
	hex "$(bw 1 0 0x1c 1)$(bw 0 0 0x14 0x0f)$(bw 1 3 0 0)$(br 0 1 0)$(br 2 2 0)$(bw 0 2 1 0x55)"
	hex "$(bw 2 4 0 0xfee00000)$(bw 2 4 8 0x4041)$(bw 2 4 12 0)$(br 3 5 0)$(bw 0 0 0x14 0)"
	# config space: the capability list, the PCI_CFG window, MSI-X enable; reset, save/load
	hex "$(printf '%02x' $((2 | 4 << 3)))34 $(printf '%02x' $((2 | 4 << 3)))40 $(printf '%02x' $((2 | 4 << 3)))70"
	hex "$(printf '%02x' $((1 | 4 | 4 << 3)))42$(le 8 0x8000)38 01 38 00"
} >"$C/virtio_pci/setup"

# ---- the control socket ----
cat >"$C/api/commands" <<'JSON'
{"id":1,"command":"info"}
{"id":"two","command":"pause"}
{"command":"resume","arguments":{}}
{"id":3,"command":"balloon","arguments":{"size":"128M"}}
{"id":4,"command":"balloon","arguments":{"size":134217728}}
{"id":5,"command":"shutdown","arguments":{"timeout":5}}
{"id":6,"command":"snapshot","arguments":{"path":"/nonexistent/vm.snap"}}
{"id":7,"command":"migrate","arguments":{"uri":"unix:/nonexistent/sock"}}
JSON
printf '%s\n' '{"id":1,"command":"nosuch"}' '{"command":"info","arguments":{"x":1}}' 'not json' \
	'{"id":[1,{"a":null}],"command":"hibernate"}' '[]' '{"command":5}' >"$C/api/errors"

# ---- vfio_cfg: a function's config space, its BAR sizes, then guest accesses ----
# vc OFF BYTES HEX: a config access (write when HEX is given, padded to 8 bytes)
vc() { if [[ -n ${3:-} ]]; then echo "$(printf '%02x' $(($2 | 4)))$(printf '%02x' $(($1)))$3$(printf '0%.0s' $(seq $((16 - ${#3}))))"; else echo "$(printf '%02x' $2)$(printf '%02x' $(($1)))"; fi; }
# vt OFF HEX: an MSI-X table write of 4 bytes; vp OFF: a PBA read of 8
vt() { echo "0e$(le 2 "$1")$2$(printf '0%.0s' $(seq $((16 - ${#2}))))"; }
vp() { echo "13$(le 2 "$1")"; }
cfg=$(mktemp)
# NVMe-like: BAR0 64-bit 16 KiB; PM 0x40 -> MSI 0x50 (4 vectors, 64-bit, maskable) -> MSI-X 0x70
# (8 vectors, table BAR0+0x2000, PBA BAR0+0x3000) -> PCIe 0x80.
blob "$cfg" 256 0 361b1000 6 1000 8 02020801 0x10 04 0x2c f41a0011 0x34 40 0x3d 01 \
	0x40 01500300 0x50 05708401 0x70 11800700 0x74 00200000 0x78 00300000 0x80 10000200
{
	cat "$cfg"
	hex 0e 00 00 00 00 00
	# MSI: address, data, two vectors enabled, one masked, then off; MSI-X on, a vector, the PBA
	hex "$(vc 0x54 2 00e0feff)$(vc 0x58 2 00000000)$(vc 0x5c 2 20400000)$(vc 0x52 1 1100)$(vc 0x60 2 02000000)$(vc 0x50 2)"
	hex "$(vc 0x52 1 0000)$(vc 0x72 1 0080)$(vt 0 00e0feff)$(vt 8 21400000)$(vt 12 00000000)$(vp 0)$(vc 0x72 1 0000)"
} >"$C/vfio_cfg/nvme"
# AHCI-like: BAR4 I/O 32 bytes, BAR5 32-bit 4 KiB, MSI only (one vector, 64-bit, no masks) at 0x80.
blob "$cfg" 256 0 86802229 6 1000 8 02010601 0x20 01000000 0x24 00000000 0x34 80 0x3d 01 \
	0x80 05008000
{
	cat "$cfg"
	hex 00 00 00 00 05 0c
	hex "$(vc 0x84 2 00e0feff)$(vc 0x8c 1 2140)$(vc 0x82 1 0100)$(vc 0x84 2 0010e0fe)$(vc 0x82 1 0000)$(vc 0x04 1 0600)"
} >"$C/vfio_cfg/ahci"
rm -f "$cfg"

# ---- snapshot and migration: the harnesses write their own VM's ----
KVMBOX_FUZZ_SEED=$C/snapshot/vm "$B/fuzz_snapshot"
KVMBOX_FUZZ_SEED=$C/migrate_recv/vm "$B/fuzz_migrate_recv"
du -sb "$C"
