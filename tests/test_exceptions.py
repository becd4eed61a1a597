"""wskit.exceptions: the hierarchy, the rule of a normal close, gorilla's close-error helpers."""

from __future__ import annotations

import pytest

from wskit.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
    InvalidHandshake,
    ProxyError,
    WebSocketError,
    closed_exception,
    is_close_error,
    is_unexpected_close_error,
)
from wskit.hub.backplane.interface import HistoryError
from wskit.hub.convert import ConversionError
from wskit.hub.errors import ClientError, Reject, RequestError
from wskit.protocol.headers import Headers


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


@pytest.mark.parametrize(
    "exc", [RequestError("timed out"), Reject(42), ClientError("no"), HistoryError("epoch")]
)
def test_the_hubs_exceptions_are_websocket_errors(exc: Exception) -> None:
    assert isinstance(exc, WebSocketError)


def test_a_conversion_error_is_a_websocket_error_and_still_a_value_error() -> None:
    exc = ConversionError("argument 'a': expected int")
    assert isinstance(exc, WebSocketError)
    assert isinstance(exc, ValueError)


def test_a_proxy_error_is_a_handshake_error() -> None:
    assert issubclass(ProxyError, InvalidHandshake)


def test_handshake_rejected_carries_the_response_headers_as_headers() -> None:
    headers = Headers([("Retry-After", "4"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    exc = HandshakeRejected(503, headers, b"busy", "Service Unavailable")
    assert exc.headers.get("retry-after") == "4"
    assert exc.headers.get("X-Missing") is None
    assert exc.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert list(exc.headers) == ["Retry-After", "Set-Cookie"]
    assert exc.headers.raw_items()[0] == ("Retry-After", "4")
    assert str(exc) == "server rejected WebSocket connection: HTTP 503: Service Unavailable"


def test_handshake_rejected_refuses_plain_pairs() -> None:
    with pytest.raises(TypeError, match=r"wskit\.Headers"):
        HandshakeRejected(403, [("X", "1")])  # type: ignore[arg-type]
