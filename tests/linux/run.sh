#!/bin/bash
# run.sh - the Linux tier: boot Debian's kernel with kvmbox, inside ONE emulated-host boot.
#
#   tests/linux/run.sh                  all scenarios
#   tests/linux/run.sh 'linux-nproc-*'  only the tests whose names match the globs
#   tests/linux/run.sh --list           the test names
#   tests/linux/run.sh --shell          a shell in the emulated host, kvm loaded, kvmbox in /kvmbox
#
# Prints one line per test: "PASS: name", "FAIL: name: why", "SKIP: name: why" (diagnostics
# after a FAIL are indented). The emulated host's serial log, each line stamped with the real
# host's time, is kept in build/linux/host.log.
# The x86 tier runs in two emulated hosts of one CPU each, side by side: parts "a" and "b"
# (tests/linux/host-tests.sh says which tests), each on one thread of this machine. QEMU's
# multi-threaded TCG, which an emulated host of two CPUs needs to be fast, corrupts the nested
# guests' memory now and then (DEVELOPERS.md, Known traps); with one CPU it cannot. Their logs
# are in OUT/a and OUT/b, and host.log has both. KVMBOX_LINUX_PART=all runs every test in one
# emulated host of KVMBOX_HOST_CPUS (default 2) CPUs with KVMBOX_HOST_TCG_THREAD (default
# multi), as the arm64 tier always does.
# Environment: KVMBOX_BIN (default build/kvmbox-static), KVMBOX_CACHE, KVMBOX_LINUX_TIMEOUT
# (seconds for the whole emulated host, default 1200), KVMBOX_BOOT_TIMEOUT (seconds per guest
# boot, default 120), KVMBOX_VERBOSE=1 (echo the serial log), KVMBOX_HOST_LOGLEVEL=N (the
# emulated host's console log level, default 1), KVMBOX_LINUX_OUT (directory for
# the host initramfs and host.log, default build/linux: another one lets two runs coexist),
# KVMBOX_LINK_YARDSTICK=1 (linux-link-throughput also times the tap path: docs/PERFORMANCE.md).
# KVMBOX_ARCH=arm64: the arm64 tier instead (emulated arm64 host, tests/linux/arm64/host-tests.sh,
# build/arm64/kvmbox-static, output in build/arm64/linux; see tests/linux/lib.sh).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
source tests/linux/lib.sh

# Which emulated host(s): split (x86's default: the parts a and b, each by a run.sh of its
# own), or one host for the part all, a or b.
PART=${KVMBOX_LINUX_PART:-}
if [[ -z $PART ]]; then
	if [[ $KB_ARCH == x86_64 ]]; then PART="split"; else PART="all"; fi
fi
case $PART in
split | all | a | b) ;;
*) echo "run.sh: KVMBOX_LINUX_PART=$PART: not one of all, a, b (unset: the default)" >&2; exit 1 ;;
esac
# The test names: host-tests.sh keeps the one list.
mapfile -t TESTS < <(sh "$KB_HOST_TESTS" --list "${PART/split/all}")
BIN=${KVMBOX_BIN:-$KB_DEFAULT_BIN}
OUT=${KVMBOX_LINUX_OUT:-$KB_DEFAULT_OUT}
LOG=$OUT/host.log
TMO=${KVMBOX_LINUX_TIMEOUT:-1200}
DATE_TOLERANCE=60

shell=0
globs=()
for a in "$@"; do
	case $a in
	--shell) shell=1 ;;
	--list) printf '%s\n' "${TESTS[@]}"; exit 0 ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) globs+=("$a") ;;
	esac
done

