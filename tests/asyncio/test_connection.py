"""The asyncio Conn over real sockets: reading, writing, control frames, limits.

Every test runs a wskit server and a wskit client on 127.0.0.1. The server
side is usually driven from the test body: the handler hands its Conn over
through a queue and waits until the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wskit
from wskit import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, LocalProtocolError
from wskit.asyncio.api import Data
from wskit.protocol.frames import Opcode, encode_frame

# Bounds every wait in a test; nothing here should come close to it.
TIMEOUT = 10


class Pair:
    """A running server plus a helper to get the server side of each connection."""

    def __init__(self, server: wskit.Server, conns: asyncio.Queue[wskit.Conn]) -> None:
        self.server = server
        self.conns = conns
        self.uri = f"ws://127.0.0.1:{server.port}/"

    async def accept(self) -> wskit.Conn:
        return await asyncio.wait_for(self.conns.get(), TIMEOUT)


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[wskit.Conn], Awaitable[Any]] | None = None, **options: Any
) -> AsyncIterator[Pair]:
    """Serve on a free port; the default handler parks the conn for the test."""
    conns: asyncio.Queue[wskit.Conn] = asyncio.Queue()

    async def park(conn: wskit.Conn) -> None:
        await conns.put(conn)
        await conn.wait_closed()

    options.setdefault("close_timeout", 2)
    async with wskit.serve(handler or park, "127.0.0.1", 0, **options) as server:
        yield Pair(server, conns)


@contextlib.asynccontextmanager
async def connected(
    handler: Callable[[wskit.Conn], Awaitable[Any]] | None = None,
    client_options: dict[str, Any] | None = None,
    **server_options: Any,
) -> AsyncIterator[tuple[wskit.ClientConn, wskit.Conn | None, Pair]]:
    """A client connected to a server; the server conn when the default handler runs."""
    async with asyncio.timeout(TIMEOUT), serving(handler, **server_options) as pair:
        options = {"close_timeout": 2, **(client_options or {})}
        async with wskit.connect(pair.uri, **options) as client:
            server_conn = await pair.accept() if handler is None else None
            yield client, server_conn, pair


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


# --------------------------------------------------------------------------- recv / send


async def test_send_recv_text_and_binary() -> None:
    async with connected(echo) as (client, _, _):
        await client.send("héllo")
        assert await client.recv() == "héllo"
        await client.send(b"\x00\xff")
        reply = await client.recv()
        assert reply == b"\x00\xff" and isinstance(reply, bytes)
        await client.send(bytearray(b"ba"))
        assert await client.recv() == b"ba"
        await client.send(memoryview(b"mv"))
        assert await client.recv() == b"mv"
        await client.send("")
        assert await client.recv() == ""


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_large_messages(compression: str | None) -> None:
    big = bytes(range(256)) * 2000
    async with connected(
        echo, client_options={"compression": compression}, compression=compression
    ) as (client, _, _):
        assert client.compression is (compression is not None)
        await client.send(big)
        assert await client.recv() == big
        await client.send("é" * 100_000)
        assert await client.recv() == "é" * 100_000


@pytest.mark.parametrize("path", ["recv", "on_message"])
async def test_a_large_binary_message_is_read_straight_into_its_bytes(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    lent: list[int] = []
    async with connected(client_options={"compression": None}, compression=None) as (
        client,
        server_conn,
        _,
    ):
        assert server_conn is not None
        lend = type(server_conn).get_buffer

        def get_buffer(conn: wskit.Conn, sizehint: int) -> memoryview:
            buffer = lend(conn, sizehint)
            if conn is server_conn:
                lent.append(len(buffer))
            return buffer

        monkeypatch.setattr(type(server_conn), "get_buffer", get_buffer)
        received: asyncio.Queue[Any] = asyncio.Queue()
        if path == "on_message":
            server_conn.on_message = received.put_nowait
        before = server_conn.bytes_received
        for _ in range(3):
            await client.send(big)
            message = await (received.get() if path == "on_message" else server_conn.recv())
            assert message == big and type(message) is bytes
        # After the first read of each message, asyncio read into the rest of its payload
        # (a buffer of exactly what was missing), not into the shared 256 KiB buffer.
        assert any(0 < size < 2**20 and size != 256 * 1024 for size in lent)
        assert server_conn.bytes_received - before == 3 * (len(big) + 14)
        await server_conn.send(b"ok")  # the connection reads on as usual afterwards
        assert await client.recv() == b"ok"


async def test_send_rejects_other_types() -> None:
    async with connected(echo) as (client, _, _):
        with pytest.raises(TypeError):
            await client.send(42)  # type: ignore[arg-type]


async def test_async_for_ends_cleanly_on_1000() -> None:
    async def handler(conn: wskit.Conn) -> None:
        for i in range(3):
            await conn.send(f"message {i}")

    async with connected(handler) as (client, _, _):
        received = [message async for message in client]
        assert received == ["message 0", "message 1", "message 2"]
        assert client.close_code == 1000
        with pytest.raises(ConnectionClosedOK) as info:
            await client.recv()
        assert info.value.code == 1000


async def test_async_for_raises_on_1011() -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.send("before the crash")
        raise RuntimeError("boom")

    async with connected(handler) as (client, _, _):
        received = []
        with pytest.raises(ConnectionClosedError) as info:
            async for message in client:
                received.append(message)
        assert received == ["before the crash"]
        assert info.value.code == 1011
        assert info.value.reason.startswith("Internal server error (error ")  # no "boom"
        assert not info.value.ok


async def test_async_for_ends_cleanly_on_close_without_code() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        await server_conn.send("x")
        assert server_conn.protocol is not None
        server_conn.protocol.send_close(None)
        server_conn._write(server_conn.protocol.data_to_send())
        received = [message async for message in client]
        assert received == ["x"]
        assert client.close_code == 1005


async def test_recv_after_close() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        await client.close(1000, "done")
        assert client.closed
        with pytest.raises(ConnectionClosedOK):
            await client.recv()
        with pytest.raises(ConnectionClosedOK):
            await client.send("too late")
        # Closing again is harmless.
        await client.close()
        await server_conn.wait_closed(TIMEOUT)
        with pytest.raises(ConnectionClosedOK) as info:
            await server_conn.recv()
        assert info.value.code == 1000 and info.value.reason == "done"


async def test_two_readers_at_once() -> None:
    async with connected() as (client, _, _):
        reader = asyncio.create_task(client.recv())
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError):
            await client.recv()
        reader.cancel()


# --------------------------------------------------------------------------- hand-over


class CountingLoop:
    """The connection's event loop, counting the futures made on it (one per reader wait)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.futures = 0

    def create_future(self) -> asyncio.Future[Any]:
        self.futures += 1
        return self.loop.create_future()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


