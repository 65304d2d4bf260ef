#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ghostd by itself: one-line errors for bad configurations and options, the
# node found from a local address, a control socket that is taken or stale,
# and the client's errors when no daemon listens.
. "$(dirname "$0")/lib.sh"
parse_args "$@"

D=$TEST_TMP/d
mkdir -p "$D"
head -c 32 /dev/urandom > "$D/key"
chmod 600 "$D/key"
# Below the ephemeral range, as in lib.sh.
port=$((20000 + RANDOM % 12000))

# start_bad DESCRIPTION EXPECTED-LINE CONFIG-TEXT [OPTIONS...]: ghostd exits 1
# at once with exactly that one line.
start_bad() {
	local what=$1 want=$2 text=$3 st
	shift 3
	printf '%s\n' "$text" > "$D/bad.conf"
	timeout 10 unshare --pid --fork --mount-proc "$GHOSTD" --config "$D/bad.conf" \
		--control "$D/bad.sock" --log-dir "$D/logs" "$@" > "$D/out" 2>&1
	st=$?
	check_eq "$what" "1 $want" "$st $(cat "$D/out")"
}

start_bad "a bad port" "ghostd: $D/bad.conf:1: bad port '99999' (1..65535)" \
	"node 1 127.0.0.1 99999
key key" --node 1
start_bad "an unknown directive" "ghostd: $D/bad.conf:2: unknown directive 'nodes'" \
	"key key
nodes 3" --node 1
start_bad "no key line" "ghostd: $D/bad.conf: no 'key' line" "node 1 127.0.0.1 $port" --node 1
start_bad "a missing key file" \
	"ghostd: cannot open key file '$D/nokey': No such file or directory" \
	"node 1 127.0.0.1 $port
key nokey" --node 1
chmod 644 "$D/key"
start_bad "a key readable by others" \
	"ghostd: key file '$D/key' is accessible by group or others (mode 0644): chmod 600 it" \
	"node 1 127.0.0.1 $port
key key" --node 1
chmod 600 "$D/key"
start_bad "a node that is not configured" "ghostd: node 7 is not in '$D/bad.conf'" \
	"node 1 127.0.0.1 $port
key key" --node 7
start_bad "several local addresses and no --node" \
	"ghostd: 2 configured nodes have local addresses: use --node ID" \
	"node 1 127.0.0.1 $port
node 2 127.0.0.1 $((port + 1))
key key"
start_bad "no local address and no --node" \
	"ghostd: no configured node address is on a local interface: use --node ID" \
	"node 1 192.0.2.1 $port
key key"
timeout 5 "$GHOSTD" --node x > "$D/out" 2>&1
check_eq "a bad option value is a usage error" "2 ghostd: bad node id 'x'" "$? $(cat "$D/out")"
timeout 5 "$GHOSTD" --help | grep -q '^Usage: ghostd'
check "ghostd --help" test "${PIPESTATUS[1]}" = 0
GHOST_CONTROL=$D/none.sock "$GHOST" nodes 2> "$D/out"
check_eq "no daemon: a clear error" "1 ghost: cannot reach ghostd at '$D/none.sock': No such file or directory (is it running? \$GHOST_CONTROL names another socket)" "$? $(cat "$D/out")"

# One node found by its local address; a stale socket file is replaced.
printf 'node 1 127.0.0.1 %s\nnode 2 192.0.2.1 %s\nkey key\n' $port $port > "$D/one.conf"
python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('$D/one.sock')"
unshare --pid --fork --mount-proc --kill-child "$GHOSTD" --config "$D/one.conf" \
	--control "$D/one.sock" --log-dir "$D/logs" -f > "$D/one.log" 2>&1 &
pid=$!
disown $pid
remember $pid
for _ in $(seq 100); do
	GHOST_CONTROL=$D/one.sock "$GHOST" nodes > "$D/nodes" 2>/dev/null && break
	sleep 0.05
done
check_eq "the node is found from its local address, over a stale socket" "self down" \
	"$(awk 'NR > 1 {printf "%s%s", sep, $3; sep = " "}' "$D/nodes")"
timeout 10 unshare --pid --fork --mount-proc "$GHOSTD" --config "$D/one.conf" \
	--control "$D/one.sock" --log-dir "$D/logs" > "$D/out" 2>&1
check_eq "a second daemon on the same socket is refused" \
	"1 ghostd: another ghostd is serving the control socket '$D/one.sock'" "$? $(cat "$D/out")"
check_eq "and the first one still serves" "self" \
	"$(GHOST_CONTROL=$D/one.sock "$GHOST" nodes | awk 'NR == 2 {print $3}')"
GHOST_CONTROL=$D/one.sock "$GHOST" run --node 2 -- true 2> "$D/out"
check_eq "running on a node never seen" "1 ghost: node 2 is down" "$? $(cat "$D/out")"
finish
