"""What every part of one Redis backplane shares: the link between this node and Redis.

A :class:`~.backplane.RedisBackplane` makes one :class:`Link` and hands it
to each of its parts (the outbox, the receiver, presence and calls). The
link holds what they all use: the names of the keys and channels
(:class:`Keys`), the hub that receives deliveries, redis-py's client for
commands, the counters, and the background tasks. It also says what counts
as Redis being out of reach (:data:`OUTAGE`) and how long to wait before
trying again (:class:`Backoff`). Each part keeps the rest of its state to
itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from redis.exceptions import RedisClusterException, RedisError

from ...background import BackgroundTasks
from ..interface import BackplaneStats, ClusterNode, Target

__all__ = [
    "OUTAGE",
    "Backoff",
    "ClusterKeys",
    "Keys",
    "Link",
    "Options",
    "describe",
    "hash_tag",
    "logger",
]

#: The logger of every part of the Redis backplane (named for the module it began in).
logger = logging.getLogger("wskit.hub.redis")

#: The errors that mean Redis cannot be reached (or did not answer in time). On
#: Redis Cluster, redis-py also raises :class:`~redis.exceptions.RedisClusterException`
#: (a slot no primary covers, during a failover).
OUTAGE = (
    RedisError,
    RedisClusterException,
    OSError,
    asyncio.TimeoutError,
    asyncio.IncompleteReadError,
)


def describe(exc: BaseException) -> str:
    """One line saying what ``exc`` is and says (a timeout says nothing by itself)."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection was closed"  # rather than "0 bytes read on a total of..."
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backoff:
    """Exponential waits between attempts: the first, doubled after each, up to the longest."""

    __slots__ = ("first", "longest", "delay")

    def __init__(self, bounds: tuple[float, float]) -> None:
        self.first, self.longest = bounds
        #: What the next :meth:`wait` waits.
        self.delay = self.first

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits the first delay again."""
        self.delay = self.first

    async def wait(self) -> None:
        """Wait before the next attempt, and double the wait after it."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.longest)


