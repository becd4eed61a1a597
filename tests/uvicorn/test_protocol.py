"""wskit.uvicorn.protocol.WebSocketProtocol under a real ``uvicorn.Server``, in this event loop.

Each test runs uvicorn with ``ws=WebSocketProtocol`` on a free loopback port
and talks to it with real clients: the ``websockets`` client, ``wskit.connect``,
and raw sockets where the test must break rules or read the bytes. The
applications are plain ASGI (to see every event), Starlette, FastAPI and
wskit's own ``asgi_app``. Every test runs twice, once behind each of
uvicorn's HTTP layers (h11 and httptools), which read the request head
before handing the connection over. Where uvicorn defines the behaviour
(closing, disconnect codes, the 403, the shutdown), the tests marked
``AS_UVICORNS_OWN`` run with uvicorn's ``websockets-sansio`` and ``wsproto``
classes as well: the same assertions hold for theirs and ours.
``tests/uvicorn/test_served.py`` runs the ``uvicorn`` command itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
import websockets
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import ConnectionClosed, InvalidStatus

import wskit
from apps.asgi_apps import check_shouting, shouting_hub
from asgi.support import uvicorn_serving
from attacks.support import client_frame
from wskit.asgi import asgi_app
from wskit.uvicorn import WebSocketProtocol, WebSocketProtocol1001

TIMEOUT = 10
MIB = 2**20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# uvicorn's options every test's server gets unless it sets its own: the
# HTTP layer, set per test by the ``http_layer`` fixture.
SERVING_DEFAULTS: dict[str, Any] = {"lifespan": "off"}


@pytest.fixture(autouse=True, params=["h11", "httptools"])
def http_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test behind each of uvicorn's HTTP layers."""
    monkeypatch.setitem(SERVING_DEFAULTS, "http", request.param)
    return str(request.param)


@dataclass
class Served:
    server: uvicorn.Server
    port: int

    def ws(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def connections(self) -> list[WebSocketProtocol]:
        """The WebSocket connections uvicorn tracks (ours, once upgraded)."""
        return [c for c in self.server.server_state.connections if isinstance(c, WebSocketProtocol)]


@contextlib.asynccontextmanager
async def serving(
    app: Any, *, ws: type[WebSocketProtocol] | str = WebSocketProtocol, **config: Any
) -> AsyncIterator[Served]:
    """Run ``app`` under uvicorn with wskit's WebSocket class (or ``ws``); stop it on exit."""
    for option, value in SERVING_DEFAULTS.items():
        config.setdefault(option, value)
    async with uvicorn_serving(app, ws=ws, **config) as served:
        yield Served(served.server, served.port)


class Recorder:
    """A plain ASGI WebSocket application driven by a test: every event it receives is kept.

    ``script(scope, receive, send)`` is the session; ``events`` the messages
    it received, ``error`` what it raised, ``done`` set when it returned.
    """

    def __init__(self, script: ASGIApp) -> None:
        self.script = script
        self.scopes: list[Scope] = []
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.done = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        self.scopes.append(scope)

        async def recording_receive() -> dict[str, Any]:
            event = await receive()
            self.events.append(event)
            return event

        try:
            await self.script(scope, recording_receive, send)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()

    async def finished(self) -> None:
        await asyncio.wait_for(self.done.wait(), TIMEOUT)


async def echo_script(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept and echo every message until the disconnect."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        await send(
            {"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")}
        )


#: Where uvicorn defines the behaviour, the test runs with uvicorn's own classes
#: too: the same assertions hold for wskit's class and for theirs.
AS_UVICORNS_OWN = pytest.mark.parametrize(
    "ws",
    [WebSocketProtocol, "websockets-sansio", "wsproto"],
    ids=["wskit", "uvicorn-websockets-sansio", "uvicorn-wsproto"],
)


# -------------------------------------------------------------------------- raw sockets

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n"
)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """``(first byte, payload)`` of the next frame the server sends (unmasked)."""
    b0, length = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    length &= 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


