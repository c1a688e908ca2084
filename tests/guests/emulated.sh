# tests/guests/emulated.sh - sourced by tests/guests/run.sh when this machine's /dev/kvm cannot
# run the tiny guests: the tier runs inside the emulated host of the Linux tier (QEMU TCG with
# nested SVM, tests/linux/lib.sh), in one boot, and its result lines stream out as they come.
#
# The emulated host's initramfs gets, besides the cached base (busybox, kvm modules):
#   /bin/bash                          bash-static (the runner is bash; no other shell there)
#   /kvmbox/guests/bin/kvmbox          $KVMBOX, with the shared libraries ldd lists (a sanitizer
#                                      build brings libasan...); not at its own path, which may
#                                      be under a directory the host mounts over (/tmp, /run)
#   /kvmbox/guests/bin/kvmbox-peer     $KVMBOX_PEER when it is another binary (the same way)
#   /kvmbox/guests/tests/guests/       run.sh and lifecycle.sh
#   /kvmbox/guests/build/guests/       the guests (*.elf) and tools/ (static helpers)
#   /kvmbox/guests/inside.env          KVMBOX, KVMBOX_PEER, GUEST_TIMEOUT..., the tests to run
# host-init (kvmbox.host=guests) mounts devpts, brings up lo, prints a heartbeat every 10 s
# ("KVMBOX-I alive") and runs `run.sh --inside`, which prints "KVMBOX-I start NAME" before
# each test, then "KVMBOX-G PASS: NAME" ... and "KVMBOX-L NAME text" (diagnostics after a FAIL).
#
# Nested virtualisation under QEMU's multi-threaded TCG wedged the whole emulated host now and
# then: no output at all, or only its kernel's stall and lockup reports, without the heartbeat
# (DEVELOPERS.md, Known traps: the x86 host now runs single-threaded TCG, which has not shown it;
# the watchdog stays for what else may stop an emulated host).
# After 60 s without a heartbeat, 300 s without a test starting or ending, or on a soft lockup
# of a minute, the host is stopped, and
# the tests without a result (the one that was running included) run once more in a new boot;
# so do they when the host ends on its own before it finished (its kernel panicked: panic=-1
# with -no-reboot ends qemu with status 0; its last lines go to stderr). Up to three boots (seen:
# two wedges in a row, soft lockups of both emulated CPUs, in one ASan tier); a third wedge or
# stop makes them FAIL. The serial log, each line stamped with the real time, is
# ${KVMBOX_GUESTS_OUT:-build/guests/emu/<flavour>}/host.log (host-boot1.log, host-boot2.log: the
# wedged boots).

# Seconds without a heartbeat (it comes every 10 s), and without a test starting or ending (the
# longest takes a minute), after which the host is wedged (settable for tests/scripts).
EMU_SILENCE=${KVMBOX_EMU_SILENCE:-60}
EMU_STALL=${KVMBOX_EMU_STALL:-300}
# Every EMU_KICK seconds without a heartbeat, before EMU_SILENCE: a key press through QEMU's
# monitor wakes a host whose CPU QEMU left halted with a timer interrupt pending (tests/linux/
# run.sh, KICK; DEVELOPERS.md, Known traps).
EMU_KICK=${KVMBOX_HOST_KICK:-15}
((EMU_KICK > 0 && EMU_KICK < EMU_SILENCE)) || EMU_KICK=$EMU_SILENCE
EMU_BIN=/kvmbox/guests/bin/kvmbox   # where kvmbox is inside
EMU_PEER=/kvmbox/guests/bin/kvmbox-peer

