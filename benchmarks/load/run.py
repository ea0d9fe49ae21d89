"""The orchestrator: for each connection count and each target, start the server process and
the client processes and run the phases; then take the fan-out rounds of every target in turn,
stop every process, print a table and write JSON.

Phases, per target: warm-up (20 connections opened and closed), baseline, N connections
opened (page GET + HEAD + upgrade, first render received), idle figures (RSS, tasks, GC-tracked
objects by type, a forced full collection), sequential round trips with the server's CPU per
action, actions at a set rate, bursts of concurrent actions. Then broadcast fan-out (publish
to the last receive), one round of each target after the other, so that the ratio of two
targets compares rounds taken seconds apart (a target's idle connections stay open
meanwhile). ``floor`` is a bare asyncio server writing the same bytes to the same number of
sockets in the same run; the ratios are the figures to read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]

KIB = 1024


@dataclass(frozen=True)
class Target:
    """A server to measure: the ``serve`` arguments, the client kind, whether the clients offer
    permessage-deflate, and whether only the idle figures are taken."""

    name: str
    serve: tuple[str, ...]
    kind: str
    deflate: bool = False
    idle_only: bool = False
    freeze: bool = False  # gc.freeze() in the server once the connections are open (a what-if)


TARGETS = {
    "livetemplate": Target("livetemplate", ("--target", "lt"), "lt"),
    "floor": Target("floor", ("--target", "floor"), "floor"),
    # the same app with its sync actions run on the event loop (sync_actions="inline")
    "livetemplate-inline": Target("livetemplate-inline", ("--target", "lt", "--inline"), "lt"),
    # what-if for the GC: the same app, its heap frozen (gc.freeze()) once the connections are open
    "livetemplate-frozen": Target("livetemplate-frozen", ("--target", "lt"), "lt", freeze=True),
    "livetemplate-inline-frozen": Target(
        "livetemplate-inline-frozen", ("--target", "lt", "--inline"), "lt", freeze=True
    ),
    # what-if: no uvicorn keep-alive ping (a timer per connection; the client sends its own heartbeat)
    "livetemplate-noping": Target("livetemplate-noping", ("--target", "lt", "--no-ping"), "lt"),
    # uvicorn's share: a stateless ASGI app sending the same frames, same uvicorn settings
    "uvicorn": Target("uvicorn", ("--target", "uvicorn"), "floor"),
    # like for like: no compression on either side
    "pyview": Target("pyview", ("--target", "pyview", "--no-deflate"), "pyview"),
    # as pyview ships (uvicorn --ws wsproto, deflate on) and a browser connects (offering deflate)
    "pyview-deflate": Target("pyview-deflate", ("--target", "pyview"), "pyview", deflate=True, idle_only=True),
    # this project's settings refuse deflate: the offer must change nothing
    "livetemplate-deflate": Target("livetemplate-deflate", ("--target", "lt"), "lt", deflate=True, idle_only=True),
    # deflate turned on (uvicorn_config(app, ws_per_message_deflate=True)): what it costs
    "livetemplate-deflate-on": Target("livetemplate-deflate-on", ("--target", "lt", "--deflate"), "lt", deflate=True),
}


@dataclass
class Settings:
    connections: int
    rate_connections: int = 1000
    rate_per_second: float = 1.0
    rate_seconds: float = 10.0
    burst: int = 200
    burst_rounds: int = 5
    sequential: int = 1000
    fanout_rounds: int = 5
    settle: float = 3.0
    tracemalloc: bool = False
    profile: bool = False
    idle_only: bool = False
    clients: int = 0  # client processes; 0: one per 5,000 connections, at least 2
    extra: dict[str, Any] = field(default_factory=dict)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1] * 1e3, 3)}


class Server:
    """The server process of one target."""

    def __init__(self, target: Target, tracemalloc: bool, log: str) -> None:
        argv = [sys.executable, "-m", "benchmarks.load.serve", *target.serve]
        if tracemalloc:
            argv.append("--tracemalloc")
        self.log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("PORT="):
            self.stop()
            raise RuntimeError(f"the {target.name} server did not start (see {log})")
        self.port = int(line.strip().split("=")[1])
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 30
        while True:  # wait for it to answer
            try:
                self.get("stats")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"the {target.name} server does not answer (see {log})") from None
                time.sleep(0.1)

    def get(self, name: str, timeout: float = 300, **query: Any) -> dict[str, Any]:
        args = "&".join(f"{k}={v}" for k, v in query.items())
        url = f"http://127.0.0.1:{self.port}/__bench__/{name}?{args}"
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            result: dict[str, Any] = json.loads(answer.read())
        return result

    def cpu(self) -> float:
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds in the process's own code and in the kernel on its behalf."""
        times = self.ps.cpu_times()
        return float(times.user), float(times.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


class Clients:
    """The client processes of one target; each command goes to all and every answer is read."""

    def __init__(self, target: Target, port: int, count: int, log: str) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.processes: list[subprocess.Popen[bytes]] = []
        for i in range(count):
            sources = ",".join(f"127.0.{1 + i}.{j}" for j in (2, 3))
            argv = [sys.executable, "-m", "benchmarks.load.client", "--kind", target.kind]
            argv += ["--port", str(port), "--sources", sources]
            if target.deflate:
                argv.append("--deflate")
            self.processes.append(
                subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True
                )
            )

    def ask(self, commands: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Send ``commands[i]`` to client i (None: nothing) and read their answers."""
        for process, command in zip(self.processes, commands, strict=True):
            if command is not None:
                assert process.stdin is not None
                process.stdin.write(json.dumps(command).encode() + b"\n")
                process.stdin.flush()
        answers = []
        for process, command in zip(self.processes, commands, strict=True):
            if command is not None:
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError("a client process died (see the clients' log)")
                answers.append(json.loads(line))
        return answers

    def first(self, command: dict[str, Any]) -> dict[str, Any]:
        """``command`` for the first client only."""
        return self.ask([command] + [None] * (len(self.processes) - 1))[0]

    def all(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        return self.ask([dict(command) for _ in self.processes])

    def split(self, name: str, total: int, **args: Any) -> list[dict[str, Any]]:
        """``name`` with ``count`` shares of ``total`` over the clients."""
        n = len(self.processes)
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        return self.ask([{"cmd": name, "count": s, **args} if s else None for s in shares])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None and process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.write(b'{"cmd": "exit"}\n')
                    process.stdin.flush()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.log.close()


@contextlib.contextmanager
def running(target: Target, settings: Settings, logs: str) -> Iterator[tuple[Server, Clients]]:
    server = Server(target, settings.tracemalloc, os.path.join(logs, f"{target.name}-server.log"))
    clients = None
    try:
        count = settings.clients or max(2, math.ceil(settings.connections / 5000))
        clients = Clients(target, server.port, count, os.path.join(logs, f"{target.name}-clients.log"))
        yield server, clients
    finally:
        if clients is not None:
            clients.stop()
        server.stop()


class Measured:
    """A target whose processes may still be up (``close`` stops them): its figures so far,
    its server and clients."""

    def __init__(self, result: dict[str, Any], server: Server, clients: Clients, close: Callable[[], None]) -> None:
        self.result = result  # with its load phases' figures unless the target is idle-only
        self.server = server
        self.clients = clients
        self.close = close
        self.fanouts: list[float] = []
        self.firsts: list[float] = []
        self.received: list[int] = []
        self.cpus: list[tuple[float, float]] = []  # user and system seconds, a pair per round

    @property
    def loaded(self) -> bool:
        """Whether the load phases ran (an idle-only target has no fan-out to take)."""
        return "sequential" in self.result


def measure(target: Target, settings: Settings, logs: str) -> Measured:
    """Every phase but the fan-out; the processes stay up so that the fan-out rounds of every
    target can be taken in turn (:func:`fan_out`)."""
    n = settings.connections
    result: dict[str, Any] = {"target": target.name, "connections": n, "load_before": os.getloadavg()[0]}
    stack = contextlib.ExitStack()
    server, clients = stack.enter_context(running(target, settings, logs))
    measured = Measured(result, server, clients, stack.close)
    try:
        _idle_and_load_phases(target, settings, measured)
    except BaseException:
        measured.close()
        raise
    return measured


def _idle_and_load_phases(target: Target, settings: Settings, measured: Measured) -> None:
    n, result, server, clients = settings.connections, measured.result, measured.server, measured.clients
    clients.first({"cmd": "open", "count": 20, "concurrency": 20})
    clients.first({"cmd": "close"})
    time.sleep(1)
    before = server.get("stats", objects=1, types="mark")
    if settings.tracemalloc:
        server.get("tracemalloc", mark=1)
    started = time.monotonic()
    opened = clients.split("open", n, concurrency=100)
    result["open_seconds"] = round(time.monotonic() - started, 1)
    result["opened"] = sum(o["opened"] for o in opened)
    errors: dict[str, int] = {}
    for o in opened:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    result["open_errors"] = errors
    time.sleep(settings.settle)
    idle = server.get("stats")
    counted = server.get("stats", objects=1, types="diff")
    m = result["opened"] or 1
    result["server_connections"] = idle["connections"]
    result["rss_before_mib"] = round(before["rss"] / KIB / KIB, 1)
    result["rss_after_mib"] = round(idle["rss"] / KIB / KIB, 1)
    result["kib_per_connection"] = round((idle["rss"] - before["rss"]) / KIB / m, 2)
    result["tasks_per_connection"] = round((idle["tasks"] - before["tasks"]) / m, 3)
    # frozen objects (the heap policy freezes open connections') count: they are still held
    tracked = counted["objects"] + counted["frozen"] - before["objects"] - before["frozen"]
    result["gc_objects_per_connection"] = round(tracked / m, 1)
    result["gc_unfrozen_objects_per_connection"] = round((counted["objects"] - before["objects"]) / m, 1)
    result["gc_types_per_connection"] = {k: round(v / m, 2) for k, v in counted.get("types", {}).items() if v >= m / 2}
    result["full_collection_ms"] = counted["full_collection_ms"]
    result["full_collection_cpu_ms"] = counted["full_collection_cpu_ms"]
    result["gc_while_opening"] = idle["gc"]
    if settings.tracemalloc:
        traced = server.get("tracemalloc", top=40)
        result["traced_bytes_per_connection"] = round(traced["total"] / m, 1)
        result["traced_rows_per_connection"] = [
            {"where": r["where"], "bytes": round(r["bytes"] / m, 1), "blocks": round(r["blocks"] / m, 2)}
            for r in traced["rows"]
            if r["bytes"] >= m * 16
        ]
    if target.freeze:
        result["frozen_objects"] = server.get("freeze")["frozen"]
    if not (target.idle_only or settings.idle_only):
        result.update(load_phases(server, clients, settings))


def load_phases(server: Server, clients: Clients, settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    server.get("gc-reset")
    # sequential round trips on one connection; server CPU per action, less its idle CPU
    cpu0, t0 = server.cpu(), time.monotonic()
    time.sleep(2)
    idle_cpu_rate = (server.cpu() - cpu0) / (time.monotonic() - t0)
    cpu0, t0 = server.cpu(), time.monotonic()
    answer = [clients.first({"cmd": "sequential", "count": settings.sequential})]
    elapsed, cpu = time.monotonic() - t0, server.cpu() - cpu0
    out["sequential"] = percentiles(answer[0]["latencies"])
    out["cpu_ms_per_action"] = round(max(0.0, cpu - idle_cpu_rate * elapsed) / settings.sequential * 1e3, 3)
    out["idle_cpu_percent"] = round(idle_cpu_rate * 100, 1)
    # actions at a set rate: rate_connections connections acting once a second
    count = min(settings.rate_connections, settings.connections)
    at = time.monotonic() + 0.5
    cpu0 = server.cpu()
    answers = clients.split("rate", count, per_second=settings.rate_per_second, seconds=settings.rate_seconds, at=at)
    rate_cpu = server.cpu() - cpu0
    samples = [x for a in answers for x in a["latencies"]]
    sent = sum(a["sent"] for a in answers)
    out["rate"] = percentiles(samples) | {
        "connections": count,
        "sent": sent,
        "server_cpu_ms_per_action": round(rate_cpu / max(sent, 1) * 1e3, 3),
    }
    # bursts of concurrent actions
    rounds: list[dict[str, float]] = []
    every: list[float] = []
    missing = 0
    burst_cpu = 0.0  # the server's, less its idle CPU over the same time
    for _ in range(settings.burst_rounds):
        at = time.monotonic() + 0.3
        cpu0, t0 = server.cpu(), time.monotonic()
        answers = clients.split("burst", min(settings.burst, settings.connections), at=at)
        burst_cpu += server.cpu() - cpu0 - idle_cpu_rate * (time.monotonic() - t0)
        round_samples = [x for a in answers for x in a["latencies"]]
        missing += sum(a["missing"] for a in answers)
        rounds.append(percentiles(round_samples))
        every += round_samples
    out["burst"] = percentiles(every) | {
        "size": settings.burst,
        "rounds": settings.burst_rounds,
        "median_round_p95": statistics.median(r.get("p95", 0.0) for r in rounds),
        "missing": missing,
        "server_cpu_us_per_action": round(max(0.0, burst_cpu) / max(1, len(every)) * 1e6, 1),
    }
    out["gc_under_load"] = server.get("stats")["gc"]
    return out


def fan_out(targets: list[Measured], settings: Settings) -> None:
    """Broadcast fan-out (publish to the last receive, over all connections), the targets'
    rounds taken in turn: the machine's speed drifts (a shared VM's by 2x within minutes), and
    rounds of each target seconds apart see the same machine, so their ratio holds still."""
    targets = [t for t in targets if t.loaded]
    for target in targets:
        target.server.get("gc-reset")
    for index in range(settings.fanout_rounds):
        for target in targets:
            _fan_out_round(target, settings.profile and index == settings.fanout_rounds - 1)
            time.sleep(0.5)
    for target in targets:
        fanouts, firsts = target.fanouts, target.firsts
        target.result["fanout"] = {
            "best_ms": round(min(fanouts), 2) if fanouts else None,
            "median_ms": round(statistics.median(fanouts), 2) if fanouts else None,
            "first_ms": round(statistics.median(firsts), 2) if firsts else None,
            "rounds_ms": [round(f, 2) for f in fanouts],
            "received": target.received,
            "cpu_us_per_recipient": round(min(map(sum, target.cpus)) / settings.connections * 1e6, 1),
            # the mean over the rounds: /proc counts CPU in 10 ms ticks, 5 µs a recipient at 2,000
            "cpu_user_us_per_recipient": _per_recipient([user for user, _ in target.cpus], settings),
            "cpu_system_us_per_recipient": _per_recipient([system for _, system in target.cpus], settings),
        }
        target.result["gc_fanout"] = target.server.get("stats")["gc"]


def _per_recipient(seconds: list[float], settings: Settings) -> float:
    return round(statistics.mean(seconds) / settings.connections * 1e6, 1)


def _fan_out_round(target: Measured, profiled: bool) -> None:
    server, clients = target.server, target.clients
    if profiled:
        server.get("profile", action="start")
    clients.all({"cmd": "arm"})
    user0, system0 = server.cpu_split()
    published = server.get("publish")
    answers = clients.all({"cmd": "pushed", "timeout": 60.0})
    user1, system1 = server.cpu_split()
    target.cpus.append((user1 - user0, system1 - system0))
    if profiled:
        target.result["fanout_profile"] = server.get("profile", action="stop")["text"]
    got = sum(a["received"] for a in answers)
    target.received.append(got)
    if got:
        target.fanouts.append((max(a["last"] for a in answers if a["received"]) - published["t0"]) * 1e3)
        target.firsts.append((min(a["first"] for a in answers if a["received"]) - published["t0"]) * 1e3)


# -- report -----------------------------------------------------------------------------------


ROWS: list[tuple[str, str]] = [
    ("memory per idle connection (KiB)", "kib_per_connection"),
    ("asyncio tasks per idle connection", "tasks_per_connection"),
    ("GC-tracked objects per connection", "gc_objects_per_connection"),
    ("  of them left to the collector (not frozen)", "gc_unfrozen_objects_per_connection"),
    ("forced full collection, wall / CPU (ms)", "full_collection"),
    ("longest GC pause under load, wall / CPU (ms)", "gc_longest"),
    ("sequential round trip p50 / p95 (ms)", "sequential"),
    ("server CPU per action (ms)", "cpu_ms_per_action"),
    ("rate round trip p50 / p95 / p99 (ms)", "rate"),
    ("burst round trip p50 / p95 / max (ms)", "burst"),
    ("  server CPU per action of the bursts (µs)", "burst_cpu"),
    ("fan-out to all, best / median (ms)", "fanout"),
    ("server CPU per fan-out recipient (µs)", "fanout_cpu"),
    ("  of it user / system (kernel), mean of the rounds (µs)", "fanout_cpu_split"),
    ("opened / open time (s)", "opened"),
]


def cell(result: dict[str, Any] | None, key: str) -> str:
    if result is None:
        return ""
    if key == "gc_longest":
        phases = [k for k in ("gc_under_load", "gc_fanout") if k in result]
        if not phases:
            return ""
        wall = max(max(result[k]["longest_ms"]) for k in phases)
        cpu = max(max(result[k]["longest_cpu_ms"]) for k in phases)
        return f"{wall:.1f} / {cpu:.1f}"
    if key == "full_collection":
        return f"{result['full_collection_ms']:.0f} / {result['full_collection_cpu_ms']:.0f}"
    if key == "fanout_cpu":
        f = result.get("fanout")
        return f"{f['cpu_us_per_recipient']:.1f}" if f else ""
    if key == "burst_cpu":
        b = result.get("burst")
        return f"{b['server_cpu_us_per_action']:.1f}" if b and "server_cpu_us_per_action" in b else ""
    if key == "fanout_cpu_split":
        f = result.get("fanout")
        if not f or "cpu_user_us_per_recipient" not in f:
            return ""
        return f"{f['cpu_user_us_per_recipient']:.1f} / {f['cpu_system_us_per_recipient']:.1f}"
    if key in ("sequential", "rate", "burst"):
        p = result.get(key)
        if not p or not p.get("n"):
            return ""
        third = "" if key == "sequential" else f" / {p['p99' if key == 'rate' else 'max']:.2f}"
        return f"{p['p50']:.2f} / {p['p95']:.2f}{third}"
    if key == "fanout":
        f = result.get("fanout")
        return f"{f['best_ms']:.1f} / {f['median_ms']:.1f}" if f and f["best_ms"] is not None else ""
    if key == "opened":
        return f"{result['opened']} / {result['open_seconds']}"
    value = result.get(key)
    return "" if value is None else f"{value}"


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> str:
    """a / b for the figures where one number stands for the row."""
    if a is None or b is None:
        return ""

    def figure(r: dict[str, Any]) -> float | None:
        found: Any = None
        if key == "fanout":  # the gate's figure
            found = r.get("fanout", {}).get("median_ms")
        elif key in ("rate", "burst", "sequential"):
            found = r.get(key, {}).get("p95")
        elif key == "fanout_cpu":
            found = r.get("fanout", {}).get("cpu_us_per_recipient")
        elif key == "burst_cpu":
            found = r.get("burst", {}).get("server_cpu_us_per_action")
        if found is not None:
            return float(found)
        if key == "full_collection":
            return r.get("full_collection_cpu_ms")
        if key == "gc_longest" or key == "opened":
            return None
        value = r.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    x, y = figure(a), figure(b)
    return f"{x / y:.2f}x" if x is not None and y else ""


def table(results: list[dict[str, Any]]) -> str:
    by = {r["target"]: r for r in results}
    names = [t for t in TARGETS if t in by]
    lt, floor, pv = by.get("livetemplate"), by.get("floor"), by.get("pyview")
    n = results[0]["connections"]
    head = f"| N = {n:,} | " + " | ".join(names) + " | livetemplate ÷ floor | pyview ÷ livetemplate |"
    lines = [head, "|---" * (len(names) + 3) + "|"]
    for label, key in ROWS:
        cells = [cell(by[t], key) for t in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio(lt, floor, key)} | {ratio(pv, lt, key)} |")
    loads = " ".join(f"{r['target']} {r['load_before']:.1f}->{r['load_after']:.1f}" for r in results)
    return "\n".join(lines) + f"\n\nload average (1 min) before->after: {loads}"


# -- gates --------------------------------------------------------------------------------------

GATES: list[tuple[str, str, float, float]] = [
    # name, key, floor to pass (M3), goal
    ("memory per idle connection (KiB)", "kib_per_connection", 30.0, 12.0),
    ("asyncio tasks per idle connection", "tasks_per_connection", 1.0, 0.5),
    ("action p95 at 1,000 connections acting once a second (ms)", "rate_p95", 20.0, 5.0),
    ("fan-out to N ÷ raw floor, same run, median rounds", "fanout_ratio", 3.0, 1.5),
]
REPORTED: list[tuple[str, str, float]] = [
    ("fan-out to N ÷ raw floor, best rounds", "fanout_best_ratio", 1.5),
    ("GC-tracked objects per connection", "gc_objects_per_connection", 20.0),
    ("longest GC pause under load (ms; goal at 10,000)", "gc_longest", 20.0),
]


def gate(results: list[dict[str, Any]], advisory: Collection[str] = ()) -> tuple[bool, str]:
    """Whether the run passes the gates (an ``advisory`` one, by key, is reported but does
    not count), and the table that says so."""
    by = {r["target"]: r for r in results}
    lt, floor = by["livetemplate"], by["floor"]
    figures = {
        "kib_per_connection": lt["kib_per_connection"],
        "tasks_per_connection": lt["tasks_per_connection"],
        "rate_p95": lt["rate"]["p95"],
        # the medians, not the best rounds: a round differs from the one before by 10-20% of
        # the median, and between runs of the same code the ratio of the best of 30 rounds
        # read 2.2-3.5x, that of the medians 2.2-2.6x (docs/performance.md)
        "fanout_ratio": lt["fanout"]["median_ms"] / floor["fanout"]["median_ms"],
        "fanout_best_ratio": lt["fanout"]["best_ms"] / floor["fanout"]["best_ms"],
        "gc_objects_per_connection": lt["gc_objects_per_connection"],
        "gc_longest": max(max(lt[k]["longest_ms"]) for k in ("gc_under_load", "gc_fanout")),
    }
    lines = ["| gate | measured | floor to pass | goal | |", "|---|---:|---:|---:|---|"]
    passed = True
    for label, key, limit, goal in GATES:
        ok = figures[key] <= limit
        passed &= ok or key in advisory
        met = "goal met" if figures[key] <= goal else ""
        verdict = "PASS" if ok else "FAIL (advisory)" if key in advisory else "FAIL"
        lines.append(f"| {label} | {figures[key]:.2f} | <= {limit:g} | {goal:g} | {verdict} {met} |")
    for label, key, goal in REPORTED:
        met = "goal met" if figures[key] <= goal else "reported"
        lines.append(f"| {label} | {figures[key]:.2f} | | {goal:g} | {met} |")
    if lt["opened"] < lt["connections"]:
        passed = False
        lines.append(f"| connections opened | {lt['opened']} | {lt['connections']} | | FAIL |")
    return passed, "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[2000])
    parser.add_argument("--targets", nargs="+", default=["livetemplate", "floor", "pyview", "pyview-deflate"])
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--rate-connections", type=int, default=1000)
    parser.add_argument("--rate-per-second", type=float, default=1.0, help="actions per second per acting connection")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--fanout-rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=0, help="client processes (default: one per 5,000, >= 2)")
    parser.add_argument("--tracemalloc", action="store_true", help="per-connection allocation breakdown (slow)")
    parser.add_argument("--profile", action="store_true", help="cProfile the server during the last fan-out")
    parser.add_argument("--idle-only", action="store_true", help="only the idle figures (memory, tasks, GC objects)")
    parser.add_argument("--logs", default=".load-logs", help="server and client stderr go here")
    parser.add_argument(
        "--quick", action="store_true", help="the gate's run: 2,000 connections, livetemplate and floor"
    )
    parser.add_argument("--gate", action="store_true", help="exit 1 when a gate fails")
    parser.add_argument(
        "--advisory",
        nargs="+",
        default=[],
        choices=[key for _, key, _, _ in GATES],
        help="gates reported but not counted for the exit status",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.targets, args.rate_seconds = [2000], ["livetemplate", "floor"], 6.0
        args.rate_connections, args.rate_per_second = 1000, 1.0  # the gate's definition
        # the gate compares the median rounds: a round's time differs from the one before by
        # 10-20% on this machine, so five rounds left even the median to chance
        args.fanout_rounds = max(args.fanout_rounds, 20)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    os.makedirs(args.logs, exist_ok=True)
    everything: list[dict[str, Any]] = []
    passed = True
    for n in args.connections:
        settings = Settings(
            n,
            rate_connections=args.rate_connections,
            rate_per_second=args.rate_per_second,
            rate_seconds=args.rate_seconds,
            burst=args.burst,
            fanout_rounds=args.fanout_rounds,
            tracemalloc=args.tracemalloc,
            profile=args.profile,
            idle_only=args.idle_only,
            clients=args.clients,
        )
        measured: list[Measured] = []
        try:
            for name in args.targets:
                print(f"-- {name}, {n:,} connections (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                measured.append(measure(TARGETS[name], settings, args.logs))
                if not measured[-1].loaded:  # idle figures only: no fan-out to wait for
                    measured[-1].close()
            print(f"-- fan-out, the targets in turn (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
            fan_out(measured, settings)
        finally:
            for target in measured:
                target.result["load_after"] = os.getloadavg()[0]
                target.close()
        results = [target.result for target in measured]
        everything += results
        print(table(results), flush=True)
        if args.gate or args.quick:
            ok, text = gate(results, args.advisory)
            passed &= ok
            print("\n" + text + "\n", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"results": everything, "python": sys.version, "cpus": os.cpu_count()}, f, indent=1)
    return 0 if passed or not args.gate else 1
