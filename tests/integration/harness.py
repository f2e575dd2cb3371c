"""Pieces of the egressd integration harness.

Everything here runs inside the network namespace that run.sh creates: the
servers bind addresses put on that namespace's lo, the proxy listens on its
127.0.0.1, and no socket is ever aimed at an address outside it.
Every wait is bounded by a deadline; every socket has a timeout.
"""

import errno
import glob
import hashlib
import itertools
import json
import os
import pwd
import random
import re
import shlex
import signal
import socket
import ssl
import stat
import struct
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EGRESSD = os.environ.get("EGRESSD", "")
# A command every egressd of the suite runs under (make valgrind sets it to
# valgrind), long-running or one-shot alike: see egressd_cmd. Each egressd
# process gets EGRESSD_IT_DIR, a directory for its files, where the wrapper
# writes its report (valgrind --log-file=%q{EGRESSD_IT_DIR}/valgrind.%p.log);
# wrapper_problems reads it.
WRAPPER = shlex.split(os.environ.get("EGRESSD_WRAPPER", ""))
# How many times slower than native egressd runs (run.sh sets it: 1, or 10
# under a wrapper). The one factor for every wait on egressd: each Deadline
# (so wait_until, log waits and client reads) and egressd's start-up and stop
# waits are stretched by it, as are conftest's per-test and suite limits.
SLOW = int(os.environ.get("EGRESSD_IT_SLOW") or 1)

# Addresses the fixtures put on lo (127.0.0.1 and ::1 are there already).
ADDR_API = "198.51.100.10"  # TLS upstream "api"   (documentation range)
ADDR_ECHO = "203.0.113.20"  # plain TCP test servers (documentation range)
ADDR_DEAD = "203.0.113.21"  # nothing listens: connect is refused
ADDR_PRIVATE = "10.0.0.5"  # canary (private)
ADDR_GIT = "10.20.0.7"  # TLS upstream "git" (private, pinned by a rule)
ADDR_METADATA = "169.254.169.254"  # canary (link-local, cloud metadata)
# Servers of the toolchain and smuggling tests (started by those modules).
ADDR_GITSRV = "198.51.100.11"  # git smart-HTTP over TLS (git.allowed.test)
ADDR_PYPI = "198.51.100.12"  # PEP 503 simple index over TLS (pypi.allowed.test)
ADDR_LLM = "198.51.100.13"  # fake LLM API, TLS :443 and plain :80 (llm.allowed.test)
ADDR_ORIGIN = "198.51.100.14"  # scriptable plain HTTP origin :80, :8080 (origin.allowed.test)
# The gateway's origins (test_gateway): the LLM API on :443, git on :8443,
# a certificate for other names on :9443.
ADDR_GW = "198.51.100.15"
LO_ADDRS = [ADDR_API, ADDR_ECHO, ADDR_DEAD, ADDR_PRIVATE, ADDR_GIT, ADDR_METADATA,
            ADDR_GITSRV, ADDR_PYPI, ADDR_LLM, ADDR_ORIGIN, ADDR_GW]

DNS_ADDR = "127.0.0.53"
DNS_PORT = 53

# Ports of the plain TCP servers on ADDR_ECHO.
PORT_ECHO = 443
PORT_EOF_REPLY = 444
PORT_BULK = 445

# DNS records dnsmasq serves: name -> address, or None for NXDOMAIN, or
# "nodata" for a name that exists without A/AAAA records.
DNS_RECORDS = {
    "api.allowed.test": ADDR_API,
    "denied.test": ADDR_API,
    "unpinned.test": ADDR_API,
    "metadata.test": ADDR_METADATA,
    "private.test": ADDR_PRIVATE,
    "loopback.test": "127.0.0.1",
    "git.corp.test": ADDR_GIT,
    "v6loop.test": "::1",
    "mapped.test": "::ffff:10.0.0.5",
    "mixed.allowed.test": [ADDR_PRIVATE, ADDR_API],  # one address outside the pin
    "fallback.allowed.test": [ADDR_DEAD, ADDR_API],  # the first refuses connections
    "echo.allowed.test": ADDR_ECHO,  # the plain echo server on :443 (test_sni)
    "nx.allowed.test": None,
    "noaddr.allowed.test": "nodata",
    # the "*.denied.test" twins point at the same servers: a wrongly allowed
    # request would reach them (and be seen there)
    "git.allowed.test": ADDR_GITSRV,
    "git.denied.test": ADDR_GITSRV,
    "pypi.allowed.test": ADDR_PYPI,
    "pypi.denied.test": ADDR_PYPI,
    "llm.allowed.test": ADDR_LLM,
    "llm.denied.test": ADDR_LLM,
    "origin.allowed.test": ADDR_ORIGIN,
    "mirror.allowed.test": ADDR_ORIGIN,
    "llm.gateway.test": ADDR_GW,
    "git.gateway.test": ADDR_GW,
    "badcert.gateway.test": ADDR_GW,  # not a name of the certificate it gets
    "private.gateway.test": ADDR_PRIVATE,  # an origin behind the address guard
    # refused.allowed.test: not configured at all -> dnsmasq answers REFUSED
}

CERT_NAMES = ["api.allowed.test", "denied.test", "unpinned.test", "mixed.allowed.test",
              "fallback.allowed.test",
              "git.corp.test", "ip:" + ADDR_API, "ip:" + ADDR_ECHO,
              "git.allowed.test", "git.denied.test", "pypi.allowed.test", "pypi.denied.test",
              "llm.allowed.test", "llm.denied.test", "llm.gateway.test", "git.gateway.test"]

