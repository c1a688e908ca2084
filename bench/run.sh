#!/bin/bash
# bench/run.sh - `make bench`: measure kvmbox booting Linux in the emulated host, side by side
# with kvmtool when there is one.
#
#   bench/run.sh [RUNS]     (default 5, at least 5 recommended)
#   KVMBOX_BIN=path         the glibc static kvmbox (default build/kvmbox-static)
#   KVMBOX_MUSL_BIN=path    the musl static kvmbox (default build/musl/kvmbox-static, if built)
#   KVMTOOL=path            a static kvmtool (lkvm-static) to boot the same guest side by side;
#                           default: lkvm-static or lkvm on PATH; none: the kvmbox columns only
#   KVMBOX_BENCH_LOG=file   no emulated host: report the figures of an earlier run's host.log
#   KVMBOX_BENCH_PARTS=list only these parts of host-bench.sh: boot,trace,seccomp,up,diskcopy,virtio,latency
#                           (default all; e.g. boot,trace for the boot and exit figures alone), or
#                           vsock: of the virtio phases only the idle boot and the four vsock ones
#
# One emulated-host boot (qemu TCG, -cpu max, kvm_amd; see DEVELOPERS.md) runs
# tests/linux/host-bench.sh: RUNS boots of the Debian guest kernel (1 vCPU, 256M, busybox
# initramfs) per VMM, round robin, then one traced boot per VMM, the virtio I/O phases (vhost-net
# and user space) and the latency bench (cyclictest). This script prints the figures with the
# method as markdown, also written to build/bench/results.md (per-run data beside it).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/linux/lib.sh

RUNS=${1:-5}
BIN=${KVMBOX_BIN:-$KB_DEFAULT_BIN}
MUSL_BIN=${KVMBOX_MUSL_BIN:-build/musl/kvmbox-static}
# The musl build and a kvmtool found on PATH are this machine's (x86_64): an arm64 bench takes
# only ones given for it (KVMBOX_MUSL_BIN, KVMTOOL: an arm64 lkvm-static, checked below).
if [[ $KB_ARCH != x86_64 ]]; then
	MUSL_BIN=${KVMBOX_MUSL_BIN:-}
	KVMTOOL=${KVMTOOL:-}
else
	KVMTOOL=${KVMTOOL:-$(command -v lkvm-static || command -v lkvm || true)}
fi
# KVMBOX_ARCH=arm64: the same bench in the emulated arm64 host, results in build/arm64/bench.
OUT=$(dirname "$KB_DEFAULT_OUT")/bench
mkdir -p "$OUT"

why=$(kb_have_qemu) || { echo "bench: $why" >&2; exit 1; }
[[ -x $BIN ]] || { echo "bench: $BIN missing (make static; arm64: make ARCH=arm64 static)" >&2; exit 1; }
# The extra VMMs go in under the names host-bench.sh looks for.
extra=()
rm -rf "$OUT/vmms"
mkdir -p "$OUT/vmms"
if [[ -x $MUSL_BIN ]]; then
	cp "$MUSL_BIN" "$OUT/vmms/kvmbox-musl" && extra+=("$OUT/vmms/kvmbox-musl")
else
	echo "bench: no musl build ($MUSL_BIN; make static-musl): its column is left out" >&2
fi
if [[ -n $KVMTOOL ]]; then
	[[ -x $KVMTOOL ]] || { echo "bench: KVMTOOL=$KVMTOOL is not an executable" >&2; exit 1; }
	m=$(LC_ALL=C readelf -h "$KVMTOOL" 2>/dev/null | sed -n 's/^ *Machine: *//p')
	case $KB_ARCH:$m in
	x86_64:*X86-64* | arm64:*AArch64*) ;;
	*)
		echo "bench: $KVMTOOL is built for '${m:-not an ELF file}', not $KB_ARCH: give an lkvm-static for $KB_ARCH" >&2
		exit 1
		;;
	esac
	if LC_ALL=C readelf -l "$KVMTOOL" 2>/dev/null | grep -q INTERP; then
		echo "bench: $KVMTOOL is dynamically linked; the emulated host has no libraries: give a static one (lkvm-static)" >&2
		exit 1
	fi
	# Stripped like kvmbox-static, so the sizes compare the same thing (lkvm-static keeps its
	# symbols and debug information).
	st=strip
	[[ $KB_ARCH == arm64 && $(uname -m) != aarch64 ]] && st=aarch64-linux-gnu-strip
	"$st" -o "$OUT/vmms/kvmtool" "$KVMTOOL" && extra+=("$OUT/vmms/kvmtool")
