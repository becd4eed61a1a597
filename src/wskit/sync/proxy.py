"""Tunnels through HTTP CONNECT and SOCKS5 proxies, for :func:`wskit.sync.connect`.

:func:`open_tunnel` connects to a proxy, asks it for a connection to the
target and returns the socket once the proxy has agreed; TLS to the target
then runs end to end through it. The negotiation is
:class:`~wskit.protocol.proxy.ProxyHandshake`, shared with the asyncio
client; this module reads and writes its bytes on a blocking socket.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from ..exceptions import ProxyError
from ..protocol.proxy import ProxyHandshake, describe_proxy, needs_resolution
from ..protocol.uri import ProxyURI

__all__ = ["open_tunnel", "SyncDial"]

SyncDial = Callable[[str, int], socket.socket]
"""``dial(host, port) -> socket.socket``: opens the TCP connection of one attempt."""


def open_tunnel(
    proxy: ProxyURI,
    host: str,
    port: int,
    dial: SyncDial | None = None,
    timeout: float | None = None,
) -> socket.socket:
    """Connect to ``host``:``port`` through ``proxy``; return the tunnelled socket.

    The socket is connected and blocking, with ``timeout`` left on it;
    whatever is written to it reaches the target. ``host`` is a host name
    (IDNA-encoded) or an IP address, IPv6 without brackets.
    ``dial(proxy_host, proxy_port)``, when given, opens the TCP connection
    to the proxy. ``timeout`` bounds the whole negotiation, in seconds.

    Raises:
        ProxyError: the proxy could not be reached, refused the request,
            asked for credentials that were missing or wrong, or broke its
            protocol. The underlying :class:`OSError`, if any, is chained.
        TimeoutError: ``timeout`` passed.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    name = describe_proxy(proxy)
    resolved = None
    if needs_resolution(proxy, host):
        # A target that cannot be resolved fails before the proxy is contacted.
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ProxyError(f"cannot resolve {host!r} for SOCKS5 proxy: {exc}") from exc
        if not infos:
            raise ProxyError(f"cannot resolve {host!r} for SOCKS5 proxy: no addresses")
        resolved = str(infos[0][4][0])
    handshake = ProxyHandshake(proxy, host, port, resolved)
    try:
        if dial is None:
            sock = socket.create_connection((proxy.host, proxy.port), _remaining(deadline))
        else:
            sock = dial(proxy.host, proxy.port)
    except TimeoutError:
        raise
    except OSError as exc:
        raise ProxyError(f"cannot connect to proxy {name}: {exc}") from exc
    try:
        while True:
            sock.settimeout(_remaining(deadline))
            output = handshake.data_to_send()
            if output:
                sock.sendall(output)
            if handshake.done:
                return sock
            handshake.receive_data(sock.recv(handshake.bytes_wanted))
    except (ProxyError, TimeoutError):
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ProxyError(f"error talking to proxy {name}: {exc}") from exc
    except BaseException:
        sock.close()
        raise


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (``None``: no deadline)."""
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out")
    return remaining
