"""Instruments of the server process (the benchmark's, never the library's): GC pauses
through ``gc.callbacks``, GC-tracked objects by type, asyncio tasks, tracemalloc, answered
as JSON on ``/__bench__/...`` by a small ASGI wrapper (or by the floor server itself)."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

PREFIX = "/__bench__/"


class GcWatch:
    """The longest pause (and count and total) of the cyclic collector, per generation."""

    def __init__(self) -> None:
        self._started = self._cpu = 0.0
        self.forced = False
        self.reset()
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self.longest_cpu = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.total = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started, self._cpu = time.perf_counter(), time.thread_time()
            return
        if self.forced:
            return
        pause, cpu = time.perf_counter() - self._started, time.thread_time() - self._cpu
        generation = info["generation"]
        self.count[generation] += 1
        self.total += pause
        self.longest[generation] = max(self.longest[generation], pause)
        self.longest_cpu[generation] = max(self.longest_cpu[generation], cpu)

    def report(self) -> dict[str, Any]:
        return {
            "longest_ms": [round(x * 1e3, 3) for x in self.longest],  # wall: what clients wait
            "longest_cpu_ms": [round(x * 1e3, 3) for x in self.longest_cpu],  # the collector's own work
            "count": self.count,
            "total_ms": round(self.total * 1e3, 2),
            "thresholds": gc.get_threshold(),
        }


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Stats:
    """What ``/__bench__/...`` answers; ``publish`` starts a broadcast to every connection."""

    def __init__(self, connections: Callable[[], int], publish: Callable[[], Awaitable[None]]) -> None:
        self.gc = GcWatch()
        self.connections = connections
        self.publish = publish
        self._snapshot: tracemalloc.Snapshot | None = None
        self._types: Counter[str] = Counter()
        self._profile: cProfile.Profile | None = None
        self._marked: set[int] = set()

    async def answer(self, path: str, query: str) -> dict[str, Any]:
        name = path[len(PREFIX) :]
        args = {k: v[-1] for k, v in parse_qs(query).items()}
        if name == "stats":
            return self.stats(bool(args.get("objects")), args.get("types", ""))
        if name == "gc-reset":
            self.gc.reset()
            return {"reset": True}
        if name == "publish":
            started = time.monotonic()
            await self.publish()
            return {"t0": started, "call_ms": (time.monotonic() - started) * 1e3}
        if name == "tracemalloc":
            return self.tracemalloc(args.get("mark") == "1", int(args.get("top", "30")))
        if name == "owners":
            return self.owners(args.get("type", "list"), int(args.get("sample", "300")))
        if name == "profile":
            return self.profile(args.get("action", "start"), int(args.get("top", "25")))
        if name == "freeze":
            gc.collect()
            gc.freeze()
            return {"frozen": gc.get_freeze_count()}
        return {"error": f"unknown {name}"}

    def stats(self, objects: bool, types: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "pid": os.getpid(),
            "rss": rss_bytes(),
            "tasks": len(asyncio.all_tasks()) - 1,  # not this request's
            "connections": self.connections(),
            "gc": self.gc.report(),
        }
        if objects:  # a forced full collection: how long one takes with this heap, then a count
            self.gc.forced = True
            started, cpu = time.perf_counter(), time.thread_time()
            gc.collect()
            result["full_collection_ms"] = round((time.perf_counter() - started) * 1e3, 2)
            result["full_collection_cpu_ms"] = round((time.thread_time() - cpu) * 1e3, 2)
            self.gc.forced = False
            tracked = gc.get_objects()
            result["objects"] = len(tracked)
            result["frozen"] = gc.get_freeze_count()
            if types:  # "mark": remember the counts by type; "diff": the growth since the mark
                counts = Counter(type(o).__qualname__ for o in tracked)
                if types == "mark":
                    self._types = counts
                    self._marked = {id(o) for o in tracked}
                else:
                    growth = counts - self._types
                    result["types"] = dict(growth.most_common(40))
            del tracked
        return result

    def owners(self, kind: str, sample: int) -> dict[str, Any]:
        """Who holds the objects of type ``kind`` made since the mark: the referrer's type
        (through a ``__dict__``, the owner's type), over a sample."""
        found = [o for o in gc.get_objects() if type(o).__qualname__ == kind and id(o) not in self._marked]
        holders: Counter[str] = Counter()
        for obj in found[:: max(1, len(found) // sample)][:sample]:
            for ref in gc.get_referrers(obj):
                if ref is found:
                    continue
                name = type(ref).__qualname__
                if isinstance(ref, dict):
                    owners = [type(o).__qualname__ for o in gc.get_referrers(ref) if hasattr(o, "__dict__")]
                    name = f"dict of {owners[0]}" if owners else "dict"
                holders[name] += 1
        del found
        return {"holders": dict(holders.most_common(25))}

    def profile(self, action: str, top: int) -> dict[str, Any]:
        """cProfile of the event loop's thread between ``start`` and ``stop`` (top by own time)."""
        if action == "start":
            self._profile = cProfile.Profile()
            self._profile.enable()
            return {"profiling": True}
        profile, self._profile = self._profile, None
        if profile is None:
            return {"error": "not profiling"}
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
        return {"text": out.getvalue()}

    def tracemalloc(self, mark: bool, top: int) -> dict[str, Any]:
        if not tracemalloc.is_tracing():
            return {"error": "start the server with --tracemalloc"}
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        )
        if mark or self._snapshot is None:
            self._snapshot = snapshot
            return {"marked": True}
        diff = snapshot.compare_to(self._snapshot, "lineno")
        total = sum(d.size_diff for d in diff)
        rows = [
            {"where": str(d.traceback), "bytes": d.size_diff, "blocks": d.count_diff}
            for d in sorted(diff, key=lambda d: -d.size_diff)[:top]
        ]
        return {"total": total, "rows": rows}


def probe(app: Any, stats: Stats) -> Callable[..., Awaitable[None]]:
    """``app`` with ``/__bench__/...`` answered by ``stats``. A plain function that returns
    the app's own call, so that no frame of the probe stays in a connection's task (as a
    coroutine it held 264 bytes and a GC-tracked object a connection, for every target);
    uvicorn must be told the interface (``interface="asgi3"``), which it cannot tell from it."""

    async def answer(scope: dict[str, Any], send: Any) -> None:
        body = json.dumps(await stats.answer(scope["path"], scope["query_string"].decode())).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            return answer(scope, send)
        return app(scope, receive, send)  # type: ignore[no-any-return]

    return wrapped
