"""The context an action or lifecycle hook receives (``ctx``), and what it needs of the
transport the message came by (an :class:`Exchange`).

What an action asks for beyond its state (flash messages, cookies, a redirect, topic
subscriptions, publishes) is collected in its run's :class:`Effects` and takes effect only
when the run commits: a failed action changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from .errors import FieldError, NotAvailable
from .wire import GENERAL_ERROR, RESERVED_TOPICS, SESSION_TOPIC

if TYPE_CHECKING:
    from .uploads import UploadedFile, UploadStatus

__all__ = ["Context", "Effects", "Exchange", "Publish", "SessionHandle", "TopicGate", "check_topic"]

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"", "0", "false", "no", "off", "n"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z")
_FLASH_KEY = re.compile(r"[A-Za-z0-9-][A-Za-z0-9_.-]*\Z")
_VALIDATION_PATH = re.compile(r" - at `\$\.([^`\[]+)[^`]*`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


class Exchange:
    """What a context needs of its transport: an HTTP request, or a connection (a tab)."""

    is_http = False
    secure = False
    #: An HTTP exchange's only (``Context`` reads and sets cookies over HTTP alone): the
    #: request's cookies, and the ``Set-Cookie`` values of its answer.
    cookies: dict[str, str]
    set_cookies: list[str]

    def __init__(self) -> None:
        self.submitter: str | None = None
        self.flash: dict[str, str] = {}
        self.redirect: tuple[str, int] | None = None
        self.topics: set[str] = set()
        self.uploads: UploadSource | None = None  # the tab's or the request's upload entries


class UploadSource(Protocol):
    """Where ``ctx.uploads(name)`` finds completed files, and forgets those an action took."""

    def completed(self, upload: str) -> list[UploadedFile]: ...

    def consume(self, files: Iterable[UploadedFile]) -> None: ...

    def statuses(self, upload: str) -> list[UploadStatus]: ...

    def error(self, upload: str) -> str: ...


class SessionHandle(Protocol):
    """A handle on a session group, for pushing actions to its connections."""

    async def trigger_action(self, action: str, data: Mapping[str, Any] | None = None) -> None: ...


class Publish(msgspec.Struct, frozen=True):
    """An action to run for the subscribers of a topic."""

    topic: str
    action: str
    data: dict[str, Any]


class Effects(msgspec.Struct):
    """What the contexts of one run asked for; applied to the exchange when it commits."""

    flash: dict[str, str]
    set_cookies: list[str] = []
    redirect: tuple[str, int] | None = None
    subscribe: list[str] = []
    unsubscribe: list[str] = []
    publishes: list[Publish] = []
    consumed: list[UploadedFile] = []

    def apply(self, exchange: Exchange) -> None:
        exchange.flash = self.flash
        if self.consumed and exchange.uploads is not None:
            exchange.uploads.consume(self.consumed)
        if self.set_cookies:
            exchange.set_cookies.extend(self.set_cookies)
        if self.redirect is not None:
            exchange.redirect = self.redirect
        for topic in self.unsubscribe:
            exchange.topics.discard(topic)
        if self.subscribe:
            exchange.topics.update(self.subscribe)


#: What ``ctx.subscribe(topic)`` asks over WebSocket: raises TopicForbidden when the context
#: may not subscribe to ``topic``; else it may let the tab (the exchange) join the topic at
#: once, and return what to await for the subscription to hold (None: nothing to wait for).
TopicGate = Callable[[str, "Context", Exchange], "Awaitable[None] | None"]


class _Held:
    """What ``ctx.subscribe`` returns when there is nothing to wait for."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_HELD = _Held()


