"""Rendering a state for a client: the one pipeline every transport uses.

State -> the template's tree (with the ``lvt`` helpers) -> the live region's part of it ->
range operations split off where the client needs them apart -> encoded frames. A template
error is logged once, answered with one message, and resets the client's view.

While a *render batch* is open (:func:`open_batch`, by the fan-out, for a stretch of runs
that never yields to the event loop), a render is done once per distinct transition: a
client that holds what another one held and is brought to an equal input (the state, by
its msgpack encoding, a ``msgspec.Struct``; the ``lvt`` helpers when the template reads
them; the frame's meta) gets the same frames, bytes for bytes, and shares the other's
state from then on (one copy in memory; a later render on it copies it first). Clients
whose renders from different states give equal frames and equal states are merged so.
This relies on what the template's filters and globals already promise: equal inputs
render alike.

Outside a batch, a client sent a complete tree (a tab opening, or reset) is rendered as
usual, then merged into the state of a client that opened onto the same page a moment
before, when both were sent the same frames and hold equal states: tabs showing the same
page hold one copy of it. Nothing is taken from an earlier render, so a template whose
globals change with time (a clock) still renders each tab afresh.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import msgspec

from .errors import TemplateError
from .frames import encode_frame
from .helpers import Helpers, UploadEntries
from .ops.logs import get_logger
from .ops.metrics import Metrics
from .page import LiveRegion, live_region
from .template import Held, Renderer, Template
from .wire import STATICS, error_meta

__all__ = ["Pipeline", "RenderFailed", "close_batch", "error_frame", "open_batch", "split_range_ops"]

logger = get_logger(__name__)


class RenderFailed(Exception):
    """The template failed; ``detail`` is what the client may be told."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


#: An input of a render that a batch can look up: the state's encoding, the helpers' values
#: (when the template reads them) and the meta's encoding.
Input = tuple[bytes, tuple[Any, ...] | None, bytes]

_encode = msgspec.msgpack.Encoder().encode

#: What a template that never reads ``lvt`` is given.
_UNREAD = Helpers()

#: Complete trees a pipeline remembers having sent, for a client opening next to merge into.
OPENED = 64


class _Done:
    """A render of a batch: the state it left held, its frames, whether they hold a complete
    tree, and how many other clients took it since (counted in the metrics when the batch
    closes: PERF, a broadcast's recipients mostly take renders)."""

    __slots__ = ("after", "complete", "frames", "pipeline", "takes")

    def __init__(self, pipeline: Pipeline, after: Held, frames: list[bytes], complete: bool) -> None:
        self.pipeline = pipeline
        self.after = after
        self.frames = frames
        self.complete = complete
        self.takes = 0


class _Batch:
    """The renders of one render batch: by (held state, its version, input), what the
    render did; by (pipeline, input, frames), a state held after, to merge into."""

    __slots__ = ("after", "pinned", "results")

    def __init__(self) -> None:
        self.after: dict[tuple[Held, int, Input], _Done] = {}
        self.results: dict[tuple[Any, ...], Held] = {}
        self.pinned: list[Held] = []  # held by the batch too: a render on them copies first

    def pin(self, held: Held) -> None:
        held.sharers += 1
        self.pinned.append(held)

    def close(self) -> None:
        for held in self.pinned:
            held.sharers -= 1
        for done in self.after.values():
            if done.takes:
                done.pipeline._count(done.frames, done.complete, done.takes)


class _Open(threading.local):
    """The render batch open in this thread (None: none is)."""

    batch: _Batch | None = None


_open = _Open()


def open_batch() -> None:
    """Open a render batch (in this thread): until :func:`close_batch`, equal transitions
    render once. Only for code that does not yield to the event loop meanwhile."""
    if _open.batch is None:
        _open.batch = _Batch()


def close_batch() -> None:
    batch, _open.batch = _open.batch, None
    if batch is not None:
        batch.close()


