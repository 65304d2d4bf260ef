#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Memory checkpoints through the daemons, on a 3-node local cluster:
# checkpoint --memory on the process's own node (with --kill: the restart
# continues its count without a gap) and --on another node; ghost
# checkpoints in text and JSON with sizes; a restart while the PID still
# runs is refused and the process is untouched; a checkpoint kept on node 2
# restarts the process on node 3 after node 1's daemon was SIGKILLed (and
# the process with it), and the process verifies its own state; --drop ends
# the keeper and frees its memory; bad IDs; another user's checkpoints; a
# checkpoint larger than the node's checkpoint-memory is refused and the
# process goes on; the holder's daemon killed during a checkpoint --stop
# leaves the process running.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
MIGRANT=$(realpath "$(dirname "$0")")/migrant
[ -n "${MIGRANT_BIN:-}" ] && MIGRANT=$MIGRANT_BIN

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
record_cluster
ok "cluster up --nodes 3"
CTL1=$GHOST_CLUSTER_DIR/node1/ghostd.sock
CTL2=$GHOST_CLUSTER_DIR/node2/ghostd.sock
CTL3=$GHOST_CLUSTER_DIR/node3/ghostd.sock
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
chmod 755 "$TEST_TMP"

node_init() {
	"$GHOST" cluster status --json | grep -o "\"id\":$1,[^}]*" | grep -o '"pid":[0-9]*' |
		cut -d: -f2
}

daemon_of() {
	local d
	for d in $(children "$(node_init "$1")"); do
		[ "$(cat "/proc/$d/comm" 2>/dev/null)" = ghostd ] && echo "$d"
	done
}

# keepers NODE: the PIDs of the keeper processes of NODE's daemon.
keepers() {
	ps -o pid=,comm= --ppid "$(daemon_of "$1")" | awk '$2 == "ghost-keeper" {print $1}'
}

# json FILE KEY: one value of a JSON object.
json() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$@"
}

ticks() {
	grep -c '^tick' "$1"
}

