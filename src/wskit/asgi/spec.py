"""The ASGI interface as wskit reads it: types, the error, and the scope.

What the rest of :mod:`wskit.asgi` shares, below all of it: the type
aliases of the ASGI 3 interface (a scope, a message, the ``receive`` and
``send`` callables, an application), the name of the denial-response
extension, :class:`ASGIProtocolError` for a message that breaks the
interface, and the readers that turn a scope into wskit's own objects
(:func:`request_from_scope`, :func:`headers_from_scope`, :func:`route_path`)
and wskit's headers into ASGI's (:func:`wire_headers`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..exceptions import WebSocketError
from ..protocol.headers import Headers
from ..protocol.http11 import Request

__all__ = [
    "DENIAL_EXTENSION",
    "ASGIApp",
    "ASGIProtocolError",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "headers_from_scope",
    "request_from_scope",
    "route_path",
    "wire_headers",
]

Scope = MutableMapping[str, Any]
"""An ASGI connection scope."""
Message = MutableMapping[str, Any]
"""An ASGI event, received or sent."""
Receive = Callable[[], Awaitable[Message]]
"""The ASGI ``receive`` callable."""
Send = Callable[[Message], Awaitable[None]]
"""The ASGI ``send`` callable."""
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

DENIAL_EXTENSION = "websocket.http.response"
"""The ASGI extension that lets an application refuse a WebSocket with any HTTP response."""


class ASGIProtocolError(WebSocketError, RuntimeError):
    """An ASGI message arrived, or was about to be sent, in a state that forbids it.

    The message names the state, what was expected and what came, e.g.
    ``expected ASGI message 'websocket.connect', got 'websocket.receive'``.
    """


def headers_from_scope(scope: Scope) -> Headers:
    """The request headers of an ASGI scope (ASGI's bytes pairs, decoded as Latin-1)."""
    return Headers(
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    )


def request_from_scope(scope: Scope) -> Request:
    """The handshake request of an ASGI ``websocket`` (or ``http``) scope, as a wskit ``Request``.

    The target is the path as received (``raw_path`` when the server gives
    it, so still percent-encoded and including any mount prefix) plus the
    query string; the method is ``GET`` for a WebSocket.
    """
    raw_path = scope.get("raw_path")
    if raw_path:
        path = raw_path.decode("latin-1")
    else:
        # ASGI's ``path`` is decoded and includes ``root_path``.
        path = urllib.parse.quote(scope.get("path") or "/")
    query = scope.get("query_string", b"")
    target = path + ("?" + query.decode("latin-1") if query else "")
    method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
    version = "HTTP/" + str(scope.get("http_version", "1.1"))
    return Request(method, target, headers_from_scope(scope), version)


def route_path(scope: Scope) -> str:
    """The path below the mount point (what a router matched on)."""
    path: str = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def wire_headers(headers: Headers | Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI sends them: lowercase names and values as Latin-1 bytes."""
    items = headers.raw_items() if isinstance(headers, Headers) else headers
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items]
