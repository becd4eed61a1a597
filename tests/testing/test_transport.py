"""wskit.testing.transport: in-memory transports with asyncio's flow control, and no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from wskit.testing.transport import CHUNK_SIZE, MemoryTransport, transport_pair


class Recorder(asyncio.Protocol):
    """A protocol that records what its transport calls."""

    def __init__(self) -> None:
        self.transport: MemoryTransport | None = None
        self.chunks: list[bytes] = []
        self.calls: list[Any] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.keep_open_on_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, MemoryTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> bool:
        self.calls.append("eof")
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")

    def resume_writing(self) -> None:
        self.calls.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")
        self.lost.set_result(exc)


async def turns(count: int = 50) -> None:
    """Let the event loop run ``count`` times (delivery takes a turn per chunk)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_bytes_arrive_in_order_in_chunks_on_later_turns() -> None:
    client, server = Recorder(), Recorder()
    client_end, _ = transport_pair(client, server)
    client_end.write(b"a" * (CHUNK_SIZE + 10))
    client_end.write(bytearray(b"bc"))
    assert server.chunks == []  # nothing is delivered inside write()
    await turns()
    assert [len(chunk) for chunk in server.chunks] == [CHUNK_SIZE, 10, 2]
    assert b"".join(server.chunks) == b"a" * (CHUNK_SIZE + 10) + b"bc"


async def test_addresses_and_no_socket() -> None:
    client, server = Recorder(), Recorder()
    client_end, server_end = transport_pair(client, server)
    assert client_end.get_extra_info("peername") == server_end.get_extra_info("sockname")
    assert server_end.get_extra_info("peername") == client_end.get_extra_info("sockname")
    assert client_end.get_extra_info("socket") is None
    assert client.transport is client_end and server.transport is server_end


async def test_a_peer_that_stops_reading_pauses_the_writer() -> None:
    client, server = Recorder(), Recorder()
    client_end, server_end = transport_pair(client, server)
    client_end.set_write_buffer_limits(high=1000)
    assert client_end.get_write_buffer_limits() == (250, 1000)
    server_end.pause_reading()
    assert not server_end.is_reading()
    client_end.write(b"x" * 1001)
    assert client.calls == ["pause_writing"]
    await turns()
    # Held in the writer's buffer, counted there: nothing reached the peer.
    assert server.chunks == []
    assert client_end.get_write_buffer_size() == 1001
    server_end.resume_reading()
    await turns()
    assert client.calls == ["pause_writing", "resume_writing"]
    assert client_end.get_write_buffer_size() == 0
    assert b"".join(server.chunks) == b"x" * 1001


async def test_close_sends_the_buffer_then_eof() -> None:
    client, server = Recorder(), Recorder()
    client_end, _ = transport_pair(client, server)
    client_end.write(b"last words")
    client_end.close()
    client_end.write(b"dropped")  # as asyncio drops writes after close()
    assert client_end.is_closing()
    assert await client.lost is None
    assert b"".join(server.chunks) == b"last words"
    # The server's protocol returned False from eof_received: its side closes too.
    assert await server.lost is None
    assert server.calls == ["eof", "lost"]


async def test_write_eof_half_closes() -> None:
    client, server = Recorder(), Recorder()
    server.keep_open_on_eof = True
    client_end, server_end = transport_pair(client, server)
    assert client_end.can_write_eof()
    client_end.write_eof()
    await turns()
    assert server.calls == ["eof"]
    server_end.write(b"still talking")
    await turns()
    assert client.chunks == [b"still talking"]
    server_end.close()
    assert await client.lost is None
    assert await server.lost is None


async def test_abort_resets_the_peer() -> None:
    client, server = Recorder(), Recorder()
    client_end, server_end = transport_pair(client, server)
    server_end.pause_reading()
    client_end.write(b"never delivered")
    client_end.abort()
    assert client_end.get_write_buffer_size() == 0
    assert await client.lost is None
    assert isinstance(await server.lost, ConnectionResetError)
    assert server.chunks == []


async def test_eof_waits_behind_paused_reading() -> None:
    client, server = Recorder(), Recorder()
    client_end, server_end = transport_pair(client, server)
    server_end.pause_reading()
    client_end.write(b"data")
    client_end.close()
    await turns()
    assert server.calls == [] and not client.lost.done()
    server_end.resume_reading()
    assert await client.lost is None
    assert server.chunks == [b"data"] and server.calls[0] == "eof"
