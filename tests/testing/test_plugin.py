"""wskit.testing.plugin: fixtures only, under pytest-asyncio and under anyio's plugin.

The plugin is registered for every pytest run once wskit is installed (the
``pytest11`` entry point), so these tests also check that it changes
nothing for a project that does not use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import wskit.testing.plugin as plugin

TESTS = """
import pytest

import wskit
from wskit.hub import Hub
from wskit.testing import HubEvent

hub = Hub()


@hub.on("add")
def add(a: int, b: int) -> int:
    return a + b


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


async def app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "from asgi"})
    await send({"type": "websocket.close", "code": 1000})


async def run(wskit_connect, wskit_serve, wskit_connect_asgi, wskit_serve_asgi, wskit_hub_client):
    async with wskit_connect(echo, "/") as conn:
        await conn.send("hi")
        assert await conn.recv() == "hi"
    async with wskit_serve(echo) as server, server.connect() as conn:
        await conn.send("again")
        assert await conn.recv() == "again"
    async with wskit_connect_asgi(app) as conn:
        assert await conn.recv() == "from asgi"
    async with wskit_serve_asgi(app) as server, server.connect() as conn:
        assert await conn.recv() == "from asgi"
    async with wskit_hub_client(hub) as client:
        assert await client.request("add", 1, 2) == 3


@pytest.mark.asyncio
async def test_with_pytest_asyncio(
    wskit_connect, wskit_serve, wskit_connect_asgi, wskit_serve_asgi, wskit_hub_client
):
    await run(wskit_connect, wskit_serve, wskit_connect_asgi, wskit_serve_asgi, wskit_hub_client)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_with_anyio(
    wskit_connect, wskit_serve, wskit_connect_asgi, wskit_serve_asgi, wskit_hub_client
):
    await run(wskit_connect, wskit_serve, wskit_connect_asgi, wskit_serve_asgi, wskit_hub_client)
"""


def pytest_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in ``directory``, outside this project's configuration."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_entry_point_names_the_plugin() -> None:
    (entry,) = entry_points(group="pytest11").select(name="wskit")
    assert entry.value == "wskit.testing.plugin"


def test_the_plugin_defines_fixtures_and_nothing_else() -> None:
    names = [name for name in vars(plugin) if not name.startswith("__")]
    assert not [name for name in names if name.startswith("pytest_")]  # no hooks
    assert not hasattr(plugin, "pytest_plugins")
    for name in plugin.__all__:
        assert name.startswith("wskit_")
        # pytest 8.4 and later wrap fixtures in FixtureFunctionDefinition.
        fixture = getattr(plugin, name)
        assert type(fixture).__name__ == "FixtureFunctionDefinition" or hasattr(
            fixture, "_pytestfixturefunction"
        ), name


def test_the_fixtures_work_under_pytest_asyncio_and_anyio(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(TESTS)
    result = pytest_in(tmp_path, "-p", "anyio", "-W", "ignore::DeprecationWarning")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_installing_wskit_changes_nothing_for_other_projects(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    with_plugin = pytest_in(tmp_path, "-rA")
    without = pytest_in(tmp_path, "-rA", "-p", "no:wskit")
    assert with_plugin.returncode == without.returncode == 0
    assert with_plugin.stdout.splitlines()[:-1] == without.stdout.splitlines()[:-1]
    # The same options (--help lists every option and ini setting)...
    assert (
        pytest_in(tmp_path, "--help").stdout
        == pytest_in(tmp_path, "--help", "-p", "no:wskit").stdout
    )
    # ...and the same fixtures, but wskit's.
    fixtures = pytest_in(tmp_path, "--fixtures").stdout
    assert "wskit_connect" in fixtures
    assert "wskit_connect" not in pytest_in(tmp_path, "--fixtures", "-p", "no:wskit").stdout


@pytest.mark.parametrize("name", plugin.__all__)
def test_the_fixtures_reach_this_suite(name: str, request: pytest.FixtureRequest) -> None:
    import wskit.testing

    value = request.getfixturevalue(name)
    assert value in vars(wskit.testing).values()
