"""The README's Python examples run, and print what the README says they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def expected_output(block: str) -> list[str]:
    """The ``# value`` comments on print lines: what each print must show."""
    expected = []
    for line in block.splitlines():
        match = re.search(r"print\(.*\)\s+#\s*(.+)$", line)
        if match:
            expected.append(match[1].strip())
    return expected


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 2


NEEDS_REDIS = "# needs: redis-server"
"""A block starting with this line gets a fresh redis-server, its URL in ``REDIS_URL``."""


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int, request: pytest.FixtureRequest) -> None:
    block = python_blocks()[index]
    env = dict(os.environ)
    if block.startswith(NEEDS_REDIS):
        redis = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = redis.url
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    position = 0
    for want in expected_output(block):
        found = output.find(want, position)
        assert found >= 0, f"{want!r} not in output after position {position}:\n{output}"
        position = found + len(want)
