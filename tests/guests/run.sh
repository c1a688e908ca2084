#!/bin/bash
# tests/guests/run.sh - tier-2 tests: boot each tiny guest from build/guests/
# under build/kvmbox and check its serial output and exit status, plus host-side
# command-line error checks. One line per test: PASS: name / FAIL: name: why /
# SKIP: name: why. Always exits 0 (tests/check.sh counts the lines).
#
#   tests/guests/run.sh [test...]      run all tests, or only the named ones
#   KVMBOX=path GUESTS=dir             binaries to use (default build/kvmbox, build/guests)
#   GUEST_TIMEOUT=seconds              per-run limit (default 60); a hang is a FAIL
#   GUEST_LOGS=dir                     keep every run's stdout/stderr there
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KVMBOX=${KVMBOX:-$ROOT/build/kvmbox}
GUESTS=${GUESTS:-$ROOT/build/guests}
TIMEOUT=${GUEST_TIMEOUT:-60}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvmbox-guests.XXXXXX")
BG_PIDS=
# Background kvmbox runs (process tests) must not outlive the runner.
trap 'for p in $BG_PIDS; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
if [ -n "${GUEST_LOGS:-}" ]; then
	mkdir -p "$GUEST_LOGS"
	LOGS=$GUEST_LOGS
else
	LOGS=$WORK
fi

GUEST_TESTS="serial rtc pit lapic_timer smp_1 smp_2 smp_4 poweroff reset_i8042_noreboot
	reset_acpi_noreboot reset_reboot reset_reboot_acpi triple_fault triple_fault_int3 hostile_io
	virtio_hostile virtio_hostile_ro
	sigterm sigint sighup sig_ignored threads sigstop fds_reboot tty_sigterm tty_ctrl_a_x tty_hangup"
CLI_TESTS="cli_missing_kernel cli_kernel_is_dir cli_not_a_kernel cli_initrd_too_big
	cli_memory_too_small cli_memory_too_big cli_memory_malformed cli_cpus_zero
	cli_cpus_too_many cli_unknown_option cli_no_kernel kvm_not_a_device kvm_missing"
# The control-socket lifecycle tests (snapshot, migration, ...) live in lifecycle.sh.
source "$ROOT/tests/guests/lifecycle.sh"
ALL_TESTS=$(echo $GUEST_TESTS $LIFECYCLE_TESTS $CLI_TESTS)

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; }
skip() { echo "SKIP: $1: $2"; }

# ---- running things ----

# run_vm TEST GUEST [kvmbox run options...]: boot build/guests/GUEST.elf; sets RC,
# OUT (stdout, CRs removed) and ERR (stderr path).
run_vm() {
	local t=$1 g=$2
	shift 2
	OUT=$LOGS/$t.out
	ERR=$LOGS/$t.err
	timeout -k 5 "$TIMEOUT" "$KVMBOX" run --kernel "$GUESTS/$g.elf" --memory 64M \
		--console serial "$@" </dev/null >"$OUT.raw" 2>"$ERR"
	RC=$?
	tr -d '\r' <"$OUT.raw" >"$OUT"
	rm -f "$OUT.raw"
}

