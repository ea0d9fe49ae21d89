"""Logging: the library's records go through picologging, one line per event, with no secret in it.

Library modules take their logger from :func:`get_logger` (``logger = get_logger(__name__)``), a
picologging logger: the level check and the record are built in C. Every record then reaches the
stdlib :mod:`logging` logger of the same name through a bridge, so handlers configured with the
stdlib (``dictConfig``, uvicorn's log config, pytest's ``caplog``, error trackers) still receive
the library's records, already scrubbed. Without any configuration the library behaves as a
stdlib-logging library does: warnings and errors reach stdlib's last-resort handler on stderr.

:func:`configure_logging` is for the process that runs the app (the CLI, an example, or
:func:`~livetemplate.mount` when ``LIVETEMPLATE_LOG_LEVEL`` / ``LIVETEMPLATE_LOG_FORMAT`` are
set): it sets the level at which records are made and writes them itself, ``key=value`` or JSON.

What a line may contain is decided here, not at each call site: arguments that are containers,
dataclasses or ``msgspec.Struct`` values (states, form data) are written as ``<TypeName>``;
cookie values, passwords, tokens and the password of a URL are replaced by ``[redacted]``;
messages and tracebacks are capped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import msgspec
import picologging

__all__ = [
    "FORMAT_ENV",
    "LEVEL_ENV",
    "JsonFormatter",
    "KeyValueFormatter",
    "configure_logging",
    "fingerprint",
    "get_logger",
    "redact",
    "safe_message",
]

LEVEL_ENV = "LIVETEMPLATE_LOG_LEVEL"
FORMAT_ENV = "LIVETEMPLATE_LOG_FORMAT"

Format = Literal["keyvalue", "json"]

#: The library's loggers all sit below this one.
ROOT = "livetemplate"
#: Longest message and traceback written, in characters.
MAX_MESSAGE = 1000
MAX_TRACEBACK = 8000

_LEVELS = {
    "debug": picologging.DEBUG,
    "info": picologging.INFO,
    "warning": picologging.WARNING,
    "error": picologging.ERROR,
    "critical": picologging.CRITICAL,
}
_FORMATS: tuple[Format, ...] = ("keyvalue", "json")
_LEVEL_NAMES = {value: name for name, value in _LEVELS.items()}

REDACTED = "[redacted]"

# A secret's name, an optional closing quote (a dict's repr), then ``=`` or ``:`` and the value
# (quoted, or up to a delimiter, with an authorization scheme kept with its credentials).
_KEYED_SECRET = re.compile(
    r"""(?P<key>livetemplate-id|_?csrf(?:_token)?|password|passwd|pwd|secret(?:_key)?|api_?key|"""
    r"""(?:access_|refresh_)?token|authorization)(?P<sep>['"]?\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|(?:(?:bearer|basic)\s+)?[^\s&;,'")\]}]+)""",
    re.IGNORECASE,
)
# A cookie header holds nothing but cookie values: everything to the end of the line goes.
_COOKIE_HEADER = re.compile(
    r"""(?P<key>\b(?:set-)?cookie)(?P<sep>['"]?\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|[^\r\n]+)""", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with cookie values, passwords, tokens and URL passwords replaced by ``[redacted]``."""
    # PERF: the substring tests skip the regular expressions for most lines.
    if "=" in text or ":" in text:
        text = _COOKIE_HEADER.sub(_redact_value, text)
        text = _KEYED_SECRET.sub(_redact_value, text)
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
    if "earer " in text or "asic " in text or "EARER " in text or "ASIC " in text:
        text = _AUTH_SCHEME.sub(rf"\g<scheme> {REDACTED}", text)
    return text


def _redact_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "'\"" and value[-1] == value[0] and len(value) > 1 else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


def fingerprint(value: str | bytes) -> str:
    """A short digest of an identifier (a session group id), to correlate log lines without
    writing the identifier itself."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.blake2b(data, digest_size=6).hexdigest()


class _Opaque:
    """Stands for a value whose contents must not be written: only its type is."""

    __slots__ = ("_text",)

    def __init__(self, value: object) -> None:
        self._text = f"<{type(value).__name__}>"

    def __str__(self) -> str:
        return self._text

    __repr__ = __str__


#: Types written as they are; anything else that holds other values is written as its type.
_PLAIN = frozenset({str, int, float, bool, type(None), bytes})
_CONTAINERS = (Mapping, list, tuple, set, frozenset, msgspec.Struct)


def _opaque(value: object) -> object:
    if type(value) in _PLAIN or isinstance(value, (BaseException, type)):
        return value
    if isinstance(value, _CONTAINERS) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return _Opaque(value)
    return value


def _cap(text: str, limit: int, *, keep_tail: bool = False) -> str:
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep_tail:
        return f"[{cut} characters cut]...{text[cut:]}"
    return f"{text[:limit]}...[{cut} characters cut]"


def safe_message(record: Any) -> str:
    """The record's message as it may be written: container and state arguments replaced by
    their type name, secrets redacted, the length capped. ``record`` is a picologging or a
    stdlib record."""
    msg = str(record.msg)
    args = record.args
    if args:
        safe: Any
        if type(args) is not tuple and isinstance(args, Mapping):
            # logging's rule: one mapping argument fills %(name)s fields, else it is the value.
            safe = {key: _opaque(value) for key, value in args.items()} if "%(" in msg else (_opaque(args),)
        else:
            safe = tuple(map(_opaque, args))
        try:
            msg = msg % safe
        except (TypeError, ValueError, KeyError):
            msg = f"{msg} (unformattable arguments: {', '.join(f'<{type(a).__name__}>' for a in args)})"
    return _cap(redact(msg), MAX_MESSAGE)


def _safe_traceback(record: Any) -> str | None:
    exc_info = record.exc_info
    if not exc_info or exc_info[0] is None:
        return None
    text = "".join(traceback.format_exception(*exc_info)).rstrip()
    return _cap(redact(text), MAX_TRACEBACK, keep_tail=True)


class _Clock:
    """RFC 3339 UTC timestamps with milliseconds; the part up to the seconds is computed once
    per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


_UNSAFE = frozenset(' ="\\\n\r\t')


def _quoted(value: str) -> str:
    return f'"{value.translate(_ESCAPES)}"'


def _bare(value: str) -> str:
    """A value written without quotes when it can be (a logger's name)."""
    if value and _UNSAFE.isdisjoint(value):
        return value
    return _quoted(value)


def _level_name(record: Any) -> str:
    return _LEVEL_NAMES.get(record.levelno) or str(record.levelname).lower()


class KeyValueFormatter(picologging.Formatter):
    """``ts=... level=... logger=... msg="..." [exc="..."]`` on one line (logfmt). Also usable
    as a stdlib :class:`logging.Formatter`."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: Any) -> str:
        line = (
            f"ts={self._clock(record.created)} level={_level_name(record)} "
            f"logger={_bare(record.name)} msg={_quoted(safe_message(record))}"
        )
        exc = _safe_traceback(record)
        return line if exc is None else f"{line} exc={_quoted(exc)}"


class JsonFormatter(picologging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and ``exc`` when there
    is a traceback. Also usable as a stdlib :class:`logging.Formatter`."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()
        self._encoder = msgspec.json.Encoder()

    def format(self, record: Any) -> str:
        event = {
            "ts": self._clock(record.created),
            "level": _level_name(record),
            "logger": record.name,
            "msg": safe_message(record),
        }
        exc = _safe_traceback(record)
        if exc is not None:
            event["exc"] = exc
        return self._encoder.encode(event).decode()


class _StdlibBridge(picologging.Handler):
    """Hands each record to the stdlib logger of the same name, scrubbed, when that logger is
    enabled for its level. Once :func:`configure_logging` writes the lines itself, records are
    handed over only where stdlib handlers are configured (no second line from stdlib's last
    resort)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes_own_lines = False
        self._targets: dict[str, logging.Logger] = {}

    def emit(self, record: picologging.LogRecord) -> None:
        # PERF: stdlib loggers live as long as the process; looking them up takes a lock.
        target = self._targets.get(record.name)
        if target is None:
            target = self._targets[record.name] = logging.getLogger(record.name)
        if not target.isEnabledFor(record.levelno):
            return
        if self.writes_own_lines and not target.hasHandlers():
            return
        target.handle(_stdlib_record(record))


def _stdlib_record(record: picologging.LogRecord) -> logging.LogRecord:
    converted = logging.LogRecord(
        record.name,
        record.levelno,
        record.pathname,
        record.lineno,
        safe_message(record),
        (),
        record.exc_info,
        record.funcName,
    )
    converted.created = record.created
    converted.msecs = (record.created - int(record.created)) * 1000
    # Stdlib formatters use a record's exc_text as it is: they print the scrubbed traceback,
    # while tools that read exc_info still get the exception.
    converted.exc_text = _safe_traceback(record)
    return converted


_bridge = _StdlibBridge()
_output: picologging.Handler | None = None


def _root() -> picologging.Logger:
    logger = picologging.getLogger(ROOT)
    if _bridge not in logger.handlers:
        logger.addHandler(_bridge)
        if logger.level == picologging.NOTSET:
            logger.setLevel(picologging.INFO)
    return logger


def get_logger(name: str) -> picologging.Logger:
    """The picologging logger for a library module (``name`` is ``__name__``, below
    ``livetemplate``)."""
    if name != ROOT and not name.startswith(ROOT + "."):
        raise ValueError(f"get_logger() is for the library's modules, below {ROOT!r}: got {name!r}")
    _root()
    return picologging.getLogger(name)


def _choice(value: str | None, parameter: str, variable: str, choices: tuple[str, ...]) -> str | None:
    source = parameter
    if value is None:
        value = os.environ.get(variable) or None
        source = variable
    if value is None:
        return None
    normalized = value.strip().lower()
    if normalized not in choices:
        raise ValueError(f"{source} must be one of {', '.join(choices)}: got {value!r}")
    return normalized


def configure_logging(
    level: str | None = None, fmt: str | None = None, *, stream: TextIO | None = None
) -> picologging.Handler:
    """Write the library's records to ``stream`` (default: stderr), one line per event.

    ``level`` (``debug``, ``info``, ``warning``, ``error``, ``critical``; else
    ``LIVETEMPLATE_LOG_LEVEL``; else ``info``) is the level from which records are made;
    ``fmt`` (``keyvalue`` or ``json``; else ``LIVETEMPLATE_LOG_FORMAT``; else ``keyvalue``)
    the line format. An invalid value raises :class:`ValueError` naming the variable or
    parameter it came from. Calling again replaces the previous configuration. Stdlib handlers
    keep receiving the records. Returns the handler that writes the lines.
    """
    global _output
    level_name = _choice(level, "level", LEVEL_ENV, tuple(_LEVELS)) or "info"
    format_name = _choice(fmt, "fmt", FORMAT_ENV, _FORMATS) or "keyvalue"
    logger = _root()
    handler: picologging.Handler = picologging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(KeyValueFormatter() if format_name == "keyvalue" else JsonFormatter())
    if _output is not None:
        logger.removeHandler(_output)
    logger.addHandler(handler)
    logger.setLevel(_LEVELS[level_name])
    _output = handler
    _bridge.writes_own_lines = True
    return handler
