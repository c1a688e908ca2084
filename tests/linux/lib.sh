# shellcheck shell=bash
# lib.sh - shared pieces of the Linux tier, `make demo` and `make bench` (bash, sourced).
#
# The machine's /dev/kvm cannot run a Linux guest, so Linux runs in an *emulated host*:
# qemu-system-x86_64 under TCG with -cpu max (AMD SVM with nested paging), booting a Debian
# kernel whose kvm_amd gives a working /dev/kvm, on which build/kvmbox-static runs the guest.
# The same Debian kernel serves as emulated-host kernel and as guest kernel (bzImage and the
# ELF vmlinux extracted from it for the PVH entry).
#
# Everything comes from Debian packages and is cached in $KB_CACHE, keyed by kernel version:
#   $KB_CACHE/debs/                      downloaded .deb files
#   $KB_CACHE/linux-<kver>/vmlinuz         the bzImage
#   $KB_CACHE/linux-<kver>/vmlinux         ELF with the Xen PVH note, extracted from vmlinuz
#   $KB_CACHE/linux-<kver>/modules/*.ko    kvm_amd and its dependencies, decompressed
#   $KB_CACHE/linux-<kver>/modules.order   load order (dependencies first)
#   $KB_CACHE/linux-<kver>/host-extra/*.ko, host-extra.order   more emulated-host modules (tun)
#   $KB_CACHE/linux-<kver>/guest-modules/*.ko, guest-modules.order  the guest's virtio and ext4
#                                        modules (the Debian kernel has them as modules)
#   $KB_CACHE/linux-<kver>/base-<sum>.cpio  uncompressed cpio of the above plus busybox and
#                                        mke2fs (with its shared libraries)
# Functions print progress on stderr; they return non-zero (with a message) instead of exiting.
#
# KVMBOX_ARCH=arm64 (default x86_64) makes all of this about an emulated *arm64* host instead:
# qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max (TCG emulates EL2), Debian's
# arm64 kernel (an uncompressed Image, KVM built in: no module to load, no vmlinux), and the
# busybox of busybox-static:arm64, downloaded like the kernel and cached as
# $KB_CACHE/busybox-arm64-<version>/busybox. The cache directories are named by kernel version,
# which names the architecture (6.1.0-57-amd64, 6.1.0-57-arm64), so both live side by side.

