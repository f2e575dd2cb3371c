/* Unit tests for config: loading, defaults, and file:line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "policy.h"

static char path[64];

static void
write_file(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/egressd-test-config-%d.conf",
	         (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct config *
load_ok(const char *text)
{
	char err[512] = "";
	struct config *c;

	write_file(text);
	c = config_load(path, err, sizeof(err));
	if (!c)
		fail_msg("unexpected error: %s", err);
	return c;
}

/* The load must fail, and the message must be "PATH:LINE: ..." containing
 * `needle`. */
static void
load_fails(const char *text, int line, const char *needle)
{
	char err[512] = "", want[128];
	struct config *c;

	write_file(text);
	c = config_load(path, err, sizeof(err));
	if (c) {
		config_unref(c);
		fail_msg("loaded, but should fail with %s", needle);
	}
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", path, line);
	else
		snprintf(want, sizeof(want), "%s: ", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err, want);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

#define MINIMAL_REST                                                           \
	"policies = ( { name = \"p\"; rules = (\n"                             \
	"  { hosts = [ \"api.example.com\" ]; ports = [ 443 ]; }\n"            \
	"); } );\n"
#define MINIMAL                                                                \
	"listen = ( { address = \"127.0.0.1\"; port = 3128; } "                \
	");\n" MINIMAL_REST

static void
test_minimal_defaults(void **state)
{
	struct config *c = load_ok(MINIMAL);

	(void)state;
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].address, "127.0.0.1");
	assert_int_equal(c->listeners[0].port, 3128);
	assert_ptr_equal(c->listeners[0].policy, &c->policies[0]);
	assert_string_equal(c->log_path, "-");
	assert_int_equal(c->resolver.nservers, 0);
	assert_int_equal(c->resolver.timeout_ms, 2000);
	assert_int_equal(c->resolver.tries, 2);
	assert_int_equal(c->limits.header_timeout_ms, 10000);
	assert_int_equal(c->limits.connect_timeout_ms, 5000);
	assert_int_equal(c->limits.idle_timeout_ms, 600000);
	assert_int_equal(c->limits.drain_timeout_ms, 30000);
	assert_int_equal(c->limits.max_header_bytes, 32768);
	assert_int_equal(c->limits.max_connections, 8192);
	assert_int_equal(c->limits.max_connections_per_client, 256);
	assert_int_equal(c->policies[0].mode, POLICY_ENFORCE);
	assert_int_equal(c->policies[0].nrules, 1);
	assert_string_equal(c->policies[0].rules[0].name, "rule-1");
	assert_int_equal(c->policies[0].rules[0].nmethods, 0);
	config_unref(c);
}

