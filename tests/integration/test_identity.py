"""Client identities choose the policy (issue 5, part 1): Proxy-Authorization
(Basic, Bearer) checked against a credentials file made by
`egressd --hash-secret`, and source CIDRs. Wrong credentials: 407
auth_failed, never a fall-through to another method; none: 407
auth_required (or 403 no_identity on a listener without proxy-auth). The
identity is on every log line; the credentials never are."""

import base64
import os

import pytest

import harness as H
import service as S

API = "api.allowed.test:443"
GIT = "git.corp.test:443"

BASIC_SECRET = "Basic-s3cret-of-agent-1!"
BEARER_TOKEN = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OTHER_BASIC = "the-other-one's-password"
SECRETS = [BASIC_SECRET, BEARER_TOKEN, OTHER_BASIC]

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

IDENTITIES = [
    S.identity_text("agent-1", "alpha"),  # Basic
    S.identity_text("agent-2", "beta"),  # Bearer
    S.identity_text("agent-3", "beta"),  # Basic, another password
    S.identity_text("src-a", "alpha", sources=[S.SRC_A + "/32"]),
    S.identity_text("src-b", "beta", sources=["127.0.0.3/32", "10.99.0.0/16"]),
]


class Ids:
    pass


@pytest.fixture
def ids(world, egressd_factory):
    """One egressd, four listeners: proxy-auth only (port), source only
    (src_port), proxy-auth then source (both_port), source then proxy-auth
    (src_first_port)."""
    x = Ids()
    x.src_port = H.free_port()
    x.both_port = H.free_port()
    x.src_first_port = H.free_port()

    def config(port, log):
        creds = S.write_credentials(os.path.dirname(log), [
            ("agent-1", "basic", BASIC_SECRET),
            ("agent-2", "bearer", BEARER_TOKEN),
            ("agent-3", "basic", OTHER_BASIC),
        ])
        listen = ", ".join('{ address = "127.0.0.1"; port = %d; identify = [ %s ]; }' % lp
                           for lp in ((port, '"proxy-auth"'), (x.src_port, '"source"'),
                                      (x.both_port, '"proxy-auth", "source"'),
                                      (x.src_first_port, '"source", "proxy-auth"')))
        return S.render(port, log, POLICIES, identities=IDENTITIES, credentials=creds,
                        listen=listen)
    x.e = egressd_factory("identity", config)
    H.wait_until(lambda: all(H.listening(p) for p in (x.src_port, x.both_port,
                                                      x.src_first_port)), 5,
                 what="every listener")
    x.port = x.e.port
    return x


def _auth_line(e, mark, client, reason, status=407):
    line = e.log.wait(since=mark, event="deny", client=client)
    assert line["reason"] == reason and line["status"] == status, line
    assert "identity" in line and line["identity"] is None, line
    assert line["method"] == "CONNECT", line
    return line


# ---------------------------------------------------------------- Basic


def test_basic_allowed_with_curl(world, ids):
    e = ids.e
    mark = e.log.mark()
    rc, body, code, err = H.curl(ids.port, "https://api.allowed.test/", cacert=world.ca,
                                 extra=["--proxy-user", "agent-1:" + BASIC_SECRET])
    assert rc == 0 and code == 200, (rc, code, err)
    assert "upstream api" in body
    allow = e.log.wait(since=mark, event="allow", host="api.allowed.test")
    assert allow["identity"] == "agent-1" and allow["policy"] == "alpha", allow
    assert allow["rule"] == "api", allow
    close = e.log.wait(since=mark, event="close", conn=allow["conn"])
    assert close["identity"] == "agent-1" and close["status"] == 200, close


def test_basic_wrong_password(world, ids, watch):
    e = ids.e
    w = watch()
    mark = e.log.mark()
    rc, _body, code, _err = H.curl(ids.port, "https://api.allowed.test/", cacert=world.ca,
                                   extra=["--proxy-user", "agent-1:not-the-password"])
    assert rc != 0 and code == 407, (rc, code)
    for auth in (S.basic("agent-1", "not-the-password"),
                 S.basic("agent-1", BASIC_SECRET[:-1]),
                 S.basic("agent-3", BASIC_SECRET),  # another identity's password
                 S.basic("agent-2", BEARER_TOKEN),  # a bearer credential used as Basic
                 S.basic("nobody", BASIC_SECRET),
                 b"Basic " + base64.b64encode(BASIC_SECRET.encode()),  # no user:
                 b"Basic !!!notbase64",
                 b"Digest username=\"agent-1\""):
        r = S.request(ids.port, S.connect_req(API, auth))
        S.assert_answer(r, 407, "http_request_denied", "auth_failed", API)
        _auth_line(e, mark, r.client, "auth_failed")
    w.assert_nothing()


