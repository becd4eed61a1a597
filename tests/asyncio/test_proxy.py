"""Connecting through proxies: real tinyproxy (HTTP CONNECT) and microsocks (SOCKS5).

Each test starts its own proxy process on a free port (the fixtures of
``tests/proxies.py``) and a wskit echo server,
then checks that messages make the round trip *and* that the client's socket
really is connected to the proxy (its peer address is the proxy's).  A few
scripted fake proxies cover what the real ones cannot be made to do: odd
replies, bytes after the CONNECT response, silence.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import wskit
from conftest import unused_port
from proxies import Microsocks, Tinyproxy, tls_contexts
from wskit.asyncio.proxy import open_tunnel
from wskit.protocol.uri import parse_proxy_uri


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


async def round_trip(conn: wskit.ClientConn, message: str = "hello through the proxy") -> None:
    await conn.send(message)
    assert await conn.recv() == message
    await conn.send(message.encode())
    assert await conn.recv() == message.encode()


@pytest.fixture
async def server() -> AsyncIterator[wskit.Server]:
    async with wskit.serve(echo, "127.0.0.1", 0) as srv:
        yield srv


# --------------------------------------------------------------------------- HTTP CONNECT


async def test_http_connect_through_tinyproxy(
    server: wskit.Server, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    proxy = start_tinyproxy()
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/", proxy=proxy.uri) as conn:
        assert conn.remote_address[1] == proxy.port
        await round_trip(conn)
    assert f"CONNECT 127.0.0.1:{server.port}" in proxy.log_text()


async def test_http_connect_with_host_name(
    server: wskit.Server, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    proxy = start_tinyproxy()
    async with wskit.connect(f"ws://localhost:{server.port}/", proxy=proxy.uri) as conn:
        await round_trip(conn)
    # The name, not an address: the proxy resolves it.
    assert f"CONNECT localhost:{server.port}" in proxy.log_text()


async def test_http_connect_basic_auth(
    server: wskit.Server, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    proxy = start_tinyproxy(basic_auth=("alice", "s3cret"))
    uri = f"ws://127.0.0.1:{server.port}/"
    authed = f"http://alice:s3cret@127.0.0.1:{proxy.port}"
    async with wskit.connect(uri, proxy=authed) as conn:
        assert conn.remote_address[1] == proxy.port
        await round_trip(conn)

    with pytest.raises(wskit.ProxyError, match="407") as info:
        await wskit.connect(uri, proxy=proxy.uri)
    assert "authentication required" in str(info.value)

    # tinyproxy answers wrong credentials with 401 rather than 407.
    with pytest.raises(wskit.ProxyError, match=r"40[17]") as info:
        await wskit.connect(uri, proxy=f"http://alice:wrong@127.0.0.1:{proxy.port}")
    assert "refused the credentials" in str(info.value)
    # Credentials never end up in the message.
    assert "wrong" not in str(info.value)


async def test_http_connect_refused_port(
    server: wskit.Server, start_tinyproxy: Callable[..., Tinyproxy]
) -> None:
    proxy = start_tinyproxy(connect_ports=(443,))
    with pytest.raises(wskit.ProxyError, match=r"HTTP/1\.[01] 403") as info:
        await wskit.connect(f"ws://127.0.0.1:{server.port}/", proxy=proxy.uri)
    assert f"CONNECT 127.0.0.1:{server.port}" in str(info.value)
    assert server.connections == set()


async def test_http_connect_target_down(start_tinyproxy: Callable[..., Tinyproxy]) -> None:
    proxy = start_tinyproxy()
    with pytest.raises(wskit.ProxyError, match="500"):
        await wskit.connect(f"ws://127.0.0.1:{unused_port()}/", proxy=proxy.uri)


async def test_wss_through_http_proxy(
    start_tinyproxy: Callable[..., Tinyproxy], tmp_path: Path
) -> None:
    server_ctx, client_ctx = tls_contexts()
    proxy = start_tinyproxy()
    async with wskit.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as srv:
        uri = f"wss://localhost:{srv.port}/"
        async with wskit.connect(uri, proxy=proxy.uri, ssl=client_ctx) as conn:
            assert conn.remote_address[1] == proxy.port
            assert conn.transport is not None
            assert conn.transport.get_extra_info("ssl_object") is not None
            await round_trip(conn)
        # The proxy only ever saw the CONNECT line, then opaque TLS.
        log = proxy.log_text()
        assert f"CONNECT localhost:{srv.port}" in log
        assert "GET /" not in log

        # TLS is end to end: a client that does not trust the CA still fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            await wskit.connect(uri, proxy=proxy.uri, ssl=ssl.create_default_context())


async def test_https_proxy_is_refused_clearly() -> None:
    with pytest.raises(wskit.ProxyError, match="HTTPS proxies"):
        await wskit.connect("ws://127.0.0.1:1/", proxy="https://127.0.0.1:3128")


async def test_unreachable_proxy() -> None:
    port = unused_port()
    with pytest.raises(wskit.ProxyError, match=f"cannot connect to proxy .*:{port}") as info:
        await wskit.connect("ws://127.0.0.1:1/", proxy=f"http://127.0.0.1:{port}")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


# --------------------------------------------------------------------------- SOCKS5


async def test_socks5_through_microsocks(
    server: wskit.Server, start_microsocks: Callable[..., Microsocks]
) -> None:
    proxy = start_microsocks()
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/", proxy=proxy.uri()) as conn:
        assert conn.remote_address == ("127.0.0.1", proxy.port)
        await round_trip(conn)


async def test_socks5_resolves_locally_and_socks5h_remotely(
    server: wskit.Server, start_microsocks: Callable[..., Microsocks]
) -> None:
    proxy = start_microsocks()
    for scheme in ("socks5", "socks5h"):
        uri = f"ws://localhost:{server.port}/"
        async with wskit.connect(uri, proxy=proxy.uri(scheme)) as conn:
            assert conn.remote_address[1] == proxy.port
            # The Host header is still the URI's, whoever resolved the name.
            assert conn.request is not None
            assert conn.request.headers["Host"] == f"localhost:{server.port}"
            await round_trip(conn)


async def test_socks5_over_ipv6(start_microsocks: Callable[..., Microsocks]) -> None:
    proxy = start_microsocks(host="::1")
    async with wskit.serve(echo, "::1", 0) as srv:
        uri = f"ws://[::1]:{srv.port}/"
        async with wskit.connect(uri, proxy=proxy.uri()) as conn:
            assert conn.remote_address[:2] == ("::1", proxy.port)
            await round_trip(conn)


async def test_socks5_username_password(
    server: wskit.Server, start_microsocks: Callable[..., Microsocks]
) -> None:
    proxy = start_microsocks(user="bob", password="p@ss:word")
    uri = f"ws://127.0.0.1:{server.port}/"
    # Reserved characters in the password are percent-encoded in the URI.
    async with wskit.connect(uri, proxy=proxy.uri("socks5", "bob:p%40ss%3Aword")) as conn:
        await round_trip(conn)

    with pytest.raises(wskit.ProxyError, match="refused the user name or password"):
        await wskit.connect(uri, proxy=proxy.uri("socks5", "bob:nope"))

    with pytest.raises(wskit.ProxyError, match="requires authentication"):
        await wskit.connect(uri, proxy=proxy.uri("socks5"))


async def test_socks5_target_refused(start_microsocks: Callable[..., Microsocks]) -> None:
    proxy = start_microsocks()
    with pytest.raises(wskit.ProxyError, match="connection refused"):
        await wskit.connect(f"ws://127.0.0.1:{unused_port()}/", proxy=proxy.uri())


# --------------------------------------------------------------------------- environment


async def test_proxy_true_reads_http_proxy(
    server: wskit.Server, start_tinyproxy: Callable[..., Tinyproxy], clean_env: pytest.MonkeyPatch
) -> None:
    proxy = start_tinyproxy()
    clean_env.setenv("http_proxy", proxy.uri)
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/", proxy=True) as conn:
        assert conn.remote_address[1] == proxy.port
        await round_trip(conn)
    assert f"CONNECT 127.0.0.1:{server.port}" in proxy.log_text()


async def test_proxy_true_reads_all_proxy(
    server: wskit.Server,
    start_microsocks: Callable[..., Microsocks],
    clean_env: pytest.MonkeyPatch,
) -> None:
    proxy = start_microsocks()
    clean_env.setenv("all_proxy", proxy.uri("socks5h"))
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/", proxy=True) as conn:
        assert conn.remote_address[1] == proxy.port
        await round_trip(conn)


async def test_proxy_true_uses_https_proxy_for_wss(
    start_tinyproxy: Callable[..., Tinyproxy], clean_env: pytest.MonkeyPatch
) -> None:
    server_ctx, client_ctx = tls_contexts()
    proxy = start_tinyproxy()
    # https_proxy names the proxy for wss:// targets (it is still spoken to in
    # plain HTTP); http_proxy, which points nowhere, must not be used.
    clean_env.setenv("https_proxy", proxy.uri)
    clean_env.setenv("http_proxy", f"http://127.0.0.1:{unused_port()}")
    async with wskit.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as srv:
        port = srv.port
        async with wskit.connect(f"wss://localhost:{port}/", proxy=True, ssl=client_ctx) as conn:
            assert conn.remote_address[1] == proxy.port
            await round_trip(conn)
    assert f"CONNECT localhost:{port}" in proxy.log_text()


async def test_proxy_true_no_proxy_bypass(
    server: wskit.Server, clean_env: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{unused_port()}"
    clean_env.setenv("http_proxy", dead)
    uri = f"ws://127.0.0.1:{server.port}/"
    # Proof that the dead proxy is really used when not bypassed.
    with pytest.raises(wskit.ProxyError, match="cannot connect to proxy"):
        await wskit.connect(uri, proxy=True)

    clean_env.setenv("no_proxy", "example.com,127.0.0.1")
    async with wskit.connect(uri, proxy=True) as conn:
        assert conn.remote_address[1] == server.port
        await round_trip(conn)


async def test_proxy_true_without_environment_connects_directly(
    server: wskit.Server, clean_env: pytest.MonkeyPatch
) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/", proxy=True) as conn:
        assert conn.remote_address[1] == server.port


async def test_proxy_none_ignores_environment(
    server: wskit.Server, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("http_proxy", f"http://127.0.0.1:{unused_port()}")
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as conn:
        assert conn.remote_address[1] == server.port


# --------------------------------------------------------------------------- fake proxies

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class FakeProxy:
    port: int
    received: bytearray
    eof: asyncio.Event


StartFake = Callable[..., Awaitable[FakeProxy]]


@pytest.fixture
async def fake_proxy() -> AsyncIterator[StartFake]:
    servers: list[asyncio.Server] = []

    async def start(script: Script, host: str = "127.0.0.1") -> FakeProxy:
        received = bytearray()
        eof = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            original_read = reader.read

            async def recording_read(n: int = -1) -> bytes:
                data = await original_read(n)
                received.extend(data)
                return data

            reader.read = recording_read  # type: ignore[method-assign]
            try:
                await script(reader, writer)
                # Then wait for the client to hang up.
                while await reader.read(4096):
                    pass
                eof.set()
            except (ConnectionError, asyncio.CancelledError):
                eof.set()
            finally:
                writer.close()

        srv = await asyncio.start_server(handle, host, 0)
        servers.append(srv)
        return FakeProxy(srv.sockets[0].getsockname()[1], received, eof)

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await reader.read(n - len(data))
        assert chunk
        data += chunk
    return data


async def read_head(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(1)
        assert chunk
        data += chunk
    return data


def socks5_script(reply: bytes) -> Script:
    """Accept no-auth, read the CONNECT request, answer ``reply``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greeting = await read_exactly(reader, 2)
        await read_exactly(reader, greeting[1])
        writer.write(b"\x05\x00")
        head = await read_exactly(reader, 4)
        if head[3] == 1:
            await read_exactly(reader, 4 + 2)
        elif head[3] == 4:
            await read_exactly(reader, 16 + 2)
        else:
            length = (await read_exactly(reader, 1))[0]
            await read_exactly(reader, length + 2)
        writer.write(reply)

    return script


