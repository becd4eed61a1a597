"""The Redis backplane: many hub processes on many machines share rooms through Redis.

``Hub(backplane="redis://127.0.0.1:6379/0")`` or
``Hub(backplane=RedisBackplane(url, prefix="chat"))``; it needs the
``redis`` package (``pip install 'wskit[redis]'``), redis-py's asyncio client.

Theory of operation
===================

Channels and keys (``P`` is the prefix, ``"wskit"`` by default):

* ``P:room:NAME``: the emits to room ``NAME`` (and its presence events).
  A node subscribes to it only while the room has local members.
* ``P:client:ID``: emits to one client, and calls for its node; each node
  subscribes to the channels of its own clients.
* ``P:all``: emits to everyone, and calls to every node.
* ``P:node:ID``: the answers to this node's calls.
* ``P:hist:NAME`` / ``P:meta:NAME`` (``P:hist-all`` / ``P:meta-all``): the
  stream of a room's messages and its epoch and last offset; ``P:session:ID``,
  ``P:presence:ROOM``, ``P:alive:NODE``, ``P:nodes``, ``P:node-rooms:NODE``.

One stream per room. An emit to a room (or to everyone) runs one Lua script
that takes the next offset of the room, appends the message to the room's
stream (``XADD``, ``MAXLEN`` bounded, the keys expiring when the room is idle)
and publishes it with its offset, atomically: every node sees a room's
messages in the same order, numbered without gaps. A node delivers a room
message to its members when it comes back on the channel, its own included,
in offset order: a message whose offset leaves a gap makes the node read the
missing ones from the stream first; one it already has is dropped. So a node
whose subscription was down (Redis restarted, the network failed) catches up
from the stream when it comes back, and the hub encodes each message once per
node. The script also remembers the last sequence number of each publishing
node per room, so a publish retried after a lost answer is not applied twice.
An emit to one client is a plain ``PUBLISH`` (written at once when the
client is local).

Outages: every command goes through one ordered outbox, at most ``buffer``
messages long. While Redis cannot be reached (either connection) the node
delivers its own room and global emits to its local clients at once, keeps
them in the outbox, and publishes them when Redis is back (then, when they
come back on the channel, it does not deliver them again: messages carry the
node id and a sequence number). Past ``buffer`` the oldest waiting message is
dropped, counted in ``stats.dropped`` and logged. Both connections come back
with exponential backoff; the subscriber subscribes again to everything and
catches up from the streams. ``stats`` counts what was sent, published,
delivered, dropped and lost (a gap the stream could not fill, logged too).

Presence: each node keeps ``P:alive:NODE`` alive (``heartbeat``, expiring
after ``node_ttl``); entries of a node whose key expired are ignored at once
and removed (with leave events) by the next sweep of any node.

Calls (``hub.cluster``): a request is published on ``P:all`` (or on the
client's channel, whose one subscriber is its node); ``PUBLISH`` says how many
nodes got it, and the caller waits for that many answers on ``P:node:ID``,
at most the timeout.

Use one Redis server (or a primary with replicas), not Redis Cluster: a
script touches keys of one room, but channels and streams are not placed by
hash slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import urllib.parse
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from .backplane import (
    Backplane,
    BackplaneStats,
    ClusterNode,
    Entry,
    HistoryError,
    Node,
    Position,
    PresenceEvent,
    Target,
    check_since,
)

__all__ = ["RedisBackplane"]

logger = logging.getLogger("wskit.hub.redis")

# Own messages echoed this many seconds before an outage are published again
# after it (see RedisBackplane._recent).
_RESEND_WINDOW = 2.0

# KEYS: meta, stream. ARGV: channel, node, seq, exclude (JSON), message, maxlen, ttl (ms), epoch.
PUBLISH_SCRIPT = """
local last = redis.call('HGET', KEYS[1], 'n:' .. ARGV[2])
if last and tonumber(last) >= tonumber(ARGV[3]) then
  return 0
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[8]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('HSET', KEYS[1], 'n:' .. ARGV[2], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[6], offset .. '-0',
  'm', ARGV[5], 'x', ARGV[4], 'n', ARGV[2], 's', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[1], '{"k":"m","e":"' .. epoch .. '","o":' .. offset ..
  ',"n":"' .. ARGV[2] .. '","s":' .. ARGV[3] .. ',"x":' .. ARGV[4] .. '}\\n' .. ARGV[5])
