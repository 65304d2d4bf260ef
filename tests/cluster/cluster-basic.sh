#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A 3-node cluster on this machine, checked from inside its nodes: hostnames,
# /proc and PIDs of each node, ICMP and TCP between every pair of nodes,
# `cluster exec` (exit status, signals, stdin), `up` refused while up, and
# `down` leaving the machine exactly as it found it.
. "$(dirname "$0")/lib.sh"
parse_args "$@"
[ -x "$PROBE" ] || { echo "no cluster-probe (--probe)" >&2; exit 2; }

N=3
snapshot > "$TEST_TMP/snap.before"
t0=$(date +%s%N)
"$GHOST" cluster up --nodes $N > "$TEST_TMP/out" || fatal "cluster up --nodes $N"
t1=$(date +%s%N)
ok "cluster up --nodes $N in $(((t1 - t0) / 1000000)) ms"
record_cluster
cat "$TEST_TMP/out"
check_eq "up prints one line per node" $N "$(grep -c '^[0-9]' "$TEST_TMP/out")"
check "status exits 0 with every node up" "$GHOST" cluster status
json=$("$GHOST" cluster status --json)
check_eq "status --json says running" 1 "$(echo "$json" | grep -c '"running":true')"
check_eq "status --json lists $N nodes up" $N "$(echo "$json" | grep -o '"up":true' | wc -l)"
check "run directory has the key, mode 0600, 32 bytes" \
	test "$(stat -c '%a %s' "$GHOST_CLUSTER_DIR/key")" = "600 32"
conf=$(grep -v '^#' "$GHOST_CLUSTER_DIR/cluster.conf")
check_eq "cluster.conf" "key $GHOST_CLUSTER_DIR/key
encrypt yes
node 1 10.77.0.1 7700
node 2 10.77.0.2 7700
node 3 10.77.0.3 7700" "$conf"

# Nothing of the cluster in the machine's own network namespace.
check_eq "no cluster address on the machine" "" "$(ip -o addr show | grep '10\.77\.0\.' || true)"
host_net=$(readlink /proc/self/ns/net)

for i in $(seq 1 $N); do
	check_eq "node $i: hostname" "node$i" "$("$GHOST" cluster exec $i -- hostname)"
	check_eq "node $i: hostname through nodeN" "node$i" "$("$GHOST" cluster exec node$i -- cat /proc/sys/kernel/hostname)"
	# The shell's own PID, the processes its /proc shows, PID 1's name, the
	# name of the one other process (the node's ghostd).
	out=$("$GHOST" cluster exec $i -- sh -c 'echo $$; echo /proc/[0-9]*; cat /proc/1/comm; readlink /proc/self/ns/net; for p in /proc/[0-9]*; do [ $p = /proc/1 ] || [ $p = /proc/$$ ] || cat $p/comm; done')
	self=$(echo "$out" | sed -n 1p)
	# A PID of the node's own namespace: small, or, once ghostd runs there,
	# in the half of the node's PID range the kernel hands out.
	check "node $i: exec gets a PID of the node's namespace ($self)" \
		test "$self" -gt 1 -a \( "$self" -lt 100 -o \
		\( "$self" -ge $((i * 100000 + 50000)) -a "$self" -lt $(((i + 1) * 100000)) \) \)
	check_eq "node $i: /proc shows only the node's init, its ghostd and the command" \
		3 "$(echo "$out" | sed -n 2p | wc -w)"
	check_eq "  ... the third being ghostd" ghostd "$(echo "$out" | sed -n 5p)"
	check_eq "node $i: PID 1 is the node init" "ghost-init" "$(echo "$out" | sed -n 3p)"
	net=$(echo "$out" | sed -n 4p)
	if [ "$net" != "$host_net" ]; then
		ok "node $i: own network namespace"
	else
		not_ok "node $i: runs in the machine's network namespace"
	fi
	addrs=$("$GHOST" cluster exec $i -- ip -o -4 addr show | awk '{print $2, $4}' | tr '\n' ' ')
	check_eq "node $i: interfaces" "lo 127.0.0.1/8 eth0 10.77.0.$i/24 " "$addrs"
