# tests/guests/lifecycle.sh - sourced by tests/guests/run.sh (whose table lists them): the
# VM lifecycle tests through the control socket (docs/API.md): snapshot and restore, corrupt
# snapshots, hibernate, pause/resume, live migration (good and failing), the socket protocol
# and ACPI shutdown. They use run.sh's helpers (bg_start, wait_out, bg_wait, bg_kill, grows,
# stays_same, complete_lines, last_tick, pass/fail) and its globals (KVMBOX, KVMBOX_PEER, TOOLS,
# WORK, LOGS, CUR, G, PID, OUT, ERR, RC).

# lc_kill PID...: kill -9 and reap background kvmbox runs (after a failure).
lc_kill() {
	local p
	for p in "$@"; do
		[ -n "$p" ] || continue
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# lc_ctl SOCK WORDS...: `kvmbox ctl` with a time limit; sets CTL (stdout and stderr) and
# CTL_RC. The output is also kept in $LOGS/$CUR.ctl.err (for sanitizer reports).
lc_ctl() {
	local sock=$1
	shift
	CTL=$("$TOOLS/deadline" -k 2 40 "$KVMBOX" ctl --timeout 30 "$sock" "$@" 2>&1)
	CTL_RC=$?
	printf '%s\n' "$CTL" >>"$LOGS/$CUR.ctl.err"
}

# lc_ctl_ok WHAT SOCK WORDS...: lc_ctl that must succeed; else sets WHY.
lc_ctl_ok() {
	local what=$1
	shift
	lc_ctl "$@"
	[ "$CTL_RC" = 0 ] && return 0
	WHY="$what: kvmbox ctl status $CTL_RC: $(echo "$CTL" | tr '\n' ' ' | tr -s ' ' | cut -c1-200)"
	return 1
}

# lc_state SOCK: the "state" member of `info` (empty when it did not answer).
lc_state() {
	lc_ctl "$1" info
	echo "$CTL" | sed -n 's/^ *"state": *"\([a-z]*\)".*/\1/p' | head -n1
}

# lc_bg TEST [kvmbox args...]: like bg_start, for any kvmbox command line
# (restore, run --incoming); sets PID, OUT, ERR. lc_bg_bin BIN TEST [args...]: the same with
# the kvmbox binary BIN.
lc_bg() { lc_bg_bin "$KVMBOX" "$@"; }
lc_bg_bin() {
	local bin=$1 t=$2
	shift 2
	OUT=$LOGS/$t.out
	ERR=$LOGS/$t.err
	: >"$OUT"
	: >"$ERR"
	$DEFSIG "$bin" "$@" </dev/null >"$OUT" 2>"$ERR" &
	PID=$!
	BG_PIDS="$BG_PIDS $PID"
}

# lc_vm [args...]: VM=(...), the run options bg_start gives the guest G, then args: what a
# restore or a migration destination of it gives again (host resources are never taken from
# the snapshot or the source; their sizes and devices must match).
lc_vm() {
	VM=(--kernel "$GUESTS/$G.elf" --memory 64M --console serial "$@")
}

# lc_ticks FILE: the numbers of the complete "idle: tick N" lines in FILE.
lc_ticks() {
	complete_lines "$1" | sed -n 's/^idle: tick \([0-9][0-9]*\)$/\1/p'
}
lc_first_tick() { lc_ticks "$1" | head -n1; }

# lc_passes FILE: the "N S" of the complete "pass N sum S" lines of the dirtier.
lc_passes() {
	complete_lines "$1" | sed -n 's/^pass \([0-9][0-9]*\) sum \([0-9a-f][0-9a-f]*\)$/\1 \2/p'
}

# lc_wait_err TEXT SECONDS: until ERR has a line containing TEXT (PID must live).
lc_wait_err() {
	local n=$(($2 * 20))
	while [ "$n" -gt 0 ]; do
		grep -qa -- "$1" "$ERR" && return 0
		alive "$PID" || { WHY="kvmbox exited before printing '$1': $(tail -n1 "$ERR" | cut -c1-150)"; return 1; }
		sleep 0.05
		n=$((n - 1))
	done
	WHY="no '$1' on stderr within $2s"
	return 1
}

# lc_term: SIGTERM the background kvmbox (PID); it must stop with 143 within 5 s.
lc_term() {
	kill -TERM "$PID" 2>/dev/null
	bg_wait 5 || { WHY="still running 5s after SIGTERM"; return 1; }
	[ "$RC" = 143 ] || { WHY="status $RC after SIGTERM, expected 143"; return 1; }
	return 0
}

# lc_rss PID: resident set size in KiB (0 when gone).
lc_rss() {
	local r
	r=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null)
	echo "${r:-0}"
}

# lc_rss_own PID: resident KiB outside the guest's RAM (the anonymous mapping of the VM's
# 64 MiB): what kvmbox itself holds. The guest RAM's share is left out: with THP a guest page
# it touches can bring in a whole 2 MiB page, so two processes running the same guest differ
# by megabytes (seen in CI: +2140 KiB between two migration destinations).
lc_rss_own() {
	awk -v ram="${LC_GUEST_KIB:-65536}" '
		/^[0-9a-f]+-[0-9a-f]+ / { size = -1; next }
		/^Size:/ { size = $2; next }
		/^Rss:/ && size != ram { t += $2 }
		END { print t + 0 }' "/proc/$1/smaps" 2>/dev/null || echo 0
}

# lc_free_port: a TCP port on 127.0.0.1 that nothing listens on (now; tools/freeport.c).
lc_free_port() {
	"$TOOLS/freeport"
}

# lc_key FILE: a new random key file (--migration-key, --snapshot-key), mode 600.
lc_key() {
	head -c 32 /dev/urandom >"$1" && chmod 600 "$1" && [ "$(stat -c %s "$1")" = 32 ]
}

# lc_snapshot_vm TEST FILE [ARGS...]: boot idle with --api (and ARGS), snapshot it to FILE
# after tick 3, check that it keeps running, kill -9 it. Sets BEFORE and LAST (the last
# complete tick printed before the request and by the time the reply came) and
# SNAP_REPLY; else WHY.
lc_snapshot_vm() {
	local t=$1 file=$2 sock=$WORK/$1.sock
	shift 2
	bg_start "$t" --api "$sock" "$@"
	wait_out "idle: tick 3$" 20 || { bg_kill; return 1; }
	BEFORE=$(last_tick "$OUT")
	lc_ctl_ok snapshot "$sock" snapshot "$file" || { bg_kill; return 1; }
	LAST=$(last_tick "$OUT")
	SNAP_REPLY=$CTL
	if ! echo "$CTL" | grep -q '"pause_ms"'; then
		bg_kill
		WHY="snapshot reply has no pause_ms: $(echo "$CTL" | tr -d '\n ' | cut -c1-150)"
		return 1
	fi
	if ! wait_out "idle: tick $((LAST + 2))$" 5; then
		bg_kill
		WHY="the VM stopped ticking after the snapshot (last tick $LAST): $WHY"
		return 1
	fi
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	[ -s "$file" ] || { WHY="no snapshot file $file"; return 1; }
	return 0
}

# lc_expect_continue T LO HI: the background kvmbox (PID/OUT) must print a first
# complete tick line in LO..HI and then keep ticking. Sets FIRST; else WHY.
lc_expect_continue() {
	local t=$1 lo=$2 hi=$3
	wait_out "idle: tick [0-9][0-9]*$" 15 || return 1
	FIRST=$(lc_first_tick "$OUT")
	if [ -z "$FIRST" ] || [ "$FIRST" -lt "$lo" ] || [ "$FIRST" -gt "$hi" ]; then
		WHY="first tick ${FIRST:-none}, expected $lo..$hi (counter did not continue)"
		return 1
	fi
	wait_out "idle: tick $((FIRST + 3))$" 5 || { WHY="no tick $((FIRST + 3)) after tick $FIRST: $WHY"; return 1; }
	return 0
}

# ---- snapshot / restore ----

# t_snap_restore TEST [--copy]: snapshot a running idle guest, kill -9 it,
# restore: the tick counter continues from the snapshot, never from 0.
t_snap_restore() {
	local t=$1 copy=${2:-} file=$WORK/$1.snap
	lc_snapshot_vm "$t.src" "$file" || { fail "$t" "$WHY"; return; }
	lc_vm
	lc_bg_bin "$KVMBOX_PEER" "$t" restore "$file" "${VM[@]}" $copy --api "$WORK/$t.rsock"
	# The VM was paused for its state somewhere between the ticks seen before the request and
	# at the reply: the guest ticks on while the client starts and connects (9 ticks once,
	# under ASan in the emulated host).
	lc_expect_continue "$t" $((BEFORE - 1)) $((LAST + 1)) || { bg_kill; fail "$t" "after restore (snapshot between ticks $BEFORE and $LAST): $WHY"; return; }
	[ "$(lc_state "$WORK/$t.rsock")" = running ] ||
		{ bg_kill; fail "$t" "restored VM's info: $(echo "$CTL" | tr -d '\n' | cut -c1-150)"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# lc_corrupt_case T NAME FILE KIND [ARGS...]: restore of FILE (with ARGS) must fail with
# status 1 and one "kvmbox: snapshot FILE: ..." line mentioning KIND (a regex), nothing on
# stdout.
lc_corrupt_case() {
	local t=$1 name=$2 file=$3 kind=$4 rc lines first
	shift 4
	lc_vm
	"$TOOLS/deadline" -k 2 20 "$KVMBOX_PEER" restore "$file" "${VM[@]}" "$@" </dev/null >"$LOGS/$t.$name.out" 2>"$LOGS/$t.$name.err"
	rc=$?
	first=$(head -n1 "$LOGS/$t.$name.err")
	lines=$(wc -l <"$LOGS/$t.$name.err")
	[ "$rc" = 1 ] || { WHY="$name: status $rc, expected 1 (stderr: $(echo "$first" | cut -c1-120))"; return 1; }
	[ "$lines" = 1 ] || { WHY="$name: $lines lines on stderr, expected 1"; return 1; }
	case $first in
	"kvmbox: snapshot $file: "*) ;;
	*) WHY="$name: stderr is not 'kvmbox: snapshot $file: ...': $(echo "$first" | cut -c1-150)"; return 1 ;;
	esac
	echo "$first" | grep -qE "$kind" || { WHY="$name: message does not say '$kind': $first"; return 1; }
	[ -s "$LOGS/$t.$name.out" ] && { WHY="$name: the guest ran (output on stdout)"; return 1; }
	return 0
}

