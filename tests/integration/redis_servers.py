"""Real ``redis-server`` processes for the integration tests: a standalone server, a Sentinel
setup (a master, a replica, three sentinels) and a three-master Cluster, each on free loopback
ports in a temporary directory, without persistence.

Every process is started with a parent-death signal (Linux), so even a killed test run leaves
no server behind; the fixtures stop them and remove their directories in any case.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import redis

from tests.support.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
MASTER_NAME = "mymaster"
T = TypeVar("T", bound="Topology")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the test process dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class RedisProcess:
    """One ``redis-server`` (or sentinel) process on a fixed loopback port. It can be
    stopped, killed, paused and started again on the same port with the same directory."""

    def __init__(self, directory: Path, *, port: int | None = None, args: tuple[str, ...] = (), sentinel: bool = False):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.args = args
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "server.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def command(self) -> list[str]:
        base = ["--port", str(self.port), "--bind", HOST, "--dir", str(self.directory), "--logfile", "server.log"]
        if self.sentinel:
            config = self.directory / "sentinel.conf"
            return [REDIS_SERVER, str(config), "--sentinel", *base, *self.args]
        persistence = ["--save", "", "--appendonly", "no"]
        return [REDIS_SERVER, *base, *persistence, *self.args]

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        wait_until(self._answers, START_TIMEOUT, f"redis-server on port {self.port} ({self.log_tail()})")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, *, socket_timeout: float = 5) -> redis.Redis:
        """A synchronous client for fixtures and assertions (the caller closes it)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=socket_timeout, password=self.password)

    @property
    def password(self) -> str | None:
        if "--requirepass" in self.args:
            return self.args[self.args.index("--requirepass") + 1]
        return None

    def _answers(self) -> bool:
        if not self.running:
            raise RuntimeError(f"redis-server on port {self.port} exited: {self.log_tail()}")
        with self.client(socket_timeout=1) as client:
            return bool(client.ping())

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL) and wait."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the process dies without closing its connections cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "no log"


class Topology:
    """Processes started together and stopped together, in one temporary directory."""

    def __init__(self, name: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"lt-{name}-"))
        self.processes: list[RedisProcess] = []

    def start(self) -> None:
        """Start the processes and wait until the topology serves."""
        raise NotImplementedError

    def add(self, name: str, **options: object) -> RedisProcess:
        process = RedisProcess(self.root / name, **options)  # type: ignore[arg-type]
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Standalone(Topology):
    """One redis-server."""

    def __init__(self, *, password: str | None = None) -> None:
        super().__init__("standalone")
        self.server = self.add("server", args=("--requirepass", password) if password else ())

    def start(self) -> None:
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url


