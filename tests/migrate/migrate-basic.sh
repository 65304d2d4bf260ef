#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ghost migrate on a 3-node local cluster: a process with a heap, a file it
# appends to, a signal handler and a timer moves 1->2->3->1 twenty times
# under load, keeps its PID, its output stays continuous, signals sent with
# ghost kill meanwhile arrive, and it verifies its own state at the end;
# python3 running a script moves and finishes with the right result; bad
# requests get one clear line and leave the process where it was; ghost
# fork makes a copy with a new PID that goes on independently; a stopped
# process moves and stays stopped; a process attached to a ghost run moves
# too.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
MIGRANT=$(realpath "$(dirname "$0")")/migrant
[ -n "${MIGRANT_BIN:-}" ] && MIGRANT=$MIGRANT_BIN

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
ok "cluster up --nodes 3"

# ticks_ok FILE: the ticks in FILE are 1, 2, 3, ... without a gap or a repeat.
ticks_ok() {
	awk '$1 == "tick" { if ($2 != n + 1) { print "tick " $2 " after " n; bad = 1; exit 1 } n = $2 }
	     END { exit bad }' "$1"
}

node_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"': print(p["node"])'
}

# 1. Twenty round trips under load.
out=$TEST_TMP/migrant.out
load=$("$GHOST" run -d --node 2 -- sh -c 'while :; do :; done')
pid=$("$GHOST" run -d -- "$MIGRANT" "$out" 32)
[ -n "$pid" ] || fatal "run -d the migrant"
sleep 0.3
check_eq "the migrant runs on node 1" 1 "$(node_of "$pid")"
moves_ok=0
route=(2 3 1)
for i in $(seq 0 59); do
	to=${route[$((i % 3))]}
	if "$GHOST" migrate --json "$pid" "$to" > "$TEST_TMP/move.json" 2> "$TEST_TMP/err"; then
		got=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["pid"], j["to"], int(j["image_bytes"] > 32 << 20), int(j["frozen_ms"] > 0))' "$TEST_TMP/move.json")
		if [ "$got" = "$pid $to 1 1" ] && [ "$(node_of "$pid")" = "$to" ]; then
			moves_ok=$((moves_ok + 1))
		else
			echo "# move $i: $got, ps says node $(node_of "$pid")"
		fi
	else
		echo "# move $i to node $to failed: $(cat "$TEST_TMP/err")"
	fi
	"$GHOST" kill -USR1 "$pid"
	sleep 0.1
done
check_eq "20 times 1->2->3->1 under load, each move reported with its PID, node, size and freeze" \
	60 "$moves_ok"
check_eq "ps shows it back on node 1" 1 "$(node_of "$pid")"
before=$(grep -c '^tick' "$out")
sleep 0.3
check "it keeps running after the last move" test "$(grep -c '^tick' "$out")" -gt "$before"
"$GHOST" kill -TERM "$pid"
for _ in $(seq 100); do
	grep -q '^verified' "$out" && break
	sleep 0.05
done
check_eq "it verifies its heap, PID, file, handlers and timer, and got the 60 SIGUSR1" \
	"verified ok usr1=60" "$(grep '^verified' "$out" | cut -d' ' -f1-3)"
check "its output is continuous: every tick once, in order" ticks_ok "$out"
check_eq "every line was written with the same PID" 1 \
	"$(awk '$1 == "tick" {print $3}' "$out" | sort -u | wc -l)"
"$GHOST" kill -KILL "$load"

# 2. python3 running a script.
cat > "$TEST_TMP/job.py" <<'EOF'
import sys, time
total = 0
for i in range(1, 31):
    total += sum(j * j for j in range(i * 1000))
    time.sleep(0.05)
print("result", total, flush=True)
EOF
expect=$(python3 -c 'print("result", sum(sum(j * j for j in range(i * 1000)) for i in range(1, 31)))')
py=$("$GHOST" run -d -- python3 "$TEST_TMP/job.py")
sleep 0.2
"$GHOST" migrate "$py" 3 > "$TEST_TMP/out" 2>&1
check_eq "python3 moves to node 3" "process $py moved from node 1 to node 3" \
	"$(cut -d: -f1 "$TEST_TMP/out")"
"$GHOST" migrate "$py" 2 > /dev/null
check_eq "  ... and on to node 2" 2 "$(node_of "$py")"
for _ in $(seq 100); do
	"$GHOST" logs "$py" 2>/dev/null | grep -q result && break
	sleep 0.1
done
check_eq "  ... and prints the right result" "$expect" "$("$GHOST" logs "$py")"
# Its last line comes a moment before its end.
for _ in $(seq 100); do
	st=$("$GHOST" ps -a --json | python3 -c '
import json, sys
print(*["%s %d" % (p["state"], p.get("exit_code", -1)) for p in json.load(sys.stdin) if p["pid"] == '"$py"'])')
	[ "$st" = running\ -1 ] || [ "$st" = sleeping\ -1 ] || break
	sleep 0.05
done
check_eq "  ... and exits 0" "exited 0" "$st"

# 3. ghost fork: two copies from the same starting point, independent after.
cat > "$TEST_TMP/count.py" <<'EOF'
import os, sys, time
n = 0
while True:
    n += 1
    sys.stdout.write("%d %d\n" % (os.getpid(), n))
    sys.stdout.flush()
    time.sleep(0.02)
EOF
orig=$("$GHOST" run -d -- python3 "$TEST_TMP/count.py")
sleep 0.3
"$GHOST" fork --json "$orig" 3 > "$TEST_TMP/fork.json" 2> "$TEST_TMP/err"
check_eq "fork exits 0" 0 $?
json_get() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$@"
}
copy=$(json_get "$TEST_TMP/fork.json" pid)
check_eq "the copy has a PID of node 3's range, and names its original" "3 $orig" \
	"$((copy / 100000)) $(json_get "$TEST_TMP/fork.json" forked_from)"
