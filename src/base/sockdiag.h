/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the kernel's sock_diag says about a socket, by inode. */
#ifndef BASE_SOCKDIAG_H
#define BASE_SOCKDIAG_H

#include <stdint.h>

/* An AF_UNIX socket of this network namespace: its type (SOCK_STREAM, ...),
 * its peer's inode (0 if unconnected) and its shutdown state (bit 0: no more
 * receiving, bit 1: no more sending). 0, -ENOENT, or -errno. */
int sockdiag_unix(uint64_t ino, uint32_t *ret_type, uint64_t *ret_peer, uint32_t *ret_shut);

#endif
