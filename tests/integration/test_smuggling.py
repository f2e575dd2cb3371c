"""Plain-HTTP forwarding against request smuggling (issue 3): strict parsing
of absolute-form requests to an allowed host, routing by the request-target's
authority only, hop-by-hop fields, keep-alive and pipelining re-checked per
request, bodies streamed with backpressure, method rules, and the head
timeout. test_forward.py and test_malformed.py hold the cases not repeated
here.

The "strict" policy allows origin.allowed.test (and api.allowed.test) on
ports 80 and 8080, and mirror.allowed.test for GET and HEAD only. The
scriptable origin (harness.Origin) listens on 198.51.100.14:80 and :8080
(origin.allowed.test and mirror.allowed.test), a canary on its :443.
denied.test resolves to 198.51.100.10, where the world's plain upstream
listens on :80: a wrongly routed request would be seen there."""

import hashlib
import os
import select
import socket
import threading
import time

import pytest

import harness as H

STRICT_POLICY = """  { name = "strict";
    rules = (
      { name = "origin"; hosts = [ "origin.allowed.test", "api.allowed.test" ];
        ports = [ 80, 8080 ]; networks = [ "198.51.100.0/24" ]; },
      { name = "origin-tunnel"; hosts = [ "origin.allowed.test" ]; ports = [ 8080 ];
        methods = [ "CONNECT" ]; networks = [ "198.51.100.0/24" ]; },
      { name = "mirror"; hosts = [ "mirror.allowed.test" ]; ports = [ 80, 443 ];
        methods = [ "GET", "HEAD" ]; networks = [ "198.51.100.0/24" ]; }
    );
  }"""


class OriginWorld:
    pass


@pytest.fixture(scope="module")
def ow(world):
    o = OriginWorld()
    o.origin = H.Origin("origin")
    o.servers = [H.Server("origin-80", H.ADDR_ORIGIN, 80, o.origin.handler),
                 H.Server("origin-8080", H.ADDR_ORIGIN, 8080, o.origin.handler),
                 H.Server("canary-origin-443", H.ADDR_ORIGIN, 443, H.canary_handler)]
    started = []
    try:
        for s in o.servers:
            s.start()
            started.append(s)
        _routes(o.origin)
        yield o
    finally:
        for s in started:
            s.stop()


def _routes(origin):
    @origin.route("/hop-resp")
    def hop_resp(org, w, req):
        org.read_body(w, req)
        body = [b"first part, ", b"second part"]
        w.send(b"HTTP/1.1 200 OK\r\n"
               b"Content-Type: text/plain\r\n"
               b"Connection: X-Resp-Hop, Keep-Alive\r\n"
               b"X-Resp-Hop: must-not-pass\r\n"
               b"Keep-Alive: timeout=5, max=100\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"Upgrade: h2c\r\n"
               b"Trailer: X-Checksum\r\n"
               b"X-End-To-End: kept\r\n"
               b"Via: 1.1 origin-cache\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               + b"".join(H.chunk(p) for p in body) + b"0\r\nX-Checksum: 42\r\n\r\n")
        return not req.wants_close()

    @origin.route("/expect")
    def expect(org, w, req):
        w.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return org.default_route(w, req)

    @origin.route("/close-delimited")
    def close_delimited(org, w, req):
        org.read_body(w, req)
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
               b"no length, no chunks: the end is the close\n")
        return False

    @origin.route("/no-answer")
    def no_answer(org, w, req):
        org.read_body(w, req)
        org.gate("no-answer").wait(10)
        return False

    @origin.route("/stall-mid")
    def stall_mid(org, w, req):
        org.read_body(w, req)
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
               b"first ten.")
        org.gate("stall-mid").wait(10)
        return False

    @origin.route("/resp")
    def canned(org, w, req):
        org.read_body(w, req)
        w.send(CANNED[req.query["case"]])
        return False

    @origin.route("/big")
    def big(org, w, req):
        """n bytes of BULK_BLOCK (repeated), with Content-Length; progress in
        notes["sent:" + id] (a one-element list)."""
        org.read_body(w, req)
        n = int(req.query["n"])
        sent = org.note("sent:" + req.query.get("id", ""), [0])
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % n)
        step = 256 * 1024
        left = n
        while left:
            off = (n - left) % len(H.BULK_BLOCK)
            piece = H.BULK_BLOCK[off:off + min(step, left, len(H.BULK_BLOCK) - off)]
            w.send(piece)
            left -= len(piece)
            sent[0] += len(piece)
        return False

    @origin.route("/cut-big")
    def cut_big(org, w, req):
        """A head promising n bytes, then only `cut` of them (in pieces that
        arrive after the head), then the close."""
        org.read_body(w, req)
        n, cut = int(req.query["n"]), int(req.query["cut"])
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: %d\r\n\r\n" % n)
        for off in range(0, cut, 64 * 1024):
            time.sleep(0.01)
            w.send(H.BULK_BLOCK[off:min(cut, off + 64 * 1024)])
        return False

    @origin.route("/big-to-close")
    def big_to_close(org, w, req):
        """n bytes with neither length nor chunks: the close ends them."""
        org.read_body(w, req)
        n = int(req.query["n"])
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        for off in range(0, n, 128 * 1024):
            w.send(H.BULK_BLOCK[off:min(n, off + 128 * 1024)])
        return False

    @origin.route("/slow-read")
    def slow_read(org, w, req):
        """Read nothing of the body until gates[id] is set, then hash it."""
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        org.gate(req.query["id"]).wait(25)
        h = hashlib.sha256()
        n = int(req.header("content-length")[0])
        w.stream(n, h)
        return org.respond(w, req, b"got %d sha256 %s\n" % (n, h.hexdigest().encode()))


@pytest.fixture
def strict(shared_egressd):
    return shared_egressd("strict", STRICT_POLICY)


def all_servers(world, ow):
    return world.canaries + world.upstreams + ow.servers


T = b"http://origin.allowed.test/smuggle"
HOST = b"Host: origin.allowed.test\r\n"


def rq(fields=b"", method=b"GET", target=T, version=b"HTTP/1.1", body=b"", host=HOST):
    return b"%s %s %s\r\n%s%s\r\n%s" % (method, target, version, host, fields, body)


def post(fields, body):
    return rq(fields, method=b"POST", body=body)


BF = (400, "bad_framing")
MR = (400, "malformed_request")
MH = (400, "malformed_host")
BT = (400, "bad_target")
LOOP = (508, "loop_detected")
T414 = (414, "uri_too_long")
T431 = (431, "header_too_large")

