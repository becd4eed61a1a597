"""wskit.metrics.status: the rates the status page draws, from samples of the totals."""

from __future__ import annotations

from wskit.metrics import MetricsSnapshot
from wskit.metrics.status import STATUS_PAGE, RateHistory


def test_rates_are_differences_over_time_and_the_window_is_bounded() -> None:
    history = RateHistory(MetricsSnapshot, interval=1.0, span=3.0)
    for second, received in enumerate((0, 10, 30, 30, 70)):
        history.add(
            MetricsSnapshot(messages_received=received, messages_sent=2 * received, hub_rooms=1),
            when=100.0 + second,
        )
    assert len(history.samples) == 4  # span / interval + 1
    series = history.series()
    assert [point["messages_in"] for point in series] == [20.0, 0.0, 40.0]
    assert [point["messages_out"] for point in series] == [40.0, 0.0, 80.0]
    status = history.status()
    assert status["hub_rooms"] == 1
    assert status["messages_received"] == 70
    assert status["interval"] == 1.0


def test_a_total_that_goes_down_reads_as_no_traffic() -> None:
    history = RateHistory(MetricsSnapshot)
    history.add(MetricsSnapshot(messages_received=50), when=1.0)
    history.add(MetricsSnapshot(messages_received=5), when=2.0)  # a worker restarted
    assert history.series()[0]["messages_in"] == 0.0


async def test_sample_reads_sync_and_async_sources() -> None:
    async def later() -> MetricsSnapshot:
        return MetricsSnapshot(connections_open=5)

    history = RateHistory(later)
    await history.sample()
    assert history.latest.connections_open == 5
    history.source = lambda: MetricsSnapshot(connections_open=6)
    await history.sample()
    assert history.latest.connections_open == 6


def test_the_page_has_the_elements_the_browser_test_reads() -> None:
    for element_id in ("connections", "clients", "rooms", "rate-in", "chart", "line-in"):
        assert f'id="{element_id}"' in STATUS_PAGE
