#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Three ghostd daemons on 127.0.0.1: membership, `ghost run` on the local
# node and across nodes (output, exit status, stdin, death by signal,
# forwarded signals, a pseudo-terminal, a command that is not there), and
# global PIDs from each node's own range.
. "$(dirname "$0")/lib.sh"
parse_args "$@"

start_cluster 3 3000 || fatal "3 daemons start and see each other up"
ok "3 daemons start and see each other up"

check_eq "node 1 sees self, up, up" "self up up" \
	"$(g 1 nodes | awk 'NR > 1 {printf "%s%s", sep, $3; sep = " "}')"
check_eq "node 2 sees up, self, up" "up self up" \
	"$(g 2 nodes | awk 'NR > 1 {printf "%s%s", sep, $3; sep = " "}')"
check "nodes --json is valid JSON" sh -c "GHOST_CONTROL='$(node_ctl 3)' '$GHOST' nodes --json | python3 -m json.tool >/dev/null"
check_eq "nodes --json: 3 nodes, node 3 is self" "3 self" "$(g 3 nodes --json | python3 -c '
import json, sys
n = json.load(sys.stdin)
print(len(n), [x["state"] for x in n if x["id"] == 3][0])')"

# Output and exit status, from a caller attached to node 1.
out=$(g 1 run --node 2 -- sh -c 'echo hi; exit 3')
st=$?
check_eq "run --node 2: output" "hi" "$out"
check_eq "run --node 2: exit status" 3 "$st"
out=$(g 1 run -- sh -c 'echo local; exit 4')
st=$?
check_eq "run on the local node: output" "local" "$out"
check_eq "run on the local node: exit status" 4 "$st"
out=$(g 1 run --node 3 -- sh -c 'echo out; echo err >&2' 2>"$TEST_TMP/err")
check_eq "run --node 3: stdout" "out" "$out"
check_eq "run --node 3: stderr" "err" "$(cat "$TEST_TMP/err")"

# Input.
check_eq "stdin is relayed to node 3" "data" "$(echo data | g 1 run --node 3 -- cat)"
check_eq "stdin on the local node" "data" "$(echo data | g 1 run -- cat)"
seq 1 300000 > "$TEST_TMP/big"
check_eq "2 MB through node 2 and back, in order" "$(md5sum < "$TEST_TMP/big")" \
	"$(g 1 run --node 2 -- cat < "$TEST_TMP/big" | md5sum)"
check_eq "2 MB of output from node 3" "$(md5sum < "$TEST_TMP/big")" \
	"$(g 1 run --node 3 -- seq 1 300000 | md5sum)"
check_eq "no stdin reads end of file" "0" "$(g 1 run --node 2 -- wc -c < /dev/null)"

# Death by signal, and signals sent to ghost run.
g 1 run --node 2 -- sh -c 'kill -KILL $$'
check_eq "killed by SIGKILL on node 2: 128+9" 137 $?
g 1 run -- sh -c 'kill -SEGV $$'
check_eq "killed by SIGSEGV on the local node: 128+11" 139 $?
bg_g 1 run --node 3 -- sleep 30 &
c=$!
remember $c
sleep 0.5
kill -INT $c
wait $c
check_eq "SIGINT to ghost run reaches the process on node 3" 130 $?
bg_g 1 run -- sleep 30 &
c=$!
remember $c
sleep 0.5
kill -TERM $c
wait $c
check_eq "SIGTERM to ghost run reaches the local process" 143 $?
bg_g 1 run --node 2 -- sh -c 'trap "echo hup; exit 9" HUP; sleep 30 & wait' > "$TEST_TMP/hup" &
c=$!
remember $c
sleep 0.5
kill -HUP $c
wait $c
st=$?
check_eq "a process may catch the forwarded SIGHUP" "9 hup" "$st $(cat "$TEST_TMP/hup")"
g 1 run --node 2 -- yes | head -1 > /dev/null
check_eq "a closed reader ends the remote writer with SIGPIPE" 141 "${PIPESTATUS[0]}"
g 1 run --node 3 -- sh -c 'trap "" PIPE; yes 2>/dev/null; exit 7' | head -1 > /dev/null
check_eq "... or with EPIPE, and its own exit status comes back" 7 "${PIPESTATUS[0]}"

# Commands that cannot run.
g 1 run --node 2 -- /nonexistent/cmd 2>"$TEST_TMP/err"
check_eq "a missing command exits 127" 127 $?
check_eq "... with one line" "ghost: cannot run '/nonexistent/cmd' on node 2: No such file or directory" \
	"$(cat "$TEST_TMP/err")"
g 1 run --node 9 -- true 2>"$TEST_TMP/err"
check_eq "an unknown node is a failure" "1 ghost: no node 9 in the cluster" "$? $(cat "$TEST_TMP/err")"
g 1 run 2>/dev/null
check_eq "run without a command is a usage error" 2 $?
check "run --help" sh -c "'$GHOST' run --help | grep -q '^Usage: ghost run'"

# Environment and working directory come along.
check_eq "environment" "yes" "$(FOO=yes g 1 run --node 3 -- sh -c 'echo $FOO')"
check_eq "working directory" "$TEST_TMP" "$(cd "$TEST_TMP" && g 1 run --node 2 -- pwd)"

# A terminal on both ends: a pseudo-terminal on the remote node. (script
# may type a byte of its own into the terminal when its stdin ends; the
# remote terminal echoes it: look for the lines, not at the first byte.)
if command -v script >/dev/null; then
	out=$(GHOST_CONTROL=$(node_ctl 1) timeout 10 script -qec "stty rows 33 cols 77; '$GHOST' run --node 2 -- sh -c 'tty; stty size'" /dev/null | tr -d '\r')
	check "a terminal caller gets a pseudo-terminal on node 2" sh -c "echo '$out' | grep -q '/dev/pts/[0-9]'"
	check "... with the caller's window size" sh -c "echo '$out' | grep -q '33 77$'"
	out=$(GHOST_CONTROL=$(node_ctl 1) timeout 10 script -qec "'$GHOST' run -T --node 2 -- sh -c 'tty'" /dev/null | tr -d '\r')
	check_eq "-T: no pseudo-terminal" "not a tty" "$out"
fi

# Global PIDs: each node hands out its own range.
for i in 1 2 3; do
	p=$(g 1 run --node $i -- sh -c 'echo $$')
	check "a PID of node $i is in [${i}00000, ${i}99999]: $p" \
		test "$p" -ge $((i * 100000)) -a "$p" -le $((i * 100000 + 99999))
done
p1=$(g 2 run --node 3 -d -- sleep 30)
p2=$(g 3 run --node 3 -d -- sleep 30)
check "two processes of node 3 get different PIDs ($p1, $p2)" test "$p1" != "$p2"
g 1 kill -KILL "$p1" "$p2"
finish
