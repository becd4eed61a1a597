"""The ``uvicorn`` command with ``--ws wskit.uvicorn:WebSocketProtocol``, as users run it.

Each test starts ``python -m uvicorn`` in a subprocess (uvicorn's default
event loop, uvloop, and its default HTTP layer, httptools when installed;
the key tests run with ``--http h11`` and ``--http httptools``) serving an application of
``served_apps.py``: FastAPI, Starlette, wskit's hub through ``asgi_app``.
The peers are the ``websockets`` client, ``wskit.connect``, wskit's
``HubClient``, headless Chromium, and raw sockets for the attacks of
``tests/attacks/test_protocol.py`` (a ping flood that never reads its
pongs, endless empty fragments), whose bounds now hold under uvicorn too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

import wskit
from conftest import unused_port, wait_for_port
from wskit.hub import HubClient
from wskit.protocol.frames import apply_mask

if TYPE_CHECKING:
    from playwright.async_api import Browser

HERE = Path(__file__).resolve().parent
TIMEOUT = 10
MIB = 2**20
WS = "wskit.uvicorn:WebSocketProtocol"


class Uvicorn:
    """A ``python -m uvicorn`` subprocess on a free loopback port."""

    def __init__(self, app: str, *options: str) -> None:
        self.port = unused_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ws",
                WS,
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> str:
        """SIGTERM, wait, and return what uvicorn printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output


@contextlib.contextmanager
def running(app: str, *options: str) -> Iterator[Uvicorn]:
    server = Uvicorn(app, *options)
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def served(app: str, *options: str) -> AsyncIterator[Uvicorn]:
    server = await asyncio.to_thread(Uvicorn, app, *options)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


# -------------------------------------------------------------------------- applications


HTTP_LAYERS = pytest.mark.parametrize("http", ["h11", "httptools"])


@HTTP_LAYERS
async def test_a_fastapi_app_with_the_websockets_client_and_wskit_connect(http: str) -> None:
    async with served("served_apps:fastapi_app", "--http", http) as server:
        async with websockets.connect(server.url("/echo")) as client:
            await client.send("hello")
            assert await client.recv() == "hello"
            await client.send(b"\x00\xff")
            assert await client.recv() == b"\x00\xff"
            response = client.response
            assert response is not None
            assert response.headers["Server"] == "uvicorn"
            assert "permessage-deflate" in response.headers["Sec-WebSocket-Extensions"]
        async with wskit.connect(server.url("/echo")) as conn:
            big = "é" * 300_000  # fragmented by nobody, compressed both ways
            await conn.send(big)
            assert await conn.recv() == big
        async with wskit.connect(server.url("/goodbye")) as conn:
            await conn.send("bye?")
            with pytest.raises(wskit.ConnectionClosed):
                await conn.recv()
            assert (conn.close_code, conn.close_reason) == (4002, "goodbye")


async def test_a_starlette_app_and_wskits_hub() -> None:
    async with served("served_apps:starlette_app") as server:
        async with wskit.connect(server.url("/echo")) as conn:
            await conn.send("over starlette")
            assert await conn.recv() == "over starlette"
        url = server.url("/hub")
        async with HubClient(url) as alice, HubClient(url) as bob:
            heard: asyncio.Queue[str] = asyncio.Queue()
            bob.on("heard", heard.put_nowait)
            assert await alice.request("join", "lobby") is True
            assert await bob.request("join", "lobby") is True
            await alice.emit("shout", "lobby", "hello")
            assert await asyncio.wait_for(heard.get(), TIMEOUT) == "HELLO"


ECHO_IN_PAGE = """
async (path) => {
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  let wake = null;
  ws.onmessage = (e) => { inbox.push(e.data); if (wake) { wake(); wake = null; } };
  const next = async () => {
    while (!inbox.length) await new Promise((r) => { wake = r; });
    return inbox.shift();
  };
  const closed = new Promise((done) => {
    ws.onclose = (e) => done({ code: e.code, reason: e.reason, wasClean: e.wasClean });
  });
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const text = 'x'.repeat(100000) + 'é';
  ws.send(text);
  const textBack = await next();
  ws.send(new Uint8Array([0, 1, 255]).buffer);
  const bytesBack = Array.from(new Uint8Array(await next()));
  ws.close(1000, 'done');
  return { text: textBack === text, bytes: bytesBack, close: await closed };
}
"""


async def test_chromium_talks_to_a_fastapi_app(chromium_browser: Browser) -> None:
    async with served("served_apps:fastapi_app") as server:
        page = await chromium_browser.new_page()
        await page.goto(f"http://127.0.0.1:{server.port}/")
        result: dict[str, Any] = await page.evaluate(ECHO_IN_PAGE, "/echo")
        assert result["text"] is True
        assert result["bytes"] == [0, 1, 255]
        assert result["close"] == {"code": 1000, "reason": "done", "wasClean": True}
        closed: dict[str, Any] = await page.evaluate(
            """async () => {
              const ws = new WebSocket(`ws://${location.host}/goodbye`);
              await new Promise((r) => { ws.onopen = r; });
              ws.send('bye?');
              return await new Promise((done) => {
                ws.onclose = (e) => done({ code: e.code, reason: e.reason, wasClean: e.wasClean });
              });
            }"""
        )
        assert closed == {"code": 4002, "reason": "goodbye", "wasClean": True}


