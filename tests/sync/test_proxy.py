"""wskit.sync.proxy: the blocking client through real tinyproxy and microsocks.

The fixtures that start the proxies are those of the asyncio client's tests
(``tests/proxies.py``); each test checks the round trip and that the
client's socket really is connected to the proxy.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest

import wskit
from conftest import unused_port
from proxies import Microsocks, Tinyproxy, tls_contexts
from wskit.protocol.uri import parse_proxy_uri
from wskit.sync import connect
from wskit.sync.proxy import open_tunnel

from .conftest import ServerThread, echo

StartServer = Callable[..., ServerThread]


def round_trip(conn: wskit.sync.ClientConn) -> None:
    conn.send("through the proxy")
    assert conn.recv() == "through the proxy"
    conn.send(b"\x00" * 100_000)
    assert conn.recv() == b"\x00" * 100_000


def test_http_connect_through_tinyproxy(
    wskit_server: StartServer, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    server = wskit_server(echo)
    proxy = start_tinyproxy()
    with connect(server.uri, proxy=proxy.uri) as conn:
        assert conn.remote_address[1] == proxy.port
        round_trip(conn)
    assert f"127.0.0.1:{server.port}" in proxy.log_text()


def test_http_connect_with_credentials(
    wskit_server: StartServer, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    server = wskit_server(echo)
    proxy = start_tinyproxy(basic_auth=("alice", "s3cret"))
    with connect(server.uri, proxy=f"http://alice:s3cret@127.0.0.1:{proxy.port}") as conn:
        round_trip(conn)
    with pytest.raises(wskit.ProxyError, match="proxy authentication required"):
        connect(server.uri, proxy=proxy.uri)


def test_wss_through_tinyproxy(
    wskit_server: StartServer, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    server_ctx, client_ctx = tls_contexts()
    server = wskit_server(echo, ssl=server_ctx)
    proxy = start_tinyproxy()
    with connect(f"wss://localhost:{server.port}/", ssl=client_ctx, proxy=proxy.uri) as conn:
        assert isinstance(conn.sock, ssl.SSLSocket)
        assert conn.remote_address[1] == proxy.port
        round_trip(conn)


def test_proxy_refusals(start_tinyproxy: Callable[..., Tinyproxy]) -> None:
    proxy = start_tinyproxy(connect_ports=(443,))
    with pytest.raises(wskit.ProxyError, match="refused CONNECT"):
        connect(f"ws://127.0.0.1:{unused_port()}/", proxy=proxy.uri)
    with pytest.raises(wskit.ProxyError, match="cannot connect to proxy"):
        connect("ws://127.0.0.1:1/", proxy=f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(wskit.ProxyError, match="HTTPS proxies"):
        connect("ws://127.0.0.1:1/", proxy="https://127.0.0.1:3128")


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_through_microsocks(
    scheme: str, wskit_server: StartServer, start_microsocks: Callable[..., Microsocks]
) -> None:
    server = wskit_server(echo)
    proxy = start_microsocks(user="bob", password="p@ss")
    with connect(f"ws://localhost:{server.port}/", proxy=proxy.uri(scheme, "bob:p%40ss")) as conn:
        assert conn.remote_address[1] == proxy.port
        round_trip(conn)
    with pytest.raises(wskit.ProxyError, match="refused the user name or password"):
        connect(server.uri, proxy=proxy.uri(scheme, "bob:wrong"))


def test_socks5_target_refused(start_microsocks: Callable[..., Microsocks]) -> None:
    proxy = start_microsocks()
    with pytest.raises(wskit.ProxyError, match="connection refused"):
        connect(f"ws://127.0.0.1:{unused_port()}/", proxy=proxy.uri())


def test_proxy_from_the_environment(
    wskit_server: StartServer,
    start_tinyproxy: Callable[..., Tinyproxy],
    clean_env: pytest.MonkeyPatch,
) -> None:
    server = wskit_server(echo)
    proxy = start_tinyproxy()
    clean_env.setenv("http_proxy", proxy.uri)
    with connect(server.uri, proxy=True) as conn:
        assert conn.remote_address[1] == proxy.port
    with connect(server.uri) as conn:  # proxy=None ignores the environment
        assert conn.remote_address[1] == server.port


def test_open_tunnel_returns_a_blocking_socket_with_the_timeout(
    wskit_server: StartServer, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    server = wskit_server(echo)
    proxy = start_tinyproxy()
    sock = open_tunnel(parse_proxy_uri(proxy.uri), "127.0.0.1", server.port, timeout=5)
    try:
        assert sock.getblocking()
        assert sock.gettimeout() is not None
        assert sock.getpeername()[1] == proxy.port
    finally:
        sock.close()
