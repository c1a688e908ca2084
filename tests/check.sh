#!/usr/bin/env bash
# tests/check.sh [TIER...] - run test tiers and tally them (`make check` runs "all").
#
# Tiers: unit, unit-asan (ASan+UBSan), unit-tsan (TSan), scripts (the project's own tools:
# tests/scripts/run.sh), guests, guests-asan, musl (make static-musl: its size and tiny guests
# booted by it, received by the glibc build), linux, linux-arm64 (the arm64 Linux tier with
# its tiny arm64 guests, in an emulated arm64 host), linux-vfio (PCI pass-through of an emulated
# NVMe controller behind an emulated IOMMU, x86_64 and arm64: tests/linux/vfio/run.sh, after
# make all static and the arm64 cross build);
# "all" is every one of them, in the order unit, unit-asan, unit-tsan, scripts, guests,
# guests-asan, musl, linux-vfio, linux, linux-arm64. Every tier prints one line per test as it finishes:
# "PASS: name", "FAIL: name: why" or "SKIP: name: why"; each tier ends with its time, and the
# last line is "N passed, N failed, N skipped, N retried". build/check.log gets everything
# the tiers print (the unit tests' TAP output, the guest and Linux tiers' diagnostics).
# Environment: KVMBOX_BUILD (the plain build directory, default build).
set -u
cd "$(dirname "$0")/.." || exit 1
B=${KVMBOX_BUILD:-build}
log=build/check.log
mkdir -p build
: >"$log"

# The build directory of a flavour (Makefile: SANITIZE=a,b builds in build/san-a-b).
flavour_dir() {
	case $1 in
	asan) echo build/san-address-undefined ;;
	tsan) echo build/san-thread ;;
	*) echo "$B" ;;
	esac
}