SOCKS5_OK = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"


async def test_socks5h_sends_the_domain_name(
    fake_proxy: StartFake,
) -> None:
    proxy = await fake_proxy(socks5_script(SOCKS5_OK))
    sock = await open_tunnel(parse_proxy_uri(f"socks5h://127.0.0.1:{proxy.port}"), "localhost", 80)
    sock.close()
    await asyncio.wait_for(proxy.eof.wait(), 5)
    assert bytes(proxy.received) == b"\x05\x01\x00" + b"\x05\x01\x00\x03\x09localhost\x00\x50"


async def test_socks5_sends_the_resolved_address(
    fake_proxy: StartFake,
) -> None:
    proxy = await fake_proxy(socks5_script(SOCKS5_OK))
    sock = await open_tunnel(parse_proxy_uri(f"socks5://127.0.0.1:{proxy.port}"), "localhost", 443)
    sock.close()
    await asyncio.wait_for(proxy.eof.wait(), 5)
    assert bytes(proxy.received) == b"\x05\x01\x00" + b"\x05\x01\x00\x01\x7f\x00\x00\x01\x01\xbb"


async def test_socks5_ipv6_target_and_proxy(
    fake_proxy: StartFake,
) -> None:
    reply = b"\x05\x00\x00\x04" + bytes(15) + b"\x01" + b"\x00\x50"
    proxy = await fake_proxy(socks5_script(reply), "::1")
    # Both flavours send an IP literal as an address, never as a name.
    for scheme in ("socks5", "socks5h"):
        proxy.received.clear()
        proxy.eof.clear()
        sock = await open_tunnel(parse_proxy_uri(f"{scheme}://[::1]:{proxy.port}"), "::1", 80)
        assert sock.family == socket.AF_INET6
        sock.close()
        await asyncio.wait_for(proxy.eof.wait(), 5)
        assert bytes(proxy.received)[3:] == b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x50"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0x01, "general SOCKS server failure"),
        (0x02, "not allowed by ruleset"),
        (0x03, "network unreachable"),
        (0x04, "host unreachable"),
        (0x05, "connection refused"),
        (0x06, "TTL expired"),
        (0x07, "command not supported"),
        (0x08, "address type not supported"),
        (0x42, "unknown error"),
    ],
)
async def test_socks5_reply_codes(fake_proxy: StartFake, code: int, text: str) -> None:
    reply = bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])
    proxy = await fake_proxy(socks5_script(reply))
    with pytest.raises(wskit.ProxyError, match=text) as info:
        await open_tunnel(parse_proxy_uri(f"socks5://127.0.0.1:{proxy.port}"), "10.0.0.1", 80)
    assert f"{code:#04x}" in str(info.value)
    assert "10.0.0.1:80" in str(info.value)
    # The socket was closed on failure.
    await asyncio.wait_for(proxy.eof.wait(), 5)


