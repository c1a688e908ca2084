#!/bin/bash
# bench/lifecycle.sh - VM lifecycle figures on this host's /dev/kvm: snapshot,
# restore and live migration of the tiny test guests (build/guests).
#
#   bench/lifecycle.sh [RUNS]       (default 5; at least 5 recommended)
#   KVMBOX_BIN=path                 default build/kvmbox-static, else build/kvmbox
#   BENCH_DIR=dir                   scratch space for snapshot files (default: build/bench;
#                                   needs ~2 GiB apparent, a few MiB allocated)
#
# Method (printed with the results):
# - snapshot: one idle guest (tests/guests/idle.c, hz=100, 1 vCPU) per RAM size;
#   RUNS times `kvmbox ctl SOCK snapshot FILE` to a new file: the ctl round trip
#   (wall clock around the ctl process), the reply's pause_ms (guest stopped) and
#   total_ms, the file's apparent size and its allocated size (du).
# - restore to running: RUNS times `kvmbox restore FILE` of that snapshot, from
#   starting the process to the first "idle: tick" line on its stdout. The guest
#   ticks every 10 ms, so up to 10 ms of the figure is the guest's own timer. With
#   RAM mapped copy-on-write from the file it should not grow with the RAM size.
# - migration: RUNS times a fresh source and a destination (`run --incoming
#   unix:PATH`) on this host, `ctl migrate`; total_ms, downtime_ms, rounds and
#   bytes from the reply. Guests: idle (256M) and the dirtier (256M, 8 MiB region
#   rewritten continuously, 1 vCPU).
# Results: median, min and max; also written to build/bench/lifecycle.md.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

RUNS=${1:-5}
if [[ -n ${KVMBOX_BIN:-} ]]; then
	BIN=$KVMBOX_BIN
elif [[ -x build/kvmbox-static ]]; then
	BIN=build/kvmbox-static
else
	BIN=build/kvmbox
fi
GUESTS=build/guests
OUT=build/bench
mkdir -p "$OUT"
DIR=${BENCH_DIR:-$OUT}/lifecycle.tmp
RES=$OUT/lifecycle.txt
: >"$RES"

[[ -x $BIN ]] || { echo "bench: $BIN missing (make or make static)" >&2; exit 1; }
for g in idle dirtier; do
	[[ -f $GUESTS/$g.elf ]] || { echo "bench: $GUESTS/$g.elf missing (make guests)" >&2; exit 1; }
done
# Never open /dev/kvm with a redirection to probe it: `<>` creates a regular file where there
# is no device. Without a KVM device these tiny-guest benches cannot run; the Linux benches in
# the emulated host (bench/run.sh) still do.
if [[ ! -c /dev/kvm ]]; then
	echo "bench: lifecycle benches skipped: no /dev/kvm device on this host (bench/run.sh measures in the emulated host)" >&2
	exit 0
fi
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "bench: lifecycle benches skipped: /dev/kvm is not readable and writable by $(id -un); add the user to the kvm group" >&2
	exit 0
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
rm -rf "$DIR"
mkdir -p "$DIR"
PIDS=
trap 'for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"' EXIT

# rec KEY VALUE: one sample.
rec() { echo "$1 $2" >>"$RES"; }

