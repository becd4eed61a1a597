"""Shared fixtures and helpers for the wskit test suite.

Helpers (plain functions) can be imported by test modules, since ``tests`` is on
``sys.path`` (see ``pythonpath`` in pyproject.toml)::

    from conftest import require, unused_port, wait_for_port

External programs the suite drives (node, chromium, tinyproxy, microsocks,
redis-server) are installed by ``scripts/bootstrap.sh``.  When one is missing the
tests that need it are skipped on a developer machine but *fail* under ``CI=true``,
so CI can never go green by silently skipping them: use :func:`require` for any new
external dependency.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from playwright.async_api import Browser

# pytest imports this file as "tests.conftest" (--import-mode=importlib); alias it so
# `from conftest import ...` in test modules gets this same module, not a second copy.
sys.modules.setdefault("conftest", sys.modules[__name__])

# The proxy fixtures (tinyproxy, microsocks) of the asyncio and the blocking clients' tests.
pytest_plugins = ["proxies"]

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"

#: Node packages installed from package.json that the interop tests rely on.
NODE_PACKAGES = ("ws", "ws-wrapper")

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


# --------------------------------------------------------------------------- require


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where missing tools are errors."""
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> NoReturn:
    """Skip the current test because *what* is unavailable (fail instead under CI)."""
    message = f"{what} is not available (run scripts/bootstrap.sh)"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def require(condition: object, what: str) -> None:
    """Skip the test unless *condition* is true; under ``CI=true`` fail instead.

    *what* names the missing piece for the skip/failure message.
    """
    if not condition:
        missing(what)


# --------------------------------------------------------------------------- network


def unused_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on *host* that was free at the time of the call.

    There is an unavoidable window between this call and the caller binding the
    port; prefer binding to port 0 directly when the server under test allows it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on *host*:*port*.

    Raises :class:`TimeoutError` after *timeout* seconds.  Meant for waiting on
    helper processes (proxies, node peers, redis) started with ``subprocess``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


# --------------------------------------------------------------------------- binaries


def find_program(name: str, *candidates: str) -> str | None:
    """Return the first existing executable among *candidates*, else ``which(name)``.

    ``/usr/sbin`` is searched too, as it is often missing from a non-root ``PATH``.
    """
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


def find_tinyproxy() -> str | None:
    """Path of the tinyproxy binary (Debian 12: /usr/bin, older: /usr/sbin)."""
    return find_program("tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")


def find_microsocks() -> str | None:
    """Path of the microsocks SOCKS5 server binary."""
    return find_program("microsocks", "/usr/bin/microsocks")


def find_redis_server() -> str | None:
    """Path of the redis-server binary."""
    return find_program("redis-server", "/usr/bin/redis-server")


