"""The public names of every module, checked against a snapshot.

A module's public names are its ``__all__``. The snapshot in
``tests/public_api/`` holds one file per module, a name per line; this test
fails when a module's ``__all__`` differs from its file, when a module has
no file, and when a module of the snapshot, or one of its names, no longer
imports. So a change to the public API is a visible decision in a diff,
and a name, once public, keeps importing from where it was (README,
"Public names and deprecation").

After a deliberate change, rewrite the snapshot of the modules that changed
and commit it with the change::

    WSKIT_UPDATE_PUBLIC_API=1 .venv/bin/pytest tests/test_public_api.py

Updating never deletes the file of a module that is gone: that stays a
failure until the module is back or its removal is decided (delete the
file by hand).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
from pathlib import Path

import pytest

import wskit

SNAPSHOT = Path(__file__).resolve().parent / "public_api"
UPDATE = os.environ.get("WSKIT_UPDATE_PUBLIC_API") == "1"


def live_modules() -> list[str]:
    """Every Python module of the package (``__main__``, which runs the CLI, aside)."""
    names = ["wskit"]
    for info in pkgutil.walk_packages(wskit.__path__, "wskit."):
        if info.name.rpartition(".")[2] == "__main__":
            continue
        names.append(info.name)
    return sorted(names)


def is_extension(module: object) -> bool:
    """Compiled modules (the speedups) have no ``__all__``; their .pyi stub says it all."""
    return not str(getattr(module, "__file__", "")).endswith(".py")


def snapshot_file(module: str) -> Path:
    return SNAPSHOT / f"{module}.txt"


def read_snapshot(module: str) -> list[str]:
    return [line for line in snapshot_file(module).read_text().splitlines() if line]


MODULES = [name for name in live_modules() if not is_extension(importlib.import_module(name))]


@pytest.mark.parametrize("module", MODULES)
def test_public_names_match_the_snapshot(module: str) -> None:
    loaded = importlib.import_module(module)
    assert hasattr(loaded, "__all__"), f"{module} has no __all__"
    names = sorted(loaded.__all__)
    assert len(names) == len(set(names)), f"{module}.__all__ repeats a name"
    if UPDATE and (not snapshot_file(module).exists() or read_snapshot(module) != names):
        SNAPSHOT.mkdir(exist_ok=True)
        snapshot_file(module).write_text("".join(f"{name}\n" for name in names))
    assert snapshot_file(module).exists(), f"{module} is new: record its public names"
    assert names == read_snapshot(module)


def snapshot_modules() -> list[str]:
    return sorted(path.stem for path in SNAPSHOT.glob("*.txt"))


@pytest.mark.parametrize("module", snapshot_modules())
def test_every_recorded_name_still_imports_from_its_module(module: str) -> None:
    loaded = importlib.import_module(module)
    missing = [name for name in read_snapshot(module) if not hasattr(loaded, name)]
    assert missing == []


def test_the_console_script_still_loads() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="wskit")
    assert callable(script.load())


def test_the_snapshot_lists_every_module() -> None:
    assert sorted(set(MODULES) - set(snapshot_modules())) == []
