"""What the metrics say at one moment: :class:`MetricsSnapshot`, plain numbers.

A snapshot is made by :meth:`Metrics.snapshot() <wskit.metrics.Metrics.snapshot>`
from counters that the connections and the hub keep anyway; it holds only
ints, floats and dicts of them, so it goes to JSON (:meth:`~wskit.metrics.MetricsSnapshot.as_dict`),
comes back from it (:meth:`~wskit.metrics.MetricsSnapshot.from_dict`, how ``wskit serve
--workers`` reads its workers' snapshots) and adds up (:func:`combine`).

The names are those of the exposition with the ``wskit_`` prefix and the
``_total`` suffix left out. They are not those of
:attr:`Backplane.stats <wskit.hub.backplane.Backplane.stats>` nor of
``Client.dropped``: the backplane's counts appear here as ``backplane_*``,
and the messages the hub dropped for slow clients, summed over the clients,
as ``overflow_drops``.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DURATION_BUCKETS", "Histogram", "HistogramSnapshot", "MetricsSnapshot", "combine"]

DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""The upper bounds, in seconds, of the buckets of a duration :class:`Histogram`."""


@dataclass
class HistogramSnapshot:
    """A histogram at one moment: counts per bucket, their sum and their number."""

    #: The upper bound of each bucket but the last, which has none (``+Inf``).
    bounds: tuple[float, ...] = DURATION_BUCKETS
    #: How many observations fell in each bucket (not cumulative), one more than ``bounds``.
    counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    #: The sum of the observations.
    total: float = 0.0

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at most that)`` per bucket, ending with ``inf``."""
        pairs, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs

    def __add__(self, other: HistogramSnapshot) -> HistogramSnapshot:
        if other.bounds != self.bounds:
            raise ValueError("cannot add histograms with different buckets")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return HistogramSnapshot(self.bounds, counts, self.total + other.total)


class Histogram:
    """Observations of a duration (or any value) counted in buckets; :meth:`observe` adds one.

    Args:
        bounds: the buckets' upper bounds, ascending; values above the last
            fall in a last bucket without a bound.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float] = DURATION_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is at least ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> HistogramSnapshot:
        """The histogram now, as plain numbers."""
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.total)


def _histograms() -> dict[str, HistogramSnapshot]:
    return {}


