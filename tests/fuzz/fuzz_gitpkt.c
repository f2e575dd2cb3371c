/*
 * fuzz_gitpkt: the receive-pack command-list parser (gitpkt.c) fed a push's
 * body, and the refusal built from what it accepted.  The whole input is
 * the body.  The parse must not depend on how the body is split: one call,
 * three pieces (cut at two points taken from the input's last four bytes)
 * and, up to 4 KiB, one byte at a time agree on the status and on all the
 * parser found, each piece in a heap buffer of its own exact size so that
 * any read past it is caught.  What is accepted holds up: every ref passes
 * gitpkt_ref_valid, ids are lowercase hex of one length, a list that ends
 * the body ends at its end, a pack starts with its header, and a walk over
 * the list's pkt-lines written from pack-protocol.txt finds the same
 * shallow lines, commands and push options.  The refusal of an accepted
 * list is well-formed pkt-lines (side-band or not) naming every ref in
 * order.  The same bytes as a request path go through gitpkt_classify: a
 * repository found lies in the path and, written with ".git", is a pattern
 * that matches it.
 */
#include "fuzz.h"
#include "gitpkt.h"

struct outcome {
	enum gitpkt_status st;
	size_t used; /* input bytes read */
	struct gitpkt_push *p;
};

/* Parse the body in the pieces that the sorted cut points make. */
static struct outcome
parse(const uint8_t *body, size_t n, const size_t *cuts, size_t ncuts)
{
	struct outcome o = {GITPKT_NEED_MORE, 0, gitpkt_push_new()};
	size_t off = 0;

	FUZZ_CHECK(o.p != NULL);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		size_t len = end - off, used = SIZE_MAX;
		char *piece = fuzz_dup(body + off, len);
		enum gitpkt_status st =
		    gitpkt_push_feed(o.p, piece, len, &used);

		free(piece);
		FUZZ_CHECK(used <= len);
		if (st == GITPKT_NEED_MORE)
			FUZZ_CHECK(used == len);
		/* A status other than NEED_MORE never goes back to it, and
		 * only ERROR follows DONE or PROBE. */
		if (o.st != GITPKT_NEED_MORE)
			FUZZ_CHECK(st == o.st || st == GITPKT_ERROR);
		/* A parser already done reads nothing more. */
		if (o.st == GITPKT_NEED_MORE || used > 0)
			o.used = off + used;
		o.st = st;
		off = end;
	}
	return o;
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
same_outcome(const struct outcome *a, const struct outcome *b)
{
	const struct gitpkt_list *x = gitpkt_push_list(a->p);
	const struct gitpkt_list *y = gitpkt_push_list(b->p);

	FUZZ_CHECK(a->st == b->st);
	FUZZ_CHECK(a->used == b->used);
	FUZZ_CHECK(x->ncommands == y->ncommands);
	FUZZ_CHECK(x->caps == y->caps);
	FUZZ_CHECK(strcmp(x->capabilities, y->capabilities) == 0);
	FUZZ_CHECK(x->nshallow == y->nshallow);
	FUZZ_CHECK(x->noptions == y->noptions);
	FUZZ_CHECK(x->pack == y->pack);
	FUZZ_CHECK(x->end == y->end);
	FUZZ_CHECK(same_str(x->error, y->error));
	FUZZ_CHECK(x->error_at == y->error_at);
	for (size_t i = 0; i < x->ncommands; i++) {
		const struct gitpkt_command *c = &x->commands[i];
		const struct gitpkt_command *d = &y->commands[i];

		FUZZ_CHECK(strcmp(c->old_id, d->old_id) == 0);
		FUZZ_CHECK(strcmp(c->new_id, d->new_id) == 0);
		FUZZ_CHECK(strcmp(c->ref, d->ref) == 0);
		FUZZ_CHECK(c->creates == d->creates);
		FUZZ_CHECK(c->deletes == d->deletes);
	}
}

static int
lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
zeros(const char *s)
{
	return strspn(s, "0") == strlen(s);
}

static void
check_command(const struct gitpkt_command *c, size_t hash_len)
{
	FUZZ_CHECK(strlen(c->old_id) == hash_len);
	FUZZ_CHECK(strlen(c->new_id) == hash_len);
	FUZZ_CHECK(lower_hex(c->old_id, hash_len));
	FUZZ_CHECK(lower_hex(c->new_id, hash_len));
	FUZZ_CHECK(c->creates == zeros(c->old_id));
	FUZZ_CHECK(c->deletes == zeros(c->new_id));
	FUZZ_CHECK(!(c->creates && c->deletes));
	FUZZ_CHECK(strlen(c->ref) == c->ref_len);
	FUZZ_CHECK(gitpkt_ref_valid(c->ref, c->ref_len));
	/* A valid ref is a pattern that matches itself, and only itself
	 * among refs one byte longer. */
	FUZZ_CHECK(gitpkt_ref_pattern_check(c->ref, NULL) == 0);
	FUZZ_CHECK(gitpkt_ref_match(c->ref, c->ref, c->ref_len));
	FUZZ_CHECK(!gitpkt_ref_match(c->ref, c->ref, c->ref_len - 1));
}

