/*
 * bench.h — small helpers shared by the benchmark's load generator and
 * upstream server: the clock, address lists, descriptor limits.  Everything
 * here is static: each tool is one translation unit.
 */
#ifndef BENCH_H
#define BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* Most addresses in one -s, -t or -a list. */
#define BENCH_MAX_ADDRS 64

/* Monotonic time in microseconds. */
static inline uint64_t
bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Raise the soft descriptor limit to the hard one; returns the new limit. */
static inline long
bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	return (long)rl.rlim_cur;
}

/*
 * Parse "IP[:PORT]" into sa; a missing port is default_port.  Only IPv4:
 * the benchmark lives on 127.0.0.0/8.  Returns 0, or -1 if malformed.
 */
static inline int
bench_parse_addr(const char *s, size_t len, uint16_t default_port,
                 struct sockaddr_in *sa)
{
	char buf[64];
	char *colon, *end;
	long port = default_port;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((colon = strchr(buf, ':'))) {
		*colon = '\0';
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno || *end || port < 1 || port > 65535)
			return -1;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, buf, &sa->sin_addr) != 1)
		return -1;
	return 0;
}

/* Parse a comma-separated address list; returns how many, or -1. */
static inline int
bench_parse_list(const char *s, uint16_t default_port, struct sockaddr_in *out,
                 int max)
{
	int n = 0;

	while (*s) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);

		if (n == max || bench_parse_addr(s, len, default_port, &out[n]) < 0)
			return -1;
		n++;
		s += len;
		if (*s == ',')
			s++;
	}
	return n;
}

/* "127.0.0.21:7101" for messages and request lines. */
static inline void
bench_addr_str(const struct sockaddr_in *sa, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, ntohs(sa->sin_port));
}

#endif
