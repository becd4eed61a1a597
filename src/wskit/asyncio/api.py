"""What every wskit connection offers: :class:`ConnectionAPI`, the base of them all.

wskit has two connection classes that speak WebSocket on asyncio: the
protocol's own :class:`~wskit.asyncio.connection.Conn`, and the ASGI
adapter's ``AsgiConn``, which rides on a server's ASGI events. Each defines
its primitives (``recv``, ``send``, ``close``); this base class writes
iteration, JSON, ``async with``, the handshake headers and the calling of
event handlers once, on top of them, for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from ..exceptions import ConnectionClosed
from ..protocol.headers import Headers
from ..protocol.http11 import Request, Response

__all__ = ["ConnectionAPI", "Data"]

logger = logging.getLogger("wskit")

Data = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""


class ConnectionAPI:
    """What every wskit connection offers, written on top of its own primitives.

    :class:`Conn` and the ASGI adapter's ``AsgiConn`` define ``recv``,
    ``send``, ``close``, ``request`` and ``json_loads``/``json_dumps``; this
    base class adds iteration, JSON and ``async with`` to both, once.
    """

    __slots__ = ()

    request: Request | None
    response: Response | None
    json_loads: Callable[[str | bytes], Any]
    json_dumps: Callable[[Any], str]
    _loop: asyncio.AbstractEventLoop

    def _call_handler(self, handler: Callable[..., object], *args: object) -> None:
        """Call an event handler (on_ping, on_close...): a coroutine it returns runs as a task.

        An exception it raises is logged; the connection goes on.
        """
        try:
            result = handler(*args)
            if asyncio.iscoroutine(result):
                self._loop.create_task(result)
        except Exception:
            logger.exception("error in a %s handler", getattr(handler, "__name__", "control"))

    async def recv(self) -> Data:
        """Receive the next message (defined by each connection class)."""
        raise NotImplementedError

    async def send(self, message: Any) -> None:
        """Send a message (defined by each connection class)."""
        raise NotImplementedError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (defined by each connection class)."""
        raise NotImplementedError

    def __aiter__(self) -> ConnectionAPI:
        return self

    async def __anext__(self) -> Data:
        """The next message; iteration ends when the connection closes normally.

        An abnormal closure raises :class:`~wskit.ConnectionClosedError`.
        (Written as ``__anext__`` rather than an async generator: one
        coroutine per message instead of two.)
        """
        try:
            return await self.recv()
        except ConnectionClosed as exc:
            if exc.ok:
                raise StopAsyncIteration from None
            raise

    async def recv_json(self) -> Any:
        """Receive a message and decode it as JSON."""
        return self.json_loads(await self.recv())

    async def send_json(self, obj: Any) -> None:
        """Encode ``obj`` as JSON and send it as a text message."""
        await self.send(self.json_dumps(obj))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def request_headers(self) -> Headers:
        """The headers of the handshake request."""
        assert self.request is not None
        return self.request.headers

    @property
    def response_headers(self) -> Headers:
        """The headers of the handshake response."""
        assert self.response is not None
        return self.response.headers
