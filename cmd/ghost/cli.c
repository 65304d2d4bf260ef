/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Error lines of the ghost command line: one line "ghost: ..." on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static void vline(const char *fmt, va_list ap) _printf_(1, 0);
static void vline(const char *fmt, va_list ap)
{
	fputs("ghost: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(fmt, ap);
	va_end(ap);
	fputs(usage, stderr);
	return EXIT_USAGE;
}
