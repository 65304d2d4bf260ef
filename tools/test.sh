#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run every test: the unit, integration and fuzz suites on a -Werror build,
# then the unit suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
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
	-Db_lundef=false >/dev/null
ninja -C "$build" >/dev/null
ninja -C "$asan" >/dev/null

status=0
meson test -C "$build" --print-errorlogs --num-processes 2 || status=1
meson test -C "$asan" --print-errorlogs --suite unit || status=1

python3 tools/test-summary.py "$build/meson-logs/testlog.json" "$asan/meson-logs/testlog.json" ||
	status=1
exit $status
