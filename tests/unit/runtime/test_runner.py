"""The runner: commit by compare-and-set against other instances, re-runs on a stale
version, store outages, effects that apply only on success, pushes deferred to after the
commit."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

from livetemplate import Context, MemorySessionStore, Persist, Snapshot, StaleVersion
from livetemplate.context import Exchange
from livetemplate.controller import Actions
from livetemplate.groups import Groups
from livetemplate.ops.metrics import Metrics
from livetemplate.runner import Runner, defer
from livetemplate.state import StateSpec
from tests.support.stores import RecordingStore

pytestmark = pytest.mark.anyio

GROUP = "g" * 43


class State(msgspec.Struct):
    items: Annotated[list[str], Persist] = []
    tab: int = 0


class Controller:
    def __init__(self) -> None:
        self.runs = 0
        self.before_commit: Any = None

    async def add(self, state: State, ctx: Context) -> State:
        self.runs += 1
        state.items.append(ctx.get_str("item"))
        if self.before_commit is not None:
            hook, self.before_commit = self.before_commit, None
            await hook()
        ctx.set_flash("saved", ctx.get_str("item"))
        ctx.publish("news", "added", {"item": ctx.get_str("item")})
        return state

    def tab(self, state: State, ctx: Context) -> State:
        state.tab += 1
        return state

    async def push_inside(self, state: State, ctx: Context) -> State:
        assert defer(self._pushed)
        state.items.append("pushing")
        return state

    async def _pushed(self) -> None:
        return None


class Instance:
    """One process's runner over a shared store."""

    def __init__(self, store: Any, controller: Controller | None = None) -> None:
        self.controller = controller or Controller()
        self.groups = Groups(store, "app", persisted=True, idle_timeout=60)
        self.groups.in_use = lambda group_id: True  # a tab is open here: the snapshot held is current
        self.runner = Runner(
            Actions(self.controller),
            StateSpec(State()),
            self.groups,
            sessions=lambda group_id: None,  # type: ignore[arg-type,return-value]
            topic_gate=lambda topic, ctx, exchange: None,
            metrics=Metrics(),
        )

    async def add(self, item: str, exchange: Exchange | None = None) -> Any:
        group = await self.groups.get(GROUP)
        return await self.runner.run(
            group, exchange or Exchange(), self.runner.new_state(group), action="add", data={"item": item}
        )


async def test_another_instances_commit_makes_the_action_run_again_on_its_state() -> None:
    store = MemorySessionStore()
    one, two = Instance(store), Instance(store)
    await one.add("a")
    await two.groups.get(GROUP)  # two holds version 1
    await one.add("b")  # version 2, which two has not seen
    outcome = await two.add("c")
    assert outcome.success
    assert outcome.state.items == ["a", "b", "c"]  # both kept
    assert two.controller.runs == 2  # ran again on the fresh snapshot
    assert (await store.get("app:" + GROUP)).version == 3  # type: ignore[union-attr]
    await store.close()


async def test_two_instances_adding_at_the_same_moment_keep_both_items() -> None:
    store = MemorySessionStore()
    one, two = Instance(store), Instance(store)
    await one.add("first")
    await two.groups.get(GROUP)

    async def meanwhile() -> None:
        await two.add("theirs")  # commits while one's action runs

    one.controller.before_commit = meanwhile
    outcome = await one.add("mine")
    assert outcome.success and outcome.state.items == ["first", "theirs", "mine"]
    await store.close()


async def test_a_commit_heard_of_while_an_action_runs_is_not_overwritten() -> None:
    """Regression: the other instance's commit reached this one (its envelope, or a reload)
    while an action ran on the version before; the action then committed against the newer
    version and overwrote that commit, which it had never seen."""
    store = MemorySessionStore()
    one, two = Instance(store), Instance(store)
    await one.add("first")
    await two.groups.get(GROUP)

    async def meanwhile() -> None:
        await two.add("theirs")
        snapshot = await store.get("app:" + GROUP)
        assert snapshot is not None
        assert one.groups.replace(GROUP, snapshot) is not None  # the commit's envelope arrives

    one.controller.before_commit = meanwhile
    outcome = await one.add("mine")
    assert outcome.success and outcome.state.items == ["first", "theirs", "mine"]
    assert one.controller.runs == 3  # ran again on the version that holds "theirs"
    await store.close()