def client_frames(*messages: str) -> bytes:
    """What a client sends for these text messages, as one read would bring them."""
    return b"".join(encode_frame(Opcode.TEXT, message.encode(), mask=True) for message in messages)


async def wait_for_reader(conn: wskit.Conn) -> None:
    for _ in range(100):
        if conn._read_waiter is not None:
            return
        await asyncio.sleep(0)
    raise AssertionError("the reader never waited")


async def test_a_waiting_reader_is_handed_each_message_without_the_queue() -> None:
    async with connected(echo) as (client, _, pair):
        for i in range(20):
            await client.send(f"message {i}")
            assert await client.recv() == f"message {i}"
        # The server's reader waited for every message: each went to it
        # directly, so the connection never made a receive queue.
        (server_conn,) = pair.server.connections
        assert server_conn._queue == () and server_conn._queue_size == 0


async def test_messages_of_one_read_wake_the_reader_once_and_come_in_order() -> None:
    async with connected() as (_, server_conn, _):
        assert server_conn is not None
        counting = CountingLoop(server_conn._loop)
        server_conn._loop = counting  # type: ignore[assignment]
        received: list[Data] = []

        async def read(count: int) -> None:
            async for message in server_conn:
                received.append(message)
                if len(received) == count:
                    return

        reader = asyncio.create_task(read(8))
        await wait_for_reader(server_conn)
        server_conn.data_received(client_frames(*(f"m{i}" for i in range(8))))
        await reader
        assert received == [f"m{i}" for i in range(8)]
        # One wait, one future: the first message handed over, the other
        # seven taken from the queue without going back to the loop.
        assert counting.futures == 1
        assert server_conn._queue_size == 0 and not server_conn._queue


async def test_a_recv_cancelled_after_the_hand_over_loses_no_message() -> None:
    async with connected() as (_, server_conn, _):
        assert server_conn is not None
        for first in (True, False):
            reader = asyncio.create_task(server_conn.recv())
            await wait_for_reader(server_conn)
            # The message is handed to the waiting reader, which is cancelled
            # before it runs: the message goes back to the head of the queue.
            server_conn.data_received(client_frames("handed", "queued"))
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            if first:
                assert await server_conn.recv() == "handed"
                assert await server_conn.recv() == "queued"
            else:
                assert [f async for f in server_conn.recv_streaming()] == ["handed"]
                assert [f async for f in server_conn.recv_streaming()] == ["queued"]
            assert server_conn._queue_size == 0


