"""uvicorn's WebSocket protocol class on wskit's connection: :class:`WebSocketProtocol`.

Read :mod:`wskit.uvicorn` first: how uvicorn hands a connection over, the
stages of its ASGI side, and the behaviour it shares with uvicorn's own
classes. Here, one class does it all on top of
:class:`~wskit.asyncio.connection.Conn`, whose receive path, send path,
queue, backpressure, keepalive and closing it reuses unchanged: uvicorn's
side (``connection_made``, ``shutdown``, ``connection_lost``), reading the
replayed request head, running the application, and its ``receive`` and
``send`` callables, the per-message path kept as short as ``Conn``'s own.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, cast

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import ClientDisconnected

from ..asgi.spec import Message
from ..asyncio.connection import Conn
from ..exceptions import ConnectionClosed, InvalidRequest
from ..limits import report_failure
from ..protocol.connection import Connection, Side
from ..protocol.deflate import DeflateOptions
from ..protocol.handshake import ServerHandshakeResult, reject, server_handshake
from ..protocol.headers import Headers
from ..protocol.http11 import RequestParser, Response, reason_phrase, serialize_response
from ..protocol.state import SENDING, Phase
from .scope import (
    Stage,
    any_origin,
    decode_headers,
    disconnect_event,
    local_address,
    log_answer,
    logger,
    make_scope,
    socket_address,
)

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["WebSocketProtocol", "WebSocketProtocol1001"]

_OPEN = Phase.OPEN
# The stage of every message once accepted: the hot paths test it with ``is``.
_ACCEPTED = Stage.ACCEPTED

# Bytes a client may send after its request and before the application has
# accepted; past this, reading pauses until the application decides.
_EARLY_DATA_LIMIT = 2**16

# The head was read and bounded by uvicorn's HTTP layer already: parse it
# again without limits of our own (uvicorn's decide).
_HEAD_LIMIT = 2**24


class WebSocketProtocol(Conn):
    """uvicorn's WebSocket implementation on wskit's core: ``--ws wskit.uvicorn:WebSocketProtocol``.

    uvicorn builds one per upgrade request, with its ``config``,
    ``server_state`` and ``app_state``; you never do. It serves the ASGI
    WebSocket interface (``websocket.connect``/``receive``/``disconnect``
    in; ``accept``, ``send``, ``close`` and the denial response
    ``websocket.http.response.start``/``body`` out) on wskit's connection,
    with uvicorn's options (see the module's docstring).

    Subclass it to change what uvicorn has no option for, and pass the
    subclass to ``--ws`` by its import string:

    * :attr:`shutdown_code` and :attr:`shutdown_reason`: the close frame
      sent to open connections when the server shuts down (1012, as
      uvicorn; :class:`WebSocketProtocol1001` sends 1001);
    * :attr:`deflate_options`: the permessage-deflate settings when
      ``ws_per_message_deflate`` is on;
    * ``close_timeout``: seconds to wait for the client's close frame after
      the application's (10, as uvicorn).
    """

    __slots__ = (
        "_app",
        "_app_state",
        "_asgi_version",
        "_compression",
        "_connections",
        "_connect_pending",
        "_default_headers",
        "_denial",
        "_disconnect",
        "_early",
        "_handshake",
        "_parser",
        "_root_path",
        "_stage",
        "_stage_waiter",
        "_tasks",
        "client",
        "last_ping_rtt",
        "ping_sent_at",
        "scheme",
        "scope",
        "server",
    )

    #: The close code sent to open WebSockets when the server shuts down.
    shutdown_code: ClassVar[int] = 1012
    #: The close reason sent with it; when empty (the default), the
    #: application's ``websocket.disconnect`` has no ``reason`` key, as uvicorn's.
    shutdown_reason: ClassVar[str] = ""
    #: permessage-deflate as negotiated when ``ws_per_message_deflate`` is on:
    #: 4 KiB windows and ``memLevel`` 5, the memory per connection uvicorn chose.
    deflate_options: ClassVar[DeflateOptions] = DeflateOptions(
        server_max_window_bits=12, client_max_window_bits=12, mem_level=5
    )

    #: The ASGI scope, once the request head has been read.
    scope: dict[str, Any]
    #: The peer's ``(host, port)``, the scope's ``client`` (which uvicorn's
    #: proxy-headers middleware may rewrite).
    client: tuple[str, int] | None
    #: The scope's ``server``.
    server: tuple[str, int | None] | None
    #: ``"wss"`` over TLS, ``"ws"`` otherwise.
    scheme: str
    #: When the last keepalive ping went out, on the event loop's clock
    #: (``loop.time()``); 0.0 before the first. uvicorn's classes have it too.
    ping_sent_at: float
    #: The round trip of the last keepalive ping the client answered, in
    #: seconds; 0.0 before the first answer.
    last_ping_rtt: float

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        ping_interval = config.ws_ping_interval
        super().__init__(
            Side.SERVER,
            max_size=config.ws_max_size,
            max_queue=config.ws_max_queue,
            # uvicorn turns keepalive off with 0 as well as None.
            ping_interval=ping_interval if ping_interval else None,
            ping_timeout=config.ws_ping_timeout,
        )
        self._app = config.loaded_app
        self._app_state = app_state
        self._asgi_version = config.asgi_version
        self._root_path = config.root_path
        self._compression = self.deflate_options if config.ws_per_message_deflate else None
        # A set of uvicorn's protocol classes, typed as such: ours is one too.
        self._connections = cast("set[Any]", server_state.connections)
        self._tasks = server_state.tasks
        self._default_headers = server_state.default_headers
        self._parser: RequestParser | None = RequestParser(
            max_line=_HEAD_LIMIT, max_headers=_HEAD_LIMIT, max_head=_HEAD_LIMIT
        )
        self._handshake: ServerHandshakeResult | None = None
        self._early = bytearray()
        self._stage = Stage.HANDSHAKE
        self._stage_waiter: asyncio.Future[None] | None = None
        self._connect_pending = True
        # The denial response under way: status, headers, the body so far, or
        # None once its head is written (the application gave a Content-Length).
        self._denial: tuple[int, Headers, bytearray] | None = None
        # The websocket.disconnect the application gets, once it is decided
        # by us (our close, a denial, the shutdown) rather than by the peer.
        self._disconnect: Message | None = None
        self.client = None
        self.server = None
        self.scheme = "ws"
        self.ping_sent_at = 0.0
        self.last_ping_rtt = 0.0

    # -- uvicorn's side ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """uvicorn hands the upgraded connection over (before replaying the request head)."""
        self.transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        self.server = local_address(transport)
        self.client = socket_address(transport.get_extra_info("peername"))
        self.scheme = "wss" if transport.get_extra_info("sslcontext") else "ws"
        self._trace("WebSocket connection made")

    def shutdown(self) -> None:
        """Close the connection because the server shuts down (uvicorn calls this).

        An open WebSocket is closed with :attr:`shutdown_code` (1012) and the
        application receives ``websocket.disconnect`` with that code; an
        upgrade the application has not answered yet is answered with 500.
        """
        protocol = self.protocol
        if self._stage is Stage.ACCEPTED and protocol is not None and protocol.phase in SENDING:
            reason = self.shutdown_reason
            self._disconnect = disconnect_event(self.shutdown_code, reason or None)
            self._set_stage(Stage.CLOSED)
            self._closed_first = True
            protocol.send_close(self.shutdown_code, reason)
            self._sync_writer()
            self._write(protocol.data_to_send())
        elif self._stage is Stage.HANDSHAKE:
            self._send_500()
        self._close_transport()

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone: forget it on the server and wake the application."""
        self._connections.discard(self)
        self._trace("WebSocket connection lost")
        if self.protocol is None:
            if not self._closed.done():
                self._closed.set_result(None)
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
        else:
            super().connection_lost(exc)
        self._wake_stage_waiter()

    @property
    def ping_timer(self) -> asyncio.TimerHandle | None:
        """The timer of the next keepalive ping; ``None`` when keepalive is off.

        Named as in uvicorn's classes, so that code written against them
        reads the keepalive state of this one too.
        """
        return self._keepalive

    def _send_keepalive(self) -> None:
        in_flight = len(self._pings)
        super()._send_keepalive()
        if len(self._pings) > in_flight:
            # The ping just sent is the newest: dicts keep insertion order.
            self.ping_sent_at = self._loop.time()
            waiter, _ = next(reversed(self._pings.values()))
            waiter.add_done_callback(self._record_ping_rtt)

    def _record_ping_rtt(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.cancelled() and waiter.exception() is None:
            self.last_ping_rtt = waiter.result()

    def _trace(self, what: str) -> None:
        """A TRACE record in uvicorn's words: ``client - what``."""
        if logger.isEnabledFor(TRACE_LOG_LEVEL):
            client = self.client
            prefix = f"{client[0]}:{client[1]} - " if client else ""
            logger.log(TRACE_LOG_LEVEL, "%s%s", prefix, what)

    def _close_transport(self) -> None:
        # The application's close set a timer to close if the client never
        # answers; whoever closes first cancels it.
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        super()._close_transport()

    # -- the request -----------------------------------------------------------------------

    def _receive_handshake(self, data: bytes) -> None:
        """Read the replayed request head; keep what follows until the application decides."""
        parser = self._parser
        if parser is None:
            # Frames sent before the 101: kept for the WebSocket, bounded.
            early = self._early
            early += data
            if len(early) > _EARLY_DATA_LIMIT and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
            return
        try:
            request = parser.feed(data)
            if request is None:
                return
            self._parser = None
            self._early += parser.leftover
            self._handshake = server_handshake(
                request,
                check_origin=any_origin,
                compression=self._compression,
                server_header=None,
            )
        except InvalidRequest as exc:
            self._refuse(exc)
            return
        self.request = request
        self.scope = make_scope(
            request,
            asgi_version=self._asgi_version,
            scheme=self.scheme,
            server=self.server,
            client=self.client,
            root_path=self._root_path,
            state=self._app_state,
        )
        task = self._loop.create_task(self._run_asgi())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refuse(self, exc: InvalidRequest) -> None:
        """Answer a request that is no WebSocket handshake; the application never runs."""
        self._stage = Stage.CLOSED
        headers = Headers(exc.headers)
        headers.update(decode_headers(self._default_headers))
        self._write_response(reject(exc.status, exc.body, headers))
        self._close_transport()

    # -- the application ---------------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self._app(self.scope, self.asgi_receive, self.asgi_send)
        except ClientDisconnected:
            pass
        except BaseException as exc:
            # Rate-limited with an error id: a client can make a buggy app fail at will.
            report_failure(logger, exc, "the ASGI application")
            self._send_500()
        else:
            if self._stage is Stage.HANDSHAKE:
                logger.error("ASGI callable returned without completing handshake.")
                self._send_500()
            elif self._stage is Stage.RESPONSE:
                logger.error("ASGI callable returned without completing the response.")
                self._send_500()
            elif result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
        protocol = self.protocol
        if protocol is None or protocol.phase is not Phase.CLOSING:
            # No closing handshake under way (the application's close waits
            # for the client's answer): the connection ends with the application.
            self._close_transport()

    def _send_500(self) -> None:
        """Answer 500 if nothing of a response has gone out yet."""
        if self._stage is Stage.HANDSHAKE or (
            self._stage is Stage.RESPONSE and self._denial is not None
        ):
            self._set_stage(Stage.CLOSED)
            headers = Headers(decode_headers(self._default_headers))
            self._write_response(reject(500, b"Internal Server Error", headers))

    def _write_response(self, response: Response) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(serialize_response(response))

    def _set_stage(self, stage: Stage) -> None:
        self._stage = stage
        self._wake_stage_waiter()

    def _wake_stage_waiter(self) -> None:
        waiter = self._stage_waiter
        if waiter is not None:
            self._stage_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- receive -------------------------------------------------------------------------------

    async def asgi_receive(self) -> Message:
        """The ASGI ``receive`` callable the application is given."""
        if self._stage is not _ACCEPTED:
            event = await self._receive_outside_session()
            if event is not None:
                return event
        try:
            data = await self._receive(False)
        except ConnectionClosed:
            return self._disconnect_message()
        if type(data) is str:
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def _receive_outside_session(self) -> Message | None:
        """What ``receive()`` answers before the accept and after our close.

        ``None`` means: a message waits in the connection's queue, take it.
        """
        if self._connect_pending:
            self._connect_pending = False
            return {"type": "websocket.connect"}
        while self._stage is not _ACCEPTED:
            if self._stage is Stage.CLOSED or self._closed.done():
                # Messages queued before our close still reach the application.
                if self.protocol is not None and any(fin for _, fin in self._queue):
                    return None
                return self._disconnect_message()
            waiter = self._stage_waiter = self._loop.create_future()
            await waiter
        return None

    def _disconnect_message(self) -> Message:
        """The ``websocket.disconnect`` event: who closed first, with what."""
        if self._disconnect is not None:
            return dict(self._disconnect)
        protocol = self.protocol
        if protocol is None:
            return disconnect_event(1006, None)
        received, sent = protocol.close_rcvd, protocol.close_sent
        if sent is not None and (received is None or self._closed_first):
            return disconnect_event(*sent)
        if received is not None:
            return disconnect_event(*received)
        # Lost without a close frame: no code received, 1005 as the ASGI spec
        # says and as uvicorn's current classes report (its legacy one, 1006).
        return disconnect_event(1005, None)

    # -- send ----------------------------------------------------------------------------------

    async def asgi_send(self, message: Message) -> None:
        """The ASGI ``send`` callable the application is given."""
        protocol = self.protocol
        if (
            protocol is not None
            and protocol.phase is _OPEN
            and self._stage is _ACCEPTED
            and message["type"] == "websocket.send"
        ):
            # The hot path: a message on an open connection.
            data = message.get("bytes")
            if data is not None:
                protocol.send_binary(data)
            else:
                text = message.get("text")
                if text is None:
                    return
                protocol.send_text(text)
            self._write(protocol.data_to_send())
            if self._write_paused:
                await self._drain_or_disconnected()
            return
        await self._send_other(message)

    async def _drain_or_disconnected(self) -> None:
        try:
            await self._drain()
        except ConnectionClosed as exc:
            raise ClientDisconnected from exc

    async def _send_other(self, message: Message) -> None:
        if self._closed.done():
            raise ClientDisconnected
        kind = message["type"]
        stage = self._stage
        if stage is Stage.HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._deny()
            elif kind == "websocket.http.response.start":
                self._start_response(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' "
                    f"or 'websocket.http.response.start' but got '{kind}'."
                )
        elif stage is Stage.ACCEPTED:
            if kind == "websocket.send":
                await self._send_when_not_open(message)
            elif kind == "websocket.close":
                self._close_session(message.get("code", 1000), message.get("reason") or "")
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif stage is Stage.RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
                )
            self._send_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    async def _send_when_not_open(self, message: Message) -> None:
        """``websocket.send`` outside the OPEN phase: held failure (still sending) or closed."""
        protocol = self.protocol
        assert protocol is not None
        if protocol.phase not in SENDING:
            raise ClientDisconnected
        data = message.get("bytes")
        text = message.get("text")
        if data is not None:
            protocol.send_binary(data)
        elif text is not None:
            protocol.send_text(text)
        self._write(protocol.data_to_send())
        if self._write_paused:
            await self._drain_or_disconnected()

    def _accept(self, message: Message) -> None:
        """``websocket.accept``: the 101 goes out and the WebSocket opens."""
        handshake = self._handshake
        assert handshake is not None and self.transport is not None
        response = handshake.response
        headers = response.headers
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.add("Sec-WebSocket-Protocol", subprotocol)
        # uvicorn's default headers (Server, Date, --header) first, then the application's.
        for name, value in decode_headers(self._default_headers) + decode_headers(
            message.get("headers", ())
        ):
            headers.add(name, value)
        wire = serialize_response(response)  # ValueError for an unsafe header: still 500
        log_answer(self.scope, "[accepted]")
        self.response = response
        self.subprotocol = subprotocol
        self._handshake = None
        self.transport.write(wire)
        protocol = Connection(
            Side.SERVER, max_size=self.max_size, deflate=handshake.deflate, defer_failure=True
        )
        self._set_stage(Stage.ACCEPTED)
        early, self._early = bytes(self._early), bytearray()
        self._reading_paused = False
        self._open(protocol, self.transport, early)
        self._update_reading()

    def _deny(self) -> None:
        """``websocket.close`` before ``websocket.accept``: 403, as uvicorn answers."""
        log_answer(self.scope, "403")
        self._disconnect = disconnect_event(1006, None)
        self._set_stage(Stage.CLOSED)
        headers = Headers(decode_headers(self._default_headers))
        self._write_response(reject(403, b"", headers))
        self._close_transport()

    def _start_response(self, message: Message) -> None:
        """``websocket.http.response.start``: a denial response of the application's."""
        status = message["status"]
        if not 100 <= status < 600:
            raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
        log_answer(self.scope, str(status))
        headers = Headers(decode_headers(self._default_headers))
        headers.update(decode_headers(message.get("headers", ())))
        if "Connection" not in headers:
            headers.add("Connection", "close")
        self._stage = Stage.RESPONSE
        if "Content-Length" in headers:
            # The length is known: the head goes now and the body as it comes.
            self._write_response(Response(status, reason_phrase(status), headers))
        else:
            # Sent whole once the body is complete, with its Content-Length.
            self._denial = (status, headers, bytearray())

    def _send_body(self, body: bytes, more_body: bool) -> None:
        denial = self._denial
        if denial is not None:
            denial[2].extend(body)
        elif body and self.transport is not None and not self.transport.is_closing():
            self.transport.write(body)
        if more_body:
            return
        if denial is not None:
            status, headers, buffered = denial
            self._denial = None
            self._write_response(Response(status, reason_phrase(status), headers, bytes(buffered)))
        self._disconnect = disconnect_event(1006, None)
        self._set_stage(Stage.CLOSED)
        self._close_transport()

    def _close_session(self, code: int, reason: str) -> None:
        """``websocket.close`` on an open WebSocket: the closing handshake starts.

        The application's next ``receive()`` gets ``websocket.disconnect``
        with its own code at once (after the messages already queued);
        what the client sends before its close frame is dropped, and the
        TCP connection ends when the client answers, or after
        ``close_timeout``.
        """
        protocol = self.protocol
        assert protocol is not None
        if protocol.phase not in SENDING:
            raise ClientDisconnected
        self._closed_first = protocol.phase is _OPEN
        protocol.send_close(code, reason)  # an invalid code raises, nothing sent
        self._disconnect = disconnect_event(code, reason)
        self._set_stage(Stage.CLOSED)
        if self._flush_close_frame():
            self._close_timer = self._loop.call_later(self.close_timeout, self._close_transport)


class WebSocketProtocol1001(WebSocketProtocol):
    """:class:`WebSocketProtocol` that closes with 1001 (going away) on server shutdown.

    ``uvicorn app:app --ws wskit.uvicorn:WebSocketProtocol1001``. uvicorn's
    own classes close with 1012 (service restart), which tells clients the
    server comes back; 1001 is what wskit's own server and
    :func:`~wskit.asgi.shutdown_all` send, for clients that treat the two
    differently. The application's ``websocket.disconnect`` carries the
    code and the reason ``"server shutting down"``.
    """

    __slots__ = ()

    shutdown_code: ClassVar[int] = 1001
    shutdown_reason: ClassVar[str] = "server shutting down"
