#!/bin/sh
# host-tests.sh - the Linux scenarios, run by busybox sh inside the emulated host.
# Usage: host-tests.sh [GLOB[,GLOB...] [PART]]   run only the tests whose name matches a glob
#                                              (and that are PART's: all, a or b, below)
#        host-tests.sh --list [PART]            the test names
#
# Prints machine-readable lines that tests/linux/run.sh turns into PASS/FAIL/SKIP:
#   KVMBOX-T PASS|FAIL|SKIP <name> [why]
#   KVMBOX-T DATA linux-date <guest epoch> <emulated-host epoch>   (run.sh decides)
#   KVMBOX-L <name> <text>            diagnostics after a FAIL (guest output, kvmbox stderr)
#   KVMBOX-I <text>                   information (durations), logged only
# Every kvmbox run is guarded by a timeout, so a hang is a FAIL, never a stuck suite.
# The one list of the tier's tests, by group (tests/linux/run.sh reads it with --list).
BOOT="linux-boot-bzimage linux-poweroff-exit0 linux-nproc-1 linux-date linux-nproc-2 linux-nproc-4
	linux-boot-pvh linux-rtc-irq linux-reboot-restarts linux-reboot-cmos-kept linux-no-reboot-exit0
	linux-pci-ecam"
V1="linux-virtio-devices linux-virtio-blk-serials linux-virtio-blk-ro linux-virtio-rng
	linux-virtio-net-ping linux-virtio-net-tcp linux-virtio-net-vhost linux-virtio-net-user"
V2="linux-virtio-blk-ext4 linux-virtio-console linux-virtio-blk-fsync-kill9"
LIFE1="linux-life-pause linux-life-snapshot linux-life-hibernate linux-life-restore-corrupt
	linux-life-shutdown-acpi"
LIFE2="linux-life-migrate-closed-port linux-life-migrate-dest-killed linux-life-migrate
	linux-life-shutdown-timeout"
LIFE3="linux-life-balloon"
LIFE4="linux-life-migrate-disks-refused linux-life-migrate-disks"
SEC="linux-sec-filtered linux-sec-socket-mode linux-sec-peercred linux-sec-unlink-refused
	linux-sec-user linux-sec-user-needs-no-reboot linux-sec-jail linux-sec-jail-snapshot
	linux-sec-cgroup linux-sec-cgroup-not-v2"
BAD="linux-bad-missing-kernel linux-bad-not-a-kernel linux-bad-elf-not-kernel linux-bad-initrd-too-big
	linux-bad-memory-1M linux-bad-cpus-0 linux-bad-cpus-too-many linux-bad-size-malformed
	linux-bad-no-kernel-option linux-bad-no-dev-kvm linux-bad-dev-kvm-perm"
LINK="linux-link-ping linux-link-tcp linux-link-isolated linux-link-features linux-link-socket-file"
LINKT="linux-link-throughput"
LINKR="linux-link-takeover linux-link-restore linux-link-hub linux-link-migrate"
RT="linux-rt-policy linux-rt-mlock linux-rt-hugepages linux-rt-hugetlbfs linux-rt-prealloc
	linux-rt-snapshot linux-rt-restore-override linux-rt-migrate linux-rt-bad-cpu linux-rt-bad-vcpu
	linux-rt-bad-hugepages linux-rt-bad-hugepage-size linux-rt-bad-memlock linux-rt-bad-rtprio
	linux-rt-bad-balloon"
VSOCK="linux-vsock-bad-cid linux-vsock-host-to-guest linux-vsock-guest-to-host linux-vsock-cid-in-use
	linux-vsock-reset linux-vsock-snapshot linux-vsock-migrate-fail linux-vsock-migrate linux-vsock-driver-reload
	linux-vsock-reboot"
VSU="linux-vsock-uds-host-to-guest linux-vsock-uds-guest-to-host linux-vsock-uds-snapshot linux-vsock-uds-migrate"
ALL=$(echo $BOOT $V1 $V2 $LINK $LINKT $LINKR $LIFE1 $LIFE2 $LIFE3 $LIFE4 $VSOCK $VSU $SEC $BAD $RT)
# The x86 tier runs in two emulated hosts of one CPU each, side by side (tests/linux/run.sh;
# DEVELOPERS.md, Known traps): part "a" and part "b" (these groups), of about equal time.
# "all" is every test, in one host.
PART_B=$(echo $LIFE4 $VSOCK $VSU $LINKT $LINKR $SEC $BAD $RT)
# in_part PART NAME: is the test NAME one of PART's?
in_part() {
	case $1 in
	b) case " $PART_B " in *" $2 "*) return 0 ;; esac; return 1 ;;
	a) case " $PART_B " in *" $2 "*) return 1 ;; esac; return 0 ;;
	*) return 0 ;;
	esac
}
if [ "${1:-}" = --list ]; then
	for _t in $ALL; do
		in_part "${2:-all}" $_t && echo $_t
	done
	exit 0
fi

ONLY=$(echo "${1:-}" | tr ',' ' ')
PART=${2:-all}
KB=/kvmbox
BZ=$KB/vmlinuz
ELF=$KB/vmlinux
GI=$KB/guest-initrd.gz
GAPPEND="console=ttyS0 quiet panic=-1"
BOOT_TMO=${KVMBOX_BOOT_TIMEOUT:-120}
BAD_TMO=30
W=/tmp/kvmbox-tests
mkdir -p $W

# want NAME...: is any of these tests selected (by the globs, and in this host's part)?
want() {
	for _w in "$@"; do
		in_part $PART $_w || continue
		[ -z "$ONLY" ] && return 0
		for _g in $ONLY; do
			# shellcheck disable=SC2254 # a glob on purpose
			case $_w in $_g) return 0 ;; esac
		done
	done
	return 1
}

res() { # STATUS NAME [WHY]
	_st=$1 _n=$2
	shift 2
	case " $ALL " in
	*" $_n "*) ;;
	*) echo "KVMBOX-T FAIL $_n host-tests.sh reports a test that is not in its list (ALL)"; return ;;
	esac
	want "$_n" && echo "KVMBOX-T $_st $_n $*"
}

now() { cut -d' ' -f1 /proc/uptime; }

