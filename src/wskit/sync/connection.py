"""A blocking WebSocket connection for threads: :class:`Conn`.

Theory of operation
===================

:class:`Conn` drives the sans-I/O :class:`~wskit.protocol.connection.Connection`
over a blocking socket, with no event loop. Three kinds of thread touch it:

* the **reader**, a daemon thread of the connection's own, the only one that
  calls ``sock.recv()``. It feeds the core, queues the messages for
  :meth:`Conn.recv`, resolves the futures of :meth:`Conn.ping`, and writes
  what the core answers by itself (pongs, the echo of a close frame), so
  pings are answered and the closing handshake completes while the
  application is busy elsewhere or asleep;
* the **keepalive** thread, with ``ping_interval``: a ping every so often,
  and the connection fails with 1011 when the pong does not come within
  ``ping_timeout``;
* the **application's** threads, any number of them, calling ``send``,
  ``recv``, ``ping``, ``close``...

One lock, ``_lock``, guards the core and the receive queue; nobody holds it
while waiting for the network. Writing has a lock of its own,
``_write_lock``: whoever holds it takes the core's output and writes it
until none is left, so frames reach the socket in the order the core made
them. The reader never waits for that lock: when another thread is writing,
it leaves its pong in the core's output for that thread to write (the
writer looks again after letting go). So a peer that does not read can
block senders, never the reader, and two peers that both write a lot
cannot wait on each other forever. A third lock, ``_send_lock``, keeps
messages whole: a fragmented message holds the other senders back until its
last frame (control frames may still go between its frames, as RFC 6455
section 5.4 allows).

Only one thread may receive at a time: which of two waiting threads should
get the next message is undefined, so a second concurrent :meth:`Conn.recv`
raises :exc:`~wskit.exceptions.ConcurrencyError`.

The receive queue is bounded as the asyncio one is: at ``max_queue``
messages, or past ``max_size`` bytes (characters for text) waiting, the
reader stops (before queuing the next message, and before reading the
socket again) until :meth:`Conn.recv` takes messages out.
TCP flow control then slows the peer down; pings are not answered meanwhile
(nothing is read), so an application that never reads eventually loses
the connection to the peer's keepalive, as with asyncio.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    LocalProtocolError,
)
from ..protocol.connection import Connection
from ..protocol.events import CloseReceived, DataReceived, PingReceived, PongReceived
from ..protocol.frames import ping_payload
from ..protocol.http11 import Request, Response
from ..protocol.state import SENDING, Phase, State

__all__ = ["Conn", "Data", "PingHandler", "CloseHandler"]

logger = logging.getLogger("wskit")

Data = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""

PingHandler = Callable[[bytes], object]
"""``handler(payload)``, called in the reader thread for every ping or pong received."""

CloseHandler = Callable[[int, str], object]
"""``handler(code, reason)``, called in the reader thread when the peer's close frame arrives."""

# How much one sock.recv() may take.
_READ_SIZE = 65536


