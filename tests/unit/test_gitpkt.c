/*
 * Unit tests for gitpkt: smart-HTTP classification, repository and ref
 * patterns, verdicts, the receive-pack command-list parser and the
 * refusals git shows.
 *
 * The bodies in tests/unit/data/gitpkt/ are real pushes of git 2.39,
 * recorded by capture.py there; each .refusal beside them is what
 * gitpkt_push_refusal answers with the rules {refs/heads/agent/\*}, and
 * `capture.py --verify` has git print it (" ! [remote rejected] main ->
 * main (egress policy: ...)").  Paths are relative to the top of the tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitpkt.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DATA_DIR "tests/unit/data/gitpkt/"

static const char *const agent_refs[] = {"refs/heads/agent/*"};
static const struct gitpkt_ref_rules agent_rules = {agent_refs, 1, 0, 0};

/*
 * Copy into a heap buffer of exactly len bytes, without a terminating NUL,
 * so that AddressSanitizer catches any read past the length.
 */
static char *
dup_exact(const void *s, size_t len)
{
	char *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	if (len > 0)
		memcpy(p, s, len);
	return p;
}

struct bytes {
	char *p;
	size_t n;
};

static struct bytes
load(const char *name, const char *ext)
{
	char path[256];
	struct bytes b;
	FILE *f;
	long size;

	snprintf(path, sizeof(path), DATA_DIR "%s.%s", name, ext);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("%s: cannot open (run from the top of the tree)",
		         path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size > 0);
	rewind(f);
	b.n = (size_t)size;
	b.p = malloc(b.n);
	assert_non_null(b.p);
	assert_int_equal(fread(b.p, 1, b.n, f), b.n);
	fclose(f);
	return b;
}

/* ---- Requests ---- */

struct classify_case {
	const char *method;
	const char *path;
	const char *query; /* NULL: none */
	enum gitpkt_kind kind;
	enum gitpkt_service service;
	const char *repo;
};

