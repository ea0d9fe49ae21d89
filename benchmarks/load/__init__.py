"""The load harness: a server process (this project's counter app, pyview-web's, or a bare
asyncio floor) and client processes that open N WebSocket connections the way the official
client does, then measure memory, GC, tasks, round trips, bursts and fan-out.

    python -m benchmarks.load --connections 2000 --json out.json

See ``docs/performance.md`` for what is measured and how to read it.
"""
