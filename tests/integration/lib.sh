# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Shell helpers shared by run-target.sh and bad-input.sh (sourced, bash).
# The caller sets $name, used in the PASS/FAIL/SKIP lines.

say() { printf '# %s\n' "$*"; }

fail() {
	printf 'FAIL: %s: %s\n' "$name" "$*"
	exit 1
}

skip() {
	printf 'SKIP: %s: %s\n' "$name" "$*"
	exit 77
}

# A field of /proc/PID/status (first word of its value).
proc_field() { # PID KEY
	local k v
	while read -r k v; do
		[ "$k" = "$2:" ] && { printf '%s\n' "${v%%[[:space:]]*}"; return 0; }
	done 2> /dev/null < "/proc/$1/status"
	return 1
}

proc_comm() { cat "/proc/$1/comm" 2>/dev/null; }

# Whether a process with this PID exists and is not a zombie.
proc_alive() {
	local st
	[ -n "$1" ] && [ -d "/proc/$1" ] || return 1
	st=$(proc_field "$1" State) || return 1
	case $st in Z | X) return 1 ;; esac
	return 0
}

# Wait up to $1 seconds for the command "$2..." to succeed.
wait_until() {
	local t=$1 start=$SECONDS
	shift
	until "$@"; do
		[ $((SECONDS - start)) -ge "$t" ] && return 1
		sleep 0.05
	done
}

# The process runs (or sleeps): neither stopped nor traced nor dead.
untraced() {
	local st tr
	st=$(proc_field "$1" State) && tr=$(proc_field "$1" TracerPid) || return 1
	[ "$tr" = 0 ] || return 1
	case $st in t | T | Z | X) return 1 ;; esac
	return 0
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