class Context:
    """What an action sees of the request: its data, who sent it, and the means to answer
    beyond the state (flash messages, cookies and redirects over HTTP, topics).

    ``data`` holds the message's data for an action, the query parameters for ``mount``.
    """

    def __init__(  # PERF: made once a run, with positional arguments (keywords took 3k more instructions)
        self,
        exchange: Exchange,
        effects: Effects,
        group_id: str,
        action: str,
        data: Mapping[str, Any],
        query: Mapping[str, str],
        sessions: Callable[[str], SessionHandle],
        topic_gate: TopicGate,
    ) -> None:
        self.group_id = group_id
        self.action = action
        self.data = dict(data)
        self.query = dict(query)
        self._exchange = exchange
        self._effects = effects
        self._sessions = sessions  # PERF: the handle is made when asked for (few actions do)
        self._topic_gate = topic_gate

    # -- identity --------------------------------------------------------------

    @property
    def is_http(self) -> bool:
        """True for an HTTP request (page load, form post, fetch), False over WebSocket."""
        return self._exchange.is_http

    @property
    def session(self) -> SessionHandle:
        """A handle on this session group, usable after the action returns (for
        example from a background task) to push actions to its connections."""
        return self._sessions(self.group_id)

    @property
    def self_topic(self) -> str:
        """The topic every connection of this session group may subscribe to."""
        return f"{SESSION_TOPIC}{self.group_id}"

    @property
    def submitter(self) -> str | None:
        """Name of the submit button that sent a form, if any."""
        return self._exchange.submitter

    # -- data ------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def get_str(self, name: str, default: str = "") -> str:
        """The value as text (a number or boolean the client converted, spelled back as
        JSON spells it); an object or a list is a field error."""
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return msgspec.json.encode(value).decode()
        raise FieldError(name, "must be text")

    def get_int(self, name: str, default: int = 0) -> int:
        """The value as an int; a value that is not one is a field error."""
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise FieldError(name, "must be a whole number")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise FieldError(name, "must be a whole number") from None

    def get_float(self, name: str, default: float = 0.0) -> float:
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise FieldError(name, "must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise FieldError(name, "must be a number") from None

    def get_bool(self, name: str, default: bool = False) -> bool:
        """True for ``true``/``1``/``on``/``yes`` (a checked checkbox), False for
        ``false``/``0``/``off``/``no``/empty."""
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FieldError(name, "must be true or false")

    def bind(self, type_: type[T]) -> T:
        """Convert the data into ``type_`` (a ``msgspec.Struct``, dataclass or
        TypedDict), converting strings as forms send them; validation failures become
        field errors."""
        try:
            return msgspec.convert(self.data, type_, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc)
            path = _VALIDATION_PATH.search(message)
            missing = _MISSING_FIELD.search(message)
            if missing is not None:
                field = f"{path.group(1)}.{missing.group(1)}" if path else missing.group(1)
                raise FieldError(field, "is required") from None
            raise FieldError(path.group(1) if path else GENERAL_ERROR, _VALIDATION_PATH.sub("", message)) from None

    # -- uploads ---------------------------------------------------------------

    def uploads(self, name: str) -> list[UploadedFile]:
        """The completed files of upload ``name``. Once this action has committed they are
        taken: deleted unless moved away (:meth:`UploadedFile.move_to`) and no longer listed;
        if it fails they stay for the next try."""
        source = self._exchange.uploads
        files = source.completed(name) if source is not None else []
        self._effects.consumed.extend(files)
        return files

    # -- flash -----------------------------------------------------------------

    def set_flash(self, key: str, message: str) -> None:
        """Show ``message`` as ``lvt.flash(key)`` until cleared (over HTTP: on the next
        page, after the redirect of a form post)."""
        if not _FLASH_KEY.match(key):
            raise ValueError(f"invalid flash key {key!r}: letters, digits, '-', '_' and '.', not starting with '_'")
        self._effects.flash[key] = message

    def clear_flash(self, key: str | None = None) -> None:
        """Remove one flash message, or all of them."""
        if key is None:
            self._effects.flash.clear()
        else:
            self._effects.flash.pop(key, None)

    # -- HTTP only ---------------------------------------------------------------

    def redirect(self, url: str, status: int = 303) -> None:
        """Answer a form post or page request with a redirect to a path on this site."""
        self._http("redirect")
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"not a redirect status: {status}")
        if not url.startswith("/") or url.startswith(("//", "/\\")):
            raise ValueError(f"redirects must go to a path on this site, not {url!r}")
        self._effects.redirect = (url, status)

    def get_cookie(self, name: str, default: str | None = None) -> str | None:
        return self._http("get_cookie").cookies.get(name, default)

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
        path: str = "/",
        http_only: bool = True,
        same_site: str = "Lax",
        secure: bool | None = None,
    ) -> None:
        exchange = self._http("set_cookie")
        cookie: SimpleCookie = SimpleCookie()
        cookie[name] = value
        morsel = cookie[name]
        morsel["path"] = path
        morsel["samesite"] = same_site
        if max_age is not None:
            morsel["max-age"] = max_age
        if http_only:
            morsel["httponly"] = True
        if secure if secure is not None else exchange.secure:
            morsel["secure"] = True
        self._effects.set_cookies.append(morsel.OutputString())

    def delete_cookie(self, name: str, path: str = "/") -> None:
        self._http("delete_cookie")
        self.set_cookie(name, "", max_age=0, path=path)

    def _http(self, feature: str) -> Exchange:
        if not self._exchange.is_http:
            raise NotAvailable(f"ctx.{feature}() is only available for HTTP requests, not over WebSocket")
        return self._exchange

    # -- topics ------------------------------------------------------------------

    def subscribe(self, topic: str) -> Awaitable[None]:
        """Receive the actions published to ``topic`` (WebSocket connections; a no-op
        over HTTP, where nothing can be pushed). The tab joins the topic at once: a message
        published from now on runs on it once this run is over, unless the run fails (then
        nothing is subscribed). With a shared broadcaster (Redis) the subscription holds once
        confirmed; an async action may ``await`` what this returns to wait for that (it never
        raises: a subscription that fails closes the tab once the run is over)."""
        check_topic(topic)
        if self._exchange.is_http:
            return _HELD
        held = self._topic_gate(topic, self, self._exchange)
        self._effects.subscribe.append(topic)
        return _HELD if held is None else held

    def unsubscribe(self, topic: str) -> None:
        if not self._exchange.is_http:
            self._effects.unsubscribe.append(topic)

    def publish(self, topic: str, action: str, data: Mapping[str, Any] | None = None) -> None:
        """Run ``action`` for every session subscribed to ``topic``, once this action
        has committed (nothing is published if it fails)."""
        check_topic(topic)
        self._effects.publishes.append(Publish(topic, action, dict(data or {})))


def check_topic(topic: str) -> None:
    """Topics are ``/``-separated segments of letters, digits, ``_`` and ``-``; the
    ``lvt:`` namespace is reserved for session topics."""
    if isinstance(topic, str) and topic.startswith(SESSION_TOPIC) and len(topic) > len(SESSION_TOPIC):
        return
    if not isinstance(topic, str) or topic.startswith(RESERVED_TOPICS) or not _TOPIC.match(topic):
        raise ValueError(f"invalid topic {topic!r}: use '/'-separated segments of letters, digits, '_' and '-'")
