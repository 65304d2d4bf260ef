#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Process relations across a migration, on a 3-node local cluster: a parent
# on node 1 forks a child (tests/migrate/family.c); the child moves to node
# 2, then 3, and the family holds:
#  - the child's PID is a global PID of node 1 (the kernel's half of the range);
#  - the child still sees its parent's PID with getppid();
#  - kill() by the parent on node 1 reaches the child; the child's
#    kill(getppid()) reaches the parent;
#  - the parent's waitpid() returns the child's real exit status (42), and
#    its death by a signal in a second family;
#  - killing the stand-in on node 1 with SIGKILL ends the real child;
#  - the parent moves away from its children too: with its child on another
#    node already, and with its child where it was (running, exiting during
#    the move, or exited and not yet waited for); signals both ways, the
#    child's getppid(), its exit status, and later moves of either;
#  - the child comes back to node 1, where its stand-in turns into it; the
#    parent joins its child's node, where the stand-in holding its PID
#    turns into it, with one child there and another elsewhere, and a
#    failed turn leaves everything as it was;
#  - two children of one parent on one other node: the stand-in of their
#    parent there is the parent of both, and a failed import of the second
#    leaves the first and that stand-in as they were;
#  - a user may not move, fork or checkpoint their own process while it runs
#    a setuid program (it has rights they have not); root may;
#  - a user's child comes back to its stand-in's node, and joins its parent
#    where the import made its stand-in: the stand-in, running as the user,
#    turns into it by execve() of its program; a user's parent with a child
#    elsewhere cannot come back to its stand-in (refused with a clear line).
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
FAMILY=${FAMILY_BIN:-$(realpath "$(dirname "$0")")/family}

"$GHOST" cluster up --nodes 3 > /dev/null || fatal "cluster up --nodes 3"
ok "cluster up --nodes 3"

node_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"': print(p["node"])'
}

# wait_log PARENT REGEX: until the family's output has a line matching REGEX.
wait_log() {
	for _ in $(seq 100); do
		"$GHOST" logs "$1" 2> /dev/null | grep -Eq "$2" && return 0
		sleep 0.05
	done
	return 1
}

# start_family [lazy | two]: a new family on node 1; sets parent and child
# (and child2).
start_family() {
	parent=$("$GHOST" run -d --node 1 -- "$FAMILY" "$@")
	[ -n "$parent" ] || fatal "run -d the family"
	wait_log "$parent" '^family ' || fatal "the family starts"
	child=$("$GHOST" logs "$parent" | awk '$1 == "family" {print $2; exit}')
	child2=$("$GHOST" logs "$parent" | awk '$1 == "family" {print $3; exit}')
}

# ppid_on NODE PID: the parent of PID on NODE (nothing if there is no PID).
ppid_on() {
	"$GHOST" cluster exec "$1" -- sh -c "awk '{print \$4}' /proc/$2/stat 2>/dev/null"
}

# state_on NODE PID: the state letter of PID on NODE.
state_on() {
	"$GHOST" cluster exec "$1" -- sh -c "awk '{print \$3}' /proc/$2/stat 2>/dev/null"
}

# wait_gone NODE PID: until no process of that PID is left on NODE.
wait_gone() {
	for _ in $(seq 100); do
		[ -z "$(ppid_on "$1" "$2")" ] && return 0
		sleep 0.05
	done
	return 1
}

# waited PARENT: the family's "waited" line, once there is one.
waited() {
	wait_log "$1" '^waited ' && "$GHOST" logs "$1" | grep '^waited '
}

# count PARENT REGEX: the lines of the family's output that match REGEX.
count() {
	"$GHOST" logs "$1" | grep -Ec "$2"
}

# check_moves DESCRIPTION PID NODE [AS]: ok if ghost migrate PID NODE works,
# else not ok with its error. AS runs ghost instead (as_nobody, below).
check_moves() {
	local ghost=("$GHOST")

	[ -n "${4:-}" ] && ghost=("$4")
	if "${ghost[@]}" migrate "$2" "$3" > /dev/null 2> "$TEST_TMP/err"; then
		ok "$1"
	else
		not_ok "$1: $(cat "$TEST_TMP/err")"
	fi
}

# sees_parent CHILD: within half a second, CHILD of the family of $parent says
# once more that getppid() names its parent.
sees_parent() {
	local n
	n=$(count "$parent" "^ppid $1 ok")
	sleep 0.5
	test "$(count "$parent" "^ppid $1 ok")" -gt "$n"
}

