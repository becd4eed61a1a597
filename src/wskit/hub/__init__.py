"""The event hub: events, rooms, channels, requests and typed handlers.

See :mod:`wskit.hub.hub` for the theory of operation (a newcomer starts
there) and the map of the package, :mod:`wskit.hub.backplane.redis` for many
processes on Redis (``Hub(backplane="redis://...")``, imported only then)
and :mod:`wskit.hub.recovery` for the recovery of missed messages. Serve a
hub with :func:`wskit.serve` (``await wskit.serve(hub, host, port)``) or
:meth:`Hub.serve`, which also serves the JavaScript client at ``/wskit.js``.
"""

from .backplane import (
    Backplane,
    BackplaneStats,
    BackplaneUnavailable,
    HistoryError,
    MemoryBackplane,
    Node,
    Position,
    PresenceEvent,
    Target,
)
from .client import Client, ClientChannel
from .cluster import ClientInfo, Cluster
from .convert import ConversionError
from .dispatch import Answer, Middleware, MiddlewareOutcome
from .errors import ClientError, Reject, RequestError
from .hub import Hub, HubChannel
from .hub_client import HubClient
from .recovery import Recovery
from .rooms import BroadcastEmitter, RoomEmitter
from .wire import (
    RESERVED_EVENTS,
    Cancel,
    Event,
    IrisProtocol,
    IrisValue,
    Result,
    WireProtocol,
    WsWrapperProtocol,
)

__all__ = [
    "Answer",
    "Backplane",
    "BackplaneStats",
    "BackplaneUnavailable",
    "BroadcastEmitter",
    "Cancel",
    "Client",
    "ClientChannel",
    "ClientError",
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
    "Middleware",
    "MiddlewareOutcome",
    "Node",
    "RESERVED_EVENTS",
    "Reject",
    "RequestError",
    "Result",
    "RoomEmitter",
    "Target",
    "WireProtocol",
    "WsWrapperProtocol",
]
