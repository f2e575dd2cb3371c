"""Gateway mode (issue 12): the agent speaks plain HTTP to egressd's gateway
listener with a low-value token; egressd checks the path, finds the route,
opens verified TLS to the origin and adds the real credential, which the
agent never holds.

Servers (in run.sh's namespace, started by this module):
  llm.gateway.test      198.51.100.15:443   fake LLM API over TLS (records what it got)
  git.gateway.test      198.51.100.15:8443  git http-backend over TLS, wants the real token
  badcert.gateway.test  198.51.100.15:9443  TLS with a certificate for other names
"""

import base64
import http.client
import json
import os
import socket
import subprocess
import time

import pytest

import harness as H
import service as S

REAL_LLM_KEY = "sk-real-llm-4f2a9c0e7b"
REAL_OPENAI_KEY = "sk-real-openai-77d1e0"
REAL_GIT_TOKEN = "ghs_realgittoken5e21"
PHANTOM = "egp-agent-one-phantom-token"
PHANTOM_TWO = "egp-agent-two-phantom-token"
SECRETS = (REAL_LLM_KEY, REAL_OPENAI_KEY, REAL_GIT_TOKEN)


def _llm_routes(llm):
    @llm.route("/v1/messages")
    def messages(org, w, req):
        org.read_body(w, req)
        payload = json.loads(req.body or b"{}")
        if payload.get("stream"):
            return _anthropic_stream(org, w, req)
        body = json.dumps({"id": "msg_1", "type": "message", "role": "assistant",
                           "model": payload.get("model", "m"),
                           "content": [{"type": "text", "text": "hello from the fake"}],
                           "stop_reason": "end_turn", "stop_sequence": None,
                           "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
        return org.respond(w, req, body, content_type="application/json")

    @llm.route("/v1/models")
    def models(org, w, req):
        body = json.dumps({"data": [{"id": "fake-model", "type": "model"}]}).encode()
        return org.respond(w, req, body, content_type="application/json")

    @llm.route("/v1/chat/completions")
    def chat(org, w, req):
        org.read_body(w, req)
        payload = json.loads(req.body or b"{}")
        if payload.get("stream"):
            w.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(4):
                ev = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                      "model": "fake-model",
                      "choices": [{"index": 0, "delta": {"content": "tok%d " % i},
                                   "finish_reason": None}]}
                w.send(H.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n"))
            w.send(H.chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            return not req.wants_close()
        body = json.dumps({"id": "c1", "object": "chat.completion", "created": 1,
                           "model": "fake-model",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "hi"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                     "total_tokens": 2}}).encode()
        return org.respond(w, req, body, content_type="application/json")

    @llm.route("/v1/redirect-same")
    def redirect_same(org, w, req):
        return org.respond(w, req, b"", status="302 Found",
                           headers=[("Location", "https://llm.gateway.test/v1/models")])

    @llm.route("/v1/redirect-other")
    def redirect_other(org, w, req):
        return org.respond(w, req, b"", status="302 Found",
                           headers=[("Location", "https://elsewhere.example/v1/models")])

    @llm.route("/v1/stall")
    def stall(org, w, req):
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Content-Length: 1000\r\n\r\n" + b"data: part\n\n")
        return False  # and close: the response is incomplete


def _git_routes(git, root, home):
    """git http-backend, answering only requests that carry the real token."""
    want = "Basic " + base64.b64encode(("x-access-token:" + REAL_GIT_TOKEN).encode()).decode()

    def route(org, w, req):
        if req.header("authorization") != [want]:
            org.read_body(w, req)
            return org.respond(w, req, b"token required\n", status="401 Unauthorized",
                               headers=[("WWW-Authenticate", 'Basic realm="git"')])
        return cgi(org, w, req)
    from test_toolchain import _git_cgi
    cgi = _git_cgi(root, home)
    git.fallback = route


def _sse(event, data):
    return H.chunk(("event: %s\ndata: %s\n\n" % (event, json.dumps(data))).encode())


def _anthropic_stream(org, w, req):
    """A Messages API event stream. With x-test-gate, everything after the
    first event waits for the test's gate: a gateway that held the stream
    back would never show the client that first event."""
    w.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
    w.send(_sse("message_start", {"type": "message_start", "message": {
        "id": "msg_s", "type": "message", "role": "assistant", "content": [],
        "model": "fake-model", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1}}}))
    if req.header("x-test-gate"):
        org.gate("sse").wait(10)
    w.send(_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}}))
    for i in range(4):
        w.send(_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta",
                                                      "text": "tok%d " % i}}))
    w.send(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    w.send(_sse("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": 4}}))
    w.send(_sse("message_stop", {"type": "message_stop"}) + b"0\r\n\r\n")
    return not req.wants_close()


