"""Limits per identity (issue 5, part 3): requests per second (GCRA token
bucket), concurrent tunnels, bytes per tunnel, tunnel lifetime. Over a
limit: 429 with Proxy-Status connection_limit_reached, a deny line and a
metric; a tunnel over its bytes or lifetime is closed (close reason
limit_bytes / limit_lifetime). Counters are shared by the workers and
survive reloads.

No assertion here depends on how fast the machine is: the rate test counts
answers, and bounds what a refill could add by the time that really passed."""

import math
import time

import pytest

import harness as H
import service as S

ECHO = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)

POLICY = """  { name = "lim";
    rules = (
      { name = "echo"; networks = [ "203.0.113.20/32" ]; ports = [ 443, 444, 445 ];
        methods = [ "CONNECT" ]; },
      { name = "plain"; networks = [ "198.51.100.10/32" ]; ports = [ 80 ]; }
    );
  }"""

RATE, BURST = 1, 5
MAX_TUNNELS = 3
MAX_BYTES = 10000
MAX_MS = 800

SRC_RATE, SRC_TUNNELS, SRC_BYTES, SRC_LIFE, SRC_FREE = (
    "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6", "127.0.0.7")

IDENTITIES = [
    S.identity_text("rate", "lim", sources=[SRC_RATE + "/32"],
                    limits={"requests_per_second": RATE, "burst": BURST}),
    S.identity_text("tunnels", "lim", sources=[SRC_TUNNELS + "/32"],
                    limits={"max_tunnels": MAX_TUNNELS}),
    S.identity_text("bytes", "lim", sources=[SRC_BYTES + "/32"],
                    limits={"max_tunnel_bytes": MAX_BYTES}),
    S.identity_text("life", "lim", sources=[SRC_LIFE + "/32"],
                    limits={"max_tunnel_ms": MAX_MS}),
    S.identity_text("free", "lim", sources=[SRC_FREE + "/32"]),
]


@pytest.fixture
def lim(world, egressd_factory):
    """Four workers: the limits' counters must be shared by all of them."""
    admin_port = H.free_port()

    def config(port, log):
        return S.render(port, log, POLICY, identify=["source"], identities=IDENTITIES,
                        admin_port=admin_port, workers=4)
    e = egressd_factory("limits", config)
    e.admin = S.Admin(admin_port).wait_up()
    e.config_fn_text = lambda: config(e.port, e.log_path)
    return e


def _burst(port, src, n, target=ECHO):
    """n CONNECTs on n connections opened beforehand, their heads sent back
    to back: (responses, seconds from the first send to the last answer)."""
    clients = [H.Client(port, src=src) for _ in range(n)]
    try:
        t0 = time.monotonic()
        for c in clients:
            c.send(S.connect_req(target))
        rs = [c.read_response() for c in clients]
        elapsed = time.monotonic() - t0
        for c, r in zip(clients, rs):
            r.client = c.local
    finally:
        for c in clients:
            c.close()
    return rs, elapsed


def test_rate_limit(world, lim):
    e = lim
    m0 = e.admin.metrics()
    mark = e.log.mark()
    n = 12
    rs, elapsed = _burst(e.port, SRC_RATE, n)
    ok = [r for r in rs if r.status == 200]
    limited = [r for r in rs if r.status != 200]
    # GCRA: exactly `burst` at once; a refill adds at most RATE per second
    # that passed (none, normally: the burst takes milliseconds)
    assert BURST <= len(ok) <= BURST + math.floor(elapsed * RATE), (
        len(ok), elapsed, [r.status for r in rs])
    for r in limited:
        S.assert_answer(r, 429, "connection_limit_reached", "limit_rate", ECHO)
        line = e.log.wait(since=mark, event="deny", client=r.client)
        assert line["reason"] == "limit_rate" and line["status"] == 429, line
        assert line["identity"] == "rate" and line["policy"] == "lim", line
    for r in ok:
        allow = e.log.wait(since=mark, event="allow", client=r.client)
        assert allow["identity"] == "rate", allow
    H.wait_until(lambda: len(e.log.find(since=mark, event="close")) >= n, 5,
                 what="a close line for each request")
    m1 = e.admin.metrics()
    assert m1.requests("deny", "limit_rate", "lim") - m0.requests("deny", "limit_rate", "lim") \
        == len(limited), m1.text
    assert m1.requests("allow", "allowed", "lim") - m0.requests("allow", "allowed", "lim") \
        == len(ok), m1.text

    # the bucket survives a reload: refills only, never a fresh burst
    t_first = time.monotonic() - elapsed
    rmark = e.log.mark()
    e.reload(e.config_fn_text())
    e.log.wait(since=rmark, event="reload", timeout=5)
    rs2, _ = _burst(e.port, SRC_RATE, BURST)
    allowed2 = sum(r.status == 200 for r in rs2)
    since_first = time.monotonic() - t_first
    assert allowed2 <= math.floor(since_first * RATE), (
        "%d allowed right after a reload, %.2fs after the first burst: the rate "
        "limit's bucket was reset" % (allowed2, since_first))
    for r in rs2:
        if r.status != 200:
            S.assert_answer(r, 429, "connection_limit_reached", "limit_rate", ECHO)

    # another identity is not limited by this one's bucket
    rs3, _ = _burst(e.port, SRC_FREE, BURST + 3)
    assert all(r.status == 200 for r in rs3), [r.status for r in rs3]

    # and the bucket refills at the rate (waiting longer only adds tokens)
    time.sleep(1.2 / RATE)
    c, r = S.tunnel(e.port, ECHO, src=SRC_RATE)
    c.close()
    assert r.status == 200, r


