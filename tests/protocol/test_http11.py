"""Tests for wskit.protocol.http11: request/response parsing and serialization."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.exceptions import InvalidRequest, InvalidResponse
from wskit.protocol import http11
from wskit.protocol.headers import Headers
from wskit.protocol.http11 import (
    Request,
    RequestParser,
    Response,
    ResponseParser,
    reason_phrase,
    serialize_request,
    serialize_response,
)

# What Chromium sends for `new WebSocket("ws://localhost:8000/chat?room=1")`.
CHROMIUM_REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    b"(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://localhost:8000\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Cookie: session=abc123; theme=dark\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)

RESPONSE_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)

FRAME = b"\x81\x05hello"


def parse_request(data: bytes, **limits: int) -> Request:
    parser = RequestParser(**limits)
    request = parser.feed(data)
    assert request is not None
    return request


def request_error(data: bytes, **limits: int) -> InvalidRequest:
    parser = RequestParser(**limits)
    with pytest.raises(InvalidRequest) as info:
        parser.feed(data)
    return info.value


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (those past the end are ignored)."""
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def request_with(*lines: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


# --- Request -----------------------------------------------------------------


class TestRequest:
    def test_parse_chromium_request(self) -> None:
        request = parse_request(CHROMIUM_REQUEST)
        assert request.method == "GET"
        assert request.target == "/chat?room=1"
        assert request.version == "HTTP/1.1"
        assert request.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
        assert request.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; client_max_window_bits"
        )
        assert len(request.headers) == 13

    def test_path_query_and_params(self) -> None:
        request = Request("GET", "/a/b%20c?x=1&y=&x=2&z", Headers())
        assert request.path == "/a/b%20c"
        assert request.query == "x=1&y=&x=2&z"
        assert request.query_params == {"x": ["1", "2"], "y": [""], "z": [""]}

    def test_no_query(self) -> None:
        request = Request("GET", "/chat", Headers())
        assert request.path == "/chat"
        assert request.query == ""
        assert request.query_params == {}

    def test_double_slash_is_a_path_not_a_host(self) -> None:
        request = Request("GET", "//evil.example/x?q=1", Headers())
        assert request.path == "//evil.example/x"
        assert request.query == "q=1"

    def test_absolute_form_target(self) -> None:
        request = Request("GET", "http://example.com/chat?room=2", Headers())
        assert request.path == "/chat"
        assert request.query_params == {"room": ["2"]}

    def test_host(self) -> None:
        assert Request("GET", "/", Headers([("Host", "h:1")])).host == "h:1"
        assert Request("GET", "/", Headers()).host is None

    def test_cookies(self) -> None:
        request = parse_request(CHROMIUM_REQUEST)
        assert request.cookies == {"session": "abc123", "theme": "dark"}

    def test_cookies_lenient(self) -> None:
        headers = Headers(
            [
                ("Cookie", 'a=1; broken; =nameless; b="quoted"; a=2;; c=x=y'),
                ("Cookie", "d=4"),
            ]
        )
        cookies = Request("GET", "/", headers).cookies
        assert cookies == {"a": "1", "b": "quoted", "c": "x=y", "d": "4"}

    def test_no_cookies(self) -> None:
        assert Request("GET", "/", Headers()).cookies == {}


# --- RequestParser -------------------------------------------------------------


