/*
 * fuzz_suggest_log: a whole decision log through suggest_run, as
 * `egressd --suggest LOGFILE` reads it: lines of any length and content,
 * report-mode denials among them, rules printed (to /dev/null).  The input
 * is handed over as a file, through a memfd.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "suggest.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	static int fd = -1;
	char path[64];

	if (fd < 0) {
		fd = memfd_create("fuzz-suggest", 0);
		devnull = fopen("/dev/null", "w");
		if (fd < 0 || !devnull)
			abort();
	}
	if (ftruncate(fd, 0) != 0 ||
	    (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	FUZZ_CHECK(suggest_run(path, devnull) == 0);
	return 0;
}
