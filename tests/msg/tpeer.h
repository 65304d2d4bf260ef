/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A test endpoint of the msg layer: runs one node, sends deterministic
 * traffic (traffic.h) to every other node, checks what it receives arrives
 * exactly once and in order, optionally breaks its connections on purpose,
 * and reports events as lines. The msg unit tests fork it; msg-peer wraps it
 * in a command line for the multi-node integration tests.
 */
#ifndef TESTS_MSG_TPEER_H
#define TESTS_MSG_TPEER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "msg/msg.h"

#define TPEER_CHANNEL 7
#define TPEER_CONTROL_CHANNEL 8

struct tpeer_opts {
	uint32_t id;
	const struct msg_peer_config *nodes; /* every node, this one included */
	size_t n_nodes;
	uint8_t key[MSG_KEY_SIZE];
	bool plain;
	int listen_fd; /* consumed; -1: bind this node's address */
	uint32_t heartbeat_ms, timeout_ms, reconnect_min_ms;
	uint32_t window;      /* msg_config.window; 0: default */
	uint64_t count;       /* messages to send to, and expect from, every other node */
	size_t max_size;      /* largest message */
	uint64_t fault_every; /* break the link to a node every N messages received from it */
	bool all_faults;      /* rotate cut, corrupt, garbage, oversize; else only cut */
	uint64_t stream_bytes; /* also stream this many bytes to every other node */
	bool linger;          /* after "done", keep serving until SIGTERM or SIGINT */
	FILE *events;         /* "up N", "down N", "done", "stats ..." lines, or NULL */
	uint64_t *ret_queued_peak; /* if set: the most bytes ever queued for one node */
};

#define TPEER_OPTS_INIT { .listen_fd = -1, .max_size = 65536 }

/* 0 when every message and stream went through intact, once, in order;
 * 1 on a check failure or a lost peer; -errno if the endpoint cannot start. */
int tpeer_run(const struct tpeer_opts *o);

#endif
