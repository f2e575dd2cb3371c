#include "watch_line.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How deep the value of an unknown key may nest. */
#define DEPTH_MAX 8

struct cursor {
	const char *p, *end;
};

static void
skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
	                         *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = p[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Append one byte if there is room (one byte is kept for the NUL). */
static void
put(char *out, size_t size, size_t *n, char ch)
{
	if (out && *n + 1 < size)
		out[(*n)++] = ch;
}

static void
put_utf8(char *out, size_t size, size_t *n, uint32_t cp)
{
	if (cp < 0x80) {
		put(out, size, n, (char)cp);
	} else if (cp < 0x800) {
		put(out, size, n, (char)(0xc0 | (cp >> 6)));
		put(out, size, n, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		put(out, size, n, (char)(0xe0 | (cp >> 12)));
		put(out, size, n, (char)(0x80 | ((cp >> 6) & 0x3f)));
		put(out, size, n, (char)(0x80 | (cp & 0x3f)));
	} else {
		put(out, size, n, (char)(0xf0 | (cp >> 18)));
		put(out, size, n, (char)(0x80 | ((cp >> 12) & 0x3f)));
		put(out, size, n, (char)(0x80 | ((cp >> 6) & 0x3f)));
		put(out, size, n, (char)(0x80 | (cp & 0x3f)));
	}
}

/* A string at c->p (its opening quote), decoded into out (NULL: only
 * checked).  0 or -1. */
static int
parse_string(struct cursor *c, char *out, size_t size)
{
	size_t n = 0;

	if (c->p >= c->end || *c->p != '"')
		return -1;
	c->p++;
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p++;
		unsigned u, lo;

		if (ch == '"') {
			if (out && size)
				out[n] = '\0';
			return 0;
		}
		if (ch < 0x20)
			return -1;
		if (ch != '\\') {
			put(out, size, &n, (char)ch);
			continue;
		}
		if (c->p >= c->end)
			return -1;
		switch (*c->p++) {
		case '"':
			put(out, size, &n, '"');
			break;
		case '\\':
			put(out, size, &n, '\\');
			break;
		case '/':
			put(out, size, &n, '/');
			break;
		case 'b':
			put(out, size, &n, '\b');
			break;
		case 'f':
			put(out, size, &n, '\f');
			break;
		case 'n':
			put(out, size, &n, '\n');
			break;
		case 'r':
			put(out, size, &n, '\r');
			break;
		case 't':
			put(out, size, &n, '\t');
			break;
		case 'u':
			if (c->end - c->p < 4 || hex4(c->p, &u) < 0)
				return -1;
			c->p += 4;
			if (u >= 0xd800 && u < 0xdc00) {
				/* A high surrogate needs its low half. */
				if (c->end - c->p < 6 || c->p[0] != '\\' ||
				    c->p[1] != 'u' || hex4(c->p + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return -1;
				c->p += 6;
				u = 0x10000 + ((u - 0xd800) << 10) +
				    (lo - 0xdc00);
			} else if (u >= 0xdc00 && u < 0xe000) {
				return -1;
			}
			put_utf8(out, size, &n, u);
			break;
		default:
			return -1;
		}
	}
	return -1;
}

/* An integer (a decision log has no other numbers); a fraction or an
 * exponent is refused.  0 or -1. */
static int
parse_int(struct cursor *c, long long *out)
{
	long long v = 0;
	int neg = 0, digits = 0;

	if (c->p < c->end && *c->p == '-') {
		neg = 1;
		c->p++;
	}
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*c->p++ - '0');
		digits++;
	}
	if (!digits)
		return -1;
	*out = neg ? -v : v;
	return 0;
}

static int
literal(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return -1;
	c->p += n;
	return 0;
}

/* Any JSON value (an unknown key's), checked and skipped. */
static int
skip_value(struct cursor *c, int depth)
{
	char *endp;

	if (depth > DEPTH_MAX)
		return -1;
	skip_ws(c);
	if (c->p >= c->end)
		return -1;
	switch (*c->p) {
	case '"':
		return parse_string(c, NULL, 0);
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	case '[':
	case '{': {
		char close = *c->p == '[' ? ']' : '}';
		int first = 1;

		c->p++;
		for (;;) {
			skip_ws(c);
			if (c->p < c->end && *c->p == close) {
				c->p++;
				return 0;
			}
			if (!first) {
				if (c->p >= c->end || *c->p != ',')
					return -1;
				c->p++;
				skip_ws(c);
			}
			first = 0;
			if (close == '}') {
				if (parse_string(c, NULL, 0) < 0)
					return -1;
				skip_ws(c);
				if (c->p >= c->end || *c->p != ':')
					return -1;
				c->p++;
			}
			if (skip_value(c, depth + 1) < 0)
				return -1;
		}
	}
	default: {
		/* A number: strtod on a bounded copy, never past the end. */
		char num[64];
		size_t n = 0;

		while (c->p + n < c->end && n < sizeof(num) - 1 &&
		       strchr("+-0123456789.eE", c->p[n]))
			n++;
		if (n == 0 || n == sizeof(num) - 1)
			return -1;
		memcpy(num, c->p, n);
		num[n] = '\0';
		(void)strtod(num, &endp);
		if (endp != num + n)
			return -1;
		c->p += n;
		return 0;
	}
	}
}

/* A known string field: a string, or null (left empty). */
static int
string_field(struct cursor *c, char *out, size_t size)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == 'n') {
		out[0] = '\0';
		return literal(c, "null");
	}
	return parse_string(c, out, size);
}

