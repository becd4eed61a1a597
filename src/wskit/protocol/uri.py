"""WebSocket and proxy URIs (RFC 6455 section 3).

:func:`parse_uri` turns ``ws://`` and ``wss://`` URIs into the pieces a
client needs: where to connect, what to put in the ``Host`` header and the
request target, and credentials for ``Authorization: Basic``. It accepts
what people type (non-ASCII host names and paths, IPv6 literals) and
produces what goes on the wire (IDNA host names, percent-encoded paths).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal, cast

from wskit.exceptions import InvalidURI

__all__ = [
    "ProxyURI",
    "WebSocketURI",
    "parse_proxy_uri",
    "parse_uri",
    "redirect_uri",
]

_DEFAULT_PORTS = {"ws": 80, "wss": 443, "http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}

# RFC 3986 section 3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@".
# "%" stays as is so that a path the caller already percent-encoded is not
# encoded twice; everything else (spaces, non-ASCII as UTF-8) is escaped.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
# After IDNA encoding, a registered name is letters, digits, "-" and ".";
# "_" is not valid in DNS host names but does occur in practice.
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_IPV6_CHARS = frozenset("0123456789abcdef:.%")


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI.

    ``host`` is IDNA-encoded and lowercase, IPv6 literals without brackets;
    ``path`` is the resource name sent in the request line: the
    percent-encoded path (``/`` when empty) followed by ``?query`` if any.
    ``user`` and ``password`` are percent-decoded.
    """

    secure: bool
    host: str
    port: int
    path: str = "/"
    user: str | None = None
    password: str | None = None

    @property
    def scheme(self) -> str:
        """``"wss"`` or ``"ws"``."""
        return "wss" if self.secure else "ws"

    @property
    def host_header(self) -> str:
        """The value of the ``Host`` header: host, then ``:port`` unless default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == (443 if self.secure else 80):
            return host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        """The URI without credentials (safe to log)."""
        return f"{self.scheme}://{self.host_header}{self.path}"


@dataclass(frozen=True)
class ProxyURI:
    """A parsed proxy URI: HTTP CONNECT (``http``, ``https``) or SOCKS5.

    With ``socks5`` the client resolves the target host name itself; with
    ``socks5h`` the proxy does (curl's convention).
    """

    scheme: Literal["http", "https", "socks5", "socks5h"]
    host: str
    port: int
    user: str | None = None
    password: str | None = None


def _split(uri: str) -> urllib.parse.SplitResult:
    # urlsplit silently drops tabs and newlines; a URI holding them is more
    # likely an injection attempt or a copy-paste accident than intended.
    if not uri.isprintable():
        raise InvalidURI(uri, "it contains control characters")
    try:
        return urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None


def _host_and_port(uri: str, parts: urllib.parse.SplitResult, scheme: str) -> tuple[str, int]:
    host = parts.hostname
    if not host:
        raise InvalidURI(uri, "it has no host")
    if ":" in host:
        # urlsplit only yields a ":" in the host from a bracketed literal.
        if not set(host) <= _IPV6_CHARS:
            raise InvalidURI(uri, f"invalid IPv6 address {host!r}")
    else:
        if not host.isascii():
            try:
                # Python's codec implements IDNA 2003; good enough for a
                # client, and it avoids a third-party dependency.
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURI(uri, f"invalid international host name {host!r}") from None
        host = host.lower()
        if not set(host) <= _HOST_CHARS:
            raise InvalidURI(uri, f"invalid host name {host!r}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidURI(uri, "invalid port") from None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    elif port == 0:
        raise InvalidURI(uri, "port 0 is not a valid destination")
    return host, port


def _credentials(parts: urllib.parse.SplitResult) -> tuple[str | None, str | None]:
    user = parts.username
    password = parts.password
    return (
        None if user is None else urllib.parse.unquote(user),
        None if password is None else urllib.parse.unquote(password),
    )


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a ``ws://`` or ``wss://`` URI.

    Raises:
        InvalidURI: the scheme is not ``ws``/``wss``, there is a fragment
            (RFC 6455 section 3 forbids them), or the host or port is invalid.
    """
    parts = _split(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        # http(s) is refused rather than mapped: a WebSocket URI written with
        # the wrong scheme usually signals a configuration mistake.
        hint = {"http": " (use ws://)", "https": " (use wss://)"}.get(scheme, "")
        raise InvalidURI(uri, f"scheme must be ws or wss, not {scheme or 'missing'!r}{hint}")
    if "#" in uri:
        raise InvalidURI(uri, "fragments are not allowed (RFC 6455 section 3); escape '#' as %23")
    host, port = _host_and_port(uri, parts, scheme)
    path = urllib.parse.quote(parts.path, safe=_PATH_SAFE) or "/"
    if parts.query:
        path += "?" + urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
    user, password = _credentials(parts)
    return WebSocketURI(scheme == "wss", host, port, path, user, password)


def parse_proxy_uri(uri: str) -> ProxyURI:
    """Parse a proxy URI such as ``http://user:pass@proxy:3128`` or ``socks5h://h``.

    A URI without a scheme (``proxy:3128``, as often found in ``HTTP_PROXY``)
    means ``http``. Default ports: 80 for ``http``, 443 for ``https``, 1080
    for SOCKS5.

    Raises:
        InvalidURI: the scheme is not supported or the URI has a path.
    """
    if "://" not in uri:
        uri = "http://" + uri
    parts = _split(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "socks5", "socks5h"):
        raise InvalidURI(
            uri, f"proxy scheme must be http, https, socks5 or socks5h, not {scheme!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidURI(uri, "a proxy URI has no path, query or fragment")
    host, port = _host_and_port(uri, parts, scheme)
    user, password = _credentials(parts)
    kind = cast(Literal["http", "https", "socks5", "socks5h"], scheme)
    return ProxyURI(kind, host, port, user, password)


def redirect_uri(base: WebSocketURI, location: str) -> WebSocketURI:
    """Resolve the ``Location`` of a redirect answering a request to ``base``.

    ``location`` may be relative, and may use ``http``/``https``, which are
    mapped to ``ws``/``wss``: the server answering the upgrade request is an
    HTTP server and often writes its redirects that way. Credentials are not
    carried over to the new URI.

    Raises:
        InvalidURI: the target is not a valid WebSocket URI.
    """
    # Fragments are for the client alone (RFC 9110 section 10.2.2): drop it
    # rather than fail on it as parse_uri would.
    location = urllib.parse.urldefrag(location.strip()).url
    origin = f"{'https' if base.secure else 'http'}://{base.host_header}"
    joined = urllib.parse.urljoin(origin + base.path, location)
    scheme, sep, rest = joined.partition("://")
    mapped = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme)
    return parse_uri(mapped + sep + rest)
