"""Backplanes: how an emit to a room, a client or everyone reaches every node.

The hub never writes a room emit straight to its members: it hands the
encoded message to its backplane, which delivers it to every hub attached
to it (every process, with a broker) by calling :meth:`Node.deliver`. The
in-memory backplane, the default, delivers at once to the one hub in this
process; a broker-backed one (Redis) publishes and delivers on receipt.
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = ["Target", "Node", "Backplane", "MemoryBackplane"]


class Target(enum.Enum):
    """Who an emit is for."""

    ROOM = "room"
    CLIENT = "client"
    ALL = "all"


class Node(Protocol):
    """What a backplane needs of a hub: a way to deliver to local clients."""

    def deliver(self, target: Target, name: str, message: str, exclude: str | None) -> int:
        """Write ``message`` to the local clients that ``target``/``name`` selects.

        ``exclude`` is a client id that must not receive it (the sender of a
        broadcast). Returns how many clients it was written to.
        """
        ...


class Backplane:
    """The interface of every backplane; :class:`MemoryBackplane` is the simplest.

    A hub calls :meth:`attach` once, :meth:`start` before serving and
    :meth:`close` after, :meth:`subscribe`/:meth:`unsubscribe` as rooms
    gain their first or lose their last local member (so a node hears only
    what its clients need), and :meth:`publish` for every emit.
    """

    def attach(self, node: Node) -> None:
        """Register the hub that receives deliveries."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect to the broker, if there is one."""

    async def close(self) -> None:
        """Disconnect from the broker, if there is one."""

    def subscribe(self, room: str) -> None:
        """A room got its first local member: start receiving its emits."""

    def unsubscribe(self, room: str) -> None:
        """A room lost its last local member: stop receiving its emits."""

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Deliver ``message`` to ``target`` on every node, this one included."""
        raise NotImplementedError


class MemoryBackplane(Backplane):
    """Delivers in this process only; the default, and the reference behaviour."""

    def __init__(self) -> None:
        self._nodes: list[Node] = []

    def attach(self, node: Node) -> None:
        """Register ``node``; several hubs may share one memory backplane."""
        self._nodes.append(node)

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Deliver to every attached hub now."""
        for node in self._nodes:
            node.deliver(target, name, message, exclude)
