"""SIGHUP: a valid file takes effect for new connections only; a bad file
changes nothing and says why (file:line)."""

import pytest

import harness as H

LATE_RULE = """      { name = "late";
        hosts = [ "denied.test" ];
        ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
"""


def _new_policy(world):
    """The main policy, plus a rule for denied.test, minus the ip-range rule."""
    p = world.policy
    i = p.index('      { name = "ip-range";')
    j = p.index("}", i) + 1
    p = p[:i].rstrip().rstrip(",") + "\n" + p[j:].lstrip(" ").lstrip("\n")
    k = p.index('      { name = "api";')
    return p[:k] + LATE_RULE + p[k:]


def test_reload_valid_file(world, egressd_factory):
    e = egressd_factory("reload", lambda port, log: H.render_config(port, log, world.policy))
    r = H.request(e.port, H.connect_req("denied.test:443"))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "denied.test:443", "agent")

    old, r = H.tunnel(e.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO))
    with old:
        assert r.status == 200, r
        assert old.echo(b"before reload") == b"before reload"

        mark = e.log.mark()
        e.reload(H.render_config(e.port, e.log_path, _new_policy(world)))
        line = e.log.wait(since=mark, event="reload", timeout=5)
        assert H.TS_RE.match(line["ts"]), line
        assert e.alive()

        # new connections: the new policy
        rc, body, code, err = H.curl(e.port, "https://denied.test/", cacert=world.ca)
        assert rc == 0 and code == 200, (rc, code, err)
        assert "upstream api" in body
        allow = e.log.wait(since=mark, event="allow", host="denied.test")
        assert allow["rule"] == "late", allow
        r = H.request(e.port, H.connect_req("%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)))
        H.assert_refusal(r, "destination_ip_prohibited", "ip_literal_not_allowed",
                         "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO), "agent")

        # the tunnel opened before the reload keeps working
        for i in range(3):
            msg = b"after reload %d" % i
            assert old.echo(msg) == msg
    close = e.log.wait(event="close", pred=lambda l: l.get("host") == H.ADDR_ECHO
                       and l.get("status") == 200)
    assert close["bytes_up"] == close["bytes_down"] == len(b"before reload") + 3 * len(
        b"after reload 0"), close


@pytest.mark.parametrize("old,new,marker", [b[1:] for b in H.BAD_CONFIGS],
                         ids=[b[0] for b in H.BAD_CONFIGS])
def test_reload_bad_file_changes_nothing(world, egressd_factory, old, new, marker):
    e = egressd_factory("reload-bad", lambda port, log: H.render_config(port, log, world.policy))
    text, line_no = H.break_config(H.render_config(e.port, e.log_path, world.policy),
                                   old, new, marker)
    mark = e.log.mark()
    e.reload(text)
    err = e.log.wait(since=mark, event="error", reason="reload_failed", timeout=5)
    assert "%s:%d:" % (e.conf, line_no) in err.get("message", ""), (line_no, err)
    assert not e.log.find(since=mark, event="reload")
    assert e.alive()
    # the old policy still answers
    r = H.request(e.port, H.connect_req("denied.test:443"))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "denied.test:443", "agent")
    rc, body, code, errout = H.curl(e.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0 and "upstream api" in body, errout
    c, r = H.tunnel(e.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO))
    with c:
        assert r.status == 200, r
        assert c.echo(b"still") == b"still"


def test_reload_cannot_change_listeners(world, egressd_factory):
    e = egressd_factory("reload-listen", lambda port, log: H.render_config(port, log, world.policy))
    other = H.free_port()
    mark = e.log.mark()
    e.reload(H.render_config(other, e.log_path, world.policy))
    err = e.log.wait(since=mark, event="error", timeout=5)
    assert err.get("message"), err
    assert e.alive()
    assert H.listening(e.port) and not H.listening(other)
    c, r = H.tunnel(e.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO))
    c.close()
    assert r.status == 200, r


PLAIN_POLICY = """  { name = "web";
    rules = (
      { name = "plain-api"; hosts = [ "api.allowed.test" ]; ports = [ 80 ];
        networks = [ "198.51.100.0/24" ]; }
    );
  }"""


def test_reload_applies_to_next_request_on_kept_alive_connection(world, egressd_factory):
    """Each request is a new decision: a pooled client does not keep the old
    policy after a reload that takes its destination away."""
    e = egressd_factory("reload-keepalive",
                        lambda port, log: H.render_config(port, log, PLAIN_POLICY))
    get = b"GET http://api.allowed.test/%s HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n"
    n0 = len(world.http_requests)
    with H.Client(e.port) as c:
        c.send(get % b"before")
        assert c.read_message().status == 200
        mark = e.log.mark()
        e.reload(H.render_config(e.port, e.log_path, PLAIN_POLICY.replace(
            '"api.allowed.test"', '"other.allowed.test"')))
        e.log.wait(since=mark, event="reload", timeout=5)
        c.send(get % b"after")
        r = c.read_response()
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", "api.allowed.test:80", "web")
    got = [q.request_line for q in world.http_requests[n0:]]
    assert got == ["GET /before HTTP/1.1"], got