async def test_a_recv_that_times_out_loses_no_message() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server_conn.recv(), 0.01)
        await client.send("after the timeout")
        assert await server_conn.recv() == "after the timeout"


async def test_recv_streaming_is_handed_a_final_fragment() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        fragments = server_conn.recv_streaming()
        server_conn.data_received(encode_frame(Opcode.TEXT, b"a", fin=False, mask=True))
        assert await anext(fragments) == "a"
        # The waiting stream is handed the final fragment and ends with it.
        pending = asyncio.ensure_future(anext(fragments))
        await wait_for_reader(server_conn)
        server_conn.data_received(encode_frame(Opcode.CONTINUATION, b"b", mask=True))
        assert await pending == "b"
        with pytest.raises(StopAsyncIteration):
            await anext(fragments)
        await client.send("next")
        assert await server_conn.recv() == "next"


# --------------------------------------------------------------------------- fragments


async def collect_fragments(conn: wskit.Conn) -> list[str | bytes]:
    return [fragment async for fragment in conn.recv_streaming()]


async def test_recv_streaming_yields_fragments() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        await server_conn.send(["Hel", "lo ", "wörld"])
        assert await collect_fragments(client) == ["Hel", "lo ", "wörld"]
        await server_conn.send([b"\x01", b"\x02\x03"])
        assert await collect_fragments(client) == [b"\x01", b"\x02\x03"]
        # A whole message is one fragment.
        await server_conn.send("whole")
        assert await collect_fragments(client) == ["whole"]
        # recv() joins fragments.
        await server_conn.send(["a", "b", "c"])
        assert await client.recv() == "abc"


async def test_send_iterable_from_client() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        await client.send(iter([b"one", b"two", b"three"]))
        assert await collect_fragments(server_conn) == [b"one", b"two", b"three"]


async def test_send_async_iterable() -> None:
    async def pieces() -> AsyncIterator[str]:
        for piece in ["as", "ync", " it"]:
            await asyncio.sleep(0)
            yield piece

    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        await server_conn.send(pieces())
        assert await collect_fragments(client) == ["as", "ync", " it"]
        await client.send(pieces())
        assert await server_conn.recv() == "async it"


async def test_message_writer() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        async with server_conn.message_writer(binary=True) as writer:
            await writer.write(b"ab")
            await writer.write(b"cd")
            await writer.write(b"ef")
        assert await collect_fragments(client) == [b"ab", b"cd", b"ef"]
        async with client.message_writer() as writer:
            await writer.write("text ")
            await writer.write("message")
        assert await collect_fragments(server_conn) == ["text ", "message"]


async def test_message_writer_failure_fails_connection() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        with pytest.raises(ValueError):
            async with server_conn.message_writer() as writer:
                await writer.write("one")
                await writer.write("two")  # "one" goes out here
                raise ValueError("oops")
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011


async def test_concurrent_senders_do_not_interleave() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        started = asyncio.Event()

        async def fragmented() -> None:
            async with server_conn.message_writer() as writer:
                for i in range(10):
                    await writer.write(f"<{i}>")
                    if i == 1:
                        # The first frame is on the wire (a piece goes out
                        # when the next one is written).
                        assert server_conn.protocol is not None
                        assert server_conn.protocol._out_opcode is not None
                        started.set()
                    await asyncio.sleep(0.005)

        async def whole(i: int) -> None:
            await started.wait()
            await server_conn.send(f"whole {i}")

        await asyncio.gather(fragmented(), *(whole(i) for i in range(20)))
        received = [await client.recv() for _ in range(21)]
        assert "".join(f"<{i}>" for i in range(10)) in received
        assert sorted(
            m for m in received if isinstance(m, str) and m.startswith("whole")
        ) == sorted(f"whole {i}" for i in range(20))
        # The connection is still healthy.
        await client.send("still ok")
        assert await server_conn.recv() == "still ok"


# --------------------------------------------------------------------------- json


async def test_send_json_recv_json() -> None:
    async with connected(echo) as (client, _, _):
        obj = {"a": [1, 2.5, None, True], "b": "é"}
        await client.send_json(obj)
        assert await client.recv_json() == obj


