"""The application ``tests/metrics/test_uvicorn.py`` runs with the ``uvicorn`` command.

``uvicorn metered_apps:app --app-dir tests/metrics --ws
wskit.metrics.uvicorn:MeteredWebSocketProtocol``: a FastAPI app that
counts its WebSockets (``watch_uvicorn`` in its lifespan) and answers
``/metrics`` itself, behind a token: an echo, a route that fails after
accepting, one that refuses, and wskit's ``asgi_app``. The echo is that of
``tests/apps/asgi_apps.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_apps import echo_any
from fastapi import FastAPI, WebSocket
from starlette.routing import WebSocketRoute

import wskit
from wskit.asgi import asgi_app
from wskit.metrics import Metrics, metrics_route, token_auth
from wskit.metrics.uvicorn import watch_uvicorn

TOKEN = "s3cret"
metrics = Metrics()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    watch_uvicorn(metrics)
    yield


app = FastAPI(lifespan=lifespan)
app.routes.append(metrics_route(metrics, auth=token_auth(TOKEN)))


app.add_api_websocket_route("/echo", echo_any)


@app.websocket("/fail")
async def fail(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise RuntimeError("boom")


@app.websocket("/deny")
async def deny(websocket: WebSocket) -> None:
    await websocket.close()


async def wskit_echo(conn: wskit.ConnectionAPI) -> None:
    async for message in conn:
        await conn.send(message)


app.router.routes.append(WebSocketRoute("/wskit", asgi_app(wskit_echo)))