class Pipeline:
    """Renders states of one app's template for its clients; with ``share``, the clients
    of a render batch share equal renders (see above)."""

    def __init__(self, template: Template, *, metrics: Metrics, dev_mode: bool = False, share: bool = True) -> None:
        self.template = template
        self.metrics = metrics
        self.region: LiveRegion | None = live_region(template)
        self.dev_mode = dev_mode
        self.share = share
        self.reads_helpers = "lvt" in template.names
        self._shareable: dict[type, bool] = {}  # state type -> whether its encoding stands for it
        #: By the hash of the frames of a complete tree, the state a client sent them holds
        #: (weakly: a closed tab's state is not kept for this), the oldest first.
        self._opened: dict[int, weakref.ref[Held]] = {}

    def helpers(
        self, csrf: str, errors: Mapping[str, str], flash: Mapping[str, str], uploads: UploadEntries | None = None
    ) -> Helpers:
        """The ``lvt`` helpers of a render: shared, empty ones when the template never reads
        them (PERF: every recipient of a broadcast renders)."""
        if not self.reads_helpers:
            return _UNREAD
        return Helpers(errors, flash, csrf, self.dev_mode, uploads)

    def update_frames(
        self, renderer: Renderer, state: Any, helpers: Helpers, meta: dict[str, Any] | None
    ) -> list[bytes]:
        """The frames that bring ``renderer``'s client to ``state``: usually one, two when
        range operations must go first. A template error resets the client's view (its next
        frame is a complete tree) and is answered with an error frame."""
        batch = _open.batch
        key = self._input(state, helpers, meta) if batch is not None and self.share else None
        held = renderer.held
        transition = (held, held.version, key) if key is not None else None  # what it held, and the input
        if batch is not None and transition is not None:
            done = batch.after.get(transition)
            if done is not None:
                renderer.take(done.after)
                done.takes += 1
                return list(done.frames)
        metrics = self.metrics
        started = time.perf_counter()
        try:
            tree = renderer.render(state, {"lvt": helpers})
        except TemplateError as exc:
            renderer.reset()
            return [error_frame(self._failure(exc))]
        metrics.template_duration.observe(time.perf_counter() - started)
        complete = STATICS in tree
        region = self.region
        if region is not None:
            tree = region.tree(tree) if complete else region.update(tree)
        ops, tree = split_range_ops(tree)
        frames = [encode_frame(ops, None)] if ops else []
        frames.append(encode_frame(tree, meta))
        self._count(frames, complete)
        if batch is not None and transition is not None:
            self._remember(batch, renderer, transition, frames, complete)
        elif complete and self.share:
            self._merge_opened(renderer, frames)
        return frames

    def _count(self, frames: list[bytes], complete: bool, times: int = 1) -> None:
        """``frames`` were sent ``times`` times."""
        metrics = self.metrics
        (metrics.full_tree_sends if complete else metrics.dynamics_only_sends).inc(times)
        for frame in frames:
            metrics.update_payload.observe_times(len(frame), times)

    def _input(self, state: Any, helpers: Helpers, meta: dict[str, Any] | None) -> Input | None:
        """What a render of ``state`` with ``helpers`` and ``meta`` is a function of, or
        None when it cannot be told so (then the render is not shared)."""
        shareable = self._shareable.get(type(state))
        if shareable is None:
            kind = type(state)
            shareable = self._shareable[kind] = issubclass(kind, msgspec.Struct) and not kind.__struct_config__.dict
        if not shareable:
            return None
        values = None
        if self.reads_helpers:
            values = helpers.values()
            if values is None:
                return None
        try:
            return _encode(state), values, b"" if meta is None else _encode(meta)
        except (TypeError, msgspec.EncodeError):  # a value msgpack cannot hold: not shared
            return None

    def _remember(
        self,
        batch: _Batch,
        renderer: Renderer,
        transition: tuple[Held, int, Input],
        frames: list[bytes],
        complete: bool,
    ) -> None:
        """Keep what the render did for the batch's other clients; merge into an equal state
        another client was brought to."""
        after = renderer.held
        result = (self, transition[2], *frames)
        twin = batch.results.get(result)
        if twin is None:
            batch.results[result] = after
            batch.pin(after)
        elif renderer.share(twin):
            after = twin
        batch.after[transition] = _Done(self, after, frames, complete)
        batch.pin(after)

    def _merge_opened(self, renderer: Renderer, frames: list[bytes]) -> None:
        """Share the state of a client that was sent the same complete tree lately, if it
        holds what ``renderer``'s client holds (the hash only finds the candidate:
        :meth:`Renderer.share` compares the states); else be that client for the next."""
        key = hash(tuple(frames))
        opened = self._opened
        found = opened.pop(key, None)
        if found is not None and (twin := found()) is not None and renderer.share(twin):
            opened[key] = found  # the newest again
        else:
            opened[key] = weakref.ref(renderer.held)
        if len(opened) > OPENED:
            del opened[next(iter(opened))]  # the oldest

    def tree_frame(self, state: Any, helpers: Helpers, meta: dict[str, Any]) -> bytes:
        """A frame with the complete tree (HTTP answers: they cannot know what a tab holds).
        Raises :class:`RenderFailed`."""
        try:
            tree = self.template.renderer().render(state, {"lvt": helpers})
        except TemplateError as exc:
            raise RenderFailed(self._failure(exc)) from exc
        if self.region is not None:
            tree = self.region.tree(tree)
        return encode_frame(tree, meta)

    def html(self, state: Any, helpers: Helpers) -> str:
        """The template's HTML for ``state``. Raises :class:`RenderFailed`."""
        try:
            return self.template.render(state, {"lvt": helpers})
        except TemplateError as exc:
            raise RenderFailed(self._failure(exc)) from exc

    def _failure(self, exc: TemplateError) -> str:
        logger.error("rendering failed: %s", exc)
        self.metrics.errors.labels("render").inc()
        return str(exc) if self.dev_mode else "The page could not be rendered."


def error_frame(detail: str, *, action: str | None = None) -> bytes:
    """A frame that changes nothing and reports a failure that is not about one field."""
    return encode_frame({}, error_meta(detail, action=action))


def split_range_ops(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split off the operations on top-level ranges when the same update also changes
    the element structure elsewhere, to send them in a frame of their own first.

    The client applies operations on a top-level keyed range straight to the DOM and
    leaves an empty placeholder for that range in the page it rebuilds; when the same
    update inserts or removes an element before the list, its morphdom pass cannot line
    up the siblings and replaces the live list with the placeholder (client 0.25.1).
    Apart, each update is applied correctly.
    """
    ops: dict[str, Any] | None = None  # PERF: the usual update has none, and builds no dict
    for k, v in tree.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            if ops is None:
                ops = {}
            ops[k] = v
    if ops is None or len(ops) == len(tree):
        return {}, tree
    rest = {k: v for k, v in tree.items() if k not in ops}
    if not any(_restructures(v) for v in rest.values()):
        return {}, tree
    return ops, rest


def _restructures(value: Any) -> bool:
    """Whether a slot change may add or remove elements (new statics, a removed node,
    markup in a value)."""
    if isinstance(value, str):
        return value == "" or "<" in value
    if isinstance(value, dict):
        return STATICS in value or any(_restructures(v) for v in value.values())
    return isinstance(value, list)
