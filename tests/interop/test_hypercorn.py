"""wskit's ASGI adapter under Hypercorn: a smoke test of ``asgi_app`` on another ASGI server.

Hypercorn runs in this event loop (``hypercorn.asyncio.serve``) on a free
loopback port, serving a ``Conn`` handler and a hub through
:func:`wskit.asgi.asgi_app`; the clients are ``wskit.connect``, the
``websockets`` client and ``HubClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import websockets
from hypercorn.asyncio import serve
from hypercorn.config import Config

import wskit
from apps.asgi_apps import check_shouting, shouting_hub
from conftest import unused_port
from wskit.asgi import AsgiConn, asgi_app

TIMEOUT = 10


@contextlib.asynccontextmanager
async def hypercorn_serving(app: Any) -> AsyncIterator[int]:
    """Run ``app`` under Hypercorn in this event loop; yield its port."""
    port = unused_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                if task.done():
                    task.result()
                    raise RuntimeError("hypercorn exited before serving")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                break
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)


async def echo(conn: AsgiConn) -> None:
    async for message in conn:
        await conn.send(message)


async def test_a_conn_handler_under_hypercorn() -> None:
    async with hypercorn_serving(asgi_app(echo)) as port:
        url = f"ws://127.0.0.1:{port}/"
        async with wskit.connect(url) as conn:
            await conn.send("hello")
            assert await conn.recv() == "hello"
            await conn.send(b"\x00\x01")
            assert await conn.recv() == b"\x00\x01"
        async with websockets.connect(url) as client:
            await client.send("from websockets")
            assert await client.recv() == "from websockets"


async def test_a_hub_under_hypercorn() -> None:
    async with hypercorn_serving(asgi_app(shouting_hub())) as port:
        await check_shouting(f"ws://127.0.0.1:{port}/")
