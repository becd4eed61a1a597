"""Run wskit handlers and hubs in any ASGI application (Starlette, FastAPI, ...).

Theory of operation
===================

An ASGI server (uvicorn, hypercorn, daphne) owns the socket, the RFC 6455
framing, compression and keepalive pings; the application sees a connection
as a stream of ASGI messages (``websocket.connect``, ``websocket.receive``,
``websocket.disconnect`` in; ``websocket.accept``, ``websocket.send``,
``websocket.close`` and the denial response ``websocket.http.response.*``
out). :class:`AsgiConn` turns that stream back into the API of
:class:`wskit.Conn` (``recv``, ``send``, ``async for``, ``close``,
``write_prepared`` ...), so a ``Conn`` handler or a :class:`wskit.hub.Hub`
runs unchanged on either server.

Inside an :class:`AsgiConn` two tasks talk to the server once the connection
is accepted:

* a *reader* pulls ``websocket.receive`` messages into a queue of at most
  ``max_queue`` messages, and stops pulling when the queue is full, so the
  server stops reading the socket (backpressure); it enforces ``max_size``
  (closing with 1009) and notices ``websocket.disconnect`` even while the
  handler is only writing;
* a *writer* drains a queue of outgoing messages into the server's ``send``.
  :meth:`AsgiConn.send` waits while that queue holds more than
  ``write_limit`` bytes; :meth:`AsgiConn.write_prepared` (the hub's fan-out
  primitive) never waits and refuses once the queue holds more than
  ``max_buffer`` bytes, so one slow client never stalls a room.

Every message received and sent is checked against an explicit state
(:class:`ConnState`: ``CONNECTING``, ``CONNECTED``, ``RESPONSE``,
``CLOSED``, for each direction), and a message out of order raises
:class:`ASGIProtocolError` naming what was expected and what came.

:class:`WebSocketEndpoint` (built by :func:`asgi_app`) is the ASGI
application. For a ``websocket`` scope it runs the upgrader of
:class:`~wskit.ServerOptions` before accepting: the ``path`` filter, the
``process_request`` hook (which may refuse with any :class:`~wskit.Response`),
the origin check (gorilla's same-host default, or an allow-list, or
``check_origin``), subprotocol selection, then the ``authorize`` hook; it
accepts with the ``extra_headers`` and runs the handler. When the handler
returns the connection is closed with 1000; when it raises, with 1011
``"Internal server error"`` (with the exception text when ``debug``).
Refusals made by the upgrader itself answer with a JSON body
``{"error": "<status text>"}`` (goyave's format; the reason itself when
``debug``), sent as an HTTP response when the server supports the
``websocket.http.response`` extension and as a bare 403 otherwise.

For an ``http`` scope (a browser tab or ``curl`` on the WebSocket URL) it
answers ``426 Upgrade Required`` with a readable body; an endpoint running a
hub also serves the JavaScript client at ``.../wskit.js`` and
``.../wskit.mjs``. For a ``lifespan`` scope (the endpoint is the whole
application) it closes its connections with 1001 on shutdown.

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

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import inspect
import json
import logging
import urllib.parse
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    MutableMapping,
    Sequence,
)
from types import TracebackType
from typing import Any, cast

from .asyncio.connection import ConnectionAPI
from .asyncio.server import ServerOptions
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidRequest,
    LocalProtocolError,
    WebSocketError,
)
from .protocol.connection import PreparedMessage, State
from .protocol.frames import Opcode, is_valid_close_code
from .protocol.handshake import _check_origin, choose_subprotocol, reject
from .protocol.headers import Headers
from .protocol.http11 import Request, Response, reason_phrase

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

logger = logging.getLogger("wskit.asgi")

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

Data = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""

ConnHandler = Callable[[Any], Awaitable[Any]]
"""``async def handler(conn)``: ``conn`` is an :class:`AsgiConn` (duck-typed as a ``Conn``)."""

Authorize = Callable[["AsgiConn", Request], "bool | Awaitable[bool | None] | None"]
"""``authorize(conn, request)``: ``False`` refuses with 401; raise :class:`UpgradeRefused`
to choose the status and message."""

UpgradeErrorHandler = Callable[[Request, int, str], Response]
"""``upgrade_error(request, status, reason) -> Response``: the body of upgrader refusals."""

CloseHandler = Callable[[int, str], object]

DENIAL_EXTENSION = "websocket.http.response"
"""The ASGI extension that lets an application refuse a WebSocket with any HTTP response."""

UPGRADE_REQUIRED_BODY = b"This is a WebSocket endpoint; connect with a WebSocket client.\n"

SCRIPT_NAMES = ("wskit.js", "wskit.mjs")
"""The JavaScript client files an endpoint running a hub serves next to its WebSocket path."""

_NORMAL_CODES = (1000, 1001, 1005)


# --------------------------------------------------------------------------- errors


class ASGIProtocolError(WebSocketError, RuntimeError):
    """An ASGI message arrived, or was about to be sent, in a state that forbids it.

    The message names the state, what was expected and what came, e.g.
    ``expected ASGI message 'websocket.connect', got 'websocket.receive'``.
    """


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


# --------------------------------------------------------------------------- scope helpers


def _headers_from_scope(scope: Scope) -> Headers:
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
    return Request(method, target, _headers_from_scope(scope), version)


def _route_path(scope: Scope) -> str:
    """The path below the mount point (what a router matched on)."""
    path: str = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def _wire_headers(headers: Headers | Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    items = headers.raw_items() if isinstance(headers, Headers) else headers
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items]


def _truncate_reason(reason: str) -> str:
    # A close reason is at most 123 bytes of UTF-8 (RFC 6455 section 5.5).
    return reason.encode()[:123].decode(errors="ignore")


def _too_big(data: Data, max_size: int) -> bool:
    size = len(data)
    if size > max_size:
        return True
    if isinstance(data, bytes) or size * 4 <= max_size:
        return False
    return len(data.encode()) > max_size


def _unexpected(state: ConnState, expected: Sequence[str], got: object) -> ASGIProtocolError:
    names = ", ".join(repr(name) for name in expected)
    return ASGIProtocolError(
        f"expected ASGI message {names} in state {state.name}, got {got!r}"
        if len(expected) == 1
        else f"expected one of the ASGI messages {names} in state {state.name}, got {got!r}"
    )


_prepared_cache: tuple[PreparedMessage | None, str] = (None, "")


def _prepared_event(message: PreparedMessage) -> Message:
    """The ``websocket.send`` event of a prepared message (the text decoded once per broadcast)."""
    global _prepared_cache
    if message.opcode != Opcode.TEXT:
        return {"type": "websocket.send", "bytes": message.data}
    cached, text = _prepared_cache
    if cached is not message:
        text = message.data.decode()
        _prepared_cache = (message, text)
    return {"type": "websocket.send", "text": text}


# --------------------------------------------------------------------------- AsgiConn


class ConnState(enum.Enum):
    """Where one direction of an ASGI WebSocket is (Starlette's ``WebSocketState``).

    ``client_state`` follows the messages received from the server,
    ``application_state`` those sent to it. ``RESPONSE``: a denial response
    (``websocket.http.response.start``) was started and its body is due.
    """

    CONNECTING = 0
    CONNECTED = 1
    RESPONSE = 2
    CLOSED = 3


class AsgiConn(ConnectionAPI):
    """A WebSocket connection over ASGI ``receive``/``send``, with the API of :class:`wskit.Conn`.

    :class:`WebSocketEndpoint` creates one per connection, accepts it and
    hands it to the handler. It can also be used directly inside any ASGI
    application::

        async def app(scope, receive, send):
            conn = AsgiConn(scope, receive, send)
            await conn.accept()
            async for message in conn:
                await conn.send(message)
            await conn.close()
            await conn.finish()

    Reading: ``await conn.recv()``, ``async for message in conn``,
    ``conn.recv_streaming()``, ``await conn.recv_json()``. Writing:
    ``await conn.send(message)``, ``conn.send_nowait(message)``,
    ``conn.write_prepared(prepared, max_buffer)``, ``await
    conn.send_json(obj)``. Closing: ``await conn.close(code, reason)``.
    What is known about the connection: ``request`` (headers, cookies,
    query, path), ``subprotocol``, ``remote_address``, ``local_address``,
    ``close_code``/``close_reason``, ``closed``, ``scope`` (the ASGI scope).

    Args:
        scope: the ASGI ``websocket`` scope.
        receive: the ASGI ``receive`` callable.
        send: the ASGI ``send`` callable.
        max_size: largest message accepted, in bytes (UTF-8 for text);
            a larger one closes the connection with 1009. ``None``: no limit.
        max_queue: received messages buffered before wskit stops asking
            the server for more.
        close_timeout: seconds :meth:`close` waits for the connection to end.
        write_limit: bytes queued for sending above which :meth:`send` waits.
        on_close: called with ``(code, reason)`` when the peer closes.
        json_loads: decoder of :meth:`recv_json`.
        json_dumps: encoder of :meth:`send_json`.
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        max_size: int | None = 2**20,
        max_queue: int = 32,
        close_timeout: float = 10.0,
        write_limit: int = 2**16,
        on_close: CloseHandler | None = None,
        json_loads: Callable[[str | bytes], Any] = json.loads,
        json_dumps: Callable[[Any], str] = json.dumps,
    ) -> None:
        if scope.get("type") != "websocket":
            raise ValueError(f"AsgiConn needs a 'websocket' scope, got {scope.get('type')!r}")
        self.scope = scope
        self.max_size = max_size
        self.max_queue = max(1, max_queue)
        self.close_timeout = close_timeout
        self.write_limit = write_limit
        #: Called with ``(code, reason)`` when the peer's close arrives.
        self.on_close = on_close
        self.json_loads = json_loads
        self.json_dumps = json_dumps
        #: The handshake request, from the scope.
        self.request: Request = request_from_scope(scope)
        #: What the application answered: the 101 it asked for, or the refusal.
        self.response: Response | None = None
        #: The subprotocol accepted, or ``None``.
        self.subprotocol: str | None = None
        #: Headers a hook may add to the ``websocket.accept`` (cookies, ...).
        self.upgrade_headers = Headers()
        #: State of the messages received from the server.
        self.client_state = ConnState.CONNECTING
        #: State of the messages sent to the server.
        self.application_state = ConnState.CONNECTING
        self._receive = receive
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._incoming: collections.deque[Data] = collections.deque()
        self._read_waiter: asyncio.Future[None] | None = None
        self._space = asyncio.Event()
        self._space.set()
        self._outgoing: collections.deque[tuple[Message, int]] = collections.deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._close_code: int | None = None
        self._close_reason = ""
        self._sent_code: int | None = None
        self._sent_reason = ""
        self._close_queued = False
        self._give_up_timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[None] | None = None
        self._write_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<AsgiConn {self.request.path} {self.state.name}>"

    # -- ASGI messages, checked against the state ---------------------------------

    @property
    def _extensions(self) -> MutableMapping[str, Any]:
        return self.scope.get("extensions") or {}

    async def _receive_message(self) -> Message:
        state = self.client_state
        if state is ConnState.CLOSED:
            raise ASGIProtocolError("cannot receive: 'websocket.disconnect' was already received")
        message = await self._receive()
        kind = message.get("type")
        if state is ConnState.CONNECTING:
            if kind == "websocket.connect":
                self.client_state = ConnState.CONNECTED
            elif kind == "websocket.disconnect":
                # The client left before the application answered.
                self.client_state = ConnState.CLOSED
            else:
                raise _unexpected(state, ("websocket.connect",), kind)
        elif kind == "websocket.disconnect":
            self.client_state = ConnState.CLOSED
        elif kind != "websocket.receive":
            raise _unexpected(state, ("websocket.receive", "websocket.disconnect"), kind)
        return message

    async def _send_message(self, message: Message) -> None:
        kind = message.get("type")
        state = self.application_state
        if state is ConnState.CONNECTED:
            if kind == "websocket.close":
                self.application_state = ConnState.CLOSED
            elif kind != "websocket.send":
                raise _unexpected(state, ("websocket.send", "websocket.close"), kind)
        elif state is ConnState.CONNECTING:
            if kind == "websocket.accept":
                self.application_state = ConnState.CONNECTED
            elif kind == "websocket.close":
                self.application_state = ConnState.CLOSED
            elif kind == "websocket.http.response.start":
                if DENIAL_EXTENSION not in self._extensions:
                    raise ASGIProtocolError(
                        "the ASGI server does not support the 'websocket.http.response' extension"
                    )
                self.application_state = ConnState.RESPONSE
            else:
                raise _unexpected(
                    state,
                    ("websocket.accept", "websocket.close", "websocket.http.response.start"),
                    kind,
                )
        elif state is ConnState.RESPONSE:
            if kind != "websocket.http.response.body":
                raise _unexpected(state, ("websocket.http.response.body",), kind)
            if not message.get("more_body", False):
                self.application_state = ConnState.CLOSED
        else:
            raise ASGIProtocolError(
                f"cannot send ASGI message {kind!r}: the application already closed the connection"
            )
        await self._send(message)

    # -- opening ----------------------------------------------------------------------

    async def wait_connect(self) -> None:
        """Receive ``websocket.connect`` (done by :meth:`accept` and :meth:`reject` if needed).

        Raises:
            ConnectionClosed: the client left before the application answered.
        """
        if self.client_state is ConnState.CONNECTING:
            message = await self._receive_message()
            if message["type"] == "websocket.disconnect":
                self._ended(message.get("code", 1006), message.get("reason") or "")
        if self.client_state is ConnState.CLOSED:
            raise self._closed_exception()

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
    ) -> None:
        """Accept the connection with ``subprotocol`` and extra response ``headers``.

        :attr:`upgrade_headers` are added too. Starts the reader and writer tasks.
        """
        await self.wait_connect()
        response_headers = Headers(self.upgrade_headers)
        response_headers.update(headers)
        if subprotocol is not None:
            self.subprotocol = subprotocol
        message: Message = {"type": "websocket.accept", "subprotocol": self.subprotocol}
        if len(response_headers):
            message["headers"] = _wire_headers(response_headers)
        await self._send_message(message)
        shown = Headers([("Upgrade", "websocket"), ("Connection", "Upgrade")])
        if self.subprotocol is not None:
            shown.add("Sec-WebSocket-Protocol", self.subprotocol)
        shown.update(response_headers)
        self.response = Response(101, reason_phrase(101), shown)
        self._reader = self._loop.create_task(self._read_loop())
        self._write_task = self._loop.create_task(self._write_loop())

    async def reject(self, response: Response) -> None:
        """Refuse the connection with ``response``.

        With the ``websocket.http.response`` extension the client gets the
        response as is (status, headers, body); otherwise the server answers
        403 with no body, the only refusal plain ASGI has.
        """
        try:
            await self.wait_connect()
        except ConnectionClosed:
            return
        self.response = response
        if DENIAL_EXTENSION in self._extensions:
            headers = [(n, v) for n, v in response.headers.raw_items() if n.lower() != "connection"]
            await self._send_message(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status,
                    "headers": _wire_headers(headers),
                }
            )
            await self._send_message(
                {"type": "websocket.http.response.body", "body": response.body, "more_body": False}
            )
        else:
            await self._send_message({"type": "websocket.close", "code": 1008, "reason": ""})
        self._ended(1006, "")

    # -- the reader -------------------------------------------------------------------

    async def _read_loop(self) -> None:
        incoming = self._incoming
        try:
            while True:
                while len(incoming) >= self.max_queue and not self._close_queued:
                    self._space.clear()
                    await self._space.wait()
                message = await self._receive_message()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code", 1005)
                    reason = message.get("reason") or ""
                    if not self._close_queued and self.on_close is not None:
                        self._call_handler(self.on_close, code, reason)
                    self._ended(code, reason)
                    return
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                    if data is None:
                        raise ASGIProtocolError(
                            "'websocket.receive' carries neither text nor bytes"
                        )
                if self._close_queued:
                    continue  # closing: what the peer still sends is of no use
                if self.max_size is not None and _too_big(data, self.max_size):
                    self._queue_close(1009, f"message over {self.max_size} bytes")
                    continue
                incoming.append(data)
                waiter = self._read_waiter
                if waiter is not None:
                    self._read_waiter = None
                    if not waiter.done():
                        waiter.set_result(None)
        except asyncio.CancelledError:
            raise
        except ASGIProtocolError:
            logger.exception("ASGI protocol error while receiving")
            self._ended(1006, "")
        except Exception as exc:
            logger.debug("receive failed: %r", exc)
            self._ended(1006, "")

    # -- the writer ---------------------------------------------------------------------

    async def _write_loop(self) -> None:
        outgoing = self._outgoing
        try:
            while True:
                if not outgoing:
                    if self._closed.done():
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._closed.done():
                    return
                message, size = outgoing[0]
                await self._send_message(message)
                outgoing.popleft()
                self._queued -= size
                if message["type"] == "websocket.close":
                    return
                if self._drain_waiters and self._queued <= self.write_limit // 4:
                    self._wake_drainers()
        except asyncio.CancelledError:
            raise
        except ASGIProtocolError:
            logger.exception("ASGI protocol error while sending")
            self._ended(1006, "")
        except Exception as exc:
            # The server could not send: the client is gone (uvicorn raises
            # ClientDisconnected, an OSError; Starlette's WebSocket raises its own).
            logger.debug("send failed: %r", exc)
            self._ended(1006, "")
        finally:
            outgoing.clear()
            self._queued = 0
            self._wake_drainers()

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _check_writable(self) -> None:
        if self.application_state is ConnState.CONNECTING:
            raise ASGIProtocolError("accept the connection before sending")
        if self._close_queued or self._closed.done():
            raise self._closed_exception()

    def _enqueue(self, message: Message, size: int) -> None:
        self._outgoing.append((message, size))
        self._queued += size
        self._wakeup.set()

    async def _drain(self) -> None:
        while self._queued > self.write_limit // 4 and not self._closed.done():
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self._closed.done():
            raise self._closed_exception()

    # -- ending -----------------------------------------------------------------------------

    def _ended(self, code: int, reason: str) -> None:
        """The connection is over: record how and wake everyone waiting on it."""
        if self._closed.done():
            return
        self._close_code = code
        self._close_reason = reason
        self._closed.set_result(None)
        if self._give_up_timer is not None:
            self._give_up_timer.cancel()
            self._give_up_timer = None
        waiter, self._read_waiter = self._read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._space.set()
        self._wakeup.set()
        self._wake_drainers()

    def _queue_close(self, code: int, reason: str) -> None:
        self._close_queued = True
        self._sent_code = code
        self._sent_reason = reason
        self._enqueue({"type": "websocket.close", "code": code, "reason": reason}, 0)
        self._space.set()
        self._give_up_timer = self._loop.call_later(self.close_timeout, self._give_up)

    def _give_up(self) -> None:
        """The close did not complete in time: stop waiting for the server."""
        self._give_up_timer = None
        if not self._closed.done():
            logger.info("closing handshake timed out")
            if self._write_task is not None:
                self._write_task.cancel()
            self._ended(1006, "")

    def _closed_exception(self) -> ConnectionClosed:
        code = self._close_code if self._close_code is not None else 1006
        sent = self._sent_code
        ok = code in _NORMAL_CODES and (sent is None or sent in _NORMAL_CODES)
        cls = ConnectionClosedOK if ok else ConnectionClosedError
        return cls(code, self._close_reason, sent, self._sent_reason)

    # -- reading ---------------------------------------------------------------------------

    async def _wait_for_data(self) -> None:
        if self._read_waiter is not None:
            raise RuntimeError("another task is already reading from this connection")
        waiter = self._read_waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            if self._read_waiter is waiter:
                self._read_waiter = None

    async def recv(self) -> Data:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: the connection closed; carries the code and reason.
        """
        incoming = self._incoming
        while True:
            if incoming:
                data = incoming.popleft()
                if not self._space.is_set() and len(incoming) < self.max_queue:
                    self._space.set()
                return data
            if self._closed.done():
                raise self._closed_exception()
            if self.application_state is ConnState.CONNECTING:
                raise ASGIProtocolError("accept the connection before receiving")
            await self._wait_for_data()

    async def recv_streaming(self) -> AsyncIterator[Data]:
        """Yield the next message; ASGI delivers messages whole, so as one fragment."""
        yield await self.recv()

    # -- writing ---------------------------------------------------------------------------

    def send_nowait(self, message: Data) -> None:
        """Queue a message without waiting for the queue to drain.

        Raises:
            ConnectionClosed: the connection is closed or closing.
        """
        self._check_writable()
        if isinstance(message, str):
            self._enqueue({"type": "websocket.send", "text": message}, len(message))
        elif isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
            self._enqueue({"type": "websocket.send", "bytes": data}, len(data))
        else:
            raise TypeError(f"cannot send {type(message).__name__}")

    async def send(self, message: Data | Iterable[Data] | AsyncIterable[Data]) -> None:
        """Send a message: ``str`` as text, ``bytes``-like as binary.

        An iterable or async iterable of pieces is joined and sent as one
        message (ASGI has no fragments). Waits while more than
        ``write_limit`` bytes are queued.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            TypeError: ``message`` is of another type, or mixes text and bytes.
        """
        if isinstance(message, str):
            self.send_nowait(message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            self.send_nowait(bytes(message))
        elif isinstance(message, AsyncIterable):
            self.send_nowait(_join([piece async for piece in message]))
        elif isinstance(message, Iterable):
            self.send_nowait(_join(list(message)))
        else:
            raise TypeError(f"cannot send {type(message).__name__}")
        if self._queued > self.write_limit:
            await self._drain()

    def write_prepared(self, message: PreparedMessage, max_buffer: int | None = None) -> bool:
        """Queue a prepared message now if the connection can take it; never wait.

        Returns ``False``, queueing nothing, when the connection is not open
        or closing, or (with ``max_buffer``) already holds more than
        ``max_buffer`` unsent bytes: a peer that stopped reading. The fan-out
        primitive of the hub.
        """
        if (
            self.application_state is not ConnState.CONNECTED
            or self._close_queued
            or self._closed.done()
        ):
            return False
        if max_buffer is not None and self._queued > max_buffer:
            return False
        self._enqueue(_prepared_event(message), len(message.data))
        return True

    async def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared once for many connections."""
        self._check_writable()
        self._enqueue(_prepared_event(message), len(message.data))
        if self._queued > self.write_limit:
            await self._drain()

    def message_writer(self, binary: bool | None = False) -> _MessageWriter:
        """An async context manager collecting pieces into one message, sent on exit."""
        return _MessageWriter(self, binary)

    def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        """Not available: ASGI has no ping; the server's keepalive pings instead."""
        raise NotImplementedError(
            "ASGI has no ping message; the ASGI server sends keepalive pings "
            "(uvicorn: --ws-ping-interval)"
        )

    async def pong(self, data: str | bytes = b"") -> None:
        """Not available: ASGI has no pong message."""
        raise NotImplementedError("ASGI has no pong message")

    # -- closing --------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait, at most ``close_timeout``, for it to end.

        Messages queued before are sent first. Calling it again, or after
        the peer closed, is harmless.

        Raises:
            LocalProtocolError: ``code`` may not be sent in a close frame.
        """
        if not is_valid_close_code(code):
            raise LocalProtocolError(f"close code {code} may not be sent")
        reason = _truncate_reason(reason)
        if self.application_state is ConnState.CONNECTING:
            # Not accepted yet: ASGI turns this into a 403 refusal.
            if self.client_state is ConnState.CONNECTING:
                await self.wait_connect()
            await self._send_message({"type": "websocket.close", "code": code, "reason": reason})
            self._sent_code, self._sent_reason = code, reason
            self._ended(1006, "")
            return
        if not self._close_queued and not self._closed.done():
            self._queue_close(code, reason)
        await self.wait_closed(self.close_timeout)

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the connection has ended; give up on it after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            self._give_up()

    async def finish(self) -> None:
        """Stop the reader and writer tasks (once the connection is closed)."""
        tasks = [t for t in (self._reader, self._write_task) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._ended(self._close_code if self._close_code is not None else 1006, self._close_reason)

    # -- what we know about the connection ---------------------------------------------------

    @property
    def state(self) -> State:
        """``OPEN``, ``CLOSING`` (close requested) or ``CLOSED``, as for :class:`wskit.Conn`."""
        if self._closed.done():
            return State.CLOSED
        return State.CLOSING if self._close_queued else State.OPEN

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed.done()

    @property
    def close_code(self) -> int | None:
        """The close code the server reported (1006: none); ``None`` while open.

        After the application closed first the ASGI server reports the code
        of its own choosing (uvicorn: the code the application sent).
        """
        return self._close_code if self._closed.done() else None

    @property
    def close_reason(self) -> str | None:
        """The close reason the server reported; ``None`` while open."""
        return self._close_reason if self._closed.done() else None

    @property
    def local_address(self) -> Any:
        """The server's address from the scope (``(host, port)``), or ``None``."""
        server = self.scope.get("server")
        return tuple(server) if server is not None else None

    @property
    def remote_address(self) -> Any:
        """The client's address from the scope (``(host, port)``), or ``None``."""
        client = self.scope.get("client")
        return tuple(client) if client is not None else None

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued for sending, the message being sent included (text counted in chars)."""
        return self._queued


def _join(pieces: list[Data]) -> Data:
    if not pieces:
        return ""
    if all(isinstance(piece, str) for piece in pieces):
        return "".join(cast(list[str], pieces))
    if any(isinstance(piece, str) for piece in pieces):
        raise TypeError("a message cannot mix str and bytes pieces")
    return b"".join(cast(list[bytes], pieces))


class _MessageWriter:
    """Collects the pieces of one message and sends them joined (ASGI has no fragments)."""

    def __init__(self, conn: AsgiConn, binary: bool | None) -> None:
        self._conn = conn
        self._binary = binary
        self._pieces: list[Data] = []

    async def __aenter__(self) -> _MessageWriter:
        return self

    async def write(self, data: Data) -> None:
        """Add a piece to the message."""
        self._pieces.append(data)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        message = _join(self._pieces)
        if self._binary and isinstance(message, str):
            message = message.encode()
        elif self._binary is False and isinstance(message, bytes):
            message = message.decode()
        await self._conn.send(message)


# --------------------------------------------------------------------------- the endpoint

_endpoints: weakref.WeakSet[WebSocketEndpoint] = weakref.WeakSet()


def _merge_options(options: ServerOptions | None, overrides: dict[str, Any]) -> ServerOptions:
    if options is None:
        return ServerOptions(**overrides)
    if overrides:
        return ServerOptions(**{**options.__dict__, **overrides})
    return options


class WebSocketEndpoint:
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
        upgrade_error: the refusal-body hook, or ``None`` for goyave's JSON.
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
        self.handler = handler
        self.options = _merge_options(options, kwargs)
        self.authorize = authorize
        self.upgrade_error = upgrade_error
        self.connections: set[AsgiConn] = set()
        self._running: set[asyncio.Future[None]] = set()
        self._shutting_down = False
        # A hub (duck-typed: the hub layer sits above this one) serves its JS client.
        self._serves_scripts = callable(getattr(handler, "handle", None)) and callable(
            getattr(handler, "process_request", None)
        )
        _endpoints.add(self)

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
            await self._serve_lifespan(receive, send)
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
        conn = AsgiConn(scope, receive, send, **self._conn_options())
        try:
            await conn.wait_connect()
        except ConnectionClosed:
            return
        refusal = await self._check(conn)
        if refusal is not None:
            await conn.reject(refusal)
            return
        done = asyncio.get_running_loop().create_future()
        self._running.add(done)
        try:
            await conn.accept(conn.subprotocol)
            self.connections.add(conn)
            await self._run_handler(conn)
        finally:
            self.connections.discard(conn)
            await conn.finish()
            done.set_result(None)
            self._running.discard(done)

    async def _check(self, conn: AsgiConn) -> Response | None:
        """Run the upgrader; return the refusal to send, or ``None`` to accept."""
        options = self.options
        request = conn.request
        try:
            if self._shutting_down:
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
            _check_origin(request, options.origins, options.check_origin)
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
            options.logger.exception("error while checking a WebSocket upgrade")
            return self._error(request, 500, f"{type(exc).__name__}: {exc}")
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
        if self.upgrade_error is not None:
            try:
                return self.upgrade_error(request, status, reason)
            except Exception:
                self.options.logger.exception("error in the upgrade_error handler")
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
            options.logger.exception("error in WebSocket handler")
            reason = f"Internal server error: {exc}" if options.debug else "Internal server error"
            await conn.close(1011, reason)
        else:
            await conn.close(1000)

    # -- http --------------------------------------------------------------------------------

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        name = _route_path(scope).rpartition("/")[2]
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
                "headers": _wire_headers(headers),
            }
        )
        body = b"" if method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _script(self, scope: Scope, name: str) -> Response | None:
        request = Request("GET", f"/{name}", _headers_from_scope(scope))
        try:
            answer = getattr(self.handler, "process_request")(None, request)  # noqa: B009
            if inspect.isawaitable(answer):
                answer = await answer
        except (NotImplementedError, FileNotFoundError):
            # The classic build (or the file) is not there in this install.
            return reject(404, f"/{name} is not available in this build of wskit; use wskit.mjs.\n")
        except Exception:
            self.options.logger.exception("error serving %s", name)
            return reject(500)
        return cast(Response | None, answer)

    # -- lifespan and shutdown -------------------------------------------------------------------

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                self.resume()
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return
            else:
                raise ASGIProtocolError(
                    f"expected ASGI message 'lifespan.startup' or 'lifespan.shutdown', got {kind!r}"
                )

    def resume(self) -> None:
        """Accept new connections again after :meth:`shutdown`."""
        self._shutting_down = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A lifespan context: ``Starlette(lifespan=endpoint.lifespan)``.

        On exit the endpoint closes its connections with 1001 (see
        :meth:`shutdown`). In your own lifespan: ``async with
        endpoint.lifespan(app): yield``.
        """
        self.resume()
        try:
            yield
        finally:
            await self.shutdown()

    async def shutdown(
        self, code: int = 1001, reason: str = "server shutting down", timeout: float | None = None
    ) -> None:
        """Refuse new connections (503); close the open ones; wait for their handlers.

        Each close waits for its handshake at most ``close_timeout``; the
        handlers then get ``timeout`` seconds (default ``close_timeout``) to
        return. New connections are refused until :meth:`resume` (which a
        ``lifespan.startup`` does).
        """
        self._shutting_down = True
        conns = list(self.connections)
        if conns:
            await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)
        running = list(self._running)
        if running:
            wait = self.options.close_timeout if timeout is None else timeout
            await asyncio.wait(running, timeout=wait)


