"""The admin listener (issue 5, part 2): /metrics in the Prometheus text
format, parsed with prometheus_client's parser; counters that move as
requests are made; /healthz; /readyz, 503 while draining; nothing else."""

import re
import signal

import pytest

import harness as H
import service as S

ECHO = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)

# Every metric of docs/metrics.md, with its type.
DOCUMENTED = {
    "egressd_build_info": "gauge",
    "egressd_requests": "counter",  # the parser names counter families without _total
    "egressd_connections": "counter",
    "egressd_active_requests": "gauge",
    "egressd_bytes": "counter",
    "egressd_dns_duration_seconds": "histogram",
    "egressd_connect_duration_seconds": "histogram",
    "egressd_reloads": "counter",
    "egressd_config_generation": "gauge",
    "egressd_ready": "gauge",
    "egressd_route_requests": "counter",
    "egressd_route_bytes": "counter",
    "egressd_route_upstream_requests": "counter",
}
HISTOGRAMS = ["egressd_dns_duration_seconds", "egressd_connect_duration_seconds"]


def _version():
    p = H.run_egressd("-V")
    return p.stdout.split()[-1]


@pytest.fixture
def adm(world, egressd_factory):
    admin_port = H.free_port()

    def config(port, log):
        return S.render(port, log, world.policy, admin_port=admin_port, workers=2,
                        limits={"drain_timeout_ms": 5000})
    e = egressd_factory("admin", config)
    e.admin = S.Admin(admin_port).wait_up()
    e.text = lambda: config(e.port, e.log_path)
    return e


def assert_well_formed(m):
    """Names, types, label sets and histograms of a scrape."""
    assert m.content_type and m.content_type.startswith("text/plain"), m.content_type
    assert "version=0.0.4" in m.content_type, m.content_type
    assert m.text.endswith("\n")
    for name, fam in m.families.items():
        assert name.startswith("egressd_"), name
        for s in fam.samples:
            assert s.name.startswith("egressd_"), s
            assert not (set(s.labels) - {"decision", "reason", "policy", "direction",
                                         "result", "version", "le", "route", "code",
                                         "conn"}), s
    for name, typ in DOCUMENTED.items():
        assert name in m.families, "%s missing from /metrics:\n%s" % (name, m.text)
        assert m.families[name].type == typ, (name, m.families[name].type)
    # counters end in _total (in the text itself, not as the parser reads it)
    for line in m.text.splitlines():
        tm = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if tm and tm.group(2) == "counter":
            assert tm.group(1).endswith("_total"), line
        if line and not line.startswith("#"):
            assert re.match(r'^egressd_[a-z_]+(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? '
                            r'[0-9.e+-]+$', line), line
    for name in HISTOGRAMS:
        fam = m.families[name]
        buckets = [(s.labels["le"], s.value) for s in fam.samples if s.name == name + "_bucket"]
        assert buckets and buckets[-1][0] == "+Inf", buckets
        bounds = [float(le) for le, _ in buckets]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), buckets
        counts = [v for _, v in buckets]
        assert all(a <= b for a, b in zip(counts, counts[1:])), "not cumulative: %r" % buckets
        count = m.value(name + "_count")
        total = m.value(name + "_sum")
        assert counts[-1] == count, (name, buckets, count)
        assert total >= 0 and (count > 0 or total == 0), (name, total, count)
    for d in m.families["egressd_requests"].samples:
        assert d.labels["decision"] in ("allow", "deny", "report", "error"), d
        # Only denials start at 0 (so that rate() sees the first one).
        assert d.value > 0 or d.labels["decision"] == "deny", "a zero series: %r" % (d,)
    assert m.value("egressd_build_info", version=_version()) == 1


def test_metrics_format(world, adm):
    m = adm.admin.metrics()
    assert_well_formed(m)
    assert m.value("egressd_ready") == 1
    assert m.value("egressd_config_generation") == 1
    assert m.value("egressd_active_requests") == 0
    assert m.value("egressd_reloads_total", result="ok") == 0
    assert m.value("egressd_reloads_total", result="failed") == 0


