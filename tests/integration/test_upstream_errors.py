"""Allowed requests that cannot be completed: DNS and connect failures."""

import os

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


ADDR_BLACKHOLE = "203.0.113.30"  # on lo, but SYNs to :443 are dropped (nft, this namespace)
ADDR_NOROUTE = "203.0.113.99"  # not on lo: no route in this namespace


@pytest.fixture
def blackhole(world):
    if not os.path.exists("/usr/sbin/nft"):
        pytest.skip("nft not installed")
    r = H.run(["ip", "addr", "replace", ADDR_BLACKHOLE + "/32", "dev", "lo"])
    assert r.returncode == 0, r.stderr
    rules = ("table inet egressd_it_blackhole {\n"
             "  chain input { type filter hook input priority 0; policy accept;\n"
             "    ip daddr %s tcp dport 443 drop; }\n}\n" % ADDR_BLACKHOLE)
    r = H.run(["nft", "-f", "-"], input=rules)
    assert r.returncode == 0, r.stderr
    yield ADDR_BLACKHOLE
    H.run(["nft", "delete", "table", "inet", "egressd_it_blackhole"])
    H.run(["ip", "addr", "del", ADDR_BLACKHOLE + "/32", "dev", "lo"])


def test_connect_timeout_504(world, egressd_factory, blackhole, watch):
    e = egressd_factory("connect-timeout", lambda port, log: H.render_config(
        port, log, world.policy, limits={"connect_timeout_ms": 500}))
    w = watch()
    dest = "%s:443" % blackhole
    t0 = H.time.monotonic()
    client_mark = e.log.mark()  # client ports get reused
    r = H.request(e.port, H.connect_req(dest), timeout=8)
    took = H.time.monotonic() - t0
    H.assert_error_response(r, 504, "connection_timeout", "connect_timeout", dest)
    assert 0.4 <= took < 4, "connect_timeout after %.1fs with connect_timeout_ms=500" % took
    line = e.log.wait(since=client_mark, event="error", client=r.client)
    assert line["reason"] == "connect_timeout" and line["status"] == 504, line
    w.assert_nothing()


def test_connect_error_502(world, proxy, watch):
    w = watch()
    dest = "%s:443" % ADDR_NOROUTE
    client_mark = proxy.log.mark()  # client ports get reused
    r = H.request(proxy.port, H.connect_req(dest))
    H.assert_error_response(r, 502, "destination_unavailable", "connect_error", dest)
    line = proxy.log.wait(since=client_mark, event="error", client=r.client)
    assert line["reason"] == "connect_error" and line["status"] == 502, line
    w.assert_nothing()
