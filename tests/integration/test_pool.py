"""Plain HTTP: idle upstream connections are kept and reused, only where
that is safe, and a reused connection the origin closed is retried."""

import pytest

import harness as H

PORT = 8082  # this file's origin, on ADDR_ORIGIN

POLICY = """  { name = "pool";
    rules = (
      { name = "origin"; hosts = [ "origin.allowed.test" ]; ports = [ %d ];
        networks = [ "198.51.100.0/24" ]; }
    );
  }""" % PORT


class PoolWorld:
    pass


@pytest.fixture(scope="module")
def pw(world):
    p = PoolWorld()
    p.origin = H.Origin("pool")
    p.server = H.Server("origin-pool", H.ADDR_ORIGIN, PORT, p.origin.handler)
    p.server.start()
    _routes(p.origin)
    try:
        yield p
    finally:
        p.server.stop()


def _routes(origin):
    @origin.route("/close")
    def close(org, w, req):
        # a response that ends its connection
        w.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        return False

    @origin.route("/eof-body")
    def eof_body(org, w, req):
        # framed by the close: the connection cannot serve another
        w.send(b"HTTP/1.1 200 OK\r\n\r\nuntil close")
        return False

    @origin.route("/stale")
    def stale(org, w, req):
        # on a connection that served before: closed as if idle too long
        with org.lock:
            served_before = sum(1 for r in org.requests if r.conn_no == req.conn_no) > 1
        if served_before:
            return False
        return org.default_route(w, req)


def _get(port, path, method="GET", body=b""):
    data = ("%s http://origin.allowed.test:%d%s HTTP/1.1\r\n"
            "Host: origin.allowed.test:%d\r\n" % (method, PORT, path, PORT)).encode()
    if body:
        data += b"Content-Length: %d\r\n" % len(body)
    with H.Client(port, 5.0) as c:
        c.send(data + b"\r\n" + body)
        r = H.Response(c.read_head())
        cl = r.header("Content-Length")
        r.body = c.recv_exact(int(cl)) if cl is not None else c.recv_to_eof(timeout=5)
        return r


@pytest.fixture
def proxy(pw, egressd_factory):
    # one worker: each worker keeps its own idle connections
    return egressd_factory("pool", lambda port, log: "workers = 1;\n" +
                           H.render_config(port, log, POLICY))


def _conns(origin, n0):
    return [(r.path, r.conn_no) for r in origin.since(n0)]


def test_idle_upstream_connection_is_reused(pw, proxy):
    n0 = pw.origin.count_requests()
    for i in range(3):
        r = _get(proxy.port, "/a%d" % i)
        assert r.status == 200, r
    seen = pw.origin.since(n0)
    assert [q.path for q in seen] == ["/a0", "/a1", "/a2"]
    assert len({q.conn_no for q in seen}) == 1, _conns(pw.origin, n0)
    # kept alive by HTTP/1.1's default, not asked to close
    assert all(not q.header("connection") for q in seen), [q.fields for q in seen]
    # every request is still decided and logged on its own
    for i in range(3):
        proxy.log.wait(event="allow", path="/a%d" % i)
        proxy.log.wait(event="close", path="/a%d" % i, status=200)


def test_no_reuse_after_close_or_close_delimited_body(pw, proxy):
    n0 = pw.origin.count_requests()
    for path in ("/close", "/after-close", "/eof-body", "/after-eof-body"):
        r = _get(proxy.port, path)
        assert r.status == 200, (path, r)
    c = dict(_conns(pw.origin, n0))
    assert c["/after-close"] != c["/close"], c
    assert c["/after-eof-body"] != c["/eof-body"], c


def test_request_with_body_gets_a_new_connection(pw, proxy):
    """Only a request that may be sent twice goes on a kept connection: one
    with a body (or a non-idempotent method) is never retried, so it never
    risks a connection the origin may be closing."""
    n0 = pw.origin.count_requests()
    assert _get(proxy.port, "/g").status == 200
    r = _get(proxy.port, "/p", method="POST", body=b"payload")
    assert r.status == 200, r
    assert b"body=7" in r.body, r.body
    c = dict(_conns(pw.origin, n0))
    assert c["/p"] != c["/g"], c


def test_stale_connection_is_retried_on_a_new_one(pw, proxy):
    n0 = pw.origin.count_requests()
    assert _get(proxy.port, "/fresh").status == 200
    mark = proxy.log.mark()
    r = _get(proxy.port, "/stale")
    assert r.status == 200, r
    assert b"GET /stale" in r.body, r.body
    seen = _conns(pw.origin, n0)
    # sent on the kept connection, which the origin closed unanswered,
    # then once more on a new one
    assert seen[1:] == [("/stale", seen[0][1]), ("/stale", seen[2][1])], seen
    assert seen[2][1] != seen[0][1], seen
    # one decision, one close: the retry is not a second request
    proxy.log.wait(since=mark, event="close", path="/stale")
    assert len(proxy.log.find(since=mark, event="allow", path="/stale")) == 1
    closes = proxy.log.find(since=mark, event="close", path="/stale")
    assert len(closes) == 1 and closes[0]["status"] == 200, closes
