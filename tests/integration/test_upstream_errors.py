"""Allowed requests that cannot be completed: DNS and connect failures."""

import pytest

import harness as H

DNS_CASES = [
    ("nx.allowed.test", 502, "dns_error", "dns_nxdomain"),
    ("noaddr.allowed.test", 502, "dns_error", "dns_no_address"),
    ("refused.allowed.test", 502, "dns_error", "dns_error"),
]


@pytest.mark.parametrize("name,status,ptype,reason", DNS_CASES, ids=[c[0] for c in DNS_CASES])
def test_dns_failure(world, proxy, watch, name, status, ptype, reason):
    w = watch()
    dmark = world.dns.mark()
    mark = proxy.log.mark()
    dest = name + ":443"
    r = H.request(proxy.port, H.connect_req(dest))
    params = H.assert_error_response(r, status, ptype, reason, dest)
    if reason == "dns_nxdomain":
        # docs/log.md: dns_error with rcode="NXDOMAIN"
        assert params.get("rcode") == "NXDOMAIN", r.header("Proxy-Status")
    line = proxy.log.wait(since=mark, event="error", client=r.client)
    assert line["reason"] == reason and line["status"] == status, line
    assert line["host"] == name and line["port"] == 443, line
    assert line.get("rule") in (None, "api"), line
    assert name in world.dns.queries_since(dmark)
    w.assert_nothing()


def test_dns_timeout_504(world, egressd_factory, watch):
    bh = H.UdpBlackhole()
    try:
        e = egressd_factory("dns-timeout", lambda port, log: H.render_config(
            port, log, world.policy,
            resolver='servers = [ "127.0.0.1:%d" ]; timeout_ms = 300; tries = 1;' % bh.port))
        w = watch()
        mark = e.log.mark()
        t0 = H.time.monotonic()
        r = H.request(e.port, H.connect_req("api.allowed.test:443"), timeout=8)
        took = H.time.monotonic() - t0
        H.assert_error_response(r, 504, "dns_timeout", "dns_timeout", "api.allowed.test:443")
        assert took < 5, "dns_timeout after %.1fs with timeout_ms=300, tries=1" % took
        assert bh.count >= 1, "the query never reached the configured server"
        line = e.log.wait(since=mark, event="error", client=r.client)
        assert line["reason"] == "dns_timeout" and line["status"] == 504, line
        w.assert_nothing()
    finally:
        bh.stop()


def test_connect_refused_502(world, proxy, watch):
    w = watch()
    mark = proxy.log.mark()
    dest = "%s:443" % H.ADDR_DEAD  # on lo, in the ip-range rule, nothing listens
    r = H.request(proxy.port, H.connect_req(dest))
    H.assert_error_response(r, 502, "connection_refused", "connect_refused", dest)
    line = proxy.log.wait(since=mark, event="error", client=r.client)
    assert line["reason"] == "connect_refused" and line["status"] == 502, line
    assert line["host"] == H.ADDR_DEAD and line["port"] == 443, line
    w.assert_nothing()
