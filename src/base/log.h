/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Leveled logging to stderr. Under systemd (JOURNAL_STREAM set) lines carry
 * the "<N>" priority prefix the journal understands. The level is tested
 * before the arguments are evaluated, so debug calls cost nothing when off.
 */
#ifndef BASE_LOG_H
#define BASE_LOG_H

#include "base/macro.h"

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARN = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

extern int log_max_level;

#ifndef LOG_PREFIX
#define LOG_PREFIX NULL
#endif

/* Set the level; "err", "warn", "info", "debug" or a number. Returns -EINVAL on junk. */
int log_set_level_from_string(const char *s);
/* Name shown before every line, e.g. "ghostd"; NULL for none. The string is not copied. */
void log_set_ident(const char *ident);

/* Always returns -abs(err) when err != 0, so `return log_err_errno(r, ...)` works. */
int log_emit(int level, int err, const char *prefix, const char *file, int line, const char *fmt,
	     ...) _printf_(6, 7);

#define log_full_errno(level, err, ...)                                                            \
	({                                                                                         \
		int _lvl = (level), _e = (err);                                                    \
		_lvl <= log_max_level                                                              \
			? log_emit(_lvl, _e, LOG_PREFIX, __FILE__, __LINE__, __VA_ARGS__)          \
			: (_e > 0 ? -_e : _e);                                                     \
	})

#define log_debug(...) log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warn(...) log_full_errno(LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_err(...) log_full_errno(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_LEVEL_DEBUG, e, __VA_ARGS__)
#define log_warn_errno(e, ...) log_full_errno(LOG_LEVEL_WARN, e, __VA_ARGS__)
#define log_err_errno(e, ...) log_full_errno(LOG_LEVEL_ERR, e, __VA_ARGS__)

#endif
