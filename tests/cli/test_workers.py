"""``wskit serve --workers N`` (:mod:`wskit.cli.workers`): the supervisor, as a real process.

These run without Redis, with a plain handler: that the workers of a hub
share its rooms through a backplane is tested in ``tests/hub/test_cluster.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import wskit
from cli.process_support import app_env
from conftest import unused_port

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT and /proc are Linux's"
)


class Supervisor:
    """A ``wskit serve --workers N`` process, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    async def readline(self) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            return (await self.process.stdout.readline()).decode().rstrip("\n")

    async def wait_serving(self, count: int) -> list[str]:
        """Read stdout until ``count`` workers have said that they serve."""
        serving: list[str] = []
        while len(serving) < count:
            line = await self.readline()
            assert line, "the supervisor closed its stdout"
            if line.startswith("wskit serving"):
                serving.append(line)
        return serving

    def workers(self) -> list[int]:
        """The process ids of the running workers (the supervisor's children)."""
        pid = self.process.pid
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    """``wskit serve sample_app:shout --path /ws --workers 2``; killed if a test leaves it."""
    port = unused_port()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "wskit", "serve", "sample_app:shout", "--path", "/ws"],
        *["--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=app_env(),
    )
    yield Supervisor(process, port)
    if process.returncode is None:
        process.kill()
        await process.communicate()


async def test_workers_serve_one_port_and_stop_with_1001(supervisor: Supervisor) -> None:
    port = supervisor.port
    assert (await supervisor.readline()).startswith(f"wskit: 2 workers on 127.0.0.1:{port} (pid ")
    serving = await supervisor.wait_serving(2)
    assert serving == [f"wskit serving sample_app:shout on ws://127.0.0.1:{port}/ws"] * 2
    assert len(supervisor.workers()) == 2
    conns = [await wskit.connect(f"ws://127.0.0.1:{port}/ws") for _ in range(4)]
    for conn in conns:
        assert await conn.recv() == "path /ws"  # the workers got --path
    supervisor.process.send_signal(signal.SIGTERM)
    for conn in conns:
        with pytest.raises(wskit.ConnectionClosed):
            await asyncio.wait_for(conn.recv(), 10)
        assert conn.close_code == 1001
    await asyncio.wait_for(supervisor.process.communicate(), 20)
    assert supervisor.process.returncode == 0


async def test_a_worker_that_dies_is_replaced(supervisor: Supervisor) -> None:
    await supervisor.wait_serving(2)
    victim, survivor = supervisor.workers()
    os.kill(victim, signal.SIGKILL)
    await supervisor.wait_serving(1)
    workers = supervisor.workers()
    assert len(workers) == 2 and survivor in workers and victim not in workers
    async with wskit.connect(f"ws://127.0.0.1:{supervisor.port}/ws") as conn:
        assert await conn.recv() == "path /ws"
    supervisor.process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(supervisor.process.communicate(), 20)
    assert supervisor.process.returncode == 0
    assert f"wskit: worker exited with {-signal.SIGKILL}; starting another" in err.decode()


async def test_workers_that_cannot_start_are_not_restarted() -> None:
    # Workers exiting with status 2 were started wrong (here: no such app);
    # every new one would be too, so after the second the supervisor stops
    # with that status instead of restarting them WORKER_RESTARTS times.
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "wskit", "serve", "sample_app:no_such_thing"],
        *["--workers", "2", "--host", "127.0.0.1", "--port", str(unused_port())],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=app_env(),
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode == 2
    text = err.decode()
    assert "no_such_thing" in text
    assert "not restarting" in text and text.count("starting another") <= 1
