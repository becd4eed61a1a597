"""Sphinx configuration of the wskit documentation (``make docs``).

Built with warnings as errors and nitpicky cross-references: a renamed class, a
broken link or a docstring role that points nowhere fails the build, and so
``make test``.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

project = "wskit"
author = "wskit contributors"
copyright = "wskit contributors"
release = importlib.metadata.version("wskit")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

# Every cross-reference must resolve. Names outside wskit (the standard library,
# third-party types in signatures) have no inventory here -- the build runs
# offline -- so they are listed in nitpick_ignore_regex rather than linked.
nitpicky = True
nitpick_ignore_regex: list[tuple[str, str]] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"wskit {release}"
