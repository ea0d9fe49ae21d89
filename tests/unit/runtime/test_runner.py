"""The runner: commit by compare-and-set against other instances, re-runs on a stale
version, store outages, effects that apply only on success, pushes deferred to after the
commit."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
import pytest

from livetemplate import Context, MemorySessionStore, Persist, Snapshot, StaleVersion
from livetemplate.context import Exchange
from livetemplate.controller import Actions
from livetemplate.errors import FieldError, NotAvailable
from livetemplate.groups import Groups
from livetemplate.ops.metrics import Metrics
from livetemplate.runner import RETRY_WAIT, RETRY_WAIT_MAX, Runner, defer, retry_wait
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

    def __init__(self, store: Any, controller: Any = None, **options: Any) -> None:
        self.controller = controller or Controller()
        self.groups = Groups(store, "app", persisted=True, idle_timeout=60)
        self.groups.in_use = lambda group_id: True  # a tab is open here: the snapshot held is current
        self.metrics = Metrics()
        self.runner = Runner(
            Actions(self.controller),
            StateSpec(State()),
            self.groups,
            sessions=lambda group_id: None,  # type: ignore[arg-type,return-value]
            topic_gate=lambda topic, ctx, exchange: None,
            metrics=self.metrics,
            **options,
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


async def test_a_run_outlasts_another_instances_burst_of_commits() -> None:
    """Another instance commits the group again and again for 10 ms, so every attempt in that
    time conflicts. Five attempts in a row would all fail within it; the run waits longer after
    each conflict (at least 15 ms before its fifth), and commits once the burst is over."""

    class Contended(RecordingStore):
        busy_until = 0.0

        async def save(self, key: str, data: bytes, *, version: int) -> int:
            current = self.data.get(key)
            if current is not None and time.monotonic() < self.busy_until:  # the other committed first
                self.data[key] = Snapshot(current.data, current.version + 1)
                raise StaleVersion(key, version)
            return await super().save(key, data, version=version)

    store = Contended()
    instance = Instance(store)
    assert (await instance.add("first")).success
    store.busy_until = time.monotonic() + 0.010
    outcome = await instance.add("x")
    assert outcome.success and outcome.committed is not None
    assert outcome.state.items == ["first", "x"]
    assert instance.controller.runs > 2  # it did conflict, and ran again
    assert store.data["app:" + GROUP].version == outcome.committed.version


async def test_a_claimed_change_outlasts_more_conflicts_than_a_clients_action() -> None:
    """No other instance commits a topic message's change that this instance claimed, so it
    gets four times the attempts: it commits after seven conflicts in a row, where a
    client's action gives up after five."""

    class Conflicting(RecordingStore):
        conflicts = 0  # the saves another instance beats

        async def save(self, key: str, data: bytes, *, version: int) -> int:
            current = self.data.get(key)
            if current is not None and self.conflicts:
                self.conflicts -= 1
                self.data[key] = Snapshot(current.data, current.version + 1)  # the other committed first
                raise StaleVersion(key, version)
            return await super().save(key, data, version=version)

    store = Conflicting()
    instance = Instance(store)
    assert (await instance.add("first")).success
    store.conflicts = 7
    refused = await instance.add("mine")
    assert not refused.success and refused.errors == {"_general": "The page changed meanwhile; please try again."}
    assert store.conflicts == 2  # five attempts
    store.conflicts = 7
    group = await instance.groups.get(GROUP)
    state = instance.runner.new_state(group)
    claimed = await instance.runner.run(group, Exchange(), state, action="add", data={"item": "news"}, once="m1")
    assert claimed.success and claimed.committed is not None
    assert claimed.state.items == ["first", "news"] and store.conflicts == 0


def test_the_wait_after_a_conflict_grows_is_partly_random_and_bounded() -> None:
    for conflicts, bound in [(0, RETRY_WAIT), (1, 2 * RETRY_WAIT), (3, 8 * RETRY_WAIT), (20, RETRY_WAIT_MAX)]:
        waits = {retry_wait(conflicts) for _ in range(50)}
        assert all(bound / 2 <= wait <= bound for wait in waits)
        assert len(waits) > 1  # two instances do not wait alike


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


# -- a pushed run that waits for nothing, as plain calls (Runner.run_at_once) ------------------


class Plain:
    """Sync actions, some of which change how they answer."""

    def __init__(self) -> None:
        self.runs = 0
        self.answer_later = False  # return a coroutine instead of the state
        self.fail: BaseException | None = None

    def keep(self, state: State, ctx: Context) -> Any:
        self.runs += 1
        if self.fail is not None:
            raise self.fail
        state.items.append(ctx.get_str("item"))
        ctx.set_flash("kept", ctx.get_str("item"))
        if self.answer_later:
            return self._later(state)
        assert defer(self._pushed)
        return state

    async def _later(self, state: State) -> State:
        state.items.append("later")
        return state

    async def _pushed(self) -> None:
        return None


class PlainInstance(Instance):
    def __init__(self, store: Any, **options: Any) -> None:
        super().__init__(store, Plain(), **options)

    async def keep(self, item: str, exchange: Exchange | None = None) -> Any:
        group = await self.groups.get(GROUP)
        return await self.runner.run(
            group, exchange or Exchange(), self.runner.new_state(group), action="keep", data={"item": item}
        )

    async def keep_at_once(self, item: str, exchange: Exchange | None = None, commit: bool = True) -> Any:
        group = await self.groups.get(GROUP)
        state = self.runner.new_state(group)
        return self.runner.run_at_once(group, exchange or Exchange(), state, "keep", {"item": item}, {}, commit)

    def counted(self, sample: str) -> float:
        """The value of ``sample`` (a metric's name and labels) in a scrape."""
        for line in self.metrics.exposition().decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
        return 0.0

    def processed(self) -> float:
        return self.counted("livetemplate_actions_processed_total")


