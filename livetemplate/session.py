"""One live view: a browser tab of a session group, with its own state, its own renderer
(what its client holds), flash messages and topic subscriptions.

A view is sans-I/O: it turns one decoded message (or a push, or a change of the group's
persisted fields) into the frames to send, and returns them; it never touches a socket.
Its transport writes the frames; the hub carries out what the outcome asks (refreshing the
group's other tabs, publishing). Work on a view is serialized by its lock, so its messages
are handled strictly in order and pushes slot in between.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import msgspec

from .broadcast import BroadcastUnavailable
from .context import Exchange
from .frames import encode_frame
from .groups import Group
from .outbox import Outbox
from .primitives import Lock
from .rendering import Pipeline, error_frame
from .runner import Outcome, Runner
from .uploads.protocol import Step, TabUploads, completion_action
from .wire import (
    HOOK_CONNECT,
    HOOK_DISCONNECT,
    HOOK_MOUNT,
    NAVIGATE,
    PING,
    PONG,
    UPLOAD_ACTIONS,
    Incoming,
    UploadChunk,
    UploadComplete,
    UploadMessage,
    UploadStart,
    meta,
    topic_forbidden,
)

__all__ = ["LiveView", "Phase", "Reply"]


class Phase(enum.Enum):
    """Where a view is in its life; only an open view runs actions and takes pushes."""

    CONNECTING = "connecting"
    OPEN = "open"
    DRAINING = "draining"  # the server is shutting down: no new work
    CLOSED = "closed"


#: PERF: a member read through its enum class is about 70 ns slower than a module name on
#: Python 3.11 (benchmarks/idioms.py); this one is read by every run of an action or push
_OPEN = Phase.OPEN
#: Messages :meth:`LiveView.handle_at_once` leaves to :meth:`LiveView.handle`.
_NOT_AT_ONCE = frozenset({PING, NAVIGATE, *UPLOAD_ACTIONS})
_NO_DATA: Mapping[str, Any] = {}

_NEXT = {
    Phase.CONNECTING: (Phase.OPEN, Phase.CLOSED),
    Phase.OPEN: (Phase.DRAINING, Phase.CLOSED),
    Phase.DRAINING: (Phase.CLOSED,),
    Phase.CLOSED: (),
}


#: Asked, with the view locked, whether to render the view now.
Predicate = Callable[["LiveView"], bool]


def _always(view: LiveView) -> bool:
    return True


#: Awaited with the view locked, after a run of the client's and its render, to take the
#: run's topic subscriptions (:meth:`Hub.sync_topics`); may raise ``BroadcastUnavailable``.
Subscribe = Callable[["LiveView"], Awaitable[None]]


#: An update that changes nothing and carries no meta: not worth sending.
_NO_CHANGE = encode_frame({}, None)


class Reply(msgspec.Struct, frozen=True):
    """The frames to send, and what running the action did (None when nothing ran);
    ``unsubscribed`` when the run's topics could not be subscribed (the frames still go out:
    the renderer holds them as sent)."""

    frames: list[bytes]
    outcome: Outcome | None = None
    unsubscribed: BroadcastUnavailable | None = None


class LiveView(Exchange):
    """A tab of ``group``: runs its hooks and actions through ``runner`` and renders its
    state through ``pipeline``. ``outbox`` is where the hub puts the frames of pushes."""

    is_http = False

    def __init__(
        self,
        runner: Runner,
        pipeline: Pipeline,
        group: Group,
        *,
        query: Mapping[str, str],
        csrf: str = "",
        secure: bool = False,
        capabilities: Sequence[str] = (),
        outbox: Outbox | None = None,
        uploads: TabUploads | None = None,
    ) -> None:
        super().__init__()
        self.uploads: TabUploads | None = uploads
        self.runner = runner
        self.pipeline = pipeline
        self.group = group
        self.query = dict(query)
        self.secure = secure
        self.capabilities = capabilities
        self.outbox = outbox
        self.phase = Phase.CONNECTING
        self.state: Any = None
        self.behind = False  # changed since the last render: the client was not keeping up
        self.renderer = pipeline.template.renderer()
        self.lock = Lock()
        self.csrf = csrf

    def __repr__(self) -> str:
        return f"<LiveView {self.group.id[:8]}... {self.phase.value}>"

    @property
    def is_open(self) -> bool:
        return self.phase is Phase.OPEN

    def move(self, phase: Phase) -> None:
        """Go to ``phase``; a transition the life cycle does not allow is a bug."""
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"a live view cannot go from {self.phase.value!r} to {phase.value!r}")
        self.phase = phase

    # -- life cycle --------------------------------------------------------------------------

    async def open(self, subscribe: Subscribe | None = None) -> Reply:
        """Mount the view's state (``mount``, then ``on_connect``): the complete tree, once
        ``subscribe`` took mount's topics."""
        async with self.lock:
            state = self.runner.new_state(self.group)
            outcome = await self.runner.run(self.group, self, state, hooks=(HOOK_MOUNT, HOOK_CONNECT), query=self.query)
            self.state = outcome.state if outcome.success else state
            self.move(Phase.OPEN)
            frames = self._forbidden(outcome)
            frames += self._render(meta(True, capabilities=self.capabilities), outcome.errors)
            return await self._subscribed(Reply(frames, outcome), subscribe)

    def drain(self) -> None:
        """Stop taking new work (the server is shutting down)."""
        if self.phase is Phase.OPEN:
            self.move(Phase.DRAINING)

    async def close(self) -> Outcome | None:
        """Run ``on_disconnect`` (if the view was mounted) and close."""
        async with self.lock:
            if self.phase is Phase.CLOSED:
                return None
            opened = self.phase is not Phase.CONNECTING
            self.move(Phase.CLOSED)
            if self.uploads is not None:
                self.uploads.close()  # staged files nobody took are deleted
            if not opened or self.runner.actions.hook(HOOK_DISCONNECT) is None:
                return None
            return await self.runner.run(self.group, self, self.state, hooks=(HOOK_DISCONNECT,), query=self.query)

    # -- messages ----------------------------------------------------------------------------

    async def handle(self, incoming: Incoming, subscribe: Subscribe | None = None) -> Reply:
        """Answer one message of the client, once ``subscribe`` took the topics its run
        (un)subscribed."""
        action = incoming.action
        if action == PING:
            return Reply([PONG])
        if action in UPLOAD_ACTIONS:
            return await self._upload(incoming, subscribe)
        async with self.lock:
            if self.phase is not _OPEN:
                return Reply([self._error("the server is shutting down; reload the page in a moment", action)])
            self.submitter = incoming.submitter
            data = incoming.data or {}
            if action == NAVIGATE:
                query = {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
                outcome = await self.runner.run(self.group, self, self.state, hooks=(HOOK_MOUNT,), query=query)
                if outcome.success:
                    self.query = query
                reply_meta = meta(outcome.success, outcome.errors)
            else:
                outcome = await self.runner.run(
                    self.group, self, self.state, action=action, data=data, query=self.query
                )
                reply_meta = meta(outcome.success, outcome.errors, action=action)
            return await self._subscribed(self._answer(outcome, reply_meta), subscribe)

    def handle_at_once(
        self, incoming: Incoming, subscribe: Subscribe, subscribed: Predicate
    ) -> Reply | Coroutine[Any, Any, Reply] | None:
        """:meth:`handle` of a client's action as plain calls, when its run waits for nothing
        (see :meth:`Runner.run_at_once`): None, having changed nothing, when it would. When
        ``subscribed(view)`` says no, the coroutine that gives the reply once ``subscribe``
        took the run's topics, the view locked until then."""
        action = incoming.action
        if action in _NOT_AT_ONCE or not self.lock.take():
            return None
        locked = True
        try:
            if self.phase is not _OPEN:
                return None
            self.submitter = incoming.submitter
            outcome = self.runner.run_at_once(
                self.group, self, self.state, action, incoming.data or _NO_DATA, self.query, True
            )
            if outcome is None:
                return None
            reply = self._answer(outcome, meta(outcome.success, outcome.errors, action=action))
            if subscribed(self):
                return reply
            locked = False  # the coroutine releases it
            return self._subscribed_then_release(reply, subscribe)
        finally:
            if locked:
                self.lock.release()

    async def _subscribed_then_release(self, reply: Reply, subscribe: Subscribe) -> Reply:
        try:
            return await self._subscribed(reply, subscribe)
        finally:
            self.lock.release()

    def _answer(self, outcome: Outcome, reply_meta: dict[str, Any]) -> Reply:
        """The reply to a run of the client's: its state kept when it succeeded, and rendered."""
        if outcome.success:
            self.state = outcome.state
        return Reply(self._forbidden(outcome) + self._render(reply_meta, outcome.errors), outcome)

    async def _subscribed(self, reply: Reply, subscribe: Subscribe | None) -> Reply:
        """``reply`` once ``subscribe`` took the topics of its run. The view is still locked:
        a message on those topics published once the client has the reply reaches it, and
        no push or refresh rendered after the reply can be sent before it."""
        if subscribe is None:
            return reply
        try:
            await subscribe(self)
        except BroadcastUnavailable as exc:
            return Reply(reply.frames, reply.outcome, exc)
        return reply

    async def push(
        self,
        action: str,
        data: Mapping[str, Any],
        *,
        commit: bool = True,
        once: str | None = None,
        render: Predicate = _always,
    ) -> Reply:
        """Run a pushed action (a server push, a topic message) on this view's state; when
        ``render(view)`` says no (the client is not keeping up) the frames wait for :meth:`catch_up`.
        ``commit`` and ``once`` as in :meth:`Runner.run`."""
        async with self.lock:
            if self.phase is not _OPEN:
                return Reply([])
            outcome = await self.runner.run(
                self.group, self, self.state, action=action, data=data, query=self.query, commit=commit, once=once
            )
            return self._pushed(outcome, render)

    def push_at_once(self, action: str, data: Mapping[str, Any], commit: bool, render: Predicate) -> Reply | None:
        """:meth:`push` as plain calls, when it waits for nothing (see
        :meth:`Runner.run_at_once`); None, having changed nothing, when it would."""
        if not self.lock.take():
            return None
        try:
            if self.phase is not _OPEN:
                return Reply([])
            outcome = self.runner.run_at_once(self.group, self, self.state, action, data, self.query, commit)
            return self._pushed(outcome, render) if outcome is not None else None
        finally:
            self.lock.release()

    def _pushed(self, outcome: Outcome, render: Predicate) -> Reply:
        """The state a pushed run left, and the frames that show it (when ``render(self)``)."""
        if outcome.success:
            self.state = outcome.state
        if not render(self):
            self.behind = self.behind or outcome.success
            return Reply([], outcome)
        return Reply(self._render(meta(outcome.success, outcome.errors), outcome.errors), outcome)

    async def refresh(self, *, render: Predicate = _always) -> Reply:
        """Take the group's persisted fields as they are now: what changed."""
        async with self.lock:
            if self.phase is not Phase.OPEN:
                return Reply([])
            self.state = self.runner.take_snapshot(self.state, self.group)
            if not render(self):
                self.behind = True
                return Reply([])
            return Reply(self._render(meta(True), {}))

    async def catch_up(self) -> Reply:
        """One update with every change made while the client was not keeping up."""
        async with self.lock:
            if self.phase is not Phase.OPEN or not self.behind:
                return Reply([])
            return Reply(self._render(meta(True), {}))

    # -- uploads -----------------------------------------------------------------------------

    def expects_chunk(self, incoming: Incoming) -> bool:
        """Whether ``incoming`` is a chunk of an upload of this tab: such messages may be as
        large as a chunk and are not rate-limited (their size is bounded by the upload's)."""
        return (
            isinstance(incoming, UploadChunk) and self.uploads is not None and self.uploads.receiving(incoming.entry_id)
        )

    async def _upload(self, message: Incoming, subscribe: Subscribe | None) -> Reply:
        uploads = self.uploads
        if uploads is None:
            return Reply([self._error("this page declares no uploads", message.action)])
        if not isinstance(message, UploadMessage):
            return Reply([self._error("malformed upload message", message.action)])
        async with self.lock:
            if self.phase is not Phase.OPEN:
                return Reply([self._error("the server is shutting down; reload the page in a moment", message.action)])
            if isinstance(message, UploadStart):
                step = await uploads.start(message)
            elif isinstance(message, UploadChunk):
                step = uploads.chunk(message)
            elif isinstance(message, UploadComplete):
                step = uploads.complete(message)
            else:
                step = uploads.cancel(message)
            return await self._subscribed(await self._after_upload(step), subscribe)

    async def arrived(self, step: Step) -> Reply:
        """Files of this tab's uploads that came by a multipart POST (see :meth:`TabUploads.adopt`)."""
        async with self.lock:
            if self.phase is not Phase.OPEN:
                return Reply([])
            return await self._after_upload(step)

    async def _after_upload(self, step: Step) -> Reply:
        """Run the completion action of an upload whose files completed (when the controller
        has one), and render: without ``meta``, so no form's lifecycle takes it for its answer."""
        frames = list(step.frames)
        outcome = None
        action = completion_action(step.completed) if step.completed is not None else None
        if action is not None and self.runner.actions.find(action) is not None:
            outcome = await self.runner.run(
                self.group, self, self.state, action=action, data=step.data, query=self.query
            )
            if outcome.success:
                self.state = outcome.state
            frames += self._forbidden(outcome)
            frames += self._render(meta(outcome.success, outcome.errors, action=action), outcome.errors)
        elif step.render or action is not None:
            frames += [frame for frame in self._render(None, {}) if frame != _NO_CHANGE]
        return Reply(frames, outcome)

    # -- frames ------------------------------------------------------------------------------

    def _render(self, frame_meta: dict[str, Any] | None, errors: Mapping[str, str]) -> list[bytes]:
        self.behind = False
        helpers = self.pipeline.helpers(self.csrf, errors, self.flash, self.uploads)
        return self.pipeline.update_frames(self.renderer, self.state, helpers, frame_meta)

    def _error(self, detail: str, action: str) -> bytes:
        return error_frame(detail, action=action)

    @staticmethod
    def _forbidden(outcome: Outcome) -> list[bytes]:
        return [topic_forbidden(topic) for topic in outcome.forbidden]
