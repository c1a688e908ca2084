#!/bin/bash
# tests/linux/vfio/run.sh - the VFIO pass-through host: an emulated x86 host of its own (not part
# of the default Linux tier) with an emulated Intel IOMMU, an emulated NVMe controller (MSI-X)
# and an emulated AHCI controller (ICH9: MSI only) with a disk, which its kernel binds to
# vfio-pci for kvmbox to pass through.
#
#   tests/linux/vfio/run.sh [all]   the probe below, then kvmbox itself in the emulated host:
#                                   vfio-unbound (the function on the host's nvme driver:
#                                   kvmbox's one line and status 1), and a guest (Debian's
#                                   kernel, tests/linux/vfio/guest-vfio as /init, the nvme
#                                   driver) with --device vfio=BDF: vfio-guest-io (1 MiB written
#                                   and read back), vfio-guest-msix (the guest's nvme MSI-X
#                                   counts grow), vfio-guest-msi (the AHCI controller passed
#                                   through beside it: 1 MiB on its disk in each pass, on MSI,
#                                   whose counts grow), vfio-guest-reboot (the guest reboots, kvmbox
#                                   builds the VM again and resets the function, pass 2 finds
#                                   pass 1's data and writes more, kvmbox exits 0),
#                                   vfio-refuse-state (kvmbox ctl snapshot, hibernate and
#                                   migrate refused with one line while the guest runs on,
#                                   which it then does), vfio-guest-intx (the guest again with
#                                   pci=nomsi: 1 MiB at 3 MiB on the function's INTx, through a
#                                   resampling irqfd), vfio-image
#                                   (after the run, qemu's image files hold what the guest
#                                   said it wrote, at all five places)
#   tests/linux/vfio/run.sh probe   boot it and check what VFIO needs: DMAR up, the controller in
#                                   an IOMMU group of its own, bound to vfio-pci, /dev/vfio/N,
#                                   /dev/kvm (kvm_amd with an Intel IOMMU), then kvmbox's own
#                                   VFIO code against the kernel with tests/linux/vfio/vfio-check.c
#                                   (container, type-1 v2 IOMMU, DMA map, device fd, regions,
#                                   config space parsed, MSI-X and INTx eventfds, reset, the KVM
#                                   VFIO device, the refusals: unbound, bound to nvme, group in use)
#
# Prints "PASS: vfio-NAME", "FAIL: vfio-NAME: why" or "SKIP: vfio-NAME: why" lines; status 1
# when one failed. The emulated host's console (with the
# kernel's DMAR/IOMMU lines) is kept in OUT/host.log. The machine is q35 (intel-iommu needs it)
# with -device intel-iommu,intremap=on,caching-mode=on; under TCG there is no kernel irqchip, so
# intremap needs no kernel-irqchip=split. The host kernel gets intel_iommu=on and no iommu=pt:
# with pt the host's own drivers would bypass translation, but vfio-pci's type-1 container
# always translates, so pt would not matter to the test; without it the test runs the way an
# IOMMU-strict host does.
# The VFIO host modules (vfio, vfio_iommu_type1, vfio_pci) and the guest's nvme driver come from
# the same Debian kernel package as the default tier's, extracted into OUT (the shared cache's
# module lists stay as they are).
# With KVMBOX_ARCH=arm64 the emulated host is QEMU's arm64 virt board with its SMMUv3
# (iommu=smmuv3) and the same NVMe controller; kvmbox and vfio-check are the cross-built ones
# (build/arm64), the host kernel gets iommu.passthrough=0 (DEVELOPERS.md, "On arm64").
# Environment: KVMBOX_LINUX_OUT (default build/linux-vfio, build/arm64/linux-vfio on arm64),
# KVMBOX_CACHE, KVMBOX_LINUX_TIMEOUT
# (seconds for the whole emulated host, default 600), KVMBOX_VERBOSE=1 (echo the console),
# KVMBOX_VFIO_IOMMU_ARGS (the IOMMU part of the host kernel's command line, default
# intel_iommu=on, iommu.passthrough=0 on arm64; intel_iommu=off shows the failure without an
# IOMMU).
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 1
source tests/linux/lib.sh
MODE=${1:-all}
case $MODE in
probe) TESTS="probe" ;;
all) TESTS="probe unbound guest-io guest-msix guest-msi guest-reboot refuse-state guest-intx image" ;;
*) echo "usage: $0 [all|probe]" >&2; exit 2 ;;
esac
skip_all() { for t in $TESTS; do echo "SKIP: vfio-$t: $*"; done; exit 0; }
TMO=${KVMBOX_LINUX_TIMEOUT:-600}
if [[ $KB_ARCH == arm64 ]]; then
	OUT=${KVMBOX_LINUX_OUT:-build/arm64/linux-vfio}
	# The SMMUv3 comes from the device tree and translates by default (Debian's arm64 kernel has
	# ARM_SMMU_V3 built in and bypass disabled); iommu.passthrough=0 says so.
	IOMMU_ARGS=${KVMBOX_VFIO_IOMMU_ARGS-iommu.passthrough=0}
	cc=gcc
	[[ $(uname -m) != aarch64 ]] && cc=aarch64-linux-gnu-gcc
	build=${KVMBOX_BUILD:-$(dirname "$KB_DEFAULT_BIN")}
