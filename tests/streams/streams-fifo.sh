#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# FIFO streams on a 3-node local cluster: one pipe, its reader on node 1 and
# its writers moved between the nodes while they write checksummed records
# of 24 bytes to PIPE_BUF as fast as they can (records.c). The reader
# checks that every record arrives whole, each writer's in order, nothing
# lost or repeated, and the end of the stream once, after the last writer.
#
#  1. a named FIFO with three writers, each moved several times (back onto
#     the reader's node too); after each move a writer away from node 1
#     writes into a pipe that its own node's daemon reads (its chain's
#     pump), and one on node 1 into the reader's pipe itself; moving the
#     reader meanwhile is refused with one line and changes nothing;
#  2. an anonymous pipe that three forked children inherited, moved the
#     same way;
#  3. no forwarding: a writer that moves on from node 2 to node 3 writes
#     through node 3's chain alone: node 2's ended when it left, and the
#     two carried exactly what it wrote;
#  3b. a writer cannot come back to the reader's node while the reader has
#     not read what it wrote through its chain: the move fails (after the
#     5 s the readers' node waits) with one line, and is rolled back with
#     nothing lost or reordered; once the reader reads, it comes back;
#  4. the reader leaves early: the writers on all three nodes get EPIPE;
#  5. `ghost fork` of a writer, onto another node, onto the reader's node
#     and onto its own node: each copy is one more writer;
#  6. `ghost fork` of a pipe's reader or of a socket's holder to another
#     node is refused with one line and changes nothing.
#
# The daemons log at info level: the test reads their chain lines.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
. "$(dirname "$0")/lib.sh"
RECORDS=$(realpath "$(dirname "$0")")/records
[ -n "${RECORDS_BIN:-}" ] && RECORDS=$RECORDS_BIN
STREAMER=$(realpath "$(dirname "$0")")/streamer
[ -n "${STREAMER_BIN:-}" ] && STREAMER=$STREAMER_BIN
ROUNDS=${STREAMS_FIFO_ROUNDS:-3}

GHOST_LOG=info "$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"

# refused STATUS: "refused" for a failed command's exit status.
refused() {
	if [ "$1" != 0 ]; then echo refused; else echo done; fi
}

# wait_fifo PATH: the reader made its FIFO (10 s at most).
wait_fifo() {
	for _ in $(seq 500); do
		[ -p "$1" ] && return 0
		sleep 0.02
	done
	return 1
}

# state_of PID: its state as ps says ("running", "sleeping", "stopped"...).
state_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"': print(p["state"])'
}

# wait_state OUT PID TEXT: writer PID's state file says TEXT (10 s at most).
wait_state() {
	for _ in $(seq 500); do
		[ "$(cat "$1.$2.state" 2>/dev/null)" = "$3" ] && return 0
		sleep 0.02
	done
	echo "# writer $2: '$(cat "$1.$2.state" 2>/dev/null)', want '$3'"
	return 1
}

# ended NODE PID: the bytes each chain of process PID on NODE sent before
# it ended, one line each.
ended() {
	grep -o "chain [0-9a-f]* of process $2 ended: [0-9]* bytes" \
		"$GHOST_CLUSTER_DIR/node$1/ghostd.log" | cut -d' ' -f7
}

# wait_ended NODE PID N: NODE logged N ended chains of PID (10 s at most).
wait_ended() {
	for _ in $(seq 500); do
		[ "$(ended "$1" "$2" | wc -l)" -ge "$3" ] && return 0
		sleep 0.02
	done
	return 1
}

# move_writer PID TO READER NAME: move a writer, check where it writes.
move_writer() {
	if "$GHOST" migrate "$1" "$2" > /dev/null 2> "$d/err"; then
		moved=$((moved + 1))
		chained "$1" "$2" "$3" || misrouted=$((misrouted + 1))
	else
		echo "# $4: move of $1 to node $2: $(cat "$d/err")"
	fi
}

