/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client side of the dstream requests, for the dstream library
 * (src/dstream): create and destroy are one request each, like the other
 * verbs; an attach or a wakeup keeps its connection as the endpoint's, on
 * which the daemon sends events with fds (SCM_RIGHTS, one per frame, with
 * its first byte) and the library hands its links over when it suspends.
 * Everything is read with recvmsg(), so that no fd is lost with a read().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/node-int.h"
#include "base/banned.h"

/* Fds received and not yet claimed by their frame. */
#define DS_FDS_MAX 64

struct node_ds {
	struct client cl;
	int fds[DS_FDS_MAX];
	size_t n_fds;
	bool eof;
};

int node_ds_fd(const struct node_ds *c)
{
	return c->cl.fd;
}

struct node_ds *node_ds_free(struct node_ds *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_fds; i++)
		safe_close(c->fds[i]);
	client_release(&c->cl);
	free(c);
	return NULL;
}

/* Read what has come (block: wait for something): > 0, 0 at end of file,
 * -EAGAIN when nothing came and not blocking, -errno. */
static ssize_t ds_fill(struct node_ds *c, bool block)
{
	struct client *cl = &c->cl;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(CTL_FRAME_FDS * sizeof(int))];
	} cmsg;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int r;

	if (cl->in_off > 0) {
		memmove(cl->in.data, cl->in.data + cl->in_off, cl->in.len - cl->in_off);
		cl->in.len -= cl->in_off;
		cl->in_off = 0;
	}
	r = buf_reserve(&cl->in, 64u << 10);
	if (r < 0)
		return r;
	iov.iov_base = cl->in.data + cl->in.len;
	iov.iov_len = cl->in.cap - cl->in.len - 1;
	mh.msg_control = cmsg.buf;
	mh.msg_controllen = sizeof(cmsg.buf);
	do
		n = recvmsg(cl->fd, &mh, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->n_fds < DS_FDS_MAX)
				c->fds[c->n_fds++] = fd;
			else
				safe_close(fd);
		}
	}
	cl->in.len += (size_t)n;
	cl->in.data[cl->in.len] = '\0';
	if (n == 0)
		c->eof = true;
	return n;
}

static int take_fd(struct node_ds *c)
{
	int fd;

	if (c->n_fds == 0)
		return -1;
	fd = c->fds[0];
	memmove(c->fds, c->fds + 1, --c->n_fds * sizeof(int));
	return fd;
}

/* The next frame: 1 with it, 0 if none (not blocking), -errno with err. */
static int ds_frame(struct node_ds *c, bool block, uint16_t *ret_type, const void **ret_payload,
		    size_t *ret_len, struct buf *err)
{
	for (;;) {
		ssize_t n;
		int r = client_take_frame(&c->cl, ret_type, ret_payload, ret_len);

		if (r > 0) {
			if (*ret_type == CTL_ERROR)
				return client_error_frame(*ret_payload, *ret_len, err, NULL);
			return 1;
		}
		if (r < 0)
			return client_lost(&c->cl, r, err);
		if (c->eof)
			return client_lost(&c->cl, 0, err);
		n = ds_fill(c, block);
		if (n == -EAGAIN && !block)
			return 0;
		if (n < 0)
			return client_lost(&c->cl, (int)n, err);
	}
}

