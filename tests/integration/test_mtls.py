"""TLS client certificates as identities (issue 5, part 1): a listener with
`tls` speaks TLS to its clients (an https:// proxy URL) and, with
identify = [ "tls-client-cert" ], takes the identity from the client
certificate: its SAN DNS names, then SAN URIs, then subject CN, against the
identities' tls_names (case-insensitive). No certificate: the handshake
succeeds, the request gets 403 no_identity. A certificate from another CA:
the handshake fails. A valid certificate that names no identity: 403
no_identity.

Skipped while egressd does not know the `tls` listener key yet."""

import os
import shutil
import socket
import ssl

import pytest

import harness as H
import service as S

API = "api.allowed.test:443"
GIT = "git.corp.test:443"

POLICIES = """  { name = "alpha";
    rules = (
      { name = "api"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; }
    );
  },
  { name = "beta";
    rules = (
      { name = "git"; hosts = [ "git.corp.test" ]; ports = [ 443 ];
        networks = [ "10.20.0.0/16" ]; }
    );
  }"""

SPIFFE_2 = "spiffe://cluster.local/ns/agents/sa/agent-2"
IDENTITIES = [
    S.identity_text("agent-dns", "alpha", tls_names=["agent-1.agents.test"]),
    S.identity_text("agent-uri", "beta", tls_names=[SPIFFE_2]),
    S.identity_text("agent-cn", "alpha", tls_names=["Agent-3-CN"]),
]


def _tls_listener(port):
    return ('{ address = "127.0.0.1"; port = %d; tls = { cert = "server.crt"; '
            'key = "server.key"; client_ca = "ca.crt"; }; identify = [ "tls-client-cert" ]; }'
            % port)


class Pki:
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The listener's CA and server certificate (ip:127.0.0.1), client
    certificates from that CA, and one from another CA."""
    p = Pki()
    p.dir = str(tmp_path_factory.mktemp("mtls-pki"))
    S.make_ca(p.dir, "ip:127.0.0.1")
    p.ca = os.path.join(p.dir, "ca.crt")
    mk = lambda name, *sans: S.make_client_cert(p.dir, name, *sans)  # noqa: E731
    # SAN DNS (in other case), SAN URI and CN all name identities: DNS wins
    p.dns = mk("c-dns", "dns:Agent-1.Agents.TEST", "uri:" + SPIFFE_2, "dns:zz.agents.test")
    p.dns_cn = S.make_client_cert(p.dir, "Agent-3-CN", "dns:agent-1.agents.test")
    # no DNS name that matches: the URI decides, before the CN
    p.uri = mk("c-uri", "dns:unknown.agents.test", "uri:" + SPIFFE_2.upper().replace(
        "SPIFFE://", "spiffe://"))
    p.uri_cn = S.make_client_cert(p.dir, "agent-3-cn", "uri:" + SPIFFE_2)
    # no SAN: the CN decides
    p.cn = S.make_client_cert(p.dir, "AGENT-3-cn")
    # valid, but names no identity
    p.nobody = mk("c-nobody", "dns:nobody.agents.test", "uri:spiffe://cluster.local/ns/x/sa/y")
    # another CA, same names
    other = os.path.join(p.dir, "other-ca")
    S.make_ca(other, "localhost")
    p.foreign = S.make_client_cert(other, "c-foreign", "dns:agent-1.agents.test")
    return p


@pytest.fixture
def mtls(world, egressd_factory, pki):
    e = egressd_factory("mtls", lambda port, log: S.render(
        port, log, POLICIES, identities=IDENTITIES, listen=_tls_listener(port)), start=False)
    for f in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(os.path.join(pki.dir, f), os.path.join(e.dir, f))
    rc, msg = S.check_config(e.conf)
    if rc != 0 and "unknown key" in msg:
        pytest.skip("egressd has no TLS listener yet: %s" % msg.strip())
    assert rc == 0, msg
    return e.start()


def tls_client(port, cert=None, ca=None, timeout=5.0):
    """A harness.Client over TLS to the proxy (an https:// proxy URL)."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c = H.Client.__new__(H.Client)
    try:
        c.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise
    c.sock.settimeout(timeout)
    c.buf, c.response = b"", None
    return c


def curl_https_proxy(world, pki, port, url, cert=None):
    extra = ["--proxy", "https://127.0.0.1:%d" % port, "--proxy-cacert", pki.ca]
    if cert:
        extra += ["--proxy-cert", cert[0], "--proxy-key", cert[1]]
    return H.curl(port, url, cacert=world.ca, extra=extra)


def _identity_of(e, pki, cert, target=API):
    mark = e.log.mark()
    c = tls_client(e.port, cert, pki.ca)
    with c:
        c.send(H.connect_req(target))
        r = c.read_response()
        local = c.local
    line = e.log.wait(since=mark, client=local, pred=lambda l: l["event"] in ("allow", "deny"))
    return r, line


def test_client_certificate_allowed(world, pki, mtls):
    e = mtls
    mark = e.log.mark()
    rc, body, code, err = curl_https_proxy(world, pki, e.port, "https://api.allowed.test/",
                                           cert=pki.dns)
    assert rc == 0 and code == 200, (rc, code, err)
    assert "upstream api" in body
    allow = e.log.wait(since=mark, event="allow", host="api.allowed.test")
    assert allow["identity"] == "agent-dns" and allow["policy"] == "alpha", allow
    close = e.log.wait(since=mark, event="close", conn=allow["conn"])
    assert close["identity"] == "agent-dns", close


@pytest.mark.parametrize("which,identity,policy", [
    ("dns", "agent-dns", "alpha"),  # SAN DNS over SAN URI, case-insensitive
    ("dns_cn", "agent-dns", "alpha"),  # SAN DNS over the CN
    ("uri", "agent-uri", "beta"),  # SAN URI when no DNS name matches
    ("uri_cn", "agent-uri", "beta"),  # SAN URI over the CN
    ("cn", "agent-cn", "alpha"),  # no SAN: the CN, case-insensitive
])
def test_certificate_names_choose_identity(world, pki, mtls, which, identity, policy):
    e = mtls
    r, line = _identity_of(e, pki, getattr(pki, which),
                           API if policy == "alpha" else GIT)
    assert r.status == 200, r
    assert line["event"] == "allow", line
    assert line["identity"] == identity and line["policy"] == policy, line


def test_different_identities_different_verdicts(world, pki, mtls, watch):
    e = mtls
    w = watch([world.git])
    r, line = _identity_of(e, pki, pki.uri, API)
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", API, "beta")
    assert line["identity"] == "agent-uri" and line["reason"] == "host_not_allowed", line
    w.assert_nothing()


def test_no_client_certificate(world, pki, mtls, watch):
    """The handshake succeeds without a certificate; the request has no
    identity: 403 no_identity (never 407: credentials would not help)."""
    e = mtls
    w = watch()
    r, line = _identity_of(e, pki, None)
    S.assert_answer(r, 403, "http_request_denied", "no_identity", API)
    assert line["event"] == "deny" and line["identity"] is None, line
    assert line["reason"] == "no_identity" and line["status"] == 403, line
    rc, _b, code, _err = curl_https_proxy(world, pki, e.port, "https://api.allowed.test/")
    assert rc != 0 and code == 403, (rc, code)
    w.assert_nothing()


def test_certificate_naming_no_identity(world, pki, mtls, watch):
    e = mtls
    w = watch()
    r, line = _identity_of(e, pki, pki.nobody)
    S.assert_answer(r, 403, "http_request_denied", "no_identity", API)
    assert line["identity"] is None and line["reason"] == "no_identity", line
    w.assert_nothing()


def test_certificate_from_another_ca(world, pki, mtls, watch):
    e = mtls
    w = watch()
    mark = e.log.mark()
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError,
                        AssertionError)):
        # TLS 1.3: the server's refusal may only show at the first read
        c = tls_client(e.port, pki.foreign, pki.ca)
        with c:
            c.send(H.connect_req(API))
            c.read_response()
    rc, _b, code, _err = curl_https_proxy(world, pki, e.port, "https://api.allowed.test/",
                                          cert=pki.foreign)
    assert rc != 0 and code == 0, (rc, code)
    w.assert_nothing()
    assert not e.log.find(since=mark, event="allow")
    assert e.alive()


