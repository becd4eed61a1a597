"""``wskit serve`` (:mod:`wskit.cli.serve`), as a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wskit
from cli.process_support import app_env, start, stop


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[int]:
    """``wskit serve`` with the arguments of ``@pytest.mark.parametrize("served", ...)``."""
    process, port = start("serve", *request.param)
    yield port
    code, err = stop(process)
    assert code == 0, err


def get(url: str, **kwargs: Any) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5, **kwargs) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


async def hub_request(conn: wskit.Conn, event: str, *args: Any) -> Any:
    """One ws-wrapper request, by hand."""
    await conn.send(json.dumps({"i": 1, "a": [event, *args]}))
    return json.loads(await conn.recv())


@pytest.mark.parametrize("served", [["sample_app:hub"]], indirect=True)
async def test_serve_a_hub_and_its_javascript_client(served: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{served}/") as conn:
        assert await hub_request(conn, "add", 2, 3) == {"i": 1, "d": 5}
    for path in ("/wskit.js", "/wskit.mjs"):
        status, content_type, body = get(f"http://127.0.0.1:{served}{path}")
        assert (status, content_type) == (200, "text/javascript; charset=utf-8")
        assert b"WskitClient" in body


@pytest.mark.parametrize("served", [["sample_app:make_hub", "--path", "/hub"]], indirect=True)
async def test_serve_a_hub_factory_on_a_path(served: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{served}/hub") as conn:
        assert await hub_request(conn, "whoami") == {"i": 1, "d": "made by a factory"}
    with pytest.raises(wskit.HandshakeRejected) as caught:
        await wskit.connect(f"ws://127.0.0.1:{served}/")
    assert caught.value.status == 404


@pytest.mark.parametrize(
    "served", [["sample_app:shout", "--path", "/ws", "--no-compression"]], indirect=True
)
async def test_serve_a_handler(served: int) -> None:
    async with wskit.connect(f"ws://127.0.0.1:{served}/ws") as conn:
        assert not conn.compression
        assert await conn.recv() == "path /ws"
        await conn.send("hello")
        assert await conn.recv() == "HELLO"
    with pytest.raises(wskit.HandshakeRejected) as caught:
        await wskit.connect(f"ws://127.0.0.1:{served}/elsewhere")
    assert caught.value.status == 404
    # A plain handler has no JavaScript client to serve.
    assert get(f"http://127.0.0.1:{served}/wskit.js")[0] != 200


async def test_serve_over_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    process, port = start(
        "serve", "sample_app:hub", "--tls-cert", str(cert_file), "--tls-key", str(key_file)
    )
    try:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        async with wskit.connect(f"wss://localhost:{port}/", ssl=client_context) as conn:
            assert await hub_request(conn, "add", 20, 22) == {"i": 1, "d": 42}
        status, _, body = get(f"https://localhost:{port}/wskit.mjs", context=client_context)
        assert status == 200 and b"WskitClient" in body
    finally:
        code, err = stop(process)
    assert code == 0, err


def test_serve_closes_connections_with_1001_on_sigterm() -> None:
    process, port = start("serve", "sample_app:shout")

    async def watch() -> tuple[int | None, str | None]:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as conn:
            await conn.recv()
            process.send_signal(signal.SIGTERM)
            with pytest.raises(wskit.ConnectionClosed):
                await asyncio.wait_for(conn.recv(), 10)
            return conn.close_code, conn.close_reason

    assert asyncio.run(watch()) == (1001, "server shutting down")
    out, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert f"wskit serving sample_app:shout on ws://127.0.0.1:{port}/" in out


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("sample_app:not_servable", "is not a Hub, a connection handler"),
        ("sample_app:missing", "has no attribute 'missing'"),
        ("no_such_module:hub", "cannot import no_such_module"),
        ("sample_app", "expected module:attribute"),
    ],
)
def test_serve_refuses_what_it_cannot_serve(target: str, error: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wskit", "serve", target, "--port", "0"],
        capture_output=True,
        text=True,
        env=app_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert error in result.stderr


@pytest.mark.parametrize(
    "served", [["sample_app:hub", "--max-connections-per-ip", "1"]], indirect=True
)
async def test_serve_applies_the_server_limit_flags(served: int) -> None:
    uri = f"ws://127.0.0.1:{served}/"
    # The port probe of start() may still be held for a moment: retry while refused.
    for _ in range(100):
        try:
            first = await wskit.connect(uri)
            break
        except wskit.HandshakeRejected:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("never admitted")
    try:
        with pytest.raises(wskit.HandshakeRejected) as info:
            await wskit.connect(uri)
        assert info.value.status == 503
        assert b"Too many connections from your address" in info.value.body
    finally:
        await first.close()
