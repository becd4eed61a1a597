"""Backplanes: how an emit to a room, a client or everyone reaches every node.

The hub never writes a room emit straight to its members: it hands the
encoded message to its backplane, which delivers it to every hub attached
to it (every process, with a broker) by calling :meth:`Node.deliver`. The
in-memory backplane, the default, delivers at once to the one hub in this
process; a broker-backed one (Redis) publishes and delivers on receipt.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Target",
    "Node",
    "ClusterNode",
    "Backplane",
    "MemoryBackplane",
    "Position",
    "Entry",
    "HistoryError",
    "PresenceEvent",
    "BackplaneStats",
]

Position = tuple[str, int]
"""A place in a room's message stream: ``(epoch, offset)``.

Offsets count the room's messages from 1 within an epoch; offset 0 is
before the first one. A new epoch starts when the history is lost (a
broker restarted, or a room stayed idle longer than the history lasts),
so an offset of another epoch says nothing about this one. The epoch ``""``
stands for "no history yet": everything of the current epoch comes after it.
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """A room message as the history keeps it."""

    offset: int
    message: str
    exclude: str | None = None


class HistoryError(Exception):
    """The history cannot give a recovery what it needs.

    ``reason`` is one of ``"expired"`` (the session is unknown or its window
    passed), ``"epoch"`` (the stream was reset since), ``"history"`` (it no
    longer reaches back far enough), ``"unavailable"`` (the broker cannot be
    reached) or ``"unsupported"`` (this backplane keeps no history).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A client joined or left a room, on some node (``kind`` is "join" or "leave")."""

    kind: str
    room: str
    client_id: str
    node: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackplaneStats:
    """What a backplane did, for monitoring and for tests.

    ``sent`` counts the emits handed to :meth:`Backplane.publish`;
    ``published`` those the broker accepted; ``delivered`` the messages
    given to the local hub (each once, however many clients it reached);
    ``dropped`` those given up (the outage buffer overflowed), each also
    logged; ``lost`` messages another node published that this node could
    not get back from the history after a gap; ``buffered`` is how many wait
    for the broker now.
    """

    sent: int = 0
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    buffered: int = 0
    reconnects: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for JSON)."""
        return dict(self.__dict__)


class Target(enum.Enum):
    """Who an emit is for."""

    ROOM = "room"
    CLIENT = "client"
    ALL = "all"


class Node(Protocol):
    """What a backplane needs of a hub: a way to deliver to local clients."""

    def deliver(
        self,
        target: Target,
        name: str,
        message: str,
        exclude: str | None,
        position: Position | None = None,
    ) -> int:
        """Write ``message`` to the local clients that ``target``/``name`` selects.

        ``exclude`` is a client id that must not receive it (the sender of a
        broadcast). ``position`` is the room message's place in its stream,
        when the backplane keeps a history. Returns how many clients it was
        written to.
        """
        ...


class ClusterNode(Node, Protocol):
    """What a backplane with cluster features needs of a hub, beyond delivery."""

    def is_local(self, client_id: str) -> bool:
        """Whether the client with this id is connected to this node."""
        ...

    def handle_call(self, op: str, args: dict[str, Any]) -> Awaitable[Any]:
        """Answer a node-to-node call (``clients``, ``rooms``, ``join``...)."""
        ...

    def presence_changed(self, event: PresenceEvent) -> None:
        """A client joined or left a room this node has members in."""
        ...

    def presence_entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every local ``(room, client_id, info)`` (to register them again)."""
        ...

    def advanced(self, room: str, position: Position) -> None:
        """A room message already delivered here (during an outage) got its position."""
        ...


