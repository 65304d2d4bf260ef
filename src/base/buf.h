/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * struct buf: one growable byte buffer (git strbuf).
 *
 * Invariants: data is NULL when cap == 0, else it points to cap bytes of which
 * the first len are valid and data[len] == '\0' (so text can be used as a C
 * string). Any call that grows the buffer may move data: pointers into it die.
 */
#ifndef BASE_BUF_H
#define BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "base/macro.h"

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
void buf_release(struct buf *b);
/* Make room for at least extra more bytes. -ENOMEM on failure, buffer unchanged. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) _printf_(2, 0);
/* Make err (if not NULL) the message, and return r: for the functions that
 * return -errno and say why in a struct buf. */
int buf_set_error(struct buf *err, int r, const char *fmt, ...) _printf_(3, 4);
/* Append s as a JSON string literal, quotes included. */
int buf_append_json_string(struct buf *b, const char *s, size_t len);
/* Hand the bytes to the caller (NUL-terminated, never NULL unless OOM); b is reset. */
char *buf_detach(struct buf *b, size_t *ret_len);
void buf_reset(struct buf *b);

#endif
