#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "http.h"
#include "load.h"
#include "metrics.h"
#include "tls.h"
#include "config_gateway.h"

/* 1 to max letters, digits, '-', '_' and '.'. */
static int
name_chars(const char *s, size_t max)
{
	if (!*s || strlen(s) > max)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		      *s == '.'))
			return 0;
	return 1;
}

int
config_valid_name(const char *s)
{
	return name_chars(s, 64);
}

/* "IP", "IP:PORT" or "[IPv6]:PORT", the forms c-ares takes. */
/* A DNS server as c-ares takes it: "IP", "IP:PORT", "[IPv6]" or
 * "[IPv6]:PORT", or a bare IPv6 address; never a name. */
static int
valid_server(const char *s)
{
	const char *colon = strchr(s, ':');
	struct host h;
	uint16_t port;

	if (s[0] != '[' && colon && strchr(colon + 1, ':'))
		return host_parse(s, strlen(s), 0, &h) == 0 &&
		       h.kind == HOST_IPV6;
	return host_parse_authority(s, strlen(s), 53, &h, &port) == 0 &&
	       h.kind != HOST_NAME;
}

int
config_valid_method(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";

	if (!*s || strlen(s) > 32)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || strchr(tchar, *s)))
			return 0;
	return 1;
}

static int
load_host(struct load *ld, const config_setting_t *e, void *arg)
{
	struct rule *r = arg;
	const char *text = config_setting_get_string(e);
	char norm[HOST_NAME_MAX_LEN + 3];
	const char *why = "invalid";

	if (host_pattern_parse(text, norm, &why) < 0)
		return load_fail(ld, e, "hosts: \"%s\": %s", text, why);
	return load_add_string(ld, e, &r->hosts, &r->nhosts, norm);
}

static int
load_port(struct load *ld, const config_setting_t *e, void *arg)
{
	struct rule *r = arg;
	long long v = config_setting_get_int64(e);
	uint16_t *ports;

	if (v < 1 || v > 65535)
		return load_fail(ld, e, "ports: %lld is not a port (1..65535)",
		                 v);
	if (!(ports = load_grow(ld, e, r->ports, r->nports, sizeof(*ports))))
		return -1;
	r->ports = ports;
	r->ports[r->nports++] = (uint16_t)v;
	return 0;
}

static int
load_method(struct load *ld, const config_setting_t *e, void *arg)
{
	struct rule *r = arg;
	const char *m = config_setting_get_string(e);

	if (!config_valid_method(m))
		return load_fail(ld, e, "methods: \"%s\" is not a method name",
		                 m);
	return load_add_string(ld, e, &r->methods, &r->nmethods, m);
}

int
config_load_network(struct load *ld, const config_setting_t *e, void *arg)
{
	struct rule *r = arg;
	const char *text = config_setting_get_string(e);
	const char *why = "invalid";
	unsigned char *unlocks;
	struct cidr c;

	if (cidr_parse(text, &c, &why) < 0)
		return load_fail(ld, e, "networks: \"%s\": %s", text, why);
	if (!(unlocks = load_grow(ld, e, r->network_unlocks, r->networks.n, 1)))
		return -1;
	r->network_unlocks = unlocks;
	if (netset_add(&r->networks, &c) < 0)
		return load_fail(ld, e, "out of memory");
	unlocks[r->networks.n - 1] = (unsigned char)netset_cidr_is_special(&c);
	return 0;
}

static const struct load_list_spec rule_hosts = {
    .key = "hosts",
    .type = CONFIG_TYPE_STRING,
    .each = load_host,
    .bad_count = "hosts: empty list (leave it out for a networks-only rule)",
};
static const struct load_list_spec rule_ports = {
    .key = "ports",
    .type = CONFIG_TYPE_INT,
    .each = load_port,
    .bad_count = "ports: required, a list such as [ 443 ]",
    .required = 1,
};
static const struct load_list_spec rule_methods = {
    .key = "methods",
    .type = CONFIG_TYPE_STRING,
    .each = load_method,
    .bad_count = "methods: empty list (leave it out to allow any method)",
};
static const struct load_list_spec rule_networks = {
    .key = "networks",
    .type = CONFIG_TYPE_STRING,
    .each = config_load_network,
    .bad_count = "networks: empty list",
};

static int
load_rule(struct load *ld, const config_setting_t *rs, size_t index,
          struct rule *r)
{
	static const char *const keys[] = {
	    "name", "hosts", "ports", "methods", "networks", "tls", NULL};
	const char *name, *tls;
	char defname[32];

