"""The options of :func:`livetemplate.mount` (the Go library's ``With...`` options, in
snake_case), checked when the app is mounted, with the environment variables that set them
when the keyword is not given."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .broadcast import Broadcaster
from .context import Context
from .sessions import SessionStore
from .uploads import Upload
from .uploads.manager import check_uploads

__all__ = ["ENVIRONMENT", "Options"]


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip() for origin in text.split(",") if origin.strip())


#: Environment variable -> (option, parser). Keyword arguments win over the environment.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "LIVETEMPLATE_BACKEND": ("backend", str),
    "LIVETEMPLATE_REDIS_URL": ("backend", str),
    "LIVETEMPLATE_MAX_CONNECTIONS": ("max_connections", int),
    "LIVETEMPLATE_MAX_CONNECTIONS_PER_GROUP": ("max_connections_per_group", int),
    "LIVETEMPLATE_ALLOWED_ORIGINS": ("allowed_origins", _origins),
    "LIVETEMPLATE_DEV_MODE": ("dev_mode", _flag),
    "LIVETEMPLATE_WEBSOCKET_DISABLED": ("websocket_disabled", _flag),
    "LIVETEMPLATE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", float),
    "LIVETEMPLATE_METRICS_ENABLED": ("metrics_enabled", _flag),
    "LIVETEMPLATE_SECRET_KEY": ("secret_key", str),
    "LIVETEMPLATE_TRUST_FORWARDED_HEADERS": ("trust_forwarded_headers", _flag),
    "LIVETEMPLATE_UPLOAD_DIR": ("upload_dir", str),
}


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options of :func:`~livetemplate.mount`."""

    # backends
    backend: str | None = None
    session_store: SessionStore | None = None
    broadcaster: Broadcaster | None = None
    # behaviour
    dev_mode: bool = False
    websocket_disabled: bool = False
    progressive_enhancement: bool = True
    loading_indicator: bool = True
    client_script_url: str | None = None
    heartbeat_ms: int | None = None
    open_topics: bool = False
    topic_acl: Callable[[str, Context], bool] | None = None
    name: str | None = None
    group_idle_timeout: float = 300.0
    sync_actions: Literal["auto", "thread", "inline"] = "auto"
    shared_renders: bool = True  # a broadcast renders once per distinct transition (see rendering)
    slow_action_threshold: float = 0.25
    uploads: Mapping[str, Upload] = dataclasses.field(default_factory=dict)
    upload_dir: str | None = None  # where volume uploads are staged (default: the temporary directory)
    # security
    secret_key: str | bytes | None = dataclasses.field(default=None, repr=False)
    allowed_origins: Sequence[str] = ()
    trust_forwarded_headers: bool = False
    cookie_max_age: int = 365 * 24 * 3600
    frame_ancestors: Sequence[str] | None = ()
    # limits
    max_message_size: int = 64 * 1024
    max_connections: int | None = 10_000
    max_connections_per_group: int | None = 20
    message_rate_limit: tuple[float, int] | None = (10.0, 20)
    send_budget: int = 30 * 1024
    slow_client_timeout: float = 30.0
    # operations
    shutdown_timeout: float = 10.0
    metrics_enabled: bool = True
    metrics_path: str = "/metrics"
    health_path: str | None = "/health"

    def __post_init__(self) -> None:
        if self.open_topics and self.topic_acl is not None:
            raise ValueError("open_topics and topic_acl exclude each other")
        if self.backend is not None and (self.session_store is not None or self.broadcaster is not None):
            raise ValueError("backend= names the session store and the broadcaster; do not pass them as well")
        if self.max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        if self.heartbeat_ms is not None and self.heartbeat_ms != 0 and self.heartbeat_ms < 1000:
            raise ValueError("heartbeat_ms must be 0 (off) or at least 1000")
        for name in ("cookie_max_age", "send_budget", "slow_client_timeout", "shutdown_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_connections", "max_connections_per_group"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None: no limit)")
        if self.message_rate_limit is not None:
            rate, burst = self.message_rate_limit
            if rate <= 0 or burst < 1:
                raise ValueError("message_rate_limit is (messages per second > 0, burst >= 1)")
        object.__setattr__(self, "uploads", check_uploads(self.uploads))
        if self.sync_actions not in ("auto", "thread", "inline"):
            raise ValueError("sync_actions is 'auto', 'thread' or 'inline'")
        for name in ("metrics_path", "health_path"):
            path = getattr(self, name)
            if path is not None and not path.startswith("/"):
                raise ValueError(f"{name} must start with '/'")

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Options:
        """The options from :func:`~livetemplate.mount`'s keywords, then the environment
        (``LIVETEMPLATE_...``, see :data:`ENVIRONMENT`); unknown keywords and invalid
        environment values raise, naming what is wrong."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown option(s) for mount(): {', '.join(unknown)}")
        values = dict(options)
        environ = os.environ if environ is None else environ
        for variable, (name, parse) in ENVIRONMENT.items():
            text = environ.get(variable)
            if text is None or name in values:
                continue
            if name == "backend" and (values.get("session_store") is not None or values.get("broadcaster") is not None):
                continue  # a store or broadcaster passed in code wins over the environment
            try:
                values[name] = parse(text)
            except ValueError as exc:
                raise ValueError(f"invalid {variable}={text!r}: {exc}") from None
        return cls(**values)
