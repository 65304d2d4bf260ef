/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every verb of the ghost command line shares: its error lines and exit codes. */
#ifndef GHOST_CLI_H
#define GHOST_CLI_H

#include "base/macro.h"

#define EXIT_USAGE 2

/* Print "ghost: MESSAGE" on stderr; returns EXIT_FAILURE. */
int cli_fail(const char *fmt, ...) _printf_(1, 2);
/* Print "ghost: MESSAGE" and the verb's usage on stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) _printf_(2, 3);

#endif