# (id, raw request, accepted (status, reason) outcomes). Each is refused,
# logged with its reason, and reaches nothing: no server, no DNS.
REFUSED = [
    # framing: RFC 9112 §6.1, §6.3
    ("te-then-cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
     [BF]),
    ("cl-list-differs", post(b"Content-Length: 5, 6\r\n", b"hello!"), [BF]),
    ("cl-fields-list-differs", post(b"Content-Length: 5\r\nContent-Length: 5, 6\r\n", b"hello!"),
     [BF]),
    ("cl-plus", post(b"Content-Length: +5\r\n", b"hello"), [BF]),
    ("cl-hex", post(b"Content-Length: 0x10\r\n", b"hello hello hello"), [BF]),
    ("cl-inner-space", post(b"Content-Length: 5 5\r\n", b"hello"), [BF]),
    ("cl-negative", post(b"Content-Length: -5\r\n", b"hello"), [BF]),
    ("cl-empty", post(b"Content-Length: \r\n", b"hello"), [BF, MR]),
    ("cl-20-digits", post(b"Content-Length: 00000000000000000005\r\n", b"hello"), [BF]),
    ("cl-overflow", post(b"Content-Length: 18446744073709551621\r\n", b"hello"), [BF]),
    ("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), [BF]),
    ("te-chunked-identity", post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
     [BF]),
    ("te-identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), [BF]),
    ("te-chunked-twice", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                              b"0\r\n\r\n"), [BF]),
    ("te-chunked-chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), [BF]),
    ("te-in-http10", rq(b"Transfer-Encoding: chunked\r\n", method=b"POST", version=b"HTTP/1.0",
                        body=b"5\r\nhello\r\n0\r\n\r\n"), [BF]),
    # field syntax: RFC 9112 §5
    ("obs-fold-tab", rq(b"X-A: 1\r\n\tfolded\r\n"), [MR]),
    ("obs-fold-first-field", b"GET " + T + b" HTTP/1.1\r\n X-A: 1\r\n" + HOST + b"\r\n", [MR]),
    ("space-before-colon-host", rq(host=b"Host : origin.allowed.test\r\n"), [MR]),
    ("tab-before-colon", rq(b"X-A\t: 1\r\n"), [MR]),
    ("space-before-colon-cl", post(b"Content-Length : 5\r\n", b"hello"), [MR]),
    ("space-before-colon-te", post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), [MR]),
    ("empty-field-name", rq(b": value\r\n"), [MR]),
    ("field-without-colon", rq(b"X-A value\r\n"), [MR]),
    # line endings: RFC 9112 §2.2
    ("bare-lf-request-line", b"GET " + T + b" HTTP/1.1\n" + HOST + b"\r\n", [MR]),
    ("bare-lf-field", rq(b"X-A: 1\nX-B: 2\r\n"), [MR]),
    ("bare-lf-end", b"GET " + T + b" HTTP/1.1\r\n" + HOST + b"\n", [MR]),
    ("bare-lf-only", b"GET " + T + b" HTTP/1.1\nHost: origin.allowed.test\n\n", [MR]),
    ("bare-cr-field", rq(b"X-A: 1\rX-B: 2\r\n"), [MR]),
    ("bare-cr-request-line", b"GET " + T + b" HTTP/1.1\r" + HOST + b"\r\n", [MR]),
    ("leading-empty-line", b"\r\n" + rq(), [MR]),
    # control bytes in the head
    ("nul-in-value", rq(b"X-A: a\x00b\r\n"), [MR]),
    ("nul-in-target", rq(target=T + b"\x00x"), [MR]),
    ("soh-in-value", rq(b"X-A: a\x01b\r\n"), [MR]),
    ("vt-in-value", rq(b"X-A: a\x0bb\r\n"), [MR]),
    ("esc-in-value", rq(b"X-A: a\x1b[31mb\r\n"), [MR]),
    ("del-in-value", rq(b"X-A: a\x7fb\r\n"), [MR]),
    ("ctl-in-name", rq(b"X-\x01A: 1\r\n"), [MR]),
    # method: a token (RFC 9110 §9.1), one SP after it
    ("method-paren", rq(method=b"G(T"), [MR]),
    ("method-del", rq(method=b"G\x7fT"), [MR]),
    ("method-non-ascii", rq(method="G\u00c9T".encode()), [MR]),
    ("method-tab", b"GET\t" + T + b" HTTP/1.1\r\n" + HOST + b"\r\n", [MR]),
    ("double-space", b"GET  " + T + b" HTTP/1.1\r\n" + HOST + b"\r\n", [MR]),
    ("empty-method", b" " + T + b" HTTP/1.1\r\n" + HOST + b"\r\n", [MR]),
    # request-target: RFC 3986 characters only
    ("target-space", rq(target=T + b"/a b"), [MR, (505, "bad_version")]),
    ("target-dquote", rq(target=T + b'/"x"'), [MR]),
    ("target-lt-gt", rq(target=T + b"/<script>"), [MR]),
    ("target-backslash", rq(target=b"http://origin.allowed.test\\@evil.example/"), [MR]),
    ("target-caret", rq(target=T + b"/a^b"), [MR]),
    ("target-braces", rq(target=T + b"/{x}"), [MR]),
    ("target-pipe", rq(target=T + b"/a|b"), [MR]),
    ("target-backtick", rq(target=T + b"/a`b"), [MR]),
    ("target-non-ascii", rq(target=T + "/\u00e9".encode()), [MR]),
    ("target-del", rq(target=T + b"/a\x7fb"), [MR]),
    ("target-bad-pct", rq(target=T + b"/%zz"), [MR]),
    ("target-short-pct", rq(target=T + b"/%4"), [MR]),
    # the authority: a name or strict IP literal, no userinfo
    ("userinfo-allowed-at-evil", rq(target=b"http://api.allowed.test@evil.example/"), [MH]),
    ("userinfo-evil-at-allowed", rq(target=b"http://evil.example@origin.allowed.test/"), [MH]),
    ("userinfo-with-password", rq(target=b"http://origin.allowed.test:80@evil.example/"), [MH]),
    ("userinfo-empty", rq(target=b"http://@origin.allowed.test/"), [MH]),
    ("empty-authority", rq(target=b"http:///smuggle"), [MH]),
    ("port-not-numeric", rq(target=b"http://origin.allowed.test:8o/"), [MH]),
    # not absolute-form: never routed by Host
    ("origin-form", rq(target=b"/smuggle"), [BT]),
    ("origin-form-root", rq(target=b"/"), [BT]),
    ("asterisk-form", rq(method=b"OPTIONS", target=b"*"), [BT]),
    ("authority-form-get", rq(target=b"origin.allowed.test:80"), [BT]),
    ("scheme-relative", rq(target=b"//origin.allowed.test/smuggle"), [BT]),
    # several Host fields (RFC 9112 §3.2), even equal ones
    ("two-equal-hosts", rq(host=HOST + HOST), [MR, BT]),
    ("two-hosts-allowed-second", rq(host=b"Host: denied.test\r\n" + HOST), [MR, BT]),
    # limits (defaults: request line 8192, head 32768, 64 fields)
    ("request-line-414", rq(target=T + b"/" + b"a" * 8300), [T414]),
    ("field-line-431", rq(b"X-Big: " + b"b" * 33000 + b"\r\n"), [T431]),
    ("section-431", rq(b"".join(b"X-Filler-%02d: %s\r\n" % (i, b"f" * 1000) for i in range(40))),
     [T431]),
    ("count-431", rq(b"".join(b"X-F%02d: v\r\n" % i for i in range(70))), [T431]),
    # our own Via: a loop (RFC 9110 §7.6.3)
    ("via-in-list", rq(b"Via: 1.0 corp-proxy, 1.1 egressd\r\n"), [LOOP]),
    ("via-second-field", rq(b"Via: 1.0 corp-proxy\r\nVia: 1.1 egressd\r\n"), [LOOP]),
    ("via-with-comment", rq(b"Via: 1.1 egressd (egressd/1.0)\r\n"), [LOOP]),
    ("via-protocol-name", rq(b"Via: HTTP/1.1 egressd\r\n"), [LOOP]),
]

PTYPE = {400: "http_request_error", 414: "http_request_error", 431: "http_request_error",
         505: "http_request_error", 508: "proxy_loop_detected"}


@pytest.mark.parametrize("raw,outcomes", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_and_never_forwarded(world, ow, strict, watch, raw, outcomes):
    w = watch(all_servers(world, ow))
    n0 = ow.origin.count_requests()
    dmark = world.dns.mark()
    mark = strict.log.mark()
    r = H.request(strict.port, raw)
    assert r.status in [o[0] for o in outcomes], \
        "request %r: expected one of %r, got %r" % (raw[:300], outcomes, r)
    line = strict.log.wait(since=mark, client=r.client, pred=lambda l: "reason" in l
                           and l.get("event") in ("error", "deny"))
    assert (line["status"], line["reason"]) in outcomes, line
    assert line["event"] == "error", line
    assert line["status"] == r.status, (line, r)
    H.assert_error_response(r, r.status, PTYPE[r.status], line["reason"])
    assert r.trailing == b"", r
    w.assert_nothing(settle=0.1)
    assert ow.origin.since(n0) == []
    assert world.dns.queries_since(dmark) == [], "refused request was resolved"


def test_userinfo_not_logged(world, ow, strict, watch):
    """The malformed target is logged by the host that could be told, without
    its userinfo (docs/log.md), and neither name is looked up."""
    target = b"http://api.allowed.test@evil.example/"
    dmark = world.dns.mark()
    w = watch(all_servers(world, ow))
    client_mark = strict.log.mark()  # client ports get reused
    r = H.request(strict.port, rq(target=target))
    H.assert_error_response(r, 400, "http_request_error", "malformed_host")
    line = strict.log.wait(since=client_mark, event="error", client=r.client)
    assert line["reason"] == "malformed_host" and line["host"] == "evil.example", line
    w.assert_nothing()
    assert world.dns.queries_since(dmark) == []


def test_within_limits_is_forwarded(world, ow, strict):
    """Just inside every limit, and the odd-but-valid forms, the request goes
    through: the refusals above are not a parser refusing everything."""
    n0 = ow.origin.count_requests()
    long_target = T + b"/" + b"a" * (8192 - len(b"GET  HTTP/1.1") - len(T) - 1)
    cases = [
        rq(target=long_target),  # request line of exactly 8192 bytes
        rq(b"".join(b"X-F%02d: v\r\n" % i for i in range(63))),  # 64 fields with Host
        rq(b"".join(b"X-Filler-%02d: %s\r\n" % (i, b"f" * 1000) for i in range(30))),
        rq(b"X-Tab:\tvalue\twith tabs\t\r\nX-Obs-Text: caf\xe9\r\nX-Empty:\r\n"),
        rq(target=b"HTTP://Origin.Allowed.TEST/ok%20pct?q=a/b:c@d"),
        rq(target=b"http://origin.allowed.test?only=query"),
        rq(target=b"http://origin.allowed.test"),
    ]
    with H.Client(strict.port) as c:
        for raw in cases:
            c.send(raw)
            r = c.read_message()
            assert r.status == 200, (raw[:200], r)
    got = [q.request_line for q in ow.origin.since(n0)]
    assert len(got) == len(cases), got
    assert got[0] == "GET %s HTTP/1.1" % long_target[len(b"http://origin.allowed.test"):].decode()
    assert got[4] == "GET /ok%20pct?q=a/b:c@d HTTP/1.1", got
    assert got[5] == "GET /?only=query HTTP/1.1", got
    assert got[6] == "GET / HTTP/1.1", got


def test_equal_content_length_list_forwarded_as_one(world, ow, strict):
    """`Content-Length: 5, 5` is one length (RFC 9110 §8.6); the upstream gets a
    single Content-Length of egressd's own."""
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(post(b"Content-Length: 5, 5\r\nContent-Length: 5\r\n", b"hello"))
        r = c.read_message()
    assert r.status == 200, r
    (req,) = ow.origin.since(n0)
    assert req.header("content-length") == ["5"], req.fields
    assert req.body == b"hello"


# ------------------------------------------------------------ routing by authority


def test_routed_by_target_not_host(world, ow, strict, watch):
    """A Host naming a denied host does not matter: the request goes to the
    target's authority, and the upstream sees that authority as Host."""
    w = watch([world.http])  # denied.test:80 is the world's plain upstream
    n0 = ow.origin.count_requests()
    dmark = world.dns.mark()
    mark = strict.log.mark()
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/by-target", host=b"Host: denied.test\r\n"))
        r1 = c.read_message()
        c.send(rq(target=b"http://ORIGIN.Allowed.Test:8080/port", host=b"Host: api.allowed.test\r\n"))
        r2 = c.read_message()
        local = c.local
    assert r1.status == 200 and b"GET /by-target" in r1.body, r1
    assert r2.status == 200 and b"GET /port" in r2.body, r2
    reqs = ow.origin.since(n0)
    assert [q.header("host") for q in reqs] == [["origin.allowed.test"],
                                               ["origin.allowed.test:8080"]], reqs
    allow = strict.log.find(since=mark, event="allow", client=local)
    assert [(a["host"], a["port"]) for a in allow] == [("origin.allowed.test", 80),
                                                       ("origin.allowed.test", 8080)], allow
    w.assert_nothing()
    assert "denied.test" not in world.dns.queries_since(dmark)


def test_denied_target_with_allowed_host_refused(world, ow, strict, watch):
    """The other way round: an allowed Host does not open a denied target."""
    w = watch(all_servers(world, ow))
    dmark = world.dns.mark()
    client_mark = strict.log.mark()  # client ports get reused
    r = H.request(strict.port, rq(target=b"http://denied.test/x", host=HOST))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "denied.test:80", "strict")
    line = strict.log.wait(since=client_mark, event="deny", client=r.client)
    H.assert_deny_line(line, "host_not_allowed", "denied.test", 80, policy="strict", method="GET")
    w.assert_nothing()
    assert world.dns.queries_since(dmark) == []


def test_request_hop_by_hop_fields_removed(world, ow, strict):
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(b"GET http://origin.allowed.test/hop-req HTTP/1.1\r\n"
               b"Host: origin.allowed.test\r\n"
               b"Connection: keep-alive, X-Hop-A, x-hop-b\r\n"
               b"Connection: X-Hop-C\r\n"
               b"X-Hop-A: a\r\nX-Hop-B: b\r\nX-Hop-C: c\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"Proxy-Authorization: Basic c2VjcmV0LXNtdWdnbGU=\r\n"
               b"Keep-Alive: timeout=5\r\n"
               b"TE: trailers\r\n"
               b"Trailer: X-Checksum\r\n"
               b"Upgrade: websocket\r\n"
               b"Via: 1.0 corp-proxy\r\n"
               b"X-End-To-End: kept\r\n\r\n")
        r = c.read_message()
    assert r.status == 200, r
    (req,) = ow.origin.since(n0)
    names = [k for k, _ in req.fields]
    for hop in ("x-hop-a", "x-hop-b", "x-hop-c", "proxy-connection", "proxy-authorization",
                "keep-alive", "te", "trailer", "upgrade"):
        assert hop not in names, (hop, req.fields)
    assert all(v.lower() == "close" for v in req.header("connection")), req.fields
    assert req.header("x-end-to-end") == ["kept"], req.fields
    assert req.header("host") == ["origin.allowed.test"], req.fields
    via = ", ".join(req.header("via"))
    assert via.replace(" ", "") == "1.0corp-proxy,1.1egressd", req.fields
    assert b"c2VjcmV0LXNtdWdnbGU" not in req.raw_head


def test_response_hop_by_hop_fields_removed(world, ow, strict):
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/hop-resp"))
        r = c.read_message()
        # the connection is still in step: a second request works
        c.send(rq(target=b"http://origin.allowed.test/after-hop"))
        r2 = c.read_message()
    assert r.status == 200 and r.body == b"first part, second part", r
    names = [k.lower() for k, _ in r.headers]
    for hop in ("x-resp-hop", "keep-alive", "proxy-connection", "upgrade", "trailer"):
        assert hop not in names, (hop, r.headers)
    conn = [v for k, v in r.headers if k.lower() == "connection"]
    assert all(v.lower() in ("close", "keep-alive") for v in conn), r.headers
    assert r.header("X-End-To-End") == "kept", r.headers
    via = ", ".join(v for k, v in r.headers if k.lower() == "via").replace(" ", "")
    assert via == "1.1origin-cache,1.1egressd", r.headers
    assert r2.status == 200 and b"GET /after-hop" in r2.body, r2


# ------------------------------------------------------------ keep-alive, pipelining


def test_pipelined_allowed_then_denied(world, ow, strict, watch):
    """Both requests in one send: the first is forwarded, the second refused,
    and nothing reaches the denied host (denied.test:80 is world.http)."""
    w = watch([world.http] + world.canaries)
    n0 = ow.origin.count_requests()
    dmark = world.dns.mark()
    mark = strict.log.mark()
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/pipe-1")
               + b"GET http://denied.test/pipe-2 HTTP/1.1\r\nHost: denied.test\r\n\r\n"
               # after a refusal the connection closes: this one is never read
               + rq(target=b"http://origin.allowed.test/pipe-3"))
        r1 = c.read_message()
        r2 = c.read_response()
        local = c.local
    assert r1.status == 200 and b"GET /pipe-1" in r1.body, r1
    H.assert_refusal(r2, "http_request_denied", "host_not_allowed", "denied.test:80", "strict")
    assert [q.request_line for q in ow.origin.since(n0)] == ["GET /pipe-1 HTTP/1.1"]
    deny = strict.log.wait(since=mark, event="deny", client=local)
    assert deny["host"] == "denied.test" and deny["reason"] == "host_not_allowed", deny
    w.assert_nothing()
    assert "denied.test" not in world.dns.queries_since(dmark)


