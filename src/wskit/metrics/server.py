"""Counting a server's connections: :class:`Metrics`, and the connection classes that count.

Theory of operation: metrics are off by default and then cost nothing, not
even a check: :func:`~wskit.asyncio.serve`'s connections are plain
:class:`~wskit.asyncio.ServerConn`. :meth:`Metrics.watch` makes the server
accept :class:`MeteredServerConn` instead (``Server.conn_class``), a
subclass that counts into the connection itself, an object the
per-message path touches anyway. The same counting serves uvicorn's
connections (:mod:`wskit.metrics.uvicorn`), through :class:`CountingConn`;
an :func:`~wskit.asgi.asgi_app` endpoint's connections count in
:mod:`wskit.metrics.asgi`.

Each count is taken where a count, or the work it needs, happens already:

- bytes received: ``Conn.bytes_received``, which every connection keeps;
- messages received: per read, ``data_received`` looks at the events the
  protocol core made of it: one event, the common read, ends a message if
  it ends in ``True`` (``DataReceived(data, fin=True)``; a ping's last item
  is bytes, a close's a str); several are counted in a loop. (Overriding
  ``buffer_updated`` instead would save the call, but means copying
  ``Conn``'s, which changes: the one place that counts is kept.)
- messages and bytes sent: the connection's writer
  (:mod:`~wskit.asyncio.direct_write`) counts what it writes, in C, for
  every connection: its length, and the frames that end a data message
  (``FIN`` set, a data opcode), read off their headers. A few additions per
  write, so always on; the counting class only reads them, and nothing is
  added to its send path. Every way of sending is counted, the fan-out of
  :func:`wskit.broadcast` and of the hub's rooms too. Control frames
  (pongs, close) count as bytes, not as messages. Without the compiled
  kernel a counting writer takes the place of the plain one, for metered
  connections only.

When a connection ends, its counts are added to the totals, with its close
code; :meth:`Metrics.snapshot` adds the open connections' counts to those
totals, so the work of summing is paid per scrape, not per message. What
the server counts anyway (:attr:`Server.counters
<wskit.asyncio.Server.counters>`: the limits' refusals, handshake
timeouts, handler errors) is read as it is.

Collectors (:meth:`Metrics.add_collector`) fill the rest of a snapshot: the
hub's (:func:`wskit.hub.metrics.watch_hub`) reads its clients, rooms,
drops, handler durations and backplane. They run at collection time only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, cast

from ..asgi.connection import AsgiConn
from ..asgi.endpoint import WebSocketEndpoint
from ..asyncio.admission import Refusal, ServerCounters
from ..asyncio.connection import Conn
from ..asyncio.direct_write import PythonWriter
from ..asyncio.server import Server, ServerConn
from ..protocol.connection import Connection
from ..protocol.http11 import Response
from ..protocol.prepared import PreparedMessage
from .asgi import MeteredAsgiConn
from .snapshot import MetricsSnapshot

__all__ = ["CountingConn", "MeteredServerConn", "Metrics"]

#: The ServerCounters fields of the limits' refusals, and the limit each names.
_LIMIT_REFUSALS = (
    ("refused_max_connections", "max_connections"),
    ("refused_max_connections_per_ip", "max_connections_per_ip"),
    ("refused_handshake_rate", "handshake_rate"),
)

#: The counters every metered connection keeps, summed by :meth:`Metrics.snapshot`.
_COUNTS = ("messages_received", "messages_sent", "bytes_received", "bytes_sent")


def _whole_messages(events: list[Any]) -> int:
    """How many of a read's events end a data message.

    Only a :class:`~wskit.protocol.events.DataReceived` with ``fin`` set
    ends in ``True``: a ping's or pong's last item is bytes, a close's a str.
    """
    count = 0
    for event in events:
        if event[-1] is True:
            count += 1
    return count


def _frames_ending_messages(output: list[bytes]) -> int:
    """How many frames of ``output`` end a data message (``FIN`` and opcode 0, 1 or 2).

    Walks the frame headers: a piece holds whole frames, or a header whose
    payload is the next piece (large payloads are not joined, see
    :meth:`Connection.data_to_send <wskit.protocol.connection.Connection.data_to_send>`).
    """
    count = 0
    skip = 0  # bytes of a payload still to pass over
    for piece in output:
        pos = 0
        end = len(piece)
        while pos < end:
            if skip:
                taken = min(skip, end - pos)
                skip -= taken
                pos += taken
                continue
            b0 = piece[pos]
            b1 = piece[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                length = int.from_bytes(piece[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                length = int.from_bytes(piece[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:
                head += 4
            if b0 & 0x88 == 0x80:
                count += 1
            pos += head
            skip = length
    return count


class _CountingPythonWriter(PythonWriter):
    """The writer without the compiled kernel, counting as the compiled one does.

    A metered connection's, in place of a ``PythonWriter`` (which counts nothing,
    so that connections not metered pay nothing). Not a ``PythonWriter`` to
    the Python fan-out, which leaves it to the connection's own path, where
    it counts.
    """

    __slots__ = ("bytes_written", "messages_written")

    def __init__(self, transport: Any, plain: bool) -> None:
        super().__init__(transport, plain)
        #: Bytes written, control frames included.
        self.bytes_written = 0
        #: Frames written that end a data message.
        self.messages_written = 0

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Write ``data`` now, counted; ``False``, writing nothing, if closing."""
        if not PythonWriter.write(self, data):
            return False
        self.bytes_written += len(data)
        self.messages_written += _frames_ending_messages([bytes(data)])
        return True

    def write_parts(self, parts: list[bytes]) -> bool:
        """Write ``parts`` in order, counted; ``False``, writing nothing, if closing."""
        if not PythonWriter.write_parts(self, parts):
            return False
        self.bytes_written += sum(map(len, parts))
        self.messages_written += _frames_ending_messages(parts)
        return True