static void
test_classify(void **state)
{
	static const struct classify_case t[] = {
	    {"GET", "/org/repo.git/info/refs", "service=git-upload-pack",
	     GITPKT_INFO_REFS, GITPKT_UPLOAD_PACK, "org/repo"},
	    {"GET", "/org/repo/info/refs", "service=git-receive-pack",
	     GITPKT_INFO_REFS, GITPKT_RECEIVE_PACK, "org/repo"},
	    {"POST", "/org/repo.git/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "org/repo"},
	    {"POST", "/org/repo/git-receive-pack", NULL, GITPKT_RPC,
	     GITPKT_RECEIVE_PACK, "org/repo"},
	    {"POST", "/org/repo/git-receive-pack", "", GITPKT_RPC,
	     GITPKT_RECEIVE_PACK, "org/repo"},
	    /* Nested groups, one segment, the characters servers use. */
	    {"POST", "/group/sub/project.git/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "group/sub/project"},
	    {"POST", "/repo/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "repo"},
	    {"GET", "/~user/my_repo-2.x/info/refs", "service=git-upload-pack",
	     GITPKT_INFO_REFS, GITPKT_UPLOAD_PACK, "~user/my_repo-2.x"},
	    {"GET", "/org/.github/info/refs", "service=git-upload-pack",
	     GITPKT_INFO_REFS, GITPKT_UPLOAD_PACK, "org/.github"},
	    /* One ".git" only; ".git" alone is a name. */
	    {"POST", "/org/repo.git.git/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "org/repo.git"},
	    {"POST", "/org/.git/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "org/.git"},
	    {"POST", "/org/..git.git/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "org/..git"},
	    /* Without its ".git", the repository "..": a server that removes
	     * the suffix would see "org/..".  (fuzz_gitpkt found it.) */
	    {"GET", "/org/..git/info/refs", "service=git-upload-pack",
	     GITPKT_OTHER, 0, NULL},
	    {"POST", "/..git/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/.git.git/git-upload-pack", NULL, GITPKT_RPC,
	     GITPKT_UPLOAD_PACK, "org/.git"},
	    /* Methods. */
	    {"POST", "/org/repo/info/refs", "service=git-upload-pack",
	     GITPKT_OTHER, 0, NULL},
	    {"HEAD", "/org/repo/info/refs", "service=git-upload-pack",
	     GITPKT_OTHER, 0, NULL},
	    {"get", "/org/repo/info/refs", "service=git-upload-pack",
	     GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"PUT", "/org/repo/git-receive-pack", NULL, GITPKT_OTHER, 0, NULL},
	    /* Queries: exactly the service, nothing else. */
	    {"GET", "/org/repo/info/refs", NULL, GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/info/refs", "", GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/info/refs", "service=git-upload-archive",
	     GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/info/refs", "service=git-upload-pack&x=1",
	     GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/info/refs", "x=1&service=git-upload-pack",
	     GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/info/refs", "service=GIT-UPLOAD-PACK",
	     GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo/info/refs", "service=", GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/repo/git-receive-pack", "service=git-receive-pack",
	     GITPKT_OTHER, 0, NULL},
	    /* Dumb HTTP, the web UI, the API, LFS. */
	    {"GET", "/org/repo.git/info/refs/", "service=git-upload-pack",
	     GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo.git/HEAD", NULL, GITPKT_OTHER, 0, NULL},
	    {"GET", "/org/repo.git/objects/info/packs", NULL, GITPKT_OTHER, 0,
	     NULL},
	    {"GET", "/org/repo.git/objects/ab/cdef", NULL, GITPKT_OTHER, 0,
	     NULL},
	    {"GET", "/org/repo", NULL, GITPKT_OTHER, 0, NULL},
	    {"GET", "/api/v3/repos/org/repo", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/repo.git/info/lfs/objects/batch", NULL, GITPKT_OTHER,
	     0, NULL},
	    /* No repository, or not one we read the same as the server. */
	    {"GET", "/info/refs", "service=git-upload-pack", GITPKT_OTHER, 0,
	     NULL},
	    {"POST", "/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "//git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "org/repo/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org//repo/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/../repo/git-upload-pack", NULL, GITPKT_OTHER, 0,
	     NULL},
	    {"POST", "/org/./repo/git-upload-pack", NULL, GITPKT_OTHER, 0,
	     NULL},
	    {"POST", "/org/%72epo/git-upload-pack", NULL, GITPKT_OTHER, 0,
	     NULL},
	    {"POST", "/org/re po/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/re+po/git-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/rep\xc3\xb6/git-upload-pack", NULL, GITPKT_OTHER, 0,
	     NULL},
	    {"POST", "/org/repo/git-upload-packs", NULL, GITPKT_OTHER, 0, NULL},
	    {"POST", "/org/repogit-upload-pack", NULL, GITPKT_OTHER, 0, NULL},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		size_t plen = strlen(t[i].path);
		size_t qlen = t[i].query ? strlen(t[i].query) : 0;
		char *path = dup_exact(t[i].path, plen);
		char *query = t[i].query ? dup_exact(t[i].query, qlen) : NULL;
		struct gitpkt_request r;
		enum gitpkt_kind k =
		    gitpkt_classify(t[i].method, path, plen, query, qlen, &r);
		int ok = k == t[i].kind && r.kind == k;

		if (ok && k != GITPKT_OTHER)
			ok = r.service == t[i].service && r.repo == path + 1 &&
			     r.repo_len == strlen(t[i].repo) &&
			     memcmp(r.repo, t[i].repo, r.repo_len) == 0;
		if (ok && k == GITPKT_OTHER)
			ok = r.service == GITPKT_SERVICE_NONE &&
			     r.repo == NULL && r.repo_len == 0;
		if (!ok) {
			print_error("%s %s ? %s: kind %d service %d repo "
			            "\"%.*s\"\n",
			            t[i].method, t[i].path,
			            t[i].query ? t[i].query : "(none)", k,
			            r.service, (int)r.repo_len,
			            r.repo ? r.repo : "");
			bad++;
		}
		free(path);
		free(query);
	}
	assert_int_equal(bad, 0);
}

static void
test_service_name(void **state)
{
	(void)state;
	assert_string_equal(gitpkt_service_name(GITPKT_UPLOAD_PACK),
	                    "git-upload-pack");
	assert_string_equal(gitpkt_service_name(GITPKT_RECEIVE_PACK),
	                    "git-receive-pack");
	assert_string_equal(gitpkt_service_name(GITPKT_SERVICE_NONE), "");
	assert_string_equal(gitpkt_service_name((enum gitpkt_service)7), "");
}

/* ---- Repository patterns ---- */

static void
test_repo_pattern_check(void **state)
{
	static const char *const good[] = {
	    "org/repo",          "org/repo.git", "org/*",
	    "org/*.git",         "org/agent-*",  "*/repo",
	    "org/*/*",           "repo",         "*",
	    "group/sub/project", "~user/r",      "org/.github",
	    "org/a*b*c",         "org/.git",
	};
	static const char *const bad[] = {
	    "",
	    "/org/repo",
	    "org/repo/",
	    "org//repo",
	    "org/**",
	    "**",
	    "org/../x",
	    "org/./x",
	    "..",
	    ".",
	    "org/re po",
	    "org/%72epo",
	    "org/repo?",
	    "org/[ab]",
	    "org/r\\x",
	    "https://x/y",
	    "org/rep\xc3\xb6",
	};
	const char *why;

	(void)state;
	for (size_t i = 0; i < NELEM(good); i++) {
		why = NULL;
		if (gitpkt_repo_pattern_check(good[i], &why) != 0)
			fail_msg("\"%s\": refused (%s)", good[i], why);
	}
	for (size_t i = 0; i < NELEM(bad); i++) {
		why = NULL;
		if (gitpkt_repo_pattern_check(bad[i], &why) != -1)
			fail_msg("\"%s\": accepted", bad[i]);
		assert_non_null(why);
		assert_true(why[0] != '\0');
	}
	assert_int_equal(gitpkt_repo_pattern_check(NULL, NULL), -1);
	assert_int_equal(gitpkt_repo_pattern_check("org/**", NULL), -1);
	assert_int_equal(gitpkt_repo_pattern_check("org/x", NULL), 0);
}

static void
test_repo_match(void **state)
{
	static const struct {
		const char *pattern, *repo;
		int want;
	} t[] = {
	    {"org/repo", "org/repo", 1},
	    {"org/repo.git", "org/repo", 1},
	    /* The repository has lost its ".git": "org/repo.git" is what
	     * "org/repo.git.git" classifies as, another repository. */
	    {"org/repo", "org/repo.git", 0},
	    {"org/repo.git", "org/repo.git", 0},
	    {"org/repo.git.git", "org/repo.git", 1},
	    {"org/repo.git.git", "org/repo", 0},
	    {"org/repo", "org/Repo", 0},
	    {"Org/repo", "org/repo", 0},
	    {"org/repo", "org/repo2", 0},
	    {"org/repo", "org/rep", 0},
	    {"org/repo", "org/repo/x", 0},
	    {"org/repo", "org", 0},
	    {"org/*", "org/repo", 1},
	    {"org/*", "org/repo.git", 1},
	    {"org/*", "org/sub/repo", 0},
	    {"org/*", "org", 0},
	    {"org/*", "orga/repo", 0},
	    {"org/*", "other/repo", 0},
	    {"org/*/*", "org/sub/repo", 1},
	    {"org/*/*", "org/repo", 0},
	    {"*/repo", "org/repo", 1},
	    {"*/repo", "repo", 0},
	    {"*", "repo", 1},
	    {"*", "org/repo", 0},
	    {"org/agent-*", "org/agent-7", 1},
	    {"org/agent-*", "org/agent-", 1},
	    {"org/agent-*", "org/agent", 0},
	    {"org/agent-*", "org/agent-7/x", 0},
	    {"org/*-tools", "org/ci-tools", 1},
	    {"org/*-tools", "org/ci-tools.git", 0},
	    {"org/*-tools", "org/ci-tool", 0},
	    {"org/a*b*c", "org/aXbYc", 1},
	    {"org/a*b*c", "org/abc", 1},
	    {"org/a*b*c", "org/abbbc", 1},
	    {"org/a*b*c", "org/acb", 0},
	    {"org/*.git", "org/x", 1},
	    {"org/x", "", 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		size_t len = strlen(t[i].repo);
		char *repo = dup_exact(t[i].repo, len);
		int got = gitpkt_repo_match(t[i].pattern, repo, len);

		if (got != t[i].want) {
			print_error("gitpkt_repo_match(\"%s\", \"%s\") = %d, "
			            "want %d\n",
			            t[i].pattern, t[i].repo, got, t[i].want);
			bad++;
		}
		free(repo);
	}
	assert_int_equal(bad, 0);
}

static void
test_repo_match_any(void **state)
{
	static const char *const p[] = {"org/a", "team/*"};

	(void)state;
	assert_int_equal(gitpkt_repo_match_any(p, 2, "org/a", 5), 1);
	assert_int_equal(gitpkt_repo_match_any(p, 2, "team/x", 6), 1);
	assert_int_equal(gitpkt_repo_match_any(p, 2, "org/b", 5), 0);
	assert_int_equal(gitpkt_repo_match_any(p, 0, "org/a", 5), 0);
}

/* The classified repository of a request, matched: what the gateway does. */
static void
test_classify_then_match(void **state)
{
	static const char path[] = "/org/repo.git/info/refs";
	struct gitpkt_request r;

	(void)state;
	assert_int_equal(gitpkt_classify("GET", path, strlen(path),
	                                 "service=git-upload-pack", 23, &r),
	                 GITPKT_INFO_REFS);
	assert_int_equal(gitpkt_repo_match("org/repo", r.repo, r.repo_len), 1);
	assert_int_equal(gitpkt_repo_match("org/*", r.repo, r.repo_len), 1);
	assert_int_equal(gitpkt_repo_match("org/repo.git", r.repo, r.repo_len),
	                 1);
	assert_int_equal(
	    gitpkt_repo_match("org/repo.git.git", r.repo, r.repo_len), 0);
	/* The rest of the path is not part of the repository. */
	assert_int_equal(
	    gitpkt_repo_match("org/repo.git/info", r.repo, r.repo_len), 0);
}

/* What git 2.39 printed: "remote: egress policy: this agent may not fetch
 * org/repo" (capture by hand, see gitpkt.h). */
static void
test_repo_refusal(void **state)
{
	char buf[128];
	size_t n;

	(void)state;
	n = gitpkt_repo_refusal(GITPKT_UPLOAD_PACK, "org/repo", 8, buf,
	                        sizeof(buf));
	assert_string_equal(
	    buf, "egress policy: this agent may not fetch org/repo\n");
	assert_int_equal(n, strlen(buf));
	n = gitpkt_repo_refusal(GITPKT_RECEIVE_PACK, "org/repo.gitxyz", 8, buf,
	                        sizeof(buf));
	assert_string_equal(
	    buf, "egress policy: this agent may not push to org/repo\n");
	assert_int_equal(n, strlen(buf));
	/* snprintf-like: the length, and as much as fits. */
	memset(buf, 'x', sizeof(buf));
	n = gitpkt_repo_refusal(GITPKT_UPLOAD_PACK, "org/repo", 8, buf, 10);
	assert_int_equal(n, 49);
	assert_string_equal(buf, "egress po");
	assert_int_equal(buf[10], 'x');
	assert_int_equal(
	    gitpkt_repo_refusal(GITPKT_UPLOAD_PACK, "org/repo", 8, NULL, 0),
	    49);
}

/* ---- Refs ---- */

static void
test_ref_valid(void **state)
{
	static const char *const good[] = {
	    "refs/heads/main",      "refs/heads/agent/x",
	    "refs/heads/agent/x/y", "refs/tags/v1.0",
	    "refs/heads/a.b",       "refs/heads/@",
	    "refs/heads/a@b",       "refs/heads/caf\xc3\xa9",
	    "refs/for/main",        "refs/heads/x.lockx",
	    "refs/heads/-x",        "refs/x",
	};
	static const char *const bad[] = {
	    "",
	    "refs/",
	    "refs",
	    "heads/main",
	    "HEAD",
	    "main",
	    "Refs/heads/main",
	    "refs/heads/a..b",
	    "refs/heads/..",
	    "refs/heads/a/../b",
	    "refs/heads/a b",
	    "refs/heads/a\tb",
	    "refs/heads/a\nb",
	    "refs/heads/a\x01",
	    "refs/heads/a\x1f",
	    "refs/heads/a\x7f",
	    "refs/heads/a~1",
	    "refs/heads/a^",
	    "refs/heads/a:b",
	    "refs/heads/a?",
	    "refs/heads/a*",
	    "refs/heads/a[b",
	    "refs/heads/a\\b",
	    "refs/heads/a@{1}",
	    "refs/heads/@{",
	    "refs/heads/",
	    "refs/heads//main",
	    "refs//heads",
	    "refs/heads/main/",
	    "refs/heads/main.",
	    "refs/heads/main.lock",
	    "refs/heads/x.lock/y",
	    "refs/heads/.hidden",
	    "refs/heads/a/.b",
	    "refs/.x",
	};
	char *long_ref;

	(void)state;
	for (size_t i = 0; i < NELEM(good); i++) {
		size_t n = strlen(good[i]);
		char *s = dup_exact(good[i], n);

		if (!gitpkt_ref_valid(s, n))
			fail_msg("\"%s\": refused", good[i]);
		free(s);
	}
	for (size_t i = 0; i < NELEM(bad); i++) {
		size_t n = strlen(bad[i]);
		char *s = dup_exact(bad[i], n);

		if (gitpkt_ref_valid(s, n))
			fail_msg("\"%s\": accepted", bad[i]);
		free(s);
	}
	/* A NUL inside is a control byte. */
	assert_int_equal(gitpkt_ref_valid("refs/heads/a\0b", 14), 0);
	/* GITPKT_REF_MAX bytes, and one more. */
	long_ref = malloc(GITPKT_REF_MAX + 1);
	assert_non_null(long_ref);
	memcpy(long_ref, "refs/heads/", 11);
	memset(long_ref + 11, 'a', GITPKT_REF_MAX + 1 - 11);
	assert_int_equal(gitpkt_ref_valid(long_ref, GITPKT_REF_MAX), 1);
	assert_int_equal(gitpkt_ref_valid(long_ref, GITPKT_REF_MAX + 1), 0);
	free(long_ref);
}

static void
test_ref_pattern(void **state)
{
	static const char *const good[] = {
	    "refs/heads/agent/*", "refs/heads/main",  "refs/*",
	    "refs/heads/agent-*", "refs/heads/*/wip", "refs/tags/v*",
	};
	static const char *const bad[] = {
	    "",
	    "heads/agent/*",
	    "*",
	    "refs/heads/*/*",
	    "refs/heads/**",
	    "refs/heads/a..b/*",
	    "refs/heads/a b/*",
	    "refs/heads/agent/",
	    "refs/heads/agent/*.lock",
	    "refs/heads/?",
	    "refs/heads/[a]*",
	};
	static const struct {
		const char *pattern, *ref;
		int want;
	} t[] = {
	    {"refs/heads/agent/*", "refs/heads/agent/x", 1},
	    {"refs/heads/agent/*", "refs/heads/agent/x/y", 1},
	    {"refs/heads/agent/*", "refs/heads/agent", 0},
	    {"refs/heads/agent/*", "refs/heads/agentx", 0},
	    {"refs/heads/agent/*", "refs/heads/Agent/x", 0},
	    {"refs/heads/agent/*", "refs/tags/agent/x", 0},
	    {"refs/heads/agent-*", "refs/heads/agent-1", 1},
	    {"refs/heads/agent-*", "refs/heads/agent-1/b", 1},
	    {"refs/heads/*/wip", "refs/heads/x/wip", 1},
	    {"refs/heads/*/wip", "refs/heads/x/y/wip", 1},
	    {"refs/heads/*/wip", "refs/heads/wip", 0},
	    {"refs/heads/main", "refs/heads/main", 1},
	    {"refs/heads/main", "refs/heads/main2", 0},
	    {"refs/heads/main", "refs/heads/mai", 0},
	    {"refs/*", "refs/heads/main", 1},
	};
	const char *why;

	(void)state;
	for (size_t i = 0; i < NELEM(good); i++) {
		why = NULL;
		if (gitpkt_ref_pattern_check(good[i], &why) != 0)
			fail_msg("\"%s\": refused (%s)", good[i], why);
	}
	for (size_t i = 0; i < NELEM(bad); i++) {
		why = NULL;
		if (gitpkt_ref_pattern_check(bad[i], &why) != -1)
			fail_msg("\"%s\": accepted", bad[i]);
		assert_non_null(why);
	}
	assert_int_equal(gitpkt_ref_pattern_check(NULL, NULL), -1);
	for (size_t i = 0; i < NELEM(t); i++) {
		size_t n = strlen(t[i].ref);
		char *ref = dup_exact(t[i].ref, n);

		if (gitpkt_ref_match(t[i].pattern, ref, n) != t[i].want)
			fail_msg("gitpkt_ref_match(\"%s\", \"%s\") != %d",
			         t[i].pattern, t[i].ref, t[i].want);
		free(ref);
	}
}

#define ZERO "0000000000000000000000000000000000000000"
#define ID_A "1a77d8970af25a2515d52612280855d3e582215f"
#define ID_B "a6f384f6348146e0896355447db13073c79f5866"
/* SHA-256 ids. */
#define Z64  ZERO "000000000000000000000000"
#define ID64 ID_A "0123456789abcdef01234567"

static struct gitpkt_command
command(const char *old_id, const char *new_id, const char *ref)
{
	struct gitpkt_command c = {old_id,
	                           new_id,
	                           ref,
	                           strlen(ref),
	                           strcmp(old_id, ZERO) == 0,
	                           strcmp(new_id, ZERO) == 0};
	return c;
}

static void
test_ref_check(void **state)
{
	static const char *const refs[] = {"refs/heads/agent/*",
	                                   "refs/heads/main", "refs/*"};
	struct gitpkt_ref_rules none = {refs, 0, 0, 0};
	struct gitpkt_ref_rules agent = {refs, 1, 0, 0};
	struct gitpkt_ref_rules agent_del = {refs, 1, 1, 0};
	struct gitpkt_ref_rules agent_tags = {refs, 1, 0, 1};
	struct gitpkt_ref_rules all = {refs, 3, 1, 1};
	struct gitpkt_ref_rules broad = {refs + 2, 1, 0, 0};
	const struct {
		const struct gitpkt_ref_rules *rules;
		struct gitpkt_command c;
		enum gitpkt_verdict want;
	} t[] = {
	    {&agent, command(ZERO, ID_A, "refs/heads/agent/x"), GITPKT_REF_OK},
	    {&agent, command(ID_B, ID_A, "refs/heads/agent/x"), GITPKT_REF_OK},
	    {&agent, command(ID_B, ID_A, "refs/heads/main"),
	     GITPKT_REF_NOT_MATCHED},
	    {&agent, command(ZERO, ID_A, "refs/heads/agentx"),
	     GITPKT_REF_NOT_MATCHED},
	    {&none, command(ZERO, ID_A, "refs/heads/agent/x"),
	     GITPKT_REF_NOT_MATCHED},
	    /* Deletes: allow_delete, and a ref the push may change. */
	    {&agent, command(ID_A, ZERO, "refs/heads/agent/x"),
	     GITPKT_REF_DELETE},
	    {&agent_del, command(ID_A, ZERO, "refs/heads/agent/x"),
	     GITPKT_REF_OK},
	    {&agent_del, command(ID_A, ZERO, "refs/heads/main"),
	     GITPKT_REF_NOT_MATCHED},
	    {&agent, command(ID_A, ZERO, "refs/heads/main"), GITPKT_REF_DELETE},
	    /* Tags: allow_tags, creates only; no pattern opens them. */
	    {&agent, command(ZERO, ID_A, "refs/tags/v1"), GITPKT_REF_TAG},
	    {&broad, command(ZERO, ID_A, "refs/tags/v1"), GITPKT_REF_TAG},
	    {&agent_tags, command(ZERO, ID_A, "refs/tags/v1"), GITPKT_REF_OK},
	    {&agent_tags, command(ZERO, ID_A, "refs/tags/x/y"), GITPKT_REF_OK},
	    {&agent_tags, command(ID_B, ID_A, "refs/tags/v1"),
	     GITPKT_REF_TAG_MOVE},
	    {&agent_tags, command(ID_B, ZERO, "refs/tags/v1"),
	     GITPKT_REF_DELETE},
	    {&all, command(ID_B, ZERO, "refs/tags/v1"), GITPKT_REF_OK},
	    {&all, command(ID_B, ID_A, "refs/tags/v1"), GITPKT_REF_TAG_MOVE},
	    {&broad, command(ZERO, ID_A, "refs/notes/commits"), GITPKT_REF_OK},
	    /* "refs/tagsx" is not under refs/tags/. */
	    {&broad, command(ZERO, ID_A, "refs/tagsx/v1"), GITPKT_REF_OK},
	    {&agent, command(ZERO, ID_A, "refs/tags"), GITPKT_REF_NOT_MATCHED},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		enum gitpkt_verdict v = gitpkt_ref_check(t[i].rules, &t[i].c);

		if (v != t[i].want) {
			print_error("case %zu: %s %s %s: verdict %d, want %d\n",
			            i, t[i].c.old_id, t[i].c.new_id, t[i].c.ref,
			            v, t[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_ref_reason(void **state)
{
	static const char *const two[] = {"refs/heads/agent/*",
	                                  "refs/heads/bot/*"};
	struct gitpkt_ref_rules r2 = {two, 2, 0, 0};
	struct gitpkt_ref_rules r0 = {two, 0, 0, 0};
	char buf[GITPKT_REASON_MAX], small[8];
	const char *many[40];
	struct gitpkt_ref_rules rmany = {many, NELEM(many), 0, 0};
	char longp[300];
	const char *one_long[] = {longp, "refs/heads/x"};
	struct gitpkt_ref_rules rlong = {one_long, 2, 0, 0};

	(void)state;
	assert_string_equal(gitpkt_ref_reason(GITPKT_REF_NOT_MATCHED,
	                                      &agent_rules, buf, sizeof(buf)),
	                    "this agent may push only refs/heads/agent/*");
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_NOT_MATCHED, &r2, buf, sizeof(buf)),
	    "this agent may push only refs/heads/agent/*, "
	    "refs/heads/bot/*");
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_NOT_MATCHED, &r0, buf, sizeof(buf)),
	    "no ref may be pushed to this repository");
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_DELETE, &r2, buf, sizeof(buf)),
	    "deleting refs is not allowed");
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_TAG, &r2, buf, sizeof(buf)),
	    "tags are not allowed");
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_TAG_MOVE, &r2, buf, sizeof(buf)),
	    "tags may be created, not moved");
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_OK, &r2, buf, sizeof(buf)),
	    "push refused whole because another ref was refused");
	/* Too many patterns: as many as fit, then ", ...". */
	for (size_t i = 0; i < NELEM(many); i++)
		many[i] = "refs/heads/team/feature/*";
	gitpkt_ref_reason(GITPKT_REF_NOT_MATCHED, &rmany, buf, sizeof(buf));
	assert_true(strlen(buf) <= GITPKT_REASON_MAX - 1);
	assert_true(strlen(buf) > GITPKT_REASON_MAX - 30);
	assert_string_equal(buf + strlen(buf) - 5, ", ...");
	assert_memory_equal(buf, "this agent may push only refs/heads/team/",
	                    41);
	/* A first pattern that does not fit. */
	memcpy(longp, "refs/heads/", 11);
	memset(longp + 11, 'l', sizeof(longp) - 12);
	longp[sizeof(longp) - 1] = '\0';
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_NOT_MATCHED, &rlong, buf, sizeof(buf)),
	    "this agent may push only ...");
	/* A small buffer: cut, NUL-terminated. */
	assert_string_equal(
	    gitpkt_ref_reason(GITPKT_REF_TAG, &r2, small, sizeof(small)),
	    "tags ar");
	small[0] = 'x';
	gitpkt_ref_reason(GITPKT_REF_TAG, &r2, small, 0);
	assert_int_equal(small[0], 'x');
}

