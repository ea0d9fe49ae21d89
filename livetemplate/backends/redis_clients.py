"""Redis clients from URLs: standalone, TLS, Sentinel-managed masters and Cluster.

``redis://[[user]:password@]host[:port][/db]`` and ``rediss://`` (TLS) name one server;
``redis+sentinel://[[user]:password@]host:port,host:port/service_name[/db]`` names the
sentinels and the master they watch; ``redis+cluster://[[user]:password@]host:port,host:port``
names some cluster nodes (the others are discovered). Query options configure the session
store, the broadcaster and the connections; an unknown one is an error.

The password is read from the URL only and never shown: :func:`mask_url` is what logs and
reprs print.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster, Sentinel
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = [
    "RedisClient",
    "RedisURL",
    "close_client",
    "create_client",
    "describe",
    "mask_url",
    "parse_url",
    "require_bytes",
]

#: Every client this package accepts: one server (possibly Sentinel-managed) or a Cluster.
RedisClient: TypeAlias = "Redis | RedisCluster"
Topology = Literal["standalone", "sentinel", "cluster"]

SCHEMES: dict[str, Topology] = {
    "redis": "standalone",
    "rediss": "standalone",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
}
DEFAULT_PORTS: dict[Topology, int] = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, not {value!r}")


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(value: str) -> float | int:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"must be positive, not {value!r}")
        return number

    return parse


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be 0 or more, not {value!r}")
    return number


def _seconds(value: str) -> timedelta:
    return timedelta(seconds=_positive(float)(value))


#: Query options of the session store, by name: how to read the value.
STORE_OPTIONS: dict[str, Any] = {
    "ttl": _seconds,
    "key_prefix": str,
    "max_retries": _non_negative_int,
    "retry_delay": float,
    "fallback_to_memory": _flag,
    "probe_interval": _positive(float),
}
#: Query options of the broadcaster.
BROADCASTER_OPTIONS: dict[str, Any] = {
    "channel_prefix": str,
    "handler_timeout": _positive(float),
    "max_pending": _positive(int),
}
#: Query options of the connections (passed to redis-py).
CONNECTION_OPTIONS: dict[str, Any] = {
    "socket_timeout": _positive(float),
    "socket_connect_timeout": _positive(float),
    "health_check_interval": _non_negative_int,
    "max_connections": _positive(int),
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
}
DEFAULT_CONNECTION_OPTIONS: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and reprs)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


@dataclass(frozen=True)
class RedisURL:
    """A parsed backend URL."""

    topology: Topology
    hosts: tuple[tuple[str, int], ...]
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    db: int = 0
    service_name: str | None = None
    store_options: dict[str, Any] = field(default_factory=dict)
    broadcaster_options: dict[str, Any] = field(default_factory=dict)
    connection_options: dict[str, Any] = field(default_factory=dict)
    masked: str = ""

    def __repr__(self) -> str:
        return f"RedisURL({self.masked!r})"


def parse_url(url: str) -> RedisURL:
    """Parse a backend URL; raise ValueError, naming the URL without its password, when it is
    not one."""
    masked = mask_url(url)
    try:
        return _parse(url, masked)
    except ValueError as exc:
        raise ValueError(f"invalid Redis URL {masked!r}: {exc}") from None


def _parse(url: str, masked: str) -> RedisURL:
    parts = urlsplit(url)
    topology = SCHEMES.get(parts.scheme.lower())
    if topology is None:
        raise ValueError(f"the scheme must be one of {', '.join(f'{name}://' for name in SCHEMES)}")
    userinfo, _, netloc = parts.netloc.rpartition("@")
    username, password = None, None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts = tuple(_host(host, DEFAULT_PORTS[topology]) for host in netloc.split(","))
    if topology == "standalone" and len(hosts) != 1:
        raise ValueError("name exactly one host (use redis+sentinel:// or redis+cluster:// for several)")
    path = [segment for segment in parts.path.split("/") if segment]
    service_name, db = None, 0
    if topology == "sentinel":
        if not path or len(path) > 2:
            raise ValueError("the path must be /service_name or /service_name/db")
        service_name = unquote(path[0])
        db = _db(path[1]) if len(path) == 2 else 0
    elif topology == "standalone":
        if len(path) > 1:
            raise ValueError("the path must be empty or /db")
        db = _db(path[0]) if path else 0
    elif path:
        raise ValueError("a cluster URL has no path (a cluster has only database 0)")
    store, broadcaster, connection = _options(parts.query)
    return RedisURL(
        topology=topology,
        hosts=hosts,
        tls=parts.scheme.lower() == "rediss",
        username=username,
        password=password,
        db=db,
        service_name=service_name,
        store_options=store,
        broadcaster_options=broadcaster,
        connection_options={**DEFAULT_CONNECTION_OPTIONS, **connection},
        masked=masked,
    )


def _host(text: str, default_port: int) -> tuple[str, int]:
    if not text:
        raise ValueError("a host is missing")
    parts = urlsplit(f"//{text}")
    if not parts.hostname:
        raise ValueError(f"bad host {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    return parts.hostname, port or default_port


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"the database must be a number, not {text!r}")
    return int(text)


def _options(query: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    groups: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
    unknown = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        for parsers, group in zip((STORE_OPTIONS, BROADCASTER_OPTIONS, CONNECTION_OPTIONS), groups, strict=True):
            if name in parsers:
                try:
                    group[name] = parsers[name](value)
                except ValueError as exc:
                    raise ValueError(f"option {name}: {exc}") from None
                break
        else:
            unknown.append(name)
    if unknown:
        known = sorted({*STORE_OPTIONS, *BROADCASTER_OPTIONS, *CONNECTION_OPTIONS})
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return groups


def create_client(config: RedisURL) -> RedisClient:
    """A new client for the URL's topology. It tries a command once more at once when the
    connection fails (a pooled connection that a server restart closed); the store and the
    broadcaster retry beyond that, with delays and logs, by their own rules."""
    options: dict[str, Any] = {
        **config.connection_options,
        "username": config.username,
        "password": config.password,
        "retry": Retry(NoBackoff(), 1),
    }
    if config.tls:
        options["ssl"] = True
    if config.topology == "standalone":
        host, port = config.hosts[0]
        return Redis(host=host, port=port, db=config.db, **options)
    if config.topology == "cluster":
        max_connections = options.pop("max_connections", None)
        extra = {"max_connections": max_connections} if max_connections else {}
        options.pop("health_check_interval", None)
        nodes = [ClusterNode(host, port) for host, port in config.hosts]
        return RedisCluster(startup_nodes=nodes, **extra, **options)
    assert config.service_name is not None
    timeouts = {name: options[name] for name in ("socket_timeout", "socket_connect_timeout")}
    sentinel_kwargs = {**timeouts, "retry": Retry(NoBackoff(), 0)}
    sentinel = Sentinel(list(config.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8
    client: Redis = sentinel.master_for(config.service_name, db=config.db, **options)
    return client


def require_bytes(client: RedisClient) -> None:
    """Raise ValueError for a client that decodes replies to str: snapshots and messages are
    bytes."""
    if client.get_encoder().decode_responses:
        raise ValueError("the Redis client must return bytes: create it with decode_responses=False")


async def close_client(client: RedisClient) -> None:
    """Close a client and its pools; for a Sentinel-managed master, its sentinel connections too."""
    sentinel_manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    await client.aclose()
    if sentinel_manager is not None:
        for sentinel in sentinel_manager.sentinels:
            with contextlib.suppress(Exception):
                await sentinel.aclose()


def describe(client: RedisClient) -> str:
    """A short description of a client for logs, without credentials."""
    if isinstance(client, RedisCluster):
        nodes = ",".join(node.name for node in client.get_nodes()) or "startup nodes"
        return f"cluster {nodes}"
    pool = client.connection_pool
    service = getattr(pool, "service_name", None)
    if service is not None:
        return f"sentinel master {service!r}"
    kwargs = pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
