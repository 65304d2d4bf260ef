#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Bad input for `ghost`: each case must give a clear error (exit 1 and one
# line 'ghost: ...' on stderr, or exit 2 for usage errors), start nothing, and
# leave the original intact. One case per run; see README.md for the list.
#
# usage: bad-input.sh --ghost PATH --targets DIR CASE
#   DIR holds the target programs (it-proc-identity, it-mem-anon, it-fd-regular,
#   it-zombie).
#
# Exit status: 0 pass, 1 fail, 77 skip. Everything this script starts is
# ended by PID on exit, and its temporary directory removed.

set -u

ghost=
targets=
while [ $# -gt 1 ]; do
	case $1 in
	--ghost) ghost=$2; shift 2 ;;
	--targets) targets=$2; shift 2 ;;
	*) break ;;
	esac
done
[ $# = 1 ] && [ -n "$ghost" ] && [ -n "$targets" ] || {
	echo "usage: $0 --ghost PATH --targets DIR CASE" >&2
	exit 2
}
case=$1
case $ghost in /*) ;; *) ghost=$PWD/$ghost ;; esac
case $targets in /*) ;; *) targets=$PWD/$targets ;; esac
name="bad-input $case"

. "$(dirname "$0")/lib.sh"

dir=
children=()   # PIDs of our children, ended and reaped on exit
others=()     # "PID comm" of processes we caused that are not our children

cleanup() {
	local rc=$? p c
	trap - EXIT INT TERM
	set +e
	for p in "${others[@]}"; do
		c=${p#* }
		p=${p%% *}
		proc_alive "$p" && [ "$(proc_comm "$p")" = "$c" ] && kill -KILL "$p" 2>/dev/null
	done
	for p in "${children[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -n "$dir" ]; then
		for p in "$dir"/*.log "$dir"/err; do
			[ -s "$p" ] || continue
			echo "--- $(basename "$p")"
			cat "$p"
		done
		echo "---"
	fi
	[ -n "$dir" ] && rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ -x "$ghost" ] || fail "ghost binary '$ghost' not found"
[ "$(id -u)" = 0 ] || skip "needs root"

dir=$(mktemp -d "${TMPDIR:-/tmp}/ghost-bad.XXXXXX") || fail "mktemp failed"
chmod 755 "$dir"

# --- helpers ---------------------------------------------------------------

# Start target $1 (a name in $targets) in $dir/$1.d per the target protocol;
# its PID in $pid, its comm in $comm.
start_target() {
	local t=$1 d=$dir/$1.d
	mkdir -p "$d" && chmod 755 "$d"
	: > "$d/ready"
	: > "$d/result"
	chmod 666 "$d/ready" "$d/result"
	echo original > "$d/stage"
	(
		cd "$d" || exit 1
		export GHOST_TEST_READY=$d/ready GHOST_TEST_RESULT=$d/result GHOST_TEST_STAGE=$d/stage
		exec "$targets/it-$t"
	) < /dev/null >> "$dir/$t.log" 2>&1 &
	pid=$!
	children+=("$pid")
	tdir=$d
	wait_until 20 grep -qx ready "$d/ready" || fail "target '$t' not ready within 20 s"
	comm=$(proc_comm "$pid")
	say "started $t as PID $pid"
}

# Wait for child $1 to end (bounded); its status in $status.
wait_child() {
	local p=$1 t=${2:-30} start=$SECONDS
	while proc_alive "$p"; do
		[ $((SECONDS - start)) -ge "$t" ] && return 1
		sleep 0.05
	done
	wait "$p"
	status=$?
}

# The original must still run untraced and pass its checks when woken.
original_intact() {
	wait_until 5 untraced "$pid" ||
		fail "the original is not running untraced (State $(proc_field "$pid" State), TracerPid $(proc_field "$pid" TracerPid))"
	kill -USR1 "$pid"
	wait_child "$pid" 30 || fail "the original did not end within 30 s of SIGUSR1"
	[ "$status" = 0 ] || fail "the original failed its checks (exit $status)"
	say "the original is intact: it passed its checks"
}

# Run ghost (bounded): status in $rc, stderr in $dir/err.
run_ghost() {
	timeout -k 5 30 "$@" < /dev/null > "$dir/out" 2> "$dir/err"
	rc=$?
}

# Run a ghost command that must fail with exit 1 and one line 'ghost: ...'
# matching the extended regex $1 (case-insensitive); the line in $msg.
expect_error() {
	local re=$1 lines
	shift
	run_ghost "$@"
	msg=$(head -n 1 "$dir/err")
	say "$*: exit $rc: $msg"
	[ "$rc" = 1 ] || fail "'${*:2}': exit $rc, want 1"
	lines=$(wc -l < "$dir/err")
	[ "$lines" = 1 ] || fail "'${*:2}': $lines lines on stderr, want 1"
	case $msg in "ghost: "*) ;; *) fail "'${*:2}': the message does not start with 'ghost: '" ;; esac
	[ -z "$re" ] || printf '%s\n' "$msg" | grep -Eiq -- "$re" ||
		fail "'${*:2}': the message does not match /$re/"
}

# No process with PID $1 may exist (a failed restart started nothing).
nothing_started() {
	if [ -d "/proc/$1" ]; then
		others+=("$1 $(proc_comm "$1")")
		fail "a process with PID $1 exists after a failed restart ($(proc_comm "$1"))"
	fi
}

# Checkpoint target $1 with --kill into $dir/img; PID in $pid, comm in $comm.
image_of() {
	start_target "$1"
	run_ghost "$ghost" checkpoint "$pid" -o "$dir/img" --kill
	[ "$rc" = 0 ] || fail "ghost checkpoint $1: exit $rc: $(head -n 1 "$dir/err")"
	wait_child "$pid" 10 || fail "the original still runs after checkpoint --kill"
	[ -s "$dir/img" ] || fail "no image"
	others+=("$pid $comm") # whatever a wrong restart may leave behind
	say "image of $1: $(stat -c %s "$dir/img") bytes"
}

# The intact image still restores and passes: the failures above came from
# the damage, not from a broken image or engine.
good_image_restores() {
	local rpid
	"$ghost" restart "$dir/img" < /dev/null > "$dir/restart.log" 2>&1 &
	rpid=$!
	children+=("$rpid")
	wait_until 30 restored "$pid" "$rpid" || fail "the intact image did not restore"
	echo restored > "$tdir/stage"
	kill -USR1 "$pid"
	wait_child "$rpid" 30 || fail "the restored process did not end"
	[ "$status" = 0 ] || fail "the restored process failed (ghost restart exit $status)"
	say "the intact image restores and passes"
}

restored() { # PID PARENT
	proc_alive "$1" && [ "$(proc_comm "$1")" = "$comm" ] && untraced "$1" &&
		[ "$(proc_field "$1" PPid)" = "$2" ]
}

# A PID no process has (from the top of the range, where PIDs are rarely in use).
free_pid() {
	local p
	p=$(($(cat /proc/sys/kernel/pid_max) - 1))
	while [ -e "/proc/$p" ]; do p=$((p - 1)); done
	echo "$p"
}

# Prefix for running a command as user and group 65534 with no groups.
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

flip_byte() { # FILE OFFSET
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || return 1
	printf "\\x$(printf %02x $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# --- cases -----------------------------------------------------------------

case $case in
unknown-pid)
	p=$(free_pid)
	expect_error "$p" "$ghost" checkpoint "$p" -o "$dir/img"
	[ -e "$dir/img" ] && say "note: a failed checkpoint left a file behind"
	;;

no-permission)
	command -v setpriv > /dev/null || skip "setpriv (util-linux) not installed"
	start_target proc-identity
	mkdir "$dir/nobody" && chmod 777 "$dir/nobody"
	expect_error 'permi|privileg|capab|not allowed|EPERM|ptrace|access' \
		"${as_nobody[@]}" "$ghost" checkpoint "$pid" -o "$dir/nobody/img"
	original_intact
	;;

kernel-thread)
	[ "$(proc_comm 2)" = kthreadd ] || skip "PID 2 is not kthreadd (not in the initial PID namespace)"
	expect_error 'kernel|thread|kthreadd' "$ghost" checkpoint 2 -o "$dir/img"
	[ "$(proc_comm 2)" = kthreadd ] || fail "kthreadd is gone"
	;;

zombie)
	start_target zombie
	z=$(cat "$tdir/zombie.pid")
	[ "$(proc_field "$z" State)" = Z ] || fail "PID $z is not a zombie"
	expect_error 'zombie|dead|exited|defunct|not running' "$ghost" checkpoint "$z" -o "$dir/img"
	[ "$(proc_field "$z" State)" = Z ] || fail "the zombie $z changed state"
	original_intact
	;;

truncated)
	image_of mem-anon
	size=$(stat -c %s "$dir/img")
	for at in 0 1 4 8 12 16 32 64 128 1000 4096 $((size / 10)) $((size / 4)) $((size / 2)) \
		$((size * 3 / 4)) $((size - 4097)) $((size - 100)) $((size - 8)) $((size - 1)); do
		[ "$at" -ge 0 ] && [ "$at" -lt "$size" ] || continue
		head -c "$at" "$dir/img" > "$dir/bad"
		expect_error '' "$ghost" restart "$dir/bad"
		nothing_started "$pid"
	done
	good_image_restores
	;;

flipped)
	image_of mem-anon
	size=$(stat -c %s "$dir/img")
	for at in 0 3 7 8 12 16 40 100 200 1000 4096 $((size / 8)) $((size / 4)) $((size / 3)) \
		$((size / 2)) $((size * 2 / 3)) $((size * 3 / 4)) $((size * 7 / 8)) \
		$((size - 4096)) $((size - 64)) $((size - 1)); do
		[ "$at" -ge 0 ] && [ "$at" -lt "$size" ] || continue
		cp "$dir/img" "$dir/bad"
		flip_byte "$dir/bad" "$at" || fail "cannot flip byte $at"
		cmp -s "$dir/img" "$dir/bad" && fail "byte $at not flipped"
		expect_error '' "$ghost" restart "$dir/bad"
		nothing_started "$pid"
	done
	good_image_restores
	;;

version)
	image_of proc-identity
	cp "$dir/img" "$dir/bad"
	v=$(od -An -tu4 -j 8 -N4 --endian=little "$dir/img" | tr -d ' ')
	nv=$((v + 1))
	printf "\\x$(printf %02x $((nv & 255)))\\x$(printf %02x $((nv >> 8 & 255)))\\x$(printf %02x $((nv >> 16 & 255)))\\x$(printf %02x $((nv >> 24 & 255)))" |
		dd of="$dir/bad" bs=1 seek=8 conv=notrunc status=none
	say "format version $v patched to $nv"
	expect_error 'version' "$ghost" restart "$dir/bad"
	nothing_started "$pid"
	expect_error 'version' "$ghost" image show "$dir/bad"
	good_image_restores
	;;

busy-pid)
	start_target proc-identity
	run_ghost "$ghost" checkpoint "$pid" -o "$dir/img"
	[ "$rc" = 0 ] || fail "ghost checkpoint: exit $rc: $(head -n 1 "$dir/err")"
	wait_until 5 untraced "$pid" || fail "the original is not running untraced after the snapshot"
	expect_error "$pid|busy|in use|exist|running|replace" "$ghost" restart "$dir/img"
	original_intact
	;;

restart-nonroot)
	command -v setpriv > /dev/null || skip "setpriv (util-linux) not installed"
	image_of proc-identity
	chmod 644 "$dir/img"
	expect_error 'permi|privileg|credential|capab|not allowed|root|uid|identity' \
		"${as_nobody[@]}" "$ghost" restart "$dir/img"
	nothing_started "$pid"
	good_image_restores
	;;

file-changed)
	image_of fd-regular
	printf 'more' >> "$tdir/data.bin"
	expect_error 'data\.bin' "$ghost" restart "$dir/img"
	nothing_started "$pid"
	;;

output-path)
	start_target proc-identity
	expect_error '' "$ghost" checkpoint "$pid" -o "$dir/no/such/dir/img"
	original_intact
	;;

usage)
	# a PID nobody has: a CLI that wrongly accepts the arguments fails on it
	# (exit 1, not 2) instead of acting on a real process
	p=$(free_pid)
	for args in "" "frobnicate" "checkpoint" "checkpoint $p" "checkpoint -o $dir/img" \
		"checkpoint notapid -o $dir/img" "checkpoint $p -o $dir/img --kill --stop" \
		"checkpoint $p -o $dir/img --no-such-option" "restart" "restart --no-such-option $dir/img" \
		"image" "image show" "image frobnicate $dir/img"; do
		# shellcheck disable=SC2086
		run_ghost "$ghost" $args
		say "ghost $args: exit $rc"
		[ "$rc" = 2 ] || fail "'ghost $args': exit $rc, want 2 (usage error)"
		[ -s "$dir/err" ] || fail "'ghost $args': nothing on stderr"
	done
	for args in "--help" "checkpoint --help" "restart --help" "image show --help"; do
		# shellcheck disable=SC2086
		run_ghost "$ghost" $args
		[ "$rc" = 0 ] || fail "'ghost $args': exit $rc, want 0"
		[ -s "$dir/out" ] || fail "'ghost $args': no help on stdout"
	done
	;;

image-show)
	image_of proc-identity
	run_ghost "$ghost" image show "$dir/img"
	[ "$rc" = 0 ] || fail "ghost image show: exit $rc: $(head -n 1 "$dir/err")"
	grep -qw "$pid" "$dir/out" || fail "ghost image show does not print the PID $pid"
	grep -qF "$comm" "$dir/out" || fail "ghost image show does not print the comm '$comm'"
	run_ghost "$ghost" image show --json "$dir/img"
	[ "$rc" = 0 ] || fail "ghost image show --json: exit $rc: $(head -n 1 "$dir/err")"
	python3 -m json.tool < "$dir/out" > /dev/null 2> "$dir/json.log" ||
		fail "ghost image show --json does not print valid JSON"
	grep -qw "$pid" "$dir/out" || fail "the JSON does not hold the PID $pid"
	grep -qF "\"$comm\"" "$dir/out" || fail "the JSON does not hold the comm \"$comm\""
	head -c 5000 /dev/urandom > "$dir/garbage"
	expect_error '' "$ghost" image show "$dir/garbage"
	head -c $(($(stat -c %s "$dir/img") / 2)) "$dir/img" > "$dir/half"
	expect_error '' "$ghost" image show "$dir/half"
	;;

*)
	echo "unknown case '$case'" >&2
	exit 2
	;;
esac

printf 'PASS: %s\n' "$name"
exit 0
