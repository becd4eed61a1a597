"""A chat on the wskit event hub: rooms, nicknames, the last messages of each room.

Run it from this folder, with the ``wskit`` command or as a program::

    cd examples/chat
    wskit serve chat:hub --port 8000
    python chat.py --port 8000

then open http://127.0.0.1:8000/ in two browser windows. The hub serves the
page (``index.html``, next to this file) at ``/``, its JavaScript client at
``/wskit.js``, and the WebSocket endpoint on every other path.

What a page can do, in the ws-wrapper protocol that ``wskit.js`` speaks:

* request ``join(nickname, room)``: enter ``room`` (leaving the one it was
  in); the answer is ``{"room", "nickname", "history", "users"}``, where
  ``history`` holds the room's last :data:`HISTORY` messages;
* request ``say(text)``: post to the room; everyone in it, the sender
  included, gets the event ``chat({"nick", "text"})``;
* it also receives ``notice(text)`` when someone comes or goes, and
  ``users(list)`` with the nicknames of its room.

Everything is kept in memory: a room's history goes when its last member
leaves, so what the server holds is bounded by who is connected.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import deque
from pathlib import Path

from wskit import Request, Response, ServerConn
from wskit.hub import Client, ClientError, Hub
from wskit.protocol.handshake import reject

HISTORY = 20
"""How many messages a room keeps for whoever joins it."""

MAX_NICKNAME = 24
MAX_ROOM = 32
MAX_TEXT = 500

PAGE = (Path(__file__).parent / "index.html").read_bytes()


class ChatHub(Hub):
    """A hub that also serves the chat page at ``/``."""

    def process_request(self, conn: ServerConn, request: Request) -> Response | None:
        # A plain GET of "/" gets the page; anything else goes on to the hub
        # (which serves /wskit.js, then lets WebSocket handshakes through).
        if "Upgrade" not in request.headers and request.path in ("/", "/index.html"):
            return reject(200, PAGE, [("Content-Type", "text/html; charset=utf-8")])
        return super().process_request(conn, request)


hub = ChatHub()

#: The last messages of each room that has people in it.
history: dict[str, deque[dict[str, str]]] = {}


def clean(value: str, what: str, limit: int) -> str:
    """``value`` with its spaces tidied; a :class:`ClientError` if empty or too long."""
    value = " ".join(value.split())
    if not value or len(value) > limit:
        # ClientError's text reaches the client; any other exception would
        # answer "Internal server error" and log a traceback.
        raise ClientError(f"the {what} must be 1 to {limit} characters")
    return value


def nicknames(room: str) -> list[str]:
    return sorted(str(c.get("nick")) for c in hub.clients_in(room))


def leave(client: Client) -> None:
    """Take ``client`` out of its room, if it is in one, and tell the others."""
    room: str | None = client.get("room")
    if room is None:
        return
    client.set("room", None)
    client.leave(room)  # does nothing if the hub already took it out (disconnect)
    if hub.count(room) == 0:
        history.pop(room, None)
        return
    hub.to(room).emit("notice", f"{client.get('nick')} left")
    hub.to(room).emit("users", nicknames(room))


@hub.on("join")
def join(client: Client, nickname: str, room: str) -> dict[str, object]:
    nickname = clean(nickname, "nickname", MAX_NICKNAME)
    room = clean(room, "room name", MAX_ROOM).lower()
    leave(client)
    client.set("nick", nickname)
    client.set("room", room)
    hub.to(room).emit("notice", f"{nickname} joined")
    client.join(room)
    hub.to(room).emit("users", nicknames(room))
    messages = history.setdefault(room, deque(maxlen=HISTORY))
    return {
        "room": room,
        "nickname": nickname,
        "history": list(messages),
        "users": nicknames(room),
    }


@hub.on("say")
def say(client: Client, text: str) -> bool:
    room: str | None = client.get("room")
    if room is None:
        raise ClientError("join a room first")
    message = {"nick": str(client.get("nick")), "text": clean(text, "message", MAX_TEXT)}
    history[room].append(message)
    hub.to(room).emit("chat", message)
    return True


@hub.on("disconnect")
def disconnected(client: Client, code: int, reason: str) -> None:
    leave(client)


async def main(host: str, port: int) -> None:
    server = await hub.serve(host, port)
    print(f"chat on http://{host}:{server.port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()  # every client is told 1001 "going away"
    await server.wait_closed()
    await hub.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A chat on the wskit event hub.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
