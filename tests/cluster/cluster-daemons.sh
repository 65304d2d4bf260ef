#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A ghostd in every node of a 3-node cluster: `up` starts them as children of
# the node inits and waits until they see each other; the ghost verbs find
# node 1's daemon by themselves; run, ps and kill across nodes with each
# node's PID range; a daemon killed with SIGKILL is declared failed within
# the configured timeout; `down` leaves the machine as it found it; `up`
# without a ghostd fails and leaves nothing.
. "$(dirname "$0")/lib.sh"
parse_args "$@"

N=3
RANGE=100000  # the default pid-range of cluster.conf
TIMEOUT_MS=5000 # the default timeout of cluster.conf
snapshot > "$TEST_TMP/snap.before"

# 1. No ghostd: up fails with one clear line and builds nothing.
GHOST_GHOSTD=$TEST_TMP/no-such-ghostd "$GHOST" cluster up --nodes 2 \
	> "$TEST_TMP/out" 2> "$TEST_TMP/err"
check_eq "up with a missing \$GHOST_GHOSTD exits 1" 1 $?
check_eq "  ... with one line" 1 "$(wc -l < "$TEST_TMP/err")"
check "  ... naming GHOST_GHOSTD" grep -q '^ghost: \$GHOST_GHOSTD names' "$TEST_TMP/err"
cat "$TEST_TMP/err"
check "  ... and leaves no run directory" test ! -e "$GHOST_CLUSTER_DIR"
# A ghostd that cannot run: the nodes are built, then taken down again.
printf 'not a program\n' > "$TEST_TMP/bad-ghostd"
chmod 755 "$TEST_TMP/bad-ghostd"
GHOST_GHOSTD=$TEST_TMP/bad-ghostd "$GHOST" cluster up --nodes 2 \
	> "$TEST_TMP/out" 2> "$TEST_TMP/err"
check_eq "up with a ghostd that cannot be executed exits 1" 1 $?
check "  ... saying so" grep -q "^ghost: node [12]: cannot run ghostd" "$TEST_TMP/err"
cat "$TEST_TMP/err"
compare_snapshot "$TEST_TMP/snap.before"

# 2. Up, with a daemon in every node.
"$GHOST" cluster up --nodes $N --json > "$TEST_TMP/up.json" || fatal "cluster up --nodes $N"
record_cluster
for i in $(seq 1 $N); do
	check "up --json gives node $i's control socket" \
		grep -q "\"control\":\"$GHOST_CLUSTER_DIR/node$i/ghostd.sock\"" "$TEST_TMP/up.json"
	check "node $i: the control socket exists" test -S "$GHOST_CLUSTER_DIR/node$i/ghostd.sock"
done
check_eq "up --json: every daemon sees $N nodes up" $N \
	"$(grep -o "\"ghostd\":true,\"nodes_up\":$N" "$TEST_TMP/up.json" | wc -l)"
check "status exits 0" "$GHOST" cluster status
check_eq "status shows every daemon up" $N \
	"$("$GHOST" cluster status | grep -c " up($N/$N) ")"

# Each ghostd: a child of its node's init (not PID 1), with only fds 0-2
# and a clean signal state.
for i in $(seq 1 $N); do
	init=$("$GHOST" cluster status --json | grep -o "\"id\":$i,[^}]*" | grep -o '"pid":[0-9]*' |
		cut -d: -f2)
	d=$(children "$init")
	check_eq "node $i: the init has one child, ghostd" ghostd "$(cat "/proc/$d/comm")"
	check_eq "node $i: ghostd's node PID is not 1" "" \
		"$(awk '/^NSpid:/ && $NF == 1' "/proc/$d/status")"
	check_eq "node $i: ghostd's arguments" \
		"--config $GHOST_CLUSTER_DIR/cluster.conf --node $i --control $GHOST_CLUSTER_DIR/node$i/ghostd.sock --log-dir $GHOST_CLUSTER_DIR/node$i/logs" \
		"$(tr '\0' ' ' < "/proc/$d/cmdline" | cut -d' ' -f2- | sed 's/ $//')"
	check_eq "node $i: ghostd's stdout and stderr go to its log" \
		"/dev/null $GHOST_CLUSTER_DIR/node$i/ghostd.log $GHOST_CLUSTER_DIR/node$i/ghostd.log" \
		"$(readlink "/proc/$d/fd/0" "/proc/$d/fd/1" "/proc/$d/fd/2" | tr '\n' ' ' | sed 's/ $//')"
done

# 3. The verbs find node 1's daemon: no GHOST_CONTROL.
json=$("$GHOST" nodes --json)
check_eq "nodes --json lists $N nodes" $N "$(echo "$json" | grep -c '"id"')"
check_eq "  ... all up (self or up)" $N "$(echo "$json" | grep -c '"state": "\(self\|up\)"')"
check "  ... node 1 is self" grep -q '"id": 1, .*"state": "self"' <<< "$json"
for i in $(seq 1 $N); do
	check_eq "run --node $i -- hostname" "node$i" "$("$GHOST" run --node $i -- hostname)"
