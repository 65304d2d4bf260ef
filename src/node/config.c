/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cluster.conf as ghostd reads it (format in node.h), the key file, and which node is this one. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>

#include "base/fileio.h"
#include "node/node.h"
#include "base/banned.h"

#define MAX_FIELDS 8

void node_config_release(struct node_config *c)
{
	free(c->nodes);
	free(c->key_file);
	*c = (struct node_config)NODE_CONFIG_INIT;
}

const struct node_config_node *node_config_find(const struct node_config *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].id == id)
			return &c->nodes[i];
	return NULL;
}

/* Split line (modified in place) into blank-separated fields. */
static size_t split(char *line, char *fields[MAX_FIELDS + 1])
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (!*p)
			break;
		if (n == MAX_FIELDS + 1)
			return n;
		fields[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static bool parse_address(const char *s, char *out, size_t size)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1)
		return inet_ntop(AF_INET, &a4, out, (socklen_t)size) != NULL;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return inet_ntop(AF_INET6, &a6, out, (socklen_t)size) != NULL;
	return false;
}

static int key_path(const char *name, const char *file, char **ret)
{
	struct buf b = BUF_INIT;
	const char *slash = name ? strrchr(name, '/') : NULL;
	int r;

	if (file[0] == '/' || !slash)
		r = buf_printf(&b, "%s", file);
	else
		r = buf_printf(&b, "%.*s/%s", (int)(slash - name), name, file);
	if (r < 0) {
		buf_release(&b);
		return r;
	}
	*ret = buf_detach(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

/* "512M", "2G", "1048576", "0" (bytes) or "25%" (of the RAM). */
static int parse_size(const char *s, uint64_t *ret_bytes, uint32_t *ret_pct)
{
	char digits[32];
	size_t len = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (len == 0 || len >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, s, len + 1);
	if (digits[len - 1] == '%') {
		digits[len - 1] = '\0';
		if (parse_u64(digits, 10, &v) < 0 || v == 0 || v > 100)
			return -EINVAL;
		*ret_pct = (uint32_t)v;
		*ret_bytes = 0;
		return 0;
	}
	for (size_t i = 0; i < 4; i++)
		if (digits[len - 1] == "KMGT"[i] || digits[len - 1] == "kmgt"[i])
			shift = 10 * (unsigned)(i + 1);
	if (shift)
		digits[len - 1] = '\0';
	if (parse_u64(digits, 10, &v) < 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret_bytes = v << shift;
	*ret_pct = 0;
	return 0;
}

static int parse_line(const char *name, unsigned lineno, char **f, size_t n,
		      struct node_config *c, bool *have_range, struct buf *err)
{
	uint64_t v;
	int r;

	if (strcmp(f[0], "node") == 0) {
		struct node_config_node *nn, node = { 0 };

		if (n != 4)
			return buf_set_error(err, -EINVAL, "%s:%u: expected 'node ID ADDRESS PORT'", name,
				       lineno);
		if (parse_u64(f[1], 10, &v) < 0 || v == 0 || v > UINT32_MAX)
			return buf_set_error(err, -EINVAL, "%s:%u: bad node id '%s' (1..4294967295)",
				       name, lineno, f[1]);
		node.id = (uint32_t)v;
		if (!parse_address(f[2], node.address, sizeof(node.address)))
			return buf_set_error(err, -EINVAL,
				       "%s:%u: bad address '%s' (numeric IPv4 or IPv6)", name,
				       lineno, f[2]);
		if (parse_u64(f[3], 10, &v) < 0 || v == 0 || v > 65535)
			return buf_set_error(err, -EINVAL, "%s:%u: bad port '%s' (1..65535)", name,
				       lineno, f[3]);
		node.port = (uint16_t)v;
		for (size_t i = 0; i < c->n_nodes; i++) {
			if (c->nodes[i].id == node.id)
				return buf_set_error(err, -EINVAL, "%s:%u: node %u is configured twice",
					       name, lineno, node.id);
			if (c->nodes[i].port == node.port &&
			    strcmp(c->nodes[i].address, node.address) == 0)
				return buf_set_error(err, -EINVAL,
					       "%s:%u: address %s port %u is already node %u", name,
					       lineno, node.address, node.port, c->nodes[i].id);
		}
		nn = realloc(c->nodes, (c->n_nodes + 1) * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		c->nodes = nn;
		c->nodes[c->n_nodes++] = node;
		return 0;
	}
	if (strcmp(f[0], "key") == 0) {
		if (n != 2)
			return buf_set_error(err, -EINVAL, "%s:%u: expected 'key FILE'", name, lineno);
		if (c->key_file)
			return buf_set_error(err, -EINVAL, "%s:%u: the key is configured twice", name,
				       lineno);
		r = key_path(name, f[1], &c->key_file);
		return r;
	}
	if (strcmp(f[0], "encrypt") == 0) {
		if (n != 2 || (strcmp(f[1], "yes") != 0 && strcmp(f[1], "no") != 0))
			return buf_set_error(err, -EINVAL,
				       "%s:%u: expected 'encrypt yes' or 'encrypt no'", name,
				       lineno);
		c->encrypt = strcmp(f[1], "yes") == 0;
		return 0;
	}
	if (strcmp(f[0], "timeout") == 0) {
		if (n != 2 || parse_u64(f[1], 10, &v) < 0 || v < 100 || v > 3600000)
			return buf_set_error(err, -EINVAL,
				       "%s:%u: expected 'timeout MS' with MS from 100 to 3600000",
				       name, lineno);
		c->timeout_ms = (uint32_t)v;
		return 0;
	}
	if (strcmp(f[0], "pid-range") == 0) {
		if (n != 2 || parse_u64(f[1], 10, &v) < 0 || v < 100 || v > NODE_PID_LIMIT / 2)
			return buf_set_error(err, -EINVAL,
				       "%s:%u: expected 'pid-range N' with N from 100 to %u", name,
				       lineno, NODE_PID_LIMIT / 2);
		if (*have_range)
			return buf_set_error(err, -EINVAL, "%s:%u: the PID range is configured twice",
				       name, lineno);
		c->pid_range = (uint32_t)v;
		*have_range = true;
		return 0;
	}
	if (strcmp(f[0], "checkpoint-memory") == 0) {
		if (n != 2 || parse_size(f[1], &c->ckpt_memory, &c->ckpt_memory_pct) < 0)
			return buf_set_error(err, -EINVAL,
				       "%s:%u: expected 'checkpoint-memory SIZE' with SIZE in "
				       "bytes (suffix K, M, G or T) or a percentage of the RAM "
				       "(1%% to 100%%)",
				       name, lineno);
		return 0;
	}
	return buf_set_error(err, -EINVAL, "%s:%u: unknown directive '%s'", name, lineno, f[0]);
}

int node_config_parse(const char *name, const char *text, size_t len, struct node_config *ret,
		      struct buf *err)
{
	struct node_config c = NODE_CONFIG_INIT;
	const char *p = text, *end = text + len;
	unsigned lineno = 0;
	bool have_range = false;
	int r = 0;

	if (!name)
		name = "cluster.conf";
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *fields[MAX_FIELDS + 1];
		_cleanup_free_ char *line = NULL;
		size_t n;

		lineno++;
		if (memchr(p, '\0', l)) {
			r = buf_set_error(err, -EINVAL, "%s:%u: NUL byte in the file", name, lineno);
			goto fail;
		}
		line = strndup(p, l);
		if (!line) {
			r = -ENOMEM;
			goto fail;
		}
		p += l + (nl ? 1 : 0);
		n = split(line, fields);
		if (n == 0 || fields[0][0] == '#')
			continue;
		if (n > MAX_FIELDS) {
			r = buf_set_error(err, -EINVAL, "%s:%u: too many fields", name, lineno);
			goto fail;
		}
		r = parse_line(name, lineno, fields, n, &c, &have_range, err);
		if (r < 0)
			goto fail;
	}
	if (c.n_nodes == 0) {
		r = buf_set_error(err, -EINVAL, "%s: no 'node' line", name);
		goto fail;
	}
	if (!c.key_file) {
		r = buf_set_error(err, -EINVAL, "%s: no 'key' line", name);
		goto fail;
	}
	if (!have_range) {
		/* 100000 PIDs per node, unless the largest id would not fit. */
		uint64_t max_id = 0, per;

		for (size_t i = 0; i < c.n_nodes; i++)
			max_id = MAX(max_id, (uint64_t)c.nodes[i].id);
		per = NODE_PID_LIMIT / (max_id + 1);
		if (per < NODE_DEFAULT_PID_RANGE)
			c.pid_range = (uint32_t)(per >= 1000 ? per / 1000 * 1000 : per);
	}
	for (size_t i = 0; i < c.n_nodes; i++) {
		uint64_t last = ((uint64_t)c.nodes[i].id + 1) * c.pid_range - 1;

		if (c.pid_range < 100 || last >= NODE_PID_LIMIT) {
			r = buf_set_error(err, -EINVAL,
				    "%s: PID range of node %u ends at %llu, above the kernel's "
				    "limit %u: use smaller node ids or a smaller 'pid-range'",
				    name, c.nodes[i].id, (unsigned long long)last,
				    NODE_PID_LIMIT - 1);
			goto fail;
		}
	}
	node_config_release(ret);
	*ret = c;
	return 0;
fail:
	if (r == -ENOMEM)
		buf_set_error(err, r, "%s: out of memory", name);
	node_config_release(&c);
	node_config_release(ret);
	return r;
}

int node_config_load(const char *path, struct node_config *ret, struct buf *err)
{
	struct buf text = BUF_INIT;
	int r;

	r = read_file_at(AT_FDCWD, path, &text);
	if (r < 0) {
		buf_release(&text);
		node_config_release(ret);
		return buf_set_error(err, r, "cannot read '%s': %s", path, strerror(-r));
	}
	r = node_config_parse(path, text.data, text.len, ret, err);
	buf_release(&text);
	return r;
}

int node_key_load(const char *path, uint8_t ret_key[NODE_KEY_SIZE], struct buf *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	uint8_t key[NODE_KEY_SIZE + 1];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return buf_set_error(err, -errno, "cannot open key file '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return buf_set_error(err, -errno, "cannot stat key file '%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return buf_set_error(err, -EINVAL, "key file '%s' is not a regular file", path);
	if (st.st_mode & 077)
		return buf_set_error(err, -EPERM,
			       "key file '%s' is accessible by group or others (mode %04o): "
			       "chmod 600 it",
			       path, (unsigned)(st.st_mode & 07777));
	n = read_full(fd, key, sizeof(key));
	if (n < 0)
		return buf_set_error(err, (int)n, "cannot read key file '%s': %s", path,
			       strerror((int)-n));
	if (n != NODE_KEY_SIZE)
		return buf_set_error(err, -EINVAL, "key file '%s' must hold exactly %d bytes", path,
			       NODE_KEY_SIZE);
	memcpy(ret_key, key, NODE_KEY_SIZE);
	return 0;
}

static bool same_address(const struct sockaddr *sa, const char *address)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (sa->sa_family == AF_INET && inet_pton(AF_INET, address, &a4) == 1)
		return memcmp(&((const struct sockaddr_in *)sa)->sin_addr, &a4, sizeof(a4)) == 0;
	if (sa->sa_family == AF_INET6 && inet_pton(AF_INET6, address, &a6) == 1)
		return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, &a6, sizeof(a6)) ==
		       0;
	return false;
}

int node_config_find_local(const struct node_config *c, uint32_t *ret_id, struct buf *err)
{
	struct ifaddrs *ifa = NULL;
	uint32_t found = 0;
	size_t n_found = 0;

	if (getifaddrs(&ifa) < 0)
		return buf_set_error(err, -errno, "cannot list the local addresses: %s",
			       strerror(errno));
	for (size_t i = 0; i < c->n_nodes; i++) {
		for (struct ifaddrs *a = ifa; a; a = a->ifa_next) {
			if (a->ifa_addr && same_address(a->ifa_addr, c->nodes[i].address)) {
				if (n_found++ == 0)
					found = c->nodes[i].id;
				break;
			}
		}
	}
	freeifaddrs(ifa);
	if (n_found == 0)
		return buf_set_error(err, -ENOENT,
			       "no configured node address is on a local interface: use --node ID");
	if (n_found > 1)
		return buf_set_error(err, -ENOTUNIQ,
			       "%zu configured nodes have local addresses: use --node ID", n_found);
	*ret_id = found;
	return 0;
}
