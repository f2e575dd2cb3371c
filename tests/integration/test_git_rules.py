"""Git rules on a gateway route (issue 13): which repositories the agent may
fetch and push, and which refs a push may change.

The route "git" of test_gateway's configuration (the same servers and
egressd, started by its `gw` fixture) has

    git = { fetch = [ "probe", "shared/*" ]; push = [ "probe" ];
            refs = [ "refs/heads/agent/*" ]; };

and the server (git http-backend over TLS, wanting the real token) holds
probe.git and secret.git.  Real git through insteadOf, and hand-made
receive-pack bodies for what git itself never sends.
"""

import http.client
import os
import socket
import time

import harness as H
from test_gateway import PHANTOM, REAL_GIT_TOKEN, _git, git_agent as _agent, gw  # noqa: F401 (fixture)

ZERO = "0" * 40
MAY_PUSH = "egress policy: this agent may push only refs/heads/agent/*"


def _commit(work, env, name="agent.txt", data="from the agent\n"):
    with open(os.path.join(work, name), "w") as f:
        f.write(data)
    for args in (["add", name], ["commit", "-q", "-m", "agent " + name]):
        p = _git(args, work, env)
        assert p.returncode == 0, p.stderr


def _refs(gw):
    p = _git(["--git-dir", gw.bare, "for-each-ref", "--format=%(refname) %(objectname)"],
             gw.tmp, H.client_env(gw.tmp))
    assert p.returncode == 0, p.stderr
    return p.stdout


def _rev(gw, ref):
    p = _git(["--git-dir", gw.bare, "rev-parse", ref], gw.tmp, H.client_env(gw.tmp))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_clone_and_fetch_of_an_allowed_repository(gw):
    mark = gw.log.mark()
    home, env, work = _agent(gw)
    p = _git(["fetch", "-q", "origin"], work, env)
    assert p.returncode == 0, p.stderr
    p = _git(["ls-remote", "origin"], work, env)
    assert p.returncode == 0 and "refs/heads/main" in p.stdout, p.stderr
    allow = gw.log.wait(since=mark, event="allow", repo="probe", service="git-upload-pack")
    assert allow["route"] == "git" and allow["identity"] == "agent-one"


def test_clone_of_another_repository_is_refused_with_a_message_git_shows(gw):
    home, env, _ = _agent(gw)
    n0 = gw.git.count_requests()
    mark = gw.log.mark()
    p = _git(["clone", "https://git.corp.example/secret.git", "stolen"], home, env)
    assert p.returncode != 0
    assert "remote: " in p.stderr and "this agent may not fetch secret" in p.stderr, p.stderr
    assert "403" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(home, "stolen", ".git", "HEAD"))
    assert gw.git.count_requests() == n0, "a refused fetch reached the git server"
    deny = gw.log.wait(since=mark, event="deny", reason="repo_not_allowed")
    assert deny["repo"] == "secret" and deny["service"] == "git-upload-pack"
    assert deny["status"] == 403 and "may not fetch secret" in deny["detail"]


def test_push_to_an_allowed_ref(gw):
    home, env, work = _agent(gw)
    _commit(work, env, "allowed.txt")
    mark = gw.log.mark()
    p = _git(["push", "origin", "HEAD:refs/heads/agent/allowed"], work, env)
    assert p.returncode == 0, p.stderr
    head = _git(["rev-parse", "HEAD"], work, env).stdout.strip()
    assert _rev(gw, "refs/heads/agent/allowed") == head
    ref = gw.log.wait(since=mark, event="git_ref", ref="refs/heads/agent/allowed")
    assert ref["verdict"] == "allow" and ref["new"] == head and ref["old"] == ZERO
    assert ref["repo"] == "probe" and ref["service"] == "git-receive-pack"
    gw.log.wait(since=mark, event="allow", service="git-receive-pack")


def test_push_to_main_is_rejected_against_the_ref_and_nothing_changes(gw):
    home, env, work = _agent(gw)
    _commit(work, env, "main.txt")
    before = _refs(gw)
    n0 = gw.git.count_requests()
    mark = gw.log.mark()
    p = _git(["push", "origin", "HEAD:main"], work, env)
    assert p.returncode != 0
    assert "! [remote rejected] HEAD -> main (%s)" % MAY_PUSH in p.stderr, p.stderr
    assert _refs(gw) == before, "the server's repository changed"
    # info/refs went to the server; the receive-pack request did not.
    assert all(not r.path.endswith("git-receive-pack")
               for r in gw.git.since(n0)), "the refused push reached the server"
    ref = gw.log.wait(since=mark, event="git_ref", ref="refs/heads/main")
    assert ref["verdict"] == "deny" and ref["message"] == MAY_PUSH.split(": ", 1)[1]
    assert ref["old"] == _rev(gw, "refs/heads/main")
    deny = gw.log.wait(since=mark, event="deny", reason="ref_not_allowed")
    assert deny["status"] == 200 and deny["repo"] == "probe"
    assert deny["detail"].startswith("refs/heads/main: ")
    raw = b"\n".join(gw.log.raw_lines()[mark:]).decode()
    assert REAL_GIT_TOKEN not in raw and PHANTOM not in raw


