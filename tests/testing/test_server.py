"""wskit.testing.server: connection handlers run in memory, the whole protocol and no socket."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import wskit
import wskit.testing
from wskit.protocol.http11 import Request, Response
from wskit.testing import MemoryTransport


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        if message == "bye":
            await conn.close(4000, "see you")
            return
        await conn.send(message)


async def test_messages_go_both_ways_on_a_client_conn() -> None:
    async with wskit.testing.connect(echo, "/chat") as conn:
        assert isinstance(conn, wskit.ClientConn)
        await conn.send("hello")
        assert await conn.recv() == "hello"
        await conn.send(b"\x00\xff")
        assert await conn.recv() == b"\x00\xff"
        await conn.send(["frag", "mented"])  # one message in two frames
        assert await conn.recv() == "fragmented"
        latency = await asyncio.wait_for(conn.ping(), 5)
        assert latency >= 0
        await conn.send_json({"a": [1]})
        assert await conn.recv_json() == {"a": [1]}
    assert conn.close_code == 1000


async def test_the_handler_sees_the_request() -> None:
    seen: dict[str, Any] = {}

    async def handler(conn: wskit.ServerConn) -> None:
        seen["path"] = conn.request.path
        seen["target"] = conn.request.target
        seen["token"] = conn.request.headers.get("Authorization")
        seen["host"] = conn.request.headers.get("Host")
        seen["peer"] = conn.remote_address
        await conn.send("ok")

    async with wskit.testing.connect(
        handler, "/room?name=lobby", headers={"Authorization": "Bearer abc"}
    ) as conn:
        assert await conn.recv() == "ok"
    assert seen["path"] == "/room"
    assert seen["target"] == "/room?name=lobby"
    assert seen["token"] == "Bearer abc"
    assert seen["host"] == wskit.testing.HOST
    assert seen["peer"] == conn.local_address


async def test_close_code_and_reason_of_the_handler() -> None:
    async with wskit.testing.connect(echo) as conn:
        await conn.send("bye")
        with pytest.raises(wskit.ConnectionClosed) as closed:
            await conn.recv()
    assert (closed.value.code, closed.value.reason) == (4000, "see you")
    assert conn.close_code == 4000


async def test_a_handler_that_returns_closes_with_1000() -> None:
    async def hello(conn: wskit.Conn) -> None:
        await conn.send("hi")

    async with wskit.testing.connect(hello) as conn:
        assert await conn.recv() == "hi"
        await conn.wait_closed(5)
    assert (conn.close_code, conn.close_reason) == (1000, "")


async def failing(conn: wskit.Conn) -> None:
    await conn.recv()
    raise KeyError("secret")


async def test_a_handler_that_raises_closes_with_1011() -> None:
    async with wskit.testing.connect(failing, raise_server_exceptions=False) as conn:
        await conn.send("go")
        await conn.wait_closed(5)
    assert conn.close_code == 1011
    # The client reads an error id, not the exception's text.
    assert conn.close_reason is not None and "secret" not in conn.close_reason


async def test_the_handlers_exception_is_raised_at_the_end_of_the_block() -> None:
    with pytest.raises(KeyError, match="secret"):
        async with wskit.testing.connect(failing) as conn:
            await conn.send("go")
            await conn.wait_closed(5)
    assert conn.close_code == 1011


async def test_oversize_message_closes_with_1009() -> None:
    options = wskit.ServerOptions(max_size=100)
    async with wskit.testing.connect(echo, server_options=options) as conn:
        await conn.send("x" * 100)
        assert await conn.recv() == "x" * 100
        await conn.send("x" * 101)
        with pytest.raises(wskit.ConnectionClosed) as closed:
            await conn.recv()
    assert closed.value.code == 1009


async def test_deflate_is_negotiated_and_used() -> None:
    async with wskit.testing.connect(echo) as conn:
        assert conn.compression
        assert "permessage-deflate" in (conn.response.headers.get("Sec-WebSocket-Extensions") or "")
        await conn.send("z" * 10_000)
        assert await conn.recv() == "z" * 10_000
        # 10,000 bytes each way, compressed to a few dozen on the wire.
        assert conn.bytes_received < 1000
    async with wskit.testing.connect(echo, compression=None) as conn:
        assert not conn.compression
        await conn.send("z" * 10_000)
        assert await conn.recv() == "z" * 10_000
        assert conn.bytes_received > 10_000


async def test_process_request_can_refuse() -> None:
    def process_request(conn: wskit.ServerConn, request: Request) -> Response | None:
        if request.headers.get("Authorization") != "Bearer good":
            return Response(401, "Unauthorized", wskit.Headers(), b"who are you?")
        return None

    options = wskit.ServerOptions(process_request=process_request)
    with pytest.raises(wskit.HandshakeRejected) as rejected:
        async with wskit.testing.connect(echo, server_options=options):
            pass
    assert (rejected.value.status, rejected.value.body) == (401, b"who are you?")
    headers = {"Authorization": "Bearer good"}
    async with wskit.testing.connect(echo, server_options=options, headers=headers) as conn:
        await conn.send("in")
        assert await conn.recv() == "in"


async def test_subprotocol_and_path_options_of_the_server() -> None:
    async with wskit.testing.serve(echo, subprotocols=["chat"], path="/ws") as server:
        async with server.connect("/ws", subprotocols=["other", "chat"]) as conn:
            assert conn.subprotocol == "chat"
        with pytest.raises(wskit.HandshakeRejected) as rejected:
            await server.connect("/elsewhere")
        assert rejected.value.status == 404
        assert server.counters.handshakes_refused == 1


async def test_one_server_many_clients_and_broadcast() -> None:
    async def listen(conn: wskit.Conn) -> None:
        await conn.wait_closed()

    async with (
        wskit.testing.serve(listen, compression=None) as server,
        server.connect() as alice,
        server.connect() as bob,
    ):
        await alice.ping()  # both handshakes are done on the server too
        await bob.ping()
        assert len(server.connections) == 2
        # The in-memory transport is no socket: broadcast writes through it.
        for conn in server.connections:
            assert isinstance(conn.transport, MemoryTransport)
            assert conn.frame_writer is not None and conn.frame_writer.fd == -1
        assert wskit.broadcast(server.connections, "news") == 2
        assert await alice.recv() == "news"
        assert await bob.recv() == "news"


async def test_a_reader_that_stops_holds_the_sender_back() -> None:
    sent = 0

    async def flood(conn: wskit.Conn) -> None:
        nonlocal sent
        for _ in range(1000):
            await conn.send(b"x" * 10_000)
            sent += 1

    async with wskit.testing.connect(flood, compression=None, max_queue=4) as conn:
        for _ in range(500):  # turns of the event loop, not time: nothing is timed
            await asyncio.sleep(0)
        # The client's queue (4 messages, then reading pauses) and the two
        # write buffers hold what was sent; the sender waits for room.
        held = sent
        assert 4 < held < 30
        for _ in range(1000):
            assert await conn.recv() == b"x" * 10_000
        assert sent == 1000


async def test_no_socket_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    class CountingSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    loop = asyncio.get_running_loop()

    async def no_connection(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("create_connection called")

    monkeypatch.setattr(socket, "socket", CountingSocket)
    monkeypatch.setattr(loop, "create_connection", no_connection)
    monkeypatch.setattr(loop, "create_server", no_connection)
    async with wskit.testing.connect(echo) as conn:
        await conn.send("hi")
        assert await conn.recv() == "hi"
        assert conn.transport is not None and conn.transport.get_extra_info("socket") is None
    assert made == []
