"""Helpers of the hub's tests: a ws-wrapper peer written by hand, hubs served on free ports.

:class:`Peer` speaks the ws-wrapper wire format by hand, so the tests see
exactly what the hub writes. To prove that something was *not* sent, a test
asks the hub a question afterwards: messages on a connection are ordered,
so if the answer is the next message, nothing came before it.

:func:`cluster` serves hubs on one memory backplane, the nodes of a cluster
in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

import wskit
from wskit.exceptions import ConnectionClosed
from wskit.hub import Client, Hub, MemoryBackplane
from wskit.limits import client_caused


def fresh_log_limits() -> None:
    """Forget what the shared :data:`~wskit.limits.client_caused` limiter has counted.

    It is one object for the whole process (every module holds it): reset in
    place, so that a test that counts log records does not start with the
    buckets that earlier tests spent.
    """
    client_caused.__init__()  # type: ignore[misc]


@contextlib.asynccontextmanager
async def serving(hub: Hub, **options: Any) -> AsyncIterator[str]:
    """Serve ``hub`` on a free port; yield its URL."""
    async with wskit.serve(hub, "127.0.0.1", 0, **options) as server:
        yield f"ws://127.0.0.1:{server.port}/"


class Peer:
    """A ws-wrapper client written by hand on a wskit connection."""

    def __init__(self, conn: wskit.ClientConn) -> None:
        self.conn = conn
        self.backlog: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, url: str, **options: Any) -> Peer:
        return cls(await wskit.connect(url, **options))

    async def send(self, obj: Any) -> None:
        await self.conn.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def _read(self, timeout: float) -> dict[str, Any]:
        message = await asyncio.wait_for(self.conn.recv(), timeout)
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message (those skipped by :meth:`request` first)."""
        if self.backlog:
            return self.backlog.pop(0)
        return await self._read(timeout)

    async def emit(self, event: str, *args: Any, channel: str | None = None) -> None:
        message: dict[str, Any] = {"a": [event, *args]}
        if channel is not None:
            message["c"] = channel
        await self.send(message)

    async def send_request(self, event: str, *args: Any, channel: str | None = None) -> int:
        request_id = next(self._ids)
        message: dict[str, Any] = {"i": request_id, "a": [event, *args]}
        if channel is not None:
            message["c"] = channel
        await self.send(message)
        return request_id

    async def response(self, request_id: int, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the answer to ``request_id``; keep other messages for :meth:`recv`."""
        while True:
            message = await self._read(timeout)
            if message.get("i") == request_id and "a" not in message:
                return message
            self.backlog.append(message)

    async def request(self, event: str, *args: Any, channel: str | None = None) -> dict[str, Any]:
        """Send a request; return the raw response message."""
        return await self.response(await self.send_request(event, *args, channel=channel))

    async def call(self, event: str, *args: Any, channel: str | None = None) -> Any:
        """Send a request; return its data, failing the test if it was rejected."""
        answer = await self.request(event, *args, channel=channel)
        assert "e" not in answer, answer
        return answer.get("d")

    async def next_only(self, expected: dict[str, Any]) -> None:
        """Assert that the next message is ``expected`` (nothing else came first)."""
        assert await self.recv() == expected

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.conn.close(code, reason)


def pinging_hub(**options: Any) -> Hub:
    """A hub with a ``ping`` request, the round trip the tests synchronize on."""
    hub = Hub(**options)
    hub.on("ping", lambda: "pong")
    return hub


def join_room(client: Client, room: str) -> None:
    """An event handler (a lambda cannot annotate its client parameter)."""
    client.join(room)


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def closed_code(peer: Peer, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Read until the connection closes; return the close code and reason received."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(peer.conn.recv(), timeout)
    await peer.conn.wait_closed(timeout)
    return peer.conn.close_code, peer.conn.close_reason


# --------------------------------------------------------------------------- memory clusters


class Cluster:
    """Hubs on one memory backplane, each served on its own port."""

    def __init__(self, count: int, **options: Any) -> None:
        self.backplane = MemoryBackplane()
        self.hubs = [Hub(backplane=self.backplane, **options) for _ in range(count)]
        for hub in self.hubs:
            hub.on("say", lambda room, text, hub=hub: hub.to(room).emit("said", text))
        self.servers: list[wskit.Server] = []

    def url(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.servers[index].port}/"

    def emit(self, room: str, *args: Any) -> None:
        self.hubs[0].to(room).emit("said", *args)


@contextlib.asynccontextmanager
async def cluster(count: int = 2, **options: Any) -> AsyncIterator[Cluster]:
    options.setdefault("client_rooms", True)
    options.setdefault("recovery", True)
    made = Cluster(count, **options)
    for hub in made.hubs:
        made.servers.append(await hub.serve("127.0.0.1", 0))
    try:
        yield made
    finally:
        for server in made.servers:
            server.close()
            await server.wait_closed()


#: What a type's own validation may carry: a client must never read it.
SECRET = "lookup failed in postgres://admin:s3cret@db/accounts"


@dataclasses.dataclass
class Account:
    """A handler parameter type whose validation raises with server data in its text."""

    number: int

    def __post_init__(self) -> None:
        if self.number < 0:
            raise ValueError(SECRET)


class StructAccount(msgspec.Struct):
    """The same as a msgspec Struct."""

    number: int

    def __post_init__(self) -> None:
        if self.number < 0:
            raise ValueError(SECRET)
