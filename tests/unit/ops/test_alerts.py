"""The Prometheus files in deploy/prometheus: valid YAML of the expected shape, and every metric
an alert uses is one the app exports (names read from the registries, not written here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine

from livetemplate.ops.database import DatabaseCheck
from livetemplate.ops.health import HealthChecks
from livetemplate.ops.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
OURS = re.compile(r"\b((?:livetemplate|db)_[a-z0-9_]+)\b")
# Metrics from elsewhere, by the scrape job that collects them (see prometheus.yml): ``up`` is
# Prometheus' own; process_resident_memory_bytes comes from prometheus-client's process
# collector, on the app's job once its registry carries one.
EXTERNAL = {"up": None, "redis_connected_clients": "redis", "process_resident_memory_bytes": "livetemplate"}
PROMQL_KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def _load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load("alerts.yml")["groups"] for rule in group["rules"]]


def _series(registry: CollectorRegistry) -> set[str]:
    """The series names a registry exposes, from its families' names and types."""
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


@pytest.fixture
async def exported() -> set[str]:
    """Everything /metrics can expose: the app's metrics, the health checks' and a database
    check's gauges (neither pool below connects: constructing them opens nothing; asyncpg's
    takes the running event loop)."""
    registry = CollectorRegistry()
    HealthChecks(registry=registry)
    DatabaseCheck(asyncpg.create_pool("postgresql://localhost/unused"), registry=registry)
    other = CollectorRegistry()
    DatabaseCheck(create_async_engine("postgresql+asyncpg://localhost/unused"), registry=other)
    return _series(Metrics().registry) | _series(registry) | _series(other)


def test_every_file_is_yaml_of_the_expected_shape() -> None:
    files = sorted(DEPLOY.glob("*.yml"))
    assert [path.name for path in files] == ["alerts.yml", "prometheus.yml"]
    for path in files:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_the_seed_rules_are_all_there() -> None:
    expressions = " ".join(rule["expr"] for rule in _rules())
    for metric in (
        "livetemplate_connections_active",
        "livetemplate_connections_rejected_total",
        "livetemplate_action_duration_seconds_bucket",
        "livetemplate_publishes_sent_total",
        "process_resident_memory_bytes",
        "redis_connected_clients",
        'up{job="database"}',
        "db_connections_in_use",
    ):
        assert metric in expressions


@pytest.mark.anyio
async def test_every_metric_of_ours_an_alert_uses_is_exported(exported: set[str]) -> None:
    used = {name for rule in _rules() for name in _metric_names(rule["expr"]) if OURS.fullmatch(name)}
    assert used, "no livetemplate_* or db_* metric found in alerts.yml"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def _metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers that are not functions, keywords, label
    matchers or grouping labels."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    return set(re.findall(r"\b[a-z_][a-z0-9_]*\b(?!\s*\()", expr)) - PROMQL_KEYWORDS


@pytest.mark.anyio
async def test_other_metrics_come_from_a_scraped_job(exported: set[str]) -> None:
    jobs = {job["job_name"] for job in _load("prometheus.yml")["scrape_configs"]}
    for rule in _rules():
        for name in _metric_names(rule["expr"]) - exported:
            assert name in EXTERNAL, f"{rule['alert']}: {name} is neither exported nor listed as external"
            assert EXTERNAL[name] is None or EXTERNAL[name] in jobs, name


def test_prometheus_scrapes_the_app_and_loads_the_rules() -> None:
    config = _load("prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    [app] = [job for job in config["scrape_configs"] if job["job_name"] == "livetemplate"]
    assert app["metrics_path"] == "/metrics"
    assert app["static_configs"][0]["targets"]
    assert {"database", "redis"} <= {job["job_name"] for job in config["scrape_configs"]}
