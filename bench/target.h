/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the benchmark targets (memhog, mgs) share: saying they are ready. */
#ifndef BENCH_TARGET_H
#define BENCH_TARGET_H

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Write "ready\n" to the file named by GHOST_TEST_READY (open, write, close:
 * the target keeps no fd on it). 0 when unset or done, -1 on failure. */
static inline int target_signal_ready(void)
{
	const char *path = getenv("GHOST_TEST_READY");
	int fd;

	if (!path)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, "ready\n", 6) != 6) {
		close(fd);
		return -1;
	}
	return close(fd);
}

#endif