return offset
"""

_OUTAGE = (RedisError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError)
_OPTIONS = ("prefix", "heartbeat", "node_ttl", "buffer", "call_timeout")


class _RespError(Exception):
    """An error reply on the subscriber connection."""


class _Subscriber:
    """A bare RESP2 connection in subscribe mode (read by one task, written by any)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, host: str, port: int, username: str | None, password: str | None, timeout: float
    ) -> _Subscriber:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        conn = cls(reader, writer)
        if password:
            conn.send("AUTH", *([username] if username else []), password)
            await asyncio.wait_for(conn.read(), timeout)
        return conn

    def send(self, *args: str | bytes) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
        self.writer.write(b"".join(parts))

    async def read(self) -> Any:
        line = await self.reader.readuntil(b"\r\n")
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [await self.read() for _ in range(count)]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            return (await self.reader.readexactly(size + 2))[:-2]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            raise _RespError(rest.decode(errors="replace"))
        raise _RespError(f"unexpected reply {line[:20]!r}")

    def close(self) -> None:
        self.writer.close()


class _Out:
    """One entry of the outbox: a numbered publish, a plain publish, or commands."""

    __slots__ = (
        "op",
        "seq",
        "target",
        "name",
        "message",
        "exclude",
        "build",
        "on_result",
        "local",
        "echoed",
        "queued",
        "resend",
    )

    def __init__(
        self,
        op: str,
        seq: int = 0,
        target: Target = Target.ALL,
        name: str = "",
        message: str = "",
        exclude: str | None = None,
        build: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
    ) -> None:
        self.op = op
        self.seq = seq
        self.target = target
        self.name = name
        self.message = message
        self.exclude = exclude
        self.build = build
        self.on_result = on_result
        #: Waiting in the outbox (or in flight).
        self.queued = False
        #: Delivered to the local clients already (during an outage).
        self.local = False
        #: Came back on the channel (and was delivered from there).
        self.echoed = False
        #: Published already, and published again after an outage.
        self.resend = False


class _Item:
    """A numbered message as it arrives (live, or read from the stream)."""

    __slots__ = ("epoch", "offset", "origin", "seq", "exclude", "message")

    def __init__(
        self, epoch: str, offset: int, origin: str, seq: int, exclude: str | None, message: str
    ) -> None:
        self.epoch = epoch
        self.offset = offset
        self.origin = origin
        self.seq = seq
        self.exclude = exclude
        self.message = message


class _Stream:
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
        self.ready = False
        self.syncing = True
        self.again = False
        self.buffer: list[_Item] = []
        self.task: asyncio.Future[None] | None = None
        self.waiters: list[asyncio.Future[None]] = []


class _Call:
    __slots__ = ("expected", "answers", "done")

    def __init__(self) -> None:
        self.expected: int | None = None
        self.answers: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check(self) -> None:
        done = self.expected is not None and len(self.answers) >= self.expected
        if done and not self.done.done():
            self.done.set_result(None)


