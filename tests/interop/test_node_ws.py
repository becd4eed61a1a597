"""wskit against the Node.js ``ws`` library, as server and as client.

The node side runs ``tests/peers/ws_client.mjs`` or ``tests/peers/ws_server.mjs``
(JSON commands on stdin, JSON events on stdout; see :mod:`interop.support`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import pytest

import wskit
from interop.support import MIB, NodePeer, NodePeerFactory, count_bytes_received, pattern, sha256

Handler = Callable[[wskit.Conn], Coroutine[Any, Any, None]]


@contextlib.asynccontextmanager
async def wskit_server(handler: Handler, **options: Any) -> AsyncIterator[str]:
    options.setdefault("max_size", 2 * MIB)
    async with wskit.serve(handler, "127.0.0.1", 0, **options) as server:
        yield f"ws://127.0.0.1:{server.port}/"


def assert_message(event: dict[str, Any], expected: str | bytes) -> None:
    assert event["binary"] is isinstance(expected, bytes), event
    assert event["length"] == len(expected.encode() if isinstance(expected, str) else expected)
    assert event["sha256"] == sha256(expected), event


# --------------------------------------------------------------------------- wskit server


class Recorder:
    """A wskit server handler that echoes and remembers what it got."""

    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.offers: list[str | None] = []
        self.wire: list[int] = []
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.error: wskit.ConnectionClosed | None = None

    async def __call__(self, conn: wskit.Conn) -> None:
        self.offers.append(conn.request_headers.get("Sec-WebSocket-Extensions"))
        self.wire = count_bytes_received(conn)
        try:
            async for message in conn:
                self.received.append(message)
                await conn.send(message)
        except wskit.ConnectionClosed as exc:
            # Iteration ends quietly only on a normal closure.
            self.error = exc
        finally:
            code = conn.close_code
            self.closed.set_result((code if code is not None else -1, conn.close_reason or ""))


@pytest.mark.parametrize(
    ("client_deflate", "server_compression"),
    [(True, "deflate"), (False, "deflate"), (True, None)],
    ids=["deflate", "client-off", "server-off"],
)
async def test_ws_client_echo(
    node_peer: NodePeerFactory, client_deflate: bool, server_compression: str | None
) -> None:
    recorder = Recorder()
    async with wskit_server(recorder, compression=server_compression) as uri:
        peer = await node_peer(
            "ws_client.mjs", uri, json.dumps({"perMessageDeflate": client_deflate})
        )
        opened = await peer.event("open")
        negotiated = client_deflate and server_compression is not None
        assert opened["extensions"] == ("permessage-deflate" if negotiated else "")
        assert recorder.offers == [
            "permessage-deflate; client_max_window_bits" if client_deflate else None
        ]

        small: list[str | bytes] = ["hello ☃", b"\x00\x01\xfe\xff", "", b""]
        for message in small:
            if isinstance(message, str):
                peer.send("send", text=message)
            else:
                peer.send("send", binary=True, hex=message.hex())
            assert_message(await peer.event("message"), message)

        for binary in (True, False):
            before = recorder.wire[0]
            peer.send("sendPattern", size=MIB, binary=binary)
            event = await peer.event("message")
            assert_message(event, pattern(MIB, binary=binary))
            if negotiated:
                # The repetitive megabyte was compressed both ways.
                assert recorder.wire[0] - before < MIB // 4
                assert event["wireBytesRead"] < 2 * (MIB // 4)

        peer.send("fragments", parts=["frag", "ment", "ed"], binary=False)
        assert (await peer.event("message"))["data"] == "fragmented"

        expected = [*small, pattern(MIB, binary=True), pattern(MIB, binary=False), "fragmented"]
        assert recorder.received == expected

        peer.send("close", code=4002, reason="client says bye")
        closed = await peer.event("close")
        assert await asyncio.wait_for(recorder.closed, 5) == (4002, "client says bye")
        assert isinstance(recorder.error, wskit.ConnectionClosedError)
        # wskit echoes the code of the client's close frame.
        assert closed["code"] == 4002
        assert await peer.wait() == 0


async def test_ws_client_server_closes_and_pings(node_peer: NodePeerFactory) -> None:
    latencies: list[float] = []

    async def handler(conn: wskit.Conn) -> None:
        pings: list[bytes] = []
        conn.on_ping = pings.append
        latencies.append(await asyncio.wait_for(conn.ping(b"wskit ping"), 5))
        await conn.send("pinged")
        assert await conn.recv() == "your turn"
        # The client's ping was answered before its next message arrived.
        assert pings == [b"\x01\x02\x03"]
        await conn.close(4001, "server says bye")

    async with wskit_server(handler) as uri:
        peer = await node_peer("ws_client.mjs", uri, "{}")
        assert (await peer.event("ping"))["hex"] == b"wskit ping".hex()
        assert (await peer.event("message"))["data"] == "pinged"
        assert len(latencies) == 1
        peer.send("ping", hex="010203")
        assert (await peer.event("pong"))["hex"] == "010203"
        peer.send("send", text="your turn")
        closed = await peer.event("close")
        assert (closed["code"], closed["reason"]) == (4001, "server says bye")


async def test_ws_client_handler_return_closes_1000(node_peer: NodePeerFactory) -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.send("bye")

    async with wskit_server(handler) as uri:
        peer = await node_peer("ws_client.mjs", uri, '{"perMessageDeflate": true}')
        assert (await peer.event("message"))["data"] == "bye"
        assert (await peer.event("close"))["code"] == 1000


# --------------------------------------------------------------------------- ws server


async def start_ws_server(
    node_peer: NodePeerFactory, **configs: Any
) -> tuple[NodePeer, dict[str, str]]:
    peer = await node_peer("ws_server.mjs", json.dumps(configs))
    ready = await peer.event("ready")
    uris = {name: f"ws://127.0.0.1:{port}/" for name, port in ready["ports"].items()}
    return peer, uris


async def assert_echoes(conn: wskit.Conn, messages: Sequence[str | bytes]) -> None:
    for message in messages:
        await conn.send(message)
        answer = await asyncio.wait_for(conn.recv(), 10)
        assert type(answer) is type(message)
        assert answer == message, f"{len(message)}-item message came back changed"


ECHO_MESSAGES: list[str | bytes] = [
    "hello ☃",
    b"\x00\x01\xfe\xff",
    "",
    b"",
    pattern(MIB, binary=True),
    pattern(MIB, binary=False),
    pattern(MIB, binary=False),
    os.urandom(100_000),
    "x" * 2000,
    "x" * 2000,
]


@pytest.mark.parametrize(
    ("per_message_deflate", "expected"),
    [
        (False, None),
        ({}, "permessage-deflate"),
        ({"serverMaxWindowBits": 9}, "permessage-deflate; server_max_window_bits=9"),
        ({"clientMaxWindowBits": 10}, "permessage-deflate; client_max_window_bits=10"),
        ({"serverNoContextTakeover": True}, "permessage-deflate; server_no_context_takeover"),
        ({"clientNoContextTakeover": True}, "permessage-deflate; client_no_context_takeover"),
        (
            {
                "serverNoContextTakeover": True,
                "clientNoContextTakeover": True,
                "serverMaxWindowBits": 11,
                "clientMaxWindowBits": 12,
            },
            "permessage-deflate; client_max_window_bits=12; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=11",
        ),
    ],
    ids=[
        "off",
        "default",
        "server-window-9",
        "client-window-10",
        "server-nct",
        "client-nct",
        "all",
    ],
)
async def test_ws_server_deflate_variants(
    node_peer: NodePeerFactory, per_message_deflate: Any, expected: str | None
) -> None:
    if per_message_deflate is not False:
        per_message_deflate = {"threshold": 0, **per_message_deflate}
    peer, uris = await start_ws_server(node_peer, s={"perMessageDeflate": per_message_deflate})
    async with wskit.connect(uris["s"], max_size=2 * MIB) as conn:
        connected = await peer.event("connection")
        assert connected["offer"] == "permessage-deflate; client_max_window_bits"
        assert conn.response_headers.get("Sec-WebSocket-Extensions") == expected
        assert conn.compression is (expected is not None)
        wire = count_bytes_received(conn)
        await assert_echoes(conn, ECHO_MESSAGES)
        if expected is not None:
            assert wire[0] < MIB
        else:
            assert wire[0] > 3 * MIB


@pytest.mark.parametrize(
    ("options", "offer", "expected"),
    [
        (
            wskit.DeflateOptions(server_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10",
        ),
        (
            wskit.DeflateOptions(client_max_window_bits=9, threshold=0),
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=9",
        ),
        (
            wskit.DeflateOptions(client_max_window_bits=8, threshold=0),
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=8",
        ),
        (
            wskit.DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
    ],
    ids=["server-window", "client-window-9", "client-window-8", "no-context-takeover"],
)
async def test_wskit_client_deflate_options_against_ws(
    node_peer: NodePeerFactory, options: wskit.DeflateOptions, offer: str, expected: str
) -> None:
    peer, uris = await start_ws_server(node_peer, s={"perMessageDeflate": {"threshold": 0}})
    async with wskit.connect(uris["s"], compression=options, max_size=2 * MIB) as conn:
        assert (await peer.event("connection"))["offer"] == offer
        assert conn.response_headers.get("Sec-WebSocket-Extensions") == expected
        await assert_echoes(conn, ECHO_MESSAGES)


async def test_ws_server_fragments_pings_and_closes(node_peer: NodePeerFactory) -> None:
    peer, uris = await start_ws_server(
        node_peer, deflate={"perMessageDeflate": {"threshold": 0}}, plain={}
    )
    for name, uri in uris.items():
        pings: list[bytes] = []
        ping_seen = asyncio.Event()

        def on_ping(
            data: bytes, pings: list[bytes] = pings, seen: asyncio.Event = ping_seen
        ) -> None:
            pings.append(data)
            seen.set()

        conn = await wskit.connect(uri, on_ping=on_ping)
        assert (await peer.event("connection"))["server"] == name

        # ws -> wskit: one frame per fragment.
        await conn.send("cmd:" + json.dumps({"op": "fragments", "parts": ["ws ", "in ", "pieces"]}))
        assert [f async for f in conn.recv_streaming()] == ["ws ", "in ", "pieces"]
        # wskit -> ws: the server sees one message and echoes it.
        await conn.send([b"\x01", b"\x02\x03", b"\x04"])
        assert_message(await peer.event("message"), b"\x01\x02\x03\x04")
        assert await conn.recv() == b"\x01\x02\x03\x04"

        # Pings both ways.
        latency = await asyncio.wait_for(conn.ping(b"wskit"), 5)
        assert latency >= 0
        assert (await peer.event("ping"))["hex"] == b"wskit".hex()
        await conn.send("cmd:" + json.dumps({"op": "ping", "hex": "c0ffee"}))
        await asyncio.wait_for(ping_seen.wait(), 5)
        assert pings == [b"\xc0\xff\xee"]
        assert (await peer.event("pong"))["hex"] == "c0ffee"

        if name == "deflate":
            # The server closes.
            await conn.send(
                "cmd:" + json.dumps({"op": "close", "code": 4001, "reason": "ws says bye"})
            )
            with pytest.raises(wskit.ConnectionClosedError) as info:
                await asyncio.wait_for(conn.recv(), 5)
            assert (info.value.code, info.value.reason) == (4001, "ws says bye")
            await conn.wait_closed(5)
            assert (conn.close_code, conn.close_reason) == (4001, "ws says bye")
            closed = await peer.event("close")
            # ws reports the close frame it received: wskit's echo of code and reason.
            assert (closed["code"], closed["reason"]) == (4001, "ws says bye")
        else:
            # The client closes.
            await asyncio.wait_for(conn.close(4002, "wskit says bye"), 5)
            closed = await peer.event("close")
            assert (closed["code"], closed["reason"]) == (4002, "wskit says bye")
            assert conn.closed
            assert (conn.close_code, conn.close_reason) == (4002, "wskit says bye")


async def test_ws_server_fragments_split_characters_and_compress(
    node_peer: NodePeerFactory,
) -> None:
    peer, uris = await start_ws_server(node_peer, s={"perMessageDeflate": {"threshold": 0}})
    async with wskit.connect(uris["s"], max_size=2 * MIB) as conn:
        await peer.event("connection")
        # "☃€" is e2 98 83 e2 82 ac: every fragment but the last ends mid-character.
        parts = ["e2", "9883e2", "82", "ac"]
        await conn.send("cmd:" + json.dumps({"op": "fragments", "parts": parts, "hex": True}))
        fragments = [f async for f in conn.recv_streaming()]
        assert all(isinstance(f, str) for f in fragments)
        assert "".join(fragments) == "☃€"  # type: ignore[arg-type]

        # Compressed fragments from ws: one deflate stream across frames.
        big = [pattern(100_000, binary=False), "☃" * 30_000, pattern(70_000, binary=False)]
        command = {"op": "fragments", "parts": big, "compress": True}
        wire = count_bytes_received(conn)
        await conn.send("cmd:" + json.dumps(command))
        assert await asyncio.wait_for(conn.recv(), 10) == "".join(big)
        assert wire[0] < 50_000

        # Compressed fragments from wskit, large enough to cross the threshold.
        async with conn.message_writer() as writer:
            for piece in big:
                await writer.write(piece)
        assert_message(await peer.event("message"), "".join(big))
        assert await asyncio.wait_for(conn.recv(), 10) == "".join(big)


async def test_ws_client_subprotocols(node_peer: NodePeerFactory) -> None:
    async def handler(conn: wskit.Conn) -> None:
        await conn.send(str(conn.subprotocol))

    async with wskit_server(handler, subprotocols=["chat.v2", "chat.v1"]) as uri:
        # (ws fails the connection when the server picks none of its offers.)
        for offered, chosen in ((["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], "chat.v1")):
            peer = await node_peer("ws_client.mjs", uri, json.dumps({"protocols": offered}))
            assert (await peer.event("open"))["protocol"] == chosen
            assert (await peer.event("message"))["data"] == chosen
            assert (await peer.event("close"))["code"] == 1000


async def test_ws_client_closes_without_a_code(node_peer: NodePeerFactory) -> None:
    recorder = Recorder()
    async with wskit_server(recorder) as uri:
        peer = await node_peer("ws_client.mjs", uri, "{}")
        await peer.event("open")
        peer.send("send", text="last words")
        assert (await peer.event("message"))["data"] == "last words"
        peer.send("close")
        # No status code: 1005 on both ends, a normal closure for wskit.
        assert (await peer.event("close"))["code"] == 1005
        assert await asyncio.wait_for(recorder.closed, 5) == (1005, "")
        assert recorder.error is None
        assert recorder.received == ["last words"]


async def test_keepalive_pings_are_answered_by_ws(node_peer: NodePeerFactory) -> None:
    recorder = Recorder()
    async with wskit_server(recorder, ping_interval=0.1, ping_timeout=0.5) as uri:
        peer = await node_peer("ws_client.mjs", uri, "{}")
        await peer.event("open")
        for _ in range(4):
            assert len((await peer.event("ping"))["hex"]) == 8  # 4 random bytes
        # ws answered every keepalive ping in time: still open.
        peer.send("send", text="still here")
        assert (await peer.event("message"))["data"] == "still here"
        peer.send("close", code=1000, reason="")
        assert (await peer.event("close"))["code"] == 1000
        assert await asyncio.wait_for(recorder.closed, 5) == (1000, "")
