"""The HTTP/1.1 messages of the opening handshake, sans I/O (RFC 9112).

Only what a WebSocket upgrade needs: a request head with no body, and a
response that is either ``101 Switching Protocols`` (no body, the WebSocket
stream starts right after it) or an error/redirect page whose body we read
so that it can be shown to the user.

The parsers are incremental: :meth:`RequestParser.feed` and
:meth:`ResponseParser.feed` take whatever bytes the transport delivered and
return the message once it is complete. Bytes that followed the message are
left in ``leftover``; after a 101 they are the first WebSocket frames, which a
server may send in the same TCP segment as its response.

Strictness differs by direction on purpose. A server is strict about what it
accepts (CRLF line endings only, no ``obs-fold``, no control characters),
because lenient request parsing is what request-smuggling attacks feed on.
A client is lenient about responses (bare LF, ``obs-fold`` unfolded, interim
``1xx`` responses skipped), as RFC 9112 allows a recipient to be, so that it
can talk to sloppy servers it chose to connect to.
"""

from __future__ import annotations

import http
import re
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from wskit.exceptions import InvalidRequest, InvalidResponse
from wskit.protocol.headers import Headers, is_token

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "MAX_HEADERS",
    "MAX_LINE",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "reason_phrase",
    "serialize_request",
    "serialize_response",
]

MAX_LINE = 8192
"""Default limit on the length of one line of the head, CRLF excluded."""

MAX_HEADERS = 128
"""Default limit on the number of header fields."""

MAX_HEAD = 65536
"""Default limit on the size of the whole head (start line, fields, blank line)."""

MAX_BODY = 1024 * 1024
"""Default limit on the body of a non-101 response kept by :class:`ResponseParser`."""


def reason_phrase(status: int) -> str:
    """Return the standard reason phrase for ``status`` ("" when unknown)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclass
class Request:
    """An HTTP request head, as received by a server or sent by a client."""

    method: str
    target: str
    headers: Headers
    version: str = "HTTP/1.1"

    @property
    def _split(self) -> urllib.parse.SplitResult:
        # The target is normally origin-form ("/path?query"); urlsplit copes
        # with absolute-form ("http://host/path") too, which RFC 9112
        # section 3.2.2 requires servers to accept.
        return urllib.parse.urlsplit(self.target)

    @property
    def path(self) -> str:
        """The target without its query string (still percent-encoded)."""
        if self.target.startswith("/"):
            # Not urlsplit: it would take "//evil/x" for a network path.
            return self.target.partition("?")[0]
        return self._split.path or "/"

    @property
    def query(self) -> str:
        """The raw query string, without the ``?`` ("" when there is none)."""
        if self.target.startswith("/"):
            return self.target.partition("?")[2]
        return self._split.query

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The decoded query parameters; a name may repeat, a value may be empty."""
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies of the ``Cookie`` header(s), parsed leniently.

        Malformed pairs are skipped rather than failing the whole header
        (``http.cookies`` gives up on the first one it dislikes); when a
        name repeats the first value wins, as browsers send the most
        specific cookie first (RFC 6265 section 5.4).
        """
        cookies: dict[str, str] = {}
        for value in self.headers.get_all("Cookie"):
            for pair in value.split(";"):
                name, eq, val = pair.partition("=")
                name = name.strip(" \t")
                if not eq or not name:
                    continue
                val = val.strip(" \t")
                if len(val) >= 2 and val[0] == val[-1] == '"':
                    val = val[1:-1]
                cookies.setdefault(name, val)
        return cookies

    @property
    def host(self) -> str | None:
        """The ``Host`` header, or ``None`` when absent."""
        return self.headers.get("Host")


@dataclass
class Response:
    """An HTTP response: status line, headers and (for non-101 responses) a body."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""


# RFC 9110 section 5.6.2 / 5.5: a field name is a token; a field value is
# visible ASCII, spaces, tabs and obs-text (bytes 0x80-0xFF). Everything
# else, notably CR, LF and NUL, is a control character that must not appear.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# RFC 9112 section 3: method SP request-target SP HTTP-version. The target
# is visible ASCII only; non-ASCII must be percent-encoded by the client.
_REQUEST_LINE = re.compile(rb"([^ ]+) ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])")
# The reason phrase is optional and so, in practice, is the space before it.
_STATUS_LINE = re.compile(rb"(HTTP/1\.[0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;.*)?")


