"""The capacity planner reproduces the scaling guide's worked examples and tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from livetemplate.cli import main
from livetemplate.cli.capacity import (
    GB,
    KB,
    MB,
    Inputs,
    format_size,
    format_table,
    measured_memory_per_connection,
    parse_size,
    plan,
)


def test_the_formula_example() -> None:
    """10,000 connections x 50 KB = 500 MB, + 4 GB overhead, + 30% spike = 5.85 GB."""
    result = plan(Inputs(connections=10_000, memory_per_connection=50 * KB))
    assert result.connection_memory == pytest.approx(500 * MB)
    assert result.application_memory == pytest.approx(5.85 * GB)
    assert format_size(result.application_memory) == "5.85 GB"
    assert result.instances == 1


@pytest.mark.parametrize(
    ("connections", "conservative", "realistic", "seed_instances", "planned"),
    [
        # the guide's "Example Calculations" (16 GB instances); planned = (at 50 KB, at 200 KB)
        (1_000, 200 * MB, 50 * MB, (1, 1), (1, 1)),
        (10_000, 2 * GB, 500 * MB, (1, 1), (1, 1)),
        (50_000, 10 * GB, 2.5 * GB, (1, 2), (1, 2)),
        (100_000, 20 * GB, 5 * GB, (2, 4), (1, 4)),
        (1_000_000, 200 * GB, 50 * GB, (10, 20), (9, 35)),
    ],
)
def test_the_instances_table(
    connections: int,
    conservative: float,
    realistic: float,
    seed_instances: tuple[int, int],
    planned: tuple[int, int],
) -> None:
    """The memory columns exactly; the instances between the realistic (50 KB) and the
    conservative (200 KB) plan. The guide's own ranges cannot all come from one formula (10x
    the connections of its 100,000 row get 5x the instances), so the planner follows its
    formula with the guide's 80% memory ceiling, and each of the guide's ranges lies within
    the planner's."""

    def at(memory: float) -> int:
        inputs = Inputs(connections=connections, memory_per_connection=memory, max_connections_per_instance=None)
        result = plan(inputs)
        assert result.connection_memory == pytest.approx(connections * memory)
        return result.instances

    assert plan(Inputs(connections=connections, memory_per_connection=200 * KB)).connection_memory == pytest.approx(
        conservative
    )
    assert plan(Inputs(connections=connections, memory_per_connection=50 * KB)).connection_memory == pytest.approx(
        realistic
    )
    low, high = at(50 * KB), at(200 * KB)
    assert (low, high) == planned
    assert low <= seed_instances[0] <= seed_instances[1] <= high


def test_the_e_commerce_scenario() -> None:
    """50,000 users: 2.5 GB of connections + 4 GB + ~2 GB spike = 8.5 GB; 5 instances of 16 GB
    at 10,000 connections each; Redis 50,000 x 30 KB x 1.2 = 1.8 GB + 100 MB; Sentinel on 3
    nodes of 4 GB; 5 x $50 + 3 x $30 + $40 + $100 (database) = $480 a month."""
    result = plan(
        Inputs(
            connections=50_000,
            memory_per_connection=50 * KB,
            max_connections_per_instance=10_000,
            state_size=30 * KB,
            other_monthly=100,
        )
    )
    assert result.connection_memory == pytest.approx(2.5 * GB)
    assert result.application_memory == pytest.approx(8.5 * GB, abs=0.06 * GB)  # the guide rounds 1.95 GB to 2
    assert result.instances == 5
    assert result.connections_per_instance == 10_000
    assert result.redis.data == pytest.approx(1.8 * GB)
    assert result.redis.overhead == pytest.approx(100 * MB)
    assert result.redis.mode == "sentinel"
    assert result.redis.nodes == 3
    assert result.redis.node_ram == 4 * GB
    assert result.redis.cluster_recommended is False
    assert result.cost == {"instances": 250, "redis": 90, "load_balancer": 40, "other": 100, "total": 480}
    assert result.configuration["LIVETEMPLATE_MAX_CONNECTIONS"] == "10000"
    assert result.configuration["LIVETEMPLATE_BACKEND"].startswith("redis+sentinel://")
    assert "LIVETEMPLATE_SECRET_KEY" in result.configuration


