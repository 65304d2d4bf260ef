#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ghost migrate of processes attached to a `ghost run`, on a 3-node local
# cluster. The chatter (chatter.c) counts on stdout and stderr and echoes
# the lines it reads; it moves around the cluster while lines are fed to
# its ghost run. Each time: ghost run's output has every line once and in
# order, every input line is echoed in order (also lines the process had
# not read yet when it moved), and ghost run returns the process's exit
# status or its death by signal.
#  1. started on node 1 by a client of node 2 (pipes): 1->2->3->1... nine
#     times, back through the caller's node, input fed all along; stdin's
#     O_NONBLOCK kept; exits 7; and seq, moved three times in a row while
#     nobody reads its output (pipes and window full), then read slowly:
#     every byte once, in order (both kinds of start);
#  2. started on the client's own node (the process has the client's
#     stdio): the client starts relaying once it leaves; SIGTERM to ghost
#     run reaches it on its last node: 143; the end of input goes along
#     with the lines before it, on both kinds of start;
#  3. with a terminal (attached-tty.py), both ways: a pty of the same
#     settings and size as its controlling terminal where it goes, typed
#     lines, a window size change, Ctrl-C;
#  4. a failed move (the destination's pid_max is below the PID) leaves the
#     session as it was, then the move succeeds;
#  5. ghost fork of an attached process: the copy runs detached, with a log.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
HERE=$(realpath "$(dirname "$0")")
CHATTER=$HERE/chatter
[ -n "${CHATTER_BIN:-}" ] && CHATTER=$CHATTER_BIN

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"
CTL2=$GHOST_CLUSTER_DIR/node2/ghostd.sock

node_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"': print(p["node"])'
}

