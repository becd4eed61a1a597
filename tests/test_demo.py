"""The chat demo (``wskit demo``): its server in Python, its page in Chromium."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

import wskit
from conftest import unused_port, wait_for_port
from wskit.demo import HISTORY, ChatApp

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


# The page tests share the session's browser, so they run in the session's
# event loop (see chromium_browser in conftest.py); so do the chat server and
# the other tests that use it (marked IN_SESSION_LOOP).
IN_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def chat() -> AsyncIterator[tuple[ChatApp, str]]:
    """The chat app, served on a free port: ``(app, "http://127.0.0.1:port")``."""
    app = ChatApp()
    async with await app.serve("127.0.0.1", 0) as server:
        yield app, f"http://127.0.0.1:{server.port}"


class Talker:
    """A chat client in Python, speaking ws-wrapper by hand."""

    def __init__(self, conn: wskit.Conn) -> None:
        self.conn = conn
        self.ids = itertools.count(1)
        self.events: list[list[Any]] = []

    async def request(self, event: str, *args: Any) -> Any:
        """Send a request; return ``{"d": answer}`` or ``{"e": error}``."""
        request_id = next(self.ids)
        await self.conn.send(json.dumps({"i": request_id, "a": [event, *args]}))
        while True:
            message = json.loads(await self.conn.recv())
            if message.get("i") == request_id:
                return message
            self.events.append(message["a"])


async def talker(base: str) -> Talker:
    return Talker(await wskit.connect(base.replace("http", "ws") + "/ws"))


# --------------------------------------------------------------------------- the server


def test_demo_command_serves_the_page_and_stops_on_sigterm() -> None:
    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wskit", "demo", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        for path, content_type, needle in [
            ("/", "text/html", b'src="/chat.js"'),
            ("/chat.js", "text/javascript", b'from "/wskit.mjs"'),
            ("/chat.css", "text/css", b".messages"),
            ("/wskit.mjs", "text/javascript", b"export class WskitClient"),
        ]:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                assert response.headers["Content-Type"].startswith(content_type)
                assert needle in response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in out


@IN_SESSION_LOOP
async def test_join_answers_history_and_users(chat: tuple[ChatApp, str]) -> None:
    app, base = chat
    ada, bob = await talker(base), await talker(base)
    joined = await ada.request("join", "  Ada  ", "Lobby")
    assert joined["d"] == {"room": "lobby", "nickname": "Ada", "history": [], "users": ["Ada"]}
    assert (await ada.request("say", "hi"))["d"] is True
    joined = await bob.request("join", "bob", "lobby")
    assert [m["text"] for m in joined["d"]["history"]] == ["hi"]
    assert joined["d"]["users"] == ["Ada", "bob"]
    assert (await bob.request("rooms"))["d"] == [{"name": "lobby", "users": 2}]
    # Ada hears of Bob: a notice, then the new user list.
    await ada.request("rooms")
    assert ["users", "lobby", ["Ada", "bob"]] in ada.events
    # Moving to another room leaves the first one.
    await bob.request("join", "bob", "elsewhere")
    assert app.users("lobby") == ["Ada"]
    assert app.users("elsewhere") == ["bob"]


@IN_SESSION_LOOP
@pytest.mark.parametrize(
    ("event", "args", "error"),
    [
        ("join", ["", "lobby"], "the nickname is empty"),
        ("join", ["x" * 25, "lobby"], "the nickname is longer than 24 characters"),
        ("join", ["ada", "r" * 33], "the room name is longer than 32 characters"),
        ("join", ["a\x07da", "lobby"], "the nickname has control characters"),
        ("join", [42, "lobby"], "expected str, got int"),
        ("say", ["hello"], "join a room first"),
        ("typing", ["yes"], "expected bool, got str"),
    ],
)
async def test_bad_input_is_rejected(
    chat: tuple[ChatApp, str], event: str, args: list[Any], error: str
) -> None:
    client = await talker(chat[1])
    answer = await client.request(event, *args)
    assert error in answer["e"]["message"]


@IN_SESSION_LOOP
async def test_long_and_empty_messages_are_rejected(chat: tuple[ChatApp, str]) -> None:
    client = await talker(chat[1])
    await client.request("join", "ada", "lobby")
    assert "longer than 1000" in (await client.request("say", "x" * 1001))["e"]["message"]
    assert "empty" in (await client.request("say", "   "))["e"]["message"]
    assert not chat[0].history["lobby"]


# --------------------------------------------------------------------------- the page


async def open_chat(browser: Browser, base: str, nick: str, room: str) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(base + "/")
    await page.fill("#nick", nick)
    await page.fill("#room", room)
    await page.click("#join")
    await page.wait_for_selector("#welcome", state="hidden")
    await page.wait_for_selector(f"#users li:has-text('{nick}')")
    assert not errors
    return page


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def message(text: str) -> str:
    return f"#messages .message .text:text-is('{text}')"


async def test_two_pages_chat_and_a_third_room_hears_nothing(
    chat: tuple[ChatApp, str], chromium_browser: Browser
) -> None:
    _, base = chat
    ada = await open_chat(chromium_browser, base, "ada", "lobby")
    grace = await open_chat(chromium_browser, base, "grace", "lobby")
    other = await open_chat(chromium_browser, base, "linus", "kernel")
    # Both see both in the user list.
    for page in (ada, grace):
        await page.wait_for_selector("#users li:has-text('grace')")
        await page.wait_for_selector("#users li:has-text('ada')")
        assert await page.locator("#users li").count() == 2
    assert await other.locator("#users li").count() == 1

    # Typing shows on the other page, and goes when the message is sent.
    await grace.type("#text", "hel")
    await ada.wait_for_selector("#typing:has-text('grace is typing')")
    assert await other.inner_text("#typing") == ""
    await grace.fill("#text", "hello ada")
    await grace.press("#text", "Enter")
    await ada.wait_for_selector(message("hello ada"))
    await grace.wait_for_selector(message("hello ada"))
    await ada.wait_for_function("document.querySelector('#typing').textContent === ''")

    await say(ada, "hi grace")
    await grace.wait_for_selector(message("hi grace"))

    # The other room: its own message arrives, the lobby's never did.
    await say(other, "anyone here?")
    await other.wait_for_selector(message("anyone here?"))
    texts = await other.locator("#messages .message .text").all_inner_texts()
    assert texts == ["anyone here?"]
    await say(ada, "after")
    await grace.wait_for_selector(message("after"))
    assert "anyone here?" not in await ada.locator("#messages").inner_text()


async def test_a_late_joiner_sees_the_last_50_messages(
    chat: tuple[ChatApp, str], chromium_browser: Browser
) -> None:
    app, base = chat
    writer = await talker(base)
    await writer.request("join", "writer", "busy")
    for n in range(55):
        assert (await writer.request("say", f"message {n}"))["d"] is True
    assert len(app.history["busy"]) == HISTORY == 50

    page = await open_chat(chromium_browser, base, "late", "busy")
    texts = await page.locator("#messages .message .text").all_inner_texts()
    assert texts == [f"message {n}" for n in range(5, 55)]
    await writer.request("say", "live")
    await page.wait_for_selector(message("live"))


async def test_the_page_rejoins_after_a_reconnect(
    chat: tuple[ChatApp, str], chromium_browser: Browser
) -> None:
    app, base = chat
    page = await open_chat(chromium_browser, base, "ada", "lobby")
    await say(page, "before")
    await page.wait_for_selector(message("before"))
    [client] = app.hub.clients.values()
    await client.disconnect(1012, "restarting")
    # The page reconnects and joins again, as a new client, and shows the history.
    async with asyncio.timeout(10):
        while app.users("lobby") != ["ada"] or client.id in app.hub.clients:
            await asyncio.sleep(0.05)
    await page.wait_for_selector("#status.online")
    await page.wait_for_selector(message("before"))
    friend = await talker(base)
    await friend.request("join", "friend", "lobby")
    await friend.request("say", "after the reconnect")
    await page.wait_for_selector(message("after the reconnect"))
    assert app.users("lobby") == ["ada", "friend"]
