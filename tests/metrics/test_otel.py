"""wskit.metrics.otel: observable instruments, read by the SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from wskit.metrics import Histogram, MetricsSnapshot, observe_with_meter


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """Each metric's data points: name -> [(attributes, value)]."""
    found: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    (dict(point.attributes or {}), point.value)  # type: ignore[union-attr]
                    for point in metric.data.data_points
                ]
    return found


def test_the_reader_sees_each_collection_fresh() -> None:
    current = MetricsSnapshot(connections_open=2, handshakes={101: 2}, messages_sent=5)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        instruments = observe_with_meter(provider.get_meter("wskit"), lambda: current)
        assert len(instruments) > 20
        found = points(reader)
        assert found["wskit.connections.open"] == [({}, 2)]
        assert found["wskit.handshakes"] == [({"status": "101"}, 2)]
        assert found["wskit.messages.sent"] == [({}, 5)]
        histogram = Histogram()
        histogram.observe(0.25)
        current = MetricsSnapshot(
            connections_open=1,
            messages_sent=9,
            close_codes={1001: 1},
            handler_seconds={"task": histogram.snapshot()},
        )
        found = points(reader)
        assert found["wskit.connections.open"] == [({}, 1)]
        assert found["wskit.messages.sent"] == [({}, 9)]
        assert found["wskit.closes"] == [({"code": "1001"}, 1)]
        assert found["wskit.hub.handler.duration"] == [({"mode": "task"}, 0.25)]
        assert found["wskit.hub.handler.calls"] == [({"mode": "task"}, 1)]
    finally:
        provider.shutdown()
