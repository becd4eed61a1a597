"""The receiving side of the Redis backplane: the subscriber's loop, and the numbered streams.

Theory of operation
===================

One connection (a :class:`~.subscriber.Subscriber`) listens to this node's
channels: the rooms with local members and the global channel (numbered,
each with a :class:`~.streams.Stream` cursor), the channels of the local
clients, and the node's own channel (answers to its calls). Every message
starts with a JSON header line: ``"k"`` says what it is (``"m"`` a message,
``"p"`` a presence event, ``"q"`` a call, ``"r"`` an answer).

With recovery off (the default), a room's or the global channel's
messages are plain publishes that Redis keeps nowhere: each one is
delivered as it comes (:meth:`Receiver._receive_plain`), in the order Redis
gives, at most once (a message sent again after an outage has a sequence
number its node used already, and is dropped). Each node numbers its
messages per channel (``"c"``: 1, 2, 3...), so a gap in the numbers of one
node says how many of its messages this node missed (its subscription was
down, or Redis lost them): they are counted in ``stats.lost`` and logged
(a WARNING, rate-limited), and cannot be read back. Nothing is read from
Redis to listen to a room: the cursor is established (``("", 0)``) when
the subscription is confirmed.

With recovery on, a numbered message is delivered when it is the next of its
stream (:meth:`Receiver._apply`); one it already has is dropped, and one that
leaves a gap makes the node read the missing ones from the stream first
(:meth:`Receiver._sync`), the live ones waiting meanwhile. The first sync of
a stream establishes the cursor: where the stream stood when the node began
to listen (read through the outbox, in order with the node's publishes) and
the confirmed subscription are both needed, and whichever comes last asks
for it. When the connection comes back after a loss, the node subscribes
again to everything and every stream syncs.

On Redis Cluster the channels are sharded: one connection per primary
(:class:`~.shards.Shards`) instead of one, ``SSUBSCRIBE`` instead of
``SUBSCRIBE``, frames ``smessage`` and ``ssubscribe``; each shard that
comes back after a loss subscribes again to its channels, and their streams
sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ....limits import LogLimiter
from ..interface import HistoryError, Position, Target
from .calls import Calls
from .failover import diverged, fence, suspect
from .link import OUTAGE, Backoff, Link, logger
from .outbox import Echoes, Outbox
from .presence import presence_event
from .shards import Shards
from .streams import Item, Stream, item_of_entry, read_stream
from .subscriber import Subscriber

__all__ = ["Receiver"]

# Streams that read Redis at once at most. A node that starts listening to many
# rooms, or whose subscriber comes back, syncs all their streams: one connection
# each would exhaust a cluster node's pool (100 connections in redis-py), and the
# reads that failed would make them wait for the next reconnection.
_CONCURRENT_SYNCS = 16

# The records of messages lost from a stream's history, or (recovery off) lost in
# Redis or while the subscription was down: at most a few per second for all rooms.
_lost_records = LogLimiter()


class Receiver:
    """What this node hears from Redis, delivered to its hub in each stream's order.

    Args:
        link: what the parts of the backplane share (the subscriber connects
            as its client does).
        outbox: sends the read of where a stream stands, in order with the rest.
        echoes: what this node published and waits to hear back.
        calls: takes the calls and the answers that come.
        on_state: called when :attr:`receiving` may have changed.
        on_reconnect: called when the subscriber is back after a loss.
    """

    def __init__(
        self,
        link: Link,
        outbox: Outbox,
        echoes: Echoes,
        calls: Calls,
        on_state: Callable[[], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._link = link
        self._outbox = outbox
        self._echoes = echoes
        self._calls = calls
        self._on_state = on_state
        self._on_reconnect = on_reconnect
        #: The numbered channels this node listens to, by channel.
        self.streams: dict[str, Stream] = {}
        #: Every channel this node listens to (subscribed again after a loss).
        self.channels: set[str] = set()
        self._subscriber: Subscriber | None = None
        #: On Redis Cluster: the connections to the primaries (while :meth:`run` runs).
        self._shards: Shards | None = None
        self._receiving = False
        #: Recovery on: the numbered streams; off (the default): plain publishes.
        #: The backplane sets it when it starts.
        self.numbered = False
        self._reads = asyncio.Semaphore(_CONCURRENT_SYNCS)

    @property
    def receiving(self) -> bool:
        """Whether the subscriber is connected and Redis answered on it."""
        return self._receiving

    # -- what to listen to -----------------------------------------------------------

    def listen(self, target: Target, name: str) -> None:
        """Listen to the numbered channel of room ``name`` (or the global one)."""
        stream = Stream.of(self._link.keys, target, name)
        self.streams[stream.channel] = stream
        self.add_channel(stream.channel)
        if not self.numbered:
            # No stream to read: the cursor is there once the subscription is confirmed.
            stream.start = ("", 0)
            return

        # Where the stream stands now, read in order with this node's publishes: the
        # node starts from there (what is published later reaches its members).
        def build(pipe: Any) -> None:
            pipe.hmget(stream.meta, ["epoch", "top"])

        def started(result: Any) -> None:
            if isinstance(result, list) and len(result) == 2:
                epoch, top = result
                stream.start = (epoch.decode() if epoch else "", int(top or 0))
                if stream.confirmed:
                    self._request_sync(stream)

        self._outbox.command(build, on_result=started)

    def stop_listening(self, room: str) -> None:
        """Stop listening to the channel of ``room`` (who waits for its cursor is cancelled)."""
        channel = self._link.keys.channel(Target.ROOM, room)
        stream = self.streams.pop(channel, None)
        if stream is not None:
            for waiter in stream.waiters:
                if not waiter.done():
                    waiter.cancel()
        self.remove_channel(channel)

    def add_channel(self, channel: str) -> None:
        """Listen to ``channel`` too."""
        self.channels.add(channel)
        if self._subscriber is not None:
            self._subscriber.send("SUBSCRIBE", channel)
        elif self._shards is not None:
            self._shards.add(channel)

    def remove_channel(self, channel: str) -> None:
        """Stop listening to ``channel``."""
        self.channels.discard(channel)
        if self._subscriber is not None:
            self._subscriber.send("UNSUBSCRIBE", channel)
        elif self._shards is not None:
            self._shards.remove(channel)

    # -- the connection --------------------------------------------------------------

    async def run(self) -> None:
        """Connect, listen and deliver until the backplane closes, reconnecting after a loss."""
        link = self._link
        if link.publish_command == "SPUBLISH":
            # Redis Cluster: one connection per primary, each read by its own task.
            self._shards = Shards(
                link, self._on_frame, self._subscribing, self._set_receiving, self._on_reconnect
            )
            try:
                await self._shards.run(self.channels)
            finally:
                self._shards = None
            return
        options = link.options
        backoff = Backoff(options.backoff)
        connected_before = False
        while not link.closing:
            try:
                conn = await Subscriber.open(link.client, options.timeout)
            except OUTAGE as exc:
                link.failed("redis subscriber cannot connect", exc)
                await backoff.wait()
                continue
            try:
                for stream in self.streams.values():
                    stream.syncing = True
                channels = sorted(self.channels)
                for start in range(0, len(channels), 500):
                    conn.send("SUBSCRIBE", *channels[start : start + 500])
                conn.send("PING")
                self._subscriber = conn
                first = True
                while True:
                    frame = await conn.read()
                    if first:
                        first = False
                        backoff.reset()
                        if connected_before:
                            link.stats.reconnects += 1
                            self._on_reconnect()
                        connected_before = True
                        self._set_receiving(True)
                    self._on_frame(frame)
            except OUTAGE as exc:
                link.failed("redis subscriber lost", exc)
            finally:
                self._subscriber = None
                conn.close()
            self._set_receiving(False)
            await backoff.wait()

    def ping(self) -> None:
        """Ask Redis for an answer on the subscriber (which proves it alive), if connected."""
        if self._subscriber is not None:
            self._subscriber.ping()
        elif self._shards is not None:
            self._shards.ping()

    def close(self) -> None:
        """Close the subscriber (after :meth:`run` ended)."""
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
        if self._shards is not None:
            self._shards.close()
        self._receiving = False

    def _carried(self, channel: str) -> bool:
        """Whether the connection that carries ``channel`` is up (on Redis Cluster, its shard's)."""
        if self._shards is not None:
            return self._shards.connected(channel)
        return self._subscriber is not None

    def _set_receiving(self, ok: bool) -> None:
        self._receiving = ok
        self._on_state()

    def _subscribing(self, channels: Iterable[str]) -> None:
        """A shard subscribes again to ``channels``: their streams sync once confirmed."""
        streams = self.streams
        for channel in channels:
            stream = streams.get(channel)
            if stream is not None:
                stream.syncing = True

    # -- what comes ------------------------------------------------------------------

    def _on_frame(self, frame: Any) -> None:
        if not isinstance(frame, list) or not frame:
            return
        kind = frame[0]
        # "smessage": sharded pub/sub, on Redis Cluster.
        if kind == b"message" or kind == b"smessage":
            channel = frame[1].decode()
            data: bytes = frame[2]
            newline = data.find(b"\n")
            if newline < 0:
                return
            try:
                header = json.loads(data[:newline])
            except ValueError:
                return
            self._on_message(channel, header, data[newline + 1 :].decode())
        elif kind == b"subscribe" or kind == b"ssubscribe":
            stream = self.streams.get(frame[1].decode())
            if stream is None:
                return
            stream.confirmed = True
            if self.numbered:
                stream.syncing = True
                self._request_sync(stream)
            elif not stream.ready:
                stream.established()
        elif kind == b"sunsubscribe" and self._shards is not None:
            # Asked for, or Redis moved the channel's slot elsewhere.
            self._shards.unsubscribed(frame[1].decode())

    def _on_message(self, channel: str, header: dict[str, Any], body: str) -> None:
        kind = header.get("k")
        link = self._link
        node = link.node
        assert node is not None
        if kind == "m":
            stream = self.streams.get(channel)
            if stream is None:
                client_id = link.keys.client_of(channel)
                if client_id is not None:
                    node.deliver(Target.CLIENT, client_id, body, header.get("x"))
                    link.stats.delivered += 1
                return
            if not self.numbered or "o" not in header:
                self._receive_plain(stream, header, body)
                return
            item = Item(header["e"], header["o"], header["n"], header["s"], header.get("x"), body)
            if stream.syncing:
                stream.buffer.append(item)
            elif not self._apply(stream, item):
                stream.syncing = True
                stream.buffer.append(item)
                self._request_sync(stream)
        elif kind == "p":
            if header.get("n") != link.options.node_id or header.get("swept"):
                node.presence_changed(presence_event(header))
        elif kind == "q":
            self._calls.request_received(header)
        elif kind == "r":
            self._calls.answer_received(header)

    def _receive_plain(self, stream: Stream, header: dict[str, Any], body: str) -> None:
        """Deliver a plain publish (recovery off), counting what a gap before it says was lost."""
        link = self._link
        stats = link.stats
        origin = header.get("n", "")
        seq = header.get("s", 0)
        if seq <= stream.senders.get(origin, 0):
            # Sent again after an outage, but it had arrived before.
            stats.duplicates += 1
            return
        stream.senders[origin] = seq
        node = link.node
        assert node is not None
        if origin == link.options.node_id:
            # This node's own losses are its outbox's (stats.dropped), not counted here.
            out = self._echoes.came_back(seq)
            if out is not None and out.local:
                return  # delivered during the outage already
        else:
            count = header.get("c", 0)
            if count:
                last = stream.counts.get(origin)
                stream.counts[origin] = count
                if last is not None:
                    # A number not above the last one starts a new series (the
                    # node forgot the channel's count): what is before it is lost.
                    missed = count - last - 1 if count > last else count - 1
                    if missed > 0:
                        self._lost(stream, origin, missed)
        if stream.target is Target.ROOM:
            node.deliver(Target.ROOM, stream.name, body, header.get("x"))
        else:
            node.deliver(Target.ALL, "", body, header.get("x"))
        stats.delivered += 1

    def _lost(self, stream: Stream, origin: str, missed: int) -> None:
        """Count and log ``missed`` messages of node ``origin`` to this channel, lost."""
        self._link.stats.lost += missed
        _lost_records.log(
            logger,
            logging.WARNING,
            ("plain-lost",),
            "%d message(s) of node %s to %s were lost (recovery is off: not kept in Redis)",
            missed,
            origin,
            stream.channel,
        )

    def _apply(self, stream: Stream, item: Item) -> bool:
        """Deliver ``item`` if it is the next one; ``False`` when there is a gap before it."""
        if item.epoch != stream.epoch:
            if item.offset != 1:
                return False
            if stream.epoch:
                # DEBUG: Redis restarted empty, an outage the backplane told of already.
                logger.debug("the stream of %s was reset (epoch %s)", stream.channel, item.epoch)
            stream.epoch, stream.offset = item.epoch, 0
        stats = self._link.stats
        if item.offset <= stream.offset:
            if suspect(stream, item):
                return False  # a message never had, at an offset passed: see failover
            stats.duplicates += 1
            return True
        if item.offset != stream.offset + 1:
            return False
        stream.offset = item.offset
        if item.seq <= stream.senders.get(item.origin, 0):
            # Sent again after an outage, but it had arrived before.
            stats.duplicates += 1
            return True
        stream.senders[item.origin] = item.seq
        node = self._link.node
        assert node is not None
        if item.origin == self._link.options.node_id:
            out = self._echoes.came_back(item.seq)
            if out is not None and out.local:
                # Delivered during the outage already: the hub learns its position.
                if stream.target is Target.ROOM:
                    node.advanced(stream.name, (item.epoch, item.offset))
                return True
        if stream.target is Target.ROOM:
            node.deliver(
                Target.ROOM, stream.name, item.message, item.exclude, (item.epoch, item.offset)
            )
        else:
            node.deliver(Target.ALL, "", item.message, item.exclude)
        stats.delivered += 1
        return True

    # -- catching up -----------------------------------------------------------------

    def _request_sync(self, stream: Stream) -> None:
        if stream.task is not None and not stream.task.done():
            stream.again = True
            return
        stream.task = self._link.spawn(self._sync(stream))

    async def _sync(self, stream: Stream) -> None:
        """Establish or restore this node's cursor in a stream, reading what it missed.

        The first time, the cursor starts where the stream stood when the node
        began to listen (``stream.start``); both that and the subscription are
        needed, and whichever comes last asks for the sync.
        """
        link = self._link
        client = link.client
        assert client is not None
        backoff = Backoff(link.options.backoff)
        while self.streams.get(stream.channel) is stream:
            stream.again = False
            if not stream.ready:
                if stream.start is None or not stream.confirmed:
                    return
                stream.epoch, stream.offset = stream.start
                stream.established()
            try:
                async with self._reads:
                    epoch_raw, top_raw = await client.hmget(stream.meta, ["epoch", "top"])
                    epoch = epoch_raw.decode() if epoch_raw else ""
                    top = int(top_raw or 0)
                    if epoch == stream.epoch and await diverged(client, stream, top):
                        # A failover lost messages this node had: a new epoch (see failover).
                        await fence(link, stream)
                        continue
                    start = 1 if epoch != stream.epoch else stream.offset + 1
                    entries: list[tuple[int, dict[bytes, bytes]]] = []
                    if top >= start:
                        entries = await read_stream(client, stream.stream, start)
            except OUTAGE as exc:
                link.failed(f"cannot sync {stream.channel}", exc)
                if link.closing or not self._carried(stream.channel):
                    return  # the subscription's return asks again
                # Meanwhile the live messages wait in the buffer: try again.
                await backoff.wait()
                continue
            if self.streams.get(stream.channel) is not stream:
                return
            if epoch != stream.epoch:
                if stream.epoch or stream.offset:
                    logger.debug("the stream of %s was reset (epoch %s)", stream.channel, epoch)
                stream.epoch, stream.offset = epoch, 0
            if top >= start:
                first = entries[0][0] if entries else top + 1
                if first > stream.offset + 1:
                    missed = first - stream.offset - 1
                    link.stats.lost += missed
                    # One record per room that lost some: rate-limited, there may be many rooms.
                    _lost_records.log(
                        logger,
                        logging.WARNING,
                        ("history-lost",),
                        "%d message(s) of %s are no longer in its history",
                        missed,
                        stream.channel,
                    )
                    stream.offset = first - 1
                for offset, fields in entries:
                    self._apply(stream, item_of_entry(epoch, offset, fields))
            buffered, stream.buffer = stream.buffer, []
            for index, item in enumerate(buffered):
                if item.epoch != stream.epoch and item.offset != 1:
                    continue  # from before a reset: what the stream had was read above
                if not self._apply(stream, item):
                    stream.buffer = buffered[index:]
                    stream.again = True
                    break
            if not stream.again:
                stream.syncing = False
                return

    # -- where this node stands ------------------------------------------------------

    def cursor(self, room: str) -> Position | None:
        """This node's last position in ``room`` (``None`` while it is being established)."""
        stream = self.streams.get(self._link.keys.channel(Target.ROOM, room))
        if stream is None or not stream.ready:
            return None
        return stream.epoch, stream.offset

    async def wait_cursor(self, room: str, timeout: float) -> Position:
        """Wait until the node knows its position in ``room``.

        Raises:
            HistoryError: ``"unavailable"``, when it is not known in time.
        """
        stream = self.streams.get(self._link.keys.channel(Target.ROOM, room))
        if stream is None:
            raise HistoryError("unavailable", f"not listening to room {room!r}")
        if not stream.ready:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            stream.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout)
            except (TimeoutError, asyncio.CancelledError):
                raise HistoryError("unavailable", "redis did not answer in time") from None
        return stream.epoch, stream.offset
