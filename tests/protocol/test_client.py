"""wskit.protocol.client: the decisions both clients share, without sockets."""

from __future__ import annotations

import http.cookiejar

import pytest

from wskit.exceptions import HandshakeRejected, InvalidURI
from wskit.protocol.client import (
    check_connect_arguments,
    client_handshake,
    compression_options,
    cookie_header,
    next_uri,
    proxy_for,
    redirect_target,
    store_cookies,
    with_cookie,
)
from wskit.protocol.deflate import DeflateOptions
from wskit.protocol.headers import Headers
from wskit.protocol.uri import parse_uri

PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_compression_options() -> None:
    assert compression_options(None) is None
    assert compression_options("deflate") == DeflateOptions()
    options = DeflateOptions(server_max_window_bits=10)
    assert compression_options(options) is options
    with pytest.raises(ValueError, match="unsupported compression"):
        compression_options("gzip")


def test_proxy_for_an_explicit_proxy(env: pytest.MonkeyPatch) -> None:
    env.setenv("http_proxy", "http://ignored:1")
    uri = parse_uri("ws://example.com/")
    assert proxy_for(uri, None) is None
    assert proxy_for(uri, False) is None
    proxy = proxy_for(uri, "socks5://proxy:1080")
    assert proxy is not None and (proxy.scheme, proxy.host, proxy.port) == ("socks5", "proxy", 1080)


def test_proxy_for_reads_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("http_proxy", "http://plain:3128")
    env.setenv("https_proxy", "http://secure:3128")
    env.setenv("no_proxy", "internal.example")
    plain = proxy_for(parse_uri("ws://example.com/"), True)
    secure = proxy_for(parse_uri("wss://example.com/"), True)
    assert plain is not None and plain.host == "plain"
    assert secure is not None and secure.host == "secure"
    assert proxy_for(parse_uri("ws://internal.example/"), True) is None


def test_cookies_round_trip_through_the_jar() -> None:
    jar = http.cookiejar.CookieJar()
    uri = parse_uri("wss://example.com/chat")
    assert cookie_header(jar, uri) is None
    store_cookies(jar, uri, Headers([("Set-Cookie", "a=1; Path=/; Secure")]))
    store_cookies(jar, uri, Headers([("X-Other", "no cookie here")]))
    assert cookie_header(jar, uri) == "a=1"
    # Secure cookies go to wss:// only (ws:// is http:// to the jar).
    assert cookie_header(jar, parse_uri("ws://example.com/chat")) is None


def test_with_cookie_appends_to_a_given_header() -> None:
    assert with_cookie(None, None) == ()
    headers = {"Cookie": "given=0", "X": "y"}
    assert with_cookie(headers, None) is headers
    merged = Headers(with_cookie(headers, "a=1"))
    assert merged.get_all("Cookie") == ["given=0; a=1"]
    assert merged["X"] == "y"


def redirect(status: int, location: str | None) -> HandshakeRejected:
    headers = Headers([("Location", location)] if location is not None else [])
    return HandshakeRejected(status, headers)


def test_redirect_target() -> None:
    uri = parse_uri("wss://example.com/old")
    new = redirect_target(uri, redirect(302, "/new"))
    assert new is not None and (new.host, new.path, new.secure) == ("example.com", "/new", True)
    other = redirect_target(uri, redirect(301, "wss://other.example/x"))
    assert other is not None and other.host == "other.example"
    assert redirect_target(uri, redirect(403, None)) is None
    assert redirect_target(uri, redirect(302, None)) is None


def test_a_redirect_from_wss_to_ws_is_refused() -> None:
    with pytest.raises(InvalidURI, match="wss:// to ws://"):
        redirect_target(parse_uri("wss://example.com/"), redirect(302, "ws://example.com/"))


def test_next_uri_keeps_the_cookies_and_follows_a_redirect() -> None:
    uri = parse_uri("ws://example.com/old")
    refusal = HandshakeRejected(302, Headers([("Location", "/new"), ("Set-Cookie", "a=1; Path=/")]))
    jar = http.cookiejar.CookieJar()
    new = next_uri(uri, refusal, cookies=jar, sock_given=False)
    assert new is not None and new.path == "/new"
    assert cookie_header(jar, uri) == "a=1"
    assert next_uri(uri, refusal, cookies=None, sock_given=False) == new
    # A given socket is used up by the first attempt: the 3xx is the answer.
    assert next_uri(uri, refusal, cookies=None, sock_given=True) is None
    assert next_uri(uri, redirect(403, None), cookies=None, sock_given=False) is None


def test_check_connect_arguments() -> None:
    known = frozenset({"max_size", "max_queue"})
    check_connect_arguments({"max_size": 1}, known, dial=None, sock=None, unix_path=None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'b'"):
        check_connect_arguments({"c": 1, "b": 2}, known, dial=None, sock=None, unix_path=None)
    dial = object()
    check_connect_arguments({}, known, dial=dial, sock=None, unix_path=None)
    with pytest.raises(ValueError, match="dial cannot be combined"):
        check_connect_arguments({}, known, dial=dial, sock=object(), unix_path=None)
    with pytest.raises(ValueError, match="dial cannot be combined"):
        check_connect_arguments({}, known, dial=dial, sock=None, unix_path="/tmp/s")


def test_client_handshake_sends_the_jars_cookies_after_the_given_ones() -> None:
    uri = parse_uri("ws://example.com/chat")
    jar = http.cookiejar.CookieJar()
    store_cookies(jar, uri, Headers([("Set-Cookie", "a=1; Path=/")]))

    def handshake(cookies: http.cookiejar.CookieJar | None) -> Headers:
        return client_handshake(
            uri,
            origin="http://example.com",
            subprotocols=["chat"],
            compression=None,
            headers={"Cookie": "given=0"},
            user_agent="test",
            cookies=cookies,
        ).request.headers

    headers = handshake(jar)
    assert headers.get_all("Cookie") == ["given=0; a=1"]
    assert headers["Origin"] == "http://example.com"
    assert headers["Sec-WebSocket-Protocol"] == "chat"
    assert headers["User-Agent"] == "test"
    assert "Sec-WebSocket-Extensions" not in headers
    assert handshake(None).get_all("Cookie") == ["given=0"]
