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