def test_a_push_with_one_refused_ref_is_refused_whole(gw):
    home, env, work = _agent(gw)
    _commit(work, env, "both.txt")
    before = _refs(gw)
    p = _git(["push", "origin", "HEAD:refs/heads/agent/both", "HEAD:main"], work, env)
    assert p.returncode != 0
    assert "! [remote rejected] HEAD -> main (%s)" % MAY_PUSH in p.stderr, p.stderr
    assert "! [remote rejected] HEAD -> agent/both (egress policy: push refused whole" \
        in p.stderr, p.stderr
    assert _refs(gw) == before
    assert "refs/heads/agent/both" not in _refs(gw)


def test_deleting_a_ref_and_pushing_a_tag_are_refused_by_default(gw):
    home, env, work = _agent(gw)
    _commit(work, env, "del.txt")
    p = _git(["push", "-q", "origin", "HEAD:refs/heads/agent/del"], work, env)
    assert p.returncode == 0, p.stderr
    before = _refs(gw)
    p = _git(["push", "origin", ":refs/heads/agent/del"], work, env)
    assert p.returncode != 0
    assert "[remote rejected] agent/del (egress policy: deleting refs is not allowed)" \
        in p.stderr, p.stderr
    p = _git(["tag", "v1"], work, env)
    assert p.returncode == 0, p.stderr
    p = _git(["push", "origin", "v1"], work, env)
    assert p.returncode != 0
    assert "[remote rejected] v1 -> v1 (egress policy: tags are not allowed)" in p.stderr, \
        p.stderr
    assert _refs(gw) == before


def test_push_to_a_repository_outside_push_is_refused_at_info_refs(gw):
    home, env, work = _agent(gw)
    mark = gw.log.mark()
    p = _git(["push", "https://git.corp.example/secret.git", "HEAD:refs/heads/agent/x"],
             work, env)
    assert p.returncode != 0
    assert "this agent may not push to secret" in p.stderr, p.stderr
    deny = gw.log.wait(since=mark, event="deny", reason="repo_not_allowed")
    assert deny["service"] == "git-receive-pack" and deny["repo"] == "secret"


def test_a_large_push_to_main_is_rejected_readably(gw):
    """Over http.postBuffer (1 MiB) git sends the pack chunked and keeps
    sending while egressd decides: egressd reads the rest before it answers,
    so git shows the rejection, not a broken pipe."""
    home, env, work = _agent(gw)
    _commit(work, env, "big.bin", os.urandom(3 * 1024 * 1024).hex()[:3 * 1024 * 1024])
    before = _refs(gw)
    p = _git(["push", "origin", "HEAD:main"], work, env)
    assert p.returncode != 0
    assert "! [remote rejected] HEAD -> main (%s)" % MAY_PUSH in p.stderr, p.stderr
    assert "Broken pipe" not in p.stderr and "RPC failed" not in p.stderr, p.stderr
    assert _refs(gw) == before


def test_other_paths_on_a_git_route_are_refused(gw):
    for path in ("/git/probe.git/HEAD", "/git/probe.git/objects/info/packs",
                 "/git/api/v3/repos/org/probe", "/git/probe.git/info/lfs/objects/batch"):
        mark = gw.log.mark()
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        c.request("GET", path, headers={"x-api-key": PHANTOM})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 403, path
        gw.log.wait(since=mark, event="deny", reason="path_not_allowed", gateway_path=path)


# --- hand-made receive-pack bodies -------------------------------------------


def pkt(payload):
    return b"%04x" % (len(payload) + 4) + payload


def _push_raw(gw, body, split=None, chunked=False):
    """POST body to probe's git-receive-pack through the gateway, the
    request's bytes in pieces of split bytes (each sent alone, TCP_NODELAY)
    when given; the status, head and body of the answer."""
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        head = ("POST /git/probe.git/git-receive-pack HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nx-api-key: %s\r\n"
                "Content-Type: application/x-git-receive-pack-request\r\n" % PHANTOM)
        if chunked:
            head += "Transfer-Encoding: chunked\r\n\r\n"
            step = split or len(body)
            wire = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                            for i in range(0, len(body), step)) + b"0\r\n\r\n"
        else:
            head += "Content-Length: %d\r\n\r\n" % len(body)
            wire = body
        s.sendall(head.encode())
        step = split or len(wire)
        for i in range(0, len(wire), step):
            s.sendall(wire[i:i + step])
            if split:
                time.sleep(0.002)
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = s.recv(65536)
            if not got:
                break
            data += got
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, head.decode("latin-1"), rest


