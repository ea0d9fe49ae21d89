"""Fuzzing the message decoding and dispatch of both transports with hostile messages:
truncated UTF-8, deep nesting, huge numbers, wrong types, huge names, random bytes.

Hypothesis draws a corpus of messages; each is then mutated (cut at random points, bytes
flipped, nested deeper) into many more, so that 100,000 messages reach the app in all (half
over WebSockets, half as HTTP posts). None crashes the app, changes the state or grows memory
without bound, and every one is answered with a clear error."""

from __future__ import annotations

import json
import random
import resource
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import livetemplate
from livetemplate import Context, FieldError, Persist
from livetemplate.testing import LiveClient

pytestmark = pytest.mark.anyio

#: Examples per transport x drawn messages x mutations of each = 25 x 20 x 100 = 50,000.
EXAMPLES = 25
DRAWN = 20
MUTATIONS = 100
SECRET = "only-the-test-knows"


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0


class Item(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    qty: int


class Controller:
    def add(self, state: State, ctx: Context) -> State:
        if ctx.get_str("token") != SECRET:
            raise FieldError("token", "wrong token")
        state.count += ctx.get_int("n")
        return state

    def order(self, state: State, ctx: Context) -> State:
        item = ctx.bind(Item)
        if ctx.get_str("token") != SECRET:
            raise FieldError("token", "wrong token")
        state.count += item.qty
        return state


NAMES = st.one_of(
    st.sampled_from(["add", "order", "Add", "ORDER", "upload_chunk", "mount", "on_connect", ""]),
    st.text(max_size=40),
    st.text(min_size=200, max_size=3000),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False),
    st.text(max_size=50),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """One hostile message, as the bytes of a text frame or a POST body."""
    kind = draw(st.sampled_from(["envelope", "envelope", "wrong types", "deep", "huge number", "unicode", "bytes"]))
    if kind == "envelope":
        data = draw(st.dictionaries(st.sampled_from(["n", "token", "title", "qty", "x"]), VALUES, max_size=4))
        return json.dumps({"action": draw(NAMES), "data": data}).encode()
    if kind == "wrong types":
        value = draw(st.sampled_from([{"action": 1}, {"action": None}, {"action": "add", "data": [1]}, [1, 2], "x", 3]))
        return json.dumps(value).encode()
    if kind == "deep":
        depth = draw(st.integers(500, 5000))
        return f'{{"action": "add", "data": {{"n": {"[" * depth + "]" * depth}}}}}'.encode()
    if kind == "huge number":
        return f'{{"action": "add", "data": {{"n": {"9" * draw(st.integers(20, 4000))}}}}}'.encode()
    if kind == "unicode":
        text = draw(st.text(min_size=1, max_size=30))
        return json.dumps({"action": "order", "data": {"title": text, "qty": 1}}, ensure_ascii=False).encode()
    return draw(st.binary(min_size=1, max_size=64))


def mutations(message: bytes, rng: random.Random) -> Iterator[bytes]:
    """``message`` and variants of it: cut short (mid UTF-8 sequence too), bytes flipped, a
    piece repeated, nested in a list."""
    yield message
    for _ in range(MUTATIONS - 1):
        how = rng.randrange(4)
        if how == 0 and len(message) > 1:
            yield message[: rng.randrange(1, len(message))]
        elif how == 1:
            flipped = bytearray(message)
            for _ in range(rng.randint(1, 3)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            yield bytes(flipped)
        elif how == 2:
            start = rng.randrange(len(message))
            yield message[:start] + message[start : start + 8] * rng.randint(2, 50) + message[start:]
        else:
            yield b"[" * rng.randint(1, 3000) + message
    return


def clear_error(reply: Any) -> bool:
    """A pong, or a frame that changes nothing and says what was wrong."""
    if reply == {"pong": True}:
        return True
    meta = reply.get("meta", {})
    return meta.get("success") is False and bool(meta.get("errors")) and all(meta["errors"].values())


def make() -> livetemplate.LiveApp:
    return livetemplate.mount(Controller(), State(), template="<p>{{ count }}</p>", message_rate_limit=None)


def peak_rss() -> int:
    """The process's peak resident memory, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found: shrinking 2,000 messages takes long
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
CORPUS = st.lists(messages(), min_size=DRAWN, max_size=DRAWN)


@FUZZ
@given(corpus=CORPUS, seed=st.integers(0, 2**32))
async def test_websocket_messages(corpus: list[bytes], seed: int) -> None:
    rng = random.Random(seed)
    before = peak_rss()
    async with LiveClient(make()) as client, client.connect("/") as ws:
        for drawn in corpus:
            batch = list(mutations(drawn, rng))
            for message in batch:  # sent in a row, answered in order
                try:
                    await ws.send_text(message.decode("utf-8"))
                except UnicodeDecodeError:
                    await ws.send_bytes(message)  # not text: a binary frame
            for message in batch:
                reply = await ws.receive_json()
                assert clear_error(reply), (message[:200], reply)
        assert (await ws.action("__ping__")) == {"pong": True}  # still open
        assert "<p>0</p>" in ws.html()
    assert peak_rss() - before < 100 * 1024 * 1024


@FUZZ
@given(corpus=CORPUS, seed=st.integers(0, 2**32))
async def test_http_messages(corpus: list[bytes], seed: int) -> None:
    rng = random.Random(seed)
    app = make()
    for drawn in corpus:
        for message in mutations(drawn, rng):
            status, reply = await post(app, message)
            assert status in (200, 400), (message[:200], status)
            assert clear_error(reply), (message[:200], reply)
    async with LiveClient(app) as client:
        assert "<p>0</p>" in (await client.get("/")).text


async def post(app: livetemplate.LiveApp, body: bytes) -> tuple[int, Any]:
    """POST ``body`` as JSON straight to the app (no HTTP client: the messages are the point)."""
    sent: list[Any] = []
    received = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> Any:
        return next(received)

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"host", b"testserver")]
    await app({"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": headers}, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])
