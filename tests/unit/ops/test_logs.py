"""Logging: records made by picologging, one line per event (key=value or JSON), level and format
from the environment, stdlib handlers still served, and nothing secret or stateful written."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import msgspec
import picologging
import pytest

from livetemplate import Persist
from livetemplate.ops import logs
from livetemplate.ops.logs import (
    FORMAT_ENV,
    LEVEL_ENV,
    JsonFormatter,
    KeyValueFormatter,
    configure_logging,
    fingerprint,
    get_logger,
    redact,
)

TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


class State(msgspec.Struct):
    secret_note: Annotated[str, Persist] = "the user's diary"


@dataclass
class Draft:
    body: str = "unsent words"


def keyvalue(line: str) -> dict[str, str]:
    """A logfmt line as a dict (quoted values unquoted)."""
    return dict(part.split("=", 1) for part in shlex.split(line))


@pytest.fixture
def output(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The library's lines, key=value at info level, written to a buffer."""
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    stream = io.StringIO()
    configure_logging(stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_the_library_logs_through_picologging() -> None:
    logger = get_logger("livetemplate.hub")
    assert isinstance(logger, picologging.Logger)
    assert logger.name == "livetemplate.hub"
    with pytest.raises(ValueError, match="below 'livetemplate'"):
        get_logger("myapp.views")


def test_one_key_value_line_per_event(output: io.StringIO) -> None:
    logger = get_logger("livetemplate.hub")
    logger.debug("not at info level")
    logger.warning('publishing on %r failed:\n "quoted" and\ttab', "news")
    [line] = lines(output)
    fields = keyvalue(line)
    assert set(fields) == {"ts", "level", "logger", "msg"}
    assert fields["level"] == "warning" and fields["logger"] == "livetemplate.hub"
    assert fields["msg"] == "publishing on 'news' failed:\\n \"quoted\" and\\ttab"
    assert re.fullmatch(TIMESTAMP, fields["ts"])


def test_a_traceback_stays_on_the_line(output: io.StringIO) -> None:
    logger = get_logger("livetemplate.runner")
    try:
        raise KeyError("boom")
    except KeyError:
        logger.exception("action %s failed", "add")
    [line] = lines(output)
    fields = keyvalue(line)
    assert fields["level"] == "error" and fields["msg"] == "action add failed"
    assert fields["exc"].startswith("Traceback (most recent call last):\\n")
    assert fields["exc"].endswith("KeyError: 'boom'")


def test_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FORMAT_ENV, "JSON")
    monkeypatch.setenv(LEVEL_ENV, "debug")
    stream = io.StringIO()
    configure_logging(stream=stream)
    logger = get_logger("livetemplate.groups")
    logger.debug("loaded %d groups", 3)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError as exc:
        logger.error("sweep failed", exc_info=exc)
    first, second = (json.loads(line) for line in lines(stream))
    assert first["level"] == "debug" and first["msg"] == "loaded 3 groups" and first["logger"] == "livetemplate.groups"
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert second["exc"].endswith("ZeroDivisionError: division by zero")


def test_arguments_and_parameters_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FORMAT_ENV, "json")
    monkeypatch.setenv(LEVEL_ENV, "debug")
    stream = io.StringIO()
    configure_logging("error", "keyvalue", stream=stream)
    logger = get_logger("livetemplate.app")
    logger.warning("dropped")
    logger.error("kept")
    [line] = lines(stream)
    assert keyvalue(line)["msg"] == "kept"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (LEVEL_ENV, "loud", "LIVETEMPLATE_LOG_LEVEL must be one of debug, info, warning, error, critical: got 'loud'"),
        (FORMAT_ENV, "xml", "LIVETEMPLATE_LOG_FORMAT must be one of keyvalue, json: got 'xml'"),
    ],
)
def test_invalid_environment_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as raised:
        configure_logging()
    assert str(raised.value) == message


def test_invalid_arguments_name_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"^level must be one of"):
        configure_logging(level="verbose")
    with pytest.raises(ValueError, match=r"^fmt must be one of"):
        configure_logging(fmt="text")


