#!/bin/sh
# host-bench.sh - kvmbox measurements, run by busybox sh inside the emulated host.
# Usage: host-bench.sh [RUNS [PARTS]]   (default 5, all)
#   PARTS: a comma-separated subset of boot,trace,seccomp,up,diskcopy,virtio,latency (the sections below, in
#   that order); empty or "all": every one. vsock: of the virtio phases only idle and the vsock ones.
#
# The VMMs booted side by side, round robin, RUNS times each (whichever are in /kvmbox):
#   kvmbox        /kvmbox/kvmbox (the glibc static build), bzImage
#   kvmbox-musl   /kvmbox/kvmbox-musl (make static-musl), bzImage
#   kvmbox-pvh    /kvmbox/kvmbox-musl (or kvmbox) booting the ELF vmlinux through PVH
#   kvmtool       /kvmbox/kvmtool (bench/run.sh copies KVMTOOL there), bzImage
# Each boot: the guest kernel (1 vCPU, 256M) to the guest init's marker; the guest then sleeps
# 3 s (kvmbox.test=bench) so that the VMM can be sampled, and powers off. One line per boot:
#   KVMBOX-B vmm=V run=N status=S boot_s=T rss_kb=R ram_rss_kb=G kvm_<stat>=V... [kvmbox_<stat>=V...]
# boot_s   /proc/uptime when the marker line reached us minus /proc/uptime just before
#          the VMM was started (10 ms resolution)
# rss_kb   sum of Rss in /proc/PID/smaps over all mappings except guest RAM (the largest
#          anonymous mapping of at least --memory), sampled when the marker arrived
# kvm_*    KVM's debugfs counters for the VM (/sys/kernel/debug/kvm/PID-FD/), read when the
#          marker arrived: all VM exits ('exits'), and per reason
# kvmbox_* kvmbox --stats ("kvmbox: stats: exits=N io=N ..."): returns of KVM_RUN to kvmbox,
#          i.e. exits to user space, over the whole run
# Then per VMM one untimed run with tracepoints kvm_userspace_exit and kvm_pio, stopped at the
# marker:
#   KVMBOX-X vmm=V uexit <KVM_EXIT_reason> <count>      exits to user space during boot
#   KVMBOX-X vmm=V pio <port> <pio_read|pio_write> <count>  the busiest I/O ports
# Then the virtio I/O phases (KVMBOX-VB lines) and the latency bench (KVMBOX-LAT), below.
RUNS=${1:-5}
[ -n "$RUNS" ] || RUNS=5
PARTS=${2:-all}
# part NAME: is this section of the bench selected?
part() {
	case ",$PARTS," in
	*,all,* | ,,) return 0 ;;
	*",$1,"*) return 0 ;;
	esac
	return 1
}
echo "KVMBOX-I bench parts: $PARTS"
MEM_MB=256
W=/tmp/kvmbox-bench
mkdir -p $W
# x86 and arm64 names; the other architecture's read as "-".
STATS="exits io_exits mmio_exits halt_exits irq_exits signal_exits irq_window_exits request_irq_exits hypercalls
	insn_emulation mmio_exit_user mmio_exit_kernel wfe_exit_stat wfi_exit_stat hvc_exit_stat"
BA="console=ttyS0 quiet panic=-1 kvmbox.test=bench"
MUSL=/kvmbox/kvmbox-musl
[ -x $MUSL ] || MUSL=/kvmbox/kvmbox

echo "KVMBOX-I bench: $RUNS runs, kvmbox $(kvmbox --version 2>&1 | head -n1), $(stat -c %s /kvmbox/kvmbox) bytes"
for f in kvmbox kvmbox-musl kvmtool; do
	[ -x /kvmbox/$f ] && echo "KVMBOX-SIZE vmm=$f bytes=$(stat -c %s /kvmbox/$f)"
done