/* ---- The command-list parser ---- */

/* Everything a parse shows, to compare two parses of the same bytes. */
static void
same_list(const struct gitpkt_list *a, const struct gitpkt_list *b,
          const char *what, size_t at)
{
	int same = a->ncommands == b->ncommands && a->caps == b->caps &&
	           strcmp(a->capabilities, b->capabilities) == 0 &&
	           a->nshallow == b->nshallow && a->noptions == b->noptions &&
	           a->pack == b->pack && a->end == b->end &&
	           (a->error == NULL) == (b->error == NULL) &&
	           (a->error == NULL || strcmp(a->error, b->error) == 0) &&
	           a->error_at == b->error_at;

	for (size_t i = 0; same && i < a->ncommands; i++) {
		const struct gitpkt_command *x = &a->commands[i];
		const struct gitpkt_command *y = &b->commands[i];

		same = strcmp(x->old_id, y->old_id) == 0 &&
		       strcmp(x->new_id, y->new_id) == 0 &&
		       strcmp(x->ref, y->ref) == 0 &&
		       x->ref_len == y->ref_len && x->creates == y->creates &&
		       x->deletes == y->deletes;
	}
	if (!same)
		fail_msg("%s at %zu: the parses differ (error %s / %s)", what,
		         at, a->error ? a->error : "-",
		         b->error ? b->error : "-");
}

