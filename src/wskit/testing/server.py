"""Connection handlers in memory: :func:`serve`, :class:`MemoryServer`, :func:`connect`.

A :class:`MemoryServer` is a :class:`wskit.Server` that listens on no
socket: each :meth:`MemoryServer.connect` makes one of its
:class:`~wskit.asyncio.server.ServerConn` connections and wires it to a
client in memory (:mod:`wskit.testing.transport`). Everything else is the
server's own code: the server-wide limits, ``process_request``, the
upgrader's checks and refusals, compression, the handler run with 1000
when it returns and 1011 when it raises, :attr:`~wskit.Server.counters`.

Unlike :func:`wskit.serve`, the handler's exceptions are not only logged:
the first one is raised again when the server closes (the end of
``async with``), so that a bug in the handler fails the test that found it,
whatever the test checked. ``raise_server_exceptions=False`` turns that
off (to test the 1011 a client then reads).
"""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar, Unpack

from ..asyncio.client import ClientConn
from ..asyncio.opening import Opening
from ..asyncio.server import Handler, Server, ServerConn, ServerOptions, ServerOptionsKwargs
from ..exceptions import ConnectionClosed
from .client import ClientOptions, open_client

__all__ = ["MemoryServer", "serve", "connect", "Connecting"]


class MemoryServer(Server):
    """A :class:`wskit.Server` without sockets; clients come from :meth:`connect`.

    Made by :func:`serve`. ``close()``, ``wait_closed()``, ``aclose()``,
    ``connections`` and ``counters`` are the server's; :attr:`~wskit.Server.port`
    and :attr:`~wskit.Server.sockets` have no socket to describe.
    """

    def __init__(
        self, handler: Handler, options: ServerOptions, *, raise_server_exceptions: bool = True
    ) -> None:
        #: The first exception a handler raised (other than a closed connection), or ``None``.
        self.error: Exception | None = None
        self.raise_server_exceptions = raise_server_exceptions
        super().__init__(self._watched(handler), options)

    def _watched(self, handler: Handler) -> Handler:
        """``handler``, keeping the first exception it raises before the server sees it."""

        async def watched(conn: ServerConn) -> None:
            try:
                await handler(conn)
            except ConnectionClosed:
                raise
            except Exception as exc:
                if self.error is None:
                    self.error = exc
                raise

        return watched

    def connect(
        self, path: str = "/", **options: Unpack[ClientOptions]
    ) -> Connecting[MemoryServer]:
        """Connect a client: ``async with server.connect("/chat") as conn: ...``.

        Also ``conn = await server.connect(...)``. The options are those of
        :func:`wskit.connect` that apply in memory (:class:`ClientOptions`).
        """
        return Connecting(self, path, options)

    def accept(self) -> ServerConn:
        """A new server-side connection, as the listening socket would make for each client."""
        return ServerConn(self)

    def raise_error(self) -> None:
        """Raise the first exception of a handler, if there was one (and it was not raised yet)."""
        error, self.error = self.error, None
        if error is not None and self.raise_server_exceptions:
            raise error

    async def aclose(self) -> None:
        """Close the connections (1001), wait for them, then raise a handler's exception."""
        await super().aclose()
        self.raise_error()


class serve(Opening[MemoryServer]):
    """Run ``handler`` in memory: ``async with wskit.testing.serve(handler) as server:``.

    :func:`wskit.serve` without the socket: the same options, the same
    server. Connect clients with :meth:`MemoryServer.connect`.

    Args:
        handler: the coroutine function run for each connection.
        options: a :class:`~wskit.ServerOptions`; keyword arguments override its fields.
        raise_server_exceptions: raise the first exception of a handler when
            the server closes (see the module's docstring).
        **kwargs: any field of :class:`~wskit.ServerOptions`.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        options: ServerOptions | None = None,
        raise_server_exceptions: bool = True,
        **kwargs: Unpack[ServerOptionsKwargs],
    ) -> None:
        self.server = MemoryServer(
            handler,
            ServerOptions.given(options, kwargs),
            raise_server_exceptions=raise_server_exceptions,
        )

    async def _open(self) -> MemoryServer:
        return self.server

    async def _close(self, server: MemoryServer) -> None:
        await server.aclose()


class _InMemory(Protocol):
    """What :class:`Connecting` needs of a server: :class:`MemoryServer`, the ASGI one."""

    def accept(self) -> asyncio.BaseProtocol: ...

    async def aclose(self) -> None: ...


S = TypeVar("S", bound=_InMemory)


class Connecting(Opening[ClientConn], Generic[S]):
    """An in-memory connection being opened; await it or use ``async with``.

    With ``async with``, the connection is closed at the end of the block;
    when the block owns the server (:func:`connect`,
    :func:`~wskit.testing.asgi.connect_asgi`), the server is closed too, and
    the exception of a handler (or of the application) raised.
    """

    def __init__(
        self, server: S, path: str, options: ClientOptions, owns_server: bool = False
    ) -> None:
        self.server = server
        self.path = path
        self.options = options
        self.owns_server = owns_server

    async def _open(self) -> ClientConn:
        try:
            return await open_client(self.server.accept, self.path, **self.options)
        except BaseException:
            if self.owns_server:
                await self.server.aclose()
            raise

    async def _close(self, conn: ClientConn) -> None:
        try:
            await conn.close()
        finally:
            if self.owns_server:
                await self.server.aclose()


class connect(Connecting[MemoryServer]):
    """Connect a client to ``handler`` in memory: ``async with connect(echo, "/") as conn:``.

    A server of its own runs ``handler`` for this one connection and is
    closed with it at the end of the block, which then raises the
    handler's exception, if it raised one. Also ``conn = await connect(...)``
    (then :meth:`~wskit.Conn.close` ends the connection, not the server).

    Args:
        handler: the connection handler under test (what :func:`wskit.serve` takes).
        path: the request target: ``/chat``, ``/chat?room=1``.
        server_options: the server's :class:`~wskit.ServerOptions` (to share
            a server between clients, use :func:`serve`).
        raise_server_exceptions: raise the handler's exception at the end of the block.
        **options: the client's options (:class:`ClientOptions`): ``headers``,
            ``subprotocols``, ``compression``, ``max_size``...
    """

    def __init__(
        self,
        handler: Handler,
        path: str = "/",
        *,
        server_options: ServerOptions | None = None,
        raise_server_exceptions: bool = True,
        **options: Unpack[ClientOptions],
    ) -> None:
        server = MemoryServer(
            handler,
            server_options if server_options is not None else ServerOptions(),
            raise_server_exceptions=raise_server_exceptions,
        )
        super().__init__(server, path, options, owns_server=True)
