# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the ghostd tests (bash): options, checks, and a cluster of real
# daemons on 127.0.0.1, each in a PID namespace of its own (unshare), so that
# every node hands out its own range of PIDs as on a real cluster.
#
# Usage in a test:  . lib.sh; parse_args "$@"; start_cluster 3 MS; ...; finish
# Options: --ghost PATH, --ghostd PATH.
# Everything a test starts is recorded by PID (with its start time, so that
# a reused PID is never killed) and killed on exit, whatever happens.

set -u

GHOST=
GHOSTD=
n_fail=0
n_ok=0
N_NODES=0

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--ghost) GHOST=$2; shift 2 ;;
		--ghostd) GHOSTD=$2; shift 2 ;;
		*) echo "unknown option $1" >&2; exit 2 ;;
		esac
	done
	[ -x "$GHOST" ] || { echo "no ghost binary (--ghost)" >&2; exit 2; }
	[ -x "$GHOSTD" ] || { echo "no ghostd binary (--ghostd)" >&2; exit 2; }
	GHOST=$(realpath "$GHOST")
	GHOSTD=$(realpath "$GHOSTD")
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root (PID namespaces, clone3 with set_tid)"
		exit 77
	fi
	command -v unshare >/dev/null || { echo "SKIP: needs unshare (util-linux)"; exit 77; }
	command -v python3 >/dev/null || { echo "SKIP: needs python3"; exit 77; }
	TEST_TMP=$(mktemp -d /tmp/ghostd-test.XXXXXX)
	# Other users must reach the control sockets (the non-root tests).
	chmod 755 "$TEST_TMP"
	: > "$TEST_TMP/pids"
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

proc_start() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	echo "$s" | cut -d' ' -f20
}

# remember PID: kill it at the end if it is still that process.
remember() {
	echo "$1 $(proc_start "$1")" >> "$TEST_TMP/pids"
}

cleanup() {
	local st=$? pid start
	set +e
	while read -r pid start; do
		[ -n "$start" ] && [ "$(proc_start "$pid")" = "$start" ] && kill -9 "$pid" 2>/dev/null
	done < "$TEST_TMP/pids"
	# The daemons' PID namespaces end with them, and their processes too.
	while read -r pid start; do
		for _ in $(seq 50); do
			[ "$(proc_start "$pid")" = "$start" ] || break
			sleep 0.1
		done
	done < "$TEST_TMP/pids"
	if [ "$st" != 0 ]; then
		for f in "$TEST_TMP"/n*/log.txt; do
			[ -e "$f" ] && { echo "# --- $f"; sed 's/^/# /' "$f"; }
		done
	fi
	rm -rf "$TEST_TMP"
	exit $st
}

ok() {
	n_ok=$((n_ok + 1))
	echo "ok - $*"
}

not_ok() {
	n_fail=$((n_fail + 1))
	echo "not ok - $*"
}

check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1: expected '$2', got '$3'"
	fi
}

fatal() {
	not_ok "$*"
	echo "# giving up"
	exit 1
}

finish() {
	echo "# $n_ok passed, $n_fail failed"
	[ "$n_fail" = 0 ]
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# node_ctl I: the control socket of node I.
node_ctl() {
	echo "$TEST_TMP/n$1/ghostd.sock"
}

# g I ARGS...: ghost talking to node I's daemon.
g() {
	local i=$1
	shift
	GHOST_CONTROL=$(node_ctl "$i") "$GHOST" "$@"
}

# bg_g I ARGS...: as g, replacing the calling (background) subshell, so that
# $! is ghost itself; SIGINT and SIGQUIT, which a non-interactive shell
# ignores in background jobs, are set back to their default.
bg_g() {
	local i=$1
	shift
	GHOST_CONTROL=$(node_ctl "$i") exec env --default-signal=INT,QUIT "$GHOST" "$@"
}

# start_node I: start node I's daemon in a PID namespace of its own; its
# unshare process is remembered (killing it kills the daemon: --kill-child).
start_node() {
	local i=$1 pid
	mkdir -p "$TEST_TMP/n$i"
	unshare --pid --fork --mount-proc --kill-child \
		"$GHOSTD" --config "$TEST_TMP/cluster.conf" --node "$i" \
		--control "$(node_ctl "$i")" --log-dir "$TEST_TMP/n$i/logs" --log-level info \
		>> "$TEST_TMP/n$i/log.txt" 2>&1 &
	pid=$!
	disown "$pid"
	remember "$pid"
	echo "$pid" > "$TEST_TMP/n$i/unshare.pid"
}

# daemon_pid I: node I's ghostd, as seen from here.
daemon_pid() {
	local u
	u=$(cat "$TEST_TMP/n$1/unshare.pid")
	for _ in $(seq 50); do
		p=$(pgrep -P "$u" | head -1)
		[ -n "$p" ] && { echo "$p"; return; }
		sleep 0.05
	done
}

# node_state FROM ID: the state node FROM's daemon reports for node ID.
node_state() {
	g "$1" nodes 2>/dev/null | awk -v id="$2" '$1 == id {print $3}'
}

# wait_state FROM ID STATE SECONDS: 0 once FROM reports ID in STATE.
wait_state() {
	local deadline=$(($(date +%s%N) + $4 * 1000000000))
	while [ "$(date +%s%N)" -lt $deadline ]; do
		[ "$(node_state "$1" "$2")" = "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_cluster N TIMEOUT_MS: N daemons on 127.0.0.1, all up from everywhere.
start_cluster() {
	local n=$1 timeout=$2 base i j
	N_NODES=$n
	for _ in $(seq 20); do
		# Below the kernel's ephemeral range (32768-60999 by default): a
		# port found free there can be taken by an outgoing connection
		# before the daemon binds it.
		base=$((20000 + RANDOM % 12000))
		for i in $(seq "$n"); do
			port_free $((base + i)) || continue 2
		done
		break
	done
	head -c 32 /dev/urandom > "$TEST_TMP/key"
	chmod 600 "$TEST_TMP/key"
	{
		echo "# ghostd test cluster"
		for i in $(seq "$n"); do
			echo "node $i 127.0.0.1 $((base + i))"
		done
		echo "key key"
		echo "encrypt yes"
		echo "timeout $timeout"
	} > "$TEST_TMP/cluster.conf"
	for i in $(seq "$n"); do
		start_node "$i"
	done
	for i in $(seq "$n"); do
		for j in $(seq "$n"); do
			[ "$i" = "$j" ] && continue
			wait_state "$i" "$j" up 15 || return 1
		done
	done
}
