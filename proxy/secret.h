/*
 * secret: a credential egressd adds to requests on an agent's behalf (an API
 * key, a git token), read from a file: a Kubernetes Secret mount, which only
 * egressd's container has.  The value is never formatted into a log line or
 * an answer, and its bytes are wiped when it is replaced or freed.  A
 * rotated file takes effect without a restart: secret_refresh re-reads the
 * file when the one behind the path changed (Kubernetes swaps a symlink, so
 * the inode changes), and a reader holds on to the value it took until it
 * puts it back, whatever a refresh does meanwhile.
 *
 * A secret may be read from any thread; refreshes come from one.
 */
#ifndef EGRESSD_SECRET_H
#define EGRESSD_SECRET_H

#include <stddef.h>

/* The longest value accepted, in bytes. */
#define SECRET_MAX 8192

struct secret;

/* One value of a secret, immutable while held. */
struct secret_value {
	size_t len;
	const char *bytes; /* not NUL-terminated in the sense of a string:
	                    * use len (there is a NUL after it, for safety) */
};

/*
 * Read the secret at path.  One trailing "\n" or "\r\n" is dropped (what
 * `echo` and editors leave); what remains must be 1 to SECRET_MAX bytes of
 * visible ASCII and inner spaces, since it goes into a header field.  NULL
 * with the problem in err, which never contains the value.
 */
struct secret *secret_load(const char *path, char *err, size_t errlen);

/*
 * Re-read the file if the one behind the path is not the one last read
 * (device, inode, size or modification time differ).  Returns 1 when the
 * value changed, 0 when not, -1 when the file cannot be read or is not a
 * valid secret: then the old value stays in use, and err says why (never
 * with the value).
 */
int secret_refresh(struct secret *s, char *err, size_t errlen);

/* Take the current value: it stays valid, and its bytes unchanged, until
 * secret_put, whatever secret_refresh or secret_free do meanwhile. */
const struct secret_value *secret_get(struct secret *s);

/* Give back a value taken with secret_get; the last holder of a replaced
 * value wipes it. */
void secret_put(const struct secret_value *v);

/* The path the secret is read from. */
const char *secret_path(const struct secret *s);

/* Free the secret (NULL is fine); values still held stay valid until put. */
void secret_free(struct secret *s);

#endif
