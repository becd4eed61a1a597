"""OpenTelemetry instruments over :class:`~wskit.metrics.MetricsSnapshot` (``opentelemetry-api``).

:func:`observe_with_meter` registers observable instruments on a meter of
the application's ``MeterProvider``; the SDK's reader (or any exporter)
calls them when it collects, and each reads a fresh snapshot. Nothing is
counted twice: the instruments read the counters that
:class:`~wskit.metrics.Metrics` keeps. Names are the Prometheus ones with
dots (``wskit.connections.open``); labels become attributes. Handler
durations are observable counters of their sum and count (an observable
histogram does not exist in the API).

``opentelemetry`` is imported when this is used, not with this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .snapshot import MetricsSnapshot

__all__ = ["observe_with_meter"]

#: Monotonic counts: (snapshot field, instrument name, unit).
_COUNTERS = (
    ("connections_total", "wskit.connections", "{connection}"),
    ("handshake_timeouts", "wskit.handshake_timeouts", "{handshake}"),
    ("handler_errors", "wskit.handler_errors", "{error}"),
    ("messages_received", "wskit.messages.received", "{message}"),
    ("messages_sent", "wskit.messages.sent", "{message}"),
    ("bytes_received", "wskit.bytes.received", "By"),
    ("bytes_sent", "wskit.bytes.sent", "By"),
    ("writes_refused", "wskit.writes_refused", "{message}"),
    ("hub_deliveries", "wskit.hub.deliveries", "{message}"),
    ("overflow_drops", "wskit.hub.overflow_drops", "{message}"),
    ("backplane_sent", "wskit.backplane.sent", "{message}"),
    ("backplane_published", "wskit.backplane.published", "{message}"),
    ("backplane_delivered", "wskit.backplane.delivered", "{message}"),
    ("backplane_dropped", "wskit.backplane.dropped", "{message}"),
    ("backplane_lost", "wskit.backplane.lost", "{message}"),
    ("backplane_reconnects", "wskit.backplane.reconnects", "{reconnect}"),
)

#: Values of now: (snapshot field, instrument name, unit).
_GAUGES = (
    ("connections_open", "wskit.connections.open", "{connection}"),
    ("hub_clients", "wskit.hub.clients", "{client}"),
    ("hub_rooms", "wskit.hub.rooms", "{room}"),
    ("requests_in_flight", "wskit.hub.requests_in_flight", "{request}"),
    ("backplane_buffered", "wskit.backplane.buffered", "{message}"),
)

#: Counts by label: (snapshot field, instrument name, attribute).
_LABELLED = (
    ("handshakes", "wskit.handshakes", "status"),
    ("close_codes", "wskit.closes", "code"),
    ("limit_refusals", "wskit.limit_refusals", "limit"),
)


def observe_with_meter(meter: Any, source: Callable[[], MetricsSnapshot]) -> list[Any]:
    """Register observable instruments on ``meter`` that read ``source()``; return them.

    ``meter`` is an ``opentelemetry.metrics.Meter`` (``metrics.get_meter("wskit")``);
    ``source`` is :meth:`Metrics.snapshot <wskit.metrics.Metrics.snapshot>`.
    """
    from opentelemetry.metrics import CallbackOptions, Observation

    def plain(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(getattr(source(), field))]

        return callback

    def labelled(field: str, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            counts = getattr(source(), field)
            return [Observation(count, {key: str(label)}) for label, count in counts.items()]

        return callback

    def durations(part: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            histograms = source().handler_seconds
            return [
                Observation(h.total if part == "sum" else h.count, {"mode": mode})
                for mode, h in histograms.items()
            ]

        return callback

    instruments = [
        meter.create_observable_counter(name, [plain(field)], unit=unit)
        for field, name, unit in _COUNTERS
    ]
    instruments += [
        meter.create_observable_gauge(name, [plain(field)], unit=unit)
        for field, name, unit in _GAUGES
    ]
    instruments += [
        meter.create_observable_counter(name, [labelled(field, key)])
        for field, name, key in _LABELLED
    ]
    instruments.append(
        meter.create_observable_counter("wskit.hub.handler.duration", [durations("sum")], unit="s")
    )
    instruments.append(
        meter.create_observable_counter("wskit.hub.handler.calls", [durations("count")])
    )
    return instruments