class SentinelSetup(Topology):
    """A master, one replica and three sentinels (quorum 2) watching ``mymaster``.

    Sentinels that have not settled (found each other and the replica) after 30 s are
    reported with what each of them saw, and the setup is laid out again once on fresh ports:
    these tests are about the application during a failover, not about Sentinel's start.
    """

    def __init__(self, *, down_after_ms: int = 1000, failover_timeout_ms: int = 5000) -> None:
        super().__init__("sentinel")
        self.timings = (down_after_ms, failover_timeout_ms)
        self._lay_out()

    def _lay_out(self) -> None:
        down_after_ms, failover_timeout_ms = self.timings
        self.processes = []
        self.master = self.add("master")
        self.replica = self.add("replica", args=("--replicaof", HOST, str(self.master.port)))
        self.sentinels = [self.add(f"sentinel{index}", sentinel=True) for index in range(3)]
        for sentinel in self.sentinels:
            (sentinel.directory / "sentinel.conf").write_text(
                f"sentinel monitor {MASTER_NAME} {HOST} {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )

    def start(self) -> None:
        try:
            self._start_once()
        except TimeoutError as first:
            warnings.warn(f"{first}; starting the Sentinel setup again on fresh ports", stacklevel=2)
            self.close()
            self.root.mkdir(parents=True)
            self._lay_out()
            self._start_once()

    def _start_once(self) -> None:
        for process in self.processes:
            process.start()
        wait_until(self._replica_synced, START_TIMEOUT, "the replica to sync")
        try:
            wait_until(self._sentinels_ready, 3 * START_TIMEOUT, "the sentinels to discover each other and the replica")
        except TimeoutError as error:
            raise TimeoutError(f"{error}: {self._sentinels_seen()}") from None

    def _sentinels_seen(self) -> str:
        """What each sentinel reports about the master, or why it does not answer, and its log."""
        seen = []
        for sentinel in self.sentinels:
            try:
                with sentinel.client(socket_timeout=1) as client:
                    report = str(client.info("sentinel").get("master0", "no master0"))
            except (redis.RedisError, OSError) as error:
                report = f"{type(error).__name__}: {error}"
            seen.append(f"sentinel :{sentinel.port} {report} (log: {sentinel.log_tail(8)})")
        return "; ".join(seen)

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(HOST, sentinel.port) for sentinel in self.sentinels]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def master_address(self) -> tuple[str, int]:
        """The master as the first sentinel sees it."""
        with self.sentinels[0].client() as client:
            host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return host.decode(), int(port)

    def wait_replicated(self) -> None:
        """Wait until the replica has every write the master acknowledged (WAIT)."""
        _, port = self.master_address()
        with self.process_at(port).client() as client:
            if client.execute_command("WAIT", 1, 5000) != 1:
                raise TimeoutError("the replica did not acknowledge the master's writes")

    def process_at(self, port: int) -> RedisProcess:
        return next(process for process in (self.master, self.replica) if process.port == port)

    def wait_for_promotion(self, old_port: int, timeout: float = 30.0) -> RedisProcess:
        """Wait until every sentinel names another master than ``old_port`` and that server
        accepts writes; return it."""

        def promoted() -> bool:
            ports = set()
            for sentinel in self.sentinels:
                if not sentinel.running:
                    continue
                with sentinel.client() as client:
                    _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                ports.add(int(port))
            if len(ports) != 1 or old_port in ports:
                return False
            with self.process_at(ports.pop()).client() as client:
                return client.info("replication")["role"] == "master"

        wait_until(promoted, timeout, "the sentinels to promote the replica")
        return self.process_at(self.master_address()[1])

    def _replica_synced(self) -> bool:
        with self.replica.client() as client:
            return client.info("replication").get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                info = client.info("sentinel")
                master = info.get("master0", {})
                if master.get("status") != "ok" or master.get("slaves") != 1 or master.get("sentinels") != 3:
                    return False
        return True


class Cluster(Topology):
    """Three cluster masters without replicas, all 16384 slots covered."""

    def __init__(self, size: int = 3) -> None:
        super().__init__("cluster")
        self.nodes = [
            self.add(
                f"node{index}",
                port=free_port(with_bus=True),
                args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ),
            )
            for index in range(size)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"{HOST}:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        wait_until(self._ready, 3 * START_TIMEOUT, "the cluster to cover all slots on every node")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    def node_for_slot(self, slot: int) -> RedisProcess:
        with self.nodes[0].client() as client:
            for start, end, (_host, port, *_rest), *_replicas in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == port)
        raise LookupError(slot)

    def node_id(self, node: RedisProcess) -> str:
        with node.client() as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())

    def move_empty_slot(self, slot: int, target: RedisProcess) -> None:
        """Move a slot that holds no key to ``target`` the way redis-cli does: IMPORTING on the
        target and MIGRATING on the source first, so that the target's SETSLOT NODE bumps its
        config epoch. Without that the source's gossip, carrying a higher epoch, can win the
        slot back on the target while the source already points at the target, and each node
        answers MOVED to the other."""
        source = self.node_for_slot(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)

        def setslot(node: RedisProcess, *args: str) -> None:
            with node.client() as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, *args)

        setslot(target, "IMPORTING", source_id)
        setslot(source, "MIGRATING", target_id)
        for node in [target, source, *[n for n in self.nodes if n not in (source, target)]]:
            setslot(node, "NODE", target_id)

    def _ready(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                    return False
                if len(client.execute_command("CLUSTER", "SLOTS")) < len(self.nodes):
                    return False
        return True


@contextlib.contextmanager
def running(topology: T) -> Iterator[T]:
    """Start a topology; stop its processes and remove its directory afterwards, whatever happened."""
    try:
        topology.start()
        yield topology
    finally:
        topology.close()


def environment_ready() -> None:
    """Fail early and clearly when the machine lacks the servers (CI installs them)."""
    for binary in (REDIS_SERVER, REDIS_CLI):
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} is needed by the integration tests (apt-get install redis-server)")
