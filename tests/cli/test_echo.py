"""``wskit echo`` (:mod:`wskit.cli.echo`), as a real process."""

from __future__ import annotations

import asyncio
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wskit
from cli.process_support import start, stop


@pytest.fixture
def echo_server() -> Iterator[int]:
    process, port = start("echo")
    yield port
    code, err = stop(process)
    assert code == 0, err


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_server_commands_raise_the_open_file_limit() -> None:
    # Started under a low soft limit, `wskit echo` takes the hard one (as Go's
    # runtime does), so that accept() does not fail with EMFILE at 1024.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    command = [sys.executable, "-m", "wskit", "echo", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, preexec_fn=lower_the_limit
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("wskit echo server on")
        limits = Path(f"/proc/{process.pid}/limits").read_text()
    finally:
        process.terminate()
        process.wait(30)
    (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
    expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert line.split()[3] == expected