# wait_ticks FILE N: until FILE has more than N ticks (at most 10 s).
wait_ticks() {
	for _ in $(seq 200); do
		[ "$(ticks "$1")" -gt "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# state_of PID: "NODE STATE" as ps says, through the daemon $GHOST_CONTROL names.
state_of() {
	"$GHOST" ps -a --json 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"': print(p["node"], p["state"])'
}

# verified FILE: SIGUSR1 then SIGTERM the migrant, and its verdict.
verify() {
	"$GHOST" kill -USR1 "$2"
	"$GHOST" kill -TERM "$2"
	for _ in $(seq 200); do
		grep -q '^verified' "$1" && break
		sleep 0.05
	done
	grep '^verified' "$1" | cut -d' ' -f1-3
}

# bad WHAT WANT ARGS...: ghost ARGS exits 1 with the one line WANT.
bad() {
	local what=$1 want=$2
	shift 2
	"$GHOST" "$@" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
	local st=$?
	check_eq "$what: exit 1, one line" "1 1 $want" \
		"$st $(wc -l < "$TEST_TMP/err") $(cat "$TEST_TMP/err")"
}

# 1. On the process's own node, with --kill: the restart goes on counting
# from where the checkpoint was, without a gap or a repeat.
outa=$TEST_TMP/a.out
a=$("$GHOST" run -d -- "$MIGRANT" "$outa" 8)
[ -n "$a" ] || fatal "run -d the first migrant"
wait_ticks "$outa" 5 || fatal "the first migrant ticks"
"$GHOST" checkpoint "$a" --memory --kill --json > "$TEST_TMP/a.json" 2> "$TEST_TMP/err"
check_eq "checkpoint --memory --kill exits 0" "0 " "$? $(cat "$TEST_TMP/err")"
ida=$(json "$TEST_TMP/a.json" id)
check_eq "  ... kept on node 1 with an ID of node 1, the process was on node 1, ended" \
	"1 1 1 $a killed" \
	"${ida%%.*} $(json "$TEST_TMP/a.json" holder) $(json "$TEST_TMP/a.json" node) $(json "$TEST_TMP/a.json" pid) $(json "$TEST_TMP/a.json" after)"
check "  ... its image is larger than its 8 MiB heap" \
	test "$(json "$TEST_TMP/a.json" image_bytes)" -gt $((8 << 20))
check_eq "  ... it has ended (ps -a) when ghost returns" "1 exited" "$(state_of "$a")"
k=$(ticks "$outa")
"$GHOST" restart --from-memory "$ida" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
check_eq "restart --from-memory on its holder (the default node)" \
	"0 process $a restarted on node 1 from checkpoint $ida" \
	"$? $(cut -d: -f1 "$TEST_TMP/out")$(cat "$TEST_TMP/err")"
check "  ... it ticks again" wait_ticks "$outa" $((k + 5))
check_eq "  ... ps shows it running on node 1" "1 sleeping" \
	"$(state_of "$a" | sed 's/running/sleeping/')"
"$GHOST" migrate "$a" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... it migrates to node 2 like any managed process" "0 2 sleeping" \
	"$? $(cat "$TEST_TMP/err")$(state_of "$a" | sed 's/running/sleeping/')"
"$GHOST" logs "$a" > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... and its log is found" "0 " "$? $(cat "$TEST_TMP/err")"
check_eq "  ... it verifies its heap, PID, file, handlers and timer" "verified ok usr1=1" \
	"$(verify "$outa" "$a")"
check "  ... and its count went on without a gap or a repeat" awk \
	'$1 == "tick" { if ($2 != n + 1) exit 1; n = $2 }' "$outa"

# 2. On another node; the list, in text and JSON.
outb=$TEST_TMP/b.out
b=$("$GHOST" run -d -- "$MIGRANT" "$outb" 32)
[ -n "$b" ] || fatal "run -d the second migrant"
wait_ticks "$outb" 5 || fatal "the second migrant ticks"
before=$(ticks "$outb")
"$GHOST" checkpoint "$b" --memory --on 2 --json > "$TEST_TMP/b.json" 2> "$TEST_TMP/err"
check_eq "checkpoint --memory --on 2 exits 0" "0 " "$? $(cat "$TEST_TMP/err")"
after=$(ticks "$outb")
idb=$(json "$TEST_TMP/b.json" id)
sizeb=$(json "$TEST_TMP/b.json" image_bytes)
check_eq "  ... kept on node 2 with an ID of node 2; the process runs on" "2 2 1 running" \
	"${idb%%.*} $(json "$TEST_TMP/b.json" holder) $(json "$TEST_TMP/b.json" node) $(json "$TEST_TMP/b.json" after)"
check "  ... its image is larger than its 32 MiB heap" test "$sizeb" -gt $((32 << 20))
check "  ... and it still runs (ticks go on)" wait_ticks "$outb" $((after + 3))
check_eq "a keeper on node 2 holds it, and one on node 1 the first one" "1 1" \
	"$(keepers 2 | wc -l) $(keepers 1 | wc -l)"
"$GHOST" checkpoints > "$TEST_TMP/list" 2> "$TEST_TMP/err"
check_eq "checkpoints lists both" "0 $ida $idb" \
	"$? $(awk 'NR > 1 && $1 ~ /^[0-9]+\.[0-9]+$/ {print $1}' "$TEST_TMP/list" | tr '\n' ' ' | sed 's/ $//')"
check_eq "  ... with holder, PID, node, user and size" "2 $b 1 root $(python3 -c "print('%.1fM' % ($sizeb / 1048576))")" \
	"$(awk -v id="$idb" '$1 == id {print $2, $3, $4, $5, $6}' "$TEST_TMP/list")"
check "  ... and each node's checkpoint memory" grep -q '^node 2: [0-9.]* MiB of [0-9.]* MiB' \
	"$TEST_TMP/list"
"$GHOST" checkpoints --json > "$TEST_TMP/list.json"
check_eq "checkpoints --json: ids, holders, PIDs, sizes, states" \
	"$ida 1 $a kept|$idb 2 $b $sizeb kept" \
	"$(python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
print("|".join(" ".join(str(x) for x in ([c["id"], c["holder"], c["pid"]] + ([c["image_bytes"]] if c["holder"] == 2 else []) + [c["state"]])) for c in l))' "$TEST_TMP/list.json")"

# 3. Restarting while the PID still runs is refused; the process is untouched.
bad "restart while the process runs" \
	"ghost: cannot restart checkpoint $idb on node 3: process $b still runs on node 1: end it first (ghost kill -KILL $b)" \
	restart --from-memory "$idb" --node 3
bad "  ... also on its own node" \
	"ghost: cannot restart checkpoint $idb on node 1: process $b still runs on node 1: end it first (ghost kill -KILL $b)" \
	restart --from-memory "$idb" --node 1
check_eq "  ... it still runs on node 1, not stopped" "1 sleeping" \
	"$(state_of "$b" | sed 's/running/sleeping/')"
n=$(ticks "$outb")
check "  ... and ticks on" wait_ticks "$outb" $((n + 3))
check_eq "  ... nothing of it on node 3" "" \
	"$("$GHOST" cluster exec 3 -- sh -c "cat /proc/$b/comm 2>/dev/null")"

# 4. The issue's test: node 1's daemon is SIGKILLed, and the process with it
# (node 1 is lost); the checkpoint kept on node 2 restarts it on node 3.
kill -KILL "$(daemon_of 1)"
"$GHOST" cluster exec 1 -- kill -KILL "$b"
for _ in $(seq 400); do
	s2=$(GHOST_CONTROL=$CTL2 "$GHOST" nodes --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')
	s3=$(GHOST_CONTROL=$CTL3 "$GHOST" nodes --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')
	[ "$s2 $s3" = "failed failed" ] && break
	sleep 0.05
done
check_eq "nodes 2 and 3 see node 1 failed" "failed failed" "$s2 $s3"
export GHOST_CONTROL=$CTL3
lines=$(wc -l < "$outb")
"$GHOST" restart --from-memory "$idb" --node 3 --json > "$TEST_TMP/r.json" 2> "$TEST_TMP/err"
check_eq "restart --from-memory $idb --node 3 exits 0" "0 " "$? $(cat "$TEST_TMP/err")"
check_eq "  ... the process has its PID, on node 3, from node 2, all of the image" \
	"$b 3 2 $sizeb" \
	"$(json "$TEST_TMP/r.json" pid) $(json "$TEST_TMP/r.json" node) $(json "$TEST_TMP/r.json" holder) $(json "$TEST_TMP/r.json" image_bytes)"
check_eq "  ... ps (through node 3) shows it running on node 3" "3 sleeping" \
	"$(state_of "$b" | sed 's/running/sleeping/')"
"$GHOST" logs "$b" > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... node 3 answers for it while its birth node is down (logs)" "0 " \
	"$? $(cat "$TEST_TMP/err")"
wait_ticks "$outb" $((before + 5))
for _ in $(seq 200); do
	[ "$(wc -l < "$outb")" -gt $((lines + 5)) ] && break
	sleep 0.05
done
check "  ... it counts on from the checkpoint (ticks $before to $after then), without a gap" \
	python3 -c '
import sys
lines = open(sys.argv[1]).read().split("\n")[int(sys.argv[2]):]
n = [int(l.split()[1]) for l in lines if l.startswith("tick ")]
lo, hi = int(sys.argv[3]), int(sys.argv[4])
sys.exit(0 if len(n) > 5 and lo + 1 <= n[0] <= hi + 1 and n == list(range(n[0], n[0] + len(n))) else 1)' \
	"$outb" "$lines" "$before" "$after"
check_eq "  ... and verifies its heap, PID, file, handlers and timer" "verified ok usr1=1" \
	"$(verify "$outb" "$b")"
"$GHOST" checkpoints > "$TEST_TMP/list" 2> "$TEST_TMP/err"
check_eq "checkpoints names the failed node; the one on node 2 is still kept" \
	"0 ghost: warning: node 1 is failed: its checkpoints are not listed $idb" \
	"$? $(cat "$TEST_TMP/err") $(awk 'NR > 1 && $1 ~ /^[0-9]+\.[0-9]+$/ {print $1}' "$TEST_TMP/list")"
bad "the checkpoint kept on node 1 is gone with its daemon" \
	"ghost: checkpoint $ida is kept on node 1, which is failed" restart --from-memory "$ida"

# 5. --drop ends the keeper and frees its memory.
kb=$(keepers 2)
check "the keeper of $idb holds the image in its memory" test \
	"$(awk '/^VmRSS/ {print $2}' "/proc/$kb/status")" -gt $((32 << 10))
"$GHOST" checkpoint --drop "$idb" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
check_eq "checkpoint --drop $idb" \
	"0 checkpoint $idb dropped: $(python3 -c "print('%.1f' % ($sizeb / 1048576))") MiB freed on node 2" \
	"$? $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
for _ in $(seq 100); do
	[ -e "/proc/$kb" ] || break
	sleep 0.05
done
check "  ... its keeper is gone" test ! -e "/proc/$kb"
check_eq "  ... no keeper left on node 2" "" "$(keepers 2)"
"$GHOST" checkpoints > "$TEST_TMP/list" 2> /dev/null
check_eq "  ... it is no longer listed, and node 2's checkpoint memory is free" \
	"node 2: 0.0 MiB" "$(grep -o '^node 2: [0-9.]* MiB' "$TEST_TMP/list")$(awk -v id="$idb" '$1 == id' "$TEST_TMP/list")"
bad "  ... dropping it again" "ghost: no checkpoint $idb on node 2" checkpoint --drop "$idb"

# 6. Bad IDs and arguments: one line, nothing done.
bad "an ID its holder never gave" "ghost: no checkpoint 2.999 on node 2" \
	restart --from-memory 2.999
bad "an ID of no node" "ghost: no checkpoint 7.1: no node 7 in the cluster" \
	restart --from-memory 7.1 --node 2
bad "an unknown destination" "ghost: no node 7 in the cluster" restart --from-memory 2.1 --node 7
bad "checkpoint of a PID no node hands out" \
	"ghost: no managed process 42: no node hands out that PID" checkpoint 42 --memory
bad "checkpoint to an unknown node" "ghost: no node 7 in the cluster" \
	checkpoint "$b" --memory --on 7
for args in "restart --from-memory abc" "restart --from-memory 0.1" "checkpoint --drop 2" \
	"checkpoint --drop 2.x" "checkpoint --memory" "checkpoint 1 --memory --on 0" \
	"checkpoint 1 --memory --kill --stop" "checkpoints extra"; do
	# shellcheck disable=SC2086
	"$GHOST" $args > /dev/null 2>&1
	check_eq "'ghost $args' is a usage error" 2 $?
done

# 7. Another user's checkpoints.
c=$("$GHOST" run -d --node 2 -- sleep 600)
"$GHOST" checkpoint "$c" --memory --json > "$TEST_TMP/c.json" 2> "$TEST_TMP/err"
check_eq "root checkpoints a process of node 2 to node 2" "0 " "$? $(cat "$TEST_TMP/err")"
idc=$(json "$TEST_TMP/c.json" id)
GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" restart --from-memory "$idc" > /dev/null 2> "$TEST_TMP/err"
check_eq "another user cannot restart it" \
	"1 ghost: not allowed to restart checkpoint $idc: it belongs to another user" \
	"$? $(cat "$TEST_TMP/err")"
GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" checkpoint --drop "$idc" > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... nor drop it" \
	"1 ghost: not allowed to drop checkpoint $idc: it belongs to another user" \
	"$? $(cat "$TEST_TMP/err")"
GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" checkpoint "$c" --memory > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... nor checkpoint root's process" \
	"1 ghost: not allowed to checkpoint process $c: it belongs to another user" \
	"$? $(cat "$TEST_TMP/err")"
u=$(GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" run -d -- sleep 600)
GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" checkpoint "$u" --memory --on 3 --json > "$TEST_TMP/u.json" 2> "$TEST_TMP/err"
check_eq "  ... but checkpoints its own process" "0 " "$? $(cat "$TEST_TMP/err")"
idu=$(json "$TEST_TMP/u.json" id)
check_eq "  ... and lists only its own checkpoints; root lists all" "$idu|$idc $idu" \
	"$(GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" checkpoints --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(c["id"] for c in json.load(sys.stdin)))')|$("$GHOST" checkpoints --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(sorted(c["id"] for c in json.load(sys.stdin))))')"
GHOST_CONTROL=$CTL2 $NOBODY "$GHOST" checkpoint --drop "$idu" > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... and drops its own" "0 " "$? $(cat "$TEST_TMP/err")"
"$GHOST" kill -KILL "$c" "$u"
"$GHOST" checkpoint --drop "$idc" > /dev/null

# 8. checkpoint-memory: node 3 gets 48 MiB (SIGHUP reads it again).
echo "checkpoint-memory 48M" >> "$GHOST_CLUSTER_DIR/cluster.conf"
kill -HUP "$(daemon_of 3)"
for _ in $(seq 200); do
	"$GHOST" checkpoints 2>/dev/null | grep -q '^node 3: [0-9.]* MiB of 48.0 MiB' && break
	sleep 0.05
done
check "node 3's daemon takes checkpoint-memory 48M on SIGHUP" sh -c \
	"'$GHOST' checkpoints 2>/dev/null | grep -q '^node 3: 0.0 MiB of 48.0 MiB'"
outd=$TEST_TMP/d.out
d=$("$GHOST" run -d --node 3 -- "$MIGRANT" "$outd" 64)
wait_ticks "$outd" 5 || fatal "the 64 MiB migrant ticks"
"$GHOST" checkpoint "$d" --memory --stop > /dev/null 2> "$TEST_TMP/err"
check_eq "a 64 MiB process does not fit in 48 MiB: exit 1, one line" "1 1" \
	"$? $(wc -l < "$TEST_TMP/err")"
echo "# $(cat "$TEST_TMP/err")"
check "  ... saying why" grep -q "more than the 48.0 MiB of checkpoint memory node 3 has left" \
	"$TEST_TMP/err"
check_eq "  ... the process runs on, on node 3, not stopped" "3 sleeping" \
	"$(state_of "$d" | sed 's/running/sleeping/')"
n=$(ticks "$outd")
check "  ... and ticks on" wait_ticks "$outd" $((n + 3))
check_eq "  ... no keeper is left on node 3, nothing is in use" "|node 3: 0.0 MiB" \
	"$(keepers 3)|$("$GHOST" checkpoints 2>/dev/null | grep -o '^node 3: [0-9.]* MiB')"
oute=$TEST_TMP/e.out
e=$("$GHOST" run -d --node 3 -- "$MIGRANT" "$oute" 24)
wait_ticks "$oute" 5 || fatal "the 24 MiB migrant ticks"
"$GHOST" checkpoint "$e" --memory --json > "$TEST_TMP/e1.json" 2> "$TEST_TMP/err"
check_eq "a 24 MiB process fits" "0 " "$? $(cat "$TEST_TMP/err")"
"$GHOST" checkpoint "$e" --memory > /dev/null 2> "$TEST_TMP/err"
check "  ... but not twice" grep -q "more than the .* MiB of checkpoint memory node 3 has left" \
	"$TEST_TMP/err"
"$GHOST" checkpoint --drop "$(json "$TEST_TMP/e1.json" id)" > /dev/null
"$GHOST" checkpoint "$e" --memory > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... once the first is dropped, the memory it held is free again" "0 " \
	"$? $(cat "$TEST_TMP/err")"
check_eq "  ... the process was untouched by all that" "verified ok usr1=1" \
	"$(verify "$oute" "$e")"
"$GHOST" kill -KILL "$d"

# 9. The holder's daemon is SIGKILLed during a checkpoint --stop of a 256 MiB
# process: one line naming it, and the process runs on, not stopped. (To act
# during the transfer, the keeper is frozen as soon as it exists.)
outf=$TEST_TMP/f.out
f=$("$GHOST" run -d --node 3 -- "$MIGRANT" "$outf" 256)
wait_ticks "$outf" 5 || fatal "the 256 MiB migrant ticks"
d2=$(daemon_of 2)
"$GHOST" checkpoint "$f" --memory --stop --on 2 > /dev/null 2> "$TEST_TMP/err" &
ck=$!
kp=
for _ in $(seq 2000); do
	kp=$(ps -o pid=,comm= --ppid "$d2" | awk '$2 == "ghost-keeper" {print $1}')
	[ -n "$kp" ] && break
done
check "a keeper appears on node 2" test -n "$kp"
[ -n "$kp" ] && kill -STOP "$kp"
kill -KILL "$d2"
wait "$ck"
check_eq "holder killed mid-checkpoint: exit 1 with one line" "1 1" \
	"$? $(wc -l < "$TEST_TMP/err")"
echo "# $(cat "$TEST_TMP/err")"
check "  ... naming node 2" grep -q "node 2" "$TEST_TMP/err"
check_eq "  ... the process runs on, on node 3, not stopped" "3 sleeping" \
	"$(state_of "$f" | sed 's/running/sleeping/')"
n=$(ticks "$outf")
check "  ... and ticks on" wait_ticks "$outf" $((n + 3))
check_eq "  ... and verifies its own state" "verified ok usr1=1" "$(verify "$outf" "$f")"

unset GHOST_CONTROL
"$GHOST" cluster down > /dev/null
check_eq "cluster down" 0 $?
finish
