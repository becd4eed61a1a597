"""Hubs on one Redis topology, for the backplane's tests: made, joined, exchanging emits."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import wskit
from hub.redis_support import Peer, peers, until
from wskit.hub import Hub
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
    made = []
    try:
        for where in wheres:
            backplane = RedisBackplane(
                where, service=service, prefix=prefix, heartbeat=0.2, node_ttl=2.0
            )
            hub = Hub(backplane=backplane, client_rooms=True, **options)
            made.append(Node(hub, await hub.serve("127.0.0.1", 0)))
        yield made
    finally:
        for node in made:
            node.server.close()
            await node.server.wait_closed()
            await node.hub.close()


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
