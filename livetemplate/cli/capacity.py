"""``livetemplate capacity``: the scaling guide's capacity planning as a calculator.

The formulas are the guide's (its "Capacity Planning" section), in its units (1 KB = 1,000
bytes):

- application memory = (connections x memory per connection + overhead) x (1 + spike buffer);
- instances: the fewest whose share of the connections fits in ``max_memory_use`` of their
  RAM by that formula, and no fewer than the connection limit per instance asks for;
- Redis memory = stored sessions x state size x 1.2 + Redis overhead, plus replication
  buffers on each node of a replicated setup (the guide's figures, :func:`redis_overhead`);
- Redis Cluster past 100,000 stored sessions (the guide's rule) or when the data outgrows
  one node;
- the monthly cost from the prices given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..options import Options
from ._help import HelpFormatter

__all__ = ["Inputs", "Plan", "format_size", "parse_size", "plan", "redis_overhead", "replication_overhead"]

KB = 1_000
MB = 1_000_000
GB = 1_000_000_000

#: Memory of one idle connection when nothing measured says otherwise: the guide's M3 target,
#: this project's floor (``docs/operations.md``).
DEFAULT_MEMORY_PER_CONNECTION = 30 * KB
#: Where ``livetemplate bench`` leaves its measurement (``memory_per_connection_bytes``).
BENCH_RESULTS = Path(".benchmarks") / "livetemplate-load.json"
BENCH_RESULTS_VARIABLE = "LIVETEMPLATE_BENCH_RESULTS"
#: The guide's rule: Redis Cluster rather than Sentinel past this many stored sessions.
CLUSTER_SESSIONS = 100_000
#: Keep Redis data under this share of a node's RAM (persistence forks need the rest).
REDIS_MAX_FILL = 0.75

RedisMode = Literal["auto", "none", "standalone", "sentinel", "cluster"]
REDIS_MODES: tuple[RedisMode, ...] = ("auto", "none", "standalone", "sentinel", "cluster")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": KB,
    "k": KB,
    "mb": MB,
    "m": MB,
    "gb": GB,
    "g": GB,
    "tb": 1_000 * GB,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*\Z")


def parse_size(text: str, default_unit: int) -> float:
    """Bytes in ``text``: ``50KB``, ``16 GB``, ``1.5GiB``, or a bare number of ``default_unit``."""
    match = _SIZE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (for example 50KB, 16GB, 1.5GiB)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return number * (_UNITS[unit] if unit else default_unit)


def format_size(size: float) -> str:
    """``size`` in the guide's decimal units, three significant figures at most."""
    for unit, scale in (("TB", 1_000 * GB), ("GB", GB), ("MB", MB), ("KB", KB)):
        if abs(size) >= scale:
            return f"{_figure(size / scale)} {unit}"
    return f"{_figure(size)} B"


def _figure(value: float) -> str:
    text = f"{value:.3g}" if value < 1_000 else f"{value:,.0f}"
    return text.replace("e+0", "e")


def redis_overhead(sessions: float) -> float:
    """Redis's own memory beside the sessions (process, keyspace, buffers): the guide's
    figures, 50 MB up to 10,000 sessions, 100 MB up to 100,000, 500 MB beyond."""
    if sessions <= 10_000:
        return 50 * MB
    if sessions <= 100_000:
        return 100 * MB
    return 500 * MB


def replication_overhead(sessions: float) -> float:
    """Extra memory on each node of a replicated Redis (replication backlog and buffers): the
    guide's Sentinel column, 100 MB up to 10,000 sessions, 1 GB beyond."""
    return 100 * MB if sessions <= 10_000 else GB


