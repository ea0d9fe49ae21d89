"""What one recipient of a broadcast costs the server, in process, with its writes discarded:
the load harness's counter app, each tab its own session group subscribed to its topic.

    python -m benchmarks.recipient                  # µs a recipient: best and median of the rounds
    python -m benchmarks.recipient --instructions   # instructions a recipient (needs valgrind)

Timings of this kind move by a fifth from run to run on a shared machine; the instruction
count does not (the hash seed is fixed): it is the count of a process that makes five
broadcasts less that of one that makes one, over four broadcasts' recipients. Run it on two
checkouts to compare them (``PYTHONPATH`` or the working directory picks the code).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time

import uvloop

import livetemplate
from benchmarks.callgrind import CALLGRIND, collected, counted_environment
from benchmarks.load.apps import TOPIC, create_app
from benchmarks.tabs import broadcast, open_tabs

#: Broadcasts made before any is measured (the first renders, the shared trees).
WARM_UP = 3


async def time_broadcasts(app: livetemplate.LiveApp, tabs: int, rounds: int) -> list[float]:
    """Open ``tabs`` tabs of ``app``, freeze the heap as a server does once they are open, and
    time ``rounds`` broadcasts after the warm-up; seconds each."""
    await open_tabs(app, tabs)
    gc.collect()
    gc.freeze()
    for _ in range(WARM_UP):
        await broadcast(app, TOPIC, "increment", {})
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await broadcast(app, TOPIC, "increment", {})
        times.append(time.perf_counter() - started)
    return times


def _instructions(tabs: int, rounds: int) -> int:
    """Instructions (callgrind's count) of a process opening ``tabs`` tabs and making the
    warm-up and ``rounds`` broadcasts."""
    command = [sys.executable, "-m", "benchmarks.recipient", "--tabs", str(tabs), "--rounds", str(rounds), "--quiet"]
    done = subprocess.run([*CALLGRIND, *command], capture_output=True, text=True, check=True, env=counted_environment())
    return collected(done.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", type=int, default=None, help="default: 2,000 timed, 400 counted")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # callgrind's inner run
    args = parser.parse_args(argv)
    if args.instructions:
        tabs = args.tabs or 400
        one, five = _instructions(tabs, 1), _instructions(tabs, 5)
        print(f"{(five - one) / (4 * tabs):,.0f} instructions a recipient ({tabs:,} tabs)")
        return
    tabs = args.tabs or 2000
    times = uvloop.run(time_broadcasts(create_app(), tabs, args.rounds))
    if not args.quiet:
        best, median = min(times) / tabs * 1e6, statistics.median(times) / tabs * 1e6
        print(f"{best:.2f} µs a recipient at best, {median:.2f} median ({tabs:,} tabs, {args.rounds} broadcasts)")


if __name__ == "__main__":
    main()
