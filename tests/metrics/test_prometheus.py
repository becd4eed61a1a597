"""wskit.metrics.prometheus: the exposition, read back with prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

import websockets
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import wskit
from wskit.metrics import Histogram, Metrics, MetricsSnapshot, PrometheusCollector, exposition


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_field_is_exposed_under_its_name() -> None:
    histogram = Histogram((0.01, 0.1))
    histogram.observe(0.005)
    histogram.observe(0.05)
    snapshot = MetricsSnapshot(
        connections_open=3,
        connections_total=7,
        handshakes={101: 7, 404: 2},
        close_codes={1000: 4},
        limit_refusals={"max_connections": 1},
        messages_received=11,
        bytes_sent=99,
        hub_deliveries=5,
        backplane_buffered=2,
        handler_seconds={"inline": histogram.snapshot()},
    )
    found = samples(exposition(snapshot))
    assert found[("wskit_connections_open", ())] == 3
    assert found[("wskit_connections_total", ())] == 7
    assert found[("wskit_handshakes_total", (("status", "404"),))] == 2
    assert found[("wskit_closes_total", (("code", "1000"),))] == 4
    assert found[("wskit_limit_refusals_total", (("limit", "max_connections"),))] == 1
    assert found[("wskit_messages_received_total", ())] == 11
    assert found[("wskit_bytes_sent_total", ())] == 99
    assert found[("wskit_hub_deliveries_total", ())] == 5
    assert found[("wskit_backplane_buffered", ())] == 2
    assert found[("wskit_processes", ())] == 1
    inline = (("mode", "inline"),)
    assert found[("wskit_hub_handler_seconds_bucket", (("le", "0.01"), *inline))] == 1
    assert found[("wskit_hub_handler_seconds_bucket", (("le", "+Inf"), *inline))] == 2
    assert found[("wskit_hub_handler_seconds_count", inline)] == 2
    assert abs(found[("wskit_hub_handler_seconds_sum", inline)] - 0.055) < 1e-9


async def test_the_collector_reads_a_fresh_snapshot_at_each_scrape() -> None:
    async def echo(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    metrics = Metrics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(metrics.snapshot))  # type: ignore[arg-type]
    async with wskit.serve(echo, "127.0.0.1", 0) as server:
        metrics.watch(server)
        assert samples(generate_latest(registry))[("wskit_connections_open", ())] == 0
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as client:
            await client.send("hi")
            await client.recv()
            found = samples(generate_latest(registry))
            assert found[("wskit_connections_open", ())] == 1
            assert found[("wskit_messages_received_total", ())] == 1
            assert found[("wskit_handshakes_total", (("status", "101"),))] == 1