# run_unit NAME DIR: every cmocka binary in DIR/tests, TAP turned into result lines.
run_unit() {
	local name=$1 dir=$2 t out rc n=0
	for t in "$dir"/tests/test_*; do
		[ -x "$t" ] || continue
		n=$((n + 1))
		out=$(CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$t" 2>&1)
		rc=$?
		printf '%s\n' "$out" >>"$log"
		# TAP: "ok 3 - name" / "not ok 3 - name"
		# cmocka 1.1 prints a skipped test as "not ok N # SKIP name".
		printf '%s\n' "$out" | sed -n \
			-e "s|^ok [0-9]* - \(.*\)$|PASS: $name/${t##*/}/\1|p" \
			-e "s|^not ok [0-9]* # SKIP \(.*\)$|SKIP: $name/${t##*/}/\1: skipped by the test (see $log)|p" \
			-e "s|^not ok [0-9]* - \(.*\)$|FAIL: $name/${t##*/}/\1: see $log|p"
		if ! printf '%s\n' "$out" | grep -q '^1\.\.[0-9]'; then
			echo "FAIL: $name/${t##*/}: exited $rc without a test plan (crash?): see $log"
		elif [ "$rc" -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok [0-9]* - '; then
			# A sanitizer report after the last test makes the binary fail on its own.
			echo "FAIL: $name/${t##*/}: exited $rc after its tests (sanitizer report?): see $log"
		fi
	done
	[ "$n" -gt 0 ] || echo "FAIL: $name: no unit test binaries in $dir/tests (make unit)"
}

# run_vfio: the linux-vfio tier: tests/linux/vfio/run.sh in the emulated x86_64 host (vfio-*),
# then in the emulated arm64 host (arm64-vfio-*; its build is build/arm64's).
run_vfio() {
	tests/linux/vfio/run.sh
	env -u KVMBOX_BUILD KVMBOX_ARCH=arm64 tests/linux/vfio/run.sh |
		sed -u 's/^\(PASS\|FAIL\|SKIP\): vfio-/\1: arm64-vfio-/'
}
# run_scripts: the scripts tier (tests/scripts/run.sh), names prefixed.
run_scripts() {
	tests/scripts/run.sh 2>&1 | sed -u "s/^\(PASS\|FAIL\|SKIP\): /\1: scripts\//"
}
# run_guests NAME KVMBOX [TEST...]: the tiny-guest tier (or those tests) with that kvmbox
# binary; names get a prefix.
run_guests() {
	KVMBOX=$2 tests/guests/run.sh "${@:3}" 2>&1 | sed -u "s/^\(PASS\|FAIL\|SKIP\|RETRY\): /\1: $1\//"
}

# The musl tier: build/musl/kvmbox-static (make static-musl; its libraries are built from Debian's
# sources by scripts/musl-deps.sh the first time, 2-6 minutes) and a few tiny-guest tests booted
# by it with its seccomp filters on, whose migrations and snapshots the glibc build
# ($B/kvmbox-static, KVMBOX_PEER) receives and restores: a boot with output through stdio, SMP,
# a hostile virtio driver, a signal, a snapshot signed with --snapshot-key, keyed and plain
# migrations. Then its size against the 500 KiB goal (docs/PERFORMANCE.md). When a library's
# source cannot be fetched here (musl-deps.sh: "no Debian source"), one SKIP says why.
MUSL_BIN=build/musl/kvmbox-static
MUSL_LIMIT=512000
MUSL_TESTS=(serial smp_2 virtio_hostile sigterm snap_key migrate_tcp migrate_dirty migrate_key_refused)
# musl_build: make static-musl; its result line (PASS, or SKIP/FAIL with the reason) in
# $tmp/musl.build. It runs beside the tiers before the musl tier (started at the beginning).
musl_build() {
	local mlog=build/musl-build.log why
	if make static-musl "$B/kvmbox-static" >"$mlog" 2>&1; then
		echo "PASS: musl/build"
	else
		why=$(grep -m1 '^musl-deps: no Debian source: ' "$mlog")
		if [ -n "$why" ]; then
			echo "SKIP: musl/build: ${why#musl-deps: } (log: $mlog)"
		else
			why=$(grep '^musl-deps: ' "$mlog" | tail -n1)
			echo "FAIL: musl/build: make static-musl failed: ${why:-$(tail -n1 "$mlog")} (log: $mlog)"
		fi
	fi >"$tmp/musl.build"
}
# run_musl: the tier in its turn (its emulated host never runs beside the guests tiers' two).
run_musl() {
	local size
	[ -s "$tmp/musl.build" ] || musl_build
	cat "$tmp/musl.build"
	grep -q '^PASS: musl/build' "$tmp/musl.build" || return
	KVMBOX_PEER=$B/kvmbox-static run_guests musl "$MUSL_BIN" "${MUSL_TESTS[@]}"
	size=$(stat -c %s "$MUSL_BIN")
	if [ "$size" -le "$MUSL_LIMIT" ]; then
		echo "PASS: musl/size: $size bytes (at most $MUSL_LIMIT, 500 KiB)"
	else
		echo "FAIL: musl/size: $MUSL_BIN is $size bytes, over the 500 KiB goal ($MUSL_LIMIT; docs/PERFORMANCE.md)"
	fi
}

# The Linux tier runs a guest under KVM inside QEMU's emulation of AMD SVM (x86_64) or of
# the arm64 virtualization extensions (linux-arm64: KVMBOX_ARCH=arm64, tests/linux/arm64/).
# When the tier has failures AND the emulated host itself failed (its kernel reported a fault,
# which host-init prints as "KVMBOX-HOSTK ...", or it wedged: run.sh stopped it after printing
# nothing for KVMBOX_HOST_SILENCE seconds, or it stopped on its own before it finished: a
# kernel panic or a reset of the emulated CPU), the failed tests run once more: the
# retried run's result counts, the first run's log is kept as OUT/host-first.log,
# and each retry is counted in the closing line. kvmbox's own messages (a guest crash, a
# hang) never trigger a retry (linux_retry_set).
# run_linux ARCH OUT: the tier of ARCH (x86_64 or arm64), whose host.log is in OUT. At most
# two retry rounds, each over the previous round's failures (a test the wedged host of the
# first round never ran can meet another host fault in the second).
run_linux() {
	local arch=$1 out=$2 round
	KVMBOX_ARCH=$arch tests/linux/run.sh 2>&1 | tee "$tmp/linux.out"
	for round in first second; do
		linux_retry_set "$arch" "$out" || return 0
		cp "$out/host.log" "$out/host-$round.log"
		for t in $RETRY_SET; do
			echo "RETRY: $t: $RETRY_WHY (this run's log: $out/host-$round.log)"
		done
		# shellcheck disable=SC2086
		KVMBOX_ARCH=$arch tests/linux/run.sh $RETRY_SET 2>&1 | tee "$tmp/linux.out"
	done
}

# linux_retry_set: tests/linux/retry.sh (the scripts tier tests it on made-up runs).
# shellcheck source=tests/linux/retry.sh
source tests/linux/retry.sh

# The tally of result lines (awk; the caller adds its own END): every result line counts,
# except that a retried test counts only with its last result. Sets p, f, k, r and fails.
TALLY='BEGIN { n = 0 }
	/^RETRY: / { name = $2; sub(/:$/, "", name); retried[name] = 1; next }
	{ st[n] = $1; sub(/:$/, "", st[n]); nm[n] = $2; sub(/:$/, "", nm[n]); line[n] = $0; lastof[nm[n]] = n; n++ }
	END {
		for (i = 0; i < n; i++) {
			if ((nm[i] in retried) && lastof[nm[i]] != i)
				continue
			if (st[i] == "PASS") p++
			else if (st[i] == "FAIL") { f++; fails = fails "  " line[i] "\n" }
			else k++
		}
		r = 0; for (x in retried) r++
	}'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tiers=("$@")
((${#tiers[@]})) || tiers=(all)
[ "${tiers[*]}" = all ] && tiers=(unit unit-asan unit-tsan scripts guests guests-asan musl linux-vfio linux linux-arm64)
: >"$tmp/results"
# A tier can run beside others, started earlier; its lines and its own time are kept in files and
# printed in its turn. side_start TIER COMMAND...: start it; side_pid[TIER] is its process.
declare -A side_pid=()
side_start() {
	local tier=$1
	shift
	(
		s=$SECONDS
		"$@"
		echo $((SECONDS - s)) >"$tmp/$tier.secs"
	) >"$tmp/$tier.out" 2>&1 &
	side_pid[$tier]=$!
}
# side_or COMMAND...: the lines of $tier when it ran beside, else run COMMAND now.
side_or() {
	if [ -n "${side_pid[$tier]:-}" ]; then cat "$tmp/$tier.out"; else "$@"; fi
}
# The musl build runs from the start, beside the unit and scripts tiers (building the musl
# libraries from source waits on the network too); the tiny-guest tiers wait for it (below). Its
# tests run in the musl tier's turn, after the guests tiers' two emulated hosts.
musl_pid=
if [[ " ${tiers[*]} " == *" musl "* ]] && [ "${tiers[0]}" != musl ]; then
	musl_build &
	musl_pid=$!
fi
# The scripts tier runs beside the unit tiers when both are asked for: most of its tests wait on
# made-up timeouts (the emulated-host watchdogs' stand-ins) and its one emulated host (the
# demo) is a single thread, while the unit tiers run one binary at a time.
if [[ " ${tiers[*]} " == *" scripts "* ]] && [[ " ${tiers[*]} " == *" unit "* ]]; then
	side_start scripts run_scripts
fi
for tier in "${tiers[@]}"; do
	start=$SECONDS secs=
	: >"$tmp/tier"
	echo "== tier: $tier" | tee -a "$log"
	# The musl build (a child of this shell) must be done before the tiny-guest tiers too: their
	# two emulated hosts take both CPUs, and a compiler beside them delayed interrupts past what
	# the rtc and lapic_timer guests allow (a check with an empty musl cache, 2026-12-06: both
	# failed, rtc under ASan too).
	if [[ $tier == guests* || $tier == musl ]] && [ -n "$musl_pid" ]; then
		wait "$musl_pid"
		musl_pid=
	fi
	# The two tiny-guest tiers run side by side when both are asked for: each emulated host
	# runs on one host thread (tests/guests/emulated.sh), so together they use the two CPUs the
	# Linux tiers use one at a time. guests-asan starts with guests.
	if [ "$tier" = guests ] && [[ " ${tiers[*]} " == *" guests-asan "* ]]; then
		side_start guests-asan run_guests guests-asan "$(flavour_dir asan)/kvmbox"
	fi
	# linux-vfio's emulated host (one thread) runs beside the musl tier's tiny guests (one
	# thread), once the musl build is done.
	if [ "$tier" = musl ] && [[ " ${tiers[*]} " == *" linux-vfio "* ]]; then
		side_start linux-vfio run_vfio
	fi
	# The case below runs in a pipeline's subshell: wait here, where the side tier is a child.
	if [ -n "${side_pid[$tier]:-}" ]; then
		wait "${side_pid[$tier]}"
		secs=$(cat "$tmp/$tier.secs" 2>/dev/null)
	fi
	case $tier in
	unit) run_unit unit "$B" ;;
	unit-asan) run_unit unit-asan "$(flavour_dir asan)" ;;
	unit-tsan) TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} run_unit unit-tsan "$(flavour_dir tsan)" ;;
	scripts) side_or run_scripts ;;
	guests) run_guests guests "$B/kvmbox" ;;
	guests-asan) side_or run_guests guests-asan "$(flavour_dir asan)/kvmbox" ;;
	musl) run_musl ;;
	linux) run_linux x86_64 build/linux ;;
	linux-arm64) run_linux arm64 build/arm64/linux ;;
	linux-vfio) side_or run_vfio ;;
	*) echo "FAIL: check.sh: unknown tier $tier (unit unit-asan unit-tsan scripts guests guests-asan musl linux linux-arm64 linux-vfio)" ;;
	esac 2>&1 | tee -a "$log" "$tmp/tier"
	grep -a -E '^(PASS|FAIL|SKIP|RETRY): ' "$tmp/tier" | tee -a "$tmp/results" | awk -v tier="$tier" -v s="${secs:-$((SECONDS - start))}" "$TALLY"'
		END { printf "== tier %s: %d passed, %d failed, %d skipped in %dm%02ds\n", tier, p, f, k, s / 60, s % 60 }' |
		tee -a "$log"
done

awk "$TALLY"'
	END {
		if (f) printf "failed tests:\n%s", fails
		printf "%d passed, %d failed, %d skipped, %d retried\n", p, f, k, r
		exit !(f == 0 && p > 0)
	}' "$tmp/results" >"$tmp/summary"
rc=$?
tee -a "$log" <"$tmp/summary"
exit $rc
