/*
 * Unit tests for sandbox: the seccomp filter refuses what egressd never
 * does and lets through what it does; the switch to a user holds; started
 * as another user, egressd cannot write its own memory through
 * /proc/self/mem; the rules for root and sandbox.user; the log file made
 * for the user.  Each filter or privilege change happens in a forked child,
 * which reports a failed check on stderr and in its exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cmocka.h>

#include "sandbox.h"

#ifndef AF_PACKET
#define AF_PACKET 17
#endif

/* In a child: say which check failed, and end the child with status 1. */
static void
child_fail(int line, const char *what)
{
	char buf[300];
	int n = snprintf(buf, sizeof(buf), "test_sandbox.c:%d: %s (errno %d)\n",
	                 line, what, errno);

	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		_exit(2);
	_exit(1);
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			child_fail(__LINE__, #cond);                           \
	} while (0)

/* A call that must be refused with EPERM. */
#define REFUSED(call)                                                          \
	do {                                                                   \
		errno = 0;                                                     \
		if (!((call) == -1 && errno == EPERM))                         \
			child_fail(__LINE__, "not refused: " #call);           \
	} while (0)

/* Run fn in a forked child; it must end with status 0. */
static void
in_child(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The value of a "Name:\tvalue" line of /proc/self/status, or -1. */
static long
proc_status(const char *name)
{
	char buf[4096], *p;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, strlen(name)) == 0 &&
		    p[strlen(name)] == ':')
			return strtol(p + strlen(name) + 1, NULL, 16);
	return -1;
}

static void *
thread_main(void *arg)
{
	return arg;
}

static void
enter_filter(void)
{
	struct sandbox sb;
	char err[256] = "";

	/* No drop (the test may run as root): capabilities, no_new_privs
	 * and the filter, as a process started without root gets them. */
	memset(&sb, 0, sizeof(sb));
	sb.seccomp = 1;
	if (sandbox_enter(&sb, err, sizeof(err)) < 0)
		child_fail(__LINE__, err);
}

static void
refused_calls(void *arg)
{
	/* Were it not refused, /bin/false would end the child with 1. */
	char *const argv[] = {(char *)"/bin/false", NULL};
	struct utsname u;
	int s;

	(void)arg;
	enter_filter();
	REFUSED(execve(argv[0], argv, NULL));
	REFUSED(socket(AF_PACKET, SOCK_RAW, 0));
	REFUSED(socket(AF_NETLINK, SOCK_RAW, 0));
	REFUSED(socket(AF_UNIX, SOCK_STREAM, 0));
	REFUSED(socketpair(AF_UNIX, SOCK_STREAM, 0, (int[2]){0, 0}));
	/* No new listening sockets once the listeners are bound. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	REFUSED(bind(s, (struct sockaddr *)&sin, sizeof(sin)));
	REFUSED(listen(s, 1));
	close(s);
	REFUSED(uname(&u));
	REFUSED(unshare(CLONE_NEWUSER));
	REFUSED(ioctl(STDIN_FILENO, TIOCSTI, "x"));
	REFUSED(syscall(SYS_tgkill, getppid(), getppid(), 0));
	REFUSED(setresuid(0, 0, 0));
	REFUSED(chroot("/"));
	/* clone3's flags cannot be read by a filter: ENOSYS makes glibc use
	 * clone, whose flags are checked. */
	errno = 0;
	CHECK(syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS);
#ifndef SANDBOX_SANITIZER
	REFUSED(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	REFUSED(fork());
	REFUSED(kill(getppid(), 0));
	REFUSED(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
	errno = 0;
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_EXEC,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED &&
	      errno == EPERM);
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED);
	REFUSED(mprotect(page, 4096, PROT_READ | PROT_EXEC));
	munmap(page, 4096);
#endif
}

static void
test_filter_refuses(void **state)
{
	(void)state;
	in_child(refused_calls, NULL);
}

static void
allowed_calls(void *arg)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons(1),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	unsigned char rnd[16];
	struct timespec ts;
	pthread_t t;
	void *ret = NULL;
	char buf[64];
	int s, one = 1, a[2], b[2], avail = 0;
	void *big;

	(void)arg;
	enter_filter();
	CHECK(proc_status("NoNewPrivs") == 1);
	CHECK(proc_status("Seccomp") == 2);
	CHECK(proc_status("CapEff") == 0);
	/* An upstream connection: TCP over IPv4 (nothing listens on port 1,
	 * so it is refused, but by the peer and not the filter). */
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(s >= 0);
	CHECK(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
	errno = 0;
	CHECK(connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 ||
	      errno == EINPROGRESS || errno == ECONNREFUSED);
	close(s);
	s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(s >= 0 || errno == EAFNOSUPPORT);
	if (s >= 0)
		close(s);
	/* The relay's pipes: pipe2, F_SETPIPE_SZ, splice, FIONREAD. */
	CHECK(pipe2(a, O_CLOEXEC | O_NONBLOCK) == 0);
	CHECK(pipe2(b, O_CLOEXEC | O_NONBLOCK) == 0);
	CHECK(fcntl(a[1], F_SETPIPE_SZ, 1 << 16) >= (1 << 16));
	CHECK(write(a[1], "hello", 5) == 5);
	CHECK(splice(a[0], NULL, b[1], NULL, 5, SPLICE_F_NONBLOCK) == 5);
	CHECK(ioctl(b[0], FIONREAD, &avail) == 0 && avail == 5);
	CHECK(read(b[0], buf, sizeof(buf)) == 5 &&
	      memcmp(buf, "hello", 5) == 0);
	/* Worker threads start after the filter. */
	CHECK(pthread_create(&t, NULL, thread_main, buf) == 0);
	CHECK(pthread_join(t, &ret) == 0 && ret == buf);
	/* Memory, time, randomness. */
	big = malloc(64 << 20);
	CHECK(big != NULL);
	memset(big, 1, 64 << 20);
	free(big);
	CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	CHECK(syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts) == 0);
	CHECK(getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd));
	/* Reading a file (a reload). */
	CHECK(proc_status("Pid") > 0);
}