class _HeadReader:
    """Splits a message head into lines as bytes arrive, enforcing the limits.

    It scans only the new bytes on each call, so feeding a head one byte at a
    time costs linear, not quadratic, time.
    """

    def __init__(
        self,
        *,
        max_line: int,
        max_headers: int,
        max_head: int,
        strict: bool,
        too_large: Callable[[str, bool], Exception],
        bad: Callable[[str], Exception],
    ) -> None:
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_head = max_head
        self.strict = strict
        # too_large(what, on_first_line) and bad(message) build the error to
        # raise: the request and response parsers raise different types.
        self.too_large = too_large
        self.bad = bad
        self.buffer = bytearray()
        self.lines: list[bytes] = []
        self.pos = 0  # start of the line being read; the end of the head once done
        self._scan = 0  # where to resume looking for LF

    def read_head(self) -> bool:
        """Consume complete lines from the buffer; True once the blank line is in."""
        buf = self.buffer
        while True:
            lf = buf.find(b"\n", self._scan)
            if lf < 0:
                self._scan = len(buf)
                pending = len(buf) - self.pos
                # Fail as soon as a limit is certainly exceeded rather than
                # buffering up to the point where the line finally ends.
                if pending > self.max_line + 1:
                    raise self.too_large("line", not self.lines)
                if len(buf) > self.max_head:
                    raise self.too_large("head", False)
                return False
            end = lf
            if end > self.pos and buf[end - 1] == 0x0D:
                end -= 1
            elif self.strict:
                raise self.bad("line ends with a bare LF instead of CRLF")
            line = bytes(buf[self.pos : end])
            self.pos = self._scan = lf + 1
            if len(line) > self.max_line:
                raise self.too_large("line", not self.lines)
            if self.pos > self.max_head:
                raise self.too_large("head", False)
            if not line:
                if not self.lines:
                    # RFC 9112 section 2.2: ignore at least one empty line
                    # before the request line (left over from a previous
                    # message by some clients).
                    continue
                return True
            self.lines.append(line)
            if len(self.lines) > self.max_headers + 1:
                raise self.too_large("count", False)

    def parse_fields(self, lines: list[bytes]) -> Headers:
        """Parse ``name: value`` lines into :class:`Headers`."""
        fields: list[tuple[str, str]] = []
        for line in lines:
            if line[:1] in (b" ", b"\t"):
                # obs-fold (RFC 9112 section 5.2): a continuation line. A
                # server must reject it; a client replaces it with a space.
                if self.strict or not fields:
                    raise self.bad("obsolete line folding in header")
                continuation = line.strip(b" \t")
                if not _FIELD_VALUE.fullmatch(continuation):
                    raise self.bad(f"invalid character in the value of header {fields[-1][0]}")
                last_name, last_value = fields[-1]
                fields[-1] = (last_name, f"{last_value} {continuation.decode('latin-1')}")
                continue
            raw_name, colon, raw_value = line.partition(b":")
            # Interned: every connection sends the same few names, and each
            # request is kept for the connection's life (conn.request).
            name = sys.intern(raw_name.decode("latin-1"))
            if not colon or not is_token(name):
                # Also catches "Name : value", which RFC 9112 section 5.1
                # requires servers to reject.
                raise self.bad(f"invalid header line {_show(line)}")
            value = raw_value.strip(b" \t")
            if not _FIELD_VALUE.fullmatch(value):
                raise self.bad(f"invalid character in the value of header {name}")
            # latin-1 maps bytes 1:1, so obs-text (for instance UTF-8 cookie
            # values sent by browsers) survives a parse/serialize round trip.
            text = value.decode("latin-1")
            if name.lower() in _SHARED_HEADERS:
                text = _shared(text)
            fields.append((name, text))
        return Headers(fields)


def _show(line: bytes, limit: int = 60) -> str:
    text = repr(line[:limit])[2:-1]
    return f"'{text}...'" if len(line) > limit else f"'{text}'"


