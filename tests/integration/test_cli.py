"""Command line: -t, --explain, -V."""

import os

import pytest

import harness as H


def _conf(world, tmp_path, text=None):
    path = str(tmp_path / "egressd.conf")
    if text is None:
        text = H.render_config(H.free_port(), str(tmp_path / "decisions.log"), world.policy)
    with open(path, "w") as f:
        f.write(text)
    return path, text


def test_check_valid_config(world, tmp_path):
    path, _ = _conf(world, tmp_path)
    p = H.run_egressd("-t", "-c", path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "%s: configuration OK" % path, (p.stdout, p.stderr)


def test_check_repo_default_config(world):
    path = os.path.join(H.ROOT, "conf", "egressd.conf")
    p = H.run_egressd("-t", "-c", path)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout


@pytest.mark.parametrize("old,new,marker", [b[1:] for b in H.BAD_CONFIGS],
                         ids=[b[0] for b in H.BAD_CONFIGS])
def test_check_invalid_config_names_file_and_line(world, tmp_path, old, new, marker):
    base = H.render_config(H.free_port(), str(tmp_path / "decisions.log"), world.policy)
    text, line_no = H.break_config(base, old, new, marker)
    path, _ = _conf(world, tmp_path, text)
    p = H.run_egressd("-t", "-c", path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "%s:%d:" % (path, line_no) in p.stderr, (line_no, p.stderr)
    assert "configuration OK" not in p.stdout


@pytest.mark.parametrize("snippet", [
    'policies = ( { name = "p"; rules = ( { hosts = [ "a.test" ]; } ); } );',
    'policies = ( { name = "p"; rules = ( { ports = [ 443 ]; } ); } );',
    'policies = ( { name = "p"; mode = "audit"; rules = ( ); } );',
], ids=["rule-without-ports", "rule-without-hosts-or-networks", "unknown-mode"])
def test_check_more_invalid(world, tmp_path, snippet):
    """A rule without ports; a rule with neither hosts nor networks; an unknown mode."""
    text = ('listen = ( { address = "127.0.0.1"; port = 3128; } );\n'
            "# line 2\n" + snippet + "\n")
    path, _ = _conf(world, tmp_path, text)
    p = H.run_egressd("-t", "-c", path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "%s:3:" % path in p.stderr, p.stderr


def test_check_missing_file(world, tmp_path):
    path = str(tmp_path / "nope.conf")
    p = H.run_egressd("-t", "-c", path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert path in p.stderr


def _explain(path, target):
    return H.run_egressd("-c", path, "--explain", target)


def _fields(out):
    d = {}
    for line in out.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            d.setdefault(k.strip(), v.strip())
    return d


def test_explain_allow(world, tmp_path):
    path, _ = _conf(world, tmp_path)
    p = _explain(path, "api.allowed.test:443")
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert "verdict: allow" in lines, p.stdout
    assert "rule: api" in lines, p.stdout
    assert "destination: api.allowed.test:443 (CONNECT)" in lines, p.stdout
    assert "policy: agent (enforce)" in lines, p.stdout
    f = _fields(p.stdout)
    assert f.get("reason") == "allowed", p.stdout
    # the spec only says "an addresses: ... line": it may list the resolved
    # addresses or the condition they must meet (the rule's networks)
    assert H.ADDR_API in f.get("addresses", "") or "198.51.100.0/24" in f.get("addresses", ""), \
        p.stdout


def test_explain_pinned_private(world, tmp_path):
    path, _ = _conf(world, tmp_path)
    p = _explain(path, "https://git.corp.test/some/repo.git")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "verdict: allow" in p.stdout.splitlines() and "rule: git" in p.stdout.splitlines()
    a = _fields(p.stdout).get("addresses", "")
    assert H.ADDR_GIT in a or "10.20.0.0/16" in a, p.stdout


def test_explain_deny(world, tmp_path):
    path, _ = _conf(world, tmp_path)
    dmark = world.dns.mark()
    p = _explain(path, "https://denied.test/")
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert "verdict: deny" in lines, p.stdout
    assert "reason: host_not_allowed" in lines, p.stdout
    assert "destination: denied.test:443 (CONNECT)" in lines, p.stdout
    assert "rule: -" in lines, p.stdout
    assert "denied.test" not in world.dns.queries_since(dmark)


def test_explain_port(world, tmp_path):
    path, _ = _conf(world, tmp_path)
    p = _explain(path, "https://api.allowed.test:8443/v1")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "reason: port_not_allowed" in p.stdout.splitlines(), p.stdout
    assert "destination: api.allowed.test:8443 (CONNECT)" in p.stdout.splitlines(), p.stdout


@pytest.mark.parametrize("target", ["0x7f.1:443", "2130706433:443", "api_x.test:443"])
def test_explain_malformed(world, tmp_path, target):
    path, _ = _conf(world, tmp_path)
    p = _explain(path, target)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "malformed" in (p.stdout + p.stderr).lower(), (p.stdout, p.stderr)


def test_explain_bad_config(world, tmp_path):
    path, _ = _conf(world, tmp_path, "listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
                    "policies = ( { name = \"p\"; rulez = ( ); } );\n")
    p = _explain(path, "api.allowed.test:443")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "%s:2:" % path in p.stderr, p.stderr


def test_version(world):
    p = H.run_egressd("-V")
    assert p.returncode == 0, p.stderr
    version = open(os.path.join(H.ROOT, "VERSION")).read().strip()
    assert p.stdout.strip() == "egressd " + version, p.stdout


@pytest.mark.parametrize("target,verdict", [
    ("a.wild.test:443", "allow"),
    ("a.b.wild.test:443", "allow"),
    ("wild.test:443", "deny"),        # *.suffix matches proper subdomains only
    ("awild.test:443", "deny"),
    ("a.wild.test.evil:443", "deny"),
    ("A.WILD.TEST.:443", "allow"),    # normalised first
])
def test_explain_wildcard_patterns(world, tmp_path, target, verdict):
    policy = """  { name = "wild";
    rules = ( { name = "w"; hosts = [ "*.wild.test" ]; ports = [ 443 ]; } );
  }"""
    path, _ = _conf(world, tmp_path, H.render_config(H.free_port(), str(tmp_path / "l"), policy))
    p = _explain(path, target)
    assert p.returncode == (0 if verdict == "allow" else 1), (p.stdout, p.stderr)
    assert "verdict: %s" % verdict in p.stdout.splitlines(), p.stdout
    if verdict == "deny":
        assert "reason: host_not_allowed" in p.stdout.splitlines(), p.stdout
