#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Three ghostd daemons on 127.0.0.1: detached processes, `ghost ps` of the
# whole cluster, `ghost logs` and `ghost kill` wherever the process runs,
# what a user other than root may and may not do, and control requests
# that are garbage.
. "$(dirname "$0")/lib.sh"
parse_args "$@"

start_cluster 3 3000 || fatal "3 daemons start and see each other up"
ok "3 daemons start and see each other up"
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

# Detached processes on every node, started from node 1.
p1=$(g 1 run -d -- sh -c 'echo one; sleep 60')
p2=$(g 1 run -d --node 2 -- sh -c 'echo two; echo two-err >&2; sleep 60')
p3=$(g 1 run -d --node 3 -- sh -c 'echo three; exit 5')
check "run -d prints PIDs ($p1 $p2 $p3)" test -n "$p1" -a -n "$p2" -a -n "$p3"
check "the PIDs come from the nodes' ranges" \
	test "$((p1 / 100000)) $((p2 / 100000)) $((p3 / 100000))" = "1 2 3"
sleep 0.3

json=$(g 3 ps --json)
check "ps --json is valid JSON" sh -c "echo '$json' | python3 -m json.tool > /dev/null"
check_eq "ps --json (asked on node 3) lists the running ones with node, user and command" \
	"$p1 1 root sh -c echo one; sleep 60|$p2 2 root sh -c echo two; echo two-err >&2; sleep 60" \
	"$(echo "$json" | python3 -c '
import json, sys
print("|".join("%d %d %s %s" % (p["pid"], p["node"], p["user"], p["command"])
               for p in json.load(sys.stdin)))')"
