/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deterministic message and stream contents for the msg tests (splitmix64). */
#include <errno.h>
#include <string.h>

#include "traffic.h"

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t seed(uint32_t src, uint32_t dst, uint64_t i)
{
	return mix(((uint64_t)src << 32 | dst) ^ mix(i));
}

size_t traffic_size(uint32_t src, uint32_t dst, uint64_t i, size_t max)
{
	uint64_t x = mix(seed(src, dst, i) ^ 0x5a5a);
	size_t n;

	if (x % 64 == 0)
		n = (size_t)((x >> 8) % ((uint64_t)max + 1));
	else if (x % 8 == 0)
		n = (size_t)((x >> 8) % 4097);
	else
		n = (size_t)((x >> 8) % 257);
	return n > max ? max : n;
}

/* Bytes of a keyed sequence, starting at byte off of it. */
static void gen(uint64_t key, uint64_t off, uint8_t *buf, size_t len)
{
	while (len > 0) {
		uint64_t w = mix(key ^ (off / 8));
		size_t skip = off % 8, n = 8 - skip;

		if (skip == 0 && len >= 8) {
			for (int k = 0; k < 8; k++)
				buf[k] = (uint8_t)(w >> (8 * k));
			buf += 8;
			off += 8;
			len -= 8;
			continue;
		}

		if (n > len)
			n = len;
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)(w >> (8 * (skip + k)));
		buf += n;
		off += n;
		len -= n;
	}
}

static int check(uint64_t key, uint64_t off, const uint8_t *buf, size_t len)
{
	uint8_t tmp[4096];

	while (len > 0) {
		size_t n = len < sizeof(tmp) ? len : sizeof(tmp);

		gen(key, off, tmp, n);
		if (memcmp(tmp, buf, n) != 0)
			return -EBADMSG;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

void traffic_fill(uint32_t src, uint32_t dst, uint64_t i, uint8_t *buf, size_t len)
{
	gen(seed(src, dst, i), 0, buf, len);
}

int traffic_check(uint32_t src, uint32_t dst, uint64_t i, const uint8_t *buf, size_t len)
{
	return check(seed(src, dst, i), 0, buf, len);
}

void traffic_stream_fill(uint32_t src, uint32_t dst, uint64_t off, uint8_t *buf, size_t len)
{
	gen(seed(src, dst, UINT64_MAX), off, buf, len);
}

int traffic_stream_check(uint32_t src, uint32_t dst, uint64_t off, const uint8_t *buf,
			 size_t len)
{
	return check(seed(src, dst, UINT64_MAX), off, buf, len);
}
