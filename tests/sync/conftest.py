"""Servers for the blocking client's tests, each in a thread of its own.

The tests are plain functions that block, as a user of :mod:`wskit.sync`
would write them; the servers they talk to run elsewhere: wskit's asyncio
server on an event loop in a background thread (:func:`wskit_server`), and
the websockets library's threaded server (:func:`websockets_server`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websockets.sync.server

import wskit


class ServerThread:
    """A wskit server running on an event loop in a daemon thread."""

    def __init__(self, handler: Callable[[wskit.Conn], Awaitable[None]], **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._handler = handler
        self._options = options
        self.server: wskit.Server | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the server thread did not start"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = await wskit.serve(self._handler, "127.0.0.1", 0, **self._options)

        try:
            self.loop.run_until_complete(start())
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def call(self, coroutine: Awaitable[Any]) -> Any:
        """Run ``coroutine`` on the server's loop and wait for its result."""

        async def run() -> Any:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        server = self.server
        if server is not None:

            async def close() -> None:
                server.close()
                await server.wait_closed()

            self.call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def wskit_server() -> Iterator[Callable[..., ServerThread]]:
    """``wskit_server(handler, **serve_options)``: a started server, stopped after the test."""
    started: list[ServerThread] = []

    def start(handler: Callable[[wskit.Conn], Awaitable[None]], **options: Any) -> ServerThread:
        server = ServerThread(handler, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


@contextmanager
def websockets_server(
    handler: Callable[[websockets.sync.server.ServerConnection], None], **options: Any
) -> Iterator[str]:
    """The websockets library's threaded server on a free port; yields its URI."""
    with websockets.sync.server.serve(handler, "127.0.0.1", 0, **options) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        finally:
            server.shutdown()
            thread.join(10)
