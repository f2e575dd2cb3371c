"""Plain-HTTP forwarding (README "For plain HTTP"): the same checks per
request, origin-form upstream with Host from the target, hop-by-hop fields
removed, Via added, every request on a kept-alive connection checked again,
ambiguous framing refused before anything is forwarded."""

import hashlib

import pytest

import harness as H

WEB_POLICY = """  { name = "web";
    rules = (
      { name = "plain-api"; hosts = [ "api.allowed.test" ]; ports = [ 80 ];
        methods = [ "GET", "HEAD", "POST" ]; networks = [ "198.51.100.0/24" ]; },
      { name = "meta"; hosts = [ "metadata.test", "private.test" ]; ports = [ 80 ]; }
    );
  }"""


def _start_web(world):
    return H.Egressd(world.tmp, "web",
                     lambda port, log: H.render_config(port, log, WEB_POLICY)).start()


@pytest.fixture(scope="module")
def _web_holder(world):
    holder = {"e": None, "dead": []}
    yield holder
    problems = list(holder["dead"])
    if holder["e"] is not None:
        rc = holder["e"].stop()
        if rc != 0:
            problems.append("egressd (web) exit %r; stderr:\n%s" % (rc, holder["e"].stderr()))
        problems += holder["e"].wrapper_problems()
    assert not problems, "\n".join(problems)


@pytest.fixture
def alive(world, _web_holder):
    """egressd on the "web" policy; restarted when a previous test killed it,
    and each test fails if it dies during it."""
    e = _web_holder["e"]
    if e is None or not e.alive():
        _web_holder["e"] = e = _start_web(world)
    yield e
    if not e.alive():
        _web_holder["dead"].append("died in a test")
    assert e.alive(), "egressd died during this test; stderr:\n" + e.stderr()
    for marker in ("ERROR: AddressSanitizer", "runtime error:"):
        assert marker not in e.stderr(), "sanitizer report during this test:\n" + e.stderr()
    wrapped = e.wrapper_problems()
    assert not wrapped, "during this test:\n" + "\n".join(wrapped)


def get(target, extra=b"", method=b"GET", body=b""):
    return (b"%s %s HTTP/1.1\r\nHost: api.allowed.test\r\n%s\r\n" % (method, target, extra)) + body


def test_plain_get_forwarded_and_rewritten(world, alive):
    web = alive
    n0 = len(world.http_requests)
    mark = web.log.mark()
    with H.Client(web.port) as c:
        c.send(b"GET http://api.allowed.test/path?q=1 HTTP/1.1\r\n"
               b"Host: denied.test\r\n"  # disagrees with the target: replaced
               b"Proxy-Authorization: Basic c2VjcmV0LWZvcndhcmQ=\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"Connection: X-Hop\r\n"
               b"X-Hop: 1\r\n"
               b"Keep-Alive: timeout=5\r\n"
               b"TE: trailers\r\n"
               b"X-Keep: kept\r\n\r\n")
        r = c.read_message()
        local = c.local
    assert r.status == 200, r
    assert r.body == b"plain upstream api: GET /path?q=1 body=0\n", r.body
    assert len(world.http_requests) == n0 + 1
    req = world.http_requests[n0]
    assert req.request_line == "GET /path?q=1 HTTP/1.1", req.request_line
    assert req.header("host") == ["api.allowed.test"], req.fields
    assert any("1.1 egressd" in v for v in req.header("via")), req.fields
    for hop in ("proxy-authorization", "proxy-connection", "x-hop", "keep-alive", "te"):
        assert not req.header(hop), (hop, req.fields)
    assert req.header("x-keep") == ["kept"], req.fields
    assert [v for v in req.header("connection") if "x-hop" in v.lower()] == [], req.fields

    allow = web.log.wait(since=mark, event="allow", client=local)
    assert allow["method"] == "GET" and allow["host"] == "api.allowed.test", allow
    assert allow["port"] == 80 and allow["path"] == "/path", allow  # no query in the log
    assert allow["rule"] == "plain-api" and allow["addr"] == H.ADDR_API, allow
    close = web.log.wait(since=mark, event="close", client=local, status=200)
    assert close["reason"] in ("complete", "client_closed"), close
    assert close["bytes_up"] > 0 and close["bytes_down"] > 0, close
    raw = b"\n".join(web.log.raw_lines()[mark:])
    assert b"c2VjcmV0LWZvcndhcmQ" not in raw