class RequestParser:
    """Reads the head of an upgrade request, incrementally.

    Call :meth:`feed` with each chunk received; it returns the
    :class:`Request` once the blank line ending the head has arrived. The
    bytes that followed are in :attr:`leftover`: they are WebSocket frames a
    client sent without waiting for the response.

    Lines must end with CRLF: a server should be strict (see the module
    docstring). Errors raise :class:`~wskit.exceptions.InvalidRequest` with
    the status to answer: 400 for a malformed request, 414 for a request
    line over ``max_line``, 431 for a header line over ``max_line``, more
    than ``max_headers`` fields or a head over ``max_head`` bytes, and 505
    for an HTTP version other than 1.1.
    """

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_headers: int = MAX_HEADERS,
        max_head: int = MAX_HEAD,
    ) -> None:
        self._reader = _HeadReader(
            max_line=max_line,
            max_headers=max_headers,
            max_head=max_head,
            strict=True,
            too_large=self._too_large,
            bad=_bad_request,
        )
        self._request: Request | None = None
        self.leftover = b""
        """Bytes received after the head; empty until :meth:`feed` returns a request."""

    def _too_large(self, what: str, first_line: bool) -> Exception:
        r = self._reader
        if first_line:
            return InvalidRequest(f"request line longer than {r.max_line} bytes", 414)
        if what == "count":
            return InvalidRequest(f"more than {r.max_headers} header fields", 431)
        if what == "line":
            return InvalidRequest(f"header line longer than {r.max_line} bytes", 431)
        return InvalidRequest(f"request head larger than {r.max_head} bytes", 431)

    @property
    def request(self) -> Request | None:
        """The parsed request, once complete."""
        return self._request

    def feed(self, data: bytes) -> Request | None:
        """Add received bytes; return the request once its head is complete.

        After the request has been returned, further data is appended to
        :attr:`leftover` and ``None`` is returned.

        Raises:
            InvalidRequest: the request is malformed or too large.
        """
        if self._request is not None:
            self.leftover += data
            return None
        r = self._reader
        r.buffer += data
        # Check the request line as soon as it is complete, so that a client
        # speaking HTTP/1.0 or garbage is answered without waiting for more.
        first_done = bool(r.lines)
        complete = r.read_head()
        if not first_done and r.lines:
            _parse_request_line(r.lines[0])
        if not complete:
            return None
        method, target, version = _parse_request_line(r.lines[0])
        headers = r.parse_fields(r.lines[1:])
        _check_no_body(headers)
        self._request = Request(method, target, headers, version)
        self.leftover = bytes(r.buffer[r.pos :])
        r.buffer.clear()
        return self._request


#: Headers whose values repeat across connections (never secrets): each value
#: is kept once, shared by the requests that carry it, which every open
#: connection keeps (``conn.request``).
_SHARED_HEADERS = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "origin",
        "user-agent",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "pragma",
    }
)
_shared_values: dict[str, str] = {}
_SHARED_VALUES_MAX = 1024


def _shared(value: str) -> str:
    """The one copy of ``value`` that requests share (a bounded table)."""
    shared = _shared_values.get(value)
    if shared is None:
        if len(_shared_values) >= _SHARED_VALUES_MAX:
            _shared_values.clear()  # many distinct values: start over, still bounded
        shared = _shared_values[value] = value
    return shared


def _bad_request(message: str) -> Exception:
    return InvalidRequest(f"malformed request: {message}", 400)


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None or not is_token(match[1].decode("latin-1")):
        raise _bad_request(f"invalid request line {_show(line)}")
    method, target, version = (g.decode("ascii", "replace") for g in match.groups())
    method, version = sys.intern(method), sys.intern(version)
    if version != "HTTP/1.1":
        # HTTP/1.0 has no Upgrade mechanism and HTTP/2 does not arrive in
        # this form, so only HTTP/1.1 can become a WebSocket connection.
        raise InvalidRequest(
            f"HTTP version {version} is not supported; WebSocket connections need HTTP/1.1",
            505,
        )
    return method, target, version


def _check_no_body(headers: Headers) -> None:
    # An upgrade request has no body (RFC 6455 section 4.1 asks for a plain
    # GET), and this parser never reads one: a body would be taken for
    # WebSocket frames. Refuse it rather than guess where it ends.
    if "Transfer-Encoding" in headers:
        raise InvalidRequest("a WebSocket upgrade request must not have a body", 400)
    lengths = headers.get_all("Content-Length")
    if lengths:
        value = _parse_content_length(lengths)
        if value is None:
            raise InvalidRequest("invalid Content-Length header", 400)
        if value:
            raise InvalidRequest("a WebSocket upgrade request must not have a body", 400)


def _parse_content_length(values: list[str]) -> int | None:
    # RFC 9110 section 8.6: a list of identical values (from a repeated
    # field or a proxy that merged them) is acceptable; anything else is not.
    numbers = {v.strip(" \t") for value in values for v in value.split(",")}
    if len(numbers) != 1:
        return None
    (number,) = numbers
    if not number.isascii() or not number.isdigit():
        return None
    return int(number)