class CountingConn(Conn):
    """What counts on a :class:`~wskit.asyncio.connection.Conn`: a base to mix in before the class.

    ``class Metered(CountingConn, SomeConn)`` with ``messages_received`` in
    its own ``__slots__`` (not this class's: two bases with slots of their
    own could not be combined) and a ``metrics`` class attribute:
    :class:`MeteredServerConn` and
    :class:`~wskit.metrics.uvicorn.MeteredWebSocketProtocol` are made so.
    See the module's docstring for what each part costs.
    """

    __slots__ = ()

    #: The metrics this connection counts for.
    metrics: ClassVar[Metrics]
    #: Whole messages received.
    messages_received: int

    @property
    def messages_sent(self) -> int:
        """Messages written (by ``send()``, the fan-out...), as the writer counts."""
        writer: Any = self.frame_writer
        return 0 if writer is None else int(writer.messages_written)

    @property
    def bytes_sent(self) -> int:
        """Bytes of the frames written, control frames included, as the writer counts."""
        writer: Any = self.frame_writer
        return 0 if writer is None else int(writer.bytes_written)

    def _open(
        self, protocol: Connection, transport: asyncio.Transport, leftover: bytes = b""
    ) -> None:
        metrics = self.metrics
        metrics.live.add(self)
        metrics.connections_total += 1
        handshakes = metrics.handshakes
        handshakes[101] = handshakes.get(101, 0) + 1
        super()._open(protocol, transport)
        writer = self.frame_writer
        if type(writer) is PythonWriter:
            # Without the compiled kernel: a writer that counts, before anything is written.
            self.frame_writer = _CountingPythonWriter(writer.transport, writer.plain)
        if leftover:
            self.data_received(leftover)

    def data_received(self, data: bytes) -> None:
        """Handle what arrived, as any connection does, and count the whole messages in it."""
        protocol = self.protocol
        if protocol is None:
            _data_received(self, data)  # the handshake: no message yet
            return
        # The core appends its events to this very list, which the connection
        # then takes (and replaces): read after, it holds what this read made.
        events = protocol.events
        _data_received(self, data)
        if len(events) == 1:
            # The common read, one frame: it ends a message if its event ends in True.
            if events[0][-1] is True:
                self.messages_received += 1  # type: ignore[misc]  # the concrete class's slot
        elif events:
            self.messages_received += _whole_messages(events)  # type: ignore[misc]

    def write_prepared(self, message: PreparedMessage, max_buffer: int | None = None) -> bool:
        """Write a prepared message if the connection can take it; a refusal counts."""
        if _write_prepared(self, message, max_buffer):
            return True
        self.metrics.writes_refused += 1
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Add this connection's counts and close code to the totals."""
        super().connection_lost(exc)
        self.metrics.retire(self)


# The overridden methods, called directly: cheaper than super() on the
# per-message paths. No class between Conn and the metered ones overrides
# them (tests/metrics/test_server.py checks).
_data_received = Conn.data_received
_write_prepared = Conn.write_prepared


class MeteredServerConn(CountingConn, ServerConn):
    """A :class:`~wskit.asyncio.ServerConn` that counts for a :class:`Metrics`.

    Made by :meth:`Metrics.watch` (a subclass per :class:`Metrics`, which it
    names in its ``metrics`` class attribute); not to be made by hand.
    """

    __slots__ = ("messages_received",)

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.messages_received = 0

    def _refuse(self, response: Response, why: str | None) -> None:
        self.metrics.count_handshake(response.status)
        super()._refuse(response, why)

    def _refuse_at_once(self, refusal: Refusal) -> None:
        self.metrics.count_handshake(refusal.response.status)
        super()._refuse_at_once(refusal)


