"""Tunnels through HTTP CONNECT and SOCKS5 proxies, for :func:`~wskit.connect`.

:func:`open_tunnel` connects to a proxy, asks it for a connection to the
target and returns the socket once the proxy has agreed. From then on the
socket carries the target's byte stream, so the caller can hand it to
``loop.create_connection(factory, sock=sock, ssl=...)`` and run TLS to the
target end to end through the proxy.

Supported:

* ``http://``: HTTP CONNECT (RFC 9110 section 9.3.6), with
  ``Proxy-Authorization: Basic`` when the proxy URI has credentials.
* ``socks5://``: SOCKS5 (RFC 1928); the target host name is resolved here
  and the proxy is given an IP address.
* ``socks5h://``: SOCKS5 where the proxy resolves the host name.
* SOCKS5 username/password authentication (RFC 1929).

``https://`` proxies (TLS between the client and the proxy itself) are not
supported: the tunnel is returned as a plain socket, which cannot carry a
second TLS layer under the one ``wss://`` puts on top.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
import struct
from collections.abc import Awaitable, Callable

from ..exceptions import ProxyError
from ..protocol.uri import ProxyURI

__all__ = ["open_tunnel", "MAX_RESPONSE_HEAD"]

MAX_RESPONSE_HEAD = 65536
"""Largest HTTP CONNECT response head accepted from a proxy, in bytes."""

_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?:[ \t][^\r\n]*)?")

# RFC 1928 section 6.
_SOCKS5_REPLIES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}

_SOCKS5_NO_AUTH = 0x00
_SOCKS5_USER_PASS = 0x02
_SOCKS5_NO_METHOD = 0xFF
_ATYP_IPV4 = 0x01
_ATYP_DOMAIN = 0x03
_ATYP_IPV6 = 0x04


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
    if proxy.scheme == "https":
        raise ProxyError(
            f"HTTPS proxies (TLS to the proxy) are not supported: {_describe(proxy)}; "
            "use an http:// proxy URI (wss:// targets are still encrypted end to end)"
        )
    loop = asyncio.get_running_loop()
    address = b""
    if proxy.scheme != "http":
        # A target that cannot be expressed or resolved fails before the
        # proxy is even contacted.
        address = await _socks5_address(loop, proxy, host, port)
    if dial is None:
        sock = await _connect_to_proxy(loop, proxy)
    else:
        try:
            sock = await dial(proxy.host, proxy.port)
        except OSError as exc:
            raise ProxyError(f"cannot connect to proxy {_describe(proxy)}: {exc}") from exc
    try:
        sock.setblocking(False)  # the loop's sock_* calls need it
        if proxy.scheme == "http":
            await _http_connect(loop, sock, proxy, host, port)
        else:
            await _socks5_connect(loop, sock, proxy, address, _authority(host, port))
    except ProxyError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ProxyError(f"error talking to proxy {_describe(proxy)}: {exc}") from exc
    except BaseException:
        # Cancellation (open_timeout) and anything unexpected: do not leak the socket.
        sock.close()
        raise
    return sock


def _describe(proxy: ProxyURI) -> str:
    """The proxy URI without credentials, for error messages."""
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"{proxy.scheme}://{host}:{proxy.port}"


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _connect_to_proxy(loop: asyncio.AbstractEventLoop, proxy: ProxyURI) -> socket.socket:
    """Open a non-blocking TCP connection to the proxy, trying each address in turn."""
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProxyError(f"cannot resolve proxy {_describe(proxy)}: {exc}") from exc
    if not infos:
        raise ProxyError(f"cannot resolve proxy {_describe(proxy)}: no addresses")
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
    raise ProxyError(f"cannot connect to proxy {_describe(proxy)}: {last}") from last


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes: never more, so nothing of the tunnel is consumed."""
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ProxyError("the proxy closed the connection in the middle of its reply")
        data += chunk
    return bytes(data)


# --------------------------------------------------------------------------- HTTP CONNECT


