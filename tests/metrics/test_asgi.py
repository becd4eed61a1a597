"""wskit.metrics.asgi: an asgi_app endpoint counted under a real uvicorn (its own WebSocket
layer, in this process), the websockets client as the peer, and metrics_app scraped over
HTTP and parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from websockets.exceptions import InvalidStatus

import wskit
from asgi.support import uvicorn_serving
from metrics.test_endpoint import get
from wskit.asgi import AsgiConn, asgi_app
from wskit.metrics import (
    MeteredAsgiConn,
    Metrics,
    MetricsApp,
    metrics_app,
    metrics_route,
    token_auth,
)

TIMEOUT = 10


async def echo(conn: wskit.ConnectionAPI) -> None:
    async for message in conn:
        await conn.send(message)


async def fail(conn: wskit.ConnectionAPI) -> None:
    await conn.recv()
    raise RuntimeError("boom")


def refuse_private(conn: Any, request: wskit.Request) -> bool:
    return request.path != "/private"


async def wait_until_closed(metrics: Metrics, count: int) -> None:
    """The server side learns of a close a moment after the client: wait (bounded) for it."""
    for _ in range(500):
        if sum(metrics.close_codes.values()) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} closes expected, {metrics.close_codes} seen")


def test_off_by_default_and_watching_swaps_the_connection_class() -> None:
    endpoint = asgi_app(echo)
    assert endpoint.conn_class is AsgiConn
    metrics = Metrics()
    metrics.watch(endpoint)
    assert issubclass(endpoint.conn_class, MeteredAsgiConn)
    assert endpoint.conn_class.metrics is metrics
    with pytest.raises(RuntimeError, match="already"):
        metrics.watch(endpoint)
    other = asgi_app(echo)
    metrics.watch(other)  # several routes of one application
    assert metrics.endpoints == [endpoint, other]
    metrics.unwatch()
    assert endpoint.conn_class is AsgiConn and other.conn_class is AsgiConn
    assert metrics.endpoints == []


async def test_connections_messages_bytes_and_close_codes() -> None:
    endpoint = asgi_app(echo)
    metrics = Metrics()
    metrics.watch(endpoint)
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    async with uvicorn_serving(app) as served:
        async with websockets.connect(served.ws("/ws")) as client:
            for message in ("hello", "héllo", b"\x00\x01\x02"):
                await client.send(message)
                assert await client.recv() == message
            now = metrics.snapshot()
            assert now.connections_open == 1
            assert now.connections_total == 1
            assert now.handshakes == {101: 1}
            assert now.messages_received == now.messages_sent == 3
            # The payloads, text as UTF-8: ASGI hands over messages, not frames.
            assert now.bytes_received == now.bytes_sent == 5 + 6 + 3
        await wait_until_closed(metrics, 1)
        later = metrics.snapshot()
        assert later.connections_open == 0
        assert later.close_codes == {1000: 1}
        assert later.messages_received == 3  # the closed connection's counts stay


async def test_refusals_by_status_handler_errors_and_the_limits() -> None:
    checked = asgi_app(echo, authorize=refuse_private, max_connections=1)
    failing = asgi_app(fail)
    metrics = Metrics()
    metrics.watch(checked)
    metrics.watch(failing)
    app = Starlette(
        routes=[
            WebSocketRoute("/private", checked),
            WebSocketRoute("/open", checked),
            WebSocketRoute("/fail", failing),
        ]
    )
    async with uvicorn_serving(app) as served:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(served.ws("/private"))
        assert refused.value.response.status_code == 401
        async with websockets.connect(served.ws("/open")):
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(served.ws("/open"))
            assert refused.value.response.status_code == 503
        async with websockets.connect(served.ws("/fail")) as client:
            await client.send("go")
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(client.recv(), TIMEOUT)
            assert client.close_code == 1011
        await wait_until_closed(metrics, 2)
        snapshot = metrics.snapshot()
        assert snapshot.handshakes == {401: 1, 101: 2, 503: 1}
        assert snapshot.limit_refusals["max_connections"] == 1
        assert snapshot.handler_errors == 1
        assert snapshot.close_codes == {1000: 1, 1011: 1}


async def test_metrics_app_as_a_route_and_as_a_mount_behind_its_auth_hook() -> None:
    endpoint = asgi_app(echo)
    metrics = Metrics()
    metrics.watch(endpoint)
    guarded = metrics_app(metrics, rooms=lambda: {"lobby": 2}, auth=token_auth("s3cret"))
    assert isinstance(guarded, MetricsApp)
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint), Mount("/internal", guarded)])
    app.routes.append(metrics_route(metrics))
    async with uvicorn_serving(app) as served:
        async with websockets.connect(served.ws("/ws")) as client:
            await client.send("hello")
            assert await client.recv() == "hello"
            status, headers, body = await get(served.http("/metrics"))
        assert status == 200
        assert headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["wskit_connections_open"].samples[0].value == 1
        assert families["wskit_messages_received"].samples[0].value == 1
        handshakes = {s.labels["status"]: s.value for s in families["wskit_handshakes"].samples}
        assert handshakes == {"101": 1}
        # The mounted one wants its token; its root is the exposition, and the JSON is there too.
        assert (await get(served.http("/internal/")))[0] == 403
        status, _, body = await get(served.http("/internal/?token=s3cret"))
        assert status == 200 and b"wskit_connections_total 1.0" in body
        status, _, body = await get(
            served.http("/internal/metrics.json"), Authorization="Bearer s3cret"
        )
        assert status == 200 and json.loads(body)["messages_sent"] == 1
        status, _, body = await get(served.http("/internal/rooms.json?token=s3cret"))
        assert json.loads(body) == {"lobby": 2}
        # Without rooms given, no room names.
        assert (await get(served.http("/metrics/rooms.json")))[0] == 404


async def test_metrics_app_answers_get_and_head_only_and_acknowledges_lifespan() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def nothing() -> Any:
        raise AssertionError("an HTTP GET has no body to read")

    app = metrics_app(Metrics())
    scope = {
        "type": "http",
        "method": "HEAD",
        "path": "/metrics",
        "headers": [],
        "query_string": b"",
    }
    await app(scope, nothing, send)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b""
    sent.clear()
    await app({**scope, "method": "POST"}, nothing, send)
    assert sent[0]["status"] == 405
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(events)

    sent.clear()
    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
