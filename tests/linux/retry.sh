# tests/linux/retry.sh - sourced by tests/check.sh: which failed Linux-tier tests run once more
# (DEVELOPERS.md, Retries). Needs $tmp (check.sh's scratch directory).

# linux_retry_set ARCH OUT: from the run in $tmp/linux.out (the Linux tier's output), the tests
# to run once more (RETRY_SET) and why (RETRY_WHY); status 1 when none. OUT holds host.log.
linux_retry_set() {
	local arch=$1 out=$2 sig
	RETRY_SET=$(sed -n 's/^FAIL: \([^: ]*\).*/\1/p' "$tmp/linux.out" | sort -u)
	[ -n "$RETRY_SET" ] || return 1
	sig=$(grep -a -m1 -o 'KVMBOX-HOSTK .*' "$out/host.log" | cut -c14-160)
	[ -n "$sig" ] || sig=$(grep -a -m1 -o -e 'the emulated host printed nothing for [0-9]*s' \
		-e "the emulated host's kernel locked up.*" "$out/host.log" | cut -c1-160)
	# The emulated host ended on its own before it finished (run.sh: its kernel panicked, or
	# the emulated CPU reset): nothing kvmbox, a process in it, can do.
	[ -n "$sig" ] || sig=$(grep -a -m1 -o 'emulated host stopped (qemu status [0-9]*; [^)]*)' "$tmp/linux.out" |
		cut -c1-160)
	if [ -n "$sig" ]; then
		RETRY_WHY="the emulated host's kernel reported '$sig'"
		return 0
	fi
	# One exception (DEVELOPERS.md, Known traps): QEMU's multi-threaded TCG, which this tier
	# still needs for its SMP Linux guests, corrupts the nested guests' memory now and then
	# (measured in the tiny-guest tier, which now runs single-threaded and retries nothing).
	# So an x86 test whose guest crashed runs once more: kvmbox's crash message among the
	# lines after its FAIL line (its stderr), or, for a migration test, the source's status 3
	# (EXIT_GUEST_CRASH) or its reply that its VM stopped meanwhile.
	[ "$arch" = x86_64 ] || return 1
	RETRY_SET=$(awk '
		/^FAIL: / {
			cur = $2; sub(/:$/, "", cur)
			if (cur ~ /migrate/ && $0 ~ /source (kvmbox )?status 3|the VM stopped here meanwhile/) set[cur] = 1
			next
		}
		/^    \| / { if (cur != "" && /guest crashed on vCPU/) set[cur] = 1; next }
		{ cur = "" }
		END { for (t in set) print t }' "$tmp/linux.out" | sort -u)
	[ -n "$RETRY_SET" ] || return 1
	# With them, the tests that could not run for want of the migrated VM ("not run: ...").
	RETRY_SET=$(printf '%s\n' $RETRY_SET $(sed -n 's/^FAIL: \([^: ]*\): not run: .*/\1/p' "$tmp/linux.out") | sort -u)
	RETRY_WHY="its guest crashed (multi-threaded TCG's memory corruption, DEVELOPERS.md Known traps)"
}
