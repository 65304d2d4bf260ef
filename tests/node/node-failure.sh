#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Three ghostd daemons on 127.0.0.1 with a 1500 ms failure timeout: a daemon
# killed with SIGKILL is reported failed by the others within the timeout,
# requests that need it fail clearly, a run in progress on it ends with an
# error, and it rejoins when restarted; a daemon stopped with SIGTERM leaves
# cleanly (down, not failed), removes its socket and exits 0.
. "$(dirname "$0")/lib.sh"
parse_args "$@"

TIMEOUT_MS=1500
start_cluster 3 $TIMEOUT_MS || fatal "3 daemons start and see each other up"
ok "3 daemons start and see each other up"

p3=$(g 1 run -d --node 3 -- sh -c 'echo before; sleep 60')
bg_g 1 run --node 3 -- sleep 60 2>"$TEST_TMP/run-err" &
running=$!
remember $running
sleep 0.3

# SIGKILL node 3's daemon itself (its PID namespace, and the processes in
# it, end with it).
d3=$(daemon_pid 3)
[ -n "$d3" ] || fatal "find node 3's daemon"
t0=$(date +%s%N)
kill -KILL "$d3"
wait_state 1 3 failed 10
t1=$(date +%s%N)
wait_state 2 3 failed 10
t2=$(date +%s%N)
ms1=$(((t1 - t0) / 1000000))
ms2=$(((t2 - t0) / 1000000))
check "node 1 reports node 3 failed within the timeout ($ms1 ms, timeout $TIMEOUT_MS ms)" \
	test $ms1 -le $((TIMEOUT_MS + 500))
check "node 2 too ($ms2 ms)" test $ms2 -le $((TIMEOUT_MS + 500))
check_eq "node 1 and 2 still see each other up" "up up" "$(node_state 1 2) $(node_state 2 1)"

wait $running
st=$?
check_eq "the run in progress on node 3 fails" \
	"1 ghost: node 3 failed while running process $((p3 + 1))" "$st $(cat "$TEST_TMP/run-err")"
g 1 run --node 3 -- true 2>"$TEST_TMP/err"
check_eq "running on the failed node fails clearly" "1 ghost: node 3 is failed" \
	"$? $(cat "$TEST_TMP/err")"
g 1 kill "$p3" 2>"$TEST_TMP/err"
check_eq "killing a process of the failed node fails clearly" \
	"1 ghost: process $p3 belongs to node 3, which is failed" "$? $(cat "$TEST_TMP/err")"
out=$(g 2 ps 2>"$TEST_TMP/err")
check_eq "ps still answers, with a warning" \
	"0 ghost: warning: node 3 is failed: its processes are not listed" "$? $(cat "$TEST_TMP/err")"
check "nodes --json says failed, with no load" sh -c "GHOST_CONTROL='$(node_ctl 1)' '$GHOST' nodes --json |
	python3 -c 'import json, sys; n = json.load(sys.stdin)[2]; sys.exit(n[\"state\"] != \"failed\" or n[\"load\"] is not None)'"

# Restart it: it rejoins.
start_node 3
wait_state 1 3 up 10
check_eq "node 3 rejoins (seen from node 1)" up "$(node_state 1 3)"
wait_state 3 2 up 10
check_eq "node 3 sees node 2 up" up "$(node_state 3 2)"
check_eq "node 3 runs processes again" "back" "$(g 1 run --node 3 -- echo back)"
check_eq "the log written before the failure is still there" "before" "$(g 2 logs "$p3")"

# SIGTERM: a clean leave.
d2=$(daemon_pid 2)
u2=$(cat "$TEST_TMP/n2/unshare.pid")
t0=$(date +%s%N)
kill -TERM "$d2"
wait_state 1 2 down 10
t1=$(date +%s%N)
check "node 1 reports node 2 down (not failed) at once ($(((t1 - t0) / 1000000)) ms)" \
	test $(((t1 - t0) / 1000000)) -lt $TIMEOUT_MS
check_eq "node 3 too" down "$(node_state 3 2)"
for _ in $(seq 50); do
	[ -e "/proc/$d2" ] || break
	sleep 0.1
done
check "the daemon is gone" test ! -e "/proc/$d2"
check "its control socket is removed" test ! -e "$(node_ctl 2)"
check "it said why it stopped" grep -q "SIGTERM: leaving the cluster" "$TEST_TMP/n2/log.txt"
g 2 nodes 2>"$TEST_TMP/err"
check_eq "the CLI says clearly that no daemon is there" 1 $?
check "... in one line" test "$(wc -l < "$TEST_TMP/err")" = 1
finish
