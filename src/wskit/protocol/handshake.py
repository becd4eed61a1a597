"""The WebSocket opening handshake (RFC 6455 section 4), sans I/O.

Server side: :func:`server_handshake` checks an upgrade :class:`Request`
and builds the ``101 Switching Protocols`` :class:`Response`, or raises
:class:`~wskit.exceptions.InvalidRequest` carrying the status, headers and
readable body to answer with (turn it into a response with :func:`reject`).

Client side: :class:`ClientHandshake` builds the upgrade request and checks
the server's response.

Both sides negotiate a subprotocol and permessage-deflate (RFC 7692, through
:mod:`wskit.protocol.deflate`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata

from wskit.exceptions import HandshakeRejected, InvalidRequest, InvalidResponse
from wskit.protocol.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_accept,
    client_offer,
    server_negotiate,
)
from wskit.protocol.headers import (
    ExtensionOffer,
    Headers,
    is_token,
    parse_extension_list,
    parse_token_list,
    serialize_extension_list,
)
from wskit.protocol.http11 import Request, Response, reason_phrase
from wskit.protocol.uri import WebSocketURI

__all__ = [
    "GUID",
    "USER_AGENT",
    "ClientHandshake",
    "ClientHandshakeResult",
    "HeadersLike",
    "ServerHandshakeResult",
    "accept_key",
    "check_origin_same_host",
    "choose_subprotocol",
    "generate_key",
    "is_redirect",
    "is_websocket_upgrade",
    "reject",
    "requested_subprotocols",
    "server_handshake",
    "verify_origin",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The magic string of RFC 6455 section 1.3, appended to the key before hashing."""

HeadersLike = Iterable[tuple[str, str]] | Mapping[str, str] | Headers
"""Anything :class:`Headers` can be built from: pairs, a mapping or ``Headers``."""

_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))


def generate_key() -> str:
    """Return a fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value answering ``key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(headers: Headers, name: str) -> list[str]:
    """The lowercased comma-separated elements of a header, leniently.

    Not :func:`parse_token_list`: ``Upgrade`` elements may carry a version
    (``h2c, HTTP/2.0``), which is not a token, and one odd element must not
    hide the ``websocket`` or ``upgrade`` we are looking for.
    """
    return [
        element.strip(" \t").lower()
        for value in headers.get_all(name)
        for element in value.split(",")
        if element.strip(" \t")
    ]


def _host_of_origin(origin: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(origin)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    # netloc may carry user info, which Go's url.URL.Host leaves out.
    return parts.netloc.rpartition("@")[2]


def check_origin_same_host(request: Request) -> bool:
    """The safe default origin policy: allow only pages of the same host.

    True when there is no ``Origin`` header (not a browser, so not a
    cross-site attack); otherwise the host and port of the origin must equal
    the ``Host`` header, ignoring ASCII case, as gorilla/websocket does. The
    opaque origin ``null`` (sandboxed frames, ``file:`` pages) is refused.
    """
    origins = request.headers.get_all("Origin")
    if not origins:
        return True
    if len(origins) != 1:
        return False
    host = _host_of_origin(origins[0].strip())
    hosts = request.headers.get_all("Host")
    if host is None or len(hosts) != 1:
        return False
    # The origin's host is ASCII already (browsers serialize it with IDNA);
    # comparing ASCII-only lowercase mirrors gorilla's equalASCIIFold.
    return _ascii_lower(host) == _ascii_lower(hosts[0].strip())


def _ascii_lower(value: str) -> str:
    return value.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def reject(status: int, body: str | bytes = "", headers: HeadersLike = ()) -> Response:
    """Build a readable error response, e.g. when a hook refuses a request.

    ``body`` defaults to the status line in words. ``Content-Type:
    text/plain; charset=utf-8`` and ``Connection: close`` are added unless
    ``headers`` has them, and ``Content-Length`` always. To answer an
    :class:`~wskit.exceptions.InvalidRequest` ``exc``, use
    ``reject(exc.status, exc.body, exc.headers)``.
    """
    response_headers = Headers(headers)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not body:
        body = f"{status} {reason_phrase(status)}\n".encode()
    if "Content-Type" not in response_headers:
        response_headers.add("Content-Type", "text/plain; charset=utf-8")
    # The connection cannot be reused: the client sent an upgrade request
    # and may already be sending frames after it.
    if "Connection" not in response_headers:
        response_headers.add("Connection", "close")
    response_headers["Content-Length"] = str(len(body))
    return Response(status, reason_phrase(status), response_headers, body)


@dataclass
class ServerHandshakeResult:
    """What :func:`server_handshake` accepted: the 101 response to send and
    the negotiated subprotocol and compression."""

    response: Response
    subprotocol: str | None
    deflate: PerMessageDeflate | None


def _single(request: Request, name: str) -> str:
    values = request.headers.get_all(name)
    if not values:
        raise InvalidRequest(f"missing {name} header", 400)
    if len(values) > 1:
        raise InvalidRequest(f"more than one {name} header", 400)
    return values[0].strip(" \t")


def is_websocket_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket upgrade (gorilla's ``IsWebSocketUpgrade``).

    True when its ``Connection`` header has the token ``upgrade`` and its
    ``Upgrade`` header the token ``websocket`` (both case-insensitive): what
    an HTTP route serving both plain requests and WebSockets checks first.
    The handshake checks more (the key, the version...).
    """
    return "websocket" in _tokens(request.headers, "Upgrade") and "upgrade" in _tokens(
        request.headers, "Connection"
    )


