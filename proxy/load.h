/*
 * load: the primitives config reads a libconfig file with.  Every problem
 * becomes one message "FILE:LINE: problem" in the load's error buffer and a
 * return of -1 (or NULL), so that a loader can stop at the first and the
 * operator learns where it is.  Members are optional unless said: an absent
 * one leaves the default.
 */
#ifndef EGRESSD_LOAD_H
#define EGRESSD_LOAD_H

#include <libconfig.h>
#include <stddef.h>

/* The state of one load: where errors go. */
struct load {
	const char *path;
	char *err;
	size_t errlen;
};

/* Write "FILE:LINE: problem" (the line of s, or the file alone without
 * one) into ld's error buffer and return -1. */
int load_fail(struct load *ld, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A copy of str, or NULL after load_fail("out of memory") at s. */
char *load_strdup(struct load *ld, const config_setting_t *s, const char *str);

/* Every key of group must be one of allowed (NULL-terminated): a misspelt
 * key is a policy the operator thinks they have and don't.  what names the
 * group in the message.  0 or -1. */
int load_check_keys(struct load *ld, const config_setting_t *group,
                    const char *what, const char *const *allowed);

/* The kind of a setting: 1 or 0. */
int load_is_group(const config_setting_t *s);
int load_is_sequence(const config_setting_t *s);
int load_is_int(const config_setting_t *s);

/* An integer member key of group in [min, max] into *out (which keeps its
 * default when the key is absent), as a long long, an int (the range cut
 * to an int's) or a size_t.  0 or -1. */
int load_int(struct load *ld, const config_setting_t *group, const char *key,
             long long min, long long max, long long *out);
int load_int_into(struct load *ld, const config_setting_t *group,
                  const char *key, long long min, long long max, int *out);
int load_size_into(struct load *ld, const config_setting_t *group,
                   const char *key, long long min, long long max, size_t *out);

/* A string member into *out (NULL when absent; it lives as long as the
 * config_t).  0 or -1. */
int load_string(struct load *ld, const config_setting_t *group, const char *key,
                const char **out);

/* A member that must be a list of want_type (CONFIG_TYPE_STRING or
 * CONFIG_TYPE_INT) elements into *out (NULL when absent).  0 or -1. */
int load_sequence(struct load *ld, const config_setting_t *group,
                  const char *key, int want_type, const config_setting_t **out);

/* Load one element of a list: 0, or -1 after load_fail names e (so that
 * the message gives the bad element's own line). */
typedef int (*load_elem_fn)(struct load *ld, const config_setting_t *e,
                            void *arg);

/* How a list member is loaded. */
struct load_list_spec {
	const char *key;
	int type;              /* of each element, as load_sequence takes it */
	load_elem_fn each;     /* called for each element, in order */
	const char *bad_count; /* NULL: any length; else the message for an
	                        * empty list, or one longer than max */
	int max;               /* 0: no limit */
	int required;          /* absent fails too, naming the group */
};

/* Load the list member spec->key of group through spec->each, with arg.
 * An absent optional member calls nothing.  0 or -1. */
int load_list(struct load *ld, const config_setting_t *group,
              const struct load_list_spec *spec, void *arg);

/* Room for one more element of size bytes after n in array: the grown
 * array (the old one is then invalid), or NULL after load_fail at e. */
void *load_grow(struct load *ld, const config_setting_t *e, void *array,
                size_t n, size_t size);

/* Append a copy of str to the n strings of *array.  0 or -1. */
int load_add_string(struct load *ld, const config_setting_t *e, char ***array,
                    size_t *n, const char *str);

#endif
