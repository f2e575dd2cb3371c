"""Report mode (docs/config.md): name, port, method checks and rule networks
pins are logged ("event":"deny","mode":"report"), not enforced; malformed
requests and the built-in special-purpose address guard are enforced.

Every address in this namespace is special-purpose (documentation, private,
loopback, link-local), so a request let through by report mode still meets
the guard unless a matching rule's networks pin unlocks its address."""

import pytest

import harness as H

REPORT_POLICY = """  { name = "watcher";
    mode = "report";
    rules = (
      { name = "api"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "git-elsewhere"; hosts = [ "git.corp.test" ]; ports = [ 443 ];
        networks = [ "10.30.0.0/16" ]; }
    );
  }"""


@pytest.fixture
def reporter(world, egressd_factory):
    return egressd_factory("report", lambda port, log: H.render_config(
        port, log, REPORT_POLICY,
        listen='{ address = "127.0.0.1"; port = %d; policy = "watcher"; }' % port))


def test_report_mode_still_allows_what_is_allowed(world, reporter):
    mark = reporter.log.mark()
    rc, body, _, err = H.curl(reporter.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0, err
    assert "upstream api" in body
    allow = reporter.log.wait(since=mark, event="allow", host="api.allowed.test")
    assert allow["policy"] == "watcher" and allow["mode"] == "report", allow
    assert allow["rule"] == "api", allow
    assert not reporter.log.find(since=mark, event="deny")


def test_report_mode_logs_would_deny_and_guard_still_refuses(world, reporter, watch):
    """denied.test is in no rule: reported (host_not_allowed), let through,
    resolved to 198.51.100.10, which is special-purpose and pinned by no rule
    that matched: the guard refuses it."""
    w = watch()
    dmark = world.dns.mark()
    mark = reporter.log.mark()
    r = H.request(reporter.port, H.connect_req("denied.test:443"))
    report = reporter.log.wait(since=mark, event="deny", mode="report", client=r.client)
    assert report["reason"] == "host_not_allowed", report
    assert report["policy"] == "watcher", report
    assert report.get("rule") is None, report
    for k in H.DENY_FIELDS:
        if k != "status":
            assert k in report, "deny line without %r: %r" % (k, report)
    # the request went on (the name was resolved) ...
    assert "denied.test" in world.dns.queries_since(dmark)
    # ... and met the guard
    H.assert_refusal(r, "destination_ip_prohibited", "address_prohibited", "denied.test:443",
                     "watcher")
    guard = reporter.log.find(since=mark, event="deny", reason="address_prohibited",
                              client=r.client)
    assert guard and guard[0]["mode"] == "enforce", reporter.log.since(mark)
    assert guard[0]["addr"] == H.ADDR_API and guard[0]["status"] == 403, guard
    w.assert_nothing()


@pytest.mark.parametrize("target,reported", [
    ("metadata.test:443", "host_not_allowed"),
    ("10.0.0.5:443", "ip_literal_not_allowed"),
    ("169.254.169.254:443", "ip_literal_not_allowed"),
    ("api.allowed.test:8443", "port_not_allowed"),
    ("git.corp.test:443", "address_not_in_networks"),
])
def test_report_mode_never_opens_special_addresses(world, reporter, watch, target, reported):
    """Reported, let through, and refused by the built-in guard. When what
    enforce mode would refuse is itself a refusal of the address (an IP
    literal, a pin), one enforced line with that reason is a fair way to say
    both; otherwise the would-deny is a separate report-mode line."""
    w = watch()
    mark = reporter.log.mark()
    r = H.request(reporter.port, H.connect_req(target))
    address_reasons = ("address_prohibited", "ip_literal_not_allowed", "address_not_in_networks")
    details = H.proxy_status_params(r.header("Proxy-Status") or "x")[1].get("details", "")
    reason = details.split(":")[0]
    assert reason == "address_prohibited" or (reason == reported and reason in address_reasons), r
    H.assert_refusal(r, "destination_ip_prohibited", reason, target, "watcher")
    enforced = reporter.log.wait(since=mark, event="deny", client=r.client, reason=reason,
                                 pred=lambda l: l.get("status") == 403)
    # log.md: on a deny line, mode says how that refusal was applied
    assert enforced["mode"] == "enforce", enforced
    if reported != reason:
        assert reporter.log.find(since=mark, event="deny", mode="report", client=r.client,
                                 reason=reported), reporter.log.since(mark)
    w.assert_nothing()


def test_report_mode_enforces_malformed(world, reporter, watch):
    w = watch()
    mark = reporter.log.mark()
    r = H.request(reporter.port, H.connect_req("0177.0.0.1:443"))
    H.assert_error_response(r, 400, "http_request_error", "malformed_host")
    line = reporter.log.wait(since=mark, event="error", client=r.client)
    assert line["reason"] == "malformed_host", line
    w.assert_nothing()
