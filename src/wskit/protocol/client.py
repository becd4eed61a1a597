"""What a client decides around the opening handshake, sans I/O.

Both clients, :func:`wskit.connect` (asyncio) and :func:`wskit.sync.connect`
(blocking), open a connection the same way and differ only in how they wait
for the network. The decisions they share live here, once:

* which proxy a URI goes through (:func:`proxy_for`: an explicit one, or the
  environment's, as gorilla's ``ProxyFromEnvironment`` reads it);
* cookies (:func:`cookie_header` to send, :func:`store_cookies` to keep the
  ``Set-Cookie`` headers of every response), with an
  :class:`http.cookiejar.CookieJar`;
* redirects (:func:`redirect_target`: where a refused handshake sends the
  client next, if anywhere);
* the ``compression`` option (:func:`compression_options`);
* the arguments a client's ``connect()`` refuses before any I/O
  (:func:`check_connect_arguments`), and the request of each attempt
  (:func:`client_handshake`).
"""

from __future__ import annotations

import http.cookiejar
import urllib.request
from collections.abc import Collection, Sequence, Set
from typing import Any, cast

from ..exceptions import HandshakeRejected, InvalidURI
from .deflate import DeflateOptions
from .handshake import ClientHandshake, HeadersLike, is_redirect
from .headers import Headers
from .http11 import Response
from .uri import ProxyURI, WebSocketURI, parse_proxy_uri, redirect_uri

__all__ = [
    "check_connect_arguments",
    "client_handshake",
    "compression_options",
    "next_uri",
    "cookie_header",
    "proxy_for",
    "redirect_target",
    "store_cookies",
    "with_cookie",
]


def compression_options(value: str | DeflateOptions | None) -> DeflateOptions | None:
    """The ``compression`` option as :class:`DeflateOptions`: ``"deflate"``, options or ``None``.

    Raises:
        ValueError: any other value.
    """
    if value is None or isinstance(value, DeflateOptions):
        return value
    if value == "deflate":
        return DeflateOptions()
    raise ValueError(f"unsupported compression {value!r}; use 'deflate', None or DeflateOptions")


def check_connect_arguments(
    conn_options: Collection[str],
    known: Set[str],
    *,
    dial: object,
    sock: object,
    unix_path: str | None,
) -> None:
    """Refuse the arguments of a client's ``connect()`` that no attempt could use.

    ``conn_options`` are the names of the connection options given, ``known``
    those the client takes; ``dial``, ``sock`` and ``unix_path`` are the
    arguments of the same names.

    Raises:
        TypeError: an option name that is not in ``known`` (the first, sorted).
        ValueError: ``dial`` together with ``sock`` or ``unix_path``.
    """
    unknown = sorted(set(conn_options) - known)
    if unknown:
        raise TypeError(f"connect() got an unexpected keyword argument {unknown[0]!r}")
    if dial is not None and (sock is not None or unix_path is not None):
        raise ValueError("connect(): dial cannot be combined with sock or unix_path")


def client_handshake(
    uri: WebSocketURI,
    *,
    origin: str | None,
    subprotocols: Sequence[str],
    compression: DeflateOptions | None,
    headers: HeadersLike | None,
    user_agent: str | None,
    cookies: http.cookiejar.CookieJar | None = None,
) -> ClientHandshake:
    """The opening handshake of one attempt to connect to ``uri``.

    The arguments are the client's options; ``headers`` go out as given,
    followed by the ``Cookie`` header of what ``cookies`` holds for ``uri``
    (see :func:`with_cookie`).
    """
    return ClientHandshake(
        uri,
        origin=origin,
        subprotocols=subprotocols,
        compression=compression,
        extra_headers=(
            headers or () if cookies is None else with_cookie(headers, cookie_header(cookies, uri))
        ),
        user_agent=user_agent,
    )