def _command(gw, ref, new=None, caps=b"report-status side-band-64k"):
    old = _rev(gw, "refs/heads/main").encode()
    new = (new or old[::-1].decode()).encode()
    return old + b" " + new + b" " + ref + b"\0" + caps + b"\n"


HOSTILE = {
    "a length over 65520": lambda gw: b"fff0" + b"x" * 40,
    "a length that is not hex": lambda gw: b"00zz" + b"x" * 40,
    "a length shorter than its header": lambda gw: b"0003",
    "a ref with ..": lambda gw: pkt(_command(gw, b"refs/heads/agent/a..b")) + b"0000",
    "a ref with a control byte": lambda gw: pkt(_command(gw, b"refs/heads/agent/a\x01b"))
    + b"0000",
    "a second command list after the flush": lambda gw: (
        pkt(_command(gw, b"refs/heads/agent/x", new=ZERO)) + b"0000"
        + pkt(_command(gw, b"refs/heads/main", new=ZERO, caps=b"")) + b"0000"),
    "a body that ends inside the list": lambda gw: pkt(_command(gw, b"refs/heads/agent/x")),
    "65 KiB of commands": lambda gw: b"".join(
        pkt(_command(gw, b"refs/heads/agent/%05d" % i, new=ZERO)) for i in range(700))
    + b"0000",
}


def test_hostile_receive_pack_bodies_are_refused_and_never_forwarded(gw):
    before = _refs(gw)
    for name, make in HOSTILE.items():
        n0 = gw.git.count_requests()
        mark = gw.log.mark()
        status, head, body = _push_raw(gw, make(gw))
        assert status == 400, (name, head, body)
        assert "bad_pkt_line" in head, (name, head)
        deny = gw.log.wait(since=mark, event="error", reason="bad_pkt_line")
        assert deny["repo"] == "probe" and deny.get("detail"), (name, deny)
        assert gw.git.count_requests() == n0, name + ": reached the git server"
    assert _refs(gw) == before


def test_a_command_list_split_over_many_segments_is_read_whole(gw):
    """A push to main sent a few bytes per TCP segment, chunked and not:
    the parser's result does not depend on the split."""
    before = _refs(gw)
    body = pkt(_command(gw, b"refs/heads/main")) + b"0000" + b"PACK\0\0\0\x02\0\0\0\0"
    for chunked in (False, True):
        n0 = gw.git.count_requests()
        status, head, reply = _push_raw(gw, body, split=3, chunked=chunked)
        assert status == 200, (head, reply)
        assert "application/x-git-receive-pack-result" in head
        assert b"ng refs/heads/main egress policy: this agent may push only" in reply, reply
        assert gw.git.count_requests() == n0
    assert _refs(gw) == before


def test_explain_a_git_url_and_service(gw):
    """--explain reproduces the decisions above from the configuration."""
    def explain(*args):
        p = H.run_egressd("-c", gw.e.conf, "--policy", "agents", "--explain", *args)
        return p.returncode, p.stdout + p.stderr
    url = "http://127.0.0.1:%d/git/" % gw.port
    rc, out = explain(url + "probe.git", "--service", "git-upload-pack")
    assert rc == 0 and "repository probe, git-upload-pack" in out and "verdict: allow" in out, out
    rc, out = explain(url + "secret.git", "--service", "git-upload-pack")
    assert rc == 1 and "reason: repo_not_allowed" in out, out
    assert "this agent may not fetch secret" in out, out
    rc, out = explain("/git/probe.git", "--service", "git-receive-pack", "--ref",
                      "refs/heads/main")
    assert rc == 1 and "reason: ref_not_allowed" in out and MAY_PUSH in out, out
    rc, out = explain("/git/probe.git", "--service", "git-receive-pack", "--ref",
                      "refs/heads/agent/x")
    assert rc == 0 and "refs/heads/agent/x (update): allow" in out, out
    rc, out = explain("/git/probe.git", "--service", "git-receive-pack", "--ref", "refs/tags/v1")
    assert rc == 1 and "tags are not allowed" in out, out
    rc, out = explain("/git/probe.git/HEAD", "--method", "GET")
    assert rc == 1 and "reason: path_not_allowed" in out, out
    rc, out = explain("/git/probe.git", "--service", "git-nope")
    assert rc == 2 and "--service" in out, out
