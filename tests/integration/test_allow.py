"""What the policy allows gets through, end to end."""

import os

import harness as H


def test_allowed_connect_curl_end_to_end(world, proxy):
    mark = proxy.log.mark()
    rc, body, code, err = H.curl(proxy.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0, err
    assert code == 200
    assert body == "hello from egressd-it upstream api (198.51.100.10)\n"

    allow = proxy.log.wait(since=mark, event="allow", host="api.allowed.test")
    assert allow["rule"] == "api", allow
    assert allow["addr"] == H.ADDR_API, allow
    assert allow["status"] == 200 and allow["port"] == 443, allow
    assert allow["policy"] == "agent" and allow["mode"] == "enforce", allow
    assert allow["method"] == "CONNECT", allow
    assert allow.get("reason", "allowed") == "allowed", allow

    close = proxy.log.wait(since=mark, event="close", conn=allow["conn"])
    assert close["bytes_up"] > 0 and close["bytes_down"] > 0, close
    # the TLS exchange carried the response body: more came down than the body
    assert close["bytes_down"] > len(body), close
    assert isinstance(close["duration_ms"], int) and close["duration_ms"] >= 0, close
    assert close["status"] == 200, close
    assert close["reason"] in ("client_closed", "upstream_closed"), close
    assert close.get("client") == allow.get("client"), (allow, close)


def test_success_response_is_exact(world, proxy):
    """`HTTP/1.1 200 Connection established` and an empty head, then the tunnel."""
    c = H.Client(proxy.port)
    with c:
        c.send(H.connect_req("%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)))
        head = c.read_head()
        assert head == b"HTTP/1.1 200 Connection established", head
        assert c.echo(b"x") == b"x"


def test_pinned_rule_reaches_its_private_address(world, proxy, watch):
    w = watch(world.canaries)
    mark = proxy.log.mark()
    rc, body, code, err = H.curl(proxy.port, "https://git.corp.test/", cacert=world.ca)
    assert rc == 0, err
    assert body == "hello from egressd-it upstream git (10.20.0.7)\n"
    allow = proxy.log.wait(since=mark, event="allow", host="git.corp.test")
    assert allow["rule"] == "git" and allow["addr"] == H.ADDR_GIT, allow
    w.assert_nothing()


def test_ip_literal_allowed_by_networks_rule(world, proxy):
    mark = proxy.log.mark()
    target = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)
    c, r = H.tunnel(proxy.port, target)
    sent = 0
    with c:
        assert r.status == 200, r
        for payload in (b"hello through the tunnel\n", os.urandom(100 * 1024), b"bye\n"):
            assert c.echo(payload) == payload
            sent += len(payload)
    allow = proxy.log.wait(since=mark, event="allow", host=H.ADDR_ECHO)
    assert allow["rule"] == "ip-range" and allow["addr"] == H.ADDR_ECHO, allow
    assert allow["port"] == H.PORT_ECHO, allow
    close = proxy.log.wait(since=mark, event="close", conn=allow["conn"])
    assert close["bytes_up"] == sent and close["bytes_down"] == sent, (sent, close)


def test_host_is_normalised_before_matching(world, proxy):
    """Case and one trailing dot do not matter; the log shows the normal form."""
    mark = proxy.log.mark()
    c, r = H.tunnel(proxy.port, "API.Allowed.TEST.:443")
    c.close()
    assert r.status == 200, r
    allow = proxy.log.wait(since=mark, event="allow", rule="api")
    assert allow["host"] == "api.allowed.test", allow



def test_listener_selects_policy(world, egressd_factory):
    """Each listener gives its clients its policy; an empty rule list denies all."""
    other = H.free_port()
    policies = world.policy + """,
  { name = "strict";
    rules = ( );
  }"""
    e = egressd_factory("listeners", lambda port, log: H.render_config(
        port, log, policies,
        listen='{ address = "127.0.0.1"; port = %d; policy = "agent"; },\n'
               '           { address = "127.0.0.1"; port = %d; policy = "strict"; }' % (port, other)))
    H.wait_until(lambda: H.listening(other), 5, what="the second listener")
    target = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)
    c, r = H.tunnel(e.port, target)
    with c:
        assert r.status == 200, r
        assert c.echo(b"agent") == b"agent"
    r = H.request(other, H.connect_req(target))
    H.assert_refusal(r, "destination_ip_prohibited", "ip_literal_not_allowed", target, "strict")
    client_mark = e.log.mark()  # client ports get reused
    r = H.request(other, H.connect_req("api.allowed.test:443"))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "api.allowed.test:443", "strict")
    line = e.log.wait(since=client_mark, event="deny", client=r.client)
    assert line["policy"] == "strict", line
    assert line.get("listener") == "127.0.0.1:%d" % other, line


def test_only_addresses_that_passed_are_connected_to(world, proxy, watch):
    """mixed.allowed.test has 10.0.0.5 and 198.51.100.10; its rule pins
    198.51.100.0/24: the private address is dropped, never connected to."""
    w = watch(world.canaries)
    for _ in range(3):  # whatever order the answers come in
        mark = proxy.log.mark()
        rc, body, code, err = H.curl(proxy.port, "https://mixed.allowed.test/", cacert=world.ca)
        assert rc == 0, err
        assert "upstream api" in body
        allow = proxy.log.wait(since=mark, event="allow", host="mixed.allowed.test")
        assert allow["addr"] == H.ADDR_API and allow["rule"] == "api", allow
    w.assert_nothing()


def test_connect_falls_back_to_next_address(world, proxy):
    """fallback.allowed.test has 203.0.113.21 (refuses) and 198.51.100.10."""
    for _ in range(3):
        mark = proxy.log.mark()
        rc, body, code, err = H.curl(proxy.port, "https://fallback.allowed.test/", cacert=world.ca)
        assert rc == 0, err
        assert "upstream api" in body
        allow = proxy.log.wait(since=mark, event="allow", host="fallback.allowed.test")
        assert allow["addr"] == H.ADDR_API and allow["rule"] == "multi", allow


def test_python_clients_through_connect(world, proxy):
    """requests and httpx, as an agent's tools would use them (HTTPS_PROXY)."""
    import httpx
    import requests
    proxy_url = "http://127.0.0.1:%d" % proxy.port
    s = requests.Session()
    s.trust_env = False
    try:
        resp = s.get("https://api.allowed.test/", proxies={"https": proxy_url},
                     verify=world.ca, timeout=5)
        assert resp.status_code == 200 and "upstream api" in resp.text
        try:
            s.get("https://denied.test/", proxies={"https": proxy_url}, verify=world.ca, timeout=5)
        except requests.exceptions.ProxyError as ex:
            assert "403" in str(ex), ex
        else:
            raise AssertionError("requests reached a denied name")
    finally:
        s.close()
    with httpx.Client(proxies=proxy_url, verify=world.ca, trust_env=False, timeout=5) as c:
        resp = c.get("https://git.corp.test/")
        assert resp.status_code == 200 and "upstream git" in resp.text
        try:
            c.get("https://metadata.test/")
        except httpx.ProxyError as ex:
            assert "403" in str(ex), ex
        else:
            raise AssertionError("httpx reached metadata.test")
