#!/usr/bin/env bash
# tests/check.sh [all|unit|guests|linux] - run test tiers and tally them.
# Every tier prints one line per test: "PASS: name", "FAIL: name: why" or
# "SKIP: name: why". The last line is "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
tiers=${1:-all}
[ "$tiers" = all ] && tiers="unit guests linux"
log=build/check.log
mkdir -p build
: >"$log"

run_unit() {
	local t out rc
	for t in build/tests/test_*; do
		[ -x "$t" ] || continue
		out=$(CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 "$t" 2>&1)
		rc=$?
		printf '%s\n' "$out" >>"$log"
		# TAP: "ok 3 - name" / "not ok 3 - name"
		printf '%s\n' "$out" | sed -n \
			-e "s|^ok [0-9]* - \(.*\)$|PASS: unit/${t##*/}/\1|p" \
			-e "s|^not ok [0-9]* - \(.*\)$|FAIL: unit/${t##*/}/\1: see $log|p"
		if ! printf '%s\n' "$out" | grep -q '^1\.\.[0-9]'; then
			echo "FAIL: unit/${t##*/}: exited $rc without a test plan (crash?): see $log"
		elif [ "$rc" -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok'; then
			echo "FAIL: unit/${t##*/}: exited $rc: see $log"
		fi
	done
}

# The Linux tier runs a guest under KVM inside QEMU's emulation of AMD SVM.
# That nested set-up occasionally wedges (soft lockups in the emulated host)
# or triple-faults a guest that was just running normally (seen ~1 run in 5
# in the lifecycle scenarios). When the tier fails AND the emulated host's log
# shows one of those signatures, the failed tests run once more and their
# second result counts; the first log is kept as build/linux/host-first.log
# and every retried test is listed. A test that fails twice still fails.
run_linux() {
	local out failed
	out=$(tests/linux/run.sh 2>&1)
	failed=$(printf '%s\n' "$out" | sed -n 's/^FAIL: \([^: ]*\).*/\1/p' | sort -u)
	if [ -z "$failed" ] || ! grep -qa -e 'guest crashed on vCPU' -e 'soft lockup' build/linux/host.log; then
		printf '%s\n' "$out"
		return
	fi
	cp build/linux/host.log build/linux/host-first.log
	printf '%s\n' "$out" | sed 's/^FAIL: /RETRY (nested-virtualisation crash in the first run, see build\/linux\/host-first.log): /'
	# shellcheck disable=SC2086
	tests/linux/run.sh $failed 2>&1
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for tier in $tiers; do
	echo "== tier: $tier" | tee -a "$log"
	case $tier in
	unit) run_unit ;;
	guests) tests/guests/run.sh ;;
	linux) run_linux ;;
	*) echo "FAIL: check.sh: unknown tier $tier" ;;
	esac 2>&1 | tee -a "$results"
done
pass=$(grep -c '^PASS: ' "$results")
fail=$(grep -c '^FAIL: ' "$results")
skip=$(grep -c '^SKIP: ' "$results")
if [ "$fail" -gt 0 ]; then
	echo "failed tests:"
	grep '^FAIL: ' "$results" | sed 's/^/  /'
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
