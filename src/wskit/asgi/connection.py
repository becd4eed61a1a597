"""The connection over ASGI ``receive``/``send``: :class:`AsgiConn`, wskit's second connection.

Theory of operation
===================

An ASGI server owns the socket, the framing, compression and keepalive; the
application sees a connection as a stream of ASGI messages
(``websocket.connect``, ``websocket.receive``, ``websocket.disconnect`` in;
``websocket.accept``, ``websocket.send``, ``websocket.close`` and the
denial response ``websocket.http.response.*`` out). :class:`AsgiConn` turns
that stream back into the API of :class:`wskit.Conn` (``recv``, ``send``,
``async for``, ``close``, ``write_prepared`` ...), so a ``Conn`` handler or a
hub runs unchanged on either.

Once the connection is accepted two tasks talk to the server:

* a *reader* pulls ``websocket.receive`` messages into the receive queue
  that ``Conn`` reads too (:class:`~wskit.asyncio.api.ConnectionAPI`'s), at
  most ``max_queue`` messages, and stops pulling when the queue is full, so the
  server stops reading the socket (backpressure); it also stops while more
  than ``write_limit`` bytes wait to be sent and no sender waits for them to
  drain (as :class:`wskit.Conn` does), until they are down to
  ``write_limit // 4``: a peer that sends requests and never reads the replies
  cannot grow the outgoing queue; it enforces ``max_size``
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
:class:`~wskit.asgi.spec.ASGIProtocolError` naming what was expected and
what came.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
from collections.abc import (
    AsyncIterable,
    Callable,
    Iterable,
    MutableMapping,
    Sequence,
)
from types import TracebackType
from typing import Any, cast

from ..asyncio.connection import ConnectionAPI, Data
from ..exceptions import ConnectionClosed, LocalProtocolError, closed_exception
from ..limits import client_caused
from ..protocol.connection import PreparedMessage, State
from ..protocol.events import DataReceived
from ..protocol.frames import Opcode, fit_close_reason, is_valid_close_code
from ..protocol.headers import Headers
from ..protocol.http11 import Request, Response, reason_phrase
from .spec import (
    DENIAL_EXTENSION,
    ASGIProtocolError,
    Message,
    Receive,
    Scope,
    Send,
    request_from_scope,
    wire_headers,
)

__all__ = ["AsgiConn", "ConnState"]

logger = logging.getLogger("wskit.asgi")

CloseHandler = Callable[[int, str], object]
"""``on_close(code, reason)``: called when the peer's close arrives; may return a coroutine."""


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
        max_queue: int = 16,
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
        self._asgi_receive = receive
        self._asgi_send = send
        self._loop = asyncio.get_running_loop()
        # The receive queue (see wskit.asyncio.api): whole messages, each
        # as DataReceived(message, True); _space is clear while the reader
        # loop waits for the queue to go below max_queue.
        self._queue: collections.deque[DataReceived] = collections.deque()
        self._queue_size = 0
        self._partial = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
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
        message = await self._asgi_receive()
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
        await self._asgi_send(message)

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
            message["headers"] = wire_headers(response_headers)
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
                    "headers": wire_headers(headers),
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
        queue = self._queue
        try:
            while True:
                while (
                    self._queue_full() or self._writes_pending_over_limit()
                ) and not self._close_queued:
                    self._reading_paused = True
                    self._space.clear()
                    await self._space.wait()
                self._reading_paused = False
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
                queue.append(DataReceived(data, True))
                self._queue_size += len(data)
                self._wake_reader()
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
                if self._queued <= self.write_limit // 4:
                    if self._drain_waiters:
                        self._wake_drainers()
                    if not self._space.is_set():
                        self._space.set()  # the reader re-checks both of its bounds
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

    def _writes_pending_over_limit(self) -> bool:
        """Whether the reader must wait for the outgoing queue to drain (see the module)."""
        return self._queued > self.write_limit and not self._drain_waiters

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
            # A sender waits now: the reader reads on (see the module's docstring).
            self._space.set()
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:
                    self._drain_waiters.remove(waiter)
        if self._closed.done():
            raise self._closed_exception()

    # -- ending -------------------------------------------------------------------------

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
        self._wake_reader()
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
            client_caused.log(
                logger, logging.INFO, ("asgi-close-timeout",), "closing handshake timed out"
            )
            if self._write_task is not None:
                self._write_task.cancel()
            self._ended(1006, "")

    # -- reading: the receive queue is ConnectionAPI's ----------------------------------

    def _closed_exception(self) -> ConnectionClosed:
        code = self._close_code if self._close_code is not None else 1006
        return closed_exception(code, self._close_reason, self._sent_code, self._sent_reason)

    def _wait_for_data(self) -> asyncio.Future[None]:
        if self._closed.done():
            raise self._closed_exception()
        if self.application_state is ConnState.CONNECTING:
            raise ASGIProtocolError("accept the connection before receiving")
        return self._new_read_waiter()

    def _queue_full(self) -> bool:
        """Whether the receive queue holds ``max_queue`` messages, or more than ``max_size``."""
        max_size = self.max_size
        return len(self._queue) >= self.max_queue or (
            max_size is not None and self._queue_size > max_size
        )

    def _maybe_resume_reading(self) -> None:
        if not self._queue_full():
            self._reading_paused = False
            self._space.set()

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
        reason = fit_close_reason(reason)
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
