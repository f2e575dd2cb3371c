"""Fixtures of the egressd integration suite.

Run through tests/integration/run.sh, which creates a network namespace and
runs pytest inside it; this file refuses to run anywhere else, since it puts
addresses on lo and binds port 53 and 443.

The world (session-wide):
  dnsmasq on 127.0.0.53:53 answering the test names (harness.DNS_RECORDS);
  TLS upstreams "api" on 198.51.100.10:443 and "git" on 10.20.0.7:443;
  a plain HTTP/1.1 upstream (keep-alive) on 198.51.100.10:80;
  plain TCP servers on 203.0.113.20: echo :443, reply-after-EOF :444, bulk :445;
  canaries that must never see a connection: 10.0.0.5:443,
  169.254.169.254:443, 127.0.0.1:443, 127.0.0.1:LOOP (loopback.test's port),
  [::1]:443, 198.51.100.10:8443, 169.254.169.254:80, 10.0.0.5:80.
Modules start servers of their own on 198.51.100.11-14 (see README.md), and
share egressd instances on their own policies through `shared_egressd`.
"""

import os
import signal
import socket
import ssl
import time

import pytest

import harness as H

TEST_TIMEOUT_S = 30 * H.SLOW
# The whole suite takes ~120 s against a working egressd (~130 s under ASan). Against a badly
# broken one every test waits out its deadlines; past this budget the
# remaining tests fail at once, so that the run still ends with a summary
# well inside run.sh's hard limit. Both limits stretch with H.SLOW.
SUITE_BUDGET_S = 200 * H.SLOW
_T0 = time.monotonic()


def pytest_configure(config):
    ok, why = H.in_expected_netns()
    if not ok:
        pytest.exit("egressd integration tests: %s" % why, returncode=4)
    if not H.EGRESSD:
        pytest.exit("egressd integration tests: set EGRESSD=/abs/path/to/egressd", returncode=4)
    config.addinivalue_line(
        "markers", "native_only(reason): skipped under EGRESSD_WRAPPER (valgrind), which "
        "slows egressd too much for what the test measures; reason says what")


def pytest_runtest_setup(item):
    m = item.get_closest_marker("native_only")
    if m is not None and H.WRAPPER:
        pytest.skip("not under EGRESSD_WRAPPER: %s" % (m.args[0] if m.args else m.kwargs["reason"]))


@pytest.fixture(scope="session", autouse=True)
def _wrapper_reports(tmp_path_factory):
    """One-shot egressd runs (-t, --explain, ...) write their wrapper reports
    to a directory of the session; each egressd instance writes to its own.
    At the end every report under the session's directory is checked, so
    that none goes unread."""
    one_shot = tmp_path_factory.mktemp("one-shot")
    os.environ["EGRESSD_IT_DIR"] = str(one_shot)
    yield
    _SESSION_PROBLEMS.extend(H.wrapper_problems(str(tmp_path_factory.getbasetemp()),
                                                recursive=True))


@pytest.fixture(autouse=True)
def _bounded_test():
    """No test runs longer than TEST_TIMEOUT_S, whatever it waits for."""
    if time.monotonic() - _T0 > SUITE_BUDGET_S:
        pytest.fail("suite time budget (%ds) exhausted: not run" % SUITE_BUDGET_S)

    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded %ds" % TEST_TIMEOUT_S)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


class World:
    pass


