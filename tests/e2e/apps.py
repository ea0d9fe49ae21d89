"""Apps the browser tests serve (through ``tests.e2e.serve``) besides the examples as they are."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec

import livetemplate
from examples.counter.app import TEMPLATE as COUNTER_TEMPLATE
from examples.counter.app import Counter, CounterController
from livetemplate import Context, Persist


def counter(**options: Any) -> livetemplate.LiveApp:
    """The counter example mounted with ``options`` (for example ``heartbeat_ms``)."""
    return livetemplate.mount(CounterController(), Counter(), template=COUNTER_TEMPLATE, **options)


PUSH_TEMPLATE = """
<main>
  <p id="status">{{ status }}</p>
  <p id="runs">Runs: {{ runs }}</p>
  <button name="start">Start</button>
</main>
"""

#: Seconds between the action returning and the background task's push.
PUSH_DELAY = 0.5


class Job(msgspec.Struct):
    status: str = "idle"
    runs: Annotated[int, Persist] = 0


class JobController:
    """``start`` answers at once and leaves a task behind that pushes ``finish`` later."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, state: Job, ctx: Context) -> Job:  # async: it starts a task on the event loop
        session = ctx.session
        runs = state.runs + 1

        async def later() -> None:
            await asyncio.sleep(PUSH_DELAY)
            await session.trigger_action("finish", {"result": f"run {runs} finished"})

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        state.status = "working"
        state.runs = runs
        return state

    def finish(self, state: Job, ctx: Context) -> Job:
        state.status = ctx.get_str("result")
        return state


def push(**options: Any) -> livetemplate.LiveApp:
    """An app whose action finishes from a background task, through ``ctx.session.trigger_action``."""
    return livetemplate.mount(JobController(), Job(), template=PUSH_TEMPLATE, **options)


class Slow(msgspec.Struct):
    done: Annotated[int, Persist] = 0


class SlowController:
    async def work(self, state: Slow, ctx: Context) -> Slow:
        await asyncio.sleep(ctx.get_float("seconds"))
        state.done += 1
        return state


def slow(**options: Any) -> livetemplate.LiveApp:
    """An app whose action takes ``seconds`` (for shutdowns with an action in flight)."""
    return livetemplate.mount(SlowController(), Slow(), template="<p>done {{ done }}</p>", **options)


BOARD_TOPIC = "board"


class Board(msgspec.Struct):
    seq: int = 0
    pad: str = ""


class BoardController:
    """Every tab shows the last post: ``post`` publishes it to the topic every tab subscribed to."""

    def mount(self, state: Board, ctx: Context) -> Board:
        ctx.subscribe(BOARD_TOPIC)
        return state

    def post(self, state: Board, ctx: Context) -> Board:
        ctx.publish(BOARD_TOPIC, "show", {"seq": ctx.get_int("seq"), "pad": ctx.get_str("pad")})
        return state

    def show(self, state: Board, ctx: Context) -> Board:
        state.seq, state.pad = ctx.get_int("seq"), ctx.get_str("pad")
        return state


def board(**options: Any) -> livetemplate.LiveApp:
    """Broadcasts to every open tab, with a payload of the poster's size."""
    return livetemplate.mount(
        BoardController(), Board(), template="<p>{{ seq }}</p><i>{{ pad }}</i>", open_topics=True, **options
    )
