"""wskit.metrics.uvicorn: a FastAPI app under the ``uvicorn`` command with
``--ws wskit.metrics.uvicorn:MeteredWebSocketProtocol`` (``metered_apps.py``),
the websockets client and raw sockets as peers, ``/metrics`` scraped over HTTP
and parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

import uvicorn_command
from metrics.test_endpoint import get
from uvicorn_command import Uvicorn
from wskit.asyncio.connection import Conn
from wskit.metrics import Metrics
from wskit.metrics.server import CountingConn
from wskit.metrics.uvicorn import (
    MeteredWebSocketProtocol,
    MeteredWebSocketProtocol1001,
    watch_uvicorn,
)
from wskit.uvicorn import WebSocketProtocol, WebSocketProtocol1001

HERE = Path(__file__).resolve().parent
TIMEOUT = 10
METERED = "wskit.metrics.uvicorn:MeteredWebSocketProtocol"


def served(*options: str) -> contextlib.AbstractAsyncContextManager[Uvicorn]:
    """``metered_apps:app`` under the ``uvicorn`` command, with the metered class."""
    return uvicorn_command.served("metered_apps:app", *options, app_dir=HERE, ws=METERED)


async def scrape(server: Uvicorn) -> dict[str, Any]:
    """The exposition as {name: value} and {(name, label value): value}."""
    status, _, body = await get(server.http("/metrics"), Authorization="Bearer s3cret")
    assert status == 200
    found: dict[Any, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = tuple(sample.labels.values())
            found[(sample.name, *labels) if labels else sample.name] = sample.value
    return found


def labelled(found: dict[Any, float], name: str) -> dict[str, float]:
    """The samples of ``name`` by their label's value."""
    return {key[1]: value for key, value in found.items() if key[0:1] == (name,)}


async def scrape_until(server: Uvicorn, name: Any, value: float) -> dict[str, Any]:
    """The server learns of a close a moment after the client: scrape until it has (bounded)."""
    for _ in range(200):
        found = await scrape(server)
        if found.get(name) == value:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {value}: {found}")


def bad_upgrade(port: int) -> bytes:
    """An upgrade request without Sec-WebSocket-Key: wskit's class answers it (400)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        return sock.recv(4096)


def test_the_plain_class_counts_nothing_and_the_metered_one_is_the_same_class_counting() -> None:
    # Off costs nothing: uvicorn's class runs Conn's own per-message methods.
    for name in ("buffer_updated", "data_received", "write_prepared", "_open"):
        assert getattr(WebSocketProtocol, name) is getattr(Conn, name)
    for name in ("data_received", "write_prepared", "_open", "connection_lost"):
        assert getattr(MeteredWebSocketProtocol, name) is getattr(CountingConn, name)
    assert WebSocketProtocol._write is Conn._write
    assert issubclass(MeteredWebSocketProtocol, WebSocketProtocol)
    assert issubclass(MeteredWebSocketProtocol1001, WebSocketProtocol1001)
    assert MeteredWebSocketProtocol1001.shutdown_code == 1001
    previous = MeteredWebSocketProtocol.metrics
    try:
        metrics = Metrics()
        watch_uvicorn(metrics)
        assert MeteredWebSocketProtocol.metrics is MeteredWebSocketProtocol1001.metrics is metrics
    finally:
        watch_uvicorn(previous)


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_a_fastapi_app_counted_and_scraped(http: str) -> None:
    async with served("--http", http) as server:
        # Off-limits without the token.
        assert (await get(server.http("/metrics")))[0] == 403
        async with websockets.connect(server.ws("/echo"), compression=None) as client:
            for message in ("hello", "hello", b"\x00\x01\x02"):
                await client.send(message)
                assert await client.recv() == message
            # One message in three frames counts once.
            await client.send(["ab", "cd", "ef"])
            assert await client.recv() == "abcdef"
            await client.ping()
            found = await scrape(server)
            assert found["wskit_connections_open"] == 1
            assert found["wskit_connections_total"] == 1
            assert found[("wskit_handshakes_total", "101")] == 1
            assert found["wskit_messages_received_total"] == 4
            assert found["wskit_messages_sent_total"] == 4
            # As on the wire: client frames are masked (2 + 4 + payload), ours are not;
            # websockets ends a fragmented message with an empty frame, and pings
            # with 4 random bytes: the ping and its pong count as bytes, not messages.
            assert found["wskit_bytes_received_total"] == 2 * 11 + 9 + 3 * 8 + 6 + 10
            assert found["wskit_bytes_sent_total"] == 2 * 7 + 5 + 8 + 6
        async with websockets.connect(server.ws("/wskit"), compression=None) as client:
            await client.send("through asgi_app")
            assert await client.recv() == "through asgi_app"
        async with websockets.connect(server.ws("/fail")) as client:
            await client.send("go")
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(client.recv(), TIMEOUT)
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(server.ws("/deny"))
        assert refused.value.response.status_code == 403
        assert (await asyncio.to_thread(bad_upgrade, server.port)).startswith(b"HTTP/1.1 400 ")
        found = await scrape_until(server, "wskit_connections_open", 0)
        assert found["wskit_connections_total"] == 3
        handshakes = labelled(found, "wskit_handshakes_total")
        assert handshakes == {"101": 3, "403": 1, "400": 1}
        assert found["wskit_handler_errors_total"] == 1
        assert found["wskit_messages_received_total"] == 4 + 1 + 1
        closes = labelled(found, "wskit_closes_total")
        # The failing application: as uvicorn does, the TCP connection closed, no close frame.
        assert closes == {"1000": 2, "1006": 1}