/* A whole file whose resolver has the one server `server`. */
static const char *
with_server(char *text, size_t len, const char *server)
{
	snprintf(text, len,
	         "listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	         "resolver = { servers = [ \"%s\" ]; };\n"
	         "policies = ( { name = \"p\"; rules = ( ); } );\n",
	         server);
	return text;
}

/* resolver.servers: addresses with optional ports, as c-ares takes them;
 * names, loose numeric forms and bad ports are refused on their line. */
static void
test_resolver_servers(void **state)
{
	static const char *const good[] = {
	    "10.0.0.1", "10.0.0.1:5353", "[::1]",
	    "[::1]:53", "2001:db8::1",   "[::ffff:10.0.0.1]:53"};
	static const char *const bad[] = {"dns.example",
	                                  "dns.example:53",
	                                  "127.1:53",
	                                  "0x7f.0.0.1",
	                                  "10.0.0.1:0",
	                                  "10.0.0.1:",
	                                  "10.0.0.1:+5",
	                                  "10.0.0.1:65536",
	                                  "[::1]:",
	                                  "[::1]x",
	                                  "[::1",
	                                  "::1:53x",
	                                  "",
	                                  "10.0.0.1@x"};
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		config_unref(load_ok(with_server(text, sizeof(text), good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		load_fails(with_server(text, sizeof(text), bad[i]), 2,
		           "expected \"IP\"");
}

static void
test_full_file(void **state)
{
	struct config *c = load_ok(
	    "listen = ( { address = \"::1\"; port = 3129; policy = \"b\"; },\n"
	    "           { address = \"127.0.0.1\"; port = 3128; policy = "
	    "\"a\"; } );\n"
	    "resolver = { servers = [ \"127.0.0.53:53\", \"[::1]:5353\", "
	    "\"10.0.0.1\" ];\n"
	    "             timeout_ms = 500; tries = 3; cache_entries = 10; "
	    "max_ttl_s = 60; };\n"
	    "log = { path = \"/tmp/x.log\"; };\n"
	    "limits = { idle_timeout_ms = 1000; buffer_bytes = 8192;\n"
	    "           max_connections_per_client = 0; };\n"
	    "policies = (\n"
	    "  { name = \"a\"; mode = \"report\"; rules = (\n"
	    "    { name = \"git\"; hosts = [ \"Git.Corp.Example.\", "
	    "\"*.example.com\" ];\n"
	    "      ports = [ 443, 8443 ]; methods = [ \"CONNECT\" ];\n"
	    "      networks = [ \"10.20.0.0/16\", \"8.8.8.0/24\" ]; },\n"
	    "    { networks = [ \"203.0.113.0/24\" ]; ports = [ 443 ]; } ); "
	    "},\n"
	    "  { name = \"b\"; rules = ( ); }\n"
	    ");\n");
	const struct rule *r;

	(void)state;
	assert_ptr_equal(c->listeners[0].policy, config_policy(c, "b"));
	assert_ptr_equal(c->listeners[1].policy, config_policy(c, "a"));
	assert_null(config_policy(c, "zzz"));
	assert_int_equal(c->resolver.nservers, 3);
	assert_int_equal(c->resolver.timeout_ms, 500);
	assert_string_equal(c->log_path, "/tmp/x.log");
	assert_int_equal(c->limits.buffer_bytes, 8192);
	/* 0: no cap, as written. */
	assert_int_equal(c->limits.max_connections_per_client, 0);
	assert_int_equal(c->policies[0].mode, POLICY_REPORT);
	r = &c->policies[0].rules[0];
	assert_string_equal(r->name, "git");
	assert_int_equal(r->nhosts, 2);
	assert_string_equal(r->hosts[0], "git.corp.example");
	assert_string_equal(r->hosts[1], "*.example.com");
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[1], 8443);
	assert_int_equal(r->networks.n, 2);
	/* 10.20.0.0/16 is private space and unlocks it; 8.8.8.0/24 is not. */
	assert_int_equal(r->network_unlocks[0], 1);
	assert_int_equal(r->network_unlocks[1], 0);
	assert_string_equal(c->policies[0].rules[1].name, "rule-2");
	assert_int_equal(c->policies[1].nrules, 0);
	config_unref(c);
}

static void
test_refcount(void **state)
{
	struct config *c = load_ok(MINIMAL);

	(void)state;
	assert_ptr_equal(config_ref(c), c);
	config_unref(c);
	/* Still alive: one reference left. */
	assert_int_equal(c->nlisteners, 1);
	config_unref(c);
	config_unref(NULL);
}

static void
test_same_listeners(void **state)
{
	struct config *a = load_ok(MINIMAL), *b = load_ok(MINIMAL), *c;

	(void)state;
	assert_true(config_same_listeners(a, b));
	c = load_ok("listen = ( { address = \"127.0.0.1\"; port = 3129; } );\n"
	            "policies = ( { name = \"p\"; rules = ( ); } );\n");
	assert_false(config_same_listeners(a, c));
	config_unref(a);
	config_unref(b);
	config_unref(c);
}

static void
test_sandbox(void **state)
{
	struct config *a = load_ok(MINIMAL), *b, *c;

	(void)state;
	/* Default: no user, filter on. */
	assert_null(a->sandbox.user);
	assert_int_equal(a->sandbox.seccomp, 1);
	b = load_ok(MINIMAL "sandbox = { user = \"nobody\"; seccomp = "
	                    "false; };\n");
	assert_string_equal(b->sandbox.user, "nobody");
	assert_int_equal(b->sandbox.seccomp, 0);
	c = load_ok(MINIMAL "sandbox = { user = \"nobody\"; };\n");
	assert_int_equal(c->sandbox.seccomp, 1);
	/* Sandbox settings take a restart: a reload compares them. */
	assert_false(config_same_sandbox(a, b));
	assert_false(config_same_sandbox(a, c));
	assert_false(config_same_sandbox(b, c));
	assert_true(config_same_sandbox(c, c));
	config_unref(a);
	config_unref(b);
	config_unref(c);
	load_fails(MINIMAL "sandbox = { seccomp = 1; };\n", 5,
	           "seccomp: expected true or false");
	load_fails(MINIMAL "sandbox = { user = \"no body\"; };\n", 5,
	           "user: \"no body\" is not a user name");
	load_fails(MINIMAL "sandbox = { user = \"-x\"; };\n", 5,
	           "is not a user name");
	load_fails(MINIMAL "sandbox = { user = 65534; };\n", 5,
	           "user: expected a string");
	load_fails(MINIMAL "sandbox = { usr = \"nobody\"; };\n", 5,
	           "unknown key \"usr\" in sandbox");
	load_fails(MINIMAL "sandbox = \"nobody\";\n", 5,
	           "sandbox: expected a group");
}

static void
test_errors_name_file_and_line(void **state)
{
	(void)state;
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } )\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n"
	           "oops = ;\n",
	           3, "syntax error");
	load_fails(MINIMAL "colour = \"blue\";\n", 5, "unknown key \"colour\"");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 70000; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           1, "out of range");
	load_fails("listen = ( { address = \"localhost\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           1, "not an IP address");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"ok.example\",\n"
	           "              \"api.*.com\" ]; ports = [ 443 ]; }\n"
	           "); } );\n",
	           4, "api.*.com");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { networks = [ \"10.0.0.1/8\" ]; ports = [ 443 ]; }\n"
	           "); } );\n",
	           3, "10.0.0.1/8");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"a.example\" ]; ports = [ 0 ]; }\n"
	           "); } );\n",
	           3, "not a port");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"a.example\" ]; }\n"
	           "); } );\n",
	           3, "ports: required");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { ports = [ 443 ]; }\n"
	           "); } );\n",
	           3, "needs hosts, networks or both");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; mode = \"audit\"; rules = ( "
	           "); } );\n",
	           2, "expected \"enforce\" or \"report\"");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); },\n"
	           "             { name = \"p\"; rules = ( ); } );\n",
	           3, "used twice");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); },\n"
	           "             { name = \"q\"; rules = ( ); } );\n",
	           1, "policy is required");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128;\n"
	           "             policy = \"nope\"; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           2, "no policy is named \"nope\"");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "resolver = { servers = [ \"dns.example:53\" ]; };\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           2, "dns.example:53");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "limits = { idle_timeout_ms = \"10s\"; };\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           2, "expected an integer");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"a.example\" ]; ports = [ 443 ];\n"
	           "    methods = [ \"GET POST\" ]; }\n"
	           "); } );\n",
	           4, "not a method");
	load_fails("policies = ( { name = \"p\"; rules = ( ); } );\n", 0,
	           "listen: required");
}

