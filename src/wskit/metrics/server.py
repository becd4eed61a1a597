"""Counting a server's connections: :class:`Metrics`, and the connection class that counts.

Theory of operation: metrics are off by default and then cost nothing, not
even a check: :func:`~wskit.asyncio.serve`'s connections are plain
:class:`~wskit.asyncio.ServerConn`. :meth:`Metrics.watch` makes the server
accept :class:`MeteredServerConn` instead (``Server.conn_class``), a
subclass whose overrides count into ints of the connection itself, an
object the per-message path touches anyway: messages and bytes in and out.
The bytes received are the count every connection already keeps
(``Conn.bytes_received``). When a connection ends, its counts are added to
the server's totals, with its close code; :meth:`Metrics.snapshot` adds
the open connections' counts to those totals, so the work of summing is
paid per scrape, not per message. What the server counts anyway
(:attr:`Server.counters <wskit.asyncio.Server.counters>`: the limits'
refusals, handshake timeouts, handler errors) is read as it is.

Collectors (:meth:`Metrics.add_collector`) fill the rest of a snapshot: the
hub's (:func:`wskit.hub.metrics.watch_hub`) reads its clients, rooms,
drops, handler durations and backplane. They run at collection time only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import ClassVar, cast

from ..asyncio.admission import Refusal
from ..asyncio.connection import Data
from ..asyncio.server import Server, ServerConn
from ..protocol.connection import Connection
from ..protocol.events import DataReceived
from ..protocol.http11 import Response
from ..protocol.prepared import PreparedMessage
from .snapshot import MetricsSnapshot

__all__ = ["MeteredServerConn", "Metrics"]

#: The ServerCounters fields of the limits' refusals, and the limit each names.
_LIMIT_REFUSALS = (
    ("refused_max_connections", "max_connections"),
    ("refused_max_connections_per_ip", "max_connections_per_ip"),
    ("refused_handshake_rate", "handshake_rate"),
)


class MeteredServerConn(ServerConn):
    """A :class:`~wskit.asyncio.ServerConn` that counts for a :class:`Metrics`.

    Made by :meth:`Metrics.watch` (a subclass per :class:`Metrics`, which it
    names in its ``metrics`` class attribute); not to be made by hand.
    """

    __slots__ = ("messages_received", "messages_sent", "bytes_sent")

    #: The metrics this connection counts for.
    metrics: ClassVar[Metrics]

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        #: Whole messages received.
        self.messages_received = 0
        #: Messages sent (``send``, ``send_nowait``, ``send_prepared``, ``write_prepared``).
        self.messages_sent = 0
        #: Bytes of the frames written, control frames included.
        self.bytes_sent = 0

    # -- the handshake ---------------------------------------------------------------

    def _open(
        self, protocol: Connection, transport: asyncio.Transport, leftover: bytes = b""
    ) -> None:
        metrics = self.metrics
        metrics.live.add(self)
        metrics.connections_total += 1
        handshakes = metrics.handshakes
        handshakes[101] = handshakes.get(101, 0) + 1
        super()._open(protocol, transport, leftover)

    def _refuse(self, response: Response, why: str | None) -> None:
        self.metrics.count_handshake(response.status)
        super()._refuse(response, why)

    def _refuse_at_once(self, refusal: Refusal) -> None:
        self.metrics.count_handshake(refusal.response.status)
        super()._refuse_at_once(refusal)

    # -- messages ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Count the whole messages in what arrived, then handle it as any connection does."""
        protocol = self.protocol
        if protocol is None:
            super().data_received(data)
            return
        # The core appends its events to this very list, which the connection
        # then takes (and replaces): read after, it holds what this read made.
        events = protocol.events
        _data_received(self, data)
        count = 0
        for event in events:
            if type(event) is DataReceived and event[1]:
                count += 1
        self.messages_received += count

    def _write(self, output: list[bytes]) -> None:
        self.bytes_sent += len(output[0]) if len(output) == 1 else sum(map(len, output))
        _write(self, output)

    async def send(self, message: Data | Iterable[Data] | AsyncIterable[Data]) -> None:
        """Send a message (see :meth:`Conn.send <wskit.Conn.send>`), counted."""
        await _send(self, message)
        self.messages_sent += 1

    def send_nowait(self, message: Data) -> None:
        """Write a message now (see :meth:`Conn.send_nowait <wskit.Conn.send_nowait>`), counted."""
        _send_nowait(self, message)
        self.messages_sent += 1

    async def send_prepared(self, message: PreparedMessage) -> None:
        """Send a prepared message (see :meth:`Conn.send_prepared <wskit.Conn.send_prepared>`)."""
        await _send_prepared(self, message)
        self.messages_sent += 1

    def write_prepared(self, message: PreparedMessage, max_buffer: int | None = None) -> bool:
        """Write a prepared message if the connection can take it, counted either way."""
        if _write_prepared(self, message, max_buffer):
            self.messages_sent += 1
            self.bytes_sent += len(message.plain_frame())
            return True
        self.metrics.writes_refused += 1
        return False

    # -- the end -------------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        """Add this connection's counts and close code to the totals."""
        super().connection_lost(exc)
        metrics = self.metrics
        if self in metrics.live:
            metrics.live.discard(self)
            metrics.fold(self)


