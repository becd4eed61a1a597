"""A wskit server against headless Chromium's ``WebSocket``.

The page comes from the wskit server itself (its ``process_request`` hook
answers plain GETs with HTML), so the browser's ``Origin`` is the server's
own host and the default same-host origin check lets it in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

import wskit
from interop.support import MIB, count_bytes_received, pattern

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>wskit interop</title></head>
<body><p>wskit interop page</p></body></html>
"""

# Helpers installed in the page: open a socket and collect its events.
SETUP_JS = """
() => {
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // Same bytes as pattern() in tests/interop/support.py.
  window.pattern = (size, binary) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const j = i & 0xffff;
      const b = (j * 7 + (j >> 8)) & 0xff;
      bytes[i] = binary ? b : ALPHABET.charCodeAt(b & 63);
    }
    return binary ? bytes.buffer : new TextDecoder().decode(bytes);
  };
  window.equal = (a, b) => {
    if (typeof a === 'string' || typeof b === 'string') return a === b;
    const x = new Uint8Array(a), y = new Uint8Array(b);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  };
  window.open_socket = (path) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}${path}`);
    ws.binaryType = 'arraybuffer';
    ws.inbox = [];
    ws.waiting = [];
    ws.onmessage = (e) => {
      const waiter = ws.waiting.shift();
      if (waiter) waiter(e.data); else ws.inbox.push(e.data);
    };
    ws.closed = new Promise((done) => {
      ws.onclose = (e) => done({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    });
    ws.next = () => ws.inbox.length
      ? Promise.resolve(ws.inbox.shift())
      : new Promise((r) => ws.waiting.push(r));
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('WebSocket error'));
  });
}
"""


