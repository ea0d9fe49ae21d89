"""The options of :func:`livetemplate.mount` (the Go library's ``With...`` options, in
snake_case), checked when the app is mounted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .broadcast import Broadcaster
from .context import Context
from .sessions import SessionStore

__all__ = ["Options"]


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options of :func:`~livetemplate.mount`."""

    backend: str | None = None
    session_store: SessionStore | None = None
    broadcaster: Broadcaster | None = None
    dev_mode: bool = False
    allowed_origins: Sequence[str] = ()
    trust_forwarded_headers: bool = True
    websocket_disabled: bool = False
    progressive_enhancement: bool = True
    loading_indicator: bool = True
    cookie_max_age: int = 365 * 24 * 3600
    max_message_size: int = 1 << 20
    client_script_url: str | None = None
    heartbeat_ms: int | None = None
    open_topics: bool = False
    topic_acl: Callable[[str, Context], bool] | None = None
    secret_key: str | bytes | None = None
    name: str | None = None
    group_idle_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.open_topics and self.topic_acl is not None:
            raise ValueError("open_topics and topic_acl exclude each other")
        if self.backend is not None and (self.session_store is not None or self.broadcaster is not None):
            raise ValueError("backend= names the session store and the broadcaster; do not pass them as well")
        if self.max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        if self.heartbeat_ms is not None and self.heartbeat_ms != 0 and self.heartbeat_ms < 1000:
            raise ValueError("heartbeat_ms must be 0 (off) or at least 1000")
        if self.cookie_max_age <= 0:
            raise ValueError("cookie_max_age must be positive")

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any]) -> Options:
        """The options from :func:`~livetemplate.mount`'s keywords; unknown ones raise."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown option(s) for mount(): {', '.join(unknown)}")
        return cls(**options)