# vmm_cmd V: the command line that boots the bench guest with VMM V.
vmm_cmd() {
	case $1 in
	kvmbox) echo "/kvmbox/kvmbox run --stats --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz" ;;
	kvmbox-musl) echo "/kvmbox/kvmbox-musl run --stats --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz" ;;
	kvmbox-pvh) echo "$MUSL run --stats --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinux -i /kvmbox/guest-initrd.gz" ;;
	kvmtool) echo "/kvmbox/kvmtool run --nodefaults -n mode=none -c 1 -m $MEM_MB -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz" ;;
	esac
}
# vmm_run V: start VMM V on the bench guest, output into $W/fifo, stderr into $W/err; sets pid.
vmm_run() {
	# shellcheck disable=SC2046 # the words of the command
	case $1 in
	kvmtool) $(vmm_cmd $1) -p "$BA" </dev/null >$W/fifo 2>$W/err & ;;
	*) $(vmm_cmd $1) -a "$BA" </dev/null >$W/fifo 2>$W/err & ;;
	esac
	pid=$!
}

VMMS=
for v in kvmbox kvmbox-musl kvmbox-pvh kvmtool; do
	case $v in
	kvmbox-musl) [ -x /kvmbox/kvmbox-musl ] || continue ;;
	kvmtool) [ -x /kvmbox/kvmtool ] || continue ;;
	kvmbox-pvh) [ "$(uname -m)" = x86_64 ] || continue ;; # PVH is an x86 boot protocol
	esac
	VMMS="$VMMS $v"
done
echo "KVMBOX-I bench VMMs:$VMMS"

i=1
while part boot && [ $i -le $RUNS ]; do
	for v in $VMMS; do
		rm -f $W/fifo
		mkfifo $W/fifo
		read t0 _ </proc/uptime
		vmm_run $v
		(sleep 180; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
		guard=$!
		t1='' rss='' ram='' kvm='' stopper=
		while IFS= read -r line; do
			read up _ </proc/uptime
			case "$line" in
			*KVMBOX-INIT*)
				t1=$up
				# The guest powers off 3 s later; a VMM without ACPI power-off (kvmtool) only
				# halts it and runs on: stop it after 5 s.
				(sleep 5; kill -TERM $pid 2>/dev/null) >/dev/null 2>&1 &
				stopper=$!
				d=$(ls -d /sys/kernel/debug/kvm/$pid-* 2>/dev/null | head -n1)
				kvm=
				for s in $STATS; do
					val=-
					[ -n "$d" ] && [ -r "$d/$s" ] && val=$(cat "$d/$s")
					kvm="$kvm kvm_$s=$val"
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
		kill $guard $stopper 2>/dev/null
		# Stopped by us after the sample: a VMM that cannot power the guest off.
		[ "$st" = 143 ] && [ -n "$t1" ] && st=stopped
		boot=-
		[ -n "$t1" ] && boot=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.2f", b - a }')
		ks=$(grep 'stats:' $W/err | head -n1 | sed 's/.*stats: *//; s/\([a-z_]*\)=/kvmbox_\1=/g')
		echo "KVMBOX-B vmm=$v run=$i status=$st boot_s=$boot rss_kb=${rss:--} ram_rss_kb=${ram:--}$kvm $ks"
		[ "$st" = 0 ] || tail -n 5 $W/err | sed "s/^/KVMBOX-I $v stderr: /"
	done
	i=$((i + 1))
done

# Exits to user space and the busiest ports: one traced run per VMM.
T=/sys/kernel/debug/tracing
if part trace && [ -w $T/events/kvm/kvm_userspace_exit/enable ]; then
	for v in $VMMS; do
		echo 0 >$T/tracing_on
		echo >$T/trace
		echo 32768 >$T/buffer_size_kb
		echo 1 >$T/events/kvm/kvm_userspace_exit/enable
		[ -w $T/events/kvm/kvm_pio/enable ] && echo 1 >$T/events/kvm/kvm_pio/enable # x86 only
		rm -f $W/fifo
		mkfifo $W/fifo
		echo 1 >$T/tracing_on
		vmm_run $v
		(sleep 180; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
		guard=$!
		while IFS= read -r line; do
			case "$line" in
			*KVMBOX-INIT*)
				echo 0 >$T/tracing_on
				(sleep 5; kill -TERM $pid 2>/dev/null) >/dev/null 2>&1 &
				;;
			esac
		done <$W/fifo
		wait $pid
		kill $guard 2>/dev/null
		echo 0 >$T/tracing_on
		grep -o 'reason [A-Z_]*' $T/trace | sort | uniq -c | sort -rn |
			awk -v v=$v '{ print "KVMBOX-X vmm=" v " uexit " $3 " " $1 }'
		grep -o 'pio_[a-z]* at 0x[0-9a-f]*' $T/trace | sort | uniq -c | sort -rn | head -n 8 |
			awk -v v=$v '{ print "KVMBOX-X vmm=" v " pio " $4 " " $2 " " $1 }'
		grep -q 'buffer.*overrun\|LOST' $T/trace && echo "KVMBOX-I $v: trace buffer overran: counts are low"
		echo 0 >$T/events/kvm/kvm_userspace_exit/enable
		[ -w $T/events/kvm/kvm_pio/enable ] && echo 0 >$T/events/kvm/kvm_pio/enable
	done