class GW:
    pass


def _config(gw):
    def fn(port, log_path):
        policies = """
  { name = "agents"; rules = ( ); routes = [ "anthropic", "openai", "git" ]; },
  { name = "other"; rules = ( ); routes = [ "openai" ]; }"""
        listen = ('{ address = "127.0.0.1"; port = %d; gateway = true; identify = [ "token" ]; }'
                  % port)
        text = H.render_config(port, log_path, policies, listen=listen,
                               limits={"secret_refresh_ms": 200})
        text += 'admin = { address = "127.0.0.1"; port = %d; };\n' % gw.admin_port
        text += """
identities = (
  { name = "agent-one"; policy = "agents"; },
  { name = "agent-two"; policy = "other"; }
);
credentials = "credentials";
routes = (
  { name = "anthropic"; prefix = "/anthropic"; origin = "https://llm.gateway.test";
    ca = "%(ca)s"; networks = [ "198.51.100.15/32" ];
    allow = [ "POST /v1/messages", "GET /v1/models", "GET /v1/redirect-same",
              "GET /v1/redirect-other", "GET /v1/stall" ];
    inject = { header = "x-api-key"; secret = "%(d)s/llm.key"; }; },
  { name = "openai"; prefix = "/openai"; origin = "https://llm.gateway.test/v1";
    ca = "%(ca)s"; networks = [ "198.51.100.15/32" ];
    allow = [ "POST /chat/completions", "GET /models" ];
    inject = { header = "authorization"; scheme = "bearer"; secret = "%(d)s/openai.key"; }; },
  { name = "git"; prefix = "/git"; origin = "https://git.gateway.test:8443";
    ca = "%(ca)s"; networks = [ "198.51.100.15/32" ];
    inject = { header = "authorization"; scheme = "basic"; user = "x-access-token";
               secret = "%(d)s/git.token"; };
    git = { fetch = [ "probe", "shared/*" ]; push = [ "probe" ];
            refs = [ "refs/heads/agent/*" ]; }; },
  { name = "badcert"; prefix = "/badcert"; origin = "https://badcert.gateway.test:9443";
    ca = "%(ca)s"; networks = [ "198.51.100.15/32" ]; },
  { name = "private"; prefix = "/private"; origin = "https://private.gateway.test";
    ca = "%(ca)s"; }
);
""" % {"ca": gw.ca, "d": gw.secrets}
        return text
    return fn


def _write_secrets(d, values):
    """Write the secret files the way Kubernetes updates a Secret volume: a
    new directory holding every file, then the ..data symlink swapped to it
    in one rename; each NAME is a symlink to ..data/NAME."""
    stamp = "..%d" % time.monotonic_ns()
    os.makedirs(os.path.join(d, stamp))
    for name, value in values.items():
        with open(os.path.join(d, stamp, name), "w") as f:
            f.write(value + "\n")
    os.chmod(os.path.join(d, stamp), 0o755)
    tmp = os.path.join(d, "..data_tmp")
    os.symlink(stamp, tmp)
    os.replace(tmp, os.path.join(d, "..data"))
    for name in values:
        if not os.path.islink(os.path.join(d, name)):
            os.symlink(os.path.join("..data", name), os.path.join(d, name))


SECRET_FILES = {"llm.key": REAL_LLM_KEY, "openai.key": REAL_OPENAI_KEY,
                "git.token": REAL_GIT_TOKEN}


