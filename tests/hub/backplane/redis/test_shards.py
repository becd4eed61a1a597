"""The Redis backplane on Redis Cluster: sharded pub/sub, one subscriber per primary.

On a real cluster of 3 primaries and 3 replicas (``cluster_redis``, started
once per session): two hubs exchange room emits across rooms whose slots are
on different primaries, with recovery off (one ``SPUBLISH`` per emit) and on
(the script, in the room's slot); global emits, an emit to one client and
cluster calls cross the cluster; a primary killed mid-stream fails over to
its replica, the subscribers follow, and what was lost is counted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.backplane.redis.hubs import Node, hubs, join
from hub.redis_support import peers, until
from wskit.hub import Recovery
from wskit.hub.backplane import Target
from wskit.hub.backplane.redis.link import ClusterKeys

#: What an emit may run on Redis.
EMITS = ("publish", "spublish", "evalsha", "eval")


def rooms_on_every_primary(cluster: Any, prefix: str) -> dict[int, str]:
    """A room whose channel is on each primary, by the primary's port."""
    keys = ClusterKeys(prefix)
    found: dict[int, str] = {}
    for index in range(1000):
        room = f"room-{index}"
        found.setdefault(cluster.primary_of(keys.channel(Target.ROOM, room)), room)
        if len(found) == 3:
            return found
    raise AssertionError("3 primaries expected")


def rooms_on_one_primary(cluster: Any, prefix: str, count: int) -> list[str]:
    """``count`` rooms whose channels are all on one primary."""
    keys = ClusterKeys(prefix)
    by_primary: dict[int, list[str]] = {}
    with cluster.client() as client:
        for index in range(20 * count):
            room = f"room-{index}"
            port = int(client.get_node_from_key(keys.channel(Target.ROOM, room)).port)
            found = by_primary.setdefault(port, [])
            found.append(room)
            if len(found) == count:
                return found
    raise AssertionError(f"no primary with {count} rooms")


def commandstats(cluster: Any) -> dict[str, int]:
    """The calls of each command an emit may run, summed over the live nodes."""
    totals = dict.fromkeys(EMITS, 0)
    for port, process in cluster.nodes.items():
        if port in cluster.killed:
            continue
        with process.client() as client:
            stats = client.info("commandstats")
        for name in EMITS:
            totals[name] += stats.get(f"cmdstat_{name}", {}).get("calls", 0)
    return totals


def primaries(node: Node) -> set[str]:
    """The primaries this hub's subscriber is connected to."""
    shards = node.backplane._receiver._shards
    assert shards is not None
    return {name for name, shard in shards.shards.items() if shard.conn is not None}


@pytest.mark.parametrize("recovery", [False, True], ids=["recovery-off", "recovery-on"])
async def test_two_hubs_exchange_room_emits_on_every_primary(
    cluster_redis: Any, recovery: bool
) -> None:
    cluster_redis.wait_ready()
    options: dict[str, Any] = {"recovery": Recovery(window=10)} if recovery else {}
    async with (
        hubs(cluster_redis.url, cluster_redis.url, **options) as (a, b),
        peers(a.url, b.url) as (pa, pb),
    ):
        rooms = rooms_on_every_primary(cluster_redis, a.backplane.prefix)
        for room in rooms.values():
            await join(pa, room)
            await join(pb, room)
        # Each hub listens on every primary that owns a slot of its rooms.
        expected = {f"127.0.0.1:{port}" for port in rooms}
        await until(lambda: primaries(a) >= expected and primaries(b) >= expected)
        before = commandstats(cluster_redis)
        for count in range(1, 11):
            for room in rooms.values():
                a.hub.to(room).emit(room, f"a{count}")
                b.hub.to(room).emit(room, f"b{count}")
        await until(lambda: len(pa.events) == len(pb.events) == 60)
        for room in rooms.values():
            for peer in (pa, pb):
                got = [event[1] for event in peer.got(room)]
                # In the order each hub emitted, and the same order on both hubs.
                assert [x for x in got if x[0] == "a"] == [f"a{n}" for n in range(1, 11)]
                assert [x for x in got if x[0] == "b"] == [f"b{n}" for n in range(1, 11)]
            assert pa.got(room) == pb.got(room)
        ran = {name: calls - before[name] for name, calls in commandstats(cluster_redis).items()}
        if recovery:
            # One script per emit, in the room's slot: its stream numbered without a gap.
            assert ran["evalsha"] == 60 and ran["publish"] == 0
            with cluster_redis.client() as client:
                keys = ClusterKeys(a.backplane.prefix)
                for room in rooms.values():
                    _, meta, stream = keys.numbered(Target.ROOM, room)
                    entries = client.xrange(stream)
                    assert [entry[0] for entry in entries] == [
                        f"{n}-0".encode() for n in range(1, 21)
                    ]
                    assert int(client.hget(meta, "top")) == 20
        else:
            # One SPUBLISH per emit, nothing else.
            assert ran == {"publish": 0, "spublish": 60, "evalsha": 0, "eval": 0}
        for node in (a, b):
            assert node.backplane.connected
            assert node.backplane.stats.lost == node.backplane.stats.dropped == 0