	r->line = config_setting_source_line(rs);
	if (!load_is_group(rs))
		return load_fail(ld, rs, "rules: each rule is a group { ... }");
	if (load_check_keys(ld, rs, "rule", keys) < 0 ||
	    load_string(ld, rs, "name", &name) < 0)
		return -1;
	if (name && !config_valid_name(name))
		return load_fail(ld, config_setting_get_member(rs, "name"),
		                 "name: \"%s\": use letters, digits, '-', '_' "
		                 "and '.'",
		                 name);
	if (!name) {
		snprintf(defname, sizeof(defname), "rule-%zu", index + 1);
		name = defname;
	}
	if (!(r->name = load_strdup(ld, rs, name)))
		return -1;
	if (load_list(ld, rs, &rule_hosts, r) < 0 ||
	    load_list(ld, rs, &rule_ports, r) < 0 ||
	    load_list(ld, rs, &rule_methods, r) < 0 ||
	    load_list(ld, rs, &rule_networks, r) < 0)
		return -1;
	if (r->nhosts == 0 && r->networks.n == 0)
		return load_fail(ld, rs,
		                 "rule \"%s\": needs hosts, networks "
		                 "or both",
		                 r->name);
	if (load_string(ld, rs, "tls", &tls) < 0)
		return -1;
	if (!tls)
		r->tls = RULE_TLS_DEFAULT;
	else if (strcmp(tls, "require-sni-match") == 0)
		r->tls = RULE_TLS_REQUIRE_SNI;
	else if (strcmp(tls, "off") == 0)
		r->tls = RULE_TLS_OFF;
	else
		return load_fail(ld, config_setting_get_member(rs, "tls"),
		                 "tls: \"%s\": use \"require-sni-match\" or "
		                 "\"off\"",
		                 tls);
	if (r->tls == RULE_TLS_REQUIRE_SNI && r->nhosts == 0)
		return load_fail(
		    ld, config_setting_get_member(rs, "tls"),
		    "rule \"%s\": tls = \"require-sni-match\" "
		    "needs hosts (an SNI never names an IP address)",
		    r->name);
	return 0;
}

/* What a policy's routes element is checked against and loaded into. */
struct policy_target {
	const struct config *c;
	struct policy *p;
};

static int
load_policy_route(struct load *ld, const config_setting_t *e, void *arg)
{
	const struct policy_target *t = arg;
	const char *name = config_setting_get_string(e);

	if (!config_route(t->c, name))
		return load_fail(ld, e, "routes: no route is named \"%s\"",
		                 name);
	for (size_t i = 0; i < t->p->nroutes; i++)
		if (strcmp(t->p->routes[i], name) == 0)
			return load_fail(ld, e, "routes: \"%s\" twice", name);
	return load_add_string(ld, e, &t->p->routes, &t->p->nroutes, name);
}

static const struct load_list_spec policy_routes = {
    .key = "routes",
    .type = CONFIG_TYPE_STRING,
    .each = load_policy_route,
};

static int
load_policy(struct load *ld, const config_setting_t *ps, struct policy *p,
            const struct config *c)
{
	struct policy_target pt = {c, p};
	static const char *const keys[] = {"name", "mode", "rules", "routes",
	                                   NULL};
	const config_setting_t *rules;
	const char *name, *mode;
	int n;

	if (!load_is_group(ps))
		return load_fail(ld, ps, "policies: each policy is a group");
	if (load_check_keys(ld, ps, "policy", keys) < 0 ||
	    load_string(ld, ps, "name", &name) < 0 ||
	    load_string(ld, ps, "mode", &mode) < 0)
		return -1;
	if (!name)
		return load_fail(ld, ps, "policy: name is required");
	if (!config_valid_name(name))
		return load_fail(ld, config_setting_get_member(ps, "name"),
		                 "name: \"%s\": use letters, digits, '-', '_' "
		                 "and '.'",
		                 name);
	if (!(p->name = load_strdup(ld, ps, name)))
		return -1;
	p->metrics_slot = metrics_policy_slot(name);
	if (!mode || strcmp(mode, "enforce") == 0)
		p->mode = POLICY_ENFORCE;
	else if (strcmp(mode, "report") == 0)
		p->mode = POLICY_REPORT;
	else
		return load_fail(ld, config_setting_get_member(ps, "mode"),
		                 "mode: \"%s\": expected \"enforce\" or "
		                 "\"report\"",
		                 mode);
	if (load_list(ld, ps, &policy_routes, &pt) < 0)
		return -1;
	rules = config_setting_get_member(ps, "rules");
	if (!rules)
		return load_fail(ld, ps,
		                 "policy \"%s\": rules is required "
		                 "(rules = ( ); denies everything)",
		                 name);
	if (config_setting_type(rules) != CONFIG_TYPE_LIST)
		return load_fail(ld, rules,
		                 "rules: expected a list ( { ... } )");
	n = config_setting_length(rules);
	p->rules = calloc((size_t)n + 1, sizeof(*p->rules));
	if (!p->rules)
		return load_fail(ld, rules, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *rs = config_setting_get_elem(rules, i);

		if (load_rule(ld, rs, (size_t)i, &p->rules[p->nrules++]) < 0)
			return -1;
		for (int j = 0; j < i; j++)
			if (strcmp(p->rules[j].name, p->rules[i].name) == 0)
				return load_fail(ld, rs,
				                 "rule name \"%s\" is "
				                 "used twice",
				                 p->rules[i].name);
	}
	return 0;
}

