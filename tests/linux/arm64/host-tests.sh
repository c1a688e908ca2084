#!/bin/sh
# host-tests.sh (arm64) - the arm64 Linux scenarios, run by busybox sh inside the emulated arm64
# host (qemu-system-aarch64 -M virt,virtualization=on,gic-version=3, see tests/linux/lib.sh).
# Installed as /kvmbox/host-tests.sh there; run by `KVMBOX_ARCH=arm64 tests/linux/run.sh`.
# Usage: host-tests.sh [GLOB[,GLOB...]] | --list
#
# Same lines as tests/linux/host-tests.sh (KVMBOX-T PASS|FAIL|SKIP name why, KVMBOX-T DATA,
# KVMBOX-L diagnostics, KVMBOX-I information). The guest is Debian's arm64 Image with the same
# guest-init as on x86 (its init and rebootonce scenarios need nothing x86-specific).
# The virtio scenarios are x86's V1/V2 and its live migration with the dirtier and balloon.
BOOT="arm64-boot-1 arm64-poweroff-exit0 arm64-nproc-1 arm64-date arm64-boot-2 arm64-nproc-2
	arm64-nproc-4 arm64-devices arm64-no-reboot-exit0 arm64-reboot-restarts"
VIRTIO="arm64-virtio-devices arm64-virtio-rng arm64-virtio-net-ping arm64-virtio-net-tcp
	arm64-virtio-blk-ext4 arm64-virtio-console"
TINY="arm64-tiny-serial-off arm64-tiny-reset arm64-tiny-smp arm64-tiny-nisv-crash"
LIFE="arm64-life-pause arm64-life-snapshot-restore arm64-life-migrate arm64-life-migrate-dirty
	arm64-life-shutdown arm64-life-balloon"
BAD="arm64-bad-not-a-kernel arm64-bad-elf arm64-bad-memory-1M arm64-bad-cpus-too-many"
UP="arm64-up-boot arm64-up-cpus arm64-up-link-ping arm64-up-link-tcp arm64-up-isolated arm64-up-sigterm"
ALL=$(echo $BOOT $VIRTIO $TINY $LIFE $UP $BAD)
if [ "${1:-}" = --list ]; then
	echo "$ALL" | tr ' ' '\n'
	exit 0
fi

ONLY=$(echo "${1:-}" | tr ',' ' ')
KB=/kvmbox
IMG=$KB/vmlinuz
GI=$KB/guest-initrd.gz
GAPPEND="quiet panic=-1"
BOOT_TMO=${KVMBOX_BOOT_TIMEOUT:-120}
BAD_TMO=30
W=/tmp/kvmbox-tests
mkdir -p $W

