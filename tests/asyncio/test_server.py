"""The asyncio server over real sockets: handlers, shutdown, handshake hooks, broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

import wskit
from wskit import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
    Headers,
    Request,
    Response,
)
from wskit.protocol.connection import Connection, Side
from wskit.protocol.handshake import reject

TIMEOUT = 10


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


class Parked:
    """A handler that hands each server conn to the test and waits for its end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[wskit.Conn] = asyncio.Queue()

    async def __call__(self, conn: wskit.Conn) -> None:
        await self.queue.put(conn)
        await conn.wait_closed()

    async def get(self) -> wskit.Conn:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[wskit.Conn], Awaitable[Any]], **options: Any
) -> AsyncIterator[wskit.Server]:
    options.setdefault("close_timeout", 2)
    async with asyncio.timeout(TIMEOUT), wskit.serve(handler, "127.0.0.1", 0, **options) as server:
        yield server


def uri(server: wskit.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


# --------------------------------------------------------------------------- handler outcome


async def test_handler_return_closes_with_1000() -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.send("bye")

    async with serving(handler) as server, wskit.connect(uri(server)) as client:
        assert await client.recv() == "bye"
        with pytest.raises(ConnectionClosedOK) as info:
            await client.recv()
        assert info.value.code == 1000
        await client.wait_closed(TIMEOUT)
        assert client.close_code == 1000


@pytest.mark.parametrize("debug", [False, True])
async def test_handler_exception_closes_with_1011(
    debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: wskit.Conn) -> None:
        raise ValueError("something broke")

    async with serving(handler, debug=debug) as server, wskit.connect(uri(server)) as client:
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011
        # The client reads an error id; the log has the traceback under the same id.
        error_id = re.fullmatch(r".*\(error ([0-9a-f]{8})\)", info.value.reason)
        assert error_id is not None
        if debug:
            assert info.value.reason.startswith("ValueError: something broke (error ")
        else:
            assert info.value.reason.startswith("Internal server error (error ")
            assert "broke" not in info.value.reason
        [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert error_id.group(1) in record.getMessage()
        assert record.exc_info is not None and record.exc_info[0] is ValueError
        assert server.counters.handler_errors == 1


async def test_handler_ended_by_client_close_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = asyncio.Event()

    async def handler(conn: wskit.Conn) -> None:
        try:
            while True:  # a loop without `async for`: recv() raises at the end
                await conn.send(await conn.recv())
        finally:
            done.set()

    caplog.set_level(logging.DEBUG, logger="wskit")
    async with serving(handler) as server:
        async with wskit.connect(uri(server)) as client:
            await client.send("hi")
            assert await client.recv() == "hi"
        assert client.close_code == 1000
        await asyncio.wait_for(done.wait(), TIMEOUT)
        await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_handler_raising_connection_closed_while_open_is_an_error() -> None:
    async def handler(conn: wskit.Conn) -> None:
        # As if another connection had closed: this one is still open.
        raise ConnectionClosedOK(1000, "", 1000, "")

    async with serving(handler) as server, wskit.connect(uri(server)) as client:
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011


async def test_handler_exception_long_message_is_truncated() -> None:
    async def handler(conn: wskit.Conn) -> None:
        raise ValueError("é" * 200)

    async with serving(handler, debug=True) as server, wskit.connect(uri(server)) as client:
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011
        assert info.value.reason.startswith("ValueError: éé")
        assert len(info.value.reason.encode()) <= 123


async def test_handler_sees_request_and_addresses() -> None:
    parked = Parked()
    async with serving(parked) as server:
        async with wskit.connect(uri(server, "/chat?room=1")) as client:
            conn = await parked.get()
            assert conn.request is not None
            assert conn.request.target == "/chat?room=1"
            assert conn.request.path == "/chat"
            assert conn.response is not None and conn.response.status == 101
            assert client.response is not None and client.response.status == 101
            assert client.request is not None and client.request.target == "/chat?room=1"
            assert conn.request_headers["Host"] == f"127.0.0.1:{server.port}"
            assert client.remote_address[:2] == ("127.0.0.1", server.port)
            assert conn.local_address[:2] == ("127.0.0.1", server.port)
            assert tuple(conn.remote_address[:2]) == tuple(client.local_address[:2])
            assert conn in server.connections
        await conn.wait_closed(TIMEOUT)
        assert conn not in server.connections


# --------------------------------------------------------------------------- shutdown


async def test_server_close_sends_1001_to_clients() -> None:
    closes: list[tuple[int, str]] = []
    async with asyncio.timeout(TIMEOUT):
        server = await wskit.serve(echo, "127.0.0.1", 0, close_timeout=2)
        port = server.port
        clients = [
            await wskit.connect(
                f"ws://127.0.0.1:{port}/",
                on_close=lambda code, reason: closes.append((code, reason)),
            )
            for _ in range(3)
        ]
        for client in clients:
            await client.send("ping")
            assert await client.recv() == "ping"
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        for client in clients:
            with pytest.raises(ConnectionClosedOK) as info:
                await client.recv()
            assert info.value.code == 1001
            await client.wait_closed(5)
            assert client.close_code == 1001
        assert closes == [(1001, "server shutting down")] * 3
        assert not server.connections
        # No longer accepting.
        with pytest.raises(OSError):
            await wskit.connect(f"ws://127.0.0.1:{port}/")


async def test_server_close_with_stubborn_handler_is_bounded() -> None:
    async def stubborn(conn: wskit.Conn) -> None:
        # Ignores the close and never returns on its own.
        with contextlib.suppress(wskit.ConnectionClosed):
            await conn.recv()
        await asyncio.sleep(3600)

    async with asyncio.timeout(TIMEOUT):
        server = await wskit.serve(stubborn, "127.0.0.1", 0, close_timeout=0.2)
        client = await wskit.connect(uri(server))
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionClosedOK):
            await client.recv()
        for conn in list(server._connections):
            if conn.handler_task is not None:
                conn.handler_task.cancel()


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "partial"])
async def test_handshake_timeout_aborts_silent_client(sent: bytes) -> None:
    async with serving(echo, handshake_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)  # a request that never ends, or nothing at all
        try:
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
        except ConnectionResetError:
            data = b""
        assert data == b""
        writer.close()
        assert not server.connections


