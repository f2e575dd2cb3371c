"""Requests that break HTTP/1.1 or the host rules get a 4xx/5xx, an `error`
line with the documented reason, and reach nothing."""

import pytest

import harness as H

LONG_NAME = ".".join(["a" * 60] * 150) + ".test"  # ~9150 bytes

MR = (400, "malformed_request")
MH = (400, "malformed_host")

# (id, raw request, accepted (status, log reason) outcomes)
CASES = [
    ("bare-lf",
     b"CONNECT api.allowed.test:443 HTTP/1.1\nHost: api.allowed.test:443\n\n", [MR]),
    ("bare-lf-in-headers",
     b"CONNECT api.allowed.test:443 HTTP/1.1\r\nHost: api.allowed.test:443\n\r\n", [MR]),
    ("non-ascii-host",
     "CONNECT api.all\u00f6wed.test:443 HTTP/1.1\r\nHost: api.all\u00f6wed.test:443\r\n\r\n"
     .encode("utf-8"), [MH, MR]),  # a bad name, and not HTTP request-target syntax either
    ("underscore-host", H.connect_req("api_x.allowed.test:443"), [MH]),
    ("empty-label", H.connect_req("api..allowed.test:443"), [MH]),
    # authority-form needs a port: either reason is a fair reading of the docs
    ("missing-port", H.connect_req("api.allowed.test"), [MR, MH]),
    ("port-zero", H.connect_req("api.allowed.test:0"), [MR, MH]),
    ("port-65536", H.connect_req("api.allowed.test:65536"), [MR, MH]),
    ("port-not-numeric", H.connect_req("api.allowed.test:44x3"), [MR, MH]),
    ("http-2.0",
     b"CONNECT api.allowed.test:443 HTTP/2.0\r\nHost: api.allowed.test:443\r\n\r\n",
     [(505, "bad_version")]),
    ("no-version", b"CONNECT api.allowed.test:443\r\n\r\n", [MR, (505, "bad_version")]),
    # methods are case-sensitive: "connect" is not CONNECT, and its
    # authority-form target is no absolute http:// URL
    ("lowercase-method",
     b"connect api.allowed.test:443 HTTP/1.1\r\nHost: api.allowed.test:443\r\n\r\n",
     [MR, (400, "bad_target"), (501, "method_not_supported")]),
    ("origin-form", b"GET / HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n", [(400, "bad_target")]),
    ("https-absolute-form",
     b"GET https://api.allowed.test/ HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n",
     [(400, "bad_target")]),
    ("connect-with-body",
     H.connect_req("api.allowed.test:443", b"Content-Length: 5\r\n") + b"hello",
     [(400, "bad_framing")]),
    ("header-without-colon",
     b"CONNECT api.allowed.test:443 HTTP/1.1\r\nHost api.allowed.test\r\n\r\n", [MR]),
    ("space-before-colon",
     b"CONNECT api.allowed.test:443 HTTP/1.1\r\nHost : api.allowed.test\r\n\r\n", [MR]),
    ("header-too-large",
     H.connect_req("api.allowed.test:443", b"".join(
         b"X-Filler-%02d: %s\r\n" % (i, b"f" * 1000) for i in range(40))),
     [(431, "header_too_large")]),
    ("too-many-fields",
     H.connect_req("api.allowed.test:443", b"".join(
         b"X-F%02d: v\r\n" % i for i in range(70))),
     [(431, "header_too_large")]),
    ("request-line-too-long", H.connect_req(LONG_NAME + ":443"), [(414, "uri_too_long")]),
]


@pytest.mark.parametrize("raw,outcomes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_request(world, proxy, watch, raw, outcomes):
    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    r = H.request(proxy.port, raw)
    assert r.status in [o[0] for o in outcomes], r
    line = proxy.log.wait(since=mark, event="error", client=r.client)
    assert (line.get("status"), line.get("reason")) in outcomes, line
    assert line["status"] == r.status, (line, r)
    # every one of these is an http_request_error (docs/log.md)
    H.assert_error_response(r, r.status, "http_request_error", line["reason"])
    assert world.dns.queries_since(dmark) == []
    w.assert_nothing()


def test_header_timeout_408(world, egressd_factory, watch):
    e = egressd_factory("short-head", lambda port, log: H.render_config(
        port, log, world.policy, limits={"header_timeout_ms": 500}))
    w = watch()
    mark = e.log.mark()
    with H.Client(e.port) as c:
        local = c.local
        c.send(b"CONNECT api.allowed.test:443 HTTP/1.1\r\nHost: api.allowed.test:443\r\n")
        t0 = H.time.monotonic()
        r = c.read_response(timeout=5)
        took = H.time.monotonic() - t0
    H.assert_error_response(r, 408, "http_request_error", "header_timeout")
    assert 0.3 <= took < 4, took
    line = e.log.wait(since=mark, event="error", client=local)
    assert line["reason"] == "header_timeout" and line["status"] == 408, line
    w.assert_nothing()


def test_slow_but_complete_head_is_fine(world, proxy):
    """A head sent a few bytes at a time is still one request."""
    c = H.Client(proxy.port)
    with c:
        for piece in (b"CONN", b"ECT 203.0", b".113.20:443 HT", b"TP/1.1\r", b"\nHost: 203.0.113.20:443\r\n", b"\r\n"):
            c.send(piece)
            H.time.sleep(0.02)
        assert c.read_head() == b"HTTP/1.1 200 Connection established"
        assert c.echo(b"ok") == b"ok"