async def test_socks5_not_a_socks_server(
    fake_proxy: StartFake,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(3)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    proxy = await fake_proxy(script)
    with pytest.raises(wskit.ProxyError, match="not a SOCKS5 server"):
        await open_tunnel(parse_proxy_uri(f"socks5://127.0.0.1:{proxy.port}"), "10.0.0.1", 80)


async def test_socks5_proxy_hangs_up_mid_reply(
    fake_proxy: StartFake,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(3)
        writer.write(b"\x05")
        await writer.drain()
        writer.close()

    proxy = await fake_proxy(script)
    with pytest.raises(wskit.ProxyError, match="closed the connection"):
        await open_tunnel(parse_proxy_uri(f"socks5://127.0.0.1:{proxy.port}"), "10.0.0.1", 80)


async def test_socks5_unresolvable_target() -> None:
    # Resolution happens before anything is sent, so no proxy is needed.
    with pytest.raises(wskit.ProxyError, match="cannot resolve"):
        await open_tunnel(parse_proxy_uri("socks5://127.0.0.1:1"), "does-not-exist.invalid", 80)


async def test_http_connect_request_format(
    fake_proxy: StartFake,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 Connection established\r\nX-Extra: 1\r\n\r\n")

    proxy = await fake_proxy(script)
    uri = parse_proxy_uri(f"http://us%C3%A9r:p%3Ass@127.0.0.1:{proxy.port}")
    sock = await open_tunnel(uri, "::1", 8443)
    assert not sock.getblocking()
    sock.close()
    await asyncio.wait_for(proxy.eof.wait(), 5)
    credentials = base64.b64encode("usér:p:ss".encode()).decode()
    assert bytes(proxy.received) == (
        b"CONNECT [::1]:8443 HTTP/1.1\r\n"
        b"Host: [::1]:8443\r\n"
        b"Proxy-Authorization: Basic " + credentials.encode() + b"\r\n\r\n"
    )


async def test_http_connect_tunnel_carries_bytes_both_ways(
    fake_proxy: StartFake,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        # Bare LF line endings are tolerated.
        writer.write(b"HTTP/1.0 200 OK\n\n")
        data = await read_exactly(reader, 4)
        writer.write(data[::-1])

    proxy = await fake_proxy(script)
    sock = await open_tunnel(parse_proxy_uri(f"http://127.0.0.1:{proxy.port}"), "example", 1)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, b"abcd")
        assert await asyncio.wait_for(loop.sock_recv(sock, 4), 5) == b"dcba"
    finally:
        sock.close()


async def test_http_connect_bytes_after_response(
    fake_proxy: StartFake,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nsurprise")

    proxy = await fake_proxy(script)
    with pytest.raises(wskit.ProxyError, match="8 unexpected bytes"):
        await open_tunnel(parse_proxy_uri(f"http://127.0.0.1:{proxy.port}"), "example", 1)
    await asyncio.wait_for(proxy.eof.wait(), 5)


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n", "HTTP/1.1 302 Found"),
        (b"HTTP/1.1 200 OK\r\nX: y", "closed the connection in the middle"),
        (b"", "without answering"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70000, "over 65536 bytes"),
    ],
)
async def test_http_connect_bad_answers(fake_proxy: StartFake, answer: bytes, match: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(answer)
        await writer.drain()
        if not answer.endswith(b"\r\n\r\n"):
            writer.close()

    proxy = await fake_proxy(script)
    with pytest.raises(wskit.ProxyError, match=match):
        await open_tunnel(parse_proxy_uri(f"http://127.0.0.1:{proxy.port}"), "example", 1)


async def test_silent_proxy_times_out_and_socket_is_closed(
    fake_proxy: StartFake,
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)  # and never answer

    proxy = await fake_proxy(script)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await wskit.connect(
            "ws://127.0.0.1:1/", proxy=f"http://127.0.0.1:{proxy.port}", open_timeout=0.5
        )
    assert time.monotonic() - start < 5
    # Cancellation closed the socket to the proxy: the proxy sees EOF.
    await asyncio.wait_for(proxy.eof.wait(), 5)


async def test_a_proxy_that_cannot_be_reached_is_a_handshake_error() -> None:
    # ProxyError sits under InvalidHandshake: one except clause around
    # connect() sees a failed proxy and a refused WebSocket handshake.
    proxy = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(wskit.InvalidHandshake) as info:
        await wskit.connect(f"ws://127.0.0.1:{unused_port()}/", proxy=proxy)
    assert isinstance(info.value, wskit.ProxyError)
    assert "cannot connect to proxy" in str(info.value)