async def test_bad_request_gets_http_error() -> None:
    async with serving(echo) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # no Upgrade
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert data.startswith(b"HTTP/1.1 4")
        writer.close()


# --------------------------------------------------------------------------- process_request


async def test_process_request_refuses_with_response() -> None:
    seen: list[str] = []

    def hook(conn: wskit.ServerConn, request: Request) -> Response | None:
        seen.append(request.path)
        if request.path == "/private":
            return reject(403, "go away", [("X-Reason", "private")])
        return None

    async with serving(echo, process_request=hook) as server:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server, "/private"))
        assert info.value.status == 403
        assert info.value.body == b"go away"
        assert info.value.headers.get("X-Reason") == "private"
        async with wskit.connect(uri(server, "/public")) as client:
            await client.send("ok")
            assert await client.recv() == "ok"
        assert seen == ["/private", "/public"]


async def test_async_process_request() -> None:
    async def hook(conn: wskit.ServerConn, request: Request) -> Response | None:
        await asyncio.sleep(0.01)
        if request.headers.get("Authorization") != "Bearer token":
            return Response(401, "Unauthorized", Headers([("WWW-Authenticate", "Bearer")]), b"no")
        return None

    async with serving(echo, process_request=hook) as server:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server))
        assert info.value.status == 401
        assert info.value.body == b"no"
        async with wskit.connect(uri(server), headers={"Authorization": "Bearer token"}) as client:
            await client.send("authorized")
            assert await client.recv() == "authorized"


async def test_process_request_exception_is_500() -> None:
    def hook(conn: wskit.ServerConn, request: Request) -> Response | None:
        raise RuntimeError("hook failed")

    async with serving(echo, process_request=hook) as server:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server))
        assert info.value.status == 500
        assert re.fullmatch(rb"Internal server error \(error [0-9a-f]{8}\)\n", info.value.body)
        assert server.counters.handler_errors == 1


# --------------------------------------------------------------------------- auto_pong


@pytest.mark.parametrize("auto_pong", [True, False])
async def test_serve_auto_pong_option(auto_pong: bool) -> None:
    seen: list[bool] = []

    async def handler(conn: wskit.Conn) -> None:
        seen.append(conn.auto_pong)
        async for message in conn:
            await conn.send(message)

    async with (
        serving(handler, auto_pong=auto_pong) as server,
        wskit.connect(uri(server)) as client,
    ):
        pong = client.ping(b"p1")
        await client.send("after the ping")
        # The server read the ping before the message it echoes: a pong it
        # answered arrived before the echo.
        assert await client.recv() == "after the ping"
        assert pong.done() is auto_pong
        pong.cancel()
    assert seen == [auto_pong]


