#!/bin/bash
# scripts/musl-deps.sh - the libraries kvmbox links, built for musl from their Debian sources.
#
#   scripts/musl-deps.sh -luring -ljson-c ...    (`make static-musl` passes LDLIBS)
#
# Debian ships these libraries (liburing, json-c, xxhash, ...) only built against glibc. For each
# -lNAME this finds the Debian package that provides libNAME for glibc (dpkg -S), its source
# package and version (the same version as the installed -dev package), fetches it with
# `apt-get source`, unpacks it with Debian's patches (dpkg-source -x) and builds a static library
# with musl-gcc, by the source's own build system (meson, CMake, Autoconf, a plain configure
# script or a Makefile). Nothing is committed: sources and results live in
# ${KVMBOX_CACHE:-~/.cache/kvmbox}/musl/<source>-<version>-<recipe>/, built once per version and
# recipe. The recipe is this script and scripts/musl-patches/: a change to either gives every
# library a new directory (the key is their hash), so a library an older recipe built is never
# linked. Older recipes' directories are left alone (another checkout may still use them); rm -rf
# the musl directory to reclaim the space.
#
# A source may have a patch, scripts/musl-patches/<source>.patch (applied with patch -p1 after
# Debian's own patches; its header says why), and configure options (configure_options below).
#
# Prints the compiler and linker flags for them on stdout (-isystem DIR/include -LDIR/lib per
# library, and the kernel headers, which musl does not ship). Progress goes to stderr, and
# each build's log to musl/<source>-<version>-<recipe>/build.log.
#
# apt-get source needs deb-src entries. When apt has none, as root this adds
# /etc/apt/sources.list.d/kvmbox-deb-src.sources and .list (the deb-src twin of every deb entry
# of /etc/apt/sources.list.d/*.sources and of /etc/apt/sources.list) and runs apt-get update, as
# scripts/deps.sh does for packages; as another user it prints the commands to run.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

CACHE=${KVMBOX_CACHE:-$HOME/.cache/kvmbox}/musl
MUSL_CC=${MUSL_CC:-musl-gcc}
# Small code first: the result must fit in flash.
LIB_CFLAGS="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fPIC -D_GNU_SOURCE"
DEBSRC=/etc/apt/sources.list.d/kvmbox-deb-src
PATCHES=scripts/musl-patches
RECIPE=$(cat scripts/musl-deps.sh "$PATCHES"/*.patch | sha256sum | cut -c1-10)

# configure_options SOURCE: what an Autoconf source is configured with besides the static build.
# libsodium: kvmbox calls XChaCha20-Poly1305 secretstream, BLAKE2b and its KDF (docs/PERFORMANCE.md,
# the musl build): --enable-minimal leaves out the APIs a minimal build need not have, and
# --disable-asm the amd64 assembly (Curve25519 sandy2x, Salsa20) and CPU feature detection, so
# only the portable implementations run; with the patch, no SSE/AVX variant is compiled either.
configure_options() {
	case $1 in
	libsodium) echo --enable-minimal --disable-asm ;;
	esac
}

say() { printf 'musl-deps: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
# nosource WHY: a source cannot be fetched here (no deb-src, no network, not in the archive):
# status 3 and a line starting "musl-deps: no Debian source:" (make check's musl tier SKIPs on it).
nosource() { say "no Debian source: $*"; exit 3; }

command -v "$MUSL_CC" >/dev/null || die "$MUSL_CC missing: apt-get install musl-tools (make deps)"
command -v dpkg-source >/dev/null || die "dpkg-source missing: apt-get install dpkg-dev (make deps)"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

# musl has no kernel headers: linux/, asm/ and asm-generic/ of Debian's linux-libc-dev.
khdr=$CACHE/kernel-headers
if [[ ! -d $khdr/linux ]]; then
	mkdir -p "$khdr"
	ln -sfn /usr/include/linux "$khdr/linux"
	ln -sfn "/usr/include/$multiarch/asm" "$khdr/asm"
	ln -sfn /usr/include/asm-generic "$khdr/asm-generic"
fi
[[ -e $khdr/linux/kvm.h && -d $khdr/asm ]] || die "no kernel headers in /usr/include/linux: apt-get install linux-libc-dev"

# deb-src entries: the deb entries again, as deb-src (deb822 .sources and one-line .list).
add_deb_src() {
	local f
	: >"$DEBSRC.sources.tmp"
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f && $f != "$DEBSRC.sources" ]] || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
			$0 ~ /(^|\n)Enabled: *no/ { next }
			match($0, /(^|\n)Types:[^\n]*/) {
				t = substr($0, RSTART, RLENGTH)
				if (t !~ /[: ]deb( |$)/) next
				sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print
			}' "$f" >>"$DEBSRC.sources.tmp"
	done
	sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list 2>/dev/null >"$DEBSRC.list.tmp" || true
	[[ -s $DEBSRC.sources.tmp || -s $DEBSRC.list.tmp ]] ||
		nosource "no deb entries in /etc/apt to derive deb-src entries from; add deb-src entries and run apt-get update"
	for f in sources list; do
		if [[ -s $DEBSRC.$f.tmp ]]; then mv "$DEBSRC.$f.tmp" "$DEBSRC.$f"; chmod 644 "$DEBSRC.$f"; else rm -f "$DEBSRC.$f.tmp"; fi
	done
	say "added deb-src entries ($DEBSRC.*); apt-get update"
	apt-get update -q >"$CACHE/apt-update.log" 2>&1 || nosource "apt-get update failed (log: $CACHE/apt-update.log)"
}

