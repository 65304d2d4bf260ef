/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How two unrelated processes of a cluster find each other, for the stream
 * test programs (tests/streams/streamer) and the stream benchmark's
 * ping-pong tool (bench/pingpong): a Unix stream socket at a path, a TCP
 * port published in a file as "ADDRESS PORT", and SCM_RIGHTS to hand over
 * one end of a pipe or socketpair. The nodes share their file system, so a
 * path means the same on every node.
 *
 * Every call returns >= 0 (an fd, or 0) on success and -errno on failure,
 * restarts after EINTR, and makes every fd O_CLOEXEC. Waits are bounded by
 * timeout_ms and fail with -ETIMEDOUT.
 */
#ifndef TESTS_LIB_RENDEZVOUS_H
#define TESTS_LIB_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* A Unix stream socket listening at path; an old file there is removed. */
int rdv_unix_listen(const char *path);
/* Connect to the Unix stream socket at path, retrying while it is not
 * there yet (ENOENT, ECONNREFUSED). */
int rdv_unix_connect(const char *path, unsigned timeout_ms);
/* Wait for one connection on a listening socket and accept it. */
int rdv_accept(int lfd, unsigned timeout_ms);

/*
 * A TCP socket listening on 0.0.0.0:port (0: any free port); then
 * "ADDRESS PORT\n" is written to publish_path (atomically: a temporary
 * file renamed), ADDRESS being this node's own address (rdv_node_addr()).
 */
int rdv_tcp_listen(const char *publish_path, uint16_t port);
/* Wait for publish_path, then connect to the address it names, with
 * TCP_NODELAY set when nodelay is true. */
int rdv_tcp_connect(const char *publish_path, unsigned timeout_ms, int nodelay);
/* The first IPv4 address of an interface that is up and not a loopback
 * (a node's eth0), as text; 127.0.0.1 when there is none. */
int rdv_node_addr(char *buf, size_t len);

/* Pass fd over a connected Unix socket (SCM_RIGHTS, one data byte). */
int rdv_send_fd(int sock, int fd);
/* Receive one fd passed with rdv_send_fd(). */
int rdv_recv_fd(int sock, int *ret_fd);

/* Write text to path atomically (path.tmp, then rename), keeping no fd. */
int rdv_write_file(const char *path, const char *text);
/* Make fd at least 3, so that it is never taken for stdio; returns the fd. */
int rdv_above_stdio(int fd);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t rdv_now_ns(void);

#endif