static int
load_policies(struct load *ld, const config_setting_t *root, struct config *c)
{
	const config_setting_t *ps =
	    config_setting_get_member(root, "policies");
	int n;

	if (!ps)
		return load_fail(ld, NULL, "policies: required");
	if (config_setting_type(ps) != CONFIG_TYPE_LIST)
		return load_fail(ld, ps,
		                 "policies: expected a list ( { ... } )");
	n = config_setting_length(ps);
	if (n == 0)
		return load_fail(ld, ps, "policies: at least one policy");
	c->policies = calloc((size_t)n, sizeof(*c->policies));
	if (!c->policies)
		return load_fail(ld, ps, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(ps, i);

		if (load_policy(ld, e, &c->policies[c->npolicies++], c) < 0)
			return -1;
		for (int j = 0; j < i; j++)
			if (strcmp(c->policies[j].name, c->policies[i].name) ==
			    0)
				return load_fail(ld, e,
				                 "policy name \"%s\" is "
				                 "used twice",
				                 c->policies[i].name);
	}
	return 0;
}

/* A path in the config, relative to the config file's directory. */
void
config_relative(const struct load *ld, const char *path, char *out, size_t len)
{
	if (path[0] != '/' && strchr(ld->path, '/'))
		snprintf(out, len, "%.*s/%s",
		         (int)(strrchr(ld->path, '/') - ld->path), ld->path,
		         path);
	else
		snprintf(out, len, "%s", path);
}

/* tls = { cert = "..."; key = "..."; client_ca = "..."; } */
static int
load_listener_tls(struct load *ld, const config_setting_t *e,
                  struct config_listener *l, int *has_ca)
{
	static const char *const keys[] = {"cert", "key", "client_ca", NULL};
	const config_setting_t *ts = config_setting_get_member(e, "tls");
	const char *cert, *key, *ca;
	char cpath[4096], kpath[4096], apath[4096], err[512];

	*has_ca = 0;
	if (!ts)
		return 0;
	if (!load_is_group(ts))
		return load_fail(ld, ts,
		                 "tls: expected a group { cert = ...; "
		                 "key = ...; }");
	if (load_check_keys(ld, ts, "tls", keys) < 0 ||
	    load_string(ld, ts, "cert", &cert) < 0 ||
	    load_string(ld, ts, "key", &key) < 0 ||
	    load_string(ld, ts, "client_ca", &ca) < 0)
		return -1;
	if (!cert || !key)
		return load_fail(ld, ts, "tls: cert and key are required");
	config_relative(ld, cert, cpath, sizeof(cpath));
	config_relative(ld, key, kpath, sizeof(kpath));
	if (ca)
		config_relative(ld, ca, apath, sizeof(apath));
	if (!(l->tls = tls_server_new(cpath, kpath, ca ? apath : NULL,
	                              l->address, l->port, err, sizeof(err))))
		return load_fail(ld, ts, "%s", err);
	*has_ca = ca != NULL;
	return 0;
}

/* What an identify element is loaded into. */
struct identify_target {
	const struct config *c;
	struct config_listener *l;
};

static int
load_identify_method(struct load *ld, const config_setting_t *m, void *arg)
{
	const struct identify_target *t = arg;
	struct config_listener *l = t->l;
	const char *v = config_setting_get_string(m);
	enum identify_method how;

	if (strcmp(v, "proxy-auth") == 0) {
		how = IDENTIFY_PROXY_AUTH;
		if (l->gateway)
			return load_fail(
			    ld, m,
			    "identify: a gateway is no proxy: "
			    "its clients send a gateway token "
			    "(\"token\"), not Proxy-Authorization");
	} else if (strcmp(v, "token") == 0) {
		how = IDENTIFY_TOKEN;
		if (!l->gateway)
			return load_fail(ld, m,
			                 "identify: \"token\" is for gateway "
			                 "listeners (gateway = true)");
	} else if (strcmp(v, "source") == 0)
		how = IDENTIFY_SOURCE;
	else if (strcmp(v, "tls-client-cert") == 0) {
		how = IDENTIFY_TLS_CERT;
		if (!l->tls)
			return load_fail(
			    ld, m,
			    "identify: \"tls-client-cert\" needs a "
			    "tls listener with client_ca");
	} else
		return load_fail(ld, m,
		                 "identify: \"%s\": expected \"proxy-auth\", "
		                 "\"token\", \"source\" or "
		                 "\"tls-client-cert\"",
		                 v);
	for (size_t j = 0; j < l->nidentify; j++)
		if (l->identify[j] == how)
			return load_fail(ld, m, "identify: \"%s\" twice", v);
	if (t->c->nidentities == 0)
		return load_fail(
		    ld, m, "identify: there are no identities to identify");
	l->identify[l->nidentify++] = how;
	return 0;
}

