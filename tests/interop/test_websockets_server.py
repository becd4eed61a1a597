"""The wskit client against the ``websockets`` library's asyncio server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

import wskit
from interop.support import MIB, count_bytes_received, pattern

WsHandler = Callable[[ServerConnection], Coroutine[Any, Any, None]]

MESSAGES: list[str | bytes] = [
    "hello",
    "héllo wörld ☃ 🎉",
    b"\x00\x01\x02\xfe\xff",
    "",
    b"",
    os.urandom(MIB),
    pattern(MIB, binary=False),
]


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@contextlib.asynccontextmanager
async def websockets_server(handler: WsHandler = echo, **options: Any) -> AsyncIterator[str]:
    """Run a ``websockets`` server on a free port; yield its ``ws://`` URI."""
    options.setdefault("max_size", 2 * MIB)  # it limits compressed frames too
    async with ws_serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def extensions_header(conn: wskit.Conn) -> str | None:
    return conn.response_headers.get("Sec-WebSocket-Extensions")


async def assert_echoes(conn: wskit.Conn, messages: Sequence[str | bytes]) -> None:
    for message in messages:
        await conn.send(message)
        answer = await asyncio.wait_for(conn.recv(), 10)
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
        websockets_server(compression=server_compression) as uri,
        wskit.connect(uri, compression=client_compression) as conn,
    ):
        offer = conn.request_headers.get("Sec-WebSocket-Extensions")
        if client_compression:
            assert offer == "permessage-deflate; client_max_window_bits"
        else:
            assert offer is None
        if client_compression and server_compression:
            # websockets' default: 4 KiB windows both ways.
            assert extensions_header(conn) == (
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
            )
            assert conn.compression
        else:
            assert extensions_header(conn) is None
            assert not conn.compression
        await assert_echoes(conn, MESSAGES)
        await conn.close()
    assert conn.close_code == 1000


async def test_compression_is_used_on_the_wire() -> None:
    async def handler(ws: ServerConnection) -> None:
        read = count_bytes_received(ws.protocol, "receive_data")
        assert await ws.recv() == pattern(MIB, binary=True)
        await ws.send(json.dumps(read[0]))
        await ws.send(pattern(MIB, binary=False))
        await ws.wait_closed()

    async with websockets_server(handler) as uri, wskit.connect(uri) as conn:
        read = count_bytes_received(conn)
        await conn.send(pattern(MIB, binary=True))
        server_read = json.loads(await asyncio.wait_for(conn.recv(), 10))
        assert 0 < server_read < MIB // 4
        assert await asyncio.wait_for(conn.recv(), 10) == pattern(MIB, binary=False)
        assert 0 < read[0] < MIB // 4


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (
            ServerPerMessageDeflateFactory(),
            "permessage-deflate",
        ),
        (
            ServerPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=8),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
        ),
        (
            ServerPerMessageDeflateFactory(server_max_window_bits=15, client_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=10",
        ),
        (
            ServerPerMessageDeflateFactory(server_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover",
        ),
        (
            ServerPerMessageDeflateFactory(client_no_context_takeover=True),
            "permessage-deflate; client_no_context_takeover",
        ),
        (
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=11,
                client_max_window_bits=11,
                require_client_max_window_bits=True,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=11; client_max_window_bits=11",
        ),
    ],
    ids=["defaults", "small-windows", "window-10", "server-nct", "client-nct", "all"],
)
async def test_websockets_server_deflate_variants(
    factory: ServerPerMessageDeflateFactory, expected: str
) -> None:
    async with (
        websockets_server(extensions=[factory], compression=None) as uri,
        wskit.connect(uri) as conn,
    ):
        assert extensions_header(conn) == expected
        assert conn.compression
        # Repeating messages exercises (or forbids) context takeover.
        await assert_echoes(
            conn,
            [pattern(50_000, binary=False)] * 3
            + [pattern(70_000, binary=True)] * 2
            + [os.urandom(3000), "short", ""],
        )


