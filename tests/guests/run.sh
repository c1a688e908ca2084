#!/bin/bash
# tests/guests/run.sh - the tiny-guest tier: boot each tiny guest (build/guests/*.elf) under
# kvmbox and check its serial output, exit status and process behaviour, the control-socket
# lifecycle (lifecycle.sh) and command-line errors. One line per test, printed as soon as it
# is known: PASS: name / FAIL: name: why / SKIP: name: why. Always exits 0 (tests/check.sh
# counts the lines).
#
#   tests/guests/run.sh [TEST|GLOB...]   all tests, or those whose names match
#   tests/guests/run.sh --list           the test names
#
# Where: on this machine's /dev/kvm when it can run the tiny guests (a probe boots serial.elf),
# otherwise inside the emulated host of the Linux tier (tests/linux/lib.sh; emulated.sh here),
# where this same script runs with busybox and bash-static (run.sh --inside). A SKIP only
# when neither works, with both reasons.
#
# Environment:
#   KVMBOX=path            the kvmbox binary (default build/kvmbox; dynamic builds and
#                          sanitizer builds work: their libraries go into the emulated host)
#   KVMBOX_PEER=path       another kvmbox build for the receiving side: every migration's
#                          destination and every restore (default KVMBOX). The musl tier
#                          migrates and restores from the musl build to the glibc one
#   GUESTS_WHERE=auto|here|emulated   force where the tier runs (default auto)
#   GUEST_TIMEOUT=seconds  per kvmbox run (default 60); a hang is a FAIL
#   GUEST_LOGS=dir         keep every run's stdout/stderr there (runs on this machine)
#   GUEST_DIAG_LINES=N     after a FAIL, show the last N lines of each output (default 3)
#   GUEST_REPEAT=N         run each selected test N times (to catch a flaky one)
#   KVMBOX_GUESTS_TIMEOUT  the whole emulated host, seconds (default 900)
#   KVMBOX_GUESTS_OUT      emulated host's initramfs and serial log (host.log; default
#                          build/guests/emu/<flavour>: plain, san-address-undefined...)
#   KVMBOX_HOST_LOGLEVEL=N the emulated host's console log level (default 1)
#   KVMBOX_VERBOSE=1       echo the emulated host's serial log on stderr
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
INSIDE=
if [ "${1:-}" = --inside ]; then
	# In the emulated host (tests/linux/host-init, kvmbox.host=guests): emulated.sh wrote
	# KVMBOX, GUEST_TIMEOUT and the selected tests (INSIDE_TESTS) into inside.env.
	# shellcheck disable=SC1091
	source "$ROOT/inside.env" || exit 1
	INSIDE=1
	GUESTS_WHERE=here
	shift
	set -- "${INSIDE_TESTS[@]}"
fi
KVMBOX=${KVMBOX:-$ROOT/build/kvmbox}
case $KVMBOX in /*) ;; *) KVMBOX=$PWD/$KVMBOX ;; esac
KVMBOX_PEER=${KVMBOX_PEER:-$KVMBOX}
case $KVMBOX_PEER in /*) ;; *) KVMBOX_PEER=$PWD/$KVMBOX_PEER ;; esac
GUESTS=${GUESTS:-$ROOT/build/guests}
TOOLS=$GUESTS/tools
TIMEOUT=${GUEST_TIMEOUT:-60}
DIAG_LINES=${GUEST_DIAG_LINES:-3}

# ---- the tests ----
# One row per test: name, the guest it boots (build/guests/GUEST.elf; - for none), then the
# function and its arguments; the function gets the test name first. The guest is in G.
TABLE='
serial                   serial          t_serial
rtc                      rtc             t_rtc
pit                      pit             t_ok
lapic_timer              lapic_timer     t_ok
smp_1                    smp             t_smp 1
smp_2                    smp             t_smp 2
smp_4                    smp             t_smp 4
poweroff                 poweroff        t_poweroff
reset_i8042_noreboot     reset           reset_once i8042
reset_acpi_noreboot      reset           reset_once acpi
reset_reboot             reset           reset_twice i8042
reset_reboot_acpi        reset           reset_twice acpi
triple_fault             triple_fault    t_triple_fault ud2
triple_fault_int3        triple_fault    t_triple_fault int3
hostile_io               hostile_io      t_ok
hostile_smp              hostile_smp     t_hostile_smp 4
virtio_hostile           virtio_hostile  t_virtio_hostile
virtio_hostile_ro        virtio_hostile  t_virtio_hostile ro
sigterm                  idle            t_signal TERM 143
sigint                   idle            t_signal INT 130
sighup                   idle            t_signal HUP 129
sig_ignored              idle            t_sig_ignored
threads                  idle            t_threads
rt_affinity              idle            t_rt_affinity
sigstop                  idle            t_sigstop
fds_reboot               reboots         t_fds_reboot
soak_reboots             reboots         t_fds_reboot 50
tty_sigterm              idle            t_tty sigterm
tty_ctrl_a_x             idle            t_tty ctrl-a-x
tty_hangup               idle            t_tty hangup
snap_restore             idle            t_snap_restore
snap_restore_copy        idle            t_snap_restore --copy
snap_corrupt             idle            t_snap_corrupt
snap_local               idle            t_snap_local
snap_key                 idle            t_snap_key
hibernate                idle            t_hibernate
pause_resume             idle            t_pause_resume
migrate_ok               idle            t_migrate_ok unix
migrate_tcp              idle            t_migrate_ok tcp
migrate_dirty            dirtier         t_migrate_dirty
migrate_fail_closed_port idle            t_migrate_fail_closed_port
migrate_key_refused      idle            t_migrate_key_refused
migrate_fail_dest_killed dirtier         t_migrate_fail_dest_killed
migrate_fail_dest_closes idle            t_migrate_fail_dest_closes
migrate_refused          idle            t_migrate_refused
migrate_console          idle            t_migrate_console
migrate_sigterm          dirtier         t_migrate_sigterm
api_protocol             idle            t_api protocol
api_arguments            idle            t_api arguments
soak_snapshots           idle            t_soak_snapshots
soak_migrations          idle            t_soak_migrations
shutdown                 idle            t_shutdown
shutdown_timeout         idle            t_shutdown_timeout
up                       idle            t_up
up_clean                 idle            t_up_clean
up_snapshot              idle            t_up_snapshot
up_console               idle            t_up_console
notify_run               idle            t_notify_run
cli_missing_kernel       -               t_cli_kernel missing
cli_kernel_is_dir        -               t_cli_kernel dir
cli_not_a_kernel         -               t_cli_kernel text
cli_initrd_too_big       poweroff        t_cli_initrd_too_big
cli_memory_too_small     poweroff        t_cli 1 --memory 1M
cli_memory_too_big       poweroff        t_cli 1 --memory 100T
cli_memory_malformed     poweroff        t_cli 1,2 --memory 12Q
cli_cpus_zero            poweroff        t_cli 1 --cpus 0
cli_cpus_too_many        poweroff        t_cli 1 --cpus 100000
cli_unknown_option       poweroff        t_cli 2 --no-such-option
cli_no_kernel            -               t_cli_no_kernel
kvm_not_a_device         poweroff        t_kvm_ns
kvm_missing              poweroff        t_kvm_ns
'

# The helpers in build/guests/tools (tests/guests/tools/*.c) and the other commands the tests
# run (busybox has them all, with the options used: selftest_tools checks).
HELPERS="deadline sigdisp ptyrun apiclient freeport passcheck bytes notifysock"
COMMANDS="awk cat chmod cmp cp cut dd diff grep head ln ls mkdir mktemp mount od readlink rm sed seq sh sleep
	sort stat tail tr truncate uniq unshare wc"

# ---- results ----

RESULT_PREFIX=${INSIDE:+KVMBOX-G }
NRES=0
CUR=

result() { # STATUS NAME [WHY]
	NRES=$((NRES + 1))
	[ -n "$CUR" ] && : >"$LOGS/$CUR.result"
	if [ "$1" = PASS ]; then
		echo "${RESULT_PREFIX}PASS: $2"
	else
		echo "${RESULT_PREFIX}$1: $2: $3"
	fi
}

# sanitizer_report TEST: the first sanitizer line (ASan, UBSan, LSan...) on the stderr of any
# kvmbox run of TEST ($LOGS/TEST.err, $LOGS/TEST.*.err; kvmbox ctl output is kept there too).
sanitizer_report() {
	local f
	for f in "$LOGS/$1.err" "$LOGS/$1".*.err; do
		[ -f "$f" ] || continue
		grep -a -m1 -E 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$f" && return
	done | head -n1 | cut -c1-200
}

# diag TEST: the last lines of the guest output and stderr of TEST's kvmbox runs, indented
# under its FAIL line.
diag() {
	local f
	for f in "$LOGS/$1.out" "$LOGS/$1".*.out "$LOGS/$1.err" "$LOGS/$1".*.err; do
		case $f in *.ctl.err) continue ;; esac
		[ -s "$f" ] || continue
		tr -d '\r' <"$f" | tail -n "$DIAG_LINES" | cut -c1-200 | sed "s|^|${f##*/}: |"
	done | tail -n $((DIAG_LINES * 5)) | while IFS= read -r l; do
		if [ -n "$INSIDE" ]; then
			echo "KVMBOX-L $1 $l"
		else
			echo "    | $l"
		fi
	done
}

