"""The ``wskit`` command: ``wskit echo`` and ``wskit demo`` as real processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from conftest import unused_port, wait_for_port

import wskit
from wskit.cli import build_parser

if TYPE_CHECKING:
    from playwright.async_api import Browser


def start(*args: str) -> tuple[subprocess.Popen[str], int]:
    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wskit", *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_port(port)
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


@pytest.fixture
def demo_server() -> Iterator[int]:
    process, port = start("demo")
    yield port
    code, err = stop(process)
    assert code == 0, err


def test_parser_knows_the_commands() -> None:
    args = build_parser().parse_args(["echo", "--port", "1234", "--no-compression"])
    assert (args.command, args.port, args.no_compression) == ("echo", 1234, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


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


def test_demo_serves_its_page(demo_server: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{demo_server}/", timeout=5) as response:
        assert response.status == 200
        assert "text/html" in response.headers["Content-Type"]
        assert b"new WebSocket" in response.read()


async def test_demo_page_echoes_in_chromium(demo_server: int, chromium_browser: Browser) -> None:
    page = await chromium_browser.new_page()
    await page.goto(f"http://127.0.0.1:{demo_server}/")
    await page.wait_for_selector("text=connected (extensions: permessage-deflate")
    await page.fill("#text", "hello from chromium")
    await page.click("button")
    await page.wait_for_selector("#log .in:has-text('< hello from chromium')", timeout=5000)