def requested_subprotocols(request: Request) -> list[str]:
    """The subprotocols the client offers, in its order (gorilla's ``Subprotocols``).

    Empty when it offers none, or when its ``Sec-WebSocket-Protocol`` header
    is malformed (the handshake then refuses the request with 400).
    """
    try:
        return parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol"))
    except ValueError:
        return []


def _check_upgrade(request: Request) -> None:
    upgrade = _tokens(request.headers, "Upgrade")
    connection = _tokens(request.headers, "Connection")
    has_upgrade = "websocket" in upgrade
    has_connection = "upgrade" in connection
    if not has_upgrade and not has_connection:
        # A plain HTTP request (a browser tab, a health check, curl) reached
        # the WebSocket endpoint. gorilla answers 400 "the client is not
        # using the websocket protocol"; 426 Upgrade Required is the status
        # RFC 9110 section 15.5.22 defines for exactly this, and the body
        # tells a human what to do.
        raise InvalidRequest(
            "not a WebSocket upgrade request",
            426,
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
            b"This is a WebSocket endpoint; connect with a WebSocket client.\n",
        )
    if not has_upgrade:
        raise InvalidRequest(
            "the Upgrade header must contain 'websocket', "
            f"got {request.headers.get('Upgrade', '(none)')!r}",
            400,
        )
    if not has_connection:
        raise InvalidRequest(
            "the Connection header must contain 'Upgrade', "
            f"got {request.headers.get('Connection', '(none)')!r}",
            400,
        )


def _check_key(request: Request) -> str:
    key = _single(request, "Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise InvalidRequest(
            "invalid Sec-WebSocket-Key header: it must be 16 bytes, base64-encoded", 400
        )
    return key


def verify_origin(
    request: Request,
    origins: Sequence[str | None] | None,
    check_origin: Callable[[Request], bool] | None,
) -> None:
    """Refuse a request whose ``Origin`` the server's policy does not allow.

    The policy is the first given of: ``origins``, the allowed ``Origin``
    values (compared ignoring case; ``None`` in the list allows requests
    without one, and a request with several is refused); ``check_origin(request)
    -> allowed``; the same-host default, :func:`check_origin_same_host`.
    :func:`server_handshake` applies it, and so does the ASGI adapter, where
    the ASGI server made the rest of the handshake.

    Raises:
        InvalidRequest: 403 ``Origin not allowed``.
    """
    if origins is not None:
        values = request.headers.get_all("Origin")
        if len(values) > 1:
            allowed = False
        elif not values:
            allowed = None in origins
        else:
            # Origins are serialized lowercase (RFC 6454 section 6.2), but
            # compare case-insensitively in case the list was written by hand.
            origin = values[0].strip().lower()
            allowed = any(o is not None and o.lower() == origin for o in origins)
    elif check_origin is not None:
        allowed = check_origin(request)
    else:
        allowed = check_origin_same_host(request)
    if not allowed:
        raise InvalidRequest("Origin not allowed", 403)


