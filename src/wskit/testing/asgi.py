"""ASGI applications in memory: :func:`serve_asgi`, :class:`MemoryAsgiServer`, :func:`connect_asgi`.

Any ASGI application with WebSocket routes (Starlette, FastAPI, wskit's
:func:`~wskit.asgi.asgi_app`, plain ASGI) is served as uvicorn serves it
with ``--ws wskit.uvicorn:WebSocketProtocol``: each connection is a
:class:`wskit.uvicorn.WebSocketProtocol`, which reads the upgrade request
with wskit's handshake, builds the ASGI scope, and drives the
application's ``receive`` and ``send`` on wskit's connection, with
uvicorn's behaviour (the 403 of a ``websocket.close`` before accepting,
denial responses, the 500 of an application that fails before accepting,
1012 on shutdown). Only the socket is missing: the client is wskit's, in
memory (:mod:`wskit.testing.transport`). uvicorn must be installed (it
provides the ASGI server's configuration); the application's lifespan is
not run.

As :func:`~wskit.testing.serve` does for handlers, the first exception the
application raises is raised again when the server closes, unless
``raise_server_exceptions=False``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Unpack, cast

from ..asgi.spec import ASGIApp, Receive, Scope, Send
from ..asyncio.opening import Opening
from .client import ClientOptions
from .server import Connecting

if TYPE_CHECKING:
    from ..uvicorn import WebSocketProtocol

__all__ = ["MemoryAsgiServer", "serve_asgi", "connect_asgi", "AsgiConnecting"]


class MemoryAsgiServer:
    """An ASGI application served in memory; clients come from :meth:`connect`.

    Made by :func:`serve_asgi`, whose arguments it takes. :meth:`aclose`
    (the end of ``async with``) closes the connections still open with
    1012, as uvicorn does on shutdown, waits for the application, and
    raises its first exception.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        max_size: int = 2**24,
        max_queue: int = 32,
        ping_interval: float | None = None,
        ping_timeout: float | None = 20.0,
        compression: bool = True,
        close_timeout: float = 10.0,
        raise_server_exceptions: bool = True,
    ) -> None:
        # Imported here: uvicorn is needed by this server only, not by wskit.testing.
        from uvicorn.config import Config
        from uvicorn.protocols.utils import ClientDisconnected
        from uvicorn.server import ServerState

        from ..uvicorn import WebSocketProtocol

        self._protocol_class = WebSocketProtocol
        self._disconnected = ClientDisconnected
        #: The application under test.
        self.app = app
        #: The first exception the application raised, or ``None``.
        self.error: BaseException | None = None
        self.raise_server_exceptions = raise_server_exceptions
        self.close_timeout = close_timeout
        self._config = Config(
            self._watched,
            ws=cast(Any, WebSocketProtocol),  # uvicorn's annotation names its own classes
            log_config=None,
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            root_path=root_path,
            ws_max_size=max_size,
            ws_max_queue=max_queue,
            ws_ping_interval=ping_interval,
            ws_ping_timeout=ping_timeout,
            ws_per_message_deflate=compression,
        )
        self._config.load()
        self._state = ServerState()
        self._app_state: dict[str, Any] = {}

    async def _watched(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application, keeping its first exception before the server sees it."""
        try:
            await self.app(scope, receive, send)
        except self._disconnected:
            raise
        except Exception as exc:
            if self.error is None:
                self.error = exc
            raise

    def accept(self) -> WebSocketProtocol:
        """A new server-side connection, as uvicorn makes for each upgrade request."""
        return self._protocol_class(self._config, self._state, self._app_state)

    def connect(self, path: str = "/", **options: Unpack[ClientOptions]) -> AsgiConnecting:
        """Connect a client: ``async with server.connect("/ws") as conn: ...``.

        Also ``conn = await server.connect(...)``. The options are those of
        :func:`wskit.connect` that apply in memory (:class:`ClientOptions`).
        """
        return AsgiConnecting(self, path, options)

    @property
    def connections(self) -> set[WebSocketProtocol]:
        """The server's connections not closed yet (handshakes under way included)."""
        return cast("set[WebSocketProtocol]", set(self._state.connections))

    def raise_error(self) -> None:
        """Raise the application's first exception, if there was one (and it was not raised yet)."""
        error, self.error = self.error, None
        if error is not None and self.raise_server_exceptions:
            raise error

    async def aclose(self) -> None:
        """Close open connections with 1012, wait for the application, raise its exception."""
        for conn in list(self._state.connections):
            conn.shutdown()
        tasks = list(self._state.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=self.close_timeout)
        self.raise_error()

    async def __aenter__(self) -> MemoryAsgiServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class serve_asgi(Opening[MemoryAsgiServer]):
    """Serve the ASGI application ``app`` in memory: ``async with serve_asgi(app) as server:``.

    Args:
        app: the ASGI application under test.
        root_path: the scope's ``root_path`` (uvicorn's ``--root-path``).
        max_size: the largest message, in bytes (uvicorn's ``ws_max_size``);
            a larger one closes the connection with 1009.
        max_queue: messages waiting for the application before reading
            pauses (``ws_max_queue``).
        ping_interval: seconds between the server's keepalive pings; ``None``
            (the default here, unlike uvicorn's 20) sends none.
        ping_timeout: seconds to wait for the pong (``ws_ping_timeout``).
        compression: accept permessage-deflate (``ws_per_message_deflate``).
        close_timeout: seconds :meth:`~MemoryAsgiServer.aclose` waits for the application.
        raise_server_exceptions: raise the application's first exception
            when the server closes.

    Raises:
        ImportError: uvicorn is not installed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        max_size: int = 2**24,
        max_queue: int = 32,
        ping_interval: float | None = None,
        ping_timeout: float | None = 20.0,
        compression: bool = True,
        close_timeout: float = 10.0,
        raise_server_exceptions: bool = True,
    ) -> None:
        self.server = MemoryAsgiServer(
            app,
            root_path=root_path,
            max_size=max_size,
            max_queue=max_queue,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            compression=compression,
            close_timeout=close_timeout,
            raise_server_exceptions=raise_server_exceptions,
        )

    async def _open(self) -> MemoryAsgiServer:
        return self.server

    async def _close(self, server: MemoryAsgiServer) -> None:
        await server.aclose()


class AsgiConnecting(Connecting[MemoryAsgiServer]):
    """An in-memory connection to an ASGI application being opened; await it or ``async with``.

    With ``async with``, the connection is closed at the end of the block;
    when the block owns the server (:func:`connect_asgi`), the server is
    closed too, and the application's exception raised.
    """


class connect_asgi(AsgiConnecting):
    """Connect a client to the ASGI application ``app`` in memory.

    ``async with wskit.testing.connect_asgi(app, "/ws") as conn: ...``:
    the application runs under a server of its own (:func:`serve_asgi`,
    with its defaults), closed at the end of the block, which then raises
    the application's exception, if it raised one.

    Args:
        app: the ASGI application under test (Starlette, FastAPI, ``asgi_app(...)``).
        path: the request target: ``/ws``, ``/ws?token=abc``.
        raise_server_exceptions: raise the application's exception at the end of the block.
        **options: the client's options (:class:`ClientOptions`).

    Raises:
        ImportError: uvicorn is not installed.
    """

    def __init__(
        self,
        app: ASGIApp,
        path: str = "/",
        *,
        raise_server_exceptions: bool = True,
        **options: Unpack[ClientOptions],
    ) -> None:
        server = MemoryAsgiServer(app, raise_server_exceptions=raise_server_exceptions)
        super().__init__(server, path, options, owns_server=True)
