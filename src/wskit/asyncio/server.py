"""The asyncio WebSocket server: :func:`serve`, :class:`Server`, :class:`ServerConn`.

Each TCP connection gets a :class:`ServerConn`. It reads the HTTP upgrade
request, lets the application's ``process_request`` hook see (and refuse)
it, answers the handshake, then runs the application's handler with the
connection. When the handler returns the connection is closed with 1000;
when it raises, with 1011. :meth:`Server.close` stops accepting, closes
every connection with 1001 and :meth:`Server.wait_closed` waits, bounded
by ``close_timeout``, for their close handshakes.

Before any of that, the server-wide limits (``max_connections``,
``max_connections_per_ip``, ``handshake_rate``; see
:mod:`~wskit.asyncio.admission`) admit the new connection or answer it 503
at once; :attr:`Server.counters` counts the refusals and failures.

What a client reads of a failure: an exception from the handler or from
``process_request`` may carry anything (a password in a ``KeyError``), so
the client gets ``Internal server error (error <id>)`` (in the 1011 close
reason or the 500 body) and the traceback is logged under that id
(:func:`~wskit.limits.report_failure`); ``debug=True`` adds the text.
Every record at INFO or above that a client can cause (a refused or
timed-out handshake, a handler's failure) goes through
:data:`~wskit.limits.client_caused`, so no client can flood the log. At
DEBUG, each connection leaves a trace under its :attr:`Conn.id`: its peer,
the handshake's outcome, the close frames and who sent the first, the end
of TCP.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypedDict, Unpack, cast

from ..exceptions import ConnectionClosed, InvalidRequest
from ..limits import client_caused, public_error_message, report_failure
from ..protocol.connection import Connection, Side, State
from ..protocol.deflate import DeflateOptions
from ..protocol.frames import fit_close_reason
from ..protocol.handshake import reject, server_handshake
from ..protocol.headers import Headers
from ..protocol.http11 import Request, RequestParser, Response, serialize_response
from .admission import (
    DESCRIPTOR_HEADROOM,
    Admission,
    Refusal,
    ServerCounters,
    default_max_connections,
)
from .connection import Conn, logger
from .opening import Opening

__all__ = [
    "serve",
    "Server",
    "ServerConn",
    "ServerOptions",
    "ServerOptionsKwargs",
    "Handler",
    "ProcessRequest",
    "UpgradeErrorHandler",
]

Handler = Callable[["ServerConn"], Awaitable[Any]]
"""A connection handler: ``async def handler(conn: ServerConn) -> None: ...``.

It receives a :class:`ServerConn`, so it may be annotated with that type or
with any base of it (:class:`Conn`, :class:`~wskit.asyncio.api.ConnectionAPI`).
"""

ProcessRequest = Callable[["ServerConn", Request], "Response | Awaitable[Response | None] | None"]
"""A hook that sees the upgrade request; returning a :class:`Response` refuses it."""

UpgradeErrorHandler = Callable[[Request, int, str], Response]
"""``upgrade_error(request, status, reason) -> Response``: shapes the refusals of the upgrader.