static void
test_identities(void **state)
{
	char cpath[80], err[512];
	FILE *f;
	struct config *c;

	(void)state;
	snprintf(cpath, sizeof(cpath), "/tmp/egressd-test-creds-%d",
	         (int)getpid());
	f = fopen(cpath, "w");
	assert_non_null(f);
	fputs("# agents\n"
	      "agent-1 basic 00112233445566778899aabbccddeeff "
	      "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
	      "eeff\n",
	      f);
	fclose(f);
	char text[1024];
	snprintf(
	    text, sizeof(text),
	    "listen = ( { address = \"127.0.0.1\"; port = 3128;\n"
	    "             identify = [ \"proxy-auth\", \"source\" ]; } );\n"
	    "credentials = \"%s\";\n"
	    "policies = ( { name = \"p\"; rules = ( ); } );\n"
	    "identities = (\n"
	    "  { name = \"agent-1\"; policy = \"p\";\n"
	    "    sources = [ \"10.1.0.0/16\" ];\n"
	    "    limits = { max_tunnels = 4; requests_per_second = 10; }; }\n"
	    ");\n",
	    cpath);
	c = load_ok(text);
	assert_int_equal(c->nidentities, 1);
	assert_int_equal(c->identities[0].ncreds, 1);
	assert_int_equal(c->identities[0].limits.max_tunnels, 4);
	assert_int_equal(c->identities[0].limits.burst, 10);
	assert_null(c->listeners[0].policy);
	assert_int_equal(c->listeners[0].nidentify, 2);
	assert_int_equal(c->listeners[0].identify[0], IDENTIFY_PROXY_AUTH);
	config_unref(c);

	/* A credential for an unknown identity names the credentials file
	 * and its line. */
	f = fopen(cpath, "a");
	fputs("ghost bearer 00112233445566778899aabbccddeeff "
	      "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
	      "eeff\n",
	      f);
	fclose(f);
	write_file(text);
	assert_null(config_load(path, err, sizeof(err)));
	char want[128];
	snprintf(want, sizeof(want), "%s:3: no identity is named \"ghost\"",
	         cpath);
	assert_string_equal(err, want);
	unlink(cpath);

	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128;\n"
	           "  identify = [ \"source\" ]; policy = \"p\"; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n"
	           "identities = ( { name = \"a\"; policy = \"p\"; } );\n",
	           2, "remove policy");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n"
	           "identities = ( { name = \"a\"; policy = \"q\"; } );\n",
	           3, "does not exist");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128;\n"
	           "  identify = [ \"mtls\" ]; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n"
	           "identities = ( { name = \"a\"; policy = \"p\"; } );\n",
	           2, "expected");
}

