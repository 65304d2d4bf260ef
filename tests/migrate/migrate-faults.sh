#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ghost migrate when things go wrong mid-way, on a 3-node local cluster:
# the link between the two nodes is cut during the transfer; the
# destination cannot give the process its PID (its PID namespace's pid_max
# is below it); the destination daemon is SIGKILLed during the transfer;
# the destination is out of memory (its daemon in a small memory cgroup).
# Each time: ghost migrate exits 1 with one line saying why, and the
# original goes on running where it was, untouched (it verifies its own
# heap, PID, file, handlers and timer at the end, and its output has no
# gap and no repeat). No copy is left on the destination. At the end it
# moves to node 3 and straight back.
#
# To act "during the transfer" without racing it, the test freezes the
# destination's import worker (SIGSTOP) once it exists, breaks something,
# then lets the worker go on.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
MIGRANT=$(realpath "$(dirname "$0")")/migrant
[ -n "${MIGRANT_BIN:-}" ] && MIGRANT=$MIGRANT_BIN

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"

node_init() {
	"$GHOST" cluster status --json | grep -o "\"id\":$1,[^}]*" | grep -o '"pid":[0-9]*' |
		cut -d: -f2
}

daemon_of() {
	children "$(node_init "$1")"
}

# worker_of NODE: the first child of NODE's daemon (its import worker: no
# managed process runs there in this test), waiting up to 10 s for it.
worker_of() {
	local d w
	d=$(daemon_of "$1")
	for _ in $(seq 200); do
		w=$(children "$d" | head -1)
		[ -n "$w" ] && { echo "$w"; return 0; }
		sleep 0.05
	done
	return 1
}

state_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"': print(p["node"], p["state"])'
}

# intact WHAT: the migrant is on node 1, not stopped, and still ticking.
intact() {
	local before
	check_eq "$1: the original is still on node 1, not stopped" "1 sleeping" \
		"$(state_of "$pid" | sed 's/running/sleeping/')"
	before=$(grep -c '^tick' "$out")
	sleep 0.3
	check "$1: it still runs (ticks go on)" test "$(grep -c '^tick' "$out")" -gt "$before"
}

# no_copy NODE: nothing of the migrant is left on NODE.
no_copy() {
	check_eq "$2: no copy left on node $1" "" \
		"$("$GHOST" cluster exec "$1" -- sh -c "cat /proc/$pid/comm 2>/dev/null")"
}

out=$TEST_TMP/migrant.out
pid=$("$GHOST" run -d -- "$MIGRANT" "$out" 256)
[ -n "$pid" ] || fatal "run -d the migrant"
sleep 0.5

# 1. The link is cut during the transfer.
"$GHOST" migrate "$pid" 2 > /dev/null 2> "$TEST_TMP/err" &
mig=$!
w=$(worker_of 2) || fatal "node 2's import worker appears"
kill -STOP "$w"
"$GHOST" cluster exec 1 -- ss -K dst 10.77.0.2 and not dport = :7700 > /dev/null
kill -CONT "$w"
wait "$mig"
check_eq "link cut: migrate exits 1 with one line" "1 1" "$? $(wc -l < "$TEST_TMP/err")"
echo "# $(cat "$TEST_TMP/err")"
intact "link cut"
sleep 0.5
no_copy 2 "link cut"

# 2. The destination has no room for the PID.
max3=$("$GHOST" cluster exec 3 -- cat /proc/sys/kernel/pid_max)
"$GHOST" cluster exec 3 -- sh -c 'echo 50000 > /proc/sys/kernel/pid_max'
"$GHOST" migrate "$pid" 3 > /dev/null 2> "$TEST_TMP/err"
check_eq "no PID on the destination: migrate exits 1 with one line" "1 1" \
	"$? $(wc -l < "$TEST_TMP/err")"
echo "# $(cat "$TEST_TMP/err")"
check "  ... naming the PID" grep -q "$pid" "$TEST_TMP/err"
"$GHOST" cluster exec 3 -- sh -c "echo $max3 > /proc/sys/kernel/pid_max"
intact "no PID"
no_copy 3 "no PID"

# 3. The destination daemon is killed during the transfer.
"$GHOST" migrate "$pid" 2 > /dev/null 2> "$TEST_TMP/err" &
mig=$!
w=$(worker_of 2) || fatal "node 2's import worker appears"
kill -STOP "$w"
kill -KILL "$(daemon_of 2)"
wait "$mig"
check_eq "destination daemon killed: migrate exits 1 with one line" "1 1" \
	"$? $(wc -l < "$TEST_TMP/err")"
echo "# $(cat "$TEST_TMP/err")"
check "  ... naming node 2" grep -q "node 2" "$TEST_TMP/err"
intact "daemon killed"
no_copy 2 "daemon killed"

# 4. The destination is out of memory: node 3's daemon (and so its import
# worker) in a memory cgroup that allows 64 MiB more, for a 256 MiB process.
parent_cg=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
if [ -d "$parent_cg" ] && mkdir "$parent_cg/ghost-test.$$" 2> /dev/null; then
	cg=$parent_cg/ghost-test.$$
	echo "$cg" >> "$TEST_TMP/cgroups"
	d3=$(daemon_of 3)
	echo $((64 << 20)) > "$cg/memory.limit_in_bytes"
	echo "$d3" > "$cg/cgroup.procs"
	"$GHOST" migrate "$pid" 3 > /dev/null 2> "$TEST_TMP/err"
	check_eq "destination out of memory: migrate exits 1 with one line" "1 1" \
		"$? $(wc -l < "$TEST_TMP/err")"
	echo "# $(cat "$TEST_TMP/err")"
	check "  ... saying node 3 is out of memory" grep -q "node 3 is out of memory" "$TEST_TMP/err"
	intact "destination out of memory"
	no_copy 3 "destination out of memory"
	echo "$d3" > "$parent_cg/cgroup.procs"
	rmdir "$cg"
else
	not_ok "cannot make a memory cgroup under $parent_cg for the out-of-memory case"
fi

# 5. After all that, it moves to node 3 and straight back: ghost migrate
# answers once the original's PID is free again on the source.
"$GHOST" migrate "$pid" 3 > /dev/null 2> "$TEST_TMP/err" &&
	"$GHOST" migrate "$pid" 1 > /dev/null 2>> "$TEST_TMP/err"
check_eq "a 256 MiB process moves to node 3 and straight back" "0 " "$? $(cat "$TEST_TMP/err")"

# The original is intact through all of it.
"$GHOST" kill -TERM "$pid"
for _ in $(seq 100); do
	grep -q '^verified' "$out" && break
	sleep 0.05
done
check_eq "the original verifies its own state at the end" "verified ok" \
	"$(grep '^verified' "$out" | cut -d' ' -f1-2)"
check "its output has no gap and no repeat" awk \
	'$1 == "tick" { if ($2 != n + 1) exit 1; n = $2 }' "$out"

"$GHOST" cluster down > /dev/null
check_eq "cluster down" 0 $?
finish
