"""SNI consistency: a CONNECT tunnel to a name on port 443 must open with a
TLS ClientHello that names the same host.  Real TLS clients (Python's ssl,
curl) on one side, the real TLS upstream on the other."""

import socket
import ssl
import time

import pytest

import harness as H

API = "api.allowed.test:443"
ECHO = "echo.allowed.test:443"

POLICY = """  { name = "sni";
    mode = "%s";
    rules = (
      { name = "api"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "echo-checked"; hosts = [ "echo.allowed.test" ]; ports = [ 443 ];
        networks = [ "203.0.113.0/24" ]; },
      { name = "echo-unchecked"; hosts = [ "echo.allowed.test" ]; ports = [ 444 ];
        networks = [ "203.0.113.0/24" ]; tls = "off"; methods = [ "CONNECT" ]; }
    );
  }"""


def _proxy(egressd_factory, name, mode="enforce", limits=None):
    return egressd_factory(name, lambda port, log: H.render_config(
        port, log, POLICY % mode, limits=limits))


@pytest.fixture
def proxy(world, egressd_factory):
    return _proxy(egressd_factory, "sni", limits={"header_timeout_ms": 1500})


def _ctx(world, check=True):
    ctx = ssl.create_default_context(cafile=world.ca)
    if not check:
        ctx.check_hostname = False
    return ctx