static size_t
hex4(const uint8_t *s)
{
	size_t v = 0;

	for (int i = 0; i < 4; i++) {
		int d = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
		        : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
		                                     : -1;
		FUZZ_CHECK(d >= 0);
		v = v << 4 | (size_t)d;
	}
	return v;
}

/*
 * A second reading of an accepted list, from pack-protocol.txt: pkt-lines
 * from the body's start to the list's end, "shallow" lines first, commands
 * up to a flush, with the push-options capability options up to a second
 * flush.  Counts what it finds.
 */
static void
walk_list(const uint8_t *b, const struct gitpkt_list *l, int probe)
{
	size_t i = 0, shallow = 0, commands = 0, options = 0, flushes = 0;
	size_t want_flushes =
	    1 + (!probe && (l->caps & GITPKT_CAP_PUSH_OPTIONS) != 0);

	while (flushes < want_flushes) {
		size_t n;

		FUZZ_CHECK(i + 4 <= l->end);
		n = hex4(b + i);
		if (n == 0) {
			flushes++;
			i += 4;
			continue;
		}
		FUZZ_CHECK(n > 4 && n <= 65520 && i + n <= l->end);
		if (flushes == 1)
			options++;
		else if (commands == 0 && n >= 12 &&
		         memcmp(b + i + 4, "shallow ", 8) == 0)
			shallow++;
		else
			commands++;
		i += n;
	}
	FUZZ_CHECK(i == l->end);
	FUZZ_CHECK(shallow == l->nshallow);
	FUZZ_CHECK(commands == l->ncommands);
	FUZZ_CHECK(options == l->noptions);
}

/* The channel-1 data of a side-band body, each packet checked. */
static size_t
demux(const char *body, size_t len, size_t max_pkt, char *out)
{
	size_t i = 0, o = 0;

	for (;;) {
		size_t n;

		FUZZ_CHECK(i + 4 <= len);
		n = hex4((const uint8_t *)body + i);
		if (n == 0) {
			FUZZ_CHECK(i + 4 == len);
			return o;
		}
		FUZZ_CHECK(n > 5 && n <= max_pkt && i + n <= len);
		FUZZ_CHECK(body[i + 4] == 1);
		memcpy(out + o, body + i + 5, n - 5);
		o += n - 5;
		i += n;
	}
}

/* The refusal: "unpack ok", an "ng <ref> egress policy: ..." line a
 * command in order, a flush; in side-band packets when asked for. */
static void
check_refusal(const struct gitpkt_list *l)
{
	static const char *const refs[] = {"refs/heads/agent/*",
	                                   "refs/heads/main"};
	struct gitpkt_ref_rules rules = {refs, 2, 0, 0};
	enum gitpkt_verdict *v = malloc(sizeof(*v) * (l->ncommands + 1));
	size_t n, m, r_len, i = 0;
	char *body, *report;

	FUZZ_CHECK(v != NULL);
	(void)gitpkt_push_check(l, &rules, v);
	n = gitpkt_push_refusal(l, &rules, v, NULL, 0);
	if (!(l->caps &
	      (GITPKT_CAP_REPORT_STATUS | GITPKT_CAP_REPORT_STATUS_V2))) {
		FUZZ_CHECK(n == 0);
		free(v);
		return;
	}
	body = malloc(n);
	report = malloc(n);
	FUZZ_CHECK(body != NULL && report != NULL);
	m = gitpkt_push_refusal(l, &rules, v, body, n);
	FUZZ_CHECK(m == n);
	if (l->caps & (GITPKT_CAP_SIDE_BAND | GITPKT_CAP_SIDE_BAND_64K)) {
		r_len = demux(body, n,
		              l->caps & GITPKT_CAP_SIDE_BAND_64K ? 65520 : 1000,
		              report);
	} else {
		memcpy(report, body, n);
		r_len = n;
	}
	for (size_t k = 0; k <= l->ncommands + 1; k++) {
		size_t len;

		FUZZ_CHECK(i + 4 <= r_len);
		len = hex4((const uint8_t *)report + i);
		if (k == l->ncommands + 1) {
			FUZZ_CHECK(len == 0 && i + 4 == r_len);
			break;
		}
		FUZZ_CHECK(len > 4 && len <= 65520 && i + len <= r_len);
		FUZZ_CHECK(report[i + len - 1] == '\n');
		if (k == 0) {
			FUZZ_CHECK(len == 14 && memcmp(report + i + 4,
			                               "unpack ok\n", 10) == 0);
		} else {
			const struct gitpkt_command *c = &l->commands[k - 1];

			FUZZ_CHECK(len > 8 + c->ref_len);
			FUZZ_CHECK(memcmp(report + i + 4, "ng ", 3) == 0);
			FUZZ_CHECK(memcmp(report + i + 7, c->ref, c->ref_len) ==
			           0);
			FUZZ_CHECK(memcmp(report + i + 7 + c->ref_len,
			                  " egress policy: ", 16) == 0);
			FUZZ_CHECK(memchr(report + i + 4, '\n', len - 5) ==
			           NULL);
		}
		i += len;
	}
	free(body);
	free(report);
	free(v);
}