# emu_report LINE: print a result line from the emulated host, once per test (of the selected).
emu_report() {
	local r=$1 name
	name=${r#*: }
	name=${name%%:*}
	[ -n "${EMU_WANT[$name]:-}" ] || return 0
	# (With GUEST_REPEAT, every run of a test has its line.)
	[ -z "${EMU_DONE[$name]:-}" ] || [ "${GUEST_REPEAT:-1}" -gt 1 ] || return 0
	EMU_DONE[$name]=1
	echo "$r"
}

# emu_all STATUS WHY: STATUS for every selected test not reported yet.
emu_all() {
	local name rest
	while read -r name rest; do
		[ -n "${EMU_DONE[$name]:-}" ] || emu_report "$1: $name: $2"
	done <<<"$SELECTED"
}

# emu_todo: the names of the selected tests without a result yet.
emu_todo() {
	local name rest
	while read -r name rest; do
		[ -n "${EMU_DONE[$name]:-}" ] || echo "$name"
	done <<<"$SELECTED"
}

# emu_tree DIR KVMBOX_ABS: the part of the initramfs that is the tier's (inside.env apart).
emu_tree() {
	local d=$1 bin=$2 g=$1/kvmbox/guests h
	local bash_static=${KVMBOX_BASH_STATIC:-/bin/bash-static}
	if [ ! -x "$bash_static" ] || LC_ALL=C readelf -l "$bash_static" 2>/dev/null | grep -q INTERP; then
		echo "$bash_static missing or not static (apt-get install bash-static)"
		return 1
	fi
	mkdir -p "$d/bin" "$g/tests/guests" "$g/build/guests/tools" || return 1
	install -m 755 "$bash_static" "$d/bin/bash" &&
		install -m 755 "$ROOT/tests/guests/run.sh" "$ROOT/tests/guests/lifecycle.sh" "$g/tests/guests/" ||
		return 1
	cp -- "$GUESTS"/*.elf "$g/build/guests/" 2>/dev/null
	for h in $HELPERS; do
		[ -x "$TOOLS/$h" ] || { echo "$TOOLS/$h not built (make guests)"; return 1; }
		install -m 755 "$TOOLS/$h" "$g/build/guests/tools/" || return 1
	done
	kb_add_prog "$d" "$bin" "$EMU_BIN" || { echo "cannot copy $bin and its shared libraries (ldd)"; return 1; }
	if [ "$KVMBOX_PEER" != "$KVMBOX" ]; then
		kb_add_prog "$d" "$KVMBOX_PEER" "$EMU_PEER" ||
			{ echo "cannot copy $KVMBOX_PEER and its shared libraries (ldd)"; return 1; }
	fi
}

# emu_env FILE KVMBOX_ABS TEST...: what run.sh --inside reads.
emu_env() {
	local f=$1 bin=$2 v t
	shift 2
	{
		printf 'KVMBOX=%q\n' "$bin"
		if [ "$KVMBOX_PEER" != "$KVMBOX" ]; then printf 'KVMBOX_PEER=%q\n' "$EMU_PEER"; fi
		for v in GUEST_TIMEOUT GUEST_DIAG_LINES GUEST_REPEAT; do
			[ -n "${!v:-}" ] && printf '%s=%q\n' "$v" "${!v}"
		done
		for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
			[ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
		done
		printf 'INSIDE_TESTS=('
		for t in "$@"; do printf ' %q' "$t"; done
		printf ' )\n'
	} >"$f"
}

# emu_boot INITRD LOG: one emulated-host boot; streams the results. Sets EMU_STATE (booting,
# ready, finished or wedged), EMU_WHY (why wedged), EMU_NOKVM, EMU_QRC, EMU_CUR (the test that
# last started).
emu_boot() {
	local initrd=$1 log=$2 qpid line r rc last_fail= name text c q why last_kb last_prog kicks=0
	EMU_STATE=booting EMU_WHY= EMU_NOKVM= EMU_CUR=
	: >"$log"
	last_kb=$EPOCHSECONDS last_prog=$EPOCHSECONDS
	exec 3< <(KB_MONITOR=$log.mon kb_boot_host "$initrd" "$EMU_TMO" "kvmbox.host=guests ${KVMBOX_HOST_LOGLEVEL:+kvmbox.loglevel=$KVMBOX_HOST_LOGLEVEL}" 2>&1)
	qpid=$!
	while :; do
		IFS= read -t "$EMU_KICK" -r line <&3
		rc=$?
		[ $rc = 0 ] || [ $rc -gt 128 ] || break   # EOF: qemu is gone
		why=
		if [ $rc = 0 ]; then
			line=${line//$'\r'/}
			printf '%s\t%s\n' "$EPOCHSECONDS" "$line" >>"$log"
			[ "${KVMBOX_VERBOSE:-0}" = 1 ] && printf '%s\n' "$line" >&2
			case $line in *KVMBOX-*)
				((kicks)) && echo "guests: the emulated host went on after $((EPOCHSECONDS - last_kb))s of silence and $kicks key presses" >>"$log"
				last_kb=$EPOCHSECONDS kicks=0
				;;
			esac
			case $line in *"KVMBOX-I start "* | *"KVMBOX-G "* | *"KVMBOX-HOST "*) last_prog=$EPOCHSECONDS ;; esac
			kb_lockup "$line" && why="the emulated host's kernel locked up ($KB_LOCKUP)"
		fi
		if [ $((EPOCHSECONDS - last_kb)) -ge "$EMU_SILENCE" ]; then
			why="no heartbeat from the emulated host for ${EMU_SILENCE}s"
		elif [ $((EPOCHSECONDS - last_kb)) -ge $((EMU_KICK * (kicks + 1))) ]; then
			echo "guests: no heartbeat from the emulated host for $((EPOCHSECONDS - last_kb))s; a key press to wake it (kick $((kicks + 1)))" >>"$log"
			kb_kick "$log.mon" "guests: qemu monitor: " "$( ((kicks)) || echo dump)" >>"$log"
			kicks=$((kicks + 1))
		elif [ $((EPOCHSECONDS - last_prog)) -ge "$EMU_STALL" ]; then
			why="no test started or ended in the emulated host for ${EMU_STALL}s"
		fi
		if [ -n "$why" ]; then
			# A wedged host. kb_boot_host runs `timeout ... qemu`: stop that timeout (it
			# stops qemu).
			EMU_STATE=wedged EMU_WHY=$why
			c=$(cat /proc/"$qpid"/task/*/children 2>/dev/null)
			q=$(for p in $c; do cat /proc/"$p"/task/*/children 2>/dev/null; done)
			echo "guests: $why${EMU_CUR:+ (test $EMU_CUR was running)}; qemu uses $(kb_cpu_use "${q%% *}")% of a CPU; stopping it" >>"$log"
			kb_monitor_dump "$log.mon" "guests: qemu monitor: " >>"$log"
			[ -n "$c" ] && kill -TERM $c 2>/dev/null
			break
		fi
		case $line in
		*"KVMBOX-HOST kvm ready"*) EMU_STATE=ready ;;
		*"KVMBOX-HOST nokvm"*) EMU_NOKVM=${line#*KVMBOX-HOST nokvm } ;;
		*"KVMBOX-HOST done"*) EMU_STATE=finished ;;
		*"KVMBOX-I start "*) EMU_CUR=${line#*KVMBOX-I start } ;;
		*"KVMBOX-G "*)
			r=${line#*KVMBOX-G }
			case $r in
			"PASS: "* | "FAIL: "* | "SKIP: "*)
				emu_report "$r"
				case $r in "FAIL: "*) last_fail=${r#FAIL: } last_fail=${last_fail%%:*} ;; esac
				;;
			esac
			;;
		*"KVMBOX-L "*)
			read -r name text <<<"${line#*KVMBOX-L }"
			[ "$name" = "$last_fail" ] && printf '    | %s\n' "$text"
			;;
		esac
	done
	exec 3<&-
	wait "$qpid"
	EMU_QRC=$?
}

# emu_run WHY_HERE: run the SELECTED tests in the emulated host; WHY_HERE says why not here.
emu_run() {
	local why_here=$1 why bin dir tag out d t0 name rest boot why_end
	local -a todo
	declare -gA EMU_WANT=() EMU_DONE=()
	while read -r name rest; do EMU_WANT[$name]=1; done <<<"$SELECTED"
	# shellcheck source=tests/linux/lib.sh
	source "$ROOT/tests/linux/lib.sh"
	# One host thread for both emulated CPUs. With QEMU's multi-threaded TCG, the emulated
	# SVM corrupted memory under the nested KVM: tiny guests triple-faulted or stopped (right
	# after boot too), the emulated host's kernel panicked with "corrupted stack end detected"
	# in a kvmbox vCPU thread, or the host wedged (DEVELOPERS.md, Known traps, has the counts:
	# 14 bad runs of about 50 with it, 0 of 24 without). The tier takes about 20% longer.
	# KVMBOX_HOST_TCG_THREAD=multi brings MTTCG back. (The Linux tier keeps MTTCG: its SMP
	# Linux guests spin on each other and time out when both emulated CPUs share a thread.)
	KB_TCG_THREAD=${KVMBOX_HOST_TCG_THREAD:-single}
	if ! why=$(kb_have_qemu); then
		emu_all SKIP "$why_here; no emulated host either: $why"
		return
	fi
	bin=$(readlink -f "$KVMBOX") || { emu_all FAIL "cannot resolve $KVMBOX"; return; }
	dir=${bin%/*}
	tag=${dir##*/}
	[ "$tag" = build ] && tag=plain
	out=${KVMBOX_GUESTS_OUT:-$ROOT/build/guests/emu/$tag}
	EMU_TMO=${KVMBOX_GUESTS_TIMEOUT:-900}
	mkdir -p "$out" || { emu_all FAIL "cannot create $out"; return; }
	rm -f "$out"/host-boot[12].log
	d=$(mktemp -d) || { emu_all FAIL "mktemp -d failed"; return; }
	if ! why=$(emu_tree "$d" "$bin" 2>&1); then
		rm -rf -- "$d"
		emu_all FAIL "cannot build the emulated host's image: $why"
		return
	fi
	t0=$EPOCHSECONDS
	for boot in 1 2 3; do
		mapfile -t todo < <(emu_todo)
		emu_env "$d/kvmbox/guests/inside.env" "$EMU_BIN" "${todo[@]}"
		if ! kb_host_initrd_from "$out/host-initrd" "$d" 2>"$out/build.err"; then
			rm -rf -- "$d"
			cat "$out/build.err" >&2
			emu_all SKIP "$why_here; cannot build the emulated host: $(tail -n1 "$out/build.err")"
			return
		fi
		emu_boot "$out/host-initrd" "$out/host.log"
		echo "guests: emulated host exited with status $EMU_QRC ($EMU_STATE) after $((EPOCHSECONDS - t0))s" \
			>>"$out/host.log"
		# Ended on its own before it finished (a panic of its kernel, a reset of the emulated
		# CPU; not a timeout): as a wedge, the tests without a result get a second boot.
		if [ "$EMU_STATE" = booting ] || [ "$EMU_STATE" = ready ]; then
			if [ "$EMU_QRC" != 124 ] && [ "$EMU_QRC" != 137 ] && [ -z "$EMU_NOKVM" ]; then
				EMU_STATE=stopped
				EMU_WHY="it stopped (qemu status $EMU_QRC; $(kb_host_death "$out/host.log"))"
			fi
		fi
		if [ -n "$EMU_NOKVM" ]; then
			rm -rf -- "$d"
			emu_all SKIP "$why_here; no usable /dev/kvm in the emulated host either: $EMU_NOKVM"
			return
		fi
		case $EMU_STATE in wedged | stopped) ;; *) break ;; esac
		[ $boot -lt 3 ] && [ -n "$(emu_todo)" ] || break
		mv "$out/host.log" "$out/host-boot$boot.log"
		echo "guests: the emulated host $EMU_STATE${EMU_CUR:+ during $EMU_CUR} ($EMU_WHY; log: $out/host-boot$boot.log);" \
			"running the $(emu_todo | wc -l) tests without a result in a new boot" >&2
	done
	rm -rf -- "$d"
	case $EMU_STATE in
	finished) why_end="no result line from the emulated host" ;;
	wedged | stopped) why_end="the emulated host $EMU_STATE${EMU_CUR:+ during $EMU_CUR} (the last time: $EMU_WHY), in all three boots" ;;
	*)
		if [ "$EMU_QRC" = 124 ] || [ "$EMU_QRC" = 137 ]; then
			why_end="the emulated host timed out after ${EMU_TMO}s before this test ended"
		else
			why_end="the emulated host stopped (qemu status $EMU_QRC) before this test ended"
		fi
		;;
	esac
	emu_all FAIL "$why_end (see $out/host.log)"
	echo "guests: $((EPOCHSECONDS - t0))s in the emulated host ($tag); log in $out/host.log" >&2
}
