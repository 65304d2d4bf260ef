#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs one integration scenario: starts a target, waits until it is ready,
# checkpoints it with `ghost`, restarts it, wakes it with SIGUSR1 and takes
# its verdict. The protocol and the variants are described in README.md.
#
# Exit status: 0 pass, 1 fail, 77 skip. Everything this script starts is
# ended by PID on exit, and its temporary directory removed.

set -u

usage() {
	cat <<EOF
usage: $0 [options] [--] COMMAND [ARG...]
  --ghost PATH            the ghost binary (required unless --no-checkpoint)
  --no-checkpoint         only run the target and wake it: checks the target itself
  --snapshot              checkpoint without --kill; the original must still pass
  --stop                  checkpoint with --stop; the original must be stopped and
                          untraced, then still pass after SIGCONT
  --replace               checkpoint without --kill, restart with --replace while
                          the original runs
  --detach                restart with -d (the verdict comes from the result file)
  --cycles N              N checkpoint/restart cycles in a row (default 1)
  --expect-refusal REGEX  the checkpoint must fail (exit 1) with one line
                          'ghost: ...' matching REGEX; the original must be left
                          running, untraced, and still pass
  --drop-unsupported      pass --drop-unsupported to the checkpoint
  --shell-job             pass --shell-job to the checkpoint
  --ready-comm NAME       the target writes no ready file: it is ready once its
                          comm is NAME (for programs nobody here wrote)
  --end signal|kill       end by SIGUSR1 and the target's verdict (default), or
                          by SIGTERM once the restored process is seen alive
  --expect-syscall NR     checkpoint only once the target is blocked in
                          system call NR (/proc/PID/syscall)
  --max-image-kib N       the image must be at most N KiB
EOF
	exit 2
}

ghost=
no_ckpt=0
mode=kill
detach=0
cycles=1
refusal=
drop=0
shell_job=0
ready_comm=
end=signal
expect_syscall=
max_image_kib=

while [ $# -gt 0 ]; do
	case $1 in
	--ghost) ghost=$2; shift 2 ;;
	--no-checkpoint) no_ckpt=1; shift ;;
	--snapshot) mode=snapshot; shift ;;
	--stop) mode=stop; shift ;;
	--replace) mode=replace; shift ;;
	--detach) detach=1; shift ;;
	--cycles) cycles=$2; shift 2 ;;
	--expect-refusal) refusal=$2; shift 2 ;;
	--drop-unsupported) drop=1; shift ;;
	--shell-job) shell_job=1; shift ;;
	--ready-comm) ready_comm=$2; shift 2 ;;
	--end) end=$2; shift 2 ;;
	--expect-syscall) expect_syscall=$2; shift 2 ;;
	--max-image-kib) max_image_kib=$2; shift 2 ;;
	--) shift; break ;;
	-*) echo "unknown option '$1'" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
