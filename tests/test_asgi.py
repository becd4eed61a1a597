"""wskit.asgi: Conn handlers and hubs mounted in Starlette and FastAPI under a real uvicorn.

Servers are real ``uvicorn.Server`` instances started in-process on a free
loopback port (lifespan on), and clients are real ``wskit.connect`` and
``websockets`` clients. The state-machine tests at the end drive the ASGI
interface directly, since no real server sends messages out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed as WebsocketsClosed
from websockets.exceptions import InvalidStatus

import wskit
from conftest import unused_port
from wskit import ConnectionClosedError, ConnectionClosedOK, HandshakeRejected, Request
from wskit.asgi import (
    AsgiConn,
    ASGIProtocolError,
    ConnState,
    UpgradeRefused,
    asgi_app,
    install_uvicorn_shutdown,
    request_from_scope,
)
from wskit.hub import Client, Hub
from wskit.protocol.handshake import reject

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


# --------------------------------------------------------------------------- helpers


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
    app: Any, *, ws: str = "websockets-sansio", graceful: bool = False, **config: Any
) -> AsyncIterator[Served]:
    """Run ``app`` under a real uvicorn in this event loop; stop it on exit."""
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


# --------------------------------------------------------------------------- Starlette


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
async def test_starlette_echo_with_wskit_and_websockets_clients(ws_impl: str) -> None:
    app = starlette_app(WebSocketRoute("/ws", asgi_app(echo)))
    async with uvicorn_serving(app, ws=ws_impl) as served:
        async with wskit.connect(served.ws()) as client:
            await client.send("hello")
            assert await client.recv() == "hello"
            await client.send(b"\x00\x01binary")
            assert await client.recv() == b"\x00\x01binary"
            big = "é" * 100_000
            await client.send(big)
            assert await client.recv() == big
        async with websockets_connect(served.ws()) as peer:
            await peer.send("from websockets")
            assert await peer.recv() == "from websockets"
            await peer.send(b"bytes")
            assert await peer.recv() == b"bytes"


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
async def test_handler_return_closes_1000(ws_impl: str) -> None:
    async def bye(conn: AsgiConn) -> None:
        await conn.send("bye")

    app = starlette_app(WebSocketRoute("/ws", asgi_app(bye)))
    async with uvicorn_serving(app, ws=ws_impl) as served, wskit.connect(served.ws()) as client:
        assert await client.recv() == "bye"
        with pytest.raises(ConnectionClosedOK) as info:
            await client.recv()
        assert info.value.code == 1000


async def test_starlette_hub_events_requests_and_rooms() -> None:
    hub = make_hub()
    connected: list[str] = []
    hub.on("connect", lambda client: connected.append(client.id))
    app = starlette_app(*asgi_app(hub).routes("/hub"))
    async with (
        uvicorn_serving(app) as served,
        wskit.connect(served.ws("/hub")) as a,
        wskit.connect(served.ws("/hub")) as b,
        wskit.connect(served.ws("/hub")) as outsider,
    ):
        alice, bob, other = WsWrapper(a), WsWrapper(b), WsWrapper(outsider)
        assert await alice.request("add", 2, 3) == 5
        assert await alice.request("join", "lobby") is True
        assert await bob.request("join", "lobby") is True
        assert await other.request("join", "elsewhere") is True
        assert len(connected) == 3
        assert hub.count("lobby") == 2
        # ASGI connections have no socket writer: room emits take write_prepared().
        assert all(member is None for member in hub.rooms["lobby"].values())

        # A room emit from the server reaches both members, not the outsider.
        hub.to("lobby").emit("news", {"n": 1})
        assert await alice.next_event() == ["news", {"n": 1}]
        assert await bob.next_event() == ["news", {"n": 1}]

        # A client's broadcast reaches the other member only.
        await alice.emit("shout", "lobby", "hi")
        assert await bob.next_event() == ["heard", "HI"]

        # An unknown request is rejected, the hub keeps going.
        with pytest.raises(RuntimeError, match="No event listener"):
            await alice.request("nope")
        assert await other.request("add", 1, 1) == 2
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(outsider.recv(), 0.2)


async def test_hub_disconnect_hook_sees_the_close_code() -> None:
    hub = make_hub()
    closes: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    hub.on("disconnect", lambda client, code, reason: closes.put_nowait((code, reason)))
    app = starlette_app(*asgi_app(hub).routes("/hub"))
    async with uvicorn_serving(app) as served:
        async with wskit.connect(served.ws("/hub")) as client:
            assert await WsWrapper(client).request("add", 1, 2) == 3
            await client.close(4000, "leaving")
        assert await asyncio.wait_for(closes.get(), TIMEOUT) == (4000, "leaving")
        assert hub.count() == 0


async def test_plain_http_gets_426_and_the_hub_serves_its_client() -> None:
    hub = make_hub()
    app = starlette_app(*asgi_app(hub).routes("/hub"), Mount("/m", asgi_app(hub)))
    async with uvicorn_serving(app) as served, httpx.AsyncClient() as http:
        response = await http.get(served.http("/hub"))
        assert response.status_code == 426
        assert response.headers["upgrade"] == "websocket"
        assert "WebSocket endpoint" in response.text
        assert (await http.head(served.http("/hub"))).status_code == 426

        for base in ("/hub", "/m"):
            module = await http.get(served.http(f"{base}/wskit.mjs"))
            assert module.status_code == 200
            assert module.headers["content-type"].startswith("text/javascript")
            assert "WskitClient" in module.text
            classic = await http.get(served.http(f"{base}/wskit.js"))
            # The classic build may not be finished: then a readable 404, never a crash.
            assert classic.status_code in (200, 404)
            if classic.status_code == 404:
                assert "wskit.mjs" in classic.text

        # Through a Mount, anything else is the 426 too, and POST is 405.
        assert (await http.get(served.http("/m/"))).status_code == 426
        assert (await http.post(served.http("/m/"))).status_code == 405

        # The mounted hub accepts WebSockets as well.
        async with wskit.connect(served.ws("/m/")) as client:
            assert await WsWrapper(client).request("add", 20, 22) == 42


# --------------------------------------------------------------------------- FastAPI


async def test_fastapi_routes_mount_and_run() -> None:
    hub = make_hub()
    hub_endpoint = asgi_app(hub)
    echo_endpoint = asgi_app(echo)
    app = FastAPI()

    @app.websocket("/echo")
    async def echo_route(websocket: WebSocket) -> None:
        await echo_endpoint.run(websocket)

    async def api_route(websocket: WebSocket) -> None:
        await echo_endpoint.run(websocket)

    app.add_api_websocket_route("/api-echo", api_route)
    app.router.routes.extend(hub_endpoint.routes("/hub"))
    app.mount("/mounted", asgi_app(echo))

    async with uvicorn_serving(app) as served:
        for path in ("/echo", "/api-echo", "/mounted/"):
            async with wskit.connect(served.ws(path)) as client:
                await client.send(f"via {path}")
                assert await client.recv() == f"via {path}"
        async with (
            wskit.connect(served.ws("/hub")) as a,
            websockets_connect(served.ws("/hub")) as b,
        ):
            alice = WsWrapper(a)
            assert await alice.request("join", "r") is True
            await b.send(json.dumps({"i": 1, "a": ["join", "r"]}))
            assert json.loads(await b.recv()) == {"i": 1, "d": True}
            await alice.emit("shout", "r", "fastapi")
            assert json.loads(await b.recv()) == {"a": ["heard", "FASTAPI"]}


# --------------------------------------------------------------------------- the upgrader


async def test_origin_rejected_with_json_error() -> None:
    app = starlette_app(
        WebSocketRoute("/ws", asgi_app(echo)),
        WebSocketRoute("/debug", asgi_app(echo, debug=True)),
        WebSocketRoute("/list", asgi_app(echo, origins=["https://good.example", None])),
    )
    async with uvicorn_serving(app) as served:
        # gorilla's safe default: a cross-site page is refused...
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws(), origin="https://evil.example")
        assert info.value.status == 403
        assert error_body(info.value) == {"error": "Forbidden"}
        assert ("content-type", "application/json") in [
            (n.lower(), v) for n, v in info.value.headers
        ]
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/debug"), origin="https://evil.example")
        assert error_body(info.value) == {"error": "Origin not allowed"}
        # ...while the same host and non-browser clients are welcome.
        async with wskit.connect(served.ws(), origin=f"http://127.0.0.1:{served.port}") as ok:
            await ok.send("same host")
            assert await ok.recv() == "same host"

        # An allow-list.
        async with wskit.connect(served.ws("/list"), origin="https://good.example") as ok:
            await ok.send("listed")
            assert await ok.recv() == "listed"
        async with wskit.connect(served.ws("/list")) as ok:  # no Origin: None is listed
            await ok.send("no origin")
            assert await ok.recv() == "no origin"
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/list"), origin=f"http://127.0.0.1:{served.port}")
        assert info.value.status == 403

        # The websockets client sees the same refusal.
        with pytest.raises(InvalidStatus) as refused:
            await websockets_connect(served.ws(), origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body) == {"error": "Forbidden"}


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
async def test_authorize_hook_refuses_with_status_and_json(ws_impl: str) -> None:
    async def authorize(conn: AsgiConn, request: Request) -> bool:
        token = request.headers.get("Authorization")
        if token is None:
            return False
        if token != "Bearer good":
            raise UpgradeRefused(401, "invalid token", [("WWW-Authenticate", "Bearer")])
        conn.upgrade_headers.add("Set-Cookie", "session=s3cr3t; HttpOnly")
        return True

    endpoint = asgi_app(echo, authorize=authorize)
    app = starlette_app(WebSocketRoute("/ws", endpoint))
    async with uvicorn_serving(app, ws=ws_impl) as served:
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws())
        assert info.value.status == 401
        assert error_body(info.value) == {"error": "Unauthorized"}

        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws(), headers={"Authorization": "Bearer bad"})
        assert info.value.status == 401
        assert error_body(info.value) == {"error": "invalid token"}
        assert ("www-authenticate", "Bearer") in [(n.lower(), v) for n, v in info.value.headers]

        async with wskit.connect(served.ws(), headers={"Authorization": "Bearer good"}) as ok:
            assert ok.response is not None
            assert ok.response.headers.get("Set-Cookie") == "session=s3cr3t; HttpOnly"
            await ok.send("in")
            assert await ok.recv() == "in"


async def test_hooks_errors_and_custom_error_body() -> None:
    def process_request(conn: AsgiConn, request: Request) -> wskit.Response | None:
        if request.query_params.get("teapot"):
            return reject(418, "short and stout")
        if request.query_params.get("crash"):
            raise KeyError("boom")
        return None

    def upgrade_error(request: Request, status: int, reason: str) -> wskit.Response:
        return reject(status, f"custom: {status} {reason}")

    app = starlette_app(
        WebSocketRoute("/ws", asgi_app(echo, process_request=process_request)),
        WebSocketRoute(
            "/custom",
            asgi_app(echo, process_request=process_request, upgrade_error=upgrade_error),
        ),
    )
    async with uvicorn_serving(app) as served:
        # A hook's own response is sent as is.
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/ws?teapot=1"))
        assert info.value.status == 418
        assert info.value.body == b"short and stout"
        # A crashing hook is a 500 with the status text only (no debug).
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/ws?crash=1"))
        assert info.value.status == 500
        assert error_body(info.value) == {"error": "Internal Server Error"}
        # upgrade_error builds every refusal of the upgrader.
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/custom?crash=1"))
        assert info.value.body.startswith(b"custom: 500 KeyError")
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/custom"), origin="https://evil.example")
        assert info.value.body == b"custom: 403 Origin not allowed"


async def test_hook_sees_headers_cookies_query_path_and_address() -> None:
    seen: dict[str, Any] = {}

    async def process_request(conn: AsgiConn, request: Request) -> None:
        seen["path"] = request.path
        seen["query"] = request.query_params
        seen["cookies"] = request.cookies
        seen["token"] = request.headers.get("X-Token")
        seen["host"] = request.host
        seen["remote"] = conn.remote_address
        seen["local"] = conn.local_address

    async def handler(conn: AsgiConn) -> None:
        assert conn.request.path == "/rooms/42"
        await conn.send_json({"path": conn.request.path, "cookies": conn.request.cookies})

    app = starlette_app(
        WebSocketRoute("/rooms/{room}", asgi_app(handler, process_request=process_request))
    )
    async with (
        uvicorn_serving(app) as served,
        wskit.connect(
            served.ws("/rooms/42?user=ann&tag=a&tag=b"),
            headers=[("Cookie", "session=abc; theme=dark"), ("X-Token", "t0k")],
        ) as client,
    ):
        assert await client.recv_json() == {
            "path": "/rooms/42",
            "cookies": {"session": "abc", "theme": "dark"},
        }
    assert seen["path"] == "/rooms/42"
    assert seen["query"] == {"user": ["ann"], "tag": ["a", "b"]}
    assert seen["cookies"] == {"session": "abc", "theme": "dark"}
    assert seen["token"] == "t0k"
    assert seen["host"] == f"127.0.0.1:{served.port}"
    assert seen["remote"][0] == "127.0.0.1"
    assert seen["local"] == ("127.0.0.1", served.port)


async def test_extra_headers_set_cookie() -> None:
    def per_request(request: Request) -> list[tuple[str, str]]:
        return [("Set-Cookie", f"seen={request.query_params['n'][0]}"), ("X-Extra", "1")]

    app = starlette_app(
        WebSocketRoute("/static", asgi_app(echo, extra_headers={"Set-Cookie": "a=1; Path=/"})),
        WebSocketRoute("/dynamic", asgi_app(echo, extra_headers=per_request)),
    )
    async with uvicorn_serving(app) as served:
        async with wskit.connect(served.ws("/static")) as client:
            assert client.response is not None
            assert client.response.headers.get_all("Set-Cookie") == ["a=1; Path=/"]
        async with wskit.connect(served.ws("/dynamic?n=7")) as client:
            assert client.response is not None
            assert client.response.headers.get("Set-Cookie") == "seen=7"
            assert client.response.headers.get("X-Extra") == "1"
        async with websockets_connect(served.ws("/static")) as peer:
            assert peer.response is not None
            assert peer.response.headers["Set-Cookie"] == "a=1; Path=/"


async def test_subprotocol_negotiation() -> None:
    async def which(conn: AsgiConn) -> None:
        await conn.send(str(conn.subprotocol))

    def pick_last(offered: Sequence[str], server: Sequence[str]) -> str | None:
        return offered[-1] if offered else None

    app = starlette_app(
        WebSocketRoute("/pref", asgi_app(which, subprotocols=["chat.v2", "chat.v1"])),
        WebSocketRoute("/pick", asgi_app(which, select_subprotocol=pick_last)),
    )
    async with uvicorn_serving(app) as served:
        # The server's preference wins.
        async with wskit.connect(served.ws("/pref"), subprotocols=["chat.v1", "chat.v2"]) as c:
            assert c.subprotocol == "chat.v2"
            assert await c.recv() == "chat.v2"
        async with wskit.connect(served.ws("/pref"), subprotocols=["chat.v1"]) as c:
            assert c.subprotocol == "chat.v1"
            assert await c.recv() == "chat.v1"
        # Nothing in common: accepted without a subprotocol (the client decides).
        async with wskit.connect(served.ws("/pref"), subprotocols=["other"]) as c:
            assert c.subprotocol is None
            assert await c.recv() == "None"
        async with wskit.connect(served.ws("/pick"), subprotocols=["a", "b"]) as c:
            assert c.subprotocol == "b"
        async with websockets_connect(
            served.ws("/pref"),
            subprotocols=["chat.v1", "chat.v2"],  # type: ignore[list-item]
        ) as peer:
            assert peer.subprotocol == "chat.v2"


# --------------------------------------------------------------------------- closing


@pytest.mark.parametrize("debug", [False, True])
async def test_handler_exception_closes_1011(debug: bool) -> None:
    async def broken(conn: AsgiConn) -> None:
        await conn.recv()
        raise ValueError("something broke")

    app = starlette_app(WebSocketRoute("/ws", asgi_app(broken, debug=debug)))
    async with uvicorn_serving(app) as served, wskit.connect(served.ws()) as client:
        await client.send("go")
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011
        expected = "Internal server error: something broke" if debug else "Internal server error"
        assert info.value.reason == expected


async def test_on_close_handlers_see_the_peer_close_and_may_be_coroutines() -> None:
    seen: list[tuple[str, int, str]] = []
    done = asyncio.Event()

    async def async_on_close(code: int, reason: str) -> None:
        seen.append(("async", code, reason))
        done.set()

    async def handler(conn: AsgiConn) -> None:
        conn.on_close = async_on_close if conn.request.path == "/ws" else broken_on_close
        with pytest.raises(wskit.ConnectionClosed):
            await conn.recv()

    def broken_on_close(code: int, reason: str) -> None:
        seen.append(("broken", code, reason))
        raise ValueError("handler broke")  # logged; the connection still ends

    app = starlette_app(
        WebSocketRoute("/ws", asgi_app(handler)), WebSocketRoute("/other", asgi_app(handler))
    )
    async with uvicorn_serving(app) as served:
        async with wskit.connect(served.ws()) as client:
            await client.close(4002, "bye")
        await asyncio.wait_for(done.wait(), 5)
        async with wskit.connect(served.ws("/other")) as client:
            await client.close(4003, "again")
        async with asyncio.timeout(5):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
    assert seen == [("async", 4002, "bye"), ("broken", 4003, "again")]


async def test_handler_close_with_custom_code() -> None:
    async def handler(conn: AsgiConn) -> None:
        await conn.send(["last ", "words"])  # ASGI has no fragments: joined
        async with conn.message_writer(binary=True) as writer:
            await writer.write(b"\x01")
            await writer.write(b"\x02")
        await conn.close(4001, "go away")
        assert conn.closed
        with pytest.raises(wskit.ConnectionClosed):
            await conn.send("too late")

    app = starlette_app(WebSocketRoute("/ws", asgi_app(handler)))
    async with uvicorn_serving(app) as served, wskit.connect(served.ws()) as client:
        assert await client.recv() == "last words"
        assert await client.recv() == b"\x01\x02"
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert (info.value.code, info.value.reason) == (4001, "go away")


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
async def test_max_size_closes_1009(ws_impl: str) -> None:
    received: list[int] = []

    async def handler(conn: AsgiConn) -> None:
        async for message in conn:
            received.append(len(message))

    app = starlette_app(WebSocketRoute("/ws", asgi_app(handler, max_size=1000)))
    async with uvicorn_serving(app, ws=ws_impl) as served, wskit.connect(served.ws()) as client:
        await client.send("x" * 1000)  # at the limit: fine
        await client.send("é" * 600)  # 1200 bytes of UTF-8: too big
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(client.recv(), TIMEOUT)
        assert info.value.code == 1009
    assert received == [1000]


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


async def test_slow_client_does_not_stall_room_emits() -> None:
    max_buffer = 256 * 1024
    hub = make_hub(max_buffer=max_buffer)
    app = starlette_app(*asgi_app(hub).routes("/hub"))
    payload = "x" * 65536
    count = 400  # 26 MB: far more than the socket buffers of the slow path hold
    async with uvicorn_serving(app, ws_per_message_deflate=False) as served:
        fast = await wskit.connect(served.ws("/hub"), compression=None)
        slow = await wskit.connect(served.ws("/hub"), compression=None, max_queue=1)
        try:
            assert await WsWrapper(fast).request("join", "room") is True
            assert await WsWrapper(slow).request("join", "room") is True
            members = hub.clients_in("room")
            assert len(members) == 2

            async with asyncio.timeout(30):
                for i in range(count):
                    hub.to("room").emit("big", i, payload)
                    # The emitter only waits for the fast client, never the slow one.
                    message = json.loads(await fast.recv())
                    assert message["a"][1] == i
            # The slow client's unsent bytes stayed bounded, its surplus was dropped.
            slow_member = next(c for c in members if c.dropped)
            assert hub.dropped == slow_member.dropped > 0
            assert slow_member.conn.write_buffer_size <= max_buffer + len(payload) + 64
        finally:
            await fast.close()
            assert slow.transport is not None
            slow.transport.abort()


# --------------------------------------------------------------------------- the ASGI state machine


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


def test_request_from_scope() -> None:
    scope = FakeServer(path="/a b").scope
    scope["raw_path"] = b"/a%20b"
    request = request_from_scope(scope)
    assert (request.method, request.target, request.version) == ("GET", "/a%20b?a=1", "HTTP/1.1")
    assert request.headers["Host"] == "127.0.0.1:8000"
    del scope["raw_path"]
    assert request_from_scope(scope).target == "/a%20b?a=1"


async def test_unexpected_messages_name_expected_and_received() -> None:
    fake = FakeServer()
    conn = AsgiConn(fake.scope, fake.receive, fake.send)
    with pytest.raises(ASGIProtocolError, match="accept the connection before sending"):
        await conn.send("early")
    await fake.inbox.put({"type": "websocket.receive", "text": "too soon"})
    with pytest.raises(ASGIProtocolError) as info:
        await conn.accept()
    assert str(info.value) == (
        "expected ASGI message 'websocket.connect' in state CONNECTING, got 'websocket.receive'"
    )

    fake = FakeServer()
    conn = AsgiConn(fake.scope, fake.receive, fake.send)
    await fake.inbox.put({"type": "websocket.connect"})
    await conn.accept()
    assert (await fake.sent())["type"] == "websocket.accept"
    assert conn.client_state is conn.application_state is ConnState.CONNECTED
    with pytest.raises(ASGIProtocolError, match=r"'websocket\.send', 'websocket\.close'"):
        await conn._send_message({"type": "websocket.accept"})
    # A server that sends an HTTP event to a WebSocket: the connection fails, clearly.
    await fake.inbox.put({"type": "http.disconnect"})
    with pytest.raises(ConnectionClosedError) as closed:
        await asyncio.wait_for(conn.recv(), TIMEOUT)
    assert closed.value.code == 1006
    await conn.finish()


async def test_denial_response_needs_the_extension() -> None:
    fake = FakeServer(denial=False)
    conn = AsgiConn(fake.scope, fake.receive, fake.send)
    await fake.inbox.put({"type": "websocket.connect"})
    with pytest.raises(ASGIProtocolError, match="does not support"):
        await conn._send_message({"type": "websocket.http.response.start", "status": 401})
    # reject() falls back to the only refusal plain ASGI has: close before accept (403).
    await conn.reject(reject(401, "no"))
    assert (await fake.sent())["type"] == "websocket.close"
    assert conn.application_state is ConnState.CLOSED
    with pytest.raises(ASGIProtocolError, match="already closed"):
        await conn._send_message({"type": "websocket.send", "text": "x"})

    fake = FakeServer()
    conn = AsgiConn(fake.scope, fake.receive, fake.send)
    await fake.inbox.put({"type": "websocket.connect"})
    await conn.reject(reject(401, "no"))
    start, body = await fake.sent(), await fake.sent()
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 401)
    assert (body["type"], body["body"]) == ("websocket.http.response.body", b"no")
    assert (b"connection", b"close") not in start["headers"]


async def test_lifespan_shutdown_closes_connections_1001() -> None:
    endpoint = asgi_app(echo)
    fake = FakeServer()
    ws_task = asyncio.create_task(endpoint(fake.scope, fake.receive, fake.send))
    await fake.inbox.put({"type": "websocket.connect"})
    assert (await fake.sent())["type"] == "websocket.accept"
    await fake.inbox.put({"type": "websocket.receive", "text": "hi"})
    assert await fake.sent() == {"type": "websocket.send", "text": "hi"}

    life_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    life_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def life_send(message: Any) -> None:
        await life_out.put(dict(message))

    life_task = asyncio.create_task(endpoint({"type": "lifespan"}, life_in.get, life_send))
    await life_in.put({"type": "lifespan.startup"})
    assert await asyncio.wait_for(life_out.get(), TIMEOUT) == {"type": "lifespan.startup.complete"}
    await life_in.put({"type": "lifespan.shutdown"})
    close = await fake.sent()
    assert close == {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}
    await fake.inbox.put({"type": "websocket.disconnect", "code": 1001})
    assert await asyncio.wait_for(life_out.get(), TIMEOUT) == {"type": "lifespan.shutdown.complete"}
    await asyncio.wait_for(asyncio.gather(ws_task, life_task), TIMEOUT)

    # While shutting down, new connections are refused with 503.
    late = FakeServer()
    late_task = asyncio.create_task(endpoint(late.scope, late.receive, late.send))
    await late.inbox.put({"type": "websocket.connect"})
    start, body = await late.sent(), await late.sent()
    assert start["status"] == 503
    assert json.loads(body["body"]) == {"error": "Service Unavailable"}
    await late_task


async def test_write_prepared_is_bounded() -> None:
    fake = FakeServer()
    blocked = asyncio.Event()

    async def stuck_send(message: Any) -> None:
        if message["type"] == "websocket.send":
            await blocked.wait()  # a client that stopped reading
        await fake.outbox.put(dict(message))

    conn = AsgiConn(fake.scope, fake.receive, stuck_send)
    await fake.inbox.put({"type": "websocket.connect"})
    await conn.accept()
    prepared = wskit.PreparedMessage("x" * 1000)
    results = [conn.write_prepared(prepared, 4000) for _ in range(10)]
    assert results == [True] * 5 + [False] * 5
    assert conn.write_buffer_size == 5000
    blocked.set()
    await asyncio.sleep(0.05)
    assert conn.write_buffer_size == 0
    await fake.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await conn.close()
    await conn.finish()
    assert conn.closed and conn.close_code == 1000


async def test_standalone_conn_in_a_bare_asgi_app() -> None:
    """AsgiConn used directly, without the endpoint, in a hand-written ASGI app."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        conn = AsgiConn(scope, receive, send)
        await conn.accept(headers=[("X-Hello", "1")])
        async for message in conn:
            await conn.send(message[::-1])
        await conn.finish()

    async with uvicorn_serving(app, lifespan="off") as served:
        async with wskit.connect(served.ws("/")) as client:
            assert client.response is not None
            assert client.response.headers.get("X-Hello") == "1"
            await client.send("abc")
            assert await client.recv() == "cba"
        async with websockets_connect(served.ws("/")) as peer:
            await peer.send("xyz")
            assert await peer.recv() == "zyx"
            await peer.close()
            with pytest.raises(WebsocketsClosed):
                await peer.recv()
