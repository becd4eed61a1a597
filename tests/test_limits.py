"""wskit.limits: token buckets, the bounded key table, limited logging and error ids."""

from __future__ import annotations

import logging

import pytest

from wskit.limits import (
    KeyedBuckets,
    LogLimiter,
    TokenBucket,
    new_error_id,
    public_error_message,
    report_failure,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token back
    assert bucket.take() is True
    assert bucket.take() is False
    clock.now += 100  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_token_bucket_full_and_validation() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    assert bucket.full()
    bucket.take()
    assert not bucket.full()
    clock.now += 1
    assert bucket.full()
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        KeyedBuckets(rate=1, burst=0)


def test_keyed_buckets_are_separate_and_the_table_is_bounded() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(rate=1, burst=1, max_keys=3, clock=clock)
    assert buckets.take("a") and not buckets.take("a")
    assert buckets.take("b")
    for key in range(1000):
        buckets.take(key)
    assert len(buckets) == 3
    # "a" was forgotten: it starts again with a full bucket.
    assert buckets.take("a")


def test_log_limiter_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = LogLimiter(rate=1, burst=2, clock=clock)
    logger = logging.getLogger("test.limits")
    with caplog.at_level(logging.INFO, logger="test.limits"):
        passed = [limiter.log(logger, logging.INFO, "k", "bad %s", n) for n in range(10)]
        assert passed == [True, True] + [False] * 8
        assert limiter.suppressed == 8
        clock.now += 1
        assert limiter.log(logger, logging.INFO, "k", "bad %s", 10)
        # Another kind has its own budget.
        assert limiter.log(logger, logging.INFO, "other", "fine")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["bad 0", "bad 1", "bad 10 (and 8 more like this, not logged)", "fine"]


def test_log_limiter_spends_nothing_below_the_level(caplog: pytest.LogCaptureFixture) -> None:
    limiter = LogLimiter(rate=1, burst=1, clock=FakeClock())
    logger = logging.getLogger("test.limits.level")
    with caplog.at_level(logging.WARNING, logger="test.limits.level"):
        assert not limiter.log(logger, logging.DEBUG, "k", "hidden")
        assert limiter.log(logger, logging.WARNING, "k", "shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_log_limiter_remembers_a_bounded_number_of_kinds() -> None:
    limiter = LogLimiter(rate=1, burst=1, max_kinds=10, clock=FakeClock())
    for kind in range(10_000):
        limiter.allow(kind)
        limiter.allow(kind)
    assert len(limiter._held) <= 10
    assert len(limiter._buckets) <= 10


def _fail(n: int) -> None:
    raise KeyError(f"db-password={n}")


def test_report_failure_logs_the_traceback_with_an_id_and_limits_repeats(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = LogLimiter(rate=1, burst=2, clock=FakeClock())
    logger = logging.getLogger("test.limits.failure")
    ids = []
    with caplog.at_level(logging.ERROR, logger="test.limits.failure"):
        for n in range(50):
            try:
                _fail(n)
            except KeyError as exc:
                ids.append(report_failure(logger, exc, "the handler of 'x'", limiter))
    assert len(set(ids)) == 50
    assert len(caplog.records) == 2
    record = caplog.records[0]
    assert record.exc_info is not None
    assert ids[0] in record.getMessage() and "the handler of 'x'" in record.getMessage()


def test_public_error_message_hides_the_text_unless_debug() -> None:
    exc = KeyError("db-password=hunter2")
    error_id = new_error_id()
    assert len(error_id) == 8
    hidden = public_error_message(exc, error_id, debug=False)
    assert "hunter2" not in hidden and "KeyError" not in hidden and error_id in hidden
    shown = public_error_message(exc, error_id, debug=True)
    assert "hunter2" in shown and "KeyError" in shown and error_id in shown
    assert public_error_message(RuntimeError(), "x", debug=True) == "RuntimeError (error x)"