done
"$GHOST" run --node 3 -- sh -c 'exit 7'
check_eq "run returns the exit status from node 3" 7 $?

# 4. Detached processes, ps and kill across nodes; PIDs in each node's range.
pids=""
for i in $(seq 1 $N); do
	p=$("$GHOST" run -d --node $i -- sleep 1000) || fatal "run -d --node $i"
	pids="$pids $p"
	check "node $i: PID $p is in node $i's range" \
		test "$p" -ge $((i * RANGE)) -a "$p" -lt $(((i + 1) * RANGE))
done
check_eq "PIDs started on different nodes are different" $N \
	"$(echo $pids | tr ' ' '\n' | sort -u | wc -l)"
p2=$(echo $pids | cut -d' ' -f2)
ps=$("$GHOST" ps --json)
check "ps --json shows $p2 on node 2" \
	grep -q "\"pid\": $p2, \"node\": 2, .*\"command\": \"sleep 1000\"" <<< "$ps"
check_eq "ps --json shows the $N sleeps" $N "$(echo "$ps" | grep -c '"command": "sleep 1000"')"
check_eq "the sleep of node 2 has that PID in node 2" sleep \
	"$("$GHOST" cluster exec 2 -- cat /proc/$p2/comm)"
check "kill $p2" "$GHOST" kill "$p2"
gone=no
for _ in $(seq 50); do
	"$GHOST" ps --json | grep -q "\"pid\": $p2," || { gone=yes; break; }
	sleep 0.1
done
check_eq "  ... ends it" yes $gone
check_eq "  ... and it is gone from node 2" "" \
	"$("$GHOST" cluster exec 2 -- cat /proc/$p2/comm 2>/dev/null)"
GHOST_CONTROL=$GHOST_CLUSTER_DIR/node3/ghostd.sock "$GHOST" nodes | grep -q '^3 .* self '
check_eq "GHOST_CONTROL still names another daemon" 0 $?

# 5. SIGKILL to node 3's ghostd: node 1 reports node 3 failed in time.
init3=$("$GHOST" cluster status --json | grep -o '"id":3,[^}]*' | grep -o '"pid":[0-9]*' | cut -d: -f2)
d3=$(children "$init3")
check_eq "node 3's ghostd found" ghostd "$(cat "/proc/$d3/comm")"
kill -KILL "$d3"
t0=$(date +%s%N)
state=
while :; do
	state=$("$GHOST" nodes --json | grep '"id": 3,' | grep -o '"state": "[a-z]*"' | cut -d'"' -f4)
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$state" = failed ] && break
	[ $ms -gt $((TIMEOUT_MS * 3)) ] && break
	sleep 0.05
done
echo "# node 3 declared $state after $ms ms"
check_eq "node 1 reports node 3 failed" failed "$state"
# The timeout runs from the last thing heard from node 3 (about the time of
# the kill: the kernel closes its connections); a round of polling (ghost
# nodes, 50 ms) and the scheduling of a busy machine may come on top.
check "  ... within the configured timeout ($TIMEOUT_MS ms, got $ms)" \
	test $ms -le $((TIMEOUT_MS + 500))
check "the keeper logged the daemon's death" \
	grep -q "node 3: ghostd killed by signal 9" "$GHOST_CLUSTER_DIR/cluster.log"
"$GHOST" cluster status > "$TEST_TMP/out"
check_eq "status exits 1 with a daemon down" 1 $?
check "  ... showing node 3's daemon down" grep -q '^3 .* down \+up$' "$TEST_TMP/out"
"$GHOST" run --node 3 -- true 2> "$TEST_TMP/err"
check_eq "run on the failed node exits 1" 1 $?
check_eq "  ... with one line" 1 "$(wc -l < "$TEST_TMP/err")"
check_eq "run on node 2 still works" node2 "$("$GHOST" run --node 2 -- hostname)"

# 6. Down: the daemons and every managed process go, nothing is left.
t0=$(date +%s%N)
"$GHOST" cluster down
check_eq "cluster down exits 0" 0 $?
echo "# down took $((($(date +%s%N) - t0) / 1000000)) ms"
check_no_leftovers
compare_snapshot "$TEST_TMP/snap.before"
# Unless this machine runs a real ghostd, the fallback socket is not there.
if [ ! -e /run/ghost/ghostd.sock ]; then
	"$GHOST" nodes > /dev/null 2> "$TEST_TMP/err"
	check_eq "after down, nodes no longer finds the cluster" 1 $?
	check "  ... and names the default socket" grep -q "/run/ghost/ghostd.sock" "$TEST_TMP/err"
fi
finish