class ResponseParser:
    """Reads the server's answer to an upgrade request, incrementally.

    Call :meth:`feed` with each chunk received and :meth:`feed_eof` when the
    server closes the connection; either returns the :class:`Response` once
    it is complete.

    A ``101`` response ends with its head: the bytes that followed it are in
    :attr:`leftover` (WebSocket frames may arrive in the same packet). Any
    other response has its body read by ``Content-Length``, chunked
    transfer coding, or until the connection closes. Only the first
    ``max_body`` bytes are kept: the body is for showing to a user, and a
    truncated error page beats a failure; the response is returned as soon
    as that many bytes are in. Interim ``1xx`` responses other than 101
    (``103 Early Hints``, for example) are skipped.

    Errors raise :class:`~wskit.exceptions.InvalidResponse`.
    """

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_headers: int = MAX_HEADERS,
        max_head: int = MAX_HEAD,
        max_body: int = MAX_BODY,
    ) -> None:
        self._limits = (max_line, max_headers, max_head)
        self.max_body = max_body
        self._reader = self._new_reader()
        self._head: Response | None = None  # head parsed, body being read
        self._body = bytearray()
        self._chunks = bytearray()  # unparsed chunked-coding bytes
        self._mode = ""  # "length", "chunked" or "eof"
        self._remaining = 0  # body bytes left ("length") or in this chunk
        self._chunk_state = "size"  # "size", "data", "data-end", "trailer"
        self._done: Response | None = None
        self.leftover = b""
        """Bytes received after the response; after a 101, the first frames."""

    def _new_reader(self) -> _HeadReader:
        max_line, max_headers, max_head = self._limits
        return _HeadReader(
            max_line=max_line,
            max_headers=max_headers,
            max_head=max_head,
            strict=False,
            too_large=self._too_large,
            bad=_bad_response,
        )

    def _too_large(self, what: str, first_line: bool) -> Exception:
        r = self._reader
        if what == "count":
            return InvalidResponse(f"response has more than {r.max_headers} header fields")
        if what == "line":
            return InvalidResponse(f"response line longer than {r.max_line} bytes")
        return InvalidResponse(f"response head larger than {r.max_head} bytes")

    @property
    def response(self) -> Response | None:
        """The parsed response, once complete."""
        return self._done

    def feed(self, data: bytes) -> Response | None:
        """Add received bytes; return the response once it is complete.

        After the response has been returned, further data is appended to
        :attr:`leftover` and ``None`` is returned.

        Raises:
            InvalidResponse: the response is malformed or its head too large.
        """
        if self._done is not None:
            self.leftover += data
            return None
        if self._head is None:
            r = self._reader
            r.buffer += data
            while self._head is None:
                if not r.read_head():
                    return None
                rest = bytes(r.buffer[r.pos :])
                head = self._parse_head(r.lines)
                if head is None:  # an interim 1xx: start over with what follows
                    self._reader = r = self._new_reader()
                    r.buffer += rest
                    continue
                self._head = head
                if not self._start_body(head):
                    return self._finish(rest)
                data = rest
        return self._read_body(data)

    def feed_eof(self) -> Response | None:
        """Signal that the server closed the connection.

        Returns the response when it was being read until the end of the
        connection, or ``None`` when it had already been returned.

        Raises:
            InvalidResponse: the connection closed before the response ended.
        """
        if self._done is not None:
            return None
        if self._head is None:
            if not self._reader.buffer and not self._reader.lines:
                raise InvalidResponse("connection closed before any HTTP response")
            raise InvalidResponse("connection closed in the middle of the response head")
        if self._mode == "eof":
            return self._finish(b"")
        raise InvalidResponse("connection closed in the middle of the response body")

    def _parse_head(self, lines: list[bytes]) -> Response | None:
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise _bad_response(f"invalid status line {_show(lines[0])}")
        status = int(match[2])
        if status < 100:
            raise _bad_response(f"invalid status code {status}")
        headers = self._reader.parse_fields(lines[1:])
        if 100 <= status < 200 and status != 101:
            return None
        reason = (match[3] or b"").decode("latin-1").strip(" \t")
        return Response(status, reason, headers)

    def _start_body(self, head: Response) -> bool:
        """Choose how to read the body (RFC 9112 section 6.3); False if there is none."""
        status, headers = head.status, head.headers
        if status == 101 or status in (204, 304):
            return False
        codings = headers.get_all("Transfer-Encoding")
        if codings:
            # Transfer-Encoding overrides Content-Length; if chunked is not
            # the final coding, the body runs until the connection closes.
            last = [c.strip(" \t").lower() for v in codings for c in v.split(",") if c.strip()]
            self._mode = "chunked" if last and last[-1] == "chunked" else "eof"
            return True
        lengths = headers.get_all("Content-Length")
        if lengths:
            length = _parse_content_length(lengths)
            if length is None:
                raise InvalidResponse("response has an invalid Content-Length header")
            if length == 0:
                return False
            self._mode = "length"
            self._remaining = length
            return True
        self._mode = "eof"
        return True

    def _keep(self, data: bytes | bytearray) -> bool:
        """Add body bytes; True once ``max_body`` is reached."""
        room = self.max_body - len(self._body)
        self._body += data[:room]
        return len(self._body) >= self.max_body

    def _read_body(self, data: bytes) -> Response | None:
        if self._mode == "eof":
            if self._keep(data):
                return self._finish(b"")
            return None
        if self._mode == "length":
            take = data[: self._remaining]
            self._remaining -= len(take)
            rest = data[len(take) :]
            if self._keep(take) or not self._remaining:
                return self._finish(rest)
            return None
        return self._read_chunked(data)

    def _read_chunked(self, data: bytes) -> Response | None:
        buf = self._chunks
        buf += data
        max_line = self._reader.max_line
        while True:
            if self._chunk_state == "data":
                take = bytes(buf[: self._remaining])
                del buf[: len(take)]
                self._remaining -= len(take)
                if self._keep(take):
                    return self._finish(bytes(buf))
                if self._remaining:
                    return None
                self._chunk_state = "data-end"
                continue
            lf = buf.find(b"\n")
            if lf < 0:
                if len(buf) > max_line:
                    raise InvalidResponse("chunked body line too long")
                return None
            line = bytes(buf[:lf]).rstrip(b"\r")
            del buf[: lf + 1]
            if self._chunk_state == "data-end":
                if line:
                    raise InvalidResponse("chunk data not followed by CRLF")
                self._chunk_state = "size"
            elif self._chunk_state == "size":
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None or len(match[1]) > 16:
                    raise InvalidResponse(f"invalid chunk size line {_show(line)}")
                self._remaining = int(match[1], 16)
                self._chunk_state = "data" if self._remaining else "trailer"
            elif not line:  # the blank line after the (ignored) trailer fields
                return self._finish(bytes(buf))

    def _finish(self, rest: bytes) -> Response:
        assert self._head is not None
        self._head.body = bytes(self._body)
        self._done = self._head
        self.leftover = rest
        self._reader.buffer = bytearray()
        self._body = bytearray()
        self._chunks = bytearray()
        return self._done


