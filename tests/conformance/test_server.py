"""Conformance of the wskit server, in the spirit of Autobahn|Testsuite.

The server under test is the real ``wskit echo`` command, started once per
module as a subprocess (``python -m wskit echo --port 0``); the cases that
need another configuration (a 1 KiB ``max_size``) run the CLI's echo handler
in-process with :func:`wskit.serve`. Every case talks to it through
:class:`~rawclient.RawClient`, which writes frames byte by byte as the case
wants, valid or not, and parses the answers itself.

Sections follow the Autobahn case categories: 1 framing, 2 pings and pongs,
3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 closing, 9 sizes,
12/13 permessage-deflate; then limits, masking and the opening handshake.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    HandshakeFailed,
    RawClient,
    accept_for,
    build_frame,
    close_payload,
    deflate_bomb,
    http_exchange,
)
from conftest import REPO_ROOT, wait_for_port
from wskit.cli.echo import ECHO_MAX_SIZE, echo_messages

HOST = "127.0.0.1"
MiB = 2**20


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    #: The server's process when it runs in a subprocess.
    pid: int | None = None

    def peak_memory(self) -> int | None:
        """The server process's peak resident memory in bytes (Linux), else ``None``."""
        if self.pid is None:
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
        return int(found.group(1)) * 1024 if found else None

    async def client(
        self,
        extensions: str | None = None,
        *,
        strict_inflate: bool = False,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> RawClient:
        """Open a raw client, offering ``extensions`` if given."""
        return await RawClient.open(
            self.host,
            self.port,
            extensions=extensions,
            strict_inflate=strict_inflate,
            extra_headers=extra_headers,
        )


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The real ``wskit echo`` command, in a subprocess, for the whole module.

    It listens on port 0 and the test reads the port it got from the line it
    prints, so no other process can take the port in between.
    """
    log = tmp_path_factory.mktemp("wskit-echo") / "echo.log"
    src = str(REPO_ROOT / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wskit", "echo", "--host", HOST, "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 15
        while not (found := re.search(rf"on ws://{HOST}:(\d+)/", log.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"wskit echo did not start:\n{log.read_text()}")
            time.sleep(0.02)
        port = int(found.group(1))
        wait_for_port(port, HOST, timeout=5)
        yield Target(HOST, port, proc.pid)
        assert proc.poll() is None, f"wskit echo died during the tests:\n{log.read_text()}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"wskit echo ignored SIGTERM:\n{log.read_text()}")
    # A graceful stop on SIGTERM is part of the command's contract.
    assert proc.returncode == 0, f"wskit echo exited with {proc.returncode}:\n{log.read_text()}"


@pytest.fixture
async def small_echo() -> AsyncIterator[Target]:
    """The CLI's echo handler in-process, with ``max_size=1024`` (and deflate)."""
    server = await wskit.serve(
        echo_messages,
        HOST,
        0,
        max_size=1024,
        max_queue=64,
        ping_interval=None,
        check_origin=lambda request: True,
    )
    try:
        yield Target(HOST, server.port)
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def client(echo: Target) -> AsyncIterator[RawClient]:
    """A raw client connected to ``wskit echo`` without extensions."""
    c = await echo.client()
    try:
        yield c
    finally:
        await c.aclose()


# --------------------------------------------------------------------------- payloads


def chop_plan(n: int) -> list[int]:
    """Piece sizes that grow like Fibonacci: 1, 1, 2, 3, 5, ... up to ``n`` bytes."""
    sizes, a, b, total = [], 1, 1, 0
    while total < n:
        sizes.append(a)
        total += a
        a, b = b, a + b
    return sizes


async def echo_check(c: RawClient, opcode: int, data: bytes, **send: object) -> None:
    """Send a message and expect it back, whole and with its type."""
    await c.send_message(opcode, data, **send)  # type: ignore[arg-type]
    message = await c.recv_data(timeout=20)
    assert message.opcode == opcode
    assert len(message.data) == len(data)
    assert message.data == data


async def close_cleanly(c: RawClient, code: int = 1000) -> None:
    """Close with ``code``: expect the same code back, then the server's TCP close."""
    await c.send_close(code)
    await c.expect_close_code(code)


# =========================================================================== 1 framing

FRAMING_LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]


@pytest.mark.parametrize("chopped", [False, True], ids=["one-write", "chopped"])
@pytest.mark.parametrize("length", FRAMING_LENGTHS)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_1_echo_lengths(client: RawClient, opcode: int, length: int, chopped: bool) -> None:
    data = payload(opcode, length)
    frame = build_frame(opcode, data, mask=True)
    chunks = chop_plan(len(frame)) if chopped else None
    await client.send_raw(frame, chunks=chunks, delay=0.001 if chopped else 0.0)
    message = await client.recv_data()
    assert message.opcode == opcode and message.data == data
    # The server answers in one unmasked, unfragmented, minimally encoded frame.
    (frame_back,) = message.frames
    assert not frame_back.masked and frame_back.fin and frame_back.rsv == 0
    assert frame_back.length_form == (7 if length < 126 else 16 if length < 65536 else 64)
    await close_cleanly(client)


