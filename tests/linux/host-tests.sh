#!/bin/sh
# host-tests.sh - the Linux scenarios, run by busybox sh inside the emulated host.
# Usage: host-tests.sh [GLOB[,GLOB...]]   run only the tests whose name matches a glob
#
# Prints machine-readable lines that tests/linux/run.sh turns into PASS/FAIL/SKIP:
#   KVMBOX-T PASS|FAIL|SKIP <name> [why]
#   KVMBOX-T DATA linux-date <guest epoch> <emulated-host epoch>   (run.sh decides)
#   KVMBOX-L <name> <text>            diagnostics after a FAIL (guest output, kvmbox stderr)
#   KVMBOX-I <text>                   information (durations), logged only
# Every kvmbox run is guarded by a timeout, so a hang is a FAIL, never a stuck suite.
ONLY=$(echo "${1:-}" | tr ',' ' ')
KB=/kvmbox
BZ=$KB/vmlinuz
ELF=$KB/vmlinux
GI=$KB/guest-initrd.gz
GAPPEND="console=ttyS0 quiet panic=-1"
BOOT_TMO=${KVMBOX_BOOT_TIMEOUT:-120}
BAD_TMO=30
W=/tmp/kvmbox-tests
mkdir -p $W

# want NAME...: is any of these tests selected?
want() {
	[ -z "$ONLY" ] && return 0
	for _w in "$@"; do
		for _g in $ONLY; do
			# shellcheck disable=SC2254 # a glob on purpose
			case $_w in $_g) return 0 ;; esac
		done
	done
	return 1
}

res() { # STATUS NAME [WHY]
	_st=$1 _n=$2
	shift 2
	want "$_n" && echo "KVMBOX-T $_st $_n $*"
}

now() { cut -d' ' -f1 /proc/uptime; }

