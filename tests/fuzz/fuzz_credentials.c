/*
 * fuzz_credentials: the credentials file and Proxy-Authorization values
 * (identity.c).  The input is taken both as one line of the credentials
 * file and as the value of a Proxy-Authorization field checked against a
 * small fixed table: "alice" with the Basic password "s3cret", "ci" with the
 * Bearer token "tok-123".  Only those exact credentials may match.
 */
#include <strings.h>

#include "fuzz.h"
#include "identity.h"

static struct identity ids[2];

/* Build a credential through the file format, as config.c does. */
static void
add_credential(struct identity *id, const char *name, enum credential_kind k,
               const char *secret)
{
	char line[256], *got;
	const char *why = NULL;

	id->name = strdup(name);
	id->creds = calloc(1, sizeof(*id->creds));
	if (!id->name || !id->creds ||
	    identity_format_credential(name, k, secret, strlen(secret), line,
	                               sizeof(line)) != 0 ||
	    identity_parse_credential(line, &got, &id->creds[0], &why) != 0 ||
	    strcmp(got, name) != 0)
		abort();
	id->ncreds = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	add_credential(&ids[0], "alice", CREDENTIAL_BASIC, "s3cret");
	add_credential(&ids[1], "ci", CREDENTIAL_BEARER, "tok-123");
	return 0;
}

static int
is_hex_lower(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void
check_line(const uint8_t *data, size_t size)
{
	char *line = fuzz_strdup(data, size), *name = NULL;
	size_t len = strlen(line);
	struct credential cred;
	const char *why = NULL;
	int r = identity_parse_credential(line, &name, &cred, &why);

	FUZZ_CHECK(r == 0 || r == 1 || r == -1);
	if (r == -1)
		FUZZ_CHECK(why != NULL && why[0] != '\0');
	if (r != 0) {
		free(line);
		return;
	}
	/* The name is a field of the line, cut out in place. */
	FUZZ_CHECK(name >= line && name < line + len);
	FUZZ_CHECK(name[0] != '\0' && strpbrk(name, " \t\r\n") == NULL);
	FUZZ_CHECK(cred.kind == CREDENTIAL_BASIC ||
	           cred.kind == CREDENTIAL_BEARER);

	/* Written out again, the line reads the same. */
	size_t cap = strlen(name) + 16 + 2 * IDENTITY_SALT_LEN +
	             2 * IDENTITY_HASH_LEN + 2;
	char *again = malloc(cap), *name2 = NULL;
	struct credential cred2;

	if (!again)
		abort();
	int n = snprintf(again, cap, "%s %s ", name,
	                 cred.kind == CREDENTIAL_BASIC ? "basic" : "bearer");
	FUZZ_CHECK(n > 0 && (size_t)n + 2 * IDENTITY_SALT_LEN +
	                            2 * IDENTITY_HASH_LEN + 2 <=
	                        cap);
	for (size_t i = 0; i < IDENTITY_SALT_LEN; i++, n += 2)
		snprintf(again + n, 3, "%02x", cred.salt[i]);
	again[n++] = ' ';
	for (size_t i = 0; i < IDENTITY_HASH_LEN; i++, n += 2)
		snprintf(again + n, 3, "%02x", cred.hash[i]);
	FUZZ_CHECK(is_hex_lower(again + n - 2 * IDENTITY_HASH_LEN,
	                        2 * IDENTITY_HASH_LEN));
	FUZZ_CHECK(identity_parse_credential(again, &name2, &cred2, &why) == 0);
	FUZZ_CHECK(strcmp(name, name2) == 0 && cred.kind == cred2.kind);
	FUZZ_CHECK(memcmp(cred.salt, cred2.salt, sizeof(cred.salt)) == 0);
	FUZZ_CHECK(memcmp(cred.hash, cred2.hash, sizeof(cred.hash)) == 0);
	free(again);
	free(line);
}

/* What follows the scheme and its spaces. */
static int
credential_is(const char *v, size_t n, const char *scheme, const char *want)
{
	size_t sl = strlen(scheme);

	if (n <= sl || strncasecmp(v, scheme, sl) != 0)
		return 0;
	v += sl;
	n -= sl;
	while (n && *v == ' ')
		v++, n--;
	return n == strlen(want) && memcmp(v, want, n) == 0;
}

static void
check_header(const uint8_t *data, size_t size)
{
	char *value = fuzz_dup(data, size);
	const struct identity *id =
	    identity_by_credentials(ids, 2, value, size);

	/* base64("alice:s3cret") has no padding: one spelling only. */
	if (id == &ids[0])
		FUZZ_CHECK(
		    credential_is(value, size, "Basic ", "YWxpY2U6czNjcmV0"));
	else if (id == &ids[1])
		FUZZ_CHECK(credential_is(value, size, "Bearer ", "tok-123"));
	else
		FUZZ_CHECK(id == NULL);
	free(value);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_line(data, size);
	check_header(data, size);
	return 0;
}