else
	echo "bench: no kvmtool (KVMTOOL=path, or lkvm-static on PATH): kvmbox alone" >&2
fi
# The latency bench runs its VM in huge pages: 160 of 2 MiB are reserved at boot.
export KB_HOST_HUGEPAGES=${KB_HOST_HUGEPAGES:-160}
if [[ -z ${KVMBOX_BENCH_LOG:-} ]]; then
	kb_build_host_initrd "$OUT/host-initrd" "$BIN" "$KB_HOST_TESTS" tests/linux/host-bench.sh \
		"${extra[@]}" || exit 1
fi

nv=$((2 + ${#extra[@]}))
t0=$EPOCHSECONDS
if [[ -n ${KVMBOX_BENCH_LOG:-} ]]; then
	[[ $KVMBOX_BENCH_LOG -ef $OUT/host.log ]] || tr -d '\r' <"$KVMBOX_BENCH_LOG" >"$OUT/host.log" || exit 1
else
	echo "bench: $RUNS boots x $nv VMMs, 15 virtio boots and the latency bench in the emulated host" \
		"(about $((300 + RUNS * nv * 15))s)..." >&2
	# The host prints a heartbeat ("KVMBOX-I alive") every 10 s. After 15 s without a line it gets
	# a key press through QEMU's monitor (OUT/monitor.sock), which wakes a CPU that QEMU's
	# one-CPU TCG left halted with a timer interrupt pending (DEVELOPERS.md, Known traps): each
	# kick, with where the CPU was at the first, goes to OUT/kicks.log (kb_kicker). Lines reach
	# host.log as they come.
	: >"$OUT/kicks.log"
	: >"$OUT/host.log"
	kb_kicker $$ "$OUT/host.log" "$OUT/monitor.sock" "bench: " "$OUT/kicks.log" &
	kicker=$!
	KB_MONITOR=$OUT/monitor.sock kb_boot_host "$OUT/host-initrd" $((1500 + RUNS * nv * 120)) \
		"kvmbox.host=bench kvmbox.runs=$RUNS${KVMBOX_BENCH_PARTS:+ kvmbox.parts=$KVMBOX_BENCH_PARTS}" 2>&1 |
		sed -u 's/\r//g' >"$OUT/host.log"
	kill "$kicker" 2>/dev/null
	wait "$kicker" 2>/dev/null
fi
elapsed=$((EPOCHSECONDS - t0))
if grep -q 'KVMBOX-HOST nokvm' "$OUT/host.log"; then
	echo "bench: no usable /dev/kvm in the emulated host: $(grep -o 'nokvm.*' "$OUT/host.log")" >&2
	exit 1
fi
grep -o 'KVMBOX-B .*' "$OUT/host.log" >"$OUT/runs.txt"
# The boot part may be left out (KVMBOX_BENCH_PARTS): any part's lines are results.
if ! grep -q -E 'KVMBOX-(B|BS|UP|DC|VB|LAT) ' "$OUT/host.log"; then
	echo "bench: no results (log: $OUT/host.log)" >&2
	exit 1
fi
grep -o 'KVMBOX-X .*' "$OUT/host.log" >"$OUT/exits.txt"
grep -o 'KVMBOX-SIZE .*' "$OUT/host.log" >"$OUT/sizes.txt"
grep -o 'KVMBOX-VB .*' "$OUT/host.log" >"$OUT/virtio.txt"
grep -o 'KVMBOX-LAT .*' "$OUT/host.log" >"$OUT/latency.txt"

kver=$(grep -o 'KVMBOX-HOST up [^ ]* .*' "$OUT/host.log" | awk '{print $4}')
version=$(grep -o 'KVMBOX-I bench: .*' "$OUT/host.log" | sed 's/.*kvmbox \(.*\), [0-9]* bytes/\1/')

{
	echo "kvmbox $version at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d)," \
		"guest and emulated host kernel $kver,"
	echo "emulated host ($KB_ARCH): qemu $(${KB_QEMU} --version | head -n1 | awk '{print $4}') TCG (thread=$KB_TCG_THREAD) -smp ${KVMBOX_HOST_CPUS:-2} -cpu ${KVMBOX_HOST_CPU:-max}," \
		"real host: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
	[[ -n $KVMTOOL ]] && echo "kvmtool: $KVMTOOL ($("$KVMTOOL" version 2>/dev/null | head -n1))."
	if [[ -s $OUT/runs.txt ]]; then
		echo
		echo "### Boot, side by side"
		echo
		echo "Method: $RUNS boots per VMM, round robin, of the Debian kernel (bzImage; arm64: its Image) (1 vCPU,"
		echo "256 MiB, a 1 MB busybox initramfs whose /init prints a marker, sleeps 3 s and powers off; on"
		echo "x86_64 kvmbox-pvh boots the ELF vmlinux through its PVH entry instead). boot: /proc/uptime of the emulated host from just"
		echo "before the VMM starts to the marker line read from its console (10 ms resolution). RSS: Rss"
		echo "summed over /proc/PID/smaps at the marker, without guest RAM (the largest anonymous mapping"
		echo "of at least 256 MiB). KVM exits: the VM's debugfs counters at the marker. Exits to user"
		echo "space: one more boot per VMM with the tracepoint kvm:kvm_userspace_exit on until the marker."
		echo "Cells: median (min-max)."
		echo
		awk -v exf="$OUT/exits.txt" -v szf="$OUT/sizes.txt" '
		BEGIN {
			while ((getline l < exf) > 0) {
				split(l, f, " ")
				v = f[2]; sub(/^vmm=/, "", v)
				if (f[3] == "uexit") uexit[v] += f[5]
			}
			while ((getline l < szf) > 0) {
				split(l, f, " ")
				v = f[2]; sub(/^vmm=/, "", v); b = f[3]; sub(/^bytes=/, "", b)
				size[v] = b + 0 # a number: sub() left a string, which compares as text
			}
			size["kvmbox-pvh"] = ("kvmbox-musl" in size) ? size["kvmbox-musl"] : size["kvmbox"]
		}
		{
			delete f
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			v = f["vmm"]
			if (!(v in seen)) { seen[v] = 1; vmms[++nv] = v }
			runs[v]++
			if (f["boot_s"] == "-" || f["boot_s"] == "") { failed[v]++; next }
			if (f["status"] != "0" && f["status"] != "stopped") badst[v] = badst[v] " " f["status"]
			for (k in f) {
				if (k == "vmm" || k == "run" || k == "status" || f[k] == "-" || f[k] == "") continue
				val[v, k, ++cnt[v, k]] = f[k] + 0
			}
		}
		function med(v, k,    n, a, b, x, s) {
			n = cnt[v, k]
			if (!n) return ""
			for (a = 1; a <= n; a++) s[a] = val[v, k, a]
			for (a = 2; a <= n; a++) { x = s[a]; for (b = a - 1; b >= 1 && s[b] > x; b--) s[b + 1] = s[b]; s[b + 1] = x }
			lo[v, k] = s[1]; hi[v, k] = s[n]
			return (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
		}
		function cell(v, k, fmt,    m) {
			m = med(v, k)
			if (m == "") return "-"
			return sprintf(fmt " (" fmt "-" fmt ")", m, lo[v, k], hi[v, k])
		}
		function row(label, k, fmt,    j, line) {
			line = "| " label
			for (j = 1; j <= nv; j++) line = line " | " cell(vmms[j], k, fmt)
			print line " |"
		}
		function name(v) {
			if (v == "kvmbox") return "kvmbox (glibc static)"
			if (v == "kvmbox-musl") return "kvmbox (musl static)"
			if (v == "kvmbox-pvh") return "kvmbox (musl, PVH vmlinux)"
			return v
		}
		function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
		END {
			line = "| figure"; sep = "|---"
			for (j = 1; j <= nv; j++) { line = line " | " name(vmms[j]); sep = sep "|---:" }
			print line " |"; print sep "|"
			row("boot to init marker (s, under TCG)", "boot_s", "%.2f")
			row("RSS without guest RAM (KiB)", "rss_kb", "%.0f")
			row("guest RAM resident at init (KiB)", "ram_rss_kb", "%.0f")
			row("KVM exits, all (debugfs exits)", "kvm_exits", "%.0f")
			row("port I/O exits (debugfs io_exits)", "kvm_io_exits", "%.0f")
			row("MMIO exits to user space (debugfs mmio_exits)", "kvm_mmio_exits", "%.0f")
			line = "| exits to user space during boot (traced)"
			for (j = 1; j <= nv; j++) line = line " | " ((vmms[j] in uexit) ? uexit[vmms[j]] : "-")
			print line " |"
			line = "| static binary, stripped (bytes)"
			for (j = 1; j <= nv; j++) line = line " | " ((vmms[j] in size) ? size[vmms[j]] : "-")
			print line " |"
			for (j = 1; j <= nv; j++) {
				v = vmms[j]
				if (failed[v]) printf "\n%s: %d of %d boots never reached the marker\n", name(v), failed[v], runs[v]
				if (badst[v] != "") printf "\n%s: exit statuses%s (want 0)\n", name(v), badst[v]
			}
			# The goals of the embedded profile, for the musl build (the one for flash) if there is one.
			k = ("kvmbox-musl" in seen) ? "kvmbox-musl" : "kvmbox"
			print ""
			print "### Goals (" name(k) " against kvmtool)"
			print ""
			print "| goal | measured | met |"
			print "|---|---|---|"
			if ("kvmtool" in seen) {
				r = ratio(uexit[k], uexit["kvmtool"])
				printf "| exits to user space during boot at most 0.5x kvmtool | %s / %s = %s | %s |\n", uexit[k], uexit["kvmtool"], r, (r != "-" && r <= 0.5) ? "yes" : "no"
				a = med(k, "boot_s"); b = med("kvmtool", "boot_s"); r = ratio(a, b)
				printf "| boot to init at most 0.8x kvmtool | %.2f / %.2f s = %s | %s |\n", a, b, r, (r != "-" && r <= 0.8) ? "yes" : "no"
			} else {
				print "| exits and boot against kvmtool | no kvmtool in this run (KVMTOOL=path) | - |"
			}
			for (j = 1; j <= nv; j++) {
				v = vmms[j]
				if (v == "kvmtool" || v == "kvmbox-pvh") continue
				a = med(v, "rss_kb")
				printf "| %s: RSS without guest RAM at most 1024 KiB | %.0f KiB | %s |\n", name(v), a, (a != "" && a <= 1024) ? "yes" : "no"
				printf "| %s: at most 500 KiB stripped | %.1f KiB | %s |\n", name(v), size[v] / 1024, (size[v] != "" && size[v] <= 512000) ? "yes" : "no"
			}
			if (("kvmbox-pvh" in seen) && (("kvmbox-musl" in seen) || ("kvmbox" in seen))) {
				b = ("kvmbox-musl" in seen) ? "kvmbox-musl" : "kvmbox"
				p = med("kvmbox-pvh", "boot_s"); z = med(b, "boot_s")
				print ""
				print "### PVH (ELF vmlinux) against the bzImage"
				print ""
				printf "Same kvmbox, same guest: ELF vmlinux through PVH %.2f s, bzImage %.2f s (medians): PVH takes %.2fx the bzImage'\''s time (%+.2f s).\n", p, z, p / z, p - z
			}
		}' "$OUT/runs.txt"
	fi
	if [[ -s $OUT/exits.txt ]]; then
		echo
		echo "Exits to user space from the VMM's start to the guest init marker (traced run), and the"
		echo "busiest I/O ports (every port I/O exit, handled in the kernel or not):"
		echo
		awk '{ v = $2; sub(/^vmm=/, "", v)
			if ($3 == "uexit") printf "- %s: %s %d\n", v, $4, $5
			else printf "- %s: port %s %s %d\n", v, $4, $5, $6 }' "$OUT/exits.txt"
	fi
	if [[ -s $OUT/virtio.txt ]]; then
		echo
		echo "### Virtio I/O"
		echo
		echo "Method: one guest boot per transfer with a 272 MiB sparse disk on tmpfs and a tap, timed by"
		echo "the guest (kvmclock). Exits to user space per MiB: kvmbox --stats of that boot minus those"
		echo "of an idle boot, divided by the MiB moved. The network transfers run on vhost-net (the"
		echo "default when /dev/vhost-net is usable) and again with vhost=off (kvmbox's own worker)."
		echo
		awk '
		{
			delete f
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			p = f["phase"]
			ph[++n] = p; mb[p] = f["mb"]; secs[p] = f["secs"]; st[p] = f["status"]; gst[p] = f["guest_status"]
			ex[p] = f["kvmbox_exits"]; io[p] = f["kvmbox_io"]; mm[p] = f["kvmbox_mmio"]
			if (p ~ /^vsocklat/) {
				lat[p] = 1; rtts[p] = f["rtts"]; sz[p] = f["size"]; lmin[p] = f["min_us"]; lmed[p] = f["median_us"]
				lmean[p] = f["mean_us"]; l99[p] = f["p99_us"]; lmax[p] = f["max_us"]
			}
		}
		function label(p) {
			if (p ~ /-off$/) { sub(/-off$/, "", p); return label(p) " (--seccomp off)" }
			if (p == "blkwrite") return "virtio-blk sequential write, dd bs=1M oflag=direct"
			if (p == "blkread") return "virtio-blk sequential read, dd bs=1M iflag=direct"
			if (p == "netout") return "TCP guest -> emulated host, nc, vhost-net"
			if (p == "netin") return "TCP emulated host -> guest, nc, vhost-net"
			if (p == "netout-user") return "TCP guest -> emulated host, nc, vhost=off"
			if (p == "netin-user") return "TCP emulated host -> guest, nc, vhost=off"
			if (p == "vsock") return "vsock guest <-> emulated host echo (MiB each way), vhost-vsock"
			if (p == "vsock-uds") return "vsock guest <-> emulated host echo (MiB each way), uds= (kvmbox)"
			if (p == "vsocklat") return "vsock round trips guest -> emulated host echo, vhost-vsock"
			if (p == "vsocklat-uds") return "vsock round trips guest -> emulated host echo, uds= (kvmbox)"
			return p
		}
		function per(x, base, m) { return (x == "" || base == "" || m == 0) ? "-" : sprintf("%.2f", (x - base) / m) }
		END {
			printf "| transfer | MiB | s | MiB/s | exits/MiB | io/MiB | mmio/MiB | status |\n"
			printf "|---|---:|---:|---:|---:|---:|---:|---|\n"
			for (j = 1; j <= n; j++) {
				p = ph[j]
				if (p == "idle" || (p in lat)) continue
				rate = (secs[p] != "-" && secs[p] > 0) ? sprintf("%.1f", mb[p] / secs[p]) : "-"
				printf "| %s | %d | %s | %s | %s | %s | %s | %s/%s |\n", label(p), mb[p], secs[p], rate,
					per(ex[p], ex["idle"], mb[p]), per(io[p], io["idle"], mb[p]), per(mm[p], mm["idle"], mb[p]),
					st[p], gst[p]
			}
			printf "| (idle boot: exits to user space) | | | | %s | %s | %s | %s |\n", ex["idle"], io["idle"], mm["idle"], st["idle"]
			nl = 0
			for (j = 1; j <= n; j++) {
				p = ph[j]
				if (!(p in lat)) continue
				if (!nl++) {
					print ""
					print "Round trips (vsock-echo ping in the guest: one message out, its echo back, the next"
					print "after it; the guest'\''s clock; exits to user space: kvmbox --stats of the whole boot, to set"
					print "against the transfer boots'\'' above, which have the same devices):"
					print ""
					print "| path | round trips x bytes | median (us) | mean (us) | p99 (us) | min (us) | max (us) | exits (boot) | status |"
					print "|---|---:|---:|---:|---:|---:|---:|---:|---|"
				}
				printf "| %s | %s x %s | %s | %s | %s | %s | %s | %s | %s/%s |\n", label(p), rtts[p] == "" ? "-" : rtts[p],
					sz[p] == "" ? "-" : sz[p], lmed[p] == "" ? "-" : lmed[p], lmean[p] == "" ? "-" : lmean[p],
					l99[p] == "" ? "-" : l99[p], lmin[p] == "" ? "-" : lmin[p], lmax[p] == "" ? "-" : lmax[p],
					ex[p] == "" ? "-" : ex[p], st[p], gst[p]
			}
		}' "$OUT/virtio.txt"
		echo
		echo "(status: kvmbox exit status / the transfer command's status in the guest)"
	fi
	if [[ -s $OUT/latency.txt ]]; then
		echo
		echo "### Latency"
		echo
		echo "Method: cyclictest (Debian rt-tests) in the guest: one thread, SCHED_FIFO 80, 1 ms period,"
		echo "20 s, memory locked, 1 us histogram; meanwhile a second VM spins its vCPU and the emulated"
		echo "host runs a busy loop per CPU. plain: no options; rt: --vcpu-affinity 0=1 --io-affinity 0"
		echo "--rt-priority 50 --mlock --hugepages --prealloc. Under TCG the absolute values are the"
		echo "emulation's; the ratio rt/plain is the figure (docs/PERFORMANCE.md: on real hardware)."
		echo
		awk '
		{
			delete f
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			m = f["mode"]; p[m] = f["p999_us"]; x[m] = f["max_us"]; a[m] = f["avg_us"]; s[m] = f["samples"]; st[m] = f["status"] "/" f["kvmbox_status"]
		}
		function r(u, v) { return (u + 0 > 0 && v != "" && u !~ />/ && v !~ />/) ? sprintf("%.2f", v / u) : "-" }
		END {
			print "| figure | plain | rt | rt / plain |"
			print "|---|---:|---:|---:|"
			printf "| 99.9th percentile (us) | %s | %s | %s |\n", p["plain"], p["rt"], r(p["plain"], p["rt"])
			printf "| max (us) | %s | %s | %s |\n", x["plain"], x["rt"], r(x["plain"], x["rt"])
			printf "| average (us) | %s | %s | %s |\n", a["plain"], a["rt"], r(a["plain"], a["rt"])
			printf "| samples | %s | %s | |\n", s["plain"], s["rt"]
			printf "| status (cyclictest/kvmbox) | %s | %s | |\n", st["plain"], st["rt"]
		}' "$OUT/latency.txt"
	elif grep -q 'latency bench skipped' "$OUT/host.log"; then
		echo
		grep -o 'latency bench skipped.*' "$OUT/host.log"
	fi
	if grep -q 'KVMBOX-BS ' "$OUT/host.log"; then
		echo
		echo "The sandbox's cost: the same boot with the default --seccomp on (the runs above) and"
		echo "with --seccomp off (the virtio rows marked --seccomp off above are the I/O side);"
		echo "both are the glibc build (kvmbox column):"
		echo
		echo "| boot to guest init marker (s) | median | min | max | runs |"
		echo "|---|---:|---:|---:|---:|"
		{
			grep -o 'KVMBOX-B vmm=kvmbox run=.*' "$OUT/host.log" | sed 's/^KVMBOX-B vmm=kvmbox /on /'
			grep -o 'KVMBOX-BS .*' "$OUT/host.log" | sed 's/^KVMBOX-BS /off /'
		} | awk '
		{
			for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "boot_s" && kv[2] != "-") v[$1, ++n[$1]] = kv[2] + 0 }
		}
		END {
			split("on off", modes, " ")
			for (m = 1; m <= 2; m++) {
				k = modes[m]; c = n[k]
				if (!c) continue
				for (a = 1; a <= c; a++) s[a] = v[k, a]
				for (a = 2; a <= c; a++) { x = s[a]; for (b = a - 1; b >= 1 && s[b] > x; b--) s[b + 1] = s[b]; s[b + 1] = x }
				med = (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
				printf "| --seccomp %s | %.2f | %.2f | %.2f | %d |\n", k, med, s[1], s[c], c
			}
		}'
	fi
	if grep -q 'KVMBOX-UP ' "$OUT/host.log"; then
		echo
		echo "kvmbox up: three bench guests (1 vCPU, 256M each) from one file, against the same three"
		echo "started by hand (three kvmbox run at once); all three at their init marker, and the"
		echo "supervisor's own RSS then:"
		echo
		echo "| start | all three at init (s), median | min | max | runs | up's RSS (KiB), median |"
		echo "|---|---:|---:|---:|---:|---:|"
		grep -o 'KVMBOX-UP .*' "$OUT/host.log" | awk '
		{
			m = ""; t = ""; r = ""
			for (i = 2; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == "mode") m = kv[2]
				else if (kv[1] == "all_init_s" && kv[2] != "-") t = kv[2] + 0
				else if (kv[1] == "up_rss_kb" && kv[2] != "-") r = kv[2] + 0
			}
			if (t != "") v[m, ++n[m]] = t
			if (r != "") w[m, ++nr[m]] = r
		}
		function med(arr, k, c,   a, b, x, s) {
			for (a = 1; a <= c; a++) s[a] = arr[k, a]
			for (a = 2; a <= c; a++) { x = s[a]; for (b = a - 1; b >= 1 && s[b] > x; b--) s[b + 1] = s[b]; s[b + 1] = x }
			lo = s[1]; hi = s[c]
			return (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
		}
		END {
			split("up run", modes, " ")
			for (i = 1; i <= 2; i++) {
				k = modes[i]; c = n[k]
				if (!c) { printf "| %s | - | - | - | 0 | - |\n", k == "up" ? "kvmbox up" : "3 x kvmbox run"; continue }
				m = med(v, k, c); l = lo; h = hi
				rs = nr[k] ? sprintf("%d", med(w, k, nr[k])) : "-"
				printf "| %s | %.2f | %.2f | %.2f | %d | %s |\n", k == "up" ? "kvmbox up" : "3 x kvmbox run", m, l, h, c, rs
			}
		}'
	fi
	if grep -q 'KVMBOX-DC ' "$OUT/host.log"; then
		echo
		echo "Live migration without shared storage (\`migrate unix:... disks=copy\`): the life guest (1 vCPU,"
		echo "256 MiB, idle but for its console counter) with a 256 MiB disk of random data, to a"
		echo "destination on a zeroed image in the same emulated host; figures from the migrate reply."
		echo
		echo "| run | status | rounds | MiB sent in all | of it disk | total (ms) | downtime (ms) | images equal |"
		echo "|---:|---:|---:|---:|---:|---:|---:|---|"
		grep -o 'KVMBOX-DC .*' "$OUT/host.log" | awk '
		{
			delete f
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			mb = f["bytes"] == "" ? "-" : sprintf("%.1f", f["bytes"] / 1048576)
			db = f["disk_bytes"] == "" ? "-" : sprintf("%.1f", f["disk_bytes"] / 1048576)
			printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f["run"], f["status"], f["rounds"], mb, db, f["total_ms"], f["downtime_ms"], f["equal"]
		}'
	fi
	k=$(grep -c 'a key press to wake it' "$OUT/kicks.log" 2>/dev/null)
	if [[ -z ${KVMBOX_BENCH_LOG:-} ]] && ((${k:-0} > 0)); then
		echo
		echo "The emulated host stopped printing $k times and went on after a key press (QEMU's one-CPU"
		echo "TCG left its CPU halted with a timer interrupt pending; $OUT/kicks.log): what ran then is slower."
	fi
	echo
	if [[ -n ${KVMBOX_BENCH_LOG:-} ]]; then
		echo "(figures from $KVMBOX_BENCH_LOG; per-run data: $OUT/runs.txt, exits.txt, virtio.txt, latency.txt)"
	else
		echo "(whole bench: ${elapsed}s; per-run data: $OUT/runs.txt, exits.txt, virtio.txt, latency.txt)"
	fi
} | tee "$OUT/results.md"
