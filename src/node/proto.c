/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attribute encoding of ghostd's messages and the control protocol's
 * frame header. Decoding never trusts a length: every attribute is checked
 * against what is left of its payload.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/node-int.h"
#include "base/banned.h"

int attr_put(struct buf *b, uint16_t type, const void *data, size_t len)
{
	uint8_t hdr[ATTR_HDR_SIZE];
	uint16_t t = htole16(type);
	uint32_t l;
	int r;

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	l = htole32((uint32_t)len);
	memcpy(hdr, &t, 2);
	memset(hdr + 2, 0, 2);
	memcpy(hdr + 4, &l, 4);
	r = buf_reserve(b, sizeof(hdr) + len);
	if (r < 0)
		return r;
	r = buf_append(b, hdr, sizeof(hdr));
	if (r >= 0 && len > 0)
		r = buf_append(b, data, len);
	return r;
}

int attr_put_u32(struct buf *b, uint16_t type, uint32_t v)
{
	uint32_t le = htole32(v);

	return attr_put(b, type, &le, sizeof(le));
}

int attr_put_u64(struct buf *b, uint16_t type, uint64_t v)
{
	uint64_t le = htole64(v);

	return attr_put(b, type, &le, sizeof(le));
}

int attr_put_str(struct buf *b, uint16_t type, const char *s)
{
	return attr_put(b, type, s, strlen(s));
}

void attr_iter_init(struct attr_iter *it, const void *data, size_t len)
{
	it->p = data;
	it->left = data ? len : 0;
}

int attr_next(struct attr_iter *it, struct attr *ret)
{
	uint16_t t;
	uint32_t l;

	if (it->left == 0)
		return 0;
	if (it->left < ATTR_HDR_SIZE)
		return -EBADMSG;
	memcpy(&t, it->p, 2);
	memcpy(&l, it->p + 4, 4);
	l = le32toh(l);
	if (l > it->left - ATTR_HDR_SIZE)
		return -EBADMSG;
	ret->type = le16toh(t);
	ret->data = it->p + ATTR_HDR_SIZE;
	ret->len = l;
	it->p += ATTR_HDR_SIZE + l;
	it->left -= ATTR_HDR_SIZE + l;
	return 1;
}

int attr_find(const void *data, size_t len, uint16_t type, struct attr *ret)
{
	struct attr_iter it;
	int r;

	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, ret)) > 0)
		if (ret->type == type)
			return 0;
	return r < 0 ? r : -ENOENT;
}

int attr_u32(const struct attr *a, uint32_t *ret)
{
	uint32_t v;

	if (a->len != sizeof(v))
		return -EBADMSG;
	memcpy(&v, a->data, sizeof(v));
	*ret = le32toh(v);
	return 0;
}

int attr_u64(const struct attr *a, uint64_t *ret)
{
	uint64_t v;

	if (a->len != sizeof(v))
		return -EBADMSG;
	memcpy(&v, a->data, sizeof(v));
	*ret = le64toh(v);
	return 0;
}

int attr_strdup(const struct attr *a, char **ret)
{
	char *s;

	if (memchr(a->data, '\0', a->len))
		return -EBADMSG;
	s = malloc(a->len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, a->data, a->len);
	s[a->len] = '\0';
	*ret = s;
	return 0;
}

int attr_strcpy(const struct attr *a, char *dst, size_t size)
{
	size_t n;

	if (size == 0 || memchr(a->data, '\0', a->len))
		return -EBADMSG;
	n = MIN(a->len, size - 1);
	memcpy(dst, a->data, n);
	dst[n] = '\0';
	return 0;
}

int ctl_frame_begin(struct buf *b, uint16_t type)
{
	uint8_t hdr[CTL_HDR_SIZE];
	uint32_t magic = htole32(CTL_MAGIC), len = 0;
	uint16_t version = htole16(CTL_VERSION), t = htole16(type);

	memcpy(hdr, &magic, 4);
	memcpy(hdr + 4, &version, 2);
	memcpy(hdr + 6, &t, 2);
	memcpy(hdr + 8, &len, 4);
	return buf_append(b, hdr, sizeof(hdr));
}

int ctl_frame_end(struct buf *b, size_t start)
{
	size_t len;
	uint32_t le;

	if (start + CTL_HDR_SIZE > b->len)
		return -EINVAL;
	len = b->len - start - CTL_HDR_SIZE;
	if (len > CTL_MAX_PAYLOAD)
		return -EMSGSIZE;
	le = htole32((uint32_t)len);
	memcpy(b->data + start + 8, &le, 4);
	return 0;
}

int ctl_frame_parse(const void *hdr, uint16_t *ret_type, uint32_t *ret_len)
{
	const uint8_t *p = hdr;
	uint32_t magic, len;
	uint16_t version, type;

	memcpy(&magic, p, 4);
	memcpy(&version, p + 4, 2);
	memcpy(&type, p + 6, 2);
	memcpy(&len, p + 8, 4);
	if (le32toh(magic) != CTL_MAGIC)
		return -EBADMSG;
	if (le16toh(version) != CTL_VERSION)
		return -EPROTONOSUPPORT;
	len = le32toh(len);
	if (len > CTL_MAX_PAYLOAD)
		return -EMSGSIZE;
	*ret_type = le16toh(type);
	*ret_len = len;
	return 0;
}

int attr_find_channel(const void *data, size_t len, uint16_t *ret_port,
		      uint8_t ret_key[MSG_CHAN_KEY_SIZE])
{
	struct attr a;
	uint32_t port = 0;

	if (attr_find(data, len, A_PORT, &a) < 0 || attr_u32(&a, &port) < 0 || port == 0 ||
	    port > 65535)
		return -EBADMSG;
	if (attr_find(data, len, A_KEY, &a) < 0 || a.len != MSG_CHAN_KEY_SIZE)
		return -EBADMSG;
	memcpy(ret_key, a.data, MSG_CHAN_KEY_SIZE);
	*ret_port = (uint16_t)port;
	return 0;
}