start_family
check "the child's PID $child is one of node 1's (100000-199999)" \
	test "$child" -ge 100000 -a "$child" -le 199999

# 1. The child moves to node 2.
if "$GHOST" migrate "$child" 2 > "$TEST_TMP/out" 2> "$TEST_TMP/err"; then
	ok "the child moves to node 2"
else
	fatal "the child moves to node 2: $(cat "$TEST_TMP/err")"
fi
check_eq "ps shows the child on node 2" 2 "$(node_of "$child")"
check_eq "ps shows the parent on node 1" 1 "$(node_of "$parent")"
check_eq "node 1 holds a stand-in with the child's PID, a child of the parent" "$parent" \
	"$("$GHOST" cluster exec 1 -- sh -c "awk '{print \$4}' /proc/$child/stat")"
check_eq "node 2 holds a stand-in with the parent's PID, the child's parent" "$parent" \
	"$("$GHOST" cluster exec 2 -- sh -c "awk '{print \$4}' /proc/$child/stat")"
check "on node 2 the child still sees its parent's PID with getppid()" sees_parent "$child"

# 2. Signals both ways.
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent on node 1 reaches the child on node 2" \
	wait_log "$parent" '^child usr1 1$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) on node 2 reaches the parent on node 1" \
	wait_log "$parent" '^parent usr2 1$'

# 3. On to node 3; the limits.
check_moves "the child moves on to node 3" "$child" 3
check_eq "ps shows the child on node 3" 3 "$(node_of "$child")"
check_eq "node 2 no longer holds the parent's PID" "" \
	"$("$GHOST" cluster exec 2 -- sh -c "cat /proc/$parent/comm 2>/dev/null")"
check "on node 3 the child still sees its parent's PID" sees_parent "$child"
check_eq "no line ever saw another parent" 0 "$(count "$parent" "^ppid $child bad")"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent reaches the child on node 3" wait_log "$parent" '^child usr1 2$'

# The child comes back to node 1, where its stand-in, its parent's child,
# turns into it: it is its parent's real child again.
check_moves "the child comes back to node 1, where its stand-in is" "$child" 1
check_eq "on node 1 the child is the parent's child again, and no stand-in" \
	"1 $parent family" \
	"$(node_of "$child") $(ppid_on 1 "$child") $("$GHOST" cluster exec 1 -- cat /proc/$child/comm)"
check "the parent's stand-in on node 3 goes" wait_gone 3 "$parent"
check "the child still sees its parent's PID" sees_parent "$child"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent reaches the child, both on node 1" wait_log "$parent" '^child usr1 3$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) reaches the parent, both on node 1" \
	wait_log "$parent" '^parent usr2 2$'
"$GHOST" migrate "$child" 3 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
check_eq "the child moves to node 3 again" 3 "$(node_of "$child")"

# The parent moves away from node 1 too, to node 2: its stand-ins follow.
check_moves "the parent moves to node 2, its child on node 3" "$parent" 2
check_eq "ps shows the parent on node 2" 2 "$(node_of "$parent")"
check_eq "node 2 holds a stand-in with the child's PID, a child of the parent" "$parent" \
	"$(ppid_on 2 "$child")"
check "the child's stand-in on node 1 goes" wait_gone 1 "$child"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent on node 2 reaches the child on node 3" \
	wait_log "$parent" '^child usr1 4$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) on node 3 reaches the parent on node 2" \
	wait_log "$parent" '^parent usr2 3$'
# The parent joins its child on node 3: the stand-in holding its PID there
# turns into it, so that the child is its own child again.
check_moves "the parent joins its child on node 3" "$parent" 3
check_eq "on node 3 the child's parent is the parent itself (no stand-in)" \
	"3 $parent family" \
	"$(node_of "$parent") $(ppid_on 3 "$child") $("$GHOST" cluster exec 3 -- cat /proc/$parent/comm)"
check "the child's stand-in on node 2 goes" wait_gone 2 "$child"
check "the child still sees its parent's PID" sees_parent "$child"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent reaches its child, both on node 3" \
	wait_log "$parent" '^child usr1 5$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) reaches its parent, both on node 3" \
	wait_log "$parent" '^parent usr2 4$'

# 4. The child exits: the parent's waitpid() gets its status.
"$GHOST" kill -TERM "$child"
check_eq "the parent's waitpid() returns the child's exit status 42" "waited $child exit 42" \
	"$(wait_log "$parent" '^waited ' && "$GHOST" logs "$parent" | grep '^waited ')"