alive() { [ -r /proc/$1/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }

# vm ID TIMEOUT STOP_PATTERN STOP_COUNT kvmbox-run-args...: run kvmbox in the background,
# output in $W/ID.out, stderr in $W/ID.err; kill it after TIMEOUT seconds, or (SIGTERM) once
# STOP_PATTERN was printed STOP_COUNT times (stops reboot loops early). Sets RC (kvmbox's
# status, or "timeout" / "stopped"), SECS.
# Set beforehand (and reset after) to change a run: VM_IN (kvmbox's stdin, default /dev/null),
# VM_SIG=KILL (stop with SIGKILL at once instead of SIGTERM), VM_HOOK (a function called on
# every 200 ms tick while kvmbox runs).
VM_IN=/dev/null VM_SIG=TERM VM_HOOK=
vm() {
	id=$1 tmo=$2 pat=$3 cnt=$4
	shift 4
	t0=$(now)
	DM0=$(dmesg | wc -l)
	kvmbox run "$@" <$VM_IN >$W/$id.out 2>$W/$id.err &
	pid=$!
	ticks=0 why=
	while alive $pid; do
		if [ $ticks -ge $((tmo * 5)) ]; then
			why=timeout
			kill -KILL $pid 2>/dev/null
			break
		fi
		[ -n "$VM_HOOK" ] && $VM_HOOK
		if [ -n "$pat" ] && [ "$(grep -c "$pat" $W/$id.out 2>/dev/null)" -ge "$cnt" ]; then
			why=stopped
			if [ "$VM_SIG" = KILL ]; then
				kill -KILL $pid 2>/dev/null
			else
				kill -TERM $pid 2>/dev/null
				sleep 2
				kill -KILL $pid 2>/dev/null
			fi
			break
		fi
		usleep 200000
		ticks=$((ticks + 1))
	done
	wait $pid
	RC=$?
	[ -n "$why" ] && RC=$why
	SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	echo "KVMBOX-I $id: kvmbox run $* -> status $RC after ${SECS}s"
}

# diag NAME ID: show what the guest and kvmbox said last.
diag() {
	want "$1" || return 0
	tr -d '\r' <$W/$2.out | grep -v '^[[:space:]]*$' | tail -n 12 | sed "s/^/KVMBOX-L $1 guest: /"
	tail -n 12 $W/$2.err | sed "s/^/KVMBOX-L $1 stderr: /"
	dmesg | tail -n +$((DM0 + 1)) | tail -n 8 | sed "s/^/KVMBOX-L $1 host dmesg: /"
}

has() { tr -d '\r' <$W/$2.out | grep -q "$1"; }
count() { tr -d '\r' <$W/$2.out | grep -c "$1"; }
result() { tr -d '\r' <$W/$2.out | sed -n "s/.*KVMBOX-RESULT $1 \\([0-9]*\\).*/\\1/p" | head -n1; }

# boot_check NAME ID: the guest reached init (on failure, shorten later boot timeouts: a
# kvmbox that cannot boot Linux should not cost the full timeout six times over).
boot_check() {
	if has "KVMBOX-INIT" $2; then
		res PASS $1
	else
		res FAIL $1 "no init marker from the guest (kvmbox status $RC after ${SECS}s)"
		diag $1 $2
		[ "$BOOT_TMO" -gt 60 ] && BOOT_TMO=60
	fi
}

# --- Guest boots --------------------------------------------------------------------------

if want linux-boot-bzimage linux-poweroff-exit0 linux-nproc-1 linux-date; then
	# No --no-reboot: a guest poweroff must end kvmbox, a restart would show a second marker.
	vm init $BOOT_TMO KVMBOX-INIT 2 -k $BZ -i $GI -a "$GAPPEND kvmbox.test=init"
	ehost=$(date +%s)
	boot_check linux-boot-bzimage init
	if [ "$RC" = 0 ] && has KVMBOX-POWEROFF init && [ "$(count KVMBOX-INIT init)" = 1 ]; then
		res PASS linux-poweroff-exit0
	else
		res FAIL linux-poweroff-exit0 "guest ran poweroff -f: kvmbox status $RC," \
			"$(count KVMBOX-INIT init) init marker(s), expected status 0 and 1 marker"
		diag linux-poweroff-exit0 init
	fi
	n=$(result nproc init)
	if [ "$n" = 1 ]; then res PASS linux-nproc-1; else res FAIL linux-nproc-1 "guest nproc '$n' with --cpus 1"; fi
	g=$(result date init)
	if [ -n "$g" ]; then
		want linux-date && echo "KVMBOX-T DATA linux-date $g $ehost"
	else
		res FAIL linux-date "the guest printed no date"
	fi
fi

for c in 2 4; do
	want linux-nproc-$c || continue
	vm nproc$c $BOOT_TMO KVMBOX-INIT 2 --no-reboot -c $c -k $BZ -i $GI -a "$GAPPEND kvmbox.test=init"
	n=$(result nproc nproc$c)
	if [ "$n" = $c ]; then
		res PASS linux-nproc-$c
	else
		res FAIL linux-nproc-$c "guest nproc '$n' with --cpus $c (kvmbox status $RC)"
		diag linux-nproc-$c nproc$c
	fi
done

if want linux-boot-pvh; then
	vm pvh $BOOT_TMO KVMBOX-INIT 2 --no-reboot -k $ELF -i $GI -a "$GAPPEND kvmbox.test=init"
	if has KVMBOX-INIT pvh && [ "$RC" = 0 ]; then
		res PASS linux-boot-pvh
	else
		res FAIL linux-boot-pvh "ELF vmlinux (PVH entry): kvmbox status $RC," \
			"$(count KVMBOX-INIT pvh) init marker(s)"
		diag linux-boot-pvh pvh
	fi
fi

if want linux-reboot-restarts linux-reboot-cmos-kept; then
	# The guest counts its boots in CMOS NVRAM: boot 1 reboots, boot 2 powers off. If NVRAM
	# were lost the guest would reboot forever: stop at the third marker.
	vm reboot $BOOT_TMO KVMBOX-INIT 3 -k $BZ -i $GI -a "$GAPPEND kvmbox.test=reboot"
	m=$(count KVMBOX-INIT reboot)
	if [ "$m" -ge 2 ]; then
		res PASS linux-reboot-restarts
	else
		res FAIL linux-reboot-restarts "guest ran reboot -f: $m init marker(s), kvmbox status $RC"
		diag linux-reboot-restarts reboot
	fi
	if [ "$m" -ge 2 ] && has "KVMBOX-BOOT 2" reboot && [ "$RC" = 0 ]; then
		res PASS linux-reboot-cmos-kept
	elif [ "$m" -ge 2 ]; then
		res FAIL linux-reboot-cmos-kept "boot counter in CMOS 0x5a not kept across reboot:" \
			"$(tr -d '\r' <$W/reboot.out | grep KVMBOX-BOOT | tr '\n' ' ')kvmbox status $RC"
		diag linux-reboot-cmos-kept reboot
	else
		res FAIL linux-reboot-cmos-kept "no reboot happened"
	fi
fi

if want linux-no-reboot-exit0; then
	vm noreboot $BOOT_TMO KVMBOX-INIT 2 --no-reboot -k $BZ -i $GI -a "$GAPPEND kvmbox.test=rebootonce"
	if [ "$RC" = 0 ] && has KVMBOX-REBOOTING noreboot && [ "$(count KVMBOX-INIT noreboot)" = 1 ]; then
		res PASS linux-no-reboot-exit0
	else
		res FAIL linux-no-reboot-exit0 "guest ran reboot -f with --no-reboot: kvmbox status $RC," \
			"$(count KVMBOX-INIT noreboot) init marker(s), expected status 0 and 1 marker"
		diag linux-no-reboot-exit0 noreboot
	fi
fi

# --- Virtio: disks, network, rng, console (two guest boots) ------------------------------

# The guest initramfs with the virtio and ext4 modules appended (/modules, see guest-init).
GV=$W/guest-virtio.gz
MKE2FS=/usr/sbin/mke2fs
VTMO=$((BOOT_TMO * 2))
NET_MB=32

# vget ID KEY: the rest of the guest's first "KVMBOX-V KEY ..." line.
vget() { tr -d '\r' <$W/$1.out | sed -n "s/^.*KVMBOX-V $2 //p" | head -n1; }
# field LINE NAME: the value of NAME=value in LINE.
field() { echo " $1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
hsum() { sha256sum "$1" | cut -d' ' -f1; }

# A persistent tap in the emulated host for the guest's eth0 (kvmbox opens it by name).
net_setup() {
	ip link show tap0 >/dev/null 2>&1 && return 0
	[ -c /dev/net/tun ] || { echo "no /dev/net/tun (tun.ko not loaded)"; return 1; }
	tunctl -t tap0 >/dev/null 2>&1 || { echo "busybox tunctl -t tap0 failed"; return 1; }
	ip addr add 10.0.0.1/24 dev tap0 && ip link set tap0 up || { echo "cannot configure tap0"; return 1; }
}

V1="linux-virtio-modules linux-virtio-blk-serials linux-virtio-blk-ro linux-virtio-rng
	linux-virtio-net-ping linux-virtio-net-tcp"
V2="linux-virtio-blk-ext4 linux-virtio-console linux-virtio-blk-fsync-kill9"
# shellcheck disable=SC2086
if want $V1 $V2; then
	cat $GI $KB/guest-modules.cpio.gz >$GV
	e2=
	if [ ! -x $MKE2FS ] || ! $MKE2FS -V >/dev/null 2>&1; then
		e2="no working $MKE2FS in the emulated host (install e2fsprogs on the real host)"
	fi
	truncate -s 64M $W/ext4.img
	truncate -s 8M $W/raw.img
	mkdir -p $W/rodir
	dd if=/dev/urandom of=$W/rodir/file bs=64k count=4 2>/dev/null
	rofile=$(hsum $W/rodir/file)
	if [ -z "$e2" ]; then
		$MKE2FS -q -F -t ext4 -E lazy_itable_init=0,lazy_journal_init=0 $W/ext4.img >/dev/null 2>$W/mke2fs.err &&
			$MKE2FS -q -F -t ext4 -d $W/rodir $W/ro.img 16M >/dev/null 2>>$W/mke2fs.err ||
			e2="mke2fs failed: $(head -n1 $W/mke2fs.err)"
	fi
	[ -f $W/ro.img ] || truncate -s 16M $W/ro.img
	ro0=$(hsum $W/ro.img)
	neterr=$(net_setup)
	dd if=/dev/urandom of=$W/blob bs=1M count=$NET_MB 2>/dev/null
	blob=$(hsum $W/blob)
	: >$W/netback
	if [ -z "$neterr" ]; then
		# Busybox nc quits after the first buffer when its stdin ends: the receiver reads
		# a sleep; it ends when the guest closes the connection.
		sleep 900 | nc -l -p 5001 >$W/netback &
		nc -l -p 5002 <$W/blob &
		netargs="--net tap=tap0,mac=52:54:00:12:34:56"
	else
		netargs=
	fi

	# Boot 1: serial console; ext4 written on vda, raw vdb, read-only ext4 vdc, net, rng.
	# shellcheck disable=SC2086
	vm virtio1 $VTMO "" 0 --no-reboot -m 384M \
		-d $W/ext4.img,serial=kvmbox-vda -d $W/raw.img,serial=KVMBOX-SERIAL-20CHAR \
		-d $W/ro.img,ro,serial=kvmbox-ro $netargs --rng \
		-k $BZ -i $GV -a "$GAPPEND kvmbox.test=virtio1"
	rc1=$RC
	ro1=$(hsum $W/ro.img)

	m=$(vget virtio1 modules)
	if [ "$m" = ok ]; then
		res PASS linux-virtio-modules
	else
		res FAIL linux-virtio-modules "guest insmod: '${m:-no report}' (kvmbox status $RC)"
		diag linux-virtio-modules virtio1
	fi

	da=$(vget virtio1 "disk vda") db=$(vget virtio1 "disk vdb")
	if [ "$(field "$da" serial)" = kvmbox-vda ] && [ "$(field "$db" serial)" = KVMBOX-SERIAL-20CHAR ] &&
		[ "$(field "$da" sectors)" = 131072 ] && [ "$(field "$db" sectors)" = 16384 ]; then
		res PASS linux-virtio-blk-serials
	else
		res FAIL linux-virtio-blk-serials "want vda serial=kvmbox-vda sectors=131072, vdb" \
			"serial=KVMBOX-SERIAL-20CHAR sectors=16384; guest: vda '$da', vdb '$db'"
		diag linux-virtio-blk-serials virtio1
	fi

	r=$(vget virtio1 ro)
	if [ -n "$e2" ]; then
		res SKIP linux-virtio-blk-ro "$e2"
	elif [ "$(field "$r" sysfs)" = 1 ] && [ "$(field "$r" mount)" = 0 ] && [ "$(field "$r" opts)" = ro ] &&
		[ "$(field "$r" filewrite)" = failed ] && [ "$(field "$r" devwrite)" = failed ] &&
		[ "$(field "$r" sum)" = "$rofile" ] && [ "$ro0" = "$ro1" ]; then
		res PASS linux-virtio-blk-ro
	else
		res FAIL linux-virtio-blk-ro "want sysfs=1 mount=0 opts=ro filewrite=failed devwrite=failed" \
			"and the file's sum; guest: '${r:-no report}'; image file" \
			"$([ "$ro0" = "$ro1" ] && echo unchanged || echo CHANGED)"
		diag linux-virtio-blk-ro virtio1
	fi

	r=$(vget virtio1 rng)
	if [ "$(field "$r" bytes)" = 4096 ] && [ "$(field "$r" distinct)" -ge 200 ] 2>/dev/null &&
		[ "${r#*virtio}" != "$r" ]; then
		res PASS linux-virtio-rng
	else
		res FAIL linux-virtio-rng "want 4096 bytes from /dev/hwrng (rng_current virtio_rng.N)" \
			"with at least 200 distinct byte values; guest: '${r:-no report}'"
		diag linux-virtio-rng virtio1
	fi

	if [ -n "$neterr" ]; then
		res FAIL linux-virtio-net-ping "emulated host network: $neterr"
		res FAIL linux-virtio-net-tcp "emulated host network: $neterr"
	else
		r=$(vget virtio1 ping)
		if [ "$(field "$r" status)" = 0 ] && [ "${r#*3 packets received}" != "$r" ]; then
			res PASS linux-virtio-net-ping
		else
			res FAIL linux-virtio-net-ping "guest ping -c 3 10.0.0.1: '${r:-no report}'"
			diag linux-virtio-net-ping virtio1
		fi
		ri=$(vget virtio1 netin) ro=$(vget virtio1 netout)
		nb=$(wc -c <$W/netback) ns=$(hsum $W/netback)
		want=$((NET_MB * 1048576))
		echo "KVMBOX-I net: in '$ri', out '$ro', host received $nb bytes"
		if [ "$(field "$ri" bytes)" = $want ] && [ "$(field "$ri" sum)" = "$blob" ] &&
			[ "$(field "$ro" status)" = 0 ] && [ "$nb" = $want ] && [ "$ns" = "$blob" ]; then
			res PASS linux-virtio-net-tcp
		else
			res FAIL linux-virtio-net-tcp "$NET_MB MiB each way, sha256 $blob: guest received" \
				"'${ri:-nothing}', sent '${ro:-nothing}'; the host got $nb bytes, sum $ns"
			diag linux-virtio-net-tcp virtio1
			if want linux-virtio-net-tcp; then
				echo "KVMBOX-L linux-virtio-net-tcp guest counters after receiving: $(vget virtio1 netstat)"
				echo "KVMBOX-L linux-virtio-net-tcp guest counters after sending: $(vget virtio1 netstat2)"
				echo "KVMBOX-L linux-virtio-net-tcp host tap0: $(cd /sys/class/net/tap0/statistics &&
					for c in rx_packets rx_bytes rx_dropped rx_errors tx_packets tx_bytes tx_dropped tx_errors; do
						printf '%s=%s ' $c "$(cat $c)"; done)"
				echo "KVMBOX-L linux-virtio-net-tcp host TCP: $(awk '/^Tcp:/ { if (!h++) for (i = 2; i <= NF; i++) k[i] = $i; else for (i = 2; i <= NF; i++) if (k[i] ~ /Err|Csum|Retrans/) printf "%s=%s ", k[i], $i }' /proc/net/snmp)"
			fi
		fi
	fi

fi
if want $V2; then
	# Boot 2: console=hvc0 (--console virtio): checks the files, a shell on hvc0 driven through
	# kvmbox's stdin, then data written with conv=fsync and kvmbox killed with SIGKILL.
	marker=KVMBOX-MARK-$(date +%s)-$$
	rm -f $W/hvc.in
	mkfifo $W/hvc.in
	exec 4<>$W/hvc.in
	typed=0
	hvc_hook() {
		if [ $typed = 0 ] && has "KVMBOX-V shell ready" virtio2; then
			printf 'echo KVMBOX-SHELL-$((6 * 7))\nexit\n' >&4
			typed=1
		fi
	}
	VM_IN=$W/hvc.in VM_SIG=KILL VM_HOOK=hvc_hook
	vm virtio2 $VTMO KVMBOX-FSYNCED 1 --no-reboot --console virtio -m 256M \
		-d $W/ext4.img -d $W/raw.img -k $BZ -i $GV \
		-a "console=hvc0 quiet panic=-1 kvmbox.test=virtio2 kvmbox.marker=$marker"
	VM_IN=/dev/null VM_SIG=TERM VM_HOOK=
	exec 4>&-
	rc2=$RC

	if [ -n "$e2" ]; then
		res SKIP linux-virtio-blk-ext4 "$e2"
	else
		s1=$(tr -d '\r' <$W/virtio1.out | grep 'KVMBOX-V sum1 ' | sed 's/.*KVMBOX-V sum1 //' | sort)
		s2=$(tr -d '\r' <$W/virtio2.out | grep 'KVMBOX-V sum2 ' | sed 's/.*KVMBOX-V sum2 //' | sort)
		n1=$(echo "$s1" | grep -c '[0-9a-f]\{64\}')
		if [ "$rc1" = 0 ] && [ "$(vget virtio1 ext4)" = written ] && [ "$n1" = 3 ] && [ "$s1" = "$s2" ]; then
			res PASS linux-virtio-blk-ext4
		else
			res FAIL linux-virtio-blk-ext4 "boot 1 (kvmbox status $rc1, want 0): ext4" \
				"'$(vget virtio1 ext4)', $n1 sums; boot 2 sums $([ "$s1" = "$s2" ] && echo equal || echo DIFFER):" \
				"$(echo "$s2" | tr '\n' ' ')"
			diag linux-virtio-blk-ext4 virtio1
			diag linux-virtio-blk-ext4 virtio2
		fi
	fi

	if has KVMBOX-SHELL-42 virtio2; then
		res PASS linux-virtio-console
	else
		res FAIL linux-virtio-console "--console virtio: no answer on hvc0 to 'echo" \
			"KVMBOX-SHELL-\$((6 * 7))' (init marker: $(count 'KVMBOX-INIT virtio2' virtio2), typed: $typed)"
		diag linux-virtio-console virtio2
	fi

	f=$(vget virtio2 fsync)
	got=$(head -c ${#marker} $W/raw.img)
	chunk=$(dd if=$W/raw.img bs=64k skip=16 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
	if [ "$rc2" = stopped ] && [ "$(field "$f" status)" = 0 ] && [ "$got" = "$marker" ] &&
		[ "$(field "$f" sum)" = "$chunk" ]; then
		res PASS linux-virtio-blk-fsync-kill9
	else
		res FAIL linux-virtio-blk-fsync-kill9 "kvmbox SIGKILLed after the guest's conv=fsync" \
			"(run: $rc2, want stopped); guest '${f:-no report}'; image: marker" \
			"$([ "$got" = "$marker" ] && echo present || echo MISSING), 1 MiB at 1 MiB sum $chunk"
		diag linux-virtio-blk-fsync-kill9 virtio2
	fi
fi

# --- Bad input: status 1 (cannot start) or 2 (usage), exactly one stderr line "kvmbox: ..." --

# bad NAME "ALLOWED STATUSES" [as-nobody] -- kvmbox-run-args...
bad() {
	name=$1 allowed=$2
	shift 2
	want $name || return 0
	vm $name $BAD_TMO "" 0 "$@"
	lines=$(wc -l <$W/$name.err)
	first=$(head -n1 $W/$name.err)
	echo "KVMBOX-I $name stderr: $first"
	ok=0
	for a in $allowed; do [ "$RC" = "$a" ] && ok=1; done
	if [ $ok = 1 ] && [ "$lines" = 1 ] && [ "${first#kvmbox: }" != "$first" ]; then
		res PASS $name
	else
		res FAIL $name "status $RC (want $allowed), $lines stderr line(s) (want 1 starting 'kvmbox: ')"
		diag $name $name
	fi
}

dd if=/dev/urandom of=$W/garbage bs=1024 count=2048 2>/dev/null
truncate -s 160M $W/huge-initrd
bad linux-bad-missing-kernel 1 -k $W/no-such-kernel -i $GI
bad linux-bad-not-a-kernel 1 -k $W/garbage -i $GI
bad linux-bad-elf-not-kernel 1 -k /bin/busybox -i $GI
bad linux-bad-initrd-too-big 1 -m 64M -k $BZ -i $W/huge-initrd
bad linux-bad-memory-1M "1 2" -m 1M -k $BZ -i $GI
bad linux-bad-cpus-0 "1 2" -c 0 -k $BZ -i $GI
# KVM_CAP_MAX_VCPUS is 1024 on this kernel (KVM_MAX_VCPUS for x86 since 5.15).
bad linux-bad-cpus-too-many "1 2" -c 1025 -k $BZ -i $GI
bad linux-bad-size-malformed 2 -m 12Q -k $BZ -i $GI
bad linux-bad-no-kernel-option 2 -i $GI

if want linux-bad-no-dev-kvm; then
	mv /dev/kvm /dev/kvm.away
	bad linux-bad-no-dev-kvm 1 -k $BZ -i $GI
	mv /dev/kvm.away /dev/kvm
fi

if want linux-bad-dev-kvm-perm; then
	echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
	echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' >>/etc/passwd
	echo 'root:x:0:' >/etc/group
	echo 'nogroup:x:65534:' >>/etc/group
	mode=$(stat -c %a /dev/kvm)
	chmod 600 /dev/kvm
	if [ "$(su -s /bin/sh nobody -c 'id -u' 2>/dev/null)" != 65534 ]; then
		res SKIP linux-bad-dev-kvm-perm "cannot switch to user nobody with busybox su"
	else
		# The run as nobody goes through su; it returns the status of kvmbox (sh -c exec).
		cat >$W/as-nobody <<-EOF
			#!/bin/sh
			exec su -s /bin/sh nobody -c "exec /kvmbox/kvmbox run -k $BZ -i $GI"
		EOF
		chmod 755 $W/as-nobody
		name=linux-bad-dev-kvm-perm
		DM0=$(dmesg | wc -l)
		$W/as-nobody </dev/null >$W/$name.out 2>$W/$name.err &
		pid=$!
		(sleep $BAD_TMO; kill -KILL $pid 2>/dev/null) &
		killer=$!
		wait $pid
		RC=$?
		kill $killer 2>/dev/null
		lines=$(wc -l <$W/$name.err)
		first=$(head -n1 $W/$name.err)
		echo "KVMBOX-I $name: as nobody -> status $RC, stderr: $first"
		if [ "$RC" = 1 ] && [ "$lines" = 1 ] && [ "${first#kvmbox: }" != "$first" ]; then
			res PASS $name
		else
			res FAIL $name "as user nobody with /dev/kvm 0600: status $RC (want 1)," \
				"$lines stderr line(s) (want 1 starting 'kvmbox: ')"
			diag $name $name
		fi
	fi
	chmod "$mode" /dev/kvm
fi
echo "KVMBOX-I tests done"
