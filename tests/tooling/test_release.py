"""Release wheels: ``make wheel`` builds and repairs this machine's wheel; installed into a fresh
virtualenv (no source tree on the path) it serves the counter example end to end with the
compiled engine; cibuildwheel's build identifiers are the intended matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import livetemplate
from tests.tooling.processes import ROOT, close_code, first_frame, serve

PYTHONS = ("cp311", "cp312", "cp313")
MATRIX = {
    "linux": {
        f"{py}-{libc}_{arch}" for py in PYTHONS for libc in ("manylinux", "musllinux") for arch in ("x86_64", "aarch64")
    },
    "macos": {f"{py}-macosx_{arch}" for py in PYTHONS for arch in ("x86_64", "arm64")},
    "windows": {f"{py}-win_amd64" for py in PYTHONS},
}


@pytest.fixture(scope="module")
def wheel() -> Path:
    """``make wheel``: the repaired wheel it leaves in dist/."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for old in (ROOT / "dist").glob(f"livetemplate-*-{tag}-*.whl"):
        old.unlink()
    result = subprocess.run(["make", "--no-print-directory", "wheel"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    [built] = (ROOT / "dist").glob(f"livetemplate-*-{tag}-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel installed (its dependencies from the index)."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    python = home / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)]
    result = subprocess.run(install, capture_output=True, text=True, cwd=home)
    assert result.returncode == 0, result.stderr[-4000:]
    yield python


def outside(python: Path, code: str, cwd: Path) -> str:
    """Run ``code`` with the venv's Python, away from the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIVETEMPLATE_NO_EXTENSIONS")}
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=cwd, env=env, check=True)
    return result.stdout


def test_the_wheel_is_repaired_and_carries_engine_client_and_cli(wheel: Path) -> None:
    assert "manylinux" in wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("livetemplate/_render_c.") and n.endswith(".so") for n in names)
    assert "livetemplate/static/livetemplate-client.browser.js" in names
    assert "livetemplate/py.typed" in names and "livetemplate/cli/__init__.py" in names
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "livetemplate = livetemplate.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_uses_the_compiled_engine(venv: Path, tmp_path: Path) -> None:
    found = json.loads(
        outside(
            venv,
            "import json, livetemplate; print(json.dumps([livetemplate.__file__, livetemplate.implementation()]))",
            tmp_path,
        )
    )
    assert found[0].startswith(str(venv.parent.parent)) and "site-packages" in found[0]
    assert found[1] == "compiled"
    version = subprocess.run([str(venv.parent / "livetemplate"), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith(f"livetemplate {livetemplate.__version__} (compiled engine")


def test_the_counter_example_end_to_end(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "counter_app.py").write_text((ROOT / "examples" / "counter" / "app.py").read_text())
    env = {"LIVETEMPLATE_NO_EXTENSIONS": "", "PYTHONPATH": ""}
    with serve(["counter_app:app", "--app-dir", str(tmp_path)], cwd=tmp_path, env=env, python=str(venv)) as served:
        page = httpx.get(served.url + "/")
        assert page.status_code == 200 and "Count: <output>0</output>" in page.text
        script = page.text.split('<script src="', 1)[1].split('"', 1)[0]
        asset = httpx.get(served.url + script)
        assert asset.status_code == 200 and "LiveTemplateClient" in asset.text
        with served.websocket() as ws:
            first_frame(ws)
            for _ in range(2):
                ws.send(json.dumps({"action": "increment", "data": {}}))
                update = first_frame(ws)
                assert update["meta"]["success"] is True
            assert json.dumps(update["tree"]).count('"2"') == 1
            served.terminate()
            assert close_code(ws) == (1012, "Server restarting")
    assert "Traceback" not in served.output()


def test_cibuildwheel_builds_the_intended_matrix() -> None:
    for platform, expected in MATRIX.items():
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cibuildwheel",
                "--print-build-identifiers",
                "--platform",
                platform,
                "--config-file",
                "cibuildwheel.toml",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert set(result.stdout.split()) == expected, platform
