"""Talking to HTTP CONNECT and SOCKS5 proxies, sans I/O.

:class:`ProxyHandshake` holds the bytes of one negotiation with a proxy: the
request that asks for a tunnel to the target, and the checks of the proxy's
replies. It never touches a socket; the I/O layers (``wskit.asyncio.proxy``
and ``wskit.sync.proxy``) connect to the proxy and drive it::

    handshake = ProxyHandshake(proxy, host, port)
    while True:
        sock.sendall(handshake.data_to_send())
        if handshake.done:
            break                        # the socket now carries the target's stream
        handshake.receive_data(sock.recv(handshake.bytes_wanted))

:attr:`ProxyHandshake.bytes_wanted` is never more than the proxy's reply
still holds (SOCKS5) or than a small read (HTTP), so nothing of the tunnelled
stream is consumed; ``receive_data(b"")`` reports the end of the stream.

Supported:

* ``http://``: HTTP CONNECT (RFC 9110 section 9.3.6), with
  ``Proxy-Authorization: Basic`` when the proxy URI has credentials.
* ``socks5://``: SOCKS5 (RFC 1928); the target host name is resolved by the
  I/O layer (:func:`needs_resolution` says when) and the proxy is given an
  IP address.
* ``socks5h://``: SOCKS5 where the proxy resolves the host name.
* SOCKS5 username/password authentication (RFC 1929).

``https://`` proxies (TLS between the client and the proxy itself) are
refused: the tunnel is a plain socket, which cannot carry a second TLS layer
under the one ``wss://`` puts on top.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import struct
from collections.abc import Generator

from ..exceptions import ProxyError
from .uri import ProxyURI

__all__ = ["ProxyHandshake", "MAX_RESPONSE_HEAD", "describe_proxy", "needs_resolution"]

MAX_RESPONSE_HEAD = 65536
"""Largest HTTP CONNECT response head accepted from a proxy, in bytes."""

# How much of an HTTP CONNECT response one read may take.
_HTTP_READ = 4096

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

# A step of the negotiation: yields how many bytes it may take next, is sent them.
_Steps = Generator[int, bytes, None]


def describe_proxy(proxy: ProxyURI) -> str:
    """The proxy URI without its credentials, for error messages."""
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"{proxy.scheme}://{host}:{proxy.port}"


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def needs_resolution(proxy: ProxyURI, host: str) -> bool:
    """Whether the I/O layer must resolve ``host`` and pass its IP as ``resolved``.

    True for ``socks5://`` (not ``socks5h://``) and a host name that is not
    an IP literal: the proxy is then given the address, not the name.
    """
    return proxy.scheme == "socks5" and _ip_literal(host) is None


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProxyHandshake:
    """One negotiation of a tunnel to ``host``:``port`` through ``proxy``: bytes in, bytes out.

    Args:
        proxy: the proxy, from :func:`~wskit.protocol.uri.parse_proxy_uri`.
        host: the target, a host name (IDNA-encoded, as
            :func:`~wskit.protocol.uri.parse_uri` produces it) or an IP
            address, IPv6 without brackets.
        port: the target's port.
        resolved: with ``socks5://``, the IP address ``host`` resolved to
            (see :func:`needs_resolution`); ignored otherwise.

    Raises:
        ProxyError: an ``https://`` proxy, or a target SOCKS5 cannot express;
            during :meth:`receive_data`: the proxy refused the request, asked
            for credentials that were missing or wrong, or broke its protocol.
    """

    def __init__(self, proxy: ProxyURI, host: str, port: int, resolved: str | None = None) -> None:
        if proxy.scheme == "https":
            raise ProxyError(
                f"HTTPS proxies (TLS to the proxy) are not supported: {describe_proxy(proxy)}; "
                "use an http:// proxy URI (wss:// targets are still encrypted end to end)"
            )
        self.proxy = proxy
        self._name = describe_proxy(proxy)
        self._target = _authority(host, port)
        self._output = bytearray()
        #: Whether the proxy agreed: from now on the stream is the target's.
        self.done = False
        steps: _Steps
        if proxy.scheme == "http":
            steps = self._http_connect()
        else:
            steps = self._socks5_connect(self._socks5_address(host, port, resolved))
        self._steps = steps
        #: The most bytes to read from the proxy and pass to :meth:`receive_data`; 0 once done.
        self.bytes_wanted = next(steps)

    def data_to_send(self) -> bytes:
        """Return, and forget, the bytes to write to the proxy."""
        output = bytes(self._output)
        self._output.clear()
        return output

    def receive_data(self, data: bytes) -> None:
        """Feed what the proxy sent (at most :attr:`bytes_wanted` bytes); ``b""`` at EOF.

        Raises:
            ProxyError: the proxy refused or broke its protocol (the
                negotiation is over; close the socket).
        """
        if self.done:
            raise ProxyError(f"proxy {self._name} sent bytes after the tunnel was open")
        try:
            self.bytes_wanted = self._steps.send(data)
        except StopIteration:
            self.bytes_wanted = 0
            self.done = True

    # -- HTTP CONNECT ---------------------------------------------------------------------

    def _http_connect(self) -> _Steps:
        proxy, name, authority = self.proxy, self._name, self._target
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if proxy.user is not None:
            credentials = f"{proxy.user}:{proxy.password or ''}".encode()
            lines.append(
                "Proxy-Authorization: Basic " + base64.b64encode(credentials).decode("ascii")
            )
        self._output += ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

        buffer = bytearray()
        scan = 0
        while True:
            end = _head_end(buffer, scan)
            if end >= 0:
                break
            if len(buffer) > MAX_RESPONSE_HEAD:
                raise ProxyError(
                    f"proxy {name} sent a response head over {MAX_RESPONSE_HEAD} bytes"
                )
            scan = len(buffer)
            chunk = yield _HTTP_READ
            if not chunk:
                if not buffer:
                    raise ProxyError(
                        f"proxy {name} closed the connection without answering CONNECT"
                    )
                raise ProxyError(
                    f"proxy {name} closed the connection in the middle of its response"
                )
            buffer += chunk

        status_line = bytes(buffer[:end]).split(b"\n", 1)[0].rstrip(b"\r")
        match = _STATUS_LINE.fullmatch(status_line)
        shown = status_line.decode("ascii", "replace")
        if match is None:
            raise ProxyError(f"proxy {name} sent an invalid status line: {shown!r}")
        status = int(match.group(1))
        if not 200 <= status < 300:
            hint = ""
            if status in (401, 407):  # tinyproxy answers wrong credentials with 401
                hint = (
                    " (proxy authentication required)"
                    if proxy.user is None
                    else " (the proxy refused the credentials)"
                )
            raise ProxyError(f"proxy {name} refused CONNECT {authority}: {shown}{hint}")
        extra = len(buffer) - end
        if extra:
            # The target cannot have spoken yet for a WebSocket (the client
            # speaks first); bytes here mean a confused proxy, and passing the
            # socket on would silently drop them.
            raise ProxyError(
                f"proxy {name} sent {extra} unexpected bytes after its CONNECT response"
            )

    # -- SOCKS5 ---------------------------------------------------------------------------

    def _socks5_address(self, host: str, port: int, resolved: str | None) -> bytes:
        """ATYP, DST.ADDR and DST.PORT of a CONNECT request for ``host``:``port``."""
        ip = _ip_literal(host)
        if ip is None and self.proxy.scheme == "socks5":
            if resolved is None:
                raise ValueError("socks5:// needs the target's address: see needs_resolution()")
            ip = _ip_literal(resolved)
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

    def _socks5_connect(self, address: bytes) -> _Steps:
        """Negotiate auth, then CONNECT to ``address`` (ATYP, DST.ADDR, DST.PORT)."""
        proxy, name = self.proxy, self._name
        methods = [_SOCKS5_NO_AUTH]
        if proxy.user is not None:
            methods.append(_SOCKS5_USER_PASS)
        self._output += bytes([5, len(methods), *methods])
        version, method = yield from _exactly(2)
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
            yield from self._socks5_authenticate()

        self._output += bytes([5, 1, 0]) + address
        version, reply, _ = yield from _exactly(3)
        if version != 5:
            raise ProxyError(f"SOCKS5 proxy {name} sent a reply with version byte {version}")
        # Read the bound address whatever the outcome, so that it never
        # lingers in front of the tunnelled stream.
        atyp = (yield from _exactly(1))[0]
        if atyp == _ATYP_IPV4:
            yield from _exactly(4 + 2)
        elif atyp == _ATYP_IPV6:
            yield from _exactly(16 + 2)
        elif atyp == _ATYP_DOMAIN:
            length = (yield from _exactly(1))[0]
            yield from _exactly(length + 2)
        else:
            raise ProxyError(f"SOCKS5 proxy {name} sent an unknown address type {atyp:#04x}")
        if reply != 0:
            meaning = _SOCKS5_REPLIES.get(reply, "unknown error")
            raise ProxyError(
                f"SOCKS5 proxy {name} could not connect to {self._target}: "
                f"{meaning} (reply {reply:#04x})"
            )

    def _socks5_authenticate(self) -> _Steps:
        """RFC 1929 username/password sub-negotiation."""
        proxy = self.proxy
        user = (proxy.user or "").encode()
        password = (proxy.password or "").encode()
        if not 1 <= len(user) <= 255 or len(password) > 255:
            raise ProxyError(
                "SOCKS5 user names must be 1 to 255 bytes and passwords at most 255 bytes"
            )
        self._output += bytes([1, len(user)]) + user + bytes([len(password)]) + password
        _, status = yield from _exactly(2)
        if status != 0:
            raise ProxyError(
                f"SOCKS5 proxy {self._name} refused the user name or password for {proxy.user!r}"
            )


def _exactly(size: int) -> Generator[int, bytes, bytes]:
    """Take exactly ``size`` bytes: never more, so nothing of the tunnel is consumed."""
    data = bytearray()
    while len(data) < size:
        chunk = yield size - len(data)
        if not chunk:
            raise ProxyError("the proxy closed the connection in the middle of its reply")
        data += chunk
    return bytes(data)


def _head_end(buffer: bytearray, scan: int) -> int:
    """Where the response head ends (after its blank line) in ``buffer``, or -1.

    Lenient about bare LF line endings, as a client may be (RFC 9112
    section 2.2). ``scan`` is how far an earlier call looked already.
    """
    end = -1
    for terminator in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
        found = buffer.find(terminator, max(scan - 3, 0))
        if found >= 0 and (end < 0 or found + len(terminator) < end):
            end = found + len(terminator)
    return end