@pytest.fixture(scope="module")
def gw(world, tmp_path_factory, egressd_factory_module):
    g = GW()
    g.tmp = str(tmp_path_factory.mktemp("gateway"))
    H.share_with_sandbox_user(g.tmp)
    g.ca = world.ca
    g.secrets = os.path.join(g.tmp, "secrets")
    g.admin_port = H.free_port()
    os.makedirs(g.secrets)
    os.chmod(g.secrets, 0o755)
    _write_secrets(g.secrets, SECRET_FILES)
    from test_toolchain import _make_repo
    g.root, g.bare = _make_repo(g.tmp)
    # Another repository on the same server, which the route's git rules
    # do not name: it exists, so a refusal is egressd's, not a 404.
    for args in (["clone", "-q", "--bare", g.bare, os.path.join(g.root, "secret.git")],
                 ["--git-dir", os.path.join(g.root, "secret.git"), "config",
                  "http.receivepack", "true"]):
        p = _git(args, g.tmp, H.client_env(g.tmp))
        assert p.returncode == 0, p.stderr
    g.llm = H.Origin("llm", world.server_ctx)
    _llm_routes(g.llm)
    g.git = H.Origin("git", world.server_ctx)
    _git_routes(g.git, g.root, g.tmp)
    g.servers = [H.Server("gw-llm", H.ADDR_GW, 443, g.llm.handler),
                 H.Server("gw-git", H.ADDR_GW, 8443, g.git.handler),
                 H.Server("gw-badcert", H.ADDR_GW, 9443,
                          H.make_tls_handler(world.server_ctx, "badcert"))]
    started = []
    try:
        for s in g.servers:
            s.start()
            started.append(s)
        e = egressd_factory_module("gateway", _config(g), start=False)
        S.write_credentials(e.dir, [("agent-one", "bearer", PHANTOM),
                                    ("agent-two", "bearer", PHANTOM_TWO)])
        g.e = e.start()
        g.port = e.port
        g.log = e.log
        yield g
    finally:
        for s in reversed(started):
            s.stop()


