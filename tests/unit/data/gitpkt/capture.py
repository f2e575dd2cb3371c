#!/usr/bin/python3
"""Capture real receive-pack request bodies from git, and check that git
accepts and prints the refusals test_gitpkt.c expects of gitpkt.c.

    python3 capture.py DIR            write DIR/<case>.body for every case
    python3 capture.py --verify DIR   answer each case's push with
                                      DIR/<case>.refusal and check what git
                                      prints

A throwaway server on 127.0.0.1 answers GET .../info/refs with
git http-backend (CGI) and records the POST .../git-receive-pack body.  When
capturing it answers the POST with a 403, so that nothing is pushed and
every case starts from the same repository; git's "0000" probe (a push
larger than http.postBuffer) goes to http-backend, as the gateway passes it.
Nothing leaves the machine.  The commits' ids differ from run to run; the
refusals name refs only, so one .refusal holds for every capture.
"""
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

BACKEND = "/usr/lib/git-core/git-http-backend"
AGENT = "refs/heads/agent/*"
POLICY = "egress policy: "
ONLY = POLICY + "this agent may push only " + AGENT
WHOLE = POLICY + "push refused whole because another ref was refused"

# name, repository, git options, push arguments, advertised capabilities to
# drop, the lines git must print when refused.
CASES = [
    ("create-branch", "org/repo.git", [], ["HEAD:refs/heads/agent/x"], [],
     [" ! [remote rejected] HEAD -> agent/x (%s)" % WHOLE]),
    ("update-main", "org/repo.git", [], ["main:main"], [],
     [" ! [remote rejected] main -> main (%s)" % ONLY]),
    ("two-refs", "org/repo.git", [], ["main:main", "main:refs/heads/agent/y"],
     [], [" ! [remote rejected] main -> main (%s)" % ONLY,
          " ! [remote rejected] main -> agent/y (%s)" % WHOLE]),
    ("two-refs-no-sideband", "org/repo.git", [],
     ["main:main", "main:refs/heads/agent/y"], ["side-band-64k"],
     [" ! [remote rejected] main -> main (%s)" % ONLY,
      " ! [remote rejected] main -> agent/y (%s)" % WHOLE]),
    ("report-status-v1", "org/repo.git", [], ["main:main"],
     ["report-status-v2"],
     [" ! [remote rejected] main -> main (%s)" % ONLY]),
    ("delete", "org/repo.git", [], [":refs/heads/agent/old"], [],
     [" ! [remote rejected] agent/old (%sdeleting refs is not allowed)"
      % POLICY]),
    ("tag", "org/repo.git", [], ["v1"], [],
     [" ! [remote rejected] v1 -> v1 (%stags are not allowed)" % POLICY]),
    ("push-options", "org/repo.git", [],
     ["-o", "ci.skip", "-o", "merge_request.title=Hello world", "main:main"],
     [], [" ! [remote rejected] main -> main (%s)" % ONLY]),
    ("atomic", "org/repo.git", [],
     ["--atomic", "main:main", "main:refs/heads/agent/y"], [],
     [" ! [remote rejected] main -> main (%s)" % ONLY,
      " ! [remote rejected] main -> agent/y (%s)" % WHOLE]),
    ("shallow", "org/repo.git", ["shallow"], ["HEAD:refs/heads/main"], [],
     [" ! [remote rejected] HEAD -> main (%s)" % ONLY]),
    ("sha256", "org/sha.git", ["sha256"],
     ["main:main", "main:refs/heads/agent/y"], [],
     [" ! [remote rejected] main -> main (%s)" % ONLY,
      " ! [remote rejected] main -> agent/y (%s)" % WHOLE]),
]


def git(*args, cwd=None, check=True):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=os.environ["TMPHOME"],
               GIT_AUTHOR_NAME="egressd test", GIT_AUTHOR_EMAIL="test@egressd.invalid",
               GIT_COMMITTER_NAME="egressd test",
               GIT_COMMITTER_EMAIL="test@egressd.invalid", LC_ALL="C")
    return subprocess.run(["git"] + list(args), cwd=cwd, env=env, check=check,
                          capture_output=True, text=True)


def strip_caps(adv, drop):
    """The advertisement without the capabilities in drop."""
    out, i, first = b"", 0, True
    while i < len(adv):
        n = int(adv[i:i + 4], 16)
        if n == 0:
            out, i = out + b"0000", i + 4
            continue
        pay, i = adv[i + 4:i + n], i + n
        if first and b"\0" in pay:
            first = False
            head, _, caps = pay.partition(b"\0")
            caps = b" ".join(c for c in caps.rstrip(b"\n").split(b" ")
                             if c.decode() not in drop)
            pay = head + b"\0" + caps + b"\n"
        out += b"%04x" % (len(pay) + 4) + pay
    return out


