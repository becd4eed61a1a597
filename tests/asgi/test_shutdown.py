"""wskit.asgi.shutdown: closing connections with 1001 when the server stops.

Under a real uvicorn with and without :func:`install_uvicorn_shutdown`, and
through the ASGI ``lifespan`` scope.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.routing import WebSocketRoute

import wskit
from asgi.support import (
    TIMEOUT,
    WS_IMPLS,
    FakeServer,
    WsWrapper,
    echo,
    make_hub,
    starlette_app,
    uvicorn_serving,
)
from wskit import ConnectionClosedError, ConnectionClosedOK
from wskit.asgi.endpoint import asgi_app


class Lifespan:
    """An endpoint's ASGI ``lifespan`` scope, driven as a server drives it."""

    def __init__(self, endpoint: Any) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(endpoint({"type": "lifespan"}, self.inbox.get, self._send))

    async def _send(self, message: Any) -> None:
        await self.outbox.put(dict(message))

    async def answer(self) -> dict[str, Any]:
        """The endpoint's next message to the server."""
        return await asyncio.wait_for(self.outbox.get(), TIMEOUT)

    async def ask(self, kind: str) -> dict[str, Any]:
        """Send a ``lifespan.*`` message; return the answer."""
        await self.inbox.put({"type": kind})
        return await self.answer()


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
async def test_shutdown_closes_1001(ws_impl: str) -> None:
    hub = make_hub()
    closes: list[int] = []
    hub.on("disconnect", lambda client, code, reason: closes.append(code))
    hub_endpoint = asgi_app(hub)
    echo_endpoint = asgi_app(echo)
    app = starlette_app(
        WebSocketRoute("/ws", echo_endpoint),
        *hub_endpoint.routes("/hub"),
        lifespan=echo_endpoint.lifespan,
    )
    async with uvicorn_serving(app, ws=ws_impl, graceful=True) as served:
        plain = await wskit.connect(served.ws())
        member = await wskit.connect(served.ws("/hub"))
        assert await WsWrapper(member).request("join", "r") is True
        await plain.send("ping")
        assert await plain.recv() == "ping"
        served.server.should_exit = True
        for client in (plain, member):
            with pytest.raises(ConnectionClosedOK) as info:
                await asyncio.wait_for(client.recv(), TIMEOUT)
            assert (info.value.code, info.value.reason) == (1001, "server shutting down")
    assert closes == [1001]
    assert not echo_endpoint.connections and not hub_endpoint.connections
    # The same application serves again under a new server.
    async with (
        uvicorn_serving(app, ws=ws_impl, graceful=True) as served,
        wskit.connect(served.ws()) as client,
    ):
        await client.send("again")
        assert await client.recv() == "again"


async def test_uvicorn_alone_closes_1012() -> None:
    """Without install_uvicorn_shutdown, uvicorn closes first, with 1012, before lifespan."""
    endpoint = asgi_app(echo)
    app = starlette_app(WebSocketRoute("/ws", endpoint), lifespan=endpoint.lifespan)
    async with uvicorn_serving(app) as served:
        client = await wskit.connect(served.ws())
        served.server.should_exit = True
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(client.recv(), TIMEOUT)
        assert info.value.code == 1012


async def test_lifespan_shutdown_closes_connections_1001() -> None:
    endpoint = asgi_app(echo)
    fake = FakeServer()
    ws_task = asyncio.create_task(endpoint(fake.scope, fake.receive, fake.send))
    await fake.inbox.put({"type": "websocket.connect"})
    assert (await fake.sent())["type"] == "websocket.accept"
    await fake.inbox.put({"type": "websocket.receive", "text": "hi"})
    assert await fake.sent() == {"type": "websocket.send", "text": "hi"}

    life = Lifespan(endpoint)
    assert await life.ask("lifespan.startup") == {"type": "lifespan.startup.complete"}
    await life.inbox.put({"type": "lifespan.shutdown"})
    close = await fake.sent()
    assert close == {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}
    await fake.inbox.put({"type": "websocket.disconnect", "code": 1001})
    assert await life.answer() == {"type": "lifespan.shutdown.complete"}
    await asyncio.wait_for(asyncio.gather(ws_task, life.task), TIMEOUT)

    # While shutting down, new connections are refused with 503.
    late = FakeServer()
    late_task = asyncio.create_task(endpoint(late.scope, late.receive, late.send))
    await late.inbox.put({"type": "websocket.connect"})
    start, body = await late.sent(), await late.sent()
    assert start["status"] == 503
    assert json.loads(body["body"]) == {"error": "Service Unavailable"}
    await late_task


class Startable:
    """A connection handler with an ``async start()``, as a hub has (for its broker)."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        if self.failure is not None:
            raise self.failure

    async def __call__(self, conn: Any) -> None:
        await conn.close()


async def _lifespan_startup(endpoint: Any) -> dict[str, Any]:
    """Send ``lifespan.startup`` to ``endpoint`` (and shut it down if it started); its answer."""
    life = Lifespan(endpoint)
    answer = await life.ask("lifespan.startup")
    if answer["type"] == "lifespan.startup.complete":
        await life.ask("lifespan.shutdown")
    await asyncio.wait_for(life.task, TIMEOUT)
    return answer


async def test_lifespan_startup_starts_the_handler() -> None:
    handler = Startable()
    assert await _lifespan_startup(asgi_app(handler)) == {"type": "lifespan.startup.complete"}
    assert handler.starts == 1


async def test_lifespan_startup_fails_when_the_handler_cannot_start() -> None:
    # A hub whose broker is out of reach: the server hears it at startup,
    # with the reason, instead of at the first connection.
    handler = Startable(RuntimeError("cannot reach redis://127.0.0.1:1/0"))
    answer = await _lifespan_startup(asgi_app(handler))
    assert answer == {
        "type": "lifespan.startup.failed",
        "message": "cannot reach redis://127.0.0.1:1/0",
    }
    endpoint = asgi_app(Startable(RuntimeError("down")))
    with pytest.raises(RuntimeError, match="down"):
        async with endpoint.lifespan():
            pass
