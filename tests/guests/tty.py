#!/usr/bin/env python3
"""tests/guests/tty.py - run kvmbox on a pseudo-terminal and check what it does to it.

    tty.py TEST HOW ERRFILE OUTFILE kvmbox run ... (the idle guest)

kvmbox runs as a session leader with the pty slave as its controlling terminal,
stdin and stdout (stderr goes to ERRFILE; everything read from the master to
OUTFILE). Once the guest prints "idle: ready" the pty must be in raw mode
(ICANON, ECHO and ISIG off). Then, by HOW:
  sigterm   SIGTERM             -> status 143, termios as before the run
  ctrl-a-x  b'\\x01x' on the pty -> status 130, termios as before the run
  hangup    close the master    -> status 129 (SIGHUP from the hang-up)
Prints one line: PASS: TEST / FAIL: TEST: why. Bounded by timeouts.
"""
import errno
import fcntl
import os
import re
import select
import signal
import sys
import termios
import time

READY = b"idle: ready"
TIMEOUT_READY = 20.0
TIMEOUT_EXIT = 5.0
# The runner's definition of an error line on stderr (see stderr_errors in run.sh).
ERROR_LINE = re.compile(r"error|fail|cannot|can't|unable|warn|abort|fault|leak", re.I)
# termios.tcgetattr: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]
NAMES = ["iflag", "oflag", "cflag", "lflag", "ispeed", "ospeed", "cc"]


def spawn(argv, err_path, master, slave):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            os.dup2(slave, 0)
            os.dup2(slave, 1)
            err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(err, 2)
            os.closerange(3, 1024)
            os.execvp(argv[0], argv)
        except BaseException as e:  # noqa: BLE001 - report anything, then die
            os.write(2, ("tty.py: cannot start %s: %s\n" % (argv[0], e)).encode())
        os._exit(127)
    return pid


def read_some(master, out, timeout):
    """Read what the master has within timeout; returns False once it is gone."""
    r, _, _ = select.select([master], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(master, 4096)
    except OSError as e:
        if e.errno == errno.EIO:   # every slave fd closed
            return False
        raise
    if not data:
        return False
    out.append(data)
    return True


def wait_exit(pid, master, out, timeout):
    """Status of pid (exit code, or 128+signal), or None after timeout. Drains
    the master meanwhile so kvmbox never blocks on a full pty."""
    end = time.monotonic() + timeout
    alive = master is not None
    while time.monotonic() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            if os.WIFSIGNALED(st):
                return 128 + os.WTERMSIG(st)
            return os.WEXITSTATUS(st)
        if alive:
            alive = read_some(master, out, 0.05)
        else:
            time.sleep(0.05)
    return None


def diff_tio(a, b):
    d = []
    for i, name in enumerate(NAMES):
        if a[i] != b[i]:
            if name == "cc":
                d.append("cc[%s]" % ",".join(str(j) for j in range(len(a[i])) if a[i][j] != b[i][j]))
            else:
                d.append("%s %#x -> %#x" % (name, a[i], b[i]))
    return "; ".join(d)


def main():
    if len(sys.argv) < 6:
        print("usage: tty.py TEST HOW ERRFILE OUTFILE kvmbox args...", file=sys.stderr)
        return 2
    test, how, err_path, out_path, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    res = run(test, how, err_path, out_path, argv)
    print(res)
    return 0


def run(test, how, err_path, out_path, argv):
    out = []
    master, slave = os.openpty()
    # Before kvmbox can touch it. The slave stays open here too: its termios
    # outlive kvmbox, and reading the master does not fail with EIO when kvmbox exits.
    before = termios.tcgetattr(slave)
    pid = spawn(argv, err_path, master, slave)
    try:
        end = time.monotonic() + TIMEOUT_READY
        while READY not in b"".join(out):
            if time.monotonic() > end:
                return "FAIL: %s: no '%s' on the pty within %ds" % (test, READY.decode(), TIMEOUT_READY)
            p, st = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                pid = None
                return "FAIL: %s: kvmbox exited (wait status %#x) before the guest was ready" % (test, st)
            read_some(master, out, 0.05)
        during = termios.tcgetattr(slave)
        lflag = during[3]
        on = [n for n, f in (("ICANON", termios.ICANON), ("ECHO", termios.ECHO), ("ISIG", termios.ISIG))
              if lflag & f]
        if on:
            return "FAIL: %s: pty not in raw mode while kvmbox runs (%s still on)" % (test, " ".join(on))

        if how == "sigterm":
            os.kill(pid, signal.SIGTERM)
            want = 143
        elif how == "ctrl-a-x":
            os.write(master, b"\x01x")
            want = 130
        elif how == "hangup":
            os.close(slave)
            slave = None
            os.close(master)
            master = None
            want = 129
        else:
            return "FAIL: %s: unknown HOW %s" % (test, how)
        status = wait_exit(pid, master, out, TIMEOUT_EXIT)
        if status is None:
            return "FAIL: %s: still running %.0fs after the %s" % (test, TIMEOUT_EXIT, how)
        pid = None
        if status != want:
            return "FAIL: %s: status %d, expected %d" % (test, status, want)
        if slave is not None:
            after = termios.tcgetattr(slave)
            if after != before:
                return "FAIL: %s: terminal not restored: %s" % (test, diff_tio(before, after))
        with open(err_path, "rb") as f:
            bad = [ln for ln in f.read().decode(errors="replace").splitlines() if ERROR_LINE.search(ln)]
        if bad:
            return "FAIL: %s: error on stderr: %s" % (test, " | ".join(bad)[:200])
        return "PASS: %s" % test
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        try:
            with open(out_path, "wb") as f:
                f.write(b"".join(out))
        except OSError:
            pass
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
