"""wskit: a WebSocket toolkit for asyncio.

The protocol (RFC 6455 with RFC 7692 permessage-deflate) as a sans-I/O
core in :mod:`wskit.protocol`, and an asyncio server and client on top::

    import wskit

    async def echo(conn: wskit.Conn) -> None:
        async for message in conn:
            await conn.send(message)

    server = await wskit.serve(echo, "127.0.0.1", 8765)
"""

from .asyncio.broadcast import broadcast
from .asyncio.client import ClientConn, connect
from .asyncio.connection import Conn, MessageWriter
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
from .protocol.frames import CloseCode
from .protocol.headers import Headers
from .protocol.http11 import Request, Response

__version__ = "0.1.0"

__all__ = [
    "ClientConn",
    "CloseCode",
    "Conn",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DeflateOptions",
    "HandshakeRejected",
    "Headers",
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
    "is_close_error",
    "is_unexpected_close_error",
    "serve",
]