/* identify = [ "proxy-auth", "source" ]: how clients of a listener are
 * identified, in order. */
static int
load_identify(struct load *ld, const config_setting_t *e,
              const struct config *c, struct config_listener *l)
{
	static const struct load_list_spec identify = {
	    .key = "identify",
	    .type = CONFIG_TYPE_STRING,
	    .each = load_identify_method,
	    .bad_count = "identify: one or more of \"proxy-auth\", "
	                 "\"token\", \"source\", \"tls-client-cert\"",
	    .max = 3,
	};
	struct identify_target t = {c, l};

	return load_list(ld, e, &identify, &t);
}

static int
load_identity_limits(struct load *ld, const config_setting_t *is,
                     struct identity *id)
{
	static const char *const keys[] = {
	    "max_tunnels",      "requests_per_second", "burst",
	    "max_tunnel_bytes", "max_tunnel_ms",       NULL};
	const config_setting_t *ls = config_setting_get_member(is, "limits");
	struct identity_limits *l = &id->limits;
	long long rps = 0, bytes = 0;

	if (!ls)
		return 0;
	if (!load_is_group(ls))
		return load_fail(ld, ls, "limits: expected a group { ... }");
	if (load_check_keys(ld, ls, "identity limits", keys) < 0 ||
	    load_int_into(ld, ls, "max_tunnels", 0, 1000000, &l->max_tunnels) <
	        0 ||
	    load_int(ld, ls, "requests_per_second", 0, 1000000, &rps) < 0 ||
	    load_int_into(ld, ls, "burst", 0, 1000000, &l->burst) < 0 ||
	    load_int(ld, ls, "max_tunnel_bytes", 0, (long long)1 << 62,
	             &bytes) < 0 ||
	    load_int_into(ld, ls, "max_tunnel_ms", 0, INT_MAX,
	                  &l->max_tunnel_ms) < 0)
		return -1;
	l->per_second = (double)rps;
	l->max_tunnel_bytes = (uint64_t)bytes;
	if (l->per_second > 0 && l->burst == 0)
		l->burst = (int)rps;
	return 0;
}

static int
load_source(struct load *ld, const config_setting_t *e, void *arg)
{
	struct identity *id = arg;
	const char *text = config_setting_get_string(e), *why = "";
	struct cidr cidr;

	if (cidr_parse(text, &cidr, &why) < 0)
		return load_fail(ld, e, "sources: \"%s\": %s", text, why);
	if (netset_add(&id->sources, &cidr) < 0)
		return load_fail(ld, e, "out of memory");
	return 0;
}

static int
load_tls_name(struct load *ld, const config_setting_t *e, void *arg)
{
	struct identity *id = arg;

	return load_add_string(ld, e, &id->tls_names, &id->ntls_names,
	                       config_setting_get_string(e));
}

static const struct load_list_spec identity_sources = {
    .key = "sources", .type = CONFIG_TYPE_STRING, .each = load_source};
static const struct load_list_spec identity_tls_names = {
    .key = "tls_names", .type = CONFIG_TYPE_STRING, .each = load_tls_name};

static int
load_identity(struct load *ld, const config_setting_t *is, struct config *c,
              struct identity *id)
{
	static const char *const keys[] = {"name",      "policy", "sources",
	                                   "tls_names", "limits", NULL};
	const char *name, *policy;

	if (!load_is_group(is))
		return load_fail(ld, is,
		                 "identities: each identity is a group");
	id->line = config_setting_source_line(is);
	if (load_check_keys(ld, is, "identity", keys) < 0 ||
	    load_string(ld, is, "name", &name) < 0 ||
	    load_string(ld, is, "policy", &policy) < 0)
		return -1;
	if (!name || !config_valid_name(name))
		return load_fail(ld, is,
		                 "identity: name is required (letters, "
		                 "digits, '-', '_' and '.')");
	if (!policy || !(id->policy = config_policy(c, policy)))
		return load_fail(ld, is, "identity \"%s\": policy %s%s%s", name,
		                 policy ? "\"" : "is required",
		                 policy ? policy : "",
		                 policy ? "\" does not exist" : "");
	if (!(id->name = load_strdup(ld, is, name)))
		return -1;
	if (!(id->state = identity_state_for(name)))
		return load_fail(ld, is, "out of memory");
	if (load_list(ld, is, &identity_sources, id) < 0 ||
	    load_list(ld, is, &identity_tls_names, id) < 0)
		return -1;
	return load_identity_limits(ld, is, id);
}

/* The credentials file: "NAME basic|bearer SALT HASH" lines, each for an
 * identity of the config. */
