"""The numbered streams of the Redis backplane: a node's cursor in one, and reading one back.

A room's messages (and the global ones) are numbered by the Lua script of
the outbox and kept in a Redis stream, ``P:hist:NAME``, whose entry ids are
the offsets (``OFFSET-0``); ``P:meta:NAME`` holds the epoch and the last
offset. A :class:`Stream` is where this node stands in one of them; an
:class:`Item` is one numbered message, as it comes on the channel or from
the stream. :func:`read_history` answers a recovery from the stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..interface import Entry, HistoryError, Position, Target, check_since
from .link import OUTAGE, Keys

__all__ = ["Item", "Stream", "item_of_entry", "read_history", "read_stream"]


class Item:
    """A numbered message as it arrives (live, or read from the stream)."""

    __slots__ = ("epoch", "offset", "origin", "seq", "exclude", "message")

    def __init__(
        self, epoch: str, offset: int, origin: str, seq: int, exclude: str | None, message: str
    ) -> None:
        self.epoch = epoch
        self.offset = offset
        #: The id of the node that published it, and its sequence number there.
        self.origin = origin
        self.seq = seq
        self.exclude = exclude
        self.message = message


class Stream:
    """This node's cursor in one numbered channel (a room's, or the global one)."""

    def __init__(self, target: Target, name: str, channel: str, meta: str, stream: str) -> None:
        self.target = target
        self.name = name
        self.channel = channel
        self.meta = meta
        self.stream = stream
        self.epoch = ""
        self.offset = 0
        #: Where the node stood when it started listening (read through the outbox).
        self.start: Position | None = None
        #: The subscription is confirmed.
        self.confirmed = False
        #: The last sequence number delivered from each publishing node.
        self.senders: dict[str, int] = {}
        #: Recovery off: the last number in this channel from each publishing node.
        self.counts: dict[str, int] = {}
        #: The cursor is established (``epoch`` and ``offset`` hold).
        self.ready = False
        #: Reading what was missed: live messages wait in ``buffer``.
        self.syncing = True
        #: A sync was asked for while one ran: it runs once more.
        self.again = False
        self.buffer: list[Item] = []
        self.task: asyncio.Future[None] | None = None
        #: Who waits for the cursor to be established.
        self.waiters: list[asyncio.Future[None]] = []

    def established(self) -> None:
        """The cursor holds (``epoch`` and ``offset``): wake who waits for it."""
        self.ready = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    @classmethod
    def of(cls, keys: Keys, target: Target, name: str) -> Stream:
        """A new cursor in the stream of room ``name`` (or the global one)."""
        return cls(target, name, *keys.numbered(target, name))


def item_of_entry(epoch: str, offset: int, fields: dict[bytes, bytes]) -> Item:
    """The message of a stream entry (its fields are those ``publish.lua`` writes)."""
    exclude = json.loads(fields.get(b"x", b"null"))
    return Item(
        epoch,
        offset,
        fields.get(b"n", b"").decode(),
        int(fields.get(b"s", b"0")),
        exclude,
        fields.get(b"m", b"").decode(),
    )


async def read_stream(client: Any, key: str, start: int) -> list[tuple[int, dict[bytes, bytes]]]:
    """The entries of stream ``key`` from offset ``start`` on: ``(offset, fields)``."""
    entries: list[tuple[int, dict[bytes, bytes]]] = []
    while True:
        chunk = await client.xrange(key, min=f"{start}-0", max="+", count=1000)
        for entry_id, fields in chunk:
            entries.append((int(entry_id.split(b"-")[0]), fields))
        if len(chunk) < 1000:
            return entries
        start = entries[-1][0] + 1


async def read_history(
    client: Any, keys: Keys, room: str, since: Position
) -> tuple[str, list[Entry]]:
    """The room's messages after ``since`` from its Redis stream (see ``Backplane.history``).

    Raises:
        HistoryError: the stream does not hold all of them, or Redis cannot be reached.
    """
    _, meta, stream = keys.numbered(Target.ROOM, room)
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hmget(meta, ["epoch", "top"])
            pipe.xrange(stream, min="-", max="+", count=1)
            (epoch_raw, top_raw), oldest = await pipe.execute()
        epoch = epoch_raw.decode() if epoch_raw else ""
        first = int(oldest[0][0].split(b"-")[0]) if oldest else None
        start = check_since(since, epoch, int(top_raw or 0), first)
        if start == 0:
            return epoch, []
        raw = await read_stream(client, stream, start)
    except OUTAGE as exc:
        raise HistoryError("unavailable", str(exc)) from exc
    if not raw or raw[0][0] != start:
        raise HistoryError("history", f"offset {start} is no longer kept")
    entries = []
    for offset, fields in raw:
        item = item_of_entry(epoch, offset, fields)
        entries.append(Entry(offset, item.message, item.exclude))
    return epoch, entries
