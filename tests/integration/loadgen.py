"""An asyncio load generator for egressd, and an echo server in a process of
its own, for the multi-worker and reload-under-load tests.

    held tunnels:  CONNECT -> 200, then one byte echoed through the tunnel
                   every ~100 ms until told to stop; any failure while the
                   tunnel is expected alive counts as a drop.
    churn:         a few workers that loop CONNECT -> 200 -> echo -> close,
                   each request judged against what the current phase
                   expects of its target (allowed, or refused with a reason).

The generator runs its event loop in a thread of its own (LoadGen.start),
so that the test's thread can send signals and read the log meanwhile.
Everything is bounded: every socket operation has a timeout, every loop a
deadline. Only addresses inside the test's network namespace are used.

Run as a script, `python3 loadgen.py echo HOST:PORT...` is the echo server.
"""

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import harness as H

HERE = os.path.dirname(os.path.abspath(__file__))
OP_TIMEOUT = 10.0  # any one connect, read or write


# ---------------------------------------------------------------- echo server process


async def _echo_conn(reader, writer):
    try:
        while True:
            b = await reader.read(65536)
            if not b:
                break
            writer.write(b)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _echo_main(addrs):
    servers = []
    for a in addrs:
        host, port = a.rsplit(":", 1)
        servers.append(await asyncio.start_server(_echo_conn, host, int(port), backlog=1024,
                                                  reuse_address=True))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


class EchoServer:
    """An asyncio echo server on HOST:PORT addresses, in a child process
    (its own interpreter, so it does not share the tests' GIL)."""

    def __init__(self, addrs, log_dir):
        self.addrs = list(addrs)
        self.err_path = os.path.join(log_dir, "loadgen-echo.stderr")
        self.proc = None

    def start(self, timeout=10):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.abspath(__file__), "echo"]
            + ["%s:%d" % a for a in self.addrs],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(self.err_path, "wb"))
        ready = [None]

        def read():
            ready[0] = self.proc.stdout.readline()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if ready[0] != b"ready\n":
            self.stop()
            raise RuntimeError("echo server did not start: %r %s" % (
                ready[0], open(self.err_path, errors="replace").read()))
        return self

    def stop(self):
        H.stop_process(self.proc)


# ---------------------------------------------------------------- client side


def connect_head(target, extra=b""):
    t = target.encode()
    return b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (t, t, extra)


def _reason_of(head):
    """The reason in egressd's Proxy-Status details, or None."""
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"proxy-status":
            i = v.find(b'details="')
            if i >= 0:
                return v[i + 9:].split(b'"')[0].split(b":")[0].decode("latin-1")
    return None


class Tunnel:
    def __init__(self, reader, writer, status, reason, local):
        self.reader, self.writer = reader, writer
        self.status, self.reason, self.local = status, reason, local

    async def echo(self, payload, timeout=OP_TIMEOUT):
        self.writer.write(payload)
        await asyncio.wait_for(self.writer.drain(), timeout)
        got = await asyncio.wait_for(self.reader.readexactly(len(payload)), timeout)
        if got != payload:
            raise AssertionError("echo mismatch: sent %r got %r" % (payload, got))

    async def wait_eof(self, timeout=OP_TIMEOUT):
        """Bytes up to EOF (a reset counts as EOF)."""
        out = b""
        try:
            while True:
                b = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not b:
                    return out
                out += b
        except ConnectionError:
            return out

    def close(self):
        try:
            self.writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass


