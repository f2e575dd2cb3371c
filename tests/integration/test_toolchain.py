"""The agent's real toolchain through egressd, end to end in the namespace
(issue 3): curl, git (smart HTTP over TLS, git http-backend), pip (a PEP 503
simple index over TLS), and Python requests/httpx streaming server-sent
events from a fake LLM API, all configured only by the proxy environment
variables, as an agent's shell has them.

The refusal messages the clients print are asserted exactly (see
README, "What the agent sees"). Servers (this module's):
  git.allowed.test, git.denied.test   198.51.100.11:443  git http-backend (CGI) over TLS
  pypi.allowed.test, pypi.denied.test 198.51.100.12:443  simple index over TLS
  llm.allowed.test, llm.denied.test   198.51.100.13:443  fake LLM API over TLS, and :80
The "toolchain" policy allows only the *.allowed.test names.
"""

import base64
import hashlib
import json
import os
import subprocess
import time
import zipfile

import pytest

import harness as H

TOOLCHAIN_POLICY = """  { name = "toolchain";
    rules = (
      { name = "git"; hosts = [ "git.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "pypi"; hosts = [ "pypi.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; },
      { name = "llm"; hosts = [ "llm.allowed.test" ]; ports = [ 443, 80 ];
        networks = [ "198.51.100.0/24" ]; }
    );
  }"""

PKG = "egressd-probe-pkg"
WHEEL = "egressd_probe_pkg-1.0-py3-none-any.whl"
SSE_GAP_S = 0.2
SSE_EVENTS = 5
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
              "NO_PROXY", "no_proxy", "REQUEST_METHOD")

# What the clients print when egressd refuses them (README, "What the agent sees").
CURL_CONNECT_403 = "curl: (56) CONNECT tunnel failed, response 403\n"
CURL_PLAIN_403_F = "curl: (22) The requested URL returned error: 403\n"
PIP_403_WARNING = (
    "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) "
    "after connection broken by 'ProxyError('Cannot connect to proxy.', "
    "OSError('Tunnel connection failed: 403 Forbidden'))': /simple/egressd-probe-pkg/\n")
PIP_NOTFOUND = (
    "ERROR: Could not find a version that satisfies the requirement egressd-probe-pkg "
    "(from versions: none)\n"
    "ERROR: No matching distribution found for egressd-probe-pkg\n")
GIT_403 = "fatal: unable to access 'https://git.denied.test/probe.git/': " \
          "CONNECT tunnel failed, response 403\n"


class Tools:
    pass


