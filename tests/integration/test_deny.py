"""What the policy refuses is refused before DNS (names, ports) or before any
connection (addresses), and the refusal says so."""

import pytest

import harness as H


def test_denied_name_403_without_dns(world, proxy, watch):
    # a query for an allowed name does reach dnsmasq's log: the log works
    rc, body, _, err = H.curl(proxy.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0, err
    H.wait_until(lambda: "api.allowed.test" in world.dns.queries(), 5,
                 what="dnsmasq to log the query for api.allowed.test")

    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    rc, body, code, err = H.curl(proxy.port, "https://denied.test/", cacert=world.ca)
    assert rc != 0, "curl to a denied name succeeded: %r" % body
    assert code == 403, (code, err)

    r = H.request(proxy.port, H.connect_req("denied.test:443"))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "denied.test:443", "agent")
    line = proxy.log.wait(since=mark, event="deny", client=r.client)
    H.assert_deny_line(line, "host_not_allowed", "denied.test", 443)
    assert line.get("rule") is None, line
    assert "addr" not in line, line
    assert proxy.log.find(since=mark, event="deny", host="denied.test", reason="host_not_allowed")

    assert "denied.test" not in world.dns.queries_since(dmark)
    w.assert_nothing()


def test_curl_verbose_shows_refusal(world, proxy):
    rc, body, code, err = H.curl(proxy.port, "https://denied.test/", cacert=world.ca, extra=["-v"])
    assert code == 403
    assert "Proxy-Status: egressd; error=http_request_denied" in err, err


def test_denied_port_403_without_dns(world, proxy, watch):
    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    r = H.request(proxy.port, H.connect_req("api.allowed.test:8443"))
    H.assert_refusal(r, "http_request_denied", "port_not_allowed", "api.allowed.test:8443", "agent")
    line = proxy.log.wait(since=mark, event="deny", client=r.client)
    H.assert_deny_line(line, "port_not_allowed", "api.allowed.test", 8443)
    assert world.dns.queries_since(dmark) == []
    w.assert_nothing()


# (name, port, address it resolves to, expected range or None, canary)
SPECIAL = [
    ("metadata.test", 443, H.ADDR_METADATA, "link-local", "canary-metadata"),
    ("private.test", 443, H.ADDR_PRIVATE, "private", "canary-private"),
    ("loopback.test", 443, "127.0.0.1", "loopback", "canary-loopback-443"),
    ("loopback.test", "LOOP", "127.0.0.1", "loopback", "canary-loopback"),
    ("unpinned.test", 443, H.ADDR_API, None, "upstream-api"),  # documentation range
    ("v6loop.test", 443, "::1", "loopback", "canary-ipv6-loopback"),
    ("mapped.test", 443, "::ffff:10.0.0.5", "private", "canary-private"),
]


@pytest.mark.parametrize("name,port,addr,rng,canary", SPECIAL,
                         ids=["%s:%s" % (s[0], s[1]) for s in SPECIAL])
def test_allowed_name_to_special_address_refused(world, proxy, watch, name, port, addr, rng,
                                                 canary):
    if port == "LOOP":
        port = world.loop_port
    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    dest = "%s:%d" % (name, port)
    r = H.request(proxy.port, H.connect_req(dest))
    H.assert_refusal(r, "destination_ip_prohibited", "address_prohibited", dest, "agent")
    line = proxy.log.wait(since=mark, event="deny", client=r.client)
    H.assert_deny_line(line, "address_prohibited", name, port)
    assert isinstance(line.get("range"), str) and line["range"], line
    if rng is not None:
        assert line["range"] == rng, line
    if addr.startswith("::ffff:"):
        assert line.get("addr") in (addr, addr[len("::ffff:"):]), line
    else:
        assert line.get("addr") == addr, line
    # it was resolved (the name is allowed) and then refused on the address
    assert name in world.dns.queries_since(dmark)
    w.assert_nothing()
    assert canary in w.before  # the canary that would have seen it is watched


def test_special_address_refused_through_curl(world, proxy, watch):
    w = watch()
    rc, body, code, err = H.curl(proxy.port, "https://metadata.test/", cacert=world.ca)
    assert rc != 0 and code == 403, (rc, code, err)
    w.assert_nothing()


