#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Building with -DSANDBOX_SECCOMP_LOG (make BUILD=build-log CC="cc
 * -DSANDBOX_SECCOMP_LOG") makes every call outside the list succeed and be
 * logged by the kernel (dmesg: "audit: type=1326 ... syscall=N") instead of
 * failing: the way to find a call a new code path needs (run the
 * integration suite on that binary).  Never for production.
 */
#ifdef SANDBOX_SECCOMP_LOG
#define SANDBOX_DENY SCMP_ACT_LOG
#else
#define SANDBOX_DENY SCMP_ACT_ERRNO(EPERM)
#endif

/*
 * The system calls egressd makes after start-up, found by running the
 * integration suite under strace -f and by reading the code paths.  Each
 * group says who needs it.  Calls that need their arguments checked are
 * added in seccomp_rules below instead.
 */
static const int allowed_calls[] = {
    /* event loops (libevent epoll), worker wake-ups, the relay */
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(read),
    SCMP_SYS(readv),
    SCMP_SYS(write),
    SCMP_SYS(writev),
    SCMP_SYS(close),
    SCMP_SYS(fcntl),
    SCMP_SYS(pipe2),
    SCMP_SYS(splice),
    /* sockets: clients, upstreams, DNS (c-ares), the admin listener */
    SCMP_SYS(accept4),
    SCMP_SYS(accept),
    SCMP_SYS(connect),
    SCMP_SYS(shutdown),
    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    /* reload (config, credentials, TLS files), log reopen */
    SCMP_SYS(openat),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(getdents64),
    SCMP_SYS(dup3),
    /* memory (malloc arenas, thread stacks) */
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    /* threads: locks, start-up and exit of a thread, signals */
    SCMP_SYS(futex),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_yield),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    /* time (the vDSO's fallbacks), randomness (OpenSSL) */
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(time),
    SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(getrandom),
#ifdef SANDBOX_SANITIZER
    /* LeakSanitizer's stop-the-world and the sanitizers' reports */
    SCMP_SYS(ptrace),
    SCMP_SYS(wait4),
    SCMP_SYS(prctl),
    SCMP_SYS(clone),
    SCMP_SYS(mmap),
    SCMP_SYS(mprotect),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(getppid),
    SCMP_SYS(kill),
    SCMP_SYS(open),
    SCMP_SYS(getdents),
    SCMP_SYS(readlink),
    SCMP_SYS(readlinkat),
    SCMP_SYS(pread64),
#endif
};

static int
is_root(void)
{
	uid_t r, e, s;

	if (getresuid(&r, &e, &s) < 0)
		return 1;
	return r == 0 || e == 0 || s == 0;
}

/* Look a user up; 0 with *pw filled, or -1 (no such user, or an error). */
static int
find_user(const char *name, struct passwd *pw, char *buf, size_t len)
{
	struct passwd *found = NULL;

	return getpwnam_r(name, pw, buf, len, &found) == 0 && found ? 0 : -1;
}

int
sandbox_init(struct sandbox *sb, const struct config_sandbox *cs, char *note,
             size_t notelen, char *err, size_t errlen)
{
	struct passwd pw;
	char buf[4096];

	memset(sb, 0, sizeof(*sb));
	sb->seccomp = cs->seccomp;
	if (notelen)
		note[0] = '\0';
	if (!is_root()) {
		sb->uid = getuid();
		sb->gid = getgid();
		if (cs->user &&
		    (find_user(cs->user, &pw, buf, sizeof(buf)) < 0 ||
		     pw.pw_uid != getuid()))
			snprintf(note, notelen,
			         "sandbox.user \"%s\" ignored: egressd was "
			         "started as uid %u, not as root",
			         cs->user, (unsigned)getuid());
		return 0;
	}
	if (!cs->user) {
		snprintf(err, errlen,
		         "started as root without sandbox.user: egressd does "
		         "not serve as root; set it to the user to serve as "
		         "(sandbox = { user = \"nobody\"; };), or start "
		         "egressd as that user");
		return -1;
	}
	if (find_user(cs->user, &pw, buf, sizeof(buf)) < 0) {
		snprintf(err, errlen, "sandbox.user: no user named \"%s\"",
		         cs->user);
		return -1;
	}
	if (pw.pw_uid == 0 || pw.pw_gid == 0) {
		snprintf(err, errlen,
		         "sandbox.user: \"%s\" has uid %u, group %u: name a "
		         "user without root's uid or group",
		         cs->user, (unsigned)pw.pw_uid, (unsigned)pw.pw_gid);
		return -1;
	}
	sb->drop = 1;
	sb->uid = pw.pw_uid;
	sb->gid = pw.pw_gid;
	snprintf(sb->user, sizeof(sb->user), "%s", cs->user);
	return 0;
}