@pytest.mark.parametrize(
    ("sessions", "state", "no_ha", "sentinel"),
    [
        # the guide's Redis table: (sessions x state x 1.2) + overhead, and the Sentinel column
        (1_000, 5 * KB, 56 * MB, 156 * MB),
        (10_000, 10 * KB, 170 * MB, 270 * MB),
        (100_000, 20 * KB, 2.5 * GB, 3.5 * GB),
        (1_000_000, 30 * KB, 36.5 * GB, 37.5 * GB),
    ],
)
def test_the_redis_table(sessions: int, state: float, no_ha: float, sentinel: float) -> None:
    result = plan(Inputs(connections=sessions, sessions=sessions, state_size=state, redis="sentinel")).redis
    assert result.memory == pytest.approx(no_ha)
    assert result.memory_per_node == pytest.approx(sentinel)
    assert result.nodes == 3
    assert result.memory_with_replicas == pytest.approx(3 * sentinel)
    standalone = plan(Inputs(connections=sessions, sessions=sessions, state_size=state, redis="standalone")).redis
    assert standalone.memory_per_node == pytest.approx(no_ha)
    assert standalone.nodes == 1


@pytest.mark.parametrize(("ttl", "data"), [(24, 2.4 * GB), (6, 600 * MB), (1, 100 * MB)])
def test_the_ttl_example(ttl: float, data: float) -> None:
    """100K sessions x 20 KB at a 24 h TTL; a quarter at 6 h; 1/24 at 1 h (the guide rounds
    4,167 sessions to 4K: 96 MB)."""
    inputs = Inputs(connections=1_000, state_size=20 * KB, ttl_hours=ttl, new_sessions_per_hour=100_000 / 24)
    assert plan(inputs).redis.data == pytest.approx(data, rel=0.001)


def test_redis_cluster_past_100k_sessions_or_a_node() -> None:
    many = plan(Inputs(connections=200_000, memory_per_connection=30 * KB)).redis
    assert many.mode == "cluster" and many.cluster_recommended
    assert many.masters >= 3 and many.nodes == many.masters * 3
    assert "100,000" in many.cluster_reason
    big = plan(Inputs(connections=50_000, state_size=300 * KB, redis_node_ram=8 * GB)).redis
    assert big.cluster_recommended and "outgrows" in big.cluster_reason
    small = plan(Inputs(connections=500)).redis
    assert small.mode == "none" and small.nodes == 0 and not small.cluster_recommended


def test_tiers_and_single_instance_configuration() -> None:
    assert [plan(Inputs(connections=n)).tier for n in (500, 5_000, 50_000, 500_000)] == [1, 2, 3, 4]
    single = plan(Inputs(connections=500))
    assert single.configuration == {"LIVETEMPLATE_MAX_CONNECTIONS": "10000", "LIVETEMPLATE_BACKEND": "memory://"}
    assert single.cost["load_balancer"] == 0


def test_impossible_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        plan(Inputs(connections=10, overhead=16 * GB))
    with pytest.raises(ValueError, match="connections"):
        Inputs(connections=0)
    with pytest.raises(ValueError, match="max memory use"):
        Inputs(connections=1, max_memory_use=1.5)
    with pytest.raises(ValueError, match="redis"):
        Inputs(connections=1, redis="etcd")  # type: ignore[arg-type]


def test_sizes() -> None:
    assert parse_size("50KB", KB) == 50_000
    assert parse_size("50", KB) == 50_000
    assert parse_size("16 GB", GB) == 16 * GB
    assert parse_size("1.5GiB", GB) == 1.5 * (1 << 30)
    assert parse_size("512", 1) == 512
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots", KB)
    assert [format_size(x) for x in (999, 56 * MB, 2.5 * GB, 1_500 * GB)] == ["999 B", "56 MB", "2.5 GB", "1.5 TB"]


