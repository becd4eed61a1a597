"""The blocking WebSocket client: :func:`connect` and :class:`ClientConn`.

:func:`connect` opens a connection as :func:`wskit.connect` does, with the
same options, and returns a :class:`ClientConn` whose methods block the
calling thread instead of being awaited: it resolves the URI, opens TCP
(directly, through an HTTP CONNECT or SOCKS5 proxy, or over a Unix socket),
wraps it in TLS for ``wss://``, sends the upgrade request and checks the
answer, following redirects. Every decision is made by the same sans-I/O
code as the asyncio client's (:mod:`wskit.protocol.handshake`,
:mod:`wskit.protocol.client`, :mod:`wskit.protocol.proxy`).
"""

from __future__ import annotations

import http.cookiejar
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, Unpack

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
from ..protocol.handshake import USER_AGENT, HeadersLike
from ..protocol.http11 import Response, ResponseParser, serialize_request
from ..protocol.uri import WebSocketURI, parse_uri
from .connection import CloseHandler, Conn, PingHandler
from .proxy import SyncDial, open_tunnel

__all__ = ["connect", "ClientConn", "ConnOptions"]

# How much one read of the handshake response may take.
_READ_SIZE = 65536


class ClientConn(Conn):
    """The client side of a blocking connection, as :func:`connect` returns it.

    Everything is :class:`~wskit.sync.connection.Conn`'s: ``send``,
    ``recv``, iteration, ``ping``, ``pong``, ``close``, ``with``.
    """


class ConnOptions(TypedDict, total=False):
    """The options of :class:`~wskit.sync.connection.Conn`, as keyword arguments of :func:`connect`.

    Those of the asyncio client's :class:`~wskit.asyncio.client.ConnOptions`
    but ``write_limit`` (a blocking ``send()`` returns once the kernel took
    the bytes: there is no buffer of our own to bound).
    """

    max_size: int | None
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    on_ping: PingHandler | None
    on_pong: PingHandler | None
    on_close: CloseHandler | None
    json_loads: Callable[[str | bytes], Any]
    json_dumps: Callable[[Any], str]
    auto_pong: bool


_CONN_OPTIONS = ConnOptions.__optional_keys__


def connect(
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
    dial: SyncDial | None = None,
    cookies: http.cookiejar.CookieJar | None = None,
    **conn_options: Unpack[ConnOptions],
) -> ClientConn:
    """Open a WebSocket connection and return it, blocking: ``conn = connect("ws://host/path")``.

    Also ``with connect(uri) as conn: ...``, which closes the connection on
    exit. No event loop is involved: use it in scripts, notebooks and
    threads. The arguments are those of :func:`wskit.connect`.

    Args:
        uri: a ``ws://`` or ``wss://`` URI.
        origin: the ``Origin`` header to send.
        subprotocols: subprotocols to offer, in order of preference.
        compression: ``"deflate"`` (default), :class:`~wskit.DeflateOptions`, or ``None``.
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
            followed: :exc:`~wskit.HandshakeRejected` carries the 3xx response).
        dial: ``dial(host, port) -> socket.socket``, called for each attempt
            to open the TCP connection: to the server, or to the proxy when
            there is one. Not with ``sock`` or ``unix_path``.
        cookies: an :class:`http.cookiejar.CookieJar`: its cookies for the
            URI are sent, and the ``Set-Cookie`` headers of every handshake
            response are stored in it.
        **conn_options: options of :class:`~wskit.sync.connection.Conn`
            (:class:`ConnOptions`: ``max_size``, ``max_queue``,
            ``ping_interval``, ``ping_timeout``, ``close_timeout``,
            ``on_ping``, ``on_pong``, ``on_close``, ``auto_pong``...).

    Raises:
        InvalidURI: ``uri`` is not a WebSocket URI.
        HandshakeRejected: the server answered with another status than 101.
        InvalidHandshake: the response broke the rules, or too many redirects.
        ProxyError: the proxy failed.
        TimeoutError: ``open_timeout`` passed.
        OSError: the connection failed (refused, TLS certificate errors...).
    """
    check_connect_arguments(conn_options, _CONN_OPTIONS, dial=dial, sock=sock, unix_path=unix_path)
    opener = _Opener(
        origin=origin,
        subprotocols=subprotocols,
        compression=compression_options(compression),
        headers=headers,
        user_agent=user_agent,
        deadline=None if open_timeout is None else time.monotonic() + open_timeout,
        ssl=ssl,
        server_hostname=server_hostname,
        proxy=proxy,
        unix_path=unix_path,
        sock=sock,
        dial=dial,
        cookies=cookies,
        conn_options=conn_options,
    )
    target = parse_uri(uri)
    try:
        for _ in range(max_redirects + 1):
            try:
                return opener.connect_once(target)
            except HandshakeRejected as exc:
                new = next_uri(target, exc, cookies=cookies, sock_given=sock is not None)
                if new is None:
                    raise
                target = new
    except TimeoutError:
        raise TimeoutError(f"timed out opening a WebSocket to {uri}") from None
    raise InvalidHandshake(f"more than {max_redirects} redirects")