def _build_wheel(path):
    """A minimal real wheel: module, METADATA, WHEEL, RECORD."""
    files = {
        "egressd_probe_pkg/__init__.py": b'VERSION = "1.0"\n',
        "egressd_probe_pkg-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: egressd-probe-pkg\nVersion: 1.0\n"
            b"Summary: egressd integration test package\n",
        "egressd_probe_pkg-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: egressd-it\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (name, digest, len(data))
    record += "egressd_probe_pkg-1.0.dist-info/RECORD,,\n"
    files["egressd_probe_pkg-1.0.dist-info/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    with open(path, "rb") as f:
        return f.read()


def _git(args, cwd=None, env=None, timeout=20):
    return subprocess.run(["git"] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _make_repo(tmp):
    """A bare repository probe.git with one commit on main, pushable over HTTP."""
    root = os.path.join(tmp, "git-root")
    os.makedirs(root)
    env = H.client_env(tmp, GIT_AUTHOR_NAME="it", GIT_AUTHOR_EMAIL="it@example.invalid",
                       GIT_COMMITTER_NAME="it", GIT_COMMITTER_EMAIL="it@example.invalid")
    bare = os.path.join(root, "probe.git")
    seed = os.path.join(tmp, "git-seed")
    for args, cwd in ((["init", "-q", "--bare", "-b", "main", bare], None),
                      (["config", "http.receivepack", "true"], bare),
                      (["init", "-q", "-b", "main", seed], None)):
        p = _git(args, cwd=cwd, env=env)
        assert p.returncode == 0, p.stderr
    with open(os.path.join(seed, "README"), "w") as f:
        f.write("egressd probe repository\n")
    for args in (["add", "README"], ["commit", "-q", "-m", "seed"],
                 ["push", "-q", bare, "main"]):
        p = _git(args, cwd=seed, env=env)
        assert p.returncode == 0, (args, p.stderr)
    return root, bare


def _git_cgi(root, home):
    def route(org, w, req):
        org.read_body(w, req)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1",
               "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": req.method,
               "PATH_INFO": req.path, "QUERY_STRING": req.target.partition("?")[2],
               "CONTENT_LENGTH": str(len(req.body)), "REMOTE_ADDR": "198.51.100.1",
               "CONTENT_TYPE": (req.header("content-type") or [""])[0]}
        for hdr, var in (("git-protocol", "GIT_PROTOCOL"),
                         ("content-encoding", "HTTP_CONTENT_ENCODING")):
            if req.header(hdr):
                env[var] = req.header(hdr)[0]
        p = subprocess.run(["git", "http-backend"], input=req.body, env=env,
                           capture_output=True, timeout=20)
        out = p.stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, body = out.partition(sep)
        status, headers, ctype = "200 OK", [], "text/plain"
        for line in head.decode("latin-1").replace("\r\n", "\n").split("\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = v.strip()
            elif k.lower() == "content-type":
                ctype = v.strip()
            elif k and k.lower() not in ("content-length", "transfer-encoding", "connection"):
                headers.append((k, v.strip()))
        if p.returncode != 0 and not head:
            status, body = "500 Internal Server Error", p.stderr
        return org.respond(w, req, body, status=status, headers=headers, content_type=ctype)
    return route


def _pypi_routes(pypi, wheel_bytes):
    sha = hashlib.sha256(wheel_bytes).hexdigest()
    project = ('<!DOCTYPE html>\n<html><body>\n<a href="/packages/%s#sha256=%s">%s</a>\n'
               '</body></html>\n' % (WHEEL, sha, WHEEL)).encode()
    index = ('<!DOCTYPE html>\n<html><body>\n<a href="/simple/%s/">%s</a>\n</body></html>\n'
             % (PKG, PKG)).encode()

    @pypi.route("/simple/")
    def simple(org, w, req):
        return org.respond(w, req, index, content_type="text/html")

    @pypi.route("/simple/%s/" % PKG)
    def proj(org, w, req):
        return org.respond(w, req, project, content_type="text/html")

    @pypi.route("/packages/" + WHEEL)
    def wheel(org, w, req):
        return org.respond(w, req, wheel_bytes, content_type="application/octet-stream")


def _llm_routes(llm):
    @llm.route("/v1/chat/completions")
    def chat(org, w, req):
        """An OpenAI-style streamed chat completion: SSE events sent
        SSE_GAP_S apart as chunks; in notes["sse:" + user] the time just
        before each was sent (so it is there before the client can have it)."""
        org.read_body(w, req)
        payload = json.loads(req.body)
        sent = org.note("sse:" + payload.get("user", ""), [])
        w.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(SSE_EVENTS):
            ev = {"id": "chatcmpl-%s" % payload.get("user"), "object": "chat.completion.chunk",
                  "model": payload["model"],
                  "choices": [{"index": 0, "delta": {"content": "token-%d " % i}}]}
            sent.append(time.monotonic())
            w.send(H.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n"))
            time.sleep(SSE_GAP_S)
        sent.append(time.monotonic())
        w.send(H.chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return not req.wants_close()


@pytest.fixture(scope="module")
def tools(world, tmp_path_factory):
    t = Tools()
    t.tmp = str(tmp_path_factory.mktemp("toolchain"))
    t.root, t.bare = _make_repo(t.tmp)
    t.wheel_bytes = _build_wheel(os.path.join(t.tmp, WHEEL))
    ctx = world.server_ctx
    t.git = H.Origin("git", ctx)
    t.git.fallback = _git_cgi(t.root, t.tmp)
    t.pypi = H.Origin("pypi", ctx)
    _pypi_routes(t.pypi, t.wheel_bytes)
    t.llm = H.Origin("llm", ctx)
    t.llm_plain = H.Origin("llm-plain")
    for o in (t.llm, t.llm_plain):
        _llm_routes(o)
    t.servers = [H.Server("git-https", H.ADDR_GITSRV, 443, t.git.handler),
                 H.Server("pypi-https", H.ADDR_PYPI, 443, t.pypi.handler),
                 H.Server("llm-https", H.ADDR_LLM, 443, t.llm.handler),
                 H.Server("llm-http", H.ADDR_LLM, 80, t.llm_plain.handler)]
    t.server = {s.name: s for s in t.servers}
    started = []
    try:
        for s in t.servers:
            s.start()
            started.append(s)
        yield t
    finally:
        for s in started:
            s.stop()


@pytest.fixture
def tc(shared_egressd):
    return shared_egressd("toolchain", TOOLCHAIN_POLICY)


@pytest.fixture
def pyenv(monkeypatch):
    """The test process's own proxy variables: none, unless the test sets them."""
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


def purl(e):
    return "http://127.0.0.1:%d" % e.port


def run(cmd, env, timeout=30, cwd=None):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def curl_cmd(world, *args):
    return ["curl", "-sS", "--max-time", "10", "--cacert", world.ca] + list(args)


def resolver_is_ours():
    """Direct (proxy-bypassing) lookups go to the namespace's dnsmasq (run.sh)."""
    try:
        with open("/etc/resolv.conf") as f:
            ns = [l.split()[1] for l in f if l.startswith("nameserver")]
    except OSError:
        return False
    return ns == [H.DNS_ADDR]


# ------------------------------------------------------------------ curl


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy"])
def test_curl_https_via_connect(world, tools, tc, tmp_path, var):
    mark = tc.log.mark()
    env = H.client_env(str(tmp_path), **{var: purl(tc)})
    p = run(curl_cmd(world, "https://llm.allowed.test/v1/models"), env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("origin llm: GET /v1/models "), p.stdout
    allow = tc.log.wait(since=mark, event="allow", host="llm.allowed.test")
    assert allow["method"] == "CONNECT" and allow["port"] == 443, allow


def test_curl_plain_http_lowercase_only(world, tools, tc, tmp_path):
    """curl takes http_proxy; it ignores HTTP_PROXY (upper case) by design."""
    mark = tc.log.mark()
    n0 = tools.llm_plain.count_requests()
    env = H.client_env(str(tmp_path), http_proxy=purl(tc))
    p = run(curl_cmd(world, "http://llm.allowed.test/v1/models?plain=1"), env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("origin llm-plain: GET /v1/models?plain=1 "), p.stdout
    allow = tc.log.wait(since=mark, event="allow", host="llm.allowed.test")
    assert allow["method"] == "GET" and allow["port"] == 80, allow
    assert allow["path"] == "/v1/models", allow  # the query stays out of the log
    (req,) = tools.llm_plain.since(n0)
    assert any("egressd" in v for v in req.header("via")), req

    # HTTP_PROXY alone: curl goes direct (an IP literal, so no DNS is involved;
    # egressd would have refused it with 403)
    n0 = tools.llm_plain.count_requests()
    mark = tc.log.mark()
    env = H.client_env(str(tmp_path), HTTP_PROXY=purl(tc))
    p = run(curl_cmd(world, "http://%s/curl-uppercase" % H.ADDR_LLM), env)
    assert p.returncode == 0, p.stderr
    (req,) = tools.llm_plain.since(n0)
    assert req.request_line == "GET /curl-uppercase HTTP/1.1" and not req.header("via"), req
    H.time.sleep(0.2)
    # (only the lines of new connections: an earlier test's refused client
    # may still be lingering, and its close line comes when it goes)
    assert _new_conns(tc, mark) == [], "curl used HTTP_PROXY"


def test_curl_refused(world, tools, tc, tmp_path, watch):
    w = watch(tools.servers)
    dmark = world.dns.mark()
    mark = tc.log.mark()
    env = H.client_env(str(tmp_path), https_proxy=purl(tc), http_proxy=purl(tc))
    p = run(curl_cmd(world, "https://llm.denied.test/v1/models"), env)
    assert (p.returncode, p.stderr) == (56, CURL_CONNECT_403), (p.returncode, p.stderr)
    deny = tc.log.wait(since=mark, event="deny", host="llm.denied.test")
    H.assert_deny_line(deny, "host_not_allowed", "llm.denied.test", 443, policy="toolchain")

    # plain HTTP: the 403 is an HTTP answer; curl shows its body, or with -f an error
    p = run(curl_cmd(world, "http://llm.denied.test/v1/models"), env)
    assert p.returncode == 0 and p.stderr == "", p
    assert "llm.denied.test:80" in p.stdout and "deliberate" in p.stdout, p.stdout
    tools.curl_plain_body = p.stdout
    p = run(curl_cmd(world, "-f", "http://llm.denied.test/v1/models"), env)
    assert (p.returncode, p.stderr) == (22, CURL_PLAIN_403_F), (p.returncode, p.stderr)
    deny = tc.log.wait(since=mark, event="deny", port=80)
    H.assert_deny_line(deny, "host_not_allowed", "llm.denied.test", 80, policy="toolchain",
                       method="GET")
    w.assert_nothing()
    assert "llm.denied.test" not in world.dns.queries_since(dmark)
    # the body an agent reads (README, "What the agent sees")
    print("curl plain-HTTP refusal body:\n" + tools.curl_plain_body)


# ------------------------------------------------------------------ git


def _git_env(world, tmp, **proxy):
    return H.client_env(tmp, GIT_SSL_CAINFO=world.ca, GIT_AUTHOR_NAME="agent",
                        GIT_AUTHOR_EMAIL="agent@example.invalid", GIT_COMMITTER_NAME="agent",
                        GIT_COMMITTER_EMAIL="agent@example.invalid", **proxy)


def test_git_ls_remote_clone_push(world, tools, tc, tmp_path):
    tmp = str(tmp_path)
    url = "https://git.allowed.test/probe.git"
    mark = tc.log.mark()
    n0 = tools.git.count_requests()
    env = _git_env(world, tmp, HTTPS_PROXY=purl(tc))
    p = _git(["ls-remote", url], env=env)
    assert p.returncode == 0, p.stderr
    head = _git(["--git-dir", tools.bare, "rev-parse", "main"], env=env).stdout.strip()
    assert "%s\trefs/heads/main" % head in p.stdout, p.stdout

    clone = os.path.join(tmp, "clone")
    p = _git(["clone", "-q", url, clone], env=env)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(clone, "README")) as f:
        assert f.read() == "egressd probe repository\n"

    with open(os.path.join(clone, "agent.txt"), "w") as f:
        f.write("pushed through egressd\n")
    for args in (["add", "agent.txt"], ["commit", "-q", "-m", "agent change"]):
        p = _git(args, cwd=clone, env=env)
        assert p.returncode == 0, p.stderr
    p = _git(["push", "-q", "origin", "HEAD:refs/heads/agent"], cwd=clone, env=env)
    assert p.returncode == 0, p.stderr
    mine = _git(["rev-parse", "HEAD"], cwd=clone, env=env).stdout.strip()
    theirs = _git(["--git-dir", tools.bare, "rev-parse", "refs/heads/agent"], env=env)
    assert theirs.stdout.strip() == mine, theirs

    # every request went through the tunnel: the smart-HTTP endpoints were used
    paths = {q.path for q in tools.git.since(n0)}
    assert {"/probe.git/info/refs", "/probe.git/git-upload-pack",
            "/probe.git/git-receive-pack"} <= paths, paths
    allows = tc.log.find(since=mark, event="allow", host="git.allowed.test")
    assert allows and all(a["method"] == "CONNECT" and a["rule"] == "git" for a in allows)


@pytest.mark.parametrize("how", ["https_proxy", "http.proxy"])
def test_git_other_proxy_settings(world, tools, tc, tmp_path, how):
    """Lower-case https_proxy, and git's own http.proxy (no variable at all)."""
    mark = tc.log.mark()
    if how == "https_proxy":
        env = _git_env(world, str(tmp_path), https_proxy=purl(tc))
        args = ["ls-remote", "https://git.allowed.test/probe.git"]
    else:
        env = _git_env(world, str(tmp_path))
        args = ["-c", "http.proxy=" + purl(tc), "ls-remote", "https://git.allowed.test/probe.git"]
    p = _git(args, env=env)
    assert p.returncode == 0 and "refs/heads/main" in p.stdout, p.stderr
    tc.log.wait(since=mark, event="allow", host="git.allowed.test")


def test_git_clone_refused(world, tools, tc, tmp_path, watch):
    w = watch(tools.servers)
    dmark = world.dns.mark()
    mark = tc.log.mark()
    env = _git_env(world, str(tmp_path), HTTPS_PROXY=purl(tc))
    p = _git(["clone", "-q", "https://git.denied.test/probe.git", str(tmp_path / "x")], env=env)
    assert (p.returncode, p.stderr) == (128, GIT_403), (p.returncode, p.stderr)
    # ls-remote and push say the same
    p = _git(["ls-remote", "https://git.denied.test/probe.git"], env=env)
    assert (p.returncode, p.stderr) == (128, GIT_403), (p.returncode, p.stderr)
    p = _git(["push", "https://git.denied.test/probe.git", "main"],
             cwd=os.path.join(tools.tmp, "git-seed"), env=env)
    assert (p.returncode, p.stderr) == (128, GIT_403), (p.returncode, p.stderr)
    deny = tc.log.wait(since=mark, event="deny", host="git.denied.test")
    H.assert_deny_line(deny, "host_not_allowed", "git.denied.test", 443, policy="toolchain")
    w.assert_nothing()
    assert "git.denied.test" not in world.dns.queries_since(dmark)


# ------------------------------------------------------------------ pip


def _pip(world, tmp, index, var, proxy, retries="0"):
    dest = os.path.join(tmp, "dl")
    env = H.client_env(tmp, **{var: proxy})
    cmd = ["/usr/bin/python3", "-m", "pip", "download", "--no-deps", "--no-input",
           "--disable-pip-version-check", "--no-cache-dir", "--timeout", "5", "--retries", retries,
           "--index-url", index, "--cert", world.ca, "-d", dest, PKG]
    return run(cmd, env, timeout=60), dest


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy"])
def test_pip_download(world, tools, tc, tmp_path, var):
    mark = tc.log.mark()
    n0 = tools.pypi.count_requests()
    p, dest = _pip(world, str(tmp_path), "https://pypi.allowed.test/simple/", var, purl(tc))
    assert p.returncode == 0, p.stdout + p.stderr
    with open(os.path.join(dest, WHEEL), "rb") as f:
        assert f.read() == tools.wheel_bytes
    assert [q.path for q in tools.pypi.since(n0)] == ["/simple/%s/" % PKG, "/packages/" + WHEEL]
    tc.log.wait(since=mark, event="allow", host="pypi.allowed.test", rule="pypi")


def test_pip_download_refused(world, tools, tc, tmp_path, watch):
    """pip shows the 403 only in its retry warnings (one per retry; 5 by
    default, which takes ~8 s here): with --retries 0 it says nothing of it."""
    w = watch(tools.servers)
    dmark = world.dns.mark()
    mark = tc.log.mark()
    p, dest = _pip(world, str(tmp_path), "https://pypi.denied.test/simple/", "HTTPS_PROXY",
                   purl(tc), retries="1")
    assert (p.returncode, p.stdout, p.stderr) == (
        1, "Looking in indexes: https://pypi.denied.test/simple/\n", PIP_403_WARNING + PIP_NOTFOUND), \
        (p.returncode, p.stdout, p.stderr)
    assert not os.path.exists(os.path.join(dest, WHEEL))
    deny = tc.log.wait(since=mark, event="deny", host="pypi.denied.test")
    H.assert_deny_line(deny, "host_not_allowed", "pypi.denied.test", 443, policy="toolchain")

    p, dest = _pip(world, str(tmp_path), "https://pypi.denied.test/simple/", "https_proxy",
                   purl(tc), retries="0")
    assert (p.returncode, p.stderr) == (1, PIP_NOTFOUND), (p.returncode, p.stderr)
    w.assert_nothing()
    assert "pypi.denied.test" not in world.dns.queries_since(dmark)


# ------------------------------------------------------------------ LLM API, SSE


def _check_stream(tools, origin, user, events, model):
    """events: [(t_received, line)] as the client saw them."""
    sent = origin.notes["sse:" + user]
    datas = [l for _, l in events if l.startswith("data: ")]
    assert datas[-1] == "data: [DONE]", datas
    assert len(datas) == SSE_EVENTS + 1, datas
    for i, d in enumerate(datas[:-1]):
        ev = json.loads(d[len("data: "):])
        assert ev["choices"][0]["delta"]["content"] == "token-%d " % i, ev
        assert ev["model"] == model and ev["id"] == "chatcmpl-" + user, ev
    recv = [t for t, l in events if l.startswith("data: ")]
    # chunk by chunk: event i was in the client's hands before event i+1 was sent
    for i in range(SSE_EVENTS):
        assert recv[i] < sent[i + 1], (
            "event %d received %.3fs after event %d was sent: buffered on the way" % (
                i, recv[i] - sent[i + 1], i + 1))
    (req,) = [q for q in origin.requests if q.method == "POST" and user.encode() in q.body]
    body = json.loads(req.body)
    assert body["stream"] is True and body["messages"][0]["content"] == "say hi", body
    assert req.header("content-type") == ["application/json"], req
    return req


def _payload(user, model="gpt-egressd-test"):
    return {"model": model, "stream": True, "user": user,
            "messages": [{"role": "user", "content": "say hi"}]}


STREAMS = [("requests", "https", "HTTPS_PROXY"), ("requests", "http", "http_proxy"),
           ("httpx", "https", "https_proxy"), ("httpx", "http", "HTTP_PROXY")]


@pytest.mark.parametrize("client,scheme,var", STREAMS, ids=["-".join(s) for s in STREAMS])
def test_llm_streaming(world, tools, tc, pyenv, client, scheme, var):
    """An LLM-style JSON POST, stream=true, through egressd as the proxy
    variable says (CONNECT for https, forwarding for http); the SSE events
    arrive one by one, intact."""
    import httpx
    import requests
    user = "%s-%s-%s" % (client, scheme, var)
    url = "%s://llm.allowed.test/v1/chat/completions" % scheme
    origin = tools.llm if scheme == "https" else tools.llm_plain
    pyenv.setenv(var, purl(tc))
    mark = tc.log.mark()
    events = []
    if client == "requests":
        with requests.Session() as s:
            with s.post(url, json=_payload(user), stream=True, verify=world.ca, timeout=10,
                        headers={"Authorization": "Bearer sk-test-not-a-secret"}) as r:
                assert r.status_code == 200, r.text
                assert r.headers["Content-Type"] == "text/event-stream", r.headers
                for line in r.iter_lines():
                    events.append((time.monotonic(), line.decode()))
    else:
        with httpx.Client(verify=world.ca, timeout=10) as c:
            with c.stream("POST", url, json=_payload(user),
                          headers={"Authorization": "Bearer sk-test-not-a-secret"}) as r:
                assert r.status_code == 200, r.read()
                assert r.headers["content-type"] == "text/event-stream", r.headers
                for line in r.iter_lines():  # httpx 0.23 keeps the line end
                    events.append((time.monotonic(), line.rstrip("\r\n")))
    req = _check_stream(tools, origin, user, events, "gpt-egressd-test")
    allow = tc.log.wait(since=mark, event="allow", host="llm.allowed.test")
    if scheme == "https":
        assert allow["method"] == "CONNECT", allow
    else:
        assert allow["method"] == "POST" and allow["path"] == "/v1/chat/completions", allow
        assert any("egressd" in v for v in req.header("via")), req
        assert req.header("authorization") == ["Bearer sk-test-not-a-secret"], req


@pytest.mark.parametrize("client", ["requests", "httpx"])
@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"])
def test_python_clients_honour_both_cases(world, tools, tc, pyenv, client, var):
    """requests and httpx take each variable in either case (urllib's
    getproxies), for its own scheme."""
    import httpx
    import requests
    scheme = "https" if var.lower().startswith("https") else "http"
    url = "%s://llm.allowed.test/v1/models?case=%s-%s" % (scheme, client, var)
    pyenv.setenv(var, purl(tc))
    mark = tc.log.mark()
    if client == "requests":
        r = requests.get(url, verify=world.ca, timeout=5)
        status, text = r.status_code, r.text
    else:
        with httpx.Client(verify=world.ca, timeout=5) as c:
            r = c.get(url)
            status, text = r.status_code, r.text
    assert status == 200 and "GET /v1/models?case=" in text, text
    tc.log.wait(since=mark, event="allow", host="llm.allowed.test",
                method="CONNECT" if scheme == "https" else "GET")


def test_python_clients_refused(world, tools, tc, pyenv, watch):
    """What requests and httpx raise on a refused CONNECT, and what they
    return for a refused plain-HTTP request."""
    import httpx
    import requests
    w = watch(tools.servers)
    pyenv.setenv("HTTPS_PROXY", purl(tc))
    pyenv.setenv("HTTP_PROXY", purl(tc))
    with pytest.raises(requests.exceptions.ProxyError) as ex:
        requests.get("https://llm.denied.test/v1/models", verify=world.ca, timeout=5)
    assert "Tunnel connection failed: 403 Forbidden" in str(ex.value), ex.value
    with httpx.Client(verify=world.ca, timeout=5) as c:
        with pytest.raises(httpx.ProxyError) as ex2:
            c.get("https://llm.denied.test/v1/models")
        assert str(ex2.value) == "403 Forbidden", ex2.value
        r = c.get("http://llm.denied.test/v1/models")
        assert r.status_code == 403 and "host_not_allowed" in r.headers["proxy-status"], r
    r = requests.get("http://llm.denied.test/v1/models", timeout=5)
    assert r.status_code == 403 and "deliberate" in r.text, r.text
    w.assert_nothing()
    print("requests: %s\nhttpx: %r" % (ex.value, ex2.value))


# ------------------------------------------------------------------ what bypasses the proxy


def _new_conns(e, mark):
    """The log lines since mark of connections that began after it: a
    connection's first line is its decision line, or its close line when
    it never sent a request."""
    before = {l.get("conn") for l in e.log.lines()[:mark]}
    return [l for l in e.log.since(mark) if l.get("conn") not in before]


def _origin_saw(origin, n0, path):
    return [q for q in origin.since(n0) if q.path == path or q.target.startswith(path)]


def test_httpx_explicit_transport_ignores_proxy_variables(world, tools, tc, pyenv):
    """httpx with transport=... does not read HTTPS_PROXY: it connects
    directly (here it can, in the namespace; behind egressd's NetworkPolicy
    the connection would fail)."""
    import httpx
    if not resolver_is_ours():
        pytest.skip("/etc/resolv.conf is not the namespace's dnsmasq: no direct lookups")
    pyenv.setenv("HTTPS_PROXY", purl(tc))
    pyenv.setenv("https_proxy", purl(tc))
    mark = tc.log.mark()
    n0 = tools.llm.count_requests()
    with httpx.Client(transport=httpx.HTTPTransport(verify=world.ca), timeout=5) as c:
        assert c.get("https://llm.allowed.test/direct-transport").status_code == 200
    with httpx.Client(verify=world.ca, timeout=5) as c:  # for contrast: proxied
        assert c.get("https://llm.allowed.test/env-proxied").status_code == 200
    assert [q.path for q in tools.llm.since(n0)] == ["/direct-transport", "/env-proxied"]
    allows = tc.log.find(since=mark, event="allow", host="llm.allowed.test")
    assert len(allows) == 1, allows  # only the second went through egressd


def test_node_fetch_ignores_proxy_variables(world, tools, tc, tmp_path):
    """Node's built-in fetch (Node 20 here) ignores every proxy variable,
    NODE_USE_ENV_PROXY included."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10)
    if node.returncode != 0:
        pytest.skip("no node")
    mark = tc.log.mark()
    n0 = tools.llm_plain.count_requests()
    env = H.client_env(str(tmp_path), HTTP_PROXY=purl(tc), http_proxy=purl(tc),
                       HTTPS_PROXY=purl(tc), https_proxy=purl(tc), NODE_USE_ENV_PROXY="1")
    script = ("fetch('http://%s/node-fetch').then(r => r.text())"
              ".then(t => process.stdout.write(t), e => { console.error(String(e)); "
              "process.exit(3); })" % H.ADDR_LLM)
    p = run(["node", "-e", script], env, timeout=20)
    assert p.returncode == 0, p.stderr
    (req,) = _origin_saw(tools.llm_plain, n0, "/node-fetch")
    assert not req.header("via"), "went through a proxy: %r" % req
    H.time.sleep(0.2)
    assert _new_conns(tc, mark) == [], "node went through egressd"
    tools.node_version = node.stdout.strip()


# NO_PROXY: which names each client sends directly (bypass) rather than
# through egressd, for a few NO_PROXY values; host llm.allowed.test.
NO_PROXY_CASES = [
    # value           curl    requests  httpx   git
    ("allowed.test", True, True, True, True),
    (".allowed.test", True, True, True, True),
    ("lowed.test", False, True, False, False),  # requests matches a bare string suffix
    ("*", True, True, True, True),
    ("llm.allowed.test:443", False, False, False, False),  # with a port: no match
    ("198.51.100.0/24", False, False, False, False),  # a CIDR does not cover a name
]


@pytest.mark.parametrize("value,curl_bp,req_bp,httpx_bp,git_bp", NO_PROXY_CASES,
                         ids=[c[0] for c in NO_PROXY_CASES])
def test_no_proxy_matching(world, tools, tc, tmp_path, pyenv, value, curl_bp, req_bp, httpx_bp,
                           git_bp):
    """Records which client bypasses egressd for which NO_PROXY value
    (README, "What the agent sees"). A bypass here reaches the server directly; behind the
    NetworkPolicy it would be a connection error, not a 403."""
    import httpx
    import requests
    if not resolver_is_ours():
        pytest.skip("/etc/resolv.conf is not the namespace's dnsmasq: no direct lookups")
    proxy = purl(tc)
    seen = {}

    def bypassed(label, fn):
        mark = tc.log.mark()
        fn()
        H.time.sleep(0.05)
        seen[label] = not tc.log.find(since=mark, event="allow", host="llm.allowed.test")

    env = H.client_env(str(tmp_path), HTTPS_PROXY=proxy, https_proxy=proxy, NO_PROXY=value,
                       no_proxy=value)

    def curl():
        p = run(curl_cmd(world, "https://llm.allowed.test/no-proxy-curl"), env)
        assert p.returncode == 0, p.stderr
    bypassed("curl", curl)

    for k in ("HTTPS_PROXY", "https_proxy"):
        pyenv.setenv(k, proxy)
    for k in ("NO_PROXY", "no_proxy"):
        pyenv.setenv(k, value)

    def req():
        assert requests.get("https://llm.allowed.test/no-proxy-requests", verify=world.ca,
                            timeout=5).status_code == 200
    bypassed("requests", req)

    def hx():
        with httpx.Client(verify=world.ca, timeout=5) as c:
            assert c.get("https://llm.allowed.test/no-proxy-httpx").status_code == 200
    bypassed("httpx", hx)

    def git():
        # git's server is git.allowed.test: judge it by the same rule on its name
        genv = dict(env, NO_PROXY=value.replace("llm.", "git."), no_proxy=value.replace(
            "llm.", "git."), GIT_SSL_CAINFO=world.ca)
        mark = tc.log.mark()
        p = _git(["ls-remote", "https://git.allowed.test/probe.git"], env=genv)
        assert p.returncode == 0, p.stderr
        H.time.sleep(0.05)
        seen["git"] = not tc.log.find(since=mark, event="allow", host="git.allowed.test")
    git()
    assert seen == {"curl": curl_bp, "requests": req_bp, "httpx": httpx_bp, "git": git_bp}, seen


def test_lowercase_wins_when_both_cases_set(world, tools, tc, tmp_path, pyenv):
    """https_proxy and HTTPS_PROXY both set, differently: curl, git, requests
    and httpx all take the lower-case one (the upper-case one here points at
    a closed port in the namespace)."""
    import httpx
    import requests
    dead = "http://127.0.0.1:1"
    env = H.client_env(str(tmp_path), https_proxy=purl(tc), HTTPS_PROXY=dead,
                       GIT_SSL_CAINFO=world.ca)
    p = run(curl_cmd(world, "https://llm.allowed.test/both-cases-curl"), env)
    assert p.returncode == 0, p.stderr
    p = _git(["ls-remote", "https://git.allowed.test/probe.git"], env=env)
    assert p.returncode == 0, p.stderr
    pyenv.setenv("https_proxy", purl(tc))
    pyenv.setenv("HTTPS_PROXY", dead)
    assert requests.get("https://llm.allowed.test/both-cases-requests", verify=world.ca,
                        timeout=5).status_code == 200
    with httpx.Client(verify=world.ca, timeout=5) as c:
        assert c.get("https://llm.allowed.test/both-cases-httpx").status_code == 200
    paths = [q.path for q in tools.llm.requests if q.path.startswith("/both-cases-")]
    assert paths == ["/both-cases-curl", "/both-cases-requests", "/both-cases-httpx"], paths


def test_requests_session_keepalive_rechecked(world, tools, tc, pyenv):
    """A real client's pooled connection to the proxy carries requests for
    different hosts: the denied one is refused on the same connection, and
    never reaches its host (llm.denied.test is the same server)."""
    import requests
    pyenv.setenv("http_proxy", purl(tc))
    n0 = tools.llm_plain.count_requests()
    mark = tc.log.mark()
    with requests.Session() as s:
        assert s.get("http://llm.allowed.test/ka-1", timeout=5).status_code == 200
        r = s.get("http://llm.denied.test/ka-2", timeout=5)
        assert r.status_code == 403 and r.headers["Connection"].lower() == "close", r.headers
        assert s.get("http://llm.allowed.test/ka-3", timeout=5).status_code == 200
    assert [q.path for q in tools.llm_plain.since(n0)] == ["/ka-1", "/ka-3"]
    allow = tc.log.wait(since=mark, event="allow", path="/ka-1")
    deny = tc.log.wait(since=mark, event="deny", host="llm.denied.test")
    assert deny["conn"] == allow["conn"], "not one connection: %r %r" % (allow, deny)
