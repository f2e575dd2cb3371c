"""Resource exhaustion at scale (issue 7, item 3), with real sockets:

- slowloris: 2,000 clients that send half a head, dribble one, or send
  nothing do not delay a legitimate CONNECT and plain-HTTP GET, stay
  connected until header_timeout_ms, then get 408; the per-client cap
  refuses one address's 501st connection while another address is served;
  the global cap refuses the connection over max_connections;
- clients that stop reading: 40 stalled downloads (CONNECT tunnels and
  plain-HTTP GETs, one of 200 MiB) grow egressd's RSS by less than
  40 x (2 x buffer_bytes + slack), and every byte arrives intact once the
  clients read again;
- the descriptor limit: egressd started with RLIMIT_NOFILE 96 stops
  accepting when it runs out, does not spin or crash, logs accept_failed a
  bounded number of times, answers a request it has no upstream socket for
  with 500 internal_error, and serves again once connections close.

Each test prints the figures it measured (pytest -s shows them)."""

import os
import resource
import select
import selectors
import socket
import threading
import time

import pytest

import harness as H

PORT_STREAM = 446  # on ADDR_ECHO: raw TCP, "SEND <n> <id>\n" -> n bytes
PORT_HTTP_STREAM = 8446  # on ADDR_ECHO: plain HTTP, GET /stream?n=N&id=X
ECHO = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)

POLICY = """  { name = "exhaust";
    rules = (
      { name = "echo"; networks = [ "203.0.113.20/32" ]; ports = [ 443, 446, 8446 ];
        methods = [ "CONNECT", "GET" ]; },
      { name = "plain"; networks = [ "198.51.100.10/32" ]; ports = [ 80 ]; }
    );
  }"""

# The data every stream sends: H.BULK_BLOCK (1 MiB) over and over. Twice
# over, so that any piece of at most 1 MiB at any offset is one slice.
BLOCK = H.BULK_BLOCK
BLOCK2 = BLOCK + BLOCK
MIB = 1 << 20


def _raise_nofile(need):
    """This process holds thousands of client sockets: raise the soft limit
    (within the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert hard >= need, "RLIMIT_NOFILE hard limit %d < %d needed by this test" % (hard, need)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _socks(pid):
    """egressd's sockets: what connections hold.  (Its other descriptors
    include the relay's pooled pipes, up to 64 a worker, kept for reuse.)"""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def _settled_fds(e, closes):
    """egressd's descriptor count once `closes` close lines are logged and
    the count has held still for 0.2 s (a closing connection's descriptors
    go just after its line)."""
    H.wait_until(lambda: len(e.log.find(event="close")) >= closes, 5,
                 what="%d close lines" % closes)
    last = [None, 0]

    def still():
        n = _fds(e.pid)
        if n == last[0]:
            last[1] += 1
        else:
            last[:] = [n, 0]
        return last[1] >= 4
    H.wait_until(still, 5, what="egressd's descriptor count to settle")
    return last[0]


def _cpu_s(pid):
    """User + system CPU time of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _connect(port, src=None, rcvbuf=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


class SockClient(H.Client):
    """harness.Client on a socket made by _connect."""

    def __init__(self, sock):
        self.sock, self.buf, self.response = sock, b"", None


# ---------------------------------------------------------------- stream servers


class Progress:
    """Bytes each stream server connection has handed to the kernel, by id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}

    def add(self, sid, n):
        with self.lock:
            self.sent[sid] = self.sent.get(sid, 0) + n

    def get(self, sid):
        with self.lock:
            return self.sent.get(sid, 0)

    def total(self):
        with self.lock:
            return sum(self.sent.values())


def _send_stream(c, n, sid, progress):
    c.settimeout(60)
    off = 0
    while off < n:
        k = min(256 * 1024, n - off)
        start = off % MIB
        c.sendall(memoryview(BLOCK2)[start:start + k])
        off += k
        progress.add(sid, k)


