#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Dynamic streams on a 3-node local cluster: a producer and a consumer joined
# by each kind of stream (pipe, socketpair, Unix stream socket, named FIFO,
# TCP) exchange a checksummed sequence as fast as they can while one of them
# migrates between the nodes many times in a row (STREAMS_MOVES, 100 by
# default; 10 for the variants): no byte lost, duplicated or reordered, end
# of file once at the end. After every move the mover's end is checked to be a direct channel to
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
# for pipes, Unix sockets and TCP over loopback, "tcp REMOTE-ADDRESS" for
# TCP to another address, one line per fd
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
        # TCP over loopback is the local channel of a TCP stream.
        print("tcp " + tcp[ino] if ino in tcp and tcp[ino] != "127.0.0.1" else "local")
    elif link.startswith("pipe:["):
        print("local")
EOF
}

# direct MOVER NODE PEER-NODE: MOVER (on NODE) has a local channel if its
# peer is on the same node, else a TCP connection straight to PEER-NODE.
direct() {
	local want got
	if [ "$2" = "$3" ]; then
		want=local
	else
		want="tcp ${ADDRESS[$3]}"
	fi
	got=$(channel "$2" "$1" | sort -u)
	[ "$got" = "$want" ] || { echo "# $1 on node $2: '$got', want '$want'"; return 1; }
}

declare -A ADDRESS
for n in 1 2 3; do
	ADDRESS[$n]=$(node_address $n)
done

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

# start_pair KIND DIR [OPTIONS]: consumer and producer on node 1, connected;
# their PIDs in $cons and $prod.
start_pair() {
	local kind=$1 d=$2
	shift 2
	mkdir -p "$d"
	cons=$("$GHOST" run -d -- "$STREAMER" "$@" consume "$kind" "$d/rv" "$d/cons") || return 1
	prod=$("$GHOST" run -d -- "$STREAMER" "$@" produce "$kind" "$d/rv" "$d/prod") || return 1
	wait_file "$d/cons.ready" && wait_file "$d/prod.ready"
}

# result DIR: "PRODUCED CONSUMED" once both ended.
counts() {
	echo "$(grep -o 'produced [0-9]*' "$1/prod" 2>/dev/null | cut -d' ' -f2)" \
		"$(grep -o 'consumed [0-9]* ok' "$1/cons" 2>/dev/null | cut -d' ' -f2)"
}

