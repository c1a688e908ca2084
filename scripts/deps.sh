#!/bin/bash
# scripts/deps.sh - install the Debian packages in scripts/packages.txt that are missing.
#
# Prints nothing when everything is there. As root it installs what is missing with apt-get
# (running `apt-get update` first only when apt does not know a package); as another user it
# stops with one line giving the exact command to run. Exit status 0 when everything is there.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
list=scripts/packages.txt

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps: not a Debian system (no dpkg-query): install the equivalents of $list by hand" >&2
	exit 0
fi

install=() fetch=()
while read -r pkg _; do
	case $pkg in
	'' | '#'*) ;;
	fetch:*) fetch+=("${pkg#fetch:}") ;;
	*) install+=("$pkg") ;;
	esac
done <"$list"

# Installed for this machine's architecture (or arch-independent): on a multiarch host,
# dpkg-query lists every architecture's copy of a package.
native=$(dpkg --print-architecture 2>/dev/null)
is_installed() {
	local arch st
	while read -r arch st; do
		[[ $st == installed && ($arch == "$native" || $arch == all) ]] && return 0
	done < <(dpkg-query -W -f='${Architecture} ${db:Status-Status}\n' "$1" 2>/dev/null)
	return 1
}
missing=()
for p in "${install[@]}"; do
	is_installed "$p" || missing+=("$p")
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
((${#missing[@]} == 0 && ${#unknown[@]} == 0)) && exit 0

if (($(id -u) != 0)); then
	upd=
	((${#unknown[@]})) && upd="sudo apt-get update && "
	if ((${#missing[@]})); then
		echo "deps: missing Debian packages; run: ${upd}sudo apt-get install --no-install-recommends ${missing[*]}" >&2
	else
		echo "deps: apt does not know ${unknown[*]} (needed by the tests); run: sudo apt-get update" >&2
	fi
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=${TMPDIR:-/tmp}/kvmbox-deps.log
if ((${#unknown[@]})); then
	echo "deps: apt does not know ${unknown[*]}: apt-get update" >&2
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
