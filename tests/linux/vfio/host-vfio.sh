#!/bin/busybox sh
# host-vfio.sh MODE KVM_OK - in the emulated host of tests/linux/vfio/run.sh (busybox sh): load
# vfio, vfio_iommu_type1 and vfio_pci (/kvmbox/vfio/host/order), bind the emulated NVMe controller
# (class 0x010802) and the AHCI controller at slot 6 (0x010601, MSI only) to vfio-pci, and report. Lines for the harness start with KVMBOX-VFIO; each
# test's verdict is "KVMBOX-VFIO T <name> PASS ..." or "KVMBOX-VFIO T <name> FAIL why" (run.sh
# turns them into PASS:/FAIL: lines; a test never reached fails there).
#   probe   the evidence that VFIO can work here (test probe): DMAR/IOMMU kernel lines, the
#           IOMMU groups, the controller's group and driver, /dev/vfio/N, /dev/kvm, and
#           /kvmbox/vfio-check's walk through the VFIO and KVM ioctls
#   all     probe, then kvmbox itself: refused with its one line and status 1 while the
#           function is on the host's nvme driver (test unbound), and the guest
#           (/kvmbox/vfio/guest.gz, tests/linux/vfio/guest-vfio) on the function passed through:
#           pass 1 writes and reads back, reboots (kvmbox builds the VM again, the function is
#           reset), pass 2 finds pass 1's data and writes more (tests guest-io, guest-msix,
#           guest-reboot), each pass also on the AHCI controller's disk, on MSI (guest-msi); meanwhile kvmbox ctl snapshot, hibernate and migrate are refused
#           with their line and the guest runs on (test refuse-state); then the guest once
#           more with pci=nomsi, on the function's INTx (test guest-intx); "KVMBOX-VFIO sums
#           NVME_1MIB NVME_2MIB NVME_3MIB AHCI_1MIB AHCI_2MIB" (md5s) for run.sh's check of the
#           images after the run (test image)
mode=$1
kvm_ok=$2
say() { echo "KVMBOX-VFIO $*"; }
# verdict PASS|FAIL WHY: the probe's verdict; a FAIL ends the run (the later tests are not reached).
verdict() {
	say T probe "$@"
	[ "$1" = PASS ] || exit 0
}

for m in $(cat /kvmbox/vfio/host/order); do
	# irqbypass is already in (kvm needs it).
	[ -d "/sys/module/${m%.ko}" ] && continue
	out=$(insmod "/kvmbox/vfio/host/$m" 2>&1) || verdict FAIL "insmod $m: $out"
done
dmesg | grep -E 'DMAR|IOMMU|iommu|VFIO|remapping|smmu|ITS' | sed 's/^/KVMBOX-VFIO dmesg /'
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
# An arm64 SMMU (device tree) groups a function only when a driver first probes it.
*"no IOMMU group and is bound to no driver; bind it with:"*) [ "$(uname -m)" = aarch64 ] || verdict FAIL "kvmbox: $out" ;;
*"no IOMMU group"*) verdict FAIL "kvmbox: $out" ;;
*) verdict FAIL "unbound function: $out" ;;
esac
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
# The group, now that a driver probed the function (an arm64 SMMU groups it only then).
group=$(basename "$(readlink "$sys/iommu_group")")
members=$(ls "$sys/iommu_group/devices" | tr '\n' ' ')
[ -n "$group" ] && [ "$members" = "$dev " ] || verdict FAIL "$dev in IOMMU group '$group' with: ${members:-nothing}"
out=$(/kvmbox/vfio-check -e "$dev")
say "on nvme: $out"
case $out in *"bound to nvme, not vfio-pci"*"driver/unbind"*) ;; *) verdict FAIL "function on nvme: $out" ;; esac
if [ "$mode" = all ]; then
	# kvmbox itself with the function on the host's driver: one line, status 1, before any VM.
	out=$(timeout 60 /kvmbox/kvmbox run -k /kvmbox/vmlinuz --device "vfio=$dev" 2>&1)
	st=$?
	n=$(echo "$out" | wc -l)
	case "$st $n $out" in
	"1 1 kvmbox: --device vfio=$dev: "*"bound to nvme, not vfio-pci; bind it with:"*"driver_override"*)
		say T unbound PASS "(status 1: $out)" ;;
	*) say T unbound FAIL "status $st, $n lines: $(echo "$out" | tr '\n' '|' | cut -c1-300)" ;;
	esac
