"""The asyncio client, :func:`wskit.connect`, against wskit servers and raw sockets.

Redirects, Unix sockets, the handshake headers the client sends, subprotocol
negotiation, timeouts and rejected handshakes.
"""

from __future__ import annotations

import asyncio
import base64
import http.cookiejar
import logging
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import wskit
from proxies import tls_contexts
from wskit.protocol.handshake import USER_AGENT


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


@dataclass
class Recorder:
    """A wskit server handler that keeps every handshake request it accepted."""

    requests: list[wskit.Request] = field(default_factory=list)
    subprotocols: list[str | None] = field(default_factory=list)

    async def __call__(self, conn: wskit.Conn) -> None:
        assert conn.request is not None
        self.requests.append(conn.request)
        self.subprotocols.append(conn.subprotocol)
        await echo(conn)

    @property
    def last(self) -> wskit.Request:
        assert self.requests
        return self.requests[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(recorder: Recorder) -> AsyncIterator[wskit.Server]:
    async with wskit.serve(recorder, "127.0.0.1", 0) as srv:
        yield srv


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to about 100 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="wsk") as name:
        yield Path(name)


# --------------------------------------------------------------------------- raw servers


@dataclass
class RawServer:
    """A plain asyncio server that answers every request with a fixed response."""

    port: int
    heads: list[bytes]


