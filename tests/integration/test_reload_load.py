"""Reload under load (issue 5, part 5): while ~300 tunnels are held open
(each echoing a byte every ~100 ms) and new ones keep being opened, SIGHUP
with changed policies applies to new requests only: no held tunnel is
dropped, no new request fails for the reload's sake, a broken file changes
nothing. Then SIGTERM: not ready at once, no new connections, the held
tunnels keep working until they close or the grace deadline, exit 0.

Requests that a new policy refuses on purpose are counted apart. While a
reload is in flight (SIGHUP sent, its log line not yet seen) the churn only
uses the destination that every generation allows, so each request's
expected answer is known."""

import re
import signal
import time

import pytest

import harness as H
import loadgen as L
import service as S

N_HELD = 260  # opened first, to the destination every generation allows
N_HELD_LATE = 40  # opened under generation 2, to a name generation 3 refuses
DRAIN_MS = 3000
PHASE_S = 0.8  # churn time in each phase: five phases, ~4-6 s in all


def _policy(p1, rules):
    return """  { name = "load";
    rules = (
      { name = "echo"; networks = [ "%s/32" ]; ports = [ %d ];
        methods = [ "CONNECT" ]; }%s
    );
  }""" % (H.ADDR_ECHO, p1, "".join(",\n" + r for r in rules))


@pytest.fixture
def ports(world):
    p = {"always": H.free_port(H.ADDR_ECHO), "late_a": H.free_port(H.ADDR_API),
         "late_b": H.free_port(H.ADDR_GITSRV)}
    srv = L.EchoServer([(H.ADDR_ECHO, p["always"]), (H.ADDR_API, p["late_a"]),
                        (H.ADDR_GITSRV, p["late_b"])], world.tmp).start()
    yield p
    srv.stop()