else
	OUT=${KVMBOX_LINUX_OUT:-build/linux-vfio}
	IOMMU_ARGS=${KVMBOX_VFIO_IOMMU_ARGS-intel_iommu=on}
	cc=gcc
	build=${KVMBOX_BUILD:-build}
fi
VFIO_HOST_MODULES="vfio vfio_iommu_type1 vfio_pci"
VFIO_GUEST_MODULES="crc64_rocksoft_generic crct10dif_generic nvme ahci sd_mod"
# qemu's emulated NVMe controller (1b36:0010) with a raw image the emulated host can read back.
# shellcheck disable=SC2034,SC2054 # for kb_boot_host; the commas are qemu's
# On arm64 the virt board's own SMMUv3 (iommu=smmuv3) sits in front of its PCIe host bridge; its
# ITS (on by default) takes the MSIs.
if [[ $KB_ARCH == arm64 ]]; then
	KB_QEMU_MACHINE=(-M virt,virtualization=on,gic-version=3,iommu=smmuv3)
else
	KB_QEMU_MACHINE=(-M q35 -vga none -device intel-iommu,intremap=on,caching-mode=on)
fi
# shellcheck disable=SC2054 # the commas are qemu's
KB_QEMU_MACHINE+=(-device nvme,drive=nv0,serial=kvmbox-vfio -drive "if=none,id=nv0,file=$OUT/nvme.img,format=raw")
# The AHCI controller at slot 6 (host-vfio.sh looks for it there): MSI with one vector, no MSI-X.
# shellcheck disable=SC2054 # the commas are qemu's
KB_QEMU_MACHINE+=(-device ich9-ahci,id=sata1,addr=0x6 -drive "if=none,id=vfioahci0,file=$OUT/ahci.img,format=raw"
	-device ide-hd,drive=vfioahci0,bus=sata1.0)

# A failure before the emulated host ran fails every test.
fail() { for t in $TESTS; do echo "FAIL: vfio-$t: $*"; done; exit 1; }
kb_have_qemu >/dev/null || skip_all "$(kb_have_qemu)"
mkdir -p "$OUT" || fail "cannot make $OUT"
kb_fetch_kernel || fail "kb_fetch_kernel"

# The modules, extracted once per kernel version and module list into OUT/modules-<kver>-<sum>.
mods=$OUT/modules-$KB_KVER-$(echo "$VFIO_HOST_MODULES|$VFIO_GUEST_MODULES" | md5sum | cut -c1-8)
if [[ ! -f $mods/.complete ]]; then
	{ rm -rf -- "$mods" && mkdir -p "$mods"; } || fail "cannot make $mods"
	deb=$(_kb_deb "linux-image-$KB_KVER-unsigned") || fail "no kernel package"
	dpkg-deb -x "$deb" "$mods/x" || fail "dpkg-deb -x $deb"
	# shellcheck disable=SC2086 # the lists are words
	if ! _kb_modules "$mods/x/lib/modules/$KB_KVER" "$mods/host" "$mods/host/order" $VFIO_HOST_MODULES ||
		! _kb_modules "$mods/x/lib/modules/$KB_KVER" "$mods/guest" "$mods/guest/order" $VFIO_GUEST_MODULES; then
		fail "cannot collect the modules"
	fi
	rm -rf -- "$mods/x"
	touch "$mods/.complete"
fi