def _bad_response(message: str) -> Exception:
    return InvalidResponse(f"malformed HTTP response: {message}")


def _check_fields(headers: Headers) -> None:
    # Refuse to emit CR or LF inside a field: header values often come from
    # application code, and a stray CRLF would let it inject fields or a body.
    for name, value in headers.raw_items():
        if not is_token(name):
            raise ValueError(f"invalid header name {name!r}")
        if not _FIELD_VALUE.fullmatch(value.encode("latin-1", "replace")):
            raise ValueError(f"invalid character in the value of header {name!r}")


def serialize_request(req: Request) -> bytes:
    """Encode a request head (the request has no body).

    Raises:
        ValueError: a header name or value, the method or target is unsafe.
    """
    if not is_token(req.method):
        raise ValueError(f"invalid method {req.method!r}")
    if not req.target or not all("\x21" <= c <= "\x7e" for c in req.target):
        raise ValueError(f"invalid request target {req.target!r}; percent-encode it")
    _check_fields(req.headers)
    line = f"{req.method} {req.target} {req.version}\r\n".encode("ascii")
    return line + req.headers.serialize() + b"\r\n"


def serialize_response(resp: Response) -> bytes:
    """Encode a response, body included.

    Adds ``Content-Length`` when it is missing from a response that can have
    a body (not 1xx, 204 or 304) and has no ``Transfer-Encoding``, even for
    an empty body, so that the client need not wait for the connection to
    close to know the body is over.

    Raises:
        ValueError: a header name or value, or the reason phrase, is unsafe.
    """
    headers = resp.headers
    status = resp.status
    if not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status}")
    if "\r" in resp.reason or "\n" in resp.reason:
        raise ValueError(f"invalid reason phrase {resp.reason!r}")
    has_body = not (status < 200 or status in (204, 304))
    if has_body and "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        headers = Headers(headers)
        headers.add("Content-Length", str(len(resp.body)))
    _check_fields(headers)
    line = f"HTTP/1.1 {status} {resp.reason}\r\n".encode("latin-1")
    return line + headers.serialize() + b"\r\n" + (resp.body if has_body else b"")
