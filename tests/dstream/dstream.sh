#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The dstream API on a 3-node local cluster, with the processes of each
# scenario (dstest) run inside the nodes' namespaces, each with its own
# node's ghostd:
#  1. Figure 2 of the Dynamic Streams report: P1 (node 1) creates a DIRECT
#     stream and waits; P2 (node 2) attaches, sends, suspends and exits; P3
#     (node 3) wakes the endpoint up and receives, in order and once each,
#     what P1 sent before and after the suspend and after the wakeup; P3's
#     connection is a direct TCP connection to node 1.
#     Then the same with the end moving every 40 messages each way, over
#     every node, its peer's node and the node it was held on included.
#  2. FIFO: writers on the three nodes, one reader: every record (16 to
#     4096 bytes, checksummed) whole, each writer's in order, then the end.
#     Then the same with the reader suspended halfway on node 1 and woken
#     up on node 2 while the writers go on.
#  3. LIFO: the reader gets the newest record first.
#  4. Errors: forged and used handles, an endpoint too many, a destroyed
#     stream, another user's stream, a process outside the node.
#  5. The home node of a stream leaves: the stream's messages still go,
#     what needs its directory entry (suspend, attach, destroy) fails with
#     EHOSTDOWN and says why, and the peer of the endpoint whose suspend
#     failed sees it closed.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
. "$(dirname "$0")/lib.sh"
DSTEST=$(realpath "$(dirname "$0")")/dstest
[ -n "${DSTEST_BIN:-}" ] && DSTEST=$DSTEST_BIN
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"
# nobody runs dstest too (scenario 4).
chmod 755 "$TEST_TMP"

# tcp_peers NODE PID: the remote address of each TCP socket of PID (in
# NODE), one line each.
tcp_peers() {
	in_node "$1" python3 - "$2" <<'PY'
import os, socket, struct, sys
pid = sys.argv[1]
tcp = {}
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    tcp[f[9]] = socket.inet_ntoa(struct.pack("<I", int(f[2].split(":")[0], 16)))
for fd in os.listdir("/proc/%s/fd" % pid):
    link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    if link.startswith("socket:[") and link[8:-1] in tcp:
        print(tcp[link[8:-1]])
PY
}

declare -A ADDRESS
for n in 1 2 3; do
	ADDRESS[$n]=$(node_address $n)
done

# ---- 1. Figure 2 ----
D=$TEST_TMP/fig2
mkdir -p "$D"
role P1 1 fig2-p1 "$D"
role P2 2 fig2-p2 "$D"
role P3 3 fig2-p3 "$D"
if wait_file "$D/p3.ready"; then
	peers=$(tcp_peers 3 "$(cat "$D/p3.ready")" | sort -u | tr '\n' ' ')
	check_eq "P3's only TCP connection goes straight to node 1" "${ADDRESS[1]} " "$peers"
	peers=$(tcp_peers 1 "$(cat "$D/p1.pid")" | sort -u | tr '\n' ' ')
	check_eq "P1's only TCP connection goes straight to node 3 (none to node 2)" \
		"${ADDRESS[3]} " "$peers"
else
	not_ok "P3 got every message"
fi
echo 1 > "$D/checked"
finish_role P1
finish_role P2
finish_role P3

