"""The harness on its own, without egressd: if these fail, the other
failures say nothing about egressd."""

import os
import socket
import subprocess

import harness as H


def test_namespace_addresses(world):
    out = H.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout
    for a in H.LO_ADDRS + ["127.0.0.1"]:
        assert " %s/" % a in out, out
    # only lo exists: nothing can leave this namespace
    links = H.run(["ip", "-o", "link", "show"]).stdout.strip().splitlines()
    assert len(links) == 1 and ": lo:" in links[0], links


def test_dnsmasq_answers_and_logs(world):
    mark = world.dns.mark()
    assert H.dns_query("api.allowed.test") == (0, [H.ADDR_API])
    assert H.dns_query("git.corp.test") == (0, [H.ADDR_GIT])
    assert H.dns_query("metadata.test") == (0, [H.ADDR_METADATA])
    assert H.dns_query("api.allowed.test", qtype=28) == (0, [])  # NODATA, not REFUSED
    assert H.dns_query("v6loop.test", qtype=28) == (0, ["::1"])
    assert H.dns_query("nx.allowed.test")[0] == 3  # NXDOMAIN
    assert H.dns_query("noaddr.allowed.test") == (0, [])  # exists, no address
    assert H.dns_query("refused.allowed.test")[0] == 5  # REFUSED
    assert sorted(H.dns_query("mixed.allowed.test")[1]) == sorted([H.ADDR_PRIVATE, H.ADDR_API])
    qs = world.dns.queries_since(mark)
    assert "api.allowed.test" in qs and "metadata.test" in qs
    assert "denied.test" not in qs


def test_cert_script_is_idempotent(world, tmp_path):
    script = os.path.join(H.ROOT, "certs", "make-test-ca.sh")
    out = str(tmp_path / "c")
    r1 = H.run(["sh", script, out, "a.test", "ip:192.0.2.1"])
    assert r1.returncode == 0 and r1.stdout == "" and r1.stderr == ""
    before = open(os.path.join(out, "server.crt")).read()
    r2 = H.run(["sh", script, out, "a.test", "ip:192.0.2.1"])
    assert r2.returncode == 0 and r2.stdout == "" and r2.stderr == ""
    assert open(os.path.join(out, "server.crt")).read() == before
    text = H.run(["openssl", "x509", "-in", os.path.join(out, "server.crt"), "-noout", "-text"]).stdout
    assert "DNS:a.test" in text and "IP Address:192.0.2.1" in text
    assert "prime256v1" in text or "P-256" in text
    v = H.run(["openssl", "verify", "-CAfile", os.path.join(out, "ca.crt"),
               os.path.join(out, "server.crt")])
    assert v.returncode == 0, v.stdout + v.stderr


def test_curl_reaches_upstreams_directly(world):
    for name, addr, label in (("api.allowed.test", H.ADDR_API, "api"),
                              ("git.corp.test", H.ADDR_GIT, "git")):
        p = subprocess.run(["curl", "-sS", "--max-time", "5", "--noproxy", "*", "--cacert", world.ca,
                            "--resolve", "%s:443:%s" % (name, addr), "https://%s/" % name],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        assert "upstream %s" % label in p.stdout


def test_canary_records_connections_and_bytes(world, watch):
    c = world.canary["canary-private"]
    w = watch([c])
    n = len(c.received())
    with socket.create_connection((H.ADDR_PRIVATE, 443), timeout=2) as s:
        s.sendall(b"ping")
    H.wait_until(lambda: len(c.received()) == n + 4, 3, what="canary to record bytes")
    assert w.new() == {"canary-private": (1, 4)}
    # and it does count as "touched"
    try:
        w.assert_nothing(settle=0)
    except AssertionError:
        pass
    else:
        raise AssertionError("Watch.assert_nothing missed a connection")


def test_echo_eof_reply_bulk_servers(world):
    with socket.create_connection((H.ADDR_ECHO, H.PORT_ECHO), timeout=2) as s:
        s.sendall(b"hello")
        assert s.recv(100) == b"hello"
    with socket.create_connection((H.ADDR_ECHO, H.PORT_EOF_REPLY), timeout=5) as s:
        s.sendall(b"abc")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            data += b
    assert data.startswith(b"got 3 bytes sha256 ")
    assert data.endswith(H.EOF_REPLY_PAYLOAD)
    digest, size = H.bulk_digest()
    h = H.hashlib.sha256()
    n = 0
    with socket.create_connection((H.ADDR_ECHO, H.PORT_BULK), timeout=10) as s:
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
    assert (n, h.hexdigest()) == (size, digest)


def test_udp_blackhole_drops(world):
    bh = H.UdpBlackhole()
    try:
        try:
            H.dns_query("api.allowed.test", server=("127.0.0.1", bh.port), timeout=0.3)
        except socket.timeout:
            pass
        else:
            raise AssertionError("blackhole answered")
        H.wait_until(lambda: bh.count >= 1, 2, what="blackhole to count the query")
    finally:
        bh.stop()