static int
load_credentials(struct load *ld, const config_setting_t *root,
                 struct config *c)
{
	const config_setting_t *cs =
	    config_setting_get_member(root, "credentials");
	const char *path;
	char line[1024], full[4096];
	FILE *f;
	int lineno = 0, rc = 0;

	if (load_string(ld, root, "credentials", &path) < 0)
		return -1;
	if (!path)
		return 0;
	/* Relative to the config file, not to where egressd runs. */
	config_relative(ld, path, full, sizeof(full));
	if (!(c->credentials_path = load_strdup(ld, cs, full)))
		return -1;
	if (!(f = fopen(full, "r")))
		return load_fail(ld, cs, "credentials: %s: %s", full,
		                 strerror(errno));
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		struct credential cred;
		const char *why = "";
		char *name;
		struct identity *id = NULL;
		int r;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = -1;
			snprintf(ld->err, ld->errlen, "%s:%d: line too long",
			         full, lineno);
			break;
		}
		if ((r = identity_parse_credential(line, &name, &cred, &why)) ==
		    1)
			continue;
		if (r < 0) {
			snprintf(ld->err, ld->errlen, "%s:%d: %s", full, lineno,
			         why);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < c->nidentities; i++)
			if (strcmp(c->identities[i].name, name) == 0)
				id = &c->identities[i];
		if (!id) {
			snprintf(ld->err, ld->errlen,
			         "%s:%d: no identity is named \"%s\"", full,
			         lineno, name);
			rc = -1;
			break;
		}
		struct credential *grown =
		    realloc(id->creds, (id->ncreds + 1) * sizeof(*grown));
		if (!grown) {
			snprintf(ld->err, ld->errlen, "%s: out of memory",
			         full);
			rc = -1;
			break;
		}
		id->creds = grown;
		id->creds[id->ncreds++] = cred;
	}
	fclose(f);
	return rc;
}

static int
load_identities(struct load *ld, const config_setting_t *root, struct config *c)
{
	const config_setting_t *is =
	    config_setting_get_member(root, "identities");
	int n;

	if (!is)
		return 0;
	if (config_setting_type(is) != CONFIG_TYPE_LIST)
		return load_fail(ld, is,
		                 "identities: expected a list "
		                 "( { ... } )");
	n = config_setting_length(is);
	if (!(c->identities = calloc((size_t)n + 1, sizeof(*c->identities))))
		return load_fail(ld, is, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(is, i);

		if (load_identity(ld, e, c, &c->identities[c->nidentities++]) <
		    0)
			return -1;
		for (int j = 0; j < i; j++)
			if (strcmp(c->identities[j].name,
			           c->identities[i].name) == 0)
				return load_fail(ld, e,
				                 "identity name \"%s\" "
				                 "is used twice",
				                 c->identities[i].name);
	}
	return load_credentials(ld, root, c);
}

static int
load_listeners(struct load *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = {
	    "address", "port", "policy", "identify", "tls", "gateway", NULL};
	const config_setting_t *ls = config_setting_get_member(root, "listen");
	int n;

	if (!ls)
		return load_fail(ld, NULL, "listen: required");
	if (config_setting_type(ls) != CONFIG_TYPE_LIST ||
	    (n = config_setting_length(ls)) == 0)
		return load_fail(ld, ls,
		                 "listen: expected a list ( { address "
		                 "= \"127.0.0.1\"; port = 3128; } )");
	c->listeners = calloc((size_t)n, sizeof(*c->listeners));
	if (!c->listeners)
		return load_fail(ld, ls, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(ls, i);
		struct config_listener *l = &c->listeners[c->nlisteners++];
		const char *address, *policy;
		long long port = 0;
		unsigned char buf[sizeof(struct in6_addr)];

		if (!load_is_group(e))
			return load_fail(ld, e,
			                 "listen: each listener is a "
			                 "group");
		if (load_check_keys(ld, e, "listener", keys) < 0 ||
		    load_string(ld, e, "address", &address) < 0 ||
		    load_string(ld, e, "policy", &policy) < 0 ||
		    load_int(ld, e, "port", 1, 65535, &port) < 0)
			return -1;
		if (!address || port == 0)
			return load_fail(ld, e,
			                 "listener: address and port "
			                 "are required");
		if (inet_pton(AF_INET, address, buf) != 1 &&
		    inet_pton(AF_INET6, address, buf) != 1)
			return load_fail(
			    ld, config_setting_get_member(e, "address"),
			    "address: \"%s\" is not an IP address", address);
		if (!(l->address = load_strdup(ld, e, address)))
			return -1;
		l->port = (uint16_t)port;
		int has_ca;
		const config_setting_t *gw =
		    config_setting_get_member(e, "gateway");

		if (gw) {
			if (config_setting_type(gw) != CONFIG_TYPE_BOOL)
				return load_fail(
				    ld, gw, "gateway: expected true or false");
			l->gateway = config_setting_get_bool(gw);
			if (l->gateway && c->nroutes == 0)
				return load_fail(ld, gw,
				                 "gateway: there are no routes "
				                 "(routes = ( ... ))");
		}

		if (load_listener_tls(ld, e, l, &has_ca) < 0 ||
		    load_identify(ld, e, c, l) < 0)
			return -1;
		for (size_t j = 0; j < l->nidentify; j++)
			if (l->identify[j] == IDENTIFY_TLS_CERT && !has_ca)
				return load_fail(
				    ld, config_setting_get_member(e, "tls"),
				    "tls: identify \"tls-client-cert\" needs "
				    "client_ca");
		if (l->nidentify > 0) {
			if (policy)
				return load_fail(
				    ld, config_setting_get_member(e, "policy"),
				    "listener: with identify, the identity "
				    "chooses the policy; remove policy");
		} else if (policy) {
			l->policy = config_policy(c, policy);
			if (!l->policy)
				return load_fail(
				    ld, config_setting_get_member(e, "policy"),
				    "policy: no policy is named \"%s\"",
				    policy);
		} else if (c->npolicies == 1) {
			l->policy = &c->policies[0];
		} else {
			return load_fail(ld, e,
			                 "listener: policy is required "
			                 "when there are several "
			                 "policies");
		}
	}
	return 0;
}

