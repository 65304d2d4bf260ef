/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the node module's pure parts: cluster.conf as ghostd reads
 * it (values, defaults, every error with its line), the key file checks, and
 * the attribute and frame encoding of the control protocol. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/node-int.h"

static void parse_ok(void **state)
{
	static const char text[] = "# a comment\n"
				   "   # an indented comment\n"
				   "\n"
				   "key /etc/ghost/key\n"
				   "encrypt no\n"
				   "timeout 2500\n"
				   "node 1 10.77.0.1 7700\n"
				   "  node\t2   10.77.0.2 7701  \n"
				   "node 3 fd00::0:1 7700\r\n";
	struct node_config c = NODE_CONFIG_INIT;
	struct buf err = BUF_INIT;
	const struct node_config_node *n;

	(void)state;
	assert_int_equal(node_config_parse("x.conf", text, strlen(text), &c, &err), 0);
	assert_int_equal(c.n_nodes, 3);
	assert_string_equal(c.key_file, "/etc/ghost/key");
	assert_false(c.encrypt);
	assert_int_equal(c.timeout_ms, 2500);
	assert_int_equal(c.pid_range, NODE_DEFAULT_PID_RANGE);
	assert_int_equal(c.nodes[1].id, 2);
	assert_string_equal(c.nodes[1].address, "10.77.0.2");
	assert_int_equal(c.nodes[1].port, 7701);
	n = node_config_find(&c, 3);
	assert_non_null(n);
	assert_string_equal(n->address, "fd00::1");
	assert_null(node_config_find(&c, 4));
	node_config_release(&c);
	assert_null(c.nodes);
	assert_true(c.encrypt);
	assert_int_equal(c.timeout_ms, NODE_DEFAULT_TIMEOUT_MS);
	buf_release(&err);
}

static void parse_key_relative(void **state)
{
	static const char text[] = "node 1 127.0.0.1 1\nkey k\n";
	struct node_config c = NODE_CONFIG_INIT;

	(void)state;
	assert_int_equal(node_config_parse("/etc/ghost/cluster.conf", text, strlen(text), &c, NULL),
			 0);
	assert_string_equal(c.key_file, "/etc/ghost/k");
	assert_true(c.encrypt);
	node_config_release(&c);
	assert_int_equal(node_config_parse("cluster.conf", text, strlen(text), &c, NULL), 0);
	assert_string_equal(c.key_file, "k");
	node_config_release(&c);
}

static void parse_pid_range(void **state)
{
	static const char explicit[] = "node 1 127.0.0.1 1\nkey k\npid-range 5000\n";
	static const char big_ids[] = "node 1 127.0.0.1 1\nnode 250 127.0.0.1 2\nkey k\n";
	static const char too_big[] = "node 41 127.0.0.1 1\nkey k\npid-range 100000\n";
	struct node_config c = NODE_CONFIG_INIT;
	struct buf err = BUF_INIT;

	(void)state;
	assert_int_equal(node_config_parse(NULL, explicit, strlen(explicit), &c, NULL), 0);
	assert_int_equal(c.pid_range, 5000);
	node_config_release(&c);
	/* 250 nodes of the local cluster: the default shrinks to fit. */
	assert_int_equal(node_config_parse(NULL, big_ids, strlen(big_ids), &c, NULL), 0);
	assert_int_equal(c.pid_range, 16000);
	assert_true(251ull * c.pid_range <= NODE_PID_LIMIT);
	node_config_release(&c);
	assert_int_equal(node_config_parse("t", too_big, strlen(too_big), &c, &err), -EINVAL);
	assert_non_null(strstr(err.data, "PID range of node 41"));
	buf_release(&err);
}

static void expect_error_len(const char *text, size_t len, const char *message)
{
	struct node_config c = NODE_CONFIG_INIT;
	struct buf err = BUF_INIT;

	assert_int_equal(node_config_parse("t.conf", text, len, &c, &err), -EINVAL);
	assert_non_null(err.data);
	if (!strstr(err.data, message))
		fail_msg("error '%s' does not contain '%s'", err.data, message);
	assert_null(c.nodes);
	assert_null(c.key_file);
	buf_release(&err);
}

static void expect_error(const char *text, const char *message)
{
	expect_error_len(text, strlen(text), message);
}