async def test_custom_json_functions() -> None:
    async with connected(
        echo,
        client_options={"json_dumps": lambda o: json.dumps(o, sort_keys=True)},
    ) as (client, _, _):
        await client.send_json({"b": 1, "a": 2})
        assert await client.recv() == '{"a": 2, "b": 1}'


# --------------------------------------------------------------------------- control frames


async def test_ping_pong_and_handlers() -> None:
    pongs: list[bytes] = []
    async with connected(client_options={"on_pong": pongs.append}) as (client, server_conn, _):
        assert server_conn is not None
        pings: list[bytes] = []
        server_conn.on_ping = pings.append
        latency = await asyncio.wait_for(client.ping("hello"), TIMEOUT)
        assert isinstance(latency, float) and latency >= 0
        assert pings == [b"hello"]
        assert pongs == [b"hello"]
        # Default payload: random, still acknowledged.
        latency = await asyncio.wait_for(client.ping(), TIMEOUT)
        assert isinstance(latency, float)
        assert len(pings) == 2 and len(pings[1]) == 4


async def test_ping_same_payload_in_flight() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        assert server_conn.protocol is not None
        server_conn.protocol.auto_pong = False
        first = client.ping(b"dup")
        with pytest.raises(LocalProtocolError):
            client.ping(b"dup")
        second = client.ping(b"later")
        # One pong for the later ping acknowledges the earlier one too.
        await server_conn.pong(b"later")
        assert isinstance(await asyncio.wait_for(first, TIMEOUT), float)
        assert isinstance(await asyncio.wait_for(second, TIMEOUT), float)


async def test_pending_ping_fails_on_close() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        assert server_conn.protocol is not None
        server_conn.protocol.auto_pong = False
        waiter = client.ping()
        await server_conn.close()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(waiter, TIMEOUT)


async def test_async_handlers() -> None:
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_ping(data: bytes) -> None:
        await seen.put(data)

    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        server_conn.on_ping = on_ping
        await client.ping(b"async")
        assert await asyncio.wait_for(seen.get(), TIMEOUT) == b"async"


async def test_on_close_handler() -> None:
    closes: list[tuple[int, str]] = []

    async def handler(conn: wskit.Conn) -> None:
        await conn.close(4321, "see you")

    async with connected(
        handler, client_options={"on_close": lambda code, reason: closes.append((code, reason))}
    ) as (client, _, _):
        await client.wait_closed(TIMEOUT)
        assert closes == [(4321, "see you")]


async def test_handler_errors_are_contained() -> None:
    def broken(data: bytes) -> None:
        raise RuntimeError("bad handler")

    async with connected(echo, client_options={"on_pong": broken}) as (client, _, _):
        await asyncio.wait_for(client.ping(), TIMEOUT)
        await client.send("alive")
        assert await client.recv() == "alive"


# --------------------------------------------------------------------------- keepalive


async def test_keepalive_with_responsive_peer() -> None:
    pings: list[bytes] = []
    async with connected(
        echo,
        client_options={"on_ping": pings.append},
        ping_interval=0.05,
        ping_timeout=0.2,
    ) as (client, _, _):
        await asyncio.sleep(0.5)
        assert client.state is wskit.State.OPEN
        assert client.close_code is None
        assert len(pings) >= 3
        await client.send("still here")
        assert await client.recv() == "still here"


async def test_keepalive_closes_unresponsive_peer() -> None:
    async with connected(echo, ping_interval=0.05, ping_timeout=0.2) as (client, _, _):
        assert client.protocol is not None
        client.protocol.auto_pong = False
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011
        assert client.close_code == 1011


async def test_client_keepalive() -> None:
    async with connected(client_options={"ping_interval": 0.05, "ping_timeout": 0.2}) as (
        client,
        server_conn,
        _,
    ):
        assert server_conn is not None
        pings: list[bytes] = []
        server_conn.on_ping = pings.append
        await asyncio.sleep(0.3)
        assert len(pings) >= 2
        assert client.state is wskit.State.OPEN
        assert server_conn.protocol is not None
        server_conn.protocol.auto_pong = False
        with pytest.raises(ConnectionClosedError) as info:
            await server_conn.recv()
        assert info.value.code == 1011


# --------------------------------------------------------------------------- limits


async def test_max_size_on_server() -> None:
    async with connected(echo, max_size=1000) as (client, _, _):
        await client.send(b"x" * 1000)
        assert await client.recv() == b"x" * 1000
        await client.send(b"x" * 1001)
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1009


