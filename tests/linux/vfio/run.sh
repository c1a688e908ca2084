#!/bin/bash
# tests/linux/vfio/run.sh - the VFIO pass-through host: an emulated x86 host of its own (not part
# of the default Linux tier) with an emulated Intel IOMMU and an emulated NVMe controller, which
# its kernel binds to vfio-pci for kvmbox to pass through.
#
#   tests/linux/vfio/run.sh probe   boot it and check what VFIO needs: DMAR up, the controller in
#                                   an IOMMU group of its own, bound to vfio-pci, /dev/vfio/N,
#                                   /dev/kvm (kvm_amd with an Intel IOMMU), then kvmbox's own
#                                   VFIO code against the kernel with tests/linux/vfio/vfio-check.c
#                                   (container, type-1 v2 IOMMU, DMA map, device fd, regions,
#                                   config space parsed, MSI-X and INTx eventfds, reset, the KVM
#                                   VFIO device, the refusals: unbound, bound to nvme, group in use)
#
# Prints "PASS: vfio-probe" or "FAIL: vfio-probe: why"; the emulated host's console (with the
# kernel's DMAR/IOMMU lines) is kept in OUT/host.log. The machine is q35 (intel-iommu needs it)
# with -device intel-iommu,intremap=on,caching-mode=on; under TCG there is no kernel irqchip, so
# intremap needs no kernel-irqchip=split. The host kernel gets intel_iommu=on and no iommu=pt:
# with pt the host's own drivers would bypass translation, but vfio-pci's type-1 container
# always translates, so pt would not matter to the test; without it the test runs the way an
# IOMMU-strict host does.
# The VFIO host modules (vfio, vfio_iommu_type1, vfio_pci) and the guest's nvme driver come from
# the same Debian kernel package as the default tier's, extracted into OUT (the shared cache's
# module lists stay as they are).
# Environment: KVMBOX_LINUX_OUT (default build/linux-vfio), KVMBOX_CACHE, KVMBOX_LINUX_TIMEOUT
# (seconds for the whole emulated host, default 600), KVMBOX_VERBOSE=1 (echo the console),
# KVMBOX_VFIO_IOMMU_ARGS (the IOMMU part of the host kernel's command line, default
# intel_iommu=on; intel_iommu=off shows the failure without an IOMMU).
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 1
source tests/linux/lib.sh
[[ $KB_ARCH == x86_64 ]] || { echo "SKIP: vfio: x86_64 only (KVMBOX_ARCH=$KB_ARCH)"; exit 0; }

MODE=${1:-probe}
case $MODE in probe) ;; *) echo "usage: $0 probe" >&2; exit 2 ;; esac
OUT=${KVMBOX_LINUX_OUT:-build/linux-vfio}
TMO=${KVMBOX_LINUX_TIMEOUT:-600}
IOMMU_ARGS=${KVMBOX_VFIO_IOMMU_ARGS-intel_iommu=on}
VFIO_HOST_MODULES="vfio vfio_iommu_type1 vfio_pci"
VFIO_GUEST_MODULES="crc64_rocksoft_generic crct10dif_generic nvme"
# qemu's emulated NVMe controller (1b36:0010) with a raw image the emulated host can read back.
# shellcheck disable=SC2034,SC2054 # for kb_boot_host; the commas are qemu's
KB_QEMU_MACHINE=(-M q35 -vga none -device intel-iommu,intremap=on,caching-mode=on
	-device nvme,drive=nv0,serial=kvmbox-vfio -drive "if=none,id=nv0,file=$OUT/nvme.img,format=raw")

fail() { echo "FAIL: vfio-$MODE: $*"; exit 1; }
kb_have_qemu >/dev/null || fail "$(kb_have_qemu)"
mkdir -p "$OUT" || fail "cannot make $OUT"
kb_fetch_kernel || fail "kb_fetch_kernel"

# The modules, extracted once per kernel version into OUT/modules-<kver>.
mods=$OUT/modules-$KB_KVER
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
lib=${KVMBOX_BUILD:-build}/libkvmbox.a
[[ -f $lib ]] || fail "no $lib: make all first"
gcc -static -O2 -Wall -Wextra -Werror -Isrc -D_GNU_SOURCE -o "$d/kvmbox/vfio-check" tests/linux/vfio/vfio-check.c \
	"$lib" -pthread || fail "cannot build tests/linux/vfio/vfio-check.c"
initrd=$OUT/host-initrd
kb_host_initrd_from "$initrd" "$d" || fail "cannot build the host initramfs"
# A fresh image each run: the emulated host checks what the guest wrote.
rm -f -- "$OUT/nvme.img" && truncate -s 64M "$OUT/nvme.img" || fail "cannot make $OUT/nvme.img"

start=$(date +%s)
kb_boot_host "$initrd" "$TMO" "$IOMMU_ARGS kvmbox.host=vfio kvmbox.vfio=$MODE" >"$OUT/host.log" 2>&1
rc=$?
[[ ${KVMBOX_VERBOSE:-0} == 1 ]] && cat "$OUT/host.log"
echo "vfio: emulated host ran $(($(date +%s) - start)) s (qemu status $rc)" >&2
res=$(grep -a -m1 -E '^KVMBOX-VFIO (PASS|FAIL)' "$OUT/host.log" | tr -d '\r')
case $res in
"KVMBOX-VFIO PASS"*) echo "PASS: vfio-$MODE${res#KVMBOX-VFIO PASS}" ;;
"KVMBOX-VFIO FAIL"*) echo "FAIL: vfio-$MODE:${res#KVMBOX-VFIO FAIL}"; grep -a '^KVMBOX-VFIO' "$OUT/host.log" | sed 's/^/    /'; exit 1 ;;
*) [[ $rc == 124 ]] && fail "the emulated host timed out after $TMO s ($OUT/host.log)"
	fail "no result line; $(kb_host_death "$OUT/host.log")" ;;
esac