def main_policy(loop_port):
    return """  { name = "agent";
    mode = "enforce";
    rules = (
      { name = "api";
        hosts = [ "api.allowed.test", "nx.allowed.test", "noaddr.allowed.test",
                  "refused.allowed.test", "mixed.allowed.test" ];
        ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "unpinned";
        hosts = [ "unpinned.test", "metadata.test", "private.test", "loopback.test",
                  "v6loop.test", "mapped.test" ];
        ports = [ 443, %d ];
        methods = [ "CONNECT" ]; },
      { name = "git";
        hosts = [ "git.corp.test" ];
        ports = [ 443 ];
        networks = [ "10.20.0.0/16" ]; },
      { name = "multi";
        hosts = [ "fallback.allowed.test" ];
        ports = [ 443 ];
        networks = [ "198.51.100.0/24", "203.0.113.0/24" ]; },
      { name = "ip-range";
        networks = [ "203.0.113.0/24" ];
        ports = [ 443, 444, 445 ];
        methods = [ "CONNECT" ]; }
    );
  }""" % loop_port


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    w = World()
    w.tmp = str(tmp_path_factory.mktemp("egressd-it"))
    started = []
    try:
        r = H.run(["ip", "link", "set", "lo", "up"])
        assert r.returncode == 0, r.stderr
        for a in H.LO_ADDRS:
            r = H.run(["ip", "addr", "replace", a + "/32", "dev", "lo"])
            assert r.returncode == 0, "ip addr add %s: %s" % (a, r.stderr)

        certs = os.path.join(w.tmp, "certs")
        r = H.run(["sh", os.path.join(H.ROOT, "certs", "make-test-ca.sh"), certs] + H.CERT_NAMES)
        assert r.returncode == 0, "make-test-ca.sh: %s%s" % (r.stdout, r.stderr)
        w.ca = os.path.join(certs, "ca.crt")
        w.certs = certs
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
        w.server_ctx = ctx

        w.dns = H.Dnsmasq(w.tmp).start()
        started.append(w.dns)

        w.loop_port = H.free_port()
        S = H.Server
        w.api = S("upstream-api", H.ADDR_API, 443, H.make_tls_handler(ctx, "api (198.51.100.10)"))
        w.git = S("upstream-git", H.ADDR_GIT, 443, H.make_tls_handler(ctx, "git (10.20.0.7)"))
        w.echo = S("echo", H.ADDR_ECHO, H.PORT_ECHO, H.echo_handler)
        w.eof_reply = S("eof-reply", H.ADDR_ECHO, H.PORT_EOF_REPLY, H.eof_reply_handler)
        w.bulk = S("bulk", H.ADDR_ECHO, H.PORT_BULK, H.bulk_handler)
        w.http_requests = []
        w.http = S("http-api", H.ADDR_API, 80, H.make_http_handler("api", w.http_requests))
        w.canaries = [
            S("canary-private", H.ADDR_PRIVATE, 443, H.canary_handler),
            S("canary-metadata", H.ADDR_METADATA, 443, H.canary_handler),
            S("canary-loopback-443", "127.0.0.1", 443, H.canary_handler),
            S("canary-loopback", "127.0.0.1", w.loop_port, H.canary_handler),
            S("canary-ipv6-loopback", "::1", 443, H.canary_handler, family=socket.AF_INET6),
            S("canary-api-8443", H.ADDR_API, 8443, H.canary_handler),
            S("canary-metadata-80", H.ADDR_METADATA, 80, H.canary_handler),
            S("canary-private-80", H.ADDR_PRIVATE, 80, H.canary_handler),
        ]
        w.canary = {c.name: c for c in w.canaries}
        w.upstreams = [w.api, w.git, w.echo, w.eof_reply, w.bulk, w.http]
        for s in w.upstreams + w.canaries:
            s.start()
            started.append(s)
        w.policy = main_policy(w.loop_port)
        yield w
    finally:
        for s in reversed(started):
            s.stop()


class Watch:
    """Snapshot of every server's connection count: assert nothing new."""

    def __init__(self, world, servers=None):
        self.servers = servers if servers is not None else world.canaries + world.upstreams
        self.before = {s.name: (s.count(), len(s.received())) for s in self.servers}

    def new(self):
        out = {}
        for s in self.servers:
            n, b = s.count(), len(s.received())
            if (n, b) != self.before[s.name]:
                out[s.name] = (n - self.before[s.name][0], b - self.before[s.name][1])
        return out

    def assert_nothing(self, settle=0.2):
        # a connection the proxy wrongly opened would be accepted at once on lo;
        # give the accept threads a moment to record it.
        H.time.sleep(settle)
        new = self.new()
        assert not new, "server(s) saw new connections/bytes (name: (conns, bytes)): %r" % new


@pytest.fixture
def watch(world):
    return lambda servers=None: Watch(world, servers)


def _start_main(world):
    return H.Egressd(world.tmp, "main",
                     lambda port, log: H.render_config(port, log, world.policy)).start()