# 5. A second family: the child killed by a signal on node 2.
start_family
"$GHOST" migrate "$child" 2 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
"$GHOST" kill -KILL "$child"
check_eq "the parent's waitpid() sees the child killed by signal 9 on node 2" \
	"waited $child signal 9" \
	"$(wait_log "$parent" '^waited ' && "$GHOST" logs "$parent" | grep '^waited ')"

# 6. A third family: SIGKILL to the stand-in on node 1 ends the real child.
start_family
"$GHOST" migrate "$child" 3 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
"$GHOST" cluster exec 1 -- kill -KILL "$child"
check_eq "the parent sees its child killed" "waited $child signal 9" \
	"$(wait_log "$parent" '^waited ' && "$GHOST" logs "$parent" | grep '^waited ')"
gone=
for _ in $(seq 100); do
	[ -z "$(node_of "$child")" ] && { gone=1; break; }
	sleep 0.05
done
check "SIGKILL to the stand-in on node 1 ends the real child on node 3" test -n "$gone"

# 7. A user's process that runs a setuid-root program has rights its user
# has not: only root may move, fork or checkpoint it.
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
chmod 755 "$TEST_TMP"
cp /bin/sleep "$TEST_TMP/suid-sleep"
chmod 4755 "$TEST_TMP/suid-sleep"
ctl=$GHOST_CLUSTER_DIR/node1/ghostd.sock
suid=$(GHOST_CONTROL=$ctl $NOBODY "$GHOST" run -d -- "$TEST_TMP/suid-sleep" 600)
for verb in "migrate $suid 2" "fork $suid 2" "checkpoint $suid --memory"; do
	# shellcheck disable=SC2086
	GHOST_CONTROL=$ctl $NOBODY "$GHOST" $verb > /dev/null 2> "$TEST_TMP/err"
	check_eq "nobody's setuid process: ghost ${verb%% *} is refused, saying why" "1 1" \
		"$? $(grep -c "other rights than its user's" "$TEST_TMP/err")"
done
"$GHOST" migrate "$suid" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "  ... but root may move it" "0 2" "$? $(node_of "$suid")"
"$GHOST" kill -KILL "$suid"

# 8. A shell in the middle of a command (sleep, most of the time): the
# command's process stays behind, the shell moves on and keeps counting.
shell_out=$TEST_TMP/shell.out
sp=$("$GHOST" run -d --node 1 -- bash -c \
	"n=0; while :; do n=\$((n + 1)); echo \"count \$n\" >> $shell_out; sleep 0.1; done")
sleep 0.3
"$GHOST" migrate "$sp" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "a shell running a command moves" "0 2" "$? $(node_of "$sp")"
n=$(wc -l < "$shell_out")
sleep 0.5
check "  ... and keeps counting on node 2" test "$(wc -l < "$shell_out")" -gt "$n"
"$GHOST" kill -KILL "$sp"

# 9. The parent moves away from its child: the parent's original stays on
# node 1 as the child's parent, a stand-in of the child is the parent's
# child on node 2.
start_family
check_moves "a parent moves to node 2, its child stays on node 1" "$parent" 2
check_eq "ps shows the parent on node 2" 2 "$(node_of "$parent")"
check_eq "on node 1 the child's parent holds the parent's PID" "$parent" "$(ppid_on 1 "$child")"
check_eq "node 2 holds a stand-in with the child's PID, a child of the parent" "$parent" \
	"$(ppid_on 2 "$child")"
check "the child on node 1 still sees its parent's PID" sees_parent "$child"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent on node 2 reaches its child on node 1" \
	wait_log "$parent" '^child usr1 1$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) on node 1 reaches the parent on node 2" \
	wait_log "$parent" '^parent usr2 1$'
# The child moves on; the parent's stand-in on node 1 has nobody left and
# goes, so the parent may come back.
"$GHOST" migrate "$child" 3 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
check "the child moves on to node 3; the parent's stand-in on node 1 goes" \
	wait_gone 1 "$parent"
check_moves "the parent comes back to node 1" "$parent" 1
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent on node 1 reaches its child on node 3" \
	wait_log "$parent" '^child usr1 2$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) on node 3 reaches the parent on node 1" \
	wait_log "$parent" '^parent usr2 2$'
