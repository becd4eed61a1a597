"""A wskit server against the ``websockets`` library's asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import wskit
from interop.support import MIB, count_bytes_received, pattern

Handler = Callable[[wskit.Conn], Coroutine[Any, Any, None]]

MESSAGES: list[str | bytes] = [
    "hello",
    "héllo wörld ☃ 🎉",
    b"\x00\x01\x02\xfe\xff",
    "",
    b"",
    os.urandom(MIB),
    pattern(MIB, binary=False),
]


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


@contextlib.asynccontextmanager
async def wskit_server(handler: Handler = echo, **options: Any) -> AsyncIterator[str]:
    """Run a wskit server on a free port; yield its ``ws://`` URI."""
    async with wskit.serve(handler, "127.0.0.1", 0, **options) as server:
        yield f"ws://127.0.0.1:{server.port}"


def client(uri: str, **kwargs: Any) -> Any:
    """``websockets`` connect, never through a proxy from the environment."""
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 5)
    # websockets applies max_size to compressed frames too, and 1 MiB of
    # random bytes grows a little when deflated.
    kwargs.setdefault("max_size", 2 * MIB)
    return ws_connect(uri, **kwargs)


def extensions_header(ws: ClientConnection) -> str | None:
    assert ws.response is not None
    return ws.response.headers.get("Sec-WebSocket-Extensions")


async def assert_echoes(ws: ClientConnection, messages: Sequence[str | bytes]) -> None:
    for message in messages:
        await ws.send(message)
        answer = await asyncio.wait_for(ws.recv(), 10)
        assert type(answer) is type(message)
        assert answer == message, f"{len(message)}-item message came back changed"


@pytest.mark.parametrize(
    ("client_compression", "server_compression"),
    [("deflate", "deflate"), (None, "deflate"), ("deflate", None), (None, None)],
    ids=["both", "client-off", "server-off", "none"],
)
async def test_echo_with_and_without_compression(
    client_compression: str | None, server_compression: str | None
) -> None:
    async with (
        wskit_server(compression=server_compression) as uri,
        client(uri, compression=client_compression) as ws,
    ):
        header = extensions_header(ws)
        if client_compression and server_compression:
            assert header is not None
            assert header.split(";")[0].strip() == "permessage-deflate"
        else:
            assert header is None
        await assert_echoes(ws, MESSAGES)
        await ws.close()
    assert ws.close_code == 1000


async def test_compression_is_used_on_the_wire() -> None:
    received: asyncio.Future[tuple[bool, int]] = asyncio.get_running_loop().create_future()

    async def handler(conn: wskit.Conn) -> None:
        counter = count_bytes_received(conn)
        message = await conn.recv()
        assert message == pattern(MIB, binary=False)
        received.set_result((conn.compression, counter[0]))
        await conn.send(pattern(MIB, binary=True))
        await conn.recv()

    async with wskit_server(handler) as uri, client(uri) as ws:
        assert extensions_header(ws) == "permessage-deflate"
        counter = count_bytes_received(ws.protocol, "receive_data")
        await ws.send(pattern(MIB, binary=False))
        compression, server_read = await asyncio.wait_for(received, 10)
        assert compression is True
        # The repetitive payload shrinks a lot: both sides really compressed.
        assert server_read < MIB // 4
        assert await asyncio.wait_for(ws.recv(), 10) == pattern(MIB, binary=True)
        assert 0 < counter[0] < MIB // 4
        await ws.send("done")


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (
            ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=12),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
        ),
        (
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
            "permessage-deflate",
        ),
    ],
    ids=["window-bits", "no-context-takeover", "no-client-window"],
)
async def test_client_deflate_offers(
    factory: ClientPerMessageDeflateFactory, expected: str
) -> None:
    async with wskit_server() as uri, client(uri, extensions=[factory], compression=None) as ws:
        assert extensions_header(ws) == expected
        # Repeating a message exercises (or forbids) context takeover.
        await assert_echoes(ws, [pattern(50_000, binary=False)] * 3 + [b"x" * 5000] * 2)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            wskit.DeflateOptions(server_max_window_bits=9, client_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
        ),
        (
            wskit.DeflateOptions(server_max_window_bits=8),
            "permessage-deflate; server_max_window_bits=8",
        ),
        (
            wskit.DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            wskit.DeflateOptions(compress_level=1, mem_level=1, threshold=0),
            "permessage-deflate",
        ),
    ],
    ids=["window-bits", "window-8", "no-context-takeover", "tiny-memory"],
)
async def test_server_deflate_options(options: wskit.DeflateOptions, expected: str) -> None:
    async with wskit_server(compression=options) as uri, client(uri) as ws:
        assert extensions_header(ws) == expected
        await assert_echoes(
            ws, [*[pattern(50_000, binary=False)] * 3, os.urandom(3000), "short", ""]
        )