async def test_a_change_other_instances_make_too_is_committed_by_its_claimant_only() -> None:
    """A topic message runs on each instance holding a tab of the session: the instance that
    claims it commits, the other keeps the fields as stored, even across a re-run."""
    store = MemorySessionStore()
    one, two = Instance(store), Instance(store)
    first, second = await one.groups.get(GROUP), await two.groups.get(GROUP)

    async def meanwhile() -> None:
        await two.add("theirs")  # an unrelated commit: one's run goes again, its claim held

    one.controller.before_commit = meanwhile
    won = await one.runner.run(
        first, Exchange(), one.runner.new_state(first), action="add", data={"item": "news"}, once="m1"
    )
    assert won.success and won.committed is not None and won.state.items == ["theirs", "news"]
    lost = await two.runner.run(
        second, Exchange(), two.runner.new_state(second), action="add", data={"item": "news"}, once="m1"
    )
    assert lost.success and lost.committed is None
    assert lost.state.items == ["theirs"]  # its copy of the change dropped: the fields it read
    assert (await store.get("app:" + GROUP)) == Snapshot(won.committed.data, 2)
    await store.close()


async def test_a_claim_the_store_cannot_answer_fails_clearly() -> None:
    instance = Instance(RecordingStore(fail_saves=True))
    group = await instance.groups.get(GROUP)
    outcome = await instance.runner.run(
        group, Exchange(), instance.runner.new_state(group), action="add", data={"item": "x"}, once="m1"
    )
    assert not outcome.success and outcome.errors == {"_general": "Your change could not be saved; try again."}
    assert outcome.state.items == []


async def test_endless_conflicts_fail_clearly_and_change_nothing() -> None:
    class AlwaysStale(RecordingStore):
        async def save(self, key: str, data: bytes, *, version: int) -> int:
            raise StaleVersion(key, version)

    instance = Instance(AlwaysStale())
    exchange = Exchange()
    outcome = await instance.add("x", exchange)
    assert not outcome.success
    assert outcome.errors == {"_general": "The page changed meanwhile; please try again."}
    assert outcome.state.items == []
    assert instance.controller.runs == instance.runner.max_attempts == 5
    assert exchange.flash == {}  # effects of a failed run never apply


async def test_effects_apply_only_when_the_run_commits() -> None:
    store = RecordingStore(fail_saves=True)
    instance = Instance(store)
    exchange = Exchange()
    outcome = await instance.add("x", exchange)
    assert not outcome.success and outcome.publishes == []
    assert exchange.flash == {}
    store.fail_saves = False
    outcome = await instance.add("x", exchange)
    assert outcome.success
    assert exchange.flash == {"saved": "x"}
    assert [(p.topic, p.action, p.data) for p in outcome.publishes] == [("news", "added", {"item": "x"})]


async def test_a_change_to_tab_fields_only_writes_nothing() -> None:
    store = RecordingStore()
    instance = Instance(store)
    group = await instance.groups.get(GROUP)
    outcome = await instance.runner.run(group, Exchange(), instance.runner.new_state(group), action="tab")
    assert outcome.success and outcome.committed is None and outcome.state.tab == 1
    assert store.saves() == 0


async def test_pushes_requested_inside_an_action_are_deferred() -> None:
    instance = Instance(MemorySessionStore())
    group = await instance.groups.get(GROUP)
    outcome = await instance.runner.run(group, Exchange(), instance.runner.new_state(group), action="push_inside")
    assert [push.__name__ for push in outcome.deferred] == ["_pushed"]  # type: ignore[attr-defined]
    assert not defer(instance.controller._pushed)  # outside an action nothing is deferred


async def test_a_remote_snapshot_replaces_ours_only_when_newer() -> None:
    store = MemorySessionStore()
    instance = Instance(store)
    await instance.add("a")
    groups = instance.groups
    assert groups.replace(GROUP, Snapshot(b"old", 1)) is None
    assert groups.replace("unknown" * 6 + "x", Snapshot(b"x", 9)) is None
    newer = Snapshot(msgspec.msgpack.encode({"items": ["remote"]}), 5)
    assert groups.replace(GROUP, newer) is not None
    assert (await groups.get(GROUP)).snapshot == newer
    groups.invalidate(GROUP)
    group = await groups.get(GROUP)  # read again from the store
    assert group.snapshot is not None and group.snapshot.version == 1
    await store.close()


async def test_an_overruled_group_takes_the_stores_snapshot_even_at_a_lower_version() -> None:
    """A write-back that dropped this process's change (another instance's won) leaves the
    store behind the group's version: the next read takes the store's state, where a store
    that went back (flushed) would have had ours kept."""
    store = MemorySessionStore()
    groups = Groups(store, "app", persisted=True, idle_timeout=60)
    group = await groups.get("g")
    group.snapshot = Snapshot(b"ours", 3)
    await store.save(groups.key("g"), b"theirs", version=0)
    assert groups.overrule("other-app:g") is None  # another app's key
    assert groups.overrule(groups.key("unknown")) is None
    assert groups.overrule(groups.key("g")) is group and group.stale
    await groups.reload(group)
    assert group.snapshot == Snapshot(b"theirs", 1)
    await groups.close()
