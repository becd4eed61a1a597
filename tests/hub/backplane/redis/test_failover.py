"""Failover with recovery on (``failover``): exactly once, or ``recovered`` false, never a gap.

A failover's new primary may lack the last messages the old one streamed
(Redis replicates asynchronously). The first tests make that state on one
``redis-server`` (the stream rewound as a promoted replica would have it),
so that they are exact; the last ones run a real ``SENTINEL FAILOVER`` in
the middle of a stream of emits, with and without ``wait_replicas``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from conftest import unused_port
from hub.backplane.redis.hubs import Node, counting_client, hubs
from hub.redis_support import RedisServer, until
from wskit.hub import Recovery
from wskit.hub.backplane import HistoryError, check_since
from wskit.hub.backplane.redis import RedisBackplane
from wskit.hub.client import HubClient


def rewind(url: str, prefix: str, room: str, lost: int) -> None:
    """Leave ``room``'s stream as a replica that missed its last ``lost`` writes has it."""
    meta, stream = f"{prefix}:meta:{room}", f"{prefix}:hist:{room}"
    with redis.Redis.from_url(url) as client:
        top = int(client.hget(meta, "top") or 0)
        kept = top - lost
        entries = client.xrange(stream, "-", f"{kept}-0")
        client.delete(stream)  # written again: its last id is the replica's
        for entry_id, fields in entries:
            client.xadd(stream, fields, id=entry_id)
        fields = entries[-1][1]
        client.hset(meta, mapping={"top": kept, f"n:{fields[b'n'].decode()}": fields[b"s"]})


def kill_subscribers(url: str) -> None:
    """Cut the nodes' subscribers: they come back and read their streams again."""
    with redis.Redis.from_url(url) as client:
        client.client_kill_filter(_type="pubsub")


async def emit(node: Node, numbers: range) -> None:
    for n in numbers:
        node.hub.to("room").emit("n", n)
    await until(lambda: node.backplane.stats.buffered == 0)


def test_a_position_past_the_stream_s_end_is_history_lost() -> None:
    assert check_since(("e", 7), "e", 7, 1) == 0
    with pytest.raises(HistoryError) as caught:
        check_since(("e", 10), "e", 7, 1)
    assert caught.value.reason == "history"


async def test_a_client_that_recovers_from_messages_the_stream_lost_is_told(
    redis_server: RedisServer,
) -> None:
    async with (
        hubs(redis_server.url, redis_server.url, recovery=Recovery(window=10)) as (a, b),
        counting_client(b.url, backoff=(0.02, 0.1)) as (client, got),
    ):
        # Another member keeps b listening to the room (b holds its cursor).
        witness = HubClient(b.url)
        await witness.connect()
        try:
            await witness.join("room")
            await client.join("room")
            await emit(a, range(10))
            await until(lambda: len(got) == 10)
            client.drop(pause=0.5)
            await until(lambda: client.drops == 1)
            # The failover: the new primary lacks offsets 8 to 10, which the client had.
            rewind(redis_server.url, a.backplane.prefix, "room", lost=3)
            kill_subscribers(redis_server.url)
            await client.wait_open()
            # Not a replay that stops at 7 (and hands 8 to 10 to other messages).
            assert not client.recovered
            assert client.recovery is not None
            assert client.recovery["reason"] in ("history", "epoch"), client.recovery
            # The stream starts a new epoch; every later emit reaches the client.
            await until(lambda: b.backplane.stats.diverged == 1)
            await emit(a, range(10, 20))
            await until(lambda: len(got) == 20)
            assert got == list(range(20))
            epoch = client.positions["room"].partition(":")[0]
            await emit(a, range(20, 25))
            await until(lambda: len(got) == 25)
            # A client that recovers in the new epoch recovers as usual.
            client.drop(pause=0.2)
            await until(lambda: client.drops == 2)
            await emit(a, range(25, 30))
            await client.wait_open()
            assert client.recovered, client.recovery
            await until(lambda: len(got) == 30)
            assert got == list(range(30))
            assert client.positions["room"].partition(":")[0] == epoch
        finally:
            await witness.close()