def test_plain_client_on_tls_listener(world, pki, mtls, watch):
    """A client that does not speak TLS gets no tunnel."""
    e = mtls
    w = watch()
    with H.Client(e.port) as c:
        c.send(H.connect_req(API))
        try:
            data = c.recv_to_eof(timeout=5)
        except (AssertionError, OSError):
            data = b""
    assert not data.startswith(b"HTTP/1.1 200"), data
    w.assert_nothing()


def test_head_in_records_then_tunnel_bytes(world, pki, mtls):
    """A head sent in TLS records of a few bytes each is one request, and
    the tunnel's first bytes, in the head's last record, reach the upstream:
    its TLS server answers the ClientHello they carry."""
    e = mtls
    out = ssl.MemoryBIO()
    inner = ssl.create_default_context(cafile=world.ca).wrap_bio(
        ssl.MemoryBIO(), out, server_hostname="api.allowed.test")
    with pytest.raises(ssl.SSLWantReadError):
        inner.do_handshake()
    hello = out.read()
    assert hello[:1] == b"\x16", hello[:16]
    head = H.connect_req(API)
    c = tls_client(e.port, pki.dns, pki.ca)
    with c:
        for i in range(0, len(head) - 1, 5):
            c.send(head[i:min(i + 5, len(head) - 1)])
            H.time.sleep(0.01)
        c.send(head[-1:] + hello)
        assert c.read_head() == b"HTTP/1.1 200 Connection established"
        d = H.Deadline(5)
        while len(c.buf) < 5 and not d.expired():
            b = c.sock.recv(65536)
            assert b, "the tunnel closed before the upstream answered: %r" % c.buf
            c.buf += b
        # a TLS handshake record: the upstream's ServerHello
        assert c.buf[:1] == b"\x16", c.buf[:16]
