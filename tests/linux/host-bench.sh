#!/bin/sh
# host-bench.sh - kvmbox measurements, run by busybox sh inside the emulated host.
# Usage: host-bench.sh [RUNS]   (default 5)
#
# Each run boots the guest kernel (bzImage, 1 vCPU, 256M) to the guest init's marker; the
# guest then sleeps 3 s (kvmbox.test=bench) so that kvmbox can be sampled, and powers off.
# Prints one line per run:
#   KVMBOX-B run=N status=S boot_s=T rss_kb=R ram_rss_kb=G kvm_<stat>=V... kvmbox_<stat>=V...
# boot_s   /proc/uptime when the marker line reached us minus /proc/uptime just before
#          kvmbox was started (10 ms resolution)
# rss_kb   sum of Rss in /proc/PID/smaps over all mappings except guest RAM (the largest
#          anonymous mapping of at least --memory), sampled when the marker arrived
# kvm_*    KVM's debugfs counters for the VM (/sys/kernel/debug/kvm/PID-FD/), read when the
#          marker arrived: all VM exits ('exits'), and per reason
# Then one untimed run with tracepoints kvm_userspace_exit and kvm_pio, stopped at the marker:
#   KVMBOX-X uexit <KVM_EXIT_reason> <count>      exits to user space during boot, by reason
#   KVMBOX-X pio <port> <pio_read|pio_write> <count>  the busiest I/O ports (in-kernel ones too)
# kvmbox_* kvmbox --stats ("kvmbox: stats: exits=N io=N ..."): returns of KVM_RUN to kvmbox,
#          i.e. exits to user space, over the whole run
# Then the virtio I/O phases (KVMBOX-VB lines, see below).
RUNS=${1:-5}
[ -n "$RUNS" ] || RUNS=5
MEM_MB=256
W=/tmp/kvmbox-bench
mkdir -p $W
# x86 and arm64 names; the other architecture's read as "-".
STATS="exits io_exits mmio_exits halt_exits irq_exits signal_exits irq_window_exits request_irq_exits hypercalls
	insn_emulation mmio_exit_user mmio_exit_kernel wfe_exit_stat wfi_exit_stat hvc_exit_stat"

