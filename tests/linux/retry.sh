# tests/linux/retry.sh - sourced by tests/check.sh: which failed Linux-tier tests run once more
# (DEVELOPERS.md, Retries). Needs $tmp (check.sh's scratch directory).

# linux_retry_set ARCH OUT: from the run in $tmp/linux.out (the Linux tier's output), the tests
# to run once more (RETRY_SET) and why (RETRY_WHY); status 1 when none. OUT holds host.log.
# Only a fault of the emulated host itself is retried (its kernel's own report, a wedge, or
# its end before it finished): never kvmbox's messages, a guest crash among them. ARCH is
# not used: the rule is the same on every architecture.
linux_retry_set() {
	local out=$2 sig
	RETRY_SET=$(sed -n 's/^FAIL: \([^: ]*\).*/\1/p' "$tmp/linux.out" | sort -u)
	[ -n "$RETRY_SET" ] || return 1
	sig=$(grep -a -m1 -o 'KVMBOX-HOSTK .*' "$out/host.log" | cut -c14-160)
	[ -n "$sig" ] || sig=$(grep -a -m1 -o -e 'the emulated host printed nothing for [0-9]*s' \
		-e "the emulated host's kernel locked up.*" "$out/host.log" | cut -c1-160)
	# The emulated host ended on its own before it finished (run.sh: its kernel panicked, or
	# the emulated CPU reset): nothing kvmbox, a process in it, can do.
	[ -n "$sig" ] || sig=$(grep -a -m1 -o 'emulated host stopped (qemu status [0-9]*; [^)]*)' "$tmp/linux.out" |
		cut -c1-160)
	[ -n "$sig" ] || return 1
	RETRY_WHY="the emulated host's kernel reported '$sig'"
}
