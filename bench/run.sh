#!/bin/bash
# bench/run.sh - `make bench`: measure kvmbox booting Linux in the emulated host.
#
#   bench/run.sh [RUNS]     (default 5, at least 5 recommended)
#
# One emulated-host boot (qemu TCG, -cpu max, kvm_amd; see DEVELOPERS.md) runs
# tests/linux/host-bench.sh, which boots the Debian guest kernel (bzImage, 1 vCPU, 256M,
# busybox initramfs) RUNS times with build/kvmbox-static and samples each run (method in
# that script and in docs/PERFORMANCE.md). This script prints median, min and max of each
# figure as a markdown table, also written to build/bench/results.md.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/linux/lib.sh

RUNS=${1:-5}
BIN=${KVMBOX_BIN:-$KB_DEFAULT_BIN}
# KVMBOX_ARCH=arm64: the same bench in the emulated arm64 host, results in build/arm64/bench.
OUT=$(dirname "$KB_DEFAULT_OUT")/bench
mkdir -p "$OUT"

why=$(kb_have_qemu) || { echo "bench: $why" >&2; exit 1; }
[[ -x $BIN ]] || { echo "bench: $BIN missing (make static; arm64: make ARCH=arm64 static)" >&2; exit 1; }
kb_build_host_initrd "$OUT/host-initrd" "$BIN" "$KB_HOST_TESTS" tests/linux/host-bench.sh ||
	exit 1

echo "bench: $RUNS boot runs and 5 virtio runs in the emulated host (about $((100 + RUNS * 15))s)..." >&2
t0=$EPOCHSECONDS
kb_boot_host "$OUT/host-initrd" $((900 + RUNS * 120)) "kvmbox.host=bench kvmbox.runs=$RUNS" 2>&1 |
	tr -d '\r' >"$OUT/host.log"
elapsed=$((EPOCHSECONDS - t0))
if grep -q 'KVMBOX-HOST nokvm' "$OUT/host.log"; then
	echo "bench: no usable /dev/kvm in the emulated host: $(grep -o 'nokvm.*' "$OUT/host.log")" >&2
	exit 1
fi
grep -o 'KVMBOX-B .*' "$OUT/host.log" >"$OUT/runs.txt"
if [[ ! -s $OUT/runs.txt ]]; then
	echo "bench: no results (log: $OUT/host.log)" >&2
	exit 1
fi

size=$(stat -c %s "$BIN")
kver=$(grep -o 'KVMBOX-HOST up [^ ]* .*' "$OUT/host.log" | awk '{print $4}')
version=$(grep -o 'KVMBOX-I bench: .*' "$OUT/host.log" | sed 's/.*kvmbox \(.*\), [0-9]* bytes/\1/')