fi

# The sandbox's cost: the same boot RUNS more times with --seccomp off (the runs above have
# the default, on). One line per run:
#   KVMBOX-BS run=N status=S boot_s=T
i=1
while part seccomp && [ $i -le $RUNS ]; do
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
# kvmbox up: three bench guests (1 vCPU, MEM_MB each, restart = no) from one file, against the
# same three started by hand (three `kvmbox run` at once). all_init_s is the time from the start
# until all three printed their init marker (polled in their console output every 0.1 s);
# up_rss_kb is the supervisor's own VmRSS at that moment (not its VMs'). The guests power off 3 s
# after the marker and up ends. One line per mode and run:
#   KVMBOX-UP mode=up|run run=N status=S all_init_s=T up_rss_kb=K
# marker_count FILE...: how many of the files hold the guest's init marker.
marker_count() {
	_c=0
	for _f in "$@"; do grep -q KVMBOX-INIT "$_f" 2>/dev/null && _c=$((_c + 1)); done
	echo $_c
}
i=1
while part up && [ $i -le $RUNS ]; do
	for mode in up run; do
		rm -rf $W/up
		mkdir -p $W/up
		read t0 _ </proc/uptime
		if [ $mode = up ]; then
			cat >$W/up/system.conf <<-EOF
				[defaults]
				state-dir = $W/up
				kernel = /kvmbox/vmlinuz
				initrd = /kvmbox/guest-initrd.gz
				append = console=ttyS0 quiet panic=-1 kvmbox.test=bench
				memory = ${MEM_MB}M
				no-reboot = true
				[vm a]
				[vm b]
				[vm c]
			EOF
			kvmbox up $W/up/system.conf </dev/null >$W/up/up.out 2>&1 &
			pid=$!
			logs="$W/up/a.console.log $W/up/b.console.log $W/up/c.console.log"
		else
			pid=
			for v in a b c; do
				kvmbox run --no-reboot -m ${MEM_MB}M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz \
					-a "console=ttyS0 quiet panic=-1 kvmbox.test=bench" </dev/null >$W/up/$v.out 2>&1 &
				pid="$pid $!"
			done
			logs="$W/up/a.out $W/up/b.out $W/up/c.out"
		fi
		# shellcheck disable=SC2086
		(sleep 300; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
		guard=$!
		t1='' rss=-
		n=0
		# shellcheck disable=SC2086
		while [ $n -lt 3000 ] && kill -0 $pid 2>/dev/null; do
			# shellcheck disable=SC2086
			if [ "$(marker_count $logs)" = 3 ]; then
				read t1 _ </proc/uptime
				[ $mode = up ] && rss=$(awk '/^VmRSS:/ { print $2 }' /proc/$pid/status)
				break
			fi
			usleep 100000
			n=$((n + 1))
		done
		st=0
		for p in $pid; do wait $p || st=$?; done
		kill $guard 2>/dev/null
		all=-
		[ -n "$t1" ] && all=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.2f", b - a }')
		echo "KVMBOX-UP mode=$mode run=$i status=$st all_init_s=$all up_rss_kb=${rss:--}"
		[ "$st" = 0 ] || tail -n 5 $W/up/up.out $W/up/a.out 2>/dev/null | sed 's/^/KVMBOX-I up: /'
	done
	i=$((i + 1))
done
rm -rf $W/up
# Live migration without shared storage (migrate ... disks=copy), RUNS times: the life guest
# (idle but for its console counter) with a 256 MiB disk of random data, to a destination on a
# zeroed 256 MiB image, over a unix socket; the figures are the migrate reply's. After the
# hand-over the destination's image must equal the source's (the guest does not write). One
# line per run:
#   KVMBOX-DC run=N status=S rounds=R bytes=B disk_bytes=D total_ms=T downtime_ms=W equal=yes|no
DC_MB=256
# wait_for FILE TEXT SECONDS: poll (0.2 s) until FILE holds TEXT; 1 when it never did.
wait_for() {
	_n=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		[ $_n -ge $(($3 * 5)) ] && return 1
		usleep 200000
		_n=$((_n + 1))
	done
}
# dc_field NAME: a number member of the last migrate reply ($out).
dc_field() { echo "$out" | sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | head -n1; }
i=1
part diskcopy && dd if=/dev/urandom of=$W/dsrc.img bs=1M count=$DC_MB 2>/dev/null
while part diskcopy && [ $i -le $RUNS ]; do
	rm -f $W/ddst.img $W/dc-src.sock $W/dc-dst.sock $W/dc-mig.sock
	truncate -s ${DC_MB}M $W/ddst.img
	GA="console=ttyS0 quiet panic=-1 kvmbox.test=life"
	kvmbox run -m ${MEM_MB}M -d $W/dsrc.img --api $W/dc-src.sock -k /kvmbox/vmlinuz \
		-i /kvmbox/guest-initrd.gz -a "$GA" </dev/null >$W/dcs.out 2>$W/dcs.err &
	spid=$!
	kvmbox run -m ${MEM_MB}M -d $W/ddst.img --api $W/dc-dst.sock --incoming unix:$W/dc-mig.sock \
		-k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz -a "$GA" </dev/null >$W/dcd.out 2>$W/dcd.err &
	dpid=$!
	st=-
	out=
	if wait_for $W/dcs.out KVMBOX-INIT 180 && wait_for $W/dcd.err 'waiting for a migration' 30; then
		out=$(kvmbox ctl --timeout 300 $W/dc-src.sock migrate unix:$W/dc-mig.sock disks=copy 2>&1)
		st=$?
	fi
	# The source ends after the hand-over (or stays, after a failure: stopped here).
	n=0
	while kill -0 $spid 2>/dev/null && [ $n -lt 150 ]; do usleep 200000; n=$((n + 1)); done
	kill -KILL $spid 2>/dev/null
	wait $spid 2>/dev/null
	eq=no
	[ "$(sha256sum <$W/dsrc.img)" = "$(sha256sum <$W/ddst.img)" ] && eq=yes
	kill -TERM $dpid 2>/dev/null
	n=0
	while kill -0 $dpid 2>/dev/null && [ $n -lt 100 ]; do usleep 200000; n=$((n + 1)); done
	kill -KILL $dpid 2>/dev/null
	wait $dpid 2>/dev/null
	echo "KVMBOX-DC run=$i status=$st rounds=$(dc_field rounds) bytes=$(dc_field bytes)" \
		"disk_bytes=$(dc_field disk_bytes) total_ms=$(dc_field total_ms) downtime_ms=$(dc_field downtime_ms) equal=$eq"
	[ "$st" = 0 ] || { echo "$out" | tail -n 3; tail -n 3 $W/dcs.err $W/dcd.err; } | sed 's/^/KVMBOX-I diskcopy: /'
	i=$((i + 1))
done
rm -f $W/dsrc.img $W/ddst.img

# Virtio I/O: one boot per phase with the guest's virtio modules, a 256 MiB disk and a tap;
# the guest times one transfer with its own clock (kvmclock) and prints
# "KVMBOX-V vbench phase=P status=S mb=N secs=T". kvmbox --stats counts the whole boot, so exits
# per MiB are (phase exits - idle exits) / MiB. The network phases run on vhost-net (the
# default when /dev/vhost-net is usable) and again on kvmbox's user-space path (vhost=off,
# phases netout-user and netin-user). Phase vsock: VSOCK_MB MiB from the guest to the host's
# vsock-echo (tests/linux/vsock-echo.c) and back, at once, over --vsock (vhost-vsock); mb is
# each way. Phase vsocklat: 1000 round trips of 64 bytes from the guest to that echo (vsock-echo
# ping), its line gets rtts= size= min_us= median_us= mean_us= p99_us= max_us=. Ending in -uds:
# the same through --vsock cid=43,uds=PATH (kvmbox's own data path), the echo on PATH_5005
# (vsock-echo userve). A phase ending in -off runs with --seccomp off (the
# sandbox's cost). One line per phase:
#   KVMBOX-VB phase=P mb=N secs=T status=S kvmbox_exits=N kvmbox_io=N kvmbox_mmio=N ...
BLK_MB=256
NET_MB=64
VSOCK_MB=32
GV=$W/guest-virtio.gz
cat /kvmbox/guest-initrd.gz /kvmbox/guest-modules.cpio.gz >$GV
if ! ip link show tap0 >/dev/null 2>&1; then
	tunctl -t tap0 >/dev/null 2>&1 && ip addr add 10.0.0.1/24 dev tap0 && ip link set tap0 up
fi
echo "KVMBOX-I vhost-net: $([ -c /dev/vhost-net ] && echo usable || echo 'no /dev/vhost-net')"
rm -f $W/disk.img
truncate -s $((BLK_MB + 16))M $W/disk.img
VS_PHASES="vsock vsock-uds vsocklat vsocklat-uds"
VB_PHASES="idle blkwrite blkread netout netin netout-user netin-user $VS_PHASES blkwrite-off blkread-off netout-off netin-off"
if part virtio; then
	:
elif part vsock; then
	VB_PHASES="idle $VS_PHASES"
else
	VB_PHASES=
fi
VSU=$W/vb.vsock
for phase in $VB_PHASES; do
	sc=on
	case $phase in *-off) sc=off ;; esac
	mb=0
	case $phase in
	blk*) mb=$BLK_MB ;;
	net*) mb=$NET_MB ;;
	vsocklat*) mb=0 ;;
	vsock*) mb=$VSOCK_MB ;;
	esac
	vh= vs=
	case $phase in *-user) vh=,vhost=off ;; esac
	case $phase in
	vsock*-uds) vs="--vsock cid=43,uds=$VSU" ;;
	vsock*) vs="--vsock cid=43" ;;
	esac
	# Busybox nc quits after the first buffer when its stdin ends: the receiver reads a sleep.
	case $phase in
	netout*) sleep 900 | nc -l -p 5003 >/dev/null & ;;
	netin*) dd if=/dev/zero bs=1M count=$mb 2>/dev/null | nc -l -p 5004 & ;;
	vsock*)
		: >$W/vsock-serve.out
		rm -f $VSU ${VSU}_5005
		case $phase in
		*-uds) /kvmbox/vsock-echo userve ${VSU}_5005 - once >$W/vsock-serve.out 2>&1 & ;;
		*) /kvmbox/vsock-echo serve 5005 - once >$W/vsock-serve.out 2>&1 & ;;
		esac
		vsp=$!
		n=0
		while ! grep -q listening $W/vsock-serve.out && [ $n -lt 50 ]; do usleep 100000; n=$((n + 1)); done
		;;
	esac
	# shellcheck disable=SC2086
	kvmbox run --stats --seccomp $sc --no-reboot -m ${MEM_MB}M -d $W/disk.img --net tap=tap0$vh $vs \
		-k /kvmbox/vmlinuz -i $GV \
		-a "console=ttyS0 quiet panic=-1 kvmbox.test=vbench kvmbox.phase=${phase%-*} kvmbox.mb=$mb" \
		</dev/null >$W/vb.out 2>$W/vb.err &
	pid=$!
	(sleep 600; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
	guard=$!
	wait $pid
	st=$?
	kill $guard 2>/dev/null
	case $phase in vsock*) kill $vsp 2>/dev/null ;; esac # it ends by itself after its one connection
	v=$(tr -d '\r' <$W/vb.out | sed -n 's/.*KVMBOX-V vbench //p' | head -n1)
	secs=$(echo " $v" | sed -n 's/.* secs=\([^ ]*\).*/\1/p')
	gst=$(echo " $v" | sed -n 's/.* status=\([^ ]*\).*/\1/p')
	ks=$(grep 'stats:' $W/vb.err | head -n1 | sed 's/.*stats: *//; s/\([a-z_]*\)=/kvmbox_\1=/g')
	lat=$(echo " $v" | grep -oE ' (rtts|size|[a-z0-9]+_us|error)=[^ ]*' | tr -d '\n')
	echo "KVMBOX-VB phase=$phase mb=$mb secs=${secs:--} guest_status=${gst:--} status=$st$lat $ks"
	[ "$st" = 0 ] || tail -n 5 $W/vb.err | sed 's/^/KVMBOX-I stderr: /'
	[ -n "$v" ] || tr -d '\r' <$W/vb.out | tail -n 5 | sed 's/^/KVMBOX-I guest: /'
