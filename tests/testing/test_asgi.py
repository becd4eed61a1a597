"""wskit.testing.asgi: ASGI applications (Starlette, FastAPI, asgi_app) driven in memory."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket as StarletteWebSocket

import wskit
import wskit.testing
from wskit.asgi import asgi_app
from wskit.hub import Client, Hub


async def starlette_echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept(subprotocol=websocket.scope["subprotocols"][0] or None)
    async for text in websocket.iter_text():
        if text == "bye":
            await websocket.close(4001, "bye to you")
            return
        await websocket.send_text(text.upper())


starlette_app = Starlette(routes=[WebSocketRoute("/ws", starlette_echo)])

fastapi_app = FastAPI()


@fastapi_app.websocket("/items/{item}")
async def item_route(websocket: WebSocket, item: str, q: str = "") -> None:
    await websocket.accept()
    await websocket.send_json({"item": item, "q": q})
    data = await websocket.receive_bytes()
    await websocket.send_bytes(data[::-1])


@fastapi_app.websocket("/refuse")
async def refuse_route(websocket: WebSocket) -> None:
    await websocket.close(1008)


@fastapi_app.websocket("/broken")
async def broken_route(websocket: WebSocket) -> None:
    raise RuntimeError("broken before accepting")


async def test_starlette_route() -> None:
    async with wskit.testing.connect_asgi(starlette_app, "/ws", subprotocols=["chat"]) as conn:
        assert isinstance(conn, wskit.ClientConn)
        assert conn.subprotocol == "chat"
        await conn.send("hello")
        assert await conn.recv() == "HELLO"
        await conn.send("bye")
        with pytest.raises(wskit.ConnectionClosed) as closed:
            await conn.recv()
    assert (closed.value.code, closed.value.reason) == (4001, "bye to you")


async def test_fastapi_route_with_parameters() -> None:
    async with wskit.testing.connect_asgi(fastapi_app, "/items/42?q=blue") as conn:
        assert await conn.recv_json() == {"item": "42", "q": "blue"}
        await conn.send(b"\x01\x02\x03")
        assert await conn.recv() == b"\x03\x02\x01"


async def test_a_close_before_accepting_is_a_403() -> None:
    with pytest.raises(wskit.HandshakeRejected) as rejected:
        async with wskit.testing.connect_asgi(fastapi_app, "/refuse"):
            pass
    assert rejected.value.status == 403


async def test_an_application_that_fails_before_accepting() -> None:
    # The client reads uvicorn's 500, and the application's exception is raised.
    with pytest.raises(RuntimeError, match="broken before accepting") as raised:
        await wskit.testing.connect_asgi(fastapi_app, "/broken")
    rejected = raised.value.__context__
    assert isinstance(rejected, wskit.HandshakeRejected) and rejected.status == 500
    async with wskit.testing.serve_asgi(fastapi_app, raise_server_exceptions=False) as server:
        with pytest.raises(wskit.HandshakeRejected) as refused:
            await server.connect("/broken")
        assert refused.value.status == 500


async def test_an_application_exception_after_accepting_can_be_left_to_the_client() -> None:
    async def fails(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("oops")

    app = Starlette(routes=[WebSocketRoute("/ws", fails)])
    async with wskit.testing.serve_asgi(app, raise_server_exceptions=False) as server:
        async with server.connect("/ws") as conn:
            await conn.send("go")
            await conn.wait_closed(5)
        # As under uvicorn: the connection is dropped without a close frame.
        assert conn.close_code == 1006
    with pytest.raises(ValueError, match="oops"):
        async with wskit.testing.connect_asgi(app, "/ws") as conn:
            await conn.send("go")
            await conn.wait_closed(5)


async def test_max_size_closes_with_1009_and_deflate_is_negotiated() -> None:
    async with wskit.testing.serve_asgi(starlette_app, max_size=100) as server:
        async with server.connect("/ws", subprotocols=["x"]) as conn:
            assert conn.compression
            await conn.send("a" * 100)
            assert await conn.recv() == "A" * 100
            await conn.send("a" * 101)
            with pytest.raises(wskit.ConnectionClosed) as closed:
                await conn.recv()
        assert closed.value.code == 1009
    plain = wskit.testing.serve_asgi(starlette_app, compression=False)
    async with plain as server, server.connect("/ws", subprotocols=["x"]) as conn:
        assert not conn.compression


async def test_root_path_and_scope() -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(dict(scope))
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    async with (
        wskit.testing.serve_asgi(app, root_path="/api") as server,
        server.connect("/ws?x=1") as conn,
    ):
        await conn.wait_closed(5)
    (scope,) = scopes
    assert scope["type"] == "websocket"
    assert scope["path"] == "/api/ws"
    assert scope["query_string"] == b"x=1"
    assert scope["client"] == conn.local_address
    assert (b"host", wskit.testing.HOST.encode()) in scope["headers"]


async def echo(conn: wskit.ConnectionAPI) -> None:
    async for message in conn:
        await conn.send(message)


async def test_asgi_app_of_a_handler_and_of_a_hub() -> None:
    app = Starlette(
        routes=[WebSocketRoute("/echo", asgi_app(echo)), WebSocketRoute("/hub", asgi_app(HUB))]
    )
    async with wskit.testing.connect_asgi(app, "/echo") as conn:
        await conn.send("hi")
        assert await conn.recv() == "hi"
    async with wskit.testing.connect_asgi(app, "/hub") as conn:
        await conn.send('{"a": ["add", 2, 3], "i": 1}')
        assert await conn.recv_json() == {"i": 1, "d": 5}


HUB = Hub()


@HUB.on("add")
def add(client: Client, a: int, b: int) -> int:
    return a + b


def test_starlettes_test_client_works_with_asgi_app() -> None:
    app = Starlette(routes=[WebSocketRoute("/echo", asgi_app(echo))])
    with TestClient(app) as client, client.websocket_connect("/echo") as websocket:
        websocket.send_text("hello")
        assert websocket.receive_text() == "hello"
        websocket.send_bytes(b"\x00")
        assert websocket.receive_bytes() == b"\x00"
