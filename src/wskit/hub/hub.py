"""The event hub: clients, events, rooms, channels and requests over WebSocket.

Theory of operation
===================

A :class:`Hub` is a connection handler: give it to :func:`wskit.serve` (or
mount it in an ASGI app) and it runs every connection as a
:class:`~wskit.hub.client.Client` (:meth:`Hub.handle`). It reads the
connection's messages and asks its :class:`~wskit.hub.wire.WireProtocol` to
turn each into a packet: an event or a request goes to the dispatcher
(:mod:`wskit.hub.dispatch` says which handler runs, and how), the answer to
a request the hub sent goes to the client that asked, and a cancel stops
the handler still answering. Hooks (``connect``, ``message``,
``disconnect``...) run on the way. Nothing a client sends stops the hub.

Emits go the other way. A room emit, an emit to one client or to everyone is
encoded once and handed to the :class:`~wskit.hub.backplane.Backplane`,
which calls :meth:`Node.deliver() <wskit.hub.Node.deliver>` on every node. Delivery
(:mod:`wskit.hub.rooms`) turns the text into one prepared frame and writes
that frame straight on the writers of the local members (``fanout()``, the
broadcast loop of :mod:`wskit.asyncio.direct_write`), one by one only for
the connections it leaves. Each client's unsent bytes are bounded by
``max_buffer``: past it, the hub drops that client's messages (counting
them) or closes it, as ``overflow`` says, and the other clients never wait.

Bounds on each client
=====================

Nothing a client sends makes the hub hold more than a bounded amount for it.

* **Messages**: the connection bounds the size of a message (``max_size``)
  and how many wait unread (its receive queue); the wire protocol bounds
  what one decodes to (``max_depth``, ``max_items``, see
  :mod:`wskit.hub.wire`), and a message over them is refused: its request
  answered with an error, or the connection closed with 1008.
* **Handlers in flight**: an ``async`` handler runs as a task, so a client
  could start any number of them. At most ``max_inflight`` run per client;
  when they all do, the hub stops reading that client
  (:meth:`Client.wait_to_read <wskit.hub.client.Client.wait_to_read>`):
  its messages stay in the connection's receive queue, which, once full,
  stops reading the socket, and TCP pushes back on the client. That is
  backpressure, not an error: each message is read as soon as a handler
  ends.
* **No deadlock**: a handler may ``await client.request(...)``, whose answer
  comes on the very connection the hub stopped reading, behind whatever the
  client sent before it. So the hub reads on, whatever its slots, while
  the client owes an answer to one of ours (sending a request wakes the
  reading loop). The answers and cancels it reads are handled at once; a
  request or event read meanwhile has no slot, so it waits, its decoded
  arguments in ``client.parked`` (at most ``max_inflight`` of them; each
  starts in order as a slot frees). Past that, a request is answered with
  the error "too many requests in flight" and an event is dropped, both
  counted in ``client.refused``: only a client that keeps sending requests
  while it owes us an answer meets it. So the memory of one client is at
  most ``2 * max_inflight`` decoded messages besides the connection's
  queue, and a handler waiting on its own client always gets its answer.
  (A handler that waits for the same client's next *event*, rather than an
  answer, holds its slot meanwhile: with every slot held that way, the
  event is never read. Use a request for that.)
* **Rate**: with ``rate_limit=(rate, burst)``, each client's events and
  requests go through a :class:`~wskit.limits.TokenBucket`; past it, a
  request is answered with "rate limit exceeded" and an event dropped
  (``rate_limit_policy="reject"``), or the client closed with 1008
  (``"close"``).
* **Errors and the log**: see :mod:`wskit.hub.dispatch`. A client reads the
  text of an exception only if the handler raised it for the client
  (:class:`Reject`, :class:`ClientError`) or with ``debug=True``; what a
  client causes is logged through :data:`wskit.limits.client_caused`, at a
  bounded rate whatever it sends.

Scale-out (see :mod:`wskit.hub.backplane.redis`): with ``Hub(backplane="redis://...")``
room emits, emits to one client and to everyone reach every node through
Redis; :attr:`Hub.cluster` asks and acts across nodes
(:mod:`wskit.hub.cluster`), ``presence=True`` keeps who is in which room
across nodes, and ``recovery=True`` numbers room messages so that a client
that reconnects gets what it missed (:mod:`wskit.hub.recovery`).

Where the parts live: handler tables and hooks in :mod:`wskit.hub.registry`
(shared by the hub's channels and the clients' channels), the server-side
client in :mod:`wskit.hub.client`, dispatch in :mod:`wskit.hub.dispatch`,
the room table and delivery in :mod:`wskit.hub.rooms`, the wire formats in
:mod:`wskit.hub.wire` and the conversion of arguments in
:mod:`wskit.hub.convert`. This module holds the :class:`Hub` itself: its
options, registration, queries, serving, and the loop of each connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

from ..asyncio.connection import Conn
from ..asyncio.direct_write import Writer
from ..asyncio.server import Server, ServerConn, serve
from ..exceptions import ConnectionClosed
from ..limits import TokenBucket, client_caused
from ..protocol.http11 import Request, Response
from .background import BackgroundTasks
from .backplane import Backplane, HistoryError, MemoryBackplane, Position, PresenceEvent, Target
from .client import Client, ClientChannel
from .cluster import Cluster
from .dispatch import Dispatcher, Middleware
from .errors import ClientError, Reject, RequestError
from .recovery import Recovery, SessionManager
from .registry import RESERVED_EVENTS, Handler, HandlerT, Registry, call_hooks
from .rooms import LocalRooms, Overflow, RoomEmitter
from .wire import (
    HUB_CHANNEL,
    Cancel,
    Event,
    IrisProtocol,
    Result,
    WireError,
    WireProtocol,
    WsWrapperProtocol,
)

__all__ = [
    "Hub",
    "Client",
    "HubChannel",
    "ClientChannel",
    "RoomEmitter",
    "RequestError",
    "Reject",
    "ClientError",
    "RESERVED_EVENTS",
    "MAX_CLIENT_ROOM_NAME",
]

logger = logging.getLogger("wskit.hub")

MAX_CLIENT_ROOM_NAME = 256
"""The longest room name a client may choose (with ``client_rooms``), in characters."""

IdGenerator = Callable[[Request], str]
RateLimitPolicy = Literal["reject", "close"]
RoomGuard = Callable[[Client, str], bool | Awaitable[bool]]
MiddlewareT = TypeVar("MiddlewareT", bound=Middleware)


class _Deliver(Protocol):
    """The signature of :meth:`~wskit.hub.backplane.Node.deliver`."""

    def __call__(
        self,
        target: Target,
        name: str,
        message: str,
        exclude: str | None,
        position: Position | None = None,
    ) -> int: ...


def _protocol_of(
    protocol: str | WireProtocol, max_depth: int, max_items: int | None
) -> WireProtocol:
    if isinstance(protocol, WireProtocol):
        return protocol
    if protocol == "ws-wrapper":
        return WsWrapperProtocol(max_depth=max_depth, max_items=max_items)
    if protocol == "iris":
        return IrisProtocol()
    raise ValueError(
        f"unknown wire protocol {protocol!r}; use 'ws-wrapper', 'iris' or a WireProtocol"
    )


def _default_id(request: Request) -> str:
    return uuid.uuid4().hex


class HubChannel(Registry):
    """A named channel of the hub (a namespace): its own handlers; emits to every client."""

    def __init__(self, hub: Hub, name: str | None) -> None:
        super().__init__(name, Client)
        self.hub = hub

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` on this channel to every client of every node.

        A reserved name on the default channel raises ``ValueError``
        (:data:`~wskit.hub.wire.RESERVED_EVENTS`), as on every emit.
        """
        message = self.hub.protocol.encode_event(event, args, self.name)
        self.hub.backplane.publish(Target.ALL, "", message)

    def to(self, *rooms: str) -> RoomEmitter:
        """Emit on this channel to the members of ``rooms`` (see :meth:`Hub.to`)."""
        return RoomEmitter(self.hub, rooms, self.name, None)


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
        max_client_rooms: rooms a client may be in when it asks to join
            another (``None``: any number); room names a client chooses are
            at most :data:`MAX_CLIENT_ROOM_NAME` characters. Each room costs
            memory and, with Redis, a subscription: a client must not choose
            how many.
        debug: tell clients the type and text of any exception a handler
            raises (for development). Off, a client reads an exception's
            text only when the handler raised it for the client
            (:class:`ClientError` for an ``Error`` with that message,
            :class:`Reject` for a plain value); any other exception answers
            "Internal server error (error <id>)", and the log has its
            traceback under the same id.
        max_inflight: handlers (``async``, or returning an awaitable) running
            at once per client. When they all run, the hub stops reading
            that client until one ends (backpressure; see "Bounds on each
            client" in :mod:`wskit.hub.hub`), except for the answers it owes.
        max_depth: arrays and objects nested at most this deep in a message
            (ws-wrapper protocol given by name; a :class:`WireProtocol`
            instance keeps its own bounds).
        max_items: arrays, objects and values in a message at most
            (``None``: any); likewise.
        rate_limit: ``(rate, burst)``: each client may send ``burst`` events
            and requests at once, then ``rate`` per second; ``None`` (the
            default): no limit.
        rate_limit_policy: past the rate, ``"reject"`` answers a request
            with an error and drops an event (counted in ``client.refused``);
            ``"close"`` closes the client with 1008.
        recovery: number room messages and let reconnecting clients get
            what they missed (``True`` or a :class:`~wskit.hub.recovery.Recovery`);
            ws-wrapper protocol only. See :mod:`wskit.hub.recovery`.
        presence: keep who is in which room across nodes (:meth:`presence`,
            :meth:`on_presence`); ``presence_info(client) -> dict`` adds
            what the entries say about each client.
        request_timeout: seconds ``client.request()`` waits for the client's
            answer (60 by default; ``None``: as long as the client stays
            connected); a call may pass its own ``timeout``. Past it the
            request fails with :class:`RequestError` and the client is told
            to cancel it. A client that never answers would otherwise hold
            the awaiting handler, and its slot, for as long as it stays.

    ``backplane`` may also be a URL, ``"redis://host:port/db"``, for a
    :class:`~wskit.hub.backplane.redis.RedisBackplane` (which needs the ``redis`` package).

    Hooks are registered with ``@hub.on("connect")`` (``open``),
    ``"disconnect"`` (``close``; called with client, code, reason),
    ``"error"`` (client, exception), ``"message"`` (client, raw message:
    every message, before dispatch), and with :meth:`on_leave` and
    :meth:`on_native` (messages the wire protocol does not claim).

    The wire protocol and the backplane are chosen once, here.
    """

    #: The table of the hub's hooks, by name (there from the start).
    hooks: dict[str, list[Handler]]

    #: Write an emit to the local clients it is for (:meth:`Node.deliver
    #: <wskit.hub.backplane.Node.deliver>`). The backplane calls it for every
    #: emit, so it is the room table's own method, bound here once
    #: (:meth:`LocalRooms.deliver <wskit.hub.rooms.LocalRooms.deliver>`): the
    #: call costs nothing on top of the delivery.
    deliver: _Deliver

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
        max_client_rooms: int | None = 100,
        debug: bool = False,
        max_inflight: int = 16,
        max_depth: int = 32,
        max_items: int | None = 10_000,
        rate_limit: tuple[float, float] | None = None,
        rate_limit_policy: RateLimitPolicy = "reject",
        recovery: bool | Recovery = False,
        presence: bool = False,
        presence_info: Callable[[Client], dict[str, Any]] | None = None,
        request_timeout: float | None = 60.0,
    ) -> None:
        super().__init__(self, None)
        #: Seconds a request to a client (``client.request()``) waits for
        #: its answer unless the call says otherwise; ``None``: no limit.
        self.request_timeout = request_timeout
        self.hooks = {}
        self.protocol = _protocol_of(protocol, max_depth, max_items)
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        if rate_limit is not None:
            TokenBucket(*rate_limit)  # checks the numbers now rather than per connection
        if rate_limit_policy not in ("reject", "close"):
            raise ValueError("rate_limit_policy must be 'reject' or 'close'")
        #: ``(rate, burst)`` of each client's events and requests, or ``None``.
        self.rate_limit = rate_limit
        #: What happens past the rate: ``"reject"`` or ``"close"``.
        self.rate_limit_policy: RateLimitPolicy = rate_limit_policy
        if isinstance(backplane, str):
            from .backplane.redis import RedisBackplane

            backplane = RedisBackplane(backplane)
        self.backplane = backplane if backplane is not None else MemoryBackplane()
        settings: Recovery | None = None
        if recovery:
            if not isinstance(self.protocol, WsWrapperProtocol):
                raise ValueError("recovery needs the ws-wrapper protocol")
            settings = recovery if isinstance(recovery, Recovery) else Recovery()
            self.backplane.history_size = settings.history
            self.backplane.history_ttl = max(settings.history_ttl, settings.window)
        #: Node-to-node calls: clients and rooms across the cluster, remote joins...
        self.cluster = Cluster(self)
        self.backplane.attach(self)
        self.id_generator = id_generator or _default_id
        if overflow not in ("drop", "close"):
            raise ValueError("overflow must be 'drop' or 'close'")
        self._background = BackgroundTasks("a background task", logger)
        self._channels: dict[str, HubChannel] = {}
        # The backplane's start, shared by every caller of start() until close().
        self._starting: asyncio.Future[None] | None = None
        self._dispatcher = Dispatcher(
            self, self._channels, self.protocol, self._spawn, debug, max_inflight
        )
        self._table: LocalRooms[Client] = LocalRooms(
            self.backplane,
            self._spawn,
            self._fire_leave,
            max_buffer=max_buffer,
            overflow=overflow,
            overflow_code=overflow_code,
            presence=presence,
            presence_info=presence_info,
        )
        self.deliver = self._table.deliver
        self._sessions: SessionManager[Client] | None = None
        if settings is not None:
            self._sessions = SessionManager(self._table, self.protocol, settings, self._spawn)
            self._table.sessions = self._sessions
        #: Rooms a client may be in when it asks to join one more (``None``: any).
        self.max_client_rooms = max_client_rooms
        if client_rooms:
            self._enable_client_rooms(None if client_rooms is True else client_rooms)
        if self._sessions is not None:
            sessions = self._sessions

            def hello(client: Client) -> dict[str, Any]:
                return sessions.hello(client)

            self.of(HUB_CHANNEL).on("hello", hello)

    # -- what the room table and the dispatcher keep ------------------------------------

    @property
    def clients(self) -> dict[str, Client]:
        """Clients connected to this node, by id."""
        return self._table.clients

    @property
    def rooms(self) -> dict[str, dict[Client, Writer | None]]:
        """Rooms with members on this node, each member with its connection's writer."""
        return self._table.members

    @property
    def max_buffer(self) -> int:
        """Unsent bytes a client may hold before ``overflow`` applies."""
        return self._table.max_buffer

    @max_buffer.setter
    def max_buffer(self, value: int) -> None:
        self._table.max_buffer = value

    @property
    def overflow(self) -> Overflow:
        """``"drop"`` a slow client's messages, or ``"close"`` it."""
        return self._table.overflow

    @overflow.setter
    def overflow(self, value: Overflow) -> None:
        self._table.overflow = value

    @property
    def overflow_code(self) -> int:
        """The close code of ``overflow="close"``."""
        return self._table.overflow_code

    @overflow_code.setter
    def overflow_code(self, value: int) -> None:
        self._table.overflow_code = value

    @property
    def dropped(self) -> int:
        """Messages dropped because a client's buffer was full."""
        return self._table.dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._table.dropped = value

    @property
    def presence_enabled(self) -> bool:
        """Whether room memberships are recorded as presence (``presence=True``)."""
        return self._table.presence_enabled

    @presence_enabled.setter
    def presence_enabled(self, value: bool) -> None:
        self._table.presence_enabled = value

    @property
    def presence_info(self) -> Callable[[Client], dict[str, Any]] | None:
        """``presence_info(client) -> dict``: what the presence entries say of a client."""
        return self._table.presence_info

    @presence_info.setter
    def presence_info(self, value: Callable[[Client], dict[str, Any]] | None) -> None:
        self._table.presence_info = value

    @property
    def debug(self) -> bool:
        """Whether clients read the type and text of any exception a handler raises."""
        return self._dispatcher.debug

    @debug.setter
    def debug(self, value: bool) -> None:
        self._dispatcher.debug = value

    @property
    def max_inflight(self) -> int:
        """Handlers running at once per client (a change applies to new connections)."""
        return self._dispatcher.max_inflight

    @max_inflight.setter
    def max_inflight(self, value: int) -> None:
        self._dispatcher.max_inflight = value

    # -- registration --------------------------------------------------------------

    def on_leave(self, handler: HandlerT) -> HandlerT:
        """Register ``handler(client, room)``, called when a client leaves a room."""
        self._add_hook("leave", handler, once=False)
        return handler

    def on_presence(self, handler: HandlerT) -> HandlerT:
        """Register ``handler(event)``, called with each :class:`PresenceEvent`.

        It runs on the node where the client joined or left, and on every
        node with members in that room (``presence=True`` needed).
        """
        self._add_hook("presence", handler, once=False)
        return handler

    def on_native(self, handler: HandlerT) -> HandlerT:
        """Register ``handler(client, message)`` for messages the wire protocol ignores."""
        self._add_hook("native", handler, once=False)
        return handler

    def use(self, middleware: MiddlewareT) -> MiddlewareT:
        """Register ``middleware(client, event)``, which sees every incoming event first.

        Every event and request from a client, on any channel, goes through
        the middleware in registration order before its handler: each may
        pass it on (or a changed :class:`~wskit.hub.wire.Event`), answer it
        (:class:`~wskit.hub.dispatch.Answer`), or stop it (``None``, or raise
        :class:`ClientError`); see :data:`~wskit.hub.dispatch.MiddlewareOutcome`.

        Raises:
            RuntimeError: clients are connected already (a connection takes
                the hub's middleware when it opens, and a check the middleware
                should make must not miss the clients already there).
        """
        if self._table.clients:
            raise RuntimeError("register middleware before clients connect")
        self._dispatcher.middleware.append(middleware)
        return middleware

    def of(self, name: str) -> HubChannel:
        """The hub's channel ``name`` (created on first use), with its own handlers."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = HubChannel(self, name)
        return channel

    def _enable_client_rooms(self, guard: RoomGuard | None) -> None:
        channel = self.of(HUB_CHANNEL)

        async def join(client: Client, room: str) -> bool:
            if len(room) > MAX_CLIENT_ROOM_NAME:
                raise ClientError(f"room names are at most {MAX_CLIENT_ROOM_NAME} characters")
            limit = self.max_client_rooms
            if limit is not None and len(client.rooms) >= limit and room not in client.rooms:
                raise ClientError(f"already in {limit} rooms, the most a client may join")
            if guard is not None:
                allowed = guard(client, room)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if not allowed:
                    raise ClientError(f"not allowed to join room '{room}'")
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
        sessions = self._sessions
        if sessions is not None and sessions.joining(client, room):
            # A recovering (session) client: the join task waits for the cursor
            # and writes the replay; any other client just needs the cursor.
            await sessions.settled(client, room)
        elif self.backplane.cursor(room) is None:
            try:
                await self.backplane.wait_cursor(room, 5.0)
            except HistoryError:
                pass

    def _fire_leave(self, client: Client, room: str) -> None:
        self._dispatcher.fire_hook("leave", client, room)

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``awaitable`` in the background, keeping a reference until it ends."""
        return self._background.spawn(awaitable)

    # -- queries ---------------------------------------------------------------------

    def get(self, client_id: str) -> Client | None:
        """The local client with this id, or ``None``."""
        return self._table.clients.get(client_id)

    def clients_in(self, room: str) -> list[Client]:
        """The local members of ``room``."""
        return list(self._table.members.get(room, ()))

    def count(self, room: str | None = None) -> int:
        """How many local clients are connected, or are in ``room``."""
        if room is None:
            return len(self._table.clients)
        return len(self._table.members.get(room, ()))

    def room_names(self) -> list[str]:
        """The rooms that have local members."""
        return list(self._table.members)

    async def disconnect(self, client_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close the client with this id; ``False`` if it is not connected here."""
        client = self._table.clients.get(client_id)
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
        """Connect the backplane (done by :meth:`serve` and on the first connection).

        Raises:
            BackplaneUnavailable: the broker cannot be reached (and the backplane
                was not asked for a degraded start). Every caller waiting for
                this start gets the error; the next call tries again.
        """
        starting = self._starting
        if starting is None:
            self._starting = starting = asyncio.ensure_future(self.backplane.start())
        try:
            # Shielded: a caller that gives up does not cancel the start for the others.
            await asyncio.shield(starting)
        except Exception:
            if self._starting is starting:
                self._starting = None
            raise

    async def close(self) -> None:
        """Disconnect the backplane (after the server closed): flush, then stop."""
        await asyncio.sleep(0)  # let disconnect hooks schedule their work
        if self._background:
            await asyncio.wait(list(self._background), timeout=2.0)
        await self.backplane.close()
        self._starting = None

    async def close_room(self, room: str) -> int:
        """Make every member of ``room``, on every node, leave it; how many left.

        The members stay connected (socket.io's ``socketsLeave``); each
        leave calls the leave hooks. Nodes that do not answer within
        ``hub.cluster.timeout`` are not counted.
        """
        left = self._table.clear(room)
        answers = await self.backplane.call(
            "close_room", {"room": room}, None, self.cluster.timeout
        )
        return left + sum(answer for answer in answers if type(answer) is int)

    def to(self, *rooms: str) -> RoomEmitter:
        """Emit to the members of ``rooms`` on every node, once each (``.exclude(*ids)``)."""
        return RoomEmitter(self, rooms, None, None)

    def emit_to_client(self, client_id: str, event: str, *args: Any) -> None:
        """Emit to one client by id, on whichever node it is."""
        message = self.protocol.encode_event(event, args, None)
        self.backplane.publish(Target.CLIENT, client_id, message)

    # -- what the backplane asks of a node (besides deliver) -----------------------------

    def is_local(self, client_id: str) -> bool:
        """Whether the client is connected to this node."""
        return client_id in self._table.clients

    async def handle_call(self, op: str, args: dict[str, Any]) -> Any:
        """Answer another node's call; see :class:`~wskit.hub.cluster.Cluster`."""
        table = self._table
        if op == "clients":
            room = args.get("room")
            members = table.clients.values() if room is None else table.members.get(room, ())
            return [{"id": c.id, "node": self.node_id, "rooms": sorted(c.rooms)} for c in members]
        if op == "rooms":
            return sorted(table.members)
        if op == "close_room":
            return self._table.clear(str(args["room"]))
        client = table.clients.get(str(args.get("client")))
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
        call_hooks("presence", list(self.hooks.get("presence", ())), (event,), self._spawn)

    def presence_entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every local room membership, with its presence info."""
        return self._table.presence_entries()

    def advanced(self, room: str, position: Position) -> None:
        """A message delivered during an outage got its position: tell session clients."""
        if self._sessions is not None:
            self._sessions.advanced(room, position)

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
        table = self._table
        client = Client(self, conn, self.id_generator(conn.request), table)
        table.clients[client.id] = client
        self.backplane.client_added(client.id)
        if self._sessions is not None:
            await self._sessions.open(client)
        if self.protocol.client_id_room:
            client.join(client.id)
        # Read once per connection: the loop below runs for every message.
        fire_hook = self._dispatcher.fire_hook
        dispatcher = self._dispatcher
        dispatch = (
            dispatcher.dispatch_through_middleware if dispatcher.middleware else dispatcher.dispatch
        )
        hub_hooks = self.hooks
        cancel = self._dispatcher.cancel
        max_inflight = self._dispatcher.max_inflight
        bucket = TokenBucket(*self.rate_limit) if self.rate_limit is not None else None
        logger.debug("client %s connected on %s", client.id, conn.request.path)
        fire_hook("connect", client)
        code, reason = 1006, ""
        decode = self.protocol.decode
        try:
            async for message in conn:
                if "message" in hub_hooks or client.hooks is not None:
                    fire_hook("message", client, message)
                try:
                    packet = decode(message)
                except WireError as exc:
                    if await self._refuse_message(client, exc):
                        continue
                    break
                if packet is None:
                    fire_hook("native", client, message)
                elif type(packet) is Event:
                    if bucket is None or bucket.take():
                        dispatch(client, packet)
                    elif not await self._over_rate(client, packet):
                        break
                elif type(packet) is Result:
                    client.resolve(packet)
                elif type(packet) is Cancel:
                    cancel(client, packet.request_id)
                # Backpressure: with every slot taken, read no more until one frees.
                if client.inflight >= max_inflight and not await client.wait_to_read(max_inflight):
                    break
        except ConnectionClosed:
            pass
        finally:
            code = conn.close_code if conn.close_code is not None else 1006
            reason = conn.close_reason or ""
            client.closed = True
            client.end_requests()
            for room in list(client.rooms):
                client.leave(room)
            # An id_generator may reuse an id: only forget the entry if it is ours.
            if table.clients.get(client.id) is client:
                del table.clients[client.id]
                self.backplane.client_removed(client.id)
            if self._sessions is not None:
                self._sessions.close(client)
            logger.debug("client %s disconnected: %d %s", client.id, code, reason)
            fire_hook("disconnect", client, code, reason)

    async def _refuse_message(self, client: Client, exc: WireError) -> bool:
        """A message the wire protocol refused: answer its request, or close; keep reading?"""
        client_caused.log(
            logger, logging.INFO, ("refused-message",), "client %s: %s", client.id, exc
        )
        if exc.request_id is not None and self.protocol.supports_requests:
            self._dispatcher.reject(client, exc.request_id, str(exc))
            return True
        await client.disconnect(1008, str(exc))
        return False

    async def _over_rate(self, client: Client, event: Event) -> bool:
        """``event`` came over the client's rate limit: apply the policy; keep reading?"""
        if self.rate_limit_policy == "reject":
            self._dispatcher.refuse(client, event, "rate limit exceeded")
            return True
        client.refused += 1
        client_caused.log(
            logger, logging.INFO, ("rate-limited",), "client %s: over its rate limit", client.id
        )
        await client.disconnect(1008, "rate limit exceeded")
        return False
