/*
 * gitpkt: git's smart-HTTP requests as the gateway sees them (issue 13).
 * No I/O.
 *
 * The gateway terminates the agent's plain-HTTP side of a route to a git
 * server and decides per repository and, for a push, per ref.  This module
 * gives it the pieces:
 *
 *   - gitpkt_classify: is a request a smart-HTTP one, for which service and
 *     which repository?
 *   - repository patterns ("org/repo", "org/\*") and ref rules
 *     ("refs/heads/agent/\*", deletes, tags), and a verdict per ref;
 *   - an incremental, strict, bounded parser of a receive-pack request's
 *     command list (Documentation/technical/pack-protocol.txt, "Reference
 *     Update Request and Packfile Transfer"), fed the body as it comes;
 *   - the answers git shows its user: a report-status that refuses every
 *     ref of a push, and the text of a 403 for a fetch.
 *
 * What git showed (git 2.39 against git http-backend and a test server):
 *
 *   - A push answered 200 with gitpkt_push_refusal's body prints, for each
 *     ref, " ! [remote rejected] main -> main (egress policy: this agent may
 *     push only refs/heads/agent/\*)" and "error: failed to push some refs
 *     to '...'", and exits 1.  Nothing reaches the server.
 *   - A GET .../info/refs answered 403 with a text/plain body prints each
 *     line of the body as "remote: <line>", then "fatal: unable to access
 *     '<url>': The requested URL returned error: 403".  Other content types
 *     are not shown.  (git's remote-curl.c show_http_message.)
 *   - A POST answered 403 prints "error: RPC failed; HTTP 403 curl 22 The
 *     requested URL returned error: 403", never the body: refuse a
 *     repository at its info/refs, which git always asks for first.
 *   - A push larger than http.postBuffer (1 MiB) is sent chunked after a
 *     4-byte "0000" probe.  Answered after its whole body was read, its
 *     refusal printed as above; answered early, after the command list,
 *     git printed no refusal but "curl 55 Send failure: Broken pipe" or
 *     "unable to rewind rpc post data", as curl saw the connection close
 *     under its upload.
 *
 * For the gateway: hold up to GITPKT_HOLD_MAX bytes of a receive-pack body
 * and feed them to gitpkt_push_feed.  On DONE, gitpkt_push_check; when a
 * ref is refused, read the rest of the body (and discard it), then answer
 * 200 with gitpkt_push_refusal's body.  Log each command: old-id, new-id,
 * ref and its verdict (gitpkt_ref_reason).  Upload-pack bodies (protocol v0
 * and v2 alike) are not looked at: a fetch changes nothing.
 */
#ifndef EGRESSD_GITPKT_H
#define EGRESSD_GITPKT_H

#include <stddef.h>

/* ---- Requests ---- */

enum gitpkt_kind {
	GITPKT_OTHER,     /* not a smart-HTTP request: the route's path rules
	                   * decide */
	GITPKT_INFO_REFS, /* GET <repo>/info/refs?service=git-<service> */
	GITPKT_RPC,       /* POST <repo>/git-<service>, no query */
};

enum gitpkt_service {
	GITPKT_SERVICE_NONE,
	GITPKT_UPLOAD_PACK,  /* clone, fetch, ls-remote: "fetch" rules */
	GITPKT_RECEIVE_PACK, /* push: "push" rules, then the ref rules */
};

struct gitpkt_request {
	enum gitpkt_kind kind;
	enum gitpkt_service service; /* NONE for OTHER */
	/* The repository, into the caller's path: "org/repo", without the
	 * leading '/' and without a ".git" suffix.  NULL for OTHER. */
	const char *repo;
	size_t repo_len;
};

/*
 * Classify a request of a git route.  path is the route's rest, with its
 * leading '/' ("/org/repo.git/info/refs"); query is what follows '?' (NULL,
 * or query_len 0, when there is none).  INFO_REFS needs method "GET" and a
 * query of exactly "service=git-upload-pack" or "service=git-receive-pack"
 * (nothing else, no other parameter); RPC needs "POST" on
 * ".../git-upload-pack" or ".../git-receive-pack" and no query.  The
 * repository is one or more '/'-separated segments of ALPHA, DIGIT, '-',
 * '.', '_' and '~' (no "." or ".." segment, none empty) once one ".git"
 * suffix is removed ("org/repo.git" and "org/repo" are the same
 * repository; "org/..git" is refused).
 * Everything else is OTHER: HEAD, dumb-HTTP objects (".../objects/...",
 * ".../HEAD"), the web UI, the API, LFS (".../info/lfs/..."), and
 * percent-encoded or other bytes in the repository path (refused unless a
 * path rule allows them, never matched against a repository pattern).
 * Fills *out and returns out->kind.
 */