async def shutdown_all(
    code: int = 1001,
    reason: str = "server shutting down",
    timeout: float | None = None,
    endpoints: Iterable[WebSocketEndpoint] | None = None,
) -> None:
    """Shut down ``endpoints``, by default every :class:`WebSocketEndpoint` of this process.

    See :meth:`WebSocketEndpoint.shutdown`.
    """
    chosen = list(_endpoints if endpoints is None else endpoints)
    if chosen:
        await asyncio.gather(*(e.shutdown(code, reason, timeout) for e in chosen))


def install_uvicorn_shutdown(
    server: Any,
    *endpoints: WebSocketEndpoint,
    code: int = 1001,
    reason: str = "server shutting down",
    timeout: float | None = None,
) -> None:
    """Make a ``uvicorn.Server`` close wskit's connections with 1001 before its own shutdown.

    uvicorn closes every open WebSocket with 1012 as soon as it begins to
    shut down, before the application's lifespan shutdown runs. This wraps
    ``server.shutdown`` so that :func:`shutdown_all` runs first, for
    ``endpoints`` (default: every endpoint of the process)::

        server = uvicorn.Server(uvicorn.Config(app, port=8000))
        install_uvicorn_shutdown(server)
        await server.serve()

    Once uvicorn has stopped, the endpoints accept connections again (for a
    server started anew with the same application).
    """
    original = server.shutdown

    async def shutdown(sockets: Any = None) -> None:
        chosen = list(endpoints or _endpoints)
        try:
            await shutdown_all(code, reason, timeout, chosen)
        except Exception:
            logger.exception("error closing WebSocket connections")
        try:
            await original(sockets)
        finally:
            for endpoint in chosen:
                endpoint.resume()

    server.shutdown = shutdown