pass() {
	local s
	s=$(sanitizer_report "$1")
	if [ -n "$s" ]; then
		result FAIL "$1" "sanitizer report on kvmbox's stderr: $s"
		diag "$1"
	else
		result PASS "$1"
	fi
}
fail() {
	local s
	s=$(sanitizer_report "$1")
	result FAIL "$1" "$2${s:+ (sanitizer report: $s)}"
	diag "$1"
}
skip() { result SKIP "$1" "$2"; }

# ---- running things ----

# run_vm TEST [kvmbox run options...]: boot build/guests/$G.elf; sets RC, OUT (stdout, CRs
# removed) and ERR (stderr path).
run_vm() {
	local t=$1
	shift
	OUT=$LOGS/$t.out
	ERR=$LOGS/$t.err
	"$TOOLS/deadline" -k 5 "$TIMEOUT" "$KVMBOX" run --kernel "$GUESTS/$G.elf" --memory 64M \
		--console serial "$@" </dev/null >"$OUT.raw" 2>"$ERR"
	RC=$?
	tr -d '\r' <"$OUT.raw" >"$OUT"
	rm -f "$OUT.raw"
}

# vm_trouble TEST WANT: print the FAIL line and succeed if the run went wrong: timeout, the
# guest's own ERROR line, or a status other than WANT.
vm_trouble() {
	local t=$1 want=$2 e
	e=$(grep -m1 -a '^ERROR:' "$OUT")
	if [ "$RC" = 124 ]; then
		fail "$t" "timed out after ${TIMEOUT}s${e:+ ($e)}"
		return 0
	fi
	if [ -n "$e" ]; then
		fail "$t" "guest reported: ${e#ERROR: } (status $RC)"
		return 0
	fi
	if [ "$RC" != "$want" ]; then
		fail "$t" "status $RC, expected $want; stderr: $(tail -n1 "$ERR" | cut -c1-200)"
		return 0
	fi
	return 1
}

have_line() { grep -qax -- "$1" "$OUT"; }

# complete_lines FILE: FILE without CRs and without a last line that has no newline yet
# (a guest may be in the middle of printing it).
complete_lines() {
	local s
	s=$(tr -d '\r' <"$1"; echo .)
	s=${s%.}
	case $s in
	*$'\n') printf '%s' "$s" ;;
	*$'\n'*) printf '%s\n' "${s%$'\n'*}" ;;
	esac
}

# ---- guest tests ----

