/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ghost checkpoint --memory/--drop, restart --from-memory, checkpoints: memory checkpoints
 * kept by the node daemons. */
#ifndef GHOST_CMD_CKPT_H
#define GHOST_CMD_CKPT_H

#include <stdbool.h>

/* The memory forms of `ghost checkpoint` and `ghost restart`, for their help texts. */
#define CKPT_CHECKPOINT_SYNOPSIS                                                                   \
	"       ghost checkpoint PID --memory [--on NODE] [--kill | --stop] [--json]\n"            \
	"       ghost checkpoint --drop ID [--json]\n"
#define CKPT_CHECKPOINT_HELP                                                                       \
	"\n"                                                                                       \
	"With --memory, the image is kept in the memory of a node daemon instead of\n"             \
	"a file: PID is a managed process of the cluster (see 'ghost run -d'),\n"                  \
	"wherever it runs, and the daemon of the node where it runs sends the image\n"             \
	"straight to the holder node (by default that same node), where a keeper\n"                \
	"process holds it. ghost prints the checkpoint's ID, \"H.N\": holder node H,\n"            \
	"its N-th checkpoint. 'ghost checkpoints' lists them, 'ghost restart\n"                    \
	"--from-memory ID' restarts one on any node, --drop ID frees one.\n"                       \
	"A checkpoint lives as long as its holder's daemon: keep it on another node\n"             \
	"(--on) to survive the loss of the node where the process runs. A node keeps\n"            \
	"at most its checkpoint-memory (cluster.conf, default 25% of its RAM); a\n"                \
	"checkpoint that would not fit is refused. Root may checkpoint, restart and\n"             \
	"drop anything, other users only their own processes and checkpoints.\n"                   \
	"\n"                                                                                       \
	"Memory options:\n"                                                                        \
	"      --memory            keep the image in a node daemon's memory\n"                     \
	"      --on NODE           keep it on node NODE (default: where the process runs)\n"       \
	"      --drop ID           free the checkpoint ID\n"                                       \
	"  -k, --kill, -s, --stop  as above; --kill ends the process only once the\n"              \
	"                          checkpoint is kept\n"                                           \
	"      --json              print one JSON object: id, pid, node, holder,\n"                \
	"                          image_bytes, pages, total_ms, frozen_ms, export_ms,\n"          \
	"                          after (drop: id, holder, freed_bytes)\n"
#define CKPT_RESTART_SYNOPSIS "       ghost restart --from-memory ID [--node N] [--json]\n"
#define CKPT_RESTART_HELP                                                                          \
	"\n"                                                                                       \
	"With --from-memory, the checkpoint ID kept by a node daemon ('ghost\n"                    \
	"checkpoint --memory') is restarted on node N (default: its holder node),\n"               \
	"with its original PID, as a detached managed process of that node (its\n"                 \
	"output goes where it went before, 'ghost ps/kill/logs/migrate' work on it),\n"            \
	"and ghost prints where it runs and returns. The image goes straight from\n"               \
	"the holder to N. The PID must be free: a restart is refused while the\n"                  \
	"process still runs (end it first with 'ghost kill -KILL PID'); when the node\n"           \
	"it was born on is down, nobody can tell, and the restart goes ahead. The\n"               \
	"checkpoint stays kept and may be restarted again.\n"                                      \
	"\n"                                                                                       \
	"Memory options:\n"                                                                        \
	"      --from-memory ID    restart the kept checkpoint ID\n"                               \
	"  -n, --node N            restart it on node N\n"                                         \
	"      --json              print one JSON object: id, pid, node, holder,\n"                \
	"                          image_bytes, total_ms, import_ms\n"

extern const char cmd_checkpoints_usage[];

/* Does argv ask for a memory checkpoint (--memory, --drop) or a restart
 * from memory (--from-memory)? Then the verbs below parse it. */
bool cmd_ckpt_wanted(int argc, char **argv, bool restart);
/* argv[0] is the verb; optind must be 0 on entry. Exit status as the other
 * node verbs: 0, 1 with one line "ghost: ...", 2 usage error. */
int cmd_checkpoint_memory(int argc, char **argv);
int cmd_restart_memory(int argc, char **argv);
int cmd_checkpoints(int argc, char **argv);

#endif
