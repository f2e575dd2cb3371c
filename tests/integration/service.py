"""Helpers of the shared-service tests: identities and credentials, limits'
answers, the admin listener and its metrics, clients with a chosen source
address, TLS client certificates.

Like harness.py, everything here runs inside run.sh's network namespace:
the proxy and admin listeners are on its 127.0.0.1, clients bind source
addresses of its lo (all of 127.0.0.0/8 is there), and every wait is bounded.
"""

import base64
import http.client
import os
import re

import harness as H

PHRASES = {
    200: "Connection established",
    403: "Forbidden",
    407: "Proxy Authentication Required",
    429: "Too Many Requests",
}
PROXY_AUTHENTICATE = 'Basic realm="egressd", Bearer realm="egressd"'

# Source addresses of identified clients (on lo: 127.0.0.0/8 is local).
SRC_A = "127.0.0.2"
SRC_B = "127.0.0.3"
SRC_NONE = "127.0.0.4"  # in no identity's sources


# ---------------------------------------------------------------- config


def _strings(xs):
    return "[ %s ]" % ", ".join('"%s"' % x for x in xs)


def identity_text(name, policy, sources=None, tls_names=None, limits=None):
    parts = ['name = "%s";' % name, 'policy = "%s";' % policy]
    if sources:
        parts.append("sources = %s;" % _strings(sources))
    if tls_names:
        parts.append("tls_names = %s;" % _strings(tls_names))
    if limits:
        parts.append("limits = { %s };" % " ".join("%s = %d;" % kv for kv in limits.items()))
    return "  { %s }" % " ".join(parts)


def render(port, log_path, policies, identify=None, identities=(), credentials=None,
           admin_port=None, workers=None, limits=None, listen=None, extra=""):
    """A whole config: harness.render_config plus the shared-service keys.
    identify: list of methods for the one listener (no policy on it then);
    identities: texts from identity_text; credentials: file name, relative
    to the config's directory; admin_port: an admin listener on 127.0.0.1."""
    if listen is None and identify is not None:
        listen = '{ address = "127.0.0.1"; port = %d; identify = %s; }' % (
            port, _strings(identify))
    text = H.render_config(port, log_path, policies, limits=limits, listen=listen)
    if identities:
        text += "identities = (\n%s\n);\n" % ",\n".join(identities)
    if credentials:
        text += 'credentials = "%s";\n' % credentials
    if admin_port:
        text += 'admin = { address = "127.0.0.1"; port = %d; };\n' % admin_port
    if workers is not None:
        text += "workers = %d;\n" % workers
    return text + extra


def hash_secret(name, kind, secret):
    """The credentials-file line egressd --hash-secret prints for secret."""
    p = H.run_egressd("--hash-secret", name, kind, input=secret + "\n")
    assert p.returncode == 0, "--hash-secret %s %s: rc %d: %s" % (name, kind, p.returncode,
                                                                 p.stderr)
    line = p.stdout.strip()
    assert re.match(r"^%s %s [0-9a-f]{32} [0-9a-f]{64}$" % (re.escape(name), kind), line), line
    assert secret not in p.stdout, "the secret itself is in --hash-secret's output"
    return line


def write_credentials(directory, entries, name="credentials"):
    """entries: [(identity, "basic"|"bearer", secret)]. Returns the file name."""
    lines = ["# egressd credentials (egressd --hash-secret)"]
    lines += [hash_secret(n, k, s) for n, k, s in entries]
    with open(os.path.join(directory, name), "w") as f:
        f.write("\n".join(lines) + "\n")
    return name


def check_config(path):
    """egressd -t -c path: (returncode, stdout + stderr)."""
    p = H.run_egressd("-t", "-c", path)
    return p.returncode, p.stdout + p.stderr


# ---------------------------------------------------------------- clients


def basic(user, secret):
    return b"Basic " + base64.b64encode(("%s:%s" % (user, secret)).encode())


def bearer(token):
    return b"Bearer " + token.encode()


def connect_req(target, auth=None):
    extra = b"" if auth is None else b"Proxy-Authorization: " + auth + b"\r\n"
    return H.connect_req(target, extra)


def request(port, data, src=None, timeout=5.0):
    """harness.request from a chosen source address."""
    return H.request(port, data, timeout, src=src)