@dataclass(frozen=True)
class Inputs:
    """What the plan starts from; sizes in bytes, prices per month."""

    connections: int
    memory_per_connection: float = DEFAULT_MEMORY_PER_CONNECTION
    memory_source: str = "default (the 30 KB target)"
    overhead: float = 4 * GB
    spike: float = 0.30
    instance_ram: float = 16 * GB
    max_memory_use: float = 0.80
    max_connections_per_instance: int | None = Options.max_connections
    sessions: int | None = None
    sessions_per_connection: float = 1.0
    state_size: float = 20 * KB
    ttl_hours: float = 24.0
    new_sessions_per_hour: float | None = None
    redis: RedisMode = "auto"
    replicas: int = 2
    redis_node_ram: float = 16 * GB
    instance_price: float = 50.0
    redis_node_price: float = 30.0
    load_balancer_price: float = 40.0
    other_monthly: float = 0.0

    def __post_init__(self) -> None:
        if self.connections < 1:
            raise ValueError("connections must be at least 1")
        for name in ("memory_per_connection", "instance_ram", "state_size", "ttl_hours", "redis_node_ram"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be positive")
        for name in ("overhead", "spike", "sessions_per_connection", "replicas"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', ' ')} must not be negative")
        if not 0 < self.max_memory_use <= 1:
            raise ValueError("max memory use is a fraction of the RAM, above 0 and at most 1")
        if self.max_connections_per_instance is not None and self.max_connections_per_instance < 1:
            raise ValueError("max connections per instance must be at least 1")
        if self.redis not in REDIS_MODES:
            raise ValueError(f"redis is one of {', '.join(REDIS_MODES)}")


@dataclass(frozen=True)
class Redis:
    """The session store's part of the plan."""

    mode: Literal["none", "standalone", "sentinel", "cluster"]
    stored_sessions: int
    data: float  # sessions x state size x 1.2
    overhead: float
    memory: float  # data + overhead: one copy, no replicas
    replication: float  # per node, when replicated
    memory_per_node: float
    masters: int
    nodes: int
    memory_with_replicas: float  # every node added up
    node_ram: float  # the smallest power-of-two node that holds a node's share
    cluster_recommended: bool
    cluster_reason: str


@dataclass(frozen=True)
class Plan:
    """What the calculator found; every size in bytes, costs per month."""

    inputs: Inputs
    tier: int
    connection_memory: float  # connections x memory per connection
    application_memory: float  # the guide's formula, all connections on one instance
    instances_by_memory: int
    instances_by_connections: int
    instances: int
    connections_per_instance: int
    memory_per_instance: float
    connections_fitting_memory: int  # per instance, by the formula
    max_connections: int  # the per-instance limit to configure
    redis: Redis
    cost: dict[str, float] = field(default_factory=dict)
    configuration: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tier(connections: int) -> int:
    """The guide's tiers: under 1K, 1K-10K, 10K-100K, 100K and more."""
    return 1 if connections < 1_000 else 2 if connections < 10_000 else 3 if connections < 100_000 else 4


def plan(inputs: Inputs) -> Plan:
    """The capacity plan for ``inputs``."""
    i = inputs
    growth = 1 + i.spike
    room = i.instance_ram * i.max_memory_use / growth - i.overhead  # for connections, per instance
    if room <= 0:
        raise ValueError(
            f"the overhead ({format_size(i.overhead)}) with the spike buffer does not fit in "
            f"{i.max_memory_use:.0%} of {format_size(i.instance_ram)}: choose larger instances"
        )
    connection_memory = i.connections * i.memory_per_connection
    by_memory = max(1, math.ceil(connection_memory / room - 1e-9))
    cap = i.max_connections_per_instance
    by_connections = 1 if cap is None else max(1, math.ceil(i.connections / cap))
    instances = max(by_memory, by_connections)
    per_instance = math.ceil(i.connections / instances)
    fitting = int(room // i.memory_per_connection)
    redis = _redis(i, instances)
    return Plan(
        inputs=i,
        tier=_tier(i.connections),
        connection_memory=connection_memory,
        application_memory=(connection_memory + i.overhead) * growth,
        instances_by_memory=by_memory,
        instances_by_connections=by_connections,
        instances=instances,
        connections_per_instance=per_instance,
        memory_per_instance=(per_instance * i.memory_per_connection + i.overhead) * growth,
        connections_fitting_memory=fitting,
        max_connections=fitting if cap is None else min(fitting, cap),
        redis=redis,
        cost=_cost(i, instances, redis),
        configuration=_configuration(i, instances, redis, fitting if cap is None else min(fitting, cap)),
    )


def _redis(i: Inputs, instances: int) -> Redis:
    active = i.sessions if i.sessions is not None else math.ceil(i.connections * i.sessions_per_connection)
    stored = active
    if i.new_sessions_per_hour is not None:
        stored = max(active, math.ceil(i.new_sessions_per_hour * i.ttl_hours))
    data = stored * i.state_size * 1.2
    overhead = redis_overhead(stored)
    memory = data + overhead
    too_big = memory > i.redis_node_ram * REDIS_MAX_FILL
    if stored > CLUSTER_SESSIONS:
        reason = f"more than {CLUSTER_SESSIONS:,} stored sessions"
    elif too_big:
        reason = f"the data outgrows {REDIS_MAX_FILL:.0%} of one {format_size(i.redis_node_ram)} node"
    else:
        reason = ""
    mode: Literal["none", "standalone", "sentinel", "cluster"]
    if i.redis != "auto":
        mode = i.redis
    elif reason:
        mode = "cluster"
    else:
        mode = "sentinel" if instances > 1 else "none"
    replicated = mode in ("sentinel", "cluster") and i.replicas > 0
    replication = replication_overhead(stored) if replicated else 0.0
    if mode == "cluster":
        masters = max(3, math.ceil((memory + replication) / (i.redis_node_ram * REDIS_MAX_FILL)))
        per_node = data / masters + overhead + replication
    else:
        masters = 0 if mode == "none" else 1
        per_node = memory + replication
    nodes = masters * (1 + (i.replicas if mode in ("sentinel", "cluster") else 0))
    return Redis(
        mode=mode,
        stored_sessions=stored,
        data=data,
        overhead=overhead,
        memory=memory,
        replication=replication,
        memory_per_node=per_node,
        masters=masters,
        nodes=nodes,
        memory_with_replicas=per_node * nodes,
        node_ram=_node_size(per_node / REDIS_MAX_FILL) if nodes else 0.0,
        cluster_recommended=bool(reason),
        cluster_reason=reason,
    )


def _node_size(needed: float) -> float:
    """The smallest power-of-two GB node holding ``needed`` bytes (1 GB at least)."""
    size = GB
    while size < needed:
        size *= 2
    return float(size)


def _cost(i: Inputs, instances: int, redis: Redis) -> dict[str, float]:
    cost = {
        "instances": instances * i.instance_price,
        "redis": redis.nodes * i.redis_node_price,
        "load_balancer": i.load_balancer_price if instances > 1 else 0.0,
        "other": i.other_monthly,
    }
    cost["total"] = sum(cost.values())
    return cost


def _configuration(i: Inputs, instances: int, redis: Redis, max_connections: int) -> dict[str, str]:
    backend = {
        "none": "memory://",
        "standalone": "redis://redis:6379/0",
        "sentinel": "redis+sentinel://sentinel-0:26379,sentinel-1:26379,sentinel-2:26379/mymaster",
        "cluster": "redis+cluster://redis-0:6379,redis-1:6379,redis-2:6379",
    }[redis.mode]
    config = {"LIVETEMPLATE_MAX_CONNECTIONS": str(max_connections), "LIVETEMPLATE_BACKEND": backend}
    if instances > 1 or redis.mode != "none":
        config["LIVETEMPLATE_SECRET_KEY"] = "<the same random secret on every instance>"
    return config


# -- output ----------------------------------------------------------------------------------


def format_table(p: Plan) -> str:
    """The plan as aligned text, with the arithmetic beside each figure."""
    i, r = p.inputs, p.redis
    growth = f"x {1 + i.spike:g}" if i.spike else ""
    cap = "no limit" if i.max_connections_per_instance is None else f"{i.max_connections_per_instance:,}"
    rows: list[tuple[str, str, str]] = [
        ("Inputs", "", ""),
        ("connections", f"{i.connections:,}", ""),
        ("memory per connection", format_size(i.memory_per_connection), i.memory_source),
        ("overhead per instance", format_size(i.overhead), "OS, Python, the app"),
        ("spike buffer", f"{i.spike:.0%}", ""),
        ("instance RAM", format_size(i.instance_ram), f"used up to {i.max_memory_use:.0%}"),
        ("connection limit per instance", cap, "max_connections"),
        ("state per session", format_size(i.state_size), f"TTL {i.ttl_hours:g} h"),
        ("Application", "", f"tier {p.tier}"),
        (
            "memory, all on one instance",
            format_size(p.application_memory),
            f"({i.connections:,} x {format_size(i.memory_per_connection)} + {format_size(i.overhead)}) {growth}",
        ),
        ("instances by memory", str(p.instances_by_memory), f"{p.connections_fitting_memory:,} connections fit each"),
        ("instances by connection limit", str(p.instances_by_connections), cap),
        ("instances", str(p.instances), f"{p.connections_per_instance:,} connections each"),
        ("memory per instance", format_size(p.memory_per_instance), f"of {format_size(i.instance_ram)}"),
        ("Redis", "", r.mode),
        ("stored sessions", f"{r.stored_sessions:,}", _sessions_note(i)),
        (
            "memory, one copy",
            format_size(r.memory),
            f"{r.stored_sessions:,} x {format_size(i.state_size)} x 1.2 + {format_size(r.overhead)}",
        ),
    ]
    if r.mode != "none":
        rows += [
            ("memory per node", format_size(r.memory_per_node), _replication_note(r)),
            ("nodes", str(r.nodes), _nodes_note(r, i)),
            ("memory with replicas", format_size(r.memory_with_replicas), "all nodes"),
            ("node size", format_size(r.node_ram), f"data under {REDIS_MAX_FILL:.0%} of it"),
        ]
    if r.cluster_recommended:
        rows.append(("move to Redis Cluster", "yes", r.cluster_reason))
    else:
        rows.append(("move to Redis Cluster", "no", f"past {CLUSTER_SESSIONS:,} stored sessions"))
    rows.append(("Cost per month", "", ""))
    for name, label in (("instances", "instances"), ("redis", "Redis"), ("load_balancer", "load balancer")):
        rows.append((label, f"${p.cost[name]:,.0f}", ""))
    if p.cost["other"]:
        rows.append(("other", f"${p.cost['other']:,.0f}", ""))
    rows.append(("total", f"${p.cost['total']:,.0f}", ""))
    width = max(len(label) for label, value, _ in rows if value) + 2
    value_width = max(len(value) for _, value, _ in rows) + 2
    lines: list[str] = []
    for label, value, note in rows:
        if not value:  # a section
            if lines:
                lines.append("")
            lines.append(label + (f"  ({note})" if note else ""))
            continue
        lines.append(f"  {label:<{width}}{value:<{value_width}}{note}".rstrip())
    lines += ["", "Configuration  (environment of each instance)"]
    lines += [f"  {name}={value}" for name, value in p.configuration.items()]
    return "\n".join(lines) + "\n"


def _sessions_note(i: Inputs) -> str:
    if i.new_sessions_per_hour is not None:
        return f"{i.new_sessions_per_hour:,.0f} new per hour x {i.ttl_hours:g} h TTL, at least the active ones"
    if i.sessions is not None:
        return "given"
    return f"{i.sessions_per_connection:g} per connection"


def _replication_note(r: Redis) -> str:
    parts = ["its share of the data" if r.mode == "cluster" else "the data"]
    if r.replication:
        parts.append(f"{format_size(r.replication)} replication buffers")
    return " + ".join(parts)


def _nodes_note(r: Redis, i: Inputs) -> str:
    if r.mode == "cluster":
        return f"{r.masters} masters x (1 + {i.replicas} replicas)"
    if r.mode == "sentinel":
        return f"1 master + {i.replicas} replicas, Sentinel beside each"
    return "one server"


# -- command line ----------------------------------------------------------------------------


def measured_memory_per_connection(environ: dict[str, str] | None = None) -> tuple[float, str] | None:
    """The memory per connection that ``livetemplate bench`` measured on this install, if any."""
    environ = dict(os.environ) if environ is None else environ
    path = Path(environ.get(BENCH_RESULTS_VARIABLE) or BENCH_RESULTS)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        value = float(results["memory_per_connection_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if value <= 0:
        return None
    return value, f"measured by livetemplate bench ({path})"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "capacity",
        help="plan instances, Redis and cost for a number of connections",
        description=(
            "Plan a deployment with the scaling guide's formulas: application memory, instances, "
            "Redis memory with and without replicas, when to move to Redis Cluster, and the monthly "
            "cost. Sizes take units (50KB, 16GB, 1.5GiB; 1 KB = 1,000 bytes as in the guide)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("connections", type=_count, help="concurrent WebSocket connections to plan for")
    app = parser.add_argument_group("application instances")
    app.add_argument(
        "--memory-per-connection",
        metavar="SIZE",
        help="memory of one connection [default: what livetemplate bench measured here, else 30KB]",
    )
    app.add_argument("--overhead", metavar="SIZE", default="4GB", help="memory per instance beside the connections")
    app.add_argument("--spike", metavar="PERCENT", type=_percent, default="30%", help="spike buffer")
    app.add_argument("--instance-ram", metavar="SIZE", default="16GB", help="RAM of one instance")
    app.add_argument(
        "--max-memory-use", metavar="PERCENT", type=_percent, default="80%", help="plan to use at most this much RAM"
    )
    app.add_argument(
        "--max-connections-per-instance",
        metavar="N",
        type=_limit,
        default=str(Options.max_connections),
        help="each instance's max_connections (0: no limit)",
    )
    sessions = parser.add_argument_group("sessions and Redis")
    sessions.add_argument("--sessions", metavar="N", type=_count, help="active sessions [default: connections]")
    sessions.add_argument(
        "--sessions-per-connection", metavar="X", type=float, default=1.0, help="sessions per connection"
    )
    sessions.add_argument("--state-size", metavar="SIZE", default="20KB", help="stored state of one session")
    sessions.add_argument("--ttl", metavar="HOURS", type=float, default=24.0, help="session TTL in the store")
    sessions.add_argument(
        "--new-sessions-per-hour",
        metavar="N",
        type=float,
        help="sessions started per hour: the store holds this x TTL of them (at least the active ones)",
    )
    sessions.add_argument("--redis", choices=REDIS_MODES, default="auto", help="Redis setup")
    sessions.add_argument("--replicas", metavar="N", type=int, default=2, help="replicas per Redis master")
    sessions.add_argument("--redis-node-ram", metavar="SIZE", default="16GB", help="RAM of one Redis node")
    prices = parser.add_argument_group("prices per month")
    prices.add_argument("--instance-price", metavar="USD", type=float, default=50.0, help="one app instance")
    prices.add_argument("--redis-node-price", metavar="USD", type=float, default=30.0, help="one Redis node")
    prices.add_argument(
        "--load-balancer-price", metavar="USD", type=float, default=40.0, help="the load balancer (2+ instances)"
    )
    prices.add_argument("--other", metavar="USD", type=float, default=0.0, help="anything else (a database, ...)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(run=run)


def _count(text: str) -> int:
    value = int(text.replace(",", "").replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _limit(text: str) -> int:
    value = int(text.replace(",", "").replace("_", ""))
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (no limit) or more")
    return value


def _percent(text: str) -> float:
    stripped = text.strip()
    try:
        value = float(stripped.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    return value / 100 if stripped.endswith("%") or value > 1 else value


def inputs_from(args: argparse.Namespace) -> Inputs:
    """The :class:`Inputs` the parsed command line asks for."""
    if args.memory_per_connection is not None:
        memory, source = parse_size(args.memory_per_connection, KB), "given"
    else:
        memory, source = measured_memory_per_connection() or (
            DEFAULT_MEMORY_PER_CONNECTION,
            "default (the 30 KB target; run livetemplate bench to measure)",
        )
    return Inputs(
        connections=args.connections,
        memory_per_connection=memory,
        memory_source=source,
        overhead=parse_size(args.overhead, GB),
        spike=args.spike,
        instance_ram=parse_size(args.instance_ram, GB),
        max_memory_use=args.max_memory_use,
        max_connections_per_instance=args.max_connections_per_instance or None,
        sessions=args.sessions,
        sessions_per_connection=args.sessions_per_connection,
        state_size=parse_size(args.state_size, KB),
        ttl_hours=args.ttl,
        new_sessions_per_hour=args.new_sessions_per_hour,
        redis=args.redis,
        replicas=args.replicas,
        redis_node_ram=parse_size(args.redis_node_ram, GB),
        instance_price=args.instance_price,
        redis_node_price=args.redis_node_price,
        load_balancer_price=args.load_balancer_price,
        other_monthly=args.other,
    )


def run(args: argparse.Namespace) -> int:
    try:
        result = plan(inputs_from(args))
    except ValueError as exc:
        raise SystemExit(f"livetemplate capacity: error: {exc}") from None
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result), end="")
    return 0
