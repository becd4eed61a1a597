"""Conformance of the wskit client, in the spirit of Autobahn|Testsuite's fuzzingserver.

A :class:`~rawserver.RawServer` completes (or botches) the opening handshake
by hand and then sends whatever frames a case calls for to a client opened
with :func:`wskit.connect`. Two kinds of cases:

* failures: the server misbehaves (masked frames, reserved bits and opcodes,
  invalid UTF-8, bad close codes, oversize or fragmented control frames)
  and the client must fail the connection with the right close code, which
  the raw server reads off the wire while the test checks the exception the
  application sees;
* echo: the test runs an echo loop on a wskit client, the raw server sends
  messages of every category (sizes, fragments with pings in between,
  UTF-8, compression with the window sizes the server picks) and checks
  that what comes back is the same message, masked with a fresh key.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wskit
from conformance.payloads import binary_payload, compressible, payload, text_payload
from conformance.rawclient import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    RSV2,
    RSV3,
    RawPeer,
    build_frame,
    close_payload,
    deflate_bomb,
)
from conformance.rawserver import RawServer, Scenario

MiB = 2**20


# --------------------------------------------------------------------------- helpers


def sends(wire: bytes, expect: int, *, chunks: int | None = None) -> Scenario:
    """A scenario: send ``wire``, expect the client to close with ``expect``, then drop TCP."""

    async def scenario(peer: RawPeer) -> None:
        await peer.send_raw(wire, chunks=chunks, delay=0.0002)
        close = await peer.expect_close_code(expect)
        assert close.masked

    return scenario


async def expect_client_failure(
    scenario: Scenario,
    code: int,
    *,
    extensions: str | None = None,
    messages: list[Any] | None = None,
    **connect: Any,
) -> wskit.ConnectionClosed:
    """Connect a wskit client to a raw server running ``scenario``.

    The client must fail the connection: reading raises
    :class:`wskit.ConnectionClosedError` saying it sent ``code``. Messages
    received before that must equal ``messages``.
    """
    connect.setdefault("compression", "deflate" if extensions else None)
    async with (
        RawServer(scenario, extensions=extensions) as server,
        wskit.connect(server.uri, **connect) as conn,
    ):
        got = []
        with pytest.raises(wskit.ConnectionClosedError) as info:
            async with asyncio.timeout(5):
                while True:
                    got.append(await conn.recv())
    assert info.value.sent_code == code, info.value
    assert got == (messages or [])
    assert conn.closed
    return info.value


# =========================================================================== failures


async def test_masked_server_frame_fails_1002() -> None:
    await expect_client_failure(sends(build_frame(OP_TEXT, b"masked", mask=True), 1002), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_CLOSE, OP_BINARY])
async def test_masked_server_frame_of_any_kind_fails(opcode: int) -> None:
    body = close_payload(1000) if opcode == OP_CLOSE else b"x"
    await expect_client_failure(sends(build_frame(opcode, body, mask=True), 1002), 1002)


@pytest.mark.parametrize("kind", ["text", "binary", "ping", "close"])
@pytest.mark.parametrize("rsv", range(1, 8), ids=[f"rsv={r:03b}" for r in range(1, 8)])
async def test_reserved_bits_fail_1002(rsv: int, kind: str) -> None:
    opcode, body = {
        "text": (OP_TEXT, b"Hello"),
        "binary": (OP_BINARY, b"\x00\x01"),
        "ping": (OP_PING, b"p"),
        "close": (OP_CLOSE, close_payload(1000)),
    }[kind]
    # All in one write: the message parsed before the bad frame still reaches the
    # application, then reading raises; the ping behind the bad frame gets no pong.
    wire = (
        build_frame(OP_TEXT, b"valid")
        + build_frame(opcode, body, rsv=rsv)
        + build_frame(OP_PING, b"after")
    )
    await expect_client_failure(sends(wire, 1002), 1002, messages=["valid"])


@pytest.mark.parametrize("rsv", [RSV2, RSV3])
async def test_rsv2_rsv3_fail_even_with_deflate(rsv: int) -> None:
    wire = build_frame(OP_TEXT, b"Hello", rsv=rsv | RSV1)
    await expect_client_failure(sends(wire, 1002), 1002, extensions="permessage-deflate")


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
async def test_reserved_opcode_fails_1002(opcode: int) -> None:
    await expect_client_failure(sends(build_frame(opcode, b"reserved"), 1002), 1002)


@pytest.mark.parametrize(
    "data",
    [
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x80",
        b"\xfe\xff",
        b"hello\xce",
    ],
)
@pytest.mark.parametrize("fragmented", [False, True], ids=["frame", "fragments"])
async def test_invalid_utf8_fails_1007(data: bytes, fragmented: bool) -> None:
    if fragmented:
        wire = b"".join(
            build_frame(OP_TEXT if i == 0 else OP_CONT, data[i : i + 1], fin=i == len(data) - 1)
            for i in range(len(data))
        )
    else:
        wire = build_frame(OP_TEXT, data)
    await expect_client_failure(sends(wire, 1007), 1007)


async def test_invalid_utf8_fail_fast_in_first_fragment() -> None:
    """The client closes with 1007 before the server sends the final fragment."""

    async def scenario(peer: RawPeer) -> None:
        await peer.send_frame(OP_TEXT, b"ok \xed\xa0\x80", fin=False)
        close = await peer.expect_close(timeout=5)
        assert close.close_code == 1007
        await peer.send_frame(OP_CONT, b"the end", fin=True)
        await peer.expect_eof()

    await expect_client_failure(scenario, 1007)


async def test_invalid_utf8_fail_fast_inside_one_frame() -> None:
    """Invalid UTF-8 at the start of a large frame: 1007 before the frame is complete."""
    frame = build_frame(OP_TEXT, b"ok \xf4\x90\x80\x80" + b"a" * 10_000)

    async def scenario(peer: RawPeer) -> None:
        await peer.send_raw(frame[:100])
        close = await peer.expect_close(timeout=5)
        assert close.close_code == 1007
        await peer.send_raw(frame[100:])
        await peer.expect_eof()

    await expect_client_failure(scenario, 1007)


async def test_invalid_utf8_in_compressed_message() -> None:
    async def scenario(peer: RawPeer) -> None:
        await peer.send_message(OP_TEXT, b"valid " * 40 + b"\xc0\xaf", compress=True)
        await peer.expect_close_code(1007)

    await expect_client_failure(scenario, 1007, extensions="permessage-deflate")


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
async def test_bad_close_code_fails_1002(code: int) -> None:
    await expect_client_failure(sends(build_frame(OP_CLOSE, close_payload(code)), 1002), 1002)


async def test_one_byte_close_payload_fails_1002() -> None:
    await expect_client_failure(sends(build_frame(OP_CLOSE, b"\x03"), 1002), 1002)


async def test_close_reason_invalid_utf8_fails_1007() -> None:
    wire = build_frame(OP_CLOSE, close_payload(1000, b"\xed\xa0\x80"))
    await expect_client_failure(sends(wire, 1007), 1007)


@pytest.mark.parametrize("mode", ["frame", "fragments", "header-only", "compressed"])
async def test_oversize_message_fails_1009(mode: str) -> None:
    data = binary_payload(1025)
    extensions = None
    if mode == "frame":
        wire = build_frame(OP_BINARY, data)
    elif mode == "fragments":
        wire = b"".join(
            build_frame(OP_BINARY if i == 0 else OP_CONT, data[i : i + 300], fin=i + 300 >= 1025)
            for i in range(0, 1025, 300)
        )
    elif mode == "header-only":
        wire = build_frame(OP_BINARY, b"", length=64 * MiB)
    else:
        extensions = "permessage-deflate"
        wire = b""

    async def scenario(peer: RawPeer) -> None:
        if mode == "compressed":
            await peer.send_message(OP_BINARY, bytes(100_000), compress=True)
        else:
            await peer.send_raw(wire)
        await peer.expect_close_code(1009)

    await expect_client_failure(scenario, 1009, extensions=extensions, max_size=1024)


async def test_message_at_max_size_is_accepted() -> None:
    async def scenario(peer: RawPeer) -> None:
        await peer.send_message(OP_BINARY, binary_payload(1024))
        await peer.send_message(OP_BINARY, binary_payload(1024), frame_size=100)
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, max_size=1024, compression=None) as conn,
    ):
        assert await conn.recv() == binary_payload(1024)
        assert await conn.recv() == binary_payload(1024)
        with pytest.raises(wskit.ConnectionClosedOK):
            await conn.recv()


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
async def test_fragmented_control_frame_fails_1002(opcode: int) -> None:
    wire = build_frame(opcode, b"\x03\xe8ab", fin=False) + build_frame(OP_CONT, b"cd")
    await expect_client_failure(sends(wire, 1002), 1002)


async def test_control_frame_over_125_fails_1002() -> None:
    await expect_client_failure(sends(build_frame(OP_PING, b"x" * 126), 1002), 1002)


@pytest.mark.parametrize(
    "wire",
    [
        build_frame(OP_CONT, b"orphan"),
        build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_TEXT, b"b"),
        build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_BINARY, b"b", fin=False),
        build_frame(OP_BINARY, b"x" * 5, length_form=16),
        build_frame(OP_BINARY, b"x" * 5, length=2**63 + 5),
    ],
    ids=["orphan-continuation", "text-in-text", "binary-in-text", "non-minimal", "msb-set"],
)
async def test_framing_errors_fail_1002(wire: bytes) -> None:
    await expect_client_failure(sends(wire, 1002), 1002)


async def test_rsv1_without_deflate_fails_1002() -> None:
    await expect_client_failure(sends(build_frame(OP_TEXT, b"x", rsv=RSV1), 1002), 1002)


# =========================================================================== closing


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4999])
async def test_client_echoes_server_close_code(code: int) -> None:
    async def scenario(peer: RawPeer) -> None:
        await peer.send_close(code, "server says bye")
        close = await peer.expect_close(timeout=5)
        assert close.masked and close.close_code == code
        # The client waits for the server to close TCP: it must not have sent EOF.
        await peer.expect_silence(0.05)

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        with pytest.raises(wskit.ConnectionClosed) as info:
            await conn.recv()
        start = time.monotonic()
        await conn.wait_closed(5)
        assert time.monotonic() - start < 4, "the client did not see the server's TCP close"
    exc = info.value
    assert (exc.code, exc.reason, exc.sent_code) == (code, "server says bye", code)
    assert isinstance(exc, wskit.ConnectionClosedOK) == (code in (1000, 1001))
    assert conn.close_code == code


async def test_client_echoes_close_without_code() -> None:
    async def scenario(peer: RawPeer) -> None:
        await peer.send_frame(OP_CLOSE, b"")
        close = await peer.expect_close(timeout=5)
        assert close.payload == b""

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        messages = [m async for m in conn]  # a clean end: no exception
    assert messages == []
    assert conn.close_code == 1005


async def test_client_drops_tcp_if_server_never_does() -> None:
    """After the closing handshake the client gives the server close_timeout to close TCP."""

    async def scenario(peer: RawPeer) -> None:
        await peer.send_close(1000)
        assert (await peer.expect_close()).close_code == 1000
        await peer.expect_eof(timeout=3)  # the client gave up waiting and closed

    async with RawServer(scenario) as server:
        conn = await wskit.connect(server.uri, compression=None, close_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(wskit.ConnectionClosedOK):
            await conn.recv()
        await conn.wait_closed(5)
        assert 0.2 < time.monotonic() - start < 4
        assert conn.close_code == 1000


async def test_client_initiated_close() -> None:
    async def scenario(peer: RawPeer) -> None:
        close = await peer.expect_close()
        assert close.masked and close.close_code == 4321 and close.close_reason == b"done"
        await peer.send_close(4321)
        # The server closes TCP first (leaving the scenario closes the writer).

    async with RawServer(scenario) as server:
        conn = await wskit.connect(server.uri, compression=None)
        start = time.monotonic()
        await conn.close(4321, "done")
        assert time.monotonic() - start < 4
        assert conn.closed and conn.close_code == 4321


async def test_close_inside_fragmented_message() -> None:
    async def scenario(peer: RawPeer) -> None:
        await peer.send_frame(OP_TEXT, b"never ", fin=False)
        await peer.send_frame(OP_CONT, b"finished", fin=False)
        await peer.send_close(1000)
        assert (await peer.expect_close()).close_code == 1000

    async with RawServer(scenario) as server, wskit.connect(server.uri, compression=None) as conn:
        with pytest.raises(wskit.ConnectionClosedOK):
            await conn.recv()


async def test_client_keepalive_ping_timeout_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(peer: RawPeer) -> None:
        frame = await peer.recv_frame(timeout=5)
        assert frame.opcode == OP_PING and frame.masked
        while frame.opcode == OP_PING:  # never answered
            frame = await peer.recv_frame(timeout=5)
        assert frame.opcode == OP_CLOSE and frame.close_code == 1011, frame

    async with RawServer(scenario) as server:
        conn = await wskit.connect(
            server.uri, compression=None, ping_interval=0.1, ping_timeout=0.2, close_timeout=0.5
        )
        with pytest.raises(wskit.ConnectionClosedError) as info:
            await asyncio.wait_for(conn.recv(), 3)
        assert info.value.sent_code == 1011
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_frames_after_server_close_are_ignored() -> None:
    async def scenario(peer: RawPeer) -> None:
        await peer.send_raw(
            build_frame(OP_CLOSE, close_payload(1000))
            + build_frame(OP_TEXT, b"after close")
            + build_frame(OP_PING, b"after close")
        )
        close = await peer.expect_close()
        assert close.close_code == 1000
        await peer.expect_silence(0.05)  # no pong, no echo

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        with pytest.raises(wskit.ConnectionClosedOK):
            await conn.recv()


# =========================================================================== pings


async def test_pings_between_fragments_answered_with_fresh_masks() -> None:
    """Pongs come back masked, each with its own key, while the message is still open."""
    keys: list[bytes] = []

    async def scenario(peer: RawPeer) -> None:
        await peer.send_frame(OP_TEXT, b"frag1 ", fin=False)
        for i in range(3):
            await peer.send_frame(OP_PING, b"ping %d" % i)
            pong = await peer.recv_frame()
            assert (pong.opcode, pong.payload) == (OP_PONG, b"ping %d" % i)
            assert pong.mask_key is not None
            keys.append(pong.mask_key)
            await peer.send_frame(OP_CONT, b"frag%d " % (i + 2), fin=False)
        await peer.send_frame(OP_CONT, b"end", fin=True)
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        assert await conn.recv() == "frag1 frag2 frag3 frag4 end"
    assert len(set(keys)) == 3, f"pongs reused a masking key: {keys}"


async def test_ping_payloads_all_sizes() -> None:
    async def scenario(peer: RawPeer) -> None:
        for size in range(126):
            data = binary_payload(size)
            await peer.send_frame(OP_PING, data)
            pong = await peer.recv_frame()
            assert (pong.opcode, pong.payload) == (OP_PONG, data), size
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        with pytest.raises(wskit.ConnectionClosedOK):
            await conn.recv()


async def test_client_ping_gets_latency_from_pong() -> None:
    async def scenario(peer: RawPeer) -> None:
        ping = await peer.recv_frame()
        assert ping.opcode == OP_PING and ping.masked
        await peer.send_frame(OP_PONG, b"unsolicited")
        await peer.send_frame(OP_PONG, ping.payload)
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    async with (
        RawServer(scenario) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        latency = await asyncio.wait_for(conn.ping(b"hello"), 2)
        assert latency >= 0


# =========================================================================== handshake


async def test_client_request_is_well_formed() -> None:
    async with (
        RawServer() as server,
        wskit.connect(server.uri, compression="deflate", subprotocols=["chat"]),
    ):
        pass
    (request,) = server.requests
    assert request.start_line == "GET / HTTP/1.1"
    assert (request.get("Upgrade") or "").lower() == "websocket"
    assert "upgrade" in (request.get("Connection") or "").lower()
    assert request.get("Sec-WebSocket-Version") == "13"
    assert len(base64.b64decode(request.get("Sec-WebSocket-Key") or "", validate=True)) == 16
    assert request.get("Sec-WebSocket-Protocol") == "chat"
    assert (request.get("Sec-WebSocket-Extensions") or "").startswith("permessage-deflate")
    assert request.get("Host") == f"127.0.0.1:{server.port}"


async def test_bad_accept_key_is_refused() -> None:
    async with RawServer(accept="dGhlIHNhbXBsZSBub25jZQ==") as server:
        with pytest.raises(wskit.InvalidResponse):
            await wskit.connect(server.uri)


@pytest.mark.parametrize(
    ("headers", "kwargs"),
    [
        ({"subprotocol": "other"}, {"subprotocols": ["chat"]}),
        ({"subprotocol": "chat"}, {}),
        ({"extensions": "x-foo"}, {}),
        ({"extensions": "permessage-deflate"}, {"compression": None}),
        ({"extensions": "permessage-deflate; foo=1"}, {}),
        ({"extensions": "permessage-deflate; server_max_window_bits=16"}, {}),
        (
            {"extensions": "permessage-deflate; client_max_window_bits=12"},
            {"compression": wskit.DeflateOptions(client_max_window_bits=10)},
        ),
        (
            {"extensions": "permessage-deflate"},
            {"compression": wskit.DeflateOptions(server_no_context_takeover=True)},
        ),
        ({"extensions": "permessage-deflate, permessage-deflate"}, {}),
    ],
    ids=[
        "subprotocol-not-offered",
        "subprotocol-none-offered",
        "unknown-extension",
        "deflate-not-offered",
        "deflate-unknown-param",
        "deflate-bad-window",
        "deflate-window-over-offer",
        "deflate-dropped-no-context-takeover",
        "deflate-twice",
    ],
)
async def test_response_with_what_was_not_offered_is_refused(
    headers: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    async with RawServer(**headers) as server:
        with pytest.raises(wskit.InvalidResponse):
            await wskit.connect(server.uri, **kwargs)


@pytest.mark.parametrize("header", ["Upgrade", "Connection", "Sec-WebSocket-Accept"])
async def test_101_missing_header_is_refused(header: str) -> None:
    async with RawServer(omit=[header]) as server:
        with pytest.raises(wskit.InvalidResponse):
            await wskit.connect(server.uri)


async def test_101_and_first_frames_byte_by_byte() -> None:
    first = build_frame(OP_TEXT, "κόσμε".encode())

    async def scenario(peer: RawPeer) -> None:
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    async with (
        RawServer(scenario, first_frames=first, response_chunks=1) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        assert await conn.recv() == "κόσμε"


async def test_subprotocol_selected() -> None:
    async with (
        RawServer(subprotocol="chat") as server,
        wskit.connect(server.uri, subprotocols=["superchat", "chat"]) as conn,
    ):
        assert conn.subprotocol == "chat"


async def test_refusal_surfaces_status_and_body() -> None:
    async with RawServer(status=403, body=b"go away, you are not welcome") as server:
        with pytest.raises(wskit.HandshakeRejected) as info:
            await wskit.connect(server.uri)
    assert info.value.status == 403
    assert info.value.body == b"go away, you are not welcome"


async def test_frames_in_the_same_segment_as_the_101() -> None:
    first = build_frame(OP_TEXT, b"early bird") + build_frame(OP_PING, b"early ping")

    async def scenario(peer: RawPeer) -> None:
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"early ping")
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    async with (
        RawServer(scenario, first_frames=first) as server,
        wskit.connect(server.uri, compression=None) as conn,
    ):
        assert await conn.recv() == "early bird"


# =========================================================================== echo client


async def echo_client(uri: str, **kwargs: Any) -> None:
    """The application under test: echo every message back, same type."""
    async with wskit.connect(uri, **kwargs) as conn:
        async for message in conn:
            await conn.send(message)


async def run_echo(
    scenario: Callable[[RawPeer], Awaitable[None]],
    *,
    extensions: str | None = None,
    strict_inflate: bool = False,
    **kwargs: Any,
) -> None:
    """Run ``scenario`` against the echo client; the scenario ends with a 1000 close."""

    async def full(peer: RawPeer) -> None:
        await scenario(peer)
        await peer.send_close(1000)
        await peer.expect_close_code(1000, eof=False)

    kwargs.setdefault("compression", "deflate" if extensions else None)
    async with RawServer(full, extensions=extensions, strict_inflate=strict_inflate) as server:
        await asyncio.wait_for(echo_client(server.uri, **kwargs), 20)


async def check_echo(peer: RawPeer, opcode: int, data: bytes, **send: Any) -> None:
    await peer.send_message(opcode, data, **send)
    message = await peer.recv_data(timeout=10)
    assert message.opcode == opcode and message.data == data
    assert all(f.masked for f in message.frames)


ECHO_LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536, 1 * MiB]


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_echo_lengths(opcode: int) -> None:
    async def scenario(peer: RawPeer) -> None:
        for n in ECHO_LENGTHS:
            await check_echo(peer, opcode, payload(opcode, n))
            await check_echo(peer, opcode, payload(opcode, n), chunks=max(1, n // 7), delay=0.0002)

    await run_echo(scenario)


@pytest.mark.parametrize("frame_size", [1, 7, 1000])
async def test_echo_fragmented_with_pings(frame_size: int) -> None:
    async def scenario(peer: RawPeer) -> None:
        data = text_payload(3000)
        frames = peer.message_frames(OP_TEXT, data, frame_size=frame_size)
        keys = []
        for i, frame in enumerate(frames):
            await peer.send_raw(frame)
            if i % max(1, len(frames) // 4) == 0:
                await peer.send_frame(OP_PING, b"%d" % i)
                pong = await peer.recv_message()
                assert (pong.opcode, pong.data) == (OP_PONG, b"%d" % i)
                keys.append(pong.frames[0].mask_key)
        message = await peer.recv_data()
        assert message.data == data
        assert len(keys) >= 3 and len(set(keys)) == len(keys), keys

    await run_echo(scenario)


async def test_echo_utf8() -> None:
    texts = [
        "Hello-µ@ßöäüàá-UTF-8!!",
        "κόσμε",
        "\x7f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
        "\ud7ff\ue000\ufffd\ufffe",
        "😀🎉𝄞𐍈" * 20,
    ]

    async def scenario(peer: RawPeer) -> None:
        for text in texts:
            await check_echo(peer, OP_TEXT, text.encode())
            await check_echo(peer, OP_TEXT, text.encode(), frame_size=1)

    await run_echo(scenario)


async def test_echo_many_messages_pipelined() -> None:
    async def scenario(peer: RawPeer) -> None:
        messages = [payload(OP_BINARY if i % 2 else OP_TEXT, 100 + i) for i in range(300)]
        await peer.send_raw(
            b"".join(
                build_frame(OP_BINARY if i % 2 else OP_TEXT, m) for i, m in enumerate(messages)
            )
        )
        for i, m in enumerate(messages):
            message = await peer.recv_data()
            assert (message.opcode, message.data) == (OP_BINARY if i % 2 else OP_TEXT, m)

    await run_echo(scenario)


SERVER_CHOICES = {
    "plain": "permessage-deflate",
    **{
        f"server_max_window_bits={n}": f"permessage-deflate; server_max_window_bits={n}"
        for n in range(8, 16)
    },
    **{
        f"client_max_window_bits={n}": f"permessage-deflate; client_max_window_bits={n}"
        for n in range(8, 16)
    },
    "server_no_context_takeover": "permessage-deflate; server_no_context_takeover",
    "client_no_context_takeover": "permessage-deflate; client_no_context_takeover",
    "all-9": (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=9"
    ),
}
COMPRESSED_SIZES = [16, 64, 256, 1024, 4096, 32768, 131072]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("choice", list(SERVER_CHOICES))
async def test_echo_compressed(choice: str, binary: bool) -> None:
    """The server picks the parameters; the client inflates with them and compresses within them."""
    extensions = SERVER_CHOICES[choice]
    opcode = OP_BINARY if binary else OP_TEXT

    async def scenario(peer: RawPeer) -> None:
        assert peer.deflate is not None
        for size in COMPRESSED_SIZES:
            data = compressible(size, binary)
            await peer.send_message(opcode, data, compress=True)
            message = await peer.recv_data(timeout=10)
            assert message.opcode == opcode and message.data == data
            if size >= 256:
                assert message.compressed, f"the client did not compress {size} bytes"
        # Context takeover on the client's side: the same message three times.
        bits = peer.deflate.client_max_window_bits
        data = compressible(max(128, min(1024, (2**bits - 262) // 2)), binary, seed=3)
        sizes = []
        for _ in range(3):
            await peer.send_message(opcode, data, compress=True)
            message = await peer.recv_data()
            assert message.data == data and message.compressed
            sizes.append(message.wire_size)
        if peer.deflate.client_no_context_takeover:
            assert sizes[0] == sizes[1] == sizes[2], sizes
        elif bits >= 9:
            assert sizes[1] < sizes[0] // 2 and sizes[2] < sizes[0] // 2, sizes

    # Strict inflating proves the client stays within the window it was given.
    await run_echo(scenario, extensions=extensions, strict_inflate="client_max" in choice)


async def test_echo_compressed_fragments_and_large() -> None:
    async def scenario(peer: RawPeer) -> None:
        for frame_size in (1, 100, 5000):
            await check_echo(
                peer, OP_TEXT, compressible(20000), compress=True, frame_size=frame_size
            )
        await check_echo(
            peer, OP_BINARY, compressible(1 * MiB, True), compress=True, frame_size=65536
        )
        # Uncompressed messages are fine too.
        await check_echo(peer, OP_BINARY, compressible(3000, True))

    await run_echo(scenario, extensions="permessage-deflate", max_size=2 * MiB)


async def test_compressed_edge_cases() -> None:
    """Empty compressed messages and messages ending in a BFINAL block (RFC 7692 7.2.3)."""

    async def scenario(peer: RawPeer) -> None:
        for body in (b"\x00", b"\x02\x00"):
            await peer.send_frame(OP_BINARY, body, rsv=RSV1)
            assert (await peer.recv_data()).data == b""
        for i in range(3):
            data = compressible(3000, seed=i)
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = compressor.compress(data) + compressor.flush(zlib.Z_FINISH)
            await peer.send_frame(OP_TEXT, body, rsv=RSV1)
            assert (await peer.recv_data()).data == data

    await run_echo(scenario, extensions="permessage-deflate")


async def test_compressed_bomb_fails_1009_quickly() -> None:
    """265 KB inflating to 256 MiB: 1009 at once, and the client never holds the 256 MiB."""
    bomb = deflate_bomb(256)

    async def scenario(peer: RawPeer) -> None:
        start = time.monotonic()
        await peer.send_frame(OP_BINARY, bomb, rsv=RSV1)
        await peer.expect_close_code(1009)
        assert time.monotonic() - start < 3

    tracemalloc.start()
    try:
        await expect_client_failure(scenario, 1009, extensions="permessage-deflate")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"the client allocated {peak // MiB} MiB"
