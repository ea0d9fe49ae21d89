"""Cost of one log line, the library's way (picologging record, scrubbing formatter) beside the
stdlib's plain ``logging.Formatter`` on an equivalent key=value line, measured in the same run.

    python -m pytest benchmarks/test_logging.py --benchmark-columns=min,median,mean,rounds

``format``: formatting one record that is already made. ``event``: a whole ``logger.warning``
call written to a stream that discards it (record, level check, formatting, write).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import picologging
import pytest

from livetemplate.ops import logs
from tests.support.engine_independent import engine  # noqa: F401  (runs once, on the default engine)

STDLIB_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
MESSAGE = "publishing on %r failed after %d attempts"
ARGS = ("news", 3)


class Discard:
    """A text stream that drops what it is given."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def _stdlib_record() -> logging.LogRecord:
    return logging.LogRecord("livetemplate.hub", logging.WARNING, __file__, 1, MESSAGE, ARGS, None)


def _picologging_record() -> picologging.LogRecord:
    return picologging.LogRecord("livetemplate.hub", picologging.WARNING, __file__, 1, MESSAGE, ARGS, None)


def test_format_stdlib(benchmark: Any) -> None:
    formatter = logging.Formatter(STDLIB_FORMAT)
    record = _stdlib_record()
    benchmark(formatter.format, record)


def test_format_picologging_plain(benchmark: Any) -> None:
    """picologging's own C formatter on the same format string: no quoting, no scrubbing."""
    formatter = picologging.Formatter("level=%(levelname)s logger=%(name)s msg=%(message)s")
    record = _picologging_record()
    benchmark(formatter.format, record)


def test_format_keyvalue(benchmark: Any) -> None:
    formatter = logs.KeyValueFormatter()
    record = _picologging_record()
    benchmark(formatter.format, record)


def test_format_json(benchmark: Any) -> None:
    formatter = logs.JsonFormatter()
    record = _picologging_record()
    benchmark(formatter.format, record)


@pytest.fixture
def quiet_stdlib() -> Iterator[None]:
    """No stdlib logging for the library's records, as in an app that logs through the library
    only. (pytest attaches its capture handlers to every logger that does not propagate, so the
    stdlib logger is disabled instead: the bridge then hands nothing over.)"""
    stdlib = logging.getLogger("livetemplate.hub")
    stdlib.disabled = True
    root = picologging.getLogger(logs.ROOT)
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        stdlib.disabled = False
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_event_stdlib(benchmark: Any, quiet_stdlib: None) -> None:
    logger = logging.Logger("bench.stdlib")
    handler = logging.StreamHandler(Discard())
    handler.setFormatter(logging.Formatter(STDLIB_FORMAT))
    logger.addHandler(handler)
    benchmark(logger.warning, MESSAGE, *ARGS)


def test_event_livetemplate(benchmark: Any, quiet_stdlib: None) -> None:
    logs.configure_logging("info", "keyvalue", stream=Discard())  # type: ignore[arg-type]
    logger = logs.get_logger("livetemplate.hub")
    benchmark(logger.warning, MESSAGE, *ARGS)


def test_event_below_level_stdlib(benchmark: Any) -> None:
    logger = logging.Logger("bench.stdlib", logging.INFO)
    benchmark(logger.debug, MESSAGE, *ARGS)


def test_event_below_level_livetemplate(benchmark: Any, quiet_stdlib: None) -> None:
    logs.configure_logging("info", "keyvalue", stream=Discard())  # type: ignore[arg-type]
    logger = logs.get_logger("livetemplate.hub")
    benchmark(logger.debug, MESSAGE, *ARGS)


def _best(call: Any, args: tuple[Any, ...], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        call(*args)
    return (time.perf_counter() - started) / number


@pytest.mark.parametrize(
    "case",
    ["format", "event"],
)
def test_ratio_interleaved(case: str, quiet_stdlib: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Both sides alternate in short rounds, so load from other processes falls on both alike;
    the best round of each gives the ratio (printed, never asserted)."""
    if case == "format":
        stdlib: tuple[Any, tuple[Any, ...]] = (logging.Formatter(STDLIB_FORMAT).format, (_stdlib_record(),))
        ours: tuple[Any, tuple[Any, ...]] = (logs.KeyValueFormatter().format, (_picologging_record(),))
    else:
        logger = logging.Logger("bench.stdlib")
        handler = logging.StreamHandler(Discard())
        handler.setFormatter(logging.Formatter(STDLIB_FORMAT))
        logger.addHandler(handler)
        logs.configure_logging("info", "keyvalue", stream=Discard())  # type: ignore[arg-type]
        stdlib = (logger.warning, (MESSAGE, *ARGS))
        ours = (logs.get_logger("livetemplate.hub").warning, (MESSAGE, *ARGS))
    best_stdlib = best_ours = float("inf")
    for _ in range(200):
        best_stdlib = min(best_stdlib, _best(*stdlib, 200))
        best_ours = min(best_ours, _best(*ours, 200))
    with capsys.disabled():
        print(
            f"\n{case}: stdlib {best_stdlib * 1e6:.2f} us, livetemplate {best_ours * 1e6:.2f} us, "
            f"livetemplate / stdlib = {best_ours / best_stdlib:.2f}"
        )