t_serial() {
	local t=$1 i
	run_vm "$t"
	vm_trouble "$t" 0 && return
	local -a want=(
		'serial: hello from the serial guest'
		'serial: lsr idle 60'
		'serial: fifo enabled'
		'serial: scr ok'
		'serial: dlab ok'
		'serial: burst 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
		'serial: burst2 the quick brown fox jumps over the lazy dog 0123456789 !"#$%&'"'"'()*+,-./'
		'serial: handshake line of more than sixteen bytes'
		'serial: loopback ok'
		'serial: ier ok'
		'serial: done'
	)
	local -a got
	grep -a '^serial:' "$OUT" >"$OUT.serial"
	mapfile -t got <"$OUT.serial"
	for ((i = 0; i < ${#want[@]} || i < ${#got[@]}; i++)); do
		if [ "${want[i]-}" != "${got[i]-}" ]; then
			fail "$t" "output differs from the expected text at line $((i + 1)): got '${got[i]-(nothing)}', expected '${want[i]-(nothing)}'"
			return
		fi
	done
	pass "$t"
}

t_rtc() {
	local t=$1 host guest diff
	run_vm "$t"
	host=$EPOCHSECONDS
	vm_trouble "$t" 0 && return
	guest=$(sed -n 's/^rtc: unix \([0-9][0-9]*\)$/\1/p' "$OUT" | head -n1)
	[ -z "$guest" ] && { fail "$t" "no 'rtc: unix N' line"; return; }
	diff=$((host - guest))
	[ "$diff" -lt 0 ] && diff=$((-diff))
	[ "$diff" -gt 60 ] && { fail "$t" "guest time $guest is ${diff}s away from host time $host"; return; }
	grep -qa '^rtc: ticked to ' "$OUT" || { fail "$t" "RTC did not tick"; return; }
	have_line "rtc: nvram ok" || { fail "$t" "no 'rtc: nvram ok'"; return; }
	have_line "rtc: interrupts ok" || { fail "$t" "no 'rtc: interrupts ok'"; return; }
	pass "$t"
}

# t_ok TEST: the guest checks everything itself and prints "GUEST: OK" (pit, lapic_timer, hostile_io).
t_ok() {
	local t=$1
	run_vm "$t"
	vm_trouble "$t" 0 && return
	have_line "$G: OK" || { fail "$t" "no '$G: OK' line"; return; }
	pass "$t"
}

t_smp() {
	local t=$1 n=$2 got want
	run_vm "$t" --cpus "$n" --append "cpus=$n"
	vm_trouble "$t" 0 && return
	got=$(sed -n 's/^cpu \([0-9][0-9]*\) up$/\1/p' "$OUT" | sort -n | tr '\n' ' ')
	want=$(seq 0 $((n - 1)) | tr '\n' ' ')
	[ "$got" != "$want" ] && { fail "$t" "CPUs that came up: '${got% }', expected '${want% }'"; return; }
	have_line "smp: all $n cpus up" || { fail "$t" "no 'smp: all $n cpus up' line"; return; }
	pass "$t"
}

# t_hostile_smp TEST N: N vCPUs hammer PCI config, MSI-X and unassigned MMIO/ports at once
# (hostile_smp.c); kvmbox stays up, the guest sees all-ones where nothing answers and ends with
# a poweroff (status 0).
t_hostile_smp() {
	local t=$1 n=$2 got
	run_vm "$t" --cpus "$n" --rng --append "cpus=$n iters=2000"
	vm_trouble "$t" 0 && return
	got=$(grep -ac '^hostile_smp: cpu [0-9]* hammered 2000 accesses$' "$OUT")
	[ "$got" = "$n" ] || { fail "$t" "$got of $n CPUs reported their accesses"; return; }
	have_line "hostile_smp: all $n cpus read all-ones from unassigned MMIO and ports" ||
		{ fail "$t" "no all-ones line for $n CPUs"; return; }
	have_line "hostile_smp: OK" || { fail "$t" "no 'hostile_smp: OK' line"; return; }
	pass "$t"
}

t_poweroff() {
	local t=$1
	run_vm "$t"
	vm_trouble "$t" 0 && return
	have_line "poweroff: going down" || { fail "$t" "guest output missing"; return; }
	pass "$t"
}

# reset_once TEST MODE: reset once with --no-reboot; kvmbox must exit 0 after one boot.
reset_once() {
	local t=$1 boots
	run_vm "$t" --no-reboot --append "mode=$2"
	vm_trouble "$t" 0 && return
	boots=$(grep -ca '^reset: boot' "$OUT")
	[ "$boots" != 1 ] && { fail "$t" "$boots boot lines, expected 1"; return; }
	pass "$t"
}

# reset_twice TEST VIA: reset (through i8042 or acpi) on the first boot, counted in CMOS;
# power off on the second.
reset_twice() {
	local t=$1 via=$2 got
	if [ "$via" = acpi ]; then
		run_vm "$t" --append "mode=count via=acpi"
	else
		run_vm "$t" --append "mode=count"
	fi
	vm_trouble "$t" 0 && return
	got=$(grep -a '^reset: boot' "$OUT" | tr '\n' ',')
	[ "$got" != "reset: boot 1,reset: boot 2," ] &&
		{ fail "$t" "boot lines '${got%,}', expected 'reset: boot 1,reset: boot 2'"; return; }
	pass "$t"
}

# t_triple_fault TEST HOW: ud2 or int3 with an empty IDT; kvmbox must exit 3 with a register dump.
t_triple_fault() {
	local t=$1
	run_vm "$t" --append "how=$2"
	[ "$RC" = 124 ] && { fail "$t" "timed out after ${TIMEOUT}s"; return; }
	[ "$RC" != 3 ] && { fail "$t" "status $RC, expected 3; stderr: $(tail -n1 "$ERR" | cut -c1-200)"; return; }
	have_line "triple_fault: faulting now" || { fail "$t" "guest did not run"; return; }
	grep -qa 'RIP' "$ERR" || { fail "$t" "no register dump (RIP) on stderr"; return; }
	pass "$t"
}

# ---- virtio-blk against a hostile driver ----

# The case lines virtio_hostile.c must print, "NAME:EXPECT" ("case NAME: EXPECT ok").
VH_CASES="loop:needs_reset self_loop:needs_reset loop_full:needs_reset head_oob:needs_reset
	next_oob:needs_reset addr_hole:needs_reset addr_top:needs_reset addr_wrap:needs_reset
	addr_ram_end:needs_reset len_huge:needs_reset avail_jump:needs_reset write_then_read:needs_reset
	indirect_valid:completed indirect_not_negotiated:needs_reset indirect_next:needs_reset
	indirect_nested:needs_reset indirect_len:needs_reset indirect_zero_len:needs_reset
	indirect_loop:needs_reset indirect_table_hole:needs_reset beyond_capacity:ioerr
	straddle_capacity:ioerr sector_overflow:ioerr partial_sector:ioerr unknown_type:unsupp
	short_header:ioerr seg_max_exceeded:ioerr no_status:used_len0 rings_hole:needs_reset
	rings_wrap:needs_reset rings_ram_end:needs_reset ring_misaligned:needs_reset
	qsize_not_pow2:ignored features_unoffered:refused features_no_version1:refused
	reset_inflight:quiet devcfg_readonly:ignored queue_frozen:ignored"
VH_SECTORS=2048     # a 1 MiB image
VH_PATTERN_SECTOR=8 # the only sector the guest may change, to (i * 13 + 0x5a) & 0xff

# t_virtio_hostile TEST [ro]: the hostile virtio-blk driver on a 1 MiB image of
# random bytes whose sector 0 starts with KVMBOX-DISK. kvmbox must survive every
# case (the guest powers off: status 0), each case must report its expected
# reaction, and the image must differ from the original in at most sector 8,
# which must hold the pattern (read-only: not at all).
t_virtio_hostile() {
	local t=$1 ro=${2:-} img orig c e n got want miss= first bad sz
	img=$LOGS/$t.img
	orig=$LOGS/$t.orig
	if ! head -c $((VH_SECTORS * 512)) /dev/urandom >"$orig" ||
		! printf 'KVMBOX-DISK sector 0\n' | dd of="$orig" conv=notrunc 2>/dev/null ||
		! cp "$orig" "$img" || [ "$(head -c 11 "$img")" != KVMBOX-DISK ]; then
		fail "$t" "cannot prepare the disk image in $LOGS"
		return
	fi
	run_vm "$t" --disk "$img${ro:+,ro}" --append "cap=$VH_SECTORS${ro:+ ro}"
	vm_trouble "$t" 0 && return
	have_line "virtio_hostile: done" || { fail "$t" "no 'virtio_hostile: done' line"; return; }
	for c in $VH_CASES ${ro:+ro_write:ioerr}; do
		have_line "case ${c%%:*}: ${c#*:} ok" || miss="$miss ${c%%:*}"
	done
	if [ -n "$miss" ]; then
		first=${miss# }
		first=${first%% *}
		bad=$(grep -a "^case $first: " "$OUT" | head -n1)
		fail "$t" "cases not ok:$miss${bad:+ (first: $bad)}"
		return
	fi
	# Every case line must be one we know (a guest change needs a runner change).
	n=$(grep -ac '^case ' "$OUT")
	want=$(echo $VH_CASES ${ro:+ro_write:ioerr} | wc -w)
	[ "$n" != "$want" ] && { fail "$t" "$n case lines, expected $want"; return; }
	# Errors on stderr (as stderr_errors), except the documented fallback warning.
	e=$(grep -avi 'io_uring unavailable' "$ERR" | grep -aiE "$ERROR_RE" | head -n1 | cut -c1-200)
	[ -n "$e" ] && { fail "$t" "error on stderr: $e"; return; }
	# The image: same size, untouched outside sector 8, sector 8 = pattern.
	sz=$(stat -c %s "$img")
	[ "$sz" != $((VH_SECTORS * 512)) ] && { fail "$t" "image is $sz bytes, was $((VH_SECTORS * 512))"; return; }
	if [ -n "$ro" ]; then
		cmp -s "$orig" "$img" || { fail "$t" "read-only image changed: $(cmp "$orig" "$img" 2>&1)"; return; }
		pass "$t"
		return
	fi
	c=$(cmp -l "$orig" "$img" | awk -v p=$VH_PATTERN_SECTOR '{ s = int(($1 - 1) / 512) }
		s != p && !(s in seen) { seen[s] = 1; n++; if (n <= 5) l = l " " s } END { if (n) print n ":" l }')
	[ -n "$c" ] &&
		{ fail "$t" "image changed outside sector $VH_PATTERN_SECTOR: ${c%%:*} sectors (${c#*: })"; return; }
	got=$(od -An -v -tu1 -j $((VH_PATTERN_SECTOR * 512)) -N 512 "$img" | tr -s ' \n' ' ')
	want=$(awk 'BEGIN { for (i = 0; i < 512; i++) printf " %d", (i * 13 + 90) % 256; printf " " }')
	[ "$got" != "$want" ] &&
		{ fail "$t" "sector $VH_PATTERN_SECTOR does not hold the guest's pattern"; return; }
	pass "$t"
}

# ---- process tests: kvmbox in the background, looked at through /proc ----

# Background runs start with the default dispositions: a non-interactive shell starts
# `cmd &` with SIGINT and SIGQUIT ignored, which is not how kvmbox is normally run
# (sig_ignored tests that case on purpose).
DEFSIG="$TOOLS/sigdisp -d HUP,INT,QUIT,TERM"

# bg_start TEST [kvmbox run options...]: start kvmbox on build/guests/$G.elf in the
# background; sets PID, OUT (raw stdout) and ERR. BG_WRAP may replace the DEFSIG prefix.
bg_start() {
	local t=$1
	shift
	OUT=$LOGS/$t.out
	ERR=$LOGS/$t.err
	: >"$OUT"
	: >"$ERR"
	${BG_WRAP:-$DEFSIG} "$KVMBOX" run --kernel "$GUESTS/$G.elf" --memory 64M --console serial "$@" \
		<"${BG_STDIN:-/dev/null}" >"$OUT" 2>"$ERR" &
	PID=$!
	BG_PIDS="$BG_PIDS $PID"
}

# proc_state PID_OR_TASK_DIR: the state letter from /proc/.../stat (comm may hold spaces).
proc_state() {
	local f=$1
	case $f in /*) ;; *) f=/proc/$f ;; esac
	sed -n 's/^.*) \([A-Za-z]\) .*$/\1/p' "$f/stat" 2>/dev/null
}

# alive PID: running (or stopped), not exited.
alive() {
	kill -0 "$1" 2>/dev/null && [ "$(proc_state "$1")" != Z ]
}

# bg_kill: make sure the background kvmbox is gone (after a failure).
bg_kill() {
	kill -KILL "$PID" 2>/dev/null
	kill -CONT "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
}

# wait_out TEXT SECONDS: until OUT has a complete line starting with TEXT (a regex). Otherwise
# sets WHY (kvmbox exited / timed out) and fails. Not in $(...): it waits for kvmbox.
wait_out() {
	local text=$1 n=$(($2 * 20))
	while [ "$n" -gt 0 ]; do
		complete_lines "$OUT" | grep -qa -- "^$text" && return 0
		if ! alive "$PID"; then
			complete_lines "$OUT" | grep -qa -- "^$text" && return 0
			wait "$PID"
			WHY="kvmbox exited (status $?) before the guest printed '$text';"
			WHY="$WHY stderr: $(tail -n1 "$ERR" | cut -c1-150)"
			return 1
		fi
		sleep 0.05
		n=$((n - 1))
	done
	WHY="no '$text' from the guest within $2s"
	return 1
}

# bg_wait SECONDS: wait for kvmbox to exit; sets RC, or kills it and fails.
bg_wait() {
	local n=$(($1 * 20))
	while alive "$PID" && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	if alive "$PID"; then
		bg_kill
		return 1
	fi
	wait "$PID"
	RC=$?
	return 0
}

# stays_same FILE SECONDS: FILE does not grow for SECONDS (polled: fails as soon as it does).
# Sets SIZE (its size at the start) and WHY.
stays_same() {
	local n=$(($2 * 10)) s
	SIZE=$(stat -c %s "$1")
	while [ "$n" -gt 0 ]; do
		sleep 0.1
		s=$(stat -c %s "$1")
		[ "$s" != "$SIZE" ] && { WHY="output grew from $SIZE to $s bytes"; return 1; }
		n=$((n - 1))
	done
	return 0
}

# grows FILE SECONDS: FILE grows within SECONDS (the guest is running).
grows() {
	local s n=$(($2 * 20))
	s=$(stat -c %s "$1")
	while [ "$n" -gt 0 ]; do
		[ "$(stat -c %s "$1")" != "$s" ] && return 0
		sleep 0.05
		n=$((n - 1))
	done
	return 1
}

# The runner's definition of an error line on stderr.
ERROR_RE="error|fail|cannot|can't|unable|warn|abort|fault|leak"

# stderr_errors: the error lines on ERR.
stderr_errors() {
	grep -aiE "$ERROR_RE" "$ERR" | head -n3 | tr '\n' '|' | cut -c1-200
}

# check_threads PID CPUS: vcpu0..vcpuCPUS-1 each exactly once, no other vcpuN, no
# zombie or dead task, and no stray thread: any thread besides the main one and
# the vCPUs must carry its own name. Not an exact count: virtio workers will be
# named after their device, and recent Linux (seen on 6.18) runs KVM's per-VM NX
# huge page recovery worker as a thread of the VM process ("kvm-nx-lpage-recovery").
# Prints why and fails otherwise.
check_threads() {
	local pid=$1 cpus=$2 d comm st main tasks=0 vcpus= others= i
	main=$(cat "/proc/$pid/comm" 2>/dev/null) || { echo "process $pid gone"; return 1; }
	for d in /proc/"$pid"/task/*; do
		comm=$(cat "$d/comm" 2>/dev/null) || continue
		st=$(proc_state "$d")
		tasks=$((tasks + 1))
		case $st in Z | X | x)
			echo "thread ${d##*/} ($comm) is in state $st"
			return 1 ;;
		esac
		case $comm in
		vcpu[0-9]*) vcpus="$vcpus $comm" ;;
		*) [ "${d##*/}" != "$pid" ] && others="$others $comm" ;;
		esac
	done
	for i in $(seq 0 $((cpus - 1))); do
		case "$vcpus " in
		*" vcpu$i "*" vcpu$i "*) echo "two threads named vcpu$i"; return 1 ;;
		*" vcpu$i "*) ;;
		*) echo "no thread named vcpu$i (threads:$vcpus$others)"; return 1 ;;
		esac
	done
	if [ "$(echo $vcpus | wc -w)" != "$cpus" ]; then
		echo "vCPU threads:$vcpus, expected vcpu0..vcpu$((cpus - 1))"
		return 1
	fi
	for comm in $others; do
		if [ "$comm" = "$main" ]; then
			echo "$tasks threads: an unnamed one besides main and $cpus vCPUs" \
				"(threads:$vcpus$others)"
			return 1
		fi
	done
	return 0
}