async def test_a_client_whose_node_forgot_the_room_is_told_too(
    redis_server: RedisServer,
) -> None:
    # No node listens to the room while the client is away: its position, past
    # the stream's end, says that the stream lost what it had.
    async with hubs(redis_server.url, redis_server.url, recovery=Recovery(window=10)) as (a, b):
        client = HubClient(b.url, backoff=(0.02, 0.1))
        await client.connect()
        try:
            await client.join("room")
            await emit(a, range(10))
            await until(lambda: client.positions.get("room", "").endswith(":10"))
            client.drop(pause=0.3)
            await until(lambda: client.drops == 1)
            rewind(redis_server.url, a.backplane.prefix, "room", lost=3)
            await client.wait_open()
            assert client.recovery is not None
            assert not client.recovered and client.recovery["reason"] == "history"
        finally:
            await client.close()


async def test_a_new_generation_ends_the_epoch_unless_writes_are_confirmed(
    redis_server: RedisServer,
) -> None:
    # The generation is Sentinel's config epoch + 1 (here set by hand): a room
    # written before a failover starts a new epoch at its first write after it.
    url = redis_server.url
    async with (
        hubs(url, url, recovery=Recovery(window=10)) as (a, b),
        counting_client(b.url) as (client, got),
    ):
        await client.join("room")
        connector = a.backplane._connector
        connector.generation = 1
        await emit(a, range(3))
        await until(lambda: len(got) == 3)
        epoch = client.positions["room"]
        connector.generation = 2
        await emit(a, range(3, 6))
        await until(lambda: len(got) == 6)
        assert got == list(range(6))
        assert client.positions["room"].partition(":")[0] != epoch.partition(":")[0]
        assert client.positions["room"].endswith(":3")
        # An older generation (a node that has not heard yet) changes nothing.
        connector.generation = 1
        await emit(a, range(6, 8))
        await until(lambda: len(got) == 8)
        assert client.positions["room"].endswith(":5")
    # With wait_replicas the writes were confirmed: the epoch goes on.
    confirmed = f"{url}?wait_replicas=1&wait_timeout=0.01"
    async with (
        hubs(confirmed, url, recovery=Recovery(window=10)) as (a, b),
        HubClient(b.url) as client,
    ):
        await client.join("room")
        a.backplane._connector.generation = 1
        await emit(a, range(3))
        await until(lambda: client.positions.get("room", "").endswith(":3"))
        epoch = client.positions["room"]
        a.backplane._connector.generation = 2
        await emit(a, range(3, 6))
        await until(lambda: client.positions.get("room", "").endswith(":6"))
        assert client.positions["room"].partition(":")[0] == epoch.partition(":")[0]


async def test_live_clients_get_the_messages_the_new_primary_numbered_again(
    redis_server: RedisServer,
) -> None:
    async with (
        hubs(redis_server.url, redis_server.url, recovery=Recovery(window=10)) as (a, b),
        counting_client(b.url) as (client, got),
    ):
        await client.join("room")
        await emit(a, range(10))
        await until(lambda: len(got) == 10)
        rewind(redis_server.url, a.backplane.prefix, "room", lost=3)
        # The next emits take offsets 8, 9, 10 again: not duplicates of what b had.
        await emit(a, range(10, 20))
        await until(lambda: len(got) == 20)
        assert got == list(range(20))
        assert b.backplane.stats.diverged == 1
        # Those of the old epoch came without a position; the next has one in the new.
        epoch = client.positions["room"].partition(":")[0]
        await emit(a, range(20, 21))
        await until(lambda: len(got) == 21)
        assert client.positions["room"].partition(":")[0] != epoch
        # Recovery from there is exact again.
        client.drop(pause=0.2)
        await until(lambda: client.drops == 1)
        await emit(a, range(21, 25))
        await client.wait_open()
        assert client.recovered, client.recovery
        await until(lambda: len(got) == 25)
        assert got == list(range(25))


def test_wait_options_from_the_url() -> None:
    backplane = RedisBackplane("redis://h:1/0?wait_replicas=1&wait_timeout=0.25")
    assert backplane.wait_replicas == 1 and backplane.wait_timeout == 0.25
    assert backplane.url == "redis://h:1/0"
    assert RedisBackplane("redis://h:1/0").wait_replicas == 0
    with pytest.raises(ValueError, match="wait_replicas"):
        RedisBackplane("redis+cluster://h:1?wait_replicas=1")