# finish_writers NAME READER WRITER...: stop them; the reader checked every
# record and saw the end once, and counted what each writer says it wrote.
finish_writers() {
	local name=$1 reader=$2 w want got
	shift 2
	for w in "$@"; do
		"$GHOST" kill -USR1 "$w" > /dev/null 2>&1
	done
	for w in "$@"; do
		wait_exit "$w" || echo "# $name: writer $w did not exit"
	done
	wait_exit "$reader" || echo "# $name: the reader did not exit"
	grep -h BAD "$d"/out* 2>/dev/null | sed 's/^/# /'
	check "$name: the reader checked every record and saw the end once" \
		grep -q '^total [0-9]* records ok$' "$d/out"
	want=$(for w in "$d"/out.*; do
		case ${w##*/out.} in *[!0-9]*) ;; *) cut -d' ' -f1-6 "$w" ;; esac
	done | grep -v ' records 0 ' | sort)
	got=$(grep '^writer' "$d/out" | sort)
	check_eq "$name: every writer's records arrived whole, in order, once" "$want" "$got"
	[ -n "$want" ] || echo "# $name: no writer reported"
	# The end of the stream came after the last writer, not before.
	check_eq "$name: every writer wrote until told to stop (no EPIPE)" "" \
		"$(for w in "$d"/out.*; do
			case ${w##*/out.} in *[!0-9]*) ;; *) grep -v ' stopped$' "$w" ;; esac
		done)"
}

# 1. A named FIFO, three writers moving around.
d=$TEST_TMP/fifo
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" read "$d/fifo" "$d/out")
writers=()
for i in 1 2 3; do
	writers+=("$("$GHOST" run -d -- "$RECORDS" write "$d/fifo" "$d/out")")
done
check "fifo: the reader and three writers run" wait_fifo "$d/fifo"
moved=0 misrouted=0
routes=("2 3 1" "3 1 2" "2 1 3")
for round in $(seq "$ROUNDS"); do
	for i in 0 1 2; do
		read -r -a route <<< "${routes[$i]}"
		move_writer "${writers[$i]}" "${route[$(((round - 1) % 3))]}" "$reader" fifo
	done
	if [ "$round" = 1 ]; then
		# 1b. Its readers stay on their node while chains write into the pipe.
		"$GHOST" migrate "$reader" 2 > /dev/null 2> "$d/err"
		st=$?
		check "fifo: moving the reader while chains write into its pipe is refused" \
			test "$st" != 0
		check_eq "fifo: ... with one line saying why" \
			"1 read end of a pipe" "$(wc -l < "$d/err") $(grep -o 'read end of a pipe' "$d/err")"
		echo "# $(cat "$d/err")"
		check_eq "fifo: ... and the reader runs on node 1 as before" "1 running" \
			"$(node_of "$reader") $(state_of "$reader" | sed 's/sleeping/running/')"
	fi
done
check_eq "fifo: the writers moved $((3 * ROUNDS)) times while writing" $((3 * ROUNDS)) "$moved"
check_eq "fifo: after each move a writer wrote into the reader's pipe or its chain" 0 "$misrouted"
finish_writers fifo "$reader" "${writers[@]}"

# 2. An anonymous pipe that forked children inherited: the reader makes it,
#    a keeper child forks the writers and goes (once each is managed).
d=$TEST_TMP/family
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" family 3 "$d/out")
if wait_file "$d/out.family"; then
	read -r keeper w1 w2 w3 < "$d/out.family"
	writers=("$w1" "$w2" "$w3")
	for w in "${writers[@]}"; do
		"$GHOST" kill -0 "$w" > /dev/null || echo "# family: writer $w is not managed"
	done
	"$GHOST" kill -TERM "$keeper" > /dev/null
	wait_exit "$keeper"
	moved=0 misrouted=0
	for round in $(seq "$ROUNDS"); do
		for i in 0 1 2; do
			read -r -a route <<< "${routes[$i]}"
			move_writer "${writers[$i]}" "${route[$(((round - 1) % 3))]}" "$reader" family
		done
	done
	check_eq "family: the children moved $((3 * ROUNDS)) times while writing" \
		$((3 * ROUNDS)) "$moved"
	check_eq "family: after each move a child wrote into the pipe or its chain" 0 "$misrouted"
	finish_writers family "$reader" "${writers[@]}"
else
	not_ok "family: the reader forked its writers"
fi

# 3. No forwarding: b writes 300 records on node 2, moves to node 3 and
#    writes 300 more there; a stays on node 1, so that the pipe has more
#    holders than a reader and a writer.
d=$TEST_TMP/direct
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" read "$d/fifo" "$d/out")
a=$("$GHOST" run -d -- "$RECORDS" --paused write "$d/fifo" "$d/out")
b=$("$GHOST" run -d -- "$RECORDS" --paused --burst 300 write "$d/fifo" "$d/out")
wait_state "$d/out" "$b" "paused 0"
moved=0 misrouted=0
move_writer "$b" 2 "$reader" direct
"$GHOST" kill -USR2 "$b" > /dev/null
wait_state "$d/out" "$b" "paused 300"
move_writer "$b" 3 "$reader" direct
check "direct: node 2's chain of the writer ended when it left" wait_ended 2 "$b" 1
n2=$(ended 2 "$b")
"$GHOST" kill -USR2 "$b" > /dev/null
wait_state "$d/out" "$b" "paused 600"
finish_writers direct "$reader" "$a" "$b"
wait_ended 3 "$b" 1
n3=$(ended 3 "$b")
total=$(cut -d' ' -f6 "$d/out.$b" 2>/dev/null)
echo "# node 2 sent $n2 bytes, node 3 $n3, the writer wrote $total"
check "direct: each node's chain carried some of the writer's records" \
	test "${n2:-0}" -gt 0 -a "${n3:-0}" -gt 0
check_eq "direct: node 2 carried nothing after the move: the two chains carried all, once" \
	"${total:-none}" "$(( ${n2:-0} + ${n3:-0} ))"
check_eq "direct: node 2's daemon ended one chain of the writer" 1 "$(ended 2 "$b" | wc -l)"

# 3b. Back to the reader's node while the reader has read nothing: b's 300
#     records (157318 bytes: the sizes are the same every run) are more
#     than the pipe holds, so its chain cannot write them all.
d=$TEST_TMP/back
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" --paused read "$d/fifo" "$d/out")
a=$("$GHOST" run -d -- "$RECORDS" --paused write "$d/fifo" "$d/out")
b=$("$GHOST" run -d -- "$RECORDS" --paused --burst 300 write "$d/fifo" "$d/out")
wait_state "$d/out" "$b" "paused 0"
moved=0 misrouted=0
move_writer "$b" 2 "$reader" back
"$GHOST" kill -USR2 "$b" > /dev/null
wait_state "$d/out" "$b" "paused 300"
"$GHOST" migrate "$b" 1 > /dev/null 2> "$d/err"
st=$?
echo "# $(cat "$d/err")"
check_eq "back: coming back before the reader read its chain's bytes is refused with one line" \
	"refused 1 have not read" "$(refused "$st") $(wc -l < "$d/err") $(grep -o 'have not read' "$d/err")"
check_eq "back: ... and the writer goes on where it was, through its chain" "2 0" \
	"$(node_of "$b") $(chained "$b" 2 "$reader"; echo $?)"
"$GHOST" kill -USR2 "$reader" > /dev/null
"$GHOST" kill -USR2 "$b" > /dev/null
wait_state "$d/out" "$b" "paused 600"
move_writer "$b" 1 "$reader" back
check_eq "back: once the reader read, the writer came back onto its node" "2 0" \
	"$moved $misrouted"
finish_writers back "$reader" "$a" "$b"

# 4. The reader leaves early: writers on nodes 1, 2 and 3 get EPIPE.
d=$TEST_TMP/epipe
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" --stop-after 20000 read "$d/fifo" "$d/out")
writers=()
for i in 1 2 3; do
	writers+=("$("$GHOST" run -d -- "$RECORDS" --paused write "$d/fifo" "$d/out")")
done
moved=0 misrouted=0
for w in "${writers[@]}"; do
	wait_state "$d/out" "$w" "paused 0"
done
move_writer "${writers[1]}" 2 "$reader" epipe
move_writer "${writers[2]}" 3 "$reader" epipe
for w in "${writers[@]}"; do
	"$GHOST" kill -USR2 "$w" > /dev/null
done
wait_exit "$reader"
check "epipe: the reader left after 20000 records" grep -q "stopped after 20000 records" "$d/out"
for w in "${writers[@]}"; do
	wait_exit "$w" || echo "# epipe: writer $w did not exit"
done
check_eq "epipe: the writers on nodes 1, 2 and 3 got EPIPE" "epipe epipe epipe" \
	"$(for w in "${writers[@]}"; do cut -d' ' -f7 "$d/out.$w" 2>/dev/null || echo none; done | xargs)"

# 5. ghost fork of a writer: from the reader's node to node 2, then (moved
#    to node 3) onto the reader's node, onto node 2 and onto node 3 itself.
#    Each copy, once let go, is a writer of its own.
d=$TEST_TMP/fork
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" read "$d/fifo" "$d/out")
w=$("$GHOST" run -d -- "$RECORDS" --paused --burst 2000 write "$d/fifo" "$d/out")
other=$("$GHOST" run -d -- "$RECORDS" write "$d/fifo" "$d/out")
wait_state "$d/out" "$w" "paused 0"
copies=()
fork_writer() {
	local to=$1 copy
	copy=$("$GHOST" fork --json "$w" "$to" 2> "$d/err" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
	if [ -n "$copy" ]; then
		copies+=("$copy")
		chained "$copy" "$to" "$reader" || misrouted=$((misrouted + 1))
	else
		echo "# fork of $w to node $to: $(cat "$d/err")"
	fi
}
moved=0 misrouted=0
fork_writer 2
move_writer "$w" 3 "$reader" fork
fork_writer 1
fork_writer 2
fork_writer 3
check_eq "fork: four copies of the writer were made" 4 "${#copies[@]}"
check_eq "fork: each copy writes into the reader's pipe or a chain of its own node" 0 "$misrouted"
check_eq "fork: the copy on the writer's own node shares its pipe, as after fork()" \
	"$(pipes 3 "$w")" "$(pipes 3 "${copies[3]:-0}")"
for p in "$w" "${copies[@]}"; do
	"$GHOST" kill -USR2 "$p" > /dev/null
done
for p in "$w" "${copies[@]}"; do
	wait_state "$d/out" "$p" "paused 2000" || echo "# fork: writer $p did not write its records"
done
finish_writers fork "$reader" "$w" "$other" "${copies[@]}"
check_eq "fork: the reader saw the writer, its four copies and the other writer" 6 \
	"$(grep -c '^writer' "$d/out")"

# 6. What a copy on another node cannot share: a pipe's read end, a socket.
d=$TEST_TMP/refused
mkdir -p "$d"
reader=$("$GHOST" run -d -- "$RECORDS" read "$d/fifo" "$d/out")
w=$("$GHOST" run -d -- "$RECORDS" write "$d/fifo" "$d/out")
wait_fifo "$d/fifo"
"$GHOST" fork "$reader" 2 > /dev/null 2> "$d/err"
st=$?
echo "# $(cat "$d/err")"
check_eq "refused: forking a pipe's reader to another node is refused with one line" \
	"refused 1 read end of a pipe" \
	"$(refused "$st") $(wc -l < "$d/err") $(grep -o 'read end of a pipe' "$d/err")"
finish_writers refused "$reader" "$w"
if start_pair unix "$d/unix"; then
	"$GHOST" fork "$cons" 2 > /dev/null 2> "$d/err"
	st=$?
	echo "# $(cat "$d/err")"
	check_eq "refused: forking a socket's holder to another node is refused with one line" \
		"refused 1 Unix socket" \
		"$(refused "$st") $(wc -l < "$d/err") $(grep -o 'Unix socket' "$d/err")"
	check_eq "refused: ... and the pair goes on running on node 1" "1 1" \
		"$(node_of "$cons") $(node_of "$prod")"
	"$GHOST" kill -USR1 "$prod" > /dev/null 2>&1
	wait_exit "$prod"
	wait_exit "$cons"
	read -r p c <<< "$(counts "$d/unix")"
	check "refused: ... and the pair lost nothing" test -n "$c" -a "$p" = "$c"
else
	not_ok "refused: the Unix socket pair connects"
fi

finish
