"""Two rules match a name: the rule that governs a connection is the one
that admitted the address it connects to (name, port, method and address),
whichever rule the name check met first.  Its tls setting decides the hello
check and its name is logged (issue 18, defect 1).

echo.allowed.test resolves to 203.0.113.20, where a plain echo server on
:443 records every byte it receives."""

import pytest

import harness as H

ECHO = "echo.allowed.test:443"
PLAINTEXT = b"GET / HTTP/1.1\r\nHost: echo.allowed.test\r\n\r\n"
ALERT = b"\x15\x03\x03\x00\x02\x02\x31"

# "exact" names the host, lists CONNECT and turns the hello check off;
# "wide" is a wildcard rule with the default check on port 443.
EXACT = """{ name = "exact"; hosts = [ "echo.allowed.test" ]; ports = [ 443 ];
        networks = [ "%s" ]; methods = [ "CONNECT" ]; tls = "off"; }"""
WIDE = """{ name = "wide"; hosts = [ "*.allowed.test" ]; ports = [ 443 ];
        networks = [ "%s" ]; }"""


def _start(egressd_factory, name, exact_net, wide_net, wide_first):
    rules = [EXACT % exact_net, WIDE % wide_net]
    if wide_first:
        rules.reverse()
    policy = """  { name = "agent";
    rules = (
      %s
    );
  }""" % ",\n      ".join(rules)
    return egressd_factory(name, lambda port, log: H.render_config(port, log, policy))


def _plaintext_through(e):
    """CONNECT, then a plaintext request and the end of the client's side:
    everything that came back before the close, and the client's address."""
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        local = c.local
        c.send(PLAINTEXT)
        c.sock.shutdown(H.socket.SHUT_WR)
        return c.recv_to_eof(timeout=5), local


@pytest.mark.parametrize("wide_first", [False, True], ids=["exact-first", "wide-first"])
def test_rule_that_admits_the_address_checks_the_hello(world, egressd_factory, wide_first):
    """"exact" matches the name but pins it to 10.20.0.0/16; "wide" admits
    203.0.113.20.  "wide" governs: the hello check runs, plaintext is refused
    (not_tls), the log names "wide", and the echo server gets nothing."""
    e = _start(egressd_factory, "gov-wide-%d" % wide_first, "10.20.0.0/16", "203.0.113.0/24",
               wide_first)
    before = len(world.echo.received())
    mark = e.log.mark()
    rest, local = _plaintext_through(e)
    assert rest == ALERT, "the plaintext went through unchecked: %r" % rest
    deny = e.log.wait(since=mark, event="deny", client=local)
    assert deny["reason"] == "not_tls" and deny["rule"] == "wide", deny
    assert deny["addr"] == H.ADDR_ECHO, deny
    close = e.log.wait(since=mark, event="close", client=local)
    assert "rule" not in close or close["rule"] == "wide", close
    assert e.log.find(since=mark, rule="exact") == [], e.log.since(mark)
    assert len(world.echo.received()) == before, "the echo server got bytes"


@pytest.mark.parametrize("wide_first", [False, True], ids=["exact-first", "wide-first"])
def test_rule_that_admits_the_address_turns_the_check_off(world, egressd_factory, wide_first):
    """Now "exact" admits 203.0.113.20 and "wide" is pinned elsewhere:
    "exact" governs, its tls = "off" applies, the bytes flow and the log
    names "exact" (with "wide" first, the name check met "wide")."""
    e = _start(egressd_factory, "gov-exact-%d" % wide_first, "203.0.113.0/24", "10.20.0.0/16",
               wide_first)
    mark = e.log.mark()
    rest, local = _plaintext_through(e)
    assert rest == PLAINTEXT, "the tunnel did not relay as sent: %r" % rest
    allow = e.log.wait(since=mark, event="allow", client=local)
    assert allow["rule"] == "exact" and allow["addr"] == H.ADDR_ECHO, allow
    close = e.log.wait(since=mark, event="close", client=local)
    assert close.get("rule") == "exact", close
    assert e.log.find(since=mark, event="deny") == [], e.log.since(mark)


@pytest.mark.parametrize("wide_first", [False, True], ids=["exact-first", "wide-first"])
def test_no_rule_admits_the_address(world, egressd_factory, watch, wide_first):
    """Both rules match the name, neither admits 203.0.113.20: 403 before
    any connection, and no rule is named."""
    e = _start(egressd_factory, "gov-none-%d" % wide_first, "10.20.0.0/16", "198.51.100.0/24",
               wide_first)
    w = watch([world.echo])
    mark = e.log.mark()
    r = H.request(e.port, H.connect_req(ECHO))
    H.assert_refusal(r, "destination_ip_prohibited", "address_not_in_networks", ECHO, "agent")
    deny = e.log.wait(since=mark, event="deny", client=r.client)
    assert deny["rule"] is None and deny["addr"] == H.ADDR_ECHO, deny
    w.assert_nothing()