# wait_threads PID CPUS SECS: check_threads until it passes or SECS have gone by (a thread
# names itself once it runs); prints check_threads' last reason.
wait_threads() {
	local end=$((SECONDS + $3)) why
	while :; do
		why=$(check_threads "$1" "$2") && return 0
		[ $SECONDS -lt $end ] && alive "$1" || { echo "$why"; return 1; }
		sleep 0.1
	done
}

# fd_list PID: "fd -> target" lines, sorted.
fd_list() {
	local f
	for f in /proc/"$1"/fd/*; do
		echo "${f##*/} -> $(readlink "$f" 2>/dev/null)"
	done | sort -n
}

# fd_kinds: fd_list lines on stdin as "count target", the fd numbers and inode
# numbers left out (what differs between two samples, not where).
fd_kinds() {
	sed -e 's/^[0-9]* -> //' -e 's/\[[0-9]*\]$/[]/' | sort | uniq -c | sed 's/^ *//'
}

# last_tick FILE: the number of the last complete "idle: tick N" line (empty if none).
last_tick() {
	complete_lines "$1" | sed -n 's/^idle: tick \([0-9][0-9]*\)$/\1/p' | tail -n1
}

# t_signal TEST SIG STATUS: the idle guest on 2 vCPUs; SIG must stop kvmbox
# cleanly with STATUS within 5 s and nothing wrong on stderr.
t_signal() {
	local t=$1 sig=$2 want=$3 e
	bg_start "$t" --cpus 2
	wait_out "idle: ready" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	kill -"$sig" "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIG$sig"; return; }
	[ "$RC" != "$want" ] && { fail "$t" "status $RC after SIG$sig, expected $want"; return; }
	e=$(stderr_errors)
	[ -n "$e" ] && { fail "$t" "error on stderr: $e"; return; }
	pass "$t"
}

