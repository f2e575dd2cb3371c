"""From observe to enforce (issue 5, part 6): run policies in report mode,
make requests they would refuse, then `egressd --suggest LOG` prints the
rules that would allow what was reported, grouped by policy, with counts.
Pasted into the config (mode = "enforce"), they pass `egressd -t` and the
reported requests are allowed; nothing else is.

Every address in the namespace is special-purpose, so the address guard
(enforced in report mode too) refuses every request that report mode lets
through, and a suggested `hosts` rule (no networks) does not unlock those
addresses: the suggested rules are checked with --explain, and on the
running egressd by what refuses the same requests once enforced (the
address guard after DNS, no longer the name, port or method check)."""

import os
import re
import signal

import pytest

import harness as H
import service as S

POLICIES = """  { name = "watcher";
    mode = "report";
    rules = (
      { name = "api"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; }
    );
  },
  { name = "second";
    mode = "report";
    rules = (
      { name = "git"; hosts = [ "git.corp.test" ]; ports = [ 443 ];
        networks = [ "10.20.0.0/16" ]; }
    );
  },
  { name = "strict";
    mode = "enforce";
    rules = (
      { name = "api"; hosts = [ "api.allowed.test" ]; ports = [ 443 ];
        networks = [ "198.51.100.0/24" ]; }
    );
  }"""

ECHO_IP = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)

# (policy, method, destination, times): what each report-mode policy is asked
WATCHER = [
    ("CONNECT", "denied.test:443", 3),
    ("CONNECT", "git.denied.test:443", 2),
    ("CONNECT", "denied.test:8443", 1),
    ("GET", "http://pypi.denied.test/simple/", 2),
]
# enforced in report mode too (the address guard): never suggestions
GUARDED = [
    ("CONNECT", ECHO_IP, 2),
    ("GET", "http://%s/x" % H.ADDR_API, 1),
]
SECOND = [
    ("CONNECT", "llm.denied.test:443", 1),
    ("CONNECT", "api.allowed.test:443", 1),
]
STRICT = [
    ("CONNECT", "denied.test:443", 1),
    ("CONNECT", "strict-only.denied.test:443", 1),
]

# What --suggest must print: policy -> {(kind, port, method): ({dest: count}, total)}
EXPECTED = {
    "watcher": {
        ("hosts", 80, "GET"): {"pypi.denied.test": 2},
        ("hosts", 443, "CONNECT"): {"denied.test": 3, "git.denied.test": 2},
        ("hosts", 8443, "CONNECT"): {"denied.test": 1},
    },
    "second": {
        ("hosts", 443, "CONNECT"): {"api.allowed.test": 1, "llm.denied.test": 1},
    },
}

RULE_RE = re.compile(
    r'^# (suggested-\d+): (\d+) requests?(?: \(((?:[^:\s]+: \d+(?:, )?)+)\))?\n'
    r'\{ name = "\1";\n'
    r'  (hosts|networks) = \[ ((?:"[^"]+"(?:, )?)+) \];\n'
    r'  ports = \[ (\d+) \]; methods = \[ "([A-Z-]+)" \]; \}(,?)\n', re.M)


def _send(port, method, dest):
    if method == "CONNECT":
        data = H.connect_req(dest)
    else:
        host = dest.split("/")[2]
        data = b"%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
            method.encode(), dest.encode(), host.encode())
    with H.Client(port) as c:
        c.send(data)
        r = c.read_response()
    return r


@pytest.fixture
def recorded(world, egressd_factory):
    """An egressd whose three listeners use watcher, second and strict,
    after the requests above; returns (egressd, ports)."""
    ports = {"second": H.free_port(), "strict": H.free_port()}

    def config(port, log):
        listen = ", ".join('{ address = "127.0.0.1"; port = %d; policy = "%s"; }' % lp
                           for lp in ((port, "watcher"), (ports["second"], "second"),
                                      (ports["strict"], "strict")))
        return H.render_config(port, log, POLICIES, listen=listen)
    e = egressd_factory("suggest", config)
    ports["watcher"] = e.port
    H.wait_until(lambda: all(H.listening(p) for p in ports.values()), 5, what="listeners")
    # allowed and malformed requests are not suggestions either
    c, r = H.tunnel(e.port, "api.allowed.test:443")
    c.close()
    assert r.status == 200, r
    assert H.request(e.port, H.connect_req("bad_host.test:443")).status == 400
    n = 0
    for policy, reqs in (("watcher", WATCHER + GUARDED), ("second", SECOND),
                         ("strict", STRICT)):
        for method, dest, times in reqs:
            for _ in range(times):
                r = _send(ports[policy], method, dest)
                n += 1
                # report mode lets the request on to the address guard
                assert r.status == 403, r
    H.wait_until(lambda: len(e.log.find(event="close")) >= n + 2, 5,
                 what="every request's close line")
    reports = e.log.find(event="deny", mode="report")
    assert len(reports) == sum(t for _, _, t in WATCHER + SECOND), reports
    return e, ports


