"""Unit tests of wskit.asyncio.api: what ConnectionAPI writes on a connection's primitives.

``Conn`` and the ASGI adapter's ``AsgiConn`` are tested over real sockets
and ASGI servers in their own modules; here ConnectionAPI gets a minimal
connection of the test's own, in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from wskit.asyncio.api import ConnectionAPI, Data
from wskit.exceptions import ConnectionClosed, ConnectionClosedError, closed_exception
from wskit.protocol.headers import Headers
from wskit.protocol.http11 import Request, Response


class Scripted(ConnectionAPI):
    """Receives ``messages`` in order, then raises ``end``; records what is sent."""

    def __init__(self, messages: list[Data], end: ConnectionClosed) -> None:
        self.messages = list(messages)
        self.end = end
        self.sent: list[Any] = []
        self.closed: tuple[int, str] | None = None
        self.request: Request | None = None
        self.response: Response | None = None
        self.json_loads = json.loads
        self.json_dumps = json.dumps
        self._loop = asyncio.get_running_loop()

    async def recv(self) -> Data:
        if self.messages:
            return self.messages.pop(0)
        raise self.end

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


async def test_iteration_ends_on_a_normal_close() -> None:
    conn = Scripted(["one", b"two"], closed_exception(1000, "", 1000, ""))
    assert [message async for message in conn] == ["one", b"two"]


async def test_iteration_raises_on_an_abnormal_close() -> None:
    conn = Scripted(["one"], closed_exception(1011, "oops", 1011, "oops"))
    received = []
    with pytest.raises(ConnectionClosedError) as caught:
        async for message in conn:
            received.append(message)
    assert received == ["one"]
    assert caught.value.code == 1011


async def test_json_goes_through_the_connections_functions() -> None:
    conn = Scripted(['{"a": [1, 2]}'], closed_exception(1000))
    conn.json_dumps = lambda obj: json.dumps(obj, separators=(",", ":"))
    assert await conn.recv_json() == {"a": [1, 2]}
    await conn.send_json({"b": None})
    assert conn.sent == ['{"b":null}']


async def test_async_with_closes_normally() -> None:
    conn = Scripted([], closed_exception(1000))
    async with conn as entered:
        assert entered is conn
        assert conn.closed is None
    assert conn.closed == (1000, "")


async def test_handshake_headers() -> None:
    conn = Scripted([], closed_exception(1000))
    conn.request = Request("GET", "/chat", Headers([("Host", "example.com")]))
    conn.response = Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
    assert conn.request_headers["Host"] == "example.com"
    assert conn.response_headers["Upgrade"] == "websocket"


async def test_handlers_run_coroutines_as_tasks_and_contain_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = Scripted([], closed_exception(1000))
    calls: list[tuple[object, ...]] = []
    done = asyncio.Event()

    def plain(*args: object) -> None:
        calls.append(args)

    async def coroutine(*args: object) -> None:
        calls.append(args)
        done.set()

    def failing(*args: object) -> None:
        raise ValueError("handler bug")

    conn._call_handler(plain, 1000, "bye")
    conn._call_handler(coroutine, b"ping")
    with caplog.at_level(logging.ERROR, logger="wskit"):
        conn._call_handler(failing)
    await asyncio.wait_for(done.wait(), 5)
    assert calls == [(1000, "bye"), (b"ping",)]
    assert "error in a failing handler" in caplog.text
