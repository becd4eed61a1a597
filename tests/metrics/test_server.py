"""wskit.metrics.server: what a watched server counts, with the websockets client as the peer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

import wskit
from wskit.asyncio.server import ServerConn
from wskit.metrics import MeteredServerConn, Metrics
from wskit.protocol.handshake import reject

TIMEOUT = 10


class Parked:
    """A handler that hands each server conn to the test and runs ``then`` on it."""

    def __init__(self, then: Callable[[wskit.Conn], Awaitable[Any]] | None = None) -> None:
        self.queue: asyncio.Queue[wskit.Conn] = asyncio.Queue()
        self.then = then

    async def __call__(self, conn: wskit.Conn) -> None:
        await self.queue.put(conn)
        if self.then is not None:
            await self.then(conn)
        await conn.wait_closed()

    async def get(self) -> wskit.Conn:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


async def echo_then_wait(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


@contextlib.asynccontextmanager
async def watched(handler: Any, **options: Any) -> AsyncIterator[tuple[wskit.Server, Metrics]]:
    metrics = Metrics()
    async with wskit.serve(handler, "127.0.0.1", 0, **options) as server:
        metrics.watch(server)
        yield server, metrics


def uri(server: wskit.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def test_off_by_default_the_connections_are_plain_and_watching_changes_that() -> None:
    handler = Parked()
    async with wskit.serve(handler, "127.0.0.1", 0) as server:
        assert server.conn_class is ServerConn
        async with websockets.connect(uri(server)):
            assert type(await handler.get()) is ServerConn
        metrics = Metrics()
        metrics.watch(server)
        with pytest.raises(RuntimeError, match="already"):
            metrics.watch(server)
        async with websockets.connect(uri(server)):
            assert isinstance(await handler.get(), MeteredServerConn)
        metrics.unwatch()
        assert server.conn_class is ServerConn


async def test_connections_messages_and_bytes_both_ways() -> None:
    handler = Parked(echo_then_wait)
    async with watched(handler) as (server, metrics):
        async with websockets.connect(uri(server), compression=None) as client:
            conn = await handler.get()
            for _ in range(5):
                await client.send("hello")
                assert await client.recv() == "hello"
            # One message in three frames counts once.
            await client.send(["ab", "cd", "ef"])
            assert await client.recv() == "abcdef"
            now = metrics.snapshot()
            assert now.connections_open == 1
            assert now.connections_total == 1
            assert now.handshakes == {101: 1}
            assert now.messages_received == 6
            assert now.messages_sent == 6
            # Client frames are masked: 2 + 4 + payload; ours are 2 + payload.
            # websockets ends a fragmented message with an empty frame.
            assert now.bytes_received == 5 * 11 + 3 * 8 + 6
            assert now.bytes_sent == 5 * 7 + 8
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        later = metrics.snapshot()
        assert later.connections_open == 0
        assert later.connections_total == 1
        assert later.close_codes == {1000: 1}
        # The counts of a closed connection stay in the totals.
        assert later.messages_received == 6
        assert later.bytes_received == 5 * 11 + 3 * 8 + 6 + 8  # and its close frame


async def test_close_codes_of_a_failing_handler_and_of_a_vanished_peer() -> None:
    async def fail(conn: wskit.Conn) -> None:
        await conn.recv()
        raise RuntimeError("boom")

    handler = Parked(fail)
    async with watched(handler) as (server, metrics):
        async with websockets.connect(uri(server)) as client:
            conn = await handler.get()
            await client.send("go")
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(client.recv(), TIMEOUT)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        client = await websockets.connect(uri(server))
        conn = await handler.get()
        client.transport.abort()  # no close frame
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        snapshot = metrics.snapshot()
        assert snapshot.close_codes == {1011: 1, 1006: 1}
        assert snapshot.handler_errors == 1


async def test_refused_handshakes_by_status_and_the_limits_refusals() -> None:
    def hook(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        return reject(403) if request.path == "/private" else None

    handler = Parked()
    async with watched(handler, path="/ws", process_request=hook, max_connections=1) as (
        server,
        metrics,
    ):
        for path, status in (("/elsewhere", 404), ("/private", 403)):
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(uri(server, path))
            assert refused.value.response.status_code == status
        async with websockets.connect(uri(server, "/ws")):
            await handler.get()
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(uri(server, "/ws"))
            assert refused.value.response.status_code == 503
        snapshot = metrics.snapshot()
        assert snapshot.handshakes == {404: 1, 403: 1, 101: 1, 503: 1}
        assert snapshot.limit_refusals["max_connections"] == 1


async def test_every_way_of_sending_counts_and_refused_writes_count_apart() -> None:
    async def send_all_ways(conn: wskit.Conn) -> None:
        await conn.send("one")
        conn.send_nowait(b"two")
        await conn.send_prepared(wskit.PreparedMessage("three"))
        assert conn.write_prepared(wskit.PreparedMessage("four"))

    handler = Parked(send_all_ways)
    async with watched(handler) as (server, metrics):
        async with websockets.connect(uri(server), compression=None) as client:
            conn = await handler.get()
            assert [await client.recv() for _ in range(4)] == ["one", b"two", "three", "four"]
            assert metrics.snapshot().messages_sent == 4
            assert metrics.snapshot().bytes_sent == 5 + 5 + 7 + 6
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        # A broadcast to a closed connection skips it: a refused write.
        assert wskit.broadcast([conn], "late") == 0
        assert metrics.snapshot().writes_refused == 1
        assert metrics.snapshot().messages_sent == 4
