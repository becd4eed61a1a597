"""The sending side of the Redis backplane: one ordered outbox, and the echoes it waits for.

Theory of operation
===================

Every command this node sends to Redis for the hub is an :class:`Outgoing`
entry of one :class:`Outbox`, in the order it was made: a numbered publish
(a room's or the global channel's with recovery on, through the Lua script
``publish.lua``), a plain publish (to one client, or to a room or the
global channel with recovery off: one ``PUBLISH``, ``SPUBLISH`` on Redis
Cluster, that leaves nothing in Redis, the message counted per channel by
this node so that the receivers see what they missed, see
:mod:`~.receiver`), or commands built by another part
(presence updates, the read of where a stream stands when the node starts
listening to it, which must come in order with the node's publishes). One
task, :meth:`Outbox.run`, sends the entries in batches, one pipeline per
batch. When a batch fails (Redis cannot be reached), its entries go back to
the front of the outbox, in sequence order, and the loop tries again after
a backoff; meanwhile the outbox grows up to ``buffer`` entries, then drops
the oldest (counted in ``stats.dropped``; the record that says the outage
ended gives the counts, see :mod:`~.outage`).

A numbered message this node publishes to a channel it listens to comes
back to it on that channel (its echo), and is delivered to the local
clients from there, in the stream's order. :class:`Echoes` keeps these
messages until then, for the time Redis cannot be reached: they reach the
local clients at once (and are not delivered again when they come back),
and those Redis may have lost are published again (the script and the
receivers drop the ones they already had).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from importlib import resources
from typing import Any

from redis.exceptions import (
    AskError,
    ClusterError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..interface import Target
from .connect import Connector
from .failover import Confirmations
from .link import OUTAGE, Backoff, Link, logger

__all__ = ["PUBLISH_SCRIPT", "Echoes", "Outbox", "Outgoing", "plain_header", "publish_script"]

#: The Lua script of a numbered publish (``publish.lua``, next to this module).
PUBLISH_SCRIPT = (resources.files(__package__ or "") / "publish.lua").read_text(encoding="utf-8")


def publish_script(command: str) -> str:
    """:data:`PUBLISH_SCRIPT` publishing with ``command`` (``SPUBLISH`` on Redis Cluster).

    On Redis Cluster the room's channel is in the slot of its keys (see
    :class:`~.link.ClusterKeys`), so the script stays within one slot.
    """
    return PUBLISH_SCRIPT.replace("redis.call('PUBLISH'", f"redis.call('{command}'")


# The errors of one command of a pipeline that say its Redis was out of reach, not
# that it refused the command: on Redis Cluster one primary may fail (or move a
# slot, or be down while its replica takes over) while the others answer.
_UNREACHED = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    TryAgainError,
    AskError,
    RedisClusterException,
)

# Own messages echoed this many seconds before an outage are published again
# after it (see Echoes.lost).
_RESEND_WINDOW = 2.0

# Channels whose count a node keeps at most; past it the oldest half is
# forgotten, and those channels count from 1 again (which receivers take
# for a new series, not a loss).
_MAX_COUNTED = 65_536


def plain_header(node_id: str, seq: int, count: int, exclude: str | None) -> str:
    """The header line of a plain publish, which the receiver reads (see :mod:`~.receiver`).

    ``{"k":"m","n":NODE,"s":SEQ,"c":COUNT,"x":EXCLUDE}``: the publishing
    node, its sequence number, the message's number in its channel from
    this node (``0``: not counted, a message to one client) and the client
    it must not reach.
    """
    excluded = "null" if exclude is None else json.dumps(exclude)
    return f'{{"k":"m","n":"{node_id}","s":{seq},"c":{count},"x":{excluded}}}'


class Outgoing:
    """One entry of the outbox: a numbered publish, a plain publish, or commands.

    ``op`` is ``"seq"`` (numbered: a room's or the global channel's message,
    with recovery on), ``"pub"`` (a plain publish: to a client's channel, or
    with recovery off to a room's or the global one) or ``"cmd"`` (``build``
    adds commands to the pipeline; ``on_result`` gets the reply to the first).
    ``seq`` orders the entries, and numbers this node's messages; ``count``
    numbers a plain publish in its channel (``0``: not counted).
    """

    __slots__ = (
        "op",
        "seq",
        "count",
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
        count: int = 0,
    ) -> None:
        self.op = op
        self.seq = seq
        self.count = count
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


class Echoes:
    """This node's numbered messages, from their publish until they come back on their channel.

    Only the messages to a channel this node listens to come back; the
    backplane tracks those (:meth:`track`) and the receiver reports them
    back (:meth:`came_back`).
    """

    def __init__(self, link: Link) -> None:
        self._link = link
        #: The messages on their way, by sequence number, oldest first.
        self.waiting: OrderedDict[int, Outgoing] = OrderedDict()
        # Own messages that came back on the channel lately, with when. Redis
        # may die before writing them to the other subscribers: after an outage
        # they are published again, and the receivers drop the ones they had.
        self._recent: deque[tuple[float, Outgoing]] = deque(maxlen=link.options.buffer)

    def track(self, out: Outgoing, live: bool) -> None:
        """Wait for ``out`` to come back; while Redis is not ``live``, deliver it here now."""
        self.waiting[out.seq] = out
        if len(self.waiting) > 4 * self._link.options.buffer:
            self.waiting.popitem(last=False)
        if not live:
            self.deliver_early(out)

    def forget(self, seq: int) -> None:
        """The message ``seq`` will not come back (the outbox dropped it)."""
        self.waiting.pop(seq, None)

    def came_back(self, seq: int) -> Outgoing | None:
        """This node's message ``seq`` came back: the entry it was, if it waited for it.

        Unless it reached the local clients already (``local``), it is marked
        ``echoed``: its delivery is the receiver's, from the channel.
        """
        out = self.waiting.pop(seq, None)
        if out is not None:
            self._recent.append((time.monotonic(), out))
            if not out.local:
                out.echoed = True
        return out

    def deliver_early(self, out: Outgoing) -> None:
        """Deliver ``out`` to the local clients now, unless it was already, or came back."""
        if out.local or out.echoed or out.seq not in self.waiting:
            return
        out.local = True
        node = self._link.node
        assert node is not None
        node.deliver(out.target, out.name, out.message, out.exclude)
        self._link.stats.delivered += 1

    def lost(self) -> list[Outgoing]:
        """Redis went away: deliver what waits here now; what to publish again when it is back.

        What has not come back reaches the local clients now; what Redis
        accepted but did not echo is sent again (it may have been lost with
        Redis; the script and the receivers drop it if it was not), and so is
        what came back just before the outage (perhaps not written to every
        subscriber).
        """
        again = []
        for out in list(self.waiting.values()):
            self.deliver_early(out)
            if not out.queued and not out.echoed:
                again.append(out)
        horizon = time.monotonic() - _RESEND_WINDOW
        for when, out in self._recent:
            if when >= horizon and not out.queued:
                out.resend = True
                again.append(out)
        self._recent.clear()
        return again


class Outbox:
    """The ordered queue of everything this node sends to Redis, and the loop that sends it.

    Args:
        link: what the parts of the backplane share.
        echoes: told when a message it waits for is dropped.
        on_state: called when :attr:`sending` may have changed.
    """

    def __init__(self, link: Link, echoes: Echoes, on_state: Callable[[], None]) -> None:
        self._link = link
        self._echoes = echoes
        self._on_state = on_state
        #: Numbers the entries, in the order they are made.
        self.seq = itertools.count(1)
        #: The last number of this node's plain publishes, by channel (see :meth:`count`).
        self.counts: dict[str, int] = {}
        self._queue: deque[Outgoing] = deque()
        self._inflight: list[Outgoing] = []
        self._wake: asyncio.Event | None = None
        self._sha = ""
        self._sending = False
        self._last_drop_log = 0.0
        #: Entries added since the outbox was made (:meth:`enqueue`), and of them commands.
        self.added = 0
        self.commands = 0
        #: The ``WAIT`` after each batch of stream writes (``wait_replicas``; see
        #: :mod:`~.failover`), set by the backplane when it starts.
        self.confirmations: Confirmations[Outgoing] | None = None
        #: Where the primary's generation is known (with Sentinel, its config epoch
        #: + 1; else 0), which the script compares with the room's last write (see
        #: :mod:`~.failover`); the backplane sets it.
        self.connector: Connector | None = None

    def __len__(self) -> int:
        """How many entries wait (in the outbox, or sent and not answered yet)."""
        return len(self._queue) + len(self._inflight)

    @property
    def messages_added(self) -> int:
        """Messages (not commands) added since the outbox was made."""
        return self.added - self.commands

    def messages_waiting(self) -> int:
        """Messages (not commands) in the outbox, or sent and not answered yet."""
        return sum(out.op != "cmd" for queue in (self._queue, self._inflight) for out in queue)

    def enqueue(self, out: Outgoing) -> None:
        """Add ``out`` at the end; past ``buffer`` entries, the oldest is dropped."""
        self.added += 1
        if len(self._queue) >= self._link.options.buffer:
            old = self._queue.popleft()
            old.queued = False
            # DEBUG only: the record that ends the outage counts what was dropped.
            if old.op == "cmd":
                logger.debug("redis backplane: outage buffer full; a presence update is lost")
            else:
                stats = self._link.stats
                stats.dropped += 1
                self._echoes.forget(old.seq)
                now = time.monotonic()
                if now - self._last_drop_log > 1.0:
                    self._last_drop_log = now
                    logger.debug(
                        "redis backplane: outage buffer full (%d); dropped %d message(s) so far",
                        self._link.options.buffer,
                        stats.dropped,
                    )
        out.queued = True
        self._queue.append(out)
        if self._wake is not None:
            self._wake.set()

    def command(
        self, build: Callable[[Any], None], on_result: Callable[[Any], None] | None = None
    ) -> None:
        """Send the commands ``build`` adds to a pipeline, in order with the rest.

        ``on_result`` gets the reply to the first of them, unless it failed.
        """
        self.commands += 1
        self.enqueue(Outgoing("cmd", next(self.seq), build=build, on_result=on_result))

    def count(self, channel: str) -> int:
        """The number of this node's next plain publish to ``channel`` (1, 2, 3...).

        The receivers see a gap in these numbers as messages lost. Past
        ``_MAX_COUNTED`` channels the oldest half is forgotten: their next
        message is number 1 again, which receivers take for a new series.
        """
        counts = self.counts
        count = counts.get(channel, 0) + 1
        if count == 1 and len(counts) >= _MAX_COUNTED:
            for old in list(itertools.islice(counts, _MAX_COUNTED // 2)):
                del counts[old]
        counts[channel] = count
        return count

    def with_unconfirmed(self, again: list[Outgoing]) -> list[Outgoing]:
        """``again``, and the messages ``WAIT`` did not confirm: to publish again after an outage.

        Redis may have lost them (a failover): the next primary's script
        appends those it lacks, and drops the others (see :mod:`~.failover`).
        """
        if self.confirmations is None:
            return again
        known = {id(out) for out in again}
        for out in self.confirmations.take():
            if not out.queued and id(out) not in known:
                out.resend = True
                again.append(out)
        return again

    def requeue(self, outs: list[Outgoing]) -> None:
        """Put entries back in the outbox, keeping it in sequence order."""
        if not outs:
            return
        for out in outs:
            out.queued = True
        merged = sorted([*outs, *self._queue], key=lambda out: out.seq)
        self._queue.clear()
        self._queue.extend(merged)
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Send what the outbox holds, batch after batch, until the backplane closes."""
        link = self._link
        self._wake = wake = asyncio.Event()
        backoff = Backoff(link.options.backoff)
        while not link.closing:
            if not self._queue:
                wake.clear()
                if not self._sending:
                    await self._probe()
                else:
                    await wake.wait()
                    continue
            if not self._queue:
                if self._sending:
                    backoff.reset()
                    continue
                await backoff.wait()
                continue
            count = min(link.options.batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._inflight = batch
            try:
                results = await self._execute(batch)
            except OUTAGE as exc:
                link.failed("redis publish failed", exc)
                self._sha = ""
                self._inflight = []
                self.requeue(batch)
                self._set_sending(False)
                await backoff.wait()
                continue
            self._inflight = []
            # On Redis Cluster: the entries whose primary failed are sent again.
            unreached = []
            for out, result in zip(batch, results, strict=True):
                if out.op == "cmd":
                    if isinstance(result, _UNREACHED):
                        unreached.append(out)
                        continue
                    out.queued = False
                    if out.on_result is not None and not isinstance(result, Exception):
                        out.on_result(result)
                    continue
                if isinstance(result, Exception):
                    if isinstance(result, _UNREACHED):
                        unreached.append(out)
                        continue
                    out.queued = False
                    link.stats.dropped += 1
                    logger.error("redis backplane: a message was refused: %s", result)
                    continue
                out.queued = False
                if not out.resend:
                    link.stats.published += 1
            if unreached:
                error = next(r for r in results if isinstance(r, _UNREACHED))
                link.failed("redis publish failed", error)
                self._sha = ""
                self.requeue(unreached)
                self._set_sending(False)
                await backoff.wait()
                continue
            backoff.reset()
            self._set_sending(True)

    @property
    def sending(self) -> bool:
        """Whether Redis took the last batch (or answered the last ping)."""
        return self._sending

    def stopped(self) -> None:
        """The backplane closed: the next :meth:`run` starts as if Redis were unreachable."""
        self._sending = False

    def _set_sending(self, ok: bool) -> None:
        self._sending = ok
        self._on_state()

    async def _probe(self) -> None:
        try:
            await self._link.client.ping()
        except OUTAGE as exc:
            self._link.failed("redis ping failed", exc)
            return
        self._sha = ""
        self._set_sending(True)

    async def _execute(self, batch: list[Outgoing]) -> list[Any]:
        """Send a batch in one pipeline; one result per entry (the first of its commands)."""
        client = self._link.client
        if not self._sha and any(out.op == "seq" for out in batch):
            # Only recovery needs the script: without it nothing is loaded.
            self._sha = await client.script_load(publish_script(self._link.publish_command))
        results = await self._pipeline(batch)
        again = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if again:
            # Redis restarted since the script was loaded: load it, send those again.
            self._sha = await client.script_load(publish_script(self._link.publish_command))
            retried = await self._pipeline([batch[i] for i in again])
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[Outgoing]) -> list[Any]:
        link = self._link
        options, keys = link.options, link.keys
        node_id = options.node_id
        maxlen = str(max(1, options.history_size))
        ttl = str(int(max(options.history_ttl, 1.0) * 1000))
        publish = link.publish_command
        generation = str(self.connector.generation if self.connector else 0)
        # Without WAIT, a failover since a room's last write ends its epoch.
        fencing = "0" if self.confirmations else "1"
        async with link.client.pipeline(transaction=False) as pipe:
            spans = []
            for out in batch:
                before = len(pipe)
                if out.op == "seq":
                    channel, meta, stream = keys.numbered(out.target, out.name)
                    pipe.evalsha(
                        self._sha,
                        2,
                        meta,
                        stream,
                        channel,
                        node_id,
                        str(out.seq),
                        json.dumps(out.exclude),
                        out.message,
                        maxlen,
                        ttl,
                        uuid.uuid4().hex[:12],
                        generation,
                        fencing,
                    )
                elif out.op == "pub":
                    header = plain_header(node_id, out.seq, out.count, out.exclude)
                    pipe.execute_command(
                        publish,
                        keys.channel(out.target, out.name),
                        f"{header}\n{out.message}",
                    )
                else:
                    assert out.build is not None
                    out.build(pipe)
                spans.append((before, len(pipe)))
            confirmations = self.confirmations
            written = [out for out in batch if out.op == "seq"] if confirmations else []
            if confirmations and written:
                # On the same connection, after the scripts: one round trip.
                confirmations.add_wait(pipe)
            raw = await pipe.execute(raise_on_error=False)
        if confirmations and written:
            confirmations.answered(written, raw[-1])
        return [raw[start] if end > start else None for start, end in spans]
