"""A FastAPI application with an HTTP route, a wskit echo endpoint and a wskit hub.

Run it from this folder under uvicorn (``pip install fastapi uvicorn``)::

    cd examples
    uvicorn fastapi_app:app --port 8000

or as a program, which closes the WebSocket connections with 1001 ("going
away") on Ctrl-C where the ``uvicorn`` command closes them with 1012::

    python fastapi_app.py --port 8000

Then:

* ``curl http://127.0.0.1:8000/health``: a plain FastAPI route;
* ``wskit connect ws://127.0.0.1:8000/echo``: every message comes back;
* ``ws://127.0.0.1:8000/hub``: the hub (``wskit.hub.HubClient``, or the
  JavaScript client it serves at ``/hub/wskit.js``), with the request
  ``add(a, b)`` and rooms: a client joins one, and ``shout(room, text)``
  sends ``shouted(text)`` to everyone in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, WebSocket

import wskit
from wskit.asgi import asgi_app, install_uvicorn_shutdown
from wskit.hub import Client, Hub

hub = Hub(client_rooms=True)  # client_rooms: clients may join rooms themselves


@hub.on("add")
def add(a: int, b: int) -> int:
    # The arguments are converted by the type hints; "1" is an error answer.
    return a + b


@hub.on("shout")
def shout(client: Client, room: str, text: str) -> None:
    if client.is_joined(room):
        hub.to(room).emit("shouted", text.upper())


async def echo(conn: wskit.ConnectionAPI) -> None:
    async for message in conn:
        await conn.send(message)


hub_endpoint = asgi_app(hub)
echo_endpoint = asgi_app(echo, max_size=64 * 1024)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Each endpoint starts (the hub its backplane) and, at the end, closes its
    # connections with 1001.
    async with hub_endpoint.lifespan(app), echo_endpoint.lifespan(app):
        yield


app = FastAPI(lifespan=lifespan)
# The hub's routes: the WebSocket at /hub, /hub/wskit.js and /hub/wskit.mjs.
app.router.routes.extend(hub_endpoint.routes("/hub"))


@app.get("/health")
async def health() -> dict[str, object]:
    return {"status": "ok", "hub clients": hub.count()}


@app.websocket("/echo")
async def echo_route(websocket: WebSocket) -> None:
    # A route of its own, so that FastAPI dependencies could run first.
    await echo_endpoint.run(websocket)


async def main(host: str, port: int) -> None:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port))
    install_uvicorn_shutdown(server)  # 1001 for wskit's connections, before uvicorn's 1012
    await server.serve()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="FastAPI with wskit endpoints.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