/* Feed a body in one call.  The parser is the caller's to free. */
static struct gitpkt_push *
parse_whole(const char *body, size_t len, enum gitpkt_status *st, size_t *used)
{
	struct gitpkt_push *p = gitpkt_push_new();
	char *copy = dup_exact(body, len);

	assert_non_null(p);
	*st = gitpkt_push_feed(p, copy, len, used);
	free(copy);
	return p;
}

/*
 * The body parsed whole, split in two at every position (in a body over 4
 * KiB: near its ends and every 509th), and a byte at a time, each piece in
 * a buffer of its own exact size: the same status and the same list every
 * time.  Returns the whole's parser.
 */
static struct gitpkt_push *
parse_every_way(const char *body, size_t len, enum gitpkt_status *status)
{
	size_t used;
	enum gitpkt_status whole_st;
	struct gitpkt_push *whole = parse_whole(body, len, &whole_st, &used);
	const struct gitpkt_list *wl = gitpkt_push_list(whole);

	for (size_t k = 0; k <= len; k++) {
		struct gitpkt_push *p;
		char *a, *b;
		enum gitpkt_status st;

		if (len > 4096 && k > 64 && k + 64 < len && k % 509 != 0)
			continue;
		p = gitpkt_push_new();
		a = dup_exact(body, k);
		b = dup_exact(body + k, len - k);
		st = gitpkt_push_feed(p, a, k, &used);
		assert_true(used <= k);
		if (st == GITPKT_NEED_MORE) {
			assert_int_equal(used, k);
			st = gitpkt_push_feed(p, b, len - k, &used);
			assert_true(used <= len - k);
		} else if (len - k > 0) {
			st = gitpkt_push_feed(p, b, len - k, &used);
		}
		if (st != whole_st)
			fail_msg("split at %zu: status %d, whole %d", k, st,
			         whole_st);
		same_list(gitpkt_push_list(p), wl, "split", k);
		free(a);
		free(b);
		gitpkt_push_free(p);
	}
	{
		struct gitpkt_push *p = gitpkt_push_new();
		enum gitpkt_status st = GITPKT_NEED_MORE;

		for (size_t i = 0; i < len; i++) {
			char *one = dup_exact(body + i, 1);

			st = gitpkt_push_feed(p, one, 1, &used);
			free(one);
		}
		if (len == 0)
			st = gitpkt_push_feed(p, "", 0, &used);
		if (st != whole_st)
			fail_msg("byte by byte: status %d, whole %d", st,
			         whole_st);
		same_list(gitpkt_push_list(p), wl, "byte by byte", len);
		gitpkt_push_free(p);
	}
	*status = whole_st;
	return whole;
}

struct capture_case {
	const char *name;
	size_t ncommands;
	unsigned caps; /* these at least */
	size_t nshallow, noptions;
	int pack;
	const char *refs[2];
	int creates[2], deletes[2];
	size_t hash_len;
};

static const struct capture_case captures[] = {
    {"create-branch",
     1,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     1,
     {"refs/heads/agent/x"},
     {1},
     {0},
     40},
    {"update-main",
     1,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     1,
     {"refs/heads/main"},
     {0},
     {0},
     40},
    {"two-refs",
     2,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     1,
     {"refs/heads/main", "refs/heads/agent/y"},
     {0, 1},
     {0, 0},
     40},
    {"two-refs-no-sideband",
     2,
     GITPKT_CAP_REPORT_STATUS_V2,
     0,
     0,
     1,
     {"refs/heads/main", "refs/heads/agent/y"},
     {0, 1},
     {0, 0},
     40},
    {"report-status-v1",
     1,
     GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     1,
     {"refs/heads/main"},
     {0},
     {0},
     40},
    {"delete",
     1,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     0,
     {"refs/heads/agent/old"},
     {0},
     {1},
     40},
    {"tag",
     1,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     1,
     {"refs/tags/v1"},
     {1},
     {0},
     40},
    {"push-options",
     1,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K |
         GITPKT_CAP_PUSH_OPTIONS,
     0,
     2,
     1,
     {"refs/heads/main"},
     {0},
     {0},
     40},
    {"atomic",
     2,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K | GITPKT_CAP_ATOMIC,
     0,
     0,
     1,
     {"refs/heads/main", "refs/heads/agent/y"},
     {0, 1},
     {0, 0},
     40},
    {"shallow",
     1,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     1,
     0,
     1,
     {"refs/heads/main"},
     {0},
     {0},
     40},
    {"sha256",
     2,
     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K,
     0,
     0,
     1,
     {"refs/heads/main", "refs/heads/agent/y"},
     {0, 1},
     {0, 0},
     64},
};