static int request(const char *path, uint16_t type, const struct buf *payload,
		   struct node_ds **ret, struct buf *err)
{
	struct node_ds *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return buf_set_error(err, -ENOMEM, "out of memory");
	r = client_connect(&c->cl, path, err);
	if (r >= 0) {
		r = client_send(&c->cl, type, payload, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	if (r < 0) {
		node_ds_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

static int unexpected(struct node_ds *c, uint16_t type, struct buf *err)
{
	return buf_set_error(err, -EPROTO, "ghostd at '%s' sent an unexpected frame (type %u)",
		       c->cl.path, type);
}

int node_ds_create(const char *path, uint32_t type, uint32_t n, uint64_t *ret_id,
		   struct buf *err)
{
	struct node_ds *c = NULL;
	struct buf b = BUF_INIT;
	const void *payload = NULL;
	struct attr a;
	uint16_t t = 0;
	size_t len = 0;
	int r;

	r = attr_put_u32(&b, A_KIND, type);
	if (r >= 0)
		r = attr_put_u32(&b, A_COUNT, n);
	if (r < 0)
		r = buf_set_error(err, r, "out of memory");
	else
		r = request(path, CTL_DS_CREATE, &b, &c, err);
	buf_release(&b);
	if (r >= 0)
		r = ds_frame(c, true, &t, &payload, &len, err);
	if (r >= 0 && t != CTL_DS_CREATED)
		r = unexpected(c, t, err);
	if (r >= 0 && (attr_find(payload, len, A_STREAM, &a) < 0 || attr_u64(&a, ret_id) < 0))
		r = buf_set_error(err, -EPROTO, "ghostd sent no stream id");
	node_ds_free(c);
	return r < 0 ? r : 0;
}

int node_ds_destroy(const char *path, uint64_t id, struct buf *err)
{
	struct node_ds *c = NULL;
	struct buf b = BUF_INIT;
	const void *payload = NULL;
	uint16_t t = 0;
	size_t len = 0;
	int r;

	r = attr_put_u64(&b, A_STREAM, id);
	if (r < 0)
		r = buf_set_error(err, r, "out of memory");
	else
		r = request(path, CTL_DS_DESTROY, &b, &c, err);
	buf_release(&b);
	if (r >= 0)
		r = ds_frame(c, true, &t, &payload, &len, err);
	if (r >= 0 && t != CTL_OK)
		r = unexpected(c, t, err);
	node_ds_free(c);
	return r < 0 ? r : 0;
}

static int attached(struct node_ds *c, struct node_ds **ret, struct node_ds_info *info,
		    struct buf *err)
{
	const void *payload = NULL;
	struct attr_iter it;
	struct attr a;
	uint16_t t = 0;
	size_t len = 0;
	int r;

	r = ds_frame(c, true, &t, &payload, &len, err);
	if (r >= 0 && t != CTL_DS_ATTACHED)
		r = unexpected(c, t, err);
	if (r < 0) {
		node_ds_free(c);
		return r;
	}
	*info = (struct node_ds_info){ 0 };
	attr_iter_init(&it, payload, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_STREAM)
			(void)attr_u64(&a, &info->id);
		else if (a.type == A_INDEX)
			(void)attr_u32(&a, &info->index);
		else if (a.type == A_KIND)
			(void)attr_u32(&a, &info->type);
		else if (a.type == A_COUNT)
			(void)attr_u32(&a, &info->n);
	}
	if (info->n < 2 || info->index >= info->n) {
		node_ds_free(c);
		return buf_set_error(err, -EPROTO, "ghostd sent a malformed endpoint");
	}
	*ret = c;
	return 0;
}

int node_ds_attach(const char *path, uint64_t id, struct node_ds **ret,
		   struct node_ds_info *ret_info, struct buf *err)
{
	struct node_ds *c = NULL;
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_STREAM, id);
	if (r < 0)
		r = buf_set_error(err, r, "out of memory");
	else
		r = request(path, CTL_DS_ATTACH, &b, &c, err);
	buf_release(&b);
	if (r < 0)
		return r;
	return attached(c, ret, ret_info, err);
}

int node_ds_wakeup(const char *path, const char *handle, struct node_ds **ret,
		   struct node_ds_info *ret_info, struct buf *err)
{
	struct node_ds *c = NULL;
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_str(&b, A_HANDLE, handle);
	if (r < 0)
		r = buf_set_error(err, r, "out of memory");
	else
		r = request(path, CTL_DS_WAKEUP, &b, &c, err);
	buf_release(&b);
	if (r < 0)
		return r;
	return attached(c, ret, ret_info, err);
}

int node_ds_next(struct node_ds *c, struct node_ds_event *ret, struct buf *err)
{
	const void *payload = NULL;
	struct attr a;
	uint16_t t = 0;
	size_t len = 0;
	int r;

	r = ds_frame(c, false, &t, &payload, &len, err);
	if (r <= 0)
		return r;
	*ret = (struct node_ds_event){ .fd = -1 };
	if (attr_find(payload, len, A_PEER, &a) >= 0)
		(void)attr_u32(&a, &ret->peer);
	switch (t) {
	case CTL_DS_LINK:
	case CTL_DS_FEED:
		ret->kind = t == CTL_DS_LINK ? NODE_DS_LINK : NODE_DS_FEED;
		ret->fd = take_fd(c);
		if (ret->fd < 0)
			return buf_set_error(err, -EPROTO, "ghostd sent a link without its socket");
		return 1;
	case CTL_DS_CLOSED: {
		uint32_t flags = 0;

		if (attr_find(payload, len, A_FLAGS, &a) >= 0)
			(void)attr_u32(&a, &flags);
		ret->kind = NODE_DS_CLOSED;
		ret->lost = flags & DS_CLOSED_LOST;
		return 1;
	}
	case CTL_DS_DESTROYED:
		ret->kind = NODE_DS_DESTROYED;
		return 1;
	case CTL_DS_SUSPEND_GO:
		ret->kind = NODE_DS_SUSPEND_GO;
		return 1;
	default:
		return unexpected(c, t, err);
	}
}

int node_ds_suspend_begin(struct node_ds *c, struct buf *err)
{
	int r = client_send(&c->cl, CTL_DS_SUSPEND, NULL, NULL, 0);

	if (r < 0)
		return buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	return 0;
}

int node_ds_hand(struct node_ds *c, uint32_t peer, const void *data, size_t len, const int *fds,
		 size_t n_fds, struct buf *err)
{
	size_t sent = 0;
	int r;

	/* The bytes in the first frame, the sockets CTL_FRAME_FDS at a time. */
	do {
		struct buf b = BUF_INIT;
		size_t k = MIN(n_fds - sent, (size_t)CTL_FRAME_FDS);

		r = attr_put_u32(&b, A_PEER, peer);
		if (r >= 0 && sent == 0 && len > 0)
			r = attr_put(&b, A_DATA, data, len);
		if (r >= 0)
			r = attr_put_u32(&b, A_COUNT, (uint32_t)k);
		if (r >= 0)
			r = client_send(&c->cl, CTL_DS_HAND, &b, k ? fds + sent : NULL, k);
		buf_release(&b);
		if (r < 0)
			return buf_set_error(err, r, "cannot hand a link over to ghostd: %s", strerror(-r));
		sent += k;
	} while (sent < n_fds);
	return 0;
}

int node_ds_suspend_end(struct node_ds *c, char *handle, size_t size, struct buf *err)
{
	const void *payload = NULL;
	struct attr a;
	uint16_t t = 0;
	size_t len = 0;
	int r;

	r = client_send(&c->cl, CTL_DS_HANDED, NULL, NULL, 0);
	if (r < 0)
		return buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	r = ds_frame(c, true, &t, &payload, &len, err);
	if (r < 0)
		return r;
	if (t != CTL_DS_SUSPENDED)
		return unexpected(c, t, err);
	if (attr_find(payload, len, A_HANDLE, &a) < 0 || a.len + 1 > size ||
	    attr_strcpy(&a, handle, size) < 0)
		return buf_set_error(err, -EPROTO, "ghostd sent no usable handle");
	return 0;
}
