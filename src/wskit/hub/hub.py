"""The event hub: clients, events, rooms, channels and requests over WebSocket.

Theory of operation
===================

A :class:`Hub` is a connection handler: give it to :func:`wskit.serve` (or
mount it in an ASGI app) and it runs every connection as a :class:`Client`.
It never touches frames: it reads messages from a ``Conn``, asks its
:class:`~wskit.hub.wire.WireProtocol` to turn each into a packet, and
dispatches the packet.

Dispatch of an event or request, on a channel (``None`` is the default):

1. Reserved names (``open``, ``connect``, ``message``, ``error``,
   ``close``, ``disconnect``) on the default channel are never dispatched
   from the wire.
2. One handler runs, the first of: the client's ``once``, the client's
   ``on``, the hub's ``once``, the hub's ``on`` (ws-server-wrapper's order).
3. Its arguments are converted by its type hints
   (:mod:`wskit.hub.convert`); a parameter annotated :class:`Client`
   receives the calling client.
4. A plain function runs inline; an ``async def`` runs as a task, so a
   handler may itself ``await client.request(...)`` without blocking the
   reading of that client's messages. A request's task can be cancelled by
   the peer.
5. A request is answered with the handler's return value, or rejected with
   the exception's message. Nothing a client sends stops the hub.

Emits to rooms and to everyone go through the :class:`Backplane`, which
calls :meth:`Hub.deliver` on every node; delivery encodes the message once
into a prepared frame and writes that to every local member. Each client's
unsent bytes are bounded by ``max_buffer``: past it, the hub drops that
client's messages (counting them) or closes it, as ``overflow`` says, and
the other clients never wait.

Scale-out (see :mod:`wskit.hub.redis`): with ``Hub(backplane="redis://...")``
room emits, emits to one client and to everyone reach every node through
Redis; :attr:`Hub.cluster` asks and acts across nodes, ``presence=True``
keeps who is in which room across nodes, and ``recovery=True`` numbers room
messages so that a client that reconnects gets what it missed
(:mod:`wskit.hub.recovery`).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from ..asyncio.connection import Conn
from ..asyncio.direct_write import Writer, fanout
from ..asyncio.server import Server, ServerConn, serve
from ..exceptions import ConnectionClosed
from ..protocol.connection import PreparedMessage
from ..protocol.http11 import Request, Response
from .backplane import (
    Backplane,
    HistoryError,
    MemoryBackplane,
    Position,
    PresenceEvent,
    Target,
)
from .cluster import Cluster
from .convert import ConversionError, HandlerSignature, signature_of
from .recovery import Recovery, SessionManager, splice
from .wire import Cancel, Event, IrisProtocol, Result, WireProtocol, WsWrapperProtocol

__all__ = [
    "Hub",
    "Client",
    "HubChannel",
    "ClientChannel",
    "RoomEmitter",
    "RequestError",
    "Reject",
    "RESERVED_EVENTS",
]

logger = logging.getLogger("wskit.hub")

RESERVED_EVENTS = frozenset(("open", "connect", "message", "error", "close", "disconnect"))
"""Event names of the default channel that are hooks, never wire events."""

Handler = Callable[..., Any]
Overflow = Literal["drop", "close"]


class RequestError(Exception):
    """A request was rejected by the peer, timed out, or its client went away.

    ``data`` is the rejection value as the peer sent it (for a serialized
    JavaScript ``Error``, a dict with ``message``).
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


