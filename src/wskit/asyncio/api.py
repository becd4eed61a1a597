"""What every wskit connection offers: :class:`ConnectionAPI`, the base of them all.

wskit has two connection classes that speak WebSocket on asyncio: the
protocol's own :class:`~wskit.asyncio.connection.Conn`, and the ASGI
adapter's ``AsgiConn``, which rides on a server's ASGI events. Each defines
its primitives (``send``, ``close``, where messages come from); this base
class writes the rest once, for both: the receive queue that ``recv()``,
``async for`` and ``recv_streaming()`` read, JSON, ``async with``, the
handshake headers and the calling of event handlers.

The receive queue
=================

Whatever arrives goes into ``_queue`` as
:class:`~wskit.protocol.events.DataReceived` ``(data, fin)`` pairs (a
fragment each for ``Conn``, whole messages for ``AsgiConn``), and the one
waiting reader is woken with ``ConnectionAPI._wake_reader()``. The reader
takes them out in ``ConnectionAPI._receive()``, joining fragments.

A class may also hand a whole message to a reader that already waits, as
the result of its waiter future (``Conn`` does when a read brings one while
the queue is empty): the message skips the queue, and the reader, woken
once, returns it and then drains what the same read queued behind it
without waiting again. A reader cancelled after it was handed a message
puts it back at the head of the queue (``_requeue_handed``), so a
cancelled ``recv()`` loses nothing.

The queue is bounded twice: in entries (``max_queue``) and in size
(``_queue_size``, the bytes, or characters for text, of what waits; past
``max_size``). The size matters because a peer can make each entry cheap to
send and dear to keep: with permessage-deflate a 16 MiB message may take 20
KB on the wire, and ``max_queue`` of them would hold 256 MiB. Past either
bound ``Conn`` pauses its transport's reading and ``AsgiConn`` stops asking
the server for messages; both start again in ``_maybe_resume_reading`` once
the reader has taken enough out. So the queue holds at most ``max_size``
plus the one message that crossed it.

Fragments are joined in one growing buffer (:class:`io.StringIO` for text,
:class:`io.BytesIO` for binary), not kept as a list of pieces: a message in
a million tiny fragments costs its size, not a million objects.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from ..exceptions import ConnectionClosed
from ..limits import report_failure
from ..protocol.events import DataReceived
from ..protocol.headers import Headers
from ..protocol.http11 import Request, Response
from ..protocol.prepared import PreparedMessage
from ..protocol.state import State

__all__ = ["ConnectionAPI", "Data"]

logger = logging.getLogger("wskit")

Data = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""


class ConnectionAPI:
    """The connection a handler receives, whichever server runs it: annotate handlers with it.

    ``wskit.ConnectionAPI`` is the documented type of a connection. Both of
    wskit's connections are one: :class:`~wskit.Conn` (``serve()`` hands its
    :class:`~wskit.ServerConn`, ``connect()`` its :class:`~wskit.ClientConn`)
    and the ASGI adapter's ``AsgiConn`` (``asgi_app()``, under uvicorn or any
    ASGI server), so one handler serves both::

        async def echo(conn: wskit.ConnectionAPI) -> None:
            async for message in conn:
                await conn.send(message)

    Every member below works on both, except where the ASGI side cannot:

    * ``ping()`` and ``pong()`` raise :class:`NotImplementedError` on ASGI,
      which has no such messages (the ASGI server sends its own keepalive
      pings, e.g. uvicorn's ``--ws-ping-interval``);
    * ``on_close`` is called on both, but only on ``Conn`` can it choose the
      close frame that answers the peer's (by returning ``(code, reason)``):
      the ASGI server answers the close itself;
    * ``Conn`` alone has ``on_ping``/``on_pong``/``auto_pong``, ``abort()``,
      ``on_message``, ``id``, the keepalive options and the compression
      switches: annotate with :class:`~wskit.Conn` to use them.

    Underneath, each class defines its primitives (``send``, ``close``,
    where messages come from, see the module's docstring); this base class
    writes receiving, iteration, JSON and ``async with`` once, for both.
    """

    # The receive queue (see the module's docstring): frames or messages not
    # read yet, the fragments of a message being joined, the reader waiting
    # for more, and whether the source is paused because the queue is full.
    __slots__ = ("_partial", "_queue", "_queue_size", "_read_waiter", "_reading_paused")

    #: The handshake request (sent by the client, received by the server).
    request: Request
    #: The handshake response.
    response: Response | None
    #: The negotiated subprotocol, or ``None``.
    subprotocol: str | None
    #: Called with ``(code, reason)`` when the peer's close frame arrives (on
    #: ``Conn``, a ``(code, reason)`` it returns is the close frame that answers).
    on_close: Callable[[int, str], object] | None
    json_loads: Callable[[str | bytes], Any]
    json_dumps: Callable[[Any], str]
    max_queue: int
    max_size: int | None
    close_timeout: float
    write_limit: int
    _loop: asyncio.AbstractEventLoop
    _queue: collections.deque[DataReceived]
    _queue_size: int
    _partial: io.StringIO | io.BytesIO | None
    # Completes with None (look at the queue) or with a message handed over.
    _read_waiter: asyncio.Future[Any] | None
    _reading_paused: bool

    def _call_handler(self, handler: Callable[..., object], *args: object) -> object:
        """Call an event handler (on_ping, on_close...): a coroutine it returns runs as a task.

        An exception it raises is logged with an error id, repeats
        rate-limited (a peer can make a buggy handler fail at every ping);
        the connection goes on. Returns what a plain function returned
        (``None`` for a coroutine or an exception): ``on_close`` may decide.
        """
        try:
            result = handler(*args)
        except Exception as exc:
            name = getattr(handler, "__name__", "control")
            report_failure(logger, exc, f"the {name} handler")
            return None
        if asyncio.iscoroutine(result):
            self._loop.create_task(result)
            return None
        return result

    # -- receiving: what each class defines --------------------------------------------

    def _wait_for_data(self) -> asyncio.Future[Any]:
        """A future that completes when data arrives or the connection ends.

        Each class checks its own conditions first (raising the closed
        exception once closed), then returns :meth:`_new_read_waiter`. Its
        result is ``None`` (the queue has data, or the connection ended) or
        a whole message handed over to the reader directly.
        """
        raise NotImplementedError

    def _maybe_resume_reading(self) -> None:
        """The reader took a message out of a full queue: resume the source if it is low."""
        raise NotImplementedError

    # -- receiving: the queue, written once ----------------------------------------------

    def _new_read_waiter(self) -> asyncio.Future[Any]:
        """The future the one reader waits on, until ``_wake_reader()``.

        A plain method returning the future, not a coroutine: a reader waiting
        on it costs one frame less (in memory and per message). A cancelled
        reader leaves a cancelled future behind, which the next one replaces.

        Raises:
            RuntimeError: another task is already waiting to read.
        """
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("another task is already reading from this connection")
        waiter = self._read_waiter = self._loop.create_future()
        return waiter

    def _wake_reader(self) -> None:
        """Wake the reader, if one waits: data arrived, or the connection ended."""
        waiter = self._read_waiter
        if waiter is not None:
            self._read_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _requeue_handed(self, waiter: asyncio.Future[Any]) -> None:
        """A reader was cancelled: a message it was handed but did not take goes back first."""
        if not waiter.done() or waiter.cancelled():
            return
        message = waiter.result()
        if message is None:
            return
        queue = self._queue
        if type(queue) is not collections.deque:
            queue = self._queue = collections.deque()  # Conn's shared empty tuple
        queue.appendleft(DataReceived(message, True))
        self._queue_size += len(message)

    def _pop(self) -> DataReceived:
        """Take the next frame or message out of the queue (which must hold one)."""
        event = self._queue.popleft()
        self._queue_size -= len(event.data)
        if self._reading_paused:
            self._maybe_resume_reading()
        return event

    def _assemble(self, data: Data, fin: bool) -> Data | None:
        """Add a frame's data to the fragmented message; the whole message at its end."""
        buffer = self._partial
        if buffer is None:
            buffer = self._partial = io.StringIO() if isinstance(data, str) else io.BytesIO()
        # The protocol core sends a message's fragments all str or all bytes.
        buffer.write(data)  # type: ignore[arg-type]
        if not fin:
            return None
        self._partial = None
        return buffer.getvalue()

    async def _receive(self, iterating: bool) -> Data:
        """The receive loop of :meth:`recv` and ``async for``."""
        while True:
            queue = self._queue
            if queue:
                data, fin = queue.popleft()
                self._queue_size -= len(data)
                if self._reading_paused:
                    self._maybe_resume_reading()
                if fin and self._partial is None:
                    return data  # the common case: a message in one frame
                message = self._assemble(data, fin)
                if message is not None:
                    return message
                continue
            try:
                waiter = self._wait_for_data()
            except ConnectionClosed as exc:
                if iterating and exc.ok:
                    raise StopAsyncIteration from None
                raise
            try:
                handed: Data | None = await waiter
            except asyncio.CancelledError:
                self._requeue_handed(waiter)
                raise
            if handed is not None:
                return handed  # handed over: it skipped the queue

    def recv(self) -> Coroutine[Any, Any, Data]:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        ``await conn.recv()``; a coroutine function in all but name (it hands
        out the coroutine of the one receive loop, which ``async for`` shares).

        Raises:
            ConnectionClosed: the connection closed (normally or not); the
                exception carries the close code and reason.
        """
        return self._receive(False)

    async def recv_streaming(self) -> AsyncIterator[Data]:
        """Yield the fragments of the next message as they arrive.

        Fragments of a text message are ``str`` (a fragment may split a
        character; the decoder carries it over), of a binary one ``bytes``.
        Where messages arrive whole (ASGI), the one fragment is the message.
        """
        while True:
            if self._queue:
                data, fin = self._pop()
                yield data
                if fin:
                    return
                continue
            waiter = self._wait_for_data()
            try:
                handed = await waiter
            except asyncio.CancelledError:
                self._requeue_handed(waiter)
                raise
            if handed is not None:
                yield handed  # a final frame, handed over (see the module's docstring)
                return

    # -- sending and closing: what each class defines --------------------------------------

    async def send(self, message: Any) -> None:
        """Send a message (defined by each connection class)."""
        raise NotImplementedError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (defined by each connection class)."""
        raise NotImplementedError

    def send_nowait(self, message: Data) -> None:
        """Send a message without waiting for the write buffer to drain (defined by each class)."""
        raise NotImplementedError

    def write_prepared(self, message: PreparedMessage, max_buffer: int | None = None) -> bool:
        """Write a message prepared once for many connections (defined by each class)."""
        raise NotImplementedError

    async def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared once for many connections (defined by each class)."""
        raise NotImplementedError

    def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        """Send a ping; a future for the round-trip time. ASGI: :class:`NotImplementedError`."""
        raise NotImplementedError

    async def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong. ASGI: :class:`NotImplementedError`."""
        raise NotImplementedError

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the connection has ended (defined by each class)."""
        raise NotImplementedError

    @property
    def state(self) -> State:
        """The protocol state: ``OPEN``, ``CLOSING`` or ``CLOSED``."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        raise NotImplementedError

    @property
    def close_code(self) -> int | None:
        """The peer's close code once closed (1005: none given, 1006: no close frame)."""
        raise NotImplementedError

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason once closed."""
        raise NotImplementedError

    @property
    def local_address(self) -> Any:
        """This end's address, as the socket (or the ASGI scope) gives it."""
        raise NotImplementedError

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket (or the ASGI scope) gives it."""
        raise NotImplementedError

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet sent to the peer."""
        raise NotImplementedError

    def __aiter__(self) -> ConnectionAPI:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Data]:
        """The next message; iteration ends when the connection closes normally.

        An abnormal closure raises :class:`~wskit.ConnectionClosedError`.
        (The receive loop's own coroutine: one coroutine per message, and one
        frame less than awaiting ``recv()`` in an ``async def``.)
        """
        return self._receive(True)

    async def recv_json(self) -> Any:
        """Receive a message and decode it as JSON."""
        return self.json_loads(await self.recv())

    async def send_json(self, obj: Any) -> None:
        """Encode ``obj`` as JSON and send it as a text message."""
        await self.send(self.json_dumps(obj))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def request_headers(self) -> Headers:
        """The headers of the handshake request."""
        assert self.request is not None
        return self.request.headers

    @property
    def response_headers(self) -> Headers:
        """The headers of the handshake response."""
        assert self.response is not None
        return self.response.headers
