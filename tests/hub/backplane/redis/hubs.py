"""Hubs on one Redis topology, for the backplane's tests: made, joined, exchanging emits."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import wskit
from hub.redis_support import Peer, peers, until
from wskit.hub import Hub, HubClient
from wskit.hub.backplane.redis import RedisBackplane


class Node:
    def __init__(self, hub: Hub, server: wskit.Server) -> None:
        self.hub = hub
        self.server = server
        self.url = f"ws://127.0.0.1:{server.port}/"

    @property
    def backplane(self) -> RedisBackplane:
        assert isinstance(self.hub.backplane, RedisBackplane)
        return self.hub.backplane


@contextlib.asynccontextmanager
async def hubs(
    *wheres: Any, service: str | None = None, **options: Any
) -> AsyncIterator[list[Node]]:
    """One hub per ``where`` (a URL or a client object), all under one fresh prefix.

    ``options`` go to each :class:`~wskit.hub.Hub` (``recovery=``...).
    """
    prefix = uuid.uuid4().hex[:8]
    backplanes = (
        RedisBackplane(where, service=service, prefix=prefix, heartbeat=0.2, node_ttl=2.0)
        for where in wheres
    )
    async with serve_hubs(backplanes, **options) as made:
        yield made


@contextlib.asynccontextmanager
async def serve_hubs(
    backplanes: Iterable[RedisBackplane], **options: Any
) -> AsyncIterator[list[Node]]:
    """A hub served on a free loopback port for each backplane; all closed on exit.

    ``backplanes`` is read one at a time, so that a hub that fails to start
    leaves only the ones before it to close. ``options`` go to each
    :class:`~wskit.hub.Hub`.
    """
    made = []
    try:
        for backplane in backplanes:
            hub = Hub(backplane=backplane, client_rooms=True, **options)
            made.append(Node(hub, await hub.serve("127.0.0.1", 0)))
        yield made
    finally:
        for node in made:
            node.server.close()
            await node.server.wait_closed()
            await node.hub.close()


@contextlib.asynccontextmanager
async def counting_client(url: str, **options: Any) -> AsyncIterator[tuple[HubClient, list[int]]]:
    """A connected :class:`~wskit.hub.HubClient` and the list it appends each ``n`` event to.

    ``options`` go to the client; it is closed on exit.
    """
    got: list[int] = []
    client = HubClient(url, **options)
    client.on("n", got.append)
    await client.connect()
    try:
        yield client, got
    finally:
        await client.close()


async def join(peer: Peer, room: str) -> None:
    assert await peer.request("join", room, channel="_wskit") is True


async def exchange(a: Node, b: Node) -> None:
    """Room emits from each hub reach a client on each, its own included."""
    async with peers(a.url, b.url) as (pa, pb):
        await join(pa, "room")
        await join(pb, "room")
        a.hub.to("room").emit("from", "a")
        await until(lambda: ["from", "a"] in pa.events and ["from", "a"] in pb.events)
        b.hub.to("room").emit("from", "b")
        await until(lambda: ["from", "b"] in pa.events and ["from", "b"] in pb.events)
        assert pa.events == pb.events == [["from", "a"], ["from", "b"]]
    assert a.backplane.connected and b.backplane.connected