async def test_max_size_on_client() -> None:
    async with connected(client_options={"max_size": 1000}) as (client, server_conn, _):
        assert server_conn is not None
        await server_conn.send("y" * 1001)
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        # The client received no close frame; it sent 1009.
        assert info.value.sent_code == 1009
        with pytest.raises(ConnectionClosedError) as info:
            await server_conn.recv()
        assert info.value.code == 1009


async def test_max_size_compressed() -> None:
    async with connected(echo, max_size=10_000) as (client, _, _):
        assert client.compression
        await client.send(b"\x00" * 1_000_000)
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1009


# --------------------------------------------------------------------------- close codes


async def test_close_code_and_reason_from_server() -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.close(4000, "custom reason")
        assert conn.close_code == 4000  # the client echoed the code and reason
        assert conn.close_reason == "custom reason"

    async with connected(handler) as (client, _, _):
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        exc = info.value
        assert (exc.code, exc.reason) == (4000, "custom reason")
        assert (exc.sent_code, exc.sent_reason) == (4000, "custom reason")
        await client.wait_closed(TIMEOUT)
        assert client.close_code == 4000
        assert client.close_reason == "custom reason"


async def test_close_from_client_going_away() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        assert client.close_code is None and client.close_reason is None
        await client.close(1001, "bye")
        assert client.close_code == 1001
        with pytest.raises(ConnectionClosedOK) as info:
            await server_conn.recv()
        assert info.value.code == 1001 and info.value.reason == "bye"
        assert info.value.ok
        assert server_conn.close_code == 1001 and server_conn.close_reason == "bye"


@pytest.mark.parametrize(("code", "reason"), [(1000, "x" * 124), (999, ""), (1006, "")])
async def test_close_with_invalid_arguments_raises(code: int, reason: str) -> None:
    async with connected(echo) as (client, _, _):
        with pytest.raises(LocalProtocolError):
            await client.close(code, reason)
        # Nothing was sent: the connection is still usable.
        await client.send("still open")
        assert await client.recv() == "still open"
        await client.close(1000, "x" * 123)
        assert client.close_code == 1000


async def test_ping_too_long_leaves_no_pending_ping() -> None:
    async with connected(echo) as (client, _, _):
        with pytest.raises(LocalProtocolError):
            client.ping(b"p" * 126)
        assert not client._pings
        assert isinstance(await asyncio.wait_for(client.ping(b"p" * 125), TIMEOUT), float)


async def test_abrupt_disconnect_is_1006() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None and client.transport is not None
        client.transport.abort()
        with pytest.raises(ConnectionClosedError) as info:
            await server_conn.recv()
        assert info.value.code == 1006
        assert server_conn.close_code == 1006


async def test_close_timeout_when_peer_never_answers() -> None:
    async with connected(client_options={"close_timeout": 0.2}, close_timeout=0.2) as (
        client,
        server_conn,
        _,
    ):
        assert server_conn is not None and server_conn.transport is not None
        # The server stops reading: the client's close frame is never answered.
        server_conn.transport.pause_reading()
        await client.close()
        assert client.closed


# --------------------------------------------------------------------------- backpressure


async def test_send_blocks_when_peer_stops_reading() -> None:
    write_limit = 2**16
    chunk = b"x" * 2**16
    async with connected(
        client_options={"compression": None, "max_size": None}, write_limit=write_limit
    ) as (client, server_conn, _):
        assert server_conn is not None and client.transport is not None
        client.transport.pause_reading()
        blocked: asyncio.Task[None] | None = None
        sent = 0
        # The kernel's socket buffers absorb a few MB first; 64 MB is far more.
        for _ in range(1024):
            task = asyncio.create_task(server_conn.send(chunk))
            done, _ = await asyncio.wait({task}, timeout=0.3)
            if not done:
                blocked = task
                break
            sent += 1
        assert blocked is not None, "send() never waited"
        # The transport holds at most one message over the high-water mark.
        assert server_conn.write_buffer_size <= write_limit + len(chunk) + 16
        await asyncio.sleep(0.1)
        assert not blocked.done()
        client.transport.resume_reading()
        for _ in range(sent + 1):
            assert await client.recv() == chunk
        await asyncio.wait_for(blocked, TIMEOUT)
        await server_conn.send("after")
        assert await client.recv() == "after"