# --------------------------------------------------------------------------- upgrade_error


def json_refusal(request: Request, status: int, reason: str) -> Response:
    """An ``upgrade_error`` hook answering JSON, as goyave does."""
    body = json.dumps({"error": reason, "path": request.path})
    return reject(status, body, [("Content-Type", "application/json")])


async def test_upgrade_error_shapes_the_refusals_of_serve() -> None:
    def hook(conn: wskit.ServerConn, request: Request) -> Response | None:
        if request.path == "/crash":
            raise KeyError("the database password")
        if request.path == "/teapot":
            return reject(418, "short and stout")
        return None

    async with serving(
        echo, process_request=hook, origins=["https://good.example"], upgrade_error=json_refusal
    ) as server:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server, "/x"), origin="https://evil.example")
        assert info.value.status == 403
        assert info.value.headers.get("Content-Type") == "application/json"
        assert json.loads(info.value.body) == {"error": "Origin not allowed", "path": "/x"}
        # A failing process_request: the hook is told the error id, not the secret.
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server, "/crash"), origin="https://good.example")
        assert info.value.status == 500
        error = json.loads(info.value.body)["error"]
        assert re.fullmatch(r"Internal server error \(error [0-9a-f]{8}\)", error)
        # What process_request answers itself goes out as it is.
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server, "/teapot"), origin="https://good.example")
        assert (info.value.status, info.value.body) == (418, b"short and stout")
        # A bad upgrade keeps the header its status needs.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /v HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 426 ")
        assert b"\r\nSec-WebSocket-Version: 13" in head
        assert json.loads(body)["path"] == "/v"


async def test_upgrade_error_that_fails_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: Request, status: int, reason: str) -> Response:
        raise ValueError("hook bug")

    async with serving(echo, path="/ws", upgrade_error=broken) as server:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server, "/elsewhere"))
    assert info.value.status == 404
    assert info.value.body == b"No WebSocket endpoint at /elsewhere\n"
    assert any("upgrade_error" in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------- origin


async def test_origin_default_same_host() -> None:
    async with serving(echo) as server:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(uri(server), origin="https://evil.example")
        assert info.value.status == 403
        async with wskit.connect(uri(server), origin=f"http://127.0.0.1:{server.port}") as client:
            await client.send("same host")
            assert await client.recv() == "same host"
        # No Origin at all: not a browser, allowed.
        async with wskit.connect(uri(server)) as client:
            await client.send("no origin")
            assert await client.recv() == "no origin"


async def test_origins_allow_list() -> None:
    async with serving(echo, origins=["https://good.example", None]) as server:
        async with wskit.connect(uri(server), origin="https://good.example") as client:
            await client.send("good")
            assert await client.recv() == "good"
        async with wskit.connect(uri(server)) as client:
            await client.send("none")
            assert await client.recv() == "none"
        for origin in ("https://evil.example", f"http://127.0.0.1:{server.port}"):
            with pytest.raises(HandshakeRejected) as info:
                await wskit.connect(uri(server), origin=origin)
            assert info.value.status == 403


async def test_check_origin_callback() -> None:
    def check(request: Request) -> bool:
        return request.headers.get("Origin", "").endswith(".trusted.example")

    async with serving(echo, check_origin=check) as server:
        async with wskit.connect(uri(server), origin="https://app.trusted.example"):
            pass
        with pytest.raises(HandshakeRejected):
            await wskit.connect(uri(server), origin="https://other.example")


# --------------------------------------------------------------------------- subprotocols


@pytest.mark.parametrize(
    ("server_list", "client_list", "expected"),
    [
        (["chat", "superchat"], ["superchat", "chat"], "chat"),
        (["chat", "superchat"], ["superchat"], "superchat"),
        (["chat"], ["other"], None),
        (["chat"], [], None),
        ([], ["chat"], None),
    ],
)
async def test_subprotocol_selection(
    server_list: list[str], client_list: list[str], expected: str | None
) -> None:
    parked = Parked()
    async with (
        serving(parked, subprotocols=server_list) as server,
        wskit.connect(uri(server), subprotocols=client_list) as client,
    ):
        conn = await parked.get()
        assert client.subprotocol == expected
        assert conn.subprotocol == expected


async def test_select_subprotocol_hook() -> None:
    def select(offered: Sequence[str], supported: Sequence[str]) -> str | None:
        return offered[-1] if offered else None

    parked = Parked()
    async with (
        serving(parked, subprotocols=["a", "b"], select_subprotocol=select) as server,
        wskit.connect(uri(server), subprotocols=["a", "b", "c"]) as client,
    ):
        conn = await parked.get()
        assert client.subprotocol == conn.subprotocol == "c"


# --------------------------------------------------------------------------- extra headers


async def test_extra_headers() -> None:
    async with (
        serving(echo, extra_headers=[("Set-Cookie", "session=abc"), ("X-Extra", "1")]) as server,
        wskit.connect(uri(server)) as client,
    ):
        assert client.response_headers.get_all("Set-Cookie") == ["session=abc"]
        assert client.response_headers["x-extra"] == "1"
        assert client.response_headers["Server"] == "wskit"


async def test_extra_headers_callable_and_server_header() -> None:
    def extra(request: Request) -> list[tuple[str, str]]:
        return [("Set-Cookie", f"path={request.path}")]

    async with (
        serving(echo, extra_headers=extra, server_header=None) as server,
        wskit.connect(uri(server, "/room")) as client,
    ):
        assert client.response_headers["Set-Cookie"] == "path=/room"
        assert "Server" not in client.response_headers


# --------------------------------------------------------------------------- broadcast


@contextlib.asynccontextmanager
async def many_clients(
    n: int, **server_options: Any
) -> AsyncIterator[tuple[list[wskit.ClientConn], list[wskit.Conn]]]:
    """``n`` clients and their server conns, in the same order."""
    parked = Parked()
    async with serving(parked, **server_options) as server, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(wskit.connect(uri(server), close_timeout=1))
            for _ in range(n)
        ]
        by_address = {}
        for _ in range(n):
            conn = await parked.get()
            by_address[tuple(conn.remote_address[:2])] = conn
        yield clients, [by_address[tuple(c.local_address[:2])] for c in clients]