/* Where git's pack starts in a captured body: the list's end. */
static size_t
pack_offset(const struct bytes *b)
{
	for (size_t i = 0; i + 4 <= b->n; i++)
		if (memcmp(b->p + i, "PACK", 4) == 0)
			return i;
	return b->n;
}

static void
test_push_captures(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(captures); i++) {
		const struct capture_case *c = &captures[i];
		struct bytes body = load(c->name, "body");
		struct bytes golden = load(c->name, "refusal");
		enum gitpkt_status st;
		struct gitpkt_push *p = parse_every_way(body.p, body.n, &st);
		const struct gitpkt_list *l = gitpkt_push_list(p);
		enum gitpkt_verdict v[2];
		char out[1024];
		size_t n;

		if (st != GITPKT_DONE)
			fail_msg("%s: status %d (%s at %zu)", c->name, st,
			         l->error ? l->error : "-", l->error_at);
		assert_int_equal(l->ncommands, c->ncommands);
		assert_int_equal(l->caps & c->caps, c->caps);
		assert_int_equal(l->nshallow, c->nshallow);
		assert_int_equal(l->noptions, c->noptions);
		assert_int_equal(l->pack, c->pack);
		assert_int_equal(l->end, pack_offset(&body));
		assert_null(l->error);
		assert_non_null(strstr(l->capabilities, "agent=git/"));
		for (size_t k = 0; k < l->ncommands; k++) {
			const struct gitpkt_command *cmd = &l->commands[k];

			assert_string_equal(cmd->ref, c->refs[k]);
			assert_int_equal(cmd->ref_len, strlen(c->refs[k]));
			assert_int_equal(strlen(cmd->old_id), c->hash_len);
			assert_int_equal(strlen(cmd->new_id), c->hash_len);
			assert_int_equal(cmd->creates, c->creates[k]);
			assert_int_equal(cmd->deletes, c->deletes[k]);
		}
		/* The refusal git printed (capture.py --verify). */
		gitpkt_push_check(l, &agent_rules, v);
		n = gitpkt_push_refusal(l, &agent_rules, v, out, sizeof(out));
		if (n != golden.n || memcmp(out, golden.p, n) != 0)
			fail_msg("%s: the refusal is not %s.refusal", c->name,
			         c->name);
		gitpkt_push_free(p);
		free(body.p);
		free(golden.p);
	}
}

/*
 * The refusal of update-main that git 2.39 printed as
 *  ! [remote rejected] main -> main (egress policy: this agent may push
 *    only refs/heads/agent/\*)
 * side-band-64k: one channel-1 packet around the report, then a flush.
 */
static const char golden_update_main[] =
    "0069\001"
    "000eunpack ok\n"
    "0052ng refs/heads/main egress policy: this agent may push only "
    "refs/heads/agent/*\n"
    "0000"
    "0000";

/* two-refs without side-band: the report alone (git printed both refs as
 * "[remote rejected]"). */
static const char golden_two_refs_plain[] =
    "000eunpack ok\n"
    "0052ng refs/heads/main egress policy: this agent may push only "
    "refs/heads/agent/*\n"
    "005cng refs/heads/agent/y egress policy: push refused whole because "
    "another ref was refused\n"
    "0000";

static void
test_push_refusal_golden(void **state)
{
	struct bytes main_body = load("update-main", "body");
	struct bytes two_body = load("two-refs-no-sideband", "body");
	enum gitpkt_status st;
	size_t used;
	struct gitpkt_push *p =
	    parse_whole(main_body.p, main_body.n, &st, &used);
	struct gitpkt_push *q = parse_whole(two_body.p, two_body.n, &st, &used);
	enum gitpkt_verdict v[2];
	char out[512];
	size_t n;

	(void)state;
	assert_int_equal(
	    gitpkt_push_check(gitpkt_push_list(p), &agent_rules, v), 1);
	assert_int_equal(v[0], GITPKT_REF_NOT_MATCHED);
	n = gitpkt_push_refusal(gitpkt_push_list(p), &agent_rules, v, out,
	                        sizeof(out));
	assert_int_equal(n, sizeof(golden_update_main) - 1);
	assert_memory_equal(out, golden_update_main, n);

	assert_int_equal(
	    gitpkt_push_check(gitpkt_push_list(q), &agent_rules, v), 1);
	assert_int_equal(v[0], GITPKT_REF_NOT_MATCHED);
	assert_int_equal(v[1], GITPKT_REF_OK);
	n = gitpkt_push_refusal(gitpkt_push_list(q), &agent_rules, v, out,
	                        sizeof(out));
	assert_int_equal(n, sizeof(golden_two_refs_plain) - 1);
	assert_memory_equal(out, golden_two_refs_plain, n);

	/* Too small: the length, nothing written. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(gitpkt_push_refusal(gitpkt_push_list(q), &agent_rules,
	                                     v, out, n - 1),
	                 n);
	assert_int_equal(out[0], 'x');
	assert_int_equal(out[n - 2], 'x');
	assert_int_equal(
	    gitpkt_push_refusal(gitpkt_push_list(q), &agent_rules, v, NULL, 0),
	    n);
	gitpkt_push_free(p);
	gitpkt_push_free(q);
	free(main_body.p);
	free(two_body.p);
}

/* ---- Hand-made bodies ---- */

/* A pkt-line: its length, then s. */
static size_t
pkt(char *out, const char *s, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t v = n + 4;

	assert_true(v <= 0xffff);
	for (int i = 3; i >= 0; i--, v >>= 4)
		out[i] = digits[v & 0xf];
	memcpy(out + 4, s, n);
	return n + 4;
}

static size_t
pkt_str(char *out, const char *s)
{
	return pkt(out, s, strlen(s));
}

#define CAPS     " report-status side-band-64k object-format=sha1 agent=git/x"
#define PACK_HDR "PACK\0\0\0\2"

/* The first command, with capabilities. */
static size_t
first_cmd_caps(char *out, const char *old_id, const char *new_id,
               const char *ref, const char *caps)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s %s %s", old_id, new_id, ref);
	size_t clen = strlen(caps);

	assert_true(n > 0 && (size_t)n + 1 + clen < sizeof(line));
	memcpy(line + n + 1, caps, clen);
	line[n] = '\0';
	return pkt(out, line, (size_t)n + 1 + clen);
}

static size_t
first_cmd(char *out, const char *old_id, const char *new_id, const char *ref)
{
	return first_cmd_caps(out, old_id, new_id, ref, CAPS);
}

static void
expect_status(const char *what, const char *body, size_t len,
              enum gitpkt_status want, const char *error_part, size_t error_at)
{
	enum gitpkt_status st;
	struct gitpkt_push *p = parse_every_way(body, len, &st);
	const struct gitpkt_list *l = gitpkt_push_list(p);

	if (st != want)
		fail_msg("%s: status %d, want %d (%s)", what, st, want,
		         l->error ? l->error : "no error");
	if (want == GITPKT_ERROR) {
		assert_non_null(l->error);
		if (error_part != NULL && strstr(l->error, error_part) == NULL)
			fail_msg("%s: error \"%s\", want \"%s\"", what,
			         l->error, error_part);
		if (l->error_at != error_at)
			fail_msg("%s: error at %zu, want %zu", what,
			         l->error_at, error_at);
	} else {
		assert_null(l->error);
	}
	gitpkt_push_free(p);
}

static void
test_push_probe(void **state)
{
	char b[1024];
	size_t n, used;
	enum gitpkt_status st;
	struct gitpkt_push *p;

	(void)state;
	expect_status("probe", "0000", 4, GITPKT_PROBE, NULL, 0);
	p = parse_whole("0000", 4, &st, &used);
	assert_int_equal(used, 4);
	assert_int_equal(gitpkt_push_list(p)->end, 4);
	assert_int_equal(gitpkt_push_list(p)->ncommands, 0);
	/* Anything after it, in the same call or a later one. */
	assert_int_equal(gitpkt_push_feed(p, "", 0, &used), GITPKT_PROBE);
	assert_int_equal(used, 0);
	assert_int_equal(gitpkt_push_feed(p, "P", 1, &used), GITPKT_ERROR);
	gitpkt_push_free(p);
	expect_status("probe and more", "0000PACK", 8, GITPKT_ERROR,
	              "bytes after an empty command list", 4);
	expect_status("probe and a list", "00000000", 8, GITPKT_ERROR,
	              "bytes after an empty command list", 4);
	/* Shallow lines and no command: send-pack over stateless RPC. */
	n = pkt_str(b, "shallow " ID_A "\n");
	memcpy(b + n, "0000", 4);
	expect_status("shallow only", b, n + 4, GITPKT_PROBE, NULL, 0);
	expect_status("nothing", "", 0, GITPKT_NEED_MORE, NULL, 0);
	expect_status("half a probe", "000", 3, GITPKT_NEED_MORE, NULL, 0);
}