echo "KVMBOX-I bench: $RUNS runs, kvmbox $(kvmbox --version 2>&1 | head -n1), $(stat -c %s /kvmbox/kvmbox) bytes"
i=1
while [ $i -le $RUNS ]; do
	rm -f $W/fifo
	mkfifo $W/fifo
	read t0 _ </proc/uptime
	kvmbox run --stats --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz \
		-a "console=ttyS0 quiet panic=-1 kvmbox.test=bench" </dev/null >$W/fifo 2>$W/err &
	pid=$!
	(sleep 180; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
	guard=$!
	t1='' rss='' ram='' kvm=''
	while IFS= read -r line; do
		read up _ </proc/uptime
		case "$line" in
		*KVMBOX-INIT*)
			t1=$up
			d=$(ls -d /sys/kernel/debug/kvm/$pid-* 2>/dev/null | head -n1)
			kvm=
			for s in $STATS; do
				v=-
				[ -n "$d" ] && [ -r "$d/$s" ] && v=$(cat "$d/$s")
				kvm="$kvm kvm_$s=$v"
			done
			# shellcheck disable=SC2046 # two numbers
			set -- $(awk -v min=$((MEM_MB * 1024)) '
				/^[0-9a-f]+-[0-9a-f]+ / { n++; anon[n] = (NF < 6 || $6 ~ /^(\/memfd:|\[anon)/) }
				/^Size:/ { size[n] = $2 }
				/^Rss:/ { rss[n] = $2; total += $2 }
				END {
					big = 0
					for (k = 1; k <= n; k++)
						if (anon[k] && size[k] >= min && (big == 0 || size[k] > size[big]))
							big = k
					printf "%d %s\n", total - (big ? rss[big] : 0), big ? rss[big] : "-"
				}' /proc/$pid/smaps)
			rss=$1 ram=$2
			;;
		esac
	done <$W/fifo
	wait $pid
	st=$?
	kill $guard 2>/dev/null
	boot=-
	[ -n "$t1" ] && boot=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.2f", b - a }')
	ks=$(grep 'stats:' $W/err | head -n1 | sed 's/.*stats: *//; s/\([a-z_]*\)=/kvmbox_\1=/g')
	echo "KVMBOX-B run=$i status=$st boot_s=$boot rss_kb=${rss:--} ram_rss_kb=${ram:--}$kvm $ks"
	[ "$st" = 0 ] || tail -n 5 $W/err | sed 's/^/KVMBOX-I stderr: /'
	i=$((i + 1))
done
# The sandbox's cost: the same boot RUNS more times with --seccomp off (the runs above have
# the default, on). One line per run:
#   KVMBOX-BS run=N status=S boot_s=T
i=1
while [ $i -le $RUNS ]; do
	rm -f $W/fifo
	mkfifo $W/fifo
	read t0 _ </proc/uptime
	kvmbox run --seccomp off --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz \
		-a "console=ttyS0 quiet panic=-1 kvmbox.test=bench" </dev/null >$W/fifo 2>$W/err &
	pid=$!
	(sleep 180; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
	guard=$!
	t1=''
	while IFS= read -r line; do
		case "$line" in *KVMBOX-INIT*) read t1 _ </proc/uptime ;; esac
	done <$W/fifo
	wait $pid
	st=$?
	kill $guard 2>/dev/null
	boot=-
	[ -n "$t1" ] && boot=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.2f", b - a }')
	echo "KVMBOX-BS run=$i status=$st boot_s=$boot"
	i=$((i + 1))
done
# Virtio I/O: one boot per phase (idle, blkwrite, blkread, netout, netin) with the guest's
# virtio modules, a 256 MiB disk and a tap; the guest times one transfer with its own clock
# (kvmclock) and prints "KVMBOX-V vbench phase=P status=S mb=N secs=T". kvmbox --stats counts
# the whole boot, so exits per MiB are (phase exits - idle exits) / MiB. One line per phase:
#   KVMBOX-VB phase=P mb=N secs=T status=S kvmbox_exits=N kvmbox_io=N kvmbox_mmio=N ...
BLK_MB=256
NET_MB=64
GV=$W/guest-virtio.gz
cat /kvmbox/guest-initrd.gz /kvmbox/guest-modules.cpio.gz >$GV
if ! ip link show tap0 >/dev/null 2>&1; then
	tunctl -t tap0 >/dev/null 2>&1 && ip addr add 10.0.0.1/24 dev tap0 && ip link set tap0 up
fi
rm -f $W/disk.img
truncate -s $((BLK_MB + 16))M $W/disk.img
# A phase ending in -off runs with --seccomp off (the sandbox's cost).
for phase in idle blkwrite blkread netout netin blkwrite-off blkread-off netout-off netin-off; do
	sc=on
	case $phase in *-off) sc=off ;; esac
	mb=0
	case $phase in
	blk*) mb=$BLK_MB ;;
	net*) mb=$NET_MB ;;
	esac
	# Busybox nc quits after the first buffer when its stdin ends: the receiver reads a sleep.
	case $phase in
	netout*) sleep 900 | nc -l -p 5003 >/dev/null & ;;
	netin*) dd if=/dev/zero bs=1M count=$mb 2>/dev/null | nc -l -p 5004 & ;;
	esac
	kvmbox run --stats --seccomp $sc --no-reboot -m ${MEM_MB}M -d $W/disk.img --net tap=tap0 \
		-k /kvmbox/vmlinuz -i $GV \
		-a "console=ttyS0 quiet panic=-1 kvmbox.test=vbench kvmbox.phase=${phase%-off} kvmbox.mb=$mb" \
		</dev/null >$W/vb.out 2>$W/vb.err &
	pid=$!
	(sleep 600; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
	guard=$!
	wait $pid
	st=$?
	kill $guard 2>/dev/null
	v=$(tr -d '\r' <$W/vb.out | sed -n 's/.*KVMBOX-V vbench //p' | head -n1)
	secs=$(echo " $v" | sed -n 's/.* secs=\([^ ]*\).*/\1/p')
	gst=$(echo " $v" | sed -n 's/.* status=\([^ ]*\).*/\1/p')
	ks=$(grep 'stats:' $W/vb.err | head -n1 | sed 's/.*stats: *//; s/\([a-z_]*\)=/kvmbox_\1=/g')
	echo "KVMBOX-VB phase=$phase mb=$mb secs=${secs:--} guest_status=${gst:--} status=$st $ks"
	[ "$st" = 0 ] || tail -n 5 $W/vb.err | sed 's/^/KVMBOX-I stderr: /'
	[ -n "$v" ] || tr -d '\r' <$W/vb.out | tail -n 5 | sed 's/^/KVMBOX-I guest: /'
done
rm -f $W/disk.img

# One more, untimed run with KVM's tracepoints on, stopped at the init marker: which exits
# reached user space during boot (kvm_userspace_exit) and which I/O ports they were for.
T=/sys/kernel/debug/tracing
if [ -w $T/events/kvm/kvm_userspace_exit/enable ]; then
	echo 0 >$T/tracing_on
	echo >$T/trace
	echo 16384 >$T/buffer_size_kb
	echo 1 >$T/events/kvm/kvm_userspace_exit/enable
	[ -w $T/events/kvm/kvm_pio/enable ] && echo 1 >$T/events/kvm/kvm_pio/enable # x86 only
	rm -f $W/fifo
	mkfifo $W/fifo
	echo 1 >$T/tracing_on
	kvmbox run --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz \
		-a "console=ttyS0 quiet panic=-1 kvmbox.test=bench" </dev/null >$W/fifo 2>$W/err &
	pid=$!
	(sleep 180; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
	guard=$!
	while IFS= read -r line; do
		case "$line" in *KVMBOX-INIT*) echo 0 >$T/tracing_on ;; esac
	done <$W/fifo
	wait $pid
	kill $guard 2>/dev/null
	echo 0 >$T/tracing_on
	grep -o 'reason [A-Z_]*' $T/trace | sort | uniq -c | sort -rn |
		awk '{ print "KVMBOX-X uexit " $3 " " $1 }'
	grep -o 'pio_[a-z]* at 0x[0-9a-f]*' $T/trace | sort | uniq -c | sort -rn | head -n 8 |
		awk '{ print "KVMBOX-X pio " $4 " " $2 " " $1 }'
	grep -q 'buffer.*overrun\|LOST' $T/trace && echo "KVMBOX-I trace buffer overran: counts are low"
	echo 0 >$T/events/kvm/kvm_userspace_exit/enable
	[ -w $T/events/kvm/kvm_pio/enable ] && echo 0 >$T/events/kvm/kvm_pio/enable
fi
echo "KVMBOX-I bench done"
