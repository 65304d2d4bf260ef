# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the dstream tests on a 3-node cluster (bash, after
# ../cluster/lib.sh): where a node's init and daemon are, running dstest
# ($DSTEST) in a node with that node's ghostd, and taking its checks.

node_init() {
	"$GHOST" cluster status --json | grep -o "\"id\":$1,[^}]*" | grep -o '"pid":[0-9]*' |
		cut -d: -f2
}

# node_daemon NODE: the PID of NODE's ghostd (a child of its init).
node_daemon() {
	local d
	for d in $(children "$(node_init "$1")"); do
		[ "$(cat "/proc/$d/comm" 2>/dev/null)" = ghostd ] && echo "$d"
	done
}

node_address() {
	"$GHOST" nodes --json | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["id"] == '"$1"': print(n["address"].rsplit(":", 1)[0])'
}

# in_node NODE CMD...: CMD in NODE's namespaces, with NODE's ghostd.
in_node() {
	local n=$1
	shift
	nsenter -t "$(node_init "$n")" -m -n -p -- \
		env GHOST_CONTROL="$GHOST_CLUSTER_DIR/node$n/ghostd.sock" "$@"
}

declare -A PIDS
# role NAME NODE DSTEST-ARGS...: start dstest in NODE (60 s at most), output
# in $D/NAME.out. Its PID (nsenter's, on this side of the node's PID
# namespace) goes where cleanup ends what is left.
role() {
	local name=$1 n=$2
	shift 2
	nsenter -t "$(node_init "$n")" -m -n -p -- \
		env GHOST_CONTROL="$GHOST_CLUSTER_DIR/node$n/ghostd.sock" \
		timeout 60 "$DSTEST" "$@" > "$D/$name.out" 2>&1 &
	PIDS[$name]=$!
	echo "$! $(proc_start $!)" >> "$TEST_TMP/pids"
}

# finish_role NAME: wait for it; its checks become ours.
finish_role() {
	local st line
	wait "${PIDS[$1]}"
	st=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "$1: ${line#ok - }" ;;
		"not ok - "*) not_ok "$1: ${line#not ok - }" ;;
		*) echo "# $1: $line" ;;
		esac
	done < "$D/$1.out"
	check_eq "$1 exits 0" 0 "$st"
}

wait_file() {
	for _ in $(seq 600); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
