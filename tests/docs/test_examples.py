"""Every Python example of the documentation runs, and prints what it says it prints.

Each ``.. code-block:: python`` of ``docs/**/*.rst`` is a program, run with
the README's rules (``tests/doc_examples.py``); ``tests/test_typing.py``
type-checks the same blocks. Each ``literalinclude`` shows a file that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from doc_examples import (
    Example,
    docs_examples,
    literalincludes,
    rst_examples_of,
    rst_files,
    run_example,
)

EXAMPLES = docs_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
def test_docs_example_runs(example: Example, request: pytest.FixtureRequest) -> None:
    run_example(example, request)


def test_every_python_block_of_the_docs_is_found() -> None:
    # Counted apart from the extractor, so that a broken one cannot pass by
    # finding nothing (an empty parametrization runs no test).
    directives = sum(
        len(re.findall(r"^\s*\.\. code-block:: python\s*$", page.read_text(), flags=re.M))
        for page in rst_files()
    )
    assert directives >= 1
    assert len(EXAMPLES) == directives
    assert all(example.code.strip() for example in EXAMPLES)


PAGE = """\
Title
=====

.. code-block:: python
   :caption: an option, then a blank line

   import sys

   if sys:
       print("one")  # one

Text between.

- A list item:

  .. code-block:: python

     print("two")  # two

.. code-block:: sh

   echo not python
"""


def test_extractor_reads_blocks_options_and_indentation(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(PAGE)
    first, second = rst_examples_of(page)
    assert first.code == 'import sys\n\nif sys:\n    print("one")  # one\n'
    assert first.line == 7
    assert second.code == 'print("two")  # two\n'
    assert second.line == 18


def test_a_failing_example_fails(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    with pytest.raises(AssertionError, match="failed"):
        run_example(Example(page, 1, "raise SystemExit(3)\n"), request)
    with pytest.raises(AssertionError, match="'three' not in the output"):
        run_example(Example(page, 1, 'print("two")  # three\n'), request)
    # In the order of the prints: "one" comes before "two" in the output.
    with pytest.raises(AssertionError, match="'one' not in the output"):
        run_example(Example(page, 1, 'print("one")  # two\nprint("two")  # one\n'), request)


INCLUDES = literalincludes()


@pytest.mark.parametrize("page, path", INCLUDES, ids=[str(path) for _, path in INCLUDES])
def test_literalincluded_file_exists(page: Path, path: Path) -> None:
    assert path.is_file(), f"{page}: {path} does not exist"


def test_literalinclude_paths_are_read_as_sphinx_reads_them(tmp_path: Path) -> None:
    (tmp_path / "howto").mkdir()
    (tmp_path / "howto" / "page.rst").write_text(
        ".. literalinclude:: app.py\n\n.. literalinclude:: /shared/conf.txt\n"
    )
    assert [path for _, path in literalincludes(tmp_path)] == [
        (tmp_path / "howto" / "app.py").resolve(),
        (tmp_path / "shared" / "conf.txt").resolve(),
    ]
