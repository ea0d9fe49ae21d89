"""The WebSocket protocol of an open connection, server side, sans I/O, in one object.

websockets' ``ServerProtocol`` parses the handshake and then the frames with generators over
a stream reader: an open connection holds the protocol, its reader, two generators, their
frames and a few lists, some 1.2 KiB and 6 objects for the collector. Once the handshake is
done, :class:`~livetemplate.transports.uvicorn_protocol.LiveWebSocketProtocol` hands the
connection to :class:`OpenWebSocket`: the same methods and attributes of ``ServerProtocol``
that uvicorn's protocol uses after the handshake, with the same behaviour (it is tested
against websockets on the same bytes), holding the bytes of an incomplete frame only while
there are some. websockets' ``Frame`` and ``Close`` still check, parse and carry what goes in
and out; the frames of the app's text messages are made by :mod:`livetemplate.frames`.

RFC 6455 as websockets applies it: client frames must be masked; reserved bits, unknown
opcodes, long or fragmented control frames, continuation frames out of place and bad close
codes fail the connection with 1002; a message longer than ``max_size`` with 1009; a close
reason that is not UTF-8 with 1007. A close frame is echoed, and then (as after a failure)
the server closes the TCP connection and what else comes is discarded. It applies no
extension: a connection that negotiated one (per-message deflate) keeps websockets' protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.exceptions import InvalidState, PayloadTooBig, ProtocolError
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets installed without its C extension
    from websockets.utils import apply_mask

from ..frames import websocket_text_frame

__all__ = ["OpenWebSocket"]

#: What an empty read of events or of bytes to send returns (nothing is allocated for it).
_NOTHING: tuple[()] = ()
#: The end of the data stream to send: the server closes the TCP connection.
_SEND_EOF = b""
#: The opcodes by value. PERF: ``Opcode(value)`` runs two Python functions of the enum module.
_OPCODES = {int(opcode): opcode for opcode in Opcode}
#: PERF: a member read through its enum class goes through the enum's metaclass, which
#: defines ``__getattr__`` (about 850 instructions on CPython 3.11); a module name is a dict
#: lookup. These are read for every frame.
_TEXT, _BINARY, _CONT, _PING, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING, Opcode.CLOSE
#: The first byte of a text message in one frame: FIN, no reserved bit, the text opcode.
_WHOLE_TEXT = 0x81
#: What :meth:`OpenWebSocket._frame_at` says of a frame whose bytes have not all come.
_INCOMPLETE = (-1, -1)


class OpenWebSocket:
    """An open connection's frames in and out (see the module's text). ``max_size`` bounds
    a message's payload (None: no bound)."""

    __slots__ = (
        "_current",
        "_discarding",
        "_events",
        "_pending",
        "_writes",
        "close_rcvd",
        "close_sent",
        "max_size",
        "parser_exc",
        "state",
    )

    #: The handshake is over (uvicorn's protocol reads it on every read of data).
    handshake_exc = None

    def __init__(self, max_size: int | None) -> None:
        self.max_size = max_size
        self.state = State.OPEN
        self.close_rcvd: Close | None = None
        self.close_sent: Close | None = None
        self.parser_exc: Exception | None = None
        self._pending: bytearray | None = None  # an incomplete frame's bytes
        self._current: int | None = None  # the payload bytes so far of a fragmented message
        self._discarding = False  # closed or failed: what comes is not read
        self._events: list[Frame] | None = None
        self._writes: list[bytes] | None = None

    # -- in -------------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Read the frames in ``data`` (and in what came before it): their events wait for
        :meth:`events_received`, the answers (a pong, a close) for :meth:`data_to_send`."""
        if self._discarding:
            return
        pending = self._pending
        if pending is not None:  # PERF: a long message comes in pieces, added in place
            pending += data
            data = pending
        try:
            end = self._read_frames(data)
        except ProtocolError as exc:
            self._failed(CloseCode.PROTOCOL_ERROR, str(exc), exc)
        except UnicodeDecodeError as exc:
            self._failed(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}", exc)
        except PayloadTooBig as exc:
            exc.set_current_size(self._current)
            self._failed(CloseCode.MESSAGE_TOO_BIG, str(exc), exc)
        else:
            if self._discarding or end == len(data):
                self._pending = None
            elif pending is None:
                self._pending = bytearray(data[end:])
            elif end:
                del pending[:end]

    def whole_text(self, data: bytes) -> bytes | None:
        """The payload of ``data`` when it is one complete text message in a single frame
        that :meth:`receive_data` would read as such now (nothing before it unread, none
        of a fragmented message, within the size limit): the usual client message. None
        otherwise. Either way nothing is read: the caller handles the message itself, or
        has :meth:`receive_data` read ``data``. PERF: no frame object, event or list."""
        if (
            not data
            or data[0] != _WHOLE_TEXT
            or self._pending is not None
            or self._current is not None
            or self._discarding
        ):
            return None
        try:
            mask, end = self._frame_at(data, 0)
        except (ProtocolError, PayloadTooBig):
            return None  # receive_data says why
        if end != len(data):
            return None
        return apply_mask(data[mask + 4 : end], data[mask : mask + 4])

    def _read_frames(self, data: bytes | bytearray) -> int:
        """Read the complete frames of ``data``; where the first incomplete one starts."""
        start = 0
        while not self._discarding:
            mask, end = self._frame_at(data, start)
            if end < 0:
                break
            head1 = data[start]
            payload = apply_mask(data[mask + 4 : end], data[mask : mask + 4])
            fin, rsv = head1 & 0x80 != 0, head1 & 0x70
            frame = Frame(_OPCODES[head1 & 0x0F], payload, fin, rsv & 0x40 != 0, rsv & 0x20 != 0, rsv & 0x10 != 0)
            frame.check()
            start = end
            self._receive_frame(frame)
        return start

    def _frame_at(self, data: bytes | bytearray, start: int) -> tuple[int, int]:
        """Where the masking key of the frame at ``start`` of ``data`` is, and where the frame
        ends; (-1, -1) when ``data`` ends before it does. Raises on a header the connection
        does not accept (an unknown opcode, no mask, a payload over the size limit)."""
        size = len(data)
        if size - start < 2:
            return _INCOMPLETE
        head1, head2 = data[start], data[start + 1]
        if head1 & 0x0F not in _OPCODES:
            raise ProtocolError("invalid opcode")
        if not head2 & 0x80:
            raise ProtocolError("incorrect masking")
        length, header = head2 & 0x7F, 2
        if length == 126:
            if size - start < 4:
                return _INCOMPLETE
            length, header = int.from_bytes(data[start + 2 : start + 4], "big"), 4
        elif length == 127:
            if size - start < 10:
                return _INCOMPLETE
            length, header = int.from_bytes(data[start + 2 : start + 10], "big"), 10
        limit = self._limit()
        if limit is not None and length > limit:
            raise PayloadTooBig(length, limit)
        mask = start + header
        end = mask + 4 + length
        return (mask, end) if end <= size else _INCOMPLETE

    def _limit(self) -> int | None:
        """The longest payload the next frame may have."""
        if self.max_size is None or self._current is None:
            return self.max_size
        return self.max_size - self._current

    def _receive_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if self._current is not None:
                raise ProtocolError("expected a continuation frame")
            if not frame.fin:
                self._current = len(frame.data)
        elif opcode is _CONT:
            if self._current is None:
                raise ProtocolError("unexpected continuation frame")
            self._current = None if frame.fin else self._current + len(frame.data)
        elif opcode is _PING:
            self._send(Opcode.PONG, frame.data)  # RFC 6455 5.5.2: a ping is answered
        elif opcode is _CLOSE:
            self.close_rcvd = Close.parse(frame.data)
            if self._current is not None:
                raise ProtocolError("incomplete fragmented message")
            if self.state is State.OPEN:  # echoed (its data as it came: an empty close stays empty)
                self._closing(self.close_rcvd, frame.data)
            self._end()
        if self._events is None:
            self._events = [frame]
        else:
            self._events.append(frame)

    def events_received(self) -> Sequence[Frame]:
        """The frames read since the last call, in order."""
        events, self._events = self._events, None
        return events or _NOTHING

    # -- out ------------------------------------------------------------------------------------

    def data_to_send(self) -> Sequence[bytes]:
        """The bytes to write since the last call; an empty one asks for the end of the stream."""
        writes, self._writes = self._writes, None
        return writes or _NOTHING

    def send_text(self, data: bytes) -> None:
        """A text message (``data``: UTF-8)."""
        self._check_open()
        self._write(websocket_text_frame(data))

    def send_binary(self, data: bytes) -> None:
        """A binary message."""
        self._check_open()
        self._send(Opcode.BINARY, data)

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake, with ``code`` and ``reason`` (none: an empty close)."""
        self._check_open()
        if code is None:
            if reason:
                raise ProtocolError("cannot send a reason without a code")
            self._closing(Close(CloseCode.NO_STATUS_RCVD, ""), b"")
        else:
            close = Close(code, reason)
            self._closing(close, close.serialize())

    def send_ping(self, data: bytes) -> None:
        """A ping (also while closing)."""
        if self.state is not State.OPEN and self.state is not State.CLOSING:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self._send(Opcode.PING, data)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame unless one was sent (or the
        network failed: 1006), then the end of the stream; nothing more is read."""
        if self.state is State.OPEN and code != CloseCode.ABNORMAL_CLOSURE:
            close = Close(code, reason)
            self._closing(close, close.serialize())
        self._end()

    def _failed(self, code: int, reason: str, error: Exception) -> None:
        self.fail(code, reason)
        self.parser_exc = error
        self._pending = None

    def _end(self) -> None:
        """The server closes the TCP connection; what comes is discarded."""
        if not self._discarding:
            self._discarding = True
            self._write(_SEND_EOF)

    def _closing(self, close: Close, data: bytes | bytearray | memoryview) -> None:
        """Send a close frame of ``data`` (which says ``close``): the closing handshake starts."""
        self._send(Opcode.CLOSE, data)
        self.close_sent = close
        self.state = State.CLOSING

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise InvalidState(f"connection is {self.state.name.lower()}")

    def _send(self, opcode: Opcode, data: bytes | bytearray | memoryview) -> None:
        """A final frame (checked as websockets checks it; a server never masks)."""
        self._write(Frame(opcode, data).serialize(mask=False))

    def _write(self, data: bytes) -> None:
        if self._writes is None:
            self._writes = [data]
        else:
            self._writes.append(data)
