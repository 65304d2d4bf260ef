/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fault injection for tests, shared by the daemon's modules: an environment
 * variable holds "MSG@NODE:MS" items, comma separated, and the module of
 * that variable makes node NODE handle message MSG MS milliseconds late, so
 * that a test can fail a node at a known point of a protocol without racing
 * it. This file only reads the variable; what "late" means is the module's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX "fault"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

size_t node_faults_parse(const struct node_daemon *d, const char *var,
			 const char *const *names, size_t n_names, struct node_fault *ret,
			 size_t max)
{
	const char *env = getenv(var);
	size_t count = 0;
	char item[64];

	while (env && *env) {
		size_t n = strcspn(env, ",");
		unsigned node, ms;
		char name[16];
		bool known = false;
		int used = 0;

		snprintf(item, sizeof(item), "%.*s", (int)(n < sizeof(item) ? n : sizeof(item) - 1),
			 env);
		env += n + (env[n] == ',');
		if (sscanf(item, "%15[a-z]@%u:%u%n", name, &node, &ms, &used) != 3 ||
		    item[used] != '\0') {
			log_warn("%s: ignoring '%s' (want MSG@NODE:MS)", var, item);
			continue;
		}
		for (size_t t = 0; t < n_names; t++) {
			if (!names[t] || strcmp(names[t], name) != 0)
				continue;
			known = true;
			if (node != d->self)
				break;
			if (count == max) {
				log_warn("%s: ignoring '%s' (at most %zu items per node)", var, item,
					 max);
				break;
			}
			ret[count++] = (struct node_fault){ .type = (uint32_t)t, .delay_ms = ms };
			log_warn("fault injection (%s): '%s' held back %u ms on this node", var,
				 name, ms);
			break;
		}
		if (!known)
			log_warn("%s: ignoring '%s' (no message '%s')", var, item, name);
	}
	return count;
}
