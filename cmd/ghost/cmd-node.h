/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ghost run, ps, kill, nodes, logs, migrate: the verbs that talk to the node daemon ghostd. */
#ifndef GHOST_CMD_NODE_H
#define GHOST_CMD_NODE_H

/* The help texts, for `ghost help VERB`. */
extern const char cmd_run_usage[];
extern const char cmd_ps_usage[];
extern const char cmd_kill_usage[];
extern const char cmd_nodes_usage[];
extern const char cmd_logs_usage[];
extern const char cmd_migrate_usage[];
extern const char cmd_fork_usage[];

/*
 * argv[0] is the verb; getopt's optind must be 0 on entry. Each talks to the
 * ghostd whose control socket is $GHOST_CONTROL, else node 1's of the local
 * cluster when one runs (cluster_local_control()), else
 * /run/ghost/ghostd.sock, and returns the exit status: 0 success, 1 failure
 * (one line "ghost: ..." on stderr), 2 usage error. cmd_run returns the
 * process's status instead (128+N if it was killed by signal N, 127 if the
 * command could not be executed).
 */
/* The control socket for the node_client_*() calls (see above): NULL or a
 * path to free(). */
char *cmd_control_path(void);

int cmd_run(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_nodes(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_fork(int argc, char **argv);

#endif