{
	echo "kvmbox $version, $(date -u +%Y-%m-%d), guest and emulated host kernel $kver,"
	echo "emulated host ($KB_ARCH): qemu $(${KB_QEMU} --version | head -n1 | awk '{print $4}') TCG -smp 2 -cpu max," \
		"real host: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
	echo
	awk -v size="$size" -v bin="$BIN" '
	{
		# A run counts when the guest reached its init marker; a non-zero exit status
		# after that is reported below but does not void the boot figures.
		ok = 0
		for (i = 2; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "boot_s" && kv[2] != "-")
				ok = 1
			if (kv[1] == "status" && kv[2] != "0")
				badst[kv[2]]++
		}
		nruns++
		if (!ok)
			next
		good++
		for (i = 2; i <= NF; i++) {
			split($i, kv, "=")
			k = kv[1]
			if (k == "run" || k == "status" || kv[2] == "-" || kv[2] == "")
				continue
			if (!(k in cnt))
				order[++nkeys] = k
			val[k, ++cnt[k]] = kv[2] + 0
		}
	}
	function label(k) {
		if (k == "boot_s") return "boot to guest init marker (s)"
		if (k == "rss_kb") return "kvmbox RSS without guest RAM (KiB)"
		if (k == "ram_rss_kb") return "guest RAM resident at init (KiB)"
		if (k ~ /^kvm_/) { sub(/^kvm_/, "", k); return "KVM debugfs " k " at init" }
		if (k ~ /^kvmbox_/) { sub(/^kvmbox_/, "", k); return "user-space exits (kvmbox --stats) " k }
		return k
	}
	END {
		printf "| figure | median | min | max | runs |\n|---|---:|---:|---:|---:|\n"
		for (j = 1; j <= nkeys; j++) {
			k = order[j]
			n = cnt[k]
			for (a = 1; a <= n; a++) s[a] = val[k, a]
			for (a = 2; a <= n; a++) {
				x = s[a]
				for (b = a - 1; b >= 1 && s[b] > x; b--) s[b + 1] = s[b]
				s[b + 1] = x
			}
			med = (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
			fmt = (k == "boot_s") ? "| %s | %.2f | %.2f | %.2f | %d |\n" : "| %s | %.0f | %.0f | %.0f | %d |\n"
			printf fmt, label(k), med, s[1], s[n], n
		}
		printf "| size of %s (bytes) | %d | | | |\n", bin, size
		if (good < nruns)
			printf "\n%d of %d runs never reached the guest init marker; see runs.txt\n", nruns - good, nruns
		for (st in badst)
			printf "\n%d of %d runs ended with kvmbox status %s (expected 0)\n", badst[st], nruns, st
	}' "$OUT/runs.txt"
	if grep -q 'KVMBOX-X uexit' "$OUT/host.log"; then
		echo
		echo "Exits to user space from kvmbox start to the guest init marker (one traced run):"
		echo
		echo "| exit reason | count |"
		echo "|---|---:|"
		grep -o 'KVMBOX-X uexit .*' "$OUT/host.log" | awk '{ printf "| %s | %d |\n", $3, $4; t += $4 }
			END { printf "| total | %d |\n", t }'
		echo
		echo "| busiest I/O ports (all PIO exits, in-kernel or not) | access | count |"
		echo "|---|---|---:|"
		grep -o 'KVMBOX-X pio .*' "$OUT/host.log" | awk '{ printf "| %s | %s | %d |\n", $3, $4, $5 }'
	fi
	grep -o 'KVMBOX-VB .*' "$OUT/host.log" >"$OUT/virtio.txt"
	if [[ -s $OUT/virtio.txt ]]; then
		echo
		echo "Virtio I/O (one guest boot per transfer, timed by the guest; exits to user space are"
		echo "kvmbox --stats of that boot minus those of the idle boot, per MiB moved):"
		echo
		awk '
		{
			delete f
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			p = f["phase"]
			ph[++n] = p; mb[p] = f["mb"]; secs[p] = f["secs"]; st[p] = f["status"]; gst[p] = f["guest_status"]
			ex[p] = f["kvmbox_exits"]; io[p] = f["kvmbox_io"]; mm[p] = f["kvmbox_mmio"]
		}
		function label(p) {
			if (p ~ /-off$/) { sub(/-off$/, "", p); return label(p) " (--seccomp off)" }
			if (p == "blkwrite") return "virtio-blk sequential write, dd bs=1M oflag=direct"
			if (p == "blkread") return "virtio-blk sequential read, dd bs=1M iflag=direct"
			if (p == "netout") return "TCP guest -> emulated host, busybox nc"
			if (p == "netin") return "TCP emulated host -> guest, busybox nc"
			return p
		}
		function per(x, base, m) { return (x == "" || base == "" || m == 0) ? "-" : sprintf("%.1f", (x - base) / m) }
		END {
			printf "| transfer | MiB | s | MiB/s | exits/MiB | io/MiB | mmio/MiB | status |\n"
			printf "|---|---:|---:|---:|---:|---:|---:|---|\n"
			for (j = 1; j <= n; j++) {
				p = ph[j]
				if (p == "idle") continue
				rate = (secs[p] != "-" && secs[p] > 0) ? sprintf("%.1f", mb[p] / secs[p]) : "-"
				printf "| %s | %d | %s | %s | %s | %s | %s | %s/%s |\n", label(p), mb[p], secs[p], rate,
					per(ex[p], ex["idle"], mb[p]), per(io[p], io["idle"], mb[p]), per(mm[p], mm["idle"], mb[p]),
					st[p], gst[p]
			}
			printf "| (idle boot: exits to user space) | | | | %s | %s | %s | %s |\n", ex["idle"], io["idle"], mm["idle"], st["idle"]
		}' "$OUT/virtio.txt"
		echo
		echo "(status: kvmbox exit status / the transfer command's status in the guest)"
	fi
	if grep -q 'KVMBOX-BS ' "$OUT/host.log"; then
		echo
		echo "The sandbox's cost: the same boot with the default --seccomp on (the runs above) and"
		echo "with --seccomp off (the virtio rows marked --seccomp off above are the I/O side):"
		echo
		echo "| boot to guest init marker (s) | median | min | max | runs |"
		echo "|---|---:|---:|---:|---:|"
		{
			grep -o 'KVMBOX-B run.*' "$OUT/host.log" | sed 's/^KVMBOX-B /on /'
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
	echo
	echo "(whole bench: ${elapsed}s; per-run data: $OUT/runs.txt, $OUT/virtio.txt)"
} | tee "$OUT/results.md"