static void
test_filter_allows(void **state)
{
	(void)state;
	in_child(allowed_calls, NULL);
}

static struct passwd nobody;

static int
find_nobody(void)
{
	struct passwd *pw = getpwnam("nobody");

	if (!pw)
		return -1;
	nobody = *pw;
	return 0;
}

static void
drop_to_nobody(void *arg)
{
	/* Without the filter: the kernel's own checks are what is tested. */
	struct config_sandbox cs = {(char *)"nobody", 0};
	char note[256], err[256] = "";
	struct sandbox sb;

	(void)arg;
	CHECK(sandbox_init(&sb, &cs, note, sizeof(note), err, sizeof(err)) ==
	      0);
	CHECK(sb.drop == 1 && sb.uid == nobody.pw_uid &&
	      sb.gid == nobody.pw_gid);
	if (sandbox_enter(&sb, err, sizeof(err)) < 0)
		child_fail(__LINE__, err);
	CHECK(getuid() == nobody.pw_uid && geteuid() == nobody.pw_uid);
	CHECK(getgid() == nobody.pw_gid && getegid() == nobody.pw_gid);
	CHECK(getgroups(0, NULL) == 0);
	CHECK(proc_status("CapEff") == 0 && proc_status("CapPrm") == 0);
	CHECK(proc_status("NoNewPrivs") == 1);
	CHECK(proc_status("Seccomp") == 0);
	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
	REFUSED(setuid(0));
	REFUSED(seteuid(0));
	REFUSED(setgid(0));
	REFUSED(setgroups(0, NULL));
}

static void
test_drop_user(void **state)
{
	(void)state;
	if (geteuid() != 0 || find_nobody() < 0)
		skip();
	in_child(drop_to_nobody, NULL);
}

/*
 * The Kubernetes manifests start egressd as UID 65532 with no sandbox.user.
 * Such a process is dumpable, so /proc/self/mem is its own (owner 65532,
 * 0600) and the filter lets openat, lseek and write through: it could write
 * its own code, the ban on executable memory notwithstanding.  What the
 * child saw, for the parent to judge.
 */
