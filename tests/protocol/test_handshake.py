"""Tests for wskit.protocol.handshake: the RFC 6455 opening handshake."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri as ws_parse_uri

from wskit.exceptions import HandshakeRejected, InvalidRequest, InvalidResponse
from wskit.protocol.deflate import DeflateOptions, PerMessageDeflate
from wskit.protocol.frames import Opcode, encode_frame
from wskit.protocol.handshake import (
    GUID,
    USER_AGENT,
    ClientHandshake,
    accept_key,
    check_origin_same_host,
    generate_key,
    is_redirect,
    is_websocket_upgrade,
    reject,
    requested_subprotocols,
    server_handshake,
)
from wskit.protocol.headers import Headers
from wskit.protocol.http11 import (
    Request,
    RequestParser,
    Response,
    ResponseParser,
    serialize_request,
    serialize_response,
)
from wskit.protocol.uri import parse_uri

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# Chromium 120's request for `new WebSocket("ws://localhost:8000/chat")` from a
# page served by localhost:8000.
CHROMIUM_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
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
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)

# Firefox 121: note "Connection: keep-alive, Upgrade" and the subprotocol list.
FIREFOX_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Origin: http://localhost:8000\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-Fetch-Dest: empty\r\n"
    b"Sec-Fetch-Mode: websocket\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Upgrade: websocket\r\n"
    b"\r\n"
)


def parse(data: bytes) -> Request:
    request = RequestParser().feed(data)
    assert request is not None
    return request


def replace_fields(headers: Headers, fields: Mapping[str, str | list[str]]) -> None:
    """Replace header fields; names use underscores for dashes, a list repeats the field."""
    for raw_name, value in fields.items():
        name = raw_name.replace("_", "-")
        headers.pop(name)
        for v in [value] if isinstance(value, str) else value:
            headers.add(name, v)


def make_request(*, drop: Sequence[str] = (), **fields: str | list[str]) -> Request:
    """A valid upgrade request, with fields dropped or replaced."""
    headers = Headers(
        [
            ("Host", "example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
    )
    for name in drop:
        headers.pop(name)
    replace_fields(headers, fields)
    return Request("GET", "/", headers)


def refused(request: Request, **kwargs: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        server_handshake(request, **kwargs)  # type: ignore[arg-type]
    return info.value


def find_header(exc: InvalidRequest, name: str) -> str | None:
    return next((v for n, v in exc.headers if n.lower() == name.lower()), None)


# --- keys ----------------------------------------------------------------------


def test_accept_key_rfc_6455_example() -> None:
    # RFC 6455 section 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


# --- server: success -------------------------------------------------------------


class TestServerAccepts:
    def test_chromium(self) -> None:
        result = server_handshake(parse(CHROMIUM_REQUEST))
        response = result.response
        assert response.status == 101
        assert response.reason == "Switching Protocols"
        assert response.headers.raw_items() == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Server", "wskit"),
        ]
        assert result.subprotocol is None
        assert isinstance(result.deflate, PerMessageDeflate)
        assert not result.deflate.is_client

    def test_firefox(self) -> None:
        result = server_handshake(parse(FIREFOX_REQUEST), subprotocols=["superchat", "chat"])
        assert result.subprotocol == "superchat"
        assert result.response.headers["Sec-WebSocket-Protocol"] == "superchat"
        assert result.deflate is not None

    def test_serialized_101(self) -> None:
        result = server_handshake(make_request(), server_header=None)
        assert serialize_response(result.response) == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"\r\n"
        )

    @pytest.mark.parametrize(
        ("upgrade", "connection"),
        [
            ("WebSocket", "upgrade"),
            ("websocket, h2c", "keep-alive, Upgrade"),
            ("h2c, HTTP/2.0, websocket", "Upgrade, HTTP2-Settings"),
            (["h2c", "websocket"], ["keep-alive", "Upgrade"]),
        ],
    )
    def test_token_lists(self, upgrade: str | list[str], connection: str | list[str]) -> None:
        request = make_request(Upgrade=upgrade, Connection=connection)
        assert server_handshake(request).response.status == 101

    def test_compression_disabled(self) -> None:
        result = server_handshake(parse(CHROMIUM_REQUEST), compression=None)
        assert "Sec-WebSocket-Extensions" not in result.response.headers
        assert result.deflate is None

    def test_compression_options_applied(self) -> None:
        options = DeflateOptions(server_no_context_takeover=True, client_max_window_bits=10)
        result = server_handshake(parse(CHROMIUM_REQUEST), compression=options)
        assert result.response.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
        )
        assert result.deflate is not None
        assert result.deflate.remote_max_window_bits == 10

    def test_unknown_extensions_ignored(self) -> None:
        request = make_request(Sec_WebSocket_Extensions="x-webkit-deflate-frame, foo; bar=1")
        result = server_handshake(request)
        assert "Sec-WebSocket-Extensions" not in result.response.headers
        assert result.deflate is None

    def test_no_extensions_offered(self) -> None:
        result = server_handshake(make_request())
        assert result.deflate is None
        assert "Sec-WebSocket-Extensions" not in result.response.headers

    def test_extra_headers(self) -> None:
        extra = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
        result = server_handshake(make_request(), extra_headers=extra)
        headers = result.response.headers
        assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert headers.raw_items()[-2:] == extra
        assert headers["Server"] == "wskit"

    def test_extra_headers_mapping_and_headers(self) -> None:
        for extra in ({"X-A": "1"}, Headers([("X-A", "1")])):
            result = server_handshake(make_request(), extra_headers=extra)
            assert result.response.headers["X-A"] == "1"

    def test_server_header(self) -> None:
        assert server_handshake(make_request(), server_header="mine/1").response.headers[
            "Server"
        ] == ("mine/1")
        headers = server_handshake(make_request(), server_header=None).response.headers
        assert "Server" not in headers
        headers = server_handshake(
            make_request(), extra_headers=[("server", "custom")]
        ).response.headers
        assert headers.get_all("Server") == ["custom"]

    def test_key_whitespace_tolerated(self) -> None:
        result = server_handshake(make_request(Sec_WebSocket_Key=f" {KEY} "))
        assert result.response.headers["Sec-WebSocket-Accept"] == ACCEPT


# --- server: subprotocols ----------------------------------------------------------


class TestSubprotocols:
    def test_server_preference_wins(self) -> None:
        request = make_request(Sec_WebSocket_Protocol="chat, superchat")
        result = server_handshake(request, subprotocols=["superchat", "chat"])
        assert result.subprotocol == "superchat"

    def test_repeated_header(self) -> None:
        request = make_request(Sec_WebSocket_Protocol=["a", "b, c"])
        assert server_handshake(request, subprotocols=["c"]).subprotocol == "c"

    def test_no_match_no_header(self) -> None:
        request = make_request(Sec_WebSocket_Protocol="chat")
        result = server_handshake(request, subprotocols=["other"])
        assert result.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in result.response.headers

    def test_client_offers_none(self) -> None:
        result = server_handshake(make_request(), subprotocols=["chat"])
        assert result.subprotocol is None

    def test_case_sensitive(self) -> None:
        # Subprotocol names are compared exactly (RFC 6455 section 11.3.4).
        request = make_request(Sec_WebSocket_Protocol="Chat")
        assert server_handshake(request, subprotocols=["chat"]).subprotocol is None

    def test_hook(self) -> None:
        seen: list[tuple[list[str], list[str]]] = []

        def select(client: Sequence[str], server: Sequence[str]) -> str | None:
            seen.append((list(client), list(server)))
            return client[-1]

        request = make_request(Sec_WebSocket_Protocol="a, b")
        result = server_handshake(request, subprotocols=["a"], select_subprotocol=select)
        assert result.subprotocol == "b"
        assert result.response.headers["Sec-WebSocket-Protocol"] == "b"
        assert seen == [(["a", "b"], ["a"])]

    def test_hook_returns_none(self) -> None:
        request = make_request(Sec_WebSocket_Protocol="a")
        result = server_handshake(request, subprotocols=["a"], select_subprotocol=lambda c, s: None)
        assert result.subprotocol is None

    def test_hook_returns_unoffered(self) -> None:
        request = make_request(Sec_WebSocket_Protocol="a")
        with pytest.raises(ValueError, match="did not offer"):
            server_handshake(request, select_subprotocol=lambda c, s: "z")

    def test_malformed_header(self) -> None:
        exc = refused(make_request(Sec_WebSocket_Protocol="a b"), subprotocols=["a"])
        assert exc.status == 400
        assert b"Sec-WebSocket-Protocol" in exc.body


# --- server: refusals ---------------------------------------------------------------


class TestServerRefuses:
    @pytest.mark.parametrize("method", ["POST", "HEAD", "PUT", "get"])
    def test_method(self, method: str) -> None:
        request = make_request()
        request.method = method
        exc = refused(request)
        assert exc.status == 405
        assert exc.headers == [("Allow", "GET")]
        assert method.encode() in exc.body

    def test_version(self) -> None:
        request = make_request()
        request.version = "HTTP/1.0"
        exc = refused(request)
        assert exc.status == 505
        assert b"HTTP/1.1" in exc.body

    @pytest.mark.parametrize(
        "request_",
        [
            make_request(drop=["Upgrade", "Connection"]),
            make_request(drop=["Upgrade"], Connection="keep-alive"),
            Request("GET", "/", Headers([("Host", "h"), ("Accept", "text/html")])),
        ],
    )
    def test_plain_http_gets_426(self, request_: Request) -> None:
        exc = refused(request_)
        assert exc.status == 426
        assert find_header(exc, "Upgrade") == "websocket"
        assert find_header(exc, "Connection") == "Upgrade"
        assert exc.body == b"This is a WebSocket endpoint; connect with a WebSocket client.\n"

    @pytest.mark.parametrize("upgrade", [None, "h2c", "websockets", "web socket"])
    def test_upgrade_without_websocket(self, upgrade: str | None) -> None:
        request = (
            make_request(drop=["Upgrade"]) if upgrade is None else make_request(Upgrade=upgrade)
        )
        exc = refused(request)
        assert exc.status == 400
        assert b"Upgrade header" in exc.body

    @pytest.mark.parametrize("connection", [None, "keep-alive", "close", "upgraded"])
    def test_connection_without_upgrade(self, connection: str | None) -> None:
        if connection is None:
            request = make_request(drop=["Connection"])
        else:
            request = make_request(Connection=connection)
        exc = refused(request)
        assert exc.status == 400
        assert b"Connection header" in exc.body

    def test_missing_host(self) -> None:
        exc = refused(make_request(drop=["Host"]))
        assert exc.status == 400
        assert b"Host" in exc.body

    def test_two_hosts(self) -> None:
        exc = refused(make_request(Host=["a", "b"]))
        assert exc.status == 400
        assert b"more than one Host" in exc.body

    def test_empty_host(self) -> None:
        assert refused(make_request(Host="")).status == 400

    @pytest.mark.parametrize("version", ["8", "12", "13, 8", "", "1.3", ["13", "13"]])
    def test_websocket_version(self, version: str | list[str]) -> None:
        exc = refused(make_request(Sec_WebSocket_Version=version))
        assert exc.status == 426
        assert find_header(exc, "Sec-WebSocket-Version") == "13"
        assert b"Sec-WebSocket-Version" in exc.body

    def test_missing_websocket_version(self) -> None:
        exc = refused(make_request(drop=["Sec-WebSocket-Version"]))
        assert exc.status == 426
        assert find_header(exc, "Sec-WebSocket-Version") == "13"

    def test_missing_key(self) -> None:
        exc = refused(make_request(drop=["Sec-WebSocket-Key"]))
        assert exc.status == 400
        assert b"Sec-WebSocket-Key" in exc.body

    def test_two_keys(self) -> None:
        exc = refused(make_request(Sec_WebSocket_Key=[KEY, KEY]))
        assert exc.status == 400
        assert b"more than one Sec-WebSocket-Key" in exc.body

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "not base64!",
            base64.b64encode(b"x" * 15).decode(),
            base64.b64encode(b"x" * 17).decode(),
            KEY.rstrip("="),
            "dGhlIHNhbXBsZSBub25jZQ==AA",
            "d\u00e9GhlIHNhbXBsZSBub25jZQ=",
        ],
    )
    def test_bad_key(self, key: str) -> None:
        exc = refused(make_request(Sec_WebSocket_Key=key))
        assert exc.status == 400
        assert b"Sec-WebSocket-Key" in exc.body

    def test_malformed_extensions(self) -> None:
        exc = refused(make_request(Sec_WebSocket_Extensions="permessage-deflate; =x"))
        assert exc.status == 400
        assert b"Sec-WebSocket-Extensions" in exc.body

    def test_malformed_extensions_refused_even_without_compression(self) -> None:
        exc = refused(make_request(Sec_WebSocket_Extensions='a; b="'), compression=None)
        assert exc.status == 400

    def test_check_order_method_first(self) -> None:
        request = Request("POST", "/", Headers())
        assert refused(request).status == 405


# --- server: origin ---------------------------------------------------------------------


class TestOrigin:
    @pytest.mark.parametrize(
        ("origin", "host", "allowed"),
        [
            (None, "example.com", True),
            ("http://example.com", "example.com", True),
            ("https://EXAMPLE.com", "example.COM", True),
            ("http://example.com:8000", "example.com:8000", True),
            ("http://user@example.com", "example.com", True),
            ("http://example.com:8000", "example.com", False),
            ("http://example.com", "example.com:8000", False),
            ("http://evil.com", "example.com", False),
            ("http://example.com.evil.com", "example.com", False),
            ("null", "example.com", False),
            ("", "example.com", False),
            ("example.com", "example.com", False),
            ("http://[::1", "example.com", False),
        ],
    )
    def test_same_host(self, origin: str | None, host: str, allowed: bool) -> None:
        request = (
            make_request(Host=host) if origin is None else make_request(Host=host, Origin=origin)
        )
        assert check_origin_same_host(request) is allowed
        if allowed:
            assert server_handshake(request).response.status == 101
        else:
            exc = refused(request)
            assert exc.status == 403
            assert exc.body == b"Origin not allowed\n"

    def test_same_host_two_origins(self) -> None:
        request = make_request(Origin=["http://example.com", "http://example.com"])
        assert not check_origin_same_host(request)

    def test_same_host_non_ascii_fold_is_not_applied(self) -> None:
        # Like gorilla's equalASCIIFold: only ASCII letters fold. The Kelvin
        # sign lowercases to "k" with str.lower(), which must not match.
        request = make_request(Host="k.example", Origin="http://\u212a.example")
        assert not check_origin_same_host(request)

    def test_origins_list(self) -> None:
        allowed = ["https://app.example", "HTTP://Other.Example:8080"]
        good = make_request(Origin="https://app.example")
        assert server_handshake(good, origins=allowed).response.status == 101
        case = make_request(Origin="http://other.example:8080")
        assert server_handshake(case, origins=allowed).response.status == 101
        bad = make_request(Origin="https://app.example.evil")
        assert refused(bad, origins=allowed).status == 403
        # Without None in the list, a request without Origin is refused.
        assert refused(make_request(), origins=allowed).status == 403

    def test_origins_list_allows_missing(self) -> None:
        allowed: list[str | None] = ["https://app.example", None]
        assert server_handshake(make_request(), origins=allowed).response.status == 101
        assert refused(make_request(Origin="https://x"), origins=allowed).status == 403

    def test_origins_list_overrides_same_host(self) -> None:
        # Same host, but not listed.
        request = make_request(Host="example.com", Origin="http://example.com")
        assert refused(request, origins=["https://elsewhere"]).status == 403

    def test_check_origin_hook(self) -> None:
        seen: list[Request] = []

        def check(request: Request) -> bool:
            seen.append(request)
            return request.headers.get("Origin") == "https://trusted"

        trusted = make_request(Origin="https://trusted")
        assert server_handshake(trusted, check_origin=check).response.status == 101
        assert seen == [trusted]
        # The hook replaces the same-host default, which would have allowed this.
        same_host = make_request(Host="trusted", Origin="http://trusted")
        assert refused(same_host, check_origin=check).status == 403

    def test_check_origin_allow_all(self) -> None:
        request = make_request(Origin="http://evil.com")
        assert server_handshake(request, check_origin=lambda r: True).response.status == 101


# --- reject ----------------------------------------------------------------------------


class TestReject:
    def test_defaults(self) -> None:
        response = reject(403, "go away\n")
        assert response.status == 403
        assert response.reason == "Forbidden"
        assert response.body == b"go away\n"
        assert response.headers.raw_items() == [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Connection", "close"),
            ("Content-Length", "8"),
        ]

    def test_empty_body_is_readable(self) -> None:
        assert reject(404).body == b"404 Not Found\n"

    def test_given_headers_kept(self) -> None:
        response = reject(
            401,
            b"<p>login</p>",
            [("Content-Type", "text/html"), ("WWW-Authenticate", 'Basic realm="x"')],
        )
        assert response.headers["Content-Type"] == "text/html"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="x"'
        assert response.headers["Connection"] == "close"

    def test_unicode_body(self) -> None:
        response = reject(400, "caf\u00e9")
        assert response.body == "caf\u00e9".encode()
        assert response.headers["Content-Length"] == "5"

    def test_from_invalid_request_through_the_wire(self) -> None:
        # The server's error travels to the client, which reports it.
        client = ClientHandshake(parse_uri("ws://h/"), key=KEY)
        request = parse(serialize_request(client.request))
        request.headers["Sec-WebSocket-Version"] = "8"
        with pytest.raises(InvalidRequest) as info:
            server_handshake(request)
        exc = info.value
        wire = serialize_response(reject(exc.status, exc.body, exc.headers))
        response = ResponseParser().feed(wire)
        assert response is not None
        with pytest.raises(HandshakeRejected) as rejected:
            client.process_response(response)
        assert rejected.value.status == 426
        assert rejected.value.body == exc.body
        assert rejected.value.headers.get("Sec-WebSocket-Version") == "13"


# --- client --------------------------------------------------------------------------------


class TestClientRequest:
    def test_request(self) -> None:
        client = ClientHandshake(
            parse_uri("wss://example.com:8443/chat?x=1"),
            origin="https://example.com",
            subprotocols=["chat", "superchat"],
            key=KEY,
        )
        request = client.request
        assert request is client.request
        assert (request.method, request.target, request.version) == (
            "GET",
            "/chat?x=1",
            "HTTP/1.1",
        )
        assert request.headers.raw_items() == [
            ("Host", "example.com:8443"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "https://example.com"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
            ("User-Agent", USER_AGENT),
        ]
        assert USER_AGENT.startswith("wskit/")

    def test_minimal(self) -> None:
        client = ClientHandshake(parse_uri("ws://h"), compression=None, user_agent=None)
        names = [n for n, _ in client.request.headers.raw_items()]
        assert names == [
            "Host",
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
        ]
        assert len(base64.b64decode(client.key)) == 16

    def test_random_keys(self) -> None:
        uri = parse_uri("ws://h")
        assert ClientHandshake(uri).key != ClientHandshake(uri).key

    def test_basic_auth_from_uri(self) -> None:
        client = ClientHandshake(parse_uri("ws://al%C3%AFce:p%40ss@h/"))
        expected = base64.b64encode("al\u00efce:p@ss".encode()).decode()
        assert client.request.headers["Authorization"] == "Basic " + expected

    def test_basic_auth_user_only(self) -> None:
        client = ClientHandshake(parse_uri("ws://bob@h/"))
        assert client.request.headers["Authorization"] == "Basic " + base64.b64encode(
            b"bob:"
        ).decode("ascii")

    def test_extra_headers_override_defaults(self) -> None:
        client = ClientHandshake(
            parse_uri("ws://u:p@h/"),
            extra_headers=[("Authorization", "Bearer t"), ("User-Agent", "me"), ("X-A", "1")],
        )
        headers = client.request.headers
        assert headers.get_all("Authorization") == ["Bearer t"]
        assert headers.get_all("User-Agent") == ["me"]
        assert headers["X-A"] == "1"

    def test_compression_options_offered(self) -> None:
        options = DeflateOptions(client_no_context_takeover=True, server_max_window_bits=10)
        client = ClientHandshake(parse_uri("ws://h"), compression=options)
        assert client.request.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; "
            "client_max_window_bits"
        )

    @pytest.mark.parametrize("protocol", ["", "a b", "a,b", "caf\u00e9", "x\r\n"])
    def test_invalid_subprotocol(self, protocol: str) -> None:
        with pytest.raises(ValueError, match="subprotocol"):
            ClientHandshake(parse_uri("ws://h"), subprotocols=[protocol])


def accepted(key: str = KEY, **fields: str | list[str]) -> Response:
    """A valid 101 answer to ``key``, with fields replaced."""
    headers = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
    )
    replace_fields(headers, fields)
    return Response(101, "Switching Protocols", headers)


class TestClientResponse:
    def client(self, **kwargs: object) -> ClientHandshake:
        return ClientHandshake(parse_uri("ws://h/"), key=KEY, **kwargs)  # type: ignore[arg-type]

    def test_accepted(self) -> None:
        result = self.client().process_response(accepted())
        assert result.subprotocol is None
        assert result.deflate is None

    def test_lenient_tokens(self) -> None:
        response = accepted(Upgrade="WebSocket", Connection="keep-alive, upgrade")
        assert self.client().process_response(response).subprotocol is None

    def test_rejected_carries_response(self) -> None:
        response = Response(
            403, "Forbidden", Headers([("Content-Type", "text/plain")]), b"no entry\n"
        )
        with pytest.raises(HandshakeRejected) as info:
            self.client().process_response(response)
        exc = info.value
        assert exc.status == 403
        assert exc.body == b"no entry\n"
        assert exc.headers.get("content-type") == "text/plain"
        assert exc.headers.raw_items() == [("Content-Type", "text/plain")]
        assert "403" in str(exc)
        assert "Forbidden" in str(exc)

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"Upgrade": "h2c"}, "Upgrade"),
            ({"Connection": "keep-alive"}, "Connection"),
            ({"Sec_WebSocket_Accept": ACCEPT[:-2] + "A="}, "Sec-WebSocket-Accept"),
            ({"Sec_WebSocket_Accept": [ACCEPT, ACCEPT]}, "Sec-WebSocket-Accept"),
            ({"Sec_WebSocket_Accept": []}, "Sec-WebSocket-Accept"),
            ({"Sec_WebSocket_Protocol": "chat"}, "not offered"),
            ({"Sec_WebSocket_Protocol": "a, b"}, "several"),
            ({"Sec_WebSocket_Protocol": ["a", "a"]}, "several"),
            ({"Sec_WebSocket_Protocol": "a b"}, "Sec-WebSocket-Protocol"),
            ({"Sec_WebSocket_Extensions": "x-foo"}, "not offered"),
            ({"Sec_WebSocket_Extensions": "permessage-deflate; ="}, "Sec-WebSocket-Extensions"),
        ],
    )
    def test_invalid(self, fields: dict[str, str | list[str]], message: str) -> None:
        client = self.client(subprotocols=["a", "b"])
        response = accepted()
        replace_fields(response.headers, fields)
        with pytest.raises(InvalidResponse, match=message):
            client.process_response(response)

    def test_missing_upgrade(self) -> None:
        response = accepted()
        response.headers.pop("Upgrade")
        with pytest.raises(InvalidResponse, match="Upgrade"):
            self.client().process_response(response)

    def test_wrong_key(self) -> None:
        response = accepted(key=generate_key())
        with pytest.raises(InvalidResponse, match="Sec-WebSocket-Accept"):
            self.client().process_response(response)

    def test_subprotocol(self) -> None:
        result = self.client(subprotocols=["a", "b"]).process_response(
            accepted(Sec_WebSocket_Protocol="b")
        )
        assert result.subprotocol == "b"

    def test_deflate_accepted(self) -> None:
        response = accepted(
            Sec_WebSocket_Extensions="permessage-deflate; server_max_window_bits=12"
        )
        result = self.client().process_response(response)
        assert result.deflate is not None
        assert result.deflate.is_client
        assert result.deflate.remote_max_window_bits == 12

    def test_deflate_not_offered(self) -> None:
        response = accepted(Sec_WebSocket_Extensions="permessage-deflate")
        with pytest.raises(InvalidResponse, match="not offered"):
            self.client(compression=None).process_response(response)

    def test_deflate_bad_params(self) -> None:
        # client_accept's own checks reach the caller.
        response = accepted(Sec_WebSocket_Extensions="permessage-deflate; bogus")
        with pytest.raises(InvalidResponse):
            self.client().process_response(response)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_is_redirect(status: int) -> None:
    response = Response(status, "", Headers([("Location", " wss://other/ ")]))
    assert is_redirect(response) == "wss://other/"


@pytest.mark.parametrize(
    "response",
    [
        Response(101, "", Headers([("Location", "/x")])),
        Response(300, "", Headers([("Location", "/x")])),
        Response(304, "", Headers([("Location", "/x")])),
        Response(302, "", Headers()),
        Response(302, "", Headers([("Location", "")])),
        Response(302, "", Headers([("Location", "/a"), ("Location", "/b")])),
    ],
)
def test_not_redirect(response: Response) -> None:
    assert is_redirect(response) is None


# --- round trip -------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(
    st.lists(st.integers(0, 600), max_size=6),
    st.lists(st.integers(0, 300), max_size=6),
    st.sampled_from([None, DeflateOptions(), DeflateOptions(client_max_window_bits=9)]),
)
def test_round_trip(
    request_cuts: list[int], response_cuts: list[int], compression: DeflateOptions | None
) -> None:
    client = ClientHandshake(
        parse_uri("ws://alice:pw@localhost:8000/chat?room=1"),
        origin="http://localhost:8000",
        subprotocols=["v2.chat", "v1.chat"],
        compression=compression,
        extra_headers=[("Cookie", "sid=42")],
    )
    request_parser = RequestParser()
    requests = [
        request_parser.feed(piece)
        for piece in split(serialize_request(client.request), request_cuts)
    ]
    request = next(r for r in requests if r is not None)
    assert request.path == "/chat"
    assert request.query_params == {"room": ["1"]}
    assert request.cookies == {"sid": "42"}

    server = server_handshake(
        request, subprotocols=["v1.chat", "v2.chat"], extra_headers=[("Set-Cookie", "x=y")]
    )
    frame = encode_frame(Opcode.TEXT, b"first frame")
    wire = serialize_response(server.response) + frame
    response_parser = ResponseParser()
    responses = [response_parser.feed(piece) for piece in split(wire, response_cuts)]
    response = next(r for r in responses if r is not None)
    assert response_parser.leftover == frame

    result = client.process_response(response)
    assert result.subprotocol == server.subprotocol == "v1.chat"
    assert response.headers["Set-Cookie"] == "x=y"
    if compression is None:
        assert result.deflate is None
        assert server.deflate is None
    else:
        assert result.deflate is not None
        assert server.deflate is not None
        # The two codecs agree: what one compresses the other inflates.
        message = b"hello hello hello " * 20
        assert server.deflate.decode(result.deflate.encode(message, True), True, None) == message
        assert result.deflate.decode(server.deflate.encode(message, True), True, None) == message
        if compression.client_max_window_bits is not None:
            assert result.deflate.local_max_window_bits == 9
            assert server.deflate.remote_max_window_bits == 9


# --- interoperability with the websockets library --------------------------------------------


class TestWebsocketsClientAgainstOurServer:
    def handshake(self, client: ClientProtocol, **kwargs: object) -> tuple[ClientProtocol, bytes]:
        client.send_request(client.connect())
        request = parse(b"".join(client.data_to_send()))
        result = server_handshake(request, **kwargs)  # type: ignore[arg-type]
        return client, serialize_response(result.response)

    def test_plain(self) -> None:
        client, wire = self.handshake(ClientProtocol(ws_parse_uri("ws://localhost:8000/x?y=1")))
        client.receive_data(wire + encode_frame(Opcode.TEXT, b"hi"))
        assert client.handshake_exc is None
        assert client.state is State.OPEN
        events = client.events_received()
        assert events[-1].data == b"hi"  # type: ignore[union-attr]

    def test_origin_subprotocol_and_deflate(self) -> None:
        client = ClientProtocol(
            ws_parse_uri("ws://localhost:8000/chat"),
            origin=Origin("http://localhost:8000"),
            extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)],
            subprotocols=[Subprotocol("chat"), Subprotocol("superchat")],
        )
        client.send_request(client.connect())
        request = parse(b"".join(client.data_to_send()))
        result = server_handshake(
            request,
            subprotocols=["superchat", "chat"],
            compression=DeflateOptions(client_max_window_bits=11),
        )
        assert result.deflate is not None
        message = b"compressed by wskit " * 10
        frame = encode_frame(Opcode.TEXT, result.deflate.encode(message, True), rsv1=True)
        client.receive_data(serialize_response(result.response) + frame)
        assert client.handshake_exc is None
        assert client.state is State.OPEN
        assert client.subprotocol == "superchat"
        assert [e.name for e in client.extensions] == ["permessage-deflate"]
        assert client.events_received()[-1].data == message  # type: ignore[union-attr]

    def test_websockets_client_sees_rejection(self) -> None:
        client = ClientProtocol(ws_parse_uri("ws://h/"), origin=Origin("http://evil.example"))
        client.send_request(client.connect())
        request = parse(b"".join(client.data_to_send()))
        with pytest.raises(InvalidRequest) as info:
            server_handshake(request)
        exc = info.value
        client.receive_data(serialize_response(reject(exc.status, exc.body, exc.headers)))
        client.receive_eof()
        assert client.handshake_exc is not None
        assert "403" in str(client.handshake_exc)


class TestOurClientAgainstWebsocketsServer:
    def test_plain_with_frame_in_same_packet(self) -> None:
        client = ClientHandshake(parse_uri("ws://localhost:8000/path?q=1"), compression=None)
        server = ServerProtocol()
        server.receive_data(serialize_request(client.request))
        [request] = server.events_received()
        assert request.path == "/path?q=1"  # type: ignore[union-attr]
        response = server.accept(request)  # type: ignore[arg-type]
        server.send_response(response)
        server.send_text(b"hello")
        wire = b"".join(server.data_to_send())
        parser = ResponseParser()
        parsed = parser.feed(wire)
        assert parsed is not None
        result = client.process_response(parsed)
        assert result.subprotocol is None
        assert result.deflate is None
        assert parser.leftover == b"\x81\x05hello"

    def test_subprotocol_and_deflate(self) -> None:
        client = ClientHandshake(
            parse_uri("ws://localhost:8000/"),
            origin="http://localhost:8000",
            subprotocols=["chat", "superchat"],
            compression=DeflateOptions(server_max_window_bits=10),
        )
        server = ServerProtocol(
            origins=[Origin("http://localhost:8000")],
            extensions=[ServerPerMessageDeflateFactory()],
            subprotocols=[Subprotocol("superchat")],
        )
        server.receive_data(serialize_request(client.request))
        [request] = server.events_received()
        server.send_response(server.accept(request))  # type: ignore[arg-type]
        message = b"compressed by websockets " * 10
        server.send_text(message)
        wire = b"".join(server.data_to_send())
        parser = ResponseParser()
        parsed = parser.feed(wire)
        assert parsed is not None
        result = client.process_response(parsed)
        assert result.subprotocol == "superchat"
        assert result.deflate is not None
        assert result.deflate.remote_max_window_bits == 10
        # Decode the server's compressed frame with the negotiated codec.
        frame = parser.leftover
        assert frame[0] == 0xC1  # FIN, RSV1, text
        length = frame[1]
        assert length < 126
        assert result.deflate.decode(frame[2 : 2 + length], True, None) == message

    def test_websockets_server_rejects_our_origin(self) -> None:
        client = ClientHandshake(parse_uri("ws://localhost/"), origin="http://evil.example")
        server = ServerProtocol(origins=[Origin("http://localhost")])
        server.receive_data(serialize_request(client.request))
        [request] = server.events_received()
        server.send_response(server.accept(request))  # type: ignore[arg-type]
        parser = ResponseParser()
        parsed = parser.feed(b"".join(server.data_to_send()))
        if parsed is None:
            parsed = parser.feed_eof()
        assert parsed is not None
        with pytest.raises(HandshakeRejected) as info:
            client.process_response(parsed)
        assert info.value.status == 403
        assert b"Origin" in info.value.body


@pytest.mark.parametrize(
    ("fields", "drop", "expected"),
    [
        ({}, (), True),
        ({"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"}, (), True),
        ({"Upgrade": "h2c"}, (), False),
        ({"Connection": "keep-alive"}, (), False),
        ({}, ("Upgrade",), False),
        ({}, ("Connection",), False),
    ],
)
def test_is_websocket_upgrade(
    fields: dict[str, str], drop: tuple[str, ...], expected: bool
) -> None:
    assert is_websocket_upgrade(make_request(drop=drop, **fields)) is expected


def test_requested_subprotocols() -> None:
    assert requested_subprotocols(make_request()) == []
    offered = make_request(**{"Sec-WebSocket-Protocol": ["chat.v2, chat.v1", "json"]})
    assert requested_subprotocols(offered) == ["chat.v2", "chat.v1", "json"]
    # Malformed: none (the handshake itself refuses it with 400).
    malformed = make_request(**{"Sec-WebSocket-Protocol": "chat v1"})
    assert requested_subprotocols(malformed) == []
    assert refused(malformed, subprotocols=["chat"]).status == 400