static void
test_push_delete_only(void **state)
{
	char b[1024];
	size_t n, used;
	enum gitpkt_status st;
	struct gitpkt_push *p;

	(void)state;
	n = first_cmd(b, ID_A, ZERO, "refs/heads/agent/x");
	memcpy(b + n, "0000", 4);
	n += 4;
	expect_status("delete only", b, n, GITPKT_DONE, NULL, 0);
	p = parse_whole(b, n, &st, &used);
	assert_int_equal(gitpkt_push_list(p)->pack, 0);
	assert_int_equal(gitpkt_push_list(p)->end, n);
	assert_int_equal(gitpkt_push_list(p)->commands[0].deletes, 1);
	assert_int_equal(gitpkt_push_feed(p, "x", 1, &used), GITPKT_ERROR);
	assert_int_equal(gitpkt_push_list(p)->error_at, n);
	gitpkt_push_free(p);
	/* A pack after deletes only: git never sends one. */
	memcpy(b + n, PACK_HDR, 8);
	expect_status("delete then pack", b, n + 8, GITPKT_ERROR,
	              "deletes only", n);
}

static void
test_push_pack(void **state)
{
	char b[1024];
	size_t n, end, used;
	enum gitpkt_status st;
	struct gitpkt_push *p;

	(void)state;
	n = first_cmd(b, ZERO, ID_A, "refs/heads/agent/x");
	memcpy(b + n, "0000", 4);
	end = n + 4;
	/* The list alone, and each part of the pack's header: need more. */
	for (size_t k = 0; k < 8; k++) {
		memcpy(b + end, PACK_HDR, k);
		expect_status("partial pack header", b, end + k,
		              GITPKT_NEED_MORE, NULL, 0);
	}
	memcpy(b + end, PACK_HDR "\0\0\0\1rest of the pack", 28);
	expect_status("pack v2", b, end + 28, GITPKT_DONE, NULL, 0);
	p = parse_whole(b, end + 28, &st, &used);
	assert_int_equal(st, GITPKT_DONE);
	assert_int_equal(used, end + 8);
	assert_int_equal(gitpkt_push_list(p)->end, end);
	assert_int_equal(gitpkt_push_list(p)->pack, 1);
	/* The rest is pack data, not read. */
	assert_int_equal(gitpkt_push_feed(p, "0000", 4, &used), GITPKT_DONE);
	assert_int_equal(used, 0);
	gitpkt_push_free(p);
	b[end + 7] = 3;
	expect_status("pack v3", b, end + 8, GITPKT_DONE, NULL, 0);
	b[end + 7] = 4;
	expect_status("pack v4", b, end + 8, GITPKT_ERROR, "other than a pack",
	              end);
	b[end + 7] = 2;
	b[end] = 'p';
	expect_status("pack lowercase", b, end + 8, GITPKT_ERROR,
	              "other than a pack", end);
	/* A second command list after the flush. */
	n = end + first_cmd(b + end, ZERO, ID_A, "refs/heads/main");
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("second list", b, n + 12, GITPKT_ERROR,
	              "other than a pack", end);
	/* A second flush. */
	memcpy(b + end, "0000" PACK_HDR, 12);
	expect_status("second flush", b, end + 12, GITPKT_ERROR,
	              "other than a pack", end);
}

static void
test_push_options(void **state)
{
	static const char caps[] = " report-status push-options";
	char b[1024], line[256];
	size_t n, end, list;
	int k;

	(void)state;
	k = snprintf(line, sizeof(line), "%s %s %s", ZERO, ID_A,
	             "refs/heads/agent/x");
	memcpy(line + k + 1, caps, sizeof(caps));
	n = pkt(b, line, (size_t)k + sizeof(caps));
	memcpy(b + n, "0000", 4);
	list = n + 4;
	n = list + pkt_str(b + list, "ci.skip");
	n += pkt_str(b + n, "merge_request.title=Hello world\n");
	memcpy(b + n, "0000" PACK_HDR, 12);
	end = n + 4;
	expect_status("options", b, n + 12, GITPKT_DONE, NULL, 0);
	{
		enum gitpkt_status st;
		size_t used;
		struct gitpkt_push *p = parse_whole(b, n + 12, &st, &used);

		assert_int_equal(gitpkt_push_list(p)->noptions, 2);
		assert_int_equal(gitpkt_push_list(p)->end, end);
		gitpkt_push_free(p);
	}
	/* No options, just their flush. */
	memcpy(b + list, "0000" PACK_HDR, 12);
	expect_status("no options", b, list + 12, GITPKT_DONE, NULL, 0);
	/* Options without their flush: the pack is not a pkt-line. */
	n = list + pkt_str(b + list, "ci.skip");
	memcpy(b + n, PACK_HDR, 8);
	expect_status("options unflushed", b, n + 8, GITPKT_ERROR,
	              "four lowercase hex", n);
	/* Bad options. */
	n = list + pkt_str(b + list, "\n");
	memcpy(b + n, "0000", 4);
	expect_status("empty option", b, n + 4, GITPKT_ERROR, "empty push",
	              list);
	n = list + pkt_str(b + list, "a\tb");
	memcpy(b + n, "0000", 4);
	expect_status("option with a tab", b, n + 4, GITPKT_ERROR,
	              "push option", list);
	n = list + pkt_str(b + list, "caf\xc3\xa9");
	memcpy(b + n, "0000", 4);
	expect_status("option not ASCII", b, n + 4, GITPKT_ERROR, "push option",
	              list);
	n = list + pkt(b + list, "a\0b", 3);
	memcpy(b + n, "0000", 4);
	expect_status("option with a NUL", b, n + 4, GITPKT_ERROR,
	              "push option", list);
}

static void
test_push_shallow(void **state)
{
	char b[1024];
	size_t n, at;

	(void)state;
	n = pkt_str(b, "shallow " ID_A "\n");
	n += pkt_str(b + n, "shallow " ID_B);
	n += first_cmd(b + n, ID_A, ID_B, "refs/heads/main");
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("two shallow", b, n + 12, GITPKT_DONE, NULL, 0);
	/* After a command. */
	n = first_cmd(b, ID_A, ID_B, "refs/heads/main");
	at = n;
	n += pkt_str(b + n, "shallow " ID_A "\n");
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("shallow after command", b, n + 12, GITPKT_ERROR,
	              "shallow line after", at);
	/* Bad ids. */
	n = pkt_str(b, "shallow " ID_A "0\n");
	expect_status("shallow 41", b, n, GITPKT_ERROR, "shallow", 0);
	n = pkt_str(b, "shallow 1A77D8970AF25A2515D52612280855D3E582215F\n");
	expect_status("shallow upper", b, n, GITPKT_ERROR, "shallow", 0);
	n = pkt_str(b, "shallow  " ID_A);
	expect_status("shallow two spaces", b, n, GITPKT_ERROR, "shallow", 0);
	/* A SHA-256 shallow root in a SHA-1 push. */
	n = pkt_str(b, "shallow " ID64 "\n");
	at = n;
	n += first_cmd(b + n, ID_A, ID_B, "refs/heads/main");
	expect_status("shallow sha256, push sha1", b, n, GITPKT_ERROR,
	              "object format", at);
}