check_eq "no line ever saw another parent" 0 "$(count "$parent" "^ppid $child bad")"
"$GHOST" kill -TERM "$child"
check_eq "the moved parent's waitpid() returns its child's exit status 42" \
	"waited $child exit 42" "$(waited "$parent")"
check "no stand-in is left on node 2" wait_gone 2 "$child"

# 10. The child exits while its parent moves (before, during or after: the
# status is the same).
start_family
"$GHOST" migrate "$parent" 3 > /dev/null 2> "$TEST_TMP/err" &
mover=$!
"$GHOST" kill -TERM "$child"
wait "$mover"
check_eq "a parent moves while its child exits" "0" "$?"
check_eq "  ... and its waitpid() on node 3 returns the exit status 42" \
	"waited $child exit 42" "$(waited "$parent")"

# 11. A zombie: the child exited and its parent has not waited for it yet.
start_family lazy
"$GHOST" kill -TERM "$child"
for _ in $(seq 100); do
	[ "$(state_on 1 "$child")" = Z ] && break
	sleep 0.05
done
check_eq "the child is a zombie on node 1" Z "$(state_on 1 "$child")"
"$GHOST" migrate "$parent" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "its parent moves to node 2" "0 2" "$? $(node_of "$parent")"
"$GHOST" kill -INT "$parent"
check_eq "  ... and its waitpid() there returns the zombie's exit status 42" \
	"waited $child exit 42" "$(waited "$parent")"
check "no stand-in of the parent is left on node 1" wait_gone 1 "$parent"

# 12. Two children of one parent on one other node: the import worker that
# holds the parent's PID there for the first imports the second too.
start_family two
"$GHOST" migrate "$child" 2 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
stand_in=$("$GHOST" cluster exec 2 -- sh -c "cat /proc/$parent/comm 2>/dev/null")
check_eq "the first child moves to node 2; a stand-in holds the parent's PID there" \
	"2 ghost-parent" "$(node_of "$child") $stand_in"
# A failed import of the second (no PID for it on node 2) changes nothing.
max2=$("$GHOST" cluster exec 2 -- cat /proc/sys/kernel/pid_max)
"$GHOST" cluster exec 2 -- sh -c 'echo 50000 > /proc/sys/kernel/pid_max'
"$GHOST" migrate "$child2" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "with no PID for it on node 2, the second child's move fails with one line" \
	"1 1" "$? $(wc -l < "$TEST_TMP/err")"
"$GHOST" cluster exec 2 -- sh -c "echo $max2 > /proc/sys/kernel/pid_max"
check_eq "  ... the second child still runs on node 1, the first on node 2" "1 2" \
	"$(node_of "$child2") $(node_of "$child")"
check_eq "  ... and the parent's stand-in on node 2 still holds the first" "$parent" \
	"$(ppid_on 2 "$child")"
check_moves "the second child moves to node 2 too" "$child2" 2
check_eq "on node 2 both children are children of the parent's PID" "$parent $parent" \
	"$(ppid_on 2 "$child") $(ppid_on 2 "$child2")"
check "the second child sees its parent's PID with getppid() on node 2" sees_parent "$child2"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent on node 1 reaches the first child on node 2" \
	wait_log "$parent" "^child $child usr1 1\$"
check "kill() by the parent on node 1 reaches the second child on node 2" \
	wait_log "$parent" "^child $child2 usr1 1\$"
"$GHOST" kill -HUP "$child"
check "the first child's kill(getppid()) reaches the parent" wait_log "$parent" '^parent usr2 1$'
"$GHOST" kill -HUP "$child2"
check "the second child's kill(getppid()) reaches the parent" wait_log "$parent" '^parent usr2 2$'
# The first moves on; the stand-in stays for the second.
"$GHOST" migrate "$child" 3 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
check_eq "the first child moves on to node 3; the second stays a child of the stand-in" \
	"3 $parent" "$(node_of "$child") $(ppid_on 2 "$child2")"
"$GHOST" kill -TERM "$child2"
check_eq "the parent's waitpid() returns the second child's exit status 42" \
	"waited $child2 exit 42" "$(wait_log "$parent" "^waited $child2 " &&
		"$GHOST" logs "$parent" | grep "^waited $child2 ")"
check "with no child left there, the parent's stand-in on node 2 goes" wait_gone 2 "$parent"
"$GHOST" kill -TERM "$child"
check_eq "the parent's waitpid() returns the first child's exit status 42" \
	"waited $child exit 42" "$(wait_log "$parent" "^waited $child " &&
		"$GHOST" logs "$parent" | grep "^waited $child ")"