# sig_pending PID SIG: SIG is pending for the process (ShdPnd of /proc/PID/status).
sig_pending() {
	local m n
	m=$(sed -n 's/^ShdPnd:[[:space:]]*\([0-9a-f]*\)$/\1/p' "/proc/$1/status" 2>/dev/null)
	n=$(kill -l "$2")
	[ -n "$m" ] && [ $(((0x$m >> (n - 1)) & 1)) = 1 ]
}

# t_sig_ignored: started with SIGHUP and SIGINT ignored, as `nohup kvmbox ...`
# (POSIX nohup) or `kvmbox ... &` from a script (the shell) start it, kvmbox must
# keep ignoring them; SIGTERM still stops it. After each signal: once it is no
# longer pending (discarded as ignored, or read by kvmbox), the guest must print two
# more ticks (kvmbox stops its vCPUs right after taking a signal it obeys).
t_sig_ignored() {
	local t=$1 sig n last
	BG_WRAP="$TOOLS/sigdisp -d QUIT,TERM -i HUP,INT" bg_start "$t" --cpus 2
	wait_out "idle: tick 1$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	for sig in HUP INT; do
		kill -"$sig" "$PID"
		for ((n = 0; n < 100; n++)); do
			sig_pending "$PID" "$sig" || break
			sleep 0.05
		done
		if ! alive "$PID"; then
			wait "$PID"
			fail "$t" "SIG$sig was ignored when kvmbox started, but it stopped the VM (status $?)"
			return
		fi
		[ "$n" = 100 ] && { bg_kill; fail "$t" "SIG$sig still pending 5s after it was sent"; return; }
		last=$(last_tick "$OUT")
		if ! wait_out "idle: tick $((last + 2))$" 10; then
			bg_kill
			fail "$t" "after SIG$sig (ignored when kvmbox started): $WHY"
			return
		fi
	done
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ "$RC" != 143 ] && { fail "$t" "status $RC after SIGTERM, expected 143"; return; }
	pass "$t"
}

# t_threads: with --cpus 2 (both vCPUs started and halted), the threads are the
# main one, vcpu0 and vcpu1.
t_threads() {
	local t=$1 cpus=2 why
	bg_start "$t" --cpus $cpus
	wait_out "idle: ready" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	why=$(check_threads "$PID" "$cpus") || { bg_kill; fail "$t" "$why"; return; }
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ "$RC" != 143 ] && { fail "$t" "status $RC after SIGTERM, expected 143"; return; }
	pass "$t"
}