async def open_tunnel(port, target, extra=b"", host="127.0.0.1", timeout=OP_TIMEOUT):
    """CONNECT; returns a Tunnel (status 200: open; otherwise closed)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    local = "%s:%d" % writer.get_extra_info("sockname")[:2]
    try:
        writer.write(connect_head(target, extra))
        await asyncio.wait_for(writer.drain(), timeout)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except BaseException:
        writer.close()
        raise
    status = int(head.split(b" ", 2)[1])
    t = Tunnel(reader, writer, status, _reason_of(head), local)
    if status != 200:
        t.close()
    return t


# ---------------------------------------------------------------- the generator


class Held:
    """One long-lived tunnel."""

    def __init__(self, i, target):
        self.i, self.target = i, target
        self.tunnel = None
        self.state = "opening"  # open, failed (never opened), dropped, closed
        self.echoes = 0
        self.echoes_after = collections.Counter()  # mark -> echoes since it was set
        self.error = None


class LoadGen:
    """held: [(target, n)] opened by start(); more with add_held().
    Churn targets come from the phase: a list of (target, expect), expect
    "ok" or the reason of an expected refusal (e.g. "host_not_allowed")."""

    def __init__(self, port, held=(), churn_workers=6, churn_pause=0.01, interval=0.1):
        self.port = port
        self.initial = list(held)
        self.churn_workers = churn_workers
        self.churn_pause = churn_pause
        self.interval = interval
        self.held = []
        self.phase = ("start", [])
        self.expect_alive = True  # a held tunnel's EOF now is a drop
        self.churning = False
        self.marks = set()
        self.results = collections.Counter()  # (phase, target, outcome) -> n
        self.failures = []  # (phase, target, what), the first few kept in full
        self.failed = 0
        self.refused_as_intended = 0
        self.inflight = collections.Counter()  # phase -> churn requests under way
        self.ok = 0
        self.loop = None
        self.thread = None
        self.stop_ev = None
        self.error = None
        self._tasks = []

    # -- control, from the test's thread

    def start(self, timeout=30):
        started = threading.Event()

        def run():
            try:
                asyncio.run(self._main(started))
            except BaseException as e:  # noqa: BLE001 - reported by stop()
                self.error = e
                started.set()
        self.thread = threading.Thread(target=run, name="loadgen", daemon=True)
        self.thread.start()
        if not started.wait(timeout):
            raise AssertionError("the load generator's held tunnels did not open within %ss"
                                 % timeout)
        if self.error:
            raise self.error
        return self

    def call(self, coro_fn, timeout=30):
        """Run coro_fn() on the generator's loop and wait for its result."""
        fut = asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)
        return fut.result(timeout)

    def set_phase(self, name, targets, settle_timeout=10):
        """Churn requests from now on choose among targets, and are judged
        by their expectations. Returns when no request begun under an
        earlier phase is still under way, so that what the test does next
        (a reload) cannot change the answer one of them expects."""
        self.phase = (name, list(targets))
        if self.loop is not None and self.churning:
            self.call(lambda: self._settle(name, settle_timeout), settle_timeout + 5)

    def mark(self, name):
        """From now on count each held tunnel's echoes under name."""
        self.marks.add(name)

    def add_held(self, target, n, timeout=30):
        return self.call(lambda: self._open_held(target, n), timeout)

    def start_churn(self):
        self.churning = True
        self.call(self._spawn_churn)

    def stop_churn(self, timeout=30):
        self.churning = False
        self.call(self._join_churn, timeout)

    def close_held(self, which, timeout=30):
        """Close these held tunnels from the client side."""
        return self.call(lambda: self._close(which), timeout)

    def wait_held_closed(self, timeout=30):
        """Wait until every held tunnel has ended (EOF from the proxy or
        closed by us)."""
        return self.call(lambda: self._wait_all_ended(timeout), timeout + 5)

    def stop(self, timeout=30):
        if self.loop and self.stop_ev:
            self.loop.call_soon_threadsafe(self.stop_ev.set)
        if self.thread:
            self.thread.join(timeout)
            assert not self.thread.is_alive(), "the load generator did not stop"
        if self.error:
            raise self.error

    # -- counts

    def dropped(self):
        return [h for h in self.held if h.state == "dropped"]

    def never_opened(self):
        return [h for h in self.held if h.state == "failed"]

    def summary(self):
        return ("held tunnels: %d; tunnels dropped: %d; new requests: %d ok, "
                "%d refused by the policy as intended; requests failed: %d" % (
                    len(self.held), len(self.dropped()) + len(self.never_opened()),
                    self.ok, self.refused_as_intended, self.failed))

    # -- the loop

    async def _main(self, started):
        self.loop = asyncio.get_running_loop()
        self.stop_ev = asyncio.Event()
        for target, n in self.initial:
            await self._open_held(target, n)
        started.set()
        await self.stop_ev.wait()
        self.churning = False
        await self._join_churn()
        for h in self.held:
            if h.tunnel:
                h.tunnel.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _open_held(self, target, n):
        new = [Held(len(self.held) + i, target) for i in range(n)]
        self.held.extend(new)

        async def one(h):
            # a small jitter spreads the opens (and the echoes) in time
            await asyncio.sleep(random.random() * 0.2)
            try:
                h.tunnel = await open_tunnel(self.port, target)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                h.state, h.error = "failed", "open: %r" % e
                return
            if h.tunnel.status != 200:
                h.state, h.error = "failed", "open: %d %s" % (h.tunnel.status, h.tunnel.reason)
                return
            try:
                await h.tunnel.echo(b"o")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    AssertionError) as e:
                h.state, h.error = "failed", "first echo: %r" % e
                return
            h.state = "open"
            self._tasks.append(asyncio.ensure_future(self._keep(h)))
        await asyncio.gather(*(one(h) for h in new))
        return [h for h in new if h.state == "open"]

    async def _keep(self, h):
        """Echo one byte every ~interval until the tunnel ends."""
        seq = 0
        while h.state == "open":
            await asyncio.sleep(self.interval * (0.5 + random.random()))
            if h.state != "open":
                return
            seq += 1
            payload = bytes([0x61 + seq % 26])
            alive_expected = self.expect_alive
            try:
                await h.tunnel.echo(payload)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    AssertionError) as e:
                if h.state != "open":
                    return
                if alive_expected and self.expect_alive:
                    h.state, h.error = "dropped", "echo %d: %r" % (seq, e)
                else:
                    h.state = "ended"  # closed by the proxy at the drain deadline
                    h.error = "after the deadline: %r" % (e,)
                return
            h.echoes += 1
            for m in list(self.marks):
                h.echoes_after[m] += 1

    async def _close(self, which):
        for h in which:
            if h.state == "open":
                h.state = "closed"
                h.tunnel.close()

    async def _wait_all_ended(self, timeout):
        d = time.monotonic() + timeout
        while time.monotonic() < d:
            if all(h.state != "open" for h in self.held):
                return True
            await asyncio.sleep(0.05)
        return False

    async def _settle(self, phase, timeout):
        d = time.monotonic() + timeout
        while any(n for p, n in self.inflight.items() if p != phase):
            if time.monotonic() >= d:
                raise AssertionError("churn requests of an earlier phase still under way: %r"
                                     % dict(self.inflight))
            await asyncio.sleep(0.005)

    async def _spawn_churn(self):
        self._churn = [asyncio.ensure_future(self._churn_worker(i))
                       for i in range(self.churn_workers)]

    async def _join_churn(self):
        ts = getattr(self, "_churn", [])
        if ts:
            await asyncio.gather(*ts, return_exceptions=True)
        self._churn = []

    def _record(self, phase, target, outcome, detail=None):
        self.results[(phase, target, outcome)] += 1
        if outcome == "ok":
            self.ok += 1
        elif outcome == "refused":
            self.refused_as_intended += 1
        else:
            self.failed += 1
            if len(self.failures) < 20:
                self.failures.append((phase, target, detail))

    async def _churn_worker(self, w):
        rnd = random.Random(w)
        while self.churning:
            phase, targets = self.phase
            if not targets:
                await asyncio.sleep(0.02)
                continue
            target, expect = rnd.choice(targets)
            self.inflight[phase] += 1
            try:
                await self._churn_one(phase, w, target, expect)
            finally:
                self.inflight[phase] -= 1
            await asyncio.sleep(self.churn_pause * rnd.random() * 2)

    async def _churn_one(self, phase, w, target, expect):
        """One request: CONNECT, then an echo when it is expected to be allowed."""
        try:
            t = await open_tunnel(self.port, target)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            self._record(phase, target, "failed", "connect/CONNECT: %r" % e)
            return
        if expect != "ok":
            if t.status == 403 and t.reason == expect:
                self._record(phase, target, "refused")
            else:
                t.close()
                self._record(phase, target, "failed", "expected 403 %s, got %d %s" % (
                    expect, t.status, t.reason))
            return
        if t.status != 200:
            self._record(phase, target, "failed", "status %d %s" % (t.status, t.reason))
            return
        try:
            await t.echo(b"churn %d" % w)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                AssertionError) as e:
            self._record(phase, target, "failed", "echo: %r" % e)
            return
        finally:
            t.close()
        self._record(phase, target, "ok")

