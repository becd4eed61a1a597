"""A hub in many processes on Redis: a room message reaches its members in every one.

It needs a Redis server and redis-py (``pip install 'wskit[redis]'``); the
URL comes from ``REDIS_URL``. Run it from this folder, as N processes on one
port (the ``--workers`` supervisor) or as servers on ports, or machines, of
their own::

    cd examples/cluster
    export REDIS_URL=redis://127.0.0.1:6379/0
    wskit serve cluster:hub --port 8000 --workers 4
    # or
    wskit serve cluster:hub --port 8001 &
    wskit serve cluster:hub --port 8002 &

What a client can do (ws-wrapper, e.g. ``wskit.hub.HubClient``):

* join and leave rooms itself (``client_rooms``): ``await client.join("lobby")``;
* emit ``say(room, text)``: everyone in ``room``, in whichever process,
  receives ``said(name, text)``;
* request ``hello(name)``: name itself; the answer is ``{"id", "node"}``,
  its client id and the id of the process (the hub's node) that serves it;
* request ``who(room)``: the clients in ``room`` across every process, as
  ``{"id", "node"}``.
"""

from __future__ import annotations

import os

from wskit.hub import Client, ClientError, Hub

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Every process makes its own hub; Redis carries what each one emits to the
# others. A process subscribes only to the rooms its own clients are in.
hub = Hub(backplane=REDIS_URL, client_rooms=True)


def name_of(client: Client) -> str:
    return str(client.get("name") or client.id)


@hub.on("hello")
def hello(client: Client, name: str) -> dict[str, str]:
    name = name.strip()
    if not 0 < len(name) <= 24:
        raise ClientError("a name is 1 to 24 characters")
    client.set("name", name)
    return {"id": client.id, "node": hub.node_id}


@hub.on("say")
def say(client: Client, room: str, text: str) -> None:
    if not client.is_joined(room):
        raise ClientError(f"join {room!r} first")
    # Encoded once here, published once to Redis, and written by every
    # process to its own members of the room.
    hub.to(room).emit("said", name_of(client), text[:1000])


@hub.on("who")
async def who(room: str) -> list[dict[str, str]]:
    # Asks every process (socket.io's fetchSockets); they answer within 2 s.
    members = await hub.cluster.clients(room)
    return [{"id": member.id, "node": member.node} for member in members]
