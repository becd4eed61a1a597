"""wskit.sync.client: connect() with the asyncio client's options, blocking.

Against wskit's server (on an event loop in a thread) and raw sockets; TLS
with certificates from trustme. The proxies are in test_proxy.py.
"""

from __future__ import annotations

import http.cookiejar
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
import trustme

import wskit
from conftest import unused_port
from wskit.protocol.handshake import reject
from wskit.sync import ClientConn, connect

from .conftest import ServerThread, echo

StartServer = Callable[..., ServerThread]


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def tls_contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def test_connect_returns_an_open_client_connection(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    conn = connect(server.uri)
    try:
        assert isinstance(conn, ClientConn)
        assert conn.state is wskit.State.OPEN
        assert conn.remote_address[1] == server.port
        assert conn.local_address[0] == "127.0.0.1"
        assert conn.response.status == 101
        assert conn.request.headers["User-Agent"].startswith("wskit/")
        conn.send("ping")
        assert conn.recv() == "ping"
    finally:
        conn.close()
    assert conn.state is wskit.State.CLOSED
    assert conn.remote_address is None


def test_wss_with_a_trusted_certificate(wskit_server: StartServer, ca: trustme.CA) -> None:
    server_ctx, client_ctx = tls_contexts(ca)
    server = wskit_server(echo, ssl=server_ctx)
    with connect(f"wss://localhost:{server.port}/", ssl=client_ctx) as conn:
        assert isinstance(conn.sock, ssl.SSLSocket)
        conn.send("secret" * 10_000)
        assert conn.recv() == "secret" * 10_000
    assert conn.close_code == 1000


def test_wss_with_server_hostname(wskit_server: StartServer, ca: trustme.CA) -> None:
    server_ctx, client_ctx = tls_contexts(ca)
    server = wskit_server(echo, ssl=server_ctx)
    # The certificate names localhost and 127.0.0.1; the URI's host is not checked.
    uri = f"wss://127.0.0.1:{server.port}/"
    with connect(uri, ssl=client_ctx, server_hostname="localhost") as conn:
        conn.send("sni")
        assert conn.recv() == "sni"


def test_a_certificate_that_does_not_verify(wskit_server: StartServer, ca: trustme.CA) -> None:
    server_ctx, _ = tls_contexts(ca)
    server = wskit_server(echo, ssl=server_ctx)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(f"wss://localhost:{server.port}/")  # the default context: CA not trusted


def test_handshake_options_reach_the_server(wskit_server: StartServer) -> None:
    seen: list[wskit.Request] = []

    def record(conn: wskit.ServerConn, request: wskit.Request) -> None:
        seen.append(request)

    server = wskit_server(echo, subprotocols=["chat", "v2"], process_request=record)
    with connect(
        server.uri + "room?x=1",
        subprotocols=["v2", "other"],
        headers={"Authorization": "Bearer t0ken"},
        origin=f"http://127.0.0.1:{server.port}",
        user_agent="sync-test/1",
        compression=None,
    ) as conn:
        assert conn.subprotocol == "v2"
        assert conn.response.headers.get("Sec-WebSocket-Extensions") is None
    (request,) = seen
    assert request.path == "/room"
    assert request.query == "x=1"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.headers["User-Agent"] == "sync-test/1"
    assert request.headers.get("Sec-WebSocket-Extensions") is None


def test_a_refused_handshake_raises_with_the_response(wskit_server: StartServer) -> None:
    def refuse(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response:
        return reject(403, "members only")

    server = wskit_server(echo, process_request=refuse)
    with pytest.raises(wskit.HandshakeRejected) as info:
        connect(server.uri)
    assert info.value.status == 403
    assert b"members only" in info.value.body


def test_redirects_are_followed_and_cookies_kept(wskit_server: StartServer) -> None:
    cookies_seen: list[str | None] = []

    def redirect(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        cookies_seen.append(request.headers.get("Cookie"))
        if request.path == "/old":
            return wskit.Response(
                302,
                "Found",
                wskit.Headers([("Location", "/new"), ("Set-Cookie", "session=abc; Path=/")]),
            )
        return None

    server = wskit_server(echo, process_request=redirect)
    jar = http.cookiejar.CookieJar()
    with connect(server.uri + "old", cookies=jar) as conn:
        assert conn.request.path == "/new"
        conn.send("moved")
        assert conn.recv() == "moved"
    assert cookies_seen == [None, "session=abc"]
    with pytest.raises(wskit.InvalidHandshake, match="more than 0 redirects"):
        connect(server.uri + "old", max_redirects=0)


def test_dial_opens_each_attempt(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    dialled: list[tuple[str, int]] = []

    def dial(host: str, port: int) -> socket.socket:
        dialled.append((host, port))
        return socket.create_connection((host, port))

    with connect(server.uri, dial=dial) as conn:
        conn.send("dialled")
        assert conn.recv() == "dialled"
    assert dialled == [("127.0.0.1", server.port)]


def test_a_given_socket(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    sock = socket.create_connection(("127.0.0.1", server.port))
    with connect("ws://example.invalid/", sock=sock) as conn:
        conn.send("given")
        assert conn.recv() == "given"


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP server that accepts and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(10)
    for sock in accepted:
        sock.close()
    listener.close()


def test_open_timeout_covers_the_handshake(silent_listener: int) -> None:
    with pytest.raises(TimeoutError, match="timed out opening a WebSocket"):
        connect(f"ws://127.0.0.1:{silent_listener}/", open_timeout=0.2)


def test_open_timeout_covers_tls(silent_listener: int) -> None:
    with pytest.raises(TimeoutError, match="timed out opening a WebSocket"):
        connect(f"wss://127.0.0.1:{silent_listener}/", open_timeout=0.2)


def test_a_closed_port_raises_oserror() -> None:
    with pytest.raises(ConnectionRefusedError):
        connect(f"ws://127.0.0.1:{unused_port()}/")


def test_a_connection_closed_during_the_handshake() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        sock, _ = listener.accept()
        sock.recv(4096)
        sock.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(wskit.InvalidResponse, match="connection closed"):
            connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
    finally:
        thread.join(10)
        listener.close()


def test_bad_arguments() -> None:
    with pytest.raises(wskit.InvalidURI):
        connect("http://127.0.0.1/")
    with pytest.raises(TypeError, match="write_limt"):
        connect("ws://127.0.0.1:1/", write_limt=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="write_limit"):
        connect("ws://127.0.0.1:1/", write_limit=1)  # type: ignore[call-arg]
    with socket.socket() as sock, pytest.raises(ValueError, match="dial"):
        connect("ws://127.0.0.1:1/", sock=sock, dial=lambda h, p: sock)
    with pytest.raises(ValueError, match="compression"):
        connect("ws://127.0.0.1:1/", compression="brotli")
