"""The ``wskit`` command as real processes: ``echo``, ``serve`` and ``connect``.

``wskit demo`` has its own tests, in ``test_demo.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wskit
from conftest import unused_port, wait_for_port
from wskit.cli import build_parser, describe, describe_close, parse_header

APPS = Path(__file__).resolve().parent / "apps"


def app_env() -> dict[str, str]:
    """The environment of a subprocess that imports the apps of ``tests/apps``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS), env.get("PYTHONPATH")]))
    return env


def start(*args: str) -> tuple[subprocess.Popen[str], int]:
    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wskit", *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=app_env(),
    )
    # Wait for the port, but say at once why if the process dies first.
    deadline = time.monotonic() + 30
    while True:
        try:
            wait_for_port(port, timeout=0.5)
        except TimeoutError:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"wskit {args[0]} exited: {out}{err}") from None
            if time.monotonic() > deadline:
                process.kill()
                raise
        else:
            return process, port


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    return process.returncode, err


@pytest.fixture
def echo_server() -> Iterator[int]:
    process, port = start("echo")
    yield port
    code, err = stop(process)
    assert code == 0, err


def test_parser_knows_the_commands() -> None:
    args = build_parser().parse_args(["echo", "--port", "1234", "--no-compression"])
    assert (args.command, args.port, args.no_compression) == ("echo", 1234, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    args = build_parser().parse_args(["serve", "app:hub", "--log-level", "DEBUG", "--path", "/ws"])
    assert (args.command, args.app, args.log_level, args.path) == (
        "serve",
        "app:hub",
        "DEBUG",
        "/ws",
    )
    assert build_parser().parse_args(["--log-level", "INFO", "demo"]).log_level == "INFO"


async def test_echo_returns_every_message_with_its_type(echo_server: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{echo_server}/", max_size=None) as conn:
        assert conn.compression
        for message in ["text", b"\x00\xffbinary", "", b""]:
            await conn.send(message)
            assert await conn.recv() == message
        big = bytes(range(256)) * (16 * 4096)  # 16 MiB
        await conn.send(big)
        assert await conn.recv() == big


async def test_echo_without_compression() -> None:
    process, port = start("echo", "--no-compression")
    try:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as conn:
            assert not conn.compression
            await conn.send("plain")
            assert await conn.recv() == "plain"
    finally:
        code, err = stop(process)
    assert code == 0, err


async def test_echo_on_uvloop() -> None:
    process, port = start("echo", "--loop", "uvloop")
    try:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as conn:
            for message in ["on uvloop", b"\x01" * 100_000]:
                await conn.send(message)
                assert await conn.recv() == message
    finally:
        code, err = stop(process)
    assert code == 0, err


def test_loop_choice_is_checked() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["echo", "--loop", "trio"])
    assert build_parser().parse_args(["serve", "app:hub", "--loop", "uvloop"]).loop == "uvloop"


async def test_echo_closes_normally(echo_server: int) -> None:
    conn = await wskit.connect(f"ws://127.0.0.1:{echo_server}/")
    await conn.send("x")
    assert await conn.recv() == "x"
    await conn.close()
    assert conn.close_code == 1000


def test_shutdown_closes_connections_with_1001() -> None:
    process, port = start("echo")

    async def watch() -> int | None:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as conn:
            await conn.send("ready")
            await conn.recv()
            process.send_signal(signal.SIGTERM)
            with pytest.raises(wskit.ConnectionClosed):
                await asyncio.wait_for(conn.recv(), 10)
            return conn.close_code

    assert asyncio.run(watch()) == 1001
    process.communicate(timeout=15)
    assert process.returncode == 0


# --------------------------------------------------------------------------- wskit serve


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[int]:
    """``wskit serve`` with the arguments of ``@pytest.mark.parametrize("served", ...)``."""
    process, port = start("serve", *request.param)
    yield port
    code, err = stop(process)
    assert code == 0, err


def get(url: str, **kwargs: Any) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5, **kwargs) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


async def hub_request(conn: wskit.Conn, event: str, *args: Any) -> Any:
    """One ws-wrapper request, by hand."""
    await conn.send(json.dumps({"i": 1, "a": [event, *args]}))
    return json.loads(await conn.recv())


@pytest.mark.parametrize("served", [["sample_app:hub"]], indirect=True)
async def test_serve_a_hub_and_its_javascript_client(served: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{served}/") as conn:
        assert await hub_request(conn, "add", 2, 3) == {"i": 1, "d": 5}
    for path in ("/wskit.js", "/wskit.mjs"):
        status, content_type, body = get(f"http://127.0.0.1:{served}{path}")
        assert (status, content_type) == (200, "text/javascript; charset=utf-8")
        assert b"WskitClient" in body


@pytest.mark.parametrize("served", [["sample_app:make_hub", "--path", "/hub"]], indirect=True)
async def test_serve_a_hub_factory_on_a_path(served: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{served}/hub") as conn:
        assert await hub_request(conn, "whoami") == {"i": 1, "d": "made by a factory"}
    with pytest.raises(wskit.HandshakeRejected) as caught:
        await wskit.connect(f"ws://127.0.0.1:{served}/")
    assert caught.value.status == 404


@pytest.mark.parametrize(
    "served", [["sample_app:shout", "--path", "/ws", "--no-compression"]], indirect=True
)
async def test_serve_a_handler(served: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{served}/ws") as conn:
        assert not conn.compression
        assert await conn.recv() == "path /ws"
        await conn.send("hello")
        assert await conn.recv() == "HELLO"
    with pytest.raises(wskit.HandshakeRejected) as caught:
        await wskit.connect(f"ws://127.0.0.1:{served}/elsewhere")
    assert caught.value.status == 404
    # A plain handler has no JavaScript client to serve.
    assert get(f"http://127.0.0.1:{served}/wskit.js")[0] != 200


async def test_serve_over_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    process, port = start(
        "serve", "sample_app:hub", "--tls-cert", str(cert_file), "--tls-key", str(key_file)
    )
    try:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        async with wskit.connect(f"wss://localhost:{port}/", ssl=client_context) as conn:
            assert await hub_request(conn, "add", 20, 22) == {"i": 1, "d": 42}
        status, _, body = get(f"https://localhost:{port}/wskit.mjs", context=client_context)
        assert status == 200 and b"WskitClient" in body
    finally:
        code, err = stop(process)
    assert code == 0, err


def test_serve_closes_connections_with_1001_on_sigterm() -> None:
    process, port = start("serve", "sample_app:shout")

    async def watch() -> tuple[int | None, str | None]:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as conn:
            await conn.recv()
            process.send_signal(signal.SIGTERM)
            with pytest.raises(wskit.ConnectionClosed):
                await asyncio.wait_for(conn.recv(), 10)
            return conn.close_code, conn.close_reason

    assert asyncio.run(watch()) == (1001, "server shutting down")
    out, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert f"wskit serving sample_app:shout on ws://127.0.0.1:{port}/" in out


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("sample_app:not_servable", "is not a Hub, a connection handler"),
        ("sample_app:missing", "has no attribute 'missing'"),
        ("no_such_module:hub", "cannot import no_such_module"),
        ("sample_app", "expected module:attribute"),
    ],
)
def test_serve_refuses_what_it_cannot_serve(target: str, error: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wskit", "serve", target, "--port", "0"],
        capture_output=True,
        text=True,
        env=app_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert error in result.stderr


# --------------------------------------------------------------------------- wskit connect


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
