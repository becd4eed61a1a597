"""The ASGI side of a WebSocket as uvicorn shapes it, for ``wskit.uvicorn.protocol``.

What uvicorn's built-in classes put in the scope, say in
``websocket.disconnect`` and write to its log, in one place:
:class:`Stage`, where a connection's ASGI side is; :func:`make_scope`; the
peer's and our addresses as the scope gives them; :func:`disconnect_event`;
:func:`log_answer`, uvicorn's access line. Only :class:`Stage` is public;
the functions serve ``wskit.uvicorn.protocol`` and follow its needs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any
from urllib.parse import unquote

from ..asgi.spec import DENIAL_EXTENSION, Message
from ..protocol.handshake import requested_subprotocols
from ..protocol.http11 import Request

__all__ = ["Stage"]

#: uvicorn's own logger: the access lines read as uvicorn's built-in classes write them.
logger = logging.getLogger("uvicorn.error")


class Stage(enum.Enum):
    """Where the ASGI side of a connection is (see :mod:`wskit.uvicorn`)."""

    #: The application has not answered the upgrade request yet.
    HANDSHAKE = enum.auto()
    #: The application started a denial response; its body is due.
    RESPONSE = enum.auto()
    #: The WebSocket is open for the application.
    ACCEPTED = enum.auto()
    #: The application closed or was denied, or the server shut the connection down.
    CLOSED = enum.auto()


def any_origin(request: Request) -> bool:
    """The origin policy: none, as uvicorn's own classes (the application checks)."""
    return True


def socket_address(info: Any) -> tuple[str, int] | None:
    """A socket address as the ASGI scope gives it: ``(host, port)``, or ``None``."""
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


def local_address(transport: asyncio.BaseTransport) -> tuple[str, int | None] | None:
    """The scope's ``server``: ``(host, port)``, or ``(path, None)`` on a Unix socket."""
    info = transport.get_extra_info("sockname")
    if isinstance(info, str):
        return (info, None)
    return socket_address(info)


def decode_headers(pairs: Any) -> list[tuple[str, str]]:
    """ASGI's bytes header pairs as wskit's (Latin-1 maps each byte to one character)."""
    return [
        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1")) for name, value in pairs
    ]


def disconnect_event(code: int, reason: str | None) -> Message:
    """A ``websocket.disconnect`` event; ``reason=None`` leaves the key out, as uvicorn does."""
    if reason is None:
        return {"type": "websocket.disconnect", "code": code}
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def make_scope(
    request: Request,
    *,
    asgi_version: str,
    scheme: str,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any],
) -> dict[str, Any]:
    """The ``websocket`` scope of ``request``, with every field uvicorn sets.

    ``path`` is the target's path percent-decoded, ``raw_path`` as received;
    both start with ``root_path``. Header names are lowercased, and names
    and values are bytes as they came (Latin-1). ``state`` is a copy of the
    lifespan state.
    """
    raw_path, _, query = request.target.partition("?")
    return {
        "type": "websocket",
        "asgi": {"version": asgi_version, "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": root_path,
        "path": root_path + unquote(raw_path),
        "raw_path": (root_path + raw_path).encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.raw_items()
        ],
        "subprotocols": requested_subprotocols(request),
        "state": state.copy(),
        "extensions": {DENIAL_EXTENSION: {}},
    }


def log_answer(scope: dict[str, Any], answer: str) -> None:
    """uvicorn's access line for a WebSocket: ``client - "WebSocket /path" answer``."""
    if logger.isEnabledFor(logging.INFO):
        client = scope.get("client")
        path = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        logger.info(
            '%s - "WebSocket %s" %s',
            f"{client[0]}:{client[1]}" if client else "",
            path.replace('"', "%22"),
            answer,
        )
