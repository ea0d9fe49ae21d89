"""The send thread of held writes (``livetemplate._sender_c``, see :mod:`livetemplate.outbox`):
frames reach their sockets whole and in order, what a socket does not take is handed back
for the loop's thread to write first, and a socket closed meanwhile never lends its
descriptor's number to another. Without the compiled build the writes stay on the loop's
thread, with the same bytes on the wire."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

from livetemplate import outbox as outbox_module
from livetemplate.outbox import Outbox, hand_over_writes, hold_writes, release_writes
from tests.support.engines import NO_EXTENSIONS
from tests.support.sockets import Socket


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Connected socket pairs (the first end non-blocking, as a server's), closed after."""
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for a, b in made:
        a.close()
        b.close()


def pair(pairs: list[tuple[socket.socket, socket.socket]], *, sndbuf: int = 0) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    if sndbuf:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    pairs.append((a, b))
    return a, b


def drain(sock: socket.socket) -> bytes:
    """What waits on ``sock`` now."""
    sock.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# -- outboxes handing their held frames over ---------------------------------------------------


def threaded() -> bool:
    """Whether this process hands held writes to a send thread (the compiled build, on more
    than one CPU); without one they are written on the loop's thread, the same bytes."""
    return outbox_module._sender() is not None


class SocketDirect:
    """A server's direct write to a real socket: what ``write_text`` writes is the frames
    joined (no framing, so that the bytes on the wire read back as the frames)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rests: list[bytes] = []
        self.held_back = b""  # what the "transport" keeps until the socket takes it

    def write_text(self, *frames: bytes) -> bool:
        self._send(b"".join(frames))
        return True

    def framed(self, frames: Sequence[bytes]) -> tuple[int, bytes] | None:
        return (self.sock.fileno(), b"".join(frames)) if not self.held_back else None

    def write_rest(self, data: bytes) -> None:
        self.rests.append(data)
        self._send(data)

    def _send(self, data: bytes) -> None:
        data = self.held_back + data
        try:
            sent = self.sock.send(data) if not self.held_back else 0
        except BlockingIOError:
            sent = 0
        self.held_back = data[sent:]

    def finish(self) -> None:
        """Write what was held back, waiting for the socket, and close it for writing."""
        self.sock.setblocking(True)
        self.sock.sendall(self.held_back)
        self.held_back = b""
        self.sock.shutdown(socket.SHUT_WR)


def read_all(sock: socket.socket) -> tuple[threading.Thread, list[bytes]]:
    """A thread that reads ``sock`` until its peer stops writing, and what it read."""
    chunks: list[bytes] = []

    def read() -> None:
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    return reader, chunks


def test_frames_handed_over_and_held_after_reach_the_socket_in_order(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    (a1, b1), (a2, b2) = pair(pairs), pair(pairs)
    d1, d2 = SocketDirect(a1), SocketDirect(a2)
    first, second = Outbox(Socket(), direct=d1), Outbox(Socket(), direct=d2)
    hold_writes()
    try:
        first.put([b"a1", b"a2"])
        second.put([b"b1"])
        hand_over_writes()
        first.put([b"a3"])  # after a hand-over: held until the release, behind what was handed
        hand_over_writes()
        first.put([b"a4"])
        # handed over, only what came after is held (without the thread, everything is)
        assert (first.pending_bytes, len(second)) == ((4, 0) if threaded() else (8, 1))
    finally:
        release_writes()
    assert drain(b1) == b"a1a2a3a4" and drain(b2) == b"b1"
    assert d1.rests == [] and first.pending_bytes == 0 and not first._handed
    first.put([b"a5"])  # released: written directly again
    assert drain(b1) == b"a5"


class Declining(SocketDirect):
    """A direct write whose writer never lets the send thread have its frames (as a TLS
    connection's does), counting how often it was asked."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.asked = 0

    def framed(self, frames: Sequence[bytes]) -> tuple[int, bytes] | None:
        self.asked += 1
        return None


def test_an_outbox_a_hand_over_declined_is_not_asked_again_in_the_batch(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    (a1, b1), (a2, b2) = pair(pairs), pair(pairs)
    declining, plain = Declining(a1), SocketDirect(a2)
    kept, other = Outbox(Socket(), direct=declining), Outbox(Socket(), direct=plain)
    hold_writes()
    try:
        kept.put([b"k1"])
        for index in range(3):
            other.put([b"o%d" % index])
            kept.put([b"k%d" % (index + 2)])
            hand_over_writes()
        assert kept.pending_bytes == 8  # all still held
    finally:
        release_writes()
    assert declining.asked == (1 if threaded() else 0)  # once, at the first hand-over
    assert drain(b1) == b"k1k2k3k4" and drain(b2) == b"o0o1o2"
    assert kept.pending_bytes == 0 and not kept._held
    kept.put([b"k5"])  # released: written directly again
    assert drain(b1) == b"k5"


def test_the_rest_of_a_frame_the_socket_did_not_take_goes_first(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    a, b = pair(pairs, sndbuf=4096)
    direct = SocketDirect(a)
    box = Outbox(Socket(), direct=direct)
    big = bytes(range(256)) * 1024  # 256 KiB: more than the socket takes at once
    hold_writes()
    try:
        box.put([big])
        hand_over_writes()
        box.put([b"after"])
    finally:
        release_writes()
    reader, chunks = read_all(b)
    direct.finish()
    reader.join()
    assert b"".join(chunks) == big + b"after"
    if threaded():
        assert len(direct.rests) == 1 and big.endswith(direct.rests[0])  # the thread's rest, written first


def test_the_send_thread_is_there_with_the_compiled_build_on_more_than_one_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIVETEMPLATE_SEND_THREAD", raising=False)
    monkeypatch.setattr(outbox_module._batch, "sender", None)  # restored after the test
    monkeypatch.setattr(outbox_module._batch, "sender_pid", 0)  # as in a new process
    expected = not NO_EXTENSIONS and len(outbox_module._usable_cpus()) > 1
    assert (outbox_module._sender() is not None) == expected
    monkeypatch.setattr(outbox_module._batch, "sender_pid", 0)
    monkeypatch.setenv("LIVETEMPLATE_SEND_THREAD", "0")
    assert outbox_module._sender() is None  # turned off
    monkeypatch.setattr(outbox_module._batch, "sender_pid", 0)
    monkeypatch.delenv("LIVETEMPLATE_SEND_THREAD")
    monkeypatch.setattr(outbox_module, "_usable_cpus", lambda: {0})
    assert outbox_module._sender() is None  # one CPU: it would only take turns with the loop


class Transport:
    """What ``_plain_descriptor`` asks a transport."""

    def __init__(self, **extra: object) -> None:
        self.extra = extra

    def get_extra_info(self, name: str) -> object:
        return self.extra.get(name)


def test_only_a_plain_socket_is_written_by_the_send_thread(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    from livetemplate.transports.uvicorn_protocol import _plain_descriptor

    a, _ = pair(pairs)
    assert _plain_descriptor(Transport(socket=a)) == a.fileno()
    # TLS: the bytes on the wire are not the frames
    assert _plain_descriptor(Transport(socket=a, sslcontext=object())) == -1
    assert _plain_descriptor(Transport()) == -1
