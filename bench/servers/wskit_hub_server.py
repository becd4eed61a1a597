"""wskit's event hub (``wskit.hub.Hub``, ws-wrapper JSON) for B1-hub and B3-hub.

Unlike the other servers this one speaks ws-wrapper events, ``{"a": [event,
...args]}`` as text messages, which the load generator sends with ``-hub``:

- ``["echo", ...args]``: a plain (sync) handler answers the sender with the
  same event, ``client.emit("echo", *args)``: the hub's fast path.
- ``["count"]``: answered with ``["count", <connected clients>]``.
- ``["bcast", count, size]``: ``hub.to("all").emit("m", "x" * size)``
  ``count`` times, yielding to the event loop between two emits (as emits
  arriving from elsewhere would), then ``["ok", count]`` to the sender.

Every connection joins the room ``"all"`` in the connect hook except the
sender, which connects with the query string ``?role=sender``.

B7 (rooms, against python-socketio, ``bench/scaleout.py``): a connection with
``?room=NAME`` joins that room instead; ``["bcast", count, size, rooms]``
emits to the rooms ``r0`` .. ``r<rooms - 1>`` in turn; ``["count", "local"]``
counts this process's clients only.

B6 runs several of these processes on one port (``--reuse-port``) sharing a
Redis backplane (``--redis URL``); ``count`` then counts the clients of
every process (``hub.cluster.clients()``). ``--recovery`` turns recovery on
(``Hub(recovery=True)``: room messages numbered in Redis streams).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import wskit
from wskit.hub import Client, Hub

from ._common import MAX_SIZE, parse_args, ready, run


def cluster_options() -> tuple[str | None, bool, bool]:
    """B6's ``--redis URL``, ``--reuse-port`` and ``--recovery``, taken out before the rest."""
    redis_url, reuse_port, recovery = None, False, False
    if "--redis" in sys.argv:
        index = sys.argv.index("--redis")
        redis_url = sys.argv[index + 1]
        del sys.argv[index : index + 2]
    if "--reuse-port" in sys.argv:
        sys.argv.remove("--reuse-port")
        reuse_port = True
    if "--recovery" in sys.argv:
        sys.argv.remove("--recovery")
        recovery = True
    return redis_url, reuse_port, recovery


REDIS_URL, REUSE_PORT, RECOVERY = cluster_options()
args = parse_args(__doc__ or "")
ROOM = "all"
hub = Hub(backplane=REDIS_URL, recovery=RECOVERY)


def connected(client: Client) -> None:
    assert client.conn.request is not None
    query = client.conn.request.query_params
    if query.get("role") != ["sender"]:
        client.join(query.get("room", [ROOM])[0])


def echo(client: Client, *values: Any) -> None:
    client.emit("echo", *values)


def count(client: Client, scope: str = "cluster") -> None:
    if REDIS_URL is None or scope == "local":
        client.emit("count", len(hub.clients))
        return

    async def cluster_count() -> None:
        client.emit("count", len(await hub.cluster.clients()))

    hub._spawn(cluster_count())


async def bcast(client: Client, count: int, size: int, rooms: int = 0) -> None:
    payload = "x" * size
    if rooms:
        targets = [hub.to(f"r{index}") for index in range(rooms)]
        for index in range(count):
            targets[index % rooms].emit("m", payload)
            await asyncio.sleep(0)
    else:
        room = hub.to(ROOM)
        for _ in range(count):
            room.emit("m", payload)
            await asyncio.sleep(0)
    client.emit("ok", count)


# Registered by call: Hub.on as a decorator is untyped, which mypy --strict refuses.
hub.on("connect", connected)
hub.on("echo", echo)
hub.on("count", count)
hub.on("bcast", bcast)


async def main() -> None:
    await hub.start()
    server = await wskit.serve(
        hub,
        "127.0.0.1",
        args.port,
        compression="deflate" if args.compression else None,
        max_size=MAX_SIZE,
        backlog=4096,
        reuse_port=REUSE_PORT or None,
    )
    ready(server.port)
    await server.serve_forever()


run(main, args.loop)