int
sandbox_prepare_log(const struct sandbox *sb, const char *path, char *err,
                    size_t errlen)
{
	int fd;

	if (!sb->drop || strcmp(path, "-") == 0)
		return 0;
	/* O_EXCL: only a file made here, never one that was there (or a
	 * symbolic link put in its place), changes owner. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0640);
	if (fd < 0)
		return 0; /* Exists, or log_open will say why not. */
	if (fchown(fd, sb->uid, sb->gid) < 0) {
		snprintf(err, errlen, "log: %s: chown to %s: %s", path,
		         sb->user, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
drop_user(const struct sandbox *sb, char *err, size_t errlen)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (setgroups(0, NULL) < 0 ||
	    setresgid(sb->gid, sb->gid, sb->gid) < 0 ||
	    setresuid(sb->uid, sb->uid, sb->uid) < 0) {
		snprintf(err, errlen, "sandbox: cannot become %s: %s", sb->user,
		         strerror(errno));
		return -1;
	}
	/* Check, rather than trust, that root is gone for good. */
	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    r != sb->uid || e != sb->uid || s != sb->uid || rg != sb->gid ||
	    eg != sb->gid || sg != sb->gid || getgroups(0, NULL) != 0 ||
	    setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
		snprintf(err, errlen,
		         "sandbox: the switch to %s did not hold (root could "
		         "be regained)",
		         sb->user);
		return -1;
	}
	return 0;
}

/* Empty the effective, permitted and inheritable sets (a process started
 * without root may still hold capabilities, file or ambient ones); the
 * ambient set follows the permitted one. */
static int
drop_capabilities(char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0) {
		snprintf(err, errlen, "sandbox: cannot drop capabilities: %s",
		         strerror(errno));
		return -1;
	}
	return 0;
}

/* Rules that look at arguments.  A 32-bit argument is compared on its low
 * half only: the kernel ignores the rest, so must the filter. */
static int
seccomp_rules(scmp_filter_ctx ctx)
{
	const scmp_datum_t low = 0xffffffffu;
	int rc = 0;

	/* New sockets: TCP and UDP over IPv4 and IPv6 only (no packet,
	 * netlink or local sockets). */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	                       SCMP_A0(SCMP_CMP_MASKED_EQ, low, AF_INET));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	                       SCMP_A0(SCMP_CMP_MASKED_EQ, low, AF_INET6));
	/* libevent asks how much a socket holds. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	                       SCMP_A1(SCMP_CMP_MASKED_EQ, low, FIONREAD));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	                       SCMP_A1(SCMP_CMP_MASKED_EQ, low, FIONBIO));
	/* abort(3) signals its own process, and nothing else may be. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
	                       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
#ifndef SANDBOX_SANITIZER
	/* Threads (the workers), never processes.  glibc tries clone3 first,
	 * whose flags a filter cannot read: ENOSYS sends it to clone. */
	rc |= seccomp_rule_add(
	    ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* Memory, never executable: no new code can be mapped. */
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	                       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
	                       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
#endif
	rc |=
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return rc;
}

static int
load_filter(char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SANDBOX_DENY);
	int rc = -1;

	if (!ctx) {
		snprintf(err, errlen, "sandbox: seccomp: out of memory");
		return -1;
	}
	/* A call made through another ABI (int 0x80 on x86-64) is not
	 * egressd's: end the process.  TSYNC puts the filter on every thread
	 * there is, not only this one. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	                     SCMP_ACT_KILL_PROCESS) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(allowed_calls) / sizeof(allowed_calls[0]);
	     i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_calls[i], 0) <
		    0)
			goto out;
	if (seccomp_rules(ctx) != 0)
		goto out;
	rc = seccomp_load(ctx);
out:
	if (rc < 0)
		snprintf(err, errlen,
		         "sandbox: cannot install the seccomp "
		         "filter (sandbox.seccomp = false turns "
		         "it off)");
	seccomp_release(ctx);
	return rc < 0 ? -1 : 0;
}

int
sandbox_enter(const struct sandbox *sb, char *err, size_t errlen)
{
	if (sb->drop && drop_user(sb, err, errlen) < 0)
		return -1;
	if (drop_capabilities(err, errlen) < 0)
		return -1;
	/* Not dumpable, whoever started egressd (a container starts it as
	 * its user, and such a process is dumpable): /proc/PID/ then belongs
	 * to root, so neither egressd nor another process of its user can
	 * open /proc/self/mem, whose writes would patch code past the
	 * filter's ban on executable memory, and a crash writes no core file
	 * with keys or credentials in it.  After the switch of user, which
	 * sets it to fs.suid_dumpable; before the filter, which refuses
	 * prctl. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		snprintf(err, errlen, "sandbox: cannot clear dumpable: %s",
		         strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "sandbox: cannot set no_new_privs: %s",
		         strerror(errno));
		return -1;
	}
	if (sb->seccomp && load_filter(err, errlen) < 0)
		return -1;
	return 0;
}

void
sandbox_describe(const struct sandbox *sb, char *out, size_t len)
{
	if (sb->drop)
		snprintf(out, len, "sandbox: user %s, seccomp %s", sb->user,
		         sb->seccomp ? "on" : "off");
	else
		snprintf(out, len, "sandbox: uid %u, seccomp %s",
		         (unsigned)sb->uid, sb->seccomp ? "on" : "off");
}
