"""The byte relay: half-close and backpressure."""

import fcntl
import hashlib
import os
import socket

import pytest

import harness as H


def _read_to_eof(c, seconds, what):
    """Read c (what it holds already included) until EOF, within seconds:
    (bytes, sha256 hex).  `what` % bytes-so-far is the failure message."""
    h = hashlib.sha256(c.buf)
    n = len(c.buf)
    c.buf = b""
    d = H.Deadline(seconds)
    while True:
        assert not d.expired(), (what % n) + " in %d s" % seconds
        c.sock.settimeout(max(0.01, d.left()))
        b = c.sock.recv(1 << 20)
        if not b:
            return n, h.hexdigest()
        h.update(b)
        n += len(b)


def test_half_close_reply_after_eof(world, proxy):
    c, r = H.tunnel(proxy.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_EOF_REPLY))
    with c:
        assert r.status == 200, r
        request = os.urandom(50 * 1024)
        c.send(request)
        c.sock.shutdown(socket.SHUT_WR)
        reply = c.recv_to_eof(timeout=10)
    want = b"got %d bytes sha256 %s\n" % (len(request),
                                           hashlib.sha256(request).hexdigest().encode())
    assert reply[:len(want)] == want, reply[:200]
    assert reply[len(want):] == H.EOF_REPLY_PAYLOAD, "reply cut: %d bytes" % len(reply)


def test_backpressure_bounded_memory(world, egressd_factory):
    e = egressd_factory("bulk", lambda port, log: H.render_config(port, log, world.policy))
    c = H.Client(e.port, timeout=10)
    with c:
        # a small receive buffer, so that most of the 64 MiB must wait somewhere
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        base = e.rss_kib()
        c.send(H.connect_req("%s:%d" % (H.ADDR_ECHO, H.PORT_BULK)))
        head = c.read_head()
        assert head == b"HTTP/1.1 200 Connection established", head
        peak = base
        d = H.Deadline(2.0, stretch=False)
        while not d.expired():  # read nothing for 2 s
            peak = max(peak, e.rss_kib())
            H.time.sleep(0.1)
        grew = (peak - base) / 1024
        assert grew <= 16, "RSS grew by %.1f MiB while the client read nothing" % grew

        digest, size = H.bulk_digest()
        n, got = _read_to_eof(c, 30, "only %%d of %d bytes" % size)
        assert n == size and got == digest, (n, size)
    close = e.log.wait(event="close", host=H.ADDR_ECHO)
    assert close["bytes_down"] == size, close


def test_stream_end_reaches_client_every_time(world, proxy):
    """The upstream's EOF after a fast stream is passed on every time: a
    relay that gives up its turn after a burst must still come back for
    the half-close (a 64 MiB stream, several times over)."""
    digest, size = H.bulk_digest()
    for i in range(6):
        c, r = H.tunnel(proxy.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_BULK))
        with c:
            assert r.status == 200, r
            n, got = _read_to_eof(c, 30, "run %d: %%d of %d bytes, no EOF" % (i, size))
            assert (n, got) == (size, digest), "run %d" % i


def test_urgent_data_does_not_stall_tunnel(world, proxy):
    """TCP urgent data cannot be spliced; the tunnel falls back to copying
    and keeps relaying the ordinary bytes around it."""
    c, r = H.tunnel(proxy.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_EOF_REPLY))
    with c:
        assert r.status == 200, r
        c.send(b"a" * 1000)
        c.sock.send(b"!", socket.MSG_OOB)
        c.send(b"b" * 1000)
        c.sock.shutdown(socket.SHUT_WR)
        reply = c.recv_to_eof(timeout=10)
    # The urgent byte is not part of the ordinary stream; everything else is.
    assert reply.startswith(b"got 2000 bytes") or reply.startswith(b"got 2001 bytes"), reply[:100]


def test_urgent_data_mid_stream_keeps_order(world, proxy):
    """Urgent data in the middle of a stream that is being spliced: the
    bytes already in the pipe go first, then the rest by copying, none lost
    or reordered (3 MiB with one urgent byte after the first 2 MiB)."""
    first, rest = os.urandom(2 << 20), os.urandom(1 << 20)
    c, r = H.tunnel(proxy.port, "%s:%d" % (H.ADDR_ECHO, H.PORT_EOF_REPLY))
    with c:
        assert r.status == 200, r
        c.send(first)
        c.sock.send(b"!", socket.MSG_OOB)
        c.send(rest)
        c.sock.shutdown(socket.SHUT_WR)
        reply = c.recv_to_eof(timeout=20)
    # The urgent byte is not part of the ordinary stream, or sits where it was sent.
    wants = [b"got %d bytes sha256 %s\n" % (len(s), hashlib.sha256(s).hexdigest().encode())
             for s in (first + rest, first + b"!" + rest)]
    assert any(reply.startswith(w) for w in wants), reply[:100]


def _pipe_sizes(pid):
    """{pipe inode: size} of the pipes egressd holds (each reopened through
    /proc)."""
    sizes = {}
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, name))
            if not link.startswith("pipe:"):
                continue
            fd = os.open(os.path.join(fd_dir, name), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue  # closed meanwhile
        try:
            sizes[link] = fcntl.fcntl(fd, F_GETPIPE_SZ)
        finally:
            os.close(fd)
    return sizes


F_GETPIPE_SZ = 1032


@pytest.mark.native_only("valgrind keeps pipes of its own")
def test_pipe_is_buffer_bytes_while_streaming_and_a_page_when_pooled(world, egressd_factory):
    """A stream stalled by its reader waits in a pipe of buffer_bytes
    (512 KiB); once the tunnel is done, the relay's pipes kept for reuse are
    one page each, since the user's pipe quota counts their size.  (Pipes
    egressd had before the tunnel, libevent's own, are left out.)"""
    e = egressd_factory("pipes", lambda port, log: H.render_config(port, log, world.policy))
    before = set(_pipe_sizes(e.pid))

    def relay_pipes():
        return {k: v for k, v in _pipe_sizes(e.pid).items() if k not in before}

    c = H.Client(e.port, timeout=10)
    with c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(H.connect_req("%s:%d" % (H.ADDR_ECHO, H.PORT_BULK)))
        head = c.read_head()
        assert head == b"HTTP/1.1 200 Connection established", head
        stalled = H.wait_until(lambda: (lambda s: s if 512 * 1024 in s.values() else None)(
            relay_pipes()), 5, what="a 512 KiB pipe while the client reads nothing")
        assert max(stalled.values()) == 512 * 1024, stalled
        digest, size = H.bulk_digest()
        n, got = _read_to_eof(c, 30, "only %%d of %d bytes" % size)
        assert n == size and got == digest, (n, size)
    e.log.wait(event="close", host=H.ADDR_ECHO)
    pooled = relay_pipes()
    assert pooled and set(pooled.values()) == {4096}, pooled
