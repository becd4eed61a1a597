"""The subscriber connection of the Redis backplane: one redis-py connection in subscribe mode.

One connection per backplane, opened by the receiver's loop
(:mod:`~.receiver`), which alone reads it; any part may write to it
(``SUBSCRIBE``, ``UNSUBSCRIBE``, ``PING``). It is a connection of
redis-py's own class, made by the pool of the backplane's command client
(:meth:`redis.asyncio.ConnectionPool.make_connection`), so it reaches Redis
exactly as the commands do: TCP, TLS (``rediss://``, with its certificates),
a Unix socket, the primary a Sentinel names, with the same ACL user, database
and protocol (RESP2, or RESP3 with ``protocol=3``, where messages come as push
frames); redis-py parses the replies with hiredis when it is installed.

It does not go through :class:`redis.asyncio.client.PubSub`: the receiver
does its own resubscribing, reconnecting and liveness checks, and reads the
frames as they come, ``[b"message", channel, data]`` and the like, rather
than one dictionary per message.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Subscriber"]


class Subscriber:
    """One redis-py connection in subscribe mode (read by one task, written by any).

    Liveness: a read waits as long as it must (a timeout on every read would
    cost more than the read), and :meth:`ping`, which the backplane calls
    every heartbeat, notices a Redis that stopped answering instead: after
    ``patience`` pings with nothing read in between, the read under way fails
    with :class:`redis.exceptions.TimeoutError`. With Sentinel, :meth:`ping`
    also gives up on a primary that is no longer the one the sentinels name
    (the backplane asks them every heartbeat): the old primary keeps its
    clients until the sentinels turn it into a replica, which may take them
    ten seconds, and the subscriber would meanwhile hear only what is
    published there.

    Args:
        conn: a connected :class:`redis.asyncio.connection.AbstractConnection`.
        patience: pings in a row that may go without anything read.
    """

    __slots__ = ("_conn", "_read", "_sentinel", "reads", "_reads_seen", "_silent", "patience")

    def __init__(self, conn: Any, patience: int = 3) -> None:
        self._conn = conn
        self._read = conn.read_response
        # With Sentinel: the pool, which knows where the primary is now.
        sentinel = isinstance(conn, SentinelManagedConnection)
        self._sentinel = conn.connection_pool if sentinel else None
        #: Frames read so far.
        self.reads = 0
        self._reads_seen = 0
        self._silent = 0
        self.patience = patience

    @classmethod
    async def open(cls, client: Any, timeout: float, patience: int = 3) -> Subscriber:
        """Connect a new connection of ``client``'s pool, within ``timeout`` seconds.

        Connecting does what the pool's connections do: the TLS handshake,
        ``HELLO`` or ``AUTH``, ``SELECT``, and with Sentinel, asking the
        sentinels where the primary is now.

        Args:
            client: the backplane's :class:`redis.asyncio.Redis` for commands.
            timeout: seconds the connection may take.
            patience: pings in a row that may go unanswered (see :meth:`ping`).
        """
        return await cls.connect(client.connection_pool.make_connection(), timeout, patience)

    @classmethod
    async def connect(cls, conn: Any, timeout: float, patience: int = 3) -> Subscriber:
        """Connect ``conn``, a new redis-py connection, within ``timeout`` seconds.

        :meth:`open` makes it from the command client's pool; on Redis
        Cluster, :mod:`~.shards` makes one per primary with its settings.
        """
        try:
            await asyncio.wait_for(conn.connect(), timeout)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        # Reads wait for the next frame however long it takes: ping() watches instead.
        conn.socket_timeout = None
        return cls(conn, patience)

    def send(self, *args: str | bytes) -> None:
        """Write one command (not waiting for its reply: :meth:`read` gets it).

        The bytes are written at once (so commands keep the order they were
        sent in), and not drained: the few commands of a subscriber are small.
        A connection that failed already is left to :meth:`read` to report.
        """
        conn = self._conn
        writer = conn._writer  # redis-py's own send is a coroutine; this one must not wait
        if writer is not None and not writer.is_closing():
            writer.writelines(conn.pack_command(*args))

    async def read(self) -> Any:
        """The next reply or pushed message (a list of bytes, or one value for ``PONG``).

        Raises:
            redis.exceptions.RedisError: an error reply, a lost connection
                (:class:`~redis.exceptions.ConnectionError`), or a Redis that
                left :attr:`patience` pings unanswered
                (:class:`~redis.exceptions.TimeoutError`).
        """
        frame = await self._read(push_request=True)
        self.reads += 1
        return frame

    def ping(self) -> None:
        """Send a ``PING``; after :attr:`patience` of them with nothing read, give up on Redis.

        With Sentinel, give up at once on a primary the sentinels no longer name.
        """
        conn = self._conn
        sentinel = self._sentinel
        if sentinel is not None:
            primary = sentinel.master_address
            if primary is not None and tuple(primary) != (conn.host, conn.port):
                host, port = primary
                self._give_up(RedisConnectionError(f"the primary moved to {host}:{port}"))
                return
        if self.reads != self._reads_seen:
            self._reads_seen = self.reads
            self._silent = 0
        else:
            self._silent += 1
            if self._silent >= self.patience:
                self._give_up(RedisTimeoutError(f"no answer from redis to {self._silent} pings"))
                return
        self.send("PING")

    def _give_up(self, exc: Exception) -> None:
        """Make the read under way raise ``exc`` (redis-py passes it on, and disconnects)."""
        reader = self._conn._reader
        if reader is not None:
            reader.set_exception(exc)

    def close(self) -> None:
        """Close the connection at once (as redis-py's ``disconnect(nowait=True)``, unawaited)."""
        conn = self._conn
        if conn._writer is not None:
            conn._writer.close()
        conn._reader = conn._writer = None
