"""The subscriber of the Redis backplane on Redis Cluster: one connection per primary.

Theory of operation
===================

On Redis Cluster the backplane publishes with ``SPUBLISH`` (sharded
pub/sub, Redis 7): a message goes to the primary that owns its channel's
hash slot, and only to the clients subscribed there (or on its replicas),
not across the whole cluster. So the node listens with one connection per
primary that owns a slot of one of its channels (a :class:`Shard`), each
a :class:`~.subscriber.Subscriber` made with the cluster client's settings
(TLS, the ACL user, the protocol), which subscribes (``SSUBSCRIBE``) to the
channels of its slots and is read by its own task. A room's messages all come on one
connection, in the order its primary gives.

Where a channel is comes from redis-py's map of the slots (the cluster
client's, which it refreshes after an error). When the map changes (a
failover: a replica was promoted; slots moved) the node must follow:

* a connection lost (its primary died, say) ends that shard's reads: the
  node counts as not receiving (the backplane tells of an outage and
  delivers its own messages itself meanwhile), reads the map again after a
  backoff, moves each channel to the primary that owns its slot now, and
  connects again, until the map names a primary that answers;
* a ``MOVED`` answer to ``SSUBSCRIBE`` (the map was old) ends the shard's
  reads the same way;
* a primary that gave its slot away unsubscribes its clients from its
  channels (``sunsubscribe`` without being asked): the map is read again
  and the channel moved (or subscribed again where it is).

What was published while a shard was down is lost for this node: with
recovery off, the receivers count it in ``stats.lost`` (the gap in each
sender's numbers, see :mod:`~.receiver`); with recovery on, the streams
fill it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from redis.crc import key_slot

from .link import OUTAGE, Backoff, Link
from .subscriber import Subscriber

__all__ = ["Shard", "Shards"]


class Shard:
    """The channels this node listens to on one primary, and its connection there."""

    __slots__ = ("node", "channels", "conn", "task", "up", "awaited", "lost")

    def __init__(self, node: Any) -> None:
        #: The primary (a :class:`redis.asyncio.cluster.ClusterNode`).
        self.node = node
        self.channels: set[str] = set()
        #: The connection, once connected.
        self.conn: Subscriber | None = None
        self.task: asyncio.Future[None] | None = None
        #: Redis answered on the connection.
        self.up = False
        #: The node is not receiving until this shard is up (it started with
        #: the node, or lost its connection).
        self.awaited = False
        #: It was up once, and lost its connection since.
        self.lost = False


class Shards:
    """The node's sharded subscriptions: which primary each channel is on, one task each.

    Args:
        link: what the parts of the backplane share (its client is a
            :class:`redis.asyncio.RedisCluster`).
        on_frame: gets every frame read, ``[b"smessage", channel, data]``...
        on_subscribing: gets the channels about to be subscribed again.
        on_state: gets whether every shard is up (called when that changes).
        on_reconnect: called when a shard is back after a loss.
    """

    def __init__(
        self,
        link: Link,
        on_frame: Callable[[Any], None],
        on_subscribing: Callable[[Iterable[str]], None],
        on_state: Callable[[bool], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._link = link
        self._on_frame = on_frame
        self._on_subscribing = on_subscribing
        self._on_state = on_state
        self._on_reconnect = on_reconnect
        #: The shards, by the name (``host:port``) of their primary.
        self.shards: dict[str, Shard] = {}
        self._home: dict[str, Shard] = {}
        self._mapped = False
        self._receiving = False
        self._remapping: asyncio.Lock | None = None

    async def run(self, channels: Iterable[str]) -> None:
        """Read the map, listen to ``channels``; then wait until cancelled (the shards read)."""
        link = self._link
        backoff = Backoff(link.options.backoff)
        self._remapping = asyncio.Lock()
        while not link.closing:
            try:
                await link.client.initialize()
                break
            except OUTAGE as exc:
                link.failed("cannot read the map of the redis cluster", exc)
                await backoff.wait()
        self._mapped = True
        for channel in sorted(channels):
            self._assign(channel, awaited=True)
        self._update()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.close()

    def add(self, channel: str) -> None:
        """Listen to ``channel`` too, on its primary."""
        if self._mapped and channel not in self._home:
            self._assign(channel, awaited=False)

    def remove(self, channel: str) -> None:
        """Stop listening to ``channel``; a primary left with none is disconnected."""
        shard = self._home.pop(channel, None)
        if shard is None:
            return
        shard.channels.discard(channel)
        if shard.conn is not None:
            shard.conn.send("SUNSUBSCRIBE", channel)
        if not shard.channels:
            self._retire(shard)

    def connected(self, channel: str) -> bool:
        """Whether the connection that carries ``channel`` is up.

        When it is not, its return subscribes to ``channel`` again, which
        makes the channel's stream sync (see :mod:`~.receiver`).
        """
        shard = self._home.get(channel)
        return shard is not None and shard.conn is not None

    def unsubscribed(self, channel: str) -> None:
        """Redis said ``sunsubscribe``: unasked (its slot moved), the channel is moved."""
        if channel in self._home:
            self._link.spawn(self._remap(again={channel}))

    def ping(self) -> None:
        """Ping every primary (see :meth:`.Subscriber.ping`)."""
        for shard in self.shards.values():
            if shard.conn is not None:
                shard.conn.ping()

    def close(self) -> None:
        """Stop every shard's task and close its connection."""
        for shard in list(self.shards.values()):
            self._retire(shard)
        self._mapped = False
        self._home.clear()

    def _assign(self, channel: str, awaited: bool, moved: bool = False) -> None:
        node = self._link.client.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
        shard = self.shards.get(node.name)
        self._home[channel] = shard or Shard(node)
        if shard is not None:
            shard.channels.add(channel)
            if shard.conn is not None:
                shard.conn.send("SSUBSCRIBE", channel)
            return
        shard = self.shards[node.name] = self._home[channel]
        shard.channels.add(channel)
        shard.awaited = awaited
        # Moved here after a loss: its first answer is a reconnection.
        shard.lost = moved
        shard.task = self._link.spawn(self._serve(shard))

    def _retire(self, shard: Shard) -> None:
        if self.shards.get(shard.node.name) is shard:
            del self.shards[shard.node.name]
        if shard.conn is not None:
            shard.conn.close()
            shard.conn = None
        task = shard.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._update()

    def _update(self) -> None:
        shards = self.shards.values()
        receiving = self._mapped and all(shard.up or not shard.awaited for shard in shards)
        if receiving != self._receiving:
            self._receiving = receiving
            self._on_state(receiving)

    async def _serve(self, shard: Shard) -> None:
        """Connect to the shard's primary, subscribe, read; after a loss, follow the map."""
        link = self._link
        options = link.options
        backoff = Backoff(options.backoff)
        while not link.closing and self.shards.get(shard.node.name) is shard:
            node = shard.node
            try:
                conn = await Subscriber.connect(
                    node.connection_class(**node.connection_kwargs), options.timeout
                )
            except OUTAGE as exc:
                link.failed(f"redis subscriber cannot connect to {node.name}", exc)
                shard.awaited = True
                self._update()
                await backoff.wait()
                await self._remap()
                continue
            try:
                channels = sorted(shard.channels)
                self._on_subscribing(channels)
                for channel in channels:
                    # One command each: the channels of one SSUBSCRIBE share a slot.
                    conn.send("SSUBSCRIBE", channel)
                conn.send("PING")
                shard.conn = conn
                frame = await conn.read()
                backoff.reset()
                shard.up = True
                if shard.lost:
                    shard.lost = False
                    link.stats.reconnects += 1
                    self._on_reconnect()
                self._update()
                on_frame = self._on_frame
                while True:
                    on_frame(frame)
                    frame = await conn.read()
            except OUTAGE as exc:
                link.failed(f"redis subscriber lost {node.name}", exc)
            finally:
                if shard.conn is conn:
                    shard.conn = None
                conn.close()
            shard.up = False
            shard.awaited = shard.lost = True
            self._update()
            await backoff.wait()
            await self._remap()

    async def _remap(self, again: set[str] | None = None) -> None:
        """Read the map again; move the channels whose slot is elsewhere now.

        ``again``: channels Redis unsubscribed this node from, subscribed
        again where they are (a ``MOVED`` answer ends that shard's reads,
        which makes it read the map again).
        """
        link = self._link
        assert self._remapping is not None
        async with self._remapping:
            try:
                await link.client.nodes_manager.initialize()
            except OUTAGE as exc:
                link.failed("cannot read the map of the redis cluster", exc)
                return
            if not self._mapped:
                return
            get_node = link.client.nodes_manager.get_node_from_slot
            for channel, shard in list(self._home.items()):
                node = get_node(key_slot(channel.encode()))
                if node.name == shard.node.name and not (again and channel in again):
                    continue
                shard.channels.discard(channel)
                del self._home[channel]
                if shard.conn is not None and node.name != shard.node.name:
                    shard.conn.send("SUNSUBSCRIBE", channel)
                self._assign(channel, awaited=True, moved=True)
            for shard in list(self.shards.values()):
                if not shard.channels:
                    self._retire(shard)
            self._update()
