"""Rooms: this node's clients and their rooms, and the delivery of emits to them.

Theory of operation
===================

An emit to a room, to one client or to everyone never writes to the
members itself: :class:`RoomEmitter` (and ``Hub.emit``) encodes it once and
hands the text to the backplane, which calls :meth:`LocalRooms.deliver` on
every node (the hub's ``deliver`` is that method). Delivery turns the text
into one :class:`~wskit.protocol.connection.PreparedMessage` and hands its
plain frame to :func:`~wskit.asyncio.direct_write.fanout`, which writes it
on the writer of every member in one go: a room maps each member to its
connection's writer (``frame_writer``), which is all that loop reads. The
members it leaves (a compressed or closing connection, one over
``max_buffer``, an ASGI connection) are written one by one with
``write_prepared()``; when that fails because the buffer is full, the
overflow policy drops the message (counting it) or closes the client.

With recovery on, a room message comes with its position in the room's
stream and goes to :class:`~wskit.hub.recovery.SessionManager` instead,
which numbers it and holds it back from members whose replay is not written
yet (:class:`RoomSessions` is what this module needs of it).

The clients are typed by :class:`Member`, what this module (and recovery)
read of a client; the hub's :class:`~wskit.hub.client.Client` is one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from ..asyncio.direct_write import Writer, fanout
from ..limits import client_caused, report_failure
from ..protocol.connection import PreparedMessage
from .backplane import Backplane, Position, Target
from .registry import Spawn

if TYPE_CHECKING:
    from ..asyncio.connection import Conn
    from ..protocol.http11 import Request
    from .wire import WireProtocol

__all__ = [
    "Member",
    "Publisher",
    "RoomSessions",
    "Overflow",
    "LocalRooms",
    "RoomEmitter",
    "BroadcastEmitter",
    "SELECTION_MARK",
]

logger = logging.getLogger("wskit.hub")

Overflow = Literal["drop", "close"]
"""What happens to a client whose buffer is full: its messages are dropped, or it is closed."""


class Member(Protocol):
    """What the rooms (and recovery) read and write of a connected client."""

    #: Its id, unique on the hub.
    id: str
    #: Its connection, written to when ``fanout()`` leaves it.
    conn: Conn
    #: Its connection's writer, which ``fanout()`` writes room emits through.
    frame_writer: Writer | None
    #: The rooms it is in.
    rooms: set[str]
    #: True once the hub no longer writes to it (gone, or closed for overflow).
    closed: bool
    #: Messages dropped because its buffer was full.
    dropped: int
    #: Its recovery session, if it has one.
    session: str | None

    @property
    def request_info(self) -> Request:
        """Its handshake request."""
        ...

    def send(self, message: str | PreparedMessage) -> bool:
        """Write a message to it now, under the overflow policy."""
        ...


M = TypeVar("M", bound=Member)
M_contra = TypeVar("M_contra", bound=Member, contravariant=True)


class RoomSessions(Protocol[M_contra]):
    """What the rooms need of recovery (:class:`~wskit.hub.recovery.SessionManager`)."""

    def joined(self, client: M_contra, room: str) -> None:
        """``client`` just became a member of ``room``."""
        ...

    def deliver(self, room: str, message: str, exclude: str | None, position: Position) -> int:
        """Write a room message with its position to the members; return how many got it."""
        ...


class Publisher(Protocol):
    """What emitting needs of a hub: its wire protocol, to encode, and its backplane.

    (And, for a client's requests, their default timeout.)
    """

    @property
    def protocol(self) -> WireProtocol:
        """Encodes events."""
        ...

    @property
    def backplane(self) -> Backplane:
        """Carries emits to every node."""
        ...

    @property
    def request_timeout(self) -> float | None:
        """Seconds a request to a client waits for its answer by default (``None``: no limit)."""
        ...


SELECTION_MARK = "\x00"
"""Starts the ``exclude`` field of an emit to everyone that carries a selection.

An emit to several rooms, or with several clients left out, goes to every
node as an emit to everyone (:attr:`Target.ALL <wskit.hub.backplane.Target>`)
whose ``exclude`` is this mark and the JSON ``[rooms, excluded ids]``
(``rooms`` ``null``: every client): each node writes it once to each local
client in any of the rooms and not excluded. Every backplane carries
``exclude`` as it is, so this needs nothing of them."""


def _selection(rooms: Iterable[str] | None, excluded: Iterable[str]) -> str:
    return SELECTION_MARK + json.dumps([None if rooms is None else list(rooms), list(excluded)])


class RoomEmitter:
    """Emits to the members of one room or several, except some clients.

    ``hub.to("a", "b").exclude(client_id).emit(...)``: a client in several
    of the rooms gets the message once, also across nodes. An emit to one
    room that leaves out at most one client is an ordinary room message
    (numbered for recovery, sent only to the nodes with members); any
    other goes to every node (see :data:`SELECTION_MARK`) and is not kept
    for recovery.
    """

    __slots__ = ("hub", "channel", "_target", "_name", "_exclude")

    def __init__(
        self,
        hub: Publisher,
        room: str | tuple[str, ...],
        channel: str | None,
        exclude: str | tuple[str, ...] | None,
    ) -> None:
        self.hub = hub
        self.channel = channel
        rooms = (room,) if isinstance(room, str) else room
        excluded = () if exclude is None else (exclude,) if isinstance(exclude, str) else exclude
        # What emit() publishes, decided once here (the usual case first: an
        # emitter is made for every emit); rooms and excluded are read back
        # from it.
        if len(rooms) == 1 and len(excluded) <= 1:
            self._target, self._name = Target.ROOM, rooms[0]
            self._exclude = excluded[0] if excluded else None
        else:
            rooms = tuple(dict.fromkeys(rooms))
            if not rooms:
                raise ValueError("emit to at least one room")
            self._target, self._name = Target.ALL, ""
            self._exclude = _selection(rooms, excluded)

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms emitted to."""
        if self._target is Target.ROOM:
            return (self._name,)
        return tuple(json.loads(self._exclude[1:])[0])  # type: ignore[index]

    @property
    def excluded(self) -> tuple[str, ...]:
        """The ids of the clients left out."""
        if self._target is Target.ROOM:
            return () if self._exclude is None else (self._exclude,)
        return tuple(json.loads(self._exclude[1:])[1])  # type: ignore[index]

    @property
    def room(self) -> str:
        """The first of :attr:`rooms`."""
        return self.rooms[0]

    def exclude(self, *client_ids: str) -> RoomEmitter:
        """The same emitter, leaving out the clients with these ids as well."""
        return RoomEmitter(self.hub, self.rooms, self.channel, (*self.excluded, *client_ids))

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every member (on every node), except the excluded clients."""
        message = self.hub.protocol.encode_event(event, args, self.channel)
        self.hub.backplane.publish(self._target, self._name, message, self._exclude)

    def send(self, message: str) -> None:
        """Send a raw message (iris's ``EmitMessage``) to every member."""
        self.hub.backplane.publish(self._target, self._name, message, self._exclude)


class BroadcastEmitter:
    """Emits to every client of every node except one: the sender (``client.broadcast``).

    iris's ``To(Broadcast)`` and socket.io's ``socket.broadcast``: no room
    is needed.
    """

    __slots__ = ("hub", "channel", "exclude")

    def __init__(self, hub: Publisher, channel: str | None, exclude: str) -> None:
        self.hub = hub
        self.channel = channel
        # An id that looks like a selection travels as one.
        self.exclude = exclude if exclude[:1] != SELECTION_MARK else _selection(None, (exclude,))

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every client (on every node) but the excluded one."""
        message = self.hub.protocol.encode_event(event, args, self.channel)
        self.hub.backplane.publish(Target.ALL, "", message, self.exclude)

    def send(self, message: str) -> None:
        """Send a raw message to every client but the excluded one."""
        self.hub.backplane.publish(Target.ALL, "", message, self.exclude)


class LocalRooms(Generic[M]):
    """This node's clients and rooms; delivers emits to them under the overflow policy.

    The hub holds one, and exposes its tables and settings as its own
    attributes (``hub.clients``, ``hub.rooms``, ``hub.max_buffer``...).

    Args:
        backplane: told when a room gains its first or loses its last local
            member, and of presence.
        spawn: runs the closing of a client that overflowed.
        on_leave: called with ``(client, room)`` before a client leaves a room
            (the hub's leave hooks).
        max_buffer, overflow, overflow_code: the overflow policy (see ``Hub``).
        presence, presence_info: whether to record presence, and what to say
            of each client (see ``Hub``).
    """

    def __init__(
        self,
        backplane: Backplane,
        spawn: Spawn,
        on_leave: Callable[[M, str], None],
        *,
        max_buffer: int,
        overflow: Overflow,
        overflow_code: int,
        presence: bool,
        presence_info: Callable[[M], dict[str, Any]] | None,
    ) -> None:
        self.backplane = backplane
        #: Clients connected to this node, by id.
        self.clients: dict[str, M] = {}
        #: Rooms with members on this node, each member with its connection's
        #: writer (what a room emit is written through; see ``deliver``).
        self.members: dict[str, dict[M, Writer | None]] = {}
        self.max_buffer = max_buffer
        self.overflow = overflow
        self.overflow_code = overflow_code
        #: Messages dropped because a client's buffer was full.
        self.dropped = 0
        self.presence_enabled = presence
        self.presence_info = presence_info
        #: Recovery, when the hub has it on (set by the hub).
        self.sessions: RoomSessions[M] | None = None
        self._spawn = spawn
        self._on_leave = on_leave

    # -- membership ----------------------------------------------------------------------

    def join(self, client: M, room: str) -> None:
        """Make ``client`` a member of ``room`` (created when its first member joins)."""
        if room in client.rooms:
            return
        client.rooms.add(room)
        members = self.members.get(room)
        if members is None:
            members = self.members[room] = {}
            self.backplane.subscribe(room)
        members[client] = client.frame_writer
        if self.presence_enabled:
            self.backplane.presence_add(room, client.id, self.presence_info_of(client))
        if self.sessions is not None:
            self.sessions.joined(client, room)

    def leave(self, client: M, room: str) -> bool:
        """Take ``client`` out of ``room``, after the leave hooks; ``False`` if it was not in it."""
        if room not in client.rooms:
            return False
        self._on_leave(client, room)
        client.rooms.discard(room)
        members = self.members.get(room)
        if members is None:
            return True
        members.pop(client, None)
        if self.presence_enabled:
            self.backplane.presence_remove(room, client.id)
        if not members:
            del self.members[room]
            self.backplane.unsubscribe(room)
        return True

    def clear(self, room: str) -> int:
        """Make every local member leave ``room`` (after the leave hooks); how many left."""
        members = list(self.members.get(room, ()))
        for client in members:
            self.leave(client, room)
        return len(members)

    # -- presence ----------------------------------------------------------------------

    def presence_info_of(self, client: M) -> dict[str, Any]:
        """What the presence entries say of ``client`` (``presence_info``, never raising)."""
        if self.presence_info is None:
            return {}
        try:
            return dict(self.presence_info(client))
        except Exception as exc:
            report_failure(logger, exc, "presence_info")
            return {}

    def presence_entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every local room membership, with its presence info."""
        if not self.presence_enabled:
            return []
        return [
            (room, client.id, self.presence_info_of(client))
            for room, members in self.members.items()
            for client in members
        ]

    # -- delivery ----------------------------------------------------------------------

    def deliver(
        self,
        target: Target,
        name: str,
        message: str,
        exclude: str | None,
        position: Position | None = None,
    ) -> int:
        """Write an emit to the local clients it is for; see :class:`~wskit.hub.backplane.Node`."""
        if (
            position is not None
            and (sessions := self.sessions) is not None
            and target is Target.ROOM
        ):
            return sessions.deliver(name, message, exclude, position)
        members: Iterable[M]
        if target is Target.ROOM:
            members = self.members.get(name, {})
        elif target is Target.CLIENT:
            client = self.clients.get(name)
            members = (client,) if client is not None else ()
        else:
            members = self.clients.values()
            if exclude is not None and exclude[:1] == SELECTION_MARK:
                members, exclude = self._selected(exclude), None
        prepared = PreparedMessage(message)
        max_buffer = self.max_buffer
        skip = None if exclude is None else self.clients.get(exclude)
        # The hot loop of every room emit, compiled when the kernel is built:
        # the common frame to every plain connection in one go (a room maps
        # its members to their writers, which is all the loop reads). The
        # clients it leaves (compressed, closing, over max_buffer, ASGI) take
        # the per-connection path, and the overflow policy when that fails.
        sent, left = fanout(members, prepared.plain_frame(), max_buffer, skip)
        for client in left:
            if client.closed:
                continue
            if client.conn.write_prepared(prepared, max_buffer):
                sent += 1
            else:
                self._overflowed(client)
        return sent

    def _selected(self, selection: str) -> dict[M, Writer | None]:
        """The local clients a selection (see :data:`SELECTION_MARK`) is for, with their writers."""
        rooms, excluded = json.loads(selection[1:])
        if rooms is None:
            selected = {client: client.frame_writer for client in self.clients.values()}
        else:
            selected = {}
            for room in rooms:
                selected.update(self.members.get(room, {}))
        for client_id in excluded:
            client = self.clients.get(client_id)
            if client is not None:
                selected.pop(client, None)
        return selected

    def write(self, client: M, prepared: PreparedMessage) -> bool:
        """Write ``prepared`` to ``client`` now, under the overflow policy; ``False`` if not."""
        if client.closed:
            return False
        if client.conn.write_prepared(prepared, self.max_buffer):
            return True
        self._overflowed(client)
        return False

    def _overflowed(self, client: M) -> None:
        """A write to ``client`` failed: apply the overflow policy if its buffer is full."""
        if client.conn.closed or client.conn.write_buffer_size <= self.max_buffer:
            return
        if self.overflow == "close":
            # Every slow client could log this: a bounded rate of such records.
            client_caused.log(
                logger,
                logging.WARNING,
                ("slow-client",),
                "client %s is not reading; closing it",
                client.id,
            )
            client.closed = True
            self._spawn(client.conn.close(self.overflow_code, "client too slow"))
        else:
            client.dropped += 1
            self.dropped += 1