sleep 0.5
check_eq "ps shows both, the copy on node 3 with its origin" "$orig 1 0|$copy 3 $orig" \
	"$("$GHOST" ps --json | python3 -c '
import json, sys
print("|".join("%d %d %d" % (p["pid"], p["node"], p.get("forked_from", 0))
               for p in json.load(sys.stdin) if p["pid"] in ('"$orig"', '"$copy"')))')"
"$GHOST" kill -KILL "$orig" "$copy"
sleep 0.2
"$GHOST" logs "$orig" > "$TEST_TMP/both"
check "the copy counts on from where the original was when it was copied" python3 -c '
import sys
o, c = [], []
for line in open(sys.argv[1]):
    pid, n = map(int, line.split())
    (o if pid == '"$orig"' else c).append(n)
ok = (c and o and c[0] > 1 and c[0] - 1 in o and len(c) > 5 and len(o) > c[0] + 5
      and o == list(range(1, len(o) + 1)) and c == list(range(c[0], c[0] + len(c))))
sys.exit(0 if ok else 1)' "$TEST_TMP/both"

# 3b. A process stopped with SIGSTOP moves stopped and stays stopped (it
#     counts nothing) until SIGCONT, as after a checkpoint and restart.
state_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
print(*[p["state"] for p in json.load(sys.stdin) if p["pid"] == '"$1"'])'
}
stopped=$("$GHOST" run -d -- python3 "$TEST_TMP/count.py")
sleep 0.3
"$GHOST" kill -STOP "$stopped" > /dev/null
sleep 0.2
"$GHOST" migrate "$stopped" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "a stopped process moves" "0 " "$? $(cat "$TEST_TMP/err")"
before=$("$GHOST" logs "$stopped" | wc -l)
sleep 0.5
check_eq "  ... and is still stopped on node 2, counting nothing" "stopped $before" \
	"$(state_of "$stopped") $("$GHOST" logs "$stopped" | wc -l)"
"$GHOST" kill -CONT "$stopped" > /dev/null
sleep 0.5
check "  ... until SIGCONT: then it counts on" \
	test "$("$GHOST" logs "$stopped" | wc -l)" -gt "$before"
"$GHOST" kill -KILL "$stopped" > /dev/null

# 4. Bad requests: one line, exit 1, the process stays where it was.
victim=$("$GHOST" run -d -- sleep 600)
sleep 0.2
bad() {
	local what=$1 want=$2
	shift 2
	"$GHOST" "$@" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
	local st=$?
	check_eq "$what: exit 1, one line" "1 1 $want" \
		"$st $(wc -l < "$TEST_TMP/err") $(cat "$TEST_TMP/err")"
}
bad "unknown node" "ghost: no node 7 in the cluster" migrate "$victim" 7
"$GHOST" migrate "$victim" 0 > /dev/null 2>&1
check_eq "node 0 is a usage error" 2 $?
bad "not a managed PID" "ghost: no managed process 100999" migrate 100999 2
bad "a PID no node hands out" "ghost: no managed process 42: no node hands out that PID" \
	migrate 42 2
bad "the node it runs on" "ghost: process $victim already runs on node 1" migrate "$victim" 1
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
chmod 755 "$TEST_TMP"
GHOST_CONTROL=$GHOST_CLUSTER_DIR/node1/ghostd.sock $NOBODY "$GHOST" migrate "$victim" 2 > "$TEST_TMP/out" 2> "$TEST_TMP/err"
check_eq "another user's process: exit 1, one line" \
	"1 ghost: not allowed to move process $victim: it belongs to another user" \
	"$? $(cat "$TEST_TMP/err")"
attached_out=$TEST_TMP/attached
"$GHOST" run -- sleep 30 > "$attached_out" 2>&1 &
echo "$! $(proc_start $!)" >> "$TEST_TMP/pids"
sleep 0.3
att=$("$GHOST" ps --json | python3 -c '
import json, sys
print(*[p["pid"] for p in json.load(sys.stdin) if p["command"] == "sleep 30"])')
"$GHOST" migrate "$att" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "an attached process moves too (migrate-attached.sh has the rest)" "0 " \
	"$? $(cat "$TEST_TMP/err")"
check_eq "after all that, the process is still on node 1" 1 "$(node_of "$victim")"
check_eq "  ... and still sleeping" sleeping "$(state_of "$victim")"
"$GHOST" kill -KILL "$victim" "$att"

"$GHOST" cluster down > /dev/null
check_eq "cluster down" 0 $?
finish
