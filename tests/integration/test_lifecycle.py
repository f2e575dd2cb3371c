"""Signals and timeouts: SIGTERM drain, idle timeout, SIGUSR1 log reopen."""

import os
import signal

import pytest

import harness as H

ECHO = "%s:%d" % (H.ADDR_ECHO, H.PORT_ECHO)


@pytest.fixture
def drainer(world, egressd_factory):
    return egressd_factory("drain", lambda port, log: H.render_config(
        port, log, world.policy, limits={"drain_timeout_ms": 3000}))


def test_sigterm_drains_open_tunnel_then_exits_0(world, egressd_factory):
    # A deadline far beyond every bound below, so that exiting "when the
    # tunnel closed" cannot be mistaken for exiting at the deadline on a
    # busy machine.
    e = egressd_factory("drain-long", lambda port, log: H.render_config(
        port, log, world.policy, limits={"drain_timeout_ms": 20000}))
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        assert c.echo(b"before") == b"before"
        mark = e.log.mark()
        e.signal(signal.SIGTERM)
        t0 = H.time.monotonic()
        # stops accepting at once (bounded generously: shared CI machines)
        H.wait_until(lambda: H.refuses_connections(e.port), 5.0, what="listener to close")
        # the open tunnel still works within the grace period
        H.time.sleep(0.3)
        assert e.alive(), "exited with a tunnel open, before drain_timeout_ms"
        assert c.echo(b"during drain") == b"during drain"
    # the tunnel closed: egressd exits 0 well before the deadline
    rc = e.proc.wait(timeout=12)
    assert rc == 0, (rc, e.stderr())
    assert H.time.monotonic() - t0 < 15, "waited for the deadline although the tunnel closed"
    close = e.log.wait(since=0, event="close", host=H.ADDR_ECHO)
    assert close["bytes_up"] == len(b"beforeduring drain"), close
    assert e.log.find(since=mark, event="stop"), e.log.since(mark)


def test_sigterm_deadline_closes_tunnel_and_exits_0(world, drainer):
    e = drainer
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        assert c.echo(b"x") == b"x"
        e.signal(signal.SIGTERM)
        t0 = H.time.monotonic()
        # the client keeps the tunnel open: egressd closes it at the deadline
        rest = c.recv_to_eof(timeout=12)
        took = H.time.monotonic() - t0
        assert rest == b""
        # Not before the deadline; the upper bound only catches a hang.
        assert 2.5 <= took <= 10, "tunnel closed %.1fs after SIGTERM; drain_timeout_ms=3000" % took
    rc = e.proc.wait(timeout=3)
    assert rc == 0, (rc, e.stderr())
    close = e.log.wait(event="close", host=H.ADDR_ECHO)
    assert close["reason"] == "shutdown", close


def test_idle_timeout_closes_tunnel(world, egressd_factory):
    e = egressd_factory("idle", lambda port, log: H.render_config(
        port, log, world.policy, limits={"idle_timeout_ms": 1000}))
    mark = e.log.mark()
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        # traffic keeps it open past the idle timeout
        for i in range(6):
            assert c.echo(b"tick %d" % i) == b"tick %d" % i
            H.time.sleep(0.35)
        t0 = H.time.monotonic()
        assert c.recv_to_eof(timeout=5) == b""
        took = H.time.monotonic() - t0
        assert 0.5 <= took < 4, "idle tunnel closed after %.1fs (idle_timeout_ms=1000)" % took
    close = e.log.wait(since=mark, event="close", host=H.ADDR_ECHO)
    assert close["reason"] == "idle_timeout", close
    assert close["bytes_up"] == close["bytes_down"] == sum(len(b"tick %d" % i) for i in range(6))


def test_sigusr1_reopens_log(world, egressd_factory):
    e = egressd_factory("reopen", lambda port, log: H.render_config(port, log, world.policy))
    H.request(e.port, H.connect_req("denied.test:443"))
    e.log.wait(event="deny")
    rotated = e.log_path + ".1"
    os.rename(e.log_path, rotated)
    e.signal(signal.SIGUSR1)
    H.wait_until(lambda: os.path.exists(e.log_path), 3, what="the log file to be reopened")
    client_mark = e.log.mark()  # client ports get reused
    r = H.request(e.port, H.connect_req("denied.test:443"))
    e.log.wait(since=client_mark, event="deny", client=r.client)
    assert e.alive()
    assert all(l.get("client") != r.client for l in H.JsonLog(rotated).lines())


def test_second_signal_stops_at_once(world, egressd_factory):
    """README: a second SIGTERM/SIGINT during the drain stops at once."""
    e = egressd_factory("drain2", lambda port, log: H.render_config(
        port, log, world.policy, limits={"drain_timeout_ms": 20000}))
    e.expect_rc = None  # "stops at once": no exit status is promised
    c, r = H.tunnel(e.port, ECHO)
    with c:
        assert r.status == 200, r
        e.signal(signal.SIGINT)
        # Generous bounds: CI machines are shared and busy.  What is checked
        # is "before the 20 s drain deadline", not a latency.
        H.wait_until(lambda: H.refuses_connections(e.port), 5.0, what="listener to close")
        assert c.echo(b"still draining") == b"still draining"
        t0 = H.time.monotonic()
        e.signal(signal.SIGINT)
        e.proc.wait(timeout=10)
        assert H.time.monotonic() - t0 < 10, "second signal did not stop egressd at once"
        assert c.recv_to_eof(timeout=5) == b""