@pytest.mark.parametrize(
    ("options", "offer", "expected"),
    [
        (
            wskit.DeflateOptions(server_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
        ),
        (
            wskit.DeflateOptions(client_max_window_bits=9),
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9",
        ),
        (
            wskit.DeflateOptions(client_max_window_bits=8, threshold=0),
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8",
        ),
        (
            wskit.DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=12",
        ),
        (
            wskit.DeflateOptions(compress_level=9, mem_level=9, threshold=0),
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        ),
    ],
    ids=["server-window", "client-window", "client-window-8", "no-context-takeover", "level-9"],
)
async def test_wskit_client_deflate_options(
    options: wskit.DeflateOptions, offer: str, expected: str
) -> None:
    async with websockets_server() as uri, wskit.connect(uri, compression=options) as conn:
        assert conn.request_headers.get("Sec-WebSocket-Extensions") == offer
        assert extensions_header(conn) == expected
        await assert_echoes(
            conn,
            [*[pattern(50_000, binary=False)] * 3, os.urandom(3000), "short", ""],
        )


async def test_fragmented_messages_both_ways() -> None:
    async def handler(ws: ServerConnection) -> None:
        for _ in range(2):
            fragments = [f async for f in ws.recv_streaming()]
            await ws.send(json.dumps([f if isinstance(f, str) else f.hex() for f in fragments]))
        await ws.send(["websockets ", "in ", "pieces"])
        await ws.send([b"\x01", b"\x02\x03"])
        await ws.wait_closed()

    async with websockets_server(handler) as uri, wskit.connect(uri) as conn:
        await conn.send(["frag", "ment", "ed ☃"])
        assert json.loads(await conn.recv()) == ["frag", "ment", "ed ☃"]
        async with conn.message_writer(binary=True) as writer:
            for piece in (b"\x00\x01", b"", b"\xff"):
                await writer.write(piece)
        assert json.loads(await conn.recv()) == ["0001", "", "ff"]
        # websockets ends a message sent from an iterable with an empty frame.
        assert [f async for f in conn.recv_streaming()] == ["websockets ", "in ", "pieces", ""]
        assert await conn.recv() == b"\x01\x02\x03"


async def test_ping_pong_both_ways() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the client pinged us
        latency = await asyncio.wait_for(await ws.ping(b"from websockets"), 5)
        await ws.send(f"pong after {latency:.6f}s")
        await ws.wait_closed()

    pings: list[bytes] = []
    async with websockets_server(handler) as uri, wskit.connect(uri, on_ping=pings.append) as conn:
        latency = await asyncio.wait_for(conn.ping(b"from wskit"), 5)
        assert latency >= 0
        await conn.send("pinged")
        answer = await asyncio.wait_for(conn.recv(), 5)
        assert isinstance(answer, str) and answer.startswith("pong after ")
        assert pings == [b"from websockets"]


async def test_server_closes_with_code_and_reason() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(4001, "server says bye")

    async with websockets_server(handler) as uri:
        conn = await wskit.connect(uri)
        with pytest.raises(wskit.ConnectionClosedError) as info:
            await asyncio.wait_for(conn.recv(), 5)
        await conn.wait_closed(5)
    assert (info.value.code, info.value.reason, info.value.sent_code) == (
        4001,
        "server says bye",
        4001,
    )
    assert (conn.close_code, conn.close_reason) == (4001, "server says bye")


async def test_server_handler_return_and_error_close_codes() -> None:
    async def handler(ws: ServerConnection) -> None:
        if await ws.recv() == "fail":
            raise RuntimeError("boom")

    async with websockets_server(handler) as uri:
        async with wskit.connect(uri) as conn:
            await conn.send("return")
            with pytest.raises(wskit.ConnectionClosedOK):
                await asyncio.wait_for(conn.recv(), 5)
            assert conn.close_code == 1000
        async with wskit.connect(uri) as conn:
            await conn.send("fail")
            with pytest.raises(wskit.ConnectionClosedError):
                await asyncio.wait_for(conn.recv(), 5)
            assert conn.close_code == 1011


async def test_client_closes_with_code_and_reason() -> None:
    seen: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except WsConnectionClosed as exc:
            assert exc.rcvd is not None
            seen.set_result((exc.rcvd.code, exc.rcvd.reason))

    async with websockets_server(handler) as uri:
        conn = await wskit.connect(uri)
        await asyncio.wait_for(conn.close(4002, "client says bye"), 5)
        assert await asyncio.wait_for(seen, 5) == (4002, "client says bye")
    assert conn.closed
    assert conn.close_code == 4002


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], "chat.v1"), (["other"], None)],
)
async def test_subprotocol_negotiation(offered: list[str], chosen: str | None) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(str(ws.subprotocol))
        await ws.wait_closed()

    def select(ws: ServerConnection, offers: Any) -> Any:
        # The server's preference, and no subprotocol rather than a 400.
        return next((p for p in ("chat.v2", "chat.v1") if p in offers), None)

    async with (
        websockets_server(handler, subprotocols=["chat.v2", "chat.v1"]) as uri,
        websockets_server(handler, select_subprotocol=select) as lenient_uri,
    ):
        async with wskit.connect(lenient_uri, subprotocols=offered) as conn:
            assert conn.subprotocol == chosen
            assert conn.response_headers.get("Sec-WebSocket-Protocol") == chosen
            assert await conn.recv() == str(chosen)
        if chosen is None:
            # websockets' default refuses a client that offers none of its own.
            with pytest.raises(wskit.HandshakeRejected) as info:
                await wskit.connect(uri, subprotocols=offered)
            assert info.value.status == 400
        else:
            async with wskit.connect(uri, subprotocols=offered) as conn:
                assert conn.subprotocol == chosen
                assert await conn.recv() == chosen