def test_pipelined_after_body_is_a_new_request(world, ow, strict, watch):
    """A request hidden after a body (by Content-Length or chunked) is parsed
    and checked as a request of its own, never forwarded inside the first."""
    w = watch([world.http] + world.canaries)
    n0 = ow.origin.count_requests()
    hidden = b"GET http://denied.test/hidden HTTP/1.1\r\nHost: denied.test\r\n\r\n"
    for first in (post(b"Content-Length: 5\r\n", b"hello"),
                  post(b"Transfer-Encoding: chunked\r\n", H.chunk(b"hello") + b"0\r\n\r\n")):
        with H.Client(strict.port) as c:
            c.send(first + hidden)
            r1 = c.read_message()
            r2 = c.read_response()
        assert r1.status == 200 and b"body=5 " in r1.body, r1
        H.assert_refusal(r2, "http_request_denied", "host_not_allowed", "denied.test:80", "strict")
    reqs = ow.origin.since(n0)
    assert [q.body for q in reqs] == [b"hello", b"hello"], reqs
    for q in reqs:
        assert b"denied.test" not in q.raw_head + q.raw_body, q
    w.assert_nothing()


def test_pipelined_allowed_pair_in_order(world, ow, strict):
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/first")
               + post(b"Content-Length: 3\r\n", b"abc")
               + rq(target=b"http://origin.allowed.test/third"))
        bodies = [c.read_message().body for _ in range(3)]
    assert [b.split(b" body=")[0] for b in bodies] == [
        b"origin origin: GET /first", b"origin origin: POST /smuggle",
        b"origin origin: GET /third"], bodies
    assert [q.request_line for q in ow.origin.since(n0)] == [
        "GET /first HTTP/1.1", "POST /smuggle HTTP/1.1", "GET /third HTTP/1.1"]