def find_chromium() -> str | None:
    """Path of Debian's chromium (the tests never use a Playwright-downloaded build)."""
    return find_program("chromium", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def tinyproxy_bin() -> str:
    path = find_tinyproxy()
    require(path, "tinyproxy")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def microsocks_bin() -> str:
    path = find_microsocks()
    require(path, "microsocks")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def redis_server_bin() -> str:
    path = find_redis_server()
    require(path, "redis-server")
    assert path is not None
    return path


# --------------------------------------------------------------------------- redis


@pytest.fixture(scope="session")
def _shared_redis(redis_server_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One redis-server for the whole session (see :func:`redis_server`)."""
    from hub.redis_support import RedisServer

    server = RedisServer(redis_server_bin, unused_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(_shared_redis: Any) -> Any:
    """A real, empty redis-server on a loopback port (``hub.redis_support.RedisServer``).

    One process serves the session: each test gets it running (started again
    if the test before stopped it) and empty (``FLUSHALL``, ``SCRIPT FLUSH``).
    A test may stop and start it, as a Redis outage; it comes back empty.
    """
    if not _shared_redis.running():
        _shared_redis.start()
    _shared_redis.reset()
    return _shared_redis


# --------------------------------------------------------------------------- node


@dataclass(frozen=True)
class NodeRuntime:
    """How to run Node.js scripts against the repo's ``node_modules``.

    * ``executable``: absolute path of ``node``.
    * ``env``: a copy of ``os.environ`` with ``NODE_PATH`` set to ``node_modules``
      (this covers ``require()``; ES modules ignore ``NODE_PATH`` and resolve from
      the importing file's directory, or from the working directory for ``-e``/stdin).
    * ``cwd``: the repo root, so ``import('ws')`` from ``-e`` or from a script kept
      anywhere under the repo (e.g. ``tests/peers/*.mjs``) finds ``node_modules``.

    Run things with ``subprocess.run(node.command("script.mjs"), env=node.env,
    cwd=node.cwd)`` or the asyncio equivalent.
    """

    executable: str
    node_modules: Path
    cwd: Path = REPO_ROOT
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        """Argument vector running node with *args*."""
        return [self.executable, *(os.fspath(a) for a in args)]

    def subprocess_kwargs(self) -> dict[str, Any]:
        """``env`` and ``cwd`` keyword arguments for subprocess/asyncio launchers."""
        return {"env": dict(self.env), "cwd": self.cwd}


def _node_runtime() -> NodeRuntime | None:
    executable = shutil.which("node")
    if executable is None:
        return None
    env = dict(os.environ)
    node_path = [str(NODE_MODULES)]
    if env.get("NODE_PATH"):
        node_path.append(env["NODE_PATH"])
    env["NODE_PATH"] = os.pathsep.join(node_path)
    return NodeRuntime(executable=executable, node_modules=NODE_MODULES, env=env)


@pytest.fixture(scope="session")
def node() -> NodeRuntime:
    """Node.js with the test peers from package.json installed (see :class:`NodeRuntime`)."""
    runtime = _node_runtime()
    require(runtime, "node")
    assert runtime is not None
    for package in NODE_PACKAGES:
        require(
            (NODE_MODULES / package / "package.json").is_file(),
            f"node package {package!r} in {NODE_MODULES}",
        )
    return runtime


# --------------------------------------------------------------------------- chromium


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _shared_chromium() -> AsyncIterator[Browser]:
    """One headless Debian chromium for the whole session (see :func:`chromium_browser`)."""
    executable = find_chromium()
    require(executable, "chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("the playwright Python package")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=list(CHROMIUM_ARGS),
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def chromium_browser(_shared_chromium: Browser) -> AsyncIterator[Browser]:
    """A headless Debian chromium driven by ``playwright.async_api``.

    One browser serves the whole session: starting Playwright's driver and
    the browser, then closing them, costs about a second, once instead of
    once per test. Each ``browser.new_page()`` opens a page in a context of
    its own (cookies, storage), and every context a test opened is closed
    when it ends, so tests stay apart. Use it from any ``async def`` test::

        async def test_page(chromium_browser):
            page = await chromium_browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            assert await page.evaluate("1 + 1") == 2

    Playwright's objects belong to the event loop that made them, so a test
    that takes this fixture runs in the session's event loop (conftest marks
    it so); an ``async`` fixture of its own must then say
    ``@pytest_asyncio.fixture(loop_scope="session")``.

    Playwright never downloads a browser here: ``executable_path`` points at
    ``/usr/bin/chromium``; do not run ``playwright install``.
    """
    before = set(_shared_chromium.contexts)
    try:
        yield _shared_chromium
    finally:
        for context in _shared_chromium.contexts:
            if context not in before:
                await context.close()


# --------------------------------------------------------------------------- markers

#: Fixtures that start or drive a program outside this process: a test that
#: uses one is marked ``peer``.
PEER_FIXTURES = frozenset(
    {
        "chromium_browser",
        "node",
        "node_peer",
        "redis_server",
        "redis_server_bin",
        "tinyproxy_bin",
        "microsocks_bin",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that drive real peers (browsers, Node, Redis, proxies) ``peer``.

    ``make test`` runs them once, with the compiled kernels; the pure-Python
    pass (``WSKIT_NO_EXTENSIONS=1``) runs the unit suites with ``-m "not peer"``.
    """
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if PEER_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.peer)
        if "chromium_browser" in fixtures:
            # The shared browser lives in the session's loop (see chromium_browser).
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


# --------------------------------------------------------------------------- hypothesis


def _configure_hypothesis() -> None:
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # pragma: no cover - hypothesis is a test extra
        return
    # Shared 2-core machines: wall-clock deadlines only produce flaky failures.
    settings.register_profile(
        "ci",
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
    )
    settings.register_profile("dev", deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if in_ci() else "dev"))


_configure_hypothesis()
