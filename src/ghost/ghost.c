/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ghost object: which resource access interface is plugged in, errors, statistics. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ghost/ghost-int.h"
#include "io/io.h"
#include "base/banned.h"

int ghost_new(struct ghost **ret)
{
	struct ghost *g;

	if (!ret)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->access = _GHOST_ACCESS_INVALID;
	g->fd = -1;
	*ret = g;
	return 0;
}

struct ghost *ghost_free(struct ghost *g)
{
	if (!g)
		return NULL;
	ghost_buffer_unref(g->buffer);
	free(g);
	return NULL;
}

int ghost_plug(struct ghost *g, enum ghost_access access)
{
	if (!g || access < 0 || access >= _GHOST_ACCESS_MAX)
		return -EINVAL;
	g->access = access;
	g->plugged = true;
	return 0;
}

int ghost_associate_buffer(struct ghost *g, struct ghost_buffer *b)
{
	if (!g || !b)
		return -EINVAL;
	if (g->access != GHOST_MEMORY_WRITE && g->access != GHOST_MEMORY_READ)
		return ghost_fail(g, -EINVAL, "a buffer needs a memory interface plugged in");
	ghost_buffer_unref(g->buffer);
	g->buffer = ghost_buffer_ref(b);
	return 0;
}

int ghost_associate_file(struct ghost *g, int fd)
{
	if (!g || fd < 0)
		return -EINVAL;
	if (g->access != GHOST_FILE_WRITE && g->access != GHOST_FILE_READ)
		return ghost_fail(g, -EINVAL, "a file needs a file interface plugged in");
	g->fd = fd;
	return 0;
}

int ghost_associate_socket(struct ghost *g, int fd)
{
	if (!g || fd < 0)
		return -EINVAL;
	if (g->access != GHOST_NET_SEND && g->access != GHOST_NET_RECV)
		return ghost_fail(g, -EINVAL, "a socket needs a network interface plugged in");
	g->fd = fd;
	return 0;
}

int ghost_open_io(struct ghost *g, bool writing, bool sync, struct ghost_io **ret)
{
	bool w;

	if (!g->plugged)
		return ghost_fail(g, -EINVAL, "no resource access interface plugged in");
	w = g->access == GHOST_MEMORY_WRITE || g->access == GHOST_FILE_WRITE ||
	    g->access == GHOST_NET_SEND;
	if (w != writing)
		return ghost_fail(g, -EINVAL, "the plugged interface is for %s",
				  w ? "writing (export)" : "reading (import)");
	switch (g->access) {
	case GHOST_MEMORY_WRITE:
	case GHOST_MEMORY_READ:
		if (!g->buffer)
			return ghost_fail(g, -EINVAL, "no buffer associated with the ghost");
		return io_memory_new(g->buffer, w ? IO_WRITE : IO_READ, ret);
	case GHOST_FILE_WRITE:
	case GHOST_FILE_READ:
		if (g->fd < 0)
			return ghost_fail(g, -EINVAL, "no file associated with the ghost");
		return io_file_new(g->fd, w ? IO_WRITE : IO_READ, sync ? IO_FILE_SYNC : 0, ret);
	case GHOST_NET_SEND:
	case GHOST_NET_RECV:
		if (g->fd < 0)
			return ghost_fail(g, -EINVAL, "no socket associated with the ghost");
		return io_socket_new(g->fd, w ? IO_WRITE : IO_READ, ret);
	default:
		return -EINVAL;
	}
}

int ghost_fail(struct ghost *g, int r, const char *fmt, ...)
{
	va_list ap;

	/* Keep the first, most precise message of a failing call chain. */
	if (g->errmsg[0])
		return r;
	va_start(ap, fmt);
	vsnprintf(g->errmsg, sizeof(g->errmsg), fmt, ap);
	va_end(ap);
	return r;
}

const struct ghost_stats *ghost_get_stats(const struct ghost *g)
{
	return g ? &g->stats : NULL;
}

const char *ghost_errmsg(const struct ghost *g)
{
	return g ? g->errmsg : "";
}