fi
# The fix the message gives.
echo "$dev" >"$sys/driver/unbind" && echo vfio-pci >"$sys/driver_override" && echo "$dev" >/sys/bus/pci/drivers_probe
drv=$(basename "$(readlink "$sys/driver" 2>/dev/null)" 2>/dev/null)
[ "$drv" = vfio-pci ] || verdict FAIL "$dev is bound to '${drv:-nothing}', not vfio-pci"
[ -c "/dev/vfio/$group" ] || verdict FAIL "no /dev/vfio/$group"
say "nvme $dev $(cat "$sys/vendor"):$(cat "$sys/device") group $group driver $drv /dev/vfio/$group"
# The AHCI controller (MSI only) where run.sh put it; the host's ahci driver (a guest module,
# loaded above) took it: the same fix.
sata=0000:00:06.0
ssys=/sys/bus/pci/devices/$sata
[ "$(cat "$ssys/class" 2>/dev/null)" = 0x010601 ] || verdict FAIL "no AHCI controller (class 0x010601) at $sata"
[ -e "$ssys/driver" ] && echo "$sata" >"$ssys/driver/unbind"
echo vfio-pci >"$ssys/driver_override" && echo "$sata" >/sys/bus/pci/drivers_probe
sdrv=$(basename "$(readlink "$ssys/driver" 2>/dev/null)" 2>/dev/null)
sgroup=$(basename "$(readlink "$ssys/iommu_group")")
[ "$sdrv" = vfio-pci ] || verdict FAIL "$sata is bound to '${sdrv:-nothing}', not vfio-pci"
[ "$(ls "$ssys/iommu_group/devices" | tr '\n' ' ')" = "$sata " ] && [ -c "/dev/vfio/$sgroup" ] ||
	verdict FAIL "$sata in IOMMU group '$sgroup' with: $(ls "$ssys/iommu_group/devices" | tr '\n' ' ')"
say "ahci $sata $(cat "$ssys/vendor"):$(cat "$ssys/device") group $sgroup driver $sdrv /dev/vfio/$sgroup"
[ "$kvm_ok" = 1 ] || verdict FAIL "no /dev/kvm (kvm_amd did not load; see KVMBOX-HOST nokvm)"
# kvmbox's VFIO code against the kernel, one step a line.
out=$(/kvmbox/vfio-check "$dev" 2>&1)
echo "$out" | sed 's/^/KVMBOX-VFIO check /'
case $out in *"vfio-check PASS"*) ;; *) verdict FAIL "vfio-check: $(echo "$out" | tail -n 1)" ;; esac
# The config region reads what sysfs says.
v=$(echo "$out" | sed -n 's/^ok config vendor \([^ ]*\) .*/\1/p')
[ "$v" = "$(cat "$sys/vendor")" ] || verdict FAIL "config region vendor '$v', sysfs $(cat "$sys/vendor")"
verdict PASS "($dev in IOMMU group $group, bound to vfio-pci, /dev/vfio/$group, /dev/kvm; kvmbox's VFIO set-up, DMA map, interrupts, reset and KVM VFIO device work; refusals named)"
[ "$mode" = all ] || exit 0

# The guest on the function: two boots of one kvmbox run (pass 1 reboots, pass 2 powers off).
t0=$(cut -d' ' -f1 /proc/uptime)
api=/tmp/vfio-api.sock
timeout 180 /kvmbox/kvmbox run -k /kvmbox/vmlinuz -i /kvmbox/vfio/guest.gz -m 256M -c 1 \
	-a "console=ttyS0 quiet panic=-1" --device "vfio=$dev" --device "vfio=$sata" --api $api >/tmp/guest.log 2>&1 &
kpid=$!
# While the guest runs: snapshot, hibernate and migrate refused with one line, the VM running on
# (its passes below still have to complete). The control socket comes up with the VM; an answer
# that the VM is restarting (between boots) is asked again.
ctl() {
	i=0
	while [ $i -lt 300 ]; do
		if [ -S $api ]; then
			o=$(/kvmbox/kvmbox ctl $api "$@" 2>&1)
			c=$?
			case $o in *restarting*) ;; *) echo "$c $o"; return ;; esac
		fi
		usleep 100000
		i=$((i + 1))
	done
	echo "none: no answer from $api in 30 s"
}
ref_ok=1
ref=
for op in "snapshot /tmp/vfio.snap" "hibernate /tmp/vfio.hib" "migrate unix:/tmp/vfio-mig.sock"; do
	# shellcheck disable=SC2086 # op is the command and its argument
	o=$(ctl $op)
	case $o in
	0*|none*) ref_ok=0 ;;
	*"${op%% *} refused: the VM has a vfio-pci device (--device), which cannot be saved"*) ;;
	*) ref_ok=0 ;;
	esac
	[ -e /tmp/vfio.snap ] || [ -e /tmp/vfio.hib ] && ref_ok=0
	d=$(echo "$o" | sed -n 's/.*"desc": "\(.*\)".*/\1/p')
	[ -n "$d" ] || d=$(echo "$o" | tr '\n' ' ' | cut -c1-200)
	ref="$ref ${op%% *}: status ${o%% *}, ${d%%;*};"
