#!/usr/bin/env python3
"""api_client.py - helpers for tests/guests/lifecycle.sh that talk to a kvmbox control
socket (docs/API.md) directly, below `kvmbox ctl`.

  api_client.py protocol SOCKET     the socket layer: error classes, long lines,
                                    pipelining, two clients at once
  api_client.py arguments SOCKET    argument checking of the commands (extra
                                    arguments, relative snapshot path)
  api_client.py fake-dest PATH N    a migration destination on unix:PATH that reads
                                    N bytes of the stream, then closes it

Prints "OK" on success or "FAIL: why" (one line) and exits 0 / 1. Every socket
operation has a time limit.
"""
import json
import os
import socket
import sys

LIMIT = 10.0


class Fail(Exception):
    pass


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(LIMIT)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def send(self, data):
        self.s.sendall(data)

    def reply(self, what):
        try:
            line = self.f.readline()
        except socket.timeout:
            raise Fail("no reply to %s within %gs" % (what, LIMIT))
        if not line:
            raise Fail("connection closed instead of a reply to %s" % what)
        if not line.endswith(b"\n"):
            raise Fail("reply to %s does not end with a newline" % what)
        try:
            r = json.loads(line)
        except ValueError:
            raise Fail("reply to %s is not JSON: %r" % (what, line[:120]))
        if not isinstance(r, dict) or (("return" in r) == ("error" in r)):
            raise Fail("reply to %s has not exactly one of return/error: %r" % (what, line[:120]))
        return r

    def call(self, data, what):
        self.send(data)
        return self.reply(what)

    def close(self):
        self.s.close()


def want_error(r, cls, what, rid=None):
    if "error" not in r:
        raise Fail("%s: expected error %s, got %s" % (what, cls, json.dumps(r)[:150]))
    got = r["error"].get("class")
    if got != cls:
        raise Fail("%s: error class %s, expected %s (%s)" % (what, got, cls, r["error"].get("desc")))
    if rid is not None and r.get("id") != rid:
        raise Fail("%s: reply id %r, expected %r" % (what, r.get("id"), rid))


def want_return(r, what, rid=None):
    if "return" not in r:
        raise Fail("%s: expected success, got %s" % (what, json.dumps(r)[:150]))
    if rid is not None and r.get("id") != rid:
        raise Fail("%s: reply id %r, expected %r" % (what, r.get("id"), rid))
    return r["return"]


def info(c, rid, what):
    ret = want_return(c.call(b'{"id":%d,"command":"info"}\n' % rid, what), what, rid)
    if ret.get("state") not in ("running", "paused"):
        raise Fail("%s: info state %r" % (what, ret.get("state")))
    return ret