done
nets=$(for i in $(seq 1 $N); do "$GHOST" cluster exec $i -- readlink /proc/self/ns/net; done | sort -u | wc -l)
check_eq "every node has its own network namespace" $N "$nets"

# A server in each node, started through exec, then adopted by the node's init.
for i in $(seq 1 $N); do
	spid=$("$GHOST" cluster exec $i -- "$PROBE" serve 9000) || fatal "node $i: start a server"
	check_eq "node $i: the server left behind is a child of the node's init" 1 \
		"$("$GHOST" cluster exec $i -- sh -c "cut -d' ' -f4 /proc/$spid/stat")"
done
for i in $(seq 1 $N); do
	for j in $(seq 1 $N); do
		[ $i = $j ] && continue
		check "node $i pings node $j" "$GHOST" cluster exec $i -- "$PROBE" ping 10.77.0.$j
		check_eq "node $i connects to node $j over TCP" "node$j" \
			"$("$GHOST" cluster exec $i -- "$PROBE" connect 10.77.0.$j 9000)"
	done
done

# exec: exit status, death by signal, stdin, a missing command, a bad node.
"$GHOST" cluster exec 2 -- sh -c 'exit 42'
check_eq "exec returns the command's exit status" 42 $?
"$GHOST" cluster exec 2 -- sh -c 'kill -KILL $$'
check_eq "exec returns 128+N for death by signal N" 137 $?
check_eq "exec passes stdin and stdout through" "hello node" \
	"$(echo "hello node" | "$GHOST" cluster exec 3 -- cat)"
check_eq "exec passes stderr through" "to stderr" \
	"$("$GHOST" cluster exec 3 -- sh -c 'echo to stderr >&2' 2>&1 >/dev/null)"
check_eq "exec keeps the working directory" "$TEST_TMP" \
	"$(cd "$TEST_TMP" && "$GHOST" cluster exec 1 -- pwd)"
"$GHOST" cluster exec 1 -- /nonexistent/command 2>"$TEST_TMP/err"
check_eq "exec of a missing command exits 127" 127 $?
check "  ... with a 'ghost: ' message" grep -q '^ghost: cannot run' "$TEST_TMP/err"
"$GHOST" cluster exec 7 -- true 2>"$TEST_TMP/err"
check_eq "exec in an unknown node exits 1" 1 $?
check_eq "  ... with one line" 1 "$(wc -l < "$TEST_TMP/err")"
"$GHOST" cluster exec 1 -- sleep 30 &
epid=$!
sleep 0.2
kill -TERM $epid
wait $epid
check_eq "exec passes SIGTERM on to the command" 143 $?
"$GHOST" cluster exec 1 -- sleep 31 &
epid=$!
sleep 0.2
kill -KILL $epid
wait $epid 2>/dev/null
sleep 0.1
check_eq "the command dies with a killed exec" "" \
	"$("$GHOST" cluster exec 1 -- sh -c 'grep -l "^[0-9]* (sleep) [^Z]" /proc/[0-9]*/stat' 2>/dev/null)"

# up while up: refused, and the running cluster untouched.
"$GHOST" cluster up --nodes 2 > "$TEST_TMP/out" 2> "$TEST_TMP/err"
check_eq "up while up exits 1" 1 $?
check "  ... saying it is already up" grep -q "^ghost: .*already up" "$TEST_TMP/err"
check "  ... and the cluster is still fine" "$GHOST" cluster status

t0=$(date +%s%N)
"$GHOST" cluster down
check_eq "cluster down exits 0" 0 $?
t1=$(date +%s%N)
echo "# down took $(((t1 - t0) / 1000000)) ms"
check_no_leftovers
compare_snapshot "$TEST_TMP/snap.before"
"$GHOST" cluster status > /dev/null 2>&1
check_eq "status after down exits 1" 1 $?
finish
