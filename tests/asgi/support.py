"""Helpers for the ASGI tests (imported as ``asgi.support``: ``tests`` is on ``sys.path``).

Servers are real ``uvicorn.Server`` instances started in-process on a free
loopback port (lifespan on), and clients are real ``wskit.connect`` and
``websockets`` clients. :class:`FakeServer` plays the server side of one
ASGI WebSocket instead, for the state-machine tests, since no real server
sends messages out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

import wskit
from conftest import unused_port
from wskit import HandshakeRejected
from wskit.asgi.connection import AsgiConn
from wskit.asgi.shutdown import install_uvicorn_shutdown
from wskit.hub import Client, Hub

TIMEOUT = 10


# uvicorn's WebSocket implementations available here: the default (sans-I/O
# websockets) and the legacy websockets one, which warns on import.
WS_IMPLS = [
    "websockets-sansio",
    pytest.param(
        "websockets",
        marks=[
            pytest.mark.filterwarnings("ignore::DeprecationWarning"),
            pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
        ],
    ),
]


@dataclass
class Served:
    server: uvicorn.Server
    port: int

    def ws(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def uvicorn_serving(
    app: Any,
    *,
    ws: str | type[asyncio.Protocol] = "websockets-sansio",
    graceful: bool = False,
    **config: Any,
) -> AsyncIterator[Served]:
    """Run ``app`` under a real uvicorn in this event loop; stop it on exit.

    ``ws`` is uvicorn's WebSocket implementation: a name, or a class (wskit's).
    """
    port = unused_port()
    config.setdefault("ws_per_message_deflate", True)
    config.setdefault("lifespan", "on")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ws=ws,
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=5,
            **config,
        )
    )
    if graceful:
        install_uvicorn_shutdown(server)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before starting")
                await asyncio.sleep(0.01)
        yield Served(server, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)


async def echo(conn: AsgiConn) -> None:
    async for message in conn:
        await conn.send(message)


def starlette_app(*routes: Any, **kwargs: Any) -> Starlette:
    return Starlette(routes=list(routes), **kwargs)


def make_hub(**options: Any) -> Hub:
    hub = Hub(**options)

    def join(client: Client, room: str) -> bool:
        client.join(room)
        return True

    def add(a: int, b: int) -> int:
        return a + b

    def shout(client: Client, room: str, text: str) -> None:
        client.to(room).emit("heard", text.upper())

    hub.on("join", join)
    hub.on("add", add)
    hub.on("shout", shout)
    return hub


class WsWrapper:
    """A tiny ws-wrapper peer over a wskit client connection."""

    def __init__(self, conn: wskit.ClientConn) -> None:
        self.conn = conn
        self.next_id = 0

    async def request(self, *event: Any) -> Any:
        self.next_id += 1
        await self.conn.send(json.dumps({"i": self.next_id, "a": list(event)}))
        while True:
            answer = json.loads(await asyncio.wait_for(self.conn.recv(), TIMEOUT))
            if answer.get("i") == self.next_id:
                if "e" in answer:
                    raise RuntimeError(answer["e"])
                return answer.get("d")

    async def emit(self, *event: Any) -> None:
        await self.conn.send(json.dumps({"a": list(event)}))

    async def next_event(self) -> list[Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.conn.recv(), TIMEOUT))
            if "a" in message:
                return list(message["a"])


def error_body(exc: HandshakeRejected) -> Any:
    return json.loads(exc.body)


class FakeServer:
    """The server side of one ASGI WebSocket as two queues, to send what real servers never do."""

    def __init__(self, *, denial: bool = True, path: str = "/ws") -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"a=1",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"upgrade", b"websocket")],
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}} if denial else {},
        }

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: Any) -> None:
        await self.outbox.put(dict(message))

    async def sent(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.outbox.get(), TIMEOUT)