def test_basic_and_bearer_absent(world, ids, watch):
    e = ids.e
    w = watch()
    dmark = world.dns.mark()
    mark = e.log.mark()
    rc, _body, code, _err = H.curl(ids.port, "https://api.allowed.test/", cacert=world.ca)
    assert rc != 0 and code == 407, (rc, code)
    r = S.request(ids.port, S.connect_req(API))
    S.assert_answer(r, 407, "http_request_denied", "auth_required", API)
    _auth_line(e, mark, r.client, "auth_required")
    # refused before DNS and before any connection
    assert "api.allowed.test" not in world.dns.queries_since(dmark)
    w.assert_nothing()


def test_basic_identity_on_plain_http(world, ids):
    """A forwarded request gets its identity too, and Proxy-Authorization
    is not passed on."""
    e = ids.e
    n = len(world.http_requests)
    mark = e.log.mark()
    rc, body, _code, err = H.curl(ids.port, "http://%s/who" % H.ADDR_API,
                                  extra=["--proxy-user", "agent-1:" + BASIC_SECRET])
    assert rc == 0 and "GET /who" in body, (rc, body, err)
    allow = e.log.wait(since=mark, event="allow", host=H.ADDR_API, method="GET")
    assert allow["identity"] == "agent-1" and allow["policy"] == "alpha", allow
    got = world.http_requests[n:]
    assert len(got) == 1 and not got[0].header("proxy-authorization"), got


# ---------------------------------------------------------------- Bearer


def test_bearer_allowed(world, ids):
    e = ids.e
    mark = e.log.mark()
    rc, body, code, err = H.curl(ids.port, "https://git.corp.test/", cacert=world.ca,
                                 extra=["--proxy-header",
                                        "Proxy-Authorization: Bearer " + BEARER_TOKEN])
    assert rc == 0 and code == 200, (rc, code, err)
    assert "upstream git" in body
    allow = e.log.wait(since=mark, event="allow", host="git.corp.test")
    assert allow["identity"] == "agent-2" and allow["policy"] == "beta", allow
    # the scheme is case-insensitive (RFC 9110 11.1)
    c, r = S.tunnel(ids.port, GIT, auth=b"bearer " + BEARER_TOKEN.encode())
    c.close()
    assert r.status == 200, r


def test_bearer_wrong_token(world, ids, watch):
    e = ids.e
    w = watch()
    mark = e.log.mark()
    rc, _body, code, _err = H.curl(ids.port, "https://git.corp.test/", cacert=world.ca,
                                   extra=["--proxy-header",
                                          "Proxy-Authorization: Bearer " + BEARER_TOKEN + "x"])
    assert rc != 0 and code == 407, (rc, code)
    for auth in (S.bearer(BEARER_TOKEN[:-1]), S.bearer(BEARER_TOKEN.upper()),
                 S.bearer(BASIC_SECRET),  # a Basic password used as a token
                 b"Bearer ", b"Bearer"):
        r = S.request(ids.port, S.connect_req(GIT, auth))
        S.assert_answer(r, 407, "http_request_denied", "auth_failed", GIT)
        _auth_line(e, mark, r.client, "auth_failed")
    w.assert_nothing()


def test_two_identities_two_verdicts(world, ids, watch):
    """Same listener, same destination: agent-1 (alpha) is let through,
    agent-2 (beta) is refused by its policy."""
    e = ids.e
    mark = e.log.mark()
    n = world.api.count()
    c, r = S.tunnel(ids.port, API, auth=S.basic("agent-1", BASIC_SECRET))
    c.close()
    assert r.status == 200, r
    H.wait_until(lambda: world.api.count() > n, 3, what="the tunnel's upstream connection")
    w = watch()
    r = S.request(ids.port, S.connect_req(API, S.bearer(BEARER_TOKEN)))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", API, "beta")
    deny = e.log.wait(since=mark, event="deny", client=r.client)
    assert deny["identity"] == "agent-2" and deny["policy"] == "beta", deny
    assert deny["reason"] == "host_not_allowed", deny
    # and the other way round
    r = S.request(ids.port, S.connect_req(GIT, S.basic("agent-1", BASIC_SECRET)))
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", GIT, "alpha")
    w.assert_nothing()


# ---------------------------------------------------------------- source


