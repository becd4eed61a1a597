"""The npm package ``wskit-client`` (``js/``) as it would be published.

:func:`packed_client` runs ``npm pack`` on ``js/`` into a temporary folder
(its ``prepack`` script copies the client from ``src/wskit/hub/static/``),
then installs the tarball into a fresh Node project beside it, where the
``ws`` package of the repository's ``node_modules`` is linked and the Node
peer scripts are copied: so ``import ... from "wskit-client"`` in those
scripts loads what the tarball holds, as an application would.

Once per test session, however many fixtures ask: ``tests/js/conftest.py``
and ``tests/hub/test_jsclient_node.py`` each wrap it in a ``packed``
fixture that also depends on ``node`` (so their tests are marked ``peer``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import NODE_MODULES, REPO_ROOT, require

__all__ = ["PACKAGE_DIR", "PEER_SCRIPTS", "PackedClient", "packed_client"]

#: The package's folder in the repository.
PACKAGE_DIR = REPO_ROOT / "js"

#: Node scripts from ``tests/peers`` that import the client by package name.
PEER_SCRIPTS = ("wskit_client.mjs", "common.mjs")

_PEERS = REPO_ROOT / "tests" / "peers"


@dataclass(frozen=True)
class PackedClient:
    """The packed ``wskit-client`` and a Node project where it is installed."""

    #: The ``.tgz`` that ``npm publish`` would upload.
    tarball: Path
    #: What ``npm pack --json`` said about it (name, version, files...).
    manifest: dict[str, Any]
    #: A Node project (``"type": "module"``) with the package and ``ws`` installed
    #: and :data:`PEER_SCRIPTS` copied: run Node scripts from here.
    project: Path

    @property
    def installed(self) -> Path:
        """The package's folder in the project's ``node_modules``."""
        return self.project / "node_modules" / "wskit-client"

    def members(self) -> dict[str, bytes]:
        """The tarball's files by their path in the package (without ``package/``)."""
        files: dict[str, bytes] = {}
        with tarfile.open(self.tarball) as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member)
                if extracted is not None:
                    files[member.name.removeprefix("package/")] = extracted.read()
        return files


def _npm(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


_packed: PackedClient | None = None


def _pack(root: Path) -> PackedClient:
    out = root / "pack"
    out.mkdir()
    packed = _npm("pack", "--json", "--pack-destination", str(out), cwd=PACKAGE_DIR)
    (manifest,) = json.loads(packed)
    tarball = out / manifest["filename"]
    project = root / "project"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps({"name": "wskit-client-check", "private": True, "type": "module"})
    )
    _npm("install", "--offline", "--no-package-lock", str(tarball), cwd=project)
    # After the install, which would remove a package it was not asked for.
    (project / "node_modules" / "ws").symlink_to(NODE_MODULES / "ws", target_is_directory=True)
    for script in PEER_SCRIPTS:
        shutil.copyfile(_PEERS / script, project / script)
    return PackedClient(tarball=tarball, manifest=manifest, project=project)


def packed_client(tmp_path_factory: pytest.TempPathFactory) -> PackedClient:
    """``wskit-client`` packed and installed (see :class:`PackedClient`), once per session.

    Call it from a session fixture that depends on ``node``.
    """
    global _packed
    require(shutil.which("npm"), "npm")
    if _packed is None:
        _packed = _pack(tmp_path_factory.mktemp("wskit-client"))
    return _packed