@dataclass
class MetricsSnapshot:
    """The metrics of a server (and of its hub, if it has one) at one moment.

    Counters (``*_total`` in the exposition) only grow while the process
    lives; gauges (``connections_open``, ``hub_clients``, ``hub_rooms``,
    ``requests_in_flight``, ``backplane_buffered``) say what is now. Every
    field is a plain number or a dict of them.
    """

    #: WebSocket connections open now (handshake done, not yet closed).
    connections_open: int = 0
    #: WebSocket connections opened since the metrics started.
    connections_total: int = 0
    #: Opening handshakes answered, by HTTP status (101: accepted).
    handshakes: dict[int, int] = field(default_factory=dict)
    #: Handshakes dropped unanswered, for taking over ``handshake_timeout``.
    handshake_timeouts: int = 0
    #: Connections refused with 503 by the server-wide limits, by limit
    #: (``max_connections``, ``max_connections_per_ip``, ``handshake_rate``).
    limit_refusals: dict[str, int] = field(default_factory=dict)
    #: Exceptions raised by connection handlers and hooks (answered 1011 or 500).
    handler_errors: int = 0
    #: Whole messages received by the connections.
    messages_received: int = 0
    #: Messages the connections wrote, however (``send``, ``send_nowait``,
    #: ``send_prepared``, ``write_prepared``, the fan-out of broadcasts and
    #: room emits). A fragmented message counts once.
    messages_sent: int = 0
    #: Bytes received after the opening handshakes, as on the wire (for an
    #: :func:`~wskit.asgi.asgi_app` endpoint's connections, which see
    #: messages rather than frames: the payloads, text as UTF-8).
    bytes_received: int = 0
    #: Bytes of the frames the connections wrote, control frames included
    #: (for an ``asgi_app`` endpoint's connections: the payloads).
    bytes_sent: int = 0
    #: Closed connections by close code (1006: no close frame).
    close_codes: dict[int, int] = field(default_factory=dict)
    #: Prepared messages not written because a connection was closing, busy
    #: or over its buffer limit (:func:`wskit.broadcast`'s skips, the hub's
    #: writes to slow clients).
    writes_refused: int = 0
    #: Clients of the hub now.
    hub_clients: int = 0
    #: Rooms with members on this node now.
    hub_rooms: int = 0
    #: Emits written to the hub's clients, one per receiving client.
    hub_deliveries: int = 0
    #: Messages the hub dropped because a client's buffer was full
    #: (``overflow="drop"``; the sum of every ``Client.dropped``).
    overflow_drops: int = 0
    #: Async handlers of the hub running now, over all clients.
    requests_in_flight: int = 0
    #: Handler durations in seconds: ``"inline"`` the time the hub's read loop
    #: spent dispatching an event (a plain handler's whole run),
    #: ``"task"`` an async handler's run from start to result.
    handler_seconds: dict[str, HistogramSnapshot] = field(default_factory=_histograms)
    #: Emits handed to the backplane (``stats.sent``).
    backplane_sent: int = 0
    #: Emits the broker accepted (``stats.published``).
    backplane_published: int = 0
    #: Messages the backplane gave to this node (``stats.delivered``).
    backplane_delivered: int = 0
    #: Emits given up: the outage buffer overflowed (``stats.dropped``).
    backplane_dropped: int = 0
    #: Messages of other nodes lost after a gap (``stats.lost``).
    backplane_lost: int = 0
    #: Emits waiting for the broker now: the backplane's lag (``stats.buffered``).
    backplane_buffered: int = 0
    #: Times the backplane connected to its broker again (``stats.reconnects``).
    backplane_reconnects: int = 0
    #: Processes whose metrics this snapshot adds up (``wskit serve --workers``).
    processes: int = 1

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (dict keys as strings)."""
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "handler_seconds":
                value = {
                    mode: {"bounds": list(h.bounds), "counts": list(h.counts), "total": h.total}
                    for mode, h in value.items()
                }
            elif isinstance(value, dict):
                value = {str(key): count for key, count in value.items()}
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsSnapshot:
        """The snapshot that :meth:`as_dict` made ``data`` of; unknown keys are ignored."""
        snapshot = cls()
        for item in dataclasses.fields(cls):
            if item.name not in data:
                continue
            value = data[item.name]
            if item.name == "handler_seconds":
                value = {
                    mode: HistogramSnapshot(
                        tuple(h["bounds"]), tuple(h["counts"]), float(h["total"])
                    )
                    for mode, h in value.items()
                }
            elif item.name in ("handshakes", "close_codes"):
                value = {int(key): int(count) for key, count in value.items()}
            elif item.name == "limit_refusals":
                value = {str(key): int(count) for key, count in value.items()}
            setattr(snapshot, item.name, value)
        return snapshot


def _add_counts(into: dict[Any, int], more: Mapping[Any, int]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + count


def combine(snapshots: Iterable[MetricsSnapshot]) -> MetricsSnapshot:
    """The sum of ``snapshots`` (of the workers of one server), field by field.

    Gauges add up too: the connections open in the whole server are those
    open in each process. ``processes`` counts the snapshots.
    """
    total = MetricsSnapshot(processes=0)
    for snapshot in snapshots:
        for item in dataclasses.fields(MetricsSnapshot):
            mine, theirs = getattr(total, item.name), getattr(snapshot, item.name)
            if item.name == "handler_seconds":
                for mode, histogram in theirs.items():
                    mine[mode] = mine[mode] + histogram if mode in mine else histogram
            elif isinstance(mine, dict):
                _add_counts(mine, theirs)
            else:
                setattr(total, item.name, mine + theirs)
    return total
