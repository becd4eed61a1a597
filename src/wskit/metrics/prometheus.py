"""Prometheus exposition of :class:`~wskit.metrics.MetricsSnapshot`, with ``prometheus_client``.

``pip install 'wskit[prometheus]'``. :class:`PrometheusCollector` is a
``prometheus_client`` collector: register it in a registry (the default
one, or your own) and every scrape makes a fresh snapshot. :func:`exposition`
renders one snapshot as the text format, which is what ``wskit serve
--metrics-port`` serves (the sum of its workers' snapshots under
``--workers``). Every name starts with ``wskit_``; counters end with
``_total``. Per-room counts are never exposed (see
:meth:`Metrics.rooms <wskit.metrics.Metrics.rooms>`).

``prometheus_client`` is imported when these are used, not with this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .snapshot import MetricsSnapshot

__all__ = ["CONTENT_TYPE", "PrometheusCollector", "exposition", "metric_families"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of the text format that :func:`exposition` renders."""

#: Plain counters: (snapshot field, metric name without _total, help).
_COUNTERS = (
    ("connections_total", "wskit_connections", "WebSocket connections opened."),
    ("handshake_timeouts", "wskit_handshake_timeouts", "Handshakes dropped for taking too long."),
    ("handler_errors", "wskit_handler_errors", "Exceptions raised by handlers and hooks."),
    ("messages_received", "wskit_messages_received", "Whole messages received."),
    ("messages_sent", "wskit_messages_sent", "Messages the connections wrote."),
    ("bytes_received", "wskit_bytes_received", "Bytes received after the handshakes."),
    ("bytes_sent", "wskit_bytes_sent", "Bytes of the frames the connections wrote."),
    ("writes_refused", "wskit_writes_refused", "Prepared messages a busy connection refused."),
    ("hub_deliveries", "wskit_hub_deliveries", "Emits written to hub clients, one per client."),
    ("overflow_drops", "wskit_hub_overflow_drops", "Messages dropped for slow hub clients."),
    ("backplane_sent", "wskit_backplane_sent", "Emits handed to the backplane."),
    ("backplane_published", "wskit_backplane_published", "Emits the broker accepted."),
    ("backplane_delivered", "wskit_backplane_delivered", "Messages the backplane delivered."),
    ("backplane_dropped", "wskit_backplane_dropped", "Emits given up by the backplane."),
    ("backplane_lost", "wskit_backplane_lost", "Messages of other nodes lost after a gap."),
    ("backplane_reconnects", "wskit_backplane_reconnects", "Reconnections to the broker."),
)

#: Gauges: (snapshot field, metric name, help).
_GAUGES = (
    ("connections_open", "wskit_connections_open", "WebSocket connections open now."),
    ("hub_clients", "wskit_hub_clients", "Hub clients connected now."),
    ("hub_rooms", "wskit_hub_rooms", "Rooms with members on this node now."),
    ("requests_in_flight", "wskit_hub_requests_in_flight", "Async hub handlers running now."),
    ("backplane_buffered", "wskit_backplane_buffered", "Emits waiting for the broker (lag)."),
    ("processes", "wskit_processes", "Processes whose metrics are summed here."),
)


def metric_families(snapshot: MetricsSnapshot) -> Iterator[Any]:
    """The ``prometheus_client`` metric families of ``snapshot``."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    for name, metric, text in _COUNTERS:
        yield CounterMetricFamily(metric, text, value=getattr(snapshot, name))
    for name, metric, text in _GAUGES:
        yield GaugeMetricFamily(metric, text, value=getattr(snapshot, name))
    labelled = (
        ("handshakes", "wskit_handshakes", "Opening handshakes answered, by status.", "status"),
        ("close_codes", "wskit_closes", "Closed connections, by close code.", "code"),
        ("limit_refusals", "wskit_limit_refusals", "503s of the server-wide limits.", "limit"),
    )
    for name, metric, text, label in labelled:
        family = CounterMetricFamily(metric, text, labels=[label])
        for key, count in sorted(getattr(snapshot, name).items()):
            family.add_metric([str(key)], count)
        yield family
    durations = HistogramMetricFamily(
        "wskit_hub_handler_seconds",
        "Hub handler durations: inline dispatch, async task.",
        labels=["mode"],
    )
    for mode, histogram in sorted(snapshot.handler_seconds.items()):
        buckets = [
            ("+Inf" if bound == float("inf") else repr(bound), count)
            for bound, count in histogram.cumulative()
        ]
        durations.add_metric([mode], buckets, histogram.total)
    yield durations


class PrometheusCollector:
    """A ``prometheus_client`` collector of the snapshots that ``source`` makes.

    ``source`` is :meth:`Metrics.snapshot <wskit.metrics.Metrics.snapshot>`,
    or any function returning a :class:`MetricsSnapshot`::

        from prometheus_client import REGISTRY
        REGISTRY.register(PrometheusCollector(metrics.snapshot))
    """

    def __init__(self, source: Callable[[], MetricsSnapshot]) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        """The metric families of a fresh snapshot (``prometheus_client`` calls this)."""
        return metric_families(self.source())


def exposition(snapshot: MetricsSnapshot) -> bytes:
    """``snapshot`` in Prometheus' text format (served with :data:`CONTENT_TYPE`).

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(lambda: snapshot))
    return generate_latest(registry)
