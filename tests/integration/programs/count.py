# SPDX-License-Identifier: LGPL-2.1-or-later
"""Integration target in Python: count to TOTAL, one line per step in a
progress file, sleeping between steps. Writes the ready file at step 20, so
it is checkpointed mid-count. Once it has counted to TOTAL and received
SIGUSR1, it checks that the file holds exactly 1..TOTAL, once each: a restart
from scratch would repeat numbers, a lost step would skip one."""

import os
import signal
import sys
import time

TOTAL = 400
STEP = 0.01
READY_AT = 20

woken = False


def on_usr1(signum, frame):
    global woken
    woken = True


def ready():
    path = os.environ.get("GHOST_TEST_READY")
    if path:
        with open(path, "w") as f:
            f.write("ready\n")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "progress.txt"
    signal.signal(signal.SIGUSR1, on_usr1)
    total = 0
    with open(path, "a", buffering=1) as out:
        for i in range(1, TOTAL + 1):
            out.write(f"{i}\n")
            total += i
            if i == READY_AT:
                ready()
            time.sleep(STEP)
    while not woken:
        time.sleep(0.02)
    with open(path) as f:
        lines = f.read().split()
    want = [str(i) for i in range(1, TOTAL + 1)]
    if lines != want:
        for n, (got, exp) in enumerate(zip(lines, want)):
            if got != exp:
                print(f"count.py: line {n + 1} is {got}, want {exp}", file=sys.stderr)
                break
        print(f"count.py: {len(lines)} lines, want {TOTAL}", file=sys.stderr)
        return 1
    if total != TOTAL * (TOTAL + 1) // 2:
        print(f"count.py: sum is {total}", file=sys.stderr)
        return 1
    return 0


sys.exit(main())
