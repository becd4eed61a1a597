"""Presence over Redis: who is in which room, on which live node.

Each room's entries are a hash, ``P:presence:ROOM``, client id to its info
(with ``"node"``); ``P:node-rooms:NODE`` lists the rooms a node has entries
in. A join or a leave is announced on the room's channel (a presence
message, ``{"k":"p","e":"join"|"leave","r":ROOM,"c":CLIENT,"n":NODE,...}``),
to the nodes that have members there; the node that made it tells its own
hub at once.

Liveness: each node beats (:meth:`Presence.beat`), keeping ``P:alive:NODE``
alive for ``node_ttl`` and its id in ``P:nodes``. The entries of a node whose
key expired are ignored at once, and removed, with leave events, by the next
beat of any node (:meth:`Presence.beat` sweeps them; one node does it).
After a reconnection (Redis may have restarted empty) a node registers its
entries again (:meth:`Presence.restore`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..interface import PresenceEvent, Target
from .link import OUTAGE, Link, logger
from .outbox import Outbox

__all__ = ["Presence", "presence_event", "presence_message"]


def presence_message(kind: str, room: str, client_id: str, node: str, **extra: Any) -> str:
    """The presence message announcing a ``"join"`` or a ``"leave"`` (no body after it)."""
    header = {"k": "p", "e": kind, "r": room, "c": client_id, "n": node, **extra}
    return json.dumps(header, separators=(",", ":")) + "\n"


def presence_event(header: dict[str, Any]) -> PresenceEvent:
    """The event a presence message announces."""
    return PresenceEvent(header["e"], header["r"], header["c"], header["n"], header.get("i") or {})


class Presence:
    """This node's presence entries in Redis, its liveness beat, and the sweep of dead nodes."""

    def __init__(self, link: Link, outbox: Outbox) -> None:
        self._link = link
        self._outbox = outbox

    def add(self, room: str, client_id: str, info: dict[str, Any]) -> None:
        """Record the entry, announce the join (here at once, elsewhere through Redis)."""
        link = self._link
        node_id = link.options.node_id
        assert link.node is not None
        link.node.presence_changed(PresenceEvent("join", room, client_id, node_id, info))
        entry = json.dumps({**info, "node": node_id})
        event = presence_message("join", room, client_id, node_id, i=info)
        keys, publish = link.keys, link.publish_command

        def build(pipe: Any) -> None:
            pipe.hset(keys.presence(room), client_id, entry)
            pipe.sadd(keys.key("node-rooms", node_id), room)
            pipe.execute_command(publish, keys.channel(Target.ROOM, room), event)

        self._outbox.command(build)

    def remove(self, room: str, client_id: str) -> None:
        """Remove the entry, announce the leave."""
        link = self._link
        node_id = link.options.node_id
        assert link.node is not None
        link.node.presence_changed(PresenceEvent("leave", room, client_id, node_id))
        event = presence_message("leave", room, client_id, node_id)
        keys, publish = link.keys, link.publish_command

        def build(pipe: Any) -> None:
            pipe.hdel(keys.presence(room), client_id)
            pipe.execute_command(publish, keys.channel(Target.ROOM, room), event)

        self._outbox.command(build)

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room`` on the nodes that are alive."""
        client, keys = self._link.client, self._link.keys
        assert client is not None
        raw = await client.hgetall(keys.presence(room))
        entries = {key.decode(): json.loads(value) for key, value in raw.items()}
        nodes = sorted({entry.get("node", "") for entry in entries.values()})
        if not nodes:
            return {}
        alive = await client.mget([keys.key("alive", node) for node in nodes])
        dead = {node for node, beat in zip(nodes, alive, strict=True) if beat is None}
        return {key: entry for key, entry in entries.items() if entry.get("node") not in dead}

    async def restore(self) -> None:
        """After a reconnection (Redis may have restarted empty): register again."""
        link = self._link
        assert link.node is not None and link.client is not None
        entries = link.node.presence_entries()
        if not entries:
            return
        keys, node_id = link.keys, link.options.node_id
        try:
            async with link.client.pipeline(transaction=False) as pipe:
                for room, client_id, info in entries:
                    entry = json.dumps({**info, "node": node_id})
                    pipe.hset(keys.presence(room), client_id, entry)
                    pipe.sadd(keys.key("node-rooms", node_id), room)
                await pipe.execute()
        except OUTAGE as exc:
            link.failed("cannot restore presence", exc)

    async def beat(self, ttl: int) -> None:
        """Keep this node alive for ``ttl`` ms more; sweep the nodes that are not."""
        client, keys, node_id = self._link.client, self._link.keys, self._link.options.node_id
        assert client is not None
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(keys.key("alive", node_id), "1", px=ttl)
            pipe.sadd(keys.key("nodes"), node_id)
            pipe.smembers(keys.key("nodes"))
            _, _, members = await pipe.execute()
        nodes = sorted(member.decode() for member in members)
        alive = await client.mget([keys.key("alive", node) for node in nodes])
        for node, beat in zip(nodes, alive, strict=True):
            if beat is None:
                await self._sweep(node, ttl)

    async def retire(self, timeout: float) -> None:
        """This node leaves the cluster: it stops counting as alive (within ``timeout`` s)."""
        client, keys, node_id = self._link.client, self._link.keys, self._link.options.node_id
        async with client.pipeline(transaction=False) as pipe:
            pipe.delete(keys.key("alive", node_id))
            pipe.srem(keys.key("nodes"), node_id)
            await asyncio.wait_for(pipe.execute(), timeout)

    async def _sweep(self, dead: str, ttl: int) -> None:
        """Remove a dead node's presence entries (one node does it), announcing the leaves."""
        client, keys, node_id = self._link.client, self._link.keys, self._link.options.node_id
        if not await client.set(keys.key("sweep", dead), node_id, nx=True, px=ttl):
            return
        rooms = await client.smembers(keys.key("node-rooms", dead))
        for raw_room in rooms:
            room = raw_room.decode()
            key = keys.presence(room)
            entries = await client.hgetall(key)
            gone = [
                member.decode()
                for member, value in entries.items()
                if json.loads(value).get("node") == dead
            ]
            if not gone:
                continue
            async with client.pipeline(transaction=False) as pipe:
                publish = self._link.publish_command
                pipe.hdel(key, *gone)
                for client_id in gone:
                    event = presence_message("leave", room, client_id, dead, swept=True)
                    pipe.execute_command(publish, keys.channel(Target.ROOM, room), event)
                await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            pipe.delete(keys.key("node-rooms", dead))
            pipe.srem(keys.key("nodes"), dead)
            await pipe.execute()
        logger.info("node %s is gone; its presence entries were removed", dead)
