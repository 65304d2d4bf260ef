/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cluster.conf: the cluster configuration every node daemon reads (node ids,
 * addresses and ports, the key file, bulk encryption on or off), and the key
 * file. The format is in cluster.h and docs/cluster.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "cluster/cluster-int.h"
#include "base/banned.h"

void cluster_config_release(struct cluster_config *c)
{
	if (!c)
		return;
	free(c->nodes);
	free(c->key_file);
	*c = (struct cluster_config)CLUSTER_CONFIG_INIT;
}

const struct cluster_config_node *cluster_config_find(const struct cluster_config *c, uint32_t id)
{
	for (size_t i = 0; c && i < c->n_nodes; i++)
		if (c->nodes[i].id == id)
			return &c->nodes[i];
	return NULL;
}

/* A numeric IPv4 or IPv6 address, written back in canonical form. */
static int parse_address(const char *s, char ret[46])
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return inet_ntop(AF_INET, a, ret, 46) ? 0 : -EINVAL;
	if (inet_pton(AF_INET6, s, a) == 1)
		return inet_ntop(AF_INET6, a, ret, 46) ? 0 : -EINVAL;
	return -EINVAL;
}

static int parse_number(const char *s, uint64_t max, uint64_t *ret)
{
	if (parse_u64(s, 10, ret) < 0 || *ret == 0 || *ret > max)
		return -EINVAL;
	return 0;
}