# t_rt_affinity: --vcpu-affinity 0=1,1=0 --io-affinity 0 --rt-priority 10 with two vCPUs and a
# virtio-rng worker, read back from /proc: each vCPU thread on its own CPU (crosswise, so that a
# mix-up of vCPUs shows), every other thread on CPU 0; the vCPUs SCHED_FIFO 10, the others
# SCHED_OTHER. Needs two CPUs here (the emulated host has them; the Linux tier's has one).
t_rt_affinity() {
	local t=$1 d n c f why= th=
	[ "$(nproc)" -ge 2 ] || { skip "$t" "needs 2 CPUs, this host has $(nproc)"; return; }
	bg_start "$t" --cpus 2 --vcpu-affinity 0=1,1=0 --io-affinity 0 --rt-priority 10 --rng
	wait_out "idle: tick 2" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	for d in /proc/"$PID"/task/*; do
		n=$(cat "$d/comm" 2>/dev/null) || continue
		c=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$d/status" 2>/dev/null)
		# After "(comm)", state is field 3: rt_priority (40) and policy (41) are 38th and 39th.
		f=$(sed 's/.*) //' "$d/stat" 2>/dev/null | awk '{ print $39 ":" $38 }')
		th="$th $n:$f:$c"
		case $n in
		vcpu0) [ "$f:$c" = 1:10:1 ] || why="$why vcpu0 policy:prio:cpus $f:$c (want 1:10:1)" ;;
		vcpu1) [ "$f:$c" = 1:10:0 ] || why="$why vcpu1 policy:prio:cpus $f:$c (want 1:10:0)" ;;
		*) [ "$f:$c" = 0:0:0 ] || why="$why $n policy:prio:cpus $f:$c (want 0:0:0)" ;;
		esac
	done
	case "$th " in *" vcpu0:"*" vcpu1:"* | *" vcpu1:"*" vcpu0:"*) ;; *) why="$why (no vcpu0 and vcpu1)" ;; esac
	case "$th" in *" virtio-"*) ;; *) why="$why (no virtio worker)" ;; esac
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ -z "$why" ] || { fail "$t" "${why# };${th}"; return; }
	pass "$t"
}

# t_sigstop: SIGSTOP stops every thread and the guest's output (its clock ticks
# 5 times a second) for 2 s; SIGCONT resumes both; then SIGTERM.
t_sigstop() {
	local t=$1 why n d st bad
	bg_start "$t" --cpus 2
	wait_out "idle: tick 2" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	kill -STOP "$PID"
	for n in $(seq 40); do
		bad=
		for d in /proc/"$PID"/task/*; do
			st=$(proc_state "$d")
			[ -n "$st" ] && [ "$st" != T ] && bad="$bad $(cat "$d/comm" 2>/dev/null)=$st"
		done
		[ -z "$bad" ] && break
		sleep 0.05
	done
	alive "$PID" || { bg_kill; fail "$t" "kvmbox exited on SIGSTOP"; return; }
	[ -n "$bad" ] && { bg_kill; fail "$t" "threads not stopped 2s after SIGSTOP:$bad"; return; }
	# Every thread is stopped: nothing can write any more.
	stays_same "$OUT" 2 || { bg_kill; fail "$t" "$WHY while stopped"; return; }
	kill -CONT "$PID"
	grows "$OUT" 3 || { bg_kill; fail "$t" "no guest output within 3s of SIGCONT"; return; }
	why=$(check_threads "$PID" 2) || { bg_kill; fail "$t" "after SIGCONT: $why"; return; }
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ "$RC" != 143 ] && { fail "$t" "status $RC after SIGTERM, expected 143"; return; }
	pass "$t"
}

# t_fds_reboot TEST [BOOTS]: the reboots guest boots BOOTS times (default 4; BOOTS-1 resets) on
# 2 vCPUs; kvmbox's fds and threads during the last boot must match the first, and its RSS must
# not have grown by more than SOAK_RSS_KIB (default 1024). On the first and the last boot the
# guest holds (up to 60 s) until the runner sends it a byte on the console: the runner looks at
# the process first.
t_fds_reboot() {
	local t=$1 boots=${2:-4} why fd1 fd2 th1 th2 rss1 rss2 d in
	mkfifo "$LOGS/$t.in" || { fail "$t" "mkfifo failed"; return; }
	exec {in}<>"$LOGS/$t.in"
	BG_STDIN=$LOGS/$t.in bg_start "$t" --cpus 2 --append "boots=$boots hold=60000"
	wait_out "reboots: boot 1" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	why=$(wait_threads "$PID" 2 10) || { bg_kill; fail "$t" "during boot 1: $why"; return; }
	fd_list "$PID" >"$LOGS/$t.fds1"
	th1=$(ls /proc/"$PID"/task | wc -l)
	rss1=$(lc_rss_own "$PID")
	printf 'n' >&"$in"
	wait_out "reboots: boot $boots$" $((20 + boots)) || { bg_kill; fail "$t" "$WHY"; return; }
	# vcpu1 names its thread itself once started, possibly after vcpu0 printed: wait for it.
	why=$(wait_threads "$PID" 2 10) || { bg_kill; fail "$t" "during boot $boots: $why"; return; }
	fd_list "$PID" >"$LOGS/$t.fds2"
	th2=$(ls /proc/"$PID"/task | wc -l)
	rss2=$(lc_rss_own "$PID")
	printf 'n' >&"$in"
	bg_wait 20 || { fail "$t" "did not power off"; return; }
	tr -d '\r' <"$OUT" >"$OUT.txt"
	OUT=$OUT.txt
	vm_trouble "$t" 0 && return
	have_line "reboots: done" || { fail "$t" "no 'reboots: done' line"; return; }
	fd1=$(wc -l <"$LOGS/$t.fds1")
	fd2=$(wc -l <"$LOGS/$t.fds2")
	if [ "$fd1" != "$fd2" ]; then
		fd_kinds <"$LOGS/$t.fds1" >"$LOGS/$t.kinds1"
		fd_kinds <"$LOGS/$t.fds2" >"$LOGS/$t.kinds2"
		d=$(diff -u "$LOGS/$t.kinds1" "$LOGS/$t.kinds2" | sed -n '3,$p' | grep '^[-+]' |
			head -n6 | tr '\n' ',')
		fail "$t" "$fd1 fds during boot 1, $fd2 during boot $boots (count kind: ${d%,})"
		return
	fi
	[ "$th1" != "$th2" ] && { fail "$t" "$th1 threads during boot 1, $th2 during boot $boots"; return; }
	[ $((rss2 - rss1)) -gt "$(soak_rss_limit)" ] &&
		{ fail "$t" "RSS $rss1 KiB during boot 1, $rss2 during boot $boots (limit +$(soak_rss_limit))"; return; }
	pass "$t"
}

# t_tty TEST HOW: kvmbox on a pseudo-terminal (tools/ptyrun.c), then nothing wrong on stderr.
t_tty() {
	local t=$1 how=$2 r e
	ERR=$LOGS/$t.err
	r=$("$TOOLS/deadline" -k 5 40 "$TOOLS/ptyrun" "$t" "$how" "$ERR" "$LOGS/$t.out" \
		$DEFSIG "$KVMBOX" run --kernel "$GUESTS/$G.elf" --memory 64M --cpus 2 2>&1)
	case $r in
	"PASS: $t") ;;
	"FAIL: $t: "*) fail "$t" "${r#FAIL: $t: }"; return ;;
	*) fail "$t" "ptyrun said: $(echo "$r" | head -n1 | cut -c1-200)"; return ;;
	esac
	e=$(stderr_errors)
	[ -n "$e" ] && { fail "$t" "error on stderr: $e"; return; }
	pass "$t"
}

# ---- command-line errors ----

# cli_expect TEST STATUSES [command...]: the status must be one of STATUSES (comma-separated)
# and stderr exactly one line starting "kvmbox: ". Sets ERR.
cli_expect() {
	local t=$1 want=$2 rc lines first
	shift 2
	ERR=$LOGS/$t.err
	"$TOOLS/deadline" -k 5 20 "$@" </dev/null >"$LOGS/$t.out" 2>"$ERR"
	rc=$?
	case ",$want," in
	*",$rc,"*) ;;
	*)
		fail "$t" "status $rc, expected ${want//,/ or }; stderr: $(head -n1 "$ERR" | cut -c1-200)"
		return 1
		;;
	esac
	lines=$(wc -l <"$ERR")
	first=$(head -n1 "$ERR")
	# A message without a final newline still counts as one line.
	[ "$lines" = 0 ] && [ -s "$ERR" ] && lines=1
	if [ "$lines" != 1 ]; then
		fail "$t" "$lines lines on stderr, expected exactly 1: $(head -n2 "$ERR" | tr '\n' '|' | cut -c1-200)"
		return 1
	fi
	case $first in
	"kvmbox: "*) ;;
	*) fail "$t" "stderr does not start with 'kvmbox: ': $(echo "$first" | cut -c1-200)"; return 1 ;;
	esac
	return 0
}

# t_cli TEST STATUSES OPTION...: kvmbox run of build/guests/$G.elf with OPTIONs must fail so.
t_cli() {
	local t=$1 want=$2
	shift 2
	cli_expect "$t" "$want" "$KVMBOX" run --kernel "$GUESTS/$G.elf" "$@" --no-reboot && pass "$t"
}

# t_cli_kernel TEST missing|dir|text: --kernel is no kernel: status 1.
t_cli_kernel() {
	local t=$1 k
	case $2 in
	missing) k=$WORK/no-such-kernel.elf ;;
	dir) k=$WORK ;;
	text) k=$WORK/text; echo "not a kernel" >"$k" ;;
	esac
	cli_expect "$t" 1 "$KVMBOX" run --kernel "$k" --no-reboot && pass "$t"
}

t_cli_initrd_too_big() {
	local t=$1
	truncate -s 100M "$WORK/big.initrd" || { fail "$t" "cannot make $WORK/big.initrd"; return; }
	cli_expect "$t" 1 "$KVMBOX" run --kernel "$GUESTS/$G.elf" --memory 64M --initrd "$WORK/big.initrd" \
		--no-reboot && pass "$t"
	rm -f "$WORK/big.initrd"
}

t_cli_no_kernel() {
	cli_expect "$1" 2 "$KVMBOX" run --memory 64M --no-reboot && pass "$1"
}

# t_kvm_ns TEST: /dev/kvm replaced by /dev/null (kvm_not_a_device), or absent (kvm_missing),
# inside a private mount namespace: status 1, one line (naming /dev/kvm when it is missing).
t_kvm_ns() {
	local t=$1 setup u
	if [ "$t" = kvm_not_a_device ]; then
		setup='mount -o bind /dev/null /dev/kvm'
	else
		setup='mount -t tmpfs tmpfs /dev'
	fi
	# As root, or else in a user namespace where we are root.
	for u in "unshare -m" "unshare -r -m" ""; do
		[ -n "$u" ] && $u sh -c "$setup" >/dev/null 2>&1 && break
	done
	if [ -z "$u" ]; then
		if [ -n "$INSIDE" ]; then
			fail "$t" "cannot make a private mount namespace: $(unshare -m sh -c "$setup" 2>&1 | head -n1)"
		else
			skip "$t" "cannot make a private mount namespace here (needs root, or user namespaces)"
		fi
		return
	fi
	cli_expect "$t" 1 $u sh -c "$setup && exec \"\$0\" run --kernel \"\$1\" --no-reboot" \
		"$KVMBOX" "$GUESTS/$G.elf" || return
	if [ "$t" = kvm_missing ] && ! grep -q '/dev/kvm' "$ERR"; then
		fail "$t" "message does not mention /dev/kvm: $(head -n1 "$ERR" | cut -c1-200)"
		return
	fi
	pass "$t"
}

# The control-socket lifecycle tests (snapshot, migration, ...).
# shellcheck source=tests/guests/lifecycle.sh
source "$ROOT/tests/guests/lifecycle.sh"

# ---- checks of the runner's own tools ----

# selftest_tools: every command the tests use exists and does what they expect of it (with
# busybox in the emulated host too), so that no check passes because a tool misbehaves.
# Prints what is wrong.
selftest_tools() {
	local c d s
	for c in $HELPERS; do
		[ -x "$TOOLS/$c" ] || { echo "$TOOLS/$c not built (make guests)"; return 1; }
	done
	for c in $COMMANDS; do
		command -v "$c" >/dev/null || { echo "command '$c' not found"; return 1; }
	done
	d=$(mktemp -d "${TMPDIR:-/tmp}/kvmbox-selftest.XXXXXX") || { echo "mktemp -d failed"; return 1; }
	printf 'a 1\nkvmbox: Error x\r\nb 22\n' >"$d/f"
	printf 'abcdefgh' >"$d/g"
	printf 'abXdefgY' >"$d/h"
	check() { # WHAT EXPECTED ACTUAL
		[ "$2" = "$3" ] && return 0
		echo "'$1' gives '$3', expected '$2'"
		return 1
	}
	check "grep -qax" 0 "$(grep -qax 'b 22' "$d/f"; echo $?)" &&
	check "grep -qax (no match)" 1 "$(grep -qax 'b 2' "$d/f"; echo $?)" &&
	check "grep -aiE" "kvmbox: Error x" "$(grep -aiE "$ERROR_RE" "$d/f" | tr -d '\r')" &&
	check "grep -avi" 2 "$(grep -avi 'error' "$d/f" | wc -l)" &&
	check "grep -ac" 2 "$(grep -ac '^[ab] ' "$d/f")" &&
	check "grep -m1" "a 1" "$(grep -a -m1 '^[ab]' "$d/f")" &&
	check "grep -E -m1 -h" "kvmbox: Error x" "$(grep -a -m1 -E 'E[r]+or' "$d/f" | tr -d '\r')" &&
	check "sed -n s///p" 22 "$(sed -n 's/^b \([0-9][0-9]*\)$/\1/p' "$d/f")" &&
	check "tr -d / tr -s" "a 1 kvmbox: Error x b 22 " "$(tr -d '\r' <"$d/f" | tr -s ' \n' ' ')" &&
	check "cut -c" "kvm" "$(sed -n 2p "$d/f" | cut -c1-3)" &&
	check "head -c / tail -c / tail -n" "ab h b 22" "$(head -c 2 "$d/g") $(tail -c1 "$d/g") $(tail -n1 "$d/f")" &&
	check "od" " 99 100 101" "$(od -An -v -tu1 -j 2 -N 3 "$d/g" | tr -s ' \n' ' ' | sed 's/ $//')" &&
	check "cmp -s" 1 "$(cmp -s "$d/g" "$d/h"; echo $?)" &&
	check "cmp -l | awk" "3 8" "$(cmp -l "$d/g" "$d/h" | awk '{ printf "%s%d", (NR > 1 ? " " : ""), $1 }')" &&
	check "stat -c %s" 8 "$(stat -c %s "$d/g")" &&
	check "wc" "3 2" "$(wc -l <"$d/f") $(echo a b | wc -w)" &&
	check "seq" "0 1 2" "$(seq 0 2 | tr '\n' ' ' | sed 's/ $//')" &&
	check "sort -n" "2 10" "$(printf '10\n2\n' | sort -n | tr '\n' ' ' | sed 's/ $//')" &&
	check "uniq -c" "2 x" "$(printf 'x\nx\n' | uniq -c | sed 's/^ *//')" &&
	check "dd conv=notrunc" "XYcdefgh" "$(printf XY | dd of="$d/g" conv=notrunc 2>/dev/null; cat "$d/g")" &&
	check "truncate -s" 1048576 "$(truncate -s 1M "$d/t" && stat -c %s "$d/t")" &&
	check "diff -u" "-kvmbox: Error x +X" "$(printf 'a 1\nX\nb 22\n' >"$d/e"; diff -u "$d/f" "$d/e" | sed -n '3,$p' | grep '^[-+]' | tr -d '\r' | tr '\n' ' ' | sed 's/ $//')" &&
	check "readlink" "$d/g" "$(ln -s "$d/g" "$d/l" && readlink "$d/l")" &&
	check "head -c 32 /dev/urandom, chmod, stat -c %a" "32 600" "$(head -c 32 /dev/urandom >"$d/k" && chmod 600 "$d/k" && stat -c '%s %a' "$d/k")" &&
	check "sleep 0.05" 0 "$(sleep 0.05; echo $?)" &&
	check "kill -l" 1 "$(kill -l HUP)"
	s=$?
	rm -rf "$d"
	return $s
}

