"""Tests for wskit.protocol.uri."""

from __future__ import annotations

import dataclasses

import pytest

from wskit.exceptions import InvalidURI
from wskit.protocol.uri import (
    ProxyURI,
    WebSocketURI,
    parse_proxy_uri,
    parse_uri,
    redirect_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "/")),
        ("wss://example.com", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:8080/chat", WebSocketURI(False, "example.com", 8080, "/chat")),
        ("wss://example.com:443/", WebSocketURI(True, "example.com", 443, "/")),
        ("WS://EXAMPLE.COM/Path", WebSocketURI(False, "example.com", 80, "/Path")),
        ("ws://h/a?b=c&d", WebSocketURI(False, "h", 80, "/a?b=c&d")),
        ("ws://h?x=1", WebSocketURI(False, "h", 80, "/?x=1")),
        ("ws://[::1]/", WebSocketURI(False, "::1", 80, "/")),
        ("wss://[2001:DB8::1]:8443/x", WebSocketURI(True, "2001:db8::1", 8443, "/x")),
        ("ws://127.0.0.1:9000", WebSocketURI(False, "127.0.0.1", 9000, "/")),
        ("ws://user@h/", WebSocketURI(False, "h", 80, "/", "user", None)),
        ("ws://user:pass@h/", WebSocketURI(False, "h", 80, "/", "user", "pass")),
        ("ws://us%20er:p%40ss%3A@h/", WebSocketURI(False, "h", 80, "/", "us er", "p@ss:")),
        ("ws://user:@h/", WebSocketURI(False, "h", 80, "/", "user", "")),
    ],
)
def test_parse_uri(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


def test_non_ascii_path_and_query_are_percent_encoded() -> None:
    uri = parse_uri("ws://h/caf\u00e9 bar/?q=\u00fc\u00f1&x=a b")
    assert uri.path == "/caf%C3%A9%20bar/?q=%C3%BC%C3%B1&x=a%20b"


def test_existing_percent_escapes_kept() -> None:
    assert parse_uri("ws://h/a%2Fb?c=%26").path == "/a%2Fb?c=%26"


def test_reserved_characters_kept() -> None:
    path = "/a:b@c!$&'()*+,;=-._~?x=/y?z"
    assert parse_uri("ws://h" + path).path == path


def test_idna_host() -> None:
    uri = parse_uri("wss://b\u00fccher.example/")
    assert uri.host == "xn--bcher-kva.example"
    assert uri.host_header == "xn--bcher-kva.example"


def test_uri_is_frozen() -> None:
    uri = parse_uri("ws://h/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.host = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("uri", "host_header"),
    [
        ("ws://h", "h"),
        ("ws://h:80", "h"),
        ("ws://h:443", "h:443"),
        ("wss://h:443", "h"),
        ("wss://h:80", "h:80"),
        ("ws://[::1]", "[::1]"),
        ("ws://[::1]:8000", "[::1]:8000"),
    ],
)
def test_host_header(uri: str, host_header: str) -> None:
    assert parse_uri(uri).host_header == host_header


def test_str_hides_credentials() -> None:
    assert str(parse_uri("wss://u:secret@h:8443/p?q")) == "wss://h:8443/p?q"
    assert parse_uri("wss://h").scheme == "wss"
    assert parse_uri("ws://h").scheme == "ws"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://example.com/", "use ws://"),
        ("https://example.com/", "use wss://"),
        ("ftp://example.com/", "scheme"),
        ("example.com/chat", "scheme"),
        ("ws://h/#frag", "fragment"),
        ("ws://h/#", "fragment"),
        ("ws:///path", "no host"),
        ("ws://", "no host"),
        ("ws://h:0/", "port 0"),
        ("ws://h:99999/", "port"),
        ("ws://h:abc/", "port"),
        ("ws://h/\n", "control"),
        ("ws://h\t/", "control"),
        ("ws://ex ample.com/", "host"),
        ("ws://exa$mple.com/", "host"),
        ("ws://[::g]/", "IPv6"),
    ],
)
def test_invalid_uri(uri: str, reason: str) -> None:
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.uri == uri
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://proxy:3128", ProxyURI("http", "proxy", 3128)),
        ("http://proxy", ProxyURI("http", "proxy", 80)),
        ("http://proxy/", ProxyURI("http", "proxy", 80)),
        ("https://proxy", ProxyURI("https", "proxy", 443)),
        ("socks5://proxy", ProxyURI("socks5", "proxy", 1080)),
        ("SOCKS5H://u:p%21@proxy:9050", ProxyURI("socks5h", "proxy", 9050, "u", "p!")),
        ("proxy.corp:8080", ProxyURI("http", "proxy.corp", 8080)),
        ("socks5://[::1]:1081", ProxyURI("socks5", "::1", 1081)),
    ],
)
def test_parse_proxy_uri(uri: str, expected: ProxyURI) -> None:
    assert parse_proxy_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("socks4://proxy", "proxy scheme"),
        ("ws://proxy", "proxy scheme"),
        ("http://proxy/path", "no path"),
        ("http://proxy/?q", "no path"),
        ("http://:8080", "no host"),
    ],
)
def test_invalid_proxy_uri(uri: str, reason: str) -> None:
    with pytest.raises(InvalidURI, match=reason):
        parse_proxy_uri(uri)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/other", "ws://h:8000/other"),
        ("other", "ws://h:8000/dir/other"),
        ("../up?x=1", "ws://h:8000/up?x=1"),
        ("ws://else.example/", "ws://else.example/"),
        ("http://else.example/x", "ws://else.example/x"),
        ("https://else.example/x", "wss://else.example/x"),
        ("//cdn.example:9000/p", "ws://cdn.example:9000/p"),
        ("/with#fragment", "ws://h:8000/with"),
    ],
)
def test_redirect_uri(location: str, expected: str) -> None:
    base = parse_uri("ws://user:pw@h:8000/dir/page?q=1")
    target = redirect_uri(base, location)
    assert str(target) == expected
    assert target.user is None


def test_redirect_uri_secure_base() -> None:
    assert redirect_uri(parse_uri("wss://h/a"), "/b") == parse_uri("wss://h/b")


def test_redirect_uri_invalid_target() -> None:
    with pytest.raises(InvalidURI, match="scheme"):
        redirect_uri(parse_uri("ws://h/"), "ftp://x/")