class Backplane:
    """The interface of every backplane; :class:`MemoryBackplane` is the simplest.

    A hub calls :meth:`attach` once, :meth:`start` before serving and
    :meth:`close` after, :meth:`subscribe`/:meth:`unsubscribe` as rooms
    gain their first or lose their last local member (so a node hears only
    what its clients need), and :meth:`publish` for every emit.
    """

    def attach(self, node: Node) -> None:
        """Register the hub that receives deliveries."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect to the broker, if there is one."""

    async def close(self) -> None:
        """Disconnect from the broker, if there is one."""

    def subscribe(self, room: str) -> None:
        """A room got its first local member: start receiving its emits."""

    def unsubscribe(self, room: str) -> None:
        """A room lost its last local member: stop receiving its emits."""

    def client_added(self, client_id: str) -> None:
        """A client connected to this node: start receiving what is sent to it by id."""

    def client_removed(self, client_id: str) -> None:
        """A client of this node disconnected."""

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Deliver ``message`` to ``target`` on every node, this one included."""
        raise NotImplementedError

    # -- what the cluster features need; the defaults say "not supported" ----------

    #: This node's id in the cluster.
    node_id: str = ""
    #: Room messages kept per room for recovery (0: none); the hub sets it.
    history_size: int = 0
    #: Seconds an idle room's history is kept.
    history_ttl: float = 300.0

    @property
    def stats(self) -> BackplaneStats:
        """Counters (see :class:`BackplaneStats`)."""
        return BackplaneStats()

    def cursor(self, room: str) -> Position | None:
        """The position of the last room message delivered here; ``None`` if unknown yet."""
        return None

    async def wait_cursor(self, room: str, timeout: float) -> Position:
        """Wait (at most ``timeout`` s) until :meth:`cursor` is known, and return it.

        Raises:
            HistoryError: ``"unavailable"`` when it is not known in time.
        """
        position = self.cursor(room)
        if position is None:
            raise HistoryError("unsupported", "this backplane keeps no history")
        return position

    async def history(self, room: str, since: Position) -> tuple[str, list[Entry]]:
        """The epoch and the room messages after ``since``, in order.

        Raises:
            HistoryError: the history does not hold all of them.
        """
        raise HistoryError("unsupported", "this backplane keeps no history")

    async def save_session(self, session: str, data: str, ttl: float) -> None:
        """Keep ``data`` for ``session`` during ``ttl`` seconds."""

    async def load_session(self, session: str) -> str | None:
        """What :meth:`save_session` kept, or ``None`` (unknown or expired)."""
        return None

    def presence_add(self, room: str, client_id: str, info: dict[str, Any]) -> None:
        """Record that a local client is in ``room`` (and tell the nodes)."""

    def presence_remove(self, room: str, client_id: str) -> None:
        """Record that a local client left ``room`` (and tell the nodes)."""

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room`` on live nodes: client id to info (with ``"node"``)."""
        return {}

    async def call(
        self, op: str, args: dict[str, Any], client_id: str | None = None, timeout: float = 2.0
    ) -> list[Any]:
        """Ask every node (or the node of ``client_id``); their answers, within ``timeout``."""
        return []


class _RoomLog:
    """A room's bounded, in-memory history (the memory backplane's)."""

    __slots__ = ("epoch", "top", "entries", "last")

    def __init__(self, size: int) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self.top = 0
        self.entries: deque[tuple[Entry, float]] = deque(maxlen=size)
        self.last = time.monotonic()


def check_since(since: Position, epoch: str, top: int, first: int | None) -> int:
    """The first offset a recovery from ``since`` needs, or 0 when nothing is missed.

    ``first`` is the oldest offset the history still holds (``None``: none).

    Raises:
        HistoryError: the epoch changed, or the history starts too late.
    """
    since_epoch, since_offset = since
    if since_epoch == epoch:
        start = since_offset + 1
    elif since_epoch == "" and since_offset == 0:
        start = 1  # joined before the room had any history: all of it is new
    else:
        raise HistoryError("epoch", f"the stream was reset ({since_epoch} -> {epoch})")
    if start > top:
        return 0
    if first is None or first > start:
        raise HistoryError("history", f"offset {start} is no longer kept")
    return start


