"""The deployment guide's proxy configurations, run: nginx and Caddy in front of ``wskit serve``.

The files under test are the ones the guide shows (``docs/howto/deployment/``):
only their ports, host name and certificate paths are replaced, each of which
must occur exactly once, so that an edit of the shipped file is what runs here.
A client goes through the proxy with TLS (a trustme certificate for nginx,
Caddy's own local CA for Caddy) to ``wskit serve app:hub --workers 2``.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import wskit
from conftest import find_program, require, unused_port, wait_for_port

pytestmark = pytest.mark.peer

DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "howto" / "deployment"


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each key of ``replacements`` in ``text``, which must hold it exactly once."""
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} should occur once in the shipped file"
        text = text.replace(old, new)
    return text


@dataclass
class Stack:
    """A proxy in front of ``wskit serve app:hub``, both running."""

    app: subprocess.Popen[bytes]
    proxy: subprocess.Popen[bytes]
    #: The proxy's TLS port, and its plain HTTP one.
    https_port: int
    http_port: int
    #: A client context that trusts the proxy's certificate.
    tls: ssl.SSLContext
    workdir: Path
    #: "nginx" or "caddy".
    name: str

    @property
    def uri(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/"

    def stop(self) -> None:
        for process in (self.proxy, self.app):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.proxy, self.app):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_app(port: int) -> subprocess.Popen[bytes]:
    """``wskit serve app:hub --workers 2`` in the deployment folder, serving on ``port``."""
    command = [sys.executable, "-m", "wskit", "serve", "app:hub", "--workers", "2"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=DEPLOYMENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    # Read the raw pipe with a deadline: a buffered readline() could wait forever.
    fd = process.stdout.fileno()
    output = b""
    deadline = time.monotonic() + 20
    while output.count(b"wskit serving") < 2:
        ready, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            process.kill()
            process.wait()
            raise AssertionError(f"wskit serve did not start:\n{output.decode(errors='replace')}")
        output += chunk
    return process


def wait_for_proxy(proxy: subprocess.Popen[bytes], workdir: Path, *ports: int) -> None:
    """Wait until the proxy listens on every port; say why at once if it exits first."""
    deadline = time.monotonic() + 15
    waiting = list(ports)
    while waiting and proxy.poll() is None and time.monotonic() < deadline:
        try:
            wait_for_port(waiting[0], timeout=0.2)
        except TimeoutError:
            continue
        waiting.pop(0)
    if waiting:
        proxy.kill()
        output = proxy.communicate()[0].decode(errors="replace")
        logs = "\n".join(p.read_text(errors="replace") for p in workdir.glob("*.log"))
        raise AssertionError(f"the proxy is not listening:\n{output}\n{logs}")


NGINX_MAIN = """\
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/wskit.conf;
}}
"""


def start_nginx(workdir: Path) -> Stack:
    """Debian's nginx with ``docs/howto/deployment/nginx.conf`` in front of the app."""
    nginx = find_program("nginx", "/usr/sbin/nginx")
    require(nginx, "nginx")
    assert nginx is not None
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(workdir / "server.pem"))
    tls = ssl.create_default_context()
    ca.configure_trust(tls)

    app_port, http_port, https_port = unused_port(), unused_port(), unused_port()
    site = substitute(
        (DEPLOYMENT / "nginx.conf").read_text(),
        {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{app_port};",
            "/etc/letsencrypt/live/example.com/fullchain.pem": str(workdir / "server.pem"),
            "/etc/letsencrypt/live/example.com/privkey.pem": str(workdir / "server.pem"),
        },
    )
    (workdir / "wskit.conf").write_text(site)
    (workdir / "nginx.conf").write_text(NGINX_MAIN.format(tmp=workdir))
    app = start_app(app_port)
    proxy = subprocess.Popen(
        [nginx, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", "nginx.conf"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(app, proxy, https_port, http_port, tls, workdir, "nginx")
    try:
        wait_for_proxy(proxy, workdir, https_port, http_port)
    except BaseException:
        stack.stop()
        raise
    return stack


CADDY_GLOBAL = """\
# The test's own options: no admin endpoint, state in the test's folder,
# free ports, certificates from Caddy's local CA.
{{
\tadmin off
\tstorage file_system {tmp}/data
\thttp_port {http_port}
\thttps_port {https_port}
\tlocal_certs
\tskip_install_trust
\tdefault_sni 127.0.0.1
}}

"""


def wait_for_certificate(port: int, tls: ssl.SSLContext) -> None:
    """Wait until a TLS handshake succeeds: Caddy listens before its certificate is issued."""
    deadline = time.monotonic() + 15
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
                tls.wrap_socket(sock, server_hostname="127.0.0.1"),
            ):
                return
        except (ssl.SSLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_caddy(workdir: Path) -> Stack:
    """Debian's caddy with ``docs/howto/deployment/Caddyfile`` in front of the app."""
    caddy = find_program("caddy", "/usr/bin/caddy")
    require(caddy, "caddy")
    assert caddy is not None
    app_port, http_port, https_port = unused_port(), unused_port(), unused_port()
    site = substitute(
        (DEPLOYMENT / "Caddyfile").read_text(),
        {"example.com {": "127.0.0.1 {", "127.0.0.1:8000": f"127.0.0.1:{app_port}"},
    )
    options = CADDY_GLOBAL.format(tmp=workdir, http_port=http_port, https_port=https_port)
    (workdir / "Caddyfile").write_text(options + site)
    app = start_app(app_port)
    env = dict(os.environ, HOME=str(workdir), XDG_DATA_HOME=str(workdir / "xdg"))
    env["XDG_CONFIG_HOME"] = str(workdir / "xdg")
    proxy = subprocess.Popen(
        [caddy, "run", "--config", str(workdir / "Caddyfile"), "--adapter", "caddyfile"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_proxy(proxy, workdir, https_port, http_port)
        # Caddy makes its CA when it starts; its root is what a client must trust.
        root = workdir / "data" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 10
        while not root.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        tls = ssl.create_default_context(cafile=str(root))
        wait_for_certificate(https_port, tls)
    except BaseException:
        proxy.kill()
        proxy.wait()
        app.kill()
        app.wait()
        raise
    return Stack(app, proxy, https_port, http_port, tls, workdir, "caddy")


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(request.param)
    running = (start_nginx if request.param == "nginx" else start_caddy)(workdir)
    yield running
    running.stop()


async def call(conn: wskit.ClientConn, request_id: int, *event: Any) -> Any:
    """A ws-wrapper request; its answer's data."""
    await conn.send(json.dumps({"i": request_id, "a": list(event)}))
    answer = json.loads(await conn.recv())
    assert answer["i"] == request_id, answer
    return answer["d"]


async def test_echo_and_request_through_the_proxy(stack: Stack) -> None:
    async with wskit.connect(stack.uri, ssl=stack.tls) as conn:
        await conn.send("hello")
        assert await conn.recv() == "hello"
        caller = await call(conn, 1, "whoami")
    # wskit sees the proxy's address; the client's is in the headers.
    assert caller["peer"] == "127.0.0.1"
    assert caller["forwarded_for"] == "127.0.0.1"
    assert caller["forwarded_proto"] == "https"
    assert caller["host"] == f"127.0.0.1:{stack.https_port}"
    assert conn.close_code == 1000


async def test_a_forwarded_for_sent_by_the_client(stack: Stack) -> None:
    # nginx appends the client's address to what the client sent; Caddy,
    # trusting no proxy before it, replaces it.
    headers = {"X-Forwarded-For": "203.0.113.7"}
    async with wskit.connect(stack.uri, ssl=stack.tls, headers=headers) as conn:
        caller = await call(conn, 1, "whoami")
    if stack.name == "nginx":
        assert caller["forwarded_for"] == "203.0.113.7, 127.0.0.1"
    else:
        assert caller["forwarded_for"] == "127.0.0.1"


async def test_a_large_message_through_the_proxy(stack: Stack) -> None:
    # Far larger than the proxy's buffers (nginx: 4-8 KiB) and the socket buffers.
    message = secrets.token_hex(384 * 1024)  # 768 KiB, under wskit serve's 1 MiB max_size
    async with wskit.connect(stack.uri, ssl=stack.tls, compression=None) as conn:
        await conn.send(message)
        assert await conn.recv() == message
        assert await call(conn, 1, "whoami")


async def test_the_origin_check_behind_the_proxy(stack: Stack) -> None:
    # A page of the site itself: the Host the proxy passes on matches its Origin.
    origin = f"https://127.0.0.1:{stack.https_port}"
    async with wskit.connect(stack.uri, ssl=stack.tls, origin=origin) as conn:
        await conn.send("same site")
        assert await conn.recv() == "same site"
    with pytest.raises(wskit.HandshakeRejected) as refused:
        await wskit.connect(stack.uri, ssl=stack.tls, origin="https://elsewhere.example")
    assert refused.value.status == 403


def test_the_javascript_client_through_the_proxy(stack: Stack) -> None:
    url = f"https://127.0.0.1:{stack.https_port}/wskit.js"
    with urllib.request.urlopen(url, context=stack.tls, timeout=10) as response:
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
        assert b"WskitClient" in response.read()


def test_plain_http_is_redirected_to_https(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=10) as sock:
        sock.sendall(b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    status, _, rest = head.decode("latin-1").partition("\r\n")
    assert status.split()[1] in ("301", "308"), status
    assert "\r\nlocation: https://127.0.0.1" in rest.lower()


async def test_the_server_shutting_down_closes_with_1001(tmp_path: Path) -> None:
    # Its own stack: this one ends.
    stack = start_nginx(tmp_path)
    try:
        conn = await wskit.connect(stack.uri, ssl=stack.tls)
        await conn.send("still there?")
        assert await conn.recv() == "still there?"
        stack.app.send_signal(signal.SIGTERM)
        with pytest.raises(wskit.ConnectionClosed) as closed:
            await conn.recv()
        assert (closed.value.code, closed.value.reason) == (1001, "server shutting down")
        assert stack.app.wait(timeout=15) == 0
    finally:
        stack.stop()


@pytest.mark.parametrize(("proxy", "code"), [("nginx", 1006), ("caddy", 1001)])
async def test_the_proxy_stopping(proxy: str, code: int, tmp_path: Path) -> None:
    # nginx's fast shutdown drops the connections; Caddy closes them with 1001.
    stack = (start_nginx if proxy == "nginx" else start_caddy)(tmp_path)
    try:
        conn = await wskit.connect(stack.uri, ssl=stack.tls)
        await conn.send("still there?")
        assert await conn.recv() == "still there?"
        stack.proxy.send_signal(signal.SIGTERM if proxy == "nginx" else signal.SIGINT)
        with pytest.raises(wskit.ConnectionClosed) as closed:
            await conn.recv()
        assert closed.value.code == code
    finally:
        stack.stop()
