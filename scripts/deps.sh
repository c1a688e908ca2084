#!/bin/bash
# scripts/deps.sh - install the Debian packages in scripts/packages.txt that are missing.
#
# Prints nothing when everything is there. As root it installs what is missing with apt-get
# (running `apt-get update` first only when apt does not know a package); as another user it
# stops with one line giving the exact command to run. Exit status 0 when everything is there.
#
# Entries may be limited to hosts of some architectures ("PKG [amd64]", "PKG [!arm64]", as
# dpkg --print-architecture says), and may name another architecture's package ("PKG:arm64",
# multiarch): when dpkg does not have that architecture yet, deps.sh adds it (dpkg
# --add-architecture) and runs apt-get update before installing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
list=scripts/packages.txt

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps: not a Debian system (no dpkg-query): install the equivalents of $list by hand" >&2
	exit 0
fi

host_arch=$(dpkg --print-architecture 2>/dev/null)
# for_host [ARCH ...]: does an entry with this restriction list apply to this host?
for_host() {
	local a neg=0 hit=0
	(($# == 0)) && return 0
	for a in "$@"; do
		if [[ $a == '!'* ]]; then
			neg=1
			[[ ${a#!} == "$host_arch" ]] && return 1
		else
			[[ $a == "$host_arch" ]] && hit=1
		fi
	done
	((hit || neg))
}

install=() fetch=() foreign=()
while read -r pkg restrict _; do
	case $pkg in
	'' | '#'*) continue ;;
	esac
	if [[ $restrict == '['*']' ]]; then
		restrict=${restrict#'['}
		restrict=${restrict%']'}
		# shellcheck disable=SC2086 # a comma-separated list
		for_host ${restrict//,/ } || continue
	fi
	# PKG:ARCH (after an optional fetch:) for a foreign ARCH needs that architecture in dpkg.
	p=${pkg#fetch:}
	if [[ $p == *:* ]]; then
		a=${p##*:}
		[[ $a != "$host_arch" && " ${foreign[*]} " != *" $a "* ]] && foreign+=("$a")
	fi
	case $pkg in
	fetch:*) fetch+=("${pkg#fetch:}") ;;
	*) install+=("$pkg") ;;
	esac
done <"$list"
# Foreign architectures dpkg does not have yet (apt knows none of their packages before that).
add_arch=()
have_arches=" $(dpkg --print-foreign-architectures 2>/dev/null | tr '\n' ' ') "
for a in "${foreign[@]}"; do
	[[ $have_arches == *" $a "* ]] || add_arch+=("$a")
done

# installed PKG|PKG:ARCH: the host architecture's (or ARCH's, or the arch-independent) package
# is installed. (Unqualified, dpkg-query lists every architecture of a multiarch package.)
installed() {
	local want=$host_arch
	[[ $1 == *:* ]] && want=${1##*:}
	dpkg-query -W -f='${Architecture} ${db:Status-Status}\n' "$1" 2>/dev/null |
		grep -qx -e "$want installed" -e "all installed"
}
missing=()
for p in "${install[@]}"; do
	installed "$p" || missing+=("$p")
done
# Known to apt: has a candidate version (apt-cache policy prints "Candidate: (none)" or
# nothing at all for a package it does not know).
known() {
	local c
	c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[[ -n $c && $c != '(none)' ]]
}
unknown=()
for p in "${missing[@]}" "${fetch[@]}"; do
	known "$p" || unknown+=("$p")
done
((${#missing[@]} == 0 && ${#unknown[@]} == 0 && ${#add_arch[@]} == 0)) && exit 0

if (($(id -u) != 0)); then
	upd=
	((${#unknown[@]} || ${#add_arch[@]})) && upd="sudo apt-get update && "
	for a in "${add_arch[@]}"; do
		upd="sudo dpkg --add-architecture $a && $upd"
	done
	if ((${#missing[@]})); then
		echo "deps: missing Debian packages; run: ${upd}sudo apt-get install --no-install-recommends ${missing[*]}" >&2
	else
		echo "deps: apt does not know ${unknown[*]} (needed by the tests); run: ${upd% && }" >&2
	fi
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=${TMPDIR:-/tmp}/kvmbox-deps.log
for a in "${add_arch[@]}"; do
	echo "deps: dpkg --add-architecture $a (for the :$a packages in $list)" >&2
	dpkg --add-architecture "$a" >"$log" 2>&1 ||
		{ tail -n5 "$log" >&2; echo "deps: dpkg --add-architecture $a failed (log: $log)" >&2; exit 1; }
done
if ((${#unknown[@]} || ${#add_arch[@]})); then
	echo "deps: apt does not know ${unknown[*]:-the packages of the new architecture}: apt-get update" >&2
	apt-get update -q >"$log" 2>&1 ||
		{ tail -n5 "$log" >&2; echo "deps: apt-get update failed (log: $log); check /etc/apt/sources.list" >&2; exit 1; }
	for p in "${unknown[@]}"; do
		known "$p" || { echo "deps: no Debian package $p even after apt-get update; check /etc/apt/sources.list" >&2; exit 1; }
	done
fi
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
		{ tail -n5 "$log" >&2; echo "deps: apt-get install ${missing[*]} failed (log: $log)" >&2; exit 1; }
fi
exit 0