RawStarter = Callable[..., Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawStarter]:
    servers: list[asyncio.Server] = []

    async def start(
        answer: Callable[[int], bytes] | bytes | None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> RawServer:
        """``answer`` is the response (a function of this server's port), or None: silence."""
        heads: list[bytes] = []
        port = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                if answer is None:
                    await reader.read()  # until the client gives up
                    return
                writer.write(answer(port) if callable(answer) else answer)
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return RawServer(port, heads)

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


def redirect_to(location: str, status: str = "302 Found") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nLocation: {location}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()


# --------------------------------------------------------------------------- dial


@dataclass
class CountingDial:
    """A ``dial`` for :func:`wskit.connect` that records where it was asked to connect."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    local_addresses: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> socket.socket:
        self.calls.append((host, port))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        self.local_addresses.append(sock.getsockname())
        return sock


async def test_dial_is_called_once_per_attempt_redirects_included(recorder: Recorder) -> None:
    def process_request(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        if request.path == "/old":
            return wskit.Response(302, "Found", wskit.Headers([("Location", "/new")]))
        return None

    dial = CountingDial()
    async with (
        wskit.serve(recorder, "127.0.0.1", 0, process_request=process_request) as srv,
        wskit.connect(f"ws://127.0.0.1:{srv.port}/old", dial=dial) as conn,
    ):
        await conn.send("dialled")
        assert await conn.recv() == "dialled"
        assert conn.transport is not None
        # The connection runs on the socket the last dial made.
        assert conn.transport.get_extra_info("sockname") == dial.local_addresses[-1]
        port = srv.port
    assert dial.calls == [("127.0.0.1", port), ("127.0.0.1", port)]
    assert [r.target for r in recorder.requests] == ["/new"]


async def test_dial_errors_reach_the_caller() -> None:
    async def broken(host: str, port: int) -> socket.socket:
        raise ConnectionRefusedError(f"no route to {host}:{port} today")

    with pytest.raises(ConnectionRefusedError, match=r"no route to 127\.0\.0\.1:9 "):
        await wskit.connect("ws://127.0.0.1:9/", dial=broken)


def test_dial_with_sock_or_unix_path_is_refused() -> None:
    async def dial(host: str, port: int) -> socket.socket:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="dial cannot be combined"):
        wskit.connect("ws://127.0.0.1/", dial=dial, unix_path="/tmp/x.sock")


@pytest.fixture
async def connect_proxy() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A minimal HTTP CONNECT proxy on 127.0.0.1: its port and the CONNECT heads it read."""
    heads: list[bytes] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        host, _, port = head.split()[1].decode().rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield proxy.sockets[0].getsockname()[1], heads
    proxy.close()
    await proxy.wait_closed()


async def test_dial_opens_the_connection_to_the_proxy(
    server: wskit.Server, connect_proxy: tuple[int, list[bytes]]
) -> None:
    proxy_port, heads = connect_proxy
    dial = CountingDial()
    async with wskit.connect(
        f"ws://127.0.0.1:{server.port}/", proxy=f"http://127.0.0.1:{proxy_port}", dial=dial
    ) as conn:
        await conn.send("tunnelled")
        assert await conn.recv() == "tunnelled"
    assert dial.calls == [("127.0.0.1", proxy_port)]
    assert heads[0].startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1".encode())


# --------------------------------------------------------------------------- auto_pong


@pytest.mark.parametrize("auto_pong", [True, False])
async def test_connect_auto_pong_option(auto_pong: bool) -> None:
    answered: list[bool] = []

    async def pinger(conn: wskit.Conn) -> None:
        pong = conn.ping(b"from the server")
        await conn.send("pinged")
        # The client read the ping before this message, and answered it, or not.
        assert await conn.recv() == "done"
        answered.append(pong.done())
        pong.cancel()

    async with (
        wskit.serve(pinger, "127.0.0.1", 0) as srv,
        wskit.connect(f"ws://127.0.0.1:{srv.port}/", auto_pong=auto_pong) as conn,
    ):
        assert conn.auto_pong is auto_pong
        assert await conn.recv() == "pinged"
        await conn.send("done")
        with pytest.raises(wskit.ConnectionClosedOK):
            await conn.recv()
    assert answered == [auto_pong]


# --------------------------------------------------------------------------- cookie jar


async def test_cookie_jar_sends_cookies_the_handshake_set(recorder: Recorder) -> None:
    def set_session(request: wskit.Request) -> list[tuple[str, str]]:
        if request.headers.get("Cookie") is None:
            return [("Set-Cookie", "session=s3cr3t; Path=/; HttpOnly")]
        return []

    jar = http.cookiejar.CookieJar()
    async with wskit.serve(recorder, "127.0.0.1", 0, extra_headers=set_session) as srv:
        async with wskit.connect(f"ws://127.0.0.1:{srv.port}/a", cookies=jar):
            pass
        assert [cookie.name for cookie in jar] == ["session"]
        async with wskit.connect(f"ws://127.0.0.1:{srv.port}/b", cookies=jar):
            pass
        # A connection without the jar sends no cookie.
        async with wskit.connect(f"ws://127.0.0.1:{srv.port}/c"):
            pass
    cookies = [r.headers.get("Cookie") for r in recorder.requests]
    assert cookies == [None, "session=s3cr3t", None]


async def test_cookie_jar_stores_cookies_of_a_redirect(recorder: Recorder) -> None:
    def process_request(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        if request.path == "/login":
            headers = [("Location", "/app"), ("Set-Cookie", "token=t1; Path=/")]
            return wskit.Response(302, "Found", wskit.Headers(headers))
        if request.headers.get("Cookie") != "token=t1":
            return wskit.Response(401, "Unauthorized", wskit.Headers())
        return None

    jar = http.cookiejar.CookieJar()
    async with wskit.serve(recorder, "127.0.0.1", 0, process_request=process_request) as srv:
        async with wskit.connect(f"ws://127.0.0.1:{srv.port}/login", cookies=jar) as conn:
            await conn.send("in")
            assert await conn.recv() == "in"
        # Without the jar the redirect's cookie is lost: the server refuses.
        with pytest.raises(wskit.HandshakeRejected) as refused:
            await wskit.connect(f"ws://127.0.0.1:{srv.port}/login")
        assert refused.value.status == 401
    assert [r.target for r in recorder.requests] == ["/app"]


async def test_cookie_jar_adds_to_a_given_cookie_header(recorder: Recorder) -> None:
    def set_b(request: wskit.Request) -> list[tuple[str, str]]:
        return [("Set-Cookie", "b=2; Path=/")]

    jar = http.cookiejar.CookieJar()
    async with wskit.serve(recorder, "127.0.0.1", 0, extra_headers=set_b) as srv:
        for _ in range(2):
            async with wskit.connect(
                f"ws://127.0.0.1:{srv.port}/", cookies=jar, headers={"Cookie": "a=1"}
            ):
                pass
    assert [r.headers.get_all("Cookie") for r in recorder.requests] == [["a=1"], ["a=1; b=2"]]


async def test_secure_cookie_goes_to_wss_only(recorder: Recorder) -> None:
    def set_secure(request: wskit.Request) -> list[tuple[str, str]]:
        return [("Set-Cookie", "s=1; Path=/; Secure")]

    jar = http.cookiejar.CookieJar()
    async with wskit.serve(recorder, "127.0.0.1", 0, extra_headers=set_secure) as srv:
        for _ in range(2):
            async with wskit.connect(f"ws://127.0.0.1:{srv.port}/", cookies=jar):
                pass
    assert len(jar) == 1
    assert [r.headers.get("Cookie") for r in recorder.requests] == [None, None]


# --------------------------------------------------------------------------- redirects


async def test_redirect_is_followed(
    raw_server: RawStarter, server: wskit.Server, recorder: Recorder
) -> None:
    redirector = await raw_server(redirect_to(f"ws://127.0.0.1:{server.port}/target?x=1"))
    async with wskit.connect(f"ws://127.0.0.1:{redirector.port}/start") as conn:
        await conn.send("after redirect")
        assert await conn.recv() == "after redirect"
        assert conn.remote_address[1] == server.port
    assert len(redirector.heads) == 1
    assert redirector.heads[0].startswith(b"GET /start HTTP/1.1\r\n")
    assert recorder.last.target == "/target?x=1"
    assert recorder.last.headers["Host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    "status",
    ["301 Moved Permanently", "303 See Other", "307 Temporary Redirect", "308 Permanent Redirect"],
)
async def test_redirect_statuses(
    raw_server: RawStarter, server: wskit.Server, recorder: Recorder, status: str
) -> None:
    # http:// in Location is mapped to ws://.
    redirector = await raw_server(redirect_to(f"http://127.0.0.1:{server.port}/s", status))
    async with wskit.connect(f"ws://127.0.0.1:{redirector.port}/"):
        pass
    assert recorder.last.target == "/s"


async def test_relative_redirect_on_same_server(recorder: Recorder) -> None:
    def process_request(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        if request.path == "/old":
            return wskit.Response(
                301, "Moved Permanently", wskit.Headers([("Location", "new?v=2")])
            )
        return None

    async with wskit.serve(recorder, "127.0.0.1", 0, process_request=process_request) as srv:
        conn = await wskit.connect(f"ws://127.0.0.1:{srv.port}/old")
        await conn.close()
    assert [r.target for r in recorder.requests] == ["/new?v=2"]


async def test_redirect_loop_is_bounded(raw_server: RawStarter) -> None:
    looper = await raw_server(lambda port: redirect_to(f"ws://127.0.0.1:{port}/again"))
    with pytest.raises(wskit.InvalidHandshake, match="more than 3 redirects"):
        await wskit.connect(f"ws://127.0.0.1:{looper.port}/", max_redirects=3)
    assert len(looper.heads) == 4


async def test_no_redirects_allowed(raw_server: RawStarter, server: wskit.Server) -> None:
    redirector = await raw_server(redirect_to(f"ws://127.0.0.1:{server.port}/"))
    with pytest.raises(wskit.InvalidHandshake, match="more than 0 redirects"):
        await wskit.connect(f"ws://127.0.0.1:{redirector.port}/", max_redirects=0)
    assert len(redirector.heads) == 1
    assert server.connections == set()


async def test_redirect_without_location_is_a_rejection(raw_server: RawStarter) -> None:
    answer = b"HTTP/1.1 302 Found\r\nContent-Length: 4\r\n\r\ngone"
    redirector = await raw_server(answer)
    with pytest.raises(wskit.HandshakeRejected) as info:
        await wskit.connect(f"ws://127.0.0.1:{redirector.port}/")
    assert info.value.status == 302
    assert info.value.body == b"gone"


async def test_redirect_wss_to_ws_is_refused(
    raw_server: RawStarter, server: wskit.Server, recorder: Recorder
) -> None:
    server_ctx, client_ctx = tls_contexts()
    redirector = await raw_server(
        redirect_to(f"ws://127.0.0.1:{server.port}/plain"), ssl_context=server_ctx
    )
    with pytest.raises(wskit.InvalidURI, match="wss:// to ws:// refused"):
        await wskit.connect(f"wss://localhost:{redirector.port}/", ssl=client_ctx)
    assert len(redirector.heads) == 1  # the TLS server was reached
    assert recorder.requests == []  # the plain one never was


async def test_redirect_ws_to_wss_is_allowed(raw_server: RawStarter, recorder: Recorder) -> None:
    server_ctx, client_ctx = tls_contexts()
    async with wskit.serve(recorder, "127.0.0.1", 0, ssl=server_ctx) as srv:
        redirector = await raw_server(redirect_to(f"wss://localhost:{srv.port}/secure"))
        async with wskit.connect(f"ws://127.0.0.1:{redirector.port}/", ssl=client_ctx) as conn:
            assert conn.transport is not None
            assert conn.transport.get_extra_info("ssl_object") is not None
            await conn.send("tls")
            assert await conn.recv() == "tls"
    assert recorder.last.target == "/secure"


# --------------------------------------------------------------------------- transports


async def test_unix_socket(recorder: Recorder, short_dir: Path) -> None:
    path = str(short_dir / "ws.sock")
    async with (
        wskit.serve(recorder, unix_path=path),
        wskit.connect("ws://localhost/unix?q", unix_path=path) as conn,
    ):
        await conn.send("over AF_UNIX")
        assert await conn.recv() == "over AF_UNIX"
        assert conn.transport is not None
        assert conn.transport.get_extra_info("socket").family == socket.AF_UNIX
    assert recorder.last.target == "/unix?q"
    assert recorder.last.headers["Host"] == "localhost"


async def test_unix_socket_missing_path(short_dir: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await wskit.connect("ws://localhost/", unix_path=str(short_dir / "nothing.sock"))


async def test_preconnected_socket(server: wskit.Server, recorder: Recorder) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setblocking(False)
    async with wskit.connect("ws://example.test/via-sock", sock=sock) as conn:
        await conn.send(b"bytes")
        assert await conn.recv() == b"bytes"
    assert recorder.last.headers["Host"] == "example.test"


async def test_preconnected_socket_does_not_follow_redirects(
    raw_server: RawStarter, server: wskit.Server, recorder: Recorder
) -> None:
    # The socket is used up by the first request, so the 3xx is the answer.
    redirector = await raw_server(redirect_to(f"ws://127.0.0.1:{server.port}/"))
    sock = socket.create_connection(("127.0.0.1", redirector.port))
    sock.setblocking(False)
    with pytest.raises(wskit.HandshakeRejected) as info:
        await wskit.connect(f"ws://127.0.0.1:{redirector.port}/", sock=sock)
    assert info.value.status == 302
    assert info.value.headers.get("location") == f"ws://127.0.0.1:{server.port}/"
    assert ("Location", f"ws://127.0.0.1:{server.port}/") in info.value.headers.raw_items()
    assert recorder.requests == []


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await wskit.connect(f"ws://127.0.0.1:{port}/")


# --------------------------------------------------------------------------- request headers


async def test_extra_headers(server: wskit.Server, recorder: Recorder) -> None:
    uri = f"ws://127.0.0.1:{server.port}/"
    async with wskit.connect(uri, headers={"X-Token": "abc", "Cookie": "a=1; b=2"}):
        pass
    assert recorder.last.headers["X-Token"] == "abc"
    assert recorder.last.cookies == {"a": "1", "b": "2"}

    pairs = [("X-Multi", "one"), ("X-Multi", "two")]
    async with wskit.connect(uri, headers=wskit.Headers(pairs)):
        pass
    assert recorder.last.headers.get_all("X-Multi") == ["one", "two"]


async def test_authorization_from_uri_credentials(server: wskit.Server, recorder: Recorder) -> None:
    async with wskit.connect(f"ws://al%40ice:pa%3Ass@127.0.0.1:{server.port}/"):
        pass
    expected = "Basic " + base64.b64encode(b"al@ice:pa:ss").decode()
    assert recorder.last.headers["Authorization"] == expected


async def test_user_agent(server: wskit.Server, recorder: Recorder) -> None:
    uri = f"ws://127.0.0.1:{server.port}/"
    async with wskit.connect(uri):
        pass
    assert recorder.last.headers.get_all("User-Agent") == [USER_AGENT]
    assert USER_AGENT.startswith("wskit/")

    async with wskit.connect(uri, user_agent="probe/1.0 (+tests)"):
        pass
    assert recorder.last.headers.get_all("User-Agent") == ["probe/1.0 (+tests)"]

    # A User-Agent among the extra headers replaces the default one.
    async with wskit.connect(uri, headers={"User-Agent": "from-headers"}):
        pass
    assert recorder.last.headers.get_all("User-Agent") == ["from-headers"]


async def test_user_agent_none_leaves_it_out(server: wskit.Server, recorder: Recorder) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/", user_agent=None):
        pass
    assert recorder.last.headers.get_all("User-Agent") == []


async def test_origin(server: wskit.Server, recorder: Recorder) -> None:
    uri = f"ws://127.0.0.1:{server.port}/"
    async with wskit.connect(uri):
        pass
    assert "Origin" not in recorder.last.headers

    # Same host as the Host header: the default origin check lets it in.
    origin = f"http://127.0.0.1:{server.port}"
    async with wskit.connect(uri, origin=origin):
        pass
    assert recorder.last.headers.get_all("Origin") == [origin]

    with pytest.raises(wskit.HandshakeRejected) as info:
        await wskit.connect(uri, origin="https://evil.example")
    assert info.value.status == 403
    assert len(recorder.requests) == 2


# --------------------------------------------------------------------------- subprotocols


async def test_subprotocol_negotiation(recorder: Recorder) -> None:
    async with wskit.serve(recorder, "127.0.0.1", 0, subprotocols=["chat.v2", "chat.v1"]) as srv:
        uri = f"ws://127.0.0.1:{srv.port}/"
        # The server's preference wins among what both speak.
        async with wskit.connect(uri, subprotocols=["chat.v1", "chat.v2"]) as conn:
            assert conn.subprotocol == "chat.v2"
        assert recorder.last.headers["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"

        async with wskit.connect(uri, subprotocols=["chat.v1", "other"]) as conn:
            assert conn.subprotocol == "chat.v1"

        async with wskit.connect(uri, subprotocols=["other"]) as conn:
            assert conn.subprotocol is None

        async with wskit.connect(uri) as conn:
            assert conn.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in recorder.last.headers
    assert recorder.subprotocols == ["chat.v2", "chat.v1", None, None]


async def test_invalid_subprotocol_name() -> None:
    with pytest.raises(ValueError, match="not a valid token"):
        await wskit.connect("ws://127.0.0.1:1/", subprotocols=["has space"])


async def test_server_picks_subprotocol_not_offered() -> None:
    # The server's extra_headers slip in a protocol the client never offered.
    async def handler(conn: wskit.Conn) -> None:
        await conn.close()

    async with wskit.serve(
        handler, "127.0.0.1", 0, extra_headers=[("Sec-WebSocket-Protocol", "rogue")]
    ) as srv:
        with pytest.raises(wskit.InvalidResponse, match="rogue"):
            await wskit.connect(f"ws://127.0.0.1:{srv.port}/", subprotocols=["chat"])


# --------------------------------------------------------------------------- failures


async def test_open_timeout_against_silent_server(raw_server: RawStarter) -> None:
    silent = await raw_server(None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError, match="timed out opening"):
        await wskit.connect(f"ws://127.0.0.1:{silent.port}/", open_timeout=0.3)
    elapsed = loop.time() - start
    assert 0.25 <= elapsed < 3
    # The request did go out; the server just never answered.
    assert len(silent.heads) == 1


async def test_handshake_rejected_carries_response(recorder: Recorder) -> None:
    def process_request(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response:
        return wskit.Response(
            401, "Unauthorized", wskit.Headers([("WWW-Authenticate", "Basic")]), b"no"
        )

    async with wskit.serve(recorder, "127.0.0.1", 0, process_request=process_request) as srv:
        with pytest.raises(wskit.HandshakeRejected) as info:
            await wskit.connect(f"ws://127.0.0.1:{srv.port}/")
    exc = info.value
    assert exc.status == 401
    assert exc.headers.get("www-authenticate") == "Basic"
    assert exc.body == b"no"
    assert "HTTP 401" in str(exc)
    assert "Unauthorized" in str(exc)
    assert recorder.requests == []


async def test_async_hook_rejection(recorder: Recorder) -> None:
    async def process_request(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response:
        await asyncio.sleep(0)
        return wskit.Response(503, "Service Unavailable", wskit.Headers(), b"busy")

    async with wskit.serve(recorder, "127.0.0.1", 0, process_request=process_request) as srv:
        with pytest.raises(wskit.HandshakeRejected) as info:
            await wskit.connect(f"ws://127.0.0.1:{srv.port}/")
    assert (info.value.status, info.value.body) == (503, b"busy")


async def test_server_closes_without_answering(raw_server: RawStarter) -> None:
    closer = await raw_server(b"")
    with pytest.raises(wskit.InvalidHandshake, match="connection closed"):
        await wskit.connect(f"ws://127.0.0.1:{closer.port}/")


async def test_bad_accept_key(raw_server: RawStarter) -> None:
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
    )
    wrong = await raw_server(answer)
    with pytest.raises(wskit.InvalidResponse, match="Sec-WebSocket-Accept"):
        await wskit.connect(f"ws://127.0.0.1:{wrong.port}/")


async def test_async_with_closes_connection(server: wskit.Server) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as conn:
        assert not conn.closed
    assert conn.closed
    assert conn.close_code == 1000


async def test_debug_trace_of_a_client_connection(caplog: pytest.LogCaptureFixture) -> None:
    # The client's own trace, and the server's view of a close the client began.
    caplog.set_level(logging.DEBUG, logger="wskit")

    async def wait(conn: wskit.Conn) -> None:
        await conn.wait_closed()

    async with wskit.serve(wait, "127.0.0.1", 0) as server:
        port = server.port
        conn = await wskit.connect(f"ws://127.0.0.1:{port}/room", compression=None)
        await conn.close(4001, "leaving")
        client_id = conn.id
        for _ in range(100):  # the server's side ends a moment later
            if any("closed by the client" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records]
    trace = [m for m in messages if m.startswith(f"conn {client_id}: ")]
    assert trace[0].startswith(f"conn {client_id}: connected to ('127.0.0.1', {port}")
    assert trace[0].endswith(" for /room")
    assert trace[1] == (
        f"conn {client_id}: handshake accepted by 127.0.0.1:{port}"
        " (subprotocol None, no compression)"
    )
    assert trace[2] == (
        f"conn {client_id}: closed by the client: sent 4001 'leaving', received 4001 'leaving'"
    )
    assert trace[3] == f"conn {client_id}: connection lost (TCP closed)"
    server_side = [m for m in messages if m.startswith("conn ") and f"conn {client_id}:" not in m]
    assert any(
        m.endswith("closed by the client: sent 4001 'leaving', received 4001 'leaving'")
        for m in server_side
    )
