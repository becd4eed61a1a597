"""Failover and recovery on Redis: writes confirmed with ``WAIT``, streams that diverged.

Theory of operation
===================

Redis replicates asynchronously: a primary answers a write before its
replicas have it, and a replica promoted by a failover (Sentinel's, or
Redis Cluster's) lacks what the old primary had not sent on yet. With
recovery on, the script of an emit appends to the room's stream and
publishes in one step, so the nodes subscribed to the old primary may
deliver a message (with its position) that the new primary's stream does
not hold. The new primary then numbers the next messages from its own last
offset: the offsets the clients saw are given to other messages.

Three things keep a recovering client from a silent gap:

* **A new epoch after a failover** (the default): with Sentinel, the node
  asks the sentinels each heartbeat for the primary's config epoch, which
  grows with every failover, and passes it + 1 to the script as the
  *generation*; the script keeps the generation of each room's last write
  (``g`` in its meta key). The first write to a room after a failover (a
  higher generation) starts a new epoch, with an empty stream: a client
  that recovers from a position of the old epoch gets ``recovered`` false
  (reason ``"epoch"``). Nothing says which rooms lost messages, so every
  room written to across a failover pays; without Sentinel (one server,
  the generation 0) there is no failover to fence.
* **Confirmed writes** (``wait_replicas``, off by default):
  :class:`Confirmations` adds ``WAIT numreplicas timeout`` after the
  scripts of each pipeline, on the same connection, in the same round trip.
  A batch that ``WAIT`` finds on fewer replicas than asked is counted
  (``stats.unconfirmed``), logged (rate-limited), and its messages are kept:
  when the node loses Redis (the failover), they are published again, to
  the new primary, whose script appends those it lacks in the order they
  had (and drops, by the sequence number of their node, those it has). A
  later batch that ``WAIT`` confirms confirms the earlier ones too (the
  replication stream is one), and they are forgotten. The writes being
  confirmed, a new generation does not end the epoch: recovery stays
  exactly once across the failover.
* **Diverged streams start a new epoch**: a node knows what it delivered
  from each stream (its cursor, and the last sequence number of each
  publishing node). When it reads the stream again (its subscriber came
  back, which a failover causes, or a message leaves a gap), it checks
  :func:`diverged`: the stream ends before its cursor, or the entry at its
  cursor is a message it never had, or a message it never had came with an
  offset it had passed (:func:`suspect`; with ``WAIT``, two nodes whose
  unconfirmed messages reached the new primary in another order). Then
  :func:`fence` ends the stream's epoch atomically (``fence.lua``: a new
  epoch, an empty stream), delivering to the local clients, without a
  position, the messages of the old epoch this node had not delivered.

And whichever node a client comes back to, a position past the stream's
end (the stream lost what the client had) fails its recovery with reason
``"history"`` (:func:`~..interface.check_since`, and the node's own cursor
in :meth:`.RedisBackplane.history`).

What remains: a write that reached the new primary before its node heard
of the failover (it carries the old generation) is numbered in the old
epoch until the next write of the room ends it; a client that recovers in
that moment from a position the new primary reused can get a replay that
skips. Without Sentinel, a Redis restarted from its persistence files can
lose its last writes (``appendfsync everysec``) the same way, unseen.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from importlib import resources
from typing import Any, Generic, TypeVar

from ....limits import LogLimiter
from ..interface import Target
from .link import Link, logger
from .streams import Item, Stream, item_of_entry

__all__ = ["FENCE_SCRIPT", "Confirmations", "diverged", "fence", "floor", "suspect"]

#: The Lua script that ends a diverged stream's epoch (``fence.lua``, next to this module).
FENCE_SCRIPT = (resources.files(__package__ or "") / "fence.lua").read_text(encoding="utf-8")

# Records of unconfirmed writes and of diverged streams: a few per second at most.
_records = LogLimiter()

E = TypeVar("E")


class Confirmations(Generic[E]):
    """The ``WAIT`` after each batch of stream writes, and the messages it did not confirm.

    Args:
        link: what the parts of the backplane share (its counters).
        replicas: the replicas each write must reach (``0``: no ``WAIT``).
        timeout: seconds ``WAIT`` waits for them.
        keep: unconfirmed messages kept at most (the oldest go first).
    """

    def __init__(self, link: Link, replicas: int, timeout: float, keep: int) -> None:
        self._link = link
        self.replicas = replicas
        self._timeout_ms = max(0, int(timeout * 1000))
        self._keep = keep
        #: The messages of the batches ``WAIT`` did not confirm, oldest first.
        self.unconfirmed: list[E] = []

    def add_wait(self, pipe: Any) -> None:
        """Add ``WAIT replicas timeout`` to ``pipe`` (after the batch's scripts)."""
        pipe.execute_command("WAIT", self.replicas, self._timeout_ms)

    def answered(self, messages: list[E], replicas: Any) -> None:
        """``WAIT`` answered ``replicas`` for the batch that wrote ``messages``."""
        if isinstance(replicas, int) and replicas >= self.replicas:
            # Replicated in order: whatever was written before is there too.
            self.unconfirmed.clear()
            return
        self._link.stats.unconfirmed += len(messages)
        self.unconfirmed.extend(messages)
        del self.unconfirmed[: -self._keep or None]
        _records.log(
            logger,
            logging.WARNING,
            ("unconfirmed",),
            "redis backplane: %d stream write(s) reached %s of %d replica(s) in %d ms; "
            "a failover now may lose them (they are published again after it)",
            len(messages),
            replicas,
            self.replicas,
            self._timeout_ms,
        )

    def take(self) -> list[E]:
        """The unconfirmed messages, to publish again to the next primary (and forget)."""
        taken, self.unconfirmed = self.unconfirmed, []
        return taken


def floor(stream: Stream) -> int:
    """The offset up to which ``stream``'s cursor vouches for nothing: where it began.

    The node delivered none of the messages up to the place where it began
    listening, in that epoch; after it, it delivered every one, in order.
    """
    start = stream.start
    return start[1] if start is not None and start[0] == stream.epoch else 0


def suspect(stream: Stream, item: Item) -> bool:
    """Whether ``item`` proves the stream diverged: never delivered, at an offset passed."""
    return (
        item.epoch == stream.epoch
        and floor(stream) < item.offset <= stream.offset
        and item.seq > stream.senders.get(item.origin, 0)
    )


async def diverged(client: Any, stream: Stream, top: int) -> bool:
    """Whether the stream (whose last offset is ``top``, same epoch) lost what this node had.

    It lost some when it ends before the node's cursor, when a message
    waiting in the cursor's buffer proves it (:func:`suspect`), or when the
    entry at the cursor is a message the node never delivered (a later
    sequence number of its node than the node had).
    """
    if not stream.epoch:
        return False
    if top < stream.offset or any(suspect(stream, item) for item in stream.buffer):
        return True
    offset = stream.offset
    if offset <= floor(stream):
        return False
    chunk = await client.xrange(stream.stream, min=f"{offset}-0", max=f"{offset}-0")
    if not chunk:
        return False  # trimmed (MAXLEN): nothing to compare
    fields = chunk[0][1]
    origin = fields.get(b"n", b"").decode()
    return int(fields.get(b"s", b"0")) > stream.senders.get(origin, 0)


async def fence(link: Link, stream: Stream) -> None:
    """End the diverged epoch of ``stream`` (unless another node did); deliver what is left.

    The messages of the old epoch that this node never delivered (in the
    stream, or waiting in the cursor's buffer) reach its local clients
    without a position; the cursor moves to the start of the new epoch.
    """
    client = link.client
    assert client is not None
    old = stream.epoch
    result = await client.eval(
        FENCE_SCRIPT, 2, stream.meta, stream.stream, old, uuid.uuid4().hex[:12], floor(stream) + 1
    )
    epoch = result[0].decode() if isinstance(result[0], bytes) else str(result[0])
    entries = (
        item_of_entry(old, int(entry_id.split(b"-")[0]), _fields(raw))
        for entry_id, raw in result[1]
    )
    waiting = [item for item in stream.buffer if item.epoch == old]
    delivered = _deliver_new(link, stream, [*entries, *waiting])
    stream.buffer = [item for item in stream.buffer if item.epoch != old]
    stream.epoch, stream.offset = epoch, 0
    link.stats.diverged += 1
    _records.log(
        logger,
        logging.WARNING,
        ("diverged",),
        "redis backplane: the stream of %s lost messages this node had (a failover?): "
        "epoch %s ends, %s begins; %d message(s) of the old epoch delivered without a position; "
        "clients recovering from before it are told recovered=false",
        stream.channel,
        old,
        epoch,
        delivered,
    )


def _fields(raw: Any) -> dict[bytes, bytes]:
    """A stream entry's fields as a dict (a script returns them as a flat list)."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


def _deliver_new(link: Link, stream: Stream, items: Iterable[Item]) -> int:
    """Deliver, without a position, the ``items`` this node never delivered; how many."""
    node = link.node
    assert node is not None
    count = 0
    for item in sorted(items, key=lambda item: item.offset):
        if item.seq <= stream.senders.get(item.origin, 0):
            continue
        stream.senders[item.origin] = item.seq
        if stream.target is Target.ROOM:
            node.deliver(Target.ROOM, stream.name, item.message, item.exclude)
        else:
            node.deliver(Target.ALL, "", item.message, item.exclude)
        link.stats.delivered += 1
        count += 1
    return count