async def test_reading_pauses_when_queue_is_full() -> None:
    count = 2000
    async with connected(max_queue=4) as (client, server_conn, _):
        assert server_conn is not None and server_conn.transport is not None
        for i in range(count):
            await client.send(f"{i:04d}" + "." * 1000)
        transport = server_conn.transport
        async with asyncio.timeout(TIMEOUT):
            while transport.is_reading():
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        queued = len(server_conn._queue)
        # Reading stopped long before everything the client sent was buffered.
        assert queued < count
        await asyncio.sleep(0.05)
        assert len(server_conn._queue) == queued
        assert not transport.is_reading()
        for i in range(count):
            message = await server_conn.recv()
            assert isinstance(message, str) and message.startswith(f"{i:04d}")
        assert transport.is_reading()


async def test_reading_pauses_when_the_queue_holds_max_size() -> None:
    # Compressed, a 1 MiB message of zeros takes about 1 KB on the wire:
    # counting messages alone, max_queue of them would hold 16 MiB. The queue
    # is bounded in size too: max_size plus the message that crossed it.
    max_size = 2**20
    count = 40
    message = bytes(max_size)
    async with connected(max_size=max_size, max_queue=16) as (client, server_conn, _):
        assert server_conn is not None and server_conn.transport is not None
        assert client.compression_enabled
        for _ in range(count):
            await client.send(message)
        transport = server_conn.transport
        async with asyncio.timeout(TIMEOUT):
            while transport.is_reading():
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert not transport.is_reading()
        assert server_conn._queue_size <= 2 * max_size
        assert len(server_conn._queue) <= 2
        for _ in range(count):
            assert await server_conn.recv() == message
        assert server_conn._queue_size == 0
        assert transport.is_reading()


async def test_messages_before_an_eof_are_all_delivered_when_parsing_paused() -> None:
    # The peer sends compressed messages (more than one read may decompress)
    # and then its EOF: the EOF waits until every frame before it is parsed.
    max_size = 2**16
    count = 30
    async with connected(max_size=max_size, max_queue=4) as (client, server_conn, _):
        assert server_conn is not None and client.transport is not None
        assert client.protocol is not None
        # All in one write, so that one read of the server holds them all.
        for n in range(count):
            client.protocol.send_text(f"{n:02d}" + "z" * (max_size - 2))
        received: list[str] = []
        # A callback takes the messages at once, so reading never pauses:
        # the EOF is read while frames before it still wait to be parsed.
        server_conn.on_message = received.append  # type: ignore[assignment]
        client.transport.write(b"".join(client.protocol.data_to_send()))
        client.transport.write_eof()
        await asyncio.wait_for(server_conn.wait_closed(), TIMEOUT)
        assert [message[:2] for message in received] == [f"{n:02d}" for n in range(count)]
        assert server_conn.close_code == 1006


def send_raw_pings(conn: wskit.Conn, first: int, count: int) -> None:
    """Queue ``count`` pings numbered from ``first`` (125-byte payloads) without futures."""
    assert conn.protocol is not None
    for i in range(first, first + count):
        conn.protocol.send_ping(f"{i:08d}".encode().ljust(125, b"."))
    conn._write(conn.protocol.data_to_send())


async def flood_pings_until_server_stops_reading(
    client: wskit.Conn, server_conn: wskit.Conn, batches: int = 400
) -> int:
    """Send pings in batches until the server stops reading (or fail); return how many."""
    assert server_conn.transport is not None
    sent = 0
    for _ in range(batches):
        send_raw_pings(client, sent, 500)
        sent += 500
        await asyncio.sleep(0.005)
        if not server_conn.transport.is_reading():
            return sent
    raise AssertionError(f"the server still reads after {sent} pings whose pongs nobody reads")


async def test_reading_pauses_while_pongs_go_unread() -> None:
    write_limit = 2**16
    async with connected(write_limit=write_limit, client_options={"compression": None}) as (
        client,
        server_conn,
        _,
    ):
        assert server_conn is not None and client.transport is not None
        pongs: list[bytes] = []
        client.on_pong = pongs.append
        client.transport.pause_reading()  # the client reads no pong
        await flood_pings_until_server_stops_reading(client, server_conn)
        assert server_conn.transport is not None
        received = server_conn.bytes_received
        await asyncio.sleep(0.2)
        # Paused for good: nothing more is read, and the pongs buffered stay
        # bounded by the limit plus what one read of the socket answers.
        assert not server_conn.transport.is_reading()
        assert server_conn.bytes_received == received
        assert server_conn.write_buffer_size <= write_limit + 256 * 1024
        client.transport.resume_reading()
        async with asyncio.timeout(TIMEOUT):
            while not server_conn.transport.is_reading():
                await asyncio.sleep(0.01)
        # The server reads again and answers every ping, up to one sent now.
        assert await asyncio.wait_for(client.ping(b"final"), TIMEOUT) >= 0
        assert pongs[-1] == b"final" and len(pongs) > 1
        await client.send("still open")
        assert await server_conn.recv() == "still open"


