"""A counter: two buttons, one number.

uvicorn examples.counter.app:app
"""

from __future__ import annotations

from typing import Annotated

import msgspec

import livetemplate
from livetemplate import Context, Persist

TEMPLATE = """
<main>
  <h1>Count: <output>{{ count }}</output></h1>
  <button name="decrement">-</button>
  <button name="increment">+</button>
</main>
"""


class Counter(msgspec.Struct):
    count: Annotated[int, Persist] = 0


class CounterController:
    def increment(self, state: Counter, ctx: Context) -> Counter:
        state.count += 1
        return state

    def decrement(self, state: Counter, ctx: Context) -> Counter:
        state.count -= 1
        return state


app = livetemplate.mount(CounterController(), Counter(), template=TEMPLATE)
