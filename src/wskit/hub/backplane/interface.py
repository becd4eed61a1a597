"""The interface between a hub and its backplane, and the types they exchange.

A hub is a :class:`Node` (a :class:`ClusterNode` for the cluster features);
its backplane is a :class:`Backplane`. The hub publishes every emit to the
backplane with a :class:`Target`; the backplane delivers it back to every
node through :meth:`Node.deliver`, with the message's :data:`Position` in
its room's stream when it keeps a history. Recovery reads that history
(:meth:`Backplane.history`, a list of :class:`Entry`), and fails with a
:class:`HistoryError` that says why; :func:`check_since` is the check both
backplanes of wskit make before they read it. A broker that cannot be
reached when the hub starts is a :class:`BackplaneUnavailable`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...exceptions import WebSocketError

__all__ = [
    "Target",
    "Node",
    "ClusterNode",
    "Backplane",
    "Position",
    "Entry",
    "HistoryError",
    "BackplaneUnavailable",
    "PresenceEvent",
    "BackplaneStats",
    "check_since",
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


class HistoryError(WebSocketError):
    """The history cannot give a recovery what it needs.

    ``reason`` is one of ``"expired"`` (the session is unknown or its window
    passed), ``"epoch"`` (the stream was reset since), ``"history"`` (it no
    longer reaches back far enough, or it lost messages the client had, in a
    broker's failover), ``"unavailable"`` (the broker cannot be
    reached) or ``"unsupported"`` (this backplane keeps no history).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class BackplaneUnavailable(WebSocketError):
    """The backplane's broker cannot be reached when the hub starts.

    Raised by :meth:`Backplane.start` (so by :meth:`Hub.start
    <wskit.hub.Hub.start>`, :meth:`Hub.serve <wskit.hub.Hub.serve>` and
    ``wskit serve``, which exits with its message). ``url`` names the broker,
    its password masked; the message says it and why it failed.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the backplane's broker at {url}: {reason}")
        self.url = url
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
    for the broker now. With Redis and recovery on (see
    ``wskit.hub.backplane.redis.failover``): ``unconfirmed`` counts the
    stream writes that ``WAIT`` did not find on ``wait_replicas`` replicas in
    time, ``diverged`` the streams found without messages this node had
    delivered (after a failover), each restarted in a new epoch.
    """

    sent: int = 0
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    buffered: int = 0
    reconnects: int = 0
    duplicates: int = 0
    unconfirmed: int = 0
    diverged: int = 0

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
    """The interface of every backplane; :class:`~.memory.MemoryBackplane` is the simplest.

    A hub calls :meth:`attach` once, :meth:`start` before serving and
    :meth:`close` after, :meth:`subscribe`/:meth:`unsubscribe` as rooms
    gain their first or lose their last local member (so a node hears only
    what its clients need), and :meth:`publish` for every emit.
    """

    def attach(self, node: Node) -> None:
        """Register the hub that receives deliveries."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect to the broker, if there is one.

        Raises:
            BackplaneUnavailable: the broker cannot be reached (unless the
                backplane was asked to start without it).
        """

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


def check_since(since: Position, epoch: str, top: int, first: int | None) -> int:
    """The first offset a recovery from ``since`` needs, or 0 when nothing is missed.

    ``first`` is the oldest offset the history still holds (``None``: none).

    Raises:
        HistoryError: the epoch changed, or the history starts too late,
            or it ends before ``since`` (it lost what the client had).
    """
    since_epoch, since_offset = since
    if since_epoch == epoch:
        start = since_offset + 1
    elif since_epoch == "" and since_offset == 0:
        start = 1  # joined before the room had any history: all of it is new
    else:
        raise HistoryError("epoch", f"the stream was reset ({since_epoch} -> {epoch})")
    if start > top + 1:
        # The client saw messages the history does not hold (a broker's
        # failover lost them): their offsets will be given to others.
        raise HistoryError("history", f"offset {since_offset} is past the last kept, {top}")
    if start > top:
        return 0
    if first is None or first > start:
        raise HistoryError("history", f"offset {start} is no longer kept")
    return start