static void
check_outcome(const uint8_t *data, size_t size, const struct outcome *o)
{
	const struct gitpkt_list *l = gitpkt_push_list(o->p);
	size_t hash_len = 0;

	FUZZ_CHECK(l->ncommands <= GITPKT_COMMANDS_MAX);
	for (size_t i = 0; i < l->ncommands; i++) {
		if (i == 0)
			hash_len = strlen(l->commands[0].old_id);
		FUZZ_CHECK(hash_len == 40 || hash_len == 64);
		check_command(&l->commands[i], hash_len);
	}
	switch (o->st) {
	case GITPKT_NEED_MORE:
		FUZZ_CHECK(o->used == size);
		FUZZ_CHECK(size < GITPKT_HOLD_MAX);
		FUZZ_CHECK(l->error == NULL);
		break;
	case GITPKT_PROBE:
		FUZZ_CHECK(l->ncommands == 0 && l->end == size);
		FUZZ_CHECK(o->used == size && l->error == NULL);
		walk_list(data, l, 1);
		break;
	case GITPKT_DONE:
		FUZZ_CHECK(l->error == NULL);
		FUZZ_CHECK(l->ncommands >= 1);
		FUZZ_CHECK(l->end <= GITPKT_LIST_MAX);
		if (l->pack) {
			FUZZ_CHECK(l->end + 8 <= size && o->used == l->end + 8);
			FUZZ_CHECK(memcmp(data + l->end, "PACK\0\0\0", 7) == 0);
			FUZZ_CHECK(data[l->end + 7] == 2 ||
			           data[l->end + 7] == 3);
		} else {
			FUZZ_CHECK(l->end == size && o->used == size);
			for (size_t i = 0; i < l->ncommands; i++)
				FUZZ_CHECK(l->commands[i].deletes);
		}
		walk_list(data, l, 0);
		check_refusal(l);
		break;
	case GITPKT_ERROR:
		FUZZ_CHECK(l->error != NULL && l->error[0] != '\0');
		FUZZ_CHECK(l->error_at < size);
		break;
	default:
		FUZZ_CHECK(0);
	}
}

/* The same bytes as a smart-HTTP path. */
static void
check_classify(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST"};
	static const char query[] = "service=git-receive-pack";
	char *path = fuzz_dup(data, size);

	for (size_t m = 0; m < 2; m++) {
		struct gitpkt_request r;
		enum gitpkt_kind k = gitpkt_classify(
		    methods[m], path, size, m == 0 ? query : NULL,
		    m == 0 ? sizeof(query) - 1 : 0, &r);
		char *repo;

		FUZZ_CHECK(k == r.kind);
		if (k == GITPKT_OTHER) {
			FUZZ_CHECK(r.repo == NULL && r.repo_len == 0);
			continue;
		}
		FUZZ_CHECK(r.service == GITPKT_RECEIVE_PACK ||
		           (m == 1 && r.service == GITPKT_UPLOAD_PACK));
		FUZZ_CHECK(k == (m == 0 ? GITPKT_INFO_REFS : GITPKT_RPC));
		FUZZ_CHECK(r.repo == path + 1);
		FUZZ_CHECK(r.repo_len >= 1 && r.repo_len < size);
		/* Written with ".git" (which a pattern may carry), the
		 * repository is a pattern that matches it. */
		repo = malloc(r.repo_len + 5);
		FUZZ_CHECK(repo != NULL);
		memcpy(repo, r.repo, r.repo_len);
		memcpy(repo + r.repo_len, ".git", 5);
		FUZZ_CHECK(gitpkt_repo_pattern_check(repo, NULL) == 0);
		FUZZ_CHECK(gitpkt_repo_match(repo, r.repo, r.repo_len));
		free(repo);
	}
	free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, pieces;
	size_t cuts[2] = {0, 0};

	whole = parse(data, size, NULL, 0);
	check_outcome(data, size, &whole);

	if (size >= 4) {
		cuts[0] =
		    ((size_t)data[size - 4] << 8 | data[size - 3]) % (size + 1);
		cuts[1] =
		    ((size_t)data[size - 2] << 8 | data[size - 1]) % (size + 1);
		if (cuts[0] > cuts[1]) {
			size_t t = cuts[0];
			cuts[0] = cuts[1];
			cuts[1] = t;
		}
	}
	pieces = parse(data, size, cuts, 2);
	same_outcome(&whole, &pieces);
	gitpkt_push_free(pieces.p);

	if (size <= 4096) {
		size_t one[4096];
		struct outcome bytes;

		for (size_t i = 0; i + 1 < size; i++)
			one[i] = i + 1;
		bytes = parse(data, size, one, size ? size - 1 : 0);
		same_outcome(&whole, &bytes);
		gitpkt_push_free(bytes.p);
	}
	gitpkt_push_free(whole.p);

	if (size <= 4096)
		check_classify(data, size);
	return 0;
}