done
wait $kpid
st=$?
say "kvmbox status $st after $(awk -v a="$t0" '{ printf "%d", $1 - a }' /proc/uptime) s"
grep -a 'VFIO-G\|kvmbox:' /tmp/guest.log | tr -d '\r' | sed 's/^/KVMBOX-VFIO guest /'
p1=$(grep -a -m1 '^VFIO-G pass1 ' /tmp/guest.log | tr -d '\r')
p2=$(grep -a -m1 '^VFIO-G pass2 ' /tmp/guest.log | tr -d '\r')
why="kvmbox status $st; last lines: $(tail -n 3 /tmp/guest.log | tr -d '\r' | tr '\n' '|' | cut -c1-300)"
# field N of a "VFIO-G passN ok md5 SUM irq BEFORE AFTER ..." line (SUM 5, BEFORE 7, AFTER 8)
fld() { echo "$1" | cut -d' ' -f"$2"; }
if [ $ref_ok = 1 ] && [ -n "$p2" ]; then
	say T refuse-state PASS "(and the guest ran on:$ref)"
else
	say T refuse-state FAIL "${ref# } pass 2: ${p2:-none}"
fi
case $p1 in
"VFIO-G pass1 ok "*) say T guest-io PASS "(1 MiB written and read back through the passed-through controller, md5 $(fld "$p1" 5))" ;;
"") say T guest-io FAIL "no pass 1 line; $why" ;;
*) say T guest-io FAIL "$p1" ;;
esac
# grew KIND LINE1 LINE2: both "VFIO-G KIND<N> ok ..." lines are there and their counts grew.
grew() {
	k=$1
	shift
	for l in "$@"; do
		case $l in "VFIO-G $k"?" ok "*) ;; *) return 1 ;; esac
		[ "$(fld "$l" 8)" -gt "$(fld "$l" 7)" ] 2>/dev/null || return 1
	done
}
if grew pass "$p1" "$p2"; then
	say T guest-msix PASS "(nvme MSI-X interrupts $(fld "$p1" 7) -> $(fld "$p1" 8) in pass 1, $(fld "$p2" 7) -> $(fld "$p2" 8) in pass 2)"
else
	say T guest-msix FAIL "the nvme MSI-X counts did not grow in both passes: '$p1' '$p2'"
fi
# MSI: the AHCI controller's disk in both passes; its interrupts are MSI and their count grew.
m1=$(grep -a -m1 '^VFIO-G msi1 ' /tmp/guest.log | tr -d '\r')
m2=$(grep -a -m1 '^VFIO-G msi2 ' /tmp/guest.log | tr -d '\r')
if grew msi "$m1" "$m2"; then
	say T guest-msi PASS "(1 MiB written and read back on the AHCI disk in each pass; ahci MSI interrupts $(fld "$m1" 7) -> $(fld "$m1" 8) in pass 1, $(fld "$m2" 7) -> $(fld "$m2" 8) in pass 2)"
else
	say T guest-msi FAIL "'${m1:-no msi1 line}' '${m2:-no msi2 line}'; $why"
fi
case "$st|$p2" in
"0|VFIO-G pass2 ok "*) say T guest-reboot PASS "(after the guest's reboot the reset function served pass 2, pass 1's data intact; kvmbox exited 0)" ;;
*) say T guest-reboot FAIL "${p2:-no pass 2 line}; $why" ;;
esac
# INTx: the guest again, with pci=nomsi, so nvme's only interrupt is the function's INTx pin,
# which kvmbox delivers on a resampling irqfd (VFIO masks the line until the guest's EOI).
timeout 120 /kvmbox/kvmbox run -k /kvmbox/vmlinuz -i /kvmbox/vfio/guest.gz -m 256M -c 1 --no-reboot \
	-a "console=ttyS0 quiet panic=-1 pci=nomsi kvmbox.intx=1" --device "vfio=$dev" >/tmp/guest-intx.log 2>&1
sti=$?
grep -a 'VFIO-G\|kvmbox:' /tmp/guest-intx.log | tr -d '\r' | sed 's/^/KVMBOX-VFIO guest-intx /'
pi=$(grep -a -m1 '^VFIO-G passintx ' /tmp/guest-intx.log | tr -d '\r')
case "$sti|$pi" in
"0|VFIO-G passintx ok "*)
	if [ "$(fld "$pi" 8)" -gt "$(fld "$pi" 7)" ] 2>/dev/null; then
		say T guest-intx PASS "(1 MiB written and read back on INTx only: nvme $(fld "$pi" 10) interrupts $(fld "$pi" 7) -> $(fld "$pi" 8))"
	else
		say T guest-intx FAIL "the nvme INTx count did not grow: $pi"
	fi
	;;
*) say T guest-intx FAIL "${pi:-no result line}; kvmbox status $sti; last lines: $(tail -n 3 /tmp/guest-intx.log | tr -d '\r' | tr '\n' '|' | cut -c1-300)" ;;
esac
case "$p1|$p2|$pi|$m1|$m2" in
"VFIO-G pass1 ok "*"|VFIO-G pass2 ok "*"|VFIO-G passintx ok "*"|VFIO-G msi1 ok "*"|VFIO-G msi2 ok "*)
	say sums "$(fld "$p1" 5)" "$(fld "$p2" 5)" "$(fld "$pi" 5)" "$(fld "$m1" 5)" "$(fld "$m2" 5)" ;;
esac
