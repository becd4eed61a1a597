"""wss:// end to end: a CA and server certificates generated at test time (trustme)."""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

import wskit


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


async def report_request(conn: wskit.Conn) -> None:
    """Send back what the server saw of the handshake, then echo."""
    assert conn.request is not None
    await conn.send_json({"host": conn.request.headers["Host"], "path": conn.request.target})
    await echo(conn)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[wskit.Server]:
    # Clients connect to "localhost"; the certificate names only that.
    async with wskit.serve(
        report_request, "127.0.0.1", 0, ssl=server_context(ca, "localhost")
    ) as server:
        yield server


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to about 100 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="wsk") as name:
        yield Path(name)


async def test_wss_round_trip(ca: trustme.CA, tls_server: wskit.Server) -> None:
    uri = f"wss://localhost:{tls_server.port}/secure?x=1"
    async with wskit.connect(uri, ssl=client_context(ca)) as conn:
        seen = await conn.recv_json()
        assert seen == {"host": f"localhost:{tls_server.port}", "path": "/secure?x=1"}
        await conn.send("über TLS")
        assert await conn.recv() == "über TLS"
        await conn.send(b"\x00" * 100_000)
        assert await conn.recv() == b"\x00" * 100_000
        assert conn.transport is not None
        ssl_object = conn.transport.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        peer = conn.transport.get_extra_info("peercert")
        assert ("DNS", "localhost") in peer["subjectAltName"]


async def test_wss_default_port_host_header(ca: trustme.CA) -> None:
    # Port 443 is left out of the Host header; check it on a server reached
    # through a pre-connected socket, since binding 443 needs privileges.
    async with wskit.serve(
        report_request, "127.0.0.1", 0, ssl=server_context(ca, "localhost")
    ) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setblocking(False)
        async with wskit.connect("wss://localhost/", sock=sock, ssl=client_context(ca)) as conn:
            seen = await conn.recv_json()
            assert seen["host"] == "localhost"


async def test_wrong_ca_fails_verification(tls_server: wskit.Server) -> None:
    other = trustme.CA()
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        await wskit.connect(f"wss://localhost:{tls_server.port}/", ssl=client_context(other))
    assert "certificate verify failed" in str(info.value)


async def test_default_context_does_not_trust_test_ca(tls_server: wskit.Server) -> None:
    # Without ssl=, connect() verifies against the system store.
    with pytest.raises(ssl.SSLCertVerificationError):
        await wskit.connect(f"wss://localhost:{tls_server.port}/")


async def test_hostname_mismatch(ca: trustme.CA, tls_server: wskit.Server) -> None:
    # The certificate names localhost only, not the IP address.
    with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):
        await wskit.connect(f"wss://127.0.0.1:{tls_server.port}/", ssl=client_context(ca))


async def test_server_hostname_override(ca: trustme.CA) -> None:
    sni: list[str | None] = []
    context = server_context(ca, "ws.example.test")

    def record_sni(obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        sni.append(name)

    context.sni_callback = record_sni
    async with wskit.serve(report_request, "127.0.0.1", 0, ssl=context) as server:
        uri = f"wss://127.0.0.1:{server.port}/"
        async with wskit.connect(
            uri, ssl=client_context(ca), server_hostname="ws.example.test"
        ) as conn:
            seen = await conn.recv_json()
            # TLS used the override; HTTP still names the URI's host.
            assert seen["host"] == f"127.0.0.1:{server.port}"
            await conn.send("ok")
            assert await conn.recv() == "ok"
        assert sni == ["ws.example.test"]

        # Without the override the name checked is the URI's host, which fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            await wskit.connect(uri, ssl=client_context(ca))


async def test_plain_client_to_tls_server_fails(tls_server: wskit.Server) -> None:
    with pytest.raises((wskit.InvalidHandshake, ConnectionError)):
        await wskit.connect(f"ws://localhost:{tls_server.port}/", open_timeout=5)


async def test_wss_over_unix_socket(ca: trustme.CA, short_dir: Path) -> None:
    path = str(short_dir / "tls.sock")
    async with wskit.serve(
        report_request, unix_path=path, ssl=server_context(ca, "localhost")
    ) as server:
        assert server.sockets
        async with wskit.connect(
            "wss://localhost/chat", unix_path=path, ssl=client_context(ca)
        ) as conn:
            seen = await conn.recv_json()
            assert seen == {"host": "localhost", "path": "/chat"}
            assert conn.transport is not None
            assert conn.transport.get_extra_info("ssl_object") is not None
