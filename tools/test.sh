#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run every test: the unit, integration, streams, dstream and other suites on a -Werror
# gcc build, then the unit suite again and the fuzzer (libFuzzer, 20 s) on a clang build with
# AddressSanitizer + UndefinedBehaviorSanitizer. Needs root (ptrace, clone3
# set_tid, namespaces).
# Ends with one line "tests: N passed, N failed, N skipped"; exits non-zero if
# any test failed or none ran.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
sh tools/deps.sh

build=${GHOST_TEST_BUILD:-$top/build-test}
asan=${GHOST_ASAN_BUILD:-$top/build-asan}

[ -d "$build" ] || meson setup "$build" -Dwerror=true -Dfuzz=true >/dev/null
[ -d "$asan" ] || CC=clang meson setup "$asan" -Dwerror=true -Db_sanitize=address,undefined \
	-Db_lundef=false -Dfuzz=true >/dev/null
ninja -C "$build" >/dev/null
ninja -C "$asan" >/dev/null

status=0
meson test -C "$build" --print-errorlogs --num-processes 2 --no-suite fuzz || status=1
meson test -C "$asan" --print-errorlogs --suite unit --suite fuzz || status=1

python3 tools/test-summary.py "$build/meson-logs/testlog.json" "$asan/meson-logs/testlog.json" ||
	status=1
exit $status
