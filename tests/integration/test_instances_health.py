"""Readiness and liveness of an instance (a uvicorn process) whose Redis server stops and comes
back, with the session store's memory fallback on."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from tests.integration.conftest import eventually
from tests.integration.instances import Instance, Instances, Tab, new_session
from tests.integration.redis_servers import Standalone

pytestmark = pytest.mark.anyio

BOARD = "tests.integration.apps:board"

#: How soon readiness must report a stopped Redis (a functional deadline: a load balancer's
#: probe has to see it before it sends many more users there).
READY_DEADLINE = 2.0


async def status(instance: Instance, path: str) -> int:
    return (await instance.get(path)).status_code


async def test_readiness_follows_redis_while_liveness_and_actions_carry_on(
    launch: Callable[..., Instances], own_standalone: Standalone, prefix: str
) -> None:
    options = "retry_delay=0.05&max_retries=2&probe_interval=0.2&fallback_to_memory=true"
    site = launch(BOARD, backend=f"{own_standalone.url}?key_prefix={prefix}&channel_prefix={prefix}&{options}")
    a = await site.start()
    cookie = await new_session(a.url)
    tab = await Tab.open(a.url, cookie)
    assert (await tab.act("add", item="before"))["success"]
    assert await status(a, "/health/ready") == await status(a, "/health/live") == 200

    own_standalone.server.stop()
    stopped_at = time.monotonic()

    async def not_ready() -> bool:
        return await status(a, "/health/ready") == 503

    await eventually(not_ready, "readiness to report the outage", timeout=READY_DEADLINE)
    assert time.monotonic() - stopped_at < READY_DEADLINE
    assert await status(a, "/health/live") == 200
    assert (await tab.act("add", item="during"))["success"]  # served from memory meanwhile
    assert tab.items() == ["before", "during"]
    assert await a.metric("livetemplate_session_store_fallback") == 1
    assert await status(a, "/health/ready") == 503 and await status(a, "/health/live") == 200

    own_standalone.server.start()  # empty: the fixture's servers keep nothing on disk

    async def recovered() -> bool:
        fallback = await a.metric("livetemplate_session_store_fallback")
        return fallback == 0 and await status(a, "/health/ready") == 200

    await eventually(recovered, "readiness, and the end of the fallback, once Redis is back")
    assert (await tab.act("add", item="after"))["success"]
    assert tab.items() == ["before", "during", "after"]
    redis = Redis(port=own_standalone.server.port)
    try:
        stored = await redis.get(f"{prefix}board:{cookie.partition('.')[0]}")
    finally:
        await redis.aclose()
    assert isinstance(stored, bytes) and all(item in stored for item in (b"before", b"during", b"after"))
    assert a.process.poll() is None
    await tab.close()
