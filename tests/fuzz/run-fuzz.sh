#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run a libFuzzer target for a while: run-fuzz.sh FUZZER WORKDIR SECONDS SEED...
# The corpus starts afresh from the seeds in WORKDIR/corpus; crash artifacts go
# to WORKDIR/artifacts. WORKDIR is in the build directory, never the sources.
set -eu
fuzzer=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$2
seconds=$3
shift 3
rm -rf "$work/corpus"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$@" "$work/corpus/"
cd "$work"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$work/corpus"
