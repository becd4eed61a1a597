"""The asyncio connection, :class:`Conn`: the protocol core wired to a transport.

:class:`Conn` is an :class:`asyncio.BufferedProtocol`. What arrives feeds the
sans-I/O :class:`~wskit.protocol.connection.Connection`, writes what it
answers (pongs, close frames) and hands complete messages to the reader.
A reader that is already waiting gets its message directly; otherwise the
message waits in a queue bounded in messages (``max_queue``) and in size
(``max_size``), and when the queue is full the transport stops reading, so a
peer cannot make wskit buffer without bound. Compressed data is bounded
before it reaches the queue: the core stops parsing once one read has
decompressed ``max_size`` (``Connection.inflate_paused``), and :class:`Conn`
goes on when the queue has room (``_parse_more``; a peer's EOF waits behind
the frames still to parse). Writes go
straight to the socket when the transport holds nothing (see
:mod:`~wskit.asyncio.direct_write`), else to the transport; ``send()`` waits
only while the transport has asked us to pause (``pause_writing``), which
bounds what a peer that does not read can make us buffer.

Reading also answers: pongs to pings, the echo of a close frame. So that a
peer that sends pings and never reads cannot grow our write buffer either,
the transport stops reading while its write buffer is over ``write_limit``
(the high-water mark) and starts again below the low mark
(``write_limit // 4``), whatever the buffer holds. One exception keeps two
wskit peers that both write a lot from waiting on each other forever: while
a sender of ours waits in ``send()`` for the buffer to drain, reading goes
on (what the reader may then queue is bounded as above), and pongs
are held back meanwhile, only the latest one kept (RFC 6455 section 5.5.3
allows answering only the most recent ping), to go out once the buffer has
drained.

What :class:`Conn` decides about the connection's life it reads from the
core's one state variable, ``protocol.phase`` (see
:mod:`wskit.protocol.state`): ``Phase.OPEN`` first, with ``is``, on the
per-message paths, and the phase sets (``SENDING``...) otherwise.

This module is one piece, past the size of the others (websockets' own
asyncio connection is 1,263 lines): :class:`Conn` is one object whose
receive path, send path, keepalive and closing share its slots and its
invariants (the queue and its backpressure, the writer's ``open`` flag,
the close timer). Cut into mixins in several files, one state would be
spread across them and the per-message path would pay attribute hops.
What is separable lives elsewhere: :class:`ConnectionAPI`, shared with
the ASGI adapter, in :mod:`wskit.asyncio.api`; the writer in
:mod:`wskit.asyncio.direct_write`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, cast

from ..exceptions import ConnectionClosed, LocalProtocolError
from ..limits import client_caused, public_error_message, report_failure
from ..protocol.connection import Connection, Side
from ..protocol.events import CloseReceived, DataReceived, PingReceived, PongReceived
from ..protocol.frames import Opcode, encode_close_payload, encode_frame, ping_payload
from ..protocol.http11 import Request, Response
from ..protocol.prepared import PreparedMessage
from ..protocol.state import CLOSE_RECEIVED, SENDING, Phase, State
from .api import ConnectionAPI, Data
from .direct_write import Writer, new_writer

# ConnectionAPI and Data live in .api and are re-exported here.
__all__ = ["Conn", "ConnectionAPI", "MessageWriter", "Data"]

logger = logging.getLogger("wskit")

PingHandler = Callable[[bytes], object]
MessageHandler = Callable[[Any], object]
CloseHandler = Callable[[int, str], object]


# The phase of nearly every call: the hot paths test it with ``is`` first,
# and look into the phase sets of wskit.protocol.state only when it is not.
_OPEN = Phase.OPEN
# The queue of a connection that has not received a message yet: the first
# one brings a deque (about 600 bytes with its first block), so connections
# that only listen, such as broadcast receivers, never pay for one.
_NO_QUEUE = cast("collections.deque[DataReceived]", ())
# The ids of connections (Conn.id): short, and unique within the process.
_conn_ids = itertools.count(1)
_RECEIVE_BUFFER_SIZE = 256 * 1024
# SO_LINGER on, timeout 0: closing the socket sends RST and drops what is unsent (abort()).
_LINGER_RESET = struct.pack("ii", 1, 0)
_receive_buffers = threading.local()


def _receive_buffer() -> memoryview:
    """The receive buffer shared by every connection of this thread's event loop.

    asyncio calls ``get_buffer``, reads into it and calls ``buffer_updated``
    in one go, and ``buffer_updated`` copies out what arrived, so one buffer
    serves every connection: reading costs no allocation of a 256 KiB
    ``bytes`` per ``recv()`` (what plain ``data_received`` costs), and idle
    connections hold no buffer of their own.
    """
    view: memoryview | None = getattr(_receive_buffers, "view", None)
    if view is None:
        view = _receive_buffers.view = memoryview(bytearray(_RECEIVE_BUFFER_SIZE))
    return view


def _close_text(close: tuple[int, str] | None) -> str:
    """A close frame for the log: ``1000``, ``1001 'going away'``, or that there was none."""
    if close is None:
        return "no close frame"
    code, reason = close
    return f"{code} {reason!r}" if reason else str(code)


def _drop_message(message: object) -> None:
    """The message callback once our close frame is out: nobody reads new messages."""


class Conn(ConnectionAPI, asyncio.BufferedProtocol):
    """One WebSocket connection, server or client side.

    Instances come from :func:`wskit.serve` (passed to your handler) and
    :func:`wskit.connect`; you do not create them yourself.

    Reading: ``await conn.recv()``, ``async for message in conn``,
    ``conn.recv_streaming()`` for the fragments of one message,
    ``await conn.recv_json()``.
    Writing: ``await conn.send(message)`` (``str`` is sent as text, bytes
    as binary, an iterable or async iterable of them as one fragmented
    message), ``conn.message_writer()``, ``await conn.send_json(obj)``.
    Control: ``await conn.ping()``, ``await conn.pong()``,
    ``await conn.close(code, reason)``, ``conn.abort()``, and the
    ``on_ping``, ``on_pong`` and ``on_close`` handlers. Handlers may decide,
    not only observe: with ``conn.auto_pong = False`` pings are not answered
    by wskit and ``on_ping`` answers (``await conn.pong(data)``) or not; an
    ``on_close`` that returns ``(code, reason)`` chooses the close frame
    that answers the peer's.
    The callback path: ``conn.on_message = callback`` hands every message
    to ``callback(message)`` as it arrives, in the event loop's own call,
    instead of queuing it for ``recv()``: no task wakes up per message, the
    fastest way to consume messages (see :attr:`on_message`).

    Many tasks may send at once: each message is written whole, and a
    fragmented message holds the others back until its last frame.
    """

    # Slots: thousands of idle connections each save a __dict__.
    __slots__ = (
        "__weakref__",
        "_close_timer",
        "_closed",
        "_closed_first",
        "_eof_pending",
        "_drain_waiters",
        "_held_pong",
        "_keepalive",
        "_loop",
        "_on_message",
        "_pings",
        "_auto_pong",
        "_rbuf",
        "_send_lock",
        "frame_writer",
        "id",
        "_write_paused",
        "bytes_received",
        "close_timeout",
        "json_dumps",
        "json_loads",
        "max_queue",
        "max_size",
        "on_close",
        "on_ping",
        "on_pong",
        "ping_interval",
        "ping_timeout",
        "protocol",
        "request",
        "response",
        "side",
        "subprotocol",
        "transport",
        "write_limit",
    )

    # Set by the handshake before a handler or connect()'s caller sees the
    # connection, so typed without None: user code reads conn.request.path
    # with no check. Unset before (reading raises AttributeError): the
    # request while it is read, the response until the handshake answers
    # (serve()'s process_request hook sees the request, not the response).
    #: The handshake request (sent by the client, received by the server).
    request: Request
    #: The handshake response: the ``101``, or the refusal.
    response: Response

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = 2**20,
        max_queue: int = 16,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        write_limit: int = 2**16,
        on_ping: PingHandler | None = None,
        on_pong: PingHandler | None = None,
        on_close: CloseHandler | None = None,
        json_loads: Callable[[str | bytes], Any] = json.loads,
        json_dumps: Callable[[Any], str] = json.dumps,
        auto_pong: bool = True,
    ) -> None:
        #: A short id, unique within this process, that names the connection in the log.
        self.id = next(_conn_ids)
        self.side = side
        self.max_size = max_size
        self.max_queue = max_queue
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.write_limit = write_limit
        #: Called with the payload of every ping received (after the pong is
        #: queued, unless :attr:`auto_pong` is off: then it may answer itself).
        self.on_ping = on_ping
        #: Called with the payload of every pong received.
        self.on_pong = on_pong
        #: Called with ``(code, reason)`` when the peer's close frame arrives.
        #: A plain function that returns ``(code, reason)`` chooses the close
        #: frame that answers it (the peer's own code and reason otherwise).
        self.on_close = on_close
        # Whether pings are answered for the application (see auto_pong).
        self._auto_pong = auto_pong
        self.json_loads = json_loads
        self.json_dumps = json_dumps
        #: The negotiated subprotocol, or ``None``.
        self.subprotocol: str | None = None
        self.protocol: Connection | None = None
        self.transport: asyncio.Transport | None = None
        #: The writer of this connection's frames (see :mod:`~wskit.asyncio.direct_write`),
        #: made when the WebSocket phase starts and ``None`` before. An internal
        #: interface: broadcast and the hub's rooms hand it to ``fanout()``, which
        #: reads it at its slot offset; applications send with ``send()``.
        self.frame_writer: Writer | None = None
        self._loop = asyncio.get_running_loop()
        self._rbuf = _receive_buffer()
        #: Bytes received after the opening handshake (frames, as on the wire).
        self.bytes_received = 0
        self._queue = _NO_QUEUE
        self._queue_size = 0
        self._on_message: MessageHandler | None = None
        # Lists made when first needed (a fragmented message, a full
        # buffer): most connections never need them.
        self._partial = None
        self._read_waiter: asyncio.Future[Any] | None = None
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        # The payload of the latest ping not answered yet, while pongs are held
        # back (see the module's docstring and pause_writing).
        self._held_pong: bytes | None = None
        self._send_lock: asyncio.Lock | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._keepalive: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        # Whether this side started the closing handshake (for the DEBUG trace).
        self._closed_first = False
        # The peer's EOF, held until the frames before it are parsed (eof_received).
        self._eof_pending = False

    # -- opening -----------------------------------------------------------

    def _open(
        self,
        protocol: Connection,
        transport: asyncio.Transport,
        leftover: bytes = b"",
    ) -> None:
        """Start the WebSocket phase once the handshake succeeded."""
        self.protocol = protocol
        self.transport = transport
        self.frame_writer = new_writer(transport, protocol)
        if not self._auto_pong:
            protocol.auto_pong = False
        transport.set_write_buffer_limits(high=self.write_limit)
        self._schedule_keepalive()
        if leftover:
            self.data_received(leftover)

    # -- asyncio.BufferedProtocol ----------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """Lend asyncio the shared receive buffer (see ``_receive_buffer()``).

        While a large binary frame arrives, lend it the frame's payload
        instead: the bytes go straight into the message, not through a copy.
        """
        protocol = self.protocol
        if protocol is not None and protocol.large_frame is not None:
            return protocol.large_frame.rest()
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        """Take what asyncio read into the buffer ``get_buffer()`` lent it."""
        protocol = self.protocol
        if protocol is None:
            self.data_received(self._rbuf[:nbytes].tobytes())  # the handshake
        elif protocol.large_frame is None:
            # The core parses the view in place and copies only what it keeps
            # (an incomplete frame): the buffer is lent again for the next read.
            self.data_received(self._rbuf[:nbytes])  # type: ignore[arg-type]
        else:
            self.bytes_received += nbytes
            if protocol.received_into(nbytes):
                self.data_received(b"")  # the message is whole: hand it over

    def _receive_handshake(self, data: bytes) -> None:
        """Read the opening handshake; the server and client sides define it."""
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        """Feed the protocol core and dispatch what it reports (asyncio calls this).

        Until the opening handshake is done there is no protocol core yet and
        the bytes are HTTP. (One method for both phases: event loops such as
        uvloop look ``data_received`` up once, so it cannot be swapped.)
        """
        protocol = self.protocol
        if protocol is None:
            self._receive_handshake(data)
            return
        self.bytes_received += len(data)
        protocol.receive_data(data)
        # The protocol core's event and output lists are read in place here,
        # the hot path, rather than through events_received()/data_to_send().
        events: Sequence[object] = protocol.events
        if events:
            protocol.events = []
            waiter = self._read_waiter
            if waiter is not None:
                # Wake the reader once for all this read brought (it then
                # drains the queue without waiting again).
                self._read_waiter = None
                first = events[0]
                if (
                    type(first) is DataReceived
                    and first.fin
                    and self._partial is None
                    and self._on_message is None
                    and protocol.phase is _OPEN
                    and not self._queue
                    and not waiter.done()
                ):
                    # A whole message: it goes to the reader as the waiter's
                    # result, skipping the queue and its accounting.
                    waiter.set_result(first.data)
                    # The core's list stays whole: wskit.metrics counts what it holds.
                    events = events[1:] if len(events) > 1 else ()
                elif not waiter.done():
                    waiter.set_result(None)
        if events:
            queue = self._queue
            if queue is _NO_QUEUE:
                queue = self._queue = collections.deque()
            size = self._queue_size
            for event in events:
                if type(event) is DataReceived:
                    on_message = self._on_message
                    if on_message is not None:
                        self._deliver(on_message, event)
                    else:
                        queue.append(event)
                        size += len(event.data)
                else:
                    self._handle_control(event)
            self._queue_size = size
            if not self._reading_paused and (
                len(queue) > self.max_queue or (self.max_size is not None and size > self.max_size)
            ):
                self._reading_paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
        if protocol.output:
            self._write(protocol.data_to_send())
        # OPEN is the one phase with nothing to do: anything else (closing,
        # closed, a failure held back) is a change to act on.
        if protocol.phase is not _OPEN:
            self._after_state_change(protocol)
        if protocol.inflate_paused and not self._reading_paused:
            # Room in the queue (or a callback took the messages): go on soon.
            self._loop.call_soon(self._parse_more)

    def _parse_more(self) -> None:
        """Parse what the protocol core left when it had decompressed enough for one read."""
        protocol = self.protocol
        if protocol is None:
            return
        if protocol.inflate_paused:
            self.data_received(b"")
        if self._eof_pending and not protocol.inflate_paused:
            self._eof_pending = False
            self.eof_received()
            if self.transport is not None:
                self.transport.close()

    def _sync_writer(self) -> None:
        """Tell the writer whether data frames may still go (fan-out reads it)."""
        protocol = self.protocol
        writer = self.frame_writer
        if writer is not None and protocol is not None:
            writer.open = protocol.phase in SENDING

    def _after_state_change(self, protocol: Connection) -> None:
        """The peer closed, failed the protocol, or answered our close."""
        self._sync_writer()
        if protocol.failure_pending:
            self._defer_failure()
        elif protocol.close_expected():
            self._close_transport()
        elif protocol.state is State.CLOSED and self._close_timer is None:
            # A client waits for the server to close TCP first, but not forever.
            self._close_timer = self._loop.call_later(self.close_timeout, self._close_transport)

    def _defer_failure(self) -> None:
        """The peer broke the protocol after messages the reader has not seen.

        Give the reader the chance to consume (and answer) them first: the
        failing close goes out when it asks for more, or after
        ``close_timeout`` at the latest.
        """
        if not self._queue:
            self._commit_failure()
        elif self._close_timer is None:
            self._close_timer = self._loop.call_later(self.close_timeout, self._commit_failure)

    def _commit_failure(self) -> None:
        protocol = self.protocol
        if protocol is None or not protocol.failure_pending:
            return
        protocol.commit_failure()
        self._sync_writer()
        self._write(protocol.data_to_send())
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._close_transport()

    def _handle_control(self, event: object) -> None:
        if type(event) is PingReceived:
            protocol = self.protocol
            if protocol is not None and not protocol.auto_pong and self._auto_pong:
                # Pongs are held back while the write buffer is full: answer the latest only.
                self._held_pong = event.data
            if self.on_ping is not None:
                self._call_handler(self.on_ping, event.data)
        elif type(event) is PongReceived:
            self._acknowledge_pings(event.data)
            if self.on_pong is not None:
                self._call_handler(self.on_pong, event.data)
        elif type(event) is CloseReceived and self.on_close is not None:
            self._on_close_received(self.on_close, event.code, event.reason)

    def _on_close_received(self, handler: CloseHandler, code: int, reason: str) -> None:
        """Call ``on_close``; a ``(code, reason)`` it returns replaces the echo of the peer's close.

        Called while the core's output of this read is still unwritten: when
        the peer closed first, the core's echo of its close frame is the last
        frame there (nothing is queued after a close frame), and is swapped
        for ours. When we closed first, ours is out already and the answer
        is ignored. An invalid code or reason is reported like a failing
        handler, and the echo goes out.
        """
        result = self._call_handler(handler, code, reason)
        protocol = self.protocol
        if result is None or protocol is None or self._closed_first or not protocol.output:
            return
        try:
            reply_code, reply_reason = cast("tuple[int, str]", result)
            payload = encode_close_payload(reply_code, reply_reason)
        except Exception as exc:
            report_failure(logger, exc, f"the {getattr(handler, '__name__', 'on_close')} handler")
            return
        protocol.output[-1] = encode_frame(Opcode.CLOSE, payload, mask=protocol.masking)
        protocol.close_sent = (reply_code, reply_reason)

    @property
    def auto_pong(self) -> bool:
        """Whether wskit answers every ping with a pong (``True``, as RFC 6455 requires).

        Set it to ``False`` to decide in ``on_ping``: answer with ``await
        conn.pong(data)`` (the same payload, to satisfy the peer's ping), or
        not at all. Only for peers you control: a peer whose pings go
        unanswered may close the connection.
        """
        return self._auto_pong

    @auto_pong.setter
    def auto_pong(self, value: bool) -> None:
        self._auto_pong = value
        if not value:
            self._held_pong = None
        protocol = self.protocol
        # While the write buffer is full pongs are held back (pause_writing):
        # resume_writing turns answering on again, if it is still wanted.
        if protocol is not None and not self._write_paused:
            protocol.auto_pong = value

    @property
    def on_message(self) -> MessageHandler | None:
        """Called with every message (``str`` or ``bytes``) as it arrives; ``None``: off.

        While set, messages go to the callback instead of the queue that
        ``recv()`` reads, in the event loop's own call: no task wakes up per
        message, the fastest way to consume them (picows' listener style).
        Setting it hands over the messages already queued first, in order.
        Fragmented messages arrive whole. The callback should not block;
        it may reply with :meth:`send_nowait` or :meth:`write_prepared`, or
        start a task. An exception it raises closes the connection with
        1011, as one from a connection handler does, and turns the callback
        off. While it is set, ``recv()`` only returns when the connection
        closes (raising ``ConnectionClosed``).
        """
        return self._on_message

    @on_message.setter
    def on_message(self, callback: MessageHandler | None) -> None:
        self._on_message = callback
        while callback is not None and self._queue and self._on_message is callback:
            self._deliver(callback, self._pop())

    def _deliver(self, callback: MessageHandler, event: DataReceived) -> None:
        """Give one received frame's data to the message callback (whole messages only)."""
        data, fin = event
        if not fin or self._partial is not None:
            message = self._assemble(data, fin)
            if message is None:
                return
            data = message
        try:
            callback(data)
        except Exception as exc:
            error_id = report_failure(logger, exc, "the on_message callback")
            self._on_message = None  # what follows waits in the queue, for recv()
            self._fail(1011, public_error_message(exc, error_id, debug=False))

    def eof_received(self) -> bool | None:
        """The peer half-closed the stream; the connection is over."""
        protocol = self.protocol
        if protocol is not None:
            if protocol.inflate_paused:
                # Frames that came before the EOF still wait to be parsed
                # (see Connection.inflate_paused): the EOF goes after them,
                # and _parse_more closes the transport then.
                self._eof_pending = True
                return True
            protocol.receive_eof()
            self._sync_writer()
        # Returning a false value lets asyncio close the transport.
        return None

    def pause_writing(self) -> None:
        """The write buffer is over ``write_limit``: make senders wait and stop reading.

        Until it drains, the peer's frames are not read (so they cannot make
        us answer more), unless a sender waits for the drain; pongs are held
        back meanwhile, the latest one kept (see the module's docstring).
        """
        self._write_paused = True
        protocol = self.protocol
        if protocol is not None:
            protocol.auto_pong = False
        self._update_reading()

    def resume_writing(self) -> None:
        """The write buffer drained below the low mark: answer the held ping, send, read again."""
        self._write_paused = False
        protocol = self.protocol
        if protocol is not None and not protocol.auto_pong and self._auto_pong:
            protocol.auto_pong = True
            pong, self._held_pong = self._held_pong, None
            if pong is not None and protocol.phase in SENDING:
                protocol.send_pong(pong)
                self._write(protocol.data_to_send())
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume the transport's reading as the two bounds say.

        Reading pauses while the receive queue is over ``max_queue``
        (``_reading_paused``), and while the write buffer is over
        ``write_limit`` with no sender waiting for it to drain.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._reading_paused or (self._write_paused and not self._drain_waiters):
            transport.pause_reading()
        else:
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone: wake everyone who waits on it."""
        if self.frame_writer is not None:
            # The descriptor may soon belong to another socket.
            self.frame_writer.detach()
        if self.protocol is not None and self.protocol.state is not State.CLOSED:
            self.protocol.receive_eof()
        self._sync_writer()
        for handle in (self._keepalive, self._close_timer):
            if handle is not None:
                handle.cancel()
        self._keepalive = self._close_timer = None
        if not self._closed.done():
            self._closed.set_result(None)
        closed = self._closed_exception()
        for future, _ in self._pings.values():
            if not future.done():
                future.set_exception(closed)
        self._pings.clear()
        self._wake_reader()
        self.resume_writing()

    # -- reading -------------------------------------------------------------

    def _closed_exception(self) -> ConnectionClosed:
        assert self.protocol is not None
        return self.protocol.closed_exception()

    def _wait_for_data(self) -> asyncio.Future[Any]:
        """A future that completes when data arrives or the connection ends.

        A failure held back (``defer_failure``) is committed once the reader
        has taken every message that came before it.
        """
        protocol = self.protocol
        if protocol is not None and protocol.phase is _OPEN and self._read_waiter is None:
            # The common case, once per wait: open, and no other (or cancelled) reader.
            waiter = self._read_waiter = self._loop.create_future()
            return waiter
        if protocol is not None and protocol.phase is not _OPEN and protocol.failure_pending:
            self._commit_failure()
        if self._closed.done():
            raise self._closed_exception()
        return self._new_read_waiter()

    def _maybe_resume_reading(self) -> None:
        max_size = self.max_size
        if (
            len(self._queue) <= self.max_queue // 4
            and (max_size is None or self._queue_size <= max_size // 4)
            and self.transport
        ):
            self._resume_reading()

    def _resume_reading(self) -> None:
        """Read again (the queue has room), and parse what the core left for want of room."""
        self._reading_paused = False
        self._update_reading()
        protocol = self.protocol
        if protocol is not None and protocol.inflate_paused:
            self._loop.call_soon(self._parse_more)

    # -- writing -------------------------------------------------------------

    def _write(self, output: list[bytes]) -> None:
        writer = self.frame_writer
        if writer is None:
            return
        if len(output) == 1:
            writer.write(output[0])
        elif any(len(piece) >= 65536 for piece in output):
            # Header and payload in one sendmsg(), the payload not copied.
            writer.write_parts(output)
        else:
            writer.write(b"".join(output))

    def _check_open(self) -> Connection:
        protocol = self.protocol
        assert protocol is not None
        phase = protocol.phase
        if phase is not _OPEN and phase not in SENDING:
            raise self._closed_exception()
        return protocol

    async def _drain(self) -> None:
        if self._closed.done():
            raise self._closed_exception()
        waiter = self._loop.create_future()
        waiters = self._drain_waiters
        if waiters is None:
            self._drain_waiters = [waiter]
            # A sender waits now: read on, so that two peers that both write
            # cannot wait on each other (see the module's docstring).
            self._update_reading()
        else:
            waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done() or waiter.cancelled():
                self._forget_drain_waiter(waiter)
        if self._closed.done():
            raise self._closed_exception()

    def _forget_drain_waiter(self, waiter: asyncio.Future[None]) -> None:
        """A sender stopped waiting (cancelled): the last one gone, reading may pause again."""
        waiters = self._drain_waiters
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                self._drain_waiters = None
                self._update_reading()

    async def send(self, message: Data | Iterable[Data] | AsyncIterable[Data]) -> None:
        """Send a message: ``str`` as text, ``bytes``-like as binary.

        An iterable or async iterable of ``str`` or bytes is sent as one
        fragmented message, a frame per item.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            TypeError: ``message`` is of another type.
        """
        if type(message) is str:
            # The hot path: a text message with nobody streaming fragments,
            # in the OPEN phase (in any other the general path below decides).
            protocol = self.protocol
            lock = self._send_lock
            if (
                protocol is not None
                and protocol.phase is _OPEN
                and (lock is None or not lock.locked())
            ):
                protocol.send_text(message)
                self._write(protocol.data_to_send())
                if self._write_paused:
                    await self._drain()
                return
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            lock = self._send_lock
            if lock is not None and lock.locked():
                async with lock:
                    self._send_whole(message)
            else:
                self._send_whole(message)
            if self._write_paused:
                await self._drain()
            return
        if isinstance(message, AsyncIterable):
            async with self.message_writer(binary=None) as writer:
                async for piece in message:
                    await writer.write(piece)
            return
        if isinstance(message, Iterable):
            async with self.message_writer(binary=None) as writer:
                for piece in message:
                    await writer.write(piece)
            return
        raise TypeError(f"cannot send {type(message).__name__}")

    def _send_whole(self, message: Data | bytearray | memoryview) -> None:
        protocol = self._check_open()
        if isinstance(message, str):
            protocol.send_text(message)
        else:
            protocol.send_binary(message)
        self._write(protocol.data_to_send())

    def send_nowait(self, message: Data) -> None:
        """Write a message now without waiting for the buffer to drain.

        For fire-and-forget fan-out; the transport's buffer may grow while
        the peer does not read, so prefer :meth:`send` in a loop.
        """
        self._send_whole(message)

    def write_prepared(self, message: PreparedMessage, max_buffer: int | None = None) -> bool:
        """Write a prepared message now if the connection can take it; never wait.

        Returns ``False``, writing nothing, when the connection is closing,
        is in the middle of sending a fragmented message, or (with
        ``max_buffer``) holds more than ``max_buffer`` unsent bytes: a peer
        that stopped reading. This is the fan-out primitive of
        :func:`wskit.broadcast` and of the hub.
        """
        protocol = self.protocol
        # This runs once per receiver per broadcast, so it checks only what it
        # must; write_through() refuses a closing transport itself.
        if protocol is None:
            return False
        phase = protocol.phase
        if phase is not _OPEN and phase not in SENDING:
            return False
        transport = self.transport
        # Below the high-water mark asyncio has not paused us, so the buffer
        # is under write_limit: ask its size only when it may be over.
        if (
            max_buffer is not None
            and (self._write_paused or max_buffer < self.write_limit)
            and transport.get_write_buffer_size() > max_buffer  # type: ignore[union-attr]
        ):
            return False
        lock = self._send_lock
        if lock is not None and lock.locked():
            return False
        frame = message.plain
        if frame is None or protocol.deflate is not None or protocol.masking:
            frame = message.frame_for(protocol)
        return self.frame_writer.write(frame)  # type: ignore[union-attr]

    async def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared once for many connections (see :func:`wskit.broadcast`)."""
        protocol = self._check_open()
        protocol.send_prepared(message)
        self._write(protocol.data_to_send())
        if self._write_paused:
            await self._drain()

    def message_writer(self, binary: bool | None = False) -> MessageWriter:
        """Return an async context manager that sends one fragmented message.

        ``await writer.write(piece)`` sends a frame per call; leaving the
        block sends the final frame. ``binary=None`` takes the type from
        the first piece. Other senders wait until the message is complete.
        """
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        return MessageWriter(self, self._send_lock, binary)

    # -- control frames ------------------------------------------------------

    def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        """Send a ping; return a future for the round-trip latency in seconds.

        The future completes when the matching pong arrives (a pong also
        acknowledges every earlier ping, RFC 6455 section 5.5.3). ``data``
        defaults to four random bytes.
        """
        protocol = self._check_open()
        payload = ping_payload(data, self._pings)
        future: asyncio.Future[float] = self._loop.create_future()
        protocol.send_ping(payload)  # first: it raises for a payload over 125 bytes
        self._pings[payload] = (future, time.monotonic())
        self._write(protocol.data_to_send())
        return future

    async def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat)."""
        protocol = self._check_open()
        protocol.send_pong(data.encode() if isinstance(data, str) else data)
        self._write(protocol.data_to_send())

    def _acknowledge_pings(self, data: bytes) -> None:
        if data not in self._pings:
            return
        now = time.monotonic()
        # Dicts keep insertion order: every ping up to the matching one is done.
        for key in list(self._pings):
            future, sent = self._pings.pop(key)
            if not future.done():
                future.set_result(now - sent)
            if key == data:
                break

    def _schedule_keepalive(self) -> None:
        if self.ping_interval is not None and not self._closed.done():
            self._keepalive = self._loop.call_later(self.ping_interval, self._send_keepalive)

    def _send_keepalive(self) -> None:
        self._keepalive = None
        protocol = self.protocol
        if protocol is None or protocol.phase not in SENDING:
            return
        try:
            waiter = self.ping()
        except ConnectionClosed:
            return
        # Nobody awaits a keepalive ping: retrieve the ConnectionClosed it fails
        # with when the connection is lost, or asyncio logs "Future exception
        # was never retrieved" for every ping in flight.
        waiter.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        if self.ping_timeout is not None:
            timer = self._loop.call_later(self.ping_timeout, self._keepalive_timeout, waiter)
            waiter.add_done_callback(lambda _: timer.cancel())
        self._schedule_keepalive()

    def _keepalive_timeout(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.done():
            client_caused.log(
                logger,
                logging.INFO,
                ("keepalive-timeout",),
                "keepalive ping timed out; closing the connection",
            )
            self._fail(1011, "keepalive ping timeout")

    # -- closing -------------------------------------------------------------

    def _fail(self, code: int, reason: str) -> None:
        """Close with ``code`` without waiting for the peer's close frame."""
        protocol = self.protocol
        if protocol is not None and protocol.phase in SENDING:
            self._closed_first = protocol.phase is _OPEN
            try:
                protocol.send_close(code, reason)
            except LocalProtocolError:
                pass
            self._sync_writer()
            self._write(protocol.data_to_send())
        self._close_transport()

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.frame_writer is not None:
            self.frame_writer.detach()
        transport.close()
        # A peer that never reads could keep the close pending forever.
        self._close_timer = self._loop.call_later(self.close_timeout, transport.abort)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and wait for the connection to end.

        Waits at most ``close_timeout`` seconds for the peer's close frame
        (and, on the client, for the server to close TCP), then drops the
        connection. Calling it again, or after the peer closed, is harmless.

        Raises:
            LocalProtocolError: ``code`` may not be sent or ``reason`` is over
                123 bytes; nothing was sent and the connection stays open.
        """
        protocol = self.protocol
        if protocol is None:
            return
        if protocol.phase in SENDING:
            self._closed_first = protocol.phase is _OPEN
            protocol.send_close(code, reason)
            self._flush_close_frame()
        await self.wait_closed(self.close_timeout)

    def _flush_close_frame(self) -> bool:
        """Write the close frame the core just made, then end or read on.

        When the peer's close frame came first, the handshake is over and the
        transport closes; else reading goes on to the peer's answer. Returns
        whether that answer is still to come.
        """
        protocol = self.protocol
        assert protocol is not None
        self._sync_writer()
        self._write(protocol.data_to_send())
        if protocol.close_expected():
            self._close_transport()
            return False
        self._read_until_close()
        return True

    def _read_until_close(self) -> None:
        """Read on to the peer's close frame, dropping the messages that come before it.

        After our close frame nobody waits for new messages, and a reader
        that stopped (a full queue, a hub client over ``max_inflight``) would
        otherwise leave the peer's close frame unread until ``close_timeout``.
        The messages already queued stay for ``recv()``.
        """
        self._on_message = _drop_message
        self._resume_reading()

    def abort(self) -> None:
        """Drop the connection at once: no close frame, no closing handshake.

        What is still buffered for the peer is discarded and the TCP
        connection is reset (``SO_LINGER`` 0: the peer reads
        ``ECONNRESET``), like gorilla's ``UnderlyingConn().Close()``. Readers
        and writers then get :class:`~wskit.ConnectionClosedError` with code
        1006. For a peer that must go now (abuse, a failed authorization
        midway); :meth:`close` is the polite way.
        """
        transport = self.transport
        if transport is None or self._closed.done():
            return
        if self.frame_writer is not None:
            self.frame_writer.detach()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:  # the socket is gone already
                pass
        transport.abort()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the TCP connection is closed; abort it after ``timeout``."""
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()
            await self._closed

    def _trace_close(self, log: logging.Logger, exc: Exception | None) -> None:
        """The DEBUG records of a connection's end: its close frames, then TCP."""
        protocol = self.protocol
        assert protocol is not None
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None or received is not None:
            server_first = self._closed_first == (self.side is Side.SERVER)
            log.debug(
                "conn %d: closed by the %s: sent %s, received %s",
                self.id,
                "server" if server_first else "client",
                _close_text(sent),
                _close_text(received),
            )
        log.debug("conn %d: connection lost (%s)", self.id, exc or "TCP closed")

    # -- what we know about the connection --------------------------------------

    @property
    def state(self) -> State:
        """The protocol state: ``OPEN``, ``CLOSING`` or ``CLOSED``."""
        return self.protocol.state if self.protocol is not None else State.OPEN

    @property
    def closed(self) -> bool:
        """Whether the TCP connection has ended."""
        return self._closed.done()

    @property
    def close_code(self) -> int | None:
        """The close code received (1005: none given, 1006: no close frame); ``None`` while open."""
        protocol = self.protocol
        if protocol is None or (not self._closed.done() and protocol.phase not in CLOSE_RECEIVED):
            return None
        return protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` while open."""
        code = self.close_code
        return None if code is None else self.protocol.close_reason  # type: ignore[union-attr]

    @property
    def local_address(self) -> Any:
        """The local socket address (``(host, port)`` for TCP)."""
        return self.transport.get_extra_info("sockname") if self.transport else None

    @property
    def remote_address(self) -> Any:
        """The peer's socket address (``(host, port)`` for TCP)."""
        return self.transport.get_extra_info("peername") if self.transport else None

    @property
    def compression_enabled(self) -> bool:
        """Whether outgoing messages are compressed, when the peer agreed to it."""
        return self.protocol is not None and self.protocol.compression_enabled

    @compression_enabled.setter
    def compression_enabled(self, value: bool) -> None:
        assert self.protocol is not None
        self.protocol.compression_enabled = value

    @property
    def compression(self) -> bool:
        """Whether permessage-deflate was negotiated."""
        return self.protocol is not None and self.protocol.deflate is not None

    @property
    def write_buffer_size(self) -> int:
        """Bytes waiting in the transport's write buffer."""
        return self.transport.get_write_buffer_size() if self.transport else 0


class MessageWriter:
    """Sends one fragmented message, a frame per :meth:`write` (gorilla's ``NextWriter``)."""

    def __init__(self, conn: Conn, lock: asyncio.Lock, binary: bool | None) -> None:
        self._conn = conn
        self._lock = lock
        self._binary = binary
        self._started = False
        self._pending: Data | None = None

    async def __aenter__(self) -> MessageWriter:
        await self._lock.acquire()
        self._busy(True)
        return self

    def _busy(self, busy: bool) -> None:
        # Fan-out skips a connection in the middle of a fragmented message.
        writer = self._conn.frame_writer
        if writer is not None:
            writer.busy = busy

    async def write(self, data: Data) -> None:
        """Queue ``data`` as the next fragment.

        The frame goes out when the next piece or the end of the message is
        known, so that the last piece can carry the FIN bit.
        """
        if self._binary is None:
            self._binary = not isinstance(data, str)
        if self._pending is not None:
            await self._flush(self._pending, fin=False)
        self._pending = data

    async def _flush(self, data: Data, fin: bool) -> None:
        conn = self._conn
        protocol = conn._check_open()
        if not self._started:
            self._started = True
            payload = data.encode() if isinstance(data, str) else data
            if self._binary:
                protocol.send_binary(payload, fin)
            else:
                protocol.send_text(payload, fin)
        else:
            protocol.send_continuation(data, fin)
        conn._write(protocol.data_to_send())
        if conn._write_paused:
            await conn._drain()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self._flush(self._pending if self._pending is not None else b"", fin=True)
            elif self._started:
                # A half-sent message cannot be taken back: fail the connection.
                self._conn._fail(1011, "message writer failed")
        finally:
            self._busy(False)
            self._lock.release()
