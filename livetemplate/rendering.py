"""Rendering a state for a client: the one pipeline every transport uses.

State -> the template's tree (with the ``lvt`` helpers) -> the live region's part of it ->
range operations split off where the client needs them apart -> encoded frames. A template
error is logged once, answered with one message, and resets the client's view.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .errors import TemplateError
from .frames import encode_frame
from .helpers import Helpers, UploadEntries
from .ops.logs import get_logger
from .ops.metrics import Metrics
from .page import LiveRegion, live_region
from .template import Renderer, Template
from .wire import STATICS, error_meta

__all__ = ["Pipeline", "RenderFailed", "error_frame", "split_range_ops"]

logger = get_logger(__name__)


class RenderFailed(Exception):
    """The template failed; ``detail`` is what the client may be told."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class Pipeline:
    """Renders states of one app's template for its clients."""

    def __init__(self, template: Template, *, metrics: Metrics, dev_mode: bool = False) -> None:
        self.template = template
        self.metrics = metrics
        self.region: LiveRegion | None = live_region(template)
        self.dev_mode = dev_mode

    def helpers(
        self, csrf: str, errors: Mapping[str, str], flash: Mapping[str, str], uploads: UploadEntries | None = None
    ) -> Helpers:
        return Helpers(errors, flash, csrf, self.dev_mode, uploads)

    def update_frames(
        self, renderer: Renderer, state: Any, helpers: Helpers, meta: dict[str, Any] | None
    ) -> list[bytes]:
        """The frames that bring ``renderer``'s client to ``state``: usually one, two when
        range operations must go first. A template error resets the client's view (its next
        frame is a complete tree) and is answered with an error frame."""
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
        (metrics.full_tree_sends if complete else metrics.dynamics_only_sends).inc()
        ops, tree = split_range_ops(tree)
        frames = [encode_frame(ops, None)] if ops else []
        frames.append(encode_frame(tree, meta))
        for frame in frames:
            metrics.update_payload.observe(len(frame))
        return frames

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