gorilla's ``Upgrader.Error``. ``reason`` says why in words a client may
read (a failure's text is replaced by an error id, as in the default body).
"""

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


def _compression_options(value: str | DeflateOptions | None) -> DeflateOptions | None:
    if value is None or isinstance(value, DeflateOptions):
        return value
    if value == "deflate":
        return DeflateOptions()
    raise ValueError(f"unsupported compression {value!r}; use 'deflate', None or DeflateOptions")


@dataclass
class ServerOptions:
    """Everything that decides how a server accepts and runs connections.

    One object serves :func:`serve` and the ASGI adapter alike (gorilla's
    ``Upgrader``). Every field is also a keyword argument of :func:`serve`.
    """

    #: Subprotocols the server speaks, in order of preference.
    subprotocols: Sequence[str] = ()
    #: ``select_subprotocol(client_offers, server_list)`` overrides the choice.
    select_subprotocol: Callable[[Sequence[str], Sequence[str]], str | None] | None = None
    #: Allowed ``Origin`` values (``None`` in the list allows no Origin); default: same host.
    origins: Sequence[str | None] | None = None
    #: ``check_origin(request) -> bool`` replaces the same-host default.
    check_origin: Callable[[Request], bool] | None = None
    #: ``"deflate"`` (default parameters), :class:`DeflateOptions`, or ``None`` (off).
    compression: str | DeflateOptions | None = "deflate"
    #: Headers added to every handshake response (cookies), or a function of the request.
    extra_headers: HeadersLike | Callable[[Request], HeadersLike] | None = None
    #: Accept upgrades on this path only (others get 404); ``None`` accepts any path.
    path: str | None = None
    #: Hook that sees each upgrade request; returning a :class:`Response` refuses it.
    process_request: ProcessRequest | None = None
    #: ``upgrade_error(request, status, reason) -> Response`` builds the refusals of
    #: the upgrader (404 path, 403 origin, 400/426 bad upgrade, 500 failing hook;
    #: gorilla's ``Upgrader.Error``): a JSON body, say. The headers a refusal needs
    #: (``Sec-WebSocket-Version`` with 426) are added unless it sets them. Not
    #: called for a response ``process_request`` returns, nor for refusals before
    #: a request is read (malformed or oversized head, the server-wide limits'
    #: 503). ``None``: plain text (:func:`serve`), goyave's JSON (``asgi_app()``).
    upgrade_error: UpgradeErrorHandler | None = None
    #: The ``Server`` header; ``None`` leaves it out.
    server_header: str | None = "wskit"
    #: Seconds a client has to complete the opening handshake.
    handshake_timeout: float = 10.0
    #: Largest message accepted, in bytes after decompression (1 MiB); ``None``: no limit.
    max_size: int | None = 2**20
    #: Messages buffered before the server stops reading from the client.
    max_queue: int = 16
    #: Seconds between keepalive pings; ``None`` disables them.
    ping_interval: float | None = 20.0
    #: Seconds to wait for a keepalive pong before closing with 1011.
    ping_timeout: float | None = 20.0
    #: Seconds to wait for the closing handshake.
    close_timeout: float = 10.0
    #: Answer every ping with a pong; ``False`` starts each connection with
    #: :attr:`Conn.auto_pong` off, for the handler to decide. Not for ``asgi_app()``,
    #: whose ASGI server answers pings itself.
    auto_pong: bool = True
    #: High-water mark of the write buffer; ``send()`` waits above it.
    write_limit: int = 2**16
    #: Largest HTTP request head, in bytes (431 over it).
    max_header_size: int = 2**16
    #: Connections held at once, those still in their handshake included; over it,
    #: 503. ``None``: no limit. Default: what the file descriptor limit leaves
    #: (:func:`~wskit.asyncio.admission.default_max_connections`). Per process.
    max_connections: int | None = field(default_factory=default_max_connections)
    #: Connections held at once from one client IP address; over it, 503. ``None``: no limit.
    max_connections_per_ip: int | None = None
    #: New connections per second from one client IP address, on average (a token
    #: bucket per address); over it, 503 with ``Retry-After``. ``None``: no limit.
    handshake_rate: float | None = None
    #: New connections from one client IP address allowed at once before
    #: ``handshake_rate`` applies.
    handshake_burst: int = 10
    #: Put exception text in the 1011 close reason and handshake error bodies;
    #: otherwise the client reads a generic message and an error id, and the
    #: traceback is logged with that id.
    debug: bool = False
    #: Logger for connection errors.
    logger: logging.Logger = field(default=logger)

    @classmethod
    def given(cls, options: ServerOptions | None, kwargs: ServerOptionsKwargs) -> ServerOptions:
        """The options a server was given: ``options`` with ``kwargs`` overriding its fields.

        Without ``options``, the defaults with ``kwargs``. What :func:`serve`
        (and :func:`wskit.testing.serve`) make of their ``options`` and keyword
        arguments.

        Raises:
            TypeError: a name in ``kwargs`` that is not a field.
            ValueError: an unsupported ``compression``, refused here rather
                than at the first connection.
        """
        if options is None:
            options = cls(**kwargs)
        elif kwargs:
            options = cls(**{**options.__dict__, **kwargs})
        options.deflate_options()  # fail early on a bad compression setting
        return options

    def conn_options(self) -> dict[str, Any]:
        """The options that :class:`Conn` takes."""
        return {
            "max_size": self.max_size,
            "max_queue": self.max_queue,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "close_timeout": self.close_timeout,
            "write_limit": self.write_limit,
            "auto_pong": self.auto_pong,
        }

    def admission(self) -> Admission:
        """The server-wide limits of these options, for one server (see :class:`Admission`)."""
        return Admission(
            self.max_connections,
            self.max_connections_per_ip,
            self.handshake_rate,
            self.handshake_burst,
        )

    def deflate_options(self) -> DeflateOptions | None:
        """The permessage-deflate offer the server accepts, or ``None``."""
        return _compression_options(self.compression)

    def response_headers(self, request: Request) -> HeadersLike:
        """The extra headers for the response to ``request``."""
        extra = self.extra_headers
        if extra is None:
            return ()
        if callable(extra):
            return extra(request)
        return extra

    def shaped_refusal(
        self,
        request: Request,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response | None:
        """The refusal that :attr:`upgrade_error` makes, or ``None`` (no hook, or it failed).

        ``headers`` (those the refusal needs) are added unless the hook's
        response has them. A failing hook is logged; the caller then sends
        its default refusal.
        """
        hook = self.upgrade_error
        if hook is None:
            return None
        try:
            response = hook(request, status, reason)
        except Exception as exc:
            report_failure(self.logger, exc, "the upgrade_error hook")
            return None
        merged = Headers(response.headers)
        for name, value in headers:
            if merged.get(name) is None:
                merged.add(name, value)
        return Response(response.status, response.reason, merged, response.body)

    def handshake(self, request: Request) -> tuple[Response, Connection, str | None]:
        """Answer an upgrade request: the 101 response, the protocol core, the subprotocol.

        Raises:
            InvalidRequest: the request is refused; answer with its status.
        """
        if self.path is not None and request.path != self.path:
            raise InvalidRequest(f"No WebSocket endpoint at {request.path}", 404)
        result = server_handshake(
            request,
            subprotocols=self.subprotocols,
            select_subprotocol=self.select_subprotocol,
            origins=self.origins,
            check_origin=self.check_origin,
            compression=self.deflate_options(),
            extra_headers=self.response_headers(request),
            server_header=self.server_header,
        )
        protocol = Connection(
            Side.SERVER, max_size=self.max_size, deflate=result.deflate, defer_failure=True
        )
        return result.response, protocol, result.subprotocol


# Kinds of the log records a client can cause here (see wskit.limits.client_caused);
# the set stays bounded: a limit's name or an HTTP status, never client text.
_HANDSHAKE_TIMEOUT = ("handshake-timeout",)

REFUSAL_LINGER = 1.0
"""Seconds a connection refused with 503 has to read it and close, before it is dropped."""

MAX_LINGERING = DESCRIPTOR_HEADROOM // 2
"""Refused connections left to linger at most at once; beyond, they are closed at once.

A flood of refused connections must not take the descriptors that
``max_connections`` leaves free (a lingering socket holds one), or
``accept()`` would fail with ``EMFILE`` after all.
"""


class ServerConn(Conn):
    """The server side of a connection, from the first byte of the handshake.

    Until the handshake is done, received bytes go to the HTTP request
    parser; afterwards, to the protocol core. A connection over one of the
    server-wide limits (see :mod:`~wskit.asyncio.admission`) is answered 503
    at once and never reaches the parser.
    """

    # Slots: thousands of idle connections each save a __dict__.
    __slots__ = (
        "_address",
        "_admitted",
        "_handshake_timer",
        "_parser",
        "_pending",
        "handler_task",
        "server",
    )

    def __init__(self, server: Server) -> None:
        super().__init__(Side.SERVER, **server.options.conn_options())
        self.server = server
        self._parser: RequestParser | None = RequestParser(max_head=server.options.max_header_size)
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._pending: bytearray | bytes = bytearray()
        self.handler_task: asyncio.Task[None] | None = None
        # The client's IP address (None on a Unix socket), for the limits and the log.
        self._address: str | None = None
        # Whether the server's admission counts this connection (until it is lost).
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection under the server-wide limits, or answer 503 at once."""
        # Not asyncio.Transport itself with every event loop (uvloop's is not).
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        admission = server.admission
        # A lookup in a dict the transport filled when it was made: cheap.
        peer = transport.get_extra_info("peername")
        # (host, port...) for TCP; a Unix socket has no address to count.
        self._address = peer[0] if isinstance(peer, tuple) and peer else None
        log = server.options.logger
        if log.isEnabledFor(logging.DEBUG):
            log.debug("conn %d: connection from %s", self.id, peer)
        refusal = admission.admit(self._address)
        if refusal is not None:
            self._refuse_at_once(refusal)
            return
        self._admitted = True
        server._connections.add(self)
        self._handshake_timer = self._loop.call_later(
            server.options.handshake_timeout, self._handshake_timed_out
        )

    def _refuse_at_once(self, refusal: Refusal) -> None:
        """Answer a connection over a limit with its 503, before its request is read."""
        self._parser = None
        self.response = refusal.response
        refusal.log(
            self.server.options.logger, f"conn {self.id}: refused a connection", self._address
        )
        transport = self.transport
        assert transport is not None
        transport.write(refusal.wire)
        lingering = self.server._lingering
        if len(lingering) < MAX_LINGERING and transport.can_write_eof():
            # Half-close, and read (discarding) until the client closes: closing
            # with its request unread would send a RST, which can destroy the 503
            # before the client reads it. A client that never closes is dropped
            # after REFUSAL_LINGER.
            try:
                transport.write_eof()
            except OSError:  # the client is gone already
                transport.abort()
                return
            lingering.add(self)
            self._handshake_timer = self._loop.call_later(REFUSAL_LINGER, transport.abort)
        else:
            transport.close()

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self.protocol is None and self.transport is not None:
            self.server.counters.handshake_timeouts += 1
            client_caused.log(
                self.server.options.logger,
                logging.INFO,
                _HANDSHAKE_TIMEOUT,
                "conn %d: opening handshake from %s not done after %s s; dropped",
                self.id,
                self._address,
                self.server.options.handshake_timeout,
            )
            self.transport.abort()

    def _receive_handshake(self, data: bytes) -> None:
        if not self._admitted:
            return  # refused: what the client still sends is read only to be dropped
        parser = self._parser
        if parser is None:
            # The hook is still deciding (reading is paused, but one read may
            # have been under way): keep it for the WebSocket phase.
            self._pending += data
            return
        try:
            request = parser.feed(data)
        except InvalidRequest as exc:
            self._refuse(self._error_response(None, exc), exc.reason)
            return
        if request is None:
            return
        self._parser = None
        self._pending += parser.leftover
        self.request = request
        if self.server.options.process_request is None:
            self._accept(request)
        else:
            # What the client sends while the hook decides waits in the socket
            # (TCP pushes back), not in our memory: a slow hook (a database
            # lookup) must not let a client stream gigabytes into _pending.
            assert self.transport is not None
            self.transport.pause_reading()
            self._loop.create_task(self._run_hook(request))

    async def _run_hook(self, request: Request) -> None:
        options = self.server.options
        hook = options.process_request
        assert hook is not None
        try:
            answer = hook(self, request)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:
            self.server.counters.handler_errors += 1
            error_id = report_failure(options.logger, exc, "process_request")
            message = public_error_message(exc, error_id, options.debug)
            self._refuse(self._error_response(request, InvalidRequest(message, 500)), None)
            return
        if answer is not None:
            self._refuse(answer, "by process_request")
        elif self.transport is not None and not self.transport.is_closing():
            self._accept(request)
            if self.protocol is not None:
                self._update_reading()  # reading was paused for the hook

    def _error_response(self, request: Request | None, exc: InvalidRequest) -> Response:
        if request is not None:
            shaped = self.server.options.shaped_refusal(
                request, exc.status, exc.reason, exc.headers
            )
            if shaped is not None:
                return shaped
        return reject(exc.status, exc.body, exc.headers)

    def _refuse(self, response: Response, why: str | None) -> None:
        """Answer the handshake with ``response`` (not 101) and close.

        ``why`` goes into an INFO record, rate-limited since a client causes
        it; ``None`` when the cause is logged already (a hook's exception).
        """
        self.response = response
        self.server.counters.handshakes_refused += 1
        log = self.server.options.logger
        status = response.status
        # Refused before its request was read (a limit, a malformed head): no path.
        request: Request | None = getattr(self, "request", None)
        path = request.path if request is not None else None
        logged = why is not None and client_caused.log(
            log,
            logging.INFO,
            ("refused", status),
            "conn %d: opening handshake from %s refused with %d: %.200s (path %.200r)",
            self.id,
            self._address,
            status,
            why,
            path,
        )
        if not logged and log.isEnabledFor(logging.DEBUG):
            log.debug("conn %d: handshake refused with %d (path %.200r)", self.id, status, path)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(serialize_response(response))
            transport.close()

    def _accept(self, request: Request) -> None:
        try:
            response, protocol, subprotocol = self.server.options.handshake(request)
        except InvalidRequest as exc:
            self._refuse(self._error_response(request, exc), exc.reason)
            return
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.response = response
        self.subprotocol = subprotocol
        assert self.transport is not None
        self.transport.write(serialize_response(response))
        log = self.server.options.logger
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "conn %d: handshake accepted with 101 (path %.200r, subprotocol %r, %s)",
                self.id,
                request.path,
                subprotocol,
                "deflate" if protocol.deflate is not None else "no compression",
            )
        leftover, self._pending = bytes(self._pending), b""  # no buffer kept open
        self._open(protocol, self.transport, leftover)
        self.handler_task = self._loop.create_task(self._run_handler())

    async def _run_handler(self) -> None:
        options = self.server.options
        try:
            await self.server.handler(self)
        except Exception as exc:
            if isinstance(exc, ConnectionClosed) and self.state is not State.OPEN:
                # recv() or send() saw this connection end: not a handler error
                # (close() then only waits for the end of the closing handshake).
                options.logger.debug("conn %d: closed under the handler: %s", self.id, exc)
                await self.close(1000)
                return
            # The exception's text may hold anything (a password in a KeyError):
            # the client reads an error id, the log has the traceback under it.
            self.server.counters.handler_errors += 1
            error_id = report_failure(options.logger, exc, "the connection handler")
            reason = public_error_message(exc, error_id, options.debug)
            await self.close(1011, fit_close_reason(reason))
        else:
            await self.close(1000)
        finally:
            self.server._handler_done(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection on the server and wake its waiters."""
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        server = self.server
        if self._admitted:
            self._admitted = False
            server.admission.release(self._address)
        else:
            server._lingering.discard(self)
        log = server.options.logger
        if self.protocol is None:
            server._connections.discard(self)
            if not self._closed.done():
                self._closed.set_result(None)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("conn %d: connection lost before a WebSocket opened (%s)", self.id, exc)
            return
        super().connection_lost(exc)
        if log.isEnabledFor(logging.DEBUG):
            self._trace_close(log, exc)
        if self.handler_task is None or self.handler_task.done():
            server._connections.discard(self)


class Server:
    """A running WebSocket server; see :func:`serve`.

    ``close()`` stops accepting connections and closes the open ones with
    1001 (going away); ``await wait_closed()`` returns once they are gone.
    ``async with`` does both on exit.
    """

    def __init__(self, handler: Handler, options: ServerOptions) -> None:
        self.handler = handler
        self.options = options
        self.server: asyncio.base_events.Server | None = None
        self._connections: set[ServerConn] = set()
        # Refused connections waiting for their client to close (see MAX_LINGERING).
        self._lingering: set[ServerConn] = set()
        self._closing: asyncio.Task[None] | None = None
        #: The server-wide limits and their counts (:mod:`~wskit.asyncio.admission`).
        self.admission = options.admission()
        #: The class of the connections accepted from now on: :class:`ServerConn`,
        #: or a subclass that counts (:mod:`wskit.metrics` sets one while it is on).
        self.conn_class: type[ServerConn] = ServerConn

    @property
    def counters(self) -> ServerCounters:
        """What this server refused and what failed, since it started."""
        return self.admission.counters

    @property
    def connections(self) -> set[Conn]:
        """The connections currently open (handshake done, not yet closed)."""
        return {c for c in self._connections if c.protocol is not None and not c.closed}

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self.server.sockets) if self.server is not None else ()

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (useful with ``port=0``)."""
        return int(self.sockets[0].getsockname()[1])

    def _handler_done(self, conn: ServerConn) -> None:
        if conn.closed:
            self._connections.discard(conn)

    def close(self, close_connections: bool = True) -> None:
        """Stop accepting connections; close the open ones with 1001 unless told not to."""
        if self.server is not None:
            self.server.close()
        if close_connections and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close_connections())

    async def _close_connections(self) -> None:
        conns = list(self._connections)
        waits = []
        for conn in conns:
            if conn.protocol is None:
                if conn.transport is not None:
                    conn.transport.abort()
                continue
            waits.append(conn.close(1001, "server shutting down"))
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    async def wait_closed(self) -> None:
        """Wait until the server and every connection it accepted are closed."""
        if self._closing is not None:
            await self._closing
        tasks = [c.handler_task for c in self._connections if c.handler_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.options.close_timeout)
        if self.server is not None:
            await self.server.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until cancelled; then close gracefully."""
        try:
            await asyncio.Future()
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the server and wait until it and its connections are closed."""
        self.close()
        await self.wait_closed()


