#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Streams between two managed processes without migration, the ground the
# dynamic-streams tests stand on: streamer's producer and consumer, each
# started with its own `ghost run -d`, joined by a pipe, a socketpair, a Unix
# stream socket, a named FIFO or a TCP connection on one node (and TCP
# between two nodes), blocking and --nonblock, and --bidir where the kind
# has a way back. Every byte is checked: the counts of both ends agree, the
# consumer says "ok", both exit 0, and above stdio each end holds one fd,
# the stream (the same pipe on both sides, the FIFO by its path), and
# nothing else. A --bytes count ends the producer by itself. The checker
# itself is checked: a byte flipped, dropped or repeated by the producer is
# reported at its offset. Everything runs in a cluster of its own, which
# lib.sh takes down even when the test fails.
. "$(dirname "$0")/../cluster/lib.sh"
parse_args "$@"
STREAMER=$(realpath "$(dirname "$0")")/streamer
[ -n "${STREAMER_BIN:-}" ] && STREAMER=$STREAMER_BIN
[ -x "$STREAMER" ] || fatal "no streamer at $STREAMER"
command -v python3 > /dev/null || { echo "SKIP: needs python3"; exit 77; }

"$GHOST" cluster up --nodes 2 > /dev/null || fatal "cluster up --nodes 2"
ok "cluster up --nodes 2"
record_cluster

# wait_for TIMEOUT_S COMMAND...: until the command succeeds; 1 on timeout.
wait_for() {
	local n=$(($1 * 50))
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.02
	done
}

nonempty() {
	[ -s "$1" ]
}

# progress_above FILE N: the consumer has checked more than N bytes.
progress_above() {
	local v
	v=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$v" ] && [ "$v" -gt "$2" ]
}

# "STATE EXIT_CODE" of each PID, from ghost ps -a --json, one line.
states() {
	"$GHOST" ps -a --json | python3 -c '
import json, sys
want = [int(p) for p in sys.argv[1:]]
by = {p["pid"]: p for p in json.load(sys.stdin)}
print(" ".join("%s:%s" % (by[p]["state"], by[p].get("exit_code", "-")) if p in by else "gone"
               for p in want))' "$@"
}

both_ended() {
	local s all
	all=$(states "$@")
	[ -n "$all" ] || return 1
	for s in $all; do
		case $s in exited:* | gone) ;; *) return 1 ;; esac
	done
}

# fds_above_stdio NODE PID: what each fd above 2 of the process is, one a
# line ("pipe:[INODE]", "socket:[INODE]", a path).
fds_above_stdio() {
	"$GHOST" cluster exec "$1" -- find "/proc/$2/fd" -mindepth 1 -maxdepth 1 \
		-printf '%f %l\n' 2>/dev/null | awk '$1 > 2 {print $2}'
}

# holds_stream KIND RENDEZVOUS CONSUMER_FDS PRODUCER_FDS: each end holds one
# fd, the stream, and nothing else: the same pipe on both sides, the FIFO
# by its path, a socket.
holds_stream() {
	[ "$(echo "$3" | grep -c .) $(echo "$4" | grep -c .)" = "1 1" ] || return 1
	case $1 in
	pipe) [ "${3%%:*}" = pipe ] && [ "$3" = "$4" ] ;;
	fifo) [ "$3" = "$2" ] && [ "$4" = "$2" ] ;;
	*) [ "${3%%:*} ${4%%:*}" = "socket socket" ] && [ "$3" != "$4" ] ;;
	esac
}

case_n=0