def _suggest(path):
    p = H.run_egressd("--suggest", path)
    assert p.returncode == 0, (p.returncode, p.stderr)
    return p.stdout


def _sections(out):
    """{policy: (header, rules text, [rule matches])}"""
    parts = re.split(r'^# policy "([^"]+)": ', out, flags=re.M)
    secs = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        header, _, rest = body.partition("\n")
        note, _, rules = rest.partition("\n")
        assert note.startswith("# Add the rules"), note
        secs[name] = (header, rules, list(RULE_RE.finditer(rules)))
    return parts[0], secs


def test_suggest_rules_grouped_by_policy_with_counts(world, recorded):
    e, _ports = recorded
    out = _suggest(e.log_path)
    head, secs = _sections(out)
    nlines = len(e.log.raw_lines())
    nreports = sum(t for _, _, t in WATCHER + SECOND)
    assert head.startswith("# egressd --suggest %s: %d lines, %d report-mode denials\n" % (
        e.log_path, nlines, nreports)), head
    assert "skipped" not in head, head
    assert sorted(secs) == sorted(EXPECTED), out
    for policy, want in EXPECTED.items():
        header, rules, found = secs[policy]
        ndest = sum(len(v) for v in want.values())
        nreq = sum(sum(v.values()) for v in want.values())
        assert header == "%d destination%s reported as would-deny (%d request%s)." % (
            ndest, "" if ndest == 1 else "s", nreq, "" if nreq == 1 else "s"), header
        got = {}
        for m in found:
            dests = re.findall(r'"([^"]+)"', m.group(5))
            key = (m.group(4), int(m.group(6)), m.group(7))
            assert key not in got, "two rules for %r:\n%s" % (key, rules)
            per = dict((k, int(v)) for k, v in re.findall(r"(\S+): (\d+)", m.group(3) or ""))
            if len(dests) == 1:
                per = {dests[0]: int(m.group(2))}
            assert sorted(per) == sorted(dests), m.group(0)
            assert sum(per.values()) == int(m.group(2)), m.group(0)
            got[key] = per
        assert got == want, "policy %s:\n%s" % (policy, rules)
        # commas between rules only: libconfig refuses a trailing one
        ends = [m.group(8) for m in RULE_RE.finditer(rules)]
        assert ends == [","] * (len(ends) - 1) + [""], rules
        # nothing in the section but those rules
        assert "".join(m.group(0) for m in found).strip() == rules.strip(), rules
    # refusals that were enforced are not suggestions
    for needle in ("strict", "strict-only.denied.test", "bad_host", H.ADDR_ECHO, H.ADDR_API,
                   "networks"):
        assert needle not in out, needle
    # the rule names are unique over the whole output
    names = re.findall(r'name = "(suggested-\d+)"', out)
    assert len(names) == len(set(names)) == 4, names


def _enforce_with(text, policy, rules_text, where):
    """The policy's mode set to enforce and the suggested rules pasted into
    its rules list, verbatim, with the one comma the suggestion's header
    asks for between them and the existing rules: after its last rule
    (append) or before its first (prepend)."""
    i = text.index('{ name = "%s";' % policy)
    j = text.index("rules = (", i) + len("rules = (")
    k = text.index("\n    );", j)
    assert 'mode = "report";' in text[i:j]
    head = text[:i] + text[i:j].replace('mode = "report";', 'mode = "enforce";')
    existing = text[j:k]
    sep = ",\n" if existing.strip() else "\n"
    if where == "append":
        body = existing + sep + rules_text.rstrip("\n")
    else:
        body = "\n" + rules_text.rstrip("\n") + sep + existing
    return head + body + text[k:]


