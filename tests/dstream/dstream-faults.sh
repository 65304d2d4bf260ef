#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A node that fails in the middle of a dstream wakeup, on 3-node local
# clusters (a fresh one per scenario, since each loses a node's daemon).
# A, the peer, runs on node 1 and sends 30 messages to endpoint B; B's
# process reads one and suspends B on node S; a process on node X wakes it
# up (dstest fault-* roles):
#  1. S (node 2) fails while it feeds X (node 3): the woken process gets a
#     whole prefix of what S held (no message torn, none twice, in order),
#     then goes on with its new link and gets what A sends after the wakeup;
#     A reads the end of the stream when it unattaches.
#  2. X (node 3) fails before it asked S for what it held: A sees B closed
#     (the end of the stream, EPIPE), S drops what it held, a second wakeup
#     of the handle gets EALREADY and says why.
#  3. X (node 3) fails while S (node 2) feeds it: the same.
#  4. The home (node 2) fails during the wakeup, B held on node 1 with A:
#     the wakeup fails with EHOSTDOWN and the documented line, node 1 drops
#     what it held and A sees B closed.
#  5. A's node (1) fails while S (node 2) feeds X (node 3), before A moved
#     to the new link: the woken process gets all A sent before the wakeup
#     (S had it), then the end of the stream; S's take ends by itself.
# Nothing may hang: each process ends by itself, with every check done. To
# fail a node at a known point of the wakeup without racing it, the daemons
# run with fault injection ($GHOST_DS_FAULT, docs/ghostd.md): the test kills
# a node's ghostd once a daemon logs that it holds the message back.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
. "$(dirname "$0")/lib.sh"
DSTEST=$(realpath "$(dirname "$0")")/dstest
[ -n "${DSTEST_BIN:-}" ] && DSTEST=$DSTEST_BIN
# A's messages before the wakeup (3000 bytes each: more than the 64 KiB the
# held endpoint's process reads at once) and after it.
BEFORE=30
AFTER=20
# Long enough that only the test's kill ends what is held back.
HOLD_MS=30000
EALREADY=114
EHOSTDOWN=112

# cluster_up FAULT: a new cluster whose daemons run with GHOST_DS_FAULT=FAULT.
cluster_up() {
	GHOST_DS_FAULT=$1 "$GHOST" cluster up --nodes 3 > /dev/null ||
		fatal "cluster up --nodes 3 with GHOST_DS_FAULT=$1"
	record_cluster
	ok "cluster up --nodes 3 with GHOST_DS_FAULT=$1"
}

# cluster_down: take it down; none of its processes, nor of the roles, is
# left (by PID and start time: namespace numbers are reused by whatever
# else runs on the machine).
cluster_down() {
	local pid start left=""
	"$GHOST" cluster down > /dev/null || not_ok "cluster down"
	while read -r pid start; do
		[ "$(proc_start "$pid")" = "$start" ] && left="$left $pid"
	done < "$TEST_TMP/pids"
	check_eq "no process of the cluster or of the roles is left" "" "$left"
	: > "$TEST_TMP/pids"
}