d=$(mktemp -d) || fail mktemp
trap 'rm -rf -- "$d"' EXIT
mkdir -p "$d/kvmbox/vfio/host" "$d/kvmbox/vfio/guest"
{ cp -- "$mods"/host/* "$d/kvmbox/vfio/host/" && cp -- "$mods"/guest/* "$d/kvmbox/vfio/guest/"; } ||
	fail "copy modules"
install -m 755 tests/linux/vfio/host-vfio.sh "$d/kvmbox/host-vfio.sh" || fail "copy host-vfio.sh"
# vfio-check links kvmbox's own VFIO code from the library of the build.
lib=$build/libkvmbox.a
[[ -f $lib ]] || fail "no $lib: make all first"
"$cc" -static -O2 -Wall -Wextra -Werror -Isrc -D_GNU_SOURCE -o "$d/kvmbox/vfio-check" tests/linux/vfio/vfio-check.c \
	"$lib" -pthread || fail "cannot build tests/linux/vfio/vfio-check.c"
if [[ $MODE == all ]]; then
	bin=${KVMBOX_BIN:-$build/kvmbox-static}
	[[ -x $bin ]] || fail "no $bin: make static first"
	install -m 755 "$bin" "$d/kvmbox/kvmbox" || fail "copy $bin"
	# The guest's initramfs: busybox, guest-vfio as /init, the nvme driver in /modules.
	kb_check_busybox || fail "no busybox"
	g=$d/guest
	{ kb_skel "$g" && install -m 755 tests/linux/vfio/guest-vfio "$g/init" && mkdir -p "$g/modules" &&
		cp -- "$mods"/guest/*.ko "$g/modules/" && cp -- "$mods/guest/order" "$g/modules/order"; } ||
		fail "cannot build the guest's initramfs"
	kb_cpio "$g" "$d/kvmbox/vfio/guest.gz" gzip || fail "cannot pack the guest's initramfs"
	rm -rf -- "$g"
fi
initrd=$OUT/host-initrd
kb_host_initrd_from "$initrd" "$d" || fail "cannot build the host initramfs"
# A fresh image each run: the emulated host checks what the guest wrote.
rm -f -- "$OUT/nvme.img" "$OUT/ahci.img" && truncate -s 64M "$OUT/nvme.img" && truncate -s 16M "$OUT/ahci.img" ||
	fail "cannot make $OUT/nvme.img and ahci.img"

start=$(date +%s)
# One CPU, one thread (QEMU's multi-threaded TCG corrupts nested guests' memory now and then:
# DEVELOPERS.md, Known traps), with kb_kicker against the lost timer interrupt of its one-CPU TCG.
export KVMBOX_HOST_CPUS=${KVMBOX_HOST_CPUS:-1} KVMBOX_HOST_TCG_THREAD=${KVMBOX_HOST_TCG_THREAD:-single}
KB_TCG_THREAD=$KVMBOX_HOST_TCG_THREAD
KB_MONITOR=$OUT/monitor.sock kb_boot_host "$initrd" "$TMO" "$IOMMU_ARGS kvmbox.host=vfio kvmbox.vfio=$MODE" \
	>"$OUT/host.log" 2>&1 &
qpid=$!
kb_kicker "$qpid" "$OUT/host.log" "$OUT/monitor.sock" "vfio: qemu monitor: " &
kpid=$!
wait "$qpid"
rc=$?
kill "$kpid" 2>/dev/null
wait "$kpid" 2>/dev/null
[[ ${KVMBOX_VERBOSE:-0} == 1 ]] && cat "$OUT/host.log"
echo "vfio: emulated host ran $(($(date +%s) - start)) s (qemu status $rc)" >&2
# Each test's line; one the emulated host never reached fails with why it stopped.
if [[ $rc == 124 ]]; then gone="the emulated host timed out after $TMO s ($OUT/host.log)"
else gone="no result line; $(kb_host_death "$OUT/host.log" 2>/dev/null)"; fi
status=0
for t in $TESTS; do
	if [[ $t == image ]]; then
		# What the guest said it wrote, in qemu's file, after the emulated host is gone.
		sums=$(grep -a -m1 '^KVMBOX-VFIO sums ' "$OUT/host.log" | tr -d '\r')
		read -r _ _ s1 s2 s3 s4 s5 <<<"$sums"
		mib() { dd if="$OUT/$1" bs=1M skip="$2" count=1 2>/dev/null | md5sum | cut -d' ' -f1; }
		i1=$(mib nvme.img 1) i2=$(mib nvme.img 2) i3=$(mib nvme.img 3) i4=$(mib ahci.img 1) i5=$(mib ahci.img 2)
		if [[ -z $sums ]]; then echo "FAIL: vfio-image: the guest reported no sums (see vfio-guest-*)"; status=1
		elif [[ $s1 == "$i1" && $s2 == "$i2" && $s3 == "$i3" && $s4 == "$i4" && $s5 == "$i5" ]]; then
			echo "PASS: vfio-image ($OUT/nvme.img holds the three MiB the guest wrote: $i1 $i2 $i3; ahci.img the two: $i4 $i5)"
		else echo "FAIL: vfio-image: nvme.img has $i1 $i2 $i3 at 1, 2 and 3 MiB, ahci.img $i4 $i5 at 1 and 2; the guest wrote $s1 $s2 $s3 and $s4 $s5"; status=1; fi
		continue
	fi
	res=$(grep -a -m1 -E "^KVMBOX-VFIO T $t (PASS|FAIL)" "$OUT/host.log" | tr -d '\r')
	case $res in
	"KVMBOX-VFIO T $t PASS"*) echo "PASS: vfio-$t${res#KVMBOX-VFIO T "$t" PASS}" ;;
	"KVMBOX-VFIO T $t FAIL"*) echo "FAIL: vfio-$t:${res#KVMBOX-VFIO T "$t" FAIL}"; status=1 ;;
	*) echo "FAIL: vfio-$t: $gone"; status=1 ;;
	esac
done
((status == 0)) || grep -a '^KVMBOX-VFIO' "$OUT/host.log" | cut -f2- | sed 's/^/    /' >&2
exit $status