/* A rule whose last list is KEY, one element a line from line 4. */
#define RULE_LIST(key, elems)                                                  \
	"listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"            \
	"policies = ( { name = \"p\"; rules = (\n"                             \
	"  { hosts = [ \"a.example\" ]; ports = [ 443 ];\n"                    \
	"    " key " = [\n" elems " ]; }\n"                                    \
	"); } );\n"

/* Every list names the bad element's own line, or the list's when the
 * list as a whole is wrong; the messages are exactly these. */
static void
test_list_errors(void **state)
{
	(void)state;
	load_fails(RULE_LIST("methods", "\"GET\",\n\"BAD METHOD\""), 6,
	           "methods: \"BAD METHOD\" is not a method name");
	load_fails(RULE_LIST("methods", ""), 4,
	           "methods: empty list (leave it out to allow any method)");
	load_fails(RULE_LIST("methods", "7"), 5,
	           "methods: expected a list of strings");
	load_fails(RULE_LIST("networks", "\"10.0.0.0/8\",\n\"10.0.0.1/8\""), 6,
	           "networks: \"10.0.0.1/8\": host bits set");
	load_fails(RULE_LIST("networks", ""), 4, "networks: empty list");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { ports = [ 443 ];\n"
	           "    hosts = [\n"
	           " ]; }\n"
	           "); } );\n",
	           4,
	           "hosts: empty list (leave it out for a networks-only rule)");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"a.example\" ];\n"
	           "    ports = [\n"
	           " ]; }\n"
	           "); } );\n",
	           4, "ports: required, a list such as [ 443 ]");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"a.example\" ];\n"
	           "    ports = [ 443,\n"
	           "      -1 ]; }\n"
	           "); } );\n",
	           5, "ports: -1 is not a port (1..65535)");
	load_fails(
	    "listen = ( { address = \"127.0.0.1\"; port = 3128;\n"
	    "  identify = [ \"source\", \"proxy-auth\",\n"
	    "    \"tls-client-cert\", \"source\" ]; } );\n" MINIMAL_REST
	    "identities = ( { name = \"a\"; policy = \"p\"; } );\n",
	    2,
	    "identify: one or more of \"proxy-auth\", \"token\", \"source\", "
	    "\"tls-client-cert\"");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128;\n"
	           "  identify = [ \"source\",\n"
	           "    \"source\" ]; } );\n" MINIMAL_REST
	           "identities = ( { name = \"a\"; policy = \"p\"; } );\n",
	           3, "identify: \"source\" twice");
	load_fails(MINIMAL "identities = ( { name = \"a\"; policy = \"p\";\n"
	                   "  sources = [ \"10.0.0.0/8\",\n"
	                   "    \"fe80::/10\", \"bad\" ]; } );\n",
	           7, "sources: \"bad\": ");
	load_fails(MINIMAL "resolver = { servers = [\n"
	                   "  \"127.0.0.1\",\n"
	                   "  \"dns.example\" ]; };\n",
	           7,
	           "servers: \"dns.example\": expected \"IP\", \"IP:PORT\" or "
	           "\"[IPv6]:PORT\"");
}