selected() {
	local g
	((${#globs[@]} == 0)) && return 0
	for g in "${globs[@]}"; do
		# shellcheck disable=SC2053
		[[ $1 == $g ]] && return 0
	done
	return 1
}

# A FAIL line is held until its diagnostics have come, then printed with them in one write:
# the two hosts' lines do not mix into each other's diagnostics.
held=
flush() {
	[[ -n $held ]] && printf '%s' "$held"
	held=
}
declare -A done_=()
report() { # STATUS NAME [WHY]
	local st=$1 name=$2 why=${3:-}
	[[ -n ${done_[$name]:-} ]] && return 0
	selected "$name" || return 0
	done_[$name]=$st
	flush
	if [[ $st == PASS ]]; then
		echo "PASS: $name"
	elif [[ $st == FAIL ]]; then
		held="FAIL: $name: $why"$'\n'
	else
		echo "$st: $name: $why"
	fi
}

skip_all() {
	local t
	for t in "${TESTS[@]}"; do
		report SKIP "$t" "$1"
	done
	exit 0
}

why=$(kb_have_qemu) || skip_all "$why"
if [[ ! -x $BIN ]]; then
	if ((shell)); then
		echo "run.sh: $BIN missing (make static)" >&2
		exit 1
	fi
	skip_all "$BIN missing (make static)"
fi
mkdir -p "$OUT"
INITRD=${KVMBOX_LINUX_INITRD:-$OUT/host-initrd}
# A given initrd (the split run's parts) comes with its kernel in the cache: this only sets KB_KDIR.
host_initrd() {
	if [[ -n ${KVMBOX_LINUX_INITRD:-} ]]; then
		kb_fetch_kernel
	else
		# shellcheck disable=SC2086 # lists of files
		kb_build_host_initrd "$INITRD" "$BIN" "$KB_HOST_TESTS" $KB_HOST_BENCH $KB_HOST_FILES
	fi
}
if ! host_initrd 2>"$OUT/build.err"; then
	cat "$OUT/build.err" >&2
	skip_all "cannot build the emulated host: $(tail -n1 "$OUT/build.err")"
fi

if [[ $PART == split ]] && ((!shell)); then
	# Each part with a selected test gets its emulated host (one thread of QEMU each), both
	# at once; their result lines stream here as they come.
	t_start=$EPOCHSECONDS
	pids=()
	rm -f "$OUT/a/host.log" "$OUT/b/host.log"
	for p in a b; do
		n=0
		while read -r t; do selected "$t" && n=$((n + 1)); done < <(sh "$KB_HOST_TESTS" --list $p)
		((n)) || continue
		KVMBOX_LINUX_PART=$p KVMBOX_LINUX_OUT=$OUT/$p KVMBOX_LINUX_INITRD=$INITRD \
			KVMBOX_HOST_CPUS=1 KVMBOX_HOST_TCG_THREAD=single "$KB_ROOT/tests/linux/run.sh" "${globs[@]}" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for p in a b; do
		[[ -f $OUT/$p/host.log ]] || continue
		echo "== emulated host $p ($OUT/$p/host.log)"
		cat "$OUT/$p/host.log"
	done >"$LOG"
	echo "linux: $((EPOCHSECONDS - t_start))s for both emulated hosts; log in $LOG" >&2
	exit 0
fi

if ((shell)); then
	echo "Emulated host (qemu TCG): quit with 'poweroff -f', or Ctrl-] x." >&2
	kb_boot_host "$INITRD" 86400 "kvmbox.host=shell" interactive
	exit $?
fi

only=$(IFS=,; echo "${globs[*]:-}")
# The real-time tests need huge pages: 160 of 2 MiB (a migration holds two 128 MiB guests),
# reserved at boot when one of them runs.
for t in "${TESTS[@]}"; do
	if [[ $t == linux-rt-* ]] && selected "$t"; then
		export KB_HOST_HUGEPAGES=${KB_HOST_HUGEPAGES:-160}
		break
	fi
done
t_start=$EPOCHSECONDS
host_state=booting
nokvm=
: >"$LOG"
bt=${KVMBOX_BOOT_TIMEOUT:-}
ys=
[[ ${KVMBOX_LINK_YARDSTICK:-0} == 1 ]] && ys="kvmbox.yardstick=1 "
# An emulated host that prints nothing for this long has wedged (host-init prints a heartbeat,
# "KVMBOX-I alive", every 10 s while the tests run; a test that hangs ends at its own timeout):
# it is stopped, and its tests fail with that reason.
SILENCE=${KVMBOX_HOST_SILENCE:-60}
# Before that, every KICK (15) seconds of silence the host gets a key press (QEMU's monitor,
# `sendkey shift`): QEMU's one-CPU TCG has been seen to leave its CPU halted with a timer
# interrupt pending in the local APIC (IRR) and interrupts enabled, for good; any new interrupt
# wakes it (DEVELOPERS.md, Known traps). The first kick logs where the CPU was.
KICK=${KVMBOX_HOST_KICK:-15}
((KICK > 0 && KICK < SILENCE)) || KICK=$SILENCE
rm -f "$OUT/qemu.pid"
part_arg=
[[ $PART == [ab] ]] && part_arg="kvmbox.part=$PART "
# x86: the emulated host's second serial port (a 16550, ttyS1) gets the heartbeat too, into
# OUT/ttyS1 (the arm64 board has one UART).
status=
[[ $KB_ARCH == x86_64 ]] && status=$OUT/ttyS1
rm -f "$OUT/ttyS1"
exec 3< <(KB_PIDFILE=$OUT/qemu.pid KB_STATUS_FILE=$status KB_MONITOR=$OUT/monitor.sock kb_boot_host "$INITRD" "$TMO" \
	"kvmbox.host=tests $part_arg$ys${only:+kvmbox.only=$only} ${bt:+kvmbox.boot_timeout=$bt} ${KVMBOX_HOST_LOGLEVEL:+kvmbox.loglevel=$KVMBOX_HOST_LOGLEVEL}" 2>&1)
qpid=$!
# stop_host: stop qemu: through kb_boot_host's `timeout` (the child of $qpid), which stops it.
stop_host() {
	local c
	c=$(cat /proc/"$qpid"/task/*/children 2>/dev/null)
	# shellcheck disable=SC2086 # a list of pids
	[[ -n $c ]] && kill -TERM $c 2>/dev/null
}
last_fail=
silent=0 lockup= quiet=0 kicks=0
while :; do
	IFS= read -r -t "$KICK" line <&3
	rc=$?
	if ((rc != 0)); then
		((rc > 128)) || break # end of the output
		quiet=$((quiet + KICK))
		if ((quiet < SILENCE)); then
			echo "linux: the emulated host printed nothing for ${quiet}s; a key press to wake it (kick $((kicks + 1)))" >>"$LOG"
			kb_kick "$OUT/monitor.sock" "linux: qemu monitor: " "$( ((kicks)) || echo dump)" >>"$LOG"
			kicks=$((kicks + 1))
			continue
		fi
		silent=1
		hb=$(tail -n1 "$OUT/ttyS1" 2>/dev/null)
		echo "linux: the emulated host printed nothing for ${SILENCE}s; qemu uses" \
			"$(kb_cpu_use "$(cat "$OUT/qemu.pid" 2>/dev/null)")% of a CPU; its second serial port's" \
			"last heartbeat: ${hb:-none} $((EPOCHSECONDS - $(stat -c %Y "$OUT/ttyS1" 2>/dev/null || echo 0)))s ago;" \
			"stopping it" >>"$LOG"
		kb_monitor_dump "$OUT/monitor.sock" "linux: qemu monitor: " >>"$LOG"
		stop_host
		break
	fi
	line=${line//$'\r'/}
	if ((quiet)); then
		echo "linux: the emulated host went on after ${quiet}s of silence and $kicks key presses" >>"$LOG"
		quiet=0 kicks=0
	fi
	printf '%s\t%s\n' "$EPOCHSECONDS" "$line" >>"$LOG"
	[[ ${KVMBOX_VERBOSE:-0} == 1 ]] && printf '%s\n' "$line" >&2
	# The emulated host's kernel is stuck: stop it now rather than at the tier's timeout.
	# check.sh retries the tests it did not run.
	if kb_lockup "$line"; then
		lockup=$KB_LOCKUP
		stop_host
		echo "linux: the emulated host's kernel locked up ($lockup); stopped it" >>"$LOG"
		break
	fi
	case $line in
	*KVMBOX-HOST\ kvm\ ready*) host_state=ready ;;
	*KVMBOX-HOST\ nokvm*) nokvm="no usable /dev/kvm in the emulated host: ${line#*nokvm }" ;;
	*"KVMBOX-HOST done"*) host_state=finished ;;
	*KVMBOX-T\ DATA\ *)
		# Guest clock vs the emulated host's clock (what kvmbox itself sees: that is the one
		# kvmbox is responsible for) and vs the real host's clock when the line arrived
		# (what the user sees; the emulated host's clock comes from qemu's RTC, itself set
		# from the real host). Both must be within DATE_TOLERANCE.
		read -r _ name g e <<<"${line#*KVMBOX-T }"
		r=$EPOCHSECONDS
		if [[ ! $g =~ ^[0-9]+$ || ! $e =~ ^[0-9]+$ ]]; then
			report FAIL "$name" "unreadable dates: guest '$g', emulated host '$e'"
			continue
		fi
		de=$((g - e)) dr=$((g - r))
		if ((${de#-} > DATE_TOLERANCE)); then
			report FAIL "$name" "guest date $g is ${de}s off the emulated host's $e"
		elif ((${dr#-} > DATE_TOLERANCE)); then
			report FAIL "$name" "guest date $g is ${dr}s off the real host's $r (the emulated host's clock is ${de}s from the guest: a harness clock problem, not kvmbox)"
		else
			report PASS "$name"
		fi
		echo "linux-date: guest $g, emulated host $e (${de}s), real host $r (${dr}s)" >>"$LOG"
		;;
	*KVMBOX-T\ *)
		read -r st name why <<<"${line#*KVMBOX-T }"
		report "$st" "$name" "$why"
		[[ $st == FAIL ]] && last_fail=$name
		;;
	*KVMBOX-L\ *)
		read -r name text <<<"${line#*KVMBOX-L }"
		if [[ $name == "$last_fail" ]]; then
			if [[ -n $held ]]; then held+="    | $text"$'\n'; else printf '    | %s\n' "$text"; fi
		fi
		;;
	esac
done
flush
exec 3<&-
wait "$qpid"
qrc=$?
elapsed=$((EPOCHSECONDS - t_start))
echo "linux: emulated host exited with status $qrc after ${elapsed}s (log: $LOG)" >>"$LOG"

[[ -n $nokvm ]] && skip_all "$nokvm"
((silent)) && host_state=silent
[[ -n $lockup ]] && host_state=lockup
case $host_state in
finished) why="no result line (see $LOG)" ;;
lockup) why="the emulated host's kernel locked up ($lockup) before this test ran (see $LOG)" ;;
silent) why="the emulated host printed nothing for ${SILENCE}s (wedged) before this test ran (see $LOG)" ;;
ready | booting)
	if ((qrc == 124 || qrc == 137)); then
		why="emulated host timed out after ${TMO}s before this test ran (see $LOG)"
	else
		why="emulated host stopped (qemu status $qrc; $(kb_host_death "$LOG")) before this test ran (see $LOG)"
	fi
	;;
esac
for t in "${TESTS[@]}"; do
	report FAIL "$t" "$why"
done
flush
echo "linux: ${elapsed}s in the emulated host; log in $LOG" >&2
exit 0
