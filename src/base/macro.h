/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small macros every module uses: cleanup attributes, errno conversion, sizes. */
#ifndef BASE_MACRO_H
#define BASE_MACRO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _packed_ __attribute__((packed))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))

/* Convert a libc -1/errno return into -errno; pass other values through. */
#define RET_ERRNO(expr)                                                                            \
	({                                                                                         \
		long _r = (long)(expr);                                                            \
		_r < 0 ? -errno : _r;                                                              \
	})

/* A negative errno, never 0, even when errno was left unset. */
static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
	})

/* Multiply two sizes, failing on overflow (git st_mult). */
static inline int size_mul(size_t a, size_t b, size_t *ret)
{
	if (__builtin_mul_overflow(a, b, ret))
		return -ENOMEM;
	return 0;
}

/* calloc-style array allocation with an overflow check. */
#define NEW_ARRAY(type, n) ((type *)calloc((n) ? (n) : 1, sizeof(type)))

#endif