def make_stream_handler(progress):
    def handler(c, rec):
        line = b""
        while not line.endswith(b"\n") and len(line) < 100:
            b = c.recv(1)
            if not b:
                return
            line += b
        _, n, sid = line.split()
        _send_stream(c, int(n), sid.decode(), progress)
        c.shutdown(socket.SHUT_WR)
    return handler


def make_http_stream_handler(progress):
    def handler(c, rec):
        head, _ = H._read_until(c, b"", b"\r\n\r\n")
        request_line, _fields = H.parse_head(head)
        query = request_line.split(" ")[1].partition("?")[2]
        args = dict(kv.partition("=")[::2] for kv in query.split("&"))
        n = int(args["n"])
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % n)
        _send_stream(c, n, args["id"], progress)
    return handler


@pytest.fixture(scope="module")
def streams(world):
    progress = Progress()
    servers = [H.Server("stream", H.ADDR_ECHO, PORT_STREAM, make_stream_handler(progress)),
               H.Server("http-stream", H.ADDR_ECHO, PORT_HTTP_STREAM,
                        make_http_stream_handler(progress))]
    for s in servers:
        s.start()
    yield progress
    for s in servers:
        s.stop()


def _read_stream(c, n, timeout):
    """Read exactly n bytes of the stream pattern, then EOF; every byte is
    compared with what the server sent at that offset. Returns n."""
    d = H.Deadline(timeout)
    got = 0
    buf = bytearray(MIB)
    view = memoryview(buf)
    pending = c.buf
    c.buf = b""
    while True:
        if pending:
            k = len(pending)
            view[:k] = pending
            pending = b""
        else:
            assert not d.expired(), "%d of %d bytes within %ss" % (got, n, timeout)
            c.sock.settimeout(max(0.01, d.left()))
            try:
                k = c.sock.recv_into(buf, min(MIB, max(1, n - got)) if got < n else 1)
            except socket.timeout:
                continue
            if k == 0:
                break
        assert got + k <= n, "more than the %d bytes sent" % n
        start = got % MIB
        assert view[:k] == BLOCK2[start:start + k], \
            "bytes %d..%d differ from what the server sent" % (got, got + k)
        got += k
    assert got == n, "EOF after %d of %d bytes" % (got, n)
    return got


# ---------------------------------------------------------------- slowloris

N_SLOW = 2000
SLOW_SOURCES = ["127.0.0.%d" % i for i in (11, 12, 13, 14)]  # 500 each
PER_CLIENT = N_SLOW // len(SLOW_SOURCES)
LEGIT_SRC = "127.0.0.20"
HEADER_TIMEOUT_MS = 10000  # the default, written out: the test's bounds hang on it
PARTIAL_HEAD = (b"GET http://198.51.100.10/slow HTTP/1.1\r\nHost: 198.51.100.10\r\n"
                b"User-Agent: slowloris\r\n")
DRIBBLE = b"CONNECT 203.0.113.20:443 HTTP/1.1\r\nX-Padding: " + b"z" * 200


class Dribbler(threading.Thread):
    """Sends the next byte of DRIBBLE to each of its sockets every 0.5 s,
    until stopped or the socket is gone."""

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks = list(socks)
        self.pos = {s: 0 for s in self.socks}
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.rounds = 0

    def forget(self, s):
        with self.lock:
            self.pos.pop(s, None)

    def run(self):
        while not self.stop_ev.wait(0.5):
            with self.lock:
                for s, i in list(self.pos.items()):
                    if i >= len(DRIBBLE):
                        continue
                    try:
                        s.send(DRIBBLE[i:i + 1], socket.MSG_DONTWAIT)
                        self.pos[s] = i + 1
                    except OSError:
                        self.pos.pop(s)
                self.rounds += 1

    def stop(self):
        self.stop_ev.set()
        self.join(5)


def _legit_connect(port):
    """A CONNECT to the echo server and one echo; returns its duration."""
    t0 = time.monotonic()
    c = SockClient(_connect(port, LEGIT_SRC))
    with c:
        c.send(H.connect_req(ECHO))
        head = c.read_head(timeout=10)
        assert head == b"HTTP/1.1 200 Connection established", head
        assert c.echo(b"legit tunnel", timeout=10) == b"legit tunnel"
    return time.monotonic() - t0