def test_pipelined_after_connection_close_not_read(world, ow, strict):
    """Nothing after a request that said Connection: close (or after a
    refusal) is taken as a request."""
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(rq(b"Connection: close\r\n", target=b"http://origin.allowed.test/last")
               + rq(target=b"http://origin.allowed.test/after-last"))
        r = c.read_message()
        assert r.status == 200 and r.header("Connection").lower() == "close", r
        assert c.recv_to_eof(timeout=5) == b""
    with H.Client(strict.port) as c:
        c.send(b"GET http://origin.allowed.test/bad HTTP/1.1\nHost: x\r\n\r\n"
               + rq(target=b"http://origin.allowed.test/after-bad"))
        r = c.read_response()
    H.assert_error_response(r, 400, "http_request_error", "malformed_request")
    H.time.sleep(0.2)
    assert [q.path for q in ow.origin.since(n0)] == ["/last"]


def test_pipelined_allowed_then_malformed(world, ow, strict):
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/ok")
               + b"GET http://origin.allowed.test/bad HTTP/1.1\nHost: origin.allowed.test\r\n\r\n")
        r1 = c.read_message()
        r2 = c.read_response()
    assert r1.status == 200, r1
    H.assert_error_response(r2, 400, "http_request_error", "malformed_request")
    assert [q.request_line for q in ow.origin.since(n0)] == ["GET /ok HTTP/1.1"]