# run_kind KIND WHO N [OPTIONS]: both ends on node 1, move WHO (producer or
# consumer) N times, finish, compare.
run_kind() {
	local opts="${*:4}"
	local kind=$1 who=$2 n=$3 d=$TEST_TMP/$1${opts// /} mover i to ok_moves=0 not_direct=0
	local failed="" name=$kind${opts:+ $opts}
	shift 3
	if ! start_pair "$kind" "$d" "$@"; then
		not_ok "$name: the two ends connect"
		return
	fi
	if [ "$who" = consumer ]; then mover=$cons; else mover=$prod; fi
	local route=(2 3 1)
	for i in $(seq 0 $((n - 1))); do
		to=${route[$((i % 3))]}
		if "$GHOST" migrate "$mover" "$to" > /dev/null 2> "$d/err"; then
			ok_moves=$((ok_moves + 1))
			# The peer stays on node 1.
			direct "$mover" "$to" 1 || not_direct=$((not_direct + 1))
		else
			failed="$failed; move $i: $(cat "$d/err")"
		fi
	done
	check_eq "$name: the $who moved $n times in a row" "$n" "$ok_moves"
	[ -z "$failed" ] || echo "#${failed:0:2000}"
	check_eq "$name: after every move the $who's end went straight to its peer's node" \
		0 "$not_direct"
	"$GHOST" kill -USR1 "$prod" > /dev/null 2>&1
	wait_exit "$prod"
	wait_exit "$cons"
	local p c
	read -r p c <<< "$(counts "$d")"
	check "$name: the consumer checked every byte and saw the end once" test -n "$c"
	check_eq "$name: as many bytes arrived as were sent" "$p" "$c"
	grep -h BAD "$d/cons" "$d/prod" 2>/dev/null | sed 's/^/# /'
}

# Every kind with MOVES moves of one end; then the other end, both
# directions at once, non-blocking I/O with poll() and with epoll_wait()
# (the registrations follow each swap of the stream) with fewer.
VARIANT_MOVES=$(( MOVES < 10 ? MOVES : 10 ))
run_kind pipe consumer "$MOVES"
run_kind socketpair producer "$MOVES"
run_kind unix consumer "$MOVES"
run_kind fifo producer "$MOVES"
run_kind tcp consumer "$MOVES"
run_kind pipe producer "$VARIANT_MOVES"
run_kind socketpair consumer "$VARIANT_MOVES" --bidir
run_kind unix producer "$VARIANT_MOVES" --nonblock
run_kind pipe consumer "$VARIANT_MOVES" --nonblock --epoll
run_kind tcp producer "$VARIANT_MOVES" --bidir

# A pipeline of unmodified programs: the middle one moves while data flows.
d=$TEST_TMP/pipeline
mkdir -p "$d"
N=300000000
seq 1 $N | md5sum > "$d/want" &
want_pid=$!
pl=$("$GHOST" run -d -- sh -c "seq 1 $N | cat | md5sum > '$d/got'")
mid=""
for _ in $(seq 100); do
	mid=$(in_node 1 ps -o pid=,comm= --ppid "$pl" | awk '$2 == "cat" {print $1}')
	[ -n "$mid" ] && break
	sleep 0.02
done
moves=0
for to in 2 3 2 3; do
	"$GHOST" migrate "$mid" "$to" > /dev/null 2> "$d/err" && moves=$((moves + 1)) ||
		echo "# $(cat "$d/err")"
done
check_eq "pipeline: the middle process moved 4 times while data flowed" 4 "$moves"
wait "$want_pid"
wait_exit "$pl"
check_eq "pipeline: every byte went through the moving middle, in order" \
	"$(cat "$d/want")" "$(cat "$d/got" 2>/dev/null)"

# Faults.
# 1. The peer's node fails while the stream is being suspended: its daemon
#    is stopped, so the hold never answers; the move fails, the mover stays
#    on node 1 and the stream goes on untouched.
d=$TEST_TMP/fault-node
if start_pair tcp "$d"; then
	"$GHOST" migrate "$prod" 3 > /dev/null || not_ok "fault: move the producer to node 3"
	daemon3=$(children "$(node_init 3)")
	kill -STOP $daemon3
	"$GHOST" migrate "$cons" 2 > /dev/null 2> "$d/err"
	st=$?
	kill -CONT $daemon3
	check "fault: a move is refused when the peer's node stops answering" test "$st" != 0
	echo "# $(cat "$d/err")"
	check_eq "fault: the mover stayed on node 1" 1 "$(node_of "$cons")"
	for _ in $(seq 200); do
		"$GHOST" nodes 2>/dev/null | grep -q '^3 .* up' && break
		sleep 0.05
	done
	"$GHOST" migrate "$cons" 2 > /dev/null 2> "$d/err" ||
		echo "# after the fault: $(cat "$d/err")"
	check_eq "fault: once the node is back the move goes through" 2 "$(node_of "$cons")"
	"$GHOST" kill -USR1 "$prod" > /dev/null 2>&1
	wait_exit "$prod"
	wait_exit "$cons"
	read -r p c <<< "$(counts "$d")"
	check "fault: no byte lost or duplicated across the failed move" \
		test -n "$c" -a "$p" = "$c"
else
	not_ok "fault: the two ends connect"
fi

# 2. The writer of a pipe is gone while bytes are still queued: they move
#    with the reader, then it reads the end of the stream.
d=$TEST_TMP/fault-gone
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
		grep -q 'consumed [1-9][0-9]* ok' "$d/cons"
else
	not_ok "gone: the two ends connect"
fi

finish
