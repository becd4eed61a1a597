"""The Python examples of the README and of ``docs/``: found, run, type-checked.

One set of rules for every example, wherever it is written:

* a README ```` ```python ```` block, or a ``.. code-block:: python`` directive
  in ``docs/**/*.rst``, is a complete program, run alone (``python -c``,
  30 s timeout) and expected to exit with status 0;
* a line ``print(x)  # value`` asserts that the output holds ``value``, the
  values in the order of the prints;
* a block whose first line is ``# needs: redis-server`` gets a fresh Redis,
  its URL in the environment variable ``REDIS_URL``;
* every block passes ``mypy --strict``, each as a module of its own, all in one
  mypy run (:func:`mypy_strict`).

``tests/test_readme.py`` and ``tests/docs/test_examples.py`` run the examples,
``tests/test_typing.py`` type-checks them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

NEEDS_REDIS = "# needs: redis-server"
"""A block starting with this line gets a fresh redis-server, its URL in ``REDIS_URL``."""

#: How long one example may run.
TIMEOUT = 30


@dataclass(frozen=True)
class Example:
    """One Python block: where it is written, and its code."""

    path: Path
    #: The line of the block's first line of code (1-based).
    line: int
    code: str

    @property
    def name(self) -> str:
        """``docs/start/server.rst:12``: what a failure names."""
        return f"{self.where}:{self.line}"

    @property
    def where(self) -> Path:
        """The file, relative to the repository when it is in it."""
        return self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path

    @property
    def module_name(self) -> str:
        """A module name for the block, unique per block: ``docs_start_server_12``."""
        stem = self.where.with_suffix("")
        return re.sub(r"\W", "_", f"{stem}_{self.line}").lower()


def readme_examples(readme: Path = README) -> list[Example]:
    """The README's ```` ```python ```` blocks."""
    text = readme.read_text()
    return [
        Example(readme, text.count("\n", 0, match.start(1)) + 1, match[1])
        for match in re.finditer(r"```python\n(.*?)```", text, flags=re.S)
    ]


#: A directive whose body is Python code to run (``code`` and ``sourcecode``
#: are docutils' and Sphinx's other names for ``code-block``).
PYTHON_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (code-block|code|sourcecode):: python3?\s*$"
)


def rst_examples_of(path: Path) -> list[Example]:
    """The Python code blocks of one reST file, dedented."""
    lines = path.read_text().splitlines()
    examples = []
    index = 0
    while index < len(lines):
        match = PYTHON_DIRECTIVE.match(lines[index])
        index += 1
        if match is None:
            continue
        indent = len(match["indent"])
        # The directive's options (":caption: ..."), then its body: every line
        # indented deeper than the directive, blank lines included.
        while index < len(lines) and re.match(r"\s+:[\w-]+:", lines[index]):
            index += 1
        body: list[str] = []
        start = index
        while index < len(lines) and (
            not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
        ):
            body.append(lines[index])
            index += 1
        while body and not body[0].strip():
            body.pop(0)
            start += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        examples.append(Example(path, start + 1, code))
    return examples


def rst_files(docs: Path = DOCS) -> list[Path]:
    """The reST sources of the documentation (the build's output aside)."""
    return sorted(path for path in docs.rglob("*.rst") if "_build" not in path.parts)


def docs_examples(docs: Path = DOCS) -> list[Example]:
    """Every Python code block of ``docs/**/*.rst``."""
    return [example for path in rst_files(docs) for example in rst_examples_of(path)]


def literalincludes(docs: Path = DOCS) -> list[tuple[Path, Path]]:
    """Each ``literalinclude`` of the docs: the page, and the file it shows.

    A relative path is relative to the page, an absolute one to ``docs/``,
    as Sphinx reads them.
    """
    found = []
    for page in rst_files(docs):
        for match in re.finditer(r"^\s*\.\. literalinclude:: (\S+)", page.read_text(), re.M):
            target = match[1]
            path = docs / target.lstrip("/") if target.startswith("/") else page.parent / target
            found.append((page, path.resolve()))
    return found


def expected_output(code: str) -> list[str]:
    """The ``# value`` comments on print lines: what each print must show."""
    expected = []
    for line in code.splitlines():
        match = re.search(r"print\(.*\)\s+#\s*(.+)$", line)
        if match:
            expected.append(match[1].strip())
    return expected


def run_example(example: Example, request: pytest.FixtureRequest) -> None:
    """Run ``example`` as a program and check its status and its output."""
    env = dict(os.environ)
    if example.code.startswith(NEEDS_REDIS):
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    result = subprocess.run(
        [sys.executable, "-c", example.code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert result.returncode == 0, f"{example.name} failed:\n{result.stderr}"
    output = result.stdout
    position = 0
    for want in expected_output(example.code):
        found = output.find(want, position)
        assert found >= 0, (
            f"{example.name}: {want!r} not in the output after position {position}:\n{output}"
        )
        position = found + len(want)


def mypy_strict(programs: dict[str, str], directory: Path) -> dict[str, str]:
    """Run ``mypy --strict`` once over ``programs`` (module name: code); each one's errors.

    Each program is a module of its own (examples reuse names, as separate
    programs do); the result maps each module name to its error lines, ``""``
    when it type-checks.
    """
    files = []
    for module, code in programs.items():
        (directory / f"{module}.py").write_text(code)
        files.append(f"{module}.py")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(directory / ".mypy_cache"),
            *files,
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    lines = done.stdout.splitlines()
    return {
        module: "\n".join(line for line in lines if line.startswith(f"{module}.py:"))
        for module in programs
    }