static void
test_missing_file(void **state)
{
	char err[256];

	(void)state;
	assert_null(config_load("/nonexistent/egressd.conf", err, sizeof(err)));
	assert_string_equal(err,
	                    "/nonexistent/egressd.conf: cannot read the file");
}

/* Found while fuzzing the config loader (tests/fuzz/crashers/config/):
 * max_tunnel_ms took values up to a year into an int, so 4294968296
 * (49.7 days) loaded as 1000 and 3000000000 as a negative number.  Every int
 * key is now held to what an int holds. */
#define LIFETIME(ms)                                                           \
	"listen = ( { address = \"127.0.0.1\"; port = 3128;\n"                 \
	"  identify = [ \"source\" ]; } );\n"                                  \
	"policies = ( { name = \"p\"; rules = ( ); } );\n"                     \
	"identities = ( { name = \"a\"; policy = \"p\";\n"                     \
	"  limits = { max_tunnel_ms = " ms "; }; } );\n"

static void
test_int_limits_do_not_wrap(void **state)
{
	struct config *c;

	(void)state;
	load_fails(LIFETIME("4294968296L"), 5,
	           "max_tunnel_ms: 4294968296 is out of range 0..2147483647");
	load_fails(LIFETIME("3000000000L"), 5, "out of range 0..2147483647");
	c = load_ok(LIFETIME("2147483647L"));
	assert_int_equal(c->identities[0].limits.max_tunnel_ms, 2147483647);
	config_unref(c);
}

/* Text in memory loads as a file would; errors read NAME:LINE. */
static void
test_load_string(void **state)
{
	static const char bad[] = "listen = ( { address = \"127.0.0.1\"; "
	                          "port = 3128; } );\n"
	                          "policies = ( { name = \"p\";\n"
	                          "  rules = ( { hosts = [ \"*\" ]; "
	                          "ports = [ 443 ]; } ); } );\n";
	static const char nul[] = "listen = ( );\n\n# x\0y\n";
	char err[512] = "";
	struct config *c;

	(void)state;
	/* Not NUL-terminated: only len bytes are read. */
	c = config_load_string(MINIMAL "garbage", strlen(MINIMAL), "mem.conf",
	                       err, sizeof(err));
	if (!c)
		fail_msg("unexpected error: %s", err);
	assert_string_equal(c->path, "mem.conf");
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->policies[0].rules[0].hosts[0],
	                    "api.example.com");
	config_unref(c);

	assert_null(
	    config_load_string(bad, strlen(bad), "mem.conf", err, sizeof(err)));
	assert_string_equal(err, "mem.conf:3: hosts: \"*\": \"*\" would allow "
	                         "every host; list the names");
	assert_null(
	    config_load_string("listen = (", 10, "mem.conf", err, sizeof(err)));
	assert_true(strncmp(err, "mem.conf:1: ", 12) == 0);
	assert_null(config_load_string(nul, sizeof(nul) - 1, "mem.conf", err,
	                               sizeof(err)));
	assert_string_equal(err, "mem.conf:3: a NUL byte in the text");
	assert_null(config_load_string("", 0, "mem.conf", err, sizeof(err)));
	assert_true(strncmp(err, "mem.conf: ", 10) == 0);
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* The hello check: on by default for name rules on port 443 only; "off"
 * and "require-sni-match" as written; bad values and an SNI rule without
 * hosts are errors at their line. */