@pytest.mark.parametrize("where", ["append", "prepend"])
def test_suggestion_pasted_and_enforced(world, recorded, watch, where):
    e, ports = recorded
    out = _suggest(e.log_path)
    _head, secs = _sections(out)
    text = open(e.conf).read()
    for policy in ("watcher", "second"):
        text = _enforce_with(text, policy, secs[policy][1], where)
    new = os.path.join(e.dir, "enforce-%s.conf" % where)
    with open(new, "w") as f:
        f.write(text)
    rc, msg = S.check_config(new)
    assert rc == 0 and "configuration OK" in msg, (
        "egressd -t refuses the config with --suggest's rules pasted (%s) into the "
        "rules lists:\n%s\n--- pasted (watcher):\n%s" % (where, msg, secs["watcher"][1]))
    assert 'mode = "report"' not in text

    # what was reported is now allowed by the policy that reported it
    for policy, reqs in (("watcher", WATCHER), ("second", SECOND)):
        for method, dest, _n in reqs:
            p = H.run_egressd("-c", new, "--explain", dest, "--method", method,
                              "--policy", policy)
            assert p.returncode == 0, (policy, method, dest, p.stdout, p.stderr)
            assert re.search(r"^policy: %s \(enforce\)$" % policy, p.stdout, re.M), p.stdout
            assert re.search(r"^verdict: allow$", p.stdout, re.M), p.stdout
            if dest != "api.allowed.test:443" or policy != "watcher":
                assert re.search(r"^rule: suggested-\d+$", p.stdout, re.M), p.stdout
    # and nothing more: another port, method or name is still refused
    for policy, method, dest in (("watcher", "CONNECT", "denied.test:444"),
                                 ("watcher", "POST", "http://pypi.denied.test/simple/"),
                                 ("watcher", "CONNECT", "other.denied.test:443"),
                                 ("watcher", "CONNECT", "%s:444" % H.ADDR_ECHO),
                                 ("second", "CONNECT", "denied.test:443"),
                                 ("strict", "CONNECT", "denied.test:443")):
        p = H.run_egressd("-c", new, "--explain", dest, "--method", method, "--policy", policy)
        assert p.returncode == 1, (policy, method, dest, p.stdout, p.stderr)

    # the operator's last step: the running egressd reloads into enforce mode
    os.replace(new, e.conf)
    mark = e.log.mark()
    e.signal(signal.SIGHUP)
    e.log.wait(since=mark, event="reload", timeout=5)
    w = watch()
    dmark = world.dns.mark()
    # the reported requests pass the policy now: resolved, then refused by
    # the address guard only (this namespace has no public address)
    for policy, reqs in (("watcher", WATCHER), ("second", SECOND)):
        for method, dest, _n in reqs:
            r = _send(ports[policy], method, dest)
            host = dest.split("/")[2] if "//" in dest else dest.rsplit(":", 1)[0]
            port = 80 if "//" in dest else int(dest.rsplit(":", 1)[1])
            H.assert_refusal(r, "destination_ip_prohibited", "address_prohibited",
                             "%s:%d" % (host, port), policy)
            line = e.log.wait(since=mark, event="deny", host=host, port=port, policy=policy)
            assert line["mode"] == "enforce" and line["reason"] == "address_prohibited", line
    queried = world.dns.queries_since(dmark)
    for host in ("denied.test", "git.denied.test", "pypi.denied.test", "llm.denied.test",
                 "api.allowed.test"):
        assert host in queried, (host, queried)
    # what was not reported is refused before DNS, by the name, port or method
    dmark = world.dns.mark()
    for port, method, dest, reason in (
            (ports["watcher"], "CONNECT", "denied.test:444", "port_not_allowed"),
            (ports["watcher"], "POST", "http://pypi.denied.test/simple/", "method_not_allowed"),
            (ports["watcher"], "CONNECT", "other.denied.test:443", "host_not_allowed"),
            (ports["second"], "CONNECT", "denied.test:443", "host_not_allowed")):
        if method == "CONNECT":
            r = H.request(port, H.connect_req(dest))
        else:
            r = H.request(port, b"POST %s HTTP/1.1\r\nHost: pypi.denied.test\r\n"
                          b"Content-Length: 0\r\n\r\n" % dest.encode())
        assert r.status == 403 and reason in r.text(), (dest, r)
    assert world.dns.queries_since(dmark) == []
    w.assert_nothing()
    assert not e.log.find(since=mark, mode="report", event="deny")
