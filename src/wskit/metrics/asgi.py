"""Metrics of ASGI applications: :class:`MeteredAsgiConn`, and :func:`metrics_app` to expose them.

Counting: ``metrics.watch(endpoint)`` (:meth:`Metrics.watch
<wskit.metrics.Metrics.watch>`) makes an :func:`~wskit.asgi.asgi_app`
endpoint open :class:`MeteredAsgiConn` instead of
:class:`~wskit.asgi.AsgiConn` (``WebSocketEndpoint.conn_class``), under any
ASGI server: uvicorn with its own WebSocket layers, Hypercorn, Daphne.
Until then nothing counts and nothing is checked. Such a connection sees
ASGI messages, not frames, so its bytes are the messages' payloads (text
as UTF-8), not what crossed the wire. Under uvicorn with wskit's own class,
count with :func:`wskit.metrics.uvicorn.watch_uvicorn` instead, which
counts every WebSocket of the application, frames and all.

Exposing: :func:`metrics_app` is an ASGI application that answers what
:func:`~wskit.metrics.serve_metrics` answers, from the application's own
server, behind the same auth hook; :func:`metrics_route` routes ``/metrics``
to it in FastAPI or Starlette: ``app.routes.append(metrics_route(metrics))``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..asgi.connection import AsgiConn
from ..asgi.spec import (
    DENIAL_EXTENSION,
    Message,
    Receive,
    Scope,
    Send,
    request_from_scope,
    route_path,
    wire_headers,
)
from ..protocol.headers import Headers
from ..protocol.http11 import Request, Response
from .endpoint import Auth, MetricsEndpoint
from .snapshot import MetricsSnapshot

if TYPE_CHECKING:
    from .server import Metrics

__all__ = ["MeteredAsgiConn", "MetricsApp", "metrics_app", "metrics_route"]


def _payload_size(message: Message) -> int:
    """The bytes of a ``websocket.receive`` or ``websocket.send`` message's payload."""
    text = message.get("text")
    if text is None:
        data = message.get("bytes")
        return 0 if data is None else len(data)
    # isascii() reads a flag CPython keeps: most text is not encoded to be counted.
    return len(text) if text.isascii() else len(text.encode())


class MeteredAsgiConn(AsgiConn):
    """An :class:`~wskit.asgi.AsgiConn` that counts for a :class:`~wskit.metrics.Metrics`.

    Made by :meth:`Metrics.watch <wskit.metrics.Metrics.watch>` (a subclass
    per :class:`~wskit.metrics.Metrics`, named in its ``metrics`` class
    attribute); not to be made by hand. It counts the handshake's answer,
    the messages and their payload bytes both ways, and the close code.
    """

    #: The metrics this connection counts for.
    metrics: ClassVar[Metrics]

    def __init__(self, scope: Scope, receive: Receive, send: Send, **options: Any) -> None:
        super().__init__(scope, receive, send, **options)
        #: Messages received.
        self.messages_received = 0
        #: Messages sent.
        self.messages_sent = 0
        #: Payload bytes received (text as UTF-8).
        self.bytes_received = 0
        #: Payload bytes sent (text as UTF-8).
        self.bytes_sent = 0

    async def accept(
        self, subprotocol: str | None = None, headers: Headers | Iterable[tuple[str, str]] = ()
    ) -> None:
        """Accept (see :meth:`AsgiConn.accept <wskit.asgi.AsgiConn.accept>`), counted."""
        await super().accept(subprotocol, headers)
        metrics = self.metrics
        metrics.live.add(self)
        metrics.connections_total += 1
        metrics.count_handshake(101)

    async def reject(self, response: Response) -> None:
        """Refuse (see :meth:`AsgiConn.reject <wskit.asgi.AsgiConn.reject>`), counted."""
        await super().reject(response)
        if self.response is response:  # answered: the client had not left
            denial = DENIAL_EXTENSION in (self.scope.get("extensions") or {})
            # Without the denial extension the server answers 403 itself.
            self.metrics.count_handshake(response.status if denial else 403)

    async def _receive_message(self) -> Message:
        message = await _receive_message(self)
        if message["type"] == "websocket.receive":
            self.messages_received += 1
            self.bytes_received += _payload_size(message)
        return message

    async def _send_message(self, message: Message) -> None:
        await _send_message(self, message)
        if message["type"] == "websocket.send":
            self.messages_sent += 1
            self.bytes_sent += _payload_size(message)

    def _ended(self, code: int, reason: str) -> None:
        super()._ended(code, reason)
        self.metrics.retire(self)


