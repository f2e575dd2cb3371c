"""The self-sandbox (issue 7, item 4). Started as root, egressd refuses to
serve unless sandbox.user names the user to become; it binds, then becomes
that user (no supplementary groups, no capabilities), sets no_new_privs and
installs its seccomp filter on every thread. Reload and log reopen work
after the drop, as that user; the sandbox itself changes only on restart.
`-t` and `--explain` do not serve, so they run as root without a user.
The rest of the suite runs under the same sandbox (harness.SANDBOX)."""

import errno
import os
import pwd
import signal
import stat
import subprocess
import sys

import pytest

import harness as H

ECHO = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)
NOBODY = pwd.getpwnam(H.SANDBOX_USER)


def _status(path):
    """/proc/.../status as {field: value}."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


# Under a wrapper (valgrind) the harness turns the filter off: valgrind
# cannot run a program that installs one.
SECCOMP_DEFAULT = "0" if H.WRAPPER else "2"
SECCOMP_WORD = "off" if H.WRAPPER else "on"


def _assert_sandboxed(pid, seccomp=None):
    seccomp = SECCOMP_DEFAULT if seccomp is None else seccomp
    st = _status("/proc/%d/status" % pid)
    # real, effective, saved, filesystem
    assert st["Uid"].split() == [str(NOBODY.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(NOBODY.pw_gid)] * 4, st["Gid"]
    assert st["Groups"] == "", st["Groups"]
    assert st["NoNewPrivs"] == "1", st
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, st
    assert st["Seccomp"] == seccomp, st
    # Every thread: the workers were started under the filter.
    tasks = os.listdir("/proc/%d/task" % pid)
    assert len(tasks) >= 2, tasks
    for t in tasks:
        ts = _status("/proc/%d/task/%s/status" % (pid, t))
        assert ts["Seccomp"] == seccomp and ts["NoNewPrivs"] == "1", (t, ts)
        assert ts["Uid"].split()[1] == str(NOBODY.pw_uid), (t, ts["Uid"])
    # Not dumpable, however it was started (issue 18): the kernel gives
    # /proc/PID/ to root, so the user egressd runs as cannot open its memory
    # for writing, and neither can egressd itself (/proc/self/mem would
    # otherwise let it write its own code past the filter).
    assert os.stat("/proc/%d/mem" % pid).st_uid == 0, "egressd is dumpable"
    err = _open_mem_as(NOBODY, pid)
    assert err == errno.EACCES, "/proc/%d/mem as %s: %s" % (
        pid, H.SANDBOX_USER, os.strerror(err) if err else "opened for writing")


_OPEN_MEM = """
import os, sys
try:
    os.close(os.open("/proc/%s/mem" % sys.argv[1], os.O_RDWR))
    print(0)
except OSError as e:
    print(e.errno)
