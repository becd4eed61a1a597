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
from wskit import speedups
from wskit.asyncio import direct_write
from wskit.asyncio.connection import Conn
from wskit.asyncio.server import ServerConn
from wskit.metrics import MeteredServerConn, Metrics
from wskit.metrics.server import _CountingPythonWriter
from wskit.protocol.frames import Opcode, encode_frame, encode_frame_parts
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


# -- where the counts are taken --------------------------------------------------------


def test_the_counting_overrides_call_conns_own_methods_which_nothing_between_overrides() -> None:
    # CountingConn calls Conn's methods directly (cheaper than super()): that
    # is right only while ServerConn (and uvicorn's class) leave them alone.
    for name in ("buffer_updated", "data_received", "write_prepared", "_open"):
        assert getattr(ServerConn, name) is getattr(Conn, name), name


class Recorder:
    """A transport that takes every write (the writers' own fallback path: no socket)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def writer_kinds() -> list[Any]:
    kinds: list[Any] = [pytest.param(_CountingPythonWriter, id="python")]
    if speedups.write_kernel is not None:
        kinds.append(pytest.param(speedups.write_kernel.Writer, id="compiled"))
    return kinds


def make_writer(kind: Any, transport: Recorder) -> Any:
    if kind is _CountingPythonWriter:
        return _CountingPythonWriter(transport, True)
    return kind(transport, -1, True, True)


@pytest.mark.parametrize("kind", writer_kinds())
def test_the_writers_count_bytes_and_the_frames_that_end_a_message(kind: Any) -> None:
    transport = Recorder()
    writer = make_writer(kind, transport)
    text = encode_frame(Opcode.TEXT, b"hello")
    pong = encode_frame(Opcode.PONG, b"")
    writer.write(text)
    # Frames written together: a pong then a message (an on_message reply after a ping).
    writer.write(pong + text)
    # A fragmented message counts at its last frame; a client's frames are masked.
    writer.write(encode_frame(Opcode.TEXT, b"ab", fin=False, mask=True))
    writer.write(bytearray(encode_frame(Opcode.CONTINUATION, b"cd", fin=False)))
    writer.write(memoryview(encode_frame(Opcode.CONTINUATION, b"ef", fin=True)))
    # A large message as header and payload: one message, its payload not read as frames.
    large = bytes([0x81, 0x81]) * 40_000  # looks like frame headers, is payload
    parts = list(encode_frame_parts(Opcode.BINARY, large))
    assert len(parts) == 2
    writer.write_parts(parts)
    writer.write(encode_frame(Opcode.BINARY, large))  # joined: the same, one piece
    writer.write(encode_frame(Opcode.CLOSE, b"\x03\xe8"))
    assert writer.messages_written == 1 + 1 + 1 + 2
    assert writer.bytes_written == len(transport.written)


@pytest.mark.parametrize("kind", writer_kinds())
def test_the_fanout_counts_on_every_writer_it_writes_to(kind: Any) -> None:
    writers = {object(): make_writer(kind, Recorder()) for _ in range(3)}
    frame = encode_frame(Opcode.TEXT, b"news")
    written, left = direct_write.fanout(writers, frame, direct_write.NO_LIMIT, None)
    for item in left:  # the counting Python writer is left to the connection's path
        writers[item].write(frame)
    assert written + len(left) == 3
    assert [w.messages_written for w in writers.values()] == [1, 1, 1]
    assert [w.bytes_written for w in writers.values()] == [len(frame)] * 3


async def test_large_binary_messages_read_straight_into_their_payload_count_too() -> None:
    # A binary frame of 64 KiB or more takes Conn's bulk path (get_buffer lends its payload).
    handler = Parked(echo_then_wait)
    async with (
        watched(handler) as (server, metrics),
        websockets.connect(uri(server), compression=None, max_size=None) as client,
    ):
        await handler.get()
        payload = bytes(range(256)) * 1024
        await client.send(payload)
        assert await client.recv() == payload
        snapshot = metrics.snapshot()
        assert snapshot.messages_received == snapshot.messages_sent == 1
        assert snapshot.bytes_received == 2 + 8 + 4 + len(payload)
        assert snapshot.bytes_sent == 2 + 8 + len(payload)


async def test_a_read_of_several_frames_counts_its_whole_messages_only() -> None:
    received: list[Any] = []

    async def collect(conn: wskit.Conn) -> None:
        async for message in conn:
            received.append(message)

    def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        return encode_frame(opcode, payload, fin=fin, mask=True)

    async with watched(collect) as (server, metrics):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        # In one write (one read, most likely; counted right either way): a ping,
        # a message, a message in two fragments, and a message.
        writer.write(
            masked(Opcode.PING, b"p")
            + masked(Opcode.TEXT, b"one")
            + masked(Opcode.TEXT, b"tw", fin=False)
            + masked(Opcode.CONTINUATION, b"o")
            + masked(Opcode.BINARY, b"three")
        )
        await writer.drain()
        for _ in range(500):
            if len(received) == 3:
                break
            await asyncio.sleep(0.01)
        assert received == ["one", "two", b"three"]
        assert metrics.snapshot().messages_received == 3
        writer.close()