def test_source_identity(world, ids, watch):
    e = ids.e
    mark = e.log.mark()
    rc, body, code, err = H.curl(ids.src_port, "https://api.allowed.test/", cacert=world.ca,
                                 extra=["--interface", S.SRC_A])
    assert rc == 0 and code == 200, (rc, code, err)
    assert "upstream api" in body
    allow = e.log.wait(since=mark, event="allow", host="api.allowed.test")
    assert allow["identity"] == "src-a" and allow["policy"] == "alpha", allow
    assert allow["client"].startswith(S.SRC_A + ":"), allow
    # another source, another identity, another verdict for the same destination
    w = watch()
    r = S.request(ids.src_port, S.connect_req(API), src=S.SRC_B)
    H.assert_refusal(r, "http_request_denied", "host_not_allowed", API, "beta")
    deny = e.log.wait(since=mark, event="deny", client=r.client)
    assert deny["identity"] == "src-b" and deny["policy"] == "beta", deny
    w.assert_nothing()
    c, r = S.tunnel(ids.src_port, GIT, src=S.SRC_B)
    c.close()
    assert r.status == 200, r


def test_source_no_identity(world, ids, watch):
    """A source in no identity's networks: 403 no_identity, never 407 (the
    listener does not ask for credentials); credentials change nothing."""
    e = ids.e
    w = watch()
    dmark = world.dns.mark()
    mark = e.log.mark()
    for src, auth in ((S.SRC_NONE, None), ("127.0.0.1", None),
                      (S.SRC_NONE, S.basic("agent-1", BASIC_SECRET))):
        r = S.request(ids.src_port, S.connect_req(API, auth), src=src)
        S.assert_answer(r, 403, "http_request_denied", "no_identity", API)
        line = _auth_line(e, mark, r.client, "no_identity", status=403)
        assert line["client"].startswith(src + ":"), line
    rc, _b, code, _err = H.curl(ids.src_port, "https://api.allowed.test/", cacert=world.ca,
                                extra=["--interface", S.SRC_NONE])
    assert rc != 0 and code == 403, (rc, code)
    assert "api.allowed.test" not in world.dns.queries_since(dmark)
    w.assert_nothing()


# ---------------------------------------------------------------- both, in order


def test_proxy_auth_then_source(world, ids, watch):
    e = ids.e
    mark = e.log.mark()
    seen = (world.git.count(), world.api.count())
    # credentials win over the source
    # (the tunnels send no TLS hello: their decision lines come as they close)
    c, r = S.tunnel(ids.both_port, GIT, auth=S.bearer(BEARER_TOKEN), src=S.SRC_A)
    with c:
        assert r.status == 200, r
        local = c.local
        assert local.startswith(S.SRC_A + ":")
    allow = e.log.wait(since=mark, event="allow", client=local)
    assert allow["identity"] == "agent-2", allow
    # no credentials: the source decides
    c, r = S.tunnel(ids.both_port, API, src=S.SRC_A)
    with c:
        assert r.status == 200, r
        local = c.local
    allow = e.log.wait(since=mark, event="allow", client=local)
    assert allow["identity"] == "src-a", allow
    H.wait_until(lambda: world.git.count() > seen[0] and world.api.count() > seen[1], 3,
                 what="the tunnels' upstream connections")
    w = watch()
    # wrong credentials never fall through to the source's identity
    r = S.request(ids.both_port, S.connect_req(API, S.basic("agent-1", "wrong")), src=S.SRC_A)
    S.assert_answer(r, 407, "http_request_denied", "auth_failed", API)
    _auth_line(e, mark, r.client, "auth_failed")
    # neither: proxy-auth is among the methods, so 407 auth_required
    r = S.request(ids.both_port, S.connect_req(API), src=S.SRC_NONE)
    S.assert_answer(r, 407, "http_request_denied", "auth_required", API)
    _auth_line(e, mark, r.client, "auth_required")
    w.assert_nothing()


def test_source_then_proxy_auth(world, ids, watch):
    """The source comes first, yet credentials that are sent are checked:
    wrong ones get 407 auth_failed although the source names an identity."""
    e = ids.e
    mark = e.log.mark()
    seen = world.api.count()
    # no credentials: the source decides
    c, r = S.tunnel(ids.src_first_port, API, src=S.SRC_A)
    with c:
        assert r.status == 200, r
        local = c.local
    allow = e.log.wait(since=mark, event="allow", client=local)
    assert allow["identity"] == "src-a", allow
    # right credentials of another identity: the first method that names
    # one decides, here the source
    c, r = S.tunnel(ids.src_first_port, API, auth=S.bearer(BEARER_TOKEN), src=S.SRC_A)
    with c:
        assert r.status == 200, r
        local = c.local
    allow = e.log.wait(since=mark, event="allow", client=local)
    assert allow["identity"] == "src-a", allow
    H.wait_until(lambda: world.api.count() >= seen + 2, 3,
                 what="the tunnels' upstream connections")
    w = watch()
    for auth in (S.basic("agent-1", "wrong"), S.bearer(BEARER_TOKEN + "x")):
        r = S.request(ids.src_first_port, S.connect_req(API, auth), src=S.SRC_A)
        S.assert_answer(r, 407, "http_request_denied", "auth_failed", API)
        _auth_line(e, mark, r.client, "auth_failed")
    # neither: 407 auth_required
    r = S.request(ids.src_first_port, S.connect_req(API), src=S.SRC_NONE)
    S.assert_answer(r, 407, "http_request_denied", "auth_required", API)
    _auth_line(e, mark, r.client, "auth_required")
    w.assert_nothing()