/* Bodies refused at a length. */
static void
test_push_bad_lengths(void **state)
{
	static const struct {
		const char *body, *error;
	} t[] = {
	    {"00g0", "four lowercase hex"},
	    {"00B2", "four lowercase hex"},
	    {" 0b2", "four lowercase hex"},
	    {"+0b2", "four lowercase hex"},
	    {"0x12", "four lowercase hex"},
	    {"0001", "delim"},
	    {"0002", "delim"},
	    {"0003", "delim"},
	    {"0004", "empty pkt-line"},
	    {"fff1", "longer than 65520"},
	    {"ffff", "longer than 65520"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++)
		expect_status(t[i].body, t[i].body, 4, GITPKT_ERROR, t[i].error,
		              0);
	/* The first byte that is not a digit is enough. */
	expect_status("G", "G", 1, GITPKT_ERROR, "four lowercase hex", 0);
}

/* First commands refused, as the payload of the body's first pkt-line. */
static void
test_push_bad_commands(void **state)
{
#define CMD(old, new, ref) old " " new " " ref
	static const struct {
		const char *what, *payload, *error;
	} t[] = {
	    {"short", "abcdef", "not old-id SP new-id"},
	    {"no ref", CMD(ZERO, ID_A, ""), "not old-id"},
	    {"short id",
	     CMD("000000000000000000000000000000000000000", ID_A, "refs/x"),
	     "not old-id"},
	    {"long id", CMD(ZERO "0", ID_A, "refs/x"), "not old-id"},
	    {"upper id",
	     CMD("1A77D8970AF25A2515D52612280855D3E582215F", ID_A, "refs/x"),
	     "lowercase hex"},
	    {"non-hex id",
	     CMD(ID_A, "1g77d8970af25a2515d52612280855d3e582215f", "refs/x"),
	     "lowercase hex"},
	    {"both zero", CMD(ZERO, ZERO, "refs/x"), "both ids zero"},
	    {"tab", ZERO "\t" ID_A " refs/x", "not old-id"},
	    {"two spaces", CMD(ZERO, ID_A, " refs/x"), "ref name"},
	    {"sha256 ids, no object-format", CMD(Z64, ID64, "refs/x"),
	     "not old-id"},
	    {"ref ..", CMD(ZERO, ID_A, "refs/heads/a..b"), "ref name"},
	    {"ref control", CMD(ZERO, ID_A, "refs/heads/a\x01z"), "ref name"},
	    {"ref DEL", CMD(ZERO, ID_A, "refs/heads/a\x7f"), "ref name"},
	    {"ref CR", CMD(ZERO, ID_A, "refs/heads/ab\r"), "ref name"},
	    {"ref two LF", CMD(ZERO, ID_A, "refs/heads/ab\n\n"), "ref name"},
	    {"ref space", CMD(ZERO, ID_A, "refs/heads/a b"), "ref name"},
	    {"ref trailing /", CMD(ZERO, ID_A, "refs/heads/"), "ref name"},
	    {"ref not refs/", CMD(ZERO, ID_A, "HEAD"), "ref name"},
	    {"ref @{", CMD(ZERO, ID_A, "refs/heads/a@{1}"), "ref name"},
	    {"ref .lock", CMD(ZERO, ID_A, "refs/heads/main.lock"), "ref name"},
	    {"ref glob", CMD(ZERO, ID_A, "refs/heads/*"), "ref name"},
	    {"LF", "\n", "not old-id"},
	};
	char b[512];

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		size_t n = pkt_str(b, t[i].payload);

		memcpy(b + n, "0000" PACK_HDR, 12);
		expect_status(t[i].what, b, n + 12, GITPKT_ERROR, t[i].error,
		              0);
	}
	/* A signed push. */
	expect_status("push-cert", "0014push-cert\0 a=b\n", 20, GITPKT_ERROR,
	              "push-cert", 0);
#undef CMD
}

static void
test_push_second_command(void **state)
{
	char b[1024];
	size_t n, at;

	(void)state;
	n = first_cmd(b, ZERO, ID_A, "refs/heads/agent/x");
	at = n;
	n += pkt_str(b + n, ID_A " " ID_B " refs/heads/agent/y\n");
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("two commands", b, n + 12, GITPKT_DONE, NULL, 0);
	/* A NUL after the first command: receive-pack would read the ref
	 * up to it and drop the rest; we refuse. */
	n = at + pkt(b + at, ID_A " " ID_B " refs/heads/agent/y\0x",
	             sizeof(ID_A " " ID_B " refs/heads/agent/y\0x") - 1);
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("NUL in a later command", b, n + 12, GITPKT_ERROR,
	              "NUL in a command", at);
	/* Ids of another length than the first command's. */
	n = at + pkt_str(b + at, ID_A "0 " ID_B "0 refs/heads/agent/y");
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("longer ids", b, n + 12, GITPKT_ERROR, NULL, at);
}

static void
test_push_capabilities(void **state)
{
	char b[1024], line[512];
	size_t n;
	int k;
	const struct {
		const char *caps;
		enum gitpkt_status st;
		unsigned want;
	} t[] = {
	    {"", GITPKT_DONE, 0},
	    {" ", GITPKT_DONE, 0},
	    {"report-status", GITPKT_DONE, GITPKT_CAP_REPORT_STATUS},
	    {"  report-status  side-band ", GITPKT_DONE,
	     GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_SIDE_BAND},
	    {" report-status-v2 side-band-64k quiet atomic push-options",
	     GITPKT_DONE,
	     GITPKT_CAP_REPORT_STATUS_V2 | GITPKT_CAP_SIDE_BAND_64K |
	         GITPKT_CAP_QUIET | GITPKT_CAP_ATOMIC |
	         GITPKT_CAP_PUSH_OPTIONS},
	    /* Near misses are not capabilities. */
	    {" report-statusx side-band-64 Report-Status", GITPKT_DONE, 0},
	    {" object-format=sha1", GITPKT_DONE, 0},
	    {" object-format=sha256", GITPKT_ERROR, 0},
	    {" object-format=md5", GITPKT_ERROR, 0},
	    {" agent=a\tb", GITPKT_ERROR, 0},
	    {" agent=caf\xc3\xa9", GITPKT_ERROR, 0},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		enum gitpkt_status st;
		size_t used;
		struct gitpkt_push *p;
		const char *push_options_flush =
		    strstr(t[i].caps, "push-options") ? "0000" : "";

		k = snprintf(line, sizeof(line), "%s %s %s", ZERO, ID_A,
		             "refs/heads/x");
		line[k] = '\0';
		memcpy(line + k + 1, t[i].caps, strlen(t[i].caps));
		n = pkt(b, line, (size_t)k + 1 + strlen(t[i].caps));
		n += (size_t)sprintf(b + n, "0000%s", push_options_flush);
		memcpy(b + n, PACK_HDR, 8);
		p = parse_whole(b, n + 8, &st, &used);
		if (st != t[i].st || (st == GITPKT_DONE &&
		                      gitpkt_push_list(p)->caps != t[i].want))
			fail_msg("caps \"%s\": status %d caps %#x", t[i].caps,
			         st, gitpkt_push_list(p)->caps);
		if (st == GITPKT_DONE)
			assert_string_equal(gitpkt_push_list(p)->capabilities,
			                    t[i].caps);
		gitpkt_push_free(p);
	}
	/* No NUL at all: no capabilities, SHA-1. */
	n = pkt_str(b, ZERO " " ID_A " refs/heads/x\n");
	memcpy(b + n, "0000" PACK_HDR, 12);
	expect_status("no capabilities", b, n + 12, GITPKT_DONE, NULL, 0);
	/* SHA-256 ids under object-format=sha256. */
	{
		n = first_cmd_caps(b, Z64, ID64, "refs/heads/x",
		                   " object-format=sha256");
		memcpy(b + n, "0000" PACK_HDR, 12);
		expect_status("sha256", b, n + 12, GITPKT_DONE, NULL, 0);
	}
}

/*
 * A list of push options that ends at body offset list_end (a multiple of
 * nothing in particular), its last option sized to get there, then the
 * options' flush and a pack header.  Returns the offset of the last
 * option's pkt-line; *len is the body's length.
 */
static size_t
fill_options(char *b, size_t list_end, size_t *len)
{
	static char pad[1024];
	size_t n, last;

	memset(pad, 'a', sizeof(pad));
	n = first_cmd_caps(b, ZERO, ID_A, "refs/heads/x",
	                   " report-status push-options");
	memcpy(b + n, "0000", 4);
	n += 4;
	/* Options of 200 bytes, then one of 200 to 408 to end there. */
	while (n + 2 * (4 + 200) + 4 <= list_end)
		n += pkt(b + n, pad, 200);
	last = n;
	n += pkt(b + n, pad, list_end - 4 - n - 4);
	assert_int_equal(n, list_end - 4);
	memcpy(b + n, "0000" PACK_HDR, 12);
	*len = n + 12;
	return last;
}

/* 64 KiB of list, exactly: pushed options count, though not kept. */
static void
test_push_list_limit(void **state)
{
	char *b = malloc(GITPKT_LIST_MAX + 16);
	size_t len, used;
	enum gitpkt_status st;
	struct gitpkt_push *p;

	(void)state;
	assert_non_null(b);
	fill_options(b, GITPKT_LIST_MAX, &len);
	p = parse_whole(b, len, &st, &used);
	if (st != GITPKT_DONE)
		fail_msg("at the limit: %s", gitpkt_push_list(p)->error);
	assert_int_equal(gitpkt_push_list(p)->end, GITPKT_LIST_MAX);
	gitpkt_push_free(p);
	free(b);
}

