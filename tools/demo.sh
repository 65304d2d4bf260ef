#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The demo: build Ghost, then
#  1. start an ordinary program, checkpoint it, kill it, show its image,
#     restart it from the image with the same PID and watch it carry on from
#     where it was;
#  2. bring a 3-node cluster up on this machine (needs root), run something
#     on each node through the node daemons, show ghost ps and ghost nodes,
#     move a counting process 1 -> 2 -> 3 with ghost migrate while it keeps
#     counting, copy it with ghost fork, and bring the cluster down.
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
# The demo's cluster has a run directory of its own, never a real one.
export GHOST_CLUSTER_DIR=$work/cluster
unset GHOST_CONTROL GHOST_GHOSTD
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	if [ -e "$GHOST_CLUSTER_DIR/state" ]; then
		"$ghost" cluster down || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
"$ghost" image show "$work/counter.img" | sed -n 1,12p

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
step "part 1 finished: the loop resumed where it was checkpointed"

if [ "$(id -u)" != 0 ]; then
	step "part 2 (a 3-node cluster on this machine) needs root: skipped"
	exit 0
fi

step "ghost cluster up --nodes 3 (namespaces, a bridge, one ghostd per node)"
"$ghost" cluster up --nodes 3

step "ghost run --node N -- hostname (from the machine, through node 1's ghostd)"
for n in 1 2 3; do
	echo "node $n says: $("$ghost" run --node "$n" -- hostname)"
done

step "ghost run -d --node N -- sleep 600 (each node hands out PIDs from its own range)"
for n in 1 2 3; do
	echo "node $n: PID $("$ghost" run -d --node "$n" -- sleep 600)"
done

step "ghost ps"
"$ghost" ps

step "ghost nodes"
"$ghost" nodes

step "ghost migrate: a counter moves 1 -> 2 -> 3 with its PID and keeps counting"
counter=$("$ghost" run -d -- bash -c 'n=0; while :; do n=$((n+1)); echo "count $n"; sleep 0.1; done')
sleep 0.5
"$ghost" migrate "$counter" 2
sleep 0.5
"$ghost" migrate "$counter" 3
sleep 0.5
echo "its log, written from 3 nodes: $("$ghost" logs "$counter" | head -1) ... $("$ghost" logs "$counter" | tail -1)"
step "ghost fork: a copy on node 1, with a new PID, counting on from the same point"
"$ghost" fork "$counter" 1
"$ghost" ps

step "dynamic streams: a pipe follows its reader 1 -> 2 -> 3, and stays exact"
# seq | md5sum: md5sum (the reader) moves while seq writes; the pipe between
# them becomes a direct TCP connection between the nodes, then the reader's
# sum must be the one of the whole sequence.
sums=$(mktemp -d)
# The reader writes its PID (a global one) before it becomes md5sum.
"$ghost" run -d -- sh -c "seq 1 100000000 | sh -c 'echo \$\$ > $sums/pid; exec md5sum' > $sums/moved" > /dev/null
while [ ! -s "$sums/pid" ]; do sleep 0.05; done
reader=$(cat "$sums/pid")
"$ghost" migrate "$reader" 2
"$ghost" migrate "$reader" 3
seq 1 100000000 | md5sum > "$sums/here"
for _ in $(seq 600); do [ -s "$sums/moved" ] && break; sleep 0.1; done
echo "sum read on node 3: $(cut -c1-32 "$sums/moved"); sum of the sequence: $(cut -c1-32 "$sums/here")"
rm -rf "$sums"

step "ghost cluster down (daemons, processes, namespaces, bridge, files: all gone)"
"$ghost" cluster down
echo "run directory left: $([ -e "$GHOST_CLUSTER_DIR" ] && echo yes || echo no)"
step "demo finished"