# ---------------------------------------------------------------- the log


def test_identity_on_every_line_and_no_secret_in_log(world, ids):
    e = ids.e
    mark = e.log.mark()
    rc, _b, code, err = H.curl(ids.port, "https://api.allowed.test/", cacert=world.ca,
                               extra=["--proxy-user", "agent-1:" + BASIC_SECRET])
    assert rc == 0 and code == 200, (rc, code, err)
    rc, _b, code, _err = H.curl(ids.port, "https://api.allowed.test/", cacert=world.ca,
                                extra=["--proxy-user", "agent-1:" + OTHER_BASIC])
    assert code == 407, code
    c, r = S.tunnel(ids.port, GIT, auth=S.bearer(BEARER_TOKEN))
    with c:
        assert r.status == 200, r
    for secret in SECRETS:  # wrong ones too: a typo of a secret is nearly the secret
        S.request(ids.port, S.connect_req(API, S.bearer(secret + "x")))
        S.request(ids.port, S.connect_req(API, S.basic("agent-3", secret + "x")))
    # plain HTTP with credentials, refused by the policy
    S.request(ids.port, b"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n"
              b"Proxy-Authorization: " + S.basic("agent-1", BASIC_SECRET) + b"\r\n\r\n")
    e.log.wait(since=mark, event="deny", host="denied.test", method="GET")
    H.wait_until(lambda: len(e.log.find(since=mark, event="close")) >= 10, 5,
                 what="a close line for every request")

    lines = e.log.since(mark)
    for l in lines:
        if l["event"] in ("allow", "deny", "close", "error"):
            assert "identity" in l, "line without identity: %r" % l
    assert {l["identity"] for l in lines if l["event"] == "allow"} == {"agent-1", "agent-2"}

    raw = open(e.log_path, "rb").read() + open(e.out_path, "rb").read() + \
        open(e.err_path, "rb").read()
    needles = []
    for s in SECRETS:
        needles += [s, s + "x"]
        for user in ("agent-1", "agent-2", "agent-3"):
            for sec in (s, s + "x"):
                needles.append(base64.b64encode(("%s:%s" % (user, sec)).encode()).decode())
    for n in needles:
        assert n.encode() not in raw, "a credential is in egressd's log or output: %r" % n
    # the credentials file holds salted hashes, not the secrets
    creds = open(os.path.join(e.dir, "credentials")).read()
    for s in SECRETS:
        assert s not in creds


def test_credentials_rotation_by_reload(world, ids):
    """docs/config.md: add the new line, reload, move the clients, remove
    the old line, reload."""
    e = ids.e
    new_token = "tok_rotated_0123456789abcdef0123456789"
    old_lines = open(os.path.join(e.dir, "credentials")).read()
    with open(os.path.join(e.dir, "credentials"), "a") as f:
        f.write(S.hash_secret("agent-2", "bearer", new_token) + "\n")
    text = open(e.conf).read()
    mark = e.log.mark()
    e.reload(text)
    e.log.wait(since=mark, event="reload", timeout=5)
    for token in (BEARER_TOKEN, new_token):  # both work meanwhile
        c, r = S.tunnel(ids.port, GIT, auth=S.bearer(token))
        c.close()
        assert r.status == 200, (token, r)
    with open(os.path.join(e.dir, "credentials"), "w") as f:
        f.write("".join(l + "\n" for l in old_lines.splitlines()
                        if not l.startswith("agent-2 ")))
        f.write(S.hash_secret("agent-2", "bearer", new_token) + "\n")
    mark = e.log.mark()
    e.reload(text)
    e.log.wait(since=mark, event="reload", timeout=5)
    r = S.request(ids.port, S.connect_req(GIT, S.bearer(BEARER_TOKEN)))
    S.assert_answer(r, 407, "http_request_denied", "auth_failed", GIT)
    c, r = S.tunnel(ids.port, GIT, auth=S.bearer(new_token))
    c.close()
    assert r.status == 200, r
    # a broken credentials file changes nothing
    with open(os.path.join(e.dir, "credentials"), "a") as f:
        f.write("agent-2 bearer nothex nothex\n")
    mark = e.log.mark()
    e.reload(text)
    err = e.log.wait(since=mark, event="error", reason="reload_failed", timeout=5)
    assert "credentials" in err.get("message", ""), err
    c, r = S.tunnel(ids.port, GIT, auth=S.bearer(new_token))
    c.close()
    assert r.status == 200, r
    assert new_token.encode() not in open(e.log_path, "rb").read()