# Why a boot went wrong, in one line: timeout, the guest's own ERROR line, or
# the status and the last stderr line.
# vm_trouble TEST WANT: print the FAIL line and succeed if the run went wrong.
vm_trouble() {
	local t=$1 want=$2 e
	e=$(grep -m1 -a '^ERROR:' "$OUT")
	if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
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

# ---- guest tests ----

t_serial() {
	run_vm serial serial
	vm_trouble serial 0 && return
	grep -a '^serial:' "$OUT" >"$WORK/serial.got"
	cat >"$WORK/serial.want" <<'WANT'
serial: hello from the serial guest
serial: lsr idle 60
serial: fifo enabled
serial: scr ok
serial: dlab ok
serial: burst 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ
serial: burst2 the quick brown fox jumps over the lazy dog 0123456789 !"#$%&'()*+,-./
serial: handshake line of more than sixteen bytes
serial: loopback ok
serial: ier ok
serial: done
WANT
	if ! cmp -s "$WORK/serial.want" "$WORK/serial.got"; then
		local d
		d=$(diff "$WORK/serial.want" "$WORK/serial.got" | grep -m1 '^[<>]')
		echo "FAIL: serial: output differs from the expected text: $d"
		return
	fi
	pass serial
}

t_rtc() {
	local host guest diff
	run_vm rtc rtc
	host=$(date +%s)
	vm_trouble rtc 0 && return
	guest=$(sed -n 's/^rtc: unix \([0-9][0-9]*\)$/\1/p' "$OUT" | head -n1)
	[ -z "$guest" ] && { fail rtc "no 'rtc: unix N' line"; return; }
	diff=$((host - guest))
	[ "$diff" -lt 0 ] && diff=$((-diff))
	[ "$diff" -gt 60 ] && { fail rtc "guest time $guest is ${diff}s away from host time $host"; return; }
	grep -qa '^rtc: ticked to ' "$OUT" || { fail rtc "RTC did not tick"; return; }
	have_line "rtc: nvram ok" || { fail rtc "no 'rtc: nvram ok'"; return; }
	pass rtc
}

t_pit() {
	run_vm pit pit
	vm_trouble pit 0 && return
	have_line "pit: OK" || { fail pit "no 'pit: OK' line"; return; }
	pass pit
}

t_lapic_timer() {
	run_vm lapic_timer lapic_timer
	vm_trouble lapic_timer 0 && return
	have_line "lapic_timer: OK" || { fail lapic_timer "no 'lapic_timer: OK' line"; return; }
	pass lapic_timer
}

t_smp() {
	local n=$1 t=smp_$1 got want
	run_vm "$t" smp --cpus "$n" --append "cpus=$n"
	vm_trouble "$t" 0 && return
	got=$(sed -n 's/^cpu \([0-9][0-9]*\) up$/\1/p' "$OUT" | sort -n | tr '\n' ' ')
	want=$(seq 0 $((n - 1)) | tr '\n' ' ')
	[ "$got" != "$want" ] && { fail "$t" "CPUs that came up: '${got% }', expected '${want% }'"; return; }
	have_line "smp: all $n cpus up" || { fail "$t" "no 'smp: all $n cpus up' line"; return; }
	pass "$t"
}

t_poweroff() {
	run_vm poweroff poweroff
	vm_trouble poweroff 0 && return
	have_line "poweroff: going down" || { fail poweroff "guest output missing"; return; }
	pass poweroff
}

# reset_once TEST MODE: reset once with --no-reboot; kvmbox must exit 0 after one boot.
reset_once() {
	local t=$1 boots
	run_vm "$t" reset --no-reboot --append "mode=$2"
	vm_trouble "$t" 0 && return
	boots=$(grep -ca '^reset: boot' "$OUT")
	[ "$boots" != 1 ] && { fail "$t" "$boots boot lines, expected 1"; return; }
	pass "$t"
}

# reset_twice TEST CMDLINE: reset on the first boot (counted in CMOS), power off on the second.
reset_twice() {
	local t=$1 got
	run_vm "$t" reset --append "$2"
	vm_trouble "$t" 0 && return
	got=$(grep -a '^reset: boot' "$OUT" | tr '\n' ',')
	[ "$got" != "reset: boot 1,reset: boot 2," ] &&
		{ fail "$t" "boot lines '${got%,}', expected 'reset: boot 1,reset: boot 2'"; return; }
	pass "$t"
}

# t_triple_fault TEST HOW: ud2 or int3 with an empty IDT; kvmbox must exit 3 with a register dump.
t_triple_fault() {
	local t=$1
	run_vm "$t" triple_fault --append "how=$2"
	if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
		fail "$t" "timed out after ${TIMEOUT}s"
		return
	fi
	[ "$RC" != 3 ] && { fail "$t" "status $RC, expected 3; stderr: $(tail -n1 "$ERR" | cut -c1-200)"; return; }
	have_line "triple_fault: faulting now" || { fail "$t" "guest did not run"; return; }
	grep -qa 'RIP' "$ERR" || { fail "$t" "no register dump (RIP) on stderr"; return; }
	pass "$t"
}

t_hostile_io() {
	run_vm hostile_io hostile_io
	vm_trouble hostile_io 0 && return
	have_line "hostile_io: OK" || { fail hostile_io "no 'hostile_io: OK' line"; return; }
	pass hostile_io
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
		! printf 'KVMBOX-DISK sector 0\n' | dd of="$orig" conv=notrunc status=none ||
		! cp "$orig" "$img"; then
		fail "$t" "cannot prepare the disk image in $LOGS"
		return
	fi
	run_vm "$t" virtio_hostile --disk "$img${ro:+,ro}" --append "cap=$VH_SECTORS${ro:+ ro}"
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
	e=$(grep -avi 'io_uring unavailable' "$ERR" |
		grep -aiE "error|fail|cannot|can't|unable|warn|abort|fault|leak" | head -n1 | cut -c1-200)
	[ -n "$e" ] && { fail "$t" "error on stderr: $e"; return; }
	# The image: same size, untouched outside sector 8, sector 8 = pattern.
	sz=$(stat -c %s "$img")
	[ "$sz" != $((VH_SECTORS * 512)) ] && { fail "$t" "image is $sz bytes, was $((VH_SECTORS * 512))"; return; }
	if [ -n "$ro" ]; then
		c=$(cmp "$orig" "$img" 2>&1) || { fail "$t" "read-only image changed: $c"; return; }
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

# Start background runs with the default dispositions: a non-interactive shell
# starts `cmd &` with SIGINT and SIGQUIT ignored, which is not how kvmbox is
# normally run (sig_ignored tests that case on purpose).
if env --default-signal=INT true 2>/dev/null; then
	DEFSIG="env --default-signal=HUP,INT,QUIT,TERM"
else
	DEFSIG=
fi

# bg_start TEST GUEST [kvmbox run options...]: start kvmbox on build/guests/GUEST.elf
# in the background; sets PID, OUT (raw stdout) and ERR. BG_WRAP may prefix a command.
bg_start() {
	local t=$1 g=$2
	shift 2
	OUT=$LOGS/$t.out
	ERR=$LOGS/$t.err
	: >"$OUT"
	${BG_WRAP:-$DEFSIG} "$KVMBOX" run --kernel "$GUESTS/$g.elf" --memory 64M --console serial "$@" \
		</dev/null >"$OUT" 2>"$ERR" &
	PID=$!
	BG_PIDS="$BG_PIDS $PID"
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

# wait_out TEXT SECONDS: until OUT has a line starting with TEXT. Otherwise sets
# WHY (kvmbox exited / timed out) and fails. Not in $(...): it waits for kvmbox.
wait_out() {
	local text=$1 n=$(($2 * 20))
	while [ "$n" -gt 0 ]; do
		tr -d '\r' <"$OUT" | grep -qa -- "^$text" && return 0
		if ! alive "$PID"; then
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

# proc_state PID_OR_TASK_DIR: the state letter from /proc/.../stat (comm may hold spaces).
proc_state() {
	local f=$1
	case $f in /*) ;; *) f=/proc/$f ;; esac
	sed -n 's/^.*) \([A-Za-z]\) .*$/\1/p' "$f/stat" 2>/dev/null
}

# stderr_errors: the error lines on ERR (the same pattern as tty.py's ERROR_LINE).
stderr_errors() {
	grep -aiE "error|fail|cannot|can't|unable|warn|abort|fault|leak" "$ERR" | head -n3 |
		tr '\n' '|' | cut -c1-200
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

# t_signal TEST SIG STATUS: the idle guest on 2 vCPUs; SIG must stop kvmbox
# cleanly with STATUS within 5 s and nothing wrong on stderr.
t_signal() {
	local t=$1 sig=$2 want=$3 e
	bg_start "$t" idle --cpus 2
	wait_out "idle: ready" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	kill -"$sig" "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIG$sig"; return; }
	[ "$RC" != "$want" ] && { fail "$t" "status $RC after SIG$sig, expected $want"; return; }
	e=$(stderr_errors)
	[ -n "$e" ] && { fail "$t" "error on stderr: $e"; return; }
	pass "$t"
}

# t_sig_ignored: started with SIGHUP and SIGINT ignored, as `nohup kvmbox ...`
# (POSIX nohup) or `kvmbox ... &` from a script (the shell) start it, kvmbox must
# keep ignoring them; SIGTERM still stops it.
t_sig_ignored() {
	local t=sig_ignored sig s1
	if ! env --ignore-signal=HUP true 2>/dev/null; then
		skip "$t" "env --ignore-signal not available (coreutils < 8.31)"
		return
	fi
	BG_WRAP="env --ignore-signal=HUP,INT" bg_start "$t" idle --cpus 2
	wait_out "idle: ready" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	for sig in HUP INT; do
		kill -"$sig" "$PID"
		sleep 0.5
		if ! alive "$PID"; then
			wait "$PID"
			fail "$t" "SIG$sig was ignored when kvmbox started, but it stopped the VM (status $?)"
			return
		fi
	done
	s1=$(stat -c %s "$OUT")
	sleep 0.6
	if [ "$(stat -c %s "$OUT")" = "$s1" ]; then
		bg_kill
		fail "$t" "guest stopped ticking after SIGHUP/SIGINT"
		return
	fi
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ "$RC" != 143 ] && { fail "$t" "status $RC after SIGTERM, expected 143"; return; }
	pass "$t"
}

# t_threads: with --cpus 2 (both vCPUs started and halted), the threads are the
# main one, vcpu0 and vcpu1.
t_threads() {
	local t=threads cpus=2 why
	bg_start "$t" idle --cpus 2
	wait_out "idle: ready" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	why=$(check_threads "$PID" "$cpus") || { bg_kill; fail "$t" "$why"; return; }
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ "$RC" != 143 ] && { fail "$t" "status $RC after SIGTERM, expected 143"; return; }
	pass "$t"
}

# t_sigstop: SIGSTOP stops every thread and the guest's output (its clock ticks
# 5 times a second); SIGCONT resumes both; then SIGTERM.
t_sigstop() {
	local t=sigstop why n s1 s2 d st bad
	bg_start "$t" idle --cpus 2
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
	s1=$(stat -c %s "$OUT")
	sleep 2
	s2=$(stat -c %s "$OUT")
	if [ "$s1" != "$s2" ]; then
		bg_kill
		fail "$t" "output grew from $s1 to $s2 bytes while stopped"
		return
	fi
	kill -CONT "$PID"
	for n in $(seq 60); do
		[ "$(stat -c %s "$OUT")" != "$s2" ] && break
		sleep 0.05
	done
	if [ "$(stat -c %s "$OUT")" = "$s2" ]; then
		bg_kill
		fail "$t" "no guest output within 3s of SIGCONT"
		return
	fi
	why=$(check_threads "$PID" 2) || { bg_kill; fail "$t" "after SIGCONT: $why"; return; }
	kill -TERM "$PID"
	bg_wait 5 || { fail "$t" "still running 5s after SIGTERM"; return; }
	[ "$RC" != 143 ] && { fail "$t" "status $RC after SIGTERM, expected 143"; return; }
	pass "$t"
}

# t_fds_reboot: the reboots guest boots 4 times (3 resets) on 2 vCPUs; kvmbox's
# fds and threads during the last boot must be what they were during the first.
t_fds_reboot() {
	local t=fds_reboot boots=4 why fd1 fd2 th1 th2 d
	bg_start "$t" reboots --cpus 2 --append "boots=$boots hold=1000"
	wait_out "reboots: boot 1" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	fd_list "$PID" >"$LOGS/$t.fds1"
	th1=$(ls /proc/"$PID"/task | wc -l)
	wait_out "reboots: boot $boots" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	fd_list "$PID" >"$LOGS/$t.fds2"
	th2=$(ls /proc/"$PID"/task | wc -l)
	why=$(check_threads "$PID" 2) || { bg_kill; fail "$t" "during boot $boots: $why"; return; }
	bg_wait 20 || { fail "$t" "did not power off"; return; }
	vm_trouble "$t" 0 && return
	tr -d '\r' <"$OUT" | grep -qax "reboots: done" || { fail "$t" "no 'reboots: done' line"; return; }
	fd1=$(wc -l <"$LOGS/$t.fds1")
	fd2=$(wc -l <"$LOGS/$t.fds2")
	if [ "$fd1" != "$fd2" ]; then
		d=$(diff <(fd_kinds <"$LOGS/$t.fds1") <(fd_kinds <"$LOGS/$t.fds2") | grep '^[<>]' |
			head -n6 | tr '\n' ',')
		fail "$t" "$fd1 fds during boot 1, $fd2 during boot $boots (count kind: ${d%,})"
		return
	fi
	[ "$th1" != "$th2" ] && { fail "$t" "$th1 threads during boot 1, $th2 during boot $boots"; return; }
	pass "$t"
}

# t_tty TEST HOW: kvmbox on a pseudo-terminal (tests/guests/tty.py).
t_tty() {
	local t=$1 how=$2
	if ! command -v python3 >/dev/null || ! python3 -c 'import termios' 2>/dev/null; then
		skip "$t" "python3 with the termios module not available"
		return
	fi
	timeout -k 5 40 python3 "$ROOT/tests/guests/tty.py" "$t" "$how" "$LOGS/$t.err" "$LOGS/$t.out" \
		$DEFSIG "$KVMBOX" run --kernel "$GUESTS/idle.elf" --memory 64M --cpus 2 \
		>"$WORK/$t.res" 2>&1
	grep -m1 -E "^(PASS|FAIL|SKIP): $t" "$WORK/$t.res" ||
		fail "$t" "tty.py said: $(head -n1 "$WORK/$t.res" | cut -c1-200)"
}

# ---- command-line errors ----

# cli_expect TEST "STATUSES" [kvmbox args...]: the status must be one of STATUSES
# and stderr exactly one line starting "kvmbox: ". Sets ERR.
cli_expect() {
	local t=$1 want=$2 rc lines first s ok=
	shift 2
	ERR=$LOGS/$t.err
	timeout -k 5 20 "$@" </dev/null >"$LOGS/$t.out" 2>"$ERR"
	rc=$?
	for s in $want; do [ "$rc" = "$s" ] && ok=1; done
	if [ -z "$ok" ]; then
		fail "$t" "status $rc, expected ${want// / or }; stderr: $(head -n1 "$ERR" | cut -c1-200)"
		return 1
	fi
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

K() { echo "$GUESTS/poweroff.elf"; }

t_cli() {
	local t=$1
	case $t in
	cli_missing_kernel)
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$WORK/no-such-kernel.elf" --no-reboot ;;
	cli_kernel_is_dir)
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$WORK" --no-reboot ;;
	cli_not_a_kernel)
		local f=/etc/hostname
		[ -r "$f" ] && [ -s "$f" ] || { echo "not a kernel" >"$WORK/text"; f=$WORK/text; }
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$f" --no-reboot ;;
	cli_initrd_too_big)
		truncate -s 100M "$WORK/big.initrd"
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$(K)" --memory 64M --initrd "$WORK/big.initrd" --no-reboot ;;
	cli_memory_too_small)
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$(K)" --memory 1M --no-reboot ;;
	cli_memory_too_big)
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$(K)" --memory 100T --no-reboot ;;
	cli_memory_malformed)
		# A malformed value may be reported as a usage error.
		cli_expect "$t" "1 2" "$KVMBOX" run --kernel "$(K)" --memory 12Q --no-reboot ;;
	cli_cpus_zero)
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$(K)" --cpus 0 --no-reboot ;;
	cli_cpus_too_many)
		cli_expect "$t" 1 "$KVMBOX" run --kernel "$(K)" --cpus 100000 --no-reboot ;;
	cli_unknown_option)
		cli_expect "$t" 2 "$KVMBOX" run --kernel "$(K)" --no-such-option --no-reboot ;;
	cli_no_kernel)
		cli_expect "$t" 2 "$KVMBOX" run --memory 64M --no-reboot ;;
	esac && pass "$t"
}

# /dev/kvm replaced by /dev/null, or absent, inside a private mount namespace.
t_kvm_ns() {
	local t=$1 setup
	if [ "$t" = kvm_not_a_device ]; then
		setup='mount --bind /dev/null /dev/kvm'
	else
		setup='mount -t tmpfs tmpfs /dev'
	fi
	if ! command -v unshare >/dev/null || ! unshare -m sh -c "$setup" >/dev/null 2>&1; then
		skip "$t" "cannot make a private mount namespace here (needs root and unshare)"
		return
	fi
	cli_expect "$t" 1 unshare -m sh -c "$setup && exec \"\$0\" run --kernel \"\$1\" --no-reboot" \
		"$KVMBOX" "$(K)" || return
	if [ "$t" = kvm_missing ] && ! grep -q '/dev/kvm' "$ERR"; then
		fail "$t" "message does not mention /dev/kvm: $(head -n1 "$ERR" | cut -c1-200)"
		return
	fi
	pass "$t"
}

run_test() {
	case $1 in
	serial | rtc | pit | lapic_timer | poweroff | hostile_io) "t_$1" ;;
	sigterm) t_signal "$1" TERM 143 ;;
	sigint) t_signal "$1" INT 130 ;;
	sighup) t_signal "$1" HUP 129 ;;
	sig_ignored | threads | sigstop | fds_reboot) "t_$1" ;;
	tty_sigterm) t_tty "$1" sigterm ;;
	tty_ctrl_a_x) t_tty "$1" ctrl-a-x ;;
	tty_hangup) t_tty "$1" hangup ;;
	virtio_hostile) t_virtio_hostile "$1" ;;
	virtio_hostile_ro) t_virtio_hostile "$1" ro ;;
	triple_fault) t_triple_fault "$1" ud2 ;;
	triple_fault_int3) t_triple_fault "$1" int3 ;;
	smp_*) t_smp "${1#smp_}" ;;
	reset_i8042_noreboot) reset_once "$1" i8042 ;;
	reset_acpi_noreboot) reset_once "$1" acpi ;;
	reset_reboot) reset_twice "$1" "mode=count" ;;
	reset_reboot_acpi) reset_twice "$1" "mode=count via=acpi" ;;
	cli_*) t_cli "$1" ;;
	kvm_*) t_kvm_ns "$1" ;;
	*) lc_run_test "$1" || fail "$1" "no such test" ;;
	esac
}

# ---- main ----

if [ $# -gt 0 ]; then
	TESTS="$*"
else
	TESTS=$ALL_TESTS
fi

if [ ! -c /dev/kvm ]; then
	why="/dev/kvm not available (no such character device)"
elif ! (exec 3<>/dev/kvm) 2>/dev/null; then
	why="/dev/kvm not available (cannot open it read-write)"
else
	why=
fi
if [ -n "$why" ]; then
	for t in $TESTS; do skip "$t" "$why"; done
	exit 0
fi
if [ ! -x "$KVMBOX" ]; then
	for t in $TESTS; do fail "$t" "$KVMBOX not built (make)"; done
	exit 0
fi

for t in $TESTS; do
	case " $ALL_TESTS " in
	*" $t "*) ;;
	*)
		case $t in
		smp_[1-9] | smp_[1-9][0-9]) ;;   # any CPU count works
		*) fail "$t" "no such test; see the list at the top of $0"; continue ;;
		esac
		;;
	esac
	case $t in
	cli_* | kvm_*) run_test "$t" ;;
	*)
		g=${t%%_[0-9]*}
		case $t in
		reset_*) g=reset ;;
		triple_fault*) g=triple_fault ;;
		virtio_hostile*) g=virtio_hostile ;;
		sig* | threads | tty_*) g=idle ;;
		fds_reboot) g=reboots ;;
		esac
		case " $(echo $LIFECYCLE_TESTS) " in
		*" $t "*) g=$(lc_guest "$t") ;;
		esac
		if [ ! -f "$GUESTS/$g.elf" ]; then
			fail "$t" "$GUESTS/$g.elf not built (make guests)"
		else
			run_test "$t"
		fi
		;;
	esac
done
exit 0
