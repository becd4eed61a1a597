"""Real proxies for the client tests: tinyproxy (HTTP CONNECT) and microsocks (SOCKS5).

Fixtures that start a proxy process on a free port, shared by the tests of
the asyncio client (``tests/asyncio/test_proxy.py``) and of the blocking one
(``tests/sync/test_proxy.py``): a test module imports the fixtures it uses.
Also :func:`tls_contexts`, the TLS contexts of a ``wss://`` test server and
of the client that trusts it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from conftest import unused_port

PROXY_ENV = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


def tls_contexts(*names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server TLS context for ``names`` (default ``localhost``) and a client one trusting it.

    Each call makes a CA of its own, which only this client context trusts.
    """
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost",))).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


# --------------------------------------------------------------------------- processes


def wait_listening(proc: subprocess.Popen[bytes], port: int, host: str = "127.0.0.1") -> None:
    """Wait for ``proc`` to accept connections on ``port``; fail fast if it died."""
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}: {output}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{proc.args[0]} is not listening on {host}:{port}")
            time.sleep(0.05)


@dataclass
class Tinyproxy:
    port: int
    log: Path

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Microsocks:
    port: int
    host: str = "127.0.0.1"

    def uri(self, scheme: str = "socks5", credentials: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        at = f"{credentials}@" if credentials else ""
        return f"{scheme}://{at}{host}:{self.port}"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def start_tinyproxy(
    tinyproxy_bin: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> Callable[..., Tinyproxy]:
    counter = iter(range(100))

    def start(
        *, connect_ports: tuple[int, ...] = (), basic_auth: tuple[str, str] | None = None
    ) -> Tinyproxy:
        n = next(counter)
        port = unused_port()
        log = tmp_path / f"tinyproxy{n}.log"
        lines = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            "MaxClients 50",
            "LogLevel Info",
            f'LogFile "{log}"',
        ]
        # Without any ConnectPort line tinyproxy allows CONNECT to every port.
        lines += [f"ConnectPort {p}" for p in connect_ports]
        if basic_auth is not None:
            lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
        conf = tmp_path / f"tinyproxy{n}.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(
            [tinyproxy_bin, "-d", "-c", str(conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.append(proc)
        wait_listening(proc, port)
        return Tinyproxy(port, log)

    return start


@pytest.fixture
def start_microsocks(
    microsocks_bin: str, processes: list[subprocess.Popen[bytes]]
) -> Callable[..., Microsocks]:
    def start(
        *, user: str | None = None, password: str | None = None, host: str = "127.0.0.1"
    ) -> Microsocks:
        port = unused_port(host) if ":" not in host else _unused_port6()
        args = [microsocks_bin, "-i", host, "-p", str(port)]
        if user is not None:
            args += ["-u", user, "-P", password or ""]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(proc)
        wait_listening(proc, port, host)
        return Microsocks(port, host)

    return start


def _unused_port6() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