def _https_get(world, port, sni, target=API, check=True):
    """A real TLS client through a tunnel: (response bytes or the SSL error,
    the client's address)."""
    c, r = H.tunnel(port, target)
    assert r.status == 200, r
    local = c.local
    try:
        s = _ctx(world, check).wrap_socket(c.sock, server_hostname=sni)
        s.settimeout(5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: api.allowed.test\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        return out, local
    except (ssl.SSLError, OSError) as e:
        return e, local
    finally:
        c.close()


def test_matching_sni_is_allowed_and_logged(world, proxy):
    mark = proxy.log.mark()
    out, local = _https_get(world, proxy.port, "api.allowed.test")
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 200"), out
    allow = proxy.log.wait(since=mark, event="allow", client=local)
    assert allow["sni"] == "api.allowed.test" and allow["rule"] == "api", allow
    close = proxy.log.wait(since=mark, event="close", client=local)
    assert close["reason"] in ("upstream_closed", "client_closed"), close
    assert close["bytes_up"] > 0 and close["bytes_down"] > 0, close


def test_curl_passes_the_check(world, proxy):
    rc, body, code, err = H.curl(proxy.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc == 0 and code == 200, (rc, code, err)
    proxy.log.wait(event="allow", sni="api.allowed.test")


def test_other_sni_is_refused_with_an_alert(world, proxy):
    seen = world.api.count()
    mark = proxy.log.mark()
    out, local = _https_get(world, proxy.port, "evil.example", check=False)
    assert isinstance(out, ssl.SSLError), out
    # the client's TLS stack reads egressd's fatal alert
    assert "ACCESS_DENIED" in str(out).upper(), out
    deny = proxy.log.wait(since=mark, event="deny", client=local)
    assert deny["reason"] == "sni_mismatch" and deny["sni"] == "evil.example", deny
    assert deny["host"] == "api.allowed.test" and deny["rule"] == "api", deny
    assert deny["mode"] == "enforce" and "status" not in deny, deny
    close = proxy.log.wait(since=mark, event="close", client=local)
    assert close["reason"] == "sni_mismatch" and close["status"] == 200, close
    # the hello never left egressd: nothing relayed either way
    assert close["bytes_up"] == 0 and close["bytes_down"] == 0, close
    assert not proxy.log.find(since=mark, event="allow", client=local)
    # the upstream saw a TCP connection (made before the 200) and no handshake
    time.sleep(0.2)
    assert world.api.count() <= seen + 1


def test_sni_case_and_trailing_dot_match(world, proxy):
    out, local = _https_get(world, proxy.port, "API.Allowed.TEST.", check=False)
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 200"), out


def test_no_sni_is_refused(world, proxy):
    mark = proxy.log.mark()
    ctx = _ctx(world, check=False)
    ctx.verify_mode = ssl.CERT_NONE
    c, r = H.tunnel(proxy.port, API)
    local = c.local
    with c:
        with pytest.raises((ssl.SSLError, OSError)):
            s = ctx.wrap_socket(c.sock, server_hostname=None)
            s.settimeout(5)
            s.recv(10)
    deny = proxy.log.wait(since=mark, event="deny", client=local)
    assert deny["reason"] == "sni_missing" and "sni" not in deny, deny


def test_not_tls_is_refused(world, proxy):
    mark = proxy.log.mark()
    c, r = H.tunnel(proxy.port, ECHO)
    with c:
        assert r.status == 200, r
        local = c.local
        c.send(b"GET / HTTP/1.1\r\nHost: echo.allowed.test\r\n\r\n")
        rest = c.recv_to_eof(timeout=5)
    # an alert record, then the close; never an echo of the request
    assert rest == b"\x15\x03\x03\x00\x02\x02\x31", rest
    deny = proxy.log.wait(since=mark, event="deny", client=local)
    assert deny["reason"] == "not_tls", deny


def test_tls_off_rule_relays_any_bytes(world, proxy):
    c, r = H.tunnel(proxy.port, "echo.allowed.test:444")
    with c:
        assert r.status == 200, r
        c.send(b"not a hello")
        c.sock.shutdown(socket.SHUT_WR)
        reply = c.recv_to_eof(timeout=5)
    assert reply.startswith(b"got 11 bytes"), reply


def test_hello_split_into_pieces_is_read_whole(world, proxy):
    """A ClientHello that arrives a few bytes at a time, over many TCP
    segments, is judged once complete and forwarded unchanged."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _ctx(world).wrap_bio(incoming, outgoing, server_hostname="api.allowed.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100
    mark = proxy.log.mark()
    c, r = H.tunnel(proxy.port, API)
    with c:
        local = c.local
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(hello), 7):
            c.send(hello[i:i + 7])
            time.sleep(0.002)
        # the upstream answers the forwarded hello: finish the handshake
        d = H.Deadline(5)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    c.send(pending)
                assert not d.expired(), "no handshake in 5 s"
                c.sock.settimeout(max(0.01, d.left()))
                b = c.sock.recv(65536)
                assert b, "tunnel closed during the handshake"
                incoming.write(b)
        c.send(outgoing.read())
    allow = proxy.log.wait(since=mark, event="allow", client=local)
    assert allow["sni"] == "api.allowed.test", allow


def test_hello_timeout(world, proxy):
    mark = proxy.log.mark()
    c, r = H.tunnel(proxy.port, API)
    with c:
        local = c.local
        c.send(b"\x16\x03\x01")  # the start of a record, then nothing
        t0 = time.monotonic()
        rest = c.recv_to_eof(timeout=10)
        waited = time.monotonic() - t0
    assert rest == b"\x15\x03\x03\x00\x02\x02\x31", rest
    assert 1.0 <= waited < 8, waited  # header_timeout_ms is 1500 here
    deny = proxy.log.wait(since=mark, event="deny", client=local)
    assert deny["reason"] == "hello_timeout", deny


def test_closed_before_a_byte_is_allowed_not_refused(world, proxy):
    mark = proxy.log.mark()
    c, r = H.tunnel(proxy.port, API)
    with c:
        local = c.local
    close = proxy.log.wait(since=mark, event="close", client=local)
    assert close["reason"] == "client_closed", close
    assert proxy.log.find(since=mark, event="allow", client=local)
    assert not proxy.log.find(since=mark, event="deny", client=local)


def test_report_mode_logs_and_lets_it_through(world, egressd_factory):
    e = _proxy(egressd_factory, "sni-report", mode="report")
    mark = e.log.mark()
    out, local = _https_get(world, e.port, "other.allowed.test", check=False)
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 200"), out
    deny = e.log.wait(since=mark, event="deny", client=local)
    assert deny["reason"] == "sni_mismatch" and deny["mode"] == "report", deny
    e.log.wait(since=mark, event="allow", client=local)


@pytest.mark.parametrize("rule,problem", [
    ('hosts = [ "a.test" ]; ports = [ 443 ]; tls = "maybe";',
     'tls: "maybe": use "require-sni-match" or "off"'),
    ('networks = [ "203.0.113.0/24" ]; ports = [ 443 ]; tls = "require-sni-match";',
     'needs hosts'),
])
def test_bad_tls_setting_names_file_and_line(world, tmp_path, rule, problem):
    conf = tmp_path / "egressd.conf"
    conf.write_text(H.render_config(H.free_port(), str(tmp_path / "log"),
                                    '  { name = "p"; rules = ( { %s } ); }' % rule))
    p = H.run_egressd("-t", "-c", str(conf))
    assert p.returncode != 0, p.stdout
    assert str(conf) in p.stderr and problem in p.stderr, p.stderr


def test_curl_reports_the_alert(world, proxy):
    """curl asked to CONNECT to one allowed name while its TLS names another
    (--connect-to): refused, and curl says why.  README quotes this message."""
    rc, body, code, err = H.curl(proxy.port, "https://api.allowed.test/", cacert=world.ca,
                                 extra=["--connect-to", "api.allowed.test:443:echo.allowed.test:443"])
    assert rc == 35 and code == 200, (rc, code, err)
    assert "alert access denied" in err, err
    proxy.log.wait(event="deny", reason="sni_mismatch", host="echo.allowed.test",
                   sni="api.allowed.test")
    print("\ncurl: %s" % err.strip())