async def open_many(port, target, n, payload=b"x", concurrency=None):
    """Open n tunnels at once; each echoes payload. Returns the Tunnels
    (status 200 and echoed, else status and reason as answered) and errors."""
    sem = asyncio.Semaphore(concurrency or n)
    errors = []

    async def one(i):
        async with sem:
            try:
                t = await open_tunnel(port, target)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                errors.append((i, repr(e)))
                return None
            if t.status == 200:
                try:
                    await t.echo(payload)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        AssertionError) as e:
                    errors.append((i, "echo: %r" % e))
            return t
    ts = await asyncio.gather(*(one(i) for i in range(n)))
    return [t for t in ts if t is not None], errors


# ---------------------------------------------------------------- reading the log


class LogTail:
    """Reads a JSON-lines log incrementally (cheap to poll while the log
    grows by thousands of lines)."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.partial = b""
        self.lines = []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return self.lines
        self.off += len(data)
        data = self.partial + data
        parts = data.split(b"\n")
        self.partial = parts.pop()
        self.lines.extend(json.loads(p) for p in parts if p)
        return self.lines

    def mark(self):
        return len(self.poll())

    def wait(self, since=0, timeout=5.0, pred=None, **want):
        d = time.monotonic() + timeout
        while True:
            for l in self.poll()[since:]:
                if all(l.get(k) == v for k, v in want.items()) and (pred is None or pred(l)):
                    return l
            if time.monotonic() >= d:
                raise AssertionError("no log line %r in %s within %.1fs; last lines:\n%s" % (
                    want, self.path, timeout, "\n".join(json.dumps(l) for l in
                                                        self.lines[-20:])))
            time.sleep(0.05)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "echo":
        asyncio.run(_echo_main(sys.argv[2:]))
    else:
        print("usage: loadgen.py echo HOST:PORT...", file=sys.stderr)
        sys.exit(2)
