"""The applications ``tests/uvicorn/test_served.py`` runs with the ``uvicorn`` command.

``uvicorn served_apps:fastapi_app --app-dir tests/uvicorn --ws wskit.uvicorn:WebSocketProtocol``:
a FastAPI app (a page for the browser, an echo, a route that closes with a
code of its own) and a Starlette app (an echo, and wskit's hub through
``asgi_app``). The FastAPI echo and the hub are those of ``tests/apps/asgi_apps.py``.
"""

from __future__ import annotations

from asgi_apps import echo_any, shouting_hub
from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from wskit.asgi import asgi_app

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wskit under uvicorn</title></head>
<body><p>wskit under uvicorn</p></body></html>
"""

fastapi_app = FastAPI()


@fastapi_app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


fastapi_app.add_api_websocket_route("/echo", echo_any)


@fastapi_app.websocket("/goodbye")
async def goodbye(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    await websocket.close(4002, "goodbye")


async def starlette_echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    async for message in websocket.iter_text():
        await websocket.send_text(message)


hub = shouting_hub()
hub_endpoint = asgi_app(hub)

starlette_app = Starlette(
    routes=[WebSocketRoute("/echo", starlette_echo), *hub_endpoint.routes("/hub")],
    lifespan=hub_endpoint.lifespan,
)