# -------------------------------------------------------------------------- options


@HTTP_LAYERS
async def test_command_line_options_are_honoured(http: str) -> None:
    options = ("--ws-max-size", "1024", "--ws-per-message-deflate", "false", "--no-server-header")
    options += ("--http", http)
    async with (
        served("served_apps:fastapi_app", *options) as server,
        websockets.connect(server.url("/echo")) as client,
    ):
        response = client.response
        assert response is not None
        assert "Server" not in response.headers
        assert "Sec-WebSocket-Extensions" not in response.headers
        await client.send("a" * 1024)
        assert await client.recv() == "a" * 1024
        await client.send("a" * 1025)
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.close_code == 1009


@pytest.mark.parametrize(
    ("protocol", "code", "reason"),
    [
        ("wskit.uvicorn:WebSocketProtocol", 1012, ""),
        ("wskit.uvicorn:WebSocketProtocol1001", 1001, "server shutting down"),
    ],
    ids=["1012", "1001"],
)
async def test_sigterm_closes_open_websockets(protocol: str, code: int, reason: str) -> None:
    async with served("served_apps:fastapi_app", "--ws", protocol) as server:
        conn = await wskit.connect(server.url("/echo"))
        await conn.send("still here")
        assert await conn.recv() == "still here"
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        assert (conn.close_code, conn.close_reason) == (code, reason)


# -------------------------------------------------------------------------- attacks

UPGRADE = (
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def client_frame(b0: int, payload: bytes = b"") -> bytes:
    """A masked frame with a payload under 126 bytes, as a client sends it."""
    key = os.urandom(4)
    return bytes([b0, 0x80 | len(payload)]) + key + apply_mask(payload, key)


def open_websocket(port: int, receive_buffer: int | None = None) -> socket.socket:
    """A raw blocking socket past the opening handshake."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(UPGRADE)
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "no handshake response"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101 "), response
    return sock


def test_a_ping_flood_that_never_reads_its_pongs_stops_being_read() -> None:
    # What grew uvicorn's own WebSocket layer by 117 MB (issue 12).
    with running("served_apps:fastapi_app") as server:
        sock = open_websocket(server.port, receive_buffer=4096)
        before = rss(server.process.pid)
        sock.setblocking(False)
        pings = client_frame(0x89, b"p" * 125) * 8000  # about 1 MB
        view = memoryview(pings)
        sent = 0
        stalled_since: float | None = None
        while sent < 64 * MIB:
            try:
                sent += sock.send(view[sent % len(pings) :])
                stalled_since = None
            except BlockingIOError:
                now = time.monotonic()
                stalled_since = stalled_since or now
                if now - stalled_since > 1.0:
                    break
                time.sleep(0.01)
        assert sent < 32 * MIB, f"the server read {sent} bytes of pings nobody reads the pongs of"
        growth = rss(server.process.pid) - before
        assert growth < 24 * MIB, f"server RSS grew by {growth / MIB:.1f} MiB"
        sock.close()


def test_endless_empty_fragments_end_in_1009() -> None:
    with running("served_apps:fastapi_app", "--ws-max-size", str(MIB)) as server:
        sock = open_websocket(server.port)
        received = bytearray()

        def read() -> None:
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    received.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sock.sendall(client_frame(0x02))
        block = client_frame(0x00) * 10_000
        fragments = 1
        with contextlib.suppress(OSError):  # the server closed while we still sent
            while fragments < 100_000 and reader.is_alive():
                sock.sendall(block)
                fragments += 10_000
        reader.join(TIMEOUT)
        # The first frame back is the close frame (the message never completed).
        assert received[:1] == b"\x88", bytes(received[:20])
        assert struct.unpack("!H", received[2:4])[0] == 1009
        # Each empty fragment counts 64 bytes: 1 MiB is 16 384 of them.
        assert fragments >= MIB // 64
        sock.close()


def test_a_large_message_in_64_byte_fragments_is_echoed_intact() -> None:
    # 4 MiB of text in 64-byte fragments, characters of every UTF-8 length
    # split across fragments: within the bound, and whole at the other end.
    with running("served_apps:fastapi_app") as server:
        sock = open_websocket(server.port)
        text = ("aé€😀" * (4 * MIB // 10 + 1)).encode()[: 4 * MIB]
        text = text.decode(errors="ignore").encode()  # whole characters only
        pieces = [text[i : i + 64] for i in range(0, len(text), 64)]
        frames = [client_frame(0x01, pieces[0])]
        frames += [client_frame(0x00, piece) for piece in pieces[1:-1]]
        frames.append(client_frame(0x80, pieces[-1]))
        sock.sendall(b"".join(frames))
        head = b""
        while len(head) < 10:
            head += sock.recv(10 - len(head))
        assert head[0] == 0x81  # one whole text frame
        assert head[1] == 127 and struct.unpack("!Q", head[2:10])[0] == len(text)
        echoed = bytearray()
        while len(echoed) < len(text):
            chunk = sock.recv(1 << 20)
            assert chunk, "the server closed before the whole echo"
            echoed += chunk
        assert echoed == text
        sock.close()
