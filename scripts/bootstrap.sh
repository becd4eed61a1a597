#!/usr/bin/env bash
# Bring a checkout to the state `make test` / `make demo` need:
#
#   1. Debian packages whose programs the tests drive (chromium, tinyproxy,
#      microsocks, redis-server, redis-sentinel, nginx, caddy, node/npm) -- installed only if a program is missing;
#   2. the Python virtualenv .venv with `pip install -e . --group dev` (the PEP 735
#      dependency groups of pyproject.toml: tests, docs, dist tools; pip is
#      upgraded first, since only pip >= 25.1 reads groups);
#   3. the Node.js test peers in node_modules/ (`npm ci` from package-lock.json);
#   4. .venv-3.12 and .venv-3.13, from the pyenv interpreters, with wskit
#      (editable) and the `test` group: scripts/test.sh runs the protocol and
#      asyncio suites on those versions too.
#
# Idempotent and fast when nothing changed: each step first checks whether its
# result is already there (programs on disk, stamp files holding a hash of the
# inputs), so a second run does no network access at all.
#
# Environment:
#   PYTHON                      interpreter used to create .venv (default: python3)
#   WSKIT_BOOTSTRAP_NO_APT=1    never call apt-get (report missing programs instead)
#   WSKIT_BOOTSTRAP_VERSIONS    the other CPythons of step 4 (default "3.12 3.13";
#                               empty for none: `make demo` needs only .venv)
#   CI=true                     any failure to provide a piece is fatal
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
VENV_STAMP="$VENV/.wskit-bootstrap-stamp"
NODE_STAMP="$ROOT/node_modules/.wskit-bootstrap-stamp"

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }
is_ci() { [[ "${CI:-}" == "true" ]]; }

# Hash of the given files' contents plus any extra words (e.g. the checkout path).
fingerprint() {
    local extra="$1"; shift
    { cat -- "$@"; printf '%s\n' "$extra"; } | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- system packages

have_chromium() { [[ -x /usr/bin/chromium ]]; }   # the tests launch /usr/bin/chromium
have_tinyproxy() {
    # Debian 12 ships it as /usr/bin/tinyproxy (package tinyproxy-bin); older
    # releases used /usr/sbin/tinyproxy.
    [[ -x /usr/bin/tinyproxy || -x /usr/sbin/tinyproxy ]] || command -v tinyproxy >/dev/null 2>&1
}
have_microsocks() { command -v microsocks >/dev/null 2>&1 || [[ -x /usr/bin/microsocks ]]; }
have_redis() { command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]; }
have_redis_sentinel() { command -v redis-sentinel >/dev/null 2>&1 || [[ -x /usr/bin/redis-sentinel ]]; }
have_nginx() { command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; }
have_caddy() { command -v caddy >/dev/null 2>&1 || [[ -x /usr/bin/caddy ]]; }
have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }

missing_packages=()
have_chromium   || missing_packages+=(chromium)
have_tinyproxy  || missing_packages+=(tinyproxy-bin)
have_microsocks || missing_packages+=(microsocks)
have_redis      || missing_packages+=(redis-server)
have_redis_sentinel || missing_packages+=(redis-sentinel)
have_nginx      || missing_packages+=(nginx)
have_caddy      || missing_packages+=(caddy)
have_node       || missing_packages+=(nodejs npm)

apt_install() {
    local -a sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            return 1
        fi
    fi
    # Keep package installs from starting daemons (redis-server would otherwise
    # grab port 6379): a policy-rc.d that denies every start, for this run only.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o DPkg::Lock::Timeout=300 "$@"
    } || rc=$?
    if [[ "$added_policy" -eq 1 ]]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    return "$rc"
}