# ---- main ----

# rows [GLOB...]: the table's rows (name guest function args) whose names match.
rows() {
	local name rest g
	while read -r name rest; do
		case $name in '' | '#'*) continue ;; esac
		if [ $# = 0 ]; then
			echo "$name $rest"
			continue
		fi
		for g in "$@"; do
			# shellcheck disable=SC2254 # a glob on purpose
			case $name in $g) echo "$name $rest"; break ;; esac
		done
	done <<<"$TABLE"
}

# run_one NAME GUEST FUNCTION [ARGS...]: one test, in a subshell with its logs and processes
# to itself (a shell error in one test, e.g. an unset variable, ends only that test). Its
# lines are printed when it ends.
# kvmbox's own messages (a guest crash, a hang) are never retried: a failure stands. (Earlier
# runs retried a migration test whose guest crashed in the emulated host; that came from QEMU's
# multi-threaded TCG, which this tier's emulated host no longer uses: emulated.sh.)
run_one() {
	local name=$1 fn=$3 held=$WORK/.lines.$1
	G=$2
	shift 3
	CUR=$name NRES=0 BG_PIDS=
	rm -f "$LOGS/$name".*
	if [ "$G" != - ] && [ ! -f "$GUESTS/$G.elf" ]; then
		fail "$name" "$GUESTS/$G.elf not built (make guests)"
		return
	fi
	[ -n "$INSIDE" ] && echo "KVMBOX-I start $name"
	(
		trap 'for p in $BG_PIDS; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null; done' EXIT
		"$fn" "$name" "$@"
		[ "$NRES" -gt 0 ] || fail "$name" "the test printed no result (a runner bug)"
		: >"$LOGS/$name.done"
	) >"$held"
	[ -f "$LOGS/$name.done" ] || [ -f "$LOGS/$name.result" ] ||
		fail "$name" "the runner stopped in this test (a runner bug: see its stderr)" >>"$held"
	cat "$held"
	rm -f "$held"
}