# Does apt know source package $1? (Not apt-cache | grep -q: with pipefail, grep's early exit
# would fail the pipeline.)
known_src() { [[ $(apt-cache showsrc "$1" 2>/dev/null) == *Package:* ]]; }

need_deb_src() { # SOURCE: make apt know the source package
	known_src "$1" && return 0
	if (($(id -u) != 0)); then
		nosource "apt has no deb-src entries (apt-get source $1 fails): run as root once, or add" \
			"deb-src twins of your deb entries and run: sudo apt-get update"
	fi
	[[ -f $DEBSRC.sources || -f $DEBSRC.list ]] || add_deb_src
	known_src "$1" || {
		apt-get update -q >"$CACHE/apt-update.log" 2>&1 ||
			nosource "apt-get update failed (log: $CACHE/apt-update.log)"
		known_src "$1" ||
			nosource "no source package $1 even with $DEBSRC.*; check /etc/apt"
	}
}

# build DIR PREFIX LOG [CONFIGURE-OPTION...]: the source tree's build system, static, with
# musl-gcc; the options go to an Autoconf configure.
build() {
	local d=$1 p=$2 log=$3
	shift 3
	(
		cd "$d"
		export CC=$MUSL_CC CFLAGS="$LIB_CFLAGS -isystem $khdr"
		if [[ -f meson.build ]]; then
			meson setup _musl --prefix="$p" --libdir=lib --default-library=static --buildtype=minsize \
				-Dc_args="$CFLAGS"
			ninja -C _musl install
		elif [[ -f CMakeLists.txt ]]; then
			cmake -S . -B _musl -DCMAKE_INSTALL_PREFIX="$p" -DCMAKE_INSTALL_LIBDIR=lib \
				-DCMAKE_C_COMPILER="$MUSL_CC" -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_BUILD_TYPE=MinSizeRel \
				-DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON -DBUILD_TESTING=OFF -DDISABLE_WERROR=ON
			cmake --build _musl -j2
			cmake --install _musl
		elif [[ -x configure ]] && grep -q 'Generated by GNU Autoconf' configure; then
			./configure --prefix="$p" --libdir="$p/lib" --disable-shared --enable-static "$@"
			make -j2
			make install
		elif [[ -f configure.ac || -f configure.in ]]; then
			autoreconf -fi
			./configure --prefix="$p" --libdir="$p/lib" --disable-shared --enable-static "$@"
			make -j2
			make install
		elif [[ -x configure ]]; then
			# A hand-written configure (liburing's): it takes --cc and --prefix.
			./configure --prefix="$p" --libdir="$p/lib" --cc="$CC"
			make -j2 -C src 2>/dev/null || make -j2
			make install
		elif [[ -f Makefile ]]; then
			make -j2 CC="$CC" CFLAGS="$CFLAGS" PREFIX="$p" prefix="$p" lib
			make install CC="$CC" CFLAGS="$CFLAGS" PREFIX="$p" prefix="$p" LIBDIR="$p/lib" libdir="$p/lib"
		else
			echo "no build system found in $d"
			exit 1
		fi
	) >"$log" 2>&1
}

