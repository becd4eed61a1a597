"""Recovery of missed room messages: sessions, positions, replay.

Theory of operation
===================

With ``Hub(recovery=True)`` every room message has a position
``(epoch, offset)`` in its room's stream (see
:data:`~wskit.hub.backplane.Position`), assigned by the backplane: a ring
buffer per room in memory, a Redis stream across nodes. The hub writes it
into the message as two extra keys, ``"r"`` (the room) and ``"o"``
(``"epoch:offset"``), spliced into the JSON that was encoded once for every
member, so the npm ``ws-wrapper`` client, which ignores unknown keys, still
reads it.

A client that wants recovery (``wskit.js`` always does) adds ``wskit`` to
the query string of its WebSocket URL: ``wskit=1`` the first time, then
``wskit={"s": session, "p": {room: "epoch:offset", ...}}`` (JSON, URL
encoded) when it reconnects. On the ``_wskit`` channel the hub then sends:

* first, ``["welcome", {"session", "recovered", "reason"}]``: the session
  id to present next time; ``recovered`` is false with ``reason``
  ``"expired"`` when the presented session is unknown or its window
  (default 2 minutes after the disconnection) has passed, and with
  ``reason`` null on a first connection;
* for every room the client joins (by itself, or because the server joined
  it, for instance in a ``connect`` hook): ``["joined", room, position,
  result, reason]``. ``position`` is where the client stands in the room's
  stream: every message after it reaches the client, none before. When the
  client presented a position for that room, the missed messages were
  written just before this notice (``result`` true), or they could not be
  (``result`` false, ``reason`` ``"history"``, ``"epoch"``,
  ``"expired"`` or ``"unavailable"``); ``result`` is null when nothing was
  asked. A client that had received nothing in a room still knows its
  position from this notice, so it recovers too;
* ``["position", room, position]`` when a message this node had delivered
  during a broker outage (without a position) got one later.

The hub also answers the request ``hello`` on ``_wskit`` with the welcome's
content (a client waits for that answer before it rejoins its rooms).

Replay without gap or duplicate: a joining client that asks for recovery is
a member of the room at once, but the room messages delivered to it are kept
aside (with their positions) until its replay is written. Then those with an
offset the replay already covered are dropped and the rest are written, in
order. The history is read only once the node knows its own position in the
room's stream, so the replay reaches at least as far as the first message
kept aside.

The :class:`SessionManager` keeps what recovery knows of each client (the
welcome it was sent, the positions it presented) and of each join being
recovered (its task, and the room messages held back meanwhile). It works on
the hub's room table (:class:`~wskit.hub.rooms.LocalRooms`), never on the
hub itself, and reads the clients through :class:`~wskit.hub.rooms.Member`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic

from ..limits import client_caused
from ..protocol.connection import PreparedMessage
from .backplane import HistoryError, Position
from .registry import Spawn
from .rooms import LocalRooms, M
from .wire import HUB_CHANNEL, SESSION_QUERY_KEY, WireProtocol

__all__ = ["Recovery", "splice", "format_position", "parse_position", "SessionManager"]

logger = logging.getLogger("wskit.hub")


@dataclass(frozen=True)
class Recovery:
    """Recovery settings: ``Hub(recovery=Recovery(window=30))``; ``recovery=True`` uses these.

    Args:
        window: seconds after a disconnection during which its session can
            be resumed (2 minutes by default).
        history: room messages kept per room.
        history_ttl: seconds an idle room's history is kept (at least the window).
        timeout: seconds a recovery may wait for the broker.
    """

    window: float = 120.0
    history: int = 1000
    history_ttl: float = 300.0
    timeout: float = 5.0


def format_position(position: Position) -> str:
    """``"epoch:offset"``."""
    return f"{position[0]}:{position[1]}"


def parse_position(text: Any) -> Position | None:
    """``"epoch:offset"`` as a :data:`Position`; ``None`` when it is not one."""
    if not isinstance(text, str):
        return None
    epoch, sep, offset = text.rpartition(":")
    if not sep or not offset.isdigit() or len(text) > 200:
        return None
    return epoch, int(offset)


def splice(message: str, room: str, position: Position) -> str:
    """Add ``"r": room`` and ``"o": "epoch:offset"`` to a JSON object's text.

    Anything that is not a JSON object is returned as it is.
    """
    if not message.startswith("{"):
        return message
    head = f'{{"r":{json.dumps(room, ensure_ascii=False)},"o":"{format_position(position)}"'
    rest = message[1:].lstrip()
    if rest.startswith("}"):
        return head + rest
    return f"{head},{rest}"


@dataclass(slots=True)
class _Session:
    """What recovery knows of one client that has a session."""

    #: The ``welcome`` notice it was sent (and the answer to ``hello``).
    welcome: dict[str, Any]
    #: The positions it presented, by room, until it joins that room.
    asked: dict[str, Position]


@dataclass(slots=True)
class _Join:
    """A join being recovered: its task, and the room messages held back meanwhile."""

    task: asyncio.Future[Any]
    held: list[tuple[Position, PreparedMessage]] = field(default_factory=list)


class SessionManager(Generic[M]):
    """The hub's side of recovery (one per hub with ``recovery`` on).

    Args:
        rooms: the hub's room table, whose members it writes to.
        protocol: encodes the notices of the ``_wskit`` channel.
        settings: the recovery settings.
        spawn: runs the saving of sessions and the replays.
    """

    def __init__(
        self, rooms: LocalRooms[M], protocol: WireProtocol, settings: Recovery, spawn: Spawn
    ) -> None:
        self.rooms = rooms
        self.protocol = protocol
        self.settings = settings
        self._spawn = spawn
        self._sessions: dict[M, _Session] = {}
        # The joins being recovered, by room, then by client (what delivery
        # looks up for every room message; empty rooms are removed).
        self._joining: dict[str, dict[M, _Join]] = {}

    # -- sessions ------------------------------------------------------------------

    async def open(self, client: M) -> None:
        """Read the client's ``wskit`` query parameter; resume or start its session."""
        values = client.request_info.query_params.get(SESSION_QUERY_KEY)
        if not values:
            return
        asked: Any = None
        try:
            asked = json.loads(values[0])
        except (ValueError, RecursionError):
            # Not JSON, or nested past the decoder's stack: a new session, like any bad value.
            pass
        session: str | None = None
        recovered, reason = False, None
        positions: dict[str, Position] = {}
        if isinstance(asked, dict) and isinstance(asked.get("s"), str):
            try:
                kept = await asyncio.wait_for(
                    self.rooms.backplane.load_session(asked["s"]), self.settings.timeout
                )
            except Exception as exc:
                # The id is the client's: cut short, and the record rate-limited.
                client_caused.log(
                    logger,
                    logging.WARNING,
                    ("session-load",),
                    "cannot load session %.40r: %s",
                    asked["s"],
                    exc,
                )
                kept, reason = None, "unavailable"
            if kept is not None:
                session, recovered = asked["s"], True
                presented = asked.get("p")
                if isinstance(presented, dict):
                    for room, text in presented.items():
                        position = parse_position(text)
                        if isinstance(room, str) and position is not None:
                            positions[room] = position
            elif reason is None:
                reason = "expired"
        client.session = session or uuid.uuid4().hex
        welcome = {"session": client.session, "recovered": recovered, "reason": reason}
        self._sessions[client] = _Session(welcome, positions)
        self._send(client, "welcome", welcome)
        self._spawn(self._save(client))

    def close(self, client: M) -> None:
        """The client is gone: its session may be resumed within the window from now."""
        self._sessions.pop(client, None)
        if client.session is not None:
            self._spawn(self._save(client))

    async def _save(self, client: M) -> None:
        assert client.session is not None
        try:
            await asyncio.wait_for(
                self.rooms.backplane.save_session(client.session, "1", self.settings.window),
                self.settings.timeout,
            )
        except Exception as exc:
            client_caused.log(
                logger,
                logging.WARNING,
                ("session-save",),
                "cannot save session %s: %s",
                client.session,
                exc,
            )

    def _send(self, client: M, event: str, *args: Any) -> None:
        client.send(self.protocol.encode_event(event, args, HUB_CHANNEL))

    # -- joining -------------------------------------------------------------------

    def joined(self, client: M, room: str) -> None:
        """``client`` just became a member of ``room``: tell it its position, replay if asked."""
        session = self._sessions.get(client)
        if session is None:
            return
        asked = session.asked.pop(room, None)
        cursor = self.rooms.backplane.cursor(room)
        if asked is None and cursor is not None:
            self._send(client, "joined", room, format_position(cursor), None, None)
            return
        # Its room messages are held back (see deliver) until the replay is written.
        task = self._spawn(self._recover(client, session, room, asked))
        self._joining.setdefault(room, {})[client] = _Join(task)

    def joining(self, client: M, room: str) -> bool:
        """Whether the join of ``room`` by ``client`` is being recovered."""
        return client in self._joining.get(room, ())

    async def settled(self, client: M, room: str) -> None:
        """Wait until the join of ``room`` has written its replay (if any)."""
        join = self._joining.get(room, {}).get(client)
        if join is not None:
            await asyncio.shield(join.task)

    def _end_join(self, client: M, room: str) -> _Join | None:
        """Forget the join of ``room`` by ``client``: its room messages go straight to it again."""
        joins = self._joining.get(room)
        if joins is None:
            return None
        join = joins.pop(client, None)
        if not joins:
            del self._joining[room]
        return join

    async def _recover(
        self, client: M, session: _Session, room: str, asked: Position | None
    ) -> None:
        backplane = self.rooms.backplane
        result: bool | None = None
        reason: str | None = None
        replayed: Position | None = None
        try:
            try:
                cursor = await backplane.wait_cursor(room, self.settings.timeout)
            except HistoryError:
                cursor = None
            if asked is not None:
                result = False
                try:
                    if not session.welcome["recovered"]:
                        raise HistoryError("expired")
                    epoch, entries = await asyncio.wait_for(
                        backplane.history(room, asked), self.settings.timeout
                    )
                except HistoryError as exc:
                    reason = exc.reason
                except Exception as exc:
                    client_caused.log(
                        logger,
                        logging.WARNING,
                        ("history-read",),
                        "cannot read the history of room %.80r: %s",
                        room,
                        exc,
                    )
                    reason = "unavailable"
                else:
                    result = True
                    replayed = asked if not entries else (epoch, entries[-1].offset)
                    if not client.closed and room in client.rooms:
                        for entry in entries:
                            if entry.exclude != client.id:
                                message = splice(entry.message, room, (epoch, entry.offset))
                                self.rooms.write(client, PreparedMessage(message))
            self._go_live(client, room, cursor, replayed, result, reason)
        finally:
            self._end_join(client, room)

    def _go_live(
        self,
        client: M,
        room: str,
        cursor: Position | None,
        replayed: Position | None,
        result: bool | None,
        reason: str | None,
    ) -> None:
        join = self._end_join(client, room)
        kept = join.held if join is not None else []
        if client.closed or room not in client.rooms:
            return
        if replayed is not None:
            position = replayed
        elif kept:
            first = kept[0][0]
            position = (first[0], first[1] - 1)
        else:
            position = cursor or ("", 0)
        self._send(client, "joined", room, format_position(position), result, reason)
        for kept_position, prepared in kept:
            if (
                replayed is not None
                and kept_position[0] == replayed[0]
                and kept_position[1] <= replayed[1]
            ):
                continue
            self.rooms.write(client, prepared)

    # -- delivery ------------------------------------------------------------------

    def deliver(self, room: str, message: str, exclude: str | None, position: Position) -> int:
        """A room message with its position: written to the members, or held back.

        The hub's delivery hands every room message that has a position
        here. A member whose join of the room is being recovered gets it
        later, after its replay (see the theory of operation).
        """
        prepared = PreparedMessage(splice(message, room, position))
        joins = self._joining.get(room) if self._joining else None
        write = self.rooms.write
        sent = 0
        for client in list(self.rooms.members.get(room, ())):
            if client.id == exclude:
                continue
            join = joins.get(client) if joins else None
            if join is not None:
                join.held.append((position, prepared))
            elif write(client, prepared):
                sent += 1
        return sent

    def advanced(self, room: str, position: Position) -> None:
        """Tell the room's session clients a message they already have got this position."""
        text = format_position(position)
        joins = self._joining.get(room, {})
        for client in self.rooms.members.get(room, ()):
            if client.session is not None and client not in joins:
                self._send(client, "position", room, text)

    def hello(self, client: M) -> dict[str, Any]:
        """The answer to ``hello``: the welcome again (or nothing for a client without one)."""
        session = self._sessions.get(client)
        if session is None:
            return {"session": None, "recovered": False, "reason": None}
        return dict(session.welcome)