def _request(gw, method, path, headers=(), body=b"", timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    try:
        c.request(method, path, body=body or None, headers=dict(headers))
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def _no_secret_in(*blobs):
    for b in blobs:
        text = b if isinstance(b, str) else repr(b)
        for s in SECRETS:
            assert s not in text, "a real secret reached the agent's side: %r" % text[:300]


def test_anthropic_key_is_injected_and_never_seen_by_the_agent(gw):
    n0 = gw.llm.count_requests()
    mark = gw.log.mark()
    status, headers, body = _request(
        gw, "POST", "/anthropic/v1/messages?beta=true",
        headers={"x-api-key": PHANTOM, "content-type": "application/json",
                 "anthropic-version": "2023-06-01"},
        body=json.dumps({"model": "m", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert status == 200, body
    assert json.loads(body)["content"][0]["text"] == "hello from the fake"
    _no_secret_in(headers, body)
    (req,) = gw.llm.since(n0)
    assert req.target == "/v1/messages?beta=true"
    assert req.header("x-api-key") == [REAL_LLM_KEY]
    assert req.header("host") == ["llm.gateway.test"]
    assert req.header("anthropic-version") == ["2023-06-01"]
    assert PHANTOM not in req.raw_head.decode("latin-1")
    close = gw.log.wait(since=mark, event="close", route="anthropic")
    assert close["identity"] == "agent-one" and close["status"] == 200
    assert close["host"] == "llm.gateway.test" and close["path"] == "/v1/messages"
    assert close["gateway_path"] == "/anthropic/v1/messages"
    assert close["tls"] in ("TLSv1.2", "TLSv1.3")
    assert close["upstream_conn"] in ("new", "resumed", "reused")
    assert close["addr"] == H.ADDR_GW
    raw = b"\n".join(gw.log.raw_lines()[mark:]).decode()
    for s in SECRETS + (PHANTOM,):
        assert s not in raw, "a secret or token is in the log"


def test_bearer_route_replaces_the_clients_authorization(gw):
    n0 = gw.llm.count_requests()
    status, headers, body = _request(
        gw, "POST", "/openai/chat/completions",
        headers={"authorization": "Bearer " + PHANTOM, "content-type": "application/json",
                 "x-api-key": PHANTOM},
        body=b'{"model": "fake-model", "messages": []}')
    assert status == 200, body
    _no_secret_in(headers, body)
    (req,) = gw.llm.since(n0)
    assert req.target == "/v1/chat/completions"
    assert req.header("authorization") == ["Bearer " + REAL_OPENAI_KEY]
    assert req.header("x-api-key") == [], "a client's credential field went upstream"
    # A second credential that is not the token: refused, never forwarded.
    status, _, _ = _request(gw, "POST", "/openai/chat/completions",
                            headers={"authorization": "Bearer " + PHANTOM,
                                     "x-api-key": "sk-a-key-of-its-own"}, body=b"{}")
    assert status == 401
    assert gw.llm.count_requests() == n0 + 1


def test_second_request_reuses_the_upstream_connection(gw):
    n0 = gw.llm.count_requests()
    mark = gw.log.mark()
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    try:
        for _ in range(3):
            c.request("GET", "/anthropic/v1/models", headers={"x-api-key": PHANTOM})
            r = c.getresponse()
            assert r.status == 200
            r.read()
    finally:
        c.close()
    reqs = gw.llm.since(n0)
    assert len(reqs) == 3
    assert len({r.conn_no for r in reqs}) == 1, "each request paid a new TLS connection"
    # Only this test's lines: an earlier test's close line may come late.
    H.wait_until(lambda: len(gw.log.find(since=mark, event="close",
                                         gateway_path="/anthropic/v1/models")) == 3,
                 what="three close lines")
    closes = gw.log.find(since=mark, event="close", gateway_path="/anthropic/v1/models")
    assert [l["upstream_conn"] for l in closes][1:] == ["reused", "reused"], closes


@pytest.mark.parametrize("path", [
    "/anthropic/v1/files",           # no rule allows it
    "/anthropic/v1/messages/x",      # exact rules are exact
    "/anthropic/v1/models/../messages",
])
def test_path_outside_the_rules_is_refused(gw, path):
    n0 = gw.llm.count_requests()
    r = H.request(gw.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: %s\r\n\r\n"
                            % (path, PHANTOM)).encode())
    assert r.status in (400, 403), r
    assert gw.llm.count_requests() == n0, "a refused path reached the origin"
    if ".." in path:
        assert "bad_path" in r.header("proxy-status")
    else:
        assert r.status == 403 and "path_not_allowed" in r.header("proxy-status")
        assert "egressd refused this request" in r.text()


@pytest.mark.parametrize("path", [
    "/anthropic/v1/./messages", "/anthropic/v1/%2e%2e/messages", "/anthropic/v1%2fmessages",
    "/anthropic//v1/messages", "/anthropic/v1\\messages", "/anthropic/v1/%5cmessages",
    "/anthropic/v1/%2E/messages", "/anthropic/v1/mess%00ages", "/anthropic/v1/%252e%252e/x",
])
def test_traversal_and_encoding_tricks_are_refused_not_cleaned(gw, path):
    n0 = gw.llm.count_requests()
    mark = gw.log.mark()
    r = H.request(gw.port, ("POST %s HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n"
                            "Content-Length: 0\r\n\r\n" % (path, PHANTOM)).encode())
    assert r.status == 400, r
    # The strict HTTP parser refuses some before the gateway's path check
    # (a backslash is no request-target byte at all): 400 either way.
    reason = "bad_path" if "bad_path" in r.header("proxy-status") else "malformed_request"
    assert reason in r.header("proxy-status")
    assert gw.llm.count_requests() == n0
    line = gw.log.wait(since=mark, event="error", reason=reason)
    assert line["status"] == 400


def test_no_token_and_wrong_token_get_401(gw):
    n0 = gw.llm.count_requests()
    r = H.request(gw.port, b"GET /anthropic/v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 401 and "token_required" in r.header("proxy-status")
    assert r.header("www-authenticate")
    assert "token" in r.text() and "x-api-key" in r.text()
    r = H.request(gw.port, b"GET /anthropic/v1/models HTTP/1.1\r\nHost: x\r\n"
                  b"x-api-key: not-a-token\r\n\r\n")
    assert r.status == 401 and "token_failed" in r.header("proxy-status")
    assert gw.llm.count_requests() == n0


def test_a_route_the_policy_does_not_list_is_not_found(gw):
    n0 = gw.llm.count_requests()
    r = H.request(gw.port, ("GET /anthropic/v1/models HTTP/1.1\r\nHost: x\r\n"
                            "x-api-key: %s\r\n\r\n" % PHANTOM_TWO).encode())
    assert r.status == 403 and "route_not_found" in r.header("proxy-status")
    r = H.request(gw.port, ("GET /nowhere/v1 HTTP/1.1\r\nHost: x\r\n"
                            "x-api-key: %s\r\n\r\n" % PHANTOM).encode())
    assert r.status == 403 and "route_not_found" in r.header("proxy-status")
    assert gw.llm.count_requests() == n0


def test_origin_with_a_bad_certificate_is_502_never_a_fallback(gw):
    mark = gw.log.mark()
    # agent-one's policy does not list badcert: give it one that does.
    r = H.request(gw.port, ("GET /badcert/x HTTP/1.1\r\nHost: x\r\n"
                            "x-api-key: %s\r\n\r\n" % PHANTOM).encode())
    assert r.status == 403  # not listed for agent-one: the route is never dialled
    m = gw.log.mark()
    gw.e.reload(_config_with_badcert(gw))
    gw.log.wait(since=m, event="reload")
    try:
        r = H.request(gw.port, ("GET /badcert/x HTTP/1.1\r\nHost: x\r\n"
                                "x-api-key: %s\r\n\r\n" % PHANTOM).encode())
        assert r.status == 502, r
        assert "tls_certificate_error" in r.header("proxy-status")
        line = gw.log.wait(since=mark, event="error", reason="tls_certificate_error")
        assert line["route"] == "badcert" and line["detail"], line
        r = H.request(gw.port, ("GET /private/x HTTP/1.1\r\nHost: x\r\n"
                                "x-api-key: %s\r\n\r\n" % PHANTOM).encode())
        assert r.status == 403 and "address_prohibited" in r.header("proxy-status"), r
    finally:
        m = gw.log.mark()
        gw.e.reload(_config(gw)(gw.port, gw.e.log_path))
        gw.log.wait(since=m, event="reload")


def _config_with_badcert(gw):
    return _config(gw)(gw.port, gw.e.log_path).replace(
        'routes = [ "anthropic", "openai", "git" ]',
        'routes = [ "anthropic", "openai", "git", "badcert", "private" ]')


def test_redirects_are_not_followed_and_same_origin_ones_are_rewritten(gw):
    n0 = gw.llm.count_requests()
    status, headers, _ = _request(gw, "GET", "/anthropic/v1/redirect-same",
                                  headers={"x-api-key": PHANTOM})
    assert status == 302 and headers["location"] == "/anthropic/v1/models"
    status, headers, _ = _request(gw, "GET", "/anthropic/v1/redirect-other",
                                  headers={"x-api-key": PHANTOM})
    assert status == 302 and headers["location"] == "https://elsewhere.example/v1/models"
    assert len(gw.llm.since(n0)) == 2, "egressd followed a redirect"


def test_sse_events_are_relayed_as_they_arrive(gw):
    gate = gw.llm.gate("sse")
    gate.clear()
    body = json.dumps({"model": "m", "stream": True, "max_tokens": 5,
                       "messages": []}).encode()
    with H.Client(gw.port, timeout=10) as c:
        c.send(("POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n"
                "x-test-gate: 1\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (PHANTOM, len(body))).encode() + body)
        got = b""
        deadline = H.Deadline(8)
        while b"message_start" not in got and not deadline.expired():
            b, _ = H.recv_some(c.sock)
            if not b:
                break
            got += b
        assert b"message_start" in got, "the first event did not arrive before the rest"
        assert b"message_stop" not in got
        gate.set()
        while b"message_stop" not in got and not deadline.expired():
            b, _ = H.recv_some(c.sock)
            if not b:
                break
            got += b
    assert got.count(b"event: content_block_delta") == 4 and b"message_stop" in got


def test_stalled_upstream_gives_what_arrived_then_the_close(gw):
    mark = gw.log.mark()
    with H.Client(gw.port, timeout=5) as c:
        c.send(("GET /anthropic/v1/stall HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n\r\n"
                % PHANTOM).encode())
        got = b""
        for _ in range(50):
            b, _ = H.recv_some(c.sock)
            if not b:
                break
            got += b
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"data: part\n\n"), got
    line = gw.log.wait(since=mark, event="close", route="anthropic")
    assert line["reason"] == "response_incomplete"


def test_rotated_secret_is_used_without_a_restart(gw):
    new = REAL_LLM_KEY + "-rotated"
    mark = gw.log.mark()
    _write_secrets(gw.secrets, dict(SECRET_FILES, **{"llm.key": new}))
    try:
        gw.log.wait(since=mark, event="secret", route="anthropic", timeout=5)
        n0 = gw.llm.count_requests()
        status, _, _ = _request(gw, "GET", "/anthropic/v1/models",
                                headers={"x-api-key": PHANTOM})
        assert status == 200
        (req,) = gw.llm.since(n0)
        assert req.header("x-api-key") == [new]
        raw = b"\n".join(gw.log.raw_lines()[mark:]).decode()
        assert new not in raw
    finally:
        mark = gw.log.mark()
        _write_secrets(gw.secrets, SECRET_FILES)
        gw.log.wait(since=mark, event="secret", route="anthropic", timeout=5)


def _git(args, cwd, env):
    return subprocess.run(["git"] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def git_agent(gw):
    """An agent's home and a clone of probe: its git knows the gateway by
    insteadOf and gives the phantom token as its password (after the
    gateway's 401), nothing else.  (home, env, work tree)"""
    home = os.path.join(gw.tmp, "agent-home-%d" % time.monotonic_ns())
    os.makedirs(home)
    env = H.client_env(home, GIT_AUTHOR_NAME="agent", GIT_AUTHOR_EMAIL="a@example.invalid",
                       GIT_COMMITTER_NAME="agent", GIT_COMMITTER_EMAIL="a@example.invalid")
    base = "http://127.0.0.1:%d/git/" % gw.port
    for args in (["config", "--global", "url.%s.insteadOf" % base, "https://git.corp.example/"],
                 ["config", "--global", "credential.helper",
                  "!f() { echo username=agent; echo password=%s; }; f" % PHANTOM]):
        p = _git(args, home, env)
        assert p.returncode == 0, p.stderr
    p = _git(["clone", "-q", "https://git.corp.example/probe.git", "work"], home, env)
    assert p.returncode == 0, p.stderr
    return home, env, os.path.join(home, "work")


def test_git_clone_and_push_through_insteadof_without_a_token(gw):
    home, env, work = git_agent(gw)
    with open(os.path.join(work, "agent.txt"), "w") as f:
        f.write("from the agent\n")
    for args in (["add", "agent.txt"], ["commit", "-q", "-m", "agent"],
                 ["push", "-q", "origin", "HEAD:refs/heads/agent/one"]):
        p = _git(args, work, env)
        assert p.returncode == 0, (args, p.stderr)
    p = _git(["--git-dir", gw.bare, "for-each-ref", "--format=%(refname)"], home, env)
    assert "refs/heads/agent/one" in p.stdout
    for root, _, files in os.walk(home):
        for n in files:
            with open(os.path.join(root, n), "rb") as f:
                data = f.read()
            assert REAL_GIT_TOKEN.encode() not in data, "the git token is in " + n


SDK_DIR = os.path.join(H.HERE, "sdk")


def _agent(gw, sdk, base, token, stream=False):
    """The SDK's own client, as an agent runs it: only the base URL and
    the gateway token configured."""
    assert os.path.isdir(os.path.join(SDK_DIR, "node_modules", "openai")), \
        "tests/integration/sdk/node_modules is missing: run.sh's npm ci failed"
    env = H.client_env(gw.tmp)
    p = subprocess.run(["node", os.path.join(SDK_DIR, "agent.mjs"), sdk, base, token]
                       + (["stream"] if stream else []),
                       env=env, capture_output=True, text=True, timeout=60)
    _no_secret_in(p.stdout, p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_through_the_gateway(gw, stream):
    n0 = gw.llm.count_requests()
    out = _agent(gw, "anthropic", "http://127.0.0.1:%d/anthropic" % gw.port, PHANTOM, stream)
    if stream:
        assert out["text"] == "tok0 tok1 tok2 tok3 " and out["events"] >= 6, out
    else:
        assert out["text"] == "hello from the fake" and out["models"] == ["fake-model"], out
    reqs = gw.llm.since(n0)
    assert reqs and all(r.header("x-api-key") == [REAL_LLM_KEY] for r in reqs)
    assert all(PHANTOM not in r.raw_head.decode("latin-1") for r in reqs)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_through_the_gateway(gw, stream):
    n0 = gw.llm.count_requests()
    out = _agent(gw, "openai", "http://127.0.0.1:%d/openai" % gw.port, PHANTOM, stream)
    assert out["text"] == ("tok0 tok1 tok2 tok3 " if stream else "hi"), out
    (req,) = gw.llm.since(n0)
    assert req.target == "/v1/chat/completions"
    assert req.header("authorization") == ["Bearer " + REAL_OPENAI_KEY]


def test_httpx_and_curl_through_the_gateway(gw):
    n0 = gw.llm.count_requests()
    code = ("import httpx, sys\n"
            "r = httpx.get(sys.argv[1], headers={'x-api-key': sys.argv[2]}, timeout=10)\n"
            "print(r.status_code); print(r.text); print(dict(r.headers))\n")
    p = subprocess.run(["/usr/bin/python3", "-c", code,
                        "http://127.0.0.1:%d/anthropic/v1/models" % gw.port, PHANTOM],
                       env=H.client_env(gw.tmp), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("200\n"), p.stdout + p.stderr
    assert "fake-model" in p.stdout
    _no_secret_in(p.stdout)
    p = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "-H", "x-api-key: " + PHANTOM,
                        "http://127.0.0.1:%d/anthropic/v1/models" % gw.port],
                       env=H.client_env(gw.tmp), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("HTTP/1.1 200"), p.stdout + p.stderr
    _no_secret_in(p.stdout)
    reqs = gw.llm.since(n0)
    assert len(reqs) == 2 and all(r.header("x-api-key") == [REAL_LLM_KEY] for r in reqs)


def test_explain_a_gateway_path(gw):
    def explain(path, method):
        p = H.run_egressd("-c", gw.e.conf, "--explain", path, "--method", method,
                          "--policy", "agents")
        return p.returncode, p.stdout + p.stderr
    rc, out = explain("/anthropic/v1/messages", "POST")
    assert rc == 0, out
    assert "route: anthropic" in out and "verdict: allow" in out
    assert "upstream: https://llm.gateway.test:443/v1/messages" in out
    assert "credential: x-api-key" in out and REAL_LLM_KEY not in out
    rc, out = explain("/anthropic/v1/files", "GET")
    assert rc == 1 and "reason: path_not_allowed" in out, out
    # The agent's base URL names the gateway listener: its path is explained.
    rc, out = explain("http://127.0.0.1:%d/anthropic/v1/messages" % gw.port, "POST")
    assert rc == 0 and "route: anthropic" in out and "verdict: allow" in out, out
    rc, out = explain("/anthropic/v1/%2e%2e/x", "GET")
    assert rc == 1 and "reason: bad_path" in out, out
    rc, out = explain("/badcert/x", "GET")
    assert rc == 1 and "reason: route_not_found" in out and "not in the policy" in out, out


def test_metrics_count_requests_bytes_and_reuse_per_route(gw):
    admin = S.Admin(gw.admin_port).wait_up()
    before = admin.metrics()

    def delta(m, name, **labels):
        return m.value(name, 0, **labels) - before.value(name, 0, **labels)
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    try:
        for _ in range(3):
            c.request("GET", "/anthropic/v1/models", headers={"x-api-key": PHANTOM})
            r = c.getresponse()
            body = r.read()
            assert r.status == 200
    finally:
        c.close()
    status, _, _ = _request(gw, "GET", "/anthropic/v1/files", headers={"x-api-key": PHANTOM})
    assert status == 403

    def counted():
        m = admin.metrics()
        return m if delta(m, "egressd_route_requests_total", route="anthropic",
                          code="4xx") == 1 and \
            delta(m, "egressd_route_requests_total", route="anthropic", code="2xx") == 3 \
            else None
    m = H.wait_until(counted, what="the route's requests counted")
    assert delta(m, "egressd_route_upstream_requests_total", route="anthropic",
                 conn="reused") >= 2
    assert delta(m, "egressd_route_bytes_total", route="anthropic",
                 direction="down") >= 3 * len(body)
    assert delta(m, "egressd_route_bytes_total", route="anthropic", direction="up") > 0
    assert "llm.gateway.test" not in m.text, "a host name became a label"
