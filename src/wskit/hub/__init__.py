"""The event hub: events, rooms, channels, requests and typed handlers.

See :mod:`wskit.hub.hub` for the theory of operation, :mod:`wskit.hub.redis`
for many processes on Redis (``Hub(backplane="redis://...")``, imported only
then) and :mod:`wskit.hub.recovery` for the recovery of missed messages. Serve a hub with
:func:`wskit.serve` (``await wskit.serve(hub, host, port)``) or
:meth:`Hub.serve`, which also serves the JavaScript client at ``/wskit.js``.
"""

from .backplane import (
    Backplane,
    BackplaneStats,
    HistoryError,
    MemoryBackplane,
    Node,
    Position,
    PresenceEvent,
    Target,
)
from .client import HubClient
from .cluster import ClientInfo, Cluster
from .convert import ConversionError
from .hub import Client, ClientChannel, Hub, HubChannel, Reject, RequestError, RoomEmitter
from .recovery import Recovery
from .wire import Cancel, Event, IrisProtocol, IrisValue, Result, WireProtocol, WsWrapperProtocol

__all__ = [
    "Backplane",
    "BackplaneStats",
    "Cancel",
    "Client",
    "ClientChannel",
    "ClientInfo",
    "Cluster",
    "HistoryError",
    "Position",
    "PresenceEvent",
    "Recovery",
    "ConversionError",
    "Event",
    "Hub",
    "HubChannel",
    "HubClient",
    "IrisProtocol",
    "IrisValue",
    "MemoryBackplane",
    "Node",
    "Reject",
    "RequestError",
    "Result",
    "RoomEmitter",
    "Target",
    "WireProtocol",
    "WsWrapperProtocol",
]