# wait_log NODE TEXT: NODE's daemon has logged TEXT (30 s at most).
wait_log() {
	for _ in $(seq 600); do
		grep -qF "$2" "$GHOST_CLUSTER_DIR/node$1/ghostd.log" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# fail_node NODE: NODE's ghostd is killed (its node's processes go on).
fail_node() {
	local pid
	pid=$(node_daemon "$1")
	[ -n "$pid" ] && kill -KILL "$pid"
}

# held_links NODE: how many link sockets NODE's ghostd has open: TCP
# connections between two ports that are not a daemon's (7700), read in
# the daemon's own /proc entries (its fds, its network namespace's table).
held_links() {
	python3 - "$(node_daemon "$1")" <<'PY'
import os, sys
pid = sys.argv[1]
conns = set()
for line in open("/proc/%s/net/tcp" % pid).read().splitlines()[1:]:
    f = line.split()
    lport, rport = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
    if f[3] != "0A" and 7700 not in (lport, rport):
        conns.add(f[9])
n = 0
for fd in os.listdir("/proc/%s/fd" % pid):
    try:
        link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    except OSError:
        continue
    n += link.startswith("socket:[") and link[8:-1] in conns
print(n)
PY
}

# wait_links NODE N: NODE's ghostd holds N link sockets (30 s at most).
wait_links() {
	for _ in $(seq 300); do
		[ "$(held_links "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# dropped NODE: NODE's ghostd lets go of the link sockets it held, while A
# (whose end of the link would take them down with it) still runs.
dropped() {
	wait_links "$1" 0 && kill -0 "${PIDS[A]}" 2>/dev/null
}

# peer_and_held HOME MODE HELD-NODE: A on node 1, with a stream whose home is
# HOME; B attached on HELD-NODE, suspended once A sent its messages.
peer_and_held() {
	role A 1 fault-peer "$D" "$1" "$2" $BEFORE $AFTER
	wait_file "$D/id" || fatal "A made a stream whose home is node $1"
	role B "$3" fault-held "$D"
	wait_file "$D/handle" || fatal "B was suspended on node $3"
	finish_role B
}

# ---- 1. S fails while it feeds X ----
D=$TEST_TMP/feed
mkdir -p "$D"
cluster_up feed@2:$HOLD_MS
peer_and_held 1 feed 2
check "S holds B's link" wait_links 2 1
role W 3 fault-woken "$D" $BEFORE $AFTER
if wait_log 2 "holding the feed to node 3 back" && wait_file "$D/w.first"; then
	check "S's ghostd is killed after its first chunk reached the woken process" fail_node 2
else
	not_ok "S sent the first chunk of what it held, and then held the rest back"
fi
check "X ends the feed where it is" wait_log 3 "node 2 failed before it sent all endpoint 1 held"
finish_role W
echo 1 > "$D/done"
finish_role A
cluster_down

# ---- 2. X fails before it asked S for what it held ----
D=$TEST_TMP/attached
mkdir -p "$D"
cluster_up attached@3:$HOLD_MS
peer_and_held 1 closed 2
check "S holds B's link" wait_links 2 1
role W 3 wakeup "$D"
if wait_log 3 "holding the attached from node 1 back"; then
	check "X's ghostd is killed before it handles the home's answer" fail_node 3
else
	not_ok "X held the home's answer back"
fi
check "S drops what it held for B" dropped 2
check "S says so" wait_log 2 "endpoint 1 woke up on node 3, which is down: dropping what it held"
wait "${PIDS[W]}"
read -r st msg < "$D/W.out"
check "the wakeup on X fails with one line" test "$st" -lt 0 -a -n "$msg"
echo "# $msg"
out=$(in_node 1 "$DSTEST" wakeup "$D")
check_eq "B's handle again: EALREADY" \
	"-$EALREADY endpoint 1 of stream $(cat "$D/id") is not suspended (woken up already, or closed)" \
	"$out"
echo 1 > "$D/done"
finish_role A
cluster_down

# ---- 3. X fails while S feeds it ----
D=$TEST_TMP/taking
mkdir -p "$D"
cluster_up feed@2:$HOLD_MS
peer_and_held 1 closed 2
check "S holds B's link" wait_links 2 1
role W 3 wakeup "$D" stay
if wait_log 2 "holding the feed to node 3 back"; then
	check "X's ghostd is killed while S feeds it" fail_node 3
else
	not_ok "S sent the first chunk of what it held, and then held the rest back"
fi
check "S drops what it held for B" dropped 2
check "S says so" wait_log 2 "endpoint 1 woke up on node 3, which is down: dropping what it held"
out=$(in_node 1 "$DSTEST" wakeup "$D")
check_eq "B's handle again: EALREADY" \
	"-$EALREADY endpoint 1 of stream $(cat "$D/id") is not suspended (woken up already, or closed)" \
	"$out"
echo 1 > "$D/done"
finish_role A
wait "${PIDS[W]}"
sed 's/^/# W: /' "$D/W.out"
cluster_down

# ---- 4. the home fails during the wakeup ----
D=$TEST_TMP/home
mkdir -p "$D"
cluster_up wakeup@2:$HOLD_MS
peer_and_held 2 lost 1
role W 3 wakeup "$D"
if wait_log 2 "holding the wakeup from node 3 back"; then
	check "the home's ghostd is killed before it handles the wakeup" fail_node 2
else
	not_ok "the home held the wakeup back"
fi
wait "${PIDS[W]}"
check_eq "the wakeup fails with EHOSTDOWN and says why" \
	"-$EHOSTDOWN the home node 2 of stream $(cat "$D/id") cannot be reached: Host is down (the stream is lost with it)" \
	"$(cat "$D/W.out")"
check "node 1 drops what it held for B" \
	wait_log 1 "endpoint 1 held here is lost with its home node 2"
echo 1 > "$D/done"
finish_role A
cluster_down

# ---- 5. A's node fails while S feeds X ----
D=$TEST_TMP/peer
mkdir -p "$D"
cluster_up connect@1:$HOLD_MS
peer_and_held 3 gone 2
check "S holds B's link" wait_links 2 1
role W 3 fault-woken "$D" $BEFORE 0
if wait_log 1 "holding the connect from node 3 back"; then
	check "A's ghostd is killed before A can move to the new link" fail_node 1
else
	not_ok "A's node held the new link back"
fi
check "S's take ends by itself" dropped 2
finish_role W
echo 1 > "$D/done"
finish_role A
cluster_down

finish