class ServerOptionsKwargs(TypedDict, total=False):
    """The fields of :class:`ServerOptions` as keyword arguments (of :func:`serve`, ``asgi_app()``).

    With ``**options: Unpack[ServerOptionsKwargs]`` a type checker refuses a
    misspelled option and checks each value's type; at run time
    :class:`ServerOptions` refuses an unknown name with :exc:`TypeError`.
    ``tests/test_typing.py`` checks it against the dataclass, field by field.
    """

    subprotocols: Sequence[str]
    select_subprotocol: Callable[[Sequence[str], Sequence[str]], str | None] | None
    origins: Sequence[str | None] | None
    check_origin: Callable[[Request], bool] | None
    compression: str | DeflateOptions | None
    extra_headers: HeadersLike | Callable[[Request], HeadersLike] | None
    path: str | None
    process_request: ProcessRequest | None
    upgrade_error: UpgradeErrorHandler | None
    server_header: str | None
    handshake_timeout: float
    max_size: int | None
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    auto_pong: bool
    write_limit: int
    max_header_size: int
    max_connections: int | None
    max_connections_per_ip: int | None
    handshake_rate: float | None
    handshake_burst: int
    debug: bool
    logger: logging.Logger


class serve(Opening[Server]):
    """Start a WebSocket server: ``server = await serve(handler, host, port)``.

    Also ``async with serve(handler, host, port) as server: ...``, which
    closes the server on exit. ``handler`` is an ``async def`` taking a
    :class:`ServerConn` (annotate it so, or with :class:`Conn`); when it
    returns, the connection is closed with 1000.

    Args:
        handler: the coroutine function run for each connection.
        host: address to listen on (``"127.0.0.1"``, ``"::"``...).
        port: TCP port; ``0`` picks a free one (see :attr:`Server.port`).
        ssl: an :class:`ssl.SSLContext` to serve ``wss://``.
        unix_path: listen on this Unix socket path instead of TCP.
        sock: an already bound socket to listen on.
        reuse_port: set ``SO_REUSEPORT`` (several processes on one port).
        backlog: the listen backlog.
        options: a :class:`ServerOptions`; keyword arguments override its fields.
        **kwargs: any field of :class:`ServerOptions`.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        unix_path: str | None = None,
        sock: socket.socket | None = None,
        reuse_port: bool | None = None,
        backlog: int = 1024,
        options: ServerOptions | None = None,
        **kwargs: Unpack[ServerOptionsKwargs],
    ) -> None:
        self._server = Server(handler, ServerOptions.given(options, kwargs))
        self._host = host
        self._port = port
        self._ssl = ssl
        self._unix_path = unix_path
        self._sock = sock
        self._reuse_port = reuse_port
        self._backlog = backlog

    async def _open(self) -> Server:
        server = self._server
        loop = asyncio.get_running_loop()

        def factory() -> ServerConn:
            return server.conn_class(server)

        if self._unix_path is not None:
            server.server = await loop.create_unix_server(
                factory, self._unix_path, ssl=self._ssl, backlog=self._backlog
            )
        elif self._sock is not None:
            server.server = await loop.create_server(
                factory, sock=self._sock, ssl=self._ssl, backlog=self._backlog
            )
        else:
            server.server = await loop.create_server(
                factory,
                self._host,
                self._port or 0,
                ssl=self._ssl,
                reuse_port=self._reuse_port,
                backlog=self._backlog,
            )
        return server

    async def _close(self, server: Server) -> None:
        await server.aclose()
