/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * msg-peer: one msg endpoint with test traffic, driven from the command line,
 * for multi-node tests (one per node, e.g. one per network namespace). It
 * prints event lines on stdout ("ready ID port P", "up ID INC", "down ID",
 * "send ID ERR" with what a send to a node that just went down returned,
 * "stats ...", "done"; SIGUSR1 prints the stats lines again) and exits 0
 * once all traffic went through exactly once and in order, 1 if not, 2 on a
 * usage error.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpeer.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/banned.h"

#define MAX_NODES 64

static void usage(FILE *f)
{
	fputs("usage: msg-peer --id N --node ID=ADDR:PORT... [options]\n"
	      "  --id N             this node's id (it must be one of the --node entries)\n"
	      "  --node ID=ADDR     a cluster node: ID=a.b.c.d:port or ID=[v6]:port\n"
	      "  --key HEX          the 32-byte cluster key as 64 hex digits\n"
	      "  --key-file PATH    the key as 32 raw bytes or 64 hex digits\n"
	      "  --plain            no bulk encryption (authentication only)\n"
	      "  --listen-fd FD     accept on this inherited listening socket\n"
	      "  --heartbeat MS     heartbeat interval\n"
	      "  --timeout MS       silence after which a node is down\n"
	      "  --reconnect MS     first redial delay\n"
	      "  --window BYTES     queued bytes per node before senders wait\n"
	      "  --count N          messages to send to (and expect from) every other node\n"
	      "  --max-size BYTES   largest message (default 65536)\n"
	      "  --fault-every N    break the link to a node every N messages from it\n"
	      "  --all-faults       rotate cut, corrupt, garbage and oversize faults\n"
	      "  --stream BYTES     also stream this many bytes to every other node\n"
	      "  --linger           keep running after done, until SIGTERM or SIGINT\n"
	      "  --quiet            no event lines\n"
	      "GHOST_LOG=debug|info|warn|err sets the log level (default warn).\n",
	      f);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_key(const char *s, size_t len, uint8_t key[MSG_KEY_SIZE])
{
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	if (len != 2 * MSG_KEY_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < MSG_KEY_SIZE; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int read_key_file(const char *path, uint8_t key[MSG_KEY_SIZE])
{
	struct buf b = BUF_INIT;
	int r;

	r = read_file_at(AT_FDCWD, path, &b);
	if (r >= 0) {
		if (b.len == MSG_KEY_SIZE)
			memcpy(key, b.data, MSG_KEY_SIZE);
		else
			r = parse_key(b.data, b.len, key);
	}
	buf_release(&b);
	return r;
}

static int parse_num(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (parse_u64(s, 10, &v) < 0 || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_ID = 256, OPT_NODE, OPT_KEY, OPT_KEY_FILE, OPT_PLAIN, OPT_LISTEN_FD,
		OPT_HEARTBEAT, OPT_TIMEOUT, OPT_RECONNECT, OPT_WINDOW, OPT_COUNT, OPT_MAX_SIZE,
		OPT_FAULT_EVERY, OPT_ALL_FAULTS, OPT_STREAM, OPT_LINGER, OPT_QUIET, OPT_HELP,
	};
	static const struct option options[] = {
		{ "id", required_argument, NULL, OPT_ID },
		{ "node", required_argument, NULL, OPT_NODE },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "plain", no_argument, NULL, OPT_PLAIN },
		{ "listen-fd", required_argument, NULL, OPT_LISTEN_FD },
		{ "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "reconnect", required_argument, NULL, OPT_RECONNECT },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
		{ "fault-every", required_argument, NULL, OPT_FAULT_EVERY },
		{ "all-faults", no_argument, NULL, OPT_ALL_FAULTS },
		{ "stream", required_argument, NULL, OPT_STREAM },
		{ "linger", no_argument, NULL, OPT_LINGER },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	static struct msg_peer_config nodes[MAX_NODES];
	struct tpeer_opts o = TPEER_OPTS_INIT;
	bool have_id = false, have_key = false, quiet = false;
	uint64_t v;
	int c, r;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		r = 0;
		switch (c) {
		case OPT_ID:
			r = parse_num(optarg, UINT32_MAX, &v);
			o.id = (uint32_t)v;
			have_id = true;
			break;
		case OPT_NODE: {
			char *eq = strchr(optarg, '=');

			if (!eq || o.n_nodes == MAX_NODES) {
				r = -EINVAL;
				break;
			}
			*eq = '\0';
			r = parse_num(optarg, UINT32_MAX, &v);
			nodes[o.n_nodes].id = (uint32_t)v;
			nodes[o.n_nodes].address = eq + 1;
			o.n_nodes++;
			break;
		}
		case OPT_KEY:
			r = parse_key(optarg, strlen(optarg), o.key);
			have_key = true;
			break;
		case OPT_KEY_FILE:
			r = read_key_file(optarg, o.key);
			have_key = true;
			break;
		case OPT_PLAIN:
			o.plain = true;
			break;
		case OPT_LISTEN_FD:
			r = parse_num(optarg, INT32_MAX, &v);
			o.listen_fd = (int)v;
			break;
		case OPT_HEARTBEAT:
			r = parse_num(optarg, UINT32_MAX, &v);
			o.heartbeat_ms = (uint32_t)v;
			break;
		case OPT_TIMEOUT:
			r = parse_num(optarg, UINT32_MAX, &v);
			o.timeout_ms = (uint32_t)v;
			break;
		case OPT_RECONNECT:
			r = parse_num(optarg, UINT32_MAX, &v);
			o.reconnect_min_ms = (uint32_t)v;
			break;
		case OPT_WINDOW:
			r = parse_num(optarg, UINT32_MAX, &v);
			o.window = (uint32_t)v;
			break;
		case OPT_COUNT:
			r = parse_num(optarg, UINT64_MAX, &o.count);
			break;
		case OPT_MAX_SIZE:
			r = parse_num(optarg, MSG_MAX_MESSAGE, &v);
			o.max_size = (size_t)v;
			break;
		case OPT_FAULT_EVERY:
			r = parse_num(optarg, UINT64_MAX, &o.fault_every);
			break;
		case OPT_ALL_FAULTS:
			o.all_faults = true;
			break;
		case OPT_STREAM:
			r = parse_num(optarg, UINT64_MAX, &o.stream_bytes);
			break;
		case OPT_LINGER:
			o.linger = true;
			break;
		case OPT_QUIET:
			quiet = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (r < 0) {
			fprintf(stderr, "msg-peer: bad value for --%s: '%s'\n",
				options[c - OPT_ID].name, optarg);
			return 2;
		}
	}
	if (!have_id || !have_key || o.n_nodes == 0 || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (getenv("GHOST_LOG") && log_set_level_from_string(getenv("GHOST_LOG")) < 0) {
		fprintf(stderr, "msg-peer: bad GHOST_LOG level\n");
		return 2;
	}
	o.nodes = nodes;
	o.events = quiet ? NULL : stdout;
	r = tpeer_run(&o);
	if (r < 0) {
		fprintf(stderr, "msg-peer: cannot start: %s\n", strerror(-r));
		return 1;
	}
	return r == 0 ? 0 : 1;
}