def test_max_tunnels(world, lim):
    e = lim
    m0 = e.admin.metrics()
    mark = e.log.mark()
    held = []
    try:
        for i in range(MAX_TUNNELS):
            c, r = S.tunnel(e.port, ECHO, src=SRC_TUNNELS)
            held.append(c)
            assert r.status == 200, (i, r)
            assert c.echo(b"held %d" % i) == b"held %d" % i
        # one more: refused, whichever worker takes it
        for _ in range(4):
            r = S.request(e.port, S.connect_req(ECHO), src=SRC_TUNNELS)
            S.assert_answer(r, 429, "connection_limit_reached", "limit_tunnels", ECHO)
            line = e.log.wait(since=mark, event="deny", client=r.client)
            assert line["reason"] == "limit_tunnels" and line["identity"] == "tunnels", line
        # a forwarded plain-HTTP request takes a slot too
        r = S.request(e.port, b"GET http://%s/x HTTP/1.1\r\nHost: %s\r\n\r\n" % (
            H.ADDR_API.encode(), H.ADDR_API.encode()), src=SRC_TUNNELS)
        S.assert_answer(r, 429, "connection_limit_reached", "limit_tunnels", H.ADDR_API + ":80")
        # other identities are not affected
        c, r = S.tunnel(e.port, ECHO, src=SRC_FREE)
        c.close()
        assert r.status == 200, r
        # the count survives a reload (the tunnels are still open)
        rmark = e.log.mark()
        e.reload(e.config_fn_text())
        e.log.wait(since=rmark, event="reload", timeout=5)
        r = S.request(e.port, S.connect_req(ECHO), src=SRC_TUNNELS)
        S.assert_answer(r, 429, "connection_limit_reached", "limit_tunnels", ECHO)
        for i, c in enumerate(held):
            assert c.echo(b"after reload %d" % i) == b"after reload %d" % i
        # close one: its slot is free again
        closed = held.pop(0)
        local = closed.local
        closed.close()
        e.log.wait(since=mark, event="close", client=local, timeout=5)
        c, r = S.tunnel(e.port, ECHO, src=SRC_TUNNELS)
        held.append(c)
        assert r.status == 200, r
        assert c.echo(b"new") == b"new"
        r = S.request(e.port, S.connect_req(ECHO), src=SRC_TUNNELS)
        S.assert_answer(r, 429, "connection_limit_reached", "limit_tunnels", ECHO)
    finally:
        for c in held:
            c.close()
    m1 = e.admin.metrics()
    assert m1.requests("deny", "limit_tunnels", "lim") - m0.requests(
        "deny", "limit_tunnels", "lim") == 7, m1.text
    # every slot is given back: after the last close, a full set again
    H.wait_until(lambda: e.admin.metrics().value("egressd_active_requests") == 0, 5,
                 what="active requests back to 0")
    again = []
    try:
        for i in range(MAX_TUNNELS):
            c, r = S.tunnel(e.port, ECHO, src=SRC_TUNNELS)
            again.append(c)
            assert r.status == 200, (i, r)
    finally:
        for c in again:
            c.close()


def test_max_tunnel_bytes(world, lim):
    e = lim
    mark = e.log.mark()
    c, r = S.tunnel(e.port, ECHO, src=SRC_BYTES)
    with c:
        assert r.status == 200, r
        part = b"b" * 4000
        assert c.echo(part) == part  # 8000 of 10000 bytes, both directions
        c.send(part)  # 16000 would be over the budget
        rest = c.recv_to_eof(timeout=5)
        assert len(rest) < len(part), "the whole second echo came back: %d bytes" % len(rest)
        local = c.local
    close = e.log.wait(since=mark, event="close", client=local, timeout=5)
    assert close["reason"] == "limit_bytes", close
    assert close["identity"] == "bytes", close
    assert close["bytes_up"] + close["bytes_down"] <= MAX_BYTES, close
    assert close["bytes_up"] >= 4000 and close["bytes_down"] >= 4000, close
    # the budget is per tunnel: a new one has all of it
    c, r = S.tunnel(e.port, ECHO, src=SRC_BYTES)
    with c:
        assert r.status == 200, r
        assert c.echo(b"c" * 4000) == b"c" * 4000


def test_max_tunnel_lifetime(world, lim):
    e = lim
    mark = e.log.mark()
    c, r = S.tunnel(e.port, ECHO, src=SRC_LIFE)
    with c:
        assert r.status == 200, r
        assert c.echo(b"alive") == b"alive"
        local = c.local
        # traffic does not keep it open: the lifetime is not an idle timeout
        d = H.Deadline(10)
        eof = False
        while not d.expired():
            try:
                c.send(b"tick")
                got = c.recv_exact(4, timeout=1)
                assert got == b"tick"
            except (AssertionError, BrokenPipeError, ConnectionResetError):
                eof = True
                break
            time.sleep(0.1)
        assert eof, "the tunnel outlived max_tunnel_ms=%d by far" % MAX_MS
    close = e.log.wait(since=mark, event="close", client=local, timeout=5)
    assert close["reason"] == "limit_lifetime", close
    assert close["identity"] == "life", close