def test_counters_move(world, adm):
    e = adm
    m0 = e.admin.metrics()
    # allow (a real client through a tunnel), deny, error, and a tunnel with bytes
    rc, body, code, err = H.curl(e.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0 and code == 200 and "upstream api" in body, (rc, code, err)
    r = H.request(e.port, H.connect_req("metrics-secret-host.denied.test:443"))
    assert r.status == 403, r
    r = H.request(e.port, H.connect_req("nx.allowed.test:443"))
    assert r.status == 502, r
    r = H.request(e.port, H.connect_req("%s:443" % H.ADDR_METADATA))
    assert r.status == 403, r
    payload = b"m" * 50000
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        assert c.echo(payload, timeout=10) == payload
        mid = e.admin.metrics()
        assert mid.value("egressd_active_requests") == m0.value("egressd_active_requests") + 1
    H.wait_until(lambda: e.admin.metrics().value("egressd_active_requests") == 0, 5,
                 what="egressd_active_requests back to 0")
    m1 = e.admin.metrics()
    assert_well_formed(m1)

    def d(f, *a):
        return f(m1, *a) - f(m0, *a)
    req = lambda m, *a: m.requests(*a)  # noqa: E731
    assert d(req, "allow", "allowed", "agent") == 2, m1.text
    assert d(req, "deny", "host_not_allowed", "agent") == 1, m1.text
    assert d(req, "deny", "ip_literal_not_allowed", "agent") == 1, m1.text
    assert d(req, "error", "dns_nxdomain", "agent") == 1, m1.text
    val = lambda m, n, **l: m.value(n, **l)  # noqa: E731
    assert d(val, "egressd_connections_total") == 5, m1.text
    up = d(lambda m: m.value("egressd_bytes_total", direction="up"))
    down = d(lambda m: m.value("egressd_bytes_total", direction="down"))
    # the echo's 50000 each way, plus curl's TLS through the api tunnel
    assert up > len(payload) and down > len(payload), (up, down)
    # api.allowed.test and nx.allowed.test were looked up; two upstreams connected to
    assert d(lambda m: m.value("egressd_dns_duration_seconds_count")) >= 1, m1.text
    assert d(lambda m: m.value("egressd_connect_duration_seconds_count")) >= 2, m1.text
    # the requested host (or address) is never a label or anywhere else
    for needle in ("metrics-secret-host", "denied.test", "api.allowed.test", "nx.allowed",
                   H.ADDR_ECHO, H.ADDR_METADATA, H.ADDR_API):
        assert needle not in m1.text, needle


def test_reload_counters(world, adm):
    e = adm
    mark = e.log.mark()
    e.reload(e.text())
    e.log.wait(since=mark, event="reload", timeout=5)
    text, _ = H.break_config(e.text(), *H.BAD_CONFIGS[0][1:])
    e.reload(text)
    e.log.wait(since=mark, event="error", reason="reload_failed", timeout=5)
    m = e.admin.metrics()
    assert m.value("egressd_reloads_total", result="ok") == 1, m.text
    assert m.value("egressd_reloads_total", result="failed") == 1, m.text
    assert m.value("egressd_config_generation") == 2, m.text


def test_health_and_other_paths(world, adm):
    a = adm.admin
    r = a.get("/healthz")
    assert r.status == 200, r
    r = a.get("/readyz")
    assert r.status == 200, r
    assert a.get("/metrics?x=1").status == 200
    for path in ("/", "/metric", "/metrics/x", "/healthz/", "/../metrics", "/admin"):
        r = a.get(path)
        assert r.status == 404, (path, r)
    for method in ("POST", "PUT", "DELETE"):
        r = a.get("/metrics", method=method, body=b"x=1")
        assert r.status != 200 and 400 <= r.status < 600, (method, r)
    r = a.get("/metrics", method="HEAD")
    assert r.status == 200 and r.body == b"", r
    # the proxy port does not serve the admin paths
    r = H.request(adm.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 400, r


def test_readyz_503_while_draining(world, adm):
    e = adm
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        assert c.echo(b"before") == b"before"
        assert e.admin.get("/readyz").status == 200
        e.signal(signal.SIGTERM)
        H.wait_until(lambda: e.admin.get("/readyz", timeout=2).status == 503, 3,
                     what="/readyz to answer 503 after SIGTERM")
        m = e.admin.metrics()
        assert m.value("egressd_ready") == 0, m.text
        assert m.value("egressd_active_requests") == 1, m.text
        assert e.admin.get("/healthz").status == 200
        # the open tunnel still works while draining
        assert e.alive()
        assert c.echo(b"draining") == b"draining"
    rc = e.proc.wait(timeout=5)
    assert rc == 0, (rc, e.stderr())