want() {
	[ -z "$ONLY" ] && return 0
	for _w in "$@"; do
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

# vm ID TIMEOUT STOP_PATTERN STOP_COUNT kvmbox-run-args...: run kvmbox in the background
# (output $W/ID.out, stderr $W/ID.err), killed after TIMEOUT seconds or, with SIGTERM, once
# STOP_PATTERN was printed STOP_COUNT times. Sets RC (status, "timeout" or "stopped"), SECS (the
# whole run) and INIT_SECS (kvmbox start to the first KVMBOX-INIT, to the 0.1 s poll).
vm() {
	id=$1 tmo=$2 pat=$3 cnt=$4
	shift 4
	t0=$(now)
	DM0=$(dmesg | wc -l)
	INIT_SECS=
	kvmbox run "$@" </dev/null >$W/$id.out 2>$W/$id.err &
	pid=$!
	ticks=0 why=
	while alive $pid; do
		if [ -z "$INIT_SECS" ] && grep -q KVMBOX-INIT $W/$id.out 2>/dev/null; then
			INIT_SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
		fi
		if [ $ticks -ge $((tmo * 10)) ]; then
			why=timeout
			kill -KILL $pid 2>/dev/null
			break
		fi
		if [ -n "$pat" ] && [ "$(grep -c "$pat" $W/$id.out 2>/dev/null)" -ge "$cnt" ]; then
			why=stopped
			kill -TERM $pid 2>/dev/null
			sleep 2
			kill -KILL $pid 2>/dev/null
			break
		fi
		usleep 100000
		ticks=$((ticks + 1))
	done
	wait $pid
	RC=$?
	[ -n "$why" ] && RC=$why
	SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	echo "KVMBOX-I $id: kvmbox run $* -> status $RC after ${SECS}s (init marker after ${INIT_SECS:-none}s)"
}

diag() { # NAME ID: what the guest and kvmbox said last
	want "$1" || return 0
	tr -d '\r' <$W/$2.out | grep -v '^[[:space:]]*$' | tail -n 12 | sed "s/^/KVMBOX-L $1 guest: /"
	tail -n 12 $W/$2.err | sed "s/^/KVMBOX-L $1 stderr: /"
	dmesg | tail -n +$((DM0 + 1)) | tail -n 8 | sed "s/^/KVMBOX-L $1 host dmesg: /"
}

has() { tr -d '\r' <$W/$2.out | grep -q "$1"; }
count() { tr -d '\r' <$W/$2.out | grep -c "$1"; }
result() { tr -d '\r' <$W/$2.out | sed -n "s/.*KVMBOX-RESULT $1 \\([0-9]*\\).*/\\1/p" | head -n1; }

boot_check() { # NAME ID
	if has KVMBOX-INIT $2; then
		res PASS $1
	else
		res FAIL $1 "no init marker from the guest (kvmbox status $RC after ${SECS}s)"
		diag $1 $2
		[ "$BOOT_TMO" -gt 60 ] && BOOT_TMO=60
	fi
}

status_check() { # NAME ID WANT
	if [ "$RC" = "$3" ]; then
		res PASS $1
	else
		res FAIL $1 "kvmbox status $RC, expected $3"
		diag $1 $2
	fi
}

nproc_check() { # NAME ID N
	n=$(result nproc $2)
	if [ "$n" = "$3" ]; then
		res PASS $1
	else
		res FAIL $1 "guest counts ${n:-no} CPUs, expected $3"
		diag $1 $2
	fi
}

# one_line NAME ID: a refused start is status 1 with exactly one line on stderr.
one_line() {
	if [ "$RC" = 1 ] && [ "$(wc -l <$W/$2.err)" = 1 ]; then
		res PASS $1
		echo "KVMBOX-I $1: $(cat $W/$2.err)"
	else
		res FAIL $1 "status $RC with $(wc -l <$W/$2.err) lines on stderr, expected 1 and one line"
		diag $1 $2
	fi
}

# --- Guest boots --------------------------------------------------------------------------

if want arm64-boot-1 arm64-poweroff-exit0 arm64-nproc-1 arm64-date; then
	# No --no-reboot: a guest poweroff must end kvmbox; a restart would show a second marker.
	vm init1 $BOOT_TMO KVMBOX-INIT 2 -k $IMG -i $GI -c 1 -a "$GAPPEND kvmbox.test=init"
	boot_check arm64-boot-1 init1
	status_check arm64-poweroff-exit0 init1 0
	nproc_check arm64-nproc-1 init1 1
	g=$(result date init1)
	if [ -n "$g" ]; then
		echo "KVMBOX-T DATA arm64-date $g $(date +%s)"
	else
		res FAIL arm64-date "the guest printed no date"
		diag arm64-date init1
	fi
fi

if want arm64-boot-2 arm64-nproc-2 arm64-devices; then
	# Not quiet, with earlycon: the boot log shows what the guest made of the device tree.
	vm init2 $BOOT_TMO KVMBOX-INIT 2 -k $IMG -i $GI -c 2 -a "earlycon panic=-1 kvmbox.test=init"
	boot_check arm64-boot-2 init2
	nproc_check arm64-nproc-2 init2 2
	miss=
	for p in 'earlycon: ns16550a0 at MMIO 0x0*9000000' 'GICv3: 96 SPIs implemented' \
		'ITS@0x0*8080000' 'psci: PSCIv1' 'smp: Brought up 1 node, 2 CPUs' \
		'arch_timer: cp15 timer' 'rtc-pl031 9010000.rtc: registered as rtc0' \
		'9000000.uart: ttyS0 at MMIO 0x9000000'; do
		has "$p" init2 || miss="$miss '$p'"
	done
	if [ -z "$miss" ] && [ "$RC" = 0 ]; then
		res PASS arm64-devices
	else
		res FAIL arm64-devices "status $RC; the boot log lacks:$miss"
		diag arm64-devices init2
		tr -d '\r' <$W/init2.out | grep -iE 'earlycon|GIC|ITS|psci|smp:|timer|rtc|ttyS|console' |
			head -n 40 | sed 's/^/KVMBOX-L arm64-devices boot log: /'
	fi
fi

if want arm64-nproc-4; then
	vm init4 $BOOT_TMO KVMBOX-INIT 2 --no-reboot -k $IMG -i $GI -c 4 -a "$GAPPEND kvmbox.test=init"
	nproc_check arm64-nproc-4 init4 4
fi

if want arm64-no-reboot-exit0; then
	vm noreboot $BOOT_TMO KVMBOX-INIT 2 --no-reboot -k $IMG -i $GI -a "$GAPPEND kvmbox.test=rebootonce"
	if [ "$RC" = 0 ] && [ "$(count KVMBOX-INIT noreboot)" = 1 ]; then
		res PASS arm64-no-reboot-exit0
	else
		res FAIL arm64-no-reboot-exit0 "status $RC, $(count KVMBOX-INIT noreboot) init markers (expected 0 and 1)"
		diag arm64-no-reboot-exit0 noreboot
	fi
fi

if want arm64-reboot-restarts; then
	# Without --no-reboot the guest comes back: stop kvmbox at the second init marker.
	vm reboot $BOOT_TMO KVMBOX-INIT 2 -k $IMG -i $GI -a "$GAPPEND kvmbox.test=rebootonce"
	if [ "$(count KVMBOX-INIT reboot)" -ge 2 ]; then
		res PASS arm64-reboot-restarts
	else
		res FAIL arm64-reboot-restarts "status $RC, $(count KVMBOX-INIT reboot) init markers (expected 2)"
		diag arm64-reboot-restarts reboot
	fi
fi

# --- Virtio: disk, network, rng, console (two guest boots) ------------------------------------
# As tests/linux/host-tests.sh's V1/V2 with the same guest-init scenarios (virtio1, virtio2):
# the devices sit on the ECAM PCI host and interrupt through MSI-X and the ITS. The ext4 image
# is made on the real host (lib.sh: no mke2fs runs here).

GV=$W/guest-virtio.gz
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

[ -f $GV ] || cat $GI $KB/guest-modules.cpio.gz >$GV

# shellcheck disable=SC2086
if want $VIRTIO; then
	e2=
	if [ -f $KB/ext4-64M.img.gz ]; then
		gunzip -c $KB/ext4-64M.img.gz >$W/ext4.img
	else
		e2="no ext4 image in the emulated host (lib.sh makes it with the real host's mke2fs)"
		truncate -s 64M $W/ext4.img
	fi
	neterr=$(net_setup)
	dd if=/dev/urandom of=$W/blob bs=1M count=$NET_MB 2>/dev/null
	blob=$(hsum $W/blob)
	: >$W/netback
	netargs=
	if [ -z "$neterr" ]; then
		# Busybox nc quits after the first buffer when its stdin ends: the receiver reads a
		# sleep; it ends when the guest closes the connection.
		sleep 900 | nc -l -p 5001 >$W/netback &
		NC1=$!
		nc -l -p 5002 <$W/blob &
		NC2=$!
		netargs="--net tap=tap0,mac=52:54:00:12:34:56"
	fi

	# Boot 1: serial console; ext4 written on vda, net, rng.
	vm virtio1 $VTMO "" 0 --no-reboot -m 384M -d $W/ext4.img $netargs --rng \
		-k $IMG -i $GV -a "$GAPPEND kvmbox.test=virtio1"
	rc1=$RC
	kill $NC1 $NC2 2>/dev/null

	m=$(vget virtio1 modules)
	got=$(vget virtio1 devices) pci=$(vget virtio1 pci) msix=$(vget virtio1 msix)
	want="1:virtio_net 2:virtio_blk 4:virtio_rng "
	wpci="0x1af4:0x1041 0x1af4:0x1042 0x1af4:0x1044 0x1b36:0x0008 "
	if [ -n "$neterr" ]; then
		want="2:virtio_blk 4:virtio_rng "
		wpci="0x1af4:0x1042 0x1af4:0x1044 0x1b36:0x0008 "
	fi
	if [ "$m" != ok ]; then
		res FAIL arm64-virtio-devices "the guest's virtio modules did not load: '${m:-no report}' (kvmbox status $RC)"
		diag arm64-virtio-devices virtio1
	elif [ "$got" = "$want" ] && [ "$pci" = "$wpci" ] && [ "${msix:-0}" -ge "$(echo $want | wc -w)" ]; then
		res PASS arm64-virtio-devices
	else
		res FAIL arm64-virtio-devices "guest found virtio '$got' (want '$want'), pci '$pci' (want '$wpci')," \
			"${msix:-no} MSI-X virtio interrupts (want one per device at least)"
		diag arm64-virtio-devices virtio1
		tr -d '\r' <$W/virtio1.out | grep -iE 'pci|its|msi|virtio' | head -n 30 |
			sed 's/^/KVMBOX-L arm64-virtio-devices boot log: /'
	fi

	r=$(vget virtio1 rng)
	if [ "$(field "$r" bytes)" = 4096 ] && [ "$(field "$r" distinct)" -ge 200 ] 2>/dev/null &&
		[ "${r#*virtio}" != "$r" ]; then
		res PASS arm64-virtio-rng
	else
		res FAIL arm64-virtio-rng "want 4096 bytes from /dev/hwrng (rng_current virtio_rng.N)" \
			"with at least 200 distinct byte values; guest: '${r:-no report}'"
		diag arm64-virtio-rng virtio1
	fi

	if [ -n "$neterr" ]; then
		res FAIL arm64-virtio-net-ping "emulated host network: $neterr"
		res FAIL arm64-virtio-net-tcp "emulated host network: $neterr"
	else
		r=$(vget virtio1 ping)
		if [ "$(field "$r" status)" = 0 ] && [ "${r#*3 packets received}" != "$r" ]; then
			res PASS arm64-virtio-net-ping
		else
			res FAIL arm64-virtio-net-ping "guest ping -c 3 10.0.0.1: '${r:-no report}'"
			diag arm64-virtio-net-ping virtio1
		fi
		ri=$(vget virtio1 netin) ro=$(vget virtio1 netout)
		nb=$(wc -c <$W/netback) ns=$(hsum $W/netback)
		wb=$((NET_MB * 1048576))
		echo "KVMBOX-I net: in '$ri', out '$ro', host received $nb bytes"
		if [ "$(field "$ri" bytes)" = $wb ] && [ "$(field "$ri" sum)" = "$blob" ] &&
			[ "$(field "$ro" status)" = 0 ] && [ "$nb" = $wb ] && [ "$ns" = "$blob" ]; then
			res PASS arm64-virtio-net-tcp
		else
			res FAIL arm64-virtio-net-tcp "$NET_MB MiB each way, sha256 $blob: guest received" \
				"'${ri:-nothing}', sent '${ro:-nothing}'; the host got $nb bytes, sum $ns"
			diag arm64-virtio-net-tcp virtio1
		fi
	fi

	# Boot 2: console=hvc0 (--console virtio): the files of boot 1, then a shell on hvc0
	# driven through kvmbox's stdin; stopped once the guest is past the shell.
	rm -f $W/hvc.in
	mkfifo $W/hvc.in
	exec 4<>$W/hvc.in
	truncate -s 8M $W/raw.img
	kvmbox run --no-reboot --console virtio -m 256M -d $W/ext4.img -d $W/raw.img -k $IMG -i $GV \
		-a "console=hvc0 quiet panic=-1 kvmbox.test=virtio2 kvmbox.marker=arm64" \
		<$W/hvc.in >$W/virtio2.out 2>$W/virtio2.err &
	pid=$!
	DM0=$(dmesg | wc -l)
	typed=0 ticks=0
	while alive $pid && [ $ticks -lt $((VTMO * 10)) ]; do
		if [ $typed = 0 ] && has "KVMBOX-V shell ready" virtio2; then
			printf 'echo KVMBOX-SHELL-$((6 * 7))\nexit\n' >&4
			typed=1
		fi
		has KVMBOX-FSYNCED virtio2 && break
		usleep 100000
		ticks=$((ticks + 1))
	done
	kill -KILL $pid 2>/dev/null
	wait $pid
	exec 4>&-
	RC=stopped

	if [ -n "$e2" ]; then
		res SKIP arm64-virtio-blk-ext4 "$e2"
	else
		s1=$(tr -d '\r' <$W/virtio1.out | grep 'KVMBOX-V sum1 ' | sed 's/.*KVMBOX-V sum1 //' | sort)
		s2=$(tr -d '\r' <$W/virtio2.out | grep 'KVMBOX-V sum2 ' | sed 's/.*KVMBOX-V sum2 //' | sort)
		n1=$(echo "$s1" | grep -c '[0-9a-f]\{64\}')
		if [ "$rc1" = 0 ] && [ "$(vget virtio1 ext4)" = written ] && [ "$n1" = 3 ] && [ "$s1" = "$s2" ]; then
			res PASS arm64-virtio-blk-ext4
		else
			res FAIL arm64-virtio-blk-ext4 "boot 1 (kvmbox status $rc1, want 0): ext4" \
				"'$(vget virtio1 ext4)', $n1 sums; boot 2 sums $([ "$s1" = "$s2" ] && echo equal || echo DIFFER):" \
				"$(echo "$s2" | tr '\n' ' ')"
			diag arm64-virtio-blk-ext4 virtio1
			diag arm64-virtio-blk-ext4 virtio2
		fi
	fi
	if has KVMBOX-SHELL-42 virtio2; then
		res PASS arm64-virtio-console
	else
		res FAIL arm64-virtio-console "--console virtio: no answer on hvc0 to 'echo" \
			"KVMBOX-SHELL-\$((6 * 7))' (typed: $typed)"
		diag arm64-virtio-console virtio2
	fi
fi

# --- Tiny guests (tests/linux/arm64/tiny/*.S, make arm64-tiny) -------------------------------

# tiny NAME IMAGE WANT_STATUS WANT_LINE kvmbox-args...: run a tiny guest; PASS when kvmbox ends
# with WANT_STATUS and the console shows WANT_LINE exactly once.
tiny() {
	_n=$1 _id=$2 _img=$KB/$2.img _st=$3 _line=$4
	shift 4
	want $_n || return 0
	if [ ! -f $_img ]; then
		res SKIP $_n "$_id.img not built (make arm64-tiny)"
		return 0
	fi
	vm $_id 20 "" 0 -k $_img "$@"
	if [ "$RC" = "$_st" ] && [ "$(count "$_line" $_id)" = 1 ]; then
		res PASS $_n
	else
		res FAIL $_n "kvmbox status $RC (expected $_st), '$_line' seen $(count "$_line" $_id) times (expected once)"
		diag $_n $_id
	fi
}
tiny arm64-tiny-serial-off psci_off 0 "TINY-OFF serial works"
tiny arm64-tiny-reset psci_reset 0 "TINY-RESET" --no-reboot
tiny arm64-tiny-smp smp 0 "TINY-SMP vCPU 1 up" -c 2
if want arm64-tiny-nisv-crash; then
	if [ ! -f $KB/nisv.img ]; then
		res SKIP arm64-tiny-nisv-crash "nisv.img not built (make arm64-tiny)"
	else
		vm nisv 20 "" 0 -k $KB/nisv.img
		if [ "$RC" = 3 ] && grep -q 'guest crashed on vCPU 0' $W/nisv.err && grep -q ' pc ' $W/nisv.err &&
			! has TINY-NISV nisv; then
			res PASS arm64-tiny-nisv-crash
			echo "KVMBOX-I arm64-tiny-nisv-crash: $(head -n1 $W/nisv.err)"
		else
			res FAIL arm64-tiny-nisv-crash "kvmbox status $RC (expected 3 with a register dump)"
			diag arm64-tiny-nisv-crash nisv
		fi
	fi
fi

# --- Pause and snapshot ---------------------------------------------------------------------

# tick ID: the last "KVMBOX-C <n>" counter the lifecycle guest printed (0 before any).
tick() { tr -d '\r' <$W/$1.out | sed -n 's/.*KVMBOX-C \([0-9]*\) end.*/\1/p' | tail -n1 | grep . || echo 0; }
# wait_tick ID N SECS: until the guest's counter reaches N.
wait_tick() {
	_i=0
	while [ "$(tick $1)" -lt $2 ] && [ $_i -lt $(($3 * 10)) ] && alive $LPID; do usleep 100000; _i=$((_i + 1)); done
	[ "$(tick $1)" -ge $2 ]
}

if want arm64-life-pause arm64-life-snapshot-restore arm64-life-migrate; then
	# The lifecycle guest (guest-init's life: a counter every 0.2 s) on 2 vCPUs, driven through
	# the control socket.
	S=$W/api.sock
	rm -f $S $W/life.snap
	DM0=$(dmesg | wc -l)
	kvmbox run -k $IMG -i $GI -c 2 --api $S -a "$GAPPEND kvmbox.test=life" </dev/null >$W/life.out 2>$W/life.err &
	LPID=$!
	if ! wait_tick life 10 $BOOT_TMO; then
		res FAIL arm64-life-pause "the lifecycle guest did not count to 10"
		res FAIL arm64-life-snapshot-restore "not run: the lifecycle guest did not count to 10"
		res FAIL arm64-life-migrate "not run: the lifecycle guest did not count to 10"
		diag arm64-life-pause life
	else
		kvmbox ctl $S pause >$W/ctl.out 2>&1
		a=$(tick life)
		sleep 2
		b=$(tick life)
		kvmbox ctl $S resume >>$W/ctl.out 2>&1
		if [ "$a" = "$b" ] && wait_tick life $((b + 5)) 20; then
			res PASS arm64-life-pause
		else
			res FAIL arm64-life-pause "counter $a -> $b while paused, then $(tick life) after resume"
			diag arm64-life-pause life
		fi
		t0=$(now)
		# The state is captured somewhere between the counter before and after the command.
		before=$(tick life)
		if kvmbox ctl $S snapshot $W/life.snap >>$W/ctl.out 2>&1; then
			snap=$(tick life)
			echo "KVMBOX-I snapshot between counter $before and $snap in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s, $(du -k $W/life.snap | cut -f1) KiB on disk"
			wait_tick life $((snap + 10)) 20
			kill -KILL $LPID
			wait $LPID
			rm -f $W/api2.sock
			kvmbox restore $W/life.snap -k $IMG -i $GI -c 2 --api $W/api2.sock </dev/null >$W/restored.out 2>$W/restored.err &
			LPID=$!
			t0=$(now)
			wait_tick restored $((snap + 10)) 60
			first=$(tr -d '\r' <$W/restored.out | sed -n 's/.*KVMBOX-C \([0-9]*\) end.*/\1/p' | head -n1)
			last=$(tick restored)
			echo "KVMBOX-I restored: counter $first..$last, $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s"
			# Live migration of the restored VM to a second kvmbox (unix socket): the source
			# exits 0, the destination's guest goes on counting.
			if want arm64-life-migrate; then
				rm -f $W/mig.sock
				kvmbox run -k $IMG -i $GI -c 2 --incoming unix:$W/mig.sock </dev/null >$W/migrated.out 2>$W/migrated.err &
				DPID=$!
				_i=0
				while [ ! -S $W/mig.sock ] && [ $_i -lt 50 ]; do usleep 100000; _i=$((_i + 1)); done
				mfrom=$(tick restored)
				kvmbox ctl $W/api2.sock migrate unix:$W/mig.sock >$W/mig.ctl 2>&1
				mrc=$?
				_i=0
				while alive $LPID && [ $_i -lt 100 ]; do usleep 100000; _i=$((_i + 1)); done
				wait $LPID
				src=$?
				mto=$(tick restored)
				mfirst=$(tr -d '\r' <$W/migrated.out | sed -n 's/.*KVMBOX-C \([0-9]*\) end.*/\1/p' | head -n1)
				LPID=$DPID
				wait_tick migrated $((mto + 10)) 30
				mlast=$(tick migrated)
				echo "KVMBOX-I migrated: source counter $mfrom..$mto (ctl status $mrc, source status $src), destination ${mfirst:-none}..$mlast; $(grep -o '"downtime_ms": [0-9.]*' $W/mig.ctl)"
				if [ "$mrc" = 0 ] && [ "$src" = 0 ] && [ -n "$mfirst" ] && [ "$mfirst" -ge "$mfrom" ] &&
					[ "$mfirst" -le $((mto + 1)) ] && [ "$mlast" -ge $((mto + 10)) ] && ! has KVMBOX-INIT migrated; then
					res PASS arm64-life-migrate
				else
					res FAIL arm64-life-migrate "ctl status $mrc, source status $src, source counter $mfrom..$mto, destination ${mfirst:-none}..$mlast"
					diag arm64-life-migrate migrated
					tail -n 5 $W/mig.ctl | sed 's/^/KVMBOX-L arm64-life-migrate ctl: /'
				fi
			fi
			kill -TERM $LPID 2>/dev/null
			wait $LPID
			# The restored guest goes on from where it was: no new boot, the counter continues.
			if [ -n "$first" ] && [ "$first" -ge "$before" ] && [ "$first" -le $((snap + 1)) ] &&
				[ "$last" -ge $((snap + 10)) ] && ! has KVMBOX-INIT restored; then
				res PASS arm64-life-snapshot-restore
			else
				res FAIL arm64-life-snapshot-restore "snapshot between counter $before and $snap, restored counter ${first:-none}..$last"
				diag arm64-life-snapshot-restore restored
				tail -n 5 $W/ctl.out | sed 's/^/KVMBOX-L arm64-life-snapshot-restore ctl: /'
			fi
		else
			res FAIL arm64-life-snapshot-restore "kvmbox ctl snapshot failed: $(tail -n1 $W/ctl.out)"
			res FAIL arm64-life-migrate "not run: the snapshot failed"
			diag arm64-life-snapshot-restore life
		fi
	fi
	kill -KILL $LPID 2>/dev/null
	wait $LPID 2>/dev/null
fi

# --- Live migration with a memory-dirtying guest, and the balloon ------------------------------
# guest-init's lifecycle guest takes commands on its console ("<id> <command> [arg]", answered
# "KVMBOX-R <id> <command> <result>"): kvmbox's stdin is a FIFO the tests write to.
CTL_TMO=30

# lwait ID PATTERN SECS PID: until $W/ID.out has a line matching PATTERN; false after SECS
# seconds or once PID has exited (sets WHY).
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
# lctl SOCK WORDS...: kvmbox ctl with a time limit; sets CTL and CTL_RC.
lctl() {
	CTL=$(timeout -k 5 $((CTL_TMO + 10)) kvmbox ctl --timeout $CTL_TMO "$@" 2>&1)
	CTL_RC=$?
	echo "KVMBOX-I ctl $*: status $CTL_RC: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-300)"
}
# jget NAME: the value of "NAME": in the last ctl reply.
jget() { echo "$CTL" | sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\).*/\1/p" | head -n1; }
# lcmd ID FD PID SECS CMD [ARG]: a guest command through fd FD; sets R (the answer) or WHY.
LSEQ=0
lcmd() {
	_id=$1 _fd=$2 _p=$3 _s=$4
	shift 4
	LSEQ=$((LSEQ + 1))
	echo "$LSEQ $*" >&$_fd
	R=
	lwait $_id "^KVMBOX-R $LSEQ " $_s $_p || { WHY="guest command '$*': $WHY"; return 1; }
	R=$(tr -d '\r' <$W/$_id.out | sed -n "s/^KVMBOX-R $LSEQ [^ ]* //p" | head -n1)
	echo "KVMBOX-I $_id: guest '$*' -> $R"
}
lctr() { tr -d '\r' <$W/$1.out | sed -n 's/^KVMBOX-C \([0-9][0-9]*\) end$/\1/p' | tail -n1; }
lfirst() { tr -d '\r' <$W/$1.out | sed -n 's/^KVMBOX-C \([0-9][0-9]*\) end$/\1/p' | head -n1; }
lrss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$1/status 2>/dev/null; }
# lreap PID SECS: wait for PID to exit (kill -9 after SECS); sets RC.
lreap() {
	_n=0
	while alive $1 && [ $_n -lt $(($2 * 5)) ]; do usleep 200000; _n=$((_n + 1)); done
	alive $1 && kill -KILL $1 2>/dev/null
	wait $1
	RC=$?
}

