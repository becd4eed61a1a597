"""Every Redis a user runs: the URLs and redis-py objects of ``connect``, on real servers.

Two hubs on each topology (TLS with client certificates, a Unix socket with
an ACL user, RESP3, Sentinel, Valkey) exchange room emits in both
directions, and a client on each sees them: publishing and subscribing
both go through the topology. The servers are started once per session
(see ``conftest.py`` here); each test uses its own key prefix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode

from conftest import unused_port
from hub.backplane.redis.hubs import exchange, hubs, join
from hub.redis_support import peers, until
from wskit.hub.backplane import BackplaneUnavailable
from wskit.hub.backplane.redis import RedisBackplane
from wskit.hub.backplane.redis.connect import (
    Connector,
    masked_url,
    parse_cluster_url,
    parse_sentinel_url,
)

# -- the URLs, without a server ----------------------------------------------------------


def test_sentinel_urls_name_the_sentinels_the_service_and_the_primary_s_settings() -> None:
    sentinels, service, kwargs, sentinel_kwargs = parse_sentinel_url(
        "redis+sentinel://bob:pw@10.0.0.1:26380,10.0.0.2,[::1]:5000/mymaster/3"
        "?sentinel_password=spw&protocol=3&ssl_ca_certs=/ca.pem"
    )
    assert sentinels == [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 5000)]
    assert service == "mymaster"
    assert kwargs == {
        "username": "bob",
        "password": "pw",
        "db": 3,
        "protocol": 3,
        "ssl_ca_certs": "/ca.pem",
    }
    assert sentinel_kwargs == {"password": "spw"}
    _, _, kwargs, _ = parse_sentinel_url("redis+sentinel://h/svc?db=2")
    assert kwargs == {"db": 2}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1,h2",  # no service
        "redis+sentinel:///svc",  # no sentinel
        "redis+sentinel://h:port/svc",
        "redis+sentinel://h/svc/zero",
        "redis+sentinel://h/svc/1?db=2",
        "redis+sentinel://h/svc/1/more",
    ],
)
def test_malformed_sentinel_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        RedisBackplane(url)


def test_passwords_are_masked_wherever_a_url_holds_them() -> None:
    url = "redis+sentinel://bob:hunter2@h1:1,h2:2/svc?sentinel_password=hunter3&db=1"
    masked = masked_url(url)
    assert "hunter" not in masked
    assert masked == "redis+sentinel://bob:***@h1:1,h2:2/svc?sentinel_password=***&db=1"
    assert masked_url("unix://:pw@/run/redis.sock?db=1") == "unix://:***@/run/redis.sock?db=1"
    assert RedisBackplane("rediss://u:hunter2@h/0?password=hunter3").url == (
        "rediss://u:***@h/0?password=***"
    )


def test_other_schemes_are_refused() -> None:
    expected = "redis://, rediss://, unix://, redis\\+sentinel:// or redis\\+cluster://"
    with pytest.raises(ValueError, match=expected):
        RedisBackplane("http://u:hunter2@h:6379")
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
        RedisBackplane(object())
    with pytest.raises(ValueError, match="service="):
        RedisBackplane(aioredis.Sentinel([("127.0.0.1", 1)]))
    with pytest.raises(ValueError, match="service="):
        RedisBackplane("redis://h/0", service="mymaster")


def test_cluster_urls_name_the_nodes_and_their_settings() -> None:
    nodes, kwargs = parse_cluster_url(
        "redis+cluster://bob:pw@10.0.0.1:7000,[::1],h3:7002?protocol=3"
    )
    assert nodes == [("10.0.0.1", 7000), ("::1", 6379), ("h3", 7002)]
    assert kwargs == {"username": "bob", "password": "pw", "protocol": 3}
    for url in ("redis+cluster://", "redis+cluster://h:port", "redis+cluster://h/1"):
        with pytest.raises(ValueError, match="redis\\+cluster://"):
            parse_cluster_url(url)
    with pytest.raises(ValueError, match="database 0"):
        parse_cluster_url("redis+cluster://h?db=2")
    backplane = RedisBackplane("redis+cluster://:hunter2@h1:7000,h2:7001?prefix=chat")
    assert backplane.url == "redis+cluster://:***@h1:7000,h2:7001"
    assert backplane.prefix == "chat"
    with pytest.raises(ValueError, match="no braces"):
        RedisBackplane("redis+cluster://h1:7000", prefix="{chat}")


async def test_a_cluster_client_is_copied_with_the_backplane_s_own_settings() -> None:
    mine = aioredis.RedisCluster(
        startup_nodes=[ClusterNode("10.1.2.3", 7000), ClusterNode("10.1.2.4", 7001)],
        password="hunter2",
        decode_responses=True,
    )
    connector = Connector(mine)
    assert connector.cluster and connector.url == "redis+cluster://10.1.2.3:7000,10.1.2.4:7001"
    made = connector.client(1.5)
    assert isinstance(made, aioredis.RedisCluster) and made is not mine
    kwargs = made.get_connection_kwargs()
    assert kwargs["password"] == "hunter2" and kwargs["decode_responses"] is False
    assert kwargs["socket_timeout"] == 1.5 and kwargs["protocol"] == 2
    await connector.aclose(made)
    await mine.aclose()
    made = Connector("redis+cluster://h:7000?protocol=3").client(1)
    assert made.get_connection_kwargs()["protocol"] == 3
    await made.aclose()


async def test_client_objects_are_described_without_their_password() -> None:
    tcp = aioredis.Redis(host="10.1.2.3", port=6390, db=2, password="hunter2")
    unix = aioredis.Redis(unix_socket_path="/run/r.sock", password="hunter2")
    tls = aioredis.Redis(host="h", ssl=True, password="hunter2")
    sentinel = aioredis.Sentinel([("10.0.0.1", 26379), ("10.0.0.2", 26380)], password="hunter2")
    assert RedisBackplane(tcp).url == "redis://10.1.2.3:6390/2"
    assert RedisBackplane(unix).url == "unix:///run/r.sock?db=0"
    assert RedisBackplane(tls).url == "rediss://h:6379/0"
    described = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster"
    assert RedisBackplane(sentinel, service="mymaster").url == described
    assert RedisBackplane(sentinel.master_for("mymaster")).url == described
    # RESP2 unless protocol=3 is asked for.
    for where, protocol in (
        ("redis://h/0", 2),
        ("redis://h/0?protocol=3", 3),
        ("redis+sentinel://h/svc", 2),
        ("redis+sentinel://h/svc?protocol=3", 3),
        (aioredis.Redis(host="h"), 2),
        (aioredis.Redis(host="h", protocol=3), 3),
        (aioredis.Sentinel([("h", 1)], protocol=3).master_for("svc"), 3),
    ):
        connector = Connector(where)
        made = connector.client(1)
        assert made.connection_pool.connection_kwargs["protocol"] == protocol, where
        await connector.aclose(made)
    # The client the backplane makes answers bytes and does not retry, whatever the user's does.
    made = Connector(aioredis.Redis(host="h", decode_responses=True)).client(1.5)
    kwargs = made.connection_pool.connection_kwargs
    assert kwargs["decode_responses"] is False and kwargs["socket_timeout"] == 1.5
    assert kwargs["host"] == "h"
    await made.aclose()
    for client in (tcp, unix, tls):
        await client.aclose()


# -- two hubs on each topology -----------------------------------------------------------


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
async def test_tls_with_client_certificates(tls_redis: Any, resp3: bool) -> None:
    url = tls_redis.url + ("&protocol=3" if resp3 else "&protocol=2")
    # The second hub gets a client object with the same settings.
    client = aioredis.Redis.from_url(url)
    try:
        async with hubs(url, client) as (a, b):
            await exchange(a, b)
            assert b.backplane.url == f"rediss://127.0.0.1:{tls_redis.port}/0"
    finally:
        await client.aclose()


async def test_tls_without_the_client_certificate_is_refused(tls_redis: Any) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={tls_redis.ca}&start_timeout=0.5"
    with pytest.raises(BackplaneUnavailable):
        async with hubs(url):
            pass


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
async def test_unix_socket_with_an_acl_user(
    unix_redis: Any, resp3: bool, caplog: pytest.LogCaptureFixture
) -> None:
    url = unix_redis.url + ("&protocol=3" if resp3 else "")
    caplog.set_level(logging.INFO, "wskit.hub.redis")
    async with hubs(url, url) as (a, b):
        await exchange(a, b)
        # The subscribers speak the protocol asked for (RESP2 unless protocol=3).
        with redis.Redis.from_url(unix_redis.url, protocol=2) as admin:
            subscribers = admin.client_list(_type="pubsub")
        assert [c["resp"] for c in subscribers] == ["3" if resp3 else "2"] * 2
    assert "s3cret" not in caplog.text
    assert f"connected to unix://alice:***@{unix_redis.path}" in caplog.text


async def test_unix_socket_with_a_wrong_password_names_it_masked(unix_redis: Any) -> None:
    url = f"unix://alice:wrong@{unix_redis.path}?start_timeout=0.5"
    with pytest.raises(BackplaneUnavailable) as caught:
        async with hubs(url):
            pass
    assert "wrong" not in str(caught.value)
    assert f"unix://alice:***@{unix_redis.path}" in str(caught.value)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
async def test_valkey(valkey_redis: Any, resp3: bool) -> None:
    url = valkey_redis.url + ("?protocol=3" if resp3 else "?protocol=2")
    async with hubs(url, url) as (a, b):
        await exchange(a, b)
        # Node-to-node calls and presence too.
        async with peers(b.url) as (pb,):
            await join(pb, "lobby")
            rooms = await a.hub.cluster.rooms()
            assert "lobby" in rooms


async def test_sentinel_url_and_objects(sentinel_redis: Any) -> None:
    sentinel = aioredis.Sentinel([("127.0.0.1", port) for port in sentinel_redis.sentinels])
    async with hubs(sentinel_redis.url, sentinel.master_for("mymaster")) as (a, b):
        await exchange(a, b)
    async with hubs(sentinel, service="mymaster") as (c,):
        await exchange(c, c)
    for node in sentinel.sentinels:
        await node.aclose()


def commands(client: Any) -> int:
    """The commands an emit may run that ``client``'s server ran so far."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in EMITS)


