#!/bin/sh
# host-tests.sh (arm64) - the arm64 Linux scenarios, run by busybox sh inside the emulated arm64
# host (qemu-system-aarch64 -M virt,virtualization=on,gic-version=3, see tests/linux/lib.sh).
# Installed as /kvmbox/host-tests.sh there; run by `KVMBOX_ARCH=arm64 tests/linux/run.sh`.
# Usage: host-tests.sh [GLOB[,GLOB...]] | --list
#
# Same lines as tests/linux/host-tests.sh (KVMBOX-T PASS|FAIL|SKIP name why, KVMBOX-T DATA,
# KVMBOX-L diagnostics, KVMBOX-I information). The guest is Debian's arm64 Image with the same
# guest-init as on x86 (its init and rebootonce scenarios need nothing x86-specific).
# Virtio is not on arm64 yet: no scenario for it here.
BOOT="arm64-boot-1 arm64-poweroff-exit0 arm64-nproc-1 arm64-date arm64-boot-2 arm64-nproc-2
	arm64-devices arm64-no-reboot-exit0 arm64-reboot-restarts"
TINY="arm64-tiny-serial-off arm64-tiny-reset arm64-tiny-smp arm64-tiny-nisv-crash"
LIFE="arm64-life-pause arm64-life-snapshot-restore arm64-life-migrate"
BAD="arm64-bad-not-a-kernel arm64-bad-elf arm64-bad-virtio arm64-bad-cpus-too-many"
ALL=$(echo $BOOT $TINY $LIFE $BAD)
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
			kvmbox restore $W/life.snap --api $W/api2.sock </dev/null >$W/restored.out 2>$W/restored.err &
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
				kvmbox run --incoming unix:$W/mig.sock </dev/null >$W/migrated.out 2>$W/migrated.err &
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

# --- Bad input: one line, status 1 ----------------------------------------------------------

if want arm64-bad-not-a-kernel; then
	vm badk $BAD_TMO "" 0 -k $GI
	one_line arm64-bad-not-a-kernel badk
fi
if want arm64-bad-elf; then
	vm badelf $BAD_TMO "" 0 -k $KB/kvmbox
	one_line arm64-bad-elf badelf
fi
if want arm64-bad-virtio; then
	vm badv $BAD_TMO "" 0 -k $IMG --rng
	one_line arm64-bad-virtio badv
fi
if want arm64-bad-cpus-too-many; then
	vm badc $BAD_TMO "" 0 -k $IMG -i $GI -c 200
	one_line arm64-bad-cpus-too-many badc
fi