BULK_BLOCK = random.Random(4242).randbytes(1 << 20)  # 1 MiB, deterministic
BULK_BLOCKS = 64  # 64 MiB in all

REASON_PHRASES = {
    200: "Connection established",
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    508: "Loop Detected",
}


class Deadline:
    """A bound on a wait for egressd: stretched by SLOW. stretch=False for a
    span the test itself sets ("read nothing for 2 s"), which must not."""

    def __init__(self, seconds, stretch=True):
        self.end = time.monotonic() + seconds * (SLOW if stretch else 1)

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def wait_until(pred, timeout=5.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; bounded in time."""
    d = Deadline(timeout)
    while True:
        v = pred()
        if v:
            return v
        if d.expired():
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)


def run(cmd, timeout=20, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def stop_process(proc):
    """SIGTERM a child process (a Popen, or None) that still runs, and reap
    it; SIGKILL when it has not gone within 5 s."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def free_port(host="127.0.0.1"):
    """A port nobody listens on, outside the ephemeral range (32768-60999)
    so that no client's source port takes it before the server binds it."""
    rnd = random.Random()
    for _ in range(100):
        port = rnd.randrange(10000, 30000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port found")


def listening(port, host_hex="0100007F"):
    """True when a TCP socket listens on 127.0.0.1:port in this namespace."""
    want = "%s:%04X" % (host_hex, port)
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if len(parts) > 3 and parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def refuses_connections(port):
    """True when a connection to 127.0.0.1:port is refused: nothing listens
    there."""
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    except OSError as e:
        return e.errno == errno.ECONNREFUSED
    finally:
        s.close()
    return False


def in_expected_netns():
    """The harness refuses to touch a network it did not create."""
    ns = os.environ.get("EGRESSD_IT_NETNS", "")
    if not ns.startswith("egressd-it-"):
        return False, "EGRESSD_IT_NETNS is not set: run tests/integration/run.sh"
    try:
        out = run(["ip", "netns", "identify", str(os.getpid())], timeout=5).stdout.split()
    except Exception as e:  # noqa: BLE001
        return False, "ip netns identify failed: %s" % e
    if ns not in out:
        return False, "not inside network namespace %s (ip netns identify: %r)" % (ns, out)
    return True, ns


# ---------------------------------------------------------------- servers


class ConnRecord:
    def __init__(self, peer):
        self.peer = peer
        self.t = time.time()
        self.data = bytearray()
        self.lock = threading.Lock()

    def add(self, b):
        with self.lock:
            self.data += b


class Server:
    """A threaded TCP server on one address; records every accepted
    connection and (for canaries) every byte."""

    def __init__(self, name, host, port, handler, family=socket.AF_INET):
        self.name, self.host, self.port = name, host, port
        self.handler = handler
        self.family = family
        self.conns = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.sock = None
        self.thread = None

    def start(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.1)
        self.sock = s
        self.port = s.getsockname()[1]
        self.thread = threading.Thread(target=self._loop, name="srv-" + self.name, daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                c, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = ConnRecord(peer)
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(c, rec), daemon=True).start()

    def _serve(self, c, rec):
        try:
            c.settimeout(30)
            self.handler(c, rec)
        except Exception:  # noqa: BLE001 - peers misbehave on purpose
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def count(self):
        with self.lock:
            return len(self.conns)

    def received(self):
        with self.lock:
            return b"".join(bytes(r.data) for r in self.conns)

    def stop(self):
        self.stop_ev.set()
        if self.sock:
            self.sock.close()
        if self.thread:
            self.thread.join(2)

    def __repr__(self):
        return "<%s %s:%d conns=%d>" % (self.name, self.host, self.port, self.count())


def canary_handler(c, rec):
    """Record every byte, answer nothing."""
    c.settimeout(5)
    while True:
        try:
            b = c.recv(65536)
        except (socket.timeout, OSError):
            return
        if not b:
            return
        rec.add(b)


def make_tls_handler(ctx, label):
    body = ("hello from egressd-it upstream %s\n" % label).encode()

    def handler(c, rec):
        c.settimeout(10)
        t = ctx.wrap_socket(c, server_side=True)
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            b = t.recv(4096)
            if not b:
                return
            buf += b
        rec.add(buf)
        resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % len(body)) + body
        t.sendall(resp)
        try:
            t.unwrap()
        except (ssl.SSLError, OSError):
            pass
    return handler


def echo_handler(c, rec):
    """Echo every chunk back; close when the client has finished."""
    c.settimeout(30)
    while True:
        b = c.recv(65536)
        if not b:
            return
        rec.add(b)
        c.sendall(b)


EOF_REPLY_PAYLOAD = random.Random(7).randbytes(300 * 1024)


def eof_reply_handler(c, rec):
    """Read to EOF, then reply: one line naming what was read, then 300 KiB."""
    c.settimeout(15)
    while True:
        b = c.recv(65536)
        if not b:
            break
        rec.add(b)
    got = bytes(rec.data)
    c.sendall(b"got %d bytes sha256 %s\n" % (len(got), hashlib.sha256(got).hexdigest().encode())
              + EOF_REPLY_PAYLOAD)
    c.shutdown(socket.SHUT_WR)


def bulk_handler(c, rec):
    """Send 64 MiB as fast as the path takes it, then close."""
    c.settimeout(60)
    for _ in range(BULK_BLOCKS):
        c.sendall(BULK_BLOCK)
    c.shutdown(socket.SHUT_WR)


def bulk_digest():
    h = hashlib.sha256()
    for _ in range(BULK_BLOCKS):
        h.update(BULK_BLOCK)
    return h.hexdigest(), len(BULK_BLOCK) * BULK_BLOCKS


class UdpBlackhole:
    """Reads DNS queries and answers none: the resolver times out."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.count = 0
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                self.sock.recvfrom(4096)
                self.count += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.stop_ev.set()
        self.thread.join(2)
        self.sock.close()


# ---------------------------------------------------------------- DNS


def dns_query(name, qtype=1, server=(DNS_ADDR, DNS_PORT), timeout=2.0):
    """One UDP DNS query; returns (rcode, [addresses])."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, server)
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    flags, qd, an = struct.unpack(">HHH", data[2:8])
    i = 12
    for _ in range(qd):  # skip questions
        while data[i]:
            i += data[i] + 1
        i += 5
    addrs = []
    for _ in range(an):
        while data[i] and data[i] < 0xC0:
            i += data[i] + 1
        i += 2 if data[i] >= 0xC0 else 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[i:i + 10])
        i += 10
        rd = data[i:i + rdlen]
        i += rdlen
        if rtype == 1:
            addrs.append(socket.inet_ntop(socket.AF_INET, rd))
        elif rtype == 28:
            addrs.append(socket.inet_ntop(socket.AF_INET6, rd))
    return flags & 0xF, addrs


