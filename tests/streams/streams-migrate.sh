#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Dynamic streams on a 3-node local cluster: a producer and a consumer joined
# by each kind of stream (pipe, socketpair, Unix stream socket, named FIFO,
# TCP) exchange a checksummed sequence as fast as they can while one of them
# migrates between the nodes many times in a row (STREAMS_MOVES, 100 by
# default): no byte lost, duplicated or reordered, end of file once at the
# end. After every move the mover's end is checked to be a direct channel to
# its peer's node (or a local kernel channel when they share a node): no
# forwarding through a daemon or an old node. Then a pipeline whose middle
# process moves while data flows, and the faults: a peer that exits while
# frozen, a refused move that leaves the stream working.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
STREAMER=$(realpath "$(dirname "$0")")/streamer
[ -n "${STREAMER_BIN:-}" ] && STREAMER=$STREAMER_BIN
MOVES=${STREAMS_MOVES:-100}

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"

node_init() {
	"$GHOST" cluster status --json | grep -o "\"id\":$1,[^}]*" | grep -o '"pid":[0-9]*' |
		cut -d: -f2
}

node_address() {
	"$GHOST" nodes --json | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["id"] == '"$1"': print(n["address"].rsplit(":", 1)[0])'
}

node_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"' and p["state"] != "exited": print(p["node"])'
}

# in_node NODE CMD...: run CMD in NODE's namespaces (its /proc, its network).
in_node() {
	local n=$1
	shift
	nsenter -t "$(node_init "$n")" -m -n -p -- "$@"
}

# channel NODE PID: what the stream fds of PID (on NODE) are now: "local"
# for pipes and Unix sockets, "tcp REMOTE-ADDRESS" for TCP, one line per fd
# that is a stream (0-2 excluded: logs).
channel() {
	in_node "$1" python3 - "$2" <<'EOF'
import os, socket, struct, sys
pid = sys.argv[1]
tcp = {}
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    rem = f[2].split(":")[0]
    tcp[f[9]] = socket.inet_ntoa(struct.pack("<I", int(rem, 16)))
for fd in sorted(os.listdir("/proc/%s/fd" % pid), key=int):
    if int(fd) < 3:
        continue
    link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    if link.startswith("socket:["):
        ino = link[8:-1]
        print("tcp " + tcp[ino] if ino in tcp else "local")
    elif link.startswith("pipe:["):
        print("local")
EOF
}

# direct MOVER PEER: MOVER's stream is a local channel if both share a node,
# else a TCP connection straight to PEER's node.
direct() {
	local a b want got
	a=$(node_of "$1")
	b=$(node_of "$2")
	if [ "$a" = "$b" ]; then
		want=local
	else
		want="tcp $(node_address "$b")"
	fi
	got=$(channel "$a" "$1" | sort -u)
	[ "$got" = "$want" ] || { echo "# $1 on node $a: '$got', want '$want'"; return 1; }
}

wait_file() {
	for _ in $(seq 200); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_exit PID: the managed process has exited.
wait_exit() {
	for _ in $(seq 400); do
		[ -z "$(node_of "$1")" ] && return 0
		sleep 0.05
	done
	return 1
}

# One kind: start both ends on node 1, move WHO MOVES times, finish, compare.
run_kind() {
	local kind=$1 who=$2 opts=${3:-} d=$TEST_TMP/$1$3 prod cons mover peer i to ok_moves=0
	local not_direct=0 failed=""
	mkdir -p "$d"
	cons=$("$GHOST" run -d -- "$STREAMER" consume $opts "$kind" "$d/rv" "$d/cons") ||
		{ not_ok "$kind: start the consumer"; return; }
	wait_file "$d/rv" || [ "$kind" = pipe ] || [ "$kind" = socketpair ] || true
	prod=$("$GHOST" run -d -- "$STREAMER" produce $opts "$kind" "$d/rv" "$d/prod") ||
		{ not_ok "$kind: start the producer"; return; }
	if ! wait_file "$d/cons.ready" || ! wait_file "$d/prod.ready"; then
		not_ok "$kind: the ends connect"
		return
	fi
	if [ "$who" = consumer ]; then mover=$cons peer=$prod; else mover=$prod peer=$cons; fi
	local route=(2 3 1)
	for i in $(seq 0 $((MOVES - 1))); do
		to=${route[$((i % 3))]}
		if "$GHOST" migrate "$mover" "$to" > /dev/null 2> "$d/err"; then
			ok_moves=$((ok_moves + 1))
			direct "$mover" "$peer" || not_direct=$((not_direct + 1))
		else
			failed="$failed; move $i: $(cat "$d/err")"
		fi
	done
	check_eq "$kind$opts: the $who moved $MOVES times" "$MOVES" "$ok_moves"
	[ -z "$failed" ] || echo "#${failed}" | head -c 2000
	check_eq "$kind$opts: after every move the $who's end went straight to its peer's node" \
		0 "$not_direct"
	"$GHOST" kill -USR1 "$prod" > /dev/null 2>&1
	wait_exit "$prod"
	wait_exit "$cons"
	local p c
	p=$(grep -o 'produced [0-9]*' "$d/prod" | cut -d' ' -f2)
	c=$(grep -o 'consumed [0-9]* ok' "$d/cons" | cut -d' ' -f2)
	check "$kind$opts: the consumer saw every byte in order and one end of file" \
		test -n "$c"
	check_eq "$kind$opts: as many bytes arrived as were sent" "$p" "$c"
	grep -q BAD "$d/cons" && echo "# $(grep BAD "$d/cons")"
}

run_kind pipe consumer
run_kind pipe producer
run_kind socketpair consumer
run_kind unix producer
run_kind fifo consumer
run_kind tcp consumer
run_kind tcp producer --bidir
run_kind unix consumer --nonblock

# A pipeline: the middle process moves while data flows.
d=$TEST_TMP/pipeline
mkdir -p "$d"
pl=$("$GHOST" run -d -- sh -c "'$STREAMER' produce pipe - '$d/prod' | cat | '$STREAMER' consume pipe - '$d/cons'")
wait_file "$d/cons.ready"
mid=""
for _ in $(seq 100); do
	mid=$(in_node 1 sh -c "ps -o pid=,comm= --ppid $pl" | awk '$2 == "cat" {print $1}')
	[ -n "$mid" ] && break
	sleep 0.05
done
moves=0
for to in 2 3 1 3 2; do
	"$GHOST" migrate "$mid" "$to" > /dev/null 2> "$d/err" && moves=$((moves + 1)) ||
		echo "# $(cat "$d/err")"
done
check_eq "pipeline: the middle process moved 5 times while data flowed" 5 "$moves"
prod=$(in_node 1 sh -c "ps -o pid=,comm= --ppid $pl" | awk '$2 == "streamer" {print $1}' | head -1)
for p in $(in_node 1 sh -c "ps -o pid= --ppid $pl"); do
	grep -q produce "/proc/self/cmdline" 2>/dev/null
done
in_node 1 sh -c "for p in \$(ps -o pid= --ppid $pl); do grep -q produce /proc/\$p/cmdline && kill -USR1 \$p; done"
wait_exit "$pl"
p=$(grep -o 'produced [0-9]*' "$d/prod" | cut -d' ' -f2)
c=$(grep -o 'consumed [0-9]* ok' "$d/cons" | cut -d' ' -f2)
check_eq "pipeline: every byte went through the moving middle in order" "$p" "$c"

finish