enum gitpkt_kind gitpkt_classify(const char *method, const char *path,
                                 size_t path_len, const char *query,
                                 size_t query_len, struct gitpkt_request *out);

/* "git-upload-pack", "git-receive-pack", or "" for NONE. */
const char *gitpkt_service_name(enum gitpkt_service s);

/* ---- Repository patterns ---- */

/*
 * Is pattern a repository pattern?  Segments as in a classified repository,
 * in which '*' stands for any run of bytes within the segment, never across
 * '/': "org/repo", "org/\*", "org/agent-*".  There is no "**": one pattern
 * a depth ("org/\*", "org/\*\/\*").  A ".git" suffix is optional and
 * ignored.  Matching is case-sensitive.  0, or -1 with a static sentence in
 * *why (which may be NULL).
 */
int gitpkt_repo_pattern_check(const char *pattern, const char **why);

/*
 * Does a checked pattern match the repository, as gitpkt_classify gives it
 * (its ".git" removed, once: "org/repo.git.git" is "org/repo.git", which
 * "org/repo" does not match)?  Case-sensitive: a server that ignores case
 * has more names for a repository than match, never fewer.  1 or 0.
 */
int gitpkt_repo_match(const char *pattern, const char *repo, size_t len);

/* Does any of n patterns match the repository?  1 or 0. */
int gitpkt_repo_match_any(const char *const *patterns, size_t n,
                          const char *repo, size_t len);

/*
 * The text/plain body of the 403 for a repository the route's rules do not
 * allow for service: "egress policy: this agent may not fetch org/repo\n"
 * (UPLOAD_PACK) or "... may not push to org/repo\n" (RECEIVE_PACK).  git
 * shows it line by line as "remote: ..." for a GET .../info/refs (see
 * above).  snprintf-like: returns the text's length; writes as much of it
 * as fits in size bytes, NUL-terminated (nothing when size is 0).
 */
size_t gitpkt_repo_refusal(enum gitpkt_service s, const char *repo, size_t len,
                           char *buf, size_t size);

/* ---- Refs ---- */

/* The longest ref name the parser accepts (git has no limit of its own;
 * a report line must fit in one pkt-line). */
#define GITPKT_REF_MAX 1024

/*
 * Is ref a ref name as `git check-ref-format` allows it, under "refs/"?
 * Refused: not starting with "refs/", "..", a control byte, space, DEL,
 * '~', '^', ':', '?', '*', '[' or '\\', "@{", a component starting with
 * '.' or ending with ".lock", an empty component ("//", a trailing '/'),
 * a trailing '.', or more than GITPKT_REF_MAX bytes.  Bytes above 0x7f
 * pass, as in git.  1 or 0.
 */
int gitpkt_ref_valid(const char *ref, size_t len);

/*
 * Is pattern a ref pattern?  A ref name (as gitpkt_ref_valid) with at most
 * one '*', which, as in a git refspec, stands for any run of bytes,
 * '/' included: "refs/heads/agent/\*" matches "refs/heads/agent/x" and
 * "refs/heads/agent/x/y".  0, or -1 with a static sentence in *why (which
 * may be NULL).
 */
int gitpkt_ref_pattern_check(const char *pattern, const char **why);

/* Does a checked ref pattern match the ref?  Case-sensitive.  1 or 0. */
int gitpkt_ref_match(const char *pattern, const char *ref, size_t len);

/* The push rules of a repository. */
struct gitpkt_ref_rules {
	const char *const *refs; /* ref patterns: the refs a push may change */
	size_t nrefs;
	int allow_delete; /* may a push delete a ref it may change? (0) */
	int allow_tags;   /* may a push create tags? (0) */
};

