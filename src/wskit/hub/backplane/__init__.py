"""Backplanes: how an emit to a room, a client or everyone reaches every node.

The hub never writes a room emit straight to its members: it hands the
encoded message to its backplane, which delivers it to every hub attached
to it (every process, with a broker) by calling :meth:`Node.deliver`. The
in-memory backplane, the default, delivers at once to the one hub in this
process; a broker-backed one (Redis) publishes and delivers on receipt.

The package holds :mod:`~.interface` (:class:`Backplane`, what it needs of
a hub, and the types they exchange), :mod:`~.memory` (:class:`MemoryBackplane`)
and :mod:`~.redis` (``RedisBackplane``, imported only when asked for: it
needs the ``redis`` package).
"""

from .interface import (
    Backplane,
    BackplaneStats,
    BackplaneUnavailable,
    ClusterNode,
    Entry,
    HistoryError,
    Node,
    Position,
    PresenceEvent,
    Target,
)
from .interface import check_since as check_since  # imported from here before the split
from .memory import MemoryBackplane

__all__ = [
    "Target",
    "Node",
    "ClusterNode",
    "Backplane",
    "MemoryBackplane",
    "Position",
    "Entry",
    "HistoryError",
    "PresenceEvent",
    "BackplaneStats",
    "BackplaneUnavailable",
]