#: The commands of an emit (recovery off, on).
EMITS = ("publish", "evalsha", "eval", "spublish")


async def test_sentinel_failover_during_a_stream_of_emits(sentinel_redis: Any) -> None:
    """The primary moves while a hub emits: the hubs follow it and keep delivering.

    Redis replicates asynchronously, and publishes are not replicated at
    all, so what was in flight may be lost: the test counts the losses and
    requires every emit after the failover to arrive, in order.
    """
    sentinel_redis.wait_ready()
    before = sentinel_redis.primary()
    async with (
        hubs(sentinel_redis.url, sentinel_redis.url) as (a, b),
        peers(b.url) as (pb,),
    ):
        await join(pb, "room")
        sent = 0

        async def emit(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                sent += 1
                a.hub.to("room").emit("n", sent)
                await asyncio.sleep(0.005)

        await emit(50)
        await until(lambda: len(pb.events) == 50)
        with sentinel_redis.sentinel() as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")
        start = time.monotonic()

        def followed() -> bool:
            nodes = (a.backplane, b.backplane)
            return all(node.connected and node.stats.reconnects for node in nodes)

        # Emitting on, until the sentinels name the other server and both hubs
        # reconnected to it (the subscribers leave the old one when they hear).
        for _ in range(4000):  # 20 s at most
            await emit(1)
            if followed() and sentinel_redis.primary() != before:
                break
        after = sentinel_redis.primary()
        assert after != before and followed()
        print(f"failover: followed after {time.monotonic() - start:.1f} s")
        during = sent
        # After the failover, emits arrive again: every one of the last batch, in order.
        for _ in range(200):
            await emit(1)
            if sent - during >= 20 and pb.events and pb.events[-1] == ["n", sent]:
                break
            await asyncio.sleep(0.05)
        with sentinel_redis.servers[after].client() as client:
            ran = commands(client)
        await emit(50)
        await until(lambda: pb.events[-1:] == [["n", sent]], timeout=20)
        numbers = [event[1] for event in pb.events]
        assert numbers == sorted(set(numbers))  # in order, none twice
        assert numbers[-50:] == list(range(sent - 49, sent + 1))
        lost = sent - len(numbers)
        print(f"failover: done after {time.monotonic() - start:.1f} s")
        # Both hubs follow the primary: b's subscriber is on the new one...
        with sentinel_redis.servers[after].client() as client:
            channel = f"{a.backplane.prefix}:room:room"
            assert client.pubsub_numsub(channel) == [(channel.encode(), 1)]
            # ... and so are the emits: the last 50 were run there.
            assert commands(client) - ran >= 50
        print(f"failover: {sent} emitted, {len(numbers)} delivered, {lost} lost")
        assert lost < sent // 2


async def test_unreachable_sentinels_are_an_error_naming_them_masked() -> None:
    port = unused_port()
    url = f"redis+sentinel://:hunter2@127.0.0.1:{port}/mymaster?start_timeout=0.3"
    with pytest.raises(BackplaneUnavailable) as caught:
        async with hubs(url):
            pass
    assert "hunter2" not in str(caught.value)
    assert f"redis+sentinel://:***@127.0.0.1:{port}/mymaster" in str(caught.value)