static int
load_server(struct load *ld, const config_setting_t *e, void *arg)
{
	struct config_resolver *r = arg;
	const char *text = config_setting_get_string(e);

	if (!valid_server(text))
		return load_fail(
		    ld, e,
		    "servers: \"%s\": expected \"IP\", \"IP:PORT\" or "
		    "\"[IPv6]:PORT\"",
		    text);
	return load_add_string(ld, e, &r->servers, &r->nservers, text);
}

static int
load_resolver(struct load *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = {"servers",   "timeout_ms",
	                                   "tries",     "cache_entries",
	                                   "max_ttl_s", NULL};
	static const struct load_list_spec servers = {
	    .key = "servers", .type = CONFIG_TYPE_STRING, .each = load_server};
	const config_setting_t *rs =
	    config_setting_get_member(root, "resolver");
	struct config_resolver *r = &c->resolver;

	r->timeout_ms = 2000;
	r->tries = 2;
	r->cache_entries = 4096;
	r->max_ttl_s = 300;
	if (!rs)
		return 0;
	if (!load_is_group(rs))
		return load_fail(ld, rs, "resolver: expected a group { ... }");
	if (load_check_keys(ld, rs, "resolver", keys) < 0 ||
	    load_int_into(ld, rs, "timeout_ms", 10, 60000, &r->timeout_ms) <
	        0 ||
	    load_int_into(ld, rs, "tries", 1, 10, &r->tries) < 0 ||
	    load_int_into(ld, rs, "cache_entries", 0, 1000000,
	                  &r->cache_entries) < 0 ||
	    load_int_into(ld, rs, "max_ttl_s", 0, 86400, &r->max_ttl_s) < 0 ||
	    load_list(ld, rs, &servers, r) < 0)
		return -1;
	return 0;
}

