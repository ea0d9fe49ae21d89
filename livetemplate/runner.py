"""Running lifecycle hooks and actions on a session's state, and committing what they change.

An action runs on a copy of the state whose persisted fields are the group's, with the group
locked. On success the copy becomes the new state and a change to the persisted fields is
committed to the store (compare-and-set: when another instance committed first, the action
runs again on the fresh snapshot, a few times at most, each after a short random wait that
grows, so that two instances' retries do not keep meeting). On failure nothing changes. The
:class:`Outcome` says what was committed and what the action asked to publish or push; the
hub carries those out once the group is unlocked.

A pushed run that waits for nothing (its lock free, a sync action seen returning no
awaitable, a store that commits at once) runs as plain calls (:meth:`Runner.run_at_once`): a
broadcast makes one per recipient, and the coroutines, locks and awaits around the same steps
took a tenth of its time. Anything that would wait hands the run back to :meth:`Runner.run`
having changed nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import msgspec

from .context import Context, Effects, Exchange, Publish, SessionHandle, TopicGate
from .controller import Actions, Call, awaitable, call_inline
from .errors import FieldError, NotAvailable, TopicForbidden
from .groups import Group, Groups
from .ops.logs import fingerprint, get_logger
from .ops.metrics import Metrics
from .sessions import Snapshot, StaleVersion, StoreUnavailable
from .state import StateSpec
from .wire import GENERAL_ERROR, MAX_ACTION_NAME

__all__ = ["Outcome", "Runner", "defer"]

logger = get_logger(__name__)

_EMPTY: Mapping[str, Any] = {}  # no data, no query: the context copies what it is given

#: Seconds a run waits after its first conflicting commit before it reads the group again;
#: the wait doubles at each conflict, up to :data:`RETRY_WAIT_MAX`, and half of it is random.
RETRY_WAIT = 0.002
RETRY_WAIT_MAX = 0.05
#: A change this instance claimed (a topic message's, see :meth:`Runner.run`) gets this many
#: times the attempts: no other instance commits it, so giving it up loses it.
CLAIMED_ATTEMPTS_FACTOR = 4

#: A push requested while an action runs, carried out once it has committed.
Deferred = Callable[[], Coroutine[Any, Any, None]]


class _Pending(msgspec.Struct):
    """The pushes an action requested; closed when it returns, so that a task the action
    started (which inherits the context) pushes directly later on."""

    # PERF: a Struct is made in C (one per run)
    open: bool = True
    pushes: list[Deferred] = []


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar("livetemplate_pending", default=None)


def defer(push: Deferred) -> bool:
    """Called from inside a running hook or action: keep ``push`` for after the commit (it
    needs locks the action holds) and return True; anywhere else return False."""
    pending = _pending.get()
    if pending is None or not pending.open:
        return False
    pending.pushes.append(push)
    return True


class Outcome(msgspec.Struct):
    """What running hooks and an action on a session's state did."""

    # PERF: a Struct (not a dataclass) is made in C: one per run of every recipient of a broadcast
    success: bool
    errors: dict[str, str]
    state: Any
    committed: Snapshot | None = None  # the group's new snapshot, when this run changed it
    publishes: list[Publish] = []
    deferred: list[Deferred] = []
    forbidden: list[str] = []


class _Run(msgspec.Struct, frozen=True):
    """What one attempt of :meth:`Runner.run` runs (the commit's terms stay with ``run``)."""

    group: Group
    exchange: Exchange
    state: Any
    hooks: Sequence[str]
    action: str | None
    data: Mapping[str, Any]
    query: Mapping[str, str]

    @property
    def where(self) -> str:
        """What runs, for log lines."""
        return f"action {self.action[:MAX_ACTION_NAME]!r}" if self.action is not None else "+".join(self.hooks)

    def failed(self, errors: dict[str, str]) -> Outcome:
        """Nothing changes: the state stays as it was."""
        return Outcome(False, errors, self.state)


