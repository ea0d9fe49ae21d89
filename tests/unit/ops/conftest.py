"""Fixtures of the operations tests. PostgreSQL comes two
ways: the machine's server (``LIVETEMPLATE_TEST_POSTGRES``, default 127.0.0.1:5432, database
``test``) and, for the drills that stop and start a database, a server of the test's own in a
temporary directory, removed afterwards even when the test fails."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.logging_state import _restore_logging
from tests.support.ports import free_port

__all__ = ["_restore_logging"]

POSTGRES_URL = os.environ.get("LIVETEMPLATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> str:
    """The machine's PostgreSQL server."""
    return POSTGRES_URL


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name))
    if found:
        return Path(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    return Path(pg_ctl).resolve().parent


class PostgresServer:
    """A PostgreSQL server in a directory of its own, on a free loopback port. PostgreSQL
    refuses to run as root: as root, its programs run as the ``postgres`` user."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._bin = _bindir()
        self._as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        subprocess.run(
            [*self._as_owner, str(self._bin / program), *args],
            check=check,
            capture_output=True,
            timeout=60,
        )

    def init(self) -> None:
        if self._as_owner:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [*self._as_owner, str(self._bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            timeout=60,
        )
        return result.returncode == 0


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running server of our own; on the way out, however it is left, stopped and removed."""
    directory = Path(tempfile.mkdtemp(prefix="livetemplate-pg-"))
    server = PostgresServer(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server._run("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def _own_postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def own_postgres(_own_postgres: PostgresServer) -> Iterator[PostgresServer]:
    """A PostgreSQL server the test may stop and start; running when the test starts and
    when it ends."""
    if not _own_postgres.running():
        _own_postgres.start()
    yield _own_postgres
    if not _own_postgres.running():
        _own_postgres.start()
