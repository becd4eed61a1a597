"""The event hub: events, rooms, channels, requests and typed handlers.

See :mod:`wskit.hub.hub` for the theory of operation. Serve a hub with
:func:`wskit.serve` (``await wskit.serve(hub, host, port)``) or
:meth:`Hub.serve`, which also serves the JavaScript client at ``/wskit.js``.
"""

from .backplane import Backplane, MemoryBackplane, Node, Target
from .convert import ConversionError
from .hub import Client, ClientChannel, Hub, HubChannel, Reject, RequestError, RoomEmitter
from .wire import Cancel, Event, IrisProtocol, IrisValue, Result, WireProtocol, WsWrapperProtocol

__all__ = [
    "Backplane",
    "Cancel",
    "Client",
    "ClientChannel",
    "ConversionError",
    "Event",
    "Hub",
    "HubChannel",
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
