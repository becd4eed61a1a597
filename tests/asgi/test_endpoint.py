"""wskit.asgi.endpoint: Conn handlers and hubs in Starlette and FastAPI under a real uvicorn.

Routing and mounting, hubs, plain HTTP on the WebSocket URL, the upgrader's
hooks and refusals, and how the end of a handler closes its connection.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import InvalidStatus

import wskit
from asgi.support import (
    TIMEOUT,
    WS_IMPLS,
    WsWrapper,
    echo,
    error_body,
    make_hub,
    starlette_app,
    uvicorn_serving,
)
from wskit import ConnectionClosedError, ConnectionClosedOK, HandshakeRejected, Request
from wskit.asgi.connection import AsgiConn
from wskit.asgi.endpoint import UpgradeRefused, asgi_app
from wskit.protocol.handshake import reject

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
        assert info.value.headers.get("Content-Type") == "application/json"
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
        assert info.value.headers.get("WWW-Authenticate") == "Bearer"

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
        # A crashing hook is a 500 with an error id, not its text (no debug).
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/ws?crash=1"))
        assert info.value.status == 500
        error = error_body(info.value)["error"]
        assert re.fullmatch(r"Internal server error \(error [0-9a-f]{8}\)", error)
        # upgrade_error builds every refusal of the upgrader (and is told no secret either).
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/custom?crash=1"))
        assert info.value.body.startswith(b"custom: 500 Internal server error (error ")
        assert b"boom" not in info.value.body
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/custom"), origin="https://evil.example")
        assert info.value.body == b"custom: 403 Origin not allowed"


async def test_one_upgrade_error_in_server_options_shapes_serve_and_asgi_app() -> None:
    def upgrade_error(request: Request, status: int, reason: str) -> wskit.Response:
        return reject(status, f"shaped: {status} {reason}")

    def authorize(conn: AsgiConn, request: Request) -> bool:
        raise UpgradeRefused(401, "log in first", [("WWW-Authenticate", "Bearer")])

    options = wskit.ServerOptions(path="/ws", upgrade_error=upgrade_error)
    app = asgi_app(echo, options=options, authorize=authorize)
    assert app.upgrade_error is upgrade_error
    async with (
        uvicorn_serving(app) as served,
        wskit.serve(echo, "127.0.0.1", 0, options=options) as srv,
    ):
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(f"ws://127.0.0.1:{srv.port}/other")
        assert (info.value.status, info.value.body) == (
            404,
            b"shaped: 404 No WebSocket endpoint at /other",
        )
        with pytest.raises(HandshakeRejected) as info:
            await wskit.connect(served.ws("/ws"))
        assert (info.value.status, info.value.body) == (401, b"shaped: 401 log in first")
        # The headers the refusal carries stay, under the hook's body.
        assert info.value.headers.get("WWW-Authenticate") == "Bearer"


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


# --------------------------------------------------------------------------- the handler's end


@pytest.mark.parametrize("debug", [False, True])
async def test_handler_exception_closes_1011(debug: bool, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(conn: AsgiConn) -> None:
        await conn.recv()
        raise KeyError("db-password=hunter2")

    endpoint = asgi_app(broken, debug=debug)
    app = starlette_app(WebSocketRoute("/ws", endpoint))
    async with uvicorn_serving(app) as served, wskit.connect(served.ws()) as client:
        await client.send("go")
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
        assert info.value.code == 1011
        shown = "KeyError: 'db-password=hunter2'" if debug else "Internal server error"
        match = re.fullmatch(re.escape(shown) + r" \(error ([0-9a-f]{8})\)", info.value.reason)
        assert match is not None, info.value.reason
        # The log has the traceback under the id the client read.
        [record] = [r for r in caplog.records if match.group(1) in r.getMessage()]
        assert record.exc_info is not None and record.exc_info[0] is KeyError
        assert endpoint.counters.handler_errors == 1


async def test_server_wide_limits_refuse_with_503() -> None:
    capped = asgi_app(echo, max_connections=2, max_connections_per_ip=1)
    rated = asgi_app(echo, handshake_rate=0.5, handshake_burst=1)
    app = starlette_app(WebSocketRoute("/ws", capped), WebSocketRoute("/rated", rated))
    async with uvicorn_serving(app) as served:
        async with websockets_connect(served.ws()) as first:
            with pytest.raises(InvalidStatus) as refused:
                await websockets_connect(served.ws())
            assert refused.value.response.status_code == 503
            assert b"from your address" in refused.value.response.body
            async with websockets_connect(served.ws(), local_addr=("127.0.0.2", 0)) as second:
                await second.send("another address")
                assert await second.recv() == "another address"
                with pytest.raises(InvalidStatus) as refused:
                    await websockets_connect(served.ws(), local_addr=("127.0.0.3", 0))
                assert refused.value.response.status_code == 503
                assert b"the server is at its limit" in refused.value.response.body
            await first.send("still open")
            assert await first.recv() == "still open"
        assert capped.counters.refused_max_connections_per_ip == 1
        assert capped.counters.refused_max_connections == 1
        async with websockets_connect(served.ws("/rated")):
            pass
        with pytest.raises(InvalidStatus) as refused:
            await websockets_connect(served.ws("/rated"))
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "2"
        assert rated.counters.refused_handshake_rate == 1
    assert capped.admission.open == rated.admission.open == 0