def test_the_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "10,000", "--memory-per-connection", "50KB"]) == 0
    out = capsys.readouterr().out
    assert "memory, all on one instance    5.85 GB  (10,000 x 50 KB + 4 GB) x 1.3" in out
    assert "LIVETEMPLATE_MAX_CONNECTIONS=10000" in out


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["capacity", "50000", "--memory-per-connection", "50KB", "--state-size", "30KB", "--other", "100"]
    assert main([*args, "--format", "json", "--spike", "30%"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["instances"] == 5
    assert result["cost"]["total"] == 480
    assert result["redis"]["mode"] == "sentinel"
    assert result["inputs"]["memory_per_connection"] == 50_000


def test_the_command_explains_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="does not fit"):
        main(["capacity", "10", "--overhead", "20GB"])
    with pytest.raises(SystemExit) as exit_info:
        main(["capacity", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_memory_per_connection_defaults_to_what_bench_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "load.json"
    monkeypatch.setenv("LIVETEMPLATE_BENCH_RESULTS", str(results))
    assert measured_memory_per_connection() is None  # nothing measured yet
    main(["capacity", "1000", "--format", "json"])
    assert json.loads(capsys.readouterr().out)["inputs"]["memory_per_connection"] == 30_000
    results.write_text(json.dumps({"memory_per_connection_bytes": 12_345}))
    main(["capacity", "1000", "--format", "json"])
    inputs = json.loads(capsys.readouterr().out)["inputs"]
    assert inputs["memory_per_connection"] == 12_345
    assert "measured by livetemplate bench" in inputs["memory_source"]


def test_the_table_for_each_redis_setup() -> None:
    cluster = format_table(plan(Inputs(connections=300_000, sessions=300_000, redis="cluster")))
    assert "Redis  (cluster)" in cluster and "masters x (1 + 2 replicas)" in cluster
    assert "its share of the data + 1 GB replication buffers" in cluster
    assert "move to Redis Cluster          yes" in cluster
    assert "LIVETEMPLATE_BACKEND=redis+cluster://" in cluster
    standalone = format_table(plan(Inputs(connections=2_000, redis="standalone", new_sessions_per_hour=500)))
    assert "one server" in standalone and "500 new per hour x 24 h TTL" in standalone
    assert "12,000" in standalone  # 500 an hour for 24 hours
    sentinel = format_table(plan(Inputs(connections=20_000, sessions=5_000, other_monthly=10)))
    assert re.search(r"stored sessions +5,000 +given", sentinel)
    assert "Sentinel beside each" in sentinel and "other" in sentinel


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instance_ram": 0}, "instance ram must be positive"),
        ({"spike": -0.1}, "spike must not be negative"),
        ({"max_connections_per_instance": 0}, "at least 1"),
    ],
)
def test_inputs_are_checked(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Inputs(connections=10, **change)  # type: ignore[arg-type]


def test_percentages_and_limits_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--spike", "lots"], ["--max-connections-per-instance", "-1"]):
        with pytest.raises(SystemExit):
            main(["capacity", "100", *bad])
    err = capsys.readouterr().err
    assert "not a percentage: 'lots'" in err and "must be 0 (no limit) or more" in err
    assert main(["capacity", "100", "--spike", "0.2", "--max-memory-use", "75", "--format", "json"]) == 0
    inputs = json.loads(capsys.readouterr().out)["inputs"]
    assert (inputs["spike"], inputs["max_memory_use"]) == (0.2, 0.75)


def test_a_useless_measurement_is_ignored(tmp_path: Path) -> None:
    results = tmp_path / "load.json"
    results.write_text(json.dumps({"memory_per_connection_bytes": 0}))
    assert measured_memory_per_connection({"LIVETEMPLATE_BENCH_RESULTS": str(results)}) is None