async def test_broadcast_to_all() -> None:
    async with many_clients(5) as (clients, conns):
        assert wskit.broadcast(conns, "hello all") == 5
        assert wskit.broadcast(conns, b"\x00\x01") == 5
        message = wskit.PreparedMessage("prepared " * 50)
        assert wskit.broadcast(conns, message) == 5
        for client in clients:
            assert await client.recv() == "hello all"
            assert await client.recv() == b"\x00\x01"
            assert await client.recv() == "prepared " * 50


async def test_broadcast_compressed_no_context_takeover() -> None:
    options = wskit.DeflateOptions(server_no_context_takeover=True)
    async with many_clients(3, compression=options) as (clients, conns):
        assert all(conn.compression for conn in conns)
        text = "shared compressed frame " * 20
        for _ in range(2):
            assert wskit.broadcast(conns, text) == 3
        for client in clients:
            assert await client.recv() == text
            assert await client.recv() == text


async def test_broadcast_skips_closed_and_busy() -> None:
    async with many_clients(4) as (clients, conns):
        await clients[0].close()
        await conns[0].wait_closed(TIMEOUT)
        assert wskit.broadcast(conns, "to the living") == 3
        async with conns[1].message_writer() as writer:
            await writer.write("part 1 ")
            await writer.write("part 2")  # "part 1 " is on the wire
            # conns[1] is in the middle of a message: it is skipped.
            assert wskit.broadcast(conns, "second") == 2
        for client in clients[2:]:
            assert await client.recv() == "to the living"
            assert await client.recv() == "second"
        assert await clients[1].recv() == "to the living"
        assert await clients[1].recv() == "part 1 part 2"


async def test_broadcast_skips_a_connection_whose_close_frame_went() -> None:
    async with many_clients(3) as (clients, conns):
        # The client of conns[0] does not read, so the closing handshake
        # stays half done: the transport is open, the close frame sent.
        assert clients[0].transport is not None
        clients[0].transport.pause_reading()
        closing = asyncio.create_task(conns[0].close(1001, "going away"))
        await asyncio.sleep(0.05)
        assert not closing.done() and conns[0].transport is not None
        assert not conns[0].transport.is_closing()
        assert wskit.broadcast(conns, "not to the closing one") == 2
        # The peer closing first is the same.
        await clients[1].close()
        assert wskit.broadcast(conns, "only to the last") == 1
        assert await clients[2].recv() == "not to the closing one"
        assert await clients[2].recv() == "only to the last"
        clients[0].transport.resume_reading()
        with pytest.raises(wskit.ConnectionClosedOK):
            await clients[0].recv()
        await closing