# ------------------------------------------------------------ bodies


def test_chunked_request_body_with_trailer_arrives_intact(world, ow, strict):
    """Several chunks, a chunk extension and a trailer: the upstream gets the
    body with its chunked framing, as sent, and a Transfer-Encoding of
    egressd's own; the Trailer field itself is hop-by-hop."""
    n0 = ow.origin.count_requests()
    parts = [b"first chunk\n", os.urandom(3000), b"x", b"last chunk\n"]
    framed = (H.chunk(parts[0]) + b"%x;ext=1\r\n%s\r\n" % (len(parts[1]), parts[1])
              + H.chunk(parts[2]) + H.chunk(parts[3]) + b"0\r\nX-Checksum: abc123\r\n\r\n")
    with H.Client(strict.port) as c:
        c.send(post(b"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n", b""))
        for i in range(0, len(framed), 700):  # in pieces, as a streaming client would
            c.send(framed[i:i + 700])
            H.time.sleep(0.01)
        r = c.read_message()
    assert r.status == 200, r
    (req,) = ow.origin.since(n0)
    assert req.header("transfer-encoding") == ["chunked"], req.fields
    assert req.header("content-length") == [] and req.header("trailer") == [], req.fields
    assert req.body == b"".join(parts)
    assert req.raw_body == framed, "framing changed on the way"
    assert req.trailers == [b"X-Checksum: abc123"], req.trailers


def _rss_watch(e, seconds, also=None):
    base = e.rss_kib()
    peak = base
    d = H.Deadline(seconds, stretch=False)
    while not d.expired():
        peak = max(peak, e.rss_kib())
        H.time.sleep(0.1)
    return (peak - base) / 1024


def test_large_response_to_slow_client_bounded(world, ow, egressd_factory):
    """64 MiB from the origin to a client that reads nothing for 2 s: egressd
    stops reading the origin (its RSS stays flat, the origin stalls), then
    everything arrives intact."""
    e = egressd_factory("slow-client", lambda port, log: H.render_config(port, log, STRICT_POLICY))
    size = H.BULK_BLOCKS * len(H.BULK_BLOCK)
    with H.Client(e.port, timeout=10) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(rq(target=b"http://origin.allowed.test/big?n=%d&id=slow-client" % size))
        sent = H.wait_until(lambda: ow.origin.notes.get("sent:slow-client"), 5,
                            what="the origin to start sending")
        grew = _rss_watch(e, 2.0)
        stalled_at = sent[0]
        assert grew <= 16, "RSS grew by %.1f MiB while the client read nothing" % grew
        assert stalled_at < size - 16 * (1 << 20), \
            "the origin sent %d of %d bytes to a client that read nothing" % (stalled_at, size)
        head = c.read_head(timeout=5)
        assert head.startswith(b"HTTP/1.1 200 "), head
        r = H.Response(head)
        assert int(r.header("Content-Length")) == size, r
        digest, _ = H.bulk_digest()
        h = hashlib.sha256(c.buf)
        n = len(c.buf)
        c.buf = b""
        d = H.Deadline(30)
        while n < size:
            assert not d.expired(), "only %d of %d bytes in 30s" % (n, size)
            c.sock.settimeout(max(0.01, d.left()))
            b = c.sock.recv(1 << 20)
            assert b, "EOF after %d of %d bytes" % (n, size)
            h.update(b)
            n += len(b)
    assert n == size and h.hexdigest() == digest
    close = e.log.wait(event="close", host="origin.allowed.test", timeout=5)
    assert close["status"] == 200 and close["bytes_down"] >= size, close


