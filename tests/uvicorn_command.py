"""The ``uvicorn`` command in a subprocess, as users run it, for the tests that serve an app file.

``tests/uvicorn/test_served.py`` and ``tests/metrics/test_uvicorn.py`` run
``python -m uvicorn <app> --app-dir <their directory> --ws <a class>`` on a
free loopback port; ``tests/apps`` is on the subprocess's ``PYTHONPATH`` so
that their apps can share :mod:`apps.asgi_apps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from cli.process_support import app_env
from conftest import unused_port, wait_for_port

__all__ = ["Uvicorn", "running", "served"]


class Uvicorn:
    """``python -m uvicorn app`` from ``app_dir``, with WebSocket class ``ws``, on a free port."""

    def __init__(self, app: str, *options: str, app_dir: Path, ws: str) -> None:
        self.port = unused_port()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", app, "--app-dir", str(app_dir)),
                *("--host", "127.0.0.1", "--port", str(self.port), "--ws", ws, *options),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=app_env(),
        )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise

    def ws(self, path: str) -> str:
        """The ``ws://`` URL of ``path`` on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        """The ``http://`` URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

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
def running(app: str, *options: str, app_dir: Path, ws: str) -> Iterator[Uvicorn]:
    """A :class:`Uvicorn` for the block, from a synchronous test."""
    server = Uvicorn(app, *options, app_dir=app_dir, ws=ws)
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def served(app: str, *options: str, app_dir: Path, ws: str) -> AsyncIterator[Uvicorn]:
    """A :class:`Uvicorn` for the block, started and stopped off the event loop."""
    server = await asyncio.to_thread(Uvicorn, app, *options, app_dir=app_dir, ws=ws)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
