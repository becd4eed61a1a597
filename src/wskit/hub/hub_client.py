"""The hub's Python client program: ws-wrapper events and requests, rooms, recovery.

:class:`HubClient` does for Python what ``wskit.js`` does in the browser:
it reconnects with backoff, rejoins its rooms, and with a hub that has
``recovery`` on it presents its session and room positions when it
reconnects, so that it gets what it missed, in order, exactly once::

    client = HubClient("ws://127.0.0.1:8000/")
    client.on("news", lambda text: print(text))
    client.on("open", lambda info: print("recovered" if info["recovered"] else "reload"))
    await client.connect()
    await client.join("lobby")
    print(await client.request("add", 1, 2))
    ...
    await client.close()

``wskit.connect`` users can do the same by hand: add ``wskit=1`` to the
query string, keep the session of the ``welcome`` event on the ``_wskit``
channel and, for each room, the ``"o"`` of its messages (or the position
of the ``joined`` notice), and reconnect with
``wskit=<URL-encoded JSON {"s": session, "p": {room: position}}>``; see
:mod:`wskit.hub.recovery`.

(It is also importable as ``wskit.hub.client.HubClient``, its old home;
:mod:`wskit.hub.client` now holds the hub's server-side ``Client``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random
import urllib.parse
from collections.abc import Callable
from typing import Any, overload

from ..asyncio.client import ClientConn, connect
from ..exceptions import ConnectionClosed, WebSocketError
from .errors import RequestError
from .registry import HandlerT
from .wire import HUB_CHANNEL, SESSION_QUERY_KEY

__all__ = ["HubClient"]

logger = logging.getLogger("wskit.hub.client")

Handler = Callable[..., Any]


class HubClient:
    """A reconnecting ws-wrapper client that recovers missed room messages.

    Args:
        url: the hub's WebSocket URL; set :attr:`url` to reconnect elsewhere.
        reconnect: connect again after the connection is lost.
        backoff: the first and the longest wait between attempts (seconds).
        recovery: ask the hub for a session and recover after reconnecting.
        connect_options: passed to :func:`wskit.connect`.

    Handlers (``on(event, handler, channel=None)``) get an event's arguments;
    lifecycle events: ``open`` (info: ``recovered``, ``resumed``,
    ``reason``, ``failed``), ``close`` (code, reason), ``recovery`` (info:
    ``room``, ``reason``; a room the hub joined later could not be
    recovered). A request from the hub is answered by its handler's return
    value. ``recovered`` and ``recovery`` hold what the last ``open`` said.
    """

    def __init__(
        self,
        url: str,
        *,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.1, 2.0),
        recovery: bool = True,
        **connect_options: Any,
    ) -> None:
        #: The hub's WebSocket URL; set it to reconnect elsewhere.
        self.url = url
        self.reconnect = reconnect
        self.backoff = backoff
        self.recovery_enabled = recovery
        self.connect_options = connect_options
        self.session: str | None = None
        #: The last known position in each room (``"epoch:offset"``).
        self.positions: dict[str, str] = {}
        self.rooms: set[str] = set()
        self.recovered = False
        self.recovery: dict[str, Any] | None = None
        self.conn: ClientConn | None = None
        self._handlers: dict[tuple[str | None, str], list[Handler]] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._welcome: dict[str, Any] | None = None
        self._failed: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._resume_at = 0.0
        #: How many times the connection was lost.
        self.drops = 0

    # -- handlers ----------------------------------------------------------------------

    @overload
    def on(
        self, event: str, handler: None = None, channel: str | None = None
    ) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def on(self, event: str, handler: HandlerT, channel: str | None = None) -> HandlerT: ...
    def on(self, event: str, handler: Handler | None = None, channel: str | None = None) -> Any:
        """Call ``handler(*args)`` for each ``event`` (usable as ``@client.on("event")``).

        Returns the handler unchanged (its type too), or, without one, the
        decorator that registers the function it decorates.
        """

        def add(func: Handler) -> Handler:
            self._handlers.setdefault((channel, event), []).append(func)
            return func

        return add if handler is None else add(handler)

    def _fire(self, channel: str | None, event: str, args: list[Any]) -> Any:
        result = None
        for func in list(self._handlers.get((channel, event), ())):
            try:
                result = func(*args)
                if inspect.isawaitable(result):
                    self._spawn(result)
                    result = None
            except Exception:
                logger.exception("error in the handler of %r", event)
        return result

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connecting --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is open and rooms are rejoined."""
        return self._ready.is_set()

    async def connect(self, timeout: float = 10.0) -> None:
        """Start connecting (and reconnecting); return once the first connection is ready."""
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        await self.wait_open(timeout)

    async def wait_open(self, timeout: float = 10.0) -> None:
        """Wait until connected (rooms rejoined, missed messages received)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    def _socket_url(self) -> str:
        if not self.recovery_enabled:
            return self.url
        if self.session is None:
            state = "1"
        else:
            state = json.dumps({"s": self.session, "p": self.positions}, separators=(",", ":"))
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}{SESSION_QUERY_KEY}={urllib.parse.quote(state)}"

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            resuming = self.recovery_enabled and self.session is not None
            try:
                conn = await self._open_connection(self._socket_url())
            except (OSError, WebSocketError, TimeoutError) as exc:
                logger.debug("cannot connect to %s: %s", self.url, exc)
            else:
                attempt = 0
                self.conn = conn
                self._welcome = None
                self._failed = []
                self._spawn(self._opened(conn, resuming))
                try:
                    async for message in conn:
                        self._received(conn, message)
                except ConnectionClosed:
                    pass
                self._lost(conn)
            if self._stopped():
                return
            attempt += 1
            delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
            delay *= 0.5 + random.random() / 2
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(delay, self._resume_at - loop.time()))

    async def _open_connection(self, url: str) -> ClientConn:
        """Open one connection to ``url`` (``wskit.testing`` opens it in memory instead)."""
        return await connect(url, **self.connect_options)

    def _stopped(self) -> bool:
        return self._closed or not self.reconnect

    def _lost(self, conn: ClientConn) -> None:
        self.drops += 1
        self._ready.clear()
        self.conn = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RequestError("disconnected"))
        self._pending.clear()
        self._fire(None, "close", [conn.close_code, conn.close_reason or ""])

    async def _opened(self, conn: ClientConn, resuming: bool) -> None:
        hello: Any = None
        try:
            if resuming:
                with contextlib.suppress(RequestError):
                    hello = await self._request(conn, HUB_CHANNEL, "hello", (), 10.0)
            for room in sorted(self.rooms):
                try:
                    await self._request(conn, HUB_CHANNEL, "join", (room,), 10.0)
                except RequestError as exc:
                    if str(exc) == "disconnected":
                        return
                    self.rooms.discard(room)
                    self.positions.pop(room, None)
                    logger.warning("could not rejoin room %r: %s", room, exc)
        except (ConnectionClosed, RequestError):
            return
        if conn is not self.conn:
            return
        welcome = hello if isinstance(hello, dict) else self._welcome
        reason: str | None = None
        if resuming:
            if welcome is None:
                reason = "unsupported"
            elif not welcome.get("recovered"):
                reason = welcome.get("reason") or "expired"
            elif self._failed:
                reason = self._failed[0]["reason"]
        self.recovered = resuming and reason is None
        self.recovery = {
            "recovered": self.recovered,
            "resumed": resuming,
            "reason": reason,
            "failed": list(self._failed),
        }
        self._ready.set()
        self._fire(None, "open", [dict(self.recovery)])

    # -- receiving -----------------------------------------------------------------------

    def _received(self, conn: ClientConn, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        args = data.get("a")
        request_id = data.get("i")
        channel = data.get("c")
        if isinstance(args, list) and args and isinstance(args[0], str):
            room, position = data.get("r"), data.get("o")
            if isinstance(room, str) and isinstance(position, str):
                self.positions[room] = position
            if channel == HUB_CHANNEL and request_id is None and self._notice(args):
                return
            if request_id is None:
                self._fire(channel, args[0], args[1:])
            else:
                self._spawn(self._answer(conn, request_id, channel, args))
            return
        future = self._pending.pop(request_id, None) if request_id is not None else None
        if future is None or future.done():
            return
        if "e" in data:
            error = data["e"]
            text = error.get("message") if isinstance(error, dict) else error
            future.set_exception(RequestError(str(text), error))
        else:
            future.set_result(data.get("d"))

    def _notice(self, args: list[Any]) -> bool:
        event = args[0]
        if event == "welcome" and len(args) > 1 and isinstance(args[1], dict):
            self._welcome = args[1]
            if isinstance(args[1].get("session"), str):
                self.session = args[1]["session"]
        elif event == "joined" and len(args) >= 5 and isinstance(args[1], str):
            room, position, result, reason = args[1:5]
            if isinstance(position, str):
                self.positions[room] = position
            if result is False:
                failure = {"room": room, "reason": reason or "history"}
                self._failed.append(failure)
                if self._ready.is_set():
                    self.recovered = False
                    self._fire(None, "recovery", [failure])
        elif event == "position" and len(args) >= 3:
            self.positions[str(args[1])] = str(args[2])
        else:
            return False
        return True

    async def _answer(
        self, conn: ClientConn, request_id: Any, channel: str | None, args: list[Any]
    ) -> None:
        handlers = self._handlers.get((channel, args[0]))
        reply: dict[str, Any] = {"i": request_id}
        if not handlers:
            reply.update(e={"message": f"No event listener for '{args[0]}'"}, _=1)
        else:
            try:
                result = handlers[0](*args[1:])
                if inspect.isawaitable(result):
                    result = await result
                reply["d"] = result
            except Exception as exc:
                reply.update(e={"message": str(exc)}, _=1)
        with contextlib.suppress(ConnectionClosed):
            await conn.send(json.dumps(reply))

    # -- sending -----------------------------------------------------------------------

    def _message(
        self, channel: str | None, event: str, args: tuple[Any, ...], request_id: int | None
    ) -> str:
        message: dict[str, Any] = {"a": [event, *args]}
        if channel is not None:
            message["c"] = channel
        if request_id is not None:
            message["i"] = request_id
        return json.dumps(message)

    async def _request(
        self,
        conn: ClientConn,
        channel: str | None,
        event: str,
        args: tuple[Any, ...],
        timeout: float,
    ) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await conn.send(self._message(channel, event, args, request_id))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestError(f"request {event!r} timed out after {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)

    def _conn(self) -> ClientConn:
        if self.conn is None or not self._ready.is_set():
            raise RequestError("not connected")
        return self.conn

    async def emit(self, event: str, *args: Any, channel: str | None = None) -> None:
        """Send an event (raises :class:`RequestError` when not connected)."""
        await self._conn().send(self._message(channel, event, args, None))

    async def request(
        self, event: str, *args: Any, channel: str | None = None, timeout: float = 10.0
    ) -> Any:
        """Ask the hub; return its answer (raises :class:`RequestError` on rejection)."""
        return await self._request(self._conn(), channel, event, args, timeout)

    async def join(self, room: str) -> Any:
        """Join ``room`` (the hub needs ``client_rooms``); rejoined after reconnecting."""
        answer = await self._request(self._conn(), HUB_CHANNEL, "join", (room,), 10.0)
        self.rooms.add(room)
        return answer

    async def leave(self, room: str) -> Any:
        """Leave ``room``."""
        self.rooms.discard(room)
        self.positions.pop(room, None)
        return await self._request(self._conn(), HUB_CHANNEL, "leave", (room,), 10.0)

    def drop(self, pause: float = 0.0) -> None:
        """Cut the connection without a closing handshake (as a network failure would).

        The client reconnects as usual, but not before ``pause`` seconds.
        """
        self._resume_at = asyncio.get_running_loop().time() + pause
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.abort()

    async def close(self) -> None:
        """Close for good."""
        self._closed = True
        conn = self.conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> HubClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