async def test_broadcast_max_buffer_skips_stalled_client() -> None:
    max_buffer = 2**18
    chunk = b"b" * 2**16
    async with many_clients(3, compression=None, max_size=None) as (clients, conns):
        stalled_client, stalled = clients[0], conns[0]
        assert stalled_client.transport is not None
        stalled_client.transport.pause_reading()

        received = [0, 0, 0]

        async def read(i: int) -> None:
            async for message in clients[i]:
                if message == "end":
                    return
                received[i] += 1

        readers = [asyncio.create_task(read(i)) for i in (1, 2)]
        expected = [0, 0, 0]
        for _ in range(2000):  # about 128 MB at most: far beyond socket buffers
            will_send = [c.write_buffer_size <= max_buffer for c in conns]
            count = wskit.broadcast(conns, chunk, max_buffer=max_buffer)
            assert count == sum(will_send)
            expected = [e + w for e, w in zip(expected, will_send, strict=True)]
            if stalled.write_buffer_size > max_buffer:
                break
            await asyncio.sleep(0.001)
        assert stalled.write_buffer_size > max_buffer, "the stalled client never backed up"
        # Its buffer stays bounded: nothing more is written to it, while the
        # others still get every message their buffers have room for.
        size = stalled.write_buffer_size
        for _ in range(10):
            await asyncio.sleep(0.002)
            will_send = [c.write_buffer_size <= max_buffer for c in conns]
            assert not will_send[0]
            assert wskit.broadcast(conns, chunk, max_buffer=max_buffer) == sum(will_send)
            expected = [e + w for e, w in zip(expected, will_send, strict=True)]
        assert stalled.write_buffer_size <= size
        assert size <= max_buffer + len(chunk) + 16
        # The others keep receiving.
        for conn in conns[1:]:
            async with asyncio.timeout(TIMEOUT):
                while conn.write_buffer_size > max_buffer:
                    await asyncio.sleep(0.005)
        assert wskit.broadcast(conns, "end", max_buffer=max_buffer) == 2
        await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT)
        assert received[1:] == expected[1:]
        assert expected[0] < expected[1]
        stalled_client.transport.abort()


async def test_a_slow_process_request_does_not_buffer_what_the_client_streams() -> None:
    # While an async hook decides (a database lookup), what the client sends
    # stays in the socket: TCP pushes back instead of the server buffering it.
    release = asyncio.Event()
    seen: list[wskit.ServerConn] = []

    async def hook(conn: wskit.ServerConn, request: Request) -> Response | None:
        seen.append(conn)
        await release.wait()
        return None

    parked = Parked()
    async with serving(parked, process_request=hook) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        client = Connection(Side.CLIENT)
        text = "x" * 2**16
        client.send_text(text)
        frame = b"".join(client.data_to_send())
        sent = 0
        while sent < 2**26:  # 64 MiB: far more than the socket buffers hold
            writer.write(frame)
            sent += len(frame)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break
        else:
            pytest.fail("the server read 64 MiB while its hook was deciding")
        (conn,) = seen
        assert len(conn._pending) <= 2**18 + len(frame)
        release.set()
        server_conn = await parked.get()
        # What was sent meanwhile arrives intact once the hook lets it in.
        assert await asyncio.wait_for(server_conn.recv(), TIMEOUT) == text
        assert await asyncio.wait_for(server_conn.recv(), TIMEOUT) == text
        writer.transport.abort()


def test_server_options_given_overrides_the_fields_of_options() -> None:
    assert wskit.ServerOptions.given(None, {}) == wskit.ServerOptions()
    base = wskit.ServerOptions(max_size=10, max_queue=3)
    assert wskit.ServerOptions.given(base, {}) is base
    merged = wskit.ServerOptions.given(base, {"max_queue": 5})
    assert (merged.max_size, merged.max_queue) == (10, 5)
    assert (base.max_size, base.max_queue) == (10, 3)
    assert wskit.ServerOptions.given(None, {"max_size": 7}).max_size == 7
    with pytest.raises(ValueError, match="compression"):
        wskit.ServerOptions.given(None, {"compression": "gzip"})
    with pytest.raises(ValueError, match="compression"):
        wskit.ServerOptions.given(base, {"compression": "gzip"})
