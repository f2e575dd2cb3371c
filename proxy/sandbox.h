/*
 * sandbox: what egressd gives up once its sockets are bound and its log is
 * open.  Started as root, it becomes the configured user (sandbox.user: that
 * user's uid and primary group, no supplementary groups); in every case it
 * drops all capabilities, makes the process not dumpable (no core file; its
 * /proc/PID/ belongs to root, so not even its own user can open its memory),
 * sets no_new_privs, and (sandbox.seccomp, on by default) installs a seccomp
 * filter that lets through only the system calls egressd makes while
 * serving.  Any other call fails with EPERM.
 *
 * Order in main: sandbox_init, sandbox_prepare_log, open the log, bind,
 * sandbox_enter, then start the worker threads (they inherit the filter).
 */
#ifndef EGRESSD_SANDBOX_H
#define EGRESSD_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/*
 * Sanitizer runtimes make calls of their own: LeakSanitizer stops the world
 * at exit with a clone(2)d tracer that ptrace(2)s every thread (making the
 * process dumpable with prctl(2) for that time, then not again), and reports
 * are symbolised by reading /proc and the binary.  Those builds let more
 * through (SANDBOX_SANITIZER is then defined; the unit test looks at it).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||     \
    __has_feature(memory_sanitizer) || __has_feature(leak_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

struct sandbox {
	int drop;    /* started as root: switch to uid/gid */
	uid_t uid;   /* the user to become (drop), or the current one */
	gid_t gid;   /* its primary group, or the current group */
	int seccomp; /* install the filter */
	char user[33];
};

/*
 * Decide what sandbox_enter will do, before anything is opened.  Started as
 * root (any of the real, effective or saved uids is 0), cs->user is
 * required and must name a user other than root in the passwd database.
 * Not started as root, cs->user is not needed; when it is set and does not
 * name the current user, a one-line note for the log is written to note
 * (else note is ""): it is ignored.  Returns 0, or -1 with the problem in
 * err.
 */
int sandbox_init(struct sandbox *sb, const struct config_sandbox *cs,
                 char *note, size_t notelen, char *err, size_t errlen);

/*
 * Before the log is opened as root: when egressd will drop to a user and the
 * log file at path does not exist yet, create it (0640) owned by that user
 * and its group, so that the user can write it and reopen it after the
 * drop.  An existing file is left as it is.  "-" (stdout) and a process
 * that does not drop do nothing.  0, or -1 with the problem in err.
 */
int sandbox_prepare_log(const struct sandbox *sb, const char *path, char *err,
                        size_t errlen);

/*
 * Give up privileges: become the user (checking that root cannot be
 * regained), drop capabilities, clear dumpable, set no_new_privs, and
 * install the seccomp filter on every thread of the process.  Call it once,
 * after the last bind and before starting worker threads.  0, or -1 with the
 * problem in err (the caller must then exit: the process may be half-dropped).
 */
int sandbox_enter(const struct sandbox *sb, char *err, size_t errlen);

/* What sandbox_enter does, for the start line: "sandbox: user nobody,
 * seccomp on" or "sandbox: uid 1000, seccomp off". */
void sandbox_describe(const struct sandbox *sb, char *out, size_t len);

#endif