async def read_until(conn: wskit.Conn, last: bytes) -> None:
    while await conn.recv() != last:
        pass


async def test_a_waiting_sender_keeps_reading_and_holds_back_pongs() -> None:
    # The server's handler waits in send() for a peer that reads nothing:
    # reading goes on (no deadlock between two writers) but pongs are held
    # back, only the latest one kept, and sent once the buffer drains.
    write_limit = 2**16
    async with connected(write_limit=write_limit, client_options={"compression": None}) as (
        client,
        server_conn,
        _,
    ):
        assert server_conn is not None and client.transport is not None
        assert server_conn.transport is not None and server_conn.protocol is not None
        pongs: list[bytes] = []
        client.on_pong = pongs.append
        client.transport.pause_reading()
        chunk = b"x" * 2**16
        sender: asyncio.Task[None] | None = None
        for _ in range(1024):
            task = asyncio.create_task(server_conn.send(chunk))
            done, _ = await asyncio.wait({task}, timeout=0.3)
            if not done:
                sender = task
                break
        assert sender is not None, "send() never waited"
        buffered = server_conn.write_buffer_size
        assert server_conn.transport.is_reading()
        send_raw_pings(client, 0, 3)
        async with asyncio.timeout(TIMEOUT):
            while server_conn._held_pong is None or not server_conn._held_pong.startswith(
                b"00000002"
            ):
                await asyncio.sleep(0.01)
        assert not server_conn.protocol.auto_pong
        assert server_conn.write_buffer_size == buffered  # no pong queued
        client.transport.resume_reading()
        reader = asyncio.create_task(read_until(client, b"end"))
        async with asyncio.timeout(TIMEOUT):
            while not pongs:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(sender, TIMEOUT)
        await server_conn.send(b"end")
        await asyncio.wait_for(reader, TIMEOUT)
        assert [pong[:8] for pong in pongs] == [b"00000002"]
        assert server_conn.protocol.auto_pong and server_conn._held_pong is None


# --------------------------------------------------------------------------- attributes


async def test_compression_enabled_toggle() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None
        assert client.compression and client.compression_enabled
        client.compression_enabled = False
        assert not client.compression_enabled
        await client.send("z" * 1000)
        assert await server_conn.recv() == "z" * 1000


# --------------------------------------------------------------------------- on_message


async def test_on_message_gets_every_message_without_recv() -> None:
    async def handler(conn: wskit.Conn) -> None:
        conn.on_message = conn.send_nowait  # an echo in the callback path
        await conn.wait_closed()

    async with connected(handler) as (client, _, _):
        await client.send("text")
        await client.send(b"\x00binary")
        await client.send(["frag", "mented"])  # arrives whole
        await client.send([b"by", b"tes"])
        assert [await client.recv() for _ in range(4)] == [
            "text",
            b"\x00binary",
            "fragmented",
            b"bytes",
        ]


async def test_on_message_takes_over_the_queued_messages_in_order() -> None:
    async with connected() as (client, server, _):
        assert server is not None
        for i in range(3):
            await client.send(f"early {i}")
        await client.send(["half", " of it"])
        await client.ping()  # every frame above has been read by the server
        received: list[Any] = []
        server.on_message = received.append
        assert received == ["early 0", "early 1", "early 2", "half of it"]
        await client.send("late")
        await client.ping()
        assert received[-1] == "late"
        # Off again: recv() reads the queue as before.
        server.on_message = None
        await client.send("to recv")
        assert await server.recv() == "to recv"


