#!/bin/bash
# tests/fuzz/smoke.sh TARGET... - `make fuzz-smoke`: run each libFuzzer harness for FUZZ_SECONDS
# (default 30) on a copy of its committed corpus (tests/fuzz/corpus/<target>), one after the
# other, and fail when any of them finds a crash, a leak, a hang (over 10 s for one input) or
# runs out of memory. Prints one line per target with libFuzzer's final figures (executions per
# second, coverage: the `cov:` edges of its DONE line); its whole output is in
# $FUZZ_B/logs/<target>.log, a crashing input in $FUZZ_B/findings/ (DEVELOPERS.md says what to
# do with one).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${FUZZ_B:-build/fuzz}
S=${FUZZ_SECONDS:-30}
failed=0

mkdir -p "$B/logs" "$B/findings" "$B/work"
for t in "$@"; do
	work=$B/work/$t
	log=$B/logs/$t.log
	rm -rf "$work"
	mkdir -p "$work"
	cp tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
	# -close_fd_mask=2: the code under test prints its refusals on stderr; libFuzzer's and the
	# sanitizers' reports still go to the log.
	"$B/fuzz_$t" -max_total_time="$S" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2 \
		-print_final_stats=1 -artifact_prefix="$B/findings/$t-" "$work" >"$log" 2>&1
	rc=$?
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	eps=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$done_line")
	runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$done_line")
	if ((rc != 0)) || [ -z "$done_line" ]; then
		echo "FAIL: fuzz_$t (status $rc): $(grep -m1 -E 'ERROR|SUMMARY|Sanitizer|runtime error|check failed' "$log")"
		echo "  log: $log; input: $(ls -t "$B/findings/$t-"* 2>/dev/null | head -n1)"
		failed=1
	else
		echo "PASS: fuzz_$t: ${S}s, $runs runs, $eps exec/s, cov $cov edges"
	fi
done
exit $failed
