"""The open connection's frames (``OpenWebSocket``) against websockets' ``ServerProtocol``,
the parser it takes over from: the same bytes in, cut anywhere, with the server's own
sends in between, give the same events, the same bytes out, the same close codes and
reasons and the same errors. Valid and broken frames alike: reserved bits, unknown
opcodes, unmasked frames, long or fragmented control frames, continuation frames out of
place, bad close codes and reasons, messages over the size limit."""

from __future__ import annotations

import itertools
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Close
from websockets.protocol import State
from websockets.server import ServerProtocol

from livetemplate.transports.open_websocket import OpenWebSocket

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def websockets_open(max_size: int | None) -> ServerProtocol:
    """websockets' server protocol past a handshake, as uvicorn leaves it."""
    conn = ServerProtocol(max_size=max_size)
    conn.receive_data(HANDSHAKE)
    (request,) = conn.events_received()
    conn.send_response(conn.accept(request))
    conn.data_to_send()
    assert conn.state is State.OPEN
    return conn


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True, wide: int = 0
) -> bytes:
    """A client's frame; ``wide`` encodes the length on 2 or 8 bytes even when it fits in less."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size, mask_bit = len(payload), 0x80 if masked else 0
    if size < 126 and not wide:
        head += bytes([mask_bit | size])
    elif size < 65536 and wide != 8:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def seen(conn: Any) -> tuple[Any, ...]:
    """Everything either protocol shows after a step."""
    events = [(e.opcode, bytes(e.data), e.fin) for e in conn.events_received()]
    error = conn.parser_exc
    return (
        events,
        list(conn.data_to_send()),
        conn.state,
        conn.close_rcvd,
        conn.close_sent,
        None if error is None else (type(error), str(error)),
    )


def attempt(call: Any) -> Any:
    try:
        call()
    except Exception as exc:
        return type(exc), str(exc)
    return None


close_payloads = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),
    st.builds(
        lambda code, reason: struct.pack("!H", code) + reason,
        st.sampled_from([1000, 1001, 1002, 1005, 1006, 1007, 1011, 1012, 1015, 2999, 3000, 4999, 5000, 0, 65535]),
        st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=40)),
    ),
)
payloads = st.one_of(st.binary(max_size=140), st.integers(120, 70_000).map(lambda n: b"x" * n))
controls = st.builds(  # a ping or a pong, as a client sends them
    lambda opcode, payload: client_frame(opcode, payload), st.sampled_from([9, 10]), st.binary(max_size=125)
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A text or binary message, whole or in fragments (with pings and pongs between them)."""
    opcode = draw(st.sampled_from([1, 2]))
    parts = draw(st.lists(payloads, min_size=1, max_size=4))
    out = b""
    for index, part in enumerate(parts):
        out += client_frame(opcode if index == 0 else 0, part, fin=index == len(parts) - 1)
        if draw(st.booleans()):
            out += draw(controls)
    return out


frames = st.one_of(
    messages(),
    messages(),
    st.builds(  # a message's pieces out of order: a first fragment, a continuation
        lambda opcode, payload, fin: client_frame(opcode, payload, fin=fin),
        st.sampled_from([0, 1, 2]),
        st.binary(max_size=80),
        st.booleans(),
    ),
    controls,
    st.builds(lambda payload: client_frame(8, payload), close_payloads),
    st.builds(  # anything at all in the header
        lambda opcode, payload, fin, rsv, masked, wide: client_frame(
            opcode, payload, fin=fin, rsv=rsv, masked=masked, wide=wide
        ),
        st.integers(0, 15),
        payloads,
        st.booleans(),
        st.integers(0, 7),
        st.booleans(),
        st.sampled_from([0, 2, 8]),
    ),
)
#: The server's sends between two pieces of data, as uvicorn's protocol makes them.
sends = st.one_of(
    st.none(),
    st.tuples(st.just("send_text"), st.text(max_size=200).map(str.encode)),
    st.tuples(st.just("send_binary"), st.binary(max_size=70_000)),
    st.tuples(st.just("send_ping"), st.binary(max_size=130)),
    st.tuples(st.just("send_close"), st.sampled_from([None, 1000, 1008, 1009, 1012, 4000, 999]), st.text(max_size=130)),
    st.tuples(st.just("fail"), st.sampled_from([1002, 1006, 1011]), st.text(max_size=20)),
)


