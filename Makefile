# wskit developer entry points.  `make test` and `make demo` work on a fresh
# checkout: both run scripts/bootstrap.sh first, which is quick when nothing changed.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

VENV        := .venv
PY          := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS  ?=
FUZZ_SECONDS ?= 60
FUZZ_ENGINE  ?= auto
FUZZ_TARGETS ?=
SOAK_ARGS   ?=
HOST        ?= 127.0.0.1
PORT        ?= 8000

.PHONY: bootstrap venv test lint typecheck pytest docs dist demo bench fuzz soak clean distclean

bootstrap:
	@bash scripts/bootstrap.sh

venv: bootstrap

lint: bootstrap
	$(VENV)/bin/ruff check src tests bench docs examples
	$(VENV)/bin/ruff format --check src tests bench docs examples

typecheck: bootstrap
	$(VENV)/bin/mypy --strict src examples

pytest: bootstrap
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# Lint, types, the whole suite with the compiled kernels, then the unit suites
# again with the pure-Python code alone (WSKIT_NO_EXTENSIONS=1), which must stay
# correct on its own; each stage timed, the whole within a budget of 13 minutes
# (scripts/test.sh says what runs where).
# (scripts/test.sh runs the bootstrap first, timed apart from the budget.)
test:
	PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test.sh

# The documentation site (docs/, Sphinx with furo) into docs/_build/html: warnings
# are errors and every cross-reference must resolve (nitpicky). `make test` builds it too.
docs: bootstrap
	bash scripts/docs.sh

# The distributions into dist/ (scripts/dist.sh): the sdist; from it one wheel per
# CPython 3.11, 3.12, 3.13 (the pyenv interpreters), compiled kernels required,
# repaired to the manylinux tag auditwheel finds; the pure-Python py3-none-any
# wheel. Each wheel is smoke tested in a fresh venv, then twine-checked.
dist: bootstrap
	bash scripts/dist.sh

# The demo needs only .venv: no other CPythons (WSKIT_BOOTSTRAP_VERSIONS empty).
demo:
	@WSKIT_BOOTSTRAP_VERSIONS= bash scripts/bootstrap.sh
	$(PY) -m wskit demo --host $(HOST) --port $(PORT)

# The benchmark suite (bench/README.md): bench/bootstrap.sh adds the Go toolchain,
# gorilla/websocket and the `bench` extra (uvloop); `make bench BENCH_ARGS=--quick`
# for the short run.
bench: bootstrap
	bash bench/bootstrap.sh
	$(PY) -m bench $(BENCH_ARGS)

# Each fuzz target (tests/fuzz/targets.py: frames, http, wire) for FUZZ_SECONDS;
# atheris when it installs (else hypothesis). Failing inputs land in
# tests/fuzz/corpus/<target>/, which `make test` replays: commit them with the fix.
fuzz: bootstrap
	$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install --quiet 'atheris>=2.3' || \
		echo 'make fuzz: atheris did not install; fuzzing with hypothesis'
	$(PY) tests/fuzz/run.py --seconds $(FUZZ_SECONDS) --engine $(FUZZ_ENGINE) $(FUZZ_TARGETS)

# The attacks of issue 9, large, against wskit echo and a hub under wskit serve,
# with the server's RSS and file descriptors (scripts/soak.py; SOAK_SCALE=0.1 for
# a quick run). A few minutes; loads both cores.
soak: bootstrap
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; $(PY) scripts/soak.py $(SOAK_ARGS)

clean:
	rm -rf build dist docs/_build .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -path ./.venv -prune -o -path ./node_modules -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 -r rm -rf

# Also drop the installed environments; the next `make test` rebuilds them.
distclean: clean
	rm -rf $(VENV) node_modules