async def _http_connect(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    proxy: ProxyURI,
    host: str,
    port: int,
) -> None:
    authority = _authority(host, port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.user is not None:
        credentials = f"{proxy.user}:{proxy.password or ''}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode("ascii"))
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    await loop.sock_sendall(sock, request)

    head, extra = await _read_response_head(loop, sock, proxy)
    status_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    match = _STATUS_LINE.fullmatch(status_line)
    shown = status_line.decode("ascii", "replace")
    if match is None:
        raise ProxyError(f"proxy {_describe(proxy)} sent an invalid status line: {shown!r}")
    status = int(match.group(1))
    if not 200 <= status < 300:
        hint = ""
        if status in (401, 407):  # tinyproxy answers wrong credentials with 401
            hint = (
                " (proxy authentication required)"
                if proxy.user is None
                else " (the proxy refused the credentials)"
            )
        raise ProxyError(f"proxy {_describe(proxy)} refused CONNECT {authority}: {shown}{hint}")
    if extra:
        # The target cannot have spoken yet for a WebSocket (the client
        # speaks first); bytes here mean a confused proxy, and passing the
        # socket on would silently drop them.
        raise ProxyError(
            f"proxy {_describe(proxy)} sent {len(extra)} unexpected bytes after its "
            "CONNECT response"
        )


async def _read_response_head(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: ProxyURI
) -> tuple[bytes, bytes]:
    """Read up to the blank line ending the head; return the head and what followed."""
    buffer = bytearray()
    scan = 0
    while True:
        # Lenient about bare LF line endings, as a client may be (RFC 9112 section 2.2).
        end = -1
        for terminator in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
            found = buffer.find(terminator, max(scan - 3, 0))
            if found >= 0 and (end < 0 or found + len(terminator) < end):
                end = found + len(terminator)
        if end >= 0:
            return bytes(buffer[:end]), bytes(buffer[end:])
        if len(buffer) > MAX_RESPONSE_HEAD:
            raise ProxyError(
                f"proxy {_describe(proxy)} sent a response head over {MAX_RESPONSE_HEAD} bytes"
            )
        scan = len(buffer)
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            if not buffer:
                raise ProxyError(
                    f"proxy {_describe(proxy)} closed the connection without answering CONNECT"
                )
            raise ProxyError(
                f"proxy {_describe(proxy)} closed the connection in the middle of its response"
            )
        buffer += chunk


# --------------------------------------------------------------------------- SOCKS5


async def _socks5_connect(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    proxy: ProxyURI,
    address: bytes,
    target: str,
) -> None:
    """Negotiate auth, then CONNECT to ``address`` (ATYP, DST.ADDR, DST.PORT)."""
    name = _describe(proxy)
    methods = [_SOCKS5_NO_AUTH]
    if proxy.user is not None:
        methods.append(_SOCKS5_USER_PASS)
    await loop.sock_sendall(sock, bytes([5, len(methods), *methods]))
    version, method = await _recv_exactly(loop, sock, 2)
    if version != 5:
        raise ProxyError(f"proxy {name} is not a SOCKS5 server (version byte {version})")
    if method == _SOCKS5_NO_METHOD:
        if proxy.user is None:
            raise ProxyError(
                f"SOCKS5 proxy {name} requires authentication; "
                "put credentials in the proxy URI (socks5://user:password@host:port)"
            )
        raise ProxyError(f"SOCKS5 proxy {name} accepts none of the offered auth methods")
    if method not in methods:
        raise ProxyError(f"SOCKS5 proxy {name} chose auth method {method:#04x}, not offered")
    if method == _SOCKS5_USER_PASS:
        await _socks5_authenticate(loop, sock, proxy)

    await loop.sock_sendall(sock, bytes([5, 1, 0]) + address)
    version, reply, _ = await _recv_exactly(loop, sock, 3)
    if version != 5:
        raise ProxyError(f"SOCKS5 proxy {name} sent a reply with version byte {version}")
    # Read the bound address whatever the outcome, so that it never
    # lingers in front of the tunnelled stream.
    atyp = (await _recv_exactly(loop, sock, 1))[0]
    if atyp == _ATYP_IPV4:
        await _recv_exactly(loop, sock, 4 + 2)
    elif atyp == _ATYP_IPV6:
        await _recv_exactly(loop, sock, 16 + 2)
    elif atyp == _ATYP_DOMAIN:
        length = (await _recv_exactly(loop, sock, 1))[0]
        await _recv_exactly(loop, sock, length + 2)
    else:
        raise ProxyError(f"SOCKS5 proxy {name} sent an unknown address type {atyp:#04x}")
    if reply != 0:
        meaning = _SOCKS5_REPLIES.get(reply, "unknown error")
        raise ProxyError(
            f"SOCKS5 proxy {name} could not connect to {target}: {meaning} (reply {reply:#04x})"
        )


async def _socks5_authenticate(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: ProxyURI
) -> None:
    """RFC 1929 username/password sub-negotiation."""
    user = (proxy.user or "").encode()
    password = (proxy.password or "").encode()
    if not 1 <= len(user) <= 255 or len(password) > 255:
        raise ProxyError("SOCKS5 user names must be 1 to 255 bytes and passwords at most 255 bytes")
    message = bytes([1, len(user)]) + user + bytes([len(password)]) + password
    await loop.sock_sendall(sock, message)
    _, status = await _recv_exactly(loop, sock, 2)
    if status != 0:
        raise ProxyError(
            f"SOCKS5 proxy {_describe(proxy)} refused the user name or password for {proxy.user!r}"
        )


async def _socks5_address(
    loop: asyncio.AbstractEventLoop, proxy: ProxyURI, host: str, port: int
) -> bytes:
    """ATYP, DST.ADDR and DST.PORT of a CONNECT request for ``host``:``port``."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            host.partition("%")[0]
        )
    except ValueError:
        ip = None
    if ip is None and proxy.scheme == "socks5":
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ProxyError(f"cannot resolve {host!r} for SOCKS5 proxy: {exc}") from exc
        if not infos:
            raise ProxyError(f"cannot resolve {host!r} for SOCKS5 proxy: no addresses")
        ip = ipaddress.ip_address(str(infos[0][4][0]).partition("%")[0])
    port_bytes = struct.pack("!H", port)
    if isinstance(ip, ipaddress.IPv4Address):
        return bytes([_ATYP_IPV4]) + ip.packed + port_bytes
    if isinstance(ip, ipaddress.IPv6Address):
        return bytes([_ATYP_IPV6]) + ip.packed + port_bytes
    try:
        encoded = host.encode("ascii")
    except UnicodeEncodeError:
        raise ProxyError(f"host name {host!r} must be IDNA-encoded for SOCKS5") from None
    if not 1 <= len(encoded) <= 255:
        raise ProxyError(f"host name {host!r} is too long for SOCKS5 (255 bytes at most)")
    return bytes([_ATYP_DOMAIN, len(encoded)]) + encoded + port_bytes