def test_reload_under_load(world, egressd_factory, ports, capsys):
    admin_port = H.free_port()
    late_a = ('      { name = "late-a"; hosts = [ "denied.test" ]; ports = [ %d ];\n'
              '        networks = [ "%s/32" ]; methods = [ "CONNECT" ]; }' % (ports["late_a"], H.ADDR_API))
    late_b = ('      { name = "late-b"; hosts = [ "git.denied.test" ]; ports = [ %d ];\n'
              '        networks = [ "%s/32" ]; methods = [ "CONNECT" ]; }' % (ports["late_b"], H.ADDR_GITSRV))
    gens = {1: [], 2: [late_a], 3: [late_b], 4: [late_a, late_b]}

    # Every client here is 127.0.0.1: 300 held tunnels and the churn are
    # over the default per-client cap (256), which is not what this tests.
    def text(gen, port, log):
        return S.render(port, log, _policy(ports["always"], gens[gen]), admin_port=admin_port,
                        workers=4, limits={"drain_timeout_ms": DRAIN_MS,
                                           "max_connections_per_client": 0})
    e = egressd_factory("reload-load", lambda port, log: text(1, port, log))
    admin = S.Admin(admin_port).wait_up()
    log = L.LogTail(e.log_path)
    e.log.wait(event="start")

    ALWAYS = "%s:%d" % (H.ADDR_ECHO, ports["always"])
    A = "denied.test:%d" % ports["late_a"]
    B = "git.denied.test:%d" % ports["late_b"]

    def reload(gen, phase_after, transition=True):
        if transition:  # only the destination whose answer never changes
            lg.set_phase("reload-to-%d" % gen, [(ALWAYS, "ok")])
        mark = log.mark()
        if gen == "broken":
            bad, line_no = H.break_config(text(2, e.port, e.log_path), 'name = "load";',
                                          'name = = "load";', 'name = = "load";')
            e.reload(bad)
            err = log.wait(since=mark, event="error", reason="reload_failed", timeout=10)
            assert "%s:%d:" % (e.conf, line_no) in err.get("message", ""), err
        else:
            e.reload(text(gen, e.port, e.log_path))
            log.wait(since=mark, event="reload", timeout=10)
        lg.set_phase(phase_after[0], phase_after[1])

    lg = L.LoadGen(e.port, held=[(ALWAYS, N_HELD)])
    t0 = time.monotonic()
    try:
        lg.start(timeout=30)
        assert not lg.never_opened(), [h.error for h in lg.never_opened()][:5]
        # generation 1: denied.test is refused
        lg.set_phase("gen1", [(ALWAYS, "ok"), (A, "host_not_allowed")])
        lg.start_churn()
        time.sleep(PHASE_S)
        # generation 2 allows denied.test; tunnels are held to it too
        reload(2, ("gen2", [(ALWAYS, "ok"), (A, "ok"), (B, "host_not_allowed")]))
        opened = lg.add_held(A, N_HELD_LATE)
        assert len(opened) == N_HELD_LATE, [h.error for h in lg.never_opened()][:5]
        time.sleep(PHASE_S)
        # a broken file changes nothing: denied.test stays allowed throughout
        reload("broken", ("gen2-after-broken-file",
                          [(ALWAYS, "ok"), (A, "ok"), (B, "host_not_allowed")]),
               transition=False)
        time.sleep(PHASE_S)
        # generation 3 refuses denied.test (the held tunnels to it keep
        # their policy) and allows git.denied.test
        reload(3, ("gen3", [(ALWAYS, "ok"), (B, "ok"), (A, "host_not_allowed")]))
        lg.mark("gen3")
        time.sleep(PHASE_S)
        # generation 4 allows both
        reload(4, ("gen4", [(ALWAYS, "ok"), (A, "ok"), (B, "ok")]))
        lg.mark("gen4")
        time.sleep(PHASE_S)
        lg.stop_churn()
        load_s = time.monotonic() - t0

        held = lg.held
        assert len(held) == N_HELD + N_HELD_LATE
        dropped = lg.dropped()
        assert not dropped, "%d held tunnels dropped: %r" % (
            len(dropped), [(h.target, h.error) for h in dropped][:10])
        silent = [h for h in held if h.echoes_after["gen4"] == 0]
        assert not silent, "%d held tunnels did not echo after the last reload" % len(silent)
        late = [h for h in held if h.target == A]
        assert all(h.echoes_after["gen3"] > 0 for h in late), \
            "a tunnel held to denied.test stopped when generation 3 refused the name"
        assert lg.failed == 0, (lg.failed, lg.failures)
        for (ph, tgt) in (("gen1", A), ("gen3", A), ("gen2", B)):
            assert lg.results[(ph, tgt, "refused")] > 0, (ph, tgt, dict(lg.results))
        for (ph, tgt) in (("gen2", A), ("gen2-after-broken-file", A), ("gen3", B), ("gen4", A),
                          ("gen4", B)):
            assert lg.results[(ph, tgt, "ok")] > 0, (ph, tgt, dict(lg.results))

        m = admin.metrics()
        assert m.value("egressd_config_generation") == 4, m.text
        assert m.value("egressd_reloads_total", result="ok") == 3, m.text
        assert m.value("egressd_reloads_total", result="failed") == 1, m.text
        assert m.value("egressd_active_requests") == len(held), m.text
        lines = log.poll()
        assert len([l for l in lines if l["event"] == "reload"]) == 3
        assert len([l for l in lines if l["event"] == "error"
                    and l.get("reason") == "reload_failed"]) == 1
        # the rule names in the allow lines follow the generations
        rules = {(l["host"], l.get("rule")) for l in lines if l["event"] == "allow"}
        assert ("denied.test", "late-a") in rules and ("git.denied.test", "late-b") in rules

        # SIGTERM: not ready, no new connections, the held tunnels go on
        lg.mark("drain")
        mark = log.mark()
        e.signal(signal.SIGTERM)
        H.wait_until(lambda: admin.get("/readyz", timeout=2).status == 503, 3,
                     what="/readyz 503 after SIGTERM")
        H.wait_until(lambda: H.refuses_connections(e.port), 3, what="the listeners to close")
        stop = log.wait(since=mark, event="stop", timeout=5)
        # "N open": every held tunnel (the count is a snapshot the workers
        # refresh each second, so closed churn connections may still be in it)
        n_open = re.search(r"\b(\d+) open\b", stop.get("message", ""))
        assert n_open and int(n_open.group(1)) >= len(held), stop
        H.wait_until(lambda: all(h.echoes_after["drain"] >= 2 for h in held), 2.5,
                     what="every held tunnel to echo twice while draining")
        lg.expect_alive = False  # from here on the drain deadline may close them
        assert not lg.dropped()
        assert e.alive(), "egressd exited with tunnels open before drain_timeout_ms"
        # half are closed by their clients; the deadline closes the rest
        by_client, left = held[::2], held[1::2]
        lg.close_held(by_client)
        assert lg.wait_held_closed(timeout=DRAIN_MS / 1000 + 5), \
            "held tunnels still open after the drain deadline"
        rc = e.proc.wait(timeout=10)
        assert rc == 0, (rc, e.stderr())
    finally:
        lg.stop()

    closes = {l["client"]: l for l in e.log.find(event="close")}
    for h in by_client:
        assert closes[h.tunnel.local]["reason"] == "client_closed", closes[h.tunnel.local]
    for h in left:
        assert closes[h.tunnel.local]["reason"] == "shutdown", closes[h.tunnel.local]
    with capsys.disabled():
        print("\nreload under load (%.1fs, 3 reloads and a broken file, then SIGTERM): %s"
              % (load_s, lg.summary()))
    assert len(lg.dropped()) == 0 and lg.failed == 0