KB_ROOT=${KB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KB_CACHE=${KVMBOX_CACHE:-$HOME/.cache/kvmbox}
KB_ARCH=${KVMBOX_ARCH:-x86_64}
# QEMU's TCG: a host thread per emulated CPU (multi) or one for all, round robin (single). The
# x86 tiny-guest tier chooses single (tests/guests/emulated.sh; DEVELOPERS.md, Known traps).
KB_TCG_THREAD=${KVMBOX_HOST_TCG_THREAD:-multi}
case $KB_ARCH in
arm64 | aarch64)
	KB_ARCH=arm64
	KB_DEB_ARCH=arm64
	KB_QEMU=${KVMBOX_QEMU:-qemu-system-aarch64}
	KB_QEMU_PKG=qemu-system-arm
	# The virt board with EL2 (so the Debian kernel has KVM) and a GICv3 (KVM's vGICv3 needs one).
	KB_QEMU_MACHINE=(-M virt,virtualization=on,gic-version=3)
	KB_HOST_CONSOLE=ttyAMA0 # virt's PL011
	# KVM is built into Debian's arm64 kernel: nothing to load.
	KB_HOST_MODULES=""
	# tun for the guests' taps; the guest's virtio drivers and ext4, as on x86 (the PCI host,
	# the ITS and the PL031 are built in; no ACPI button: arm64 guests power off through PSCI).
	KB_HOST_EXTRA_MODULES="tun"
	KB_GUEST_MODULES="virtio_pci virtio_blk virtio_net virtio_console virtio_rng virtio_balloon crc32c_generic ext4
	gpio_keys evdev"
	KB_HOST_TESTS=tests/linux/arm64/host-tests.sh
	KB_HOST_BENCH=tests/linux/host-bench.sh # console=ttyS0 is the 16550 there too
	# The Makefile builds an arm64 host's own architecture in build/, a cross build in build/arm64/.
	if [[ $(uname -m) == aarch64 ]]; then KB_DEFAULT_BIN=build/kvmbox-static; else KB_DEFAULT_BIN=build/arm64/kvmbox-static; fi
	KB_DEFAULT_OUT=build/arm64/linux
	# The tiny test guests (make arm64-tiny), copied into /kvmbox when built.
	KB_HOST_FILES=$(ls "$KB_ROOT/$(dirname "$KB_DEFAULT_BIN")"/tiny/*.img 2>/dev/null)
	;;
*)
	KB_ARCH=x86_64
	KB_DEB_ARCH=amd64
	KB_QEMU=${KVMBOX_QEMU:-qemu-system-x86_64}
	KB_QEMU_PKG=qemu-system-x86
	KB_QEMU_MACHINE=()
	KB_HOST_CONSOLE=ttyS0
	# The modules that make /dev/kvm in the emulated host (TCG's -cpu max emulates AMD SVM).
	KB_HOST_MODULES="kvm_amd"
	# Loaded after kvm in the emulated host: tun for the guests' tap devices, vhost_net for the
	# kernel's virtio-net data path, vhost_vsock (with vsock, vhost, vhost_iotlb) for --vsock.
	KB_HOST_EXTRA_MODULES="tun vhost_net vsock vhost_iotlb vhost vhost_vsock"
	# The guest's virtio drivers and ext4. The crypto API asks for crc32c_generic by name when
	# ext4 mounts (no depends= names it), so it is listed explicitly, before ext4. rng-core is
	# built in. button (ACPI power button) and evdev (its /dev/input/event*) are for busybox acpid.
	# vsock and the virtio transport for the linux-vsock-* tests.
	KB_GUEST_MODULES="virtio_pci virtio_blk virtio_net virtio_console virtio_rng virtio_balloon crc32c_generic ext4
	button evdev vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport"
	KB_HOST_TESTS=tests/linux/host-tests.sh
	KB_HOST_BENCH=tests/linux/host-bench.sh
	KB_DEFAULT_BIN=build/kvmbox-static
	KB_DEFAULT_OUT=build/linux
	KB_HOST_FILES=
	;;
esac
# The busybox copied into the images: this machine's, unless it is for another architecture.
if [[ -n ${KVMBOX_BUSYBOX:-} ]]; then
	KB_BUSYBOX=$KVMBOX_BUSYBOX
elif [[ $KB_DEB_ARCH == "$(dpkg --print-architecture 2>/dev/null || echo amd64)" ]]; then
	KB_BUSYBOX=/bin/busybox
else
	KB_BUSYBOX= # kb_fetch_busybox
fi

kb_log() { printf '%s\n' "linux: $*" >&2; }

# kb_kernel_version: print the Debian kernel version (e.g. 6.1.0-56-amd64) to use.
# KVMBOX_KERNEL_VERSION overrides; without apt metadata, fall back to the newest cached one.
kb_kernel_version() {
	local v
	if [[ -n ${KVMBOX_KERNEL_VERSION:-} ]]; then
		printf '%s\n' "$KVMBOX_KERNEL_VERSION"
		return 0
	fi
	local a=$KB_DEB_ARCH
	# Qualified by architecture (linux-image-arm64:arm64) so a foreign one resolves too.
	v=$(apt-cache depends "linux-image-$a:$a" 2>/dev/null |
		sed -n "s/^ *Depends: linux-image-\\([0-9].*-$a\\)\\(:$a\\)\\{0,1\\}\$/\\1/p" | head -n1)
	if [[ -z $v ]]; then
		v=$(ls -d "$KB_CACHE"/linux-*-"$a"/ 2>/dev/null | sed 's|.*/linux-\(.*\)/$|\1|' |
			sort -V | tail -n1)
	fi
	if [[ -z $v ]]; then
		kb_log "cannot resolve the kernel version: run 'apt-get update' (apt-cache depends" \
			"linux-image-$a:$a found nothing; for a foreign architecture first" \
			"'dpkg --add-architecture $a', or make deps) or set KVMBOX_KERNEL_VERSION"
		return 1
	fi
	printf '%s\n' "$v"
}

# kb_module_cat FILE: the module's bytes, whatever its compression.
kb_module_cat() {
	case $1 in
	*.ko.xz) xz -dc -- "$1" ;;
	*.ko.zst) zstd -dcq -- "$1" ;;
	*.ko.gz) gzip -dc -- "$1" ;;
	*) cat -- "$1" ;;
	esac
}