# The overridden methods, called directly: cheaper than super() on the per-message paths.
_data_received = ServerConn.data_received
_write = ServerConn._write
_send_nowait = ServerConn.send_nowait
_send = ServerConn.send
_send_prepared = ServerConn.send_prepared
_write_prepared = ServerConn.write_prepared


class Metrics:
    """The counters and gauges of a server, and of what else is watched with it.

    ``metrics.watch(server)`` right after :func:`~wskit.asyncio.serve` starts
    counting (the connections accepted from then on are counted);
    :meth:`snapshot` reads everything into a :class:`MetricsSnapshot`. A
    hub adds its own with :func:`wskit.hub.metrics.watch_hub`. Everything
    runs in the event loop's thread.
    """

    def __init__(self) -> None:
        #: The server watched, if any.
        self.server: Server | None = None
        #: The metered connections open now.
        self.live: set[MeteredServerConn] = set()
        #: Connections opened (handshake done).
        self.connections_total = 0
        #: Handshakes answered, by HTTP status.
        self.handshakes: dict[int, int] = {}
        #: Closed connections by close code.
        self.close_codes: dict[int, int] = {}
        #: Prepared messages a connection refused (closing, busy, over its buffer).
        self.writes_refused = 0
        # The counts of the connections that closed.
        self._closed_counts = {
            "messages_received": 0,
            "messages_sent": 0,
            "bytes_received": 0,
            "bytes_sent": 0,
        }
        self._collectors: list[Callable[[MetricsSnapshot], None]] = []
        self._rooms: Callable[[], Mapping[str, int]] | None = None

    def watch(self, server: Server) -> None:
        """Count the connections ``server`` accepts from now on.

        Raises:
            RuntimeError: this :class:`Metrics` watches a server already.
        """
        if self.server is not None:
            raise RuntimeError("these metrics watch a server already")
        self.server = server
        # A class per Metrics: the connections find theirs as a class attribute.
        server.conn_class = cast(
            "type[ServerConn]",
            type("MeteredServerConn", (MeteredServerConn,), {"__slots__": (), "metrics": self}),
        )

    def unwatch(self) -> None:
        """Stop counting new connections (the open ones go on counting until they close)."""
        if self.server is not None:
            self.server.conn_class = ServerConn
            self.server = None

    def add_collector(self, collect: Callable[[MetricsSnapshot], None]) -> None:
        """Have ``collect(snapshot)`` fill its fields of every snapshot, when it is made."""
        self._collectors.append(collect)

    def set_rooms(self, rooms: Callable[[], Mapping[str, int]] | None) -> None:
        """Say where :meth:`rooms` reads the rooms (the hub's ``watch_hub`` does)."""
        self._rooms = rooms

    def rooms(self) -> dict[str, int]:
        """Members on this node per room, now; empty without a hub.

        On demand only, and never in a snapshot nor in the exposition: room
        names are the application's data (and a label per room would be
        unbounded). The endpoints serve it behind their auth hook.
        """
        return dict(self._rooms()) if self._rooms is not None else {}

    def count_handshake(self, status: int) -> None:
        """Count a handshake answered with ``status``."""
        self.handshakes[status] = self.handshakes.get(status, 0) + 1

    def fold(self, conn: MeteredServerConn) -> None:
        """Add the counts of ``conn``, which has closed, to the totals."""
        totals = self._closed_counts
        totals["messages_received"] += conn.messages_received
        totals["messages_sent"] += conn.messages_sent
        totals["bytes_received"] += conn.bytes_received
        totals["bytes_sent"] += conn.bytes_sent
        code = conn.close_code
        code = 1006 if code is None else code
        self.close_codes[code] = self.close_codes.get(code, 0) + 1

    def snapshot(self) -> MetricsSnapshot:
        """Every counter and gauge, now."""
        totals = dict(self._closed_counts)
        for conn in self.live:
            totals["messages_received"] += conn.messages_received
            totals["messages_sent"] += conn.messages_sent
            totals["bytes_received"] += conn.bytes_received
            totals["bytes_sent"] += conn.bytes_sent
        snapshot = MetricsSnapshot(
            connections_open=len(self.live),
            connections_total=self.connections_total,
            handshakes=dict(self.handshakes),
            close_codes=dict(self.close_codes),
            writes_refused=self.writes_refused,
            messages_received=totals["messages_received"],
            messages_sent=totals["messages_sent"],
            bytes_received=totals["bytes_received"],
            bytes_sent=totals["bytes_sent"],
        )
        server = self.server
        if server is not None:
            counters = server.counters
            snapshot.handshake_timeouts = counters.handshake_timeouts
            snapshot.handler_errors = counters.handler_errors
            snapshot.limit_refusals = {
                limit: getattr(counters, name) for name, limit in _LIMIT_REFUSALS
            }
        for collect in self._collectors:
            collect(snapshot)
        return snapshot

    def connections(self) -> Iterable[MeteredServerConn]:
        """The metered connections open now."""
        return tuple(self.live)