class RedisBackplane(Backplane):
    """A backplane on Redis pub/sub and streams; see the module's theory of operation.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``. Query parameters
            named like the keyword arguments below set them
            (``redis://h:6379/0?prefix=chat&heartbeat=0.5``).
        prefix: of every key and channel, so that apps can share a server.
        buffer: messages kept while Redis cannot be reached; past it the
            oldest are dropped (counted and logged).
        heartbeat: seconds between this node's liveness beats and presence sweeps.
        node_ttl: seconds after its last beat when a node counts as dead.
        call_timeout: default seconds to wait for the answers of a call.
        backoff: the first and the longest wait between reconnection attempts.
        batch: commands sent in one pipeline at most.
        timeout: seconds a Redis command may take before it counts as failed.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "wskit",
        buffer: int = 10_000,
        heartbeat: float = 1.0,
        node_ttl: float = 5.0,
        call_timeout: float = 2.0,
        backoff: tuple[float, float] = (0.05, 2.0),
        batch: int = 256,
        timeout: float = 5.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        options: dict[str, Any] = {
            "prefix": prefix,
            "heartbeat": heartbeat,
            "node_ttl": node_ttl,
            "buffer": buffer,
            "call_timeout": call_timeout,
        }
        for key in _OPTIONS:
            if key in query:
                value = query.pop(key)[-1]
                options[key] = value if key == "prefix" else type(options[key])(float(value))
        rest = urllib.parse.urlencode(query, doseq=True)
        self.url = urllib.parse.urlunsplit(parts._replace(query=rest))
        self.prefix: str = options["prefix"]
        self.buffer: int = options["buffer"]
        self.heartbeat: float = options["heartbeat"]
        self.node_ttl: float = options["node_ttl"]
        self.call_timeout: float = options["call_timeout"]
        self.backoff = backoff
        self.batch = batch
        self.timeout = timeout
        self.history_size = 1000
        self.node_id = uuid.uuid4().hex[:16]
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._username = urllib.parse.unquote(parts.username) if parts.username else None
        self._password = urllib.parse.unquote(parts.password) if parts.password else None
        self._stats = BackplaneStats()
        self._node: ClusterNode | None = None
        # redis-py's typing says "bytes | str" everywhere; this client answers bytes.
        self._redis: Any = None
        self._sha = ""
        self._seq = itertools.count(1)
        self._outbox: deque[_Out] = deque()
        self._inflight: list[_Out] = []
        self._wake: asyncio.Event | None = None
        self._own: OrderedDict[int, _Out] = OrderedDict()
        # Own messages that came back on the channel lately, with when. Redis
        # may die before writing them to the other subscribers: after an outage
        # they are published again, and the receivers drop the ones they had.
        self._recent: deque[tuple[float, _Out]] = deque(maxlen=self.buffer)
        self._streams: dict[str, _Stream] = {}
        self._channels: set[str] = set()
        self._subscriber: _Subscriber | None = None
        self._send_ok = False
        self._recv_ok = False
        self._live = False
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._up: asyncio.Event | None = None
        self._last_drop_log = 0.0
        self._closing = False

    # -- names -----------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _channel_of(self, target: Target, name: str) -> str:
        if target is Target.ROOM:
            return self._key("room", name)
        if target is Target.CLIENT:
            return self._key("client", name)
        return self._key("all")

    def _stream_of(self, target: Target, name: str) -> _Stream:
        if target is Target.ROOM:
            meta, stream = self._key("meta", name), self._key("hist", name)
        else:
            meta, stream = self._key("meta-all"), self._key("hist-all")
        return _Stream(target, name, self._channel_of(target, name), meta, stream)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def stats(self) -> BackplaneStats:
        """Counters (see :class:`~wskit.hub.backplane.BackplaneStats`)."""
        self._stats.buffered = len(self._outbox) + len(self._inflight)
        return self._stats

    @property
    def connected(self) -> bool:
        """Whether both connections to Redis are up."""
        return self._live

    def attach(self, node: Node) -> None:
        """Register the hub (one per backplane)."""
        if self._node is not None:
            raise RuntimeError("a RedisBackplane serves one hub; make one per hub")
        self._node = node  # type: ignore[assignment]

    async def start(self) -> None:
        """Connect, subscribe to this node's channels, and wait (briefly) for Redis."""
        if self._loops:
            return
        self._closing = False
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._redis = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._channels.add(self._key("node", self.node_id))
        self._listen(self._stream_of(Target.ALL, ""))
        self._loops = [
            asyncio.ensure_future(self._send_loop()),
            asyncio.ensure_future(self._receive_loop()),
            asyncio.ensure_future(self._heartbeat_loop()),
        ]
        if self._outbox:
            self._wake.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._up.wait(), min(2.0, self.timeout))

    async def close(self) -> None:
        """Publish what waits (a few seconds at most), leave the cluster, disconnect."""
        if not self._loops:
            return
        deadline = time.monotonic() + 3.0
        while (self._outbox or self._inflight) and self._send_ok:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        self._closing = True
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        # redis-py may swallow a cancellation; the loops also check _closing.
        pending: list[asyncio.Future[Any]] = [*self._loops, *self._tasks]
        await asyncio.wait(pending, timeout=2.0)
        self._loops = []
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
        if self._redis is not None:
            with contextlib.suppress(*_OUTAGE):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.delete(self._key("alive", self.node_id))
                    pipe.srem(self._key("nodes"), self.node_id)
                    await asyncio.wait_for(pipe.execute(), 1.0)
            with contextlib.suppress(*_OUTAGE):
                await self._redis.aclose()
            self._redis = None
        self._send_ok = self._recv_ok = self._live = False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("error in a redis backplane task", exc_info=task.exception())

    def _set_state(self, send: bool | None = None, receive: bool | None = None) -> None:
        if send is not None:
            self._send_ok = send
        if receive is not None:
            self._recv_ok = receive
        live = self._send_ok and self._recv_ok
        if live == self._live:
            return
        self._live = live
        if live:
            logger.info("redis backplane %s: connected", self.node_id)
            if self._up is not None:
                self._up.set()
            return
        logger.warning("redis backplane %s: redis unreachable; serving local clients", self.node_id)
        # What has not come back on the channel reaches the local clients now; what
        # Redis accepted but did not echo is sent again (it may have been lost with
        # Redis; the script and the receivers drop it if it was not).
        again = []
        for out in list(self._own.values()):
            self._deliver_early(out)
            if not out.queued and not out.echoed:
                again.append(out)
        # Echoed just before the outage: perhaps not written to every subscriber.
        horizon = time.monotonic() - _RESEND_WINDOW
        for when, out in self._recent:
            if when >= horizon and not out.queued:
                out.resend = True
                again.append(out)
        self._recent.clear()
        self._requeue(again)

    def _requeue(self, outs: list[_Out]) -> None:
        """Put entries back in the outbox, keeping it in sequence order."""
        if not outs:
            return
        for out in outs:
            out.queued = True
        merged = sorted([*outs, *self._outbox], key=lambda out: out.seq)
        self._outbox.clear()
        self._outbox.extend(merged)
        if self._wake is not None:
            self._wake.set()

    # -- publishing ------------------------------------------------------------------

    def subscribe(self, room: str) -> None:
        """Listen to ``room`` (it has a local member now)."""
        self._listen(self._stream_of(Target.ROOM, room))

    def unsubscribe(self, room: str) -> None:
        """Stop listening to ``room``."""
        channel = self._channel_of(Target.ROOM, room)
        stream = self._streams.pop(channel, None)
        if stream is not None:
            for waiter in stream.waiters:
                if not waiter.done():
                    waiter.cancel()
        self._unlisten(channel)

    def _listen(self, stream: _Stream) -> None:
        self._streams[stream.channel] = stream
        self._channels.add(stream.channel)
        if self._subscriber is not None:
            self._subscriber.send("SUBSCRIBE", stream.channel)

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

        self._enqueue(_Out("cmd", next(self._seq), build=build, on_result=started))

    def _unlisten(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._subscriber is not None:
            self._subscriber.send("UNSUBSCRIBE", channel)

    def client_added(self, client_id: str) -> None:
        """Listen to the channel of a new local client."""
        channel = self._channel_of(Target.CLIENT, client_id)
        self._channels.add(channel)
        if self._subscriber is not None:
            self._subscriber.send("SUBSCRIBE", channel)

    def client_removed(self, client_id: str) -> None:
        """Stop listening to the channel of a client that left."""
        self._unlisten(self._channel_of(Target.CLIENT, client_id))

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Publish through Redis (see the theory of operation); never blocks."""
        node = self._node
        assert node is not None, "attach the backplane to a hub first"
        self._stats.sent += 1
        seq = next(self._seq)
        if target is Target.CLIENT:
            if node.is_local(name):
                node.deliver(target, name, message, exclude)
                self._stats.published += 1
                self._stats.delivered += 1
                return
            self._enqueue(_Out("pub", seq, target, name, message, exclude))
            return
        out = _Out("seq", seq, target, name if target is Target.ROOM else "", message, exclude)
        if self._channel_of(target, name) in self._streams:
            self._own[seq] = out
            if len(self._own) > 4 * self.buffer:
                self._own.popitem(last=False)
            if not self._live:
                self._deliver_early(out)
        self._enqueue(out)

    def _deliver_early(self, out: _Out) -> None:
        if out.op != "seq" or out.local or out.echoed or out.seq not in self._own:
            return
        out.local = True
        assert self._node is not None
        self._node.deliver(out.target, out.name, out.message, out.exclude)
        self._stats.delivered += 1

    def _enqueue(self, out: _Out) -> None:
        if len(self._outbox) >= self.buffer:
            old = self._outbox.popleft()
            old.queued = False
            if old.op == "cmd":
                logger.warning("redis backplane: outage buffer full; a presence update is lost")
            else:
                self._stats.dropped += 1
                self._own.pop(old.seq, None)
                now = time.monotonic()
                if now - self._last_drop_log > 1.0:
                    self._last_drop_log = now
                    logger.warning(
                        "redis backplane: outage buffer full (%d); dropped %d message(s) so far",
                        self.buffer,
                        self._stats.dropped,
                    )
        out.queued = True
        self._outbox.append(out)
        if self._wake is not None:
            self._wake.set()

    def _command(self, build: Callable[[Any], None]) -> None:
        self._enqueue(_Out("cmd", next(self._seq), build=build))

    async def _send_loop(self) -> None:
        delay = self.backoff[0]
        assert self._wake is not None
        while not self._closing:
            if not self._outbox:
                self._wake.clear()
                if not self._send_ok:
                    await self._probe()
                else:
                    await self._wake.wait()
                    continue
            if not self._outbox:
                if self._send_ok:
                    delay = self.backoff[0]
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            batch = [self._outbox.popleft() for _ in range(min(self.batch, len(self._outbox)))]
            self._inflight = batch
            try:
                results = await self._execute(batch)
            except _OUTAGE as exc:
                logger.debug("redis publish failed: %r", exc)
                self._sha = ""
                self._inflight = []
                self._requeue(batch)
                self._set_state(send=False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            self._inflight = []
            delay = self.backoff[0]
            for out, result in zip(batch, results, strict=True):
                out.queued = False
                if out.op == "cmd":
                    if out.on_result is not None and not isinstance(result, Exception):
                        out.on_result(result)
                    continue
                if isinstance(result, Exception):
                    self._stats.dropped += 1
                    logger.error("redis backplane: a message was refused: %s", result)
                    continue
                if not out.resend:
                    self._stats.published += 1
            self._set_state(send=True)

    async def _probe(self) -> None:
        assert self._redis is not None
        try:
            await self._redis.ping()
        except _OUTAGE:
            return
        self._sha = ""
        self._set_state(send=True)

    async def _execute(self, batch: list[_Out]) -> list[Any]:
        """Send a batch in one pipeline; one result per entry (the first of its commands)."""
        assert self._redis is not None
        if not self._sha:
            self._sha = await self._redis.script_load(PUBLISH_SCRIPT)
        results = await self._pipeline(batch)
        again = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if again:
            # Redis restarted since the script was loaded: load it, send those again.
            self._sha = await self._redis.script_load(PUBLISH_SCRIPT)
            retried = await self._pipeline([batch[i] for i in again])
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[_Out]) -> list[Any]:
        assert self._redis is not None
        maxlen = str(max(1, self.history_size))
        ttl = str(int(max(self.history_ttl, 1.0) * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            spans = []
            for out in batch:
                before = len(pipe.command_stack)
                if out.op == "seq":
                    stream = self._stream_of(out.target, out.name)
                    pipe.evalsha(
                        self._sha,
                        2,
                        stream.meta,
                        stream.stream,
                        stream.channel,
                        self.node_id,
                        str(out.seq),
                        json.dumps(out.exclude),
                        out.message,
                        maxlen,
                        ttl,
                        uuid.uuid4().hex[:12],
                    )
                elif out.op == "pub":
                    header = json.dumps(
                        {"k": "m", "n": self.node_id, "s": out.seq, "x": out.exclude},
                        separators=(",", ":"),
                    )
                    pipe.publish(self._channel_of(out.target, out.name), f"{header}\n{out.message}")
                else:
                    assert out.build is not None
                    out.build(pipe)
                spans.append((before, len(pipe.command_stack)))
            raw = await pipe.execute(raise_on_error=False)
        return [raw[start] if end > start else None for start, end in spans]

    # -- receiving -------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        delay = self.backoff[0]
        connected_before = False
        while not self._closing:
            try:
                conn = await _Subscriber.open(
                    self._host, self._port, self._username, self._password, self.timeout
                )
            except (TimeoutError, OSError, _RespError) as exc:
                logger.debug("redis subscriber cannot connect: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            try:
                for stream in self._streams.values():
                    stream.syncing = True
                channels = sorted(self._channels)
                for start in range(0, len(channels), 500):
                    conn.send("SUBSCRIBE", *channels[start : start + 500])
                conn.send("PING")
                self._subscriber = conn
                first = True
                while True:
                    frame = await asyncio.wait_for(conn.read(), self.heartbeat * 3 + 1)
                    if first:
                        first = False
                        delay = self.backoff[0]
                        if connected_before:
                            self._stats.reconnects += 1
                            self._spawn(self._restore_presence())
                        connected_before = True
                        self._set_state(receive=True)
                    self._on_frame(frame)
            except (*_OUTAGE, _RespError) as exc:
                logger.debug("redis subscriber lost: %r", exc)
            finally:
                self._subscriber = None
                conn.close()
            self._set_state(receive=False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def _on_frame(self, frame: Any) -> None:
        if not isinstance(frame, list) or not frame:
            return
        kind = frame[0]
        if kind == b"message":
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
        elif kind == b"subscribe":
            stream = self._streams.get(frame[1].decode())
            if stream is not None:
                stream.confirmed = True
                stream.syncing = True
                self._request_sync(stream)

    def _on_message(self, channel: str, header: dict[str, Any], body: str) -> None:
        kind = header.get("k")
        node = self._node
        assert node is not None
        if kind == "m":
            stream = self._streams.get(channel)
            if stream is None:
                client_channel = self._key("client", "")
                if channel.startswith(client_channel):
                    client_id = channel[len(client_channel) :]
                    node.deliver(Target.CLIENT, client_id, body, header.get("x"))
                    self._stats.delivered += 1
                return
            item = _Item(header["e"], header["o"], header["n"], header["s"], header.get("x"), body)
            if stream.syncing:
                stream.buffer.append(item)
            elif not self._apply(stream, item):
                stream.syncing = True
                stream.buffer.append(item)
                self._request_sync(stream)
        elif kind == "p":
            if header.get("n") != self.node_id or header.get("swept"):
                node.presence_changed(
                    PresenceEvent(
                        header["e"], header["r"], header["c"], header["n"], header.get("i") or {}
                    )
                )
        elif kind == "q":
            self._spawn(self._answer(header))
        elif kind == "r":
            call = self._calls.get(header.get("id", ""))
            if call is not None:
                if "err" not in header:
                    call.answers.append(header.get("d"))
                else:
                    call.answers.append(None)
                call.check()

    def _apply(self, stream: _Stream, item: _Item) -> bool:
        """Deliver ``item`` if it is the next one; ``False`` when there is a gap before it."""
        if item.epoch != stream.epoch:
            if item.offset != 1:
                return False
            if stream.epoch:
                logger.warning("the stream of %s was reset (epoch %s)", stream.channel, item.epoch)
            stream.epoch, stream.offset = item.epoch, 0
        if item.offset <= stream.offset:
            self._stats.duplicates += 1
            return True
        if item.offset != stream.offset + 1:
            return False
        stream.offset = item.offset
        if item.seq <= stream.senders.get(item.origin, 0):
            # Sent again after an outage, but it had arrived before.
            self._stats.duplicates += 1
            return True
        stream.senders[item.origin] = item.seq
        node = self._node
        assert node is not None
        if item.origin == self.node_id:
            out = self._own.pop(item.seq, None)
            if out is not None:
                self._recent.append((time.monotonic(), out))
                if out.local:
                    if stream.target is Target.ROOM:
                        node.advanced(stream.name, (item.epoch, item.offset))
                    return True
                out.echoed = True
        if stream.target is Target.ROOM:
            node.deliver(
                Target.ROOM, stream.name, item.message, item.exclude, (item.epoch, item.offset)
            )
        else:
            node.deliver(Target.ALL, "", item.message, item.exclude)
        self._stats.delivered += 1
        return True

    def _request_sync(self, stream: _Stream) -> None:
        if stream.task is not None and not stream.task.done():
            stream.again = True
            return
        stream.task = asyncio.ensure_future(self._sync(stream))
        self._tasks.add(stream.task)
        stream.task.add_done_callback(self._task_done)

    async def _sync(self, stream: _Stream) -> None:
        """Establish or restore this node's cursor in a stream, reading what it missed.

        The first time, the cursor starts where the stream stood when the node
        began to listen (``stream.start``); both that and the subscription are
        needed, and whichever comes last asks for the sync.
        """
        assert self._redis is not None
        delay = self.backoff[0]
        while self._streams.get(stream.channel) is stream:
            stream.again = False
            if not stream.ready:
                if stream.start is None or not stream.confirmed:
                    return
                stream.epoch, stream.offset = stream.start
                stream.ready = True
                for waiter in stream.waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                stream.waiters.clear()
            try:
                epoch_raw, top_raw = await self._redis.hmget(stream.meta, ["epoch", "top"])
                epoch = epoch_raw.decode() if epoch_raw else ""
                top = int(top_raw or 0)
                start = 1 if epoch != stream.epoch else stream.offset + 1
                entries: list[tuple[int, dict[bytes, bytes]]] = []
                if top >= start:
                    entries = await self._read_stream(stream.stream, start)
            except _OUTAGE as exc:
                logger.debug("cannot sync %s: %r", stream.channel, exc)
                if self._subscriber is None or self._closing:
                    return  # the subscriber's reconnection asks again
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if self._streams.get(stream.channel) is not stream:
                return
            if epoch != stream.epoch:
                if stream.epoch or stream.offset:
                    logger.warning("the stream of %s was reset (epoch %s)", stream.channel, epoch)
                stream.epoch, stream.offset = epoch, 0
            if top >= start:
                first = entries[0][0] if entries else top + 1
                if first > stream.offset + 1:
                    missed = first - stream.offset - 1
                    self._stats.lost += missed
                    logger.warning(
                        "%d message(s) of %s are no longer in its history", missed, stream.channel
                    )
                    stream.offset = first - 1
                for offset, fields in entries:
                    self._apply(stream, self._entry_item(epoch, offset, fields))
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

    @staticmethod
    def _entry_item(epoch: str, offset: int, fields: dict[bytes, bytes]) -> _Item:
        exclude = json.loads(fields.get(b"x", b"null"))
        return _Item(
            epoch,
            offset,
            fields.get(b"n", b"").decode(),
            int(fields.get(b"s", b"0")),
            exclude,
            fields.get(b"m", b"").decode(),
        )

    async def _read_stream(self, key: str, start: int) -> list[tuple[int, dict[bytes, bytes]]]:
        assert self._redis is not None
        entries: list[tuple[int, dict[bytes, bytes]]] = []
        while True:
            chunk = await self._redis.xrange(key, min=f"{start}-0", max="+", count=1000)
            for entry_id, fields in chunk:
                entries.append((int(entry_id.split(b"-")[0]), fields))
            if len(chunk) < 1000:
                return entries
            start = entries[-1][0] + 1

    # -- recovery --------------------------------------------------------------------

    def cursor(self, room: str) -> Position | None:
        """This node's last position in ``room`` (``None`` while it is being established)."""
        stream = self._streams.get(self._channel_of(Target.ROOM, room))
        if stream is None or not stream.ready:
            return None
        return stream.epoch, stream.offset

    async def wait_cursor(self, room: str, timeout: float) -> Position:
        """Wait until the node knows its position in ``room``."""
        stream = self._streams.get(self._channel_of(Target.ROOM, room))
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

    async def history(self, room: str, since: Position) -> tuple[str, list[Entry]]:
        """The room's messages after ``since`` from its Redis stream."""
        if self._redis is None:
            raise HistoryError("unavailable", "not started")
        stream = self._stream_of(Target.ROOM, room)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hmget(stream.meta, ["epoch", "top"])
                pipe.xrange(stream.stream, min="-", max="+", count=1)
                (epoch_raw, top_raw), oldest = await pipe.execute()
            epoch = epoch_raw.decode() if epoch_raw else ""
            first = int(oldest[0][0].split(b"-")[0]) if oldest else None
            start = check_since(since, epoch, int(top_raw or 0), first)
            if start == 0:
                return epoch, []
            raw = await self._read_stream(stream.stream, start)
        except _OUTAGE as exc:
            raise HistoryError("unavailable", str(exc)) from exc
        if not raw or raw[0][0] != start:
            raise HistoryError("history", f"offset {start} is no longer kept")
        entries = []
        for offset, fields in raw:
            item = self._entry_item(epoch, offset, fields)
            entries.append(Entry(offset, item.message, item.exclude))
        return epoch, entries

    async def save_session(self, session: str, data: str, ttl: float) -> None:
        """``SET P:session:ID data PX ttl``."""
        assert self._redis is not None
        await self._redis.set(self._key("session", session), data, px=max(1, int(ttl * 1000)))

    async def load_session(self, session: str) -> str | None:
        """``GET P:session:ID``."""
        assert self._redis is not None
        value = await self._redis.get(self._key("session", session))
        return value.decode() if value is not None else None

    # -- presence --------------------------------------------------------------------

    def _presence_header(
        self, kind: str, room: str, client_id: str, node: str, **extra: Any
    ) -> str:
        header = {"k": "p", "e": kind, "r": room, "c": client_id, "n": node, **extra}
        return json.dumps(header, separators=(",", ":")) + "\n"

    def presence_add(self, room: str, client_id: str, info: dict[str, Any]) -> None:
        """Record the entry, announce the join (here at once, elsewhere through Redis)."""
        assert self._node is not None
        self._node.presence_changed(PresenceEvent("join", room, client_id, self.node_id, info))
        entry = json.dumps({**info, "node": self.node_id})
        event = self._presence_header("join", room, client_id, self.node_id, i=info)

        def build(pipe: Any) -> None:
            pipe.hset(self._key("presence", room), client_id, entry)
            pipe.sadd(self._key("node-rooms", self.node_id), room)
            pipe.publish(self._channel_of(Target.ROOM, room), event)

        self._command(build)

    def presence_remove(self, room: str, client_id: str) -> None:
        """Remove the entry, announce the leave."""
        assert self._node is not None
        self._node.presence_changed(PresenceEvent("leave", room, client_id, self.node_id))
        event = self._presence_header("leave", room, client_id, self.node_id)

        def build(pipe: Any) -> None:
            pipe.hdel(self._key("presence", room), client_id)
            pipe.publish(self._channel_of(Target.ROOM, room), event)

        self._command(build)

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room`` on the nodes that are alive."""
        assert self._redis is not None
        raw = await self._redis.hgetall(self._key("presence", room))
        entries = {key.decode(): json.loads(value) for key, value in raw.items()}
        nodes = sorted({entry.get("node", "") for entry in entries.values()})
        if not nodes:
            return {}
        alive = await self._redis.mget([self._key("alive", node) for node in nodes])
        dead = {node for node, beat in zip(nodes, alive, strict=True) if beat is None}
        return {key: entry for key, entry in entries.items() if entry.get("node") not in dead}

    async def _restore_presence(self) -> None:
        """After a reconnection (Redis may have restarted empty): register again."""
        assert self._node is not None and self._redis is not None
        entries = self._node.presence_entries()
        if not entries:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for room, client_id, info in entries:
                    entry = json.dumps({**info, "node": self.node_id})
                    pipe.hset(self._key("presence", room), client_id, entry)
                    pipe.sadd(self._key("node-rooms", self.node_id), room)
                await pipe.execute()
        except _OUTAGE as exc:
            logger.debug("cannot restore presence: %r", exc)

    async def _heartbeat_loop(self) -> None:
        ttl = max(1, int(self.node_ttl * 1000))
        while not self._closing:
            try:
                await self._beat(ttl)
            except _OUTAGE as exc:
                logger.debug("heartbeat failed: %r", exc)
            if self._subscriber is not None:
                self._subscriber.send("PING")
            await asyncio.sleep(self.heartbeat)

    async def _beat(self, ttl: int) -> None:
        assert self._redis is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("alive", self.node_id), "1", px=ttl)
            pipe.sadd(self._key("nodes"), self.node_id)
            pipe.smembers(self._key("nodes"))
            _, _, members = await pipe.execute()
        nodes = sorted(member.decode() for member in members)
        alive = await self._redis.mget([self._key("alive", node) for node in nodes])
        for node, beat in zip(nodes, alive, strict=True):
            if beat is None:
                await self._sweep(node, ttl)

    async def _sweep(self, dead: str, ttl: int) -> None:
        """Remove a dead node's presence entries (one node does it), announcing the leaves."""
        assert self._redis is not None
        if not await self._redis.set(self._key("sweep", dead), self.node_id, nx=True, px=ttl):
            return
        rooms = await self._redis.smembers(self._key("node-rooms", dead))
        for raw_room in rooms:
            room = raw_room.decode()
            key = self._key("presence", room)
            entries = await self._redis.hgetall(key)
            gone = [
                client.decode()
                for client, value in entries.items()
                if json.loads(value).get("node") == dead
            ]
            if not gone:
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hdel(key, *gone)
                for client_id in gone:
                    event = self._presence_header("leave", room, client_id, dead, swept=True)
                    pipe.publish(self._channel_of(Target.ROOM, room), event)
                await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._key("node-rooms", dead))
            pipe.srem(self._key("nodes"), dead)
            await pipe.execute()
        logger.info("node %s is gone; its presence entries were removed", dead)

    # -- calls -----------------------------------------------------------------------

    async def call(
        self, op: str, args: dict[str, Any], client_id: str | None = None, timeout: float = 2.0
    ) -> list[Any]:
        """Publish a call; collect as many answers as nodes received it, within ``timeout``."""
        if self._redis is None:
            return []
        call_id = uuid.uuid4().hex
        call = self._calls[call_id] = _Call()
        header = {"k": "q", "id": call_id, "n": self.node_id, "op": op, "a": args}
        if client_id is None:
            channel = self._channel_of(Target.ALL, "")
        else:
            channel = self._channel_of(Target.CLIENT, client_id)
        try:
            receivers = await self._redis.publish(channel, json.dumps(header) + "\n")
            call.expected = int(receivers)
            call.check()
            if receivers:
                await asyncio.wait_for(asyncio.shield(call.done), timeout)
        except TimeoutError:
            logger.info("call %s: %d of %s node(s) answered", op, len(call.answers), call.expected)
        finally:
            del self._calls[call_id]
        return call.answers

    async def _answer(self, header: dict[str, Any]) -> None:
        assert self._node is not None and self._redis is not None
        reply: dict[str, Any] = {"k": "r", "id": header.get("id"), "n": self.node_id}
        try:
            reply["d"] = await self._node.handle_call(str(header.get("op")), header.get("a") or {})
        except Exception as exc:
            reply["err"] = str(exc)
        with contextlib.suppress(*_OUTAGE):
            await self._redis.publish(
                self._key("node", str(header.get("n"))), json.dumps(reply) + "\n"
            )
