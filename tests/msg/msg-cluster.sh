#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# msg on a 3-node local cluster (ghost cluster), one msg-peer per node:
#  1. 1,000,000 messages of mixed sizes in all (166,667 per ordered pair)
#     while TCP connections are cut from outside with `ss -K` in the nodes;
#     every peer checks exactly-once, in-order delivery per sender;
#  2. a peer killed with SIGKILL is declared down within the timeout, a send
#     to it fails, and it rejoins when restarted;
#  3. a peer with the wrong key is refused and the others carry on;
#  4. garbage and oversized frames sent to a peer's port are refused and the
#     peer still serves.
# Usage: msg-cluster.sh --ghost PATH --peer PATH (root; TAP-like output).

set -u

GHOST=
PEER=
while [ $# -gt 0 ]; do
	case $1 in
	--ghost) GHOST=$2; shift 2 ;;
	--peer) PEER=$2; shift 2 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$GHOST" ] && [ -x "$PEER" ] || { echo "usage: $0 --ghost PATH --peer PATH" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (namespaces)"
	exit 77
fi
PY=$(command -v python3) || { echo "SKIP: needs python3"; exit 77; }
command -v ss >/dev/null || { echo "SKIP: needs ss (iproute2)"; exit 77; }
GHOST=$(realpath "$GHOST")
PEER=$(realpath "$PEER")

T=$(mktemp -d /tmp/ghost-msg-test.XXXXXX)
export GHOST_CLUSTER_DIR=$T/cluster
PIDS=()
n_ok=0
n_fail=0

