"""wskit: a WebSocket toolkit for asyncio.

The protocol (RFC 6455 with RFC 7692 permessage-deflate) as a sans-I/O
core in :mod:`wskit.protocol`, and an asyncio server and client on top::

    import wskit

    async def echo(conn: wskit.Conn) -> None:
        async for message in conn:
            await conn.send(message)

    server = await wskit.serve(echo, "127.0.0.1", 8765)

The hub (:class:`Hub`, :class:`Client`) is here too, imported on first use,
so that ``import wskit`` does not load :mod:`wskit.hub`.
"""

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

# The version has one source, the package metadata (pyproject.toml). It is set
# before the submodules are imported: the handshake's User-Agent reads it.
try:
    __version__: str = _metadata.version("wskit")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from .asyncio.broadcast import broadcast
from .asyncio.client import ClientConn, connect
from .asyncio.connection import Conn, ConnectionAPI, MessageWriter
from .asyncio.server import Server, ServerConn, ServerOptions, serve
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
    InvalidHandshake,
    InvalidRequest,
    InvalidResponse,
    InvalidURI,
    InvalidUTF8,
    LocalProtocolError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    WebSocketError,
    is_close_error,
    is_unexpected_close_error,
)
from .protocol.connection import PreparedMessage, State
from .protocol.deflate import DeflateOptions
from .protocol.frames import CloseCode, encode_close_payload
from .protocol.handshake import is_websocket_upgrade, requested_subprotocols
from .protocol.headers import Headers
from .protocol.http11 import Request, Response

if TYPE_CHECKING:
    from .hub import Client, Hub

__all__ = [
    "Client",
    "ClientConn",
    "CloseCode",
    "Conn",
    "ConnectionAPI",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DeflateOptions",
    "HandshakeRejected",
    "Headers",
    "Hub",
    "InvalidHandshake",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidURI",
    "InvalidUTF8",
    "LocalProtocolError",
    "MessageWriter",
    "PayloadTooBig",
    "PreparedMessage",
    "ProtocolError",
    "ProxyError",
    "Request",
    "Response",
    "Server",
    "ServerConn",
    "ServerOptions",
    "State",
    "WebSocketError",
    "broadcast",
    "connect",
    "encode_close_payload",
    "is_websocket_upgrade",
    "requested_subprotocols",
    "is_close_error",
    "is_unexpected_close_error",
    "serve",
]


#: The names imported on first use, and the module each comes from.
_LAZY = {"Hub": "wskit.hub", "Client": "wskit.hub"}


def __getattr__(name: str) -> Any:
    """Import the hub's names on first use (PEP 562): ``import wskit`` stays light."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wskit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
