"""Shutting endpoints down: ASGI lifespan, closing with 1001, and the glue for uvicorn.

Theory of operation
===================

An endpoint knows its open connections and its running handlers
(:class:`EndpointShutdown`, the base class of
:class:`~wskit.asgi.endpoint.WebSocketEndpoint`). :meth:`~EndpointShutdown.shutdown`
refuses new connections (the endpoint answers 503), closes the open ones
with 1001 and waits for their handlers; :meth:`~EndpointShutdown.resume`, or
a ``lifespan.startup``, accepts connections again.

The ASGI ``lifespan.shutdown`` event comes *after* the server has dealt with
open connections, so it is enough only for servers that leave them open
until then. uvicorn closes them itself, with 1012, as soon as it begins to
shut down: :func:`install_uvicorn_shutdown` wraps ``uvicorn.Server.shutdown``
so that :func:`shutdown_all` closes them with 1001 first. Every endpoint of
the process is registered (weakly) for :func:`shutdown_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..asyncio.server import ServerOptions
from .connection import AsgiConn
from .spec import ASGIProtocolError, Receive, Send

__all__ = ["EndpointShutdown", "install_uvicorn_shutdown", "shutdown_all"]

logger = logging.getLogger("wskit.asgi")

_endpoints: weakref.WeakSet[EndpointShutdown] = weakref.WeakSet()


class EndpointShutdown:
    """The part of an endpoint that closes its connections when the server stops.

    The base class of :class:`~wskit.asgi.endpoint.WebSocketEndpoint`: it
    tracks the connections open and the handlers running, answers the ASGI
    ``lifespan`` scope, and offers :meth:`lifespan`, :meth:`shutdown` and
    :meth:`resume`. Creating one registers it for :func:`shutdown_all`.

    Attributes:
        connections: the connections currently open (the endpoint adds and
            discards them).
    """

    #: The endpoint's settings: :meth:`shutdown` waits ``close_timeout`` for handlers.
    options: ServerOptions

    def __init__(self) -> None:
        self.connections: set[AsgiConn] = set()
        self._running: set[asyncio.Future[None]] = set()
        self._shutting_down = False
        _endpoints.add(self)

    @property
    def shutting_down(self) -> bool:
        """Whether new connections are refused: :meth:`shutdown` ran, :meth:`resume` did not."""
        return self._shutting_down

    @contextlib.asynccontextmanager
    async def handler_running(self) -> AsyncIterator[None]:
        """A connection's handler runs inside this block: :meth:`shutdown` waits for it to end."""
        done = asyncio.get_running_loop().create_future()
        self._running.add(done)
        try:
            yield
        finally:
            done.set_result(None)
            self._running.discard(done)

    async def serve_lifespan(self, receive: Receive, send: Send) -> None:
        """Answer an ASGI ``lifespan`` scope (the endpoint is the whole application).

        ``lifespan.startup`` calls :meth:`startup`; ``lifespan.shutdown`` calls
        :meth:`shutdown`; the failure of either is reported to the server.
        """
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    # The server reports it and exits: a hub whose broker is out of reach.
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return
            else:
                raise ASGIProtocolError(
                    f"expected ASGI message 'lifespan.startup' or 'lifespan.shutdown', got {kind!r}"
                )

    def resume(self) -> None:
        """Accept new connections again after :meth:`shutdown`."""
        self._shutting_down = False

    async def startup(self) -> None:
        """What the application's startup does: :meth:`resume`; subclasses add theirs."""
        self.resume()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A lifespan context: ``Starlette(lifespan=endpoint.lifespan)``.

        On entry it runs :meth:`startup` (whose exception stops the
        application's startup); on exit the endpoint closes its connections
        with 1001 (see :meth:`shutdown`). In your own lifespan: ``async with
        endpoint.lifespan(app): yield``.
        """
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def shutdown(
        self, code: int = 1001, reason: str = "server shutting down", timeout: float | None = None
    ) -> None:
        """Refuse new connections (503); close the open ones; wait for their handlers.

        Each close waits for its handshake at most ``close_timeout``; the
        handlers then get ``timeout`` seconds (default ``close_timeout``) to
        return. New connections are refused until :meth:`resume` (which a
        ``lifespan.startup`` does).
        """
        self._shutting_down = True
        conns = list(self.connections)
        if conns:
            await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)
        running = list(self._running)
        if running:
            wait = self.options.close_timeout if timeout is None else timeout
            await asyncio.wait(running, timeout=wait)


async def shutdown_all(
    code: int = 1001,
    reason: str = "server shutting down",
    timeout: float | None = None,
    endpoints: Iterable[EndpointShutdown] | None = None,
) -> None:
    """Shut down ``endpoints``, by default every :class:`WebSocketEndpoint` of this process.

    See :meth:`WebSocketEndpoint.shutdown`.
    """
    chosen = list(_endpoints if endpoints is None else endpoints)
    if chosen:
        await asyncio.gather(*(e.shutdown(code, reason, timeout) for e in chosen))


def install_uvicorn_shutdown(
    server: Any,
    *endpoints: EndpointShutdown,
    code: int = 1001,
    reason: str = "server shutting down",
    timeout: float | None = None,
) -> None:
    """Make a ``uvicorn.Server`` close wskit's connections with 1001 before its own shutdown.

    uvicorn closes every open WebSocket with 1012 as soon as it begins to
    shut down, before the application's lifespan shutdown runs. This wraps
    ``server.shutdown`` so that :func:`shutdown_all` runs first, for
    ``endpoints`` (default: every endpoint of the process)::

        server = uvicorn.Server(uvicorn.Config(app, port=8000))
        install_uvicorn_shutdown(server)
        await server.serve()

    Once uvicorn has stopped, the endpoints accept connections again (for a
    server started anew with the same application).
    """
    original = server.shutdown

    async def shutdown(sockets: Any = None) -> None:
        chosen = list(endpoints or _endpoints)
        try:
            await shutdown_all(code, reason, timeout, chosen)
        except Exception:
            logger.exception("error closing WebSocket connections")
        try:
            await original(sockets)
        finally:
            for endpoint in chosen:
                endpoint.resume()

    server.shutdown = shutdown
