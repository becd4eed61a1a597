"""The demo: a chat on a :class:`~wskit.hub.Hub` (``wskit demo``, ``make demo``).

One port serves the page (``static/``), the JavaScript client
(``/wskit.mjs``, from the hub) and the WebSocket endpoint (``/ws``), with
the ws-wrapper protocol. The wire API, all on the default channel:

Requests from a page:

* ``join(nickname, room)`` → ``{"room", "nickname", "history", "users"}``:
  enter a room (leaving the previous one); ``history`` is the room's last
  :data:`HISTORY` messages, ``users`` its nicknames.
* ``say(text)`` → ``true``: post to the current room.
* ``rooms()`` → ``[{"name", "users"}]``: the rooms that have people in them.

Events from a page: ``typing(active)``, relayed to the rest of the room.

Events to a page: ``chat({"nick", "text", "ts"})`` (not ``message``,
which the JavaScript client reserves), ``users(room, [nicknames])``,
``typing(nick, active)``, ``notice({"text", "ts"})`` (someone came or
went) and ``rooms([...])`` (to everyone, when the rooms change).

Bad input (an empty or long nickname, a long message, saying something
before joining) rejects the request with a readable message. A page that
reconnects simply sends ``join`` again.
"""

from __future__ import annotations

import time
import unicodedata
from collections import OrderedDict, deque
from importlib import resources
from typing import Any

from ..asyncio.server import Server, ServerConn
from ..hub.errors import ClientError
from ..hub.hub import Client, Hub
from ..protocol.handshake import reject
from ..protocol.http11 import Request, Response

__all__ = ["ChatApp", "serve_demo", "HISTORY"]

HISTORY = 50
"""Messages a room keeps, shown to whoever joins it."""

MAX_ROOMS_KEPT = 200
"""Rooms whose history is kept; past it, the history of the quietest empty room goes."""

MAX_NICKNAME = 24
MAX_ROOM = 32
MAX_TEXT = 1000

