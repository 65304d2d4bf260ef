/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ghost cluster: the command line of the local N-node cluster (up, down, status, exec). */
#ifndef GHOST_CMD_CLUSTER_H
#define GHOST_CMD_CLUSTER_H

/* The help text of `ghost cluster`, for `ghost help cluster`. */
extern const char cmd_cluster_usage[];

/* argv[0] is "cluster"; getopt's optind must be 0 on entry. Returns the exit
 * status: 0 success, 1 failure (one line "ghost: ..." on stderr), 2 usage
 * error; `exec` returns the command's status (128+N if killed by signal N,
 * 127 if it could not be run). */
int cmd_cluster(int argc, char **argv);

#endif
