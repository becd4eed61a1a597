"""``wskit connect`` (:mod:`wskit.cli.connect`), as a real process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import wskit
from conftest import unused_port
from wskit.cli.connect import describe, describe_close, parse_header
from wskit.cli.parser import build_parser


def test_connect_formats() -> None:
    assert describe("hello") == "text: hello"
    assert describe(b"hello") == "binary: 5 bytes: 68656c6c6f"
    assert describe(bytes(100)).endswith("00…")
    assert describe_close(1001, "bye") == "1001 (going away) 'bye'"
    assert describe_close(4000, "") == "4000"
    assert parse_header("X-Token: a: b") == ("X-Token", "a: b")
    args = build_parser().parse_args(
        ["connect", "ws://h/", "-H", "A: 1", "--header", "B: 2", "-s", "x", "--max-size", "0"]
    )
    assert (args.header, args.subprotocol, args.max_size) == ([("A", "1"), ("B", "2")], ["x"], None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["connect", "ws://h/", "-H", "no colon"])


class Peer:
    """A ``wskit connect`` subprocess: write lines to it, read what it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Peer:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wskit",
            "connect",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def expect(self, prefix: str, timeout: float = 10) -> str:
        """Read lines until one starts with ``prefix``; return it."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    err = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"no {prefix!r} in {self.lines}; stderr: {err!r}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if line.startswith(prefix):
                    return line

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), 10)


@pytest.fixture
async def peers() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    """Start ``wskit connect`` processes; any still running at the end is killed."""
    started: list[Peer] = []

    async def start_peer(*args: str) -> Peer:
        peer = await Peer.start(*args)
        started.append(peer)
        return peer

    yield start_peer
    for peer in started:
        if peer.process.returncode is None:
            peer.process.kill()
            await peer.process.wait()


class Recorder:
    """A server that echoes, says what it saw, and closes when asked."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.closed: tuple[int | None, str | None] | None = None

    async def __call__(self, conn: wskit.Conn) -> None:
        assert conn.request is not None
        self.headers = list(conn.request.headers.raw_items())
        try:
            async for message in conn:
                if message == "binary please":
                    await conn.send(b"hello")
                elif message == "close 4321":
                    await conn.close(4321, "as you wish")
                elif message == "big":
                    await conn.send("x" * 2000)
                else:
                    await conn.send(message)
        finally:
            await conn.wait_closed()
            self.closed = (conn.close_code, conn.close_reason)


async def test_connect_sends_receives_pings_and_closes(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    recorder = Recorder()
    async with wskit.serve(recorder, "127.0.0.1", 0, subprotocols=["chat"]) as server:
        peer = await peers(
            f"ws://127.0.0.1:{server.port}/", "-H", "X-Token: secret", "--subprotocol", "chat"
        )
        connected = await peer.expect("* connected")
        assert "subprotocol: chat" in connected
        assert "compression: permessage-deflate" in connected
        assert ("X-Token", "secret") in recorder.headers
        peer.write("hello")
        await peer.expect("> hello")
        await peer.expect("< text: hello")
        peer.write("binary please")
        await peer.expect("< binary: 5 bytes: 68656c6c6f")
        peer.write("/binary 00ff")
        await peer.expect("> binary: 2 bytes: 00ff")
        await peer.expect("< binary: 2 bytes: 00ff")
        peer.write("//slash")
        await peer.expect("< text: /slash")
        peer.write("/ping")
        assert (await peer.expect("< pong: ")).endswith(" ms")
        peer.write("/close 999")
        await peer.expect("* cannot close with 999")
        peer.write("/close 4000 bye now")
        await peer.expect("> close: 4000 'bye now'")
        await peer.expect("* closed: 4000")  # the server's echo of the code
        assert await peer.exit_code() == 0
    assert recorder.closed == (4000, "bye now")


async def test_connect_reports_the_server_closing(peers: Callable[..., Awaitable[Peer]]) -> None:
    recorder = Recorder()
    async with wskit.serve(recorder, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        peer = await peers(uri, "--no-compression", "--max-size", "1000")
        assert "compression: none" in await peer.expect("* connected")
        peer.write("close 4321")
        await peer.expect("* closed by the server: 4321 'as you wish'")
        assert await peer.exit_code() == 1

        peer = await peers(uri, "--max-size", "1000")
        await peer.expect("* connected")
        peer.write("big")
        await peer.expect("* failed: 1009 (message too big)")
        assert await peer.exit_code() == 1

        peer = await peers(uri)
        await peer.expect("* connected")
        server.close()
        await peer.expect("* closed by the server: 1001 (going away) 'server shutting down'")
        assert await peer.exit_code() == 0


async def test_connect_closes_at_the_end_of_input(peers: Callable[..., Awaitable[Peer]]) -> None:
    recorder = Recorder()
    async with wskit.serve(recorder, "127.0.0.1", 0) as server:
        peer = await peers(f"ws://127.0.0.1:{server.port}/")
        await peer.expect("* connected")
        peer.write("last words")
        assert peer.process.stdin is not None
        peer.process.stdin.close()
        await peer.expect("< text: last words")
        await peer.expect("* closed: 1000")
        assert await peer.exit_code() == 0
    assert recorder.closed == (1000, "")


async def test_connect_fails_cleanly(peers: Callable[..., Awaitable[Peer]]) -> None:
    port = unused_port()
    peer = await peers(f"ws://127.0.0.1:{port}/")
    await peer.expect(f"* cannot connect to ws://127.0.0.1:{port}/")
    assert await peer.exit_code() == 1
    async with wskit.serve(Recorder(), "127.0.0.1", 0, path="/only") as server:
        peer = await peers(f"ws://127.0.0.1:{server.port}/")
        assert "HTTP 404" in await peer.expect("* server rejected")
        assert await peer.exit_code() == 1
