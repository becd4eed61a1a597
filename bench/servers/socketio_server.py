"""python-socketio with ``AsyncRedisManager``: B7's peer of the wskit hub on Redis.

One process of a Socket.IO cluster: ``socketio.AsyncServer`` on aiohttp
(python-engineio's ``aiohttp`` mode: the WebSocket is aiohttp's), its
``client_manager`` an ``AsyncRedisManager`` on ``--redis URL`` (one
channel, ``socketio``, which every process subscribes to). The clients speak
Socket.IO v5 over Engine.IO v4 with the WebSocket transport from the start
(``/socket.io/?EIO=4&transport=websocket``), so no sticky sessions are
needed. The events mirror the hub server's (``wskit_hub_server.py``):

- a client connects with ``?room=NAME`` to join that room (``all`` without
  it), or with ``?role=sender`` to join none;
- ``["count", ...]`` is answered with ``["count", N]``, N this process's clients;
- ``["bcast", count, size, rooms]`` emits ``["m", "x" * size]`` ``count``
  times to the rooms ``r0`` .. ``r<rooms - 1>`` in turn (to ``all`` without
  ``rooms``), then answers ``["ok", count]``.

``sio.emit`` awaits its ``PUBLISH`` (a Redis round trip), so one loop of
emits would wait on Redis between two of them: ``--emitters N`` (default 25)
coroutines share the emits, emit ``k`` going to emitter ``k % N``, as the
handlers of N clients emitting at once would (with N dividing the number of
rooms, each room's emits keep their order). On B7-1000x2, one emitter gave
about two thirds of the deliveries per node CPU-second of 8, and 8 to 32
about the same.

``--web uvicorn`` serves it as ``socketio.ASGIApp`` under uvicorn instead of
aiohttp: on B7 it drove about the same deliveries per node CPU-second in the
room of 2 000 and 7-26% fewer in the rooms of 2, so aiohttp is the default.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import parse_qs

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from ._common import MAX_SIZE, parse_args, ready, run, serve_uvicorn


def own_options() -> tuple[str, int, str]:
    """``--redis URL``, ``--emitters N`` and ``--web``, taken out before the common arguments."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--emitters", type=int, default=25)
    parser.add_argument("--web", choices=("aiohttp", "uvicorn"), default="aiohttp")
    ns, rest = parser.parse_known_args()
    sys.argv[1:] = rest
    return ns.redis, max(1, ns.emitters), ns.web


REDIS_URL, EMITTERS, WEB = own_options()
args = parse_args(__doc__ or "")
ROOM = "all"
sio = socketio.AsyncServer(
    async_mode="aiohttp" if WEB == "aiohttp" else "asgi",
    client_manager=socketio.AsyncRedisManager(REDIS_URL),
    transports=["websocket"],
    max_http_buffer_size=MAX_SIZE,
)
clients: set[str] = set()


async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    clients.add(sid)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("role") != ["sender"]:
        await sio.enter_room(sid, query.get("room", [ROOM])[0])


async def disconnect(sid: str, reason: Any = None) -> None:
    clients.discard(sid)


async def count(sid: str, *scope: Any) -> None:
    await sio.emit("count", len(clients), to=sid)


async def bcast(sid: str, count: int, size: int, rooms: int = 0) -> None:
    payload = "x" * size
    targets = [f"r{index}" for index in range(rooms)] if rooms else [ROOM]

    async def emitter(first: int) -> None:
        for index in range(first, count, EMITTERS):
            await sio.emit("m", payload, room=targets[index % len(targets)])

    await asyncio.gather(*(emitter(first) for first in range(min(EMITTERS, count))))
    await sio.emit("ok", count, to=sid)


sio.on("connect", connect)
sio.on("disconnect", disconnect)
sio.on("count", count)
sio.on("bcast", bcast)


async def main_uvicorn() -> None:
    import uvicorn

    config = uvicorn.Config(
        socketio.ASGIApp(sio),
        host="127.0.0.1",
        port=args.port,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )
    server = uvicorn.Server(config)
    await serve_uvicorn(server, args.port)


async def main() -> None:
    if WEB == "uvicorn":
        await main_uvicorn()
        return
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    ready(args.port)
    await asyncio.Event().wait()


run(main, args.loop)