@pytest.mark.parametrize("chopped", [False, True], ids=["one-write", "chopped"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_1_echo_16_mib(client: RawClient, opcode: int, chopped: bool) -> None:
    """The largest message ``wskit echo`` takes (16 MiB) comes back whole."""
    assert 16 * MiB == ECHO_MAX_SIZE
    data = payload(opcode, ECHO_MAX_SIZE)
    chunks = chop_plan(len(data)) if chopped else None
    await echo_check(client, opcode, data, chunks=chunks, delay=0.001 if chopped else 0.0)
    await close_cleanly(client)


async def test_1_over_16_mib_fails_before_the_payload(client: RawClient) -> None:
    """A header announcing 16 MiB + 1 is refused (1009) without waiting for the payload."""
    await client.send_frame(OP_BINARY, b"\x00" * 10, length=ECHO_MAX_SIZE + 1)
    await client.expect_close_code(1009, timeout=5)


async def test_1_many_small_messages_in_one_write(client: RawClient) -> None:
    frames = b"".join(build_frame(OP_TEXT, b"%d" % i, mask=True) for i in range(200))
    await client.send_raw(frames)
    for i in range(200):
        assert (await client.recv_data()).data == b"%d" % i
    await close_cleanly(client)


async def test_1_request_and_first_frame_in_one_segment(echo: Target) -> None:
    """Frames sent right behind the upgrade request are not lost."""
    reader, writer = await asyncio.open_connection(echo.host, echo.port)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    request = (
        f"GET / HTTP/1.1\r\nHost: {echo.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    writer.write(request + build_frame(OP_TEXT, b"early", mask=True))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {accept_for(key)}".encode() in head
    assert await asyncio.wait_for(reader.readexactly(7), 5) == b"\x81\x05early"
    writer.close()


async def test_1_zero_masking_key(client: RawClient) -> None:
    await client.send_frame(OP_TEXT, b"zero key", mask=b"\x00\x00\x00\x00")
    assert (await client.recv_data()).data == b"zero key"
    await close_cleanly(client)


@pytest.mark.parametrize(
    ("size", "form"),
    [(0, 16), (5, 16), (125, 16), (5, 64), (126, 64), (65535, 64)],
    ids=["0-in-16", "5-in-16", "125-in-16", "5-in-64", "126-in-64", "65535-in-64"],
)
async def test_1_non_minimal_length_fails(client: RawClient, size: int, form: int) -> None:
    """RFC 6455 5.2: the minimal number of bytes MUST be used to encode the length."""
    await client.send_frame(OP_BINARY, b"x" * size, length_form=form)
    await client.expect_close_code(1002)


@pytest.mark.parametrize("length", [2**63, 2**63 + 5, 2**64 - 1], ids=["2^63", "2^63+5", "2^64-1"])
async def test_1_64_bit_length_with_msb_set_fails(client: RawClient, length: int) -> None:
    await client.send_frame(OP_BINARY, b"x" * 5, length=length)
    await client.expect_close_code(1002, timeout=5)


# =========================================================================== 2 ping/pong


@pytest.mark.parametrize("size", [0, 1, 10, 64, 124, 125])
async def test_2_ping_is_answered_with_same_payload(client: RawClient, size: int) -> None:
    data = text_payload(size)
    await client.send_frame(OP_PING, data)
    pong = await client.recv_message()
    assert pong.opcode == OP_PONG and pong.data == data
    assert not pong.frames[0].masked
    await close_cleanly(client)


async def test_2_every_ping_size_0_to_125(client: RawClient) -> None:
    for size in range(126):
        data = binary_payload(size)
        await client.send_frame(OP_PING, data)
        pong = await client.recv_message()
        assert (pong.opcode, pong.data) == (OP_PONG, data), size
    await close_cleanly(client)


async def test_2_binary_ping_payload(client: RawClient) -> None:
    data = bytes([0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF, 0xC0, 0x80, 0xED, 0xA0])
    await client.send_frame(OP_PING, data)
    pong = await client.recv_message()
    assert (pong.opcode, pong.data) == (OP_PONG, data)
    await close_cleanly(client)


async def test_2_ping_chopped_bytewise(client: RawClient) -> None:
    data = b"Hello, wskit!"
    await client.send_frame(OP_PING, data, chunks=1, delay=0.001)
    pong = await client.recv_message()
    assert (pong.opcode, pong.data) == (OP_PONG, data)
    await close_cleanly(client)


@pytest.mark.parametrize("form", [16, 64])
async def test_2_ping_over_125_bytes_fails(client: RawClient, form: int) -> None:
    await client.send_frame(OP_PING, b"*" * 126, length_form=form)
    await client.expect_close_code(1002)


@pytest.mark.parametrize("size", [0, 9, 125])
async def test_2_unsolicited_pong_is_ignored(client: RawClient, size: int) -> None:
    await client.send_frame(OP_PONG, b"p" * size)
    await client.send_frame(OP_TEXT, b"after the pong")
    # The very next frame is the echo: nothing answered the pong.
    assert (await client.recv_message()).data == b"after the pong"
    await close_cleanly(client)


async def test_2_unsolicited_pong_then_ping(client: RawClient) -> None:
    await client.send_frame(OP_PONG, b"unsolicited")
    await client.send_frame(OP_PING, b"solicited")
    pong = await client.recv_message()
    assert (pong.opcode, pong.data) == (OP_PONG, b"solicited")
    await close_cleanly(client)


@pytest.mark.parametrize("chopped", [False, True], ids=["one-write", "chopped"])
async def test_2_ten_pings_in_a_row(client: RawClient, chopped: bool) -> None:
    frames = b"".join(build_frame(OP_PING, b"ping %d" % i, mask=True) for i in range(10))
    await client.send_raw(frames, chunks=3 if chopped else None, delay=0.0005)
    for i in range(10):
        pong = await client.recv_message()
        assert (pong.opcode, pong.data) == (OP_PONG, b"ping %d" % i)
    await close_cleanly(client)


# =========================================================================== 3 reserved bits

RSV_KINDS = {
    "text": (OP_TEXT, b"Hello"),
    "binary": (OP_BINARY, b"\x00\xff\x01"),
    "ping": (OP_PING, b"ping"),
    "pong": (OP_PONG, b"pong"),
    "close": (OP_CLOSE, close_payload(1000)),
}


@pytest.mark.parametrize("kind", list(RSV_KINDS))
@pytest.mark.parametrize("rsv", range(1, 8), ids=[f"rsv={r:03b}" for r in range(1, 8)])
async def test_3_reserved_bits_fail(client: RawClient, rsv: int, kind: str) -> None:
    """No extension negotiated: any reserved bit fails the connection with 1002.

    A valid message goes first and is echoed; a ping right behind the bad
    frame must get no pong.
    """
    opcode, data = RSV_KINDS[kind]
    await client.send_frame(OP_TEXT, b"valid first")
    assert (await client.recv_data()).data == b"valid first"
    wire = build_frame(opcode, data, rsv=rsv, mask=True) + build_frame(OP_PING, b"after", mask=True)
    chunks = 1 if rsv in (3, 6) else None  # some cases chopped byte by byte
    await client.send_raw(wire, chunks=chunks, delay=0.0005)
    await client.expect_close_code(1002)


async def test_3_valid_message_and_bad_frame_in_one_segment(client: RawClient) -> None:
    """Both orders the RFC allows: the echo then the close, or the close alone.

    Never a pong for the ping behind the bad frame, never the echo after the close.
    """
    wire = (
        build_frame(OP_TEXT, b"valid first", mask=True)
        + build_frame(OP_TEXT, b"bad", rsv=RSV2, mask=True)
        + build_frame(OP_PING, b"after", mask=True)
    )
    await client.send_raw(wire)
    first = await client.recv_message()
    if first.opcode == OP_TEXT:
        assert first.data == b"valid first"
        await client.expect_close_code(1002)
    else:
        assert first.opcode == OP_CLOSE and first.frames[0].close_code == 1002
        await client.expect_eof()


async def test_3_echo_of_earlier_message_arrives_before_failure(client: RawClient) -> None:
    wire = build_frame(OP_TEXT, b"valid first", mask=True) + build_frame(
        OP_TEXT, b"bad", rsv=RSV1, mask=True
    )
    await client.send_raw(wire)
    assert (await client.recv_message()).data == b"valid first"
    await client.expect_close_code(1002)


@pytest.mark.parametrize("rsv", [RSV2, RSV3, RSV2 | RSV3])
async def test_3_rsv2_rsv3_fail_even_with_deflate(echo: Target, rsv: int) -> None:
    c = await echo.client("permessage-deflate")
    try:
        assert c.deflate is not None
        await c.send_frame(OP_TEXT, b"Hello", rsv=RSV1 | rsv)
        await c.expect_close_code(1002)
    finally:
        await c.aclose()


# =========================================================================== 4 opcodes

RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
async def test_4_reserved_opcode_fails(client: RawClient, opcode: int) -> None:
    await client.send_frame(opcode, b"")
    await client.expect_close_code(1002)


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
async def test_4_reserved_opcode_after_valid_message(client: RawClient, opcode: int) -> None:
    wire = (
        build_frame(OP_TEXT, b"first", mask=True)
        + build_frame(opcode, b"reserved payload", mask=True)
        + build_frame(OP_PING, b"", mask=True)
    )
    await client.send_raw(wire, chunks=1, delay=0.0002)
    assert (await client.recv_data()).data == b"first"
    await client.expect_close_code(1002)


# =========================================================================== 5 fragmentation


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG], ids=["ping", "pong"])
async def test_5_fragmented_control_frame_fails(client: RawClient, opcode: int) -> None:
    await client.send_frame(opcode, b"frag1", fin=False)
    await client.send_frame(OP_CONT, b"frag2", fin=True)
    await client.expect_close_code(1002)


@pytest.mark.parametrize("chop", [None, 1], ids=["frames", "bytewise"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_5_fragmented_message_echoed_whole(
    client: RawClient, opcode: int, chop: int | None
) -> None:
    data = payload(opcode, 300)
    await client.send_message(opcode, data, frame_size=70, chunks=chop, delay=0.0002)
    message = await client.recv_data()
    assert (message.opcode, message.data) == (opcode, data)
    await close_cleanly(client)


@pytest.mark.parametrize("chop", [None, 1], ids=["frames", "bytewise"])
async def test_5_ping_between_fragments_answered_in_between(
    client: RawClient, chop: int | None
) -> None:
    """Each pong arrives while the message it interrupted is still open."""
    fragments = [b"frag1 ", b"frag2 ", b"frag3 ", b"frag4 ", b"frag5"]
    for i, fragment in enumerate(fragments):
        last = i == len(fragments) - 1
        await client.send_raw(
            build_frame(OP_TEXT if i == 0 else OP_CONT, fragment, fin=last, mask=True),
            chunks=chop,
            delay=0.0002,
        )
        if i in (1, 3):
            await client.send_frame(OP_PING, b"ping %d" % i, chunks=chop, delay=0.0002)
            pong = await client.recv_message()
            assert (pong.opcode, pong.data) == (OP_PONG, b"ping %d" % i)
    message = await client.recv_data()
    assert message.data == b"".join(fragments)
    await close_cleanly(client)


async def test_5_pings_and_pong_interleaved_in_one_write(client: RawClient) -> None:
    wire = (
        build_frame(OP_TEXT, b"a", fin=False, mask=True)
        + build_frame(OP_PING, b"1", mask=True)
        + build_frame(OP_CONT, b"b", fin=False, mask=True)
        + build_frame(OP_PONG, b"unsolicited", mask=True)
        + build_frame(OP_PING, b"2", mask=True)
        + build_frame(OP_CONT, b"c", fin=True, mask=True)
    )
    await client.send_raw(wire)
    got = [await client.recv_message() for _ in range(3)]
    assert [(m.opcode, m.data) for m in got] == [
        (OP_PONG, b"1"),
        (OP_PONG, b"2"),
        (OP_TEXT, b"abc"),
    ]
    await close_cleanly(client)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
@pytest.mark.parametrize("chop", [None, 1], ids=["frames", "bytewise"])
async def test_5_continuation_without_start_fails(
    client: RawClient, fin: bool, chop: int | None
) -> None:
    wire = build_frame(OP_CONT, b"orphan", fin=fin, mask=True) + build_frame(
        OP_TEXT, b"never echoed", mask=True
    )
    await client.send_raw(wire, chunks=chop, delay=0.0002)
    await client.expect_close_code(1002)


async def test_5_continuation_after_complete_message_fails(client: RawClient) -> None:
    wire = (
        build_frame(OP_TEXT, b"frag1", fin=False, mask=True)
        + build_frame(OP_CONT, b"frag2", fin=True, mask=True)
        + build_frame(OP_CONT, b"frag3", fin=False, mask=True)
        + build_frame(OP_TEXT, b"frag4", fin=True, mask=True)
    )
    await client.send_raw(wire[: -2 * (2 + 4 + 5)])
    assert (await client.recv_data()).data == b"frag1frag2"
    await client.send_raw(wire[-2 * (2 + 4 + 5) :])
    await client.expect_close_code(1002)


@pytest.mark.parametrize(
    ("first", "second"),
    [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT), (OP_BINARY, OP_BINARY)],
    ids=["text-text", "text-binary", "binary-text", "binary-binary"],
)
@pytest.mark.parametrize("second_fin", [True, False], ids=["fin", "no-fin"])
async def test_5_new_data_frame_inside_fragmented_message_fails(
    client: RawClient, first: int, second: int, second_fin: bool
) -> None:
    await client.send_frame(first, b"start", fin=False)
    await client.send_frame(second, b"intruder", fin=second_fin)
    await client.expect_close_code(1002)


async def test_5_many_one_byte_fragments(client: RawClient) -> None:
    """1000 fragments of one byte, splitting multibyte characters between frames."""
    data = text_payload(1000)
    await client.send_message(OP_TEXT, data, frame_size=1)
    message = await client.recv_data()
    assert message.data == data and message.text == data.decode()
    await close_cleanly(client)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_5_empty_fragments(client: RawClient, opcode: int) -> None:
    wire = (
        build_frame(opcode, b"", fin=False, mask=True)
        + build_frame(OP_CONT, b"", fin=False, mask=True)
        + build_frame(OP_CONT, b"x", fin=False, mask=True)
        + build_frame(OP_CONT, b"", fin=True, mask=True)
        + build_frame(opcode, b"", fin=False, mask=True)
        + build_frame(OP_CONT, b"", fin=True, mask=True)
    )
    await client.send_raw(wire)
    assert [(await client.recv_data()).data for _ in range(2)] == [b"x", b""]
    await close_cleanly(client)


async def test_5_close_inside_fragmented_message(client: RawClient) -> None:
    """A close frame may interrupt a message; the partial message is dropped."""
    await client.send_frame(OP_TEXT, b"never finished", fin=False)
    await client.send_close(1000)
    await client.expect_close_code(1000)


# =========================================================================== 6 UTF-8

VALID_TEXTS = {
    "ascii": "Hello-µ@ßöäüàá-UTF-8!!",
    "greek": "κόσμε",
    "nul": "\x00",
    "u+007f": "\x7f",
    "u+0080": "\u0080",
    "u+07ff": "\u07ff",
    "u+0800": "\u0800",
    "u+d7ff": "\ud7ff",
    "u+e000": "\ue000",
    "u+fffd": "\ufffd",
    "u+fffe": "\ufffe",
    "u+ffff": "\uffff",
    "u+10000": "\U00010000",
    "u+10ffff": "\U0010ffff",
    "boundaries": "\x7f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
    "four-byte": "😀🎉𝄞𐍈" * 8,
    "mixed": "aκ€😀" * 40,
}

INVALID_UTF8 = {
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-nul": b"\xc0\x80",
    "overlong-max-2": b"\xc1\xbf",
    "overlong-max-3": b"\xe0\x9f\xbf",
    "overlong-max-4": b"\xf0\x8f\xbf\xbf",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "greek-surrogate": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f5": b"\xf5\x80\x80\x80",
    "f7": b"\xf7\xbf\xbf\xbf",
    "five-byte": b"\xf8\x88\x80\x80\x80",
    "six-byte": b"\xfc\x84\x80\x80\x80\x80",
    "lone-continuation-80": b"\x80",
    "lone-continuation-bf": b"\xbf",
    "continuations-in-text": b"a\x80\xbfb",
    "fe": b"\xfe",
    "ff": b"\xff",
    "fe-fe-ff-ff": b"\xfe\xfe\xff\xff",
    "start-then-ascii": b"\xc2a",
    "start-then-start": b"\xc2\xc2",
    "three-byte-cut-by-ascii": b"\xe0\xa0a",
    "truncated-2": b"hello\xce",
    "truncated-3": b"hello\xe1\xbd",
    "truncated-4": b"hello\xf0\x90\x80",
    "lone-start-at-end": b"\xc2",
}


@pytest.mark.parametrize("mode", ["frame", "fragments", "bytewise"])
@pytest.mark.parametrize("name", list(VALID_TEXTS))
async def test_6_valid_utf8_echoed(client: RawClient, name: str, mode: str) -> None:
    data = VALID_TEXTS[name].encode()
    if mode == "frame":
        await client.send_message(OP_TEXT, data)
    elif mode == "fragments":
        # One byte per frame: every multibyte character is split across frames.
        await client.send_message(OP_TEXT, data, frame_size=1)
    else:
        await client.send_message(OP_TEXT, data, chunks=1, delay=0.0002)
    message = await client.recv_data()
    assert message.opcode == OP_TEXT and message.data == data
    await close_cleanly(client)


@pytest.mark.parametrize("mode", ["frame", "fragments", "bytewise"])
@pytest.mark.parametrize("name", list(INVALID_UTF8))
async def test_6_invalid_utf8_fails_1007(client: RawClient, name: str, mode: str) -> None:
    data = INVALID_UTF8[name]
    if mode == "frame":
        await client.send_message(OP_TEXT, data)
    elif mode == "fragments":
        await client.send_message(OP_TEXT, data, frame_size=1)
    else:
        await client.send_message(OP_TEXT, data, chunks=1, delay=0.0002)
    await client.expect_close_code(1007)


async def test_6_invalid_utf8_after_valid_message(client: RawClient) -> None:
    await client.send_message(OP_TEXT, "κόσμε".encode())
    assert (await client.recv_data()).text == "κόσμε"
    await client.send_message(OP_TEXT, b"\xce\xba\xed\xa0\x80")
    await client.expect_close_code(1007)


@pytest.mark.parametrize(
    "name",
    [
        "overlong-slash-2",
        "overlong-max-3",
        "surrogate-d800",
        "greek-surrogate",
        "above-10ffff",
        "f5",
        "lone-continuation-80",
        "fe",
        "start-then-ascii",
    ],
)
async def test_6_fail_fast_in_first_fragment(client: RawClient, name: str) -> None:
    """Invalid UTF-8 in the first fragment fails with 1007 before the message ends.

    The final fragment is only sent after the close frame arrived, so the
    server cannot have waited for the end of the message.
    """
    await client.send_frame(OP_TEXT, b"valid prefix " + INVALID_UTF8[name], fin=False)
    await client.send_frame(OP_CONT, b" more valid text", fin=False)
    close = await client.expect_close(timeout=5)
    assert close.close_code == 1007
    await client.send_frame(OP_CONT, b"the end", fin=True)  # too late: ignored
    await client.expect_eof()


async def test_6_fail_fast_in_compressed_first_fragment(echo: Target) -> None:
    """Compressed text is inflated and checked frame by frame: 1007 before the last fragment."""
    c = await echo.client("permessage-deflate")
    try:
        assert c.deflater is not None
        body = c.deflater.compress(b"\xed\xa0\x80" + b"abcdefgh" * 3000)
        await c.send_frame(OP_TEXT, body[: len(body) // 2], rsv=RSV1, fin=False)
        close = await c.expect_close(timeout=5)
        assert close.close_code == 1007
        await c.send_frame(OP_CONT, body[len(body) // 2 :], fin=True)
        await c.expect_eof()
    finally:
        await c.aclose()


async def test_6_fail_fast_in_middle_fragment(client: RawClient) -> None:
    await client.send_frame(OP_TEXT, "κόσμε ".encode(), fin=False)
    await client.send_frame(OP_CONT, b"\xed\xa0\x80", fin=False)
    close = await client.expect_close(timeout=5)
    assert close.close_code == 1007
    await client.expect_eof()


async def test_6_fail_fast_inside_one_frame(client: RawClient) -> None:
    """Invalid UTF-8 at the start of a large frame fails before the frame is complete."""
    data = b"\xf4\x90\x80\x80" + b"a" * 10_000
    frame = build_frame(OP_TEXT, data, mask=True)
    await client.send_raw(frame[:100])
    close = await client.expect_close(timeout=5)
    assert close.close_code == 1007
    await client.send_raw(frame[100:])
    await client.expect_eof()


# =========================================================================== 7 close

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CLOSE_CODES += [3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
async def test_7_valid_close_code_echoed(client: RawClient, code: int) -> None:
    await client.send_close(code, "bye")
    await client.expect_close_code(code)


@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
async def test_7_invalid_close_code_fails(client: RawClient, code: int) -> None:
    await client.send_close(code)
    await client.expect_close_code(1002)


async def test_7_close_without_code(client: RawClient) -> None:
    await client.send_frame(OP_CLOSE, b"")
    close = await client.expect_close_code(None)
    assert close.payload == b""


async def test_7_close_with_one_byte_payload_fails(client: RawClient) -> None:
    await client.send_frame(OP_CLOSE, b"\x03")
    await client.expect_close_code(1002)


@pytest.mark.parametrize("reason", [b"\xce\xba\xed\xa0\x80", b"\xff", b"ok\xc0\xaf"])
async def test_7_close_reason_invalid_utf8_fails(client: RawClient, reason: bytes) -> None:
    await client.send_frame(OP_CLOSE, close_payload(1000, reason))
    await client.expect_close_code(1007)


async def test_7_close_with_valid_utf8_reason(client: RawClient) -> None:
    await client.send_close(1000, "κόσμε 😀")
    await client.expect_close_code(1000)


async def test_7_close_with_max_reason(client: RawClient) -> None:
    reason = b"*" * 123  # 2 + 123 = 125 bytes, the largest control payload
    await client.send_close(1000, reason)
    close = await client.expect_close_code(1000)
    assert close.close_reason in (b"", reason)


async def test_7_close_payload_over_125_fails(client: RawClient) -> None:
    await client.send_frame(OP_CLOSE, close_payload(1000, b"*" * 124))
    await client.expect_close_code(1002)


async def test_7_frames_after_close_are_ignored(client: RawClient) -> None:
    """After its close frame nothing is answered; the server closes TCP first."""
    wire = (
        build_frame(OP_CLOSE, close_payload(1000), mask=True)
        + build_frame(OP_TEXT, b"after close", mask=True)
        + build_frame(OP_PING, b"after close", mask=True)
        + build_frame(OP_CLOSE, close_payload(1001), mask=True)
    )
    await client.send_raw(wire)
    # expect_close_code reads the close, then insists on EOF with nothing more,
    # and without us closing our side first.
    await client.expect_close_code(1000, timeout=3)


async def test_7_frames_sent_later_after_close_are_ignored(client: RawClient) -> None:
    await client.send_close(1000)
    close = await client.expect_close(timeout=3)
    assert close.close_code == 1000
    await client.send_frame(OP_PING, b"too late")
    await client.expect_eof(timeout=3)


async def test_7_message_then_close_in_one_write(client: RawClient) -> None:
    """The close may overtake the echo (the server owes no more data), but nothing else may."""
    await client.send_raw(
        build_frame(OP_TEXT, b"last words", mask=True)
        + build_frame(OP_CLOSE, close_payload(1000), mask=True)
    )
    frame = await client.recv_message()
    if frame.opcode == OP_TEXT:
        assert frame.data == b"last words"
        frame = await client.recv_message()
    assert frame.opcode == OP_CLOSE
    assert frame.frames[0].close_code == 1000
    await client.expect_eof()


async def test_7_close_after_fragment_and_ping(client: RawClient) -> None:
    await client.send_frame(OP_TEXT, b"part", fin=False)
    await client.send_frame(OP_PING, b"p")
    pong = await client.recv_message()
    assert (pong.opcode, pong.data) == (OP_PONG, b"p")
    await client.send_close(1000)
    await client.expect_close_code(1000)


async def test_7_tcp_drop_without_close(echo: Target) -> None:
    """A client vanishing mid-message does not hurt the server (checked at teardown)."""
    c = await echo.client()
    await c.send_frame(OP_BINARY, b"x" * 10, length=1000)
    await c.aclose()
    c2 = await echo.client()
    await echo_check(c2, OP_TEXT, b"still alive")
    await close_cleanly(c2)


# =========================================================================== 9 sizes

SIZE_CASES = [
    (1 * MiB, None, None),
    (1 * MiB, 65536, None),
    (1 * MiB, None, 4096),
    (4 * MiB, None, None),
    (4 * MiB, 262144, None),
    (4 * MiB, 1 * MiB, 65536),
]


@pytest.mark.parametrize(
    ("size", "frame_size", "chunk"),
    SIZE_CASES,
    ids=[f"{s // MiB}MiB-frames{f or 'whole'}-writes{c or 'whole'}" for s, f, c in SIZE_CASES],
)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_9_large_messages(
    client: RawClient, opcode: int, size: int, frame_size: int | None, chunk: int | None
) -> None:
    data = payload(opcode, size)
    await echo_check(client, opcode, data, frame_size=frame_size, chunks=chunk)
    await close_cleanly(client)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_9_many_messages_pipelined(client: RawClient, opcode: int) -> None:
    """200 messages of 4 KiB sent without waiting: all echoed in order."""
    messages = [payload(opcode, 4096 + i) for i in range(200)]
    await client.send_raw(b"".join(build_frame(opcode, m, mask=True) for m in messages))
    for m in messages:
        assert (await client.recv_data()).data == m
    await close_cleanly(client)


# =========================================================================== 12/13 deflate

DEFLATE_OFFERS = {
    "plain": "permessage-deflate",
    "client_max_window_bits": "permessage-deflate; client_max_window_bits",
    **{
        f"client_max_window_bits={n}": f"permessage-deflate; client_max_window_bits={n}"
        for n in range(8, 16)
    },
    **{
        f"server_max_window_bits={n}": f"permessage-deflate; server_max_window_bits={n}"
        for n in range(8, 16)
    },
    "server_no_context_takeover": "permessage-deflate; server_no_context_takeover",
    "client_no_context_takeover": "permessage-deflate; client_no_context_takeover",
    "both_no_context_takeover": (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    ),
    "all-9": (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=9"
    ),
}
DEFLATE_SIZES = [16, 64, 256, 1024, 4096, 32768, 131072]


def offered(offer: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in offer.split(";")[1:]:
        name, eq, value = part.strip().partition("=")
        params[name] = value if eq else None
    return params


def check_agreement(offer: str, c: RawClient) -> None:
    """The response follows RFC 7692 section 7.1 for this offer."""
    assert c.deflate is not None, f"permessage-deflate declined for {offer!r}"
    asked, agreed = offered(offer), c.deflate.raw
    if "server_no_context_takeover" in asked:
        assert "server_no_context_takeover" in agreed
    if "server_max_window_bits" in asked:
        bits = agreed.get("server_max_window_bits")
        assert bits is not None and int(bits) <= int(asked["server_max_window_bits"] or 15)
    if "client_max_window_bits" not in asked:
        assert "client_max_window_bits" not in agreed
    elif asked["client_max_window_bits"] is not None and "client_max_window_bits" in agreed:
        assert int(agreed["client_max_window_bits"] or 0) <= int(asked["client_max_window_bits"])


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("offer_name", list(DEFLATE_OFFERS))
async def test_12_deflate_echo(echo: Target, offer_name: str, binary: bool) -> None:
    """Compressed messages of every size come back compressed and decode with the agreed window."""
    offer = DEFLATE_OFFERS[offer_name]
    # zlib is lenient about windows unless made strict; that costs time, so only
    # where the server was asked for a small window.
    strict = "server_max_window_bits" in offer
    c = await echo.client(offer, strict_inflate=strict)
    try:
        check_agreement(offer, c)
        assert c.inflater is not None and c.deflate is not None
        assert c.inflater.window_bits == c.deflate.server_max_window_bits
        opcode = OP_BINARY if binary else OP_TEXT
        for size in DEFLATE_SIZES:
            data = compressible(size, binary)
            for compress in (True, False):
                await c.send_message(opcode, data, compress=compress)
                message = await c.recv_data(timeout=10)
                assert message.opcode == opcode
                assert message.data == data, f"size {size}: the echo differs"
                if size >= 256:
                    assert message.compressed, f"size {size}: RSV1 not set"
                    assert message.wire_size < size, "compression did not shrink the message"
        await close_cleanly(c)
    finally:
        await c.aclose()


@pytest.mark.parametrize("offer_name", list(DEFLATE_OFFERS))
async def test_13_context_takeover(echo: Target, offer_name: str) -> None:
    """The same message twice: the second is smaller on the wire only with context takeover."""
    offer = DEFLATE_OFFERS[offer_name]
    c = await echo.client(offer, strict_inflate=True)
    try:
        assert c.deflate is not None
        bits = c.deflate.server_max_window_bits
        # Small enough for the whole first message to sit in the window.
        # zlib never reaches back further than the window minus 262 bytes.
        data = compressible(max(128, min(1024, (2**bits - 262) // 2)), seed=7)
        sizes = []
        for _ in range(3):
            await c.send_message(OP_TEXT, data, compress=True)
            message = await c.recv_data()
            assert message.data == data and message.compressed
            sizes.append(message.wire_size)
        if c.deflate.server_no_context_takeover:
            assert sizes[0] == sizes[1] == sizes[2], sizes
        elif bits >= 9:
            assert sizes[1] < sizes[0] // 2 and sizes[2] < sizes[0] // 2, sizes
        await close_cleanly(c)
    finally:
        await c.aclose()


@pytest.mark.parametrize("frame_size", [1, 100, 4096])
async def test_12_fragmented_compressed_message(echo: Target, frame_size: int) -> None:
    c = await echo.client("permessage-deflate; client_max_window_bits")
    try:
        data = compressible(20000)
        await c.send_message(OP_TEXT, data, compress=True, frame_size=frame_size)
        assert (await c.recv_data()).data == data
        await close_cleanly(c)
    finally:
        await c.aclose()


async def test_12_large_compressed_messages(echo: Target) -> None:
    c = await echo.client("permessage-deflate")
    try:
        for data in (compressible(1 * MiB), compressible(2 * MiB, True)):
            await c.send_message(OP_BINARY, data, compress=True, frame_size=65536)
            message = await c.recv_data(timeout=20)
            assert message.data == data and message.compressed
        await close_cleanly(c)
    finally:
        await c.aclose()


async def test_12_ping_between_compressed_fragments(echo: Target) -> None:
    c = await echo.client("permessage-deflate")
    try:
        data = compressible(5000)
        frames = c.message_frames(OP_TEXT, data, compress=True, frame_size=500)
        assert len(frames) >= 3
        await c.send_raw(b"".join(frames[:2]))
        await c.send_frame(OP_PING, b"mid")
        pong = await c.recv_message()
        assert (pong.opcode, pong.data) == (OP_PONG, b"mid")
        await c.send_raw(b"".join(frames[2:]))
        assert (await c.recv_data()).data == data
        await close_cleanly(c)
    finally:
        await c.aclose()


async def test_12_rsv1_on_continuation_fails(echo: Target) -> None:
    c = await echo.client("permessage-deflate")
    try:
        compressed = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = compressed.compress(b"hello world") + compressed.flush(zlib.Z_SYNC_FLUSH)
        await c.send_frame(OP_TEXT, body[:5], rsv=RSV1, fin=False)
        await c.send_frame(OP_CONT, body[5:-4], rsv=RSV1, fin=True)
        await c.expect_close_code(1002)
    finally:
        await c.aclose()


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
async def test_12_rsv1_on_control_frame_fails(echo: Target, opcode: int) -> None:
    c = await echo.client("permessage-deflate")
    try:
        body = close_payload(1000) if opcode == OP_CLOSE else b"x"
        await c.send_frame(opcode, body, rsv=RSV1)
        await c.expect_close_code(1002)
    finally:
        await c.aclose()


async def test_12_invalid_deflate_data_fails(echo: Target) -> None:
    c = await echo.client("permessage-deflate")
    try:
        await c.send_frame(OP_BINARY, b"\xff\xff\xff\xff garbage", rsv=RSV1)
        close = await c.expect_close()
        # RFC 7692 only says "fail the connection"; wskit documents 1002.
        assert close.close_code == 1002
        await c.expect_eof()
    finally:
        await c.aclose()


async def test_12_compressed_invalid_utf8_fails_1007(echo: Target) -> None:
    c = await echo.client("permessage-deflate")
    try:
        await c.send_message(OP_TEXT, b"valid " * 50 + b"\xed\xa0\x80", compress=True)
        await c.expect_close_code(1007)
    finally:
        await c.aclose()


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=08",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",
        "x-webkit-deflate-frame",
    ],
)
async def test_12_bad_offer_declined(echo: Target, offer: str) -> None:
    """An offer the server cannot accept is declined (no extension), not an error."""
    c = await echo.client(offer)
    try:
        assert c.response.get("Sec-WebSocket-Extensions") is None
        await c.send_frame(OP_TEXT, b"x", rsv=RSV1)  # so RSV1 is now a protocol error
        await c.expect_close_code(1002)
    finally:
        await c.aclose()


async def test_12_first_acceptable_offer_wins(echo: Target) -> None:
    c = await echo.client(
        "permessage-deflate; foo, permessage-deflate; server_max_window_bits=10, permessage-deflate"
    )
    try:
        assert c.deflate is not None and c.deflate.server_max_window_bits == 10
        await echo_check(c, OP_TEXT, compressible(3000), compress=True)
        await close_cleanly(c)
    finally:
        await c.aclose()


@pytest.mark.parametrize(
    "body",
    [b"\x00", b"\x02\x00"],
    ids=["empty-stored-block", "empty-fixed-block"],
)
async def test_12_compressed_empty_message(echo: Target, body: bytes) -> None:
    """RFC 7692 7.2.3.6: an empty message may be compressed to a single empty block."""
    c = await echo.client("permessage-deflate")
    try:
        await c.send_frame(OP_TEXT, body, rsv=RSV1)
        assert (await c.recv_data()).data == b""
        # The codec is still in step: a real message after it comes through.
        await echo_check(c, OP_TEXT, compressible(2000), compress=True)
        await close_cleanly(c)
    finally:
        await c.aclose()


async def test_12_message_ending_with_bfinal_block(echo: Target) -> None:
    """RFC 7692 7.2.3.4: a sender may end a message with a BFINAL block (a new stream follows)."""
    c = await echo.client("permessage-deflate")
    try:
        for i in range(3):
            data = compressible(3000, seed=i)
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = compressor.compress(data) + compressor.flush(zlib.Z_FINISH)
            await c.send_frame(OP_TEXT, body, rsv=RSV1)
            assert (await c.recv_data()).data == data
        await close_cleanly(c)
    finally:
        await c.aclose()


async def test_12_data_after_bfinal_block_fails(echo: Target) -> None:
    c = await echo.client("permessage-deflate")
    try:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = compressor.compress(b"hello") + compressor.flush(zlib.Z_FINISH) + b"trailing junk"
        await c.send_frame(OP_BINARY, body, rsv=RSV1)
        await c.expect_close_code(1002)
    finally:
        await c.aclose()


# =========================================================================== limits


async def test_limit_decompression_bomb(echo: Target) -> None:
    """265 KB that would inflate to 256 MiB fail with 1009, fast and without the memory.

    The server's peak memory (VmHWM) is compared before and after: inflating
    the bomb to the end would raise it by far more than the 16 MiB limit.
    """
    bomb = deflate_bomb(256)
    assert len(bomb) < 300_000
    c = await echo.client("permessage-deflate")
    try:
        peak_before = echo.peak_memory()
        start = time.monotonic()
        await c.send_frame(OP_BINARY, bomb, rsv=RSV1)
        await c.expect_close_code(1009, timeout=5)
        assert time.monotonic() - start < 3
        peak_after = echo.peak_memory()
        if peak_before is not None and peak_after is not None:
            assert peak_after - peak_before < 64 * MiB, (peak_before, peak_after)
    finally:
        await c.aclose()


async def test_limit_fragmented_bomb_fails_before_the_end(echo: Target) -> None:
    """Fragments inflating to 8 MiB each: 1009 arrives before the last fragment is sent."""
    c = await echo.client("permessage-deflate")
    try:
        # One deflate stream of 24 MiB of zeros cut in three: each third inflates to 8 MiB.
        stream = deflate_bomb(24) + b"\x00\x00\xff\xff"
        third = len(stream) // 3
        fragments = [stream[:third], stream[third : 2 * third], stream[2 * third :]]
        await c.send_frame(OP_BINARY, fragments[0], rsv=RSV1, fin=False)
        await c.send_frame(OP_CONT, fragments[1], fin=False)
        await c.send_frame(OP_CONT, fragments[2], fin=False)  # 24 MiB > 16 MiB
        close = await c.expect_close(timeout=5)
        assert close.close_code == 1009
        await c.send_frame(OP_CONT, b"", fin=True)  # the end of the message, too late
        await c.expect_eof()
    finally:
        await c.aclose()


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
async def test_limit_max_size_exactly(small_echo: Target, opcode: int) -> None:
    c = await small_echo.client()
    try:
        await echo_check(c, opcode, payload(opcode, 1024))
        await echo_check(c, opcode, payload(opcode, 1020), frame_size=100)
        await close_cleanly(c)
    finally:
        await c.aclose()


@pytest.mark.parametrize("mode", ["frame", "fragments", "header-only", "compressed"])
async def test_limit_over_max_size_fails_1009(small_echo: Target, mode: str) -> None:
    c = await small_echo.client("permessage-deflate")
    try:
        data = binary_payload(1025)
        if mode == "frame":
            await c.send_message(OP_BINARY, data)
        elif mode == "fragments":
            await c.send_message(OP_BINARY, data, frame_size=256)
        elif mode == "header-only":
            # Only the header: the limit is enforced before the payload arrives.
            await c.send_frame(OP_BINARY, b"", length=10 * MiB)
        else:
            await c.send_message(OP_BINARY, bytes(4096), compress=True)
        await c.expect_close_code(1009, timeout=3)
    finally:
        await c.aclose()


async def test_limit_fragmented_text_over_max_size(small_echo: Target) -> None:
    """The sum of the fragments counts: 3 x 400 bytes fail on the third fragment."""
    c = await small_echo.client()
    try:
        await c.send_frame(OP_TEXT, b"a" * 400, fin=False)
        await c.send_frame(OP_CONT, b"b" * 400, fin=False)
        await c.send_frame(OP_CONT, b"c" * 400, fin=False)
        close = await c.expect_close(timeout=3)
        assert close.close_code == 1009
    finally:
        await c.aclose()


# =========================================================================== server-initiated


@pytest.fixture
async def inproc() -> AsyncIterator[wskit.Server]:
    """The CLI's echo handler in-process, closing faster than the default."""
    server = await wskit.serve(
        echo_messages,
        HOST,
        0,
        ping_interval=None,
        close_timeout=0.5,
        check_origin=lambda request: True,
    )
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def test_server_shutdown_closes_with_1001(inproc: wskit.Server) -> None:
    """On shutdown the server starts the closing handshake with 1001, then closes TCP."""
    c = await RawClient.open(HOST, inproc.port)
    try:
        await echo_check(c, OP_TEXT, b"before")
        inproc.close()
        close = await c.expect_close(timeout=5)
        assert close.close_code == 1001
        # Data after the server's close frame is ignored, then our close completes it.
        await c.send_frame(OP_TEXT, b"ignored")
        await c.send_close(1001)
        await c.expect_eof(timeout=5)
    finally:
        await c.aclose()
    await asyncio.wait_for(inproc.wait_closed(), 3)


async def test_server_drops_client_that_never_answers_close(inproc: wskit.Server) -> None:
    c = await RawClient.open(HOST, inproc.port)
    try:
        inproc.close()
        assert (await c.expect_close(timeout=5)).close_code == 1001
        start = time.monotonic()
        await c.expect_eof(timeout=5)  # close_timeout is 0.5 s
        assert time.monotonic() - start < 4
    finally:
        await c.aclose()


async def test_server_keepalive_ping_timeout_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    async with wskit.serve(
        echo_messages, HOST, 0, ping_interval=0.1, ping_timeout=0.2, check_origin=lambda r: True
    ) as server:
        c = await RawClient.open(HOST, server.port)
        try:
            start = time.monotonic()
            ping = await c.recv_frame(timeout=5)
            assert ping.opcode == OP_PING and not ping.masked
            # No pong: pings go on at their interval until the first one times out.
            frame = await c.recv_frame(timeout=5)
            while frame.opcode == OP_PING:
                frame = await c.recv_frame(timeout=5)
            assert frame.opcode == OP_CLOSE and frame.close_code == 1011, frame
            assert 0.25 < time.monotonic() - start < 3
            await c.expect_eof()
        finally:
            await c.aclose()
    # The pings still in flight failed with the connection; that is no error to log.
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_server_keepalive_pong_keeps_connection() -> None:
    async with wskit.serve(
        echo_messages, HOST, 0, ping_interval=0.05, ping_timeout=0.2, check_origin=lambda r: True
    ) as server:
        c = await RawClient.open(HOST, server.port)
        try:
            for _ in range(5):
                ping = await c.recv_frame(timeout=5)
                assert ping.opcode == OP_PING
                await c.send_frame(OP_PONG, ping.payload)
            await echo_check(c, OP_TEXT, b"still open")
        finally:
            await c.aclose()


# =========================================================================== masking


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
async def test_mask_unmasked_client_frame_fails(client: RawClient, opcode: int) -> None:
    body = close_payload(1000) if opcode == OP_CLOSE else b"unmasked"
    await client.send_frame(opcode, body, mask=False)
    await client.expect_close_code(1002)


async def test_mask_unmasked_continuation_fails(client: RawClient) -> None:
    await client.send_frame(OP_TEXT, b"masked", fin=False)
    await client.send_frame(OP_CONT, b"unmasked", fin=True, mask=False)
    await client.expect_close_code(1002)


# =========================================================================== handshake


def upgrade_request(host: str, *, drop: str = "", extra: str = "", method: str = "GET") -> bytes:
    headers = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    headers.pop(drop, None)
    head = f"{method} / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + extra + "\r\n").encode()


async def test_handshake_ok(echo: Target) -> None:
    response, closed = await http_exchange(
        echo.host, echo.port, upgrade_request(echo.host), timeout=0.3
    )
    assert response.status == 101
    assert response.get("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert (response.get("Upgrade") or "").lower() == "websocket"
    assert response.get("Sec-WebSocket-Extensions") is None
    assert response.get("Sec-WebSocket-Protocol") is None
    assert not closed


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
async def test_handshake_wrong_version_426(echo: Target, version: str) -> None:
    request = upgrade_request(echo.host, drop="Sec-WebSocket-Version")
    request = request[:-2] + f"Sec-WebSocket-Version: {version}\r\n\r\n".encode()
    response, closed = await http_exchange(echo.host, echo.port, request)
    assert response.status == 426
    assert response.get("Sec-WebSocket-Version") == "13"
    assert closed


async def test_handshake_missing_version_426(echo: Target) -> None:
    response, _ = await http_exchange(
        echo.host, echo.port, upgrade_request(echo.host, drop="Sec-WebSocket-Version")
    )
    assert response.status == 426
    assert response.get("Sec-WebSocket-Version") == "13"


@pytest.mark.parametrize(
    ("drop", "extra"),
    [
        ("Sec-WebSocket-Key", ""),
        ("Sec-WebSocket-Key", "Sec-WebSocket-Key: c2hvcnQ=\r\n"),  # 5 bytes, not 16
        ("Sec-WebSocket-Key", "Sec-WebSocket-Key: not base64 at all!!\r\n"),
        ("Upgrade", ""),
        ("Host", ""),
    ],
    ids=["missing-key", "short-key", "garbage-key", "missing-upgrade", "missing-host"],
)
async def test_handshake_bad_request_400(echo: Target, drop: str, extra: str) -> None:
    response, closed = await http_exchange(
        echo.host, echo.port, upgrade_request(echo.host, drop=drop, extra=extra)
    )
    assert response.status == 400
    assert response.body, "the refusal should say why"
    assert closed


async def test_handshake_plain_get_426_readable(echo: Target) -> None:
    request = f"GET / HTTP/1.1\r\nHost: {echo.host}\r\nAccept: text/html\r\n\r\n".encode()
    response, closed = await http_exchange(echo.host, echo.port, request)
    assert response.status == 426
    assert (response.get("Content-Type") or "").startswith("text/plain")
    body = response.body.decode()
    assert "WebSocket" in body
    assert closed


async def test_handshake_post_405(echo: Target) -> None:
    response, closed = await http_exchange(
        echo.host, echo.port, upgrade_request(echo.host, method="POST")
    )
    assert response.status == 405
    assert response.get("Allow") == "GET"
    assert closed


async def test_handshake_rejected_client_then_server_still_serves(echo: Target) -> None:
    with pytest.raises(HandshakeFailed) as info:
        await echo.client(extra_headers=[("Sec-WebSocket-Version", "13")])
    assert info.value.response.status in (400, 426)
    c = await echo.client()
    await echo_check(c, OP_TEXT, b"fine")
    await close_cleanly(c)
    await c.aclose()


async def test_handshake_garbage_is_refused(echo: Target) -> None:
    response, closed = await http_exchange(
        echo.host, echo.port, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n"
    )
    assert 400 <= response.status < 500
    assert closed


@pytest.mark.parametrize(
    "extra",
    [
        "Connection: keep-alive, Upgrade\r\n",
        "Connection: Upgrade\r\nConnection: keep-alive\r\n",
        "Upgrade: WebSocket\r\nConnection: upgrade\r\n",
    ],
    ids=["keep-alive-upgrade", "two-connection-headers", "mixed-case"],
)
async def test_handshake_browser_variants_accepted(echo: Target, extra: str) -> None:
    request = upgrade_request(echo.host, drop="Connection", extra=extra)
    if "Upgrade: WebSocket" in extra:
        request = request.replace(b"Upgrade: websocket\r\n", b"", 1)
    response, _ = await http_exchange(echo.host, echo.port, request, timeout=0.2)
    assert response.status == 101
    assert response.get("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            505,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Content-Length: 5\r\n\r\nhello",
            400,
        ),
    ],
    ids=["http-1.0", "request-body"],
)
async def test_handshake_other_refusals(echo: Target, request_bytes: bytes, status: int) -> None:
    response, closed = await http_exchange(echo.host, echo.port, request_bytes)
    assert response.status == status
    assert response.body
    assert closed


async def test_handshake_subprotocol_offered_but_none_spoken(echo: Target) -> None:
    """``wskit echo`` speaks no subprotocol: it must not pick one of the client's."""
    c = await echo.client(extra_headers=[("Sec-WebSocket-Protocol", "chat, superchat")])
    try:
        assert c.response.get("Sec-WebSocket-Protocol") is None
        await echo_check(c, OP_TEXT, b"no subprotocol")
        await close_cleanly(c)
    finally:
        await c.aclose()