def test_keepalive_connection_rechecks_every_request(world, alive, watch):
    web = alive
    w = watch([world.canary["canary-metadata-80"]])
    n0 = len(world.http_requests)
    with H.Client(web.port) as c:
        for path in (b"/one", b"/two"):
            c.send(get(b"http://api.allowed.test" + path))
            r = c.read_message()
            assert r.status == 200 and path in r.body, r
        # the same connection, now to an allowed name on a special address
        c.send(b"GET http://metadata.test/latest/meta-data/ HTTP/1.1\r\nHost: metadata.test\r\n\r\n")
        r = c.read_response()
    H.assert_refusal(r, "destination_ip_prohibited", "address_prohibited", "metadata.test:80", "web")
    with H.Client(web.port) as c:
        c.send(get(b"http://api.allowed.test/three"))
        assert c.read_message().status == 200
        c.send(b"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")
        r = c.read_response()
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "denied.test:80", "web")
    got = [q.request_line for q in world.http_requests[n0:]]
    assert got == ["GET /one HTTP/1.1", "GET /two HTTP/1.1", "GET /three HTTP/1.1"], got
    w.assert_nothing()


@pytest.mark.parametrize("raw,dest,ptype,reason", [
    (get(b"http://api.allowed.test/", method=b"DELETE"), "api.allowed.test:80",
     "http_request_denied", "method_not_allowed"),
    (get(b"http://api.allowed.test:8080/"), "api.allowed.test:8080",
     "http_request_denied", "port_not_allowed"),
    (b"GET http://private.test/ HTTP/1.1\r\nHost: private.test\r\n\r\n", "private.test:80",
     "destination_ip_prohibited", "address_prohibited"),
    (b"GET http://10.0.0.5/ HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n", "10.0.0.5:80",
     "destination_ip_prohibited", "ip_literal_not_allowed"),
], ids=["method", "port", "special-address", "ip-literal"])
def test_plain_refusals(world, alive, watch, raw, dest, ptype, reason):
    w = watch()
    client_mark = alive.log.mark()  # client ports get reused
    r = H.request(alive.port, raw)
    H.assert_refusal(r, ptype, reason, dest, "web")
    line = alive.log.wait(since=client_mark, event="deny", client=r.client)
    assert line["reason"] == reason, line
    w.assert_nothing()


def post(extra, body=b"", target=b"http://api.allowed.test/upload"):
    return b"POST %s HTTP/1.1\r\nHost: api.allowed.test\r\n%s\r\n%s" % (target, extra, body)


FRAMING = [
    ("cl-and-te", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
     ("bad_framing",)),
    ("two-content-lengths", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
     ("bad_framing",)),
    ("non-numeric-cl", post(b"Content-Length: +5\r\n", b"hello"), ("bad_framing",)),
    ("te-gzip", post(b"Transfer-Encoding: gzip\r\n", b"hello"), ("bad_framing",)),
    ("bad-chunk-size", post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
     ("bad_framing",)),
    ("obs-fold", get(b"http://api.allowed.test/", b"X-A: 1\r\n folded\r\n"),
     ("malformed_request",)),
    ("two-hosts", b"GET http://api.allowed.test/ HTTP/1.1\r\nHost: api.allowed.test\r\n"
     b"Host: denied.test\r\n\r\n", ("malformed_request", "bad_target")),
    ("userinfo", get(b"http://user:pw@api.allowed.test/"),
     ("bad_target", "malformed_host", "malformed_request")),
    ("fragment", get(b"http://api.allowed.test/#frag"), ("bad_target",)),
]


@pytest.mark.parametrize("raw,reasons", [f[1:] for f in FRAMING], ids=[f[0] for f in FRAMING])
def test_ambiguous_requests_refused_before_forwarding(world, alive, watch, raw, reasons):
    w = watch([s for s in world.canaries + world.upstreams if s is not world.http])
    before = world.http.received()
    n0 = len(world.http_requests)
    client_mark = alive.log.mark()  # client ports get reused
    r = H.request(alive.port, raw)
    line = alive.log.wait(since=client_mark, event="error", client=r.client)
    assert line["reason"] in reasons and line["status"] == 400, line
    H.assert_error_response(r, 400, "http_request_error", line["reason"])
    w.assert_nothing()
    H.time.sleep(0.2)
    # bodies are streamed, so a head may have gone ahead of a body whose
    # chunked framing turns out bad; but no request reaches the upstream whole,
    # and no byte of the bad body does
    assert len(world.http_requests) == n0, [q.request_line for q in world.http_requests[n0:]]
    body = raw.partition(b"\r\n\r\n")[2]
    new = world.http.received()[len(before):]
    if body:
        assert body not in new and b"hello" not in new, new
    if b"chunk" not in raw.lower() or b"Content-Length" in raw:
        assert new == b"", "forwarded before refusing: %r" % new


def test_loop_detected_508(world, alive, watch):
    w = watch()
    r = H.request(alive.port, get(b"http://api.allowed.test/", b"Via: 1.1 egressd\r\n"))
    H.assert_error_response(r, 508, "proxy_loop_detected", "loop_detected")
    w.assert_nothing()