if [[ ${#missing_packages[@]} -gt 0 ]]; then
    if [[ "${WSKIT_BOOTSTRAP_NO_APT:-0}" == "1" ]]; then
        log "missing Debian packages (apt disabled): ${missing_packages[*]}"
        is_ci && die "cannot run the test suite without: ${missing_packages[*]}"
    else
        log "installing Debian packages: ${missing_packages[*]}"
        if ! apt_install "${missing_packages[@]}"; then
            is_ci && die "apt-get install ${missing_packages[*]} failed"
            log "warning: could not install ${missing_packages[*]} (need root or sudo);" \
                "tests that need them will be skipped"
        fi
    fi
fi

# ---------------------------------------------------------------- Python venv

venv_ok() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

if ! venv_ok; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is older than 3.11"
    if [[ -e "$VENV" ]]; then
        log "$VENV is broken or too old; recreating it"
        rm -rf -- "$VENV"
    fi
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

venv_want="$(fingerprint "$ROOT $("$VENV/bin/python" -VV)" pyproject.toml setup.py src/wskit/speedups/*.c)"
venv_have="$(cat "$VENV_STAMP" 2>/dev/null || true)"
if [[ "$venv_want" != "$venv_have" ]] ||
    ! "$VENV/bin/python" -c 'import importlib.metadata as m; m.distribution("wskit")' 2>/dev/null
then
    log "installing wskit (editable) with the dev dependency group into $VENV"
    rm -f "$VENV_STAMP"
    "$VENV/bin/python" -m pip install --quiet --upgrade 'pip>=25.1'
    "$VENV/bin/python" -m pip install --quiet -e . --group dev
    printf '%s\n' "$venv_want" >"$VENV_STAMP"
fi

# ---------------------------------------------------------------- Node.js test peers

if have_node; then
    node_want="$(fingerprint "$(node --version)" package.json package-lock.json)"
    node_have="$(cat "$NODE_STAMP" 2>/dev/null || true)"
    if [[ "$node_want" != "$node_have" ]]; then
        log "installing Node.js test peers (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
        printf '%s\n' "$node_want" >"$NODE_STAMP"
    fi
else
    is_ci && die "node/npm not found"
    log "warning: node/npm not found; Node.js interop tests will be skipped"
fi

# ---------------------------------------------------------------- Python 3.12 and 3.13

# The newest CPython of a version: pyenv's (~/.pyenv/versions/3.12.*), else one
# on the PATH that runs.
find_python() {
    local version="$1" found
    found="$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -maxdepth 3 \
        -path "*/versions/$version.*/bin/python$version" 2>/dev/null | sort -V | tail -n 1)"
    if [[ -z "$found" ]] && "python$version" -c '' 2>/dev/null; then
        found="$(command -v "python$version")"
    fi
    [[ -n "$found" ]] && printf '%s\n' "$found"
}

read -r -a other_versions <<<"${WSKIT_BOOTSTRAP_VERSIONS-3.12 3.13}"
for version in "${other_versions[@]}"; do
    other="$ROOT/.venv-$version"
    if ! python="$(find_python "$version")"; then
        is_ci && die "CPython $version not found (pyenv install $version)"
        log "warning: CPython $version not found; its test stage will be skipped"
        continue
    fi
    if ! [[ -x "$other/bin/python" ]] || ! "$other/bin/python" -c '' 2>/dev/null; then
        rm -rf -- "$other"
        log "creating $other ($python)"
        "$python" -m venv "$other"
    fi
    stamp="$other/.wskit-bootstrap-stamp"
    want="$(fingerprint "$ROOT $("$other/bin/python" -VV)" pyproject.toml setup.py \
        src/wskit/speedups/*.c)"
    if [[ "$want" != "$(cat "$stamp" 2>/dev/null || true)" ]]; then
        log "installing wskit (editable) with the test dependency group into $other"
        rm -f "$stamp"
        "$other/bin/python" -m pip install --quiet --upgrade 'pip>=25.1'
        "$other/bin/python" -m pip install --quiet -e . --group test
        printf '%s\n' "$want" >"$stamp"
    fi
done

log "ok"