class Keys:
    """The names of the keys and channels under one prefix (``P``).

    The theory of operation of :mod:`wskit.hub.backplane.redis` says what
    each of them holds.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        """``P:part:part...``."""
        return ":".join((self.prefix, *parts))

    def channel(self, target: Target, name: str) -> str:
        """The channel of a room (``P:room:NAME``), a client (``P:client:ID``), all (``P:all``)."""
        if target is Target.ROOM:
            return self.key("room", name)
        if target is Target.CLIENT:
            return self.key("client", name)
        return self.key("all")

    def numbered(self, target: Target, name: str) -> tuple[str, str, str]:
        """The channel, meta key and stream key of a room, or of the global channel."""
        if target is Target.ROOM:
            meta, stream = self.key("meta", name), self.key("hist", name)
        else:
            meta, stream = self.key("meta-all"), self.key("hist-all")
        return self.channel(target, name), meta, stream

    def presence(self, room: str) -> str:
        """The hash of the presence entries of ``room``: ``P:presence:ROOM``."""
        return self.key("presence", room)

    def client_of(self, channel: str) -> str | None:
        """The client whose channel ``channel`` is (``None``: no client's)."""
        start = self.key("client", "")
        return channel[len(start) :] if channel.startswith(start) else None


class ClusterKeys(Keys):
    """The names on Redis Cluster: each room's keys and channel in one hash slot.

    A room's channel, its stream, its meta key and its presence hash carry
    the room as their hash tag (``P:room:{NAME}``, ``P:hist:{NAME}``,
    ``P:meta:{NAME}``, ``P:presence:{NAME}``), so the script of a recovery-on
    emit touches one slot, and the rooms spread over the primaries. A
    client's channel is tagged with the client (``P:client:{ID}``). The
    cluster-wide names are in the slot of the prefix (``{P}:all``,
    ``{P}:hist-all``, ``{P}:node:ID``, ``{P}:alive:NODE``, sessions...).
    """

    __slots__ = ()

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix={prefix!r}: on Redis Cluster a prefix has no braces")
        super().__init__(prefix)

    def key(self, *parts: str) -> str:
        """``{P}:part:part...``: in the prefix's slot."""
        return ":".join((f"{{{self.prefix}}}", *parts))

    def channel(self, target: Target, name: str) -> str:
        """``P:room:{NAME}``, ``P:client:{ID}``, or ``{P}:all``."""
        if target is Target.ROOM:
            return f"{self.prefix}:room:{hash_tag(name)}"
        if target is Target.CLIENT:
            return f"{self.prefix}:client:{hash_tag(name)}"
        return self.key("all")

    def numbered(self, target: Target, name: str) -> tuple[str, str, str]:
        """The channel, meta key and stream key of a room, or of the global channel."""
        if target is Target.ROOM:
            tag = hash_tag(name)
            meta, stream = f"{self.prefix}:meta:{tag}", f"{self.prefix}:hist:{tag}"
        else:
            meta, stream = self.key("meta-all"), self.key("hist-all")
        return self.channel(target, name), meta, stream

    def presence(self, room: str) -> str:
        """``P:presence:{ROOM}``: in the room's slot."""
        return f"{self.prefix}:presence:{hash_tag(room)}"

    def client_of(self, channel: str) -> str | None:
        """The client whose channel ``channel`` is (``None``: no client's)."""
        start = f"{self.prefix}:client:"
        if not channel.startswith(start):
            return None
        tagged = channel[len(start) :]
        if tagged.startswith("{~}") and tagged.endswith("~"):
            return tagged[3:-1]
        return tagged[1:-1]


def hash_tag(name: str) -> str:
    """``{NAME}``: the part of a Redis Cluster key that says its slot.

    Redis hashes what is between the first ``{`` and the next ``}``, when
    that is not empty; a name that would leave it empty (``""``, ``"}x"``)
    is written ``{~}NAME~``, whose tag is ``~`` (and which no ``{NAME}`` can
    be: those end with ``}``).
    """
    if name and not name.startswith("}"):
        return f"{{{name}}}"
    return f"{{~}}{name}~"


class Options(Protocol):
    """The settings of a Redis backplane that its parts read (its public attributes).

    The parts read them when they need them, so that a change made to the
    backplane's attribute applies from then on.
    """

    #: This node's id in the cluster.
    node_id: str
    #: Outbox entries kept while Redis cannot be reached.
    buffer: int
    #: Outbox entries sent in one pipeline at most.
    batch: int
    #: Seconds between liveness beats (and subscriber pings).
    heartbeat: float
    #: Seconds after its last beat when a node counts as dead.
    node_ttl: float
    #: Seconds a command (or a connection attempt) may take.
    timeout: float
    #: The first and the longest wait between attempts.
    backoff: tuple[float, float]
    #: Messages kept per stream.
    history_size: int
    #: Seconds an idle stream is kept.
    history_ttl: float


class Link:
    """The state the parts of one Redis backplane share; the backplane keeps it current.

    ``node`` is set when the backplane is attached to its hub, ``client``
    while the backplane runs (from ``start()`` until ``close()``), and
    ``closing`` once ``close()`` began; the parts read them and count what
    they do in ``stats``. A part that finds Redis out of reach calls
    :meth:`failed`, which keeps the error for the records that tell of the
    outage.
    """

    __slots__ = (
        "options",
        "keys",
        "publish_command",
        "stats",
        "node",
        "client",
        "closing",
        "tasks",
        "last_error",
    )

    def __init__(self, options: Options, keys: Keys) -> None:
        self.options = options
        self.keys = keys
        #: The command that publishes on the channels of ``keys``: ``PUBLISH``, or
        #: on Redis Cluster ``SPUBLISH`` (sharded pub/sub: only the primary that
        #: owns the channel's slot, and its replicas, carry the message).
        self.publish_command = "SPUBLISH" if isinstance(keys, ClusterKeys) else "PUBLISH"
        self.stats = BackplaneStats()
        #: The hub that receives deliveries (``None`` until attached).
        self.node: ClusterNode | None = None
        #: redis-py's client for commands (``None`` unless running). Its typing
        #: says "bytes | str" everywhere; this client answers bytes.
        self.client: Any = None
        #: ``close()`` began: the loops stop.
        self.closing = False
        #: The background tasks (``close()`` cancels them).
        self.tasks = BackgroundTasks("a redis backplane task", logger)
        #: Why the last attempt to reach Redis failed (``""`` before any failed).
        self.last_error = ""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run ``coro`` in the background until it ends or ``close()``; its error is logged."""
        return self.tasks.spawn(coro)

    def failed(self, what: str, exc: BaseException) -> None:
        """An attempt to reach Redis failed with ``exc`` (one of :data:`OUTAGE`): keep why.

        It is a DEBUG record: attempts fail many times in an outage, which
        the backplane tells of once when it begins and once when it ends.
        """
        self.last_error = describe(exc)
        logger.debug("%s: %s", what, self.last_error)