alive() { [ -r /proc/$1/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }

# vm ID TIMEOUT STOP_PATTERN STOP_COUNT kvmbox-run-args...: run kvmbox in the background,
# output in $W/ID.out, stderr in $W/ID.err; kill it after TIMEOUT seconds, or (SIGTERM) once
# STOP_PATTERN was printed STOP_COUNT times (stops reboot loops early). Sets RC (kvmbox's
# status, or "timeout" / "stopped"), SECS.
# Set beforehand (and reset after) to change a run: VM_IN (kvmbox's stdin, default /dev/null),
# VM_SIG=KILL (stop with SIGKILL at once instead of SIGTERM), VM_HOOK (a function called on
# every 200 ms tick while kvmbox runs).
VM_IN=/dev/null VM_SIG=TERM VM_HOOK=
vm() {
	id=$1 tmo=$2 pat=$3 cnt=$4
	shift 4
	t0=$(now)
	DM0=$(dmesg | wc -l)
	kvmbox run "$@" <$VM_IN >$W/$id.out 2>$W/$id.err &
	pid=$!
	ticks=0 why=
	while alive $pid; do
		if [ $ticks -ge $((tmo * 5)) ]; then
			why=timeout
			kill -KILL $pid 2>/dev/null
			break
		fi
		[ -n "$VM_HOOK" ] && $VM_HOOK
		if [ -n "$pat" ] && [ "$(grep -c "$pat" $W/$id.out 2>/dev/null)" -ge "$cnt" ]; then
			why=stopped
			if [ "$VM_SIG" = KILL ]; then
				kill -KILL $pid 2>/dev/null
			else
				kill -TERM $pid 2>/dev/null
				sleep 2
				kill -KILL $pid 2>/dev/null
			fi
			break
		fi
		usleep 200000
		ticks=$((ticks + 1))
	done
	wait $pid
	RC=$?
	[ -n "$why" ] && RC=$why
	SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	echo "KVMBOX-I $id: kvmbox run $* -> status $RC after ${SECS}s"
}

# diag NAME ID: show what the guest and kvmbox said last.
diag() {
	want "$1" || return 0
	tr -d '\r' <$W/$2.out | grep -v '^[[:space:]]*$' | tail -n 12 | sed "s/^/KVMBOX-L $1 guest: /"
	tail -n 12 $W/$2.err | sed "s/^/KVMBOX-L $1 stderr: /"
	# The emulated host's new kernel messages: a kernel warning or oops from its first line
	# (what KVM complained about), else the last lines.
	dmesg | tail -n +$((DM0 + 1)) >$W/dmesg.new
	if grep -q -e 'cut here' -e 'WARNING:' -e 'BUG:' $W/dmesg.new; then
		sed -n '/cut here\|WARNING:\|BUG:/,$p' $W/dmesg.new | head -n 30
	else
		tail -n 8 $W/dmesg.new
	fi | sed "s/^/KVMBOX-L $1 host dmesg: /"
}

has() { tr -d '\r' <$W/$2.out | grep -q "$1"; }
count() { tr -d '\r' <$W/$2.out | grep -c "$1"; }
result() { tr -d '\r' <$W/$2.out | sed -n "s/.*KVMBOX-RESULT $1 \\([0-9]*\\).*/\\1/p" | head -n1; }

# boot_check NAME ID: the guest reached init (on failure, shorten later boot timeouts: a
# kvmbox that cannot boot Linux should not cost the full timeout six times over).
boot_check() {
	if has "KVMBOX-INIT" $2; then
		res PASS $1
	else
		res FAIL $1 "no init marker from the guest (kvmbox status $RC after ${SECS}s)"
		diag $1 $2
		[ "$BOOT_TMO" -gt 60 ] && BOOT_TMO=60
	fi
}

# --- Guest boots --------------------------------------------------------------------------

# The ECAM (MMCONFIG) window of the x86 MCFG table (src/arch/x86/layout.h: bus 0, 1 MiB).
ECAM_MEM="[mem 0xfeb00000-0xfebfffff]"

if want linux-boot-bzimage linux-poweroff-exit0 linux-nproc-1 linux-date linux-pci-ecam; then
	# No --no-reboot: a guest poweroff must end kvmbox, a restart would show a second marker.
	vm init $BOOT_TMO KVMBOX-INIT 2 -k $BZ -i $GI -a "$GAPPEND kvmbox.test=init"
	ehost=$(date +%s)
	boot_check linux-boot-bzimage init
	if [ "$RC" = 0 ] && has KVMBOX-POWEROFF init && [ "$(count KVMBOX-INIT init)" = 1 ]; then
		res PASS linux-poweroff-exit0
	else
		res FAIL linux-poweroff-exit0 "guest ran poweroff -f: kvmbox status $RC," \
			"$(count KVMBOX-INIT init) init marker(s), expected status 0 and 1 marker"
		diag linux-poweroff-exit0 init
	fi
	n=$(result nproc init)
	if [ "$n" = 1 ]; then res PASS linux-nproc-1; else res FAIL linux-nproc-1 "guest nproc '$n' with --cpus 1"; fi
	g=$(result date init)
	if [ -n "$g" ]; then
		want linux-date && echo "KVMBOX-T DATA linux-date $g $ehost"
	else
		res FAIL linux-date "the guest printed no date"
	fi
	# The guest took the MCFG's window for bus 0 (MMCONFIG), kept it (it is reserved in e820,
	# the ACPI host bridge found it) and reads the host bridge's extended config space (4096
	# bytes in sysfs; 256 when only 0xcf8/0xcfc works). The virtio tests show the devices still
	# work with it.
	tr -d '\r' <$W/init.out | sed -n 's/^.*KVMBOX-V pcicfg dmesg //p' >$W/pcicfg.txt
	hb=$(tr -d '\r' <$W/init.out | sed -n 's/^.*KVMBOX-V pcicfg hostbridge_bytes=\([0-9]*\).*/\1/p' | head -n1)
	if ! grep -qF "MMCONFIG for domain 0000 [bus 00-00] at $ECAM_MEM" $W/pcicfg.txt; then
		res FAIL linux-pci-ecam "no 'MMCONFIG for domain 0000 [bus 00-00] at $ECAM_MEM' in the guest's log:" \
			"$(tr '\n' '|' <$W/pcicfg.txt)"
		diag linux-pci-ecam init
	elif grep -qiE 'fail to add MMCONFIG|not using MMCONFIG|MMCONFIG is disabled' $W/pcicfg.txt; then
		res FAIL linux-pci-ecam "the guest gave MMCONFIG up: $(grep -iE 'fail|not using|disabled' $W/pcicfg.txt | tr '\n' '|')"
	elif [ "$hb" != 4096 ]; then
		res FAIL linux-pci-ecam "the host bridge's config space in sysfs is '${hb:-unreadable}' bytes, want 4096" \
			"(the extended space through ECAM)"
		diag linux-pci-ecam init
	else
		res PASS linux-pci-ecam
	fi
	sed 's/^/KVMBOX-I pcicfg: /' $W/pcicfg.txt
fi

for c in 2 4; do
	want linux-nproc-$c || continue
	vm nproc$c $BOOT_TMO KVMBOX-INIT 2 --no-reboot -c $c -k $BZ -i $GI -a "$GAPPEND kvmbox.test=init"
	n=$(result nproc nproc$c)
	if [ "$n" = $c ]; then
		res PASS linux-nproc-$c
	else
		res FAIL linux-nproc-$c "guest nproc '$n' with --cpus $c (kvmbox status $RC)"
		diag linux-nproc-$c nproc$c
	fi
done

# The PVH boot also checks the RTC's interrupts (kvmbox.rtc=1: tests/linux/rtc-irq.c in the
# guest, about 5 s): update interrupts, an alarm, and IRQ 8's count in /proc/interrupts, each a
# "KVMBOX-V rtc NAME ok|FAIL ..." line (the guest's periodic interrupts are Linux's own hrtimer,
# not the chip's: tests/guests/rtc.c checks those).
if want linux-boot-pvh linux-rtc-irq; then
	vm pvh $BOOT_TMO KVMBOX-INIT 2 --no-reboot -k $ELF -i $GI -a "$GAPPEND kvmbox.test=init kvmbox.rtc=1"
	if has KVMBOX-INIT pvh && [ "$RC" = 0 ]; then
		res PASS linux-boot-pvh
	else
		res FAIL linux-boot-pvh "ELF vmlinux (PVH entry): kvmbox status $RC," \
			"$(count KVMBOX-INIT pvh) init marker(s)"
		diag linux-boot-pvh pvh
	fi
	tr -d '\r' <$W/pvh.out | sed -n 's/^.*KVMBOX-V rtc //p' >$W/rtc.txt
	sed 's/^/KVMBOX-I rtc: /' $W/rtc.txt
	if [ "$(grep -c '^[a-z]* ok ' $W/rtc.txt)" = 3 ] && ! grep -q -e FAIL -e '^status' $W/rtc.txt; then
		res PASS linux-rtc-irq
	else
		res FAIL linux-rtc-irq "want uie, alarm and irqs ok: $(tr '\n' '|' <$W/rtc.txt)"
		diag linux-rtc-irq pvh
	fi
fi

if want linux-reboot-restarts linux-reboot-cmos-kept; then
	# The guest counts its boots in CMOS NVRAM: boot 1 reboots, boot 2 powers off. If NVRAM
	# were lost the guest would reboot forever: stop at the third marker.
	vm reboot $BOOT_TMO KVMBOX-INIT 3 -k $BZ -i $GI -a "$GAPPEND kvmbox.test=reboot"
	m=$(count KVMBOX-INIT reboot)
	if [ "$m" -ge 2 ]; then
		res PASS linux-reboot-restarts
	else
		res FAIL linux-reboot-restarts "guest ran reboot -f: $m init marker(s), kvmbox status $RC"
		diag linux-reboot-restarts reboot
	fi
	if [ "$m" -ge 2 ] && has "KVMBOX-BOOT 2" reboot && [ "$RC" = 0 ]; then
		res PASS linux-reboot-cmos-kept
	elif [ "$m" -ge 2 ]; then
		res FAIL linux-reboot-cmos-kept "boot counter in CMOS 0x5a not kept across reboot:" \
			"$(tr -d '\r' <$W/reboot.out | grep KVMBOX-BOOT | tr '\n' ' ')kvmbox status $RC"
		diag linux-reboot-cmos-kept reboot
	else
		res FAIL linux-reboot-cmos-kept "no reboot happened"
	fi
fi

if want linux-no-reboot-exit0; then
	vm noreboot $BOOT_TMO KVMBOX-INIT 2 --no-reboot -k $BZ -i $GI -a "$GAPPEND kvmbox.test=rebootonce"
	if [ "$RC" = 0 ] && has KVMBOX-REBOOTING noreboot && [ "$(count KVMBOX-INIT noreboot)" = 1 ]; then
		res PASS linux-no-reboot-exit0
	else
		res FAIL linux-no-reboot-exit0 "guest ran reboot -f with --no-reboot: kvmbox status $RC," \
			"$(count KVMBOX-INIT noreboot) init marker(s), expected status 0 and 1 marker"
		diag linux-no-reboot-exit0 noreboot
	fi
fi

# --- Virtio: disks, network, rng, console (two guest boots) ------------------------------

# The guest initramfs with the virtio and ext4 modules appended (/modules, see guest-init).
GV=$W/guest-virtio.gz
MKE2FS=/usr/sbin/mke2fs
VTMO=$((BOOT_TMO * 2))
NET_MB=32

# vget ID KEY: the rest of the guest's first "KVMBOX-V KEY ..." line.
vget() { tr -d '\r' <$W/$1.out | sed -n "s/^.*KVMBOX-V $2 //p" | head -n1; }
# field LINE NAME: the value of NAME=value in LINE.
field() { echo " $1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
hsum() { sha256sum "$1" | cut -d' ' -f1; }

# A persistent tap in the emulated host for the guest's eth0 (kvmbox opens it by name).
net_setup() {
	ip link show tap0 >/dev/null 2>&1 && return 0
	[ -c /dev/net/tun ] || { echo "no /dev/net/tun (tun.ko not loaded)"; return 1; }
	tunctl -t tap0 >/dev/null 2>&1 || { echo "busybox tunctl -t tap0 failed"; return 1; }
	ip addr add 10.0.0.1/24 dev tap0 && ip link set tap0 up || { echo "cannot configure tap0"; return 1; }
}

# shellcheck disable=SC2086
if want $V1 $V2; then
	cat $GI $KB/guest-modules.cpio.gz >$GV
	e2=
	if [ ! -x $MKE2FS ] || ! $MKE2FS -V >/dev/null 2>&1; then
		e2="no working $MKE2FS in the emulated host (install e2fsprogs on the real host)"
	fi
	truncate -s 64M $W/ext4.img
	truncate -s 8M $W/raw.img
	mkdir -p $W/rodir
	dd if=/dev/urandom of=$W/rodir/file bs=64k count=4 2>/dev/null
	rofile=$(hsum $W/rodir/file)
	if [ -z "$e2" ]; then
		$MKE2FS -q -F -t ext4 -E lazy_itable_init=0,lazy_journal_init=0 $W/ext4.img >/dev/null 2>$W/mke2fs.err &&
			$MKE2FS -q -F -t ext4 -d $W/rodir $W/ro.img 16M >/dev/null 2>>$W/mke2fs.err ||
			e2="mke2fs failed: $(head -n1 $W/mke2fs.err)"
	fi
	[ -f $W/ro.img ] || truncate -s 16M $W/ro.img
	ro0=$(hsum $W/ro.img)
	neterr=$(net_setup)
	dd if=/dev/urandom of=$W/blob bs=1M count=$NET_MB 2>/dev/null
	blob=$(hsum $W/blob)
	: >$W/netback
	if [ -z "$neterr" ]; then
		# Busybox nc quits after the first buffer when its stdin ends: the receiver reads
		# a sleep; it ends when the guest closes the connection.
		sleep 900 | nc -l -p 5001 >$W/netback &
		nc -l -p 5002 <$W/blob &
		netargs="--net tap=tap0,mac=52:54:00:12:34:56"
	else
		netargs=
	fi

	# Boot 1: serial console; ext4 written on vda, raw vdb, read-only ext4 vdc, net, rng.
	# The net card is on vhost-net (the default when /dev/vhost-net is usable): kvmbox has
	# /dev/vhost-net open and the kernel runs a vhost-PID thread for it.
	vh_seen=0
	vh_hook() { [ "$vh_seen" != 0 ] || vh_seen=$(ls -l /proc/$pid/fd 2>/dev/null | grep -c /dev/vhost-net); }
	VM_HOOK=vh_hook
	# shellcheck disable=SC2086
	vm virtio1 $VTMO "" 0 --no-reboot -m 384M \
		-d $W/ext4.img,serial=kvmbox-vda -d $W/raw.img,serial=KVMBOX-SERIAL-20CHAR \
		-d $W/ro.img,ro,serial=kvmbox-ro $netargs --rng \
		-k $BZ -i $GV -a "$GAPPEND kvmbox.test=virtio1"
	VM_HOOK=
	rc1=$RC
	ro1=$(hsum $W/ro.img)

	# Every device kvmbox was given is found by the guest's driver, on PCI with virtio's IDs
	# (0x1040 + virtio id) beside the host bridge, interrupting through MSI-X.
	m=$(vget virtio1 modules)
	got=$(vget virtio1 devices) pci=$(vget virtio1 pci) msix=$(vget virtio1 msix)
	want="1:virtio_net 2:virtio_blk 2:virtio_blk 2:virtio_blk 4:virtio_rng "
	wpci="0x1af4:0x1041 0x1af4:0x1042 0x1af4:0x1042 0x1af4:0x1042 0x1af4:0x1044 0x1b36:0x0008 "
	if [ -n "$neterr" ]; then
		want="2:virtio_blk 2:virtio_blk 2:virtio_blk 4:virtio_rng "
		wpci="0x1af4:0x1042 0x1af4:0x1042 0x1af4:0x1042 0x1af4:0x1044 0x1b36:0x0008 "
	fi
	if [ "$m" != ok ]; then
		res FAIL linux-virtio-devices "the harness could not load the guest's virtio modules: '${m:-no report}' (kvmbox status $RC)"
		diag linux-virtio-devices virtio1
	elif [ "$got" = "$want" ] && [ "$pci" = "$wpci" ] && [ "${msix:-0}" -ge $(echo $want | wc -w) ]; then
		res PASS linux-virtio-devices
	else
		res FAIL linux-virtio-devices "guest found virtio '$got' (want '$want'), pci '$pci' (want '$wpci')," \
			"$msix MSI-X virtio interrupts (want one per device at least)"
		diag linux-virtio-devices virtio1
	fi

	da=$(vget virtio1 "disk vda") db=$(vget virtio1 "disk vdb")
	if [ "$(field "$da" serial)" = kvmbox-vda ] && [ "$(field "$db" serial)" = KVMBOX-SERIAL-20CHAR ] &&
		[ "$(field "$da" sectors)" = 131072 ] && [ "$(field "$db" sectors)" = 16384 ]; then
		res PASS linux-virtio-blk-serials
	else
		res FAIL linux-virtio-blk-serials "want vda serial=kvmbox-vda sectors=131072, vdb" \
			"serial=KVMBOX-SERIAL-20CHAR sectors=16384; guest: vda '$da', vdb '$db'"
		diag linux-virtio-blk-serials virtio1
	fi

	r=$(vget virtio1 ro)
	if [ -n "$e2" ]; then
		res SKIP linux-virtio-blk-ro "$e2"
	elif [ "$(field "$r" sysfs)" = 1 ] && [ "$(field "$r" mount)" = 0 ] && [ "$(field "$r" opts)" = ro ] &&
		[ "$(field "$r" filewrite)" = failed ] && [ "$(field "$r" devwrite)" = failed ] &&
		[ "$(field "$r" sum)" = "$rofile" ] && [ "$ro0" = "$ro1" ]; then
		res PASS linux-virtio-blk-ro
	else
		res FAIL linux-virtio-blk-ro "want sysfs=1 mount=0 opts=ro filewrite=failed devwrite=failed" \
			"and the file's sum; guest: '${r:-no report}'; image file" \
			"$([ "$ro0" = "$ro1" ] && echo unchanged || echo CHANGED)"
		diag linux-virtio-blk-ro virtio1
	fi

	r=$(vget virtio1 rng)
	if [ "$(field "$r" bytes)" = 4096 ] && [ "$(field "$r" distinct)" -ge 200 ] 2>/dev/null &&
		[ "${r#*virtio}" != "$r" ]; then
		res PASS linux-virtio-rng
	else
		res FAIL linux-virtio-rng "want 4096 bytes from /dev/hwrng (rng_current virtio_rng.N)" \
			"with at least 200 distinct byte values; guest: '${r:-no report}'"
		diag linux-virtio-rng virtio1
	fi

	if [ -n "$neterr" ]; then
		res FAIL linux-virtio-net-ping "emulated host network: $neterr"
		res FAIL linux-virtio-net-tcp "emulated host network: $neterr"
	else
		r=$(vget virtio1 ping)
		if [ "$(field "$r" status)" = 0 ] && [ "${r#*3 packets received}" != "$r" ]; then
			res PASS linux-virtio-net-ping
		else
			res FAIL linux-virtio-net-ping "guest ping -c 3 10.0.0.1: '${r:-no report}'"
			diag linux-virtio-net-ping virtio1
		fi
		ri=$(vget virtio1 netin) ro=$(vget virtio1 netout)
		nb=$(wc -c <$W/netback) ns=$(hsum $W/netback)
		want=$((NET_MB * 1048576))
		echo "KVMBOX-I net: in '$ri', out '$ro', host received $nb bytes"
		if [ "$(field "$ri" bytes)" = $want ] && [ "$(field "$ri" sum)" = "$blob" ] &&
			[ "$(field "$ro" status)" = 0 ] && [ "$nb" = $want ] && [ "$ns" = "$blob" ]; then
			res PASS linux-virtio-net-tcp
		else
			res FAIL linux-virtio-net-tcp "$NET_MB MiB each way, sha256 $blob: guest received" \
				"'${ri:-nothing}', sent '${ro:-nothing}'; the host got $nb bytes, sum $ns"
			diag linux-virtio-net-tcp virtio1
			if want linux-virtio-net-tcp; then
				echo "KVMBOX-L linux-virtio-net-tcp guest counters after receiving: $(vget virtio1 netstat)"
				echo "KVMBOX-L linux-virtio-net-tcp guest counters after sending: $(vget virtio1 netstat2)"
				echo "KVMBOX-L linux-virtio-net-tcp host tap0: $(cd /sys/class/net/tap0/statistics &&
					for c in rx_packets rx_bytes rx_dropped rx_errors tx_packets tx_bytes tx_dropped tx_errors; do
						printf '%s=%s ' $c "$(cat $c)"; done)"
				echo "KVMBOX-L linux-virtio-net-tcp host TCP: $(awk '/^Tcp:/ { if (!h++) for (i = 2; i <= NF; i++) k[i] = $i; else for (i = 2; i <= NF; i++) if (k[i] ~ /Err|Csum|Retrans/) printf "%s=%s ", k[i], $i }' /proc/net/snmp)"
			fi
		fi
	fi
	if [ -n "$neterr" ]; then
		res FAIL linux-virtio-net-vhost "emulated host network: $neterr"
	elif [ ! -c /dev/vhost-net ]; then
		res FAIL linux-virtio-net-vhost "no /dev/vhost-net in the emulated host (vhost_net.ko not loaded)"
	elif [ "$vh_seen" -ge 1 ] && [ "$(vget virtio1 ping | sed -n 's/.*status=\([0-9]*\).*/\1/p')" = 0 ]; then
		res PASS linux-virtio-net-vhost
	else
		res FAIL linux-virtio-net-vhost "kvmbox had /dev/vhost-net open $vh_seen time(s) (want 1 with" \
			"vhost-net usable), guest ping '$(vget virtio1 ping)'"
	fi

	# vhost=off: the user-space path moves 8 MiB guest -> host (a vbench transfer).
	if want linux-virtio-net-user && [ -z "$neterr" ]; then
		: >$W/netuser
		sleep 900 | nc -l -p 5003 >$W/netuser &
		nlp=$!
		vh_seen=0
		VM_HOOK=vh_hook
		vm netuser $VTMO "" 0 --no-reboot -m 256M --net tap=tap0,mac=52:54:00:12:34:56,vhost=off \
			-k $BZ -i $GV -a "$GAPPEND kvmbox.test=vbench kvmbox.phase=netout kvmbox.mb=8"
		VM_HOOK=
		kill $nlp 2>/dev/null
		r=$(vget netuser vbench)
		nb=$(wc -c <$W/netuser)
		if [ "$RC" = 0 ] && [ "$(field "$r" status)" = 0 ] && [ "$nb" = 8388608 ] && [ "$vh_seen" = 0 ]; then
			res PASS linux-virtio-net-user
		else
			res FAIL linux-virtio-net-user "vhost=off: kvmbox status $RC, guest '$r', host got $nb bytes" \
				"(want 8388608), /dev/vhost-net open $vh_seen time(s) (want 0)"
			diag linux-virtio-net-user netuser
		fi
	elif want linux-virtio-net-user; then
		res FAIL linux-virtio-net-user "emulated host network: $neterr"
	fi

fi
if want $V2; then
	# Boot 2: console=hvc0 (--console virtio): checks the files, a shell on hvc0 driven through
	# kvmbox's stdin, then data written with conv=fsync and kvmbox killed with SIGKILL.
	marker=KVMBOX-MARK-$(date +%s)-$$
	rm -f $W/hvc.in
	mkfifo $W/hvc.in
	exec 4<>$W/hvc.in
	typed=0
	hvc_hook() {
		if [ $typed = 0 ] && has "KVMBOX-V shell ready" virtio2; then
			printf 'echo KVMBOX-SHELL-$((6 * 7))\nexit\n' >&4
			typed=1
		fi
	}
	VM_IN=$W/hvc.in VM_SIG=KILL VM_HOOK=hvc_hook
	vm virtio2 $VTMO KVMBOX-FSYNCED 1 --no-reboot --console virtio -m 256M \
		-d $W/ext4.img -d $W/raw.img -k $BZ -i $GV \
		-a "console=hvc0 quiet panic=-1 kvmbox.test=virtio2 kvmbox.marker=$marker"
	VM_IN=/dev/null VM_SIG=TERM VM_HOOK=
	exec 4>&-
	rc2=$RC

	if [ -n "$e2" ]; then
		res SKIP linux-virtio-blk-ext4 "$e2"
	else
		s1=$(tr -d '\r' <$W/virtio1.out | grep 'KVMBOX-V sum1 ' | sed 's/.*KVMBOX-V sum1 //' | sort)
		s2=$(tr -d '\r' <$W/virtio2.out | grep 'KVMBOX-V sum2 ' | sed 's/.*KVMBOX-V sum2 //' | sort)
		n1=$(echo "$s1" | grep -c '[0-9a-f]\{64\}')
		if [ "$rc1" = 0 ] && [ "$(vget virtio1 ext4)" = written ] && [ "$n1" = 3 ] && [ "$s1" = "$s2" ]; then
			res PASS linux-virtio-blk-ext4
		else
			res FAIL linux-virtio-blk-ext4 "boot 1 (kvmbox status $rc1, want 0): ext4" \
				"'$(vget virtio1 ext4)', $n1 sums; boot 2 sums $([ "$s1" = "$s2" ] && echo equal || echo DIFFER):" \
				"$(echo "$s2" | tr '\n' ' ')"
			diag linux-virtio-blk-ext4 virtio1
			diag linux-virtio-blk-ext4 virtio2
		fi
	fi

	if has KVMBOX-SHELL-42 virtio2; then
		res PASS linux-virtio-console
	else
		res FAIL linux-virtio-console "--console virtio: no answer on hvc0 to 'echo" \
			"KVMBOX-SHELL-\$((6 * 7))' (init marker: $(count 'KVMBOX-INIT virtio2' virtio2), typed: $typed)"
		diag linux-virtio-console virtio2
	fi

	f=$(vget virtio2 fsync)
	got=$(head -c ${#marker} $W/raw.img)
	chunk=$(dd if=$W/raw.img bs=64k skip=16 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
	if [ "$rc2" = stopped ] && [ "$(field "$f" status)" = 0 ] && [ "$got" = "$marker" ] &&
		[ "$(field "$f" sum)" = "$chunk" ]; then
		res PASS linux-virtio-blk-fsync-kill9
	else
		res FAIL linux-virtio-blk-fsync-kill9 "kvmbox SIGKILLed after the guest's conv=fsync" \
			"(run: $rc2, want stopped); guest '${f:-no report}'; image: marker" \
			"$([ "$got" = "$marker" ] && echo present || echo MISSING), 1 MiB at 1 MiB sum $chunk"
		diag linux-virtio-blk-fsync-kill9 virtio2
	fi
fi

# --- Links between VMs (--net link=NAME, --net socket=PATH; three guest boots at once) -------
# A (serve, 10.1.0.1) and B (fetch, 10.1.0.2) on link lan-a in the default directory
# (/run/kvmbox/links for root): B pings A and fetches 16 MiB from it, and tells A the sum it got.
# C (10.1.0.3) is alone at its own socket (--net socket=PATH), started once A serves: its pings
# to A must go unanswered. A idles until B and C are done, then the host stops it.

# stop_hook: a vm() hook that stops kvmbox once $W/<id>.stop exists.
stop_hook() { [ -f $W/$id.stop ] && kill -TERM $pid 2>/dev/null; }

# shellcheck disable=SC2086
if want $LINK; then
	[ -f $GV ] || cat $GI $KB/guest-modules.cpio.gz >$GV
	LTMO=$((BOOT_TMO * 3))
	LD=/run/kvmbox/links
	rm -rf $LD $W/links $W/link?.stop $W/link?.rc
	mkdir -p $W/links
	lrun="--no-reboot -m 256M -k $BZ -i $GV"
	lguest="$GAPPEND kvmbox.test=link kvmbox.mb=16"
	(
		VM_HOOK=stop_hook
		vm linka $LTMO "" 0 $lrun --net link=lan-a,mac=52:54:00:00:0a:01 \
			-a "$lguest kvmbox.role=serve kvmbox.ip=10.1.0.1"
		echo "$RC" >$W/linka.rc
	) &
	pa=$!
	(
		vm linkb $LTMO "" 0 $lrun --net link=lan-a \
			-a "$lguest kvmbox.role=fetch kvmbox.ip=10.1.0.2 kvmbox.peer=10.1.0.1"
		echo "$RC" >$W/linkb.rc
	) &
	pb=$!
	i=0
	while ! { [ -f $W/linka.out ] && has "KVMBOX-V serving" linka; } && alive $pa && [ $i -lt $((LTMO * 5)) ]; do
		usleep 200000
		i=$((i + 1))
	done
	smode=$(ls -l $LD/lan-a 2>&1 | cut -c1-10)
	(
		vm linkc $LTMO "" 0 $lrun --net socket=$W/links/c.sock \
			-a "$lguest kvmbox.role=isolated kvmbox.ip=10.1.0.3 kvmbox.peer=10.1.0.1"
		echo "$RC" >$W/linkc.rc
	) &
	pc=$!
	wait $pb
	wait $pc
	: >$W/linka.stop
	wait $pa
	left=$(ls -A $LD 2>&1 | tr '\n' ' ')
	rb=$(cat $W/linkb.rc 2>/dev/null) rcc=$(cat $W/linkc.rc 2>/dev/null)
	echo "KVMBOX-I link: A '$(vget linka serving)' / '$(vget linka "peer said")'; B '$(vget linkb fetched)';" \
		"C '$(vget linkc isolated)'; B status $rb, C status $rcc"

	r=$(vget linkb ping)
	if [ "$(field "$r" status)" = 0 ] && [ "${r#*3 packets received}" != "$r" ]; then
		res PASS linux-link-ping
	else
		res FAIL linux-link-ping "B pinging A over link lan-a: '${r:-no report}' (B status $rb)"
		diag linux-link-ping linkb
		diag linux-link-ping linka
	fi
	sa=$(vget linka serving) fb=$(vget linkb fetched) said=$(vget linka "peer said")
	want=$((16 * 1048576))
	if [ "$(field "$sa" bytes)" = $want ] && [ "$(field "$fb" bytes)" = $want ] &&
		[ -n "$(field "$sa" sum)" ] && [ "$(field "$fb" sum)" = "$(field "$sa" sum)" ] &&
		[ "$said" = "$(field "$sa" sum)" ] && [ "$rb" = 0 ]; then
		res PASS linux-link-tcp
		echo "KVMBOX-I link: 16 MiB A -> B in $(field "$fb" secs) s"
	else
		res FAIL linux-link-tcp "16 MiB A -> B: A served '${sa:-nothing}', B fetched '${fb:-nothing}'," \
			"A heard back '${said:-nothing}' (B status $rb)"
		diag linux-link-tcp linkb
		diag linux-link-tcp linka
	fi
	r=$(vget linkc isolated)
	if [ -n "$(vget linkc link)" ] && [ -n "$r" ] && [ "$(field "$r" status)" != 0 ] &&
		[ "${r#*" 0 packets received"}" != "$r" ] && [ "$rcc" = 0 ]; then
		res PASS linux-link-isolated
	else
		res FAIL linux-link-isolated "C on another socket pinging A: '${r:-no report}' (want none" \
			"answered), C status $rcc"
		diag linux-link-isolated linkc
	fi
	# The guest's features (bit 0 CSUM, 1 GUEST_CSUM, 7/8 GUEST_TSO4/6, 11/12 HOST_TSO4/6):
	# a link card offers no offload; MRG_RXBUF (15) it does.
	f=$(field "$(vget linkb link)" features)
	if [ -n "$f" ] && [ "$(echo "$f" | cut -c1,2,8,9,12,13)" = 000000 ] && [ "$(echo "$f" | cut -c16)" = 1 ]; then
		res PASS linux-link-features
	else
		res FAIL linux-link-features "the guest's virtio-net features '$f': want no CSUM/TSO bits, MRG_RXBUF"
		diag linux-link-features linkb
	fi
	if [ "$smode" = srw------- ] && { [ -z "$left" ] || [ "$left" = "lan-a.lock " ]; }; then
		res PASS linux-link-socket-file
	else
		res FAIL linux-link-socket-file "$LD/lan-a while the link was up: '$smode' (want srw-------);" \
			"left in $LD after every member stopped: '$left' (want only lan-a.lock)"
	fi
fi

# --- VM lifecycle: control socket, snapshots, migration, balloon, shutdown (three boots) ----
# The guest is kvmbox.test=life (guest-init): "KVMBOX-C <n> end" about every 0.2 s, commands
# written into kvmbox's stdin (a FIFO), answers "KVMBOX-R <id> <command> <result>".
#   boot 1 (256M): pause; snapshot, kill -9, restore; hibernate, restore --copy in a fresh
#                  process; corrupt snapshots refused; ctl shutdown -> acpid powers off
#   boot 2 (512M, net, disk, --migration-key on both sides: the stream is encrypted): migrate to
#                  a closed port, to a destination killed mid-way, then live (tcp) while the
#                  guest dirties memory; ctl shutdown timeout=5 unanswered
#   boot 3 (512M, --balloon): 400 MiB touched, balloon 64M gives it back, 512M deflates
#   boot 4 (256M, an 8 MiB disk, no shared storage): migrate disks=copy refused (a destination
#                  disk of another size, the source's own image), then done over a unix socket
#                  into a zeroed image while the guest keeps writing its disk
CTL_TMO=30

# lstart ID IN kvmbox-args...: start kvmbox in the background with stdin IN; output in
# $W/ID.out, stderr in $W/ID.err; sets LPID.
lstart() {
	_id=$1 _in=$2
	shift 2
	DM0=$(dmesg | wc -l)
	kvmbox "$@" <$_in >$W/$_id.out 2>$W/$_id.err &
	LPID=$!
	echo "KVMBOX-I $_id: kvmbox $* (pid $LPID)"
}

# lwait ID PATTERN SECS PID: until $W/ID.out has a line matching PATTERN (grep regex, after
# the \r are dropped); false after SECS seconds or once PID has exited (sets WHY).
lwait() {
	_n=0
	while [ $_n -lt $(($3 * 5)) ]; do
		tr -d '\r' <$W/$1.out | grep -q "$2" && return 0
		if ! alive $4; then
			tr -d '\r' <$W/$1.out | grep -q "$2" && return 0
			WHY="kvmbox exited before '$2' appeared"
			return 1
		fi
		usleep 200000
		_n=$((_n + 1))
	done
	WHY="no '$2' within $3s"
	return 1
}

# Counter lines of ID: the last and the first complete ones.
lctr() { tr -d '\r' <$W/$1.out | sed -n 's/^KVMBOX-C \([0-9][0-9]*\) end$/\1/p' | tail -n1; }
lfirst() { tr -d '\r' <$W/$1.out | sed -n 's/^KVMBOX-C \([0-9][0-9]*\) end$/\1/p' | head -n1; }

# lticks ID SECS PID: the counter of ID advances by 3 within SECS seconds (the guest runs).
lticks() {
	_c=$(lctr $1)
	lwait $1 "^KVMBOX-C $((${_c:-0} + 3)) end" $2 $3 || { WHY="counter stuck at ${_c:-none}: $WHY"; return 1; }
}

# lctl SOCK WORDS...: kvmbox ctl with a time limit (CTL_TMO); sets CTL (stdout and stderr)
# and CTL_RC.
lctl() {
	CTL=$(timeout -k 5 $((CTL_TMO + 10)) kvmbox ctl --timeout $CTL_TMO "$@" 2>&1)
	CTL_RC=$?
	echo "KVMBOX-I ctl $*: status $CTL_RC: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-400)"
}
# jget NAME: the value of "NAME": in the last ctl reply (first occurrence).
jget() { echo "$CTL" | sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\).*/\1/p" | head -n1; }
# lstate SOCK: ST = the state member of info (empty when no answer).
lstate() {
	lctl "$1" info
	ST=$(jget state)
}

# lcmd ID FD SECS CMD [ARG]: write "<seq> CMD ARG" to the guest through fd FD, wait for its
# answer; sets R (the answer after the command word) or WHY.
LSEQ=0
lcmd() {
	_id=$1 _fd=$2 _s=$3
	shift 3
	LSEQ=$((LSEQ + 1))
	echo "$LSEQ $*" >&$_fd
	R=
	lwait $_id "^KVMBOX-R $LSEQ " $_s $LPID || { WHY="guest command '$*': $WHY"; return 1; }
	R=$(tr -d '\r' <$W/$_id.out | sed -n "s/^KVMBOX-R $LSEQ [^ ]* //p" | head -n1)
	echo "KVMBOX-I $_id: guest '$*' -> $R"
}

# lreap PID SECS: wait for PID to exit, at most SECS seconds (then kill -9); sets RC
# (its status, or "timeout") and SECS_R.
lreap() {
	_t0=$(now) _n=0
	while alive $1 && [ $_n -lt $(($2 * 5)) ]; do usleep 200000; _n=$((_n + 1)); done
	if alive $1; then
		kill -KILL $1 2>/dev/null
		wait $1
		RC=timeout
	else
		wait $1
		RC=$?
	fi
	SECS_R=$(awk -v a="$_t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
}

lkill() { for _p in "$@"; do [ -n "$_p" ] && kill -KILL $_p 2>/dev/null && wait $_p; done; return 0; }
lrss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$1/status 2>/dev/null; }
# imgsum IMG N: sha256 of the MiB at N MiB of the image.
imgsum() { dd if=$1 bs=1M skip=$2 count=1 2>/dev/null | sha256sum | cut -d' ' -f1; }
# notrun "NAMES" WHY: FAIL for each of NAMES that did not report yet (a chain step failed).
notrun() {
	for _t in $1; do
		eval "_d=\${done_$(echo $_t | tr - _):-}"
		[ -n "$_d" ] || lres FAIL $_t "not run: $2"
	done
}
# lres: res that remembers which tests reported (for notrun).
lres() {
	eval "done_$(echo $2 | tr - _)=1"
	res "$@"
}
# lfail NAME ID WHY...: FAIL with diagnostics (the output of ID).
lfail() {
	_n=$1 _i=$2
	shift 2
	lres FAIL $_n "$*"
	diag $_n $_i
}

[ -f $GV ] || cat $GI $KB/guest-modules.cpio.gz >$GV

# shellcheck disable=SC2086
life1() {
	rm -f $W/l1.in $W/l1.sock $W/l2.sock $W/l3.sock
	mkfifo $W/l1.in
	exec 5<>$W/l1.in
	truncate -s 16M $W/life.img
	# What a restore gives again: the host resources are never taken from the snapshot.
	L1VM="-m 256M -d $W/life.img -k $BZ -i $GV"
	lstart l1 $W/l1.in run $L1VM --api $W/l1.sock -a "$GAPPEND kvmbox.test=life kvmbox.mb=8"
	P=$LPID
	if ! lwait l1 '^KVMBOX-C 3 end' $BOOT_TMO $P; then
		lkill $P
		notrun "$LIFE1" "the lifecycle guest did not start: $WHY"
		diag linux-life-pause l1
		return
	fi
	tr -d '\r' <$W/l1.out | grep 'KVMBOX-V' | sed 's/^/KVMBOX-I l1: /'

	# Pause: the counter stands still for 2 s, info says paused; resume: it counts again.
	lctl $W/l1.sock pause
	prc=$CTL_RC
	usleep 500000 # a line being printed at the pause may still come out
	c1=$(lctr l1) s1=$(stat -c %s $W/l1.out)
	sleep 2
	c2=$(lctr l1) s2=$(stat -c %s $W/l1.out)
	lstate $W/l1.sock
	st=$ST
	lctl $W/l1.sock resume
	rrc=$CTL_RC
	if [ "$prc" = 0 ] && [ "$rrc" = 0 ] && [ "$c1" = "$c2" ] && [ "$s1" = "$s2" ] && [ "$st" = paused ] &&
		lticks l1 5 $P; then
		lres PASS linux-life-pause
	else
		lfail linux-life-pause l1 "ctl pause status $prc, resume $rrc; counter $c1 -> $c2 and output" \
			"$s1 -> $s2 bytes over 2 s while paused (want equal); info state '$st' (want paused);" \
			"after resume: ${WHY:-counting}"
	fi
	WHY=

	# Snapshot (the VM runs on), kill -9, restore: the counter continues, the tmpfs data and
	# the disk are intact.
	ok=1 why=
	lcmd l1 5 60 disk 1 || { ok=0 why=$WHY; }
	d1=$(field "$R" sum)
	cb=$(lctr l1)
	lctl $W/l1.sock snapshot $W/life1.snap
	ca=$(lctr l1)
	echo "KVMBOX-I snapshot figures: pause_ms=$(jget pause_ms) total_ms=$(jget total_ms)" \
		"ram_bytes=$(jget ram_bytes) file_bytes=$(jget file_bytes) (counter $cb..$ca)"
	[ $ok = 1 ] && [ "$CTL_RC" != 0 ] && ok=0 why="ctl snapshot status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"
	[ $ok = 1 ] && ! lticks l1 5 $P && ok=0 why="the VM stopped after the snapshot: $WHY"
	lkill $P
	if [ $ok = 0 ] || [ ! -s $W/life1.snap ]; then
		lfail linux-life-snapshot l1 "${why:-no snapshot file}"
		notrun "$LIFE1" "linux-life-snapshot failed"
		return
	fi
	echo "KVMBOX-I snapshot file: $(ls -l $W/life1.snap | awk '{ print $5 }') bytes," \
		"$(du -k $W/life1.snap | cut -f1) KiB allocated"
	lstart l2 $W/l1.in restore $W/life1.snap $L1VM --api $W/l2.sock
	P=$LPID
	if ! lwait l2 '^KVMBOX-C [0-9]* end' 30 $P; then
		lfail linux-life-snapshot l2 "restore: no counter line: $WHY"
		lkill $P
		notrun "$LIFE1" "linux-life-snapshot failed"
		return
	fi
	f=$(lfirst l2)
	lcmd l2 5 30 check && c=$R || c="none: $WHY"
	lcmd l2 5 60 disk 2 && d=$R || d="none: $WHY"
	lstate $W/l2.sock
	st=$ST
	i1=$(imgsum $W/life.img 1) i2=$(imgsum $W/life.img 2)
	if [ "$f" -ge "$cb" ] && [ "$f" -le $((ca + 2)) ] && ! has KVMBOX-INIT l2 && [ "${c%% *}" = ok ] &&
		[ "${d%% *}" = ok ] && [ "$(field "$d" sum)" = "$i2" ] && [ "$d1" = "$i1" ] && [ "$st" = running ]; then
		lres PASS linux-life-snapshot
	else
		lfail linux-life-snapshot l2 "restored: first counter $f (want $cb..$((ca + 2)): it was at" \
			"$cb..$ca at the snapshot), init markers $(count KVMBOX-INIT l2) (want 0); check '$c';" \
			"disk '$d', image $i2; disk before the snapshot sum $d1, image $i1; info state '$st'"
	fi

	# Hibernate: the process exits 0 and its socket goes; restore --copy in a fresh process.
	lctl $W/l2.sock hibernate $W/life2.snap
	hrc=$CTL_RC
	lreap $P 15
	last=$(lctr l2)
	sock=absent
	[ -e $W/l2.sock ] && sock=present

	# Corrupt snapshots (life1.snap is no longer mapped by any VM, and no VM holds the disk, so
	# an intact file would restore): a flipped RAM byte (in the kernel's text at 16 MiB) and a
	# truncated file are refused: status 1, one line saying why, no guest output.
	why=
	off=$((4096 + 16 * 1048576 + 3 * 4096 + 123))
	b=$(dd if=$W/life1.snap bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "\\$(printf %o $((b ^ 85)))" | dd of=$W/life1.snap bs=1 seek=$off count=1 conv=notrunc 2>/dev/null
	b2=$(dd if=$W/life1.snap bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	[ "$b2" = $((b ^ 85)) ] || why="could not flip the byte at $off ($b -> $b2)"
	for k in flipped truncated; do
		[ -n "$why" ] && break
		if [ $k = truncated ]; then
			printf "\\$(printf %o $b)" | dd of=$W/life1.snap bs=1 seek=$off count=1 conv=notrunc 2>/dev/null
			truncate -s $(($(stat -c %s $W/life1.snap) / 2)) $W/life1.snap
		fi
		timeout -k 5 $BAD_TMO kvmbox restore $W/life1.snap $L1VM </dev/null >$W/corrupt-$k.out 2>$W/corrupt-$k.err
		rc=$?
		lines=$(wc -l <$W/corrupt-$k.err)
		first=$(head -n1 $W/corrupt-$k.err)
		echo "KVMBOX-I restore of a $k snapshot: status $rc: $first"
		[ $k = flipped ] && pat='corrupt|checksum' || pat='truncated'
		if [ $rc != 1 ] || [ "$lines" != 1 ] || [ "${first#kvmbox: }" = "$first" ] || [ -s $W/corrupt-$k.out ] ||
			! echo "$first" | grep -qE "$pat"; then
			why="$k snapshot: status $rc (want 1), $lines stderr line(s) (want 1 'kvmbox: ...$pat...'):"
			why="$why '$(echo "$first" | cut -c1-150)', $(wc -c <$W/corrupt-$k.out) bytes of guest output (want 0)"
		fi
	done
	if [ -z "$why" ]; then lres PASS linux-life-restore-corrupt; else lres FAIL linux-life-restore-corrupt "$why"; fi

	ok=0
	if [ "$hrc" = 0 ] && [ "$RC" = 0 ] && [ $sock = absent ]; then
		lstart l3 $W/l1.in restore $W/life2.snap $L1VM --copy --api $W/l3.sock
		P=$LPID
		lwait l3 '^KVMBOX-C [0-9]* end' 30 $P && ok=1
		f=$(lfirst l3)
		lcmd l3 5 30 check && c=$R || c="none: $WHY"
		if [ $ok = 1 ] && [ "$f" -ge $((last + 1)) ] && [ "$f" -le $((last + 2)) ] && [ "${c%% *}" = ok ] &&
			lticks l3 5 $P; then
			lres PASS linux-life-hibernate
		else
			ok=0
			lfail linux-life-hibernate l3 "restore --copy: first counter ${f:-none} (want $((last + 1))" \
				"or $((last + 2))), check '$c' ${WHY:+($WHY)}"
		fi
	else
		lfail linux-life-hibernate l2 "ctl hibernate status $hrc, kvmbox status $RC after ${SECS_R}s" \
			"(want 0), control socket $sock (want absent)"
	fi

	# ctl shutdown: the power button reaches acpid, whose handler runs poweroff -f.
	if [ $ok = 0 ]; then
		lkill $P
		notrun linux-life-shutdown-acpi "no running restored VM (linux-life-hibernate failed)"
		return
	fi
	a=$(vget l1 acpid)
	lctl $W/l3.sock shutdown timeout=30
	src=$CTL_RC
	lreap $P 40
	if [ "$src" = 0 ] && [ "$RC" = 0 ] && has KVMBOX-ACPI l3 && ! grep -q 'did not power off' $W/l3.err; then
		lres PASS linux-life-shutdown-acpi
	else
		lfail linux-life-shutdown-acpi l3 "ctl shutdown status $src; kvmbox status $RC after ${SECS_R}s" \
			"(want 0); acpid handler ran: $(has KVMBOX-ACPI l3 && echo yes || echo NO); guest acpid '$a'"
	fi
	exec 5>&-
}

# shellcheck disable=SC2086
life2() {
	ne=$(net_setup)
	if [ -n "$ne" ]; then
		notrun "$LIFE2" "emulated host network: $ne"
		return
	fi
	rm -f $W/m1.in $W/m2.in $W/m1.sock $W/d1.sock $W/d2.sock $W/mig1.sock
	mkfifo $W/m1.in $W/m2.in
	exec 5<>$W/m1.in 6<>$W/m2.in
	truncate -s 16M $W/mig.img
	# What a destination gives again (its own host resources; sizes and devices must match).
	# Over tcp the stream is encrypted: the same --migration-key on both sides.
	head -c 32 /dev/urandom >$W/mig.key && chmod 600 $W/mig.key
	M1VM="-m 512M -d $W/mig.img --net tap=tap0,mac=52:54:00:12:34:57 --migration-key $W/mig.key -k $BZ -i $GV"
	lstart m1 $W/m1.in run $M1VM --api $W/m1.sock -a "$GAPPEND kvmbox.test=life kvmbox.mb=32 kvmbox.net=1"
	S=$LPID
	if ! lwait m1 '^KVMBOX-C 3 end' $BOOT_TMO $S; then
		lkill $S
		notrun "$LIFE2" "the lifecycle guest did not start: $WHY"
		diag linux-life-migrate m1
		return
	fi
	tr -d '\r' <$W/m1.out | grep 'KVMBOX-V' | sed 's/^/KVMBOX-I m1: /'
	if ! lcmd m1 5 120 fill 5 || ! lcmd m1 5 120 dirty start 32; then
		lkill $S
		notrun "$LIFE2" "guest setup: $WHY"
		diag linux-life-migrate m1
		return
	fi

	# Nothing listens: an error reply, the source runs on.
	why=
	for uri in tcp:127.0.0.1:4999 unix:$W/nothing.sock; do
		lctl $W/m1.sock migrate $uri
		if [ "$CTL_RC" != 1 ] || ! echo "$CTL" | grep -q '"error"'; then
			why="migrate $uri: ctl status $CTL_RC (want 1 and an error reply)"
			break
		fi
		lstate $W/m1.sock
		[ "$ST" = running ] || { why="after migrate $uri: info state '$ST' (want running)"; break; }
		lticks m1 5 $S || { why="after migrate $uri: $WHY"; break; }
	done
	if [ -z "$why" ]; then lres PASS linux-life-migrate-closed-port; else lfail linux-life-migrate-closed-port m1 "$why"; fi
	alive $S || { notrun "$LIFE2" "the source VM is gone"; return; }

	# The destination is killed (-9) once it holds 16 MiB of guest RAM: error reply, the
	# source runs on with its memory intact (the dirtier's checks and the fixed data's sum).
	lstart d1 /dev/null run $M1VM --incoming unix:$W/mig1.sock --api $W/d1.sock
	D=$LPID
	n=0
	while ! grep -q 'waiting for a migration' $W/d1.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
	(lctl $W/m1.sock migrate unix:$W/mig1.sock; echo "$CTL_RC $(echo "$CTL" | tr -d '\n' | tr -s ' ')" >$W/d1.rc) &
	cpid=$!
	r0=$(lrss $D) n=0 r=$r0
	while alive $D && [ $n -lt 500 ]; do
		r=$(lrss $D)
		[ $((${r:-0} - ${r0:-0})) -gt 16384 ] && break
		usleep 20000
		n=$((n + 1))
	done
	lkill $D
	n=0
	while alive $cpid && [ $n -lt 300 ]; do usleep 200000; n=$((n + 1)); done
	lkill $cpid
	res1=$(cat $W/d1.rc 2>/dev/null)
	echo "KVMBOX-I destination killed with RSS ${r0:-?} -> ${r:-?} KiB; migrate: $res1"
	why=
	LPID=$S
	if [ "${res1%% *}" != 1 ]; then
		why="migrate with the destination killed: ctl '$(echo "$res1" | cut -c1-200)' (want status 1)"
	elif ! lstate $W/m1.sock || [ "$ST" != running ]; then
		why="source info after the failed migration: '$(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-150)'"
	elif ! lticks m1 5 $S; then
		why="source after the failed migration: $WHY"
	elif ! lcmd m1 5 60 check || [ "${R%% *}" != ok ]; then
		why="source memory after the failed migration: check '$R' $WHY"
	elif ! lcmd m1 5 30 dirty status || [ "$(field "$R" mismatches)" != 0 ]; then
		why="source dirtier after the failed migration: '$R' $WHY"
	fi
	if [ -z "$why" ]; then lres PASS linux-life-migrate-dest-killed; else lfail linux-life-migrate-dest-killed m1 "$why"; fi
	alive $S || { notrun "$LIFE2" "the source VM is gone"; return; }

	# Live migration over tcp while the dirtier runs.
	lstart d2 $W/m2.in run $M1VM --incoming tcp:127.0.0.1:4445 --api $W/d2.sock
	D=$LPID
	n=0
	while ! grep -q 'waiting for a migration' $W/d2.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
	LPID=$S
	lcmd m1 5 30 dirty status
	p0=$(field "$R" passes)
	cb=$(lctr m1)
	CTL_TMO=300
	lctl $W/m1.sock migrate tcp:127.0.0.1:4445
	mrc=$CTL_RC CTL_TMO=30
	fig="rounds=$(jget rounds) bytes=$(jget bytes) pages=$(jget pages) total_ms=$(jget total_ms) downtime_ms=$(jget downtime_ms)"
	echo "KVMBOX-I migration figures: $fig (dirtier at pass $p0 before)"
	lreap $S 15
	src=$RC
	ca=$(lctr m1)
	LPID=$D
	why=
	if [ "$mrc" != 0 ] || [ -z "$(jget downtime_ms)" ]; then
		why="ctl migrate status $mrc: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-200)"
	elif [ "$src" != 0 ]; then
		why="source kvmbox status $src after ${SECS_R}s (want 0)"
	elif ! lwait d2 '^KVMBOX-C [0-9]* end' 30 $D; then
		why="destination: no counter: $WHY"
	fi
	f=$(lfirst d2)
	if [ -z "$why" ] && { [ "$f" -lt "$cb" ] || [ "$f" -gt $((ca + 2)) ]; }; then
		why="destination's first counter $f (want $cb..$((ca + 2)))"
	fi
	if [ -z "$why" ]; then
		lstate $W/d2.sock
		st=$ST
		lcmd d2 6 60 check && c=$R || c="none: $WHY"
		# Two more full passes of the dirtier on the destination, then stop it.
		lcmd d2 6 30 dirty status
		p1=$(field "$R" passes) p2=$p1 n=0
		while [ "${p2:-0}" -lt $((${p1:-0} + 2)) ] && [ $n -lt 30 ]; do
			sleep 1
			lcmd d2 6 30 dirty status && p2=$(field "$R" passes)
			n=$((n + 1))
		done
		lcmd d2 6 30 dirty stop && dr=$R || dr="none: $WHY"
		lcmd d2 6 30 ping && pg=$R || pg="none: $WHY"
		lcmd d2 6 60 disk 3 && d=$R || d="none: $WHY"
		i3=$(imgsum $W/mig.img 3)
		if [ "$st" != running ]; then
			why="destination info state '$st' (want running)"
		elif [ "${c%% *}" != ok ]; then
			why="32 MiB written before the migration: check '$c'"
		elif [ "$(field "$dr" mismatches)" != 0 ] || [ "${p2:-0}" -lt $((${p1:-0} + 2)) ] ||
			[ "${p1:-0}" -le "${p0:-0}" ]; then
			why="dirtier: '$dr' (passes $p0 before the migration, $p1 after it, $p2 later; want no mismatch)"
		elif [ "$(field "$pg" status)" != 0 ]; then
			why="ping 10.0.0.1 after the migration: '$pg'"
		elif [ "${d%% *}" != ok ] || [ "$(field "$d" sum)" != "$i3" ]; then
			why="disk after the migration: '$d', image $i3"
		fi
	fi
	if [ -z "$why" ]; then
		lres PASS linux-life-migrate
	else
		lfail linux-life-migrate d2 "$why ($fig)"
		diag linux-life-migrate m1
	fi
	alive $D || { notrun linux-life-shutdown-timeout "no migrated VM"; return; }

	# The guest ignores the power button (acpid stopped): kvmbox stops it after the timeout.
	lcmd d2 6 30 acpid stop
	lctl $W/d2.sock shutdown timeout=5
	src=$CTL_RC
	lreap $D 30
	if [ "$src" = 0 ] && [ "$RC" = 0 ] && ! has KVMBOX-ACPI d2 && grep -q 'did not power off' $W/d2.err &&
		awk -v s="$SECS_R" 'BEGIN { exit !(s >= 4 && s <= 10) }'; then
		lres PASS linux-life-shutdown-timeout
	else
		lfail linux-life-shutdown-timeout d2 "ctl shutdown timeout=5 status $src; kvmbox status $RC after" \
			"${SECS_R}s (want 0 after ~5s, with a warning), acpid handler ran: $(has KVMBOX-ACPI d2 && echo YES || echo no)"
	fi
	exec 5>&- 6>&-
}

# shellcheck disable=SC2086
life3() {
	rm -f $W/b1.in $W/b1.sock
	mkfifo $W/b1.in
	exec 5<>$W/b1.in
	lstart b1 $W/b1.in run -m 512M --balloon --api $W/b1.sock -k $BZ -i $GV \
		-a "$GAPPEND kvmbox.test=life kvmbox.mb=1"
	P=$LPID
	if ! lwait b1 '^KVMBOX-C 3 end' $BOOT_TMO $P; then
		lkill $P
		lfail linux-life-balloon b1 "the lifecycle guest did not start: $WHY"
		return
	fi
	why=
	touched=400
	lcmd b1 5 120 touch $touched || why=$WHY
	r0=$(lrss $P)
	lctl $W/b1.sock balloon 64M
	brc=$CTL_RC
	# Inflating (the guest keeps ~60 MiB the balloon cannot take: actual stops near 95 MiB):
	# at most 20 s, until kvmbox's RSS has fallen enough, actual is within 16 MiB of the target
	# or has not moved for 5 s.
	need=$(((touched - 64) / 2))
	n=0 prev='' same=0 a=''
	while [ $n -lt 20 ] && [ -z "$why" ]; do
		lctl $W/b1.sock info
		a=$(jget actual)
		[ -n "$a" ] && [ "$a" -le $((80 * 1048576)) ] && break
		[ $(((${r0:-0} - $(lrss $P)) / 1024)) -ge $need ] && break
		if [ "$a" = "$prev" ]; then same=$((same + 1)); else same=0; fi
		[ $same -ge 5 ] && break
		prev=$a
		sleep 1
		n=$((n + 1))
	done
	r1=$(lrss $P)
	drop=$(((${r0:-0} - ${r1:-0}) / 1024))
	echo "KVMBOX-I balloon 64M: actual $a after ${n}s; kvmbox RSS $((${r0:-0} / 1024)) -> $((${r1:-0} / 1024)) MiB"
	if [ -z "$why" ] && { [ "$brc" != 0 ] || [ "$drop" -lt $need ]; }; then
		why="ctl balloon 64M status $brc; after ${n}s balloon actual ${a:-none}; kvmbox RSS fell by $drop MiB"
		why="$why ($((${r0:-0} / 1024)) -> $((${r1:-0} / 1024)) MiB), want at least $need after touching $touched MiB"
	fi
	if [ -z "$why" ]; then
		lctl $W/b1.sock balloon 512M
		brc=$CTL_RC n=0
		while [ $n -lt 20 ]; do
			lctl $W/b1.sock info
			a=$(jget actual)
			[ "$a" = 536870912 ] && break
			sleep 1
			n=$((n + 1))
		done
		lcmd b1 5 30 mem && m=$R || m="none: $WHY"
		echo "KVMBOX-I balloon 512M: actual $a after ${n}s, guest $m, RSS $(($(lrss $P) / 1024)) MiB"
		if [ "$brc" != 0 ] || [ "$a" != 536870912 ]; then
			why="deflate: ctl balloon 512M status $brc; balloon actual ${a:-none} after ${n}s (want 536870912)"
		elif ! lticks b1 5 $P; then
			why="after the balloon: $WHY"
		fi
	fi
	lkill $P
	if [ -z "$why" ]; then lres PASS linux-life-balloon; else lfail linux-life-balloon b1 "$why"; fi
	exec 5>&-
}

# shellcheck disable=SC2086
want $LIFE1 && life1
# shellcheck disable=SC2086
want $LIFE2 && life2
want $LIFE3 && life3

# Migration without shared storage (migrate ... disks=copy). The source's disk A holds random
# bytes from the host; the guest's disk writer (guest-init dwrite) rewrites it piece after piece
# (O_DIRECT, so they reach the disk; a request is nearly always in flight, so the final round has
# blocks to send) and keeps its own record of what the disk must hold. After the migration the
# guest's view must match its record and the destination's image B, and the source's image A must
# be as the hand-over left it while the guest writes on at the destination.
# shellcheck disable=SC2086
life_disks() {
	rm -f $W/k1.in $W/k2.in $W/k1.sock $W/k2.sock $W/kx.sock $W/kmig.sock
	mkfifo $W/k1.in $W/k2.in
	exec 7<>$W/k1.in 8<>$W/k2.in
	dd if=/dev/urandom of=$W/dA.img bs=1M count=8 2>/dev/null
	rm -f $W/dB.img $W/dC.img
	truncate -s 8M $W/dB.img
	truncate -s 12M $W/dC.img
	K1VM="-m 256M -k $BZ -i $GV"
	lstart k1 $W/k1.in run $K1VM -d $W/dA.img --api $W/k1.sock -a "$GAPPEND kvmbox.test=life kvmbox.mb=4"
	S=$LPID
	if ! lwait k1 '^KVMBOX-C 3 end' $BOOT_TMO $S || ! lcmd k1 7 60 dwrite start; then
		lkill $S
		notrun "$LIFE4" "the lifecycle guest did not start its disk writer: $WHY"
		diag linux-life-migrate-disks k1
		return
	fi

	# Refused by the destination: its disk is 12 MiB, then it is A itself (the same file on
	# this host). One-line error reply, the destination exits, the source's guest goes on.
	why=
	for c in "dC.img:bytes here, the source's is 8388608" "dA.img:the source's own image"; do
		lstart kx /dev/null run $K1VM -d $W/${c%%:*} --incoming unix:$W/kx.sock
		D=$LPID n=0
		while ! grep -q 'waiting for a migration' $W/kx.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
		lctl $W/k1.sock migrate unix:$W/kx.sock disks=copy
		lreap $D 30
		LPID=$S
		if [ "$CTL_RC" != 1 ] || ! echo "$CTL" | grep -qF "${c#*:}"; then
			why="destination disk ${c%%:*}: ctl migrate status $CTL_RC: '$(echo "$CTL" | tr -d '\n' | cut -c1-300)' (want 1 and '${c#*:}')"
		elif [ "$RC" = 0 ] || [ "$RC" = timeout ]; then
			why="destination disk ${c%%:*}: the destination's status $RC (want a failure)"
		elif ! lstate $W/k1.sock || [ "$ST" != running ]; then
			why="destination disk ${c%%:*}: source info state '$ST' (want running)"
		elif ! lticks k1 5 $S || ! lcmd k1 7 30 dwrite status || [ "$(field "$R" failed)" != 0 ]; then
			why="destination disk ${c%%:*}: the source's guest after the refusal: '$R' $WHY"
		fi
		[ -n "$why" ] && break
	done
	if [ -z "$why" ] && [ "$(hsum $W/dC.img)" != "$(head -c 12582912 /dev/zero | sha256sum | cut -d' ' -f1)" ]; then
		why="the refused destination's disk dC.img was written"
	fi
	if [ -z "$why" ]; then
		lres PASS linux-life-migrate-disks-refused
	else
		lfail linux-life-migrate-disks-refused k1 "$why"
		diag linux-life-migrate-disks-refused kx
	fi
	alive $S || { notrun linux-life-migrate-disks "the source VM is gone"; return; }

	# The migration, into the zeroed B, while the writer runs.
	lstart k2 $W/k2.in run $K1VM -d $W/dB.img --incoming unix:$W/kmig.sock --api $W/k2.sock
	D=$LPID n=0
	while ! grep -q 'waiting for a migration' $W/k2.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
	LPID=$S
	lcmd k1 7 30 dwrite status
	w0=$(field "$R" writes)
	CTL_TMO=300
	lctl $W/k1.sock migrate unix:$W/kmig.sock disks=copy
	mrc=$CTL_RC CTL_TMO=30
	fig="rounds=$(jget rounds) bytes=$(jget bytes) disk_bytes=$(jget disk_bytes) total_ms=$(jget total_ms) downtime_ms=$(jget downtime_ms)"
	echo "KVMBOX-I disks=copy migration figures: $fig (writer at $w0 writes before)"
	lreap $S 15
	src=$RC
	# The source's image as the hand-over left it: nothing may write it afterwards.
	ha=$(hsum $W/dA.img)
	LPID=$D
	why=
	if [ "$mrc" != 0 ] || [ -z "$(jget disk_bytes)" ]; then
		why="ctl migrate status $mrc: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-300)"
	elif [ "$src" != 0 ]; then
		why="source kvmbox status $src after ${SECS_R}s (want 0)"
	elif ! lwait k2 '^KVMBOX-C [0-9]* end' 30 $D; then
		why="destination: no counter: $WHY"
	elif ! lcmd k2 8 30 dwrite stop; then
		why="destination: the writer: $WHY"
	else
		w1=$(field "$R" writes) wf=$(field "$R" failed)
		lcmd k2 8 120 dsum && d=$R || d="none: $WHY"
		hb=$(hsum $W/dB.img)
		echo "KVMBOX-I disks=copy: writes $w0 before the migration, $w1 at the end; guest $d; B $hb"
		if [ "${w1:-0}" -le "${w0:-0}" ] || [ "$wf" != 0 ]; then
			why="the disk writer did not go on across the migration: writes $w0 -> $w1, failed '$wf'"
		elif [ "${d%% *}" != ok ]; then
			why="the guest's disk on the destination is not what it wrote: '$d'"
		elif [ "$(field "$d" sum)" != "$hb" ]; then
			why="the destination's image B ($hb) is not the guest's view ($(field "$d" sum))"
		elif [ "$(hsum $W/dA.img)" != "$ha" ]; then
			why="the source's image A changed after the hand-over ($ha -> $(hsum $W/dA.img))"
		fi
	fi
	lkill $D
	if [ -z "$why" ]; then
		lres PASS linux-life-migrate-disks
	else
		lfail linux-life-migrate-disks k2 "$why ($fig)"
		diag linux-life-migrate-disks k1
	fi
	exec 7>&- 8>&-
}
# shellcheck disable=SC2086
want $LIFE4 && life_disks

# --- vsock (vhost-vsock) ---------------------------------------------------------------------
# One lifecycle guest with --vsock cid=42; tests/linux/vsock-echo.c is the helper on both sides
# (an echo server, a client that sends stdin and writes what comes back, an idle connection).
#   bad-cid        reserved and impossible CIDs are refused: status 2 (usage), one line
#   host-to-guest  the host connects to the guest's echo server: 16 MiB, the guest's copy and the
#                  echo have the blob's sha256
#   guest-to-host  the guest connects to the host's echo server: 16 MiB, the host's copy and the
#                  echo have the guest's sha256
#   cid-in-use     a second VM with the same CID: status 1, "pick another cid="; the first runs on
#   reset          snapshot, kill -9, restore: a connection the guest held ends (the transport
#                  reset event), the guest does not boot again
#   snapshot       after the restore, new connections both ways (16 MiB each, sums equal)
#   migrate-fail   a migration whose destination cannot claim its CID (vsock-echo claim holds it)
#                  fails after the source let go of its own: the source claims it again, runs on,
#                  its held connection ends (reset event), a new one works
#   migrate        live migration (unix socket, same host: the source lets go of the CID) to a
#                  destination with the same cid=: a held connection ends, a new one works
#   driver-reload  the guest unloads and loads its vsock transport (device reset, activation
#                  again: the rings go back to the kernel): a new connection works
#   reboot         a guest reboot builds the device again (the CID let go of and claimed again,
#                  under the main thread's seccomp list): after it, a new connection works
VS_CID=42
VS_MB=16
VSFD=7 # the fd of the guest's console (lcmd)

# vs_cmd ID SECS CMD...: lcmd on the guest's console, then wait until its answer is whole (it
# ends with "end": a long line may be half written when lcmd sees its start).
vs_cmd() {
	_vi=$1 _vs=$2
	shift 2
	lcmd $_vi $VSFD $_vs "$@" || return 1
	_n=0
	while [ "${R% end}" = "$R" ] && [ $_n -lt 50 ]; do
		usleep 200000
		R=$(tr -d '\r' <$W/$_vi.out | sed -n "s/^KVMBOX-R $LSEQ [^ ]* //p" | head -n1)
		_n=$((_n + 1))
	done
	[ "${R% end}" != "$R" ] || { WHY="guest command '$*': answer '$R' never ended"; return 1; }
}

# vs_h2g ID PORT OUT: the host sends the blob to the guest's echo server (PORT); VSWHY says
# what was wrong (empty: all right). VS_CONN is how the host connects (the uds tests: through
# kvmbox's unix socket).
vs_h2g() {
	# shellcheck disable=SC2086
	timeout -k 5 120 ${VS_CONN:-vsock-echo connect $VS_CID} $2 <$W/vblob >$W/$3 2>$W/$3.err
	_rc=$?
	echo "KVMBOX-I vsock host->guest ($1): status $_rc, $(tail -n1 $W/$3.err)"
	vs_cmd $1 60 vrx || { VSWHY="guest: $WHY"; return; }
	VSWHY=
	if [ $_rc != 0 ] || [ "$(hsum $W/$3)" != "$vb" ] || [ "$(field "$R" sum)" != "$vb" ] ||
		[ "$(field "$R" bytes)" != $((VS_MB * 1048576)) ]; then
		VSWHY="host connect status $_rc ($(tail -n1 $W/$3.err)); echo $(wc -c <$W/$3) bytes sum $(hsum $W/$3),"
		VSWHY="$VSWHY guest received '$R'; want $((VS_MB * 1048576)) bytes, sum $vb"
	fi
}

# vs_g2h ID: the guest sends VS_MB MiB to the host's echo server (port 5001, copy in $W/vrx).
vs_g2h() {
	VSWHY=
	vs_cmd $1 180 vsend 5001 $VS_MB || { VSWHY="guest: $WHY"; return; }
	echo "KVMBOX-I vsock guest->host ($1): $R"
	if [ "$(field "$R" status)" != 0 ] || [ "$(field "$R" txsum)" != "$(field "$R" echosum)" ] ||
		[ "$(field "$R" bytes)" != $((VS_MB * 1048576)) ] || [ "$(hsum $W/vrx)" != "$(field "$R" txsum)" ]; then
		VSWHY="guest '$R'; the host received $(wc -c <$W/vrx) bytes, sum $(hsum $W/vrx)"
	fi
}

# vs_held ID SECS: wait until the guest's held connection ended; R is its last line.
vs_held() {
	_n=0
	while [ $_n -lt $2 ]; do
		lcmd $1 $VSFD 30 vheld || return 1
		case "$R" in closed*) return 0 ;; esac
		sleep 1
		_n=$((_n + 1))
	done
	return 1
}

# shellcheck disable=SC2086
vsock_tests() {
	if [ ! -c /dev/vhost-vsock ]; then
		notrun "$VSOCK" "no /dev/vhost-vsock in the emulated host (vhost_vsock.ko not loaded)"
		return
	fi
	if [ ! -x $KB/vsock-echo ]; then
		notrun "$VSOCK" "no $KB/vsock-echo (tests/linux/lib.sh could not build tests/linux/vsock-echo.c)"
		return
	fi
	# Refused before anything runs: one line, status 2.
	why=
	for c in 2 1 0 4294967295 4294967296 x; do
		kvmbox run -m 64M --vsock cid=$c -k $BZ -i $GV >$W/vbad.out 2>$W/vbad.err
		rc=$?
		if [ $rc != 2 ] || [ "$(wc -l <$W/vbad.err)" != 1 ] || ! grep -q "cid '$c' is not a guest CID" $W/vbad.err; then
			why="cid=$c: status $rc, stderr '$(head -n 2 $W/vbad.err | tr '\n' ' ')' (want 2, a usage error, and one line)"
			break
		fi
	done
	if [ -z "$why" ]; then lres PASS linux-vsock-bad-cid; else lres FAIL linux-vsock-bad-cid "$why"; fi

	rm -f $W/v1.in $W/v3.in $W/v1.sock $W/v2.sock $W/v3.sock $W/vmig.sock $W/vsock.snap
	mkfifo $W/v1.in $W/v3.in
	exec 7<>$W/v1.in 8<>$W/v3.in
	dd if=/dev/urandom of=$W/vblob bs=1M count=$VS_MB 2>/dev/null
	vb=$(hsum $W/vblob)
	: >$W/vrx
	vsock-echo serve 5001 $W/vrx >$W/vserve1.out 2>&1 &
	HS1=$!
	vsock-echo serve 5002 - >$W/vserve2.out 2>&1 &
	HS2=$!
	# What a restore or a destination gives again.
	V1VM="-m 256M --vsock cid=$VS_CID -k $BZ -i $GV"
	lstart v1 $W/v1.in run $V1VM --api $W/v1.sock -a "$GAPPEND kvmbox.test=life kvmbox.mb=1"
	P=$LPID
	if ! lwait v1 '^KVMBOX-C 3 end' $BOOT_TMO $P || ! lcmd v1 $VSFD 30 vserve 5000 || [ "$R" != ok ]; then
		lkill $P $HS1 $HS2
		notrun "$VSOCK" "the vsock guest did not start: ${WHY:-vserve '$R'}"
		diag linux-vsock-host-to-guest v1
		return
	fi
	if ! grep -q listening $W/vserve1.out || ! grep -q listening $W/vserve2.out; then
		lkill $P $HS1 $HS2
		notrun "$VSOCK" "the host's echo servers: $(cat $W/vserve1.out $W/vserve2.out | tr '\n' ' ')"
		return
	fi

	vs_h2g v1 5000 vecho1
	if [ -z "$VSWHY" ]; then lres PASS linux-vsock-host-to-guest; else lfail linux-vsock-host-to-guest v1 "$VSWHY"; fi
	vs_g2h v1
	if [ -z "$VSWHY" ]; then lres PASS linux-vsock-guest-to-host; else lfail linux-vsock-guest-to-host v1 "$VSWHY"; fi

	# The same CID twice: refused with the fix, the first VM unharmed.
	kvmbox run -m 128M --vsock cid=$VS_CID -k $BZ -i $GV >$W/vdup.out 2>$W/vdup.err </dev/null
	rc=$?
	echo "KVMBOX-I vsock cid in use: status $rc, $(tr '\n' ' ' <$W/vdup.err)"
	if [ $rc = 1 ] && grep -q "CID $VS_CID is in use.*pick another cid=" $W/vdup.err && lticks v1 5 $P; then
		lres PASS linux-vsock-cid-in-use
	else
		lres FAIL linux-vsock-cid-in-use "second VM with cid=$VS_CID: status $rc, stderr" \
			"'$(head -n 2 $W/vdup.err | tr '\n' ' ')' (want 1 and 'in use ... pick another cid='); first VM: ${WHY:-counting}"
	fi

	# Snapshot with a connection open, kill -9, restore.
	lcmd v1 $VSFD 30 vhold 5002
	h=$R
	lctl $W/v1.sock snapshot $W/vsock.snap
	src=$CTL_RC
	lkill $P
	if [ "$h" != connected ] || [ "$src" != 0 ] || [ ! -s $W/vsock.snap ]; then
		lfail linux-vsock-reset v1 "before the snapshot: hold '$h', ctl snapshot status $src"
		notrun "$VSOCK" "no snapshot"
		lkill $HS1 $HS2
		return
	fi
	lstart v2 $W/v1.in restore $W/vsock.snap $V1VM --api $W/v2.sock
	P=$LPID
	if ! lwait v2 '^KVMBOX-C [0-9]* end' 30 $P; then
		lfail linux-vsock-reset v2 "restore: no counter line: $WHY"
		notrun "$VSOCK" "the restore failed"
		lkill $P $HS1 $HS2
		return
	fi
	if vs_held v2 20 && ! has KVMBOX-INIT v2; then
		lres PASS linux-vsock-reset
	else
		lfail linux-vsock-reset v2 "after the restore the connection held across the snapshot says" \
			"'$R' after 20 s (want closed: the transport reset event); init markers $(count KVMBOX-INIT v2) (want 0)"
	fi
	vs_h2g v2 5000 vecho2
	why=$VSWHY
	if [ -z "$why" ]; then
		vs_g2h v2
		why=$VSWHY
	fi
	if [ -z "$why" ]; then lres PASS linux-vsock-snapshot; else lfail linux-vsock-snapshot v2 "after the restore: $why"; fi

	# A migration that fails after the hand-over began: the destination's CID is taken.
	why=
	vsock-echo claim 50 >$W/vclaim.out 2>&1 &
	CL=$!
	n=0
	while ! grep -q claim $W/vclaim.out && [ $n -lt 50 ]; do usleep 100000; n=$((n + 1)); done
	lstart vf /dev/null run -m 256M --vsock cid=50 -k $BZ -i $GV --incoming unix:$W/vfail.sock
	F=$LPID
	n=0
	while ! grep -q 'waiting for a migration' $W/vf.err && alive $F && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
	LPID=$P
	lcmd v2 $VSFD 30 vhold 5002
	h=$R
	lctl $W/v2.sock migrate unix:$W/vfail.sock
	mrc=$CTL_RC
	lreap $F 30
	echo "KVMBOX-I vsock failed migration: claim '$(cat $W/vclaim.out)', destination status $RC: $(tr '\n' ' ' <$W/vf.err | cut -c1-300)"
	lkill $CL
	if ! grep -q claimed $W/vclaim.out; then
		why="vsock-echo claim 50: '$(cat $W/vclaim.out)'"
	elif [ "$h" != connected ]; then
		why="hold before the migration: '$h'"
	elif [ "$mrc" != 1 ]; then
		why="ctl migrate status $mrc (want 1: the destination could not take the VM)"
	elif ! grep -q 'CID 50 is in use' $W/vf.err; then
		why="the destination did not say its CID was in use: '$(tr '\n' ' ' <$W/vf.err | cut -c1-200)'"
	elif ! lticks v2 10 $P; then
		why="the source after the failed migration: $WHY"
	elif ! vs_held v2 20; then
		why="the source's held connection says '$R' after 20 s (want closed: it let go of its CID)"
	else
		vs_h2g v2 5000 vechof
		why=$VSWHY
	fi
	if [ -z "$why" ]; then lres PASS linux-vsock-migrate-fail; else lfail linux-vsock-migrate-fail v2 "$why"; fi
	alive $P || { notrun "$VSOCK" "the source VM is gone"; lkill $HS1 $HS2; exec 7>&- 8>&-; return; }

	# Live migration on this host: the destination claims the same CID once the source let go.
	lstart v3 $W/v3.in run $V1VM --incoming unix:$W/vmig.sock --api $W/v3.sock
	D=$LPID
	n=0
	while ! grep -q 'waiting for a migration' $W/v3.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
	LPID=$P
	lcmd v2 $VSFD 30 vhold 5002
	h=$R
	lctl $W/v2.sock migrate unix:$W/vmig.sock
	mrc=$CTL_RC
	lreap $P 15
	src=$RC
	LPID=$D
	why=
	if [ "$h" != connected ]; then
		why="hold before the migration: '$h'"
	elif [ "$mrc" != 0 ] || [ "$src" != 0 ]; then
		why="ctl migrate status $mrc ($(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-200)), source status $src"
	elif ! lwait v3 '^KVMBOX-C [0-9]* end' 30 $D; then
		why="destination: no counter: $WHY"
	else
		VSFD=8 # the destination's console is v3.in
		if ! vs_held v3 20; then
			why="the connection held across the migration says '$R' after 20 s (want closed)"
		else
			vs_h2g v3 5000 vecho3
			why=$VSWHY
		fi
	fi
	if [ -z "$why" ]; then lres PASS linux-vsock-migrate; else lfail linux-vsock-migrate v3 "$why"; fi
	if ! alive $D || [ "$VSFD" != 8 ]; then
		notrun "$VSOCK" "no migrated VM"
		lkill $D $HS1 $HS2
		exec 7>&- 8>&-
		return
	fi

	why=
	if ! lcmd v3 $VSFD 60 vreload || [ "$R" != ok ]; then
		why="guest vreload: '$R' $WHY"
	elif ! lcmd v3 $VSFD 30 vserve 5010 || [ "$R" != ok ]; then
		why="guest vserve after the reload: '$R' $WHY"
	else
		vs_h2g v3 5010 vecho4
		why=$VSWHY
	fi
	if [ -z "$why" ]; then lres PASS linux-vsock-driver-reload; else lfail linux-vsock-driver-reload v3 "$why"; fi

	why=
	LSEQ=$((LSEQ + 1))
	echo "$LSEQ vreboot" >&$VSFD
	# v3.out starts at the migration: its first "life ready" is the rebooted guest's.
	if ! lwait v3 'KVMBOX-V life ready' $BOOT_TMO $D; then
		why="the rebooted guest did not come back: $WHY"
	elif ! lcmd v3 $VSFD 30 vserve 5011 || [ "$R" != ok ]; then
		why="guest vserve after the reboot: '$R' $WHY"
	else
		vs_h2g v3 5011 vecho5
		why=$VSWHY
	fi
	if [ -z "$why" ]; then lres PASS linux-vsock-reboot; else lfail linux-vsock-reboot v3 "$why"; fi
	lkill $D $HS1 $HS2
	exec 7>&- 8>&-
}
want $VSOCK && vsock_tests

# --- vsock, unix-socket mode (--vsock cid=N,uds=PATH) ----------------------------------------
# The same guest and helpers as above; no vhost-vsock needed. The host's side is vsock-echo's
# uconnect (through PATH: "CONNECT <port>\n", "OK <n>\n") and userve (on PATH_<port>).
#   uds-host-to-guest  a host program connects through PATH to the guest's echo server: 16 MiB,
#                      the guest's copy and the echo have the blob's sha256; a CONNECT to a port
#                      nobody listens on in the guest is closed (its RST) without an OK line
#   uds-guest-to-host  the guest connects to CID 2 port 5001, which is PATH_5001, the host's echo
#                      server: 16 MiB, the host's copy and the echo have the guest's sha256
#   uds-snapshot       snapshot with a connection held, kill -9 (PATH is left, stale), restore
#                      from the same command line: the held connection ends (the transport reset
#                      event), kvmbox listens at PATH again, new connections both ways (2 MiB)
#   uds-migrate        the restored VM, with a connection held each way (the host's through PATH
#                      to the guest's echo, the guest's to PATH_5002), live-migrated (unix
#                      socket) to a destination on this host with the same PATH: the source
#                      removes its socket at the hand-over, both held connections end (the host's
#                      with the source, the guest's with the transport reset event), the
#                      destination listens at PATH, new connections both ways (2 MiB)
# shellcheck disable=SC2086
vsock_uds_tests() {
	if [ ! -x $KB/vsock-echo ]; then
		notrun "$VSU" "no $KB/vsock-echo (tests/linux/lib.sh could not build tests/linux/vsock-echo.c)"
		return
	fi
	VSFD=7
	VU=$W/vu.sock
	rm -f $W/vu1.in $W/vu1.sock $W/vu2.sock $W/vu.snap $VU ${VU}_5001 ${VU}_5002
	mkfifo $W/vu1.in
	exec 7<>$W/vu1.in
	dd if=/dev/urandom of=$W/vblob bs=1M count=$VS_MB 2>/dev/null
	vb=$(hsum $W/vblob)
	: >$W/vrx
	vsock-echo userve ${VU}_5001 $W/vrx >$W/vuserve1.out 2>&1 &
	HS1=$!
	vsock-echo userve ${VU}_5002 - >$W/vuserve2.out 2>&1 &
	HS2=$!
	VUVM="-m 256M --vsock cid=$VS_CID,uds=$VU -k $BZ -i $GV"
	lstart vu1 $W/vu1.in run $VUVM --api $W/vu1.sock -a "$GAPPEND kvmbox.test=life kvmbox.mb=1"
	P=$LPID
	if ! lwait vu1 '^KVMBOX-C 3 end' $BOOT_TMO $P || ! lcmd vu1 $VSFD 30 vserve 5000 || [ "$R" != ok ]; then
		lkill $P $HS1 $HS2
		notrun "$VSU" "the vsock guest did not start: ${WHY:-vserve '$R'}"
		diag linux-vsock-uds-host-to-guest vu1
		exec 7>&-
		return
	fi
	if ! grep -q listening $W/vuserve1.out || ! grep -q listening $W/vuserve2.out || [ ! -S $VU ]; then
		lkill $P $HS1 $HS2
		notrun "$VSU" "the host's echo servers: $(cat $W/vuserve1.out $W/vuserve2.out | tr '\n' ' '); kvmbox's socket: $(ls -l $VU 2>&1)"
		exec 7>&-
		return
	fi
	VS_CONN="vsock-echo uconnect $VU"
	vs_h2g vu1 5000 vuecho1
	if [ -z "$VSWHY" ]; then
		# A port nobody listens on in the guest: its RST (at worst the 2 s handshake timeout)
		# closes the host's client, no "OK" line, well within 10 s.
		t0=$(now)
		timeout -k 2 10 vsock-echo uconnect $VU 5999 </dev/null >/dev/null 2>$W/vurefused.err
		rc=$?
		el=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
		echo "KVMBOX-I vsock uds CONNECT to a closed port: status $rc after ${el}s: $(cat $W/vurefused.err)"
		if [ $rc != 1 ] || ! grep -q 'no OK line' $W/vurefused.err; then
			VSWHY="CONNECT 5999 (nobody listens in the guest): status $rc after ${el}s, '$(cat $W/vurefused.err)' (want 1, no OK line)"
		fi
	fi
	if [ -z "$VSWHY" ]; then lres PASS linux-vsock-uds-host-to-guest; else lfail linux-vsock-uds-host-to-guest vu1 "$VSWHY"; fi
	vs_g2h vu1
	if [ -z "$VSWHY" ]; then lres PASS linux-vsock-uds-guest-to-host; else lfail linux-vsock-uds-guest-to-host vu1 "$VSWHY"; fi

	lcmd vu1 $VSFD 30 vhold 5002
	h=$R
	lctl $W/vu1.sock snapshot $W/vu.snap
	src=$CTL_RC
	lkill $P
	why=
	if [ "$h" != connected ] || [ "$src" != 0 ] || [ ! -s $W/vu.snap ]; then
		why="before the snapshot: hold '$h', ctl snapshot status $src"
	else
		lstart vu2 $W/vu1.in restore $W/vu.snap $VUVM --api $W/vu2.sock
		P=$LPID
		if ! lwait vu2 '^KVMBOX-C [0-9]* end' 30 $P; then
			why="restore: no counter line: $WHY"
		elif ! vs_held vu2 20 || has KVMBOX-INIT vu2; then
			why="after the restore the connection held across the snapshot says '$R' after 20 s (want"
			why="$why closed: the transport reset event); init markers $(count KVMBOX-INIT vu2) (want 0)"
		else
			# New connections both ways, 2 MiB each (the 16 MiB ones ran above): time is short.
			VS_MB=2
			dd if=/dev/urandom of=$W/vblob bs=1M count=$VS_MB 2>/dev/null
			vb=$(hsum $W/vblob)
			vs_h2g vu2 5000 vuecho2
			why=$VSWHY
			if [ -z "$why" ]; then
				vs_g2h vu2
				why=$VSWHY
			fi
		fi
	fi
	if [ -z "$why" ]; then lres PASS linux-vsock-uds-snapshot; else lfail linux-vsock-uds-snapshot vu2 "$why"; fi

	if [ -n "$why" ] || ! alive $P; then
		notrun linux-vsock-uds-migrate "no restored VM to migrate (uds-snapshot: ${why:-its VM is gone})"
	else
		rm -f $W/vu3.in $W/vu3.sock $W/vumig.sock $W/vuhold.out
		mkfifo $W/vu3.in
		exec 8<>$W/vu3.in
		vsock-echo uhold $VU 5000 >$W/vuhold.out 2>&1 &
		UH=$!
		lcmd vu2 $VSFD 30 vhold 5002
		h=$R
		lstart vu3 $W/vu3.in run $VUVM --incoming unix:$W/vumig.sock --api $W/vu3.sock
		D=$LPID
		n=0
		while { ! grep -q 'waiting for a migration' $W/vu3.err || ! grep -q connected $W/vuhold.out; } &&
			alive $D && [ $n -lt 50 ]; do
			usleep 200000
			n=$((n + 1))
		done
		hh=$(cat $W/vuhold.out)
		LPID=$P
		lctl $W/vu2.sock migrate unix:$W/vumig.sock
		mrc=$CTL_RC
		lreap $P 15
		src=$RC
		LPID=$D
		P=$D
		why=
		if [ "$h" != connected ] || [ "$hh" != connected ]; then
			why="before the migration: the guest's hold '$h', the host's (uhold) '$hh'"
		elif [ "$mrc" != 0 ] || [ "$src" != 0 ]; then
			why="ctl migrate status $mrc ($(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-200)), source status $src"
		elif ! lwait vu3 '^KVMBOX-C [0-9]* end' 30 $D; then
			why="destination: no counter: $WHY"
		else
			VSFD=8 # the destination's console is vu3.in
			n=0
			while alive $UH && [ $n -lt 50 ]; do
				usleep 200000
				n=$((n + 1))
			done
			if alive $UH || ! grep -q '^closed' $W/vuhold.out; then
				why="the host's connection held through PATH across the migration: '$(tr '\n' ' ' <$W/vuhold.out)' (want closed)"
			elif ! vs_held vu3 20; then
				why="the guest's connection held across the migration says '$R' after 20 s (want closed)"
			elif [ ! -S $VU ]; then
				why="the destination does not listen at $VU: $(ls -l $VU 2>&1)"
			else
				vs_h2g vu3 5000 vuecho3
				why=$VSWHY
				if [ -z "$why" ]; then
					vs_g2h vu3
					why=$VSWHY
				fi
			fi
		fi
		lkill $UH
		if [ -z "$why" ]; then lres PASS linux-vsock-uds-migrate; else lfail linux-vsock-uds-migrate vu3 "$why"; fi
		exec 8>&-
	fi
	VS_CONN=
	VS_MB=16
	VSFD=7
	lkill $P $HS1 $HS2
	exec 7>&-
}
want $VSU && vsock_uds_tests
# The emulated host's /tmp is RAM: the vsock tests' blob, echoes and 256 MiB snapshot must not
# stay for the tests after them (the last full check: later snapshots failed with ENOSPC).
rm -f $W/vblob $W/vsock.snap $W/vecho* $W/vclaim.out

# --- Link throughput against the tap path (three boots one after the other, one beside) -----
# The vbench guest sends 16 MiB with busybox nc (kvmbox.phase=netout) to 10.0.0.1:5003: over a
# link to a sink guest (kvmbox.test=link role=sink), then over the tap to the emulated host with
# vhost=off (kvmbox's worker, as a link card) and with vhost-net. The link's 16 MiB must arrive
# whole; the figures go to host.log ("KVMBOX-I link throughput") for docs/PERFORMANCE.md.
# shellcheck disable=SC2086
if want $LINKT; then
	[ -f $GV ] || cat $GI $KB/guest-modules.cpio.gz >$GV
	rm -rf $W/lt $W/lts.stop $W/lts.rc
	tput_args="--no-reboot -m 256M -k $BZ -i $GV"
	tput_guest="$GAPPEND kvmbox.test=vbench kvmbox.phase=netout kvmbox.mb=16"
	(
		VM_HOOK=stop_hook
		vm lts $((BOOT_TMO * 4)) "" 0 $tput_args --net link=lan-t,linkdir=$W/lt \
			-a "$GAPPEND kvmbox.test=link kvmbox.role=sink kvmbox.ip=10.0.0.1 kvmbox.mb=16"
		echo "$RC" >$W/lts.rc
	) &
	PS_=$!
	n=0
	while ! { [ -f $W/lts.out ] && has "KVMBOX-V sink ready" lts; } && alive $PS_ && [ $n -lt $((BOOT_TMO * 5)) ]; do
		usleep 200000
		n=$((n + 1))
	done
	vm ltl $VTMO "" 0 $tput_args --net link=lan-t,linkdir=$W/lt -a "$tput_guest"
	rl=$RC
	n=0
	while ! has "KVMBOX-V sank" lts && alive $PS_ && [ $n -lt 150 ]; do usleep 200000; n=$((n + 1)); done
	: >$W/lts.stop
	wait $PS_
	vl=$(vget ltl vbench) sank=$(field "$(vget lts sank)" bytes)
	# The tap path is a yardstick for PERFORMANCE.md, not part of the test: two more boots (and a
	# transfer that now and then hangs to its guard), only with KVMBOX_LINK_YARDSTICK=1.
	neterr="not asked for (KVMBOX_LINK_YARDSTICK=1)"
	[ "${KVMBOX_LINK_YARDSTICK:-0}" = 1 ] && neterr=$(net_setup)
	vu='' vv='' nu='' nv=''
	if [ -z "$neterr" ]; then
		: >$W/ltu
		sleep 900 | nc -l -p 5003 >$W/ltu &
		nlp=$!
		vm ltu $VTMO "" 0 $tput_args --net tap=tap0,mac=52:54:00:12:34:56,vhost=off -a "$tput_guest"
		kill $nlp 2>/dev/null
		vu=$(vget ltu vbench) nu=$(wc -c <$W/ltu)
		: >$W/ltv
		sleep 900 | nc -l -p 5003 >$W/ltv &
		nlp=$!
		vm ltv $VTMO "" 0 $tput_args --net tap=tap0,mac=52:54:00:12:34:56 -a "$tput_guest"
		kill $nlp 2>/dev/null
		vv=$(vget ltv vbench) nv=$(wc -c <$W/ltv)
	fi
	mibs() { awk -v s="$(field "$1" secs)" 'BEGIN { if (s > 0) printf "%.2f", 16 / s; else print "-" }'; }
	echo "KVMBOX-I link throughput: 16 MiB guest -> guest over a link $(field "$vl" secs) s ($(mibs "$vl") MiB/s)," \
		"guest -> emulated host over the tap, vhost=off $(field "$vu" secs) s ($(mibs "$vu") MiB/s)," \
		"vhost-net $(field "$vv" secs) s ($(mibs "$vv") MiB/s)"
	echo "KVMBOX-I link throughput: the tap runs moved ${nu:-nothing}/${nv:-nothing} bytes (want 16 MiB;" \
		"${neterr:-tap0 up}); guest -> emulated host over a tap now and then hangs (docs/PERFORMANCE.md)"
	# The link's transfer is the test; the tap's are its yardstick only.
	want=$((16 * 1048576))
	if [ "$rl" = 0 ] && [ "$(field "$vl" status)" = 0 ] && [ "$sank" = $want ]; then
		res PASS linux-link-throughput
	else
		res FAIL linux-link-throughput "16 MiB over the link: sender '$vl' (status $rl), the sink got '$sank'"
		diag linux-link-throughput ltl
		diag linux-link-throughput lts
	fi
fi

# --- A link card through kill -9, restore and migration (two boots) --------------------------
# The lifecycle guest L (link lan-r in $W/lr, the first member: the link's switch) and a peer P
# (kvmbox.test=link role=idle, 10.0.0.1) that joins it. L brings eth0 up (netup: pings P).
# Snapshot, kill -9 L: P finds the stale socket, removes it and listens (linux-link-takeover);
# restore L from its own command line: it joins P's link and pings P (linux-link-restore);
# migrate L over a unix socket to `run --incoming` with the same --net: the source leaves the
# link, the destination joins it and pings P (linux-link-migrate).
# shellcheck disable=SC2086
linkr() {
	rm -rf $W/lr $W/lr.in $W/lr3.in $W/lr*.sock $W/lrp.stop $W/lrq.stop $W/lrp.rc $W/lrq.rc $W/lr.snap
	mkfifo $W/lr.in $W/lr3.in
	exec 6<>$W/lr.in
	exec 7<>$W/lr3.in
	LRVM="-m 256M -k $BZ -i $GV --net link=lan-r,linkdir=$W/lr"
	lstart lr1 $W/lr.in run $LRVM --api $W/lr1.sock -a "$GAPPEND kvmbox.test=life kvmbox.mb=8"
	L=$LPID
	if ! lwait lr1 '^KVMBOX-C 3 end' $BOOT_TMO $L; then
		lkill $L
		notrun "$LINKR" "the lifecycle guest did not start: $WHY"
		diag linux-link-restore lr1
		return
	fi
	# P, then Q (one guest boot at a time: the emulated host is slow enough).
	(
		VM_HOOK=stop_hook
		vm lrp $((BOOT_TMO * 4)) "" 0 --no-reboot -m 256M -k $BZ -i $GV --net link=lan-r,linkdir=$W/lr \
			-a "$GAPPEND kvmbox.test=link kvmbox.role=idle kvmbox.ip=10.0.0.1"
		echo "$RC" >$W/lrp.rc
	) &
	PP=$!
	n=0
	while ! { [ -f $W/lrp.out ] && has "KVMBOX-V idle" lrp; } && alive $PP && [ $n -lt $((BOOT_TMO * 5)) ]; do
		usleep 200000
		n=$((n + 1))
	done
	(
		VM_HOOK=stop_hook
		vm lrq $((BOOT_TMO * 4)) "" 0 --no-reboot -m 256M -k $BZ -i $GV --net link=lan-r,linkdir=$W/lr \
			-a "$GAPPEND kvmbox.test=link kvmbox.role=idle kvmbox.ip=10.0.0.3"
		echo "$RC" >$W/lrq.rc
	) &
	PQ=$!
	n=0
	while ! { [ -f $W/lrq.out ] && has "KVMBOX-V idle" lrq; } && alive $PQ && [ $n -lt $((BOOT_TMO * 5)) ]; do
		usleep 200000
		n=$((n + 1))
	done
	if ! alive $PP || ! alive $PQ; then
		lfail linux-link-takeover lrp "the peers did not stay up: P status $(cat $W/lrp.rc 2>/dev/null)," \
			"Q status $(cat $W/lrq.rc 2>/dev/null)"
		diag linux-link-takeover lrq
		notrun "$LINKR" "a peer stopped"
		lkill $L
		: >$W/lrp.stop
		: >$W/lrq.stop
		wait $PP
		wait $PQ
		return
	fi
	LPID=$L
	if ! lcmd lr1 6 60 netup || [ "$R" != ok ]; then
		lfail linux-link-takeover lr1 "L could not reach its peer on the link: '$R' $WHY"
		diag linux-link-takeover lrp
		notrun "$LINKR" "the link did not come up"
		lkill $L
		: >$W/lrp.stop
		: >$W/lrq.stop
		wait $PP
		wait $PQ
		return
	fi
	i0=$(ls -i $W/lr/lan-r 2>/dev/null | awk '{ print $1 }')
	lctl $W/lr1.sock snapshot $W/lr.snap
	src=$CTL_RC
	lkill $L
	# P meets again: a new socket (another inode) where L's stale one was.
	n=0 i1=$i0
	while [ "$i1" = "$i0" ] && [ $n -lt 50 ]; do
		usleep 100000
		i1=$(ls -i $W/lr/lan-r 2>/dev/null | awk '{ print $1 }')
		n=$((n + 1))
	done
	if [ -n "$i0" ] && [ -n "$i1" ] && [ "$i1" != "$i0" ] && [ -S $W/lr/lan-r ]; then
		lres PASS linux-link-takeover
	else
		lres FAIL linux-link-takeover "after L (the switch) was killed, $W/lr/lan-r inode '$i0' -> '$i1'" \
			"(want a new socket from P or Q within 5 s)"
		diag linux-link-takeover lrp
	fi
	if [ "$src" != 0 ] || [ ! -s $W/lr.snap ]; then
		notrun "linux-link-restore linux-link-hub linux-link-migrate" "ctl snapshot status $src"
		: >$W/lrp.stop
		: >$W/lrq.stop
		wait $PP
		wait $PQ
		return
	fi
	lstart lr2 $W/lr.in restore $W/lr.snap $LRVM --api $W/lr2.sock
	L=$LPID
	why=
	if ! lwait lr2 '^KVMBOX-C [0-9]* end' 30 $L; then
		why="restore: no counter line: $WHY"
	elif ! lcmd lr2 6 60 ping || [ "$(field "$R" status)" != 0 ]; then
		why="the restored L pinging P: '$R' $WHY"
	fi
	if [ -z "$why" ]; then lres PASS linux-link-restore; else lfail linux-link-restore lr2 "$why"; fi
	# Three members: P and Q met again when L died (one is the switch now, the other its
	# member, which met from its card's worker under its seccomp list); L reaches both.
	why=
	if ! alive $PP || ! alive $PQ; then
		why="P or Q stopped when the switch went away: $(tail -n 2 $W/lrp.err $W/lrq.err | tr '\n' ' ')"
	elif ! lcmd lr2 6 60 ping 10.0.0.3 || [ "$(field "$R" status)" != 0 ]; then
		why="the restored L pinging Q: '$R' $WHY"
	elif ! lcmd lr2 6 60 ping 10.0.0.1 || [ "$(field "$R" status)" != 0 ]; then
		why="the restored L pinging P again: '$R' $WHY"
	fi
	if [ -z "$why" ]; then lres PASS linux-link-hub; else lfail linux-link-hub lrq "$why"; fi

	lstart lr3 $W/lr3.in run $LRVM --incoming unix:$W/lr-mig.sock --api $W/lr3.sock
	D=$LPID
	n=0
	while ! grep -q 'waiting for a migration' $W/lr3.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
	LPID=$L
	CTL_TMO=120
	lctl $W/lr2.sock migrate unix:$W/lr-mig.sock
	mrc=$CTL_RC CTL_TMO=30
	lreap $L 15
	LPID=$D
	why=
	if [ "$mrc" != 0 ] || [ "$RC" != 0 ]; then
		why="ctl migrate status $mrc, source status $RC: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"
	elif ! lwait lr3 '^KVMBOX-C [0-9]* end' 30 $D; then
		why="destination: no counter: $WHY"
	elif ! lcmd lr3 7 60 ping || [ "$(field "$R" status)" != 0 ]; then
		why="the migrated L pinging P: '$R' $WHY"
	fi
	if [ -z "$why" ]; then lres PASS linux-link-migrate; else lfail linux-link-migrate lr3 "$why"; fi
	lkill $D
	: >$W/lrp.stop
	: >$W/lrq.stop
	wait $PP
	wait $PQ
	exec 6>&- 7>&-
}
if want $LINKR; then
	[ -f $GV ] || cat $GI $KB/guest-modules.cpio.gz >$GV
	linkr
	rm -f $W/lr.snap
fi

# --- The sandbox (docs/SECURITY.md) ----------------------------------------------------------

# status PID FIELD: the value of FIELD in /proc/PID/status (tabs squeezed to spaces).
pstatus() { sed -n "s/^$2:[[:space:]]*//p" /proc/$1/status 2>/dev/null | tr -s '\t ' ' '; }
# every thread of PID has seccomp filter mode (2) and no_new_privs: empty, or what is wrong.
threads_filtered() {
	_bad=
	for _t in /proc/$1/task/*; do
		_s=$(sed -n 's/^Seccomp:[[:space:]]*//p' $_t/status 2>/dev/null)
		_n=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' $_t/status 2>/dev/null)
		_c=$(cat $_t/comm 2>/dev/null)
		[ "$_s" = 2 ] && [ "$_n" = 1 ] || _bad="$_bad $_c(Seccomp=$_s,NoNewPrivs=$_n)"
	done
	echo "$_bad"
}
# child_of PID: the first process whose parent is PID (busybox has no pgrep).
child_of() {
	_want=$1
	for _s in /proc/[0-9]*/stat; do
		# shellcheck disable=SC2046 # the fields; kvmbox's comm has no space
		set -- $(cat $_s 2>/dev/null)
		[ "${4:-}" = "$_want" ] && { echo "$1"; return; }
	done
}
sec_users() {
	grep -q '^nobody:' /etc/passwd 2>/dev/null && return 0
	echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
	echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' >>/etc/passwd
	echo 'root:x:0:' >/etc/group
	echo 'nogroup:x:65534:' >>/etc/group
}

# sec_boot ID "TEST..." KVMBOX-RUN-ARGS...: the lifecycle guest with these options, waited for
# until it counts on its serial console ($W/ID.out: not --console none, which would hide it);
# P is its pid. Else it is killed, each TEST fails with the reason, and the status is 1.
sec_boot() {
	_id=$1 _tests=$2
	shift 2
	lstart $_id /dev/null run "$@" -k $BZ -i $GV -a "$GAPPEND kvmbox.test=life kvmbox.mb=1"
	P=$LPID
	lwait $_id '^KVMBOX-C 3 end' $BOOT_TMO $P && return 0
	lkill $P
	for _t in $_tests; do
		lfail $_t $_id "the guest did not start: $WHY"
	done
	return 1
}

# One guest with the defaults: every thread filtered, the control socket 0600 and closed to
# other users.
sec1() {
	rm -f $W/s1.sock
	sec_boot s1 "linux-sec-filtered linux-sec-socket-mode linux-sec-peercred" --api $W/s1.sock || return
	bad=$(threads_filtered $P)
	lctl $W/s1.sock info
	mode=$(jget seccomp)
	echo "KVMBOX-I s1: threads $(cat /proc/$P/task/*/comm | tr '\n' ' '); CapBnd $(pstatus $P CapBnd); info $CTL"
	if [ -n "$bad" ] || [ "$mode" != on ] || [ "$(pstatus $P CapBnd)" != 0000000000000000 ]; then
		lfail linux-sec-filtered s1 "threads not filtered:${bad:- none}; info seccomp '$mode'; CapBnd $(pstatus $P CapBnd)"
	elif ! lticks s1 10 $P; then
		lfail linux-sec-filtered s1 "the guest stopped: $WHY"
	else
		lres PASS linux-sec-filtered
	fi
	m=$(stat -c '%a %F' $W/s1.sock)
	if [ "$m" = "600 socket" ]; then lres PASS linux-sec-socket-mode; else
		lfail linux-sec-socket-mode s1 "control socket is '$m', want '600 socket'"; fi
	sec_users
	# Opened to everyone on purpose: only SO_PEERCRED stands in the way then.
	chmod 666 $W/s1.sock
	out=$(su -s /bin/sh nobody -c "/kvmbox/kvmbox ctl $W/s1.sock info" 2>&1)
	rc=$?
	echo "KVMBOX-I s1: ctl info as nobody: status $rc: $out"
	if [ $rc = 1 ] && echo "$out" | grep -q 'permission denied' && grep -q 'refused a client of uid 65534' $W/s1.err &&
		lticks s1 10 $P; then
		lres PASS linux-sec-peercred
	else
		lfail linux-sec-peercred s1 "ctl as nobody: status $rc, '$out' (want 1 and permission denied)"
	fi
	kill -TERM $P
	lreap $P 30
}

# A regular file where the socket should go is refused and left alone.
sec_notsock() {
	echo keep >$W/s1.notsock
	vm s1b $BAD_TMO "" 0 --api $W/s1.notsock -k $BZ -i $GI
	if [ "$RC" = 1 ] && [ "$(cat $W/s1.notsock)" = keep ] && [ "$(wc -l <$W/s1b.err)" = 1 ] &&
		grep -q 'is not a socket' $W/s1b.err; then
		res PASS linux-sec-unlink-refused
	else
		res FAIL linux-sec-unlink-refused "status $RC, file '$(cat $W/s1.notsock 2>&1)', stderr '$(cat $W/s1b.err)'"
	fi
}

# --user nobody: ids and capabilities dropped on every thread.
sec_user() {
	sec_users
	rm -f $W/s2.sock
	sec_boot s2 linux-sec-user --user nobody --no-reboot --api $W/s2.sock || return
	why=
	for t in /proc/$P/task/*; do
		tid=${t##*/}
		for f in "Uid 65534 65534 65534 65534" "Gid 65534 65534 65534 65534" "CapInh 0000000000000000" \
			"CapPrm 0000000000000000" "CapEff 0000000000000000" "CapBnd 0000000000000000" \
			"CapAmb 0000000000000000" "NoNewPrivs 1" "Seccomp 2" "Groups "; do
			got="${f%% *} $(pstatus $P/task/$tid ${f%% *})"
			[ "$got" = "$f" ] || [ "$got " = "$f" ] || why="$why $(cat $t/comm): '$got' want '$f';"
		done
	done
	lctl $W/s2.sock info
	echo "KVMBOX-I s2: $(grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp)' /proc/$P/status | tr '\t\n' '  ')"
	[ "$(jget uid)" = 65534 ] || why="$why info uid '$(jget uid)';"
	[ -z "$why" ] && ! lticks s2 10 $P && why="the guest stopped: $WHY"
	kill -TERM $P
	lreap $P 30
	[ -z "$why" ] && [ "$RC" != 143 ] && why="SIGTERM: status $RC, want 143"
	if [ -z "$why" ]; then lres PASS linux-sec-user; else lfail linux-sec-user s2 "$why"; fi
}

# --jail DIR: namespaces, DIR as /, snapshots written inside it.
sec_jail() {
	J=$W/jail
	rm -rf $J $W/s3.sock
	mkdir -p $J
	echo inside >$J/marker
	if ! sec_boot s3 linux-sec-jail --jail $J --no-reboot --api $W/s3.sock; then
		lres FAIL linux-sec-jail-snapshot "not run: the jailed guest did not start"
		return
	fi
	C=$(child_of $P)
	why=
	[ -n "$C" ] || why="no VM process under the jail's parent $P;"
	for ns in mnt pid ipc uts net; do
		[ -n "$C" ] && [ "$(readlink /proc/$C/ns/$ns)" = "$(readlink /proc/self/ns/$ns)" ] && why="$why same $ns namespace;"
	done
	[ -n "$C" ] && [ "$(cat /proc/$C/root/marker 2>/dev/null)" != inside ] && why="$why its / is not $J;"
	[ -n "$C" ] && [ -e /proc/$C/root/kvmbox ] && why="$why the host's / is visible;"
	lctl $W/s3.sock info
	[ "$(jget jail)" = "$J" ] || why="$why info jail '$(jget jail)';"
	[ "$(jget pid)" = "$C" ] || why="$why info pid '$(jget pid)' is not $C;"
	echo "KVMBOX-I s3: parent $P, VM $C, ns $(readlink /proc/$C/ns/pid) vs $(readlink /proc/self/ns/pid)"
	[ -z "$why" ] && [ -n "$(threads_filtered $C)" ] && why="threads not filtered: $(threads_filtered $C)"
	if [ -z "$why" ]; then lres PASS linux-sec-jail; else lfail linux-sec-jail s3 "$why"; fi
	# The path is the jail's.
	lctl $W/s3.sock snapshot /vm.snap
	if [ $CTL_RC = 0 ] && [ -s $J/vm.snap ] && [ ! -e /vm.snap ] && lticks s3 10 $P; then
		lres PASS linux-sec-jail-snapshot
	else
		lfail linux-sec-jail-snapshot s3 "ctl snapshot /vm.snap: status $CTL_RC ($CTL); $J/vm.snap $(ls -l $J/vm.snap 2>&1)"
	fi
	kill -TERM $P
	lreap $P 30
	echo "KVMBOX-I s3: SIGTERM to the jail's parent: status $RC"
	rm -rf $J
}

# --cgroup PATH: the process is in it; not cgroup v2 is one line.
sec_cgroup() {
	CG=/sys/fs/cgroup
	grep -q " $CG cgroup2 " /proc/mounts || { mkdir -p $CG && mount -t cgroup2 none $CG; }
	mkdir -p $CG/kvmbox-test
	if sec_boot s4 linux-sec-cgroup --cgroup $CG/kvmbox-test; then
		cg=$(cat /proc/$P/cgroup)
		lkill $P
		if [ "$cg" = "0::/kvmbox-test" ]; then lres PASS linux-sec-cgroup; else
			lfail linux-sec-cgroup s4 "/proc/PID/cgroup is '$cg', want 0::/kvmbox-test"; fi
	fi
	rmdir $CG/kvmbox-test 2>/dev/null
}

want linux-sec-filtered linux-sec-socket-mode linux-sec-peercred && sec1
want linux-sec-unlink-refused && sec_notsock
want linux-sec-user && sec_user
want linux-sec-jail linux-sec-jail-snapshot && sec_jail
want linux-sec-cgroup && sec_cgroup

# --- Bad input: status 1 (cannot start) or 2 (usage), exactly one stderr line "kvmbox: ..." --

# bad NAME "ALLOWED STATUSES" [as-nobody] -- kvmbox-run-args...
bad() {
	name=$1 allowed=$2
	shift 2
	want $name || return 0
	vm $name $BAD_TMO "" 0 "$@"
	lines=$(wc -l <$W/$name.err)
	first=$(head -n1 $W/$name.err)
	echo "KVMBOX-I $name stderr: $first"
	ok=0
	for a in $allowed; do [ "$RC" = "$a" ] && ok=1; done
	if [ $ok = 1 ] && [ "$lines" = 1 ] && [ "${first#kvmbox: }" != "$first" ]; then
		res PASS $name
	else
		res FAIL $name "status $RC (want $allowed), $lines stderr line(s) (want 1 starting 'kvmbox: ')"
		diag $name $name
	fi
}

dd if=/dev/urandom of=$W/garbage bs=1024 count=2048 2>/dev/null
truncate -s 160M $W/huge-initrd
bad linux-bad-missing-kernel 1 -k $W/no-such-kernel -i $GI
bad linux-bad-not-a-kernel 1 -k $W/garbage -i $GI
bad linux-bad-elf-not-kernel 1 -k /bin/busybox -i $GI
bad linux-bad-initrd-too-big 1 -m 64M -k $BZ -i $W/huge-initrd
bad linux-bad-memory-1M "1 2" -m 1M -k $BZ -i $GI
bad linux-bad-cpus-0 "1 2" -c 0 -k $BZ -i $GI
# KVM_CAP_MAX_VCPUS is 1024 on this kernel (KVM_MAX_VCPUS for x86 since 5.15).
bad linux-bad-cpus-too-many "1 2" -c 1025 -k $BZ -i $GI
bad linux-bad-size-malformed 2 -m 12Q -k $BZ -i $GI
bad linux-bad-no-kernel-option 2 -i $GI
want linux-sec-user-needs-no-reboot && sec_users
bad linux-sec-user-needs-no-reboot 1 --user nobody -k $BZ -i $GI
bad linux-sec-cgroup-not-v2 1 --cgroup /tmp -k $BZ -i $GI

if want linux-bad-no-dev-kvm; then
	mv /dev/kvm /dev/kvm.away
	bad linux-bad-no-dev-kvm 1 -k $BZ -i $GI
	mv /dev/kvm.away /dev/kvm
fi

# nobody_setup: a user nobody for busybox su.
nobody_setup() {
	echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
	echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' >>/etc/passwd
	echo 'root:x:0:' >/etc/group
	echo 'nogroup:x:65534:' >>/etc/group
}

if want linux-bad-dev-kvm-perm; then
	nobody_setup
	mode=$(stat -c %a /dev/kvm)
	chmod 600 /dev/kvm
	if [ "$(su -s /bin/sh nobody -c 'id -u' 2>/dev/null)" != 65534 ]; then
		res SKIP linux-bad-dev-kvm-perm "cannot switch to user nobody with busybox su"
	else
		# The run as nobody goes through su; it returns the status of kvmbox (sh -c exec).
		cat >$W/as-nobody <<-EOF
			#!/bin/sh
			exec su -s /bin/sh nobody -c "exec /kvmbox/kvmbox run -k $BZ -i $GI"
		EOF
		chmod 755 $W/as-nobody
		name=linux-bad-dev-kvm-perm
		DM0=$(dmesg | wc -l)
		$W/as-nobody </dev/null >$W/$name.out 2>$W/$name.err &
		pid=$!
		(sleep $BAD_TMO; kill -KILL $pid 2>/dev/null) &
		killer=$!
		wait $pid
		RC=$?
		kill $killer 2>/dev/null
		lines=$(wc -l <$W/$name.err)
		first=$(head -n1 $W/$name.err)
		echo "KVMBOX-I $name: as nobody -> status $RC, stderr: $first"
		if [ "$RC" = 1 ] && [ "$lines" = 1 ] && [ "${first#kvmbox: }" != "$first" ]; then
			res PASS $name
		else
			res FAIL $name "as user nobody with /dev/kvm 0600: status $RC (want 1)," \
				"$lines stderr line(s) (want 1 starting 'kvmbox: ')"
			diag $name $name
		fi
	fi
	chmod "$mode" /dev/kvm
fi
# --- Real-time and memory options (--vcpu-affinity ... --prealloc) --------------------------
# The emulated host has 2 CPUs and, when these tests are selected, 160 huge pages of 2 MiB
# (hugepages= on its command line, tests/linux/run.sh) and a hugetlbfs on /dev/hugepages
# (host-init). What kvmbox set is read back from /proc: each thread's CPUs
# (/proc/PID/task/TID/status Cpus_allowed_list), policy and priority (stat fields 41 and 40),
# name (comm); VmLck; the host's HugePages_Free.

hp_free() { sed -n 's/^HugePages_Free:[[:space:]]*//p' /proc/meminfo; }
vmlck() { sed -n 's/^VmLck:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$1/status 2>/dev/null; }
# threads PID: "name:policy:prio:cpus" for every thread of PID, sorted.
threads() {
	for _t in /proc/$1/task/*; do
		_n=$(cat $_t/comm 2>/dev/null)
		# The fields after "(comm)": state is 3, so rt_priority (40) and policy (41) are 38 and 39.
		_f=$(sed 's/.*) //' $_t/stat 2>/dev/null | awk '{ print $39 ":" $38 }')
		_c=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' $_t/status 2>/dev/null)
		echo "$_n:$_f:$_c"
	done | sort | tr '\n' ' '
}
# life_up ID IN kvmbox-args...: start a lifecycle guest and wait for its counter (LPID, or WHY).
life_up() {
	_lid=$1 _lin=$2
	shift 2
	lstart $_lid $_lin "$@"
	lwait $_lid '^KVMBOX-C 3 end' $BOOT_TMO $LPID
}

rt_tests() {
	hp0=$(hp_free)
	if [ "${hp0:-0}" -lt 128 ]; then
		for t in $RT; do
			case $t in linux-rt-bad-cpu | linux-rt-bad-vcpu | linux-rt-bad-memlock | linux-rt-bad-rtprio) ;;
			*) res FAIL $t "the emulated host has ${hp0:-no} free huge pages, the tests need 128" \
				"(tests/linux/run.sh puts hugepages=160 on its command line)" ;;
			esac
		done
	fi
	rm -f $W/r1.in $W/r1.sock $W/r2.sock $W/r3.sock $W/r5.sock $W/rd.sock $W/rt-mig.sock
	mkfifo $W/r1.in
	exec 5<>$W/r1.in

	# One VM with everything: its vCPU and its I/O (a virtio-rng worker among the threads) on
	# CPU 0, the emulated host's one CPU (the tiny-guest tier's rt_affinity pins two vCPUs
	# crosswise on two CPUs), SCHED_FIFO 10 for the vCPU, locked, in huge pages (which VmLck
	# does not count: huge pages are never swapped; the locked-RAM check is a run of its own
	# below).
	if want linux-rt-policy linux-rt-hugepages; then
		if life_up r1 $W/r1.in run -c 1 -m 128M --api $W/r1.sock --vcpu-affinity 0=0 --io-affinity 0 \
			--rt-priority 10 --mlock --hugepages --rng -k $BZ -i $GV \
			-a "$GAPPEND kvmbox.test=life kvmbox.mb=1"; then
			P=$LPID
			th=$(threads $P) lck=$(vmlck $P) hp1=$(hp_free)
			echo "KVMBOX-I rt: threads $th; VmLck $lck kB; HugePages_Free $hp0 -> $hp1"
			# The vCPU thread: SCHED_FIFO 10; every other thread: SCHED_OTHER; all on CPU 0.
			why=
			for x in $th; do
				n=${x%%:*} pp=${x#*:}
				c=${pp##*:} pp=${pp%:*}
				case $n in
				vcpu*) [ "$pp" = 1:10 ] || why="$why $n policy:prio $pp (want 1:10, SCHED_FIFO 10)" ;;
				*) [ "$pp" = 0:0 ] || why="$why $n policy:prio $pp (want 0:0, SCHED_OTHER)" ;;
				esac
				[ "$c" = 0 ] || why="$why $n on CPUs '$c' (want 0)"
			done
			echo " $th" | grep -q ' vcpu0:' && echo " $th" | grep -q ' virtio-' ||
				why="$why (threads vcpu0 and a virtio worker expected)"
			if [ -z "$why" ]; then res PASS linux-rt-policy; else res FAIL linux-rt-policy "$why; threads: $th"; fi
			if [ $((hp0 - hp1)) = 64 ] && [ "${lck:-0}" -gt 0 ]; then
				res PASS linux-rt-hugepages
			else
				res FAIL linux-rt-hugepages "HugePages_Free $hp0 -> $hp1 with --hugepages --mlock -m 128M" \
					"(want a drop of 64), VmLck ${lck:-none} kB (want some: kvmbox's own memory)"
			fi
			lkill $P
		else
			lkill $LPID
			for t in linux-rt-policy linux-rt-hugepages; do
				res FAIL $t "the lifecycle guest did not start: $WHY"
			done
			diag linux-rt-policy r1
		fi
	fi

	# A hugetlbfs file, pre-allocated: the pages are taken before the guest runs.
	if want linux-rt-hugetlbfs; then
		hpa=$(hp_free)
		VM_HOOK=rt_hook rt_seen=
		rt_hook() { [ -z "$rt_seen" ] && has KVMBOX-INIT rth && rt_seen=$(hp_free); }
		vm rth $BOOT_TMO "" 0 --no-reboot -m 128M --hugepages=/dev/hugepages --prealloc -k $BZ -i $GI \
			-a "$GAPPEND kvmbox.test=bench"
		VM_HOOK=
		hpb=$rt_seen
		if [ "$RC" = 0 ] && [ -n "$rt_seen" ] && [ $((hpa - hpb)) = 64 ] && [ "$(hp_free)" = "$hpa" ]; then
			res PASS linux-rt-hugetlbfs
		else
			res FAIL linux-rt-hugetlbfs "--hugepages=/dev/hugepages --prealloc -m 128M: status $RC;" \
				"HugePages_Free $hpa -> ${hpb:-not sampled} at init (want a drop of 64) -> $(hp_free) after"
			diag linux-rt-hugetlbfs rth
		fi
	fi

	# --prealloc: all guest RAM resident when init runs (the guest alone touches about half).
	if want linux-rt-prealloc; then
		VM_HOOK=rt_hook2 rt_rss=
		rt_hook2() { [ -z "$rt_rss" ] && has KVMBOX-INIT rtp && rt_rss=$(lrss $pid); }
		vm rtp $BOOT_TMO "" 0 --no-reboot -m 128M --prealloc -k $BZ -i $GI -a "$GAPPEND kvmbox.test=bench"
		VM_HOOK=
		if [ "$RC" = 0 ] && [ "${rt_rss:-0}" -ge 131072 ]; then
			res PASS linux-rt-prealloc
		else
			res FAIL linux-rt-prealloc "--prealloc -m 128M: status $RC, VmRSS ${rt_rss:-not sampled} kB at init" \
				"(want at least 131072)"
			diag linux-rt-prealloc rtp
		fi
	fi

	# --mlock: guest RAM (and kvmbox's own memory) locked, so VmLck covers all of it.
	if want linux-rt-mlock; then
		VM_HOOK=rt_hook3 rt_lck=
		rt_hook3() { [ -z "$rt_lck" ] && has KVMBOX-INIT rtm && rt_lck=$(vmlck $pid); }
		vm rtm $BOOT_TMO "" 0 --no-reboot -m 128M --mlock -k $BZ -i $GI -a "$GAPPEND kvmbox.test=bench"
		VM_HOOK=
		if [ "$RC" = 0 ] && [ "${rt_lck:-0}" -ge 131072 ]; then
			res PASS linux-rt-mlock
		else
			res FAIL linux-rt-mlock "--mlock -m 128M: status $RC, VmLck ${rt_lck:-not sampled} kB at init" \
				"(want at least 131072)"
			diag linux-rt-mlock rtm
		fi
	fi

	# Snapshot and restore of a locked huge-page VM: a restore given --hugepages --mlock again
	# has both (read into huge pages; VmLck then counts kvmbox's own memory: the tuning is the
	# restoring command line's, never the file's), a restore with --hugepages=off --mlock=off
	# has neither.
	if want linux-rt-snapshot linux-rt-restore-override; then
		hpa=$(hp_free)
		if ! life_up r2 $W/r1.in run -m 128M --api $W/r2.sock --hugepages --mlock -k $BZ -i $GV \
			-a "$GAPPEND kvmbox.test=life kvmbox.mb=8"; then
			lkill $LPID
			notrun "linux-rt-snapshot linux-rt-restore-override" "the lifecycle guest did not start: $WHY"
		else
			P=$LPID
			lctl $W/r2.sock snapshot $W/rt.snap
			src=$CTL_RC pm=$(jget pause_ms)
			cb=$(lctr r2)
			lticks r2 10 $P && alive=yes || alive="no: $WHY"
			lkill $P
			lstart r3 $W/r1.in restore $W/rt.snap -m 128M -k $BZ -i $GV --hugepages --mlock --api $W/r3.sock
			P=$LPID
			why=
			if [ "$src" != 0 ]; then
				why="ctl snapshot status $src: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"
			elif [ "$alive" != yes ]; then
				why="the VM after the snapshot: $alive"
			elif ! lwait r3 '^KVMBOX-C [0-9]* end' 60 $P; then
				why="restore: no counter: $WHY"
			else
				lcmd r3 5 30 check && c=$R || c="none: $WHY"
				lck=$(vmlck $P) hpb=$(hp_free)
				echo "KVMBOX-I rt snapshot: pause_ms $pm; restored: VmLck $lck kB, HugePages_Free $hpa -> $hpb"
				if [ "${c%% *}" != ok ]; then
					why="restored guest's data: check '$c'"
				elif [ "${lck:-0}" -le 0 ] || [ $((hpa - hpb)) != 64 ]; then
					why="restored VM: VmLck ${lck:-none} kB (want some), HugePages_Free $hpa -> $hpb (want -64)"
				elif [ "$(lfirst r3)" -lt "$cb" ]; then
					why="restored counter $(lfirst r3) before the snapshot's $cb"
				fi
			fi
			if [ -z "$why" ]; then lres PASS linux-rt-snapshot; else lfail linux-rt-snapshot r3 "$why"; fi
			lkill $P
			lstart r4 $W/r1.in restore $W/rt.snap -m 128M -k $BZ -i $GV --hugepages=off --mlock=off
			P=$LPID
			why=
			if ! lwait r4 '^KVMBOX-C [0-9]* end' 60 $P; then
				why="restore --hugepages=off --mlock=off: no counter: $WHY"
			else
				lcmd r4 5 30 check && c=$R || c="none: $WHY"
				lck=$(vmlck $P) hpb=$(hp_free)
				if [ "${c%% *}" != ok ] || [ "${lck:-1}" != 0 ] || [ "$hpb" != "$hpa" ]; then
					why="restore --hugepages=off --mlock=off: check '$c', VmLck ${lck:-none} kB (want 0)," \
						"HugePages_Free $hpb (want $hpa, none used)"
				fi
			fi
			if [ -z "$why" ]; then lres PASS linux-rt-restore-override; else lfail linux-rt-restore-override r4 "$why"; fi
			lkill $P
			rm -f $W/rt.snap
		fi
	fi

	# Live migration of a locked huge-page VM to a destination given --hugepages --mlock too:
	# it has both.
	if want linux-rt-migrate; then
		rm -f $W/r6.in
		mkfifo $W/r6.in
		exec 6<>$W/r6.in
		hpa=$(hp_free)
		if ! life_up r5 $W/r1.in run -m 128M --api $W/r5.sock --hugepages --mlock -k $BZ -i $GV \
			-a "$GAPPEND kvmbox.test=life kvmbox.mb=8"; then
			lkill $LPID
			lres FAIL linux-rt-migrate "the lifecycle guest did not start: $WHY"
		else
			S=$LPID
			lcmd r5 5 60 dirty start 8 >/dev/null
			lstart r6 $W/r6.in run -m 128M -k $BZ -i $GV --hugepages --mlock --incoming unix:$W/rt-mig.sock \
				--api $W/rd.sock
			D=$LPID
			n=0
			while ! grep -q 'waiting for a migration' $W/r6.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
			LPID=$S
			CTL_TMO=120
			lctl $W/r5.sock migrate unix:$W/rt-mig.sock
			mrc=$CTL_RC CTL_TMO=30
			lreap $S 15
			LPID=$D
			why=
			if [ "$mrc" != 0 ] || [ "$RC" != 0 ]; then
				why="ctl migrate status $mrc, source status $RC: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"
			elif ! lwait r6 '^KVMBOX-C [0-9]* end' 30 $D; then
				why="destination: no counter: $WHY"
			else
				lcmd r6 6 30 check && c=$R || c="none: $WHY"
				lcmd r6 6 30 dirty stop && dr=$R || dr="none: $WHY"
				lck=$(vmlck $D) hpb=$(hp_free)
				echo "KVMBOX-I rt migration: destination VmLck $lck kB, HugePages_Free $hpa -> $hpb"
				if [ "${c%% *}" != ok ] || [ "$(field "$dr" mismatches)" != 0 ]; then
					why="destination's data: check '$c', dirtier '$dr'"
				elif [ "${lck:-0}" -le 0 ] || [ $((hpa - hpb)) != 64 ]; then
					why="destination: VmLck ${lck:-none} kB (want some), HugePages_Free $hpa -> $hpb (want -64)"
				fi
			fi
			if [ -z "$why" ]; then lres PASS linux-rt-migrate; else lfail linux-rt-migrate r6 "$why"; fi
			lkill $D
		fi
		exec 6>&-
	fi
	exec 5>&-

	# Impossible requests: status 1, one line.
	bad linux-rt-bad-cpu 1 --vcpu-affinity 0=7 -k $BZ -i $GI
	bad linux-rt-bad-vcpu 1 -c 2 --vcpu-affinity 0=0,2=1 -k $BZ -i $GI
	bad linux-rt-bad-hugepages 1 -m 1G --hugepages -k $BZ -i $GI
	bad linux-rt-bad-hugepage-size 1 -m 129M --hugepages -k $BZ -i $GI
	bad linux-rt-bad-balloon 1 --mlock --balloon -k $BZ -i $GI
	for name in linux-rt-bad-memlock linux-rt-bad-rtprio; do
		want $name || continue
		nobody_setup
		[ $name = linux-rt-bad-memlock ] && args="ulimit -l 64; exec /kvmbox/kvmbox run --mlock -k $BZ -i $GI"
		[ $name = linux-rt-bad-rtprio ] && args="ulimit -r 0; exec /kvmbox/kvmbox run --rt-priority 10 -k $BZ -i $GI"
		timeout -k 5 $BAD_TMO su -s /bin/sh nobody -c "$args" </dev/null >$W/$name.out 2>$W/$name.err
		RC=$?
		lines=$(wc -l <$W/$name.err)
		first=$(head -n1 $W/$name.err)
		echo "KVMBOX-I $name: as nobody -> status $RC: $first"
		[ $name = linux-rt-bad-memlock ] && pat='raise it by' || pat='SCHED_FIFO'
		if [ "$RC" = 1 ] && [ "$lines" = 1 ] && echo "$first" | grep -q "^kvmbox: .*$pat"; then
			res PASS $name
		else
			res FAIL $name "as nobody: status $RC (want 1), $lines stderr line(s) (want 1 'kvmbox: ...$pat...'): $first"
		fi
	done
}
# shellcheck disable=SC2086
want $RT && rt_tests

echo "KVMBOX-I tests done"
