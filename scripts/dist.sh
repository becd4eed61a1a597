#!/usr/bin/env bash
# The distributions, and the smoke test of an installed wheel.
#
#   bash scripts/dist.sh          `make dist`: into dist/,
#       - the sdist (which holds every tracked file: MANIFEST.in);
#       - from that sdist (so it is proven complete), one wheel per CPython
#         3.11, 3.12, 3.13, built by the pyenv interpreters
#         (~/.pyenv/versions/3.1x.*) with WSKIT_REQUIRE_EXTENSIONS=1, repaired
#         by `auditwheel repair` to the manylinux tag `auditwheel show` names;
#       - the pure-Python wheel (WSKIT_NO_EXTENSIONS=1), tagged py3-none-any;
#       each wheel installed into a fresh venv of its interpreter and smoke
#       tested (scripts/smoke.py); then `twine check`, and the tags are printed.
#   bash scripts/dist.sh smoke    the `wheel` stage of `make test`: the
#       compiled wheel for .venv's Python, built from a fresh sdist, installed
#       into a fresh venv in a temporary directory, and scripts/smoke.py run
#       there with no source tree on the path (python -I, cwd the temp dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv/bin"
VERSIONS=(3.11 3.12 3.13)
# auditwheel runs patchelf, which the dist dependency group puts in the venv.
export PATH="$VENV:$PATH"

log() { printf 'dist: %s\n' "$*" >&2; }
die() { printf 'dist: error: %s\n' "$*" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/wskit-dist.XXXXXX")"
trap 'rm -rf -- "$TMP"' EXIT

# The newest pyenv CPython of a version (3.12 -> ~/.pyenv/versions/3.12.1/bin/python3.12).
interpreter() {
    local version="$1" found=""
    local root="${PYENV_ROOT:-$HOME/.pyenv}/versions"
    found="$(find "$root" -maxdepth 3 -path "*/versions/$version.*/bin/python$version" 2>/dev/null |
        sort -V | tail -n 1)"
    [[ -n "$found" ]] || die "no CPython $version in $root (pyenv install $version)"
    printf '%s\n' "$found"
}

# Install a wheel into a fresh venv of an interpreter and run the smoke test
# from a directory outside the source tree.
smoke() {
    local python="$1" wheel="$2" pure="${3:-}"
    local env="$TMP/venv-$(basename "$wheel" .whl)" cwd="$TMP/cwd"
    "$python" -m venv --without-pip "$env"
    "$VENV/python" -m pip --python "$env/bin/python" install --quiet --no-deps --no-index \
        "$wheel"
    mkdir -p "$cwd"
    (cd "$cwd" && WSKIT_SMOKE_PURE="$pure" "$env/bin/python" -I "$ROOT/scripts/smoke.py")
}

# The manylinux tag `auditwheel show` says the wheel's symbols allow.
manylinux_tag() {
    "$VENV/auditwheel" show "$1" |
        tr -s ' \n' ' ' |
        sed -n 's/.*constrains the platform tag to "\([^"]*\)".*/\1/p'
}

# The wheel of the sdist for one interpreter (isolated build: the build
# requirements of pyproject.toml, not the venv's).
build_wheel() {
    local python="$1" sdist="$2" out="$3"
    shift 3
    env "$@" "$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$sdist"
}

# The pyenv interpreters link extensions with a RUNPATH to their own lib/
# directory, which auditwheel keeps: drop it (the kernels need libc only).
# Prints the new wheel's path.
drop_runpath() {
    local wheel="$1" unpacked="$TMP/unpacked"
    rm -rf -- "$unpacked"
    "$VENV/wheel" unpack --dest "$unpacked" "$wheel" >/dev/null
    local so
    for so in "$unpacked"/*/wskit/speedups/*.so; do
        patchelf --remove-rpath "$so"
    done
    rm -f -- "$wheel"
    "$VENV/wheel" pack --dest-dir "$(dirname "$wheel")" "$unpacked"/* >/dev/null
    ls "$(dirname "$wheel")"/*.whl
}

if [[ "${1:-all}" == smoke ]]; then
    log "building the sdist and, from it, the compiled wheel"
    WSKIT_REQUIRE_EXTENSIONS=1 "$VENV/python" -m build --no-isolation --outdir "$TMP/dist" . \
        >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log" >&2; die "the build failed"; }
    wheels=("$TMP"/dist/*.whl)
    [[ ${#wheels[@]} -eq 1 ]] || die "expected one wheel, got: ${wheels[*]}"
    log "installing $(basename "${wheels[0]}") into a fresh venv and running scripts/smoke.py"
    smoke "$VENV/python" "${wheels[0]}"
    exit 0
fi

[[ "${1:-all}" == all ]] || die "usage: scripts/dist.sh [all|smoke]"

rm -rf -- dist
mkdir -p dist
log "sdist"
"$VENV/python" -m build --sdist --no-isolation --outdir dist . >"$TMP/sdist.log" 2>&1 ||
    { cat "$TMP/sdist.log" >&2; die "the sdist failed"; }
sdists=(dist/*.tar.gz)
sdist="${sdists[0]}"

for version in "${VERSIONS[@]}"; do
    python="$(interpreter "$version")"
    log "CPython $version ($python): wheel from $sdist"
    raw="$TMP/raw-$version"
    build_wheel "$python" "$sdist" "$raw" WSKIT_REQUIRE_EXTENSIONS=1
    wheel="$(drop_runpath "$(ls "$raw"/*.whl)")"
    tag="$(manylinux_tag "$wheel")"
    [[ "$tag" == manylinux* ]] || die "auditwheel show gave no manylinux tag for $wheel"
    log "auditwheel repair --plat $tag"
    "$VENV/auditwheel" repair --plat "$tag" --wheel-dir dist "$wheel"
    repaired="$(ls dist/wskit-*-cp${version/./}-*.whl)"
    smoke "$python" "$repaired"
done

log "pure-Python wheel (WSKIT_NO_EXTENSIONS=1)"
python="$(interpreter "${VERSIONS[0]}")"
build_wheel "$python" "$sdist" "$TMP/pure" WSKIT_NO_EXTENSIONS=1
pure="$(ls "$TMP"/pure/*.whl)"
[[ "$pure" == *-py3-none-any.whl ]] || die "the pure wheel is not py3-none-any: $pure"
cp -- "$pure" dist/
smoke "$python" "dist/$(basename "$pure")" 1

"$VENV/twine" check --strict dist/*

printf '\nmake dist: into dist/\n'
for file in dist/*; do
    printf '  %-70s %8d bytes\n' "$(basename "$file")" "$(stat -c %s "$file")"
done
printf '  sdist members: %d\n' "$(tar tzf "$sdist" | grep -vc '/$')"
