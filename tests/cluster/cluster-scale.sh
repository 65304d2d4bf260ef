#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 40 nodes: a full mesh needs 40*39 = 1560 neighbour entries, more than the
# kernel's default gc_thresh3 (1024) for its one ARP table shared by every
# network namespace, the machine's included. The nodes use permanent entries,
# which do not count against it: up works, nothing overflows, and down still
# leaves the machine as it was.
. "$(dirname "$0")/lib.sh"
parse_args "$@"
[ -x "$PROBE" ] || { echo "no cluster-probe (--probe)" >&2; exit 2; }

# How often the kernel found its ARP table full: column table_fulls of
# /proc/net/stat/arp_cache, in hex, one row per CPU.
arp_table_fulls() {
	local t=0 f
	while read -r -a f; do
		[ "${f[0]}" = entries ] || t=$((t + 16#${f[12]}))
	done < /proc/net/stat/arp_cache
	echo $t
}

N=40
snapshot > "$TEST_TMP/snap.before"
full_before=$(arp_table_fulls)
t0=$(date +%s%N)
"$GHOST" cluster up --nodes $N --json > "$TEST_TMP/out" || fatal "cluster up --nodes $N"
t1=$(date +%s%N)
ok "cluster up --nodes $N in $(((t1 - t0) / 1000000)) ms (every node reached every other)"
record_cluster
check_eq "$N nodes up" $N "$(grep -o '"up":true' "$TEST_TMP/out" | wc -l)"
check_eq "the ARP table never overflowed" "$full_before" "$(arp_table_fulls)"
check_eq "node $N's neighbours are permanent" "$((N - 1)) PERMANENT" \
	"$("$GHOST" cluster exec $N -- ip -4 neigh show dev eth0 | awk '{print $NF}' | uniq -c | awk '{print $1, $2}')"
"$GHOST" cluster exec 1 -- "$PROBE" serve 9000 > /dev/null || fatal "start a server in node 1"
check_eq "node $N connects to node 1" node1 \
	"$("$GHOST" cluster exec $N -- "$PROBE" connect 10.77.0.1 9000)"
check "node 1 pings node $N" "$GHOST" cluster exec 1 -- "$PROBE" ping 10.77.0.$N
"$GHOST" cluster down
check_eq "cluster down exits 0" 0 $?
check_no_leftovers
compare_snapshot "$TEST_TMP/snap.before"
finish
