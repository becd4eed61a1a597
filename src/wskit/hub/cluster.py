"""Node-to-node calls: ``hub.cluster`` asks and acts on every node of the cluster.

With the memory backplane the cluster is this process (every hub attached
to the same backplane); with Redis, the calls go over request/response
channels and wait at most ``timeout`` seconds for the answers. A node that
does not answer in time is left out of a listing.

The other side, answering the calls of other nodes, is the hub's
``handle_call`` (:class:`~wskit.hub.backplane.ClusterNode`). :class:`Cluster`
needs of its hub only :class:`ClusterHub`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from .backplane import Backplane

__all__ = ["Cluster", "ClusterHub", "ClientInfo"]


class ClusterHub(Protocol):
    """What :class:`Cluster` needs of its hub: the backplane, and this node's answers."""

    @property
    def backplane(self) -> Backplane:
        """Carries the calls to the other nodes."""
        ...

    def is_local(self, client_id: str) -> bool:
        """Whether the client is connected to this node."""
        ...

    def handle_call(self, op: str, args: dict[str, Any]) -> Awaitable[Any]:
        """Answer a call on this node (``clients``, ``rooms``, ``join``...)."""
        ...


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A client somewhere in the cluster: its id, its node and its rooms."""

    id: str
    node: str
    rooms: tuple[str, ...]


class Cluster:
    """The cluster as one hub sees it: ``await hub.cluster.clients("lobby")``."""

    def __init__(self, hub: ClusterHub, timeout: float = 2.0) -> None:
        self.hub = hub
        #: Seconds to wait for the nodes' answers.
        self.timeout = timeout

    async def _call(self, op: str, args: dict[str, Any], client_id: str | None = None) -> list[Any]:
        return await self.hub.backplane.call(op, args, client_id, self.timeout)

    async def clients(self, room: str | None = None) -> list[ClientInfo]:
        """Every client of every node (socket.io's ``fetchSockets``), or those in ``room``."""
        found: dict[str, ClientInfo] = {}
        for answer in await self._call("clients", {"room": room}):
            for item in answer or ():
                info = ClientInfo(str(item["id"]), str(item["node"]), tuple(item["rooms"]))
                found[info.id] = info
        return sorted(found.values(), key=lambda info: (info.node, info.id))

    async def rooms(self) -> set[str]:
        """The rooms that have members on some node."""
        names: set[str] = set()
        for answer in await self._call("rooms", {}):
            names.update(answer or ())
        return names

    async def _on_client(self, op: str, client_id: str, **args: Any) -> bool:
        if self.hub.is_local(client_id):  # no round trip
            return bool(await self.hub.handle_call(op, {"client": client_id, **args}))
        answers = await self._call(op, {"client": client_id, **args}, client_id)
        return any(answer is True for answer in answers)

    async def join(self, client_id: str, room: str) -> bool:
        """Make the client ``client_id``, on whichever node, join ``room``; ``False``: not found."""
        return await self._on_client("join", client_id, room=room)

    async def leave(self, client_id: str, room: str) -> bool:
        """Make the client leave ``room``; ``False`` if it is not found or not in it."""
        return await self._on_client("leave", client_id, room=room)

    async def disconnect(self, client_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close the client's connection, on whichever node; ``False`` if it is not found."""
        return await self._on_client("disconnect", client_id, code=code, reason=reason)