WS_PATH = "/ws"

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/chat.css": ("chat.css", "text/css; charset=utf-8"),
    "/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _clean(value: str, what: str, limit: int) -> str:
    """Strip ``value`` and check it is 1 to ``limit`` printable characters."""
    value = " ".join(value.split())
    if not value:
        raise ClientError(f"the {what} is empty")
    if len(value) > limit:
        raise ClientError(f"the {what} is longer than {limit} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ClientError(f"the {what} has control characters")
    return value


class ChatApp:
    """The chat: a hub, its handlers and each room's recent messages."""

    def __init__(self, history: int = HISTORY) -> None:
        self.hub = Hub()
        self.history_size = history
        #: The last messages of each room, least recently active room first.
        self.history: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        hub = self.hub
        hub.on("join", self.join)
        hub.on("say", self.say)
        hub.on("typing", self.typing)
        hub.on("rooms", self.rooms)
        hub.on("disconnect", self.disconnected)

    # -- state ------------------------------------------------------------------

    @staticmethod
    def room_of(client: Client) -> str | None:
        room: str | None = client.get("room")
        return room

    def users(self, room: str) -> list[str]:
        """The nicknames in ``room``, sorted."""
        return sorted((c.get("nick") for c in self.hub.clients_in(room)), key=str.casefold)

    def room_list(self) -> list[dict[str, Any]]:
        rooms = [{"name": name, "users": self.hub.count(name)} for name in self.hub.room_names()]
        return sorted(rooms, key=lambda r: (-r["users"], r["name"]))

    def _history_of(self, room: str) -> deque[dict[str, Any]]:
        messages = self.history.get(room)
        if messages is None:
            messages = self.history[room] = deque(maxlen=self.history_size)
            self._forget_quiet_rooms()
        self.history.move_to_end(room)
        return messages

    def _forget_quiet_rooms(self) -> None:
        for name in list(self.history):
            if len(self.history) <= MAX_ROOMS_KEPT:
                return
            if not self.hub.count(name):
                del self.history[name]

    # -- joining and leaving -------------------------------------------------------

    def _leave(self, client: Client, room: str) -> None:
        nick = client.get("nick")
        client.leave(room)
        client.set("room", None)
        self.hub.to(room).emit("typing", nick, False)
        self.hub.to(room).emit("users", room, self.users(room))
        self.hub.to(room).emit("notice", {"text": f"{nick} left", "ts": _now_ms()})

    def join(self, client: Client, nickname: str, room: str) -> dict[str, Any]:
        """Enter ``room`` as ``nickname``; answer with its history and users."""
        nickname = _clean(nickname, "nickname", MAX_NICKNAME)
        room = _clean(room, "room name", MAX_ROOM).lower()
        current = self.room_of(client)
        if current is not None:
            self._leave(client, current)
        client.set("nick", nickname)
        client.set("room", room)
        self.hub.to(room).emit("notice", {"text": f"{nickname} joined", "ts": _now_ms()})
        client.join(room)
        users = self.users(room)
        self.hub.to(room).emit("users", room, users)
        self.hub.emit("rooms", self.room_list())
        return {
            "room": room,
            "nickname": nickname,
            "history": list(self._history_of(room)),
            "users": users,
        }

    def disconnected(self, client: Client, code: int, reason: str) -> None:
        # The hub has taken the client out of its rooms already.
        room = self.room_of(client)
        if room is not None:
            client.set("room", None)
            nick = client.get("nick")
            self.hub.to(room).emit("typing", nick, False)
            self.hub.to(room).emit("users", room, self.users(room))
            self.hub.to(room).emit("notice", {"text": f"{nick} left", "ts": _now_ms()})
            self.hub.emit("rooms", self.room_list())

    # -- talking ---------------------------------------------------------------------

    def say(self, client: Client, text: str) -> bool:
        """Post ``text`` to the client's room."""
        room = self.room_of(client)
        if room is None:
            raise ClientError("join a room first")
        text = text.strip()
        if not text:
            raise ClientError("the message is empty")
        if len(text) > MAX_TEXT:
            raise ClientError(f"the message is longer than {MAX_TEXT} characters")
        message = {"nick": client.get("nick"), "text": text, "ts": _now_ms()}
        self._history_of(room).append(message)
        self.hub.to(room).emit("chat", message)
        return True

    def typing(self, client: Client, active: bool) -> None:
        """Tell the others in the room that this client is (not) typing."""
        room = self.room_of(client)
        if room is not None:
            client.to(room).emit("typing", client.get("nick"), active)

    def rooms(self) -> list[dict[str, Any]]:
        """The rooms with people in them, busiest first."""
        return self.room_list()

    # -- HTTP --------------------------------------------------------------------------

    def process_request(self, conn: ServerConn, request: Request) -> Response | None:
        """Serve the page and the JavaScript client; let upgrades on ``/ws`` through."""
        if "Upgrade" in request.headers:
            return None
        found = STATIC_FILES.get(request.path.partition("?")[0])
        if found is None:
            return self.hub.process_request(conn, request) or reject(404, "Not found")
        name, content_type = found
        body = resources.files("wskit.demo").joinpath("static", name).read_bytes()
        headers = [("Content-Type", content_type), ("Cache-Control", "no-cache")]
        return reject(200, body, headers)

    async def serve(self, host: str | None, port: int | None, **options: Any) -> Server:
        """Start a server for the chat; ``options`` are those of :func:`wskit.serve`."""
        options.setdefault("path", WS_PATH)
        options.setdefault("process_request", self.process_request)
        return await self.hub.serve(host, port, **options)


async def serve_demo(host: str | None, port: int | None, **options: Any) -> Server:
    """Start the chat demo; ``options`` are those of :func:`wskit.serve`."""
    return await ChatApp().serve(host, port, **options)