static void
test_rule_tls(void **state)
{
	struct config *c = load_ok(
	    "listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	    "policies = ( { name = \"p\"; rules = (\n"
	    "  { hosts = [ \"a.test\" ]; ports = [ 443, 8443 ]; },\n"
	    "  { hosts = [ \"b.test\" ]; ports = [ 443 ]; tls = \"off\"; },\n"
	    "  { hosts = [ \"c.test\" ]; ports = [ 8443 ];\n"
	    "    tls = \"require-sni-match\"; },\n"
	    "  { networks = [ \"203.0.113.0/24\" ]; ports = [ 443 ]; }\n"
	    "); } );\n");
	const struct rule *r = c->policies[0].rules;

	(void)state;
	assert_int_equal(rule_requires_sni(&r[0], 443), 1);
	assert_int_equal(rule_requires_sni(&r[0], 8443), 0);
	assert_int_equal(rule_requires_sni(&r[1], 443), 0);
	assert_int_equal(rule_requires_sni(&r[2], 8443), 1);
	/* An IP-literal rule: an SNI never names an address. */
	assert_int_equal(rule_requires_sni(&r[3], 443), 0);
	config_unref(c);

	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { hosts = [ \"a.test\" ]; ports = [ 443 ];\n"
	           "    tls = \"sni\"; }\n"
	           "); } );\n",
	           4, "tls: \"sni\": use \"require-sni-match\" or \"off\"");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
	           "policies = ( { name = \"p\"; rules = (\n"
	           "  { networks = [ \"10.0.0.0/8\" ]; ports = [ 443 ];\n"
	           "    tls = \"require-sni-match\"; }\n"
	           "); } );\n",
	           4, "needs hosts");
}

#define GW_HEAD                                                                \
	"listen = ( { address = \"127.0.0.1\"; port = 3129; gateway = true;\n" \
	"             identify = [ \"token\" ]; } );\n"                        \
	"identities = ( { name = \"a\"; policy = \"p\"; } );\n"

/* A gateway's routes: what each key becomes, and who may use which. */
static void
test_routes(void **state)
{
	struct config *c;
	const struct config_route *r;

	(void)state;
	c = load_ok(
	    GW_HEAD
	    "policies = ( { name = \"p\"; rules = ( );\n"
	    "               routes = [ \"llm\" ]; } );\n"
	    "routes = (\n"
	    "  { name = \"llm\"; prefix = \"/anthropic\";\n"
	    "    origin = \"https://API.Anthropic.com:8443/base/\";\n"
	    "    allow = [ \"POST /v1/messages\", \"* /v1/*\" ];\n"
	    "    inject = { header = \"X-Api-Key\"; secret = \"k\"; }; },\n"
	    "  { name = \"git\"; prefix = \"/git\";\n"
	    "    origin = \"https://10.20.0.7\"; networks = [ \"10.20.0.0/16\" "
	    "];\n"
	    "    inject = { header = \"authorization\"; scheme = \"basic\";\n"
	    "               user = \"x-access-token\"; secret = \"/t\"; };\n"
	    "    git = { fetch = [ \"org/*\", \"tools.git\" ]; push = [ \"org/a\" "
	    "];\n"
	    "            refs = [ \"refs/heads/agent/*\" ]; tags = true; }; }\n"
	    ");\n");
	assert_true(c->listeners[0].gateway);
	assert_int_equal(c->listeners[0].identify[0], IDENTIFY_TOKEN);
	assert_int_equal(c->nroutes, 2);
	r = config_route(c, "llm");
	assert_non_null(r);
	assert_string_equal(r->match.prefix, "/anthropic");
	assert_string_equal(r->match.host, "api.anthropic.com");
	assert_int_equal(r->match.port, 8443);
	assert_string_equal(r->match.base, "/base");
	assert_int_equal(r->match.nrules, 2);
	assert_string_equal(r->match.rules[0].method, "POST");
	assert_null(r->match.rules[1].method);
	assert_string_equal(r->inject_header, "x-api-key");
	assert_int_equal(r->inject_scheme, INJECT_PLAIN);
	/* Relative to the config file's directory. */
	assert_string_equal(r->secret_path, "/tmp/k");
	assert_null(r->tls); /* the daemon opens it (gateway_open) */
	/* The guard: the origin's name and port. */
	assert_int_equal(r->guard.nrules, 1);
	assert_string_equal(r->guard.rules[0].hosts[0], "api.anthropic.com");
	assert_int_equal(r->guard.rules[0].ports[0], 8443);
	r = config_route(c, "git");
	assert_int_equal(r->inject_scheme, INJECT_BASIC);
	assert_string_equal(r->inject_user, "x-access-token");
	assert_int_equal(r->guard.rules[0].nhosts, 0);
	assert_int_equal(r->guard.rules[0].networks.n, 1);
	assert_true(r->git.on);
	assert_int_equal(r->git.nfetch, 2);
	assert_string_equal(r->git.fetch[1], "tools.git");
	assert_int_equal(r->git.npush, 1);
	assert_string_equal(r->git.refs[0], "refs/heads/agent/*");
	assert_false(r->git.allow_delete);
	assert_true(r->git.allow_tags);
	assert_false(config_route(c, "llm")->git.on);
	assert_true(policy_allows_route(&c->policies[0], "llm"));
	assert_false(policy_allows_route(&c->policies[0], "git"));
	config_unref(c);
}

static void
test_route_errors(void **state)
{
	(void)state;
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( );\n"
	                   "  routes = [ \"nope\" ]; } );\n",
	           5, "no route is named \"nope\"");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           1, "gateway: there are no routes");
	load_fails("listen = ( { address = \"127.0.0.1\"; port = 1;\n"
	           "  identify = [ \"token\" ]; } );\n"
	           "identities = ( { name = \"a\"; policy = \"p\"; } );\n"
	           "policies = ( { name = \"p\"; rules = ( ); } );\n",
	           2, "\"token\" is for gateway listeners");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a/../b\";\n"
	                   "  origin = \"https://x.example\"; } );\n",
	           5, "prefix: \"/a/../b\"");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"http://x.example\"; } );\n",
	           6, "origin: \"http://x.example\"");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  allow = [ \"GET /v1/%2e%2e/x\" ]; } );\n",
	           7, "gateway's path check");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  allow = [ \"GET /v1/*/x\" ]; } );\n",
	           7, "'*' only as the last segment");
	load_fails(GW_HEAD
	           "policies = ( { name = \"p\"; rules = ( ); } );\n"
	           "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	           "  origin = \"https://x.example\";\n"
	           "  inject = { header = \"Host\"; secret = \"s\"; }; } );\n",
	           7, "egressd's to write");
	load_fails(
	    GW_HEAD
	    "policies = ( { name = \"p\"; rules = ( ); } );\n"
	    "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	    "  origin = \"https://x.example\";\n"
	    "  inject = { header = \"authorization\"; scheme = \"basic\";\n"
	    "             secret = \"s\"; }; } );\n",
	    7, "user goes with scheme = \"basic\"");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://10.0.0.1\"; } );\n",
	           5, "needs networks that hold it");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\"; },\n"
	                   "  { name = \"s\"; prefix = \"/a\";\n"
	                   "  origin = \"https://y.example\"; } );\n",
	           7, "is route \"r\"'s already");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  git = { fetch = [ \"org/../x\" ]; }; } );\n",
	           7, "git: repository \"org/../x\"");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  git = { push = [ \"org/x\" ];\n"
	                   "          refs = [ \"heads/x\" ]; }; } );\n",
	           8, "git: refs: \"heads/x\"");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  git = { push = [ \"org/x\" ]; }; } );\n",
	           7, "push needs refs");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  git = { fetch = [ \"x\" ]; delete = true; }; } );\n",
	           7, "push lists no repository");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  git = { fetch = [ \"x\" ]; tags = \"yes\"; }; } );\n",
	           7, "git: tags: expected true or false");
	load_fails(GW_HEAD "policies = ( { name = \"p\"; rules = ( ); } );\n"
	                   "routes = ( { name = \"r\"; prefix = \"/a\";\n"
	                   "  origin = \"https://x.example\";\n"
	                   "  git = { fetch = [ \"x\" ]; branches = [ ]; }; } );\n",
	           7, "branches");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_defaults),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_resolver_servers),
	    cmocka_unit_test(test_refcount),
	    cmocka_unit_test(test_same_listeners),
	    cmocka_unit_test(test_sandbox),
	    cmocka_unit_test(test_errors_name_file_and_line),
	    cmocka_unit_test(test_list_errors),
	    cmocka_unit_test(test_identities),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_load_string),
	    cmocka_unit_test(test_int_limits_do_not_wrap),
	    cmocka_unit_test(test_rule_tls),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_route_errors),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