class Server(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = {}  # root, case, drop, answer (a .refusal's bytes or None)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def reply(self, status, ctype, data):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def backend(self, path, query, data):
        env = dict(os.environ, GIT_PROJECT_ROOT=self.state["root"],
                   GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path, QUERY_STRING=query,
                   REQUEST_METHOD=self.command, REMOTE_USER="agent",
                   REMOTE_ADDR="127.0.0.1",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(data)))
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run([BACKEND], input=data, env=env,
                             capture_output=True, check=True).stdout
        head, _, out = out.partition(b"\r\n\r\n")
        status, ctype = 200, "text/plain"
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k.lower() == "content-type":
                ctype = v.strip()
        if path.endswith("/info/refs") and "receive-pack" in query:
            out = strip_caps(out, self.state["drop"])
        self.reply(status, ctype, out)

    def handle_any(self):
        data = self.body() if self.command == "POST" else b""
        path, _, query = self.path.partition("?")
        if (self.command == "POST" and path.endswith("/git-receive-pack")
                and data != b"0000"):
            self.state["bodies"].append(data)
            if self.state["answer"] is not None:
                return self.reply(200, "application/x-git-receive-pack-result",
                                  self.state["answer"])
            return self.reply(403, "text/plain", b"captured\n")
        self.backend(path, query, data)

    do_GET = do_POST = handle_any

    def log_message(self, *args):
        pass


def setup(tmp, port):
    """Bare repositories with main and agent/old, and clones of them."""
    root = os.path.join(tmp, "repos")
    for name, fmt in (("org/repo.git", "sha1"), ("org/sha.git", "sha256")):
        bare = os.path.join(root, name)
        git("init", "-q", "--bare", "--object-format=" + fmt, bare)
        git("config", "http.receivepack", "true", cwd=bare)
        git("config", "receive.advertisePushOptions", "true", cwd=bare)
        work = os.path.join(tmp, "seed-" + fmt)
        git("init", "-q", "--object-format=" + fmt, "-b", "main", work)
        with open(os.path.join(work, "a"), "w") as f:
            f.write("one\n")
        git("add", "a", cwd=work)
        git("commit", "-qm", "one", cwd=work)
        git("push", "-q", bare, "main:main", "main:refs/heads/agent/old", cwd=work)
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=bare)
    Server.state.update(root=root, drop=[], answer=None, bodies=[])
    url = "http://127.0.0.1:%d/" % port
    clones = {}
    for key, repo, extra in (("", "org/repo.git", []),
                             ("shallow", "org/repo.git", ["--depth", "1"]),
                             ("sha256", "org/sha.git", [])):
        work = os.path.join(tmp, "clone-" + (key or "full"))
        git("clone", "-q", *extra, url + repo, work)
        with open(os.path.join(work, "b"), "w") as f:
            f.write("two %s\n" % key)
        git("add", "b", cwd=work)
        git("commit", "-qm", "two", cwd=work)
        if key == "":
            git("tag", "v1", cwd=work)
        clones[key] = work
    return root, url, clones


def main():
    verify = sys.argv[1:2] == ["--verify"]
    out = os.path.abspath(sys.argv[-1])
    tmp = tempfile.mkdtemp(prefix="gitpkt-capture-")
    os.environ["TMPHOME"] = tmp
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    failed = 0
    try:
        root, url, clones = setup(tmp, srv.server_address[1])
        for name, repo, opts, args, drop, want in CASES:
            work = clones["shallow" if "shallow" in opts else
                          "sha256" if "sha256" in opts else ""]
            Server.state.update(drop=drop, bodies=[], answer=None)
            if verify:
                with open(os.path.join(out, name + ".refusal"), "rb") as f:
                    Server.state["answer"] = f.read()
            r = git("push", url + repo, *args, cwd=work, check=False)
            if verify:
                lines = r.stderr.splitlines()
                missing = [w for w in want if w not in lines]
                ok = r.returncode == 1 and not missing
                failed += not ok
                print("%-22s %s" % (name, "ok" if ok else "FAILED"))
                if not ok:
                    print("  missing %r\n  git said:\n    %s" % (
                        missing, "\n    ".join(lines)))
                continue
            if len(Server.state["bodies"]) != 1:
                print("%s: no body captured: %s" % (name, r.stderr))
                failed += 1
                continue
            with open(os.path.join(out, name + ".body"), "wb") as f:
                f.write(Server.state["bodies"][0])
            print("%-22s %d bytes" % (name, len(Server.state["bodies"][0])))
    finally:
        srv.shutdown()
        shutil.rmtree(tmp)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