@pytest.mark.parametrize("target", ["10.0.0.5:443", "169.254.169.254:443", "127.0.0.1:443",
                                    "198.51.100.10:443", "[::1]:443"])
def test_ip_literal_outside_networks_rules_refused(world, proxy, watch, target):
    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    r = H.request(proxy.port, H.connect_req(target))
    H.assert_refusal(r, "destination_ip_prohibited", "ip_literal_not_allowed", target, "agent")
    line = proxy.log.wait(since=mark, event="deny", client=r.client)
    host, port = target.rsplit(":", 1)
    H.assert_deny_line(line, "ip_literal_not_allowed", host.strip("[]"), int(port))
    assert world.dns.queries_since(dmark) == []
    w.assert_nothing()


@pytest.mark.parametrize("target", ["2130706433:443", "0x7f.1:443", "0177.0.0.1:443", "127.1:443",
                                    "0x7f000001:443", "127.0.0.01:443", "10.0.5:443"])
def test_malformed_ip_literals_400(world, proxy, watch, target):
    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    r = H.request(proxy.port, H.connect_req(target))
    H.assert_error_response(r, 400, "http_request_error", "malformed_host")
    line = proxy.log.wait(since=mark, event="error", client=r.client)
    assert line["reason"] == "malformed_host" and line["status"] == 400, line
    # log.md: for a malformed request, the request-target as sent without ":port"
    assert line.get("host") == target.rsplit(":", 1)[0], line
    assert world.dns.queries_since(dmark) == []
    w.assert_nothing()


@pytest.mark.parametrize("target", ["metadata.test:443", "10.0.0.5:443", "denied.test:443",
                                    "api.allowed.test:8443", "127.1:443"])
def test_bytes_after_refused_connect_never_forwarded(world, proxy, watch, target):
    """The CONNECT and a TLS ClientHello in one send: the hello goes nowhere."""
    w = watch()
    r = H.request(proxy.port, H.connect_req(target) + H.FAKE_CLIENT_HELLO)
    assert r.status in (403, 400), r
    assert r.trailing == b"", "a second answer followed the refusal: %r" % r.trailing
    w.assert_nothing()
    for s in world.canaries + world.upstreams:
        assert H.FAKE_CLIENT_HELLO[11:43] not in s.received(), s


def test_curl_to_ip_literal_of_a_named_upstream_refused(world, proxy, watch):
    """curl to https://198.51.100.10/ is an IP literal: no networks-only rule
    covers 198.51.100.0/24, so it is refused even though a name rule reaches
    the same address."""
    w = watch()
    rc, body, code, err = H.curl(proxy.port, "https://%s/" % H.ADDR_API, cacert=world.ca)
    assert rc != 0 and code == 403, (rc, code, body, err)
    w.assert_nothing()


def test_pinned_name_outside_its_networks_refused(world, egressd_factory, watch):
    """A name pinned to networks it does not resolve into is refused after DNS."""
    policy = """  { name = "pinned";
    rules = (
      { name = "git-elsewhere"; hosts = [ "git.corp.test" ]; ports = [ 443 ];
        networks = [ "10.30.0.0/16" ]; },
      { name = "wide"; hosts = [ "private.test" ]; ports = [ 443 ];
        networks = [ "0.0.0.0/0" ]; }
    );
  }"""
    e = egressd_factory("pinned", lambda port, log: H.render_config(port, log, policy))
    w = watch()
    mark = e.log.mark()
    r = H.request(e.port, H.connect_req("git.corp.test:443"))
    H.assert_refusal(r, "destination_ip_prohibited", "address_not_in_networks",
                     "git.corp.test:443", "pinned")
    line = e.log.wait(since=mark, event="deny", client=r.client)
    H.assert_deny_line(line, "address_not_in_networks", "git.corp.test", 443, policy="pinned")
    assert line.get("addr") == H.ADDR_GIT, line
    # 0.0.0.0/0 is not wholly special-purpose: it unlocks nothing special
    r = H.request(e.port, H.connect_req("private.test:443"))
    H.assert_refusal(r, "destination_ip_prohibited", "address_prohibited",
                     "private.test:443", "pinned")
    w.assert_nothing()