static void parse_ckpt_memory(void **state)
{
	static const struct {
		const char *value;
		uint64_t bytes;
		uint32_t pct;
	} cases[] = {
		{ "0", 0, 0 },
		{ "1048576", 1048576, 0 },
		{ "512K", 512ull << 10, 0 },
		{ "48M", 48ull << 20, 0 },
		{ "2g", 2ull << 30, 0 },
		{ "1T", 1ull << 40, 0 },
		{ "25%", 0, 25 },
		{ "100%", 0, 100 },
	};
	static const char *const bad[] = { "", " 0%", " 101%", " 1X", " -1", " 99999999999T" };
	static const char plain[] = "node 1 127.0.0.1 1\nkey k\n";
	struct node_config c = NODE_CONFIG_INIT;
	char text[128];

	(void)state;
	/* Default: a quarter of the RAM. */
	assert_int_equal(node_config_parse(NULL, plain, strlen(plain), &c, NULL), 0);
	assert_int_equal(c.ckpt_memory_pct, 25);
	node_config_release(&c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "node 1 127.0.0.1 1\nkey k\ncheckpoint-memory %s\n",
			 cases[i].value);
		assert_int_equal(node_config_parse(NULL, text, strlen(text), &c, NULL), 0);
		assert_int_equal(c.ckpt_memory, cases[i].bytes);
		assert_int_equal(c.ckpt_memory_pct, cases[i].pct);
		node_config_release(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "key k\ncheckpoint-memory%s\n", bad[i]);
		expect_error(text, "t.conf:2: expected 'checkpoint-memory SIZE'");
	}
}

static void parse_errors(void **state)
{
	(void)state;
	expect_error("key k\n", "t.conf: no 'node' line");
	expect_error("node 1 127.0.0.1 1\n", "t.conf: no 'key' line");
	expect_error("key k\nnode 1 127.0.0.1\n", "t.conf:2: expected 'node ID ADDRESS PORT'");
	expect_error("key k\nnode 0 127.0.0.1 1\n", "t.conf:2: bad node id '0'");
	expect_error("key k\nnode x 127.0.0.1 1\n", "t.conf:2: bad node id 'x'");
	expect_error("key k\nnode 1 localhost 1\n", "t.conf:2: bad address 'localhost'");
	expect_error("key k\nnode 1 127.0.0.1 65536\n", "t.conf:2: bad port '65536'");
	expect_error("key k\nnode 1 127.0.0.1 0\n", "t.conf:2: bad port '0'");
	expect_error("key k\nnode 1 127.0.0.1 1\nnode 1 127.0.0.2 1\n",
		     "t.conf:3: node 1 is configured twice");
	expect_error("key k\nnode 1 127.0.0.1 1\nnode 2 127.0.0.1 1\n",
		     "t.conf:3: address 127.0.0.1 port 1 is already node 1");
	expect_error("key k\nkey j\nnode 1 127.0.0.1 1\n", "t.conf:2: the key is configured twice");
	expect_error("key\nnode 1 127.0.0.1 1\n", "t.conf:1: expected 'key FILE'");
	expect_error("key k\nencrypt maybe\nnode 1 127.0.0.1 1\n",
		     "t.conf:2: expected 'encrypt yes' or 'encrypt no'");
	expect_error("key k\ntimeout 10\nnode 1 127.0.0.1 1\n", "t.conf:2: expected 'timeout MS'");
	expect_error("key k\npid-range 10\nnode 1 127.0.0.1 1\n",
		     "t.conf:2: expected 'pid-range N'");
	expect_error("key k\nfrobnicate\n", "t.conf:2: unknown directive 'frobnicate'");
	expect_error("key k\nnode 1 127.0.0.1 1 2 3 4 5 6 7 8\n", "t.conf:2: too many fields");
	expect_error_len("key k\nno\0de 1\n", 12, "t.conf:2: NUL byte");
}

