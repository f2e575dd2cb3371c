#include "config_gateway.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitpkt.h"
#include "host.h"
#include "metrics.h"

/* allow = [ "POST /v1/messages", "GET /v1/\*", "* /health" ] */
static int
load_allow(struct load *ld, const config_setting_t *e, void *arg)
{
	struct route *r = arg;
	const char *text = config_setting_get_string(e);
	const char *sp = strchr(text, ' ');
	struct route_target t;
	struct route_rule *rules, *rule;
	size_t mlen, plen;

	if (!sp)
		return load_fail(ld, e,
		                 "allow: \"%s\": expected \"METHOD /path\" "
		                 "(\"GET /v1/models\", \"POST /v1/*\")",
		                 text);
	mlen = (size_t)(sp - text);
	plen = strlen(sp + 1);
	char method[33];

	snprintf(method, sizeof(method), "%.*s", (int)mlen, text);
	if (mlen == 0 || mlen >= sizeof(method) ||
	    (strcmp(method, "*") != 0 && !config_valid_method(method)))
		return load_fail(ld, e,
		                 "allow: \"%s\": \"%.*s\" is not a method",
		                 text, (int)mlen, text);
	if (route_target_parse(sp + 1, plen, &t) < 0 || t.query)
		return load_fail(ld, e,
		                 "allow: \"%s\": the path must start with '/' "
		                 "and pass the gateway's path check (no '.' or "
		                 "'..' segments, no encoded '.', '/' or '\\', "
		                 "no query)",
		                 text);
	if (strchr(sp + 1, '*') &&
	    !(plen >= 2 && strcmp(sp + 1 + plen - 2, "/*") == 0 &&
	      !memchr(sp + 1, '*', plen - 1)))
		return load_fail(ld, e,
		                 "allow: \"%s\": '*' only as the last segment "
		                 "(\"/v1/*\")",
		                 text);
	if (!(rules = load_grow(ld, e, r->rules, r->nrules, sizeof(*rules))))
		return -1;
	r->rules = rules;
	rule = &r->rules[r->nrules];
	memset(rule, 0, sizeof(*rule));
	if (strcmp(method, "*") != 0 &&
	    !(rule->method = load_strdup(ld, e, method)))
		return -1;
	if (!(rule->path = load_strdup(ld, e, sp + 1))) {
		free(rule->method);
		return -1;
	}
	r->nrules++;
	return 0;
}

static const struct load_list_spec route_allow = {
    .key = "allow",
    .type = CONFIG_TYPE_STRING,
    .each = load_allow,
    .bad_count = "allow: empty list (leave it out to allow every method "
                 "and path)",
};