# pid_of TAG: the PID of the chatter started with TAG, waiting for it.
pid_of() {
	local pid
	for _ in $(seq 200); do
		pid=$("$GHOST" ps --json | python3 -c '
import json, sys
print(*[p["pid"] for p in json.load(sys.stdin) if p["command"].endswith(" '"$1"'")])')
		[ -n "$pid" ] && { echo "$pid"; return 0; }
		sleep 0.05
	done
	return 1
}

# wait_for FILE REGEX: until a line of FILE matches (at most 20 s).
wait_for() {
	for _ in $(seq 400); do
		grep -q -E "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "# no line matching '$2' in $1"
	return 1
}

# count_ok FILE WORD: the "WORD N" lines of FILE are N = 1, 2, 3, ... once
# each, at least 10 of them.
count_ok() {
	awk -v w="$2" '$1 == w { if ($2 != n + 1) { print "# " w " " $2 " after " n; bad = 1; exit 1 } n = $2 }
	     END { if (n < 10) { print "# only " n " " w " lines"; bad = 1 } exit bad }' "$1"
}

# echoes_ok FILE N: "echo line 1" .. "echo line N" in order, once each.
echoes_ok() {
	[ "$(grep '^echo line ' "$1")" = "$(seq 1 "$2" | sed 's/^/echo line /')" ] ||
		{ echo "# echoed: $(grep -c '^echo line ' "$1") of $2"; return 1; }
}

# move PID NODE: ghost migrate, which must succeed.
moves_ok=0
moves_bad=0
move() {
	if "$GHOST" migrate "$1" "$2" > /dev/null 2> "$TEST_TMP/move.err" &&
		[ "$(node_of "$1")" = "$2" ]; then
		moves_ok=$((moves_ok + 1))
	else
		moves_bad=$((moves_bad + 1))
		echo "# move of $1 to node $2: $(cat "$TEST_TMP/move.err")"
	fi
}

# feed FD FIRST LAST: lines "line FIRST" .. "line LAST", a few at a time.
feed() {
	for i in $(seq "$2" "$3"); do
		echo "line $i" >&"$1"
		[ $((i % 5)) = 0 ] && sleep 0.02
	done
}

# 1. Remote, pipes: a client of node 2 runs it on node 1.
T=$TEST_TMP/remote
mkfifo "$T.in"
GHOST_CONTROL=$CTL2 "$GHOST" run --node 1 -- "$CHATTER" 5 remote < "$T.in" > "$T.out" 2> "$T.err" &
rp=$!
echo "$rp $(proc_start $rp)" >> "$TEST_TMP/pids"
exec 3> "$T.in"
pid=$(pid_of remote) || fatal "the remote chatter starts"
check_eq "it runs on node 1" 1 "$(node_of "$pid")"
echo nonblock >&3
wait_for "$T.out" '^nonblock set$' || not_ok "stdin made non-blocking"
feed 3 1 150 &
feeder=$!
moves_ok=0 moves_bad=0
for to in 2 3 1 2 3 1; do
	move "$pid" "$to"
done
wait "$feeder"
# Lines it has not read when it moves go with it: it holds, we type, it moves.
echo hold >&3
wait_for "$T.out" '^held$' || not_ok "it holds"
feed 3 151 160
move "$pid" 2
"$GHOST" kill -USR1 "$pid"
feed 3 161 200 &
feeder=$!
move "$pid" 3
move "$pid" 1
wait "$feeder"
check_eq "nine moves 1->2->3->1, through the caller's node, while input is fed" "9 0" \
	"$moves_ok $moves_bad"
echo flags >&3
wait_for "$T.out" '^flags ' || not_ok "flags answered"
check_eq "its stdin is still non-blocking, stdout and stderr blocking" "flags nonblock=1 0 0" \
	"$(grep '^flags ' "$T.out")"
wait_for "$T.out" '^echo line 200$' || true
echo "exit 7" >&3
exec 3>&-
wait "$rp"
check_eq "ghost run returns its exit status, 7" 7 $?
check "every line it wrote on stdout is there once, in order" count_ok "$T.out" out
check "  ... and on stderr" count_ok "$T.err" err
check "every input line was echoed, in order, also those it had not read when it moved" \
	echoes_ok "$T.out" 200
check_eq "nothing after its last words" bye "$(tail -1 "$T.out")"

# 1b. Back-pressure: a reader that takes nothing until told to, then reads
# slowly; seq moves meanwhile, with its pipes and the window full.
for how in remote local; do
	T=$TEST_TMP/seq-$how
	mkfifo "$T.fifo"
	( while [ ! -e "$T.go" ]; do sleep 0.05; done; while read -r l; do echo "$l"; done ) \
		< "$T.fifo" > "$T.out" 2>/dev/null &
	reader=$!
	if [ $how = remote ]; then
		GHOST_CONTROL=$CTL2 "$GHOST" run --node 1 -- seq 1 200000 > "$T.fifo" &
	else
		"$GHOST" run -- seq 1 200000 > "$T.fifo" &
	fi
	rp=$!
	echo "$rp $(proc_start $rp)" >> "$TEST_TMP/pids"
	pid=$(pid_of 200000) || fatal "seq starts ($how)"
	moves_ok=0 moves_bad=0
	for to in 2 3 1; do
		move "$pid" "$to"
	done
	touch "$T.go"
	while kill -0 "$rp" 2>/dev/null && [ -n "$(node_of "$pid")" ]; do
		for to in 2 3 1; do
			"$GHOST" migrate "$pid" "$to" > /dev/null 2>&1 || break
		done
	done
	wait "$rp"
	check_eq "$how: seq, moved three times while nobody read its output, exits 0" "0 3 0" \
		"$? $moves_ok $moves_bad"
	wait "$reader"
	check "$how: its output is all there, once, in order" cmp -s "$T.out" <(seq 1 200000)
done

# 2. Local: the process has the client's own stdio until it leaves node 1.
T=$TEST_TMP/local
mkfifo "$T.in"
"$GHOST" run -- "$CHATTER" 5 local < "$T.in" > "$T.out" 2> "$T.err" &
rp=$!
echo "$rp $(proc_start $rp)" >> "$TEST_TMP/pids"
exec 3> "$T.in"
pid=$(pid_of local) || fatal "the local chatter starts"
check_eq "it runs on the client's node, 1" 1 "$(node_of "$pid")"
echo hold >&3
wait_for "$T.out" '^held$' || not_ok "it holds"
feed 3 1 10
moves_ok=0 moves_bad=0
move "$pid" 2
"$GHOST" kill -USR1 "$pid"
feed 3 11 100 &
feeder=$!
for to in 3 1 2 3 1; do
	move "$pid" "$to"
done
wait "$feeder"
check_eq "six moves 1->2->3->1, back to the client's node" "6 0" "$moves_ok $moves_bad"
wait_for "$T.out" '^echo line 100$' || true
kill -TERM "$rp"
exec 3>&-
wait "$rp"
check_eq "SIGTERM to ghost run kills it on its last node: 143" 143 $?
check "every line it wrote on stdout is there once, in order" count_ok "$T.out" out
check "  ... and on stderr" count_ok "$T.err" err
check "every input line was echoed, in order, also those it had not read when it left" \
	echoes_ok "$T.out" 100

# 2b. The end of its input goes along too, with the lines before it, on
# both kinds of start.
for how in remote local; do
	T=$TEST_TMP/eof-$how
	mkfifo "$T.in"
	if [ $how = remote ]; then
		GHOST_CONTROL=$CTL2 "$GHOST" run --node 1 -- "$CHATTER" 5 "eof-$how" < "$T.in" \
			> "$T.out" 2> /dev/null &
	else
		"$GHOST" run -- "$CHATTER" 5 "eof-$how" < "$T.in" > "$T.out" 2> /dev/null &
	fi
	rp=$!
	echo "$rp $(proc_start $rp)" >> "$TEST_TMP/pids"
	exec 3> "$T.in"
	pid=$(pid_of "eof-$how") || fatal "the chatter starts ($how)"
	echo hold >&3
	wait_for "$T.out" '^held$' || not_ok "it holds ($how)"
	feed 3 1 3
	exec 3>&-
	moves_ok=0 moves_bad=0
	move "$pid" 2
	move "$pid" 3
	"$GHOST" kill -USR1 "$pid"
	wait_for "$T.out" '^eof$' || true
	check_eq "$how: lines it had not read and the end of input go along two moves" \
		"2 0 held|released|echo line 1|echo line 2|echo line 3|eof" \
		"$moves_ok $moves_bad $(grep -v '^out ' "$T.out" | paste -s -d '|')"
	"$GHOST" kill -INT "$pid"
	wait "$rp"
	check_eq "$how: ghost run reports its death by SIGINT: 130" 130 $?
done

# 3. A terminal, local and remote.
python3 "$HERE/attached-tty.py" "$GHOST" "$CHATTER" tty-local 2,3,1,2,3 > "$TEST_TMP/tty.tap"
GHOST_CONTROL=$CTL2 python3 "$HERE/attached-tty.py" "$GHOST" "$CHATTER" tty-remote 2,3,1,2 \
	--node 1 >> "$TEST_TMP/tty.tap"
n_tap=0
while IFS= read -r line; do
	n_tap=$((n_tap + 1))
	case $line in
	"ok - "*) ok "terminal: ${line#ok - }" ;;
	*) not_ok "terminal: ${line#not ok - }" ;;
	esac