def asgi_app(
    handler: ConnHandler,
    *,
    options: ServerOptions | None = None,
    authorize: Authorize | None = None,
    upgrade_error: UpgradeErrorHandler | None = None,
    **kwargs: Any,
) -> WebSocketEndpoint:
    """An ASGI application running ``handler`` (``async def h(conn)``, or a hub) per WebSocket.

    Args:
        handler: the connection handler, or a :class:`wskit.hub.Hub`.
        options: a :class:`~wskit.ServerOptions`; keyword arguments override its fields
            (``origins``, ``check_origin``, ``subprotocols``, ``select_subprotocol``,
            ``extra_headers``, ``process_request``, ``path``, ``max_size``,
            ``max_queue``, ``close_timeout``, ``write_limit``, ``debug``, ``logger``).
        authorize: ``authorize(conn, request)`` (may be async), run after the
            origin check and subprotocol selection: ``False`` refuses with 401
            ``{"error": "Unauthorized"}``; raise :class:`UpgradeRefused` to pick
            the status and message. It may add ``conn.upgrade_headers``.
        upgrade_error: ``upgrade_error(request, status, reason) -> Response``
            builds the refusals; default: ``{"error": "<status text>"}``, or the
            reason with ``debug=True`` (goyave's format).
    """
    return WebSocketEndpoint(
        handler, options=options, authorize=authorize, upgrade_error=upgrade_error, **kwargs
    )