static int
load_limits(struct load *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = {"header_timeout_ms",
	                                   "connect_timeout_ms",
	                                   "idle_timeout_ms",
	                                   "keepalive_timeout_ms",
	                                   "drain_timeout_ms",
	                                   "max_request_line",
	                                   "max_header_bytes",
	                                   "max_header_fields",
	                                   "buffer_bytes",
	                                   "max_connections",
	                                   "max_connections_per_client",
	                                   "secret_refresh_ms",
	                                   NULL};
	const config_setting_t *ls = config_setting_get_member(root, "limits");
	struct config_limits *l = &c->limits;
	const long long day_ms = 86400000LL;

	*l = (struct config_limits){
	    .header_timeout_ms = 10000,
	    .connect_timeout_ms = 5000,
	    .idle_timeout_ms = 600000,
	    .keepalive_timeout_ms = 120000,
	    .drain_timeout_ms = 30000,
	    .secret_refresh_ms = 60000,
	    .max_request_line = 8192,
	    .max_header_bytes = 32768,
	    .max_header_fields = 64,
	    .buffer_bytes = 524288,
	    .max_connections = 8192,
	    /* A thirty-second of max_connections: more than one pod's tools
	     * open at once, far less than the whole service (docs/config.md).
	     */
	    .max_connections_per_client = 256,
	};
	if (!ls)
		return 0;
	if (!load_is_group(ls))
		return load_fail(ld, ls, "limits: expected a group { ... }");
	if (load_check_keys(ld, ls, "limits", keys) < 0 ||
	    load_int_into(ld, ls, "header_timeout_ms", 1, day_ms,
	                  &l->header_timeout_ms) < 0 ||
	    load_int_into(ld, ls, "connect_timeout_ms", 1, day_ms,
	                  &l->connect_timeout_ms) < 0 ||
	    load_int_into(ld, ls, "idle_timeout_ms", 1, day_ms,
	                  &l->idle_timeout_ms) < 0 ||
	    load_int_into(ld, ls, "keepalive_timeout_ms", 1, day_ms,
	                  &l->keepalive_timeout_ms) < 0 ||
	    load_int_into(ld, ls, "drain_timeout_ms", 0, day_ms,
	                  &l->drain_timeout_ms) < 0 ||
	    load_int_into(ld, ls, "secret_refresh_ms", 100, day_ms,
	                  &l->secret_refresh_ms) < 0 ||
	    load_size_into(ld, ls, "max_request_line", 64, 65536,
	                   &l->max_request_line) < 0 ||
	    load_size_into(ld, ls, "max_header_bytes", 256, 1 << 20,
	                   &l->max_header_bytes) < 0 ||
	    load_size_into(ld, ls, "max_header_fields", 1, HTTP_MAX_FIELDS,
	                   &l->max_header_fields) < 0 ||
	    load_size_into(ld, ls, "buffer_bytes", 4096, 64 << 20,
	                   &l->buffer_bytes) < 0 ||
	    load_int_into(ld, ls, "max_connections", 1, 1000000,
	                  &l->max_connections) < 0 ||
	    load_int_into(ld, ls, "max_connections_per_client", 0, 1000000,
	                  &l->max_connections_per_client) < 0)
		return -1;
	if (l->max_header_bytes < l->max_request_line)
		return load_fail(ld, ls,
		                 "limits: max_header_bytes must be at "
		                 "least max_request_line");
	return 0;
}

static int
load_log(struct load *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = {"path", NULL};
	const config_setting_t *ls = config_setting_get_member(root, "log");
	const char *path = NULL;

	if (ls) {
		if (!load_is_group(ls))
			return load_fail(ld, ls, "log: expected a group");
		if (load_check_keys(ld, ls, "log", keys) < 0 ||
		    load_string(ld, ls, "path", &path) < 0)
			return -1;
		if (path && !*path)
			return load_fail(ld, ls,
			                 "log: path is empty (\"-\" "
			                 "is stdout)");
	}
	c->log_path = load_strdup(ld, ls, path ? path : "-");
	return c->log_path ? 0 : -1;
}

static int
load_admin(struct load *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = {"address", "port", NULL};
	const config_setting_t *as = config_setting_get_member(root, "admin");
	const char *address = NULL;
	long long port = 0;
	unsigned char buf[sizeof(struct in6_addr)];

	if (!as)
		return 0;
	if (!load_is_group(as))
		return load_fail(ld, as,
		                 "admin: expected a group { address = "
		                 "\"127.0.0.1\"; port = 9090; }");
	if (load_check_keys(ld, as, "admin", keys) < 0 ||
	    load_string(ld, as, "address", &address) < 0 ||
	    load_int(ld, as, "port", 1, 65535, &port) < 0)
		return -1;
	if (!address || port == 0)
		return load_fail(ld, as,
		                 "admin: address and port are required");
	if (inet_pton(AF_INET, address, buf) != 1 &&
	    inet_pton(AF_INET6, address, buf) != 1)
		return load_fail(ld, config_setting_get_member(as, "address"),
		                 "address: \"%s\" is not an IP address",
		                 address);
	for (size_t i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].port == port &&
		    strcmp(c->listeners[i].address, address) == 0)
			return load_fail(ld, as,
			                 "admin: %s port %lld is also "
			                 "a proxy listener",
			                 address, port);
	c->admin_port = (uint16_t)port;
	c->admin_address = load_strdup(ld, as, address);
	return c->admin_address ? 0 : -1;
}

/* A user name: letters, digits, '.', '_' and '-' (not first). */
static int
valid_user(const char *s)
{
	return *s != '-' && name_chars(s, 32);
}

/* sandbox = { user = "nobody"; seccomp = true; } */
static int
load_sandbox(struct load *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = {"user", "seccomp", NULL};
	const config_setting_t *ss = config_setting_get_member(root, "sandbox");
	const config_setting_t *s;
	const char *user;

	c->sandbox.seccomp = 1;
	if (!ss)
		return 0;
	if (!load_is_group(ss))
		return load_fail(ld, ss,
		                 "sandbox: expected a group { user = "
		                 "\"nobody\"; }");
	if (load_check_keys(ld, ss, "sandbox", keys) < 0 ||
	    load_string(ld, ss, "user", &user) < 0)
		return -1;
	if ((s = config_setting_get_member(ss, "seccomp"))) {
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return load_fail(ld, s,
			                 "seccomp: expected true or false");
		c->sandbox.seccomp = config_setting_get_bool(s);
	}
	if (!user)
		return 0;
	if (!valid_user(user))
		return load_fail(ld, config_setting_get_member(ss, "user"),
		                 "user: \"%s\" is not a user name", user);
	c->sandbox.user = load_strdup(ld, ss, user);
	return c->sandbox.user ? 0 : -1;
}