done
rm -f $W/disk.img

# Latency: cyclictest in a guest (kvmbox.test=latency: one thread, SCHED_FIFO 80, 1 ms period,
# LAT_SECS seconds) while a second VM spins its vCPU (kvmbox.test=busy) and the host runs one
# busy loop per CPU; first with no options, then with the real-time ones: vCPU 0 on CPU 1
# SCHED_FIFO 50, I/O on CPU 0, RAM locked, in huge pages, pre-allocated. One line per mode:
#   KVMBOX-LAT mode=plain|rt samples=N p999_us=X max_us=Y avg_us=Z status=S
LAT_SECS=20
RT_OPTS="--vcpu-affinity 0=1 --io-affinity 0 --rt-priority 50 --mlock --hugepages --prealloc"
if ! part latency; then
	:
elif [ -f /kvmbox/guest-rt.cpio.gz ]; then
	GL=$W/guest-rt.gz
	cat /kvmbox/guest-initrd.gz /kvmbox/guest-rt.cpio.gz >$GL
	for mode in plain rt; do
		kvmbox run --no-reboot -m 128M -k /kvmbox/vmlinuz -i /kvmbox/guest-initrd.gz \
			-a "console=ttyS0 quiet panic=-1 kvmbox.test=busy" </dev/null >$W/busy.out 2>&1 &
		busy=$!
		n=0
		while ! grep -q 'KVMBOX-V busy' $W/busy.out && [ $n -lt 600 ]; do usleep 200000; n=$((n + 1)); done
		loads=
		for c in 1 2; do
			sh -c 'while :; do :; done' &
			loads="$loads $!"
		done
		opts=
		[ $mode = rt ] && opts=$RT_OPTS
		# shellcheck disable=SC2086
		kvmbox run --no-reboot -m ${MEM_MB}M $opts -k /kvmbox/vmlinuz -i $GL \
			-a "console=ttyS0 quiet panic=-1 kvmbox.test=latency kvmbox.secs=$LAT_SECS" </dev/null >$W/lat.out 2>$W/lat.err &
		pid=$!
		(sleep 600; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 &
		guard=$!
		wait $pid
		st=$?
		kill $guard 2>/dev/null
		# shellcheck disable=SC2086
		kill $loads $busy 2>/dev/null
		wait $busy 2>/dev/null
		v=$(tr -d '\r' <$W/lat.out | sed -n 's/.*KVMBOX-V latency //p' | head -n1)
		echo "KVMBOX-LAT mode=$mode $v kvmbox_status=$st"
		[ "$st" = 0 ] || tail -n 3 $W/lat.err | sed 's/^/KVMBOX-I stderr: /'
		[ -n "$v" ] || tr -d '\r' <$W/lat.out | tail -n 5 | sed 's/^/KVMBOX-I guest: /'
	done
else
	echo "KVMBOX-I latency bench skipped: no cyclictest (rt-tests could not be downloaded when the base initramfs was built)"
fi
echo "KVMBOX-I bench done"
