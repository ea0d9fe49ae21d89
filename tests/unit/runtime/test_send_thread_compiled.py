"""The compiled send thread itself (``livetemplate._sender_c``): frames reach their sockets
whole and in order, what a socket does not take is handed back, and a socket closed meanwhile
never lends its descriptor's number to another. Collected with the compiled build only (see
``conftest.py``), as the compiled engine's tests are; the outboxes' side runs on both builds
(``test_send_thread.py``)."""

from __future__ import annotations

import socket
import threading

from livetemplate import outbox as outbox_module
from livetemplate._twins import compiled
from tests.unit.runtime.test_send_thread import drain, pair, pairs

__all__ = ["pairs"]  # the fixture


def started_sender(capacity: int = 8) -> outbox_module.Sender:
    sender: outbox_module.Sender = compiled("_sender").Sender(capacity)
    threading.Thread(target=sender.run, daemon=True).start()
    return sender


# -- the thread itself ------------------------------------------------------------------------


def test_frames_reach_their_sockets_whole_and_in_order(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    sender = started_sender()
    (a1, b1), (a2, b2) = pair(pairs), pair(pairs)
    assert sender.hand(a1.fileno(), b"one") and sender.hand(a2.fileno(), b"two")
    assert sender.wait() == []
    assert drain(b1) == b"one" and drain(b2) == b"two"
    assert sender.hand(a1.fileno(), b"three")  # a new round
    assert sender.wait() == [] and drain(b1) == b"three"


def test_handed_frames_are_written_once_started_all_together(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    sender = started_sender()
    (a1, b1), (a2, b2) = pair(pairs), pair(pairs)
    assert sender.hand(a1.fileno(), b"one") and sender.hand(a2.fileno(), b"two")
    assert sender.busy()  # handed, not written: the thread was not given them yet
    sender.start()
    b1.settimeout(5)
    b2.settimeout(5)
    assert b1.recv(16) == b"one" and b2.recv(16) == b"two"  # written before the round ends
    assert sender.hand(a1.fileno(), b"three")
    sender.start()
    assert b1.recv(16) == b"three"  # a second group in the same round
    assert sender.wait() == [] and not sender.busy()


def test_what_a_socket_does_not_take_is_handed_back_and_its_later_frames_wait(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    sender = started_sender()
    (full, peer), (other, other_peer) = pair(pairs, sndbuf=4096), pair(pairs)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket takes
    assert sender.hand(full.fileno(), big)
    assert sender.hand(other.fileno(), b"unaffected")
    assert sender.hand(full.fileno(), b"after")  # must not overtake the rest of ``big``
    (first, written), (third, nothing) = sender.wait()
    assert (first, third, nothing) == (0, 2, 0) and 0 < written < len(big)
    assert drain(peer) == big[:written]  # the start of the frame, and nothing after it
    assert drain(other_peer) == b"unaffected"


def test_a_socket_closed_meanwhile_does_not_lend_its_number(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    sender = started_sender()
    closing, peer = socket.socketpair()
    number = closing.fileno()
    assert sender.hand(number, b"to the closed one")
    closing.close()  # the thread writes to its own duplicate: the frame still reaches the peer
    _, newcomer_peer = pair(pairs)  # likely given the freed number
    assert sender.wait() == []
    assert drain(peer) == b"to the closed one"
    assert drain(newcomer_peer) == b""
    peer.close()


def test_a_descriptor_that_cannot_be_duplicated_is_handed_back_whole() -> None:
    sender = started_sender()
    with socket.socket() as closed:
        number = closed.fileno()
    assert sender.hand(number, b"nowhere")
    assert sender.wait() == [(0, 0)]


def test_a_full_round_takes_no_more(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    sender = started_sender(capacity=2)
    a, b = pair(pairs)
    assert sender.hand(a.fileno(), b"1") and sender.hand(a.fileno(), b"2")
    assert not sender.hand(a.fileno(), b"3")
    assert sender.wait() == [] and drain(b) == b"12"
