"""The README's Python examples run, and print what the README says they print.

The rules (``print(x)  # value``, ``# needs: redis-server``) and the runner
are those of every documentation example: ``tests/doc_examples.py``.
"""

from __future__ import annotations

import pytest

from doc_examples import Example, readme_examples, run_example

EXAMPLES = readme_examples()


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: f"line {example.line}")
def test_readme_example_runs(example: Example, request: pytest.FixtureRequest) -> None:
    run_example(example, request)