class Reject(Exception):
    """Raise it in a request handler to reject with ``value`` as it is.

    Any other exception rejects with a JavaScript ``Error`` carrying the
    exception's message (``{"message": ...}`` with ``_: 1`` in ws-wrapper);
    ``Reject(value)`` sends ``value`` itself, so the client's promise
    rejects with that plain value.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


class _Handlers:
    """The ``on`` and ``once`` handlers of one channel of a hub or a client."""

    __slots__ = ("on", "once")

    def __init__(self) -> None:
        self.on: dict[str, HandlerSignature] = {}
        self.once: dict[str, HandlerSignature] = {}


def _protocol_of(protocol: str | WireProtocol) -> WireProtocol:
    if isinstance(protocol, WireProtocol):
        return protocol
    if protocol == "ws-wrapper":
        return WsWrapperProtocol()
    if protocol == "iris":
        return IrisProtocol()
    raise ValueError(
        f"unknown wire protocol {protocol!r}; use 'ws-wrapper', 'iris' or a WireProtocol"
    )


_HOOK_NAMES: dict[str, str] = {
    "open": "connect",
    "connect": "connect",
    "close": "disconnect",
    "disconnect": "disconnect",
    "error": "error",
    "message": "message",
}


class _Registry:
    """Registering handlers and hooks: shared by hub channels and client channels.

    On the default channel (``name is None``) the reserved names are hooks,
    of which there may be several: ``connect``/``open`` (hub only),
    ``disconnect``/``close`` (called with client, code, reason), ``error``
    (client, exception) and ``message`` (client, raw message). On a named
    channel every name is an ordinary event.
    """

    _handlers: _Handlers
    name: str | None

    def _register(
        self, table: dict[str, HandlerSignature], event: str, handler: Handler | None, once: bool
    ) -> Any:
        hook = _HOOK_NAMES.get(event) if self.name is None else None

        def add(func: Handler) -> Handler:
            if hook is not None:
                self._add_hook(hook, func, once)
            else:
                table[event] = signature_of(func, Client)
            return func

        if handler is None:
            return add
        add(handler)
        return self

    def _add_hook(self, hook: str, func: Handler, once: bool) -> None:
        hooks: dict[str, list[Handler]] = self.__dict__.setdefault("_hooks", {})
        if once:
            original = func

            def func(*args: Any) -> Any:
                hooks[hook].remove(func)
                return original(*args)

        hooks.setdefault(hook, []).append(func)

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Handle ``event`` with ``handler`` (usable as ``@channel.on("event")``).

        One handler per event: registering again replaces it. Reserved
        names on the default channel register hooks instead (see above).
        """
        return self._register(self._handlers.on, event, handler, once=False)

    def once(self, event: str, handler: Handler | None = None) -> Any:
        """Handle the next ``event`` only, then forget the handler."""
        return self._register(self._handlers.once, event, handler, once=True)

    def off(self, event: str) -> None:
        """Remove the ``on`` and ``once`` handlers of ``event``."""
        self._handlers.on.pop(event, None)
        self._handlers.once.pop(event, None)