# run_case CONSUMER_NODE PRODUCER_NODE KIND [STREAMER OPTIONS...]
# Both ends run until the consumer has checked some data, then SIGUSR1 ends
# the producer (unless --bytes ends it), and the two results must agree.
run_case() {
	local cnode=$1 pnode=$2 kind=$3
	shift 3
	local what="$kind ${*:+$* }(node $pnode -> node $cnode)"
	case_n=$((case_n + 1))
	local d=$TEST_TMP/case$case_n bytes= held=
	mkdir "$d"
	case " $* " in *" --bytes "*) bytes=1 ;; esac

	local cpid ppid
	cpid=$("$GHOST" run -d --node "$cnode" -- "$STREAMER" --timeout 10 "$@" \
		--progress "$d/progress" consume "$kind" "$d/rdv" "$d/consumer")
	ppid=$("$GHOST" run -d --node "$pnode" -- "$STREAMER" --timeout 10 "$@" \
		produce "$kind" "$d/rdv" "$d/producer")
	if [ -z "$cpid" ] || [ -z "$ppid" ]; then
		not_ok "$what: ghost run -d"
		"$GHOST" kill -KILL $cpid $ppid > /dev/null 2>&1
		return
	fi
	if ! wait_for 10 nonempty "$d/consumer.ready" || ! wait_for 10 nonempty "$d/producer.ready"
	then
		not_ok "$what: both ends say ready ($(cat "$d/consumer" "$d/producer" 2>/dev/null))"
		"$GHOST" kill -KILL "$cpid" "$ppid" > /dev/null 2>&1
		return
	fi
	if [ -z "$bytes" ]; then
		# Data flows, and each end holds the stream and nothing else.
		local ok_flow=1 cf pf
		wait_for 5 progress_above "$d/progress" 0 || ok_flow=0
		cf=$(fds_above_stdio "$cnode" "$cpid")
		pf=$(fds_above_stdio "$pnode" "$ppid")
		sleep 0.3
		"$GHOST" kill -USR1 "$ppid"
		[ $ok_flow = 1 ] || not_ok "$what: no data checked within 5 s"
		if holds_stream "$kind" "$d/rdv" "$cf" "$pf"; then
			held=", each end holding only the stream"
		else
			not_ok "$what: each end holds one fd, the stream, and nothing else: consumer '$cf', producer '$pf'"
		fi
	fi
	if ! wait_for 20 both_ended "$cpid" "$ppid"; then
		not_ok "$what: both ends end ($(states "$cpid" "$ppid"))"
		"$GHOST" kill -KILL "$cpid" "$ppid" > /dev/null 2>&1
		return
	fi
	local p c n
	p=$(cat "$d/producer" 2>/dev/null)
	c=$(cat "$d/consumer" 2>/dev/null)
	n=${p#produced }
	if [ "$p" = "produced $n" ] && [ "$c" = "consumed $n ok" ] && [ "$n" -gt 0 ] 2>/dev/null &&
	   [ "$(states "$cpid" "$ppid")" = "exited:0 exited:0" ]; then
		ok "$what: $n bytes, every one checked$held"
	else
		not_ok "$what: producer '$p', consumer '$c', $(states "$cpid" "$ppid")"
	fi
	[ -z "$bytes" ] || check_eq "$what: the producer stops at --bytes" \
		"produced $(echo "$*" | sed 's/.*--bytes \([0-9]*\).*/\1/')" "$p"
}

# fault_case KIND FAULT@OFFSET WANT_OFFSET: the consumer reports the damage.
fault_case() {
	local kind=$1 fault=$2 want=$3
	case_n=$((case_n + 1))
	local d=$TEST_TMP/case$case_n cpid ppid
	mkdir "$d"
	cpid=$("$GHOST" run -d -- "$STREAMER" --timeout 10 consume "$kind" "$d/rdv" "$d/consumer")
	ppid=$("$GHOST" run -d -- "$STREAMER" --timeout 10 --bytes 4000000 --fault "$fault" \
		produce "$kind" "$d/rdv" "$d/producer")
	if ! wait_for 20 both_ended "$cpid" "$ppid"; then
		not_ok "$kind --fault $fault: both ends end ($(states "$cpid" "$ppid"))"
		"$GHOST" kill -KILL "$cpid" "$ppid" > /dev/null 2>&1
		return
	fi
	local c
	c=$(cat "$d/consumer" 2>/dev/null)
	case "$c $(states "$cpid")" in
	"BAD at offset $want: expected 0x"??" got 0x"??" exited:1")
		ok "$kind --fault $fault: the consumer reports '$c' and exits 1" ;;
	*)
		not_ok "$kind --fault $fault: consumer '$c', $(states "$cpid"), want BAD at offset $want" ;;
	esac
}

# 1. Every kind between two processes of node 1.
run_case 1 1 pipe
run_case 1 1 pipe --nonblock
run_case 1 1 socketpair
run_case 1 1 socketpair --nonblock
run_case 1 1 socketpair --bidir
run_case 1 1 socketpair --nonblock --bidir --ack-kib 4
run_case 1 1 unix
run_case 1 1 unix --nonblock
run_case 1 1 unix --bidir --ack-kib 1
run_case 1 1 unix --nonblock --bidir
run_case 1 1 fifo
run_case 1 1 fifo --nonblock
run_case 1 1 tcp
run_case 1 1 tcp --nonblock
run_case 1 1 tcp --bidir

# 2. TCP between two nodes, the one kind that crosses them without Ghost.
run_case 2 1 tcp
run_case 2 1 tcp --nonblock --bidir
run_case 1 2 tcp --bidir

# 3. A fixed count: the producer ends by itself.
run_case 1 1 pipe --bytes 5000000
run_case 1 1 unix --bidir --bytes 5000001
run_case 2 1 tcp --nonblock --bytes 3000000

# 4. The checker: a byte flipped, dropped, repeated.
fault_case unix flip@1000000 1000000
fault_case pipe drop@65536 65536
fault_case socketpair dup@7 8
fault_case tcp flip@0 0

# Nothing of ours is left.
"$GHOST" cluster down > /dev/null
check_eq "cluster down" 0 $?
check_no_leftovers
finish
