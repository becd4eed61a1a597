"""wskit.protocol.client: the decisions both clients share, without sockets."""

from __future__ import annotations

import http.cookiejar

import pytest

from wskit.exceptions import HandshakeRejected, InvalidURI
from wskit.protocol.client import (
    compression_options,
    cookie_header,
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
