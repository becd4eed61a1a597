"""wskit.js in headless Chromium, loaded from the hub that serves it.

The hub serves ``/wskit.js`` (classic script) and ``/wskit.mjs`` (ES
module); a ``process_request`` wrapper adds the test page at ``/`` so the
page and the WebSocket share an origin and the default origin check passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

import wskit
from wskit.hub import Client, ClientError, Hub, RequestError

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CLASSIC_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>wskit.js</title>
<script src="/wskit.js"></script>
<script>window.loaded = typeof WskitClient;</script>
</head><body><p>classic</p></body></html>
"""

MODULE_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>wskit.mjs</title>
<script type="module">
import Default, { WskitClient } from "/wskit.mjs";
window.WskitClient = WskitClient;
window.loaded = Default === WskitClient ? typeof WskitClient : "wrong default export";
</script>
</head><body><p>module</p></body></html>
"""

PAGES = {"/classic": CLASSIC_PAGE, "/module": MODULE_PAGE}

# A client on the page's own server (a path: the client makes it ws://host/ws),
# with handlers that record what arrives and answer requests.
SETUP_JS = """
() => {
  const client = new WskitClient("/ws", { backoff: { initial: 50, max: 200 } });
  window.client = client;
  window.inbox = [];
  window.life = [];
  client.on("open", () => life.push(["open"]));
  client.on("close", (code, reason) => life.push(["close", code, reason]));
  client.on("reconnecting", (attempt, delay) => life.push(["reconnecting", attempt, delay]));
  client.on("news", (...args) => inbox.push(["news", ...args]));
  client.of("chat").on("say", (...args) => inbox.push(["chat:say", ...args]));
  client.on("sum", (...args) => args.reduce((a, b) => a + b, 0));
  client.on("boom", () => { throw new Error("browser broke"); });
  client.of("chat").on("later", (ms) => new Promise((r) => setTimeout(() => r("later"), ms)));
  window.settle = (promise) => promise.then(
    (value) => ({ ok: true, value }),
    (error) => ({ ok: false, message: error instanceof Error ? error.message : error }),
  );
  return client.url;
}
"""


class App:
    def __init__(self) -> None:
        self.hub = Hub(client_rooms=True)
        self.clients: asyncio.Queue[Client] = asyncio.Queue()
        self.received: list[tuple[str, Any]] = []
        self.hub.on("connect", self.clients.put_nowait)
        self.hub.on("hello", lambda text: self.received.append(("hello", text)))
        self.hub.of("chat").on("say", lambda text: self.received.append(("chat:say", text)))
        self.hub.on("add", lambda a, b: a + b)

        self.cancelled = asyncio.Event()

        @self.hub.on("stall")
        async def stall() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

        @self.hub.on("fail")
        def fail() -> None:
            raise ClientError("server broke")

    def process_request(
        self, conn: wskit.ServerConn, request: wskit.Request
    ) -> wskit.Response | None:
        page = PAGES.get(request.path)
        if page is not None and "Upgrade" not in request.headers:
            headers = wskit.Headers([("Content-Type", "text/html; charset=utf-8")])
            return wskit.Response(200, "OK", headers, page)
        return self.hub.process_request(conn, request)

    async def client(self) -> Client:
        return await asyncio.wait_for(self.clients.get(), 10)


@contextlib.asynccontextmanager
async def app_page(browser: Browser, path: str) -> AsyncIterator[tuple[App, Page, int]]:
    app = App()
    async with await app.hub.serve("127.0.0.1", 0, process_request=app.process_request) as server:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        response = await page.goto(f"http://127.0.0.1:{server.port}{path}")
        assert response is not None and response.status == 200
        await page.wait_for_function("() => window.loaded !== undefined", timeout=5000)
        assert await page.evaluate("window.loaded") == "function", errors
        yield app, page, server.port
        await page.close()


async def wait(page: Page, condition: str) -> None:
    await page.wait_for_function(condition, timeout=10000)


@pytest.mark.parametrize("path", ["/classic", "/module"])
async def test_in_the_browser(chromium_browser: Browser, path: str) -> None:
    async with app_page(chromium_browser, path) as (app, page, port):
        assert await page.evaluate(SETUP_JS) == f"ws://127.0.0.1:{port}/ws"
        await wait(page, "() => client.connected")
        client = await app.client()

        # Events both ways, on the default channel and on a channel.
        await page.evaluate("() => { client.emit('hello', 'browser'); }")
        await page.evaluate("() => { client.of('chat').emit('say', 'hi all'); }")
        client.emit("news", {"n": 1})
        client.of("chat").emit("say", "from server")
        await wait(page, "() => inbox.length === 2")
        assert await page.evaluate("inbox") == [
            ["news", {"n": 1}],
            ["chat:say", "from server"],
        ]
        assert app.received == [("hello", "browser"), ("chat:say", "hi all")]

        # Requests from the browser.
        assert await page.evaluate("settle(client.request('add', 2, 3))") == {
            "ok": True,
            "value": 5,
        }
        assert await page.evaluate("settle(client.request('fail'))") == {
            "ok": False,
            "message": "server broke",
        }
        assert await page.evaluate("settle(client.of('chat').request('nope'))") == {
            "ok": False,
            "message": "No event listener for 'nope' on channel 'chat'",
        }
        assert await page.evaluate("settle(client.timeout(100).request('stall'))") == {
            "ok": False,
            "message": "request 'stall' timed out after 100 ms",
        }
        await asyncio.wait_for(app.cancelled.wait(), 5)  # the hub got the cancel

        # Requests to the browser.
        assert await client.request("sum", 1, 2, 3, timeout=5) == 6
        with pytest.raises(RequestError, match="browser broke"):
            await client.request("boom", timeout=5)
        assert await client.of("chat").request("later", 20, timeout=5) == "later"
        with pytest.raises(RequestError, match="No event listener for 'unknown'"):
            await client.request("unknown", timeout=5)

        # Rooms, and rejoining them after the server closes the connection.
        assert await page.evaluate("settle(client.join('lobby'))") == {"ok": True, "value": True}
        app.hub.to("lobby").emit("news", "room 1")
        await wait(page, "() => inbox.length === 3")
        await client.disconnect(1012, "restart")
        await wait(page, "() => life.filter((e) => e[0] === 'open').length === 2")
        again = await app.client()
        assert again.is_joined("lobby")
        life = await page.evaluate("life")
        assert life[:3] == [["open"], ["close", 1012, "restart"], life[2]]
        assert life[2][:2] == ["reconnecting", 1] and 25 <= life[2][2] <= 50
        app.hub.to("lobby").emit("news", "room 2")
        await wait(page, "() => inbox.length === 4")
        assert (await page.evaluate("inbox"))[2:] == [["news", "room 1"], ["news", "room 2"]]

        # Messages sent while reconnecting are queued and flushed.
        await again.disconnect(1012)
        # Until the browser reads the close frame its socket still looks open,
        # and a message sent then is lost with the connection (no protocol can
        # deliver it); queueing starts once the client knows it is disconnected.
        await wait(page, "() => life.filter((e) => e[0] === 'close').length === 2")
        await page.evaluate("() => { client.emit('hello', 'queued'); }")
        await wait(page, "() => life.filter((e) => e[0] === 'open').length === 3")
        async with asyncio.timeout(5):
            while app.received[-1] != ("hello", "queued"):
                await asyncio.sleep(0.01)

        # close() ends it: no more reconnecting.
        await page.evaluate("() => client.close()")
        await wait(page, "() => life.at(-1)[0] === 'close'")
        await asyncio.sleep(0.3)
        assert (await page.evaluate("life.at(-1)"))[0] == "close"
        assert await page.evaluate("client.connected") is False
