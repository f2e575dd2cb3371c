/*
 * gitpkt: git's smart-HTTP requests as the gateway sees them.  No I/O.
 *
 * The command-list parser keeps its whole state in struct gitpkt_push and
 * judges each length header at its fourth digit and each pkt-line when its
 * last payload byte arrives, never by looking ahead, so that how the body
 * is split across calls cannot change an answer.  The list's bytes are
 * copied into the parser as they come; a command's fields are cut out of
 * that copy in place.
 */
#include "gitpkt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* pkt-line.h: a length header, and LARGE_PACKET_MAX (header included). */
#define PKT_HDR 4
#define PKT_MAX 65520
/* Side-band data a packet carries: the header and the band byte apart.
 * 1000 is pkt-line.h's DEFAULT_PACKET_MAX, the limit of plain side-band. */
#define SIDEBAND_64K_DATA (PKT_MAX - PKT_HDR - 1)
#define SIDEBAND_DATA     (1000 - PKT_HDR - 1)

#define REFUSAL_PREFIX "egress policy: "
#define SERVICE_QUERY  "service="
#define TAGS           "refs/tags/"

static const char *const service_names[] = {
    [GITPKT_SERVICE_NONE] = "",
    [GITPKT_UPLOAD_PACK] = "git-upload-pack",
    [GITPKT_RECEIVE_PACK] = "git-receive-pack",
};

/* ---- Requests ---- */

/* RFC 3986 §2.3 unreserved: what a repository path is made of on the git
 * servers we know, with nothing a server would decode into something
 * else. */
static int
is_repo_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* The length without one ".git" suffix, when a segment is left before
 * it. */
static size_t
strip_git(const char *s, size_t len)
{
	if (len > 4 && memcmp(s + len - 4, ".git", 4) == 0 && s[len - 5] != '/')
		return len - 4;
	return len;
}

/* Segments of unreserved bytes (and '*' when star), none empty, "." or
 * "..". */