@contextlib.asynccontextmanager
async def raw_client(
    port: int, path: str = "/", version: str = "13", extra: bytes = b""
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]:
    """A raw connection that sent an upgrade request; yields the response head too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(UPGRADE.format(path=path, version=version).encode() + extra + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        yield reader, writer, head
    finally:
        writer.close()


# -------------------------------------------------------------------------- the scope


async def test_the_scope_has_every_field_uvicorn_sets(http_layer: str) -> None:
    app = Recorder(echo_script)
    async with serving(app) as served:
        layer = served.server.config.http_protocol_class.__name__
        assert layer == {"h11": "H11Protocol", "httptools": "HttpToolsProtocol"}[http_layer]
        headers = b"Sec-WebSocket-Protocol: chat, v2\r\nX-Name: abra\xc3\xa3o\r\n"
        async with raw_client(served.port, "/a%2Fb/c?x=1&y=%20", extra=headers) as (
            reader,
            writer,
            head,
        ):
            assert head.startswith(b"HTTP/1.1 101 ")
            writer.write(client_frame(0x81, b"hi"))
            assert await read_frame(reader) == (0x81, b"hi")
            client_port = writer.get_extra_info("sockname")[1]
    scope = app.scopes[0]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["server"] == ("127.0.0.1", served.port)
    assert scope["client"] == ("127.0.0.1", client_port)
    assert scope["root_path"] == ""
    assert scope["path"] == "/a/b/c"
    assert scope["raw_path"] == b"/a%2Fb/c"
    assert scope["query_string"] == b"x=1&y=%20"
    assert (b"host", b"127.0.0.1") in scope["headers"]
    # Header bytes pass through as they came (ASGI: Latin-1 both ways).
    assert (b"x-name", "abraão".encode()) in scope["headers"]
    assert scope["subprotocols"] == ["chat", "v2"]
    assert scope["state"] == {}
    assert scope["extensions"] == {"websocket.http.response": {}}


async def test_root_path_and_the_lifespan_state_reach_the_scope() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["pool"] = "ready"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(scope)
        await echo_script(scope, receive, send)

    async with (
        serving(app, root_path="/api", lifespan="on") as served,
        websockets.connect(served.ws("/room/1")) as client,
    ):
        await client.send("x")
        assert await client.recv() == "x"
    assert scopes[0]["root_path"] == "/api"
    assert scopes[0]["path"] == "/api/room/1"
    assert scopes[0]["raw_path"] == b"/api/room/1"
    assert scopes[0]["state"] == {"pool": "ready"}


async def test_proxy_headers_give_the_client_address_and_scheme() -> None:
    app = Recorder(echo_script)
    async with serving(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as served:
        forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        async with websockets.connect(served.ws(), additional_headers=forwarded) as client:
            await client.send("x")
            await client.recv()
    assert app.scopes[0]["client"] == ("203.0.113.7", 0)
    assert app.scopes[0]["scheme"] == "wss"


# -------------------------------------------------------------------------- the handshake


async def test_accept_sends_the_subprotocol_and_headers_after_uvicorns_own() -> None:
    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"x-extra", b"1"), (b"server", b"mine")]
        await send({"type": "websocket.accept", "subprotocol": "v2", "headers": headers})
        await receive()

    async with (
        serving(Recorder(script)) as served,
        websockets.connect(served.ws(), subprotocols=["v1", "v2"]) as client,
    ):
        assert client.subprotocol == "v2"
        response = client.response
        assert response is not None
        assert response.headers.get_all("Server") == ["uvicorn", "mine"]
        assert response.headers["X-Extra"] == "1"
        assert "Date" in response.headers


async def test_server_and_date_headers_follow_uvicorns_options() -> None:
    async with (
        serving(
            Recorder(echo_script), server_header=False, date_header=False, headers=[("X-Node", "a")]
        ) as served,
        websockets.connect(served.ws()) as client,
    ):
        response = client.response
        assert response is not None
        assert "Server" not in response.headers
        assert "Date" not in response.headers
        assert response.headers["X-Node"] == "a"


@pytest.mark.parametrize("deflate", [True, False])
async def test_per_message_deflate_follows_the_option(deflate: bool) -> None:
    async with (
        serving(Recorder(echo_script), ws_per_message_deflate=deflate) as served,
        websockets.connect(served.ws()) as client,
    ):
        response = client.response
        assert response is not None
        offered = response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in offered) is deflate
        await client.send("a" * 10_000)
        assert await client.recv() == "a" * 10_000


async def test_a_bad_handshake_is_refused_and_the_app_never_runs() -> None:
    app = Recorder(echo_script)
    async with serving(app) as served, raw_client(served.port, version="8") as (_, _, head):
        assert head.startswith(b"HTTP/1.1 426 ")
        assert b"Sec-WebSocket-Version: 13" in head
    assert app.scopes == []


@AS_UVICORNS_OWN
async def test_close_before_accept_is_403_and_the_app_hears_1006(ws: Any) -> None:
    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})
        await receive()

    app = Recorder(script)
    async with serving(app, ws=ws) as served:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(served.ws())
        assert refused.value.response.status_code == 403
        await app.finished()
    assert app.events[-1] == {"type": "websocket.disconnect", "code": 1006}


@pytest.mark.parametrize("content_length", [True, False], ids=["streamed", "buffered"])
async def test_a_denial_response_is_sent_as_the_app_wrote_it(content_length: bool) -> None:
    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"x-why", b"closed")]
        if content_length:
            headers.append((b"content-length", b"11"))
        await send({"type": "websocket.http.response.start", "status": 418, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"not ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"a teapot"[1:]})
        await receive()

    app = Recorder(script)
    async with serving(app) as served:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(served.ws())
        response = refused.value.response
        assert response.status_code == 418
        assert response.body == b"not  teapot"
        assert response.headers["X-Why"] == "closed"
        assert response.headers["Content-Length"] == "11"
        await app.finished()
    assert app.events[-1] == {"type": "websocket.disconnect", "code": 1006}


async def test_frames_sent_before_the_accept_wait_for_it() -> None:
    connected = asyncio.Event()
    accept = asyncio.Event()

    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        connected.set()
        await accept.wait()
        await send({"type": "websocket.accept"})
        event = await receive()
        await send({"type": "websocket.send", "text": "got " + event["text"]})
        await receive()

    async with serving(Recorder(script)) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(UPGRADE.format(path="/", version="13").encode() + b"\r\n")
        await asyncio.wait_for(connected.wait(), TIMEOUT)
        writer.write(client_frame(0x81, b"early"))  # before the 101: a client in a hurry
        await writer.drain()
        await asyncio.sleep(0)
        accept.set()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await read_frame(reader) == (0x81, b"got early")
        writer.close()


# -------------------------------------------------------------------------- failures


async def _raise_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise ValueError("secret detail")


async def _return_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def _send_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.send", "text": "too soon"})


async def _invalid_status(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.http.response.start", "status": 700, "headers": []})


async def _unfinished_buffered_response(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.http.response.start", "status": 404, "headers": []})


@pytest.mark.parametrize(
    "script",
    [
        _raise_before_accept,
        _return_before_accept,
        _send_before_accept,
        _invalid_status,
        _unfinished_buffered_response,
    ],
)
async def test_an_app_that_fails_before_accepting_is_answered_500(script: ASGIApp) -> None:
    async with serving(Recorder(script)) as served:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(served.ws())
        assert refused.value.response.status_code == 500
        assert refused.value.response.body == b"Internal Server Error"


@pytest.mark.parametrize("how", ["raise", "return", "accept twice"])
async def test_an_app_that_ends_without_closing_drops_the_connection(how: str) -> None:
    # uvicorn closes TCP without a close frame (the client sees 1006), after
    # what the application sent.
    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last words"})
        if how == "raise":
            raise ValueError("boom")
        if how == "accept twice":
            await send({"type": "websocket.accept"})

    app = Recorder(script)
    async with serving(app) as served:
        async with websockets.connect(served.ws()) as client:
            assert await client.recv() == "last words"
            with pytest.raises(ConnectionClosed):
                await client.recv()
        assert client.close_code == 1006
    if how == "accept twice":
        assert isinstance(app.error, RuntimeError)
        assert "Expected ASGI message 'websocket.send' or 'websocket.close'" in str(app.error)


# -------------------------------------------------------------------------- closing


@AS_UVICORNS_OWN
async def test_the_clients_close_reaches_the_app_with_its_code_and_reason(ws: Any) -> None:
    app = Recorder(echo_script)
    async with serving(app, ws=ws) as served:
        async with websockets.connect(served.ws()) as client:
            await client.send("x")
            await client.recv()
            await client.close(1001, "bye")
        await app.finished()
    assert app.events[-1] == {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}


@AS_UVICORNS_OWN
async def test_messages_before_the_clients_close_still_reach_the_app(ws: Any) -> None:
    start = asyncio.Event()

    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await start.wait()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    app = Recorder(script)
    async with serving(app, ws=ws) as served:
        async with websockets.connect(served.ws()) as client:
            for i in range(3):
                await client.send(f"m{i}")
        start.set()
        await app.finished()
    assert app.events[1:] == [
        {"type": "websocket.receive", "text": "m0"},
        {"type": "websocket.receive", "text": "m1"},
        {"type": "websocket.receive", "text": "m2"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


@AS_UVICORNS_OWN
async def test_the_apps_close_is_its_own_disconnect_and_ends_sending(ws: Any) -> None:
    errors: list[BaseException] = []
    closing = asyncio.Event()

    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})
        # At once, while the client has not answered yet.
        assert await receive() == {"type": "websocket.disconnect", "code": 4000, "reason": "done"}
        try:
            await send({"type": "websocket.send", "text": "more"})
        except RuntimeError as exc:
            errors.append(exc)
        closing.set()

    async with serving(Recorder(script), ws=ws) as served:
        async with websockets.connect(served.ws()) as client:
            await client.send("close please")
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert client.close_code == 4000
            assert client.close_reason == "done"
        await asyncio.wait_for(closing.wait(), TIMEOUT)
    assert "after sending 'websocket.close'" in str(errors[0])


@AS_UVICORNS_OWN
async def test_a_lost_connection_is_1005_and_sending_then_raises_client_disconnected(
    ws: Any,
) -> None:
    raised: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        # No close frame, so no code received: 1005, as uvicorn's classes say.
        assert await receive() == {"type": "websocket.disconnect", "code": 1005}
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except OSError as exc:
            raised.set_result(exc)

    async with serving(Recorder(script), ws=ws) as served:
        async with raw_client(served.port) as (_, writer, _):
            writer.transport.abort()
        exc = await asyncio.wait_for(raised, TIMEOUT)
    assert isinstance(exc, ClientDisconnected)


@pytest.mark.parametrize(
    ("cls", "code", "event"),
    [
        (WebSocketProtocol, 1012, {"type": "websocket.disconnect", "code": 1012}),
        (
            WebSocketProtocol1001,
            1001,
            {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"},
        ),
        # uvicorn's own classes, for comparison: 1012 is theirs.
        ("websockets-sansio", 1012, {"type": "websocket.disconnect", "code": 1012}),
        ("wsproto", 1012, {"type": "websocket.disconnect", "code": 1012}),
    ],
    ids=["1012", "1001", "uvicorn-websockets-sansio", "uvicorn-wsproto"],
)
async def test_server_shutdown_closes_open_websockets(
    cls: type[WebSocketProtocol] | str, code: int, event: dict[str, Any]
) -> None:
    app = Recorder(echo_script)
    async with serving(app, ws=cls) as served:
        client = await websockets.connect(served.ws())
        await client.send("x")
        await client.recv()
    await app.finished()
    assert app.events[-1] == event
    with pytest.raises(ConnectionClosed):
        await client.recv()
    assert client.close_code == code


# -------------------------------------------------------------------------- bounds


async def test_ws_max_size_fails_a_larger_message_with_1009() -> None:
    app = Recorder(echo_script)
    async with serving(app, ws_max_size=1024) as served:
        async with websockets.connect(served.ws()) as client:
            await client.send(b"x" * 1024)
            assert await client.recv() == b"x" * 1024
            await client.send(b"x" * 1025)
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert client.close_code == 1009
        await app.finished()
    assert app.events[-1]["code"] == 1009


async def test_a_compressed_message_is_bounded_after_inflating() -> None:
    async with (
        serving(Recorder(echo_script), ws_max_size=MIB) as served,
        websockets.connect(served.ws(), compression="deflate") as client,
    ):
        await client.send(bytes(4 * MIB))  # a few KB on the wire
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.close_code == 1009


async def test_a_client_that_never_answers_pings_is_closed_with_1011() -> None:
    async with (
        serving(Recorder(echo_script), ws_ping_interval=0.05, ws_ping_timeout=0.05) as s,
        raw_client(s.port) as (reader, _, _),
    ):
        b0, _ = await read_frame(reader)
        assert b0 == 0x89  # a ping, left unanswered
        while b0 != 0x88:
            b0, payload = await read_frame(reader)
        assert struct.unpack("!H", payload[:2])[0] == 1011
        assert payload[2:] == b"keepalive ping timeout"


@pytest.mark.parametrize("interval", [0, None])
async def test_ping_interval_zero_or_none_turns_keepalive_off(interval: float | None) -> None:
    async with (
        serving(Recorder(echo_script), ws_ping_interval=interval) as served,
        websockets.connect(served.ws()) as client,
    ):
        await client.send("x")
        await client.recv()
        (conn,) = served.connections()
        assert conn.ping_interval is None
        assert conn.ping_timer is None
        assert conn.ping_sent_at == 0.0


async def test_keepalive_state_has_uvicorns_names() -> None:
    async with (
        serving(Recorder(echo_script), ws_ping_interval=0.02, ws_ping_timeout=TIMEOUT) as served,
        websockets.connect(served.ws(), ping_interval=None) as client,
    ):
        (conn,) = served.connections()
        assert conn.ping_timer is not None
        # The client answers pings as it reads: wait (bounded) for one answered ping.
        for _ in range(500):
            if conn.last_ping_rtt > 0:
                break
            await client.send("x")
            await client.recv()
        assert conn.last_ping_rtt > 0
        assert conn.ping_sent_at > 0
        assert conn.ping_sent_at <= asyncio.get_running_loop().time()


async def test_reading_pauses_while_the_app_does_not_receive() -> None:
    # ws_max_queue messages wait for the application; past them the server
    # stops reading, and TCP pushes back on the client: its writes stall.
    release = asyncio.Event()
    counted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def script(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        count = 0
        while (await receive())["type"] == "websocket.receive":
            count += 1
        counted.set_result(count)

    frame = client_frame(0x82, b"m" * 1000)
    batch = frame * 1000  # 1 MB
    async with serving(Recorder(script), ws_max_queue=4) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(UPGRADE.format(path="/", version="13").encode() + b"\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        sent = 0
        while sent < 64 * MIB:
            writer.write(batch)
            sent += len(batch)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                break  # the server stopped reading
        assert sent < 32 * MIB, f"the server read {sent} bytes nobody received"
        release.set()
        await writer.drain()
        writer.write(client_frame(0x88, struct.pack("!H", 1000)))
        count = await asyncio.wait_for(counted, TIMEOUT)
        writer.close()
    assert count == sent // len(frame)


# -------------------------------------------------------------------------- frameworks


async def test_a_starlette_app_with_its_denial_response() -> None:
    async def echo(websocket: WebSocket) -> None:
        if websocket.query_params.get("token") != "ok":
            await websocket.send_denial_response(PlainTextResponse("no token", status_code=401))
            return
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    app = Starlette(routes=[WebSocketRoute("/echo", echo)])
    async with serving(app) as served:
        async with websockets.connect(served.ws("/echo?token=ok")) as client:
            await client.send("hello")
            assert await client.recv() == "hello"
        async with wskit.connect(served.ws("/echo?token=ok")) as conn:
            await conn.send("héllo")
            assert await conn.recv() == "héllo"
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(served.ws("/echo"))
        assert refused.value.response.status_code == 401
        assert refused.value.response.body == b"no token"


async def test_a_fastapi_app() -> None:
    app = FastAPI()
    closed: list[int] = []

    @app.websocket("/items/{item}")
    async def items(websocket: FastAPIWebSocket, item: str) -> None:
        await websocket.accept(subprotocol="json")
        try:
            while True:
                data = await websocket.receive_json()
                await websocket.send_json({"item": item, "echo": data})
        except WebSocketDisconnect as exc:
            closed.append(exc.code)

    async with serving(app) as served:
        async with wskit.connect(served.ws("/items/42"), subprotocols=["json"]) as conn:
            assert conn.subprotocol == "json"
            await conn.send_json({"n": 1})
            assert await conn.recv_json() == {"item": "42", "echo": {"n": 1}}
            await conn.close(1000)
        async with websockets.connect(served.ws("/items/7"), subprotocols=["json"]) as client:
            await client.send('{"n": 2}')
            assert await client.recv() == '{"item":"7","echo":{"n":2}}'
    assert closed == [1000, 1000]


async def test_wskit_asgi_app_with_a_hub() -> None:
    async with serving(asgi_app(shouting_hub())) as served:
        await check_shouting(served.ws("/"))