done < "$TEST_TMP/tty.tap"
check "the terminal checks ran" test "$n_tap" -gt 40

# 4. A failed move leaves the session as it was.
T=$TEST_TMP/fault
mkfifo "$T.in"
GHOST_CONTROL=$CTL2 "$GHOST" run --node 1 -- "$CHATTER" 5 fault < "$T.in" > "$T.out" 2> "$T.err" &
rp=$!
echo "$rp $(proc_start $rp)" >> "$TEST_TMP/pids"
exec 3> "$T.in"
pid=$(pid_of fault) || fatal "the chatter starts"
feed 3 1 10
max3=$("$GHOST" cluster exec 3 -- cat /proc/sys/kernel/pid_max)
"$GHOST" cluster exec 3 -- sh -c 'echo 50000 > /proc/sys/kernel/pid_max'
"$GHOST" migrate "$pid" 3 > /dev/null 2> "$TEST_TMP/err"
st=$?
"$GHOST" cluster exec 3 -- sh -c "echo $max3 > /proc/sys/kernel/pid_max"
check_eq "no PID on the destination: migrate exits 1 with one line" "1 1" \
	"$st $(wc -l < "$TEST_TMP/err")"
echo "# $(cat "$TEST_TMP/err")"
check_eq "  ... and it stays on node 1" 1 "$(node_of "$pid")"
check_eq "  ... no copy left on node 3" "" \
	"$("$GHOST" cluster exec 3 -- sh -c "cat /proc/$pid/comm 2>/dev/null")"
