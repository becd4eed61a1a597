"""Two asyncio transports connected to each other in memory: a socket pair without sockets.

:func:`transport_pair` wires a client protocol to a server protocol as a TCP
connection would, so that the test client runs wskit's real
:class:`~wskit.asyncio.connection.Conn` on both sides, and with it the whole
protocol: handshake, framing, masking, compression, closing handshake.

Each :class:`MemoryTransport` behaves as asyncio's socket transport does
where wskit depends on it:

* ``write()`` queues the bytes and returns; they reach the peer's protocol
  on a later turn of the event loop, in order, at most :data:`CHUNK_SIZE`
  bytes per turn (as a socket delivers one ``recv()`` per readiness event).
* Flow control: while the peer has paused reading (``pause_reading()``),
  nothing is delivered and the bytes wait in the writer's buffer, which
  ``get_write_buffer_size()`` counts; past the high-water mark the writing
  protocol's ``pause_writing()`` is called, and ``resume_writing()`` once
  the buffer is back under the low mark. There is no kernel buffer in
  between: backpressure reaches the writer at once.
* ``close()`` sends what is buffered, then the peer reads EOF
  (``eof_received()``; a false return closes its side) and this side's
  protocol gets ``connection_lost(None)``. ``write_eof()`` half-closes.
  ``abort()`` drops the buffer: this side's protocol gets
  ``connection_lost(None)``, the peer's ``connection_lost()`` with a
  :exc:`ConnectionResetError`, as after a TCP reset.

There is no socket: ``get_extra_info("socket")`` is ``None``, so wskit's
direct writes (:mod:`wskit.asyncio.direct_write`) go through ``write()``,
and the addresses (``peername``, ``sockname``) are made up.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import cast

__all__ = ["CHUNK_SIZE", "MemoryTransport", "transport_pair"]

#: Bytes delivered to the peer's protocol per turn of the event loop at most.
CHUNK_SIZE = 2**16

# The default marks of asyncio's transports.
_HIGH_WATER = 2**16

# Made-up client ports, so that each in-memory connection has its own address.
_ports = itertools.count(40000)


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory connection; see the module's docstring.

    Made by :func:`transport_pair`, which also calls each protocol's
    ``connection_made()``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: asyncio.BaseProtocol,
        sockname: tuple[str, int],
        peername: tuple[str, int],
    ) -> None:
        super().__init__({"sockname": sockname, "peername": peername})
        self._loop = loop
        self._protocol = protocol
        self._peer: MemoryTransport | None = None
        self._buffer: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        self._protocol_paused = False
        self._reading_paused = False
        self._closing = False  # close() or abort() called, or the peer reset us
        self._eof_queued = False  # write_eof() or close(): EOF follows the buffer
        self._eof_sent = False
        self._lost = False  # connection_lost() is scheduled
        self._flush_scheduled = False

    # -- asyncio.BaseTransport -------------------------------------------------------

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol this transport delivers to."""
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Deliver to ``protocol`` from now on."""
        self._protocol = protocol

    def is_closing(self) -> bool:
        """Whether ``close()`` or ``abort()`` was called, or the connection is lost."""
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then EOF; then the protocol's ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        self._eof_queued = True
        self._schedule_flush()

    # -- asyncio.ReadTransport -------------------------------------------------------

    def is_reading(self) -> bool:
        """Whether the peer's bytes are delivered to this transport's protocol."""
        return not self._reading_paused and not self._closing

    def pause_reading(self) -> None:
        """Stop delivering the peer's bytes; they wait in the peer's write buffer."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Deliver the peer's bytes again."""
        if self._reading_paused:
            self._reading_paused = False
            if self._peer is not None:
                self._peer._schedule_flush()

    # -- asyncio.WriteTransport ------------------------------------------------------

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the marks of flow control, as asyncio's transports do."""
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._check_high_water()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``: the marks of flow control."""
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet delivered to the peer."""
        return self._buffered

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the peer (dropped once closing, as asyncio drops it)."""
        if self._closing or self._eof_queued or not data:
            return
        chunk = bytes(data)  # the caller may reuse its buffer
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        self._schedule_flush()
        self._check_high_water()

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF after what is buffered."""
        if not self._closing and not self._eof_queued:
            self._eof_queued = True
            self._schedule_flush()

    def can_write_eof(self) -> bool:
        """Always: in-memory connections half-close."""
        return True

    def abort(self) -> None:
        """Drop the buffer and end the connection now (the peer sees a reset)."""
        self._closing = True
        self._drop_buffer()
        peer = self._peer
        if peer is not None and not peer._lost:
            peer._closing = True
            peer._drop_buffer()
            peer._lose(ConnectionResetError("connection reset by peer (in memory)"))
        self._lose(None)

    # -- delivery ----------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and not self._lost:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Deliver one chunk to the peer, or the EOF after the last one."""
        self._flush_scheduled = False
        peer = self._peer
        if self._lost or peer is None:
            return
        if peer._lost:
            # Written to a connection that is gone: nobody will read it.
            self._drop_buffer()
        elif peer._reading_paused or (peer._closing and self._buffer):
            return  # resume_reading() flushes again; a closing peer reads no more
        elif self._buffer:
            self._deliver(peer)
        elif self._eof_queued and not self._eof_sent:
            self._eof_sent = True
            if not peer._closing:
                keep_open = peer._protocol.eof_received()  # type: ignore[attr-defined]
                if not keep_open:
                    peer.close()
        if self._buffer:
            self._schedule_flush()
        elif self._closing and (self._eof_sent or peer._lost):
            self._lose(None)
        elif self._eof_queued and not self._eof_sent:
            self._schedule_flush()

    def _deliver(self, peer: MemoryTransport) -> None:
        """Hand the next bytes of the buffer to the peer's protocol."""
        protocol = peer._protocol
        if isinstance(protocol, asyncio.BufferedProtocol):
            target = memoryview(protocol.get_buffer(CHUNK_SIZE))
            head = self._take(min(CHUNK_SIZE, len(target)))
            target[: len(head)] = head
            protocol.buffer_updated(len(head))
        else:
            cast(asyncio.Protocol, protocol).data_received(self._take(CHUNK_SIZE))

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes from the front of the buffer (at least one, from one write)."""
        head = self._buffer.popleft()
        if len(head) > size:
            self._buffer.appendleft(head[size:])
            head = head[:size]
        self._buffered -= len(head)
        self._check_low_water()
        return head

    def _drop_buffer(self) -> None:
        self._buffer.clear()
        self._buffered = 0
        self._check_low_water()

    def _check_high_water(self) -> None:
        if not self._protocol_paused and self._buffered > self._high and not self._lost:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def _check_low_water(self) -> None:
        if self._protocol_paused and self._buffered <= self._low and not self._lost:
            self._protocol_paused = False
            self._protocol.resume_writing()

    def _lose(self, exc: Exception | None) -> None:
        """Schedule ``connection_lost(exc)``, once."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def __repr__(self) -> str:
        ends = f"{self.get_extra_info('sockname')} -> {self.get_extra_info('peername')}"
        return f"<MemoryTransport {ends}>"


def transport_pair(
    client: asyncio.BaseProtocol,
    server: asyncio.BaseProtocol,
    *,
    client_host: str = "127.0.0.1",
    server_address: tuple[str, int] = ("127.0.0.1", 80),
) -> tuple[MemoryTransport, MemoryTransport]:
    """Connect ``client`` to ``server`` in memory; return the client's and the server's transport.

    The server's ``connection_made()`` is called first (an accepted
    connection), then the client's. Each client gets a port of its own.
    """
    loop = asyncio.get_running_loop()
    client_address = (client_host, next(_ports))
    client_end = MemoryTransport(loop, client, client_address, server_address)
    server_end = MemoryTransport(loop, server, server_address, client_address)
    client_end._peer, server_end._peer = server_end, client_end
    server.connection_made(server_end)
    client.connection_made(client_end)
    return client_end, server_end
