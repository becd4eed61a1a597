"""The HTTP endpoint of the metrics and of the status page: :func:`serve_metrics`.

It is a wskit server whose ``process_request`` hook answers every request
itself (no WebSocket is ever opened), so it has the bounds of any wskit
server: a bounded request head, a handshake timeout, ``max_connections``.
Its paths:

- ``/metrics``: the Prometheus text format (``prometheus_client`` must be
  installed, else 501);
- ``/metrics.json``: the snapshot as JSON (:meth:`MetricsSnapshot.as_dict
  <wskit.metrics.MetricsSnapshot.as_dict>`);
- ``/rooms.json``: the members per room, on demand only (room names are
  the application's data);
- with ``status=True``, ``/`` and ``/status``: the live status page, and
  ``/status.json``, what it polls.

Every request first goes through ``auth``, a hook given the
:class:`~wskit.protocol.http11.Request` that returns whether to answer it
(403 otherwise); :func:`token_auth` makes one that wants a token.
The endpoint binds 127.0.0.1 unless told otherwise. It logs under
``wskit.metrics``, apart from the application's server.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..asyncio.server import Server, ServerConn, serve
from ..protocol.handshake import reject
from ..protocol.http11 import Request, Response
from .snapshot import MetricsSnapshot
from .status import STATUS_PAGE, RateHistory

__all__ = ["Auth", "MetricsEndpoint", "serve_metrics", "token_auth"]

logger = logging.getLogger("wskit.metrics")

Auth = Callable[[Request], "bool | Awaitable[bool]"]
"""A hook that sees each request to the endpoint and returns whether to answer it."""


def token_auth(token: str) -> Auth:
    """An :data:`Auth` hook that wants ``token``: ``Authorization: Bearer <token>`` or ``?token=``.

    The query parameter lets a browser open the status page
    (``http://127.0.0.1:9101/?token=...``); the page passes it on to what it polls.
    """
    expected = token.encode()

    def allowed(request: Request) -> bool:
        given = request.headers.get("Authorization") or ""
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer":
            values = urllib.parse.parse_qs(request.query).get("token", [""])
            credentials = values[0]
        return hmac.compare_digest(credentials.strip().encode(), expected)

    return allowed


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _ok(body: bytes | str, content_type: str) -> Response:
    return reject(200, body, [("Content-Type", content_type), ("Cache-Control", "no-store")])


class MetricsEndpoint:
    """What :func:`serve_metrics` serves; its :meth:`process_request` answers each request."""

    def __init__(
        self,
        source: Callable[[], MetricsSnapshot | Awaitable[MetricsSnapshot]],
        *,
        rooms: Callable[[], Mapping[str, int] | Awaitable[Mapping[str, int]]] | None = None,
        auth: Auth | None = None,
        status: bool = False,
        sample_interval: float = 2.0,
    ) -> None:
        self.source = source
        self.rooms = rooms
        self.auth = auth
        #: The rates of the status page, when it is on.
        self.history = RateHistory(source, sample_interval) if status else None
        #: The HTTP server, once :meth:`listen` started it.
        self.server: Server | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def listen(
        self, host: str | None = "127.0.0.1", port: int = 9100, unix_path: str | None = None
    ) -> None:
        """Start serving on ``host:port`` (or ``unix_path``), and sampling the rates."""
        self.server = await serve(
            _no_websocket,
            None if unix_path is not None else host,
            None if unix_path is not None else port,
            unix_path=unix_path,
            process_request=self.process_request,
            server_header=None,
            max_connections=64,
            # Each answer is a "refused handshake" to the server: logged apart.
            logger=logger,
        )
        if self.history is not None:
            self._sampler = asyncio.get_running_loop().create_task(self.history.run())

    @property
    def port(self) -> int:
        """The TCP port served (useful with port 0)."""
        assert self.server is not None, "not listening"
        return self.server.port

    def close(self) -> None:
        """Stop serving and sampling."""
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        if self.server is not None:
            self.server.close()

    async def aclose(self) -> None:
        """Stop serving and wait until the server is closed."""
        self.close()
        if self.server is not None:
            await self.server.wait_closed()

    async def __aenter__(self) -> MetricsEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def process_request(self, conn: ServerConn, request: Request) -> Response:
        """Answer ``request`` (the server's ``process_request`` hook): see :meth:`answer`."""
        return await self.answer(request)

    async def answer(self, request: Request) -> Response:
        """Answer ``request``: a page, JSON, the exposition, 403, 404 or 405."""
        if request.method not in ("GET", "HEAD"):
            return reject(405, headers=[("Allow", "GET, HEAD")])
        if self.auth is not None and not await _resolve(self.auth(request)):
            return reject(403)
        path = request.path
        if path == "/metrics":
            try:
                from .prometheus import CONTENT_TYPE, exposition

                body = exposition(await _resolve(self.source()))
            except ImportError:
                return reject(501, "pip install 'wskit[prometheus]' for /metrics\n")
            return _ok(body, CONTENT_TYPE)
        if path == "/metrics.json":
            snapshot: MetricsSnapshot = await _resolve(self.source())
            return _ok(json.dumps(snapshot.as_dict()), "application/json")
        if path == "/rooms.json" and self.rooms is not None:
            rooms = dict(await _resolve(self.rooms()))
            return _ok(json.dumps(rooms, sort_keys=True), "application/json")
        if self.history is not None:
            if path in ("/", "/status"):
                return _ok(STATUS_PAGE, "text/html; charset=utf-8")
            if path == "/status.json":
                return _ok(json.dumps(self.history.status()), "application/json")
        return reject(404)


async def _no_websocket(conn: ServerConn) -> None:  # never runs: every request is answered
    await conn.close(1008)


async def serve_metrics(
    source: Callable[[], MetricsSnapshot | Awaitable[MetricsSnapshot]],
    host: str = "127.0.0.1",
    port: int = 9100,
    *,
    rooms: Callable[[], Mapping[str, int] | Awaitable[Mapping[str, int]]] | None = None,
    auth: Auth | None = None,
    status: bool = False,
    sample_interval: float = 2.0,
    unix_path: str | None = None,
) -> MetricsEndpoint:
    """Serve the metrics of ``source`` over HTTP; ``await endpoint.aclose()`` stops it.

    Also ``async with await serve_metrics(...) as endpoint:``.

    Args:
        source: makes a :class:`~wskit.metrics.MetricsSnapshot`
            (:meth:`Metrics.snapshot <wskit.metrics.Metrics.snapshot>`), or
            an async function that does.
        host: the address to bind (127.0.0.1 by default: metrics are not public).
        port: the TCP port (``0``: any free one, see :attr:`MetricsEndpoint.port`).
        rooms: makes the members per room for ``/rooms.json``
            (:meth:`Metrics.rooms <wskit.metrics.Metrics.rooms>`); ``None``
            serves no room names.
        auth: sees each request and returns whether to answer it (else 403).
        status: also serve the live status page (``/``) and ``/status.json``.
        sample_interval: seconds between the status page's samples.
        unix_path: listen on this Unix socket instead of TCP.
    """
    endpoint = MetricsEndpoint(
        source, rooms=rooms, auth=auth, status=status, sample_interval=sample_interval
    )
    await endpoint.listen(host, port, unix_path)
    return endpoint
