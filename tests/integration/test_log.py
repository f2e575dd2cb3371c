"""The decision log: one JSON object a line, documented fields, escaped."""

import json

import harness as H


def _traffic(world, e):
    """One of each kind of request against instance e."""
    rc, _, _, err = H.curl(e.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0, err
    for raw in (H.connect_req("denied.test:443"),
                H.connect_req("metadata.test:443"),
                H.connect_req("10.0.0.5:443"),
                H.connect_req("0x7f.1:443"),
                H.connect_req("nx.allowed.test:443"),
                b"CONNECT api.allowed.test:443 HTTP/2.0\r\n\r\n"):
        H.request(e.port, raw)
    c, r = H.tunnel(e.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO))
    with c:
        assert r.status == 200
        assert c.echo(b"ping") == b"ping"


def test_every_line_is_json_with_documented_fields(world, egressd_factory):
    e = egressd_factory("log", lambda port, log: H.render_config(port, log, world.policy))
    _traffic(world, e)

    def settled():
        lines = e.log.lines()
        conns = {l["conn"] for l in lines if l.get("event") in ("allow", "deny", "error")
                 and "conn" in l}
        closed = {l["conn"] for l in lines if l.get("event") == "close"}
        return lines if len(conns) >= 8 and conns <= closed else None
    lines = H.wait_until(settled, 5, what="a close line for every connection")

    for raw in e.log.raw_lines():
        json.loads(raw.decode("utf-8"))  # strict: no raw control characters
        assert raw.startswith(b"{") and raw.endswith(b"}"), raw
    for l in lines:
        H.assert_log_line(l)

    by_conn = {}
    for l in lines:
        if "conn" in l:
            by_conn.setdefault(l["conn"], []).append(l)
    for conn, ls in by_conn.items():
        closes = [l for l in ls if l["event"] == "close"]
        assert len(closes) == 1, "conn %d: %d close lines: %r" % (conn, len(closes), ls)
        assert closes[0] is ls[-1], "conn %d: close is not its last line: %r" % (conn, ls)
        clients = {l.get("client") for l in ls}
        assert len(clients) == 1 and None not in clients, ls
        for k in ("bytes_up", "bytes_down", "duration_ms"):
            assert isinstance(closes[0].get(k), int), closes[0]

    denies = [l for l in lines if l["event"] == "deny"]
    assert {l["reason"] for l in denies} >= {"host_not_allowed", "address_prohibited",
                                             "ip_literal_not_allowed"}, denies
    for l in denies:
        for k in H.DENY_FIELDS:
            assert k in l, "deny line without %r: %r" % (k, l)
        assert l["status"] == 403 and l["mode"] == "enforce" and l["policy"] == "agent", l
    allows = [l for l in lines if l["event"] == "allow"]
    assert len(allows) == 2, allows
    for l in allows:
        for k in ("client", "policy", "mode", "method", "host", "port", "addr", "rule", "status"):
            assert k in l, "allow line without %r: %r" % (k, l)
    errors = [l for l in lines if l["event"] == "error"]
    assert {l["reason"] for l in errors} >= {"malformed_host", "dns_nxdomain", "bad_version"}
    for l in errors:
        assert isinstance(l.get("status"), int) and "client" in l, l
    starts = [l for l in lines if l["event"] == "start"]
    assert len(starts) == 1 and lines[0] is starts[0], "no start line first: %r" % lines[:2]


def test_hostile_host_is_escaped(world, proxy):
    for host in (b'ev"il\\host', b'a\\"b"}{"x', b"ctl\x01\x1fchar"):
        mark = proxy.log.mark()
        r = H.request(proxy.port, b"CONNECT " + host + b":443 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 400, r
        line = proxy.log.wait(since=mark, event="error", client=r.client)
        for raw in proxy.log.raw_lines()[mark:]:
            json.loads(raw.decode("utf-8"))  # strict: control characters must be escaped
        assert line["status"] == 400, line
        # log.md: for a malformed request, host is the request-target as sent
        # (without ":port"), escaped
        assert line.get("host") == host.decode("ascii"), \
            "the log should carry the host as sent: %r" % line


def test_proxy_authorization_never_logged(world, proxy):
    secret = b"c2VjcmV0LXRva2VuLTQyNDI="
    mark = proxy.log.mark()
    for target in ("denied.test:443", "api.allowed.test:443", "0x7f.1:443"):
        c = H.Client(proxy.port)
        with c:
            c.send(H.connect_req(target, b"Proxy-Authorization: Basic " + secret + b"\r\n"))
            c.read_head()
    H.wait_until(lambda: len(proxy.log.find(since=mark, event="close")) >= 3, 5,
                 what="three close lines")
    data = b"\n".join(proxy.log.raw_lines()[mark:])
    assert secret not in data and b"c2VjcmV0" not in data, data


SECRETS_POLICY = """  { name = "agent";
    rules = (
      { name = "plain"; hosts = [ "api.allowed.test" ]; ports = [ 80 ];
        methods = [ "GET" ]; networks = [ "198.51.100.0/24" ]; }
    );
  }"""


def test_credentials_and_queries_never_logged(world, egressd_factory):
    """No userinfo and no query string reaches a log line: not from a
    malformed target (logged as the host that could be told, or no host),
    not from an allowed or refused request's path, not from a head that
    timed out half-way through its request line."""
    e = egressd_factory("log-secrets", lambda port, log: H.render_config(
        port, log, SECRETS_POLICY, limits={"header_timeout_ms": 800}))
    mark = e.log.mark()
    before = len(world.http_requests)
    # (request, status, host the log shows or None for no host field)
    cases = [
        (b"GET http://agent:ghp_SECRET1@api.allowed.test/x HTTP/1.1\r\nHost: x\r\n\r\n",
         400, "api.allowed.test"),
        (b"CONNECT agent:ghp_SECRET2@api.allowed.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
         400, "api.allowed.test"),
        (b"GET http://agent:abc/SECRET3@api.allowed.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
         400, None),
        (b"GET http://api.allowed.test/x?api_key=sk-SECRET4 HTTP/1.1\r\n"
         b"Host: api.allowed.test\r\nConnection: close\r\n\r\n", 200, "api.allowed.test"),
        (b"GET http://denied.test/y?token=SECRET5 HTTP/1.1\r\nHost: denied.test\r\n\r\n",
         403, "denied.test"),
        # the head never ends: 408 from the timeout, with what it could read
        (b"GET http://agent:SECRET6@api.allowed.test/z?k=SECRET7", 408, "api.allowed.test"),
    ]
    for raw, status, host in cases:
        r = H.request(e.port, raw)
        assert r.status == status, (raw, r)
        line = e.log.wait(since=mark, event="close", client=r.client)
        assert line.get("host") == host, (raw, line)
    # the allowed request went out whole, query and all
    got = world.http_requests[before:]
    assert [g.request_line for g in got] == ["GET /x?api_key=sk-SECRET4 HTTP/1.1"], got
    lines = e.log.since(mark)
    assert [l["path"] for l in lines if l.get("host") == "api.allowed.test" and "path" in l] \
        == ["/x", "/x"], lines
    assert [l["path"] for l in lines if l.get("host") == "denied.test"] == ["/y", "/y"], lines
    data = b"\n".join(e.log.raw_lines()[mark:])
    assert b"SECRET" not in data and b"agent:" not in data, data.decode("utf-8", "replace")