class Metrics:
    """The counters and gauges of a server, and of what else is watched with it.

    ``metrics.watch(server)`` right after :func:`~wskit.asyncio.serve` starts
    counting (the connections accepted from then on are counted);
    ``metrics.watch(endpoint)`` does the same for an
    :func:`~wskit.asgi.asgi_app` endpoint under any ASGI server, and
    :func:`wskit.metrics.uvicorn.watch_uvicorn` for uvicorn with wskit's
    WebSocket class. :meth:`snapshot` reads everything into a
    :class:`MetricsSnapshot`. A hub adds its own with
    :func:`wskit.hub.metrics.watch_hub`. Everything runs in the event
    loop's thread.
    """

    def __init__(self) -> None:
        #: The server watched, if any.
        self.server: Server | None = None
        #: The :func:`~wskit.asgi.asgi_app` endpoints watched.
        self.endpoints: list[WebSocketEndpoint] = []
        #: The metered connections open now.
        self.live: set[Any] = set()
        #: Connections opened (handshake done).
        self.connections_total = 0
        #: Handshakes answered, by HTTP status.
        self.handshakes: dict[int, int] = {}
        #: Closed connections by close code.
        self.close_codes: dict[int, int] = {}
        #: Prepared messages a connection refused (closing, busy, over its buffer).
        self.writes_refused = 0
        #: Exceptions of ASGI applications under uvicorn with the metered
        #: class (a server's and an endpoint's handlers count in their ``counters``).
        self.app_errors = 0
        # The counts of the connections that closed.
        self._closed_counts = dict.fromkeys(_COUNTS, 0)
        self._collectors: list[Callable[[MetricsSnapshot], None]] = []
        self._rooms: Callable[[], Mapping[str, int]] | None = None

    def watch(self, target: Server | WebSocketEndpoint) -> None:
        """Count the connections ``target`` accepts from now on.

        ``target`` is a :class:`~wskit.asyncio.Server`, or the
        :class:`~wskit.asgi.WebSocketEndpoint` of
        :func:`~wskit.asgi.asgi_app` (several may be watched: each route of
        an application). Under uvicorn with
        :class:`~wskit.metrics.uvicorn.MeteredWebSocketProtocol`, watch the
        connections with :func:`~wskit.metrics.uvicorn.watch_uvicorn`
        instead: the endpoints' connections are uvicorn's, counted there.

        Raises:
            RuntimeError: this :class:`Metrics` watches a server already, or this endpoint.
        """
        if isinstance(target, WebSocketEndpoint):
            if target in self.endpoints:
                raise RuntimeError("these metrics watch this endpoint already")
            self.endpoints.append(target)
            target.conn_class = cast(
                "type[AsgiConn]",
                type("MeteredAsgiConn", (MeteredAsgiConn,), {"metrics": self}),
            )
            return
        if self.server is not None:
            raise RuntimeError("these metrics watch a server already")
        self.server = target
        # A class per Metrics: the connections find theirs as a class attribute.
        target.conn_class = cast(
            "type[ServerConn]",
            type("MeteredServerConn", (MeteredServerConn,), {"__slots__": (), "metrics": self}),
        )

    def unwatch(self) -> None:
        """Stop counting new connections (the open ones go on counting until they close)."""
        if self.server is not None:
            self.server.conn_class = ServerConn
            self.server = None
        for endpoint in self.endpoints:
            endpoint.conn_class = AsgiConn
        self.endpoints.clear()

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

    def retire(self, conn: Any) -> None:
        """Take ``conn``, a metered connection which has ended, out of the live ones, and fold it.

        See :meth:`fold`. Once only: a connection that is not live (already retired) is left
        alone.
        """
        if conn in self.live:
            self.live.discard(conn)
            self.fold(conn)

    def fold(self, conn: Any) -> None:
        """Add the counts of ``conn``, a metered connection which has closed, to the totals."""
        totals = self._closed_counts
        for name in _COUNTS:
            totals[name] += getattr(conn, name)
        code = conn.close_code
        code = 1006 if code is None else code
        self.close_codes[code] = self.close_codes.get(code, 0) + 1

    def _counters(self) -> Iterable[ServerCounters]:
        """The counters of what is watched: the server's and each endpoint's."""
        if self.server is not None:
            yield self.server.counters
        for endpoint in self.endpoints:
            yield endpoint.counters

    def snapshot(self) -> MetricsSnapshot:
        """Every counter and gauge, now."""
        totals = dict(self._closed_counts)
        for conn in self.live:
            for name in _COUNTS:
                totals[name] += getattr(conn, name)
        snapshot = MetricsSnapshot(
            connections_open=len(self.live),
            connections_total=self.connections_total,
            handshakes=dict(self.handshakes),
            close_codes=dict(self.close_codes),
            writes_refused=self.writes_refused,
            handler_errors=self.app_errors,
            messages_received=totals["messages_received"],
            messages_sent=totals["messages_sent"],
            bytes_received=totals["bytes_received"],
            bytes_sent=totals["bytes_sent"],
        )
        watched = list(self._counters())
        if watched:
            snapshot.limit_refusals = dict.fromkeys((limit for _, limit in _LIMIT_REFUSALS), 0)
            for counters in watched:
                snapshot.handshake_timeouts += counters.handshake_timeouts
                snapshot.handler_errors += counters.handler_errors
                for name, limit in _LIMIT_REFUSALS:
                    snapshot.limit_refusals[limit] += getattr(counters, name)
        for collect in self._collectors:
            collect(snapshot)
        return snapshot

    def connections(self) -> Iterable[Any]:
        """The metered connections open now."""
        return tuple(self.live)