# the target runs from its own directory: make relative paths absolute
case $1 in /*) ;; */*) set -- "$PWD/$1" "${@:2}" ;; esac
case $ghost in /* | "") ;; *) ghost=$PWD/$ghost ;; esac
case $end in signal | kill) ;; *) usage ;; esac

name=$(basename "$1")
[ $# -ge 2 ] && name="$name $2"

. "$(dirname "$0")/lib.sh"

# --- state for the cleanup -------------------------------------------------

dir=
pid=           # the target's PID: the original's, then the restored process's
comm=          # the target's comm at ready time
restart_pid=   # a running `ghost restart` (our child)
original_alive=0

# Whether PID is a live process (not a zombie) with the target's comm.
is_target() {
	proc_alive "$1" || return 1
	[ -z "$comm" ] || [ "$(proc_comm "$1")" = "$comm" ]
}

kill_child() { # PID: end one of our children and reap it
	[ -n "$1" ] || return 0
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

cleanup() {
	local rc=$?

	trap - EXIT INT TERM
	set +e
	# the restored process is not always our child: end it by PID, if it
	# is still the target
	if is_target "$pid"; then
		kill -KILL "$pid" 2>/dev/null
	fi
	kill_child "$restart_pid"
	[ "$original_alive" = 1 ] && kill_child "$pid"
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -n "$dir" ]; then
		local f
		for f in target.log ckpt.err restart.out restart.err; do
			[ -s "$dir/$f" ] || continue
			echo "--- $f"
			cat "$dir/$f"
		done
		for f in "$dir"/img*; do
			[ -s "$f" ] && [ -n "$ghost" ] || continue
			echo "--- ghost image show $(basename "$f") (first lines)"
			timeout 10 "$ghost" image show "$f" 2>&1 | head -n 40
		done
		echo "---"
	fi
	[ -n "$dir" ] && rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- checks ----------------------------------------------------------------

if [ "$no_ckpt" = 0 ]; then
	[ -n "$ghost" ] || usage
	[ -x "$ghost" ] || fail "ghost binary '$ghost' not found"
	[ "$(id -u)" = 0 ] || skip "checkpoint and restart need root"
	if [ "$cycles" -gt 1 ] && { [ "$mode" != kill ] || [ "$detach" = 1 ]; }; then
		fail "--cycles needs the default mode and no --detach"
	fi
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ghost-it.XXXXXX") || fail "mktemp failed"
chmod 755 "$dir"
ready=$dir/ready
result=$dir/result
stage=$dir/stage
: > "$ready"
: > "$result"
chmod 666 "$ready" "$result"
echo original > "$stage"
: > "$dir/target.log"

# Wait up to $2 seconds for child $1 to end; its exit status in $status.
# Resends SIGUSR1 to the target every 10 s when $3 is "wake" (a wake-up may
# race with the start of a wait in the target).
wait_child() {
	local p=$1 t=$2 how=${3:-} start=$SECONDS next=10 st
	while kill -0 "$p" 2>/dev/null; do
		st=$(proc_field "$p" State) || break
		[ "$st" = Z ] && break
		[ $((SECONDS - start)) -ge "$t" ] && return 1
		if [ "$how" = wake ] && [ $((SECONDS - start)) -ge $next ]; then
			next=$((next + 10))
			is_target "$pid" && kill -USR1 "$pid" 2>/dev/null
		fi
		sleep 0.05
	done
	wait "$p"
	status=$?
	return 0
}

# Wait up to $2 seconds for PID $1 (not our child) to disappear.
wait_gone() {
	local p=$1 t=$2 start=$SECONDS next=10 st
	while [ -d "/proc/$p" ]; do
		st=$(proc_field "$p" State) || break
		[ "$st" = Z ] && break
		[ $((SECONDS - start)) -ge "$t" ] && return 1
		if [ "$end" = signal ] && [ $((SECONDS - start)) -ge $next ]; then
			next=$((next + 10))
			is_target "$p" && kill -USR1 "$p" 2>/dev/null
		fi
		sleep 0.05
	done
	return 0
}

is_ready() {
	if [ -n "$ready_comm" ]; then
		[ "$(proc_comm "$pid")" = "$ready_comm" ]
	else
		grep -qx ready "$ready" 2>/dev/null
	fi
}

target_gone() { ! kill -0 "$pid" 2>/dev/null || [ "$(proc_field "$pid" State)" = Z ]; }

in_syscall() {
	local nr rest
	read -r nr rest < "/proc/$pid/syscall" 2>/dev/null || return 1
	[ "$nr" = "$expect_syscall" ]
}

stopped_untraced() {
	[ "$(proc_field "$1" State)" = T ] && [ "$(proc_field "$1" TracerPid)" = 0 ]
}

# Wake the original (our child) and require a pass.
check_original() {
	local what=$1
	echo original > "$stage"
	kill -USR1 "$pid" || fail "cannot signal the original"
	wait_child "$pid" 30 wake || fail "$what: the original did not end within 30 s of SIGUSR1"
	original_alive=0
	[ "$status" = 77 ] && skip "the target skipped: $(tail -n 1 "$dir/target.log")"
	[ "$status" = 0 ] || fail "$what: the original failed its checks (exit $status)"
	say "$what: the original passed its checks"
}

start_target() {
	(
		cd "$dir" || exit 1
		export GHOST_TEST_READY=$ready GHOST_TEST_RESULT=$result GHOST_TEST_STAGE=$stage
		exec "$@"
	) < /dev/null >> "$dir/target.log" 2>&1 &
	pid=$!
	original_alive=1
	say "started '$*' as PID $pid in $dir"
	if ! wait_until 20 is_ready; then
		if target_gone; then
			wait "$pid"
			status=$?
			original_alive=0
			[ "$status" = 77 ] && skip "the target skipped: $(tail -n 1 "$dir/target.log")"
			fail "the target ended (exit $status) before it was ready"
		fi
		fail "the target was not ready within 20 s"
	fi
	comm=$(proc_comm "$pid")
	say "ready: comm '$comm', exe '$(readlink "/proc/$pid/exe")'"
	if [ -n "$expect_syscall" ]; then
		wait_until 10 in_syscall ||
			fail "the target is not blocked in system call $expect_syscall ($(cat "/proc/$pid/syscall" 2>&1))"
		say "blocked in system call $expect_syscall"
	fi
}

# Checkpoint $pid into $1 with the extra arguments that follow.
checkpoint() {
	local img=$1 t0 rc
	shift
	local args=("$@")
	[ "$drop" = 1 ] && args+=(--drop-unsupported)
	[ "$shell_job" = 1 ] && args+=(--shell-job)
	t0=$(now)
	say "ghost checkpoint $pid -o $(basename "$img") ${args[*]}"
	timeout -k 5 60 "$ghost" checkpoint "$pid" -o "$img" "${args[@]}" \
		< /dev/null > "$dir/ckpt.out" 2> "$dir/ckpt.err"
	rc=$?
	say "checkpoint: exit $rc in $(since "$t0") s"
	return $rc
}

check_image() {
	local img=$1 size
	[ -s "$img" ] || fail "checkpoint succeeded but '$(basename "$img")' is empty or missing"
	size=$(stat -c %s "$img")
	say "image: $size bytes"
	if [ -n "$max_image_kib" ] && [ "$size" -gt $((max_image_kib * 1024)) ]; then
		fail "image is $size bytes, want at most $max_image_kib KiB"
	fi
}

# The restored process: PID $pid, same comm, not traced, not stopped, and
# (unless detached) a child of `ghost restart`.
restored_ok() {
	is_target "$pid" && untraced "$pid" || return 1
	[ "$detach" = 1 ] || [ "$(proc_field "$pid" PPid)" = "$restart_pid" ]
}

restart_failed() { ! kill -0 "$restart_pid" 2>/dev/null || [ "$(proc_field "$restart_pid" State)" = Z ]; }

restart() {
	local img=$1 t0 out
	shift
	t0=$(now)
	say "ghost restart $(basename "$img") $*"
	if [ "$detach" = 1 ]; then
		timeout -k 5 60 "$ghost" restart "$img" -d "$@" \
			< /dev/null > "$dir/restart.out" 2> "$dir/restart.err"
		status=$?
		[ "$status" = 0 ] || fail "ghost restart -d: exit $status"
		out=$(head -n 1 "$dir/restart.out")
		[ "$out" = "$pid" ] || fail "ghost restart -d printed '$out', want the PID $pid"
		wait_until 20 restored_ok || fail "no restored process with PID $pid, comm '$comm', untraced"
	else
		"$ghost" restart "$img" "$@" < /dev/null > "$dir/restart.out" 2> "$dir/restart.err" &
		restart_pid=$!
		until restored_ok; do
			if restart_failed; then
				wait "$restart_pid"
				status=$?
				restart_pid=
				fail "ghost restart ended (exit $status) before the process was seen restored"
			fi
			[ "$(since "$t0" | cut -d. -f1)" -ge 30 ] &&
				fail "no restored process with PID $pid, comm '$comm', untraced, child of ghost restart ($restart_pid) within 30 s"
			sleep 0.05
		done
	fi
	say "restored as PID $pid in $(since "$t0") s (state $(proc_field "$pid" State), parent $(proc_field "$pid" PPid))"
}

# Wake the restored process (or end it) and take its verdict.
finish_restored() {
	local res
	if [ "$end" = kill ]; then
		sleep 1
		is_target "$pid" || fail "the restored process died within 1 s"
		kill -TERM "$pid"
	else
		echo restored > "$stage"
		kill -USR1 "$pid" || fail "cannot signal the restored process"
	fi
	if [ "$detach" = 1 ]; then
		wait_gone "$pid" 30 || fail "the restored process did not end within 30 s"
		[ "$end" = kill ] && { say "the restored process ended on SIGTERM"; return 0; }
		res=$(cat "$result")
		[ "$res" = pass ] || fail "the restored process reported '${res:-nothing}'"
	else
		wait_child "$restart_pid" 30 wake || fail "ghost restart did not end within 30 s of the wake-up"
		restart_pid=
		if [ "$end" = kill ]; then
			[ "$status" = 143 ] || fail "ghost restart exited $status, want 143 (SIGTERM)"
			return 0
		fi
		[ "$status" = 0 ] || fail "the restored process failed (ghost restart exit $status)"
		res=$(cat "$result")
		[ -z "$res" ] || [ "$res" = pass ] || fail "the restored process reported '$res'"
	fi
	say "the restored process passed its checks"
}

# --- the scenario ----------------------------------------------------------

start_target "$@"

if [ "$no_ckpt" = 1 ]; then
	if [ "$end" = kill ]; then
		kill -TERM "$pid"
		wait_child "$pid" 10 || fail "the target did not end on SIGTERM"
		original_alive=0
	else
		check_original "no checkpoint"
	fi
	printf 'PASS: %s\n' "$name"
	exit 0
fi

if [ -n "$refusal" ]; then
	checkpoint "$dir/img"
	rc=$?
	[ "$rc" = 0 ] && fail "the checkpoint succeeded, want a refusal"
	[ "$rc" = 1 ] || fail "the checkpoint exited $rc, want 1"
	lines=$(wc -l < "$dir/ckpt.err")
	msg=$(head -n 1 "$dir/ckpt.err")
	say "refused: $msg"
	[ "$lines" = 1 ] || fail "want exactly one line on stderr, got $lines"
	case $msg in "ghost: "*) ;; *) fail "the message does not start with 'ghost: '" ;; esac
	printf '%s\n' "$msg" | grep -Eiq -- "$refusal" || fail "the message does not match /$refusal/"
	[ -e "$dir/img" ] && say "note: the refused checkpoint left a file behind"
	wait_until 5 untraced "$pid" ||
		fail "after the refusal the original is not running untraced (State $(proc_field "$pid" State), TracerPid $(proc_field "$pid" TracerPid))"
	check_original "after the refusal"
	printf 'PASS: %s\n' "$name"
	exit 0
fi

ckpt_args=()
case $mode in
kill) ckpt_args=(--kill) ;;
stop) ckpt_args=(--stop) ;;
esac

img=$dir/img1
checkpoint "$img" "${ckpt_args[@]}" || fail "ghost checkpoint failed: $(head -n 3 "$dir/ckpt.err")"
check_image "$img"

case $mode in
kill)
	wait_child "$pid" 10 || fail "the original still runs 10 s after checkpoint --kill"
	original_alive=0
	say "the original ended (status $status)"
	;;
snapshot)
	wait_until 5 untraced "$pid" || fail "after the checkpoint the original is not running untraced"
	check_original "after the snapshot"
	;;
stop)
	wait_until 5 stopped_untraced "$pid" ||
		fail "after checkpoint --stop the original is not stopped and untraced (State $(proc_field "$pid" State), TracerPid $(proc_field "$pid" TracerPid))"
	say "the original is stopped"
	kill -CONT "$pid"
	wait_until 5 untraced "$pid" || fail "the original does not run after SIGCONT"
	check_original "after SIGCONT"
	;;
replace)
	wait_until 5 untraced "$pid" || fail "after the checkpoint the original is not running untraced"
	;;
esac

restart_args=()
[ "$mode" = replace ] && restart_args=(--replace)
restart "$img" "${restart_args[@]}"
if [ "$mode" = replace ]; then
	# ghost ended the original; we reaped it (its parent), which freed the PID
	wait_child "$pid" 0 && say "the original ended (status $status)"
	original_alive=0
fi

c=1
while [ "$c" -lt "$cycles" ]; do
	c=$((c + 1))
	img=$dir/img$c
	checkpoint "$img" --kill || fail "cycle $c: ghost checkpoint failed: $(head -n 3 "$dir/ckpt.err")"
	check_image "$img"
	wait_child "$restart_pid" 10 || fail "cycle $c: the first ghost restart still runs after checkpoint --kill"
	restart_pid=
	say "cycle $c: the previous ghost restart ended (status $status)"
	restart "$img"
done

finish_restored
printf 'PASS: %s\n' "$name"
exit 0