async def test_fragmented_messages_both_ways() -> None:
    async def handler(conn: wskit.Conn) -> None:
        for _ in range(2):
            fragments = [f async for f in conn.recv_streaming()]
            await conn.send_json([f if isinstance(f, str) else f.hex() for f in fragments])
        await conn.send(["wskit ", "in ", "pieces"])
        await conn.send(iter([b"\x01", b"\x02\x03", b""]))
        await conn.recv()

    async with wskit_server(handler) as uri, client(uri) as ws:
        # websockets ends a message sent from an iterable with an empty frame.
        await ws.send(["frag", "ment", "ed ☃"])
        assert json.loads(await ws.recv()) == ["frag", "ment", "ed ☃", ""]
        await ws.send([b"\x00\x01", b"", b"\xff"])
        assert json.loads(await ws.recv()) == ["0001", "", "ff", ""]
        assert [f async for f in ws.recv_streaming()] == ["wskit ", "in ", "pieces"]
        assert await ws.recv() == b"\x01\x02\x03"
        await ws.send("done")


async def test_ping_pong_both_ways() -> None:
    pings: list[bytes] = []

    async def handler(conn: wskit.Conn) -> None:
        conn.on_ping = pings.append
        await conn.send("ready")
        await conn.recv()  # the client pinged us
        latency = await asyncio.wait_for(conn.ping(b"from wskit"), 5)
        await conn.send(f"pong after {latency:.6f}s")
        await conn.recv()

    async with wskit_server(handler) as uri, client(uri) as ws:
        assert await ws.recv() == "ready"
        latency = await asyncio.wait_for(await ws.ping(b"from websockets"), 5)
        assert latency >= 0
        assert pings == [b"from websockets"]
        await ws.send("pinged")
        answer = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(answer, str) and answer.startswith("pong after ")
        await ws.send("done")


async def test_server_closes_with_code_and_reason() -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.close(4001, "server says bye")

    async with wskit_server(handler) as uri, client(uri) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "server says bye")
    assert (ws.close_code, ws.close_reason) == (4001, "server says bye")


async def test_handler_return_and_error_close_codes() -> None:
    async def handler(conn: wskit.Conn) -> None:
        if await conn.recv() == "fail":
            raise RuntimeError("boom")

    async with wskit_server(handler) as uri:
        async with client(uri) as ws:
            await ws.send("return")
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1000
        async with client(uri) as ws:
            await ws.send("fail")
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1011


async def test_client_closes_with_code_and_reason() -> None:
    seen: asyncio.Future[tuple[int, str, int | None]] = asyncio.get_running_loop().create_future()

    async def handler(conn: wskit.Conn) -> None:
        try:
            await conn.recv()
        except wskit.ConnectionClosed as exc:
            seen.set_result((exc.code, exc.reason, conn.close_code))

    async with wskit_server(handler) as uri, client(uri) as ws:
        await ws.close(4002, "client says bye")
        assert await asyncio.wait_for(seen, 5) == (4002, "client says bye", 4002)
    # wskit echoed the code, as RFC 6455 section 5.5.1 suggests.
    assert ws.close_code == 4002


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], "chat.v1"), (["other"], None)],
)
async def test_subprotocol_negotiation(offered: list[str], chosen: str | None) -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.send(str(conn.subprotocol))

    async with (
        wskit_server(handler, subprotocols=["chat.v2", "chat.v1"]) as uri,
        client(uri, subprotocols=offered) as ws,
    ):
        assert ws.subprotocol == chosen
        assert await ws.recv() == str(chosen)


async def test_origin_checks() -> None:
    async with wskit_server() as uri:
        port = uri.rsplit(":", 1)[1]
        # The default policy: same host only.
        async with client(uri, origin=f"http://127.0.0.1:{port}") as ws:
            await assert_echoes(ws, ["same origin"])
        with pytest.raises(InvalidStatus) as info:
            async with client(uri, origin="http://evil.example"):
                pass
        assert info.value.response.status_code == 403

    async with wskit_server(origins=["https://good.example"]) as uri:
        async with client(uri, origin="https://good.example") as ws:
            await assert_echoes(ws, ["allowed"])
        for origin in ("https://evil.example", None):
            with pytest.raises(InvalidStatus) as info:
                async with client(uri, origin=origin):
                    pass
            assert info.value.response.status_code == 403


