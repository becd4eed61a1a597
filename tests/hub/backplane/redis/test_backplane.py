"""The Redis backplane (``RedisBackplane``) against a real redis-server, hubs in this process.

Every test starts its own empty ``redis-server`` on a free loopback port
(see :mod:`hub.redis_support`); several hubs, each with its own
:class:`RedisBackplane`, stand for the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import wskit
from conftest import unused_port
from hub.backplane.redis.hubs import Node, counting_client, join, serve_hubs
from hub.redis_support import RedisServer, command, peers, until
from wskit.hub import Hub, Recovery
from wskit.hub.backplane import BackplaneUnavailable
from wskit.hub.backplane.redis import RedisBackplane
from wskit.hub.client import HubClient


@contextlib.asynccontextmanager
async def nodes(redis: RedisServer, count: int, **options: Any) -> AsyncIterator[list[Node]]:
    buffer = options.pop("buffer", 10_000)
    backplanes = (
        RedisBackplane(
            redis.url, prefix="t", heartbeat=0.2, node_ttl=1.0, buffer=buffer, timeout=5.0
        )
        for _ in range(count)
    )
    async with serve_hubs(backplanes, **options) as made:
        for node in made:
            node.hub.on("join_me", lambda client, room: client.join(room))
        yield made


def hold_outbox(backplane: RedisBackplane) -> asyncio.Event:
    """Make ``backplane``'s outbox wait before it sends anything, until the event is set.

    After an outage, this lets the other nodes subscribe again before the held
    node publishes what it buffered: with recovery off, what a node publishes
    while another is not subscribed is lost to that one (at most once).
    """
    release = asyncio.Event()
    outbox = backplane._outbox
    execute = outbox._execute

    async def held(batch: Any) -> Any:
        await release.wait()
        return await execute(batch)

    outbox._execute = held  # type: ignore[method-assign]
    return release


async def test_a_url_makes_a_redis_backplane(redis_server: RedisServer) -> None:
    hub = Hub(backplane=redis_server.url + "?prefix=x&heartbeat=0.5")
    assert isinstance(hub.backplane, RedisBackplane)
    assert hub.backplane.prefix == "x" and hub.backplane.heartbeat == 0.5
    assert "prefix" not in hub.backplane.url
    await hub.start()
    assert hub.backplane.connected
    await hub.close()


async def test_emits_reach_every_node_exactly_once(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 2) as (a, b), peers(a.url, a.url, b.url) as (p1, p2, p3):
        for peer in (p1, p3):
            await join(peer, "room")
        a.hub.to("room").emit("r", "from a")
        b.hub.to("room").emit("r", "from b")
        a.hub.emit("all", 1)
        await until(lambda: len(p1.events) == 3 and len(p3.events) == 3 and len(p2.events) == 1)
        for peer in (p1, p3):
            assert sorted(e[1] for e in peer.got("r")) == ["from a", "from b"]
        assert p2.events == [["all", 1]]
        # One client by id, on another node (and one on this node).
        (p3_id,) = b.hub.clients
        a.hub.emit_to_client(p3_id, "direct", "hi")
        await until(lambda: p3.got("direct") == [["direct", "hi"]])
        # The sender's exclusion travels with the message.
        (p1_id,) = [cid for cid, c in a.hub.clients.items() if "room" in c.rooms]
        a.hub.clients[p1_id].to("room").emit("r", "not to me")
        await until(lambda: len(p3.got("r")) == 3)
        await asyncio.sleep(0.1)
        assert len(p1.got("r")) == 2
        # A node listens only to rooms that have local members.
        assert "t:room:room" in b.backplane._receiver.channels
        await p3.request("leave", "room", channel="_wskit")
        assert "t:room:room" not in b.backplane._receiver.channels
        assert a.backplane.stats.dropped == 0 and b.backplane.stats.lost == 0


@pytest.mark.parametrize("recovery", [False, True], ids=["recovery-off", "recovery-on"])
async def test_redis_outage_local_delivery_then_buffered_publish(
    redis_server: RedisServer, recovery: bool
) -> None:
    options: dict[str, Any] = {"recovery": Recovery(window=10)} if recovery else {}
    async with nodes(redis_server, 2, **options) as (a, b), peers(a.url, b.url) as (pa, pb):
        await join(pa, "room")
        await join(pb, "room")
        a.hub.to("room").emit("n", 0)
        await until(lambda: len(pb.events) == 1)
        redis_server.stop()
        await until(lambda: not a.backplane.connected)
        release = hold_outbox(a.backplane)
        for n in range(1, 6):
            a.hub.to("room").emit("n", n)
        # Local clients are served at once; the others wait for Redis.
        await until(lambda: len(pa.events) == 6)
        # The five new ones, and 0 again: it came back to a just before the
        # outage, which does not prove Redis wrote it to b.
        assert a.backplane.stats.buffered == 6
        assert len(pb.events) == 1
        redis_server.start()
        await until(lambda: b.backplane.connected, timeout=15)
        release.set()
        await until(lambda: len(pb.events) == 6, timeout=15)
        assert [e[1] for e in pb.events] == list(range(6))
        await until(lambda: a.backplane.connected and b.backplane.connected, timeout=10)
        # Subscriptions came back: b's emits reach a, and a delivered nothing twice.
        b.hub.to("room").emit("n", 6)
        await until(lambda: len(pa.events) == 7)
        await asyncio.sleep(0.1)
        assert [e[1] for e in pa.events] == list(range(7))
        stats = a.backplane.stats
        assert stats.sent == 6 and stats.published == 6 and stats.dropped == 0
        # 0, published again, was a duplicate for b (which tells it by a's sequence number).
        assert b.backplane.stats.duplicates == 1 and b.backplane.stats.lost == 0


async def test_outage_buffer_overflow_is_counted(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 2, buffer=3) as (a, b), peers(b.url) as (pb,):
        await join(pb, "room")
        await until(lambda: b.hub.backplane.cursor("room") is not None)
        redis_server.stop()
        await until(lambda: not a.backplane.connected)
        release = hold_outbox(a.backplane)
        for n in range(10):
            a.hub.to("room").emit("n", n)
        redis_server.start()
        await until(lambda: b.backplane.connected, timeout=15)
        release.set()
        await until(lambda: a.backplane.stats.buffered == 0, timeout=15)
        await until(lambda: len(pb.events) == 3, timeout=10)
        await asyncio.sleep(0.2)
        stats = a.backplane.stats
        assert stats.dropped == 7 and stats.sent == 10
        assert len(pb.events) + stats.dropped == stats.sent
        assert [e[1] for e in pb.events] == [7, 8, 9]  # the oldest went first


async def test_recovery_across_nodes_with_emits_during_the_replay(
    redis_server: RedisServer,
) -> None:
    async with (
        nodes(redis_server, 2, recovery=Recovery(window=10)) as (a, b),
        counting_client(a.url, backoff=(0.02, 0.1)) as (client, got),
    ):
        # Two nodes emit: the room's order is the one Redis gave, which a client that
        # never left also sees.
        reference: list[int] = []
        witness = HubClient(a.url)
        witness.on("n", reference.append)
        await witness.connect()
        await witness.join("room")
        count = 0
        running = True

        async def pump() -> None:
            nonlocal count
            while running and count < 2000:
                (a if count % 2 else b).hub.to("room").emit("n", count)
                count += 1
                await asyncio.sleep(0.002)

        try:
            await client.join("room")
            task = asyncio.ensure_future(pump())
            await until(lambda: len(got) > 20)
            client.url = b.url
            client.drop(pause=0.3)
            await until(lambda: client.drops == 1)
            await client.wait_open()
            assert client.recovered, client.recovery
            await asyncio.sleep(0.2)
            running = False
            await task
            await until(lambda: len(got) == count == len(reference), timeout=10)
            assert sorted(got) == list(range(count))
            assert got == reference
        finally:
            running = False
            await witness.close()


async def test_cluster_calls_and_presence_over_redis(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 2, presence=True) as (a, b), peers(a.url, b.url) as (pa, pb):
        await until(lambda: a.hub.clients and b.hub.clients)
        (a_id,) = a.hub.clients
        (b_id,) = b.hub.clients
        infos = await a.hub.cluster.clients()
        assert {(i.id, i.node) for i in infos} == {
            (a_id, a.hub.node_id),
            (b_id, b.hub.node_id),
        }
        assert await a.hub.cluster.join(b_id, "blue")
        assert b.hub.clients[b_id].rooms == {"blue"}
        assert await a.hub.cluster.rooms() == {"blue"}
        await until(lambda: a.backplane.stats.buffered == 0 and b.backplane.stats.buffered == 0)
        presence = await a.hub.presence("blue")
        assert presence == {b_id: {"node": b.hub.node_id}}
        assert await a.hub.cluster.leave(b_id, "blue")
        assert not await a.hub.cluster.join("nobody", "blue")
        assert await a.hub.cluster.disconnect(b_id, 4000, "bye")
        await until(lambda: pb.conn.close_code == 4000)
        del pa


async def test_a_node_that_stops_beating_leaves_the_presence(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 2, presence=True) as (a, b), peers(a.url, b.url) as (pa, pb):
        events: list[tuple[str, str]] = []
        a.hub.on_presence(lambda e: events.append((e.kind, e.client_id)))
        await join(pa, "room")
        await join(pb, "room")
        (b_id,) = b.hub.clients
        await until(lambda: ("join", b_id) in events)
        await until(lambda: b.backplane.stats.buffered == 0)
        assert len(await a.hub.presence("room")) == 2
        # b stops beating (and listening) without saying goodbye, as if it died.
        for task in b.backplane._loops:
            task.cancel()
        started = time.monotonic()
        while b_id in await a.hub.presence("room"):
            assert time.monotonic() - started < 5
            await asyncio.sleep(0.05)
        # Gone within its time to live (1 s) and a beat.
        assert time.monotonic() - started < 1.0 + 0.2 + 0.5
        await until(lambda: ("leave", b_id) in events, timeout=5)
        del pb


async def test_a_plain_client_s_join_waits_until_the_node_listens(
    redis_server: RedisServer,
) -> None:
    # With recovery on, clients without a session (the npm ws-wrapper client, say)
    # must not be told they joined before their node receives the room: an emit
    # from another node right after the answer would miss them.
    async with (
        nodes(redis_server, 2, recovery=Recovery(window=10)) as (a, b),
        peers(b.url) as (pb,),
    ):
        rooms = [f"fresh-{i}" for i in range(30)]
        for n, room in enumerate(rooms):
            await join(pb, room)
            a.hub.to(room).emit("n", n)
        await until(lambda: len(pb.events) == len(rooms))
        assert [e[1] for e in pb.events] == list(range(len(rooms)))


async def test_an_unreachable_redis_at_start_is_an_error_naming_it(
    redis_server_bin: str, tmp_path: Path
) -> None:
    redis = RedisServer(redis_server_bin, unused_port(), tmp_path)
    url = f"redis://default:hunter2@127.0.0.1:{redis.port}/0"
    hub = Hub(backplane=RedisBackplane(url, start_timeout=0.5))
    began = time.monotonic()
    # Every caller waiting for the start gets the error (a hub starts on its first connection).
    errors = await asyncio.gather(hub.start(), hub.start(), return_exceptions=True)
    assert time.monotonic() - began < 10  # start_timeout, not the 2 s + forever of old
    for error in errors:
        assert isinstance(error, BackplaneUnavailable)
        assert isinstance(error, wskit.WebSocketError)
        assert error.url == f"redis://default:***@127.0.0.1:{redis.port}/0"
        assert error.url in str(error) and "hunter2" not in str(error)
        assert "connect call failed" in str(error).lower() and "degraded_start" in str(error)
    assert not hub.backplane.connected
    # Nothing is left running, and the next start tries again.
    redis.start()
    try:
        assert command(redis.port, "CONFIG", "SET", "requirepass", "hunter2") == b"+OK"
        await hub.start()
        assert hub.backplane.connected
        await hub.close()
    finally:
        redis.stop()


async def test_hub_serve_raises_when_redis_is_unreachable(
    redis_server_bin: str, tmp_path: Path
) -> None:
    redis = RedisServer(redis_server_bin, unused_port(), tmp_path)
    hub = Hub(backplane=redis.url + "?start_timeout=0.2")
    with pytest.raises(BackplaneUnavailable, match=redis.url):
        await hub.serve("127.0.0.1", 0)


def test_url_parameters_set_the_start_options() -> None:
    backplane = RedisBackplane("redis://h:1/0?degraded_start=true&start_timeout=1.5&prefix=p")
    assert backplane.degraded_start is True and backplane.start_timeout == 1.5
    assert backplane.url == "redis://h:1/0"
    assert RedisBackplane("redis://h:1/0?degraded_start=0").degraded_start is False
    assert RedisBackplane("redis://h:1/0").degraded_start is False
    with pytest.raises(ValueError, match="degraded_start"):
        RedisBackplane("redis://h:1/0?degraded_start=maybe")


async def test_a_replay_reaches_no_further_than_the_node_delivered(
    redis_server: RedisServer,
) -> None:
    # A message in the stream that the node has not delivered yet (its subscriber
    # lags, under load) must not be replayed: it reaches the client live, after
    # the replay, and would come twice (test_cluster's flaky duplicate).
    async with (
        nodes(redis_server, 2, recovery=Recovery(window=10)) as (a, b),
        counting_client(a.url, backoff=(0.02, 0.1)) as (client, got),
    ):
        await client.join("room")
        for n in range(5):
            a.hub.to("room").emit("n", n)
        await until(lambda: len(got) == 5)
        # b's subscriber lags: the room's live messages wait until released.
        held: list[tuple[str, Any, str]] = []
        receiver = b.backplane._receiver
        on_message = receiver._on_message
        holding = True

        def lagging(channel: str, header: Any, body: str) -> None:
            if holding and channel == "t:room:room" and header.get("k") == "m":
                held.append((channel, header, body))
            else:
                on_message(channel, header, body)

        receiver._on_message = lagging  # type: ignore[method-assign]
        history = b.backplane.history

        async def history_after_an_emit(room: str, since: Any) -> Any:
            # Published (in the stream) just before the read; not delivered by b yet.
            a.hub.to("room").emit("n", 100)
            await until(lambda: a.backplane.stats.buffered == 0)
            await until(lambda: len(held) == 1)
            return await history(room, since)

        b.backplane.history = history_after_an_emit  # type: ignore[method-assign]
        client.url = b.url
        client.drop(pause=0.3)
        await until(lambda: client.drops == 1)
        for n in range(5, 10):
            a.hub.to("room").emit("n", n)
        await client.wait_open()
        assert client.recovered, client.recovery
        await until(lambda: 9 in got)
        holding = False
        for message in held:
            on_message(*message)
        for n in range(10, 15):
            a.hub.to("room").emit("n", n)
        await until(lambda: got[-1:] == [14])
        assert got == [*range(10), 100, *range(10, 15)]
