#!/usr/bin/env bash
# Provide what `python -m bench` needs beyond the test bootstrap:
#
#   1. Debian's Go toolchain (golang-go) and gorilla/websocket source
#      (golang-github-gorilla-websocket-dev, under /usr/share/gocode/src);
#   2. `pip install -e . --group dev --group bench` in .venv (uvloop and the peers);
#   3. the load generator and the Go echo server, built offline in GOPATH mode
#      into bench/.build/ (rebuilt only when their source changed).
#
# Idempotent: apt-get runs (with `apt-get update` first) only when a package is
# missing, and nothing is rebuilt when the binaries are newer than the source.
# WSKIT_BOOTSTRAP_NO_APT=1 never calls apt-get.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'bench/bootstrap: %s\n' "$*" >&2; }

GORILLA=/usr/share/gocode/src/github.com/gorilla/websocket
missing=()
command -v go >/dev/null 2>&1 || [[ -x /usr/lib/go/bin/go ]] || missing+=(golang-go)
[[ -f "$GORILLA/conn.go" ]] || missing+=(golang-github-gorilla-websocket-dev)

if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "${WSKIT_BOOTSTRAP_NO_APT:-0}" == "1" ]]; then
        log "missing Debian packages (apt disabled): ${missing[*]}"
        exit 1
    fi
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then sudo=(sudo -n); fi
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=300 "${missing[@]}"
fi

GO="$(command -v go || echo /usr/lib/go/bin/go)"

# uvloop and the Python peers come with the `bench` extra; reinstalled when
# pyproject.toml changes (a stamp holds its hash) or one of them is missing.
STAMP=.venv/.wskit-bench-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]] ||
    ! .venv/bin/python -c 'import uvloop, picows, aiohttp, websockets, socketio' 2>/dev/null
then
    log "installing wskit with the dev and bench dependency groups into .venv"
    .venv/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
    .venv/bin/python -m pip install --quiet -e . --group dev --group bench
    printf '%s\n' "$want" >"$STAMP"
fi

mkdir -p bench/.build
build() {  # build <output> <source>
    local out="bench/.build/$1" src="$2"
    if [[ ! -x "$out" || "$src" -nt "$out" ]]; then
        log "building $out"
        GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$ROOT/bench/.build/gocache" \
            "$GO" build -o "$out" "$src"
    fi
}
build loadgen bench/loadgen/main.go
build gorilla-server bench/servers/gorilla_server.go
log "ok"
