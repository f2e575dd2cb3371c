/*
 * fuzz: what the libFuzzer drivers share.  Each driver is one
 * LLVMFuzzerTestOneInput over one core module; an invariant that does not
 * hold aborts, which libFuzzer reports as a crash and saves the input.
 */
#ifndef EGRESSD_FUZZ_H
#define EGRESSD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: abort with the expression when it
 * does not hold. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",       \
			        __FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * A heap copy of exactly n bytes (one byte for n = 0, never read), so that
 * AddressSanitizer sees any read past the end.  The caller frees it.
 */
static inline char *
fuzz_dup(const void *p, size_t n)
{
	char *q = malloc(n ? n : 1);

	if (!q)
		abort();
	if (n)
		memcpy(q, p, n);
	return q;
}

/* A heap copy with a NUL after the n bytes.  The caller frees it. */
static inline char *
fuzz_strdup(const void *p, size_t n)
{
	char *q = malloc(n + 1);

	if (!q)
		abort();
	if (n)
		memcpy(q, p, n);
	q[n] = '\0';
	return q;
}

/* Does the span [p, p + n) lie within [base, base + len)? */
static inline int
fuzz_within(const void *p, size_t n, const void *base, size_t len)
{
	const char *a = p, *b = base;

	if (n == 0)
		return 1;
	return a >= b && a <= b + len && n <= (size_t)(b + len - a);
}

#endif