# ---- 1b. the same, moving every round, 40 messages of up to 32 KiB each way ----
D=$TEST_TMP/relay
mkdir -p "$D"
NODES=(2 3 1 1 2 2 3 1 3)
role relay-fixed 1 relay-fixed "$D" ${#NODES[@]} 40
wait_file "$D/id" || not_ok "the fixed end created its stream"
for r in "${!NODES[@]}"; do
	role "relay-mover-$r" "${NODES[$r]}" relay-mover "$D" "$r" ${#NODES[@]} 40
	finish_role "relay-mover-$r"
done
finish_role relay-fixed

# ---- 2. FIFO: writers on three nodes ----
D=$TEST_TMP/fifo
mkdir -p "$D"
role fifo-reader 1 fifo-reader "$D" 3 300
wait_file "$D/id" || not_ok "the FIFO reader created its stream"
role fifo-writer-1 1 fifo-writer "$D" 300
role fifo-writer-2 2 fifo-writer "$D" 300
role fifo-writer-3 3 fifo-writer "$D" 300
for r in fifo-writer-1 fifo-writer-2 fifo-writer-3 fifo-reader; do
	finish_role $r
done

# ---- 2b. the same, the reader moving from node 1 to node 2 halfway ----
D=$TEST_TMP/fifo-move
mkdir -p "$D"
role fifo-reader 1 fifo-reader "$D" 3 300 450
wait_file "$D/id" || not_ok "the FIFO reader created its stream"
role fifo-writer-1 1 fifo-writer "$D" 300
role fifo-writer-2 2 fifo-writer "$D" 300
role fifo-writer-3 3 fifo-writer "$D" 300
finish_role fifo-reader
role fifo-reader-2 2 fifo-reader-resume "$D" 3 300
for r in fifo-writer-1 fifo-writer-2 fifo-writer-3 fifo-reader-2; do
	finish_role $r
done

# ---- 3. LIFO: one writer after the other ----
D=$TEST_TMP/lifo
mkdir -p "$D"
role lifo-reader 1 lifo-reader "$D" 2 200
wait_file "$D/id" || not_ok "the LIFO reader created its stream"
role lifo-writer-1 2 lifo-writer "$D" 200
wait_file "$D/writer1.done" || not_ok "the first LIFO writer is done"
role lifo-writer-2 3 lifo-writer "$D" 200
for r in lifo-writer-1 lifo-writer-2 lifo-reader; do
	finish_role $r
done

# ---- 4. errors ----
D=$TEST_TMP/errors
mkdir -p "$D"
chmod 755 "$D"
role errors 1 errors "$D"
if wait_file "$D/handle"; then
	id=$(cat "$D/id")
	out=$(cd / && in_node 1 $NOBODY "$DSTEST" attach "$id")
	check_eq "another user attaches: EPERM" \
		"-1 stream $id belongs to another user" "$out"
	out=$(GHOST_CONTROL=$GHOST_CLUSTER_DIR/node1/ghostd.sock "$DSTEST" attach "$id")
	check_eq "a process outside the node attaches: EPERM" \
		"-1 the caller does not run on node 1: a dstream endpoint must use the ghostd of its own node (\$GHOST_CONTROL)" \
		"$out"
else
	not_ok "the errors scenario suspended an endpoint"
fi
echo 1 > "$D/other.done"
finish_role errors

# ---- 5. the home node leaves: its streams are lost, not their connections ----
D=$TEST_TMP/homeless
mkdir -p "$D"
role homeless-p1 1 homeless-p1 "$D" 3
wait_file "$D/id" || not_ok "P1 found a stream whose home is node 3"
role homeless-p2 2 homeless-p2 "$D"
if wait_file "$D/p1.ready" && wait_file "$D/p2.ready"; then
	kill -TERM $(node_daemon 3)
	for n in 1 2; do
		for _ in $(seq 100); do
			GHOST_CONTROL=$GHOST_CLUSTER_DIR/node$n/ghostd.sock "$GHOST" nodes |
				grep -q '^3 .* down' && break
			sleep 0.05
		done
	done
	check "nodes 1 and 2 see node 3 down" sh -c \
		"GHOST_CONTROL='$GHOST_CLUSTER_DIR/node2/ghostd.sock' '$GHOST' nodes | grep -q '^3 .* down'"
else
	not_ok "the stream whose home is node 3 works"
fi
echo 1 > "$D/gone"
finish_role homeless-p2
finish_role homeless-p1

"$GHOST" cluster down > /dev/null || not_ok "cluster down"
finish