async def test_global_emits_emits_to_one_client_and_calls_cross_the_cluster(
    cluster_redis: Any,
) -> None:
    cluster_redis.wait_ready()
    async with (
        hubs(cluster_redis.url, cluster_redis.url, presence=True) as (a, b),
        peers(a.url, b.url) as (pa, pb),
    ):
        await until(lambda: a.hub.clients and b.hub.clients)
        (b_id,) = b.hub.clients
        a.hub.emit("everyone", 1)
        await until(lambda: pa.got("everyone") == pb.got("everyone") == [["everyone", 1]])
        a.hub.emit_to_client(b_id, "direct", "hi")
        await until(lambda: pb.got("direct") == [["direct", "hi"]])
        # A call reaches every node (SPUBLISH counts the subscribers of {P}:all's shard).
        infos = await a.hub.cluster.clients()
        assert {info.node for info in infos} == {a.hub.node_id, b.hub.node_id}
        assert await a.hub.cluster.join(b_id, "blue")
        assert b.hub.clients[b_id].rooms == {"blue"}
        await until(lambda: a.backplane.stats.buffered == 0 and b.backplane.stats.buffered == 0)
        assert await a.hub.presence("blue") == {b_id: {"node": b.hub.node_id}}


async def test_a_primary_killed_mid_stream_fails_over_and_losses_are_counted(
    cluster_redis: Any,
) -> None:
    """SIGKILL the primary of a room while a hub emits to it: its replica takes over.

    Redis replicates asynchronously and a sharded publish reaches only the
    subscribers of the primary, so what was in flight may be lost: with
    recovery off the receiving hub counts it (``stats.lost``, from the gap
    in the sender's numbers), and every emit after the failover arrives, in
    order. A room on another primary is not disturbed.
    """
    cluster_redis.wait_ready()
    try:
        async with (
            hubs(cluster_redis.url, cluster_redis.url) as (a, b),
            peers(b.url) as (pb,),
        ):
            rooms = rooms_on_every_primary(cluster_redis, a.backplane.prefix)
            (victim, room), (_, other) = list(rooms.items())[:2]
            await join(pb, room)
            await join(pb, other)
            sent = 0

            async def emit(count: int) -> None:
                nonlocal sent
                for _ in range(count):
                    sent += 1
                    a.hub.to(room).emit("n", sent)
                    a.hub.to(other).emit("o", sent)
                    await asyncio.sleep(0.005)

            await emit(50)
            await until(lambda: len(pb.got("n")) == 50)
            cluster_redis.kill(victim)
            start = time.monotonic()
            # Emitting on, until both hubs are connected again (on the promoted replica).
            for _ in range(4000):  # 20 s at most
                await emit(1)
                if all(
                    node.backplane.connected for node in (a, b)
                ) and f"127.0.0.1:{victim}" not in primaries(b):
                    break
            assert b.backplane.connected and b.backplane.stats.reconnects
            during = sent
            # After the failover, emits arrive again: every one of the last batch, in order.
            for _ in range(200):
                await emit(1)
                if sent - during >= 20 and pb.got("n")[-1:] == [["n", sent]]:
                    break
                await asyncio.sleep(0.05)
            await emit(50)
            await until(
                lambda: pb.got("n")[-1:] == [["n", sent]] and pb.got("o")[-1:] == [["o", sent]]
            )
            print(f"failover: followed after {time.monotonic() - start:.1f} s")
            numbers = [event[1] for event in pb.got("n")]
            assert numbers == sorted(set(numbers))  # in order, none twice
            assert numbers[-50:] == list(range(sent - 49, sent + 1))
            lost = sent - len(numbers)
            # Every message lost is counted, none silently.
            assert b.backplane.stats.lost == lost + (sent - len(pb.got("o")))
            print(f"failover: {sent} emitted, {len(numbers)} delivered, {lost} lost")
            # The other room's primary did not fail: its subscription stayed.
            others = [event[1] for event in pb.got("o")]
            assert others == sorted(set(others))
    finally:
        cluster_redis.revive()