static int
int_field(struct cursor *c, long long *out)
{
	skip_ws(c);
	return parse_int(c, out);
}

static enum watch_event
event_of(const char *s)
{
	static const struct {
		const char *name;
		enum watch_event e;
	} t[] = {{"allow", WATCH_ALLOW}, {"deny", WATCH_DENY},
	         {"error", WATCH_ERROR}, {"close", WATCH_CLOSE},
	         {"git_ref", WATCH_GIT_REF}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(s, t[i].name) == 0)
			return t[i].e;
	return WATCH_OTHER;
}

int
watch_line_parse(const char *s, size_t len, struct watch_line *out)
{
	struct cursor c = {s, s + len};
	char key[32], event[32] = "";
	int first = 1, rc;

	memset(out, 0, sizeof(*out));
	skip_ws(&c);
	if (c.p >= c.end || *c.p++ != '{')
		return -1;
	for (;;) {
		skip_ws(&c);
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		if (!first) {
			if (c.p >= c.end || *c.p != ',')
				return -1;
			c.p++;
			skip_ws(&c);
		}
		first = 0;
		if (parse_string(&c, key, sizeof(key)) < 0)
			return -1;
		skip_ws(&c);
		if (c.p >= c.end || *c.p++ != ':')
			return -1;
#define STR(k, f)                                                              \
	else if (strcmp(key, k) == 0) rc =                                     \
	    string_field(&c, out->f, sizeof(out->f))
		if (strcmp(key, "event") == 0)
			rc = string_field(&c, event, sizeof(event));
		STR("ts", ts);
		STR("identity", identity);
		STR("policy", policy);
		STR("mode", mode);
		STR("reason", reason);
		STR("method", method);
		STR("host", host);
		STR("path", path);
		STR("route", route);
		STR("gateway_path", gateway_path);
		STR("repo", repo);
		STR("service", service);
		STR("ref", ref);
		STR("client", client);
		else if (strcmp(key, "port") == 0) rc =
		    int_field(&c, &out->port);
		else if (strcmp(key, "status") == 0) rc =
		    int_field(&c, &out->status);
		else rc = skip_value(&c, 1);
#undef STR
		if (rc < 0)
			return -1;
	}
	skip_ws(&c);
	if (c.p != c.end || !event[0])
		return -1;
	out->event = event_of(event);
	return 0;
}

char *
watch_sanitize(const char *s, char *out, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return out;
	for (; *s && n + 1 < size; s++)
		out[n++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f
		               ? *s
		               : '?';
	out[n] = '\0';
	return out;
}