async def test_origin_rejected_by_websockets() -> None:
    async with websockets_server(origins=["https://good.example"]) as uri:
        async with wskit.connect(uri, origin="https://good.example") as conn:
            await assert_echoes(conn, ["allowed"])
        with pytest.raises(wskit.HandshakeRejected) as info:
            await wskit.connect(uri, origin="https://evil.example")
        assert info.value.status == 403


async def test_redirect_headers_and_path_reach_the_server() -> None:
    requests: list[tuple[str, str | None, str | None]] = []

    def process_request(ws: ServerConnection, request: Any) -> Any:
        requests.append(
            (request.path, request.headers.get("X-Token"), request.headers.get("User-Agent"))
        )
        if request.path.startswith("/old"):
            response = ws.respond(301, "moved\n")
            response.headers["Location"] = "/new?x=1"
            return response
        return None

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(ws.request.path)
        await ws.wait_closed()

    async with (
        websockets_server(handler, process_request=process_request) as uri,
        wskit.connect(
            f"{uri}/old/path", headers={"X-Token": "secret"}, user_agent="wskit-interop/1"
        ) as conn,
    ):
        assert await conn.recv() == "/new?x=1"
    assert requests == [
        ("/old/path", "secret", "wskit-interop/1"),
        ("/new?x=1", "secret", "wskit-interop/1"),
    ]


async def test_keepalive_against_websockets() -> None:
    async def handler(ws: ServerConnection) -> None:
        await asyncio.sleep(0.6)
        await ws.send("still here")
        await ws.wait_closed()

    pongs: list[bytes] = []
    async with (
        websockets_server(handler, ping_interval=0.1, ping_timeout=0.5) as uri,
        wskit.connect(uri, ping_interval=0.1, ping_timeout=0.5, on_pong=pongs.append) as conn,
    ):
        # Both sides ping every 0.1 s and both answer: nobody times out.
        pings: list[bytes] = []
        conn.on_ping = pings.append
        assert await asyncio.wait_for(conn.recv(), 5) == "still here"
        assert len(pongs) >= 3
        assert len(pings) >= 3
    assert conn.close_code == 1000