async def test_unconfirmed_writes_are_published_again_after_an_outage(
    redis_server: RedisServer,
) -> None:
    # This server has no replica: WAIT confirms nothing.
    url = f"{redis_server.url}?wait_replicas=1&wait_timeout=0.01"
    async with (
        hubs(url, url, recovery=Recovery(window=10)) as (a, b),
        counting_client(b.url) as (client, got),
    ):
        await client.join("room")
        await emit(a, range(5))
        await until(lambda: len(got) == 5)
        stats = a.backplane.stats
        assert stats.unconfirmed == 5 and stats.published == 5
        # Redis is lost (a failover would look the same): they go again...
        with redis.Redis.from_url(redis_server.url) as admin:
            admin.client_kill_filter(_type="pubsub")
        await until(lambda: stats.unconfirmed == 10)
        await until(lambda: a.backplane.connected and stats.buffered == 0)
        # ... and the script, which had them, drops them: nothing twice.
        await emit(a, range(5, 7))
        await until(lambda: len(got) == 7)
        assert got == list(range(7)) and stats.published == 7
        with redis.Redis.from_url(redis_server.url) as admin:
            assert admin.xlen(f"{a.backplane.prefix}:hist:room") == 7


@pytest.mark.parametrize("wait", [False, True], ids=["unconfirmed", "wait_replicas"])
async def test_a_client_recovers_across_a_sentinel_failover(
    sentinel_redis: Any, wait: bool
) -> None:
    """``SENTINEL FAILOVER`` while a hub emits and a client is away, then the client recovers.

    With ``wait_replicas`` the replay is exact: every message once, in
    order. Without, the failover ends the room's epoch and the client is
    told (``recovered`` false); then, and in every case, every later emit
    reaches it once. Never a replay with a hole.
    """
    sentinel_redis.wait_ready()
    before = sentinel_redis.primary()
    with sentinel_redis.servers[before].client() as primary:
        # The replica applies what the primary writes (not only connected to it).
        for _ in range(50):
            primary.set("probe", "1")
            if primary.wait(1, 200) == 1:
                break
        assert primary.wait(1, 200) == 1
    url = sentinel_redis.url + ("?wait_replicas=1&wait_timeout=0.1" if wait else "")
    async with (
        hubs(url, url, recovery=Recovery(window=60)) as (a, b),
        counting_client(b.url, backoff=(0.05, 0.2)) as (client, got),
    ):
        sent = 0

        async def emit(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                a.hub.to("room").emit("n", sent)
                sent += 1
                await asyncio.sleep(0.005)

        await client.join("room")
        await emit(50)
        await until(lambda: len(got) == 50)
        # The client goes away (to a port where nothing listens) as the primary moves.
        client.url = f"ws://127.0.0.1:{unused_port()}/"
        client.drop()
        await until(lambda: client.drops == 1)
        await emit(20)
        confirmed_before = a.backplane.stats.unconfirmed == 0
        with sentinel_redis.sentinel() as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")

        def followed() -> bool:
            nodes = (a.backplane, b.backplane)
            return all(node.connected and node.stats.reconnects for node in nodes)

        for _ in range(2000):  # 10 s at most, emitting all along
            await emit(1)
            if followed() and sentinel_redis.primary() != before:
                break
        assert followed() and sentinel_redis.primary() != before
        await emit(20)
        await until(lambda: a.backplane.stats.buffered == 0)
        # The old primary is the new one's replica, in sync: the failover is over.
        await asyncio.to_thread(sentinel_redis.wait_ready)
        client.url = b.url
        await client.wait_open()
        recovery = client.recovery
        assert recovery is not None
        await emit(20)
        await until(lambda: sent - 1 in got)
        stats = a.backplane.stats
        print(f"failover: {sent} sent, recovery {recovery}, {stats.unconfirmed} unconfirmed")
        assert len(got) == len(set(got))  # none twice
        if wait:
            # Every write before the failover confirmed: nothing was lost.
            assert confirmed_before and client.recovered, recovery
        if client.recovered:
            assert got == list(range(sent))  # every one, in order
        else:
            # "expired": the session itself was written to the old primary only.
            assert recovery["reason"] in ("epoch", "history", "expired"), recovery
            assert got == sorted(got)