def _select_subprotocol(
    request: Request,
    subprotocols: Sequence[str],
    select_subprotocol: Callable[[Sequence[str], Sequence[str]], str | None] | None,
) -> str | None:
    try:
        offered = parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol"))
    except ValueError as exc:
        raise InvalidRequest(f"invalid Sec-WebSocket-Protocol header: {exc}", 400) from None
    return choose_subprotocol(offered, subprotocols, select_subprotocol)


def choose_subprotocol(
    offered: Sequence[str],
    subprotocols: Sequence[str],
    select_subprotocol: Callable[[Sequence[str], Sequence[str]], str | None] | None,
) -> str | None:
    """The subprotocol to answer the client's ``offered`` list with, or ``None``.

    ``select_subprotocol(offered, subprotocols)`` decides when given;
    otherwise the first of the server's ``subprotocols`` the client offered.

    Raises:
        ValueError: ``select_subprotocol`` chose one the client did not offer.
    """
    if select_subprotocol is not None:
        chosen = select_subprotocol(offered, subprotocols)
        if chosen is not None and chosen not in offered:
            # The client would fail the connection (RFC 6455 section 4.1):
            # a bug in the hook, better reported where it happened.
            raise ValueError(
                f"select_subprotocol returned {chosen!r}, which the client did not offer"
            )
        return chosen
    # The server's order of preference wins, as in gorilla/websocket.
    return next((p for p in subprotocols if p in offered), None)


def _negotiate_deflate(
    request: Request, compression: DeflateOptions | None
) -> tuple[ExtensionOffer, PerMessageDeflate] | None:
    try:
        offers = parse_extension_list(request.headers.get_all("Sec-WebSocket-Extensions"))
    except ValueError as exc:
        raise InvalidRequest(f"invalid Sec-WebSocket-Extensions header: {exc}", 400) from None
    if compression is None or not offers:
        return None
    return server_negotiate(offers, compression)


