"""Which rules admit CONNECT (issue 18, defect 4).  A tunnel nobody looks
into carries whatever the client writes: through a rule meant for plain HTTP
on port 80 it would deliver `GET /admin` with `Host: internal-only.example`
verbatim to a shared front end, which routes by that Host.  So a rule that
does not list CONNECT in its methods allows it only where the hello check
runs (port 443 of a name rule by default, or tls = "require-sni-match");
elsewhere a CONNECT is refused with connect_unchecked, and plain HTTP, which
egressd forwards with the Host it takes from the URL, still works.

api.allowed.test resolves to 198.51.100.10, where a plain HTTP server on
:80 records every request."""

import pytest

import harness as H

SMUGGLE = (b"GET /admin HTTP/1.1\r\nHost: internal-only.example\r\n"
           b"Connection: close\r\n\r\n")

POLICY = """  { name = "agent";
    mode = "%s";
    rules = (
      { name = "plain"; hosts = [ "api.allowed.test" ]; ports = [ 80 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "tls"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; }
    );
  }"""

EXPLICIT = """  { name = "agent";
    rules = (
      { name = "tunnel"; hosts = [ "api.allowed.test" ]; ports = [ 80 ];
        networks = [ "198.51.100.0/24" ]; methods = [ "CONNECT", "GET" ]; }
    );
  }"""


def _start(egressd_factory, name, policy):
    return egressd_factory(name, lambda port, log: H.render_config(port, log, policy))


def test_connect_through_a_plain_http_rule_is_refused(world, egressd_factory, watch):
    e = _start(egressd_factory, "connect-plain", POLICY % "enforce")
    w = watch([world.http])
    dmark = world.dns.mark()
    mark = e.log.mark()
    r = H.request(e.port, H.connect_req("api.allowed.test:80"))
    H.assert_refusal(r, "http_request_denied", "connect_unchecked", "api.allowed.test:80",
                     "agent")
    # the body tells the agent both ways out
    assert "plain HTTP" in r.text() and "CONNECT" in r.text(), r.text()
    line = e.log.wait(since=mark, event="deny", client=r.client)
    H.assert_deny_line(line, "connect_unchecked", "api.allowed.test", 80)
    assert line["rule"] is None, line
    # refused by the name check: nothing resolved, nothing connected
    assert "api.allowed.test" not in world.dns.queries_since(dmark)
    w.assert_nothing()


def test_plain_http_through_the_same_rule_gets_its_host_rewritten(world, egressd_factory):
    e = _start(egressd_factory, "connect-plain-get", POLICY % "enforce")
    before = len(world.http_requests)
    r = H.request(e.port, b"GET http://api.allowed.test/admin HTTP/1.1\r\n"
                          b"Host: internal-only.example\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    got = world.http_requests[before:]
    assert len(got) == 1, got
    hosts = [v for k, v in got[0].fields if k.lower() == "host"]
    assert hosts == ["api.allowed.test"], got[0].fields


def test_connect_on_port_443_is_checked_and_allowed(world, egressd_factory):
    e = _start(egressd_factory, "connect-plain-443", POLICY % "enforce")
    rc, body, code, err = H.curl(e.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0 and code == 200 and "upstream api" in body, (rc, code, err)


def test_connect_listed_in_methods_is_allowed_unchecked(world, egressd_factory):
    """The operator asked for the tunnel: it is opened, and its bytes go
    through as sent (the trade-off the docs spell out)."""
    e = _start(egressd_factory, "connect-explicit", EXPLICIT)
    before = len(world.http_requests)
    mark = e.log.mark()
    c, r = H.tunnel(e.port, "api.allowed.test:80")
    with c:
        assert r.status == 200, r
        local = c.local
        c.send(SMUGGLE)
        reply = c.recv_to_eof(timeout=5)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    got = world.http_requests[before:]
    assert [v for k, v in got[0].fields if k.lower() == "host"] == ["internal-only.example"]
    allow = e.log.wait(since=mark, event="allow", client=local)
    assert allow["rule"] == "tunnel", allow


def test_report_mode_waives_it_not_the_address_guard(world, egressd_factory, watch):
    """Report mode waives connect_unchecked like any rule refusal (logged,
    mode report).  With no rule admitting the address, the special-purpose
    guard then stands, as it always does: these test addresses are
    documentation space."""
    e = _start(egressd_factory, "connect-report", POLICY % "report")
    w = watch([world.http])
    mark = e.log.mark()
    r = H.request(e.port, H.connect_req("api.allowed.test:80"))
    assert r.status == 403, r
    report = e.log.wait(since=mark, event="deny", client=r.client, mode="report")
    assert report["reason"] == "connect_unchecked", report
    guard = e.log.wait(since=mark, event="deny", client=r.client, mode="enforce")
    assert guard["reason"] == "address_prohibited", guard
    w.assert_nothing()


def _explain(path, *args):
    return H.run_egressd("-c", path, "--explain", *args)


@pytest.mark.parametrize("policy,target,method,verdict,want", [
    (POLICY % "enforce", "api.allowed.test:80", None, "deny", "connect_unchecked"),
    (POLICY % "enforce", "http://api.allowed.test/", "GET", "allow", "allowed"),
    (POLICY % "enforce", "api.allowed.test:443", None, "allow", "allowed"),
    (EXPLICIT, "api.allowed.test:80", None, "allow", "allowed"),
], ids=["connect-80-refused", "get-80", "connect-443-checked", "connect-80-listed"])
def test_explain_says_whether_connect_is_admitted(world, tmp_path, policy, target, method,
                                                  verdict, want):
    path = str(tmp_path / "egressd.conf")
    with open(path, "w") as f:
        f.write(H.render_config(H.free_port(), str(tmp_path / "decisions.log"), policy))
    args = [target] + (["--method", method] if method else [])
    p = _explain(path, *args)
    lines = p.stdout.splitlines()
    assert p.returncode == (0 if verdict == "allow" else 1), (p.stdout, p.stderr)
    assert "verdict: " + verdict in lines and "reason: " + want in lines, p.stdout
    tunnel = [l for l in lines if l.startswith("tunnel:")]
    if method is None and verdict == "allow":
        # a CONNECT that is allowed says whether its bytes are checked
        checked = target.endswith(":443")
        assert len(tunnel) == 1, p.stdout
        assert ("hello checked" in tunnel[0]) == checked, p.stdout
    elif want == "connect_unchecked":
        assert len(tunnel) == 1 and "CONNECT" in tunnel[0] and "plain HTTP" in tunnel[0], p.stdout
    else:
        assert tunnel == [], p.stdout
