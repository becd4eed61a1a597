"""The asyncio WebSocket client: :func:`connect` and :class:`ClientConn`.

:func:`connect` resolves the URI, opens TCP (directly, through an HTTP
CONNECT or SOCKS5 proxy, or over a Unix socket), wraps it in TLS for
``wss://``, sends the upgrade request and checks the answer. Redirects
(3xx with ``Location``) are followed up to ``max_redirects`` times.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypedDict, Unpack, cast

from ..exceptions import HandshakeRejected, InvalidHandshake, InvalidResponse
from ..protocol.client import (
    check_connect_arguments,
    client_handshake,
    compression_options,
    next_uri,
    proxy_for,
    store_cookies,
)
from ..protocol.connection import Connection, Side
from ..protocol.deflate import DeflateOptions
from ..protocol.handshake import USER_AGENT, ClientHandshake, HeadersLike
from ..protocol.http11 import Response, ResponseParser, serialize_request
from ..protocol.uri import WebSocketURI, parse_uri
from .connection import CloseHandler, Conn, PingHandler, logger
from .opening import Opening
from .reconnect import Backoff, Reconnecting

__all__ = ["connect", "ClientConn", "ConnOptions", "Dial"]

Dial = Callable[[str, int], Awaitable[socket.socket]]
"""``async def dial(host, port) -> socket.socket``: opens the TCP connection of one attempt.

