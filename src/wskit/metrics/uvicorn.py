"""Metrics of uvicorn with wskit's WebSocket class: :func:`watch_uvicorn`.

Run uvicorn with the counting class instead of
:class:`wskit.uvicorn.WebSocketProtocol` (the same class, counting)::

    uvicorn app:app --ws wskit.metrics.uvicorn:MeteredWebSocketProtocol

and, in the application (at import or in its lifespan), say which
:class:`~wskit.metrics.Metrics` it counts into::

    metrics = Metrics()
    watch_uvicorn(metrics)
    app.routes.append(metrics_route(metrics, auth=token_auth(token)))

Every WebSocket of the application counts, whatever serves it (FastAPI and
Starlette routes, plain ASGI, :func:`~wskit.asgi.asgi_app`), with the names
of a wskit server's metrics: connections open and total, handshakes by
status (101, the application's denials, 403, 500, and 400 or 426 for
requests that are no handshake), messages and bytes both ways (bytes as on
the wire), close codes, and the application's exceptions as handler
errors. The counting is :class:`~wskit.metrics.server.CountingConn`'s, as for
wskit's own server. With the plain class nothing counts and nothing is
checked. ``--workers`` runs a process per worker: each counts its own
connections, and a route answers for the worker that serves the request.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected

from ..asgi.spec import Receive, Scope, Send
from ..protocol.http11 import Response
from ..uvicorn.protocol import WebSocketProtocol, WebSocketProtocol1001
from .server import CountingConn, Metrics

__all__ = ["MeteredWebSocketProtocol", "MeteredWebSocketProtocol1001", "watch_uvicorn"]


class MeteredWebSocketProtocol(CountingConn, WebSocketProtocol):
    """:class:`~wskit.uvicorn.WebSocketProtocol`, counting for :func:`watch_uvicorn`'s metrics.

    ``--ws wskit.metrics.uvicorn:MeteredWebSocketProtocol``. A subclass of
    your own counts too: derive it from this class.
    """

    __slots__ = ("messages_received",)

    #: What every connection of the process counts into; set by :func:`watch_uvicorn`
    #: (until then, a :class:`~wskit.metrics.Metrics` nobody reads).
    metrics = Metrics()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages_received = 0
        app = self._app
        metrics = self.metrics

        async def counted_app(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            except ClientDisconnected:
                raise
            except Exception:
                metrics.app_errors += 1
                raise

        self._app = counted_app

    def _write_response(self, response: Response) -> None:
        # Every answer but the 101 goes out here: denials, 403, 500, 400 and 426.
        self.metrics.count_handshake(response.status)
        super()._write_response(response)


class MeteredWebSocketProtocol1001(MeteredWebSocketProtocol, WebSocketProtocol1001):
    """:class:`~wskit.uvicorn.WebSocketProtocol1001` (1001 on shutdown), counting."""

    __slots__ = ()


def watch_uvicorn(metrics: Metrics) -> None:
    """Count this process' uvicorn WebSockets into ``metrics`` from now on.

    For the connections of uvicorn run with ``--ws
    wskit.metrics.uvicorn:MeteredWebSocketProtocol`` (or its 1001
    variant): call it when the application is imported or in its lifespan.
    """
    MeteredWebSocketProtocol.metrics = metrics