def tunnel(port, target, auth=None, src=None, timeout=5.0):
    """CONNECT through the proxy; returns (client, response)."""
    c = H.Client(port, timeout, src=src)
    c.send(connect_req(target, auth))
    return c, c.read_response(timeout)


def assert_answer(r, status, ptype, reason, dest=None):
    """egressd's own answer (403/407/429): status line, Proxy-Status naming
    the reason, a framed body, and the connection closed."""
    assert r.status == status, "expected %d %s, got %r" % (status, reason, r)
    assert r.version == "HTTP/1.1" and r.reason == PHRASES[status], r
    ps = r.header("Proxy-Status")
    assert ps is not None, "no Proxy-Status: %r" % r
    name, params = H.proxy_status_params(ps)
    assert name == "egressd" and params.get("error") == ptype, ps
    details = params.get("details", "")
    assert details.split(":")[0] == reason, "details should name %r: %s" % (reason, ps)
    if dest is not None:
        assert details == "%s: %s" % (reason, dest), ps
    cl = r.header("Content-Length")
    assert cl is not None and int(cl) == len(r.body), r
    assert (r.header("Connection") or "").lower() == "close", r
    assert r.eof or r.reset, "egressd kept the connection open after %d" % status
    if status == 407:
        assert r.header("Proxy-Authenticate") == PROXY_AUTHENTICATE, r
    else:
        assert r.header("Proxy-Authenticate") is None, r
    assert reason in r.text(), r.text()


# ---------------------------------------------------------------- admin


class AdminResponse(H.Message):
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def __repr__(self):
        return "<AdminResponse %d %r %r>" % (self.status, self.reason, self.body[:200])


class Admin:
    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port = host, port

    def get(self, path, method="GET", body=None, timeout=5.0):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return AdminResponse(r.status, r.reason, r.getheaders(), r.read())
        finally:
            c.close()

    def wait_up(self, timeout=5.0):
        def up():
            try:
                return self.get("/healthz", timeout=1).status == 200
            except OSError:
                return False
        H.wait_until(up, timeout, what="admin listener on 127.0.0.1:%d" % self.port)
        return self

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return Metrics(r.text(), r.header("Content-Type"))


class Metrics:
    """/metrics parsed by prometheus_client's text parser."""

    def __init__(self, text, content_type=None):
        # imported here: without python3-prometheus-client only the tests
        # that scrape fail (scripts/deps.sh test installs it)
        from prometheus_client.parser import text_string_to_metric_families
        self.text = text
        self.content_type = content_type
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {}
        for f in self.families.values():
            for s in f.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.samples, "sample %r twice" % (key,)
                self.samples[key] = s.value

    def value(self, name, default=None, **labels):
        v = self.samples.get((name, tuple(sorted(labels.items()))))
        if v is None:
            assert default is not None, "no sample %s%r in:\n%s" % (name, labels, self.text)
            return default
        return v

    def requests(self, decision, reason, policy):
        """egressd_requests_total{decision,reason,policy}; 0 when absent."""
        return self.value("egressd_requests_total", 0.0, decision=decision, reason=reason,
                          policy=policy)

    def sum(self, name, **labels):
        """Sum of name's samples whose labels include these."""
        return sum(v for (n, ls), v in self.samples.items()
                   if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


# ---------------------------------------------------------------- TLS certificates


def make_ca(outdir, *names):
    """certs/make-test-ca.sh: OUTDIR/ca.crt, ca.key, server.crt, server.key."""
    r = H.run(["sh", os.path.join(H.ROOT, "certs", "make-test-ca.sh"), outdir] + list(names))
    assert r.returncode == 0, "make-test-ca.sh: %s%s" % (r.stdout, r.stderr)
    return outdir


def make_client_cert(outdir, name, *sans):
    """certs/make-client-cert.sh: OUTDIR/NAME.crt and NAME.key, signed by
    OUTDIR's CA. Returns (cert, key)."""
    r = H.run(["sh", os.path.join(H.ROOT, "certs", "make-client-cert.sh"), outdir, name]
              + list(sans))
    assert r.returncode == 0, "make-client-cert.sh: %s%s" % (r.stdout, r.stderr)
    return os.path.join(outdir, name + ".crt"), os.path.join(outdir, name + ".key")
