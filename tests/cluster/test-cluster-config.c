/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of cluster.conf: parsing, errors with line numbers, the format
 * written back, relative key files, and the key file checks. */
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

#include "cluster/cluster.h"

static void parse_ok(void **state)
{
	static const char text[] = "# a comment\n"
				   "\n"
				   "key /etc/ghost/key\n"
				   "encrypt no\n"
				   "node 1 10.77.0.1 7700\n"
				   "  node\t2   10.77.0.2 7701  \n"
				   "node 300 fd00::0:1 7700\r\n";
	struct cluster_config c = CLUSTER_CONFIG_INIT;
	struct buf err = BUF_INIT;
	const struct cluster_config_node *n;

	(void)state;
	assert_int_equal(cluster_config_parse(text, strlen(text), &c, &err), 0);
	assert_int_equal(c.n_nodes, 3);
	assert_string_equal(c.key_file, "/etc/ghost/key");
	assert_false(c.encrypt);
	assert_int_equal(c.nodes[1].id, 2);
	assert_string_equal(c.nodes[1].address, "10.77.0.2");
	assert_int_equal(c.nodes[1].port, 7701);
	n = cluster_config_find(&c, 300);
	assert_non_null(n);
	/* Addresses come back in canonical form. */
	assert_string_equal(n->address, "fd00::1");
	assert_null(cluster_config_find(&c, 4));
	cluster_config_release(&c);
	assert_null(c.nodes);
	assert_true(c.encrypt);
	buf_release(&err);
}

static void parse_default_encrypt(void **state)
{
	static const char text[] = "node 1 127.0.0.1 1\nkey k\n";
	struct cluster_config c = CLUSTER_CONFIG_INIT;

	(void)state;
	assert_int_equal(cluster_config_parse(text, strlen(text), &c, NULL), 0);
	assert_true(c.encrypt);
	cluster_config_release(&c);
}

static void parse_errors(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "key k\n", "no node in the configuration" },
		{ "node 1 10.0.0.1 1\n", "no key file in the configuration" },
		{ "key k\nnode 1 10.0.0.1\n", "line 2: expected 'node ID ADDRESS PORT'" },
		{ "key k\nnode 1 10.0.0.1 1 extra\n", "line 2: expected 'node ID ADDRESS PORT'" },
		{ "key k\nnode 0 10.0.0.1 1\n", "line 2: bad node id '0'" },
		{ "key k\nnode 4294967296 10.0.0.1 1\n", "line 2: bad node id '4294967296'" },
		{ "key k\nnode x 10.0.0.1 1\n", "line 2: bad node id 'x'" },
		{ "key k\nnode 1 example.com 1\n",
		  "line 2: 'example.com' is not a numeric IP address" },
		{ "key k\nnode 1 10.0.0.1 65536\n", "line 2: bad port '65536'" },
		{ "key k\nnode 1 10.0.0.1 0\n", "line 2: bad port '0'" },
		{ "key k\nnode 1 10.0.0.1 1\nnode 1 10.0.0.2 1\n", "line 3: node 1 appears twice" },
		{ "key k\nnode 1 10.0.0.1 1\nnode 2 10.0.0.1 1\n",
		  "line 3: nodes 1 and 2 have the same address" },
		{ "key k\nkey l\n", "line 2: a second key" },
		{ "key\n", "line 1: expected 'key FILE'" },
		{ "encrypt maybe\n", "line 1: expected 'encrypt yes' or 'encrypt no'" },
		{ "encrypt yes\nencrypt no\n", "line 2: a second 'encrypt'" },
		{ "nodes 1 2 3\n", "line 1: unknown directive 'nodes'" },
	};
	struct buf err = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cluster_config c = CLUSTER_CONFIG_INIT;

		assert_int_equal(
			cluster_config_parse(cases[i].text, strlen(cases[i].text), &c, &err),
			-EINVAL);
		assert_string_equal(err.data, cases[i].msg);
		assert_null(c.nodes);
		assert_null(c.key_file);
	}
	/* A NUL byte inside the text is an error, not the end of it. */
	{
		static const char nul[] = "key k\0node 1 1.2.3.4 5\n";
		struct cluster_config c = CLUSTER_CONFIG_INIT;

		assert_int_equal(cluster_config_parse(nul, sizeof(nul) - 1, &c, &err), -EINVAL);
		assert_string_equal(err.data, "the configuration holds a NUL byte");
	}
	buf_release(&err);
}

