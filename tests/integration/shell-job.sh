#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# --shell-job: a bash loop writing to a pipe read by a process outside the
# checkpoint. Without --shell-job the checkpoint is refused, naming the pipe,
# and the loop runs on untouched; with it, the restarted loop writes on into
# the restarter's stdout, continuing its numbering.
set -u
ghost=$1
dir=$(mktemp -d /tmp/ghost-shelljob.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat >"$dir/loop.sh" <<'SH'
echo $$ >"$1"
i=0
while [ $i -lt 60 ]; do
	i=$((i + 1))
	echo "n $i"
	s=0; while [ $s -lt 2000 ]; do s=$((s + 1)); done
done
SH
bash "$dir/loop.sh" "$dir/pid" </dev/null 2>/dev/null | cat >"$dir/before.txt" &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/before.txt" ] && break; sleep 0.05; done
loop=$(cat "$dir/pid")
pids+=($loop)
[ -s "$dir/before.txt" ] || fail "the loop did not start"

out=$("$ghost" checkpoint "$loop" -o "$dir/img" --kill 2>&1) && fail "checkpoint without --shell-job succeeded"
echo "$out" | grep -q "fd 1 .*pipe to a process outside" || fail "refusal does not name fd 1: $out"
kill -0 "$loop" 2>/dev/null || fail "the loop died after a refused checkpoint"
grep -q TracerPid:.0 "/proc/$loop/status" || fail "the loop is still traced"

"$ghost" checkpoint "$loop" -o "$dir/img" --kill --shell-job || fail "checkpoint --shell-job failed"
for _ in $(seq 100); do kill -0 "$loop" 2>/dev/null || break; sleep 0.02; done
last=$(tail -n 1 "$dir/before.txt" | cut -d' ' -f2)
"$ghost" restart "$dir/img" >"$dir/after.txt" || fail "restart failed"
first=$(head -n 1 "$dir/after.txt" | cut -d' ' -f2)
[ "$(tail -n 1 "$dir/after.txt")" = "n 60" ] || fail "the restarted loop did not reach 60"
[ "$first" -ge "$last" ] && [ "$first" -le $((last + 2)) ] ||
	fail "numbering does not continue: last before $last, first after $first"
echo "PASS: refused without --shell-job; with it, continued from n $last to n 60"
