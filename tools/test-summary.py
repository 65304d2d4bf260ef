#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Add up meson testlog.json files and print the closing line of a test run.

A TAP test counts each of its subtests; any other test counts once. Exits 1
if anything failed or if nothing ran at all.
"""
import json
import sys


def count(path):
    passed = failed = skipped = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            res = t.get("result", "")
            if res == "SKIP":
                skipped += 1
            elif res in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
                print(f"failed: {t.get('name')} ({res})", file=sys.stderr)
    return passed, failed, skipped


def main():
    totals = [0, 0, 0]
    for path in sys.argv[1:]:
        for i, n in enumerate(count(path)):
            totals[i] += n
    p, f, s = totals
    print(f"tests: {p} passed, {f} failed, {s} skipped")
    return 1 if f or p == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
