"""examples/chat: the chat runs under ``wskit serve`` and as ``python chat.py``.

Two Python clients (:class:`~wskit.hub.HubClient`) chat through it, and a
Chromium page loads the example's own page, chats with one of them, and
joins its room again after the server restarts.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from conftest import unused_port
from examples.example_support import EXAMPLES, Program
from wskit.hub import HubClient, RequestError

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHAT = EXAMPLES / "chat"


async def start_chat(how: str, port: int | None = None) -> tuple[Program, int]:
    """The chat on ``port`` (or a free one), started with ``wskit serve`` or as a program."""
    if how == "wskit serve":
        port = port or unused_port()
        program = await Program.start(
            "-m", "wskit", "serve", "chat:hub", "--host", "127.0.0.1", "--port", str(port), cwd=CHAT
        )
        await program.wait_port(port)
    else:
        program = await Program.start("chat.py", "--port", "0", cwd=CHAT)
        line = await program.expect("chat on http://127.0.0.1:")
        port = int(line.rstrip("/").rpartition(":")[2])
    return program, port


@pytest.mark.parametrize("how", ["wskit serve", "python chat.py"])
async def test_two_clients_chat(how: str) -> None:
    program, port = await start_chat(how)
    async with program:
        url = f"ws://127.0.0.1:{port}/"
        async with HubClient(url) as alice, HubClient(url) as bob:
            to_alice: asyncio.Queue[dict[str, str]] = asyncio.Queue()
            to_bob: asyncio.Queue[dict[str, str]] = asyncio.Queue()
            notices: asyncio.Queue[str] = asyncio.Queue()
            alice.on("chat", to_alice.put_nowait)
            bob.on("chat", to_bob.put_nowait)
            alice.on("notice", notices.put_nowait)

            joined = await alice.request("join", " alice ", "Lobby")
            assert joined == {
                "room": "lobby",
                "nickname": "alice",
                "history": [],
                "users": ["alice"],
            }
            for n in range(25):
                assert await alice.request("say", f"message {n}") is True
            for n in range(25):
                assert await asyncio.wait_for(to_alice.get(), 5) == {
                    "nick": "alice",
                    "text": f"message {n}",
                }

            # Bob joins later: he gets the last 20 messages, and alice is told.
            joined = await bob.request("join", "bob", "lobby")
            assert joined["users"] == ["alice", "bob"]
            assert [m["text"] for m in joined["history"]] == [f"message {n}" for n in range(5, 25)]
            assert await asyncio.wait_for(notices.get(), 5) == "bob joined"

            await bob.request("say", "hi alice")
            assert await asyncio.wait_for(to_alice.get(), 5) == {"nick": "bob", "text": "hi alice"}
            assert await asyncio.wait_for(to_bob.get(), 5) == {"nick": "bob", "text": "hi alice"}

            # Bad input is refused with a readable message.
            with pytest.raises(RequestError, match="the message must be 1 to 500 characters"):
                await bob.request("say", "   ")
            with pytest.raises(RequestError, match="the nickname must be 1 to 24"):
                await bob.request("join", "x" * 25, "lobby")

            # Bob leaves: alice hears it.
            await bob.close()
            assert await asyncio.wait_for(notices.get(), 5) == "bob left"

        # SIGTERM: the server closes and exits cleanly.
        assert await program.stop() == 0


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return response.status, response.headers["Content-Type"], body.decode()


async def test_serves_the_page_and_the_client() -> None:
    program, port = await start_chat("wskit serve")
    async with program:
        status, kind, page = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/")
        assert (status, kind) == (200, "text/html; charset=utf-8")
        assert '<script src="/wskit.js"></script>' in page
        status, kind, script = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/wskit.js")
        assert status == 200 and "globalThis.WskitClient" in script
        assert await program.stop() == 0


async def test_the_page_in_chromium(chromium_browser: Browser) -> None:
    program, port = await start_chat("wskit serve")
    async with program:
        page = await chromium_browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.wait_for_function("() => client.connected", timeout=10000)

        async with HubClient(f"ws://127.0.0.1:{port}/") as bob:
            heard: asyncio.Queue[Any] = asyncio.Queue()
            bob.on("chat", heard.put_nowait)
            await bob.request("join", "bob", "lobby")
            await bob.request("say", "before you came")
            assert (await asyncio.wait_for(heard.get(), 5))["nick"] == "bob"  # his own

            await page.fill("input[name=nick]", "ada")
            await page.click("#join button")
            await page.wait_for_function("() => document.querySelector('#room').textContent")
            assert await page.text_content("#room") == "#lobby"
            assert await page.text_content("#users") == "ada, bob"
            await page.fill("input[name=text]", "hello <b>bob</b>")
            await page.click("#say button")
            assert await asyncio.wait_for(heard.get(), 5) == {
                "nick": "ada",
                "text": "hello <b>bob</b>",
            }
            await bob.request("say", "welcome ada")
            await page.wait_for_function(
                "() => document.querySelector('#log').textContent.includes('welcome ada')",
                timeout=10000,
            )
            log = await page.locator("#log li").all_text_contents()
            assert log == [
                "bob: before you came",
                "ada: hello <b>bob</b>",
                "bob: welcome ada",
            ]
            assert await page.locator("#log b").count() == 0  # shown as text, not HTML
        assert await program.stop() == 0

    # The server restarts: the page reconnects and joins its room again.
    await page.wait_for_function("() => !client.connected", timeout=10000)
    program, port = await start_chat("wskit serve", port)
    async with program, HubClient(f"ws://127.0.0.1:{port}/") as carol:
        notices: asyncio.Queue[str] = asyncio.Queue()
        carol.on("notice", notices.put_nowait)
        joined = await carol.request("join", "carol", "lobby")
        if joined["users"] != ["ada", "carol"]:  # ada is not back yet: carol hears her come
            assert joined["users"] == ["carol"]
            assert await asyncio.wait_for(notices.get(), 10) == "ada joined"
        assert joined["history"] == []  # a new process: the history was in memory
        await page.wait_for_function("() => $('users').textContent === 'ada, carol'", timeout=10000)
        assert await program.stop() == 0
    assert errors == []
    await page.close()