# The overridden methods, called directly: cheaper than super() once per message.
_receive_message = AsgiConn._receive_message
_send_message = AsgiConn._send_message


class MetricsApp:
    """An ASGI application serving metrics; made by :func:`metrics_app`.

    It answers ``GET`` and ``HEAD`` (405 otherwise), after the auth hook
    (403 when it says no): a path that ends in ``/metrics.json`` with the
    snapshot as JSON, ``/rooms.json`` with the members per room (when
    ``rooms`` is given), any other with the Prometheus text format (501
    without ``prometheus_client``). Plain HTTP ``lifespan`` is acknowledged,
    so it may also be served alone.
    """

    def __init__(
        self,
        source: Callable[[], MetricsSnapshot | Awaitable[MetricsSnapshot]],
        *,
        rooms: Callable[[], Mapping[str, int] | Awaitable[Mapping[str, int]]] | None = None,
        auth: Auth | None = None,
    ) -> None:
        #: What answers each request (the same as :func:`~wskit.metrics.serve_metrics`').
        self.endpoint = MetricsEndpoint(source, rooms=rooms, auth=auth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: ``http`` and ``lifespan`` scopes."""
        kind = scope["type"]
        if kind == "lifespan":
            await _serve_lifespan(receive, send)
            return
        if kind != "http":
            raise ValueError(f"MetricsApp serves HTTP, not {kind!r}")
        asked = request_from_scope(scope)
        path = route_path(scope)
        if not path.endswith(("/metrics.json", "/rooms.json")):
            path = "/metrics"
        else:
            path = path[path.rindex("/") :]
        # The endpoint's paths, whatever the route or mount: the query stays (token_auth's).
        target = path + ("?" + asked.query if asked.query else "")
        response = await self.endpoint.answer(
            Request(asked.method, target, asked.headers, asked.version)
        )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": wire_headers(response.headers),
            }
        )
        body = b"" if asked.method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def metrics_app(
    source: Metrics | Callable[[], MetricsSnapshot | Awaitable[MetricsSnapshot]],
    *,
    rooms: Callable[[], Mapping[str, int] | Awaitable[Mapping[str, int]]] | None = None,
    auth: Auth | None = None,
) -> MetricsApp:
    """An ASGI application answering ``/metrics`` in the application's own server.

    Mount it (``app.mount("/internal", metrics_app(metrics))``: the
    exposition at ``/internal/``, the JSON at ``/internal/metrics.json``), or
    route to it with :func:`metrics_route`.

    Args:
        source: the :class:`~wskit.metrics.Metrics` (its snapshot is read
            per request), or what makes a :class:`~wskit.metrics.MetricsSnapshot`.
        rooms: makes the members per room for a ``.../rooms.json`` route;
            ``None`` serves no room names (with a :class:`~wskit.metrics.Metrics`
            given, pass ``metrics.rooms`` to serve them).
        auth: sees each request and returns whether to answer it (else 403).
            The route is served on the application's own port, public when
            the application is: give one unless something in front guards it.
    """
    # A Metrics, or what makes a snapshot (Metrics is not imported here: it imports this module).
    make: Any = getattr(source, "snapshot", None) or source
    return MetricsApp(make, rooms=rooms, auth=auth)


def metrics_route(
    source: Metrics | Callable[[], MetricsSnapshot | Awaitable[MetricsSnapshot]],
    path: str = "/metrics",
    *,
    rooms: Callable[[], Mapping[str, int] | Awaitable[Mapping[str, int]]] | None = None,
    auth: Auth | None = None,
) -> Any:
    """A Starlette route (``GET``, ``HEAD``) at ``path`` to :func:`metrics_app`'s application.

    For FastAPI and Starlette (which must be installed)::

        app.routes.append(metrics_route(metrics, auth=token_auth(token)))

    The arguments but ``path`` are :func:`metrics_app`'s.
    """
    from starlette.routing import Route

    return Route(path, metrics_app(source, rooms=rooms, auth=auth), methods=["GET", "HEAD"])
