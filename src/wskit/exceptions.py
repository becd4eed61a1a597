"""Exceptions raised by wskit, and helpers to classify close errors.

The hierarchy separates what *you* did wrong (:class:`LocalProtocolError`)
from what the *peer* did wrong (:class:`ProtocolError` and its subclasses,
which carry the close code to answer with), in the manner of h11 and wsproto::

    WebSocketError
    ├── InvalidURI
    ├── InvalidHandshake              bad opening handshake
    │   ├── HandshakeRejected         client side: the server answered non-101
    │   ├── InvalidRequest            server side: refuse with an HTTP status
    │   ├── InvalidResponse           client side: a 101 that breaks the rules
    │   └── ProxyError                an HTTP CONNECT or SOCKS5 proxy failed
    ├── ProtocolError                 the peer broke RFC 6455/7692 (close code)
    │   ├── PayloadTooBig             a message over ``max_size`` (1009)
    │   └── InvalidUTF8               text that is not UTF-8 (1007)
    ├── LocalProtocolError            the application misused the API
    ├── ConcurrencyError              two threads read one connection at once
    ├── ConnectionClosed              the connection is closed (code, reason)
    │   ├── ConnectionClosedOK        ... with 1000 or 1001 both ways
    │   └── ConnectionClosedError     ... any other way
    └── the hub's (wskit.hub)         RequestError, Reject, ClientError,
                                      ConversionError (also a ValueError),
                                      HistoryError

Which closes are normal is decided here, once: :func:`closed_exception`
builds the right one of the two from the close codes, and
:attr:`ConnectionClosed.ok` reads the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only a type: Headers lives in the protocol layer, above this module,
    # which builds the HandshakeRejected it raises with the response's Headers.
    from .protocol.headers import Headers

__all__ = [
    "WebSocketError",
    "InvalidURI",
    "InvalidHandshake",
    "HandshakeRejected",
    "InvalidRequest",
    "InvalidResponse",
    "ProxyError",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
    "LocalProtocolError",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "closed_exception",
    "is_close_error",
    "is_unexpected_close_error",
]


class WebSocketError(Exception):
    """Base class of every exception that wskit raises on purpose."""


class InvalidURI(WebSocketError):
    """A ``ws://`` or ``wss://`` URI could not be parsed or is not supported."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri!r} is not a valid WebSocket URI: {reason}")
        self.uri = uri
        self.reason = reason


class InvalidHandshake(WebSocketError):
    """The opening handshake failed."""


class HandshakeRejected(InvalidHandshake):
    """The server answered the upgrade request with something other than 101.

    ``status``, ``headers`` and ``body`` are the server's response, so that a
    caller can handle redirects or authentication (gorilla's
    ``ErrBadHandshake`` with its ``*http.Response``). ``headers`` is a
    :class:`~wskit.Headers`, case-insensitive: ``exc.headers.get("Location")``;
    iterating it gives the field names, ``exc.headers.raw_items()`` the
    ``(name, value)`` pairs.

    Raises:
        TypeError: ``headers`` is not a :class:`~wskit.Headers` (build one
            from pairs or a dict: ``wskit.Headers([("Retry-After", "4")])``).
    """

    def __init__(
        self,
        status: int,
        headers: Headers,
        body: bytes = b"",
        reason: str = "",
    ) -> None:
        # Duck-typed: this module sits below the protocol layer that defines Headers.
        if not hasattr(headers, "get_all"):
            raise TypeError(f"headers must be a wskit.Headers, not {type(headers).__name__}")
        detail = f": {reason}" if reason else ""
        super().__init__(f"server rejected WebSocket connection: HTTP {status}{detail}")
        self.status = status
        self.headers: Headers = headers
        self.body = body


class InvalidRequest(InvalidHandshake):
    """A client's upgrade request is invalid or refused.

    The server answers it with ``status``, ``headers`` and a readable
    ``body`` (``text/plain`` unless the headers say otherwise).
    """

    def __init__(
        self,
        reason: str,
        status: int = 400,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)
        self.body = body if body is not None else (reason + "\n").encode()


class InvalidResponse(InvalidHandshake):
    """A server's handshake response breaks RFC 6455 (bad accept key, ...)."""


class ProxyError(InvalidHandshake):
    """Connecting through an HTTP CONNECT or SOCKS5 proxy failed.

    A handshake error: the proxy's handshake comes before the WebSocket one,
    and ``except InvalidHandshake`` around ``connect()`` sees both.
    """


