"""Run wskit handlers and hubs in any ASGI application (Starlette, FastAPI, ...).

An ASGI server (uvicorn, hypercorn, daphne) owns the socket, the RFC 6455
framing, compression and keepalive pings; wskit sees each connection as a
stream of ASGI messages and gives the handler an :class:`AsgiConn`, with the
API of :class:`wskit.Conn`, so a ``Conn`` handler or a
:class:`wskit.hub.Hub` runs unchanged on either server. :func:`asgi_app`
builds the ASGI application, a :class:`WebSocketEndpoint`, which runs the
upgrader of :class:`~wskit.ServerOptions` (path, ``process_request``, origin
check, subprotocol, ``authorize``) before accepting, refuses with a JSON
body ``{"error": "<status text>"}``, and answers plain HTTP with ``426
Upgrade Required`` (and, for a hub, serves ``.../wskit.js`` and
``.../wskit.mjs``).

The package, one job per module:

* :mod:`wskit.asgi.spec`: the ASGI types, :class:`ASGIProtocolError`, and
  reading a scope (:func:`request_from_scope`);
* :mod:`wskit.asgi.connection`: :class:`AsgiConn` and its states
  (:class:`ConnState`);
* :mod:`wskit.asgi.endpoint`: :class:`WebSocketEndpoint`, :func:`asgi_app`,
  the upgrader and its refusals (:class:`UpgradeRefused`,
  :func:`json_error_response`);
* :mod:`wskit.asgi.shutdown`: lifespan and shutdown, :func:`shutdown_all` and
  :func:`install_uvicorn_shutdown`.

Mounting
========

Starlette::

    from starlette.applications import Starlette
    from starlette.routing import Mount, WebSocketRoute

    hub = Hub()
    hub_endpoint = asgi_app(hub)
    echo_endpoint = asgi_app(echo, origins=["https://example.com"])
    app = Starlette(
        routes=[
            WebSocketRoute("/echo", echo_endpoint),
            *hub_endpoint.routes("/hub"),    # ws /hub, GET /hub (426), /hub/wskit.js
        ],
        lifespan=hub_endpoint.lifespan,
    )

FastAPI (the endpoint is an ASGI app, or call it from a route so that
FastAPI dependencies run first)::

    app = FastAPI()
    app.router.routes.extend(hub_endpoint.routes("/hub"))

    @app.websocket("/echo")
    async def echo_route(websocket: WebSocket) -> None:
        await echo_endpoint.run(websocket)

Shutdown
========

On shutdown every open connection should be closed with 1001 ("going
away") and a reason, as :meth:`wskit.Server.close` does. How to get there
depends on the server, because the ASGI ``lifespan.shutdown`` event comes
*after* the server has dealt with open connections:

* uvicorn (0.30 and later, every WebSocket implementation) closes every
  open WebSocket itself with **1012** (service restart) as soon as it
  begins to shut down, then waits for the handlers, and only then sends
  ``lifespan.shutdown``. When you run uvicorn from Python, call
  :func:`install_uvicorn_shutdown` on the ``uvicorn.Server`` so that wskit
  closes its connections with 1001 first. With the ``uvicorn`` command
  line clients see 1012, which also tells them to reconnect.
* Every other case: wire :meth:`WebSocketEndpoint.lifespan` as the
  application's lifespan (``Starlette(lifespan=endpoint.lifespan)``), or
  call ``await endpoint.shutdown()`` (or :func:`shutdown_all`) at the end of
  your own lifespan; when the endpoint is the whole application it handles
  ``lifespan`` itself. Connections still open then are closed with 1001.

Limits
======

ASGI has no ping, pong or fragmentation: :meth:`AsgiConn.ping` raises
(the server's keepalive, e.g. uvicorn's ``ws_ping_interval``, does the
job), an iterable passed to :meth:`AsgiConn.send` is joined into one
message, and :meth:`AsgiConn.recv_streaming` yields each message whole.
The server applies its own message size limit before wskit sees a message
(uvicorn: ``ws_max_size``, 16 MiB) and its own compression setting
(uvicorn: ``ws_per_message_deflate``); ``ServerOptions.compression``,
``ping_interval``, ``ping_timeout``, ``handshake_timeout``,
``max_header_size`` and ``server_header`` do not apply here. uvicorn
writes a ``websocket.close`` only once its transport is writable, so
closing a client that stopped reading waits for ``close_timeout`` and then
gives up on the close handshake.
"""

from .connection import AsgiConn, ConnState
from .endpoint import UpgradeRefused, WebSocketEndpoint, asgi_app, json_error_response
from .shutdown import install_uvicorn_shutdown, shutdown_all
from .spec import ASGIProtocolError, request_from_scope

__all__ = [
    "ASGIProtocolError",
    "AsgiConn",
    "ConnState",
    "UpgradeRefused",
    "WebSocketEndpoint",
    "asgi_app",
    "install_uvicorn_shutdown",
    "json_error_response",
    "request_from_scope",
    "shutdown_all",
]