# shellcheck disable=SC2086
if want arm64-life-migrate-dirty arm64-life-shutdown; then
	rm -f $W/m1.in $W/m2.in $W/m1.sock $W/d2.sock
	mkfifo $W/m1.in $W/m2.in
	exec 5<>$W/m1.in 6<>$W/m2.in
	DM0=$(dmesg | wc -l)
	truncate -s 16M $W/mig.img
	# Over tcp the stream is encrypted: the same --migration-key on both sides.
	head -c 32 /dev/urandom >$W/mig.key && chmod 600 $W/mig.key
	# A disk too: after the move its interrupts (MSI-X through the ITS, whose tables KVM keeps in
	# guest RAM) must still arrive.
	kvmbox run -m 512M -c 2 --api $W/m1.sock -d $W/mig.img --migration-key $W/mig.key -k $IMG -i $GV \
		-a "$GAPPEND kvmbox.test=life kvmbox.mb=32" \
		<$W/m1.in >$W/m1.out 2>$W/m1.err &
	S=$!
	why=
	if ! lwait m1 '^KVMBOX-C 3 end' $BOOT_TMO $S; then
		why="the lifecycle guest did not start: $WHY"
	elif ! lcmd m1 5 $S 120 dirty start 32; then
		why="guest setup: $WHY"
	fi
	if [ -z "$why" ]; then
		kvmbox run -m 512M -c 2 -d $W/mig.img -k $IMG -i $GV --incoming tcp:127.0.0.1:4445 --api $W/d2.sock --migration-key $W/mig.key <$W/m2.in >$W/d2.out 2>$W/d2.err &
		D=$!
		n=0
		while ! grep -q 'waiting for a migration' $W/d2.err && alive $D && [ $n -lt 50 ]; do usleep 200000; n=$((n + 1)); done
		lcmd m1 5 $S 30 dirty status
		p0=$(field "$R" passes)
		cb=$(lctr m1)
		CTL_TMO=300
		lctl $W/m1.sock migrate tcp:127.0.0.1:4445
		mrc=$CTL_RC CTL_TMO=30
		fig="rounds=$(jget rounds) bytes=$(jget bytes) pages=$(jget pages) total_ms=$(jget total_ms) downtime_ms=$(jget downtime_ms)"
		echo "KVMBOX-I arm64 migration figures: $fig (dirtier at pass $p0 before)"
		lreap $S 15
		src=$RC
		ca=$(lctr m1)
		if [ "$mrc" != 0 ] || [ -z "$(jget downtime_ms)" ]; then
			why="ctl migrate status $mrc: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-200)"
		elif [ "$src" != 0 ]; then
			why="source kvmbox status $src (want 0)"
		elif ! lwait d2 '^KVMBOX-C [0-9]* end' 30 $D; then
			why="destination: no counter: $WHY"
		fi
		f=$(lfirst d2)
		if [ -z "$why" ] && { [ "$f" -lt "$cb" ] || [ "$f" -gt $((ca + 2)) ]; }; then
			why="destination's first counter $f (want $cb..$((ca + 2)))"
		fi
		if [ -z "$why" ]; then
			lcmd d2 6 $D 60 check && c=$R || c="none: $WHY"
			# Two more full passes of the dirtier on the destination, then stop it.
			lcmd d2 6 $D 30 dirty status
			p1=$(field "$R" passes) p2=$p1 n=0
			while [ "${p2:-0}" -lt $((${p1:-0} + 2)) ] && [ $n -lt 30 ]; do
				sleep 1
				lcmd d2 6 $D 30 dirty status && p2=$(field "$R" passes)
				n=$((n + 1))
			done
			lcmd d2 6 $D 30 dirty stop && dr=$R || dr="none: $WHY"
			lcmd d2 6 $D 60 disk 3 && d=$R || d="none: $WHY"
			i3=$(dd if=$W/mig.img bs=1M skip=3 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
			if [ "${c%% *}" != ok ]; then
				why="32 MiB written before the migration: check '$c'"
			elif [ "$(field "$dr" mismatches)" != 0 ] || [ "${p2:-0}" -lt $((${p1:-0} + 2)) ] ||
				[ "${p1:-0}" -le "${p0:-0}" ]; then
				why="dirtier: '$dr' (passes $p0 before the migration, $p1 after it, $p2 later; want no mismatch)"
			elif [ "${d%% *}" != ok ] || [ "$(field "$d" sum)" != "$i3" ]; then
				why="disk after the migration: '$d', image $i3"
			fi
		fi
		# The power button (the PL061's gpio-keys KEY_POWER; the guest's acpid powers off)
		# on the destination: `ctl shutdown` ends kvmbox with status 0, the guest's own.
		swhy="not run: $why"
		if [ -z "$why" ]; then
			lctl $W/d2.sock shutdown timeout=30
			lreap $D 40
			if [ "$CTL_RC" = 0 ] && [ "$RC" = 0 ] && has 'KVMBOX-ACPI power button' d2; then
				swhy=
			else
				seen=$(has 'KVMBOX-ACPI power button' d2 && echo saw || echo 'did not see')
				swhy="ctl shutdown status $CTL_RC, kvmbox status $RC (want 0 and 0); the guest $seen the key"
			fi
		fi
		kill -KILL $D 2>/dev/null
		wait $D
	fi
	kill -KILL $S 2>/dev/null
	wait $S 2>/dev/null
	exec 5>&- 6>&-
	if [ -z "$why" ]; then
		res PASS arm64-life-migrate-dirty
	else
		res FAIL arm64-life-migrate-dirty "$why"
		diag arm64-life-migrate-dirty m1
		diag arm64-life-migrate-dirty d2
	fi
	if [ -z "$swhy" ]; then
		res PASS arm64-life-shutdown
	else
		res FAIL arm64-life-shutdown "$swhy"
		[ -n "$why" ] || diag arm64-life-shutdown d2
		tr -d '\r' <$W/m1.out | grep -iE 'acpid|gpio|input|modules' | head -n 8 |
			sed 's/^/KVMBOX-L arm64-life-shutdown boot: /'
	fi
fi

# shellcheck disable=SC2086
if want arm64-life-balloon; then
	rm -f $W/b1.in $W/b1.sock
	mkfifo $W/b1.in
	exec 5<>$W/b1.in
	DM0=$(dmesg | wc -l)
	kvmbox run -m 512M --balloon --api $W/b1.sock -k $IMG -i $GV -a "$GAPPEND kvmbox.test=life kvmbox.mb=1" \
		<$W/b1.in >$W/b1.out 2>$W/b1.err &
	P=$!
	why=
	touched=400
	if ! lwait b1 '^KVMBOX-C 3 end' $BOOT_TMO $P; then
		why="the lifecycle guest did not start: $WHY"
	elif ! lcmd b1 5 $P 120 touch $touched; then
		why=$WHY
	fi
	if [ -z "$why" ]; then
		r0=$(lrss $P)
		lctl $W/b1.sock balloon 64M
		brc=$CTL_RC
		# Until kvmbox's RSS has fallen enough, actual is near the target or has not moved for
		# 5 s (the guest keeps some memory the balloon cannot take); at most 30 s.
		need=$(((touched - 64) / 2))
		n=0 prev='' same=0 a=''
		while [ $n -lt 30 ]; do
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
		echo "KVMBOX-I arm64 balloon 64M: actual $a after ${n}s; kvmbox RSS $((${r0:-0} / 1024)) -> $((${r1:-0} / 1024)) MiB"
		if [ "$brc" != 0 ] || [ "$drop" -lt $need ]; then
			why="ctl balloon 64M status $brc; after ${n}s balloon actual ${a:-none}; kvmbox RSS fell by $drop MiB"
			why="$why, want at least $need after touching $touched MiB"
		else
			lctl $W/b1.sock balloon 512M
			brc=$CTL_RC n=0
			while [ $n -lt 30 ]; do
				lctl $W/b1.sock info
				a=$(jget actual)
				[ "$a" = 536870912 ] && break
				sleep 1
				n=$((n + 1))
			done
			c0=$(lctr b1)
			if [ "$brc" != 0 ] || [ "$a" != 536870912 ]; then
				why="deflate: ctl balloon 512M status $brc; balloon actual ${a:-none} after ${n}s (want 536870912)"
			elif ! lwait b1 "^KVMBOX-C $((${c0:-0} + 3)) end" 20 $P; then
				why="after the balloon: $WHY"
			fi
		fi
	fi
	kill -KILL $P 2>/dev/null
	wait $P 2>/dev/null
	exec 5>&-
	if [ -z "$why" ]; then
		res PASS arm64-life-balloon
	else
		res FAIL arm64-life-balloon "$why"
		diag arm64-life-balloon b1
	fi
fi

# --- kvmbox up: three VMs from one file, two on a link, CPU partitions (three boots at once) ---
# One [vm] section each: A (serve, 10.1.0.1, its vCPU on host CPU 0) and B (fetch, after A, on
# CPU 1) on link lan-u; C (isolated, 10.1.0.3, CPUs not dedicated) alone on link lan-v. B pings A
# and fetches 16 MiB from it, and tells A the sum it got; C's pings to A go unanswered. B and C
# power off (restart = no); then SIGTERM to up presses A's power button (the PL061's gpio-keys
# KEY_POWER: the guest's acpid powers off) and up exits 0 with no VM process left.

# up_cpus PID: the Cpus_allowed_list of each vCPU thread of PID, one line each, sorted.
up_cpus() {
	for _t in /proc/$1/task/*; do
		case $(cat $_t/comm 2>/dev/null) in
		vcpu*) sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' $_t/status ;;
		esac
	done | sort | tr '\n' ' '
}
# up_pid NAME: NAME's pid in the last `ctl list` reply (CTL); empty when it has none.
up_pid() {
	echo "$CTL" | tr -d ' \n' | sed -n "s/.*{\"name\":\"$1\",\([^}]*\)}.*/\1/p" |
		sed -n 's/.*"pid":\([0-9][0-9]*\).*/\1/p'
}
# up_log NAME: the console log of NAME, carriage returns dropped.
up_log() { tr -d '\r' <$W/up/state/$1.console.log 2>/dev/null; }
# up_v NAME KEY: the rest of NAME's first "KVMBOX-V KEY ..." line.
up_v() { up_log $1 | sed -n "s/^.*KVMBOX-V $2 //p" | head -n1; }

# shellcheck disable=SC2086
if want $UP; then
	rm -rf $W/up
	mkdir -p $W/up
	lg="$GAPPEND kvmbox.test=link kvmbox.mb=16"
	cat >$W/up/system.conf <<-EOC
		[defaults]
		state-dir = $W/up/state
		kernel = $IMG
		initrd = $GV
		memory = 256M
		restart = no
		shutdown-timeout = 30

		[vm a]
		net = link=lan-u,mac=52:54:00:00:0b:01
		vcpu-affinity = 0=0
		append = $lg kvmbox.role=serve kvmbox.ip=10.1.0.1

		[vm b]
		after = a
		net = link=lan-u
		vcpu-affinity = 0=1
		append = $lg kvmbox.role=fetch kvmbox.ip=10.1.0.2 kvmbox.peer=10.1.0.1

		[vm c]
		net = link=lan-v
		append = $lg kvmbox.role=isolated kvmbox.ip=10.1.0.3 kvmbox.peer=10.1.0.1
	EOC
	DM0=$(dmesg | wc -l)
	KVMBOX_LINK_DIR=$W/up/links kvmbox up --api $W/up/up.sock $W/up/system.conf </dev/null >$W/up.out 2>$W/up.err &
	U=$!
	# All three running, each with its vCPU threads: their CPUs then.
	n=0 ca= cb= cc= pa= pb= pc=
	while alive $U && [ $n -lt 300 ]; do
		CTL=$(kvmbox ctl --timeout 5 $W/up/up.sock list 2>&1)
		pa=$(up_pid a) pb=$(up_pid b) pc=$(up_pid c)
		if [ -n "$pa" ] && [ -n "$pb" ] && [ -n "$pc" ]; then
			ca=$(up_cpus $pa) cb=$(up_cpus $pb) cc=$(up_cpus $pc)
			[ -n "$ca" ] && [ -n "$cb" ] && [ -n "$cc" ] && break
		fi
		usleep 200000
		n=$((n + 1))
	done
	echo "KVMBOX-I up: pids a=$pa b=$pb c=$pc; vCPU CPUs a '$ca' b '$cb' c '$cc'; list $(echo "$CTL" | tr -d ' \n' | cut -c1-300)"
	# Until B has told A its sum and C has pinged (or one of them ended without).
	n=0
	while alive $U && [ $n -lt $((BOOT_TMO * 3 * 5)) ]; do
		up_log a | grep -q 'KVMBOX-V peer said' && up_log c | grep -q 'KVMBOX-V isolated' && break
		{ alive "${pb:-0}" || alive "${pc:-0}"; } || break
		usleep 200000
		n=$((n + 1))
	done
	lctl $W/up/up.sock list
	kill -TERM $U 2>/dev/null
	lreap $U 40
	urc=$RC left=
	for p in $pa $pb $pc; do alive $p && left="$left $p" && kill -KILL $p; done
	echo "KVMBOX-I up: status $urc; A '$(up_v a serving)' / '$(up_v a "peer said")'; B '$(up_v b fetched)'; C '$(up_v c isolated)'"

	if up_log a | grep -q KVMBOX-INIT && up_log b | grep -q KVMBOX-INIT && up_log c | grep -q KVMBOX-INIT &&
		[ -n "$pa" ] && [ -n "$pb" ] && [ -n "$pc" ]; then
		res PASS arm64-up-boot
	else
		res FAIL arm64-up-boot "init markers in the console logs: a $(up_log a | grep -c KVMBOX-INIT)," \
			"b $(up_log b | grep -c KVMBOX-INIT), c $(up_log c | grep -c KVMBOX-INIT); pids '$pa' '$pb' '$pc'"
		tail -n 8 $W/up.err | sed 's/^/KVMBOX-L arm64-up-boot up: /'
	fi
	if [ "$ca" = "0 " ] && [ "$cb" = "1 " ] && [ "$cc" = "0-1 " ]; then
		res PASS arm64-up-cpus
	else
		res FAIL arm64-up-cpus "vCPU threads' Cpus_allowed_list: a '$ca' (want 0), b '$cb' (want 1)," \
			"c '$cc' (want 0-1)"
	fi
	r=$(up_v b ping)
	if [ "$(field "$r" status)" = 0 ] && [ "${r#*3 packets received}" != "$r" ]; then
		res PASS arm64-up-link-ping
	else
		res FAIL arm64-up-link-ping "B pinging A over link lan-u: '${r:-no report}'"
		up_log b | tail -n 8 | sed 's/^/KVMBOX-L arm64-up-link-ping b: /'
	fi
	sa=$(up_v a serving) fb=$(up_v b fetched) said=$(up_v a "peer said")
	if [ "$(field "$sa" bytes)" = $((16 * 1048576)) ] && [ "$(field "$fb" bytes)" = $((16 * 1048576)) ] &&
		[ -n "$(field "$sa" sum)" ] && [ "$(field "$fb" sum)" = "$(field "$sa" sum)" ] &&
		[ "$said" = "$(field "$sa" sum)" ]; then
		res PASS arm64-up-link-tcp
		echo "KVMBOX-I up: 16 MiB A -> B in $(field "$fb" secs) s"
	else
		res FAIL arm64-up-link-tcp "16 MiB A -> B: A served '${sa:-nothing}', B fetched '${fb:-nothing}'," \
			"A heard back '${said:-nothing}'"
		up_log a | tail -n 8 | sed 's/^/KVMBOX-L arm64-up-link-tcp a: /'
	fi
	r=$(up_v c isolated)
	if [ -n "$(up_v c link)" ] && [ -n "$r" ] && [ "$(field "$r" status)" != 0 ] &&
		[ "${r#*" 0 packets received"}" != "$r" ]; then
		res PASS arm64-up-isolated
	else
		res FAIL arm64-up-isolated "C on link lan-v pinging A: '${r:-no report}' (want none answered)"
		up_log c | tail -n 8 | sed 's/^/KVMBOX-L arm64-up-isolated c: /'
	fi
	if [ "$urc" = 0 ] && [ -z "$left" ] && grep -q '^kvmbox up: SIGTERM' $W/up.err &&
		grep -q '^kvmbox up: vm a: exited with status 0' $W/up.err && up_log a | grep -q 'KVMBOX-ACPI power button'; then
		res PASS arm64-up-sigterm
	else
		res FAIL arm64-up-sigterm "kvmbox up after SIGTERM: status $urc (want 0), VM processes left:'${left:- none}'," \
			"A: '$(grep '^kvmbox up: vm a: exited' $W/up.err)' (want status 0), its guest" \
			"$(up_log a | grep -q 'KVMBOX-ACPI power button' && echo saw || echo 'did not see') the power button"
		up_log a | grep -iE 'acpid|gpio|input|modules' | head -n 8 | sed 's/^/KVMBOX-L arm64-up-sigterm a: /'
		tail -n 8 $W/up.err | sed 's/^/KVMBOX-L arm64-up-sigterm up: /'
	fi
fi

# --- Bad input: one line, status 1 ----------------------------------------------------------

if want arm64-bad-not-a-kernel; then
	vm badk $BAD_TMO "" 0 -k $GI
	one_line arm64-bad-not-a-kernel badk
fi
if want arm64-bad-elf; then
	vm badelf $BAD_TMO "" 0 -k $KB/kvmbox
	one_line arm64-bad-elf badelf
fi
if want arm64-bad-memory-1M; then
	vm badm $BAD_TMO "" 0 -k $IMG -i $GI -m 1M
	one_line arm64-bad-memory-1M badm
fi
if want arm64-bad-cpus-too-many; then
	vm badc $BAD_TMO "" 0 -k $IMG -i $GI -c 200
	one_line arm64-bad-cpus-too-many badc
fi
