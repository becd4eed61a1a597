"""Another commit of wskit beside the working tree's, in the same run: ``--baseline REF``.

Ratios between two runs taken at different times mix the change with the
machine's mood; ratios within one run do not. ``--baseline REF`` extracts
the ``src`` tree of ``REF`` (``git archive``) into ``bench/.build/baseline/``,
builds its C kernels in place, and adds a copy of every wskit server of the
run (``wskit``, ``wskit-cb``, ``wskit-hub``) named ``<server>@<commit>``
that imports that tree instead of the working tree's. The report then holds
the baseline's figures, and its ratios to the peers, beside today's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .cases import BUILD, ROOT, Server

BASELINES = BUILD / "baseline"


def resolve(ref: str) -> str:
    """The short commit id of ``ref`` (a branch, tag, ``HEAD~3``...)."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"--baseline {ref!r}: not a commit ({done.stderr.strip()})")
    return done.stdout.strip()


def prepare(ref: str) -> tuple[str, Path]:
    """Extract and build ``ref``'s wskit once; return its commit and its ``src`` directory."""
    commit = resolve(ref)
    tree = BASELINES / commit
    done_marker = tree / ".built"
    if not done_marker.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", commit, "src", "setup.py", "pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        env = {k: v for k, v in os.environ.items() if k != "WSKIT_NO_EXTENSIONS"}
        subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=tree,
            env=env,
            check=True,
            capture_output=True,
        )
        # The extensions are optional in setup.py: a failed build would pass
        # silently and compare pure Python with compiled code.
        built = list((tree / "src" / "wskit" / "speedups").glob("*.so"))
        if not built:
            raise SystemExit(f"--baseline {ref}: its C kernels did not build in {tree}")
        done_marker.touch()
    return commit, tree / "src"


def variants(servers: Sequence[Server], commit: str, src: Path) -> list[Server]:
    """A copy of each wskit server of ``servers`` running the baseline's wskit."""
    return [
        dataclasses.replace(
            server,
            name=f"{server.name}@{commit}",
            note=f"{server.name} at {commit}",
            pythonpath=str(src),
            base_of=server.name,
        )
        for server in servers
        if server.name.startswith("wskit") and server.base_of is None
    ]


def environment(server: Server, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the server's own wskit first on the import path, if it has one."""
    if server.pythonpath is None:
        return env
    paths = [server.pythonpath, *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}
