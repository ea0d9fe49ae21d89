"""The live view without ASGI: one tab's life cycle, messages in, frames out."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
import pytest

from livetemplate import Context, FieldError, MemorySessionStore, Persist, Template
from livetemplate.controller import Actions
from livetemplate.groups import Group, Groups
from livetemplate.ops.metrics import Metrics
from livetemplate.rendering import Pipeline
from livetemplate.runner import Runner
from livetemplate.session import LiveView, Phase
from livetemplate.state import StateSpec
from livetemplate.wire import Incoming

pytestmark = pytest.mark.anyio


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0
    note: str = ""
    tab: str = ""


class Controller:
    def __init__(self) -> None:
        self.log: list[str] = []

    def mount(self, state: State, ctx: Context) -> State:
        state.tab = ctx.get_str("tab")
        self.log.append(f"mount:{state.tab}")
        return state

    def on_connect(self, state: State, ctx: Context) -> None:
        self.log.append("on_connect")

    def on_disconnect(self, state: State, ctx: Context) -> None:
        self.log.append(f"on_disconnect:{state.count}")

    def increment(self, state: State, ctx: Context) -> State:
        state.count += ctx.get_int("by", 1)
        return state

    def note_it(self, state: State, ctx: Context) -> State:
        if not ctx.get_str("note"):
            raise FieldError("note", "Say something.")
        state.note = ctx.get_str("note")
        ctx.subscribe("news")
        return state


TEMPLATE = "<p>{{ count }}</p><i>{{ note }}{{ lvt.error('note') }}</i><b>{{ tab }}</b>"


class Core:
    """The parts a live view needs, wired as the app wires them (no hub: topics open)."""

    def __init__(self, template: str = TEMPLATE) -> None:
        self.controller = Controller()
        self.store = MemorySessionStore()
        spec: StateSpec[Any] = StateSpec(State())
        self.groups = Groups(self.store, "test", persisted=True, idle_timeout=60)
        self.runner = Runner(
            Actions(self.controller),
            spec,
            self.groups,
            sessions=lambda group_id: None,  # type: ignore[arg-type,return-value]
            topic_gate=lambda topic, ctx, exchange: None,
            metrics=Metrics(),
        )
        self.pipeline = Pipeline(Template(template), metrics=Metrics())

    async def view(self, group_id: str = "g" * 43, **query: str) -> LiveView:
        group = await self.groups.get(group_id)
        return LiveView(self.runner, self.pipeline, group, query=query, capabilities=("change",))

    async def close(self) -> None:
        await self.groups.close()
        await self.store.close()


def frames(raw: list[bytes]) -> list[Any]:
    return [json.loads(frame) for frame in raw]


@pytest.fixture
async def core() -> Any:
    core = Core()
    yield core
    await core.close()


async def test_open_mounts_and_sends_the_complete_tree(core: Core) -> None:
    view = await core.view(tab="one")
    assert view.phase is Phase.CONNECTING
    reply = await view.open()
    assert view.phase is Phase.OPEN
    assert core.controller.log == ["mount:one", "on_connect"]
    (frame,) = frames(reply.frames)
    assert frame["tree"]["s"] == ["<p>", "</p><i>", "", "</i><b>", "</b>"]
    assert frame["meta"] == {"success": True, "errors": {}, "capabilities": ["change"]}


async def test_an_action_answers_with_the_change_and_commits(core: Core) -> None:
    view = await core.view()
    await view.open()
    reply = await view.handle(Incoming("increment", {"by": 2}))
    assert frames(reply.frames) == [
        {"tree": {"0": "2"}, "meta": {"success": True, "errors": {}, "action": "increment"}}
    ]
    assert reply.outcome is not None and reply.outcome.committed is not None
    assert reply.outcome.committed.version == 1
    assert (await core.store.get("test:" + "g" * 43)) == reply.outcome.committed


async def test_a_field_error_changes_nothing_and_renders_the_error(core: Core) -> None:
    view = await core.view()
    await view.open()
    reply = await view.handle(Incoming("note_it", {"note": ""}))
    (frame,) = frames(reply.frames)
    assert frame["meta"] == {"success": False, "errors": {"note": "Say something."}, "action": "note_it"}
    assert frame["tree"] == {"2": "Say something."}
    assert view.topics == set()  # the failed action's subscription did not take effect
    reply = await view.handle(Incoming("note_it", {"note": "hi"}))
    assert frames(reply.frames)[0]["tree"] == {"1": "hi", "2": ""}
    assert view.topics == {"news"}


async def test_ping_and_navigate(core: Core) -> None:
    view = await core.view(tab="a")
    await view.open()
    assert (await view.handle(Incoming("__ping__"))).frames == [b'{"pong":true}']
    reply = await view.handle(Incoming("__navigate__", {"tab": "b", "n": 1}))
    assert frames(reply.frames) == [{"tree": {"3": "b"}, "meta": {"success": True, "errors": {}}}]
    assert view.query == {"tab": "b", "n": "1"}


async def test_unknown_and_upload_actions_are_refused(core: Core) -> None:
    view = await core.view()
    await view.open()
    (frame,) = frames((await view.handle(Incoming("nope"))).frames)
    assert frame == {
        "tree": {},
        "meta": {"success": False, "errors": {"_general": "unknown action 'nope'"}, "action": "nope"},
    }
    (frame,) = frames((await view.handle(Incoming("upload_start"))).frames)
    assert frame["meta"]["errors"]["_general"] == "this page declares no uploads"


async def test_a_second_tab_refreshes_to_the_committed_fields(core: Core) -> None:
    one, two = await core.view(), await core.view()
    await one.open()
    await two.open()
    await one.handle(Incoming("increment"))
    assert frames((await two.refresh()).frames) == [{"tree": {"0": "1"}, "meta": {"success": True, "errors": {}}}]
    assert frames((await two.refresh()).frames)[0]["tree"] == {}  # nothing new


async def test_a_push_without_commit_keeps_the_groups_fields(core: Core) -> None:
    """A pushed action changes persisted fields once: later runs drop their change, even
    for a group with nothing stored yet."""
    one = await core.view()
    await one.open()
    reply = await one.push("increment", {}, commit=False)
    assert reply.outcome is not None and reply.outcome.success and reply.outcome.committed is None
    assert frames(reply.frames)[0]["tree"] == {}
    assert await core.store.get("test:" + "g" * 43) is None


async def test_draining_and_closing(core: Core) -> None:
    view = await core.view()
    await view.open()
    await view.handle(Incoming("increment"))
    view.drain()
    assert view.phase is Phase.DRAINING
    (frame,) = frames((await view.handle(Incoming("increment"))).frames)
    assert frame["meta"]["success"] is False and "shutting down" in frame["meta"]["errors"]["_general"]
    assert (await view.push("increment", {})).frames == []
    assert (await view.refresh()).frames == []
    assert (await view.handle(Incoming("__ping__"))).frames == [b'{"pong":true}']
    await view.close()
    assert view.phase is Phase.CLOSED
    assert core.controller.log[-1] == "on_disconnect:1"
    assert await view.close() is None  # closing twice does nothing


async def test_a_view_closed_before_it_opened_runs_no_hook(core: Core) -> None:
    view = await core.view()
    assert await view.close() is None
    assert core.controller.log == []


@pytest.mark.parametrize(
    ("start", "to"),
    [(Phase.CONNECTING, Phase.DRAINING), (Phase.CLOSED, Phase.OPEN), (Phase.DRAINING, Phase.OPEN)],
)
async def test_transitions_are_checked(core: Core, start: Phase, to: Phase) -> None:
    view = await core.view()
    view.phase = start
    with pytest.raises(RuntimeError, match=f"cannot go from '{start.value}' to '{to.value}'"):
        view.move(to)


async def test_a_template_error_is_reported_and_resets_the_view() -> None:
    core = Core("<p>{{ count }}</p>{% if count == 1 %}{{ 1 / 0 }}{% endif %}")
    try:
        view = await core.view()
        await view.open()
        (frame,) = frames((await view.handle(Incoming("increment"))).frames)
        assert frame == {
            "tree": {},
            "meta": {"success": False, "errors": {"_general": "The page could not be rendered."}},
        }
        (frame,) = frames((await view.handle(Incoming("increment"))).frames)
        assert "s" in frame["tree"]  # the client's view was unknown: a complete tree
    finally:
        await core.close()


def test_groups_are_plain_objects() -> None:
    group = Group("x" * 43, "ns:x", None)
    assert group.version == 0 and "v0" in repr(group)
