#!/usr/bin/env bash
# Build the documentation site (docs/) into docs/_build/html with Sphinx:
# warnings are errors (-W), every cross-reference must resolve (-n, nitpicky),
# and all warnings are reported before failing (--keep-going).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec .venv/bin/sphinx-build -q -W -n --keep-going -b html docs docs/_build/html "$@"
