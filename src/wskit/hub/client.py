"""The hub's server-side client: one connection, its channels, rooms and requests.

The hub runs every connection as a :class:`Client`, which handlers receive
(a parameter annotated ``Client``). A client is a channel registry of its
own (handlers registered on it win over the hub's, see
:mod:`wskit.hub.dispatch`); it joins and leaves rooms through the hub's room
table (:class:`~wskit.hub.rooms.LocalRooms`) and writes through it, under
the hub's overflow policy; it asks its peer with requests and resolves them
with the answers the hub hands it.

The Python client *program*, which connects to a hub, is
:class:`~wskit.hub.hub_client.HubClient`; it lived here before, and is
re-exported so that ``from wskit.hub.client import HubClient`` still works.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..protocol.connection import PreparedMessage
from .background import discard
from .errors import RequestError
from .hub_client import HubClient
from .registry import Registry
from .rooms import BroadcastEmitter, LocalRooms, Publisher, RoomEmitter

if TYPE_CHECKING:
    from ..asyncio.connection import Conn
    from ..asyncio.direct_write import Writer
    from ..protocol.http11 import Request
    from .wire import Event, Result

__all__ = ["Client", "ClientChannel", "HubClient"]


class ClientChannel(Registry):
    """One client's side of a channel: its own handlers, emits and requests to it."""

    def __init__(self, client: Client, name: str | None) -> None:
        super().__init__(name, Client)
        self.client = client

    def emit(self, event: str, *args: Any) -> bool:
        """Send ``event`` to this client on this channel; ``False`` if it was not written.

        A reserved name on the default channel raises ``ValueError``.
        """
        return self.client.send(self.client.hub.protocol.encode_event(event, args, self.name))

    @property
    def broadcast(self) -> BroadcastEmitter:
        """Emit on this channel to every client of the hub, on every node, except this one.

        ``client.broadcast.emit("joined", name)``: iris's ``To(Broadcast)``,
        socket.io's ``socket.broadcast.emit``; no room is needed (for the
        members of a room but this client, see :meth:`Client.to`).
        """
        return BroadcastEmitter(self.client.hub, self.name, self.client.id)

    async def request(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Ask the client; return its answer.

        ``timeout`` is in seconds; ``None`` (the default) takes the hub's
        ``request_timeout``, and ``math.inf`` waits as long as the client
        stays connected.

        Raises:
            RequestError: the client rejected it, did not answer in time (the
                client is then told to cancel), or disconnected first.
            ValueError: ``event`` is reserved on the default channel (see
                :data:`~wskit.hub.wire.RESERVED_EVENTS`).
        """
        return await self.client._request(self.name, event, args, timeout)


class Client(ClientChannel):
    """A connected client of a :class:`~wskit.hub.hub.Hub` (its default channel, and the rest).

    ``id`` is unique on the hub; ``conn`` is the WebSocket connection and
    ``request`` its handshake request (headers, cookies, query, path), for
    authentication. ``values`` is a per-client store (iris's ``SetValue``).

    The hub makes clients (you do not): ``hub`` is the hub, ``table`` its
    room table, through which the client joins, leaves and writes.
    """

    def __init__(
        self, hub: Publisher, conn: Conn, client_id: str, table: LocalRooms[Client]
    ) -> None:
        super().__init__(self, None)
        self.hub = hub
        self.conn = conn
        self.id = client_id
        # What fanout() writes room emits through (None on ASGI connections,
        # which have no socket of their own: they take write_prepared()).
        self.frame_writer: Writer | None = getattr(conn, "frame_writer", None)
        self.values: dict[str, Any] = {}
        self.rooms: set[str] = set()
        self.channels: dict[str, ClientChannel] = {}
        #: Messages not written because this client's buffer was full.
        self.dropped = 0
        #: True once the hub no longer writes to this client: its connection
        #: ended, or the overflow policy closed it.
        self.closed = False
        #: The recovery session id (``None`` unless the hub has ``recovery`` on
        #: and the client asked for one).
        self.session: str | None = None
        #: The handlers still answering this client's requests, by request id
        #: (a cancel from the client cancels one; read by dispatch and the hub).
        self.request_tasks: dict[int | str, asyncio.Future[Any]] = {}
        #: Handlers (async, or returning an awaitable) running for this client
        #: now: at the hub's ``max_inflight``, the hub stops reading it.
        self.inflight = 0
        #: Requests and events read while all slots were taken (only while the
        #: client owes us an answer, see :mod:`wskit.hub.hub`), with the
        #: awaitable each will run; started first as slots free up.
        self.parked: deque[tuple[Event, Awaitable[Any]]] = deque()
        #: Requests and events refused: over the rate limit, or read while
        #: ``parked`` was full.
        self.refused = 0
        self._table = table
        # The hub's reading loop, waiting for a free slot or for a reason to read.
        self._read_waiter: asyncio.Future[None] | None = None
        self._next_request = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}

    def __repr__(self) -> str:
        return f"<Client {self.id}>"

    @property
    def request_info(self) -> Request:
        """The handshake request (same as ``conn.request``)."""
        assert self.conn.request is not None
        return self.conn.request

    # -- values ------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Read a value of the per-client store."""
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Write a value of the per-client store."""
        self.values[key] = value

    # -- channels ----------------------------------------------------------------

    def of(self, name: str) -> ClientChannel:
        """This client's side of channel ``name`` (created on first use)."""
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = ClientChannel(self, name)
        return channel

    # -- rooms ---------------------------------------------------------------------

    def join(self, room: str) -> None:
        """Join ``room`` (created when its first member joins)."""
        self._table.join(self, room)

    def leave(self, room: str) -> bool:
        """Leave ``room``; ``True`` if this client was in it. Calls the leave hook."""
        return self._table.leave(self, room)

    def is_joined(self, room: str) -> bool:
        """Whether this client is in ``room``."""
        return room in self.rooms

    def to(self, *rooms: str) -> RoomEmitter:
        """Emit to the members of ``rooms`` except this client (socket.io's ``socket.to(room)``).

        To every client but this one, in any room, see :attr:`broadcast`.
        """
        return RoomEmitter(self.hub, rooms, None, self.id)

    # -- writing -----------------------------------------------------------------------

    def send(self, message: str | PreparedMessage) -> bool:
        """Write a raw message to this client now, under the hub's overflow policy.

        Returns ``False`` when it was not written: the client is gone, or
        its buffer is full (the message is dropped and counted, or the
        client is closed, as the hub's ``overflow`` says).
        """
        prepared = message if isinstance(message, PreparedMessage) else PreparedMessage(message)
        return self._table.write(self, prepared)

    async def disconnect(self, code: int = 1000, reason: str = "") -> None:
        """Close this client's connection."""
        await self.conn.close(code, reason)

    # -- requests ----------------------------------------------------------------------

    async def _request(
        self, channel: str | None, event: str, args: tuple[Any, ...], timeout: float | None
    ) -> Any:
        if self.closed:
            raise RequestError(f"client {self.id} is disconnected")
        if timeout is None:
            timeout = self.hub.request_timeout
        if timeout == math.inf:
            timeout = None
        request_id = next(self._next_request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        # The answer must be read even if the hub paused reading this client.
        self.wake_reader()
        try:
            message = self.hub.protocol.encode_request(request_id, event, args, channel)
            if not self.send(message):
                raise RequestError(f"could not send request {event!r} to client {self.id}")
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                # Tell the peer to stop working on it, if it listens.
                self.send(self.hub.protocol.encode_cancel(request_id))
                raise RequestError(f"request {event!r} timed out after {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)

    def owes_answer(self) -> bool:
        """Whether a request of ours waits for this client's answer."""
        return bool(self._pending)

    def wake_reader(self) -> None:
        """Wake the hub's reading loop if it waits (see :meth:`wait_to_read`)."""
        waiter = self._read_waiter
        if waiter is not None:
            self._read_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_to_read(self, max_inflight: int) -> bool:
        """Wait until the hub may read this client's next message; ``False`` if it closed.

        The hub may read when fewer than ``max_inflight`` of its handlers run,
        or when the client owes us the answer to a request (which may be
        behind whatever it sent before).
        """
        closed: asyncio.Future[Any] | None = None
        try:
            while self.inflight >= max_inflight and not self._pending and not self.closed:
                waiter = self._read_waiter = asyncio.get_running_loop().create_future()
                if closed is None:
                    closed = asyncio.ensure_future(self.conn.wait_closed())
                await asyncio.wait((waiter, closed), return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    return False
            return True
        finally:
            self._read_waiter = None
            if closed is not None and not closed.done():
                closed.cancel()

    def resolve(self, result: Result) -> None:
        """Settle the request of ours that ``result`` answers (the hub calls it)."""
        future = self._pending.get(result.request_id)
        if future is None or future.done():
            return
        if result.is_error:
            error = result.error
            message = error.get("message") if isinstance(error, dict) else error
            future.set_exception(RequestError(str(message), error))
        else:
            future.set_result(result.data)

    def end_requests(self) -> None:
        """The connection ended: fail our pending requests, cancel the handlers of its own."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RequestError(f"client {self.id} disconnected"))
        self._pending.clear()
        for task in self.request_tasks.values():
            task.cancel()
        self.request_tasks.clear()
        for _, awaitable in self.parked:
            discard(awaitable)
        self.parked.clear()
