"""``ctx.bind`` failures read as sentences: the field's name is taken out of msgspec's message
whole (``- at `$.age```), wherever the failing value sits."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context
from livetemplate.testing import LiveClient

pytestmark = pytest.mark.anyio


class Item(msgspec.Struct):
    qty: Annotated[int, msgspec.Meta(ge=1)]


class Order(msgspec.Struct):
    age: Annotated[int, msgspec.Meta(ge=13)]
    items: list[Item] = []


class State(msgspec.Struct):
    n: int = 0


class Binder:
    def order(self, state: State, ctx: Context) -> State:
        ctx.bind(Order)
        return state


async def errors(data: dict[str, Any]) -> dict[str, str]:
    app = livetemplate.mount(Binder(), State(), template="<p>{{ n }}</p>")
    async with LiveClient(app) as client, client.connect("/") as view:
        reply = await view.send("order", data)
    assert reply["meta"]["success"] is False
    return reply["meta"]["errors"]  # type: ignore[no-any-return]


async def test_a_constraint() -> None:
    assert await errors({"age": "12"}) == {"age": "Expected `int` >= 13"}


async def test_a_wrong_type() -> None:
    assert await errors({"age": "old"}) == {"age": "Expected `int`, got `str`"}


async def test_a_value_inside_a_list() -> None:
    assert await errors({"age": 20, "items": [{"qty": 0}]}) == {"items": "Expected `int` >= 1"}