class TestRequestParser:
    def test_incomplete_returns_none(self) -> None:
        parser = RequestParser()
        assert parser.feed(CHROMIUM_REQUEST[:-1]) is None
        assert parser.request is None
        request = parser.feed(CHROMIUM_REQUEST[-1:])
        assert request is not None
        assert parser.request is request

    def test_byte_by_byte(self) -> None:
        parser = RequestParser()
        results = [parser.feed(CHROMIUM_REQUEST[i : i + 1]) for i in range(len(CHROMIUM_REQUEST))]
        assert all(r is None for r in results[:-1])
        assert results[-1] == parse_request(CHROMIUM_REQUEST)
        assert parser.leftover == b""

    @given(st.lists(st.integers(0, len(CHROMIUM_REQUEST) + len(FRAME)), max_size=8))
    def test_split_anywhere(self, cuts: list[int]) -> None:
        data = CHROMIUM_REQUEST + FRAME
        parser = RequestParser()
        results = [parser.feed(piece) for piece in split(data, cuts)]
        requests = [r for r in results if r is not None]
        assert requests == [parse_request(CHROMIUM_REQUEST)]
        assert parser.leftover == FRAME

    def test_leftover(self) -> None:
        parser = RequestParser()
        request = parser.feed(CHROMIUM_REQUEST + FRAME)
        assert request is not None
        assert parser.leftover == FRAME

    def test_feed_after_completion_goes_to_leftover(self) -> None:
        parser = RequestParser()
        assert parser.feed(CHROMIUM_REQUEST + b"ab") is not None
        assert parser.feed(b"cd") is None
        assert parser.leftover == b"abcd"

    def test_leading_empty_line_ignored(self) -> None:
        request = parse_request(b"\r\n" + request_with(b"Host: x"))
        assert request.headers["Host"] == "x"

    def test_value_whitespace_stripped(self) -> None:
        request = parse_request(request_with(b"Host: \t x \t", b"Empty:"))
        assert request.headers["Host"] == "x"
        assert request.headers["Empty"] == ""

    def test_repeated_headers_kept(self) -> None:
        request = parse_request(
            request_with(b"Sec-WebSocket-Protocol: a", b"sec-websocket-protocol: b")
        )
        assert request.headers.get_all("Sec-WebSocket-Protocol") == ["a", "b"]

    def test_obs_text_in_value_round_trips(self) -> None:
        # Browsers may send UTF-8 in cookie values; it must survive intact.
        raw = request_with("Cookie: name=café".encode())
        request = parse_request(raw)
        assert request.headers["Cookie"].encode("latin-1").decode() == "name=café"
        assert serialize_request(request) == raw

    def test_content_length_zero_is_fine(self) -> None:
        parse_request(request_with(b"Host: x", b"Content-Length: 0"))

    @pytest.mark.parametrize(
        "line",
        [
            b"GET / HTTP/1.1 extra",
            b"GET  / HTTP/1.1",
            b"GET /",
            b"GET / HTTP/x.y",
            b"G(T / HTTP/1.1",
            b" GET / HTTP/1.1",
            b"GET /\x7f HTTP/1.1",
            "GET /é HTTP/1.1".encode(),
            b"",  # stands for: a leading empty line, then garbage (see below)
        ],
    )
    def test_bad_request_line(self, line: bytes) -> None:
        data = line + b"\r\nHost: x\r\n\r\n" if line else b"\r\nGARBAGE\r\n\r\n"
        exc = request_error(data)
        assert exc.status == 400
        assert b"request line" in exc.body

    def test_bad_request_line_detected_before_headers(self) -> None:
        # The request line alone is enough to refuse; no need to wait.
        exc = request_error(b"NOT HTTP AT ALL\r\n")
        assert exc.status == 400

    @pytest.mark.parametrize(
        "line",
        [
            b"Host : x",  # space before the colon: RFC 9112 section 5.1
            b"No colon here",
            b"Bad(name): x",
            b": no name",
            b"Name: a\x00b",
            b"Name: a\x1bb",
            b"Name: a\rb",
        ],
    )
    def test_bad_header_line(self, line: bytes) -> None:
        exc = request_error(request_with(b"Host: x", line))
        assert exc.status == 400

    def test_obs_fold_rejected(self) -> None:
        exc = request_error(request_with(b"Host: x", b"X-Long: a", b" continued"))
        assert exc.status == 400
        assert b"folding" in exc.body

    def test_bare_lf_rejected(self) -> None:
        exc = request_error(b"GET / HTTP/1.1\nHost: x\n\n")
        assert exc.status == 400
        assert b"CRLF" in exc.body

    @pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9"])
    def test_other_http_versions(self, version: bytes) -> None:
        exc = request_error(b"GET / " + version + b"\r\n")
        assert exc.status == 505
        assert b"HTTP/1.1" in exc.body

    def test_request_line_too_long(self) -> None:
        exc = request_error(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", max_line=64)
        assert exc.status == 414

    def test_request_line_too_long_detected_early(self) -> None:
        # Refused before the line even ends, so memory stays bounded.
        parser = RequestParser(max_line=64)
        assert parser.feed(b"GET /" + b"a" * 59) is None
        with pytest.raises(InvalidRequest) as info:
            parser.feed(b"a" * 10)
        assert info.value.status == 414

    def test_request_line_at_limit(self) -> None:
        line = b"GET /" + b"a" * 50 + b" HTTP/1.1"
        parse_request(line + b"\r\nHost: x\r\n\r\n", max_line=len(line))
        exc = request_error(line + b"a\r\nHost: x\r\n\r\n", max_line=len(line))
        assert exc.status == 414

    def test_header_line_too_long(self) -> None:
        exc = request_error(request_with(b"X: " + b"v" * 100), max_line=64)
        assert exc.status == 431

    def test_header_line_too_long_detected_early(self) -> None:
        parser = RequestParser(max_line=64)
        parser.feed(b"GET / HTTP/1.1\r\nX: ")
        with pytest.raises(InvalidRequest) as info:
            parser.feed(b"v" * 200)
        assert info.value.status == 431

    def test_too_many_headers(self) -> None:
        fields = [b"X-%d: v" % i for i in range(11)]
        parse_request(request_with(*fields[:10]), max_headers=10)
        exc = request_error(request_with(*fields), max_headers=10)
        assert exc.status == 431
        assert b"10" in exc.body

    def test_head_too_large(self) -> None:
        fields = [b"X-%d: %s" % (i, b"v" * 50) for i in range(30)]
        exc = request_error(request_with(*fields), max_head=1000)
        assert exc.status == 431

    def test_head_too_large_detected_without_newlines(self) -> None:
        parser = RequestParser(max_head=100, max_line=1000)
        parser.feed(b"GET / HTTP/1.1\r\n")
        with pytest.raises(InvalidRequest) as info:
            parser.feed(b"X: " + b"v" * 100)
        assert info.value.status == 431

    def test_frames_after_head_do_not_count_toward_limit(self) -> None:
        parser = RequestParser(max_head=len(CHROMIUM_REQUEST))
        assert parser.feed(CHROMIUM_REQUEST + b"\x82" * 10_000) is not None
        assert len(parser.leftover) == 10_000

    @pytest.mark.parametrize(
        "field",
        [b"Content-Length: 5", b"Transfer-Encoding: chunked", b"Content-Length: 1, 1"],
    )
    def test_request_with_body(self, field: bytes) -> None:
        exc = request_error(request_with(b"Host: x", field))
        assert exc.status == 400
        assert b"body" in exc.body

    @pytest.mark.parametrize("value", [b"abc", b"-1", b"1, 2", b"+3"])
    def test_invalid_content_length(self, value: bytes) -> None:
        exc = request_error(request_with(b"Host: x", b"Content-Length: " + value))
        assert exc.status == 400


# --- ResponseParser ------------------------------------------------------------


def parse_response(data: bytes, **limits: int) -> ResponseParser:
    parser = ResponseParser(**limits)
    parser.feed(data)
    return parser


def chunked(body: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


class TestResponseParser:
    def test_101(self) -> None:
        parser = parse_response(RESPONSE_101)
        response = parser.response
        assert response is not None
        assert response.status == 101
        assert response.reason == "Switching Protocols"
        assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert response.body == b""
        assert parser.leftover == b""

    def test_101_with_frames_in_same_packet(self) -> None:
        # Even a Content-Length on a 101 must not swallow the frames.
        data = RESPONSE_101[:-2] + b"Content-Length: 5\r\n\r\n" + FRAME
        parser = parse_response(data)
        assert parser.response is not None
        assert parser.leftover == FRAME

    @given(st.lists(st.integers(0, len(RESPONSE_101) + len(FRAME)), max_size=8))
    def test_101_split_anywhere(self, cuts: list[int]) -> None:
        data = RESPONSE_101 + FRAME
        parser = ResponseParser()
        results = [parser.feed(piece) for piece in split(data, cuts)]
        responses = [r for r in results if r is not None]
        assert len(responses) == 1
        assert responses[0] == parse_response(RESPONSE_101).response
        assert parser.leftover == FRAME

    def test_missing_reason(self) -> None:
        for line in (b"HTTP/1.1 101\r\n", b"HTTP/1.1 101 \r\n"):
            parser = parse_response(line + b"\r\n")
            assert parser.response is not None
            assert parser.response.reason == ""

    def test_content_length_body(self) -> None:
        data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno way!\r\nEXTRA"
        parser = parse_response(data)
        assert parser.response is not None
        assert parser.response.status == 403
        assert parser.response.body == b"no way!\r\n"
        assert parser.leftover == b"EXTRA"

    def test_content_length_zero(self) -> None:
        parser = parse_response(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
        assert parser.response is not None
        assert parser.response.body == b""

    @pytest.mark.parametrize("status", [204, 304])
    def test_no_body_statuses(self, status: int) -> None:
        parser = parse_response(b"HTTP/1.1 %d X\r\n\r\nNEXT" % status)
        assert parser.response is not None
        assert parser.leftover == b"NEXT"

    def test_body_until_eof(self) -> None:
        parser = ResponseParser()
        assert parser.feed(b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nsomething ") is None
        assert parser.feed(b"broke") is None
        response = parser.feed_eof()
        assert response is not None
        assert response.body == b"something broke"
        assert parser.feed_eof() is None

    def test_chunked_body(self) -> None:
        body = b"The quick brown fox jumps over the lazy dog"
        head = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        parser = parse_response(head + chunked(body, 7) + b"REST")
        assert parser.response is not None
        assert parser.response.body == body
        assert parser.leftover == b"REST"

    def test_chunked_with_extensions_and_trailers(self) -> None:
        data = (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"Content-Length: 999\r\n\r\n"  # ignored: Transfer-Encoding wins
            b"5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        parser = parse_response(data)
        assert parser.response is not None
        assert parser.response.body == b"hello world"

    @given(
        st.binary(max_size=200),
        st.integers(1, 50),
        st.lists(st.integers(0, 400), max_size=10),
    )
    def test_chunked_split_anywhere(self, body: bytes, size: int, cuts: list[int]) -> None:
        data = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, size)
        parser = ResponseParser()
        results = [parser.feed(piece) for piece in split(data, cuts)]
        responses = [r for r in results if r is not None]
        assert len(responses) == 1
        assert responses[0].body == body

    @pytest.mark.parametrize("chunk", [b"zz\r\n", b"-1\r\n", b"\r\n", b"1" * 20 + b"\r\n"])
    def test_invalid_chunk_size(self, chunk: bytes) -> None:
        with pytest.raises(InvalidResponse, match="chunk size"):
            parse_response(b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)

    def test_chunk_not_followed_by_crlf(self) -> None:
        with pytest.raises(InvalidResponse, match="CRLF"):
            parse_response(b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n")

    def test_transfer_encoding_not_chunked_reads_to_eof(self) -> None:
        parser = parse_response(b"HTTP/1.1 400 X\r\nTransfer-Encoding: gzip\r\n\r\nabc")
        assert parser.response is None
        response = parser.feed_eof()
        assert response is not None
        assert response.body == b"abc"

    def test_body_truncated_at_max_body_content_length(self) -> None:
        parser = ResponseParser(max_body=10)
        response = parser.feed(b"HTTP/1.1 400 X\r\nContent-Length: 1000\r\n\r\n" + b"a" * 30)
        assert response is not None
        assert response.body == b"a" * 10

    def test_body_truncated_at_max_body_eof(self) -> None:
        parser = ResponseParser(max_body=10)
        assert parser.feed(b"HTTP/1.1 400 X\r\n\r\n" + b"a" * 5) is None
        response = parser.feed(b"b" * 20)
        assert response is not None
        assert response.body == b"aaaaabbbbb"

    def test_body_truncated_at_max_body_chunked(self) -> None:
        parser = ResponseParser(max_body=10)
        data = b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 40, 4)
        response = parser.feed(data)
        assert response is not None
        assert response.body == b"x" * 10

    def test_interim_responses_skipped(self) -> None:
        data = (
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 100 Continue\r\n\r\n" + RESPONSE_101 + FRAME
        )
        parser = ResponseParser()
        results = [parser.feed(data[i : i + 1]) for i in range(len(data))]
        responses = [r for r in results if r is not None]
        assert [r.status for r in responses] == [101]
        assert "Link" not in responses[0].headers
        assert parser.leftover == FRAME

    def test_bare_lf_accepted(self) -> None:
        parser = parse_response(RESPONSE_101.replace(b"\r\n", b"\n"))
        assert parser.response is not None
        assert parser.response.headers["Upgrade"] == "websocket"

    def test_obs_fold_unfolded(self) -> None:
        parser = parse_response(b"HTTP/1.1 101 X\r\nX-Long: a\r\n \t b\r\nY: c\r\n\r\n")
        assert parser.response is not None
        assert parser.response.headers["X-Long"] == "a b"
        assert parser.response.headers["Y"] == "c"

    def test_obs_fold_on_first_line_rejected(self) -> None:
        with pytest.raises(InvalidResponse, match="folding"):
            parse_response(b"HTTP/1.1 101 X\r\n folded\r\n\r\n")

    @pytest.mark.parametrize(
        "line",
        [b"HTTP/2 101 X", b"HTTP/1.1 1010 X", b"HTTP/1.1 abc", b"ICY 200 OK", b"HTTP/1.1 099 X"],
    )
    def test_bad_status_line(self, line: bytes) -> None:
        with pytest.raises(InvalidResponse, match="status"):
            parse_response(line + b"\r\n\r\n")

    def test_bad_header(self) -> None:
        with pytest.raises(InvalidResponse):
            parse_response(b"HTTP/1.1 101 X\r\nBad header\r\n\r\n")

    def test_conflicting_content_length(self) -> None:
        with pytest.raises(InvalidResponse, match="Content-Length"):
            parse_response(b"HTTP/1.1 400 X\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")

    def test_limits(self) -> None:
        with pytest.raises(InvalidResponse, match="more than 2 header"):
            parse_response(b"HTTP/1.1 101 X\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n", max_headers=2)
        with pytest.raises(InvalidResponse, match="line longer"):
            parse_response(b"HTTP/1.1 101 X\r\na: " + b"1" * 100, max_line=50)
        with pytest.raises(InvalidResponse, match="larger than"):
            parse_response(b"HTTP/1.1 101 X\r\n" + b"a: 1\r\n" * 50, max_head=100)

    def test_eof_before_anything(self) -> None:
        with pytest.raises(InvalidResponse, match="before any"):
            ResponseParser().feed_eof()

    def test_eof_in_head(self) -> None:
        parser = parse_response(RESPONSE_101[:20])
        with pytest.raises(InvalidResponse, match="head"):
            parser.feed_eof()

    def test_eof_in_sized_body(self) -> None:
        parser = parse_response(b"HTTP/1.1 400 X\r\nContent-Length: 10\r\n\r\nabc")
        with pytest.raises(InvalidResponse, match="body"):
            parser.feed_eof()

    def test_eof_in_chunked_body(self) -> None:
        parser = parse_response(b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        with pytest.raises(InvalidResponse, match="body"):
            parser.feed_eof()

    def test_feed_after_completion_goes_to_leftover(self) -> None:
        parser = parse_response(RESPONSE_101 + b"ab")
        assert parser.feed(b"cd") is None
        assert parser.leftover == b"abcd"


# --- serialization ---------------------------------------------------------------


class TestSerialize:
    def test_serialize_request(self) -> None:
        request = Request("GET", "/chat", Headers([("Host", "example.com"), ("Upgrade", "ws")]))
        assert serialize_request(request) == (
            b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: ws\r\n\r\n"
        )

    def test_request_round_trip(self) -> None:
        request = parse_request(CHROMIUM_REQUEST)
        assert serialize_request(request) == CHROMIUM_REQUEST

    @pytest.mark.parametrize(
        "headers",
        [
            [("X", "a\r\nInjected: yes")],
            [("X", "a\nb")],
            [("Bad Name", "v")],
            [("X", "nul\x00")],
        ],
    )
    def test_request_header_injection_refused(self, headers: list[tuple[str, str]]) -> None:
        with pytest.raises(ValueError):
            serialize_request(Request("GET", "/", Headers(headers)))

    @pytest.mark.parametrize("target", ["/a b", "/é", "", "/\r\n"])
    def test_request_bad_target_refused(self, target: str) -> None:
        with pytest.raises(ValueError, match="target"):
            serialize_request(Request("GET", target, Headers()))

    def test_request_bad_method_refused(self) -> None:
        with pytest.raises(ValueError, match="method"):
            serialize_request(Request("G T", "/", Headers()))

    def test_serialize_101_has_no_content_length(self) -> None:
        response = Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
        assert serialize_response(response) == (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        )

    def test_serialize_adds_content_length(self) -> None:
        response = Response(403, "Forbidden", Headers(), b"go away\n")
        assert serialize_response(response) == (
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\n\r\ngo away\n"
        )

    def test_serialize_empty_body_gets_content_length_zero(self) -> None:
        data = serialize_response(Response(302, "Found", Headers([("Location", "/x")])))
        assert b"Content-Length: 0\r\n" in data

    def test_serialize_keeps_given_content_length(self) -> None:
        response = Response(200, "OK", Headers([("content-length", "2")]), b"hi")
        assert serialize_response(response).count(b"ength") == 1

    def test_serialize_response_does_not_mutate_headers(self) -> None:
        headers = Headers()
        serialize_response(Response(400, "Bad Request", headers, b"x"))
        assert len(headers) == 0

    def test_serialize_response_refuses_injection(self) -> None:
        with pytest.raises(ValueError):
            serialize_response(Response(400, "Bad\r\nX: y", Headers()))
        with pytest.raises(ValueError):
            serialize_response(Response(400, "Bad", Headers([("X", "a\r\nb")])))
        with pytest.raises(ValueError):
            serialize_response(Response(42, "Bad", Headers()))

    @given(
        st.sampled_from([101, 200, 301, 400, 403, 404, 426, 500, 503]),
        st.lists(
            st.tuples(
                st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True),
                st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True),
            ).filter(lambda h: h[0].lower() not in ("content-length", "transfer-encoding")),
            max_size=6,
        ),
        st.binary(max_size=100),
    )
    def test_response_round_trip(
        self, status: int, fields: list[tuple[str, str]], body: bytes
    ) -> None:
        response = Response(status, reason_phrase(status), Headers(fields), body)
        parsed = parse_response(serialize_response(response)).response
        assert parsed is not None
        assert parsed.status == status
        assert parsed.reason == reason_phrase(status)
        assert parsed.headers.raw_items()[: len(fields)] == fields
        assert parsed.body == (b"" if status == 101 else body)


def test_reason_phrase() -> None:
    assert reason_phrase(101) == "Switching Protocols"
    assert reason_phrase(426) == "Upgrade Required"
    assert reason_phrase(431) == "Request Header Fields Too Large"
    assert reason_phrase(599) == ""


def test_repeated_header_values_are_shared_between_requests_but_not_secrets() -> None:
    def request() -> Request:
        head = (
            "GET /chat HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nAuthorization: Bearer token\r\n\r\n"
        )
        return parse_request(head.encode())  # decoding makes new strings each time

    first, second = request(), request()
    assert first.headers == second.headers
    for name in ("Host", "Upgrade", "Connection"):
        assert first.headers[name] is second.headers[name], name
    assert first.method is second.method and first.version is second.version
    # Credentials stay each request's own.
    assert first.headers["Authorization"] == second.headers["Authorization"]
    assert first.headers["Authorization"] is not second.headers["Authorization"]


def test_the_table_of_shared_values_is_bounded() -> None:
    for i in range(http11._SHARED_VALUES_MAX * 2 + 5):
        parse_request(f"GET / HTTP/1.1\r\nHost: host-{i}.example\r\n\r\n".encode())
        assert len(http11._shared_values) <= http11._SHARED_VALUES_MAX
