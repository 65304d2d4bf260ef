#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The demo: build Ghost, start an ordinary program, checkpoint it, kill it,
# show its image, restart it from the image with the same PID and watch it
# carry on from where it was.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
sh tools/deps.sh
build=${GHOST_DEMO_BUILD:-$top/build}
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null
ghost="$build/cmd/ghost/ghost"

work=$(mktemp -d /tmp/ghost-demo.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Run a command with only fds 0-2: whatever else our caller left open would be
# a descriptor the checkpoint has to refuse.
clean_exec() {
	for fd in $(ls /proc/self/fd); do
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	exec "$@"
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cat >"$work/counter.sh" <<'SH'
i=0
while [ $i -lt 40 ]; do
	i=$((i + 1))
	echo "tick $i (pid $$)" >>"$1"
	sleep 0.1
done
echo "finished at tick $i" >>"$1"
SH

step "start a bash loop that counts to 40"
(clean_exec bash "$work/counter.sh" "$work/out.txt" </dev/null >/dev/null 2>&1) &
pid=$!
sleep 1
tail -n 2 "$work/out.txt"

step "ghost checkpoint $pid -o counter.img --kill"
"$ghost" checkpoint "$pid" -o "$work/counter.img" --kill --json
wait "$pid" 2>/dev/null || true
echo "process $pid is gone: $(kill -0 "$pid" 2>/dev/null && echo no || echo yes)"
before=$(wc -l <"$work/out.txt")

step "ghost image show counter.img (first lines)"
"$ghost" image show "$work/counter.img" | head -n 12

step "ghost restart counter.img (same PID, waits for it to finish)"
"$ghost" restart "$work/counter.img" &
restarter=$!
sleep 0.5
echo "restored process: $(tr '\0' ' ' </proc/"$pid"/cmdline) with PID $pid"
wait "$restarter"
echo "ghost restart returned the process's exit status: $?"
pid=""
after=$(wc -l <"$work/out.txt")
tail -n 3 "$work/out.txt"
echo "lines before checkpoint: $before, after restart: $after"
grep -q "finished at tick 40" "$work/out.txt"
step "demo finished: the loop resumed where it was checkpointed"