# kb_extract_vmlinux BZIMAGE OUT: decompress the kernel payload of a bzImage into an ELF.
# Like the kernel's scripts/extract-vmlinux: find each compression magic, try to decompress
# from there, keep the first result that is an ELF file.
kb_extract_vmlinux() {
	local in=$1 out=$2 magic tool off
	# grep -P patterns (bash strings cannot hold the NUL bytes of the magics).
	local -a tries=(
		'\xfd7zXZ\x00' "xz -dc --single-stream"
		'\x28\xb5\x2f\xfd' "zstd -dcq"
		'\x1f\x8b\x08' "gzip -dc"
		'\x5d\x00\x00' "xz -dc --format=lzma"
	)
	local i
	for ((i = 0; i < ${#tries[@]}; i += 2)); do
		magic=${tries[i]}
		tool=${tries[i + 1]}
		# grep -b on binary input gives the byte offset of each match.
		for off in $(LC_ALL=C grep -aboP -- "$magic" "$in" 2>/dev/null | cut -d: -f1 | head -n5); do
			tail -c +$((off + 1)) -- "$in" | $tool >"$out.tmp" 2>/dev/null
			if [[ $(head -c4 "$out.tmp" 2>/dev/null) == $'\x7fELF' ]]; then
				mv -- "$out.tmp" "$out"
				return 0
			fi
		done
	done
	rm -f -- "$out.tmp"
	kb_log "no compressed ELF payload found in $in"
	return 1
}

# kb_has_pvh_note ELF: true when the ELF carries XEN_ELFNOTE_PHYS32_ENTRY (type 0x12).
kb_has_pvh_note() {
	LC_ALL=C readelf -n -- "$1" 2>/dev/null | grep -Eq 'Xen .*(\(0x00000012\)|PHYS32_ENTRY)'
}

# _kb_deb PKG [ARCH]: print the cached .deb of PKG for ARCH (default: the emulated host's),
# downloading it with apt-get if needed.
_kb_deb() {
	local pkg=$1 arch=${2:-$KB_DEB_ARCH} deb
	mkdir -p "$KB_CACHE/debs" || return 1
	deb=$(ls "$KB_CACHE/debs/${pkg}"_*_"$arch".deb 2>/dev/null | sort -V | tail -n1)
	if [[ -z $deb ]]; then
		kb_log "downloading $pkg:$arch into $KB_CACHE/debs"
		# apt-get download writes into the current directory.
		(cd "$KB_CACHE/debs" && apt-get download "$pkg:$arch" >/dev/null 2>"$KB_CACHE/debs/apt.err") || {
			kb_log "apt-get download $pkg:$arch failed: $(tail -n1 "$KB_CACHE/debs/apt.err")"
			return 1
		}
		deb=$(ls "$KB_CACHE/debs/${pkg}"_*_"$arch".deb 2>/dev/null | sort -V | tail -n1)
		[[ -n $deb ]] || { kb_log "apt-get download left no $pkg:$arch .deb"; return 1; }
	fi
	printf '%s\n' "$deb"
}

# kb_fetch_busybox: when the images need another architecture's busybox, set KB_BUSYBOX to the
# one of busybox-static:<arch>, downloaded and extracted into the cache once. (busybox-static
# is not co-installable across architectures, so it is never installed.)
kb_fetch_busybox() {
	local deb dir
	[[ -n $KB_BUSYBOX ]] && return 0
	deb=$(_kb_deb busybox-static) || return 1
	dir=$KB_CACHE/busybox-$KB_DEB_ARCH-$(basename "$deb" .deb | sed 's/^busybox-static_//; s/_[^_]*$//; s/^[0-9]*%3a//')
	if [[ ! -x $dir/busybox ]]; then
		rm -rf -- "$dir.tmp"
		mkdir -p "$dir.tmp" && dpkg-deb -x "$deb" "$dir.tmp" || { kb_log "dpkg-deb -x $deb failed"; return 1; }
		mkdir -p "$dir" && mv -- "$dir.tmp/bin/busybox" "$dir/busybox" || { kb_log "no bin/busybox in $deb"; return 1; }
		rm -rf -- "$dir.tmp"
	fi
	KB_BUSYBOX=$dir/busybox
}

# _kb_modules MODDIR OUTDIR ORDERFILE MODULE...: copy the modules and everything their
# depends= fields name (decompressed) into OUTDIR, and write the load order (dependencies
# first) to ORDERFILE. Modules built into the kernel (modules.builtin) are skipped.
_kb_modules() {
	local moddir=$1 outdir=$2 orderfile=$3 order="" seen=" " list builtin m
	shift 3
	mkdir -p "$outdir" || return 1
	list=$(cd "$moddir" && find . -name '*.ko*' | sed 's|^\./||')
	builtin=$(sed 's|.*/||; s|\.ko$||; s|-|_|g' "$moddir/modules.builtin" 2>/dev/null | tr '\n' ' ')
	_kb_mod_resolve() {
		local name=${1//-/_} path deps d
		[[ $seen == *" $name "* ]] && return 0
		seen+="$name "
		[[ " $builtin " == *" $name "* ]] && return 0
		# File names may use - where the module name has _.
		path=$(printf '%s\n' "$list" | awk -v n="$name" '{
			f = $0; sub(/.*\//, "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f); gsub(/-/, "_", f)
			if (f == n) { print; exit }
		}')
		[[ -n $path ]] || { kb_log "module $name not in $moddir"; return 1; }
		deps=$(kb_module_cat "$moddir/$path" | strings | sed -n 's/^depends=//p' | head -n1 | tr , ' ')
		for d in $deps; do
			_kb_mod_resolve "$d" || return 1
		done
		kb_module_cat "$moddir/$path" >"$outdir/$name.ko" || return 1
		order+="$name.ko"$'\n'
	}
	for m in "$@"; do
		_kb_mod_resolve "$m" || return 1
	done
	printf '%s' "$order" >"$orderfile"
}

# kb_fetch_kernel: make $KB_CACHE/linux-<kver>/ complete and set KB_KDIR and KB_KVER.
kb_fetch_kernel() {
	local kver pkg dir deb tmp moddir mark
	kver=$(kb_kernel_version) || return 1
	dir=$KB_CACHE/linux-$kver
	# shellcheck disable=SC2034 # for callers
	KB_KVER=$kver
	KB_KDIR=$dir
	# The extra module sets have their own marker (named after the lists), so a cache made
	# before they existed, or with other lists, gets them added without a new download.
	mark=.complete-mods-$(printf '%s|%s' "$KB_HOST_EXTRA_MODULES" "$KB_GUEST_MODULES" | cksum | cut -d' ' -f1)
	[[ -f $dir/.complete && -f $dir/$mark ]] && return 0

	pkg=linux-image-$kver-unsigned
	deb=$(_kb_deb "$pkg") || return 1
	kb_log "extracting $(basename "$deb")"
	tmp=$(mktemp -d "$KB_CACHE/extract.XXXXXX") || return 1
	if ! dpkg-deb -x "$deb" "$tmp"; then
		rm -rf -- "$tmp"
		kb_log "dpkg-deb -x $deb failed"
		return 1
	fi
	moddir=$tmp/lib/modules/$kver
	if [[ ! -f $dir/.complete ]]; then
		rm -rf -- "$dir"
		mkdir -p "$dir" || { rm -rf -- "$tmp"; return 1; }
		cp -- "$tmp/boot/vmlinuz-$kver" "$dir/vmlinuz" || { rm -rf -- "$tmp"; return 1; }
		# The modules kvm_amd needs, dependencies first (none on arm64).
		_kb_modules "$moddir" "$dir/modules" "$dir/modules.order" $KB_HOST_MODULES ||
			{ rm -rf -- "$tmp"; return 1; }
		if [[ $KB_ARCH == x86_64 ]]; then
			kb_log "extracting the PVH vmlinux from the bzImage"
			kb_extract_vmlinux "$dir/vmlinuz" "$dir/vmlinux" || { rm -rf -- "$tmp"; return 1; }
			if ! kb_has_pvh_note "$dir/vmlinux"; then
				rm -rf -- "$tmp"
				kb_log "$dir/vmlinux has no Xen PVH entry note (readelf -n)"
				return 1
			fi
		fi
		touch "$dir/.complete"
	fi
	rm -rf -- "$dir/host-extra" "$dir/guest-modules" "$dir"/.complete-mods-*
	if ! _kb_modules "$moddir" "$dir/host-extra" "$dir/host-extra.order" $KB_HOST_EXTRA_MODULES ||
		! _kb_modules "$moddir" "$dir/guest-modules" "$dir/guest-modules.order" $KB_GUEST_MODULES; then
		rm -rf -- "$tmp"
		return 1
	fi
	rm -rf -- "$tmp"
	touch "$dir/$mark"
}

# kb_check_busybox: the busybox we copy into initramfs images must be static.
kb_check_busybox() {
	kb_fetch_busybox || return 1
	if [[ ! -x $KB_BUSYBOX ]]; then
		kb_log "$KB_BUSYBOX missing: apt-get install busybox-static"
		return 1
	fi
	if ! LC_ALL=C readelf -l "$KB_BUSYBOX" 2>/dev/null | grep -q 'Elf file type is EXEC\|DYN'; then
		kb_log "$KB_BUSYBOX is not an ELF program"
		return 1
	fi
	if LC_ALL=C readelf -l "$KB_BUSYBOX" | grep -q 'INTERP'; then
		kb_log "$KB_BUSYBOX is dynamically linked: apt-get install busybox-static"
		return 1
	fi
}

# kb_cpio DIR OUT [gzip]: pack DIR as a newc cpio owned by root, gzipped if asked.
kb_cpio() {
	local dir=$1 out=$2 z=${3:-}
	if [[ $z == gzip ]]; then
		(cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$out"
	else
		(cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out"
	fi
}

# kb_skel DIR: the directories, busybox and /dev/console every initramfs needs (kb_check_busybox
# first: another architecture's busybox is only known once fetched).
kb_skel() {
	mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc,root} || return 1
	cp -- "$KB_BUSYBOX" "$1/bin/busybox" || return 1
	# The kernel's built-in initramfs already has /dev/console; add it too when we may.
	if [[ $(id -u) == 0 ]]; then
		mknod -m 600 "$1/dev/console" c 5 1 2>/dev/null || true
	fi
}

# kb_helper NAME OUT TESTS: build tests/linux/NAME.c static for KB_ARCH into OUT. A compiler that
# is missing is only logged: the tests named TESTS then fail saying so.
kb_helper() {
	local cc=gcc
	[[ $KB_ARCH == arm64 && $(uname -m) != aarch64 ]] && cc=aarch64-linux-gnu-gcc
	"$cc" -static -O2 -Wall -Wextra -pthread -o "$2" "$KB_ROOT/tests/linux/$1.c" ||
		kb_log "cannot build tests/linux/$1.c with $cc: the $3 tests will fail"
}

# kb_vsock_echo OUT: the vsock tests' helper (tests/linux/vsock-echo.c), in the emulated host and
# in the guest.
kb_vsock_echo() {
	kb_helper vsock-echo "$1" "linux-vsock-*"
}

# kb_build_guest_initrd OUT: the guest initramfs (busybox, tests/linux/guest-init, vsock-echo,
# rtc-irq).
kb_build_guest_initrd() {
	local out=$1 d
	# The guest's /init is a busybox script: without busybox the guest kernel finds no init and,
	# with panic=-1, reboots forever. Another architecture's busybox is only known once
	# kb_check_busybox has fetched it.
	kb_check_busybox || return 1
	d=$(mktemp -d) || return 1
	kb_skel "$d" || { rm -rf -- "$d"; return 1; }
	install -m 755 "$KB_ROOT/tests/linux/guest-init" "$d/init"
	kb_vsock_echo "$d/bin/vsock-echo"
	kb_helper rtc-irq "$d/bin/rtc-irq" linux-rtc-irq
	kb_cpio "$d" "$out" gzip
	local rc=$?
	rm -rf -- "$d"
	return $rc
}

# kb_lockup LINE: status 0, with the report in KB_LOCKUP, when LINE (a line of the emulated
# host's console) is its kernel saying a CPU has been stuck for KVMBOX_LOCKUP_LIMIT (60) seconds
# or more: a kernel bug under nested TCG, not something a user-space program can do, and past a
# minute the host does not come back. Status 1 for any other line. Called on every console line:
# no subshell.
kb_lockup() {
	local s
	case $1 in *"watchdog: BUG: soft lockup"*"stuck for "*) ;; *) return 1 ;; esac
	s=${1##*stuck for }
	s=${s%%s!*}
	[[ $s =~ ^[0-9]+$ ]] && ((s >= ${KVMBOX_LOCKUP_LIMIT:-60})) || return 1
	KB_LOCKUP=${1#*] }
}

# kb_host_death LOG: why the emulated host whose console is in LOG (run.sh's and emulated.sh's
# "EPOCH<TAB>line" format) stopped on its own: its kernel's panic line (panic=-1 and qemu's
# -no-reboot make a panic end qemu with status 0), else that it printed none (a triple fault
# of the emulated CPU ends it the same way). Then its last 12 console lines on stderr, so a CI
# log shows them.
kb_host_death() {
	local p
	p=$(grep -a -m1 -o -E 'Kernel panic - not syncing.*|Attempted to kill init.*' "$1" | cut -c1-160)
	if [ -n "$p" ]; then echo "its kernel panicked: '$p'"; else echo "its kernel printed no panic"; fi
	{
		echo "the emulated host's last console lines ($1):"
		tail -n 12 "$1" | cut -f2- | cut -c1-200 | sed 's/^/    | /'
	} >&2
}

# kb_add_prog DIR PROG [DEST]: copy the dynamically linked PROG into the image DIR at its own
# path (or at DEST), with the shared libraries and loader ldd lists (at their paths, links
# resolved).
kb_add_prog() {
	local d=$1 prog lib dest
	prog=$(command -v "$2") || return 1
	dest=${3:-$prog}
	mkdir -p "$d$(dirname "$dest")" && cp -L -- "$prog" "$d$dest" || return 1
	for lib in $(ldd "$prog" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
		mkdir -p "$d$(dirname "$lib")" && cp -L -- "$lib" "$d$lib" || return 1
	done
}

# kb_mke2fs: the mke2fs (e2fsprogs) copied into the emulated host, or nothing (busybox's
# mke2fs makes ext2 only; the ext4 tests SKIP without it). This machine's: x86_64 hosts only.
# Another architecture's emulated host gets an empty ext4 image made here instead
# (/kvmbox/ext4-64M.img.gz, see kb_base_cpio).
kb_mke2fs() {
	[[ $KB_ARCH == x86_64 ]] || return 0
	PATH=$PATH:/sbin:/usr/sbin command -v mke2fs 2>/dev/null
}

# _kb_cp_ko FROMDIR TODIR: copy the *.ko of FROMDIR (there may be none).
_kb_cp_ko() { find "$1" -maxdepth 1 -name '*.ko' -exec cp -t "$2" -- {} +; }

# kb_guest_rt_cpio: print the path of a gzipped cpio with cyclictest (Debian's rt-tests) and the
# shared libraries it needs (libnuma1 from its .deb, the C library from this host), appended to
# the guest initramfs by the latency bench. Downloaded with apt-get download once.
KB_RT_DEBS="rt-tests libnuma1"
kb_guest_rt_cpio() {
	local d x deb out sum lib
	sum=$(for deb in $KB_RT_DEBS; do _kb_deb "$deb" || return 1; done | xargs sha256sum | sha256sum | cut -c1-12)
	out=$KB_CACHE/guest-rt-$sum.cpio.gz
	if [[ ! -f $out ]]; then
		x=$(mktemp -d) && d=$(mktemp -d) || return 1
		for deb in $KB_RT_DEBS; do dpkg-deb -x "$(_kb_deb "$deb")" "$x" || { rm -rf "$x" "$d"; return 1; }; done
		mkdir -p "$d/usr/bin" "$d/lib64" "$d/lib/x86_64-linux-gnu"
		cp "$x/usr/bin/cyclictest" "$d/usr/bin/"
		for lib in $(LD_LIBRARY_PATH=$x/usr/lib/x86_64-linux-gnu ldd "$x/usr/bin/cyclictest" |
			sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
			mkdir -p "$d$(dirname "${lib#$x}")" && cp -L "$lib" "$d${lib#$x}" || { rm -rf "$x" "$d"; return 1; }
		done
		kb_cpio "$d" "$out.tmp" gzip && mv "$out.tmp" "$out"
		rm -rf "$x" "$d"
	fi
	[[ -f $out ]] && printf '%s\n' "$out"
}

# kb_base_cpio: the unchanging part of the host initramfs (busybox, modules, guest kernels,
# the guest's module archive, mke2fs), uncompressed so the TCG-emulated kernel only copies it.
# Prints its path.
kb_base_cpio() {
	local sum out d g e2fs rt
	e2fs=$(kb_mke2fs)
	# cyclictest for the latency bench: without it (no network for apt-get download) the bench
	# says so and the tests do not mind. x86_64 guests only (kb_guest_rt_cpio takes amd64 libraries).
	rt=
	[[ $KB_ARCH == x86_64 ]] && { rt=$(kb_guest_rt_cpio 2>/dev/null) || rt=; }
	sum=$({ sha256sum "$KB_BUSYBOX"; echo "$KB_HOST_EXTRA_MODULES|$KB_GUEST_MODULES|$e2fs|$rt|$KB_ARCH"
		[[ -n $e2fs ]] && sha256sum "$e2fs"; } | sha256sum | cut -c1-12)
	out=$KB_KDIR/base-$sum.cpio
	if [[ ! -f $out ]]; then
		# Older bases are ~80 MB each: keep only the current one.
		rm -f -- "$KB_KDIR"/base-*.cpio
		d=$(mktemp -d) || return 1
		kb_skel "$d" || { rm -rf -- "$d"; return 1; }
		mkdir -p "$d/kvmbox/modules" "$d/kvmbox/modules-extra"
		_kb_cp_ko "$KB_KDIR/modules" "$d/kvmbox/modules/"
		_kb_cp_ko "$KB_KDIR/host-extra" "$d/kvmbox/modules-extra/"
		cp -- "$KB_KDIR/host-extra.order" "$d/kvmbox/modules-extra/order"
		cp -- "$KB_KDIR/modules.order" "$KB_KDIR/vmlinuz" "$d/kvmbox/"
		[[ -f $KB_KDIR/vmlinux ]] && cp -- "$KB_KDIR/vmlinux" "$d/kvmbox/"
		# The guest's modules as a gzipped cpio the emulated host appends to the guest
		# initramfs (the guest kernel unpacks concatenated archives): /modules/*.ko and
		# /modules/order.
		g=$(mktemp -d) || return 1
		mkdir -p "$g/modules"
		_kb_cp_ko "$KB_KDIR/guest-modules" "$g/modules/"
		cp -- "$KB_KDIR/guest-modules.order" "$g/modules/order"
		kb_cpio "$g" "$d/kvmbox/guest-modules.cpio.gz" gzip
		rm -rf -- "$g"
		[[ -n $rt ]] && cp -- "$rt" "$d/kvmbox/guest-rt.cpio.gz"
		if [[ -n $e2fs ]]; then
			kb_add_prog "$d" "$e2fs" || kb_log "cannot copy $e2fs and its libraries"
			[[ -f /etc/mke2fs.conf ]] && cp -- /etc/mke2fs.conf "$d/etc/"
		elif e2fs=$(PATH=$PATH:/sbin:/usr/sbin command -v mke2fs); then
			# This machine's mke2fs cannot run there: an empty 64 MiB ext4 image instead.
			truncate -s 64M "$d/kvmbox/ext4-64M.img" &&
				"$e2fs" -q -F -t ext4 -E lazy_itable_init=0,lazy_journal_init=0 "$d/kvmbox/ext4-64M.img" &&
				gzip -9 "$d/kvmbox/ext4-64M.img" || kb_log "cannot make an ext4 image with $e2fs"
		fi
		kb_cpio "$d" "$out.tmp" && mv -- "$out.tmp" "$out"
		rm -rf -- "$d"
	fi
	[[ -f $out ]] && printf '%s\n' "$out"
}

# kb_host_initrd_from OUT DIR: the emulated host's initramfs: the cached base plus DIR as a
# small gzipped archive (concatenated cpio archives are unpacked one after the other by the
# kernel); DIR gets tests/linux/host-init as /init.
# Two tiers may build their images at once (check.sh runs the two tiny-guest tiers side by
# side): the cache is filled and read under one lock.
kb_host_initrd_from() {
	local out=$1 d=$2 lock rc
	mkdir -p "$KB_CACHE" && exec {lock}>"$KB_CACHE/.lock" && flock "$lock" || return 1
	_kb_host_initrd_from "$out" "$d"
	rc=$?
	exec {lock}>&-
	return $rc
}
_kb_host_initrd_from() {
	local out=$1 d=$2 base
	kb_check_busybox || return 1
	kb_fetch_kernel || return 1
	base=$(kb_base_cpio) || return 1
	install -m 755 "$KB_ROOT/tests/linux/host-init" "$d/init" || return 1
	kb_cpio "$d" "$d.cpio.gz" gzip || { rm -f -- "$d.cpio.gz"; return 1; }
	cat -- "$base" "$d.cpio.gz" >"$out"
	local rc=$?
	rm -f -- "$d.cpio.gz"
	return $rc
}

# kb_build_host_initrd OUT KVMBOX_BIN SCRIPT...: the emulated host's initramfs with kvmbox,
# the guest initramfs and the scripts in /kvmbox.
kb_build_host_initrd() {
	local out=$1 bin=$2 d s rc
	shift 2
	d=$(mktemp -d) || return 1
	mkdir -p "$d/kvmbox"
	install -m 755 "$bin" "$d/kvmbox/kvmbox"
	for s in "$@"; do
		install -m 755 "$s" "$d/kvmbox/$(basename "$s")"
	done
	kb_build_guest_initrd "$d/kvmbox/guest-initrd.gz" || { rm -rf -- "$d"; return 1; }
	kb_vsock_echo "$d/kvmbox/vsock-echo"
	kb_host_initrd_from "$out" "$d"
	rc=$?
	rm -rf -- "$d"
	return $rc
}

# kb_cpu_use PID: the share of one CPU PID used over the next 2 s, in percent (a wedged
# emulated host at 0% waits for an interrupt that never comes; at 100% it spins).
kb_cpu_use() {
	local a b
	a=$(awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null) || return
	sleep 2
	b=$(awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null) || return
	echo "$(((b - a) * 100 / $(getconf CLK_TCK) / 2))"
}

# kb_monitor SOCKET COMMAND...: each COMMAND's answer from the QEMU monitor at SOCKET (kb_boot_host
# with KB_MONITOR=SOCKET), for a wedged emulated host: `info registers` says where its CPU is
# (RIP, HLT) and `info lapic` whether an interrupt waits. QEMU's monitor runs on its main
# thread, so it answers while the emulated CPU spins or sleeps. Needs python3 (a unix-socket
# client); without it, or when the monitor does not answer within 5 s, one line says so.
kb_monitor() {
	local sock=$1
	shift
	command -v python3 >/dev/null 2>&1 || { echo "(no python3 to ask QEMU's monitor)"; return 0; }
	timeout 20 python3 - "$sock" "$@" <<-'PY' 2>&1 || echo "(QEMU's monitor at $sock did not answer)"
		import socket, sys
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.settimeout(5)
		try:
		    s.connect(sys.argv[1])
		except OSError as e:
		    print("(no QEMU monitor at %s: %s)" % (sys.argv[1], e.strerror))
		    sys.exit(0)
		def until_prompt():
		    buf = b""
		    while not buf.endswith(b"(qemu) "):
		        chunk = s.recv(65536)
		        if not chunk:
		            break
		        buf += chunk
		    return buf.decode(errors="replace")
		try:
		    until_prompt()
		except OSError as e:
		    print("(QEMU's monitor did not greet: %s)" % e)
		    sys.exit(0)
		for cmd in sys.argv[2:]:
		    s.sendall(cmd.encode() + b"\n")
		    try:
		        out = until_prompt().replace("\r", "")
		    except OSError as e:
		        print("(QEMU's monitor stopped answering: %s)" % e)
		        break
		    lines = out.split("\n")[1:-1]  # the echoed command and the next prompt left out
		    print("== " + cmd)
		    print("\n".join(l for l in lines if l.strip()))
	PY
}

# kb_monitor_dump SOCKET PREFIX: where a wedged emulated host's CPU is, for its log: the monitor's
# registers (without the FPU, SSE and debug ones) and local APIC, each line after PREFIX.
kb_monitor_dump() {
	kb_monitor "$1" "info registers" "info lapic" | grep -v -E '^(FPR|XMM|YMM|ZMM|DR[0-9]|FCW|Code=)' |
		sed "s/^/$2/"
}

# kb_kick SOCKET PREFIX [dump]: wake an emulated host whose CPU QEMU's one-CPU TCG left with its
# timer interrupt pending (DEVELOPERS.md, Known traps): a key press through the monitor at
# SOCKET, a new interrupt. With `dump`, first where the CPU was (kb_monitor_dump, lines after
# PREFIX on stdout).
kb_kick() {
	[[ ${3:-} == dump ]] && kb_monitor_dump "$1" "$2"
	kb_monitor "$1" "sendkey shift" >/dev/null
}

# kb_kicker PID LOG SOCKET PREFIX [KICKLOG]: for an emulated host whose console goes to the file
# LOG: while PID lives, kb_kick through SOCKET after every KVMBOX_HOST_KICK (15) seconds in which
# LOG did not grow (the CPU's state at the first), each logged after PREFIX to KICKLOG (default
# LOG). (tests/linux/run.sh and tests/guests/emulated.sh read the console as it comes and kick
# from their own loops.)
kb_kicker() {
	local pid=$1 log=$2 sock=$3 prefix=$4 out=${5:-$2} kick=${KVMBOX_HOST_KICK:-15} last=-1 size quiet=0 kicks=0
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		size=$(stat -c %s "$log" 2>/dev/null || echo 0)
		if [[ $size != "$last" ]]; then
			last=$size quiet=0
			continue
		fi
		quiet=$((quiet + 1))
		((quiet % kick)) && continue
		echo "${prefix}the emulated host printed nothing for ${quiet}s; a key press to wake it (kick $((kicks + 1)))" >>"$out"
		kb_kick "$sock" "$prefix" "$( ((kicks)) || echo dump)" >>"$out"
		kicks=$((kicks + 1))
	done
}

# kb_have_qemu: can we run the emulated host at all? Prints the reason when not.
kb_have_qemu() {
	if ! command -v "$KB_QEMU" >/dev/null 2>&1; then
		echo "$KB_QEMU not installed (apt-get install $KB_QEMU_PKG)"
		return 1
	fi
}

# kb_boot_host INITRD TIMEOUT APPEND [interactive]: boot the emulated host; its serial console
# is our stdout (and stdin when interactive). Returns qemu's status (124 when timed out).
# With KB_HOST_HUGEPAGES=N, its kernel reserves N huge pages of 2 MiB at boot (hugepages=N).
# With KB_STATUS_FILE set, the emulated host's second serial port (ttyS1) writes to that file.
# Interactive sessions move qemu's escape key from Ctrl-A to Ctrl-] (Ctrl-] x quits qemu), so
# that Ctrl-A reaches kvmbox running inside (Ctrl-A x quits kvmbox).
kb_boot_host() {
	local initrd=$1 tmo=$2 append=$3 mode=${4:-batch}
	# shellcheck disable=SC2054 # the commas are qemu's
	local -a cmd=(
		"$KB_QEMU" "${KB_QEMU_MACHINE[@]}" -accel "tcg,thread=$KB_TCG_THREAD" -smp "${KVMBOX_HOST_CPUS:-2}"
		-cpu "${KVMBOX_HOST_CPU:-max}" -m "${KVMBOX_HOST_MEMORY:-3G}" -nic none -nographic -no-reboot
		-kernel "$KB_KDIR/vmlinuz" -initrd "$initrd"
		-append "console=$KB_HOST_CONSOLE quiet panic=-1 ${KB_HOST_HUGEPAGES:+hugepages=$KB_HOST_HUGEPAGES }${KVMBOX_HOST_APPEND:+$KVMBOX_HOST_APPEND }$append"
	)
	[[ -n ${KB_PIDFILE:-} ]] && cmd+=(-pidfile "$KB_PIDFILE")
	# (A unix socket's path has at most 107 bytes: a longer one goes without the monitor.)
	if [[ -n ${KB_MONITOR:-} ]] && ((${#KB_MONITOR} < 100)); then
		rm -f "$KB_MONITOR" && cmd+=(-monitor "unix:$KB_MONITOR,server=on,wait=off")
	fi
	if [[ -n ${KB_STATUS_FILE:-} ]]; then
		: >"$KB_STATUS_FILE" || return 1
		cmd+=(-serial mon:stdio -serial "file:$KB_STATUS_FILE")
	fi
	if [[ $mode == interactive ]]; then
		timeout --foreground -k 10 "$tmo" "${cmd[@]}" -echr 0x1d
	else
		timeout -k 10 "$tmo" "${cmd[@]}" </dev/null
	fi
}