async def test_recovery_on_a_node_joining_many_rooms_of_one_primary_delivers_to_all(
    cluster_redis: Any,
) -> None:
    """150 rooms on one primary joined at once: every stream syncs, every emit arrives.

    Each stream reads where it stands once its subscription is confirmed;
    read all at once, they took a connection each from redis-py's pool of a
    cluster node (100), and the reads that failed left their rooms waiting
    for a reconnection that never came: their messages were never
    delivered (29 900 of 30 000 emits, one room of 300 silent).
    """
    cluster_redis.wait_ready()
    async with (
        hubs(cluster_redis.url, cluster_redis.url, recovery=Recovery(window=10)) as (a, b),
        peers(b.url) as (pb,),
    ):
        rooms = rooms_on_one_primary(cluster_redis, a.backplane.prefix, 150)
        await until(lambda: len(b.hub.clients) == 1)
        (client,) = b.hub.clients.values()
        for room in rooms:
            client.join(room)
        await until(lambda: all(b.backplane.cursor(room) is not None for room in rooms))
        for room in rooms:
            a.hub.to(room).emit("n", room)
        await until(lambda: len(pb.got("n")) >= len(rooms))
        assert sorted(event[1] for event in pb.got("n")) == sorted(rooms)
        assert b.backplane.stats.lost == 0


async def test_recovery_on_a_sync_that_fails_while_subscribed_is_tried_again(
    cluster_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream's read fails while its shard stays connected: it is read again.

    No reconnection will ask for it, so the node tries again itself; the
    messages that came meanwhile are delivered after it, in order.
    """
    cluster_redis.wait_ready()
    async with (
        hubs(cluster_redis.url, cluster_redis.url, recovery=Recovery(window=10)) as (a, b),
        peers(b.url) as (pb,),
    ):
        client = b.backplane._link.client
        hmget = client.hmget
        failed: list[str] = []

        async def fail_once(key: str, *args: Any, **kwargs: Any) -> Any:
            if not failed and ":meta:" in key:
                failed.append(key)
                raise RedisConnectionError("injected: the read of the stream failed")
            return await hmget(key, *args, **kwargs)

        monkeypatch.setattr(client, "hmget", fail_once)
        await join(pb, "room")
        # The cursor is placed; the read of what came since failed.
        await until(lambda: bool(failed) and b.backplane.cursor("room") is not None)
        for count in range(1, 6):
            a.hub.to("room").emit("n", count)
        await until(lambda: len(pb.got("n")) >= 5)
        assert [event[1] for event in pb.got("n")] == [1, 2, 3, 4, 5]
        assert b.backplane.connected
