"""TLS client certificates as identities (issue 5, part 1): a listener with
`tls` speaks TLS to its clients (an https:// proxy URL) and, with
identify = [ "tls-client-cert" ], takes the identity from the client
certificate: its SAN DNS names, then SAN URIs, against the identities'
tls_names (case-insensitive); the subject CN only when the certificate has no
subjectAltName (issue 18). No certificate: the handshake succeeds, the
request gets 403 no_identity. A certificate from another CA: the handshake
fails. A valid certificate that names no identity: 403 no_identity. With
proxy-auth too, wrong credentials get 407 whatever the certificate says.
Sessions resume (issue 18): a resumed session keeps the identity of the
certificate it was made with, on the listener that made it.

Skipped while egressd does not know the `tls` listener key yet."""

import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess

import pytest

import harness as H
import service as S

API = "api.allowed.test:443"
GIT = "git.corp.test:443"

POLICIES = """  { name = "alpha";
    rules = (
      { name = "api"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "api-plain"; networks = [ "198.51.100.10/32" ]; ports = [ 80 ]; }
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

    def mk_cn(sub, *sans):
        """The CN of agent-cn, in a directory of its own (one file a CN)."""
        d = os.path.join(p.dir, sub)
        os.makedirs(d)
        for f in ("ca.crt", "ca.key"):
            shutil.copy(os.path.join(p.dir, f), d)
        return S.make_client_cert(d, "Agent-3-CN", *sans)
    # a SAN of any kind, naming no identity: the CN is not looked at
    p.san_dns_cn = mk_cn("san-dns", "dns:unknown-name.example")
    p.san_ip_cn = mk_cn("san-ip", "ip:127.0.0.9")
    p.san_email_cn = mk_cn("san-email", "email:agent-3@agents.test")
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


def curl_https_proxy(world, pki, port, url, cert=None, extra=()):
    extra = ["--proxy", "https://127.0.0.1:%d" % port, "--proxy-cacert", pki.ca] + list(extra)
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


@pytest.mark.parametrize("which", ["san_dns_cn", "san_ip_cn", "san_email_cn"])
def test_cn_not_used_with_a_san(world, pki, mtls, watch, which):
    """RFC 6125 6.4.4: the subject CN names the holder only of a certificate
    without subjectAltName. Here the CN names agent-cn, the SAN nobody."""
    e = mtls
    w = watch()
    r, line = _identity_of(e, pki, getattr(pki, which))
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


# ---------------------------------------------------------------- resumption

PLAIN_GET = (b"GET http://%s/resume HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
             % (H.ADDR_API.encode(), H.ADDR_API.encode()))


def s_client(port, pki, version, cert=None, sess_out=None, sess_in=None):
    """openssl s_client to the proxy: one plain-HTTP GET with Connection:
    close, read until egressd closes. version: "tls1_2", "tls1_3", or
    "tls1_2 -no_ticket" (a session id the server keeps, not a ticket).
    Returns ("New"|"Reused"|None, the answer's status or None, the whole
    output)."""
    version, *flags = version.split()
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-" + version,
           "-CAfile", pki.ca, "-verify_return_error", "-ign_eof"] + flags
    if cert:
        cmd += ["-cert", cert[0], "-key", cert[1]]
    if sess_out:
        cmd += ["-sess_out", sess_out]
    if sess_in:
        cmd += ["-sess_in", sess_in]
    p = subprocess.run(cmd, input=PLAIN_GET, capture_output=True, timeout=10 * H.SLOW)
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    m = re.search(r"^(New|Reused), (TLSv1\.[23])", out, re.M)
    assert not m or m.group(2) == {"tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}[version], out
    # (not at a line's start: s_client's own lines and the answer interleave)
    st = re.search(r"HTTP/1\.1 (\d{3}) ", out)
    return (m.group(1) if m else None), (int(st.group(1)) if st else None), out


def _plain_line(e, mark):
    return e.log.wait(since=mark, host=H.ADDR_API, method="GET",
                      pred=lambda l: l["event"] in ("allow", "deny"))


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_session_resumption_keeps_identity(world, pki, mtls, tmp_path, version):
    """A session resumes, and a resumed session is the certificate it was
    made with: offering another certificate with it changes nothing (the
    server asks for none on resumption)."""
    e = mtls
    dns_sess, uri_sess, none_sess = (str(tmp_path / n) for n in ("dns", "uri", "none"))
    for cert, sess, status, identity in ((pki.dns, dns_sess, 200, "agent-dns"),
                                         (pki.uri, uri_sess, 403, "agent-uri"),
                                         (None, none_sess, 403, None)):
        mark = e.log.mark()
        how, got, out = s_client(e.port, pki, version, cert, sess_out=sess)
        assert (how, got) == ("New", status), out
        assert _plain_line(e, mark)["identity"] == identity
        assert os.path.getsize(sess) > 0, out
    # each session offered with the certificate of agent-dns (alpha: 200)
    for sess, status, identity in ((dns_sess, 200, "agent-dns"),
                                   (uri_sess, 403, "agent-uri"),  # beta: not allowed
                                   (none_sess, 403, None)):
        mark = e.log.mark()
        how, got, out = s_client(e.port, pki, version, pki.dns, sess_in=sess)
        assert (how, got) == ("Reused", status), out
        line = _plain_line(e, mark)
        assert line["identity"] == identity, line
        if identity is None:
            assert line["reason"] == "no_identity", line
    assert e.alive()


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_session_not_resumed_after_reload(world, pki, mtls, tmp_path, version):
    """A reload builds a new TLS context: a session from before it is not
    taken, and the certificate presented now is checked again."""
    e = mtls
    sess = str(tmp_path / "sess")
    how, got, out = s_client(e.port, pki, version, pki.uri, sess_out=sess)
    assert (how, got) == ("New", 403), out
    # egressd reloads as the sandbox user: the key must be its to read
    pw = pwd.getpwnam(H.SANDBOX_USER)
    os.chown(os.path.join(e.dir, "server.key"), pw.pw_uid, pw.pw_gid)
    mark = e.log.mark()
    e.reload(open(e.conf).read())
    e.log.wait(since=mark, event="reload", timeout=5)
    mark = e.log.mark()
    how, got, out = s_client(e.port, pki, version, pki.dns, sess_in=sess)
    assert (how, got) == ("New", 200), out
    assert _plain_line(e, mark)["identity"] == "agent-dns"


def test_session_without_ticket(world, pki, mtls, tmp_path):
    """Sessions resume by ticket only: a TLS 1.2 client that takes no ticket
    gets an empty session id, so it has nothing to offer, and its next
    connection is a full handshake with the certificate presented then."""
    e = mtls
    sess = str(tmp_path / "sess")
    how, got, out = s_client(e.port, pki, "tls1_2 -no_ticket", pki.uri, sess_out=sess)
    assert (how, got) == ("New", 403), out
    assert re.search(r"^ *Session-ID: *$", out, re.M), out
    assert not os.path.exists(sess), out
    mark = e.log.mark()
    how, got, out = s_client(e.port, pki, "tls1_2 -no_ticket", pki.dns)
    assert (how, got) == ("New", 200), out
    assert _plain_line(e, mark)["identity"] == "agent-dns"


def test_session_resumption_with_curl(world, pki, mtls):
    """curl keeps the proxy's TLS session and offers it on each new
    connection (the upstreams answer Connection: close)."""
    e = mtls
    mark = e.log.mark()
    url = "https://api.allowed.test/"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    cmd = ["curl", "-sS", "-v", "--max-time", "10", "--noproxy", "",
           "--proxy", "https://127.0.0.1:%d" % e.port, "--proxy-cacert", pki.ca,
           "--proxy-cert", pki.dns[0], "--proxy-key", pki.dns[1], "--cacert", world.ca,
           "-H", "Connection: close", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
           "-w", "EGRESSD-IT %{exitcode} %{http_code} %{num_connects}\n", url, url, url]
    p = subprocess.run(cmd, capture_output=True, timeout=30 * H.SLOW, env=env)
    out, err = p.stdout.decode(), p.stderr.decode("utf-8", "replace")
    results = re.findall(r"^EGRESSD-IT (\d+) (\d+) (\d+)$", out, re.M)
    assert results == [("0", "200", "1")] * 3, (results, err)
    assert p.returncode == 0, err
    # the second and third connections offered the first one's session
    assert len(re.findall(r"SSL re-using session ID", err)) >= 2, err
    lines = e.log.find(since=mark, event="allow", host="api.allowed.test")
    assert [l["identity"] for l in lines] == ["agent-dns"] * 3, lines


@pytest.fixture
def mtls_two(world, egressd_factory, pki):
    """Two TLS listeners with the same certificate, key and client CA."""
    second = H.free_port()
    e = egressd_factory("mtls-two", lambda port, log: S.render(
        port, log, POLICIES, identities=IDENTITIES,
        listen=_tls_listener(port) + ", " + _tls_listener(second)), start=False)
    for f in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(os.path.join(pki.dir, f), os.path.join(e.dir, f))
    e.start()
    H.wait_until(lambda: H.listening(second), 5, what="the second listener")
    e.second_port = second
    return e


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_session_not_resumed_on_another_listener(world, pki, mtls_two, tmp_path, version):
    """A session belongs to the listener that made it: offered to another
    one, a full handshake takes the certificate presented there."""
    e = mtls_two
    sess = str(tmp_path / "sess")
    how, got, out = s_client(e.port, pki, version, pki.uri, sess_out=sess)
    assert (how, got) == ("New", 403), out
    mark = e.log.mark()
    how, got, out = s_client(e.second_port, pki, version, pki.dns, sess_in=sess)
    assert (how, got) == ("New", 200), out
    assert _plain_line(e, mark)["identity"] == "agent-dns"
    # still good where it was made
    how, got, out = s_client(e.port, pki, version, pki.dns, sess_in=sess)
    assert (how, got) == ("Reused", 403), out


# ---------------------------------------------------------------- with proxy-auth

BASIC_SECRET = "pw-of-agent-dns"
BEARER_TOKEN = "tok_agent_uri_0123456789abcdef"


@pytest.fixture
def mtls_auth(world, egressd_factory, pki):
    """identify = [ "tls-client-cert", "proxy-auth" ]: agent-dns has a
    Basic password, agent-uri a bearer token."""
    def config(port, log):
        creds = S.write_credentials(os.path.dirname(log), [
            ("agent-dns", "basic", BASIC_SECRET), ("agent-uri", "bearer", BEARER_TOKEN)])
        listen = _tls_listener(port).replace('"tls-client-cert"',
                                             '"tls-client-cert", "proxy-auth"')
        return S.render(port, log, POLICIES, identities=IDENTITIES, credentials=creds,
                        listen=listen)
    e = egressd_factory("mtls-auth", config, start=False)
    for f in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(os.path.join(pki.dir, f), os.path.join(e.dir, f))
    return e.start()


def _answer(e, pki, cert, target, auth=None):
    mark = e.log.mark()
    c = tls_client(e.port, cert, pki.ca)
    with c:
        c.send(S.connect_req(target, auth))
        r = c.read_response()
        local = c.local
    line = e.log.wait(since=mark, client=local, pred=lambda l: l["event"] in ("allow", "deny"))
    return r, line


def test_certificate_with_wrong_credentials(world, pki, mtls_auth, watch):
    """A credential that is sent and wrong is refused (407 auth_failed),
    although the certificate, tried first, names an identity."""
    e = mtls_auth
    w = watch()
    for auth in (S.basic("agent-dns", "wrong"), S.basic("agent-dns", BASIC_SECRET + "x"),
                 S.bearer(BEARER_TOKEN[:-1]), b"Digest username=\"agent-dns\""):
        r, line = _answer(e, pki, pki.dns, API, auth)
        S.assert_answer(r, 407, "http_request_denied", "auth_failed", API)
        assert line["identity"] is None and line["reason"] == "auth_failed", line
    rc, _b, code, _err = curl_https_proxy(world, pki, e.port, "https://api.allowed.test/",
                                          cert=pki.dns, extra=["--proxy-user", "agent-dns:wrong"])
    assert rc != 0 and code == 407, (rc, code)
    w.assert_nothing()


def test_certificate_then_credentials(world, pki, mtls_auth):
    e = mtls_auth
    # the certificate alone, or with its own identity's credentials
    for auth in (None, S.basic("agent-dns", BASIC_SECRET)):
        r, line = _answer(e, pki, pki.dns, API, auth)
        assert r.status == 200, r
        assert line["identity"] == "agent-dns", line
    # the certificate comes first: right credentials of another identity
    # change nothing
    r, line = _answer(e, pki, pki.dns, API, S.bearer(BEARER_TOKEN))
    assert r.status == 200 and line["identity"] == "agent-dns", (r, line)
    # no certificate, or one that names nobody: the credentials decide
    for cert in (None, pki.nobody):
        r, line = _answer(e, pki, cert, GIT, S.bearer(BEARER_TOKEN))
        assert r.status == 200 and line["identity"] == "agent-uri", (r, line)
        r, line = _answer(e, pki, cert, API)
        S.assert_answer(r, 407, "http_request_denied", "auth_required", API)
        assert line["reason"] == "auth_required", line


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