static int
segments_ok(const char *s, size_t len, int star)
{
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/') {
			if (!is_repo_char((unsigned char)s[i]) &&
			    !(star && s[i] == '*'))
				return 0;
			continue;
		}
		size_t n = i - start;
		if (n == 0 || (n == 1 && s[start] == '.') ||
		    (n == 2 && s[start] == '.' && s[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

static int
span_is(const char *s, size_t len, const char *lit)
{
	return s != NULL && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* The service a query names: exactly "service=git-upload-pack" or
 * "service=git-receive-pack", as git's remote-curl.c sends it. */
static enum gitpkt_service
query_service(const char *q, size_t len)
{
	size_t plen = strlen(SERVICE_QUERY);

	if (q == NULL || len <= plen || memcmp(q, SERVICE_QUERY, plen) != 0)
		return GITPKT_SERVICE_NONE;
	for (int s = GITPKT_UPLOAD_PACK; s <= GITPKT_RECEIVE_PACK; s++)
		if (span_is(q + plen, len - plen, service_names[s]))
			return (enum gitpkt_service)s;
	return GITPKT_SERVICE_NONE;
}

enum gitpkt_kind
gitpkt_classify(const char *method, const char *path, size_t path_len,
                const char *query, size_t query_len, struct gitpkt_request *out)
{
	static const struct {
		const char *suffix;
		enum gitpkt_kind kind;
		enum gitpkt_service service;
	} ends[] = {
	    {"/info/refs", GITPKT_INFO_REFS, GITPKT_SERVICE_NONE},
	    {"/git-upload-pack", GITPKT_RPC, GITPKT_UPLOAD_PACK},
	    {"/git-receive-pack", GITPKT_RPC, GITPKT_RECEIVE_PACK},
	};
	enum gitpkt_service service = GITPKT_SERVICE_NONE;
	enum gitpkt_kind kind = GITPKT_OTHER;
	size_t repo_len = 0;

	memset(out, 0, sizeof(*out));
	out->kind = GITPKT_OTHER;
	if (method == NULL || path == NULL || path_len < 2 || path[0] != '/')
		return GITPKT_OTHER;
	if (query == NULL)
		query_len = 0;
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		size_t n = strlen(ends[i].suffix);

		if (path_len > n + 1 &&
		    memcmp(path + path_len - n, ends[i].suffix, n) == 0) {
			kind = ends[i].kind;
			service = ends[i].service;
			repo_len = path_len - n - 1;
			break;
		}
	}
	if (kind == GITPKT_INFO_REFS) {
		if (strcmp(method, "GET") != 0)
			return GITPKT_OTHER;
		service = query_service(query, query_len);
		if (service == GITPKT_SERVICE_NONE)
			return GITPKT_OTHER;
	} else if (kind == GITPKT_RPC) {
		if (strcmp(method, "POST") != 0 || query_len != 0)
			return GITPKT_OTHER;
	} else {
		return GITPKT_OTHER;
	}
	/* Checked without its ".git": "org/..git" is the repository "..". */
	repo_len = strip_git(path + 1, repo_len);
	if (!segments_ok(path + 1, repo_len, 0))
		return GITPKT_OTHER;
	out->kind = kind;
	out->service = service;
	out->repo = path + 1;
	out->repo_len = repo_len;
	return kind;
}

const char *
gitpkt_service_name(enum gitpkt_service s)
{
	if ((unsigned)s > GITPKT_RECEIVE_PACK)
		return "";
	return service_names[s];
}

/* ---- Repository patterns ---- */

int
gitpkt_repo_pattern_check(const char *pattern, const char **why)
{
	const char *dummy;
	size_t len;

	if (why == NULL)
		why = &dummy;
	if (pattern == NULL || *pattern == '\0') {
		*why = "empty repository pattern";
		return -1;
	}
	if (strstr(pattern, "**") != NULL) {
		*why = "no \"**\": '*' matches within one segment; write a "
		       "pattern for each depth";
		return -1;
	}
	len = strlen(pattern);
	for (size_t i = 0; i < len; i++) {
		if (!is_repo_char((unsigned char)pattern[i]) &&
		    pattern[i] != '/' && pattern[i] != '*') {
			*why = "a repository pattern has letters, digits, '-', "
			       "'.', '_', '~', '/' and '*' only";
			return -1;
		}
	}
	if (!segments_ok(pattern, strip_git(pattern, len), 1)) {
		*why = "a repository pattern is segments like \"org/repo\": "
		       "no empty, '.' or '..' segment, no leading or "
		       "trailing '/'";
		return -1;
	}
	return 0;
}

/* Does p match s, '*' standing for any run of bytes?  Greedy, going back
 * to the last '*' on a mismatch: O(plen * slen) at worst. */
static int
glob(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < slen) {
		if (pi < plen && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < plen && p[pi] == s[si]) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return 0;
		}
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

static size_t
segment_end(const char *s, size_t from, size_t len)
{
	const char *slash = memchr(s + from, '/', len - from);

	return slash != NULL ? (size_t)(slash - s) : len;
}

int
gitpkt_repo_match(const char *pattern, const char *repo, size_t len)
{
	size_t plen = strip_git(pattern, strlen(pattern));
	size_t pi = 0, ri = 0;

	/* The repository has lost its ".git" already: removing another would
	 * let "org/repo" match the repository "org/repo.git.git". */
	for (;;) {
		size_t pe = segment_end(pattern, pi, plen);
		size_t re = segment_end(repo, ri, len);

		if (!glob(pattern + pi, pe - pi, repo + ri, re - ri))
			return 0;
		if (pe == plen || re == len)
			return pe == plen && re == len;
		pi = pe + 1;
		ri = re + 1;
	}
}

int
gitpkt_repo_match_any(const char *const *patterns, size_t n, const char *repo,
                      size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (gitpkt_repo_match(patterns[i], repo, len))
			return 1;
	return 0;
}

/* The bytes written (or that would be: len counts past size), snprintf
 * style. */
struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void
out_add(struct out *o, const void *s, size_t n)
{
	if (o->len < o->size && n > 0) {
		size_t room = o->size - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void
out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

size_t
gitpkt_repo_refusal(enum gitpkt_service s, const char *repo, size_t len,
                    char *buf, size_t size)
{
	struct out o = {buf, size, 0};

	out_str(&o, REFUSAL_PREFIX);
	out_str(&o, s == GITPKT_UPLOAD_PACK    ? "this agent may not fetch "
	            : s == GITPKT_RECEIVE_PACK ? "this agent may not push to "
	                                       : "this agent may not use ");
	out_add(&o, repo, len);
	out_str(&o, "\n");
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return o.len;
}

/* ---- Refs ---- */

/*
 * git's check_refname_format (refs.c) without flags, but for one '*' when
 * pattern is set (REFNAME_REFSPEC_PATTERN).  Bytes above 0x7f pass.
 */
static int
refname_ok(const char *s, size_t len, int pattern)
{
	size_t comp = 0;
	int stars = 0;

	if (len == 0 || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			size_t n = i - comp;

			/* "//", a leading or trailing '/', a hidden or a
			 * lock file's component. */
			if (n == 0 || s[comp] == '.' ||
			    (n >= 5 && memcmp(s + i - 5, ".lock", 5) == 0))
				return 0;
			comp = i + 1;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' ||
		    c == ':' || c == '?' || c == '[' || c == '\\')
			return 0;
		if (c == '*' && (!pattern || stars++ > 0))
			return 0;
		if (i + 1 < len && ((c == '.' && s[i + 1] == '.') ||
		                    (c == '@' && s[i + 1] == '{')))
			return 0;
	}
	return 1;
}

static int
under_refs(const char *s, size_t len)
{
	return len > 5 && len <= GITPKT_REF_MAX && memcmp(s, "refs/", 5) == 0;
}

int
gitpkt_ref_valid(const char *ref, size_t len)
{
	return under_refs(ref, len) && refname_ok(ref, len, 0);
}

int
gitpkt_ref_pattern_check(const char *pattern, const char **why)
{
	const char *dummy, *star;
	size_t len;

	if (why == NULL)
		why = &dummy;
	if (pattern == NULL || *pattern == '\0') {
		*why = "empty ref pattern";
		return -1;
	}
	len = strlen(pattern);
	if (!under_refs(pattern, len)) {
		*why = "a ref pattern starts with \"refs/\" (1024 bytes at "
		       "most)";
		return -1;
	}
	star = strchr(pattern, '*');
	if (star != NULL && strchr(star + 1, '*') != NULL) {
		*why = "a ref pattern has at most one '*', as in a git refspec";
		return -1;
	}
	if (!refname_ok(pattern, len, 1)) {
		*why = "not a ref name git accepts (see git check-ref-format)";
		return -1;
	}
	return 0;
}

int
gitpkt_ref_match(const char *pattern, const char *ref, size_t len)
{
	const char *star = strchr(pattern, '*');
	size_t pre, suf;

	if (star == NULL)
		return span_is(ref, len, pattern);
	/* A refspec's '*': any run, '/' included (refs.c,
	 * match_name_with_pattern). */
	pre = (size_t)(star - pattern);
	suf = strlen(star + 1);
	return len >= pre + suf && memcmp(ref, pattern, pre) == 0 &&
	       memcmp(ref + len - suf, star + 1, suf) == 0;
}

enum gitpkt_verdict
gitpkt_ref_check(const struct gitpkt_ref_rules *r,
                 const struct gitpkt_command *c)
{
	if (c->deletes && !r->allow_delete)
		return GITPKT_REF_DELETE;
	if (c->ref_len > strlen(TAGS) &&
	    memcmp(c->ref, TAGS, strlen(TAGS)) == 0) {
		if (!r->allow_tags)
			return GITPKT_REF_TAG;
		return c->creates || c->deletes ? GITPKT_REF_OK
		                                : GITPKT_REF_TAG_MOVE;
	}
	for (size_t i = 0; i < r->nrefs; i++)
		if (gitpkt_ref_match(r->refs[i], c->ref, c->ref_len))
			return GITPKT_REF_OK;
	return GITPKT_REF_NOT_MATCHED;
}

/* "this agent may push only A, B, ..." within GITPKT_REASON_MAX. */
static void
reason_patterns(const struct gitpkt_ref_rules *r, struct out *o)
{
	static const char more[] = ", ...";
	const size_t room = GITPKT_REASON_MAX - 1;

	if (r->nrefs == 0) {
		out_str(o, "no ref may be pushed to this repository");
		return;
	}
	out_str(o, "this agent may push only ");
	for (size_t i = 0; i < r->nrefs; i++) {
		size_t n = strlen(r->refs[i]) + (i > 0 ? 2 : 0);
		/* Room for ", ..." stays while more patterns follow. */
		size_t keep = i + 1 < r->nrefs ? strlen(more) : 0;

		if (o->len + n + keep > room) {
			out_str(o, i > 0 ? more : "...");
			return;
		}
		if (i > 0)
			out_str(o, ", ");
		out_str(o, r->refs[i]);
	}
}

const char *
gitpkt_ref_reason(enum gitpkt_verdict v, const struct gitpkt_ref_rules *r,
                  char *buf, size_t size)
{
	char text[GITPKT_REASON_MAX];
	struct out o = {text, sizeof(text), 0};

	switch (v) {
	case GITPKT_REF_OK:
		out_str(&o, "push refused whole because another ref was "
		            "refused");
		break;
	case GITPKT_REF_NOT_MATCHED:
		reason_patterns(r, &o);
		break;
	case GITPKT_REF_DELETE:
		out_str(&o, "deleting refs is not allowed");
		break;
	case GITPKT_REF_TAG:
		out_str(&o, "tags are not allowed");
		break;
	case GITPKT_REF_TAG_MOVE:
		out_str(&o, "tags may be created, not moved");
		break;
	default:
		out_str(&o, "refused");
		break;
	}
	if (size == 0)
		return buf;
	if (o.len > size - 1)
		o.len = size - 1;
	memcpy(buf, text, o.len);
	buf[o.len] = '\0';
	return buf;
}

/* ---- The receive-pack command list ---- */

enum phase {
	PHASE_FIRST,    /* shallow lines, the first command, or a flush */
	PHASE_COMMANDS, /* further commands, or the flush */
	PHASE_OPTIONS,  /* push options, or their flush */
	PHASE_PACK,     /* the pack's header */
	PHASE_END,
};

struct gitpkt_push {
	struct gitpkt_list list;
	enum gitpkt_status status;
	enum phase phase;
	size_t pos;      /* body bytes read */
	size_t pkt_at;   /* body offset of the current pkt-line */
	unsigned hdr;    /* its length, as far as read */
	unsigned nhdr;   /* digits of it read: PKT_HDR in the payload */
	size_t pkt_len;  /* payload bytes */
	size_t need;     /* payload bytes still to come */
	size_t line;     /* where the payload goes in text */
	size_t text_len; /* text kept: commands and the capabilities */
	size_t hash_len; /* hex digits of an id: 0 before the first */
	unsigned npack;  /* bytes of the pack's header read */
	struct gitpkt_command commands[GITPKT_COMMANDS_MAX];
	/* A payload and the NUL put after it fit: the list's limit counts
	 * the four header bytes of each pkt-line, never kept. */
	char text[GITPKT_LIST_MAX + 1];
};

static void on_header(struct gitpkt_push *p);
static void on_flush(struct gitpkt_push *p);
static void on_line(struct gitpkt_push *p);
static void on_pack_byte(struct gitpkt_push *p, unsigned char c);

struct gitpkt_push *
gitpkt_push_new(void)
{
	struct gitpkt_push *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->status = GITPKT_NEED_MORE;
	p->phase = PHASE_FIRST;
	p->list.commands = p->commands;
	p->list.capabilities = "";
	return p;
}

void
gitpkt_push_free(struct gitpkt_push *p)
{
	free(p);
}

const struct gitpkt_list *
gitpkt_push_list(const struct gitpkt_push *p)
{
	return &p->list;
}

static void
fail_at(struct gitpkt_push *p, size_t at, const char *why)
{
	p->status = GITPKT_ERROR;
	p->phase = PHASE_END;
	p->list.error = why;
	p->list.error_at = at;
}

static void
fail(struct gitpkt_push *p, const char *why)
{
	fail_at(p, p->pkt_at, why);
}

/* git writes lengths with "%04x": lowercase only. */
static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum gitpkt_status
gitpkt_push_feed(struct gitpkt_push *p, const void *buf, size_t len,
                 size_t *used)
{
	const unsigned char *b = buf;
	size_t i = 0;

	while (i < len && p->status == GITPKT_NEED_MORE) {
		if (p->phase == PHASE_PACK) {
			on_pack_byte(p, b[i]);
			i++;
			p->pos++;
		} else if (p->nhdr < PKT_HDR) {
			int v = hex_value(b[i]);

			if (p->nhdr == 0)
				p->pkt_at = p->pos;
			i++;
			p->pos++;
			if (v < 0) {
				fail(p, "a pkt-line length is not four "
				        "lowercase hex digits");
				break;
			}
			p->hdr = p->hdr << 4 | (unsigned)v;
			if (++p->nhdr == PKT_HDR)
				on_header(p);
		} else {
			size_t n = len - i < p->need ? len - i : p->need;

			memcpy(p->text + p->line + (p->pkt_len - p->need),
			       b + i, n);
			i += n;
			p->pos += n;
			p->need -= n;
			if (p->need == 0)
				on_line(p);
		}
	}
	/* A list that ends without a pack ends the body: a byte after it
	 * is one git would not send (a second command list, say). */
	if (i < len && (p->status == GITPKT_PROBE ||
	                (p->status == GITPKT_DONE && !p->list.pack))) {
		fail_at(p, p->pos,
		        p->status == GITPKT_PROBE
		            ? "bytes after an empty command list"
		            : "bytes after a command list of deletes only");
		i++;
	}
	*used = i;
	return p->status;
}

/* The next pkt-line: its header is read. */
static void
next_pkt(struct gitpkt_push *p)
{
	p->hdr = 0;
	p->nhdr = 0;
}

static void
on_header(struct gitpkt_push *p)
{
	size_t v = p->hdr;

	/* 0001 and 0002 are protocol v2's delim and response-end packets,
	 * 0003 nothing; a push has none of them. */
	if (v > 0 && v < PKT_HDR) {
		fail(p, "a delim, response-end or invalid packet (length 0001 "
		        "to 0003)");
		return;
	}
	if (v == PKT_HDR) {
		fail(p, "an empty pkt-line");
		return;
	}
	if (v > PKT_MAX) {
		fail(p, "a pkt-line longer than 65520 bytes");
		return;
	}
	if (p->pkt_at + (v == 0 ? PKT_HDR : v) > GITPKT_LIST_MAX) {
		fail(p, "the command list is longer than 64 KiB");
		return;
	}
	if (v == 0) {
		next_pkt(p);
		on_flush(p);
		return;
	}
	p->pkt_len = v - PKT_HDR;
	p->need = p->pkt_len;
	p->line = p->text_len;
}

/* The end of the command list, and of the push options if any. */
static void
end_list(struct gitpkt_push *p)
{
	p->list.end = p->pkt_at + PKT_HDR;
	for (size_t i = 0; i < p->list.ncommands; i++)
		if (!p->commands[i].deletes)
			p->list.pack = 1;
	/* pack-protocol.txt: "The pack-file MUST NOT be sent if the only
	 * command used is 'delete'." */
	if (p->list.pack) {
		p->phase = PHASE_PACK;
	} else {
		p->phase = PHASE_END;
		p->status = GITPKT_DONE;
	}
}

static void
on_flush(struct gitpkt_push *p)
{
	switch (p->phase) {
	case PHASE_FIRST:
		/* No command: git's probe, or shallow lines alone (send-pack
		 * sends them over stateless RPC even with nothing to push). */
		p->list.end = p->pkt_at + PKT_HDR;
		p->phase = PHASE_END;
		p->status = GITPKT_PROBE;
		break;
	case PHASE_COMMANDS:
		if (p->list.caps & GITPKT_CAP_PUSH_OPTIONS)
			p->phase = PHASE_OPTIONS;
		else
			end_list(p);
		break;
	case PHASE_OPTIONS:
		end_list(p);
		break;
	default:
		fail(p, "an unexpected flush");
		break;
	}
}

static int
is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hex_value((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

static int
all_zeros(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '0')
			return 0;
	return 1;
}

/* VCHAR or SP. */
static int
is_print(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

static int
starts(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n >= l && memcmp(s, lit, l) == 0;
}

/* "shallow <id>": a root of the pusher's shallow clone, sent before the
 * commands over stateless RPC (send-pack.c advertise_shallow_grafts_buf). */
static void
on_shallow(struct gitpkt_push *p, const char *id, size_t n)
{
	if ((n != 40 && n != 64) || !is_lower_hex(id, n) ||
	    (p->hash_len != 0 && n != p->hash_len)) {
		fail(p, "a shallow line is not \"shallow\" and an object id");
		return;
	}
	p->hash_len = n;
	p->list.nshallow++;
}

/*
 * The capabilities after the first command's NUL: printable ASCII words
 * separated by spaces (git puts one before the first).  Sets caps and the
 * length of ids from object-format (sha1 when absent, as receive-pack
 * assumes).  0 or -1.
 */
static int
on_capabilities(struct gitpkt_push *p, const char *s, size_t n)
{
	static const struct {
		const char *name;
		unsigned flag;
	} known[] = {
	    {"report-status", GITPKT_CAP_REPORT_STATUS},
	    {"report-status-v2", GITPKT_CAP_REPORT_STATUS_V2},
	    {"side-band", GITPKT_CAP_SIDE_BAND},
	    {"side-band-64k", GITPKT_CAP_SIDE_BAND_64K},
	    {"push-options", GITPKT_CAP_PUSH_OPTIONS},
	    {"atomic", GITPKT_CAP_ATOMIC},
	    {"quiet", GITPKT_CAP_QUIET},
	};
	size_t hash_len = 40;

	for (size_t i = 0; i < n; i++) {
		if (!is_print((unsigned char)s[i])) {
			fail(p, "a capability list with a control or non-ASCII "
			        "byte");
			return -1;
		}
	}
	for (size_t i = 0; i < n;) {
		const char *w = s + i;
		const char *sp = memchr(w, ' ', n - i);
		size_t wl = sp != NULL ? (size_t)(sp - w) : n - i;

		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (span_is(w, wl, known[k].name))
				p->list.caps |= known[k].flag;
		if (starts(w, wl, "object-format=")) {
			if (span_is(w, wl, "object-format=sha1")) {
				hash_len = 40;
			} else if (span_is(w, wl, "object-format=sha256")) {
				hash_len = 64;
			} else {
				fail(p, "an object-format other than sha1 and "
				        "sha256");
				return -1;
			}
		}
		i += wl + 1;
	}
	if (p->hash_len != 0 && p->hash_len != hash_len) {
		fail(p, "shallow ids not of the push's object format");
		return -1;
	}
	p->hash_len = hash_len;
	return 0;
}

/* old-id SP new-id SP ref-name, n bytes at s, with a byte of room after
 * them for the ref's NUL. */
static void
on_command(struct gitpkt_push *p, char *s, size_t n)
{
	struct gitpkt_command *c;
	size_t h = p->hash_len;

	if (p->list.ncommands == GITPKT_COMMANDS_MAX) {
		fail(p, "more than 500 commands");
		return;
	}
	if (n < 2 * h + 3 || s[h] != ' ' || s[2 * h + 1] != ' ') {
		fail(p, "a command is not old-id SP new-id SP ref-name");
		return;
	}
	if (!is_lower_hex(s, h) || !is_lower_hex(s + h + 1, h)) {
		fail(p, "an object id is not lowercase hex of the push's "
		        "object format");
		return;
	}
	if (!gitpkt_ref_valid(s + 2 * h + 2, n - 2 * h - 2)) {
		fail(p, "a ref name git refuses (check-ref-format), or not "
		        "under refs/");
		return;
	}
	c = &p->commands[p->list.ncommands];
	c->old_id = s;
	c->new_id = s + h + 1;
	c->ref = s + 2 * h + 2;
	c->ref_len = n - 2 * h - 2;
	c->creates = all_zeros(c->old_id, h);
	c->deletes = all_zeros(c->new_id, h);
	if (c->creates && c->deletes) {
		fail(p, "a command with both ids zero");
		return;
	}
	s[h] = '\0';
	s[2 * h + 1] = '\0';
	s[n] = '\0';
	p->list.ncommands++;
}

/* pack-protocol.txt: push-option = 1*( VCHAR | SP ). */
static void
on_option(struct gitpkt_push *p, const char *s, size_t n)
{
	if (n == 0) {
		fail(p, "an empty push option");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_print((unsigned char)s[i])) {
			fail(p, "a push option with a control or non-ASCII "
			        "byte");
			return;
		}
	}
	p->list.noptions++;
}

static void
on_first(struct gitpkt_push *p, char *s, size_t n)
{
	char *nul = memchr(s, '\0', n);
	size_t cmd_len = nul != NULL ? (size_t)(nul - s) : n;

	if (nul != NULL) {
		if (on_capabilities(p, nul + 1, n - cmd_len - 1) != 0)
			return;
		s[n] = '\0';
		p->list.capabilities = nul + 1;
	} else if (on_capabilities(p, "", 0) != 0) {
		return;
	}
	on_command(p, s, cmd_len);
	p->phase = PHASE_COMMANDS;
}

/* A whole pkt-line's payload is in text at p->line. */
static void
on_line(struct gitpkt_push *p)
{
	char *s = p->text + p->line;
	size_t n = p->pkt_len;
	size_t kept = p->list.ncommands;

	next_pkt(p);
	/* pkt-line.c PACKET_READ_CHOMP_NEWLINE: one LF may end a line. */
	if (s[n - 1] == '\n')
		n--;
	switch (p->phase) {
	case PHASE_FIRST:
		if (starts(s, n, "shallow "))
			on_shallow(p, s + 8, n - 8);
		else if (starts(s, n, "push-cert"))
			fail(p, "a signed push (push-cert): not supported");
		else
			on_first(p, s, n);
		break;
	case PHASE_COMMANDS:
		if (starts(s, n, "shallow "))
			fail(p, "a shallow line after a command");
		else if (memchr(s, '\0', n) != NULL)
			fail(p, "a NUL in a command after the first");
		else
			on_command(p, s, n);
		break;
	case PHASE_OPTIONS:
		on_option(p, s, n);
		break;
	default:
		fail(p, "an unexpected pkt-line");
		break;
	}
	/* Only commands (and the capabilities, with the first) are kept. */
	if (p->list.ncommands > kept)
		p->text_len = p->line + p->pkt_len + 1;
}

/* "PACK", then version 2 or 3 in four bytes (pack-format.txt). */
static void
on_pack_byte(struct gitpkt_push *p, unsigned char c)
{
	static const unsigned char sig[] = {'P', 'A', 'C', 'K', 0, 0, 0};

	if (p->npack < sizeof(sig) ? c != sig[p->npack] : (c != 2 && c != 3)) {
		fail_at(p, p->list.end,
		        "the command list is followed by "
		        "something other than a pack");
		return;
	}
	if (++p->npack == sizeof(sig) + 1) {
		p->phase = PHASE_END;
		p->status = GITPKT_DONE;
	}
}

size_t
gitpkt_push_check(const struct gitpkt_list *l, const struct gitpkt_ref_rules *r,
                  enum gitpkt_verdict *verdicts)
{
	size_t refused = 0;

	for (size_t i = 0; i < l->ncommands; i++) {
		verdicts[i] = gitpkt_ref_check(r, &l->commands[i]);
		if (verdicts[i] != GITPKT_REF_OK)
			refused++;
	}
	return refused;
}

/* ---- The refusal of a push ---- */

/*
 * The report as a stream of bytes, cut into side-band channel 1 packets of
 * chunk data bytes each (chunk 0: not cut); total is the stream's length,
 * known beforehand, so that each packet's header can be written first.
 */
struct report {
	struct out out;
	size_t chunk;
	size_t total;
	size_t stream;
};

/* A pkt-line length: four lowercase hex digits, as git writes them. */
static void
hex4(char h[PKT_HDR], size_t v)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = PKT_HDR - 1; i >= 0; i--, v >>= 4)
		h[i] = digits[v & 0xf];
}

static void
put_hex4(struct out *o, size_t v)
{
	char h[PKT_HDR];

	hex4(h, v);
	out_add(o, h, sizeof(h));
}

static void
put(struct report *rp, const char *s, size_t n)
{
	while (n > 0) {
		size_t k = n;

		if (rp->chunk != 0) {
			size_t in = rp->stream % rp->chunk;

			if (in == 0) {
				size_t left = rp->total - rp->stream;
				size_t c = left < rp->chunk ? left : rp->chunk;

				put_hex4(&rp->out, c + PKT_HDR + 1);
				out_add(&rp->out, "\1", 1);
			}
			if (k > rp->chunk - in)
				k = rp->chunk - in;
		}
		out_add(&rp->out, s, k);
		rp->stream += k;
		s += k;
		n -= k;
	}
}

/* One pkt-line of the report: the parts, concatenated. */
static void
put_pkt(struct report *rp, const char *const *parts, size_t nparts)
{
	char h[PKT_HDR];
	size_t n = PKT_HDR;

	for (size_t i = 0; i < nparts; i++)
		n += strlen(parts[i]);
	hex4(h, n);
	put(rp, h, sizeof(h));
	for (size_t i = 0; i < nparts; i++)
		put(rp, parts[i], strlen(parts[i]));
}

/* receive-pack.c report(): "unpack ok", a line a command, a flush. */
static void
put_report(struct report *rp, const struct gitpkt_list *l,
           const struct gitpkt_ref_rules *r,
           const enum gitpkt_verdict *verdicts)
{
	static const char *const unpack[] = {"unpack ok\n"};
	char why[GITPKT_REASON_MAX];

	put_pkt(rp, unpack, 1);
	for (size_t i = 0; i < l->ncommands; i++) {
		const char *ng[] = {
		    "ng ",
		    l->commands[i].ref,
		    " " REFUSAL_PREFIX,
		    gitpkt_ref_reason(verdicts[i], r, why, sizeof(why)),
		    "\n",
		};

		put_pkt(rp, ng, sizeof(ng) / sizeof(ng[0]));
	}
	put(rp, "0000", PKT_HDR);
}

size_t
gitpkt_push_refusal(const struct gitpkt_list *l,
                    const struct gitpkt_ref_rules *r,
                    const enum gitpkt_verdict *verdicts, char *buf, size_t size)
{
	struct report rp = {{NULL, 0, 0}, 0, 0, 0};
	size_t chunk = 0, total;

	if (!(l->caps &
	      (GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_REPORT_STATUS_V2)))
		return 0;
	/* receive-pack.c: side-band-64k when asked, else none; plain
	 * side-band is what other servers may offer. */
	if (l->caps & GITPKT_CAP_SIDE_BAND_64K)
		chunk = SIDEBAND_64K_DATA;
	else if (l->caps & GITPKT_CAP_SIDE_BAND)
		chunk = SIDEBAND_DATA;

	/* Count the report, then the body; write it only when it fits. */
	put_report(&rp, l, r, verdicts);
	rp.total = rp.out.len;
	rp.chunk = chunk;
	rp.stream = 0;
	rp.out.len = 0;
	put_report(&rp, l, r, verdicts);
	if (chunk != 0)
		out_add(&rp.out, "0000", PKT_HDR);
	total = rp.out.len;
	if (total > size)
		return total;
	rp.out = (struct out){buf, size, 0};
	rp.stream = 0;
	put_report(&rp, l, r, verdicts);
	if (chunk != 0)
		out_add(&rp.out, "0000", PKT_HDR);
	return total;
}
