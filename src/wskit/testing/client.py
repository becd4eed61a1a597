"""The client side of an in-memory connection: :class:`ClientOptions` and :func:`open_client`.

The client is wskit's own :class:`~wskit.asyncio.client.ClientConn`, the
connection :func:`wskit.connect` returns, on a
:class:`~wskit.testing.transport.MemoryTransport`: it sends the upgrade
request, checks the answer and speaks the protocol exactly as over TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Unpack

from ..asyncio.client import ClientConn, ConnOptions
from ..protocol.client import client_handshake, compression_options
from ..protocol.deflate import DeflateOptions
from ..protocol.handshake import USER_AGENT, HeadersLike
from ..protocol.uri import parse_uri
from .transport import transport_pair

__all__ = ["HOST", "ClientOptions", "open_client"]

#: The host of every in-memory connection: the ``Host`` header and the URI's host.
HOST = "testserver"


class ClientOptions(ConnOptions, total=False):
    """What the test client takes: those options of :func:`wskit.connect` that apply in memory.

    The handshake's (``origin``, ``subprotocols``, ``compression``,
    ``headers``, ``user_agent``), ``open_timeout``, and the options of the
    connection (:class:`~wskit.asyncio.client.ConnOptions`: ``max_size``,
    ``max_queue``, ``ping_interval``...), each with the default of
    :func:`wskit.connect`.
    """

    origin: str | None
    subprotocols: Sequence[str]
    compression: str | DeflateOptions | None
    headers: HeadersLike | None
    user_agent: str | None
    open_timeout: float | None


async def open_client(
    accept: Callable[[], asyncio.BaseProtocol], path: str, **options: Unpack[ClientOptions]
) -> ClientConn:
    """Connect a client to the protocol ``accept()`` makes, and complete the opening handshake.

    Args:
        accept: makes the server's protocol of the new connection.
        path: the request target, ``/`` and an optional query string.
        **options: see :class:`ClientOptions`.

    Raises:
        ValueError: ``path`` does not start with ``/``.
        HandshakeRejected: the server refused the handshake.
        TimeoutError: no answer within ``open_timeout`` seconds.
    """
    if not path.startswith("/"):
        raise ValueError(f"the path must start with '/', not {path!r}")
    open_timeout = options.pop("open_timeout", 10.0)
    handshake = client_handshake(
        parse_uri(f"ws://{HOST}{path}"),
        origin=options.pop("origin", None),
        subprotocols=options.pop("subprotocols", ()),
        compression=compression_options(options.pop("compression", "deflate")),
        headers=options.pop("headers", None),
        user_agent=options.pop("user_agent", USER_AGENT),
    )
    conn = ClientConn(handshake, **options)
    transport, _ = transport_pair(conn, accept())
    try:
        async with asyncio.timeout(open_timeout):
            await conn.handshake_done
    except TimeoutError:
        transport.abort()
        raise TimeoutError(f"timed out opening an in-memory WebSocket to {path}") from None
    except BaseException:
        transport.abort()
        raise
    return conn