def act(conn: Any, send: tuple[Any, ...]) -> Any:
    name, *args = send
    if name == "send_close" and args[0] is None:
        args = [None] if not args[1] else args  # a reason without a code: an error on both
    return attempt(lambda: getattr(conn, name)(*args))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.lists(frames, max_size=6),
    st.lists(st.integers(0, 100_000), max_size=6),
    st.lists(sends, max_size=6),
    st.sampled_from([None, 0, 10, 200, 1 << 20]),
)
def test_the_same_bytes_give_what_websockets_gives(
    stream: list[bytes], cuts: list[int], actions: list[Any], max_size: int | None
) -> None:
    data = b"".join(stream)
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    theirs, ours = websockets_open(max_size), OpenWebSocket(max_size)
    for index in range(max(len(pieces), len(actions))):
        if index < len(actions) and actions[index] is not None:
            assert act(ours, actions[index]) == act(theirs, actions[index])
            assert seen(ours) == seen(theirs)
        if index < len(pieces):
            whole = ours.whole_text(pieces[index])
            theirs.receive_data(pieces[index])
            ours.receive_data(pieces[index])
            observed = seen(ours)
            assert observed == seen(theirs)
            if whole is not None:  # what the shortcut said is what reading it gave, and nothing else
                assert observed[:2] == ([(1, whole, True)], []) and ours._pending is None


def test_a_message_in_many_pieces_is_read_once_whole() -> None:
    message = client_frame(1, "é".encode() * 40_000)
    ours = OpenWebSocket(None)
    for start in range(0, len(message), 1000):
        ours.receive_data(message[start : start + 1000])
    (event,) = ours.events_received()
    assert event.data == "é".encode() * 40_000 and ours._pending is None


def test_a_close_is_echoed_and_what_comes_after_it_is_not_read() -> None:
    ours = OpenWebSocket(None)
    ours.receive_data(client_frame(8, struct.pack("!H", 1001) + b"bye") + client_frame(1, b"late"))
    events = ours.events_received()
    assert [event.opcode for event in events] == [8]  # the late message is not read
    assert ours.close_rcvd == Close(1001, "bye") and ours.close_sent == ours.close_rcvd
    assert list(ours.data_to_send()) == [b"\x88\x05\x03\xe9bye", b""]  # the echo, then the end of the stream
    assert ours.state is State.CLOSING
    ours.receive_data(client_frame(9, b"ping?"))
    assert ours.events_received() == () and ours.data_to_send() == ()


def test_an_idle_connection_holds_no_buffer_and_no_list() -> None:
    ours = OpenWebSocket(1 << 20)
    ours.receive_data(client_frame(1, b"hello")[:4])
    assert ours._pending is not None  # a frame's first bytes wait
    ours.receive_data(client_frame(1, b"hello")[4:])
    assert [event.data for event in ours.events_received()] == [b"hello"]
    assert (ours._pending, ours._events, ours._writes) == (None, None, None)


def test_a_message_over_the_limit_in_fragments_each_under_it_fails_with_1009() -> None:
    fragments = (
        client_frame(1, b"a" * 60, fin=False) + client_frame(0, b"b" * 30, fin=False) + client_frame(0, b"c" * 20)
    )
    theirs, ours = websockets_open(100), OpenWebSocket(100)
    theirs.receive_data(fragments)
    ours.receive_data(fragments)
    assert seen(ours) == seen(theirs)
    assert ours.close_sent is not None and ours.close_sent.code == 1009


def test_a_whole_text_message_is_told_apart_and_anything_else_left_to_reading() -> None:
    message = client_frame(1, b'{"action":"increment"}')
    assert OpenWebSocket(1 << 20).whole_text(message) == b'{"action":"increment"}'
    assert OpenWebSocket(1 << 20).whole_text(client_frame(1, b"x" * 70_000)) == b"x" * 70_000
    not_whole = [
        b"",
        message[:-1],  # the frame is not all there
        message + client_frame(1, b"more"),  # two frames
        client_frame(1, b"part", fin=False),  # a fragment
        client_frame(2, b"bytes"),  # binary
        client_frame(1, b"rsv", rsv=4),  # a reserved bit
        client_frame(1, b"plain", masked=False),  # not masked: reading fails the connection
        client_frame(9, b"ping"),
    ]
    for data in not_whole:
        assert OpenWebSocket(1 << 20).whole_text(data) is None, data
    assert OpenWebSocket(10).whole_text(client_frame(1, b"x" * 11)) is None  # over the limit: reading says 1009
    waiting = OpenWebSocket(None)
    waiting.receive_data(client_frame(1, b"first")[:3])  # a frame's first bytes are unread
    assert waiting.whole_text(message) is None
    fragmented = OpenWebSocket(None)
    fragmented.receive_data(client_frame(1, b"part", fin=False))  # a message's first fragment came
    assert fragmented.whole_text(message) is None
    closed = OpenWebSocket(None)
    closed.receive_data(client_frame(8, b""))
    assert closed.whole_text(message) is None  # nothing is read after a close
    untouched = OpenWebSocket(None)
    untouched.whole_text(message)
    assert (untouched._pending, untouched._events, untouched._writes) == (None, None, None)
