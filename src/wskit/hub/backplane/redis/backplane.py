"""The Redis backplane itself: its options, its lifecycle, and the backplane interface.

:class:`RedisBackplane` answers the hub (:class:`~..interface.Backplane`)
and owns the parts that do the work, each given the :class:`~.link.Link`
they share: the :class:`~.outbox.Outbox` (and its :class:`~.outbox.Echoes`),
the :class:`~.receiver.Receiver`, :class:`~.presence.Presence` and
:class:`~.calls.Calls`. It runs three loops (the outbox's, the receiver's
and the heartbeat) and says whether Redis is reachable: when either
connection is lost, what this node published and has not heard back reaches
its local clients at once. Its :class:`~.outage.Outage` tells of the
time Redis is out of reach. The theory of operation is in
:mod:`wskit.hub.backplane.redis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
import uuid
from typing import Any

from ..interface import (
    Backplane,
    BackplaneStats,
    BackplaneUnavailable,
    Entry,
    HistoryError,
    Node,
    Position,
    Target,
)
from .calls import Calls
from .connect import Connector
from .failover import Confirmations
from .link import OUTAGE, ClusterKeys, Keys, Link, logger
from .outage import Outage
from .outbox import Echoes, Outbox, Outgoing
from .presence import Presence
from .receiver import Receiver
from .streams import read_history

__all__ = ["RedisBackplane"]

# The keyword arguments a query parameter of the URL may set.
_OPTIONS = (
    "prefix",
    "heartbeat",
    "node_ttl",
    "buffer",
    "call_timeout",
    "start_timeout",
    "degraded_start",
    "wait_replicas",
    "wait_timeout",
)

# How a query parameter says yes or no.
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _option(key: str, value: str, default: Any) -> Any:
    """The value of the option ``key`` that the query parameter ``value`` sets."""
    if isinstance(default, str):
        return value
    if isinstance(default, bool):
        if value.lower() not in _BOOLEANS:
            raise ValueError(f"{key}={value!r} in a redis URL: expected 1 or 0, true or false")
        return _BOOLEANS[value.lower()]
    return type(default)(float(value))


class RedisBackplane(Backplane):
    """A backplane on Redis pub/sub and streams; see :mod:`wskit.hub.backplane.redis`.

    Args:
        url: where Redis is: ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://...`` (TLS), ``unix:///path/redis.sock``,
            ``redis+sentinel://host:port,host:port/service``,
            ``redis+cluster://host:port,host:port``, with redis-py's
            query parameters (``ssl_ca_certs``, ``protocol=3``...); or a
            :class:`redis.asyncio.Redis`, a :class:`redis.asyncio.Sentinel`
            with ``service``, or a :class:`redis.asyncio.RedisCluster`
            (:mod:`wskit.hub.backplane.redis` says what each means). Query
            parameters named like the keyword arguments below set them
            (``redis://h:6379/0?prefix=chat&heartbeat=0.5&degraded_start=1``).
        service: the name of the primary, with a :class:`redis.asyncio.Sentinel`.
        prefix: of every key and channel, so that apps can share a server.
        buffer: messages kept while Redis cannot be reached; past it the
            oldest are dropped (counted and logged).
        heartbeat: seconds between this node's liveness beats and presence sweeps.
        node_ttl: seconds after its last beat when a node counts as dead.
        call_timeout: default seconds to wait for the answers of a call.
        backoff: the first and the longest wait between reconnection attempts.
        batch: commands sent in one pipeline at most.
        timeout: seconds a Redis command may take before it counts as failed.
        start_timeout: seconds :meth:`start` waits for Redis to answer on both
            connections (trying again meanwhile, for a Redis that is starting too).
        degraded_start: what :meth:`start` does when Redis does not answer in
            time: by default it raises :class:`~wskit.hub.backplane.BackplaneUnavailable`
            (so the hub does not serve); with ``True`` it logs one WARNING and
            returns, and the hub serves its local clients until Redis comes, as
            during an outage.
        wait_replicas: with recovery on, confirm each batch of stream writes
            with ``WAIT wait_replicas wait_timeout`` (in the same round trip):
            writes that reach fewer replicas in time are counted in
            ``stats.unconfirmed``, logged, and published again after an
            outage (a failover may have lost them). ``0`` (the default): no
            ``WAIT``. Not on Redis Cluster. See
            ``wskit.hub.backplane.redis.failover``.
        wait_timeout: seconds ``WAIT`` waits for the replicas.
    """

    def __init__(
        self,
        url: str | Any = "redis://127.0.0.1:6379/0",
        *,
        service: str | None = None,
        prefix: str = "wskit",
        buffer: int = 10_000,
        heartbeat: float = 1.0,
        node_ttl: float = 5.0,
        call_timeout: float = 2.0,
        backoff: tuple[float, float] = (0.05, 2.0),
        batch: int = 256,
        timeout: float = 5.0,
        start_timeout: float = 3.0,
        degraded_start: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 0.1,
    ) -> None:
        parts = urllib.parse.urlsplit(url if isinstance(url, str) else "")
        query = urllib.parse.parse_qs(parts.query)
        options: dict[str, Any] = {
            "prefix": prefix,
            "heartbeat": heartbeat,
            "node_ttl": node_ttl,
            "buffer": buffer,
            "call_timeout": call_timeout,
            "start_timeout": start_timeout,
            "degraded_start": degraded_start,
            "wait_replicas": wait_replicas,
            "wait_timeout": wait_timeout,
        }
        for key in _OPTIONS:
            if key in query:
                options[key] = _option(key, query.pop(key)[-1], options[key])
        if isinstance(url, str):
            rest = urllib.parse.urlencode(query, doseq=True)
            url = urllib.parse.urlunsplit(parts._replace(query=rest))
        self._connector = Connector(url, service)
        #: Where Redis is, as the logs say it (passwords masked; a client object described).
        self.url = self._connector.url
        self.buffer: int = options["buffer"]
        self.heartbeat: float = options["heartbeat"]
        self.node_ttl: float = options["node_ttl"]
        self.call_timeout: float = options["call_timeout"]
        self.start_timeout: float = options["start_timeout"]
        self.degraded_start: bool = options["degraded_start"]
        self.wait_replicas: int = options["wait_replicas"]
        self.wait_timeout: float = options["wait_timeout"]
        if self.wait_replicas and self._connector.cluster:
            raise ValueError("wait_replicas: not supported on Redis Cluster")
        self.backoff = backoff
        self.batch = batch
        self.timeout = timeout
        self.node_id = uuid.uuid4().hex[:16]
        # On Redis Cluster each room's names share its slot (and SPUBLISH publishes).
        keys = (ClusterKeys if self._connector.cluster else Keys)(options["prefix"])
        self._link = link = Link(self, keys)
        self._echoes = Echoes(link)
        self._outbox = Outbox(link, self._echoes, self._state_changed)
        self._outbox.connector = self._connector
        self._outage = Outage(link, self._outbox, self.url)
        self._calls = Calls(link)
        self._presence = Presence(link, self._outbox)
        self._receiver = Receiver(
            link,
            self._outbox,
            self._echoes,
            self._calls,
            self._state_changed,
            self._reconnected,
        )
        self._live = False
        # Recovery on (the hub set history_size): the streams; off: plain publishes.
        self._numbered = False
        self._loops: list[asyncio.Task[None]] = []
        self._up: asyncio.Event | None = None

    @property
    def prefix(self) -> str:
        """The prefix of every key and channel."""
        return self._link.keys.prefix

    @prefix.setter
    def prefix(self, value: str) -> None:
        self._link.keys.prefix = value

    # -- lifecycle -------------------------------------------------------------------

    @property
    def stats(self) -> BackplaneStats:
        """Counters (see :class:`~wskit.hub.backplane.BackplaneStats`)."""
        stats = self._link.stats
        stats.buffered = len(self._outbox)
        return stats

    @property
    def connected(self) -> bool:
        """Whether both connections to Redis are up."""
        return self._live

    def attach(self, node: Node) -> None:
        """Register the hub (one per backplane)."""
        if self._link.node is not None:
            raise RuntimeError("a RedisBackplane serves one hub; make one per hub")
        self._link.node = node  # type: ignore[assignment]

    async def start(self) -> None:
        """Connect, subscribe to this node's channels, and wait for Redis (``start_timeout``).

        Raises:
            BackplaneUnavailable: Redis did not answer on both connections
                within ``start_timeout`` seconds, unless ``degraded_start``
                (then one WARNING says so, and the hub serves its local clients
                until Redis comes).
        """
        if self._loops:
            return
        link = self._link
        link.closing = False
        link.last_error = ""
        self._up = asyncio.Event()
        self._numbered = self._receiver.numbered = self.history_size > 0
        self._outbox.confirmations = None
        if self._numbered and self.wait_replicas > 0:
            self._outbox.confirmations = Confirmations(
                link, self.wait_replicas, self.wait_timeout, self.buffer
            )
        link.client = self._connector.client(self.timeout)
        self._receiver.add_channel(link.keys.key("node", self.node_id))
        self._receiver.listen(Target.ALL, "")
        self._loops = [
            asyncio.ensure_future(self._outbox.run()),
            asyncio.ensure_future(self._receiver.run()),
            asyncio.ensure_future(self._heartbeat_loop()),
        ]
        try:
            await asyncio.wait_for(self._up.wait(), self.start_timeout)
        except TimeoutError:
            if self.degraded_start:
                self._outage.begin(degraded_start=True)
                return
            # Whichever connection failed last says why; a silent Redis says nothing.
            reason = (link.last_error or "no answer").rstrip(".")
            await self._stop(retire=False)
            hint = "RedisBackplane(degraded_start=True) or ?degraded_start=1 starts without it"
            raise BackplaneUnavailable(
                self._outage.url, f"{reason} (tried for {self.start_timeout:g} s; {hint})"
            ) from None

    async def close(self) -> None:
        """Publish what waits (a few seconds at most), leave the cluster, disconnect."""
        if not self._loops:
            return
        deadline = time.monotonic() + 3.0
        while len(self._outbox) and self._outbox.sending:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        self._outage.closed()
        await self._stop(retire=True)

    async def _stop(self, retire: bool) -> None:
        """Stop the loops and disconnect (``retire``: remove this node's presence first)."""
        link = self._link
        link.closing = True
        for task in [*self._loops, *link.tasks]:
            task.cancel()
        # redis-py may swallow a cancellation; the loops also check link.closing.
        pending: list[asyncio.Future[Any]] = [*self._loops, *link.tasks]
        await asyncio.wait(pending, timeout=2.0)
        self._loops = []
        self._receiver.close()
        if link.client is not None:
            if retire:
                with contextlib.suppress(*OUTAGE):
                    await self._presence.retire(1.0)
            with contextlib.suppress(*OUTAGE):
                await self._connector.aclose(link.client)
            link.client = None
        self._outbox.stopped()
        self._live = False

    def _state_changed(self) -> None:
        """The outbox or the receiver found Redis reachable, or not: is the node live?"""
        live = self._outbox.sending and self._receiver.receiving
        if live == self._live:
            return
        self._live = live
        up = self._up
        if live:
            if self._outage.ongoing:
                self._outage.end()
            else:
                logger.info("redis backplane %s: connected to %s", self.node_id, self._outage.url)
            if up is not None:
                up.set()
            return
        self._outbox.requeue(self._outbox.with_unconfirmed(self._echoes.lost()))
        # Until start() has seen Redis, there is no outage yet: start() decides.
        if up is not None and up.is_set():
            self._outage.begin()

    def _reconnected(self) -> None:
        # Redis may have restarted empty: register this node's presence again.
        self._link.spawn(self._presence.restore())

    async def _heartbeat_loop(self) -> None:
        link = self._link
        ttl = max(1, int(self.node_ttl * 1000))
        while not link.closing:
            try:
                # With Sentinel: where the primary is now (the subscriber follows it).
                await self._connector.follow(link.client)
            except OUTAGE as exc:
                link.failed("cannot ask the sentinels", exc)
            try:
                await self._presence.beat(ttl)
            except OUTAGE as exc:
                link.failed("heartbeat failed", exc)
            # The subscriber gives up on a Redis that leaves its pings unanswered.
            self._receiver.ping()
            await asyncio.sleep(self.heartbeat)

    # -- publishing ------------------------------------------------------------------

    def subscribe(self, room: str) -> None:
        """Listen to ``room`` (it has a local member now)."""
        self._receiver.listen(Target.ROOM, room)

    def unsubscribe(self, room: str) -> None:
        """Stop listening to ``room``."""
        self._receiver.stop_listening(room)

    def client_added(self, client_id: str) -> None:
        """Listen to the channel of a new local client."""
        self._receiver.add_channel(self._link.keys.channel(Target.CLIENT, client_id))

    def client_removed(self, client_id: str) -> None:
        """Stop listening to the channel of a client that left."""
        self._receiver.remove_channel(self._link.keys.channel(Target.CLIENT, client_id))

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Publish through Redis (see the theory of operation); never blocks."""
        link = self._link
        node = link.node
        assert node is not None, "attach the backplane to a hub first"
        link.stats.sent += 1
        seq = next(self._outbox.seq)
        if target is Target.CLIENT:
            if node.is_local(name):
                node.deliver(target, name, message, exclude)
                link.stats.published += 1
                link.stats.delivered += 1
                return
            self._outbox.enqueue(Outgoing("pub", seq, target, name, message, exclude))
            return
        channel = link.keys.channel(target, name)
        name = name if target is Target.ROOM else ""
        if self._numbered:
            out = Outgoing("seq", seq, target, name, message, exclude)
        else:
            count = self._outbox.count(channel)
            out = Outgoing("pub", seq, target, name, message, exclude, count=count)
        if channel in self._receiver.streams:
            # It comes back on the channel: wait for it (or deliver it now, during an outage).
            self._echoes.track(out, self._live)
        self._outbox.enqueue(out)

    # -- recovery --------------------------------------------------------------------

    def cursor(self, room: str) -> Position | None:
        """This node's last position in ``room`` (``None`` while it is being established)."""
        return self._receiver.cursor(room)

    async def wait_cursor(self, room: str, timeout: float) -> Position:
        """Wait until the node knows its position in ``room``."""
        return await self._receiver.wait_cursor(room, timeout)

    async def history(self, room: str, since: Position) -> tuple[str, list[Entry]]:
        """The room's messages after ``since`` from its Redis stream (recovery on only).

        Only those up to this node's :meth:`cursor`: a message the stream holds
        but this node has not delivered yet will reach the recovering client
        live, after the replay.
        """
        if self.history_size <= 0:
            raise HistoryError("unsupported", "recovery is off: no stream is written")
        if self._link.client is None:
            raise HistoryError("unavailable", "not started")
        epoch, entries = await read_history(self._link.client, self._link.keys, room, since)
        # Only as far as this node delivered: what the stream holds beyond (its
        # subscriber lags) reaches the client live after the replay, not twice.
        cursor = self._receiver.cursor(room)
        if cursor is not None and cursor[0] == epoch:
            last = entries[-1].offset if entries else since[1]
            if cursor[1] > last:
                # This node delivered messages the stream lost (a failover): they
                # are not all there to replay, and their offsets go to others.
                raise HistoryError("history", f"the stream ends at {last}, before {cursor[1]}")
            if entries and last > cursor[1]:
                entries = [entry for entry in entries if entry.offset <= cursor[1]]
        return epoch, entries

    async def save_session(self, session: str, data: str, ttl: float) -> None:
        """``SET P:session:ID data PX ttl`` (then ``WAIT``, with ``wait_replicas``)."""
        client = self._link.client
        assert client is not None
        key, px = self._link.keys.key("session", session), max(1, int(ttl * 1000))
        confirmations = self._outbox.confirmations
        if confirmations is None:
            await client.set(key, data, px=px)
            return
        # Confirmed like the stream writes, so that a failover keeps the session.
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(key, data, px=px)
            confirmations.add_wait(pipe)
            await pipe.execute()

    async def load_session(self, session: str) -> str | None:
        """``GET P:session:ID``."""
        client = self._link.client
        assert client is not None
        value = await client.get(self._link.keys.key("session", session))
        return value.decode() if value is not None else None

    # -- presence and calls ----------------------------------------------------------

    def presence_add(self, room: str, client_id: str, info: dict[str, Any]) -> None:
        """Record the entry, announce the join (here at once, elsewhere through Redis)."""
        self._presence.add(room, client_id, info)

    def presence_remove(self, room: str, client_id: str) -> None:
        """Remove the entry, announce the leave."""
        self._presence.remove(room, client_id)

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room`` on the nodes that are alive."""
        return await self._presence.members(room)

    async def call(
        self, op: str, args: dict[str, Any], client_id: str | None = None, timeout: float = 2.0
    ) -> list[Any]:
        """Publish a call; collect as many answers as nodes received it, within ``timeout``."""
        return await self._calls.call(op, args, client_id, timeout)
