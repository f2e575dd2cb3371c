/*
 * fuzz_suggest_line: one decision-log line as `egressd --suggest` reads it
 * (suggest.c): suggest_json_str and suggest_json_int for each key it uses,
 * into buffers of several sizes.  A log may hold anything: it is a file an
 * operator points at.
 */
#include "fuzz.h"
#include "suggest.h"

static const char *const keys[] = {"event",  "mode", "policy", "host",
                                   "method", "port", "",       "\\"};
static const size_t sizes[] = {1, 2, 16, 65, 254};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_strdup(data, size);

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			char *buf = malloc(sizes[s]);
			int r;

			if (!buf)
				abort();
			r = suggest_json_str(line, keys[k], buf, sizes[s]);
			FUZZ_CHECK(r == 1 || r == 0 || r == -1);
			/* A value that fits is whole and NUL-terminated. */
			if (r == 1)
				FUZZ_CHECK(memchr(buf, '\0', sizes[s]) != NULL);
			free(buf);
		}
		FUZZ_CHECK(suggest_json_int(line, keys[k]) >= -1);
	}
	free(line);
	return 0;
}