before=$(grep -c '^out' "$T.out")
feed 3 11 20
check "  ... input still reaches it" wait_for "$T.out" '^echo line 20$'
check "  ... and its output goes on" wait_for "$T.out" "^out $((before + 20))\$"
moves_ok=0 moves_bad=0
move "$pid" 3
feed 3 21 30
move "$pid" 2
check_eq "then it moves to node 3 and on to node 2" "2 0" "$moves_ok $moves_bad"
wait_for "$T.out" '^echo line 30$' || true
echo "exit 5" >&3
exec 3>&-
wait "$rp"
check_eq "  ... and ghost run returns its exit status, 5" 5 $?
check "all its output, once, in order" count_ok "$T.out" out
check "every input line was echoed, in order" echoes_ok "$T.out" 30

# 5. ghost fork of an attached process: the copy runs detached, with a log.
T=$TEST_TMP/fork
mkfifo "$T.in"
GHOST_CONTROL=$CTL2 "$GHOST" run --node 1 -- "$CHATTER" 5 forked < "$T.in" > "$T.out" 2> "$T.err" &
rp=$!
echo "$rp $(proc_start $rp)" >> "$TEST_TMP/pids"
exec 3> "$T.in"
pid=$(pid_of forked) || fatal "the chatter starts"
feed 3 1 5
wait_for "$T.out" '^echo line 5$' || true
"$GHOST" fork --json "$pid" 3 > "$TEST_TMP/fork.json" 2> "$TEST_TMP/err"
check_eq "fork of an attached process exits 0" "0 " "$? $(cat "$TEST_TMP/err")"
copy=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$TEST_TMP/fork.json")
check_eq "the copy runs detached on node 3" "3 1" "$("$GHOST" ps --json | python3 -c '
import json, sys
print(*["%d %d" % (p["node"], p.get("detached", False)) for p in json.load(sys.stdin)
        if p["pid"] == '"$copy"'])')"
for _ in $(seq 200); do
	[ "$("$GHOST" logs "$copy" 2>/dev/null | grep -c '^out')" -ge 10 ] && break
	sleep 0.05
done
"$GHOST" logs "$copy" > "$TEST_TMP/copy.log" 2>&1
check "its log has its output, counting on from where the original was" python3 -c '
import sys
lines = open(sys.argv[1]).read().split("\n")
n = [int(l.split()[1]) for l in lines if l.startswith("out ")]
sys.exit(0 if len(n) >= 10 and n[0] > 1 and n == list(range(n[0], n[0] + len(n))) else 1)' \
	"$TEST_TMP/copy.log"
check "  ... and its stdin is /dev/null" grep -q '^eof$' "$TEST_TMP/copy.log"
"$GHOST" kill -KILL "$copy"
feed 3 6 10
check "the original is still attached" wait_for "$T.out" '^echo line 10$'
echo "kill 9" >&3
exec 3>&-
wait "$rp"
check_eq "  ... and ghost run reports its death by SIGKILL: 137" 137 $?
check "  ... with all its output" count_ok "$T.out" out

"$GHOST" cluster down > /dev/null
check_eq "cluster down" 0 $?
check_no_leftovers
finish
