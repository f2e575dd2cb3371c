"""Every core (issue 5, part 4): `workers = 4` runs four event loops, each
with a SO_REUSEPORT listener of its own; many clients at once all get
through; connection numbers stay unique across workers."""

import asyncio
import os

import pytest

import harness as H
import loadgen as L
import service as S

N_WORKERS = 4
N_CLIENTS = 200


def _listeners(port, host_hex="0100007F"):
    """Listening sockets on 127.0.0.1:port in this namespace."""
    want = "%s:%04X" % (host_hex, port)
    with open("/proc/net/tcp") as f:
        return sum(1 for line in f.readlines()[1:]
                   if line.split()[1] == want and line.split()[3] == "0A")


@pytest.fixture
def echo_port(world):
    port = H.free_port(H.ADDR_ECHO)
    srv = L.EchoServer([(H.ADDR_ECHO, port)], world.tmp).start()
    yield port
    srv.stop()


def test_many_clients_on_four_workers(world, egressd_factory, echo_port):
    admin_port = H.free_port()
    policy = """  { name = "load";
    rules = ( { name = "echo"; networks = [ "%s/32" ]; ports = [ %d ];
                methods = [ "CONNECT" ]; } );
  }""" % (H.ADDR_ECHO, echo_port)
    e = egressd_factory("workers", lambda port, log: S.render(
        port, log, policy, admin_port=admin_port, workers=N_WORKERS))
    admin = S.Admin(admin_port).wait_up()
    start = e.log.wait(event="start")
    assert "%d workers" % N_WORKERS in start.get("message", ""), start
    H.wait_until(lambda: _listeners(e.port) == N_WORKERS, 3,
                 what="%d SO_REUSEPORT listeners on the port" % N_WORKERS)
    threads = len(os.listdir("/proc/%d/task" % e.pid))
    assert threads >= N_WORKERS + 1, "%d threads for %d workers" % (threads, N_WORKERS)

    m0 = admin.metrics()
    target = "%s:%d" % (H.ADDR_ECHO, echo_port)

    async def run():
        tunnels, errors = await L.open_many(e.port, target, N_CLIENTS, payload=b"hello")
        # all of them open at the same time
        active = await asyncio.get_running_loop().run_in_executor(
            None, lambda: admin.metrics().value("egressd_active_requests"))
        # and each still works once all are open
        for t in tunnels:
            if t.status == 200:
                try:
                    await t.echo(b"again")
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        AssertionError) as x:
                    errors.append(("again", repr(x)))
        for t in tunnels:
            t.close()
        return tunnels, errors, active
    tunnels, errors, active = asyncio.run(run())
    statuses = [t.status for t in tunnels]
    assert not errors, errors[:10]
    assert statuses.count(200) == N_CLIENTS, sorted(set(statuses))
    assert active == N_CLIENTS, active

    H.wait_until(lambda: len(e.log.find(event="close")) >= N_CLIENTS, 10,
                 what="a close line for every tunnel")
    allows = e.log.find(event="allow")
    closes = e.log.find(event="close")
    assert len(allows) == N_CLIENTS and len(closes) == N_CLIENTS, (len(allows), len(closes))
    conns = [l["conn"] for l in allows]
    assert len(set(conns)) == N_CLIENTS, "connection numbers repeat across workers"
    by_conn = {l["conn"]: l for l in allows}
    for c in closes:
        a = by_conn.get(c["conn"])
        assert a is not None and a["client"] == c["client"], c
        assert c["bytes_up"] == c["bytes_down"] == len(b"helloagain"), c
        assert c["reason"] == "client_closed", c
    clients = {l["client"] for l in allows}
    assert len(clients) == N_CLIENTS

    m1 = admin.metrics()
    assert m1.value("egressd_connections_total") - m0.value("egressd_connections_total") \
        == N_CLIENTS
    assert m1.requests("allow", "allowed", "load") - m0.requests("allow", "allowed", "load") \
        == N_CLIENTS
    H.wait_until(lambda: admin.metrics().value("egressd_active_requests") == 0, 5,
                 what="active requests back to 0")
    up = m1.value("egressd_bytes_total", direction="up") - m0.value(
        "egressd_bytes_total", direction="up")
    assert up == N_CLIENTS * len(b"helloagain"), up
