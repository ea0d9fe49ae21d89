"""The app's health and metrics routes: liveness, readiness (store, broadcaster, registered
checks, draining), the report, Prometheus text."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, Persist
from livetemplate.testing import LiveClient

pytestmark = pytest.mark.anyio


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0


class Counter:
    def increment(self, state: State, ctx: Context) -> State:
        state.count += 1
        return state


def make(**options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(Counter(), State(), template="<p>{{ count }}</p>", **options)


async def test_live_ready_and_report() -> None:
    app = make()
    async with LiveClient(app) as client, client.connect("/"):
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        report = await client.get("/health")
        assert live.status_code == 200 and live.json()["status"] == "healthy"
        assert ready.status_code == 200
        assert set(ready.json()["checks"]) == {"session_store"}  # the in-process broadcaster has no ping
        body = report.json()
        assert body["active_connections"] == 1 and body["active_groups"] == 1
        assert report.headers["content-type"] == "application/json"
        assert (await client.post("/health/live")).status_code == 405
        assert (await client.head("/health/ready")).content == b""


async def test_a_failing_check_makes_the_app_unready_but_alive() -> None:
    app = make()
    healthy = True

    async def database() -> dict[str, int]:
        if not healthy:
            raise ConnectionError("database at 10.0.0.5:5432 refused the connection")
        return {"open_connections": 3}

    app.register_check("database", database, timeout=0.5)
    async with LiveClient(app) as client:
        assert (await client.get("/health")).json()["checks"]["database"]["open_connections"] == 3
        healthy = False
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert "refused the connection" in ready.json()["checks"]["database"]["error"]
        assert (await client.get("/health/live")).status_code == 200


async def test_draining_makes_the_app_unready_at_once() -> None:
    app = make(shutdown_timeout=1)
    async with LiveClient(app, shutdown=False) as client:
        assert (await client.get("/health/ready")).status_code == 200
        await app.drain()
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert (await client.get("/health/live")).status_code == 200
    await app.shutdown()


async def test_health_paths_are_configurable_or_off() -> None:
    async with LiveClient(make(health_path="/_status")) as client:
        assert (await client.get("/_status/live")).status_code == 200
        assert (await client.get("/health/live")).status_code == 404
    async with LiveClient(make(health_path=None, metrics_enabled=False)) as client:
        assert (await client.get("/health/live")).status_code == 404
        assert (await client.get("/metrics")).status_code == 404


async def test_metrics_after_some_traffic() -> None:
    app = make(max_connections=100)
    async with LiveClient(app) as client, client.connect("/") as ws:
        await ws.action("increment")
        await ws.action("nope")
        await asyncio.sleep(0)
        text = (await client.get("/metrics")).text
    for line in (
        "livetemplate_connections_active 1.0",
        "livetemplate_connections_max 100.0",
        "livetemplate_actions_processed_total 2.0",
        'livetemplate_errors_total{kind="unknown_action"} 1.0',
        "livetemplate_full_tree_sends_total 1.0",
        "livetemplate_dynamics_only_sends_total 2.0",
        "livetemplate_action_duration_seconds_count 2.0",
        "livetemplate_groups_active 1.0",
    ):
        assert line in text, line
    assert "process_resident_memory_bytes" in text