class ProtocolError(WebSocketError):
    """The peer broke the protocol; the connection fails with ``code``.

    ``code`` is the close code sent to the peer (1002 unless a subclass or the
    caller says otherwise) and ``reason`` the text sent with it.
    """

    default_code = 1002

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = self.default_code if code is None else code


class PayloadTooBig(ProtocolError):
    """A message exceeds the configured ``max_size`` (close code 1009)."""

    default_code = 1009


class InvalidUTF8(ProtocolError):
    """A text message or close reason is not valid UTF-8 (close code 1007)."""

    default_code = 1007


class LocalProtocolError(WebSocketError):
    """The application used the API in a way the protocol forbids.

    For example: sending after the close frame went out, a control frame over
    125 bytes, or a new message while a fragmented one is still open.
    """


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two threads used a connection in a way that cannot be shared.

    Raised by :mod:`wskit.sync` when a thread calls ``recv()`` (or iterates)
    while another thread is already receiving on the same connection: which
    of them should get the next message is undefined, so the second caller
    gets this error instead. Sending from several threads is allowed.
    """


class ConnectionClosed(WebSocketError):
    """The connection is closed; raised by reads and writes after that.

    ``code`` and ``reason`` are those of the close frame received from the
    peer (``code`` is 1005 when the frame had no code, 1006 when no close
    frame arrived at all). ``sent_code`` is the code wskit sent, or ``None``.
    """

    def __init__(
        self,
        code: int = 1006,
        reason: str = "",
        sent_code: int | None = None,
        sent_reason: str = "",
    ) -> None:
        #: The close code received from the peer (1005: none in its close frame,
        #: 1006: no close frame at all).
        self.code = code
        #: The close reason received from the peer.
        self.reason = reason
        #: The close code wskit sent, or ``None``.
        self.sent_code = sent_code
        #: The close reason wskit sent.
        self.sent_reason = sent_reason
        text = f"connection closed: received {code}" + (f" ({reason})" if reason else "")
        if sent_code is not None:
            text += f", sent {sent_code}" + (f" ({sent_reason})" if sent_reason else "")
        super().__init__(text)

    @property
    def ok(self) -> bool:
        """Whether the connection closed normally: 1000, 1001 or no code, both ways.

        Always equal to ``isinstance(self, ConnectionClosedOK)`` for the
        exceptions that wskit raises.
        """
        return _is_normal_close(self.code, self.sent_code)


# 1005 is a close frame without a code: a normal close that gave no reason.
_NORMAL_CODES = (1000, 1001, 1005)


def _is_normal_close(code: int, sent_code: int | None) -> bool:
    """The one rule: a normal code received, and a normal code (or none) sent."""
    return code in _NORMAL_CODES and (sent_code is None or sent_code in _NORMAL_CODES)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally: 1000 or 1001 (or no code) both ways."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed abnormally: an error code, or no close frame."""


def closed_exception(
    code: int = 1006,
    reason: str = "",
    sent_code: int | None = None,
    sent_reason: str = "",
) -> ConnectionClosed:
    """Build the exception of a closed connection: normal or not, from its close codes.

    ``code`` and ``reason`` are those of the close frame received (1005: it
    had no code, 1006: none arrived); ``sent_code`` and ``sent_reason`` those
    of the close frame sent (``None``: none was). The result is a
    :class:`ConnectionClosedOK` when both codes are normal (1000, 1001, or no
    code) and a :class:`ConnectionClosedError` otherwise. Every connection
    class of wskit builds the exception its reads and writes raise with it.
    """
    cls = ConnectionClosedOK if _is_normal_close(code, sent_code) else ConnectionClosedError
    return cls(code, reason, sent_code, sent_reason)


def is_close_error(exc: BaseException | None, *codes: int) -> bool:
    """Tell whether ``exc`` is a :class:`ConnectionClosed` with one of ``codes``.

    Like gorilla's ``IsCloseError``. With no ``codes`` any close matches.
    """
    if not isinstance(exc, ConnectionClosed):
        return False
    return not codes or exc.code in codes


def is_unexpected_close_error(exc: BaseException | None, *expected: int) -> bool:
    """Tell whether ``exc`` is a :class:`ConnectionClosed` with a code not in ``expected``.

    Like gorilla's ``IsUnexpectedCloseError``: use it in a read loop to log
    only the closes you did not plan for.
    """
    return isinstance(exc, ConnectionClosed) and exc.code not in expected
