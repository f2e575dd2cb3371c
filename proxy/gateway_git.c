#include "gateway_git.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitpkt.h"
#include "log.h"

/* The route's push rules as gitpkt takes them. */
static struct gitpkt_ref_rules
ref_rules(const struct route_git *g)
{
	struct gitpkt_ref_rules r = {
	    .refs = (const char *const *)g->refs,
	    .nrefs = g->nrefs,
	    .allow_delete = g->allow_delete,
	    .allow_tags = g->allow_tags,
	};

	return r;
}

/* The refusal git shows, without its newline, as the request's detail. */
static void
repo_refused(struct request *r, enum gitpkt_service s, const char *repo,
             size_t len)
{
	size_t n = gitpkt_repo_refusal(s, repo, len, r->detail,
	                               sizeof(r->detail));

	if (n > 0 && n < sizeof(r->detail) && r->detail[n - 1] == '\n')
		r->detail[n - 1] = '\0';
}

enum reason
gateway_git_decide(struct conn *c, const struct route_target *t,
                   const char *rest, size_t rest_len)
{
	struct request *r = &c->r;
	const struct route_git *g = &r->route->git;
	struct gitpkt_request q;
	const char *const *patterns;
	size_t npatterns;

	if (rest_len == 0) {
		rest = "/";
		rest_len = 1;
	}
	if (gitpkt_classify(r->method, rest, rest_len, t->query, t->query_len,
	                    &q) == GITPKT_OTHER) {
		/* Not git's smart HTTP: only what a path rule names. */
		if (r->route->match.nrules > 0 &&
		    route_allows(&r->route->match, r->method, rest, rest_len))
			return REASON_ALLOWED;
		snprintf(r->detail, sizeof(r->detail),
		         "not a git fetch or push this route's git rules "
		         "cover, and no allow rule names it");
		return REASON_PATH_NOT_ALLOWED;
	}
	if (!(r->git_repo = strndup(q.repo, q.repo_len)))
		return REASON_INTERNAL_ERROR;
	r->git_service = gitpkt_service_name(q.service);
	if (q.service == GITPKT_UPLOAD_PACK) {
		patterns = (const char *const *)g->fetch;
		npatterns = g->nfetch;
	} else {
		patterns = (const char *const *)g->push;
		npatterns = g->npush;
	}
	if (!gitpkt_repo_match_any(patterns, npatterns, q.repo, q.repo_len)) {
		repo_refused(r, q.service, q.repo, q.repo_len);
		return REASON_REPO_NOT_ALLOWED;
	}
	if (q.kind == GITPKT_RPC && q.service == GITPKT_RECEIVE_PACK) {
		/* The command list is read as the client sent it: git never
		 * compresses a push, and a coded one cannot be checked. */
		if (http_field_get(r->req, "content-encoding")) {
			snprintf(r->detail, sizeof(r->detail),
			         "a push body with a Content-Encoding");
			return REASON_BAD_PKT_LINE;
		}
		if (!(r->git_push = gitpkt_push_new()))
			return REASON_INTERNAL_ERROR;
	}
	return REASON_ALLOWED;
}

/* One log line per command of a push: the ref, both ids, the verdict. */
static void
log_commands(const struct conn *c, const struct gitpkt_list *l,
             const struct gitpkt_ref_rules *rules,
             const enum gitpkt_verdict *v, size_t refused)
{
	char why[GITPKT_REASON_MAX];
	struct log_line line;

	for (size_t i = 0; i < l->ncommands; i++) {
		const struct gitpkt_command *cmd = &l->commands[i];

		request_log_begin(&line, c, "git_ref");
		log_str(&line, "ref", cmd->ref);
		log_str(&line, "old", cmd->old_id);
		log_str(&line, "new", cmd->new_id);
		log_str(&line, "verdict", v[i] == GITPKT_REF_OK && refused == 0
		                              ? "allow"
		                              : "deny");
		if (v[i] != GITPKT_REF_OK || refused > 0)
			log_str(&line, "message",
			        gitpkt_ref_reason(v[i], rules, why, sizeof(why)));
		log_end(&line);
	}
}

/* A push with a refused ref: the detail names the first one, and git gets
 * the report-status that refuses every ref (or, when it asked for none,
 * the table's 403). */
static enum reason
refuse_push(struct conn *c, const struct gitpkt_list *l,
            const struct gitpkt_ref_rules *rules, const enum gitpkt_verdict *v)
{
	struct request *r = &c->r;
	char why[GITPKT_REASON_MAX];
	size_t n;

	for (size_t i = 0; i < l->ncommands; i++)
		if (v[i] != GITPKT_REF_OK) {
			snprintf(r->detail, sizeof(r->detail), "%s: %s",
			         l->commands[i].ref,
			         gitpkt_ref_reason(v[i], rules, why, sizeof(why)));
			break;
		}
	n = gitpkt_push_refusal(l, rules, v, NULL, 0);
	if (n > 0 && (r->reply = malloc(n))) {
		gitpkt_push_refusal(l, rules, v, r->reply, n);
		r->reply_len = n;
		r->reply_status = 200;
		r->reply_type = GITPKT_RESULT_TYPE;
	}
	return REASON_REF_NOT_ALLOWED;
}

/* The push's inspection: read the command list, decide every ref, and
 * only then let the request (head, list, pack) go to the server. */
static int
push_inspect(void *arg, const unsigned char *buf, size_t len, int final,
             enum reason *why)
{
	struct conn *c = arg;
	struct request *r = &c->r;
	const struct gitpkt_list *l;
	struct gitpkt_ref_rules rules = ref_rules(&r->route->git);
	enum gitpkt_verdict *v;
	enum gitpkt_status st;
	size_t used = 0, refused;

	st = gitpkt_push_feed(r->git_push, buf + r->git_fed, len - r->git_fed,
	                      &used);
	r->git_fed += used;
	l = gitpkt_push_list(r->git_push);
	switch (st) {
	case GITPKT_NEED_MORE:
		if (!final)
			return 0;
		snprintf(r->detail, sizeof(r->detail),
		         "the body ended inside the command list");
		*why = REASON_BAD_PKT_LINE;
		return -1;
	case GITPKT_PROBE:
		/* git's "0000" before a large push: nothing to decide. */
		if (final != FORWARD_INSPECT_END)
			return 0;
		proxy_allowed(c);
		return 1;
	case GITPKT_ERROR:
		snprintf(r->detail, sizeof(r->detail), "%s",
		         l->error ? l->error : "malformed command list");
		*why = REASON_BAD_PKT_LINE;
		return -1;
	case GITPKT_DONE:
		break;
	}
	if (!(v = calloc(l->ncommands + 1, sizeof(*v))))
		return -1;
	refused = gitpkt_push_check(l, &rules, v);
	log_commands(c, l, &rules, v, refused);
	if (refused > 0) {
		*why = refuse_push(c, l, &rules, v);
		free(v);
		return -1;
	}
	free(v);
	proxy_allowed(c);
	return 1;
}

void
gateway_git_hooks(struct conn *c, struct proxy_hooks *h)
{
	if (!c->r.git_push)
		return;
	h->inspect = push_inspect;
	h->inspect_max = GITPKT_HOLD_MAX;
	h->arg = c;
}