#define SELF_MEM_UID 65532

struct self_mem {
	int dumpable;   /* PR_GET_DUMPABLE after it (filter off), or -1 */
	uid_t mem_uid;  /* owner of /proc/self/mem after it */
	int open_errno; /* open(O_RDWR) of /proc/self/mem: 0 when it opened */
	int patched;    /* it opened, and a read-only page was written */
	int seccomp;    /* the filter was on */
	int fd;         /* the pipe to the parent (in the child) */
};

static void
self_mem_child(void *arg)
{
	struct self_mem *r = arg;
	struct config_sandbox cs = {NULL, r->seccomp};
	char note[256], err[256] = "";
	struct sandbox sb;
	struct stat st;
	char *page;
	int fd;

	/* Become the user as a container starts it: not through sandbox.user.
	 * Root's setresuid clears dumpable, where a program exec'd as the user
	 * has it set: set it back. */
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setresgid(SELF_MEM_UID, SELF_MEM_UID, SELF_MEM_UID) == 0);
	CHECK(setresuid(SELF_MEM_UID, SELF_MEM_UID, SELF_MEM_UID) == 0);
	CHECK(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0);
	CHECK(sandbox_init(&sb, &cs, note, sizeof(note), err, sizeof(err)) ==
	      0);
	CHECK(sb.drop == 0 && sb.uid == SELF_MEM_UID);
	page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED);
	if (sandbox_enter(&sb, err, sizeof(err)) < 0)
		child_fail(__LINE__, err);
	/* The filter refuses prctl: ask only when it is off. */
	r->dumpable = r->seccomp ? -1 : prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	r->mem_uid = stat("/proc/self/mem", &st) == 0 ? st.st_uid : (uid_t)-1;
	errno = 0;
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	r->open_errno = fd < 0 ? errno : 0;
	if (fd >= 0) {
		/* The page is PROT_READ; /proc/self/mem writes it anyway. */
		r->patched = lseek(fd, (off_t)(uintptr_t)page, SEEK_SET) ==
		                 (off_t)(uintptr_t)page &&
		             write(fd, "X", 1) == 1 && page[0] == 'X';
		close(fd);
	}
	CHECK(write(r->fd, r, sizeof(*r)) == (ssize_t)sizeof(*r));
}

static void
self_mem_check(int seccomp)
{
	struct self_mem r;
	int p[2];

	memset(&r, 0, sizeof(r));
	r.seccomp = seccomp;
	assert_int_equal(pipe(p), 0);
	r.fd = p[1];
	in_child(self_mem_child, &r);
	close(p[1]);
	assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
	close(p[0]);
	if (r.open_errno == 0)
		fail_msg("/proc/self/mem opened for writing in the sandbox "
		         "(seccomp %s) as uid %d%s",
		         seccomp ? "on" : "off", SELF_MEM_UID,
		         r.patched ? ", and a read-only page was written" : "");
	assert_int_equal(r.open_errno, EACCES);
	if (!seccomp)
		assert_int_equal(r.dumpable, 0);
	/* Not dumpable: the kernel hands /proc/PID/ to root. */
	assert_int_equal(r.mem_uid, 0);
}

static void
test_self_mem_not_root(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("test_self_mem_not_root: skipped: needs root, to "
		              "become uid %d as a container starts egressd\n",
		              SELF_MEM_UID);
		skip();
	}
	self_mem_check(1);
	self_mem_check(0);
}

/* Not started as root, sandbox.user is not needed; naming another user is
 * noted, not refused; naming the current one says nothing. */