# glibc_archive NAME BIN ROOT: when Debian's source of libNAME cannot be fetched (seen: the
# archive answers 404 for libinih 55-1's tarballs), the static archive that BIN (the -dev
# package) ships for glibc serves instead, if every symbol it leaves undefined is one that
# musl's libc.a defines with glibc's ABI: musl keeps glibc's calling conventions for these and
# provides glibc's own entry points (__ctype_b_loc, fopen64, __stack_chk_fail); a symbol musl
# lacks (glibc's __*_chk fortify calls, its internal FILE macros) refuses it. Its headers are
# BIN's. Status 1 with the reason on stdout.
glibc_archive() {
	local name=$1 bin=$2 root=$3 a=/usr/lib/$multiarch/lib$1.a libc missing f
	[[ -f $a ]] || { echo "$bin ships no lib$name.a"; return 1; }
	libc=$("$MUSL_CC" -print-file-name=libc.a)
	[[ -f $libc ]] || { echo "no musl libc.a ($MUSL_CC -print-file-name=libc.a)"; return 1; }
	missing=$(comm -23 <(nm -u "$a" | awk '$1 == "U" && $2 != "_GLOBAL_OFFSET_TABLE_" { print $2 }' | sort -u) \
		<(nm -g --defined-only "$libc" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u))
	[[ -z $missing ]] || { echo "lib$name.a needs symbols musl lacks: $(echo $missing)"; return 1; }
	mkdir -p "$root/lib" "$root/include"
	cp "$a" "$root/lib/"
	while read -r f; do
		[[ -f $f && $f == /usr/include/* ]] || continue
		mkdir -p "$root/include/$(dirname "${f#/usr/include/}")"
		cp "$f" "$root/include/${f#/usr/include/}"
	done < <(dpkg -L "$bin:$(dpkg --print-architecture)" 2>/dev/null || dpkg -L "$bin")
	[[ -n $(ls -A "$root/include") ]] || { echo "$bin installs no header under /usr/include"; return 1; }
}

flags="-isystem $khdr"
for arg in "$@"; do
	case $arg in
	-l*) name=${arg#-l} ;;
	*) continue ;;
	esac
	case $name in pthread | m | rt | dl | c) continue ;; esac
	# The package that gives glibc builds libNAME, and its source.
	bin=
	for f in /usr/lib/$multiarch/lib$name.a /usr/lib/$multiarch/lib$name.so /usr/lib/lib$name.a /usr/lib/lib$name.so; do
		[[ -e $f ]] || continue
		bin=$(dpkg -S "$f" 2>/dev/null | head -n1 | cut -d: -f1) && [[ -n $bin ]] && break
	done
	[[ -n $bin ]] || die "-l$name: no installed Debian package provides lib$name; install its -dev package (make deps)"
	read -r src ver < <(dpkg-query -W -f='${source:Package} ${source:Version}\n' "$bin" | head -n1)
	dir=$CACHE/$src-$ver-$RECIPE
	root=$dir/root
	if [[ ! -f $dir/.built ]]; then
		need_deb_src "$src"
		rm -rf "$dir"
		mkdir -p "$dir/dl"
		say "lib$name: Debian source $src $ver (from $bin), building for musl in $dir"
		if ! (cd "$dir/dl" && apt-get source --download-only "$src=$ver" >"$dir/apt.log" 2>&1); then
			if why=$(glibc_archive "$name" "$bin" "$root"); then
				say "lib$name: apt-get source $src=$ver failed (log: $dir/apt.log); using $bin's own" \
					"static archive, every undefined symbol of which musl's libc.a defines"
				touch "$dir/.built"
				flags="$flags -isystem $root/include -L$root/lib"
				continue
			fi
			nosource "apt-get source $src=$ver failed (log: $dir/apt.log), and $bin's glibc archive cannot" \
				"serve: $why; apt's deb-src must offer the installed version"
		fi
		dpkg-source -x --no-check "$dir"/dl/*.dsc "$dir/src" >>"$dir/apt.log" 2>&1 ||
			die "dpkg-source -x $src failed (log: $dir/apt.log)"
		if [[ -f $PATCHES/$src.patch ]]; then
			patch -p1 -d "$dir/src" <"$PATCHES/$src.patch" >>"$dir/apt.log" 2>&1 ||
				die "$PATCHES/$src.patch does not apply to $src $ver (log: $dir/apt.log)"
			# A patched configure.ac takes effect only through autoreconf (build()).
			if grep -q '^+++ [^ ]*/configure.ac' "$PATCHES/$src.patch"; then rm -f "$dir/src/configure"; fi
		fi
		# shellcheck disable=SC2046 # configure_options prints words
		build "$dir/src" "$root" "$dir/build.log" $(configure_options "$src") ||
			die "building $src $ver for musl failed: $(tail -n1 "$dir/build.log") (log: $dir/build.log)"
		# Only the static archives: the linker must not pick a shared one.
		rm -f "$root"/lib/*.so "$root"/lib/*.so.*
		[[ -f $root/lib/lib$name.a ]] || die "building $src left no lib$name.a in $root/lib (log: $dir/build.log)"
		touch "$dir/.built"
	fi
	flags="$flags -isystem $root/include -L$root/lib"
done
printf '%s\n' "$flags"