class MemoryBackplane(Backplane):
    """Delivers in this process only; the default, and the reference behaviour."""

    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self.node_id = uuid.uuid4().hex[:12]
        self._stats = BackplaneStats()
        self._logs: dict[str, _RoomLog] = {}
        self._sessions: dict[str, tuple[float, str]] = {}
        self._presence: dict[str, dict[str, dict[str, Any]]] = {}

    def attach(self, node: Node) -> None:
        """Register ``node``; several hubs may share one memory backplane."""
        self._nodes.append(node)

    @property
    def stats(self) -> BackplaneStats:
        """Counters (see :class:`BackplaneStats`)."""
        return self._stats

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Deliver to every attached hub now (room messages numbered when there is a history)."""
        self._stats.sent += 1
        position: Position | None = None
        if target is Target.ROOM and self.history_size > 0:
            log = self._log(name)
            log.top += 1
            log.last = time.monotonic()
            log.entries.append((Entry(log.top, message, exclude), log.last))
            position = (log.epoch, log.top)
        self._stats.published += 1
        for node in self._nodes:
            if position is None:
                node.deliver(target, name, message, exclude)
            else:
                node.deliver(target, name, message, exclude, position)
        self._stats.delivered += 1

    # -- history -----------------------------------------------------------------------

    def _log(self, room: str) -> _RoomLog:
        log = self._logs.get(room)
        now = time.monotonic()
        if log is not None and now - log.last > self.history_ttl:
            log = None  # idle past its lifetime: a new epoch
        if log is None:
            log = self._logs[room] = _RoomLog(max(1, self.history_size))
            if len(self._logs) > 64:
                self._forget_idle(now)
        return log

    def _forget_idle(self, now: float) -> None:
        for room, log in list(self._logs.items()):
            if now - log.last > self.history_ttl:
                del self._logs[room]

    def cursor(self, room: str) -> Position | None:
        """The room's last position (creating its history if it has none)."""
        if self.history_size <= 0:
            return None
        log = self._log(room)
        return (log.epoch, log.top)

    async def wait_cursor(self, room: str, timeout: float) -> Position:
        """Known at once in memory."""
        return await super().wait_cursor(room, timeout)

    async def history(self, room: str, since: Position) -> tuple[str, list[Entry]]:
        """The kept messages after ``since``; see :meth:`Backplane.history`."""
        if self.history_size <= 0:
            raise HistoryError("unsupported", "the hub keeps no history")
        log = self._log(room)
        now = time.monotonic()
        while log.entries and now - log.entries[0][1] > self.history_ttl:
            log.entries.popleft()
        first = log.entries[0][0].offset if log.entries else None
        start = check_since(since, log.epoch, log.top, first)
        if start == 0:
            return log.epoch, []
        return log.epoch, [entry for entry, _ in log.entries if entry.offset >= start]

    async def save_session(self, session: str, data: str, ttl: float) -> None:
        """Keep it in this process."""
        now = time.monotonic()
        self._sessions[session] = (now + ttl, data)
        if len(self._sessions) > 1024:
            for key, (expiry, _) in list(self._sessions.items()):
                if expiry < now:
                    del self._sessions[key]

    async def load_session(self, session: str) -> str | None:
        """What was kept for ``session``, if its time has not run out."""
        kept = self._sessions.get(session)
        if kept is None or kept[0] < time.monotonic():
            return None
        return kept[1]

    # -- presence and calls -----------------------------------------------------------

    def _cluster_nodes(self) -> list[ClusterNode]:
        return [node for node in self._nodes if hasattr(node, "handle_call")]  # type: ignore[misc]

    def presence_add(self, room: str, client_id: str, info: dict[str, Any]) -> None:
        """Record and announce a join."""
        entry = {**info, "node": self.node_id}
        self._presence.setdefault(room, {})[client_id] = entry
        event = PresenceEvent("join", room, client_id, self.node_id, dict(info))
        for node in self._cluster_nodes():
            node.presence_changed(event)

    def presence_remove(self, room: str, client_id: str) -> None:
        """Record and announce a leave."""
        members = self._presence.get(room)
        if members is None or members.pop(client_id, None) is None:
            return
        if not members:
            del self._presence[room]
        event = PresenceEvent("leave", room, client_id, self.node_id)
        for node in self._cluster_nodes():
            node.presence_changed(event)

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room``."""
        return {client: dict(info) for client, info in self._presence.get(room, {}).items()}

    async def call(
        self, op: str, args: dict[str, Any], client_id: str | None = None, timeout: float = 2.0
    ) -> list[Any]:
        """Ask the hubs of this process."""
        answers = []
        for node in self._cluster_nodes():
            if client_id is not None and not node.is_local(client_id):
                continue
            answers.append(await asyncio.wait_for(node.handle_call(op, args), timeout))
        return answers
