"""The package's top level (:mod:`wskit`): its lazy names and its one version."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import wskit
import wskit.hub
from wskit.protocol.handshake import USER_AGENT


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its output."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_import_wskit_does_not_import_the_hub() -> None:
    output = run_python("import sys, wskit; print(sorted(m for m in sys.modules if 'hub' in m))")
    assert output == "[]"


def test_hub_and_client_at_the_top_level() -> None:
    assert wskit.Hub is wskit.hub.Hub
    assert wskit.Client is wskit.hub.Client
    assert {"Hub", "Client"} <= set(wskit.__all__)
    assert {"Hub", "Client"} <= set(dir(wskit))
    # The first use imports the hub, in a fresh interpreter too.
    output = run_python("import sys, wskit; h = wskit.Hub; print('wskit.hub' in sys.modules, h)")
    assert output == "True <class 'wskit.hub.hub.Hub'>"


def test_unknown_names_are_still_attribute_errors() -> None:
    try:
        wskit.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("wskit.NoSuchName did not raise")
    assert not hasattr(wskit, "RoomEmitter")


def test_one_version_everywhere() -> None:
    version = importlib.metadata.version("wskit")  # from pyproject.toml
    assert wskit.__version__ == version
    assert USER_AGENT.split("/") == ["wskit", version]
    output = run_python("from wskit.cli import main; main(['--version'])")
    assert output == f"wskit {version}"
    command = subprocess.run(
        [sys.executable, "-m", "wskit", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert command.stdout.strip() == f"wskit {version}"