/* One command of a push: old-id SP new-id SP ref-name. */
struct gitpkt_command {
	const char *old_id; /* lowercase hex, 40 (SHA-1) or 64 (SHA-256) */
	const char *new_id; /* the same length; both NUL-terminated */
	const char *ref;    /* NUL-terminated, gitpkt_ref_valid */
	size_t ref_len;
	int creates; /* old-id is all zeros */
	int deletes; /* new-id is all zeros */
};

enum gitpkt_verdict {
	GITPKT_REF_OK,
	GITPKT_REF_NOT_MATCHED, /* no ref pattern matches */
	GITPKT_REF_DELETE,      /* a delete, without allow_delete */
	GITPKT_REF_TAG,         /* under refs/tags/, without allow_tags */
	GITPKT_REF_TAG_MOVE,    /* an existing tag to a new object */
};

/*
 * The verdict on one command.  In this order: a delete needs allow_delete;
 * a ref under "refs/tags/" needs allow_tags and is then allowed without a
 * ref pattern, when it is created (or deleted, with allow_delete) but never
 * moved: tags are meant not to move, and a broad pattern ("refs/\*") cannot
 * open tags by itself; any other ref needs a matching ref pattern.
 */
enum gitpkt_verdict gitpkt_ref_check(const struct gitpkt_ref_rules *r,
                                     const struct gitpkt_command *c);

/* The longest reason gitpkt_ref_reason writes, with its NUL. */
#define GITPKT_REASON_MAX 256

/*
 * The short sentence for a verdict, for the agent (report-status) and the
 * log: "this agent may push only refs/heads/agent/\*" (the patterns, comma
 * separated, ", ..." when more do not fit), "deleting refs is not
 * allowed", "tags are not allowed", "tags may be created, not moved";
 * for GITPKT_REF_OK, "push refused whole because another ref was refused"
 * (meant for a refused push).  Writes at most size bytes, NUL-terminated and
 * cut if need be (size GITPKT_REASON_MAX never cuts); returns buf.
 */
const char *gitpkt_ref_reason(enum gitpkt_verdict v,
                              const struct gitpkt_ref_rules *r, char *buf,
                              size_t size);

/* ---- The receive-pack command list ---- */

/* Limits: the command list on the wire (shallow lines, commands, their
 * flush, push options and their flush), and its commands. */
#define GITPKT_LIST_MAX     65536
#define GITPKT_COMMANDS_MAX 500
/* The body bytes the parser reads before it can answer DONE: the gateway
 * holds this much of a receive-pack body (forward's inspect_max). */
#define GITPKT_HOLD_MAX (GITPKT_LIST_MAX + 8)

enum gitpkt_status {
	GITPKT_NEED_MORE,
	GITPKT_DONE,  /* the command list is whole: decide, then send it on */
	GITPKT_PROBE, /* no commands: see gitpkt_push_feed */
	GITPKT_ERROR, /* refuse the push (REASON_BAD_PKT_LINE) */
};

/* Capabilities the first command asked for (gitpkt_list.caps). */
enum {
	GITPKT_CAP_REPORT_STATUS = 1 << 0,
	GITPKT_CAP_REPORT_STATUS_V2 = 1 << 1,
	GITPKT_CAP_SIDE_BAND = 1 << 2,
	GITPKT_CAP_SIDE_BAND_64K = 1 << 3,
	GITPKT_CAP_PUSH_OPTIONS = 1 << 4,
	GITPKT_CAP_ATOMIC = 1 << 5,
	GITPKT_CAP_QUIET = 1 << 6,
};

/* What the parser found; it lives in the parser. */
struct gitpkt_list {
	const struct gitpkt_command *commands;
	size_t ncommands;
	unsigned caps;            /* GITPKT_CAP_* */
	const char *capabilities; /* as sent, NUL-terminated ("" if none) */
	size_t nshallow;          /* "shallow <id>" lines */
	size_t noptions;          /* push options */
	int pack;   /* a pack follows: some command is not a delete */
	size_t end; /* body offset where the list ends: the pack's start */
	const char *error; /* ERROR: a static sentence, else NULL */
	size_t error_at;   /* ERROR: body offset of the pkt-line at fault, or
	                    * of what follows the list */
};

