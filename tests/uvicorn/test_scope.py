"""wskit.uvicorn.scope: the scope, addresses, disconnect events and access lines uvicorn's way."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from wskit.protocol.headers import Headers
from wskit.protocol.http11 import Request
from wskit.uvicorn.scope import (
    Stage,
    decode_headers,
    disconnect_event,
    local_address,
    log_answer,
    make_scope,
    socket_address,
)


def request(target: str, *headers: tuple[str, str]) -> Request:
    return Request("GET", target, Headers([("Host", "example.com"), *headers]))


def scope_of(req: Request, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "asgi_version": "3.0",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "state": {},
    }
    options.update(overrides)
    return make_scope(req, **options)


def test_the_path_is_decoded_and_the_raw_path_kept_both_under_the_root_path() -> None:
    scope = scope_of(request("/caf%C3%A9/a%2Fb?q=%20x&r"), root_path="/api")
    assert scope["path"] == "/api/café/a/b"
    assert scope["raw_path"] == b"/api/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"q=%20x&r"
    assert scope["root_path"] == "/api"


def test_headers_are_lowercased_bytes_as_they_came() -> None:
    scope = scope_of(request("/", ("X-Name", "abra\xc3\xa3o"), ("X-Name", "two")))
    assert scope["headers"] == [
        (b"host", b"example.com"),
        (b"x-name", "abraão".encode()),
        (b"x-name", b"two"),
    ]


def test_subprotocols_state_and_extensions() -> None:
    state = {"pool": "ready"}
    scope = scope_of(request("/", ("Sec-WebSocket-Protocol", "chat, v2")), state=state)
    assert scope["subprotocols"] == ["chat", "v2"]
    assert scope["state"] == state and scope["state"] is not state  # a copy per connection
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["type"] == "websocket" and scope["http_version"] == "1.1"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (("127.0.0.1", 8000), ("127.0.0.1", 8000)),
        (("::1", 8000, 0, 0), ("::1", 8000)),
        (["10.0.0.1", "80"], ("10.0.0.1", 80)),
        ("/run/app.sock", None),
        (None, None),
    ],
)
def test_socket_address(info: Any, expected: Any) -> None:
    assert socket_address(info) == expected


class FakeTransport:
    def __init__(self, sockname: Any) -> None:
        self.sockname = sockname

    def get_extra_info(self, name: str) -> Any:
        assert name == "sockname"
        return self.sockname


def test_local_address_of_a_unix_socket_has_no_port() -> None:
    assert local_address(FakeTransport("/run/app.sock")) == ("/run/app.sock", None)  # type: ignore[arg-type]
    assert local_address(FakeTransport(("0.0.0.0", 80))) == ("0.0.0.0", 80)  # type: ignore[arg-type]


def test_disconnect_events_leave_the_reason_out_only_when_told() -> None:
    assert disconnect_event(1012, None) == {"type": "websocket.disconnect", "code": 1012}
    assert disconnect_event(1000, "") == {
        "type": "websocket.disconnect",
        "code": 1000,
        "reason": "",
    }


def test_decode_headers_maps_bytes_one_to_one() -> None:
    assert decode_headers([(b"x-a", b"\xff\x00"), (bytearray(b"b"), b"c")]) == [
        ("x-a", "\xff\x00"),
        ("b", "c"),
    ]


def test_the_access_line_reads_like_uvicorns(caplog: pytest.LogCaptureFixture) -> None:
    scope = scope_of(request('/room/"1"?x=1'))
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        log_answer(scope, "[accepted]")
        log_answer(dict(scope, client=None), "403")
    assert [record.getMessage() for record in caplog.records] == [
        '127.0.0.1:50000 - "WebSocket /room/%221%22?x=1" [accepted]',
        ' - "WebSocket /room/%221%22?x=1" 403',
    ]


def test_stages() -> None:
    assert [stage.name for stage in Stage] == ["HANDSHAKE", "RESPONSE", "ACCEPTED", "CLOSED"]