def protocol(path):
    c = Client(path)
    want_error(c.call(b'{"id":1,"command":"no-such-command"}\n', "an unknown command"),
               "CommandNotFound", "unknown command", 1)
    want_error(c.call(b'{"id":2,"command":"info"\n', "malformed JSON"), "InvalidInput", "malformed JSON")
    want_error(c.call(b'{"id":3}\n', "a request without command"), "InvalidInput", "no command", 3)
    want_error(c.call(b'{"id":4,"command":"info","arguments":[1]}\n', "array arguments"),
               "InvalidInput", "arguments not an object", 4)
    want_error(c.call(b'[1,2]\n', "a JSON array"), "InvalidInput", "not an object")
    want_error(c.call(b'{"id":5,"command":"in\x00fo"}\n', "a NUL byte"), "InvalidInput", "NUL byte")
    # Empty lines and CRLF are accepted.
    c.send(b"\n\r\n")
    info(c, 6, "info after empty lines")
    info(c, 7, "info")
    want_return(c.call(b'{"id":8,"command":"info"}\r\n', "info with CRLF"), "info with CRLF", 8)
    # The id is copied untouched, whatever JSON it is.
    r = c.call(b'{"id":{"a":[1,"x"]},"command":"info"}\n', "info with an object id")
    if r.get("id") != {"a": [1, "x"]}:
        raise Fail("object id came back as %r" % (r.get("id"),))
    r = c.call(b'{"command":"info"}\n', "info without id")
    if "id" in r:
        raise Fail("reply to a request without id has id %r" % (r["id"],))
    # Exactly 65536 bytes is allowed; one more is one InvalidInput error, and the
    # connection stays usable.
    head, tail = b'{"id":9,"command":"info","pad":"', b'"}'
    line = head + b"a" * (65536 - len(head) - len(tail)) + tail
    want_return(c.call(line + b"\n", "a 65536-byte request"), "a 65536-byte request", 9)
    for size in (65537, 200000):
        line = head + b"a" * (size - len(head) - len(tail)) + tail
        want_error(c.call(line + b"\n", "a %d-byte request" % size), "InvalidInput",
                   "a %d-byte request" % size)
        info(c, 10, "info after a %d-byte request" % size)
    # Pipelined requests are answered in order.
    c.send(b"".join(b'{"id":%d,"command":"info"}\n' % i for i in range(100, 140)))
    ids = [c.reply("pipelined info").get("id") for _ in range(40)]
    if ids != list(range(100, 140)):
        raise Fail("pipelined replies out of order: %r" % ids[:10])
    # Two clients at once: interleaved requests, each gets its own answers.
    d = Client(path)
    c.send(b'{"id":20,"command":"info"}\n')
    d.send(b'{"id":30,"command":"info"}\n')
    d.send(b'{"id":31,"command":"no-such-command"}\n')
    c.send(b'{"id":21,"command":"info"}\n')
    want_return(d.reply("second client info"), "second client info", 30)
    want_error(d.reply("second client unknown command"), "CommandNotFound", "second client", 31)
    want_return(c.reply("first client info"), "first client info", 20)
    want_return(c.reply("first client info"), "first client info", 21)
    # A client that goes away with a request unanswered does not disturb the others.
    e = Client(path)
    e.send(b'{"id":40,"command":"info"}\n')
    e.close()
    info(d, 32, "info after a client left")
    d.close()
    info(c, 22, "info at the end")
    c.close()


def outcome(r):
    if "error" in r:
        return "error " + str(r["error"].get("class"))
    return "accepted"


def arguments(path):
    c = Client(path)
    probs = []
    r = c.call(b'{"id":1,"command":"info","arguments":{"bogus":1}}\n', "info with an extra argument")
    if "error" not in r or r["error"].get("class") != "InvalidArgument":
        probs.append("info with an extra argument: " + outcome(r))
    r = c.call(b'{"id":2,"command":"resume","arguments":{"bogus":1}}\n', "resume with an extra argument")
    if "error" not in r or r["error"].get("class") != "InvalidArgument":
        probs.append("resume with an extra argument: " + outcome(r))
    r = c.call(b'{"id":3,"command":"snapshot","arguments":{"path":"kvmbox-no-such-dir/relative.snap"}}\n',
               "snapshot to a relative path")
    if "error" not in r or r["error"].get("class") != "InvalidArgument":
        probs.append("snapshot to a relative path: " + outcome(r))
    r = c.call(b'{"id":4,"command":"snapshot","arguments":{}}\n', "snapshot without path")
    if "error" not in r or r["error"].get("class") != "InvalidArgument":
        probs.append("snapshot without path: " + outcome(r))
    r = c.call(b'{"id":5,"command":"shutdown","arguments":{"timeout":"soon"}}\n', "shutdown timeout string")
    if "error" not in r or r["error"].get("class") != "InvalidArgument":
        probs.append("shutdown with timeout \"soon\": " + outcome(r))
    info(c, 6, "info at the end")
    c.close()
    if probs:
        raise Fail("accepted or misclassified: " + "; ".join(probs))


def fake_dest(path, limit):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    s.settimeout(30)
    print("listening", flush=True)
    c, _ = s.accept()
    c.settimeout(30)
    n = 0
    while n < limit:
        d = c.recv(min(65536, limit - n))
        if not d:
            break
        n += len(d)
    c.close()
    s.close()
    os.unlink(path)
    if n < limit:
        raise Fail("the source sent only %d bytes" % n)


def main():
    try:
        if sys.argv[1] == "protocol":
            protocol(sys.argv[2])
        elif sys.argv[1] == "arguments":
            arguments(sys.argv[2])
        elif sys.argv[1] == "fake-dest":
            fake_dest(sys.argv[2], int(sys.argv[3]))
        else:
            raise Fail("unknown mode %s" % sys.argv[1])
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    except (OSError, ValueError) as e:
        print("FAIL: %s" % e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
