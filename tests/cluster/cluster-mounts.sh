#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mount namespaces of the nodes: a node's mounts are its own (the machine and
# the other nodes never see them), while the machine's mounts and unmounts on
# a shared mount reach every node (the nodes are slaves, not private copies,
# so an unmount on the machine never leaves a mount pinned in a node).
. "$(dirname "$0")/lib.sh"
parse_args "$@"

snapshot > "$TEST_TMP/snap.before"
procs=$(grep -c ' /proc ' /proc/self/mountinfo)
sh=$TEST_TMP/shared
mkdir "$sh"
mount -t tmpfs ghost-test-shared "$sh" || fatal "mount a tmpfs on $sh"
mount --make-shared "$sh" || fatal "make $sh shared"

"$GHOST" cluster up --nodes 2 > /dev/null || fatal "cluster up --nodes 2"
record_cluster

# mounted IN NODE: is PATH a mount point where NODE (or "host") looks?
mounted() {
	local where=$1 path=$2
	if [ "$where" = host ]; then
		awk -v p="$path" '$5 == p {f = 1} END {exit !f}' /proc/self/mountinfo
	else
		# shellcheck disable=SC2016
		"$GHOST" cluster exec "$where" -- awk -v p="$path" \
			'$5 == p {f = 1} END {exit !f}' /proc/self/mountinfo
	fi
}

not_mounted() {
	! mounted "$@"
}

mkdir "$sh/from-host" "$sh/from-node"
mount -t tmpfs ghost-test-host "$sh/from-host" || fatal "mount on the machine"
check "a mount made on the machine appears in node 1" mounted 1 "$sh/from-host"
check "  ... and in node 2" mounted 2 "$sh/from-host"

"$GHOST" cluster exec 1 -- mount -t tmpfs ghost-test-node "$sh/from-node" ||
	fatal "mount in node 1"
check "a mount made in node 1 is there for the next command in node 1" \
	mounted 1 "$sh/from-node"
check "  ... but not on the machine" not_mounted host "$sh/from-node"
check "  ... nor in node 2" not_mounted 2 "$sh/from-node"
check "node 1's /proc is not mounted on the machine" \
	test "$(grep -c ' /proc ' /proc/self/mountinfo)" = "$procs"

umount "$sh/from-host" || fatal "unmount on the machine"
check "an unmount on the machine reaches node 1" not_mounted 1 "$sh/from-host"
check "  ... and node 2" not_mounted 2 "$sh/from-host"

"$GHOST" cluster down
check_eq "cluster down exits 0" 0 $?
check_no_leftovers
umount "$sh"
check "the shared tmpfs unmounts (nothing of the nodes pins it)" \
	not_mounted host "$sh"
rmdir "$sh"
compare_snapshot "$TEST_TMP/snap.before"
finish