:func:`connect` calls it once per attempt (each redirect is a new one) with
the host and port to reach: the server's, or the proxy's when there is one.
It returns a connected socket (gorilla's ``Dialer.NetDialContext``).
"""


class ClientConn(Conn):
    """The client side of a connection; reads the handshake response first."""

    # Slots: thousands of idle connections each save a __dict__.
    __slots__ = (
        "_handshake",
        "_parser",
        "handshake_done",
    )

    def __init__(self, handshake: ClientHandshake, **options: Any) -> None:
        super().__init__(Side.CLIENT, **options)
        self._handshake = handshake
        self._parser: ResponseParser | None = ResponseParser()
        self.handshake_done: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request as soon as the connection is up."""
        # Not asyncio.Transport itself with every event loop (uvloop's is not).
        self.transport = cast(asyncio.Transport, transport)
        self.request = self._handshake.request
        if logger.isEnabledFor(logging.DEBUG):
            peer = transport.get_extra_info("peername")
            logger.debug("conn %d: connected to %s for %s", self.id, peer, self.request.path)
        self.transport.write(serialize_request(self.request))

    def _receive_handshake(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # the handshake failed; the connection is closing
            return
        try:
            response = parser.feed(data)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        if response is not None:
            self._handshake_response(response, parser.leftover)

    def _handshake_response(self, response: Response, leftover: bytes) -> None:
        self._parser = None
        self.response = response
        try:
            result = self._handshake.process_response(response)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self.subprotocol = result.subprotocol
        protocol = Connection(
            Side.CLIENT, max_size=self.max_size, deflate=result.deflate, defer_failure=True
        )
        assert self.transport is not None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "conn %d: handshake accepted by %s (subprotocol %r, %s)",
                self.id,
                self.request.host,  # set by connection_made
                result.subprotocol,
                "deflate" if result.deflate is not None else "no compression",
            )
        self._open(protocol, self.transport, leftover)
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)

    def _handshake_failed(self, exc: BaseException) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("conn %d: handshake failed: %s", self.id, exc)
        if not self.handshake_done.done():
            self.handshake_done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        """During the handshake, EOF may end a response body; afterwards, the stream."""
        if self._parser is not None:
            try:
                response = self._parser.feed_eof()
            except InvalidHandshake as exc:
                self._handshake_failed(exc)
                return None
            if response is not None:
                self._handshake_response(response, b"")
            return None
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail a pending handshake, or end the WebSocket phase."""
        if self.protocol is None:
            self._handshake_failed(
                InvalidResponse("connection closed during the opening handshake")
                if exc is None
                else exc
            )
            if not self._closed.done():
                self._closed.set_result(None)
            return
        super().connection_lost(exc)
        if logger.isEnabledFor(logging.DEBUG):
            self._trace_close(logger, exc)


class ConnOptions(TypedDict, total=False):
    """The options of :class:`Conn`, as keyword arguments of :func:`connect`.

    With ``**conn_options: Unpack[ConnOptions]`` a type checker refuses a
    misspelled option; at run time :func:`connect` refuses an unknown name
    with :exc:`TypeError` when it is called, not when it is awaited.
    ``tests/test_typing.py`` checks it against ``Conn.__init__``.
    """

    max_size: int | None
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    write_limit: int
    on_ping: PingHandler | None
    on_pong: PingHandler | None
    on_close: CloseHandler | None
    json_loads: Callable[[str | bytes], Any]
    json_dumps: Callable[[Any], str]
    auto_pong: bool


_CONN_OPTIONS = ConnOptions.__optional_keys__


class connect(Opening[ClientConn]):
    """Open a WebSocket connection: ``conn = await connect("ws://host/path")``.

    Also ``async with connect(uri) as conn: ...``, which closes the
    connection on exit, and ``async for conn in connect(uri): ...``, which
    connects again whenever the connection is over, with exponential
    backoff and jitter between failed attempts, and stops on errors that
    retrying cannot fix (see :mod:`wskit.asyncio.reconnect`).

    Args:
        uri: a ``ws://`` or ``wss://`` URI.
        origin: the ``Origin`` header to send.
        subprotocols: subprotocols to offer, in order of preference.
        compression: ``"deflate"`` (default), :class:`DeflateOptions`, or ``None``.
        headers: extra request headers (``Authorization``, ``Cookie``...).
        user_agent: the ``User-Agent`` header (default ``wskit/<version>``);
            ``None`` leaves it out.
        open_timeout: seconds for TCP, proxy, TLS and handshake together.
        ssl: an :class:`ssl.SSLContext` for ``wss://`` (default: a verifying one).
        server_hostname: host name for TLS SNI and certificate checks.
        proxy: ``"http://host:port"``, ``"socks5://user:pass@host:port"``,
            ``True`` to read ``https_proxy``/``http_proxy``/``all_proxy`` and
            ``no_proxy`` from the environment, or ``None`` (default) for none.
        max_redirects: how many 3xx redirects to follow.
        unix_path: connect to this Unix socket instead of the URI's host.
        sock: an already connected socket to use (redirects are then not
            followed: :exc:`HandshakeRejected` carries the 3xx response).
        dial: ``async def dial(host, port) -> socket.socket`` (:data:`Dial`),
            called for each attempt (a redirect is a new attempt) to open the
            TCP connection: to the server, or to the proxy when there is one
            (with ``proxy=True``, as the environment picks it per URI). Not
            with ``sock`` or ``unix_path``.
        cookies: an :class:`http.cookiejar.CookieJar` (gorilla's ``Dialer.Jar``):
            the cookies it holds for the URI are sent in the ``Cookie`` header
            (after any given in ``headers``), and the ``Set-Cookie`` headers of
            every handshake response (the 101, redirects, refusals) are stored
            in it, so the next :func:`connect` with the jar sends them. It sees
            ``ws://`` as ``http://`` and ``wss://`` as ``https://``.
        **conn_options: options of :class:`Conn` (``max_size``, ``max_queue``,
            ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``write_limit``,
            ``on_ping``, ``on_pong``, ``on_close``, ``auto_pong``: ``False``
            leaves answering the server's pings to ``on_ping``; see
            :attr:`Conn.auto_pong`...).
        backoff_initial: with ``async for``, the longest first delay before
            connecting again, in seconds (the delay is random below it).
        backoff_factor: with ``async for``, how much each delay grows after a
            failed attempt.
        backoff_max: with ``async for``, the longest delay between attempts.
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        compression: str | DeflateOptions | None = "deflate",
        headers: HeadersLike | None = None,
        user_agent: str | None = USER_AGENT,
        open_timeout: float | None = 10.0,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        proxy: str | bool | None = None,
        max_redirects: int = 5,
        unix_path: str | None = None,
        sock: socket.socket | None = None,
        dial: Dial | None = None,
        cookies: http.cookiejar.CookieJar | None = None,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: float = 60.0,
        **conn_options: Unpack[ConnOptions],
    ) -> None:
        check_connect_arguments(
            conn_options, _CONN_OPTIONS, dial=dial, sock=sock, unix_path=unix_path
        )
        self.uri = uri
        self.origin = origin
        self.subprotocols = subprotocols
        self.compression = compression_options(compression)
        self.headers = headers
        self.user_agent = user_agent
        self.open_timeout = open_timeout
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.proxy = proxy
        self.max_redirects = max_redirects
        self.unix_path = unix_path
        self.sock = sock
        self.dial = dial
        self.cookies = cookies
        self.backoff = Backoff(backoff_initial, backoff_factor, backoff_max)
        self.conn_options = conn_options

    def __aiter__(self) -> Reconnecting[ClientConn]:
        """Connect, and connect again each time the loop asks for the next connection.

        Raises:
            ValueError: with ``sock``, which only one connection can use.
        """
        if self.sock is not None:
            raise ValueError("async for ... in connect(): cannot reconnect a given sock")
        return Reconnecting(self._open, self.backoff, self.uri)

    async def _open(self) -> ClientConn:
        try:
            async with asyncio.timeout(self.open_timeout):
                return await self._connect_following_redirects()
        except TimeoutError:
            raise TimeoutError(f"timed out opening a WebSocket to {self.uri}") from None

    async def _connect_following_redirects(self) -> ClientConn:
        uri = parse_uri(self.uri)
        for _ in range(self.max_redirects + 1):
            try:
                conn = await self._connect_once(uri)
            except HandshakeRejected as exc:
                new = next_uri(uri, exc, cookies=self.cookies, sock_given=self.sock is not None)
                if new is None:
                    raise
                uri = new
                continue
            return conn
        raise InvalidHandshake(f"more than {self.max_redirects} redirects")

    async def _connect_once(self, uri: WebSocketURI) -> ClientConn:
        loop = asyncio.get_running_loop()
        jar = self.cookies
        handshake = client_handshake(
            uri,
            origin=self.origin,
            subprotocols=self.subprotocols,
            compression=self.compression,
            headers=self.headers,
            user_agent=self.user_agent,
            cookies=jar,
        )

        def factory() -> ClientConn:
            return ClientConn(handshake, **self.conn_options)

        ssl_context: ssl_module.SSLContext | None = None
        server_hostname = None
        if uri.secure:
            ssl_context = self.ssl or ssl_module.create_default_context()
            server_hostname = self.server_hostname or uri.host
        conn: ClientConn
        if self.unix_path is not None:
            _, conn = await loop.create_unix_connection(
                factory, self.unix_path, ssl=ssl_context, server_hostname=server_hostname
            )
        else:
            sock = self.sock
            proxy = proxy_for(uri, self.proxy) if sock is None else None
            if proxy is not None:
                from .proxy import open_tunnel

                sock = await open_tunnel(proxy, uri.host, uri.port, self.dial)
            elif self.dial is not None:
                sock = await self.dial(uri.host, uri.port)
            if sock is not None:
                _, conn = await loop.create_connection(
                    factory, sock=sock, ssl=ssl_context, server_hostname=server_hostname
                )
            else:
                _, conn = await loop.create_connection(
                    factory, uri.host, uri.port, ssl=ssl_context, server_hostname=server_hostname
                )
        try:
            await conn.handshake_done
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        if jar is not None and conn.response is not None:
            store_cookies(jar, uri, conn.response.headers)
        return conn

    async def _close(self, conn: ClientConn) -> None:
        await conn.close()