# json_num TEXT KEY: a number member of ctl's pretty-printed reply.
json_num() { echo "$1" | sed -n "s/^ *\"$2\": *\\([0-9.e+-]*\\),\\{0,1\\}\$/\\1/p" | head -n1; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_line FILE REGEX SECONDS
wait_line() {
	local n=$(($3 * 100))
	while ((n-- > 0)); do
		[[ -f $1 ]] && tr -d '\r' <"$1" | grep -qaE "$2" && return 0
		sleep 0.01
	done
	return 1
}

# start_vm NAME GUEST MEMORY [run options...]: sets VPID, VOUT, VSOCK.
start_vm() {
	local name=$1 guest=$2 mem=$3
	shift 3
	VOUT=$DIR/$name.out
	VSOCK=$DIR/$name.sock
	"$BIN" run --kernel "$GUESTS/$guest.elf" --memory "$mem" --api "$VSOCK" "$@" </dev/null \
		>"$VOUT" 2>"$DIR/$name.err" &
	VPID=$!
	PIDS="$PIDS $VPID"
}

stop_vm() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# time_restore FILE MEMORY: ms from starting `kvmbox restore FILE` (with the idle guest's run
# options: a restore takes its host resources from its own command line) to its first tick line.
time_restore() {
	local fifo=$DIR/restore.fifo pid line t0 t1 rc=1
	rm -f "$fifo"
	mkfifo "$fifo" || return 1
	t0=$(date +%s%N)
	timeout -k 2 20 "$BIN" restore "$1" --kernel "$GUESTS/idle.elf" --memory "$2" </dev/null >"$fifo" 2>/dev/null &
	pid=$!
	while IFS= read -r line; do
		if [[ $line == "idle: tick"* ]]; then
			t1=$(date +%s%N)
			rc=0
			break
		fi
	done <"$fifo"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$fifo"
	((rc == 0)) && awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f\n", d / 1e6 }'
	return $rc
}

echo "bench: lifecycle, $RUNS runs each, $BIN (about $((20 + RUNS * 6))s)..." >&2
t_start=$EPOCHSECONDS

# ---- snapshot and restore, by RAM size ----
for mem in 256M 2G; do
	start_vm "snap$mem" idle "$mem" --append hz=100
	wait_line "$VOUT" '^idle: tick 20$' 20 || { echo "bench: idle guest ($mem) did not start: $(tail -n1 "$DIR/snap$mem.err")" >&2; exit 1; }
	for i in $(seq "$RUNS"); do
		f=$DIR/snap$mem.$i
		t0=$(date +%s%N)
		reply=$("$BIN" ctl --timeout 60 "$VSOCK" snapshot "$f" 2>&1) || { echo "bench: snapshot failed: $reply" >&2; exit 1; }
		t1=$(date +%s%N)
		rec "snap_rtt_ms_$mem" "$(((t1 - t0) / 1000))e-3"
		rec "snap_pause_ms_$mem" "$(json_num "$reply" pause_ms)"
		rec "snap_total_ms_$mem" "$(json_num "$reply" total_ms)"
		rec "snap_file_mib_$mem" "$(($(stat -c %s "$f") / 1048576))"
		rec "snap_alloc_kib_$mem" "$(du -k "$f" | cut -f1)"
		sleep 0.1
	done
	stop_vm "$VPID"
	for i in $(seq "$RUNS"); do
		ms=$(time_restore "$DIR/snap$mem.1" "$mem") || { echo "bench: restore ($mem) printed no tick" >&2; exit 1; }
		rec "restore_ms_$mem" "$ms"
	done
	rm -f "$DIR"/snap"$mem".*
done

# ---- migration ----
for kind in idle dirtier; do
	for i in $(seq "$RUNS"); do
		if [[ $kind = idle ]]; then
			start_vm "mig$kind" idle 256M
			first='^idle: tick 3$'
		else
			start_vm "mig$kind" dirtier 256M --cpus 1
			first='^pass 5 '
		fi
		spid=$VPID
		wait_line "$VOUT" "$first" 20 || { echo "bench: $kind source did not start: $(tail -n1 "$DIR/mig$kind.err")" >&2; exit 1; }
		"$BIN" run --kernel "$GUESTS/$kind.elf" --memory 256M --incoming "unix:$DIR/mig.sock" </dev/null >"$DIR/dst.out" 2>"$DIR/dst.err" &
		dpid=$!
		PIDS="$PIDS $dpid"
		wait_line "$DIR/dst.err" 'waiting for a migration' 10 || { echo "bench: destination did not listen" >&2; exit 1; }
		reply=$("$BIN" ctl --timeout 120 "$VSOCK" migrate "unix:$DIR/mig.sock" 2>&1) ||
			{ echo "bench: migration failed: $reply" >&2; exit 1; }
		rec "mig_total_ms_$kind" "$(json_num "$reply" total_ms)"
		rec "mig_downtime_ms_$kind" "$(json_num "$reply" downtime_ms)"
		rec "mig_rounds_$kind" "$(json_num "$reply" rounds)"
		rec "mig_mib_$kind" "$(awk -v b="$(json_num "$reply" bytes)" 'BEGIN { printf "%.1f", b / 1048576 }')"
		wait "$spid" 2>/dev/null
		sleep 0.3
		if grep -qa MISMATCH "$DIR/dst.out"; then
			echo "bench: the dirtier saw wrong memory after migration" >&2
			exit 1
		fi
		stop_vm "$dpid"
		rm -f "$DIR/mig.sock"
	done
done

{
	echo "kvmbox lifecycle bench, $(date -u +%Y-%m-%d), $($BIN --version 2>/dev/null | head -n1),"
	echo "host: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r),"
	echo "snapshot files on $(df -T "$DIR" | awk 'NR == 2 { print $2 }'), $RUNS runs each."
	echo
	echo "Method: snapshot = \`ctl snapshot\` of a running idle guest (1 vCPU, ticking at 100 Hz):"
	echo "wall-clock ctl round trip, the reply's pause_ms and total_ms, the file's apparent size and"
	echo "allocated size (du). restore = from starting \`kvmbox restore FILE\` to the first tick line"
	echo "(includes up to 10 ms of the guest's timer period). migration = \`ctl migrate unix:PATH\`"
	echo "to a destination on the same host; the reply's total_ms, downtime_ms, rounds and bytes;"
	echo "dirtier = 8 MiB rewritten continuously (one word per page, ~20 passes/s), 1 vCPU."
	echo
	awk '
	{ if (!($1 in cnt)) order[++nk] = $1; v[$1, ++cnt[$1]] = $2 + 0 }
	function label(k,   m) {
		m = k; sub(/^.*_/, "", m)
		if (k ~ /^snap_rtt/) return "snapshot: ctl round trip (ms), " m
		if (k ~ /^snap_pause/) return "snapshot: guest paused (pause_ms), " m
		if (k ~ /^snap_total/) return "snapshot: total_ms, " m
		if (k ~ /^snap_file/) return "snapshot: file size, apparent (MiB), " m
		if (k ~ /^snap_alloc/) return "snapshot: file size, allocated (KiB, du), " m
		if (k ~ /^restore/) return "restore to first tick (ms), " m
		if (k ~ /^mig_total/) return "migration: total (ms), " m
		if (k ~ /^mig_downtime/) return "migration: downtime (ms), " m
		if (k ~ /^mig_rounds/) return "migration: rounds, " m
		if (k ~ /^mig_mib/) return "migration: data sent (MiB), " m
		return k
	}
	END {
		printf "| figure | median | min | max | runs |\n|---|---:|---:|---:|---:|\n"
		for (j = 1; j <= nk; j++) {
			k = order[j]; n = cnt[k]
			for (a = 1; a <= n; a++) s[a] = v[k, a]
			for (a = 2; a <= n; a++) {
				x = s[a]
				for (b = a - 1; b >= 1 && s[b] > x; b--) s[b + 1] = s[b]
				s[b + 1] = x
			}
			med = (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
			printf "| %s | %.1f | %.1f | %.1f | %d |\n", label(k), med, s[1], s[n], n
		}
	}' "$RES"
	echo
	echo "(whole bench: $((EPOCHSECONDS - t_start))s; samples: $RES)"
} | tee "$OUT/lifecycle.md"
