"""The outbox's Lua script: a file of the package, found where the package is installed."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib import resources

from conftest import REPO_ROOT
from wskit.hub.backplane.redis import outbox

PACKAGE = "wskit.hub.backplane.redis"


def test_the_publish_script_is_read_from_the_installed_package() -> None:
    script = resources.files(PACKAGE) / "publish.lua"
    assert script.is_file()
    assert script.read_text(encoding="utf-8") == outbox.PUBLISH_SCRIPT
    assert "redis.call('XADD'" in outbox.PUBLISH_SCRIPT


def test_the_package_data_ships_every_lua_script() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["wskit"]
    root = REPO_ROOT / "src" / "wskit"
    scripts = [path.relative_to(root).as_posix() for path in root.rglob("*.lua")]
    assert "hub/backplane/redis/publish.lua" in scripts
    for script in scripts:
        assert any(fnmatch.fnmatch(script, pattern) for pattern in patterns), script
