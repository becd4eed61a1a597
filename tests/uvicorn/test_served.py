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
import signal
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

import uvicorn_command
import wskit
from apps.asgi_apps import check_shouting
from attacks.support import (
    Reader,
    client_frame,
    open_websocket,
    ping_until_stalled,
    rss,
    text_in_fragments,
)
from uvicorn_command import Uvicorn

if TYPE_CHECKING:
    from playwright.async_api import Browser

HERE = Path(__file__).resolve().parent
TIMEOUT = 10
MIB = 2**20
WS = "wskit.uvicorn:WebSocketProtocol"


def running(app: str, *options: str) -> contextlib.AbstractContextManager[Uvicorn]:
    """``app`` of ``served_apps.py`` under the ``uvicorn`` command, with wskit's class."""
    return uvicorn_command.running(app, *options, app_dir=HERE, ws=WS)


def served(app: str, *options: str) -> contextlib.AbstractAsyncContextManager[Uvicorn]:
    """:func:`running`, from an async test."""
    return uvicorn_command.served(app, *options, app_dir=HERE, ws=WS)


# -------------------------------------------------------------------------- applications


HTTP_LAYERS = pytest.mark.parametrize("http", ["h11", "httptools"])


@HTTP_LAYERS
async def test_a_fastapi_app_with_the_websockets_client_and_wskit_connect(http: str) -> None:
    async with served("served_apps:fastapi_app", "--http", http) as server:
        async with websockets.connect(server.ws("/echo")) as client:
            await client.send("hello")
            assert await client.recv() == "hello"
            await client.send(b"\x00\xff")
            assert await client.recv() == b"\x00\xff"
            response = client.response
            assert response is not None
            assert response.headers["Server"] == "uvicorn"
            assert "permessage-deflate" in response.headers["Sec-WebSocket-Extensions"]
        async with wskit.connect(server.ws("/echo")) as conn:
            big = "é" * 300_000  # fragmented by nobody, compressed both ways
            await conn.send(big)
            assert await conn.recv() == big
        async with wskit.connect(server.ws("/goodbye")) as conn:
            await conn.send("bye?")
            with pytest.raises(wskit.ConnectionClosed):
                await conn.recv()
            assert (conn.close_code, conn.close_reason) == (4002, "goodbye")


async def test_a_starlette_app_and_wskits_hub() -> None:
    async with served("served_apps:starlette_app") as server:
        async with wskit.connect(server.ws("/echo")) as conn:
            await conn.send("over starlette")
            assert await conn.recv() == "over starlette"
        await check_shouting(server.ws("/hub"))


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
        websockets.connect(server.ws("/echo")) as client,
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
        conn = await wskit.connect(server.ws("/echo"))
        await conn.send("still here")
        assert await conn.recv() == "still here"
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        assert (conn.close_code, conn.close_reason) == (code, reason)


# -------------------------------------------------------------------------- attacks


def test_a_ping_flood_that_never_reads_its_pongs_stops_being_read() -> None:
    # What grew uvicorn's own WebSocket layer by 117 MB (issue 12).
    with running("served_apps:fastapi_app") as server:
        sock = open_websocket(server.port, receive_buffer=4096, path="/echo")
        before = rss(server.process.pid)
        sent, _ = ping_until_stalled(sock)
        assert sent < 32 * MIB, f"the server read {sent} bytes of pings nobody reads the pongs of"
        growth = rss(server.process.pid) - before
        assert growth < 24 * MIB, f"server RSS grew by {growth / MIB:.1f} MiB"
        sock.close()


def test_endless_empty_fragments_end_in_1009() -> None:
    with running("served_apps:fastapi_app", "--ws-max-size", str(MIB)) as server:
        sock = open_websocket(server.port, path="/echo")
        reader = Reader(sock)
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
        assert reader.data[:1] == b"\x88", bytes(reader.data[:20])
        assert struct.unpack("!H", reader.data[2:4])[0] == 1009
        # Each empty fragment counts 64 bytes: 1 MiB is 16 384 of them.
        assert fragments >= MIB // 64
        sock.close()


def test_a_large_message_in_64_byte_fragments_is_echoed_intact() -> None:
    # 4 MiB of text in 64-byte fragments, characters of every UTF-8 length
    # split across fragments: within the bound, and whole at the other end.
    with running("served_apps:fastapi_app") as server:
        sock = open_websocket(server.port, path="/echo")
        text, frames = text_in_fragments(4 * MIB, 64)
        sock.sendall(frames)
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