def _legit_get(port, path=b"/legit", src=LEGIT_SRC):
    """A plain-HTTP GET to the world's plain upstream; returns its duration."""
    t0 = time.monotonic()
    c = SockClient(_connect(port, src))
    with c:
        c.send(b"GET http://198.51.100.10%s HTTP/1.1\r\nHost: 198.51.100.10\r\n"
               b"Connection: close\r\n\r\n" % path)
        r = c.read_message(timeout=10)
    assert r.status == 200, r
    assert r.body == b"plain upstream api: GET %s body=0\n" % path, r.body
    return time.monotonic() - t0


def test_slowloris_2000_clients(world, egressd_factory):
    """2,000 slow clients from four addresses (500 each, the per-client
    cap): a third send nothing, a third half a head, a third dribble a head
    a byte every 0.5 s. While all of them are connected, a CONNECT and a
    plain-HTTP GET from a fifth address succeed promptly; a 501st connection
    from a slow address gets 503. Then header_timeout_ms answers every slow
    client with 408 and egressd lets go of their descriptors.

    Why the "still connected" check is sound: header_timeout_ms (10 s)
    counts from accept, for every kind of slow client alike (a dribbled
    byte does not restart it), and the phase that checks them is asserted
    to end over a second before the first of them was connected plus 10 s.
    Nothing else may close a connection that has not sent a whole head:
    max_connections is 8192, and the per-client cap refuses only new
    connections (the probe), never ones already open."""
    _raise_nofile(N_SLOW + 1000)
    e = egressd_factory("slowloris", lambda port, log: H.render_config(
        port, log, POLICY, limits={"header_timeout_ms": HEADER_TIMEOUT_MS,
                                   "max_connections_per_client": PER_CLIENT}))
    # warm up: the first requests set up each worker's allocations
    _legit_connect(e.port)
    _legit_get(e.port)
    fds0 = _settled_fds(e, 2)
    socks0 = _socks(e.pid)
    mark = e.log.mark()

    socks, kinds, born = [], [], {}
    dribbler = None
    sel = selectors.DefaultSelector()
    try:
        t_first = time.monotonic()
        for i in range(N_SLOW):
            t = time.monotonic()  # egressd accepts it after this
            s = _connect(e.port, SLOW_SOURCES[i % len(SLOW_SOURCES)])
            born[s] = t
            socks.append(s)
            kind = ("silent", "partial", "dribble")[i % 3]
            kinds.append(kind)
            if kind == "partial":
                s.sendall(PARTIAL_HEAD)
        t_opened = time.monotonic()
        dribbler = Dribbler(s for s, k in zip(socks, kinds) if k == "dribble")
        dribbler.start()
        # egressd has accepted all of them (each holds a descriptor there)
        H.wait_until(lambda: _fds(e.pid) >= fds0 + N_SLOW, 10,
                     what="egressd to accept the %d slow clients" % N_SLOW)

        for s in socks:
            sel.register(s, selectors.EVENT_READ)

        def still_connected():
            """None of the 2,000 has been answered or closed; egressd still
            holds a descriptor for each."""
            ready = sel.select(timeout=0)
            assert not ready, "%d slow clients were answered or closed early, e.g. %r" % (
                len(ready), ready[0][0].fileobj.recv(200))
            assert _fds(e.pid) >= fds0 + N_SLOW
            assert not e.log.find(since=mark, reason="header_timeout")

        # the per-client cap: a 501st connection from a slow address
        r = SockClient(_connect(e.port, SLOW_SOURCES[0]))
        with r:
            probe_local = r.local
            resp = r.read_response(timeout=5)
        H.assert_error_response(resp, 503, "connection_limit_reached", "too_many_connections")
        line = e.log.wait(since=mark, event="error", client=probe_local)
        assert line["reason"] == "too_many_connections" and line["status"] == 503, line

        # The legitimate requests, several times each: once the dribblers
        # have sent a few bytes, and again when the slow clients have
        # been there for 6 s.
        took_connect, took_get = [], []
        for at in (2.0, 6.0):
            time.sleep(max(0.0, t_first + at - time.monotonic()))
            still_connected()
            took_connect += [_legit_connect(e.port) for _ in range(5)]
            took_get += [_legit_get(e.port) for _ in range(5)]
            still_connected()
        t_checked = time.monotonic()
        # The bound that makes the checks above meaningful (see docstring).
        assert t_checked - t_first < HEADER_TIMEOUT_MS / 1000 - 1, \
            "the still-connected phase took %.1fs: too close to header_timeout_ms" % (
                t_checked - t_first)
        # Promptly: a loaded 2-core machine answers these in milliseconds;
        # 2 s is a bound that only a stalled event loop would miss.
        assert max(took_connect) < 2.0, took_connect
        assert max(took_get) < 2.0, took_get
        dribbled = dribbler.rounds
        assert dribbled >= 8, "the dribblers sent only %d bytes each" % dribbled

        # header_timeout_ms answers each slow client: 408, then close
        got = {s: b"" for s in socks}
        done = set()
        answered_at = {}
        d = H.Deadline(t_first + HEADER_TIMEOUT_MS / 1000 + 8 - time.monotonic())
        while len(done) < len(socks) and not d.expired():
            for key, _ in sel.select(timeout=min(0.5, d.left())):
                s = key.fileobj
                try:
                    b = s.recv(4096, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    b = b""
                if b:
                    got[s] += b
                    answered_at.setdefault(s, time.monotonic())
                    continue
                done.add(s)
                sel.unregister(s)
                dribbler.forget(s)
        dribbler.stop()
        assert len(done) == len(socks), "%d of %d slow clients closed within %.0fs" % (
            len(done), len(socks), HEADER_TIMEOUT_MS / 1000 + 8)
        bad = [(k, got[s][:40]) for s, k in zip(socks, kinds)
               if not got[s].startswith(b"HTTP/1.1 408 Request Timeout\r\n")]
        assert not bad, "%d slow clients without a 408, e.g. %r" % (len(bad), bad[:3])
        # each one when its own timeout ran out, counted from accept (which
        # follows `born`; egressd's timers start from the event loop's time
        # of the iteration that accepted, up to one busy iteration earlier)
        waited = [answered_at[s] - born[s] for s in socks]
        assert min(waited) >= HEADER_TIMEOUT_MS / 1000 - 0.5, min(waited)
        assert max(waited) <= HEADER_TIMEOUT_MS / 1000 + 5, max(waited)
        lines = e.log.find(since=mark, event="error", reason="header_timeout")
        assert len(lines) == N_SLOW, len(lines)
        assert sorted({l["client"].split(":")[0] for l in lines}) == SLOW_SOURCES
        H.wait_until(lambda: _socks(e.pid) <= socks0 + 2, 10,
                     what="egressd to close the slow connections")
    finally:
        if dribbler is not None:
            dribbler.stop()
        sel.close()
        for s in socks:
            s.close()
    assert _legit_connect(e.port) < 2.0
    print("\nslowloris: %d slow clients opened in %.2fs; legit CONNECT %.0f-%.0f ms, "
          "GET %.0f-%.0f ms while all were connected (at 2 s and 6 s); dribblers sent "
          "%d bytes each by then; "
          "408s %.2f-%.2fs after each connect" % (
              N_SLOW, t_opened - t_first, 1000 * min(took_connect), 1000 * max(took_connect),
              1000 * min(took_get), 1000 * max(took_get), dribbled,
              min(waited), max(waited)))


def test_global_connection_cap(world, egressd_factory):
    """max_connections: the connection over it gets 503 at once, whatever its
    address; one closed connection makes room for the next."""
    cap = 50
    e = egressd_factory("global-cap", lambda port, log: H.render_config(
        port, log, POLICY, limits={"max_connections": cap, "header_timeout_ms": 20000}))
    fds0 = _fds(e.pid)
    held = []
    try:
        for i in range(cap):
            held.append(_connect(e.port, "127.0.0.%d" % (30 + i % 5)))
        H.wait_until(lambda: _fds(e.pid) >= fds0 + cap, 5,
                     what="egressd to accept %d connections" % cap)
        for src in ("127.0.0.30", "127.0.0.40"):
            mark = e.log.mark()
            c = SockClient(_connect(e.port, src))
            with c:
                local = c.local
                c.send(H.connect_req(ECHO))
                r = c.read_response(timeout=5)
            H.assert_error_response(r, 503, "connection_limit_reached", "too_many_connections")
            line = e.log.wait(since=mark, event="error", client=local)
            assert line["reason"] == "too_many_connections", line
        held.pop().close()
        # the slot comes back once egressd has seen the close
        def served():
            c = SockClient(_connect(e.port, "127.0.0.40"))
            with c:
                c.send(H.connect_req(ECHO))
                head = c.read_head(timeout=5)
                if not head.startswith(b"HTTP/1.1 200 "):
                    return None
                return c.echo(b"room again") == b"room again"
        H.wait_until(served, 5, interval=0.1, what="a connection after one closed")
    finally:
        for s in held:
            s.close()


DEFAULT_PER_CLIENT = 256  # limits.max_connections_per_client unless set (docs/config.md)


def _tunnel_ok(port, src, payload):
    """A CONNECT to the echo server from src and one echo: True, or None
    when the answer is not 200."""
    c = SockClient(_connect(port, src))
    with c:
        c.send(H.connect_req(ECHO))
        if not c.read_head(timeout=5).startswith(b"HTTP/1.1 200 "):
            return None
        return c.echo(payload) == payload


def test_default_per_client_cap(world, egressd_factory):
    """With no limits written, one address may hold 256 connections at once:
    its 257th gets 503 too_many_connections at once, another address is
    still served, and one closed connection makes room again."""
    _raise_nofile(DEFAULT_PER_CLIENT + 200)
    src, other = "127.0.0.50", "127.0.0.51"
    e = egressd_factory("default-cap", lambda port, log: H.render_config(
        port, log, POLICY, limits={"header_timeout_ms": 20000}))
    socks0 = _socks(e.pid)
    held = []
    try:
        for _ in range(DEFAULT_PER_CLIENT):
            held.append(_connect(e.port, src))
        H.wait_until(lambda: _socks(e.pid) >= socks0 + DEFAULT_PER_CLIENT, 10,
                     what="egressd to accept %d connections" % DEFAULT_PER_CLIENT)
        mark = e.log.mark()
        c = SockClient(_connect(e.port, src))
        with c:
            local = c.local
            c.send(H.connect_req(ECHO))
            r = c.read_response(timeout=5)
        H.assert_error_response(r, 503, "connection_limit_reached", "too_many_connections")
        line = e.log.wait(since=mark, event="error", client=local)
        assert line["reason"] == "too_many_connections", line
        assert _tunnel_ok(e.port, other, b"another address")
        held.pop().close()
        # the slot comes back once egressd has seen the close
        H.wait_until(lambda: _tunnel_ok(e.port, src, b"room again"), 5, interval=0.1,
                     what="a connection from %s after one closed" % src)
    finally:
        for s in held:
            s.close()



# ---------------------------------------------------------------- clients that stop reading

BUFFER_BYTES = 524288  # the default, written out: the bound is derived from it
N_TUNNELS, N_GETS = 20, 20
BIG = 200 * MIB  # one of the tunnels
EACH = 24 * MIB  # every other stream
# Per stalled client egressd may hold one direction's buffer: up to
# buffer_bytes plus one read before it stops reading the upstream, in
# libevent chains that can be up to half empty (hence 2 x), plus the
# connection's own structures and allocator slack.
SLACK = 128 * 1024
# Under AddressSanitizer: its quarantine keeps freed memory resident (so
# egressd runs with it off here), and its redzones, size classes and shadow
# memory make each allocation about a fifth bigger (measured: 627 KiB per
# stalled client against 522 KiB without ASan).
ASAN_FACTOR = 1.25


def _status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def _rss_kib(pid):
    return _status_kib(pid, "VmRSS")


def _peak_rss_kib(pid):
    """The most RSS the process ever had (VmHWM): no spike between samples
    escapes it."""
    return _status_kib(pid, "VmHWM")


@pytest.mark.native_only("memory and stall measurements mean nothing under valgrind")
def test_clients_that_stop_reading(world, egressd_factory, streams):
    """40 clients stop reading: 20 CONNECT tunnels (one streaming 200 MiB,
    the others 24 MiB) and 20 plain-HTTP GETs of 24 MiB bodies. While they
    read nothing, the servers stall (egressd stopped reading them) and
    egressd's RSS grows by less than 40 x (2 x buffer_bytes + 128 KiB).
    Then each client reads: every byte arrives, equal to what was sent, and
    the close lines count them."""
    n = N_TUNNELS + N_GETS
    asan = H.egressd_has_asan()
    bound_kib = int(n * (2 * BUFFER_BYTES * (ASAN_FACTOR if asan else 1) + SLACK) // 1024)
    e = egressd_factory("stop-reading", lambda port, log: H.render_config(
        port, log, POLICY, limits={"buffer_bytes": BUFFER_BYTES}) + "workers = 2;\n",
        start=False)
    if asan:
        e.env = dict(os.environ, ASAN_OPTIONS=":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if o))
    e.start()
    tag = "%d-" % e.pid
    # warm up both workers and the allocator with one full stream each way
    for i in range(4):
        c = SockClient(_connect(e.port))
        with c:
            c.send(H.connect_req("%s:%d" % (H.ADDR_ECHO, PORT_STREAM)))
            assert c.read_head() == b"HTTP/1.1 200 Connection established"
            c.send(b"SEND %d %swarm%d\n" % (4 * MIB, tag.encode(), i))
            _read_stream(c, 4 * MIB, 10)
    base = _rss_kib(e.pid)
    hwm0 = _peak_rss_kib(e.pid)

    clients = []  # (client, kind, size, id)
    try:
        for i in range(N_TUNNELS):
            size = BIG if i == 0 else EACH
            sid = "%st%d" % (tag, i)
            c = SockClient(_connect(e.port, rcvbuf=64 * 1024, timeout=10))
            clients.append((c, "tunnel", size, sid))
            c.send(H.connect_req("%s:%d" % (H.ADDR_ECHO, PORT_STREAM)))
            assert c.read_head() == b"HTTP/1.1 200 Connection established"
            c.send(b"SEND %d %s\n" % (size, sid.encode()))
        for i in range(N_GETS):
            sid = "%sg%d" % (tag, i)
            c = SockClient(_connect(e.port, rcvbuf=64 * 1024, timeout=10))
            clients.append((c, "get", EACH, sid))
            c.send(b"GET http://%s:%d/stream?n=%d&id=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                   b"Connection: close\r\n\r\n" % (
                H.ADDR_ECHO.encode(), PORT_HTTP_STREAM, EACH, sid.encode(),
                H.ADDR_ECHO.encode(), PORT_HTTP_STREAM))

        # the servers stall: nothing more is taken from them for 1 s
        peak = base
        last, still_since = -1, None
        d = H.Deadline(15)
        while True:
            peak = max(peak, _rss_kib(e.pid))
            total = streams.total()
            now = time.monotonic()
            if total != last:
                last, still_since = total, now
            elif now - still_since >= 1.0 and all(streams.get(sid) > 0
                                                  for _, _, _, sid in clients):
                break
            assert not d.expired(), "the streams did not stall (%d bytes sent)" % total
            time.sleep(0.05)
        # and stay stalled, with memory flat, while the clients read nothing
        d = H.Deadline(2.0)
        while not d.expired():
            peak = max(peak, _rss_kib(e.pid))
            time.sleep(0.05)
        assert streams.total() == last, "the servers went on sending to clients that read nothing"
        peak = max(peak, _peak_rss_kib(e.pid))
        sent_big = streams.get("%st0" % tag)
        waiting = sum(size - streams.get(sid) for _, _, size, sid in clients)
        grew = peak - base
        assert sent_big < BIG // 2, \
            "the 200 MiB server sent %d MiB to a client that read nothing" % (sent_big // MIB)
        # the bound means something: far more than it is still waiting upstream
        assert waiting > 10 * bound_kib * 1024, (waiting, bound_kib)
        assert grew < bound_kib, (
            "RSS grew by %d KiB with %d clients reading nothing (bound %d KiB = %d x "
            "(2 x %d%s + %d) bytes)" % (grew, n, bound_kib, n, BUFFER_BYTES,
                                        " x %.2f (ASan)" % ASAN_FACTOR if asan else "", SLACK))

        # the clients read again: everything arrives, intact
        mark = e.log.mark()
        t0 = time.monotonic()
        for c, kind, size, sid in clients:
            if kind == "get":
                r = H.Response(c.read_head(timeout=10))
                assert r.status == 200 and int(r.header("Content-Length")) == size, r
            assert _read_stream(c, size, 30) == size, sid
            c.close()
        took = time.monotonic() - t0
        moved = sum(size for _, _, size, _ in clients)
    finally:
        for c, _, _, _ in clients:
            c.close()
    closes = H.wait_until(lambda: (lambda ls: ls if len(ls) >= n else None)(
        e.log.find(since=mark, event="close")), 10, what="a close line for each stream")
    tunnels = sorted(l["bytes_down"] for l in closes if l.get("method") == "CONNECT")
    gets = [l for l in closes if l.get("method") == "GET"]
    assert tunnels == sorted(size for _, k, size, _ in clients if k == "tunnel"), tunnels
    assert len(gets) == N_GETS and all(l["status"] == 200 and l["bytes_down"] >= EACH
                                       for l in gets), gets
    print("\nstop reading%s: %d stalled clients, %d MiB waiting upstream; RSS %d KiB -> peak "
          "+%d KiB (%.1f KiB per client; bound %d KiB; VmHWM before: %d KiB); the 200 MiB server stalled at "
          "%.1f MiB; then %d MiB read intact in %.1fs" % (
              " (ASan)" if asan else "", n, waiting // MIB, base, grew, grew / n, bound_kib, hwm0,
              sent_big / MIB, moved // MIB, took))


# ---------------------------------------------------------------- the descriptor limit

NOFILE = 96


@pytest.mark.native_only("valgrind keeps descriptors of its own under the limit")
def test_fd_limit_pauses_accepting_and_recovers(world, egressd_factory):
    """egressd under RLIMIT_NOFILE 96 (soft = hard, so it cannot raise it):
    it says at start that max_connections does not fit (fd_limit_low).
    Idle connections fill its descriptors; then it accepts nothing more,
    logs accept_failed (EMFILE) a few times a second, uses almost no CPU
    (a spinning accept loop would use a whole core), and stays up. A
    CONNECT on an accepted connection gets 500 internal_error (no socket
    for the upstream); one on a new connection waits in the listen backlog,
    and once the idle connections close it is accepted and served, and so
    are new ones."""
    e = egressd_factory("fd-limit", lambda port, log: H.render_config(
        port, log, POLICY, limits={"header_timeout_ms": 25000}) + "workers = 2;\n",
        start=False)
    e.nofile = NOFILE
    e.start()
    with open("/proc/%d/limits" % e.pid) as f:
        limits = f.read()
    assert any(l.startswith("Max open files") and l.split()[3:5] == [str(NOFILE)] * 2
               for l in limits.splitlines()), limits
    low = e.log.wait(event="error", reason="fd_limit_low")
    assert "limits.max_connections 8192" in low["message"], low
    assert "the limit is %d" % NOFILE in low["message"], low
    # one request first, so that nothing it sets up on first use (resolver
    # sockets, ...) takes a descriptor later
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200 and c.echo(b"warm") == b"warm", r
    fds0 = _settled_fds(e, 1)
    socks0 = _socks(e.pid)
    mark = e.log.mark()

    held = []
    pending = None
    try:
        # open idle connections one at a time, each accepted before the next,
        # until one is not accepted: egressd is out of descriptors
        extra = None
        for _ in range(NOFILE):
            before = _fds(e.pid)
            s = _connect(e.port)
            try:
                H.wait_until(lambda: _fds(e.pid) > before, 1.0, interval=0.01)
            except AssertionError:
                extra = s  # established, waiting in the listen backlog
                break
            held.append(s)
        assert extra is not None, "egressd accepted %d connections under RLIMIT_NOFILE %d" % (
            len(held), NOFILE)
        assert _fds(e.pid) == NOFILE, (_fds(e.pid), NOFILE)
        assert len(held) == NOFILE - fds0, (len(held), fds0)
        failed = e.log.wait(since=mark, event="error", reason="accept_failed")
        assert failed["message"] == "accept: Too many open files", failed

        # A CONNECT on a connection egressd did accept: no descriptor for the
        # upstream socket, so 500 internal_error (egressd's shortage), not a
        # 502 that blames the destination.
        c = SockClient(held.pop())
        with c:
            local = c.local
            c.send(H.connect_req(ECHO))
            r = c.read_response(timeout=5)
        H.assert_error_response(r, 500, "proxy_internal_error", "internal_error", ECHO)
        line = e.log.wait(since=mark, event="error", client=local)
        assert line["reason"] == "internal_error" and line["status"] == 500, line
        # its descriptor goes to the connection that waited in the backlog
        H.wait_until(lambda: e.log.find(since=mark, event="close", client=local), 5,
                     what="the refused connection's close line")
        held.append(extra)
        H.wait_until(lambda: _fds(e.pid) == NOFILE, 3, what="the backlog to take the free fd")

        # a new connection now waits in the backlog, its CONNECT unanswered
        pending = SockClient(_connect(e.port))
        pending.send(H.connect_req(ECHO))
        # at the limit for ~2 s: no spinning, no crash, a bounded number of log lines
        mark2 = e.log.mark()
        cpu0, t0 = _cpu_s(e.pid), time.monotonic()
        time.sleep(2.0)
        cpu1, t1 = _cpu_s(e.pid), time.monotonic()
        cpu_share = (cpu1 - cpu0) / (t1 - t0)
        assert cpu_share < 0.1, "egressd used %.0f%% of a CPU at the fd limit" % (100 * cpu_share)
        assert e.alive(), e.stderr()
        lines = e.log.find(since=mark2, event="error", reason="accept_failed")
        # each worker retries every ACCEPT_PAUSE_MS (200 ms): ~10 a second
        # for two workers; a loop would write thousands
        assert 2 <= len(lines) <= 2 * (t1 - t0) / 0.2 + 4, len(lines)
        assert not select_readable(pending.sock), "the pending CONNECT was answered: %r" % (
            pending.sock.recv(200))

        # the idle connections close: the pending CONNECT is served promptly
        t_close = time.monotonic()
        for s in held:
            s.close()
        held = []
        head = pending.read_head(timeout=5)
        took = time.monotonic() - t_close
        assert head == b"HTTP/1.1 200 Connection established", head
        assert pending.echo(b"after the limit") == b"after the limit"
        assert took < 3.0, "the pending CONNECT waited %.1fs after the close" % took
        # and new requests, both kinds
        c, r = H.tunnel(e.port, ECHO)
        with c:
            assert r.status == 200 and c.echo(b"new") == b"new", r
        _legit_get(e.port, b"/after", src=None)
    finally:
        for s in held:
            s.close()
        if pending is not None:
            pending.close()
    H.wait_until(lambda: _socks(e.pid) <= socks0, 5,
                 what="egressd's sockets back to %d" % socks0)
    assert e.alive()
    print("\nfd limit: RLIMIT_NOFILE %d, %d idle before, %d connections held; at the limit "
          "%.1f%% of a CPU for %.1fs, %d accept_failed lines; the pending CONNECT served "
          "%.0f ms after the close" % (NOFILE, fds0, NOFILE - fds0, 100 * cpu_share, t1 - t0,
                                      len(lines), 1000 * took))


def select_readable(sock):
    return bool(select.select([sock], [], [], 0)[0])
