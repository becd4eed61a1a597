"""A hub in memory: :class:`HubTestClient`, a :class:`~wskit.hub.HubClient` without sockets.

:class:`HubTestClient` is the hub's own Python client, speaking the hub's
wire (ws-wrapper JSON) exactly as it does over TCP: ``emit``, ``request``,
``join`` and ``leave``, handlers registered with ``on`` (which also answer
the hub's requests). Its connection is an in-memory one to a
:class:`~wskit.testing.server.MemoryServer` running the hub, so the hub
sees a real connection and runs all of its code. What it adds for tests:
every event the hub sent, in :attr:`HubTestClient.events`, and
:meth:`HubTestClient.next_event`, which waits for the next one of a name.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any

from ..asyncio.client import ClientConn
from ..asyncio.server import ServerOptions
from ..hub.hub import Hub
from ..hub.hub_client import HubClient
from .client import HOST, ClientOptions, open_client
from .server import MemoryServer

__all__ = ["HubEvent", "HubTestClient"]


@dataclass(frozen=True, slots=True)
class HubEvent:
    """An event the hub sent to a :class:`HubTestClient`."""

    #: The event's name.
    name: str
    #: Its arguments, as decoded from JSON.
    args: tuple[Any, ...]
    #: The channel it came on (``hub.of(name)``), ``None`` for the hub's own.
    channel: str | None = None


class HubTestClient(HubClient):
    """A client of ``hub`` in memory: ``async with HubTestClient(hub) as client:``.

    Connected on entering the block (after the hub accepted it) and closed
    at its end, with the server that runs the hub for it; a refused
    connection raises :exc:`~wskit.HandshakeRejected` there. It does not
    reconnect, nor ask for recovery.

    Args:
        hub: the hub under test.
        path: the request target, as a browser would open it: ``/``,
            ``/?token=abc``.
        max_events: how many events :attr:`events` keeps (the latest).
        server_options: the options of the server that runs the hub
            (default: those of :meth:`Hub.serve <wskit.hub.Hub.serve>`, which
            serves the JavaScript client too).
        client_options: the client's options (:class:`~wskit.testing.ClientOptions`).
    """

    def __init__(
        self,
        hub: Hub,
        path: str = "/",
        *,
        max_events: int = 1000,
        server_options: ServerOptions | None = None,
        client_options: ClientOptions | None = None,
    ) -> None:
        super().__init__(f"ws://{HOST}{path}", reconnect=False, recovery=False)
        fields: dict[str, Any] = dict(server_options.__dict__) if server_options else {}
        if fields.get("process_request") is None:
            fields["process_request"] = hub.process_request
        #: The hub under test.
        self.hub = hub
        #: The in-memory server that runs the hub for this client.
        self.server = MemoryServer(hub, ServerOptions(**fields))
        self.path = path
        self.client_options: ClientOptions = client_options or {}
        #: The events the hub sent, oldest first (the last ``max_events``).
        self.events: collections.deque[HubEvent] = collections.deque(maxlen=max_events)
        # Events that next_event() has not returned yet (bounded as events).
        self._unread: collections.deque[HubEvent] = collections.deque(maxlen=max_events)
        self._arrived: asyncio.Event | None = None
        self._first: ClientConn | None = None
        self._from_wire = False

    # -- the connection ----------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect to the hub in memory; return once the client is ready.

        Raises:
            HandshakeRejected: the hub's server refused the connection.
        """
        if self._first is None and self.conn is None:
            options: ClientOptions = {"open_timeout": timeout, **self.client_options}
            self._first = await open_client(self.server.accept, self.path, **options)
        await super().connect(timeout)

    async def _open_connection(self, url: str) -> ClientConn:
        conn, self._first = self._first, None
        if conn is None:  # reconnect=False: only the first connection is ever asked for
            raise ConnectionError("a HubTestClient connects once")
        return conn

    async def close(self) -> None:
        """Close the connection and the server; raise the exception of the hub's handler, if any."""
        if self._first is not None:
            await self._first.close()
            self._first = None
        await super().close()
        await self.server.aclose()

    async def __aenter__(self) -> HubTestClient:
        await self.connect()
        return self

    # -- the events received --------------------------------------------------------------

    def _received(self, conn: ClientConn, message: str | bytes) -> None:
        # What HubClient fires from here came on the wire (the lifecycle
        # events "open" and "close" are fired elsewhere).
        self._from_wire = True
        try:
            super()._received(conn, message)
        finally:
            self._from_wire = False

    def _fire(self, channel: str | None, event: str, args: list[Any]) -> Any:
        if self._from_wire:
            received = HubEvent(event, tuple(args), channel)
            self.events.append(received)
            self._unread.append(received)
            if self._arrived is not None:
                self._arrived.set()
        return super()._fire(channel, event, args)

    async def next_event(
        self, name: str, *, channel: str | None = None, timeout: float = 5.0
    ) -> HubEvent:
        """The oldest event called ``name`` that this method has not returned yet.

        Waits for it at most ``timeout`` seconds. Each event is returned
        once; events of other names stay for later calls.

        Raises:
            TimeoutError: none came in time (the message names what came).
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for event in self._unread:
                        if event.name == name and event.channel == channel:
                            self._unread.remove(event)
                            return event
                    if self._arrived is None or self._arrived.is_set():
                        self._arrived = asyncio.Event()  # shared by concurrent waiters
                    await self._arrived.wait()
        except TimeoutError:
            names = sorted({event.name for event in self._unread})
            raise TimeoutError(
                f"no event {name!r} within {timeout} s; unread events: {names or 'none'}"
            ) from None
