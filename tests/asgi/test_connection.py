"""wskit.asgi.connection: AsgiConn under a real uvicorn, and its ASGI state machine.

The state-machine tests drive the ASGI interface directly (through
:class:`~asgi.support.FakeServer`), since no real server sends messages out
of order.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed as WebsocketsClosed

import wskit
from asgi.support import (
    TIMEOUT,
    WS_IMPLS,
    FakeServer,
    WsWrapper,
    make_hub,
    starlette_app,
    uvicorn_serving,
)
from wskit import ConnectionClosedError
from wskit.asgi.connection import AsgiConn, ConnState
from wskit.asgi.endpoint import asgi_app
from wskit.asgi.spec import ASGIProtocolError
from wskit.protocol.handshake import reject

# --------------------------------------------------------------------------- closing and limits


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


async def test_reader_stops_while_replies_wait_unsent() -> None:
    # A handler that answers with send_nowait() (it never waits) to a peer
    # that reads nothing: the reader stops pulling messages from the server
    # once more than write_limit bytes wait, instead of queueing replies forever.
    fake = FakeServer()
    blocked = asyncio.Event()

    async def stuck_send(message: Any) -> None:
        if message["type"] == "websocket.send":
            await blocked.wait()
        await fake.outbox.put(dict(message))

    conn = AsgiConn(fake.scope, fake.receive, stuck_send, write_limit=4000, max_queue=4)
    await fake.inbox.put({"type": "websocket.connect"})
    await conn.accept()
    assert (await fake.sent())["type"] == "websocket.accept"

    async def reply_to_all() -> None:
        async for message in conn:
            conn.send_nowait(message)

    replier = asyncio.create_task(reply_to_all())
    count = 50
    for i in range(count):
        await fake.inbox.put({"type": "websocket.receive", "text": f"{i:03d}" + "x" * 997})
    async with asyncio.timeout(TIMEOUT):
        while not (conn._reading_paused and not conn._queue):
            await asyncio.sleep(0.01)
    left = fake.inbox.qsize()
    await asyncio.sleep(0.05)
    assert fake.inbox.qsize() == left > count // 2  # the reader stopped pulling
    # At most the limit plus the replies to what the queue held when it was reached.
    assert conn.write_buffer_size <= 4000 + 4 * 1000
    blocked.set()
    replies = [(await fake.sent())["text"][:3] for _ in range(count)]
    assert replies == [f"{i:03d}" for i in range(count)]
    assert fake.inbox.qsize() == 0
    await fake.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(replier, TIMEOUT)
    await conn.finish()


async def test_reader_stops_when_the_queue_holds_max_size() -> None:
    # Few messages, but large: the queue is bounded in size (max_size) as well
    # as in messages, so the reader stops pulling after two of 600 KB.
    fake = FakeServer()
    conn = AsgiConn(fake.scope, fake.receive, fake.send, max_size=2**20, max_queue=16)
    await fake.inbox.put({"type": "websocket.connect"})
    await conn.accept()
    assert (await fake.sent())["type"] == "websocket.accept"
    count = 10
    for i in range(count):
        await fake.inbox.put({"type": "websocket.receive", "bytes": bytes([i]) * 600_000})
    async with asyncio.timeout(TIMEOUT):
        while not conn._reading_paused:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(conn._queue) == 2 and fake.inbox.qsize() == count - 2
    for i in range(count):
        assert await conn.recv() == bytes([i]) * 600_000
    assert conn._queue_size == 0
    await fake.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await conn.finish()


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
