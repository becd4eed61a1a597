"""Checks that the test environment itself works: node peers, chromium, helper binaries."""

from __future__ import annotations

import socket
import subprocess
from typing import TYPE_CHECKING

from conftest import NodeRuntime, unused_port, wait_for_port

if TYPE_CHECKING:
    from playwright.async_api import Browser


def test_node_imports_ws_as_esm(node: NodeRuntime) -> None:
    script = (
        "const ws = await import('ws');"
        "const wrapper = await import('ws-wrapper');"
        "if (typeof ws.WebSocketServer !== 'function') throw new Error('no WebSocketServer');"
        "if (typeof wrapper.default !== 'function') throw new Error('no ws-wrapper');"
        "console.log('ok');"
    )
    result = subprocess.run(
        node.command("--input-type=module", "-e", script),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **node.subprocess_kwargs(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


async def test_chromium_evaluates_javascript(chromium_browser: Browser) -> None:
    page = await chromium_browser.new_page()
    await page.goto("about:blank")
    assert await page.evaluate("1 + 1 === 2") is True
    assert "HeadlessChrome" in await page.evaluate("navigator.userAgent")


def test_unused_port_is_bindable() -> None:
    port = unused_port()
    with socket.create_server(("127.0.0.1", port)) as server:
        wait_for_port(port, timeout=2)
        assert server.getsockname()[1] == port


def test_tinyproxy_runs(tinyproxy_bin: str) -> None:
    result = subprocess.run(
        [tinyproxy_bin, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    assert "tinyproxy" in (result.stdout + result.stderr).lower()


def test_microsocks_listens(microsocks_bin: str) -> None:
    port = unused_port()
    proc = subprocess.Popen(
        [microsocks_bin, "-i", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_server_runs(redis_server_bin: str) -> None:
    result = subprocess.run(
        [redis_server_bin, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    assert result.returncode == 0
    assert "redis server" in result.stdout.lower()
