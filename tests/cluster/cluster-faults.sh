#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What goes wrong: `up` failing at each step (GHOST_CLUSTER_FAULT) leaves
# nothing behind; a dead node and a dead keeper are reported and cleaned up
# by `down`; usage errors exit 2; a directory that is not a cluster's is
# never used or removed.
. "$(dirname "$0")/lib.sh"
parse_args "$@"

snapshot > "$TEST_TMP/snap.before"

# PIDs of keepers and node inits on the machine, whoever started them.
cluster_processes() {
	ps -e -o pid=,comm= | awk '$2 == "ghost-init" || $2 == "ghost-cluster" {print $1}' | sort
}

# 1. up fails halfway: in a node's init, while wiring a node, or because a
#    node cannot be reached (its eth0 left down). Each time: exit 1, one line,
#    and the machine as before.
for f in init net reach; do
	before=$(cluster_processes)
	GHOST_CLUSTER_FAULT=$f "$GHOST" cluster up --nodes 3 --timeout 1 \
		> "$TEST_TMP/out" 2> "$TEST_TMP/err"
	check_eq "up with a failure in '$f' exits 1" 1 $?
	check_eq "  ... with one line on stderr" 1 "$(wc -l < "$TEST_TMP/err")"
	check "  ... starting with 'ghost: node 3'" grep -q '^ghost: node [13]' "$TEST_TMP/err"
	check_eq "  ... and nothing on stdout" "" "$(cat "$TEST_TMP/out")"
	cat "$TEST_TMP/err"
	check_eq "  ... and no ghost-init or ghost-cluster process left" "" \
		"$(cluster_processes | comm -13 <(echo "$before") -)"
	compare_snapshot "$TEST_TMP/snap.before"
done

# 2. A node's init dies: the node is down, the others still work.
"$GHOST" cluster up --nodes 2 > /dev/null || fatal "cluster up --nodes 2"
record_cluster
init2=$("$GHOST" cluster status --json | grep -o '"id":2,[^}]*' | grep -o '"pid":[0-9]*' | cut -d: -f2)
kill -KILL "$init2"
st=0
# The node's daemon dies with its init, and status fails at once for that;
# the node itself is seen down once the keeper has reaped the init.
for _ in $(seq 100); do
	"$GHOST" cluster status > "$TEST_TMP/out"
	st=$?
	[ $st != 0 ] && grep -q '^2 .* down$' "$TEST_TMP/out" && break
	sleep 0.05
done
check_eq "status exits 1 when a node is down" 1 $st
check "  ... and shows node 2 down" grep -q '^2 .* down$' "$TEST_TMP/out"
check "  ... and node 1 up" grep -q '^1 .* up$' "$TEST_TMP/out"
"$GHOST" cluster exec 2 -- true 2> "$TEST_TMP/err"
check_eq "exec in a dead node exits 1" 1 $?
check "  ... saying it is down" grep -q "^ghost: node 2 is down" "$TEST_TMP/err"
check_eq "exec in the live node still works" node1 "$("$GHOST" cluster exec 1 -- hostname)"
check "the keeper logged the death" grep -q "node 2: init .* killed by signal 9" \
	"$GHOST_CLUSTER_DIR/cluster.log"

# 3. The keeper dies (SIGKILL): every node ends with it; status says so;
#    up refuses until down has cleaned up.
keeper=$("$GHOST" cluster status --json | grep -o '"keeper_pid":[0-9]*' | cut -d: -f2)
kill -KILL "$keeper"
for _ in $(seq 50); do
	grep -q '"up":true' <("$GHOST" cluster status --json) || break
	sleep 0.05
done
"$GHOST" cluster status > "$TEST_TMP/out"
check_eq "status exits 1 when the keeper is dead" 1 $?
check "  ... saying NOT RUNNING" grep -q "NOT RUNNING" "$TEST_TMP/out"
check "  ... with every node down" test "$(grep -c ' down$' "$TEST_TMP/out")" = 2
"$GHOST" cluster up 2> "$TEST_TMP/err"
check_eq "up over a dead cluster exits 1" 1 $?
check "  ... telling to run down" grep -q "ghost cluster down" "$TEST_TMP/err"
"$GHOST" cluster down
check_eq "down cleans up after a dead cluster" 0 $?
check_no_leftovers
compare_snapshot "$TEST_TMP/snap.before"

# 4. No cluster, foreign directories, usage errors.
"$GHOST" cluster down 2> "$TEST_TMP/err"
check_eq "down without a cluster exits 1" 1 $?
check "  ... saying there is none" grep -q "^ghost: no cluster in" "$TEST_TMP/err"
"$GHOST" cluster status --json > "$TEST_TMP/out"
check_eq "status --json without a cluster exits 1" 1 $?
check "  ... and says running false" grep -q '"running":false' "$TEST_TMP/out"
mkdir "$TEST_TMP/foreign"
touch "$TEST_TMP/foreign/precious"
"$GHOST" cluster up --dir "$TEST_TMP/foreign" 2> "$TEST_TMP/err"
check_eq "up in an existing directory exits 1" 1 $?
"$GHOST" cluster down --dir "$TEST_TMP/foreign" 2> "$TEST_TMP/err"
check_eq "down in a directory without state exits 1" 1 $?
check "  ... and removes nothing" test -e "$TEST_TMP/foreign/precious"
rm -r "$TEST_TMP/foreign"

for args in "" "bogus" "up --nodes 0" "up --nodes 251" "up --nodes x" "up extra" \
	"up --timeout 0" "down extra" "status extra" "exec" "exec 1" "exec x -- true" \
	"exec 0 -- true" "up --bogus"; do
	# shellcheck disable=SC2086
	"$GHOST" cluster $args > /dev/null 2>&1
	check_eq "'ghost cluster $args' is a usage error" 2 $?
done
for v in "" up down status exec; do
	# shellcheck disable=SC2086
	out=$("$GHOST" cluster $v --help)
	check_eq "'ghost cluster $v --help' exits 0" 0 $?
	check "  ... and starts with Usage" test "${out%%:*}" = Usage
done

# 5. --dir beats GHOST_CLUSTER_DIR, and a relative --dir works.
(cd "$TEST_TMP/base" && "$GHOST" cluster up --nodes 1 --dir rel/cluster > /dev/null)
check_eq "up with a relative --dir" 0 $?
check "  ... made the directory there" test -e "$TEST_TMP/base/rel/cluster/state"
"$GHOST" cluster status > /dev/null 2>&1
check_eq "  ... not in GHOST_CLUSTER_DIR" 1 $?
check_eq "exec with --dir" node1 "$("$GHOST" cluster exec --dir "$TEST_TMP/base/rel/cluster" 1 hostname)"
"$GHOST" cluster down --dir "$TEST_TMP/base/rel/cluster"
check_eq "down with --dir" 0 $?
compare_snapshot "$TEST_TMP/snap.before"
finish