class App:
    """The wskit side: a page, an echo endpoint and close endpoints."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int, str]] = []
        self.offers: list[str | None] = []
        self.wire: list[list[int]] = []
        self.client_close: asyncio.Future[tuple[int, str]] = (
            asyncio.get_running_loop().create_future()
        )

    def process_request(
        self, conn: wskit.ServerConn, request: wskit.Request
    ) -> wskit.Response | None:
        if "websocket" in (request.headers.get("Upgrade") or "").lower():
            return None
        headers = wskit.Headers([("Content-Type", "text/html; charset=utf-8")])
        return wskit.Response(200, "OK", headers, PAGE)

    async def handler(self, conn: wskit.Conn) -> None:
        path = conn.request.path if conn.request is not None else ""
        self.offers.append(conn.request_headers.get("Sec-WebSocket-Extensions"))
        if path == "/echo":
            self.wire.append(count_bytes_received(conn))
            async for message in conn:
                data = message.encode() if isinstance(message, str) else message
                kind = "text" if isinstance(message, str) else "binary"
                self.received.append((kind, len(data), hashlib.sha256(data).hexdigest()))
                await conn.send(message)
        elif path == "/server-close":
            await conn.close(4001, "server says bye")
        elif path == "/return":
            await conn.send("bye")
        elif path == "/wait-close":
            try:
                await conn.recv()
            except wskit.ConnectionClosed as exc:
                self.client_close.set_result((exc.code, exc.reason))


@contextlib.asynccontextmanager
async def app_page(browser: Browser, **options: Any) -> AsyncIterator[tuple[App, Page]]:
    app = App()
    async with wskit.serve(
        app.handler,
        "127.0.0.1",
        0,
        process_request=app.process_request,
        max_size=2 * MIB,
        **options,
    ) as server:
        page = await browser.new_page()
        response = await page.goto(f"http://127.0.0.1:{server.port}/")
        assert response is not None and response.status == 200
        assert await page.text_content("p") == "wskit interop page"
        await page.evaluate(SETUP_JS)
        yield app, page
        await page.close()


def digest(message: str | bytes) -> tuple[str, int, str]:
    data = message.encode() if isinstance(message, str) else message
    kind = "text" if isinstance(message, str) else "binary"
    return (kind, len(data), hashlib.sha256(data).hexdigest())


ECHO_JS = """
async () => {
  const ws = await open_socket('/echo');
  const messages = [
    'hello',
    'héllo wörld ☃ 🎉',
    new Uint8Array([0, 1, 2, 254, 255]).buffer,
    '',
    new ArrayBuffer(0),
    pattern(1 << 20, true),
    pattern(1 << 20, false),
  ];
  const results = [];
  for (const message of messages) {
    ws.send(message);
    const answer = await ws.next();
    results.push({
      type: typeof answer === 'string' ? 'text' : 'binary',
      length: typeof answer === 'string' ? answer.length : answer.byteLength,
      equal: equal(answer, message),
    });
  }
  const extensions = ws.extensions;
  ws.close(1000, 'done');
  return { extensions, results, closed: await ws.closed };
}
"""

SENT_BY_BROWSER: list[str | bytes] = [
    "hello",
    "héllo wörld ☃ 🎉",
    b"\x00\x01\x02\xfe\xff",
    "",
    b"",
    pattern(MIB, binary=True),
    pattern(MIB, binary=False),
]
EXPECTED_RECEIVED = [digest(m) for m in SENT_BY_BROWSER]


@pytest.mark.parametrize(
    ("compression", "extensions"),
    [
        ("deflate", "permessage-deflate"),
        (
            wskit.DeflateOptions(server_max_window_bits=10, client_max_window_bits=11),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
        ),
        (
            wskit.DeflateOptions(server_max_window_bits=8, client_max_window_bits=8),
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
        ),
        (
            wskit.DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (None, ""),
    ],
    ids=["deflate", "small-windows", "window-8", "no-context-takeover", "off"],
)
async def test_echo_from_the_browser(
    chromium_browser: Browser, compression: Any, extensions: str
) -> None:
    async with app_page(chromium_browser, compression=compression) as (app, page):
        result = await page.evaluate(ECHO_JS)
        assert app.offers == ["permessage-deflate; client_max_window_bits"]
        assert result["extensions"] == extensions
        types = ["text", "text", "binary", "text", "binary", "binary", "text"]
        assert [r["type"] for r in result["results"]] == types
        assert all(r["equal"] for r in result["results"]), result["results"]
        assert result["closed"]["code"] == 1000
        assert result["closed"]["wasClean"] is True
        assert app.received == EXPECTED_RECEIVED
        # Chromium compresses the 2 MiB of patterns (by less with 256-byte windows).
        if compression is None:
            assert app.wire[0][0] > 2 * MIB
        else:
            assert app.wire[0][0] < MIB


async def test_close_codes_both_ways(chromium_browser: Browser) -> None:
    async with app_page(chromium_browser) as (app, page):
        closed = await page.evaluate(
            "async () => { const ws = await open_socket('/server-close'); return ws.closed; }"
        )
        assert closed == {"code": 4001, "reason": "server says bye", "wasClean": True}

        closed = await page.evaluate(
            """async () => {
              const ws = await open_socket('/return');
              const bye = await ws.next();
              return { bye, ...(await ws.closed) };
            }"""
        )
        assert closed == {"bye": "bye", "code": 1000, "reason": "", "wasClean": True}

        closed = await page.evaluate(
            """async () => {
              const ws = await open_socket('/wait-close');
              ws.close(4002, 'client says bye');
              return ws.closed;
            }"""
        )
        assert await asyncio.wait_for(app.client_close, 5) == (4002, "client says bye")
        # wskit echoes the code of the browser's close frame.
        assert closed["code"] == 4002
        assert closed["wasClean"] is True


async def test_cross_origin_page_is_refused(chromium_browser: Browser) -> None:
    connected: list[str] = []

    async def handler(conn: wskit.Conn) -> None:
        connected.append(conn.request_headers.get("Origin") or "")
        await conn.send("welcome")

    async with app_page(chromium_browser) as (_, page):
        origin = await page.evaluate("location.origin")
        async with (
            wskit.serve(handler, "127.0.0.1", 0) as same_host_only,
            wskit.serve(handler, "127.0.0.1", 0, origins=[origin]) as allow_listed,
        ):
            script = """async (url) => {
              const ws = new WebSocket(url);
              const messages = [];
              ws.onmessage = (e) => messages.push(e.data);
              const code = await new Promise((r) => { ws.onclose = (e) => r(e.code); });
              return { code, messages };
            }"""
            # Another port is another origin: the default policy answers 403,
            # which the browser reports as an abnormal closure.
            refused = await page.evaluate(script, f"ws://127.0.0.1:{same_host_only.port}/")
            assert refused == {"code": 1006, "messages": []}
            assert connected == []
            # Listed in ``origins``, the same page gets in.
            allowed = await page.evaluate(script, f"ws://127.0.0.1:{allow_listed.port}/")
            assert allowed == {"code": 1000, "messages": ["welcome"]}
            assert connected == [origin]