class Dnsmasq:
    QUERY_RE = re.compile(r"query\[(\w+)\] (\S+) from ")

    def __init__(self, tmp):
        self.log_path = os.path.join(tmp, "dnsmasq.log")
        self.err_path = os.path.join(tmp, "dnsmasq.stderr")
        self.proc = None
        self.sentinels = 0

    def start(self):
        args = ["/usr/sbin/dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--no-daemon", "--pid-file=", "--port=%d" % DNS_PORT,
                "--listen-address=" + DNS_ADDR, "--bind-interfaces", "--log-queries",
                "--log-facility=" + self.log_path, "--local-ttl=0", "--cache-size=0"]
        for name, addr in DNS_RECORDS.items():
            if addr is None:
                args.append("--address=/%s/" % name)  # NXDOMAIN
                continue
            if addr == "nodata":
                args.append('--txt-record=%s,"no address here"' % name)
            else:
                for a in ([addr] if isinstance(addr, str) else addr):
                    args.append("--address=/%s/%s" % (name, a))
            # answer other types with NODATA here rather than "forward" (REFUSED)
            args.append("--local=/%s/" % name)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=open(self.err_path, "w"), stderr=subprocess.STDOUT)
        d = Deadline(10)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited %s: %s" % (self.proc.returncode,
                                                              open(self.err_path).read()))
            try:
                if dns_query("api.allowed.test", timeout=0.2)[1] == [ADDR_API]:
                    break
            except OSError:
                pass
            if d.expired():
                raise RuntimeError("dnsmasq did not answer in time")
            time.sleep(0.05)
        return self

    def stop(self):
        stop_process(self.proc)

    def queries(self):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return [m.group(2).lower() for m in self.QUERY_RE.finditer(text)]

    def mark(self):
        return len(self.queries())

    def queries_since(self, mark):
        """Names queried since mark, up to a sentinel query sent now: every
        query sent before this call is then known to be in the log."""
        self.sentinels += 1
        sentinel = "sentinel-%d-%d.invalid-test" % (os.getpid(), self.sentinels)
        try:
            dns_query(sentinel, timeout=1)
        except OSError:
            pass
        qs = wait_until(lambda: (lambda q: q if sentinel in q else None)(self.queries()),
                        timeout=5, what="dnsmasq to log the sentinel query")
        qs = qs[mark:qs.index(sentinel)]
        return [q for q in qs if not q.startswith("sentinel-")]


# ---------------------------------------------------------------- egressd


def egressd_cmd(*args):
    """The command line that runs egressd with args, under EGRESSD_WRAPPER
    when it is set. Every test that runs egressd builds its command here."""
    return WRAPPER + [EGRESSD] + list(args)


def run_egressd(*args, timeout=10, input=None):
    """Run a one-shot egressd (-t, --explain, --suggest, -V, ...) to its end:
    the CompletedProcess, output as text. A wrapper's report goes to the
    session's EGRESSD_IT_DIR (conftest checks it at the end)."""
    return subprocess.run(egressd_cmd(*args), input=input, capture_output=True, text=True,
                          timeout=timeout * SLOW)


def config_for_wrapper(text):
    """A config file's text as egressd must have it to run under
    EGRESSD_WRAPPER; every config an Egressd writes passes through here.
    The one place for settings a wrapper cannot live with: valgrind cannot
    run egressd under a seccomp filter, so once egressd installs one by
    default, the setting that turns it off is added here."""
    if not WRAPPER:
        return text
    text = re.sub(r"seccomp\s*=\s*true\s*;", "seccomp = false;", text)
    if "seccomp" in text:
        return text
    if re.search(r"sandbox\s*=\s*\{", text):
        return re.sub(r"(sandbox\s*=\s*\{)", r"\1 seccomp = false;", text, count=1)
    return text + "\nsandbox = { seccomp = false; };\n"