def test_configuring_again_replaces_the_output(output: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging(stream=second)
    get_logger("livetemplate.app").warning("once")
    assert lines(output) == []
    assert len(lines(second)) == 1


def test_state_and_containers_are_written_as_their_type(output: io.StringIO) -> None:
    logger = get_logger("livetemplate.state")
    logger.warning(
        "state %s, draft %r, form %s, items %s, ids %s, count %d, name %s",
        State(),
        Draft(),
        {"comment": "private"},
        ["a", "b"],
        frozenset({1}),
        3,
        "counter",
    )
    logger.warning("form %s", {"comment": "private"})
    logger.warning("mapping %(who)s %(what)s", {"who": "alice", "what": Draft()})
    text = output.getvalue()
    assert "diary" not in text and "unsent" not in text and "private" not in text
    first, single, mapping = (keyvalue(line)["msg"] for line in lines(output))
    assert first == "state <State>, draft <Draft>, form <dict>, items <list>, ids <frozenset>, count 3, name counter"
    assert single == "form <dict>"
    assert mapping == "mapping alice <Draft>"


def test_cookie_values_and_secrets_are_redacted(output: io.StringIO) -> None:
    logger = get_logger("livetemplate.request")
    logger.warning("cookie header: %s", "Cookie: theme=dark; livetemplate-id=s3ss10n")
    logger.warning("connecting to %s", "postgresql://app:hunter2@db:5432/app")
    try:
        raise ConnectionError("redis://:hunter2@cache:6379/0 refused, token=abc123")
    except ConnectionError:
        logger.exception("store down")
    text = output.getvalue()
    for secret in ("s3ss10n", "hunter2", "abc123", "theme=dark"):
        assert secret not in text
    assert "postgresql://app:[redacted]@db:5432/app" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("livetemplate-id=abc; other=1", "livetemplate-id=[redacted]; other=1"),
        ("Cookie: a=1; livetemplate-id=abc", "Cookie: [redacted]"),
        ("{'cookie': 'a=b; c=d', 'x': 1}", "{'cookie': '[redacted]', 'x': 1}"),
        ("{'set-cookie': 'livetemplate-id=x'}", "{'set-cookie': '[redacted]'}"),
        ("Authorization: Bearer xyz.abc", "Authorization: [redacted]"),
        ("sent Bearer abc123 upstream", "sent Bearer [redacted] upstream"),
        ("postgresql://user:p%40ss@db/app?sslmode=require", "postgresql://user:[redacted]@db/app?sslmode=require"),
        ("redis://:pw@localhost:6379/0", "redis://:[redacted]@localhost:6379/0"),
        ("password='hunter 2' kept", "password='[redacted]' kept"),
        ('{"password": "p", "user": "u"}', '{"password": "[redacted]", "user": "u"}'),
        ("?_csrf=abcd&x=1", "?_csrf=[redacted]&x=1"),
        ("secret_key=xyz api_key: k", "secret_key=[redacted] api_key: [redacted]"),
        ("tokens=5 token=abc", "tokens=5 token=[redacted]"),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),
        ("nothing to hide: count=1", "nothing to hide: count=1"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_long_messages_and_tracebacks_are_capped(output: io.StringIO) -> None:
    logger = get_logger("livetemplate.hub")
    logger.warning("unknown action %s", "x" * 100_000)
    try:
        raise ValueError("y" * 100_000)
    except ValueError:
        logger.exception("failed")
    first, second = (keyvalue(line) for line in lines(output))
    assert len(first["msg"]) < logs.MAX_MESSAGE + 40 and first["msg"].endswith("characters cut]")
    assert len(second["exc"]) < logs.MAX_TRACEBACK + 40 and second["exc"].endswith("y")


def test_unformattable_arguments_do_not_raise(output: io.StringIO) -> None:
    get_logger("livetemplate.hub").warning("%d items", "many")
    assert keyvalue(lines(output)[0])["msg"] == "%d items (unformattable arguments: <str>)"


def test_stdlib_handlers_receive_scrubbed_records() -> None:
    """The bridge: a handler configured with the stdlib gets the library's records, with the
    message and traceback already scrubbed and the exception still attached."""
    received: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            received.append(record)

    stdlib = logging.getLogger("livetemplate")
    handler = Collect()
    stdlib.addHandler(handler)
    saved_level = stdlib.level
    stdlib.setLevel(logging.WARNING)
    try:
        logger = get_logger("livetemplate.transports.websocket")
        logger.info("below the stdlib level")
        try:
            raise OSError("password=hunter2")
        except OSError:
            logger.exception("closing %s failed", Draft())
    finally:
        stdlib.removeHandler(handler)
        stdlib.setLevel(saved_level)
    [record] = received
    assert record.name == "livetemplate.transports.websocket"
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "closing <Draft> failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)
    formatted = logging.Formatter().format(record)
    assert "hunter2" not in formatted and "password=[redacted]" in formatted


def test_the_formatters_serve_stdlib_handlers_too() -> None:
    record = logging.LogRecord("livetemplate.x", logging.INFO, __file__, 1, "hello %s", (State(),), None)
    assert keyvalue(KeyValueFormatter().format(record))["msg"] == "hello <State>"
    assert json.loads(JsonFormatter().format(record))["msg"] == "hello <State>"


def test_fingerprint() -> None:
    group = "b6a3b1f2-0d3e-4c1e-9d1a-0e2c1f0a9b7c"
    assert fingerprint(group) == fingerprint(group.encode())
    assert len(fingerprint(group)) == 12 and fingerprint(group) not in group
    assert fingerprint(group) != fingerprint(group + "x")


SCRIPT = """
import logging, sys
from livetemplate.ops.logs import configure_logging, get_logger
logger = get_logger("livetemplate.app")
logger.info("not shown: below stdlib's default level")
logger.warning("unconfigured %s", "warning")
if sys.argv[1] == "configure":
    configure_logging()
    logger.warning("configured warning")
if sys.argv[1] == "stdlib":
    logging.basicConfig(format="stdlib:%(levelname)s:%(message)s")
    configure_logging()
    logger.warning("to both")
"""


def _stderr(mode: str) -> list[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LIVETEMPLATE_LOG")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True, env=environment
    )
    return result.stderr.splitlines()


def test_in_a_process_without_configuration() -> None:
    """Unconfigured, the library behaves as a stdlib-logging library: warnings reach stdlib's
    last resort on stderr; once configured, each event is written once, by the library, or
    also by the stdlib handlers the app configured."""
    assert _stderr("none") == ["unconfigured warning"]
    before, after = _stderr("configure")
    assert before == "unconfigured warning"
    assert keyvalue(after)["msg"] == "configured warning"
    _, first, second = _stderr("stdlib")
    assert {first.startswith("ts="), second.startswith("ts=")} == {True, False}
    assert "stdlib:WARNING:to both" in (first, second)


def test_with_lines_of_its_own_and_no_stdlib_handler_nothing_is_handed_over(output: io.StringIO) -> None:
    stdlib = logging.getLogger("livetemplate.isolated")
    stdlib.propagate = False
    handed: list[logging.LogRecord] = []

    def seen(record: logging.LogRecord) -> bool:
        handed.append(record)
        return False

    stdlib.addFilter(seen)
    try:
        get_logger("livetemplate.isolated").warning("only once")
    finally:
        stdlib.removeFilter(seen)
        stdlib.propagate = True
    assert handed == []
    assert keyvalue(lines(output)[0])["msg"] == "only once"


def test_other_values_and_odd_logger_names(output: io.StringIO) -> None:
    formatter = KeyValueFormatter()
    record = logging.LogRecord("my app", logging.INFO, __file__, 1, "job %s at %s", (test_fingerprint, 2.5), None)
    fields = keyvalue(formatter.format(record))
    assert fields["logger"] == "my app"
    assert fields["msg"].startswith("job <function test_fingerprint at 0x") and fields["msg"].endswith(" at 2.5")