async def test_on_message_exception_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Any] = []

    def broken(message: Any) -> None:
        calls.append(message)
        raise ValueError("callback broke")

    async with connected() as (client, server, _):
        assert server is not None
        server.on_message = broken
        await client.send("first")
        await client.send("second")
        with pytest.raises(wskit.ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011
        assert calls == ["first"]  # nothing more reaches a failed callback
        assert "callback broke" in caplog.text
        # The callback is off: what came after it failed is queued for
        # recv(), which then ends with the connection.
        assert server.on_message is None
        left: list[Any] = []
        with pytest.raises(wskit.ConnectionClosed):
            while True:
                left.append(await server.recv())
        assert left in ([], ["second"])


async def test_close_reads_past_a_full_queue_to_the_peers_close() -> None:
    # The server's queue is full and its reading paused (nobody reads); its
    # close() must still read on to the client's close frame rather than wait
    # out close_timeout and abort (which both sides would see as 1006).
    async with connected(max_queue=2, close_timeout=TIMEOUT) as (client, server, _):
        assert server is not None
        for n in range(50):
            await client.send(f"message {n}")
        await asyncio.sleep(0.05)
        assert server._reading_paused  # the reader stopped
        reader = asyncio.ensure_future(client.wait_closed())
        await server.close(1000, "bye")
        await asyncio.wait_for(reader, TIMEOUT)
        assert server.close_code == 1000
        assert client.close_code == 1000
        assert client.close_reason == "bye"


# --------------------------------------------------------------------------- handlers that decide


async def test_auto_pong_off_lets_on_ping_answer_or_not() -> None:
    # The server answers only the pings its handler chooses; the client's
    # pongs arrive in order, so an automatic answer to b"drop" would be seen.
    async def choosy(conn: wskit.Conn) -> None:
        async def on_ping(data: bytes) -> None:
            if data.startswith(b"keep"):
                await conn.pong(data)

        conn.auto_pong = False
        conn.on_ping = on_ping
        await conn.send("ready")
        await conn.wait_closed()

    pongs: list[bytes] = []
    async with connected(choosy, client_options={"on_pong": pongs.append}) as (client, _, _):
        assert await client.recv() == "ready"
        dropped = client.ping(b"drop")
        await asyncio.wait_for(client.ping(b"keep"), TIMEOUT)
        assert pongs == [b"keep"]
        assert dropped.done()  # a pong acknowledges the earlier pings too


async def test_auto_pong_on_again_answers_pings() -> None:
    async with connected() as (client, server_conn, _):
        assert server_conn is not None and server_conn.auto_pong
        server_conn.auto_pong = False
        server_conn.auto_pong = True
        await asyncio.wait_for(client.ping(b"back"), TIMEOUT)


async def test_on_close_chooses_the_reply_to_a_websockets_client() -> None:
    from websockets.asyncio.client import connect as websockets_connect

    closes: list[tuple[int, str]] = []

    async def refuse_politely(conn: wskit.Conn) -> None:
        def on_close(code: int, reason: str) -> tuple[int, str]:
            closes.append((code, reason))
            return 4000, f"seen {code}"

        conn.on_close = on_close
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
        assert (info.value.code, info.value.sent_code) == (1000, 4000)

    async with asyncio.timeout(TIMEOUT), serving(refuse_politely) as pair:
        async with websockets_connect(pair.uri) as ws:
            await ws.close(1000, "done")
        assert (ws.close_code, ws.close_reason) == (4000, "seen 1000")
    assert closes == [(1000, "done")]


async def test_on_close_returning_nothing_echoes_the_peer() -> None:
    async def observer(conn: wskit.Conn) -> None:
        conn.on_close = lambda code, reason: None
        await conn.wait_closed()

    async with connected(observer) as (client, _, _):
        await client.close(4001, "mine")
    assert (client.close_code, client.close_reason) == (4001, "mine")


async def test_on_close_with_an_invalid_code_is_reported_and_echoes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def wrong(conn: wskit.Conn) -> None:
        conn.on_close = lambda code, reason: (1005, "not sendable")
        await conn.wait_closed()

    with caplog.at_level("ERROR", logger="wskit"):
        async with connected(wrong) as (client, _, _):
            await client.close(1000, "bye")
    assert (client.close_code, client.close_reason) == (1000, "bye")
    assert "on_close" in caplog.text or "<lambda>" in caplog.text


async def test_abort_drops_the_connection_without_a_close_frame() -> None:
    from websockets.asyncio.client import connect as websockets_connect
    from websockets.exceptions import ConnectionClosedError as WebSocketsClosedError

    server_side: list[wskit.Conn] = []

    async def dropper(conn: wskit.Conn) -> None:
        server_side.append(conn)
        await conn.recv()
        conn.abort()
        conn.abort()  # harmless twice
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
        assert info.value.code == 1006
        assert info.value.sent_code is None  # no close frame went out

    async with (
        asyncio.timeout(TIMEOUT),
        serving(dropper) as pair,
        websockets_connect(pair.uri) as ws,
    ):
        await ws.send("go")
        with pytest.raises(WebSocketsClosedError):
            await ws.recv()
        assert ws.protocol.close_rcvd is None  # no close frame came
    assert server_side[0].closed
