"""A hub on Redis for the cluster tests: ``wskit serve cluster_app:hub``.

``WSKIT_TEST_REDIS`` is the Redis URL; ``WSKIT_TEST_WINDOW`` the recovery
window in seconds. Liveness beats every 0.25 s and a node counts as dead
1.5 s after its last one, so that the tests stay short.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from wskit.hub import Client, Hub, PresenceEvent
from wskit.hub.recovery import Recovery
from wskit.hub.redis import RedisBackplane

backplane = RedisBackplane(
    os.environ.get("WSKIT_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    prefix="t",
    heartbeat=0.25,
    node_ttl=1.5,
    buffer=int(os.environ.get("WSKIT_TEST_BUFFER", "10000")),
)
hub = Hub(
    backplane=backplane,
    client_rooms=True,
    presence=True,
    presence_info=lambda client: {"pid": os.getpid()},
    recovery=Recovery(window=float(os.environ.get("WSKIT_TEST_WINDOW", "120"))),
)
presence_events: list[dict[str, Any]] = []
pumps: set[asyncio.Task[None]] = set()


@hub.on_presence
def record(event: PresenceEvent) -> None:
    presence_events.append({"kind": event.kind, "room": event.room, "client": event.client_id})


@hub.on("node")
def node() -> dict[str, Any]:
    return {"node": hub.node_id, "pid": os.getpid()}


@hub.on("whoami")
def whoami(client: Client) -> str:
    return client.id


@hub.on("emit")
def emit(room: str, event: str, *args: Any) -> bool:
    hub.to(room).emit(event, *args)
    return True


@hub.on("emit_to")
def emit_to(rooms: list[str], exclude: list[str], event: str, *args: Any) -> bool:
    hub.to(*rooms).exclude(*exclude).emit(event, *args)
    return True


@hub.on("close_room")
async def close_room(room: str) -> int:
    return await hub.close_room(room)


@hub.on("pump")
def pump(room: str, count: int, interval: float) -> bool:
    """Emit ("seq", 0), ("seq", 1)... to ``room``, one every ``interval`` seconds."""

    async def run() -> None:
        for index in range(count):
            hub.to(room).emit("seq", index)
            await asyncio.sleep(interval)

    task = asyncio.ensure_future(run())
    pumps.add(task)
    task.add_done_callback(pumps.discard)
    return True


@hub.on("pumping")
def pumping() -> bool:
    return bool(pumps)


@hub.on("stats")
def stats() -> dict[str, int]:
    return hub.backplane.stats.as_dict()


@hub.on("presence")
async def presence(room: str) -> dict[str, Any]:
    return await hub.presence(room)


@hub.on("presence_events")
def events() -> list[dict[str, Any]]:
    return presence_events


@hub.on("clients")
async def clients(room: str | None = None) -> list[list[str]]:
    return [[info.id, info.node] for info in await hub.cluster.clients(room)]


@hub.on("rooms")
async def rooms() -> list[str]:
    return sorted(await hub.cluster.rooms())


@hub.on("remote")
async def remote(op: str, client_id: str, room: str = "") -> bool:
    if op == "join":
        return await hub.cluster.join(client_id, room)
    if op == "leave":
        return await hub.cluster.leave(client_id, room)
    return await hub.cluster.disconnect(client_id, 4000, "bye")
