#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Dynamic streams on a 3-node local cluster: a producer and a consumer joined
# by each kind of stream (pipe, socketpair, Unix stream socket, named FIFO,
# TCP) exchange a checksummed sequence as fast as they can while one of them
# migrates between the nodes many times in a row (STREAMS_MOVES, 100 by
# default; 10 for the variants): no byte lost, duplicated or reordered, end
# of file once at the end. After every move the mover's end is checked to
# be a direct channel to its peer's node (or a local kernel channel when
# they share a node): no forwarding through a daemon or an old node. Then a
# pipeline whose middle process moves while data flows. The faults are in
# streams-faults.sh.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
. "$(dirname "$0")/lib.sh"
STREAMER=$(realpath "$(dirname "$0")")/streamer
[ -n "${STREAMER_BIN:-}" ] && STREAMER=$STREAMER_BIN
MOVES=${STREAMS_MOVES:-100}

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"

declare -A ADDRESS
for n in 1 2 3; do
	ADDRESS[$n]=$(node_address $n)
done

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

finish