struct gitpkt_push;

/* A parser for one receive-pack request body, or NULL when out of memory.
 * It is large (the list's bytes are kept): allocate one per push. */
struct gitpkt_push *gitpkt_push_new(void);

void gitpkt_push_free(struct gitpkt_push *p);

/*
 * Read the next len bytes of the body (as sent, after the HTTP framing and
 * before any content coding: the gateway refuses a receive-pack body with a
 * Content-Encoding, which git never sends for a push).  The result does not
 * depend on how the body is split across calls, one byte at a time
 * included; *used is how many of the len bytes were read.  Never reads past
 * len.
 *
 * The body is pkt-lines: four lowercase hex digits of length (header
 * included), then the payload.  In order:
 *   *("shallow" SP id)  the shallow roots of the pusher's shallow clone;
 *                       checked and counted
 *   old-id SP new-id SP ref-name NUL capabilities
 *   *(old-id SP new-id SP ref-name)
 *   "0000"              flush
 *   *push-option "0000" only when the push-options capability was asked
 *   "PACK" 0 0 0 (2|3)  the pack's header, unless every command is a delete
 * Each payload may end in one LF.  The ids of a push are all the same
 * length, 40 (object-format=sha1 or none) or 64 (object-format=sha256),
 * lowercase hex; old-id all zeros is a create, new-id all zeros a delete,
 * never both.  Refs pass gitpkt_ref_valid; capabilities and push options
 * are printable ASCII (push options: 1*(VCHAR / SP)).
 *
 * NEED_MORE: all len bytes read, more are needed.  DONE: the list and, when
 * a pack follows, its 8-byte header are read, within the first *used bytes;
 * gitpkt_push_list says what the push changes.  PROBE: the body began with
 * a flush (perhaps after shallow lines): git's 4-byte "0000" probe, sent
 * before a body larger than http.postBuffer, which changes nothing; pass it
 * on only if the body ends there.  ERROR: malformed or over a limit (see
 * gitpkt_push_list's error); refuse.  After DONE with a pack, later calls
 * answer DONE reading nothing (*used = 0: the rest is pack data, not
 * looked at); after DONE without a pack and after PROBE, any further byte
 * is an ERROR ("bytes after ..."), and so is a length of 0001 to 0004
 * (delim, response-end, invalid, empty), one above 65520, a list over
 * GITPKT_LIST_MAX or GITPKT_COMMANDS_MAX, a shallow line after a command,
 * a signed push ("push-cert": not supported), or anything after the list
 * other than a pack header (a second command list, say).
 */
enum gitpkt_status gitpkt_push_feed(struct gitpkt_push *p, const void *buf,
                                    size_t len, size_t *used);

/* What the parser found so far; complete after DONE. */
const struct gitpkt_list *gitpkt_push_list(const struct gitpkt_push *p);

/*
 * Judge every command of a finished list: verdicts[i] for command i (room
 * for ncommands).  Returns how many are refused: the push goes on only
 * when none is.
 */
size_t gitpkt_push_check(const struct gitpkt_list *l,
                         const struct gitpkt_ref_rules *r,
                         enum gitpkt_verdict *verdicts);

/* The Content-Type of gitpkt_push_refusal's body, answered with 200. */
#define GITPKT_RESULT_TYPE "application/x-git-receive-pack-result"

/*
 * The body of the 200 that refuses a push whole, as receive-pack reports a
 * refusal: "unpack ok", then "ng <ref> egress policy: <reason>" for every
 * command (gitpkt_ref_reason of its verdict: an allowed one says the push
 * was refused whole), then a flush; all of it inside side-band channel 1
 * pkt-lines followed by a flush when the client asked for side-band-64k
 * (or side-band).  snprintf-like: returns the body's length, writing it
 * only when it fits in size bytes (no NUL is added).  Returns 0, writing
 * nothing, when the client asked for neither report-status nor
 * report-status-v2: send-pack then counts every ref as pushed once sent,
 * so that a 200 would read as success; the gateway answers 403 instead.
 */
size_t gitpkt_push_refusal(const struct gitpkt_list *l,
                           const struct gitpkt_ref_rules *r,
                           const enum gitpkt_verdict *verdicts, char *buf,
                           size_t size);

#endif