# lc_flip FILE OFFSET: xor the byte at OFFSET with 0x55 (tools/bytes.c).
lc_flip() {
	"$TOOLS/bytes" flip "$1" "$2"
}

t_snap_corrupt() {
	local t=$1 file=$WORK/$1.snap c size ram k
	lc_snapshot_vm "$t.src" "$file" || { fail "$t" "$WHY"; return; }
	size=$(stat -c %s "$file")
	# A page of the RAM image (it starts after the 4 KiB header) holding non-zero bytes: one of
	# the loaded guest (>= 1 MiB, not the real-mode area), before the metadata near the end.
	ram=$("$TOOLS/bytes" nonzero-page "$file" $((4096 + (1 << 20))) $((size - 65536))) ||
		{ fail "$t" "no non-zero RAM page in the snapshot"; return; }
	c=$WORK/$t.c
	# The pristine file restores (the control case).
	lc_vm
	lc_bg_bin "$KVMBOX_PEER" "$t.good" restore "$file" "${VM[@]}"
	wait_out "idle: tick" 15 || { bg_kill; fail "$t" "the unmodified snapshot does not restore: $WHY"; return; }
	bg_kill
	head -c $((size / 2)) "$file" >"$c.trunc_half"
	head -c $((size - 1)) "$file" >"$c.trunc_end"
	head -c 2048 "$file" >"$c.trunc_header"
	for k in ram meta_end header hole; do
		cp "$file" "$c.$k" || { fail "$t" "cannot copy the snapshot"; return; }
	done
	lc_flip "$c.ram" $((ram + 123)) &&
		lc_flip "$c.meta_end" $((size - 100)) &&
		lc_flip "$c.header" 20 &&
		lc_flip "$c.hole" $((4096 + 40 * 1048576 + 8)) ||   # a zero page at 40 MiB
		{ fail "$t" "cannot modify the copies of the snapshot"; return; }
	for k in trunc_half trunc_end trunc_header; do
		lc_corrupt_case "$t" "$k" "$c.$k" "truncated|corrupt" || { fail "$t" "$WHY"; return; }
	done
	for k in ram meta_end header hole; do
		lc_corrupt_case "$t" "$k" "$c.$k" "corrupt" || { fail "$t" "$WHY"; return; }
	done
	# Files that are no snapshot at all.
	echo "this is not a snapshot" >"$c.text"
	: >"$c.empty"
	for k in text empty; do
		lc_corrupt_case "$t" "$k" "$c.$k" "." || { fail "$t" "$WHY"; return; }
	done
	pass "$t"
}