# The first line of each kind of error valgrind's memcheck reports.
_VG_ERROR_RE = re.compile(r"^==\d+== (Invalid |Conditional jump|Use of uninitialised|"
                          r"Syscall param|Mismatched free|Source and destination overlap|"
                          r"Argument .* of function|Jump to the invalid|Process terminating|"
                          r".* are (definitely|indirectly) lost)", re.M)
_VG_SUMMARY_RE = re.compile(r"^==\d+== ERROR SUMMARY: (\d+) errors", re.M)
_VG_REPORTED = set()


def wrapper_problems(directory, recursive=False):
    """The valgrind logs (valgrind.PID.log) under directory that report an
    error, each as a message: its path, its ERROR SUMMARY and its first
    error records. Leaks are reported at exit, in the summary; invalid
    accesses as they happen, so a running or killed process's log, which has
    no summary, counts by its error records. Each log is reported once."""
    pattern = os.path.join(directory, "**" if recursive else "", "valgrind.*.log")
    out = []
    paths = sorted({os.path.realpath(p) for p in glob.glob(pattern, recursive=recursive)})
    for path in paths:
        if path in _VG_REPORTED:
            continue
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        summary = _VG_SUMMARY_RE.search(text)
        if summary and summary.group(1) == "0":
            continue
        errors = list(_VG_ERROR_RE.finditer(text))
        if not summary and not errors:
            continue
        _VG_REPORTED.add(path)
        head = (summary.group(0).split("== ", 1)[1] if summary
                else "no ERROR SUMMARY yet (running, or killed)")
        records = []
        for m in errors[:3]:  # a record ends before the next blank "==PID== " line
            end = text.find("== \n", m.start())
            end = text.rfind("\n", m.start(), end) if end >= 0 else len(text)
            records.append(text[m.start():end][:3000])
        out.append("valgrind: %s in %s\n%s" % (head, path, "\n".join(records)))
    return out


