"""The package's metadata: the license, who it is from, what it says about itself."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

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
