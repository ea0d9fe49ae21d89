"""Three idioms of a broadcast recipient's run, each timed beside what it replaced, in the
same run (best of five repeats; ns an operation and the ratio):

- ``async with`` of a free :class:`~livetemplate.primitives.Lock`, whose ``__aenter__`` gives
  a done future, against the same lock giving a generator-based awaitable;
- the open phase read from a module name, against the enum member read through its class;
- a state's persisted fields dumped with ``StateSpec.dump`` (one ``attrgetter``), against a
  comprehension of ``getattr`` calls.

    python -m benchmarks.idioms
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Annotated

import msgspec

from livetemplate import Persist
from livetemplate.primitives import Lock
from livetemplate.session import _OPEN, Phase
from livetemplate.state import StateSpec

N = 200_000


class _Ready:
    """A generator-based awaitable that is done at once (what a free lock gave before)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


_READY = _Ready()


class GeneratorLock(Lock):
    """The same lock as it was, its ``__aenter__`` and ``__aexit__`` giving the generator
    awaitable (taken here only while free: nothing else runs)."""

    __slots__ = ()

    def __aenter__(self) -> Awaitable[None]:
        self._held = True
        return _READY

    def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> Awaitable[None]:
        self.release()
        return _READY


async def _locks(lock: Lock) -> float:
    started = asyncio.get_running_loop().time()
    for _ in range(N):
        async with lock:
            pass
    return (asyncio.get_running_loop().time() - started) / N


class Counter(msgspec.Struct):
    count: Annotated[int, Persist] = 0
    filter: str = "all"


def _best(operation: Callable[[], object]) -> float:
    """Seconds an operation, the best of five repeats."""
    return min(timeit.repeat(operation, number=N, repeat=5)) / N


def measure() -> list[tuple[str, float, float]]:
    """(idiom, ns with it, ns with what it replaced), each pair measured in turn."""
    lock_now = min(asyncio.run(_locks(Lock())) for _ in range(5))
    lock_before = min(asyncio.run(_locks(GeneratorLock())) for _ in range(5))
    phase = Phase.OPEN
    enum_now = _best(lambda: phase is _OPEN)
    enum_before = _best(lambda: phase is Phase.OPEN)
    spec = StateSpec(Counter())
    state = Counter(3)
    saved = spec._saved
    assert saved is not None
    encode = msgspec.msgpack.Encoder().encode
    dump_now = _best(lambda: spec.dump(state))
    dump_before = _best(lambda: encode(saved(*[getattr(state, name) for name in spec.persisted])))
    return [
        ("async with a free lock", lock_now * 1e9, lock_before * 1e9),
        ("the open phase read", enum_now * 1e9, enum_before * 1e9),
        ("persisted fields dumped", dump_now * 1e9, dump_before * 1e9),
    ]


def main() -> None:
    print("| idiom | now (ns) | before (ns) | before ÷ now |")
    print("|---|---:|---:|---:|")
    for name, now, before in measure():
        print(f"| {name} | {now:.0f} | {before:.0f} | {before / now:.2f}x |")


if __name__ == "__main__":
    main()