# probe_here: can this machine's /dev/kvm run the tiny guests? Prints why not.
probe_here() {
	local o
	if [ ! -c /dev/kvm ]; then
		echo "/dev/kvm not available (no such character device)"
		return 1
	fi
	if ! (exec 3<>/dev/kvm) 2>/dev/null; then
		echo "/dev/kvm not available (cannot open it read-write)"
		return 1
	fi
	[ -f "$GUESTS/serial.elf" ] || { echo "$GUESTS/serial.elf not built (make guests)"; return 1; }
	o=$(mktemp -d "${TMPDIR:-/tmp}/kvmbox-probe.XXXXXX") || return 1
	"$TOOLS/deadline" -k 2 10 "$KVMBOX" run --kernel "$GUESTS/serial.elf" --memory 64M </dev/null \
		>"$o/out" 2>"$o/err"
	local rc=$?
	if [ $rc != 0 ] || ! tr -d '\r' <"$o/out" | grep -qx 'serial: done'; then
		echo "/dev/kvm here cannot run the tiny guests (probe serial.elf: status $rc$([ $rc = 124 ] &&
			echo ", timed out after 10s"); $(tail -n1 "$o/err" | cut -c1-120))"
		rm -rf "$o"
		return 1
	fi
	rm -rf "$o"
}

all_rows() { # STATUS WHY: the same result for every selected test
	local name rest
	while read -r name rest; do
		result "$1" "$name" "$2"
	done <<<"$SELECTED"
}

case ${1:-} in
--list)
	rows | cut -d' ' -f1
	exit 0
	;;
--selftest) # check the commands the tests use, nothing else
	selftest_tools && echo "the runner's tools work"
	exit
	;;
esac
SELECTED=$(rows "$@")
for g in "$@"; do
	[ -n "$(rows "$g")" ] || result FAIL "$g" "no such test (see $0 --list)"
done
[ -n "$SELECTED" ] || exit 0

for b in "$KVMBOX" "$KVMBOX_PEER"; do
	if [ ! -x "$b" ]; then
		all_rows FAIL "$b not built (make)"
		exit 0
	fi
done
case ${GUESTS_WHERE:=auto} in
auto)
	if why_here=$(probe_here); then
		GUESTS_WHERE=here
	else
		GUESTS_WHERE=emulated
		echo "guests: $why_here: running the tier in the emulated host" >&2
	fi
	;;
here) ;;
emulated) why_here="GUESTS_WHERE=emulated" ;;
*)
	all_rows FAIL "GUESTS_WHERE must be auto, here or emulated, not '$GUESTS_WHERE'"
	exit 0
	;;
esac
if [ "$GUESTS_WHERE" = emulated ]; then
	# shellcheck source=tests/guests/emulated.sh
	source "$ROOT/tests/guests/emulated.sh"
	emu_run "$why_here"
	exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvmbox-guests.XXXXXX")
BG_PIDS=
# Background kvmbox runs (process tests) must not outlive the runner.
trap 'for p in $BG_PIDS; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
if [ -n "${GUEST_LOGS:-}" ] && [ -z "$INSIDE" ]; then
	mkdir -p "$GUEST_LOGS"
	LOGS=$GUEST_LOGS
else
	LOGS=$WORK
fi
if ! why=$(selftest_tools); then
	all_rows FAIL "the runner's tools do not work here: $why"
	exit 0
fi
# Not a `while read` loop: the tests must not read the list from their stdin.
mapfile -t LINES <<<"$SELECTED"
for ((i = 0; i < ${GUEST_REPEAT:-1}; i++)); do
	for l in "${LINES[@]}"; do
		# shellcheck disable=SC2086 # the table's words
		run_one $l
	done
done
exit 0