def server_handshake(
    request: Request,
    *,
    subprotocols: Sequence[str] = (),
    select_subprotocol: Callable[[Sequence[str], Sequence[str]], str | None] | None = None,
    origins: Sequence[str | None] | None = None,
    check_origin: Callable[[Request], bool] | None = None,
    compression: DeflateOptions | None = DeflateOptions(),  # noqa: B008 - frozen, shared safely
    extra_headers: HeadersLike = (),
    server_header: str | None = "wskit",
) -> ServerHandshakeResult:
    """Check an upgrade request and build the ``101 Switching Protocols`` response.

    Args:
        request: the parsed request.
        subprotocols: the subprotocols the server speaks, preferred first;
            the first one the client also offered is selected.
        select_subprotocol: ``(client_offers, server_list) -> choice or
            None`` replaces that rule; it must return one of the client's
            offers or ``None``.
        origins: allowed ``Origin`` values (``None`` in the list allows
            requests without one); overrides ``check_origin``.
        check_origin: ``(request) -> allowed``; the default allows only
            requests without ``Origin`` or from the same host
            (:func:`check_origin_same_host`).
        compression: permessage-deflate settings, or ``None`` to refuse it.
        extra_headers: appended to the response (``Set-Cookie``, ...).
        server_header: the ``Server`` header, or ``None`` for none. Left
            out as well when ``extra_headers`` has one.

    Raises:
        InvalidRequest: with the status to answer: 405 for a method other
            than GET, 505 for a version other than HTTP/1.1, 426 for a plain
            HTTP request or a ``Sec-WebSocket-Version`` other than 13, 403
            for a refused origin, 400 for anything else wrong.
        ValueError: ``select_subprotocol`` returned something not offered.
    """
    if request.method != "GET":
        raise InvalidRequest(
            f"method {request.method} not allowed; a WebSocket handshake is a GET",
            405,
            [("Allow", "GET")],
        )
    if request.version != "HTTP/1.1":
        raise InvalidRequest(
            f"HTTP version {request.version} is not supported; WebSocket connections need HTTP/1.1",
            505,
        )
    _check_upgrade(request)
    if not _single(request, "Host"):
        raise InvalidRequest("empty Host header", 400)
    versions = request.headers.get_all("Sec-WebSocket-Version")
    if [v.strip(" \t") for v in versions] != ["13"]:
        # RFC 6455 section 4.4: tell the client which version we speak.
        # Checked before the key: a client of another version may still
        # send a key, and the useful answer is the version.
        got = ", ".join(versions) if versions else "none"
        raise InvalidRequest(
            f"unsupported Sec-WebSocket-Version {got}; only version 13 is supported",
            426,
            [("Sec-WebSocket-Version", "13")],
        )
    key = _check_key(request)
    verify_origin(request, origins, check_origin)
    subprotocol = _select_subprotocol(request, subprotocols, select_subprotocol)
    negotiated = _negotiate_deflate(request, compression)

    headers = Headers()
    headers.add("Upgrade", "websocket")
    headers.add("Connection", "Upgrade")
    headers.add("Sec-WebSocket-Accept", accept_key(key))
    if subprotocol is not None:
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if negotiated is not None:
        headers.add("Sec-WebSocket-Extensions", serialize_extension_list([negotiated[0]]))
    extra = Headers(extra_headers)
    if server_header is not None and "Server" not in extra:
        headers.add("Server", server_header)
    headers.update(extra)
    response = Response(101, reason_phrase(101), headers)
    return ServerHandshakeResult(response, subprotocol, negotiated[1] if negotiated else None)


def is_redirect(response: Response) -> str | None:
    """Return the ``Location`` of a redirect response (301, 302, 303, 307, 308).

    ``None`` for any other response, or a redirect without exactly one
    non-empty ``Location``. The location may be relative; resolve it with
    :func:`wskit.protocol.uri.redirect_uri`.
    """
    if response.status not in _REDIRECT_STATUSES:
        return None
    locations = response.headers.get_all("Location")
    if len(locations) != 1 or not locations[0].strip():
        return None
    return locations[0].strip()


