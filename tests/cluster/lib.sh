# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the cluster tests (bash): options, checks, cleanup, and the
# "machine as found" snapshot.
#
# Usage in a test:  . lib.sh; parse_args "$@"; ...; finish
# Options: --ghost PATH (the ghost binary), --probe PATH (cluster-probe).
# Each test brings its cluster up in a run directory of its own under a
# temporary directory, so it never meets a real cluster in /run/ghost.

set -u

GHOST=
PROBE=
n_fail=0
n_ok=0

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--ghost) GHOST=$2; shift 2 ;;
		--probe) PROBE=$2; shift 2 ;;
		*) echo "unknown option $1" >&2; exit 2 ;;
		esac
	done
	[ -x "$GHOST" ] || { echo "no ghost binary (--ghost)" >&2; exit 2; }
	GHOST=$(realpath "$GHOST")
	[ -z "$PROBE" ] || PROBE=$(realpath "$PROBE")
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root (namespaces, network devices)"
		exit 77
	fi
	command -v ip >/dev/null || { echo "SKIP: needs ip (iproute2)"; exit 77; }
	# ghost finds ghostd next to it (the build tree) and the cluster's
	# daemon by itself, not what the caller's environment names.
	unset GHOST_GHOSTD GHOST_CONTROL
	TEST_TMP=$(mktemp -d /tmp/ghost-cluster-test.XXXXXX)
	mkdir "$TEST_TMP/base"
	# Parents that do not exist yet: up must create them and down remove them.
	export GHOST_CLUSTER_DIR=$TEST_TMP/base/run/ghost/cluster
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# Whatever happens, leave nothing: take the cluster down, then kill by PID
# any process of ours that is still there (recorded in $TEST_TMP/pids).
cleanup() {
	local st=$? pid start
	set +e
	find "$TEST_TMP/base" -name state 2>/dev/null | while read -r s; do
		"$GHOST" cluster down --dir "${s%/state}" >/dev/null 2>&1
	done
	if [ -e "$TEST_TMP/pids" ]; then
		while read -r pid start; do
			[ "$(proc_start "$pid")" = "$start" ] && kill -9 "$pid" 2>/dev/null
		done < "$TEST_TMP/pids"
	fi
	# Cgroups a test made (in $TEST_TMP/cgroups), once their processes are gone.
	if [ -e "$TEST_TMP/cgroups" ]; then
		sort -r "$TEST_TMP/cgroups" | while read -r c; do rmdir "$c" 2>/dev/null; done
	fi
	awk -v t="$TEST_TMP" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
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

# check DESCRIPTION COMMAND...: ok if the command succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1: expected '$2', got '$3'"
	fi
}

# Bail out: the rest of the test depends on this.
fatal() {
	not_ok "$*"
	echo "# giving up"
	exit 1
}

finish() {
	echo "# $n_ok passed, $n_fail failed"
	[ "$n_fail" = 0 ]
}

proc_start() {
	# Field 22 of /proc/PID/stat, counted after the ')' ending the command name.
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	echo "$s" | cut -d' ' -f20
}

# The PIDs of the children of process $1.
children() {
	ps -o pid= --ppid "$1" | tr -d ' '
}

# Everything on the machine a cluster could leave behind, as text.
snapshot() {
	echo "== links"
	ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
	echo "== addresses"
	ip -o addr show | awk '{print $2, $3, $4}' | sort
	echo "== routes"
	ip route show table all 2>/dev/null | sort
	echo "== netns"
	ip netns list 2>/dev/null | sort
	[ -d /run/netns ] && ls -A /run/netns
	echo "== mounts"
	awk '{print $5, $9, $10}' /proc/self/mountinfo | sort
	echo "== run directory"
	ls -A "$TEST_TMP/base"
}

# Record the cluster's processes (keeper, inits, daemons) and namespaces while it is up.
record_cluster() {
	local pid
	for pid in $("$GHOST" cluster status --json | grep -o '"\(keeper_pid\|pid\)":[0-9]*' |
		cut -d: -f2); do
		echo "$pid $(proc_start "$pid")" >> "$TEST_TMP/pids"
		for ns in net pid mnt uts ipc; do
			readlink "/proc/$pid/ns/$ns"
		done >> "$TEST_TMP/ns"
		# The node's ghostd, a child of its init.
		for d in $(children "$pid"); do
			[ "$(cat "/proc/$d/comm" 2>/dev/null)" = ghostd ] &&
				echo "$d $(proc_start "$d")" >> "$TEST_TMP/pids"
		done
	done
	sort -u -o "$TEST_TMP/ns" "$TEST_TMP/ns"
	# The host's own namespaces are not the cluster's.
	for ns in net pid mnt uts ipc; do
		readlink "/proc/self/ns/$ns"
	done | grep -v -x -F -f - "$TEST_TMP/ns" > "$TEST_TMP/ns.own" || true
	mv "$TEST_TMP/ns.own" "$TEST_TMP/ns"
}

# After down: none of the recorded processes, and no process anywhere in one
# of the recorded namespaces.
check_no_leftovers() {
	local pid start left=""
	while read -r pid start; do
		[ "$(proc_start "$pid")" = "$start" ] && left="$left $pid"
	done < "$TEST_TMP/pids"
	check_eq "no cluster process is left" "" "$left"
	left=$(find /proc/[0-9]*/ns/ -maxdepth 1 -type l -printf '%h %l\n' 2>/dev/null |
		grep -F -f "$TEST_TMP/ns" | cut -d/ -f3 | sort -u | tr '\n' ' ')
	check_eq "no process is left in a namespace of the cluster" "" "$left"
	: > "$TEST_TMP/pids"
	: > "$TEST_TMP/ns"
}

# compare_snapshot BEFORE-FILE: the machine is as it was.
compare_snapshot() {
	snapshot > "$TEST_TMP/snap.after"
	if diff -u "$1" "$TEST_TMP/snap.after"; then
		ok "the machine is as before (links, addresses, routes, netns, mounts, files)"
	else
		not_ok "the machine changed (diff above)"
	fi
}