/* A field name as a token, stored lower-case. */
static int
load_header_name(struct load *ld, const config_setting_t *s, const char *name,
                 char **out)
{
	static const char *const refused[] = {"host",
	                                      "content-length",
	                                      "transfer-encoding",
	                                      "connection",
	                                      "upgrade",
	                                      "te",
	                                      "trailer",
	                                      "via",
	                                      "proxy-authorization",
	                                      "keep-alive",
	                                      NULL};

	if (!name || !*name || strlen(name) > 64)
		return load_fail(ld, s, "inject: header is required");
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
			return load_fail(ld, s,
			                 "inject: header \"%s\" is not a field "
			                 "name",
			                 name);
	for (const char *const *r = refused; *r; r++)
		if (strcasecmp(name, *r) == 0)
			return load_fail(
			    ld, s,
			    "inject: header \"%s\" is egressd's to "
			    "write; use x-api-key, authorization or "
			    "another field",
			    name);
	if (!(*out = load_strdup(ld, s, name)))
		return -1;
	for (char *p = *out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

/* inject = { header = "x-api-key"; secret = "/run/secrets/llm/key"; }
 * with scheme = "bearer" or "basic" (and user) for Authorization. */
static int
load_inject(struct load *ld, const config_setting_t *rs, struct config_route *r)
{
	static const char *const keys[] = {"header", "scheme", "user", "secret",
	                                   NULL};
	const config_setting_t *is = config_setting_get_member(rs, "inject");
	const char *header, *scheme, *user, *secret;
	char full[4096];

	if (!is)
		return 0;
	if (!load_is_group(is))
		return load_fail(ld, is,
		                 "inject: expected a group { header = ...; "
		                 "secret = ...; }");
	if (load_check_keys(ld, is, "inject", keys) < 0 ||
	    load_string(ld, is, "header", &header) < 0 ||
	    load_string(ld, is, "scheme", &scheme) < 0 ||
	    load_string(ld, is, "user", &user) < 0 ||
	    load_string(ld, is, "secret", &secret) < 0 ||
	    load_header_name(ld, is, header, &r->inject_header) < 0)
		return -1;
	if (!secret || !*secret)
		return load_fail(ld, is,
		                 "inject: secret (the file that holds the "
		                 "credential) is required");
	if (!scheme || strcmp(scheme, "plain") == 0)
		r->inject_scheme = INJECT_PLAIN;
	else if (strcmp(scheme, "bearer") == 0)
		r->inject_scheme = INJECT_BEARER;
	else if (strcmp(scheme, "basic") == 0)
		r->inject_scheme = INJECT_BASIC;
	else
		return load_fail(ld, config_setting_get_member(is, "scheme"),
		                 "inject: scheme \"%s\": expected \"plain\", "
		                 "\"bearer\" or \"basic\"",
		                 scheme);
	if ((r->inject_scheme == INJECT_BASIC) != (user != NULL))
		return load_fail(ld, is,
		                 "inject: user goes with scheme = \"basic\", "
		                 "and only with it");
	if (user) {
		if (!*user || strchr(user, ':') || strlen(user) > 128)
			return load_fail(
			    ld, config_setting_get_member(is, "user"),
			    "inject: user \"%s\": 1 to 128 bytes, no ':'",
			    user);
		for (const char *p = user; *p; p++)
			if ((unsigned char)*p <= 0x20 ||
			    (unsigned char)*p >= 0x7f)
				return load_fail(
				    ld, config_setting_get_member(is, "user"),
				    "inject: user: visible ASCII only");
		if (!(r->inject_user = load_strdup(ld, is, user)))
			return -1;
	}
	config_relative(ld, secret, full, sizeof(full));
	r->secret_path = load_strdup(ld, is, full);
	return r->secret_path ? 0 : -1;
}

/* git = { fetch = [ ... ]; push = [ ... ]; refs = [ ... ]; ... } */
static int
load_repo_pattern(struct load *ld, const config_setting_t *e, char ***list,
                  size_t *n)
{
	const char *text = config_setting_get_string(e), *why;

	if (gitpkt_repo_pattern_check(text, &why) < 0)
		return load_fail(ld, e,
		                 "git: repository \"%s\": %s (\"org/repo\", "
		                 "\"org/*\")",
		                 text, why);
	return load_add_string(ld, e, list, n, text);
}

static int
load_git_fetch(struct load *ld, const config_setting_t *e, void *arg)
{
	struct route_git *g = arg;

	return load_repo_pattern(ld, e, &g->fetch, &g->nfetch);
}

static int
load_git_push(struct load *ld, const config_setting_t *e, void *arg)
{
	struct route_git *g = arg;

	return load_repo_pattern(ld, e, &g->push, &g->npush);
}

static int
load_git_ref(struct load *ld, const config_setting_t *e, void *arg)
{
	struct route_git *g = arg;
	const char *text = config_setting_get_string(e), *why;

	if (gitpkt_ref_pattern_check(text, &why) < 0)
		return load_fail(ld, e,
		                 "git: refs: \"%s\": %s "
		                 "(\"refs/heads/agent/*\")",
		                 text, why);
	return load_add_string(ld, e, &g->refs, &g->nrefs, text);
}

static const struct load_list_spec git_fetch = {
    .key = "fetch", .type = CONFIG_TYPE_STRING, .each = load_git_fetch};
static const struct load_list_spec git_push = {
    .key = "push", .type = CONFIG_TYPE_STRING, .each = load_git_push};
static const struct load_list_spec git_refs = {
    .key = "refs", .type = CONFIG_TYPE_STRING, .each = load_git_ref};

static int
load_flag(struct load *ld, const config_setting_t *group, const char *key,
          int *out)
{
	const config_setting_t *s = config_setting_get_member(group, key);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return load_fail(ld, s, "git: %s: expected true or false", key);
	*out = config_setting_get_bool(s);
	return 0;
}

static int
load_git(struct load *ld, const config_setting_t *rs, struct config_route *r)
{
	static const char *const keys[] = {"fetch", "push", "refs",
	                                   "delete", "tags", NULL};
	const config_setting_t *gs = config_setting_get_member(rs, "git");
	struct route_git *g = &r->git;

	if (!gs)
		return 0;
	if (!load_is_group(gs))
		return load_fail(ld, gs,
		                 "git: expected a group { fetch = [ ... ]; "
		                 "push = [ ... ]; refs = [ ... ]; }");
	g->on = 1;
	if (load_check_keys(ld, gs, "git", keys) < 0 ||
	    load_list(ld, gs, &git_fetch, g) < 0 ||
	    load_list(ld, gs, &git_push, g) < 0 ||
	    load_list(ld, gs, &git_refs, g) < 0 ||
	    load_flag(ld, gs, "delete", &g->allow_delete) < 0 ||
	    load_flag(ld, gs, "tags", &g->allow_tags) < 0)
		return -1;
	if (g->npush > 0 && g->nrefs == 0 && !g->allow_tags)
		return load_fail(ld, gs,
		                 "git: push needs refs, the refs a push may "
		                 "change (refs = [ \"refs/heads/agent/*\" ])");
	if (g->npush == 0 && (g->nrefs > 0 || g->allow_delete || g->allow_tags))
		return load_fail(ld, gs,
		                 "git: refs, delete and tags are about pushes, "
		                 "and push lists no repository");
	return 0;
}

static const struct load_list_spec route_networks = {
    .key = "networks",
    .type = CONFIG_TYPE_STRING,
    .each = config_load_network,
    .bad_count = "networks: empty list",
};

/* The origin's address guard: one rule, named after the route, for the
 * origin's name and port (or, for an IP literal, the networks alone). */
static int
load_guard(struct load *ld, const config_setting_t *rs, struct config_route *r)
{
	struct policy *g = &r->guard;
	struct rule *rule;
	struct host h;

	if (!(g->rules = calloc(1, sizeof(*g->rules))))
		return load_fail(ld, rs, "out of memory");
	g->nrules = 1;
	g->mode = POLICY_ENFORCE;
	g->metrics_slot = -1;
	rule = &g->rules[0];
	rule->line = r->line;
	if (!(g->name = load_strdup(ld, rs, r->name)) ||
	    !(rule->name = load_strdup(ld, rs, r->name)))
		return -1;
	if (!(rule->ports = calloc(1, sizeof(*rule->ports))))
		return load_fail(ld, rs, "out of memory");
	rule->ports[rule->nports++] = r->match.port;
	if (load_list(ld, rs, &route_networks, rule) < 0)
		return -1;
	if (host_parse(r->match.host, strlen(r->match.host), 0, &h) == 0 &&
	    h.kind != HOST_NAME) {
		if (rule->networks.n == 0)
			return load_fail(ld, rs,
			                 "route \"%s\": an origin given by its "
			                 "address needs networks that hold it",
			                 r->name);
		return 0;
	}
	return load_add_string(ld, rs, &rule->hosts, &rule->nhosts,
	                       r->match.host);
}

static int
load_route(struct load *ld, const config_setting_t *rs, struct config_route *r)
{
	static const char *const keys[] = {
	    "name", "prefix", "origin", "ca", "allow", "inject", "networks", "git",
	    NULL};
	const char *name, *prefix, *origin, *ca, *why;
	struct route_target t;
	char full[4096];

	r->line = config_setting_source_line(rs);
	if (!load_is_group(rs))
		return load_fail(ld, rs,
		                 "routes: each route is a group { ... }");
	if (load_check_keys(ld, rs, "route", keys) < 0 ||
	    load_string(ld, rs, "name", &name) < 0 ||
	    load_string(ld, rs, "prefix", &prefix) < 0 ||
	    load_string(ld, rs, "origin", &origin) < 0 ||
	    load_string(ld, rs, "ca", &ca) < 0)
		return -1;
	if (!name || !prefix || !origin)
		return load_fail(ld, rs,
		                 "route: name, prefix and origin are required");
	if (!config_valid_name(name))
		return load_fail(ld, config_setting_get_member(rs, "name"),
		                 "name: \"%s\": use letters, digits, '-', '_' "
		                 "and '.'",
		                 name);
	if (!(r->name = load_strdup(ld, rs, name)))
		return -1;
	r->metrics_slot = metrics_route_slot(name);
	if (route_target_parse(prefix, strlen(prefix), &t) < 0 || t.query ||
	    strchr(prefix, '*') ||
	    (strlen(prefix) > 1 && prefix[strlen(prefix) - 1] == '/'))
		return load_fail(
		    ld, config_setting_get_member(rs, "prefix"),
		    "prefix: \"%s\": a path such as \"/anthropic\" "
		    "(no trailing '/', no '*', no query)",
		    prefix);
	if (!(r->match.prefix = load_strdup(ld, rs, prefix)))
		return -1;
	if ((why = route_origin_parse(origin, &r->match.host, &r->match.port,
	                              &r->match.base)))
		return load_fail(ld, config_setting_get_member(rs, "origin"),
		                 "origin: \"%s\": %s", origin, why);
	if (ca) {
		config_relative(ld, ca, full, sizeof(full));
		if (!(r->ca_file = load_strdup(ld, rs, full)))
			return -1;
	}
	if (load_list(ld, rs, &route_allow, &r->match) < 0 ||
	    load_inject(ld, rs, r) < 0 || load_guard(ld, rs, r) < 0 ||
	    load_git(ld, rs, r) < 0)
		return -1;
	return 0;
}

int
config_load_routes(struct load *ld, const config_setting_t *root,
                   struct config *c)
{
	const config_setting_t *rs = config_setting_get_member(root, "routes");
	int n;

	if (!rs)
		return 0;
	if (config_setting_type(rs) != CONFIG_TYPE_LIST)
		return load_fail(ld, rs, "routes: expected a list ( { ... } )");
	n = config_setting_length(rs);
	c->routes = calloc((size_t)n + 1, sizeof(*c->routes));
	c->route_match = calloc((size_t)n + 1, sizeof(*c->route_match));
	if (!c->routes || !c->route_match)
		return load_fail(ld, rs, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(rs, i);
		struct config_route *r = &c->routes[c->nroutes++];

		if (load_route(ld, e, r) < 0)
			return -1;
		c->route_match[i] = &r->match;
		for (int j = 0; j < i; j++) {
			if (strcmp(c->routes[j].name, r->name) == 0)
				return load_fail(ld, e,
				                 "route name \"%s\" is used "
				                 "twice",
				                 r->name);
			if (strcmp(c->routes[j].match.prefix,
			           r->match.prefix) == 0)
				return load_fail(
				    ld, e,
				    "route \"%s\": prefix \"%s\" is "
				    "route \"%s\"'s already",
				    r->name, r->match.prefix,
				    c->routes[j].name);
		}
	}
	return 0;
}

void
config_free_routes(struct config *c)
{
	if (c->close_routes)
		c->close_routes(c);
	for (size_t i = 0; i < c->nroutes; i++) {
		struct config_route *r = &c->routes[i];

		free(r->name);
		free(r->match.prefix);
		free(r->match.host);
		free(r->match.base);
		for (size_t j = 0; j < r->match.nrules; j++) {
			free(r->match.rules[j].method);
			free(r->match.rules[j].path);
		}
		free(r->match.rules);
		policy_free(&r->guard);
		free(r->ca_file);
		free(r->inject_header);
		free(r->inject_user);
		free(r->secret_path);
		for (size_t j = 0; j < r->git.nfetch; j++)
			free(r->git.fetch[j]);
		for (size_t j = 0; j < r->git.npush; j++)
			free(r->git.push[j]);
		for (size_t j = 0; j < r->git.nrefs; j++)
			free(r->git.refs[j]);
		free(r->git.fetch);
		free(r->git.push);
		free(r->git.refs);
	}
	free(c->routes);
	free(c->route_match);
}