def test_large_request_body_to_slow_upstream_bounded(world, ow, egressd_factory):
    """64 MiB from the client to an origin that reads nothing for 2 s: egressd
    stops reading the client (RSS flat, the client's send stalls), then the
    origin gets every byte."""
    e = egressd_factory("slow-upstream", lambda port, log: H.render_config(
        port, log, STRICT_POLICY))
    size = H.BULK_BLOCKS * len(H.BULK_BLOCK)
    digest, _ = H.bulk_digest()
    progress = {"sent": 0, "error": None}
    c = H.Client(e.port, timeout=30)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)

    def sender():
        try:
            c.send(b"POST http://origin.allowed.test/slow-read?id=slow-up HTTP/1.1\r\n"
                   b"Host: origin.allowed.test\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(H.BULK_BLOCKS):
                for off in range(0, len(H.BULK_BLOCK), 256 * 1024):
                    c.sock.sendall(H.BULK_BLOCK[off:off + 256 * 1024])
                    progress["sent"] += 256 * 1024
        except Exception as ex:  # noqa: BLE001 - reported below
            progress["error"] = ex

    t = threading.Thread(target=sender, daemon=True)
    gate = ow.origin.gate("slow-up")
    try:
        t.start()
        H.wait_until(lambda: progress["sent"] > 0, 5, what="the client to start sending")
        grew = _rss_watch(e, 2.0)
        stalled_at = progress["sent"]
        assert grew <= 16, "RSS grew by %.1f MiB while the origin read nothing" % grew
        assert stalled_at < size - 16 * (1 << 20), \
            "the client sent %d of %d bytes to an origin that read nothing" % (stalled_at, size)
        gate.set()
        t.join(30)
        assert not t.is_alive(), "client still sending after 30 s (%d bytes)" % progress["sent"]
        assert progress["error"] is None, progress
        r = c.read_message(timeout=20)
    finally:
        gate.set()
        c.close()
    assert r.status == 200, r
    assert r.body == b"got %d sha256 %s\n" % (size, digest.encode()), r.body


# ------------------------------------------------------------ method rules


def test_method_rules_get_head_only(world, ow, strict, watch):
    n0 = ow.origin.count_requests()
    mirror = b"http://mirror.allowed.test/simple/pkg/"
    with H.Client(strict.port) as c:
        c.send(rq(target=mirror, host=b"Host: mirror.allowed.test\r\n"))
        get = c.read_message()
        c.send(rq(method=b"HEAD", target=mirror, host=b"Host: mirror.allowed.test\r\n"))
        head = c.read_message(head=True)  # no body: Content-Length is the GET's
        c.send(rq(target=mirror + b"again", host=b"Host: mirror.allowed.test\r\n"))
        again = c.read_message()
    assert get.status == 200 and b"GET /simple/pkg/" in get.body, get
    assert head.status == 200 and head.body == b"", head
    expect_len = len(get.body.replace(b"GET", b"HEAD"))
    assert int(head.header("Content-Length")) == expect_len, head
    assert again.status == 200 and b"GET /simple/pkg/again" in again.body, again
    assert [q.method for q in ow.origin.since(n0)] == ["GET", "HEAD", "GET"]

    w = watch(all_servers(world, ow))
    dmark = world.dns.mark()
    for raw, method, dest in (
            (rq(b"Content-Length: 5\r\n", method=b"POST", target=mirror,
                host=b"Host: mirror.allowed.test\r\n", body=b"hello"), "POST",
             "mirror.allowed.test:80"),
            (rq(method=b"get", target=mirror, host=b"Host: mirror.allowed.test\r\n"), "get",
             "mirror.allowed.test:80"),  # methods are case-sensitive
            (H.connect_req("mirror.allowed.test:443"), "CONNECT", "mirror.allowed.test:443")):
        client_mark = strict.log.mark()  # client ports get reused
        r = H.request(strict.port, raw)
        H.assert_refusal(r, "http_request_denied", "method_not_allowed", dest, "strict")
        line = strict.log.wait(since=client_mark, event="deny", client=r.client)
        H.assert_deny_line(line, "method_not_allowed", "mirror.allowed.test",
                           int(dest.rsplit(":", 1)[1]), policy="strict", method=method)
    w.assert_nothing()
    assert world.dns.queries_since(dmark) == []


# ------------------------------------------------------------ head timeout


SLOW_LIMITS = {"header_timeout_ms": 800, "keepalive_timeout_ms": 20000}


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_slowloris_plain_http(world, ow, egressd_factory, watch):
    """Half a head, or a head dribbled a byte at a time: 408 after
    header_timeout_ms (the whole head, not each read), connection closed,
    nothing held, nothing forwarded. Also for the second request of a
    kept-alive connection."""
    e = egressd_factory("slowloris", lambda port, log: H.render_config(
        port, log, STRICT_POLICY, limits=SLOW_LIMITS))
    w = watch(world.canaries + world.upstreams)
    n0 = ow.origin.count_requests()
    fds0 = _fds(e.pid)
    mark = e.log.mark()

    # many half heads at once
    clients = [H.Client(e.port) for _ in range(30)]
    t0 = H.time.monotonic()
    for c in clients:
        c.send(b"GET http://origin.allowed.test/slow HTTP/1.1\r\nHost: origin.allowed.test\r\n")
    for c in clients:
        r = c.read_response(timeout=6)
        H.assert_error_response(r, 408, "http_request_error", "header_timeout")
    took = H.time.monotonic() - t0
    assert 0.6 <= took < 5, took
    locals_ = {c.local for c in clients}
    for c in clients:
        c.close()
    lines = e.log.find(since=mark, event="error", reason="header_timeout")
    assert {l["client"] for l in lines} >= locals_, lines

    # one byte every 100 ms: the timer runs from the first byte, not the last
    line = b"GET http://origin.allowed.test/dribble HTTP/1.1\r\nX-Slow: " + b"a" * 200
    with H.Client(e.port) as c:
        t0 = H.time.monotonic()
        answered = None
        for i in range(len(line)):  # at most 20 s; the answer should come at ~0.8 s
            try:
                c.send(line[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                pass
            if select.select([c.sock], [], [], 0.1)[0]:
                answered = H.time.monotonic() - t0
                break
        r = c.read_response(timeout=5)
    H.assert_error_response(r, 408, "http_request_error", "header_timeout")
    assert answered is not None and 0.6 <= answered < 3, \
        "408 to a dribbling client after %r s (header_timeout_ms 800)" % answered

    # the second request of a kept-alive connection gets header_timeout_ms,
    # not keepalive_timeout_ms, once it has begun
    with H.Client(e.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/first"))
        assert c.read_message().status == 200
        c.send(b"GET http://origin.allowed.test/second HTTP/1.1\r\nHost: origin")
        t0 = H.time.monotonic()
        r = c.read_response(timeout=8)
        took = H.time.monotonic() - t0
    H.assert_error_response(r, 408, "http_request_error", "header_timeout")
    assert took < 5, took

    # only /first reached the origin
    assert [q.path for q in ow.origin.since(n0)] == ["/first"]
    w.assert_nothing()
    # nothing held: egressd's descriptors come back down
    H.wait_until(lambda: _fds(e.pid) <= fds0 + 2, 5, what="egressd to close the slow connections")


# ------------------------------------------------------------ more framing, both ways


BAD_CHUNKED = [
    ("size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("size-negative", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("size-overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("size-space", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("size-bare-lf", b"5\nhello\r\n0\r\n\r\n"),
    ("data-not-followed-by-crlf", b"5\r\nhelloX\r\n0\r\n\r\n"),
    ("data-longer-than-size", b"3\r\nhello\r\n0\r\n\r\n"),
    ("bad-extension", b"5;a b\r\nhello\r\n0\r\n\r\n"),
    ("trailer-obs-fold", b"5\r\nhello\r\n0\r\nX-T: 1\r\n folded\r\n\r\n"),
    ("trailer-space-before-colon", b"5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n"),
    # RFC 9110 §6.5.1: framing and routing fields are never trailers; a
    # recipient that merged one into the head would be smuggled to
    ("trailer-host", b"5\r\nhello\r\n0\r\nHost: evil.test\r\n\r\n"),
    ("trailer-content-length", b"5\r\nhello\r\n0\r\nContent-Length: 0\r\n\r\n"),
    ("trailer-transfer-encoding", b"5\r\nhello\r\n0\r\nTransfer-Encoding: x\r\n\r\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in BAD_CHUNKED], ids=[c[0] for c in BAD_CHUNKED])
def test_bad_chunked_body_refused(world, ow, strict, watch, body):
    """Chunked framing is checked as it streams: the head may have gone
    ahead, but no request reaches the origin whole, and 400 bad_framing."""
    w = watch(world.canaries + world.upstreams)
    origin80 = [s for s in ow.servers if s.name == "origin-80"][0]
    before = len(origin80.received())
    client_mark = strict.log.mark()  # client ports get reused
    r = H.request(strict.port, post(b"Transfer-Encoding: chunked\r\n", body))
    H.assert_error_response(r, 400, "http_request_error", "bad_framing")
    line = strict.log.wait(since=client_mark, event="error", client=r.client)
    assert line["reason"] == "bad_framing" and line["status"] == 400, line
    w.assert_nothing(settle=0.15)
    # sent in one piece, the bad body is refused whole: not a byte of it goes on
    new = origin80.received()[before:]
    assert b"hello" not in new and b"\r\n0\r\n" not in new, new


def test_transfer_coding_name_is_case_insensitive(world, ow, strict):
    """RFC 9112 §7: "Chunked" is chunked."""
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(post(b"Transfer-Encoding: Chunked\r\n", H.chunk(b"hello") + b"0\r\n\r\n"))
        r = c.read_message()
    assert r.status == 200 and b"body=5 " in r.body, r
    (req,) = ow.origin.since(n0)
    assert req.body == b"hello" and req.header("transfer-encoding") == ["chunked"], req


def test_expect_100_continue(world, ow, strict):
    """The origin's 100 Continue reaches the client, which only then sends
    its body (as curl does for large uploads)."""
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(b"POST http://origin.allowed.test/expect HTTP/1.1\r\nHost: origin.allowed.test\r\n"
               b"Expect: 100-continue\r\nContent-Length: 11\r\n\r\n")
        interim = H.Response(c.read_head())
        assert interim.status == 100, interim
        c.send(b"hello world")
        r = c.read_message()
    assert r.status == 200 and b"POST /expect body=11 " in r.body, r
    (req,) = ow.origin.since(n0)
    assert req.header("expect") == ["100-continue"] and req.body == b"hello world", req


def test_close_delimited_response(world, ow, strict):
    """A response without Content-Length or chunked ends with the close: the
    client gets it whole, unframed, and then the close."""
    mark = strict.log.mark()
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/close-delimited"))
        r = H.Response(c.read_head())
        body = c.recv_to_eof(timeout=5)
        local = c.local
    assert r.status == 200, r
    assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None, r
    assert body == b"no length, no chunks: the end is the close\n", body
    close = strict.log.wait(since=mark, event="close", client=local)
    assert close["status"] == 200 and close["reason"] == "complete", close


def test_client_connection_close_and_http10(world, ow, strict):
    n0 = ow.origin.count_requests()
    with H.Client(strict.port) as c:
        c.send(rq(b"Connection: close\r\n", target=b"http://origin.allowed.test/closing"))
        r = c.read_message()
        assert r.status == 200 and r.header("Connection").lower() == "close", r
        assert c.recv_to_eof(timeout=5) == b""
    with H.Client(strict.port) as c:
        c.send(b"GET http://origin.allowed.test/ten HTTP/1.0\r\n\r\n")
        r = c.read_message()
        assert r.status == 200 and b"GET /ten" in r.body, r
        assert c.recv_to_eof(timeout=5) == b"", "HTTP/1.0: one request per connection"
    reqs = ow.origin.since(n0)
    assert [q.request_line for q in reqs] == ["GET /closing HTTP/1.1", "GET /ten HTTP/1.0"]
    assert reqs[1].header("host") == ["origin.allowed.test"], reqs[1]


def test_connect_after_forwarded_request_is_checked(world, ow, strict, watch):
    """A kept-alive connection may switch to CONNECT; it is checked as any
    request."""
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/before-connect"))
        assert c.read_message().status == 200
        c.send(H.connect_req("origin.allowed.test:8080"))
        assert c.read_head() == b"HTTP/1.1 200 Connection established"
        c.send(b"GET /through-tunnel HTTP/1.1\r\nHost: origin.allowed.test:8080\r\n"
               b"Connection: close\r\n\r\n")
        r = c.read_message()
        assert r.status == 200 and b"GET /through-tunnel" in r.body, r
    w = watch([world.http] + world.canaries)
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/before-denied"))
        assert c.read_message().status == 200
        c.send(H.connect_req("denied.test:80"))
        r = c.read_response()
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "denied.test:80", "strict")
    w.assert_nothing()


def test_close_line_per_request_with_bytes(world, ow, strict):
    """docs/log.md: one close line per request, bytes_up the rewritten head
    and body, bytes_down what the client got; the refused one has its own."""
    n0 = ow.origin.count_requests()
    mark = strict.log.mark()
    with H.Client(strict.port) as c:
        c.send(post(b"Content-Length: 11\r\n", b"hello world")
               + b"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")
        head = c.read_head()
        r1 = H.Response(head)
        r1.body = c.recv_exact(int(r1.header("Content-Length")))
        r2 = c.read_response()
        local = c.local
    assert r1.status == 200 and r2.status == 403, (r1, r2)
    (req,) = ow.origin.since(n0)
    closes = H.wait_until(lambda: (lambda l: l if len(l) >= 2 else None)(
        strict.log.find(since=mark, event="close", client=local)), 3, what="two close lines")
    assert len(closes) == 2, closes
    first, second = closes
    assert (first["status"], first["reason"]) == (200, "complete"), first
    assert first["bytes_up"] == len(req.raw_head) + 4 + len(req.raw_body), (first, req.raw_head)
    assert first["bytes_down"] == len(head) + 4 + len(r1.body), first
    assert first.get("path") == "/smuggle" and first["host"] == "origin.allowed.test", first
    assert (second["status"], second["reason"]) == (403, "host_not_allowed"), second
    assert second["host"] == "denied.test", second
    assert second["bytes_up"] == 0, second
    assert second["bytes_down"] == len(r2.raw_head) + 4 + len(r2.body), second


def test_idle_upstream_and_idle_keepalive(world, ow, egressd_factory):
    """idle_timeout_ms: an origin that never answers gets the client a 504
    (upstream_timeout); one that stalls mid-body gets the client's connection
    closed, the body visibly cut. keepalive_timeout_ms: an idle kept-alive
    connection is closed quietly (no line of its own)."""
    e = egressd_factory("idle", lambda port, log: H.render_config(
        port, log, STRICT_POLICY, limits={"idle_timeout_ms": 700, "keepalive_timeout_ms": 600}))
    try:
        mark = e.log.mark()
        with H.Client(e.port) as c:
            c.send(rq(target=b"http://origin.allowed.test/no-answer"))
            t0 = H.time.monotonic()
            r = c.read_response(timeout=6)
            took = H.time.monotonic() - t0
        H.assert_error_response(r, 504, "connection_read_timeout", "upstream_timeout",
                                "origin.allowed.test:80")
        assert 0.5 <= took < 4, took
        line = e.log.wait(since=mark, event="close", status=504)
        assert line["reason"] == "upstream_timeout", line

        mark = e.log.mark()
        with H.Client(e.port) as c:
            c.send(rq(target=b"http://origin.allowed.test/stall-mid"))
            r = H.Response(c.read_head())
            assert r.status == 200 and r.header("Content-Length") == "100", r
            got = c.recv_to_eof(timeout=6)
            local = c.local
        assert got == b"first ten.", "a cut body must end with the connection: %r" % got
        line = e.log.wait(since=mark, event="close", client=local)
        assert line["status"] == 200 and line["reason"] in ("idle_timeout", "upstream_timeout"), \
            line
    finally:
        ow.origin.gate("no-answer").set()
        ow.origin.gate("stall-mid").set()

    mark = e.log.mark()
    with H.Client(e.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/then-idle"))
        assert c.read_message().status == 200
        t0 = H.time.monotonic()
        assert c.recv_to_eof(timeout=5) == b""
        took = H.time.monotonic() - t0
        local = c.local
    assert 0.4 <= took < 4, took
    H.time.sleep(0.2)
    lines = [l for l in e.log.since(mark) if l.get("client") == local]
    assert [l["event"] for l in lines] == ["allow", "close"], lines


# ------------------------------------------------------------ the response side


OK5 = b"\r\n\r\nhello"
CANNED = {
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6" + OK5 + b"!",
    "cl-list-differs": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6" + OK5 + b"!",
    "cl-plus": b"HTTP/1.1 200 OK\r\nContent-Length: +5" + OK5,
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 5" + OK5,
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5" + OK5,
    "nul-in-head": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5" + OK5,
    "bad-status": b"HTTP/1.1 20 OK\r\nContent-Length: 5" + OK5,
    "http2-status-line": b"HTTP/2 200\r\nContent-Length: 5" + OK5,
    "te-in-http10": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\n\r\n",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n",
    "bad-chunk-mid-body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
    "te-not-final-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw",
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100" + OK5,
}

BAD_RESPONSES = ["two-cl", "cl-list-differs", "cl-plus", "obs-fold", "bare-lf",
                 "space-before-colon", "nul-in-head", "bad-status", "http2-status-line",
                 "te-in-http10", "switching-protocols"]


@pytest.mark.parametrize("case", BAD_RESPONSES)
def test_bad_response_head_is_502(world, ow, strict, case):
    """A response head egressd cannot frame for certain never reaches the
    client: 502 bad_response instead, and the connection closes."""
    mark = strict.log.mark()
    r = H.request(strict.port, rq(target=b"http://origin.allowed.test/resp?case=" + case.encode()))
    H.assert_error_response(r, 502, "http_protocol_error", "bad_response", "origin.allowed.test:80")
    assert b"hello" not in r.body, r
    line = strict.log.wait(since=mark, client=r.client, event="close")
    assert (line["status"], line["reason"]) == (502, "bad_response"), line


def test_response_te_and_cl_reframed(world, ow, strict):
    """Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); the
    Content-Length is not passed on, and the connection stays in step."""
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/resp?case=te-and-cl"))
        r = c.read_message()
        c.send(rq(target=b"http://origin.allowed.test/after-te-and-cl"))
        r2 = c.read_message()
    assert r.status == 200 and r.body == b"hello", r
    assert r.header("Content-Length") is None and r.header("Transfer-Encoding") == "chunked", r
    assert r2.status == 200 and b"GET /after-te-and-cl" in r2.body, r2


@pytest.mark.parametrize("case,allowed", [
    ("bad-chunk-mid-body", (b"", b"5\r\nhello\r\n")),  # none, or the valid chunk, never "zz"
    ("short-body", (b"", b"hello"))])
def test_response_cut_mid_body_closes_client(world, ow, strict, case, allowed):
    """Once the head has gone, a broken or short body can only be cut: the
    client sees the connection close before the body's end, never a clean
    end it could take the next response from."""
    mark = strict.log.mark()
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/resp?case=" + case.encode())
               + rq(target=b"http://origin.allowed.test/never"))
        r = H.Response(c.read_head())
        rest = c.recv_to_eof(timeout=5)
        local = c.local
    assert r.status == 200, r
    assert rest in allowed, rest
    line = strict.log.wait(since=mark, client=local, event="close")
    assert line["reason"] in ("bad_response", "response_incomplete"), line
    assert not [q for q in ow.origin.requests if q.path == "/never"]


def test_long_response_cut_mid_body_closes_client(world, ow, strict):
    """The same for a body long enough to be relayed socket to socket: the
    client gets the bytes that came, then the close; the log says why."""
    mark = strict.log.mark()
    n, cut = 1 << 20, 300 * 1024
    with H.Client(strict.port, timeout=10) as c:
        c.send(rq(target=b"http://origin.allowed.test/cut-big?n=%d&cut=%d" % (n, cut))
               + rq(target=b"http://origin.allowed.test/never"))
        r = H.Response(c.read_head())
        rest = c.recv_to_eof(timeout=10)
        local = c.local
    assert r.status == 200 and int(r.header("Content-Length")) == n, r
    assert rest == H.BULK_BLOCK[:cut], len(rest)
    line = strict.log.wait(since=mark, client=local, event="close")
    assert line["reason"] == "response_incomplete", line
    assert not [q for q in ow.origin.requests if q.path == "/never"]


def test_long_close_delimited_response(world, ow, strict):
    mark = strict.log.mark()
    n = len(H.BULK_BLOCK) - 3
    with H.Client(strict.port, timeout=10) as c:
        c.send(rq(target=b"http://origin.allowed.test/big-to-close?n=%d" % n))
        r = H.Response(c.read_head())
        body = c.recv_to_eof(timeout=10)
        local = c.local
    assert r.status == 200 and r.header("Content-Length") is None, r
    assert r.header("Connection") == "close", r
    assert body == H.BULK_BLOCK[:n], len(body)
    line = strict.log.wait(since=mark, client=local, event="close")
    assert line["reason"] == "complete" and line["bytes_down"] > n, line


def test_response_not_chunked_last_is_close_delimited(world, ow, strict):
    with H.Client(strict.port) as c:
        c.send(rq(target=b"http://origin.allowed.test/resp?case=te-not-final-chunked"))
        r = H.Response(c.read_head())
        body = c.recv_to_eof(timeout=5)
    assert r.status == 200 and r.header("Content-Length") is None, r
    assert body == b"raw", body