check_eq "no line ever saw another parent" 0 "$(count "$parent" "^ppid [0-9]* bad")"

# 13. A parent joins one of its two children on node 2, where the stand-in
# that holds its PID turns into it; the other child stays on node 1. A
# failed turn (no PID there for the other child's stand-in) leaves all as
# it was.
start_family two
"$GHOST" migrate "$child" 2 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
"$GHOST" cluster exec 2 -- sh -c 'echo 50000 > /proc/sys/kernel/pid_max'
"$GHOST" migrate "$parent" 2 > /dev/null 2> "$TEST_TMP/err"
check_eq "with no PID on node 2 for its other child's stand-in, the parent's move fails with one line" \
	"1 1" "$? $(wc -l < "$TEST_TMP/err")"
"$GHOST" cluster exec 2 -- sh -c "echo $max2 > /proc/sys/kernel/pid_max"
check_eq "  ... the parent still runs on node 1 with its second child, the first on node 2" \
	"1 $parent 2" "$(node_of "$parent") $(ppid_on 1 "$child2") $(node_of "$child")"
check_eq "  ... and on node 2 the first child's parent is still the stand-in" \
	"$parent ghost-parent" \
	"$(ppid_on 2 "$child") $("$GHOST" cluster exec 2 -- cat /proc/$parent/comm)"
"$GHOST" kill -HUP "$child"
check "  ... whose kill(getppid()) still reaches the parent" wait_log "$parent" '^parent usr2 1$'
check_moves "the parent joins its first child on node 2" "$parent" 2
check_eq "on node 2 the first child's parent is the parent itself" "$parent family" \
	"$(ppid_on 2 "$child") $("$GHOST" cluster exec 2 -- cat /proc/$parent/comm)"
check_eq "node 2 holds a stand-in of the second child, a child of the parent" "$parent" \
	"$(ppid_on 2 "$child2")"
check_eq "on node 1 the second child's parent holds the parent's PID" "$parent" \
	"$(ppid_on 1 "$child2")"
check "both children see their parent's PID" \
	eval 'sees_parent "$child" && sees_parent "$child2"'
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent on node 2 reaches the child there" \
	wait_log "$parent" "^child $child usr1 1\$"
check "kill() by the parent on node 2 reaches the child on node 1" \
	wait_log "$parent" "^child $child2 usr1 1\$"
"$GHOST" kill -HUP "$child2"
check "the child on node 1's kill(getppid()) reaches the parent" \
	wait_log "$parent" '^parent usr2 2$'
"$GHOST" kill -TERM "$child"
check_eq "the parent's waitpid() returns the exit status 42 of the child beside it" \
	"waited $child exit 42" "$(wait_log "$parent" "^waited $child " &&
		"$GHOST" logs "$parent" | grep "^waited $child ")"
"$GHOST" kill -TERM "$child2"
check_eq "  ... and that of the child on node 1" \
	"waited $child2 exit 42" "$(wait_log "$parent" "^waited $child2 " &&
		"$GHOST" logs "$parent" | grep "^waited $child2 ")"
check_eq "no line ever saw another parent" 0 "$(count "$parent" "^ppid [0-9]* bad")"

# 14. A parent comes back to the node where its original stands in for its
# child: the stand-in turns into it again.
start_family
"$GHOST" migrate "$parent" 2 > /dev/null 2> "$TEST_TMP/err" || not_ok "move: $(cat "$TEST_TMP/err")"
check_eq "a parent moves to node 2; on node 1 its stand-in holds its child" "2 $parent" \
	"$(node_of "$parent") $(ppid_on 1 "$child")"
check_moves "the parent comes back to node 1, where its stand-in is" "$parent" 1
check_eq "on node 1 the child's parent is the parent itself again" "1 $parent family" \
	"$(node_of "$parent") $(ppid_on 1 "$child") $("$GHOST" cluster exec 1 -- cat /proc/$parent/comm)"
check "the child's stand-in on node 2 goes" wait_gone 2 "$child"
"$GHOST" kill -USR1 "$parent"
check "kill() by the parent reaches its child, both on node 1" \
	wait_log "$parent" '^child usr1 1$'
"$GHOST" kill -HUP "$child"
check "the child's kill(getppid()) reaches its parent, both on node 1" \
	wait_log "$parent" '^parent usr2 1$'