"""


def _open_mem_as(user, pid):
    """The errno of opening /proc/PID/mem for writing as user; 0 if it opened."""
    p = subprocess.run([sys.executable, "-c", _OPEN_MEM, str(pid)], cwd="/",
                       user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (p.returncode, p.stderr)
    return int(p.stdout)


def test_root_without_user_is_refused(world, tmp_path):
    port = H.free_port()
    log = str(tmp_path / "decisions.log")
    conf = tmp_path / "egressd.conf"
    conf.write_text(H.render_config(port, log, world.policy, sandbox=""))
    p = H.run_egressd("-c", str(conf), timeout=10)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "started as root without sandbox.user" in p.stderr, p.stderr
    assert 'sandbox = { user = "nobody"; }' in p.stderr, p.stderr
    # Refused before anything was opened.
    assert not os.path.exists(log)
    assert not H.listening(port)


def test_unknown_user_is_refused(world, tmp_path):
    conf = tmp_path / "egressd.conf"
    conf.write_text(H.render_config(H.free_port(), str(tmp_path / "l"), world.policy,
                                    sandbox='user = "egressd-no-such-user";'))
    p = H.run_egressd("-c", str(conf), timeout=10)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert 'sandbox.user: no user named "egressd-no-such-user"' in p.stderr, p.stderr


def test_check_and_explain_run_as_root_without_user(world, tmp_path):
    conf = tmp_path / "egressd.conf"
    conf.write_text(H.render_config(H.free_port(), str(tmp_path / "l"), world.policy,
                                    sandbox=""))
    p = H.run_egressd("-t", "-c", str(conf), timeout=10)
    assert p.returncode == 0 and "configuration OK" in p.stdout, (p.stdout, p.stderr)
    p = H.run_egressd("-c", str(conf), "--explain", "https://api.allowed.test/", timeout=10)
    assert p.returncode == 0 and "verdict: allow" in p.stdout, (p.stdout, p.stderr)


def test_serves_as_the_user_under_the_filter(world, egressd_factory):
    e = egressd_factory("sandboxed", lambda port, log: H.render_config(port, log, world.policy))
    start = e.log.wait(event="start")
    assert "sandbox: user nobody, seccomp %s" % SECCOMP_WORD in start["message"], start
    _assert_sandboxed(e.pid)
    # The log file egressd made before the drop is the user's.
    st = os.stat(e.log_path)
    assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), st
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    # And it serves: a tunnel through the filter.
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        assert c.echo(b"sandboxed") == b"sandboxed"


def test_reload_and_log_reopen_after_the_drop(world, egressd_factory):
    e = egressd_factory("sandbox-reload", lambda port, log: H.render_config(
        port, log, world.policy))
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
    # Reload: the file is read again, now as the user.
    denying = world.policy.replace('networks = [ "203.0.113.0/24" ];\n'
                                   '        ports = [ 443, 444, 445 ];',
                                   'networks = [ "203.0.113.0/24" ];\n'
                                   '        ports = [ 444 ];')
    assert denying != world.policy
    mark = e.log.mark()
    e.reload(H.render_config(e.port, e.log_path, denying))
    e.log.wait(since=mark, event="reload", timeout=5)
    r = H.request(e.port, H.connect_req(ECHO))
    H.assert_refusal(r, "http_request_denied", "port_not_allowed", ECHO, "agent")
    # SIGUSR1 after rotation: the user makes the new file.
    rotated = e.log_path + ".1"
    os.rename(e.log_path, rotated)
    e.signal(signal.SIGUSR1)
    H.wait_until(lambda: os.path.exists(e.log_path), 3, what="the log file to be reopened")
    st = os.stat(e.log_path)
    assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), st
    mark = e.log.mark()
    r = H.request(e.port, H.connect_req("denied.test:443"))
    e.log.wait(since=mark, event="deny", client=r.client)
    assert all(l.get("client") != r.client for l in H.JsonLog(rotated).lines())
    _assert_sandboxed(e.pid)


def test_reload_reads_as_the_user(world, egressd_factory):
    """A file the user cannot read fails the reload: it is read after the
    drop (docs/config.md: the files must be readable by sandbox.user)."""
    e = egressd_factory("sandbox-unreadable", lambda port, log: H.render_config(
        port, log, world.policy))
    mark = e.log.mark()
    e.write_config(H.render_config(e.port, e.log_path, world.policy))
    os.chmod(e.conf, 0o600)  # root's only
    e.signal(signal.SIGHUP)
    err = e.log.wait(since=mark, event="error", reason="reload_failed")
    assert "%s: cannot read the file" % e.conf in err["message"], err
    os.chmod(e.conf, 0o644)
    mark = e.log.mark()
    e.signal(signal.SIGHUP)
    e.log.wait(since=mark, event="reload")


@pytest.mark.native_only("the wrapper's config turns seccomp off in every file")
def test_reload_does_not_change_the_sandbox(world, egressd_factory):
    e = egressd_factory("sandbox-change", lambda port, log: H.render_config(
        port, log, world.policy))
    mark = e.log.mark()
    e.reload(H.render_config(e.port, e.log_path, world.policy,
                             sandbox='user = "nobody"; seccomp = false;'))
    err = e.log.wait(since=mark, event="error", reason="reload_failed")
    assert "sandbox changed; restart egressd to change it" in err["message"], err
    assert not e.log.find(since=mark, event="reload")
    _assert_sandboxed(e.pid)


def test_seccomp_can_be_turned_off(world, egressd_factory):
    e = egressd_factory("no-seccomp", lambda port, log: H.render_config(
        port, log, world.policy, sandbox='user = "nobody"; seccomp = false;'))
    start = e.log.wait(event="start")
    assert "sandbox: user nobody, seccomp off" in start["message"], start
    _assert_sandboxed(e.pid, seccomp="0")
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r


def _start_as_nobody(e):
    """Start e's egressd already as the user (as in a container)."""
    e.proc = subprocess.Popen(
        ["setpriv", "--reuid=%d" % NOBODY.pw_uid, "--regid=%d" % NOBODY.pw_gid,
         "--clear-groups", H.EGRESSD, "-c", e.conf],
        stdin=subprocess.DEVNULL, stdout=open(e.out_path, "ab"),
        stderr=open(e.err_path, "ab"))
    H.wait_until(lambda: H.listening(e.port) or e.proc.poll() is not None, 10,
                 what="egressd to listen")
    assert e.alive(), e.stderr()


def test_started_as_the_user_needs_no_user(world, egressd_factory):
    e = egressd_factory("as-nobody", lambda port, log: H.render_config(
        port, log, world.policy, sandbox=""), start=False)
    _start_as_nobody(e)
    start = e.log.wait(event="start")
    assert "sandbox: uid %d, seccomp %s" % (NOBODY.pw_uid, SECCOMP_WORD) in start["message"], \
        start
    assert not e.log.find(event="error"), e.log.lines()
    _assert_sandboxed(e.pid)
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r


def test_started_as_another_user_ignores_user(world, egressd_factory):
    """sandbox.user naming someone else: ignored, with one line that says so."""
    e = egressd_factory("as-nobody-user", lambda port, log: H.render_config(
        port, log, world.policy, sandbox='user = "daemon";'), start=False)
    _start_as_nobody(e)
    e.log.wait(event="start")
    notes = e.log.find(event="error")
    assert len(notes) == 1, notes
    assert notes[0]["reason"] == "sandbox_user_ignored", notes
    assert notes[0]["message"] == ('sandbox.user "daemon" ignored: egressd was started as '
                                   'uid %d, not as root' % NOBODY.pw_uid), notes
    _assert_sandboxed(e.pid)
    # Naming the user it runs as says nothing.
    e2 = egressd_factory("as-nobody-self", lambda port, log: H.render_config(
        port, log, world.policy), start=False)
    _start_as_nobody(e2)
    e2.log.wait(event="start")
    assert not e2.log.find(event="error"), e2.log.lines()