class JsonLog:
    def __init__(self, path):
        self.path = path

    def raw_lines(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        return lines[:-1]  # the last piece is empty or a line still being written

    def lines(self):
        out = []
        for raw in self.raw_lines():
            out.append(json.loads(raw.decode("utf-8")))
        return out

    def mark(self):
        return len(self.raw_lines())

    def since(self, mark=0):
        return self.lines()[mark:]

    def find(self, since=0, **want):
        return [l for l in self.since(since) if all(l.get(k) == v for k, v in want.items())]

    def wait(self, since=0, timeout=3.0, pred=None, **want):
        def look():
            for l in self.since(since):
                if all(l.get(k) == v for k, v in want.items()) and (pred is None or pred(l)):
                    return l
            return None
        try:
            return wait_until(look, timeout=timeout, what="log line %r" % (want,))
        except AssertionError:
            raise AssertionError("no log line with %r in %s since line %d; lines:\n%s" % (
                want, self.path, since, "\n".join(
                    l.decode("utf-8", "replace") for l in self.raw_lines()[since:][-30:])))


# The tests run egressd as root; it binds its listeners and then serves as
# this user (sandbox.user), under its seccomp filter, as in production.
SANDBOX_USER = "nobody"
SANDBOX = 'user = "%s";' % SANDBOX_USER


def share_with_sandbox_user(directory):
    """Let SANDBOX_USER reach directory and everything in it that others
    may read (pytest makes its temporary directories 0700: each one above
    gets o+x), and own it, so that egressd can make its log file there again
    after rotation."""
    pw = pwd.getpwnam(SANDBOX_USER)
    d = os.path.dirname(os.path.abspath(directory))
    while d != "/":
        mode = stat.S_IMODE(os.stat(d).st_mode)
        if not mode & stat.S_IXOTH:
            os.chmod(d, mode | stat.S_IXOTH)
        d = os.path.dirname(d)
    os.chown(directory, pw.pw_uid, pw.pw_gid)


def render_config(port, log_path, policies, resolver='servers = [ "127.0.0.53:53" ];',
                  limits=None, listen=None, sandbox=None):
    """A config file as text. policies is the text inside `policies = ( ... );`,
    limits a dict of limits settings (drain_timeout_ms defaults to 2000 here),
    sandbox the text inside `sandbox = { ... };` (default SANDBOX)."""
    if listen is None:
        listen = '{ address = "127.0.0.1"; port = %d; }' % port
    lim = {"drain_timeout_ms": 2000}
    lim.update(limits or {})
    text = ("# egressd integration test configuration\n"
            "listen = ( %s );\n"
            "resolver = { %s };\n"
            'log = { path = "%s"; };\n'
            "limits = { %s };\n"
            "policies = (\n%s\n);\n"
            "sandbox = { %s };\n") % (
                listen, resolver, log_path,
                " ".join("%s = %d;" % kv for kv in lim.items()), policies,
                SANDBOX if sandbox is None else sandbox)
    return text


def egressd_has_asan():
    """True when EGRESSD is built with AddressSanitizer (make SANITIZE=...)."""
    with open(EGRESSD, "rb") as f:
        return b"__asan_init" in f.read()


def line_of(text, needle):
    """1-based number of the only line of text that contains needle."""
    hits = [i + 1 for i, l in enumerate(text.split("\n")) if needle in l]
    assert len(hits) == 1, "%r on lines %r" % (needle, hits)
    return hits[0]


_SEQ = itertools.count(1)


class Egressd:
    def __init__(self, tmp, name, config_fn):
        """config_fn(port, log_path) -> config text. Files go to a directory
        of its own under tmp, named after name."""
        self.dir = os.path.join(tmp, "%s-%d" % (name, next(_SEQ)))
        os.makedirs(self.dir)
        share_with_sandbox_user(self.dir)
        self.conf = os.path.join(self.dir, "egressd.conf")
        self.log_path = os.path.join(self.dir, "decisions.log")
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        self.config_fn = config_fn
        self.port = free_port()
        self.proc = None
        self.expect_rc = 0  # exit status expected after SIGTERM; None: any
        self.nofile = None  # RLIMIT_NOFILE (soft = hard) to start it with; None: inherited
        self.env = None  # its environment; None: this process's
        self.log = JsonLog(self.log_path)
        self.write_config(config_fn(self.port, self.log_path))

    def write_config(self, text):
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(config_for_wrapper(text))
        os.replace(tmp, self.conf)

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=10):
        if not EGRESSD or not os.access(EGRESSD, os.X_OK):
            raise RuntimeError("EGRESSD=%r is not an executable" % EGRESSD)
        cmd = egressd_cmd("-c", self.conf)
        if self.nofile is not None:
            # prlimit(1) sets the limit and execs egressd (or its wrapper):
            # same process, same pid.
            cmd = ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile), "--"] + cmd
        env = dict(self.env if self.env is not None else os.environ, EGRESSD_IT_DIR=self.dir)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=open(self.out_path, "ab"),
                                     stderr=open(self.err_path, "ab"), env=env)
        d = Deadline(timeout)
        while not listening(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError("egressd exited %s at start-up; stderr:\n%s" % (
                    self.proc.returncode, self.stderr()))
            if d.expired():
                self.stop()
                raise RuntimeError("egressd did not listen on 127.0.0.1:%d within %ss" % (
                    self.port, timeout * SLOW))
            time.sleep(0.02)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        try:
            return open(self.err_path, errors="replace").read()[-4000:]
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, text):
        self.write_config(text)
        self.signal(signal.SIGHUP)

    def stop(self, timeout=10):
        """SIGTERM, wait; SIGKILL if it does not go. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return "killed (did not stop within %ss of SIGTERM)" % (timeout * SLOW)
        return self.proc.returncode

    def wrapper_problems(self):
        """What its wrapper (valgrind) has reported so far, as messages
        (leaks only once it has exited)."""
        return wrapper_problems(self.dir)

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.pid)


# ---------------------------------------------------------------- clients


class Message:
    """What a response offers a test: headers, (name, value) pairs, and a
    body. Response is one; service.AdminResponse another."""

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def text(self):
        return self.body.decode("utf-8", "replace")


class Response(Message):
    def __init__(self, raw_head, body=b"", eof=False, reset=False):
        self.raw_head = raw_head
        self.body = body
        self.eof = eof
        self.reset = reset
        lines = raw_head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        self.version, self.status, self.reason = m.group(1), int(m.group(2)), m.group(3)
        self.headers = []
        for l in lines[1:]:
            if not l:
                continue
            k, _, v = l.partition(":")
            self.headers.append((k.strip(), v.strip()))

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers,
                                                        self.body[:300])


def recv_some(s, n=65536):
    """recv that maps a reset to EOF (returns (bytes, reset))."""
    try:
        return s.recv(n), False
    except ConnectionResetError:
        return b"", True


class Client:
    """A raw TCP client of the proxy, from source address src when given."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1", src=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(src, 0) if src else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.response = None

    @property
    def local(self):
        h, p = self.sock.getsockname()[:2]
        return "%s:%d" % (h, p)

    def send(self, data):
        self.sock.sendall(data)

    def read_head(self, timeout=5.0):
        d = Deadline(timeout)
        reset = False
        while b"\r\n\r\n" not in self.buf:
            if d.expired():
                raise AssertionError("no response head within %ss (got %r)" % (timeout, self.buf))
            self.sock.settimeout(max(0.01, d.left()))
            try:
                b, reset = recv_some(self.sock)
            except socket.timeout:
                continue
            if not b:
                raise AssertionError("connection closed%s before a response head (got %r)" % (
                    " by reset" if reset else "", self.buf))
            self.buf += b
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def read_response(self, timeout=5.0):
        """A final (non-tunnel) response: head, body by Content-Length, then
        wait for the proxy to close the connection."""
        head = self.read_head(timeout)
        r = Response(head)
        if r.status == 200:
            self.response = r
            return r
        d = Deadline(timeout)
        eof = reset = False
        while True:
            if d.expired():
                break
            self.sock.settimeout(max(0.01, d.left()))
            try:
                b, reset = recv_some(self.sock)
            except socket.timeout:
                break
            if not b:
                eof = True
                break
            self.buf += b
        cl = r.header("Content-Length")
        r.body = self.buf if cl is None else self.buf[:int(cl)]
        r.trailing = self.buf if cl is None else self.buf[int(cl):]
        r.eof, r.reset = eof, reset
        self.buf = b""
        self.response = r
        return r

    def read_message(self, timeout=5.0, head=False):
        """One plain-HTTP response on a kept-alive connection: head, then a
        body framed by Content-Length or chunked (no waiting for EOF).
        head=True: the response to a HEAD request, which has no body."""
        r = Response(self.read_head(timeout))
        fields = [(k.lower(), v) for k, v in r.headers]
        te = [v.lower() for k, v in fields if k == "transfer-encoding"]
        cl = [v for k, v in fields if k == "content-length"]
        if head:
            r.body = b""
        elif te and te[-1] == "chunked":
            body = b""
            while True:
                line = self._line(timeout)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self._line(timeout):
                        pass
                    break
                body += self.recv_exact(size, timeout)
                assert self.recv_exact(2, timeout) == b"\r\n"
            r.body = body
        elif cl:
            r.body = self.recv_exact(int(cl[0]), timeout)
        else:
            r.body = b""
        r.trailing = b""
        return r

    def _line(self, timeout):
        d = Deadline(timeout)
        while b"\r\n" not in self.buf:
            assert not d.expired(), "no line within %ss" % timeout
            self.sock.settimeout(max(0.01, d.left()))
            try:
                b = self.sock.recv(65536)
            except socket.timeout:
                continue
            assert b, "EOF inside a chunked body"
            self.buf += b
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def recv_exact(self, n, timeout=5.0):
        d = Deadline(timeout)
        while len(self.buf) < n:
            if d.expired():
                raise AssertionError("got %d of %d bytes within %ss" % (len(self.buf), n, timeout))
            self.sock.settimeout(max(0.01, d.left()))
            try:
                b = self.sock.recv(max(65536, n - len(self.buf)))
            except socket.timeout:
                continue
            if not b:
                raise AssertionError("EOF after %d of %d bytes" % (len(self.buf), n))
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_to_eof(self, timeout=10.0, limit=1 << 30):
        d = Deadline(timeout)
        out = bytearray(self.buf)
        self.buf = b""
        while len(out) <= limit:
            if d.expired():
                raise AssertionError("no EOF within %ss (%d bytes so far)" % (timeout, len(out)))
            self.sock.settimeout(max(0.01, d.left()))
            try:
                b, _reset = recv_some(self.sock, 1 << 20)
            except socket.timeout:
                continue
            if not b:
                return bytes(out)
            out += b
        raise AssertionError("more than %d bytes" % limit)

    def echo(self, payload, timeout=5.0):
        self.send(payload)
        return self.recv_exact(len(payload), timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def connect_req(target, extra_headers=b""):
    return (b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (target.encode(), target.encode(),
                                                            extra_headers))


def tunnel(port, target, timeout=5.0):
    """CONNECT target through the proxy; returns (client, response)."""
    c = Client(port, timeout)
    c.send(connect_req(target))
    r = c.read_response(timeout)
    return c, r


def request(port, data, timeout=5.0, src=None):
    """Send raw bytes, return the proxy's final response and the client's address."""
    with Client(port, timeout, src=src) as c:
        local = c.local
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response(timeout)
        r.client = local
        return r


def curl(proxy_port, url, cacert=None, extra=(), timeout=15):
    """Real curl through the proxy. Returns (returncode, body, http_connect, stderr)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    cmd = ["curl", "-sS", "--max-time", "10", "--proxy", "http://127.0.0.1:%d" % proxy_port,
           "--noproxy", "", "-w", "\nEGRESSD-IT http_connect=%{http_connect}\n"]
    if cacert:
        cmd += ["--cacert", cacert]
    cmd += list(extra) + [url]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    out = p.stdout.decode("utf-8", "replace")
    body, _, tail = out.rpartition("\nEGRESSD-IT http_connect=")
    return p.returncode, body, int(tail.strip() or 0), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- assertions

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

FAKE_CLIENT_HELLO = (b"\x16\x03\x01\x00\x45\x01\x00\x00\x41\x03\x03" + bytes(range(32))
                     + b"\x00\x00\x02\x13\x01\x01\x00\x00\x16\x00\x00\x00\x12\x00\x10"
                     + b"\x00\x00\x0dapi.canary.xx")


def proxy_status_params(value):
    """'egressd; error=x; details="a; b"' -> ('egressd', {'error': 'x', 'details': 'a; b'})"""
    m = re.match(r'^\s*([^;\s]+)\s*(.*)$', value)
    assert m, value
    params = {}
    for pm in re.finditer(r';\s*([A-Za-z0-9_*.-]+)=("(?:[^"\\]|\\.)*"|[^;\s]*)', m.group(2)):
        v = pm.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[pm.group(1)] = v
    return m.group(1), params


def assert_error_response(r, status, ptype, reason, dest=None):
    """A non-tunnel answer of egressd: status line, Proxy-Status, closed."""
    assert r.status == status, "expected %d, got %r" % (status, r)
    assert r.version == "HTTP/1.1", r
    assert r.reason == REASON_PHRASES[status], r
    ps = r.header("Proxy-Status")
    assert ps is not None, "no Proxy-Status header: %r" % r
    name, params = proxy_status_params(ps)
    assert name == "egressd", ps
    assert params.get("error") == ptype, ps
    details = params.get("details", "")
    assert details.startswith(reason), "details should name the reason %r: %s" % (reason, ps)
    if dest is not None:
        assert details == "%s: %s" % (reason, dest), ps
    conn = r.header("Connection")
    assert conn is not None and conn.lower() == "close", r
    cl = r.header("Content-Length")
    assert cl is not None and int(cl) == len(r.body), "Content-Length vs body: %r" % r
    assert r.eof or r.reset, "egressd did not close the connection after %d" % status
    return params


def assert_refusal(r, ptype, reason, dest, policy):
    """The 403 refusal: headers, and a body that tells an agent what was
    refused, by which policy, why, and that it is deliberate."""
    assert_error_response(r, 403, ptype, reason, dest)
    assert r.header("Content-Type") == "text/plain; charset=utf-8", r
    body = r.text()
    assert dest in body, body
    assert policy in body, body
    assert reason in body, body
    assert "deliberate" in body, body
    assert r.trailing == b"", "bytes after the refusal: %r" % r.trailing


def assert_log_line(line):
    assert isinstance(line.get("ts"), str) and TS_RE.match(line["ts"]), line
    assert line.get("event") in ("allow", "deny", "error", "close", "reload", "start", "stop"), line
    if line["event"] in ("allow", "deny", "close") or (
            line["event"] == "error" and line.get("reason") != "reload_failed"
            and "client" in line):
        assert isinstance(line.get("conn"), int) and not isinstance(line["conn"], bool), line


DENY_FIELDS = ("client", "policy", "mode", "method", "host", "port", "reason", "status")


def assert_deny_line(line, reason, host, port, policy="agent", mode="enforce", method="CONNECT"):
    for k in DENY_FIELDS + ("ts", "conn"):
        assert k in line, "deny line without %r: %r" % (k, line)
    assert line["event"] == "deny", line
    assert line["reason"] == reason, line
    assert line["host"] == host and line["port"] == port, line
    assert line["policy"] == policy and line["mode"] == mode and line["method"] == method, line
    assert line["status"] == 403, line
    assert re.match(r"^127\.0\.0\.1:\d+$", line["client"]), line


# Broken variants of a config rendered from conftest.main_policy:
# (id, old text, new text, text that is on the offending line afterwards)
BAD_CONFIGS = [
    ("syntax-error", 'mode = "enforce";', 'mode = = "enforce";', 'mode = = "enforce";'),
    ("unknown-key", 'name = "git";', 'name = "git"; colour = "blue";', 'colour = "blue";'),
    ("bad-cidr", '"10.20.0.0/16"', '"10.0.0.1/8"', '"10.0.0.1/8"'),
    ("regex-like-host", '"git.corp.test"', '"api.*.com"', '"api.*.com"'),
    ("port-out-of-range", "ports = [ 443, 444, 445 ];", "ports = [ 443, 70000 ];",
     "ports = [ 443, 70000 ];"),
]


def break_config(text, old, new, marker):
    assert text.count(old) == 1, (old, text)
    text = text.replace(old, new)
    return text, line_of(text, marker)


# ---------------------------------------------------------------- plain HTTP upstream


def _read_until(c, buf, sep, limit=1 << 20):
    while sep not in buf:
        b = c.recv(65536)
        if not b:
            raise EOFError
        buf += b
        if len(buf) > limit:
            raise ValueError("too long")
    i = buf.index(sep)
    return buf[:i], buf[i + len(sep):]


def _read_n(c, buf, n):
    while len(buf) < n:
        b = c.recv(max(65536, n - len(buf)))
        if not b:
            raise EOFError
        buf += b
    return buf[:n], buf[n:]


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    fields = []
    for l in lines[1:]:
        k, _, v = l.partition(":")
        fields.append((k.strip().lower(), v.strip()))
    return lines[0], fields


def read_http_body(c, buf, fields):
    """Body of a message with these (lower-cased) fields: chunked or sized."""
    te = [v.lower() for k, v in fields if k == "transfer-encoding"]
    cl = [v for k, v in fields if k == "content-length"]
    if te and te[-1] == "chunked":
        body = b""
        while True:
            size_line, buf = _read_until(c, buf, b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                _trailers, buf = _read_until(c, buf, b"\r\n") if not buf.startswith(b"\r\n") \
                    else (b"", buf[2:])
                return body, buf
            chunk, buf = _read_n(c, buf, size + 2)
            body += chunk[:-2]
    if cl:
        return _read_n(c, buf, int(cl[0]))
    return b"", buf


class HttpRecord:
    def __init__(self, request_line, fields, body):
        self.request_line, self.fields, self.body = request_line, fields, body

    def header(self, name):
        return [v for k, v in self.fields if k == name.lower()]


def make_http_handler(label, requests_log):
    """A plain HTTP/1.1 origin server with keep-alive; every request it gets is
    appended to requests_log. GET /big?n=N answers N bytes."""
    def handler(c, rec):
        c.settimeout(10)
        buf = b""
        for _ in range(100):
            try:
                head, buf = _read_until(c, buf, b"\r\n\r\n")
            except EOFError:
                return
            rec.add(head + b"\r\n\r\n")
            request_line, fields = parse_head(head)
            body, buf = read_http_body(c, buf, fields)
            rec.add(body)
            requests_log.append(HttpRecord(request_line, fields, body))
            method, target = request_line.split(" ")[:2]
            if target.startswith("/big?n="):
                payload = BULK_BLOCK[:int(target.split("=")[1])]
            else:
                payload = ("plain upstream %s: %s %s body=%d\n" % (
                    label, method, target, len(body))).encode()
            close = any(v.lower() == "close" for k, v in fields if k == "connection")
            resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                    % (len(payload), b"Connection: close\r\n" if close else b""))
            c.sendall(resp + (b"" if method == "HEAD" else payload))
            if close:
                return
    return handler


# ---------------------------------------------------------------- scriptable origin


class Wire:
    """One server-side connection: buffered reads with raw-byte recording
    (into the Server's ConnRecord, up to a cap, so that Watch sees them)."""

    RECORD_CAP = 4 << 20

    def __init__(self, sock, rec):
        self.sock, self.rec, self.buf = sock, rec, b""

    def _more(self, n=65536):
        b = self.sock.recv(n)
        if not b:
            raise EOFError
        if len(self.rec.data) < self.RECORD_CAP:
            self.rec.add(b[:self.RECORD_CAP - len(self.rec.data)])
        self.buf += b

    def until(self, sep, limit=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._more()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._more(max(65536, min(n - len(self.buf), 1 << 20)))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def stream(self, n, h):
        """Consume n bytes into hash h without keeping them."""
        left = n
        while left:
            if not self.buf:
                self._more(min(left, 1 << 20))
            take = self.buf[:left]
            self.buf = self.buf[len(take):]
            h.update(take)
            left -= len(take)

    def send(self, data):
        self.sock.sendall(data)


class OriginRequest:
    def __init__(self, conn_no, head):
        self.conn_no = conn_no
        self.raw_head = head
        self.request_line, self.fields = parse_head(head)
        parts = self.request_line.split(" ")
        self.method, self.target = parts[0], parts[1] if len(parts) > 1 else ""
        self.path = self.target.split("?")[0]
        self.query = dict(kv.partition("=")[::2] for kv in self.target.partition("?")[2].split("&")
                          if kv)
        self.raw_body = b""  # the body as framed on the wire (chunk lines included)
        self.body = b""  # decoded
        self.trailers = []  # chunked trailer field lines, as sent
        self.t = time.time()

    def header(self, name):
        return [v for k, v in self.fields if k == name.lower()]

    def wants_close(self):
        return any("close" in v.lower() for v in self.header("connection")) \
            or self.request_line.endswith("HTTP/1.0")

    def __repr__(self):
        return "<OriginRequest %r fields=%r body=%d>" % (self.request_line, self.fields,
                                                         len(self.body))


class Origin:
    """An HTTP/1.1 origin with keep-alive, plain or TLS (ctx), whose answers
    are scripted by path: routes[path] = fn(origin, wire, req) -> keep_alive.
    The default route reads the body and answers a short text naming the
    request. Every request is kept in .requests (head fields, the body as
    framed on the wire and decoded). Serve it with Server(..., origin.handler)."""

    def __init__(self, label, ctx=None):
        self.label, self.ctx = label, ctx
        self.requests = []
        self.routes = {}
        self.lock = threading.Lock()
        self.conn_seq = itertools.count(1)
        self.fallback = None  # route for paths not in routes (default_route when None)
        self.notes = {}  # per-test scratch space of the routes (timestamps, progress)
        self.gates = {}  # name -> threading.Event a route may wait on

    def route(self, path):
        def deco(fn):
            self.routes[path] = fn
            return fn
        return deco

    def gate(self, name):
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def note(self, key, default):
        with self.lock:
            return self.notes.setdefault(key, default)

    def since(self, n):
        with self.lock:
            return list(self.requests[n:])

    def count_requests(self):
        with self.lock:
            return len(self.requests)

    def handler(self, c, rec):
        c.settimeout(20)
        if self.ctx is not None:
            c = self.ctx.wrap_socket(c, server_side=True)
        w = Wire(c, rec)
        conn_no = next(self.conn_seq)
        for _ in range(1000):
            try:
                head = w.until(b"\r\n\r\n", limit=256 * 1024)
            except EOFError:
                return
            req = OriginRequest(conn_no, head)
            with self.lock:
                self.requests.append(req)
            fn = self.routes.get(req.path, self.fallback or Origin.default_route)
            if not fn(self, w, req):
                break
        if self.ctx is not None:
            try:
                c.unwrap()
            except (ssl.SSLError, OSError):
                pass

    @staticmethod
    def read_body(w, req):
        """Read the request body into req.raw_body / req.body / req.trailers."""
        te = [v.lower() for v in req.header("transfer-encoding")]
        cl = req.header("content-length")
        if te and te[-1].split(",")[-1].strip() == "chunked":
            raw, body = b"", b""
            while True:
                line = w.until(b"\r\n")
                raw += line + b"\r\n"
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        t = w.until(b"\r\n")
                        raw += t + b"\r\n"
                        if not t:
                            break
                        req.trailers.append(t)
                    break
                chunk = w.exact(size + 2)
                raw += chunk
                body += chunk[:-2]
            req.raw_body, req.body = raw, body
        elif cl:
            req.raw_body = req.body = w.exact(int(cl[0]))

    @staticmethod
    def respond(w, req, body, status="200 OK", headers=(), content_type="text/plain"):
        close = req.wants_close()
        head = "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            status, content_type, len(body))
        head += "".join("%s: %s\r\n" % kv for kv in headers)
        if close:
            head += "Connection: close\r\n"
        w.send(head.encode("latin-1") + b"\r\n" + (b"" if req.method == "HEAD" else body))
        return not close

    def default_route(self, w, req):
        self.read_body(w, req)
        body = ("origin %s: %s %s body=%d sha256=%s\n" % (
            self.label, req.method, req.target, len(req.body),
            hashlib.sha256(req.body).hexdigest())).encode()
        return self.respond(w, req, body)


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---------------------------------------------------------------- client processes


def client_env(home, **proxy_vars):
    """An environment for a client process: no proxy variable of ours
    unless given, HOME in the test's directory, no user or system config."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith(("GIT_", "PIP_", "CURL_", "SSL_",
                                                             "REQUESTS_", "NODE_"))}
    env.update({"HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
                "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
                "PYTHONNOUSERSITE": "1"})
    env.update(proxy_vars)
    return env
