"""The ASGI application: :class:`WebSocketEndpoint`, built by :func:`asgi_app`.

Theory of operation
===================

For a ``websocket`` scope the endpoint runs the upgrader of
:class:`~wskit.ServerOptions` before accepting: the ``path`` filter, the
``process_request`` hook (which may refuse with any :class:`~wskit.Response`),
the origin check (gorilla's same-host default, or an allow-list, or
``check_origin``), subprotocol selection, then the ``authorize`` hook; it
accepts with the ``extra_headers`` and runs the handler on an
:class:`~wskit.asgi.connection.AsgiConn`. When the handler returns the
connection is closed with 1000; when it raises, with 1011 ``"Internal server
error (error <id>)"``, the traceback logged under the same id (the exception
text reaches the client only with ``debug``). Refusals made by the
upgrader itself answer with a JSON body ``{"error": "<status text>"}``
(goyave's format; the reason itself when ``debug``), sent as an HTTP
response when the server supports the ``websocket.http.response`` extension
and as a bare 403 otherwise.

The server-wide limits of :class:`~wskit.ServerOptions` (``max_connections``,
``max_connections_per_ip``, ``handshake_rate``) apply to the WebSockets of
one endpoint, from the ``websocket.connect`` message to the handler's end,
and are refused with 503 like the plain server's (see
:mod:`wskit.asyncio.admission`); under ``uvicorn --workers N``, per process.
The ASGI server has accepted the socket and read the request before the
endpoint sees it: its own limits (uvicorn's ``--limit-concurrency``) bound that.

For an ``http`` scope (a browser tab or ``curl`` on the WebSocket URL) it
answers ``426 Upgrade Required`` with a readable body; an endpoint running a
hub also serves the JavaScript client at ``.../wskit.js`` and
``.../wskit.mjs``. A ``lifespan`` scope, and closing the connections on
shutdown, are the part it inherits from
:class:`~wskit.asgi.shutdown.EndpointShutdown`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Unpack, cast

from ..asyncio.admission import ServerCounters
from ..asyncio.server import ServerOptions, ServerOptionsKwargs, UpgradeErrorHandler
from ..exceptions import ConnectionClosed, InvalidRequest
from ..limits import public_error_message, report_failure
from ..protocol.frames import fit_close_reason
from ..protocol.handshake import choose_subprotocol, reject, verify_origin
from ..protocol.http11 import Request, Response, reason_phrase
from .connection import AsgiConn
from .shutdown import EndpointShutdown
from .spec import (
    ASGIProtocolError,
    Receive,
    Scope,
    Send,
    headers_from_scope,
    route_path,
    wire_headers,
)

__all__ = [
    "UpgradeRefused",
    "WebSocketEndpoint",
    "asgi_app",
    "json_error_response",
]

ConnHandler = Callable[[Any], Awaitable[Any]]
"""``async def handler(conn)``: ``conn`` is an :class:`AsgiConn` (duck-typed as a ``Conn``)."""

Authorize = Callable[[AsgiConn, Request], "bool | Awaitable[bool | None] | None"]
"""``authorize(conn, request)``: ``False`` refuses with 401; raise :class:`UpgradeRefused`
to choose the status and message."""

UPGRADE_REQUIRED_BODY = b"This is a WebSocket endpoint; connect with a WebSocket client.\n"
"""The body of the 426 answer to a plain HTTP request on a WebSocket endpoint."""

SCRIPT_NAMES = ("wskit.js", "wskit.mjs")
"""The JavaScript client files an endpoint running a hub serves next to its WebSocket path."""


class UpgradeRefused(Exception):
    """Raise from ``process_request`` or ``authorize`` to refuse the upgrade.

    The client gets ``status`` with the JSON body ``{"error": message}``
    (the status text when ``message`` is ``None``) and ``headers``, or
    whatever the endpoint's ``upgrade_error`` handler makes of it.
    """

    def __init__(
        self,
        status: int = 403,
        message: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message or f"{status} {reason_phrase(status)}")
        self.status = status
        self.message = message
        self.headers = list(headers)


def json_error_response(
    status: int, message: str | None = None, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """An error response with goyave's JSON body: ``{"error": message}``.

    ``message`` defaults to the status text (``"Forbidden"`` for 403).
    """
    text = message if message is not None else reason_phrase(status) or str(status)
    body = json.dumps({"error": text}).encode()
    return reject(status, body, [("Content-Type", "application/json"), *headers])


def _merge_options(options: ServerOptions | None, overrides: dict[str, Any]) -> ServerOptions:
    if options is None:
        return ServerOptions(**overrides)
    if overrides:
        return ServerOptions(**{**options.__dict__, **overrides})
    return options


class WebSocketEndpoint(EndpointShutdown):
    """An ASGI application running a ``Conn`` handler or a hub for each WebSocket.

    Build it with :func:`asgi_app`. It is an ASGI app (mount it, route to
    it, or serve it alone); :meth:`run` serves one Starlette/FastAPI
    ``WebSocket`` from inside a route; :meth:`routes` builds the Starlette
    routes for a path; :meth:`lifespan` and :meth:`shutdown` close the open
    connections with 1001.

    Attributes:
        handler: the ``Conn`` handler or hub.
        options: the :class:`~wskit.ServerOptions` (upgrader and connection settings).
        authorize: the auth hook, or ``None``.
        connections: the connections currently open.
    """

    def __init__(
        self,
        handler: ConnHandler,
        *,
        options: ServerOptions | None = None,
        authorize: Authorize | None = None,
        upgrade_error: UpgradeErrorHandler | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.handler = handler
        if upgrade_error is not None:
            kwargs["upgrade_error"] = upgrade_error
        self.options = _merge_options(options, kwargs)
        self.authorize = authorize
        #: The server-wide limits and their counts (:mod:`~wskit.asyncio.admission`).
        self.admission = self.options.admission()
        #: The class of the connections: a counting subclass while
        #: :meth:`Metrics.watch <wskit.metrics.Metrics.watch>` watches this endpoint.
        self.conn_class: type[AsgiConn] = AsgiConn
        # A hub (duck-typed: the hub layer sits above this one) serves its JS client.
        self._serves_scripts = callable(getattr(handler, "handle", None)) and callable(
            getattr(handler, "process_request", None)
        )

    @property
    def upgrade_error(self) -> UpgradeErrorHandler | None:
        """The refusal hook (``options.upgrade_error``), or ``None`` for goyave's JSON."""
        return self.options.upgrade_error

    @property
    def counters(self) -> ServerCounters:
        """What this endpoint refused and what failed, since it was made."""
        return self.admission.counters

    async def startup(self) -> None:
        """Start the handler if it has an ``async start()`` (a hub: its broker), then resume.

        So a hub whose Redis cannot be reached fails the application's
        startup, named in the server's log, rather than its first connection.
        """
        start = getattr(self.handler, "start", None)
        if start is not None and inspect.iscoroutinefunction(start):
            await start()
        await super().startup()

    def _conn_options(self) -> dict[str, Any]:
        options = self.options
        return {
            "max_size": options.max_size,
            "max_queue": options.max_queue,
            "close_timeout": options.close_timeout,
            "write_limit": options.write_limit,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: ``websocket``, ``http`` and ``lifespan`` scopes."""
        kind = scope["type"]
        if kind == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "lifespan":
            await self.serve_lifespan(receive, send)
        else:
            raise ASGIProtocolError(f"unsupported ASGI scope type {kind!r}")

    async def run(self, websocket: Any) -> None:
        """Serve a Starlette/FastAPI ``WebSocket`` (not yet accepted) from inside a route.

        For FastAPI routes, so that dependencies run first::

            @app.websocket("/ws")
            async def ws(websocket: WebSocket, user=Depends(current_user)) -> None:
                await endpoint.run(websocket)
        """
        await self(websocket.scope, websocket.receive, websocket.send)

    def routes(self, path: str) -> list[Any]:
        """Starlette routes for this endpoint at ``path``.

        The WebSocket route, a plain-HTTP route answering 426 at the same
        path, and for a hub ``{path}/wskit.js`` and ``{path}/wskit.mjs``.
        Starlette must be installed.
        """
        from starlette.routing import Route, WebSocketRoute

        routes: list[Any] = [
            WebSocketRoute(path, self),
            Route(path, self, methods=["GET", "HEAD"]),
        ]
        if self._serves_scripts:
            base = path.rstrip("/")
            routes += [
                Route(f"{base}/{name}", self, methods=["GET", "HEAD"]) for name in SCRIPT_NAMES
            ]
        return routes

    # -- websocket ------------------------------------------------------------------------

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self.conn_class(scope, receive, send, **self._conn_options())
        try:
            await conn.wait_connect()
        except ConnectionClosed:
            return
        client = scope.get("client")
        address: str | None = client[0] if client else None
        over_limit = self.admission.admit(address)
        if over_limit is not None:
            over_limit.log(self.options.logger, "refused a WebSocket", address)
            await conn.reject(over_limit.response)
            return
        try:
            refusal = await self._check(conn)
            if refusal is not None:
                self.counters.handshakes_refused += 1
                await conn.reject(refusal)
                return
            async with self.handler_running():
                try:
                    await conn.accept(conn.subprotocol)
                    self.connections.add(conn)
                    await self._run_handler(conn)
                finally:
                    self.connections.discard(conn)
                    await conn.finish()
        finally:
            self.admission.release(address)

    async def _check(self, conn: AsgiConn) -> Response | None:
        """Run the upgrader; return the refusal to send, or ``None`` to accept."""
        options = self.options
        request = conn.request
        try:
            if self.shutting_down:
                return self._error(request, 503, "the server is shutting down")
            if options.path is not None and request.path != options.path:
                return self._error(request, 404, f"No WebSocket endpoint at {request.path}")
            hook = options.process_request
            if hook is not None:
                answer = hook(cast(Any, conn), request)
                if inspect.isawaitable(answer):
                    answer = await answer
                if answer is not None:
                    return answer
            verify_origin(request, options.origins, options.check_origin)
            conn.subprotocol = self._select_subprotocol(conn)
            if self.authorize is not None:
                allowed = self.authorize(conn, request)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if allowed is False:
                    return self._error(request, 401, "not authorized")
            conn.upgrade_headers.update(options.response_headers(request))
        except UpgradeRefused as exc:
            reason = exc.message if exc.message is not None else str(exc)
            return self._error(
                request, exc.status, reason, public=exc.message is not None, headers=exc.headers
            )
        except InvalidRequest as exc:
            return self._error(request, exc.status, exc.reason, headers=exc.headers)
        except Exception as exc:
            # Any exception's text may hold internal data: the client reads an error id.
            self.counters.handler_errors += 1
            error_id = report_failure(options.logger, exc, "the WebSocket upgrade check")
            message = public_error_message(exc, error_id, options.debug)
            return self._error(request, 500, message, public=True)
        return None

    def _select_subprotocol(self, conn: AsgiConn) -> str | None:
        offered = list(conn.scope.get("subprotocols") or ())
        return choose_subprotocol(
            offered, self.options.subprotocols, self.options.select_subprotocol
        )

    def _error(
        self,
        request: Request,
        status: int,
        reason: str,
        *,
        public: bool = False,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """The refusal for ``status``: the ``upgrade_error`` hook's, or goyave's JSON."""
        shaped = self.options.shaped_refusal(request, status, reason, headers)
        if shaped is not None:
            return shaped
        message = reason if public or self.options.debug else None
        return json_error_response(status, message, headers)

    async def _run_handler(self, conn: AsgiConn) -> None:
        options = self.options
        try:
            await self.handler(conn)
        except Exception as exc:
            if isinstance(exc, ConnectionClosed) and conn.closed:
                options.logger.debug("handler ended by the closed connection: %s", exc)
                return
            self.counters.handler_errors += 1
            error_id = report_failure(options.logger, exc, "the WebSocket handler")
            reason = public_error_message(exc, error_id, options.debug)
            await conn.close(1011, fit_close_reason(reason))
        else:
            await conn.close(1000)

    # -- http --------------------------------------------------------------------------------

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        name = route_path(scope).rpartition("/")[2]
        response: Response | None = None
        if method in ("GET", "HEAD") and self._serves_scripts and name in SCRIPT_NAMES:
            response = await self._script(scope, name)
        if response is None:
            if method in ("GET", "HEAD"):
                response = reject(426, UPGRADE_REQUIRED_BODY, [("Upgrade", "websocket")])
            else:
                response = reject(
                    405,
                    f"Method {method} not allowed; use a WebSocket client.\n",
                    [("Allow", "GET")],
                )
        headers = [(n, v) for n, v in response.headers.raw_items() if n.lower() != "connection"]
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": wire_headers(headers),
            }
        )
        body = b"" if method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _script(self, scope: Scope, name: str) -> Response | None:
        request = Request("GET", f"/{name}", headers_from_scope(scope))
        try:
            answer = getattr(self.handler, "process_request")(None, request)  # noqa: B009
            if inspect.isawaitable(answer):
                answer = await answer
        except (NotImplementedError, FileNotFoundError):
            # The classic build (or the file) is not there in this install.
            return reject(404, f"/{name} is not available in this build of wskit; use wskit.mjs.\n")
        except Exception as exc:
            error_id = report_failure(self.options.logger, exc, f"serving {name}")
            return reject(500, public_error_message(exc, error_id, self.options.debug) + "\n")
        return cast(Response | None, answer)


def asgi_app(
    handler: ConnHandler,
    *,
    options: ServerOptions | None = None,
    authorize: Authorize | None = None,
    **kwargs: Unpack[ServerOptionsKwargs],
) -> WebSocketEndpoint:
    """An ASGI application running ``handler`` (``async def h(conn)``, or a hub) per WebSocket.

    Args:
        handler: the connection handler, or a :class:`wskit.hub.Hub`.
        options: a :class:`~wskit.ServerOptions`; keyword arguments override its fields
            (``origins``, ``check_origin``, ``subprotocols``, ``select_subprotocol``,
            ``extra_headers``, ``process_request``, ``path``, ``max_size``,
            ``max_queue``, ``close_timeout``, ``write_limit``, ``debug``, ``logger``,
            and the server-wide limits ``max_connections``, ``max_connections_per_ip``,
            ``handshake_rate``, ``handshake_burst``).
        authorize: ``authorize(conn, request)`` (may be async), run after the
            origin check and subprotocol selection: ``False`` refuses with 401
            ``{"error": "Unauthorized"}``; raise :class:`UpgradeRefused` to pick
            the status and message. It may add ``conn.upgrade_headers``.
        upgrade_error: ``upgrade_error(request, status, reason) -> Response``
            builds the refusals; default: ``{"error": "<status text>"}``, or the
            reason with ``debug=True`` (goyave's format). The same as the
            :class:`~wskit.ServerOptions` field, which ``serve()`` uses too;
            given here, it overrides the one of ``options``.
    """
    return WebSocketEndpoint(handler, options=options, authorize=authorize, **kwargs)
