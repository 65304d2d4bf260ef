/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Leveled logging to stderr, with journal priority prefixes under systemd. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/banned.h"
#include "ghost/error.h"

int log_max_level = LOG_LEVEL_WARN;
static const char *log_ident;

int log_set_level_from_string(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "err", LOG_LEVEL_ERR },
		{ "error", LOG_LEVEL_ERR },
		{ "warn", LOG_LEVEL_WARN },
		{ "warning", LOG_LEVEL_WARN },
		{ "info", LOG_LEVEL_INFO },
		{ "debug", LOG_LEVEL_DEBUG },
	};
	char *end;
	long v;

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i].name) == 0) {
			log_max_level = names[i].level;
			return 0;
		}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 7)
		return -EINVAL;
	log_max_level = (int)v;
	return 0;
}

void log_set_ident(const char *ident)
{
	log_ident = ident;
}

int log_emit(int level, int err, const char *prefix, const char *file, int line, const char *fmt,
	     ...)
{
	static int journal = -1;
	char msg[2048];
	va_list ap;
	int saved = errno;

	if (err > 0)
		err = -err;
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (journal)
		fprintf(stderr, "<%d>", level);
	if (log_ident)
		fprintf(stderr, "%s: ", log_ident);
	if (prefix)
		fprintf(stderr, "%s: ", prefix);
	fputs(msg, stderr);
	if (err)
		fprintf(stderr, ": %s", ghost_strerror(err));
	if (level <= LOG_LEVEL_ERR || log_max_level >= LOG_LEVEL_DEBUG)
		fprintf(stderr, " (%s:%d)", file, line);
	fputc('\n', stderr);
	errno = saved;
	return err;
}