check "ps --json shows memory and state" sh -c "echo '$json' | python3 -c '
import json, sys
p = json.load(sys.stdin)
sys.exit(0 if all(x[\"rss_kib\"] > 0 and x[\"state\"] in (\"sleeping\", \"running\") for x in p) else 1)'"
check_eq "ps -a also lists the exited one, with its status" "exited 5" \
	"$(g 2 ps -a --json | python3 -c '
import json, sys
print(*["%s %d" % (p["state"], p["exit_code"]) for p in json.load(sys.stdin) if p["pid"] == '"$p3"'])')"
check_eq "ps (table) has a header and 2 lines" 3 "$(g 2 ps | wc -l)"
check_eq "nodes counts the processes" "1 1 0" "$(g 1 nodes | awk 'NR > 1 {printf "%s%s", sep, $5; sep = " "}')"

# Logs, from any node.
check_eq "logs of a process on node 2, asked on node 1" "two
two-err" "$(g 1 logs "$p2")"
check_eq "logs of an exited process on node 3, asked on node 2" "three" "$(g 2 logs "$p3")"
check_eq "logs on the local node" "one" "$(g 1 logs "$p1")"
g 1 logs 123 2>"$TEST_TMP/err"
check_eq "logs of no managed process" "1 ghost: no managed process 123: no node hands out that PID" \
	"$? $(cat "$TEST_TMP/err")"
q=$(g 1 run --node 2 -- sh -c 'echo $$')
g 1 logs "$q" 2>"$TEST_TMP/err"
check_eq "logs of a process that was not detached" "1 ghost: no managed process $q" \
	"$? $(cat "$TEST_TMP/err")"

# Kill, from any node.
g 3 kill -TERM "$p2"
check_eq "kill -TERM a process of node 2 from node 3" 0 $?
sleep 0.3
check_eq "it is gone from ps, listed as killed by ps -a" "killed 15" \
	"$(g 1 ps -a --json | python3 -c '
import json, sys
print(*["killed %d" % p["exit_signal"] for p in json.load(sys.stdin) if p["pid"] == '"$p2"'])')"
g 1 kill "$p2" 2>"$TEST_TMP/err"
check_eq "killing it again fails clearly" "1 ghost: process $p2 has exited" "$? $(cat "$TEST_TMP/err")"
g 1 kill 250000 2>"$TEST_TMP/err"
check_eq "an unknown PID of a node's range" "1 ghost: no managed process 250000" \
	"$? $(cat "$TEST_TMP/err")"
g 1 kill -s 0 "$p1"
check_eq "kill -s 0 checks a live process" 0 $?
g 1 kill -NOSUCH "$p1" 2>/dev/null
check_eq "an unknown signal is a usage error" 2 $?
g 1 kill 2>/dev/null
check_eq "kill without a PID is a usage error" 2 $?

# A user other than root.
check_eq "nobody may run on another node, as nobody" "65534 65534" \
	"$(cd / && $NOBODY env GHOST_CONTROL="$(node_ctl 1)" "$GHOST" run --node 3 -- sh -c 'echo $(id -u) $(id -g)')"
check_eq "... and on the local node" "65534" \
	"$(cd / && $NOBODY env GHOST_CONTROL="$(node_ctl 1)" "$GHOST" run -- id -u)"
$NOBODY env GHOST_CONTROL="$(node_ctl 2)" "$GHOST" kill "$p1" 2>"$TEST_TMP/err"
check_eq "nobody cannot kill root's process" \
	"1 ghost: not allowed to signal process $p1: it belongs to another user" \
	"$? $(cat "$TEST_TMP/err")"
$NOBODY env GHOST_CONTROL="$(node_ctl 2)" "$GHOST" logs "$p1" 2>"$TEST_TMP/err"
check_eq "nobody cannot read root's log" "1 ghost: process $p1 belongs to another user" \
	"$? $(cat "$TEST_TMP/err")"
n1=$(cd / && $NOBODY env GHOST_CONTROL="$(node_ctl 1)" "$GHOST" run -d --node 2 -- sleep 60)
check_eq "nobody's detached process is nobody's" "nobody" \
	"$(g 3 ps --json | python3 -c '
import json, sys
print(*[p["user"] for p in json.load(sys.stdin) if p["pid"] == '"$n1"'])')"
$NOBODY env GHOST_CONTROL="$(node_ctl 3)" "$GHOST" kill "$n1"
check_eq "nobody may kill their own process on another node" 0 $?
check "the process still running is root's alone" sh -c "GHOST_CONTROL='$(node_ctl 1)' '$GHOST' kill -s 0 '$p1'"

# Garbage on the control socket harms nothing.
python3 - "$(node_ctl 1)" > "$TEST_TMP/garbage" 2>&1 <<'PY'
import os, socket, struct, sys
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(5)
    return s
def answer(s):
    try:
        return s.recv(4096)
    except Exception as e:
        return repr(e).encode()
hdr = lambda ver, typ, n: struct.pack('<IHHI', 0x54534847, ver, typ, n)
tests = [
    ("random bytes", os.urandom(4096)),
    ("a future version", hdr(99, 1, 0)),
    ("an oversized frame", hdr(1, 1, 0xffffffff)),
    ("an unknown request", hdr(1, 77, 0)),
    ("attributes longer than the frame", hdr(1, 5, 8) + struct.pack('<HHI', 7, 0, 100)),
    ("a run without fds", hdr(1, 5, 12) + struct.pack('<HHI', 7, 0, 4) + b'true'),
]
for name, data in tests:
    s = conn()
    s.sendall(data)
    a = answer(s)
    print(name, "->", "error" if a[6:8] == struct.pack('<H', 100) else a)
    s.close()
for i in range(3):   # half a frame, then gone
    s = conn()
    s.sendall(hdr(1, 5, 1000) + b'x' * 10)
    s.close()
many = [conn() for i in range(100)]
for s in many:
    s.close()
PY
check_eq "every garbage request gets an error" 6 "$(grep -c -- '-> error$' "$TEST_TMP/garbage")"
check_eq "the daemon still serves" "self" "$(node_state 1 1)"
check_eq "and still runs processes" "fine" "$(g 1 run --node 2 -- echo fine)"
finish
