"""wskit.metrics.snapshot: histograms, JSON both ways, and the sum of workers' snapshots."""

from __future__ import annotations

import json

import pytest

from wskit.metrics.snapshot import (
    DURATION_BUCKETS,
    Histogram,
    HistogramSnapshot,
    MetricsSnapshot,
    combine,
)


def test_histogram_counts_each_value_in_the_first_bucket_that_holds_it() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0, 3.0):
        histogram.observe(value)
    snapshot = histogram.snapshot()
    assert snapshot.counts == (2, 1, 2)
    assert snapshot.count == 5
    assert snapshot.total == pytest.approx(5.65)
    assert snapshot.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 5)]


def test_histograms_add_up_only_with_the_same_buckets() -> None:
    one = HistogramSnapshot((1.0,), (1, 2), 3.0)
    assert one + one == HistogramSnapshot((1.0,), (2, 4), 6.0)
    with pytest.raises(ValueError, match="different buckets"):
        one + HistogramSnapshot((2.0,), (0, 0), 0.0)


def sample() -> MetricsSnapshot:
    histogram = Histogram()
    histogram.observe(0.003)
    return MetricsSnapshot(
        connections_open=2,
        connections_total=5,
        handshakes={101: 5, 403: 1},
        limit_refusals={"max_connections": 1},
        messages_received=10,
        close_codes={1000: 2, 1006: 1},
        handler_seconds={"inline": histogram.snapshot()},
        backplane_buffered=3,
    )


def test_a_snapshot_goes_through_json_and_back() -> None:
    snapshot = sample()
    data = json.loads(json.dumps(snapshot.as_dict()))
    assert data["handshakes"] == {"101": 5, "403": 1}
    assert data["handler_seconds"]["inline"]["bounds"] == list(DURATION_BUCKETS)
    assert MetricsSnapshot.from_dict({**data, "from a newer version": 1}) == snapshot


def test_combine_adds_every_field_and_counts_the_processes() -> None:
    total = combine([sample(), sample(), MetricsSnapshot(close_codes={1001: 4})])
    assert total.processes == 3
    assert total.connections_open == 4
    assert total.handshakes == {101: 10, 403: 2}
    assert total.close_codes == {1000: 4, 1006: 2, 1001: 4}
    assert total.limit_refusals == {"max_connections": 2}
    assert total.handler_seconds["inline"].count == 2
    assert total.backplane_buffered == 6
    assert combine([]) == MetricsSnapshot(processes=0)