/* Up to max fields of one line; returns their number, or max + 1 if there are more. */
static size_t fields(char *line, char **f, size_t max)
{
	size_t n = 0;

	for (char *p = line;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			*p++ = '\0';
		if (!*p)
			return n;
		if (n == max)
			return max + 1;
		f[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
	}
}

static int parse_line(struct cluster_config *c, char *line, unsigned lineno, bool *seen_encrypt,
		      struct buf *err)
{
	char *f[5];
	size_t n = fields(line, f, 4);

	if (n == 0 || f[0][0] == '#')
		return 0;
	if (strcmp(f[0], "node") == 0) {
		struct cluster_config_node node = { 0 }, *nodes;
		uint64_t id, port;

		if (n != 4)
			return cl_fail(err, -EINVAL, "line %u: expected 'node ID ADDRESS PORT'",
				       lineno);
		if (parse_number(f[1], UINT32_MAX, &id) < 0)
			return cl_fail(err, -EINVAL, "line %u: bad node id '%s'", lineno, f[1]);
		if (parse_address(f[2], node.address) < 0)
			return cl_fail(err, -EINVAL, "line %u: '%s' is not a numeric IP address",
				       lineno, f[2]);
		if (parse_number(f[3], 65535, &port) < 0)
			return cl_fail(err, -EINVAL, "line %u: bad port '%s'", lineno, f[3]);
		node.id = (uint32_t)id;
		node.port = (uint16_t)port;
		for (size_t i = 0; i < c->n_nodes; i++) {
			if (c->nodes[i].id == node.id)
				return cl_fail(err, -EINVAL, "line %u: node %u appears twice",
					       lineno, node.id);
			if (c->nodes[i].port == node.port &&
			    strcmp(c->nodes[i].address, node.address) == 0)
				return cl_fail(err, -EINVAL,
					       "line %u: nodes %u and %u have the same address",
					       lineno, c->nodes[i].id, node.id);
		}
		nodes = reallocarray(c->nodes, c->n_nodes + 1, sizeof(*nodes));
		if (!nodes)
			return cl_fail(err, -ENOMEM, "out of memory");
		c->nodes = nodes;
		c->nodes[c->n_nodes++] = node;
		return 0;
	}
	if (strcmp(f[0], "key") == 0) {
		if (n != 2)
			return cl_fail(err, -EINVAL, "line %u: expected 'key FILE'", lineno);
		if (c->key_file)
			return cl_fail(err, -EINVAL, "line %u: a second key", lineno);
		c->key_file = strdup(f[1]);
		if (!c->key_file)
			return cl_fail(err, -ENOMEM, "out of memory");
		return 0;
	}
	if (strcmp(f[0], "encrypt") == 0) {
		if (n != 2 || (strcmp(f[1], "yes") != 0 && strcmp(f[1], "no") != 0))
			return cl_fail(err, -EINVAL,
				       "line %u: expected 'encrypt yes' or 'encrypt no'", lineno);
		if (*seen_encrypt)
			return cl_fail(err, -EINVAL, "line %u: a second 'encrypt'", lineno);
		*seen_encrypt = true;
		c->encrypt = strcmp(f[1], "yes") == 0;
		return 0;
	}
	return cl_fail(err, -EINVAL, "line %u: unknown directive '%s'", lineno, f[0]);
}

int cluster_config_parse(const char *text, size_t len, struct cluster_config *ret, struct buf *err)
{
	struct cluster_config c = CLUSTER_CONFIG_INIT;
	_cleanup_free_ char *copy = NULL;
	bool seen_encrypt = false;
	unsigned lineno = 0;
	char *line, *next;
	int r = 0;

	if (!ret || (!text && len))
		return -EINVAL;
	if (len && memchr(text, '\0', len))
		return cl_fail(err, -EINVAL, "the configuration holds a NUL byte");
	copy = malloc(len + 1);
	if (!copy)
		return cl_fail(err, -ENOMEM, "out of memory");
	if (len)
		memcpy(copy, text, len);
	copy[len] = '\0';
	for (line = copy; line && *line && r >= 0; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		r = parse_line(&c, line, lineno, &seen_encrypt, err);
	}
	if (r >= 0 && c.n_nodes == 0)
		r = cl_fail(err, -EINVAL, "no node in the configuration");
	if (r >= 0 && !c.key_file)
		r = cl_fail(err, -EINVAL, "no key file in the configuration");
	if (r < 0) {
		cluster_config_release(&c);
		cluster_config_release(ret);
		return r;
	}
	cluster_config_release(ret);
	*ret = c;
	return 0;
}

int cluster_config_load(const char *path, struct cluster_config *ret, struct buf *err)
{
	struct buf text = BUF_INIT;
	int r;

	if (!path || !ret)
		return -EINVAL;
	r = read_file_at(AT_FDCWD, path, &text);
	if (r < 0) {
		buf_release(&text);
		cluster_config_release(ret);
		return cl_fail(err, r, "cannot read '%s': %s", path, strerror(-r));
	}
	r = cluster_config_parse(text.data ? text.data : "", text.len, ret, err);
	buf_release(&text);
	if (r < 0) {
		if (err && err->len) {
			_cleanup_free_ char *why = buf_detach(err, NULL);

			if (!why)
				return -ENOMEM;
			return cl_fail(err, r, "%s: %s", path, why);
		}
		return r;
	}
	if (ret->key_file[0] != '/' && strchr(path, '/')) {
		struct buf abs = BUF_INIT;
		const char *slash = strrchr(path, '/');

		if (buf_printf(&abs, "%.*s/%s", (int)(slash - path), path, ret->key_file) < 0) {
			buf_release(&abs);
			cluster_config_release(ret);
			return cl_fail(err, -ENOMEM, "out of memory");
		}
		free(ret->key_file);
		ret->key_file = buf_detach(&abs, NULL);
		if (!ret->key_file) {
			cluster_config_release(ret);
			return cl_fail(err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

int cluster_config_format(const struct cluster_config *c, struct buf *out)
{
	int r;

	if (!c || !out || !c->key_file)
		return -EINVAL;
	r = buf_printf(out,
		       "# Ghost cluster configuration: one 'node ID ADDRESS PORT' line per node,\n"
		       "# the cluster key file and whether messages are encrypted.\n"
		       "key %s\nencrypt %s\n",
		       c->key_file, c->encrypt ? "yes" : "no");
	for (size_t i = 0; r >= 0 && i < c->n_nodes; i++)
		r = buf_printf(out, "node %u %s %u\n", c->nodes[i].id, c->nodes[i].address,
			       c->nodes[i].port);
	return r;
}

int cluster_key_load(const char *path, uint8_t ret_key[CLUSTER_KEY_SIZE])
{
	_cleanup_close_ int fd = -1;
	uint8_t key[CLUSTER_KEY_SIZE + 1];
	struct stat st;
	ssize_t n;

	if (!path || !ret_key)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_mode & 077)
		return -EPERM;
	n = read_full(fd, key, sizeof(key));
	if (n < 0)
		return (int)n;
	if (n != CLUSTER_KEY_SIZE) {
		explicit_bzero(key, sizeof(key));
		return -EINVAL;
	}
	memcpy(ret_key, key, CLUSTER_KEY_SIZE);
	explicit_bzero(key, sizeof(key));
	return 0;
}