"$GHOST" kill -TERM "$child"
check_eq "the parent's waitpid() returns the child's exit status 42" \
	"waited $child exit 42" "$(waited "$parent")"
check_eq "no line ever saw another parent" 0 "$(count "$parent" "^ppid $child bad")"

# 15. A user's family: a stand-in running as that user turns into its
# process by the kernel's rules (it runs the process's executable), unless
# that would take children with PIDs of its choosing.
cp "$FAMILY" "$TEST_TMP/family"
# as_nobody ARGS: ghost ARGS as nobody, on node 1.
as_nobody() {
	GHOST_CONTROL=$ctl $NOBODY "$GHOST" "$@"
}
# nobody_family [two]: start_family, as nobody.
nobody_family() {
	parent=$(as_nobody run -d -- "$TEST_TMP/family" "$@")
	wait_log "$parent" '^family ' || fatal "nobody's family starts"
	child=$("$GHOST" logs "$parent" | awk '$1 == "family" {print $2; exit}')
	child2=$("$GHOST" logs "$parent" | awk '$1 == "family" {print $3; exit}')
}
# whose NODE PID: the parent, comm, executable and user of PID on NODE.
whose() {
	"$GHOST" cluster exec "$1" -- sh -c "awk '{print \$4}' /proc/$2/stat;
		cat /proc/$2/comm; readlink /proc/$2/exe;
		awk '/^Uid:/ {print \$2}' /proc/$2/status" | tr '\n' ' '
}
nobody_family
check_moves "nobody's child moves to node 2" "$child" 2 as_nobody
check_moves "nobody's child comes back to node 1, where its stand-in turns into it" \
	"$child" 1 as_nobody
check_eq "  ... it is the parent's child there again: the family's program, as nobody" \
	"1 $parent family $TEST_TMP/family 65534 " "$(node_of "$child") $(whose 1 "$child")"
check "  ... the parent's stand-in on node 2 goes" wait_gone 2 "$parent"
"$GHOST" kill -USR1 "$parent"
check "  ... kill() by the parent reaches it" wait_log "$parent" '^child usr1 1$'
"$GHOST" kill -HUP "$child"
check "  ... its kill(getppid()) reaches the parent" wait_log "$parent" '^parent usr2 1$'
check_moves "nobody's parent moves to node 2, its child stays on node 1" "$parent" 2 as_nobody
check_moves "the child joins it there, where the stand-in the import made turns into it" \
	"$child" 2 as_nobody
check_eq "  ... it is the parent's child on node 2: the family's program, as nobody" \
	"2 $parent family $TEST_TMP/family 65534 " "$(node_of "$child") $(whose 2 "$child")"
check "  ... the parent's original on node 1 goes" wait_gone 1 "$parent"
"$GHOST" kill -USR1 "$parent"
check "  ... kill() by the parent reaches it" wait_log "$parent" '^child usr1 2$'
"$GHOST" kill -TERM "$child"
check_eq "  ... whose waitpid() returns its exit status 42" \
	"waited $child exit 42" "$(waited "$parent")"
check_eq "  ... and no line ever saw another parent" 0 "$(count "$parent" "^ppid [0-9]* bad")"

nobody_family two
check_moves "nobody's parent of two moves to node 2" "$parent" 2 as_nobody
check_moves "  ... its second child to node 3" "$child2" 3 as_nobody
as_nobody migrate "$parent" 1 > /dev/null 2> "$TEST_TMP/err"
check_eq "the parent cannot come back to node 1, with a child on node 3, saying why" \
	"1 1" "$? $(grep -c "cannot give the stand-ins of its children" "$TEST_TMP/err")"
check_eq "  ... it still runs on node 2; its original on node 1 holds the first child" \
	"2 $parent" "$(node_of "$parent") $(ppid_on 1 "$child")"
check "  ... which still sees its parent's PID" sees_parent "$child"
"$GHOST" kill -TERM "$child"
"$GHOST" kill -TERM "$child2"
check_eq "  ... and the parent's waitpid() returns both exit statuses" \
	"waited $child exit 42,waited $child2 exit 42" \
	"$(wait_log "$parent" "^waited $child " && wait_log "$parent" "^waited $child2 " &&
		"$GHOST" logs "$parent" | grep '^waited ' | sort -k2,2n | paste -sd,)"

"$GHOST" cluster down > /dev/null || not_ok "cluster down"
finish