def test_request_bodies_streamed(world, alive):
    n0 = len(world.http_requests)
    big = H.BULK_BLOCK[:300 * 1024]
    with H.Client(alive.port) as c:
        c.send(post(b"Content-Length: %d\r\n" % len(big), big))
        r = c.read_message(timeout=10)
        assert r.status == 200 and r.body.endswith(b"body=%d\n" % len(big)), r
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"hello ", b"chunked ", b"world"))
        c.send(post(b"Transfer-Encoding: chunked\r\n", chunks + b"0\r\n\r\n"))
        r = c.read_message()
        assert r.status == 200 and r.body.endswith(b"body=%d\n" % len(b"hello chunked world")), r
    assert world.http_requests[n0].body == big
    assert world.http_requests[n0 + 1].body == b"hello chunked world"


def test_large_response_streamed(world, alive):
    n = 5 * 1000 * 1000 // 7
    with H.Client(alive.port, timeout=10) as c:
        c.send(get(b"http://api.allowed.test/big?n=%d" % n))
        r = c.read_message(timeout=15)
    assert r.status == 200
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(H.BULK_BLOCK[:n]).digest()


def test_keepalive_after_large_bodies(world, alive):
    """Bodies long enough to be relayed socket to socket each way, then a
    small request, all on one connection: every byte arrives in order and
    the connection stays usable for the next request."""
    n0 = len(world.http_requests)
    down = len(H.BULK_BLOCK) - 5
    up = H.BULK_BLOCK[:700 * 1024 + 3]
    with H.Client(alive.port, timeout=10) as c:
        c.send(get(b"http://api.allowed.test/big?n=%d" % down))
        r = c.read_message(timeout=15)
        assert r.status == 200 and len(r.body) == down, (r, len(r.body))
        assert r.body == H.BULK_BLOCK[:down]
        c.send(post(b"Content-Length: %d\r\n" % len(up), up))
        r = c.read_message(timeout=15)
        assert r.status == 200 and r.body.endswith(b"body=%d\n" % len(up)), r
        c.send(get(b"http://api.allowed.test/after-large"))
        r = c.read_message()
        assert r.status == 200 and b"GET /after-large" in r.body, r
    assert world.http_requests[n0 + 1].body == up


def test_pipelined_after_large_response(world, alive):
    """A request sent while a long response is still being relayed socket
    to socket waits its turn and gets its own response after it."""
    down = len(H.BULK_BLOCK) - 9
    with H.Client(alive.port, timeout=10) as c:
        c.send(get(b"http://api.allowed.test/big?n=%d" % down)
               + get(b"http://api.allowed.test/pipelined-after-large"))
        r = c.read_message(timeout=15)
        assert r.status == 200 and r.body == H.BULK_BLOCK[:down], (r, len(r.body))
        r = c.read_message()
        assert r.status == 200 and b"GET /pipelined-after-large" in r.body, r


def test_head_in_pieces_then_body_and_next_request(world, alive):
    """A head that arrives a few bytes at a time (its scan resumes where it
    stopped, issue 18) is one request; what came with its last piece, the
    body and a pipelined request, reaches the upstream whole and in order."""
    n0 = len(world.http_requests)
    first = get(b"http://api.allowed.test/in-pieces", b"Content-Length: 5\r\n",
                method=b"POST", body=b"hello")
    head_len = first.index(b"\r\n\r\n") + 4
    # the last piece: the empty line's LF, the body, the next request
    cut = head_len - 1
    with H.Client(alive.port) as c:
        for i in range(0, cut, 7):
            c.send(first[i:min(i + 7, cut)])
            H.time.sleep(0.01)
        c.send(first[cut:] + get(b"http://api.allowed.test/after-pieces"))
        r = c.read_message()
        assert r.status == 200 and r.body == b"plain upstream api: POST /in-pieces body=5\n", r
        r = c.read_message()
        assert r.status == 200 and r.body == b"plain upstream api: GET /after-pieces body=0\n", r
    assert world.http_requests[n0].body == b"hello"


def test_real_clients_over_plain_http(world, alive):
    rc, body, _, err = H.curl(alive.port, "http://api.allowed.test/from-curl")
    assert rc == 0, err
    assert body == "plain upstream api: GET /from-curl body=0\n", body
    import requests
    s = requests.Session()
    s.trust_env = False
    proxies = {"http": "http://127.0.0.1:%d" % alive.port}
    resp = s.get("http://api.allowed.test/from-requests", proxies=proxies, timeout=5)
    assert resp.status_code == 200 and "GET /from-requests" in resp.text
    resp = s.get("http://denied.test/", proxies=proxies, timeout=5)
    assert resp.status_code == 403
    assert "error=http_request_denied" in resp.headers.get("Proxy-Status", "")
    s.close()