static void key_file(void **state)
{
	char dir[] = "/tmp/test-node-key.XXXXXX", path[64];
	uint8_t key[NODE_KEY_SIZE], raw[NODE_KEY_SIZE];
	struct buf err = BUF_INIT;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 7 + 1);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, raw, sizeof(raw)), sizeof(raw));
	close(fd);
	assert_int_equal(node_key_load(path, key, &err), 0);
	assert_memory_equal(key, raw, sizeof(raw));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(node_key_load(path, key, &err), -EPERM);
	assert_non_null(strstr(err.data, "accessible by group or others"));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(truncate(path, 31), 0);
	assert_int_equal(node_key_load(path, key, &err), -EINVAL);
	assert_non_null(strstr(err.data, "exactly 32 bytes"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(node_key_load(path, key, &err), -ENOENT);
	assert_int_equal(rmdir(dir), 0);
	buf_release(&err);
}

static void attrs_round_trip(void **state)
{
	struct buf b = BUF_INIT, nested = BUF_INIT;
	struct attr_iter it, in;
	struct attr a;
	uint32_t v32;
	uint64_t v64;
	char *s;

	(void)state;
	assert_int_equal(attr_put_u32(&nested, A_PID, 200001), 0);
	assert_int_equal(attr_put_u32(&b, A_NODE, 7), 0);
	assert_int_equal(attr_put_u64(&b, A_BYTES, 1ull << 40), 0);
	assert_int_equal(attr_put_str(&b, A_ARG, "sh"), 0);
	assert_int_equal(attr_put(&b, A_DATA, NULL, 0), 0);
	assert_int_equal(attr_put(&b, A_PROC, nested.data, nested.len), 0);

	attr_iter_init(&it, b.data, b.len);
	assert_int_equal(attr_next(&it, &a), 1);
	assert_int_equal(a.type, A_NODE);
	assert_int_equal(attr_u32(&a, &v32), 0);
	assert_int_equal(v32, 7);
	assert_int_equal(attr_u64(&a, &v64), -EBADMSG);
	assert_int_equal(attr_next(&it, &a), 1);
	assert_int_equal(attr_u64(&a, &v64), 0);
	assert_int_equal(v64, 1ull << 40);
	assert_int_equal(attr_next(&it, &a), 1);
	assert_int_equal(attr_strdup(&a, &s), 0);
	assert_string_equal(s, "sh");
	free(s);
	assert_int_equal(attr_next(&it, &a), 1);
	assert_int_equal(a.type, A_DATA);
	assert_int_equal(a.len, 0);
	assert_int_equal(attr_next(&it, &a), 1);
	assert_int_equal(a.type, A_PROC);
	attr_iter_init(&in, a.data, a.len);
	assert_int_equal(attr_next(&in, &a), 1);
	assert_int_equal(attr_u32(&a, &v32), 0);
	assert_int_equal(v32, 200001);
	assert_int_equal(attr_next(&in, &a), 0);
	assert_int_equal(attr_next(&it, &a), 0);

	/* Every truncation is refused, never read past. */
	for (size_t cut = 1; cut < b.len; cut++) {
		int r;

		attr_iter_init(&it, b.data, cut);
		while ((r = attr_next(&it, &a)) > 0)
			;
		if (cut != 12 && cut != 28 && cut != 38 && cut != 46)
			assert_int_equal(r, -EBADMSG);
	}
	buf_release(&b);
	buf_release(&nested);
}

static void strings_with_nul(void **state)
{
	struct attr a = { .type = A_ARG, .data = "a\0b", .len = 3 };
	char buf[8], *s = NULL;

	(void)state;
	assert_int_equal(attr_strdup(&a, &s), -EBADMSG);
	assert_null(s);
	assert_int_equal(attr_strcpy(&a, buf, sizeof(buf)), -EBADMSG);
	a.data = "abcdefghij";
	a.len = 10;
	assert_int_equal(attr_strcpy(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "abcdefg");
}

static void frames(void **state)
{
	struct buf b = BUF_INIT;
	uint16_t type;
	uint32_t len;
	uint8_t bad[CTL_HDR_SIZE];

	(void)state;
	assert_int_equal(ctl_frame_begin(&b, CTL_PS), 0);
	assert_int_equal(attr_put_u32(&b, A_FLAGS, PS_ALL), 0);
	assert_int_equal(ctl_frame_end(&b, 0), 0);
	assert_int_equal(b.len, CTL_HDR_SIZE + ATTR_HDR_SIZE + 4);
	assert_memory_equal(b.data, "GHST", 4);
	assert_int_equal(ctl_frame_parse(b.data, &type, &len), 0);
	assert_int_equal(type, CTL_PS);
	assert_int_equal(len, ATTR_HDR_SIZE + 4);

	memcpy(bad, b.data, sizeof(bad));
	bad[0] = 'X';
	assert_int_equal(ctl_frame_parse(bad, &type, &len), -EBADMSG);
	memcpy(bad, b.data, sizeof(bad));
	bad[4] = 2;
	assert_int_equal(ctl_frame_parse(bad, &type, &len), -EPROTONOSUPPORT);
	memcpy(bad, b.data, sizeof(bad));
	memset(bad + 8, 0xff, 4);
	assert_int_equal(ctl_frame_parse(bad, &type, &len), -EMSGSIZE);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_ok),
		cmocka_unit_test(parse_key_relative),
		cmocka_unit_test(parse_pid_range),
		cmocka_unit_test(parse_ckpt_memory),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(key_file),
		cmocka_unit_test(attrs_round_trip),
		cmocka_unit_test(strings_with_nul),
		cmocka_unit_test(frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