/* One byte more: refused at the length that goes past the limit. */
static void
test_push_list_over(void **state)
{
	char *b = malloc(GITPKT_LIST_MAX + 16);
	size_t len, last;

	(void)state;
	assert_non_null(b);
	/* The options' flush ends a byte past it. */
	fill_options(b, GITPKT_LIST_MAX + 1, &len);
	expect_status("flush over", b, len, GITPKT_ERROR, "longer than 64 KiB",
	              GITPKT_LIST_MAX - 3);
	/* The last option ends a byte past it: refused at its length,
	 * before its payload comes. */
	last = fill_options(b, GITPKT_LIST_MAX + 5, &len);
	expect_status("option over", b, len, GITPKT_ERROR, "longer than 64 KiB",
	              last);
	expect_status("option over, its length only", b, last + 4, GITPKT_ERROR,
	              "longer than 64 KiB", last);
	free(b);
}

/* GITPKT_COMMANDS_MAX commands, and one more. */
static void
test_push_commands_limit(void **state)
{
	char *b = malloc(GITPKT_LIST_MAX);
	size_t n, last = 0;
	enum gitpkt_status st;
	size_t used;
	struct gitpkt_push *p;
	char line[128];

	(void)state;
	assert_non_null(b);
	n = first_cmd(b, ZERO, ID_A, "refs/x/0");
	for (int i = 1; i <= GITPKT_COMMANDS_MAX; i++) {
		int k =
		    snprintf(line, sizeof(line), ZERO " " ID_A " refs/x/%d", i);
		if (i == GITPKT_COMMANDS_MAX)
			last = n;
		n += pkt(b + n, line, (size_t)k);
	}
	memcpy(b + n, "0000" PACK_HDR, 12);
	assert_true(n + 12 <= GITPKT_LIST_MAX);
	p = parse_whole(b, n + 12, &st, &used);
	assert_int_equal(st, GITPKT_ERROR);
	assert_string_equal(gitpkt_push_list(p)->error,
	                    "more than 500 commands");
	assert_int_equal(gitpkt_push_list(p)->error_at, last);
	gitpkt_push_free(p);
	/* Without the last one: exactly the limit. */
	memcpy(b + last, "0000" PACK_HDR, 12);
	p = parse_whole(b, last + 12, &st, &used);
	assert_int_equal(st, GITPKT_DONE);
	assert_int_equal(gitpkt_push_list(p)->ncommands, GITPKT_COMMANDS_MAX);
	assert_string_equal(
	    gitpkt_push_list(p)->commands[GITPKT_COMMANDS_MAX - 1].ref,
	    "refs/x/499");
	gitpkt_push_free(p);
	free(b);
}

/* ---- The refusal's framing ---- */

/* Undo side-band: the channel-1 data, checking every packet. */
static size_t
demux(const char *body, size_t len, size_t max_pkt, char *out)
{
	size_t i = 0, o = 0;

	for (;;) {
		char hex[5] = {0};
		unsigned long n;

		assert_true(i + 4 <= len);
		memcpy(hex, body + i, 4);
		n = strtoul(hex, NULL, 16);
		if (n == 0) {
			assert_int_equal(i + 4, len);
			return o;
		}
		assert_true(n >= 6 && n <= max_pkt && i + n <= len);
		assert_int_equal(body[i + 4], 1);
		memcpy(out + o, body + i + 5, n - 5);
		o += n - 5;
		i += n;
	}
}

static void
test_push_refusal_framing(void **state)
{
	static const char *const many_refs[] = {
	    "refs/heads/team-1/feature/*", "refs/heads/team-2/feature/*",
	    "refs/heads/team-3/feature/*", "refs/heads/team-4/feature/*",
	    "refs/heads/team-5/feature/*", "refs/heads/team-6/feature/*",
	    "refs/heads/team-7/feature/*", "refs/heads/team-8/feature/*",
	    "refs/heads/team-9/feature/*", "refs/heads/team-10/feature/*",
	};
	struct gitpkt_ref_rules rules = {many_refs, NELEM(many_refs), 0, 0};
	const unsigned modes[] = {
	    GITPKT_CAP_REPORT_STATUS,
	    GITPKT_CAP_REPORT_STATUS_V2,
	    GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_SIDE_BAND_64K,
	    GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_SIDE_BAND,
	    GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_SIDE_BAND |
	        GITPKT_CAP_SIDE_BAND_64K,
	    GITPKT_CAP_SIDE_BAND_64K,
	    0,
	};
	struct gitpkt_command *cmds = calloc(400, sizeof(*cmds));
	enum gitpkt_verdict *v = calloc(400, sizeof(*v));
	char(*refs)[32] = calloc(400, 32);
	size_t bufsize = 1 << 20;
	char *plain = malloc(bufsize), *body = malloc(bufsize);
	char *data = malloc(bufsize);
	size_t plain_len = 0;

	(void)state;
	assert_true(cmds && v && refs && plain && body && data);
	for (size_t i = 0; i < 400; i++) {
		snprintf(refs[i], 32, "refs/heads/many/%zu", i);
		cmds[i] = command(ZERO, ID_A, refs[i]);
		v[i] = GITPKT_REF_NOT_MATCHED;
	}
	for (size_t m = 0; m < NELEM(modes); m++) {
		struct gitpkt_list l = {cmds, 400, modes[m], "",   0,
		                        0,    1,   0,        NULL, 0};
		size_t n = gitpkt_push_refusal(&l, &rules, v, body, bufsize);

		if (!(modes[m] & (GITPKT_CAP_REPORT_STATUS |
		                  GITPKT_CAP_REPORT_STATUS_V2))) {
			/* No report asked for: answer 403 instead. */
			assert_int_equal(n, 0);
			continue;
		}
		assert_true(n > 0 && n <= bufsize);
		if (!(modes[m] &
		      (GITPKT_CAP_SIDE_BAND | GITPKT_CAP_SIDE_BAND_64K))) {
			/* The report: pkt-lines, a flush; more than 64 KiB
			 * of them. */
			memcpy(plain, body, n);
			plain_len = n;
			assert_true(n > 65520 + 1000);
			assert_memory_equal(body, "000eunpack ok\n", 14);
			assert_memory_equal(body + n - 4, "0000", 4);
			continue;
		}
		/* Side-band: channel 1 packets of at most 65520 (64k) or
		 * 1000 bytes, holding the report, then a flush. */
		{
			size_t max =
			    modes[m] & GITPKT_CAP_SIDE_BAND_64K ? 65520 : 1000;
			size_t d = demux(body, n, max, data);

			assert_int_equal(d, plain_len);
			assert_memory_equal(data, plain, d);
			/* Full packets but the last. */
			assert_memory_equal(
			    body, max == 65520 ? "fff0\001" : "03e8\001", 5);
		}
	}
	free(cmds);
	free(v);
	free(refs);
	free(plain);
	free(body);
	free(data);
}

static void
test_push_new_free(void **state)
{
	struct gitpkt_push *p = gitpkt_push_new();
	size_t used = 99;

	(void)state;
	assert_non_null(p);
	assert_int_equal(gitpkt_push_feed(p, "", 0, &used), GITPKT_NEED_MORE);
	assert_int_equal(used, 0);
	assert_string_equal(gitpkt_push_list(p)->capabilities, "");
	assert_null(gitpkt_push_list(p)->error);
	gitpkt_push_free(p);
	gitpkt_push_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_service_name),
	    cmocka_unit_test(test_repo_pattern_check),
	    cmocka_unit_test(test_repo_match),
	    cmocka_unit_test(test_repo_match_any),
	    cmocka_unit_test(test_classify_then_match),
	    cmocka_unit_test(test_repo_refusal),
	    cmocka_unit_test(test_ref_valid),
	    cmocka_unit_test(test_ref_pattern),
	    cmocka_unit_test(test_ref_check),
	    cmocka_unit_test(test_ref_reason),
	    cmocka_unit_test(test_push_captures),
	    cmocka_unit_test(test_push_refusal_golden),
	    cmocka_unit_test(test_push_probe),
	    cmocka_unit_test(test_push_delete_only),
	    cmocka_unit_test(test_push_pack),
	    cmocka_unit_test(test_push_options),
	    cmocka_unit_test(test_push_shallow),
	    cmocka_unit_test(test_push_bad_lengths),
	    cmocka_unit_test(test_push_bad_commands),
	    cmocka_unit_test(test_push_second_command),
	    cmocka_unit_test(test_push_capabilities),
	    cmocka_unit_test(test_push_list_limit),
	    cmocka_unit_test(test_push_list_over),
	    cmocka_unit_test(test_push_commands_limit),
	    cmocka_unit_test(test_push_refusal_framing),
	    cmocka_unit_test(test_push_new_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
