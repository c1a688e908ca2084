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
trap 'rm -rf "$WORK"' EXIT
if [ -n "${GUEST_LOGS:-}" ]; then
	mkdir -p "$GUEST_LOGS"
	LOGS=$GUEST_LOGS
else
	LOGS=$WORK
fi

GUEST_TESTS="serial rtc pit lapic_timer smp_1 smp_2 smp_4 poweroff reset_i8042_noreboot
	reset_acpi_noreboot reset_reboot reset_reboot_acpi triple_fault triple_fault_int3 hostile_io"
CLI_TESTS="cli_missing_kernel cli_kernel_is_dir cli_not_a_kernel cli_initrd_too_big
	cli_memory_too_small cli_memory_too_big cli_memory_malformed cli_cpus_zero
	cli_cpus_too_many cli_unknown_option cli_no_kernel kvm_not_a_device kvm_missing"
ALL_TESTS=$(echo $GUEST_TESTS $CLI_TESTS)

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
	triple_fault) t_triple_fault "$1" ud2 ;;
	triple_fault_int3) t_triple_fault "$1" int3 ;;
	smp_*) t_smp "${1#smp_}" ;;
	reset_i8042_noreboot) reset_once "$1" i8042 ;;
	reset_acpi_noreboot) reset_once "$1" acpi ;;
	reset_reboot) reset_twice "$1" "mode=count" ;;
	reset_reboot_acpi) reset_twice "$1" "mode=count via=acpi" ;;
	cli_*) t_cli "$1" ;;
	kvm_*) t_kvm_ns "$1" ;;
	*) fail "$1" "no such test" ;;
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
		case $t in reset_*) g=reset ;; triple_fault*) g=triple_fault ;; esac
		if [ ! -f "$GUESTS/$g.elf" ]; then
			fail "$t" "$GUESTS/$g.elf not built (make guests)"
		else
			run_test "$t"
		fi
		;;
	esac
done
exit 0
