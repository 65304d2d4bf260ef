# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the streams tests on a 3-node cluster (bash, after
# ../cluster/lib.sh): where a node's daemon and processes are, the stream
# an end holds, and a streamer pair ($STREAMER) to drive.

node_init() {
	"$GHOST" cluster status --json | grep -o "\"id\":$1,[^}]*" | grep -o '"pid":[0-9]*' |
		cut -d: -f2
}

node_address() {
	"$GHOST" nodes --json | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["id"] == '"$1"': print(n["address"].rsplit(":", 1)[0])'
}

node_of() {
	"$GHOST" ps --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["pid"] == '"$1"' and p["state"] != "exited": print(p["node"])'
}

# in_node NODE CMD...: run CMD in NODE's namespaces (its /proc, its network).
in_node() {
	local n=$1
	shift
	nsenter -t "$(node_init "$n")" -m -n -p -- "$@"
}

# channel NODE PID: what the stream fds of PID (on NODE) are now: "local"
# for pipes, Unix sockets and TCP over loopback, "tcp REMOTE-ADDRESS" for
# TCP to another address, one line per fd
# that is a stream (0-2 excluded: logs).
channel() {
	in_node "$1" python3 - "$2" <<'EOF'
import os, socket, struct, sys
pid = sys.argv[1]
tcp = {}
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    rem = f[2].split(":")[0]
    tcp[f[9]] = socket.inet_ntoa(struct.pack("<I", int(rem, 16)))
for fd in sorted(os.listdir("/proc/%s/fd" % pid), key=int):
    if int(fd) < 3:
        continue
    link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    if link.startswith("socket:["):
        ino = link[8:-1]
        # TCP over loopback is the local channel of a TCP stream.
        print("tcp " + tcp[ino] if ino in tcp and tcp[ino] != "127.0.0.1" else "local")
    elif link.startswith("pipe:["):
        print("local")
EOF
}

# direct MOVER NODE PEER-NODE: MOVER (on NODE) has a local channel if its
# peer is on the same node, else a TCP connection straight to PEER-NODE.
direct() {
	local want got
	if [ "$2" = "$3" ]; then
		want=local
	else
		want="tcp ${ADDRESS[$3]}"
	fi
	got=$(channel "$2" "$1" | sort -u)
	[ "$got" = "$want" ] || { echo "# $1 on node $2: '$got', want '$want'"; return 1; }
}

wait_file() {
	for _ in $(seq 200); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_exit PID: the managed process has exited.
wait_exit() {
	for _ in $(seq 400); do
		[ -z "$(node_of "$1")" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_pair KIND DIR [OPTIONS]: consumer and producer on node 1, connected;
# their PIDs in $cons and $prod.
start_pair() {
	local kind=$1 d=$2
	shift 2
	mkdir -p "$d"
	cons=$("$GHOST" run -d -- "$STREAMER" "$@" consume "$kind" "$d/rv" "$d/cons") || return 1
	prod=$("$GHOST" run -d -- "$STREAMER" "$@" produce "$kind" "$d/rv" "$d/prod") || return 1
	wait_file "$d/cons.ready" && wait_file "$d/prod.ready"
}

# consumed DIR: the bytes the consumer checked, if it saw the end of the
# stream (twice, as streamer checks); empty otherwise.
consumed() {
	grep -o 'consumed [0-9]* ok' "$1/cons" 2>/dev/null | cut -d' ' -f2
}

# counts DIR: "PRODUCED CONSUMED" once both ended.
counts() {
	echo "$(grep -o 'produced [0-9]*' "$1/prod" 2>/dev/null | cut -d' ' -f2)" "$(consumed "$1")"
}

# pipes NODE PID: the inodes of the pipes and FIFOs PID (on NODE) holds
# above stdio, one line each, sorted.
pipes() {
	in_node "$1" python3 - "$2" <<'EOF2' | sort -u
import os, stat, sys
d = "/proc/%s/fd" % sys.argv[1]
for fd in os.listdir(d):
    try:
        st = os.stat(os.path.join(d, fd))
    except OSError:
        continue
    if int(fd) > 2 and stat.S_ISFIFO(st.st_mode):
        print(st.st_ino)
EOF2
}

# daemon_reads NODE INODE: NODE's daemon holds the read end of that pipe.
daemon_reads() {
	in_node "$1" python3 - "$2" <<'EOF2'
import os, stat, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if open("/proc/%s/comm" % pid).read().strip() != "ghostd":
            continue
        for fd in os.listdir("/proc/%s/fd" % pid):
            st = os.stat("/proc/%s/fd/%s" % (pid, fd))
            flags = open("/proc/%s/fdinfo/%s" % (pid, fd)).read().split("flags:")[1].split()[0]
            if stat.S_ISFIFO(st.st_mode) and str(st.st_ino) == sys.argv[1] and \
               int(flags, 8) & os.O_ACCMODE == os.O_RDONLY:
                sys.exit(0)
    except (OSError, IndexError):
        pass
sys.exit(1)
EOF2
}

# chained WRITER NODE READER: a writer of the pipe that READER reads on node
# 1 writes into that pipe itself on node 1, and anywhere else into a pipe
# that its own node's daemon reads: the pump of its chain to node 1 (no
# other node is on the way).
chained() {
	local w r
	w=$(pipes "$2" "$1")
	if [ "$2" = 1 ]; then
		r=$(pipes 1 "$3")
		[ -n "$w" ] && [ "$w" = "$r" ] && return 0
		echo "# writer $1 on node 1 writes into pipe '$w', its reader reads '$r'"
		return 1
	fi
	[ -n "$w" ] && [ "$(echo "$w" | wc -l)" = 1 ] && daemon_reads "$2" "$w" && return 0
	echo "# writer $1 on node $2 writes into pipe '$w', which node $2's daemon does not read"
	return 1
}