static void
init_not_root(void *arg)
{
	struct config_sandbox cs = {NULL, 1};
	char note[256], err[256] = "";
	struct passwd *me;
	struct sandbox sb;

	(void)arg;
	if (geteuid() == 0) {
		CHECK(setgroups(0, NULL) == 0);
		CHECK(setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid) ==
		      0);
		CHECK(setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid) ==
		      0);
	}
	CHECK(sandbox_init(&sb, &cs, note, sizeof(note), err, sizeof(err)) ==
	      0);
	CHECK(sb.drop == 0 && sb.seccomp == 1 && note[0] == '\0');
	cs.user = (char *)"egressd-no-such-user";
	CHECK(sandbox_init(&sb, &cs, note, sizeof(note), err, sizeof(err)) ==
	      0);
	CHECK(sb.drop == 0 && strstr(note, "\"egressd-no-such-user\" ignored"));
	me = getpwuid(getuid());
	if (me) {
		cs.user = me->pw_name;
		CHECK(sandbox_init(&sb, &cs, note, sizeof(note), err,
		                   sizeof(err)) == 0);
		CHECK(sb.drop == 0 && note[0] == '\0');
	}
}

static void
test_init_rules(void **state)
{
	struct config_sandbox cs = {NULL, 1};
	char note[256], err[256];
	struct sandbox sb;

	(void)state;
	if (geteuid() == 0) {
		if (find_nobody() < 0)
			skip();
		/* Root must be told whom to become. */
		assert_int_equal(sandbox_init(&sb, &cs, note, sizeof(note), err,
		                              sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "started as root without "
		                            "sandbox.user"));
		cs.user = (char *)"egressd-no-such-user";
		assert_int_equal(sandbox_init(&sb, &cs, note, sizeof(note), err,
		                              sizeof(err)),
		                 -1);
		assert_non_null(
		    strstr(err, "no user named \"egressd-no-such-user\""));
		cs.user = (char *)"root";
		assert_int_equal(sandbox_init(&sb, &cs, note, sizeof(note), err,
		                              sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "has uid 0"));
		cs.user = (char *)"nobody";
		assert_int_equal(sandbox_init(&sb, &cs, note, sizeof(note), err,
		                              sizeof(err)),
		                 0);
		assert_int_equal(sb.drop, 1);
		assert_string_equal(note, "");
		sandbox_describe(&sb, err, sizeof(err));
		assert_string_equal(err, "sandbox: user nobody, seccomp on");
	}
	in_child(init_not_root, NULL);
}

static void
test_prepare_log(void **state)
{
	struct config_sandbox cs = {(char *)"nobody", 1};
	char dir[] = "/tmp/egressd-test-sandbox-XXXXXX", path[128], old[128];
	char target[128], link[128], note[256], err[256];
	struct sandbox sb;
	struct stat st;
	int fd;

	(void)state;
	if (geteuid() != 0 || find_nobody() < 0)
		skip();
	assert_non_null(mkdtemp(dir));
	assert_int_equal(
	    sandbox_init(&sb, &cs, note, sizeof(note), err, sizeof(err)), 0);
	/* A new file: made for the user, 0640. */
	snprintf(path, sizeof(path), "%s/new.log", dir);
	assert_int_equal(sandbox_prepare_log(&sb, path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, nobody.pw_uid);
	assert_int_equal(st.st_gid, nobody.pw_gid);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* An existing file is the operator's: left as it is. */
	snprintf(old, sizeof(old), "%s/old.log", dir);
	fd = open(old, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sandbox_prepare_log(&sb, old, err, sizeof(err)), 0);
	assert_int_equal(stat(old, &st), 0);
	assert_int_equal(st.st_uid, 0);
	/* A symbolic link is never followed to a file that changes owner. */
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(link, sizeof(link), "%s/link.log", dir);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(sandbox_prepare_log(&sb, link, err, sizeof(err)), 0);
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* stdout, and a process that does not drop: nothing. */
	assert_int_equal(sandbox_prepare_log(&sb, "-", err, sizeof(err)), 0);
	sb.drop = 0;
	snprintf(target, sizeof(target), "%s/nodrop.log", dir);
	assert_int_equal(sandbox_prepare_log(&sb, target, err, sizeof(err)), 0);
	assert_int_equal(lstat(target, &st), -1);
	unlink(path);
	unlink(old);
	unlink(link);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filter_refuses),
	    cmocka_unit_test(test_filter_allows),
	    cmocka_unit_test(test_drop_user),
	    cmocka_unit_test(test_self_mem_not_root),
	    cmocka_unit_test(test_init_rules),
	    cmocka_unit_test(test_prepare_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