class Conn:
    """One WebSocket connection over a blocking socket, usable from several threads.

    Instances come from :func:`wskit.sync.connect`; you do not create them
    yourself.

    Reading: ``conn.recv(timeout=None)``, ``for message in conn``,
    ``conn.recv_json()``; one thread at a time.
    Writing: ``conn.send(message)`` (``str`` as text, bytes as binary, an
    iterable of them as one fragmented message), ``conn.send_json(obj)``;
    from any number of threads, each message whole.
    Control: ``conn.ping()`` (a future of the round trip, in seconds),
    ``conn.pong()``, ``conn.close(code, reason)``, ``with conn: ...``.
    ``on_ping``, ``on_pong`` and ``on_close`` are called in the reader thread.

    Args:
        sock: the connected socket (TLS already wrapped), blocking.
        protocol: the core, after the opening handshake.
        request: the handshake request.
        response: the handshake response.
        subprotocol: the negotiated subprotocol, or ``None``.
        leftover: bytes received after the handshake response (the first frames).
        max_queue: messages that may wait for :meth:`recv` before reading pauses.
        ping_interval: seconds between keepalive pings; ``None``: none.
        ping_timeout: seconds to wait for a keepalive pong before failing
            with 1011; ``None``: wait for ever.
        close_timeout: seconds :meth:`close` waits for the closing handshake
            (and for the server to close TCP) before dropping the connection.
        on_ping: called with the payload of every ping received (after the
            pong is queued, unless ``auto_pong`` is off: then it may answer
            with :meth:`pong`).
        on_pong: called with the payload of every pong received.
        on_close: called with ``(code, reason)`` of the peer's close frame.
        json_loads: what :meth:`recv_json` decodes with.
        json_dumps: what :meth:`send_json` encodes with.
        auto_pong: answer pings (the RFC requires it; turn it off only to
            answer them yourself in ``on_ping``).
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: Connection,
        *,
        request: Request,
        response: Response,
        subprotocol: str | None = None,
        leftover: bytes = b"",
        max_queue: int = 16,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        on_ping: PingHandler | None = None,
        on_pong: PingHandler | None = None,
        on_close: CloseHandler | None = None,
        json_loads: Callable[[str | bytes], Any] = json.loads,
        json_dumps: Callable[[Any], str] = json.dumps,
        auto_pong: bool = True,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.sock = sock
        #: The sans-I/O core; read it only under the connection's lock.
        self.protocol = protocol
        protocol.auto_pong = auto_pong
        #: The handshake request (sent by the client).
        self.request = request
        #: The handshake response: the ``101``.
        self.response = response
        #: The negotiated subprotocol, or ``None``.
        self.subprotocol = subprotocol
        self.max_size = protocol.max_size
        self.max_queue = max_queue
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.on_ping = on_ping
        self.on_pong = on_pong
        self.on_close = on_close
        self.json_loads = json_loads
        self.json_dumps = json_dumps

        self._lock = threading.Lock()
        # Signalled when a message is queued, when one is taken (room for the
        # reader) and when the connection ends.
        self._changed = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._messages: collections.deque[Data] = collections.deque()
        self._queued_size = 0
        self._partial: io.StringIO | io.BytesIO | None = None
        self._receiving = False
        # After our close frame, messages that still arrive are dropped rather
        # than queued: nobody waits for them and a full queue would stall the close.
        self._discarding = False
        self._ended = threading.Event()
        self._pings: dict[bytes, tuple[Future[float], float]] = {}

        self._reader = threading.Thread(
            target=self._read_loop, args=(leftover,), name="wskit-sync-reader", daemon=True
        )
        self._reader.start()
        self._keepalive: threading.Thread | None = None
        if ping_interval is not None:
            self._keepalive = threading.Thread(
                target=self._keepalive_loop, name="wskit-sync-keepalive", daemon=True
            )
            self._keepalive.start()

    # -- receiving -----------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Data:
        """Wait for the next message and return it: ``str`` for text, ``bytes`` for binary.

        Messages that arrived before the connection closed are returned
        first; then it raises.

        Raises:
            TimeoutError: no message within ``timeout`` seconds (the
                connection stays usable).
            ConnectionClosed: the connection is closed and no message is left.
            ConcurrencyError: another thread is receiving on this connection.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._receiving:
                raise ConcurrencyError(
                    "recv() called while another thread is receiving on this connection"
                )
            self._receiving = True
            try:
                while not self._messages:
                    if self._ended.is_set():
                        raise self.protocol.closed_exception()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"no message within {timeout} seconds")
                    self._changed.wait(remaining)
                message = self._messages.popleft()
                self._queued_size -= len(message)
                self._changed.notify_all()  # the reader may wait for room
                return message
            finally:
                self._receiving = False

    def __iter__(self) -> Iterator[Data]:
        """The messages, in order; iteration ends when the connection closes normally.

        An abnormal closure raises :class:`~wskit.ConnectionClosedError`.
        """
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def recv_json(self, timeout: float | None = None) -> Any:
        """Receive a message and decode it as JSON."""
        return self.json_loads(self.recv(timeout))

    # -- sending -------------------------------------------------------------------------

    def _check_open(self) -> None:
        """Raise the closed exception once nothing more may be sent; call under the lock."""
        phase = self.protocol.phase
        if phase is not Phase.OPEN and phase not in SENDING:
            raise self.protocol.closed_exception()

    def send(self, message: Data | bytearray | memoryview | Iterable[Data]) -> None:
        """Send a message: ``str`` as text, ``bytes``-like as binary; return once it is written.

        An iterable of ``str`` or of bytes is sent as one fragmented
        message, a frame per item (all of one type). Messages sent by
        several threads at once are each written whole.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            TypeError: ``message`` is of another type.
        """
        protocol = self.protocol
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            with self._send_lock:
                with self._lock:
                    self._check_open()
                    if isinstance(message, str):
                        protocol.send_text(message)
                    else:
                        protocol.send_binary(message)
                self._flush()
            return
        if not isinstance(message, Iterable):
            raise TypeError(f"cannot send {type(message).__name__}")
        with self._send_lock:
            text: bool | None = None
            for piece in message:
                is_text = isinstance(piece, str)
                if not is_text and not isinstance(piece, (bytes, bytearray, memoryview)):
                    self._abandon_fragments(text)
                    raise TypeError(f"cannot send a fragment of type {type(piece).__name__}")
                if text is not None and is_text != text:
                    self._abandon_fragments(text)
                    raise TypeError("the fragments of a message must be all str or all bytes")
                with self._lock:
                    self._check_open()
                    if text is None:
                        if is_text:
                            protocol.send_text(piece, fin=False)
                        else:
                            protocol.send_binary(piece, fin=False)  # type: ignore[arg-type]
                    else:
                        protocol.send_continuation(piece, fin=False)
                text = is_text
                self._flush()
            if text is not None:
                with self._lock:
                    self._check_open()
                    protocol.send_continuation(b"", fin=True)
                self._flush()

    def _abandon_fragments(self, text: bool | None) -> None:
        """A fragmented message cannot go on: end it with an empty final frame."""
        if text is None:
            return
        with self._lock:
            if self.protocol.phase is Phase.OPEN:
                self.protocol.send_continuation(b"", fin=True)
        self._flush()

    def send_json(self, obj: Any) -> None:
        """Encode ``obj`` as JSON and send it as a text message."""
        self.send(self.json_dumps(obj))

    def _flush(self, wait: bool = True) -> None:
        """Write the core's output, in order; ``wait=False``: only if nobody else is writing.

        Raises:
            ConnectionClosed: (with ``wait``) the socket failed; the
                connection is dropped.
        """
        while True:
            if not self._write_lock.acquire(blocking=wait):
                return  # the writer looks at the output again after letting go
            try:
                while True:
                    with self._lock:
                        output = self.protocol.data_to_send()
                    if not output:
                        break
                    try:
                        self.sock.sendall(output[0] if len(output) == 1 else b"".join(output))
                    except OSError:
                        self._shutdown()
                        if not wait:
                            return
                        with self._lock:
                            raise self.protocol.closed_exception() from None
            finally:
                self._write_lock.release()
            with self._lock:
                if not self.protocol.output:
                    return
            # Something was queued while we were letting go, by a thread that
            # found the lock taken: write it.
            wait = False

    # -- control frames ------------------------------------------------------------------

    def ping(self, data: str | bytes | None = None) -> Future[float]:
        """Send a ping; return a future of the round trip in seconds.

        ``conn.ping().result(timeout=10)`` waits for the pong. The future
        completes when the matching pong arrives (a pong also acknowledges
        every earlier ping, RFC 6455 section 5.5.3) and fails with
        :exc:`~wskit.ConnectionClosed` if the connection ends first.
        ``data`` defaults to four random bytes.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            LocalProtocolError: a ping with the same data is in flight, or
                ``data`` is over 125 bytes.
        """
        future: Future[float] = Future()
        with self._lock:
            self._check_open()
            payload = ping_payload(data, self._pings)
            self.protocol.send_ping(payload)  # first: it raises for a payload over 125 bytes
            self._pings[payload] = (future, time.monotonic())
        self._flush()
        return future

    def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong (a heartbeat), or answer a ping with ``auto_pong`` off."""
        with self._lock:
            self._check_open()
            self.protocol.send_pong(data.encode() if isinstance(data, str) else data)
        self._flush()

    # -- closing -------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and wait for the connection to end.

        Waits at most ``close_timeout`` seconds for the peer's close frame
        and for the server to close TCP, then drops the connection. Calling
        it again, or after the peer closed, is harmless. Messages received
        before are still returned by :meth:`recv`.

        Raises:
            LocalProtocolError: ``code`` may not be sent or ``reason`` is over
                123 bytes; nothing was sent and the connection stays open.
        """
        with self._lock:
            sending = self.protocol.phase in SENDING
            if sending:
                self.protocol.send_close(code, reason)
                self._discarding = True
                self._changed.notify_all()  # a reader waiting for room reads on
        if sending:
            try:
                self._flush()
            except ConnectionClosed:
                pass
        self.wait_closed(self.close_timeout)

    def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the TCP connection is closed; drop it after ``timeout`` seconds."""
        if threading.current_thread() is self._reader:
            return  # a handler in the reader thread: it ends once the handler returns
        if not self._ended.wait(timeout):
            self._shutdown()
            self._ended.wait()

    def _fail(self, code: int, reason: str) -> None:
        """Close with ``code`` without waiting for the peer's close frame."""
        with self._lock:
            sending = self.protocol.phase in SENDING
            if sending:
                try:
                    self.protocol.send_close(code, reason)
                except LocalProtocolError:
                    sending = False
        if sending:
            self._flush(wait=False)
        self._shutdown()

    def _shutdown(self) -> None:
        """Stop the socket both ways: the reader's ``recv()`` returns and it cleans up.

        (Closing the socket from this thread instead could let the reader
        read a reused file descriptor.)
        """
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more: the reader is ending anyway

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the reader thread ---------------------------------------------------------------

    def _read_loop(self, leftover: bytes) -> None:
        try:
            data = leftover
            while True:
                if data and not self._receive(data):
                    break
                try:
                    data = self.sock.recv(_READ_SIZE)
                except OSError:  # reset, shut down by close(), or the close timeout
                    data = b""
                if not data:
                    break
        except Exception:  # a bug: log it rather than leave readers waiting for ever
            logger.exception("wskit.sync: the reader thread failed")
        finally:
            self._end()

    def _receive(self, data: bytes) -> bool:
        """Feed ``data`` to the core and act on what it says; False once TCP should close."""
        protocol = self.protocol
        handlers: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        acknowledged: list[tuple[Future[float], float]] = []
        with self._lock:
            protocol.receive_data(data)
            while True:
                self._handle_events(protocol.events_received(), handlers, acknowledged)
                if not protocol.inflate_paused:
                    break
                # The core stopped after inflating a lot: go on once there is room.
                self._wait_for_room()
                protocol.receive_data(b"")
            close_now = protocol.close_expected()
            if protocol.state is State.CLOSED and not close_now:
                # Both close frames crossed: the server closes TCP next. Do
                # not wait for it for ever (nothing is sent any more, so the
                # timeout cannot cut a write short).
                self.sock.settimeout(self.close_timeout)
        self._flush(wait=False)
        now = time.monotonic()
        for future, sent in acknowledged:
            if not future.done():
                future.set_result(now - sent)
        for handler, args in handlers:
            try:
                handler(*args)
            except Exception:
                logger.exception("wskit.sync: error in %s", getattr(handler, "__name__", handler))
        if close_now:
            return False
        with self._lock:
            self._wait_for_room()
        return True

    def _wait_for_room(self) -> None:
        """Hold the reader while the queue is full (see the module's docstring); under the lock."""
        max_size = self.max_size
        while not self._discarding and (
            len(self._messages) >= self.max_queue
            or (max_size is not None and self._queued_size > max_size)
        ):
            self._changed.wait()

    def _handle_events(
        self,
        events: list[Any],
        handlers: list[tuple[Callable[..., object], tuple[object, ...]]],
        acknowledged: list[tuple[Future[float], float]],
    ) -> None:
        """Queue messages (waiting for room), note pongs and handlers to call; under the lock."""
        for event in events:
            if type(event) is DataReceived:
                self._assemble(event.data, event.fin)
            elif type(event) is PingReceived:
                if self.on_ping is not None:
                    handlers.append((self.on_ping, (event.data,)))
            elif type(event) is PongReceived:
                self._acknowledge_pings(event.data, acknowledged)
                if self.on_pong is not None:
                    handlers.append((self.on_pong, (event.data,)))
            elif type(event) is CloseReceived and self.on_close is not None:
                handlers.append((self.on_close, (event.code, event.reason)))

    def _assemble(self, data: Data, fin: bool) -> None:
        """Join the fragments of a message; queue it whole when its last one arrives."""
        partial = self._partial
        if partial is None:
            if fin:
                self._queue(data)
                return
            partial = self._partial = io.StringIO() if isinstance(data, str) else io.BytesIO()
        partial.write(data)  # type: ignore[arg-type]
        if fin:
            self._partial = None
            self._queue(partial.getvalue())

    def _queue(self, message: Data) -> None:
        # Each message waits for room, so the queue never holds more than
        # max_queue, even when one read brought many.
        self._wait_for_room()
        if self._discarding:
            return
        self._messages.append(message)
        self._queued_size += len(message)
        self._changed.notify_all()

    def _acknowledge_pings(
        self, data: bytes, acknowledged: list[tuple[Future[float], float]]
    ) -> None:
        if data not in self._pings:
            return
        # Dicts keep insertion order: every ping up to the matching one is done.
        for key in list(self._pings):
            acknowledged.append(self._pings.pop(key))
            if key == data:
                break

    def _end(self) -> None:
        """The TCP connection is over: close the socket, wake everybody, fail pending pings."""
        with self._lock:
            if self.protocol.state is not State.CLOSED:
                self.protocol.receive_eof()
            closed = self.protocol.closed_exception()
            pings = list(self._pings.values())
            self._pings.clear()
            self._ended.set()
            self._changed.notify_all()
        self._shutdown()
        self.sock.close()
        for future, _ in pings:
            if not future.done():
                future.set_exception(closed)

    # -- keepalive -----------------------------------------------------------------------

    def _keepalive_loop(self) -> None:
        interval = self.ping_interval
        assert interval is not None
        while not self._ended.wait(interval):
            try:
                waiter = self.ping()
            except (ConnectionClosed, LocalProtocolError):
                return
            if self.ping_timeout is None:
                continue
            try:
                waiter.result(self.ping_timeout)
            except TimeoutError:
                logger.info("wskit.sync: keepalive ping timed out; closing the connection")
                self._fail(1011, "keepalive ping timeout")
                return
            except ConnectionClosed:
                return

    # -- what we know about the connection -----------------------------------------------

    @property
    def state(self) -> State:
        """The protocol state: ``OPEN``, ``CLOSING`` or ``CLOSED``."""
        with self._lock:
            return self.protocol.state

    @property
    def closed(self) -> bool:
        """Whether the TCP connection has ended."""
        return self._ended.is_set()

    @property
    def close_code(self) -> int | None:
        """The close code received (1005: none given, 1006: no close frame); ``None`` while open."""
        with self._lock:
            if self.protocol.state is not State.CLOSED:
                return None
            return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` while open."""
        with self._lock:
            if self.protocol.state is not State.CLOSED:
                return None
            return self.protocol.close_reason

    @property
    def local_address(self) -> Any:
        """The local socket address (``(host, port)`` for TCP)."""
        return self._address(self.sock.getsockname)

    @property
    def remote_address(self) -> Any:
        """The peer's socket address (``(host, port)`` for TCP)."""
        return self._address(self.sock.getpeername)

    @staticmethod
    def _address(get: Callable[[], Any]) -> Any:
        try:
            return get()
        except OSError:  # closed
            return None
