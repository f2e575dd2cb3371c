/* Unit tests for secret: reading a secret file, its checks, and rotation
 * the way Kubernetes does it (a symlink swapped to a new directory). */
#include <pthread.h>
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

#include "secret.h"

static char dir[64];

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/egressd-secret.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Load a file with these bytes: the secret, or NULL with err. */
static struct secret *
load_text(const char *text, size_t len, char *err, size_t errlen)
{
	char path[128];

	in_dir(path, sizeof(path), "plain");
	write_file(path, text, len);
	return secret_load(path, err, errlen);
}

static void
test_load(void **state)
{
	static const struct {
		const char *text;
		const char *want; /* NULL: refused */
	} cases[] = {
	    {"sk-ant-123", "sk-ant-123"},
	    {"sk-ant-123\n", "sk-ant-123"},
	    {"sk-ant-123\r\n", "sk-ant-123"},
	    {"two words", "two words"},
	    {"", NULL},
	    {"\n", NULL},
	    {"a\n\n", NULL},
	    {" lead", NULL},
	    {"trail ", NULL},
	    {"tab\there", NULL},
	    {"line\nbreak", NULL},
	    {"del\x7f", NULL},
	    {"caf\xc3\xa9", NULL},
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct secret *s = load_text(
		    cases[i].text, strlen(cases[i].text), err, sizeof(err));

		if (!cases[i].want) {
			if (s)
				fail_msg("accepted %zu", i);
			assert_non_null(strstr(err, dir));
			continue;
		}
		assert_non_null(s);
		const struct secret_value *v = secret_get(s);

		assert_int_equal(v->len, strlen(cases[i].want));
		assert_memory_equal(v->bytes, cases[i].want, v->len);
		assert_int_equal(v->bytes[v->len], '\0');
		secret_put(v);
		secret_free(s);
	}
}

/* A NUL inside, the longest accepted, one byte more, and no file: the
 * message names the file and never holds the value. */
static void
test_refusals(void **state)
{
	char err[256], big[SECRET_MAX + 2], path[128];
	struct secret *s;

	(void)state;
	assert_null(load_text("ab\0cd", 5, err, sizeof(err)));
	memset(big, 'k', sizeof(big));
	s = load_text(big, SECRET_MAX, err, sizeof(err));
	assert_non_null(s);
	secret_free(s);
	big[SECRET_MAX] = '\n';
	s = load_text(big, SECRET_MAX + 1, err, sizeof(err));
	assert_non_null(s);
	secret_free(s);
	assert_null(load_text(big, SECRET_MAX + 2, err, sizeof(err)));
	assert_non_null(strstr(err, "longer than"));
	assert_null(load_text("hunter2 x\x01", 10, err, sizeof(err)));
	assert_null(strstr(err, "hunter2"));
	in_dir(path, sizeof(path), "missing");
	assert_null(secret_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_null(secret_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
}

/* What Kubernetes does: the file is a symlink into ..data, itself a
 * symlink to a timestamped directory, swapped atomically on rotation. */
static void
rotate(const char *gen, const char *value)
{
	char d[128], file[160], tmp[128], data[128];

	snprintf(d, sizeof(d), "%s/%s", dir, gen);
	assert_int_equal(mkdir(d, 0700), 0);
	snprintf(file, sizeof(file), "%s/token", d);
	write_file(file, value, strlen(value));
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
	snprintf(data, sizeof(data), "%s/..data", dir);
	assert_int_equal(symlink(gen, tmp), 0);
	assert_int_equal(rename(tmp, data), 0);
}

static void
test_rotation(void **state)
{
	char err[256], path[128];
	struct secret *s;
	const struct secret_value *held, *v;

	(void)state;
	rotate("..2026_12_03_01", "old-token\n");
	in_dir(path, sizeof(path), "token");
	assert_int_equal(symlink("..data/token", path), 0);
	assert_non_null(s = secret_load(path, err, sizeof(err)));
	assert_string_equal(secret_path(s), path);
	/* Nothing changed: nothing read. */
	assert_int_equal(secret_refresh(s, err, sizeof(err)), 0);
	held = secret_get(s);
	rotate("..2026_12_03_02", "new-token\n");
	assert_int_equal(secret_refresh(s, err, sizeof(err)), 1);
	v = secret_get(s);
	assert_memory_equal(v->bytes, "new-token", 9);
	/* A reader that took the old value before still has it. */
	assert_memory_equal(held->bytes, "old-token", 9);
	secret_put(held);
	secret_put(v);
	/* The same value in a new file: read, and not a change. */
	rotate("..2026_12_03_03", "new-token");
	assert_int_equal(secret_refresh(s, err, sizeof(err)), 0);
	/* A broken rotation keeps the value in use. */
	rotate("..2026_12_03_04", "");
	assert_int_equal(secret_refresh(s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	v = secret_get(s);
	assert_memory_equal(v->bytes, "new-token", 9);
	/* Held past the secret's end. */
	secret_free(s);
	assert_memory_equal(v->bytes, "new-token", 9);
	secret_put(v);
}

struct reader {
	struct secret *s;
	int bad;
};

static void *
read_loop(void *arg)
{
	struct reader *r = arg;

	for (int i = 0; i < 20000; i++) {
		const struct secret_value *v = secret_get(r->s);

		if (v->len != 8 || (memcmp(v->bytes, "value-", 6) != 0))
			r->bad++;
		secret_put(v);
	}
	return NULL;
}

/* Readers on other threads while the file rotates: every value they see
 * is whole. */
static void
test_threads(void **state)
{
	char err[256], path[128], name[32], value[16];
	struct reader r = {NULL, 0};
	pthread_t t[2];

	(void)state;
	rotate("..t_00", "value-00");
	in_dir(path, sizeof(path), "tok");
	assert_int_equal(symlink("..data/token", path), 0);
	assert_non_null(r.s = secret_load(path, err, sizeof(err)));
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, read_loop, &r), 0);
	for (int i = 1; i < 50; i++) {
		snprintf(name, sizeof(name), "..t_%02d", i);
		snprintf(value, sizeof(value), "value-%02d", i);
		rotate(name, value);
		assert_int_not_equal(secret_refresh(r.s, err, sizeof(err)), -1);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r.bad, 0);
	secret_free(r.s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
