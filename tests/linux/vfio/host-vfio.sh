#!/bin/busybox sh
# host-vfio.sh MODE KVM_OK - in the emulated host of tests/linux/vfio/run.sh (busybox sh): load
# vfio, vfio_iommu_type1 and vfio_pci (/kvmbox/vfio/host/order), bind the emulated NVMe controller
# (class 0x010802) to vfio-pci, and report. Lines for the harness start with KVMBOX-VFIO; the
# verdict is "KVMBOX-VFIO PASS ..." or "KVMBOX-VFIO FAIL why".
#   probe   the evidence that VFIO can work here: DMAR/IOMMU kernel lines, the IOMMU groups, the
#           controller's group and driver, /dev/vfio/N, /dev/kvm, and /kvmbox/vfio-check's walk
#           through the VFIO and KVM ioctls
mode=$1
kvm_ok=$2
say() { echo "KVMBOX-VFIO $*"; }
verdict() { say "$@"; exit 0; }

for m in $(cat /kvmbox/vfio/host/order); do
	# irqbypass is already in (kvm needs it).
	[ -d "/sys/module/${m%.ko}" ] && continue
	out=$(insmod "/kvmbox/vfio/host/$m" 2>&1) || verdict FAIL "insmod $m: $out"
done
dmesg | grep -E 'DMAR|IOMMU|iommu|VFIO|remapping' | sed 's/^/KVMBOX-VFIO dmesg /'
for g in /sys/kernel/iommu_groups/*; do
	[ -d "$g" ] && say "group ${g##*/}: $(ls "$g/devices" | tr '\n' ' ')"
done
dev=
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/class")" = 0x010802 ] && dev=${d##*/} && break
done
[ -n "$dev" ] || verdict FAIL "no NVMe controller (class 0x010802) in /sys/bus/pci/devices"
sys=/sys/bus/pci/devices/$dev
# The refusals first, each with kvmbox's message: no IOMMU (intel_iommu=off), bound to no
# driver, then to the host's nvme.
out=$(/kvmbox/vfio-check -e "$dev")
say "unbound: $out"
case $out in
*"bound to no driver, not vfio-pci"*) ;;
*"no IOMMU group"*) verdict FAIL "kvmbox: $out" ;;
*) verdict FAIL "unbound function: $out" ;;
esac
group=$(basename "$(readlink "$sys/iommu_group")")
members=$(ls "$sys/iommu_group/devices" | tr '\n' ' ')
[ "$members" = "$dev " ] || verdict FAIL "$dev shares IOMMU group $group with: $members"
for m in $(cat /kvmbox/vfio/guest/order); do
	[ -d "/sys/module/${m%.ko}" ] || insmod "/kvmbox/vfio/guest/$m" || verdict FAIL "insmod $m (host nvme)"
done
# nvme probes asynchronously: wait for its driver link, 20 s at most.
i=0
while drv=$(basename "$(readlink "$sys/driver" 2>/dev/null)" 2>/dev/null) && [ "$drv" != nvme ] && [ $i -lt 200 ]; do
	usleep 100000
	i=$((i + 1))
done
[ "$drv" = nvme ] || verdict FAIL "the host's nvme driver did not take $dev in 20 s (driver '${drv:-none}')"
out=$(/kvmbox/vfio-check -e "$dev")
say "on nvme: $out"
case $out in *"bound to nvme, not vfio-pci"*"driver/unbind"*) ;; *) verdict FAIL "function on nvme: $out" ;; esac
# The fix the message gives.
echo "$dev" >"$sys/driver/unbind" && echo vfio-pci >"$sys/driver_override" && echo "$dev" >/sys/bus/pci/drivers_probe
drv=$(basename "$(readlink "$sys/driver" 2>/dev/null)" 2>/dev/null)
[ "$drv" = vfio-pci ] || verdict FAIL "$dev is bound to '${drv:-nothing}', not vfio-pci"
[ -c "/dev/vfio/$group" ] || verdict FAIL "no /dev/vfio/$group"
say "nvme $dev $(cat "$sys/vendor"):$(cat "$sys/device") group $group driver $drv /dev/vfio/$group"
[ "$kvm_ok" = 1 ] || verdict FAIL "no /dev/kvm (kvm_amd did not load; see KVMBOX-HOST nokvm)"
# kvmbox's VFIO code against the kernel, one step a line.
out=$(/kvmbox/vfio-check "$dev" 2>&1)
echo "$out" | sed 's/^/KVMBOX-VFIO check /'
case $out in *"vfio-check PASS"*) ;; *) verdict FAIL "vfio-check: $(echo "$out" | tail -n 1)" ;; esac
# The config region reads what sysfs says.
v=$(echo "$out" | sed -n 's/^ok config vendor \([^ ]*\) .*/\1/p')
[ "$v" = "$(cat "$sys/vendor")" ] || verdict FAIL "config region vendor '$v', sysfs $(cat "$sys/vendor")"
case $mode in
probe) verdict PASS "($dev in IOMMU group $group, bound to vfio-pci, /dev/vfio/$group, /dev/kvm; kvmbox's VFIO set-up, DMA map, interrupts, reset and KVM VFIO device work; refusals named)" ;;
*) verdict FAIL "unknown mode '$mode'" ;;
esac