class Runner:
    """Runs hooks and actions of ``actions`` on states of ``spec``, committing to ``groups``."""

    def __init__(
        self,
        actions: Actions,
        spec: StateSpec[Any],
        groups: Groups,
        *,
        sessions: Callable[[str], SessionHandle],
        topic_gate: TopicGate,
        metrics: Metrics,
        dev_mode: bool = False,
        max_attempts: int = 5,
        sync_actions: str = "auto",
        slow_action: float = 0.25,
    ) -> None:
        self.actions = actions
        self.metrics = metrics
        self.sync_actions = sync_actions
        #: sync methods seen holding the event loop: with "auto" they run in a worker thread
        self._threaded: set[Callable[..., Any]] = set()
        #: sync actions seen returning no awaitable, called inline: see :meth:`run_at_once`
        self._plain: set[Callable[..., Any]] = set()
        self.slow_action = slow_action
        self.spec = spec
        self.groups = groups
        self.sessions = sessions
        self.topic_gate = topic_gate
        self.dev_mode = dev_mode
        self.max_attempts = max_attempts
        self._initial = spec.dump(spec.new())

    def new_state(self, group: Group) -> Any:
        """A fresh state with the group's persisted fields."""
        state = self.spec.new()
        return self.spec.load(state, group.snapshot.data) if group.snapshot is not None else state

    def take_snapshot(self, state: Any, group: Group) -> Any:
        """``state`` with the group's current persisted fields."""
        return self.spec.load(state, group.snapshot.data) if group.snapshot is not None else state

    async def run(
        self,
        group: Group,
        exchange: Exchange,
        state: Any,
        *,
        hooks: Sequence[str] = (),
        action: str | None = None,
        data: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        commit: bool = True,
        once: str | None = None,
    ) -> Outcome:
        """Run ``hooks`` (``mount``, ``on_connect``, ...), then ``action``, on a copy of
        ``state``. With ``commit=False`` changes to the persisted fields are dropped (a
        pushed action changes them once, in its first run). ``once`` names a change that
        other instances make too (a topic message): only the instance that claims it in the
        store commits its change of the persisted fields; the others drop theirs. A change
        that conflicts with another instance's commit runs again (``max_attempts`` in all,
        :data:`CLAIMED_ATTEMPTS_FACTOR` times as many for a claimed one), each time after a
        wait (:func:`retry_wait`)."""
        run = _Run(group, exchange, state, hooks, action, data or _EMPTY, query or _EMPTY)
        started = time.perf_counter()
        claimed: bool | None = None  # whether this instance commits the change named ``once``
        attempts, conflicts = self.max_attempts, 0
        try:
            async with group.lock:
                while conflicts < attempts:
                    # The version this attempt runs on, and commits against: the group's snapshot
                    # may move on meanwhile (another instance's commit heard of), unseen by it.
                    read = group.snapshot
                    outcome, effects = await self._attempt(run)
                    if effects is None:
                        return outcome
                    change = self._change(outcome.state, read)
                    if change is not None:
                        persisted, base = change
                        try:
                            if commit and once is not None and claimed is None:
                                claimed = await self.groups.claim(group, once)
                                if claimed:
                                    attempts *= CLAIMED_ATTEMPTS_FACTOR
                            if commit and claimed is not False:
                                outcome.committed = await self.groups.commit(group, persisted, read)
                            else:  # not this run's (or this instance's) to change: the fields stay
                                outcome.state = self.spec.load(outcome.state, base)
                        except StaleVersion:  # another instance was first: run again on its state
                            conflicts += 1
                            if conflicts < attempts:
                                await asyncio.sleep(retry_wait(conflicts - 1))
                            await self.groups.reload(group)
                            continue
                        except StoreUnavailable as exc:
                            logger.error("%s: the session store is unavailable: %s", run.where, exc)
                            self.metrics.session_store_errors.labels("save").inc()
                            return run.failed({GENERAL_ERROR: "Your change could not be saved; try again."})
                    effects.apply(exchange)
                    return outcome
            logger.warning(
                "%s: gave up after %d conflicting changes of group %s",
                run.where,
                conflicts,
                fingerprint(group.id),
            )
            return run.failed({GENERAL_ERROR: "The page changed meanwhile; please try again."})
        finally:
            if action is not None:
                self._count(started)

    async def _attempt(self, run: _Run) -> tuple[Outcome, Effects | None]:
        """One run of the hooks and the action; the effects are None when it failed."""
        working, effects, pending, token = self._open(run)
        try:
            for hook in run.hooks:
                method = self.actions.hook(hook)
                if method is not None:
                    working = await self._call(method, working, run, effects, hook)
            if run.action is not None:
                method = self.actions.find(run.action)
                if method is None:
                    self.metrics.errors.labels("unknown_action").inc()
                    return run.failed({GENERAL_ERROR: f"unknown action {run.action[:MAX_ACTION_NAME]!r}"}), None
                working = await self._call(method, working, run, effects)
        except (Exception, SystemExit, asyncio.CancelledError) as exc:
            return self._failed(run, exc), None
        finally:
            _close(pending, token)
        return Outcome(True, {}, working, publishes=effects.publishes, deferred=pending.pushes), effects

    def _open(self, run: _Run) -> tuple[Any, Effects, _Pending, contextvars.Token[_Pending | None]]:
        """What an attempt of ``run`` works on: a copy of the state with the group's persisted
        fields, its effects, and the pushes it defers (collected from now until :func:`_close`)."""
        working = self.take_snapshot(self.spec.clone(run.state), run.group)
        pending = _Pending()
        return working, Effects(dict(run.exchange.flash)), pending, _pending.set(pending)

    def _failed(self, run: _Run, exc: BaseException) -> Outcome:
        """What a run whose hook or action raised ``exc`` tells the client (nothing changes);
        called while ``exc`` is handled."""
        if isinstance(exc, FieldError):
            return run.failed(exc.errors)
        if isinstance(exc, TopicForbidden):
            failed = run.failed({GENERAL_ERROR: str(exc)})
            failed.forbidden.append(exc.topic)
            return failed
        if isinstance(exc, NotAvailable):
            logger.warning("%s: %s", run.where, exc)
            return run.failed({GENERAL_ERROR: str(exc)})
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise exc  # this task is being cancelled (a shutdown), not failing
        logger.exception("%s failed%s", run.where, _hint(exc))
        self.metrics.errors.labels("action").inc()
        detail = f"{type(exc).__name__}: {exc}" if self.dev_mode else "Something went wrong."
        return run.failed({GENERAL_ERROR: detail})

    def run_at_once(
        self,
        group: Group,
        exchange: Exchange,
        state: Any,
        action: str,
        data: Mapping[str, Any],
        query: Mapping[str, str],
        commit: bool,
    ) -> Outcome | None:
        """:meth:`run` of a pushed ``action`` as plain calls, when it waits for nothing: the
        group's lock is free, the action is a sync function called inline and seen before
        returning no awaitable, and the store commits at once. None, having changed nothing,
        when any of that does not hold: then :meth:`run` runs it."""
        method = self.actions.find(action)
        if method is None:
            return None
        function = getattr(method, "__func__", method)
        if function not in self._plain or not self.groups.commits_at_once or not group.lock.take():
            return None
        started = time.perf_counter()
        handed_back = False  # to run, which counts it
        try:
            run = _Run(group, exchange, state, (), action, data, query)
            read = group.snapshot
            working, effects, pending, token = self._open(run)
            try:
                result, held = call_inline(method, working, self._context(run, effects, None))
                if awaitable(result):  # it did not before: it runs again the async way, and from now on
                    self._plain.discard(function)
                    if inspect.iscoroutine(result):
                        result.close()  # never started: nothing of it ran
                    handed_back = True
                    return None
                if held > self.slow_action:
                    self._held_loop(function, run.where, held)
                working = self._result(result, working, run, None)
            except (Exception, SystemExit, asyncio.CancelledError) as exc:
                return self._failed(run, exc)
            finally:
                _close(pending, token)
            outcome = Outcome(True, {}, working, publishes=effects.publishes, deferred=pending.pushes)
            change = self._change(working, read)
            if change is not None:
                persisted, base = change
                if not commit:  # not this run's to change: the fields stay
                    outcome.state = self.spec.load(working, base)
                else:
                    try:
                        outcome.committed = self.groups.commit_at_once(group, persisted, read)
                    except StaleVersion:
                        handed_back = True  # another instance was first: run reads the group again
                        return None
            effects.apply(exchange)
            return outcome
        finally:
            group.lock.release()
            if not handed_back:
                self._count(started)

    def _change(self, state: Any, read: Snapshot | None) -> tuple[bytes, bytes] | None:
        """The persisted fields of ``state`` and of ``read`` (the snapshot it was run on),
        when they differ."""
        persisted = self.spec.dump(state)
        base = read.data if read is not None else self._initial
        if persisted is None or base is None or persisted == base:
            return None
        return persisted, base

    def _count(self, started: float) -> None:
        """An action's run ended, started at ``started`` (``time.perf_counter()``)."""
        self.metrics.actions_processed.inc()
        self.metrics.action_duration.observe(time.perf_counter() - started)

    def _context(self, run: _Run, effects: Effects, hook: str | None) -> Context:
        return Context(
            run.exchange,
            effects,
            run.group.id,
            (run.action or "") if hook is None else "",  # action
            run.data if hook is None else run.query,  # data
            run.query,
            self.sessions,
            self.topic_gate,
        )

    async def _call(
        self, method: Callable[..., Any], state: Any, run: _Run, effects: Effects, hook: str | None = None
    ) -> Any:
        """Call a hook (``hook``) or the run's action on ``state``: the state it leaves. A sync
        one runs inline (``sync_actions="inline"``, or ``"auto"`` until it is seen holding the
        event loop: then in a worker thread from there on) or always in a worker thread
        (``"thread"``)."""
        ctx = self._context(run, effects, hook)
        function = getattr(method, "__func__", method)
        mode = self.sync_actions
        if mode == "thread" or (mode == "auto" and function in self._threaded):
            call = Call(method, state, ctx, in_thread=True)
            result = await call
            held = call.held
        else:  # PERF: the usual sync action, called here without a generator or a Call
            result, held = call_inline(method, state, ctx)
            if awaitable(result):
                call = Call(method, state, ctx, held=held)
                result = await call.timed(result)
                held = call.held
            elif hook is None and len(self._plain) < 1024:
                self._plain.add(function)
        if held > self.slow_action:
            self._held_loop(function, hook or run.where, held)
        return self._result(result, state, run, hook)

    def _result(self, result: Any, state: Any, run: _Run, hook: str | None) -> Any:
        """The state a hook or action left, from what it returned (``state``, changed in place, when None)."""
        if result is None:
            return state
        if type(result) is self.spec.type:  # PERF: the usual result, without the check's closure
            return result
        if isinstance(result, FieldError):
            raise result
        return self.spec.check(result, lambda: hook or run.where)

    def _held_loop(self, function: Callable[..., Any], where: str, held: float) -> None:
        """A call held the event loop for ``held`` seconds: say so; with ``"auto"``, a sync
        function runs in a worker thread from now on."""
        self.metrics.errors.labels("slow_action").inc()
        if self.sync_actions == "auto" and not inspect.iscoroutinefunction(function):
            self._threaded.add(function)
            self._plain.discard(function)
            logger.warning(
                "%s held the event loop for %.0f ms: every session waited; it runs in a worker thread from now on",
                where,
                held * 1000,
            )
        else:
            logger.warning("%s held the event loop for %.0f ms: every session waited", where, held * 1000)


def retry_wait(conflicts: int) -> float:
    """Seconds to wait before running again after ``conflicts + 1`` conflicting commits in a
    row: half of the bound, and up to as much again at random. Two instances whose commits
    keep meeting (each retrying as the other commits) fall out of step, and the one that
    waited finds the group quiet: without it, a run on one instance could lose every attempt
    to another's burst of commits, and a topic message's change that this instance claimed
    would be lost."""
    bound = min(RETRY_WAIT_MAX, RETRY_WAIT * (1 << conflicts))
    return bound / 2 + random.uniform(0, bound / 2)


def _close(pending: _Pending, token: contextvars.Token[_Pending | None]) -> None:
    """An attempt is over: pushes requested from now on (by a task it started) are not deferred."""
    pending.open = False
    _pending.reset(token)


def _hint(exc: BaseException) -> str:
    """What a common mistake needs: sync actions run in a worker thread, without an event loop."""
    if isinstance(exc, RuntimeError) and "event loop" in str(exc):
        return " (sync actions run in a worker thread: make it `async def` to use the event loop)"
    return ""
