"""The package's metadata: the license, who it is from, what it says about itself."""

from __future__ import annotations

import importlib.metadata
import os
import runpy
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import setuptools

ROOT = Path(__file__).resolve().parent.parent


def test_the_license_is_mit_in_the_file_and_the_metadata() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    metadata = importlib.metadata.metadata("wskit")
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in metadata.get_all("License-File", [])
    assert metadata["Author"] == "wskit contributors"


def test_the_metadata_describes_the_package() -> None:
    metadata = importlib.metadata.metadata("wskit")
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "wskit is a WebSocket toolkit" in (metadata.get_payload() or "")  # the README
    classifiers = metadata.get_all("Classifier", [])
    assert "Typing :: Typed" in classifiers
    assert "Framework :: AsyncIO" in classifiers
    assert "websocket" in metadata["Keywords"].split(",")


def test_the_changelog_keeps_a_changelog() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n")
    assert "## [Unreleased]" in changelog and "### Added" in changelog


# -- the build: which kernels, and what a failed compile does ---------------------------

SETUP = ROOT / "setup.py"


def setup_arguments(monkeypatch: pytest.MonkeyPatch, platform: str) -> dict[str, Any]:
    """What setup.py passes to ``setup()`` on ``platform``, without building anything."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(sys, "platform", platform)
    runpy.run_path(str(SETUP), run_name="__main__")
    (arguments,) = calls
    return arguments


@pytest.mark.parametrize(
    ("platform", "kernels"),
    [("linux", ["frames", "write"]), ("darwin", ["frames"]), ("win32", ["frames"])],
)
def test_the_write_kernel_is_built_on_linux_only(
    monkeypatch: pytest.MonkeyPatch, platform: str, kernels: list[str]
) -> None:
    monkeypatch.delenv("WSKIT_NO_EXTENSIONS", raising=False)
    monkeypatch.delenv("WSKIT_REQUIRE_EXTENSIONS", raising=False)
    extensions = setup_arguments(monkeypatch, platform)["ext_modules"]
    assert [ext.name for ext in extensions] == [f"wskit.speedups.{name}" for name in kernels]
    assert all(ext.optional for ext in extensions)


def test_the_switches_build_none_or_require_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSKIT_NO_EXTENSIONS", "1")
    monkeypatch.delenv("WSKIT_REQUIRE_EXTENSIONS", raising=False)
    assert setup_arguments(monkeypatch, "linux")["ext_modules"] == []
    monkeypatch.delenv("WSKIT_NO_EXTENSIONS")
    monkeypatch.setenv("WSKIT_REQUIRE_EXTENSIONS", "1")
    extensions = setup_arguments(monkeypatch, "linux")["ext_modules"]
    assert len(extensions) == 2 and not any(ext.optional for ext in extensions)


@pytest.mark.parametrize("required", [False, True])
def test_a_kernel_that_does_not_compile_fails_the_build_only_when_required(
    tmp_path: Path, required: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSKIT_")}
    env["CC"] = "false"  # a compiler that fails every file
    if required:
        env["WSKIT_REQUIRE_EXTENSIONS"] = "1"
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "-b", tmp_path / "lib", "-t", tmp_path / "tmp"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not list(tmp_path.rglob("*.so"))
    if required:
        assert result.returncode != 0, result.stdout
        assert "error:" in result.stderr and "speedups/frames.c" in result.stderr
    else:
        # The package is then pure Python, and the build log says why.
        assert result.returncode == 0, result.stderr
        assert "building extension" in result.stderr and "failed" in result.stderr


# -- cibuildwheel -------------------------------------------------------------------------


def test_cibuildwheel_builds_cpython_3_11_to_3_13_on_every_platform_with_the_kernels() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert config["build"].split() == ["cp311-*", "cp312-*", "cp313-*"]
    assert config["linux"]["archs"] == ["x86_64", "aarch64"]
    assert "manylinux" in config["linux"]["manylinux-x86_64-image"]
    assert "musllinux" in config["skip"]
    assert config["macos"]["archs"] and config["windows"]["archs"] == ["AMD64"]
    assert config["environment"] == {"WSKIT_REQUIRE_EXTENSIONS": "1"}
    assert config["test-command"] == "python -I {project}/scripts/smoke.py"
    assert (ROOT / "scripts" / "smoke.py").is_file()


# -- the sdist ----------------------------------------------------------------------------

#: Tracked files the sdist leaves out (MANIFEST.in says why): these folders, and
#: every .gitignore.
NOT_IN_SDIST = (".ci/",)

#: Files the build makes for every sdist.
MADE_BY_THE_BUILD = ("PKG-INFO", "setup.cfg", "src/wskit.egg-info/")


def git_files(*options: str) -> set[str]:
    result = subprocess.run(
        ["git", "ls-files", "-z", *options], cwd=ROOT, capture_output=True, check=True
    )
    return {name for name in result.stdout.decode().split("\0") if name}


def test_the_sdist_holds_every_tracked_file(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an sdist is checked from the checkout it came from)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSKIT_")}
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", tmp_path, ROOT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    (sdist,) = tmp_path.glob("wskit-*.tar.gz")
    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz") + "/"
        members = {m.name.removeprefix(top) for m in archive.getmembers() if m.isfile()}
    tracked = {
        name
        for name in git_files()
        if not name.startswith(NOT_IN_SDIST) and Path(name).name != ".gitignore"
    }
    assert sorted(tracked - members) == [], "tracked files missing from the sdist: MANIFEST.in"
    # Beyond the tracked files: only what the build makes, and the files a
    # developer has not committed yet (none in a fresh clone), never ignored ones.
    untracked = git_files("--others", "--exclude-standard")
    extra = {m for m in members - tracked - untracked if not m.startswith(MADE_BY_THE_BUILD)}
    assert sorted(extra) == [], "ignored files in the sdist: MANIFEST.in"


# -- the smoke program --------------------------------------------------------------------


def test_the_smoke_program_fails_loudly_on_a_source_tree() -> None:
    # Run here, wskit comes from src/ (an editable install), not site-packages.
    result = subprocess.run(
        [sys.executable, "-I", ROOT / "scripts" / "smoke.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "smoke: FAILED: wskit is imported from site-packages" in result.stderr
