"""``make test`` says first what the machine lacks (scripts/check-prerequisites), with the
packages to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.tooling.processes import ROOT

SCRIPT = ROOT / "scripts" / "check-prerequisites"


def run_with(tools: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The script with a PATH holding only ``tools`` (and what the script itself runs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ["bash", "env", *tools]:
        found = shutil.which(name)
        assert found is not None, f"{name} is needed to run this test"
        (bin_dir / name).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, check=False)


def test_everything_there(tmp_path: Path) -> None:
    result = run_with(["cc", "node", "npm", "redis-server", "chromium"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_chromium_and_redis_missing(tmp_path: Path) -> None:
    result = run_with(["cc", "node", "npm"], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "make test needs what this machine lacks:"
    assert any(line.startswith("  chromium: Chromium") for line in lines)
    assert any(line.startswith("  redis-server: ") for line in lines)
    assert "sudo apt-get install -y redis-server chromium" in result.stderr
    assert "make run needs only Python, a C compiler and Node.js/npm" in result.stderr


def test_make_test_checks_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "test: prerequisites build check" in makefile
    assert "scripts/check-prerequisites" in makefile
