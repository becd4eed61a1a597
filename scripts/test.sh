#!/usr/bin/env bash
# `make test`: every stage of the suite, each timed, within a time budget.
#
# Stages (each stops the run when it fails):
#   bootstrap scripts/bootstrap.sh (timed, not counted: see below)
#   lint      ruff check, and ruff format --check
#   types     mypy --strict on src/ and examples/
#   docs      the documentation site, warnings as errors (scripts/docs.sh)
#   wheel     the compiled wheel, built from a fresh sdist, installed into a
#             fresh venv in a temp dir and smoke tested from there with no
#             source tree on the path (scripts/dist.sh smoke, scripts/smoke.py)
#   compiled  the whole pytest suite with the compiled kernels
#   pure      WSKIT_NO_EXTENSIONS=1: the unit suites of the layers the kernels
#             touch (protocol, asyncio, hub, conformance), the attack suite and
#             the fuzz corpus (the bounds must hold in pure Python too), without the tests that
#             drive real peers (-m "not peer"): the interop, browser, Node and
#             Redis suites have run once, compiled
#   py3.12, py3.13  the protocol and asyncio suites (with their proxy peers,
#             a few seconds) on CPython 3.12 and 3.13, in .venv-3.12 and
#             .venv-3.13 (made by the bootstrap from the pyenv interpreters);
#             skipped when one is missing, except under CI=true
#
# The bootstrap (scripts/bootstrap.sh: downloads, installs) runs first and is
# timed but not counted: the budget is what the tests themselves cost, and the
# next issues spend it; a slow mirror must not fail the run. Past
# WSKIT_TEST_BUDGET seconds (default 780, 13 minutes) for the other stages the
# run fails even when every test passed.
#
# Environment: PYTEST_ARGS is added to both pytest stages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv/bin"
BUDGET="${WSKIT_TEST_BUDGET:-780}"
read -r -a pytest_args <<<"${PYTEST_ARGS:-}"

PURE_SUITES=(tests/protocol tests/asyncio tests/hub tests/conformance tests/attacks tests/fuzz
    tests/test_speedups.py)
# What the other Python versions run: the layers whose code depends most on the
# interpreter (the C kernels' API, asyncio's transports, ssl).
VERSION_SUITES=(tests/protocol tests/asyncio)

# Microseconds since the epoch, from bash itself.
now_us() { echo "${EPOCHREALTIME/./}"; }
seconds() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }

names=()
times=()

summary() {
    local status=$? total=0 i
    printf '\nmake test: time per stage\n'
    for i in "${!names[@]}"; do
        if [[ "${names[$i]}" == bootstrap ]]; then
            printf '  %-10s %7s s (not counted)\n' "${names[$i]}" "$(seconds "${times[$i]}")"
        else
            printf '  %-10s %7s s\n' "${names[$i]}" "$(seconds "${times[$i]}")"
            total=$((total + times[i]))
        fi
    done
    printf '  %-10s %7s s (budget %d s)\n' "total" "$(seconds "$total")" "$BUDGET"
    if [[ $status -eq 0 ]] && ((total > BUDGET * 1000000)); then
        printf 'make test: over its time budget (%s s > %d s): make the suite faster\n' \
            "$(seconds "$total")" "$BUDGET" >&2
        status=1
    fi
    exit "$status"
}
trap summary EXIT

stage() {
    local name="$1"
    shift
    printf '\n== %s: %s\n' "$name" "$*"
    local t0 rc=0
    t0=$(now_us)
    "$@" || rc=$?
    names+=("$name")
    times+=($(($(now_us) - t0)))
    if [[ $rc -ne 0 ]]; then
        printf 'make test: stage %s failed (exit %d)\n' "$name" "$rc" >&2
        exit "$rc"
    fi
}

# `set -e` does not apply inside a function called as `f || rc=$?` (stage does),
# so each command's failure is chained explicitly. --no-cache: a cached "clean"
# verdict can hide a change in how imports are classified (a new folder).
lint() {
    "$VENV/ruff" check --no-cache src tests bench docs examples &&
        "$VENV/ruff" format --check --no-cache src tests bench docs examples
}

# The suites of VERSION_SUITES on another CPython, in .venv-<version>.
other_python() {
    local venv="$ROOT/.venv-$1/bin"
    shift
    if [[ ! -x "$venv/pytest" ]]; then
        [[ "${CI:-}" == true ]] && { echo "CI=true: $venv/pytest is missing" >&2; return 1; }
        echo "skipped: $venv/pytest is missing (scripts/bootstrap.sh makes it)"
        return 0
    fi
    "$venv/pytest" -q "$@" "${VERSION_SUITES[@]}"
}

stage bootstrap bash scripts/bootstrap.sh
stage lint lint
stage types "$VENV/mypy" --strict src examples
stage docs bash scripts/docs.sh
stage wheel bash scripts/dist.sh smoke
stage compiled "$VENV/pytest" -q "${pytest_args[@]}"
stage pure env WSKIT_NO_EXTENSIONS=1 "$VENV/pytest" -q -m "not peer" "${pytest_args[@]}" \
    "${PURE_SUITES[@]}"
stage py3.12 other_python 3.12 "${pytest_args[@]}"
stage py3.13 other_python 3.13 "${pytest_args[@]}"