static void
config_free(struct config *c)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		free(c->listeners[i].address);
		tls_server_free(c->listeners[i].tls);
	}
	free(c->listeners);
	for (size_t i = 0; i < c->resolver.nservers; i++)
		free(c->resolver.servers[i]);
	free(c->resolver.servers);
	for (size_t i = 0; i < c->npolicies; i++)
		policy_free(&c->policies[i]);
	free(c->policies);
	free(c->log_path);
	free(c->admin_address);
	for (size_t i = 0; i < c->nidentities; i++)
		identity_free(&c->identities[i]);
	free(c->identities);
	free(c->credentials_path);
	free(c->sandbox.user);
	config_free_routes(c);
	free(c->path);
	free(c);
}

/*
 * Build a snapshot from text, or from the file at path when text is NULL.
 * path names the source in messages and anchors relative file names.
 */
static struct config *
load(const char *path, const char *text, char *err, size_t errlen)
{
	static const char *const keys[] = {
	    "listen",      "resolver", "log",     "limits",
	    "policies",    "admin",    "workers", "identities",
	    "credentials", "sandbox",  "routes",  NULL};
	struct load ld = {path, err, errlen};
	struct config *c;
	config_t cf;
	int rc = -1;

	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	atomic_init(&c->refs, 1);
	config_init(&cf);
	if (!(text ? config_read_string(&cf, text)
	           : config_read_file(&cf, path))) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read the file", path);
		else
			snprintf(err, errlen, "%s:%d: %s",
			         config_error_file(&cf) ? config_error_file(&cf)
			                                : path,
			         config_error_line(&cf),
			         config_error_text(&cf));
		goto out;
	}
	const config_setting_t *root = config_root_setting(&cf);
	/* Policies first: listeners refer to them. */
	if (load_check_keys(&ld, root, "the file", keys) < 0 ||
	    config_load_routes(&ld, root, c) < 0 ||
	    load_policies(&ld, root, c) < 0 ||
	    load_identities(&ld, root, c) < 0 ||
	    load_listeners(&ld, root, c) < 0 ||
	    load_resolver(&ld, root, c) < 0 || load_limits(&ld, root, c) < 0 ||
	    load_log(&ld, root, c) < 0 || load_admin(&ld, root, c) < 0 ||
	    load_sandbox(&ld, root, c) < 0 ||
	    load_int_into(&ld, root, "workers", 0, 256, &c->workers) < 0)
		goto out;
	if (!(c->path = strdup(path))) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	rc = 0;
out:
	config_destroy(&cf);
	if (rc < 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	return load(path, NULL, err, errlen);
}

struct config *
config_load_string(const char *text, size_t len, const char *name, char *err,
                   size_t errlen)
{
	const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
	struct config *c;
	char *copy;

	/* libconfig reads a C string: a NUL would silently end the text. */
	if (nul) {
		int line = 1;

		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		snprintf(err, errlen, "%s:%d: a NUL byte in the text", name,
		         line);
		return NULL;
	}
	if (!(copy = malloc(len + 1))) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	if (len > 0)
		memcpy(copy, text, len);
	copy[len] = '\0';
	c = load(name, copy, err, errlen);
	free(copy);
	return c;
}

struct config *
config_ref(struct config *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void
config_unref(struct config *c)
{
	if (c &&
	    atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		config_free(c);
}

const struct config_route *
config_route(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].name, name) == 0)
			return &c->routes[i];
	return NULL;
}

const struct policy *
config_policy(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->npolicies; i++)
		if (strcmp(c->policies[i].name, name) == 0)
			return &c->policies[i];
	return NULL;
}

int
config_same_listeners(const struct config *a, const struct config *b)
{
	if (a->nlisteners != b->nlisteners || a->workers != b->workers ||
	    a->admin_port != b->admin_port ||
	    !a->admin_address != !b->admin_address ||
	    (a->admin_address &&
	     strcmp(a->admin_address, b->admin_address) != 0))
		return 0;
	for (size_t i = 0; i < a->nlisteners; i++)
		if (a->listeners[i].port != b->listeners[i].port ||
		    strcmp(a->listeners[i].address, b->listeners[i].address))
			return 0;
	return 1;
}

int
config_same_sandbox(const struct config *a, const struct config *b)
{
	return a->sandbox.seccomp == b->sandbox.seccomp &&
	       !a->sandbox.user == !b->sandbox.user &&
	       (!a->sandbox.user ||
	        strcmp(a->sandbox.user, b->sandbox.user) == 0);
}
