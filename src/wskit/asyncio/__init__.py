"""The asyncio front end: server, client and the :class:`Conn` they share."""

from .client import ClientConn, connect
from .connection import Conn, MessageWriter
from .server import Server, ServerConn, ServerOptions, serve

__all__ = [
    "ClientConn",
    "Conn",
    "MessageWriter",
    "Server",
    "ServerConn",
    "ServerOptions",
    "connect",
    "serve",
]