# Kill what we started, by PID, then take the cluster down.
cleanup() {
	local st=$? p
	set +e
	for p in "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	"$GHOST" cluster down >/dev/null 2>&1
	rm -rf "$T"
	exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { n_ok=$((n_ok + 1)); echo "ok - $*"; }
not_ok() { n_fail=$((n_fail + 1)); echo "not ok - $*"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
fatal() { not_ok "$*"; echo "# giving up"; exit 1; }

PORT=7741
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
BADKEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
NODES=(--node "1=10.77.0.1:$PORT" --node "2=10.77.0.2:$PORT" --node "3=10.77.0.3:$PORT")
TIMEOUT_MS=2000

# start TAG NODE ARGS...: msg-peer in node NODE, output in $T/TAG.{out,err};
# the PID of its `ghost cluster exec` goes to PID_TAG.
start() {
	local tag=$1 node=$2
	shift 2
	"$GHOST" cluster exec "$node" -- "$PEER" --id "$node" "${NODES[@]}" "$@" \
		> "$T/$tag.out" 2> "$T/$tag.err" &
	PIDS+=($!)
	eval "PID_$tag=$!"
}

# The msg-peer process itself (child of its `ghost cluster exec`).
peer_pid() {
	local p
	eval "p=\$PID_$1"
	cat "/proc/$p/task/$p/children" 2>/dev/null | awk '{print $1}'
}

alive() {
	local p
	eval "p=\$PID_$1"
	kill -0 "$p" 2>/dev/null
}

both_alive() { alive q1 && alive q2; }

lines() { grep -c -x -- "$2" "$T/$1.out" 2>/dev/null || true; }

# wait_for SECONDS COMMAND...: poll every 0.1 s.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
}

# reap TAG: wait for a peer started with start; its exit status in $REAPED. It
# must run in this shell, not in $(...): a subshell cannot wait for our
# children, and got a status only when the peer had already ended.
reap() {
	local p
	eval "p=\$PID_$1"
	wait "$p"
	REAPED=$?
}

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "ghost cluster up --nodes 3"
ok "cluster of 3 nodes up"

# ---- 1. a million messages while connections are cut ------------------------
COUNT=166667
t0=$SECONDS
for n in 1 2 3; do
	# debug: a peer that goes down says why (a failed check prints it)
	GHOST_LOG=debug start "p$n" "$n" --key "$KEY" --count $COUNT --max-size 65536 --timeout 10000
done
cuts=0
while alive p1 || alive p2 || alive p3; do
	[ $((SECONDS - t0)) -gt 70 ] && break
	sleep 0.1
	from=$((cuts % 3 + 1))
	to=$(((cuts + 1) % 3 + 1))
	if "$GHOST" cluster exec "$from" -- ss -K dst "10.77.0.$to" > /dev/null 2>&1; then
		cuts=$((cuts + 1))
	fi
done
for n in 1 2 3; do
	reap "p$n"
	st=$REAPED
	check_st="peer $n: 2 x $COUNT messages received exactly once, in order (exit $st)"
	if [ "$st" = 0 ] && [ "$(lines "p$n" done)" = 1 ]; then ok "$check_st"; else
		not_ok "$check_st"
		grep -v 'connection to .* closed' "$T/p$n.err" | sed 's/^/# /' | head -20
	fi
done
echo "# $((6 * COUNT)) messages in $((SECONDS - t0)) s, $cuts 'ss -K' runs"
check "connections were cut and re-established (ss -K ran $cuts times)" [ $cuts -ge 5 ]
conns=$(grep -h -o 'connections=[0-9]*' "$T"/p[123].out | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
retx=$(grep -h -o 'retransmitted=[0-9]*' "$T"/p[123].out | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
echo "# connections $conns, retransmitted $retx"
check "more connections than pairs: the cuts broke live connections ($conns)" [ "$conns" -gt 6 ]
if [ "$(cat "$T"/p[123].out | grep -c '^down')" = 0 ]; then
	ok "no peer went down during the cuts"
else
	not_ok "no peer went down during the cuts"
	grep -h 'is down' "$T"/p[123].err | sed 's/^/# /' | head -10
fi

# ---- 2. SIGKILL, failure detection, send error, rejoin ----------------------
for n in 1 2 3; do
	start "q$n" "$n" --key "$KEY" --count 2000 --max-size 4096 --linger \
		--heartbeat 200 --timeout $TIMEOUT_MS
done
all_done() { [ "$(lines q1 done)" -ge 1 ] && [ "$(lines q2 done)" -ge 1 ] && [ "$(lines q3 done)" -ge 1 ]; }
wait_for 30 all_done || fatal "lingering peers exchange their traffic"
ok "lingering peers exchanged their traffic"
victim=$(peer_pid q3)
[ -n "$victim" ] || fatal "find msg-peer of node 3"
killed=$(date +%s%N)
kill -9 "$victim"
both_down() { [ "$(lines q1 'down 3')" = 1 ] && [ "$(lines q2 'down 3')" = 1 ]; }
wait_for 10 both_down || fatal "nodes 1 and 2 declare node 3 down"
ms=$((($(date +%s%N) - killed) / 1000000))
check "node 3 declared down ${ms} ms after SIGKILL (timeout $TIMEOUT_MS ms)" \
	[ $ms -le $((TIMEOUT_MS + 1000)) -a $ms -ge $((TIMEOUT_MS - 500)) ]
check "a send to node 3 then fails with -EHOSTDOWN" \
	[ "$(lines q1 'send 3 -112')" = 1 -a "$(lines q2 'send 3 -112')" = 1 ]
reap q3
check "nodes 1 and 2 still running" both_alive
start q3b 3 --key "$KEY" --count 2000 --max-size 4096 --linger --heartbeat 200 \
	--timeout $TIMEOUT_MS
rejoined() {
	[ "$(grep -c '^up 3 ' "$T/q1.out")" = 2 ] && [ "$(grep -c '^up 3 ' "$T/q2.out")" = 2 ] &&
		[ "$(lines q3b done)" = 1 ]
}
check "restarted node 3 rejoins and exchanges traffic again" wait_for 30 rejoined
kill -TERM "$PID_q3b"
reap q3b

# ---- 3. the wrong key -------------------------------------------------------
start bad 3 --key "$BADKEY" --count 10 --linger --timeout $TIMEOUT_MS --reconnect 50
refused() { grep -q "authentication failed" "$T/q1.err" && grep -q "authentication failed" "$T/q2.err"; }
check "nodes 1 and 2 refuse the peer with the wrong key (and log it)" wait_for 10 refused
check "the peer with the wrong key never comes up" [ "$(grep -c '^up' "$T/bad.out")" = 0 ]
kill -TERM "$PID_bad"
reap bad
for n in 1 2; do
	kill -USR1 "$(eval echo "\$PID_q$n")"
done
sleep 0.5
check "auth failures are counted" grep -q 'auth_failures=[1-9]' "$T/q1.out"
check "nodes 1 and 2 carry on after the refusal" both_alive

# ---- 4. garbage and oversized frames ----------------------------------------
cat > "$T/junk.py" <<'EOF'
import os, socket, struct, sys
for host in sys.argv[1:]:
    for payload in (os.urandom(4096), struct.pack('<I', 0xffffffff) + os.urandom(64),
                    struct.pack('<I', 80) + os.urandom(80)):
        s = socket.create_connection((host, int(os.environ['PORT'])), timeout=5)
        try:
            s.sendall(payload)
            s.recv(1)
        except OSError:
            pass
        s.close()
EOF
PORT=$PORT "$GHOST" cluster exec 3 -- "$PY" "$T/junk.py" 10.77.0.1 10.77.0.2
check "garbage and oversized frames sent from node 3" [ $? = 0 ]
check "nodes 1 and 2 survive them" both_alive
check "and log them as refused" grep -q "not a ghost handshake\|handshake" "$T/q1.err"
start q3c 3 --key "$KEY" --count 2000 --max-size 4096 --linger --heartbeat 200 \
	--timeout $TIMEOUT_MS
served() {
	[ "$(grep -c '^up 3 ' "$T/q1.out")" = 3 ] && [ "$(grep -c '^up 3 ' "$T/q2.out")" = 3 ] &&
		[ "$(lines q3c done)" = 1 ]
}
check "after that they still serve a good node 3" wait_for 30 served
for t in q3c q1 q2; do
	kill -TERM "$(eval echo "\$PID_$t")"
done
for t in q3c q1 q2; do
	reap $t
	st=$REAPED
	if [ "$st" = 0 ]; then ok "peer $t exits cleanly"; else
		not_ok "peer $t exits cleanly (status $st)"; sed 's/^/# /' "$T/$t.err" | tail -5; fi
done
check "no peer reported a failed check" [ -z "$(cat "$T"/*.out | grep -x failed)" ]

"$GHOST" cluster down > /dev/null
check "cluster down" [ $? = 0 ]
echo "# $n_ok passed, $n_fail failed"
[ "$n_fail" = 0 ]