async def test_a_sync_action_seen_once_runs_at_once_as_run_runs_it() -> None:
    store = MemorySessionStore()
    instance = PlainInstance(store)
    assert await instance.keep_at_once("a") is None  # not seen yet: run runs it
    assert instance.controller.runs == 0
    first = await instance.keep("a")
    exchange = Exchange()
    second = await instance.keep_at_once("b", exchange)
    assert second is not None and second.success
    assert second.state.items == ["a", "b"]
    assert second.committed == await store.get("app:" + GROUP) and second.committed.version == 2
    assert exchange.flash == {"kept": "b"}
    assert [push.__name__ for push in second.deferred] == ["_pushed"] == [p.__name__ for p in first.deferred]
    assert instance.processed() == 2
    assert not (await instance.groups.get(GROUP)).lock.locked()
    await store.close()


async def test_at_once_a_run_not_to_commit_keeps_the_stored_fields() -> None:
    store = MemorySessionStore()
    instance = PlainInstance(store)
    await instance.keep("a")
    outcome = await instance.keep_at_once("b", commit=False)
    assert outcome is not None and outcome.success and outcome.committed is None
    assert outcome.state.items == ["a"]
    assert (await store.get("app:" + GROUP)).version == 1  # type: ignore[union-attr]
    await store.close()


async def test_nothing_runs_at_once_while_the_group_is_locked() -> None:
    instance = PlainInstance(MemorySessionStore())
    await instance.keep("a")
    group = await instance.groups.get(GROUP)
    async with group.lock:
        assert await instance.keep_at_once("b") is None
    assert instance.controller.runs == 1 and instance.processed() == 1


async def test_a_store_whose_save_was_changed_is_never_passed_by() -> None:
    saved: list[int] = []

    class Counting(MemorySessionStore):
        async def save(self, key: str, data: bytes, *, version: int) -> int:
            saved.append(version)
            return await super().save(key, data, version=version)

    instance = PlainInstance(Counting())
    await instance.keep("a")
    assert not instance.groups.commits_at_once
    assert await instance.keep_at_once("b") is None
    assert saved == [0]


async def test_a_conflict_at_once_changes_nothing_and_run_takes_it_again() -> None:
    store = MemorySessionStore()
    one, two = PlainInstance(store), PlainInstance(store)
    await one.keep("first")
    await two.groups.get(GROUP)  # two holds version 1
    await one.keep("second")  # version 2, unseen by two
    await two.keep("seen")  # the action is now known to two: it ran at version 2 after a re-run
    await one.keep("third")  # version 4
    exchange = Exchange()
    assert await two.keep_at_once("mine", exchange) is None
    assert exchange.flash == {} and two.processed() == 1  # the attempt left no trace
    assert not (await two.groups.get(GROUP)).lock.locked()
    outcome = await two.keep("mine", exchange)
    assert outcome.success and outcome.state.items == ["first", "second", "seen", "third", "mine"]
    await store.close()


async def test_a_sync_action_that_returns_an_awaitable_is_handed_back_for_good() -> None:
    store = MemorySessionStore()
    instance = PlainInstance(store)
    await instance.keep("a")
    instance.controller.answer_later = True
    assert await instance.keep_at_once("b") is None
    assert (await store.get("app:" + GROUP)).version == 1  # type: ignore[union-attr]
    outcome = await instance.keep("b")  # run awaits what it returns
    assert outcome.success and outcome.state.items == ["a", "b", "later"]
    runs = instance.controller.runs
    instance.controller.answer_later = False
    assert await instance.keep_at_once("c") is None  # no longer taken at once: run runs it
    assert instance.controller.runs == runs
    await store.close()


@pytest.mark.parametrize(
    "error",
    [FieldError({"item": "no"}), ValueError("broken"), NotAvailable("gone")],
    ids=["field", "bug", "unavailable"],
)
async def test_failures_at_once_are_those_of_run(error: BaseException) -> None:
    at_once, awaited = PlainInstance(MemorySessionStore()), PlainInstance(MemorySessionStore())
    for instance in (at_once, awaited):
        await instance.keep("a")
        instance.controller.fail = error
    exchange = Exchange()
    failed = await at_once.keep_at_once("b", exchange)
    expected = await awaited.keep("b")
    assert failed is not None and not failed.success
    assert (failed.errors, failed.state.items) == (expected.errors, expected.state.items) != ({}, ["a"])
    assert exchange.flash == {} and failed.deferred == []
    assert at_once.processed() == 2


async def test_a_sync_action_holding_the_loop_at_once_goes_to_a_worker_thread() -> None:
    instance = PlainInstance(MemorySessionStore())
    await instance.keep("a")
    instance.runner.slow_action = 0.0  # every call now holds the loop too long
    outcome = await instance.keep_at_once("b")  # said, and moved to a thread from now on
    assert outcome is not None and outcome.success
    assert await instance.keep_at_once("c") is None
    assert instance.counted('livetemplate_errors_total{kind="slow_action"}') == 1
    outcome = await instance.keep("c")  # in a worker thread
    assert outcome.success and outcome.state.items == ["a", "b", "c"]
