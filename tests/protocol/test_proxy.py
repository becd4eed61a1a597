"""wskit.protocol.proxy: the proxy negotiations in memory, byte by byte.

The real proxies (tinyproxy, microsocks) are driven through both clients in
tests/asyncio/test_proxy.py and tests/sync/test_proxy.py.
"""

from __future__ import annotations

import base64

import pytest

from wskit.exceptions import ProxyError
from wskit.protocol.proxy import MAX_RESPONSE_HEAD, ProxyHandshake, describe_proxy, needs_resolution
from wskit.protocol.uri import parse_proxy_uri


def feed(handshake: ProxyHandshake, reply: bytes) -> None:
    """Feed ``reply`` as a socket would: never more than ``bytes_wanted`` at once."""
    while reply and not handshake.done:
        wanted = handshake.bytes_wanted
        assert wanted > 0
        chunk, reply = reply[:wanted], reply[wanted:]
        handshake.receive_data(chunk)
    assert not reply, "the handshake was done before the reply ended"


def test_http_connect_request_and_success() -> None:
    proxy = parse_proxy_uri("http://us%C3%A9r:p%3Ass@proxy:3128")
    handshake = ProxyHandshake(proxy, "::1", 8443)
    credentials = base64.b64encode("usér:p:ss".encode()).decode()
    assert handshake.data_to_send() == (
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"
        b"Proxy-Authorization: Basic " + credentials.encode() + b"\r\n\r\n"
    )
    assert handshake.data_to_send() == b""
    feed(handshake, b"HTTP/1.1 200 Connection established\r\nX: 1\r\n\r\n")
    assert handshake.done
    assert handshake.bytes_wanted == 0


def test_http_connect_reply_in_single_bytes_with_bare_lf() -> None:
    handshake = ProxyHandshake(parse_proxy_uri("http://proxy:3128"), "example", 80)
    for byte in b"HTTP/1.0 200 OK\n\n":
        assert not handshake.done
        handshake.receive_data(bytes([byte]))
    assert handshake.done


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "authentication required"),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", "refused CONNECT example:80: HTTP/1.1 403"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\n\r\nsurprise", "8 unexpected bytes"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * MAX_RESPONSE_HEAD, "over 65536 bytes"),
    ],
)
def test_http_connect_failures(reply: bytes, match: str) -> None:
    handshake = ProxyHandshake(parse_proxy_uri("http://proxy:3128"), "example", 80)
    with pytest.raises(ProxyError, match=match):
        feed(handshake, reply)


def test_http_connect_eof() -> None:
    handshake = ProxyHandshake(parse_proxy_uri("http://proxy:3128"), "example", 80)
    with pytest.raises(ProxyError, match="without answering"):
        handshake.receive_data(b"")
    handshake = ProxyHandshake(parse_proxy_uri("http://proxy:3128"), "example", 80)
    handshake.receive_data(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProxyError, match="in the middle of its response"):
        handshake.receive_data(b"")


def test_socks5_no_auth_with_a_domain_name() -> None:
    handshake = ProxyHandshake(parse_proxy_uri("socks5h://proxy:1080"), "localhost", 80)
    assert handshake.data_to_send() == b"\x05\x01\x00"
    assert handshake.bytes_wanted == 2
    handshake.receive_data(b"\x05\x00")
    assert handshake.data_to_send() == b"\x05\x01\x00\x03\x09localhost\x00\x50"
    # The reply is read exactly: its bound address, never a byte of the tunnel.
    feed(handshake, b"\x05\x00\x00\x03\x04host\x00\x50")
    assert handshake.done


def test_socks5_resolved_locally_and_authenticated() -> None:
    proxy = parse_proxy_uri("socks5://bob:pw@proxy:1080")
    assert needs_resolution(proxy, "localhost")
    assert not needs_resolution(proxy, "127.0.0.1")
    assert not needs_resolution(parse_proxy_uri("socks5h://proxy:1080"), "localhost")
    handshake = ProxyHandshake(proxy, "localhost", 443, resolved="::1")
    assert handshake.data_to_send() == b"\x05\x02\x00\x02"
    handshake.receive_data(b"\x05\x02")
    assert handshake.data_to_send() == b"\x01\x03bob\x02pw"
    handshake.receive_data(b"\x01\x00")
    assert handshake.data_to_send() == b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x01\xbb"
    feed(handshake, b"\x05\x00\x00\x01\x7f\x00\x00\x01\x01\xbb")
    assert handshake.done


def test_socks5_needs_the_resolved_address() -> None:
    with pytest.raises(ValueError, match="needs_resolution"):
        ProxyHandshake(parse_proxy_uri("socks5://proxy:1080"), "localhost", 80)


@pytest.mark.parametrize(
    ("greeting", "match"),
    [
        (b"HT", "not a SOCKS5 server"),
        (b"\x05\xff", "requires authentication"),
        (b"\x05\x02", "chose auth method 0x02, not offered"),
    ],
)
def test_socks5_greeting_failures(greeting: bytes, match: str) -> None:
    handshake = ProxyHandshake(parse_proxy_uri("socks5h://proxy:1080"), "example", 80)
    with pytest.raises(ProxyError, match=match):
        handshake.receive_data(greeting)


def test_socks5_refusal_names_the_target_and_code() -> None:
    handshake = ProxyHandshake(parse_proxy_uri("socks5h://proxy:1080"), "10.0.0.1", 80)
    handshake.receive_data(b"\x05\x00")
    with pytest.raises(ProxyError, match=r"10\.0\.0\.1:80: connection refused \(reply 0x05\)"):
        feed(handshake, b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")


def test_socks5_eof_mid_reply() -> None:
    handshake = ProxyHandshake(parse_proxy_uri("socks5h://proxy:1080"), "example", 80)
    handshake.receive_data(b"\x05")
    with pytest.raises(ProxyError, match="closed the connection in the middle"):
        handshake.receive_data(b"")


def test_refused_before_any_byte() -> None:
    with pytest.raises(ProxyError, match="HTTPS proxies"):
        ProxyHandshake(parse_proxy_uri("https://proxy:3128"), "example", 80)
    with pytest.raises(ProxyError, match="too long"):
        ProxyHandshake(parse_proxy_uri("socks5h://proxy:1080"), "a" * 256, 80)
    with pytest.raises(ProxyError, match="IDNA"):
        ProxyHandshake(parse_proxy_uri("socks5h://proxy:1080"), "é.example", 80)


def test_bytes_after_the_tunnel_opened_are_refused() -> None:
    handshake = ProxyHandshake(parse_proxy_uri("http://proxy:3128"), "example", 80)
    feed(handshake, b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(ProxyError, match="after the tunnel was open"):
        handshake.receive_data(b"x")


def test_describe_proxy_hides_credentials() -> None:
    assert describe_proxy(parse_proxy_uri("socks5://u:p@[::1]:1080")) == "socks5://[::1]:1080"