class HubChannel(_Registry):
    """A named channel of the hub (a namespace): its own handlers; emits to every client."""

    def __init__(self, hub: Hub, name: str | None) -> None:
        self.hub = hub
        self.name = name
        self._handlers = _Handlers()

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` on this channel to every client of every node."""
        message = self.hub.protocol.encode_event(event, args, self.name)
        self.hub.backplane.publish(Target.ALL, "", message)

    def to(self, room: str) -> RoomEmitter:
        """Emit on this channel to the members of ``room``."""
        return RoomEmitter(self.hub, room, self.name, None)


class RoomEmitter:
    """Emits to the members of a room, optionally except one client."""

    __slots__ = ("hub", "room", "channel", "exclude")

    def __init__(self, hub: Hub, room: str, channel: str | None, exclude: str | None) -> None:
        self.hub = hub
        self.room = room
        self.channel = channel
        self.exclude = exclude

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every member (on every node), except the excluded client."""
        message = self.hub.protocol.encode_event(event, args, self.channel)
        self.hub.backplane.publish(Target.ROOM, self.room, message, self.exclude)

    def send(self, message: str) -> None:
        """Send a raw message (iris's ``EmitMessage``) to every member."""
        self.hub.backplane.publish(Target.ROOM, self.room, message, self.exclude)


class ClientChannel(_Registry):
    """One client's side of a channel: its own handlers, emits and requests to it."""

    def __init__(self, client: Client, name: str | None) -> None:
        self.client = client
        self.name = name
        self._handlers = _Handlers()

    def emit(self, event: str, *args: Any) -> bool:
        """Send ``event`` to this client on this channel; ``False`` if it was not written."""
        return self.client.send(self.client.hub.protocol.encode_event(event, args, self.name))

    async def request(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Ask the client; return its answer.

        Raises:
            RequestError: the client rejected it, did not answer within
                ``timeout`` seconds, or disconnected first.
        """
        return await self.client._request(self.name, event, args, timeout)


class Client(ClientChannel):
    """A connected client of a :class:`Hub` (its default channel, and the rest).

    ``id`` is unique on the hub; ``conn`` is the WebSocket connection and
    ``request`` its handshake request (headers, cookies, query, path), for
    authentication. ``values`` is a per-client store (iris's ``SetValue``).
    """

    def __init__(self, hub: Hub, conn: Conn, client_id: str) -> None:
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
        self._next_request = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self._tasks: dict[int | str, asyncio.Future[Any]] = {}
        self._closed = False
        #: The recovery session id (``None`` unless the hub has ``recovery`` on
        #: and the client asked for one).
        self.session: str | None = None
        self._welcome: dict[str, Any] | None = None
        self._positions: dict[str, Position] = {}
        self._recovering: dict[str, list[tuple[Position, PreparedMessage]]] = {}
        self._joins: dict[str, asyncio.Future[Any]] = {}

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
        if room not in self.rooms:
            self.rooms.add(room)
            self.hub._add_member(room, self)
            if self.hub._sessions is not None:
                self.hub._sessions.joined(self, room)

    def leave(self, room: str) -> bool:
        """Leave ``room``; ``True`` if this client was in it. Calls the leave hook."""
        if room not in self.rooms:
            return False
        self.hub._fire_hook("leave", self, room)
        self.rooms.discard(room)
        self.hub._remove_member(room, self)
        return True

    def is_joined(self, room: str) -> bool:
        """Whether this client is in ``room``."""
        return room in self.rooms

    def to(self, room: str) -> RoomEmitter:
        """Emit to the members of ``room`` except this client (iris's ``Broadcast``)."""
        return RoomEmitter(self.hub, room, None, self.id)

    # -- writing -----------------------------------------------------------------------

    def send(self, message: str | PreparedMessage) -> bool:
        """Write a raw message to this client now, under the hub's overflow policy.

        Returns ``False`` when it was not written: the client is gone, or
        its buffer is full (the message is dropped and counted, or the
        client is closed, as the hub's ``overflow`` says).
        """
        prepared = message if isinstance(message, PreparedMessage) else PreparedMessage(message)
        return self.hub._write(self, prepared)

    async def disconnect(self, code: int = 1000, reason: str = "") -> None:
        """Close this client's connection."""
        await self.conn.close(code, reason)

    # -- requests ----------------------------------------------------------------------

    async def _request(
        self, channel: str | None, event: str, args: tuple[Any, ...], timeout: float | None
    ) -> Any:
        if self._closed:
            raise RequestError(f"client {self.id} is disconnected")
        request_id = next(self._next_request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
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

    def _resolve(self, result: Result) -> None:
        future = self._pending.get(result.request_id)
        if future is None or future.done():
            return
        if result.is_error:
            error = result.error
            message = error.get("message") if isinstance(error, dict) else error
            future.set_exception(RequestError(str(message), error))
        else:
            future.set_result(result.data)

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RequestError(f"client {self.id} disconnected"))
        self._pending.clear()
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()


IdGenerator = Callable[[Request], str]
RoomGuard = Callable[[Client, str], bool | Awaitable[bool]]

CLIENT_ROOMS_CHANNEL = "_wskit"
"""The channel on which clients ask to join and leave rooms (``client_rooms``)."""


def _default_id(request: Request) -> str:
    return uuid.uuid4().hex


class Hub(HubChannel):
    """An event hub; pass it to :func:`wskit.serve` as the connection handler.

    Args:
        protocol: ``"ws-wrapper"`` (default), ``"iris"``, or a
            :class:`~wskit.hub.wire.WireProtocol`.
        backplane: where room and global emits go; in memory by default.
        id_generator: ``id_generator(request) -> str`` names each client.
        max_buffer: unsent bytes a client may hold before ``overflow`` applies.
        overflow: ``"drop"`` its messages (counted in ``client.dropped``)
            or ``"close"`` it with ``overflow_code``.
        overflow_code: 1008 (policy violation) or 1013 (try again later).
        client_rooms: let clients join and leave rooms themselves (what
            ``wskit.js`` does with ``join()``, and again after reconnecting):
            ``True`` for any room, or ``guard(client, room) -> bool`` (may be
            async) to decide per room. Requests ``join``/``leave`` on the
            channel ``"_wskit"`` carry them.
        debug: name the exception's type in error answers (the message
            itself is always sent, as ws-wrapper does; raise
            :class:`Reject` to answer with a plain value instead).
        recovery: number room messages and let reconnecting clients get
            what they missed (``True`` or a :class:`~wskit.hub.recovery.Recovery`);
            ws-wrapper protocol only. See :mod:`wskit.hub.recovery`.
        presence: keep who is in which room across nodes (:meth:`presence`,
            :meth:`on_presence`); ``presence_info(client) -> dict`` adds
            what the entries say about each client.

    ``backplane`` may also be a URL, ``"redis://host:port/db"``, for a
    :class:`~wskit.hub.redis.RedisBackplane` (which needs the ``redis`` package).

    Hooks are registered with ``@hub.on("connect")`` (``open``),
    ``"disconnect"`` (``close``; called with client, code, reason),
    ``"error"`` (client, exception), ``"message"`` (client, raw message:
    every message, before dispatch), and with :meth:`on_leave` and
    :meth:`on_native` (messages the wire protocol does not claim).
    """

    def __init__(
        self,
        *,
        protocol: str | WireProtocol = "ws-wrapper",
        backplane: Backplane | str | None = None,
        id_generator: IdGenerator | None = None,
        max_buffer: int = 2**20,
        overflow: Overflow = "drop",
        overflow_code: int = 1013,
        client_rooms: bool | RoomGuard = False,
        debug: bool = False,
        recovery: bool | Recovery = False,
        presence: bool = False,
        presence_info: Callable[[Client], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(self, None)
        self.protocol = _protocol_of(protocol)
        if isinstance(backplane, str):
            from .redis import RedisBackplane

            backplane = RedisBackplane(backplane)
        self.backplane = backplane if backplane is not None else MemoryBackplane()
        self._sessions: SessionManager | None = None
        if recovery:
            if not isinstance(self.protocol, WsWrapperProtocol):
                raise ValueError("recovery needs the ws-wrapper protocol")
            settings = recovery if isinstance(recovery, Recovery) else Recovery()
            self._sessions = SessionManager(self, settings)
            self.backplane.history_size = settings.history
            self.backplane.history_ttl = max(settings.history_ttl, settings.window)
        self.presence_enabled = presence
        self.presence_info = presence_info
        #: Node-to-node calls: clients and rooms across the cluster, remote joins...
        self.cluster = Cluster(self)
        self.backplane.attach(self)
        self.id_generator = id_generator or _default_id
        self.max_buffer = max_buffer
        if overflow not in ("drop", "close"):
            raise ValueError("overflow must be 'drop' or 'close'")
        self.overflow = overflow
        self.overflow_code = overflow_code
        self.debug = debug
        #: Clients connected to this node, by id.
        self.clients: dict[str, Client] = {}
        #: Rooms with members on this node, and those members.
        #: The local members of each room, each with its connection's writer
        #: (what a room emit is written through; see ``deliver``).
        self.rooms: dict[str, dict[Client, Writer | None]] = {}
        #: Messages dropped because a client's buffer was full.
        self.dropped = 0
        self._channels: dict[str, HubChannel] = {}
        self._hooks: dict[str, list[Handler]] = {}
        self._started: asyncio.Event | None = None
        if client_rooms:
            self._enable_client_rooms(None if client_rooms is True else client_rooms)
        if self._sessions is not None:
            sessions = self._sessions

            def hello(client: Client) -> dict[str, Any]:
                return sessions.hello(client)

            self.of(CLIENT_ROOMS_CHANNEL).on("hello", hello)
        self._background: set[asyncio.Future[Any]] = set()

    # -- registration --------------------------------------------------------------

    def on_leave(self, handler: Handler) -> Handler:
        """Register ``handler(client, room)``, called when a client leaves a room."""
        self._add_hook("leave", handler, once=False)
        return handler

    def on_presence(self, handler: Handler) -> Handler:
        """Register ``handler(event)``, called with each :class:`PresenceEvent`.

        It runs on the node where the client joined or left, and on every
        node with members in that room (``presence=True`` needed).
        """
        self._hooks.setdefault("presence", []).append(handler)
        return handler

    def on_native(self, handler: Handler) -> Handler:
        """Register ``handler(client, message)`` for messages the wire protocol ignores."""
        self._add_hook("native", handler, once=False)
        return handler

    def of(self, name: str) -> HubChannel:
        """The hub's channel ``name`` (created on first use), with its own handlers."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = HubChannel(self, name)
        return channel

    def _enable_client_rooms(self, guard: RoomGuard | None) -> None:
        channel = self.of(CLIENT_ROOMS_CHANNEL)

        async def join(client: Client, room: str) -> bool:
            if guard is not None:
                allowed = guard(client, room)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if not allowed:
                    raise PermissionError(f"not allowed to join room '{room}'")
            client.join(room)
            await self._settled(client, room)
            return True

        def leave(client: Client, room: str) -> bool:
            return client.leave(room)

        channel.on("join", join)
        channel.on("leave", leave)

    async def _settled(self, client: Client, room: str) -> None:
        """Wait until ``client`` gets every room message published from now on.

        With a broker, the node may only just have started listening to the
        room; with recovery, the replay must be written first.
        """
        if room in client._joins:
            # A recovering (session) client: the join task waits for the cursor
            # and writes the replay; any other client just needs the cursor.
            assert self._sessions is not None
            await self._sessions.settled(client, room)
        elif self.backplane.cursor(room) is None:
            try:
                await self.backplane.wait_cursor(room, 5.0)
            except HistoryError:
                pass

    def _fire_hook(self, hook: str, client: Client, *args: Any) -> None:
        """Call the client's hooks named ``hook``, then the hub's."""
        client_hooks: dict[str, list[Handler]] = client.__dict__.get("_hooks", {})
        for func in [*client_hooks.get(hook, ()), *self._hooks.get(hook, ())]:
            try:
                result = func(client, *args)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception:
                logger.exception("error in the %s hook", hook)

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``awaitable`` in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("error in a background task", exc_info=task.exception())

    # -- queries ---------------------------------------------------------------------

    def get(self, client_id: str) -> Client | None:
        """The local client with this id, or ``None``."""
        return self.clients.get(client_id)

    def clients_in(self, room: str) -> list[Client]:
        """The local members of ``room``."""
        return list(self.rooms.get(room, ()))

    def count(self, room: str | None = None) -> int:
        """How many local clients are connected, or are in ``room``."""
        if room is None:
            return len(self.clients)
        return len(self.rooms.get(room, ()))

    def room_names(self) -> list[str]:
        """The rooms that have local members."""
        return list(self.rooms)

    async def disconnect(self, client_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close the client with this id; ``False`` if it is not connected here."""
        client = self.clients.get(client_id)
        if client is None:
            return False
        await client.disconnect(code, reason)
        return True

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room`` on every live node: client id to info (``"node"`` included)."""
        return await self.backplane.presence(room)

    @property
    def node_id(self) -> str:
        """This node's id in the cluster (the backplane's)."""
        return self.backplane.node_id

    async def start(self) -> None:
        """Connect the backplane (done by :meth:`serve` and on the first connection)."""
        if self._started is not None:
            await self._started.wait()  # returns at once when started
            return
        self._started = asyncio.Event()
        try:
            await self.backplane.start()
        finally:
            self._started.set()

    async def close(self) -> None:
        """Disconnect the backplane (after the server closed): flush, then stop."""
        await asyncio.sleep(0)  # let disconnect hooks schedule their work
        if self._background:
            await asyncio.wait(list(self._background), timeout=2.0)
        await self.backplane.close()
        self._started = None

    def to(self, room: str) -> RoomEmitter:
        """Emit to every member of ``room`` on every node."""
        return RoomEmitter(self, room, None, None)

    def emit_to_client(self, client_id: str, event: str, *args: Any) -> None:
        """Emit to one client by id, on whichever node it is."""
        message = self.protocol.encode_event(event, args, None)
        self.backplane.publish(Target.CLIENT, client_id, message)

    # -- what the backplane asks of a node --------------------------------------------

    def is_local(self, client_id: str) -> bool:
        """Whether the client is connected to this node."""
        return client_id in self.clients

    async def handle_call(self, op: str, args: dict[str, Any]) -> Any:
        """Answer another node's call; see :class:`~wskit.hub.cluster.Cluster`."""
        if op == "clients":
            room = args.get("room")
            members = self.clients.values() if room is None else self.rooms.get(room, ())
            return [{"id": c.id, "node": self.node_id, "rooms": sorted(c.rooms)} for c in members]
        if op == "rooms":
            return sorted(self.rooms)
        client = self.clients.get(str(args.get("client")))
        if client is None:
            return False
        if op == "join":
            client.join(str(args["room"]))
            return True
        if op == "leave":
            return client.leave(str(args["room"]))
        if op == "disconnect":
            self._spawn(client.disconnect(int(args.get("code", 1000)), str(args.get("reason", ""))))
            return True
        raise ValueError(f"unknown call {op!r}")

    def presence_changed(self, event: PresenceEvent) -> None:
        """Call the presence hooks."""
        for func in list(self._hooks.get("presence", ())):
            try:
                result = func(event)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception:
                logger.exception("error in the presence hook")

    def presence_entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every local room membership, with its presence info."""
        if not self.presence_enabled:
            return []
        return [
            (room, client.id, self._presence_info(client))
            for room, members in self.rooms.items()
            for client in members
        ]

    def _presence_info(self, client: Client) -> dict[str, Any]:
        if self.presence_info is None:
            return {}
        try:
            return dict(self.presence_info(client))
        except Exception:
            logger.exception("error in presence_info")
            return {}

    def advanced(self, room: str, position: Position) -> None:
        """A message delivered during an outage got its position: tell session clients."""
        if self._sessions is not None:
            self._sessions.advanced(room, position)

    # -- delivery -----------------------------------------------------------------------

    def _add_member(self, room: str, client: Client) -> None:
        members = self.rooms.get(room)
        if members is None:
            members = self.rooms[room] = {}
            self.backplane.subscribe(room)
        members[client] = client.frame_writer
        if self.presence_enabled:
            self.backplane.presence_add(room, client.id, self._presence_info(client))

    def _remove_member(self, room: str, client: Client) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        members.pop(client, None)
        if self.presence_enabled:
            self.backplane.presence_remove(room, client.id)
        if not members:
            del self.rooms[room]
            self.backplane.unsubscribe(room)

    def deliver(
        self,
        target: Target,
        name: str,
        message: str,
        exclude: str | None,
        position: Position | None = None,
    ) -> int:
        """Write an emit to the local clients it is for; see :class:`Backplane`."""
        if position is not None and self._sessions is not None and target is Target.ROOM:
            return self._deliver_numbered(name, message, exclude, position)
        members: Iterable[Client]
        if target is Target.ROOM:
            members = self.rooms.get(name, {})
        elif target is Target.CLIENT:
            client = self.clients.get(name)
            members = (client,) if client is not None else ()
        else:
            members = self.clients.values()
        prepared = PreparedMessage(message)
        max_buffer = self.max_buffer
        skip = None if exclude is None else self.clients.get(exclude)
        # The hot loop of every room emit, compiled when the kernel is built:
        # the common frame to every plain connection in one go (a room maps
        # its members to their writers, which is all the loop reads). The
        # clients it leaves (compressed, closing, over max_buffer, ASGI) take
        # the per-connection path, and the overflow policy when that fails.
        sent, left = fanout(members, prepared.plain_frame(), max_buffer, skip)
        for client in left:
            if client._closed:
                continue
            if client.conn.write_prepared(prepared, max_buffer):
                sent += 1
            else:
                self._overflowed(client)
        return sent

    def _deliver_numbered(
        self, room: str, message: str, exclude: str | None, position: Position
    ) -> int:
        """A room message with its position, for a hub with recovery on."""
        prepared = PreparedMessage(splice(message, room, position))
        sent = 0
        for client in list(self.rooms.get(room, ())):
            if client.id == exclude:
                continue
            kept = client._recovering.get(room) if client._recovering else None
            if kept is not None:
                kept.append((position, prepared))
            elif self._write(client, prepared):
                sent += 1
        return sent

    def _write(self, client: Client, prepared: PreparedMessage) -> bool:
        if client._closed:
            return False
        if client.conn.write_prepared(prepared, self.max_buffer):
            return True
        self._overflowed(client)
        return False

    def _overflowed(self, client: Client) -> None:
        """A write to ``client`` failed: apply the overflow policy if its buffer is full."""
        if client.conn.closed or client.conn.write_buffer_size <= self.max_buffer:
            return
        if self.overflow == "close":
            logger.warning("client %s is not reading; closing it", client.id)
            client._closed = True
            self._spawn(client.conn.close(self.overflow_code, "client too slow"))
        else:
            client.dropped += 1
            self.dropped += 1

    # -- serving -------------------------------------------------------------------------

    def process_request(self, conn: ServerConn, request: Request) -> Response | None:
        """Serve the JavaScript client on plain GETs of ``/wskit.js`` and ``/wskit.mjs``.

        Pass it as ``process_request`` to :func:`wskit.serve` (:meth:`serve`
        does); any other request goes on to the WebSocket handshake.
        """
        from .jsclient import script_response

        if "Upgrade" in request.headers:
            return None
        return script_response(request.path)

    async def serve(
        self, host: str | None = None, port: int | None = None, **options: Any
    ) -> Server:
        """Start a server for this hub, which also serves ``/wskit.js``.

        ``options`` are those of :func:`wskit.serve` (``path="/ws"`` limits
        the WebSocket endpoint to one path, for instance).
        """
        options.setdefault("process_request", self.process_request)
        await self.start()
        return await serve(self, host, port, **options)

    # -- running a connection ---------------------------------------------------------

    async def __call__(self, conn: Conn) -> None:
        """Run one connection as a client of this hub (the ``serve`` handler)."""
        await self.handle(conn)

    async def handle(self, conn: Conn) -> None:
        """Run one connection as a client until it closes."""
        await self.start()
        assert conn.request is not None
        client = Client(self, conn, self.id_generator(conn.request))
        self.clients[client.id] = client
        self.backplane.client_added(client.id)
        if self._sessions is not None:
            await self._sessions.open(client)
        if self.protocol.client_id_room:
            client.join(client.id)
        self._fire_hook("connect", client)
        code, reason = 1006, ""
        decode = self.protocol.decode
        try:
            async for message in conn:
                if "message" in self._hooks or "_hooks" in client.__dict__:
                    self._fire_hook("message", client, message)
                packet = decode(message)
                if packet is None:
                    self._fire_hook("native", client, message)
                elif type(packet) is Event:
                    self._dispatch(client, packet)
                elif type(packet) is Result:
                    client._resolve(packet)
                elif type(packet) is Cancel:
                    task = client._tasks.pop(packet.request_id, None)
                    if task is not None:
                        task.cancel()
        except ConnectionClosed:
            pass
        finally:
            code = conn.close_code if conn.close_code is not None else 1006
            reason = conn.close_reason or ""
            client._closed = True
            client._fail_pending()
            for room in list(client.rooms):
                client.leave(room)
            # An id_generator may reuse an id: only forget the entry if it is ours.
            if self.clients.get(client.id) is client:
                del self.clients[client.id]
                self.backplane.client_removed(client.id)
            if self._sessions is not None:
                self._sessions.close(client)
            self._fire_hook("disconnect", client, code, reason)

    def _find_handler(self, client: Client, event: Event) -> HandlerSignature | bool | None:
        """The handler for ``event``; ``None`` if there is none, ``False`` if no such channel."""
        name = event.name
        if event.channel is None:
            client_side: ClientChannel | None = client
            hub_side: HubChannel | None = self
        else:
            client_side = client.channels.get(event.channel)
            hub_side = self._channels.get(event.channel)
            if client_side is None and hub_side is None:
                return False
        for side in (client_side, hub_side):
            if side is None:
                continue
            handlers = side._handlers
            handler = handlers.once.pop(name, None)
            if handler is not None:
                return handler
            handler = handlers.on.get(name)
            if handler is not None:
                return handler
        return None

    def _dispatch(self, client: Client, event: Event) -> None:
        request_id = event.request_id
        if event.channel is None and event.name in RESERVED_EVENTS:
            if request_id is not None:
                self._reject(client, request_id, f"'{event.name}' is a reserved event name")
            return
        handler = self._find_handler(client, event)
        if not handler:
            if request_id is not None:
                if handler is False:
                    self._reject(client, request_id, f"Channel '{event.channel}' does not exist")
                else:
                    where = f" on channel '{event.channel}'" if event.channel is not None else ""
                    self._reject(client, request_id, f"No event listener for '{event.name}'{where}")
            return
        assert isinstance(handler, HandlerSignature)
        try:
            args = handler.bind(client, event.args)
        except Exception as exc:
            if not isinstance(exc, ConversionError):
                # A type's own validation failed: still the client's bad arguments.
                exc = ConversionError(f"bad arguments for '{event.name}': {exc}")
            logger.info("bad arguments for %r from %s: %s", event.name, client.id, exc)
            self._fire_hook("error", client, exc)
            if request_id is not None:
                self._reject(client, request_id, str(exc))
            return
        if handler.is_async:
            task = self._spawn(self._run_async(client, event, handler, args))
            if request_id is not None:
                client._tasks[request_id] = task
            return
        try:
            result = handler.func(*args)
        except Exception as exc:
            self._handler_failed(client, event, exc)
            return
        if result is not None and inspect.isawaitable(result):
            self._spawn(self._await_result(client, event, result))
        elif request_id is not None:
            self._answer(client, request_id, result)

    async def _run_async(
        self, client: Client, event: Event, handler: HandlerSignature, args: list[Any]
    ) -> None:
        await self._await_result(client, event, handler.func(*args))

    async def _await_result(self, client: Client, event: Event, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if event.request_id is not None:
                client._tasks.pop(event.request_id, None)
            return
        except Exception as exc:
            self._handler_failed(client, event, exc)
        else:
            if event.request_id is not None:
                self._answer(client, event.request_id, result)
        finally:
            if event.request_id is not None:
                client._tasks.pop(event.request_id, None)

    def _handler_failed(self, client: Client, event: Event, exc: Exception) -> None:
        if isinstance(exc, Reject):
            if event.request_id is not None and self.protocol.supports_requests:
                result = Result(event.request_id, error=exc.value, is_error=True)
                client.send(self.protocol.encode_result(result))
            return
        logger.exception("error in the handler of %r", event.name, exc_info=exc)
        self._fire_hook("error", client, exc)
        if event.request_id is not None:
            message = str(exc) or type(exc).__name__
            if self.debug:
                message = f"{type(exc).__name__}: {message}"
            self._reject(client, event.request_id, message)

    def _answer(self, client: Client, request_id: int | str, data: Any) -> None:
        try:
            message = self.protocol.encode_result(Result(request_id, data=data))
        except (TypeError, ValueError) as exc:
            self._reject(client, request_id, f"cannot send the result: {exc}")
            return
        client.send(message)

    def _reject(self, client: Client, request_id: int | str, message: str) -> None:
        if not self.protocol.supports_requests:
            return
        result = Result(request_id, error={"message": message}, is_error=True, error_object=True)
        client.send(self.protocol.encode_result(result))
