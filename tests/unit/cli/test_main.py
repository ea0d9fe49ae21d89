"""The ``livetemplate`` command: help, version, ``python -m livetemplate``, ``bench``."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import livetemplate
from livetemplate.cli import main


@pytest.mark.parametrize("command", ["serve", "check", "capacity", "bench"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: livetemplate {command} ")


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "check", "capacity", "bench"):
        assert f"    {command} " in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_serve_help_says_what_workers_mean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "every worker keeps its own sessions" in out and "LIVETEMPLATE_BACKEND=redis://" in out
    assert "--reload" in out and "(default: 8000)" in out


def test_python_dash_m_and_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livetemplate", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith(f"livetemplate {livetemplate.__version__} (")
    assert livetemplate.implementation() in result.stdout


def test_bench_without_the_harness_says_what_to_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "benchmarks.load", None)  # import fails: not there
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "benchmarks.load" in err and "make bench" in err


def test_bench_hands_its_arguments_to_the_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []
    harness = types.ModuleType("benchmarks.load")
    harness.main = lambda argv: received.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchmarks.load", harness)
    assert main(["bench", "examples.counter.app:app", "--connections", "100"]) == 0
    assert main(["bench", "--", "--help"]) == 0
    assert received == [["examples.counter.app:app", "--connections", "100"], ["--help"]]