# t_snap_key: a VM with --snapshot-key writes a signed snapshot. Restore refuses it without
# the key, with another key, with a byte of RAM changed or a zero page made non-zero, and a
# key file others can read; with the key it restores and the counter continues. (A stripped
# MAC flag with the checksums made right again: tests/unit/test_snapshot.c.)
t_snap_key() {
	local t=$1 file=$WORK/$1.snap key=$WORK/$1.key other=$WORK/$1.other c size ram k first
	lc_key "$key" && lc_key "$other" || { fail "$t" "cannot make key files"; return; }
	lc_snapshot_vm "$t.src" "$file" --snapshot-key "$key" || { fail "$t" "$WHY"; return; }
	size=$(stat -c %s "$file")
	ram=$("$TOOLS/bytes" nonzero-page "$file" $((4096 + (1 << 20))) $((size - 65536))) ||
		{ fail "$t" "no non-zero RAM page in the snapshot"; return; }
	c=$WORK/$t.c
	for k in ram hole; do
		cp "$file" "$c.$k" || { fail "$t" "cannot copy the snapshot"; return; }
	done
	lc_flip "$c.ram" $((ram + 123)) &&
		lc_flip "$c.hole" $((4096 + 40 * 1048576 + 8)) ||
		{ fail "$t" "cannot modify the copies of the snapshot"; return; }
	lc_corrupt_case "$t" nokey "$file" "signed.*give the key with --snapshot-key" || { fail "$t" "$WHY"; return; }
	lc_corrupt_case "$t" otherkey "$file" "MAC mismatch" --snapshot-key "$other" || { fail "$t" "$WHY"; return; }
	for k in ram hole; do
		lc_corrupt_case "$t" "$k" "$c.$k" "MAC mismatch" --snapshot-key "$key" || { fail "$t" "$WHY"; return; }
	done
	# A key file others can read is refused before the snapshot is opened.
	chmod 644 "$other"
	lc_vm
	"$TOOLS/deadline" -k 2 20 "$KVMBOX_PEER" restore "$file" "${VM[@]}" --snapshot-key "$other" </dev/null >/dev/null 2>"$LOGS/$t.mode.err"
	k=$?
	first=$(head -n1 "$LOGS/$t.mode.err")
	[ "$k" = 1 ] && [ "$(wc -l <"$LOGS/$t.mode.err")" = 1 ] && echo "$first" | grep -q "chmod 600" ||
		{ fail "$t" "a key file of mode 644: status $k, '$(echo "$first" | cut -c1-150)'"; return; }
	# With the key: restored, the counter continues.
	lc_bg_bin "$KVMBOX_PEER" "$t" restore "$file" "${VM[@]}" --snapshot-key "$key" --api "$WORK/$t.rsock"
	lc_expect_continue "$t" $((BEFORE - 1)) $((LAST + 1)) || { bg_kill; fail "$t" "after restore with the key: $WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# t_hibernate: ctl hibernate → reply, kvmbox exits 0, socket gone; restore in a
# fresh process continues the counter.
t_hibernate() {
	local t=$1 file=$WORK/$1.snap sock=$WORK/$1.sock last
	bg_start "$t.src" --api "$sock"
	wait_out "idle: tick 3$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_ctl_ok hibernate "$sock" hibernate "$file" || { bg_kill; fail "$t" "$WHY"; return; }
	bg_wait 10 || { fail "$t" "kvmbox still running 10s after the hibernate reply"; return; }
	[ "$RC" = 0 ] || { fail "$t" "status $RC after hibernate, expected 0"; return; }
	[ -e "$sock" ] && { fail "$t" "control socket $sock left behind"; return; }
	last=$(last_tick "$OUT")
	lc_vm
	lc_bg_bin "$KVMBOX_PEER" "$t" restore "$file" "${VM[@]}"
	lc_expect_continue "$t" $((last + 1)) $((last + 2)) ||
		{ bg_kill; fail "$t" "after restore (last tick before hibernate $last): $WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# t_pause_resume: pause → no output for 2 s and info "paused"; resume → ticks.
# The pause reply comes once every vCPU is parked, and the serial console writes
# synchronously from the vCPU threads: from the reply on, the output cannot grow.
t_pause_resume() {
	local t=$1 sock=$WORK/$1.sock st
	bg_start "$t" --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_ctl_ok pause "$sock" pause || { bg_kill; fail "$t" "$WHY"; return; }
	stays_same "$OUT" 2 || { bg_kill; fail "$t" "$WHY while paused"; return; }
	st=$(lc_state "$sock")
	[ "$st" = paused ] || { bg_kill; fail "$t" "info state '$st' while paused, expected paused"; return; }
	lc_ctl_ok "pause again" "$sock" pause || { bg_kill; fail "$t" "$WHY"; return; }
	lc_ctl_ok resume "$sock" resume || { bg_kill; fail "$t" "$WHY"; return; }
	grows "$OUT" 3 || { bg_kill; fail "$t" "no guest output within 3s of resume"; return; }
	st=$(lc_state "$sock")
	[ "$st" = running ] || { bg_kill; fail "$t" "info state '$st' after resume, expected running"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# ---- live migration ----

# lc_dest T URI [args...]: start a destination (run --incoming URI --api, the guest's run
# options as bg_start gives them, then args) with KVMBOX_PEER and wait until it listens. Sets
# DPID, DOUT, DERR, DSOCK. (Every restore runs KVMBOX_PEER too.)
lc_dest() {
	local t=$1 uri=$2
	shift 2
	DSOCK=$WORK/$t.dsock
	lc_vm "$@"
	lc_bg_bin "$KVMBOX_PEER" "$t.dst" run "${VM[@]}" --incoming "$uri" --api "$DSOCK"
	DPID=$PID DOUT=$OUT DERR=$ERR
	lc_wait_err "waiting for a migration" 10
}

# t_migrate_ok TEST unix|tcp: migrate idle; the source exits 0, the
# destination continues the counter and answers info. Over tcp, both sides have a
# --migration-key (the stream is encrypted).
t_migrate_ok() {
	local t=$1 how=$2 uri sock=$WORK/$1.sock spid sout last k port keys=()
	if [ "$how" = tcp ]; then
		port=$(lc_free_port) || { fail "$t" "cannot pick a free port"; return; }
		uri=tcp:127.0.0.1:$port
		lc_key "$WORK/$t.key" || { fail "$t" "cannot make a key file"; return; }
		keys=(--migration-key "$WORK/$t.key")
	else
		uri=unix:$WORK/$t.mig
	fi
	bg_start "$t.src" --api "$sock" "${keys[@]}"
	spid=$PID sout=$OUT
	wait_out "idle: tick 3$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_dest "$t" "$uri" "${keys[@]}" || { lc_kill "$spid" "$DPID"; fail "$t" "destination: $WHY"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src.err
	lc_ctl "$sock" migrate "$uri"
	echo "$CTL" >"$LOGS/$t.reply"
	if [ "$CTL_RC" != 0 ]; then
		lc_kill "$spid" "$DPID"
		fail "$t" "migrate: ctl status $CTL_RC: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-200)"
		return
	fi
	for k in rounds bytes total_ms downtime_ms; do
		echo "$CTL" | grep -q "\"$k\": *[0-9]" ||
			{ lc_kill "$spid" "$DPID"; fail "$t" "migrate reply has no $k"; return; }
	done
	bg_wait 10 || { lc_kill "$DPID"; fail "$t" "source still running 10s after migrating"; return; }
	[ "$RC" = 0 ] || { lc_kill "$DPID"; fail "$t" "source status $RC after migrating, expected 0"; return; }
	last=$(last_tick "$sout")
	PID=$DPID OUT=$DOUT ERR=$DERR
	lc_expect_continue "$t" $((last + 1)) $((last + 2)) ||
		{ bg_kill; fail "$t" "destination (source's last tick $last): $WHY"; return; }
	[ "$(lc_state "$DSOCK")" = running ] ||
		{ bg_kill; fail "$t" "destination info: $(echo "$CTL" | tr -d '\n' | cut -c1-150)"; return; }
	lc_term || { fail "$t" "destination: $WHY"; return; }
	pass "$t"
}

# lc_check_passes FILE FROM: the dirtier's pass lines in FILE must be consecutive,
# start at FROM or FROM+1 (FROM empty: any), carry the right sums (tools/passcheck.c),
# and no MISMATCH. Sets NPASS and LASTPASS; else WHY.
lc_check_passes() {
	local f=$1 from=${2:-} r
	if tr -d '\r' <"$f" | grep -qa 'MISMATCH'; then
		WHY="guest saw memory it did not write: $(tr -d '\r' <"$f" | grep -a -m1 MISMATCH | cut -c1-150)"
		return 1
	fi
	r=$(lc_passes "$f" | "$TOOLS/passcheck" "${DIRTIER_PAGES:-2048}" "$from" 2>&1)
	case $r in
	"OK "*) set -- $r; NPASS=$2 LASTPASS=$3; return 0 ;;
	"ERR "*) WHY=${r#ERR }; return 1 ;;
	*) WHY="passcheck: $r"; return 1 ;;
	esac
}

# t_migrate_dirty: the dirtier (8 MiB rewritten ~20 times a second) migrated
# mid-run: every pass on both sides checks what the previous one wrote, so a
# dirty page not re-sent shows up as MISMATCH on the destination.
t_migrate_dirty() {
	local t=$1 uri=unix:$WORK/$1.mig sock=$WORK/$1.sock spid sout last from
	bg_start "$t.src" --cpus 1 --api "$sock"
	spid=$PID sout=$OUT
	wait_out "pass 5 " 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_dest "$t" "$uri" || { lc_kill "$spid" "$DPID"; fail "$t" "destination: $WHY"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src.err
	lc_ctl "$sock" migrate "$uri"
	echo "$CTL" >"$LOGS/$t.reply"
	if [ "$CTL_RC" != 0 ]; then
		lc_kill "$spid" "$DPID"
		fail "$t" "migrate: ctl status $CTL_RC: $(echo "$CTL" | tr -d '\n' | tr -s ' ' | cut -c1-200)"
		return
	fi
	bg_wait 10 || { lc_kill "$DPID"; fail "$t" "source still running 10s after migrating"; return; }
	[ "$RC" = 0 ] || { lc_kill "$DPID"; fail "$t" "source status $RC after migrating, expected 0"; return; }
	lc_check_passes "$sout" || { lc_kill "$DPID"; fail "$t" "source: $WHY"; return; }
	last=$LASTPASS
	PID=$DPID OUT=$DOUT ERR=$DERR
	wait_out "pass $((last + 10)) " 20 ||
		{ bg_kill; fail "$t" "destination did not reach pass $((last + 10)) (source's last: $last): $WHY"; return; }
	# A pass line the source had half printed when it paused is finished by
	# the destination, so that pass shows up complete on neither side. Any
	# unfinished last line is one: after "ready" the dirtier prints only pass
	# lines, and the part printed may be shorter than "pass " (it was "pa" once).
	from=$last
	[ -n "$(tail -c1 "$sout")" ] && from=$((last + 1))
	lc_check_passes "$DOUT" "$from" || { bg_kill; fail "$t" "destination: $WHY"; return; }
	lc_term || { fail "$t" "destination: $WHY"; return; }
	pass "$t"
}

# lc_source_survives T SOCK: after a failed migration, the source (PID/OUT) still
# runs, answers info "running" and its guest makes progress. Else WHY.
lc_source_survives() {
	local st
	alive "$PID" || { wait "$PID"; WHY="the source exited (status $?)"; return 1; }
	st=$(lc_state "$2")
	[ "$st" = running ] || { WHY="source info state '$st', expected running"; return 1; }
	grows "$OUT" 5 || { WHY="the source guest made no progress for 5s"; return 1; }
	return 0
}

# t_migrate_fail_closed_port: migrate to a port nobody listens on (and to a
# missing unix socket, and a malformed URI): error reply, ctl status 1, the
# source keeps running.
t_migrate_fail_closed_port() {
	local t=$1 sock=$WORK/$1.sock port uri
	port=$(lc_free_port) || { fail "$t" "cannot pick a free port"; return; }
	bg_start "$t" --api "$sock" --insecure-migration
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	for uri in "tcp:127.0.0.1:$port" "unix:$WORK/$t.nothing" "nonsense:1"; do
		lc_ctl "$sock" migrate "$uri"
		if [ "$CTL_RC" != 1 ] || ! echo "$CTL" | grep -q '"error"'; then
			bg_kill
			fail "$t" "migrate $uri: ctl status $CTL_RC, expected 1 with an error reply"
			return
		fi
		lc_source_survives "$t" "$sock" || { bg_kill; fail "$t" "after migrate $uri: $WHY"; return; }
	done
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# t_migrate_key_refused: over tcp, a source without a key (nor --insecure-migration) is
# refused at once, and so is a destination at its start; a source and a destination with
# different keys: the destination refuses the source with one line and exits 1, the source's
# migrate fails and it runs on.
t_migrate_key_refused() {
	local t=$1 sock=$WORK/$1.sock port uri spid sout
	port=$(lc_free_port) || { fail "$t" "cannot pick a free port"; return; }
	uri=tcp:127.0.0.1:$port
	lc_key "$WORK/$t.key" && lc_key "$WORK/$t.other" || { fail "$t" "cannot make key files"; return; }
	lc_vm
	"$TOOLS/deadline" -k 2 20 "$KVMBOX_PEER" run "${VM[@]}" --incoming "$uri" </dev/null >/dev/null 2>"$LOGS/$t.nokey.err"
	RC=$?
	[ "$RC" = 1 ] && [ "$(wc -l <"$LOGS/$t.nokey.err")" = 1 ] &&
		grep -q -- "--migration-key FILE.*--insecure-migration" "$LOGS/$t.nokey.err" ||
		{ fail "$t" "run --incoming $uri without a key: status $RC, '$(head -n1 "$LOGS/$t.nokey.err" | cut -c1-150)'"; return; }
	bg_start "$t.src" --api "$sock"
	spid=$PID sout=$OUT
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_ctl "$sock" migrate "$uri"
	[ "$CTL_RC" = 1 ] && echo "$CTL" | grep -q -- "--migration-key" ||
		{ bg_kill; fail "$t" "migrate $uri without a key: ctl status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-150)"; return; }
	lc_source_survives "$t" "$sock" || { bg_kill; fail "$t" "after migrate without a key: $WHY"; return; }
	kill -KILL "$spid"
	wait "$spid" 2>/dev/null
	# Different keys.
	bg_start "$t.src2" --api "$sock" --migration-key "$WORK/$t.key"
	spid=$PID sout=$OUT
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_dest "$t" "$uri" --migration-key "$WORK/$t.other" || { lc_kill "$spid" "$DPID"; fail "$t" "destination: $WHY"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src2.err
	lc_ctl "$sock" migrate "$uri"
	if [ "$CTL_RC" != 1 ] || ! echo "$CTL" | grep -q -- "--migration-key"; then
		lc_kill "$spid" "$DPID"
		fail "$t" "migrate with another key: ctl status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-150)"
		return
	fi
	lc_source_survives "$t" "$sock" || { lc_kill "$DPID"; bg_kill; fail "$t" "after migrate with another key: $WHY"; return; }
	PID=$DPID OUT=$DOUT ERR=$DERR
	bg_wait 10 || { lc_kill "$spid"; fail "$t" "the destination still runs 10s after refusing the source"; return; }
	[ "$RC" = 1 ] && grep -q "did not authenticate" "$DERR" ||
		{ lc_kill "$spid"; fail "$t" "destination: status $RC, '$(grep -a kvmbox: "$DERR" | tail -n1 | cut -c1-150)'"; return; }
	[ -s "$DOUT" ] && { lc_kill "$spid"; fail "$t" "the destination ran the guest"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src2.err
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# lc_mid_receive T URI SOCK TRIES: a 1 GiB dirtier (256 MiB in use) as the source (control
# socket SOCK), a destination on URI, and `migrate` running in the background (its status and
# reply in $LOGS/T.rc and T.reply), until the destination has stored 16 MiB of guest RAM (its
# RSS grew) or TRIES polls of 10 ms passed. Sets SPID, SOUT, CPID, DPID...; else WHY (and
# nothing is left running).
lc_mid_receive() {
	local t=$1 uri=$2 sock=$3 tries=$4 n rss rss0
	bg_start "$t.src" --cpus 1 --memory 1G --append "mb=256" --api "$sock"
	SPID=$PID SOUT=$OUT
	wait_out "pass 1 " 30 || { bg_kill; return 1; }
	lc_dest "$t" "$uri" --memory 1G || { lc_kill "$SPID" "$DPID"; WHY="destination: $WHY"; return 1; }
	(lc_ctl "$sock" migrate "$uri"; echo "$CTL_RC" >"$LOGS/$t.rc"; echo "$CTL" >"$LOGS/$t.reply") &
	CPID=$!
	rss0=$(lc_rss "$DPID")
	for n in $(seq "$tries"); do
		rss=$(lc_rss "$DPID")
		[ $((rss - rss0)) -gt 16384 ] && break
		sleep 0.01
	done
	return 0
}

# t_migrate_fail_dest_killed: the destination is killed (-9) once it has read 16 MiB
# of the stream of a 1 GiB dirtier (256 MiB in use), or after 5 s: error reply, the
# source keeps running with its memory intact (the dirtier's own checks).
t_migrate_fail_dest_killed() {
	local t=$1 uri=unix:$WORK/$1.mig sock=$WORK/$1.sock spid sout cpid n rss rss0 l
	lc_mid_receive "$t" "$uri" "$sock" 500 || { fail "$t" "$WHY"; return; }
	spid=$SPID sout=$SOUT cpid=$CPID
	kill -KILL "$DPID"
	wait "$DPID" 2>/dev/null
	wait "$cpid"
	PID=$spid OUT=$sout ERR=$LOGS/$t.src.err
	if [ "$(cat "$LOGS/$t.rc")" != 1 ]; then
		bg_kill
		fail "$t" "migrate with the destination killed (its RSS grew $(((rss - rss0) / 1024)) MiB):\
 ctl status $(cat "$LOGS/$t.rc"), expected 1: $(tr -d '\n' <"$LOGS/$t.reply" | tr -s ' ' | cut -c1-150)"
		return
	fi
	lc_source_survives "$t" "$sock" || { bg_kill; fail "$t" "$WHY"; return; }
	# Two more passes: the source's memory still holds what it wrote.
	l=$(lc_passes "$sout" | tail -n1 | cut -d' ' -f1)
	wait_out "pass $((l + 2)) " 30 || { bg_kill; fail "$t" "source: $WHY"; return; }
	DIRTIER_PAGES=65536 lc_check_passes "$sout" || { bg_kill; fail "$t" "source: $WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# t_migrate_fail_dest_closes: a fake destination (tools/apiclient.c) reads 50000 bytes
# (mid-stream: the idle guest's stream is ~100 KB) and closes: error reply, source runs on.
t_migrate_fail_dest_closes() {
	local t=$1 sock=$WORK/$1.sock mig=$WORK/$1.mig fpid n fake
	bg_start "$t" --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	"$TOOLS/deadline" 40 "$TOOLS/apiclient" fake-dest "$mig" 50000 >"$LOGS/$t.fake" 2>&1 &
	fpid=$!
	for ((n = 0; n < 200; n++)); do
		[ -S "$mig" ] && break
		sleep 0.05
	done
	if [ ! -S "$mig" ]; then
		kill "$fpid" 2>/dev/null
		wait "$fpid"
		bg_kill
		fail "$t" "the fake destination did not listen within 10s: $(head -n1 "$LOGS/$t.fake")"
		return
	fi
	lc_ctl "$sock" migrate "unix:$mig"
	wait "$fpid"
	fake=$(tail -n1 "$LOGS/$t.fake")
	if [ "$CTL_RC" != 1 ]; then
		bg_kill
		fail "$t" "ctl status $CTL_RC, expected 1 (fake destination: $fake)"
		return
	fi
	[ "$fake" = OK ] || { bg_kill; fail "$t" "the fake destination did not get its 50000 bytes: $fake"; return; }
	lc_source_survives "$t" "$sock" || { bg_kill; fail "$t" "$WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# t_snap_local: a restore takes the VM's host resources from its own command line and only
# checks the snapshot's configuration against it: another --memory is refused with one line
# naming the option to give (status 1, the guest never runs), no --kernel is a usage error.
t_snap_local() {
	local t=$1 file=$WORK/$1.snap rc first
	lc_snapshot_vm "$t.src" "$file" || { fail "$t" "$WHY"; return; }
	lc_vm --memory 128M
	"$TOOLS/deadline" -k 2 20 "$KVMBOX_PEER" restore "$file" "${VM[@]}" </dev/null >"$LOGS/$t.mem.out" 2>"$LOGS/$t.mem.err"
	rc=$?
	first=$(head -n1 "$LOGS/$t.mem.err")
	[ "$rc" = 1 ] || { fail "$t" "restore with --memory 128M: status $rc, expected 1: $(echo "$first" | cut -c1-150)"; return; }
	[ "$(wc -l <"$LOGS/$t.mem.err")" = 1 ] || { fail "$t" "restore with --memory 128M: more than one line on stderr"; return; }
	case $first in
	*"refused: the snapshot's VM has 64M of RAM and 1 vCPUs"*"start with --memory 64M --cpus 1") ;;
	*) fail "$t" "restore with --memory 128M: unexpected line: $(echo "$first" | cut -c1-200)"; return ;;
	esac
	[ -s "$LOGS/$t.mem.out" ] && { fail "$t" "the refused restore ran the guest"; return; }
	"$TOOLS/deadline" -k 2 20 "$KVMBOX_PEER" restore "$file" --memory 64M </dev/null >/dev/null 2>"$LOGS/$t.nok.err"
	rc=$?
	[ "$rc" = 2 ] && grep -q -- "no kernel given; add --kernel PATH" "$LOGS/$t.nok.err" ||
		{ fail "$t" "restore without --kernel: status $rc: $(head -n1 "$LOGS/$t.nok.err" | cut -c1-150)"; return; }
	pass "$t"
}

# t_migrate_refused: a destination started with other sizes refuses the source's VM with one
# line naming the options to give and exits 1; the source is told (its migrate fails) and runs
# on.
t_migrate_refused() {
	local t=$1 uri=unix:$WORK/$1.mig sock=$WORK/$1.sock spid sout
	bg_start "$t.src" --api "$sock"
	spid=$PID sout=$OUT
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_dest "$t" "$uri" --memory 128M --cpus 2 || { lc_kill "$spid" "$DPID"; fail "$t" "destination: $WHY"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src.err
	lc_ctl "$sock" migrate "$uri"
	[ "$CTL_RC" = 1 ] || { lc_kill "$spid" "$DPID"; fail "$t" "migrate: ctl status $CTL_RC, expected 1"; return; }
	lc_source_survives "$t" "$sock" || { lc_kill "$spid" "$DPID"; fail "$t" "$WHY"; return; }
	PID=$DPID OUT=$DOUT ERR=$DERR
	bg_wait 10 || { lc_kill "$spid"; fail "$t" "the destination still runs 10s after refusing"; return; }
	[ "$RC" = 1 ] || { lc_kill "$spid"; fail "$t" "destination status $RC, expected 1"; return; }
	grep -q "refused: the source VM has 64M of RAM and 1 vCPUs.*start with --memory 64M --cpus 1$" "$DERR" ||
		{ lc_kill "$spid"; fail "$t" "destination's line: $(grep -v waiting "$DERR" | head -n1 | cut -c1-200)"; return; }
	[ -s "$DOUT" ] && { lc_kill "$spid"; fail "$t" "the destination ran the guest"; return; }
	PID=$spid OUT=$sout
	lc_term || { fail "$t" "source: $WHY"; return; }
	pass "$t"
}

# t_migrate_console: the console is the destination's own: a source without one (--console
# none) migrates to a destination with --console serial, whose stdout gets the guest's ticks.
t_migrate_console() {
	local t=$1 uri=unix:$WORK/$1.mig sock=$WORK/$1.sock spid sout n
	bg_start "$t.src" --api "$sock" --console none
	spid=$PID sout=$OUT
	for ((n = 0; n < 200; n++)); do
		[ "$(lc_state "$sock")" = running ] && break
		alive "$PID" || break
		sleep 0.05
	done
	[ "$(lc_state "$sock")" = running ] || { bg_kill; fail "$t" "the source did not answer info 'running'"; return; }
	lc_dest "$t" "$uri" || { lc_kill "$spid" "$DPID"; fail "$t" "destination: $WHY"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src.err
	lc_ctl_ok migrate "$sock" migrate "$uri" || { lc_kill "$spid" "$DPID"; fail "$t" "$WHY"; return; }
	bg_wait 10 || { lc_kill "$DPID"; fail "$t" "source still running 10s after migrating"; return; }
	[ -s "$sout" ] && { lc_kill "$DPID"; fail "$t" "the source with --console none printed"; return; }
	PID=$DPID OUT=$DOUT ERR=$DERR
	wait_out "idle: tick [0-9][0-9]*$" 15 || { bg_kill; fail "$t" "no tick on the destination's serial console: $WHY"; return; }
	lc_term || { fail "$t" "destination: $WHY"; return; }
	pass "$t"
}

# t_migrate_sigterm: SIGTERM to a destination in the middle of receiving a 1 GiB dirtier
# (256 MiB in use; sent once it has stored 16 MiB): it ends the receive at once, before the
# acknowledgement (status 143 within 5 s, one line saying so), and the source, whose migrate
# fails, runs on with its memory intact.
t_migrate_sigterm() {
	local t=$1 uri=unix:$WORK/$1.mig sock=$WORK/$1.sock spid sout cpid n rss rss0 l
	lc_mid_receive "$t" "$uri" "$sock" 1000 || { fail "$t" "$WHY"; return; }
	spid=$SPID sout=$SOUT cpid=$CPID
	PID=$DPID OUT=$DOUT ERR=$DERR
	if ! lc_term; then
		lc_kill "$spid" "$DPID"
		wait "$cpid"
		fail "$t" "destination: $WHY (its RSS grew $(((rss - rss0) / 1024)) MiB)"
		return
	fi
	wait "$cpid"
	grep -q "a termination signal came before the hand-over" "$DERR" ||
		{ lc_kill "$spid"; fail "$t" "destination's stderr: $(tail -n1 "$DERR" | cut -c1-200)"; return; }
	PID=$spid OUT=$sout ERR=$LOGS/$t.src.err
	[ "$(cat "$LOGS/$t.rc")" = 1 ] ||
		{ bg_kill; fail "$t" "migrate: ctl status $(cat "$LOGS/$t.rc"), expected 1: $(tr -d '\n' <"$LOGS/$t.reply" | cut -c1-150)"; return; }
	lc_source_survives "$t" "$sock" || { bg_kill; fail "$t" "$WHY"; return; }
	l=$(lc_passes "$sout" | tail -n1 | cut -d' ' -f1)
	wait_out "pass $((l + 2)) " 30 || { bg_kill; fail "$t" "source: $WHY"; return; }
	DIRTIER_PAGES=65536 lc_check_passes "$sout" || { bg_kill; fail "$t" "source: $WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# ---- control socket protocol ----

# t_api TEST MODE: tools/apiclient MODE against a running idle guest, which
# must keep ticking throughout (and afterwards).
t_api() {
	local t=$1 mode=$2 sock=$WORK/$1.sock r before
	bg_start "$t" --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	before=$(last_tick "$OUT")
	r=$(cd "$WORK" && "$TOOLS/deadline" -k 2 60 "$TOOLS/apiclient" "$mode" "$sock" 2>&1 | tail -n1)
	[ "$r" = OK ] || { bg_kill; fail "$t" "${r#FAIL: }"; return; }
	wait_out "idle: tick $((before + 1))$" 5 ||
		{ bg_kill; fail "$t" "the guest stopped ticking (tick $before): $WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# ---- ACPI shutdown ----

# t_shutdown: idle with its power-button handler: ctl shutdown → the guest
# sees the button and powers off; kvmbox exits 0.
t_shutdown() {
	local t=$1 sock=$WORK/$1.sock
	bg_start "$t" --append pwrbtn --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	grep -qa 'power button armed' "$OUT" || { bg_kill; fail "$t" "guest did not arm the button"; return; }
	lc_ctl_ok shutdown "$sock" shutdown || { bg_kill; fail "$t" "$WHY"; return; }
	bg_wait 10 || { fail "$t" "still running 10s after ctl shutdown"; return; }
	[ "$RC" = 0 ] || { fail "$t" "status $RC, expected 0"; return; }
	tr -d '\r' <"$OUT" | grep -qax 'idle: power button' || { fail "$t" "no 'idle: power button' line"; return; }
	pass "$t"
}

# t_shutdown_timeout: idle ignoring the button: ctl shutdown timeout=2 → kvmbox
# stops 2 s later (1.5..5 s) with status 0 and a warning.
t_shutdown_timeout() {
	local t=$1 sock=$WORK/$1.sock t0 t1 ms
	bg_start "$t" --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	t0=${EPOCHREALTIME/./}
	lc_ctl_ok shutdown "$sock" shutdown timeout=2 || { bg_kill; fail "$t" "$WHY"; return; }
	bg_wait 10 || { fail "$t" "still running 10s after ctl shutdown timeout=2"; return; }
	t1=${EPOCHREALTIME/./}
	ms=$(((t1 - t0) / 1000))
	[ "$RC" = 0 ] || { fail "$t" "status $RC, expected 0"; return; }
	[ "$ms" -ge 1500 ] && [ "$ms" -le 5000 ] || { fail "$t" "stopped after ${ms} ms, expected ~2000"; return; }
	grep -qai 'warn' "$ERR" || { fail "$t" "no warning on stderr"; return; }
	pass "$t"
}

# ---- soak: no growth over many lifecycle operations ----

# lc_sample PID: "FDS THREADS RSS_KIB" of a kvmbox process (RSS without the guest's RAM).
lc_sample() {
	echo "$(ls /proc/"$1"/fd 2>/dev/null | wc -l) $(ls /proc/"$1"/task 2>/dev/null | wc -l) $(lc_rss_own "$1")"
}

# soak_rss_limit: the RSS growth allowed (KiB): SOAK_RSS_KIB (default 1024); none for a
# sanitizer build, whose allocator quarantine grows RSS by design.
soak_rss_limit() {
	if grep -qa __asan_init "$KVMBOX" 2>/dev/null; then echo 999999999; else echo "${SOAK_RSS_KIB:-1024}"; fi
}

# lc_no_growth WHAT FILE: FILE holds one lc_sample line per step; from the first on, fds and
# threads must stay the same and RSS must not grow by more than SOAK_RSS_KIB (default 1024).
# Else sets WHY.
lc_no_growth() {
	WHY=$(awk -v what="$1" -v lim="$(soak_rss_limit)" '
		NR == 1 { f = $1; th = $2; r = $3; next }
		$1 != f { printf "%s %d: %d fds, %d at the first", what, NR, $1, f; exit 1 }
		$2 != th { printf "%s %d: %d threads, %d at the first", what, NR, $2, th; exit 1 }
		$3 - r > lim { printf "%s %d: RSS %d KiB, %d at the first (limit +%d)", what, NR, $3, r, lim; exit 1 }
		END { if (NR < 2) { printf "only %d samples", NR; exit 1 } }' "$2") && return 0
	return 1
}

# t_soak_snapshots: 20 live snapshots of one running VM (each sampled: fds, threads, RSS), then
# the last one restored in a new process, where the counter goes on.
t_soak_snapshots() {
	local t=$1 sock=$WORK/$1.sock file=$WORK/$1.snap i before
	bg_start "$t.src" --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	: >"$LOGS/$t.samples"
	for i in $(seq 1 20); do
		before=$(last_tick "$OUT")
		lc_ctl_ok "snapshot $i" "$sock" snapshot "$file" || { bg_kill; fail "$t" "$WHY"; return; }
		lc_sample "$PID" >>"$LOGS/$t.samples"
	done
	wait_out "idle: tick $((before + 2))$" 10 || { bg_kill; fail "$t" "the VM stopped after 20 snapshots: $WHY"; return; }
	lc_no_growth snapshot "$LOGS/$t.samples" || { bg_kill; fail "$t" "$WHY"; return; }
	BEFORE=$before
	LAST=$(last_tick "$OUT")
	bg_kill
	lc_vm
	lc_bg_bin "$KVMBOX_PEER" "$t" restore "$file" "${VM[@]}" --api "$WORK/$t.rsock"
	lc_expect_continue "$t" $((BEFORE - 1)) $((LAST + 1)) || { bg_kill; fail "$t" "after restore: $WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# lc_tick_after LAST SECONDS: the guest in $OUT ($PID) prints a tick after LAST within SECONDS;
# else sets WHY. Any later tick, not LAST+1 itself: the idle guest prints the count of LAPIC
# timer interrupts it has seen when it gets to it, and skips numbers when they come faster than
# it prints (seen once under ASan in the emulated host, a destination whose periodic timer
# caught up on 22 s of ticks: 16 was never printed, 127 was).
lc_tick_after() {
	local last=$1 n=$(($2 * 20)) cur
	while [ "$n" -gt 0 ]; do
		cur=$(last_tick "$OUT")
		[ -n "$cur" ] && [ "$cur" -gt "$last" ] && return 0
		alive "$PID" || { WHY="kvmbox exited before the guest printed a tick after $last"; return 1; }
		sleep 0.05
		n=$((n - 1))
	done
	WHY="no tick after $last from the guest within $2s (last: ${cur:-none})"
	return 1
}

# t_soak_migrations: the VM migrates 10 times between kvmbox processes over unix sockets; each
# destination is sampled once it runs the guest: the same fds and threads, no RSS growth.
t_soak_migrations() {
	local t=$1 i sock=$WORK/$1.sock spid sout last uri
	bg_start "$t.0" --api "$sock"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	: >"$LOGS/$t.samples"
	for i in $(seq 1 10); do
		spid=$PID sout=$OUT
		uri=unix:$WORK/$t.$i.mig
		lc_dest "$t.$i" "$uri" || { lc_kill "$spid" "$DPID"; fail "$t" "destination $i: $WHY"; return; }
		lc_ctl "$sock" migrate "$uri"
		[ "$CTL_RC" = 0 ] || { lc_kill "$spid" "$DPID"; fail "$t" "migration $i: ctl status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-150)"; return; }
		PID=$spid
		bg_wait 10 || { lc_kill "$DPID"; fail "$t" "source $i still running 10s after migrating"; return; }
		[ "$RC" = 0 ] || { lc_kill "$DPID"; fail "$t" "source $i: status $RC, expected 0"; return; }
		last=$(last_tick "$sout")
		PID=$DPID OUT=$DOUT ERR=$DERR sock=$DSOCK
		lc_tick_after "$last" 10 || { bg_kill; fail "$t" "destination $i (source's last tick $last): $WHY"; return; }
		lc_sample "$PID" >>"$LOGS/$t.samples"
	done
	lc_no_growth migration "$LOGS/$t.samples" || { bg_kill; fail "$t" "$WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	pass "$t"
}

# ---- kvmbox up: a set of VMs from one file ----

# up_field NAME FIELD: FIELD of VM NAME in the last `ctl list` reply (CTL), quotes dropped.
up_field() {
	echo "$CTL" | tr -d ' \n' | sed -n "s/.*{\"name\":\"$1\",\([^}]*\)}.*/\1/p" |
		sed -n "s/.*\"$2\":\([^,]*\).*/\1/p" | tr -d '"'
}

# up_wait SOCK SECONDS NAME FIELD VALUE [NAME FIELD VALUE...]: until `ctl SOCK list` shows each
# FIELD of NAME as VALUE (a regex); else WHY.
up_wait() {
	local sock=$1 n=$(($2 * 10)) ok i
	shift 2
	local want=("$@")
	while [ "$n" -gt 0 ]; do
		lc_ctl "$sock" list
		ok=1
		for ((i = 0; i < ${#want[@]}; i += 3)); do
			up_field "${want[i]}" "${want[i + 1]}" | grep -qx -- "${want[i + 2]}" || ok=
		done
		[ -n "$ok" ] && return 0
		alive "$PID" || { WHY="kvmbox up exited: $(tail -n1 "$ERR" | cut -c1-150)"; return 1; }
		sleep 0.1
		n=$((n - 1))
	done
	WHY="ctl list never showed ${want[*]}: $(echo "$CTL" | tr -d ' \n' | cut -c1-300)"
	return 1
}

# lc_notify NAME FILE: a stand-in for systemd's notification socket on NAME (a path or @NAME;
# tools/notifysock.c) in the background, writing what it gets to FILE; returns once it listens.
lc_notify() {
	local n=100
	: >"$2"
	"$TOOLS/notifysock" "$1" "$2" 2>>"$LOGS/$CUR.notify.err" &
	BG_PIDS="$BG_PIDS $!"
	while [ "$n" -gt 0 ]; do
		grep -qx listening "$2" && return 0
		sleep 0.05
		n=$((n - 1))
	done
	WHY="notifysock $1 did not start: $(head -c 150 "$LOGS/$CUR.notify.err")"
	return 1
}

# lc_wait_line FILE LINE SECONDS: until FILE has the line LINE; else WHY.
lc_wait_line() {
	local n=$(($3 * 20))
	while [ "$n" -gt 0 ]; do
		grep -qx -- "$2" "$1" && return 0
		sleep 0.05
		n=$((n - 1))
	done
	WHY="no '$2' in $1 within $3s: $(tr '\n' '|' <"$1" | cut -c1-100)"
	return 1
}

# t_notify_run: kvmbox run under a Type=notify unit's $NOTIFY_SOCKET (an abstract one): READY=1
# once the guest runs, STOPPING=1 when SIGTERM stops it, nothing else.
t_notify_run() {
	local t=$1 nf=$WORK/$1.notify
	lc_notify "@kvmbox-test-$$-$t" "$nf" || { fail "$t" "$WHY"; return; }
	NOTIFY_SOCKET="@kvmbox-test-$$-$t" bg_start "$t"
	wait_out "idle: tick 2$" 20 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_wait_line "$nf" READY=1 5 || { bg_kill; fail "$t" "$WHY"; return; }
	lc_term || { fail "$t" "$WHY"; return; }
	lc_wait_line "$nf" STOPPING=1 5 || { fail "$t" "$WHY"; return; }
	[ "$(tr '\n' ' ' <"$nf")" = "listening READY=1 STOPPING=1 " ] ||
		{ fail "$t" "notifications: $(tr '\n' ' ' <"$nf")"; return; }
	pass "$t"
}

# t_up: three idle guests from one file (b after a, c after b) under `kvmbox up --api`: all run
# and their console logs grow; kill -9 of a (restart = on-failure) brings it back with a new pid
# and restarts 1 while b and c keep theirs; kill -9 of b (restart = no) leaves it down;
# `vm c info` reaches c's own socket (while c is stopped, a second one is Busy and the first
# waits for c to go on); `start b` brings b back, `restart c` gives c a new
# process, `stop c` powers it off for good; SIGTERM shuts the rest down through ACPI: status 0,
# no VM process left. systemd's socket (a path) gets READY=1 once all three run, STOPPING=1 at
# the SIGTERM, and nothing from the VMs' own processes.
t_up() {
	local t=$1 dir=$WORK/$1.d sock=$WORK/$1.sock conf=$WORK/$1.conf nf=$WORK/$1.notify pa pb pc na nb nc v i
	mkdir -p "$dir"
	cat >"$conf" <<-EOF
		[defaults]
		state-dir = $dir/state
		kernel = $GUESTS/$G.elf
		memory = 64M
		append = pwrbtn
		restart = on-failure

		[vm c]
		after = b
		[vm a]
		[vm b]
		after = a
		restart = no
	EOF
	lc_notify "$WORK/$t.nsock" "$nf" || { fail "$t" "$WHY"; return; }
	NOTIFY_SOCKET=$WORK/$t.nsock lc_bg "$t" up --api "$sock" "$conf"
	up_wait "$sock" 60 a state running b state running c state running || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	pa=$(up_field a pid) pb=$(up_field b pid) pc=$(up_field c pid)
	lc_wait_line "$nf" READY=1 5 || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	# Started in after order, whatever the file's order.
	v=$(sed -n 's/^kvmbox up: vm \([abc]\): started.*/\1/p' "$ERR" | tr -d '\n')
	[ "$v" = abc ] || { lc_kill "$PID"; fail "$t" "start order '$v', expected abc"; return; }
	for v in a b c; do
		OUT=$dir/state/$v.console.log
		wait_out "idle: tick 2$" 20 || { lc_kill "$PID"; fail "$t" "console log of $v: $WHY"; return; }
		grows "$OUT" 5 || { lc_kill "$PID"; fail "$t" "console log of $v does not grow"; return; }
	done
	kill -KILL "$pa"
	up_wait "$sock" 30 a state running a restarts 1 || { lc_kill "$PID"; fail "$t" "a: $WHY"; return; }
	na=$(up_field a pid)
	[ -n "$na" ] && [ "$na" != "$pa" ] || { lc_kill "$PID"; fail "$t" "a's pid $na after the restart, was $pa"; return; }
	[ "$(up_field b pid)" = "$pb" ] && [ "$(up_field c pid)" = "$pc" ] ||
		{ lc_kill "$PID"; fail "$t" "b or c changed: $(echo "$CTL" | tr -d ' \n' | cut -c1-300)"; return; }
	kill -KILL "$pb"
	up_wait "$sock" 30 b state failed b pid null b last_status 137 b restarts 0 ||
		{ lc_kill "$PID"; fail "$t" "b: $WHY"; return; }
	lc_ctl_ok "vm c info" "$sock" vm c info || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	echo "$CTL" | grep -q '"state": "running"' || { lc_kill "$PID"; fail "$t" "vm c info: $(echo "$CTL" | tr -d ' \n' | cut -c1-200)"; return; }
	lc_ctl "$sock" vm nosuch info
	[ "$CTL_RC" = 1 ] && echo "$CTL" | grep -q "no VM called 'nosuch'" ||
		{ lc_kill "$PID"; fail "$t" "vm nosuch info: status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"; return; }
	# A VM that does not answer (stopped): its request waits in a thread of up's own; a second
	# one meanwhile is Busy; the first gets its reply once the VM goes on.
	kill -STOP "$pc"
	"$KVMBOX" ctl --timeout 60 "$sock" vm c info >"$WORK/$t.first" 2>&1 &
	v=$!
	for ((i = 0; i < 100; i++)); do
		[ "$(ls /proc/"$PID"/task | wc -l)" = 2 ] && break
		sleep 0.1
	done
	lc_ctl "$sock" vm c info
	kill -CONT "$pc"
	[ "$CTL_RC" = 1 ] && echo "$CTL" | grep -q "Busy" ||
		{ lc_kill "$PID"; fail "$t" "a second vm c info while c is stopped: status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"; return; }
	wait "$v" && grep -q '"state": "running"' "$WORK/$t.first" ||
		{ lc_kill "$PID"; fail "$t" "vm c info, sent while c was stopped: $(tr -d ' \n' <"$WORK/$t.first" | cut -c1-200)"; return; }
	# The set's commands: start b again, restart c (a new process), stop c for good.
	lc_ctl_ok "start b" "$sock" start b || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	up_wait "$sock" 30 b state running || { lc_kill "$PID"; fail "$t" "start b: $WHY"; return; }
	nb=$(up_field b pid)
	lc_ctl_ok "restart c" "$sock" restart c || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	up_wait "$sock" 40 c state running c last_status 0 || { lc_kill "$PID"; fail "$t" "restart c: $WHY"; return; }
	nc=$(up_field c pid)
	[ -n "$nc" ] && [ "$nc" != "$pc" ] || { lc_kill "$PID"; fail "$t" "c's pid $nc after restart, was $pc"; return; }
	kill -0 "$pc" 2>/dev/null && { lc_kill "$PID"; fail "$t" "c's first process $pc still there after restart"; return; }
	lc_ctl_ok "stop c" "$sock" stop c || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	up_wait "$sock" 40 c state stopped c pid null || { lc_kill "$PID"; fail "$t" "stop c: $WHY"; return; }
	[ "$(up_field a pid)" = "$na" ] && [ "$(up_field b pid)" = "$nb" ] ||
		{ lc_kill "$PID"; fail "$t" "a or b changed: $(echo "$CTL" | tr -d ' \n' | cut -c1-300)"; return; }
	grep -qx STOPPING=1 "$nf" && { lc_kill "$PID"; fail "$t" "STOPPING=1 before the SIGTERM"; return; }
	kill -TERM "$PID"
	bg_wait 60 || { lc_kill "$na" "$nb"; fail "$t" "kvmbox up still running 60s after SIGTERM"; return; }
	lc_wait_line "$nf" STOPPING=1 5 || { fail "$t" "$WHY"; return; }
	[ "$(tr '\n' ' ' <"$nf")" = "listening READY=1 STOPPING=1 " ] ||
		{ fail "$t" "notifications: $(tr '\n' ' ' <"$nf")"; return; }
	for v in "$na" "$nb"; do
		kill -0 "$v" 2>/dev/null && { lc_kill "$v"; fail "$t" "VM process $v still there after up exited"; return; }
	done
	[ "$RC" = 0 ] || { fail "$t" "status $RC after SIGTERM, expected 0: $(tail -n2 "$ERR" | tr '\n' '|')"; return; }
	# b (restart = no) came back only through `start b`.
	[ "$(grep -c '^kvmbox up: vm b: started' "$ERR")" = 2 ] || { fail "$t" "b was started $(grep -c '^kvmbox up: vm b: started' "$ERR") times, expected 2"; return; }
	[ "$(grep -c '^kvmbox up: vm [ab]: exited with status 0' "$ERR")" = 2 ] ||
		{ fail "$t" "a and b did not power off cleanly: $(grep 'exited' "$ERR" | tr '\n' '|' | cut -c1-200)"; return; }
	pass "$t"
}

# t_up_clean: two idle guests under `kvmbox up` (no --api), SIGTERM: both power off through ACPI,
# up exits 0 and no VM process is left.
t_up_clean() {
	local t=$1 dir=$WORK/$1.d conf=$WORK/$1.conf p pids
	mkdir -p "$dir"
	cat >"$conf" <<-EOF
		[defaults]
		state-dir = $dir
		kernel = $GUESTS/$G.elf
		memory = 64M
		append = pwrbtn
		[vm one]
		[vm two]
		after = one
	EOF
	lc_bg "$t" up "$conf"
	for p in one two; do
		OUT=$dir/$p.console.log
		: >>"$OUT"
		wait_out "idle: power button armed" 30 || { lc_kill "$PID"; fail "$t" "$p: $WHY"; return; }
	done
	pids=$(sed -n 's/^kvmbox up: vm [a-z]*: started, pid \([0-9]*\)$/\1/p' "$ERR")
	kill -TERM "$PID"
	bg_wait 60 || { fail "$t" "kvmbox up still running 60s after SIGTERM"; return; }
	for p in $pids; do
		kill -0 "$p" 2>/dev/null && { lc_kill "$p"; fail "$t" "VM process $p still there after up exited"; return; }
	done
	[ "$RC" = 0 ] || { fail "$t" "status $RC after SIGTERM, expected 0: $(tail -n2 "$ERR" | tr '\n' '|')"; return; }
	[ "$(grep -c 'exited with status 0' "$ERR")" = 2 ] || { fail "$t" "not both VMs exited 0: $(grep exited "$ERR" | tr '\n' '|')"; return; }
	pass "$t"
}

# up_file_id FILE: its inode and whole-second mtime ("INODE MTIME"; empty when it is not there).
up_file_id() {
	stat -c '%i %Y' "$1" 2>/dev/null
}

# up_tick_after LOG SIZE NEW SECONDS: until LOG's bytes after its first SIZE (copied to NEW)
# have an idle tick; sets first (the tick's number; empty when none came in time).
up_tick_after() {
	local n=$(($4 * 20))
	first=
	while [ "$n" -gt 0 ] && [ -z "$first" ]; do
		tail -c +$(($2 + 1)) "$1" >"$3"
		first=$(lc_first_tick "$3")
		[ -n "$first" ] || sleep 0.05
		n=$((n - 1))
	done
}

# up_wait_snap FILE OLD SECONDS: until FILE is there as another file than OLD ("INODE MTIME",
# may be empty) with a later mtime (an up snapshot is a new file renamed over the old one); sets
# ID; else WHY.
up_wait_snap() {
	local n=$(($3 * 20))
	while [ "$n" -gt 0 ]; do
		ID=$(up_file_id "$1")
		if [ -n "$ID" ] && [ -s "$1" ] && { [ -z "$2" ] || { [ "${ID% *}" != "${2% *}" ] && [ "${ID#* }" -gt "${2#* }" ]; }; }; then
			return 0
		fi
		alive "$PID" || { WHY="kvmbox up exited: $(tail -n1 "$ERR" | cut -c1-150)"; return 1; }
		sleep 0.05
		n=$((n - 1))
	done
	WHY="$1 ${2:+was $2, }is '$ID' after $3s"
	return 1
}

# up_wait_count PATTERN N SECONDS: until ERR has N lines matching PATTERN (grep -E); else WHY.
up_wait_count() {
	local n=$(($3 * 20))
	while [ "$n" -gt 0 ]; do
		[ "$(grep -acE -- "$1" "$ERR")" -ge "$2" ] && return 0
		alive "$PID" || { WHY="kvmbox up exited: $(tail -n1 "$ERR" | cut -c1-150)"; return 1; }
		sleep 0.05
		n=$((n - 1))
	done
	WHY="$(grep -acE -- "$1" "$ERR") lines '$1' on up's stderr after $3s, expected $2"
	return 1
}

# t_up_snapshot: an idle guest under `kvmbox up --api` with snapshot-every = 1s and
# restart-from = snapshot: s.snap appears and is replaced by newer ones (a new file each time,
# its mtime later); `list` names it; `ctl UP snapshot s` takes one now. kill -9 of the VM: up
# restarts it from s.snap (`kvmbox restore`; restarts 1) and its console goes on from a tick > 1,
# with no new "idle: ready". A snapshot that cannot be written (a directory in the way of
# s.snap.part) is one line each time and s.snap stays the one it was. s.snap corrupted, kill -9:
# the restore fails (said once), the next restart boots (idle: ready, a first tick <= 5).
# SIGTERM: status 0.
t_up_snapshot() {
	local t=$1 dir=$WORK/$1.d sock=$WORK/$1.sock conf=$WORK/$1.conf snap id0 id1 pid size first new n
	rm -rf "$dir" # GUEST_REPEAT: not the last run's s.snap or s.snap.part
	mkdir -p "$dir"
	cat >"$conf" <<-EOF
		[defaults]
		state-dir = $dir/state
		kernel = $GUESTS/$G.elf
		memory = 64M
		append = pwrbtn
		restart = on-failure
		snapshot-every = 1s
		restart-from = snapshot

		[vm s]
	EOF
	snap=$dir/state/s.snap
	new=$WORK/$t.after
	lc_bg "$t" up --api "$sock" "$conf"
	up_wait "$sock" 60 s state running || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	pid=$(up_field s pid)
	# The first snapshot, then a newer one in its place.
	up_wait_snap "$snap" "" 20 || { lc_kill "$PID"; fail "$t" "no first snapshot: $WHY"; return; }
	id0=$ID
	up_wait_snap "$snap" "$id0" 20 || { lc_kill "$PID"; fail "$t" "the snapshot is not refreshed: $WHY"; return; }
	up_wait "$sock" 10 s last_snapshot "{path:$snap" s age_s '[0-9]*' ||
		{ lc_kill "$PID"; fail "$t" "list: $WHY"; return; }
	# One now, through the set's socket (Busy while a periodic one is on its way: again).
	for ((n = 0; n < 100; n++)); do
		lc_ctl "$sock" snapshot s
		echo "$CTL" | grep -q Busy || break
		sleep 0.1
	done
	[ "$CTL_RC" = 0 ] && echo "$CTL" | tr -d ' \n' | grep -q "\"path\":\"$snap\"" && echo "$CTL" | grep -q '"pause_ms"' ||
		{ lc_kill "$PID"; fail "$t" "ctl snapshot s: status $CTL_RC: $(echo "$CTL" | tr -d '\n' | cut -c1-200)"; return; }
	# kill -9: back from the snapshot.
	OUT=$dir/state/s.console.log
	wait_out "idle: tick 2$" 20 || { lc_kill "$PID"; fail "$t" "console: $WHY"; return; }
	size=$(stat -c %s "$OUT")
	kill -KILL "$pid"
	up_wait "$sock" 30 s state running s restarts 1 || { lc_kill "$PID"; fail "$t" "after kill -9: $WHY"; return; }
	grep -aqx "kvmbox up: vm s: started, pid $(up_field s pid), restoring $snap" "$ERR" ||
		{ lc_kill "$PID"; fail "$t" "the restart did not restore $snap: $(grep -a started "$ERR" | tail -n1)"; return; }
	OUT=$new
	up_tick_after "$dir/state/s.console.log" "$size" "$new" 10
	[ -n "$first" ] && [ "$first" -gt 1 ] ||
		{ lc_kill "$PID"; fail "$t" "first tick after the restart '${first:-none}', expected one > 1 (resumed)"; return; }
	grep -aq "idle: ready" "$new" && { lc_kill "$PID"; fail "$t" "the restarted guest booted (idle: ready)"; return; }
	# Snapshots that fail: each one line, s.snap kept. Once the restored VM has written one of
	# its own (s.snap is not the file its RAM is mapped from).
	up_wait_snap "$snap" "$(up_file_id "$snap")" 20 || { lc_kill "$PID"; fail "$t" "no snapshot after the restore: $WHY"; return; }
	mkdir "$dir/state/s.snap.part"
	up_wait_count "^kvmbox: up: vm s: snapshot failed, $snap kept as it was: " 1 20 || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	id1=$(up_file_id "$snap")
	up_wait_count "^kvmbox: up: vm s: snapshot failed, $snap kept as it was: " 3 20 || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	[ "$(up_file_id "$snap")" = "$id1" ] || { lc_kill "$PID"; fail "$t" "s.snap changed while snapshots failed"; return; }
	# A corrupt s.snap: the restore fails, once; the restart after it boots.
	lc_flip "$snap" 20 || { lc_kill "$PID"; fail "$t" "cannot modify s.snap"; return; }
	pid=$(up_field s pid)
	size=$(stat -c %s "$dir/state/s.console.log")
	kill -KILL "$pid"
	up_wait "$sock" 40 s state running s restarts 3 || { lc_kill "$PID"; fail "$t" "after the corrupt snapshot: $WHY"; return; }
	[ "$(grep -ac "^kvmbox: up: vm s: restoring $snap failed (status [1-9][0-9]*); its next start boots$" "$ERR")" = 1 ] ||
		{ lc_kill "$PID"; fail "$t" "not one 'restoring ... failed' line: $(grep -a restoring "$ERR" | tr '\n' '|' | cut -c1-300)"; return; }
	grep -aqx "kvmbox up: vm s: started, pid $(up_field s pid)" "$ERR" ||
		{ lc_kill "$PID"; fail "$t" "the restart after the failed restore did not boot: $(grep -a started "$ERR" | tail -n1)"; return; }
	OUT=$new
	up_tick_after "$dir/state/s.console.log" "$size" "$new" 20
	grep -aq "^idle: ready" "$new" && [ -n "$first" ] && [ "$first" -le 5 ] ||
		{ lc_kill "$PID"; fail "$t" "after the failed restore: no boot (first tick '${first:-none}')"; return; }
	kill -TERM "$PID"
	bg_wait 60 || { fail "$t" "kvmbox up still running 60s after SIGTERM"; return; }
	[ "$RC" = 0 ] || { fail "$t" "status $RC after SIGTERM, expected 0: $(tail -n2 "$ERR" | tr '\n' '|')"; return; }
	pass "$t"
}

# up_console_wait FILE TEXT SECONDS: until FILE has TEXT (grep -aE); else WHY.
up_console_wait() {
	local n=$(($3 * 20))
	while [ "$n" -gt 0 ]; do
		grep -aqE -- "$2" "$1" 2>/dev/null && return 0
		n=$((n - 1))
		sleep 0.05
	done
	WHY="no '$2' in ${1##*/} after $3s: $(tail -c 200 "$1" 2>/dev/null | tr -d '\r' | tr '\n' '|')"
	return 1
}

# t_up_console: an idle guest that echoes its serial input (idle's `echo`) under `kvmbox up
# --api`, L the last tick in its console log. `ctl UP console a` on a pty (tools/ptyrun
# console=L): the pty shows ticks up to L first (the log's tail) and then ticks above L, is in raw
# mode, "hello console" typed there comes back as "idle: echo hello console"; a second attach
# meanwhile is refused (status 1, one line saying another client is attached); Ctrl-A x
# detaches with status 0 and the pty's termios are what they were before; attached again on a
# pty, SIGTERM ends the client with 143 and the termios restored, and so does a hang-up of the
# pty with 129 (SIGHUP; ptyrun console-hup=L). Names that are not a VM's are
# refused with one line. Attached from a FIFO (no terminal, so no escape), a line written there
# is echoed; kill -9 of the VM's process ends the client with status 1 and up's one line saying
# it exited with 137; the VM restarts (restart = on-failure) and takes a new attach, which the
# end of its stdin detaches (status 0). The console log holds both echoes; SIGTERM: status 0.
t_up_console() {
	local t=$1 dir=$WORK/$1.d sock=$WORK/$1.sock conf=$WORK/$1.conf log last first r rc cpid pa n fd line
	rm -rf "$dir" "$LOGS/$t.pty"* "$LOGS/$t.term"* "$LOGS/$t.hup"*
	mkdir -p "$dir"
	cat >"$conf" <<-EOF
		[defaults]
		state-dir = $dir/state
		kernel = $GUESTS/$G.elf
		memory = 64M
		append = pwrbtn echo
		restart = on-failure

		[vm a]
	EOF
	log=$dir/state/a.console.log
	lc_bg "$t" up --api "$sock" "$conf"
	up_wait "$sock" 60 a state running || { lc_kill "$PID"; fail "$t" "$WHY"; return; }
	OUT=$log
	wait_out "idle: tick 3$" 20 || { lc_kill "$PID"; fail "$t" "console log: $WHY"; return; }
	last=$(lc_ticks "$log" | tail -n1)
	# On a pty: tail, live output, input, a second attach refused, Ctrl-A x.
	"$TOOLS/deadline" -k 5 60 "$TOOLS/ptyrun" "$t" "console=$last" "$LOGS/$t.pty.err" "$LOGS/$t.pty.out" \
		$DEFSIG "$KVMBOX" ctl "$sock" console a >"$WORK/$t.r" 2>&1 &
	cpid=$!
	for ((n = 0; n < 600; n++)); do
		[ -e "$LOGS/$t.pty.out.attached" ] && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.05
	done
	if [ ! -e "$LOGS/$t.pty.out.attached" ]; then
		kill "$cpid" 2>/dev/null
		wait "$cpid"
		lc_kill "$PID"
		fail "$t" "not attached: $(head -n1 "$WORK/$t.r" | cut -c1-200)"
		return
	fi
	r=$("$TOOLS/deadline" -k 2 20 "$KVMBOX" ctl --timeout 10 "$sock" console a </dev/null 2>&1 >/dev/null)
	rc=$?
	printf '%s\n' "$r" >>"$LOGS/$CUR.ctl.err"
	: >"$LOGS/$t.pty.out.go"
	wait "$cpid"
	[ "$rc" = 1 ] && [ "$(printf '%s\n' "$r" | wc -l)" = 1 ] &&
		echo "$r" | grep -q "^kvmbox: console: vm a: another client is attached to its console" ||
		{ lc_kill "$PID"; fail "$t" "a second attach: status $rc: $(echo "$r" | tr '\n' '|' | cut -c1-200)"; return; }
	r=$(head -n1 "$WORK/$t.r")
	[ "$r" = "PASS: $t" ] || { lc_kill "$PID"; fail "$t" "on a pty: ${r#FAIL: $t: }"; return; }
	first=$(tr -d '\r' <"$LOGS/$t.pty.out" | sed -n 's/^idle: tick \([0-9][0-9]*\)$/\1/p' | head -n1)
	[ -n "$first" ] && [ "$first" -le "$last" ] ||
		{ lc_kill "$PID"; fail "$t" "the pty's first tick '${first:-none}', expected the log's tail (<= $last)"; return; }
	r=$(grep -aiE "$ERROR_RE" "$LOGS/$t.pty.err" | head -n1)
	[ -z "$r" ] || { lc_kill "$PID"; fail "$t" "the client's stderr: $r"; return; }
	cat "$LOGS/$t.pty.err" >>"$LOGS/$CUR.ctl.err"
	# An attached client ended by SIGTERM (143) and by a hang-up of its terminal (SIGHUP, 129),
	# the terminal restored and the VM running on (ptyrun console-term=L, console-hup=L).
	for how in term:SIGTERM hup:hang-up; do
		last=$(lc_ticks "$log" | tail -n1)
		: >"$LOGS/$t.${how%%:*}.out.go"
		r=$("$TOOLS/deadline" -k 5 60 "$TOOLS/ptyrun" "$t" "console-${how%%:*}=$last" "$LOGS/$t.${how%%:*}.err" \
			"$LOGS/$t.${how%%:*}.out" $DEFSIG "$KVMBOX" ctl "$sock" console a 2>&1)
		cat "$LOGS/$t.${how%%:*}.err" >>"$LOGS/$CUR.ctl.err"
		[ "$r" = "PASS: $t" ] || { lc_kill "$PID"; fail "$t" "${how#*:} on a pty: ${r#FAIL: $t: }"; return; }
	done
	# Names: not a VM of the set, not a name at all.
	for v in nosuch ../a 'a b'; do
		r=$("$TOOLS/deadline" -k 2 20 "$KVMBOX" ctl --timeout 10 "$sock" console "$v" </dev/null 2>&1 >/dev/null)
		rc=$?
		printf '%s\n' "$r" >>"$LOGS/$CUR.ctl.err"
		[ "$rc" = 1 ] && [ "$(printf '%s\n' "$r" | wc -l)" = 1 ] &&
			echo "$r" | grep -qE "^kvmbox: console: (no VM called 'nosuch'|'$v' is not a VM name)" ||
			{ lc_kill "$PID"; fail "$t" "console '$v': status $rc: $(echo "$r" | tr '\n' '|' | cut -c1-200)"; return; }
	done
	# From a FIFO: input without a terminal; the VM killed: up's line, status 1.
	rm -f "$WORK/$t.fifo"
	mkfifo "$WORK/$t.fifo" || { lc_kill "$PID"; fail "$t" "mkfifo failed"; return; }
	# Ours, to write (not the client's: {fd}>&-); its stdin is read-only and ends with ours.
	exec {fd}<>"$WORK/$t.fifo"
	"$TOOLS/deadline" -k 2 60 "$KVMBOX" ctl "$sock" console a <"$WORK/$t.fifo" >"$WORK/$t.cout" 2>"$WORK/$t.cerr" {fd}>&- &
	cpid=$!
	up_console_wait "$WORK/$t.cout" "idle: tick [0-9]+" 20 || { exec {fd}>&-; lc_kill "$PID" "$cpid"; fail "$t" "from a FIFO: $WHY"; return; }
	printf 'fifo line\r' >&"$fd"
	up_console_wait "$WORK/$t.cout" "idle: echo fifo line" 20 || { exec {fd}>&-; lc_kill "$PID" "$cpid"; fail "$t" "from a FIFO: $WHY"; return; }
	lc_ctl "$sock" list
	pa=$(up_field a pid)
	kill -KILL "$pa"
	wait "$cpid"
	rc=$?
	exec {fd}>&-
	cat "$WORK/$t.cerr" >>"$LOGS/$CUR.ctl.err"
	line=$(tr -d '\r' <"$WORK/$t.cout" | tail -n1)
	[ "$rc" = 1 ] && [ "$line" = "kvmbox: up: vm a: its process exited with status 137; console detached (attach again once it runs)" ] &&
		[ ! -s "$WORK/$t.cerr" ] ||
		{ lc_kill "$PID"; fail "$t" "after kill -9 of the VM: status $rc, last line '$line', stderr '$(head -n1 "$WORK/$t.cerr")'"; return; }
	up_wait "$sock" 30 a state running a restarts 1 || { lc_kill "$PID"; fail "$t" "after kill -9: $WHY"; return; }
	# The restarted VM takes a new client; the end of its stdin detaches it.
	exec {fd}<>"$WORK/$t.fifo"
	"$TOOLS/deadline" -k 2 60 "$KVMBOX" ctl "$sock" console a <"$WORK/$t.fifo" >"$WORK/$t.cout2" 2>"$WORK/$t.cerr2" {fd}>&- &
	cpid=$!
	up_console_wait "$WORK/$t.cout2" "idle: tick [0-9]+" 20 || { exec {fd}>&-; lc_kill "$PID" "$cpid"; fail "$t" "after the restart: $WHY"; return; }
	exec {fd}>&-
	wait "$cpid"
	rc=$?
	cat "$WORK/$t.cerr2" >>"$LOGS/$CUR.ctl.err"
	[ "$rc" = 0 ] || { lc_kill "$PID"; fail "$t" "after the restart: status $rc at the end of stdin: $(head -n1 "$WORK/$t.cerr2")"; return; }
	grep -aq "^idle: echo hello console$" "$log" && grep -aq "^idle: echo fifo line$" "$log" ||
		{ lc_kill "$PID"; fail "$t" "the console log lacks an echo"; return; }
	kill -TERM "$PID"
	bg_wait 60 || { fail "$t" "kvmbox up still running 60s after SIGTERM"; return; }
	[ "$RC" = 0 ] || { fail "$t" "status $RC after SIGTERM, expected 0: $(tail -n2 "$ERR" | tr '\n' '|')"; return; }
	pass "$t"
}