static void format_round_trip(void **state)
{
	static const char text[] = "node 2 10.77.0.2 7700\nkey /k\nnode 1 10.77.0.1 7700\n";
	struct cluster_config c = CLUSTER_CONFIG_INIT, d = CLUSTER_CONFIG_INIT;
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(cluster_config_parse(text, strlen(text), &c, NULL), 0);
	assert_int_equal(cluster_config_format(&c, &out), 0);
	assert_non_null(strstr(out.data, "key /k\nencrypt yes\nnode 2 10.77.0.2 7700\n"
					 "node 1 10.77.0.1 7700\n"));
	assert_int_equal(cluster_config_parse(out.data, out.len, &d, NULL), 0);
	assert_int_equal(d.n_nodes, 2);
	assert_int_equal(d.nodes[0].id, 2);
	assert_string_equal(d.key_file, "/k");
	cluster_config_release(&c);
	cluster_config_release(&d);
	buf_release(&out);
}

static char tmpdir[64];

static int make_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-cluster-config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmp(void **state)
{
	char path[128];
	static const char *names[] = { "cluster.conf", "key", "short", "open" };

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	return rmdir(tmpdir);
}

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void load_and_key(void **state)
{
	static const char conf[] = "key key\nnode 1 10.77.0.1 7700\n";
	uint8_t key[CLUSTER_KEY_SIZE], got[CLUSTER_KEY_SIZE];
	struct cluster_config c = CLUSTER_CONFIG_INIT;
	struct buf err = BUF_INIT;
	char path[128], expect[256];

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	write_file("cluster.conf", conf, strlen(conf), 0644);
	write_file("key", key, sizeof(key), 0600);
	write_file("short", key, sizeof(key) - 1, 0600);
	write_file("open", key, sizeof(key), 0644);

	snprintf(path, sizeof(path), "%s/cluster.conf", tmpdir);
	assert_int_equal(cluster_config_load(path, &c, &err), 0);
	/* A relative key file is next to the configuration. */
	snprintf(expect, sizeof(expect), "%s/key", tmpdir);
	assert_string_equal(c.key_file, expect);
	assert_int_equal(cluster_key_load(c.key_file, got), 0);
	assert_memory_equal(got, key, sizeof(key));
	cluster_config_release(&c);

	snprintf(path, sizeof(path), "%s/short", tmpdir);
	assert_int_equal(cluster_key_load(path, got), -EINVAL);
	snprintf(path, sizeof(path), "%s/open", tmpdir);
	assert_int_equal(cluster_key_load(path, got), -EPERM);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(cluster_key_load(path, got), -ENOENT);
	assert_int_equal(cluster_config_load(path, &c, &err), -ENOENT);
	assert_non_null(strstr(err.data, "cannot read"));

	/* Errors name the file. */
	write_file("short", "node 1\n", 7, 0644);
	snprintf(path, sizeof(path), "%s/short", tmpdir);
	assert_int_equal(cluster_config_load(path, &c, &err), -EINVAL);
	snprintf(expect, sizeof(expect), "%s: line 1: expected 'node ID ADDRESS PORT'", path);
	assert_string_equal(err.data, expect);
	buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_ok),
		cmocka_unit_test(parse_default_encrypt),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(format_round_trip),
		cmocka_unit_test_setup_teardown(load_and_key, make_tmp, remove_tmp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
