/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Deterministic test traffic for the msg layer: the size and bytes of message
 * i from node src to node dst, and the bytes of a stream, are functions of
 * (src, dst, i) or of the offset, so a receiver checks what it gets without
 * being told what was sent.
 */
#ifndef TESTS_MSG_TRAFFIC_H
#define TESTS_MSG_TRAFFIC_H

#include <stddef.h>
#include <stdint.h>

/* Size of message i: mostly under 256 bytes, one in eight up to 4 KiB, one in
 * 64 up to max. */
size_t traffic_size(uint32_t src, uint32_t dst, uint64_t i, size_t max);
void traffic_fill(uint32_t src, uint32_t dst, uint64_t i, uint8_t *buf, size_t len);
/* 0 if buf holds exactly message i, -EBADMSG if not. */
int traffic_check(uint32_t src, uint32_t dst, uint64_t i, const uint8_t *buf, size_t len);

/* Stream bytes [off, off + len) of the stream from src to dst. */
void traffic_stream_fill(uint32_t src, uint32_t dst, uint64_t off, uint8_t *buf, size_t len);
int traffic_stream_check(uint32_t src, uint32_t dst, uint64_t off, const uint8_t *buf,
			 size_t len);

#endif