def _check_exit(e):
    """After stop(): egressd exited 0 (unless the test said otherwise) and
    its stderr holds no sanitizer report."""
    rc = e.stop()
    err = e.stderr()
    problems = []
    if e.expect_rc is not None and rc != e.expect_rc:
        problems.append("exit status %r after SIGTERM (expected %r)%s" % (
            rc, e.expect_rc, " (under EGRESSD_WRAPPER: its log is in that directory)"
            if H.WRAPPER else ""))
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        if marker in err:
            problems.append("sanitizer report (%s)" % marker)
    wrapped = e.wrapper_problems()
    if wrapped:
        problems.append("its wrapper reported errors")
    if problems:
        return "egressd in %s: %s; stderr:\n%s%s" % (e.dir, ", ".join(problems), err,
                                                     "".join("\n" + w for w in wrapped))
    return None


_SESSION_PROBLEMS = []


@pytest.fixture(scope="session")
def _main_holder(world):
    holder = {"e": None}
    yield holder
    if holder["e"] is not None:
        msg = _check_exit(holder["e"])
        if msg:
            _SESSION_PROBLEMS.append(msg)


def pytest_terminal_summary(terminalreporter):
    for msg in _SESSION_PROBLEMS:
        terminalreporter.write_sep("=", "checked at the end of the session", red=True)
        terminalreporter.write_line(msg)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _SESSION_PROBLEMS and session.exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture
def proxy(world, _main_holder):
    """The shared egressd running the main policy ("agent"). Restarted if a
    previous test killed it; each test fails if egressd dies during it."""
    e = _main_holder["e"]
    if e is None or not e.alive():
        _main_holder["e"] = e = _start_main(world)
    yield e
    assert e.alive(), "egressd died during this test (exit %s); stderr:\n%s" % (
        e.proc.returncode, e.stderr())
    for marker in ("ERROR: AddressSanitizer", "runtime error:"):
        assert marker not in e.stderr(), "sanitizer report during this test:\n" + e.stderr()
    wrapped = e.wrapper_problems()
    assert not wrapped, "during this test:\n" + "\n".join(wrapped)


@pytest.fixture(scope="session")
def _shared_instances():
    held = {}
    yield held
    for e in held.values():
        msg = _check_exit(e)
        if msg:
            _SESSION_PROBLEMS.append(msg)


@pytest.fixture
def shared_egressd(world, _shared_instances):
    """shared_egressd(name, policies, limits=None): an egressd on these
    policies (text inside `policies = ( ... );`), started on first use and
    shared by every test that asks for the same name; restarted when a
    previous test killed it. Each test fails if it dies during it; its exit
    and stderr are checked at the end of the session."""
    used = []

    def get(name, policies, limits=None):
        e = _shared_instances.get(name)
        if e is None or not e.alive():
            e = H.Egressd(world.tmp, name, lambda port, log: H.render_config(
                port, log, policies, limits=limits)).start()
            _shared_instances[name] = e
        used.append(e)
        return e
    yield get
    for e in used:
        assert e.alive(), "egressd (%s) died during this test (exit %s); stderr:\n%s" % (
            e.dir, e.proc.returncode, e.stderr())
        for marker in ("ERROR: AddressSanitizer", "runtime error:"):
            assert marker not in e.stderr(), "sanitizer report during this test:\n" + e.stderr()
        wrapped = e.wrapper_problems()
        assert not wrapped, "during this test:\n" + "\n".join(wrapped)


@pytest.fixture(scope="module")
def egressd_factory_module(world):
    """egressd_factory for a module's fixtures: the instances live until
    the module's last test."""
    made = []

    def factory(name, config_fn, start=True):
        e = H.Egressd(world.tmp, name, config_fn)
        made.append(e)
        return e.start() if start else e
    yield factory
    problems = [m for m in (_check_exit(e) for e in made) if m]
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture
def egressd_factory(world):
    """Start extra egressd instances: factory(name, config_fn) where
    config_fn(port, log_path) -> config text. Stopped at teardown."""
    made = []

    def factory(name, config_fn, start=True):
        e = H.Egressd(world.tmp, name, config_fn)
        made.append(e)
        return e.start() if start else e
    yield factory
    problems = [m for m in (_check_exit(e) for e in made) if m]
    if problems:
        pytest.fail("\n\n".join(problems))
