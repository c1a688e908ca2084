#!/bin/bash
# demo.sh - `make demo`: boot Debian's kernel with kvmbox to an interactive busybox shell.
#
# With a /dev/kvm that can run Linux (the CPU shows vmx or svm), build/kvmbox runs the guest
# directly on this terminal. Otherwise (or with KVMBOX_DEMO_EMULATED=1) the guest runs in the
# emulated host (qemu TCG, see DEVELOPERS.md) whose serial console is this terminal; boot then
# takes ~15 s. Keys: Ctrl-A x quits kvmbox; in the emulated host Ctrl-] x quits qemu.
# 'poweroff -f' in the guest shell ends the demo.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
source tests/linux/lib.sh

kb_check_busybox || exit 1
kb_fetch_kernel || exit 1
mkdir -p build/linux

direct=1
if [[ ${KVMBOX_DEMO_EMULATED:-0} == 1 ]]; then
	direct=0
elif ! grep -qw -e vmx -e svm /proc/cpuinfo; then
	echo "demo: this CPU shows no vmx/svm: /dev/kvm here cannot run Linux, using the emulated host" >&2
	direct=0
elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "demo: cannot open /dev/kvm read-write, using the emulated host" >&2
	direct=0
fi

if ((direct)); then
	kb_build_guest_initrd build/linux/guest-initrd.gz || exit 1
	exec build/kvmbox run -k "$KB_KDIR/vmlinuz" -i build/linux/guest-initrd.gz -c 2 -m 512M \
		-a "console=ttyS0 quiet kvmbox.test=shell"
fi

why=$(kb_have_qemu) || { echo "demo: $why" >&2; exit 1; }
[[ -x build/kvmbox-static ]] || { echo "demo: build/kvmbox-static missing (make static)" >&2; exit 1; }
kb_build_host_initrd build/linux/host-initrd build/kvmbox-static tests/linux/host-tests.sh \
	tests/linux/host-bench.sh || exit 1
echo "demo: booting the emulated host (Ctrl-A x quits kvmbox, Ctrl-] x quits qemu)" >&2
status_file=build/linux/demo-status
KB_STATUS_FILE=$status_file kb_boot_host build/linux/host-initrd 86400 "kvmbox.host=demo" interactive
qrc=$?
# The demo's status is kvmbox's in the emulated host, not qemu's.
st=$(sed -n 's/^KVMBOX-STATUS \([0-9a-z]*\).*/\1/p' "$status_file" | tr -d '\r' | tail -n1)
case $st in
[0-9]*) exit "$st" ;;
nokvm) echo "demo: the emulated host has no usable /dev/kvm (kvm_amd did not load)" >&2; exit 1 ;;
*) echo "demo: the emulated host stopped (qemu status $qrc) before kvmbox finished" >&2; exit 1 ;;
esac