async def test_broadcast_to_clients_with_different_deflate_settings() -> None:
    joined: list[wskit.Conn] = []
    everyone_in = asyncio.Event()

    async def handler(conn: wskit.Conn) -> None:
        joined.append(conn)
        if len(joined) == len(settings):
            everyone_in.set()
        await conn.recv()

    settings: list[dict[str, Any]] = [
        {},
        {"compression": None},
        {
            "compression": None,
            "extensions": [
                ClientPerMessageDeflateFactory(
                    server_no_context_takeover=True, client_no_context_takeover=True
                )
            ],
        },
        {
            "compression": None,
            "extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=9)],
        },
    ]
    messages: list[str | bytes] = [
        pattern(200_000, binary=False),
        pattern(200_000, binary=False),
        os.urandom(5000),
        "tiny",
    ]
    async with wskit_server(handler) as uri, contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(uri, **kw)) for kw in settings]
        await asyncio.wait_for(everyone_in.wait(), 5)
        for message in messages:
            assert wskit.broadcast(joined, message) == len(settings)
        prepared = wskit.PreparedMessage(pattern(100_000, binary=True))
        assert wskit.broadcast(joined, prepared) == len(settings)
        for ws in clients:
            for message in [*messages, prepared.data]:
                assert await asyncio.wait_for(ws.recv(), 10) == message
            await ws.send("done")


async def test_message_over_max_size_closes_with_1009() -> None:
    async with wskit_server(max_size=1000) as uri, client(uri) as ws:
        await assert_echoes(ws, ["x" * 1000])
        await ws.send("x" * 1001)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1009


async def test_control_frames_inside_a_fragmented_message() -> None:
    async def handler(conn: wskit.Conn) -> None:
        async with conn.message_writer() as writer:
            await writer.write("first ")
            await writer.write("half, ")
            # The client pings between our fragments, then tells us to go on.
            assert await conn.recv() == "go on"
            latency = await asyncio.wait_for(conn.ping(b"mid-message"), 5)
            assert latency >= 0
            await writer.write("second half")
        await conn.recv()

    async with wskit_server(handler) as uri, client(uri) as ws:
        fragments = ws.recv_streaming()
        assert await anext(fragments) == "first "
        # Our pong goes out between wskit's frames as well.
        await asyncio.wait_for(await ws.ping(b"between fragments"), 5)
        await ws.send("go on")
        assert [f async for f in fragments] == ["half, ", "second half"]
        await ws.send("done")


async def test_server_shutdown_closes_clients_with_1001() -> None:
    started = asyncio.Event()

    async def handler(conn: wskit.Conn) -> None:
        started.set()
        async for message in conn:
            await conn.send(message)

    server = await wskit.serve(handler, "127.0.0.1", 0)
    try:
        async with client(f"ws://127.0.0.1:{server.port}") as ws:
            await asyncio.wait_for(started.wait(), 5)
            server.close()
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 5)
            assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


@pytest.mark.parametrize(
    "reason", ["", "é" * 61, "x" * 123], ids=["empty", "multibyte-122-bytes", "123-bytes"]
)
async def test_close_reasons_of_every_length(reason: str) -> None:
    seen: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(conn: wskit.Conn) -> None:
        try:
            await conn.recv()
        except wskit.ConnectionClosed as exc:
            seen.set_result((exc.code, exc.reason))
        await conn.close(4003, reason)

    async with wskit_server(handler) as uri:
        async with client(uri) as ws:
            await ws.close(4003, reason)
        assert await asyncio.wait_for(seen, 5) == (4003, reason)

    async def closer(conn: wskit.Conn) -> None:
        await conn.close(4004, reason)

    async with wskit_server(closer) as uri, client(uri) as ws:
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
        assert (ws.close_code, ws.close_reason) == (4004, reason)


async def test_compression_switched_off_mid_connection() -> None:
    async def handler(conn: wskit.Conn) -> None:
        for enabled in (True, False, True):
            conn.compression_enabled = enabled
            await conn.send(pattern(MIB, binary=False))
            await conn.recv()  # one message at a time, so the client can count bytes

    async with wskit_server(handler) as uri, client(uri) as ws:
        wire = count_bytes_received(ws.protocol, "receive_data")
        sizes = []
        for _ in range(3):
            before = wire[0]
            assert await asyncio.wait_for(ws.recv(), 10) == pattern(MIB, binary=False)
            sizes.append(wire[0] - before)
            await ws.send("next")
        assert sizes[0] < MIB // 4
        assert sizes[1] > MIB
        assert sizes[2] < MIB // 4
