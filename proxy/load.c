#include "load.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write "FILE:LINE: problem" and return -1. */
int
load_fail(struct load *ld, const config_setting_t *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int line = s ? config_setting_source_line(s) : 0;
	const char *file = s ? config_setting_source_file(s) : NULL;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!file)
		file = ld->path;
	if (line > 0)
		snprintf(ld->err, ld->errlen, "%s:%d: %s", file, line, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", file, msg);
	return -1;
}

char *
load_strdup(struct load *ld, const config_setting_t *s, const char *str)
{
	char *p = strdup(str);

	if (!p)
		load_fail(ld, s, "out of memory");
	return p;
}

/* Every key of a group must be one of the allowed ones: a misspelt key is a
 * policy the operator thinks they have and don't. */
int
load_check_keys(struct load *ld, const config_setting_t *group,
                const char *what, const char *const *allowed)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, i);
		const char *name = config_setting_name(s);
		const char *const *a;

		for (a = allowed; *a; a++)
			if (name && strcmp(name, *a) == 0)
				break;
		if (!*a)
			return load_fail(ld, s, "unknown key \"%s\" in %s",
			                 name ? name : "?", what);
	}
	return 0;
}

int
load_is_group(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_GROUP;
}

int
load_is_sequence(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_ARRAY ||
	       config_setting_type(s) == CONFIG_TYPE_LIST;
}

int
load_is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

/* An optional integer member in [min, max]; *out keeps its default when the
 * key is absent. */
int
load_int(struct load *ld, const config_setting_t *group, const char *key,
         long long min, long long max, long long *out)
{
	const config_setting_t *s = config_setting_get_member(group, key);
	long long v;

	if (!s)
		return 0;
	if (!load_is_int(s))
		return load_fail(ld, s, "%s: expected an integer", key);
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return load_fail(ld, s, "%s: %lld is out of range %lld..%lld",
		                 key, v, min, max);
	*out = v;
	return 0;
}

int
load_int_into(struct load *ld, const config_setting_t *group, const char *key,
              long long min, long long max, int *out)
{
	long long v = *out;

	/* The range is cut to what an int holds, so that no value in it wraps
	 * when stored (and the message gives the real range). */
	if (max > INT_MAX)
		max = INT_MAX;
	if (min < INT_MIN)
		min = INT_MIN;
	if (load_int(ld, group, key, min, max, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

int
load_size_into(struct load *ld, const config_setting_t *group, const char *key,
               long long min, long long max, size_t *out)
{
	long long v = (long long)*out;

	if (load_int(ld, group, key, min, max, &v) < 0)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* An optional string member; *out is NULL when the key is absent. */
int
load_string(struct load *ld, const config_setting_t *group, const char *key,
            const char **out)
{
	const config_setting_t *s = config_setting_get_member(group, key);

	*out = NULL;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return load_fail(ld, s, "%s: expected a string", key);
	*out = config_setting_get_string(s);
	return 0;
}

/* A member that must be a list of strings; *out is NULL when absent. */
int
load_sequence(struct load *ld, const config_setting_t *group, const char *key,
              int want_type, const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(group, key);

	*out = NULL;
	if (!s)
		return 0;
	if (!load_is_sequence(s))
		return load_fail(ld, s, "%s: expected a list [ ... ]", key);
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);

		if (want_type == CONFIG_TYPE_INT
		        ? !load_is_int(e)
		        : config_setting_type(e) != want_type)
			return load_fail(
			    ld, e, "%s: expected a list of %s", key,
			    want_type == CONFIG_TYPE_INT ? "integers"
			                                 : "strings");
	}
	*out = s;
	return 0;
}

/* Load the list member spec->key of group through spec->each.  An absent
 * optional member calls nothing. */
int
load_list(struct load *ld, const config_setting_t *group,
          const struct load_list_spec *spec, void *arg)
{
	const config_setting_t *s;
	int n;

	if (load_sequence(ld, group, spec->key, spec->type, &s) < 0)
		return -1;
	if (!s && spec->required)
		return load_fail(ld, group, "%s", spec->bad_count);
	if (!s)
		return 0;
	n = config_setting_length(s);
	if (spec->bad_count && (n == 0 || (spec->max > 0 && n > spec->max)))
		return load_fail(ld, s, "%s", spec->bad_count);
	for (int i = 0; i < n; i++)
		if (spec->each(ld, config_setting_get_elem(s, i), arg) < 0)
			return -1;
	return 0;
}

/* Room for one more of size bytes after n in array: the grown array, or
 * NULL after load_fail. */
void *
load_grow(struct load *ld, const config_setting_t *e, void *array, size_t n,
          size_t size)
{
	void *p = realloc(array, (n + 1) * size);

	if (!p)
		load_fail(ld, e, "out of memory");
	return p;
}

/* Append a copy of str to the n strings of *array. */
int
load_add_string(struct load *ld, const config_setting_t *e, char ***array,
                size_t *n, const char *str)
{
	char **a = load_grow(ld, e, *array, *n, sizeof(*a));

	if (!a)
		return -1;
	*array = a;
	if (!(a[*n] = load_strdup(ld, e, str)))
		return -1;
	(*n)++;
	return 0;
}
