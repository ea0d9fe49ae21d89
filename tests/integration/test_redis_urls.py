"""Backends from URLs: every scheme against a real server, options, errors, masked passwords."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import AuthenticationError

from livetemplate.backends import from_url
from livetemplate.backends.redis import RedisBroadcaster, RedisSessionStore
from livetemplate.backends.redis_clients import mask_url, parse_url
from livetemplate.sessions import Snapshot
from tests.integration.redis_servers import Standalone, Topology, running

pytestmark = pytest.mark.anyio

SECRET = "s3cr:t/p@ss"
QUOTED = "s3cr%3At%2Fp%40ss"


@pytest.fixture
def protected() -> Iterator[Standalone]:
    """A server that wants a password."""
    with running(Standalone(password=SECRET)) as topology:
        yield topology


async def test_every_scheme_gives_a_working_backend(topology: Topology, prefix: str) -> None:
    backend = from_url(f"{topology.url}?key_prefix={prefix}&channel_prefix={prefix}&ttl=60")
    store, broadcaster = backend.store, backend.broadcaster
    assert isinstance(store, RedisSessionStore) and isinstance(broadcaster, RedisBroadcaster)
    try:
        assert store.key_prefix == prefix and store.ttl == timedelta(seconds=60)
        assert broadcaster.channel_prefix == prefix
        assert isinstance(store.client, RedisCluster) == topology.url.startswith("redis+cluster")
        assert store.client is not broadcaster.client
        await store.ping()
        assert await store.save("k", b"v", version=0) == 1
        assert await store.get("k") == Snapshot(b"v", 1)
    finally:
        await store.close()
        await broadcaster.close()


def test_urls_are_parsed() -> None:
    plain = parse_url("redis://localhost")
    assert (plain.topology, plain.hosts, plain.db, plain.tls, plain.password) == (
        "standalone",
        (("localhost", 6379),),
        0,
        False,
        None,
    )
    tls = parse_url(f"rediss://user:{QUOTED}@cache.example:6380/3?socket_timeout=1.5&ssl_cert_reqs=none")
    assert (tls.tls, tls.username, tls.password, tls.db) == (True, "user", SECRET, 3)
    assert tls.connection_options["socket_timeout"] == 1.5 and tls.connection_options["ssl_cert_reqs"] == "none"
    sentinel = parse_url(f"redis+sentinel://:{QUOTED}@s1:26379,s2,[::1]:26380/mymaster/2?fallback_to_memory=true")
    assert sentinel.hosts == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (sentinel.service_name, sentinel.db, sentinel.password) == ("mymaster", 2, SECRET)
    assert sentinel.store_options == {"fallback_to_memory": True}
    cluster = parse_url("redis+cluster://n1:7000,n2:7001?channel_prefix=app:&max_retries=5&retry_delay=0.2")
    assert cluster.hosts == (("n1", 7000), ("n2", 7001))
    assert cluster.broadcaster_options == {"channel_prefix": "app:"}
    assert cluster.store_options == {"max_retries": 5, "retry_delay": 0.2}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost?colour=blue", "unknown option.*colour"),
        ("redis://localhost?ttl=-1", "option ttl: must be positive"),
        ("redis://localhost?fallback_to_memory=maybe", "option fallback_to_memory"),
        ("redis://localhost:port", "bad port"),
        ("redis://localhost/zero", "database must be a number"),
        ("redis://a:1,b:2", "exactly one host"),
        ("redis+sentinel://s1:26379", "service_name"),
        ("redis+cluster://n1:7000/1", "no path"),
        ("redis+cluster://", "a host is missing"),
        ("memcached://localhost", "scheme"),
    ],
)
def test_bad_urls_fail_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_an_unknown_scheme_fails_in_the_registry() -> None:
    with pytest.raises(ValueError, match="scheme must be one of"):
        from_url("redis+unknown://localhost")


async def test_the_password_is_used_and_never_shown(
    protected: Standalone, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://:{QUOTED}@127.0.0.1:{protected.server.port}?key_prefix={prefix}&max_retries=0"
    backend = from_url(url)
    try:
        await backend.store.ping()
        assert await backend.store.save("k", b"v", version=0) == 1
        shown = [repr(backend.store), repr(backend.broadcaster), repr(parse_url(url)), mask_url(url)]
        assert all(SECRET not in text and QUOTED not in text for text in shown)
        assert ":***@" in repr(backend.store)
    finally:
        await backend.store.close()
        await backend.broadcaster.close()
    wrong = from_url(f"redis://:wrong@127.0.0.1:{protected.server.port}?max_retries=0")
    try:
        with pytest.raises(AuthenticationError):  # a configuration error, not an outage
            await wrong.store.ping()
        assert "wrong" not in repr(wrong.store)
    finally:
        await wrong.store.close()
        await wrong.broadcaster.close()
    assert all(SECRET not in record.getMessage() for record in caplog.records)


async def test_a_store_over_a_user_client_leaves_it_open(standalone: Standalone, prefix: str) -> None:
    client = Redis(port=standalone.server.port)
    store = RedisSessionStore(client, key_prefix=prefix)
    await store.save("k", b"v", version=0)
    await store.close()
    assert await client.ping()
    await client.aclose()


async def test_a_client_that_decodes_replies_is_refused(standalone: Standalone) -> None:
    client = Redis(port=standalone.server.port, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisSessionStore(client)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisBroadcaster(client)
    await client.aclose()
