#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Dynamic streams when things go wrong during a switch, on a 3-node local
# cluster, with streamer's producer and consumer (every byte checked):
#
#  1. the peer's node stops answering while the stream is suspended: the
#     move is refused, the stream goes on untouched, and once the node is
#     back the same move goes through;
#  2. the writer of a pipe is gone while bytes are still queued: they move
#     with the reader, which then reads the end of the stream;
#  3. the peer exits while it is frozen for the switch (during the drain);
#  4. the peer's node fails during the wakeup (its daemon is killed).
#
# In 3 and 4 the surviving end gets every byte its peer wrote, in order,
# then the end of the stream once, and goes on by itself: nothing lost,
# nothing left frozen. To act at a known point of the switch without racing
# it, the daemons run with fault injection ($GHOST_FAULT, docs/ghostd.md):
# node 2 handles DRAIN 2 s late and node 3 handles WAKE 3 s late, and the
# test acts when the node's log says the message is being held back.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
. "$(dirname "$0")/lib.sh"
STREAMER=$(realpath "$(dirname "$0")")/streamer
[ -n "${STREAMER_BIN:-}" ] && STREAMER=$STREAMER_BIN

GHOST_FAULT=drain@2:2000,wake@3:3000 "$GHOST" cluster up --nodes 3 > /dev/null ||
	fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3, with DRAIN late on node 2 and WAKE late on node 3"

# logged NODE TEXT: how many times NODE's daemon has logged TEXT.
logged() {
	grep -cF "$2" "$GHOST_CLUSTER_DIR/node$1/ghostd.log" 2>/dev/null
}

# wait_log NODE TEXT N: NODE's daemon has logged TEXT more than N times
# (10 s at most).
wait_log() {
	for _ in $(seq 500); do
		[ "$(logged "$1" "$2")" -gt "$3" ] && return 0
		sleep 0.02
	done
	return 1
}

# move_and_act PID TO NODE TEXT CMD...: migrate PID to node TO (stderr in
# $d/err, exit status in $st) while, as soon as NODE's daemon logs TEXT
# once more, CMD runs ("yes" in $d/killed if it succeeded).
move_and_act() {
	local pid=$1 to=$2 node=$3 text=$4 seen actor
	shift 4
	: > "$d/killed"
	seen=$(logged "$node" "$text")
	(
		wait_log "$node" "$text" "$seen" && "$@" > /dev/null 2>&1 && echo yes > "$d/killed"
	) &
	actor=$!
	"$GHOST" migrate "$pid" "$to" > /dev/null 2> "$d/err"
	st=$?
	wait $actor
}

# 1. The peer's node stops answering during the suspend.
d=$TEST_TMP/stopped
if start_pair tcp "$d"; then
	"$GHOST" migrate "$prod" 3 > /dev/null || not_ok "stopped: move the producer to node 3"
	daemon3=$(children "$(node_init 3)")
	kill -STOP $daemon3
	"$GHOST" migrate "$cons" 2 > /dev/null 2> "$d/err"
	st=$?
	kill -CONT $daemon3
	check "stopped: a move is refused when the peer's node stops answering" test "$st" != 0
	echo "# $(cat "$d/err")"
	check_eq "stopped: the mover stayed on node 1" 1 "$(node_of "$cons")"
	for _ in $(seq 200); do
		"$GHOST" nodes 2>/dev/null | grep -q '^3 .* up' && break
		sleep 0.05
	done
	"$GHOST" migrate "$cons" 2 > /dev/null 2> "$d/err" ||
		echo "# after the fault: $(cat "$d/err")"
	check_eq "stopped: once the node is back the move goes through" 2 "$(node_of "$cons")"
	"$GHOST" kill -USR1 "$prod" > /dev/null 2>&1
	wait_exit "$prod"
	wait_exit "$cons"
	read -r p c <<< "$(counts "$d")"
	check "stopped: no byte lost or duplicated across the refused move" \
		test -n "$c" -a "$p" = "$c"
else
	not_ok "stopped: the two ends connect"
fi

# 2. The writer of a pipe is gone while bytes are still queued.
d=$TEST_TMP/gone
if start_pair pipe "$d"; then
	"$GHOST" kill -STOP "$cons" > /dev/null
	sleep 0.3
	"$GHOST" kill -KILL "$prod" > /dev/null
	wait_exit "$prod"
	"$GHOST" migrate --json "$cons" 3 > "$d/moved" 2> "$d/err" || echo "# $(cat "$d/err")"
	check_eq "gone: the reader moved without its writer" 3 \
		"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["to"])' "$d/moved" 2>/dev/null)"
	"$GHOST" kill -CONT "$cons" > /dev/null 2>&1
	wait_exit "$cons"
	check "gone: it read what was queued, in order, then the end once" \
		test -n "$(consumed "$d")"
else
	not_ok "gone: the two ends connect"
fi

# 3. The peer exits while frozen: the producer (node 2) is killed while
#    its node holds the DRAIN back; the consumer was moving from 1 to 3.
d=$TEST_TMP/exits
if start_pair unix "$d"; then
	"$GHOST" migrate "$prod" 2 > /dev/null || not_ok "exits: move the producer to node 2"
	move_and_act "$cons" 3 2 "holding the drain from node 1 back" \
		"$GHOST" kill -KILL "$prod"
	check_eq "exits: the producer was killed while frozen for the switch" yes \
		"$(cat "$d/killed")"
	check "exits: the move is refused, with one line saying why" \
		test "$st" != 0 -a "$(wc -l < "$d/err")" = 1
	echo "# $(cat "$d/err")"
	wait_exit "$cons"
	check "exits: the consumer read every byte in order, then the end once, by itself" \
		test -n "$(consumed "$d")"
	grep -h BAD "$d/cons" 2>/dev/null | sed 's/^/# /'
else
	not_ok "exits: the two ends connect"
fi

# 4. The peer's node fails during the wakeup: node 3's daemon, holding the
#    WAKE of the producer's end back, is killed; the consumer was moving
#    from 1 to 2. The producer, on the failed node, gets EPIPE once its end
#    is let go, and says how much it had written.
d=$TEST_TMP/node-fails
if start_pair tcp "$d"; then
	"$GHOST" migrate "$prod" 3 > /dev/null || not_ok "node fails: move the producer to node 3"
	move_and_act "$cons" 2 3 "holding the wake from node 1 back" \
		kill -KILL "$(children "$(node_init 3)")"
	check_eq "node fails: node 3's daemon was killed during the wakeup" yes \
		"$(cat "$d/killed")"
	check "node fails: the move is refused, with one line saying why" \
		test "$st" != 0 -a "$(wc -l < "$d/err")" = 1
	echo "# $(cat "$d/err")"
	wait_exit "$cons"
	c=$(consumed "$d")
	for _ in $(seq 200); do
		grep -q 'write after' "$d/prod" 2>/dev/null && break
		sleep 0.05
	done
	p=$(grep -o 'write after [0-9]*' "$d/prod" 2>/dev/null | cut -d' ' -f3)
	check "node fails: the consumer read every byte in order, then the end once, by itself" \
		test -n "$c"
	check "node fails: as many bytes arrived as the producer wrote" test -n "$p" -a "$p" = "$c"
	[ -n "$c" ] && [ "$p" = "$c" ] ||
		echo "# consumer: $(cat "$d/cons" 2>/dev/null); producer: $(cat "$d/prod" 2>/dev/null);" \
			"consumer state: $("$GHOST" ps -a --json 2>/dev/null | grep -o "\"pid\":$cons,[^}]*")"
else
	not_ok "node fails: the two ends connect"
fi

finish