def proxy_for(uri: WebSocketURI, proxy: str | bool | None) -> ProxyURI | None:
    """The proxy that a connection to ``uri`` goes through, or ``None``.

    ``proxy`` is the client's option: a proxy URI, ``True`` for the
    environment's (``https_proxy`` for ``wss://``, ``http_proxy`` for
    ``ws://``, ``all_proxy`` otherwise, with ``no_proxy`` honoured), or
    ``None``/``False`` for none.
    """
    if proxy is None or proxy is False:
        return None
    if proxy is True:
        if urllib.request.proxy_bypass(uri.host):
            return None
        found = urllib.request.getproxies()
        value = found.get("https" if uri.secure else "http") or found.get("all")
        return parse_proxy_uri(value) if value else None
    return parse_proxy_uri(proxy)


def _http_url(uri: WebSocketURI) -> str:
    # Cookies belong to HTTP origins: ws:// and wss:// map to http:// and https://
    # (as gorilla and browsers do), so a jar shared with an HTTP client works,
    # and ``Secure`` cookies go to wss:// only.
    return f"{'https' if uri.secure else 'http'}://{uri.host_header}{uri.path}"


class _JarResponse:
    """The part of ``http.client.HTTPResponse`` that :class:`http.cookiejar.CookieJar` reads."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def info(self) -> _JarResponse:
        """The response headers: this object, for its :meth:`get_all`."""
        return self

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        """The values of header ``name``, or ``default`` when there is none."""
        return self._headers.get_all(name) or default


def _jar_request(uri: WebSocketURI) -> urllib.request.Request:
    # The jar asks a urllib Request for the URL, host and origin it decides by.
    return urllib.request.Request(_http_url(uri))


def cookie_header(jar: http.cookiejar.CookieJar, uri: WebSocketURI) -> str | None:
    """The ``Cookie`` header value the jar holds for ``uri``, or ``None``."""
    request = _jar_request(uri)
    jar.add_cookie_header(request)
    return request.get_header("Cookie")


def store_cookies(jar: http.cookiejar.CookieJar, uri: WebSocketURI, headers: Headers) -> None:
    """Put the ``Set-Cookie`` headers of a handshake response to ``uri`` in the jar."""
    if headers.get("Set-Cookie") is None and headers.get("Set-Cookie2") is None:
        return
    jar.extract_cookies(
        cast(Any, _JarResponse(headers)),  # duck-typed, as the jar reads it
        _jar_request(uri),
    )


def with_cookie(headers: HeadersLike | None, cookie: str | None) -> HeadersLike:
    """``headers`` with the jar's cookies added (after a ``Cookie`` header given there)."""
    if cookie is None:
        return headers or ()
    merged = Headers(headers or ())
    given = merged.pop("Cookie")
    merged.add("Cookie", "; ".join([*given, cookie]))
    return merged


def redirect_target(uri: WebSocketURI, refusal: HandshakeRejected) -> WebSocketURI | None:
    """Where a handshake to ``uri`` refused with ``refusal`` redirects to, or ``None``.

    ``None`` when the refusal is not a redirect (a 3xx with ``Location``).

    Raises:
        InvalidURI: the ``Location`` is not a WebSocket URI, or it would take
            a ``wss://`` connection to ``ws://``.
    """
    response = Response(refusal.status, "", refusal.headers, refusal.body)
    location = is_redirect(response)
    if location is None:
        return None
    new = redirect_uri(uri, location)
    if uri.secure and not new.secure:
        raise InvalidURI(location, "redirect from wss:// to ws:// refused") from refusal
    return new


def next_uri(
    uri: WebSocketURI,
    refusal: HandshakeRejected,
    *,
    cookies: http.cookiejar.CookieJar | None,
    sock_given: bool,
) -> WebSocketURI | None:
    """Where to try next after a handshake to ``uri`` was refused, or ``None`` to give up.

    The refusal's ``Set-Cookie`` headers go into ``cookies`` first. A
    caller-supplied socket (``sock_given``) is used up by the first attempt:
    a redirect cannot be followed then, so the caller gets the 3xx.

    Raises:
        InvalidURI: as :func:`redirect_target`.
    """
    if cookies is not None:
        store_cookies(cookies, uri, refusal.headers)
    return None if sock_given else redirect_target(uri, refusal)
