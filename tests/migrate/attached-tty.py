#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# The terminal half of migrate-attached.sh: `ghost run` of the chatter with a
# real terminal (a pseudo-terminal this script holds, as a terminal emulator
# would), the process migrated around the cluster while we type, resize and
# finally press Ctrl-C. Prints one TAP line ("ok - ..." / "not ok - ...") per
# check; the caller counts them.
#
# Usage: attached-tty.py GHOST CHATTER TAG ROUTE [RUN-OPTION...]
#   TAG    the chatter's argument, to find its PID in ghost ps
#   ROUTE  nodes to move it to, comma-separated
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

ghost, chatter, tag, route = sys.argv[1:5]
run_opts = sys.argv[5:]
route = [int(n) for n in route.split(",")]

results = []


def check(what, cond, detail=""):
    results.append(("ok - " if cond else "not ok - ") + what +
                   ("" if cond or not detail else ": " + detail))


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


master, slave = os.openpty()
set_size(slave, 33, 101)
start_tio = termios.tcgetattr(slave)


def child_setup():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


proc = subprocess.Popen([ghost, "run"] + run_opts + ["--", chatter, "10", tag],
                        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                        preexec_fn=child_setup, close_fds=True)
transcript = b""
seen = 0  # what expect() has consumed


def pump(timeout):
    global transcript
    r, _, _ = select.select([master], [], [], timeout)
    if not r:
        return False
    try:
        data = os.read(master, 65536)
    except OSError:
        return False
    transcript += data
    return bool(data)


def expect(pattern, timeout=20.0):
    """Wait (bounded) until pattern shows up after what was consumed."""
    global seen
    rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
    end = time.monotonic() + timeout
    while True:
        m = rx.search(transcript, seen)
        if m:
            seen = m.end()
            return m
        left = end - time.monotonic()
        if left <= 0 or proc.poll() is not None and not pump(0.2):
            return None
        pump(min(left, 0.2))


def type_(text):
    os.write(master, text.encode())


def find_pid():
    for _ in range(100):
        out = subprocess.run([ghost, "ps", "--json"], capture_output=True, text=True).stdout
        for p in json.loads(out or "[]"):
            if p["command"] == "%s 10 %s" % (chatter, tag):
                return p["pid"]
        time.sleep(0.05)
    return None


def tty_line():
    type_("tty\r")
    m = expect(r"tty rows=\d+ cols=\d+ ctty=\w+ fg=\w+ icanon=\d echo=\d")
    return m.group(0).decode() if m else "(none)"


check("the chatter starts on a terminal", expect(r"out 3\r\n") is not None)
pid = find_pid()
check("its PID is found", pid is not None)
if pid is None:
    proc.kill()
    print("\n".join(results))
    sys.exit(0)

# What is typed while it does not read goes along when it moves: whole
# lines and half a line, echoed by the terminal when typed and never again.
# At the first move (its own terminal, for a local start: our client takes
# over what is typed ahead) and at the second (a pty on a node).
typed_ahead = {0: ("unread y", "hal", "f"), 1: ("unread x", "part", "ial")}
i = 0
for n, to in enumerate(route):
    i += 1
    type_("line %d\r" % i)
    check("input reaches it (line %d)" % i, expect(r"echo line %d\r\n" % i) is not None)
    ahead = typed_ahead.get(n)
    if ahead:
        type_("hold\r")
        check("it holds", expect(r"held\r\n") is not None)
        type_("%s\r%s" % ahead[:2])
        expect(ahead[1])
    r = subprocess.run([ghost, "migrate", str(pid), str(to)], capture_output=True, text=True)
    check("move %d to node %d" % (n + 1, to), r.returncode == 0, r.stderr.strip())
    if ahead:
        subprocess.run([ghost, "kill", "-USR1", str(pid)])
        check("released after move %d" % (n + 1), expect(r"released\r\n") is not None)
        check("a line typed before move %d is read after it" % (n + 1),
              expect(r"echo %s\r\n" % ahead[0]) is not None)
        type_(ahead[2] + "\r")
        check("half a line typed before move %d is completed after it" % (n + 1),
              expect(r"echo %s%s\r\n" % ahead[1:]) is not None)
        check("what was typed before move %d is echoed once" % (n + 1),
              transcript.count(ahead[0].encode()) == 2 and
              transcript.count(ahead[1].encode()) == 2, repr(transcript[-300:]))
    check("after move %d: it goes on writing" % (n + 1),
          expect(r"out \d+\r\n") is not None and expect(r"out \d+\r\n") is not None)
    want = "tty rows=33 cols=101 ctty=yes fg=yes icanon=1 echo=1"
    check("after move %d: a terminal of the same size and mode, its controlling terminal" %
          (n + 1), tty_line() == want)

# A new window size reaches the terminal where the process is now.
set_size(slave, 40, 120)
got = ""
for _ in range(50):
    got = tty_line()
    if "rows=40 cols=120" in got:
        break
    time.sleep(0.1)
check("a window size change reaches it", "rows=40 cols=120" in got, got)

type_("\x03")
try:
    rc = proc.wait(timeout=20)
except subprocess.TimeoutExpired:
    proc.kill()
    rc = proc.wait()
check("Ctrl-C kills it on its last node: ghost run exits 130", rc == 130, str(rc))
while pump(0.2):
    pass
text = transcript.decode(errors="replace").replace("\r", "")
for name in ("out", "err"):
    # (the echo of a half-typed line may precede one on its line)
    nums = [int(m) for m in re.findall(r"%s (\d+)$" % name, text, re.M)]
    check("its %s lines are all there, once, in order" % name,
          len(nums) > 3 and nums == list(range(1, len(nums) + 1)),
          "%d lines, first gap at %s" % (len(nums), next(
              (k for k, v in enumerate(nums) if v != k + 1), None)))
end_tio = termios.tcgetattr(slave)
check("the terminal is as it was when ghost run started", end_tio == start_tio)
print("\n".join(results))
