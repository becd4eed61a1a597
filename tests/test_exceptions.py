"""wskit.exceptions: the hierarchy, the rule of a normal close, gorilla's close-error helpers."""

from __future__ import annotations

import pytest

from wskit.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    WebSocketError,
    closed_exception,
    is_close_error,
    is_unexpected_close_error,
)


@pytest.mark.parametrize(
    ("code", "sent_code", "ok"),
    [
        (1000, 1000, True),
        (1001, None, True),  # the peer went away before we sent a close
        (1005, 1000, True),  # a close frame without a code is a normal close
        (1000, 1001, True),
        (1006, None, False),  # no close frame at all
        (1000, 1011, False),  # we closed for an error: not normal, both ways
        (1002, 1002, False),
        (4000, 1000, False),
    ],
)
def test_closed_exception_is_ok_only_when_both_codes_are_normal(
    code: int, sent_code: int | None, ok: bool
) -> None:
    exc = closed_exception(code, "why", sent_code, "because")
    assert isinstance(exc, ConnectionClosedOK if ok else ConnectionClosedError)
    assert isinstance(exc, ConnectionClosed) and isinstance(exc, WebSocketError)
    assert exc.ok is ok
    assert (exc.code, exc.reason, exc.sent_code, exc.sent_reason) == (
        code,
        "why",
        sent_code,
        "because",
    )


def test_closed_exception_defaults_to_an_abnormal_closure() -> None:
    exc = closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.sent_code) == (1006, None)


def test_is_close_error() -> None:
    going_away = closed_exception(1001)
    assert is_close_error(going_away)
    assert is_close_error(going_away, 1000, 1001)
    assert not is_close_error(going_away, 1000)
    assert not is_close_error(ValueError("not a close"))
    assert not is_close_error(None)


def test_is_unexpected_close_error() -> None:
    assert is_unexpected_close_error(closed_exception(1011), 1000, 1001)
    assert not is_unexpected_close_error(closed_exception(1001), 1000, 1001)
    assert is_unexpected_close_error(closed_exception(1000))  # nothing expected
    assert not is_unexpected_close_error(OSError("reset"), 1000)
    assert not is_unexpected_close_error(None)
