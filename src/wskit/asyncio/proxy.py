"""Tunnels through HTTP CONNECT and SOCKS5 proxies, for :func:`~wskit.connect`.

:func:`open_tunnel` connects to a proxy, asks it for a connection to the
target and returns the socket once the proxy has agreed. From then on the
socket carries the target's byte stream, so the caller can hand it to
``loop.create_connection(factory, sock=sock, ssl=...)`` and run TLS to the
target end to end through the proxy.

The negotiation itself (HTTP CONNECT, SOCKS5 and its authentication, what is
supported and what is refused) is :class:`~wskit.protocol.proxy.ProxyHandshake`,
sans I/O, shared with the blocking client :mod:`wskit.sync`; this module
reads and writes its bytes on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from ..exceptions import ProxyError
from ..protocol.proxy import MAX_RESPONSE_HEAD, ProxyHandshake, describe_proxy, needs_resolution
from ..protocol.uri import ProxyURI

__all__ = ["open_tunnel", "MAX_RESPONSE_HEAD"]


async def open_tunnel(
    proxy: ProxyURI,
    host: str,
    port: int,
    dial: Callable[[str, int], Awaitable[socket.socket]] | None = None,
) -> socket.socket:
    """Connect to ``host``:``port`` through ``proxy``; return the tunnelled socket.

    The socket is connected and non-blocking; whatever is written to it
    reaches the target. ``host`` is a host name (IDNA-encoded, as
    :func:`~wskit.protocol.uri.parse_uri` produces it) or an IP address,
    IPv6 without brackets. ``dial(proxy_host, proxy_port)``, when given,
    opens the TCP connection to the proxy (see ``connect(dial=...)``).

    Raises:
        ProxyError: the proxy could not be reached, refused the request,
            asked for credentials that were missing or wrong, or broke its
            protocol. The underlying :class:`OSError`, if any, is chained.
    """
    loop = asyncio.get_running_loop()
    resolved = None
    if needs_resolution(proxy, host):
        # A target that cannot be resolved fails before the proxy is contacted.
        resolved = await _resolve(loop, host, port)
    handshake = ProxyHandshake(proxy, host, port, resolved)
    if dial is None:
        sock = await _connect_to_proxy(loop, proxy)
    else:
        try:
            sock = await dial(proxy.host, proxy.port)
        except OSError as exc:
            raise ProxyError(f"cannot connect to proxy {describe_proxy(proxy)}: {exc}") from exc
    try:
        sock.setblocking(False)  # the loop's sock_* calls need it
        while True:
            output = handshake.data_to_send()
            if output:
                await loop.sock_sendall(sock, output)
            if handshake.done:
                return sock
            handshake.receive_data(await loop.sock_recv(sock, handshake.bytes_wanted))
    except ProxyError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ProxyError(f"error talking to proxy {describe_proxy(proxy)}: {exc}") from exc
    except BaseException:
        # Cancellation (open_timeout) and anything unexpected: do not leak the socket.
        sock.close()
        raise


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> str:
    """The first address of ``host``, for a ``socks5://`` proxy."""
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProxyError(f"cannot resolve {host!r} for SOCKS5 proxy: {exc}") from exc
    if not infos:
        raise ProxyError(f"cannot resolve {host!r} for SOCKS5 proxy: no addresses")
    return str(infos[0][4][0])


async def _connect_to_proxy(loop: asyncio.AbstractEventLoop, proxy: ProxyURI) -> socket.socket:
    """Open a non-blocking TCP connection to the proxy, trying each address in turn."""
    name = describe_proxy(proxy)
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProxyError(f"cannot resolve proxy {name}: {exc}") from exc
    if not infos:
        raise ProxyError(f"cannot resolve proxy {name}: no addresses")
    last: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert last is not None
    raise ProxyError(f"cannot connect to proxy {name}: {last}") from last