class _Opener:
    """The options of one :func:`connect` call, and one attempt at a time."""

    def __init__(
        self,
        *,
        origin: str | None,
        subprotocols: Sequence[str],
        compression: DeflateOptions | None,
        headers: HeadersLike | None,
        user_agent: str | None,
        deadline: float | None,
        ssl: ssl_module.SSLContext | None,
        server_hostname: str | None,
        proxy: str | bool | None,
        unix_path: str | None,
        sock: socket.socket | None,
        dial: SyncDial | None,
        cookies: http.cookiejar.CookieJar | None,
        conn_options: ConnOptions,
    ) -> None:
        self.origin = origin
        self.subprotocols = subprotocols
        self.compression = compression
        self.headers = headers
        self.user_agent = user_agent
        self.deadline = deadline
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.proxy = proxy
        self.unix_path = unix_path
        self.sock = sock
        self.dial = dial
        self.cookies = cookies
        self.conn_options = conn_options

    def remaining(self) -> float | None:
        """Seconds left of ``open_timeout``."""
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        return remaining

    def open_socket(self, uri: WebSocketURI) -> socket.socket:
        """The TCP (or Unix) connection of one attempt, through the proxy if any."""
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.remaining())
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        if self.sock is not None:
            return self.sock
        proxy = proxy_for(uri, self.proxy)
        if proxy is not None:
            return open_tunnel(proxy, uri.host, uri.port, self.dial, self.remaining())
        if self.dial is not None:
            return self.dial(uri.host, uri.port)
        return socket.create_connection((uri.host, uri.port), self.remaining())

    def connect_once(self, uri: WebSocketURI) -> ClientConn:
        """One attempt: TCP, TLS, the upgrade request and its answer."""
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
        sock = self.open_socket(uri)
        try:
            sock.settimeout(self.remaining())
            if uri.secure:
                context = self.ssl or ssl_module.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self.server_hostname or uri.host)
            sock.sendall(serialize_request(handshake.request))
            response, leftover = self.read_response(sock)
            result = handshake.process_response(response)
            max_size = self.conn_options.get("max_size", 2**20)
            protocol = Connection(Side.CLIENT, max_size=max_size, deflate=result.deflate)
            options = {k: v for k, v in self.conn_options.items() if k != "max_size"}
            sock.settimeout(None)
            conn = ClientConn(
                sock,
                protocol,
                request=handshake.request,
                response=response,
                subprotocol=result.subprotocol,
                leftover=leftover,
                **options,  # type: ignore[arg-type]
            )
        except BaseException:
            sock.close()
            raise
        if jar is not None:
            store_cookies(jar, uri, response.headers)
        return conn

    def read_response(self, sock: socket.socket) -> tuple[Response, bytes]:
        """Read the handshake response; return it and the bytes that came after it."""
        parser = ResponseParser()
        while True:
            sock.settimeout(self.remaining())
            data = sock.recv(_READ_SIZE)
            if not data:
                response = parser.feed_eof()
                if response is None:
                    raise InvalidResponse("connection closed during the opening handshake")
                return response, b""
            response = parser.feed(data)
            if response is not None:
                return response, parser.leftover