def _version() -> str:
    # The package is imported before its submodules, so __version__ is
    # there if wskit/__init__.py defines it ahead of its imports; otherwise
    # ask the installed distribution.
    version = getattr(sys.modules.get("wskit"), "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return metadata.version("wskit")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"wskit/{_version()}"
"""The default ``User-Agent`` of :class:`ClientHandshake`."""


@dataclass
class ClientHandshakeResult:
    """What the server accepted: the subprotocol and the compression codec."""

    subprotocol: str | None
    deflate: PerMessageDeflate | None


class ClientHandshake:
    """The client's side of the opening handshake.

    Send :attr:`request`, parse the answer with
    :class:`~wskit.protocol.http11.ResponseParser` and pass it to
    :meth:`process_response`.

    Args:
        uri: where to connect.
        origin: the ``Origin`` header, for servers that check it.
        subprotocols: subprotocols to offer, preferred first.
        compression: permessage-deflate settings to offer, or ``None``.
        extra_headers: added to the request; a ``User-Agent`` or
            ``Authorization`` among them replaces the default one.
        user_agent: the ``User-Agent`` header, or ``None`` for none.
        key: the ``Sec-WebSocket-Key``; random unless given (for tests).

    Raises:
        ValueError: a subprotocol is not a token.
    """

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        compression: DeflateOptions | None = DeflateOptions(),  # noqa: B008 - frozen
        extra_headers: HeadersLike = (),
        user_agent: str | None = USER_AGENT,
        key: str | None = None,
    ) -> None:
        for protocol in subprotocols:
            if not is_token(protocol):
                raise ValueError(f"subprotocol {protocol!r} is not a valid token")
        self.uri = uri
        self.subprotocols = tuple(subprotocols)
        self.compression = compression
        self.key = key if key is not None else generate_key()

        extra = Headers(extra_headers)
        headers = Headers()
        headers.add("Host", uri.host_header)
        headers.add("Upgrade", "websocket")
        headers.add("Connection", "Upgrade")
        headers.add("Sec-WebSocket-Key", self.key)
        headers.add("Sec-WebSocket-Version", "13")
        if origin is not None:
            headers.add("Origin", origin)
        if self.subprotocols:
            headers.add("Sec-WebSocket-Protocol", ", ".join(self.subprotocols))
        if compression is not None:
            offer = client_offer(compression)
            headers.add("Sec-WebSocket-Extensions", serialize_extension_list([offer]))
        if uri.user is not None and "Authorization" not in extra:
            credentials = f"{uri.user}:{uri.password or ''}".encode()
            headers.add("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii"))
        if user_agent is not None and "User-Agent" not in extra:
            headers.add("User-Agent", user_agent)
        headers.update(extra)
        self._request = Request("GET", uri.path, headers)

    @property
    def request(self) -> Request:
        """The upgrade request to send (the same object each time, so it can be edited)."""
        return self._request

    def process_response(self, response: Response) -> ClientHandshakeResult:
        """Check the server's response; return what was negotiated.

        Raises:
            HandshakeRejected: the status is not 101 (redirects included:
                see :func:`is_redirect`); carries the status, headers and body.
            InvalidResponse: a 101 that breaks RFC 6455 section 4.1: missing
                ``Upgrade``/``Connection`` tokens, a wrong
                ``Sec-WebSocket-Accept``, a subprotocol or extension that was
                not offered.
        """
        if response.status != 101:
            raise HandshakeRejected(
                response.status, response.headers, response.body, response.reason
            )
        headers = response.headers
        if "websocket" not in _tokens(headers, "Upgrade"):
            raise InvalidResponse(
                f"the Upgrade header must be 'websocket', got {headers.get('Upgrade', '(none)')!r}"
            )
        if "upgrade" not in _tokens(headers, "Connection"):
            raise InvalidResponse(
                "the Connection header must contain 'Upgrade', "
                f"got {headers.get('Connection', '(none)')!r}"
            )
        accepts = headers.get_all("Sec-WebSocket-Accept")
        if len(accepts) != 1:
            raise InvalidResponse(f"expected one Sec-WebSocket-Accept header, got {len(accepts)}")
        if accepts[0].strip(" \t") != accept_key(self.key):
            raise InvalidResponse("wrong Sec-WebSocket-Accept: the server did not answer our key")
        return ClientHandshakeResult(self._subprotocol(headers), self._deflate(headers))

    def _subprotocol(self, headers: Headers) -> str | None:
        try:
            chosen = parse_token_list(headers.get_all("Sec-WebSocket-Protocol"))
        except ValueError as exc:
            raise InvalidResponse(f"invalid Sec-WebSocket-Protocol header: {exc}") from None
        if not chosen:
            return None
        if len(chosen) > 1:
            raise InvalidResponse(f"the server selected several subprotocols: {', '.join(chosen)}")
        if chosen[0] not in self.subprotocols:
            raise InvalidResponse(f"the server selected subprotocol {chosen[0]!r}, not offered")
        return chosen[0]

    def _deflate(self, headers: Headers) -> PerMessageDeflate | None:
        try:
            accepted = parse_extension_list(headers.get_all("Sec-WebSocket-Extensions"))
        except ValueError as exc:
            raise InvalidResponse(f"invalid Sec-WebSocket-Extensions header: {exc}") from None
        if not accepted:
            return None
        if self.compression is None:
            names = ", ".join(name for name, _ in accepted)
            raise InvalidResponse(f"the server accepted extensions that were not offered: {names}")
        return client_accept(accepted, self.compression)
